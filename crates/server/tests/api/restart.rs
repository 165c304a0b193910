//! I2 in practice: what was acknowledged survives a restart of the server.

use crate::helpers::{spawn_app, start};

#[tokio::test]
async fn a_server_restart_keeps_everything() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let patron = app.start_chat("riverside-main", "Before the restart").await;
    ann.accept(patron.session).await;
    let mut ws = patron.socket().await;
    ws.resume(None, 0).await;
    let ack = ws.say(None, "message", "acknowledged line", "p1").await;
    assert_eq!(ack["seq"], 3);
    let mut ann_ws = ann.socket().await;
    ann_ws.resume(Some(patron.session), 0).await;
    ann_ws.say(Some(patron.session), "note", "a note", "a1").await;
    ws.close().await;
    ann_ws.close().await;
    let cookie = ann.cookie.clone();

    let dir = app.stop().await;
    let app = start(dir, |_| {}).await;
    let mut patron = patron;
    patron.addr = app.addr;

    // The patron's token, the staff sign-in, the messages and the question are all there.
    let mut ws = patron.socket().await;
    let all = ws.resume(None, 0).await;
    let bodies: Vec<&str> = all.iter().map(|e| e["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["Before the restart", "Ann Archer (librarian) has joined the chat", "acknowledged line"]);
    let http = reqwest::Client::new();
    let res = http.get(app.url("/api/questions")).header("Cookie", &cookie).send().await.unwrap();
    assert_eq!(res.status(), 200, "the sign-in survived");
    let list: serde_json::Value = res.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["live"], true);
    // Sequence numbers continue where they were.
    let ack = ws.say(None, "message", "after the restart", "p2").await;
    assert_eq!(ack["seq"], 5);
    let stored = app.stored(patron.session).await;
    assert_eq!(stored.len(), 5);
    assert_eq!(stored.iter().filter(|m| m.body == "a note").count(), 1);
}
