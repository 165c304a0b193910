//! What one visitor on the open internet can make the server hold is
//! bounded: sockets per chat token, and a client that stops reading is let
//! go (with everything that was waiting to be sent to it).

use crate::helpers::{spawn_app, spawn_app_with, TestApp};
use futures_util::{SinkExt, StreamExt};
use refdesk_domain::chat::MessageKind;
use refdesk_domain::org::Role;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as Ws;

type Raw = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A patron socket, authenticated, its `hello` (or refusal) read.
async fn patron_socket(addr: std::net::SocketAddr, token: &str) -> (Raw, Value) {
    patron_socket_from(addr, token, [127, 0, 0, 1]).await
}

/// [`patron_socket`] from the loopback address `from` (another network).
async fn patron_socket_from(addr: std::net::SocketAddr, token: &str, from: [u8; 4]) -> (Raw, Value) {
    let tcp = tokio::net::TcpSocket::new_v4().unwrap();
    tcp.bind((std::net::Ipv4Addr::from(from), 0).into()).unwrap();
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(tcp.connect(addr).await.unwrap());
    let (ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/api/ws"), stream).await.unwrap();
    authenticated(ws, token).await
}

/// Sends the `auth` frame with `token`; the socket and the first answer.
async fn authenticated(mut ws: Raw, token: &str) -> (Raw, Value) {
    ws.send(Ws::text(json!({"type": "auth", "token": token}).to_string())).await.unwrap();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("an answer").unwrap().unwrap() {
            Ws::Text(t) => return (ws, serde_json::from_str(t.as_str()).unwrap()),
            _ => continue,
        }
    }
}

#[tokio::test]
async fn one_chat_token_opens_a_few_sockets_not_hundreds() {
    let app = spawn_app().await;
    let chat = app.start_chat("riverside-main", "many tabs").await;
    let mut open = Vec::new();
    for _ in 0..4 {
        let (ws, hello) = patron_socket(app.addr, &chat.token).await;
        assert_eq!(hello["type"], "hello");
        open.push(ws);
    }
    let (_, refused) = patron_socket(app.addr, &chat.token).await;
    assert_eq!((refused["type"].as_str(), refused["code"].as_str()), (Some("error"), Some("too_many_sockets")));
    // One closes: there is room again.
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, answer) = patron_socket(app.addr, &chat.token).await;
        if answer["type"] == "hello" {
            break;
        }
        assert!(Instant::now() < deadline, "the closed socket's place was never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_let_go() {
    // Past the patron's limits on lines: the chat is filled as a long
    // conversation would be.
    let app = spawn_app_with(|c| {
        c.limits.patron_lines_before_accept = 10_000;
        c.limits.patron_chars_before_accept = 100_000_000;
        c.limits.patron_chars_per_chat = 100_000_000;
        c.limits.max_chat_lines = 10_000;
    })
    .await;
    let chat = app.start_chat("riverside-main", "a long chat").await;
    // About 20 MB of lines: more than the kernel's socket buffers hold.
    let rec = app.state.app.patron_session(&chat.token).await.unwrap();
    let line = "x".repeat(4000);
    for _ in 0..5000 {
        app.state.app.patron_send(&rec, MessageKind::Message, &line, None).await.unwrap();
    }
    let (mut ws, hello) = patron_socket(app.addr, &chat.token).await;
    assert_eq!(hello["type"], "hello");
    ws.send(Ws::text(json!({"type": "resume", "after": 0}).to_string())).await.unwrap();
    // Read nothing for longer than a frame may take to go out (10 s)…
    tokio::time::sleep(Duration::from_secs(15)).await;
    // …then what was buffered arrives, and the connection ends short of the
    // replay: the server gave up on this reader and let go of it.
    let mut synced = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline.into(), ws.next()).await {
        if let Ws::Text(t) = msg {
            synced |= t.as_str().contains("\"synced\"");
        }
    }
    assert!(Instant::now() < deadline, "the connection was still open after the reader stopped for 15 s");
    assert!(!synced, "the whole replay went out: the server waited for the reader");
}

/// Resumes `ws` from the start: the lines replayed, and how long until
/// `synced`.
async fn replay(ws: &mut Raw) -> (usize, Duration) {
    let start = Instant::now();
    ws.send(Ws::text(json!({"type": "resume", "after": 0}).to_string())).await.unwrap();
    let mut lines = 0;
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(20), ws.next()).await.expect("the replay ends").unwrap();
        let Ws::Text(t) = msg.unwrap() else { continue };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        match v["type"].as_str() {
            Some("event") => lines += 1,
            Some("synced") => return (lines, start.elapsed()),
            Some("error") => panic!("the replay was refused: {v}"),
            _ => {}
        }
    }
}

#[tokio::test]
async fn a_long_replay_spends_its_chats_frame_budget_a_frame_a_page_on_every_socket() {
    // A replay is many reads for one frame: opening socket after socket to
    // replay a long chat from the start (a socket's first resume is not
    // charged to its network's reads) kept the shared readers busy.
    let app = spawn_app_with(|c| {
        (c.limits.frames_per_second, c.limits.frame_burst, c.limits.replay_page) = (5, 5, 10);
        c.limits.patron_lines_before_accept = 1_000;
    })
    .await;
    let chat = app.start_chat("riverside-main", "a long chat").await;
    let rec = app.state.app.patron_session(&chat.token).await.unwrap();
    for n in 0..199 {
        app.state.app.patron_send(&rec, MessageKind::Message, &format!("line {n}"), None).await.unwrap();
    }
    // 200 lines, 20 pages: the first page and the burst's four go at once
    // (the resume frame took one), the other fifteen at five a second.
    let (mut first, _) = patron_socket(app.addr, &chat.token).await;
    let (lines, took) = replay(&mut first).await;
    assert_eq!(lines, 200, "the whole chat");
    assert!(took >= Duration::from_secs(2), "15 pages past the burst in {took:?}");
    // Another socket of the chat shares its budget: no fresh burst.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (mut second, _) = patron_socket(app.addr, &chat.token).await;
    let (lines, took) = replay(&mut second).await;
    assert_eq!(lines, 200);
    assert!(took >= Duration::from_secs(2), "the second socket's replay in {took:?}");
}

#[tokio::test]
async fn a_chat_no_librarian_took_emails_no_transcript() {
    let app = spawn_app().await;
    let body = json!({"name": "Mallory", "email": "victim@example.org", "question": "Buy cheap pills at …", "transcript": true});
    let chat = app.start_chat_with("riverside-main", body).await;
    let rec = app.state.app.patron_session(&chat.token).await.unwrap();
    app.state.app.patron_end(&rec).await.unwrap();
    let far = i64::MAX / 2;
    let due = app.state.app.store().due_mail(far, 100).await.unwrap();
    assert!(due.iter().all(|m| m.to != "victim@example.org"), "no transcript for a chat nobody accepted: {due:?}");
    // One a librarian took still gets it.
    let body = json!({"name": "Pat", "email": "pat@example.org", "question": "Maps?", "transcript": true});
    let chat = app.start_chat_with("riverside-main", body).await;
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(chat.session).await.0, 200);
    let rec = app.state.app.patron_session(&chat.token).await.unwrap();
    app.state.app.patron_end(&rec).await.unwrap();
    let due = app.state.app.store().due_mail(far, 100).await.unwrap();
    assert!(due.iter().any(|m| m.to == "pat@example.org"), "the accepted chat's transcript is queued");
}

#[tokio::test]
async fn every_kind_of_frame_counts_against_the_frame_limit() {
    let app = spawn_app().await;
    let chat = app.start_chat("riverside-main", "pings").await;
    let (mut ws, hello) = patron_socket(app.addr, &chat.token).await;
    assert_eq!(hello["type"], "hello");
    // Control and binary frames used to cost nothing: a flood of them now
    // spends the same budget as text frames (a burst of 60 by default).
    for _ in 0..80 {
        ws.send(Ws::Ping(vec![1, 2, 3].into())).await.unwrap();
    }
    for _ in 0..10 {
        ws.send(Ws::Binary(vec![0; 16].into())).await.unwrap();
    }
    ws.send(Ws::text(json!({"type": "ping"}).to_string())).await.unwrap();
    let mut limited = false;
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline.into(), ws.next()).await {
        if let Ws::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["code"] == "rate_limited" {
                limited = true;
                break;
            }
            assert_ne!(v["type"], "pong", "the text ping got through after 90 other frames");
        }
    }
    assert!(limited, "the flood of control and binary frames was not limited");
}

