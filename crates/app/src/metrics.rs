//! What the use cases, the bus, the NATS link and the mailer count, for the
//! operator's `/metrics` (docs/operations.md, "Metrics").
//!
//! One [`Metrics`] per node, held by its [`crate::bus::Bus`] (which every
//! part of the node already shares: the store's sink, the NATS link, the
//! app), never a global: each test's server counts on its own. The store
//! knows nothing of it: it reports each commit through
//! [`refdesk_store::EventSink::committed`], which the bus passes on here.
//!
//! Handles are cheap to clone and atomic to update; the server registers
//! them with its registry ([`Metrics::register`]) and encodes them at
//! every scrape. Labels are fixed words (never a name, an address, a text):
//! nothing a patron typed can reach a metric.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use refdesk_store::CommitReport;

/// One label, `name="value"`, with a fixed value.
pub type Label = [(&'static str, &'static str); 1];

/// The node's counters and histograms of the app's side.
#[derive(Clone)]
pub struct Metrics {
    /// Chat lines (messages and notes) committed by this node.
    pub messages_committed: Counter,
    /// Writes per commit (SQLite's group commit; 1 on PostgreSQL).
    pub commit_writes: Histogram,
    /// Time from a transaction's start to its commit, in seconds.
    pub commit_seconds: Histogram,
    /// Commits that failed (everything in them rolled back).
    pub commit_failures: Counter,
    /// E-mails by outcome: `sent`, `retry` (a transient failure) or
    /// `undeliverable` (kept in the outbox, never retried).
    pub mail: Family<Label, Counter>,
    /// NATS envelopes, by `direction`: `sent`, `received` (heartbeats
    /// included) or `refused` (on this deployment's subject, but not
    /// opening with its key, replayed, too old, or unreadable: a node with
    /// another `nats_key` splits the cooperative without another sign).
    pub nats_envelopes: Family<Label, Counter>,
    /// Envelopes missed from another node (a gap in its numbering).
    pub nats_gaps: Counter,
    /// Other nodes' chat events passed over undecoded: nobody on this node
    /// follows their chat.
    pub nats_events_skipped: Counter,
    /// Batches of events for the other nodes dropped because the link to
    /// them was behind (its outbox full).
    pub nats_batches_dropped: Counter,
    /// Times every connection of the node was told to re-read from the store.
    pub resyncs: Counter,
    /// Connections that re-read what they follow (a slow one, or after a resync).
    pub rereads: Counter,
    /// Messages a connection found missing and filled from the store.
    pub feed_gaps: Counter,
    /// Blocks placed on abusive patrons.
    pub blocks: Counter,
    /// Reads of a cooperative's staff to tell the widgets whether anyone is
    /// on duty (at most one at a time, and one per 5 s per cooperative).
    pub status_reads: Counter,
    /// Reads of a cooperative's waiting chats for the desks' queues (at most
    /// one per change of a queue and per 5 s, one at a time).
    pub queue_reads: Counter,
    /// Passwords hashed or checked (Argon2id: ~19 MiB and tens of
    /// milliseconds each): sign-ins, new passwords, the accounts added.
    pub password_work: Counter,
    /// Chats and questions refused because the patron is blocked.
    pub blocked_refusals: Counter,
    /// Turns of a task beside the server that panicked, by `task`:
    /// `mailer`, `background` (each went on with its next turn).
    pub task_panics: Family<Label, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            messages_committed: Counter::default(),
            // 1, 2, 4 … 1024: MAX_BATCH of the SQLite writer is 1024.
            commit_writes: Histogram::new(exponential_buckets(1.0, 2.0, 11)),
            // 0.5 ms … ~1 s: a commit is an fsync; past a second is trouble.
            commit_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 12)),
            commit_failures: Counter::default(),
            mail: Family::default(),
            nats_envelopes: Family::default(),
            nats_gaps: Counter::default(),
            nats_events_skipped: Counter::default(),
            nats_batches_dropped: Counter::default(),
            resyncs: Counter::default(),
            rereads: Counter::default(),
            feed_gaps: Counter::default(),
            blocks: Counter::default(),
            status_reads: Counter::default(),
            queue_reads: Counter::default(),
            password_work: Counter::default(),
            blocked_refusals: Counter::default(),
            task_panics: Family::default(),
        }
    }
}

