//! The question list and its actions (R2, R4, R7, B1). Each action is
//! decided inside the store's transaction on the question as it is then:
//! scope (I5), the live-chat confirmation (B1), the rule (R4), the line in
//! the live chat, the timeline entries (R7) and the e-mail, all or nothing.

use crate::mail::answer_mail;
use crate::{App, AppResult};
use refdesk_domain::actions::{self, check_confirmation, ChatLine, View};
use refdesk_domain::authz::{
    authorize, authorize_question, authorize_question_work, Action, Standing, Target, Work, WRAP_UP_MS,
};
use refdesk_domain::chat::{Author, Message};
use refdesk_domain::ids::{LibraryId, QuestionId, StaffId};
use refdesk_domain::input::Body;
use refdesk_domain::org::{Placement, Staff};
use refdesk_domain::question::{apply_code, Change, Channel, ResolutionCode, Status};
use refdesk_domain::visibility::{transcript, Viewer};
use refdesk_domain::{DomainError, Millis};
use refdesk_store::{
    Erasure, NewMessage, QuestionPlan, QuestionQuery, QuestionRecord, QuestionScope, ScopeLevel, SessionRecord,
    TimelineEntry,
};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Filters of the question list, already parsed.
#[derive(Clone, Debug)]
pub struct ListFilter {
    /// Which view (default: all).
    pub view: View,
    /// Only this status.
    pub status: Option<Status>,
    /// Only this code.
    pub code: Option<String>,
    /// Created at or after.
    pub from: Option<Millis>,
    /// Created before.
    pub to: Option<Millis>,
    /// Chatted by this librarian.
    pub librarian: Option<StaffId>,
    /// Owned by this library (slug).
    pub library: Option<String>,
    /// Came this way (a chat taken, missed or abandoned, the form).
    pub channel: Option<Channel>,
    /// Words in the question or its transcript.
    pub text: Option<String>,
    /// Paging: older than this question.
    pub before: Option<QuestionId>,
    /// Page size (1–200).
    pub limit: u32,
}

impl Default for ListFilter {
    fn default() -> Self {
        ListFilter {
            view: View::All,
            status: None,
            code: None,
            from: None,
            to: None,
            librarian: None,
            library: None,
            channel: None,
            text: None,
            before: None,
            limit: 50,
        }
    }
}

/// What a question-list action does.
#[derive(Clone, Debug)]
pub enum QuestionAction {
    /// Send an answer: e-mailed (to `email`, else the patron's address) and,
    /// while live, shown in the chat.
    Answer {
        /// The answer.
        body: String,
        /// Send to this address instead of the patron's.
        email: Option<String>,
    },
    /// Add a librarian note.
    Note {
        /// The note.
        body: String,
    },
    /// Send a message to the chatting librarian (live chats only).
    MessageLibrarian {
        /// The message.
        body: String,
    },
    /// Close the question.
    Close,
    /// Reopen a closed question.
    Reopen,
    /// Assign to a colleague (or nobody).
    Assign {
        /// The new owner.
        to: Option<StaffId>,
    },
    /// Take the question yourself.
    Claim,
    /// Refer to another library of the cooperative.
    Refer {
        /// Its slug.
        library: String,
    },
    /// Set or change the resolution code.
    SetCode {
        /// The code's key.
        code: String,
        /// For `referred`: the receiving library's slug.
        library: Option<String>,
        /// The effort on the READ scale (1–6), if recorded; kept otherwise.
        read_scale: Option<u8>,
    },
}

/// The outcome of an action, with a sentence for the person who acted.
#[derive(Clone, Debug, Serialize)]
pub struct ActOutcome {
    /// The question after the action.
    pub question: QuestionRecord,
    /// The line written into the live chat, if any.
    pub chat_line: Option<Message>,
    /// The address the answer was e-mailed to, if any.
    pub emailed_to: Option<String>,
    /// What happened, in words (e.g. "shown in the chat only").
    pub notice: Option<String>,
}

