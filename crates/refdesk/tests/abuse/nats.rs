//! NATS is not trusted. Two `refdesk serve` nodes share a PostgreSQL
//! database and a NATS subject (the servers `scripts/test.sh` makes sure
//! run: `REFDESK_TEST_POSTGRES`, `REFDESK_TEST_NATS`, else 127.0.0.1). A
//! patron is on node 1; the librarian chats from node 2 and also has a desk
//! open on node 1. Someone who can publish on NATS but lacks `nats_key`
//! sends what, before the envelopes were sealed, put "please type your
//! PIN" on the patron's screen as the librarian (hiding the real line with
//! that number) and closed the librarian's socket: the old unsealed
//! envelope, one sealed with a key of their own, a genuine envelope with
//! its text and number changed, and a genuine one replayed. None of it
//! reaches the patron's or the librarian's socket on node 1, nothing is
//! closed, the librarian's next line from node 2 arrives with its own
//! number, and node 1 logs the drops without their text.
//!
//! The same forged events sealed with the deployment's key do reach the
//! sockets (the last step): the events were well formed, and the key is
//! what stands between them and the patron.

use crate::harness::*;
use futures_util::StreamExt;
use refdesk_app::nats::seal::{NatsKey, Opener, Sealer, HEADER};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as Ws;

const PIN: &str = "please type your PIN";

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Two nodes on a fresh database and a subject of their own, sharing a
/// new key; node 1 logs to `log`. Fails (never skips) when PostgreSQL or
/// NATS is missing.
async fn two_nodes(log: &std::path::Path) -> (Server, Server, async_nats::Client, String, String) {
    let pg =
        std::env::var("REFDESK_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let nats = std::env::var("REFDESK_TEST_NATS").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("refdesk_abuse_nats_{}_{nanos}", std::process::id());
    let database = refdesk_store::postgres::create_database(&pg, &name)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be running at {pg} (scripts/test.sh starts it): {e}"));
    let raw = async_nats::connect(nats.as_str())
        .await
        .unwrap_or_else(|e| panic!("NATS must be running at {nats} (scripts/test.sh starts it): {e}"));
    let subject = format!("test.{name}");
    let key = refdesk_app::auth::new_token().unwrap();
    let env = [
        ("REFDESK_DATABASE_URL", database.as_str()),
        ("REFDESK_NATS_URL", nats.as_str()),
        ("REFDESK_NATS_SUBJECT", subject.as_str()),
        ("REFDESK_NATS_KEY", key.as_str()),
        ("REFDESK_LOGINS_PER_MINUTE", "1000"),
    ];
    // Node 1 loads the demo into the empty database; node 2 finds it there.
    let node1 = Server::start_logged("", &env, Some(log)).await;
    let node2 = Server::start("", &env).await;
    (node1, node2, raw, subject, key)
}

/// Every frame until one `until` accepts; panics on a closed socket.
async fn frames_until(ws: &mut Socket, who: &str, until: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("{who}: the awaited frame in time; got {seen:?}"))
            .unwrap_or_else(|| panic!("{who}'s socket stays open; got {seen:?}"))
            .unwrap_or_else(|e| panic!("{who}'s socket stays open ({e}); got {seen:?}"));
        match msg {
            Ws::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                let done = until(&v);
                seen.push(v);
                if done {
                    return seen;
                }
            }
            Ws::Close(c) => panic!("{who}'s socket was closed ({c:?}); got {seen:?}"),
            _ => {}
        }
    }
}

/// Sends a line as the librarian; its sequence number, from the ack.
async fn say(ws: &mut Socket, session: i64, body: &str) -> u64 {
    let client_id = format!("c-{}", body.replace(' ', "-"));
    send(ws, json!({"type": "send", "session": session, "kind": "message", "body": body, "client_id": client_id}))
        .await;
    let seen = frames_until(ws, "Ann on node 2", |f| f["client_id"] == client_id || f["type"] == "error").await;
    let ack = seen.last().unwrap();
    assert_eq!(ack["type"], "ack", "{body} is stored: {seen:?}");
    ack["seq"].as_u64().unwrap()
}

