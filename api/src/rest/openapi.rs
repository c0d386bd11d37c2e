//! The `/api/v1` part of `/openapi.json`: [`OPERATIONS`] lists every path and
//! method the router serves (a test holds the two together), and the room's
//! schema is made from [`super::conferences::FIELDS`].

use serde_json::{Map, Value, json};

use super::conferences::{FIELDS, Ty};

pub const TAG: &str = "PBX REST (/api/v1)";

/// What an operation takes as its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    None,
    /// A room (all of it for POST and PUT, some of it for PATCH).
    Room,
    Invite,
    Upload,
}

/// What a successful answer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Room,
    Rooms,
    Members,
    Member,
    Sound,
    Sounds,
    Recording,
    Recordings,
    Wav,
    Invited,
    Nothing,
}

/// One path and method.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub path: &'static str,
    pub method: &'static str,
    pub id: &'static str,
    pub summary: &'static str,
    pub input: Input,
    pub status: u16,
    pub output: Output,
    /// Takes `?limit=&offset=`.
    pub paged: bool,
}

const fn op(
    path: &'static str,
    method: &'static str,
    id: &'static str,
    summary: &'static str,
    input: Input,
    status: u16,
    output: Output,
) -> Operation {
    Operation { path, method, id, summary, input, status, output, paged: false }
}

const fn paged(
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    output: Output,
) -> Operation {
    Operation {
        path,
        method: "get",
        id,
        summary,
        input: Input::None,
        status: 200,
        output,
        paged: true,
    }
}

const ROOM: &str = "/api/v1/conferences/{id}";

pub const OPERATIONS: &[Operation] = &[
    paged("/api/v1/conferences", "rest.listConferences", "The customer's rooms", Output::Rooms),
    op(
        "/api/v1/conferences",
        "post",
        "rest.createConference",
        "Creates a room (`number` is required; other fields take their defaults)",
        Input::Room,
        201,
        Output::Room,
    ),
    op(ROOM, "get", "rest.getConference", "One room", Input::None, 200, Output::Room),
    op(
        ROOM,
        "patch",
        "rest.patchConference",
        "Changes the fields given",
        Input::Room,
        200,
        Output::Room,
    ),
    op(
        ROOM,
        "put",
        "rest.putConference",
        "Replaces the room: fields not given return to their defaults",
        Input::Room,
        200,
        Output::Room,
    ),
    op(
        ROOM,
        "delete",
        "rest.deleteConference",
        "Hangs up the room's callers, then deletes it with its recordings",
        Input::None,
        204,
        Output::Nothing,
    ),
    paged(
        "/api/v1/conferences/{id}/members",
        "rest.listMembers",
        "The callers connected now",
        Output::Members,
    ),
    op(
        "/api/v1/conferences/{id}/members/{member}/mute",
        "post",
        "rest.muteMember",
        "Mutes a member's microphone",
        Input::None,
        200,
        Output::Member,
    ),
    op(
        "/api/v1/conferences/{id}/members/{member}/unmute",
        "post",
        "rest.unmuteMember",
        "Unmutes a member's microphone",
        Input::None,
        200,
        Output::Member,
    ),
    op(
        "/api/v1/conferences/{id}/members/{member}/kick",
        "post",
        "rest.kickMember",
        "Hangs a member up (BYE)",
        Input::None,
        204,
        Output::Nothing,
    ),
    op(
        "/api/v1/conferences/{id}/invite",
        "post",
        "rest.invite",
        "Dials a number; the callee joins the room when it answers",
        Input::Invite,
        202,
        Output::Invited,
    ),
    paged(
        "/api/v1/sounds",
        "rest.listSounds",
        "The sounds the customer may use (its own and shared ones)",
        Output::Sounds,
    ),
    op(
        "/api/v1/sounds",
        "post",
        "rest.uploadSound",
        "Uploads a WAV file (PCM 8/16-bit or G.711, 8-48 kHz, at most 10 MiB and 10 minutes, \
         within the account's sound quota)",
        Input::Upload,
        201,
        Output::Sound,
    ),
    op(
        "/api/v1/sounds/{id}",
        "get",
        "rest.getSound",
        "A sound's metadata",
        Input::None,
        200,
        Output::Sound,
    ),
    op(
        "/api/v1/sounds/{id}",
        "delete",
        "rest.deleteSound",
        "Deletes a sound no room uses",
        Input::None,
        204,
        Output::Nothing,
    ),
    op(
        "/api/v1/sounds/{id}/file",
        "get",
        "rest.getSoundFile",
        "The sound as tutti plays it (16-bit mono WAV)",
        Input::None,
        200,
        Output::Wav,
    ),
    paged(
        "/api/v1/recordings",
        "rest.listRecordings",
        "Recordings of the customer's rooms (`?conference_id=` filters)",
        Output::Recordings,
    ),
    op(
        "/api/v1/recordings/{id}",
        "get",
        "rest.getRecording",
        "One recording",
        Input::None,
        200,
        Output::Recording,
    ),
    op(
        "/api/v1/recordings/{id}",
        "delete",
        "rest.deleteRecording",
        "Deletes a finished recording and its file",
        Input::None,
        204,
        Output::Nothing,
    ),
    op(
        "/api/v1/recordings/{id}/file",
        "get",
        "rest.getRecordingFile",
        "A finished recording's WAV file",
        Input::None,
        200,
        Output::Wav,
    ),
];

