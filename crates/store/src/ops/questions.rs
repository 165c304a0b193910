//! The question list: questions, their actions and timelines.

use super::{quiet, Backend};
use crate::api::Questions;
use crate::sql::rows::*;
use crate::sql::select::{self as sel, question_query};
use crate::sql::{args, int, Db};
use crate::{
    Acted, NewFormQuestion, Plan, QuestionPlan, QuestionQuery, QuestionRecord, Result, SessionRecord, TimelineEntry,
};
use async_trait::async_trait;
use refdesk_domain::event::Event;
use refdesk_domain::ids::{QuestionId, SessionId};
use refdesk_domain::org::Staff;
use refdesk_domain::question::{question_on_accept, Change, QuestionState, Status};
use refdesk_domain::report::DAY;
use refdesk_domain::{DomainError, Millis};

fn forms_full() -> DomainError {
    DomainError::Limited {
        code: "too_many_questions",
        reason: "too many questions have been sent from your network today; please try again tomorrow".into(),
    }
}

/// A question from the offline form: an ended session holding its one
/// line, and a `new` question nobody is assigned. Bounded per network and
/// day, counted inside the write (a lock per network on PostgreSQL).
async fn create_form_question<D: Db>(db: &mut D, new: NewFormQuestion) -> Result<QuestionRecord> {
    // The library's row lock orders its starts and questions (as in `start`).
    let lock = format!("SELECT id AS library_id FROM libraries WHERE id = ?1{}", db.dialect().no_key_update());
    db.row(&lock, args![new.library.0], |r| r.int("library_id")).await?.ok_or(not_found("library"))?;
    let today = int(db, sel::STARTED_IN_LIBRARY, args![new.library.0, new.now - DAY], "n").await?;
    if today >= i64::from(new.max_started_in_library_per_day) {
        return Err(super::chats::library_spent().into());
    }
    if !super::chats::may_leave_from(db, &new.keys, new.max_per_net_per_day, new.now).await? {
        return Err(forms_full().into());
    }
    let [net56, net48] = &new.keys.wider;
    let session = int(
        db,
        "INSERT INTO sessions (library_id, token_hash, state, patron_name, patron_email, question_text, created_at,
           ended_at, queued_at, browser_key, net_key, net56_key, net48_key, by_form)
         VALUES (?1, ?2, 'ended', ?3, ?4, ?5, ?6, ?6, ?6, ?7, ?8, ?9, ?10, TRUE) RETURNING id AS session_id",
        args![
            new.library.0,
            &new.token_hash,
            &new.patron_name,
            &new.patron_email,
            &new.question,
            new.now,
            &new.keys.browser,
            &new.keys.net,
            net56,
            net48
        ],
        "session_id",
    )
    .await
    .map_err(|e| if e.is_not_found() { not_found("library") } else { e })?;
    let rec = load_session(db, SessionId(session)).await?;
    insert_first_line(db, &rec, &new.question, new.now).await?;
    // The form question has no chat to wait for: it is not live, and "new"
    // says it needs work (DESIGN §9).
    let state = QuestionState { status: Status::New, ..question_on_accept() };
    let q = insert_question(db, &rec, &new.question, &state, None, new.now).await?;
    question_where(db, q).await
}

/// Words (a note, an answer, a message to the librarian) and e-mails are
/// refused on a question whose patron's data was erased: an erasure masks
/// once, and retention and a request by address pass over an erased chat,
/// so what was written after it (a name, an address an answer went to)
/// would be kept for good. Its code, status and owner may still change.
async fn refuse_words_once_erased<D: Db>(db: &mut D, session: &SessionRecord, plan: &QuestionPlan) -> Result<()> {
    let words = plan.mail.is_some()
        || plan
            .entries
            .iter()
            .any(|c| matches!(c, Change::Note { .. } | Change::Answer { .. } | Change::LibrarianMessage { .. }));
    if !words {
        return Ok(());
    }
    let erased = db
        .row("SELECT erased_at AS erased_at FROM sessions WHERE id = ?1", args![session.ctx.id.0], |r| {
            r.opt_int("erased_at")
        })
        .await?
        .flatten();
    if erased.is_some() {
        let why = "this question's personal data was erased: nothing more can be written on it or e-mailed from it";
        return Err(DomainError::Conflict(why.into()).into());
    }
    Ok(())
}

