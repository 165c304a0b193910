//! Patron privacy: retention periods, erasing a chat's personal data (all
//! or nothing, once), and the audit list (issue 15).

use crate::support::{asking, chatting, ok, patron, start, Backend};
use refdesk_domain::chat::{Author, MessageKind};
use refdesk_domain::privacy::{Retention, Transcripts, DELETED};
use refdesk_domain::question::{apply_code, Change};
use refdesk_domain::DomainError;
use refdesk_store::{Decide, Ending, ErasureReason, NewBlock, NewMessage, SessionGroup, StoreError};

on_every_backend!(
    erasing_removes_the_patron_and_keeps_the_figures_once_and_all_or_nothing,
    a_deleted_transcript_keeps_its_last_line_so_the_next_takes_a_new_number,
    retention_periods_and_what_they_make_due,
    a_block_keeps_its_digests_only_while_in_force_and_timelines_still_read,
    nothing_personal_is_written_on_a_question_once_its_patrons_data_is_erased,
    an_address_is_found_where_an_answer_was_mailed_and_in_any_letter_case_on_both_stores,
    the_chats_found_by_address_show_the_start_of_their_question,
    erasures_made_again_take_only_the_same_chats_still_holding_data_and_wait_for_live_ones,
    refdesks_own_lines_keep_their_words_when_the_patrons_name_shares_them,
    refdesks_own_notes_keep_their_words_when_the_patrons_name_shares_them
);

/// refdesk's own lines never hold the patron's name (they name staff,
/// libraries, codes): erasure masks their addresses and numbers alone, so
/// that a patron whose name shares their words does not turn "ANN (librarian)
/// has joined the chat" into "[name] (librarian) has [name] the chat". What
/// people wrote is masked as before, staff's lines too ("Hello Ann").
async fn refdesks_own_lines_keep_their_words_when_the_patrons_name_shares_them(b: &Backend) {
    let s = &*b.store;
    let new = refdesk_store::NewSession {
        patron_name: Some("Ann Joined".into()),
        ..crate::support::keyed(&b.w, "named", None, None, 100, 100)
    };
    let (rec, _) = s.start_session(new).await.unwrap();
    let id = rec.ctx.id;
    s.accept(id, b.w.ann.clone(), ok(), 2).await.unwrap();
    let hello = crate::support::line(
        crate::support::staff_author(&b.w.ann),
        MessageKind::Message,
        "Hello Ann, you joined",
        None,
    );
    s.append(id, hello, ok(), 3).await.unwrap();
    s.end(id, patron(), ok(), Box::new(|_, _| None), Ending::default(), 4).await.unwrap();
    let why = ErasureReason::Request(b.w.carla.id);
    assert_eq!(s.erase(vec![id], Transcripts::Mask, why, 5).await.unwrap(), 1);
    let lines: Vec<String> = s.messages_after(id, 0, 100).await.unwrap().into_iter().map(|m| m.body).collect();
    assert!(lines.contains(&"ANN (librarian) has joined the chat".to_owned()), "refdesk's line kept: {lines:?}");
    assert!(lines.contains(&"Hello [name], you [name]".to_owned()), "the librarian's masked: {lines:?}");
}

/// The same for a question's timeline: refdesk's own notes (no actor) keep
/// their words — "Missed chat" stays so for a patron called Mia Missed —
/// but not an address, nor the name in what they quote (a mail server's
/// reply); a librarian's note is masked as before.
async fn refdesks_own_notes_keep_their_words_when_the_patrons_name_shares_them(b: &Backend) {
    let s = &*b.store;
    let new = refdesk_store::NewSession {
        patron_name: Some("Mia Missed".into()),
        patron_email: Some("mia@example.org".into()),
        ..crate::support::keyed(&b.w, "missed", None, None, 100, 100)
    };
    let (rec, _) = s.start_session(new).await.unwrap();
    let id = rec.ctx.id;
    let ending = Ending {
        missed: Some("Missed chat: the patron left; mia@example.org said “no Mia Missed here”".into()),
        left_per_net_per_day: 30,
        ..Default::default()
    };
    s.end(id, patron(), ok(), Box::new(|_, _| None), ending, 2).await.unwrap();
    let q = s.session(id).await.unwrap().unwrap().ctx.question.expect("a missed chat's question");
    let note = Change::Note { body: "Mia Missed phoned: missed the chat".into() };
    let plan: refdesk_store::Plan =
        Box::new(move |_, _| Ok(refdesk_store::QuestionPlan { entries: vec![note], ..Default::default() }));
    s.act_on_question(q, b.w.ann.clone(), plan, 3).await.unwrap();
    assert_eq!(s.erase(vec![id], Transcripts::Mask, ErasureReason::Retention, 5).await.unwrap(), 1);
    let notes: Vec<String> = s
        .timeline(q)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|t| match t.change {
            Change::Note { body } => Some(body),
            _ => None,
        })
        .collect();
    let refdesks = "Missed chat: the patron left; [email] said “no [name] [name] here”";
    assert_eq!(notes, [refdesks, "[name] [name] phoned: [name] the chat"]);
}