impl Metrics {
    /// Notes one commit of the store.
    pub fn committed(&self, commit: CommitReport) {
        self.commit_writes.observe(commit.writes as f64);
        self.commit_seconds.observe(commit.took.as_secs_f64());
        if !commit.ok {
            self.commit_failures.inc();
        }
    }

    /// Counts an e-mail's outcome.
    pub fn mail(&self, outcome: &'static str) {
        self.mail.get_or_create(&[("outcome", outcome)]).inc();
    }

    /// Counts a NATS envelope.
    pub fn nats_envelope(&self, direction: &'static str) {
        self.nats_envelopes.get_or_create(&[("direction", direction)]).inc();
    }

    /// Adds every metric to `registry` (whose prefix is `refdesk`).
    pub fn register(&self, registry: &mut Registry) {
        // Each outcome and direction shows from the start, at 0: an alert
        // on a rate needs the series to exist before the first event.
        for outcome in ["sent", "filed", "retry", "undeliverable"] {
            let _ = self.mail.get_or_create(&[("outcome", outcome)]);
        }
        for direction in ["sent", "received", "refused"] {
            let _ = self.nats_envelopes.get_or_create(&[("direction", direction)]);
        }
        for task in ["mailer", "background"] {
            let _ = self.task_panics.get_or_create(&[("task", task)]);
        }
        registry.register("messages_committed", "Chat lines committed by this node", self.messages_committed.clone());
        registry.register(
            "commit_writes",
            "Writes per database commit (SQLite groups every write, PostgreSQL appends)",
            self.commit_writes.clone(),
        );
        // The unit is in the name, not a `# UNIT` line: some OpenMetrics
        // readers accept units on counters and gauges only.
        registry.register(
            "commit_seconds",
            "Database commit latency in seconds, from the transaction's start",
            self.commit_seconds.clone(),
        );
        registry.register("commit_failures", "Database commits that failed", self.commit_failures.clone());
        registry.register("mail", "E-mails by outcome: sent, retry, undeliverable", self.mail.clone());
        registry.register("nats_envelopes", "NATS envelopes by direction", self.nats_envelopes.clone());
        registry.register("nats_gaps", "Envelopes missed from another node", self.nats_gaps.clone());
        registry.register(
            "task_panics",
            "Turns of a task beside the server (mailer, background) that panicked; the task went on",
            self.task_panics.clone(),
        );
        registry.register(
            "nats_events_skipped",
            "Other nodes' chat events not decoded: nobody on this node follows their chat",
            self.nats_events_skipped.clone(),
        );
        registry.register(
            "nats_batches_dropped",
            "Batches of events for the other nodes dropped while the link to them was behind",
            self.nats_batches_dropped.clone(),
        );
        registry.register("resyncs", "Times the node's connections were told to re-read", self.resyncs.clone());
        registry.register("feed_rereads", "Connections that re-read what they follow", self.rereads.clone());
        registry.register("feed_gaps", "Messages a connection filled from the store", self.feed_gaps.clone());
        registry.register("blocks", "Blocks placed on abusive patrons", self.blocks.clone());
        registry.register(
            "status_reads",
            "Reads of a cooperative's staff to tell the widgets whether anyone is on duty",
            self.status_reads.clone(),
        );
        registry.register(
            "queue_reads",
            "Reads of a cooperative's waiting chats for the desks' queues",
            self.queue_reads.clone(),
        );
        registry.register(
            "password_hashes",
            "Passwords hashed or checked (Argon2id): sign-ins, new passwords, accounts added",
            self.password_work.clone(),
        );
        registry.register(
            "blocked_refusals",
            "Chats and questions refused to blocked patrons",
            self.blocked_refusals.clone(),
        );
    }
}
