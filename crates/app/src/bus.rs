//! The in-process bus: fan-out of committed events to the connections that
//! subscribed to them. It carries events; it decides nothing about who may
//! see them — each connection's [`crate::feed::Feed`] asks the visibility
//! function.
//!
//! Publishing never blocks (the store's writer thread calls it). A
//! connection too slow to keep up is not waited for: its queue is bounded,
//! and when it overflows the connection is flagged *lagged* and catches up
//! from the store, which has everything (the bus is never the source of truth).
//!
//! With several nodes, each node's bus is linked to the others' (over NATS,
//! [`crate::nats`]): what is published here is also handed to the
//! [`Bus::set_uplink`] channel, and what other nodes published arrives
//! through [`Bus::deliver_remote`]. Watcher lists are per node; a node shows
//! its connections the union of its own and the other nodes' lists.

use refdesk_domain::chat::{SessionContext, Watcher};
use refdesk_domain::event::Event;
use refdesk_domain::ids::{CooperativeId, LibraryId, SessionId, StaffId};
use refdesk_domain::org::Placement;
use refdesk_domain::Millis;
use refdesk_store::EventSink;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// One connection's mailbox, as the bus holds it.
#[derive(Clone)]
struct Mailbox {
    id: u64,
    queue: Arc<Queue>,
}

/// A connection's undelivered events, at most `capacity` of them; past that
/// the connection is flagged lagged instead. A tokio `mpsc` channel did the
/// same at about 800 bytes a connection (its shared state is cache-padded
/// and its first block holds 32 slots); this takes about 130, and every
/// waiting patron holds one (issue 17).
struct Queue {
    events: Mutex<std::collections::VecDeque<Arc<Event>>>,
    /// Woken when an event is added.
    ready: tokio::sync::Notify,
    lagged: AtomicBool,
    /// A wake-up of [`Subscription::wake_after`] is waiting.
    timer: AtomicBool,
    capacity: usize,
}

impl Mailbox {
    fn deliver(&self, e: &Arc<Event>) {
        let q = &self.queue;
        {
            let mut events = q.events.lock().unwrap_or_else(|p| p.into_inner());
            if events.len() >= q.capacity {
                q.lagged.store(true, Ordering::Release);
                return;
            }
            events.push_back(e.clone());
        }
        // Stores a permit when nobody waits: the next wait ends at once.
        q.ready.notify_one();
    }
}

#[derive(Default)]
struct Topics {
    /// Each session's watchers.
    sessions: HashMap<SessionId, Vec<Mailbox>>,
    /// When someone last began typing in each chat (from any node): a chat
    /// being written in is not idle ([`Bus::typed_within`]).
    typed: HashMap<SessionId, std::time::Instant>,
    /// Staff watching the queue, per cooperative: a queue event reaches the
    /// desks of its own cooperative only (patrons waiting for their place
    /// in line are in `patron_queues`).
    queue: HashMap<CooperativeId, Vec<Mailbox>>,
    /// Watchers of the chat monitor, per cooperative: every change and line
    /// of its sessions. A flood of lines in one cooperative never reaches
    /// (nor makes lag) the desks of another.
    monitor: HashMap<CooperativeId, Vec<Mailbox>>,
    /// Each staff member's own connections (IM, availability).
    staff: HashMap<StaffId, Vec<Mailbox>>,
    /// Staff connections watching a live session without taking part (B3),
    /// per session: the session's context and (connection, watcher) pairs.
    watchers: HashMap<SessionId, (SessionContext, Vec<(u64, Watcher)>)>,
    /// Waiting patrons, per queue, in their order in it. A queue change is
    /// delivered only to the patrons it moves — those behind it — so a
    /// patron joining the end of a long queue costs nobody anything.
    /// Keyed by place and mailbox: a patron's sockets (two tabs) share a place.
    patron_queues: HashMap<LibraryId, BTreeMap<(Millis, SessionId, u64), Mailbox>>,
    /// Waiting chats whose last page on this node closed, each with when
    /// its last page closed: the patron is marked away once a grace period
    /// passes with no page of theirs open again (one wait per chat).
    away_pending: HashMap<SessionId, (Millis, std::time::Instant)>,
    /// Other nodes' watchers, per session and node.
    /// Each list is sent again every few seconds while it is not empty, so
    /// one not heard of for a while is a dead node's and is dropped.
    remote_watchers: HashMap<SessionId, HashMap<String, RemoteWatchers>>,
    /// The latest session version a queue or monitor event carried, per
    /// session: from several nodes such events may arrive out of order, and
    /// an older one must not undo a newer (a chat shown waiting again after
    /// it was accepted).
    versions: HashMap<SessionId, u64>,
    /// The generation of `versions` before the last rotation, still
    /// consulted: forgetting is gradual, never all at once.
    old_versions: HashMap<SessionId, u64>,
}

/// What another node last said of who watches a session there.
struct RemoteWatchers {
    ctx: SessionContext,
    list: Vec<Watcher>,
    heard: std::time::Instant,
}

/// Session versions remembered in one generation. When it is full it
/// becomes the old generation (the one before is forgotten), so between
/// `VERSIONS` and twice that are kept: sessions heard of recently are
/// always among them, and the memory is bounded however long the node runs.
const VERSIONS: usize = 50_000;

