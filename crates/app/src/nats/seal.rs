//! Sealing what crosses NATS: every envelope a node publishes is encrypted
//! and authenticated with a key the nodes share ([`NatsKey`]), and a node
//! takes from NATS only what opens with it, fresh, and not seen before
//! ([`Opener`]). It must never hand on anything that did not open: a line
//! a patron sees comes from a node that holds the key, or from nowhere.
//!
//! The cipher is ChaCha20-Poly1305 (an AEAD: one operation both hides the
//! events and proves who sealed them), from `ring`, which refdesk already
//! builds for TLS — no new crate. An HMAC alone would have stopped forgery
//! but left librarian notes, patron names and e-mail addresses readable by
//! anyone who can subscribe on NATS.
//!
//! A sealed envelope, every byte of it authenticated:
//!
//! ```text
//! "RDK1" | node (16 random bytes) | counter (u64 BE) | sent at (ms, u64 BE) | ciphertext + 16-byte tag
//! ```
//!
//! - Each node seals with a key of its own, derived (HKDF-SHA256) from the
//!   shared key and its random node id, and numbers its envelopes 1, 2, 3…
//!   The number is the nonce, so no nonce is ever used twice with one key,
//!   however many envelopes the nodes send (random 96-bit nonces under one
//!   shared key would run into the birthday bound within months).
//! - The receiver takes from a node only numbers above the last it took
//!   (a replayed envelope is dropped), and only envelopes sent within
//!   [`MAX_SKEW`] of its own clock (an envelope of a node it has forgotten
//!   cannot be replayed later either).
//! - The NATS subject is authenticated too: an envelope of one deployment
//!   replayed on another's subject does not open, even under the same key.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use ring::hkdf;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// What a sealed envelope starts with (and the format's version).
const MAGIC: &[u8; 4] = b"RDK1";
/// The node id's length.
const NODE: usize = 16;
/// The clear header: magic, node, counter, time sent.
pub const HEADER: usize = MAGIC.len() + NODE + 8 + 8;
/// The authentication tag's length.
const TAG: usize = 16;
/// Keys shorter than this are refused: 256 bits, the cipher's key size.
pub const MIN_KEY_BYTES: usize = 32;
/// How far an envelope's time may be from the receiver's clock. Nodes
/// keep their clocks with NTP (well under a second apart); an envelope
/// older than this is a replay, or was held up so long that the receiver
/// must re-read the store anyway (which the gap it leaves makes it do).
pub const MAX_SKEW: Duration = Duration::from_secs(30);
/// Where the derived keys come from (HKDF's salt), and what for.
const KDF_SALT: &[u8] = b"refdesk nats envelope key";
const KDF_INFO: &[u8] = b"refdesk nats envelope v1";

/// The key the nodes of a deployment share. Its `Debug` hides it; it is
/// never logged, nor put in an error.
#[derive(Clone)]
pub struct NatsKey {
    prk: hkdf::Prk,
}

impl std::fmt::Debug for NatsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NatsKey(<hidden>)")
    }
}

