//! Questions: the actions of the question list and the list itself.

use crate::support::{chatting, line, ok, staff_author, system, Backend};
use refdesk_domain::actions::View;
use refdesk_domain::chat::ConferenceMode;
use refdesk_domain::chat::MessageKind;
use refdesk_domain::ids::LibraryId;
use refdesk_domain::ids::{QuestionId, SessionId, StaffId};
use refdesk_domain::org::{Placement, Role};
use refdesk_domain::question::QuestionState;
use refdesk_domain::question::{Change, Status};
use refdesk_store::{
    Handover, MailKind, NewMail, NewStaff, PastEnd, PastSession, QuestionPlan, QuestionQuery, QuestionRecord,
    QuestionScope, ScopeLevel, TransferTo,
};

on_every_backend!(
    a_question_list_action_writes_its_state_timeline_line_and_mail_at_once,
    the_question_list_keeps_to_its_scope_and_view_and_searches_transcripts,
    mails_to_one_address_are_capped_per_day_inside_the_actions_write,
    mails_from_one_staff_member_are_capped_per_day_whatever_the_addresses,
    an_action_adding_to_a_full_timeline_is_refused_inside_its_write_and_writes_nothing,
    every_view_of_the_question_list_is_what_its_definition_says_in_every_scope_and_filter,
    a_page_of_a_timeline_is_the_entries_after_the_first_so_many,
);

/// A note under a cap of `most` timeline entries.
fn note_within(most: u32) -> refdesk_store::Plan {
    Box::new(move |_, _| {
        let entries = vec![Change::Note { body: "again".into() }];
        Ok(QuestionPlan { entries, timeline_most: Some(most), ..QuestionPlan::default() })
    })
}

/// `timeline_most` is counted inside the action's write: an action that
/// would add to a timeline holding that many entries is refused
/// (`question_full`) with nothing written; under a higher cap it goes.
async fn an_action_adding_to_a_full_timeline_is_refused_inside_its_write_and_writes_nothing(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, None, "f1", 10).await;
    let q = question_of(b, a).await;
    let held = s.timeline(q).await.unwrap().len() as u32;
    s.act_on_question(q, w.carla.clone(), note_within(held + 2), 20).await.unwrap();
    s.act_on_question(q, w.carla.clone(), note_within(held + 2), 21).await.unwrap();
    let r = s.act_on_question(q, w.carla.clone(), note_within(held + 2), 22).await;
    let full = matches!(
        &r,
        Err(refdesk_store::StoreError::Domain(refdesk_domain::DomainError::Limited { code: "question_full", .. }))
    );
    assert!(full, "{r:?}");
    assert_eq!(s.timeline(q).await.unwrap().len() as u32, held + 2, "nothing written");
    s.act_on_question(q, w.carla.clone(), note_within(held + 3), 23).await.expect("under a higher cap");
}

/// `timeline_page(id, after, limit)`: the entries after the first `after`,
/// at most `limit`, in the order the whole timeline has them.
async fn a_page_of_a_timeline_is_the_entries_after_the_first_so_many(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, None, "p1", 10).await;
    let q = question_of(b, a).await;
    for at in 20..27 {
        s.act_on_question(q, w.carla.clone(), note_within(1_000), at).await.unwrap();
    }
    let whole = s.timeline(q).await.unwrap();
    assert!(whole.len() >= 7, "{whole:?}");
    let at = |t: &[refdesk_store::TimelineEntry]| t.iter().map(|e| (e.at, e.change.kind())).collect::<Vec<_>>();
    for (after, limit) in
        [(0, 3), (3, 3), (2, 100), (whole.len() as u64 - 1, 5), (whole.len() as u64, 5), (u64::MAX, 1)]
    {
        let page = s.timeline_page(q, after, limit).await.unwrap();
        let from = (after as usize).min(whole.len());
        let expected = &whole[from..(from + limit as usize).min(whole.len())];
        assert_eq!(at(&page), at(expected), "after {after}, at most {limit}");
    }
}

/// Closes the chat's question from the question list, with a note, a line
/// in the chat and an e-mail to the patron.
fn close_with_mail() -> refdesk_store::Plan {
    mail_to("pat@example.org", None)
}

/// [`close_with_mail`] to `to`, under a cap of mails to it per day.
fn mail_to(to: &str, cap: Option<u32>) -> refdesk_store::Plan {
    mail_capped(to, (cap, None))
}

