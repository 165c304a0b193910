//! What sockets a visitor holds, and the frames they may send: open
//! sockets counted per chat token, per staff sign-in and per client address
//! (the `sockets_per_…` limits), and one frame budget (a token bucket,
//! `frames_per_second` and `frame_burst`) shared by the sockets of one key,
//! so that opening more of them does not multiply it.

use refdesk_domain::ids::SessionId;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A token bucket: `rate` frames per second, bursts of `burst`.
pub struct Bucket {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl Bucket {
    fn new(rate: u32, burst: u32) -> Bucket {
        Bucket { tokens: burst as f64, rate: rate as f64, burst: burst as f64, at: Instant::now() }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
    }

    pub(super) fn take(&mut self) -> bool {
        self.refill();
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn full(&mut self) -> bool {
        self.refill();
        self.tokens >= self.burst
    }
}

/// Open sockets per key — a chat, a staff sign-in, a client address — and
/// the frame budget the sockets of one key share. A key whose sockets have
/// all closed keeps its budget until it has refilled: closing and opening
/// again does not buy a fresh burst.
pub struct Registry<K> {
    map: Mutex<RegistryMap<K>>,
}

struct RegistryMap<K> {
    entries: HashMap<K, Entry>,
    /// Size at which keys with no socket and a full budget are forgotten.
    prune_at: usize,
}

struct Entry {
    open: usize,
    bucket: Arc<Mutex<Bucket>>,
}

impl<K> Default for Registry<K> {
    fn default() -> Self {
        Registry { map: Mutex::new(RegistryMap { entries: HashMap::new(), prune_at: 1024 }) }
    }
}

/// One open socket's place under a key, given back when dropped.
pub struct Held<K: Hash + Eq + Clone> {
    registry: Arc<Registry<K>>,
    key: K,
    /// The frame budget shared by the key's sockets.
    bucket: Arc<Mutex<Bucket>>,
}

impl<K: Hash + Eq + Clone> Registry<K> {
    /// A place under `key` if fewer than `cap` sockets hold one.
    pub(super) fn take(self: &Arc<Self>, key: K, cap: usize, limits: &refdesk_app::Limits) -> Option<Held<K>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.entries.len() >= map.prune_at {
            map.entries.retain(|_, e| e.open > 0 || !e.bucket.lock().unwrap_or_else(|p| p.into_inner()).full());
            map.prune_at = (map.entries.len() * 2).max(1024);
        }
        let entry = map.entries.entry(key.clone()).or_insert_with(|| Entry {
            open: 0,
            bucket: Arc::new(Mutex::new(Bucket::new(limits.frames_per_second, limits.frame_burst))),
        });
        if entry.open >= cap {
            return None;
        }
        entry.open += 1;
        Some(Held { registry: self.clone(), key, bucket: entry.bucket.clone() })
    }

    /// Sockets open under `key` now.
    pub fn open(&self, key: &K) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).entries.get(key).map_or(0, |e| e.open)
    }
}

impl<K: Hash + Eq + Clone> Drop for Held<K> {
    fn drop(&mut self) {
        let mut map = self.registry.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = map.entries.get_mut(&self.key) {
            e.open -= 1;
            if e.open == 0 && e.bucket.lock().unwrap_or_else(|p| p.into_inner()).full() {
                map.entries.remove(&self.key);
            }
        }
    }
}

/// Every open socket of the node, counted per chat, per staff sign-in and
/// per client address (see the `sockets_per_…` limits).
#[derive(Default)]
pub struct Sockets {
    pub(super) chats: Arc<Registry<SessionId>>,
    pub(super) sign_ins: Arc<Registry<String>>,
    pub(super) addresses: Arc<Registry<IpAddr>>,
    /// Sockets per client address still waiting for their `auth` frame.
    pub(super) pending: Arc<Registry<IpAddr>>,
}

/// A socket's place under its chat or its staff sign-in.
pub(super) enum Slot {
    Chat(Held<SessionId>),
    SignIn(Held<String>),
}

impl Slot {
    pub(super) fn bucket(&self) -> &Arc<Mutex<Bucket>> {
        match self {
            Slot::Chat(h) => &h.bucket,
            Slot::SignIn(h) => &h.bucket,
        }
    }
}