async fn say(b: &Backend, id: refdesk_domain::ids::SessionId, body: &str, now: i64) {
    let m = NewMessage {
        author: patron(),
        kind: MessageKind::Message,
        audience: MessageKind::Message.audience(),
        body: body.into(),
        client_id: None,
        system: None,
    };
    b.store.append(id, m, ok(), now).await.unwrap();
}

/// Erasing takes the name, the addresses and the keys, masks the texts (or
/// deletes the transcript but its first line and its last's number), counts once, refuses a chat
/// still going on without erasing anything, and leaves the figures alone.
async fn erasing_removes_the_patron_and_keeps_the_figures_once_and_all_or_nothing(b: &Backend) {
    let s = &*b.store;
    let a = chatting(s, &b.w, Some("pat@example.org"), "e1", 10).await;
    s.set_transcript_to(a, Some("pat@example.org".into()), Some(60), 100, 10).await.unwrap();
    say(b, a, "I'm Pat, pat@example.org, 555 123 4567", 11).await;
    s.end(a, patron(), ok(), Box::new(|_, _| None), Ending::default(), 12).await.unwrap();
    s.rate(a, 5, Some("Pat says thanks".into())).await.unwrap();
    let d = chatting(s, &b.w, Some("pat@example.org"), "e2", 20).await;
    say(b, d, "second chat", 21).await;
    s.end(d, patron(), ok(), Box::new(|_, _| None), Ending::default(), 22).await.unwrap();
    let live = chatting(s, &b.w, Some("PAT@example.org"), "e3", 30).await;
    let lib = b.w.library.placement.library;
    let found = s.patron_sessions("Pat@Example.org", vec![lib]).await.unwrap();
    assert_eq!(found.len(), 3, "any letter case: {found:?}");
    assert!(s.patron_sessions("pat@example.org", vec![b.w.other.placement.library]).await.unwrap().is_empty());
    let range = refdesk_store::ReportRange { libraries: vec![lib], from: 0, to: 1_000, offset: 0, bucket: 3_600_000 };
    let figures = s.session_counts(range.clone(), SessionGroup::Total).await.unwrap();

    let why = ErasureReason::Request(b.w.carla.id);
    let r = s.erase(vec![a, live], Transcripts::Mask, why.clone(), 40).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Conflict(_)))), "a live chat: {r:?}");
    assert_eq!(s.session(a).await.unwrap().unwrap().patron_name.as_deref(), Some("Pat"), "nothing erased");
    assert!(s.privacy_log(vec![lib], 10).await.unwrap().is_empty());

    assert_eq!(s.erase(vec![a], Transcripts::Mask, why.clone(), 41).await.unwrap(), 1);
    assert_eq!(s.erase(vec![d], Transcripts::Delete, why.clone(), 42).await.unwrap(), 1);
    assert_eq!(s.erase(vec![a, d], Transcripts::Mask, why, 43).await.unwrap(), 0, "once");
    for token in ["e1", "e2"] {
        assert!(s.session_by_token(token).await.unwrap().is_none(), "the patron's token opens nothing now");
    }
    assert!(s.session_by_token("e3").await.unwrap().is_some(), "a chat not erased still opens");
    let rec = s.session(a).await.unwrap().unwrap();
    assert_eq!((rec.patron_name, rec.patron_email, rec.transcript_to), (None, None, None));
    assert_eq!(rec.transcript_utc_offset, None, "nor where the patron's clock was");
    let lines: Vec<String> = s.messages_after(a, 0, 100).await.unwrap().into_iter().map(|m| m.body).collect();
    assert!(lines.contains(&"I'm [name], [email], [phone]".to_owned()), "{lines:?}");
    assert!(lines.iter().all(|l| !l.contains("Pat") && !l.contains("example.org")), "{lines:?}");
    assert_eq!(s.messages_after(d, 0, 100).await.unwrap().len(), 2, "deleted but the first line and the last");
    let q = s.question(rec.ctx.question.unwrap()).await.unwrap().unwrap();
    assert_eq!(q.rating_comment.as_deref(), Some("[name] says thanks"));
    assert_eq!(s.patron_sessions("pat@example.org", vec![lib]).await.unwrap().len(), 1, "only the live one");
    assert_eq!(s.session_counts(range, SessionGroup::Total).await.unwrap(), figures, "the figures stay");
    let log = s.privacy_log(vec![lib], 10).await.unwrap();
    let entries: Vec<(&str, i64, Option<Transcripts>)> =
        log.iter().map(|e| (e.action.as_str(), e.sessions, e.transcripts)).collect();
    assert_eq!(entries, vec![("erase", 1, Some(Transcripts::Delete)), ("erase", 1, Some(Transcripts::Mask))]);
    assert_eq!(log[0].by, Some(b.w.carla.id));
}

