//! The organisation: cooperatives, institutions, libraries, their policy
//! pages and resolution codes, and the store's own life (empty, closed).

use crate::support::{start, Backend, Empty};
use refdesk_domain::ids::{CooperativeId, InstitutionId, LibraryId, StaffId};
use refdesk_domain::org::Role;
use refdesk_domain::question::{default_codes, ResolutionCode};
use refdesk_domain::DomainError;
use refdesk_store::MAX_STAFF_PER_LIBRARY;
use refdesk_store::{AdminEntry, Named, NewStaff, PolicyPage, ScopeLevel, ScriptOwner, StaffUpdate, StoreError};
use refdesk_store::{MAX_CODES_PER_COOPERATIVE, MAX_INSTITUTIONS_PER_COOPERATIVE, MAX_SCRIPTS_PER_OWNER};
use std::collections::BTreeSet;

on_every_backend!(
    a_store_is_empty_until_its_first_cooperative,
    a_library_slug_is_taken_once,
    cooperatives_institutions_and_libraries_are_renamed_and_what_is_not_there_is_not_found,
    creating_under_a_parent_that_does_not_exist_is_not_found,
    a_library_policy_page_is_replaced_and_read_back,
    a_librarys_embedding_sites_and_reply_address_are_read_with_it_and_kept_apart_from_its_other_settings,
    the_admin_log_is_read_by_scope_newest_first_and_keeps_so_many_per_cooperative,
    replacing_a_code_keeps_its_place_in_the_picker,
    codes_added_at_once_each_get_a_place_of_their_own_after_the_others,
    what_admins_create_is_bounded_per_cooperative_and_per_owner,
    a_script_is_rewritten_in_place_and_one_not_there_is_not_found,
    colleagues_of_a_cooperative_are_named_apart,
    a_closed_store_refuses_reads_and_writes_and_closing_again_does_nothing,
);

fn too_many<T>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Domain(DomainError::Limited { code: "too_many", .. })))
}

fn conflict<T>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Domain(DomainError::Conflict(_))))
}

fn not_found<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Domain(DomainError::NotFound(_))))
}

/// A new code for the cooperative's picker.
fn new_code(n: usize) -> ResolutionCode {
    ResolutionCode { key: format!("new_{n:02}"), label: format!("New {n}"), ..default_codes()[1].clone() }
}

/// DESIGN §8: what admins create is bounded too (each list is read whole on
/// hot paths). Past a bound, `too_many`; what is already there can still
/// be changed.
async fn what_admins_create_is_bounded_per_cooperative_and_per_owner(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let coop = w.library.placement.cooperative;
    let have = s.codes(coop).await.unwrap().len();
    for n in have..MAX_CODES_PER_COOPERATIVE as usize {
        s.put_code(coop, new_code(n)).await.unwrap();
    }
    let r = s.put_code(coop, new_code(999)).await;
    assert!(too_many(&r), "a code past the bound: {r:?}");
    let mut first = s.codes(coop).await.unwrap()[0].clone();
    first.label = "Renamed".into();
    s.put_code(coop, first).await.unwrap();
    assert_eq!(s.codes(coop).await.unwrap().len() as i64, MAX_CODES_PER_COOPERATIVE);

    let script = |owner| s.create_script(owner, "Hi".into(), "Hello!".into(), 1);
    for _ in 0..MAX_SCRIPTS_PER_OWNER {
        script(ScriptOwner::Personal(w.ann.id)).await.unwrap();
    }
    let r = script(ScriptOwner::Personal(w.ann.id)).await;
    assert!(too_many(&r), "a script past the bound: {r:?}");
    script(ScriptOwner::Personal(w.carla.id)).await.expect("another owner has scripts of their own");

    let have = s.institutions().await.unwrap().iter().filter(|i| i.cooperative == coop).count();
    for n in have..MAX_INSTITUTIONS_PER_COOPERATIVE as usize {
        s.create_institution(coop, &format!("Institution {n}")).await.unwrap();
    }
    let r = s.create_institution(coop, "One more").await;
    assert!(too_many(&r), "an institution past the bound: {r:?}");

    // A library holds its share of the cooperative's staff accounts.
    let account = |library: LibraryId, n: usize| NewStaff {
        library,
        username: format!("staff-{}-{n}", library.0),
        display_name: format!("Staff {}-{n}", library.0),
        role: Role::Librarian,
        password_hash: "hash".into(),
    };
    let main = w.library.placement.library;
    let have = s.staff_of(coop).await.unwrap().iter().filter(|e| e.staff.home.library == main).count();
    for n in have..MAX_STAFF_PER_LIBRARY as usize {
        s.create_staff(account(main, n)).await.unwrap();
    }
    let r = s.create_staff(account(main, 99_999)).await;
    assert!(too_many(&r), "an account past the library's bound: {r:?}");
    let other = w.other.placement.library;
    s.create_staff(account(other, 1)).await.expect("another library has room of its own");
}