impl Topics {
    /// Whether an event about `session` at `version` is not older than what
    /// was seen; remembers it.
    fn current(&mut self, session: SessionId, version: u64) -> bool {
        let seen = match self.versions.get(&session) {
            Some(v) => Some(*v),
            None => self.old_versions.get(&session).copied(),
        };
        if seen.is_some_and(|seen| version < seen) {
            return false;
        }
        if self.versions.len() >= VERSIONS && !self.versions.contains_key(&session) {
            self.old_versions = std::mem::take(&mut self.versions);
        }
        self.versions.insert(session, version);
        true
    }
}

impl Topics {
    /// Everyone watching a session, on this node and the others.
    fn all_watchers(&self, session: SessionId) -> Vec<Watcher> {
        let mut all: Vec<Watcher> =
            self.watchers.get(&session).map(|(_, l)| l.iter().map(|(_, w)| w.clone()).collect()).unwrap_or_default();
        for remote in self.remote_watchers.get(&session).into_iter().flat_map(|n| n.values()) {
            for w in &remote.list {
                if !all.contains(w) {
                    all.push(w.clone());
                }
            }
        }
        all
    }
}

/// A waiting patron's place: since when, then the session (to break ties).
pub type QueueKey = (Millis, SessionId);

fn join_list(list: &mut Vec<Mailbox>, m: &Mailbox) {
    if !list.iter().any(|x| x.id == m.id) {
        list.push(m.clone());
    }
}

/// Batches of events on their way to the other nodes.
pub type Uplink = mpsc::Sender<Vec<Event>>;

/// The in-process bus.
#[derive(Default)]
pub struct Bus {
    topics: Mutex<Topics>,
    next_id: AtomicU64,
    /// Where published events go for the other nodes, if there are any.
    uplink: std::sync::OnceLock<Uplink>,
    /// Set when events for the other nodes had to be dropped.
    uplink_overflow: AtomicBool,
    /// Set while the link to the other nodes is down (NATS out of reach).
    link_down: AtomicBool,
    /// The node's metrics: every part of the node shares the bus, so they
    /// hang off it (see [`crate::metrics`]).
    metrics: Arc<crate::metrics::Metrics>,
    /// Counts the events delivered here that may change what a
    /// cooperative's queues hold (a chat joining or leaving one, its patron
    /// away), per cooperative: a queue read is current while its count
    /// stays as it was when the read began.
    queue_changes: Mutex<HashMap<CooperativeId, u64>>,
    /// Counts the events that may change every cooperative's (a resync, an
    /// erasure).
    queue_epoch: AtomicU64,
}

/// A connection's end of the bus. Dropping it unsubscribes everything.
pub struct Subscription {
    bus: Arc<Bus>,
    mailbox: Mailbox,
    /// The queue place this (patron) connection listens at, if any.
    patron_place: Option<(LibraryId, QueueKey)>,
    /// The sessions joined: leaving them when dropped visits these, not
    /// every session of the node under the bus's lock (with thousands of
    /// patrons waiting, a wave of closed sockets did).
    joined: Vec<SessionId>,
}

impl Subscription {
    /// The next committed event, in commit order; waits for one.
    /// Cancel-safe: an event is taken only when this returns it.
    pub async fn recv(&self) -> Arc<Event> {
        loop {
            if let Some(e) = self.try_recv() {
                return e;
            }
            self.mailbox.queue.ready.notified().await;
        }
    }

    /// The next committed event if one is already waiting; never waits.
    pub fn try_recv(&self) -> Option<Arc<Event>> {
        self.mailbox.queue.events.lock().unwrap_or_else(|p| p.into_inner()).pop_front()
    }

    /// Whether events were dropped since the last call (and clears the flag).
    /// If so, the caller must catch up from the store.
    pub fn take_lagged(&self) -> bool {
        self.mailbox.queue.lagged.swap(false, Ordering::AcqRel)
    }

    /// Marks this connection as having missed events: the next event it
    /// handles first re-reads what it follows from the store.
    pub fn set_lagged(&self) {
        self.mailbox.queue.lagged.store(true, Ordering::Release);
    }

    /// Wakes this connection for another turn, whether or not another
    /// event comes (a catch-up that stopped at a page comes back for the
    /// rest): a `Resync` in its own mailbox, nothing flagged.
    pub fn wake(&self) {
        self.mailbox.deliver(&Arc::new(Event::Resync));
    }

