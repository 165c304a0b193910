//! Blocks: a patron blocked from a cooperative's chats, by the keys their
//! chat was started with, until the block runs out or is lifted.

use crate::support::{keyed, ok, start, Backend};
use refdesk_domain::DomainError;
use refdesk_store::{Handover, NewBlock, NewSession, PatronKeys, ScopeLevel, StoreError, TransferTo};

on_every_backend!(
    blocks_match_either_key_until_lifted_or_run_out,
    a_block_that_does_not_exist_is_none,
    a_chats_patron_is_blocked_once_at_a_time_and_so_many_times_in_all,
    the_chats_a_block_would_refuse_that_still_wait_are_found_in_its_cooperative_only
);

fn keys(browser: Option<&str>, net: Option<&str>) -> PatronKeys {
    PatronKeys { browser: browser.map(Into::into), net: net.map(Into::into), ..Default::default() }
}

/// A block matches either key until it runs out or is lifted; the
/// question's timeline records both; a chat with no key cannot be blocked.
async fn blocks_match_either_key_until_lifted_or_run_out(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let (rec, _) = s.start_session(keyed(w, "b1", Some("browser-1"), Some("net-1"), 99, 99)).await.unwrap();
    let id = rec.ctx.id;
    s.accept(id, w.ann.clone(), ok(), 2).await.unwrap();
    let new =
        NewBlock { session: id, by: w.ann.clone(), reason: "abuse".into(), expires_at: 100, now: 3, network: true };
    let block = s.block(new).await.unwrap();
    assert_eq!((block.reason.as_str(), block.network), ("abuse", true));
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
    // The browser alone: the network's other patrons are not held.
    let (rec, _) = s.start_session(keyed(w, "b4", Some("browser-4"), Some("net-4"), 99, 99)).await.unwrap();
    s.accept(rec.ctx.id, w.ann.clone(), ok(), 5).await.unwrap();
    let alone = NewBlock {
        session: rec.ctx.id,
        by: w.ann.clone(),
        reason: "x".into(),
        expires_at: 100,
        now: 5,
        network: false,
    };
    assert!(!s.block(alone).await.unwrap().network, "said to hold the browser alone");
    assert!(s.active_block(coop, keys(Some("browser-4"), Some("other")), 50).await.unwrap().is_some(), "by browser");
    assert!(s.active_block(coop, keys(Some("another"), Some("net-4")), 50).await.unwrap().is_none(), "not by network");
    // No browser id (not the library's page, which always sends one): the
    // network only if the librarian asks for it, never by the patron's leaving
    // the id out.
    let (script, _) = s.start_session(keyed(w, "b5", None, Some("net-5"), 99, 99)).await.unwrap();
    s.accept(script.ctx.id, w.ann.clone(), ok(), 5).await.unwrap();
    let asked = |network| NewBlock {
        session: script.ctx.id,
        by: w.ann.clone(),
        reason: "x".into(),
        expires_at: 100,
        now: 5,
        network,
    };
    let r = s.block(asked(false)).await;
    assert!(matches!(&r, Err(StoreError::Domain(DomainError::Invalid { field: "network", .. }))), "{r:?}");
    assert!(s.active_block(coop, keys(Some("a-widget"), Some("net-5")), 50).await.unwrap().is_none(), "no block");
    assert!(s.block(asked(true)).await.unwrap().network, "the network, asked for");
    assert!(s.active_block(coop, keys(Some("a-widget"), Some("net-5")), 50).await.unwrap().is_some(), "by network");
    let bare = start(s, w, None, "b2", 6).await;
    let new = NewBlock { session: bare, by: w.ann.clone(), reason: "x".into(), expires_at: 100, now: 7, network: true };
    let r = s.block(new).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Invalid { .. }))), "nothing to block by: {r:?}");
}

