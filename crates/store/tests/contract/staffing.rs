//! Staff: sign-ins, availability and sign-off, and their scripts.

use crate::support::Backend;
use refdesk_domain::event::Availability;
use refdesk_domain::ids::StaffId;
use refdesk_domain::DomainError;
use refdesk_store::{ScriptOwner, StoreError};

on_every_backend!(
    a_sign_in_is_found_by_its_digest_until_it_expires,
    staff_on_duty_not_seen_lately_are_signed_off,
    a_script_is_offered_to_its_owner_until_deleted,
);

async fn a_sign_in_is_found_by_its_digest_until_it_expires(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    s.create_login("digest", w.ann.id, 100).await.unwrap();
    assert_eq!(s.staff_by_login("digest", 99).await.unwrap().map(|x| x.id), Some(w.ann.id));
    assert!(s.staff_by_login("digest", 100).await.unwrap().is_none(), "expired");
    assert!(s.staff_by_login("other", 99).await.unwrap().is_none(), "another digest");
    s.delete_login("digest").await.unwrap();
    assert!(s.staff_by_login("digest", 99).await.unwrap().is_none(), "signed out");
    let r = s.create_login("ghost", StaffId(999_999), 100).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::NotFound(_)))), "staff who do not exist: {r:?}");
}

async fn staff_on_duty_not_seen_lately_are_signed_off(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    s.set_availability(w.ann.id, Availability::OnDuty, 100).await.unwrap();
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
    assert_eq!(s.scripts_for(&w.ann).await.unwrap(), vec![script.clone()]);
    assert!(s.scripts_for(&w.carla).await.unwrap().is_empty(), "a personal script is its owner's");
    assert_eq!(s.script(script.id).await.unwrap(), Some(script.clone()));
    s.delete_script(script.id).await.unwrap();
    assert!(s.scripts_for(&w.ann).await.unwrap().is_empty());
    assert!(s.script(script.id).await.unwrap().is_none());
}
