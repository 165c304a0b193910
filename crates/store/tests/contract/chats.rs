//! Chat sessions: the queue, accepting, the messages, conferencing and
//! hand-overs, the end and what it writes.

use crate::support::{chatting, keyed, line, ok, patron, staff_author, start, system, Backend};
use refdesk_domain::chat::{Audience, ConferenceMode, Message, MessageKind, SessionState};
use refdesk_domain::ids::SessionId;
use refdesk_domain::question::{apply_code, Change, Status};
use refdesk_domain::DomainError;
use refdesk_store::{
    DeskNews, Ending, Handover, LibrarianToTell, LiveCount, MailKind, NewMail, ScopeLevel, SessionRecord, StoreError,
    TransferTo,
};
use std::sync::{Arc, Mutex};

on_every_backend!(
    waiting_chats_are_found_by_token_and_queue_oldest_first,
    chats_waiting_too_long_are_found_longest_waiting_first_a_round_at_a_time,
    the_live_chats_carry_their_own_members_however_many_there_are,
    the_live_chats_are_read_by_scope_and_by_who_takes_part,
    an_accept_is_atomic_and_creates_the_question_in_the_patrons_library,
    of_many_simultaneous_accepts_exactly_one_wins,
    a_guard_that_refuses_writes_nothing,
    appends_are_gapless_and_a_client_id_is_stored_once_per_sender,
    simultaneous_sends_are_gapless_and_store_each_client_id_once,
    a_patron_numbers_only_the_lines_they_see_without_a_gap,
    only_committed_messages_are_published_once_each_in_commit_order,
    conference_transfer_and_leave_keep_the_librarian_and_the_members_right,
    a_chat_goes_only_to_a_colleague_enabled_and_on_duty_when_it_is_handed_over,
    an_end_writes_the_transcript_mail_in_the_same_write,
    what_the_patron_asks_of_the_transcript_is_told_to_staff_alone_once_per_change,
    transcripts_to_one_address_are_capped_at_the_end_whatever_the_starts_let_through,
    an_ended_chat_cannot_end_again,
    a_code_set_after_the_end_takes_the_question_out_of_live,
    a_code_that_ends_a_referral_is_told_only_to_those_who_still_see_the_chat,
    a_patrons_rating_is_kept_on_the_question,
    a_patron_leaving_the_queue_leaves_a_question_only_with_an_address,
    the_transcript_address_of_a_missing_chat_is_not_found_and_of_an_ended_one_a_conflict,
    the_queue_caps_hold_inside_the_start,
    chats_started_from_one_network_are_capped_per_day_answered_or_not,
    chats_and_questions_started_at_one_library_are_capped_per_day_from_every_network,
    the_caps_per_network_count_an_ipv6_patrons_56_and_48_as_well_as_its_64,
    a_conference_by_a_role_the_account_no_longer_has_is_refused_inside_its_write,
    an_ending_writes_its_last_words_and_keeps_a_question,
    a_live_chats_patron_is_told_once_that_its_librarians_desk_is_gone_and_once_that_they_are_back,
    a_chats_last_line_and_idleness_follow_its_messages,
    a_line_of_a_system_kind_a_later_release_wrote_reads_as_a_line_without_one,
);

async fn seqs(b: &Backend, id: SessionId) -> Vec<u64> {
    b.store.messages_after(id, 0, 1000).await.unwrap().iter().map(|m| m.seq).collect()
}

async fn waiting_chats_are_found_by_token_and_queue_oldest_first(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = start(s, w, Some("pat@example.org"), "t1", 10).await;
    let c = start(s, w, None, "t2", 20).await;
    assert_eq!(s.session_by_token("t1").await.unwrap().unwrap().ctx.id, a);
    assert!(s.session_by_token("t3").await.unwrap().is_none());
    assert_eq!(s.waiting().await.unwrap().iter().map(|e| e.session).collect::<Vec<_>>(), [a, c]);
    let coop = w.library.placement.cooperative;
    assert_eq!(s.waiting_in(coop).await.unwrap().iter().map(|e| e.session).collect::<Vec<_>>(), [a, c]);
    let elsewhere = refdesk_domain::ids::CooperativeId(coop.0 + 1_000);
    assert!(s.waiting_in(elsewhere).await.unwrap().is_empty(), "another cooperative's queue");
    assert_eq!(s.queue_ahead(w.library.placement.library, 20, c).await.unwrap(), 1);
    let slug = w.library.slug.clone();
    let live = |waiting, active| vec![LiveCount { library: slug.clone(), waiting, active }];
    assert_eq!(s.live_counts().await.unwrap(), live(2, 0), "for /metrics");
    // Two chats that joined in the same millisecond go by their ids.
    let d = start(s, w, None, "t4", 20).await;
    assert_eq!(s.queue_ahead(w.library.placement.library, 20, d).await.unwrap(), 2);
    s.accept(a, w.ann.clone(), ok(), 30).await.unwrap();
    assert_eq!(s.waiting().await.unwrap().iter().map(|e| e.session).collect::<Vec<_>>(), [c, d], "accepted: gone");
    assert_eq!(s.queue_ahead(w.library.placement.library, 20, c).await.unwrap(), 0);
    assert_eq!(s.queue_ahead(w.library.placement.library, 20, d).await.unwrap(), 1);
    assert_eq!(s.live_counts().await.unwrap(), live(2, 1));
    // Sent back to the queue, a chat takes its place from then, not from its start.
    let back = Handover {
        to: TransferTo::Queue { library: w.library.placement, coop_now: false, left: false },
        stay: false,
        line: system("back to the queue"),
        note: None,
    };
    s.transfer(a, w.ann.clone(), back, ok(), 35).await.unwrap();
    assert_eq!(s.queue_ahead(w.library.placement.library, 35, a).await.unwrap(), 2, "behind c and d");
    assert_eq!(s.queue_ahead(w.library.placement.library, 20, d).await.unwrap(), 1, "a is behind d now");
    // A patron ahead with no page open is not counted, until one opens.
    s.patron_away(c, Some(36)).await.unwrap();
    assert_eq!(s.queue_ahead(w.library.placement.library, 35, a).await.unwrap(), 1, "behind d alone");
    assert_eq!(s.queue_ahead(w.library.placement.library, 20, d).await.unwrap(), 0);
    s.patron_away(c, None).await.unwrap();
    assert_eq!(s.queue_ahead(w.library.placement.library, 35, a).await.unwrap(), 2, "c is back");
}

/// I6: one accept wins; R1: the question is in the patron's library,
/// answered, and live.
async fn an_accept_is_atomic_and_creates_the_question_in_the_patrons_library(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = start(s, w, Some("pat@example.org"), "t1", 10).await;
    let (rec, _) = s.accept(a, w.ann.clone(), ok(), 30).await.unwrap();
    assert_eq!(rec.ctx.librarian, Some(w.ann.id));
    assert_eq!(rec.state, SessionState::Active);
    let r = s.accept(a, w.carla.clone(), ok(), 31).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Conflict(_)))), "{r:?}");
    let q = rec.ctx.question.expect("R1: a question at acceptance");
    let question = s.question(q).await.unwrap().unwrap();
    assert_eq!(
        (question.library, question.state.status, question.live),
        (w.library.placement.library, Status::Answered, true)
    );
    assert_eq!(s.session(a).await.unwrap().unwrap().ctx.librarian, Some(w.ann.id), "the second accept changed nothing");
}