/// The next sealed envelope on the subject that carries the chat line
/// `body`: its bytes as published, and opened.
async fn capture(
    probe: &mut async_nats::Subscriber,
    opener: &mut Opener,
    subject: &str,
    body: &str,
) -> (Vec<u8>, Value) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = tokio::time::timeout(left, probe.next()).await.expect("the envelope is published").unwrap();
        let Ok(opened) = opener.open(subject, &m.payload, now_ms()) else { continue };
        let envelope: Value = serde_json::from_slice(&opened.payload).unwrap();
        let carries = envelope["events"]
            .as_array()
            .is_some_and(|events| events.iter().any(|e| e["Message"]["message"]["body"] == body));
        if carries {
            return (m.payload.to_vec(), envelope);
        }
    }
}

/// Whether a frame is the chat line `body`.
fn is_line(body: &str) -> impl Fn(&Value) -> bool + '_ {
    move |f| f["type"] == "event" && f["body"] == body
}

async fn publish(raw: &async_nats::Client, subject: &str, bytes: Vec<u8>) {
    raw.publish(subject.to_owned(), bytes.into()).await.unwrap();
    raw.flush().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_altered_or_replayed_nats_envelope_reaches_nobody_and_closes_nothing() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("node1.log");
    let (node1, node2, raw, subject, key) = two_nodes(&log).await;
    let mut probe = raw.subscribe(subject.clone()).await.unwrap();
    let mut opener = Opener::new(NatsKey::parse(&key).unwrap());

    // A patron on node 1; Ann accepts on node 2 and chats from there; her
    // desk is also open on node 1.
    let (session, token) = start_chat(&node1, "riverside-main", "Where are the 1850 maps?").await;
    let ann = sign_in(&node2, "ann").await;
    assert_eq!(post(&ann, node2.url("/api/me/availability"), json!({"availability": "on_duty"})).await.0, 200);
    assert_eq!(post(&ann, node2.url(&format!("/api/sessions/{session}/accept")), Value::Null).await.0, 200);
    let cookie = sign_in_cookie(&node2, "ann").await;
    let mut ann2 = staff_socket(&node2, &cookie).await;
    send(&mut ann2, json!({"type": "resume", "session": session, "after": 0})).await;
    next_of(&mut ann2, "synced", |_| true).await;
    let mut ann1 = staff_socket(&node1, &cookie).await;
    send(&mut ann1, json!({"type": "resume", "session": session, "after": 0})).await;
    next_of(&mut ann1, "synced", |_| true).await;
    let mut patron = patron_socket(&node1, &token).await;
    send(&mut patron, json!({"type": "resume", "after": 0})).await;
    next_of(&mut patron, "synced", |_| true).await;

    // A genuine line from node 2 reaches node 1; its envelope is kept. The
    // next number must have as many digits, for the altered copy below.
    let mut n = 0;
    let mut body = String::new();
    while n == 0 || (n + 1).to_string().len() != n.to_string().len() {
        body = format!("genuine line {}", n + 1);
        n = say(&mut ann2, session, &body).await;
    }
    let (sealed, envelope) = capture(&mut probe, &mut opener, &subject, &body).await;
    frames_until(&mut patron, "the patron", is_line(&body)).await;
    frames_until(&mut ann1, "Ann on node 1", is_line(&body)).await;

    // The forgeries: the next line number, Ann's name, the attacker's text.
    let event =
        envelope["events"].as_array().unwrap().iter().find(|e| e["Message"]["message"]["body"] == body).unwrap();
    let mut forged_line = event.clone();
    forged_line["Message"]["message"]["seq"] = json!(n + 1);
    forged_line["Message"]["message"]["body"] = json!(PIN);
    forged_line["Message"]["message"]["client_id"] = Value::Null;
    let ann_id = event["Message"]["message"]["author"]["id"].clone();
    assert!(ann_id.is_i64(), "Ann's id, from her line: {event}");
    let signed_out = json!({"SignedOut": {"staff": ann_id}});
    let events = json!([forged_line, signed_out]);

    // 1. The envelope as refdesk sent it before it was sealed.
    let plain = json!({"node": "evil", "seq": 1, "events": events});
    publish(&raw, &subject, plain.to_string().into_bytes()).await;
    // 2. Sealed, but with a key of the attacker's own.
    let mut stranger = Sealer::new(&NatsKey::parse(&refdesk_app::auth::new_token().unwrap()).unwrap()).unwrap();
    let wrong_key = stranger.seal(&subject, json!({"seq": 1, "events": events}).to_string().as_bytes(), now_ms());
    publish(&raw, &subject, wrong_key.unwrap()).await;
    // 3. The genuine envelope with its line's text and number changed: the
    //    cipher is a stream, so flipping ciphertext bits flips the same
    //    bits of the text — only the tag stands in the way.
    let opened = opener_plain(&key, &subject, &sealed);
    let wanted = String::from_utf8(opened.clone())
        .unwrap()
        .replacen(&format!("\"seq\":{n},\"kind\""), &format!("\"seq\":{},\"kind\"", n + 1), 1)
        .replacen(&body, &format!("{:<1$}", "type your PIN", body.len()), 1);
    assert_eq!(wanted.len(), opened.len());
    assert_ne!(wanted.as_bytes(), &opened[..], "the copy changes the line");
    let mut altered = sealed.clone();
    for (i, (was, now)) in opened.iter().zip(wanted.as_bytes()).enumerate() {
        altered[HEADER + i] ^= was ^ now;
    }
    publish(&raw, &subject, altered).await;
    // 4. The genuine envelope again, as it was.
    publish(&raw, &subject, sealed).await;

    // Node 1 took none of it: Ann's next line from node 2 is the next
    // thing both sockets there see, with its own number; nothing closed.
    let next = "genuine line after the forgeries";
    let seq = say(&mut ann2, session, next).await;
    assert_eq!(seq, n + 1, "the real line has the number the forgeries claimed");
    for (who, ws) in [("the patron", &mut patron), ("Ann on node 1", &mut ann1)] {
        let seen = frames_until(ws, who, is_line(next)).await;
        let leaked: Vec<&Value> = seen
            .iter()
            .filter(|f| {
                f.to_string().contains("PIN") || f["type"] == "error" || f["type"] == "event" && f["body"] != next
            })
            .collect();
        assert!(leaked.is_empty(), "{who} saw nothing of the forgeries: {leaked:?}");
        assert_eq!(seen.last().unwrap()["seq"], n + 1);
    }
    // Both still served: a ping is answered.
    for (who, ws) in [("the patron", &mut patron), ("Ann on node 1", &mut ann1)] {
        send(ws, json!({"type": "ping"})).await;
        frames_until(ws, who, |f| f["type"] == "pong").await;
    }

    // Node 1 said what it dropped, without what it held.
    let deadline = Instant::now() + Duration::from_secs(15);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("dropped NATS messages that failed the check") {
            break text;
        }
        assert!(Instant::now() < deadline, "node 1 logs the drops; its log:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for secret in [PIN, "type your PIN", key.as_str(), "genuine line"] {
        assert!(!text.contains(secret), "the log never holds {secret:?}:\n{text}");
    }

    // The control: the same events sealed with the deployment's key are
    // taken — the patron sees the text as Ann's, and Ann's socket on node 1
    // is closed — so what was refused above was refused for the key alone.
    let mut insider = Sealer::new(&NatsKey::parse(&key).unwrap()).unwrap();
    let mut control = forged_line.clone();
    control["Message"]["message"]["seq"] = json!(n + 2);
    let sealed_right = insider.seal(&subject, json!({"seq": 1, "events": [control]}).to_string().as_bytes(), now_ms());
    publish(&raw, &subject, sealed_right.unwrap()).await;
    let seen = frames_until(&mut patron, "the patron", is_line(PIN)).await;
    assert_eq!(seen.last().unwrap()["author"], event["Message"]["message"]["author"], "as Ann");
    let sealed_right =
        insider.seal(&subject, json!({"seq": 2, "events": [signed_out]}).to_string().as_bytes(), now_ms());
    publish(&raw, &subject, sealed_right.unwrap()).await;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(msg)) = ann1.next().await {
            if matches!(msg, Ws::Close(_)) {
                break;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "a sealed sign-out closes Ann's socket on node 1");
    drop((node1, node2));
}

/// What a sealed envelope holds (the test holds the key; the attacker of
/// step 3 is assumed to know or guess the text, not the key).
fn opener_plain(key: &str, subject: &str, sealed: &[u8]) -> Vec<u8> {
    // A fresh receiver: the one that captured it already took this number.
    Opener::new(NatsKey::parse(key).unwrap()).open(subject, sealed, now_ms()).unwrap().payload
}
