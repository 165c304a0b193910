//! The chat use cases: start, accept, send, end, set a code, read — and
//! sign-in. Each authorizes, applies the domain rule and persists; the
//! store's commit publishes.

use crate::audit::{self, Concerns};
use crate::flight::Turn;
use crate::mail::transcript_mail;
use crate::signin::{self, Verdict};
use crate::{auth, App, AppError, AppResult};
use refdesk_domain::authz::{
    authorize, authorize_question, authorize_question_work, authorize_view_at, Action, Target, Work,
};
use refdesk_domain::chat::{Audience, Author, Message, MessageKind, SessionState, Typist};
use refdesk_domain::event::{Event, QueueEntry};
use refdesk_domain::ids::{SessionId, StaffId};
use refdesk_domain::input::{self, Body, ClientId};
use refdesk_domain::org::{Role, Staff};
use refdesk_domain::question::{apply_code, QuestionState};
use refdesk_domain::visibility::{as_seen, transcript, Viewer};
use refdesk_domain::{DomainError, Millis};
use refdesk_store::{
    Appended, Guard, KnownNetwork, LibraryRecord, NewLogin, NewMessage, NewSession, NewStaff, SessionRecord,
};
use serde::Serialize;
use std::sync::Arc;

/// How long the open list of libraries is served as read
/// ([`App::listed_libraries`]).
pub const LISTED_FOR: refdesk_domain::Millis = 5_000;

/// What a patron types into the pre-chat form.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct StartChat {
    /// Their name (optional).
    pub name: Option<String>,
    /// Their e-mail (optional).
    pub email: Option<String>,
    /// Their question.
    pub question: String,
    /// E-mail them the transcript at the end (needs `email`).
    #[serde(default)]
    pub transcript: bool,
    /// The widget's random id for this browser (see [`crate::blocks`]).
    #[serde(default)]
    pub browser: Option<String>,
    /// The patron's local time minus UTC, in minutes (−840 to 840): the
    /// transcript's times are written in it.
    #[serde(default)]
    pub utc_offset: Option<i32>,
}

/// The text a page of the patron's chat shows at most, in bytes: a page
/// stops before the line that would take it past this (it always holds
/// one). 64 KiB is hundreds of ordinary lines and at least four of the
/// longest (4,000 characters of four bytes). An answer a client does not
/// read stays in memory until the connection is let go (`idle_seconds`),
/// so this bounds what one address can make a node hold through
/// `GET /api/chat`: its `connections_per_address` answers of 64 KiB of
/// text each (plus each line's other fields and JSON's escapes: a few
/// hundred KB at the very most), not of 500 lines of 16 KB (8 MB) each.
pub const PATRON_PAGE_BYTES: usize = 64 * 1024;

/// A staff page of a chat's transcript ([`App::transcript`], a question's
/// page) shows at most this many lines, and stops before the line that
/// would take its text past [`STAFF_PAGE_BYTES`]: a whole chat of ordinary
/// lines (up to `max_chat_lines` and the staff's last words) fits in one,
/// and a chat of the longest lines is read a page at a time, not loaded
/// whole (it could hold 2,000 lines of 16 KB).
pub const STAFF_PAGE_LINES: u32 = 5_000;
/// See [`STAFF_PAGE_LINES`].
pub const STAFF_PAGE_BYTES: usize = 1024 * 1024;

/// Lines staff may still add to a chat once it holds `max_chat_lines`
/// (the patron may add none): enough to say goodbye and point to a new
/// chat, not to make it grow without bound.
pub const STAFF_LINES_PAST_FULL: u64 = 100;

/// A page of a patron's chat (see [`App::patron_page`]).
#[derive(Clone, Debug, Serialize)]
pub struct PatronPage {
    /// The lines the patron may see.
    pub messages: Vec<Message>,
    /// The number of the last line read: the next page starts after it.
    pub last: u64,
    /// Whether more lines follow.
    pub more: bool,
}

/// A started chat: its id and the patron's secret token (shown once).
#[derive(Clone, Debug, Serialize)]
pub struct Started {
    /// The session.
    pub session: SessionId,
    /// The secret that opens it. Only its digest is stored.
    pub token: String,
    /// The library's name.
    pub library: String,
    /// Where the transcript will go, if asked for and taken.
    pub transcript_to: Option<String>,
}

fn target(rec: &SessionRecord) -> Target<'_> {
    Target::of(&rec.ctx, rec.state)
}

/// Whether `staff` may serve a waiting chat now (its queue, the rollup).
pub(crate) fn may_serve(
    staff: &Staff,
    rec: &SessionRecord,
    now: refdesk_domain::Millis,
    rollup: refdesk_domain::Millis,
) -> bool {
    let action = Action::Serve { waited: now - rec.queued_at, rollup, coop_now: rec.queue_coop };
    let t = Target { placement: rec.queue, state: rec.state, librarian: None, referred: false, members: &[] };
    authorize(staff, action, &t).is_ok()
}

/// A guard that re-checks `action` for `staff` on the row inside the write.
pub(crate) fn staff_guard(staff: &Staff, action: Action) -> Guard {
    let staff = staff.clone();
    Box::new(move |rec| authorize(&staff, action, &target(rec)))
}

impl App {
    /// [`staff_guard`] for a write that adds a line to the chat (a message,
    /// a code set, a conference, a hand-over): none once the chat holds
    /// `max_chat_lines` and the staff's few past it, so that no chat grows
    /// without bound, however often a code is set again or a mode changed.
    /// Leaving and ending, which a full chat needs, are not held back.
    pub(crate) fn line_guard(&self, staff: &Staff, action: Action) -> Guard {
        let may = staff_guard(staff, action);
        let most = self.staff_lines_most();
        Box::new(move |rec| {
            may(rec)?;
            // A chat's first code is never refused: its question's status
            // waits on it (R5, R6). Codes set again are.
            if action == Action::SetCode && !rec.code_set {
                return Ok(());
            }
            refdesk_domain::chat::staff_may_add_a_line(rec.last_seq, most)
        })
    }

    /// The lines a chat may hold at most by staff's hand:
    /// `max_chat_lines` and [`STAFF_LINES_PAST_FULL`].
    pub(crate) fn staff_lines_most(&self) -> u64 {
        u64::from(self.limits.max_chat_lines) + STAFF_LINES_PAST_FULL
    }
}

/// Lines and notes each staff member wrote today (a UTC day) on this node
/// ([`crate::Limits::staff_lines_per_day`]): one entry per staff member who
/// wrote since the node started, at most (staff, not strangers, add to it).
#[derive(Default)]
pub(crate) struct Written(std::sync::Mutex<std::collections::HashMap<StaffId, (i64, u32)>>);

/// How long after a sign-out (others of the account still valid) it is
/// looked whether any desk of theirs is connected on any node.
const SIGNED_OUT_LOOK: std::time::Duration = std::time::Duration::from_secs(30);
/// The time a signed-out desk's own sockets take to close, within which a
/// node may still mark its staff member seen for them.
const SIGNED_OUT_CLOSING_MS: refdesk_domain::Millis = 2_000;

/// How long a cooperative's waiting chats as read serve when no change of
/// a queue was heard meanwhile (a library renamed, another node's change
/// while its link is down: seen within this).
const WAITING_FRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// A cooperative's waiting chats as read ([`App::waiting_now`]).
pub(crate) struct WaitingRead {
    /// [`crate::bus::Bus::queue_changes`] when the read began.
    changes: (u64, u64),
    /// When the read began.
    at: std::time::Instant,
    entries: Arc<Vec<QueueEntry>>,
}

impl Written {
    /// Counts a line `staff` writes at `now`; `too_many_lines` once they
    /// wrote `most` today.
    pub(crate) fn take(&self, staff: StaffId, most: u32, now: Millis) -> Result<(), DomainError> {
        self.take_or(staff, most, now, || {
            let reason = format!("you have written {most} lines and notes today; you may write more tomorrow");
            DomainError::Limited { code: "too_many_lines", reason }
        })
    }

