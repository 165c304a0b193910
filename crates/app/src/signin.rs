//! Failed sign-ins per account (DESIGN §8: rate limits on every entry
//! point). The per-address limit (`logins_per_minute`) slows one network;
//! a password guessed from many networks at once (an IPv6 /48 holds 65,536
//! /64s) would still get the node's whole hashing rate against one account.
//! So each account has a budget of attempts an hour, on this node:
//! `failed_logins_per_account_per_hour`, charged when an attempt starts and
//! given back when it signs in. Past it, attempts are refused before any
//! hash is computed.
//!
//! So that a stranger cannot lock a librarian out at the desk by failing
//! on purpose, the networks an account signed in from in the last 30 days
//! (a few, on this node) are not held back by its budget; the per-address
//! limit still holds there. Unknown names have budgets like known ones:
//! the answer never tells which names exist.

use refdesk_domain::report::DAY;
use refdesk_domain::Millis;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Accounts tracked at most; past it the idle ones are forgotten, then
/// those that never signed in here.
const ACCOUNTS_TRACKED: usize = 10_000;
/// Networks remembered per account.
const KNOWN_NETWORKS: usize = 8;
/// How long a network an account signed in from stays known.
const KNOWN_FOR: Millis = 30 * DAY;
const HOUR: Millis = 3_600_000;

struct Account {
    /// Attempts left, refilled at the hourly rate.
    left: f64,
    /// When `left` was last brought up to date.
    at: Millis,
    /// Networks it signed in from, and when last.
    known: Vec<(IpAddr, Millis)>,
}

impl Account {
    fn refill(&mut self, per_hour: u32, now: Millis) {
        let elapsed = (now - self.at).max(0) as f64;
        self.left = (self.left + elapsed * f64::from(per_hour) / HOUR as f64).min(f64::from(per_hour));
        self.at = now;
    }

    fn knows(&self, net: Option<IpAddr>, now: Millis) -> bool {
        net.is_some_and(|net| self.known.iter().any(|(n, at)| *n == net && now - at < KNOWN_FOR))
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
#[derive(Default)]
pub(crate) struct FailedSignIns(Mutex<HashMap<String, Account>>);

impl FailedSignIns {
    /// Lets an attempt on `username` from `net` (the client's network) go
    /// on, or `None` when the account has no attempts left.
    pub(crate) fn start(&self, username: &str, net: Option<IpAddr>, per_hour: u32, now: Millis) -> Option<Attempt> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= ACCOUNTS_TRACKED {
            prune(&mut map, per_hour, now);
        }
        let full = f64::from(per_hour);
        let account = map.entry(username.to_lowercase()).or_insert(Account { left: full, at: now, known: Vec::new() });
        if account.knows(net, now) {
            return Some(Attempt::Known);
        }
        account.refill(per_hour, now);
        if account.left < 1.0 {
            return None;
        }
        account.left -= 1.0;
        Some(Attempt::Charged)
    }

    /// The attempt signed in: its attempt is given back, and its network is
    /// known from now on.
    pub(crate) fn signed_in(&self, username: &str, net: Option<IpAddr>, attempt: Attempt, per_hour: u32, now: Millis) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(account) = map.get_mut(&username.to_lowercase()) else { return };
        if attempt == Attempt::Charged {
            account.left = (account.left + 1.0).min(f64::from(per_hour));
        }
        if let Some(net) = net {
            account.known.retain(|(n, at)| *n != net && now - at < KNOWN_FOR);
            if account.known.len() >= KNOWN_NETWORKS {
                account.known.remove(0);
            }
            account.known.push((net, now));
        }
    }
}

/// Makes room: accounts with a full budget and no known network first
/// (forgetting them changes nothing), then every account that never signed
/// in here.
fn prune(map: &mut HashMap<String, Account>, per_hour: u32, now: Millis) {
    map.retain(|_, a| {
        a.refill(per_hour, now);
        a.known.retain(|(_, at)| now - at < KNOWN_FOR);
        !a.known.is_empty() || a.left < f64::from(per_hour)
    });
    if map.len() >= ACCOUNTS_TRACKED / 2 {
        map.retain(|_, a| !a.known.is_empty());
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
        assert_eq!(g.start("Ann", Some(away), 3, 0), None, "a name in other letters is the same account");
        assert_eq!(g.start("ben", Some(away), 3, 0), Some(Attempt::Charged), "each account its own");
        assert_eq!(g.start("ann", Some(away), 3, HOUR / 3), Some(Attempt::Charged), "one back after 20 minutes");
        assert_eq!(g.start("ann", Some(home), 3, HOUR / 3), None);
        // Once she signs in from home (before the flood, say), home is not held back.
        g.signed_in("ann", Some(home), Attempt::Known, 3, HOUR / 3);
        assert_eq!(g.start("ann", Some(home), 3, HOUR / 2), Some(Attempt::Known));
        assert_eq!(g.start("ann", Some(away), 3, HOUR / 2), None, "elsewhere still is");
        assert_eq!(g.start("ann", Some(home), 3, HOUR / 2 + KNOWN_FOR), Some(Attempt::Charged), "known for 30 days");
    }

    #[test]
    fn a_sign_in_gives_its_attempt_back() {
        let g = FailedSignIns::default();
        let a = g.start("ann", None, 1, 0).unwrap();
        g.signed_in("ann", None, a, 1, 0);
        assert_eq!(g.start("ann", None, 1, 0), Some(Attempt::Charged));
        assert_eq!(g.start("ann", None, 1, 0), None);
    }

    #[test]
    fn a_flood_of_names_never_grows_the_map_past_its_bound_and_keeps_who_signed_in() {
        let g = FailedSignIns::default();
        let home: IpAddr = [192, 0, 2, 1].into();
        let a = g.start("ann", Some(home), 20, 0).unwrap();
        g.signed_in("ann", Some(home), a, 20, 0);
        for i in 0..(ACCOUNTS_TRACKED * 2) {
            let _ = g.start(&format!("guess{i}"), None, 20, 1);
            assert!(g.0.lock().unwrap().len() <= ACCOUNTS_TRACKED);
        }
        assert_eq!(g.start("ann", Some(home), 20, 2), Some(Attempt::Known), "her network was forgotten");
    }
}
