//! What sockets a visitor holds, and the frames they may send: open
//! sockets counted per chat token, per staff sign-in and per client address
//! (the `sockets_per_…` limits), and one frame budget (a token bucket,
//! `frames_per_second` and `frame_burst`) shared by the sockets of one key,
//! so that opening more of them does not multiply it. Patrons' frames are
//! counted twice: under their chat, and under their network
//! (`patron_frames_per_second_per_address`), so that many chats' tokens on
//! one network do not multiply the budget either; an IPv6 /64's budget is
//! backed by its /56's and its /48's (4 and 16 times as large, as for the
//! rate limits of `crate::limit`), so that many /64s of one subscriber's
//! /48 do not multiply it.

use refdesk_domain::ids::SessionId;
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

    /// How long until a frame may be taken.
    fn wait(&mut self) -> Duration {
        self.refill();
        Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).max(0.0))
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

impl<K: Hash + Eq> RegistryMap<K> {
    /// Past `prune_at` keys, forgets those with no socket open and a full
    /// budget (forgetting them changes nothing).
    fn make_room(&mut self) {
        if self.entries.len() >= self.prune_at {
            self.entries.retain(|_, e| e.open > 0 || !e.bucket.lock().unwrap_or_else(|p| p.into_inner()).full());
            self.prune_at = (self.entries.len() * 2).max(1024);
        }
    }
}

impl<K: Hash + Eq + Clone> Registry<K> {
    /// A place under `key` if fewer than `cap` sockets hold one; a new key's
    /// frame budget is `(rate, burst)`.
    pub(super) fn take(self: &Arc<Self>, key: K, cap: usize, (rate, burst): (u32, u32)) -> Option<Held<K>> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.make_room();
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

    /// Spends one of `key`'s budget for what is not a socket (a staff
    /// member's HTTP write or read, keyed by their account; a known desk's
    /// socket opening, keyed by its sign-in): whether it had one. A new key's budget is `(rate, burst)`;
    /// it is kept while it is not full again, as a closed socket's is.
    pub(crate) fn spend(&self, key: K, (rate, burst): (u32, u32)) -> bool {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.make_room();
        let entry = map
            .entries
            .entry(key)
            .or_insert_with(|| Entry { open: 0, bucket: Arc::new(Mutex::new(Bucket::new(rate, burst))) });
        let spent = entry.bucket.lock().unwrap_or_else(|p| p.into_inner()).take();
        spent
    }

    /// Sockets open under `key` now.
    pub fn open(&self, key: &K) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).entries.get(key).map_or(0, |e| e.open)
    }
}

impl Sockets {
    /// Whether `ip`'s address (an IPv6 address's /64) holds more than `cap`
    /// sockets, or for IPv6 its /56 or /48 more than `cap` times theirs.
    pub(super) fn over_cap(&self, ip: IpAddr, cap: usize) -> bool {
        refdesk_domain::net::networks(ip).any(|(prefix, net, times)| {
            let open = if prefix < 64 { self.wider.open(&(prefix, net)) } else { self.addresses.open(&net) };
            open > cap.saturating_mul(times as usize)
        })
    }
}

impl<K: Hash + Eq + Clone> Held<K> {
    /// The frame budget the key's sockets share.
    pub(super) fn bucket(&self) -> Arc<Mutex<Bucket>> {
        self.bucket.clone()
    }
}

