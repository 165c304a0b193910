//! One read at a time of what the open entry points serve from memory (a
//! library's status, the list of libraries): anyone may ask for them as
//! often as they like, so when the answer goes stale a flood of requests
//! must cost one read of the store, not one each.

use tokio::sync::{Mutex, MutexGuard};

/// What a request does when its answer is not fresh ([`turn`]).
pub(crate) enum Turn<'a, T> {
    /// It reads the store, holding the turn while it does.
    Read(MutexGuard<'a, ()>),
    /// Another request is reading: it serves what was read before.
    Serve(T),
    /// Another request was reading and there was nothing to serve: that
    /// read is done now, so it looks again.
    Again,
}

/// Whose turn it is to read, for a request that found `was` (what was read
/// before, if anything) not fresh. While another request reads, the
/// request serves `was`; with nothing to serve it waits for that read once
/// (`waited`), then reads in turn itself.
pub(crate) async fn turn<'a, T>(reading: &'a Mutex<()>, was: Option<T>, waited: &mut bool) -> Turn<'a, T> {
    match (reading.try_lock(), was) {
        (Ok(guard), _) => Turn::Read(guard),
        (Err(_), Some(was)) => Turn::Serve(was),
        (Err(_), None) if !*waited => {
            drop(reading.lock().await);
            *waited = true;
            Turn::Again
        }
        (Err(_), None) => Turn::Read(reading.lock().await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn while_one_reads_the_others_serve_what_was_read_or_wait_once_then_read_in_turn() {
        let reading: &'static Mutex<()> = Box::leak(Box::new(Mutex::new(())));
        let mut waited = false;
        let first = turn(reading, Some(1), &mut waited).await;
        assert!(matches!(first, Turn::Read(_)), "the first reads");
        assert!(matches!(turn(reading, Some(1), &mut waited).await, Turn::Serve(1)), "the next serves the old");
        assert!(!waited);
        // Nothing to serve: wait for the read under way, then look again.
        let waiting = tokio::spawn(async move {
            let mut waited = false;
            let again = matches!(turn(reading, None::<u8>, &mut waited).await, Turn::Again);
            let read = matches!(turn(reading, None::<u8>, &mut waited).await, Turn::Read(_));
            (again, waited, read)
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "it waits for the read under way");
        drop(first);
        assert_eq!(waiting.await.unwrap(), (true, true, true), "waited once, then read");
    }
}
