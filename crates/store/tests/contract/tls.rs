//! Reaching PostgreSQL over TLS: every behaviour runs over verified TLS
//! (`on_postgresql_over_tls`); these say what an operator sees when the
//! connection cannot be made safely.

use crate::support::{postgres_tls_with, Recorder};
use refdesk_store::postgres::{PgOptions, PgStore};
use std::sync::Arc;

#[tokio::test]
async fn a_plain_connection_to_a_postgresql_that_requires_tls_is_refused_with_a_clear_error() {
    let plain = postgres_tls_with("sslmode=disable").replacen("postgres@", "postgres:hunter2@", 1);
    let refused = PgStore::open(&plain, PgOptions::default(), Arc::new(Recorder::default())).await;
    let e = refused.err().expect("a plain connection is refused").to_string();
    assert!(e.contains("localhost:5433") && e.contains("sslmode disable"), "names the server and the mode: {e}");
    assert!(e.contains("accepts only TLS") && e.contains("sslmode=verify-full"), "says what to change: {e}");
    assert!(!e.contains("hunter2"), "never the password: {e}");
}

#[tokio::test]
async fn a_server_certificate_from_an_unknown_ca_is_refused_with_a_clear_error() {
    // No sslrootcert: the test CA is not among the public ones compiled in.
    let unverified = postgres_tls_with("sslmode=verify-full");
    let refused = PgStore::open(&unverified, PgOptions::default(), Arc::new(Recorder::default())).await;
    let e = refused.err().expect("an untrusted certificate is refused").to_string();
    assert!(e.contains("localhost:5433") && e.contains("TLS"), "{e}");
    assert!(e.contains("sslrootcert"), "says what to check: {e}");
}