/// [`close_with_mail`] to `to`, under caps of mails to it and from the
/// acting staff member per day.
fn mail_capped(to: &str, (per_recipient, per_sender): (Option<u32>, Option<u32>)) -> refdesk_store::Plan {
    let to = to.to_owned();
    Box::new(move |q, _| {
        let mut after = q.state.clone();
        after.status = Status::Closed;
        Ok(QuestionPlan {
            state: Some(after),
            entries: vec![Change::Note { body: "closing".into() }],
            line: Some(system("closed")),
            mail: Some(NewMail { kind: MailKind::Answer, to, subject: "s".into(), body: "b".into() }),
            mails_per_recipient_per_day: per_recipient,
            mails_per_sender_per_day: per_sender,
            timeline_most: None,
        })
    })
}

async fn question_of(b: &Backend, id: SessionId) -> QuestionId {
    b.store.session(id).await.unwrap().unwrap().ctx.question.unwrap()
}

/// R4 / R6 / R7: a question-list action writes the new state, a timeline
/// entry for every change, a line in the live chat and an e-mail, at once.
async fn a_question_list_action_writes_its_state_timeline_line_and_mail_at_once(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, Some("pat@example.org"), "t1", 10).await;
    // Handed to Dev, on duty (a chat goes to no one else).
    s.set_availability(w.dev.id, refdesk_domain::event::Availability::OnDuty, 40).await.unwrap();
    let handover =
        Handover { to: TransferTo::Staff(w.dev.clone()), stay: false, line: system("taken over"), note: None };
    s.transfer(a, w.ann.clone(), handover, ok(), 41).await.unwrap();
    let q = question_of(b, a).await;

    let acted = s.act_on_question(q, w.carla.clone(), close_with_mail(), 50).await.unwrap();
    assert_eq!(acted.question.state.status, Status::Closed);
    assert_eq!(s.question(q).await.unwrap().unwrap().state.status, Status::Closed, "as stored");
    let kinds: Vec<&str> = s.timeline(q).await.unwrap().iter().map(|t| t.change.kind()).collect();
    assert!(kinds.contains(&"status") && kinds.contains(&"note") && kinds.contains(&"librarian"), "{kinds:?}");
    let said = acted.line.expect("a line in the live chat");
    assert_eq!(s.messages_after(a, 0, 100).await.unwrap().last(), Some(&said));
    assert_eq!(said.body, "closed");
    let mail = s.mail(acted.mail.expect("queued with the action")).await.unwrap().unwrap();
    assert_eq!((mail.kind.as_str(), mail.to.as_str(), mail.created_at), ("answer", "pat@example.org", 50));
}

/// The question list: a role's scope, the views, and a search that reaches
/// the transcript (staff notes included: the list is for staff).
async fn the_question_list_keeps_to_its_scope_and_view_and_searches_transcripts(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, Some("pat@example.org"), "t1", 10).await;
    s.append(a, line(staff_author(&w.ann), MessageKind::Note, "psst", None), ok(), 20).await.unwrap();
    let q = question_of(b, a).await;
    s.act_on_question(q, w.carla.clone(), close_with_mail(), 50).await.unwrap();

    let query = |covers, view| {
        QuestionQuery::page(QuestionScope { covers, participant: StaffId(0), chatted_since: 0 }, view, 50)
    };
    let found = s.questions(query(ScopeLevel::Library(w.library.placement.library), View::Closed)).await.unwrap();
    assert_eq!(found.iter().map(|q| q.id).collect::<Vec<_>>(), [q]);
    assert!(s.questions(query(ScopeLevel::Library(w.other.placement.library), View::All)).await.unwrap().is_empty());
    let mut search = query(ScopeLevel::Institution(w.library.placement.institution), View::All);
    search.text = Some("psst".into());
    assert_eq!(s.questions(search.clone()).await.unwrap().len(), 1, "search reaches the transcript");
    search.text = Some("nowhere in it".into());
    assert!(s.questions(search.clone()).await.unwrap().is_empty());
    // In any letter case, whatever the script (SQLite's LIKE folds ASCII
    // letters only; PostgreSQL's ILIKE folds by the database's locale, a
    // UTF-8 one here).
    s.append(a, line(staff_author(&w.ann), MessageKind::Note, "Волга, Ελλάδα, Straße", None), ok(), 30).await.unwrap();
    for words in ["ВОЛГА", "волга", "ΕΛΛΆΔΑ", "STRAßE", "PSST", "\u{413}\u{410}, \u{395}\u{39b}\u{39b}"]
    {
        search.text = Some(words.into());
        assert_eq!(s.questions(search.clone()).await.unwrap().len(), 1, "{words}");
    }
}

