//! The OpenAPI 3 document, served at `/api/openapi.json`. Written by hand
//! next to the routes it describes; the router test checks that every
//! documented path is routed, and that the API paths it lists are documented.

use crate::AppState;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/openapi.json", get(|| async { axum::Json(document()) }))
}

fn op(summary: &str, security: &str, body: Option<&str>, ok: &str) -> Value {
    let mut o = json!({
        "summary": summary,
        "responses": {
            ok: {"description": "success", "content": {"application/json": {"schema": {"type": "object"}}}},
            "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        }
    });
    match security {
        "staff" => o["security"] = json!([{"staffCookie": []}]),
        "patron" => o["security"] = json!([{"chatToken": []}]),
        _ => {}
    }
    if let Some(schema) = body {
        o["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    }
    o
}

fn id_param(name: &str) -> Value {
    json!([{"name": name, "in": "path", "required": true, "schema": {"type": "integer"}}])
}

/// The document.
pub fn document() -> Value {
    let mut doc = core_document();
    if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), desk_paths()) {
        paths.extend(more);
    }
    if let (Some(schemas), Value::Object(more)) = (doc["components"]["schemas"].as_object_mut(), desk_schemas()) {
        schemas.extend(more);
    }
    doc
}

/// The chat monitor, conferencing, transfer, availability, staff, IM and the
/// entry point's status and offline form (a function of its own: one `json!`
/// this size would exceed the macro recursion limit).
fn desk_paths() -> Value {
    let with_id = |v: Value| with_params(v, id_param("id"));
    let slug = json!([{"name": "slug", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let peer = json!([{"name": "peer", "in": "path", "required": true, "schema": {"type": "integer"}}]);
    let mut m = serde_json::Map::new();
    let mut add = |path: &str, v: Value| {
        m.insert(path.to_owned(), v);
    };
    add(
        "/api/monitor",
        json!({"get": op("The chat monitor: My (sessions I am in) and ALL (live sessions in my scope; admins)", "staff", None, "200")}),
    );
    add(
        "/api/sessions/{id}/conference",
        json!({"post": with_id(op("Enter a live chat from the ALL tab, or change mode: monitor, whisper or join (institution and cooperative admins)", "staff", Some("Conference"), "200"))}),
    );
    add(
        "/api/sessions/{id}/leave",
        json!({"post": with_id(op("Leave a chat one conferenced into", "staff", None, "200"))}),
    );
    add(
        "/api/sessions/{id}/takeover",
        json!({"post": with_id(op("Take the chat over; the previous librarian stays, whispering", "staff", None, "200"))}),
    );
    add(
        "/api/sessions/{id}/transfer",
        json!({"post": with_id(op("The chatting librarian hands the chat to a colleague, a library's queue or the cooperative's queue", "staff", Some("Transfer"), "200"))}),
    );
    add(
        "/api/me/availability",
        json!({"post": op("Go on duty, away or off duty", "staff", Some("Availability"), "200")}),
    );
    add(
        "/api/staff/presence",
        json!({"get": op("Staff of my cooperative with availability and presence", "staff", None, "200")}),
    );
    add(
        "/api/staff",
        json!({
            "get": op("Staff I may manage (library admins and above, within scope)", "staff", None, "200"),
            "post": op("Create a staff member (within scope, never above my role)", "staff", Some("NewStaff"), "201")
        }),
    );
    add(
        "/api/staff/{id}",
        json!({"post": with_id(op("Change a staff member's role, disable/enable, or reset the password", "staff", Some("StaffUpdate"), "200"))}),
    );
    add("/api/im", json!({"get": op("My IM conversations with unread counts", "staff", None, "200")}));
    add(
        "/api/service",
        json!({"get": op("The service's public URL (null when unset), for the widget snippet", "none", None, "200")}),
    );
    add(
        "/api/institutions",
        json!({
            "get": op("The institutions of my cooperative", "staff", None, "200"),
            "post": op("Add an institution to my cooperative (cooperative admins)", "staff", Some("NewInstitution"), "201")
        }),
    );
    add(
        "/api/im/{peer}",
        json!({
            "get": with_params(op("The conversation with a colleague after ?after=", "staff", None, "200"), peer.clone()),
            "post": with_params(op("Send a direct message to a colleague of my cooperative", "staff", Some("Im"), "200"), peer.clone())
        }),
    );
    add(
        "/api/im/{peer}/read",
        json!({"post": with_params(op("Mark the conversation read up to seq", "staff", Some("ImRead"), "200"), peer)}),
    );
    add(
        "/api/libraries/{slug}/status",
        json!({"get": with_params(op("Whether anyone who can serve this library's patrons is on duty", "none", None, "200"), slug.clone())}),
    );
    add(
        "/api/libraries/{slug}/questions",
        json!({"post": with_params(op("The offline question form: a new question, answered by e-mail. 429 rate_limited, too_many_questions (the network's questions today); 403 blocked where the library does not let blocked patrons use the form", "none", Some("OfflineForm"), "201"), slug.clone())}),
    );
    add(
        "/api/chat/rating",
        json!({"post": op("The patron rates the ended chat (1–5) with an optional comment", "patron", Some("Rating"), "200")}),
    );
    let library = json!([{"name": "library", "in": "path", "required": true, "schema": {"type": "integer"}}]);
    add(
        "/api/policies/{library}",
        json!({
            "get": with_params(op("A library's policy page for staff serving its patrons", "staff", None, "200"), library.clone()),
            "put": with_params(op("Replace a library's policy page (its admins)", "staff", Some("Policy"), "200"), library)
        }),
    );
    add(
        "/api/scripts",
        json!({
            "get": op("The scripts (canned messages) I may use: mine, my library's, my cooperative's", "staff", None, "200"),
            "post": op("Save a script: personal (anyone), library (library admins), cooperative (cooperative admins)", "staff", Some("Script"), "201")
        }),
    );
    add("/api/scripts/{id}", json!({"delete": with_id(op("Delete a script one may keep", "staff", None, "200"))}));
    let key = json!([{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}}]);
    add(
        "/api/codes/{key}",
        json!({"put": with_params(op("Add or change a resolution code (cooperative admins); returns the codes", "staff", Some("Code"), "200"), key)}),
    );
    add(
        "/api/sessions/{id}/warn",
        json!({"post": with_id(op("Warn the patron: a canned line asking for respect, as the librarian's message", "staff", None, "200"))}),
    );
    add(
        "/api/sessions/{id}/block",
        json!({"post": with_id(op("End a live chat and block its patron by browser and network until the block runs out (24 h by default); an ended chat's patron: the library's admins", "staff", Some("NewBlock"), "201"))}),
    );
    add(
        "/api/blocks",
        json!({"get": op("Blocks on patrons in my scope, newest first: the audit list (library admins and above)", "staff", None, "200")}),
    );
    add(
        "/api/blocks/{id}/lift",
        json!({"post": with_id(op("Lift a block before it runs out (the library's admins); the question timeline records it", "staff", None, "200"))}),
    );
    add(
        "/api/libraries/{slug}/blocked-patrons",
        json!({
            "get": with_params(op("Whether a blocked patron may still send this library's offline form (its admins)", "staff", None, "200"), slug.clone()),
            "put": with_params(op("Set whether a blocked patron may still send this library's offline form (its admins)", "staff", Some("BlockedPatrons"), "200"), slug.clone())
        }),
    );
    Value::Object(m)
}

fn desk_schemas() -> Value {
    json!({
        "Conference": {"type": "object", "required": ["mode"], "properties": {"mode": {"type": "string", "enum": ["monitor", "whisper", "join"]}}},
        "Transfer": {"type": "object", "description": "exactly one of to, library, cooperative", "properties": {
            "to": {"type": "integer"}, "library": {"type": "string"}, "cooperative": {"type": "boolean"}, "stay": {"type": "boolean"}}},
        "Availability": {"type": "object", "required": ["availability"], "properties": {"availability": {"type": "string", "enum": ["on_duty", "away", "off_duty"]}}},
        "NewStaff": {"type": "object", "required": ["username", "display_name", "library", "role", "password"], "properties": {
            "username": {"type": "string"}, "display_name": {"type": "string"}, "library": {"type": "string"},
            "role": {"type": "string", "enum": ["librarian", "library_admin", "institution_admin", "cooperative_admin"]},
            "password": {"type": "string", "minLength": 8}}},
        "StaffUpdate": {"type": "object", "properties": {"role": {"type": "string"}, "disabled": {"type": "boolean"}, "password": {"type": "string", "minLength": 8}}},
        "Im": {"type": "object", "required": ["body"], "properties": {"body": {"type": "string"}, "client_id": {"type": "string", "maxLength": 64}}},
        "ImRead": {"type": "object", "required": ["seq"], "properties": {"seq": {"type": "integer"}}},
        "Rating": {"type": "object", "required": ["rating"], "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": 5}, "comment": {"type": "string", "maxLength": 2000}}},
        "Script": {"type": "object", "required": ["scope", "title", "body"], "properties": {
            "scope": {"type": "string", "enum": ["personal", "library", "cooperative"]}, "title": {"type": "string", "maxLength": 100}, "body": {"type": "string"}}},
        "Code": {"type": "object", "required": ["key", "label", "status", "assign", "follow_up", "referred", "exclude_from_stats"], "properties": {
            "key": {"type": "string"}, "label": {"type": "string"}, "status": {"type": "string", "enum": ["new", "pending", "answered", "closed"]},
            "assign": {"type": "string", "enum": ["chatting_librarian", "nobody", "receiving_library", "not_applicable"]},
            "follow_up": {"type": "boolean"}, "referred": {"type": "boolean"}, "exclude_from_stats": {"type": "boolean"}}},
        "NewLibrary": {"type": "object", "required": ["slug", "name"], "properties": {"slug": {"type": "string"}, "name": {"type": "string"},
            "institution": {"type": "integer", "description": "cooperative admins: an institution of their cooperative (default: their own)"}}},
        "NewInstitution": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string", "maxLength": 200}}},
        "Policy": {"type": "object", "required": ["body"], "properties": {"body": {"type": "string", "maxLength": 20000}}},
        "OfflineForm": {"type": "object", "required": ["email", "question"], "properties": {
            "name": {"type": "string"}, "email": {"type": "string", "format": "email"}, "question": {"type": "string"},
            "browser": {"type": "string", "description": "the widget's random id for this browser (16–128 of [A-Za-z0-9_-]); what a block goes by, with the network"}}},
        "NewBlock": {"type": "object", "required": ["reason"], "properties": {
            "reason": {"type": "string", "maxLength": 500, "description": "for staff only; never shown to the patron"},
            "hours": {"type": "integer", "minimum": 1, "description": "default limits.block_hours (24), at most limits.max_block_hours (720)"}}},
        "BlockedPatrons": {"type": "object", "required": ["may_use_form"], "properties": {"may_use_form": {"type": "boolean"}}}
    })
}

fn core_document() -> Value {
    let with_id = |v: Value| with_params(v, id_param("id"));
    json!({
        "openapi": "3.0.3",
        "info": {"title": "refdesk", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Virtual reference service: live chat between library patrons and librarians. Real-time traffic uses the WebSocket at /api/ws (docs/protocol.md). A browser request that changes something, or upgrades to a WebSocket, from a page that is not refdesk's own gets 403 cross_origin. A request that changes something and has a body must send it as Content-Type: application/json, else 415 unsupported_media_type (nothing changes). A JSON body of the wrong shape (missing, mistyped or unknown field) is 422 bad_json; one that is not JSON, 400 bad_json."},
        "paths": {
            "/healthz": {"get": op("Liveness", "none", None, "200")},
            "/readyz": {"get": op("Readiness: 200 while the database answers and can commit a write (SQLite: the writer thread commits) and the node is not shutting down; 503 otherwise, within about 3 s (recovers by itself)", "none", None, "200")},
            "/api/login": {"post": op("Staff sign-in; sets the HttpOnly session cookie. 401 unauthenticated for a wrong username or password; 403 for the demo password from another machine", "none", Some("Login"), "200")},
            "/api/logout": {"post": op("Sign out; 401 unauthenticated without a cookie that signs someone in (the cookie is cleared all the same)", "staff", None, "200")},
            "/api/me": {"get": op("The signed-in staff member", "staff", None, "200")},
            "/api/libraries": {
                "get": op("Libraries and their entry points", "none", None, "200"),
                "post": op("Create a library in my institution, or (cooperative admins) in a named institution of my cooperative", "staff", Some("NewLibrary"), "201")
            },
            "/api/libraries/{slug}/chats": {"post": with_params(
                op("A patron starts a chat; returns the session id and its secret token. 429 rate_limited, too_many_waiting (the network's waiting chats), queue_full (the library's queue), too_many_mails (transcripts to that address or asked from the network); 403 blocked (a polite message for the patron)", "none", Some("StartChat"), "201"),
                json!([{"name": "slug", "in": "path", "required": true, "schema": {"type": "string"}}])
            )},
            "/api/chat": {"get": op("The patron's chat, a page at a time (?after=SEQ&limit=1..500, default 200): state, the messages the patron may see, the last line read and whether more follow", "patron", None, "200")},
            "/api/chat/end": {"post": op("The patron ends the chat", "patron", None, "200")},
            "/api/chat/transcript": {"post": op("The patron asks for the transcript by e-mail at the end (empty email cancels)", "patron", Some("TranscriptRequest"), "200")},
            "/api/queue": {"get": op("Waiting chats this staff member may serve", "staff", None, "200")},
            "/api/sessions": {"get": op("Active chats this staff member is chatting in", "staff", None, "200")},
            "/api/sessions/{id}": {"get": with_id(op("A session and the messages staff may see (notes included)", "staff", None, "200"))},
            "/api/sessions/{id}/accept": {"post": with_id(op("Accept a waiting chat (atomic: one winner)", "staff", None, "200"))},
            "/api/sessions/{id}/messages": {"post": with_id(op("Send a message or librarian note; returns after commit", "staff", Some("Send"), "200"))},
            "/api/sessions/{id}/end": {"post": with_id(op("End the chat", "staff", None, "200"))},
            "/api/sessions/{id}/code": {"post": with_id(op("Set or change the resolution code", "staff", Some("SetCode"), "200"))},
            "/api/codes": {"get": op("Resolution codes of the staff member's cooperative", "staff", None, "200")},
            "/api/questions": {"get": with_params(
                op("The question list in scope, newest first; live questions are marked live", "staff", None, "200"),
                list_params(),
            )},
            "/api/questions/{id}": {"get": with_id(op("A question with transcript, timeline and the patron's e-mail address", "staff", None, "200"))},
            "/api/questions/{id}/{action}": {"post": with_params(
                op("Act on a question: on a live question confirm_live must be true (B1); a stale confirmation is refused (409)", "staff", Some("Act"), "200"),
                json!([
                    {"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}},
                    {"name": "action", "in": "path", "required": true, "schema": {"type": "string",
                        "enum": ["answer", "note", "message-librarian", "close", "reopen", "assign", "claim", "refer", "code"]}}
                ])
            )},
            "/api/ws": {"get": op("WebSocket upgrade (docs/protocol.md); the first frame authenticates: {\"type\":\"auth\"} (+ \"token\" for a patron); a ?token= in the URL is refused (400 token_in_url); 429 too_many_sockets when the client's address (IPv6: its /64) already holds limits.sockets_per_address sockets; 503 busy when 1,024 sockets already wait for their auth frame", "none", None, "101")}
        },
        "components": {
            "securitySchemes": {
                "staffCookie": {"type": "apiKey", "in": "cookie", "name": "refdesk_session"},
                "chatToken": {"type": "http", "scheme": "bearer"}
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}},
                "Login": {"type": "object", "required": ["username", "password"], "properties": {"username": {"type": "string"}, "password": {"type": "string"}}},
                "StartChat": {"type": "object", "required": ["question"], "properties": {
                    "name": {"type": "string", "maxLength": 100}, "email": {"type": "string", "format": "email"}, "question": {"type": "string"},
                    "transcript": {"type": "boolean", "description": "e-mail the transcript at the end (needs email; only a chat a librarian accepted is mailed)"},
                    "browser": {"type": "string", "description": "the widget's random id for this browser (16–128 of [A-Za-z0-9_-]); what a block goes by, with the network"}}},
                "Send": {"type": "object", "required": ["body"], "properties": {
                    "kind": {"type": "string", "enum": ["message", "note"]}, "body": {"type": "string"}, "client_id": {"type": "string", "maxLength": 64}}},
                "SetCode": {"type": "object", "required": ["code"], "properties": {"code": {"type": "string"}}},
                "TranscriptRequest": {"type": "object", "properties": {"email": {"type": "string", "format": "email"}}},
                "Act": {"type": "object", "additionalProperties": false, "properties": {
                    "confirm_live": {"type": "boolean", "description": "required true on a live question (B1)"},
                    "body": {"type": "string", "description": "answer, note, message-librarian"},
                    "email": {"type": "string", "format": "email", "description": "answer: send here instead of the patron's address"},
                    "to": {"type": "integer", "description": "assign: staff id (absent: unassign)"},
                    "library": {"type": "string", "description": "refer, code=referred: the receiving library's slug"},
                    "code": {"type": "string", "description": "code: the resolution code's key"}}}
            }
        }
    })
}

fn with_params(mut op: Value, params: Value) -> Value {
    op["parameters"] = params;
    op
}

/// The question list's query parameters (a function of its own: one `json!`
/// this size would exceed the macro recursion limit).
fn list_params() -> Value {
    let mut p = vec![
        json!({"name": "view", "in": "query", "schema": {"type": "string", "enum": ["all", "live", "my_new", "my_active", "new", "unassigned", "active", "answered", "closed", "pending", "referred", "follow_up"]}}),
        json!({"name": "status", "in": "query", "schema": {"type": "string", "enum": ["new", "pending", "answered", "closed"]}}),
        json!({"name": "code", "in": "query", "description": "a resolution code's key of my cooperative (422 otherwise; view, status and code may not be empty)", "schema": {"type": "string", "minLength": 1}}),
        json!({"name": "from", "in": "query", "description": "created at or after (ms since epoch)", "schema": {"type": "integer"}}),
        json!({"name": "to", "in": "query", "description": "created before (ms since epoch)", "schema": {"type": "integer"}}),
    ];
    p.extend([
        json!({"name": "librarian", "in": "query", "description": "chatting librarian's id", "schema": {"type": "integer"}}),
        json!({"name": "library", "in": "query", "description": "owning library's slug", "schema": {"type": "string"}}),
        json!({"name": "q", "in": "query", "description": "words in the question or its transcript", "schema": {"type": "string", "maxLength": 200}}),
        json!({"name": "before", "in": "query", "description": "paging: questions older than this id", "schema": {"type": "integer"}}),
        json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}}),
    ]);
    Value::Array(p)
}