    /// Counts one of what `staff` does at `now`; `refused()` once they did
    /// `most` today.
    pub(crate) fn take_or(
        &self,
        staff: StaffId,
        most: u32,
        now: Millis,
        refused: impl FnOnce() -> DomainError,
    ) -> Result<(), DomainError> {
        let day = now.div_euclid(DAY);
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (on, n) = map.entry(staff).or_insert((day, 0));
        if *on != day {
            (*on, *n) = (day, 0);
        }
        if *n >= most {
            return Err(refused());
        }
        *n += 1;
        Ok(())
    }

    /// Gives back a line counted at `now` that was not written (refused,
    /// or one already stored, sent again).
    pub(crate) fn give_back(&self, staff: StaffId, now: Millis) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((on, n)) = map.get_mut(&staff) {
            if *on == now.div_euclid(DAY) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

/// A day, in milliseconds.
const DAY: i64 = 86_400_000;

/// What a sign-in with the right password of a disabled account is told.
pub const ACCOUNT_DISABLED: &str = "this account is disabled: ask your library's admin to enable it";

impl App {
    // --- sign-in -----------------------------------------------------------

    /// Signs a staff member in; returns the cookie token and who they are.
    /// Unknown names and wrong passwords get the same answer. `local`: the
    /// client is on this machine, talking to refdesk directly; the demo
    /// password (known to everyone) signs in from nowhere else.
    pub async fn login(&self, username: &str, password: &str, local: bool) -> AppResult<(String, Staff)> {
        self.login_from(username, password, local, None).await
    }

    /// [`App::login`] from the client address `ip`: an account's attempts
    /// are counted ([`crate::signin`]; past them `too_many_attempts`), and
    /// the networks it signs in from are not held back by them.
    pub async fn login_from(
        &self,
        username: &str,
        password: &str,
        local: bool,
        ip: Option<std::net::IpAddr>,
    ) -> AppResult<(String, Staff)> {
        if password == crate::demo::PASSWORD && !local {
            return Err(DomainError::Forbidden(
                "the demo accounts sign in only from this machine; to serve a library, set refdesk up for real (README: Deploying for real)",
            )
            .into());
        }
        let refused = || AppError::Domain(DomainError::Forbidden("wrong username or password"));
        let username = &refdesk_domain::input::sign_in_name(username);
        // Every sign-in name is a slug (no secret): anything else names
        // nobody, and is counted against no one.
        if input::slug("username", username).is_err() {
            return Err(refused());
        }
        let (per_hour, now) = (self.limits.failed_logins_per_account_per_hour, self.clock.now());
        let net = ip.map(auth::staff_network_digest);
        let net = net.as_deref();
        let mut verdict = self.sign_ins.start(username, net, per_hour, now);
        if verdict == (Verdict::Spent { ask: true }) {
            self.learn_networks(username, now).await?;
            verdict = self.sign_ins.start(username, net, per_hour, now);
        }
        let Verdict::Go(attempt) = verdict else {
            if self.sign_ins.to_log(username) {
                tracing::warn!(staff = %username, "an account's failed sign-ins for the hour are spent; refused");
            }
            let reason = "too many failed sign-ins for this account; try again later, \
                          or from where you usually sign in";
            return Err(DomainError::Limited { code: "too_many_attempts", reason: reason.into() }.into());
        };
        let place = match self.hash_place(&self.hash_line) {
            Ok(place) => Ok(place),
            // The line is full: from a network the account signs in from,
            // a place in a line of its own (a failed read: still busy).
            Err(busy) => match self.signs_in_from(username, net, now).await {
                Ok(true) => self.hash_place(&self.known_line),
                Ok(false) | Err(_) => Err(busy),
            },
        };
        let checked = match place {
            Ok(place) => self.check_password(username, password, place).await,
            Err(busy) => Err(busy),
        };
        let rec = match checked {
            // The right password of a disabled account: its owner is told
            // why, and to whom to turn (no guesser learns it: it takes the
            // password). Not a failed attempt.
            Ok(Some(rec)) if rec.disabled => {
                self.sign_ins.give_back(username, attempt);
                return Err(DomainError::Forbidden(ACCOUNT_DISABLED).into());
            }
            Ok(Some(rec)) => rec,
            Ok(None) => return Err(refused()),
            Err(e) => {
                // No password was checked (a full line of hashes, the
                // store): the attempt is not counted.
                self.sign_ins.give_back(username, attempt);
                return Err(e);
            }
        };
        let token = self.record_sign_in(username, net, attempt, &rec, now).await?;
        Ok((token, rec.staff))
    }

    /// A staff member's own new password, given the one they have (any
    /// role; admins may also use [`App::manage_staff`]). The current one is
    /// checked as a sign-in's is and counted against the account's attempts
    /// (`failed_logins_per_account_per_hour`: a stolen cookie cannot guess
    /// it at leisure, nor lock the owner out with a password of its own);
    /// a new one that would be refused spends no attempt. Every sign-in of
    /// the account then ends, this one too.
    pub async fn change_own_password(&self, staff: &Staff, current: &str, new: &str) -> AppResult<()> {
        let username = staff.username.as_str();
        let new = input::new_password(new, username, staff.role)?.to_owned();
        let (per_hour, now) = (self.limits.failed_logins_per_account_per_hour, self.clock.now());
        let Verdict::Go(attempt) = self.sign_ins.start(username, None, per_hour, now) else {
            let reason = "too many wrong passwords for this account; try again later".to_owned();
            return Err(DomainError::Limited { code: "too_many_attempts", reason }.into());
        };
        let checked = match self.hash_place(&self.hash_line) {
            Ok(place) => self.check_password(username, current, place).await,
            Err(busy) => Err(busy),
        };
        let rec = match checked {
            Ok(Some(rec)) if rec.staff.id == staff.id && !rec.disabled => rec,
            Ok(_) => return Err(DomainError::Forbidden("your current password is not right").into()),
            Err(e) => {
                // No password was checked: the attempt is not counted.
                self.sign_ins.give_back(username, attempt);
                return Err(e);
            }
        };
        self.sign_ins.give_back(username, attempt);
        let password_hash = Some(self.hash_work(move || auth::hash_password(&new)).await??);
        let decided_on = Some((rec.staff.role, rec.staff.home.library));
        // Not over a reset or a disabling made meanwhile.
        let password_was = Some(rec.password_hash);
        let update = refdesk_store::StaffUpdate { password_hash, decided_on, password_was, ..Default::default() };
        self.store.update_staff(staff.id, update).await?;
        self.sign_ins.password_reset(username);
        let detail = format!("{}: own password changed", audit::who(&staff.display_name, &staff.username));
        self.log_admin(Some(staff), Concerns::Library(staff.home), "staff", detail).await;
        Ok(())
    }

    /// Records a sign-in whose password was checked (the end of
    /// [`App::login_from`]); its cookie's token.
    async fn record_sign_in(
        &self,
        username: &str,
        net: Option<&str>,
        attempt: crate::signin::Attempt,
        rec: &refdesk_store::StaffRecord,
        now: Millis,
    ) -> AppResult<String> {
        let token = auth::new_token()?;
        let login = NewLogin {
            token_hash: auth::digest(&token),
            staff: rec.staff.id,
            expires: self.clock.now() + (self.limits.login_hours as i64) * 3_600_000,
            password_hash: rec.password_hash.clone(),
            from: net.map(|n| KnownNetwork { network: n.to_owned(), last_at: now }),
            keep: self.limits.sign_ins_per_account,
        };
        match self.store.create_login(login).await {
            Ok(Some(ended)) => {
                self.sign_ins.signed_in(username, net, attempt, now);
                // After the commit, as for signing out: the sockets of the
                // sign-ins it ended close now, on every node.
                for login in ended {
                    self.bus.publish_ephemeral(Event::SignInEnded { login });
                }
            }
            // Its password was reset, or it was disabled, while this one
            // was being checked: the old password signs no one in.
            Ok(None) => return Err(AppError::Domain(DomainError::Forbidden("wrong username or password"))),
            Err(e) => {
                self.sign_ins.give_back(username, attempt);
                return Err(e.into());
            }
        }
        Ok(token)
    }

    /// The account, if `password` is its own (enabled or not); `None` for a
    /// wrong name or password. The hash takes `place` (taken before
    /// the account is read: a full line costs no read of it).
    async fn check_password(
        &self,
        username: &str,
        password: &str,
        place: tokio::sync::OwnedSemaphorePermit,
    ) -> AppResult<Option<refdesk_store::StaffRecord>> {
        let Some(rec) = self.store.staff_by_username(username).await? else {
            // Spend the same time as a real check, so timing does not tell
            // which usernames exist.
            self.hash_in_place(place, || auth::verify_password("x", DUMMY_HASH)).await?;
            return Ok(None);
        };
        let (password, hash) = (password.to_owned(), rec.password_hash.clone());
        let ok = self.hash_in_place(place, move || auth::verify_password(&password, &hash)).await?;
        Ok(ok.then_some(rec))
    }

    /// Asks the store where `username` signed in from lately (on any node,
    /// before or since this one started), for [`crate::signin`].
    async fn learn_networks(&self, username: &str, now: refdesk_domain::Millis) -> AppResult<()> {
        let networks = self.store.known_networks(username, now - signin::KNOWN_FOR).await?;
        self.sign_ins.learned(username, networks, now);
        Ok(())
    }

    /// Whether `username` signed in from `net` in the last 30 days.
    async fn signs_in_from(&self, username: &str, net: Option<&str>, now: refdesk_domain::Millis) -> AppResult<bool> {
        let Some(net) = net else { return Ok(false) };
        if let Some(known) = self.sign_ins.known(username, net, now) {
            return Ok(known);
        }
        self.learn_networks(username, now).await?;
        Ok(self.sign_ins.known(username, net, now) == Some(true))
    }

    /// The staff member a cookie token belongs to.
    pub async fn staff_for_token(&self, token: &str) -> AppResult<Staff> {
        if !auth::is_token(token) {
            return Err(AppError::Unauthenticated);
        }
        self.store.staff_by_login(&auth::digest(token), self.clock.now()).await?.ok_or(AppError::Unauthenticated)
    }

    /// Signs out.
    pub async fn logout(&self, token: &str) -> AppResult<()> {
        let login = auth::digest(token);
        let who = self.store.staff_by_login(&login, self.clock.now()).await.ok().flatten().map(|s| s.id);
        let last = self.store.delete_login(&login, self.clock.now()).await?;
        // After the commit: the sockets opened with this sign-in close now,
        // on every node (the check at each ping stays, for expiry).
        self.bus.publish_ephemeral(Event::SignInEnded { login });
        // Their last sign-in: they left the desk. Off duty, and the chats
        // they were in go back in line now (the patron is told), not after
        // `signoff_minutes` without a connection.
        match last {
            Some(id) => self.sign_off(id).await,
            // Signed in elsewhere too: if no desk of theirs is connected on
            // any node (a browser closed hours ago without signing out),
            // they left all the same. Every node marks its connected staff
            // seen each second: none did in the half minute after this
            // sign-in's own sockets closed (longer than a desk's longest
            // wait to reconnect, and than nodes' clocks could differ), so
            // none is open.
            None => {
                let Some(id) = who else { return Ok(()) };
                let (app, out_at) = (self.clone(), self.clock.now());
                tokio::spawn(async move {
                    tokio::time::sleep(SIGNED_OUT_LOOK).await;
                    app.one_turn("background", app.sign_off_if_gone(id, out_at)).await;
                });
            }
        }
        Ok(())
    }

    /// [`App::sign_off`], if no node marked the staff member seen since
    /// `out_at` (and the moments their signed-out desk took to close).
    async fn sign_off_if_gone(&self, id: refdesk_domain::ids::StaffId, out_at: refdesk_domain::Millis) {
        let Ok(Some(entry)) = self.store.staff_entry(id).await else { return };
        if entry.last_seen <= out_at + SIGNED_OUT_CLOSING_MS && !self.connections.connected().contains(&id) {
            self.sign_off(id).await;
        }
    }

    /// A staff member left the desk: off duty, and the chats they were in go
    /// back in line now (the patron is told), not after `signoff_minutes`
    /// without a connection.
    async fn sign_off(&self, id: refdesk_domain::ids::StaffId) {
        match self.store.staff_by_id(id).await {
            Ok(Some(staff)) => {
                if let Err(e) = self.set_availability(&staff, refdesk_domain::event::Availability::OffDuty).await {
                    tracing::warn!(error = %e, staff = %staff.username, "cannot sign off a departing librarian");
                }
                self.hand_back(&staff).await;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the staff member who signed out"),
        }
    }

    /// Creates a staff member. `actor` is `None` for the operator's CLI;
    /// otherwise nobody creates a role above their own or outside their scope.
    pub async fn add_staff(
        &self,
        actor: Option<&Staff>,
        library_slug: &str,
        username: &str,
        display_name: &str,
        role: Role,
        password: &str,
    ) -> AppResult<refdesk_domain::ids::StaffId> {
        // As sign-in takes it ("Dora" signs in as `dora`): an admin who
        // types the name capitalised is not refused for it, and the
        // password is judged against the name it will have.
        let username = &refdesk_domain::input::sign_in_name(username);
        input::new_password(password, username, role)?;
        self.add_account(actor, library_slug, username, display_name, role, password).await
    }

    /// [`App::add_staff`] for a password already judged: the demo's
    /// accounts share the password the README gives.
    pub(crate) async fn add_account(
        &self,
        actor: Option<&Staff>,
        library_slug: &str,
        username: &str,
        display_name: &str,
        role: Role,
        password: &str,
    ) -> AppResult<refdesk_domain::ids::StaffId> {
        let username = input::slug("username", &refdesk_domain::input::sign_in_name(username))?;
        let display_name = input::name("display_name", Some(display_name), 100)?
            .ok_or_else(|| DomainError::invalid("display_name", "is required"))?;
        let password = password.to_owned();
        let lib = self.library(library_slug).await?;
        if let Some(actor) = actor {
            refdesk_domain::authz::authorize_staff_add(actor, &lib.placement, role)?;
        }
        // Counted, and a username already taken refused, before the
        // password's hash (its CPU and memory): an admin looping on a
        // taken name or past the day's changes hashed a password each
        // time. The store refuses a name taken meanwhile all the same.
        self.admin_change(actor)?;
        if self.store.staff_by_username(&username).await?.is_some() {
            return Err(DomainError::Conflict(format!("the username {username} is taken")).into());
        }
        let password_hash = self.hash_work(move || auth::hash_password(&password)).await??;
        let detail = format!("{} added, {}", audit::who(&display_name, &username), audit::role_words(role));
        let new = NewStaff { library: lib.placement.library, username, display_name, role, password_hash };
        let id = self.store.create_staff(new).await?;
        self.log_admin(actor, Concerns::Library(lib.placement), "staff", detail).await;
        Ok(id)
    }

    /// A library by its slug, from memory once read (read again after
    /// [`LISTED_FOR`]: it may have been renamed).
    pub async fn library(&self, slug: &str) -> AppResult<LibraryRecord> {
        self.library_by(slug, false).await
    }

    /// A library by its slug, for the entry points anyone may ask with any
    /// name as often as they like (its status, its chat and form, the
    /// `/ask` page): from memory once read; otherwise from the open list
    /// ([`App::listed_libraries`]: one read per [`LISTED_FOR`] on this
    /// node), never with a read of its own, so that a flood of made-up names
    /// costs the store nothing. A library another node added is found
    /// within [`LISTED_FOR`]; one this node added, at once.
    pub async fn open_library(&self, slug: &str) -> AppResult<LibraryRecord> {
        self.library_by(slug, true).await
    }

    async fn library_by(&self, slug: &str, open: bool) -> AppResult<LibraryRecord> {
        let now = self.clock.now();
        let known = self.libraries.lock().unwrap_or_else(|p| p.into_inner()).get(slug).cloned();
        if let Some((lib, at)) = known {
            if (0..LISTED_FOR).contains(&(now - at)) {
                return Ok(lib);
            }
        }
        let found = match open {
            true => self.listed_libraries().await?.iter().find(|l| l.slug == slug).cloned(),
            false => self.store.library_by_slug(slug).await?,
        };
        let lib = found.ok_or(AppError::Domain(DomainError::NotFound("library")))?;
        self.libraries.lock().unwrap_or_else(|p| p.into_inner()).insert(slug.to_owned(), (lib.clone(), now));
        Ok(lib)
    }

    // --- the patron's side -------------------------------------------------

    /// A patron starts a chat at a library's entry point.
    /// `ip`: the client's address, for blocks and the per-network limits.
    pub async fn start_chat(
        &self,
        library_slug: &str,
        form: StartChat,
        ip: Option<std::net::IpAddr>,
    ) -> AppResult<Started> {
        let lib = self.open_library(library_slug).await?;
        refuse_closed(&lib)?;
        let keys = crate::blocks::Asker { ip, browser: form.browser.clone() }.keys();
        self.refuse_blocked(&lib, &keys, false).await?;
        let name = input::optional_line("name", form.name.as_deref(), 100)?;
        let email = crate::mail::email_address(form.email.as_deref())?;
        if form.transcript && email.is_none() {
            return Err(DomainError::invalid("email", "give an e-mail address to receive the transcript").into());
        }
        let utc_offset = form.utc_offset.map(input::utc_offset).transpose()?;
        // A transcript past the network's hourly share is not taken, but the
        // chat is: a lab's computers share one address, and a patron must
        // not be kept from asking their question by others' transcripts.
        let transcript_to = email.clone().filter(|_| form.transcript && self.may_ask_transcript(&keys).is_ok());
        let transcript_utc_offset = utc_offset.filter(|_| transcript_to.is_some());
        let question = Body::question(&form.question, self.limits.max_message_chars)?;
        let token = auth::new_token()?;
        let new = NewSession {
            library: lib.placement.library,
            patron_name: name,
            patron_email: email,
            question: question.into_string(),
            token_hash: auth::digest(&token),
            now: self.clock.now(),
            transcript_to: transcript_to.clone(),
            transcript_utc_offset,
            keys,
            max_waiting: self.limits.max_waiting_per_library,
            max_waiting_per_net: self.limits.max_waiting_per_address,
            max_started_per_net_per_day: self.limits.chats_per_address_per_day,
            max_started_in_library_per_day: self.limits.starts_per_library_per_day,
        };
        let (browser, email) = (new.keys.browser.clone(), new.patron_email.clone());
        let (rec, _) = self.store.start_session(new).await.map_err(|e| self.note_day_spent(&lib, e))?;
        if let Some(browser) = browser {
            self.end_left_behind(&lib, &browser, rec.ctx.id, email.as_deref()).await;
        }
        Ok(Started { session: rec.ctx.id, token, library: lib.name, transcript_to })
    }

    /// A patron who closed the page of a chat still waiting (its page
    /// keeps the chat for that tab alone) and asks again from the same
    /// browser would wait behind their own chat, which no librarian could
    /// reach: the chats of that browser at that library still waiting
    /// with no page open end as left by their patron, once the new one is
    /// started (a start refused changes nothing). A page open on it again
    /// meanwhile keeps it (checked inside each end's write). A chat whose
    /// page closed so lately that it is not yet marked away (within
    /// `limits.patron_away_seconds`) is looked at again once it would be:
    /// a patron who closes the page and asks again at once does not wait
    /// behind it either, and a chat still open in another tab is kept.
    ///
    /// The browser may be a library's public computer, shared: such a
    /// chat with an e-mail address leaves its missed-chat question, as a
    /// patron leaving the line does, unless the new chat gives the same
    /// address (the same patron, asking again: one question is enough).
    async fn end_left_behind(&self, lib: &LibraryRecord, browser: &str, new: SessionId, email: Option<&str>) {
        let left = match self.store.left_waiting(lib.placement.library, browser).await {
            Ok(left) => left,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the chats a patron asking again left waiting");
                return;
            }
        };
        let mut not_yet = Vec::new();
        for id in left.into_iter().filter(|id| *id != new) {
            if !self.end_if_left(id, email).await {
                not_yet.push(id);
            }
        }
        if not_yet.is_empty() {
            return;
        }
        let (app, email) = (self.clone(), email.map(str::to_owned));
        let grace = std::time::Duration::from_secs(self.limits.patron_away_seconds + 2);
        tokio::spawn(async move {
            tokio::time::sleep(grace).await;
            for id in not_yet {
                app.end_if_left(id, email.as_deref()).await;
            }
        });
    }

    /// Ends a waiting chat whose patron has no page of it open, as left
    /// by them because they asked again (`email`: the new chat's address);
    /// false if its patron is still there (not marked away).
    async fn end_if_left(&self, id: SessionId, email: Option<&str>) -> bool {
        let old = match self.store.session(id).await {
            Ok(Some(old)) => old,
            Ok(None) => return true,
            Err(e) => {
                tracing::warn!(session = %id, error = %e, "could not read a chat a patron asking again left waiting");
                return true;
            }
        };
        if old.state != SessionState::Waiting {
            return true;
        }
        if !old.patron_away {
            return false;
        }
        let same = |a: &str| email.is_some_and(|b| a.eq_ignore_ascii_case(b));
        let asked_again = old.patron_email.as_deref().is_none_or(same);
        let guard: Guard = Box::new(|rec| {
            if rec.state == SessionState::Waiting && rec.patron_away {
                Ok(())
            } else {
                Err(DomainError::Conflict("its patron is back".into()))
            }
        });
        let author = Author::Patron { name: old.patron_display() };
        let why = "The chat's page was closed, and a new chat was asked from the same browser.";
        let ending = refdesk_store::Ending {
            last_words: Some(why.into()),
            missed: (!asked_again)
                .then(|| "Missed chat: its page was closed, and a new chat asked from the same browser".to_owned()),
            // The same patron, served in the new chat: one question is enough.
            keep_question: asked_again,
            left_per_net_per_day: self.limits.form_questions_per_address_per_day,
            ..Default::default()
        };
        match self.end_mailing(id, author, guard, ending, self.clock.now()).await {
            Ok(_) | Err(AppError::Domain(DomainError::Conflict(_))) => {}
            Err(e) => tracing::warn!(session = %id, error = %e, "a chat left waiting could not be ended"),
        }
        true
    }

    /// Passes a store error on; when it is `too_many_today` (the library
    /// took its day's chats and questions from strangers:
    /// [`crate::Limits::starts_per_library_per_day`]), logs it at `warn`,
    /// once an hour per library, so an operator sees a library closed by a
    /// flood (docs/operations.md).
    pub(crate) fn note_day_spent(&self, lib: &LibraryRecord, e: refdesk_store::StoreError) -> AppError {
        let spent =
            matches!(&e, refdesk_store::StoreError::Domain(DomainError::Limited { code: "too_many_today", .. }));
        if spent {
            let now = self.clock.now();
            let mut logged = self.day_spent.lock().unwrap_or_else(|p| p.into_inner());
            if logged.get(&lib.placement.library).is_none_or(|at| now - at >= 3_600_000) {
                logged.insert(lib.placement.library, now);
                let cap = self.limits.starts_per_library_per_day;
                tracing::warn!(library = %lib.slug, cap, "a library took its day's chats and questions nobody answered: new ones are refused (429 too_many_today)");
            }
        }
        e.into()
    }

    /// The session a patron token opens.
    pub async fn patron_session(&self, token: &str) -> AppResult<SessionRecord> {
        if !auth::is_token(token) {
            return Err(AppError::Unauthenticated);
        }
        self.store.session_by_token(&auth::digest(token)).await?.ok_or(AppError::Unauthenticated)
    }

    /// A patron sends a chat line. Patrons send messages, nothing else.
    pub async fn patron_send(
        &self,
        session: &SessionRecord,
        kind: MessageKind,
        body: &str,
        client_id: Option<&str>,
    ) -> AppResult<Appended> {
        if kind != MessageKind::Message {
            return Err(DomainError::Forbidden("patrons can only send messages").into());
        }
        let msg = self.new_message(Author::Patron { name: session.patron_display() }, kind, body, client_id)?;
        let own = session.ctx.id;
        let most = refdesk_domain::chat::PatronLines {
            before_accept: u64::from(self.limits.patron_lines_before_accept),
            chars_before_accept: u64::from(self.limits.patron_chars_before_accept),
            max_lines: u64::from(self.limits.max_chat_lines),
            chars: u64::from(self.limits.patron_chars_per_chat),
        };
        let chars = msg.body.chars().count() as u64;
        let guard: Guard = Box::new(move |rec| {
            if rec.ctx.id != own {
                return Err(DomainError::NotFound("session"));
            }
            let so_far = refdesk_domain::chat::SoFar {
                accepted: rec.accepted_at.is_some(),
                lines: rec.patron_lines,
                chars: rec.patron_chars,
            };
            refdesk_domain::chat::patron_may_add_a_line(so_far, chars, most)
        });
        Ok(committed(self.store.append(own, msg, guard, self.clock.now()).await?))
    }

    /// The patron ends their chat.
    pub async fn patron_end(&self, session: &SessionRecord) -> AppResult<Message> {
        let guard: Guard = Box::new(|_| Ok(()));
        let author = Author::Patron { name: session.patron_display() };
        // A patron who leaves the queue before anyone accepts, having given
        // an e-mail address, leaves a question marked "missed chat" (DESIGN §9).
        let missed = Some("Missed chat: the patron left the queue before a librarian accepted".to_owned());
        let now = self.clock.now();
        let left_per_net_per_day = self.limits.form_questions_per_address_per_day;
        let left_words = Some(
            "You left the line. We have your question (number {question}) and your e-mail address: a librarian will \
             answer you by e-mail."
                .to_owned(),
        );
        let ending = refdesk_store::Ending { missed, left_words, left_per_net_per_day, ..Default::default() };
        self.end_mailing(session.ctx.id, author, guard, ending, now).await
    }

    /// The patron rates the chat once it has ended (DESIGN §9: an optional
    /// rating and comment). Rating again replaces the first.
    pub async fn patron_rate(&self, session: &SessionRecord, rating: u8, comment: Option<&str>) -> AppResult<()> {
        if !(1..=5).contains(&rating) {
            return Err(DomainError::invalid("rating", "give 1 to 5").into());
        }
        let comment = match comment.map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) => Some(
                Body::parse(c, 2000)
                    .map_err(|_| DomainError::invalid("comment", "at most 2000 characters of text"))?
                    .into_string(),
            ),
            None => None,
        };
        if session.state != refdesk_domain::chat::SessionState::Ended {
            return Err(DomainError::Conflict("rate the chat once it has ended".into()).into());
        }
        // A chat no librarian took has nothing to rate: its ratings would
        // skew the service's reports, and push patrons' real comments out
        // of the newest the report keeps.
        if session.accepted_at.is_none() {
            return Err(DomainError::Conflict("no librarian took this chat: there is nothing to rate".into()).into());
        }
        Ok(self.store.rate(session.ctx.id, rating, comment).await?)
    }

