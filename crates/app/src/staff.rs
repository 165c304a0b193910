//! Staff around the chat: availability (on duty / away / off duty) and
//! presence, the automatic sign-off of staff who left without signing off,
//! the queue's roll-up to the cooperative, staff management within scope,
//! and the offline question form used when nobody is on duty.

use crate::audit::{self, Concerns};
use crate::flight::Turn;
use crate::{auth, App, AppError, AppResult};
use refdesk_domain::authz::{authorize_admin, authorize_staff_change, Admin};
use refdesk_domain::event::{Availability, Event};
use refdesk_domain::ids::{CooperativeId, StaffId};
use refdesk_domain::input::{self, Body};
use refdesk_domain::org::{Role, Staff};
use refdesk_domain::{DomainError, Millis};
use refdesk_store::{NewFormQuestion, QuestionRecord, ScriptOwner, StaffEntry, StaffUpdate};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The longest policy page, in characters: the longest text anyone sends.
pub const MAX_POLICY_CHARS: usize = 20_000;

/// How long whether anyone of a cooperative is on duty is answered from
/// memory: the widget on every page of a library's site asks for it (anyone
/// may), and each answer read every staff member of the cooperative.
pub const STATUS_FRESH_MS: Millis = 5_000;

/// How recently a staff member on duty must have been connected (seen by a
/// node: each marks its connected staff every round, and the end of their
/// last connection) for the entry points to say a librarian is available.
/// They stay on duty for `signoff_minutes` after their last connection
/// ends (a reload, a network blip: their chats wait for them), but a
/// patron is not told someone is there who has been gone a minute — after
/// a closed browser, a restart, or a restore of a database in which they
/// were on duty.
pub const AVAILABLE_WITHIN_MS: Millis = 60_000;

/// Per cooperative: whether anyone was on duty, when that was read, and a
/// count of the changes made on this node (an answer read before one is
/// not kept after it). One entry per cooperative that has libraries, at most.
pub(crate) type OnDutyCache = std::sync::Arc<std::sync::Mutex<HashMap<CooperativeId, OnDuty>>>;

/// [`OnDutyCache`]'s entry.
#[derive(Default)]
pub(crate) struct OnDuty {
    read: Option<(Millis, bool)>,
    changes: u64,
}

impl App {
    /// What [`OnDutyCache`] holds for `coop`: the answer read and when, and
    /// the count of changes made here.
    fn on_duty_as_read(&self, coop: CooperativeId) -> (Option<(Millis, bool)>, u64) {
        let cache = self.on_duty.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(&coop).map_or((None, 0), |e| (e.read, e.changes))
    }

    /// A change of duty on this node: the cooperative's status is read again.
    fn duty_changed(&self, coop: CooperativeId) {
        let mut cache = self.on_duty.lock().unwrap_or_else(|p| p.into_inner());
        let entry = cache.entry(coop).or_default();
        entry.read = None;
        entry.changes += 1;
    }
}

/// How often the background work runs (roll-ups, sign-offs, marking
/// connected staff seen).
const TICK: Duration = Duration::from_secs(1);
/// A staff member seen this recently counts as connected (on any node).
const FRESH_MS: Millis = 5_000;
/// How often expired sign-ins are deleted ([`App::purge_expired_sign_ins`]).
pub const PURGE_SIGN_INS_EVERY: Millis = 5 * 60_000;
/// Expired sign-ins deleted per write: one batch never holds the writer
/// (SQLite's, shared by every chat) for long.
const PURGE_BATCH: u32 = 500;

/// Live connections per staff member on this node.
#[derive(Default)]
pub struct Connections(Mutex<HashMap<StaffId, usize>>);

impl Connections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<StaffId, usize>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Staff with at least one live connection here.
    pub fn connected(&self) -> Vec<StaffId> {
        self.lock().iter().filter(|(_, n)| **n > 0).map(|(id, _)| *id).collect()
    }
}

/// Held by a staff connection; when the last one goes, the staff member is
/// marked seen one last time, and the sign-off clock starts.
pub struct Online {
    app: App,
    staff: StaffId,
}

impl Drop for Online {
    fn drop(&mut self) {
        let mut map = self.app.connections.lock();
        if let Some(n) = map.get_mut(&self.staff) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.staff);
            }
        }
        let last = !map.contains_key(&self.staff);
        drop(map);
        if !last {
            // Still connected here: the background round marks them seen.
            return;
        }
        let (store, id, now) = (self.app.store.clone(), self.staff, self.app.clock.now());
        tokio::spawn(async move {
            match store.touch(vec![id], now).await {
                Ok(()) => {}
                // Shutting down: every staff connection ends at once, after
                // the store has closed; one line each would bury the log.
                // Their sign-off clock runs from the background round's last
                // mark instead, at most a round (a second) earlier.
                Err(refdesk_store::StoreError::Closed) => {
                    tracing::debug!("the end of a staff connection is not recorded: the store is closed")
                }
                Err(e) => tracing::warn!(error = %e, "cannot record the end of a staff connection"),
            }
        });
    }
}