/// Past the cap of mails to one address (in any letter case) in 24 hours,
/// the action is refused and changes nothing; a day later it goes.
async fn mails_to_one_address_are_capped_per_day_inside_the_actions_write(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, Some("pat@example.org"), "t1", 10).await;
    let q = question_of(b, a).await;
    let day = 86_400_000;
    for at in [50, 60] {
        s.act_on_question(q, w.carla.clone(), mail_to("pat@example.org", Some(2)), at).await.unwrap();
    }
    let (timeline, lines) = (s.timeline(q).await.unwrap().len(), s.messages_after(a, 0, 100).await.unwrap().len());
    refused_too_many_mails(s.act_on_question(q, w.carla.clone(), mail_to("PAT@Example.org", Some(2)), 70).await);
    assert_eq!(s.timeline(q).await.unwrap().len(), timeline, "nothing written");
    assert_eq!(s.messages_after(a, 0, 100).await.unwrap().len(), lines, "no line");
    s.act_on_question(q, w.carla.clone(), mail_to("other@example.org", Some(2)), 71).await.expect("another address");
    s.act_on_question(q, w.carla.clone(), mail_to("pat@example.org", None), 72).await.expect("no cap, no count");
    s.act_on_question(q, w.carla.clone(), mail_to("pat@example.org", Some(2)), 73 + day).await.expect("a day later");
}

/// An action refused for the mails already sent (`too_many_mails`).
fn refused_too_many_mails<T: std::fmt::Debug>(refused: refdesk_store::Result<T>) {
    assert!(
        matches!(
            &refused,
            Err(refdesk_store::StoreError::Domain(refdesk_domain::DomainError::Limited { code: "too_many_mails", .. }))
        ),
        "{refused:?}"
    );
}

/// Past the cap of mails one staff member queued from the question list in
/// 24 hours, to any addresses, the action is refused and changes nothing;
/// a colleague has their own count; a day later it goes.
async fn mails_from_one_staff_member_are_capped_per_day_whatever_the_addresses(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let a = chatting(s, w, Some("pat@example.org"), "t1", 10).await;
    let q = question_of(b, a).await;
    let day = 86_400_000;
    for (at, to) in [(50, "one@example.org"), (60, "two@example.org")] {
        s.act_on_question(q, w.carla.clone(), mail_capped(to, (None, Some(2))), at).await.unwrap();
    }
    let timeline = s.timeline(q).await.unwrap().len();
    let refused = s.act_on_question(q, w.carla.clone(), mail_capped("three@example.org", (None, Some(2))), 70).await;
    refused_too_many_mails(refused);
    assert_eq!(s.timeline(q).await.unwrap().len(), timeline, "nothing written");
    s.act_on_question(q, w.ann.clone(), mail_capped("three@example.org", (None, Some(2))), 71)
        .await
        .expect("a colleague");
    let later =
        s.act_on_question(q, w.carla.clone(), mail_capped("three@example.org", (None, Some(2))), 72 + day).await;
    later.expect("a day later");
}

/// Whether `r` is in `scope` (DESIGN §2): a question of a library it
/// covers, one referred to such a library, or one its person chatted in.
fn in_scope(r: &QuestionRecord, scope: &QuestionScope, ended_at: Option<refdesk_domain::Millis>) -> bool {
    let covers = |p: &Placement| match scope.covers {
        ScopeLevel::Library(l) => p.library == l,
        ScopeLevel::Institution(i) => p.institution == i,
        ScopeLevel::Cooperative(c) => p.cooperative == c,
    };
    let chatted = r.librarian == Some(scope.participant) && ended_at.is_none_or(|at| at >= scope.chatted_since);
    covers(&r.placement) || r.referred.as_ref().is_some_and(covers) || chatted
}

/// Whether `r` is in `view`, as the menu describes each.
fn in_view(r: &QuestionRecord, view: View, me: StaffId) -> bool {
    let (st, mine) = (r.state.status, r.state.assignee == Some(me));
    match view {
        View::MyNew => mine && st == Status::New,
        View::MyActive => mine && st != Status::Closed,
        View::New => st == Status::New,
        View::Unassigned => r.state.assignee.is_none() && matches!(st, Status::New | Status::Pending),
        View::Active => st != Status::Closed,
        View::Answered => st == Status::Answered,
        View::Closed => st == Status::Closed,
        View::Pending => st == Status::Pending,
        View::Referred => r.state.referred_to.is_some(),
        View::FollowUp => r.state.follow_up && matches!(r.state.status, Status::New | Status::Pending),
        View::All => true,
        View::Live => r.live,
    }
}

