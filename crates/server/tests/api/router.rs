//! The HTTP surface: health, readiness, the OpenAPI document, pages.

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_readiness_and_pages_answer() {
    let app = spawn_app().await;
    let http = reqwest::Client::new();
    for (path, status) in [
        ("/healthz", 200),
        ("/readyz", 200),
        ("/", 200),
        ("/desk", 200),
        ("/ask/riverside-main", 200),
        ("/assets/ask.js", 200),
        ("/nope", 404),
    ] {
        assert_eq!(http.get(app.url(path)).send().await.unwrap().status().as_u16(), status, "{path}");
    }
    let page = http.get(app.url("/ask/riverside-main")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("default-src 'self'"), "no third-party scripts in patron pages");
}

#[tokio::test]
async fn the_openapi_document_describes_every_api_route() {
    let app = spawn_app().await;
    let doc: serde_json::Value = reqwest::get(app.url("/api/openapi.json")).await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    let paths = doc["paths"].as_object().unwrap();
    // Every documented path is routed: none answers with the router's 404 page.
    let http = reqwest::Client::new();
    for (path, ops) in paths {
        let concrete = path
            .replace("{id}", "1")
            .replace("{slug}", "riverside-main")
            .replace("{action}", "close")
            .replace("{peer}", "1");
        for method in ops.as_object().unwrap().keys() {
            let req = match method.as_str() {
                "get" => http.get(app.url(&concrete)),
                "post" => http.post(app.url(&concrete)),
                "put" => http.put(app.url(&concrete)),
                "delete" => http.delete(app.url(&concrete)),
                other => panic!("unexpected method {other}"),
            };
            let res = req.send().await.unwrap();
            let body = res.text().await.unwrap();
            assert!(!body.contains("no such page"), "{method} {path} is routed");
        }
    }
    for expected in [
        "/api/login",
        "/api/libraries/{slug}/chats",
        "/api/sessions/{id}/accept",
        "/api/sessions/{id}/code",
        "/api/questions/{id}",
        "/api/ws",
    ] {
        assert!(paths.contains_key(expected), "{expected} is documented");
    }
}