/// A `send` refused by the frame budget is refused with its `client_id`, so
/// that the client knows which of its lines did not go (a desk re-sending
/// its lines at a reconnect puts that one back in its box): every line of a
/// burst is answered once, acknowledged or refused by its id.
#[tokio::test]
async fn a_line_refused_by_the_frame_budget_is_refused_by_its_client_id() {
    let app = spawn_app().await;
    let chat = app.start_chat("riverside-main", "a burst of lines").await;
    let (mut ws, hello) = patron_socket(app.addr, &chat.token).await;
    assert_eq!(hello["type"], "hello");
    for n in 0..90 {
        let line =
            json!({"type": "send", "kind": "message", "client_id": format!("c-{n}"), "body": format!("line {n}")});
        ws.send(Ws::text(line.to_string())).await.unwrap();
    }
    let (mut answered, mut refused) = (std::collections::BTreeMap::new(), 0);
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
        let Ws::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        if let (Some("ack" | "error"), Some(id)) = (v["type"].as_str(), v["client_id"].as_str()) {
            *answered.entry(id.to_owned()).or_insert(0) += 1;
            refused += usize::from(v["code"] == "rate_limited");
        }
    }
    assert!(refused > 0, "the burst of 90 went past the budget");
    let expected: std::collections::BTreeMap<String, i32> = (0..90).map(|n| (format!("c-{n}"), 1)).collect();
    assert_eq!(answered, expected, "every line answered once, by its id");
}

/// An error frame gives back a client id only if it is a valid one: an
/// invalid id (30 KB, controls, a direction override) is refused without
/// being echoed.
#[tokio::test]
async fn an_invalid_client_id_is_refused_without_being_echoed() {
    let app = spawn_app().await;
    let chat = app.start_chat("riverside-main", "odd ids").await;
    let (mut ws, hello) = patron_socket(app.addr, &chat.token).await;
    assert_eq!(hello["type"], "hello");
    for bad in ["x".repeat(30_000), "a\u{202e}b".to_owned(), "nul\u{0}".to_owned(), "a space".to_owned()] {
        let line = json!({"type": "send", "kind": "message", "client_id": bad, "body": "hello"});
        ws.send(Ws::text(line.to_string())).await.unwrap();
        let refused = loop {
            let Some(Ok(Ws::Text(t))) = ws.next().await else { panic!("the socket closed") };
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == "error" {
                break v;
            }
        };
        assert_eq!(refused["code"], "invalid", "{refused}");
        assert!(refused.get("client_id").is_none_or(Value::is_null), "not echoed: {}", refused.to_string().len());
    }
}

/// A text frame that is not UTF-8 closes the socket with 1007 (RFC 6455,
/// 8.1), said in a close frame, not by dropping the connection.
#[tokio::test]
async fn a_text_frame_that_is_not_utf8_is_closed_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let app = spawn_app().await;
    let chat = app.start_chat("riverside-main", "bad bytes").await;
    let (mut ws, hello) = patron_socket(app.addr, &chat.token).await;
    assert_eq!(hello["type"], "hello");
    let frame = Frame::message(vec![b'{', 0xff, 0xfe, b'}'], OpCode::Data(Data::Text), true);
    ws.send(Ws::Frame(frame)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let close = loop {
        match tokio::time::timeout_at(deadline.into(), ws.next()).await {
            Ok(Some(Ok(Ws::Close(close)))) => break close,
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1007));
}

/// What a socket answered to a burst of frames: the frames of the kind
/// asked for, the `rate_limited` errors, and when the last answer of the
/// kind came.
struct Answers {
    answers: usize,
    limited: usize,
    last: Instant,
}

/// The frames of type `kind` and the `rate_limited` errors among what `ws`
/// sends back until it has been quiet for a second.
async fn answers_and_refusals(ws: &mut Raw, kind: &str) -> Answers {
    let mut got = Answers { answers: 0, limited: 0, last: Instant::now() };
    while let Ok(Some(Ok(msg))) = tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
        if let Ws::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == kind {
                (got.answers, got.last) = (got.answers + 1, Instant::now());
            }
            got.limited += usize::from(v["code"] == "rate_limited");
        }
    }
    got
}

/// `synced` frames (replays done) and `rate_limited` errors.
async fn replays_and_refusals(ws: &mut Raw) -> (usize, usize) {
    let got = answers_and_refusals(ws, "synced").await;
    (got.answers, got.limited)
}

/// Sends `n` pings on each socket, then counts the `pong`s and the
/// `rate_limited` errors of them all, and how long after the first ping the
/// last pong came.
async fn ping_each(sockets: &mut [Raw], n: usize) -> (usize, usize, Duration) {
    let start = Instant::now();
    for ws in sockets.iter_mut() {
        for _ in 0..n {
            ws.send(Ws::text(json!({"type": "ping"}).to_string())).await.unwrap();
        }
    }
    let (mut pongs, mut limited, mut last) = (0, 0, start);
    for ws in sockets.iter_mut() {
        let got = answers_and_refusals(ws, "pong").await;
        (pongs, limited, last) = (pongs + got.answers, limited + got.limited, last.max(got.last));
    }
    (pongs, limited, last - start)
}

/// At most what a budget of `burst` frames refilling `rate` a second lets
/// through in `within`, give or take one.
fn within_budget(pongs: usize, (rate, burst): (f64, f64), within: Duration) -> bool {
    pongs as f64 <= burst + rate * within.as_secs_f64() + 1.0
}

#[tokio::test]
async fn a_flood_of_frames_is_read_only_as_fast_as_its_budget_refills() {
    // Each frame past the budget used to be answered at once, as fast as
    // the client sent: a stranger's flood cost the server an error frame
    // for each. Now a refusal stops the reading until the budget refills.
    let app = spawn_app_with(|c| (c.limits.frames_per_second, c.limits.frame_burst) = (50, 10)).await;
    let chat = app.start_chat("riverside-main", "flood").await;
    let (mut ws, hello) = patron_socket(app.addr, &chat.token).await;
    assert_eq!(hello["type"], "hello");
    let start = Instant::now();
    for _ in 0..1000 {
        ws.send(Ws::text(json!({"type": "ping"}).to_string())).await.unwrap();
    }
    let (mut pongs, mut limited) = (0, 0);
    let deadline = start + Duration::from_secs(1);
    while let Ok(Some(Ok(Ws::Text(t)))) = tokio::time::timeout_at(deadline.into(), ws.next()).await {
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        pongs += usize::from(v["type"] == "pong");
        limited += usize::from(v["code"] == "rate_limited");
    }
    assert!(limited >= 1, "the flood was refused");
    assert!(within_budget(pongs, (50.0, 10.0), start.elapsed()), "{pongs} pongs");
    // A refusal for each frame let through at most (not 990 in the second).
    assert!(limited <= pongs + 1, "{limited} refusals for {pongs} frames let through");
    // The socket is still served: what was sent is answered, at the budget's pace.
    let more = answers_and_refusals(&mut ws, "pong").await;
    assert!(more.answers > 0, "the socket was still read");
}

#[tokio::test]
async fn the_patrons_of_one_network_share_a_frame_budget_whatever_the_chats() {
    // Each chat has its own 60-frame burst; a stranger with many chats'
    // tokens (anyone's for the asking) must not multiply it.
    let app = spawn_app_with(|c| c.limits.patron_frames_per_second_per_address = 5).await;
    let mut sockets = Vec::new();
    for i in 0..4 {
        let chat = app.start_chat("riverside-main", &format!("chat {i}")).await;
        let (ws, hello) = patron_socket(app.addr, &chat.token).await;
        assert_eq!(hello["type"], "hello");
        sockets.push(ws);
    }
    let (pongs, limited, took) = ping_each(&mut sockets, 10).await;
    assert_eq!(pongs + limited, 40, "every frame answered");
    // A burst of three seconds' worth (15), and what refills meanwhile.
    assert!(pongs >= 15 && within_budget(pongs, (5.0, 15.0), took), "{pongs} of 40 frames in {took:?}");
    // Another network has its own budget; a chat's own budget still holds.
    let other = app.start_chat("riverside-main", "elsewhere").await;
    let (mut ws, hello) = patron_socket_from(app.addr, &other.token, [127, 0, 0, 2]).await;
    assert_eq!(hello["type"], "hello");
    let (pongs, limited, _) = ping_each(std::slice::from_mut(&mut ws), 10).await;
    assert_eq!((pongs, limited), (10, 0), "another network is not held back");
}

/// A patron socket from behind the trusted proxy at 127.0.0.1, for the
/// client it names in `X-Forwarded-For`.
async fn patron_socket_forwarded(addr: std::net::SocketAddr, token: &str, client: &str) -> (Raw, Value) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/api/ws").into_client_request().unwrap();
    req.headers_mut().insert("X-Forwarded-For", client.parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    authenticated(ws, token).await
}

/// An upgrade from behind the trusted proxy at 127.0.0.1 for `client`,
/// not authenticated: the socket, or the refusal's status and code.
async fn upgrade_forwarded(addr: std::net::SocketAddr, client: &str) -> Result<Raw, (u16, String)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://{addr}/api/ws").into_client_request().unwrap();
    req.headers_mut().insert("X-Forwarded-For", client.parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            let body: Value = serde_json::from_slice(res.body().as_deref().unwrap_or_default()).unwrap();
            Err((res.status().as_u16(), body["error"]["code"].as_str().unwrap_or_default().to_owned()))
        }
        Err(e) => panic!("an upgrade for {client}: {e}"),
    }
}

