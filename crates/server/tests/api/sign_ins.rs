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

#[tokio::test]
async fn a_staff_socket_whose_sign_in_has_run_out_is_served_no_more_reads_before_its_next_ping() {
    let app = spawn_app_with_manual_clock().await;
    let patron = app.start_chat("riverside-main", "Is the archive open?").await;
    let ann = app.staff("ann").await;
    assert_eq!(ann.accept(patron.session).await.0, 200);
    let carla = app.staff("carla").await;
    let mut socket = carla.socket().await;
    socket.resume(Some(patron.session), 0).await;

    // Her sign-in runs out (nothing is published for that): her next
    // resume, queue or monitor is not served; she is told, and let go.
    let hours = app.state.app.limits().login_hours as i64;
    app.clock().advance(hours * 3_600_000 + 1);
    let replayed = socket.events().len();
    socket.send(serde_json::json!({"type": "resume", "session": patron.session, "after": 0})).await;
    let answer = socket.until(|f| f["type"] == "error" || f["type"] == "synced").await.pop().unwrap();
    assert_eq!(
        (answer["type"].as_str(), answer["code"].as_str()),
        (Some("error"), Some("unauthenticated")),
        "{answer}"
    );
    assert!(socket.closed_within(std::time::Duration::from_secs(5)).await, "the socket is let go");
    assert_eq!(socket.events().len(), replayed, "nothing replayed: {:?}", socket.frames);
}
