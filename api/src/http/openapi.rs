//! `/openapi.json`: an OpenAPI 3.1 description of the HTTP interfaces,
//! generated from their function tables (`access::functions::FUNCTIONS`,
//! `conductor::functions::FUNCTIONS`), the same data the dispatchers check
//! requests against.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use crate::http::functions::{Function, Param, ROLES, Ty};
use crate::ops::Ops;

/// The document, as `/openapi.json` serves it.
pub async fn document(State(ops): State<Ops>) -> Json<Value> {
    Json(build(ops.settings.version))
}

fn schema(ty: Ty) -> Value {
    match ty {
        Ty::Text | Ty::Uid => json!({"type": "string"}),
        Ty::Integer => json!({"type": "integer"}),
        Ty::Boolean => json!({"type": "string", "enum": ["true", "false", "1", "0"]}),
        Ty::DateTime => json!({
            "type": "string",
            "description": "yyyy.MM.dd HH:mm:ss in the server's --timezone, or ISO 8601 with an offset",
            "examples": ["2026.12.01 10:00:00", "2026-12-01T10:00:00+01:00"],
        }),
        Ty::Role => json!({"type": "string", "enum": ROLES}),
        Ty::OneOf(names) => json!({"type": "string", "enum": names}),
    }
}

const TYPE: Param = Param {
    name: "type",
    ty: Ty::OneOf(&["json", "xml"]),
    required: false,
    doc: "Answer format (any case); XML by default",
};

/// One MaestroConference-style interface, as described here.
struct Api {
    prefix: &'static str,
    tag: &'static str,
    functions: &'static [Function],
    /// What every function takes besides its own parameters.
    common: &'static [Param],
    /// Prefixed to the function's name in `operationId` (names repeat across APIs).
    operation_prefix: &'static str,
    /// Commands answer `TRUE` or `FALSE,<message>` as plain text (the Conductor).
    plain_commands: bool,
}

const ACCESS: Api = Api {
    prefix: "/_access",
    tag: "Conference Management (/_access)",
    functions: crate::access::functions::FUNCTIONS,
    common: &[
        Param { name: "customer", ty: Ty::Uid, required: true, doc: "UID of the customer" },
        Param { name: "key", ty: Ty::Text, required: true, doc: "The customer's API key" },
        TYPE,
    ],
    operation_prefix: "",
    plain_commands: false,
};

const CONDUCTOR: Api = Api {
    prefix: "/_conference",
    tag: "Conductor (/_conference)",
    functions: crate::conductor::functions::FUNCTIONS,
    common: &[
        Param {
            name: "securityToken",
            ty: Ty::Text,
            required: true,
            doc: "The conference's security token (a Conference's securityToken in /_access)",
        },
        TYPE,
    ],
    operation_prefix: "conductor.",
    plain_commands: true,
};

/// A form (or JSON) body holding `params`.
fn body_schema(params: &[Param]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for p in params {
        let mut s = schema(p.ty);
        s["description"] = Value::String(p.doc.to_owned());
        properties.insert(p.name.to_owned(), s);
        if p.required {
            required.push(p.name);
        }
    }
    json!({"type": "object", "properties": properties, "required": required})
}