    /// The patron asks for (or, with `None`, cancels) the transcript by
    /// e-mail at the end of the chat, to the address they confirm.
    /// `ip`: the client's address, for the cap on transcripts per network.
    /// Once the chat has ended the transcript is queued at once (once per
    /// chat, of a chat a librarian took).
    pub async fn request_transcript(
        &self,
        session: &SessionRecord,
        email: Option<&str>,
        utc_offset: Option<i32>,
        ip: Option<std::net::IpAddr>,
    ) -> AppResult<Option<String>> {
        let email = crate::mail::email_address(email)?;
        let utc_offset = utc_offset.map(input::utc_offset).transpose()?;
        if !session.state.accepts_messages() {
            // Ended: sent at once, if it may be (the store says why not).
            let Some(to) = email else {
                return Err(DomainError::Conflict("the chat has ended".into()).into());
            };
            self.may_ask_transcript(&crate::blocks::Asker { ip, browser: None }.keys())?;
            let max = Some(self.limits.patron_mails_per_recipient_per_day);
            let now = self.clock.now();
            self.store
                .transcript_after_end(session.ctx.id, to.clone(), utc_offset, Box::new(transcript_mail), max, now)
                .await?;
            self.mail_wakeup.notify_one();
            return Ok(Some(to));
        }
        if email.is_some() {
            self.may_ask_transcript(&crate::blocks::Asker { ip, browser: None }.keys())?;
        }
        let most = u64::from(self.limits.max_chat_lines);
        self.store.set_transcript_to(session.ctx.id, email.clone(), utc_offset, most, self.clock.now()).await?;
        Ok(email)
    }

