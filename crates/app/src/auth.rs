//! Secrets: argon2id password hashes, random tokens, and their SHA-256
//! digests (only digests of tokens are stored, so a copy of the database
//! opens no chat and signs nobody in).

use crate::{AppError, AppResult};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};

/// A new random token: 32 bytes, hex-encoded.
pub fn new_token() -> AppResult<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AppError::Internal(format!("no randomness: {e}").into()))?;
    Ok(hex(&bytes))
}

/// Whether `token` could be one [`new_token`] made: 64 lower-case hex
/// digits. Anything else matches nothing, and is not looked up.
pub fn is_token(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The stored form of a token.
pub fn digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The stored form of a patron's network (an IPv4 address, or the /64 of
/// an IPv6 one: `refdesk_domain::net::network`): what a block keeps,
/// rather than the address.
pub fn network_digest(ip: std::net::IpAddr) -> String {
    digest(&format!("refdesk-net:{}", refdesk_domain::net::network(ip)))
}

/// The stored form of a wider network an IPv6 patron's /64 counts in
/// (its /56 or /48: `refdesk_domain::net::networks`), the prefix length
/// digested with it (a /56 and a /64 may be written alike).
pub fn wider_network_digest(prefix: u8, network: std::net::IpAddr) -> String {
    digest(&format!("refdesk-net/{prefix}:{network}"))
}

/// The stored form of a network a staff member signed in from: digested
/// apart from [`network_digest`], so that no patron's network is found in
/// the staff's rows (a library's public computers and its desk often share
/// one address), nor kept after the patron's data is erased.
pub fn staff_network_digest(ip: std::net::IpAddr) -> String {
    digest(&format!("refdesk-staff-net:{}", refdesk_domain::net::network(ip)))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Hashes a password with argon2id and a random salt. Slow by design: call
/// it off the async threads.
pub fn hash_password(password: &str) -> AppResult<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AppError::Internal(format!("no randomness: {e}").into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AppError::Internal(e.to_string().into()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(e.to_string().into()))
}

/// Whether `password` matches the stored hash. A malformed hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong horse", &h));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_digests_stable() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(digest(&a), digest(&a));
        assert_ne!(digest(&a), a);
    }
}
