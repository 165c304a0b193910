//! Each staff member's own line for the node's long reads (reports,
//! searches by words): the store runs two long reads at once on a node,
//! whoever asks, first come first served. One account firing hundreds of
//! reports at once (a script, a stolen sign-in) would put every other
//! staff member's reports behind all of them; with a line of its own it
//! holds at most [`TURNS`] of them at the node's at once, and the others'
//! come next. Nothing is refused: a staff member's own requests wait
//! their turn, as many as the connection caps and read budgets let in.

use refdesk_domain::ids::StaffId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Reports or searches one staff member runs at once on a node: as many as
/// the node runs in all, so that the reports page, which asks for all its
/// reports at once, is no slower for one person alone.
pub const TURNS: usize = refdesk_store::LONG_READS;

/// The lines of the staff members with a report or search running or
/// waiting on this node (a line goes once its last turn ends).
#[derive(Default)]
pub struct Lines(Mutex<HashMap<StaffId, Arc<Semaphore>>>);

/// A turn in one's line, given back when dropped.
pub struct Turn<'a> {
    lines: &'a Lines,
    who: StaffId,
    permit: Option<OwnedSemaphorePermit>,
}

impl Lines {
    /// Waits for a turn in `who`'s line.
    pub async fn turn(&self, who: StaffId) -> Turn<'_> {
        let line = self.lock().entry(who).or_insert_with(|| Arc::new(Semaphore::new(TURNS))).clone();
        // The line is never closed: a turn always comes.
        let permit = line.acquire_owned().await.ok();
        Turn { lines: self, who, permit }
    }

    /// Staff members with a line now.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StaffId, Arc<Semaphore>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut lines = self.lines.lock();
        drop(self.permit.take());
        // Nobody else holds or waits in the line (each holds its `Arc`).
        if lines.get(&self.who).is_some_and(|line| Arc::strong_count(line) == 1) {
            lines.remove(&self.who);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::task::{Context, Waker};

    fn ready<F: Future>(f: &mut std::pin::Pin<Box<F>>) -> bool {
        f.as_mut().poll(&mut Context::from_waker(Waker::noop())).is_ready()
    }

    #[tokio::test]
    async fn one_staff_member_waits_in_their_own_line_and_others_are_not_behind_them() {
        let lines = Lines::default();
        let (hog, other) = (StaffId(1), StaffId(2));
        let mut held = Vec::new();
        for _ in 0..TURNS {
            held.push(lines.turn(hog).await);
        }
        let mut next = Box::pin(lines.turn(hog));
        assert!(!ready(&mut next), "the hog's next waits for one of theirs");
        let theirs = lines.turn(other).await;
        assert_eq!(lines.len(), 2);
        held.pop();
        assert!(ready(&mut next), "and comes when one of theirs ends");
        drop(next);
        drop(held);
        assert_eq!(lines.len(), 1, "a line goes with its last turn");
        drop(theirs);
        assert_eq!(lines.len(), 0);
    }
}
