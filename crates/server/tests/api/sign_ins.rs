//! Expired staff sign-ins are deleted by the background round: they can
//! never be used again, and kept they would pile up for ever. So are the
//! networks an account has not signed in from for 30 days.

use crate::helpers::spawn_app_with_manual_clock;
use refdesk_app::{auth, demo};
use refdesk_domain::report::DAY;

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
async fn networks_not_signed_in_from_for_30_days_are_forgotten_by_the_background_round() {
    let app = spawn_app_with_manual_clock().await;
    let (desk, home): (std::net::IpAddr, _) = ("127.0.0.7".parse().unwrap(), "2001:db8:1:2::9".parse().unwrap());
    app.state.app.login_from("ann", demo::PASSWORD, true, Some(desk)).await.unwrap();
    app.clock().advance(29 * DAY);
    app.state.app.login_from("ann", demo::PASSWORD, true, Some(home)).await.unwrap();
    let store = app.state.app.store().clone();
    let networks = || {
        let store = store.clone();
        async move {
            let known = store.known_networks("ann", 0).await.unwrap().unwrap();
            known.into_iter().map(|n| n.network).collect::<Vec<_>>()
        }
    };
    // Digests, not addresses; of an IPv6 address its /64.
    let (home_64, desk) =
        (auth::staff_network_digest("2001:db8:1:2:ffff::1".parse().unwrap()), auth::staff_network_digest(desk));
    assert_eq!(networks().await, [home_64.clone(), desk], "newest first");
    app.clock().advance(DAY + refdesk_app::staff::PURGE_SIGN_INS_EVERY);
    app.eventually("the desk, 30 days on, is forgotten", || {
        let (n, home_64) = (networks(), home_64.clone());
        async move { n.await == [home_64] }
    })
    .await;
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

#[tokio::test]
async fn any_staff_member_changes_their_own_password_with_the_current_one_and_signs_in_again() {
    let app = crate::helpers::spawn_app_with(|c| c.limits.failed_logins_per_account_per_hour = 3).await;
    let ann = app.staff("ann").await; // a librarian: she manages nobody
    let elsewhere = app.staff("ann").await; // her sign-in at another computer
    let change = |current: &str, password: &str| serde_json::json!({"current": current, "password": password});
    let login = |pw: &str| {
        let body = serde_json::json!({"username": "ann", "password": pw});
        let req = reqwest::Client::new().post(app.url("/api/login")).json(&body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    // A new password her role may not have: refused, no attempt spent.
    for _ in 0..4 {
        let (status, body) = ann.post("/api/me/password", change(demo::PASSWORD, "password1")).await;
        assert_eq!((status, body["error"]["field"].as_str()), (422, Some("password")), "{body}");
    }
    // The wrong current password: refused, and counted as a sign-in's.
    let (status, body) = ann.post("/api/me/password", change("not-mine-at-all", "river otter 1890")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(ann.get("/api/me").await.0, 200, "nothing changed");
    // Right: every sign-in ends (this one too, its cookie cleared); the new
    // password signs in, the old one no more.
    let res = ann
        .http
        .post(format!("{}/api/me/password", ann.base()))
        .json(&change(demo::PASSWORD, "river otter 1890"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    assert_eq!(ann.get("/api/me").await.0, 401, "signed out");
    assert_eq!(elsewhere.get("/api/me").await.0, 401, "and everywhere else");
    assert_eq!(login(demo::PASSWORD).await, 401);
    assert_eq!(login("river otter 1890").await, 200);
    // A stolen cookie cannot guess the current password at leisure: the
    // account's attempts (3 here) run out.
    let ann = app.staff_with_password("ann", "river otter 1890").await;
    let mut statuses = Vec::new();
    for guess in ["guess-one-1", "guess-two-2", "guess-three-3", "guess-four-4"] {
        statuses.push(ann.post("/api/me/password", change(guess, "another river 1891")).await.0);
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
}
