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
//! in the last 30 days are not held back by its budget; the per-address
//! limit still holds there. Those networks (their digests,
//! `auth::staff_network_digest`) are in the store (8 per account,
//! written by each sign-in, on any node, and kept across restarts); the
//! store is asked only once an account's budget is spent (or the line of
//! password hashes is full), and what it said is kept here for a minute: a
//! flood of attempts at an account costs a read a minute, and a password
//! reset is heeded within a minute on every node. A name without an account
//! costs a read per attempt at worst (one such name is remembered per
//! counter), as an attempt with its budget left costs one to check it.
//! Unknown names have budgets like known ones: the answer never tells which
//! names exist.

use refdesk_domain::report::DAY;
use refdesk_domain::Millis;
use refdesk_store::KnownNetwork;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

/// Counters in the table (40 bytes each, 2.5 MiB): a guesser spreading
/// attempts over made-up names would need 20 for each to spend every
/// account's budget, far more than a node hashes in an hour.
const COUNTERS: usize = 65_536;
/// How long a network an account signed in from stays known.
pub(crate) const KNOWN_FOR: Millis = 30 * DAY;
/// Networks kept per account, as in the store.
const KNOWN_NETWORKS: usize = 8;
/// How long what the store said about an account's networks (or that no
/// account has the name) is taken as true.
const CHECKED_FOR: Millis = 60_000;
const HOUR: Millis = 3_600_000;

#[derive(Clone, Copy, Default)]
struct Counter {
    /// Attempts spent, paid back at the hourly rate.
    spent: f64,
    /// When `spent` was last brought up to date.
    at: Millis,
    /// The keyed hash of the last name of this counter the store had no
    /// account for, and when it said so.
    absent: (u64, Millis),
    /// Whether a refusal was logged since the budget last had room.
    logged: bool,
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

/// Whether an attempt may go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// It may.
    Go(Attempt),
    /// The account's attempts are spent. `ask`: whether the attempt comes
    /// from a network the account signed in from is not known here; ask
    /// the store ([`FailedSignIns::learned`]) and start again.
    Spent { ask: bool },
}

/// An account's networks, as the store gave them.
struct Known {
    networks: Vec<(String, Millis)>,
    checked_at: Millis,
}

/// The accounts' budgets on this node.
pub(crate) struct FailedSignIns {
    keys: RandomState,
    counters: Mutex<Vec<Counter>>,
    /// What the store said of accounts whose budget ran out: names the
    /// store has an account for alone, so no more entries than accounts.
    known: Mutex<HashMap<String, Known>>,
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
    /// The name's keyed hash, and its counter.
    fn slot(&self, username: &str) -> (u64, usize) {
        let hash = self.keys.hash_one(username);
        (hash, (hash % COUNTERS as u64) as usize)
    }

    /// Lets an attempt on `username` from `net` (the client's network) go
    /// on, or says the account has no attempts left.
    pub(crate) fn start(&self, username: &str, net: Option<&str>, per_hour: u32, now: Millis) -> Verdict {
        let known = net.and_then(|net| self.known(username, net, now));
        if known == Some(true) {
            return Verdict::Go(Attempt::Known);
        }
        let (_, slot) = self.slot(username);
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let counter = &mut counters[slot];
        counter.repay(per_hour, now);
        if counter.spent + 1.0 <= f64::from(per_hour) {
            counter.spent += 1.0;
            counter.logged = false;
            return Verdict::Go(Attempt::Charged);
        }
        Verdict::Spent { ask: net.is_some() && known.is_none() }
    }

