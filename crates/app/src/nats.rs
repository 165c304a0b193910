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
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Batches waiting to be sent before the link is counted as behind.
const OUTBOX: usize = 4096;
/// Events sent in one NATS message at most (keeps it far under NATS's 1 MB).
const PER_MESSAGE: usize = 32;

/// What crosses NATS.
#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The node that published it.
    node: String,
    /// Its events, in commit order.
    events: Vec<Event>,
}

/// A running link. The tasks it started stop when the process does.
pub struct Link {
    /// This node's name on the link (random, new at every start).
    pub node: String,
    /// The NATS client, for status.
    pub client: async_nats::Client,
}

impl Link {
    /// Whether NATS is connected now.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }
}

/// Links `bus` to the other nodes through the NATS server at `url`, on
/// `subject`. Returns once the link is set up; if NATS is unreachable it
/// keeps trying in the background (the node serves its own connections
/// meanwhile, and re-reads from the store once linked).
pub async fn link(bus: Arc<Bus>, url: &str, subject: &str) -> AppResult<Link> {
    let node = crate::auth::new_token()?.chars().take(16).collect::<String>();
    let on_event = bus.clone();
    let options = async_nats::ConnectOptions::new()
        .name(format!("refdesk-{node}"))
        .retry_on_initial_connect()
        .event_callback(move |event| {
            let bus = on_event.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!("linked to the other nodes over NATS; re-reading from the store");
                        bus.resync();
                        // Subscriptions are renewed just after the reconnect:
                        // a second pass covers what was published in between.
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            bus.resync();
                        });
                    }
                    async_nats::Event::Disconnected => {
                        tracing::warn!("lost NATS: other nodes' events wait until it is back")
                    }
                    other => tracing::debug!(event = %other, "NATS"),
                }
            }
        });
    let client = options
        .connect(url)
        .await
        .map_err(|e| AppError::Internal(format!("cannot use the NATS server at {url}: {e}")))?;
    let mut inbound = client
        .subscribe(subject.to_owned())
        .await
        .map_err(|e| AppError::Internal(format!("cannot subscribe to {subject} on NATS: {e}")))?;
    let (uplink, mut outbound) = mpsc::channel::<Vec<Event>>(OUTBOX);
    bus.set_uplink(uplink).map_err(|_| AppError::Internal("this bus is already linked".into()))?;

    let (sender, me, to) = (client.clone(), node.clone(), subject.to_owned());
    tokio::spawn(async move {
        while let Some(events) = outbound.recv().await {
            for chunk in events.chunks(PER_MESSAGE) {
                let envelope = Envelope { node: me.clone(), events: chunk.to_vec() };
                let payload = match serde_json::to_vec(&envelope) {
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
        while let Some(message) = inbound.next().await {
            match serde_json::from_slice::<Envelope>(&message.payload) {
                Ok(envelope) if envelope.node == me => {}
                Ok(envelope) => bus.deliver_remote(&envelope.node, envelope.events),
                Err(e) => tracing::warn!(error = %e, "ignored a NATS message that is not a refdesk event batch"),
            }
        }
        tracing::warn!("the NATS subscription ended");
    });
    Ok(Link { node, client })
}
