//! The link between nodes' buses, over the real NATS server on
//! 127.0.0.1:4222 (`scripts/test.sh` makes sure it runs): events cross, a
//! node's own come back to nobody twice, a lost envelope makes the receiving
//! node re-read the store, a late event never undoes a newer one, and
//! watcher lists are merged per node. A server out of reach at start (one
//! this test starts later itself) is waited for, not an error. Envelopes
//! are sealed with the nodes' key: one not sealed, sealed with another key,
//! altered on the way or replayed reaches no connection, and the link goes
//! on delivering genuine ones.

use futures_util::StreamExt;
use refdesk_app::bus::{Bus, Subscription};
use refdesk_app::nats::seal::{NatsKey, Opener, Sealer};
use refdesk_app::nats::NatsOptions;
use refdesk_domain::chat::{SessionContext, Watcher};
use refdesk_domain::event::{Event, QueueEntry};
use refdesk_domain::ids::{CooperativeId, InstitutionId, LibraryId, SessionId, StaffId};
use refdesk_domain::org::Placement;
use refdesk_store::EventSink;
use serde_json::json;
use std::time::Duration;

const NATS: &str = "nats://127.0.0.1:4222";
/// The key the linked nodes of these tests share.
const KEY: &str = "3c9a5e1f7b2d4068ace13579bdf02468a1b3c5d7e9f0a2c4e6b8d0f1a3c5e7b9";

