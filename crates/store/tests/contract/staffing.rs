//! Staff: sign-ins, availability and sign-off, and their scripts.

use crate::support::Backend;
use refdesk_domain::event::Availability;
use refdesk_domain::ids::StaffId;
use refdesk_domain::org::Role;
use refdesk_domain::org::Staff;
use refdesk_domain::{DomainError, Millis};
use refdesk_store::prelude::*;
use refdesk_store::{KnownNetwork, NewLogin, Result, ScriptOwner, StaffUpdate, StoreError};

on_every_backend!(
    a_sign_in_is_found_by_its_digest_until_it_expires,
    a_sign_in_checked_against_a_password_since_reset_or_of_an_account_since_disabled_records_nothing,
    a_new_sign_in_ends_the_accounts_oldest_past_the_cap,
    expired_sign_ins_are_purged_in_bounded_batches_and_live_ones_kept,
    the_networks_an_account_signs_in_from_are_kept_eight_at_most_until_forgotten,
    staff_on_duty_not_seen_lately_are_signed_off,
    a_script_is_offered_to_its_owner_until_deleted,
    a_change_decided_on_an_account_as_it_was_is_refused_once_it_changed,
    ones_own_new_password_is_refused_over_a_reset_or_a_disabling_made_meanwhile,
    a_server_key_is_made_once_and_the_same_for_every_caller,
);

/// Every node (and the same node after a restart) signs with one key: the
/// first value offered is kept, and later offers get it back.
async fn a_server_key_is_made_once_and_the_same_for_every_caller(b: &Backend) {
    let s = &*b.store;
    assert_eq!(s.server_key("devices", "first").await.unwrap(), "first");
    assert_eq!(s.server_key("devices", "second").await.unwrap(), "first", "the stored key is kept");
    assert_eq!(s.server_key("other", "third").await.unwrap(), "third", "each name has its own");
    let (a, b, c) = tokio::join!(s.server_key("raced", "a"), s.server_key("raced", "b"), s.server_key("raced", "c"));
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert!(a == b && b == c, "callers at once agree: {a} {b} {c}");
}

/// An admin's change is judged on the account as it was read (its role and
/// home library); one promoted or moved meanwhile is left as it is, so a
/// reset cannot reach an account now above the admin's role.
async fn a_change_decided_on_an_account_as_it_was_is_refused_once_it_changed(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let was = (w.ann.role, w.ann.home.library);
    let promote = StaffUpdate { role: Some(Role::CooperativeAdmin), decided_on: Some(was), ..Default::default() };
    s.update_staff(w.ann.id, promote).await.unwrap();
    let hash = s.staff_by_username("ann").await.unwrap().unwrap().password_hash;
    let late = StaffUpdate { password_hash: Some("$argon2id$new".into()), decided_on: Some(was), ..Default::default() };
    let r = s.update_staff(w.ann.id, late).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Conflict(_)))), "{r:?}");
    let after = s.staff_by_username("ann").await.unwrap().unwrap();
    assert_eq!(after.password_hash, hash, "the password is the same");
    assert_eq!(after.staff.role, Role::CooperativeAdmin);
}

/// One's own new password is decided on the password one gave: a reset or
/// a disabling made meanwhile stands.
async fn ones_own_new_password_is_refused_over_a_reset_or_a_disabling_made_meanwhile(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let was = s.staff_by_username("ann").await.unwrap().unwrap().password_hash;
    let mine = |hash: &str| StaffUpdate {
        password_hash: Some(hash.into()),
        password_was: Some(was.clone()),
        ..Default::default()
    };
    // The admin's reset lands first: hers, decided on the old one, does not.
    let reset = StaffUpdate { password_hash: Some("$argon2id$reset".into()), ..Default::default() };
    s.update_staff(w.ann.id, reset).await.unwrap();
    let r = s.update_staff(w.ann.id, mine("$argon2id$mine")).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Conflict(_)))), "{r:?}");
    assert_eq!(s.staff_by_username("ann").await.unwrap().unwrap().password_hash, "$argon2id$reset");
    // Nor on a disabled account, whatever its hash.
    let back = StaffUpdate { password_hash: Some(was.clone()), disabled: Some(true), ..Default::default() };
    s.update_staff(w.ann.id, back).await.unwrap();
    let r = s.update_staff(w.ann.id, mine("$argon2id$mine")).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Conflict(_)))), "{r:?}");
    // Enabled, with the password it was decided on: changed.
    s.update_staff(w.ann.id, StaffUpdate { disabled: Some(false), ..Default::default() }).await.unwrap();
    s.update_staff(w.ann.id, mine("$argon2id$mine")).await.unwrap();
    assert_eq!(s.staff_by_username("ann").await.unwrap().unwrap().password_hash, "$argon2id$mine");
}

