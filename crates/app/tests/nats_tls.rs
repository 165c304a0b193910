//! The link between nodes over a NATS server that requires TLS and a
//! password, as a production one does: the server `scripts/test.sh` starts
//! on localhost:4223 with a certificate from its test CA. Events cross
//! whether the password is in the URL or set apart; a wrong password, or a
//! certificate the node cannot trust, is an error from `link` at start that
//! names the server and never the password.

use refdesk_app::bus::{Bus, Subscription};
use refdesk_app::nats::{link, NatsOptions};
use refdesk_domain::event::{Event, QueueEntry};
use refdesk_domain::ids::{CooperativeId, InstitutionId, LibraryId, SessionId};
use refdesk_domain::org::Placement;
use refdesk_store::EventSink;
use std::sync::Arc;
use std::time::Duration;

/// The server's URL, with its user and password: `REFDESK_TEST_NATS_TLS_URL`,
/// or the one `scripts/test.sh` starts.
fn url() -> String {
    std::env::var("REFDESK_TEST_NATS_TLS_URL")
        .unwrap_or_else(|_| "tls://refdesk:refdesk-test-password@localhost:4223".into())
}

/// The test CA: `REFDESK_TEST_NATS_CA`, or the one `scripts/test.sh` makes.
fn ca() -> std::path::PathBuf {
    std::env::var("REFDESK_TEST_NATS_CA").unwrap_or_else(|_| "/tmp/refdesk-test-tls/ca.pem".into()).into()
}

/// `url()` split: the scheme, the user, the password and the host and port.
fn parts() -> (String, String, String, String) {
    let url = url();
    let (scheme, rest) = url.split_once("://").expect("a scheme");
    let (sign_in, host) = rest.rsplit_once('@').expect("a user and password in REFDESK_TEST_NATS_TLS_URL");
    let (user, password) = sign_in.split_once(':').expect("a user and password in REFDESK_TEST_NATS_TLS_URL");
    (scheme.into(), user.into(), password.into(), host.into())
}

/// The key the nodes share to seal envelopes (required with NATS).
const KEY: &str = "d41d8cd98f00b204e9800998ecf8427e0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e";

fn subject() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    format!("test.tls.{}.{nanos}", std::process::id())
}

fn entry(session: i64) -> QueueEntry {
    let place = Placement { library: LibraryId(1), institution: InstitutionId(1), cooperative: CooperativeId(1) };
    QueueEntry {
        session: SessionId(session),
        placement: place,
        library_name: "Main".into(),
        patron_name: "Pat".into(),
        question: "Where?".into(),
        since: 1,
        queue: place,
        coop_now: false,
        version: 0,
        asked_at: 1,
        away_since: None,
    }
}

/// The next event that is not a re-read.
async fn next_news(sub: &Subscription) -> Event {
    loop {
        let e = tokio::time::timeout(Duration::from_secs(10), sub.recv()).await.expect("an event arrives in time");
        match (*e).clone() {
            Event::Resync => continue,
            other => return other,
        }
    }
}

/// A new bus linked with `nats`, which must work at once, and a connection
/// of it in the queue, past the two re-reads linking makes (the second a
/// second after the link is up, by when its subscription is too).
async fn linked(nats: &NatsOptions, subject: &str) -> (Arc<Bus>, refdesk_app::bus::Subscription) {
    let bus = Bus::new();
    let sub = bus.subscribe(64);
    sub.join_queue(CooperativeId(1));
    link(bus.clone(), nats, subject)
        .await
        .unwrap_or_else(|e| panic!("NATS with TLS must be running at {} (scripts/test.sh starts it): {e}", nats.url));
    for _ in 0..2 {
        let e = tokio::time::timeout(Duration::from_secs(10), sub.recv()).await.expect("linked in time");
        assert_eq!(*e, Event::Resync, "linking makes the node re-read");
    }
    (bus, sub)
}

#[tokio::test]
async fn two_buses_linked_over_nats_with_tls_and_a_password_share_events() {
    // Node a has the password in its URL; node b has it set apart, with a
    // nats:// URL and TLS required by the setting.
    let (_, user, password, host) = parts();
    let in_url = NatsOptions { ca_file: Some(ca()), ..NatsOptions::with_key(url(), KEY) };
    let apart = NatsOptions {
        user: Some(user),
        password: Some(password),
        ca_file: Some(ca()),
        tls: true,
        ..NatsOptions::with_key(format!("nats://{host}"), KEY)
    };
    let subject = subject();
    let ((a, on_a), (b, on_b)) = tokio::join!(linked(&in_url, &subject), linked(&apart, &subject));

    a.publish(vec![Event::QueueAdded(entry(1))]);
    b.publish(vec![Event::QueueAdded(entry(2))]);

    assert_eq!(next_news(&on_b).await, Event::QueueAdded(entry(2)), "b's own, at once");
    assert_eq!(next_news(&on_b).await, Event::QueueAdded(entry(1)), "a's, over NATS");
    assert_eq!(next_news(&on_a).await, Event::QueueAdded(entry(1)), "a's own, at once");
    assert_eq!(next_news(&on_a).await, Event::QueueAdded(entry(2)), "b's, over NATS");
}

#[tokio::test]
async fn a_wrong_nats_password_is_an_error_at_start_that_names_the_server_and_not_the_password() {
    let (scheme, user, _, host) = parts();
    let wrong = NatsOptions {
        ca_file: Some(ca()),
        ..NatsOptions::with_key(format!("{scheme}://{user}:wr0ng-s3cret@{host}"), KEY)
    };
    let started = tokio::time::timeout(Duration::from_secs(15), link(Bus::new(), &wrong, &subject()))
        .await
        .expect("link answers at start, not after retrying");
    let e = started.err().expect("a wrong password is refused").to_string();
    assert!(e.contains(&host) && e.contains("refused"), "names the server: {e}");
    assert!(e.contains("authorization violation") && e.contains("password"), "says what to check: {e}");
    assert!(!e.contains("wr0ng-s3cret"), "never the password: {e}");
}

#[tokio::test]
async fn a_nats_certificate_from_an_unknown_ca_is_an_error_at_start() {
    // Without the test CA, only the system's CAs are trusted.
    let untrusted = NatsOptions::with_key(url(), KEY);
    let started = tokio::time::timeout(Duration::from_secs(15), link(Bus::new(), &untrusted, &subject()))
        .await
        .expect("link answers at start, not after retrying");
    let e = started.err().expect("an untrusted certificate is refused").to_string();
    let (_, _, password, host) = parts();
    assert!(e.contains(&host) && e.contains("nats_ca_file"), "names the server and what to check: {e}");
    assert!(!e.contains(&password), "never the password: {e}");
}