    /// Wakes this connection as [`Subscription::wake`] does, after `wait`
    /// (a timer task, which keeps only the mailbox), unless such a wake-up
    /// is already waiting: one at a time, however often it is asked for.
    pub fn wake_after(&self, wait: std::time::Duration) {
        if self.mailbox.queue.timer.swap(true, Ordering::AcqRel) {
            return;
        }
        let mailbox = self.mailbox.clone();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            mailbox.queue.timer.store(false, Ordering::Release);
            mailbox.deliver(&Arc::new(Event::Resync));
        });
    }

    /// Starts receiving a session's events.
    pub fn join(&mut self, session: SessionId) {
        let mut t = self.bus.lock();
        let subs = t.sessions.entry(session).or_default();
        if !subs.iter().any(|m| m.id == self.mailbox.id) {
            subs.push(self.mailbox.clone());
        }
        if !self.joined.contains(&session) {
            self.joined.reserve_exact(1);
            self.joined.push(session);
        }
    }

    /// Stops receiving a session's events.
    pub fn leave(&mut self, session: SessionId) {
        self.bus.lock().leave(session, self.mailbox.id);
        self.joined.retain(|s| *s != session);
    }

    /// Records this staff connection as watching a live session and tells
    /// the session's staff (B3).
    pub fn watch(&self, ctx: &SessionContext, watcher: Watcher) {
        let event = {
            let mut t = self.bus.lock();
            let entry = t.watchers.entry(ctx.id).or_insert_with(|| (ctx.clone(), Vec::new()));
            if entry.1.iter().any(|(id, _)| *id == self.mailbox.id) {
                return;
            }
            entry.1.push((self.mailbox.id, watcher));
            Event::Watchers { ctx: entry.0.clone(), watchers: entry.1.iter().map(|(_, w)| w.clone()).collect() }
        };
        self.bus.publish(vec![event]);
    }

    /// Stops watching a session (or every session, with `None`).
    pub fn unwatch(&self, session: Option<SessionId>) {
        let id = self.mailbox.id;
        let events: Vec<Event> = {
            let mut t = self.bus.lock();
            // One session, not watched by this connection: nothing to look
            // through (asked at each change of a chat one takes part in).
            if let Some(only) = session {
                if !t.watchers.get(&only).is_some_and(|(_, list)| list.iter().any(|(m, _)| *m == id)) {
                    return;
                }
            }
            let mut events = Vec::new();
            t.watchers.retain(|s, (ctx, list)| {
                if session.is_some_and(|only| only != *s) || !list.iter().any(|(m, _)| *m == id) {
                    return true;
                }
                list.retain(|(m, _)| *m != id);
                events.push(Event::Watchers {
                    ctx: ctx.clone(),
                    watchers: list.iter().map(|(_, w)| w.clone()).collect(),
                });
                !list.is_empty()
            });
            events
        };
        if !events.is_empty() {
            self.bus.publish(events);
        }
    }

    /// Who watches a session now (on every node this one has heard from).
    pub fn watchers_of(&self, session: SessionId) -> Vec<Watcher> {
        self.bus.lock().all_watchers(session)
    }

    /// Listens for changes ahead of a waiting patron's place in a queue
    /// (replacing any earlier place).
    pub fn wait_in_queue(&mut self, queue: LibraryId, key: QueueKey) {
        self.leave_queue_place();
        let place = (key.0, key.1, self.mailbox.id);
        self.bus.lock().patron_queues.entry(queue).or_default().insert(place, self.mailbox.clone());
        self.patron_place = Some((queue, key));
    }

    /// Stops listening at a queue place.
    pub fn leave_queue_place(&mut self) {
        if let Some((queue, key)) = self.patron_place.take() {
            let mut t = self.bus.lock();
            if let Some(q) = t.patron_queues.get_mut(&queue) {
                q.remove(&(key.0, key.1, self.mailbox.id));
                if q.is_empty() {
                    t.patron_queues.remove(&queue);
                }
            }
        }
    }

    /// Whether some connection of this node still waits at the place `key`
    /// in `queue` (another page of the same patron).
    pub fn waits_here(&self, queue: LibraryId, key: QueueKey) -> bool {
        self.bus.waits_at(queue, key)
    }

    /// Starts receiving the queue events of a cooperative.
    pub fn join_queue(&self, cooperative: CooperativeId) {
        join_list(self.bus.lock().queue.entry(cooperative).or_default(), &self.mailbox);
    }

    /// Starts receiving every change and message of a cooperative's
    /// sessions (chat monitor).
    pub fn join_monitor(&self, cooperative: CooperativeId) {
        join_list(self.bus.lock().monitor.entry(cooperative).or_default(), &self.mailbox);
    }

    /// Starts receiving what is addressed to one staff member (IM, availability).
    pub fn join_staff(&self, staff: StaffId) {
        join_list(self.bus.lock().staff.entry(staff).or_default(), &self.mailbox);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.leave_queue_place();
        self.unwatch(None);
        let id = self.mailbox.id;
        let mut t = self.bus.lock();
        let topics = &mut *t;
        for lists in [&mut topics.queue, &mut topics.monitor] {
            lists.retain(|_, subs| {
                subs.retain(|m| m.id != id);
                !subs.is_empty()
            });
        }
        for session in &self.joined {
            t.leave(*session, id);
        }
        t.staff.retain(|_, subs| {
            subs.retain(|m| m.id != id);
            !subs.is_empty()
        });
    }
}

impl Bus {
    /// A new, empty bus.
    pub fn new() -> Arc<Bus> {
        Arc::new(Bus::default())
    }

    /// The node's metrics.
    pub fn metrics(&self) -> &Arc<crate::metrics::Metrics> {
        &self.metrics
    }

    /// Whether someone began typing in `session` within `within` (heard on
    /// this node, from any node's connections).
    pub fn typed_within(&self, session: SessionId, within: std::time::Duration) -> bool {
        self.lock().typed.get(&session).is_some_and(|at| at.elapsed() < within)
    }

    /// Forgets typing heard longer than `within` ago.
    pub fn forget_typing(&self, within: std::time::Duration) {
        self.lock().typed.retain(|_, at| at.elapsed() < within);
    }