async fn a_sign_in_is_found_by_its_digest_until_it_expires(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    assert!(sign_in(s, "digest", &w.ann, 100, None).await.unwrap());
    assert_eq!(s.staff_by_login("digest", 99).await.unwrap().map(|x| x.id), Some(w.ann.id));
    assert!(s.staff_by_login("digest", 100).await.unwrap().is_none(), "expired");
    assert!(s.staff_by_login("other", 99).await.unwrap().is_none(), "another digest");
    assert!(sign_in(s, "second", &w.ann, 100, None).await.unwrap());
    assert_eq!(s.delete_login("digest", 50).await.unwrap(), None, "another sign-in of hers is left");
    assert!(s.staff_by_login("digest", 99).await.unwrap().is_none(), "signed out");
    assert!(s.staff_by_login("second", 99).await.unwrap().is_some(), "the other one stays");
    assert_eq!(s.delete_login("second", 50).await.unwrap(), Some(w.ann.id), "her last");
    assert_eq!(s.delete_login("second", 50).await.unwrap(), None, "gone already: no one's");
    // Her two last sign-outs at once: exactly one of them was the last.
    for _ in 0..5 {
        assert!(sign_in(s, "one", &w.ann, 100, None).await.unwrap());
        assert!(sign_in(s, "two", &w.ann, 100, None).await.unwrap());
        let (a, b) = tokio::join!(s.delete_login("one", 50), s.delete_login("two", 50));
        let lasts = [a.unwrap(), b.unwrap()].into_iter().flatten().count();
        assert_eq!(lasts, 1, "one last sign-out, not none nor two");
    }
    let ghost = NewLogin {
        token_hash: "ghost".into(),
        staff: StaffId(999_999),
        expires: 100,
        password_hash: "x".into(),
        from: None,
        keep: 10,
    };
    let r = s.create_login(ghost).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::NotFound(_)))), "staff who do not exist: {r:?}");
}

/// A sign-in of `who`, checked against the password hash the store holds now.
async fn sign_in(s: &dyn Store, token: &str, who: &Staff, expires: Millis, from: Option<KnownNetwork>) -> Result<bool> {
    let password_hash = s.staff_by_username(&who.username).await.unwrap().unwrap().password_hash;
    let login = NewLogin { token_hash: token.into(), staff: who.id, expires, password_hash, from, keep: 1_000 };
    Ok(s.create_login(login).await?.is_some())
}

/// An account holds at most `keep` sign-ins: a new one ends the oldest past
/// it (their digests are returned, for their sockets to close), under the
/// account's lock; other accounts' are left alone.
async fn a_new_sign_in_ends_the_accounts_oldest_past_the_cap(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let password_hash = s.staff_by_username("ann").await.unwrap().unwrap().password_hash;
    let login = |token: &str, expires: Millis| NewLogin {
        token_hash: token.into(),
        staff: w.ann.id,
        expires,
        password_hash: password_hash.clone(),
        from: None,
        keep: 3,
    };
    assert!(sign_in(s, "carla's", &w.carla, 50, None).await.unwrap());
    for (i, expires) in [(0, 100), (1, 101), (2, 102)] {
        assert_eq!(s.create_login(login(&format!("ann{i}"), expires)).await.unwrap(), Some(vec![]), "within the cap");
    }
    assert_eq!(s.create_login(login("ann3", 103)).await.unwrap(), Some(vec!["ann0".to_owned()]));
    assert_eq!(s.create_login(login("ann4", 104)).await.unwrap(), Some(vec!["ann1".to_owned()]));
    for (token, works) in [("ann0", false), ("ann1", false), ("ann2", true), ("ann3", true), ("ann4", true)] {
        assert_eq!(s.staff_by_login(token, 0).await.unwrap().is_some(), works, "{token}");
    }
    assert!(s.staff_by_login("carla's", 0).await.unwrap().is_some(), "another account's sign-in stays");
    // A lower cap ends as many as it takes, the oldest first.
    let mut ended = s.create_login(NewLogin { keep: 1, ..login("ann5", 105) }).await.unwrap().unwrap();
    ended.sort();
    assert_eq!(ended, ["ann2", "ann3", "ann4"]);
    assert!(s.staff_by_login("ann5", 0).await.unwrap().is_some());
    // The new sign-in is never the one ended, even when it expires first
    // (`login_hours` made shorter, another node's clock).
    let ended = s.create_login(NewLogin { keep: 1, ..login("ann6", 90) }).await.unwrap().unwrap();
    assert_eq!(ended, ["ann5"]);
    assert!(s.staff_by_login("ann6", 0).await.unwrap().is_some(), "the new one works");
}