fn options() -> NatsOptions {
    NatsOptions::with_key(NATS, KEY)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// Another node, as this test plays it: sealing with the nodes' key.
fn node_x() -> Sealer {
    Sealer::new(&NatsKey::parse(KEY).unwrap()).unwrap()
}

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
        asked_at: 1,
        away_since: None,
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

async fn next(sub: &Subscription) -> Event {
    let e = tokio::time::timeout(Duration::from_secs(10), sub.recv()).await.expect("an event arrives in time");
    (*e).clone()
}

/// Publishes an envelope as another node would.
async fn from_node(client: &async_nats::Client, subject: &str, node: &mut Sealer, seq: u64, events: Vec<Event>) {
    let payload = json!({"seq": seq, "events": events}).to_string();
    let sealed = node.seal(subject, payload.as_bytes(), now_ms()).unwrap();
    publish(client, subject, sealed).await;
}

async fn publish(client: &async_nats::Client, subject: &str, bytes: Vec<u8>) {
    client.publish(subject.to_owned(), bytes.into()).await.unwrap();
    client.flush().await.unwrap();
}

#[tokio::test]
async fn two_buses_linked_over_nats_share_events_and_recover_from_what_is_lost() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let subject = format!("test.link.{}.{nanos}", std::process::id());
    let (a, b) = (Bus::new(), Bus::new());
    let on_a = a.subscribe(64);
    on_a.join_queue(CooperativeId(1));
    let mut on_b = b.subscribe(64);
    on_b.join_queue(CooperativeId(1));
    on_b.join(SessionId(7));
    let raw = async_nats::connect(NATS).await.expect("NATS must be running on 127.0.0.1:4222");
    let mut probe = raw.subscribe(subject.clone()).await.unwrap();
    refdesk_app::nats::link(a.clone(), &options(), &subject).await.unwrap();
    refdesk_app::nats::link(b.clone(), &options(), &subject).await.unwrap();
    // Once connected, each link has its node re-read the store twice (the
    // second a second later): wait for both, then start from quiet.
    for sub in [&on_a, &on_b] {
        for _ in 0..2 {
            assert_eq!(next(sub).await, Event::Resync, "linking makes the node re-read");
        }
        sub.take_lagged();
    }

    // What node a commits reaches node b, and node a's own connection once:
    // b's next event reaches a over NATS after a's own would have.
    a.publish(vec![Event::QueueAdded(entry(1, 0))]);
    assert_eq!(next(&on_b).await, Event::QueueAdded(entry(1, 0)));
    assert_eq!(next(&on_a).await, Event::QueueAdded(entry(1, 0)));
    b.publish(vec![Event::QueueAdded(entry(2, 0))]);
    assert_eq!(next(&on_b).await, Event::QueueAdded(entry(2, 0)));
    assert_eq!(next(&on_a).await, Event::QueueAdded(entry(2, 0)), "not a's own event a second time");
    let mut opener = Opener::new(NatsKey::parse(KEY).unwrap());
    let envelope = loop {
        let sent = tokio::time::timeout(Duration::from_secs(5), probe.next()).await.unwrap().unwrap();
        assert!(serde_json::from_slice::<serde_json::Value>(&sent.payload).is_err(), "sealed, not plain JSON");
        let opened = opener.open(&subject, &sent.payload, now_ms()).expect("it opens with the nodes' key");
        let envelope: serde_json::Value = serde_json::from_slice(&opened.payload).unwrap();
        if envelope["events"] != json!([]) {
            break envelope; // not a heartbeat
        }
    };
    assert_eq!(envelope["seq"], 1, "a node numbers its envelopes");
    let mut x = node_x();

    // A late event from another node never undoes a newer one: accepted (v2)
    // then, late, the chat's arrival (v1) is dropped.
    let removed =
        Event::QueueRemoved { session: SessionId(9), placement: place(), since: 1, version: 2, away: Some(false) };
    from_node(&raw, &subject, &mut x, 1, vec![removed.clone()]).await;
    from_node(&raw, &subject, &mut x, 2, vec![Event::QueueAdded(entry(9, 1))]).await;
    from_node(&raw, &subject, &mut x, 3, vec![Event::QueueAdded(entry(10, 0))]).await;
    assert_eq!(next(&on_b).await, removed);
    assert_eq!(next(&on_b).await, Event::QueueAdded(entry(10, 0)), "the stale arrival was dropped");

    // A skipped envelope number: every connection of the node re-reads the store.
    from_node(&raw, &subject, &mut x, 5, vec![Event::QueueAdded(entry(11, 0))]).await;
    assert_eq!(next(&on_b).await, Event::QueueAdded(entry(11, 0)));
    assert_eq!(next(&on_b).await, Event::Resync, "a gap makes the node resync");
    assert!(on_b.take_lagged(), "and the connection counts as lagged");

    // Watchers: each node's own list; the node's connections see the union.
    let w = |id: i64, name: &str| Watcher::staff(StaffId(id), name);
    from_node(&raw, &subject, &mut x, 6, vec![Event::Watchers { ctx: ctx(7), watchers: vec![w(3, "Carla")] }]).await;
    assert_eq!(next(&on_b).await, Event::Watchers { ctx: ctx(7), watchers: vec![w(3, "Carla")] });
    let local = b.subscribe(8);
    local.watch(&ctx(7), w(4, "Dev"));
    match next(&on_b).await {
        Event::Watchers { watchers, .. } => assert_eq!(watchers, vec![w(4, "Dev"), w(3, "Carla")]),
        other => panic!("expected watchers, got {other:?}"),
    }
    // Node x's list empties: only the local watcher is left.
    from_node(&raw, &subject, &mut x, 7, vec![Event::Watchers { ctx: ctx(7), watchers: vec![] }]).await;
    match next(&on_b).await {
        Event::Watchers { watchers, .. } => assert_eq!(watchers, vec![w(4, "Dev")]),
        other => panic!("expected watchers, got {other:?}"),
    }
    // Said again unchanged, a list is not news; not said again for long, it
    // is a dead node's and goes.
    from_node(&raw, &subject, &mut x, 8, vec![Event::Watchers { ctx: ctx(7), watchers: vec![w(3, "Carla")] }]).await;
    from_node(&raw, &subject, &mut x, 9, vec![Event::Watchers { ctx: ctx(7), watchers: vec![w(3, "Carla")] }]).await;
    from_node(&raw, &subject, &mut x, 10, vec![Event::QueueAdded(entry(12, 0))]).await;
    assert!(matches!(next(&on_b).await, Event::Watchers { watchers, .. } if watchers.len() == 2));
    assert_eq!(next(&on_b).await, Event::QueueAdded(entry(12, 0)), "the repeated list said nothing");
    b.expire_remote_watchers(Duration::ZERO);
    match next(&on_b).await {
        Event::Watchers { watchers, .. } => assert_eq!(watchers, vec![w(4, "Dev")]),
        other => panic!("expected watchers, got {other:?}"),
    }

    // A heartbeat naming a number this node never received: a loss at the
    // end of a burst is noticed too.
    from_node(&raw, &subject, &mut x, 12, vec![]).await;
    assert_eq!(next(&on_b).await, Event::Resync);
}

fn line(session: i64, seq: u64) -> Event {
    use refdesk_domain::chat::{Author, Message, MessageKind};
    Event::Message {
        ctx: ctx(session),
        message: Message {
            session: SessionId(session),
            seq,
            patron_seq: seq,
            kind: MessageKind::Message,
            audience: MessageKind::Message.audience(),
            author: Author::Patron { name: "Pat".into() },
            body: format!("line {seq}"),
            client_id: None,
            at: 1,
            system: None,
        },
    }
}