    pub(crate) fn new_message(
        &self,
        author: Author,
        kind: MessageKind,
        body: &str,
        client_id: Option<&str>,
    ) -> AppResult<NewMessage> {
        let body = Body::parse(body, self.limits.max_message_chars)?;
        let client_id = client_id.map(ClientId::parse).transpose()?;
        Ok(NewMessage {
            author,
            kind,
            audience: kind.audience(),
            body: body.into_string(),
            client_id: client_id.map(|c| c.as_str().to_owned()),
            system: None,
        })
    }

    /// A patron typing (never stored). Patrons write no notes.
    pub fn patron_typing(
        &self,
        session: &SessionRecord,
        ctx: refdesk_domain::chat::SessionContext,
        note: bool,
        on: bool,
    ) -> AppResult<()> {
        if note {
            return Err(DomainError::Forbidden("patrons cannot write notes").into());
        }
        let who = session.patron_display();
        self.bus.publish_ephemeral(Event::Typing {
            ctx,
            audience: Audience::Everyone,
            who,
            by: Some(Typist::Patron),
            on,
        });
        Ok(())
    }

    /// A staff member typing (never stored): only where they may write that
    /// kind of line, so a monitoring or whispering member never shows up
    /// to the patron as "typing" (B2). Typing a note is staff-only.
    pub fn staff_typing(
        &self,
        staff: &Staff,
        ctx: refdesk_domain::chat::SessionContext,
        note: bool,
        on: bool,
    ) -> AppResult<()> {
        let kind = if note { MessageKind::Note } else { MessageKind::Message };
        authorize(staff, Action::Send(kind), &Target::of(&ctx, refdesk_domain::chat::SessionState::Active))?;
        self.publish_staff_typing(staff, ctx, note, on);
        Ok(())
    }