async fn a_sign_in_checked_against_a_password_since_reset_or_of_an_account_since_disabled_records_nothing(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let checked = s.staff_by_username("ann").await.unwrap().unwrap().password_hash;
    let from = Some(KnownNetwork { network: "192.0.2.1".into(), last_at: 10 });
    let login = |token: &str| NewLogin {
        token_hash: token.into(),
        staff: w.ann.id,
        expires: 100,
        password_hash: checked.clone(),
        from: from.clone(),
        keep: 10,
    };
    // While her password was being checked, it was reset.
    let reset = StaffUpdate {
        password_was: None,
        role: None,
        disabled: None,
        password_hash: Some("$argon2id$new".into()),
        decided_on: None,
        display_name: None,
    };
    s.update_staff(w.ann.id, reset).await.unwrap();
    assert!(s.create_login(login("late")).await.unwrap().is_none(), "the old password signs no one in");
    assert!(s.staff_by_login("late", 0).await.unwrap().is_none());
    assert_eq!(s.known_networks("ann", 0).await.unwrap(), Some(vec![]), "nor is its network remembered");
    // Or she was disabled.
    let checked = s.staff_by_username("carla").await.unwrap().unwrap().password_hash;
    s.update_staff(
        w.carla.id,
        StaffUpdate {
            password_was: None,
            role: None,
            disabled: Some(true),
            password_hash: None,
            decided_on: None,
            display_name: None,
        },
    )
    .await
    .unwrap();
    let late =
        NewLogin { token_hash: "late".into(), staff: w.carla.id, expires: 100, password_hash: checked, from, keep: 10 };
    assert!(s.create_login(late).await.unwrap().is_none(), "a disabled account signs in no more");
    assert_eq!(s.known_networks("carla", 0).await.unwrap(), Some(vec![]));
}

async fn expired_sign_ins_are_purged_in_bounded_batches_and_live_ones_kept(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    for i in 0..5 {
        assert!(sign_in(s, &format!("old{i}"), &w.ann, 100 + i, None).await.unwrap());
    }
    assert!(sign_in(s, "at-the-edge", &w.ann, 200, None).await.unwrap());
    assert!(sign_in(s, "live", &w.carla, 201, None).await.unwrap());
    // At 200: the five old ones and the one that expires at 200 (no longer
    // usable at 200) go, two at a time; the live one stays.
    assert!(s.staff_by_login("at-the-edge", 200).await.unwrap().is_none(), "expired at 200");
    let mut batches = Vec::new();
    loop {
        let n = s.purge_expired_logins(200, 2).await.unwrap();
        batches.push(n);
        if n < 2 {
            break;
        }
    }
    assert_eq!(batches, [2, 2, 2, 0]);
    assert_eq!(s.staff_by_login("live", 200).await.unwrap().map(|x| x.id), Some(w.carla.id), "a live sign-in is kept");
    assert_eq!(s.purge_expired_logins(200, 100).await.unwrap(), 0, "nothing left to purge");
    assert_eq!(s.purge_expired_logins(201, 100).await.unwrap(), 1, "it goes once it expires");
    assert!(s.staff_by_login("live", 200).await.unwrap().is_none());
}

