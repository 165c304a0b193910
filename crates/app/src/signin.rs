//! Failed sign-ins per account (DESIGN §8: rate limits on every entry
//! point). The per-address limit (`logins_per_minute`) slows one network;
//! a password guessed from many networks at once (an IPv6 /48 holds 65,536
//! /64s) would still get the node's whole hashing rate against one account.
//! So each account has a budget of attempts an hour, on this node:
//! `failed_logins_per_account_per_hour`, charged when an attempt starts and
//! given back when it signs in (or when no password was checked at all).
//! Past it, attempts are refused before any hash is computed.
//!
//! The budgets are a fixed table of counters, each name's found by a keyed
//! hash (the process's random keys): nothing a flood of names does can make
//! room by forgetting an account's count, and names sharing a counter only
//! share a stricter budget. So that a stranger failing on purpose cannot
//! lock a librarian out at the desk, the networks an account signed in from
//! in the last 30 days (8 at most, remembered by this node since it
//! started, and only on a sign-in: at most 8 per real account) are not held
//! back by its budget; the per-address limit still holds there. Unknown
//! names have budgets like known ones: the answer never tells which names
//! exist.

use refdesk_domain::report::DAY;
use refdesk_domain::Millis;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Mutex;

/// Counters in the table (16 bytes each, 1 MiB): a guesser spreading
/// attempts over made-up names would need 20 for each to spend every
/// account's budget, far more than a node hashes in an hour.
const COUNTERS: usize = 65_536;
/// Networks remembered per account.
const KNOWN_NETWORKS: usize = 8;
/// How long a network an account signed in from stays known.
const KNOWN_FOR: Millis = 30 * DAY;
const HOUR: Millis = 3_600_000;

#[derive(Clone, Copy, Default)]
struct Counter {
    /// Attempts spent, paid back at the hourly rate.
    spent: f64,
    /// When `spent` was last brought up to date.
    at: Millis,
}

impl Counter {
    fn repay(&mut self, per_hour: u32, now: Millis) {
        let elapsed = (now - self.at).max(0) as f64;
        self.spent = (self.spent - elapsed * f64::from(per_hour) / HOUR as f64).max(0.0);
        self.at = now;
    }
}

/// How an attempt was let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// It spent one of the account's attempts.
    Charged,
    /// From a network the account signed in from: not counted.
    Known,
}

/// The accounts' budgets on this node.
pub(crate) struct FailedSignIns {
    keys: RandomState,
    counters: Mutex<Vec<Counter>>,
    /// Networks each account signed in from, and when last: written only
    /// by a sign-in, so it holds real accounts alone.
    known: Mutex<HashMap<String, Vec<(IpAddr, Millis)>>>,
}

impl Default for FailedSignIns {
    fn default() -> Self {
        FailedSignIns {
            keys: RandomState::new(),
            counters: Mutex::new(vec![Counter::default(); COUNTERS]),
            known: Mutex::default(),
        }
    }
}

impl FailedSignIns {
    fn slot(&self, username: &str) -> usize {
        (self.keys.hash_one(username) % COUNTERS as u64) as usize
    }

    /// Lets an attempt on `username` from `net` (the client's network) go
    /// on, or `None` when the account has no attempts left.
    pub(crate) fn start(&self, username: &str, net: Option<IpAddr>, per_hour: u32, now: Millis) -> Option<Attempt> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = |(n, at): &(IpAddr, Millis)| Some(*n) == net && now - at < KNOWN_FOR;
        if known.get(username).is_some_and(|nets| nets.iter().any(fresh)) {
            return Some(Attempt::Known);
        }
        drop(known);
        let slot = self.slot(username);
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let counter = &mut counters[slot];
        counter.repay(per_hour, now);
        if counter.spent + 1.0 > f64::from(per_hour) {
            return None;
        }
        counter.spent += 1.0;
        Some(Attempt::Charged)
    }

    /// Gives a charged attempt back: it signed in, or no password was
    /// checked (the node was busy, the store failed).
    pub(crate) fn give_back(&self, username: &str, attempt: Attempt) {
        if attempt == Attempt::Charged {
            let slot = self.slot(username);
            let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
            counters[slot].spent = (counters[slot].spent - 1.0).max(0.0);
        }
    }

    /// The attempt signed in: its attempt is given back, and its network is
    /// known from now on.
    pub(crate) fn signed_in(&self, username: &str, net: Option<IpAddr>, attempt: Attempt, now: Millis) {
        self.give_back(username, attempt);
        let Some(net) = net else { return };
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let nets = known.entry(username.to_owned()).or_default();
        nets.retain(|(n, at)| *n != net && now - at < KNOWN_FOR);
        if nets.len() >= KNOWN_NETWORKS {
            nets.remove(0);
        }
        nets.push((net, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_has_so_many_attempts_an_hour_but_from_where_it_signed_in() {
        let g = FailedSignIns::default();
        let (home, away): (IpAddr, IpAddr) = ([192, 0, 2, 1].into(), [198, 51, 100, 1].into());
        for _ in 0..3 {
            assert_eq!(g.start("ann", Some(away), 3, 0), Some(Attempt::Charged));
        }
        assert_eq!(g.start("ann", Some(home), 3, 0), None, "whatever the network");
        assert_eq!(g.start("ann", Some(away), 3, HOUR / 3), Some(Attempt::Charged), "one back after 20 minutes");
        assert_eq!(g.start("ann", Some(away), 3, HOUR / 3), None);
        // Once she has signed in from home (before the flood, say), home is not held back.
        g.signed_in("ann", Some(home), Attempt::Known, HOUR / 3);
        assert_eq!(g.start("ann", Some(home), 3, HOUR / 2), Some(Attempt::Known));
        assert_eq!(g.start("ann", Some(away), 3, HOUR / 2), None, "elsewhere still is");
        assert_eq!(g.start("ann", Some(home), 3, HOUR / 2 + KNOWN_FOR), Some(Attempt::Charged), "known for 30 days");
    }

    #[test]
    fn an_attempt_that_signed_in_or_checked_nothing_is_given_back() {
        let g = FailedSignIns::default();
        let a = g.start("ann", None, 1, 0).unwrap();
        g.signed_in("ann", None, a, 0);
        let b = g.start("ann", None, 1, 0).unwrap();
        g.give_back("ann", b);
        assert_eq!(g.start("ann", None, 1, 0), Some(Attempt::Charged));
        assert_eq!(g.start("ann", None, 1, 0), None);
    }

    #[test]
    fn a_flood_of_other_names_does_not_give_an_account_its_attempts_back() {
        let g = FailedSignIns::default();
        for _ in 0..20 {
            g.start("ann", None, 20, 0).unwrap();
        }
        let spent_by_others = (0..100_000).filter(|i| g.start(&format!("guess{i}"), None, 20, 1).is_none()).count();
        assert_eq!(g.start("ann", None, 20, 2), None, "the flood made room by forgetting her count");
        assert!(spent_by_others < 100, "names share counters rarely: {spent_by_others} refused");
        assert_eq!(g.counters.lock().unwrap().len(), COUNTERS, "the table never grows");
        assert!(g.known.lock().unwrap().is_empty(), "only a sign-in is remembered");
    }
}
