//! The HTTP surface: health, readiness, the OpenAPI document, pages.

use crate::helpers::spawn_app;
use serde_json::Value;
use std::collections::BTreeSet;

#[tokio::test]
async fn health_readiness_and_pages_answer() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    for (path, status) in [
        ("/healthz", 200),
        ("/api/me", 401),
        ("/assets/..%2f..%2fetc%2fpasswd", 404),
        ("/readyz", 200),
        ("/", 200),
        ("/desk", 200),
        ("/desk/reports", 200),
        ("/assets/reports.js", 200),
        ("/ask/riverside-main", 200),
        ("/ask/riverside-mian", 404),
        ("/assets/ask.js", 200),
        ("/nope", 404),
    ] {
        let res = http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{path}");
        // No answer is sniffed into another type than it says, a 404's
        // text and a refusal's JSON among them.
        assert_eq!(res.headers().get("x-content-type-options").map(|v| v.to_str().unwrap()), Some("nosniff"), "{path}");
    }
    // A page's address with a slash at its end is sent on to the one
    // without (its query kept); nothing becomes a link to another site.
    let direct = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (path, to) in [
        ("/ask/riverside-main/", Some("/ask/riverside-main")),
        ("/desk//", Some("/desk")),
        ("/desk/questions/?status=open", Some("/desk/questions?status=open")),
        ("//elsewhere.example/", None),
        ("/.//elsewhere.example/", None),
        ("/%5Celsewhere.example/", None),
        ("/api/me/", None),
        ("/", None),
    ] {
        let res = direct.get(app.url(path)).send().await.unwrap();
        let location = res.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
        match to {
            Some(to) => assert_eq!((res.status().as_u16(), location.as_deref()), (308, Some(to)), "{path}"),
            None => assert!(location.is_none() && res.status() != 308, "{path}: {location:?}"),
        }
    }
    let res = http.get(app.url("/ask/riverside-main/")).send().await.unwrap();
    assert_eq!(res.status(), 200, "followed, the chat page");
    assert_eq!(direct.post(app.url("/desk/")).send().await.unwrap().status(), 404, "only a page is sent on");
    let wrong = http.delete(app.url("/healthz")).send().await.unwrap();
    assert_eq!(
        (wrong.status().as_u16(), &wrong.headers()["x-content-type-options"]),
        (405, &"nosniff".parse::<reqwest::header::HeaderValue>().unwrap())
    );
    let page = http.get(app.url("/ask/riverside-main")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'self'"), "no third-party scripts in patron pages");
    // A mistyped library gets the chat page all the same, which says so.
    let typo = http.get(app.url("/ask/riverside-mian")).send().await.unwrap();
    assert_eq!(typo.headers()["content-security-policy"].to_str().unwrap(), csp);
    assert!(typo.text().await.unwrap().contains("ask.js"), "the page that says the library is not found");
}

/// The router's own table of paths. axum keeps no public list of its
/// routes; its `Debug` output shows the table the router matches requests
/// against (`Node { paths: {RouteId(0): "/healthz", …} }`), before the
/// fallback's. This walks that table, not a list kept beside it.
fn routed_paths(router: &axum::Router) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    let table = debug.split("fallback_router").next().unwrap_or("");
    let table = table.split("Node { paths: {").nth(1).unwrap_or("");
    table
        .split("RouteId(")
        .skip(1)
        .filter_map(|entry| entry.split_once(": \"").map(|(_, rest)| rest.split('"').next().unwrap_or("").to_owned()))
        .collect()
}

/// `/api/sessions/{id}` with every parameter filled in.
fn concrete(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some((before, after)) = rest.split_once('{') {
        out.push_str(before);
        out.push('1');
        rest = after.split_once('}').map_or("", |(_, r)| r);
    }
    out + rest
}

#[tokio::test]
async fn the_router_serves_exactly_the_operations_of_the_openapi_document() {
    // Arrange: the document the server serves, and the router it serves with.
    let app = spawn_app().await;
    let doc: Value = reqwest::get(app.url("/api/openapi.json")).await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), path.clone())))
        .collect();
    let paths = routed_paths(&refdesk_server::app(app.state.clone()));
    assert!(paths.contains("/healthz") && paths.len() > 40, "the router's table was read: {paths:?}");

    // Act: ask each routed path with a method no route takes; the router
    // answers 405 and names, in `Allow`, every method it serves there.
    let http = reqwest::Client::new();
    let mut served = BTreeSet::new();
    for path in &paths {
        let res = http.request(reqwest::Method::OPTIONS, app.url(&concrete(path))).send().await.unwrap();
        assert_eq!(res.status(), 405, "OPTIONS {path}");
        let allow = res.headers()["allow"].to_str().unwrap().to_owned();
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "method_not_allowed", "{path}: the API's error shape");
        // HEAD comes with GET (HTTP semantics); it is not an operation of its own.
        for method in allow.split(',').map(str::trim).filter(|m| *m != "HEAD") {
            served.insert((method.to_owned(), path.clone()));
        }
    }

    // Assert: the same operations, both ways.
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(undocumented.is_empty(), "served but not in the OpenAPI document: {undocumented:?}");
    assert!(unserved.is_empty(), "in the OpenAPI document but not served: {unserved:?}");
}

