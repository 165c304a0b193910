//! `refdesk bench-relay`: the baseline refdesk's speed is measured against
//! (`scripts/bench-pinned.sh`, docs/performance.md).
//!
//! A bare WebSocket relay on the stack refdesk itself runs on — axum's
//! WebSocket (tungstenite) on tokio, mimalloc, the same socket buffers and
//! `TCP_NODELAY` — that stores nothing, checks nothing and parses nothing:
//! the two sockets of pair `N` connect to `/relay/N/patron` and
//! `/relay/N/staff`, and every text frame one sends is written, as it is,
//! to the other. That is the least any chat server must do per message (read
//! a frame, find the other side, write a frame), so the ratio of refdesk's
//! CPU per message to the relay's is what durability, authorization,
//! acknowledgements and fan-out cost.
//!
//! Each socket has a reader task, which forwards to the peer's bounded
//! queue, and a writer task, which drains its own.

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::routing::get;
use axum::serve::ListenerExt as _;
use axum::Router;
use futures_util::{SinkExt as _, StreamExt as _};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Frames a socket may have waiting to be written before its peer waits.
const QUEUE: usize = 256;

/// Each pair's two sides: where to forward to, once that side is connected.
#[derive(Default)]
struct Pairs(Mutex<HashMap<u64, [Option<mpsc::Sender<Utf8Bytes>>; 2]>>);

impl Pairs {
    fn join(&self, pair: u64, side: usize, tx: mpsc::Sender<Utf8Bytes>) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(pair).or_default()[side] = Some(tx);
    }

    fn peer(&self, pair: u64, side: usize) -> Option<mpsc::Sender<Utf8Bytes>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&pair).and_then(|sides| sides[1 - side].clone())
    }

    fn leave(&self, pair: u64, side: usize) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sides) = map.get_mut(&pair) {
            sides[side] = None;
            if sides.iter().all(Option::is_none) {
                map.remove(&pair);
            }
        }
    }
}

/// Serves the relay on `listen` (loopback only: it checks nothing) until
/// the process is stopped.
pub async fn run(listen: SocketAddr) -> anyhow::Result<()> {
    if !listen.ip().is_loopback() {
        anyhow::bail!("the bare relay checks nothing: it listens on loopback addresses only, not {}", listen.ip());
    }
    let app = Router::new().route("/relay/{pair}/{side}", get(upgrade)).with_state(Arc::new(Pairs::default()));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let at = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    println!("the bare relay is serving on ws://{at}/relay/{{pair}}/{{patron|staff}}");
    axum::serve(listener, app).await?;
    Ok(())
}

async fn upgrade(
    ws: WebSocketUpgrade,
    Path((pair, side)): Path<(u64, String)>,
    State(pairs): State<Arc<Pairs>>,
) -> Response {
    let side = usize::from(side == "staff");
    ws.read_buffer_size(refdesk_server::ws::READ_BUFFER)
        .write_buffer_size(refdesk_server::ws::WRITE_BUFFER)
        .on_upgrade(move |socket| relay(socket, pairs, pair, side))
}

/// One socket: what it sends goes to its peer; what its peer sends, to it.
/// Reading and writing are two tasks, so that a side waiting for room in its
/// peer's queue still drains its own (two full queues would otherwise wait
/// on each other for ever).
async fn relay(socket: WebSocket, pairs: Arc<Pairs>, pair: u64, side: usize) {
    let (tx, mut rx) = mpsc::channel::<Utf8Bytes>(QUEUE);
    pairs.join(pair, side, tx);
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::Text(text)).await.is_err() {
                break;
            }
        }
    });
    let mut peer = None;
    while let Some(Ok(frame)) = stream.next().await {
        let Message::Text(text) = frame else { continue };
        if peer.is_none() {
            peer = pairs.peer(pair, side);
        }
        // A peer not (or no longer) there: the frame is dropped.
        if let Some(p) = &peer {
            if p.send(text).await.is_err() {
                peer = None;
            }
        }
    }
    pairs.leave(pair, side);
    writer.abort();
}
