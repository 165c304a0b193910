//! Patron privacy (issue 15): each library's retention period, erasing a
//! patron's personal data on request, and the audit list of both. What
//! erasing does is the store's (`refdesk_store::Privacy::erase`); who may,
//! and which chats, is decided here.
//!
//! Logs name the admin and count chats; they never carry the e-mail address
//! searched for, nor anything of the chats.

use crate::audit::Concerns;
use crate::{App, AppResult};
use refdesk_domain::authz::{authorize_admin, Admin};
use refdesk_domain::chat::SessionState;
use refdesk_domain::event::Event;
use refdesk_domain::ids::{LibraryId, SessionId};
use refdesk_domain::org::Staff;
use refdesk_domain::privacy::{Retention, Transcripts};
use refdesk_domain::report::DAY;
use refdesk_domain::{DomainError, Millis};
use refdesk_store::{ErasureReason, PatronSession, PrivacyEntry};

/// How many chats one write erases: a run of the retention period is cut
/// into writes this size, so that chats going on meanwhile wait little.
const ERASE_BATCH: u32 = 100;

/// The most chats one run erases per library; the next run goes on.
const ERASE_PER_RUN: usize = 20_000;

/// The most chats one request erases (one write: on SQLite, other writes
/// wait for it).
pub const ERASE_MAX: usize = 200;

/// How long a delivered e-mail stays in the outbox: long enough to answer
/// "did my answer go?", not an archive of answers and transcripts (the
/// chat and its question keep what was said).
pub const SENT_MAIL_KEPT: Millis = 7 * DAY;

/// The most delivered e-mails one run deletes (a write of its own; the
/// next run, ten minutes on, goes on).
const SENT_MAIL_PER_RUN: u32 = 2_000;

/// How often the retention periods are applied.
pub const RETENTION_EVERY: Millis = 10 * 60_000;

/// The most chats a look ahead at a retention period counts (more: "more
/// than this"); a run erases up to `ERASE_PER_RUN` a library.
pub const DUE_COUNTED: u32 = 10_000;

/// A chat found for an erase request, with its library's name.
#[derive(Clone, Debug)]
pub struct PatronChat {
    /// The chat.
    pub found: PatronSession,
    /// Its library's name.
    pub library_name: String,
}

impl App {
    /// The libraries whose patron privacy `staff` administers.
    async fn privacy_scope(&self, staff: &Staff) -> AppResult<Vec<(LibraryId, String)>> {
        if staff.role < refdesk_domain::org::Role::LibraryAdmin {
            return Err(DomainError::Forbidden("patron privacy is for the library's admins").into());
        }
        Ok(self
            .store
            .libraries()
            .await?
            .into_iter()
            .filter(|l| authorize_admin(staff, Admin::Privacy, &l.placement).is_ok())
            .map(|l| (l.placement.library, l.name))
            .collect())
    }

    /// A library's retention period (`None`: kept until erased on request).
    pub async fn retention(&self, staff: &Staff, slug: &str) -> AppResult<Option<Retention>> {
        let lib = self.library(slug).await?;
        authorize_admin(staff, Admin::Privacy, &lib.placement)?;
        Ok(self.store.retention(lib.placement.library).await?)
    }

    /// Sets or clears a library's retention period: `r` says which, or
    /// why not (judged once the caller may set it).
    pub async fn set_retention(
        &self,
        staff: &Staff,
        slug: &str,
        r: impl FnOnce() -> Result<Option<Retention>, DomainError>,
    ) -> AppResult<()> {
        let lib = self.library(slug).await?;
        authorize_admin(staff, Admin::Privacy, &lib.placement)?;
        let r = r()?;
        let was = self.store.retention(lib.placement.library).await?;
        self.admin_change(Some(staff))?;
        self.store.set_retention(lib.placement.library, r, staff.id, self.clock.now()).await?;
        // Its patrons are told at once on this node (the others read it
        // again within seconds).
        self.library_added();
        let detail = match r {
            Some(r) => format!(
                "personal data removed after {} day{}, transcripts {}",
                r.days,
                if r.days == 1 { "" } else { "s" },
                match r.transcripts {
                    refdesk_domain::privacy::Transcripts::Mask => "kept masked",
                    refdesk_domain::privacy::Transcripts::Delete => "deleted",
                }
            ),
            None => "personal data kept until erased".to_owned(),
        };
        if was != r {
            self.log_admin(Some(staff), Concerns::Library(lib.placement), "retention", detail).await;
        }
        tracing::info!(library = %slug, days = r.map(|r| r.days), staff = %staff.username, "retention period set");
        Ok(())
    }

