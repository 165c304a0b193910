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

/// Entries kept per cooperative: past it, the oldest are deleted as new
/// ones are written, but never one younger than [`ADMIN_LOG_KEPT_DAYS`].
pub const ADMIN_LOG_KEPT: u32 = 10_000;

/// Days an entry is kept whatever the cap.
pub const ADMIN_LOG_KEPT_DAYS: i64 = 30;

/// Changes one admin may make in a UTC day on a node (`429
/// too_many_changes` past it, nothing changed). A cooperative's admins make
/// a few a day, a library's first day a few hundred; a stolen admin sign-in
/// looping changes at its write budget would otherwise write 1.7 million
/// entries a day, or push every other entry out past the cap.
pub const ADMIN_CHANGES_PER_DAY: u32 = 500;

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
    /// The institution's name, if it concerns one (a library's too).
    pub institution: Option<String>,
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
    /// Counts a change `actor` is about to make (the operator's are not
    /// counted); refused past [`ADMIN_CHANGES_PER_DAY`] today.
    pub(crate) fn admin_change(&self, actor: Option<&Staff>) -> Result<(), DomainError> {
        let Some(actor) = actor else { return Ok(()) };
        self.admin_changes.take_or(actor.id, ADMIN_CHANGES_PER_DAY, self.clock.now(), || DomainError::Limited {
            code: "too_many_changes",
            reason: format!(
                "you have made {ADMIN_CHANGES_PER_DAY} changes to accounts and settings today; you may make more tomorrow"
            ),
        })
    }

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
            actor_name: actor.map(|a| who(&a.display_name, &a.username)),
            action: action.to_owned(),
            detail,
        };
        let young = entry.at - ADMIN_LOG_KEPT_DAYS * 86_400_000;
        if let Err(e) = self.store.log_admin(entry.clone(), ADMIN_LOG_KEPT, young).await {
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
        let institutions = self.store.institutions().await?;
        Ok(entries
            .into_iter()
            .map(|entry| AdminLogLine {
                // As they were named when they made it; an entry from
                // before names were kept, as they are named now.
                by: entry.actor_name.clone().or_else(|| {
                    entry.actor.map(|id| {
                        people.iter().find(|p| p.staff.id == id).map_or_else(
                            || format!("staff member {}", id.0),
                            |p| who(&p.staff.display_name, &p.staff.username),
                        )
                    })
                }),
                library: entry
                    .library
                    .and_then(|id| libraries.iter().find(|l| l.placement.library == id).map(|l| l.name.clone())),
                institution: entry
                    .institution
                    .and_then(|id| institutions.iter().find(|i| i.id == id).map(|i| i.name.clone())),
                entry,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::app_on_sqlite;

    /// An admin's changes of a day are counted whatever they change; past
    /// the day's, each is refused before anything is written, and a change
    /// that changes nothing is counted but not logged.
    #[tokio::test]
    async fn an_admin_makes_so_many_changes_a_day_and_one_past_them_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_on_sqlite(&dir).await;
        let (_, carla) = app.login("carla", crate::demo::PASSWORD, true).await.unwrap();
        let logged = |app: &App| {
            let app = app.clone();
            let carla = carla.clone();
            async move { app.admin_log(&carla, ADMIN_LOG_PAGE).await.unwrap().len() }
        };
        let before = logged(&app).await;
        for i in 0..ADMIN_CHANGES_PER_DAY {
            app.set_blocked_may_ask(&carla, "riverside-main", (i / 2) % 2 == 1).await.unwrap();
        }
        // Every other one changed nothing (false, false, true, true, …).
        assert_eq!(logged(&app).await, before + ADMIN_CHANGES_PER_DAY as usize / 2);
        let refused = app.set_blocked_may_ask(&carla, "riverside-main", false).await.unwrap_err();
        assert!(refused.to_string().contains("changes to accounts and settings today"), "{refused}");
        assert!(app.store.blocked_may_ask(carla.home.library).await.unwrap(), "as it was");
        assert_eq!(logged(&app).await, before + ADMIN_CHANGES_PER_DAY as usize / 2, "nothing logged");
        // Another admin is not held back.
        let (_, dev) = app.login("dev", crate::demo::PASSWORD, true).await.unwrap();
        app.set_blocked_may_ask(&dev, "riverside-main", false).await.unwrap();
    }
}