/// Applies a question-list action: the plan is decided on the question and
/// its session as they are inside the write.
async fn act<D: Db>(db: &mut D, id: QuestionId, by: Staff, plan: Plan, now: Millis) -> Result<(Acted, Vec<Event>)> {
    let session = db
        .row("SELECT session_id AS session_id FROM questions WHERE id = ?1", args![id.0], |r| r.int("session_id"))
        .await?
        .ok_or(not_found("question"))?;
    let session = lock_session(db, SessionId(session)).await?;
    let question = question_where(db, id).await?;
    let before = question.state.clone();
    let plan = plan(&question, &session)?;
    refuse_words_once_erased(db, &session, &plan).await?;
    if let (Some(mail), Some(max)) = (&plan.mail, plan.mails_per_recipient_per_day) {
        let key = refdesk_domain::input::mailbox_key(&mail.to);
        db.lock(&format!("mail:{key}")).await?;
        let sent = int(db, sel::MAILS_TO, args![mail.kind.as_str(), &key, now - DAY], "n").await?;
        if sent >= i64::from(max) {
            let reason = format!("{sent} e-mails have gone to {} in the last 24 hours; try again tomorrow", mail.to);
            return Err(DomainError::Limited { code: "too_many_mails", reason }.into());
        }
    }
    if let (Some(_), Some(max)) = (&plan.mail, plan.mails_per_sender_per_day) {
        db.lock(&format!("sender:{}", by.id.0)).await?;
        let sent = int(db, sel::MAILS_SENT_BY, args![by.id.0, now - DAY], "n").await?;
        if sent >= i64::from(max) {
            let reason = format!("you have e-mailed {sent} answers in the last 24 hours; try again tomorrow");
            return Err(DomainError::Limited { code: "too_many_mails", reason }.into());
        }
    }
    let adds = plan.state.as_ref().is_some_and(|after| *after != before) || !plan.entries.is_empty();
    if let Some(most) = plan.timeline_most.filter(|_| adds) {
        let held = int(db, sel::TIMELINE_ENTRIES, args![id.0], "n").await?;
        if held >= i64::from(most) {
            let reason = format!("this question's history is full ({held} entries): nothing more can be added to it");
            return Err(DomainError::Limited { code: "question_full", reason }.into());
        }
    }
    if let Some(after) = &plan.state {
        write_question_state(db, id, &before, after, &by, now).await?;
    }
    for entry in &plan.entries {
        insert_timeline(db, id, now, Some(&by), entry).await?;
    }
    let mut events = Vec::new();
    let line = match plan.line {
        Some(line) => {
            let message = insert_message(db, &session, line, now).await?;
            events.push(Event::Message { ctx: session.ctx.clone(), message: message.clone() });
            Some(message)
        }
        None => None,
    };
    let mail = match &plan.mail {
        Some(m) => Some(insert_mail(db, m, (Some(id), Some(session.ctx.id)), Some(by.id), now).await?),
        None => None,
    };
    let question = question_where(db, id).await?;
    Ok((Acted { question, line, mail }, events))
}

/// A page of the question list.
async fn list(db: &mut impl Db, query: QuestionQuery) -> Result<Vec<QuestionRecord>> {
    let (sql, args) = question_query(&query, db.dialect());
    db.rows(&sql, &args, sel::question).await
}

#[async_trait]
impl<B: Backend> Questions for B {
    async fn create_form_question(&self, new: NewFormQuestion) -> Result<QuestionRecord> {
        self.write(move |db| Box::pin(quiet(create_form_question(db, new)))).await
    }

    async fn questions(&self, query: QuestionQuery) -> Result<Vec<QuestionRecord>> {
        // A search by words reads every transcript in range: a long read.
        if query.text.is_some() {
            self.read_long(move |db| Box::pin(list(db, query))).await
        } else {
            self.read(move |db| Box::pin(list(db, query))).await
        }
    }

    async fn act_on_question(&self, id: QuestionId, by: Staff, plan: Plan, now: Millis) -> Result<Acted> {
        self.write(move |db| Box::pin(act(db, id, by, plan, now))).await
    }

    async fn question(&self, id: QuestionId) -> Result<Option<QuestionRecord>> {
        self.read(move |db| {
            Box::pin(async move {
                match question_where(db, id).await {
                    Ok(q) => Ok(Some(q)),
                    Err(e) if e.is_not_found() => Ok(None),
                    Err(e) => Err(e),
                }
            })
        })
        .await
    }

    async fn timeline_page(&self, id: QuestionId, after: u64, limit: u32) -> Result<Vec<TimelineEntry>> {
        let after = after.min(i64::MAX as u64) as i64;
        self.read(move |db| {
            Box::pin(
                async move { db.rows(sel::TIMELINE_SELECT, args![id.0, i64::from(limit), after], sel::timeline).await },
            )
        })
        .await
    }
}