/// A question as staff see it: the record, its transcript and its timeline.
#[derive(Clone, Debug, Serialize)]
pub struct QuestionDetail {
    /// The question.
    pub question: QuestionRecord,
    /// The messages staff may see, notes included: the first page of the
    /// chat ([`crate::chat::STAFF_PAGE_LINES`], [`crate::chat::STAFF_PAGE_BYTES`]).
    pub transcript: Vec<Message>,
    /// Whether the chat goes on past `transcript` (the rest is read a page
    /// at a time, after its last line).
    pub transcript_more: bool,
    /// A page of its timeline (R7), oldest first: the entries after the
    /// first `timeline_after` asked for, at most [`TIMELINE_PAGE_ENTRIES`],
    /// cut before the entry that takes their text past
    /// [`TIMELINE_PAGE_BYTES`].
    pub timeline: Vec<TimelineEntry>,
    /// Whether the timeline goes on past `timeline` (read a page at a time).
    pub timeline_more: bool,
    /// The e-mail address the patron gave, if any: for following the
    /// question up (the page is staff-only, like every question record).
    pub patron_email: Option<String>,
    /// When, why and by whom its patron's personal data was erased, if it was.
    pub erasure: Option<Erasure>,
}

/// A question's page holds at most this many entries of its timeline, and
/// stops before the entry that would take their text past
/// [`TIMELINE_PAGE_BYTES`] (the first is kept whatever its length): a
/// timeline of `max_question_entries` of the longest notes (500 of 16 KB,
/// 8 MB) is read a page at a time, not built whole on every look, and a
/// page that follows a live question asks only for the entries after those
/// it shows.
pub const TIMELINE_PAGE_ENTRIES: u32 = 100;
/// See [`TIMELINE_PAGE_ENTRIES`].
pub const TIMELINE_PAGE_BYTES: usize = 256 * 1024;

/// Cuts `entries` (read one past [`TIMELINE_PAGE_ENTRIES`]) to a page;
/// whether more follow.
fn timeline_page(entries: &mut Vec<TimelineEntry>) -> bool {
    let mut text = 0;
    let over = entries.iter().position(|t| {
        text += t.change.text_len() + t.actor_name.len();
        text > TIMELINE_PAGE_BYTES
    });
    let kept = over.map_or(entries.len(), |i| i.max(1)).min(TIMELINE_PAGE_ENTRIES as usize);
    let more = kept < entries.len();
    entries.truncate(kept);
    more
}

fn line(staff: &Staff, l: ChatLine, system: bool) -> NewMessage {
    let author = if system { Author::System } else { Author::Staff { id: staff.id, name: staff.display_name.clone() } };
    NewMessage { author, kind: l.kind, audience: l.audience, body: l.body, client_id: None, system: None }
}

impl App {
    /// The question list in this staff member's scope, newest first (R2: live
    /// questions are in it, marked live — B1).
    pub async fn question_list(&self, staff: &Staff, f: ListFilter) -> AppResult<Vec<QuestionRecord>> {
        self.list_questions(staff, f, false).await
    }

    /// A page of an export of the question list ([`App::question_list`]):
    /// a long read, in the staff member's own line whatever the filter (an
    /// export reads page after page as fast as its client takes them).
    pub async fn question_export_page(&self, staff: &Staff, f: ListFilter) -> AppResult<Vec<QuestionRecord>> {
        self.list_questions(staff, f, true).await
    }