/// I3 after an erasure: a chat's next number is its last line's plus one,
/// and an ended chat still takes lines (here a code set after the
/// transcript was deleted): the line takes a number no viewer has had.
async fn a_deleted_transcript_keeps_its_last_line_so_the_next_takes_a_new_number(b: &Backend) {
    let s = &*b.store;
    let a = chatting(s, &b.w, Some("pat@example.org"), "n1", 10).await;
    say(b, a, "I'm Pat", 11).await;
    say(b, a, "thanks", 12).await;
    s.end(a, patron(), ok(), Box::new(|_, _| None), Ending::default(), 13).await.unwrap();
    let last = s.messages_after(a, 0, 100).await.unwrap().pop().expect("the end's line");
    assert_eq!(s.erase(vec![a], Transcripts::Delete, ErasureReason::Request(b.w.carla.id), 14).await.unwrap(), 1);
    let left = s.messages_after(a, 0, 100).await.unwrap();
    assert_eq!(left.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, last.seq], "the question and the last line");
    let kept = &left[1];
    assert_eq!((kept.body.as_str(), &kept.author, kept.kind), (DELETED, &Author::System, MessageKind::System));
    assert_eq!((kept.at, kept.client_id.as_deref(), kept.system), (last.at, None, None), "its time, nothing else");
    let decide: Decide = Box::new(|before, rec, codes| {
        Ok(apply_code(before, codes.iter().find(|c| c.key == "answered").unwrap(), rec.ctx.librarian, None))
    });
    let (_, said) = s.set_code(a, "answered".into(), b.w.ann.clone(), ok(), decide, 15).await.unwrap();
    assert_eq!(said.seq, last.seq + 1, "a new number, after every one given before");
}

/// A library's period is kept, replaced, cleared; what is due is its ended
/// chats older than the cut, oldest first, not yet erased.
async fn retention_periods_and_what_they_make_due(b: &Backend) {
    let s = &*b.store;
    let lib = b.w.library.placement.library;
    assert_eq!(s.retention(lib).await.unwrap(), None);
    let r = Retention::new(30, Transcripts::Delete).unwrap();
    s.set_retention(lib, Some(r), b.w.carla.id, 1).await.unwrap();
    s.set_retention(lib, Some(Retention { days: 60, ..r }), b.w.carla.id, 2).await.unwrap();
    assert_eq!(s.retentions().await.unwrap(), vec![(lib, Retention { days: 60, ..r })]);
    let missing = refdesk_domain::ids::LibraryId(999_999);
    assert!(s.set_retention(missing, Some(r), b.w.carla.id, 3).await.unwrap_err().is_not_found());
    let old = chatting(s, &b.w, None, "d1", 5).await;
    s.end(old, patron(), ok(), Box::new(|_, _| None), Ending::default(), 6).await.unwrap();
    let older = start(s, &b.w, None, "d0", 4).await;
    s.end(older, patron(), ok(), Box::new(|_, _| None), Ending::default(), 7).await.unwrap();
    let _going_on = chatting(s, &b.w, None, "d2", 8).await;
    let _new = start(s, &b.w, None, "d3", 50).await;
    assert_eq!(s.due_for_erasure(lib, 20, 10).await.unwrap(), vec![older, old]);
    assert_eq!(s.due_for_erasure(lib, 20, 1).await.unwrap(), vec![older]);
    s.erase(vec![older], Transcripts::Mask, ErasureReason::Retention, 30).await.unwrap();
    assert_eq!(s.due_for_erasure(lib, 20, 10).await.unwrap(), vec![old]);
    assert_eq!(s.privacy_log(vec![lib], 10).await.unwrap()[0].by, None);
    s.set_retention(lib, None, b.w.carla.id, 40).await.unwrap();
    assert!(s.retentions().await.unwrap().is_empty());
}

