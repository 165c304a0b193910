//! The link between nodes' buses, over the real NATS server on
//! 127.0.0.1:4222 (`scripts/test.sh` makes sure it runs): events cross, a
//! node's own come back to nobody twice, a lost envelope makes the receiving
//! node re-read the store, a late event never undoes a newer one, and
//! watcher lists are merged per node. A server out of reach at start (one
//! this test starts later itself) is waited for, not an error.

use futures_util::StreamExt;
use refdesk_app::bus::Bus;
use refdesk_app::nats::NatsOptions;
use refdesk_domain::chat::{SessionContext, Watcher};
use refdesk_domain::event::{Event, QueueEntry};
use refdesk_domain::ids::{CooperativeId, InstitutionId, LibraryId, SessionId, StaffId};
use refdesk_domain::org::Placement;
use refdesk_store::EventSink;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const NATS: &str = "nats://127.0.0.1:4222";

fn place() -> Placement {
    Placement { library: LibraryId(1), institution: InstitutionId(1), cooperative: CooperativeId(1) }
}

fn entry(session: i64, version: u64) -> QueueEntry {
    QueueEntry {
        session: SessionId(session),
        placement: place(),
        library_name: "Main".into(),
        patron_name: "Pat".into(),
        question: "Where?".into(),
        since: 1,
        queue: place(),
        coop_now: false,
        version,
    }
}

fn ctx(session: i64) -> SessionContext {
    SessionContext {
        id: SessionId(session),
        placement: place(),
        librarian: Some(StaffId(1)),
        question: None,
        referred: None,
        members: Vec::new(),
        version: 0,
    }
}

async fn next(rx: &mut tokio::sync::mpsc::Receiver<Arc<Event>>) -> Event {
    let e = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await.expect("an event arrives in time");
    (*e.expect("the bus is open")).clone()
}

/// Publishes an envelope as another node would.
async fn from_node(client: &async_nats::Client, subject: &str, node: &str, seq: u64, events: Vec<Event>) {
    let payload = json!({"node": node, "seq": seq, "events": events}).to_string();
    client.publish(subject.to_owned(), payload.into()).await.unwrap();
    client.flush().await.unwrap();
}

