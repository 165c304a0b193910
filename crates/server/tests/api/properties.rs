//! Property test over random sequences of patron and staff actions, checking
//! on what every connection received:
//! - I1: no staff-audience event ever reaches the patron;
//! - I3: each connection gets its session's events in strictly increasing
//!   order, and across reconnects (resuming from the last seq seen) exactly
//!   what it may see — no gap, no duplicate;
//! - I4: every client message id is stored once, however often it is re-sent;
//! - B2: with a conferencing admin changing modes, taking over and chats
//!   handed between librarians, what a conference member may send follows
//!   their mode, and the patron never reads a line from a second librarian
//!   who was not announced first.

use crate::helpers::{spawn_app_with, Socket, TestApp};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;

#[derive(Clone, Debug)]
enum Action {
    /// The patron sends a line (or re-sends an earlier client id).
    PatronSays { resend: Option<usize> },
    /// The librarian sends a message or a note.
    StaffSays { note: bool, resend: Option<usize> },
    /// The patron's connection drops; it comes back and resumes on its next action.
    PatronDrops,
    /// The watching admin's connection drops likewise.
    WatcherDrops,
    /// The institution admin conferences in a mode, or leaves (`None`).
    AdminMode(Option<&'static str>),
    /// The institution admin writes a message or a note.
    AdminSays { note: bool },
    /// The institution admin takes the chat over.
    TakeOver,
    /// The chatting librarian hands the chat to the other librarian of the library.
    HandOver,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        4 => proptest::option::weighted(0.2, 0usize..8).prop_map(|resend| Action::PatronSays { resend }),
        4 => (any::<bool>(), proptest::option::weighted(0.2, 0usize..8)).prop_map(|(note, resend)| Action::StaffSays { note, resend }),
        1 => Just(Action::PatronDrops),
        1 => Just(Action::WatcherDrops),
        2 => prop_oneof![Just(None), Just(Some("monitor")), Just(Some("whisper")), Just(Some("join"))].prop_map(Action::AdminMode),
        2 => any::<bool>().prop_map(|note| Action::AdminSays { note }),
        1 => Just(Action::TakeOver),
        1 => Just(Action::HandOver),
    ]
}

/// A connection that may drop, and every event it received across its lives
/// — recorded unfiltered, so that a duplicate or a gap would show.
struct Viewer {
    socket: Option<Socket>,
    /// How many of the current socket's frames are already recorded.
    consumed: usize,
    received: Vec<Value>,
}

impl Viewer {
    /// The last sequence number this viewer has received.
    fn last(&self) -> u64 {
        self.received.iter().filter_map(|e| e["seq"].as_u64()).max().unwrap_or(0)
    }

    /// Records the events the current socket received since the last call.
    fn absorb(&mut self) {
        if let Some(s) = &self.socket {
            self.received.extend(s.frames[self.consumed..].iter().filter(|f| f["type"] == "event").cloned());
            self.consumed = s.frames.len();
        }
    }

    /// Connects afresh and resumes from the last sequence number received.
    async fn reconnect(&mut self, socket: Socket, session: Option<i64>) {
        self.drop_connection().await;
        self.socket = Some(socket);
        self.consumed = 0;
        let last = self.last();
        self.socket.as_mut().unwrap().resume(session, last).await;
        self.absorb();
    }

    async fn drop_connection(&mut self) {
        self.absorb();
        if let Some(s) = self.socket.take() {
            s.close().await;
        }
    }

    /// Reads what is in flight on the current connection up to `seq`.
    async fn drain_to(&mut self, seq: u64) {
        if let Some(s) = self.socket.as_mut() {
            if self.received.iter().all(|e| e["seq"].as_u64() < Some(seq)) {
                let _ = s.events_until_seq(seq).await;
            }
        }
        self.absorb();
    }
}

