//! Staff accounts, sign-ins and availability.

use super::org::Kin;
use super::{quiet, Backend};
use crate::api::Staffing;
use crate::sql::rows::not_found;
use crate::sql::select::{self as sel, STAFF_SELECT};
use crate::sql::{args, int, Db};
use crate::{KnownNetwork, NewLogin, NewStaff, Result, StaffEntry, StaffRecord, StaffUpdate, StoreError};

/// Networks kept per account ([`KnownNetwork`]).
const KNOWN_NETWORKS: i64 = 8;
/// A staff member's memberships of ended chats (binds the staff member).
pub(crate) const ENDED_MEMBERSHIPS: &str = "DELETE FROM session_members WHERE staff_id = ?1
       AND EXISTS (SELECT 1 FROM sessions s WHERE s.id = session_members.session_id AND s.state = 'ended')";
use async_trait::async_trait;
use refdesk_domain::event::{Availability, Event};
use refdesk_domain::ids::{CooperativeId, StaffId};
use refdesk_domain::org::{Role, Staff};
use refdesk_domain::{DomainError, Millis};

async fn create_staff<D: Db>(db: &mut D, new: NewStaff) -> Result<StaffId> {
    let count = "SELECT COUNT(*) AS n FROM staff s JOIN libraries l ON l.id = s.library_id
         JOIN institutions i ON i.id = l.institution_id
         WHERE i.cooperative_id = (SELECT i2.cooperative_id FROM libraries l2
           JOIN institutions i2 ON i2.id = l2.institution_id WHERE l2.id = ?1)";
    // Counted, then added, one at a time: two nodes adding at once would
    // otherwise each see room for one more (accounts are added seldom).
    db.lock("staff-accounts").await?;
    let (max, what) = (crate::MAX_STAFF_PER_COOPERATIVE, "staff accounts in a cooperative");
    super::org::at_most(db, count, args![new.library.0], max, what).await?;
    let in_library = "SELECT COUNT(*) AS n FROM staff WHERE library_id = ?1";
    let (max, what) = (crate::MAX_STAFF_PER_LIBRARY, "staff accounts in a library");
    super::org::at_most(db, in_library, args![new.library.0], max, what).await?;
    let coop = cooperative_of_library(db, new.library.0).await?;
    // The username first: adding an account again (the same command run
    // twice) is told that, not that its display name is someone's.
    let same = "SELECT id AS staff_id FROM staff WHERE username = ?1";
    if db.row(same, args![&new.username], |r| r.int("staff_id")).await?.is_some() {
        return Err(DomainError::Conflict(format!("the username {} is taken", new.username)).into());
    }
    super::org::name_free(db, Kin::Staff(coop), None, &new.display_name).await?;
    let id = int(
        db,
        "INSERT INTO staff (library_id, username, display_name, role, password_hash) VALUES (?1, ?2, ?3, ?4, ?5)
         RETURNING id AS staff_id",
        args![new.library.0, &new.username, &new.display_name, new.role.as_str(), &new.password_hash],
        "staff_id",
    )
    .await
    .map_err(|e| match e {
        StoreError::Domain(DomainError::Conflict(_)) => {
            DomainError::Conflict(format!("the username {} is taken", new.username)).into()
        }
        StoreError::Domain(DomainError::NotFound(_)) => not_found("library"),
        other => other,
    })?;
    Ok(StaffId(id))
}

/// The cooperative of the library `library`.
async fn cooperative_of_library<D: Db>(db: &mut D, library: i64) -> Result<CooperativeId> {
    let sql = "SELECT i.cooperative_id AS cooperative_id FROM libraries l
               JOIN institutions i ON i.id = l.institution_id WHERE l.id = ?1";
    let coop = db.row(sql, args![library], |r| r.int("cooperative_id")).await?;
    Ok(CooperativeId(coop.ok_or(not_found("library"))?))
}