/// A block in force when its chat is erased keeps the patron's digests
/// until it runs out, then loses them; its reason is masked at once. A
/// patron named like the words of a timeline entry ("New", "Read",
/// "Created") leaves a timeline that still reads back.
async fn a_block_keeps_its_digests_only_while_in_force_and_timelines_still_read(b: &Backend) {
    let s = &*b.store;
    let mut new = crate::support::keyed(&b.w, "k1", Some("browser-k"), Some("net-k"), 99, 99);
    new.patron_name = Some("New Read Created".into());
    let id = s.start_session(new).await.unwrap().0.ctx.id;
    s.accept(id, b.w.ann.clone(), ok(), 2).await.unwrap();
    let reason = "New Read Created was rude".to_owned();
    let block = NewBlock { session: id, by: b.w.ann.clone(), reason, expires_at: 100, now: 3, network: true };
    let block = s.block(block).await.unwrap();
    let note: refdesk_store::Plan = Box::new(|_, _| {
        let entries = vec![Change::Note { body: "New Read called; new.read@example.org".into() }];
        Ok(refdesk_store::QuestionPlan { entries, ..Default::default() })
    });
    let q = s.session(id).await.unwrap().unwrap().ctx.question.unwrap();
    s.act_on_question(q, b.w.ann.clone(), note, 4).await.unwrap();
    s.end(id, patron(), ok(), Box::new(|_, _| None), Ending::default(), 5).await.unwrap();
    let kinds = |t: Vec<refdesk_store::TimelineEntry>| t.iter().map(|e| e.change.kind()).collect::<Vec<_>>();
    let before = kinds(s.timeline(q).await.unwrap());

    assert_eq!(s.erase(vec![id], Transcripts::Mask, ErasureReason::Retention, 50).await.unwrap(), 1);
    let timeline = s.timeline(q).await.expect("the timeline still reads");
    assert_eq!(kinds(timeline.clone()), before);
    assert!(timeline.iter().any(|e| e.change == Change::Note { body: "[name] [name] called; [email]".into() }));
    assert_eq!(s.block_by_id(block.id).await.unwrap().unwrap().reason, "[name] [name] [name] was rude");
    assert_eq!(b.block_keys(block.id).await, (Some("browser-k".into()), Some("net-k".into())));
    assert_eq!(s.forget_spent_blocks(99).await.unwrap(), 0, "in force until 100");
    assert_eq!(s.forget_spent_blocks(100).await.unwrap(), 1);
    assert_eq!(b.block_keys(block.id).await, (None, None));
}

