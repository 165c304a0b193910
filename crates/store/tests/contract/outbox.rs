//! The outbox: e-mail queued with its cause, claimed by one mailer at a
//! time, retried after a failure, sent once.

use crate::support::{chatting, system, Backend};
use refdesk_domain::question::Change;
use refdesk_store::{MailKind, NewMail, OutboxStats, QuestionPlan};

on_every_backend!(an_outbox_mail_is_claimed_by_one_mailer_retried_and_sent_once);

/// Due, claimed (and so not due for another mailer until the lease runs
/// out), failed with a retry time, then sent once.
async fn an_outbox_mail_is_claimed_by_one_mailer_retried_and_sent_once(b: &Backend) {
    let (s, w) = (&*b.store, &b.w);
    assert_eq!(s.next_mail_due().await.unwrap(), None);
    assert_eq!(s.outbox_stats().await.unwrap(), OutboxStats { unsent: 0, oldest_queued_at: None });
    let a = chatting(s, w, Some("pat@example.org"), "t1", 10).await;
    let q = s.session(a).await.unwrap().unwrap().ctx.question.unwrap();
    let plan: refdesk_store::Plan = Box::new(|_, _| {
        Ok(QuestionPlan {
            entries: vec![Change::Note { body: "answered by mail".into() }],
            line: Some(system("answered by mail")),
            mail: Some(answer_mail()),
            ..QuestionPlan::default()
        })
    });
    let mail = s.act_on_question(q, w.carla.clone(), plan, 50).await.unwrap().mail.expect("queued with the action");

    assert_eq!(s.due_mail(50, 10).await.unwrap().len(), 1);
    assert_eq!(s.due_mail(50, 10).await.unwrap().len(), 1, "looking changes nothing");
    let queued = s.mail(mail).await.unwrap().unwrap().created_at;
    let waiting = OutboxStats { unsent: 1, oldest_queued_at: Some(queued) };
    assert_eq!(s.outbox_stats().await.unwrap(), waiting, "for /metrics");
    assert_eq!(s.claim_mail(50, 10, 55).await.unwrap().iter().map(|m| m.id).collect::<Vec<_>>(), [mail]);
    assert!(s.claim_mail(54, 10, 100).await.unwrap().is_empty(), "claimed: not due for another mailer");
    assert_eq!(s.next_mail_due().await.unwrap(), Some(55), "due again when the claim runs out");
    s.mail_failed(mail, "down", 60).await.unwrap();
    assert_eq!(s.outbox_stats().await.unwrap(), waiting, "a failed e-mail is still unsent");
    assert!(s.due_mail(59, 10).await.unwrap().is_empty());
    assert_eq!(s.next_mail_due().await.unwrap(), Some(60));
    assert_eq!(s.mail(mail).await.unwrap().unwrap().last_error.as_deref(), Some("down"));
    assert_eq!(s.claim_mail(60, 10, 65).await.unwrap().len(), 1, "due again at the retry time");
    s.mail_sent(mail, 61).await.unwrap();
    assert!(s.due_mail(i64::MAX, 10).await.unwrap().is_empty());
    assert_eq!(s.next_mail_due().await.unwrap(), None);
    assert_eq!(s.outbox_stats().await.unwrap().unsent, 0);
    let sent = s.mail(mail).await.unwrap().unwrap();
    assert_eq!((sent.attempts, sent.sent_at), (2, Some(61)));

    // A delivered e-mail is forgotten once past the time it is kept; one
    // not delivered never is.
    let other = s.act_on_question(q, w.carla.clone(), answer(), 70).await.unwrap().mail.unwrap();
    assert_eq!(s.forget_sent_mail(61, 10).await.unwrap(), 0, "delivered at 61: not before it");
    assert_eq!(s.forget_sent_mail(i64::MAX, 10).await.unwrap(), 1);
    assert!(s.mail(mail).await.unwrap().is_none(), "forgotten");
    assert!(s.mail(other).await.unwrap().is_some(), "not delivered: kept");
}

fn answer() -> refdesk_store::Plan {
    Box::new(|_, _| Ok(QuestionPlan { mail: Some(answer_mail()), ..QuestionPlan::default() }))
}

fn answer_mail() -> NewMail {
    NewMail { kind: MailKind::Answer, to: "pat@example.org".into(), subject: "s".into(), body: "b".into() }
}