/// A script's title and text change in place: same id, same owner, read
/// back by whoever could use it; a script not there is `NotFound` and
/// nothing is written.
async fn a_script_is_rewritten_in_place_and_one_not_there_is_not_found(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let owner = ScriptOwner::Library(w.library.placement.library);
    let script = s.create_script(owner, "Hours".into(), "We open at 9.".into(), 1).await.unwrap();
    let other = s.create_script(owner, "Cards".into(), "Ask at the desk.".into(), 2).await.unwrap();
    let changed = s.update_script(script.id, "Opening hours".into(), "We open at 10.".into()).await.unwrap();
    assert_eq!((changed.id, changed.owned_by()), (script.id, Some(owner)));
    assert_eq!((changed.title.as_str(), changed.body.as_str()), ("Opening hours", "We open at 10."));
    let seen = s.scripts_for(&w.ann, w.ann.home.library).await.unwrap();
    let mine = |id| seen.iter().find(|x| x.id == id).cloned().unwrap();
    assert_eq!(mine(script.id).body, "We open at 10.", "the library's librarian reads the new text");
    assert_eq!(mine(other.id).body, "Ask at the desk.", "another script is untouched");
    let r = s.update_script(other.id + 1000, "X".into(), "Y".into()).await;
    assert!(not_found(&r), "a script not there: {r:?}");
    assert_eq!(s.scripts_for(&w.ann, w.ann.home.library).await.unwrap().len(), seen.len(), "nothing was added");
}

async fn a_store_is_empty_until_its_first_cooperative(b: &Backend) {
    let empty = Empty::open(b.kind).await;
    assert!(empty.store.is_empty().await.unwrap());
    empty.store.create_cooperative("Coop", default_codes()).await.unwrap();
    assert!(!empty.store.is_empty().await.unwrap());
    empty.remove().await;
    assert!(!b.store.is_empty().await.unwrap(), "the world is in");
}

async fn a_library_slug_is_taken_once(b: &Backend) {
    let r = b.store.create_library(b.w.library.placement.institution, "main", "Again").await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Conflict(_)))), "{r:?}");
    assert_eq!(b.store.libraries().await.unwrap(), [b.w.library.clone(), b.w.other.clone()]);
}

/// A new name replaces the old one where it is read, and naming what is
/// not there is NotFound on every backend.
async fn cooperatives_institutions_and_libraries_are_renamed_and_what_is_not_there_is_not_found(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let p = w.library.placement;
    s.rename(Named::Library(p.library), "Main Library").await.unwrap();
    s.rename(Named::Institution(p.institution), "North University").await.unwrap();
    s.rename(Named::Cooperative(p.cooperative), "North Co-op").await.unwrap();
    assert_eq!(s.library_by_slug("main").await.unwrap().unwrap().name, "Main Library");
    let inst = s.institutions().await.unwrap().into_iter().find(|i| i.id == p.institution).unwrap();
    assert_eq!((inst.name.as_str(), inst.cooperative_name.as_str()), ("North University", "North Co-op"));
    assert_eq!(s.library_by_slug(&w.other.slug).await.unwrap().unwrap(), w.other, "the other library is as it was");
    // Two of a kind in one cooperative (or two cooperatives) are never
    // called alike, in any letter case; a name's own case may change.
    let other = w.other.name.to_uppercase();
    let same_coop = w.other.placement.cooperative == p.cooperative;
    let r = s.rename(Named::Library(p.library), &other).await;
    assert_eq!(conflict(&r), same_coop, "{r:?}");
    assert!(conflict(&s.create_library(p.institution, "main-2", "MAIN library").await), "an addition too");
    s.rename(Named::Library(p.library), "MAIN LIBRARY").await.unwrap();
    let second = s.create_institution(p.cooperative, "South College").await.unwrap();
    assert!(conflict(&s.rename(Named::Institution(second), "north university").await));
    assert!(conflict(&s.create_institution(p.cooperative, "North University ").await));
    assert!(conflict(&s.create_cooperative("north co-op", vec![]).await));
    assert!(not_found(&s.rename(Named::Library(LibraryId(999_999)), "X").await));
    assert!(not_found(&s.rename(Named::Institution(InstitutionId(999_999)), "X").await));
    assert!(not_found(&s.rename(Named::Cooperative(CooperativeId(999_999)), "X").await));
}