/// An erasure masks once, and retention and a request by address pass over
/// an erased chat: a note, an answer (and its e-mail), a message to the
/// librarian or a patron's rating comment written after it would be kept
/// for good. They are refused,
/// inside the action's write, with nothing written; the question's state
/// may still change.
async fn nothing_personal_is_written_on_a_question_once_its_patrons_data_is_erased(b: &Backend) {
    let s = &*b.store;
    let a = chatting(s, &b.w, Some("pat@example.org"), "x1", 10).await;
    s.end(a, patron(), ok(), Box::new(|_, _| None), Ending::default(), 12).await.unwrap();
    let q = s.session(a).await.unwrap().unwrap().ctx.question.unwrap();
    assert_eq!(s.erase(vec![a], Transcripts::Mask, ErasureReason::Retention, 50).await.unwrap(), 1);
    let held = s.timeline(q).await.unwrap().len();
    let words: [(&str, Change); 3] = [
        ("note", Change::Note { body: "Pat Smith called again".into() }),
        (
            "answer",
            Change::Answer { body: "Dear Pat".into(), emailed_to: Some("pat@example.org".into()), in_chat: false },
        ),
        ("message", Change::LibrarianMessage { to: None, body: "Pat is back".into() }),
    ];
    for (what, change) in words {
        let plan: refdesk_store::Plan =
            Box::new(move |_, _| Ok(refdesk_store::QuestionPlan { entries: vec![change], ..Default::default() }));
        let refused = s.act_on_question(q, b.w.ann.clone(), plan, 60).await;
        assert!(matches!(refused, Err(StoreError::Domain(DomainError::Conflict(_)))), "{what}: {refused:?}");
    }
    assert_eq!(s.timeline(q).await.unwrap().len(), held, "nothing written");
    // Nor does its patron's token take a rating (and its comment) any more.
    let rated = s.rate(a, 5, Some("Pat Smith, pat@example.org".into())).await;
    assert!(matches!(rated, Err(StoreError::Domain(DomainError::Conflict(_)))), "{rated:?}");
    let comment = s.question(q).await.unwrap().unwrap().rating_comment;
    assert!(!comment.is_some_and(|c| c.contains("Pat")), "nothing written");
    assert!(matches!(s.rate(refdesk_domain::ids::SessionId(999_999), 5, None).await, Err(e) if e.is_not_found()));
    let flagged: refdesk_store::Plan = Box::new(|q, _| {
        let mut state = q.state.clone();
        state.follow_up = !q.state.follow_up;
        let entries = vec![Change::FollowUp { to: state.follow_up }];
        Ok(refdesk_store::QuestionPlan { state: Some(state), entries, ..Default::default() })
    });
    s.act_on_question(q, b.w.ann.clone(), flagged, 61).await.expect("a change of state still goes");
    let after = s.timeline(q).await.unwrap();
    assert!(after[held..].iter().any(|t| t.change.kind() == "follow_up"), "{after:?}");
    assert!(after.iter().all(|t| !matches!(t.change, Change::Note { .. } | Change::Answer { .. })), "{after:?}");
}

/// Erasing by address finds a chat by where its answers were e-mailed too
/// (a librarian may answer to an address the patron gave in the chat), and
/// both stores fold letters beyond ASCII alike (SQLite's `lower` folds
/// ASCII alone). Once erased, the answer's address is found no more.
async fn an_address_is_found_where_an_answer_was_mailed_and_in_any_letter_case_on_both_stores(b: &Backend) {
    let s = &*b.store;
    let lib = b.w.library.placement.library;
    let a = chatting(s, &b.w, Some("pat@example.org"), "m1", 10).await;
    let q = s.session(a).await.unwrap().unwrap().ctx.question.unwrap();
    let answer =
        Change::Answer { body: "Dear Jörg".into(), emailed_to: Some("Jörg@Example.org".into()), in_chat: false };
    let plan: refdesk_store::Plan =
        Box::new(move |_, _| Ok(refdesk_store::QuestionPlan { entries: vec![answer], ..Default::default() }));
    s.act_on_question(q, b.w.ann.clone(), plan, 11).await.unwrap();
    let u = chatting(s, &b.w, Some("ÅSA@example.org"), "m2", 20).await;
    let _other = chatting(s, &b.w, Some("asa@example.org"), "m3", 30).await;

    let sessions = |found: Vec<refdesk_store::PatronSession>| found.into_iter().map(|f| f.session).collect::<Vec<_>>();
    assert_eq!(sessions(s.patron_sessions("jÖRG@example.ORG", vec![lib]).await.unwrap()), [a], "the answer's address");
    assert_eq!(sessions(s.patron_sessions("åsa@EXAMPLE.org", vec![lib]).await.unwrap()), [u], "Å and å, not a");
    assert_eq!(sessions(s.patron_sessions("pat@example.org", vec![lib]).await.unwrap()), [a]);
    assert!(s.patron_sessions("j%rg@example.org", vec![lib]).await.unwrap().is_empty(), "no wildcards");
    // Nor beside letters beyond ASCII, where the stores match a pattern.
    let x = chatting(s, &b.w, Some("jöxrg@example.org"), "m4", 35).await;
    assert!(s.patron_sessions("jö_rg@example.org", vec![lib]).await.unwrap().is_empty(), "an _ is an _");
    assert!(s.patron_sessions("jö%@example.org", vec![lib]).await.unwrap().is_empty(), "a % is a %");
    assert_eq!(sessions(s.patron_sessions("JÖXRG@example.org", vec![lib]).await.unwrap()), [x]);
    assert!(s.patron_sessions("jörg@example.org", vec![b.w.other.placement.library]).await.unwrap().is_empty());

    s.end(a, patron(), ok(), Box::new(|_, _| None), Ending::default(), 40).await.unwrap();
    let why = ErasureReason::Request(b.w.carla.id);
    assert_eq!(s.erase(vec![a], Transcripts::Mask, why, 41).await.unwrap(), 1);
    assert!(s.patron_sessions("jörg@example.org", vec![lib]).await.unwrap().is_empty(), "erased with the chat");
}

