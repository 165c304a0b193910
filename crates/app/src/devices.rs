//! The browsers staff signed in from (DESIGN §8: rate limits on every entry
//! point, which a stranger must not be able to spend for someone else).
//! Sign-in attempts are limited per client address
//! (`limits.logins_per_minute`), and a library's desk often shares its
//! address with the public computers and the Wi-Fi: a stranger there could
//! spend that budget and keep the next shift from signing in.
//!
//! So a browser that signs in gets a cookie (`__Host-refdesk_device` over
//! https) holding, for each account that signed in there lately (at most
//! [`MOST`]: a desk's computer serves a few librarians), a token: a label of
//! the account, when it signed in, and an HMAC-SHA256 of both under a key
//! the service keeps in its store (`server_keys`, made by the first node
//! that needs it: the same on every node and after a restart). The label is
//! itself a keyed hash of the account's name, so the cookie does not tell
//! whoever reads it on a shared computer who signed in there. An attempt at
//! an account whose token the browser presents, signed and at most
//! [`DEVICE_FOR`] old, has a budget of its own (keyed by the token), at the
//! same rate; every other attempt spends its address's. Nothing is stored
//! per browser, no token can be made without the key, and one only ever
//! spares its holder's attempts at its own account.

use crate::{App, AppError, AppResult};
use refdesk_domain::report::DAY;
use refdesk_domain::Millis;
use ring::hmac;

/// How long a browser stays known after it last signed in.
pub const DEVICE_FOR: Millis = 30 * DAY;
/// Accounts a cookie holds tokens for at most (the newest kept).
pub const MOST: usize = 8;
/// The key's name in the store.
const KEY_NAME: &str = "device-cookies";
/// How long after the store failed to give the key it is asked again.
const RETRY_KEY: Millis = 10_000;

/// The key that signs the tokens.
pub struct DeviceKey(hmac::Key);

/// A signed token of a cookie, current at the time it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownDevice {
    /// The label of the account that signed in from the browser
    /// ([`DeviceKey::label`]).
    label: u64,
    /// The token's own budget's key (from its signature: made by no one
    /// without the key).
    pub bucket: u128,
}

impl DeviceKey {
    /// A key of `secret`'s bytes.
    pub fn new(secret: &[u8]) -> DeviceKey {
        DeviceKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// The label of `username` in tokens: the first 8 bytes of its keyed
    /// hash.
    pub fn label(&self, username: &str) -> u64 {
        let tag = hmac::sign(&self.0, format!("refdesk-device-account:{username}").as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&tag.as_ref()[..8]);
        u64::from_be_bytes(first)
    }

    fn message(label: u64, issued: Millis) -> String {
        format!("refdesk-device:{label:016x}:{issued}")
    }

    /// The token saying `username` signed in from this browser at `issued`.
    pub fn token(&self, username: &str, issued: Millis) -> String {
        let label = self.label(username);
        let tag = hmac::sign(&self.0, Self::message(label, issued).as_bytes());
        format!("{label:016x}:{issued}:{}", crate::auth::hex(tag.as_ref()))
    }

    /// The token's account label and budget, if it is signed by this key
    /// and at most [`DEVICE_FOR`] old at `now` (not issued after it either,
    /// give or take a minute of another node's clock). Every part is read
    /// strictly: one way of writing a token only.
    fn check(&self, token: &str, now: Millis) -> Option<KnownDevice> {
        let mut parts = token.splitn(3, ':');
        let (label, issued, tag) = (parts.next()?, parts.next()?, parts.next()?);
        let label = u64::from_be_bytes(unhex(label)?.try_into().ok()?);
        // Milliseconds since 1970 as written by `token`: digits only, no
        // sign, no leading zero, at most 15 of them.
        let digits = issued.len() <= 15 && issued.bytes().all(|b| b.is_ascii_digit()) && !issued.starts_with('0');
        let issued: Millis = issued.parse().ok().filter(|_| digits)?;
        if now.saturating_sub(issued) >= DEVICE_FOR || issued.saturating_sub(now) > 60_000 {
            return None;
        }
        let tag = unhex(tag).filter(|t| t.len() == 32)?;
        hmac::verify(&self.0, Self::message(label, issued).as_bytes(), &tag).ok()?;
        Some(KnownDevice { label, bucket: u128::from_be_bytes(tag[..16].try_into().ok()?) })
    }

    /// The signed, current tokens of a cookie's value, newest first (no more
    /// than [`MOST`] are read, whatever the cookie holds).
    pub fn known(&self, cookie: &str, now: Millis) -> Vec<KnownDevice> {
        cookie.split('~').take(MOST).filter_map(|t| self.check(t, now)).collect()
    }

    /// Of `known`, the token of `username`'s, if there is one.
    pub fn of<'k>(&self, known: &'k [KnownDevice], username: &str) -> Option<&'k KnownDevice> {
        let label = self.label(username);
        known.iter().find(|d| d.label == label)
    }

    /// The cookie's value once `username` signed in at `now`: its new token
    /// first, then those of the other accounts still signed and current.
    pub fn after_sign_in(&self, cookie: Option<&str>, username: &str, now: Millis) -> String {
        let mut tokens = vec![self.token(username, now)];
        let label = self.label(username);
        let others = cookie.unwrap_or("").split('~').take(MOST);
        let others = others.filter(|t| self.check(t, now).is_some_and(|d| d.label != label));
        tokens.extend(others.take(MOST - 1).map(str::to_owned));
        tokens.join("~")
    }
}