async fn create_login<D: Db>(db: &mut D, login: NewLogin) -> Result<Option<Vec<String>>> {
    // The row's lock (PostgreSQL; SQLite has one writer): a reset or a
    // disabling (`update_staff`, FOR UPDATE) commits before this reads the
    // row, or after this commits (and then ends this sign-in and forgets its
    // network with the rest). NO KEY: writes that only refer to the row (an
    // accept naming its librarian) need not wait for it.
    let lock = format!("SELECT password_hash, disabled FROM staff WHERE id = ?1{}", db.dialect().no_key_update());
    let row = db.row(&lock, args![login.staff.0], |r| Ok((r.text("password_hash")?, r.flag("disabled")?))).await?;
    let (hash, disabled) = row.ok_or(not_found("staff member"))?;
    if hash != login.password_hash || disabled {
        return Ok(None);
    }
    db.exec(
        "INSERT INTO logins (token_hash, staff_id, expires_at) VALUES (?1, ?2, ?3)",
        args![&login.token_hash, login.staff.0, login.expires],
    )
    .await?;
    if let Some(from) = &login.from {
        remember_network(db, login.staff, from).await?;
    }
    // Under the row's lock: sign-ins at once keep `keep` between them. The
    // new one is never among those ended, whatever its expiry (a shorter
    // `login_hours` than before, another node's clock).
    let oldest = db
        .rows(
            "SELECT token_hash FROM logins WHERE staff_id = ?1 AND token_hash <> ?3 AND token_hash NOT IN
               (SELECT token_hash FROM logins WHERE staff_id = ?1 AND token_hash <> ?3
                ORDER BY expires_at DESC, token_hash LIMIT ?2)",
            args![login.staff.0, i64::from(login.keep.max(1) - 1), &login.token_hash],
            |r| r.text("token_hash"),
        )
        .await?;
    for token_hash in &oldest {
        db.exec("DELETE FROM logins WHERE token_hash = ?1", args![token_hash]).await?;
    }
    Ok(Some(oldest))
}

/// Notes that `staff` signed in from `from.network`; of the account's
/// networks only the 8 it signed in from last are kept.
async fn remember_network<D: Db>(db: &mut D, staff: StaffId, from: &KnownNetwork) -> Result<()> {
    // The later time stays, whichever node's clock wrote it.
    let upsert = format!(
        "INSERT INTO sign_in_networks (staff_id, network, last_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (staff_id, network) DO UPDATE SET last_at = {}(sign_in_networks.last_at, excluded.last_at)",
        db.dialect().greatest()
    );
    db.exec(&upsert, args![staff.0, &from.network, from.last_at]).await?;
    db.exec(
        "DELETE FROM sign_in_networks WHERE staff_id = ?1 AND network NOT IN
           (SELECT network FROM sign_in_networks WHERE staff_id = ?1 ORDER BY last_at DESC, network LIMIT ?2)",
        args![staff.0, KNOWN_NETWORKS],
    )
    .await?;
    Ok(())
}

/// Sets an availability; the change is announced only if there is one: a
/// desk (or a script) saying the same again and again would otherwise have
/// every staff connection of every node hear it, and every desk of that
/// person watching the queue read it whole.
async fn set_availability<D: Db>(db: &mut D, id: StaffId, a: Availability, now: Millis) -> Result<(bool, Vec<Event>)> {
    let coop = db
        .row(
            "SELECT i.cooperative_id AS cooperative_id FROM staff s JOIN libraries l ON l.id = s.library_id
             JOIN institutions i ON i.id = l.institution_id WHERE s.id = ?1",
            args![id.0],
            |r| r.int("cooperative_id"),
        )
        .await?
        .ok_or(not_found("staff member"))?;
    // Seen first, which on PostgreSQL locks the row until the commit: a
    // sign-off of someone not seen lately (`sign_off_stale`) waits, then
    // finds them seen. Then changed only where it differs, decided on the
    // row as it is under that lock (a read before the lock could miss a
    // sign-off committed meanwhile, and a real change would go untold).
    let seen = format!("UPDATE staff SET last_seen = {}(last_seen, ?2) WHERE id = ?1", db.dialect().greatest());
    db.exec(&seen, args![id.0, now]).await?;
    let change = "UPDATE staff SET availability = ?2 WHERE id = ?1 AND availability <> ?2";
    if db.exec(change, args![id.0, a.as_str()]).await? == 0 {
        return Ok((false, Vec::new()));
    }
    Ok((true, vec![Event::Availability { staff: id, cooperative: CooperativeId(coop), availability: a }]))
}