#[tokio::test]
async fn the_openapi_document_gives_real_schemas_arrays_text_and_closed_bodies() {
    let app = spawn_app().await;
    let doc: Value = reqwest::get(app.url("/api/openapi.json")).await.unwrap().json().await.unwrap();
    let op = |method: &str, path: &str| doc["paths"][path][method].clone();
    let schema_of = |v: &Value| -> Value {
        match v["$ref"].as_str() {
            Some(r) => doc["components"]["schemas"][r.rsplit('/').next().unwrap()].clone(),
            None => v.clone(),
        }
    };
    // Lists are arrays of a described item.
    for path in ["/api/queue", "/api/sessions", "/api/codes", "/api/questions", "/api/blocks", "/api/im", "/api/staff"]
    {
        let s = &op("get", path)["responses"]["200"]["content"]["application/json"]["schema"];
        assert_eq!(s["type"], "array", "{path}: {s}");
        assert!(s["items"]["$ref"].is_string(), "{path}: its items are described: {s}");
    }
    // A record is an object with its fields, not `{"type": "object"}`.
    let session = schema_of(
        &op("post", "/api/sessions/{id}/accept")["responses"]["200"]["content"]["application/json"]["schema"],
    );
    for field in ["ctx", "state", "queue", "library_name", "last_message_at"] {
        assert!(session["properties"][field].is_object(), "SessionView.{field}: {session}");
    }
    // Health and readiness answer text.
    for path in ["/healthz", "/readyz"] {
        assert!(op("get", path)["responses"]["200"]["content"]["text/plain"].is_object(), "{path}");
    }
    assert!(op("get", "/readyz")["responses"]["503"]["content"]["text/plain"].is_object());
    // Request bodies say they refuse unknown fields.
    for (method, path) in [("post", "/api/login"), ("post", "/api/sessions/{id}/messages"), ("put", "/api/codes/{key}")]
    {
        let body = schema_of(&op(method, path)["requestBody"]["content"]["application/json"]["schema"]);
        assert_eq!(body["additionalProperties"], false, "{method} {path}: {body}");
    }
    // Errors have the error body and the statuses the edge and the handler answer.
    let send = op("post", "/api/sessions/{id}/messages");
    for status in ["400", "401", "403", "404", "409", "413", "415", "422"] {
        let r = &send["responses"][status]["content"]["application/json"]["schema"]["$ref"];
        assert_eq!(r, "#/components/schemas/ErrorBody", "POST /api/sessions/{{id}}/messages {status}");
    }
    assert!(op("post", "/api/login")["responses"]["429"].is_object(), "the sign-in is rate limited");
    assert!(op("get", "/api/me")["security"].is_array(), "staff operations name the sign-in they need");
    // Every schema a reference names is in the document.
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for r in refs {
        let name =
            r.strip_prefix("#/components/schemas/").unwrap_or_else(|| panic!("a reference outside the schemas: {r}"));
        assert!(doc["components"]["schemas"][name].is_object(), "{r} is referenced but not in the document");
    }
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                match (k.as_str(), x) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// The `frame-ancestors` a library's chat page is served with.
async fn framed_by(app: &crate::helpers::TestApp, slug: &str) -> String {
    let page = reqwest::get(app.url(&format!("/ask/{slug}"))).await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'self'") && csp.contains("form-action 'none'"), "the rest stays: {csp}");
    let directive = csp.split(';').map(str::trim).find(|d| d.starts_with("frame-ancestors ")).unwrap();
    directive.trim_start_matches("frame-ancestors ").to_owned()
}

/// Whether the status says a page of `origin` may frame the chat (the
/// widget opens the chat in a tab of its own where it may not).
async fn framed_here(app: &crate::helpers::TestApp, origin: Option<&str>) -> bool {
    let mut ask = reqwest::Client::new().get(app.url("/api/libraries/riverside-main/status"));
    if let Some(origin) = origin {
        ask = ask.header("Origin", origin);
    }
    let res = ask.send().await.unwrap();
    assert_eq!(res.headers()["vary"], "Origin", "the answer depends on the page");
    res.json::<serde_json::Value>().await.unwrap()["framed_here"].as_bool().unwrap()
}

/// A library's admins name the sites that may show its chat (its widget's
/// pages); browsers then refuse to show it in a frame anywhere else. None
/// named: any site, as before. A refused or bad list changes nothing.
#[tokio::test]
async fn a_library_names_the_sites_that_may_show_its_chat_and_no_other_may() {
    let app = spawn_app().await;
    let url = "/api/libraries/riverside-main/embedding";
    let (ann, carla) = (app.staff("ann").await, app.staff("carla").await);
    assert_eq!(carla.get(url).await, (200, serde_json::json!({"sites": []})));
    assert_eq!(framed_by(&app, "riverside-main").await, "*", "none named: any site");
    assert!(framed_here(&app, Some("https://elsewhere.example.net")).await);

    // Refused: a librarian; an admin of another library; a list that is
    // not one of origins, or too long. Nothing changes.
    let mine = serde_json::json!({"sites": ["https://www.riverside.example.org"]});
    assert_eq!(ann.get(url).await.0, 403);
    assert_eq!(ann.put(url, mine.clone()).await.0, 403);
    assert_eq!(carla.put("/api/libraries/riverside-law/embedding", mine.clone()).await.0, 403);
    assert_eq!(carla.put("/api/libraries/no-such-library/embedding", mine.clone()).await.0, 404);
    for bad in [
        serde_json::json!({"sites": ["https://www.riverside.example.org; script-src *"]}),
        serde_json::json!({"sites": ["https://a.example.org https://evil.example"]}),
        serde_json::json!({"sites": ["*"]}),
        serde_json::json!({"sites": (0..21).map(|i| format!("https://s{i}.example.org")).collect::<Vec<_>>()}),
    ] {
        let (status, why) = carla.put(url, bad).await;
        assert_eq!((status, why["error"]["field"].as_str()), (422, Some("sites")), "{why}");
    }
    let (status, why) = carla.put(url, serde_json::json!({"sites": "https://a.org"})).await;
    assert_eq!(status, 422, "{why}");
    assert_eq!(carla.get(url).await.1["sites"], serde_json::json!([]));
    assert_eq!(framed_by(&app, "riverside-main").await, "*");

    // Named: written back in one spelling; the page says them at once.
    let (status, set) = carla
        .put(url, serde_json::json!({"sites": [" HTTPS://Www.Riverside.example.org/ ", "http://127.0.0.1:8080", "https://www.riverside.example.org"]}))
        .await;
    assert_eq!(status, 200, "{set}");
    assert_eq!(set, serde_json::json!({"sites": ["https://www.riverside.example.org", "http://127.0.0.1:8080"]}));
    assert_eq!(carla.get(url).await.1, set);
    assert_eq!(
        framed_by(&app, "riverside-main").await,
        "'self' https://www.riverside.example.org http://127.0.0.1:8080"
    );
    // The widget is told whether its page may frame the chat, as the
    // browser would match it.
    assert!(framed_here(&app, Some("https://www.riverside.example.org")).await);
    assert!(framed_here(&app, Some("http://127.0.0.1:8080")).await);
    assert!(!framed_here(&app, Some("https://elsewhere.example.net")).await);
    assert!(!framed_here(&app, Some("http://127.0.0.1:8081")).await);
    assert!(!framed_here(&app, Some("null")).await);
    // An Origin that is not text names no site.
    for raw in [&b"https://evil.example\x80"[..], "https://\u{e9}vil.example".as_bytes()] {
        let res = reqwest::Client::new()
            .get(app.url("/api/libraries/riverside-main/status"))
            .header("Origin", reqwest::header::HeaderValue::from_bytes(raw).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(res.json::<serde_json::Value>().await.unwrap()["framed_here"], false, "{raw:?}");
    }
    assert!(framed_here(&app, None).await, "no Origin: a page of refdesk's own");
    // Another library's page is its own affair; a page that names no
    // library may be shown anywhere (a mistyped snippet says so).
    assert_eq!(framed_by(&app, "lakeside-public").await, "*");
    assert_eq!(framed_by(&app, "riverside-mian").await, "*");
    // Its patrons' entry point works as before.
    app.start_chat("riverside-main", "still open to patrons").await;

    // None again: any site.
    assert_eq!(carla.put(url, serde_json::json!({"sites": []})).await, (200, serde_json::json!({"sites": []})));
    assert_eq!(framed_by(&app, "riverside-main").await, "*");
    assert!(framed_here(&app, Some("https://elsewhere.example.net")).await);
}