#[tokio::test]
async fn a_node_decodes_only_the_chat_events_someone_on_it_follows() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let subject = format!("test.interest.{}.{nanos}", std::process::id());
    let (a, b) = (Bus::new(), Bus::new());
    let mut on_b = b.subscribe(64);
    on_b.join(SessionId(7));
    refdesk_app::nats::link(a.clone(), &options(), &subject).await.unwrap();
    refdesk_app::nats::link(b.clone(), &options(), &subject).await.unwrap();
    for _ in 0..2 {
        assert_eq!(next(&on_b).await, Event::Resync, "linking makes the node re-read");
    }
    on_b.take_lagged();
    let skipped = || b.metrics().nats_events_skipped.get();
    let typing = |session, on| Event::Typing {
        ctx: ctx(session),
        audience: refdesk_domain::chat::Audience::Everyone,
        who: "Pat".into(),
        by: None,
        on,
    };

    // Chat 8's lines and its typing stopped reach nobody on b: they are not
    // decoded there. Chat 7's line and the queue's event are, and someone
    // beginning to type in chat 8 (every node's round asks whether a chat
    // is idle: one being written in is not).
    let before = vec![line(8, 1), typing(8, true), typing(8, false), line(7, 1), Event::QueueAdded(entry(8, 0))];
    a.publish([before, vec![line(8, 2)]].concat());
    assert_eq!(next(&on_b).await, line(7, 1));
    on_b.join_queue(CooperativeId(1));
    a.publish(vec![Event::QueueAdded(entry(9, 0))]);
    assert_eq!(next(&on_b).await, Event::QueueAdded(entry(9, 0)), "events for more than one chat go on being decoded");
    assert_eq!(skipped(), 3, "chat 8's two lines and its typing stopped");
    assert!(b.typed_within(SessionId(8), std::time::Duration::from_secs(60)), "chat 8 is being written in");

    // A chat monitor on b hears every chat's lines: nothing is passed over.
    let monitor = b.subscribe(64);
    monitor.join_monitor(CooperativeId(1));
    a.publish(vec![line(8, 3)]);
    assert_eq!(next(&monitor).await, line(8, 3));
    assert_eq!(skipped(), 3);
}

#[tokio::test]
async fn an_envelope_not_sealed_with_the_key_altered_or_replayed_reaches_nobody() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let subject = format!("test.forged.{}.{nanos}", std::process::id());
    let bus = Bus::new();
    let sub = bus.subscribe(64);
    sub.join_queue(CooperativeId(1));
    sub.join_staff(StaffId(5));
    let raw = async_nats::connect(NATS).await.expect("NATS must be running on 127.0.0.1:4222");
    refdesk_app::nats::link(bus.clone(), &options(), &subject).await.unwrap();
    for _ in 0..2 {
        assert_eq!(next(&sub).await, Event::Resync, "linking makes the node re-read");
    }
    sub.take_lagged();

    // A genuine node signs a librarian out: her connections hear it.
    let mut genuine = node_x();
    let signed_out = Event::SignedOut { staff: StaffId(5) };
    let envelope = |seq: u64, events: Vec<Event>| json!({"seq": seq, "events": events}).to_string();
    let first = genuine.seal(&subject, envelope(1, vec![signed_out.clone()]).as_bytes(), now_ms()).unwrap();
    publish(&raw, &subject, first.clone()).await;
    assert_eq!(next(&sub).await, signed_out);

    // What someone who can reach NATS but lacks the key can send:
    // the envelope as refdesk sent it before it was sealed,
    let forged = json!({"node": "evil", "seq": 2, "events": [signed_out, Event::QueueAdded(entry(66, 0))]});
    publish(&raw, &subject, forged.to_string().into_bytes()).await;
    // one sealed with a key of their own,
    let mut stranger =
        Sealer::new(&NatsKey::parse("c2VjcmV0IGtleSBvZiBhbiBhdHRhY2tlciwgMzIrIGJ5dGVz").unwrap()).unwrap();
    let wrong_key = stranger.seal(&subject, envelope(2, vec![Event::QueueAdded(entry(67, 0))]).as_bytes(), now_ms());
    publish(&raw, &subject, wrong_key.unwrap()).await;
    // a genuine envelope with a bit of its body flipped (the cipher is a
    // stream: without the tag, that would flip the same bit of the text),
    let mut altered = genuine.seal(&subject, envelope(2, vec![Event::QueueAdded(entry(68, 0))]).as_bytes(), now_ms());
    let altered = altered.as_mut().map(|a| {
        let last = a.len() - 20;
        a[last] ^= 0x01;
        std::mem::take(a)
    });
    publish(&raw, &subject, altered.unwrap()).await;
    // and the genuine sign-out again, replayed after the librarian signed in anew.
    publish(&raw, &subject, first).await;

    // None reached the connection, nor made the node re-read; the genuine
    // node's next envelope arrives as the next event.
    let genuine_next = genuine.seal(&subject, envelope(2, vec![Event::QueueAdded(entry(88, 0))]).as_bytes(), now_ms());
    publish(&raw, &subject, genuine_next.unwrap()).await;
    assert_eq!(next(&sub).await, Event::QueueAdded(entry(88, 0)), "the forgeries reached nobody");
    assert!(!sub.take_lagged(), "and made the node re-read nothing");
    assert!(sub.try_recv().is_none(), "nothing else arrived");
    // Each is counted (a node with another key shows on /metrics).
    let refused = bus.metrics().nats_envelopes.get_or_create(&[("direction", "refused")]).get();
    assert_eq!(refused, 4, "not sealed, another key, altered, replayed");
}

