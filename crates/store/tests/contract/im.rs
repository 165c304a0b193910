//! Staff IM: direct messages between colleagues, and what is unread.

use crate::support::Backend;
use refdesk_domain::ids::StaffId;
use refdesk_domain::DomainError;
use refdesk_store::StoreError;

on_every_backend!(
    an_im_is_stored_once_per_client_id_and_reading_clears_the_unread_count,
    an_im_with_a_colleague_who_does_not_exist_is_not_found,
    a_senders_ims_are_capped_per_day_whoever_they_go_to,
    the_conversations_are_listed_last_written_first_and_count_the_recent_unread,
);

/// The conversation list reads a row per colleague: the last written
/// first, its last number, and the unread messages among its last 1,000.
async fn the_conversations_are_listed_last_written_first_and_count_the_recent_unread(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    for i in 0..1_005 {
        s.im_send(w.ann.clone(), w.dev.id, format!("m{i}"), None, 5_000, 10 + i).await.unwrap();
    }
    s.im_send(w.dev.clone(), w.ann.id, "yes?".into(), None, 5_000, 2_000).await.unwrap();
    s.im_send(w.carla.clone(), w.dev.id, "hello".into(), None, 5_000, 3_000).await.unwrap();
    let listed: Vec<_> =
        s.im_conversations(w.dev.id).await.unwrap().iter().map(|c| (c.peer, c.last_seq, c.unread)).collect();
    assert_eq!(
        listed,
        [(w.carla.id, 1, 1), (w.ann.id, 1_006, 999)],
        "ann's unread counted in the last 1,000 (one is his)"
    );
    s.im_read(w.dev.id, w.ann.id, 1_000).await.unwrap();
    assert_eq!(s.im_conversations(w.dev.id).await.unwrap()[1].unread, 5);
    let ann: Vec<_> =
        s.im_conversations(w.ann.id).await.unwrap().iter().map(|c| (c.peer, c.last_seq, c.unread)).collect();
    assert_eq!(ann, [(w.dev.id, 1_006, 1)]);
    // Read past the last message: up to it, so what ann writes next is unread.
    assert_eq!(s.im_read(w.dev.id, w.ann.id, u64::MAX).await.unwrap(), 1_006);
    s.im_send(w.ann.clone(), w.dev.id, "one more".into(), None, 5_000, 4_000).await.unwrap();
    assert_eq!(s.im_conversations(w.dev.id).await.unwrap()[0].unread, 1, "read up to the last only");
    assert_eq!(s.im_read(w.carla.id, w.ann.id, 7).await.unwrap(), 0, "no conversation: nothing to read");
    // The answer is how far it is marked, not what was asked.
    assert_eq!(s.im_read(w.dev.id, w.ann.id, 3).await.unwrap(), 1_006, "already read further");
}

/// The IMs a staff member sends in 24 hours are capped inside the write,
/// over all their conversations; a re-sent one is not counted again, the
/// colleague may still answer, and a day later the sender may write again.
async fn a_senders_ims_are_capped_per_day_whoever_they_go_to(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let day = 86_400_000;
    s.im_send(w.ann.clone(), w.dev.id, "one".into(), Some("c1".into()), 2, 10).await.unwrap();
    s.im_send(w.ann.clone(), w.carla.id, "two".into(), None, 2, 20).await.unwrap();
    let (_, dup) = s.im_send(w.ann.clone(), w.dev.id, "one".into(), Some("c1".into()), 2, 30).await.unwrap();
    assert!(dup, "a re-send is answered, not refused");
    let r = s.im_send(w.ann.clone(), w.dev.id, "three".into(), None, 2, 40).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Limited { code: "too_many_ims", .. }))), "{r:?}");
    assert_eq!(s.im_after(w.ann.id, w.dev.id, 0, 10).await.unwrap().len(), 1, "nothing written");
    s.im_send(w.dev.clone(), w.ann.id, "reply".into(), None, 2, 50).await.expect("the colleague has their own");
    s.im_send(w.ann.clone(), w.dev.id, "three".into(), None, 2, day + 11).await.expect("a day after the first");
}

async fn an_im_is_stored_once_per_client_id_and_reading_clears_the_unread_count(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let (m, dup) = s.im_send(w.ann.clone(), w.dev.id, "hello".into(), Some("i1".into()), 99, 300).await.unwrap();
    assert!(!dup);
    let (again, dup) = s.im_send(w.ann.clone(), w.dev.id, "hello".into(), Some("i1".into()), 99, 301).await.unwrap();
    assert!(dup, "I4 for IM");
    assert_eq!(again, m);
    assert_eq!(s.im_after(w.dev.id, w.ann.id, 0, 10).await.unwrap(), vec![m.clone()]);
    assert_eq!(s.im_after(w.ann.id, w.dev.id, 0, 10).await.unwrap(), vec![m], "one conversation, either way");
    let listed = s.im_conversations(w.dev.id).await.unwrap();
    assert_eq!((listed.len(), listed[0].peer, listed[0].unread), (1, w.ann.id, 1));
    s.im_read(w.dev.id, w.ann.id, 1).await.unwrap();
    assert_eq!(s.im_conversations(w.dev.id).await.unwrap()[0].unread, 0);
}

/// Issue 14's drift (`POST /api/im/9999/read` was a 500 on SQLite): a
/// colleague who does not exist is NotFound on every backend, and nothing
/// is written.
async fn an_im_with_a_colleague_who_does_not_exist_is_not_found(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let ghost = StaffId(999_999);
    let r = s.im_read(w.ann.id, ghost, 1).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::NotFound(_)))), "reading with a ghost: {r:?}");
    let r = s.im_send(w.ann.clone(), ghost, "anyone?".into(), Some("i1".into()), 99, 1).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::NotFound(_)))), "writing to a ghost: {r:?}");
    let r = s.im_send(w.ann.clone(), ghost, "anyone?".into(), None, 99, 2).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::NotFound(_)))), "without a client id: {r:?}");
    assert!(s.im_conversations(w.ann.id).await.unwrap().is_empty(), "nothing was written");
    assert!(s.im_after(w.ann.id, ghost, 0, 10).await.unwrap().is_empty());

    // The refusals leave the store as it was: the next message is the first.
    let (m, dup) = s.im_send(w.ann.clone(), w.dev.id, "hello".into(), Some("i1".into()), 99, 3).await.unwrap();
    assert_eq!((m.seq, dup), (1, false));
}