async fn touch<D: Db>(db: &mut D, ids: Vec<StaffId>, now: Millis) -> Result<()> {
    let sql = format!("UPDATE staff SET last_seen = {}(last_seen, ?2) WHERE id = ?1", db.dialect().greatest());
    for id in ids {
        db.exec(&sql, args![id.0, now]).await?;
    }
    Ok(())
}

/// Each node's tick may run this at once: the `UPDATE … RETURNING` decides
/// who is taken off duty, so each change is announced by exactly one node.
async fn sign_off_stale<D: Db>(db: &mut D, before: Millis) -> Result<(Vec<Staff>, Vec<Event>)> {
    let ids = db
        .rows(
            "UPDATE staff SET availability = 'off_duty' WHERE availability <> 'off_duty' AND last_seen < ?1
             RETURNING id AS staff_id",
            args![before],
            |r| r.int("staff_id"),
        )
        .await?;
    let mut stale = Vec::with_capacity(ids.len());
    for id in ids {
        let sql = format!("{STAFF_SELECT} WHERE s.id = ?1");
        stale.extend(db.row(&sql, args![id], sel::staff).await?);
    }
    stale.sort_by_key(|s| s.id.0);
    let events = stale
        .iter()
        .map(|s| Event::Availability {
            staff: s.id,
            cooperative: s.home.cooperative,
            availability: Availability::OffDuty,
        })
        .collect();
    Ok((stale, events))
}

async fn update_staff<D: Db>(db: &mut D, id: StaffId, update: StaffUpdate) -> Result<((), Vec<Event>)> {
    let lock = format!(
        "SELECT role, library_id, display_name, password_hash, disabled FROM staff WHERE id = ?1{}",
        db.dialect().for_update()
    );
    let now = db
        .row(&lock, args![id.0], |r| {
            Ok((
                r.text("role")?,
                r.int("library_id")?,
                r.text("display_name")?,
                r.text("password_hash")?,
                r.flag("disabled")?,
            ))
        })
        .await?;
    let (role_now, library_now, name_now, hash_now, disabled_now) = now.ok_or(not_found("staff member"))?;
    if update.password_was.as_ref().is_some_and(|was| *was != hash_now || disabled_now) {
        return Err(DomainError::Conflict("the account was changed meanwhile: sign in again".into()).into());
    }
    // Whoever decided it judged the account as it was: one promoted or
    // moved since may be outside what they may change.
    if let Some((role, library)) = update.decided_on {
        if role.as_str() != role_now || library.0 != library_now {
            return Err(DomainError::Conflict("the account was changed meanwhile: look at it again".into()).into());
        }
    }
    if let Some(role) = update.role {
        db.exec("UPDATE staff SET role = ?2 WHERE id = ?1", args![id.0, role.as_str()]).await?;
        // A demotion: what the account saw of ended chats by having been
        // in them (a conference from the monitor) goes; its role's scope
        // decides from now on. The live chats it leaves through the app,
        // with a line each (`App::manage_staff`).
        if Role::parse(&role_now).is_some_and(|was| role < was) {
            db.exec(ENDED_MEMBERSHIPS, args![id.0]).await?;
        }
    }
    if let Some(name) = &update.display_name {
        // A name kept as it was (as names are compared) is no new name.
        if name.trim().to_lowercase() != name_now.trim().to_lowercase() {
            let coop = cooperative_of_library(db, library_now).await?;
            super::org::name_free(db, Kin::Staff(coop), Some(id.0), name).await?;
        }
        db.exec("UPDATE staff SET display_name = ?2 WHERE id = ?1", args![id.0, name]).await?;
    }
    if let Some(hash) = &update.password_hash {
        db.exec("UPDATE staff SET password_hash = ?2 WHERE id = ?1", args![id.0, hash]).await?;
    }
    if let Some(disabled) = update.disabled {
        db.exec("UPDATE staff SET disabled = ?2 WHERE id = ?1", args![id.0, disabled]).await?;
        if disabled {
            db.exec("UPDATE staff SET availability = 'off_duty' WHERE id = ?1", args![id.0]).await?;
        }
    }
    // A disabled account, a new password, a new role or a new name: every
    // sign-in ends, and every open connection with it, so no old cookie or
    // socket keeps old powers (or writes lines under the old name).
    db.exec("DELETE FROM logins WHERE staff_id = ?1", args![id.0]).await?;
    // A reset password or a disabled account: where it signed in from (its
    // own owner, or whoever had the old password) is spared nothing more.
    if update.password_hash.is_some() || update.disabled == Some(true) {
        db.exec("DELETE FROM sign_in_networks WHERE staff_id = ?1", args![id.0]).await?;
    }
    Ok(((), vec![Event::SignedOut { staff: id }]))
}