    /// How many events that may change `coop`'s queues were delivered on
    /// this node (`Bus::queue_changes`, with those that change every
    /// cooperative's): a queue read before the numbers moved may be out of
    /// date.
    pub fn queue_changes(&self, coop: CooperativeId) -> (u64, u64) {
        let epoch = self.queue_epoch.load(Ordering::Acquire);
        let count = self.queue_changes.lock().unwrap_or_else(|p| p.into_inner()).get(&coop).copied().unwrap_or(0);
        (epoch, count)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Topics> {
        // A panic while holding this lock cannot leave the maps inconsistent
        // (every update is a single push or retain), so a poisoned lock is
        // still safe to use.
        self.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new mailbox holding at most `capacity` undelivered events.
    /// Whether some connection of this node waits at the place `key` in
    /// `queue` (a page of that patron is open here).
    pub fn waits_at(&self, queue: LibraryId, key: QueueKey) -> bool {
        let t = self.lock();
        let Some(q) = t.patron_queues.get(&queue) else { return false };
        q.range((key.0, key.1, 0)..=(key.0, key.1, u64::MAX)).next().is_some()
    }

    /// Whether the patron of a live chat has a page of it open, on any node
    /// (their entry in its watchers).
    pub fn patron_watches(&self, session: SessionId) -> bool {
        self.lock().all_watchers(session).iter().any(|w| w.patron)
    }

    /// Notes that the last page of a waiting chat on this node closed at
    /// `at`; true when no wait for it was under way (the caller starts one).
    pub fn page_gone(&self, session: SessionId, at: Millis) -> bool {
        self.lock().away_pending.insert(session, (at, std::time::Instant::now())).is_none()
    }

    /// When the chat's last page on this node closed (the latest close
    /// [`Bus::page_gone`] noted), if a wait for it is under way: the
    /// server's time, and this process's clock to wait by.
    pub fn pages_gone_at(&self, session: SessionId) -> Option<(Millis, std::time::Instant)> {
        self.lock().away_pending.get(&session).copied()
    }

    /// Ends the wait [`Bus::page_gone`] started.
    pub fn pages_wait_over(&self, session: SessionId) {
        self.lock().away_pending.remove(&session);
    }

    pub fn subscribe(self: &Arc<Self>, capacity: usize) -> Subscription {
        let queue = Arc::new(Queue {
            events: Mutex::default(),
            ready: tokio::sync::Notify::new(),
            lagged: AtomicBool::new(false),
            timer: AtomicBool::new(false),
            capacity: capacity.max(1),
        });
        let mailbox = Mailbox { id: self.next_id.fetch_add(1, Ordering::Relaxed), queue };
        Subscription { bus: self.clone(), mailbox, patron_place: None, joined: Vec::new() }
    }

    /// Publishes ephemeral events (typing) that are never stored.
    pub fn publish_ephemeral(&self, event: Event) {
        self.publish(vec![event]);
    }

    /// Links this bus to the other nodes: from now on every published event
    /// is also sent down `uplink`. Set once; later calls are refused.
    pub fn set_uplink(&self, uplink: Uplink) -> Result<(), Uplink> {
        self.uplink.set(uplink)
    }

    /// Says whether the link to the other nodes is down (NATS out of
    /// reach): the node's connections re-read from the store meanwhile
    /// (`nats::reread_while_down`), and staff connections are told at their
    /// next re-read, so that desks can say lines may come late.
    pub fn set_link_down(&self, down: bool) {
        self.link_down.store(down, Ordering::Release);
    }

    /// Whether the link to the other nodes is down ([`Bus::set_link_down`]).
    pub fn link_down(&self) -> bool {
        self.link_down.load(Ordering::Acquire)
    }

    /// Whether events for the other nodes were dropped since the last call.
    pub fn take_uplink_overflow(&self) -> bool {
        self.uplink_overflow.swap(false, Ordering::AcqRel)
    }

    /// Sends this node's watcher lists to the other nodes again (after the
    /// link was down, when changes to them may have been lost).
    pub fn republish_watchers(&self) {
        let Some(uplink) = self.uplink.get() else { return };
        let events: Vec<Event> = self
            .lock()
            .watchers
            .values()
            .map(|(ctx, list)| Event::Watchers {
                ctx: ctx.clone(),
                watchers: list.iter().map(|(_, w)| w.clone()).collect(),
            })
            .collect();
        if !events.is_empty() && uplink.try_send(events).is_err() {
            self.uplink_dropped();
        }
    }

    /// Notes a batch for the other nodes dropped (the uplink's outbox is
    /// full): counted each time, logged once until the link takes its next
    /// batch. While the link is stuck every event, a patron's typing too,
    /// would otherwise write a line to the log.
    fn uplink_dropped(&self) {
        self.metrics.nats_batches_dropped.inc();
        if !self.uplink_overflow.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                "the link to the other nodes is behind; events for them are dropped until it catches up \
                 (refdesk_nats_batches_dropped_total counts them)"
            );
        }
    }

    /// Delivers events another node published, to this node's connections only.
    pub fn deliver_remote(&self, node: &str, events: Vec<Event>) {
        let events = {
            let mut t = self.lock();
            events
                .into_iter()
                .filter_map(|e| match e {
                    // Another node's watcher list replaces what we knew of it;
                    // our connections hear the union.
                    Event::Watchers { ctx, watchers } => {
                        let nodes = t.remote_watchers.entry(ctx.id).or_default();
                        let unchanged = nodes.get(node).map_or(watchers.is_empty(), |r| r.list == watchers);
                        if watchers.is_empty() {
                            nodes.remove(node);
                        } else {
                            let heard = std::time::Instant::now();
                            nodes.insert(node.to_owned(), RemoteWatchers { ctx: ctx.clone(), list: watchers, heard });
                        }
                        if nodes.is_empty() {
                            t.remote_watchers.remove(&ctx.id);
                        }
                        if unchanged {
                            return None; // said again (every few seconds): nothing new to tell
                        }
                        let watchers = t.all_watchers(ctx.id);
                        Some(Event::Watchers { ctx, watchers })
                    }
                    Event::Resync => None,
                    other => Some(other),
                })
                .collect::<Vec<_>>()
        };
        self.deliver_local(events);
    }