/// I6 under concurrency: of many simultaneous accepts exactly one wins.
async fn of_many_simultaneous_accepts_exactly_one_wins(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let c = start(s, w, None, "t3", 600).await;
    let accepts: Vec<_> = (0..8)
        .map(|i| {
            let (store, by) = (b.store.clone(), if i % 2 == 0 { w.ann.clone() } else { w.dev.clone() });
            tokio::spawn(async move { store.accept(c, by, ok(), 601).await.is_ok() })
        })
        .collect();
    let mut won = 0;
    for a in accepts {
        won += usize::from(a.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one accept wins");
    assert_eq!(seqs(b, c).await, [1, 2], "the question and one joined line");
}

/// A guard refusing inside the transaction changes nothing, and its
/// refusal comes back as it was given.
async fn a_guard_that_refuses_writes_nothing(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, None, "t1", 10).await;
    let before = s.messages_after(a, 0, 100).await.unwrap();
    let refused = s
        .append(
            a,
            line(staff_author(&w.ann), MessageKind::Message, "no", None),
            Box::new(|_| Err(DomainError::Forbidden("x"))),
            32,
        )
        .await;
    assert!(matches!(refused, Err(StoreError::Domain(DomainError::Forbidden("x")))), "{refused:?}");
    assert_eq!(s.messages_after(a, 0, 100).await.unwrap(), before);
}

/// A session's last sequence number and the time of its last line are its
/// last message's (read, not kept on its row): the idle check and a
/// reloaded session see each line as soon as it is stored, notes too.
async fn a_chats_last_line_and_idleness_follow_its_messages(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, None, "t1", 10).await;
    let other = chatting(s, w, None, "t2", 10).await;
    let last = |id| async move {
        let rec = s.session(id).await.unwrap().unwrap();
        (rec.last_seq, rec.last_message_at)
    };
    let joined = s.messages_after(a, 0, 100).await.unwrap().pop().unwrap();
    assert_eq!(last(a).await, (joined.seq, joined.at));
    assert_eq!(s.idle_sessions(joined.at + 1).await.unwrap(), [a, other], "both quiet since they were taken");
    assert!(s.idle_sessions(joined.at).await.unwrap().is_empty(), "idle means before `before`");
    let note = s.append(a, line(staff_author(&w.ann), MessageKind::Note, "psst", None), ok(), 500).await.unwrap();
    assert_eq!(last(a).await, (joined.seq + 1, 500), "a note is a line too");
    assert_eq!(note.message.seq, joined.seq + 1);
    assert_eq!(s.idle_sessions(400).await.unwrap(), [other], "a line written at 500 is not idle before 400");
    let hi = s.append(a, line(patron(), MessageKind::Message, "hi", Some("c1")), ok(), 600).await.unwrap();
    assert_eq!(hi.message.seq, joined.seq + 2, "the next number after the last line");
    // The lines saying the librarian's desk lost its connection and is
    // back are refdesk's: they keep no chat from its idle end.
    s.append(a, refdesk_domain::lines::librarian_gone("ANN", 2), ok(), 700).await.unwrap();
    s.append(a, refdesk_domain::lines::librarian_back("ANN"), ok(), 800).await.unwrap();
    assert_eq!(last(a).await, (joined.seq + 4, 600), "they are lines of the chat, not its last activity");
    assert_eq!(s.idle_sessions(601).await.unwrap(), [a, other], "idle since the patron's line at 600");
    assert_eq!(s.idle_sessions(600).await.unwrap(), [other]);
}

/// I3 / I4: sequence numbers strictly increase without gaps; a re-sent
/// client id is stored once — per sender.
async fn appends_are_gapless_and_a_client_id_is_stored_once_per_sender(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, None, "t1", 10).await;
    let m1 = s.append(a, line(patron(), MessageKind::Message, "hi", Some("c1")), ok(), 33).await.unwrap();
    assert!(!m1.duplicate);
    let again = s.append(a, line(patron(), MessageKind::Message, "hi", Some("c1")), ok(), 34).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message.seq, m1.message.seq);
    let note = s.append(a, line(staff_author(&w.ann), MessageKind::Note, "psst", Some("c1")), ok(), 35).await.unwrap();
    assert!(!note.duplicate, "client ids are per sender");
    let all: Vec<Message> = s.messages_after(a, 0, 100).await.unwrap();
    let seqs: Vec<u64> = all.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "gapless, in order");
    assert_eq!(seqs.len(), 4, "the question, the joined line, hi, the note");
    assert_eq!(all.last().unwrap().audience, Audience::Staff);
    assert_eq!(s.messages_after(a, 2, 100).await.unwrap().first().map(|m| m.seq), Some(3));
    assert_eq!(s.messages_after(a, 2, 1).await.unwrap().len(), 1, "at most the limit");
}

/// I3 / I4 under concurrency: simultaneous sends get gapless sequence
/// numbers, and each client id is stored once however often it is re-sent.
async fn simultaneous_sends_are_gapless_and_store_each_client_id_once(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let c = chatting(s, w, None, "t3", 600).await;
    let sends: Vec<_> = (0..40)
        .map(|i| {
            let store = b.store.clone();
            let cid = format!("c{}", i % 20);
            tokio::spawn(async move {
                store.append(c, line(patron(), MessageKind::Message, "x", Some(&cid)), ok(), 602).await.unwrap()
            })
        })
        .collect();
    let mut fresh = 0;
    for send in sends {
        fresh += usize::from(!send.await.unwrap().duplicate);
    }
    assert_eq!(fresh, 20, "one message per client id");
    assert_eq!(seqs(b, c).await, (1..=22).collect::<Vec<u64>>(), "question, joined line, then 20 gapless");
}