impl NatsKey {
    /// A key written as text: at least [`MIN_KEY_BYTES`] random bytes in
    /// hexadecimal (`openssl rand -hex 32`) or base64 (`openssl rand
    /// -base64 32`; the URL-safe alphabet and missing padding are fine).
    /// Says what is wrong without repeating the text.
    pub fn parse(text: &str) -> Result<NatsKey, String> {
        let text = text.trim();
        if ["<hidden>", "***"].contains(&text) {
            return Err(format!(
                "the NATS key is {text:?}, which `refdesk config` shows in place of a secret: give the key itself \
                 (the same on every node)"
            ));
        }
        let written = match decode_hex(text) {
            Some(_) => "hexadecimal",
            None => "base64",
        };
        let bytes = decode_hex(text).or_else(|| decode_base64(text)).ok_or_else(|| {
            "the NATS key must be random bytes written in hexadecimal or base64 (e.g. the output of \
             `openssl rand -base64 32`)"
                .to_owned()
        })?;
        if bytes.len() < MIN_KEY_BYTES {
            return Err(format!(
                "the NATS key holds {} bytes (its {} characters read as {written}); it must be at least \
                 {MIN_KEY_BYTES} random bytes (e.g. the output of `openssl rand -base64 32`)",
                bytes.len(),
                text.chars().count()
            ));
        }
        // 32 random bytes hold about 30 different values; a key with few
        // is a pattern someone typed ("0000…", "abab…"), not a secret.
        let mut seen = [false; 256];
        bytes.iter().for_each(|b| seen[*b as usize] = true);
        if seen.iter().filter(|s| **s).count() < 16 {
            return Err("the NATS key looks like a pattern, not random bytes: make one with \
                        `openssl rand -base64 32`"
                .into());
        }
        Ok(NatsKey { prk: hkdf::Salt::new(hkdf::HKDF_SHA256, KDF_SALT).extract(&bytes) })
    }

    /// The key in a file, written as [`NatsKey::parse`] takes it.
    pub fn read(path: &Path) -> Result<NatsKey, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the NATS key file {}: {e}", path.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                tracing::warn!(file = %path.display(), "the NATS key file can be read by others than its owner: make it 0600 (or 0400)");
            }
        }
        NatsKey::parse(&text).map_err(|e| format!("{e} (in {})", path.display()))
    }

    /// The key node `node` seals with.
    fn for_node(&self, node: &[u8; NODE]) -> LessSafeKey {
        // Expanding to the cipher's own key length cannot fail.
        let info = [KDF_INFO, node.as_slice()];
        let okm = self.prk.expand(&info, &CHACHA20_POLY1305).expect("32 bytes from HKDF-SHA256");
        LessSafeKey::new(UnboundKey::from(okm))
    }
}

/// A node's name as logs and the bus show it: its id in hexadecimal.
fn node_name(node: &[u8; NODE]) -> String {
    node.iter().map(|b| format!("{b:02x}")).collect()
}

/// The nonce of a node's `counter`th envelope.
fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// What is authenticated besides the ciphertext: the subject and the header.
fn aad(subject: &str, header: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(subject.len() + 1 + header.len());
    aad.extend_from_slice(subject.as_bytes());
    aad.push(0);
    aad.extend_from_slice(header);
    aad
}

/// The node that sealed `bytes`, as its header says (unchecked): a node
/// skips its own envelopes without opening them (NATS does not send them back,
/// `no_echo`; one comes only if someone replays it).
pub fn sealed_by(bytes: &[u8]) -> Option<[u8; NODE]> {
    (bytes.len() >= HEADER && bytes.starts_with(MAGIC)).then(|| bytes[4..4 + NODE].try_into().ok()).flatten()
}

/// One node's sealing side: its random id and its envelope counter.
pub struct Sealer {
    node: [u8; NODE],
    key: LessSafeKey,
    counter: u64,
}

impl Sealer {
    /// A new node id, from the system's randomness.
    pub fn new(key: &NatsKey) -> Result<Sealer, String> {
        let mut node = [0u8; NODE];
        getrandom::fill(&mut node).map_err(|e| format!("no randomness for the node id: {e}"))?;
        Ok(Sealer { node, key: key.for_node(&node), counter: 0 })
    }

    /// This node's id.
    pub fn node(&self) -> [u8; NODE] {
        self.node
    }

    /// This node's name, as [`Opened::node`] gives it to the receivers.
    pub fn name(&self) -> String {
        node_name(&self.node)
    }