/// A colleague as the presence list shows them.
#[derive(Clone, Debug, Serialize)]
pub struct Presence {
    /// The staff member and their availability.
    #[serde(flatten)]
    pub entry: StaffEntry,
    /// `on_duty`, `away`, `online` (connected, off duty) or `offline`.
    pub presence: &'static str,
}

/// Whether a library's entry point has anyone to answer.
#[derive(Clone, Debug, Serialize)]
pub struct LibraryStatus {
    /// The library's name.
    pub library: String,
    /// Someone who can serve its patrons is on duty.
    pub online: bool,
    /// Days after which the library removes a patron's name, e-mail
    /// address and network from an ended chat (`None`: kept until erased).
    pub retention_days: Option<u32>,
    /// Its admins' notice while its chat is closed to new patrons (`None`:
    /// open).
    pub closed_notice: Option<String>,
    /// Whether the page that asked (its origin) may show the chat in a frame
    /// ([`input::may_frame`]); `true` when the request named no origin.
    pub framed_here: bool,
    /// How its widget button looks.
    pub widget: refdesk_domain::org::WidgetLook,
}

/// What the offline question form takes.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfflineForm {
    /// Their name (optional).
    pub name: Option<String>,
    /// Their e-mail (required: the answer goes there).
    pub email: Option<String>,
    /// Their question.
    pub question: String,
    /// The widget's random id for this browser (see [`crate::blocks`]).
    #[serde(default)]
    pub browser: Option<String>,
}

/// A question left through the form: its number, for the patron.
#[derive(Clone, Debug, Serialize)]
pub struct FormReceipt {
    /// The question's number.
    pub question: refdesk_domain::ids::QuestionId,
    /// The library's name.
    pub library: String,
}

impl App {
    /// Registers a live staff connection (see [`Online`]). The first of a
    /// staff member's on this node marks them seen at once; the others
    /// need not (the background round marks the connected every second):
    /// a loop opening and closing sockets would otherwise write twice a
    /// socket. Once seen, this node's widgets read their cooperative's
    /// status again: a librarian on duty whose desk had been gone for a
    /// minute counts again at once, not after [`STATUS_FRESH_MS`] of
    /// patrons told that no librarian is there.
    pub fn staff_online(&self, staff: StaffId, coop: CooperativeId) -> Online {
        let first = {
            let mut map = self.connections.lock();
            let n = map.entry(staff).or_insert(0);
            *n += 1;
            *n == 1
        };
        if first {
            let (app, now) = (self.clone(), self.clock.now());
            tokio::spawn(async move {
                if app.store.touch(vec![staff], now).await.is_ok() {
                    app.duty_changed(coop);
                }
            });
        }
        Online { app: self.clone(), staff }
    }

    /// Goes on duty, away, or off duty.
    pub async fn set_availability(&self, staff: &Staff, a: Availability) -> AppResult<()> {
        if self.store.set_availability(staff.id, a, self.clock.now()).await? {
            // This node's widgets see the change at once (others within
            // STATUS_FRESH_MS).
            self.duty_changed(staff.home.cooperative);
        }
        Ok(())
    }

    /// Whether a staff member is on duty now.
    pub async fn is_on_duty(&self, staff: &Staff) -> AppResult<bool> {
        let entry = self.store.staff_entry(staff.id).await?;
        Ok(entry.is_some_and(|e| e.availability == Availability::OnDuty))
    }

    /// The staff of one's cooperative with their presence.
    pub async fn presence(&self, staff: &Staff) -> AppResult<Vec<Presence>> {
        let connected = self.connections.connected();
        let fresh = self.clock.now() - FRESH_MS;
        let all = self.store.staff_of(staff.home.cooperative).await?;
        Ok(all
            .into_iter()
            .filter(|e| !e.disabled)
            .map(|entry| {
                let here = connected.contains(&entry.staff.id) || entry.last_seen >= fresh;
                let presence = match (here, entry.availability) {
                    (false, _) => "offline",
                    (true, Availability::OnDuty) => "on_duty",
                    (true, Availability::Away) => "away",
                    (true, Availability::OffDuty) => "online",
                };
                Presence { entry, presence }
            })
            .collect())
    }

    /// Whether anyone who can serve this library's patrons is on duty: its
    /// own staff, or any of the cooperative (they serve it after roll-up).
    /// Read from the store at most once per [`STATUS_FRESH_MS`] per cooperative.
    pub async fn library_status(&self, slug: &str, origin: Option<&str>) -> AppResult<LibraryStatus> {
        let lib = self.open_library(slug).await?;
        let online = self.anyone_on_duty(lib.placement.cooperative).await?;
        let closed_notice = lib.closed_notice.clone();
        let framed_here = origin.is_none_or(|o| input::may_frame(&lib.embed_sites, o));
        let widget = lib.widget.clone();
        Ok(LibraryStatus {
            library: lib.name,
            online,
            retention_days: lib.retention_days,
            closed_notice,
            framed_here,
            widget,
        })
    }

