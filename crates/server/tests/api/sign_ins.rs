//! Expired staff sign-ins are deleted by the background round: they can
//! never be used again, and kept they would pile up for ever.

use crate::helpers::spawn_app_with_manual_clock;
use refdesk_app::{auth, demo};

#[tokio::test]
async fn expired_sign_ins_are_purged_by_the_background_round_and_live_ones_kept() {
    let app = spawn_app_with_manual_clock().await;
    let (old, _) = app.state.app.login("ann", demo::PASSWORD, true).await.unwrap();
    let store = app.state.app.store().clone();
    // At time 0 every sign-in ever made is "live": the row's presence.
    let kept = |token: String| {
        let store = store.clone();
        async move { store.staff_by_login(&auth::digest(&token), 0).await.unwrap().is_some() }
    };
    assert!(kept(old.clone()).await);

    // The sign-in expires (login_hours, 12 h by default); a new one is made
    // an hour before the round that purges.
    let hours = app.state.app.limits().login_hours as i64;
    app.clock().advance(hours * 3_600_000 - 3_600_000);
    let (fresh, _) = app.state.app.login("ann", demo::PASSWORD, true).await.unwrap();
    app.clock().advance(3_600_000 + refdesk_app::staff::PURGE_SIGN_INS_EVERY);

    app.eventually("the expired sign-in is deleted", || {
        let gone = kept(old.clone());
        async move { !gone.await }
    })
    .await;
    assert!(kept(fresh.clone()).await, "the live one is kept");
    assert!(app.state.app.staff_for_token(&fresh).await.is_ok(), "and still signs in");
}