    /// How many of a library's chats a retention period of `days` would
    /// erase if it were set now (at most `DUE_COUNTED`, and whether there
    /// are more): what an admin reads before shortening a period, which
    /// erases within `RETENTION_EVERY` and cannot be undone. Changes
    /// nothing; `days` is judged once the caller may ask at all.
    pub async fn retention_due(
        &self,
        staff: &Staff,
        slug: &str,
        days: impl FnOnce() -> u32,
    ) -> AppResult<(usize, bool)> {
        let lib = self.library(slug).await?;
        authorize_admin(staff, Admin::Privacy, &lib.placement)?;
        let r = Retention::new(days(), Transcripts::Mask)?;
        // A long read on a large library: in this admin's own line, as the
        // search for a patron's chats is.
        let _turn = self.long_reads.turn(staff.id).await;
        let before = self.clock.now() - Millis::from(r.days) * DAY;
        let due = self.store.due_for_erasure(lib.placement.library, before, DUE_COUNTED + 1).await?;
        let counted = DUE_COUNTED as usize;
        Ok((due.len().min(counted), due.len() > counted))
    }

    /// Every chat of the admin's libraries that carries `email` as the
    /// patron's address or transcript address, or where an answer was
    /// e-mailed to it.
    pub async fn patron_chats(&self, staff: &Staff, email: &str) -> AppResult<Vec<PatronChat>> {
        let email = checked_email(email)?;
        let scope = self.privacy_scope(staff).await?;
        // A long read (an address with letters beyond ASCII is looked for
        // as a pattern, which may read many addresses): in this admin's
        // own line (`crate::turns`), as reports and word searches are.
        let _turn = self.long_reads.turn(staff.id).await;
        let found = self.store.patron_sessions(&email, scope.iter().map(|(id, _)| *id).collect()).await?;
        Ok(found
            .into_iter()
            .map(|f| {
                let library_name = scope.iter().find(|(id, _)| *id == f.library).map(|(_, n)| n.clone());
                PatronChat { library_name: library_name.unwrap_or_default(), found: f }
            })
            .collect())
    }

    /// Erases the personal data of `sessions`, each of which must lie in the
    /// admin's libraries and carry `email` — or, without one, be named by
    /// its number alone (a patron who gave no address, found by their
    /// question); all or nothing. Returns how many chats were erased.
    pub async fn erase_patron(
        &self,
        staff: &Staff,
        email: Option<&str>,
        sessions: Vec<SessionId>,
        transcripts: Transcripts,
    ) -> AppResult<u64> {
        if sessions.is_empty() || sessions.len() > ERASE_MAX {
            return Err(DomainError::invalid("sessions", format!("name 1 to {ERASE_MAX} chats to erase")).into());
        }
        let chats: Vec<(SessionId, Millis, SessionState)> = match email {
            Some(email) => {
                let found = self.patron_chats(staff, email).await?;
                if let Some(other) = sessions.iter().find(|s| !found.iter().any(|f| f.found.session == **s)) {
                    let why = format!("chat {} does not carry that address in your libraries", other.0);
                    return Err(DomainError::invalid("sessions", why).into());
                }
                let named = found.into_iter().filter(|f| sessions.contains(&f.found.session));
                named.map(|f| (f.found.session, f.found.created_at, f.found.state)).collect()
            }
            None => self.chats_in_privacy_scope(staff, &sessions).await?,
        };
        // Refused before the journal notes it (the store checks it again
        // inside its write): the journal holds only erasures to make.
        if let Some((live, ..)) = chats.iter().find(|(_, _, state)| *state != SessionState::Ended) {
            let why = format!("chat {} is still going on: end it before erasing it", live.0);
            return Err(DomainError::Conflict(why).into());
        }
        self.journal_erasure(staff, transcripts, chats.iter().map(|(s, at, _)| (*s, *at)).collect()).await?;
        let why = ErasureReason::Request(staff.id);
        let n = self.store.erase(sessions.clone(), transcripts, why, self.clock.now()).await?;
        self.bus.publish_ephemeral(Event::Erased { sessions });
        tracing::info!(staff = %staff.username, chats = n, "patron data erased on request");
        Ok(n)
    }