    async fn list_questions(&self, staff: &Staff, f: ListFilter, long: bool) -> AppResult<Vec<QuestionRecord>> {
        // Another cooperative's library would list nothing: refused as an
        // unknown one is, as the reports refuse one outside their scope.
        const UNKNOWN: &str = "no such library in your cooperative";
        let library = match &f.library {
            Some(slug) => {
                let lib = self.library(slug).await.map_err(|e| e.missing_is_invalid("library", UNKNOWN))?;
                if lib.placement.cooperative != staff.home.cooperative {
                    return Err(DomainError::invalid("library", UNKNOWN).into());
                }
                Some(lib.placement.library)
            }
            None => None,
        };
        // An unknown code would match nothing: say so rather than list nothing.
        if let Some(code) = &f.code {
            if !self.codes(staff).await?.iter().any(|c| c.key == *code) {
                return Err(DomainError::invalid("code", "no such resolution code in your cooperative").into());
            }
        }
        let text = f.text.as_deref().map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned);
        if text.as_ref().is_some_and(|t| t.chars().count() > 200) {
            return Err(DomainError::invalid("q", "search for at most 200 characters").into());
        }
        if let (Some(from), Some(to)) = (f.from, f.to) {
            if from > to {
                return Err(DomainError::invalid("from", "the start of the date range is after its end").into());
            }
        }
        let query = QuestionQuery {
            scope: QuestionScope {
                covers: ScopeLevel::of(staff),
                participant: staff.id,
                chatted_since: self.clock.now().saturating_sub(WRAP_UP_MS),
            },
            view: f.view,
            status: f.status,
            code: f.code,
            from: f.from,
            to: f.to,
            librarian: f.librarian,
            library,
            channel: f.channel,
            text,
            before: f.before,
            limit: f.limit.clamp(1, 200),
        };
        // A search by words is a long read, and so is a channel (no index
        // has it: a channel none of the scope's questions came by reads them
        // all, ~0.6 s for a year of a large cooperative): in this staff
        // member's own line.
        let long = long || query.text.is_some() || query.channel.is_some();
        let _turn = if long { Some(self.long_reads.turn(staff.id).await) } else { None };
        Ok(self.store.questions(query).await?)
    }

    /// One question with a page of its transcript (the lines after
    /// `after`) and its timeline, as staff see it.
    pub async fn question(
        &self,
        staff: &Staff,
        id: QuestionId,
        after: u64,
        timeline_after: u64,
    ) -> AppResult<QuestionDetail> {
        let first = self.store.question(id).await?.ok_or(DomainError::NotFound("question"))?;
        authorize_question(staff, &first.placement, first.referred.as_ref(), first.librarian)?;
        // The lines and the timeline first, then the question and the session
        // again: what judges them is at least as new as all they hold (a
        // referral or a change of hands after them is in it).
        let (all, transcript_more) = self.staff_page(first.session, after).await?;
        let mut timeline = self.store.timeline_page(id, timeline_after, TIMELINE_PAGE_ENTRIES + 1).await?;
        let timeline_more = timeline_page(&mut timeline);
        let question = self.store.question(id).await?.ok_or(DomainError::NotFound("question"))?;
        let standing = authorize_question(staff, &question.placement, question.referred.as_ref(), question.librarian)?;
        let session = self.store.session(question.session).await?.ok_or(DomainError::NotFound("session"))?;
        authorize_question_work(standing, Work::Read, session.ended_at, self.clock.now())?;
        // Staff see notes; the visibility function still decides.
        let viewer = Viewer::Staff(staff.clone());
        let mut visible: Vec<Message> = transcript(&viewer, &session.ctx, &all).cloned().collect();
        let transcript_more =
            crate::chat::within_budget(&mut visible, crate::chat::STAFF_PAGE_BYTES).is_some() || transcript_more;
        let erasure = if question.erased { self.store.erasure_of(question.session).await? } else { None };
        Ok(QuestionDetail {
            question,
            transcript: visible,
            transcript_more,
            timeline,
            timeline_more,
            patron_email: session.patron_email,
            erasure,
        })
    }

    /// Acts on a question. On a live question `confirm_live` must be true
    /// (B1); on a question that is no longer live it must be false — a stale
    /// confirmation changes nothing.
    pub async fn act(
        &self,
        staff: &Staff,
        id: QuestionId,
        action: QuestionAction,
        confirm_live: bool,
    ) -> AppResult<ActOutcome> {
        // Everything that needs input parsing or another lookup happens here,
        // before the transaction; the rule itself (`decide`) runs inside it,
        // on the question and its session as they are there.
        // Words (an answer, a note, a message to the librarian) count among
        // the day's lines of their writer, as those written at the desk do.
        let words = matches!(
            action,
            QuestionAction::Answer { .. } | QuestionAction::Note { .. } | QuestionAction::MessageLibrarian { .. }
        );
        let prepared = self.prepare(staff, id, action).await?;
        let receiving = prepared.receiving;
        let me = staff.clone();
        let per_recipient = Some(self.limits.answers_per_recipient_per_day);
        let per_sender = Some(self.limits.answers_per_staff_per_day);
        let most = self.staff_lines_most();
        let entries = self.limits.max_question_entries;
        let coding = matches!(prepared.action, QuestionAction::SetCode { .. });
        // Every action counts in the day's lines (each writes an entry in
        // the history, some a line in the chat): a stolen sign-in toggling
        // an assignment or a claim on every question it reaches would
        // otherwise write a row each time, all day. Past the count, words
        // are refused at once; another action inside the write, unless it
        // is the chat's first code or closes an open question (below).
        let now = self.clock.now();
        let counted = self.written.take(staff.id, self.limits.staff_lines_per_day, now);
        let spent = match counted {
            Err(spent) if words => return Err(spent.into()),
            Err(ref spent) => Some(spent.clone()),
            Ok(()) => None,
        };
        // Whether a code flags the question for follow-up by its library
        // (it was not): that library's desks are told once it commits.
        let flagged = Arc::new(AtomicBool::new(false));
        let flags = flagged.clone();
        let plan: refdesk_store::Plan = Box::new(move |q, session| {
            let plan = decide(&me, prepared, confirm_live, q, session, now)?;
            flags.store(!q.state.follow_up && plan.state.as_ref().is_some_and(|s| s.follow_up), Ordering::Relaxed);
            // A line into a live chat from the question list counts like
            // one from the desk: no chat grows without bound. The chat's
            // first code is never refused (`App::line_guard`).
            let first_code = coding && !session.code_set;
            if plan.line.is_some() && !first_code {
                refdesk_domain::chat::staff_may_add_a_line(session.last_seq, most)?;
            }
            // Words alone (a note, a message to the librarian) stop at the
            // cap; what moves the question on may add a hundred more; closing
            // it always goes (a reopening, which must come before another
            // close, is refused in turn).
            let words_alone = plan.state.is_none() && plan.mail.is_none();
            let closing =
                plan.state.as_ref().is_some_and(|s| s.status == Status::Closed) && q.state.status != Status::Closed;
            if let Some(spent) = spent.filter(|_| !first_code && !closing) {
                return Err(spent);
            }
            let timeline_most = match (closing, words_alone) {
                (true, _) => None,
                (false, true) => Some(entries),
                (false, false) => Some(entries.saturating_add(100)),
            };
            Ok(refdesk_store::QuestionPlan {
                mails_per_recipient_per_day: per_recipient,
                mails_per_sender_per_day: per_sender,
                timeline_most,
                ..plan
            })
        });
        let acted = self.store.act_on_question(id, staff.clone(), plan, now).await;
        if counted.is_ok() && acted.is_err() {
            self.written.give_back(staff.id, now);
        }
        self.after_acting(staff, receiving, flagged.load(Ordering::Relaxed), acted?).await
    }

    /// Tells the desks of a question's own library that a code flagged it
    /// for their follow-up (once committed: nothing is announced that could
    /// roll back), as a referral is told to the receiving library's.
    pub(crate) fn tell_follow_up(&self, staff: &Staff, q: &refdesk_store::QuestionRecord) {
        self.bus.publish_ephemeral(refdesk_domain::event::Event::Referred {
            question: q.id,
            to: q.placement,
            library_name: q.library_name.clone(),
            text: q.text.chars().take(200).collect(),
            by: staff.display_name.clone(),
            by_id: Some(staff.id),
            follow_up: true,
        });
    }

    /// Parses an action's input and looks up what it names.
    async fn prepare(&self, staff: &Staff, id: QuestionId, action: QuestionAction) -> AppResult<Prepared> {
        let max = self.limits.max_message_chars;
        let parse_body = |b: &str| Body::parse(b, max).map(Body::into_string);
        let mut prepared = Prepared {
            action: QuestionAction::Close,
            receiving: None,
            receiving_name: None,
            assignee: None,
            codes: Vec::new(),
            chatter: None,
        };
        prepared.action = match action {
            QuestionAction::Answer { body, email } => {
                let email = crate::mail::email_address(email.as_deref())?;
                QuestionAction::Answer { body: parse_body(&body)?, email }
            }
            QuestionAction::Note { body } => QuestionAction::Note { body: parse_body(&body)? },
            QuestionAction::MessageLibrarian { body } => QuestionAction::MessageLibrarian { body: parse_body(&body)? },
            QuestionAction::Assign { to: Some(to) } => {
                let colleagues = self.store.staff_of(staff.home.cooperative).await?;
                let enabled = colleagues.into_iter().find(|e| e.staff.id == to && !e.disabled);
                prepared.assignee = Some(enabled.ok_or(DomainError::invalid("to", "no such staff member"))?.staff);
                QuestionAction::Assign { to: Some(to) }
            }
            QuestionAction::Refer { library } => {
                let (to, placement, name) = self.receiving(&library).await?;
                prepared.receiving = Some((to, placement));
                prepared.receiving_name = Some(name);
                QuestionAction::Refer { library }
            }
            QuestionAction::SetCode { code, library, read_scale } => {
                if let Some(slug) = &library {
                    let (to, placement, _) = self.receiving(slug).await?;
                    prepared.receiving = Some((to, placement));
                }
                let q = self.store.question(id).await?.ok_or(DomainError::NotFound("question"))?;
                prepared.codes = self.store.codes(q.placement.cooperative).await?;
                prepared.chatter = self.chatter_in_scope(q.librarian, &q.placement, q.referred.as_ref()).await?;
                QuestionAction::SetCode { code, library, read_scale }
            }
            other => other,
        };
        Ok(prepared)
    }

    /// The chatting librarian, if their role's scope holds the question
    /// (`authorize_question`): a code that gives the question to them
    /// ("Answered", "Follow-up by me") gives it to nobody otherwise — a
    /// librarian who chatted for the cooperative reads it for a day only,
    /// and a follow-up left with them would be no one's after (it waits,
    /// unassigned, for its library's staff).
    pub(crate) async fn chatter_in_scope(
        &self,
        chatter: Option<StaffId>,
        owner: &Placement,
        referred: Option<&Placement>,
    ) -> AppResult<Option<StaffId>> {
        let Some(id) = chatter else { return Ok(None) };
        let Some(staff) = self.store.staff_by_id(id).await? else { return Ok(None) };
        Ok((authorize_question(&staff, owner, referred, None) == Ok(Standing::Scope)).then_some(id))
    }

    /// The library a question is referred to, by slug, and its name.
    async fn receiving(&self, slug: &str) -> AppResult<(LibraryId, Placement, String)> {
        let lib = self.library(slug).await.map_err(|e| e.missing_is_invalid("library", "no such library"))?;
        Ok((lib.placement.library, lib.placement, lib.name))
    }

    /// What follows a committed action: a referral told at once to the
    /// receiving library's desks (after the commit: nothing is announced
    /// that could roll back), and one `flagged` for follow-up to its own
    /// library's, the mailer woken, and the notice for the page.
    async fn after_acting(
        &self,
        staff: &Staff,
        receiving: Option<(LibraryId, Placement)>,
        flagged: bool,
        acted: refdesk_store::Acted,
    ) -> AppResult<ActOutcome> {
        if flagged {
            self.tell_follow_up(staff, &acted.question);
        }
        if let (Some((_, to)), Some(now)) = (receiving, acted.question.referred) {
            if now == to {
                let text: String = acted.question.text.chars().take(200).collect();
                self.bus.publish_ephemeral(refdesk_domain::event::Event::Referred {
                    question: acted.question.id,
                    to,
                    library_name: acted.question.referred_name.clone().unwrap_or_default(),
                    text,
                    by: staff.display_name.clone(),
                    by_id: Some(staff.id),
                    follow_up: false,
                });
            }
        }
        if acted.mail.is_some() {
            self.mail_wakeup.notify_one();
        }
        let emailed_to = match acted.mail {
            Some(mail) => self.store.mail(mail).await?.map(|m| m.to),
            None => None,
        };
        let answered = acted.line.as_ref().is_some_and(|l| l.kind == refdesk_domain::chat::MessageKind::Answer);
        let notice = match (answered, &emailed_to) {
            (true, None) => {
                Some("No e-mail address is known for this patron: the answer was shown in the chat only.".to_owned())
            }
            // In the outbox, not yet sent (the mailer sends it within
            // seconds, or retries while the SMTP server is away).
            (true, Some(to)) => Some(format!("The answer was shown in the chat and is on its way by e-mail to {to}.")),
            (false, Some(to)) if acted.line.is_none() => Some(format!("The answer is on its way by e-mail to {to}.")),
            _ => None,
        };
        Ok(ActOutcome { question: acted.question, chat_line: acted.line, emailed_to, notice })
    }
}

