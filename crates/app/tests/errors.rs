//! A failure of the store is never reported as the caller's mistake, and it
//! keeps what the store said as its source. On a real SQLite file with the
//! demo cooperative.

use refdesk_app::{bus::Bus, demo, App, AppError, Clock, Limits, ListFilter};
use refdesk_domain::DomainError;
use refdesk_store::prelude::*;
use refdesk_store::sqlite::SqliteStore;
use refdesk_store::StoreError;
use std::error::Error;
use std::sync::Arc;

#[tokio::test]
async fn a_library_that_does_not_exist_is_bad_input_but_a_closed_store_is_an_internal_failure() {
    let dir = tempfile::tempdir().unwrap();
    let bus = Bus::new();
    let store = Arc::new(SqliteStore::open(&dir.path().join("t.sqlite3"), bus.clone()).unwrap());
    let app = App::new(store.clone(), bus, Limits::default(), Clock::system());
    demo::load(&app).await.unwrap();
    let (_, carla) = app.login("carla", demo::PASSWORD, true).await.unwrap();
    let filter = |slug: &str| ListFilter { library: Some(slug.into()), ..ListFilter::default() };

    let missing = app.question_list(&carla, filter("no-such-library")).await.unwrap_err();
    assert!(matches!(missing, AppError::Domain(DomainError::Invalid { .. })), "{missing:?}");
    let slug = store.libraries().await.unwrap()[0].slug.clone();
    assert!(app.question_list(&carla, filter(&slug)).await.is_ok());

    // The database goes away: the same request is now our failure, not a 422.
    Store::close(&*store).await;
    let failed = app.question_list(&carla, filter(&slug)).await.unwrap_err();
    let AppError::Internal(failure) = &failed else { panic!("a closed store reported as {failed:?}") };
    let source = failure.source().expect("the store's error is kept as the source");
    assert!(matches!(source.downcast_ref::<StoreError>(), Some(StoreError::Closed)), "{source:?}");
}