/// Issue 14's drift: SQLite reported a foreign-key failure as a database
/// error (a 500), PostgreSQL as NotFound (a 404). A write that names a
/// parent that does not exist is NotFound on every backend, and writes
/// nothing.
async fn creating_under_a_parent_that_does_not_exist_is_not_found(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let r = s.create_institution(CooperativeId(999_999), "Nowhere").await;
    assert!(not_found(&r), "an institution of a cooperative that does not exist: {r:?}");
    let r = s.create_library(InstitutionId(999_999), "nowhere", "Nowhere").await;
    assert!(not_found(&r), "a library of an institution that does not exist: {r:?}");
    let new = NewStaff {
        library: LibraryId(999_999),
        username: "nobody".into(),
        display_name: "Nobody".into(),
        role: Role::Librarian,
        password_hash: "hash".into(),
    };
    let r = s.create_staff(new).await;
    assert!(not_found(&r), "staff of a library that does not exist: {r:?}");
    let r = s.put_code(CooperativeId(999_999), new_code(1)).await;
    assert!(not_found(&r), "a code of a cooperative that does not exist: {r:?}");
    let r = s.set_policy(LibraryId(999_999), "Fines: none".into(), w.carla.id, 1).await;
    assert!(not_found(&r), "the policy of a library that does not exist: {r:?}");
    let r = s.set_policy(w.library.placement.library, "Fines: none".into(), StaffId(999_999), 1).await;
    assert!(not_found(&r), "a policy changed by staff who do not exist: {r:?}");

    assert_eq!(s.institutions().await.unwrap().len(), 1, "nothing was written");
    assert_eq!(s.libraries().await.unwrap().len(), 2);
    assert!(s.library_by_slug("nowhere").await.unwrap().is_none());
    assert!(s.staff_by_username("nobody").await.unwrap().is_none());
    assert!(s.codes(CooperativeId(999_999)).await.unwrap().is_empty());
    assert!(s.policy(w.library.placement.library).await.unwrap().is_none());
}

async fn a_library_policy_page_is_replaced_and_read_back(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let library = w.library.placement.library;
    assert!(s.policy(library).await.unwrap().is_none());
    s.set_policy(library, "Fines: some".into(), w.ann.id, 400).await.unwrap();
    s.set_policy(library, "Fines: none".into(), w.carla.id, 500).await.unwrap();
    let page = s.policy(library).await.unwrap().unwrap();
    let expected =
        PolicyPage { library, body: "Fines: none".into(), updated_at: 500, updated_by: Some("CARLA".into()) };
    assert_eq!(page, expected);
    assert!(s.policy(w.other.placement.library).await.unwrap().is_none(), "each library its own");
}