    /// The chats named, each read and found in the admin's libraries (else
    /// refused naming it), with when each started and its state.
    async fn chats_in_privacy_scope(
        &self,
        staff: &Staff,
        sessions: &[SessionId],
    ) -> AppResult<Vec<(SessionId, Millis, SessionState)>> {
        let scope = self.privacy_scope(staff).await?;
        let mut chats = Vec::with_capacity(sessions.len());
        for &id in sessions {
            let rec = self.store.session(id).await?;
            match rec.filter(|r| scope.iter().any(|(l, _)| *l == r.ctx.placement.library)) {
                Some(r) => chats.push((id, r.created_at, r.state)),
                None => {
                    let why = format!("chat {} is not one of your libraries'", id.0);
                    return Err(DomainError::invalid("sessions", why).into());
                }
            }
        }
        Ok(chats)
    }

    /// The privacy audit list of the admin's libraries, newest first, with
    /// the libraries' names and the names of the admins who erased.
    pub async fn privacy_log(&self, staff: &Staff) -> AppResult<Vec<(PrivacyEntry, String, Option<String>)>> {
        let scope = self.privacy_scope(staff).await?;
        let log = self.store.privacy_log(scope.iter().map(|(id, _)| *id).collect(), 1000).await?;
        let people = self.store.staff_of(staff.home.cooperative).await?;
        Ok(log
            .into_iter()
            .map(|e| {
                let name = scope.iter().find(|(id, _)| *id == e.library).map(|(_, n)| n.clone());
                let by =
                    e.by.and_then(|by| people.iter().find(|p| p.staff.id == by)).map(|p| p.staff.display_name.clone());
                (e, name.unwrap_or_default(), by)
            })
            .collect())
    }

    /// Applies every library's retention period at `now`: ended chats
    /// started more than the period ago lose their personal data, spent
    /// blocks of erased chats their digests, and the outbox the e-mails
    /// delivered more than [`SENT_MAIL_KEPT`] ago. Returns how many chats
    /// were erased. Runs by itself every [`RETENTION_EVERY`] ([`App::tick`]),
    /// one run at a time on a node; tests call it with their clock. A
    /// library whose chats cannot be erased now is logged and skipped; the
    /// others go on.
    pub async fn apply_retention(&self, now: Millis) -> AppResult<u64> {
        let _one_at_a_time = self.retention.lock().await;
        let mut erased = 0;
        for (library, r) in self.store.retentions().await? {
            match self.apply_one_retention(library, r, now).await {
                Ok(n) => erased += n,
                Err(e) => {
                    tracing::warn!(library = %library.0, error = %e, "cannot apply this library's retention period")
                }
            }
        }
        // Failing, it leaves the rest of the run be (tried again at the next).
        if let Err(e) = self.redo_waiting_erasures().await {
            tracing::error!(error = %e, "cannot make the erasures that waited for their chat's end yet");
        }
        self.store.forget_spent_blocks(now).await?;
        let forgotten = self.store.forget_sent_mail(now - SENT_MAIL_KEPT, SENT_MAIL_PER_RUN).await?;
        if forgotten > 0 {
            tracing::debug!(mails = forgotten, "delivered e-mails past their week deleted from the outbox");
        }
        if erased > 0 {
            tracing::info!(chats = erased, "retention periods applied");
        }
        Ok(erased)
    }

    async fn apply_one_retention(&self, library: LibraryId, r: Retention, now: Millis) -> AppResult<u64> {
        let before = now - Millis::from(r.days) * DAY;
        let (mut done, mut erased) = (0, 0);
        while done < ERASE_PER_RUN {
            let due = self.store.due_for_erasure(library, before, ERASE_BATCH).await?;
            if due.is_empty() {
                break;
            }
            done += due.len();
            erased += self.store.erase(due.clone(), r.transcripts, ErasureReason::Retention, now).await?;
            self.bus.publish_ephemeral(Event::Erased { sessions: due });
        }
        Ok(erased)
    }
}

/// An e-mail address to search for: trimmed, one `@`, at most 254 bytes,
/// no control characters (PostgreSQL refuses a NUL in text).
fn checked_email(email: &str) -> Result<String, DomainError> {
    let email = email.trim();
    let ok = email.len() <= 254
        && email.matches('@').count() == 1
        && !email.starts_with('@')
        && !email.ends_with('@')
        && !email.chars().any(char::is_control);
    if ok {
        Ok(email.to_owned())
    } else {
        Err(DomainError::invalid("email", "give the patron's e-mail address"))
    }
}
