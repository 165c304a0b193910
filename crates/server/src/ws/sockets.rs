//! What sockets a visitor holds, and the frames they may send: open
//! sockets counted per chat token, per staff sign-in and per client address
//! (the `sockets_per_…` limits), and one frame budget (a token bucket,
//! `frames_per_second` and `frame_burst`) shared by the sockets of one key,
//! so that opening more of them does not multiply it. Patrons' frames are
//! counted twice: under their chat, and under their network
//! (`patron_frames_per_second_per_address`), so that many chats' tokens on
//! one network do not multiply the budget either.

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
        let has = self.has_one();
        if has {
            self.tokens -= 1.0;
        }
        has
    }

    /// Whether a frame may be taken now.
    fn has_one(&mut self) -> bool {
        self.refill();
        self.tokens >= 1.0
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
    /// A place under `key` if fewer than `cap` sockets hold one; a new key's
    /// frame budget is `(rate, burst)`.
    pub(super) fn take(self: &Arc<Self>, key: K, cap: usize, (rate, burst): (u32, u32)) -> Option<Held<K>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.entries.len() >= map.prune_at {
            map.entries.retain(|_, e| e.open > 0 || !e.bucket.lock().unwrap_or_else(|p| p.into_inner()).full());
            map.prune_at = (map.entries.len() * 2).max(1024);
        }
        let entry = map
            .entries
            .entry(key.clone())
            .or_insert_with(|| Entry { open: 0, bucket: Arc::new(Mutex::new(Bucket::new(rate, burst))) });
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

impl<K: Hash + Eq + Clone> Held<K> {
    /// The frame budget the key's sockets share.
    pub(super) fn bucket(&self) -> Arc<Mutex<Bucket>> {
        self.bucket.clone()
    }
}

/// The frame budget of a chat's or a sign-in's sockets: `(rate, burst)`.
pub(super) fn per_key(limits: &refdesk_app::Limits) -> (u32, u32) {
    (limits.frames_per_second, limits.frame_burst)
}

/// The budget of the frames all patrons' sockets of one network send
/// together: `patron_frames_per_second_per_address`, bursts of three
/// seconds' worth.
pub(super) fn per_address(limits: &refdesk_app::Limits) -> (u32, u32) {
    let rate = limits.patron_frames_per_second_per_address;
    (rate, rate.saturating_mul(3))
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

/// A socket's place under its chat (with its network's patron frame
/// budget, when the address is known) or its staff sign-in.
pub(super) enum Slot {
    Chat(Held<SessionId>, Option<Arc<Mutex<Bucket>>>),
    SignIn(Held<String>),
}

impl Slot {
    /// Takes a frame from the budgets this socket shares: its chat's or
    /// sign-in's, and a patron's network's as well.
    /// A frame the network refuses costs the chat nothing, and the other
    /// way round.
    pub(super) fn take(&self) -> bool {
        fn lock(b: &Mutex<Bucket>) -> std::sync::MutexGuard<'_, Bucket> {
            b.lock().unwrap_or_else(|p| p.into_inner())
        }
        match self {
            Slot::Chat(h, Some(network)) => {
                // Always the chat's, then the network's: one order.
                let (mut own, mut shared) = (lock(&h.bucket), lock(network));
                let both = own.has_one() && shared.has_one();
                if both {
                    own.tokens -= 1.0;
                    shared.tokens -= 1.0;
                }
                both
            }
            Slot::Chat(h, None) => lock(&h.bucket).take(),
            Slot::SignIn(h) => lock(&h.bucket).take(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_one_budget_refuses_costs_the_other_nothing() {
        let (chats, networks) = (Arc::new(Registry::<SessionId>::default()), Arc::new(Registry::<IpAddr>::default()));
        let network = networks.take([192, 0, 2, 1].into(), 10, (1, 1)).unwrap();
        let slot = Slot::Chat(chats.take(SessionId(1), 4, (1, 3)).unwrap(), Some(network.bucket()));
        assert!(slot.take(), "both budgets had a frame");
        assert!(!slot.take(), "the network's is spent");
        // The chat's own budget lost nothing to the refused frame: two left.
        let alone = Slot::Chat(chats.take(SessionId(1), 4, (1, 3)).unwrap(), None);
        assert!(alone.take() && alone.take(), "the refused frame was charged to the chat");
        assert!(!alone.take());
    }
}