/// Bytes of lower-case hex digits.
fn unhex(s: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    if s.is_empty() || !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes().chunks(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

impl App {
    /// The key that signs browsers' tokens: read from the store (made there
    /// by the first node that asked) once per process.
    pub async fn device_key(&self) -> AppResult<&DeviceKey> {
        self.device_key
            .get_or_try_init(|| async {
                // Callers that queued while another tried and failed wait
                // out the same ten seconds.
                let failed_at = self.device_key_failed_at.load(std::sync::atomic::Ordering::Relaxed);
                if failed_at != 0 && self.clock.now() - failed_at < RETRY_KEY {
                    return Err(AppError::Internal(
                        String::from("the key of known browsers could not be read lately").into(),
                    ));
                }
                let fresh = crate::auth::new_token()?;
                let secret = self.store.server_key(KEY_NAME, &fresh).await.map_err(AppError::from)?;
                Ok::<_, AppError>(DeviceKey::new(secret.as_bytes()))
            })
            .await
    }

    /// The signed, current tokens of a device cookie's value
    /// ([`DeviceKey::known`]); none when the key cannot be read (then every
    /// attempt spends its address's budget, as before there were any).
    /// The store is asked for the key once every [`RETRY_KEY`] at most
    /// while it fails: anyone can send a cookie, and each attempt would
    /// otherwise be a write.
    pub async fn known_devices(&self, cookie: &str) -> Vec<KnownDevice> {
        use std::sync::atomic::Ordering;
        let now = self.clock.now();
        let failed_at = self.device_key_failed_at.load(Ordering::Relaxed);
        if self.device_key.get().is_none() && failed_at != 0 && now - failed_at < RETRY_KEY {
            return Vec::new();
        }
        match self.device_key().await {
            Ok(key) => key.known(cookie, now),
            Err(e) => {
                self.device_key_failed_at.store(now.max(1), Ordering::Relaxed);
                tracing::warn!(error = %e, "the key of known browsers could not be read; sign-ins count by address");
                Vec::new()
            }
        }
    }

    /// Of `known` (read by [`App::known_devices`], so the key is at hand),
    /// the budget of `username`'s token, if there is one.
    pub fn known_device_of(&self, known: &[KnownDevice], username: &str) -> Option<u128> {
        Some(self.device_key.get()?.of(known, username)?.bucket)
    }

    /// The device cookie's value once `username` signed in
    /// ([`DeviceKey::after_sign_in`]).
    pub async fn device_cookie(&self, cookie: Option<&str>, username: &str) -> AppResult<String> {
        Ok(self.device_key().await?.after_sign_in(cookie, username, self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_800_000_000_000;

    #[test]
    fn a_token_is_known_for_its_account_until_it_is_thirty_days_old() {
        let key = DeviceKey::new(b"secret");
        let token = key.token("ann", NOW);
        assert!(!token.contains("ann"), "the cookie does not name the account: {token}");
        let known = key.known(&token, NOW + DEVICE_FOR - 1);
        assert_eq!(known.len(), 1);
        assert!(key.of(&known, "ann").is_some());
        assert!(key.of(&known, "ben").is_none(), "ann's token is not ben's");
        assert!(key.known(&token, NOW + DEVICE_FOR).is_empty(), "thirty days on, it is not");
        assert!(key.known(&token, NOW - 120_000).is_empty(), "nor one issued in the future");
        assert_ne!(known[0].bucket, key.known(&key.token("ann", NOW + 1), NOW)[0].bucket, "a budget per token");
    }

    #[test]
    fn a_token_not_signed_by_the_key_or_not_written_as_made_is_not_known() {
        let key = DeviceKey::new(b"secret");
        let token = key.token("ann", NOW);
        assert!(DeviceKey::new(b"another").known(&token, NOW).is_empty(), "another service's key");
        let (label, rest) = token.split_once(':').unwrap();
        let bens = format!("{:016x}:{rest}", key.label("ben"));
        assert!(key.known(&bens, NOW).is_empty(), "another account's label on ann's signature");
        let later = token.replacen(&NOW.to_string(), &(NOW + 1).to_string(), 1);
        assert!(key.known(&later, NOW).is_empty(), "another time");
        let mut flipped = token.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert!(key.known(&String::from_utf8(flipped).unwrap(), NOW).is_empty(), "a changed signature");
        let tag = rest.split_once(':').unwrap().1;
        for odd in [format!("+{NOW}"), format!("0{NOW}"), format!(" {NOW}"), i64::MIN.to_string(), i64::MAX.to_string()]
        {
            assert!(key.known(&format!("{label}:{odd}:{tag}"), NOW).is_empty(), "{odd}");
        }
        let long = format!("{label}:{NOW}:{tag}00");
        for junk in
            ["", "~", "ann", "ann:1", "ann:x:00", "ann:1:zz", &long, &format!("{label}:{NOW}:{}", "é".repeat(32))]
        {
            assert!(key.known(junk, NOW).is_empty(), "{junk:?}");
        }
    }

    #[test]
    fn a_cookie_keeps_the_newest_token_of_each_account_eight_at_most() {
        let key = DeviceKey::new(b"secret");
        let mut cookie = String::new();
        for i in 0..10 {
            cookie = key.after_sign_in(Some(&cookie), &format!("user{i}"), NOW + i);
        }
        let known = key.known(&cookie, NOW + 10);
        let users: Vec<usize> = (0..10).filter(|i| key.of(&known, &format!("user{i}")).is_some()).collect();
        assert_eq!(users, [2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(known[0], key.known(&key.token("user9", NOW + 9), NOW + 10)[0], "the newest first");
        let again = key.after_sign_in(Some(&cookie), "user5", NOW + 20);
        let known = key.known(&again, NOW + 20);
        assert_eq!(known.len(), MOST, "one token per account");
        assert_eq!(key.of(&known, "user5"), Some(&known[0]));
        let forged = format!("{}~{cookie}", "0123456789abcdef:1:00");
        let kept = key.after_sign_in(Some(&forged), "ann", NOW + 30);
        assert!(!kept.contains("0123456789abcdef"), "what does not check out is dropped");
    }
}