fn operation(api: &Api, f: &Function) -> Value {
    let params: Vec<Param> = api
        .common
        .iter()
        .copied()
        .filter(|p| !(api.plain_commands && f.command && p.name == "type"))
        .chain(f.params.iter().copied())
        .collect();
    let mut errors = String::from(
        "Errors in `code`: -1 general, -2 a parameter (named), -3 unavailable (retry), -4 unexpected.",
    );
    for (code, why) in f.errors {
        errors.push_str(&format!(" {code}: {why}."));
    }
    let description = if api.plain_commands && f.command {
        "Answers `TRUE` when the command is accepted, or `FALSE,<message>`; the outcome \
         arrives as events (/_conference/events)."
            .to_owned()
    } else {
        format!("Returns {} in `value`. {errors}", f.returns)
    };
    let mut op = json!({
        "operationId": format!("{}{}", api.operation_prefix, f.name),
        "summary": f.summary,
        "description": description,
        "tags": [api.tag],
        "responses": {
            "200": {
                "description": "The envelope: `code` 0 and `value`, or an error `code` and `message`",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}},
                    "application/xml": {"schema": {"$ref": "#/components/schemas/EnvelopeXml"}},
                },
            },
            "404": {"description": "Unknown function (envelope, code -1)"},
            "405": {"description": "A command sent by GET (envelope, code -1)"},
            "413": {"description": "Body over 1 MiB (envelope, code -2)"},
        },
    });
    let fields = op.as_object_mut().expect("an object literal");
    if api.plain_commands && f.command {
        fields.insert(
            "responses".into(),
            json!({
                "200": {
                    "description": "`TRUE`, or `FALSE,<message>` (a refusal, nothing changed; for a \
                                    list of callers, the ones not changed)",
                    "content": {"text/plain": {"schema": {"type": "string", "examples": ["TRUE", "FALSE,UID: no such caller"]}}},
                },
                "404": {"description": "Unknown function (envelope, code -1)"},
            }),
        );
    }
    if f.command {
        let body = body_schema(&params);
        fields.insert(
            "requestBody".into(),
            json!({
                "required": true,
                "content": {
                    "application/x-www-form-urlencoded": {"schema": body.clone()},
                    "application/json": {"schema": body},
                },
            }),
        );
    } else {
        let list: Vec<Value> = params
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "in": "query",
                    "required": p.required,
                    "description": p.doc,
                    "schema": schema(p.ty),
                })
            })
            .collect();
        fields.insert("parameters".into(), Value::Array(list));
    }
    op
}

/// An Aculab-style web service, by GET (query) or POST (form).
fn aculab_operation(f: &Function, post: bool) -> Value {
    let mut op = json!({
        "operationId": format!("aculab.{}{}", f.name, if post { ".post" } else { "" }),
        "summary": f.summary,
        "description": format!("Returns {}.", f.returns),
        "tags": ["Aculab-style web services (/conference_*)"],
        "security": [{"basic": []}],
        "responses": {
            "200": {"description": f.returns, "content": {"application/json": {}}},
            "400": {"description": "A parameter is missing or out of range: {\"error\": \"<parameter>: <why>\"}"},
            "401": {"description": "No or wrong basic credentials (WWW-Authenticate: Basic realm=\"tutti\")"},
            "429": {"description": "Too many wrong credentials from this address (--http-auth-failures): refused unchecked for up to 5 minutes (Retry-After)"},
            "404": {"description": "No such conference name, reservation token or participant"},
            "409": {"description": "The conference is not in the state this needs (e.g. not ACTIVE)"},
        },
    });
    let fields = op.as_object_mut().expect("an object literal");
    if post {
        let body = body_schema(f.params);
        fields.insert(
            "requestBody".into(),
            json!({"content": {"application/x-www-form-urlencoded": {"schema": body}}}),
        );
    } else {
        let list: Vec<Value> = f
            .params
            .iter()
            .map(|p| json!({"name": p.name, "in": "query", "required": p.required, "description": p.doc, "schema": schema(p.ty)}))
            .collect();
        fields.insert("parameters".into(), Value::Array(list));
    }
    op
}