#[tokio::test]
async fn behind_a_proxy_the_64s_of_one_56_or_48_hold_a_multiple_of_an_addresss_sockets_at_most() {
    // Behind a trusted proxy the connection caps count the proxy alone (and
    // nginx's `limit_conn` whole addresses): a client with a /48 would
    // otherwise hold `sockets_per_address` sockets in each of its 65,536
    // /64s. Its /56 holds 4 times as many, its /48 16 times.
    let app = spawn_app_with(|c| {
        c.limits.sockets_per_address = 2;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let mut open = Vec::new();
    for i in 0..8 {
        open.push(upgrade_forwarded(app.addr, &format!("2001:db8:1:{i:x}::1")).await.expect("room in the /56"));
    }
    let refused = upgrade_forwarded(app.addr, "2001:db8:1:ff::1").await.err();
    assert_eq!(refused, Some((429, "too_many_sockets".to_owned())), "the /56 holds 4 × 2");
    // The /48's other /56s: 32 in all.
    for i in 0..24 {
        let client = format!("2001:db8:1:{:x}::1", 0x100 * (1 + i / 8) + i % 8);
        open.push(upgrade_forwarded(app.addr, &client).await.expect("room in the /48"));
    }
    let refused = upgrade_forwarded(app.addr, "2001:db8:1:ff00::1").await.err();
    assert_eq!(refused, Some((429, "too_many_sockets".to_owned())), "the /48 holds 16 × 2");
    // Another /48 and an IPv4 client have their own; one closed makes room.
    assert!(upgrade_forwarded(app.addr, "2001:db8:2::1").await.is_ok());
    assert!(upgrade_forwarded(app.addr, "192.0.2.7").await.is_ok());
    let mut first = open.remove(0);
    first.close(None).await.unwrap();
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(5);
    while upgrade_forwarded(app.addr, "2001:db8:1:0::2").await.is_err() {
        assert!(Instant::now() < deadline, "no room after a socket closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_patrons_of_many_64s_of_one_56_share_its_frame_budget() {
    // IPv6 hands a subscriber a /56 or a /48 (256 or 65,536 /64s) for
    // nothing: a /64's budget (5 a second, bursts of 15) is backed by its
    // /56's, four times as large (bursts of 60).
    let app = spawn_app_with(|c| {
        c.limits.patron_frames_per_second_per_address = 5;
        c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    let mut sockets = Vec::new();
    for i in 0..12 {
        let chat = app.start_chat("riverside-main", &format!("chat {i}")).await;
        let (ws, hello) = patron_socket_forwarded(app.addr, &chat.token, &format!("2001:db8:1:{i:x}::1")).await;
        assert_eq!(hello["type"], "hello");
        sockets.push(ws);
    }
    let (pongs, limited, took) = ping_each(&mut sockets, 10).await;
    assert_eq!(pongs + limited, 120, "every frame answered");
    // The /56's burst (60), and what refills meanwhile (20 a second); not
    // each /64's own (12 × 10, all of them at once).
    assert!(pongs >= 60 && within_budget(pongs, (20.0, 60.0), took), "{pongs} of 120 frames in {took:?}");
    // Another /56 has its own budget.
    let other = app.start_chat("riverside-main", "elsewhere").await;
    let (mut ws, hello) = patron_socket_forwarded(app.addr, &other.token, "2001:db8:2::1").await;
    assert_eq!(hello["type"], "hello");
    let (pongs, limited, _) = ping_each(std::slice::from_mut(&mut ws), 10).await;
    assert_eq!((pongs, limited), (10, 0), "another network is not held back");
}

#[tokio::test]
async fn a_patrons_replays_spend_their_networks_read_budget_like_the_rest_reads() {
    // A `resume` reads the chat from the store as `GET /api/chat` does; within
    // the frame budget a socket could otherwise ask for it a hundred times
    // a second.
    let app = spawn_app_with(|c| c.limits.patron_reads_per_minute = 10).await;
    let chat = app.start_chat("riverside-main", "again and again").await;
    let (mut ws, hello) = patron_socket(app.addr, &chat.token).await;
    assert_eq!(hello["type"], "hello");
    for _ in 0..15 {
        ws.send(Ws::text(json!({"type": "resume", "after": 0}).to_string())).await.unwrap();
    }
    let (synced, limited) = replays_and_refusals(&mut ws).await;
    assert_eq!(synced + limited, 15, "every resume answered");
    assert!((11..=12).contains(&synced), "the first, then a minute's budget of 10 (and what refilled): {synced}");
    // The same budget as the REST reads of that network.
    assert_eq!(chat.get("/api/chat").await.0, 429, "the network's reads are spent");
    // Another socket of that network still follows its chat: its first
    // resume is not refused, whoever spent the budget.
    let (mut again, _) = patron_socket(app.addr, &chat.token).await;
    again.send(Ws::text(json!({"type": "resume", "after": 0}).to_string())).await.unwrap();
    assert_eq!(replays_and_refusals(&mut again).await, (1, 0), "a socket's first resume is not refused");
    // Another network has its own.
    let other = app.start_chat("riverside-main", "elsewhere").await;
    let (mut ws, _) = patron_socket_from(app.addr, &other.token, [127, 0, 0, 2]).await;
    ws.send(Ws::text(json!({"type": "resume", "after": 0}).to_string())).await.unwrap();
    assert_eq!(replays_and_refusals(&mut ws).await, (1, 0), "another network is not held back");
}

#[tokio::test]
async fn a_queue_of_many_long_questions_still_reaches_the_desk_in_a_frame_it_can_send() {
    // 310 chats of 4,000 four-byte characters: the whole queue would be a
    // 5 MB frame, past the socket's 1 MiB write buffer, and the desk's
    // socket would close at each `queue` (on every reconnection).
    let app = spawn_app_with(|c| c.limits.max_waiting_per_library = 1000).await;
    let long = "😀".repeat(4000);
    let mut first = None;
    for _ in 0..310 {
        let chat = app.start_chat("riverside-main", &long).await;
        first.get_or_insert(chat.session);
    }
    let ann = app.staff("ann").await;
    let (mut ws, queue) = ann.queue_socket().await;
    let waiting = queue["waiting"].as_array().unwrap();
    assert_eq!((waiting.len(), queue["more"].as_u64()), (300, Some(10)), "the first 300 in line, and how many more");
    assert_eq!(waiting[0]["session"], first.unwrap(), "in line: the longest waiting first");
    // The same bound over HTTP, and how many more in a header.
    let res = ann.http.get(format!("{}/api/queue", ann.base())).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["refdesk-more"], "10", "how many more wait");
    let listed: Value = res.json().await.unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!((listed.len(), &listed[0]["session"]), (300, &waiting[0]["session"]), "the first 300 in line");
    let preview = waiting[0]["question"].as_str().unwrap();
    assert_eq!(preview.chars().count(), 301, "300 characters and an ellipsis");
    assert!(preview.ends_with('…') && preview.starts_with("😀😀"));
    // The socket is still up.
    ws.send(json!({"type": "ping"})).await;
    assert_eq!(ws.until(|f| f["type"] == "pong").await.len(), 1);
    // The library's admin sees them all in the monitor's ALL tab: a frame
    // of 500 at most, and how many more.
    let mut admin = app.staff("carla").await.socket().await;
    admin.send(json!({"type": "monitor"})).await;
    let monitor = admin.until(|f| f["type"] == "monitor").await.pop().unwrap();
    assert_eq!((monitor["sessions"].as_array().unwrap().len(), monitor["more"].as_u64()), (310, Some(0)));
    let (_, tabs) = app.staff("carla").await.get("/api/monitor").await;
    assert_eq!((tabs["all"].as_array().unwrap().len(), &tabs["all_more"]), (310, &json!(0)), "all of them");
    assert_eq!((&tabs["my"], &tabs["my_more"]), (&json!([]), &json!(0)));
    // The whole question is in the chat.
    let (_, rec) = ann.get(&format!("/api/sessions/{}", first.unwrap())).await;
    assert!(rec.to_string().contains(&long), "the chat holds the whole question");
}

#[tokio::test]
async fn unknown_fields_and_missing_records_get_their_documented_answers() {
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let mut ws = ann.socket().await;
    for frame in [
        json!({"type": "ping", "x": 1}),
        json!({"type": "queue", "all": true}),
        json!({"type": "monitor", "tab": "all"}),
    ] {
        ws.send(frame.clone()).await;
        let f = ws.next().await;
        assert_eq!((f["type"].as_str(), f["code"].as_str()), (Some("error"), Some("bad_frame")), "{frame}");
    }
    // A frame of an unknown type is refused without being sent back whole.
    let huge = "t".repeat(30_000);
    ws.send(json!({"type": huge})).await;
    let f = ws.next().await;
    assert_eq!(f["code"], "bad_frame", "{f}");
    assert!(f.to_string().len() < 1_000, "the error quotes the frame whole: {} bytes", f.to_string().len());
    // A colleague who does not exist, and another cooperative's staff
    // member: the same 422 as sending to them (the mark told which ids are
    // staff, and kept a row for each), and nothing kept.
    let s = app.state.app.store();
    let coop = s.create_cooperative("Faraway Cooperative", refdesk_domain::question::default_codes()).await.unwrap();
    let inst = s.create_institution(coop, "Faraway City").await.unwrap();
    s.create_library(inst, "faraway-city", "Faraway City Library").await.unwrap();
    let far = app.state.app.add_staff(None, "faraway-city", "zoe", "Zoe Far", Role::Librarian, "table passphrase 2026");
    let far = far.await.unwrap();
    for peer in [999_999, far.0] {
        let (status, body) = ann.post(&format!("/api/im/{peer}/read"), json!({"seq": 1})).await;
        assert_eq!((status, body["error"]["field"].as_str()), (422, Some("peer")), "{peer}: {body}");
        // The socket's catch-up says the same (it answered `im_synced`, as
        // for a colleague with nothing to say).
        ws.send(json!({"type": "im_resume", "peer": peer})).await;
        let f = ws.next().await;
        assert_eq!(f["code"], "invalid", "{peer}: {f}");
        assert!(f["message"].as_str().unwrap().contains("no such colleague"), "{peer}: {f}");
    }
    let (_, convs) = ann.get("/api/im").await;
    assert_eq!(convs, json!([]), "no conversation kept");
}

/// `GET /api/chat` is paged like the socket's replay: a long chat is never
/// loaded whole for one request, and notes are read but never shown.
#[tokio::test]
async fn the_patrons_rest_transcript_is_read_a_page_at_a_time() {
    let app = spawn_app_with(crate::helpers::staff_writes_unbounded).await;
    let patron = app.start_chat("riverside-main", "A long one").await;
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(patron.session).await.0, 200);
    let path = format!("/api/sessions/{}/messages", patron.session);
    for i in 0..250 {
        let kind = if i == 100 { "note" } else { "message" };
        let (status, _) = ann.post(&path, serde_json::json!({"kind": kind, "body": format!("line {i}")})).await;
        assert_eq!(status, 200);
    }
    let (status, first) = patron.get("/api/chat").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["more"], true);
    assert_eq!(first["last"], 200, "the patron's number of the last line read");
    let shown = first["messages"].as_array().unwrap();
    assert_eq!(shown.len(), 200, "200 of the patron's lines: the note among them neither shown nor counted");
    assert!(shown.iter().all(|m| m["audience"] == "everyone"));
    let (_, rest) = patron.get("/api/chat?after=200&limit=500").await;
    assert_eq!(rest["more"], false);
    assert_eq!(rest["messages"].as_array().unwrap().len(), 51, "the rest, from the patron's line 201");
    assert_eq!(rest["last"].as_u64().unwrap(), 251, "the question, the accept line and 250 lines, one a note");
    assert_eq!(patron.get("/api/chat?limit=501").await.0, 422);
    assert_eq!(patron.get("/api/chat?limit=0").await.0, 422);
}

/// Staff pages of a chat stop at 1 MiB of text (a chat of the longest
/// lines is 32 MB), on the session and on the question alike; paging on
/// gives every line once, in order; the transcript e-mail stops at 512 KiB.
#[tokio::test]
async fn staff_read_a_long_chat_of_long_lines_a_page_at_a_time_on_the_session_and_the_question() {
    const BUDGET: usize = 1024 * 1024;
    let app = spawn_app_with(|c| c.limits.max_chat_lines = 10_000).await;
    let form = json!({"question": "Long lines", "email": "pat@example.org", "transcript": true});
    let patron = app.start_chat_with("riverside-main", form).await;
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(patron.session).await.0, 200);
    // 200 lines of the longest kind (16,000 bytes each): 3.2 MB.
    let longest = "\u{1D11E}".repeat(4000);
    let staff = app.state.app.store().staff_by_username("ann").await.unwrap().unwrap().staff;
    for _ in 0..200 {
        app.state
            .app
            .staff_send(&staff, refdesk_domain::ids::SessionId(patron.session), MessageKind::Message, &longest, None)
            .await
            .unwrap();
    }
    let (mut after, mut pages, mut seen) = (0, 0, Vec::new());
    loop {
        let (status, page) = ann.get(&format!("/api/sessions/{}?after={after}", patron.session)).await;
        assert_eq!(status, 200, "{page}");
        let lines = page["messages"].as_array().unwrap();
        let text: usize = lines.iter().map(|m| m["body"].as_str().unwrap().len()).sum();
        assert!(text <= BUDGET, "a page showed {text} bytes of text");
        seen.extend(lines.iter().map(|m| m["seq"].as_u64().unwrap()));
        after = *seen.last().unwrap();
        pages += 1;
        if page["more"] == false {
            break;
        }
        assert!(pages < 10, "paging never ended");
    }
    assert!(pages >= 4, "3.2 MB of text in pages of 1 MiB at most: {pages}");
    assert_eq!(seen, (1..=202).collect::<Vec<u64>>(), "every line once, in order");
    // The question's page holds the first page and says that more follow.
    let q = ann.question_of(patron.session).await["id"].as_i64().unwrap();
    let (status, page) = ann.get(&format!("/api/questions/{q}")).await;
    assert_eq!(status, 200);
    let text: usize = page["transcript"].as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap().len()).sum();
    assert!(text <= BUDGET && page["transcript_more"] == true, "{text}");
    // …and the rest, after its last line, from the question too (which the
    // library it is referred to may read, unlike the session).
    let mut seen: Vec<u64> =
        page["transcript"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()).collect();
    loop {
        let (status, page) = ann.get(&format!("/api/questions/{q}?after={}", seen.last().unwrap())).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(page["transcript"].as_array().unwrap().iter().map(|m| m["seq"].as_u64().unwrap()));
        if page["transcript_more"] == false {
            break;
        }
        assert!(seen.len() < 1_000, "paging never ended");
    }
    assert_eq!(seen, (1..=202).collect::<Vec<u64>>());
    // A bad page start is a clear error.
    let (status, body) = ann.get(&format!("/api/sessions/{}?after=soon", patron.session)).await;
    assert_eq!(status, 400, "{body}");
    // The transcript e-mail stops at 512 KiB of text and says so.
    let (status, _) = ann.post(&format!("/api/sessions/{}/end", patron.session), json!(null)).await;
    assert_eq!(status, 200);
    let dir = app.dir.path().join("mail");
    let deadline = Instant::now() + Duration::from_secs(10);
    let raw = loop {
        let file = std::fs::read_dir(&dir)
            .ok()
            .and_then(|d| d.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "eml")));
        if let Some(f) = file {
            break std::fs::read_to_string(f).unwrap();
        }
        assert!(Instant::now() < deadline, "the transcript was written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let text = crate::helpers::mail_text(&raw);
    assert!(text.len() < 600 * 1024, "a transcript of {} bytes", text.len());
    let end: String = text.chars().rev().take(100).collect::<Vec<_>>().into_iter().rev().collect();
    assert!(text.contains("more lines: too long for an e-mail"), "{end}");
}

/// A page of `GET /api/chat` stops at 64 KiB of text, however many lines
/// were asked for: a client that asks for 500 of the longest lines on many
/// connections and reads none of the answers makes the node hold 64 KiB
/// per connection, not 8 MB. Paging on still gives every line once, in
/// order.
#[tokio::test]
async fn a_page_of_the_patrons_chat_stops_at_its_text_budget() {
    const BUDGET: usize = 64 * 1024;
    let app = crate::helpers::spawn_app().await;
    let patron = app.start_chat("riverside-main", "Long lines").await;
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(patron.session).await.0, 200);
    let path = format!("/api/sessions/{}/messages", patron.session);
    // The longest line: 4,000 characters of four bytes each, 16,000 bytes.
    let longest = "\u{1D11E}".repeat(4000);
    // Lines 0–11, and a note of the longest kind where the first page is
    // cut (after line 4): read, never shown, never counted as shown text.
    for i in 0..12 {
        let body = if i % 4 == 3 { format!("short line {i}") } else { longest.clone() };
        let (status, sent) = ann.post(&path, serde_json::json!({"body": body})).await;
        assert_eq!(status, 200, "{sent}");
        if i == 4 {
            let (status, sent) = ann.post(&path, serde_json::json!({"kind": "note", "body": longest})).await;
            assert_eq!(status, 200, "{sent}");
        }
    }
    let (mut after, mut pages, mut seen) = (0, 0, Vec::new());
    loop {
        let (status, page) = patron.get(&format!("/api/chat?after={after}&limit=500")).await;
        assert_eq!(status, 200, "{page}");
        let lines = page["messages"].as_array().unwrap();
        assert!(!lines.is_empty(), "a page holds a line at least");
        assert!(lines.iter().all(|m| m["audience"] == "everyone"), "a note was shown: {page}");
        let text: usize = lines.iter().map(|m| m["body"].as_str().unwrap().len()).sum();
        assert!(text <= BUDGET, "a page showed {text} bytes of text");
        seen.extend(lines.iter().map(|m| m["seq"].as_u64().unwrap()));
        assert_eq!(page["last"], *seen.last().unwrap(), "the next page starts after the last line shown");
        after = page["last"].as_u64().unwrap();
        pages += 1;
        if page["more"] == false {
            break;
        }
        assert!(pages < 10, "paging never ended");
    }
    assert!(pages >= 3, "9 lines of 16,000 bytes fit in no fewer than three pages, not {pages}");
    // The patron's numbers: the note (the session's line 8) leaves no gap.
    let shown: Vec<u64> = (1..=14).collect();
    assert_eq!(seen, shown, "the question, the accept line and 12 lines, each once, in order; the note never");
}