/// A line's number for the patron (`patron_seq`) counts the lines for
/// everyone alone, however the lines for staff fall between them (notes sent
/// at once with the patron's lines, in one batch on PostgreSQL; a colleague
/// whispering): stored, re-sent and published alike, and read back as the
/// place a patron's number stands for.
async fn a_patron_numbers_only_the_lines_they_see_without_a_gap(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, None, "t4", 700).await;
    let sends: Vec<_> = (0..30)
        .map(|i| {
            let (store, ann) = (b.store.clone(), w.ann.clone());
            tokio::spawn(async move {
                let new = match i % 3 {
                    0 => line(staff_author(&ann), MessageKind::Note, "psst", Some(&format!("n{i}"))),
                    1 => line(patron(), MessageKind::Message, "hi", Some(&format!("p{i}"))),
                    _ => line(staff_author(&ann), MessageKind::Message, "hello", Some(&format!("s{i}"))),
                };
                store.append(a, new, ok(), 702).await.unwrap().message
            })
        })
        .collect();
    let mut sent = Vec::new();
    for send in sends {
        sent.push(send.await.unwrap());
    }
    s.conference(a, w.dev.clone(), ConferenceMode::Whisper, ok(), 703).await.unwrap();
    let again = s.append(a, line(patron(), MessageKind::Message, "hi", Some("p1")), ok(), 704).await.unwrap();
    let first = sent.iter().find(|m| m.client_id.as_deref() == Some("p1")).unwrap();
    assert!(again.duplicate);
    assert_eq!((again.message.seq, again.message.patron_seq), (first.seq, first.patron_seq), "a re-send's numbers");
    s.end(a, staff_author(&w.ann), ok(), Box::new(|_, _| None), Ending::default(), 705).await.unwrap();

    let all = s.messages_after(a, 0, 1000).await.unwrap();
    assert_eq!(all.len(), 2 + 30 + 2, "question, joined, the sends, whispering, ended");
    let mut everyone = 0;
    for m in &all {
        everyone += u64::from(m.audience == Audience::Everyone);
        assert_eq!(m.patron_seq, everyone, "line {} ({:?}) counts the lines for everyone up to it", m.seq, m.kind);
    }
    assert_eq!(everyone, 2 + 20 + 1, "question, joined, the patron's and librarian's lines, ended");
    for m in &sent {
        let stored = &all[m.seq as usize - 1];
        assert_eq!((m.seq, m.patron_seq), (stored.seq, stored.patron_seq), "as the append answered");
    }
    // (Two PostgreSQL writers may publish their batches out of order.)
    let mut published: Vec<(u64, u64)> = b.sink.messages(a).iter().map(|m| (m.seq, m.patron_seq)).collect();
    published.sort_unstable();
    assert_eq!(published, all.iter().map(|m| (m.seq, m.patron_seq)).collect::<Vec<_>>(), "as published");

    assert_eq!(s.seen_by_patron(a, 0).await.unwrap(), (0, 0));
    let theirs: Vec<&Message> = all.iter().filter(|m| m.audience == Audience::Everyone).collect();
    for line in &theirs {
        assert_eq!(s.seen_by_patron(a, line.patron_seq).await.unwrap(), (line.seq, line.patron_seq), "their line");
    }
    let last = all.last().unwrap();
    for past in [everyone + 1, u64::MAX] {
        assert_eq!(s.seen_by_patron(a, past).await.unwrap(), (last.seq, last.patron_seq), "a number past the last");
    }
    // Their lines alone, from any line on, at most so many.
    for from in [0, 3, all[10].seq, last.seq] {
        let read = s.lines_for_everyone_after(a, from, 5).await.unwrap();
        let expected: Vec<&Message> = theirs.iter().copied().filter(|m| m.seq > from).take(5).collect();
        assert_eq!(read.iter().collect::<Vec<_>>(), expected, "after {from}");
    }
}

/// I2: events are published only for committed writes, once each, in
/// commit order — a refused write and a duplicate publish nothing.
async fn only_committed_messages_are_published_once_each_in_commit_order(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, Some("pat@example.org"), "t1", 10).await;
    let refused = s
        .append(a, line(patron(), MessageKind::Message, "no", None), Box::new(|_| Err(DomainError::Forbidden("x"))), 12)
        .await;
    assert!(refused.is_err());
    s.append(a, line(patron(), MessageKind::Message, "hi", Some("c1")), ok(), 13).await.unwrap();
    s.append(a, line(patron(), MessageKind::Message, "hi", Some("c1")), ok(), 14).await.unwrap();
    s.append(a, line(staff_author(&w.ann), MessageKind::Note, "psst", Some("c1")), ok(), 15).await.unwrap();
    s.conference(a, w.dev.clone(), ConferenceMode::Whisper, ok(), 16).await.unwrap();
    let handover =
        Handover { to: TransferTo::Staff(w.dev.clone()), stay: true, line: system("taken over"), note: None };
    s.transfer(a, w.dev.clone(), handover, ok(), 17).await.unwrap();
    s.leave(a, w.ann.clone(), ok(), 18).await.unwrap();
    s.end(a, staff_author(&w.dev), ok(), Box::new(|_, _| None), Ending::default(), 19).await.unwrap();

    let stored = seqs(b, a).await;
    assert_eq!(stored.len(), 8, "question, joined, hi, note, whispering, taken over, left, ended");
    assert_eq!(b.sink.message_seqs(a), stored, "each committed message published once, in order; refused ones never");
}

/// The live chats' list (the chat monitor's) carries each chat's own
/// conference members in the order they came, past the hundred chats whose
/// members are read at once.
async fn the_live_chats_carry_their_own_members_however_many_there_are(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let mut chats = Vec::new();
    for i in 0..130 {
        chats.push(chatting(s, w, None, &format!("lm{i}"), 10 + i).await);
    }
    for (i, &chat) in [chats[0], chats[99], chats[100], chats[129]].iter().enumerate() {
        s.conference(chat, w.dev.clone(), ConferenceMode::Whisper, ok(), 200 + i as i64).await.unwrap();
    }
    s.conference(chats[100], w.carla.clone(), ConferenceMode::Join, ok(), 300).await.unwrap();
    let live = s.live_seen_by(Some(ScopeLevel::Library(w.library.placement.library)), w.carla.id).await.unwrap();
    assert_eq!(live.len(), 130);
    for rec in &live {
        let members: Vec<_> = rec.ctx.members.iter().map(|m| (m.staff, m.mode)).collect();
        let want = match chats.iter().position(|&c| c == rec.ctx.id) {
            Some(0 | 99 | 129) => vec![(w.dev.id, ConferenceMode::Whisper)],
            Some(100) => vec![(w.dev.id, ConferenceMode::Whisper), (w.carla.id, ConferenceMode::Join)],
            _ => vec![],
        };
        assert_eq!(members, want, "chat {:?}", rec.ctx.id);
        assert_eq!(rec.ctx, s.session(rec.ctx.id).await.unwrap().unwrap().ctx, "as one chat's read says");
    }
}

/// The chat monitor reads the live chats of the viewer's scope and those
/// they take part in, not the rest of the service's.
async fn the_live_chats_are_read_by_scope_and_by_who_takes_part(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let active = chatting(s, w, None, "ls1", 10).await;
    let waiting = start(s, w, None, "ls2", 20).await;
    let ended = chatting(s, w, None, "ls3", 30).await;
    s.end(ended, patron(), ok(), Box::new(|_, _| None), Ending::default(), 40).await.unwrap();
    let ids = |recs: Vec<SessionRecord>| recs.iter().map(|r| r.ctx.id).collect::<Vec<_>>();
    let here = w.library.placement;
    let (main, law) = (ScopeLevel::Library(here.library), ScopeLevel::Library(w.other.placement.library));
    assert_eq!(ids(s.live_seen_by(Some(main), w.carla.id).await.unwrap()), [active, waiting], "the library's");
    assert_eq!(
        ids(s.live_seen_by(Some(ScopeLevel::Institution(here.institution)), w.dev.id).await.unwrap()),
        [active, waiting]
    );
    assert_eq!(
        ids(s.live_seen_by(Some(ScopeLevel::Cooperative(here.cooperative)), w.dev.id).await.unwrap()),
        [active, waiting]
    );
    let elsewhere = ScopeLevel::Cooperative(refdesk_domain::ids::CooperativeId(here.cooperative.0 + 1_000));
    assert!(s.live_seen_by(Some(elsewhere), w.dev.id).await.unwrap().is_empty(), "another cooperative's");
    assert!(s.live_seen_by(Some(law), w.dev.id).await.unwrap().is_empty(), "another library's");
    assert_eq!(ids(s.live_seen_by(None, w.ann.id).await.unwrap()), [active], "the chat she is the librarian of");
    assert!(s.live_seen_by(None, w.dev.id).await.unwrap().is_empty());
    s.conference(active, w.dev.clone(), ConferenceMode::Monitor, ok(), 50).await.unwrap();
    assert_eq!(ids(s.live_seen_by(Some(law), w.dev.id).await.unwrap()), [active], "a chat he conferenced into");
    assert_eq!(ids(s.live_seen_by(None, w.dev.id).await.unwrap()), [active]);
}

