//! Connection-level resources a stranger can make the server hold: TCP
//! connections, HTTP requests that never finish, WebSockets, replays.

use crate::harness::*;
use futures_util::SinkExt;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message as Ws;

/// Waits until the server closes `tcp` (EOF or reset); how long that took.
async fn closed_after(tcp: &mut tokio::net::TcpStream, within: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(within.saturating_sub(start.elapsed()), tcp.read(&mut buf)).await {
            Err(_) => panic!("the connection was still open after {within:?}"),
            Ok(Ok(0) | Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_slow_bodies_and_idle_connections_are_closed_within_the_timeouts() {
    let server = Server::start("[limits]\nheader_read_seconds = 2\nbody_seconds = 2\nidle_seconds = 2\n", &[]).await;
    let start = Instant::now();
    // A connection that sends nothing at all.
    let mut silent = connect_from(&server, [127, 0, 0, 1]).await.unwrap();
    // One that sends a header line a second, for ever.
    let mut slow = connect_from(&server, [127, 0, 0, 1]).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let trickle = tokio::spawn(async move {
        let start = Instant::now();
        for i in 0..30 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if slow.write_all(format!("X-Slow-{i}: 1\r\n").as_bytes()).await.is_err() {
                break;
            }
        }
        let mut buf = [0u8; 1024];
        // Once the server has closed, a read ends at once (EOF or reset).
        let _ = tokio::time::timeout(Duration::from_secs(30), slow.read(&mut buf)).await;
        start.elapsed()
    });
    // One whose body never comes.
    let mut bodiless = connect_from(&server, [127, 0, 0, 1]).await.unwrap();
    bodiless
        .write_all(b"POST /api/libraries/riverside-main/chats HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"name\":")
        .await
        .unwrap();
    // One that asked once and then keeps the connection open, saying nothing.
    let mut kept = connect_from(&server, [127, 0, 0, 1]).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut answer = [0u8; 512];
    let n = kept.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"), "the kept connection was answered");

    // Meanwhile a legitimate user is served.
    assert!(server.healthy_within(Duration::from_secs(1)).await);

    // Each is closed within its 2 s timeout (plus scheduling slack), not
    // left open (the issue saw 45 s and 70 s).
    let bound = Duration::from_secs(5);
    closed_after(&mut silent, bound).await;
    let silent_after = start.elapsed();
    assert!(silent_after >= Duration::from_millis(1000), "closed too early: {silent_after:?}");
    closed_after(&mut bodiless, bound).await;
    let bodiless_after = start.elapsed();
    closed_after(&mut kept, bound).await;
    let kept_after = start.elapsed();
    let slow_after = trickle.await.unwrap();
    assert!(bodiless_after < bound && kept_after < bound);
    assert!(slow_after < bound, "a header sent a line a second kept its connection for {slow_after:?}");
    eprintln!("closed after: silent {silent_after:?}, slow header {slow_after:?}, slow body {bodiless_after:?}, kept-alive {kept_after:?}");
    assert!(server.healthy_within(Duration::from_secs(1)).await);
}

/// The server's sockets towards `client` (a local port) on `port`, as the
/// kernel lists them: (state, bytes waiting to be sent). `04` is
/// FIN-WAIT-1: closed by the server, with what it still has to send.
fn server_sockets(port: u16, client: u16) -> Vec<(String, u64)> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("the kernel's list of TCP sockets");
    let port_of = |field: &str| field.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let ours = port_of(f[1]) == Some(port) && port_of(f[2]) == Some(client);
            let queued = f[4].split(':').next().and_then(|q| u64::from_str_radix(q, 16).ok())?;
            ours.then(|| (f[3].to_owned(), queued))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_leaves_the_kernel_nothing_once_let_go() {
    // Twenty pipelined requests for a 28 KB file, never read: the server
    // reads them all, writes until its send buffer is full, and lets the
    // connection go once no byte has moved for idle_seconds. A plain close
    // left the unsent answers (~370 KB) in a socket the kernel kept, with
    // no descriptor and outside every connection cap, for as long as the
    // client kept its window shut; the client could open another meanwhile.
    let server = Server::start("[limits]\nidle_seconds = 2\n", &[]).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut tcp = socket.connect(std::net::SocketAddr::from(([127, 0, 0, 1], server.port))).await.unwrap();
    let client = tcp.local_addr().unwrap().port();
    let ask = "GET /assets/desk.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(20);
    tcp.write_all(ask.as_bytes()).await.unwrap();
    let start = Instant::now();
    let stuck = loop {
        let sockets = server_sockets(server.port, client);
        if let Some((_, queued)) = sockets.iter().find(|(state, queued)| state == "01" && *queued > 100_000) {
            break *queued;
        }
        assert!(start.elapsed() < Duration::from_secs(5), "the send buffer never filled: {sockets:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!("{stuck} bytes stuck in the server's send buffer");
    // Let go after 2 s of nothing moving: nothing of it is left.
    loop {
        let sockets = server_sockets(server.port, client);
        if sockets.is_empty() {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(8), "still held by the kernel: {sockets:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The client learns it was reset, not that the answers ended.
    let mut buf = vec![0u8; 1 << 20];
    let mut read = 0;
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await.expect("an end") {
            Ok(0) => break "end of stream",
            Ok(n) => read += n,
            Err(_) => break "reset",
        }
    };
    assert_eq!(end, "reset", "after {read} bytes");
    assert!(server.healthy_within(Duration::from_secs(2)).await);
}

/// The node's open TCP connections (this one's included), from `/metrics`.
async fn open_connections(server: &Server) -> u64 {
    let text = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    let line = text.lines().find(|l| l.starts_with("refdesk_connections{kind=\"tcp\"}"));
    line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or_else(|| panic!("no tcp count:\n{text}"))
}

/// An HTTP `GET` from `from`, on a connection of its own; its status.
async fn get_from(server: &Server, from: [u8; 4], path: &str) -> Result<u16, String> {
    let r = client_from(from).get(server.url(path)).timeout(Duration::from_secs(2)).send().await;
    r.map(|r| r.status().as_u16()).map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_caps_a_newcomer_takes_the_place_of_the_oldest_silent_connection() {
    let server = Server::start("[limits]\nconnections_per_address = 20\nmax_connections = 40\n", &[]).await;
    // A stranger on the library's address (its Wi-Fi, a campus NAT) opens
    // its 20 connections and sends nothing (within the 15 s header timeout).
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(connect_from(&server, [127, 0, 0, 5]).await.unwrap());
    }
    // The library's people behind that address are still served: a sign-in
    // and a page, each in the place of the stranger's oldest silent connection.
    let library = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 5])).build().unwrap();
    let r = library
        .post(server.url("/api/login"))
        .json(&json!({"username": "ann", "password": DEMO}))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert_eq!(r.map(|r| r.status().as_u16()).ok(), Some(200), "the desk's sign-in from a full address");
    assert_eq!(get_from(&server, [127, 0, 0, 5], "/healthz").await, Ok(200));
    for (i, tcp) in silent.iter_mut().take(2).enumerate() {
        let after = closed_after(tcp, Duration::from_secs(2)).await;
        assert!(after < Duration::from_millis(500), "the {i}th oldest silent connection was held {after:?}");
    }
    // The others still wait: only as many as needed made room.
    for tcp in &mut silent[2..] {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut byte)).await;
        assert!(read.is_err(), "a silent connection closed with nobody needing its place: {read:?}");
    }
    // The library's connections close; the stranger opens two more: 20.
    drop(library);
    let deadline = Instant::now() + Duration::from_secs(5);
    while open_connections(&server).await != 18 + 1 {
        assert!(Instant::now() < deadline, "the library's connections were never given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for _ in 0..2 {
        silent.push(connect_from(&server, [127, 0, 0, 5]).await.unwrap());
    }
    // Sockets that are not silent (upgraded WebSockets) hold their places:
    // another address fills its 20 with them, and its 21st connection is
    // closed at once, nobody's place taken.
    let mut sockets = Vec::new();
    for _ in 0..20 {
        sockets.push(ws_from(&server, [127, 0, 0, 8], None, None).await);
    }
    let mut past = connect_from(&server, [127, 0, 0, 8]).await.unwrap();
    let after = closed_after(&mut past, Duration::from_secs(2)).await;
    assert!(after < Duration::from_millis(500), "a connection past a cap of busy ones was held {after:?}");
    for ws in &mut sockets {
        use futures_util::StreamExt;
        let heard = tokio::time::timeout(Duration::from_millis(20), ws.next()).await;
        assert!(heard.is_err(), "a busy socket was closed or told something: {heard:?}");
    }
    // The node's cap (40), full with the first address's 20 and the 20
    // sockets: a third address takes the place of the oldest silent
    // connection on the node.
    assert_eq!(get_from(&server, [127, 0, 0, 7], "/healthz").await, Ok(200), "a third address at the node's cap");
    let after = closed_after(&mut silent[2], Duration::from_secs(2)).await;
    assert!(after < Duration::from_millis(500), "the node's oldest silent connection was held {after:?}");
    let limited = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    let evicted = limited.lines().find(|l| l.starts_with("refdesk_limited_total{limit=\"connection_oldest\"}"));
    assert!(evicted.is_some_and(|l| !l.ends_with(" 0")), "evictions are counted: {evicted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_still_sending_its_answers_is_not_closed_for_a_newcomer() {
    let server = Server::start("[limits]\nconnections_per_address = 4\n", &[]).await;
    // A client on a slow line asks for four long documents at once (each
    // 200 KB): its answers wait on it, past what the kernel's buffers hold.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind(std::net::SocketAddr::from(([127, 0, 0, 9], 0))).unwrap();
    let mut slow = socket.connect(std::net::SocketAddr::from(([127, 0, 0, 1], server.port))).await.unwrap();
    let ask = "GET /api/openapi.json HTTP/1.1\r\nHost: refdesk\r\n\r\n";
    let last = "GET /api/openapi.json HTTP/1.1\r\nHost: refdesk\r\nConnection: close\r\n\r\n";
    slow.write_all(format!("{ask}{ask}{ask}{last}").as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The address fills its cap with silent connections, and opens more:
    // each takes a silent one's place, never the one still answering.
    let mut silent = Vec::new();
    for _ in 0..6 {
        silent.push(connect_from(&server, [127, 0, 0, 9]).await.unwrap());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The slow client reads on: all four answers, whole.
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut got)).await;
    assert!(
        read.as_ref().is_ok_and(|r| r.is_ok()),
        "the answers' connection was cut: {read:?} after {} bytes",
        got.len()
    );
    let text = String::from_utf8_lossy(&got);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 4, "four answers, after {} bytes", got.len());
    assert!(text.trim_end().ends_with('}'), "the last one whole");
}

/// Sends `n` messages on `ws` as fast as it can.
async fn flood(ws: &mut Socket, n: usize, tag: &str) {
    for i in 0..n {
        let frame = json!({"type": "send", "body": format!("{tag} {i}"), "client_id": format!("{tag}-{i}")});
        ws.send(Ws::text(frame.to_string())).await.unwrap();
    }
}

/// Counts `ack` frames until `within` has passed.
async fn acks(ws: &mut Socket, within: Duration) -> usize {
    use futures_util::StreamExt;
    let deadline = Instant::now() + within;
    let mut n = 0;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline.into(), ws.next()).await {
        if let Ws::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            n += usize::from(v["type"] == "ack");
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sockets_on_one_token_store_no_more_than_one_sockets_worth() {
    // The defaults: 4 sockets per chat, 20 frames a second, bursts of 60
    // (and a patron's lines while waiting raised past what is sent).
    let limits = "[limits]\npatron_lines_before_accept = 100000\npatron_chars_before_accept = 100000000\n";
    let server = Server::start(limits, &[]).await;
    let (_, token) = start_chat(&server, "riverside-main", "many sockets").await;
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        let mut ws = ws_from(&server, [127, 0, 0, 1], None, None).await;
        send(&mut ws, json!({"type": "auth", "token": token})).await;
        match first_answer(&mut ws, Duration::from_secs(5)).await {
            Ok(v) if v["type"] == "hello" => open.push(ws),
            Ok(v) => {
                assert_eq!(v["code"], "too_many_sockets", "{v}");
                refused += 1;
            }
            Err(close) => panic!("closed without a word: {close:?}"),
        }
    }
    assert_eq!((open.len(), refused), (4, 16), "4 sockets per chat token, the rest refused");
    // Every open socket floods at once for 3 s.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, mut ws) in open.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            flood(&mut ws, 150, &format!("s{i}")).await;
            acks(&mut ws, Duration::from_secs(3)).await
        }));
    }
    // A legitimate patron on another chat is served meanwhile.
    let (_, other) = start_chat(&server, "riverside-main", "a real question").await;
    let mut pat = patron_socket(&server, &other).await;
    send(&mut pat, json!({"type": "send", "body": "hello?", "client_id": "c1"})).await;
    next_of(&mut pat, "ack", |v| v["client_id"] == "c1").await;
    let mut stored = 0;
    for t in tasks {
        stored += t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    // One socket's worth: the burst and the rate over the time taken (and
    // a little for the clock). Four separate budgets would allow four times it.
    let one_socket = 60.0 + 20.0 * secs + 5.0;
    eprintln!("4 sockets on one token stored {stored} lines in {secs:.1} s (one socket's worth: {one_socket:.0})");
    assert!((stored as f64) <= one_socket, "{stored} lines stored, more than one socket's worth ({one_socket:.0})");
    assert!(stored >= 60, "the burst itself was refused: {stored}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_over_long_frame_gets_1009_and_a_dead_socket_is_closed() {
    let server = Server::start("[limits]\nws_ping_seconds = 1\n", &[]).await;
    let (_, token) = start_chat(&server, "riverside-main", "frames").await;
    // An over-long frame (the limit is 32 KiB).
    let mut big = patron_socket(&server, &token).await;
    let body = "x".repeat(40 * 1024);
    big.send(Ws::text(json!({"type": "send", "body": body}).to_string())).await.unwrap();
    let (close, _) = until_closed(&mut big, Duration::from_secs(5)).await;
    let (code, reason) = close.expect("a close frame, not a dropped connection");
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("32768"), "the reason says the limit: {reason}");
    // The same as the first frame, before `auth`: said the same way (it
    // was an empty close frame).
    let mut first = ws_from(&server, [127, 0, 5, 9], None, None).await;
    first.send(Ws::text("x".repeat(40 * 1024))).await.unwrap();
    let (close, _) = until_closed(&mut first, Duration::from_secs(5)).await;
    let (code, reason) = close.expect("a close frame, not a dropped connection");
    assert_eq!((code, reason.contains("32768")), (1009, true), "before auth: {reason}");

    // A dead socket: authenticated, then never read again, so the
    // server's pings go unanswered.
    let mut dead = patron_socket(&server, &token).await;
    // A live one, read all along (the client answers pings as it reads).
    let mut live = patron_socket(&server, &token).await;
    let reading = tokio::spawn(async move {
        use futures_util::StreamExt;
        let until = Instant::now() + Duration::from_secs(4);
        while let Ok(Some(Ok(_))) = tokio::time::timeout_at(until.into(), live.next()).await {}
        live
    });
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut live = reading.await.unwrap();
    send(&mut live, json!({"type": "ping"})).await;
    next_of(&mut live, "pong", |_| true).await;
    // The dead one was closed after two silent intervals (2–3 s).
    let (close, _) = until_closed(&mut dead, Duration::from_secs(3)).await;
    if let Some((code, _)) = close {
        assert_eq!(code, 1011);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_closes_that_sign_ins_earlier_sockets() {
    // The default ping interval (30 s): sign-out closes at once, not at the
    // next ping (the ping's check is for sign-ins that expire).
    let server = Server::start("", &[]).await;
    let signed_out = sign_in_cookie(&server, "ann").await;
    let other = sign_in_cookie(&server, "ann").await;
    let mut first = staff_socket(&server, &signed_out).await;
    let mut second = staff_socket(&server, &signed_out).await;
    let mut kept = staff_socket(&server, &other).await;
    let r = reqwest::Client::new().post(server.url("/api/logout")).header("cookie", &signed_out).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let start = Instant::now();
    for ws in [&mut first, &mut second] {
        let (close, frames) = until_closed(ws, Duration::from_secs(3)).await;
        assert!(frames.iter().any(|f| f["code"] == "unauthenticated"), "{frames:?}");
        assert_eq!(close.map(|c| c.0), Some(1008));
    }
    assert!(start.elapsed() < Duration::from_secs(3), "closed at once: {:?}", start.elapsed());
    // The other sign-in's socket still works.
    send(&mut kept, json!({"type": "ping"})).await;
    next_of(&mut kept, "pong", |_| true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_of_a_long_chat_leave_memory_bounded() {
    // The frame limit is not what this test tries (the one above does):
    // it is raised so that the 8,000 lines can be written quickly; so is
    // the chat's length, which has its own test (api/abusive.rs), and the
    // sign-ins one account holds.
    let config = "[limits]\nframes_per_second = 100000\nframe_burst = 100000\nlogins_per_minute = 1000\n\
                  max_chat_lines = 10000\nstaff_lines_per_day = 100000\nsign_ins_per_account = 100\n";
    let server = Server::start(config, &[]).await;
    let (session, token) = accepted_chat(&server, "a very long chat").await;

    // 8,000 lines of ~4 KB (33 MB), written by the librarian over 4 sockets.
    let line = "y".repeat(3990);
    let mut writers = Vec::new();
    for w in 0..4 {
        let cookie = sign_in_cookie(&server, "ann").await;
        let mut ws = staff_socket(&server, &cookie).await;
        let line = line.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..2000 {
                let frame = json!({"type": "send", "session": session, "body": format!("{w}.{i} {line}"), "client_id": format!("{w}-{i}")});
                ws.send(Ws::text(frame.to_string())).await.unwrap();
            }
            next_of(&mut ws, "ack", |v| v["client_id"] == format!("{w}-1999")).await;
        }));
    }
    for w in writers {
        w.await.unwrap();
    }

    // The patron's token opens 4 sockets, no more.
    let mut patron = Vec::new();
    for _ in 0..4 {
        patron.push(patron_socket(&server, &token).await);
    }
    let mut fifth = ws_from(&server, [127, 0, 0, 1], None, None).await;
    send(&mut fifth, json!({"type": "auth", "token": token})).await;
    assert_eq!(first_answer(&mut fifth, Duration::from_secs(5)).await.unwrap()["code"], "too_many_sockets");
    drop(patron);

    // One sign-in opens 8 sockets, no more.
    let one = sign_in_cookie(&server, "ann").await;
    let mut eight = Vec::new();
    for _ in 0..8 {
        eight.push(staff_socket(&server, &one).await);
    }
    let mut ninth = ws_from(&server, [127, 0, 0, 4], Some(&one), None).await;
    send(&mut ninth, json!({"type": "auth"})).await;
    let refused = first_answer(&mut ninth, Duration::from_secs(5)).await.unwrap();
    assert_eq!(refused["code"], "too_many_sockets", "a ninth socket on one sign-in: {refused}");
    drop((eight, ninth));

    // 200 readers: 25 sign-ins × 8 sockets (the most one sign-in may
    // open), from seven addresses (at most 32 opening at once from each).
    let mut cookies = Vec::new();
    for _ in 0..25 {
        cookies.push(sign_in_cookie(&server, "ann").await);
    }
    let base = server.rss_kib();
    let opening = Instant::now();
    let mut opened = Vec::new();
    for (n, cookie) in cookies.iter().enumerate() {
        for k in 0..8 {
            let (port, cookie) = (server.port, cookie.clone());
            opened.push(tokio::spawn(async move {
                let from = [127, 0, 1, 1 + (n % 7) as u8];
                let mut ws = ws_to(port, from, Some(&cookie), Some(4096)).await;
                send(&mut ws, json!({"type": "auth"})).await;
                let hello = first_answer(&mut ws, Duration::from_secs(20)).await.unwrap();
                assert_eq!(hello["type"], "hello", "reader {n}.{k}");
                send(&mut ws, json!({"type": "resume", "session": session, "after": 0})).await;
                ws // …and never read again
            }));
        }
    }
    let mut readers = Vec::new();
    for o in opened {
        readers.push(o.await.unwrap());
    }
    eprintln!("200 readers opened in {:?}", opening.elapsed());
    // While they stall (a frame may take 10 s to go out), memory is
    // watched and a patron is served.
    let mut peak = server.rss_kib();
    let (_, other) = start_chat(&server, "riverside-main", "still there?").await;
    let mut pat = patron_socket(&server, &other).await;
    send(&mut pat, json!({"type": "send", "body": "hello", "client_id": "h"})).await;
    next_of(&mut pat, "ack", |v| v["client_id"] == "h").await;
    assert!(server.healthy_within(Duration::from_secs(2)).await);
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        peak = peak.max(server.rss_kib());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let growth_mib = peak.saturating_sub(base) / 1024;
    eprintln!("200 slow readers: RSS {} MiB before, peak {} MiB (+{growth_mib} MiB)", base / 1024, peak / 1024);
    // Each stalled reader holds one page (50 lines × 4 KB = 200 KB) and a
    // frame or two in its socket's buffers: 200 × ~0.25 MB = 50 MB. At
    // worst, a reader's WebSocket write buffer fills to its cap
    // (max_write_buffer_size, 16 frames of 64 KiB = 1 MiB) beside its page:
    // 200 × 1.2 MiB = 240 MiB. What was sent before the stall (up to 256 KiB
    // of kernel send buffer per socket) also passed through the allocator,
    // whose per-thread caches hold freed memory for a while: runs measured
    // +54 to +210 MiB, the rest of this test binary's servers running
    // beside it. The bound, 512 MiB, is about twice that worst case, so a
    // loaded machine does not fail it, and under a quarter of the +2,289 MiB
    // measured with whole replays built in memory (replay_page = 10000),
    // which is what it must catch.
    assert!(growth_mib < 512, "RSS grew {growth_mib} MiB with 200 slow readers");

    // Past the send timeout (10 s) every reader has been let go: each
    // sign-in has room for a socket again.
    let deadline = Instant::now() + Duration::from_secs(20);
    for (n, cookie) in cookies.iter().enumerate().step_by(6) {
        loop {
            let mut again = ws_from(&server, [127, 0, 0, 4], Some(cookie), None).await;
            send(&mut again, json!({"type": "auth"})).await;
            if first_answer(&mut again, Duration::from_secs(5)).await.unwrap()["type"] == "hello" {
                break;
            }
            assert!(Instant::now() < deadline, "sign-in {n}'s stalled readers were never let go");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    drop(readers);
    assert!(server.healthy_within(Duration::from_secs(2)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patron_who_stops_reading_live_lines_is_let_go_without_slowing_the_librarian_and_resumes() {
    use futures_util::StreamExt;
    // A chat's length has its own test (api/abusive.rs): raised here.
    let config =
        "[limits]\nframes_per_second = 100000\nframe_burst = 100000\nws_send_seconds = 2\nmax_chat_lines = 10000\nstaff_lines_per_day = 100000\n";
    let server = Server::start(config, &[]).await;
    let (session, token) = accepted_chat(&server, "and then I stop reading").await;

    // The patron follows the chat, with a small receive buffer, then never reads.
    let mut stalled = ws_from(&server, [127, 0, 0, 1], None, Some(4096)).await;
    send(&mut stalled, json!({"type": "auth", "token": token})).await;
    assert_eq!(first_answer(&mut stalled, Duration::from_secs(5)).await.unwrap()["type"], "hello");
    send(&mut stalled, json!({"type": "resume", "after": 0})).await;

    // The librarian writes 3,000 lines of ~4 KB (12 MB: more than the
    // socket buffers and the WebSocket's write buffer hold), reading its
    // own socket as it goes; every line is acknowledged.
    const LINES: usize = 3000;
    let cookie = sign_in_cookie(&server, "ann").await;
    let (mut tx, mut rx) = staff_socket(&server, &cookie).await.split();
    let acked = tokio::spawn(async move {
        let mut acks = 0;
        while acks < LINES {
            match tokio::time::timeout(Duration::from_secs(20), rx.next()).await {
                Ok(Some(Ok(Ws::Text(t)))) => {
                    acks += usize::from(serde_json::from_str::<Value>(t.as_str()).unwrap()["type"] == "ack")
                }
                Ok(Some(Ok(_))) => continue, // pings
                _ => break,
            }
        }
        acks
    });
    let line = "z".repeat(3990);
    for i in 0..LINES {
        let frame =
            json!({"type": "send", "session": session, "body": format!("{i} {line}"), "client_id": format!("l-{i}")});
        tx.send(Ws::text(frame.to_string())).await.unwrap();
    }
    assert_eq!(acked.await.unwrap(), LINES, "the stalled patron held the librarian up");

    // The server lets the stalled socket go once a write has waited
    // `ws_send_seconds` (and its goodbye `CLOSE_WITHIN`): its count of open
    // patron sockets falls to zero, long before the 600 s a server that
    // waited for the reader would take.
    let letting_go = Instant::now();
    while open_patron_sockets(&server).await != 0 {
        assert!(letting_go.elapsed() < Duration::from_secs(10), "the stalled socket is still held");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("the stalled socket was let go {:?} after the last ack", letting_go.elapsed());
    // Reading now finds its end (with 1013 if the goodbye got through the
    // full buffers) well before the chat's end.
    let (close, frames) = until_closed(&mut stalled, Duration::from_secs(10)).await;
    if let Some((code, reason)) = &close {
        assert_eq!(*code, 1013, "closed as too slow: {reason}");
    }
    let seen = frames.iter().filter(|f| f["type"] == "event").filter_map(|f| f["seq"].as_u64()).max().unwrap_or(0);
    assert!(frames.len() < LINES, "{} frames were written to a socket that did not read", frames.len());

    // The patron comes back and resumes after the last line seen: the rest
    // of the chat arrives, nothing lost.
    let mut back = patron_socket(&server, &token).await;
    send(&mut back, json!({"type": "resume", "after": seen})).await;
    let (mut seqs, mut last_body) = (Vec::new(), String::new());
    let synced = loop {
        let frame = tokio::time::timeout(Duration::from_secs(20), back.next()).await.expect("the replay in time");
        let t = match frame {
            Some(Ok(Ws::Text(t))) => t,
            Some(Ok(_)) => continue, // pings
            other => panic!("the resumed socket closed: {other:?}"),
        };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        match v["type"].as_str() {
            Some("event") => {
                seqs.push(v["seq"].as_u64().unwrap());
                last_body = v["body"].as_str().unwrap_or("").to_owned();
            }
            Some("synced") => break v,
            _ => {}
        }
    };
    let expected: Vec<u64> = (seen + 1..=synced["last"].as_u64().unwrap()).collect();
    assert_eq!(seqs, expected, "every line after {seen}, once each, in order");
    assert!(last_body.starts_with(&format!("{} ", LINES - 1)), "the librarian's last line is among them");
    assert!(server.healthy_within(Duration::from_secs(2)).await);
}

/// The server's count of open patron sockets, from `/metrics`.
async fn open_patron_sockets(server: &Server) -> u64 {
    open_sockets(server, "patron_socket").await
}

/// Sockets of `kind` (`patron_socket`, `staff_socket`) open on the server.
async fn open_sockets(server: &Server, kind: &str) -> u64 {
    let text = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    let prefix = format!("refdesk_connections{{kind=\"{kind}\"}}");
    let line = text.lines().find(|l| l.starts_with(&prefix));
    let value = line.and_then(|l| l.split_whitespace().nth(1)).and_then(|v| v.parse::<f64>().ok());
    value.unwrap_or_else(|| panic!("no count of {kind} in /metrics:\n{text}")) as u64
}

/// Sends `frame` and waits (10 s at most) for its answer: a frame of type
/// `ack`, or an error.
async fn answer_to(ws: &mut Socket, frame: Value, ack: &str) -> Value {
    use futures_util::StreamExt;
    send(ws, frame).await;
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next()).await.expect("an answer in time");
        if let Some(Ok(Ws::Text(t))) = frame {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == ack || v["type"] == "error" {
                return v;
            }
        }
    }
}

/// Reads one frame every 125 ms (128 KB/s of 16 KB frames) until the
/// server closes the socket or 30 s pass.
fn trickle(mut ws: Socket) -> tokio::task::JoinHandle<()> {
    use futures_util::StreamExt;
    tokio::spawn(async move {
        while let Ok(Some(Ok(frame))) = tokio::time::timeout(Duration::from_secs(30), ws.next()).await {
            if matches!(frame, Ws::Close(_)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(125)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colleague_who_reads_an_im_replay_a_frame_at_a_time_is_let_go_within_a_page_deadline() {
    let config = "[limits]\nframes_per_second = 100000\nframe_burst = 100000\nws_send_seconds = 3\n\
                  max_message_chars = 16000\nmax_frame_bytes = 100000\nreplay_page = 200\n";
    let server = Server::start(config, &[]).await;
    let id_of = |who: &'static str| {
        let server = &server;
        async move {
            let client = sign_in(server, who).await;
            let me: Value = client.get(server.url("/api/me")).send().await.unwrap().json().await.unwrap();
            me["id"].as_i64().expect("an id")
        }
    };
    let (ann_id, ben_id) = (id_of("ann").await, id_of("ben").await);
    // 200 IMs of 16 KB from ann to ben: a page of 3.2 MB.
    let mut ann = staff_socket(&server, &sign_in_cookie(&server, "ann").await).await;
    let line = "z".repeat(15_990);
    for i in 0..200 {
        let frame =
            json!({"type": "im_send", "to": ben_id, "body": format!("{i} {line}"), "client_id": format!("i-{i}")});
        let answer = answer_to(&mut ann, frame, "im_ack").await;
        assert_eq!(answer["type"], "im_ack", "IM {i}: {answer}");
    }
    drop(ann);
    let ben_cookie = sign_in_cookie(&server, "ben").await;
    let mut slow = ws_from(&server, [127, 0, 0, 1], Some(&ben_cookie), Some(4096)).await;
    send(&mut slow, json!({"type": "auth"})).await;
    assert_eq!(first_answer(&mut slow, Duration::from_secs(5)).await.unwrap()["type"], "hello");
    let before = open_sockets(&server, "staff_socket").await;
    assert!(before >= 1, "ben's socket is counted");
    send(&mut slow, json!({"type": "im_resume", "peer": ann_id, "after": 0})).await;
    let client = match slow.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(tcp) => tcp.local_addr().unwrap().port(),
        _ => unreachable!("a plain socket"),
    };
    let start = Instant::now();
    let reader = trickle(slow);
    // Each frame goes out within the 3 s a frame may take; the page would
    // take about 25 s. The server lets the reader go once the page's
    // deadline has passed, as it does a chat's replay.
    while open_sockets(&server, "staff_socket").await >= before {
        assert!(start.elapsed() < Duration::from_secs(12), "the trickling reader is still held");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("the trickling IM reader was let go after {:?}", start.elapsed());
    // Reset, not closed: the kernel holds nothing of the page for it.
    let sockets = server_sockets(server.port, client);
    assert!(sockets.iter().all(|(_, queued)| *queued == 0), "the unsent page is still held: {sockets:?}");
    reader.abort();
    assert!(server.healthy_within(Duration::from_secs(2)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patron_who_reads_a_replay_a_frame_at_a_time_is_let_go_within_a_page_deadline() {
    use futures_util::StreamExt;
    let config =
        "[limits]\nframes_per_second = 100000\nframe_burst = 100000\nws_send_seconds = 3\nmax_message_chars = 16000\nmax_frame_bytes = 100000\nreplay_page = 200\n";
    let server = Server::start(config, &[]).await;
    let (session, token) = accepted_chat(&server, "a long chat, read slowly").await;
    // 200 lines of 16 KB: a page of 3.2 MB, far more than the socket buffers hold.
    let cookie = sign_in_cookie(&server, "ann").await;
    let mut ann = staff_socket(&server, &cookie).await;
    let line = "y".repeat(15_990);
    for i in 0..200 {
        let frame =
            json!({"type": "send", "session": session, "body": format!("{i} {line}"), "client_id": format!("t-{i}")});
        let answer = answer_to(&mut ann, frame, "ack").await;
        assert_eq!(answer["type"], "ack", "line {i}: {answer}");
    }
    // The patron resumes from 0 with a small receive buffer and takes eight
    // frames a second (128 KB/s): each frame goes out within the 3 s a frame
    // may take (the kernel wakes the writer once half its buffer is free,
    // every two seconds or so), the whole page would take about 25 s.
    let mut slow = ws_from(&server, [127, 0, 0, 1], None, Some(4096)).await;
    send(&mut slow, json!({"type": "auth", "token": token})).await;
    assert_eq!(first_answer(&mut slow, Duration::from_secs(5)).await.unwrap()["type"], "hello");
    send(&mut slow, json!({"type": "resume", "after": 0})).await;
    let start = Instant::now();
    let reader = tokio::spawn(async move {
        let mut frames = 0;
        loop {
            match tokio::time::timeout(Duration::from_secs(30), slow.next()).await {
                Ok(Some(Ok(Ws::Close(frame)))) => return (frames, frame.map(|f| u16::from(f.code))),
                Ok(Some(Ok(_))) => frames += 1,
                _ => return (frames, None),
            }
            tokio::time::sleep(Duration::from_millis(125)).await;
        }
    });
    // The server lets it go once the page's deadline has passed (and its
    // goodbye's second), long before the page would be written.
    while open_patron_sockets(&server).await != 0 {
        assert!(start.elapsed() < Duration::from_secs(12), "the trickling reader is still held");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("the trickling reader was let go after {:?}", start.elapsed());
    reader.abort();
    assert!(server.healthy_within(Duration::from_secs(2)).await);
}

/// A chat started at riverside-main and accepted by ann, on duty.
async fn accepted_chat(server: &Server, question: &str) -> (i64, String) {
    let (session, token) = start_chat(server, "riverside-main", question).await;
    let ann = sign_in(server, "ann").await;
    let (s, v) = post(&ann, server.url("/api/me/availability"), json!({"availability": "on_duty"})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(&ann, server.url(&format!("/api/sessions/{session}/accept")), Value::Null).await;
    assert_eq!(s, 200, "{v}");
    (session, token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_from_one_address_cannot_fill_the_places_of_sockets_still_opening() {
    let server = Server::start("", &[]).await;
    // One address opens sockets and never authenticates: 32 are held, the
    // 33rd is refused at once.
    let mut silent = Vec::new();
    for _ in 0..32 {
        silent.push(ws_from(&server, [127, 0, 4, 1], None, None).await);
    }
    for _ in 0..3 {
        let refused = try_ws_to(server.port, [127, 0, 4, 1], None, None).await.err();
        assert_eq!(refused, Some(429), "a 33rd silent socket from one address was taken");
    }
    // A librarian's desk behind the same address (a campus NAT, the
    // library's Wi-Fi) is not kept out by them: its sign-in bounds it.
    let cookie = sign_in_cookie(&server, "ann").await;
    let mut desk = match try_ws_to(server.port, [127, 0, 4, 1], Some(&cookie), None).await {
        Ok(ws) => ws,
        Err(status) => panic!("the desk's socket was refused ({status}): a stranger's silent sockets kept it out"),
    };
    send(&mut desk, json!({"type": "auth"})).await;
    next_of(&mut desk, "hello", |_| true).await;
    // Another address opens and authenticates as usual.
    let (_, token) = start_chat(&server, "riverside-main", "Opening beside a flood").await;
    let mut other = ws_from(&server, [127, 0, 4, 2], None, None).await;
    send(&mut other, json!({"type": "auth", "token": token})).await;
    next_of(&mut other, "hello", |_| true).await;
    // A socket that authenticates gives its place back: the same address
    // may then open another, and one more after that socket closes.
    let mut first = silent.pop().unwrap();
    send(&mut first, json!({"type": "auth", "token": token})).await;
    next_of(&mut first, "hello", |_| true).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while try_ws_to(server.port, [127, 0, 4, 1], None, None).await.map(|ws| silent.push(ws)).is_err() {
        assert!(Instant::now() < deadline, "an authenticated socket kept its place among the opening ones");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(try_ws_to(server.port, [127, 0, 4, 1], None, None).await.err(), Some(429));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sockets_from_many_networks_filling_the_node_cannot_keep_a_patron_out() {
    use futures_util::StreamExt;
    // 1,024 sockets and the server's own; the soft limit may be 1,024.
    let files = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(files >= 4096, "this test holds 1,024 sockets: raise the open-file limit (ulimit -Hn is {files})");
    let server = Server::start("", &[]).await;
    // Thirty-two networks, 32 silent sockets each (the most one address
    // may hold): all 1,024 of the node's places for opening sockets. The
    // first is the oldest; the others open together, a network at a time.
    let began = Instant::now();
    let mut silent = vec![ws_from(&server, [127, 0, 6, 1], None, None).await];
    for net in 0..32u8 {
        let opening = (0..if net == 0 { 31 } else { 32 }).map(|_| ws_to(server.port, [127, 0, 6, 1 + net], None, None));
        silent.extend(futures_util::future::join_all(opening).await);
    }
    // A patron from another network still gets in, and is served...
    let (_, token) = start_chat(&server, "riverside-main", "Opening past a flood").await;
    let mut patron = match try_ws_to(server.port, [127, 0, 6, 100], None, None).await {
        Ok(ws) => ws,
        Err(status) => panic!("the patron's socket was refused ({status}): silent sockets kept it out"),
    };
    send(&mut patron, json!({"type": "auth", "token": token})).await;
    next_of(&mut patron, "hello", |_| true).await;
    // Within the 10 s the silent sockets have to authenticate, or what
    // follows would see them closed for that instead.
    assert!(began.elapsed() < Duration::from_secs(8), "too slow to tell: {:?} to open the sockets", began.elapsed());
    // ... in the place of the silent socket that had waited longest,
    // closed with 1013; the others still wait.
    match first_answer(&mut silent[0], Duration::from_secs(5)).await {
        Err(Some((code, _))) => assert_eq!(code, 1013, "the oldest silent socket's close"),
        other => panic!("the oldest silent socket was not closed for the newcomer: {other:?}"),
    }
    let heard = futures_util::future::join_all(
        silent[1..].iter_mut().map(|s| tokio::time::timeout(Duration::from_millis(300), s.next())),
    )
    .await;
    assert_eq!(heard.iter().filter(|h| h.is_ok()).count(), 0, "only the oldest made room");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_larger_than_the_longest_text_is_refused_before_it_is_read() {
    let server = Server::start("", &[]).await;
    // Announced as 2 MB, one byte sent: refused at once from its length,
    // not held for `body_seconds` while the rest trickles in.
    let mut tcp = connect_from(&server, [127, 0, 5, 1]).await.unwrap();
    let head = "POST /api/libraries/riverside-main/chats HTTP/1.1\r\nHost: refdesk\r\n\
                Content-Type: application/json\r\nContent-Length: 1999999\r\n\r\n{";
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(2), tcp.read(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("too_large"), "{answer}");
    // Sent whole, a body past the limit gets the same; a policy page of
    // the longest length (20,000 characters, each escaped) still fits.
    let question = "é".repeat(200_000);
    let (status, body) = post(
        &client_from([127, 0, 5, 2]),
        server.url("/api/libraries/riverside-main/chats"),
        json!({"name": "Pat", "question": question}),
    )
    .await;
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("too_large")), "{body}");
    let carla = sign_in(&server, "carla").await;
    let escaped = format!("{{\"body\": \"{}\"}}", "\\u00e9".repeat(20_000));
    let r = carla
        .put(server.url("/api/policies/1"))
        .header("content-type", "application/json")
        .body(escaped)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// Chat starts whose bodies come a few bytes at a time hold no more than
/// what was sent (a chat start, not a sign-in: a sign-in's password hash
/// takes its own 19 MiB, which the peak measured here would count). Gathered as they came, each piece of such a body kept the
/// whole read buffer it arrived in (8 KiB): 100 KB sent 64 bytes at a time
/// held ~13 MB, and a stranger's few megabytes of such requests took the
/// server past a gigabyte (found by an attacker's trial).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_trickled_a_few_bytes_at_a_time_hold_no_more_than_was_sent() {
    let server = Server::start("", &[]).await;
    let body = format!("{{\"name\": \"Pat\", \"question\": \"{}\"}}", "a".repeat(100_000));
    let head = format!(
        "POST /api/libraries/riverside-main/chats HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nOrigin: http://127.0.0.1:{}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        server.port,
        server.port,
        body.len()
    );
    // Ten from each of two addresses (within the chats an address may start
    // a minute): all but the last byte, 64 bytes at a time, each sent alone.
    let mut held = Vec::new();
    for n in 0..20u8 {
        let tcp = connect_from(&server, [127, 0, 7, 1 + n / 10]).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        held.push(tcp);
    }
    let before = server.peak_rss_kib();
    let sent = futures_util::future::join_all(held.iter_mut().map(|tcp| {
        let (head, body) = (head.clone(), body.clone());
        async move {
            tcp.write_all(head.as_bytes()).await?;
            for piece in body.as_bytes()[..body.len() - 1].chunks(64) {
                tcp.write_all(piece).await?;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            std::io::Result::Ok(())
        }
    }))
    .await;
    assert!(sent.iter().all(Result::is_ok), "{sent:?}");
    // Each is then read whole and answered.
    for tcp in &mut held {
        tcp.write_all(&body.as_bytes()[body.len() - 1..]).await.unwrap();
        let mut answer = vec![0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut answer)).await.unwrap().unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]).to_string();
        assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    }
    // 20 × 100 KB were sent: a body holds at most twice what came of it.
    // The peak, so that when the server read the pieces does not matter.
    let grown = server.peak_rss_kib().saturating_sub(before);
    assert!(grown < 24 * 1024, "{grown} KiB more at the peak for 2 MB of bodies sent");
}

/// Connections whose requests wait for a body that never comes (or comes a
/// byte now and then) are silent: a newcomer takes their place. Counted
/// busy from their heads, they held their places for `body_seconds` (an
/// attacker's trial shut every other client of an address out that way).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_waiting_for_a_body_that_never_comes_keep_nobody_out() {
    let server = Server::start("[limits]\nconnections_per_address = 8\nmax_connections = 16\n", &[]).await;
    let mut waiting = Vec::new();
    // Sign-ins (within the address's 10 a minute), each waiting for its body.
    for i in 0..8 {
        let mut tcp = connect_from(&server, [127, 0, 8, 1]).await.unwrap();
        let head = "POST /api/login";
        let announce =
            format!("{head} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n");
        tcp.write_all(announce.as_bytes()).await.unwrap();
        if i % 2 == 0 {
            tcp.write_all(b"{").await.unwrap(); // a byte of it, now and then
        }
        waiting.push(tcp);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The library's people behind that address are served, each in the
    // place of one of those connections; so is another address at the node's cap.
    for _ in 0..3 {
        assert_eq!(get_from(&server, [127, 0, 8, 1], "/healthz").await, Ok(200), "from the full address");
    }
    let mut others = Vec::new();
    for _ in 0..8 {
        let mut tcp = connect_from(&server, [127, 0, 8, 2]).await.unwrap();
        tcp.write_all(b"POST /api/login HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n").await.unwrap();
        others.push(tcp);
    }
    assert_eq!(get_from(&server, [127, 0, 8, 3], "/healthz").await, Ok(200), "a third address at the node's cap");
    // A request whose body has all come is busy again, and holds its place.
    let mut sent = connect_from(&server, [127, 0, 8, 4]).await.unwrap();
    let body = json!({"username": "ann", "password": DEMO}).to_string();
    let login = format!(
        "POST /api/login HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        server.port,
        body.len()
    );
    sent.write_all(login.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), sent.read(&mut answer)).await.unwrap().unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
}

/// A staff member's answers still on their way are bounded: an account (or
/// a stolen cookie) that asks for large answers and reads none of them gets
/// `429` past 16, instead of the node holding each answer built whole
/// (2 MB here) until `idle_seconds`: gigabytes, in an attacker's trial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_member_who_reads_none_of_their_answers_has_sixteen_on_their_way_at_most() {
    let config = "[limits]\nframes_per_second = 100000\nframe_burst = 100000\nstaff_lines_per_day = 100000\n";
    let server = Server::start(config, &[]).await;
    let (session, _) = accepted_chat(&server, "A long chat").await;
    let ann = sign_in(&server, "ann").await;
    // A page of the chat: 1 MiB of text, 2 MiB of JSON (each quote escaped).
    let quotes = "\"".repeat(4000);
    for _ in 0..270 {
        let (status, _) =
            post(&ann, server.url(&format!("/api/sessions/{session}/messages")), json!({"body": quotes})).await;
        assert_eq!(status, 200);
    }
    let cookie = sign_in_cookie(&server, "ann").await;
    let ask = format!("GET /api/sessions/{session} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n");
    let mut held = Vec::new();
    for _ in 0..20 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut tcp = socket.connect(std::net::SocketAddr::from(([127, 0, 0, 1], server.port))).await.unwrap();
        tcp.write_all(ask.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        held.push(tcp);
    }
    // The first bytes of each answer: 200 for 16 of them, 429 for the rest
    // (which ones: in the order the server took them, which a loaded
    // machine may shuffle past the 50 ms between them: CI did once).
    let mut statuses = Vec::new();
    for tcp in &mut held {
        let mut head = vec![0u8; 12];
        tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut head)).await.unwrap().unwrap();
        statuses.push(String::from_utf8_lossy(&head[9..12]).to_string());
    }
    let ok = statuses.iter().filter(|s| *s == "200").count();
    assert_eq!((ok, statuses.len() - ok), (16, 4), "{statuses:?}");
    assert!(statuses.iter().all(|s| s == "200" || s == "429"), "{statuses:?}");
    // Closed, they give their places back.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = ann.get(server.url(&format!("/api/sessions/{session}"))).send().await.unwrap();
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the places were never given back: {}", r.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A WebSocket frame as a client writes it (masked, with a mask of zeros:
/// the payload goes as it is), whole or its head alone.
fn client_frame(opcode: u8, fin: bool, len: usize) -> Vec<u8> {
    let mut head = vec![if fin { 0x80 } else { 0 } | opcode];
    match len {
        0..=125 => head.push(0x80 | len as u8),
        126..=65535 => {
            head.push(0x80 | 126);
            head.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            head.push(0x80 | 127);
            head.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    head.extend_from_slice(&[0; 4]);
    head
}

/// A message sent in pieces and never finished is held by the server
/// until it is (or the socket closes), however long the client answers
/// pings: the frame limit (`max_frame_bytes`) bounds what a socket holds
/// so, at about two and a half times it. At the old limit, 64 KiB, a
/// trial's 1,600 patron sockets each holding such a message took 230 MB
/// (~150 KB a socket here); at 32 KiB, half.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_left_unfinished_hold_about_two_frames_a_socket_at_most() {
    let lifted = "[limits]\nstarts_per_minute = 100000\nmax_waiting_per_address = 100000\n\
                  chats_per_address_per_day = 100000\n";
    let server = Server::start(lifted, &[]).await;
    // The largest frame the node takes, as its refusal of a larger one says.
    let (_, token) = start_chat(&server, "riverside-main", "the limit").await;
    let mut probe = patron_socket(&server, &token).await;
    probe.send(Ws::text("x".repeat(1 << 20))).await.unwrap();
    let (close, _) = until_closed(&mut probe, Duration::from_secs(5)).await;
    let (_, reason) = close.expect("a close frame");
    let limit: usize = reason.split(|c: char| !c.is_ascii_digit()).find(|w| !w.is_empty()).unwrap().parse().unwrap();
    // 100 chats, 4 sockets each, from 8 addresses (50 a socket's address).
    let mut tokens = Vec::new();
    for i in 0..100 {
        tokens.push(start_chat(&server, "riverside-main", &format!("chat {i}")).await.1);
    }
    let mut sockets = Vec::new();
    for (i, token) in tokens.iter().cycle().take(400).enumerate() {
        let mut ws = ws_from(&server, [127, 0, 11, 1 + (i / 50) as u8], None, None).await;
        ws.send(Ws::text(json!({"type": "auth", "token": token}).to_string())).await.unwrap();
        next_of(&mut ws, "hello", |_| true).await;
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib();
    // Each: a text frame of nearly the limit, not the last of its message,
    // then most of a second one.
    let piece = limit - 256;
    let payload = vec![b'a'; piece];
    for ws in &mut sockets {
        let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_mut() else { unreachable!() };
        let mut first = client_frame(0x1, false, piece);
        first.extend_from_slice(&payload);
        let mut second = client_frame(0x0, false, piece);
        second.extend_from_slice(&payload[..piece - 1024]);
        tcp.write_all(&first).await.unwrap();
        tcp.write_all(&second).await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let per_socket = server.rss_kib().saturating_sub(before) * 1024 / sockets.len() as u64;
    eprintln!("{per_socket} bytes a socket holding an unfinished message (limit {limit})");
    assert!(per_socket < 104 * 1024, "{per_socket} bytes a socket (limit {limit})");
    // The node still serves.
    let (_, token) = start_chat(&server, "riverside-main", "still served").await;
    patron_socket(&server, &token).await;
}
