//! `/openapi.json`: an OpenAPI 3.1 description of the HTTP interfaces,
//! generated from their function tables (`access::functions::FUNCTIONS`), the
//! same data the dispatcher checks requests against.

use axum::Json;
use axum::extract::State;
use serde_json::{Map, Value, json};

use crate::access::functions::{FUNCTIONS, Function, Param, ROLES, Ty};
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

/// The parameters every `/_access` function takes.
fn common() -> Vec<Param> {
    vec![
        Param { name: "customer", ty: Ty::Uid, required: true, doc: "UID of the customer" },
        Param { name: "key", ty: Ty::Text, required: true, doc: "The customer's API key" },
        Param {
            name: "type",
            ty: Ty::OneOf(&["json", "xml"]),
            required: false,
            doc: "Answer format (any case); XML by default",
        },
    ]
}

fn operation(f: &Function) -> Value {
    let params: Vec<Param> = common().into_iter().chain(f.params.iter().copied()).collect();
    let mut errors = String::from(
        "Errors in `code`: -1 general, -2 a parameter (named), -3 unavailable (retry), -4 unexpected.",
    );
    for (code, why) in f.errors {
        errors.push_str(&format!(" {code}: {why}."));
    }
    let mut op = json!({
        "operationId": f.name,
        "summary": f.summary,
        "description": format!("Returns {} in `value`. {errors}", f.returns),
        "tags": ["Conference Management (/_access)"],
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
    if f.command {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for p in &params {
            let mut s = schema(p.ty);
            s["description"] = Value::String(p.doc.to_owned());
            properties.insert(p.name.to_owned(), s);
            if p.required {
                required.push(p.name);
            }
        }
        let body = json!({"type": "object", "properties": properties, "required": required});
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

/// The whole document.
pub fn build(version: &str) -> Value {
    let mut paths = Map::new();
    for f in FUNCTIONS {
        let method = if f.command { "post" } else { "get" };
        let mut item = Map::new();
        item.insert(method.into(), operation(f));
        paths.insert(format!("/_access/{}", f.name), Value::Object(item));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "tutti",
            "version": version,
            "description": "The HTTP control interfaces of the tutti conference server. docs/api-access.md describes /_access with examples.",
        },
        "paths": paths,
        "components": {
            "schemas": {
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
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_is_described_with_its_parameters() {
        let doc = build("test");
        for f in FUNCTIONS {
            let path = &doc["paths"][format!("/_access/{}", f.name)];
            let op = if f.command { &path["post"] } else { &path["get"] };
            assert_eq!(op["operationId"], f.name);
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
    }
}
