//! Questions: the actions of the question list and the list itself.

use crate::support::{chatting, line, ok, staff_author, system, Backend};
use refdesk_domain::actions::View;
use refdesk_domain::chat::MessageKind;
use refdesk_domain::ids::{QuestionId, SessionId, StaffId};
use refdesk_domain::question::{Change, Status};
use refdesk_store::{Handover, MailKind, NewMail, QuestionPlan, QuestionQuery, QuestionScope, ScopeLevel, TransferTo};

on_every_backend!(
    a_question_list_action_writes_its_state_timeline_line_and_mail_at_once,
    the_question_list_keeps_to_its_scope_and_view_and_searches_transcripts,
    mails_to_one_address_are_capped_per_day_inside_the_actions_write,
    an_action_adding_to_a_full_timeline_is_refused_inside_its_write_and_writes_nothing,
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

/// Closes the chat's question from the question list, with a note, a line
/// in the chat and an e-mail to the patron.
fn close_with_mail() -> refdesk_store::Plan {
    mail_to("pat@example.org", None)
}

/// [`close_with_mail`] to `to`, under a cap of mails to it per day.
fn mail_to(to: &str, cap: Option<u32>) -> refdesk_store::Plan {
    let to = to.to_owned();
    Box::new(move |q, _| {
        let mut after = q.state.clone();
        after.status = Status::Closed;
        Ok(QuestionPlan {
            state: Some(after),
            entries: vec![Change::Note { body: "closing".into() }],
            line: Some(system("closed")),
            mail: Some(NewMail { kind: MailKind::Answer, to, subject: "s".into(), body: "b".into() }),
            mails_per_recipient_per_day: cap,
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
    let handover = Handover { to: TransferTo::Staff(w.dev.clone()), stay: false, line: system("taken over") };
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

    let query = |covers, view| QuestionQuery {
        scope: QuestionScope { covers, participant: StaffId(0) },
        view,
        status: None,
        code: None,
        from: None,
        to: None,
        librarian: None,
        library: None,
        text: None,
        before: None,
        limit: 50,
    };
    let found = s.questions(query(ScopeLevel::Library(w.library.placement.library), View::Closed)).await.unwrap();
    assert_eq!(found.iter().map(|q| q.id).collect::<Vec<_>>(), [q]);
    assert!(s.questions(query(ScopeLevel::Library(w.other.placement.library), View::All)).await.unwrap().is_empty());
    let mut search = query(ScopeLevel::Institution(w.library.placement.institution), View::All);
    search.text = Some("psst".into());
    assert_eq!(s.questions(search.clone()).await.unwrap().len(), 1, "search reaches the transcript");
    search.text = Some("nowhere in it".into());
    assert!(s.questions(search).await.unwrap().is_empty());
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
    let refused = s.act_on_question(q, w.carla.clone(), mail_to("PAT@Example.org", Some(2)), 70).await;
    assert!(
        matches!(
            &refused,
            Err(refdesk_store::StoreError::Domain(refdesk_domain::DomainError::Limited { code: "too_many_mails", .. }))
        ),
        "{refused:?}"
    );
    assert_eq!(s.timeline(q).await.unwrap().len(), timeline, "nothing written");
    assert_eq!(s.messages_after(a, 0, 100).await.unwrap().len(), lines, "no line");
    s.act_on_question(q, w.carla.clone(), mail_to("other@example.org", Some(2)), 71).await.expect("another address");
    s.act_on_question(q, w.carla.clone(), mail_to("pat@example.org", None), 72).await.expect("no cap, no count");
    s.act_on_question(q, w.carla.clone(), mail_to("pat@example.org", Some(2)), 73 + day).await.expect("a day later");
}