/// Conferencing (B2, B3): members are in the context; a change of hands
/// keeps the previous librarian as a whispering member when asked to.
async fn conference_transfer_and_leave_keep_the_librarian_and_the_members_right(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, None, "t1", 10).await;
    let rec = s.conference(a, w.dev.clone(), ConferenceMode::Whisper, ok(), 40).await.unwrap();
    assert_eq!(rec.ctx.member_mode(w.dev.id), Some(ConferenceMode::Whisper));
    let handover =
        Handover { to: TransferTo::Staff(w.dev.clone()), stay: true, line: system("taken over"), note: None };
    let rec = s.transfer(a, w.dev.clone(), handover, ok(), 41).await.unwrap();
    assert_eq!(rec.ctx.librarian, Some(w.dev.id));
    assert_eq!(rec.ctx.member_mode(w.ann.id), Some(ConferenceMode::Whisper), "the previous librarian stays");
    let rec = s.leave(a, w.ann.clone(), ok(), 42).await.unwrap();
    assert!(rec.ctx.members.is_empty(), "{:?}", rec.ctx.members);
    assert_eq!(s.session(a).await.unwrap().unwrap().ctx, rec.ctx, "as stored");
    assert_eq!(s.sessions_of(w.dev.id).await.unwrap().len(), 1);
    assert!(s.sessions_of(w.ann.id).await.unwrap().is_empty());
    let bodies: Vec<String> = s.messages_after(a, 0, 100).await.unwrap().into_iter().map(|m| m.body).collect();
    // The store words presence lines itself (refdesk_domain::lines) from how
    // the member took part; the hand-over line is the caller's.
    let whisper = refdesk_domain::lines::conference(&w.dev.display_name, None, ConferenceMode::Whisper).body;
    let left = refdesk_domain::lines::leave(&w.ann.display_name, Some(ConferenceMode::Whisper)).body;
    assert!(
        bodies.contains(&whisper) && bodies.iter().any(|l| l == "taken over") && bodies.contains(&left),
        "{bodies:?}"
    );
}

/// A hand-over to a colleague checks, inside its write, that the colleague
/// can take the chat now: one disabled or gone off duty since the caller
/// looked would hold a chat nobody answers. Nothing changes then.
async fn a_chat_goes_only_to_a_colleague_enabled_and_on_duty_when_it_is_handed_over(b: &Backend) {
    use refdesk_domain::event::Availability;
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, None, "h1", 10).await;
    let to_carla =
        || Handover { to: TransferTo::Staff(w.carla.clone()), stay: false, line: system("to Carla"), note: None };
    let refused = s.transfer(a, w.ann.clone(), to_carla(), ok(), 11).await.unwrap_err();
    assert!(matches!(refused, StoreError::Domain(DomainError::Conflict(_))), "off duty: {refused:?}");
    s.set_availability(w.carla.id, Availability::OnDuty, 12).await.unwrap();
    let update = refdesk_store::StaffUpdate {
        password_was: None,
        role: None,
        disabled: Some(true),
        password_hash: None,
        decided_on: None,
        display_name: None,
    };
    s.update_staff(w.carla.id, update).await.unwrap();
    let refused = s.transfer(a, w.ann.clone(), to_carla(), ok(), 13).await.unwrap_err();
    assert!(matches!(refused, StoreError::Domain(DomainError::Conflict(_))), "disabled: {refused:?}");
    assert_eq!(s.session(a).await.unwrap().unwrap().ctx.librarian, Some(w.ann.id), "nothing changed");
    let update = refdesk_store::StaffUpdate {
        password_was: None,
        role: None,
        disabled: Some(false),
        password_hash: None,
        decided_on: None,
        display_name: None,
    };
    s.update_staff(w.carla.id, update).await.unwrap();
    s.set_availability(w.carla.id, Availability::OnDuty, 14).await.unwrap();
    let rec = s.transfer(a, w.ann.clone(), to_carla(), ok(), 15).await.unwrap();
    assert_eq!(rec.ctx.librarian, Some(w.carla.id));
}

/// The end builds the transcript e-mail from the ended session and all its
/// messages, the end line included, and queues it in the same write.
async fn an_end_writes_the_transcript_mail_in_the_same_write(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, Some("pat@example.org"), "t1", 10).await;
    s.append(a, line(patron(), MessageKind::Message, "hi", None), ok(), 12).await.unwrap();
    s.set_transcript_to(a, Some("x@example.org".into()), Some(330), 100, 13).await.unwrap();
    s.set_transcript_to(a, None, Some(330), 100, 13).await.unwrap();
    let rec = s.session(a).await.unwrap().unwrap();
    assert_eq!((rec.transcript_to, rec.transcript_utc_offset), (None, None), "cancelled, the clock with it");
    s.set_transcript_to(a, Some("Pat@Example.org".into()), Some(-300), 100, 14).await.unwrap();
    let rec = s.session(a).await.unwrap().unwrap();
    assert_eq!((rec.transcript_to.as_deref(), rec.transcript_utc_offset), (Some("Pat@Example.org"), Some(-300)));

    // What the mail was built from, kept to look at after the end.
    type Seen = Option<(SessionRecord, Vec<Message>)>;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let keep = seen.clone();
    let mail = Box::new(move |rec: &SessionRecord, all: &[Message]| {
        *keep.lock().unwrap() = Some((rec.clone(), all.to_vec()));
        let body = all.iter().map(|m| m.body.as_str()).collect::<Vec<_>>().join("\n");
        Some(NewMail { kind: MailKind::Transcript, to: rec.transcript_to.clone()?, subject: "Your chat".into(), body })
    });
    let ended = s.end(a, patron(), ok(), mail, Ending::default(), 20).await.unwrap();

    let (rec, all) = seen.lock().unwrap().take().expect("the mail is built");
    assert_eq!(rec.state, SessionState::Ended);
    assert_eq!(all.last(), Some(&ended), "with the end line");
    assert_eq!(all, s.messages_after(a, 0, 100).await.unwrap(), "and every message before it");
    let due = s.due_mail(20, 10).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!((due[0].kind.as_str(), due[0].to.as_str()), ("transcript", "Pat@Example.org"));
    assert!(due[0].body.contains("hi") && due[0].body.ends_with(&ended.body), "{}", due[0].body);
    assert_eq!((due[0].created_at, due[0].attempts, due[0].sent_at), (20, 0, None));
}