/// The sites allowed to frame a library's chat come with the library, by
/// its slug and in the list; a library's other setting (blocked patrons'
/// form) is left as it was, and setting it leaves the sites.
async fn a_librarys_embedding_sites_and_reply_address_are_read_with_it_and_kept_apart_from_its_other_settings(
    b: &Backend,
) {
    let (s, w) = (&*b.store, &b.w);
    let library = w.library.placement.library;
    let slug = w.library.slug.as_str();
    assert!(s.library_by_slug(slug).await.unwrap().unwrap().embed_sites.is_empty(), "none at first");
    let sites = vec!["https://www.example.org".to_owned(), "https://*.example.edu:8443".to_owned()];
    s.set_embed_sites(library, sites.clone()).await.unwrap();
    assert_eq!(s.library_by_slug(slug).await.unwrap().unwrap().embed_sites, sites);
    let listed = s.libraries().await.unwrap();
    assert_eq!(listed.iter().find(|l| l.placement.library == library).unwrap().embed_sites, sites);
    assert!(listed.iter().filter(|l| l.placement.library != library).all(|l| l.embed_sites.is_empty()), "its own");
    assert!(s.blocked_may_ask(library).await.unwrap(), "the other setting as it was");
    s.set_blocked_may_ask(library, false).await.unwrap();
    assert_eq!(s.library_by_slug(slug).await.unwrap().unwrap().embed_sites, sites, "kept by the other setting");
    s.set_reply_to(library, Some("ref@example.org".into())).await.unwrap();
    let read = s.library_by_slug(slug).await.unwrap().unwrap();
    assert_eq!((read.reply_to.as_deref(), read.embed_sites), (Some("ref@example.org"), sites.clone()), "each its own");
    s.set_embed_sites(library, Vec::new()).await.unwrap();
    assert!(s.library_by_slug(slug).await.unwrap().unwrap().embed_sites.is_empty());
    assert_eq!(s.library_by_slug(slug).await.unwrap().unwrap().reply_to.as_deref(), Some("ref@example.org"));
    s.set_closed_notice(library, Some("Closed until 2 January.".into())).await.unwrap();
    let read = s.library_by_slug(slug).await.unwrap().unwrap();
    assert_eq!(
        (read.closed_notice.as_deref(), read.reply_to.as_deref()),
        (Some("Closed until 2 January."), Some("ref@example.org"))
    );
    let listed = s.libraries().await.unwrap();
    assert!(listed.iter().filter(|l| l.placement.library != library).all(|l| l.closed_notice.is_none()), "its own");
    s.set_reply_to(library, None).await.unwrap();
    assert_eq!(s.library_by_slug(slug).await.unwrap().unwrap().reply_to, None);
    assert!(s.library_by_slug(slug).await.unwrap().unwrap().closed_notice.is_some(), "kept by the other setting");
    s.set_closed_notice(library, None).await.unwrap();
    assert_eq!(s.library_by_slug(slug).await.unwrap().unwrap().closed_notice, None);
    assert!(!s.blocked_may_ask(library).await.unwrap(), "kept by the sites");
    assert!(not_found(&s.set_embed_sites(LibraryId(999_999), sites).await));

    // The widget's look: kept whole, its own, and the default kept as none.
    let look = refdesk_domain::org::WidgetLook {
        label_online: Some("Chat now".into()),
        color: Some("#7a1f1f".into()),
        position: Some("left".into()),
        ..Default::default()
    };
    s.set_widget(library, look.clone()).await.unwrap();
    assert_eq!(s.library_by_slug(slug).await.unwrap().unwrap().widget, look);
    let listed = s.libraries().await.unwrap();
    assert!(listed.iter().filter(|l| l.placement.library != library).all(|l| l.widget.is_default()), "its own");
    assert!(!s.blocked_may_ask(library).await.unwrap(), "the other settings as they were");
    s.set_widget(library, Default::default()).await.unwrap();
    assert!(s.library_by_slug(slug).await.unwrap().unwrap().widget.is_default());
    assert!(not_found(&s.set_widget(LibraryId(999_999), look).await));
}

