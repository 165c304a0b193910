//! The admin log: every change admins make to accounts and settings (and
//! the operator's, from the command line), who made it, when, and where,
//! for the admins whose role covers that place to read. Nothing of a
//! patron's is in it, and never a password: names, roles and settings.
//!
//! An entry is written right after its change, before the answer: an admin
//! told a change is made finds it in the log. A failure to write it (or a
//! crash between the two writes) is logged as an error; the change stands.

use crate::{App, AppResult};
use refdesk_domain::ids::{CooperativeId, InstitutionId};
use refdesk_domain::org::{Placement, Role, Staff};
use refdesk_domain::DomainError;
use refdesk_store::{AdminEntry, ScopeLevel};

/// Entries kept per cooperative: the oldest past it are deleted as new ones
/// are written (a cooperative's admins make a few changes a day; a stolen
/// admin sign-in looping changes at its write budget cannot fill the disk).
pub const ADMIN_LOG_KEPT: u32 = 10_000;

/// Entries one read returns at most.
pub const ADMIN_LOG_PAGE: u32 = 500;

/// The place a change concerns: who may read its entry.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Concerns {
    /// A library (an account's home, a library's settings).
    Library(Placement),
    /// An institution (its name, a new one).
    Institution(InstitutionId, CooperativeId),
    /// The cooperative (its codes, its name).
    Cooperative(CooperativeId),
}

/// An entry as an admin reads it: with the names of who made it and of the
/// library it concerns.
#[derive(Clone, Debug)]
pub struct AdminLogLine {
    /// The entry.
    pub entry: AdminEntry,
    /// Who made it (`None`: the operator, from the command line).
    pub by: Option<String>,
    /// The library's name, if it concerns one.
    pub library: Option<String>,
}

/// A role's name in words ("library admin").
pub(crate) fn role_words(role: Role) -> String {
    role.as_str().replace('_', " ")
}

/// A staff member as the log names them: "Ann Archer (ann)".
pub(crate) fn who(display_name: &str, username: &str) -> String {
    format!("{display_name} ({username})")
}

impl App {
    /// Writes an admin log entry for a change just made.
    pub(crate) async fn log_admin(&self, actor: Option<&Staff>, concerns: Concerns, action: &str, detail: String) {
        let (cooperative, institution, library) = match concerns {
            Concerns::Library(p) => (p.cooperative, Some(p.institution), Some(p.library)),
            Concerns::Institution(i, c) => (c, Some(i), None),
            Concerns::Cooperative(c) => (c, None, None),
        };
        let entry = AdminEntry {
            id: 0,
            at: self.clock.now(),
            cooperative,
            institution,
            library,
            actor: actor.map(|a| a.id),
            action: action.to_owned(),
            detail,
        };
        if let Err(e) = self.store.log_admin(entry.clone(), ADMIN_LOG_KEPT).await {
            tracing::error!(error = %e, action, detail = %entry.detail, "a change was made but not written to the admin log");
        }
    }

    /// The admin log of the places `staff`'s role covers, newest first, at
    /// most `limit` entries ([`ADMIN_LOG_PAGE`] at most): library admins
    /// and above.
    pub async fn admin_log(&self, staff: &Staff, limit: u32) -> AppResult<Vec<AdminLogLine>> {
        if staff.role < Role::LibraryAdmin {
            return Err(DomainError::Forbidden("the admin log is for admins").into());
        }
        let entries = self.store.admin_log(ScopeLevel::of(staff), limit.clamp(1, ADMIN_LOG_PAGE)).await?;
        let people = self.store.staff_of(staff.home.cooperative).await?;
        let libraries = self.listed_libraries().await?;
        Ok(entries
            .into_iter()
            .map(|entry| AdminLogLine {
                by: entry.actor.map(|id| {
                    people.iter().find(|p| p.staff.id == id).map_or_else(
                        || format!("staff member {}", id.0),
                        |p| who(&p.staff.display_name, &p.staff.username),
                    )
                }),
                library: entry
                    .library
                    .and_then(|id| libraries.iter().find(|l| l.placement.library == id).map(|l| l.name.clone())),
                entry,
            })
            .collect())
    }
}
