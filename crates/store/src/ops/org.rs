//! The organisation: cooperatives, institutions, libraries, their codes,
//! policy pages, scripts and settings.

use super::{quiet, Backend};
use crate::api::Organisation;
use crate::sql::rows::{codes_of, not_found};
use crate::sql::select as sel;
use crate::sql::{args, int, Db};
use crate::MAX_SCRIPTS_PER_OWNER;
use crate::{AdminEntry, InstitutionRecord, LibraryRecord, Named, PolicyPage, Result, ScopeLevel, Script, ScriptOwner};
use crate::{MAX_CODES_PER_COOPERATIVE, MAX_INSTITUTIONS_PER_COOPERATIVE, MAX_LIBRARIES_PER_COOPERATIVE};
use async_trait::async_trait;
use refdesk_domain::ids::{CooperativeId, InstitutionId, LibraryId, StaffId};
use refdesk_domain::org::Staff;
use refdesk_domain::question::ResolutionCode;
use refdesk_domain::{DomainError, Millis};

/// The columns of a resolution code, in `INSERT` order after the cooperative.
const CODE_INSERT: &str = "INSERT INTO resolution_codes
     (cooperative_id, key, label, status, assign, follow_up, referred, exclude_from_stats, retired, position)";

async fn insert_code<D: Db>(db: &mut D, coop: CooperativeId, code: &ResolutionCode, position: i64) -> Result<u64> {
    db.exec(
        &format!("{CODE_INSERT} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        args![
            coop.0,
            &code.key,
            &code.label,
            code.status.as_str(),
            code.assign.as_str(),
            code.follow_up,
            code.referred,
            code.exclude_from_stats,
            code.retired,
            position
        ],
    )
    .await
}

/// What must be called apart from what: cooperatives on the service,
/// institutions, libraries and staff members (their display names) within
/// their cooperative.
#[derive(Clone, Copy)]
pub(crate) enum Kin {
    Cooperatives,
    Institutions(CooperativeId),
    Libraries(CooperativeId),
    Staff(CooperativeId),
}

/// Refuses `name` when another of its kin (but `except`, being renamed) is
/// called alike as a reader tells names apart
/// (`refdesk_domain::input::name_key`): two libraries of one cooperative
/// called alike cannot be told apart in its lists, reports and transfers,
/// nor two colleagues in its IM list, its chats and their transcripts.
/// One name change or addition at a time (an advisory lock on PostgreSQL;
/// SQLite has one writer), so that two at once cannot both find it free.
pub(crate) async fn name_free<D: Db>(db: &mut D, kin: Kin, except: Option<i64>, name: &str) -> Result<()> {
    db.lock("organisation-names").await?;
    let row = |r: &dyn crate::sql::Cols| Ok((r.int("id")?, r.text("name")?));
    let (taken, what) = match kin {
        Kin::Cooperatives => {
            (db.rows("SELECT id AS id, name AS name FROM cooperatives", args![], row).await?, "cooperative")
        }
        Kin::Institutions(c) => {
            let sql = "SELECT id AS id, name AS name FROM institutions WHERE cooperative_id = ?1";
            (db.rows(sql, args![c.0], row).await?, "institution of the cooperative")
        }
        Kin::Libraries(c) => {
            let sql =
                "SELECT l.id AS id, l.name AS name FROM libraries l JOIN institutions i ON i.id = l.institution_id
                       WHERE i.cooperative_id = ?1";
            (db.rows(sql, args![c.0], row).await?, "library of the cooperative")
        }
        Kin::Staff(c) => {
            let sql = "SELECT s.id AS id, s.display_name AS name FROM staff s JOIN libraries l ON l.id = s.library_id
                       JOIN institutions i ON i.id = l.institution_id WHERE i.cooperative_id = ?1";
            (db.rows(sql, args![c.0], row).await?, "staff member of the cooperative")
        }
    };
    // Compared as a reader tells them apart (`name_key`): "Liam Main" is
    // "liam  main", a full-width "Ｌiam Main" and a Cyrillic "Јое" "Joe".
    // The answer names the other as it is written (it may read alike
    // without being the same letters).
    let wanted = refdesk_domain::input::name_key(name);
    if let Some((_, other)) =
        taken.iter().find(|(id, n)| Some(*id) != except && refdesk_domain::input::name_key(n) == wanted)
    {
        let why = format!("another {what} is called {other:?}, which reads the same: give this one a name of its own");
        return Err(DomainError::Conflict(why).into());
    }
    Ok(())
}