/// Found while checking the API against its document on PostgreSQL: a NUL
/// in a name that is only looked up (a library's slug in a path or a body,
/// a search, a username) reached the database, which cannot compare it, and
/// the answer was a 500 (SQLite compares it, and answered 404 or 401).
/// Each is refused at the edge now, with the status the document gives it,
/// and the server goes on serving.
#[tokio::test]
async fn control_characters_in_names_that_are_looked_up_are_refused_not_a_server_error() {
    let app = crate::helpers::spawn_app().await;
    let erin = app.staff("erin").await;
    let patron = app.start_chat("riverside-main", "A question").await;
    for path in ["/api/libraries/a%00b/status", "/api/libraries/a%00b/blocked-patrons"] {
        let (status, body) = erin.get(path).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_path")), "{path}: {body}");
    }
    // Nor bytes that are not UTF-8 (a lone surrogate; a cut sequence), which
    // the query's parser read as U+FFFD and searched for.
    for query in ["q=a%00b", "q=%ED%A0%80", "q=caf%C3", "q=ok&library=%FF"] {
        for path in ["/api/questions", "/api/questions/export"] {
            let (status, body) = erin.get(&format!("{path}?{query}")).await;
            assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_query")), "{path}?{query}: {body}");
        }
    }
    assert_eq!(erin.get("/api/questions?q=caf%C3%A9").await.0, 200, "UTF-8 is searched");
    let staff = serde_json::json!({"username": "u1", "display_name": "U", "library": "a\u{0}",
        "role": "librarian", "password": "correct-horse-battery-staple-9"});
    let (status, body) = erin.post("/api/staff", staff).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid")), "{body}");
    let (status, body) = erin.post("/api/questions/1/refer", serde_json::json!({"library": "a\u{0}"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid")), "{body}");
    let transfer = format!("/api/sessions/{}/transfer", patron.session);
    let (status, body) = erin.post(&transfer, serde_json::json!({"library": "a\u{0}"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid")), "{body}");
    let http = reqwest::Client::new();
    let login = http
        .post(app.url("/api/login"))
        .json(&serde_json::json!({"username": "ann\u{0}", "password": "refdesk-demo"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401, "a name no account has signs nobody in");
    // Still serving, on either backend.
    assert_eq!(erin.get("/api/libraries/riverside-main/status").await.0, 200);
}

/// A staff request with this cookie, from `client`: its status, whether it
/// says when to try again, and its body.
async fn me_with(client: &reqwest::Client, app: &crate::helpers::TestApp, cookie: &str) -> (u16, bool, Value) {
    let res = client.get(app.url("/api/me")).header("Cookie", cookie).send().await.unwrap();
    let (status, retry) = (res.status().as_u16(), res.headers().contains_key("retry-after"));
    (status, retry, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn made_up_credentials_from_one_address_are_refused_before_any_read_past_a_few() {
    let app = spawn_app_with(|c| c.limits.bad_credentials_per_minute = 5).await;
    let ann = app.staff("ann").await;
    let chat = app.start_chat("riverside-main", "Is the map room open?").await;
    // A chat this node never handed out nor saw (as one started on another
    // node, or before a restart): its token is good, but not known here.
    let form = refdesk_app::StartChat {
        name: None,
        email: None,
        question: "From elsewhere".into(),
        transcript: false,
        browser: None,
        utc_offset: None,
    };
    let elsewhere_token = app.state.app.start_chat("riverside-main", form, None).await.unwrap().token;
    let here = reqwest::Client::new();
    // Credentials that match cost nothing: many more than the budget.
    for _ in 0..20 {
        assert_eq!(me_with(&here, &app, &ann.cookie).await.0, 200);
    }
    // Five that match nothing, of every kind: a made-up staff cookie, one
    // of no token's shape, a made-up chat token by REST and on a socket,
    // a sign-in that ended.
    let forged = format!("refdesk_session={}", "ab".repeat(32));
    assert_eq!(me_with(&here, &app, &forged).await.0, 401);
    assert_eq!(me_with(&here, &app, "refdesk_session=x").await.0, 401);
    let made_up = "cd".repeat(32);
    let res = here.get(app.url("/api/chat")).bearer_auth(&made_up).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let (_, refused) = patron_socket(app.addr, &made_up).await;
    assert_eq!(refused["code"], "unauthenticated", "{refused}");
    let (status, _) = ann.post("/api/logout", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(me_with(&here, &app, &ann.cookie).await.0, 401, "signed out: the cookie matches nothing now");

    // The sixth unknown one is refused before it is looked up, a good one
    // this node does not know too, until the budget refills.
    let (status, retry, body) = me_with(&here, &app, &forged).await;
    assert_eq!((status, retry, body["error"]["code"].as_str()), (429, true, Some("rate_limited")), "{body}");
    let res = here.get(app.url("/api/chat")).bearer_auth(&elsewhere_token).send().await.unwrap();
    assert_eq!(res.status(), 429, "a good token this node has not seen");
    let (_, refused) = patron_socket(app.addr, &elsewhere_token).await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    // Those it knows are served: the stranger who spent the address's
    // budget does not lock out the people already there, nor one who
    // signs in now.
    let res = here.get(app.url("/api/chat")).bearer_auth(&chat.token).send().await.unwrap();
    assert_eq!(res.status(), 200, "the patron's chat, started here");
    let (_, hello) = patron_socket(app.addr, &chat.token).await;
    assert_eq!(hello["type"], "hello", "{hello}");
    let ben = app.staff("ben").await;
    assert_eq!(me_with(&here, &app, &ben.cookie).await.0, 200, "a sign-in made now");
    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("refdesk_limited_total{limit=\"bad_credential\"} 3"), "{metrics}");

    // Another address is not held back.
    let elsewhere = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).build().unwrap();
    let res = elsewhere.get(app.url("/api/chat")).bearer_auth(&elsewhere_token).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // Refused before any read: with the store closed, still a 429, not a 500.
    app.state.app.store().close().await;
    assert_eq!(me_with(&here, &app, &forged).await.0, 429);
}

#[tokio::test]
async fn lookups_at_once_do_not_outrun_the_budget_and_a_refused_sign_out_keeps_its_cookie() {
    let app = spawn_app_with(|c| c.limits.bad_credentials_per_minute = 5).await;
    // Fifty made-up cookies at once, on as many connections: five are
    // looked up (401), the rest refused before any read.
    let forged: Vec<_> = (0..50)
        .map(|i| {
            let url = app.url("/api/me");
            tokio::spawn(async move {
                let cookie = format!("refdesk_session={:064x}", i + 1);
                reqwest::Client::new().get(url).header("Cookie", cookie).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for f in forged {
        statuses.push(f.await.unwrap());
    }
    let looked_up = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(looked_up, 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 45);
    // A chat's token known here is not a staff cookie known here: presented
    // as one, it is looked up and charged, and stays charged.
    let app = spawn_app_with(|c| c.limits.bad_credentials_per_minute = 5).await;
    let chat = app.start_chat("riverside-main", "my token, as a cookie").await;
    let as_cookie = format!("refdesk_session={}", chat.token);
    let here = reqwest::Client::new();
    let statuses: Vec<u16> = {
        let mut s = Vec::new();
        for _ in 0..8 {
            s.push(me_with(&here, &app, &as_cookie).await.0);
            // Known again as a chat's token between tries.
            let res = here.get(app.url("/api/chat")).bearer_auth(&chat.token).send().await.unwrap();
            assert_eq!(res.status(), 200);
        }
        s
    };
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429], "charged each time");
    // A sign-out refused by the budget did not sign out: the cookie is not
    // cleared, so the page can say so and try again.
    let unknown = format!("refdesk_session={}", "ef".repeat(32));
    let res = reqwest::Client::new().post(app.url("/api/logout")).header("Cookie", unknown).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert!(!res.headers().contains_key("set-cookie"), "the cookie stays: not signed out");
}

#[tokio::test]
async fn an_address_holds_sockets_per_address_at_most_and_another_is_not_held_back() {
    let app = spawn_app_with(|c| c.limits.sockets_per_address = 3).await;
    let mut open = Vec::new();
    for i in 0..3 {
        let chat = app.start_chat("riverside-main", &format!("tab {i}")).await;
        let (ws, hello) = patron_socket(app.addr, &chat.token).await;
        assert_eq!(hello["type"], "hello");
        open.push(ws);
    }
    // The fourth is refused at the upgrade, before anything is read.
    let refused = tokio_tungstenite::connect_async(format!("ws://{}/api/ws", app.addr)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 429);
            let body: Value = serde_json::from_slice(res.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["error"]["code"], "too_many_sockets", "{body}");
        }
        other => panic!("a fourth socket from one address: {:?}", other.map(|_| "upgraded")),
    }
    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("refdesk_limited_total{limit=\"socket\"} 1"), "{metrics}");
    // Another address has its own; one closed here makes room again.
    let chat = app.start_chat("riverside-main", "elsewhere").await;
    let (_other, hello) = patron_socket_from(app.addr, &chat.token, [127, 0, 0, 2]).await;
    assert_eq!(hello["type"], "hello");
    let mut closed = open.pop().unwrap();
    closed.close(None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_again, hello) = patron_socket(app.addr, &chat.token).await;
        if hello["type"] == "hello" {
            break;
        }
        assert!(Instant::now() < deadline, "no room after a socket closed: {hello}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A librarian's cookie on the upgrade lets a desk reconnect whatever its
/// address holds; patrons' tokens sent on such upgrades are held to the
/// address's cap all the same (a cookie lifted it for 240 patron sockets
/// from one address in a trial). The desk itself still opens.
#[tokio::test]
async fn a_staff_cookie_does_not_lift_the_address_cap_off_patrons_sockets() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app_with(|c| c.limits.sockets_per_address = 3).await;
    let ann = app.staff("ann").await;
    let with_cookie = |token: String| {
        let (addr, cookie) = (app.addr, ann.cookie.clone());
        async move {
            let mut req = format!("ws://{addr}/api/ws").into_client_request().unwrap();
            req.headers_mut().insert("Cookie", cookie.parse().unwrap());
            let (ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
            authenticated(ws, &token).await
        }
    };
    let mut open = Vec::new();
    for i in 0..3 {
        let chat = app.start_chat("riverside-main", &format!("tab {i}")).await;
        let (ws, hello) = with_cookie(chat.token).await;
        assert_eq!(hello["type"], "hello", "{hello}");
        assert_eq!(hello["role"], "patron", "{hello}");
        open.push(ws);
    }
    let chat = app.start_chat("riverside-main", "a fourth").await;
    let (_, refused) = with_cookie(chat.token).await;
    assert_eq!(refused["code"], "too_many_sockets", "{refused}");
    // The librarian's own desk is not held back by them.
    let desk = crate::helpers::Socket::connect(&format!("ws://{}/api/ws", app.addr), Some(&ann.cookie), None).await;
    assert_eq!(desk.hello["role"], "staff");
}

/// The same behind a proxy, for the wider bounds a desk's upgrade is not
/// held to: patrons' tokens sent with a librarian's cookie from the /64s of
/// one /56 are held to the /56's cap, and their opening to the address's
/// rate (a cookie lifted both in a trial). The desk itself still opens.
#[tokio::test]
async fn a_staff_cookie_does_not_lift_the_56s_cap_nor_the_opening_rate_off_patrons_sockets() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    // A patron's token, or none: the desk's own socket.
    async fn with_cookie(app: &TestApp, cookie: &str, token: Option<String>, client: &str) -> (Raw, Value) {
        let mut req = format!("ws://{}/api/ws", app.addr).into_client_request().unwrap();
        req.headers_mut().insert("Cookie", cookie.parse().unwrap());
        req.headers_mut().insert("X-Forwarded-For", client.parse().unwrap());
        // Through the proxy (127.0.0.2), which names the client.
        let tcp = tokio::net::TcpSocket::new_v4().unwrap();
        tcp.bind(std::net::SocketAddr::from(([127, 0, 0, 2], 0))).unwrap();
        let tcp = tokio_tungstenite::MaybeTlsStream::Plain(tcp.connect(app.addr).await.unwrap());
        let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await.unwrap();
        match token {
            Some(token) => authenticated(ws, &token).await,
            None => {
                ws.send(Ws::text(json!({"type": "auth"}).to_string())).await.unwrap();
                loop {
                    let frame = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
                    if let Ws::Text(t) = frame.expect("an answer").unwrap().unwrap() {
                        let hello: Value = serde_json::from_str(t.as_str()).unwrap();
                        return (ws, hello);
                    }
                }
            }
        }
    }
    // The /56 holds 4 × 2 whatever its /64s each hold.
    let app = spawn_app_with(|c| {
        c.limits.sockets_per_address = 2;
        c.trusted_proxies = vec!["127.0.0.2".parse().unwrap()];
    })
    .await;
    let ann = app.staff("ann").await.cookie;
    let mut open = Vec::new();
    for i in 0..8 {
        let chat = app.start_chat("riverside-main", &format!("tab {i}")).await;
        let (ws, hello) = with_cookie(&app, &ann, Some(chat.token), &format!("2001:db8:1:{i:x}::1")).await;
        assert_eq!(hello["role"], "patron", "{hello}");
        open.push(ws);
    }
    let chat = app.start_chat("riverside-main", "a ninth").await;
    let (_, refused) = with_cookie(&app, &ann, Some(chat.token), "2001:db8:1:ff::1").await;
    assert_eq!(refused["code"], "too_many_sockets", "the /56's cap: {refused}");
    let (_, hello) = with_cookie(&app, &ann, None, "2001:db8:1:ff::1").await;
    assert_eq!(hello["role"], "staff", "the desk itself: {hello}");

    // An address opens `sockets_opened_per_minute` patron sockets a minute.
    let app = spawn_app_with(|c| {
        c.limits.sockets_opened_per_minute = 3;
        c.trusted_proxies = vec!["127.0.0.2".parse().unwrap()];
    })
    .await;
    let ann = app.staff("ann").await.cookie;
    for i in 0..3 {
        let chat = app.start_chat("riverside-main", &format!("tab {i}")).await;
        let (ws, hello) = with_cookie(&app, &ann, Some(chat.token), "2001:db8:5::1").await;
        assert_eq!(hello["role"], "patron", "{hello}");
        open.push(ws);
    }
    let chat = app.start_chat("riverside-main", "a fourth").await;
    let (_, refused) = with_cookie(&app, &ann, Some(chat.token), "2001:db8:5::2").await;
    assert_eq!(refused["code"], "rate_limited", "the opening rate: {refused}");
    let (_, hello) = with_cookie(&app, &ann, None, "2001:db8:5::1").await;
    assert_eq!(hello["role"], "staff", "the desk itself: {hello}");
}

#[tokio::test]
async fn a_request_head_past_16_kib_is_refused_and_the_server_goes_on() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let head_of =
        |padding: usize| format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n", "a".repeat(padding));
    // Whole, or a byte at a time (each read leaves it incomplete).
    for trickle in [false, true] {
        let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let head = head_of(17 * 1024);
        // The server may stop reading before the whole head is written.
        if trickle {
            for chunk in head.as_bytes().chunks(1024) {
                if tcp.write_all(chunk).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        } else {
            let _ = tcp.write_all(head.as_bytes()).await;
        }
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 431"), "trickled {trickle}: {answer}");
    }
    // A head of a normal size is served, and one of 12 KiB (cookies of
    // other sites of the domain).
    assert_eq!(reqwest::get(app.url("/healthz")).await.unwrap().status(), 200);
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    tcp.write_all(head_of(12 * 1024).as_bytes()).await.unwrap();
    let mut answer = [0; 12];
    tcp.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
}

#[tokio::test]
async fn a_chunked_body_past_the_limit_is_refused_without_being_read_whole() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let mut tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /api/libraries/riverside-main/chats HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    tcp.write_all(head.as_bytes()).await.unwrap();
    // No Content-Length to refuse it by: 64 chunks of 16 KiB (1 MiB), as
    // long as the server reads them.
    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "a".repeat(16 * 1024));
    for _ in 0..64 {
        if tcp.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("too_large"), "{answer}");
}

#[tokio::test]
async fn an_address_opens_so_many_sockets_a_minute_and_another_is_not_held_back() {
    // Opening a socket is a handshake, an `auth` and, for a patron, a free
    // replay of the chat: a loop of opening and closing must not be free.
    let app = spawn_app_with(|c| c.limits.sockets_opened_per_minute = 3).await;
    let chat = app.start_chat("riverside-main", "again and again").await;
    for _ in 0..3 {
        let (mut ws, hello) = patron_socket(app.addr, &chat.token).await;
        assert_eq!(hello["type"], "hello");
        ws.close(None).await.unwrap();
    }
    match tokio_tungstenite::connect_async(format!("ws://{}/api/ws", app.addr)).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
            assert_eq!(res.status(), 429);
            assert!(res.headers().contains_key("retry-after"));
            let body: Value = serde_json::from_slice(res.body().as_deref().unwrap_or_default()).unwrap();
            assert_eq!(body["error"]["code"], "rate_limited", "{body}");
        }
        other => panic!("a fourth socket within the minute: {:?}", other.map(|_| "upgraded")),
    }
    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("refdesk_limited_total{limit=\"socket_open\"} 1"), "{metrics}");
    let (_other, hello) = patron_socket_from(app.addr, &chat.token, [127, 0, 0, 2]).await;
    assert_eq!(hello["type"], "hello", "another address has its own");
    // A desk this node knows reconnects from the spent address all the same.
    let _desk = app.staff("ann").await.socket().await;
}

#[tokio::test]
async fn what_staff_ask_is_logged_at_info_and_what_anyone_reads_at_debug() {
    // Anyone can read the pages, the documents and the list of libraries
    // without end: a line each at info flooded the log (3.6 MB in 3 s from
    // one client). Staff signed in on this node are few, and what they do
    // is what an operator looks for.
    let app = spawn_app().await;
    let ann = app.staff("ann").await;
    let with_id = |req: reqwest::RequestBuilder, id: &str| req.header("X-Request-Id", id).send();
    with_id(ann.http.get(app.url("/api/me")), "staff-read-9f3").await.unwrap();
    with_id(reqwest::Client::new().get(app.url("/api/service")), "anonymous-read-9f3").await.unwrap();
    let line = |id: &str| {
        let logs = crate::helpers::captured_logs();
        logs.lines().find(|l| l.contains(id) && l.contains("answered")).map(str::to_owned)
    };
    app.eventually("both lines logged", || async {
        line("staff-read-9f3").is_some() && line("anonymous-read-9f3").is_some()
    })
    .await;
    assert!(line("staff-read-9f3").unwrap().contains(" INFO "), "{:?}", line("staff-read-9f3"));
    assert!(line("anonymous-read-9f3").unwrap().contains(" DEBUG "), "{:?}", line("anonymous-read-9f3"));
}

#[tokio::test]
async fn a_desk_the_node_knows_opens_sockets_on_its_sign_ins_frame_budget() {
    // A known desk is not held to its address's sockets a minute (a
    // stranger there must not keep librarians out), and each of its sockets
    // is a write as it opens and another as it closes: a stolen cookie
    // opened 14,000 in 10 s. Its sign-in's budget pays for them.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app_with(|c| (c.limits.frames_per_second, c.limits.frame_burst) = (1, 5)).await;
    let ann = app.staff("ann").await;
    let (mut opened, mut refused) = (0, None);
    for _ in 0..10 {
        let mut req = format!("ws://{}/api/ws", app.addr).into_client_request().unwrap();
        req.headers_mut().insert("cookie", ann.cookie.parse().unwrap());
        match tokio_tungstenite::connect_async(req).await {
            Ok((mut ws, _)) => {
                opened += 1;
                ws.close(None).await.unwrap();
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(res)) => {
                refused = Some(res);
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let res = refused.expect("a socket past the sign-in's budget is refused");
    assert!((4..=6).contains(&opened), "{opened} opened on a budget of 5");
    assert_eq!((res.status().as_u16(), res.headers().get("retry-after").map(|v| v.as_bytes())), (429, Some(&b"1"[..])));
    // A colleague's desk has its own.
    let _ben = app.staff("ben").await.socket().await;
}

#[tokio::test]
async fn a_staff_members_socket_openings_spend_the_accounts_budget_whatever_sign_in_opens_them() {
    // Each sign-in's budget pays for its openings at the upgrade; twenty
    // sign-ins of one password would otherwise open twenty times as many.
    // The account's budget is five sign-ins' worth.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app_with(|c| {
        (c.limits.frames_per_second, c.limits.frame_burst) = (1, 2);
        c.limits.logins_per_minute = 100;
    })
    .await;
    let mut sign_ins = Vec::new();
    for _ in 0..10 {
        let login = json!({"username": "ann", "password": "refdesk-demo"});
        let res = reqwest::Client::new().post(app.url("/api/login")).json(&login).send().await.unwrap();
        assert_eq!(res.status(), 200);
        sign_ins.push(res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned());
    }
    let (mut opened, mut slowed) = (0, 0);
    let started = Instant::now();
    for cookie in sign_ins.iter().chain(&sign_ins) {
        let mut req = format!("ws://{}/api/ws", app.addr).into_client_request().unwrap();
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(req).await else { continue };
        ws.send(Ws::text(json!({"type": "auth"}).to_string())).await.unwrap();
        let first = loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("an answer").unwrap().unwrap() {
                Ws::Text(t) => break serde_json::from_str::<Value>(t.as_str()).unwrap(),
                _ => continue,
            }
        };
        match (first["type"].as_str(), first["code"].as_str()) {
            (Some("hello"), _) => opened += 1,
            (Some("error"), Some("rate_limited")) => slowed += 1,
            other => panic!("{other:?}: {first}"),
        }
        let _ = ws.close(None).await;
    }
    // The account's burst (10) and what refilled meanwhile (5 a second),
    // not each sign-in's own (2 × 10, all of them at once).
    let took = started.elapsed();
    assert!(opened >= 10 && within_budget(opened, (5.0, 10.0), took), "{opened} of 20 opened in {took:?}");
    assert_eq!(opened + slowed, 20, "the rest are told to slow down");
    // A colleague's desk has its own.
    let _ben = app.staff("ben").await.socket().await;
}

#[tokio::test]
async fn a_staff_members_reads_over_http_have_a_budget_of_their_own() {
    // A question's page or a page of a chat is megabytes at most, built
    // whole: a stolen sign-in looping them (13,000 reads in 5 s) kept both
    // cores and the shared readers busy.
    let app = spawn_app_with(|c| c.limits.staff_reads_per_second = 2).await;
    let ann = app.staff("ann").await;
    let mut answers = Vec::new();
    for _ in 0..40 {
        answers.push(ann.http.get(app.url("/api/me")).send().await.unwrap());
    }
    let passed = answers.iter().filter(|r| r.status() == 200).count();
    assert!((18..=23).contains(&passed), "{passed} of 40 reads on a budget of 20 and 2 a second");
    let refused = answers.iter().find(|r| r.status() == 429).expect("reads past the budget are refused");
    assert_eq!(refused.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]));
    // Writes have their own budget; a colleague's sign-in its own.
    assert_eq!(ann.post("/api/me/availability", json!({"availability": "away"})).await.0, 200);
    assert_eq!(app.staff("ben").await.get("/api/me").await.0, 200);
    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("refdesk_limited_total{limit=\"staff_read\"}"), "{metrics}");
}

/// One password signed in again and again (ten a minute from one address,
/// each a hash) has one budget of reads and one of writes over HTTP, the
/// account's, not one per sign-in; and the account holds at most
/// `sign_ins_per_account` sign-ins: the next ends the oldest, whose cookie
/// then signs in no one and whose sockets close. Before, five sign-ins of
/// one account read and wrote five times what one could.
#[tokio::test]
async fn one_password_signed_in_again_and_again_has_one_budget_and_a_few_sign_ins() {
    let app = spawn_app_with(|c| {
        c.limits.staff_reads_per_second = 2;
        c.limits.frames_per_second = 1;
        c.limits.frame_burst = 12;
        c.limits.sign_ins_per_account = 5;
    })
    .await;
    let first = app.staff("ann").await;
    let mut first_ws = first.socket().await;
    first_ws.send(json!({"type": "ping"})).await;
    first_ws.until(|f| f["type"] == "pong").await;
    let mut ann = Vec::new();
    for _ in 0..5 {
        ann.push(app.staff("ann").await);
    }
    // The sixth sign-in ended the first, on its socket too.
    assert_eq!(first.get("/api/me").await.0, 401, "the oldest sign-in ended");
    assert!(first_ws.closed_within(Duration::from_secs(5)).await, "its socket closed");
    let (status, me) = ann[0].get("/api/me").await;
    assert_eq!(status, 200, "the five newest stay: {me}");
    // Reads: a budget of 20 and 2 a second for the five together.
    let mut passed = 0;
    for _ in 0..8 {
        for staff in &ann {
            passed += usize::from(staff.http.get(app.url("/api/me")).send().await.unwrap().status() == 200);
        }
    }
    assert!((17..=24).contains(&passed), "{passed} of 40 reads passed on five sign-ins of one account");
    // Writes: six of the twelve were spent going on duty at each sign-in.
    let mut written = 0;
    for n in 0..4 {
        for staff in &ann {
            let availability = if n % 2 == 0 { "away" } else { "on_duty" };
            let (status, _) = staff.post("/api/me/availability", json!({ "availability": availability })).await;
            written += usize::from(status == 200);
        }
    }
    assert!((5..=9).contains(&written), "{written} of 20 writes passed on five sign-ins of one account");
    // A colleague's account has budgets of its own.
    assert_eq!(app.staff("ben").await.get("/api/me").await.0, 200);
}

/// A staff member's sockets, whatever sign-in each came with, share a
/// budget of five sign-ins' worth besides each sign-in's own: fifteen
/// sign-ins of one password send what five could, not fifteen times one
/// (before, each sign-in's sockets had a budget of their own alone).
#[tokio::test]
async fn a_staff_members_sockets_share_five_sign_ins_worth_of_frames_whatever_their_sign_ins() {
    let app = spawn_app_with(|c| {
        (c.limits.frames_per_second, c.limits.frame_burst) = (1, 8);
        c.limits.logins_per_minute = 1000;
    })
    .await;
    // Signed in without going on duty (each change of it spends the
    // account's budget of HTTP writes, bursts of 8 here).
    let mut sockets = Vec::new();
    for _ in 0..15 {
        let res = reqwest::Client::new()
            .post(app.url("/api/login"))
            .json(&json!({"username": "ann", "password": refdesk_app::demo::PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        sockets.push(crate::helpers::Socket::connect(&format!("ws://{}/api/ws", app.addr), Some(&cookie), None).await);
    }
    let start = Instant::now();
    for ws in &mut sockets {
        for _ in 0..10 {
            ws.send(json!({"type": "ping"})).await;
        }
    }
    let (mut pongs, mut limited) = (0, 0);
    for ws in &mut sockets {
        ws.closed_within(Duration::from_millis(200)).await;
        pongs += ws.frames.iter().filter(|f| f["type"] == "pong").count();
        limited += ws.frames.iter().filter(|f| f["code"] == "rate_limited").count();
    }
    // Each sign-in's own budget would have let through 6 or more of its
    // ten (90 or more); the account's lets through 40 and 5 a second.
    assert!(limited > 0, "frames past the account's budget were refused");
    assert!(pongs > 8, "more than one sign-in's worth: {pongs}");
    assert!(
        within_budget(pongs, (5.0, 40.0), start.elapsed()),
        "{pongs} of 150 pings answered in {:?}",
        start.elapsed()
    );
    // A colleague's account has a budget of its own.
    let mut ws = app.staff("ben").await.socket().await;
    for _ in 0..7 {
        ws.send(json!({"type": "ping"})).await;
    }
    ws.closed_within(Duration::from_millis(1000)).await;
    assert_eq!(ws.frames.iter().filter(|f| f["type"] == "pong").count(), 7, "a colleague's frames all pass");
}

/// A staff member's writes over HTTP have a frame budget, as a socket's
/// frames: a stolen cookie looping lines or availability changes (each a
/// commit, each availability change a status read for every library's
/// widget) gets `429 rate_limited` past it, before anything is written.
/// Reads are not counted, nor is signing out, and a colleague has a budget
/// of their own.
#[tokio::test]
async fn a_staff_members_writes_over_http_have_a_frame_budget() {
    let app = spawn_app_with(|c| {
        c.limits.frames_per_second = 2;
        c.limits.frame_burst = 6;
    })
    .await;
    // Signing in went on duty: one of the six spent.
    let ann = app.staff("ann").await;
    let mut answers = Vec::new();
    for n in 0..12 {
        let availability = if n % 2 == 0 { "away" } else { "on_duty" };
        answers.push(ann.post("/api/me/availability", json!({ "availability": availability })).await);
    }
    let passed = answers.iter().filter(|(status, _)| *status == 200).count();
    assert!((5..=7).contains(&passed), "{passed} of 12 writes passed: {answers:?}");
    let refused = answers.iter().find(|(status, _)| *status == 429).expect("the writes past the budget are refused");
    assert_eq!(refused.1["error"]["code"], "rate_limited", "{}", refused.1);
    // It says when to try again, as the other 429s do.
    let mut again = Vec::new();
    for _ in 0..10 {
        let res = ann.http.post(app.url("/api/me/availability")).json(&json!({"availability": "away"})).send().await;
        again.push(res.unwrap());
    }
    let again = again.iter().find(|r| r.status() == 429).expect("a write past the budget");
    assert_eq!(again.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"1"[..]), "{:?}", again.headers());
    // The last refused change was not made: the availability is the last one that passed.
    let last_passed = answers.iter().rposition(|(status, _)| *status == 200).unwrap();
    let expected = if last_passed % 2 == 0 { "away" } else { "on_duty" };
    let (status, staff) = ann.get("/api/staff/presence").await;
    assert_eq!(status, 200, "reads are not counted: {staff}");
    let me = staff.as_array().unwrap().iter().find(|s| s["username"] == "ann").unwrap();
    assert_eq!(me["availability"], expected, "{me}");
    let bob = app.staff("ben").await;
    let (status, _) = bob.post("/api/me/availability", json!({ "availability": "away" })).await;
    assert_eq!(status, 200, "a colleague's sign-in has its own budget");
    let (status, _) = ann.post("/api/logout", json!({})).await;
    assert_eq!(status, 200, "signing out spends none of it");
}

#[tokio::test]
async fn a_trusted_ipv4_proxy_on_a_dual_stack_listener_is_held_by_the_nodes_cap_alone() {
    // On `[::]` an IPv4 proxy's connections come from `::ffff:127.0.0.1`:
    // still the trusted proxy, whose connections are many clients'. Held
    // to one address's cap, the proxy (and every patron behind it) would
    // be shut out once that many were open.
    let app = spawn_app_with(|c| {
        c.listen = "[::]:8080".parse().unwrap();
        // A network, as for an ingress whose addresses change: 127.0.0.0
        // and 127.0.0.1 (127.0.0.2, below, is outside it).
        c.trusted_proxies = vec!["127.0.0.0/31".parse().unwrap()];
        c.limits.connections_per_address = 2;
    })
    .await;
    let from = |last: u8| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, last], 0))).unwrap();
        socket.connect(std::net::SocketAddr::from(([127, 0, 0, 1], app.addr.port()))).await.unwrap()
    };
    let mut proxied = Vec::new();
    for _ in 0..5 {
        proxied.push(from(1).await);
    }
    for (i, conn) in proxied.iter_mut().enumerate() {
        assert!(answers_health(conn).await, "the proxy's connection {i} is served");
    }
    // Another address is held to its own cap.
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(from(2).await);
    }
    let mut served = 0;
    for conn in &mut others {
        served += usize::from(answers_health(conn).await);
    }
    assert_eq!(served, 2, "an address that is no proxy holds two connections at most");
}