/// An action with its input parsed and what it names looked up.
struct Prepared {
    action: QuestionAction,
    /// The library a referral (or a referral code) sends the question to.
    receiving: Option<(LibraryId, Placement)>,
    /// A referral's library's name, for the line in a live chat.
    receiving_name: Option<String>,
    /// The staff member an assignment names.
    assignee: Option<Staff>,
    /// The cooperative's codes, for a code.
    codes: Vec<ResolutionCode>,
    /// For a code: the chatting librarian, if the question is in their
    /// role's scope ([`App::chatter_in_scope`]).
    chatter: Option<StaffId>,
}

/// Decides an action on the question and its session as they are inside
/// the write (R4, R6, R7, B1): what changes, what is written in the chat,
/// what is e-mailed.
fn decide(
    me: &Staff,
    prepared: Prepared,
    confirmed: bool,
    q: &QuestionRecord,
    session: &SessionRecord,
    now: Millis,
) -> Result<QuestionPlan, DomainError> {
    let standing = authorize_question(me, &q.placement, q.referred.as_ref(), q.librarian)?;
    let receiving = prepared.receiving.as_ref().map(|(to, _)| *to);
    let work = work_of(&prepared.action, receiving, q.library, session.patron_email.as_deref());
    authorize_question_work(standing, work, session.ended_at, now)?;
    check_confirmation(q.live, confirmed)?;
    let live = q.live;
    let Prepared { action, receiving, receiving_name, assignee, codes, chatter } = prepared;
    let mut plan = QuestionPlan::default();
    match action {
        QuestionAction::Answer { body, email } => plan = answer(me, q, session, body, email)?,
        QuestionAction::Note { body } => {
            plan.line = actions::note(&body, live).map(|l| line(me, l, false));
            plan.entries.push(Change::Note { body });
        }
        QuestionAction::MessageLibrarian { body } => {
            // Back in a queue, nobody is chatting in it: there is no one to
            // address ("Message sent to the chatting librarian" was said
            // all the same).
            if live && q.librarian.is_none() {
                return Err(DomainError::Conflict(
                    "nobody is chatting in this chat now (it waits in a queue): add a note instead".into(),
                ));
            }
            let name = q.librarian_name.clone().unwrap_or_else(|| "the librarian".into());
            plan.line = Some(line(me, actions::message_to_librarian(&body, &name, live)?, false));
            plan.entries.push(Change::LibrarianMessage { to: q.librarian, body });
        }
        QuestionAction::Close => {
            let (after, chat) = actions::close(&q.state, &me.display_name, live, patron_present(q, session))?;
            plan.line = chat.map(|l| line(me, l, true));
            plan.state = Some(after);
        }
        QuestionAction::Reopen => {
            let (after, chat) = actions::reopen(&q.state, &me.display_name, live)?;
            plan.line = chat.map(|l| line(me, l, true));
            plan.state = Some(after);
        }
        QuestionAction::Assign { to } => {
            // To staff whose scope holds it: a librarian who only chatted
            // would hold it for as long as it is theirs.
            let scope = assignee.as_ref().map(|who| authorize_question(who, &q.placement, q.referred.as_ref(), None));
            if scope.is_some_and(|s| s != Ok(Standing::Scope)) {
                return Err(DomainError::invalid("to", "that staff member cannot work this question"));
            }
            plan.state = Some(actions::assign(&q.state, to)?);
        }
        QuestionAction::Claim => plan.state = Some(actions::assign(&q.state, Some(me.id))?),
        QuestionAction::Refer { .. } => {
            let (to, placement) = receiving.ok_or(DomainError::invalid("library", "no such library"))?;
            if placement.cooperative != q.placement.cooperative {
                return Err(DomainError::invalid("library", "refer only within the cooperative"));
            }
            plan.state = Some(actions::refer(&q.state, q.library, to)?);
            let to = receiving_name.as_deref().unwrap_or("another library");
            plan.line = live.then(|| refdesk_domain::lines::referred(&me.display_name, to));
        }
        QuestionAction::SetCode { code, read_scale, .. } => {
            let chatting = chatting_for_code(q.librarian, chatter, me, q.library);
            plan = set_code(me, q, session, (&code, read_scale), &codes, (chatting, receiving))?
        }
    }
    if plan.state.as_ref() == Some(&q.state) {
        plan.state = None;
    }
    Ok(plan)
}