async fn the_networks_an_account_signs_in_from_are_kept_eight_at_most_until_forgotten(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let from = |i: i64| Some(KnownNetwork { network: format!("192.0.2.{i}"), last_at: 1_000 + i });
    let networks = |since| async move {
        let known = s.known_networks("ann", since).await.unwrap().expect("ann has an account");
        known.into_iter().map(|n| (n.network, n.last_at)).collect::<Vec<_>>()
    };
    assert_eq!(networks(0).await, [], "none yet");
    assert_eq!(s.known_networks("nobody", 0).await.unwrap(), None, "no such account");
    for i in 1..=9 {
        assert!(sign_in(s, &format!("t{i}"), &w.ann, 10_000, from(i)).await.unwrap());
    }
    let again = Some(KnownNetwork { network: "192.0.2.3".into(), last_at: 2_000 });
    assert!(sign_in(s, "again", &w.ann, 10_000, again).await.unwrap());
    let older = Some(KnownNetwork { network: "192.0.2.3".into(), last_at: 1_500 });
    assert!(sign_in(s, "skewed", &w.ann, 10_000, older).await.unwrap(), "another node's clock, behind");
    assert!(sign_in(s, "carla's", &w.carla, 10_000, from(50)).await.unwrap());
    let kept = networks(0).await;
    assert_eq!(kept.len(), 8, "eight at most: {kept:?}");
    assert_eq!(kept[0], ("192.0.2.3".to_owned(), 2_000), "signed in from again: the newest");
    assert!(kept.iter().all(|(n, _)| n != "192.0.2.1"), "the oldest went: {kept:?}");
    assert_eq!(networks(1_005).await.len(), 5, "only those after `since`");
    // The background round forgets the old ones; a reset password all.
    assert_eq!(s.forget_known_networks(1_005).await.unwrap(), 3);
    assert_eq!(networks(0).await.len(), 5);
    s.update_staff(
        w.carla.id,
        StaffUpdate {
            password_was: None,
            role: Some(Role::Librarian),
            disabled: None,
            password_hash: None,
            decided_on: None,
            display_name: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(s.known_networks("carla", 0).await.unwrap().unwrap().len(), 1, "a new role changes nothing here");
    let reset = StaffUpdate {
        password_was: None,
        role: None,
        disabled: None,
        password_hash: Some("$argon2id$new".into()),
        decided_on: None,
        display_name: None,
    };
    s.update_staff(w.ann.id, reset).await.unwrap();
    assert_eq!(networks(0).await, [], "a reset password forgets them");
    s.update_staff(
        w.carla.id,
        StaffUpdate {
            password_was: None,
            role: None,
            disabled: Some(true),
            password_hash: None,
            decided_on: None,
            display_name: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(s.known_networks("carla", 0).await.unwrap(), Some(vec![]), "so does disabling the account");
}

async fn staff_on_duty_not_seen_lately_are_signed_off(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    assert!(s.set_availability(w.ann.id, Availability::OnDuty, 100).await.unwrap(), "a change");
    assert!(!s.set_availability(w.ann.id, Availability::OnDuty, 100).await.unwrap(), "the same again");
    let said = b.sink.availabilities(w.ann.id);
    assert_eq!(said, [Availability::OnDuty], "a change is announced once; the same again not at all");
    s.touch(vec![w.ann.id], 200).await.unwrap();
    assert!(s.sign_off_stale(150).await.unwrap().is_empty(), "seen since");
    let off: Vec<StaffId> = s.sign_off_stale(201).await.unwrap().iter().map(|x| x.id).collect();
    assert_eq!(off, [w.ann.id]);
    assert!(s.sign_off_stale(201).await.unwrap().is_empty(), "signed off once");
}

async fn a_script_is_offered_to_its_owner_until_deleted(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let script = s.create_script(ScriptOwner::Personal(w.ann.id), "Hi".into(), "Hello!".into(), 400).await.unwrap();
    assert_eq!((script.title.as_str(), script.body.as_str()), ("Hi", "Hello!"));
    assert_eq!(s.scripts_for(&w.ann, w.ann.home.library).await.unwrap(), vec![script.clone()]);
    assert!(
        s.scripts_for(&w.carla, w.carla.home.library).await.unwrap().is_empty(),
        "a personal script is its owner's"
    );
    assert_eq!(s.script(script.id).await.unwrap(), Some(script.clone()));
    s.delete_script(script.id).await.unwrap();
    assert!(s.scripts_for(&w.ann, w.ann.home.library).await.unwrap().is_empty());
    assert!(s.script(script.id).await.unwrap().is_none());
}