/// The frame budget of a chat's or a sign-in's sockets: `(rate, burst)`.
pub(crate) fn per_key(limits: &refdesk_app::Limits) -> (u32, u32) {
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
    /// A staff sign-in's sockets and their frame budget (keyed by the
    /// sign-in's digest; their openings spend it too), a staff member's
    /// sockets and the budget of all their frames (keyed `sockets:{id}`,
    /// [`StaffPlace`]), and a staff member's budget of HTTP writes (keyed
    /// `staff:{id}`, no socket).
    pub(crate) sign_ins: Arc<Registry<String>>,
    /// The budget of a staff member's reads over HTTP, all their sign-ins
    /// together (`staff_reads_per_second`, keyed `staff:{id}`); no socket is
    /// counted here.
    pub(crate) sign_in_reads: Arc<Registry<String>>,
    pub(super) addresses: Arc<Registry<IpAddr>>,
    /// The patron frame budgets of the IPv6 /56s and /48s with sockets open
    /// (keyed by prefix length and network address), and their sockets,
    /// open or opening: capped at [`crate::limit::networks`]' multiple of
    /// `sockets_per_address`. The connection caps of `crate::conn` hold
    /// there too, but not behind a trusted proxy, whose connections are
    /// many clients' (nginx's own per-address limit counts whole addresses,
    /// and one /64 holds 2⁶⁴ of them).
    pub(super) wider: Arc<Registry<(u8, IpAddr)>>,
    /// Sockets per client address still waiting for their `auth` frame.
    pub(super) pending: Arc<Registry<IpAddr>>,
}

/// The patron frame budgets a socket's network shares: its own (an IPv4
/// address, an IPv6 /64) and, for IPv6, its /56's and /48's, each held
/// (counted in their registry) while the socket lives.
pub struct Network {
    own: Arc<Mutex<Bucket>>,
    wider: Vec<Held<(u8, IpAddr)>>,
}