/// Whether an action wraps the question up or decides who has it and where
/// it goes ([`authorize_question_work`]); `receiving` is the library a code
/// or a referral sends it to, `patron` the patron's own address (an answer
/// sent there, named or not, is the wrap-up's).
fn work_of(action: &QuestionAction, receiving: Option<LibraryId>, owner: LibraryId, patron: Option<&str>) -> Work {
    let patrons = |to: &str| patron.is_some_and(|p| p.trim().eq_ignore_ascii_case(to.trim()));
    match action {
        QuestionAction::Answer { email: None, .. } | QuestionAction::Note { .. } => Work::WrapUp,
        QuestionAction::Answer { email: Some(to), .. } if patrons(to) => Work::WrapUp,
        QuestionAction::MessageLibrarian { .. } => Work::WrapUp,
        QuestionAction::SetCode { .. } if receiving.is_none_or(|to| to == owner) => Work::WrapUp,
        QuestionAction::Answer { email: Some(_), .. }
        | QuestionAction::SetCode { .. }
        | QuestionAction::Close
        | QuestionAction::Reopen
        | QuestionAction::Assign { .. }
        | QuestionAction::Claim
        | QuestionAction::Refer { .. } => Work::Manage,
    }
}

/// R5 keeps a question live until its code is set, but an answer shown in a
/// chat the patron has left reaches nobody.
fn patron_present(q: &QuestionRecord, session: &SessionRecord) -> bool {
    q.live && session.state != refdesk_domain::chat::SessionState::Ended
}