fn field_schema(ty: Ty, nullable: bool) -> Value {
    if nullable { json!({"type": [ty.as_str(), "null"]}) } else { json!({"type": ty.as_str()}) }
}

/// The room's schema: every field of [`FIELDS`].
fn room_schema() -> Value {
    let mut properties = Map::new();
    for f in FIELDS {
        let mut s = field_schema(f.ty, f.nullable);
        s["description"] = json!(f.doc);
        if f.read_only {
            s["readOnly"] = json!(true);
        } else if let Ok(default) = serde_json::from_str::<Value>(f.default)
            && f.name != "number"
        {
            s["default"] = default;
        }
        properties.insert(f.name.to_owned(), s);
    }
    json!({"type": "object", "properties": properties, "additionalProperties": false})
}

fn object(fields: &[(&str, &str)]) -> Value {
    let properties: Map<String, Value> =
        fields.iter().map(|(name, ty)| ((*name).to_owned(), json!({"type": ty}))).collect();
    json!({"type": "object", "properties": properties})
}

/// The schemas `#/components/schemas/...` refers to.
pub fn schemas() -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("RestConference".into(), room_schema());
    let mut member = object(&[
        ("id", "string"),
        ("number", "string"),
        ("name", "string"),
        ("role", "string"),
        ("muted", "boolean"),
        ("talking", "boolean"),
        ("joined_at", "string"),
    ]);
    let mut quality = object(&[
        ("packets_received", "integer"),
        ("loss_percent", "number"),
        ("jitter_ms", "number"),
        ("rtt_ms", "number"),
        ("mos", "number"),
    ]);
    quality["description"] = json!(
        "How the member's audio reaches tutti (RTP and RTCP); rtt_ms is null until RTCP tells"
    );
    quality["nullable"] = json!(true);
    member["properties"]["quality"] = quality;
    out.insert("RestMember".into(), member);
    out.insert(
        "RestSound".into(),
        object(&[
            ("id", "integer"),
            ("name", "string"),
            ("duration_ms", "integer"),
            ("sample_rate", "integer"),
            ("size", "integer"),
            ("shared", "boolean"),
            ("created_at", "string"),
        ]),
    );
    out.insert(
        "RestRecording".into(),
        object(&[
            ("id", "string"),
            ("conference_id", "string"),
            ("room", "string"),
            ("member_id", "string"),
            ("started_at", "string"),
            ("ended_at", "string"),
            ("duration_ms", "integer"),
            ("size", "integer"),
        ]),
    );
    out.insert(
        "RestError".into(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string"},
                "field": {"type": "string", "description": "The field to blame, where one is"},
                "rooms": {"type": "array", "items": {"type": "string"}, "description": "409 for a sound in use: the rooms using it"},
            },
        }),
    );
    out
}

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn page_of(item: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "items": {"type": "array", "items": reference(item)},
            "total": {"type": "integer"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        },
    })
}