/// The desk shows where a chat's transcript goes: each change the patron
/// makes (asked, another address, cancelled, asked after the end) writes
/// a staff-only line in the same write; the same address again writes none.
async fn what_the_patron_asks_of_the_transcript_is_told_to_staff_alone_once_per_change(b: &Backend) {
    use refdesk_domain::chat::SystemEvent;
    let (s, w) = (&*b.store, &b.w);
    let told = |all: &[Message]| -> Vec<String> {
        all.iter()
            .filter(|m| m.system == Some(SystemEvent::Transcript))
            .inspect(|m| assert_eq!((m.audience, m.kind), (Audience::Staff, MessageKind::System), "{m:?}"))
            .map(|m| m.body.clone())
            .collect()
    };
    let a = chatting(s, w, Some("pat@example.org"), "t1", 10).await;
    s.set_transcript_to(a, Some("pat@example.org".into()), Some(60), 100, 11).await.unwrap();
    s.set_transcript_to(a, Some("Pat@Example.org".into()), Some(0), 100, 12).await.unwrap();
    s.set_transcript_to(a, Some("pat@work.example".into()), None, 100, 13).await.unwrap();
    s.set_transcript_to(a, None, None, 100, 14).await.unwrap();
    s.set_transcript_to(a, None, None, 100, 15).await.unwrap();
    let all = s.messages_after(a, 0, 100).await.unwrap();
    let said = told(&all);
    assert_eq!(said.len(), 3, "asked, readdressed, cancelled; the repeats said nothing: {said:?}");
    assert!(said[0].contains("asked for the transcript") && said[2].contains("no longer"), "{said:?}");
    assert!(said.iter().all(|b| !b.contains('@')), "the address is not in the line: {said:?}");
    // A full chat takes the change, and says nothing.
    let full = all.last().unwrap().seq;
    s.set_transcript_to(a, Some("pat@example.org".into()), None, full, 16).await.unwrap();
    assert_eq!(s.session(a).await.unwrap().unwrap().transcript_to.as_deref(), Some("pat@example.org"));
    s.set_transcript_to(a, None, None, full, 17).await.unwrap();
    assert_eq!(s.messages_after(a, 0, 100).await.unwrap().len(), all.len(), "no line past the chat's room");
    // Nor in a chat nobody took yet (its desk reads where it goes at the
    // accept), nor past ten of them in one chat.
    let waiting = start(s, w, None, "t2", 10).await;
    s.set_transcript_to(waiting, Some("w@example.org".into()), None, 100, 11).await.unwrap();
    assert!(told(&s.messages_after(waiting, 0, 100).await.unwrap()).is_empty(), "a waiting chat: no line");
    let many = chatting(s, w, None, "t3", 10).await;
    for n in 0..30 {
        let to = (n % 2 == 0).then(|| "m@example.org".to_owned());
        s.set_transcript_to(many, to, None, 100, 11 + n).await.unwrap();
    }
    assert_eq!(told(&s.messages_after(many, 0, 100).await.unwrap()).len(), 10, "ten at most");
    assert_eq!(s.session(many).await.unwrap().unwrap().transcript_to, None, "each change kept");

    s.end(a, patron(), ok(), Box::new(|_, _| None), Ending::default(), 20).await.unwrap();
    let mail = Box::new(|rec: &SessionRecord, _: &[Message]| {
        Some(NewMail {
            kind: MailKind::Transcript,
            to: rec.transcript_to.clone()?,
            subject: "Chat".into(),
            body: "b".into(),
        })
    });
    s.transcript_after_end(a, "pat@example.org".into(), None, mail, None, 21).await.unwrap();
    let all = s.messages_after(a, 0, 100).await.unwrap();
    assert_eq!(told(&all).len(), 4, "and the ask after the end: {all:?}");
    assert_eq!(all.last().map(|m| m.system), Some(Some(SystemEvent::Transcript)), "after the end line");
    assert_eq!(s.due_mail(30, 10).await.unwrap().len(), 1, "the transcript is queued");
}

/// R5: a chat ends once.
async fn an_ended_chat_cannot_end_again(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, None, "t1", 10).await;
    s.end(a, staff_author(&w.ann), ok(), Box::new(|_, _| None), Ending::default(), 70).await.unwrap();
    assert_eq!(s.session(a).await.unwrap().unwrap().state, SessionState::Ended);
    let r = s.end(a, staff_author(&w.ann), ok(), Box::new(|_, _| None), Ending::default(), 71).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Conflict(_)))), "{r:?}");
    let lines = s.messages_after(a, 0, 100).await.unwrap();
    assert_eq!(lines.iter().filter(|m| m.at == 71).count(), 0, "the second end wrote nothing");
}

/// I5 / §5: the "code set" line goes out with the session as the code left
/// it. A question referred to another library and then given a plain code
/// in the chat is no longer that library's: the line's context must not
/// name it (its staff would see a staff-only line, and every later one).
async fn a_code_that_ends_a_referral_is_told_only_to_those_who_still_see_the_chat(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, None, "t1", 10).await;
    let q = s.session(a).await.unwrap().unwrap().ctx.question.unwrap();
    let other = w.other.placement.library;
    let refer: refdesk_store::Plan = Box::new(move |q, _| {
        let mut after = q.state.clone();
        after.referred_to = Some(other);
        Ok(refdesk_store::QuestionPlan { state: Some(after), ..Default::default() })
    });
    s.act_on_question(q, w.carla.clone(), refer, 20).await.unwrap();
    assert_eq!(s.session(a).await.unwrap().unwrap().ctx.referred.map(|p| p.library), Some(other));
    let chatted = w.ann.id;
    let decide: refdesk_store::Decide = Box::new(move |before, _, codes| {
        let code = codes.iter().find(|c| c.key == "answered").unwrap();
        Ok(apply_code(before, code, Some(chatted), None))
    });
    let (state, said) = s.set_code(a, "answered".into(), w.ann.clone(), ok(), decide, 30).await.unwrap();
    assert_eq!(state.referred_to, None, "a plain code ends the referral");
    let published = b.sink.message_contexts(a);
    let (_, ctx) = published.iter().find(|(seq, _)| *seq == said.seq).expect("the code line is published");
    assert_eq!(ctx.referred, None, "the code line's context is the session after the code: {ctx:?}");
    assert_eq!(ctx, &s.session(a).await.unwrap().unwrap().ctx, "as stored");
}

/// R5 / R6: once the chat has ended and its code is set, the question is
/// no longer live; the code decides its state.
async fn a_code_set_after_the_end_takes_the_question_out_of_live(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, None, "t1", 10).await;
    let q = s.session(a).await.unwrap().unwrap().ctx.question.unwrap();
    s.end(a, staff_author(&w.ann), ok(), Box::new(|_, _| None), Ending::default(), 70).await.unwrap();
    assert!(s.question(q).await.unwrap().unwrap().live, "ended, but no code yet");
    let chatted = w.ann.id;
    let decide: refdesk_store::Decide = Box::new(move |before, _, codes| {
        let code = codes.iter().find(|c| c.key == "answered").unwrap();
        Ok(apply_code(before, code, Some(chatted), None))
    });
    let (state, said) = s.set_code(a, "answered".into(), w.ann.clone(), ok(), decide, 72).await.unwrap();
    assert_eq!((state.code.as_deref(), state.assignee), (Some("answered"), Some(w.ann.id)));
    assert_eq!(said.audience, Audience::Staff, "the code is the library's business");
    let question = s.question(q).await.unwrap().unwrap();
    assert!(!question.live);
    assert_eq!(question.state, state);
    assert!(s.session(a).await.unwrap().unwrap().code_set);
}

async fn a_patrons_rating_is_kept_on_the_question(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, None, "t1", 10).await;
    let q = s.session(a).await.unwrap().unwrap().ctx.question.unwrap();
    s.end(a, patron(), ok(), Box::new(|_, _| None), Ending::default(), 70).await.unwrap();
    s.rate(a, 3, None).await.unwrap();
    s.rate(a, 5, Some("great".into())).await.unwrap();
    let question = s.question(q).await.unwrap().unwrap();
    assert_eq!((question.rating, question.rating_comment.as_deref()), (Some(5), Some("great")), "the later one");
}