    /// [`App::library_status`]'s answer for a cooperative. One request at a
    /// time reads it on this node (it reads the cooperative's whole staff):
    /// while one does, the others are answered what was read before, or,
    /// when nothing was (or a change here made it void), wait for that read.
    /// So a flood of requests when the answer goes stale costs one read.
    async fn anyone_on_duty(&self, coop: CooperativeId) -> AppResult<bool> {
        let mut waited = false;
        loop {
            let now = self.clock.now();
            let (read, changes) = self.on_duty_as_read(coop);
            // Fresh only within the period after it was read (a clock set
            // back does not make an old answer fresh).
            let fresh = |at: Millis| (0..STATUS_FRESH_MS).contains(&(now - at));
            let stale = match read {
                Some((at, online)) if fresh(at) => return Ok(online),
                Some((_, online)) => Some(online),
                None => None,
            };
            let _reading = match crate::flight::turn(&self.status_reading, stale, &mut waited).await {
                Turn::Read(reading) => reading,
                Turn::Serve(online) => return Ok(online),
                Turn::Again => continue,
            };
            // Read by another request just before this one took its turn?
            if let (Some((at, online)), _) = self.on_duty_as_read(coop) {
                if fresh(at) {
                    return Ok(online);
                }
            }
            self.metrics().status_reads.inc();
            let now = self.clock.now();
            let staff = self.store.staff_of(coop).await?;
            let here = |e: &refdesk_store::StaffEntry| now - e.last_seen <= AVAILABLE_WITHIN_MS;
            let online = staff.iter().any(|e| !e.disabled && e.availability == Availability::OnDuty && here(e));
            let mut cache = self.on_duty.lock().unwrap_or_else(|p| p.into_inner());
            let entry = cache.entry(coop).or_default();
            if entry.changes == changes {
                entry.read = Some((now, online));
            }
            return Ok(online);
        }
    }

    /// The offline question form: a `new` question in the library's list,
    /// answered later by e-mail.
    /// `ip`: the client's address (a blocked patron may be refused, as the
    /// library sets).
    pub async fn ask_offline(
        &self,
        slug: &str,
        form: OfflineForm,
        ip: Option<std::net::IpAddr>,
    ) -> AppResult<FormReceipt> {
        let lib = self.open_library(slug).await?;
        crate::chat::refuse_closed(&lib)?;
        let keys = crate::blocks::Asker { ip, browser: form.browser.clone() }.keys();
        self.refuse_blocked(&lib, &keys, true).await?;
        let name = input::optional_line("name", form.name.as_deref(), 100)?;
        let email = crate::mail::email_address(form.email.as_deref())?
            .ok_or_else(|| DomainError::invalid("email", "give an e-mail address so the library can answer"))?;
        let question = Body::question(&form.question, self.limits.max_message_chars)?;
        let new = NewFormQuestion {
            library: lib.placement.library,
            patron_name: name,
            patron_email: email,
            question: question.into_string(),
            token_hash: auth::digest(&auth::new_token()?),
            now: self.clock.now(),
            keys,
            max_per_net_per_day: self.limits.form_questions_per_address_per_day,
            max_started_in_library_per_day: self.limits.starts_per_library_per_day,
        };
        let q: QuestionRecord = self.store.create_form_question(new).await.map_err(|e| self.note_day_spent(&lib, e))?;
        Ok(FormReceipt { question: q.id, library: lib.name })
    }

    /// Staff one may manage: those whose library one's role covers.
    pub async fn manageable_staff(&self, actor: &Staff) -> AppResult<Vec<StaffEntry>> {
        if actor.role < Role::LibraryAdmin {
            return Err(DomainError::Forbidden("managing staff is for library admins and above").into());
        }
        let all = self.store.staff_of(actor.home.cooperative).await?;
        Ok(all.into_iter().filter(|e| actor.role_covers(&e.staff.home)).collect())
    }

    /// A staff member of `actor`'s cooperative. Another cooperative's is no
    /// one here (404, as an id that is no one's): a refusal told which ids
    /// are staff elsewhere.
    async fn colleague_entry(&self, actor: &Staff, target: StaffId) -> AppResult<refdesk_store::StaffEntry> {
        let entry = self.store.staff_entry(target).await?;
        let entry = entry.filter(|e| e.staff.home.cooperative == actor.home.cooperative);
        Ok(entry.ok_or(DomainError::NotFound("staff member"))?)
    }