async fn run_case(app: &TestApp, actions: Vec<Action>) -> Result<(), TestCaseError> {
    let ann = app.staff("ann").await;
    let carla = app.staff("carla").await; // library admin watching, sees notes
    let dev = app.staff("dev").await; // institution admin: conferences, may take over
    let staff = [&ann, &carla, &dev];
    // The model: who chats (index into `staff`), and Dev's conference mode.
    let mut chatting = 0usize;
    let mut dev_mode: Option<&'static str> = None;
    let patron = app.start_chat("riverside-main", "property question").await;
    let session = patron.session;
    prop_assert_eq!(ann.accept(session).await.0, 200);

    let mut ann_ws = ann.socket().await;
    ann_ws.resume(Some(session), 0).await;
    let mut p = Viewer { socket: None, consumed: 0, received: Vec::new() };
    p.reconnect(patron.socket().await, None).await;
    let mut w = Viewer { socket: None, consumed: 0, received: Vec::new() };
    w.reconnect(carla.socket().await, Some(session)).await;
    let mut d = Viewer { socket: None, consumed: 0, received: Vec::new() };
    d.reconnect(dev.socket().await, Some(session)).await;
    let path = |what: &str| format!("/api/sessions/{session}/{what}");

    let (mut patron_ids, mut staff_ids) = (Vec::<String>::new(), Vec::<String>::new());
    // (client id, the number the patron's ack gave) of every patron line.
    let mut patron_acks: Vec<(String, u64)> = Vec::new();
    // (sender, client id) of every staff line sent, for I4.
    let mut sent_ids: Vec<(i64, String)> = Vec::new();
    let mut n = 0;
    for a in actions {
        n += 1;
        match a {
            Action::PatronSays { resend } => {
                if p.socket.is_none() {
                    p.reconnect(patron.socket().await, None).await;
                }
                let id = match resend.and_then(|i| patron_ids.get(i % patron_ids.len().max(1)).cloned()) {
                    Some(id) => id,
                    None => {
                        let id = format!("p{n}");
                        patron_ids.push(id.clone());
                        id
                    }
                };
                let ack = p.socket.as_mut().unwrap().say(None, "message", &format!("patron {id}"), &id).await;
                prop_assert_eq!(&ack["type"], "ack", "{}", ack);
                patron_acks.push((id, ack["seq"].as_u64().unwrap()));
            }
            Action::StaffSays { note, resend } => {
                let id = match resend.and_then(|i| staff_ids.get(i % staff_ids.len().max(1)).cloned()) {
                    Some(id) => id,
                    None => {
                        let id = format!("s{n}");
                        staff_ids.push(id.clone());
                        id
                    }
                };
                let kind = if note { "note" } else { "message" };
                // Client ids are per sender: each librarian has their own.
                let cid = format!("{id}-{chatting}");
                let body = serde_json::json!({"kind": kind, "body": format!("staff {cid}"), "client_id": cid});
                let (status, out) = staff[chatting].post(&path("messages"), body).await;
                prop_assert_eq!(status, 200, "{}", out);
                sent_ids.push((staff[chatting].id, cid));
            }
            Action::AdminMode(mode) => {
                if chatting == 2 {
                    continue; // Dev is the chatting librarian
                }
                let (status, out) = match mode {
                    Some(m) => dev.post(&path("conference"), serde_json::json!({"mode": m})).await,
                    None => dev.post(&path("leave"), serde_json::json!(null)).await,
                };
                let expected = match (dev_mode, mode) {
                    (None, None) => 409,
                    (a, b) if a == b => 409,
                    _ => 200,
                };
                prop_assert_eq!(status, expected, "{:?} → {:?}: {}", dev_mode, mode, out);
                if status == 200 {
                    dev_mode = mode;
                }
            }
            Action::AdminSays { note } => {
                let kind = if note { "note" } else { "message" };
                let cid = format!("d{n}");
                let body = serde_json::json!({"kind": kind, "body": format!("dev {cid}"), "client_id": cid});
                let (status, out) = dev.post(&path("messages"), body).await;
                let allowed = chatting == 2 || dev_mode == Some("join") || (dev_mode == Some("whisper") && note);
                prop_assert_eq!(status == 200, allowed, "dev {:?} sends {}: {} {}", dev_mode, kind, status, out);
                if allowed {
                    sent_ids.push((dev.id, cid));
                }
            }
            Action::TakeOver => {
                let (status, out) = dev.post(&path("takeover"), serde_json::json!(null)).await;
                let expected = if chatting == 2 { 409 } else { 200 };
                prop_assert_eq!(status, expected, "{}", out);
                if status == 200 {
                    chatting = 2;
                    dev_mode = None;
                }
            }
            Action::HandOver => {
                let to = if chatting == 0 { 1 } else { 0 };
                let (status, out) =
                    staff[chatting].post(&path("transfer"), serde_json::json!({"to": staff[to].id})).await;
                prop_assert_eq!(status, 200, "{}", out);
                if chatting == 2 {
                    dev_mode = None;
                }
                chatting = to;
            }
            Action::PatronDrops => p.drop_connection().await,
            Action::WatcherDrops => w.reconnect(carla.socket().await, Some(session)).await,
        }
    }
    // A final everyone-line marks the end; every live connection reads up to it.
    let (status, marker) =
        staff[chatting].post(&path("messages"), serde_json::json!({"body": "the end", "client_id": "marker"})).await;
    prop_assert_eq!(status, 200, "{}", marker);
    let last = marker["seq"].as_u64().unwrap();
    if p.socket.is_none() {
        p.reconnect(patron.socket().await, None).await;
    }
    p.drain_to(marker["message"]["patron_seq"].as_u64().unwrap()).await;
    w.drain_to(last).await;
    d.drain_to(last).await;
    if !ann_ws.events().iter().any(|e| e["seq"].as_u64() == Some(last)) {
        ann_ws.events_until_seq(last).await;
    }
    let ann_all: Vec<Value> = ann_ws.events().into_iter().cloned().collect();

    let stored = app.stored(session).await;
    let seqs = |v: &[Value]| v.iter().map(|e| e["seq"].as_u64().unwrap()).collect::<Vec<_>>();
    // The patron's numbers: their own count of the lines they see.
    let everyone: Vec<u64> = stored
        .iter()
        .filter(|m| m.audience == refdesk_domain::chat::Audience::Everyone)
        .map(|m| m.patron_seq)
        .collect();
    prop_assert_eq!(&everyone, &(1..=everyone.len() as u64).collect::<Vec<_>>(), "the patron's numbers run 1, 2, 3…");
    let all: Vec<u64> = stored.iter().map(|m| m.seq).collect();

    // I1
    prop_assert!(
        p.received.iter().all(|e| e["audience"] == "everyone" && e["kind"] != "note"),
        "a staff event reached the patron"
    );
    // I3: exactly the visible messages, in order, no gap, no duplicate — across reconnects.
    prop_assert_eq!(seqs(&p.received), everyone);
    prop_assert_eq!(seqs(&w.received), all.clone());
    prop_assert_eq!(seqs(&d.received), all.clone());
    // B2: Dev's lines reach the patron only after Dev was announced.
    let mut announced = false;
    for e in &p.received {
        let body = e["body"].as_str().unwrap_or_default();
        if body == "Dev Dewey (librarian) has joined the chat"
            || body == "Dev Dewey (librarian) has taken over the chat"
        {
            announced = true;
        } else if body == "Dev Dewey (librarian) has left the chat"
            || body.starts_with("Dev Dewey (librarian) has transferred")
        {
            announced = false;
        }
        if e["author"]["id"] == dev.id {
            prop_assert!(announced, "an unannounced second librarian reached the patron: {}", e);
        }
    }
    prop_assert_eq!(seqs(&ann_all), all);
    // A patron's ack (a re-send's too) gives their own number of the line.
    for (id, seq) in &patron_acks {
        let line = stored.iter().find(|m| m.client_id.as_deref() == Some(id.as_str())).unwrap();
        prop_assert_eq!(line.patron_seq, *seq, "the ack of {}", id);
    }
    // I4: each client id once per sender.
    for id in &patron_ids {
        let count = stored.iter().filter(|m| m.client_id.as_deref() == Some(id.as_str())).count();
        prop_assert_eq!(count, 1, "client id {} stored {} times", id, count);
    }
    for (sender, id) in &sent_ids {
        let count = stored
            .iter()
            .filter(|m| m.client_id.as_deref() == Some(id.as_str()))
            .filter(|m| matches!(&m.author, refdesk_domain::chat::Author::Staff { id: s, .. } if s.0 == *sender))
            .count();
        prop_assert_eq!(count, 1, "client id {} of {} stored {} times", id, sender, count);
    }
    p.drop_connection().await;
    w.drop_connection().await;
    d.drop_connection().await;
    ann_ws.close().await;
    Ok(())
}

#[test]
fn i1_i3_i4_hold_over_random_sequences_of_actions() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    // The cases share the server and its accounts (each signs them in
    // again): the accounts' budgets are lifted, as for bulk tests.
    let app = rt.block_on(spawn_app_with(crate::helpers::staff_writes_unbounded));
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32);
    let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
    let result =
        runner.run(&proptest::collection::vec(action(), 1..40), |actions| rt.block_on(run_case(&app, actions)));
    if let Err(e) = result {
        panic!("{e}");
    }
}
