//! The link between nodes: each node's [`Bus`] publishes what its store
//! committed on a NATS subject and delivers what the other nodes published
//! there. NATS carries committed events with their sequence numbers, so a
//! node never re-reads what it is handed; the database stays the source of
//! truth: a gap (a lost or late event) is filled from the store by the
//! connection that sees it, and when the link comes back after an outage
//! every connection re-reads what it follows ([`Bus::resync`]).
//!
//! Each event crosses NATS once, inside an [`Envelope`] naming the node
//! that sent it; a node ignores its own (its connections already had them).

use crate::bus::Bus;
use crate::{AppError, AppResult};
use futures_util::StreamExt;
use refdesk_domain::event::Event;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Batches waiting to be sent before the link is counted as behind.
const OUTBOX: usize = 4096;
/// How often a node says how far it got (an envelope with no events and
/// its latest number), so that a loss at the end of a burst is noticed, and
/// sends its watcher lists again.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// Another node's watcher list not said again for this long is a dead node's.
const WATCHERS_TTL: Duration = Duration::from_secs(20);
/// A node not heard from for this long (no heartbeat) is forgotten.
const FORGET_NODE: Duration = Duration::from_secs(60);
/// An envelope is closed once its events take this many bytes (NATS refuses
/// messages over 1 MiB by default).
const ENVELOPE_BYTES: usize = 256 * 1024;

/// What crosses NATS.
#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The node that published it.
    node: String,
    /// Its number among that node's envelopes: 1, 2, 3… A receiver that
    /// sees a number skipped has missed something and re-reads the store.
    /// A heartbeat (no events) repeats the latest number.
    seq: u64,
    /// Its events, in commit order.
    events: Vec<Event>,
}

/// A running link. The tasks it started stop when the process does.
pub struct Link {
    /// This node's name on the link (random, new at every start).
    pub node: String,
}

/// A URL fit for logs: without the user, password or token in it, nor its
/// query (which may hold a password too).
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, _)) => (base, "?***"),
        None => (url, ""),
    };
    let shown = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}***@{}", &base[..scheme + 3], &base[at + 1..]),
        (None, Some(at)) => format!("***@{}", &base[at + 1..]),
        _ => base.to_owned(),
    };
    shown + query
}