/// An answer: in the chat while the patron is there, by e-mail to the
/// address given or the patron's own.
fn answer(
    me: &Staff,
    q: &QuestionRecord,
    session: &SessionRecord,
    body: String,
    email: Option<String>,
) -> Result<QuestionPlan, DomainError> {
    let present = patron_present(q, session);
    let to = email.or_else(|| session.patron_email.clone());
    if to.is_none() && !present {
        return Err(DomainError::Conflict(
            "no e-mail address is known for this patron and the chat has ended: the answer cannot reach them".into(),
        ));
    }
    let (after, chat) = actions::answer(&q.state, &body, present);
    Ok(QuestionPlan {
        entries: vec![Change::Answer { body: body.clone(), emailed_to: to.clone(), in_chat: chat.is_some() }],
        line: chat.map(|l| line(me, l, false)),
        mail: to.map(|to| answer_mail(q, &body, &to)),
        state: Some(after),
        ..QuestionPlan::default()
    })
}

/// Who a code "for the chatting librarian" (Follow-up by me, Answered)
/// gives a question to: its chatting librarian if their role still covers
/// it (`chatter`, [`App::chatter_in_scope`]); with none (a form question),
/// the coder if they work at its library, standing in for one (an admin
/// from elsewhere who codes it gives it to nobody, as before).
pub(crate) fn chatting_for_code(
    librarian: Option<StaffId>,
    chatter: Option<StaffId>,
    coder: &Staff,
    library: LibraryId,
) -> Option<StaffId> {
    match librarian {
        None => (coder.home.library == library).then_some(coder.id),
        Some(l) => chatter.filter(|c| *c == l),
    }
}