    /// Changes a colleague's role, disables or enables them, resets their
    /// password or gives them a new display name — within scope, only below one's own role (DESIGN §2), or
    /// one's own account.
    pub async fn manage_staff(
        &self,
        actor: &Staff,
        target: StaffId,
        role: Option<Role>,
        disabled: Option<bool>,
        password: Option<&str>,
        display_name: Option<&str>,
    ) -> AppResult<()> {
        // A new name, as a new account's: one line of text.
        let display_name = match display_name {
            Some(name) => Some(
                input::name("display_name", Some(name), 100)?
                    .ok_or_else(|| DomainError::invalid("display_name", "is required"))?,
            ),
            None => None,
        };
        let entry = self.colleague_entry(actor, target).await?;
        let (who, was_disabled) = (entry.staff, entry.disabled);
        authorize_staff_change(actor, who.id, &who.home, who.role, role)?;
        if who.id == actor.id && (disabled == Some(true) || role.is_some_and(|r| r < actor.role)) {
            return Err(DomainError::Conflict("you cannot disable or demote yourself".into()).into());
        }
        if role.is_none() && disabled.is_none() && password.is_none() && display_name.is_none() {
            return Err(DomainError::invalid("body", "change the role, disabled, password or display_name").into());
        }
        // What the account has already is no change: asked again (an admin's
        // page out of date: "Enable" on an account enabled meanwhile), it
        // would end the account's sign-ins for nothing. Nothing left: done.
        let role = role.filter(|r| *r != who.role);
        let disabled = disabled.filter(|d| *d != was_disabled);
        let display_name = display_name.filter(|n| *n != who.display_name);
        if role.is_none() && disabled.is_none() && password.is_none() && display_name.is_none() {
            return Ok(());
        }
        // An admin's password is strong: a promotion into an admin role comes
        // with one (the account's own may have been a librarian's).
        if role.is_some_and(|r| r > who.role && r >= Role::LibraryAdmin) && password.is_none() {
            let why = "a promotion to an admin role needs a new password with it (12 to 256 characters, at least 6 \
                       different ones, not built from the username or a common password)";
            return Err(DomainError::invalid("password", why).into());
        }
        let password = match password {
            Some(p) => Some(input::new_password(p, &who.username, role.unwrap_or(who.role))?.to_owned()),
            None => None,
        };
        // Counted before the password's hash: past the day's changes, a
        // refusal costs no hash.
        self.admin_change(Some(actor))?;
        let password_hash = match password {
            Some(p) => Some(self.hash_work(move || auth::hash_password(&p)).await??),
            None => None,
        };
        let (reset, disabling) = (password_hash.is_some(), disabled == Some(true));
        let said = changed_words(&who, was_disabled, role, disabled, reset, display_name.as_deref());
        let decided_on = Some((who.role, who.home.library));
        let update = StaffUpdate { role, disabled, password_hash, decided_on, display_name, password_was: None };
        self.store.update_staff(target, update).await?;
        if !said.is_empty() {
            let detail = format!("{}: {}", audit::who(&who.display_name, &who.username), said.join("; "));
            self.log_admin(Some(actor), Concerns::Library(who.home), "staff", detail).await;
        }
        // The store forgot where the account signed in from; so does this
        // node (the others within a minute: `crate::signin`). A new password
        // also gives the account its attempts back on this node: a stranger's
        // guesses at the old one do not keep its owner out of the new one.
        if reset {
            self.sign_ins.password_reset(&who.username);
        } else if disabling {
            self.sign_ins.forget(&who.username);
        }
        if disabling {
            self.hand_back(&who).await;
        }
        if let Some(role) = role.filter(|r| *r < who.role) {
            self.leave_outside(&Staff { role, ..who }).await;
        }
        Ok(())
    }

    /// A demoted staff member leaves the live chats they are in (a
    /// conference) that the new role does not cover: they keep no view of
    /// them, nor a voice. Each leave says so in the chat, as leaving from
    /// the desk does; a chat that ended meanwhile is left without a line
    /// (and a conference the old role was still entering is refused inside
    /// its write: the store compares the role).
    async fn leave_outside(&self, who: &Staff) {
        let live = match self.store.live_seen_by(None, who.id).await {
            Ok(live) => live,
            Err(e) => {
                tracing::warn!(error = %e, staff = %who.username, "cannot read the chats of a staff member whose role changed");
                return;
            }
        };
        let outside = live.iter().filter(|r| r.ctx.member_mode(who.id).is_some() && !who.role_covers(&r.ctx.placement));
        for rec in outside {
            let now = self.clock.now();
            let live: refdesk_store::Guard = Box::new(|rec| match rec.state {
                refdesk_domain::chat::SessionState::Ended => Err(DomainError::Conflict("the chat ended".into())),
                _ => Ok(()),
            });
            match self.store.leave(rec.ctx.id, who.clone(), live, now).await {
                Ok(_) => {}
                Err(e) if e.is_conflict() => {}
                Err(e) => {
                    tracing::warn!(error = %e, session = %rec.ctx.id, "cannot take a demoted staff member out of a chat")
                }
            }
        }
        // Those that ended meanwhile.
        if let Err(e) = self.store.leave_ended_chats(who.id).await {
            tracing::warn!(error = %e, staff = %who.username, "cannot take a demoted staff member out of ended chats");
        }
    }