    /// Seals `payload` for `subject`, sent at `now_ms` (milliseconds since
    /// the Unix epoch).
    pub fn seal(&mut self, subject: &str, payload: &[u8], now_ms: u64) -> Result<Vec<u8>, String> {
        self.counter += 1;
        let mut out = Vec::with_capacity(HEADER + payload.len() + TAG);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.node);
        out.extend_from_slice(&self.counter.to_be_bytes());
        out.extend_from_slice(&now_ms.to_be_bytes());
        let aad = aad(subject, &out);
        let mut body = payload.to_vec();
        self.key
            .seal_in_place_append_tag(nonce(self.counter), Aad::from(&aad), &mut body)
            .map_err(|_| "the envelope is too large to seal".to_owned())?;
        out.extend_from_slice(&body);
        Ok(out)
    }
}

/// Why a message from NATS was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Not a sealed envelope at all (plain JSON, another format, too short).
    NotSealed,
    /// Does not open with the key: sealed with another key, altered on the
    /// way (any byte of it), or meant for another subject.
    Forged,
    /// Sealed with the key, but `off_ms` from this node's clock (negative:
    /// from the future): a replay, or clocks that disagree.
    Stale { node: String, off_ms: i64 },
    /// Sealed with the key, but not newer than one already taken from its
    /// node: a replay.
    Replayed { node: String },
}

/// An envelope that opened.
#[derive(Debug)]
pub struct Opened {
    /// The node that sealed it ([`Sealer::name`]).
    pub node: String,
    /// What it sealed.
    pub payload: Vec<u8>,
}

/// What a receiver remembers of a node it took envelopes from.
struct Peer {
    key: LessSafeKey,
    counter: u64,
    heard: Instant,
}

/// A node's receiving side: opens envelopes and remembers, per node, the
/// last one taken. Only nodes holding the key are remembered, so strangers
/// cannot make it grow.
pub struct Opener {
    key: NatsKey,
    /// A second key that also opens (never seals): while the deployment
    /// changes its key, one node at a time.
    second: Option<NatsKey>,
    peers: HashMap<[u8; NODE], Peer>,
}

impl Opener {
    /// A receiver that has heard from nobody yet.
    pub fn new(key: NatsKey) -> Opener {
        Opener { key, second: None, peers: HashMap::new() }
    }

    /// A receiver that opens what is sealed with `key` or with `second`.
    /// A node is held to the key its first envelope opened with.
    pub fn with_second(key: NatsKey, second: Option<NatsKey>) -> Opener {
        Opener { second, ..Opener::new(key) }
    }

    /// Opens `bytes` received on `subject` at `now_ms`.
    pub fn open(&mut self, subject: &str, bytes: &[u8], now_ms: u64) -> Result<Opened, Refused> {
        let Some(node) = sealed_by(bytes) else { return Err(Refused::NotSealed) };
        if bytes.len() < HEADER + TAG {
            return Err(Refused::NotSealed);
        }
        let (header, sealed) = bytes.split_at(HEADER);
        let counter = u64::from_be_bytes(header[20..28].try_into().map_err(|_| Refused::NotSealed)?);
        let sent = u64::from_be_bytes(header[28..36].try_into().map_err(|_| Refused::NotSealed)?);
        // A node not heard from yet: its key is derived (from the key, then
        // the second one), and kept only if the envelope opens.
        let aad = aad(subject, header);
        let open = |key: &LessSafeKey| {
            let mut body = sealed.to_vec();
            let plain_len = key.open_in_place(nonce(counter), Aad::from(&aad), &mut body).ok()?.len();
            body.truncate(plain_len);
            Some(body)
        };
        let (body, fresh) = match self.peers.get(&node) {
            Some(peer) => (open(&peer.key).ok_or(Refused::Forged)?, None),
            None => std::iter::once(&self.key)
                .chain(&self.second)
                .map(|k| k.for_node(&node))
                .find_map(|key| open(&key).map(|body| (body, Some(key))))
                .ok_or(Refused::Forged)?,
        };
        // Authentic from here on: the node, counter and time are its own.
        let off_ms = now_ms as i64 - sent as i64;
        if off_ms.unsigned_abs() > MAX_SKEW.as_millis() as u64 {
            return Err(Refused::Stale { node: node_name(&node), off_ms });
        }
        match self.peers.get_mut(&node) {
            Some(peer) if counter <= peer.counter => return Err(Refused::Replayed { node: node_name(&node) }),
            Some(peer) => {
                peer.counter = counter;
                peer.heard = Instant::now();
            }
            None => {
                let key = fresh.unwrap_or_else(|| self.key.for_node(&node));
                self.peers.insert(node, Peer { key, counter, heard: Instant::now() });
            }
        }
        Ok(Opened { node: node_name(&node), payload: body })
    }

