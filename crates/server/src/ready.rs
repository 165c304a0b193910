//! Readiness (`/readyz`): whether this node should be sent traffic, answered
//! within [`READY_WITHIN`] whatever the database does.
//!
//! The database's check — a read, then [`refdesk_store::Store::health`]
//! (can it commit?) — can take seconds when the database is unreachable or
//! its writer is stuck, and a load balancer's probe usually gives up after
//! a second or two: a probe that times out says less than a 503 does. So
//! the check runs in a task of its own and the probe waits for it at most
//! [`READY_WITHIN`]; past that it answers 503 `database not answering` and
//! the check goes on. At most one check runs at a time: probes that arrive
//! meanwhile wait on the same one rather than pile up more work on a
//! database that is already slow. A check that has not finished after
//! [`CHECK_AT_MOST`] is given up, and the next probe starts a fresh one.
//! A check's verdict answers the probes of the next [`FRESH_FOR`] without
//! another.
//!
//! It must never decide anything but readiness: the drain (see
//! [`crate::run`]) is checked by the handler before it.

use refdesk_store::Store;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The longest `/readyz` takes to answer.
pub const READY_WITHIN: Duration = Duration::from_millis(500);
/// A check still running after this is abandoned: the store's own health
/// check gives up after [`refdesk_store::HEALTH_WAIT`], a read on an
/// unreachable PostgreSQL may wait far longer for a connection.
const CHECK_AT_MOST: Duration = Duration::from_secs(3);

/// Why the node is not ready, as `/readyz` says it.
pub const NOT_ANSWERING: &str = "database not answering";
const UNAVAILABLE: &str = "database unavailable";
const CANNOT_COMMIT: &str = "database cannot commit";

/// A check's outcome: ready, or why not.
type Verdict = Result<(), &'static str>;

/// The check under way, if any. One per node (in [`crate::AppState`]).
#[derive(Default)]
pub struct Readiness {
    /// Where the running check's verdict will appear; `None` between checks.
    running: Mutex<Option<watch::Receiver<Option<Verdict>>>>,
    /// Why the node was last found not ready (`None`: it was ready), so
    /// that a change is logged, not each probe.
    down: Mutex<Option<&'static str>>,
    /// The last check's verdict and when it was given: reused for
    /// [`FRESH_FOR`].
    last: Mutex<Option<(std::time::Instant, Verdict)>>,
}

/// How long a check's verdict answers probes: anyone may ask `/readyz` as
/// often as they like, and each check is a read and, on SQLite, a commit
/// on the one writer; back to back, a flood of probes kept the writer
/// committing for them.
const FRESH_FOR: Duration = Duration::from_secs(1);

impl Readiness {
    /// Whether the store answers reads and can commit, waiting at most
    /// [`READY_WITHIN`] for the check (a new one, or the one under way).
    pub async fn check(self: &Arc<Self>, store: &Arc<dyn Store>) -> Verdict {
        if let Some((at, verdict)) = *self.last.lock().unwrap_or_else(|p| p.into_inner()) {
            if at.elapsed() < FRESH_FOR {
                return verdict;
            }
        }
        let mut verdict = self.running_check(store);
        let waited = tokio::time::timeout(READY_WITHIN, verdict.wait_for(Option::is_some)).await;
        match waited.map(|r| r.map(|v| *v)) {
            Ok(Ok(v)) => v.unwrap_or(Err(NOT_ANSWERING)),
            // The check's task ended without a verdict (it panicked).
            Ok(Err(_)) => Err(NOT_ANSWERING),
            // Logged by the check when it ends (or gives up), not here: a
            // database slow to answer but answering would otherwise log a
            // change at every probe.
            Err(_) => Err(NOT_ANSWERING),
        }
    }

    /// Logs a change of readiness: a warning when the node stops being
    /// ready (or is not ready for another reason), a line when it is ready
    /// again; not every probe, which a load balancer sends every few
    /// seconds and anyone else may send as often as they like. Returns
    /// whether it logged.
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

    /// The check under way, or a new one started now.
    fn running_check(self: &Arc<Self>, store: &Arc<dyn Store>) -> watch::Receiver<Option<Verdict>> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(verdict) = running.as_ref() {
            return verdict.clone();
        }
        let (tx, rx) = watch::channel(None);
        *running = Some(rx.clone());
        drop(running);
        let (me, store) = (self.clone(), store.clone());
        tokio::spawn(async move {
            let verdict = match tokio::time::timeout(CHECK_AT_MOST, probe(store.as_ref())).await {
                Ok((verdict, error)) => {
                    me.found(verdict, &error.as_deref().unwrap_or(""));
                    verdict
                }
                Err(_) => {
                    me.found(Err(NOT_ANSWERING), &format_args!("no answer within {CHECK_AT_MOST:?}"));
                    Err(NOT_ANSWERING)
                }
            };
            // Cleared before the verdict is given: a probe from now on
            // reads this one's while it is fresh, then starts another.
            *me.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((std::time::Instant::now(), verdict));
            me.running.lock().unwrap_or_else(|p| p.into_inner()).take();
            tx.send_replace(Some(verdict));
        });
        rx
    }
}

/// The check itself. A read alone is no proof: SQLite reads go on beside a
/// writer that cannot commit (stuck, or its file read-only).
/// Returns the verdict, and the store's error when not ready.
async fn probe(store: &dyn Store) -> (Verdict, Option<String>) {
    if let Err(e) = store.is_empty().await {
        return (Err(UNAVAILABLE), Some(e.to_string()));
    }
    if let Err(e) = store.health().await {
        return (Err(CANNOT_COMMIT), Some(e.to_string()));
    }
    (Ok(()), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_of_readiness_is_logged_not_each_probe() {
        let readiness = Readiness::default();
        let found = |verdict| readiness.found(verdict, &"disk I/O error");
        assert!(!found(Ok(())), "ready from the start: nothing to say");
        assert!(found(Err(CANNOT_COMMIT)), "no longer ready");
        assert!(!found(Err(CANNOT_COMMIT)) && !found(Err(CANNOT_COMMIT)), "each probe since says nothing new");
        assert!(found(Err(NOT_ANSWERING)), "not ready for another reason");
        assert!(found(Ok(())), "ready again");
        assert!(!found(Ok(())));
    }

    #[tokio::test]
    async fn a_verdict_answers_the_probes_of_the_next_second() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.sqlite3");
        let store: Arc<dyn Store> =
            Arc::new(refdesk_store::sqlite::SqliteStore::open(&file, Arc::new(refdesk_store::NoSink)).unwrap());
        let readiness = Arc::new(Readiness::default());
        assert_eq!(readiness.check(&store).await, Ok(()));
        // A verdict given just now (as if the database had failed a check)
        // answers without another check, for a second.
        *readiness.last.lock().unwrap() = Some((std::time::Instant::now(), Err(CANNOT_COMMIT)));
        assert_eq!(readiness.check(&store).await, Err(CANNOT_COMMIT), "not checked again");
        tokio::time::sleep(FRESH_FOR + Duration::from_millis(50)).await;
        assert_eq!(readiness.check(&store).await, Ok(()), "checked again once stale");
    }
}