    /// The operator's change to an account, from the command line (no
    /// actor: whoever runs refdesk on the machine holds the database): a new
    /// password for an admin locked out, or an account disabled or enabled.
    /// Ends the account's sign-ins, like a change made on the desk.
    /// `false`: nothing to change (disabling an account already disabled,
    /// enabling one enabled): nothing done, nothing logged.
    pub async fn operator_update(
        &self,
        username: &str,
        password: Option<&str>,
        disabled: Option<bool>,
    ) -> AppResult<bool> {
        let username = &refdesk_domain::input::sign_in_name(username);
        let found = self.store.staff_by_username(username).await?.ok_or(DomainError::NotFound("staff member"))?;
        // Setting what is set changes nothing, and is logged nowhere.
        let disabled = disabled.filter(|d| *d != found.disabled);
        if password.is_none() && disabled.is_none() {
            return Ok(false);
        }
        let who = found.staff;
        let password_hash = match password {
            // As on the desk: an admin's as strong as the first admin's.
            Some(p) => {
                let p = input::new_password(p, &who.username, who.role)?.to_owned();
                Some(self.hash_work(move || auth::hash_password(&p)).await??)
            }
            None => None,
        };
        let reset = password_hash.is_some();
        self.store.update_staff(who.id, StaffUpdate { password_hash, disabled, ..Default::default() }).await?;
        let said: Vec<&str> = [
            reset.then_some("password reset"),
            (disabled == Some(true)).then_some("disabled"),
            (disabled == Some(false)).then_some("enabled"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !said.is_empty() {
            let detail = format!("{}: {}", audit::who(&who.display_name, &who.username), said.join("; "));
            self.log_admin(None, Concerns::Library(who.home), "staff", detail).await;
        }
        if reset {
            self.sign_ins.password_reset(&who.username);
        }
        // A disabled librarian's chats go back in line at the serving
        // nodes' next round (this process's bus reaches none of them).
        if disabled == Some(true) {
            self.sign_ins.forget(&who.username);
        }
        Ok(true)
    }

    /// One round of background work: offers chats that reached the roll-up
    /// delay to the cooperative, marks connected staff seen, and signs off
    /// staff gone for longer than the sign-off delay. Returns the time it
    /// ran up to; the next round starts from there.
    pub async fn tick(&self, last: Millis) -> Millis {
        let now = self.clock.now();
        match self.store.rolled_up(last, now, self.rollup_ms()).await {
            Ok(entries) => {
                let events: Vec<Event> = entries.into_iter().map(Event::QueueRolledUp).collect();
                if !events.is_empty() {
                    // Every node's tick finds the same roll-ups: each tells
                    // only its own connections.
                    self.bus.deliver_local(events);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot check the queue for roll-ups"),
        }
        // Connected staff are seen now, so they are never signed off.
        let connected = self.connections.connected();
        if !connected.is_empty() {
            if let Err(e) = self.store.touch(connected, now).await {
                tracing::warn!(error = %e, "cannot record connected staff");
            }
        }
        self.end_idle(now).await;
        // Chats nobody took in time end, and their patrons are told.
        self.expire_waiting(now).await;
        self.store.forget_unused();
        // Retention periods (issue 15), every ten minutes, beside the round;
        // a panic there is counted as the round's own are.
        if now / crate::privacy::RETENTION_EVERY != last / crate::privacy::RETENTION_EVERY {
            let app = self.clone();
            tokio::spawn(async move {
                let applied = app.one_turn("background", app.apply_retention(now)).await;
                if let Some(Err(e)) = applied {
                    tracing::warn!(error = %e, "cannot apply the retention periods");
                }
            });
        }
        if now / PURGE_SIGN_INS_EVERY != last / PURGE_SIGN_INS_EVERY {
            let app = self.clone();
            tokio::spawn(async move { app.one_turn("background", app.clone().purge_expired_sign_ins(now)).await });
        }
        let cutoff = now - (self.limits.signoff_minutes as Millis) * 60_000;
        match self.store.sign_off_stale(cutoff).await {
            Ok(gone) => {
                for s in gone {
                    tracing::info!(staff = %s.username, "signed off the desk: no connection for too long");
                    self.duty_changed(s.home.cooperative);
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot sign off absent staff"),
        }
        self.hand_back_orphans(cutoff).await;
        self.tell_librarians_desks(now, cutoff).await;
        now
    }

    /// R5: an active chat nobody has written in for too long ends by
    /// timeout, its patron and staff told why — not while someone is
    /// writing a line: one who began typing within that time keeps it (a
    /// long answer being composed; the desk says it is typing once, as it
    /// starts).
    async fn end_idle(&self, now: Millis) {
        let idle = now - (self.limits.idle_chat_minutes as Millis) * 60_000;
        let idle_for = Duration::from_secs(self.limits.idle_chat_minutes * 60);
        self.bus.forget_typing(idle_for);
        match self.store.idle_sessions(idle).await {
            Ok(ids) => {
                for id in ids.into_iter().filter(|id| !self.bus.typed_within(*id, idle_for)) {
                    // Re-checked inside the write: a message in between keeps it going.
                    let guard: refdesk_store::Guard = Box::new(move |rec| {
                        if rec.last_message_at < idle {
                            Ok(())
                        } else {
                            Err(DomainError::Conflict("the chat is active again".into()))
                        }
                    });
                    // Why, said to everyone in it before the end (it read as
                    // "ended by refdesk" with no reason).
                    let minutes = self.limits.idle_chat_minutes;
                    let why = format!(
                        "This chat has ended: nobody wrote in it for {}.",
                        if minutes == 1 { "a minute".to_owned() } else { format!("{minutes} minutes") }
                    );
                    let ending = refdesk_store::Ending { last_words: Some(why), ..Default::default() };
                    let author = refdesk_domain::chat::Author::System;
                    match self.end_mailing(id, author, guard, ending, now).await {
                        Ok(_) => tracing::info!(session = %id, "chat ended after no activity"),
                        Err(e) => tracing::debug!(session = %id, error = %e, "idle chat not ended"),
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot look for idle chats"),
        }
    }

    /// Deletes the sign-ins that expired by `now`, a bounded batch per
    /// write until none is left. They could never be used again; kept, they
    /// would pile up for ever (one row per sign-in). Every node's round
    /// does it: a row one node deleted is simply not found by the others.
    /// Runs by itself every [`PURGE_SIGN_INS_EVERY`] ([`App::tick`]).
    pub async fn purge_expired_sign_ins(self, now: Millis) {
        let mut purged = 0;
        loop {
            match self.store.purge_expired_logins(now, PURGE_BATCH).await {
                Ok(n) => {
                    purged += n;
                    if n < u64::from(PURGE_BATCH) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot purge expired sign-ins; tried again at the next round");
                    break;
                }
            }
        }
        if purged > 0 {
            tracing::info!(purged, "expired sign-ins purged");
        }
        // Networks not signed in from for 30 days spare an account nothing
        // more (`crate::signin`); 8 per account at most, so one write.
        match self.store.forget_known_networks(now - crate::signin::KNOWN_FOR).await {
            Ok(n) if n > 0 => tracing::info!(forgotten = n, "sign-in networks older than 30 days forgotten"),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot forget old sign-in networks; tried again at the next round"),
        }
    }

    /// Runs [`App::tick`] every second until `shutdown` resolves.
    pub async fn run_background(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut last = self.clock.now();
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            // A turn that panics still moves `last` on: its periodic runs are
            // not started again every second. The roll-ups it had not yet
            // sent are not sent (those chats reach the desks as they reload
            // their queues, or as they expire): a turn that panics again and
            // again must not resend its whole window each second.
            let turn = self.clock.now();
            last = self.one_turn("background", self.tick(last)).await.unwrap_or(turn);
        }
    }
}

/// Shared connection counts (one per node).
pub type SharedConnections = Arc<Connections>;

impl App {
    /// A library of `staff`'s cooperative, whose patrons they may serve
    /// (its policy page, its scripts); `not_found` for any other.
    async fn cooperative_library(
        &self,
        staff: &Staff,
        library: refdesk_domain::ids::LibraryId,
    ) -> AppResult<refdesk_store::LibraryRecord> {
        let libraries = self.listed_libraries().await?;
        let found = libraries
            .iter()
            .find(|l| l.placement.library == library && l.placement.cooperative == staff.home.cooperative);
        Ok(found.cloned().ok_or(DomainError::NotFound("library"))?)
    }

    /// A library's policy page, for any staff member of its cooperative (they
    /// may serve its patrons). An empty page when none was written yet.
    pub async fn policy(
        &self,
        staff: &Staff,
        library: refdesk_domain::ids::LibraryId,
    ) -> AppResult<refdesk_store::PolicyPage> {
        let lib = self.cooperative_library(staff, library).await?;
        Ok(self.store.policy(library).await?.unwrap_or(refdesk_store::PolicyPage {
            library: lib.placement.library,
            body: String::new(),
            updated_at: 0,
            updated_by: None,
        }))
    }

    /// Replaces a library's policy page: its admins (library admin and
    /// above, within scope).
    pub async fn set_policy(
        &self,
        staff: &Staff,
        library: refdesk_domain::ids::LibraryId,
        body: &str,
    ) -> AppResult<()> {
        let lib = self
            .store
            .libraries()
            .await?
            .into_iter()
            .find(|l| l.placement.library == library && l.placement.cooperative == staff.home.cooperative)
            .ok_or(DomainError::NotFound("library"))?;
        authorize_admin(staff, Admin::EditPolicy, &lib.placement)?;
        let body = body.trim();
        if body.chars().count() > MAX_POLICY_CHARS || body.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
            return Err(
                DomainError::invalid("body", format!("at most {MAX_POLICY_CHARS} characters of plain text")).into()
            );
        }
        let was = self.store.policy(library).await?.map(|p| p.body);
        self.admin_change(Some(staff))?;
        self.store.set_policy(library, body.to_owned(), staff.id, self.clock.now()).await?;
        if was.as_deref() != Some(body) {
            let detail = format!("policy notes saved ({} characters)", body.chars().count());
            self.log_admin(Some(staff), Concerns::Library(lib.placement), "policy", detail).await;
        }
        Ok(())
    }
}

impl App {
    /// The scripts (canned messages) this staff member may use serving the
    /// patrons of `library`, a library of their cooperative (their own by
    /// default): theirs, that library's, the cooperative's. A librarian
    /// chatting with another library's patron greets them with that
    /// library's words, as its policy page is what they read.
    pub async fn scripts(
        &self,
        staff: &Staff,
        library: Option<refdesk_domain::ids::LibraryId>,
    ) -> AppResult<Vec<refdesk_store::Script>> {
        let library = match library {
            Some(library) => self.cooperative_library(staff, library).await?.placement.library,
            None => staff.home.library,
        };
        Ok(self.store.scripts_for(staff, library).await?)
    }

    /// Who may keep a script in a scope, and where a change to it is logged
    /// (`None`: one's own): anyone for themselves; the admins of a library,
    /// its institution and its cooperative for the library (`library`, the
    /// admin's own when left out); a cooperative's admins for the
    /// cooperative.
    async fn script_owner(
        &self,
        staff: &Staff,
        scope: &str,
        library: Option<refdesk_domain::ids::LibraryId>,
    ) -> AppResult<(ScriptOwner, Option<Concerns>)> {
        if library.is_some() && scope != "library" {
            return Err(DomainError::invalid("library", "is for a library's scripts (scope library) only").into());
        }
        match scope {
            "personal" => Ok((ScriptOwner::Personal(staff.id), None)),
            "library" => {
                let placement = match library {
                    Some(l) if l != staff.home.library => self.cooperative_library(staff, l).await?.placement,
                    _ => staff.home,
                };
                authorize_admin(staff, Admin::LibraryScripts, &placement)?;
                Ok((ScriptOwner::Library(placement.library), Some(Concerns::Library(placement))))
            }
            "cooperative" => {
                authorize_admin(staff, Admin::CooperativeScripts, &staff.home)?;
                let c = staff.home.cooperative;
                Ok((ScriptOwner::Cooperative(c), Some(Concerns::Cooperative(c))))
            }
            _ => Err(DomainError::invalid("scope", "use personal, library or cooperative").into()),
        }
    }

    /// Saves a script.
    pub async fn create_script(
        &self,
        staff: &Staff,
        scope: &str,
        library: Option<refdesk_domain::ids::LibraryId>,
        title: &str,
        body: &str,
    ) -> AppResult<refdesk_store::Script> {
        let (owner, shared) = self.script_owner(staff, scope, library).await?;
        let title = input::optional_line("title", Some(title), 100)?
            .ok_or_else(|| DomainError::invalid("title", "is required"))?;
        let body = Body::parse(body, self.limits.max_message_chars)?.into_string();
        if shared.is_some() {
            self.admin_change(Some(staff))?;
        }
        let script = self.store.create_script(owner, title, body, self.clock.now()).await?;
        if let Some(concerns) = shared {
            self.log_admin(Some(staff), concerns, "script", format!("script “{}” added", script.title)).await;
        }
        Ok(script)
    }

    /// A script this staff member may keep (change or delete), with where
    /// a change to it is logged (`None`: their own). One they see but may
    /// not keep (a library's of their cooperative, their cooperative's) is
    /// refused with why; anyone else's is not there for them.
    async fn kept_script(&self, staff: &Staff, id: i64) -> AppResult<(refdesk_store::Script, Option<Concerns>)> {
        let gone = || AppError::from(DomainError::NotFound("script"));
        let script = self.store.script(id).await?.ok_or_else(gone)?;
        let owner = script.owned_by().ok_or_else(gone)?;
        let library = match owner {
            ScriptOwner::Library(l) => Some(l),
            ScriptOwner::Cooperative(c) if c != staff.home.cooperative => return Err(gone()),
            _ => None,
        };
        match self.script_owner(staff, &script.scope, library).await {
            Ok((may, shared)) if may == owner => Ok((script, shared)),
            // Another's personal script; a library of another cooperative.
            Ok(_) | Err(AppError::Domain(DomainError::NotFound(_))) => Err(gone()),
            Err(refused) => Err(refused),
        }
    }

    /// Changes the title and text of a script one may keep in its scope
    /// (its scope stays).
    pub async fn update_script(
        &self,
        staff: &Staff,
        id: i64,
        title: &str,
        body: &str,
    ) -> AppResult<refdesk_store::Script> {
        let (script, shared) = self.kept_script(staff, id).await?;
        let title = input::optional_line("title", Some(title), 100)?
            .ok_or_else(|| DomainError::invalid("title", "is required"))?;
        let body = Body::parse(body, self.limits.max_message_chars)?.into_string();
        // Saved as it was: nothing written, logged or counted.
        if (title.as_str(), body.as_str()) == (script.title.as_str(), script.body.as_str()) {
            return Ok(script);
        }
        if shared.is_some() {
            self.admin_change(Some(staff))?;
        }
        let changed = self.store.update_script(id, title, body).await?;
        if let Some(concerns) = shared {
            let detail = if changed.title == script.title {
                format!("script “{}” changed", changed.title)
            } else {
                format!("script “{}” changed, now “{}”", script.title, changed.title)
            };
            self.log_admin(Some(staff), concerns, "script", detail).await;
        }
        Ok(changed)
    }

    /// Deletes a script one may keep in its scope.
    pub async fn delete_script(&self, staff: &Staff, id: i64) -> AppResult<()> {
        let (script, shared) = self.kept_script(staff, id).await?;
        if shared.is_some() {
            self.admin_change(Some(staff))?;
        }
        self.store.delete_script(id).await?;
        if let Some(concerns) = shared {
            self.log_admin(Some(staff), concerns, "script", format!("script “{}” deleted", script.title)).await;
        }
        Ok(())
    }

    /// Adds or changes one of the cooperative's resolution codes (R6):
    /// cooperative admins only; no two codes in use share a label.
    pub async fn put_code(&self, staff: &Staff, code: refdesk_domain::question::ResolutionCode) -> AppResult<()> {
        authorize_admin(staff, Admin::EditCodes, &staff.home)?;
        input::slug("key", &code.key)?;
        // A name librarians tell codes apart by in the pickers: held to the
        // rules of names (nothing that shows as nothing, no word mixing
        // alphabets) and compared as names are.
        let label = input::name("label", Some(&code.label), 100)?
            .ok_or_else(|| DomainError::invalid("label", "is required"))?;
        // A referral and the receiving library go together: a code that
        // refers asks for a library and hands the question to it; one that
        // assigned to a receiving library without referring would leave its
        // questions assigned to nobody, with no library to pick up.
        let receiving = code.assign == refdesk_domain::question::Assignment::ReceivingLibrary;
        if code.referred && !receiving {
            return Err(DomainError::invalid("assign", "a referral code assigns to the receiving library").into());
        }
        if receiving && !code.referred {
            let why = "only a referral code assigns to the receiving library: tick \"refers the question\" or assign to another";
            return Err(DomainError::invalid("assign", why).into());
        }
        // Two codes in use called alike could not be told apart in the
        // pickers (a retired one's label may be given again).
        let codes = self.store.codes(staff.home.cooperative).await?;
        if let Some(other) = codes
            .iter()
            .find(|c| c.key != code.key && !c.retired && input::name_key(&c.label) == input::name_key(&label))
        {
            return Err(DomainError::Conflict(format!(
                "the code {} is labelled \"{}\" already",
                other.key, other.label
            ))
            .into());
        }
        let code = refdesk_domain::question::ResolutionCode { label, ..code };
        let was = codes.iter().find(|c| c.key == code.key);
        let (new, same) = (was.is_none(), was == Some(&code));
        let detail = format!(
            "code {} “{}” {}: status {}{}",
            code.key,
            code.label,
            if new { "added" } else { "changed" },
            code.status.as_str(),
            if code.retired { ", retired" } else { "" }
        );
        self.admin_change(Some(staff))?;
        self.store.put_code(staff.home.cooperative, code).await?;
        if !same {
            self.log_admin(Some(staff), Concerns::Cooperative(staff.home.cooperative), "code", detail).await;
        }
        Ok(())
    }
}

/// What a change to `who`'s account changes, in the admin log's words;
/// nothing for what it sets as it was.
fn changed_words(
    who: &Staff,
    was_disabled: bool,
    role: Option<Role>,
    disabled: Option<bool>,
    reset: bool,
    display_name: Option<&str>,
) -> Vec<String> {
    let mut said = Vec::new();
    if let Some(r) = role.filter(|r| *r != who.role) {
        said.push(format!("role {} → {}", audit::role_words(who.role), audit::role_words(r)));
    }
    match disabled.filter(|d| *d != was_disabled) {
        Some(true) => said.push("disabled".to_owned()),
        Some(false) => said.push("enabled".to_owned()),
        None => {}
    }
    if reset {
        said.push("password reset".to_owned());
    }
    if let Some(name) = display_name.filter(|n| *n != who.display_name) {
        said.push(format!("name “{}” → “{name}”", who.display_name));
    }
    said
}