    /// Forgets what other nodes said of watchers and have not said again for
    /// `max_age` (a node that died), and tells this node's connections.
    pub fn expire_remote_watchers(&self, max_age: std::time::Duration) {
        let events: Vec<Event> = {
            let mut t = self.lock();
            let mut gone: Vec<SessionContext> = Vec::new();
            for nodes in t.remote_watchers.values_mut() {
                let before = nodes.len();
                let mut ctx = None;
                nodes.retain(|_, r| {
                    let keep = r.heard.elapsed() <= max_age;
                    if !keep {
                        ctx = Some(r.ctx.clone());
                    }
                    keep
                });
                if let (true, Some(ctx)) = (nodes.len() < before, ctx) {
                    gone.push(ctx);
                }
            }
            t.remote_watchers.retain(|_, nodes| !nodes.is_empty());
            gone.into_iter()
                .map(|ctx| {
                    let watchers = t.all_watchers(ctx.id);
                    Event::Watchers { ctx, watchers }
                })
                .collect()
        };
        if !events.is_empty() {
            self.deliver_local(events);
        }
    }

    /// For each chat (`None`: an event for more than one chat's watchers),
    /// whether a connection on this node may want its events: one joined
    /// to it, or any chat monitor (which hears every chat's lines).
    pub fn follows(&self, chats: &[Option<SessionId>]) -> Vec<bool> {
        let t = self.lock();
        let monitored = t.monitor.values().any(|subs| !subs.is_empty());
        chats.iter().map(|chat| chat.is_none_or(|s| monitored || t.sessions.contains_key(&s))).collect()
    }

    /// Tells every connection on this node to re-read what it follows from
    /// the store: events may have been missed (the link to the other nodes
    /// was down).
    pub fn resync(&self) {
        self.metrics.resyncs.inc();
        self.queue_epoch.fetch_add(1, Ordering::AcqRel);
        let t = self.lock();
        let event = Arc::new(Event::Resync);
        let mut seen = std::collections::HashSet::new();
        let everyone = t
            .queue
            .values()
            .flatten()
            .chain(t.monitor.values().flatten())
            .chain(t.sessions.values().flatten())
            .chain(t.staff.values().flatten())
            .chain(t.patron_queues.values().flat_map(|q| q.values()));
        for m in everyone {
            if seen.insert(m.id) {
                m.queue.lagged.store(true, Ordering::Release);
                m.deliver(&event);
            }
        }
    }

    /// Number of connections subscribed to anything (for metrics and tests).
    pub fn connections(&self) -> usize {
        let t = self.lock();
        let mut ids: Vec<u64> = t.queue.values().flatten().chain(t.monitor.values().flatten()).map(|m| m.id).collect();
        ids.extend(t.sessions.values().flatten().map(|m| m.id));
        ids.extend(t.staff.values().flatten().map(|m| m.id));
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }
}

impl EventSink for Bus {
    fn publish(&self, events: Vec<Event>) {
        let lines = events.iter().filter(|e| matches!(e, Event::Message { .. })).count();
        self.metrics.messages_committed.inc_by(lines as u64);
        if let Some(uplink) = self.uplink.get() {
            // Kept on this node: a resync, and an IM read (a desk of the
            // reader's on another node counts it read at its next look at
            // its colleagues, within half a minute; sent, a node of the
            // previous release, which cannot read it, would re-read every
            // connection from the store at each one during an upgrade).
            let shared: Vec<Event> =
                events.iter().filter(|e| !matches!(e, Event::Resync | Event::ImRead { .. })).cloned().collect();
            if !shared.is_empty() && uplink.try_send(shared).is_err() {
                // The other nodes are told (a skipped envelope number) and
                // re-read what they follow from the store.
                self.uplink_dropped();
            }
        }
        self.deliver_local(events);
    }

    fn committed(&self, commit: refdesk_store::CommitReport) {
        self.metrics.committed(commit);
    }
}

impl Bus {
    /// Delivers events to this node's connections only.
    pub fn deliver_local(&self, events: Vec<Event>) {
        // Counted before the events reach anyone: a read that began after
        // a connection heard of a change never passes for current.
        self.count_queue_changes(&events);
        let mut t = self.lock();
        for event in events {
            if let Event::Typing { ctx, on: true, .. } = &event {
                t.typed.insert(ctx.id, std::time::Instant::now());
            }
            if let Some((session, version)) = version_of(&event) {
                if !t.current(session, version) {
                    tracing::debug!(%session, version, "dropped an event older than one already delivered");
                    continue;
                }
            }
            t.route(Arc::new(event));
        }
    }
}

impl Bus {
    /// Moves [`Bus::queue_changes`] for the events that may change a queue.
    fn count_queue_changes(&self, events: &[Event]) {
        let mut coops = Vec::new();
        for e in events {
            match e {
                Event::QueueAdded(q) | Event::QueueRolledUp(q) => coops.push(q.queue.cooperative),
                Event::QueueRemoved { placement, .. } => coops.push(placement.cooperative),
                Event::PatronAway { queue, .. } => coops.push(queue.cooperative),
                Event::SessionChanged(s) => coops.push(s.ctx.placement.cooperative),
                Event::Erased { .. } | Event::Resync => {
                    self.queue_epoch.fetch_add(1, Ordering::AcqRel);
                }
                _ => {}
            }
        }
        if !coops.is_empty() {
            let mut changes = self.queue_changes.lock().unwrap_or_else(|p| p.into_inner());
            for coop in coops {
                *changes.entry(coop).or_default() += 1;
            }
        }
    }
}

