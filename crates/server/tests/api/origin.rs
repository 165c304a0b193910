//! A page on another origin cannot act with a librarian's cookie: requests
//! that change something and WebSocket upgrades must come from refdesk's
//! own pages (`Origin`, `Sec-Fetch-Site`); with a public URL, from that
//! origin, and cookies are `Secure` when it is https. The widget's status is
//! readable from any site.

use crate::helpers::{spawn_app, spawn_app_with};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn another_origin_cannot_act_with_a_librarians_cookie() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat("riverside-main", "Where are the maps?").await;
    let end = app.url(&format!("/api/sessions/{}/accept", patron.session));
    let ours = format!("http://{}", app.addr);
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "http://other.127.0.0.1.nip.io"),
        ("origin", "null"),
        ("sec-fetch-site", "same-site"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let res = ann.http.post(&end).header(header, value).send().await.unwrap();
        assert_eq!(res.status(), 403, "{header}: {value}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "cross_origin");
        // A text/plain "simple" request, the kind a form on another site sends.
        let res = ann
            .http
            .post(app.url("/api/logout"))
            .header(header, value)
            .header("content-type", "text/plain")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "logout with {header}: {value}");
    }
    // Nor read with it (each read would spend her budget): a page on
    // another host of the same site gets her SameSite=Strict cookie sent.
    for site in ["same-site", "cross-site"] {
        let res = ann.http.get(app.url("/api/questions")).header("sec-fetch-site", site).send().await.unwrap();
        assert_eq!(res.status(), 403, "a read sent by a {site} page");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "cross_origin");
    }
    let ours_read = ann.http.get(app.url("/api/questions")).header("sec-fetch-site", "same-origin").send();
    assert_eq!(ours_read.await.unwrap().status(), 200, "refdesk's own page reads");
    // Nothing was done: the chat still waits, and Ann is still signed in.
    assert_eq!(ann.get("/api/me").await.0, 200);
    let (status, _) = ann.post(&format!("/api/sessions/{}/accept", patron.session), json!(null)).await;
    assert_eq!(status, 200, "the refused accept changed nothing; refdesk's own page (no Origin here) can");

    // The WebSocket upgrade with her cookie from another origin is refused.
    let mut req = format!("ws://{}/api/ws", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("Cookie", ann.cookie.parse().unwrap());
    req.headers_mut().insert("Origin", "https://evil.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err(), "cross-origin upgrade refused");
    // From refdesk's own origin it opens.
    let mut req = format!("ws://{}/api/ws", app.addr).into_client_request().unwrap();
    req.headers_mut().insert("Cookie", ann.cookie.parse().unwrap());
    req.headers_mut().insert("Origin", ours.parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_ok(), "same-origin upgrade opens");
    let res = ann
        .http
        .post(app.url("/api/me/availability"))
        .header("origin", &ours)
        .json(&json!({"availability": "on_duty"}));
    assert_eq!(res.send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn with_a_public_url_only_its_origin_acts_and_cookies_are_secure() {
    let app = spawn_app_with(|c| c.public_url = Some("https://ask.coop.example.org/".into())).await;
    let librarian = refdesk_domain::org::Role::Librarian;
    app.state
        .app
        .add_staff(None, "riverside-main", "lena", "Lena Ledger", librarian, "otter-long-secret-7")
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let login = |origin: &'static str| {
        http.post(app.url("/api/login"))
            .header("origin", origin)
            .json(&json!({"username": "lena", "password": "otter-long-secret-7"}))
            .send()
    };
    // A deployed service (it has a public URL) takes no demo sign-in.
    let demo = http
        .post(app.url("/api/login"))
        .header("origin", "https://ask.coop.example.org")
        .json(&json!({"username": "ann", "password": "refdesk-demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(demo.status(), 403);
    assert_eq!(login("https://library.example.edu").await.unwrap().status(), 403);
    let wrong = login("http://ask.coop.example.org").await.unwrap();
    assert_eq!(wrong.status(), 403, "the scheme counts");
    let said: serde_json::Value = wrong.json().await.unwrap();
    let said = said["error"]["message"].as_str().unwrap().to_owned();
    assert!(said.ends_with("open refdesk at https://ask.coop.example.org"), "where to sign in: {said}");
    let ok = login("https://ask.coop.example.org").await.unwrap();
    assert_eq!(ok.status(), 200);
    let cookie = ok.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
    // Over https the cookie is a __Host- one, which a sibling host of the
    // domain cannot set; a plain one it planted is not read.
    assert!(cookie.starts_with("__Host-refdesk_session=") && cookie.contains("; Path=/;"), "{cookie}");
    assert!(!cookie.to_lowercase().contains("domain="), "{cookie}");
    let device = ok.headers().get_all("set-cookie").iter().nth(1).map(|c| c.to_str().unwrap().to_owned());
    let device = device.expect("the known-browser cookie");
    assert!(device.starts_with("__Host-refdesk_device=") && device.contains("; Secure"), "{device}");
    assert!(!device.contains("lena"), "{device}");
    let token = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
    let me = |cookie: String| http.get(app.url("/api/me")).header("cookie", cookie).send();
    assert_eq!(me(format!("__Host-refdesk_session={token}")).await.unwrap().status(), 200);
    assert_eq!(me(format!("refdesk_session={token}")).await.unwrap().status(), 401, "the plain name is not read");
    let planted = me(format!("refdesk_session=planted; __Host-refdesk_session={token}")).await.unwrap();
    let who: serde_json::Value = planted.json().await.unwrap();
    assert_eq!(who["username"], "lena", "the planted cookie, sent first, is not the one read");
    // Signing out clears it by its name.
    let out = http
        .post(app.url("/api/logout"))
        .header("origin", "https://ask.coop.example.org")
        .header("cookie", format!("__Host-refdesk_session={token}"))
        .send()
        .await
        .unwrap();
    let cleared = out.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("__Host-refdesk_session=;") && cleared.contains("; Secure"), "{cleared}");
    let service: serde_json::Value = http.get(app.url("/api/service")).send().await.unwrap().json().await.unwrap();
    assert_eq!(service["public_url"], "https://ask.coop.example.org");
    // The widget's button on the library's own site reads the status.
    let status = http.get(app.url("/api/libraries/riverside-main/status")).send().await.unwrap();
    assert_eq!(status.headers()["access-control-allow-origin"], "*");
    // A mistyped library in its snippet: a 404 the site's page can read.
    let status = http.get(app.url("/api/libraries/no-such-library/status")).send().await.unwrap();
    assert_eq!(status.status(), 404);
    assert_eq!(status.headers()["access-control-allow-origin"], "*");
    // A name that is not text names no library either: the page says so.
    let page = http.get(app.url("/ask/%ff%fe")).send().await.unwrap();
    assert_eq!(page.status(), 404);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
}

#[tokio::test]
async fn a_bad_public_url_is_refused_at_start() {
    for bad in
        ["ask.example.org", "https://ask.example.org/chat", "ftp://ask.example.org", "https://u:p@ask.example.org"]
    {
        let config = refdesk_server::Config { public_url: Some(bad.into()), ..Default::default() };
        let err = config.validate().expect_err(bad).to_string();
        assert!(err.contains("public_url"), "{bad}: {err}");
    }
}
