//! The storage contract: what every backend of [`refdesk_store::Store`]
//! promises, one test per behaviour, run on SQLite, on PostgreSQL and on
//! PostgreSQL over verified TLS. A behaviour is an `async fn(&Backend)`
//! written once; [`on_every_backend!`] turns it into a test per backend,
//! so a failure names the behaviour and the backend and hides nothing else.
//!
//! One module per aggregate of the store. Each check names the rule of
//! DESIGN.md it guards where there is one. The tests only ever go through
//! the trait, except where the trait cannot show what is promised (the
//! picker positions of resolution codes): [`support::Backend`] says how it
//! looks underneath then.

/// Declares behaviours: for each `async fn behaviour(b: &Backend)` in the
/// calling module, a module of the same name holding `on_sqlite`,
/// `on_postgresql` and `on_postgresql_over_tls`, each on a store of its own
/// with the [`support::World`] in it. The PostgreSQL database of a test
/// that passed is dropped; that of one that failed is left for a look
/// (`scripts/test.sh` drops it on its next run).
macro_rules! on_every_backend {
    ($($behaviour:ident),+ $(,)?) => {$(
        mod $behaviour {
            use crate::support::{Backend, Kind};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                let b = Backend::open(Kind::Sqlite).await;
                super::$behaviour(&b).await;
                b.remove().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgresql() {
                let b = Backend::open(Kind::Postgres).await;
                super::$behaviour(&b).await;
                b.remove().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgresql_over_tls() {
                let b = Backend::open(Kind::PostgresTls).await;
                super::$behaviour(&b).await;
                b.remove().await;
            }
        }
    )+};
}

mod blocks;
mod chats;
mod im;
mod moving;
mod organisation;
mod outbox;
mod privacy;
mod questions;
mod reports;
mod staffing;
mod support;
mod tls;