/// Entries are read by the place they concern (a library's, an
/// institution's with its libraries', the cooperative's with everything),
/// newest first; past the cap, the oldest of the cooperative go.
async fn the_admin_log_is_read_by_scope_newest_first_and_keeps_so_many_per_cooperative(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let main = w.library.placement;
    let entry = |n: i64, library: Option<LibraryId>, institution: Option<InstitutionId>| AdminEntry {
        id: 0,
        at: 1_000 + n,
        cooperative: main.cooperative,
        institution,
        library,
        actor: (n % 2 == 0).then_some(w.carla.id),
        actor_name: (n % 2 == 0).then(|| format!("Carla as she was named at change {n}")),
        action: "test".into(),
        detail: format!("change {n}"),
    };
    let details = |v: Vec<AdminEntry>| v.into_iter().map(|e| e.detail).collect::<Vec<_>>();
    s.log_admin(entry(1, Some(main.library), Some(main.institution)), 4, 1_005).await.unwrap();
    s.log_admin(entry(2, Some(w.other.placement.library), Some(main.institution)), 4, 1_005).await.unwrap();
    s.log_admin(entry(3, None, Some(main.institution)), 4, 1_005).await.unwrap();
    s.log_admin(entry(4, None, None), 4, 1_005).await.unwrap();
    let read = |scope| s.admin_log(scope, 100);
    assert_eq!(details(read(ScopeLevel::Library(main.library)).await.unwrap()), ["change 1"]);
    assert_eq!(
        details(read(ScopeLevel::Institution(main.institution)).await.unwrap()),
        ["change 3", "change 2", "change 1"]
    );
    let all = read(ScopeLevel::Cooperative(main.cooperative)).await.unwrap();
    assert_eq!(details(all.clone()), ["change 4", "change 3", "change 2", "change 1"]);
    assert_eq!(all[0], AdminEntry { id: all[0].id, ..entry(4, None, None) }, "read back as written");
    assert_eq!(all[3].actor, None, "the operator's");
    assert_eq!(
        details(s.admin_log(ScopeLevel::Cooperative(main.cooperative), 2).await.unwrap()),
        ["change 4", "change 3"]
    );
    // Past four, the oldest go.
    s.log_admin(entry(5, Some(main.library), Some(main.institution)), 4, 1_005).await.unwrap();
    s.log_admin(entry(6, None, None), 4, 1_005).await.unwrap();
    assert_eq!(
        details(read(ScopeLevel::Cooperative(main.cooperative)).await.unwrap()),
        ["change 6", "change 5", "change 4", "change 3"]
    );
    assert_eq!(details(read(ScopeLevel::Library(main.library)).await.unwrap()), ["change 5"]);
    // Entries written at or after `young` are kept past the cap.
    s.log_admin(entry(8, None, None), 4, 1_004).await.unwrap();
    assert_eq!(
        details(read(ScopeLevel::Cooperative(main.cooperative)).await.unwrap()),
        ["change 8", "change 6", "change 5", "change 4"],
        "change 3 (at 1,003) went; change 4 (at 1,004) would have been kept anyway"
    );
    s.log_admin(entry(9, None, None), 4, 1_004).await.unwrap();
    assert_eq!(
        details(read(ScopeLevel::Cooperative(main.cooperative)).await.unwrap()),
        ["change 9", "change 8", "change 6", "change 5", "change 4"],
        "none at or after 1,004 deleted, the cap or not"
    );
    // Another cooperative's are its own, and its cap too.
    let coop = s.create_cooperative("Elsewhere", default_codes()).await.unwrap();
    s.log_admin(AdminEntry { cooperative: coop, ..entry(7, None, None) }, 1, 1_005).await.unwrap();
    assert_eq!(details(read(ScopeLevel::Cooperative(coop)).await.unwrap()), ["change 7"]);
    assert_eq!(read(ScopeLevel::Cooperative(main.cooperative)).await.unwrap().len(), 5);
}

/// `put_code` promises that a new code goes last and says nothing of moving
/// one that is replaced: it keeps its place.
async fn replacing_a_code_keeps_its_place_in_the_picker(b: &Backend) {
    let s = &*b.store;
    let coop = b.w.library.placement.cooperative;
    let before = s.codes(coop).await.unwrap();
    assert_eq!(before, default_codes(), "the codes the cooperative was made with, in their order");

    let mut first = before[0].clone();
    first.label = "Answered fully".into();
    s.put_code(coop, first.clone()).await.unwrap();
    let mut middle = before[3].clone();
    middle.label = "Referred elsewhere".into();
    middle.follow_up = !middle.follow_up;
    middle.retired = true;
    s.put_code(coop, middle.clone()).await.unwrap();
    s.put_code(coop, new_code(1)).await.unwrap();
    let mut added = new_code(1);
    added.label = "New, renamed".into();
    s.put_code(coop, added.clone()).await.unwrap();

    let mut expected = before;
    expected[0] = first;
    expected[3] = middle;
    expected.push(added);
    assert_eq!(s.codes(coop).await.unwrap(), expected);
}