fn operation(o: &Operation) -> Value {
    let mut parameters = Vec::new();
    for (name, doc) in
        [("id", "The room's, sound's or recording's id"), ("member", "A member's id")]
    {
        if o.path.contains(&format!("{{{name}}}")) {
            parameters.push(json!({"name": name, "in": "path", "required": true, "description": doc, "schema": {"type": "string"}}));
        }
    }
    if o.paged {
        parameters.push(json!({"name": "limit", "in": "query", "description": "1 to 1000, default 100", "schema": {"type": "integer"}}));
        parameters.push(json!({"name": "offset", "in": "query", "description": "From 0", "schema": {"type": "integer"}}));
    }
    if o.id == "rest.listRecordings" {
        parameters.push(json!({"name": "conference_id", "in": "query", "description": "Only this room's", "schema": {"type": "string"}}));
    }
    let json_of = |schema: Value| json!({"application/json": {"schema": schema}});
    let content = match o.output {
        Output::Room => Some(json_of(reference("RestConference"))),
        Output::Rooms => Some(json_of(page_of("RestConference"))),
        Output::Member => Some(json_of(reference("RestMember"))),
        Output::Members => Some(json_of(page_of("RestMember"))),
        Output::Sound => Some(json_of(reference("RestSound"))),
        Output::Sounds => Some(json_of(page_of("RestSound"))),
        Output::Recording => Some(json_of(reference("RestRecording"))),
        Output::Recordings => Some(json_of(page_of("RestRecording"))),
        Output::Wav => Some(json!({"audio/wav": {}})),
        Output::Invited => Some(json_of(object(&[("id", "string")]))),
        Output::Nothing => None,
    };
    let mut ok = json!({"description": o.summary});
    if let Some(content) = content {
        ok["content"] = content;
    }
    let error = |why: &str| json!({"description": why, "content": json_of(reference("RestError"))});
    let mut responses = Map::new();
    responses.insert(o.status.to_string(), ok);
    responses.insert("401".into(), error("No or wrong API key"));
    responses.insert(
        "429".into(),
        error(
            "Too many wrong API keys from this address (--http-auth-failures): refused \
             unchecked for up to 5 minutes (Retry-After)",
        ),
    );
    responses.insert("404".into(), error("No such room, member, sound or recording"));
    if o.input != Input::None {
        responses.insert("400".into(), error("The body is not a JSON object"));
        let too_large = if o.input == Input::Upload {
            "The file is over 10 MiB, or would take the account's sounds past its quota \
             (`--sound-quota-mib`; `quota_bytes`, `used_bytes` and `size_bytes` say by how much)"
        } else {
            "The body is over its limit"
        };
        responses.insert("413".into(), error(too_large));
        responses.insert(
            "422".into(),
            error("A field is unknown, of the wrong type or out of range (`field` names it)"),
        );
    }
    if matches!(o.method, "post" | "put" | "patch" | "delete") {
        responses.insert(
            "409".into(),
            error("A conflict: number taken, sound in use, recording running, room locked or full"),
        );
    }
    if o.input == Input::Upload {
        responses.insert("415".into(), error("Neither multipart/form-data nor audio/wav"));
    }
    let mut out = json!({
        "operationId": o.id,
        "summary": o.summary,
        "tags": [TAG],
        "security": [{"bearer": []}],
        "parameters": parameters,
        "responses": responses,
    });
    let body = match o.input {
        Input::None => None,
        Input::Room => {
            Some(json!({"required": true, "content": json_of(reference("RestConference"))}))
        }
        Input::Invite => Some(json!({"required": true, "content": json_of(json!({
            "type": "object",
            "required": ["number"],
            "properties": {"number": {"type": "string", "description": "A telephone number or a SIP URI"}, "name": {"type": "string"}},
            "additionalProperties": false,
        }))})),
        Input::Upload => Some(json!({"required": true, "content": {
            "multipart/form-data": {"schema": {
                "type": "object",
                "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary"}, "name": {"type": "string", "description": "Else the file's own name"}},
            }},
            "audio/wav": {"schema": {"type": "string", "format": "binary"}},
        }})),
    };
    if let Some(body) = body {
        out["requestBody"] = body;
    }
    if o.input == Input::Upload {
        out["parameters"].as_array_mut().expect("a list").push(json!({
            "name": "name", "in": "query", "description": "The sound's name, for an audio/wav body",
            "schema": {"type": "string"},
        }));
    }
    out
}

/// `/api/v1` paths for the document's `paths`.
pub fn paths() -> Map<String, Value> {
    let mut paths: Map<String, Value> = Map::new();
    for o in OPERATIONS {
        let item = paths.entry(o.path.to_owned()).or_insert_with(|| json!({}));
        item[o.method] = operation(o);
    }
    paths
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    /// Every documented path and method is served (it asks for credentials),
    /// and no other method is.
    #[tokio::test]
    async fn the_document_and_the_router_agree() {
        let (ops, _live, _dir) =
            crate::ops::testing::ops_with(crate::ops::testing::FakeLive::default()).await;
        let router = super::super::router().with_state(ops);
        for o in OPERATIONS {
            let path = o.path.replace("{id}", "1").replace("{member}", "m");
            let request = Request::builder()
                .method(o.method.to_ascii_uppercase().as_str())
                .uri(&path)
                .body(Body::empty())
                .expect("request");
            let status = router.clone().oneshot(request).await.expect("answer").status();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{} {}", o.method, o.path);
        }
        let request =
            Request::builder().method("DELETE").uri("/api/v1/conferences").body(Body::empty());
        let status = router.oneshot(request.expect("request")).await.expect("answer").status();
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        let ids: std::collections::HashSet<&str> = OPERATIONS.iter().map(|o| o.id).collect();
        assert_eq!(ids.len(), OPERATIONS.len(), "operation ids are unique");
    }
}