#[async_trait]
impl<B: Backend> Staffing for B {
    async fn create_staff(&self, new: NewStaff) -> Result<StaffId> {
        self.write(move |db| Box::pin(quiet(create_staff(db, new)))).await
    }

    async fn staff_by_username(&self, username: &str) -> Result<Option<StaffRecord>> {
        let username = username.to_owned();
        self.read(move |db| {
            Box::pin(async move {
                db.row(&format!("{STAFF_SELECT} WHERE s.username = ?1"), args![&username], sel::staff_record).await
            })
        })
        .await
    }

    async fn staff_entry(&self, id: StaffId) -> Result<Option<StaffEntry>> {
        self.read(move |db| {
            Box::pin(
                async move { db.row(&format!("{STAFF_SELECT} WHERE s.id = ?1"), args![id.0], sel::staff_entry).await },
            )
        })
        .await
    }

    async fn staff_by_id(&self, id: StaffId) -> Result<Option<Staff>> {
        self.read(move |db| {
            Box::pin(async move { db.row(&format!("{STAFF_SELECT} WHERE s.id = ?1"), args![id.0], sel::staff).await })
        })
        .await
    }

    async fn create_login(&self, login: NewLogin) -> Result<Option<Vec<String>>> {
        self.write(move |db| Box::pin(quiet(create_login(db, login)))).await
    }

    async fn known_networks(&self, username: &str, since: Millis) -> Result<Option<Vec<KnownNetwork>>> {
        let username = username.to_owned();
        self.read(move |db| {
            Box::pin(async move {
                // One row per network, or one row of nulls for an account
                // with none: no row at all means no such account.
                let rows = db
                    .rows(
                        "SELECT n.network AS network, n.last_at AS last_at FROM staff s
                         LEFT JOIN sign_in_networks n ON n.staff_id = s.id AND n.last_at > ?2
                         WHERE s.username = ?1 ORDER BY n.last_at DESC",
                        args![&username, since],
                        |r| Ok(r.opt_text("network")?.zip(r.opt_int("last_at")?)),
                    )
                    .await?;
                Ok((!rows.is_empty()).then(|| {
                    rows.into_iter().flatten().map(|(network, last_at)| KnownNetwork { network, last_at }).collect()
                }))
            })
        })
        .await
    }

    async fn forget_known_networks(&self, before: Millis) -> Result<u64> {
        // A full scan, as for `logins`: the table holds 8 rows per account
        // at most, and this runs every few minutes.
        self.write(move |db| {
            Box::pin(quiet(
                async move { db.exec("DELETE FROM sign_in_networks WHERE last_at <= ?1", args![before]).await },
            ))
        })
        .await
    }

    async fn server_key(&self, name: &str, fresh: &str) -> Result<String> {
        let (name, fresh) = (name.to_owned(), fresh.to_owned());
        self.write(move |db| {
            Box::pin(quiet(async move {
                // Two nodes starting at once: the first insert stays, and
                // both read it back.
                db.exec(
                    "INSERT INTO server_keys (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                    args![&name, &fresh],
                )
                .await?;
                let key = "SELECT value FROM server_keys WHERE name = ?1";
                db.row(key, args![&name], |r| r.text("value")).await?.ok_or_else(|| not_found("server key"))
            }))
        })
        .await
    }