/// Each block is a row and a timeline entry, its lifting another: blocking
/// one chat's patron again and again (a stolen sign-in at the frame
/// budget's pace) grew both without bound. One block at a time per chat,
/// ten in all, each lifted before the next.
async fn a_chats_patron_is_blocked_once_at_a_time_and_so_many_times_in_all(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let (rec, _) = s.start_session(keyed(w, "b3", Some("browser-3"), Some("net-3"), 99, 99)).await.unwrap();
    let id = rec.ctx.id;
    s.accept(id, w.ann.clone(), ok(), 2).await.unwrap();
    let block = |now: i64, expires_at: i64| NewBlock {
        session: id,
        by: w.carla.clone(),
        reason: "again".into(),
        expires_at,
        now,
        network: true,
    };
    let first = s.block(block(3, 1_000)).await.unwrap();
    let again = s.block(block(4, 1_000)).await;
    assert!(matches!(again, Err(StoreError::Domain(DomainError::Conflict(_)))), "blocked already: {again:?}");
    // Run out, another may follow; lifted, too.
    s.block(block(1_001, 1_002)).await.unwrap();
    s.lift_block(first.id, w.carla.clone(), 1_003).await.unwrap();
    for n in 2..refdesk_store::BLOCKS_PER_CHAT {
        let block = s.block(block(2_000 + n * 10, 5_000)).await.unwrap();
        s.lift_block(block.id, w.carla.clone(), 2_001 + n * 10).await.unwrap();
    }
    let past = s.block(block(3_000, 5_000)).await;
    assert!(
        matches!(&past, Err(StoreError::Domain(DomainError::Limited { code: "too_many_blocks", .. }))),
        "the eleventh: {past:?}"
    );
    let q = s.session(id).await.unwrap().unwrap().ctx.question.unwrap();
    let kinds: Vec<&str> = s.timeline(q).await.unwrap().iter().map(|t| t.change.kind()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "blocked").count(), 10, "{kinds:?}");
}

async fn a_block_that_does_not_exist_is_none(b: &Backend) {
    assert!(b.store.block_by_id(999_999).await.unwrap().is_none());
}

/// The blocked patron's chats still waiting: its browser's, or its
/// network's with no browser id (never another patron's widget behind the
/// same address), at any library of its cooperative, never another
/// cooperative's, never a chat a librarian took (even handed back to a
/// queue), never the block's own.
async fn the_chats_a_block_would_refuse_that_still_wait_are_found_in_its_cooperative_only(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let chat = |token: &str, browser: Option<&str>, net: Option<&str>| keyed(w, token, browser, net, 99, 99);
    let (own, _) = s.start_session(chat("w0", Some("browser-1"), Some("net-1"))).await.unwrap();
    let (same_browser, _) = s.start_session(chat("w1", Some("browser-1"), Some("net-2"))).await.unwrap();
    let (same_net, _) = s.start_session(chat("w2", None, Some("net-1"))).await.unwrap();
    let (neighbour, _) = s.start_session(chat("w7", Some("browser-2"), Some("net-1"))).await.unwrap();
    let (elsewhere, _) = s
        .start_session(NewSession { library: w.other.placement.library, ..chat("w3", None, Some("net-1")) })
        .await
        .unwrap();
    let (stranger, _) = s.start_session(chat("w4", Some("browser-3"), Some("net-3"))).await.unwrap();
    let (taken, _) = s.start_session(chat("w5", Some("browser-1"), None)).await.unwrap();
    s.accept(taken.ctx.id, w.ann.clone(), ok(), 2).await.unwrap();
    let (handed_back, _) = s.start_session(chat("w8", Some("browser-1"), None)).await.unwrap();
    s.accept(handed_back.ctx.id, w.ann.clone(), ok(), 2).await.unwrap();
    let back = Handover {
        to: TransferTo::Queue { library: w.library.placement, coop_now: false, left: false },
        stay: false,
        line: crate::support::system("back to the queue"),
        note: None,
    };
    s.transfer(handed_back.ctx.id, w.ann.clone(), back, ok(), 2).await.unwrap();
    let far = s.create_cooperative("Far", refdesk_domain::question::default_codes()).await.unwrap();
    let far = s.create_library(s.create_institution(far, "Far U").await.unwrap(), "far", "Far").await.unwrap();
    let (far_chat, _) = s
        .start_session(NewSession { library: far.placement.library, ..chat("w6", Some("browser-1"), Some("net-1")) })
        .await
        .unwrap();

    let new = NewBlock {
        session: own.ctx.id,
        by: w.carla.clone(),
        reason: "a flood".into(),
        expires_at: 100,
        now: 3,
        network: true,
    };
    let block = s.block(new).await.unwrap();
    let found = s.waiting_under_block(block.id).await.unwrap();
    let left = [stranger.ctx.id, taken.ctx.id, far_chat.ctx.id, neighbour.ctx.id, handed_back.ctx.id];
    assert_eq!(found, vec![same_browser.ctx.id, same_net.ctx.id, elsewhere.ctx.id], "left alone: {left:?}");
    assert!(s.waiting_under_block(999_999).await.unwrap().is_empty(), "no such block");
}