/// The whole document.
pub fn build(version: &str) -> Value {
    let mut paths = Map::new();
    for api in [&ACCESS, &CONDUCTOR] {
        for f in api.functions {
            let method = if f.command { "post" } else { "get" };
            let mut item = Map::new();
            item.insert(method.into(), operation(api, f));
            paths.insert(format!("{}/{}", api.prefix, f.name), Value::Object(item));
        }
    }
    for f in crate::aculab::functions::FUNCTIONS {
        paths.insert(
            format!("/{}", f.name),
            json!({"get": aculab_operation(f, false), "post": aculab_operation(f, true)}),
        );
    }
    paths.extend(crate::rest::openapi::paths());
    for (path, id, summary, content) in [
        (
            "/_conference/events",
            "conductor.events",
            "The call's events over a WebSocket (send the Upgrade headers): one text message per event",
            "application/json",
        ),
        (
            "/_conference/events/sse",
            "conductor.eventsSse",
            "The call's events as Server-Sent Events: one `data:` per event",
            "text/event-stream",
        ),
    ] {
        let parameters: Vec<Value> = [
            ("callUID", true, "UID of the call to watch"),
            ("securityToken", true, "The conference's security token"),
            ("type", false, "json or xml (default) events"),
        ]
        .iter()
        .map(|(name, required, doc)| {
            json!({"name": name, "in": "query", "required": required, "description": doc, "schema": {"type": "string"}})
        })
        .collect();
        let op = json!({
            "operationId": id,
            "summary": summary,
            "description": "Each event is {\"source\",\"name\",\"target\"} (JSON) or \
                            <event><source/><name/><target/></event> (XML); target is the \
                            changed object's current state. docs/api-conductor.md lists them.",
            "tags": [CONDUCTOR.tag],
            "parameters": parameters,
            "responses": {
                "101": {"description": "WebSocket: switching protocols, then the events"},
                "200": {"description": "SSE: the event stream", "content": {content: {}}},
                "400": {"description": "A missing or malformed parameter (envelope, code -2)"},
                "403": {"description": "A wrong security token (envelope, code -1); nothing is streamed"},
            },
        });
        paths.insert(path.to_owned(), json!({"get": op}));
    }
    let schemas = rest_schemas_and(json!({
        "Envelope": {
            "type": "object",
            "required": ["code", "message", "value"],
            "properties": {
                "code": {"type": "string", "description": "\"0\" on success, else an error code"},
                "message": {"type": "string"},
                "value": {"description": "The function's result; empty on error"},
            },
        },
        "EnvelopeXml": {
            "type": "object",
            "xml": {"name": "document"},
            "properties": {
                "value": {},
                "code": {"type": "integer"},
                "message": {"type": "string"},
            },
        },
    }));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tutti",
            "version": version,
            "description": "The HTTP control interfaces of the tutti conference server. docs/api-access.md describes /_access, docs/api-conductor.md /_conference and docs/api-aculab.md /conference_* and docs/api-rest.md /api/v1, with examples.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "PBX REST resource: the customer's API key",
                },
                "basic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Aculab-style services: the customer's UID (optionally after `<cloud-id>/`) and its API key",
                },
            },
            "schemas": schemas,
        },
    })
}

/// `schemas` with the REST resource's schemas added.
fn rest_schemas_and(schemas: Value) -> Value {
    let mut all = match schemas {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    all.extend(crate::rest::openapi::schemas());
    Value::Object(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_is_described_with_its_parameters() {
        let doc = build("test");
        let mut ids = std::collections::HashSet::new();
        for (api, f) in
            [ACCESS, CONDUCTOR].iter().flat_map(|a| a.functions.iter().map(move |f| (a, f)))
        {
            let path = &doc["paths"][format!("{}/{}", api.prefix, f.name)];
            let op = if f.command { &path["post"] } else { &path["get"] };
            assert_eq!(op["operationId"], format!("{}{}", api.operation_prefix, f.name));
            assert!(ids.insert(op["operationId"].to_string()), "unique ids");
            for p in f.params {
                let described = if f.command {
                    op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]["properties"]
                        .get(p.name)
                        .is_some()
                } else {
                    op["parameters"].as_array().expect("list").iter().any(|q| q["name"] == p.name)
                };
                assert!(described, "{}: {}", f.name, p.name);
            }
        }
        for f in crate::aculab::functions::FUNCTIONS {
            let path = &doc["paths"][format!("/{}", f.name)];
            for p in f.params {
                let in_query = path["get"]["parameters"]
                    .as_array()
                    .expect("list")
                    .iter()
                    .any(|q| q["name"] == p.name);
                let in_form = path["post"]["requestBody"]["content"]
                    ["application/x-www-form-urlencoded"]["schema"]["properties"]
                    .get(p.name)
                    .is_some();
                assert!(in_query && in_form, "{}: {}", f.name, p.name);
            }
            for method in ["get", "post"] {
                assert!(ids.insert(path[method]["operationId"].to_string()), "unique ids");
            }
        }
    }
}