    async fn staff_by_login(&self, token_hash: &str, now: Millis) -> Result<Option<Staff>> {
        let token_hash = token_hash.to_owned();
        self.read(move |db| {
            Box::pin(async move {
                let sql = format!(
                    "{STAFF_SELECT} JOIN logins g ON g.staff_id = s.id
                     WHERE g.token_hash = ?1 AND g.expires_at > ?2 AND NOT s.disabled"
                );
                db.row(&sql, args![&token_hash, now], sel::staff).await
            })
        })
        .await
    }

    async fn delete_login(&self, token_hash: &str, now: Millis) -> Result<Option<StaffId>> {
        let token_hash = token_hash.to_owned();
        self.write(move |db| {
            Box::pin(quiet(async move {
                let whose = "SELECT staff_id AS staff_id FROM logins WHERE token_hash = ?1";
                let Some(staff) = db.row(whose, args![&token_hash], |r| r.int("staff_id")).await? else {
                    return Ok(None);
                };
                // The account's row first (PostgreSQL; SQLite has one
                // writer), as `create_login` and `update_staff` take it: its
                // sign-ins and sign-outs are then counted one at a time — two
                // last sign-outs at once, or a sign-in on another node, are
                // seen by the count after them — and in one lock order.
                let lock = format!("SELECT id AS id FROM staff WHERE id = ?1{}", db.dialect().no_key_update());
                db.row(&lock, args![staff], |r| r.int("id")).await?;
                if db.exec("DELETE FROM logins WHERE token_hash = ?1", args![&token_hash]).await? == 0 {
                    return Ok(None); // signed out meanwhile (a double click): the other one tells
                }
                let others = "SELECT COUNT(*) AS n FROM logins WHERE staff_id = ?1 AND expires_at > ?2";
                let left = int(db, others, args![staff, now], "n").await?;
                Ok((left == 0).then_some(StaffId(staff)))
            }))
        })
        .await
    }

    async fn purge_expired_logins(&self, now: Millis, limit: u32) -> Result<u64> {
        // A full scan of `logins` (no index on `expires_at`): the table holds
        // one row per sign-in of the last `session_hours`, a few thousand at
        // most once purged, and this runs every few minutes. The sub-select
        // bounds the batch on both backends (PostgreSQL has no DELETE … LIMIT).
        self.write(move |db| {
            Box::pin(quiet(async move {
                db.exec(
                    "DELETE FROM logins WHERE token_hash IN
                       (SELECT token_hash FROM logins WHERE expires_at <= ?1 LIMIT ?2)",
                    args![now, i64::from(limit)],
                )
                .await
            }))
        })
        .await
    }

    async fn set_availability(&self, id: StaffId, a: Availability, now: Millis) -> Result<bool> {
        self.write(move |db| Box::pin(set_availability(db, id, a, now))).await
    }

    async fn touch(&self, ids: Vec<StaffId>, now: Millis) -> Result<()> {
        self.write(move |db| Box::pin(quiet(touch(db, ids, now)))).await
    }

    async fn sign_off_stale(&self, before: Millis) -> Result<Vec<Staff>> {
        self.write(move |db| Box::pin(sign_off_stale(db, before))).await
    }

    async fn staff_of(&self, coop: CooperativeId) -> Result<Vec<StaffEntry>> {
        self.read(move |db| {
            Box::pin(async move {
                let sql = format!("{STAFF_SELECT} WHERE i.cooperative_id = ?1 ORDER BY s.display_name, s.id");
                db.rows(&sql, args![coop.0], sel::staff_entry).await
            })
        })
        .await
    }

    async fn update_staff(&self, id: StaffId, update: StaffUpdate) -> Result<()> {
        self.write(move |db| Box::pin(update_staff(db, id, update))).await
    }

    async fn leave_ended_chats(&self, id: StaffId) -> Result<()> {
        self.write(move |db| {
            Box::pin(async move {
                db.exec(ENDED_MEMBERSHIPS, args![id.0]).await?;
                Ok(((), Vec::new()))
            })
        })
        .await
    }
}
