//! A page on another site acting with a signed-in librarian's cookie: a
//! WebSocket upgrade (which would read her notes and write as her) and
//! `text/plain` "simple" POSTs (which need no CORS preflight) that would
//! e-mail a question to the attacker, end a chat or sign her out. All are
//! refused and change nothing; her own pages go on working.

use crate::harness::*;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn another_site_cannot_act_with_a_librarians_cookie() {
    let server = Server::start("", &[]).await;
    let cookie = sign_in_cookie(&server, "ann").await;
    let ann = reqwest::Client::new();
    let with_cookie = |r: reqwest::RequestBuilder| r.header("cookie", &cookie);
    let (status, _) =
        post(&reqwest::Client::new(), server.url("/api/me/availability"), json!({"availability": "on_duty"})).await;
    assert_eq!(status, 401, "no cookie, nobody");
    let r = with_cookie(ann.post(server.url("/api/me/availability")))
        .json(&json!({"availability": "on_duty"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (session, _) = start_chat(&server, "riverside-main", "Census maps?").await;
    let r = with_cookie(ann.post(server.url(&format!("/api/sessions/{session}/accept")))).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = with_cookie(ann.get(server.url("/api/questions"))).send().await.unwrap();
    let list: Vec<Value> = r.json().await.unwrap();
    let question = list.iter().find(|q| q["session"] == session).expect("the chat's question")["id"].as_i64().unwrap();
    let timeline = || async {
        let r = with_cookie(ann.get(server.url(&format!("/api/questions/{question}")))).send().await.unwrap();
        r.json::<Value>().await.unwrap()["timeline"].as_array().unwrap().len()
    };
    let before = timeline().await;

    // The cross-site WebSocket upgrade, with her cookie: refused.
    let mut req = server.ws_url().into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    req.headers_mut().insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 403),
        other => panic!("a cross-site upgrade must be refused with 403, got {other:?}"),
    }

    // text/plain POSTs from another site: answer by e-mail to the
    // attacker, end the chat, sign out. Refused, whether the browser says
    // so by Origin or by Sec-Fetch-Site alone.
    let attacks = [
        (
            format!("/api/questions/{question}/answer"),
            r#"{"body":"x","email":"attacker@evil.example","confirm_live":true}"#,
        ),
        (format!("/api/sessions/{session}/end"), ""),
        ("/api/logout".to_owned(), ""),
    ];
    for (path, body) in &attacks {
        for (header, value) in [("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")] {
            let r = with_cookie(ann.post(server.url(path)))
                .header(header, value)
                .header("content-type", "text/plain")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{path} with {header}: {value}");
        }
    }
    // And a text/plain body is refused even without those headers (415):
    // refdesk reads JSON only.
    let (path, body) = &attacks[0];
    let r =
        with_cookie(ann.post(server.url(path))).header("content-type", "text/plain").body(*body).send().await.unwrap();
    assert_eq!(r.status(), 415);

    // Nothing changed: no e-mail, the chat goes on, she is signed in.
    assert_eq!(timeline().await, before, "the question's timeline is unchanged");
    assert!(!server.data_path().join("mail").exists(), "nothing was mailed");
    let r = with_cookie(ann.get(server.url("/api/me"))).send().await.unwrap();
    assert_eq!(r.status(), 200, "still signed in");
    let mut ws = staff_socket(&server, &cookie).await;
    send(&mut ws, json!({"type": "send", "session": session, "body": "Still here", "client_id": "s1"})).await;
    let ack = next_of(&mut ws, "ack", |v| v["client_id"] == "s1").await;
    assert_eq!(ack["duplicate"], false, "the chat goes on: {ack}");
}