#[tokio::test]
async fn two_buses_linked_over_nats_share_events_and_recover_from_what_is_lost() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let subject = format!("test.link.{}.{nanos}", std::process::id());
    let (a, b) = (Bus::new(), Bus::new());
    let mut on_a = a.subscribe(64);
    on_a.join_queue();
    let mut on_b = b.subscribe(64);
    on_b.join_queue();
    on_b.join(SessionId(7));
    let raw = async_nats::connect(NATS).await.expect("NATS must be running on 127.0.0.1:4222");
    let mut probe = raw.subscribe(subject.clone()).await.unwrap();
    refdesk_app::nats::link(a.clone(), &NatsOptions::new(NATS), &subject).await.unwrap();
    refdesk_app::nats::link(b.clone(), &NatsOptions::new(NATS), &subject).await.unwrap();
    // Once connected, each link has its node re-read the store twice (the
    // second a second later): wait for both, then start from quiet.
    for sub in [&mut on_a, &mut on_b] {
        for _ in 0..2 {
            assert_eq!(next(&mut sub.rx).await, Event::Resync, "linking makes the node re-read");
        }
        sub.take_lagged();
    }

    // What node a commits reaches node b, and node a's own connection once:
    // b's next event reaches a over NATS after a's own would have.
    a.publish(vec![Event::QueueAdded(entry(1, 0))]);
    assert_eq!(next(&mut on_b.rx).await, Event::QueueAdded(entry(1, 0)));
    assert_eq!(next(&mut on_a.rx).await, Event::QueueAdded(entry(1, 0)));
    b.publish(vec![Event::QueueAdded(entry(2, 0))]);
    assert_eq!(next(&mut on_b.rx).await, Event::QueueAdded(entry(2, 0)));
    assert_eq!(next(&mut on_a.rx).await, Event::QueueAdded(entry(2, 0)), "not a's own event a second time");
    let envelope = loop {
        let sent = tokio::time::timeout(Duration::from_secs(5), probe.next()).await.unwrap().unwrap();
        let envelope: serde_json::Value = serde_json::from_slice(&sent.payload).unwrap();
        if envelope["events"] != json!([]) {
            break envelope; // not a heartbeat
        }
    };
    assert_eq!(envelope["seq"], 1, "a node numbers its envelopes");

    // A late event from another node never undoes a newer one: accepted (v2)
    // then, late, the chat's arrival (v1) is dropped.
    let removed = Event::QueueRemoved { session: SessionId(9), placement: place(), since: 1, version: 2 };
    from_node(&raw, &subject, "x", 1, vec![removed.clone()]).await;
    from_node(&raw, &subject, "x", 2, vec![Event::QueueAdded(entry(9, 1))]).await;
    from_node(&raw, &subject, "x", 3, vec![Event::QueueAdded(entry(10, 0))]).await;
    assert_eq!(next(&mut on_b.rx).await, removed);
    assert_eq!(next(&mut on_b.rx).await, Event::QueueAdded(entry(10, 0)), "the stale arrival was dropped");

    // A skipped envelope number: every connection of the node re-reads the store.
    from_node(&raw, &subject, "x", 5, vec![Event::QueueAdded(entry(11, 0))]).await;
    assert_eq!(next(&mut on_b.rx).await, Event::QueueAdded(entry(11, 0)));
    assert_eq!(next(&mut on_b.rx).await, Event::Resync, "a gap makes the node resync");
    assert!(on_b.take_lagged(), "and the connection counts as lagged");

    // Watchers: each node's own list; the node's connections see the union.
    let w = |id: i64, name: &str| Watcher { staff: StaffId(id), name: name.into() };
    from_node(&raw, &subject, "x", 6, vec![Event::Watchers { ctx: ctx(7), watchers: vec![w(3, "Carla")] }]).await;
    assert_eq!(next(&mut on_b.rx).await, Event::Watchers { ctx: ctx(7), watchers: vec![w(3, "Carla")] });
    let local = b.subscribe(8);
    local.watch(&ctx(7), w(4, "Dev"));
    match next(&mut on_b.rx).await {
        Event::Watchers { watchers, .. } => assert_eq!(watchers, vec![w(4, "Dev"), w(3, "Carla")]),
        other => panic!("expected watchers, got {other:?}"),
    }
    // Node x's list empties: only the local watcher is left.
    from_node(&raw, &subject, "x", 7, vec![Event::Watchers { ctx: ctx(7), watchers: vec![] }]).await;
    match next(&mut on_b.rx).await {
        Event::Watchers { watchers, .. } => assert_eq!(watchers, vec![w(4, "Dev")]),
        other => panic!("expected watchers, got {other:?}"),
    }
    // Said again unchanged, a list is not news; not said again for long, it
    // is a dead node's and goes.
    from_node(&raw, &subject, "x", 8, vec![Event::Watchers { ctx: ctx(7), watchers: vec![w(3, "Carla")] }]).await;
    from_node(&raw, &subject, "x", 9, vec![Event::Watchers { ctx: ctx(7), watchers: vec![w(3, "Carla")] }]).await;
    from_node(&raw, &subject, "x", 10, vec![Event::QueueAdded(entry(12, 0))]).await;
    assert!(matches!(next(&mut on_b.rx).await, Event::Watchers { watchers, .. } if watchers.len() == 2));
    assert_eq!(next(&mut on_b.rx).await, Event::QueueAdded(entry(12, 0)), "the repeated list said nothing");
    b.expire_remote_watchers(Duration::ZERO);
    match next(&mut on_b.rx).await {
        Event::Watchers { watchers, .. } => assert_eq!(watchers, vec![w(4, "Dev")]),
        other => panic!("expected watchers, got {other:?}"),
    }

    // A heartbeat naming a number this node never received: a loss at the
    // end of a burst is noticed too.
    from_node(&raw, &subject, "x", 12, vec![]).await;
    assert_eq!(next(&mut on_b.rx).await, Event::Resync);
}

/// A NATS server of this test's own, stopped when dropped.
struct OwnNats(std::process::Child);

impl Drop for OwnNats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn a_nats_server_out_of_reach_at_start_is_waited_for_not_an_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("nats://127.0.0.1:{port}");
    let bus = Bus::new();
    let mut sub = bus.subscribe(8);
    sub.join_queue();
    refdesk_app::nats::link(bus.clone(), &NatsOptions::new(url), "test.later")
        .await
        .expect("nobody listening yet is not a refusal: the link waits in the background");

    let binary = ["/usr/sbin/nats-server", "/usr/local/bin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("nats-server must be installed (scripts/test.sh installs it)");
    let _nats = OwnNats(
        std::process::Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nats-server starts"),
    );
    assert_eq!(next(&mut sub.rx).await, Event::Resync, "once linked, the node re-reads the store");
}
