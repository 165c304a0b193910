//! Readiness (`/readyz`): whether this node should be sent traffic, answered
//! within [`READY_WITHIN`] whatever the database does — and whatever else
//! the node is doing.
//!
//! The database's check — a read, then [`refdesk_store::Store::health`]
//! (can it commit?) — runs on a thread of its own, with a runtime of its
//! own, once every [`CHECK_EVERY`] while `/readyz` is being asked (and not
//! at all on a node nobody probes for [`QUIET_AFTER`]). A probe answers at
//! once with the latest verdict while it is [`FRESH_FOR`] old at most;
//! with none that fresh (the first probe in a while, or a check that
//! hangs) it waits for the next verdict at most [`READY_WITHIN`], then
//! answers 503 `database not answering`. A check that has not finished
//! after [`CHECK_AT_MOST`] is given up.
//!
//! Why a thread: a node flooded with requests — a full queue's starts from
//! hundreds of networks, each refused as it should be — has thousands of
//! tasks waiting for its workers, and a check run among them waited
//! seconds to be polled again after its read and its commit had answered
//! in a millisecond: `/readyz` said 503 and a load balancer took a node
//! that served well out of rotation (an attacker could take them all).
//! Nor does the check queue behind the flood's reads and writes (see
//! [`refdesk_store::Store::answers`]).
//!
//! It must never decide anything but readiness: the drain (see
//! [`crate::run`]) is checked by the handler before it.

use refdesk_store::{Store, StoreError};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};

/// The longest `/readyz` takes to answer.
pub const READY_WITHIN: Duration = Duration::from_millis(500);
/// A check still running after this is abandoned: the store's own health
/// check gives up after [`refdesk_store::HEALTH_WAIT`], connecting to an
/// unreachable PostgreSQL may wait far longer.
const CHECK_AT_MOST: Duration = Duration::from_secs(3);
/// How often the database is checked while `/readyz` is asked. Each check
/// is a read and, on SQLite when nothing else wrote in the last second, a
/// commit on the one writer: anyone may ask `/readyz` as often as they
/// like, the database is checked once a second.
const CHECK_EVERY: Duration = Duration::from_secs(1);
/// How long a verdict answers probes without another: two checks' time,
/// so that a check taking a moment longer than usual changes nothing.
const FRESH_FOR: Duration = Duration::from_secs(2);
/// The least time between two starts of the checker thread (one that
/// panics at each check is not started again at each probe).
const RESTART_GAP: Duration = Duration::from_secs(5);
/// Checks stop when `/readyz` has not been asked for this long (load
/// balancers ask every few seconds).
const QUIET_AFTER: Duration = Duration::from_secs(60);

/// Why the node is not ready, as `/readyz` says it.
pub const NOT_ANSWERING: &str = "database not answering";
const UNAVAILABLE: &str = "database unavailable";
const CANNOT_COMMIT: &str = "database cannot commit";

/// A check's outcome: ready, or why not.
type Verdict = Result<(), &'static str>;

/// The node's readiness. One per node (in [`crate::AppState`]); its
/// checker thread starts at the first probe and ends soon after it is
/// dropped.
#[derive(Default)]
pub struct Readiness {
    /// The latest verdict and when it was given.
    latest: watch::Sender<Option<(Instant, Verdict)>>,
    /// When `/readyz` was last asked.
    asked: Mutex<Option<Instant>>,
    /// Wakes the checker when a probe comes after a quiet while.
    wake: Notify,
    /// The checker thread, once started, and when: started again if it
    /// stopped (a panic), [`RESTART_GAP`] after it last was at the soonest.
    checker: Mutex<Option<(std::thread::JoinHandle<()>, Instant)>>,
    /// Set when the checker has ended for good (the store closed).
    done: std::sync::atomic::AtomicBool,
    /// Why the node was last found not ready (`None`: it was ready), so
    /// that a change is logged, not each check.
    down: Mutex<Option<&'static str>>,
}

impl Readiness {
    /// Whether the store answers reads and can commit: the latest verdict
    /// if fresh, else the next one within [`READY_WITHIN`].
    pub async fn check(self: &Arc<Self>, store: &Arc<dyn Store>) -> Verdict {
        let was_quiet = {
            let mut asked = self.asked.lock().unwrap_or_else(|p| p.into_inner());
            asked.replace(Instant::now()).is_none_or(|at| at.elapsed() >= QUIET_AFTER)
        };
        self.keep_checking(store);
        if was_quiet {
            self.wake.notify_one();
        }
        let fresh = |latest: &Option<(Instant, Verdict)>| latest.is_some_and(|(at, _)| at.elapsed() < FRESH_FOR);
        let mut latest = self.latest.subscribe();
        let verdict = match tokio::time::timeout(READY_WITHIN, latest.wait_for(fresh)).await {
            Ok(Ok(latest)) => latest.map(|(_, verdict)| verdict),
            Ok(Err(_)) | Err(_) => None,
        };
        verdict.unwrap_or(Err(NOT_ANSWERING))
    }