/// A resolution code from the question list (R6): the code decides the
/// status; a referral code names the receiving library.
fn set_code(
    me: &Staff,
    q: &QuestionRecord,
    session: &SessionRecord,
    (code, read_scale): (&str, Option<u8>),
    codes: &[ResolutionCode],
    (chatting, receiving): (Option<StaffId>, Option<(LibraryId, Placement)>),
) -> Result<QuestionPlan, DomainError> {
    authorize(me, Action::SetCode, &Target::of(&session.ctx, session.state))?;
    let code = refdesk_domain::question::pick_code(codes, code, q.state.code.as_deref())?;
    if code.referred && receiving.is_none() {
        return Err(DomainError::invalid("library", "name the library the question is referred to"));
    }
    if let Some((_, p)) = receiving {
        if p.cooperative != q.placement.cooperative || p.library == q.library {
            return Err(DomainError::invalid("library", "refer to another library of the cooperative"));
        }
    }
    let mut state = apply_code(&q.state, code, chatting, receiving.map(|r| r.0));
    state.read_scale = read_scale.or(state.read_scale);
    Ok(QuestionPlan {
        state: Some(state),
        line: q.live.then(|| refdesk_domain::lines::code_set(&code.label, &me.display_name)),
        ..QuestionPlan::default()
    })
}