/// The cooperative an institution belongs to.
async fn cooperative_of<D: Db>(db: &mut D, institution: InstitutionId) -> Result<CooperativeId> {
    let sql = "SELECT cooperative_id AS cooperative_id FROM institutions WHERE id = ?1";
    let coop = db.row(sql, args![institution.0], |r| r.int("cooperative_id")).await?;
    Ok(CooperativeId(coop.ok_or(not_found("institution"))?))
}

async fn rename<D: Db>(db: &mut D, what: Named, name: String) -> Result<()> {
    let (kin, id, sql, thing) = match what {
        Named::Cooperative(c) => {
            (Kin::Cooperatives, c.0, "UPDATE cooperatives SET name = ?2 WHERE id = ?1", "cooperative")
        }
        Named::Institution(i) => {
            let coop = cooperative_of(db, i).await?;
            (Kin::Institutions(coop), i.0, "UPDATE institutions SET name = ?2 WHERE id = ?1", "institution")
        }
        Named::Library(l) => {
            let sql = "SELECT institution_id AS institution_id FROM libraries WHERE id = ?1";
            let inst = db.row(sql, args![l.0], |r| r.int("institution_id")).await?.ok_or(not_found("library"))?;
            let coop = cooperative_of(db, InstitutionId(inst)).await?;
            (Kin::Libraries(coop), l.0, "UPDATE libraries SET name = ?2 WHERE id = ?1", "library")
        }
    };
    name_free(db, kin, Some(id), &name).await?;
    match db.exec(sql, args![id, &name]).await? {
        0 => Err(not_found(thing)),
        _ => Ok(()),
    }
}

async fn create_cooperative<D: Db>(db: &mut D, name: String, codes: Vec<ResolutionCode>) -> Result<CooperativeId> {
    name_free(db, Kin::Cooperatives, None, &name).await?;
    let id = CooperativeId(
        int(
            db,
            "INSERT INTO cooperatives (name) VALUES (?1) RETURNING id AS cooperative_id",
            args![&name],
            "cooperative_id",
        )
        .await?,
    );
    for (i, code) in codes.iter().enumerate() {
        insert_code(db, id, code, i as i64).await?;
    }
    Ok(id)
}