/// Every view in every scope (a library, an institution, a cooperative,
/// for a person who chatted in questions of other libraries or none), with
/// each filter and paging, lists exactly the questions its definition
/// picks, newest first: the views of work to do are read through their own
/// indexes, and Live in two arms (its uncoded questions, and those of chats
/// not ended), which must add up to the same list.
async fn every_view_of_the_question_list_is_what_its_definition_says_in_every_scope_and_filter(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    let coop = w.library.placement.cooperative;
    let far_inst = s.create_institution(coop, "Far").await.unwrap();
    let far = s.create_library(far_inst, "far", "Far").await.unwrap();
    let away_coop = s.create_cooperative("Away", refdesk_domain::question::default_codes()).await.unwrap();
    let away_inst = s.create_institution(away_coop, "Away").await.unwrap();
    let away = s.create_library(away_inst, "away", "Away").await.unwrap();
    let eve = NewStaff {
        library: far.placement.library,
        username: "eve".into(),
        display_name: "Eve".into(),
        role: Role::Librarian,
        password_hash: "hash".into(),
    };
    let eve = s.create_staff(eve).await.unwrap();
    let libraries = [&w.library, &w.other, &far, &away].map(|l| l.placement);
    let staff = [w.ann.id, w.carla.id, w.dev.id, eve];
    let codes = [None, Some("answered"), Some("referred"), Some("lost_call"), Some("follow_up_by_me")];
    let words = ["alpha", "beta", "gamma"];

    // A small generator (a linear congruential one): the same history on every backend.
    let mut seed = 0x2545_f491_u64;
    let mut next = move |n: usize| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) % n as u64) as usize
    };
    let mut past = Vec::new();
    for k in 0..160i64 {
        let library = libraries[next(4)].library;
        let at = 1_000_000 + k * 1_000;
        let accepted = (next(5) > 0).then(|| (staff[next(4)], at + 10));
        let state = QuestionState {
            status: Status::ALL[next(4)],
            code: codes[next(5)].map(str::to_owned),
            assignee: (next(2) == 0).then(|| staff[next(4)]),
            follow_up: next(4) == 0,
            referred_to: (next(3) == 0).then(|| libraries[next(4)].library),
            ..refdesk_domain::question::question_on_accept()
        };
        past.push(PastSession {
            library,
            token_hash: format!("past-{k}"),
            patron_name: None,
            patron_email: None,
            question_text: format!("question {k} about {}", words[next(3)]),
            by_form: accepted.is_none(),
            created_at: at,
            accepted,
            ended_at: at + 500,
            ended_by: Some(PastEnd::Patron),
            handovers: 0,
            rating: None,
            members: accepted.map(|(by, at)| (by, ConferenceMode::Monitor, at)).into_iter().collect(),
            question: Some((at + 10, state)),
        });
    }
    assert_eq!(s.import_history(past).await.unwrap(), 160);
    // An imported chat's question is its first line, and its patron's.
    let first = s.messages_after(refdesk_domain::ids::SessionId(1), 0, 10).await.unwrap();
    assert_eq!(first.iter().map(|m| (m.seq, m.patron_seq)).collect::<Vec<_>>(), [(1, 1)]);
    // Live chats: two under way with no code, one with a code (live until it ends).
    let mut live = Vec::new();
    for token in ["live-1", "live-2", "live-3"] {
        live.push(question_of(b, chatting(s, w, None, token, 2_000_000).await).await);
    }
    let coded = Box::new(|q: &QuestionRecord, _: &_| {
        let mut after = q.state.clone();
        after.code = Some("answered".into());
        Ok(QuestionPlan { state: Some(after), ..QuestionPlan::default() })
    });
    s.act_on_question(live[2], w.ann.clone(), coded, 2_000_100).await.unwrap();

    let query = |covers, participant, view| {
        QuestionQuery::page(QuestionScope { covers, participant, chatted_since: 0 }, view, 1_000)
    };
    let mut every = Vec::new();
    for c in [coop, away_coop] {
        every.extend(s.questions(query(ScopeLevel::Cooperative(c), StaffId(0), View::All)).await.unwrap());
    }
    // (One referred to the other cooperative is in both lists.)
    every.sort_by_key(|r| std::cmp::Reverse(r.id));
    every.dedup_by_key(|r| r.id);
    assert_eq!(every.len(), 163, "every question is in its cooperative's list");
    let ended = |r: &&QuestionRecord| r.session_state == refdesk_domain::chat::SessionState::Ended;
    assert!(every.iter().filter(ended).any(|r| r.live), "an ended chat with no code is still live");
    assert!(every.iter().filter(ended).any(|r| !r.live && r.librarian.is_some()), "one coded is not");

    let scopes = [
        ScopeLevel::Library(w.library.placement.library),
        ScopeLevel::Library(far.placement.library),
        ScopeLevel::Institution(w.library.placement.institution),
        ScopeLevel::Institution(far_inst),
        ScopeLevel::Cooperative(coop),
        ScopeLevel::Cooperative(away_coop),
    ];
    let middle = every.iter().map(|r| r.id).max().unwrap().0 - 60;
    // The librarian who chatted for another library lists its question
    // while the chat goes on and for a while after its end: half the past
    // chats ended before this.
    let cut = 1_080_000;
    let mut ended_at = std::collections::HashMap::new();
    for r in &every {
        ended_at.insert(r.id, s.session(r.session).await.unwrap().unwrap().ended_at);
    }
    type Filter = (&'static str, fn(&mut QuestionQuery, QuestionId, LibraryId, StaffId));
    let filters: [Filter; 9] = [
        ("none", |_, _, _, _| {}),
        ("status new", |q, _, _, _| q.status = Some(Status::New)),
        ("status answered", |q, _, _, _| q.status = Some(Status::Answered)),
        ("code", |q, _, _, _| q.code = Some("answered".into())),
        ("librarian", |q, _, _, me| q.librarian = Some(me)),
        ("library", |q, _, l, _| q.library = Some(l)),
        ("dates", |q, _, _, _| (q.from, q.to) = (Some(1_040_000), Some(1_120_000))),
        ("before", |q, middle, _, _| q.before = Some(middle)),
        ("words", |q, _, _, _| q.text = Some("ALP".into())),
    ];
    let mut checked = 0;
    for covers in scopes {
        for me in [w.ann.id, eve] {
            for view in View::ALL {
                for (name, set) in &filters {
                    for limit in [3, 1_000] {
                        let mut q = query(covers, me, view);
                        q.limit = limit;
                        q.scope.chatted_since = if limit == 3 { 0 } else { cut };
                        set(&mut q, QuestionId(middle), w.library.placement.library, me);
                        let want: Vec<QuestionId> = every
                            .iter()
                            .filter(|r| in_scope(r, &q.scope, ended_at[&r.id]) && in_view(r, view, me))
                            .filter(|r| q.status.is_none_or(|st| r.state.status == st))
                            .filter(|r| q.code.as_ref().is_none_or(|c| r.state.code.as_ref() == Some(c)))
                            .filter(|r| {
                                q.from.is_none_or(|t| r.created_at >= t) && q.to.is_none_or(|t| r.created_at < t)
                            })
                            .filter(|r| q.librarian.is_none_or(|l| r.librarian == Some(l)))
                            .filter(|r| q.library.is_none_or(|l| r.library == l))
                            .filter(|r| q.before.is_none_or(|b| r.id < b))
                            .filter(|r| q.text.is_none() || r.text.contains("alpha"))
                            .map(|r| r.id)
                            .take(limit as usize)
                            .collect();
                        let got: Vec<QuestionId> = s.questions(q).await.unwrap().iter().map(|r| r.id).collect();
                        assert_eq!(got, want, "{covers:?}, staff {me:?}, view {view:?}, filter {name}, limit {limit}");
                        checked += usize::from(!want.is_empty());
                    }
                }
            }
        }
    }
    assert!(checked > 500, "most cases list something: {checked}");
    // The cut leaves out some of Eve's chats for other libraries, and keeps others.
    let far_scope = ScopeLevel::Library(far.placement.library);
    let mut all = query(far_scope, eve, View::All);
    let before: Vec<_> = s.questions(all.clone()).await.unwrap().iter().map(|r| r.id).collect();
    all.scope.chatted_since = cut;
    let after: Vec<_> = s.questions(all).await.unwrap().iter().map(|r| r.id).collect();
    let chats_elsewhere = |ids: &[QuestionId]| {
        ids.iter().filter(|id| every.iter().any(|r| r.id == **id && r.library != far.placement.library)).count()
    };
    assert!(
        chats_elsewhere(&after) > 0 && chats_elsewhere(&after) < chats_elsewhere(&before),
        "{} of {} chats for other libraries listed after the cut",
        chats_elsewhere(&after),
        chats_elsewhere(&before)
    );
}