/// Each chat found by address shows its question's first 200 characters,
/// not the whole (a search may read thousands of candidates).
async fn the_chats_found_by_address_show_the_start_of_their_question(b: &Backend) {
    let s = &*b.store;
    asking(s, &b.w, Some("long@example.org"), &"é".repeat(1_500), "long", 5).await;
    let found = s.patron_sessions("long@example.org", vec![b.w.library.placement.library]).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].question_text, "é".repeat(200), "200 characters, not bytes");
}

/// What a restored database gets from the erasure journal: the ended chats
/// named (by id and start) that still hold their patron's data are erased,
/// once, as `redo`; a chat going on waits; an id another chat holds now (it
/// started at another time), one erased already and one not there are passed
/// over; an admin not in the database is not named.
async fn erasures_made_again_take_only_the_same_chats_still_holding_data_and_wait_for_live_ones(b: &Backend) {
    let s = &*b.store;
    let lib = b.w.library.placement.library;
    let ended = chatting(s, &b.w, Some("pat@example.org"), "r1", 10).await;
    say(b, ended, "I'm Pat", 11).await;
    s.end(ended, patron(), ok(), Box::new(|_, _| None), Ending::default(), 12).await.unwrap();
    let other = chatting(s, &b.w, Some("sam@example.org"), "r2", 20).await;
    s.end(other, patron(), ok(), Box::new(|_, _| None), Ending::default(), 21).await.unwrap();
    let live = chatting(s, &b.w, Some("pat@example.org"), "r3", 30).await;
    let at = |id| async move { s.session(id).await.unwrap().unwrap().created_at };
    let (ended_at, other_at, live_at) = (at(ended).await, at(other).await, at(live).await);
    let nowhere = refdesk_domain::ids::SessionId(live.0 + 1000);
    let named = vec![(ended, ended_at), (other, other_at + 1), (live, live_at), (nowhere, 5)];
    let carla = (b.w.carla.id, b.w.carla.username.clone());
    let r = s.redo_erasures(named.clone(), Transcripts::Mask, carla, 40).await.unwrap();
    assert_eq!((r.erased, r.waiting), (vec![ended], vec![live]));
    assert_eq!(s.session(ended).await.unwrap().unwrap().patron_email, None);
    assert_eq!(s.session(other).await.unwrap().unwrap().patron_email.as_deref(), Some("sam@example.org"));
    assert_eq!(s.session(live).await.unwrap().unwrap().patron_email.as_deref(), Some("pat@example.org"));
    let log = s.privacy_log(vec![lib], 10).await.unwrap();
    let entries: Vec<_> = log.iter().map(|e| (e.action.as_str(), e.sessions, e.by)).collect();
    assert_eq!(entries, vec![("redo", 1, Some(b.w.carla.id))]);

    // Again, once the live chat has ended, by an account whose id is
    // another's in this database (made after the backup, say).
    s.end(live, patron(), ok(), Box::new(|_, _| None), Ending::default(), 50).await.unwrap();
    let another = (b.w.carla.id, "someone-else".to_owned());
    let r = s.redo_erasures(named, Transcripts::Mask, another, 60).await.unwrap();
    assert_eq!((r.erased, r.waiting), (vec![live], vec![]), "the erased one is not erased again");
    assert_eq!(s.session(live).await.unwrap().unwrap().patron_email, None);
    let log = s.privacy_log(vec![lib], 10).await.unwrap();
    assert_eq!((log[0].action.as_str(), log[0].sessions, log[0].by), ("redo", 1, None));
    assert_eq!(log.len(), 2);
}