/// Changing the nodes' key one node at a time (README, "The nodes' key"):
/// a node on the new key with the old one second and a node on the old key
/// with the new one second hear each other both ways, as every node does at
/// each step; a node on the new key alone does not hear one still sealing
/// with the old key (what the second key is for), and counts it refused.
#[tokio::test]
async fn nodes_changing_their_key_one_at_a_time_hear_each_other_through_the_second_key() {
    const NEW: &str = "bmV3IGtleSBvZiB0aGUgY29vcGVyYXRpdmUsIDMyIG9yIG1vcmUgYnl0ZXM";
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let subject = format!("test.rekey.{}.{nanos}", std::process::id());
    let keyed = |key: &str, second: Option<&str>| NatsOptions {
        second_key: second.map(str::to_owned),
        ..NatsOptions::with_key(NATS, key)
    };
    let (old, new, new_only) = (Bus::new(), Bus::new(), Bus::new());
    let subs: Vec<Subscription> = [&old, &new, &new_only]
        .iter()
        .map(|bus| {
            let sub = bus.subscribe(64);
            sub.join_queue(CooperativeId(1));
            sub
        })
        .collect();
    refdesk_app::nats::link(old.clone(), &keyed(KEY, Some(NEW)), &subject).await.unwrap();
    refdesk_app::nats::link(new.clone(), &keyed(NEW, Some(KEY)), &subject).await.unwrap();
    refdesk_app::nats::link(new_only.clone(), &keyed(NEW, None), &subject).await.unwrap();
    for sub in &subs {
        for _ in 0..2 {
            assert_eq!(next(sub).await, Event::Resync, "linking makes the node re-read");
        }
        sub.take_lagged();
    }

    old.publish(vec![Event::QueueAdded(entry(1, 0))]);
    assert_eq!(next(&subs[1]).await, Event::QueueAdded(entry(1, 0)), "sealed with the old key, opened by its second");
    new.publish(vec![Event::QueueAdded(entry(2, 0))]);
    assert_eq!(next(&subs[0]).await, Event::QueueAdded(entry(1, 0)), "its own");
    assert_eq!(next(&subs[0]).await, Event::QueueAdded(entry(2, 0)), "sealed with the new key, opened by its second");
    // The node on the new key alone heard the new key's node, not the old one's.
    assert_eq!(next(&subs[2]).await, Event::QueueAdded(entry(2, 0)));
    let refused = || new_only.metrics().nats_envelopes.get_or_create(&[("direction", "refused")]).get();
    assert!(refused() >= 1, "the old key's envelopes were refused");
    assert_eq!(old.metrics().nats_envelopes.get_or_create(&[("direction", "refused")]).get(), 0);
    assert_eq!(new.metrics().nats_envelopes.get_or_create(&[("direction", "refused")]).get(), 0);
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
    let sub = bus.subscribe(8);
    sub.join_queue(CooperativeId(1));
    refdesk_app::nats::link(bus.clone(), &NatsOptions::with_key(url, KEY), "test.later")
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
    assert_eq!(next(&sub).await, Event::Resync, "once linked, the node re-reads the store");
}