/// Whether a request on `conn` gets an answer (a connection refused at
/// once is closed without one).
async fn answers_health(conn: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    match tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await {
        Ok(Ok(n)) => buf[..n].starts_with(b"HTTP/1.1 200"),
        _ => false,
    }
}

/// Writes the node's store has committed so far (`refdesk_commit_writes`'s
/// sum: the jobs of the commits, however they were batched).
async fn writes(app: &crate::helpers::TestApp) -> u64 {
    let text = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with("refdesk_commit_writes_sum ")).expect(&text);
    line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64
}

#[tokio::test]
async fn a_waiting_patron_opening_and_closing_pages_as_fast_as_they_may_is_marked_away_once_with_one_write() {
    // Each close of a waiting patron's last page could be a write (the away
    // mark) and each open another (back): a stranger looping pages of a
    // chat would keep the one SQLite writer busy. The mark waits for the
    // grace from the latest close, one wait per chat: however many pages
    // open and close within it, one write, after the last.
    let app = spawn_app_with(|c| c.limits.patron_away_seconds = 1).await;
    let patron = app.start_chat("riverside-main", "Pages, pages").await;
    let s = patron.session;
    let ann = app.staff("ann").await;
    let (mut ann_ws, _) = ann.queue_socket().await;
    // What the node writes of its own (the background round's), a second.
    let idle = writes(&app).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let idle_per_second = (writes(&app).await - idle) as f64 / 4.0;
    let before = writes(&app).await;
    let started = Instant::now();
    let mut pages = 0;
    // Within the grace of each other, for three times the grace, at the
    // pace the chat's frame budget allows (an opening, a resume and a close
    // are three frames).
    while started.elapsed() < Duration::from_secs(3) {
        let mut page = patron.socket().await;
        page.resume(None, 0).await;
        page.until(|f| f["type"] == "position").await;
        page.close().await;
        pages += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(pages >= 5, "only {pages} pages in 3 s");
    let heard = ann_ws.until(|f| f["type"] == "patron_away" && f["session"] == s).await;
    let marks: Vec<_> = heard.iter().filter(|f| f["type"] == "patron_away").collect();
    assert_eq!(marks.len(), 1, "{marks:?}");
    assert!(marks[0]["since"].is_i64(), "away, not back: {marks:?}");
    // Nothing more comes of the pages that closed before the last.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let idle = (idle_per_second * started.elapsed().as_secs_f64()).ceil() as u64;
    let written = (writes(&app).await - before).saturating_sub(idle);
    // One (the mark), and room for the estimate of the node's own, which
    // come in bursts (a round's): half as many again as the estimate. A
    // write for each open and each close would be two a page, 10 and more.
    let room = 3 + idle / 2;
    assert!(
        written <= room,
        "{written} writes more than idle ({idle}) for {pages} pages of a waiting chat (room {room})"
    );
    ann_ws.send(json!({"type": "ping"})).await;
    let rest = ann_ws.until(|f| f["type"] == "pong").await;
    assert!(rest.iter().all(|f| f["type"] != "patron_away"), "{rest:?}");
}