/// DESIGN §9, missed chat: a patron who leaves the queue leaves a question
/// for their library if they gave an address to answer it at, and none
/// otherwise.
async fn a_patron_leaving_the_queue_leaves_a_question_only_with_an_address(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let missed = || Ending {
        missed: Some("missed".into()),
        left_words: Some("answered by e-mail (question {question})".into()),
        left_per_net_per_day: 30,
        ..Default::default()
    };
    let words = |id| async move {
        let lines = s.messages_after(id, 0, 10).await.unwrap();
        lines.into_iter().filter(|m| m.body.starts_with("answered by e-mail")).map(|m| m.body).collect::<Vec<_>>()
    };
    let bare = start(s, w, None, "t1", 10).await;
    s.end(bare, patron(), ok(), Box::new(|_, _| None), missed(), 80).await.unwrap();
    assert!(s.session(bare).await.unwrap().unwrap().ctx.question.is_none(), "no address, no question");
    assert!(words(bare).await.is_empty(), "and no promise of an answer");

    let asked = start(s, w, Some("pat@example.org"), "t2", 20).await;
    s.end(asked, patron(), ok(), Box::new(|_, _| None), missed(), 81).await.unwrap();
    let q = s.session(asked).await.unwrap().unwrap().ctx.question.expect("an address, a question");
    let told = [format!("answered by e-mail (question {})", q.0)];
    assert_eq!(words(asked).await, told, "the patron is told it will be answered, and the question's number");
    let question = s.question(q).await.unwrap().unwrap();
    assert_eq!((question.library, question.state.status), (w.library.placement.library, Status::New));
    let notes: Vec<Change> = s
        .timeline(q)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.change)
        .filter(|c| matches!(c, Change::Note { .. }))
        .collect();
    assert_eq!(notes, [Change::Note { body: "missed".into() }]);
}

/// Issue 14's drift: `set_transcript_to` treated a missing session
/// differently on each backend. A missing chat is NotFound, an ended one a
/// Conflict (its transcript has already been built), on every backend.
async fn the_transcript_address_of_a_missing_chat_is_not_found_and_of_an_ended_one_a_conflict(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let missing = SessionId(999_999);
    for to in [None, Some("a@example.org".to_owned())] {
        let r = s.set_transcript_to(missing, to, None, 100, 1).await;
        assert!(matches!(r, Err(StoreError::Domain(DomainError::NotFound(_)))), "{r:?}");
    }
    let a = start(s, w, None, "t1", 1).await;
    s.set_transcript_to(a, Some("a@example.org".into()), None, 100, 1).await.unwrap();
    s.end(a, refdesk_domain::chat::Author::System, ok(), Box::new(|_, _| None), Ending::default(), 2).await.unwrap();
    for to in [None, Some("b@example.org".to_owned())] {
        let r = s.set_transcript_to(a, to, None, 100, 3).await;
        assert!(matches!(r, Err(StoreError::Domain(DomainError::Conflict(_)))), "{r:?}");
    }
    assert_eq!(s.session(a).await.unwrap().unwrap().transcript_to.as_deref(), Some("a@example.org"), "unchanged");
}

/// Waiting chats are capped per library and per network inside the write.
async fn the_queue_caps_hold_inside_the_start(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    s.start_session(keyed(w, "q1", None, Some("net-a"), 3, 1)).await.unwrap();
    let r = s.start_session(keyed(w, "q2", None, Some("net-a"), 3, 1)).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Limited { code: "too_many_waiting", .. }))), "{r:?}");
    s.start_session(keyed(w, "q3", None, Some("net-b"), 3, 1)).await.unwrap();
    s.start_session(keyed(w, "q4", None, None, 3, 1)).await.unwrap();
    let r = s.start_session(keyed(w, "q5", None, Some("net-c"), 3, 1)).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Limited { code: "queue_full", .. }))), "{r:?}");
    assert_eq!(s.waiting().await.unwrap().len(), 3, "the refused starts left nothing");
}

/// Chats started from one network in 24 hours are capped inside the write,
/// whatever became of them (ended ones too: each is kept), and offline-form
/// questions are not counted; another network is not held back, and a day
/// after the first start the network may start again.
async fn chats_started_from_one_network_are_capped_per_day_answered_or_not(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let day = 86_400_000;
    let new = |token: &str, net: &str, now: i64| refdesk_store::NewSession {
        now,
        max_started_per_net_per_day: 2,
        ..keyed(w, token, None, Some(net), 99, 99)
    };
    // A question left with the offline form is not a chat.
    let form = refdesk_store::NewFormQuestion {
        library: w.library.placement.library,
        patron_name: None,
        patron_email: "pat@example.org".into(),
        question: "By e-mail?".into(),
        token_hash: "d0".into(),
        now: 5,
        keys: refdesk_store::PatronKeys { net: Some("net-d".into()), ..Default::default() },
        max_per_net_per_day: 99,
        max_started_in_library_per_day: u32::MAX,
    };
    s.create_form_question(form).await.unwrap();
    for (token, now) in [("d1", 10), ("d2", 20)] {
        let (rec, _) = s.start_session(new(token, "net-d", now)).await.unwrap();
        let end = s.end(
            rec.ctx.id,
            refdesk_domain::chat::Author::System,
            ok(),
            Box::new(|_, _| None),
            Ending::default(),
            now + 1,
        );
        end.await.unwrap();
    }
    let r = s.start_session(new("d3", "net-d", 30)).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Limited { code: "too_many_chats", .. }))), "{r:?}");
    assert!(s.session_by_token("d3").await.unwrap().is_none(), "the refused start left nothing");
    s.start_session(new("d4", "net-e", 30)).await.unwrap();
    let r = s.start_session(new("d5", "net-d", day + 10)).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Limited { code: "too_many_chats", .. }))), "{r:?}");
    s.start_session(new("d6", "net-d", day + 11)).await.expect("the first start is over a day old");
}

/// A conference is judged by the role the request loaded: when the
/// account's role changed since (a demotion that took it out of the chats
/// its new role does not cover), the write refuses it and writes nothing.
async fn a_conference_by_a_role_the_account_no_longer_has_is_refused_inside_its_write(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, None, "r1", 10).await;
    let stale = refdesk_domain::org::Staff { role: refdesk_domain::org::Role::CooperativeAdmin, ..w.dev.clone() };
    let r = s.conference(a, stale, ConferenceMode::Monitor, ok(), 20).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Conflict(_)))), "{r:?}");
    assert!(s.session(a).await.unwrap().unwrap().ctx.members.is_empty(), "nothing written");
    s.conference(a, w.dev.clone(), ConferenceMode::Monitor, ok(), 21).await.expect("the role it has");
}