    /// Publishes a staff member's typing to the audience of its composer
    /// (a note's: staff only), without asking whether they may write
    /// there: for an "off" that follows the "on" [`App::staff_typing`]
    /// allowed (`Feed::staff_typing`), which must reach whoever was told
    /// "on" even once their conference mode no longer lets them write.
    pub(crate) fn publish_staff_typing(
        &self,
        staff: &Staff,
        ctx: refdesk_domain::chat::SessionContext,
        note: bool,
        on: bool,
    ) {
        let audience = if note { Audience::Staff } else { Audience::Everyone };
        let by = Some(Typist::Staff(staff.id));
        self.bus.publish_ephemeral(Event::Typing { ctx, audience, who: staff.display_name.clone(), by, on });
    }

    // --- the librarian's side ----------------------------------------------

    /// The waiting chats of a cooperative's queues, oldest first, as the
    /// store has them — read from it at most once per change of a queue
    /// heard on this node and per [`WAITING_FRESH`] (5 s), whoever asks: every
    /// desk's `queue` and going on duty read the cooperative's whole line
    /// (a librarian's sockets asking in a loop kept both cores busy with
    /// 1,800 strangers waiting). A read that began before a change is
    /// current for nobody after it; the caller has joined the queues'
    /// events before asking, so what it reads and what it hears next meet.
    pub(crate) async fn waiting_now(
        &self,
        coop: refdesk_domain::ids::CooperativeId,
    ) -> AppResult<Arc<Vec<QueueEntry>>> {
        let cached = |changes: (u64, u64)| {
            let cache = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
            cache
                .get(&coop)
                .filter(|r| r.changes == changes && r.at.elapsed() < WAITING_FRESH)
                .map(|r| r.entries.clone())
        };
        if let Some(entries) = cached(self.bus().queue_changes(coop)) {
            return Ok(entries);
        }
        // One read at a time per cooperative (another's flood does not hold
        // this one's up): those waiting for it find it when it is done.
        let turn = {
            let mut turns = self.waiting_reading.lock().unwrap_or_else(|p| p.into_inner());
            turns.entry(coop).or_default().clone()
        };
        let _turn = turn.lock().await;
        let changes = self.bus().queue_changes(coop);
        if let Some(entries) = cached(changes) {
            return Ok(entries);
        }
        self.metrics().queue_reads.inc();
        let at = std::time::Instant::now();
        let entries = Arc::new(self.store.waiting_in(coop).await?);
        let read = WaitingRead { changes, at, entries: entries.clone() };
        self.waiting.lock().unwrap_or_else(|p| p.into_inner()).insert(coop, read);
        Ok(entries)
    }