impl Network {
    /// The budgets of `ip`'s networks, and the socket's places in its /56
    /// and /48 (IPv6), each holding `cap` times its multiple; `own` is its
    /// address's place (the /64's, for IPv6) in [`Sockets::addresses`].
    /// `None`: a wider network is full.
    pub(super) fn of(
        sockets: &Sockets,
        own: &Held<IpAddr>,
        ip: IpAddr,
        cap: usize,
        (rate, burst): (u32, u32),
    ) -> Option<Network> {
        let wider = crate::limit::networks(ip)
            .filter(|(prefix, _, _)| *prefix < 64)
            .map(|(prefix, net, times)| {
                let budget = (rate.saturating_mul(times), burst.saturating_mul(times));
                sockets.wider.take((prefix, net), cap.saturating_mul(times as usize), budget)
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Network { own: own.bucket(), wider })
    }
}

/// A socket's place under its chat (with its network's patron frame
/// budgets, when the address is known) or its staff sign-in.
pub(super) enum Slot {
    Chat(Held<SessionId>, Option<Arc<Network>>),
    /// Boxed: a patron's socket, the many, does not carry its size.
    SignIn(Box<StaffPlace>),
}

/// A staff socket's places: under its sign-in, which caps its sockets
/// (`sockets_per_sign_in`) and whose frame budget they share, and under its
/// account (keyed `sockets:{id}`, uncapped), whose budget of
/// [`ACCOUNT_SIGN_INS`] sign-ins' worth every socket of the staff member
/// shares besides, whatever sign-in it came with — so that signing in
/// again and again (up to `sign_ins_per_account`, 20) multiplies the frames
/// a password sends by five at most, while a desk account shared by a few
/// workstations reconnecting at once is not held to one sign-in's worth.
pub(super) struct StaffPlace {
    pub(super) sign_in: Held<String>,
    pub(super) account: Held<String>,
}

/// How many sign-ins' frame budgets a staff member's sockets have together.
pub(super) const ACCOUNT_SIGN_INS: u32 = 5;

/// The key of a staff member's socket frame budget in [`Sockets::sign_ins`].
pub(super) fn account_key(staff: refdesk_domain::ids::StaffId) -> String {
    format!("sockets:{}", staff.0)
}

/// The frame budget of a staff member's sockets together: `(rate, burst)`.
pub(super) fn per_account(limits: &refdesk_app::Limits) -> (u32, u32) {
    let (rate, burst) = per_key(limits);
    (rate.saturating_mul(ACCOUNT_SIGN_INS), burst.saturating_mul(ACCOUNT_SIGN_INS))
}

impl Slot {
    /// Spends the opening of a staff socket from its account's budget (its
    /// sign-in's was spent at the upgrade, when the node knew it): twenty
    /// sign-ins of one password would otherwise open twenty sign-ins'
    /// worth. `false`: spent; the socket must not open. A patron's is
    /// counted by its address at the upgrade.
    pub(super) fn opened(&self) -> bool {
        match self {
            Slot::Chat(..) => true,
            Slot::SignIn(place) => place.account.bucket.lock().unwrap_or_else(|p| p.into_inner()).take(),
        }
    }

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
                // Always the /56's, the /48's, the chat's, then the
                // address's: one order, for every socket (a lock of each
                // rank at most, in rising rank: no two sockets can wait on
                // each other). No allocation: this is every frame's path.
                let mut wider: [Option<std::sync::MutexGuard<'_, Bucket>>; 2] = [None, None];
                for (guard, held) in wider.iter_mut().zip(&network.wider) {
                    *guard = Some(lock(&held.bucket));
                }
                let (mut own, mut net) = (lock(&h.bucket), lock(&network.own));
                let every = own.has_one() && net.has_one() && wider.iter_mut().flatten().all(|b| b.has_one());
                if every {
                    for b in [&mut own, &mut net].into_iter().chain(wider.iter_mut().flatten()) {
                        b.tokens -= 1.0;
                    }
                }
                every
            }
            Slot::Chat(h, None) => lock(&h.bucket).take(),
            Slot::SignIn(place) => {
                // The sign-in's, then the account's: one order for every
                // staff socket.
                let (mut own, mut account) = (lock(&place.sign_in.bucket), lock(&place.account.bucket));
                let both = own.has_one() && account.has_one();
                if both {
                    own.tokens -= 1.0;
                    account.tokens -= 1.0;
                }
                both
            }
        }
    }

    /// How long until every budget this socket shares has a frame again
    /// (each locked alone: a wait, not a promise).
    pub(super) fn wait(&self) -> Duration {
        let wait = |b: &Mutex<Bucket>| b.lock().unwrap_or_else(|p| p.into_inner()).wait();
        match self {
            Slot::Chat(h, Some(network)) => {
                let wider = network.wider.iter().map(|held| wait(&held.bucket));
                wider.chain([wait(&h.bucket), wait(&network.own)]).max().unwrap_or_default()
            }
            Slot::Chat(h, None) => wait(&h.bucket),
            Slot::SignIn(place) => wait(&place.sign_in.bucket).max(wait(&place.account.bucket)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_whose_sockets_closed_are_forgotten_once_their_budget_refills() {
        // A flood of chats (or sign-ins, or addresses), each opening a
        // socket, spending its budget and closing: each key is kept until
        // its budget refills (1 ms here), then pruned, so the map holds
        // those of the last moments, not all.
        let registry = Arc::new(Registry::<SessionId>::default());
        for chat in 0..100_000 {
            let held = registry.take(SessionId(chat), 4, (1000, 1)).unwrap();
            assert!(lock(&held.bucket).take());
            drop(held);
            let kept = registry.map.lock().unwrap().entries.len();
            // At most the last 1,000 keys' budgets have not refilled.
            assert!(kept <= 4096, "{kept} keys kept at chat {chat}");
            if chat % 1000 == 999 {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
        // A key whose budget is spent is kept, so closing and opening again
        // does not refill it.
        let held = registry.take(SessionId(-1), 4, (1, 1)).unwrap();
        assert!(lock(&held.bucket).take());
        drop(held);
        let again = registry.take(SessionId(-1), 4, (1, 1)).unwrap();
        assert!(!lock(&again.bucket).take(), "a new socket refilled a spent budget");
    }

    fn lock(b: &Mutex<Bucket>) -> std::sync::MutexGuard<'_, Bucket> {
        b.lock().unwrap()
    }

    #[test]
    fn a_frame_one_budget_refuses_costs_the_other_nothing() {
        let (chats, networks) = (Arc::new(Registry::<SessionId>::default()), Arc::new(Registry::<IpAddr>::default()));
        let network = networks.take([192, 0, 2, 1].into(), 10, (1, 1)).unwrap();
        let network = Arc::new(Network { own: network.bucket(), wider: Vec::new() });
        let slot = Slot::Chat(chats.take(SessionId(1), 4, (1, 3)).unwrap(), Some(network));
        assert!(slot.take(), "both budgets had a frame");
        assert!(!slot.take(), "the network's is spent");
        // The chat's own budget lost nothing to the refused frame: two left.
        let alone = Slot::Chat(chats.take(SessionId(1), 4, (1, 3)).unwrap(), None);
        assert!(alone.take() && alone.take(), "the refused frame was charged to the chat");
        assert!(!alone.take());
    }

    #[test]
    fn a_socket_waits_for_the_slowest_of_its_budgets_to_have_a_frame() {
        let (chats, networks) = (Arc::new(Registry::<SessionId>::default()), Arc::new(Registry::<IpAddr>::default()));
        let network = networks.take([192, 0, 2, 1].into(), 10, (2, 1)).unwrap();
        let network = Arc::new(Network { own: network.bucket(), wider: Vec::new() });
        let slot = Slot::Chat(chats.take(SessionId(1), 4, (100, 1)).unwrap(), Some(network));
        assert_eq!(slot.wait(), Duration::ZERO, "a frame is there");
        assert!(slot.take());
        // The chat's budget refills in 10 ms, the network's in 500.
        let wait = slot.wait();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        let alone = Slot::Chat(chats.take(SessionId(2), 4, (100, 1)).unwrap(), None);
        assert!(alone.take());
        assert!(alone.wait() <= Duration::from_millis(10), "{:?}", alone.wait());
    }

    #[test]
    fn the_patron_sockets_of_many_64s_of_one_56_or_48_share_its_wider_frame_budget() {
        let sockets = Sockets::default();
        // Bursts of 3 frames per /64: its /56 has 12, its /48 48.
        let budget = (1, 3);
        let socket = |ip: IpAddr, chat: i64| {
            let own = sockets.addresses.take(crate::limit::address_key(ip), 128, budget).unwrap();
            let network = Arc::new(Network::of(&sockets, &own, ip, usize::MAX, budget).unwrap());
            let slot = Slot::Chat(sockets.chats.take(SessionId(chat), 4, (1000, 1000)).unwrap(), Some(network));
            (own, slot)
        };
        let frames = |slot: &Slot| (0..10).filter(|_| slot.take()).count();
        // One chat in each of 256 /64s of one /56: twelve frames between them, not 768.
        let in_56 = |i: u128| IpAddr::from(std::net::Ipv6Addr::from((0x2001_0db8_0001_0000u128 << 64) | (i << 64)));
        let held: Vec<_> = (0..256).map(|i| socket(in_56(i), i as i64)).collect();
        let sent: usize = held.iter().map(|(_, slot)| frames(slot)).sum();
        assert_eq!(sent, 12, "the /56's budget");
        // The /48's other /56s: its 48 less the 12 spent.
        let in_48 = |i: u128| IpAddr::from(std::net::Ipv6Addr::from((0x2001_0db8_0001_0000u128 << 64) | (i << 72)));
        let more: Vec<_> = (1..256).map(|i| socket(in_48(i), 1000 + i as i64)).collect();
        let sent: usize = more.iter().map(|(_, slot)| frames(slot)).sum();
        assert_eq!(sent, 48 - 12, "the /48's budget");
        // Another /48, and IPv4 addresses, have their own.
        let (_own, slot) = socket("2001:db8:2::1".parse().unwrap(), 5000);
        assert_eq!(frames(&slot), 3);
        let v4: Vec<_> = (0..=255u8).map(|i| socket(IpAddr::from([10, 0, 0, i]), 6000 + i64::from(i))).collect();
        assert_eq!(
            v4.iter().map(|(_, slot)| frames(slot)).sum::<usize>(),
            256 * 3,
            "an IPv4 address has no wider network"
        );
    }
}