/// An IPv6 subscriber may hold a /56 (256 /64s) or a /48 (65,536) for
/// nothing: the per-network caps on chats started in a day, chats waiting
/// and questions left count the /64's /56 (4 times the cap) and /48 (16
/// times) too. Erasing the patron's data takes the wider keys with the
/// rest.
async fn the_caps_per_network_count_an_ipv6_patrons_56_and_48_as_well_as_its_64(b: &Backend) {
    fn limited<T>(r: &Result<T, StoreError>, code: &str) -> bool {
        matches!(r, Err(StoreError::Domain(DomainError::Limited { code: c, .. })) if *c == code)
    }
    let (s, w) = (&*b.store, &b.w);
    let keys = |n64: &str, n56: &str, n48: &str| refdesk_store::PatronKeys {
        browser: None,
        net: Some(n64.into()),
        wider: [Some(n56.into()), Some(n48.into())],
    };
    let chat = |token: String, keys: refdesk_store::PatronKeys, now: i64| refdesk_store::NewSession {
        now,
        max_started_per_net_per_day: 1,
        keys,
        ..keyed(w, &token, None, None, 999, 99)
    };
    // Four /64s of one /56 take its four chats; a fifth /64 of it is refused.
    let mut first = None;
    for i in 0..4 {
        let (rec, _) = s.start_session(chat(format!("w{i}"), keys(&format!("a{i}"), "s0", "w"), 10)).await.unwrap();
        first.get_or_insert(rec.ctx.id);
    }
    let r = s.start_session(chat("w4".into(), keys("a4", "s0", "w"), 11)).await;
    assert!(limited(&r, "too_many_chats"), "the /56's day is spent: {r:?}");
    assert!(s.session_by_token("w4").await.unwrap().is_none(), "the refused start left nothing");
    // Its /48's other /56s take the rest of its sixteen, then none.
    for n56 in 1..4 {
        for i in 0..4 {
            let token = format!("w{n56}-{i}");
            s.start_session(chat(token, keys(&format!("a{n56}-{i}"), &format!("s{n56}"), "w"), 12)).await.unwrap();
        }
    }
    let r = s.start_session(chat("w5".into(), keys("a5", "s4", "w"), 13)).await;
    assert!(limited(&r, "too_many_chats"), "the /48's day is spent: {r:?}");
    s.start_session(chat("w6".into(), keys("a6", "s5", "v"), 13)).await.expect("another /48 is not held back");

    // Waiting chats: one per /64, so four per /56.
    let waiting =
        |token: String, keys| refdesk_store::NewSession { now: 20, keys, ..keyed(w, &token, None, None, 999, 1) };
    for i in 0..4 {
        s.start_session(waiting(format!("x{i}"), keys(&format!("b{i}"), "t0", "u"))).await.unwrap();
    }
    let r = s.start_session(waiting("x4".into(), keys("b4", "t0", "u"))).await;
    assert!(limited(&r, "too_many_waiting"), "the /56's waiting chats: {r:?}");

    // Questions left with the form: one a day per /64, so four per /56.
    let form = |token: String, keys| refdesk_store::NewFormQuestion {
        library: w.library.placement.library,
        patron_name: None,
        patron_email: "pat@example.org".into(),
        question: "By e-mail?".into(),
        token_hash: token,
        now: 30,
        keys,
        max_per_net_per_day: 1,
        max_started_in_library_per_day: u32::MAX,
    };
    for i in 0..4 {
        s.create_form_question(form(format!("f{i}"), keys(&format!("c{i}"), "r0", "q"))).await.unwrap();
    }
    let r = s.create_form_question(form("f4".into(), keys("c4", "r0", "q"))).await;
    assert!(limited(&r, "too_many_questions"), "the /56's questions: {r:?}");

    // Erased, a chat keeps none of its networks.
    let id = first.unwrap();
    s.end(id, refdesk_domain::chat::Author::System, ok(), Box::new(|_, _| None), Ending::default(), 40).await.unwrap();
    assert_eq!(b.session_networks(id).await, [Some("a0".into()), Some("s0".into()), Some("w".into())]);
    let why = refdesk_store::ErasureReason::Request(w.carla.id);
    s.erase(vec![id], refdesk_domain::privacy::Transcripts::Mask, why, 41).await.unwrap();
    assert_eq!(b.session_networks(id).await, [None, None, None], "erased with the rest");
}

/// The background round finds the chats that waited too long by their ids,
/// longest waiting first, a round's worth at most; taken ones are not among
/// them.
async fn chats_waiting_too_long_are_found_longest_waiting_first_a_round_at_a_time(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let first = start(s, w, None, "x1", 10).await;
    let taken = start(s, w, None, "x2", 20).await;
    let third = start(s, w, None, "x3", 30).await;
    s.accept(taken, w.ann.clone(), ok(), 40).await.unwrap();
    assert_eq!(s.expired_waiting(25, 10).await.unwrap(), vec![first], "entered their queue before 25");
    assert_eq!(
        s.expired_waiting(100, 10).await.unwrap(),
        vec![first, third],
        "longest waiting first, not the taken one"
    );
    assert_eq!(s.expired_waiting(100, 1).await.unwrap(), vec![first], "a round's worth at most");
    assert!(s.expired_waiting(10, 10).await.unwrap().is_empty(), "none entered before 10");
}

/// Chats nobody accepted and offline-form questions started at one library
/// in 24 hours are capped together inside the write, whatever network each
/// came from; chats a librarian took do not count; another library is not
/// held back, and a day on the library takes more.
async fn chats_and_questions_started_at_one_library_are_capped_per_day_from_every_network(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let day = 86_400_000;
    let chat = |token: &str, net: &str, now: i64| refdesk_store::NewSession {
        now,
        max_started_in_library_per_day: 3,
        ..keyed(w, token, None, Some(net), 99, 99)
    };
    let form = |token: &str, net: &str, now: i64| refdesk_store::NewFormQuestion {
        library: w.library.placement.library,
        patron_name: None,
        patron_email: "pat@example.org".into(),
        question: "By e-mail?".into(),
        token_hash: token.into(),
        now,
        keys: refdesk_store::PatronKeys { net: Some(net.into()), ..Default::default() },
        max_per_net_per_day: 99,
        max_started_in_library_per_day: 3,
    };
    let (taken, _) = s.start_session(chat("l0", "net-l0", 5)).await.unwrap();
    s.accept(taken.ctx.id, w.ann.clone(), ok(), 6).await.unwrap();
    s.start_session(chat("l1", "net-l1", 10)).await.unwrap();
    s.create_form_question(form("l2", "net-l2", 20)).await.unwrap();
    s.start_session(chat("l3", "net-l3", 30)).await.expect("the chat a librarian took does not count");
    let r = s.start_session(chat("l4", "net-l4", 40)).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Limited { code: "too_many_today", .. }))), "{r:?}");
    assert!(s.session_by_token("l4").await.unwrap().is_none(), "the refused start left nothing");
    let r = s.create_form_question(form("l5", "net-l5", 50)).await;
    assert!(matches!(r, Err(StoreError::Domain(DomainError::Limited { code: "too_many_today", .. }))), "{r:?}");
    assert!(s.session_by_token("l5").await.unwrap().is_none(), "the refused question left nothing");
    let elsewhere = refdesk_store::NewSession { library: w.other.placement.library, ..chat("l6", "net-l6", 60) };
    s.start_session(elsewhere).await.expect("another library has its own day");
    s.start_session(chat("l7", "net-l7", day + 11)).await.expect("the first start is over a day old");
}

/// Chats started at once may each pass the per-address count at their start;
/// the end counts again, in its write: past the cap no transcript is queued,
/// in whatever letter case the address was typed. Another address is not
/// held back.
async fn transcripts_to_one_address_are_capped_at_the_end_whatever_the_starts_let_through(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let mail = || {
        Box::new(|rec: &SessionRecord, _: &[Message]| {
            Some(NewMail {
                kind: MailKind::Transcript,
                to: rec.transcript_to.clone()?,
                subject: "Chat".into(),
                body: "b".into(),
            })
        })
    };
    let capped = || Ending { transcripts_per_recipient_per_day: Some(1), ..Ending::default() };
    let mut chats = Vec::new();
    for (token, to) in [("m1", "victim@example.org"), ("m2", "VICTIM@example.org"), ("m3", "other@example.org")] {
        let id = chatting(s, w, None, token, 10).await;
        s.set_transcript_to(id, Some(to.into()), None, 100, 11).await.unwrap();
        chats.push(id);
    }
    for (n, id) in chats.into_iter().enumerate() {
        s.end(id, patron(), ok(), mail(), capped(), 20 + n as i64).await.unwrap();
    }
    let due = s.due_mail(30, 10).await.unwrap();
    let mut to: Vec<&str> = due.iter().map(|m| m.to.as_str()).collect();
    to.sort_unstable();
    assert_eq!(to, ["other@example.org", "victim@example.org"], "one transcript to the victim, not two");
}