/// Refuses a write that would make `sql`'s count (of what `a` names)
/// pass `max`: `too_many` with what it counts.
pub(crate) async fn at_most<D: Db>(
    db: &mut D,
    sql: &str,
    a: &[crate::sql::Arg<'_>],
    max: i64,
    what: &str,
) -> Result<()> {
    if int(db, sql, a, "n").await? >= max {
        let reason = format!("there may be at most {max} {what}: this one was not added");
        return Err(DomainError::Limited { code: "too_many", reason }.into());
    }
    Ok(())
}

async fn create_library<D: Db>(
    db: &mut D,
    institution: InstitutionId,
    slug: String,
    name: String,
) -> Result<LibraryRecord> {
    let count = "SELECT COUNT(*) AS n FROM libraries l JOIN institutions i ON i.id = l.institution_id
         WHERE i.cooperative_id = (SELECT cooperative_id FROM institutions WHERE id = ?1)";
    at_most(db, count, args![institution.0], MAX_LIBRARIES_PER_COOPERATIVE, "libraries in a cooperative").await?;
    let coop = cooperative_of(db, institution).await?;
    name_free(db, Kin::Libraries(coop), None, &name).await?;
    let id = int(
        db,
        "INSERT INTO libraries (institution_id, slug, name) VALUES (?1, ?2, ?3) RETURNING id AS library_id",
        args![institution.0, &slug, &name],
        "library_id",
    )
    .await
    .map_err(|e| if e.is_not_found() { not_found("institution") } else { e })?;
    library_where(db, "l.id = ?1", id).await?.ok_or(not_found("library"))
}

async fn library_where<D: Db>(
    db: &mut D,
    cond: &str,
    arg: impl Into<crate::sql::Arg<'_>>,
) -> Result<Option<LibraryRecord>> {
    db.row(&format!("{} WHERE {cond}", sel::LIBRARY_SELECT), &[arg.into()], sel::library).await
}

/// Adds or replaces a code. One change at a time per cooperative (its row
/// locked on PostgreSQL; SQLite has one writer): a new code's position is
/// the last one plus one, and two new codes never get the same.
async fn put_code<D: Db>(db: &mut D, coop: CooperativeId, code: ResolutionCode) -> Result<()> {
    let lock = format!("SELECT id AS cooperative_id FROM cooperatives WHERE id = ?1{}", db.dialect().for_update());
    db.row(&lock, args![coop.0], |r| r.int("cooperative_id")).await?.ok_or(not_found("cooperative"))?;
    let changed = db
        .exec(
            "UPDATE resolution_codes SET label = ?3, status = ?4, assign = ?5, follow_up = ?6, referred = ?7,
             exclude_from_stats = ?8, retired = ?9 WHERE cooperative_id = ?1 AND key = ?2",
            args![
                coop.0,
                &code.key,
                &code.label,
                code.status.as_str(),
                code.assign.as_str(),
                code.follow_up,
                code.referred,
                code.exclude_from_stats,
                code.retired
            ],
        )
        .await?;
    if changed == 0 {
        let count = "SELECT COUNT(*) AS n FROM resolution_codes WHERE cooperative_id = ?1";
        at_most(db, count, args![coop.0], MAX_CODES_PER_COOPERATIVE, "resolution codes in a cooperative").await?;
        let last = int(
            db,
            "SELECT COALESCE(max(position), -1) AS position FROM resolution_codes WHERE cooperative_id = ?1",
            args![coop.0],
            "position",
        )
        .await?;
        insert_code(db, coop, &code, last + 1).await?;
    }
    Ok(())
}

async fn create_script<D: Db>(
    db: &mut D,
    owner: ScriptOwner,
    title: String,
    body: String,
    now: Millis,
) -> Result<Script> {
    let (scope, owner_id) = (owner.scope(), owner.id());
    let count = "SELECT COUNT(*) AS n FROM scripts WHERE scope = ?1 AND owner_id = ?2";
    at_most(db, count, args![scope, owner_id], MAX_SCRIPTS_PER_OWNER, "scripts of one owner").await?;
    let id = int(
        db,
        "INSERT INTO scripts (scope, owner_id, title, body, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         RETURNING id AS script_id",
        args![scope, owner_id, &title, &body, now],
        "script_id",
    )
    .await?;
    Ok(Script { id, scope: scope.to_owned(), owner: owner_id, title, body })
}

#[async_trait]
impl<B: Backend> Organisation for B {
    async fn create_cooperative(&self, name: &str, codes: Vec<ResolutionCode>) -> Result<CooperativeId> {
        let name = name.to_owned();
        self.write(move |db| Box::pin(quiet(create_cooperative(db, name, codes)))).await
    }

    async fn create_institution(&self, coop: CooperativeId, name: &str) -> Result<InstitutionId> {
        let name = name.to_owned();
        self.write(move |db| {
            Box::pin(quiet(async move {
                let count = "SELECT COUNT(*) AS n FROM institutions WHERE cooperative_id = ?1";
                let what = "institutions in a cooperative";
                at_most(db, count, args![coop.0], MAX_INSTITUTIONS_PER_COOPERATIVE, what).await?;
                name_free(db, Kin::Institutions(coop), None, &name).await?;
                let sql =
                    "INSERT INTO institutions (cooperative_id, name) VALUES (?1, ?2) RETURNING id AS institution_id";
                let id = int(db, sql, args![coop.0, &name], "institution_id").await.map_err(|e| {
                    if e.is_not_found() {
                        not_found("cooperative")
                    } else {
                        e
                    }
                })?;
                Ok(InstitutionId(id))
            }))
        })
        .await
    }

    async fn create_library(&self, institution: InstitutionId, slug: &str, name: &str) -> Result<LibraryRecord> {
        let (slug, name) = (slug.to_owned(), name.to_owned());
        self.write(move |db| Box::pin(quiet(create_library(db, institution, slug, name)))).await
    }

    async fn rename(&self, what: Named, name: &str) -> Result<()> {
        let name = name.to_owned();
        self.write(move |db| Box::pin(quiet(rename(db, what, name)))).await
    }

    async fn library_by_slug(&self, slug: &str) -> Result<Option<LibraryRecord>> {
        let slug = slug.to_owned();
        self.read(move |db| Box::pin(async move { library_where(db, "l.slug = ?1", &slug).await })).await
    }

    async fn libraries(&self) -> Result<Vec<LibraryRecord>> {
        self.read(|db| {
            Box::pin(async move { db.rows(&format!("{} ORDER BY l.id", sel::LIBRARY_SELECT), &[], sel::library).await })
        })
        .await
    }

    async fn institutions(&self) -> Result<Vec<InstitutionRecord>> {
        self.read(|db| Box::pin(db.rows(sel::INSTITUTION_SELECT, &[], sel::institution))).await
    }

    async fn codes(&self, coop: CooperativeId) -> Result<Vec<ResolutionCode>> {
        self.read(move |db| Box::pin(codes_of(db, coop))).await
    }

    async fn put_code(&self, coop: CooperativeId, code: ResolutionCode) -> Result<()> {
        self.write(move |db| Box::pin(quiet(put_code(db, coop, code)))).await
    }

    async fn policy(&self, library: LibraryId) -> Result<Option<PolicyPage>> {
        self.read(move |db| Box::pin(async move { db.row(sel::POLICY_SELECT, args![library.0], sel::policy).await }))
            .await
    }

    async fn set_policy(&self, library: LibraryId, body: String, by: StaffId, now: Millis) -> Result<()> {
        self.write(move |db| {
            Box::pin(quiet(async move {
                db.exec(
                    "INSERT INTO policies (library_id, body, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (library_id) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at,
                       updated_by = excluded.updated_by",
                    args![library.0, &body, now, by.0],
                )
                .await
                .map_err(|e| if e.is_not_found() { not_found("library") } else { e })?;
                Ok(())
            }))
        })
        .await
    }

    async fn scripts_for(&self, staff: &Staff, library: LibraryId) -> Result<Vec<Script>> {
        let (me, lib, coop) = (staff.id.0, library.0, staff.home.cooperative.0);
        self.read(move |db| {
            Box::pin(async move {
                let sql = format!(
                    "{} WHERE (scope = 'personal' AND owner_id = ?1) OR (scope = 'library' AND owner_id = ?2)
                        OR (scope = 'cooperative' AND owner_id = ?3)
                     ORDER BY CASE scope WHEN 'personal' THEN 0 WHEN 'library' THEN 1 ELSE 2 END, title, id",
                    sel::SCRIPT_SELECT
                );
                db.rows(&sql, args![me, lib, coop], sel::script).await
            })
        })
        .await
    }

    async fn script(&self, id: i64) -> Result<Option<Script>> {
        self.read(move |db| {
            Box::pin(
                async move { db.row(&format!("{} WHERE id = ?1", sel::SCRIPT_SELECT), args![id], sel::script).await },
            )
        })
        .await
    }

    async fn create_script(&self, owner: ScriptOwner, title: String, body: String, now: Millis) -> Result<Script> {
        self.write(move |db| Box::pin(quiet(create_script(db, owner, title, body, now)))).await
    }

    async fn update_script(&self, id: i64, title: String, body: String) -> Result<Script> {
        self.write(move |db| {
            Box::pin(quiet(async move {
                db.exec("UPDATE scripts SET title = ?1, body = ?2 WHERE id = ?3", args![&title, &body, id]).await?;
                let sql = format!("{} WHERE id = ?1", sel::SCRIPT_SELECT);
                db.row(&sql, args![id], sel::script).await?.ok_or_else(|| not_found("script"))
            }))
        })
        .await
    }

    async fn delete_script(&self, id: i64) -> Result<()> {
        self.write(move |db| {
            Box::pin(quiet(async move {
                db.exec("DELETE FROM scripts WHERE id = ?1", args![id]).await?;
                Ok(())
            }))
        })
        .await
    }

    async fn blocked_may_ask(&self, library: LibraryId) -> Result<bool> {
        self.read(move |db| {
            Box::pin(async move {
                let sql = "SELECT blocked_may_ask AS blocked_may_ask FROM library_settings WHERE library_id = ?1";
                Ok(db.row(sql, args![library.0], |r| r.flag("blocked_may_ask")).await?.unwrap_or(true))
            })
        })
        .await
    }

    async fn set_blocked_may_ask(&self, library: LibraryId, may: bool) -> Result<()> {
        self.write(move |db| {
            Box::pin(quiet(async move {
                db.exec(
                    "INSERT INTO library_settings (library_id, blocked_may_ask) VALUES (?1, ?2)
                     ON CONFLICT (library_id) DO UPDATE SET blocked_may_ask = excluded.blocked_may_ask",
                    args![library.0, may],
                )
                .await
                .map_err(|e| if e.is_not_found() { not_found("library") } else { e })?;
                Ok(())
            }))
        })
        .await
    }

    async fn log_admin(&self, entry: AdminEntry, keep: u32, young: Millis) -> Result<()> {
        self.write(move |db| {
            Box::pin(quiet(async move {
                let AdminEntry { cooperative, institution, library, at, actor, actor_name, action, detail, .. } = entry;
                db.exec(
                    "INSERT INTO admin_log (cooperative_id, institution_id, library_id, at, actor_id, action, detail,
                                            actor_name)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    args![
                        cooperative.0,
                        institution.map(|i| i.0),
                        library.map(|l| l.0),
                        at,
                        actor.map(|a| a.0),
                        &action,
                        &detail,
                        &actor_name
                    ],
                )
                .await?;
                // The oldest past the cap, by the cooperative's index; not
                // the young ones, which a flood of changes must not push out.
                db.exec(
                    "DELETE FROM admin_log WHERE cooperative_id = ?1 AND at < ?3 AND id <= (
                        SELECT id FROM admin_log WHERE cooperative_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                    args![cooperative.0, i64::from(keep), young],
                )
                .await?;
                Ok(())
            }))
        })
        .await
    }

    async fn admin_log(&self, scope: ScopeLevel, limit: u32) -> Result<Vec<AdminEntry>> {
        self.read(move |db| {
            Box::pin(async move {
                let (column, id) = match scope {
                    ScopeLevel::Library(l) => ("library_id", l.0),
                    ScopeLevel::Institution(i) => ("institution_id", i.0),
                    ScopeLevel::Cooperative(c) => ("cooperative_id", c.0),
                };
                let sql = format!(
                    "SELECT id AS id, at AS at, cooperative_id AS cooperative_id, institution_id AS institution_id,
                            library_id AS library_id, actor_id AS actor_id, actor_name AS actor_name,
                            action AS action, detail AS detail
                     FROM admin_log WHERE {column} = ?1 ORDER BY id DESC LIMIT ?2"
                );
                db.rows(&sql, args![id, i64::from(limit)], |r| {
                    Ok(AdminEntry {
                        id: r.int("id")?,
                        at: r.int("at")?,
                        cooperative: CooperativeId(r.int("cooperative_id")?),
                        institution: r.opt_int("institution_id")?.map(InstitutionId),
                        library: r.opt_int("library_id")?.map(LibraryId),
                        actor: r.opt_int("actor_id")?.map(StaffId),
                        actor_name: r.opt_text("actor_name")?,
                        action: r.text("action")?,
                        detail: r.text("detail")?,
                    })
                })
                .await
            })
        })
        .await
    }

    async fn set_reply_to(&self, library: LibraryId, address: Option<String>) -> Result<()> {
        self.write(move |db| Box::pin(quiet(set_setting(db, library, Setting::ReplyTo, address)))).await
    }

    async fn set_closed_notice(&self, library: LibraryId, notice: Option<String>) -> Result<()> {
        self.write(move |db| Box::pin(quiet(set_setting(db, library, Setting::ClosedNotice, notice)))).await
    }

    async fn set_widget(&self, library: LibraryId, look: refdesk_domain::org::WidgetLook) -> Result<()> {
        let json = match look.is_default() {
            true => None,
            false => Some(
                serde_json::to_string(&look).map_err(|e| crate::StoreError::failed("encoding a widget's look", e))?,
            ),
        };
        self.write(move |db| Box::pin(quiet(set_setting(db, library, Setting::Widget, json)))).await
    }

    async fn set_embed_sites(&self, library: LibraryId, sites: Vec<String>) -> Result<()> {
        let sites = (!sites.is_empty()).then(|| sites.join(" "));
        self.write(move |db| Box::pin(quiet(set_setting(db, library, Setting::EmbedSites, sites)))).await
    }
}

/// A library's text setting, a column of `library_settings`.
#[derive(Clone, Copy)]
enum Setting {
    EmbedSites,
    ReplyTo,
    ClosedNotice,
    Widget,
}

/// Sets one of a library's text settings; the others keep their values (a
/// new row takes the defaults).
async fn set_setting<D: Db>(db: &mut D, library: LibraryId, setting: Setting, value: Option<String>) -> Result<()> {
    let column = match setting {
        Setting::EmbedSites => "embed_sites",
        Setting::ReplyTo => "reply_to",
        Setting::ClosedNotice => "closed_notice",
        Setting::Widget => "widget",
    };
    let sql = format!(
        "INSERT INTO library_settings (library_id, blocked_may_ask, {column}) VALUES (?1, TRUE, ?2)
         ON CONFLICT (library_id) DO UPDATE SET {column} = excluded.{column}"
    );
    db.exec(&sql, args![library.0, value.as_deref()]).await.map_err(|e| {
        if e.is_not_found() {
            not_found("library")
        } else {
            e
        }
    })?;
    Ok(())
}