    /// Whether `username` signed in from `net` in the last 30 days, as the
    /// store said within the last minute; `None` when it has not been asked
    /// since (see [`FailedSignIns::learned`]).
    pub(crate) fn known(&self, username: &str, net: &str, now: Millis) -> Option<bool> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(k) = known.get(username).filter(|k| now - k.checked_at < CHECKED_FOR) {
            return Some(k.networks.iter().any(|(n, at)| n == net && now - at < KNOWN_FOR));
        }
        drop(known);
        let (hash, slot) = self.slot(username);
        let absent = self.counters.lock().unwrap_or_else(|p| p.into_inner())[slot].absent;
        (absent.0 == hash && now - absent.1 < CHECKED_FOR).then_some(false)
    }

    /// What the store said of `username` at `now`: the networks it signed
    /// in from lately, or `None` when no account has that name.
    pub(crate) fn learned(&self, username: &str, networks: Option<Vec<KnownNetwork>>, now: Millis) {
        match networks {
            Some(networks) => {
                let networks = networks.into_iter().map(|n| (n.network, n.last_at)).collect();
                let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
                known.insert(username.to_owned(), Known { networks, checked_at: now });
            }
            None => {
                let (hash, slot) = self.slot(username);
                let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
                counters[slot].absent = (hash, now);
            }
        }
    }

    /// Whether a refusal of `username` is to be logged: the first each
    /// time its budget runs out, so a flood of guesses does not flood the
    /// log (the metrics count them all), and one account's is not lost
    /// among made-up names' (each of which takes its budget's worth of
    /// hashes to run out).
    pub(crate) fn to_log(&self, username: &str) -> bool {
        let (_, slot) = self.slot(username);
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        !std::mem::replace(&mut counters[slot].logged, true)
    }

    /// Forgets what the store said of `username` (its password was reset,
    /// or it was disabled: the store forgot its networks too).
    pub(crate) fn forget(&self, username: &str) {
        self.known.lock().unwrap_or_else(|p| p.into_inner()).remove(username);
    }

    /// The attempt signed in from `net` (which the store now holds among the
    /// account's networks): its attempt is given back, and what this node
    /// keeps of the account's networks (if anything) holds `net` too.
    pub(crate) fn signed_in(&self, username: &str, net: Option<&str>, attempt: Attempt, now: Millis) {
        self.give_back(username, attempt);
        let Some(net) = net else { return };
        if let Some(k) = self.known.lock().unwrap_or_else(|p| p.into_inner()).get_mut(username) {
            k.networks.retain(|(n, _)| n != net);
            k.networks.insert(0, (net.to_owned(), now));
            k.networks.truncate(KNOWN_NETWORKS);
        }
    }

    /// An admin reset the account's password: its attempts on this node are
    /// its own again (the stranger's guesses were at the old password), and
    /// what this node kept of its networks is forgotten (the store forgot
    /// them).
    pub(crate) fn password_reset(&self, username: &str) {
        self.forget(username);
        let (_, slot) = self.slot(username);
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        counters[slot].spent = 0.0;
    }

    /// Gives a charged attempt back: it signed in, or no password was
    /// checked (the node was busy, the store failed).
    pub(crate) fn give_back(&self, username: &str, attempt: Attempt) {
        if attempt == Attempt::Charged {
            let (_, slot) = self.slot(username);
            let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
            counters[slot].spent = (counters[slot].spent - 1.0).max(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(n: &str, last_at: Millis) -> KnownNetwork {
        KnownNetwork { network: n.to_owned(), last_at }
    }

    #[test]
    fn an_account_has_so_many_attempts_an_hour_but_from_where_it_signed_in() {
        let g = FailedSignIns::default();
        let (home, away) = ("home's digest", "away's digest");
        for _ in 0..3 {
            assert_eq!(g.start("ann", Some(away), 3, 0), Verdict::Go(Attempt::Charged));
        }
        assert_eq!(g.start("ann", Some(home), 3, 0), Verdict::Spent { ask: true }, "whatever the network");
        assert_eq!(g.start("ann", None, 3, 0), Verdict::Spent { ask: false }, "no network: nothing to ask");
        assert_eq!(g.start("ann", Some(away), 3, HOUR / 3), Verdict::Go(Attempt::Charged), "one back after 20 min");
        // The store says she signed in from home last week.
        let now = HOUR / 3;
        g.learned("ann", Some(vec![net(home, now - 7 * DAY)]), now);
        assert_eq!(g.start("ann", Some(home), 3, now), Verdict::Go(Attempt::Known));
        assert_eq!(g.start("ann", Some(away), 3, now), Verdict::Spent { ask: false }, "asked a moment ago");
        assert_eq!(g.start("ann", Some(away), 3, now + CHECKED_FOR), Verdict::Spent { ask: true }, "a minute on");
        assert_eq!(
            g.start("ann", Some(home), 3, now + CHECKED_FOR),
            Verdict::Spent { ask: true },
            "what the store said is not taken as true for ever (a password reset elsewhere)"
        );
        g.learned("ann", Some(vec![net(home, now + CHECKED_FOR - KNOWN_FOR + 1)]), now + CHECKED_FOR);
        assert_eq!(g.start("ann", Some(home), 3, now + CHECKED_FOR), Verdict::Go(Attempt::Known));
        assert_eq!(g.start("ann", Some(home), 3, now + CHECKED_FOR + 1), Verdict::Spent { ask: false }, "30 days");
    }

    #[test]
    fn a_name_without_an_account_is_asked_about_once_a_minute() {
        let g = FailedSignIns::default();
        let away = "away's digest";
        assert_eq!(g.start("nobody", Some(away), 1, 0), Verdict::Go(Attempt::Charged));
        assert_eq!(g.start("nobody", Some(away), 1, 0), Verdict::Spent { ask: true });
        g.learned("nobody", None, 0);
        assert_eq!(g.start("nobody", Some(away), 1, CHECKED_FOR - 1), Verdict::Spent { ask: false });
        assert!(g.known.lock().unwrap().is_empty(), "nothing kept by name for a name without an account");
        assert_eq!(g.start("nobody", Some(away), 1, CHECKED_FOR), Verdict::Spent { ask: true });
    }

    #[test]
    fn a_sign_in_or_a_reset_password_shows_in_what_is_kept() {
        let g = FailedSignIns::default();
        let (home, away) = ("home's digest", "away's digest");
        assert_eq!(g.start("ann", Some(away), 1, 0), Verdict::Go(Attempt::Charged));
        g.learned("ann", Some(vec![]), 0);
        g.signed_in("ann", Some(home), Attempt::Known, 0);
        assert_eq!(g.start("ann", Some(home), 1, 1), Verdict::Go(Attempt::Known), "what this node wrote");
        g.forget("ann");
        assert_eq!(g.start("ann", Some(home), 1, 2), Verdict::Spent { ask: true }, "forgotten: asked again");
    }

    #[test]
    fn a_password_reset_gives_the_account_its_attempts_back_and_a_refusal_is_logged_once_each_time() {
        let g = FailedSignIns::default();
        assert_eq!(g.start("ann", None, 1, 0), Verdict::Go(Attempt::Charged));
        assert_eq!(g.start("ann", None, 1, 0), Verdict::Spent { ask: false });
        g.password_reset("ann");
        assert_eq!(g.start("ann", None, 1, 0), Verdict::Go(Attempt::Charged), "the guesses were at the old one");
        assert!(g.to_log("ann") && !g.to_log("ann"), "once while her attempts are spent");
        assert_eq!(g.start("ann", None, 1, 0), Verdict::Spent { ask: false });
        assert!(!g.to_log("ann"));
        assert_eq!(g.start("ann", None, 1, HOUR), Verdict::Go(Attempt::Charged));
        assert!(g.to_log("ann"), "and again once they are spent again");
    }

    #[test]
    fn an_attempt_that_signed_in_or_checked_nothing_is_given_back() {
        let g = FailedSignIns::default();
        let Verdict::Go(a) = g.start("ann", None, 1, 0) else { panic!() };
        g.signed_in("ann", None, a, 0);
        let Verdict::Go(b) = g.start("ann", None, 1, 0) else { panic!() };
        g.give_back("ann", b);
        assert_eq!(g.start("ann", None, 1, 0), Verdict::Go(Attempt::Charged));
        assert_eq!(g.start("ann", None, 1, 0), Verdict::Spent { ask: false });
    }

    #[test]
    fn a_flood_of_other_names_does_not_give_an_account_its_attempts_back() {
        let g = FailedSignIns::default();
        for _ in 0..20 {
            assert_eq!(g.start("ann", None, 20, 0), Verdict::Go(Attempt::Charged));
        }
        let spent_by_others = (0..100_000)
            .filter(|i| matches!(g.start(&format!("guess{i}"), None, 20, 1), Verdict::Spent { .. }))
            .count();
        assert_eq!(g.start("ann", None, 20, 2), Verdict::Spent { ask: false }, "the flood made room");
        assert!(spent_by_others < 100, "names share counters rarely: {spent_by_others} refused");
        assert_eq!(g.counters.lock().unwrap().len(), COUNTERS, "the table never grows");
        assert!(g.known.lock().unwrap().is_empty(), "only what the store said of an account is kept");
    }
}