/// Issue 14's drift: `put_code` locked the cooperative only on PostgreSQL.
/// Codes added at the same moment must each get a position of their own
/// after the codes already there, so that the picker has one order.
async fn codes_added_at_once_each_get_a_place_of_their_own_after_the_others(b: &Backend) {
    let s = &*b.store;
    let coop = b.w.library.placement.cooperative;
    let before = s.codes(coop).await.unwrap();
    let puts: Vec<_> = (0..16)
        .map(|n| {
            let store = b.store.clone();
            tokio::spawn(async move { store.put_code(coop, new_code(n)).await })
        })
        .collect();
    let mut failed = Vec::new();
    for put in puts {
        if let Err(e) = put.await.unwrap() {
            failed.push(e);
        }
    }
    assert!(failed.is_empty(), "every code is stored: {failed:?}");

    let after = s.codes(coop).await.unwrap();
    assert_eq!(after.len(), before.len() + 16, "{after:?}");
    assert_eq!(after[..before.len()], before[..], "the codes already there keep their places");
    let added: BTreeSet<String> = after[before.len()..].iter().map(|c| c.key.clone()).collect();
    assert_eq!(added, (0..16).map(|n| new_code(n).key).collect(), "each new code once, after the others");
    let positions = b.code_positions(coop).await;
    let distinct: BTreeSet<i64> = positions.iter().copied().collect();
    assert_eq!(distinct.len(), positions.len(), "a position of its own for every code: {positions:?}");
    for _ in 0..3 {
        assert_eq!(s.codes(coop).await.unwrap(), after, "the picker's order is stable");
    }

    s.put_code(coop, new_code(99)).await.unwrap();
    let last = s.codes(coop).await.unwrap();
    assert_eq!(last[..after.len()], after[..], "a later code changes nobody's place");
    assert_eq!(last.last().map(|c| c.key.as_str()), Some("new_99"), "and goes last");
}

/// Two colleagues of one cooperative called alike cannot be told apart in
/// its IM list, its chats and their transcripts: a name taken in any letter
/// case is refused, on an account added or renamed; another cooperative's
/// names are its own.
async fn colleagues_of_a_cooperative_are_named_apart(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let account = |library: LibraryId, username: &str, display_name: &str| NewStaff {
        library,
        username: username.into(),
        display_name: display_name.into(),
        role: Role::Librarian,
        password_hash: "hash".into(),
    };
    let before = s.staff_of(w.library.placement.cooperative).await.unwrap().len();
    // "ANN" is Ann's (the world's staff are named in capitals); the other library is of her cooperative.
    let r = s.create_staff(account(w.other.placement.library, "ann2", " ann ")).await;
    assert!(conflict(&r), "{r:?}");
    assert_eq!(s.staff_of(w.library.placement.cooperative).await.unwrap().len(), before, "nobody added");
    let coop = s.create_cooperative("Another cooperative", default_codes()).await.unwrap();
    let inst = s.create_institution(coop, "Another institution").await.unwrap();
    let elsewhere = s.create_library(inst, "elsewhere", "Elsewhere").await.unwrap();
    s.create_staff(account(elsewhere.placement.library, "ann3", "Ann")).await.expect("another cooperative");

    let rename = |name: &str| StaffUpdate {
        password_was: None,
        role: None,
        disabled: None,
        password_hash: None,
        decided_on: None,
        display_name: Some(name.into()),
    };
    let r = s.update_staff(w.carla.id, rename("Ann")).await;
    assert!(conflict(&r), "{r:?}");
    assert_eq!(s.staff_by_id(w.carla.id).await.unwrap().unwrap().display_name, "CARLA", "unchanged");
    s.update_staff(w.carla.id, rename("Carla")).await.expect("her own name, in other letters");
    s.update_staff(w.ann.id, rename("Ann Archer")).await.expect("a name nobody has");
    // Called alike as a reader tells them apart: spaces, what shows as
    // nothing, a full-width letter.
    for alike in ["Ann  Archer", "ann archer\u{200B}", "\u{FF21}nn Archer"] {
        let r = s.update_staff(w.carla.id, rename(alike)).await;
        assert!(conflict(&r), "{alike:?}: {r:?}");
    }
    s.create_staff(account(w.other.placement.library, "ann4", "Ann")).await.expect("free once Ann was renamed");
    // The same account added again is told its username is taken, not its name.
    let r = s.create_staff(account(w.other.placement.library, "ann4", "Ann")).await;
    assert!(
        matches!(&r, Err(StoreError::Domain(DomainError::Conflict(m))) if m == "the username ann4 is taken"),
        "{r:?}"
    );
}

/// A clean shutdown: once closed, reads and writes say so, and closing
/// again does nothing.
async fn a_closed_store_refuses_reads_and_writes_and_closing_again_does_nothing(b: &Backend) {
    let s = &*b.store;
    let a = start(s, &b.w, None, "t1", 10).await;
    s.close().await;
    assert!(matches!(s.messages_after(a, 0, 10).await, Err(StoreError::Closed)));
    assert!(matches!(s.create_cooperative("Late", default_codes()).await, Err(StoreError::Closed)));
    s.close().await;
    assert!(matches!(s.session(a).await, Err(StoreError::Closed)), "still closed");
}