/// The session and version an event about a session's state carries (those
/// older than one already delivered are dropped).
fn version_of(event: &Event) -> Option<(SessionId, u64)> {
    match event {
        Event::QueueAdded(e) | Event::QueueRolledUp(e) => Some((e.session, e.version)),
        Event::QueueRemoved { session, version, .. } => Some((*session, *version)),
        Event::SessionChanged(s) => Some((s.ctx.id, s.ctx.version)),
        _ => None,
    }
}

impl Topics {
    /// Takes a mailbox off a session's list.
    fn leave(&mut self, session: SessionId, mailbox: u64) {
        if let Some(subs) = self.sessions.get_mut(&session) {
            subs.retain(|m| m.id != mailbox);
            if subs.is_empty() {
                self.sessions.remove(&session);
            }
        }
    }

    /// Hands an event to every mailbox of this node that takes it.
    fn route(&mut self, event: Arc<Event>) {
        match &*event {
            Event::Message { ctx, .. } => self.to_session_and_monitor(ctx.id, ctx.placement.cooperative, &event),
            Event::Watchers { ctx, .. } => {
                // Our own list changed, or another node's: everyone here
                // hears the union.
                let merged = Arc::new(Event::Watchers { ctx: ctx.clone(), watchers: self.all_watchers(ctx.id) });
                self.to_session(ctx.id, &merged);
            }
            Event::Typing { ctx, .. } => self.to_session(ctx.id, &event),
            Event::Resync => {}
            Event::QueueAdded(e) => self.to_queues(e.queue, (e.since, e.session), &event),
            Event::QueueRemoved { session, placement, since, .. } => {
                self.to_queues(*placement, (*since, *session), &event)
            }
            // The staff queues (what they show of the chat), and the patron's
            // own pages (one open marks them back, whichever node it is on).
            // The patrons behind it too: their place in line moves.
            Event::PatronAway { session, queue, waiting_since, .. } => {
                let queues = self.queue.get(&queue.cooperative).map_or(&[][..], Vec::as_slice);
                match waiting_since {
                    Some(since) => self.to_queues(*queue, (*since, *session), &event),
                    None => queues.iter().for_each(|m| m.deliver(&event)),
                }
                let pages = self.sessions.get(session).map_or(&[][..], Vec::as_slice);
                for m in pages.iter().filter(|m| !queues.iter().any(|q| q.id == m.id)) {
                    m.deliver(&event);
                }
            }
            Event::SessionChanged(s) => {
                if s.state == refdesk_domain::chat::SessionState::Ended {
                    // Nobody watches an ended chat: what other nodes said of
                    // it (a node that died never says it stopped) goes, and
                    // so do this node's watchers (else their list is sent to
                    // the other nodes for as long as they stay).
                    self.remote_watchers.remove(&s.ctx.id);
                    self.watchers.remove(&s.ctx.id);
                }
                self.to_session_and_monitor(s.ctx.id, s.ctx.placement.cooperative, &event);
            }
            Event::Im(im) => {
                self.to_staff(im.from, &event);
                self.to_staff(im.to, &event);
            }
            Event::QueueRolledUp(e) => {
                self.queue.get(&e.queue.cooperative).into_iter().flatten().for_each(|m| m.deliver(&event))
            }
            Event::SignedOut { staff } | Event::ImRead { staff, .. } => self.to_staff(*staff, &event),
            Event::Erased { sessions } => {
                for session in sessions {
                    self.to_session(*session, &event);
                }
            }
            Event::Availability { .. } | Event::Referred { .. } | Event::SignInEnded { .. } => {
                self.staff.values().flatten().for_each(|m| m.deliver(&event))
            }
        }
    }

    fn to_session(&self, session: SessionId, event: &Arc<Event>) {
        for m in self.sessions.get(&session).map_or(&[][..], Vec::as_slice) {
            m.deliver(event);
        }
    }

    /// The session's watchers, and the chat monitors of its cooperative
    /// (last-message times, state), once per connection even if it also
    /// watches the session.
    fn to_session_and_monitor(&self, session: SessionId, cooperative: CooperativeId, event: &Arc<Event>) {
        let watchers = self.sessions.get(&session).map_or(&[][..], Vec::as_slice);
        for m in watchers {
            m.deliver(event);
        }
        let monitors = self.monitor.get(&cooperative).map_or(&[][..], Vec::as_slice);
        for m in monitors.iter().filter(|m| !watchers.iter().any(|w| w.id == m.id)) {
            m.deliver(event);
        }
    }

    /// The staff queues of the cooperative, and the patrons waiting behind
    /// `key` in `queue` (their place in line moves).
    fn to_queues(&self, queue: Placement, key: (Millis, SessionId), event: &Arc<Event>) {
        for m in self.queue.get(&queue.cooperative).map_or(&[][..], Vec::as_slice) {
            m.deliver(event);
        }
        if let Some(waiting) = self.patron_queues.get(&queue.library) {
            // Behind the place: every mailbox at it is passed over.
            for m in waiting.range((Bound::Excluded((key.0, key.1, u64::MAX)), Bound::Unbounded)).map(|(_, m)| m) {
                m.deliver(event);
            }
        }
    }