/// Links `bus` to the other nodes through the NATS server at `url`, on
/// `subject`. Returns once the link is set up; if NATS is unreachable it
/// keeps trying in the background (the node serves its own connections
/// meanwhile, and re-reads from the store once linked).
pub async fn link(bus: Arc<Bus>, url: &str, subject: &str) -> AppResult<Link> {
    let node = crate::auth::new_token()?.chars().take(16).collect::<String>();
    let on_event = bus.clone();
    let shown = redact_url(url);
    let server = shown.clone();
    let options = async_nats::ConnectOptions::new()
        .name(format!("refdesk-{node}"))
        .retry_on_initial_connect()
        .event_callback(move |event| {
            let (bus, server) = (on_event.clone(), server.clone());
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!("linked to the other nodes over NATS; re-reading from the store");
                        // Watching that began while the link was down is
                        // told to the other nodes now.
                        bus.republish_watchers();
                        bus.resync();
                        // The client renews its subscription as it reconnects;
                        // a second pass covers anything published just then.
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            bus.resync();
                        });
                    }
                    async_nats::Event::Disconnected => {
                        tracing::warn!(%server, "lost NATS: other nodes' events wait until it is back")
                    }
                    async_nats::Event::ClientError(e) => {
                        tracing::warn!(%server, error = %e, "cannot reach NATS; the node serves its own connections meanwhile")
                    }
                    other => tracing::debug!(event = %other, "NATS"),
                }
            }
        });
    let client = options
        .connect(url)
        .await
        .map_err(|e| AppError::Internal(format!("cannot use the NATS server at {shown}: {e}")))?;
    let mut inbound = client
        .subscribe(subject.to_owned())
        .await
        .map_err(|e| AppError::Internal(format!("cannot subscribe to {subject} on NATS: {e}")))?;
    let (uplink, mut outbound) = mpsc::channel::<Vec<Event>>(OUTBOX);
    bus.set_uplink(uplink).map_err(|_| AppError::Internal("this bus is already linked".into()))?;

    let (sender, me, to, local) = (client.clone(), node.clone(), subject.to_owned(), bus.clone());
    tokio::spawn(async move {
        let mut seq = 0u64;
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let batches = tokio::select! {
                batch = outbound.recv() => match batch {
                    Some(events) => {
                        if local.take_uplink_overflow() {
                            seq += 1; // a number nobody receives: the other nodes re-read the store
                        }
                        envelopes(events)
                    }
                    None => break,
                },
                _ = beat.tick() => {
                    local.republish_watchers();
                    local.expire_remote_watchers(WATCHERS_TTL);
                    vec![Vec::new()]
                }
            };
            for events in batches {
                if !events.is_empty() {
                    seq += 1;
                }
                let payload = match serde_json::to_vec(&Envelope { node: me.clone(), seq, events }) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot encode events for the other nodes");
                        continue;
                    }
                };
                if let Err(e) = sender.publish(to.clone(), payload.into()).await {
                    tracing::warn!(error = %e, "cannot publish to NATS; the other nodes will re-read from the store");
                }
            }
        }
    });

    let me = node.clone();
    tokio::spawn(async move {
        // Each node's latest envelope number, and when it was last heard.
        // Node names are new at every start, so a node silent for
        // `FORGET_NODE` (stopped, or replaced by a restart) is forgotten.
        let mut last: HashMap<String, (u64, std::time::Instant)> = HashMap::new();
        while let Some(message) = inbound.next().await {
            match serde_json::from_slice::<Envelope>(&message.payload) {
                Ok(envelope) if envelope.node == me => {}
                Ok(envelope) => {
                    let heartbeat = envelope.events.is_empty();
                    let now = std::time::Instant::now();
                    last.retain(|_, (_, heard)| now.duration_since(*heard) < FORGET_NODE);
                    let before = last.get(&envelope.node).map(|(seq, _)| *seq);
                    let missed = match before {
                        Some(b) if heartbeat => envelope.seq > b,
                        Some(b) => envelope.seq != b + 1,
                        // A node heard of for the first time, or again after
                        // it was forgotten: past its first envelope, what it
                        // sent before may have been missed.
                        None => envelope.seq > 1,
                    };
                    last.insert(envelope.node.clone(), (envelope.seq.max(before.unwrap_or(0)), now));
                    if !heartbeat {
                        bus.deliver_remote(&envelope.node, envelope.events);
                    }
                    if missed {
                        tracing::warn!(node = %envelope.node, "missed events from another node; re-reading from the store");
                        bus.resync();
                    }
                }
                Err(e) => tracing::warn!(error = %e, "ignored a NATS message that is not a refdesk event batch"),
            }
        }
        tracing::warn!("the NATS subscription ended");
    });
    Ok(Link { node })
}

/// Splits a batch into envelopes of at most about [`ENVELOPE_BYTES`].
fn envelopes(events: Vec<Event>) -> Vec<Vec<Event>> {
    let mut out: Vec<Vec<Event>> = Vec::new();
    let mut size = 0;
    for event in events {
        let bytes = serde_json::to_vec(&event).map_or(0, |v| v.len());
        if out.is_empty() || size + bytes > ENVELOPE_BYTES {
            out.push(Vec::new());
            size = 0;
        }
        size += bytes;
        if let Some(last) = out.last_mut() {
            last.push(event);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_a_nats_url_are_not_shown() {
        assert_eq!(redact_url("nats://user:pass@host:4222"), "nats://***@host:4222");
        assert_eq!(redact_url("nats://token@host"), "nats://***@host");
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
        assert_eq!(redact_url("postgres://h/db?password=x"), "postgres://h/db?***");
        assert_eq!(redact_url("user:pw@host:4222"), "***@host:4222");
    }

    #[test]
    fn large_batches_are_split_and_nothing_is_dropped() {
        let big = "x".repeat(100_000);
        let events: Vec<Event> = (0..10)
            .map(|i| Event::SignedOut { staff: refdesk_domain::ids::StaffId(i) })
            .chain((0..6).map(|_| Event::Typing {
                ctx: refdesk_domain::chat::SessionContext {
                    id: refdesk_domain::ids::SessionId(1),
                    placement: refdesk_domain::org::Placement {
                        library: refdesk_domain::ids::LibraryId(1),
                        institution: refdesk_domain::ids::InstitutionId(1),
                        cooperative: refdesk_domain::ids::CooperativeId(1),
                    },
                    librarian: None,
                    question: None,
                    referred: None,
                    members: Vec::new(),
                    version: 0,
                },
                audience: refdesk_domain::chat::Audience::Everyone,
                who: big.clone(),
                on: true,
            }))
            .collect();
        let split = envelopes(events.clone());
        assert!(split.len() >= 3, "{} envelopes", split.len());
        assert_eq!(split.concat(), events, "in order, nothing lost");
        for e in &split {
            assert!(serde_json::to_vec(e).unwrap().len() < 1024 * 1024);
        }
    }
}
