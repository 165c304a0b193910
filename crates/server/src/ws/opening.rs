//! The sockets still opening on a node: upgraded, not yet authenticated.
//!
//! Anyone may open one, so they are bounded apart from the signed-in ones
//! ([`super::PENDING_AUTH`]). When the node's room is full, a new socket
//! takes the place of the one that has waited longest, which is closed
//! with 1013 (try again later): a page sends its `auth` frame within
//! milliseconds of opening, so the oldest still waiting is almost always
//! one that never will. Refusing the newcomer instead would let a few
//! networks holding silent sockets turn everyone away for the whole
//! authentication window, again and again.
//!
//! A socket holds its place only until its first frame is in (then the
//! server is checking who it is, and no newcomer may close it), and never
//! once authenticated.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// The node's opening sockets, oldest first.
pub struct Opening {
    room: usize,
    waiting: Mutex<Waiting>,
}

struct Waiting {
    next: u64,
    /// Each opening socket's number (ascending) and the sender whose drop
    /// tells it that it lost its place.
    places: VecDeque<(u64, oneshot::Sender<()>)>,
}

/// One socket's place among the opening ones, given back when dropped.
pub struct Place {
    id: u64,
    /// `None` once the place is known to be lost.
    lost: Option<oneshot::Receiver<()>>,
    opening: Arc<Opening>,
}

impl Opening {
    /// Room for `room` opening sockets (at least one).
    pub fn new(room: usize) -> Arc<Opening> {
        Arc::new(Opening { room: room.max(1), waiting: Mutex::new(Waiting { next: 0, places: VecDeque::new() }) })
    }

    /// A place for a new socket; if the room is full, the oldest socket's
    /// place is taken from it (its [`Place::lost`] resolves).
    pub fn enter(self: &Arc<Opening>) -> Place {
        let (tell, lost) = oneshot::channel();
        let mut w = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        while w.places.len() >= self.room {
            // Dropping the sender is the signal.
            w.places.pop_front();
        }
        let id = w.next;
        w.next += 1;
        w.places.push_back((id, tell));
        Place { id, lost: Some(lost), opening: self.clone() }
    }

    /// How many sockets are opening now (for the tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).places.len()
    }
}

impl Place {
    /// Resolves once a newer socket has taken this place (never, while
    /// the place is kept; at once, if it was lost before).
    pub async fn lost(&mut self) {
        if let Some(lost) = self.lost.as_mut() {
            let _ = lost.await;
            self.lost = None;
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut w = self.opening.waiting.lock().unwrap_or_else(|e| e.into_inner());
        // Numbers ascend from front to back: found by halving.
        if let Ok(i) = w.places.binary_search_by_key(&self.id, |(id, _)| *id) {
            w.places.remove(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn lost_within(place: &mut Place, ms: u64) -> bool {
        tokio::time::timeout(Duration::from_millis(ms), place.lost()).await.is_ok()
    }

    #[tokio::test]
    async fn a_full_room_gives_the_oldest_place_to_the_newcomer_and_a_given_back_place_is_free_again() {
        let opening = Opening::new(3);
        let mut a = opening.enter();
        let mut b = opening.enter();
        let mut c = opening.enter();
        assert_eq!(opening.len(), 3);
        assert!(!lost_within(&mut a, 20).await, "room for three: nobody loses a place");

        // A fourth: the oldest (a) loses its place; b and c keep theirs.
        let mut d = opening.enter();
        assert!(lost_within(&mut a, 1000).await, "the oldest lost its place");
        assert!(lost_within(&mut a, 20).await, "and stays lost");
        assert!(!lost_within(&mut b, 20).await && !lost_within(&mut c, 20).await);
        assert_eq!(opening.len(), 3);
        drop(a);
        assert_eq!(opening.len(), 3, "a lost place is not given back twice");

        // c authenticates (its place is given back): a fifth takes the
        // free room, and nobody loses a place.
        drop(c);
        assert_eq!(opening.len(), 2);
        let mut e = opening.enter();
        assert!(!lost_within(&mut b, 20).await && !lost_within(&mut d, 20).await);
        // A sixth: b, the oldest left, loses its place.
        let _f = opening.enter();
        assert!(lost_within(&mut b, 1000).await);
        assert!(!lost_within(&mut d, 20).await && !lost_within(&mut e, 20).await);
        drop((b, d, e));
        assert_eq!(opening.len(), 1);
    }
}