    /// Forgets nodes not heard from for `max_age` (stopped, or restarted
    /// under a new id). An envelope of theirs replayed later is older than
    /// [`MAX_SKEW`] as long as `max_age` is at least that long.
    pub fn forget(&mut self, max_age: Duration) {
        self.peers.retain(|_, p| p.heard.elapsed() < max_age);
    }
}

/// Hexadecimal, if `text` is only that (an even number of digits).
fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // An odd last digit makes a chunk of one: not hexadecimal bytes.
    let pair =
        |p: &[u8]| std::str::from_utf8(p).ok().filter(|p| p.len() == 2).and_then(|p| u8::from_str_radix(p, 16).ok());
    text.as_bytes().chunks(2).map(pair).collect()
}

/// Base64, standard or URL-safe, padded or not.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // A lone last character (six bits) cannot end base64.
    (!text.is_empty() && bits < 6).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBJECT: &str = "refdesk.events";
    const NOW: u64 = 1_700_000_000_000;

    fn key() -> NatsKey {
        NatsKey::parse("8f1c2a9d4e7b6035a1c4d8e2f9b7a6c3d5e1f0a2b4c6d8e0f1a3b5c7d9e2f4a6").unwrap()
    }

    fn other_key() -> NatsKey {
        NatsKey::parse("Zm9vYmFyIGJhenF1eCBxdXV4IGNvcmdlIGdyYXVsdCBnYXJwbHk=").unwrap()
    }

    #[test]
    fn a_sealed_envelope_opens_with_the_key_and_hides_what_it_carries() {
        let mut node = Sealer::new(&key()).unwrap();
        let sealed = node.seal(SUBJECT, b"librarian note: patron's card is blocked", NOW).unwrap();
        assert!(!sealed.windows(9).any(|w| w == b"librarian"), "the payload is not readable on the bus");
        let opened = Opener::new(key()).open(SUBJECT, &sealed, NOW + 5).unwrap();
        assert_eq!(opened.payload, b"librarian note: patron's card is blocked");
        assert_eq!(opened.node, node.name());
        assert_eq!(sealed_by(&sealed), Some(node.node()));
    }

    #[test]
    fn a_second_key_opens_too_while_the_key_changes_and_nothing_else_does() {
        let third = NatsKey::parse("dGhpcmQga2V5IG9mIHNvbWVvbmUgZWxzZSwgMzIgb3IgbW9yZSBieXRlcw").unwrap();
        let mut old_node = Sealer::new(&key()).unwrap();
        let mut new_node = Sealer::new(&other_key()).unwrap();
        let mut stranger = Sealer::new(&third).unwrap();
        // A node changed over: it seals with the new key and opens the old one too.
        let mut opener = Opener::with_second(other_key(), Some(key()));
        for n in 0..3 {
            let old = old_node.seal(SUBJECT, b"from a node not changed yet", NOW + n).unwrap();
            assert_eq!(opener.open(SUBJECT, &old, NOW).unwrap().node, old_node.name());
            let new = new_node.seal(SUBJECT, b"from a node changed over", NOW + n).unwrap();
            assert_eq!(opener.open(SUBJECT, &new, NOW).unwrap().node, new_node.name());
        }
        let forged = stranger.seal(SUBJECT, b"from someone else", NOW).unwrap();
        assert!(matches!(opener.open(SUBJECT, &forged, NOW), Err(Refused::Forged)));
        // Without it, a node of the old key is refused.
        let old = old_node.seal(SUBJECT, b"from a node not changed yet", NOW).unwrap();
        assert!(matches!(Opener::new(other_key()).open(SUBJECT, &old, NOW), Err(Refused::Forged)));
        assert!(Opener::with_second(key(), None).open(SUBJECT, &old, NOW).is_ok());
    }

    #[test]
    fn an_unsealed_or_foreign_message_is_refused() {
        let mut opener = Opener::new(key());
        let plain = br#"{"node":"evil","seq":1,"events":[]}"#;
        assert_eq!(opener.open(SUBJECT, plain, NOW).unwrap_err(), Refused::NotSealed);
        assert_eq!(opener.open(SUBJECT, b"", NOW).unwrap_err(), Refused::NotSealed);
        assert_eq!(opener.open(SUBJECT, b"RDK1", NOW).unwrap_err(), Refused::NotSealed);
        let wrong = Sealer::new(&other_key()).unwrap().seal(SUBJECT, b"please type your PIN", NOW).unwrap();
        assert_eq!(opener.open(SUBJECT, &wrong, NOW).unwrap_err(), Refused::Forged, "sealed with another key");
        let mut node = Sealer::new(&key()).unwrap();
        let elsewhere = node.seal("other.deployment", b"x", NOW).unwrap();
        assert_eq!(opener.open(SUBJECT, &elsewhere, NOW).unwrap_err(), Refused::Forged, "meant for another subject");
    }

    #[test]
    fn any_byte_changed_or_cut_makes_it_refused() {
        let mut node = Sealer::new(&key()).unwrap();
        let sealed = node.seal(SUBJECT, b"{\"body\":\"the maps are in room 4\"}", NOW).unwrap();
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 0x01;
            let e = Opener::new(key()).open(SUBJECT, &altered, NOW).unwrap_err();
            assert!(matches!(e, Refused::Forged | Refused::NotSealed), "byte {i}: {e:?}");
        }
        for len in [HEADER, HEADER + TAG - 1, sealed.len() - 1] {
            assert!(Opener::new(key()).open(SUBJECT, &sealed[..len], NOW).is_err(), "cut to {len}");
        }
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(Opener::new(key()).open(SUBJECT, &longer, NOW).is_err());
    }

    #[test]
    fn a_replayed_or_older_envelope_is_refused() {
        let mut node = Sealer::new(&key()).unwrap();
        let first = node.seal(SUBJECT, b"signed out", NOW).unwrap();
        let second = node.seal(SUBJECT, b"later", NOW).unwrap();
        let mut opener = Opener::new(key());
        opener.open(SUBJECT, &first, NOW).unwrap();
        opener.open(SUBJECT, &second, NOW).unwrap();
        assert!(matches!(opener.open(SUBJECT, &second, NOW), Err(Refused::Replayed { .. })), "the same again");
        assert!(matches!(opener.open(SUBJECT, &first, NOW), Err(Refused::Replayed { .. })), "an older one");
        let third = node.seal(SUBJECT, b"new", NOW).unwrap();
        assert_eq!(opener.open(SUBJECT, &third, NOW).unwrap().payload, b"new", "the node goes on");
    }

    #[test]
    fn an_envelope_from_too_long_ago_or_the_future_is_refused_even_from_a_forgotten_node() {
        let mut node = Sealer::new(&key()).unwrap();
        let old = node.seal(SUBJECT, b"x", NOW).unwrap();
        let skew = MAX_SKEW.as_millis() as u64;
        let mut opener = Opener::new(key());
        assert!(matches!(opener.open(SUBJECT, &old, NOW + skew + 1), Err(Refused::Stale { off_ms, .. }) if off_ms > 0));
        assert!(matches!(opener.open(SUBJECT, &old, NOW - skew - 1), Err(Refused::Stale { off_ms, .. }) if off_ms < 0));
        opener.open(SUBJECT, &old, NOW + skew).unwrap();
        opener.forget(Duration::ZERO);
        assert!(matches!(opener.open(SUBJECT, &old, NOW + 60_000), Err(Refused::Stale { .. })), "forgotten, still old");
    }

    #[test]
    fn two_nodes_under_one_key_never_share_a_nonce() {
        // Each node seals with its own derived key: the same counter and
        // payload give different ciphertexts.
        let (mut a, mut b) = (Sealer::new(&key()).unwrap(), Sealer::new(&key()).unwrap());
        let (x, y) = (a.seal(SUBJECT, b"same", NOW).unwrap(), b.seal(SUBJECT, b"same", NOW).unwrap());
        assert_ne!(x[HEADER..], y[HEADER..]);
        let mut opener = Opener::new(key());
        assert_ne!(opener.open(SUBJECT, &x, NOW).unwrap().node, opener.open(SUBJECT, &y, NOW).unwrap().node);
    }

    #[test]
    fn keys_must_be_long_random_bytes_and_are_never_shown() {
        let hex = "8f1c2a9d4e7b6035a1c4d8e2f9b7a6c3d5e1f0a2b4c6d8e0f1a3b5c7d9e2f4a6";
        assert!(NatsKey::parse(hex).is_ok());
        assert!(NatsKey::parse(&format!("  {hex}\n")).is_ok(), "a file's newline is fine");
        assert!(NatsKey::parse("q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c=").is_ok(), "base64");
        assert!(NatsKey::parse("q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1c").is_ok(), "unpadded");
        assert!(NatsKey::parse("q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6j7k8l9z0x1-_").is_ok(), "URL-safe");
        let short = NatsKey::parse("8f1c2a9d4e7b6035a1c4d8e2f9b7a6c3").unwrap_err();
        assert!(short.contains("16 bytes") && short.contains("at least 32"), "{short}");
        assert!(NatsKey::parse(&"0".repeat(64)).unwrap_err().contains("pattern"));
        assert!(NatsKey::parse(&"0123456789abcdef".repeat(4)).unwrap_err().contains("pattern"));
        let e = NatsKey::parse("correct horse battery staple, not a key at all!").unwrap_err();
        assert!(e.contains("hexadecimal or base64") && !e.contains("horse"), "{e}");
        assert!(NatsKey::parse("").is_err());
        // The placeholder a saved `refdesk config` holds: said as such.
        for placeholder in ["<hidden>", "***"] {
            assert!(NatsKey::parse(placeholder).unwrap_err().contains("shows in place of a secret"));
        }
        assert_eq!(format!("{:?}", key()), "NatsKey(<hidden>)");
        assert_eq!(decode_base64("aGk"), Some(b"hi".to_vec()));
        assert_eq!(decode_base64("aGk="), Some(b"hi".to_vec()));
        assert_eq!(decode_base64("a"), None);
        assert_eq!(decode_hex("0aff"), Some(vec![10, 255]));
        assert_eq!(decode_hex("0af"), None);
    }

    #[test]
    fn a_key_file_is_read_and_its_errors_name_the_file_not_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nats.key");
        std::fs::write(&file, "Zm9vYmFyIGJhenF1eCBxdXV4IGNvcmdlIGdyYXVsdCBnYXJwbHk=\n").unwrap();
        assert!(NatsKey::read(&file).is_ok());
        std::fs::write(&file, "tooshort").unwrap();
        let e = NatsKey::read(&file).unwrap_err();
        assert!(e.contains("nats.key") && !e.contains("tooshort"), "{e}");
        let e = NatsKey::read(&dir.path().join("missing")).unwrap_err();
        assert!(e.contains("cannot read") && e.contains("missing"), "{e}");
    }
}
