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
    // The build of the pages, named in every `hello` (a page hearing
    // another one reloads): opaque, the same for patrons and staff.
    let release = ws.hello["release"].as_str().expect("hello names the release").to_owned();
    assert!(release.len() == 16 && release.bytes().all(|b| b.is_ascii_hexdigit()), "{release}");
    assert_eq!(ann_ws.hello["release"], release.as_str());
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
    // The same build after a restart: an open page is not told to reload.
    assert_eq!(ws.hello["release"], release.as_str());
    let all = ws.resume(None, 0).await;
    let bodies: Vec<&str> = all.iter().map(|e| e["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["Before the restart", "Ann Archer (librarian) has joined the chat", "acknowledged line"]);
    let http = reqwest::Client::new();
    let res = http.get(app.url("/api/questions")).header("Cookie", &cookie).send().await.unwrap();
    assert_eq!(res.status(), 200, "the sign-in survived");
    let list: serde_json::Value = res.json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["live"], true);
    // Sequence numbers continue where they were: the patron's own (the
    // note, the session's line 4, is none of theirs), and the session's.
    let ack = ws.say(None, "message", "after the restart", "p2").await;
    assert_eq!(ack["seq"], 4);
    let stored = app.stored(patron.session).await;
    assert_eq!(stored.len(), 5);
    assert_eq!((stored[4].seq, stored[4].patron_seq), (5, 4));
    assert_eq!(stored.iter().filter(|m| m.body == "a note").count(), 1);
}

/// A server going away says goodbye properly to a client that is still
/// sending (a patron typing): its close frame (1001), then it reads what
/// the client sent until the client's close comes back (the client here
/// answers it, as browsers do), and only then ends the connection. Closed
/// with the client's frames still unread, the connection would be reset,
/// and some clients lose the close frame and its code with the reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_going_away_ends_a_busy_socket_with_its_close_frame_and_no_reset() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Error, Message as Ws};
    let app = spawn_app().await;
    let patron = app.start_chat("riverside-main", "Still typing when it restarts").await;
    let url = format!("ws://{}/api/ws", patron.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let auth = serde_json::json!({"type": "auth", "token": patron.token}).to_string();
    ws.send(Ws::text(auth)).await.unwrap();
    let first = ws.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("\"hello\""), "{first:?}");
    // The patron types on: frames are on their way in when the server goes.
    let typing = Ws::text(serde_json::json!({"type": "typing", "on": true}).to_string());
    for _ in 0..5_000 {
        ws.feed(typing.clone()).await.unwrap();
    }
    ws.flush().await.unwrap();
    let stopping = tokio::spawn(app.stop());
    let (mut code, mut ended) = (None, None);
    while let Some(frame) = ws.next().await {
        match frame {
            Ok(Ws::Close(Some(f))) => code = Some(u16::from(f.code)),
            Ok(_) => {}
            Err(e) => {
                ended = Some(e);
                break;
            }
        }
    }
    stopping.await.unwrap();
    assert_eq!(code, Some(1001), "the close frame arrives, with its code");
    assert!(
        matches!(ended, None | Some(Error::ConnectionClosed | Error::AlreadyClosed)),
        "the connection ends cleanly, not reset: {ended:?}"
    );
}