/// An expiring chat's last words and end are one write; a chat that already
/// has a question keeps it, with the missed-chat note.
async fn an_ending_writes_its_last_words_and_keeps_a_question(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, Some("pat@example.org"), "e1", 1).await;
    let handover = Handover {
        to: TransferTo::Queue { library: w.library.placement, coop_now: false, left: false },
        stay: false,
        line: system("back to the queue"),
        note: None,
    };
    s.transfer(a, w.ann.clone(), handover, ok(), 3).await.unwrap();
    let ending = Ending {
        missed: Some("Missed chat: nobody".into()),
        left_per_net_per_day: 30,
        last_words: Some("Sorry".into()),
        ..Default::default()
    };
    s.end(a, refdesk_domain::chat::Author::System, ok(), Box::new(|_, _| None), ending, 4).await.unwrap();
    let lines = s.messages_after(a, 0, 100).await.unwrap();
    let n = lines.len();
    assert_eq!(lines[n - 2].body, "Sorry", "the last words, then the end line");
    assert_eq!(lines[n - 2].audience, Audience::Everyone);
    let q = s.session(a).await.unwrap().unwrap().ctx.question.expect("its question stays");
    let notes = s.timeline(q).await.unwrap().into_iter().filter(|t| matches!(t.change, Change::Note { .. })).count();
    assert_eq!(notes, 1);
    assert!(s.due_mail(i64::MAX, 10).await.unwrap().is_empty(), "no transcript was asked");
}

/// A live chat whose librarian no node has seen since `gone_before` (but
/// since the sign-off's limit) is found to tell its patron, and told once
/// whichever node tries; once the librarian is seen again it is found to
/// say they are back, once. A chat that changes hands is told of its new
/// librarian only.
async fn a_live_chats_patron_is_told_once_that_its_librarians_desk_is_gone_and_once_that_they_are_back(b: &Backend) {
    const LINES: u64 = 2_000;
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, None, "t1", 10).await;
    s.touch(vec![w.ann.id], 100).await.unwrap();
    let ann = |last_seen, gone| LibrarianToTell {
        session: a,
        staff: w.ann.id,
        name: w.ann.display_name.clone(),
        last_seen,
        gone,
    };
    assert!(s.librarians_to_tell(100, 0, 10).await.unwrap().is_empty(), "seen at the limit: not gone");
    assert_eq!(s.librarians_to_tell(101, 0, 10).await.unwrap(), [ann(100, true)]);
    assert!(s.librarians_to_tell(101, 101, 10).await.unwrap().is_empty(), "past the sign-off: handed back instead");
    assert!(
        !s.tell_librarian_desk(a, w.ann.id, DeskNews::Gone { not_seen_since: 100 }, system("gone"), LINES, 120)
            .await
            .unwrap(),
        "seen since"
    );
    assert!(s
        .tell_librarian_desk(a, w.ann.id, DeskNews::Gone { not_seen_since: 101 }, system("gone"), LINES, 120)
        .await
        .unwrap());
    assert!(
        !s.tell_librarian_desk(a, w.ann.id, DeskNews::Gone { not_seen_since: 101 }, system("gone"), LINES, 121)
            .await
            .unwrap(),
        "told once"
    );
    assert!(s.librarians_to_tell(130, 0, 10).await.unwrap().is_empty(), "told");
    assert!(!s.tell_librarian_desk(a, w.ann.id, DeskNews::Back, system("back"), LINES, 130).await.unwrap(), "not back");
    s.touch(vec![w.ann.id], 140).await.unwrap();
    assert_eq!(s.librarians_to_tell(130, 0, 10).await.unwrap(), [ann(140, false)]);
    assert!(s.tell_librarian_desk(a, w.ann.id, DeskNews::Back, system("back"), LINES, 141).await.unwrap());
    assert!(
        !s.tell_librarian_desk(a, w.ann.id, DeskNews::Back, system("back"), LINES, 142).await.unwrap(),
        "told once"
    );
    assert!(s.librarians_to_tell(130, 0, 10).await.unwrap().is_empty(), "back and told");
    let bodies: Vec<String> = s.messages_after(a, 0, 100).await.unwrap().into_iter().map(|m| m.body).collect();
    assert_eq!(bodies[bodies.len() - 2..], ["gone", "back"]);

    // Gone again, told, then handed to Dev: the mark goes with Ann, and
    // Ann's desk is nothing to the chat's patron now.
    assert!(s
        .tell_librarian_desk(a, w.ann.id, DeskNews::Gone { not_seen_since: 141 }, system("gone again"), LINES, 200)
        .await
        .unwrap());
    let handover =
        Handover { to: TransferTo::Staff(w.dev.clone()), stay: false, line: system("taken over"), note: None };
    s.transfer(a, w.dev.clone(), handover, ok(), 201).await.unwrap();
    s.touch(vec![w.ann.id, w.dev.id], 300).await.unwrap();
    assert!(s.librarians_to_tell(250, 0, 10).await.unwrap().is_empty(), "nobody to say is back");
    assert!(
        !s.tell_librarian_desk(a, w.ann.id, DeskNews::Back, system("back"), LINES, 301).await.unwrap(),
        "not Ann's chat"
    );
    assert_eq!(s.librarians_to_tell(301, 0, 10).await.unwrap().len(), 1, "Dev's desk, if gone, is told");
    // An ended chat is nobody's to tell of.
    s.end(a, staff_author(&w.dev), ok(), Box::new(|_, _| None), Ending::default(), 302).await.unwrap();
    assert!(s.librarians_to_tell(301, 0, 10).await.unwrap().is_empty());

    // A chat at its line cap is told nothing more (a desk that drops and
    // comes back again and again fills no chat): two lines, a cap of two.
    let full = chatting(s, w, None, "t2", 400).await;
    let gone = DeskNews::Gone { not_seen_since: 1_000 };
    assert!(!s.tell_librarian_desk(full, w.ann.id, gone, system("gone"), 2, 500).await.unwrap(), "full");
    assert!(s.tell_librarian_desk(full, w.ann.id, gone, system("gone"), 3, 500).await.unwrap());
}

/// A newer release beside this one (an upgrade under way) may write system
/// lines of a kind this one does not know: the chat still reads, the line
/// with its text and no kind, and the lines around it as they are.
async fn a_line_of_a_system_kind_a_later_release_wrote_reads_as_a_line_without_one(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let id = chatting(s, w, None, "t1", 10).await;
    let line = |body: &str| crate::support::line(patron(), MessageKind::Message, body, None);
    s.append(id, line("before"), ok(), 20).await.unwrap();
    let mut news = system("Ann (librarian) did something new");
    news.system = Some(refdesk_domain::chat::SystemEvent::Presence);
    let seq = s.append(id, news, ok(), 21).await.unwrap().message.seq;
    s.append(id, line("after"), ok(), 22).await.unwrap();
    b.set_system_kind(id, seq, "a_kind_of_a_later_release").await;
    let read = s.messages_after(id, 0, 100).await.unwrap();
    let new = read.iter().find(|m| m.seq == seq).unwrap();
    assert_eq!((new.body.as_str(), new.system), ("Ann (librarian) did something new", None));
    let bodies: Vec<_> = read.iter().map(|m| m.body.as_str()).collect();
    assert!(bodies.ends_with(&["before", "Ann (librarian) did something new", "after"]), "{bodies:?}");
}