    /// The waiting chats this staff member may serve now, oldest first.
    pub async fn queue(&self, staff: &Staff) -> AppResult<Vec<QueueEntry>> {
        // Waiting patrons are offered to staff on duty (DESIGN §9).
        if !self.is_on_duty(staff).await? {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let rollup = self.rollup_ms();
        Ok(self
            .waiting_now(staff.home.cooperative)
            .await?
            .iter()
            .filter(|e| {
                let t = Target {
                    placement: e.queue,
                    state: refdesk_domain::chat::SessionState::Waiting,
                    librarian: None,
                    referred: false,
                    members: &[],
                };
                authorize(staff, Action::Serve { waited: now - e.since, rollup, coop_now: e.coop_now }, &t).is_ok()
            })
            .cloned()
            .collect())
    }

    /// Accepts a waiting chat. Exactly one of several simultaneous accepts
    /// wins (I6); the question appears in the patron's library (R1).
    pub async fn accept(&self, staff: &Staff, session: SessionId) -> AppResult<SessionRecord> {
        if !self.is_on_duty(staff).await? {
            return Err(DomainError::Conflict("you are off duty: go on duty to take chats".into()).into());
        }
        let now = self.clock.now();
        let rollup = self.rollup_ms();
        let who = staff.clone();
        let guard: Guard = Box::new(move |rec| {
            // Outside the chats one may serve, nothing is said about its state.
            if !may_serve(&who, rec, now, rollup) {
                return Err(DomainError::NotFound("waiting chat"));
            }
            Ok(())
        });
        let (rec, _) = self.store.accept(session, staff.clone(), guard, now).await?;
        Ok(rec)
    }

    /// The active chats this staff member is chatting in.
    pub async fn my_sessions(&self, staff: &Staff) -> AppResult<Vec<SessionRecord>> {
        Ok(self.store.sessions_of(staff.id).await?)
    }

    /// A staff member sends a message or a librarian note.
    pub async fn staff_send(
        &self,
        staff: &Staff,
        session: SessionId,
        kind: MessageKind,
        body: &str,
        client_id: Option<&str>,
    ) -> AppResult<Appended> {
        let author = Author::Staff { id: staff.id, name: staff.display_name.clone() };
        let msg = self.new_message(author, kind, body, client_id)?;
        let mut guard = self.line_guard(staff, Action::Send(kind));
        let now = self.clock.now();
        let counted = self.written.take(staff.id, self.limits.staff_lines_per_day, now);
        if let Err(spent) = &counted {
            // Refused in the store's write, not here: a line already stored
            // under its client id is acknowledged again whatever the cap
            // says now (I4: a re-send after a lost ack is not refused).
            let (may, spent) = (guard, spent.clone());
            guard = Box::new(move |rec| may(rec).and(Err(spent.clone())));
        }
        let appended = self.store.append(session, msg, guard, now).await;
        if counted.is_ok() && !matches!(appended, Ok(refdesk_store::Appended { duplicate: false, .. })) {
            self.written.give_back(staff.id, now);
        }
        Ok(committed(appended?))
    }

    /// The chatting librarian ends the chat (R5).
    pub async fn staff_end(&self, staff: &Staff, session: SessionId) -> AppResult<Message> {
        let author = Author::Staff { id: staff.id, name: staff.display_name.clone() };
        let guard = staff_guard(staff, Action::End);
        self.end_mailing(session, author, guard, refdesk_store::Ending::default(), self.clock.now()).await
    }

    /// Ends a chat the way a patron, its librarian or the idle round does:
    /// its transcript queued if the patron asked for one, within the cap per
    /// recipient (counted again in the end's own write), and the mailer
    /// woken. The one place that sets the cap, so that no way of ending a
    /// chat a librarian took forgets it.
    pub(crate) async fn end_mailing(
        &self,
        id: SessionId,
        author: Author,
        guard: Guard,
        ending: refdesk_store::Ending,
        now: refdesk_domain::Millis,
    ) -> AppResult<Message> {
        let ending = refdesk_store::Ending {
            transcripts_per_recipient_per_day: Some(self.limits.patron_mails_per_recipient_per_day),
            ..ending
        };
        let line = self.store.end(id, author, guard, Box::new(transcript_mail), ending, now).await?;
        self.mail_wakeup.notify_one();
        Ok(line)
    }

    /// Sets or changes the resolution code; the code decides the status (R6),
    /// every change goes to the timeline (R7), and the session shows
    /// "Resolution code set" (R5). The READ scale level, if given, is
    /// recorded with it.
    pub async fn set_code(
        &self,
        staff: &Staff,
        session: SessionId,
        code: &str,
        read_scale: Option<u8>,
    ) -> AppResult<QuestionState> {
        let key = code.to_owned();
        let (me, now) = (staff.clone(), self.clock.now());
        // Who a code may give the question to, as the chat is now (a chat
        // that changed hands since gives it to nobody: read again next time).
        let (chatter, question) = match self.store.session(session).await? {
            Some(rec) => (
                self.chatter_in_scope(rec.ctx.librarian, &rec.ctx.placement, rec.ctx.referred.as_ref()).await?,
                rec.ctx.question,
            ),
            None => (None, None),
        };
        // Whether the code flags the question for follow-up by its library
        // (it was not): that library's desks are told once it commits.
        let flagged = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flags = flagged.clone();
        let decide: refdesk_store::Decide = Box::new(move |before, rec, codes| {
            // A librarian who chatted for the cooperative codes the chat
            // while they are part of it, as on the question page.
            let ctx = &rec.ctx;
            let standing = authorize_question(&me, &ctx.placement, ctx.referred.as_ref(), ctx.librarian)?;
            authorize_question_work(standing, Work::WrapUp, rec.ended_at, now)?;
            let code = refdesk_domain::question::pick_code(codes, &key, before.code.as_deref())?;
            if code.referred {
                return Err(DomainError::invalid(
                    "code",
                    "referring needs a receiving library: refer from the question page",
                ));
            }
            let chatting = crate::questions::chatting_for_code(rec.ctx.librarian, chatter, &me, ctx.placement.library);
            let mut state = apply_code(before, code, chatting, None);
            state.read_scale = read_scale.or(state.read_scale);
            flags.store(!before.follow_up && state.follow_up, std::sync::atomic::Ordering::Relaxed);
            Ok(state)
        });
        let mut guard = self.line_guard(staff, Action::SetCode);
        // A code set writes a line in the chat and an entry in its
        // question's history: counted as a line, or an admin could write
        // one again and again into every ended chat in scope. Past the
        // day's count only a code set again is refused: a chat's first
        // code never is (its question's status waits on it, R5, R6).
        let now = self.clock.now();
        let counted = self.written.take(staff.id, self.limits.staff_lines_per_day, now);
        if let Err(spent) = &counted {
            let (may, spent) = (guard, spent.clone());
            guard = Box::new(move |rec| if rec.code_set { may(rec).and(Err(spent.clone())) } else { may(rec) });
        }
        let set = self.store.set_code(session, code.to_owned(), staff.clone(), guard, decide, now).await;
        if counted.is_ok() && set.is_err() {
            self.written.give_back(staff.id, now);
        }
        let state = set?.0;
        // Read for the desks' notice (its library, its words): the code
        // stands whether or not the read does.
        if let Some(id) = question.filter(|_| flagged.load(std::sync::atomic::Ordering::Relaxed)) {
            if let Ok(Some(q)) = self.store.question(id).await {
                self.tell_follow_up(staff, &q);
            }
        }
        Ok(state)
    }

    /// The resolution codes offered to this staff member.
    pub async fn codes(&self, staff: &Staff) -> AppResult<Vec<refdesk_domain::question::ResolutionCode>> {
        Ok(self.store.codes(staff.home.cooperative).await?)
    }

    /// A page of a session's transcript as `viewer` may see it — through
    /// the one visibility function, like every other output: the lines
    /// after `after`, at most [`STAFF_PAGE_LINES`] and
    /// [`STAFF_PAGE_BYTES`] of text, and whether more follow.
    pub async fn transcript(
        &self,
        viewer: &Viewer,
        session: SessionId,
        after: u64,
    ) -> AppResult<(SessionRecord, Vec<Message>, bool)> {
        let rec = self.store.session(session).await?.ok_or(DomainError::NotFound("session"))?;
        match viewer {
            Viewer::Patron { session: own } if *own == session => {}
            Viewer::Patron { .. } => return Err(DomainError::NotFound("session").into()),
            Viewer::Staff(staff) => authorize_view_at(staff, &rec.ctx, rec.state, rec.ended_at, self.clock.now())?,
        }
        let (page, more) = self.staff_page(session, after).await?;
        // The lines are judged by the session as it is after them: a change
        // of hands committed since the first read may have put the chat out
        // of view, or it may be the last of the lines read.
        let rec = self.store.session(session).await?.ok_or(DomainError::NotFound("session"))?;
        if let Viewer::Staff(staff) = viewer {
            authorize_view_at(staff, &rec.ctx, rec.state, rec.ended_at, self.clock.now())?;
        }
        let mut visible: Vec<Message> = transcript(viewer, &rec.ctx, &page).cloned().collect();
        let cut = within_budget(&mut visible, STAFF_PAGE_BYTES).is_some();
        Ok((rec, visible, more || cut))
    }

    /// The most bytes a line's text can take (UTF-8: 4 a character).
    pub(crate) fn longest_line(&self) -> usize {
        self.limits.max_message_chars * 4
    }

    /// A session's lines after `after` as stored (not yet judged by the
    /// visibility function): at most [`STAFF_PAGE_LINES`], read until their
    /// text passes [`STAFF_PAGE_BYTES`]; and whether more follow.
    pub(crate) async fn staff_page(&self, session: SessionId, after: u64) -> AppResult<(Vec<Message>, bool)> {
        let read = |from, n| self.store.messages_after(session, from, n);
        let text = |lines: &[Message]| lines.iter().map(|m| m.body.len()).sum();
        let budget = (STAFF_PAGE_BYTES, self.longest_line());
        let (mut page, cut_short) = read_page(read, text, after, STAFF_PAGE_LINES, budget).await?;
        let more = cut_short || page.len() > STAFF_PAGE_LINES as usize;
        page.truncate(STAFF_PAGE_LINES as usize);
        Ok((page, more))
    }

    /// A page of the patron's own chat as the patron may see it: their
    /// lines after their number `after`, at most `limit` (1–500) and at
    /// most [`PATRON_PAGE_BYTES`] of text, the number of the last one and
    /// whether more follow. A long chat is never loaded whole for one
    /// request.
    pub async fn patron_page(&self, rec: &SessionRecord, after: u64, limit: u32) -> AppResult<PatronPage> {
        if !(1..=500).contains(&limit) {
            return Err(DomainError::invalid("limit", "read 1 to 500 lines at a time").into());
        }
        let viewer = Viewer::Patron { session: rec.ctx.id };
        let shown = |lines: &[Message]| transcript(&viewer, &rec.ctx, lines).map(|m| m.body.len()).sum();
        // Their lines alone are read: the lines for staff are neither read
        // nor counted, in the limit or the text's budget, so a page's length
        // says nothing of them. `after` is the patron's number
        // (`Message::patron_seq`), and so are the page's: no gap shows
        // where staff wrote either.
        let read = |from, n| self.store.lines_for_everyone_after(rec.ctx.id, from, n);
        let budget = (PATRON_PAGE_BYTES, self.longest_line());
        let (from, seen) = self.store.seen_by_patron(rec.ctx.id, after).await?;
        let (mut page, cut_short) = read_page(read, shown, from, limit, budget).await?;
        let mut more = cut_short || page.len() > limit as usize;
        page.truncate(limit as usize);
        let mut last = page.last().map_or(seen, |m| m.patron_seq);
        let mut messages: Vec<Message> =
            transcript(&viewer, &rec.ctx, &page).map(|m| as_seen(&viewer, m.clone())).collect();
        if let Some(kept) = within_budget(&mut messages, PATRON_PAGE_BYTES) {
            last = kept;
            more = true;
        }
        Ok(PatronPage { messages, last, more })
    }

    /// Every library, read now.
    pub async fn libraries(&self) -> AppResult<Vec<LibraryRecord>> {
        Ok(self.store.libraries().await?)
    }

    /// Every library, for the open list (`GET /api/libraries`: pickers and
    /// the start page, which anyone may ask for as often as they like): read
    /// from the store by one request at a time, at most once every
    /// [`LISTED_FOR`] on this node. While a read is under way the others are
    /// served the list as it was (or wait for the read, when there is none);
    /// when a read fails, the list as it was for [`LISTED_FOR`] (or the
    /// failure, without asking the store again). A library this node adds
    /// shows at once; one another node adds, within [`LISTED_FOR`].
    pub async fn listed_libraries(&self) -> AppResult<Arc<Vec<LibraryRecord>>> {
        let mut waited = false;
        loop {
            let now = self.clock.now();
            let recent = |at: Millis| (0..LISTED_FOR).contains(&(now - at));
            let (was, changes) = {
                let listed = self.listed.lock().unwrap_or_else(|p| p.into_inner());
                let was = listed.read.as_ref().map(|(at, libs)| (recent(*at), libs.clone()));
                match was {
                    Some((true, libs)) => return Ok(libs),
                    Some((false, libs)) if listed.failed_at.is_some_and(recent) => return Ok(libs),
                    None if listed.failed_at.is_some_and(recent) => {
                        return Err(AppError::Unavailable("the libraries could not be read a moment ago".into()))
                    }
                    _ => {}
                }
                (was.map(|(_, libs)| libs), listed.changes)
            };
            let reading = match crate::flight::turn(&self.listing, was.clone(), &mut waited).await {
                Turn::Read(reading) => reading,
                Turn::Serve(libs) => return Ok(libs),
                Turn::Again => continue,
            };
            let read = self.store.libraries().await;
            let mut listed = self.listed.lock().unwrap_or_else(|p| p.into_inner());
            drop(reading);
            return match read {
                Ok(libs) => {
                    let libs = Arc::new(libs);
                    listed.failed_at = None;
                    if listed.changes == changes {
                        listed.read = Some((now, libs.clone()));
                    }
                    Ok(libs)
                }
                Err(e) => {
                    listed.failed_at = Some(now);
                    tracing::warn!(error = %e, "cannot read the libraries; the list as last read is served meanwhile");
                    match was {
                        Some(libs) => Ok(libs),
                        None => Err(e.into()),
                    }
                }
            };
        }
    }

    /// A library was added on this node: the open list is read again.
    pub(crate) fn library_added(&self) {
        let mut listed = self.listed.lock().unwrap_or_else(|p| p.into_inner());
        listed.read = None;
        listed.failed_at = None;
        listed.changes += 1;
        drop(listed);
        // A renamed one is read again at once.
        self.libraries.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Says that a line is committed, in the caller's span (the socket's or the
/// request's id): the other end's "message passed on" names the same
/// session and seq, so one message can be followed from socket to commit
/// to delivery. Never its text.
fn committed(appended: Appended) -> Appended {
    let m = &appended.message;
    tracing::debug!(session = %m.session, seq = m.seq, duplicate = appended.duplicate, "message committed");
    appended
}

/// A valid argon2id hash of a random string, used to spend the time of a
/// real check when the username does not exist.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$2bJXwd0SjSZ0eHH0hbm6Ikfmd0V9j0nrGhJqk3Cqkxk";

/// Lines first read at once for a patron's page; each read after it takes
/// twice as many (see [`read_page`]).
const PAGE_CHUNK: u32 = 16;

/// Reads the lines after `after`, [`PAGE_CHUNK`] then twice as many each time
/// (a page of 500 short lines is 6 reads), until `limit + 1`
/// are read, the chat has no more, the text `shown` of what was read
/// passes `budget`, or the text read passes twice it: a page of long lines
/// reads little more than it can show (500 lines of 16 KB would be 8 MB
/// read for 64 KiB sent), and a patron's page of lines they may not see
/// (long notes) no more than one they may. No read asks for more lines
/// than twice the budget, less what was read, could hold at `longest`
/// bytes each (but [`PAGE_CHUNK`] at least): after many short lines, a
/// doubled read of long ones would otherwise be many times the budget
/// (1,024 lines of 16 KB). So a page reads at most about twice its budget
/// and a chunk. Returns the lines and whether the text cut the reading
/// short.
pub(crate) async fn read_page<L: Line, F, Fut>(
    mut read: F,
    shown: impl Fn(&[L]) -> usize,
    after: u64,
    limit: u32,
    (budget, longest): (usize, usize),
) -> AppResult<(Vec<L>, bool)>
where
    F: FnMut(u64, u32) -> Fut,
    Fut: std::future::Future<Output = refdesk_store::Result<Vec<L>>>,
{
    let (mut lines, mut text, mut from, mut chunk_size) = (Vec::new(), 0, after, PAGE_CHUNK);
    let mut read_bytes = 0;
    loop {
        let room =
            ((2 * budget).saturating_sub(read_bytes) / longest.max(1)).clamp(PAGE_CHUNK as usize, u32::MAX as usize);
        let room = u32::try_from(room).unwrap_or(u32::MAX);
        let want = (limit + 1 - lines.len() as u32).min(chunk_size).min(room);
        chunk_size = chunk_size.saturating_mul(2);
        let chunk = read(from, want).await?;
        let done = chunk.len() < want as usize;
        from = chunk.last().map_or(from, Line::seq);
        text += shown(&chunk);
        read_bytes += chunk.iter().map(Line::text_len).sum::<usize>();
        lines.extend(chunk);
        if done || lines.len() > limit as usize {
            return Ok((lines, false));
        }
        if text > budget || read_bytes > 2 * budget {
            return Ok((lines, true));
        }
    }
}

/// What [`read_page`] reads: a chat's lines, a staff IM conversation's.
pub(crate) trait Line {
    /// Its number in its chat or conversation.
    fn seq(&self) -> u64;
    /// The bytes of its text.
    fn text_len(&self) -> usize;
}

impl Line for Message {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn text_len(&self) -> usize {
        self.body.len()
    }
}

impl Line for refdesk_domain::event::ImMessage {
    fn seq(&self) -> u64 {
        self.seq
    }
    fn text_len(&self) -> usize {
        self.body.len()
    }
}

/// Cuts `messages` before the line that takes their text past `budget`
/// (the first is kept whatever its length; the next page starts there).
/// The number of the last line kept, when lines were cut.
pub(crate) fn within_budget<L: Line>(messages: &mut Vec<L>, budget: usize) -> Option<u64> {
    let mut text = 0;
    let over = messages.iter().position(|m| {
        text += m.text_len();
        text > budget
    });
    let kept = over.map(|i| i.max(1)).filter(|&kept| kept < messages.len())?;
    messages.truncate(kept);
    Some(messages[kept - 1].seq())
}

/// A library whose admins closed its chat takes no new chat nor question:
/// the patron reads their notice instead.
pub(crate) fn refuse_closed(lib: &LibraryRecord) -> Result<(), DomainError> {
    match &lib.closed_notice {
        Some(notice) => Err(DomainError::Closed(notice.clone())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::DUMMY_HASH;
    use super::{read_page, PATRON_PAGE_BYTES, STAFF_PAGE_BYTES};
    use refdesk_domain::chat::{Audience, Author, Message, MessageKind};
    use refdesk_domain::ids::SessionId;

    /// Reads a patron's page of `lines` lines of `len` bytes each; the
    /// page, whether its text cut it short, and how many lines and reads
    /// made it.
    async fn page_of(lines: u64, len: usize, limit: u32) -> (usize, bool, usize, usize) {
        let (page, cut, read, reads, _) = page_of_lines(lines, |_| len, limit, PATRON_PAGE_BYTES, false).await;
        (page, cut, read, reads)
    }

    /// [`page_of`] with line `seq` `len(seq)` bytes long, the budget given
    /// and, with `notes`, every line a note (never shown); and the bytes read.
    async fn page_of_lines(
        lines: u64,
        len: impl Fn(u64) -> usize,
        limit: u32,
        budget: usize,
        notes: bool,
    ) -> (usize, bool, usize, usize, usize) {
        let bytes = std::cell::Cell::new(0);
        let all: Vec<Message> = (1..=lines)
            .map(|seq| Message {
                session: SessionId(1),
                seq,
                patron_seq: if notes { 0 } else { seq },
                kind: if notes { MessageKind::Note } else { MessageKind::Message },
                audience: if notes { Audience::Staff } else { Audience::Everyone },
                author: Author::System,
                body: "x".repeat(len(seq)),
                client_id: None,
                at: 0,
                system: None,
            })
            .collect();
        let (read, reads) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
        let chunk = |from: u64, n: u32| {
            let got: Vec<Message> = all.iter().filter(|m| m.seq > from).take(n as usize).cloned().collect();
            read.set(read.get() + got.len());
            reads.set(reads.get() + 1);
            bytes.set(bytes.get() + got.iter().map(|m| m.body.len()).sum::<usize>());
            std::future::ready(Ok(got))
        };
        let shown = |ls: &[Message]| ls.iter().filter(|m| m.audience == Audience::Everyone).map(|m| m.body.len()).sum();
        let (page, cut) = read_page(chunk, shown, 0, limit, (budget, 16_000)).await.unwrap();
        (page.len(), cut, read.get(), reads.get(), bytes.get())
    }

    #[tokio::test]
    async fn a_page_of_long_lines_reads_little_more_than_it_can_show() {
        // 500 lines of 16 KB asked for: 64 KiB are shown, so a chunk is read.
        let (lines, cut, read, reads) = page_of(2_000, 16_000, 500).await;
        assert!(cut && lines == read && read <= 16, "{read} lines read for {} KiB", PATRON_PAGE_BYTES / 1024);
        assert_eq!(reads, 1);
        // Short lines: the page is the limit and one more, in reads of 16
        // (what 128 KiB holds of the longest lines, but 16 at least).
        assert_eq!(page_of(2_000, 10, 500).await, (501, false, 501, 32));
        // The chat ends first.
        assert_eq!(page_of(40, 10, 500).await, (40, false, 40, 3));
        assert_eq!(page_of(0, 10, 500).await, (0, false, 0, 1));
        // A staff page of 1,008 short lines then the longest ones: the
        // reads after the short lines do not double to 1,024 long lines
        // (16 MB); the page reads about twice its budget at most.
        let long_after = |seq: u64| if seq <= 1_008 { 10 } else { 16_000 };
        let (_, cut, _, _, bytes) = page_of_lines(2_000, long_after, 5_000, STAFF_PAGE_BYTES, false).await;
        assert!(cut && bytes <= 2 * STAFF_PAGE_BYTES + 16 * 16_000, "{bytes} bytes read for a page of 1 MiB");
        // A patron's page of 600 long notes, which it shows none of: read
        // no further than a page of lines it shows (it said 8 MB before).
        let (_, cut, _, _, bytes) = page_of_lines(600, |_| 16_000, 500, PATRON_PAGE_BYTES, true).await;
        assert!(cut && bytes <= 2 * PATRON_PAGE_BYTES + 16 * 16_000, "{bytes} bytes read for a page of 64 KiB");
    }

    #[test]
    fn the_dummy_hash_is_a_real_argon2id_hash_so_unknown_users_cost_a_real_check() {
        let parsed = argon2::password_hash::PasswordHash::new(DUMMY_HASH).expect("a PHC string");
        assert_eq!(parsed.algorithm.as_str(), "argon2id");
        assert!(parsed.hash.is_some_and(|h| h.len() == 32));
    }
}