    fn to_staff(&self, staff: StaffId, event: &Arc<Event>) {
        for m in self.staff.get(&staff).map_or(&[][..], Vec::as_slice) {
            m.deliver(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn events(n: usize) -> Vec<Arc<Event>> {
        (0..n).map(|_| Arc::new(Event::Resync)).collect()
    }

    #[test]
    fn the_session_versions_remembered_stay_bounded_and_keep_the_recent_ones() {
        let mut t = Topics::default();
        let total = (VERSIONS * 3) as i64;
        for s in 0..total {
            assert!(t.current(SessionId(s), 5));
            assert!(t.versions.len() + t.old_versions.len() <= 2 * VERSIONS, "at {s}");
        }
        // The last VERSIONS sessions heard of are still known: an older
        // event about one of them is dropped; a newer one goes.
        for s in [total - 1, total - VERSIONS as i64] {
            assert!(!t.current(SessionId(s), 4), "session {s}'s older event went through");
            assert!(t.current(SessionId(s), 6));
        }
        // One heard of three generations ago is forgotten: its events go.
        assert!(t.current(SessionId(0), 4));
    }

    #[test]
    fn a_stuck_link_to_the_other_nodes_is_logged_once_and_each_dropped_batch_counted() {
        use tracing_subscriber::layer::SubscriberExt;
        /// Counts the warnings logged.
        struct Warnings(Arc<std::sync::atomic::AtomicUsize>);
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
            fn on_event(&self, e: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
                if *e.metadata().level() == tracing::Level::WARN {
                    self.0.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
        let warnings = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let logs = tracing_subscriber::registry().with(Warnings(warnings.clone()));
        let bus = Bus::new();
        // A link whose outbox is full, as when NATS stopped taking envelopes.
        let (uplink, _stuck) = mpsc::channel(1);
        uplink.try_send(Vec::new()).unwrap();
        bus.set_uplink(uplink).unwrap();
        let signed_out = || vec![Event::SignedOut { staff: refdesk_domain::ids::StaffId(1) }];
        tracing::subscriber::with_default(logs, || {
            // A thousand events (a patron's typing, say) while it is stuck.
            for _ in 0..1000 {
                bus.publish(signed_out());
            }
            assert_eq!(warnings.load(Ordering::SeqCst), 1, "said once, not a thousand times");
            assert_eq!(bus.metrics().nats_batches_dropped.get(), 1000, "each counted");
            // The link took its next batch (and told the others of the gap):
            // falling behind again is said again.
            assert!(bus.take_uplink_overflow());
            bus.publish(signed_out());
            assert_eq!(warnings.load(Ordering::SeqCst), 2);
        });
    }

    #[tokio::test]
    async fn a_mailbox_keeps_its_capacity_in_order_and_past_it_flags_the_connection_lagged() {
        let bus = Bus::new();
        let sub = bus.subscribe(2);
        let sent = events(3);
        for e in &sent {
            sub.mailbox.deliver(e);
        }
        assert!(Arc::ptr_eq(&sub.recv().await, &sent[0]), "the first, first");
        assert!(Arc::ptr_eq(&sub.try_recv().expect("the second is kept"), &sent[1]));
        assert!(sub.try_recv().is_none(), "the third did not fit");
        assert!(sub.take_lagged(), "so the connection catches up from the store");
        assert!(!sub.take_lagged(), "the flag is cleared once taken");
    }

    #[tokio::test]
    async fn a_waiting_connection_is_woken_by_the_next_event() {
        let bus = Bus::new();
        let sub = bus.subscribe(8);
        let sent = events(1);
        let mailbox = sub.mailbox.clone();
        let e = sent[0].clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            mailbox.deliver(&e);
        });
        let got = tokio::time::timeout(Duration::from_secs(5), sub.recv()).await.expect("woken in time");
        assert!(Arc::ptr_eq(&got, &sent[0]));
    }

    #[tokio::test]
    async fn a_wait_given_up_after_its_wake_up_loses_no_event() {
        let bus = Bus::new();
        let sub = bus.subscribe(8);
        let sent = events(2);
        // A wait that has started, is woken, then dropped unfinished (another
        // branch of the socket's `select!` won).
        let mut waiting = Box::pin(sub.recv());
        assert!(futures_util::FutureExt::now_or_never(waiting.as_mut()).is_none(), "nothing yet");
        sub.mailbox.deliver(&sent[0]);
        drop(waiting);
        let got = tokio::time::timeout(Duration::from_secs(5), sub.recv()).await.expect("still there");
        assert!(Arc::ptr_eq(&got, &sent[0]));
        // And the wake-up it left behind does not end a later wait early.
        assert!(tokio::time::timeout(Duration::from_millis(50), sub.recv()).await.is_err(), "nothing is waiting");
        sub.mailbox.deliver(&sent[1]);
        let got = tokio::time::timeout(Duration::from_secs(5), sub.recv()).await.expect("the next one");
        assert!(Arc::ptr_eq(&got, &sent[1]));
    }

    /// A chat's typing, the one kind besides its lines that NATS receivers
    /// may pass over.
    fn typing(session: i64) -> Event {
        use refdesk_domain::org::Placement;
        let one = refdesk_domain::ids::CooperativeId(1);
        let placement =
            Placement { library: LibraryId(1), institution: refdesk_domain::ids::InstitutionId(1), cooperative: one };
        let ctx = SessionContext {
            id: SessionId(session),
            placement,
            librarian: None,
            question: None,
            referred: None,
            members: Vec::new(),
            version: 0,
        };
        Event::Typing { ctx, audience: refdesk_domain::chat::Audience::Everyone, who: "Pat".into(), by: None, on: true }
    }

    #[test]
    fn a_chat_the_node_does_not_follow_is_one_whose_events_reach_no_connection_here() {
        let bus = Bus::new();
        let mut patron = bus.subscribe(8);
        patron.join(SessionId(1));
        let desk = bus.subscribe(8);
        desk.join_queue(refdesk_domain::ids::CooperativeId(1));
        desk.join_staff(StaffId(1));
        assert_eq!(bus.follows(&[Some(SessionId(1)), Some(SessionId(2)), None]), [true, false, true]);
        // What `follows` says no to, routing hands to nobody.
        bus.deliver_local(vec![typing(2)]);
        assert!(patron.try_recv().is_none() && desk.try_recv().is_none());
        bus.deliver_local(vec![typing(1)]);
        assert!(patron.try_recv().is_some());
        // A chat monitor hears every chat's lines: then every chat is followed.
        desk.join_monitor(refdesk_domain::ids::CooperativeId(1));
        assert_eq!(bus.follows(&[Some(SessionId(2))]), [true]);
    }

    #[test]
    fn a_flood_of_lines_in_one_cooperative_never_reaches_nor_lags_the_desks_of_another() {
        use refdesk_domain::ids::CooperativeId;
        let bus = Bus::new();
        let ours = bus.subscribe(4);
        ours.join_monitor(CooperativeId(1));
        ours.join_queue(CooperativeId(1));
        let theirs = bus.subscribe(4);
        theirs.join_monitor(CooperativeId(2));
        theirs.join_queue(CooperativeId(2));
        // A batch of cooperative 1's lines, more than a mailbox holds.
        let line = |seq: u64| {
            let Event::Typing { ctx, .. } = typing(5) else { unreachable!() };
            let message = refdesk_domain::chat::Message {
                session: ctx.id,
                seq,
                patron_seq: seq,
                kind: refdesk_domain::chat::MessageKind::Message,
                audience: refdesk_domain::chat::Audience::Everyone,
                author: refdesk_domain::chat::Author::System,
                body: "x".into(),
                client_id: None,
                at: 0,
                system: None,
            };
            Event::Message { ctx, message }
        };
        bus.deliver_local((1..=10).map(line).collect());
        assert!(ours.take_lagged(), "the cooperative's own desk heard them all, past its mailbox");
        assert!(theirs.try_recv().is_none() && !theirs.take_lagged(), "another cooperative's desk heard nothing");
    }

    #[tokio::test]
    async fn delayed_wake_ups_wait_one_at_a_time() {
        let bus = Bus::new();
        let sub = bus.subscribe(8);
        for _ in 0..3 {
            sub.wake_after(Duration::from_millis(20));
        }
        let first = tokio::time::timeout(Duration::from_secs(5), sub.recv()).await.expect("woken");
        assert!(matches!(*first, Event::Resync));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(sub.try_recv().is_none(), "asked three times while one waited: woken once");
        sub.wake_after(Duration::from_millis(20));
        tokio::time::timeout(Duration::from_secs(5), sub.recv()).await.expect("once it fired, another may wait");
    }

    #[test]
    fn a_dropped_connection_leaves_the_sessions_it_joined_and_only_those() {
        let bus = Bus::new();
        let mut a = bus.subscribe(8);
        let mut b = bus.subscribe(8);
        a.join(SessionId(1));
        a.join(SessionId(2));
        a.join(SessionId(2));
        b.join(SessionId(1));
        b.join(SessionId(3));
        b.leave(SessionId(3));
        assert_eq!(bus.lock().sessions.len(), 2, "left with its last listener");
        drop(a);
        let t = bus.lock();
        assert_eq!(t.sessions.len(), 1, "session 2 had no one else");
        assert_eq!(t.sessions[&SessionId(1)].iter().map(|m| m.id).collect::<Vec<_>>(), vec![b.mailbox.id]);
    }

    #[test]
    fn a_patrons_two_sockets_at_one_place_in_line_both_hear_it_move_until_each_leaves() {
        let bus = Bus::new();
        let Event::Typing { ctx, .. } = typing(1) else { unreachable!() };
        let (queue, library) = (ctx.placement, ctx.placement.library);
        let (ahead, mine) = ((1, SessionId(1)), (2, SessionId(2)));
        let mut tab1 = bus.subscribe(8);
        let mut tab2 = bus.subscribe(8);
        tab1.wait_in_queue(library, mine);
        tab2.wait_in_queue(library, mine);
        let moved = Arc::new(Event::Resync);
        bus.lock().to_queues(queue, ahead, &moved);
        assert!(tab1.try_recv().is_some() && tab2.try_recv().is_some(), "both tabs hear the line move");
        bus.lock().to_queues(queue, mine, &moved);
        assert!(tab1.try_recv().is_none() && tab2.try_recv().is_none(), "their own place is not behind them");
        drop(tab1);
        bus.lock().to_queues(queue, ahead, &moved);
        assert!(tab2.try_recv().is_some(), "closing one tab leaves the other in line");
        tab2.leave_queue_place();
        assert!(bus.lock().patron_queues.is_empty());
    }
}
