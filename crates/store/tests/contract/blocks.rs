//! Blocks: a patron blocked from a cooperative's chats, by the keys their
//! chat was started with, until the block runs out or is lifted.

use crate::support::{keyed, ok, start, Backend};
use refdesk_domain::DomainError;
use refdesk_store::{NewBlock, PatronKeys, ScopeLevel, StoreError};

on_every_backend!(blocks_match_either_key_until_lifted_or_run_out, a_block_that_does_not_exist_is_none);

fn keys(browser: Option<&str>, net: Option<&str>) -> PatronKeys {
    PatronKeys { browser: browser.map(Into::into), net: net.map(Into::into) }
}

/// A block matches either key until it runs out or is lifted; the
/// question's timeline records both; a chat with no key cannot be blocked.
async fn blocks_match_either_key_until_lifted_or_run_out(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let (rec, _) = s.start_session(keyed(w, "b1", Some("browser-1"), Some("net-1"), 99, 99)).await.unwrap();
    let id = rec.ctx.id;
    s.accept(id, w.ann.clone(), ok(), 2).await.unwrap();
    let new = NewBlock { session: id, by: w.ann.clone(), reason: "abuse".into(), expires_at: 100, now: 3 };
    let block = s.block(new).await.unwrap();
    assert_eq!(block.reason, "abuse");
    assert_eq!(block.created_by_name, "ANN");
    assert_eq!(s.block_by_id(block.id).await.unwrap(), Some(block.clone()));
    let coop = w.library.placement.cooperative;
    assert!(s.active_block(coop, keys(Some("browser-1"), Some("other")), 50).await.unwrap().is_some(), "by browser");
    assert!(s.active_block(coop, keys(None, Some("net-1")), 50).await.unwrap().is_some(), "by network");
    assert!(s.active_block(coop, keys(Some("x"), Some("y")), 50).await.unwrap().is_none(), "others");
    assert!(s.active_block(coop, keys(Some("browser-1"), None), 100).await.unwrap().is_none(), "ran out");
    let listed = s.blocks(ScopeLevel::Library(w.library.placement.library), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(s.blocks(ScopeLevel::Library(w.other.placement.library), 10).await.unwrap().is_empty(), "scope");
    let lifted = s.lift_block(block.id, w.carla.clone(), 4).await.unwrap();
    assert_eq!(lifted.lifted_at, Some(4));
    assert_eq!(lifted.lifted_by_name.as_deref(), Some("CARLA"));
    assert!(s.active_block(coop, keys(Some("browser-1"), None), 50).await.unwrap().is_none(), "lifted");
    s.lift_block(block.id, w.carla.clone(), 5).await.unwrap();
    let q = s.session(id).await.unwrap().unwrap().ctx.question.unwrap();
    let kinds: Vec<&str> = s.timeline(q).await.unwrap().iter().map(|t| t.change.kind()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "blocked").count(), 1, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "unblocked").count(), 1, "lifting twice records once: {kinds:?}");
    let bare = start(s, w, None, "b2", 6).await;
    let new = NewBlock { session: bare, by: w.ann.clone(), reason: "x".into(), expires_at: 100, now: 7 };
    let r = s.block(new).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Invalid { .. }))), "nothing to block by: {r:?}");
}

async fn a_block_that_does_not_exist_is_none(b: &Backend) {
    assert!(b.store.block_by_id(999_999).await.unwrap().is_none());
}