    /// Starts the checker thread unless it runs or has ended for good;
    /// one that panicked is started again.
    fn keep_checking(self: &Arc<Self>, store: &Arc<dyn Store>) {
        use std::sync::atomic::Ordering;
        let mut running = self.checker.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((thread, started)) = running.as_ref() {
            if !thread.is_finished() || self.done.load(Ordering::Acquire) || started.elapsed() < RESTART_GAP {
                return;
            }
            tracing::error!("the readiness checker stopped (a panic, or its runtime could not start): started again");
        }
        let (me, store) = (Arc::downgrade(self), store.clone());
        let spawned = std::thread::Builder::new().name("refdesk-readiness".into()).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(checker(me, store)),
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the readiness checker's runtime: /readyz answers 503")
                }
            }
        });
        match spawned {
            Ok(thread) => *running = Some((thread, Instant::now())),
            Err(e) => tracing::error!(error = %e, "cannot start the readiness checker: /readyz answers 503"),
        }
    }

    /// Logs a change of readiness: a warning when the node stops being
    /// ready (or is not ready for another reason), a line when it is ready
    /// again; not every check. Returns whether it logged.
    fn found(&self, verdict: Verdict, error: &dyn std::fmt::Display) -> bool {
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        if *down == verdict.err() {
            return false;
        }
        *down = verdict.err();
        match verdict {
            Err(why) => tracing::warn!(%error, "not ready: {why}"),
            Ok(()) => tracing::info!("ready again"),
        }
        true
    }

    /// Whether `/readyz` has been asked within [`QUIET_AFTER`].
    fn asked_lately(&self) -> bool {
        self.asked.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|at| at.elapsed() < QUIET_AFTER)
    }
}

/// The checker thread's loop: a check every [`CHECK_EVERY`] while probes
/// come, until the readiness is dropped (looked at each second) or the
/// store is closed.
async fn checker(readiness: Weak<Readiness>, store: Arc<dyn Store>) {
    loop {
        let Some(me) = readiness.upgrade() else { return };
        if !me.asked_lately() {
            // Woken by the next probe, or a second later to see whether the
            // readiness is still there.
            let _ = tokio::time::timeout(CHECK_EVERY, me.wake.notified()).await;
            continue;
        }
        let began = Instant::now();
        let (verdict, closed) = match tokio::time::timeout(CHECK_AT_MOST, probe(store.as_ref())).await {
            Ok(Ok(())) => {
                me.found(Ok(()), &"");
                (Ok(()), false)
            }
            Ok(Err((why, e))) => {
                let closed = matches!(e, StoreError::Closed);
                // A closed store is the node shutting down: logged as such.
                if !closed {
                    me.found(Err(why), &e);
                }
                (Err(why), closed)
            }
            Err(_) => {
                me.found(Err(NOT_ANSWERING), &format_args!("no answer within {CHECK_AT_MOST:?}"));
                (Err(NOT_ANSWERING), false)
            }
        };
        me.latest.send_replace(Some((Instant::now(), verdict)));
        if closed {
            me.done.store(true, std::sync::atomic::Ordering::Release);
            return;
        }
        drop(me);
        tokio::time::sleep(CHECK_EVERY.saturating_sub(began.elapsed())).await;
    }
}

/// The check itself. A read alone is no proof: SQLite reads go on beside a
/// writer that cannot commit (stuck, or its file read-only). Neither waits
/// behind other work (see [`refdesk_store::Store::answers`]).
async fn probe(store: &dyn Store) -> Result<(), (&'static str, StoreError)> {
    store.answers().await.map_err(|e| (UNAVAILABLE, e))?;
    store.health().await.map_err(|e| (CANNOT_COMMIT, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_readiness_is_logged_not_each_check() {
        let readiness = Readiness::default();
        let found = |verdict| readiness.found(verdict, &"disk I/O error");
        assert!(!found(Ok(())), "ready from the start: nothing to say");
        assert!(found(Err(CANNOT_COMMIT)), "no longer ready");
        assert!(!found(Err(CANNOT_COMMIT)) && !found(Err(CANNOT_COMMIT)), "each check since says nothing new");
        assert!(found(Err(NOT_ANSWERING)), "not ready for another reason");
        assert!(found(Ok(())), "ready again");
        assert!(!found(Ok(())));
    }

    /// Probes answer from the checker's verdicts, which it gives once a
    /// second whoever asks and however often; a closed store is not ready,
    /// and its checker ends.
    #[tokio::test]
    async fn probes_answer_from_a_verdict_given_once_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.sqlite3");
        let store: Arc<dyn Store> =
            Arc::new(refdesk_store::sqlite::SqliteStore::open(&file, Arc::new(refdesk_store::NoSink)).unwrap());
        let readiness = Arc::new(Readiness::default());
        // The first check opens the database's connections (slow on a
        // loaded machine): the probes until then say so.
        let began = Instant::now();
        while readiness.check(&store).await != Ok(()) {
            assert!(began.elapsed() < Duration::from_secs(10), "never ready");
        }
        let first = readiness.latest.borrow().map(|(at, _)| at);
        for _ in 0..20 {
            assert_eq!(readiness.check(&store).await, Ok(()));
        }
        let when = || readiness.latest.borrow().map(|(at, _)| at);
        assert!(when() == first || began.elapsed() >= CHECK_EVERY, "twenty probes at once, no new check");
        tokio::time::sleep(CHECK_EVERY).await;
        let waited = Instant::now();
        while when() == first {
            assert!(waited.elapsed() < Duration::from_secs(5), "checked again a second later");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        store.close().await;
        let closed = Instant::now();
        while readiness.check(&store).await.is_ok() {
            assert!(closed.elapsed() < Duration::from_secs(3), "a closed store is still ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(readiness.check(&store).await, Err(UNAVAILABLE));
        let ended = Instant::now();
        while Arc::strong_count(&store) > 1 {
            assert!(ended.elapsed() < Duration::from_secs(1), "the checker has ended and let go of the store");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
