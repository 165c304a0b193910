//! Setting up a service without the demo: a cooperative with its first
//! institution, library and cooperative admin (`refdesk setup` on an empty
//! database, `refdesk cooperative add` for an operator hosting several),
//! then institutions and libraries, from the CLI or by admins.

use crate::audit::Concerns;
use crate::{auth, App, AppError, AppResult};
use refdesk_domain::authz::{authorize_admin, Admin};
use refdesk_domain::ids::{CooperativeId, InstitutionId, StaffId};
use refdesk_domain::org::{Placement, Role, Staff};
use refdesk_domain::question::default_codes;
use refdesk_domain::{input, DomainError};
use refdesk_store::{InstitutionRecord, LibraryRecord, Named, NewStaff, StoreError};

/// A new cooperative, as `refdesk setup` takes it.
#[derive(Clone)]
pub struct NewCooperative {
    /// The cooperative's name.
    pub name: String,
    /// Its first institution's name.
    pub institution: String,
    /// Its first library's address (`/ask/<slug>`).
    pub library_slug: String,
    /// Its first library's name.
    pub library_name: String,
    /// The first cooperative admin's sign-in name.
    pub admin_username: String,
    /// Their display name.
    pub admin_name: String,
    /// Their password (checked for strength).
    pub admin_password: String,
}

impl NewCooperative {
    /// The same, checked as far as it can be without the database (names,
    /// the library's address, the admin's name and password) and in the
    /// form it is kept: the CLI checks it before it opens, let alone
    /// creates, a database.
    pub fn checked(self) -> AppResult<NewCooperative> {
        let admin_username = input::slug("username", &refdesk_domain::input::sign_in_name(&self.admin_username))?;
        Ok(NewCooperative {
            name: required("cooperative", &self.name, 200)?,
            institution: required("institution", &self.institution, 200)?,
            library_slug: input::slug("library", &self.library_slug)?.to_owned(),
            library_name: required("library_name", &self.library_name, 200)?,
            admin_name: required("admin_name", &self.admin_name, 100)?,
            admin_password: input::strong_password(&self.admin_password, &admin_username)?.to_owned(),
            admin_username,
        })
    }
}

/// What a set-up created.
#[derive(Clone, Debug)]
pub struct SetUp {
    /// The cooperative.
    pub cooperative: CooperativeId,
    /// Its first institution.
    pub institution: InstitutionId,
    /// Its first library.
    pub library: LibraryRecord,
    /// Its first cooperative admin.
    pub admin: StaffId,
}

fn required(field: &'static str, value: &str, max: usize) -> AppResult<String> {
    Ok(input::name(field, Some(value), max)?.ok_or_else(|| DomainError::invalid(field, "is required"))?)
}

/// A taken slug reads as what it is to the person who chose it (the
/// store's unique key says "already exists"); a taken name keeps the
/// store's own words, which name it.
fn slug_taken(slug: &str) -> impl FnOnce(StoreError) -> AppError + '_ {
    move |e| match e {
        StoreError::Domain(DomainError::Conflict(why)) if why.starts_with("already exists") => {
            AppError::Domain(DomainError::Conflict(format!("the address /ask/{slug} is taken")))
        }
        other => other.into(),
    }
}

/// The longest notice a closed library's patrons read.
pub const CLOSED_NOTICE_CHARS: usize = 500;

impl App {
    /// Sets up a new service: a cooperative with its first institution,
    /// library and cooperative admin. Refused once anything exists.
    pub async fn set_up(&self, new: NewCooperative) -> AppResult<SetUp> {
        if !self.store.is_empty().await? {
            return Err(DomainError::Conflict(
                "this database is already set up: sign in as a cooperative admin, or add another cooperative with `refdesk cooperative add`"
                    .into(),
            )
            .into());
        }
        self.add_cooperative(new).await
    }

    /// Adds a cooperative with its first institution, library and
    /// cooperative admin (the operator's CLI). Everything is checked before
    /// anything is written.
    pub async fn add_cooperative(&self, new: NewCooperative) -> AppResult<SetUp> {
        let NewCooperative {
            name,
            institution,
            library_slug: slug,
            library_name,
            admin_username: username,
            admin_name: display_name,
            admin_password: password,
        } = new.checked()?;
        if self.store.library_by_slug(&slug).await?.is_some() {
            return Err(DomainError::Conflict(format!("the address /ask/{slug} is taken")).into());
        }
        if self.store.staff_by_username(&username).await?.is_some() {
            return Err(DomainError::Conflict(format!("the username {username} is taken")).into());
        }
        let password_hash = self.hash_work(move || auth::hash_password(&password)).await??;
        let cooperative = self.store.create_cooperative(&name, default_codes()).await?;
        let institution = self.store.create_institution(cooperative, &institution).await?;
        let library = self.store.create_library(institution, &slug, &library_name).await.map_err(slug_taken(&slug))?;
        self.library_added();
        let detail = format!(
            "cooperative “{name}” set up: its first library “{library_name}” (/ask/{slug}) and cooperative admin {}",
            crate::audit::who(&display_name, &username)
        );
        let admin = self
            .store
            .create_staff(NewStaff {
                library: library.placement.library,
                username,
                display_name,
                role: Role::CooperativeAdmin,
                password_hash,
            })
            .await?;
        self.log_admin(None, Concerns::Library(library.placement), "setup", detail).await;
        Ok(SetUp { cooperative, institution, library, admin })
    }

    /// Every institution: all of them for the operator (`None`), those of
    /// their cooperative for a staff member.
    pub async fn institutions(&self, actor: Option<&Staff>) -> AppResult<Vec<InstitutionRecord>> {
        let mut all = self.store.institutions().await?;
        if let Some(staff) = actor {
            all.retain(|i| i.cooperative == staff.home.cooperative);
        }
        Ok(all)
    }

    /// Adds an institution to a cooperative: the operator's CLI (`None`),
    /// or a cooperative admin, to their own cooperative.
    pub async fn add_institution(
        &self,
        actor: Option<&Staff>,
        cooperative: CooperativeId,
        name: &str,
    ) -> AppResult<InstitutionRecord> {
        let name = required("name", name, 200)?;
        if let Some(staff) = actor {
            let target = Placement { cooperative, ..staff.home };
            authorize_admin(staff, Admin::AddInstitution, &target)?;
        }
        let all = self.store.institutions().await?;
        let cooperative_name = all
            .iter()
            .find(|i| i.cooperative == cooperative)
            .map(|i| i.cooperative_name.clone())
            .ok_or(DomainError::NotFound("cooperative"))?;
        self.admin_change(actor)?;
        let id = self.store.create_institution(cooperative, &name).await?;
        self.log_admin(
            actor,
            Concerns::Institution(id, cooperative),
            "institution",
            format!("institution “{name}” added"),
        )
        .await;
        Ok(InstitutionRecord { id, name, cooperative, cooperative_name })
    }

    /// Gives a library, an institution or a cooperative a new name: the
    /// operator's CLI (`None`), or an admin whose role covers it (a
    /// library's admins rename it, an institution's admins the institution,
    /// cooperative admins the cooperative). What was written under the old
    /// name keeps it; lists and widgets show the new one within seconds.
    pub async fn rename(&self, actor: Option<&Staff>, what: Named, name: &str) -> AppResult<()> {
        let name = required("name", name, 200)?;
        // The cooperative's admins only, before anything is looked up (no
        // probing of which cooperatives there are).
        if let (Named::Cooperative(id), Some(staff)) = (what, actor) {
            authorize_admin(staff, Admin::RenameCooperative, &Placement { cooperative: id, ..staff.home })?;
        }
        // What it is, the place an admin must cover, and its name before.
        let (action, concerns, old) = match what {
            Named::Library(id) => {
                let all = self.store.libraries().await?;
                let lib = all.iter().find(|l| l.placement.library == id).ok_or(DomainError::NotFound("library"))?;
                (Admin::RenameLibrary, Concerns::Library(lib.placement), lib.name.clone())
            }
            Named::Institution(id) => {
                // Another cooperative's reads as missing: no probing of
                // which ids it has.
                let all = self.store.institutions().await?;
                let inst = all
                    .iter()
                    .find(|i| i.id == id && actor.is_none_or(|s| i.cooperative == s.home.cooperative))
                    .ok_or(DomainError::NotFound("institution"))?;
                (Admin::RenameInstitution, Concerns::Institution(id, inst.cooperative), inst.name.clone())
            }
            Named::Cooperative(id) => {
                let all = self.store.institutions().await?;
                let old = all.iter().find(|i| i.cooperative == id).map(|i| i.cooperative_name.clone());
                (Admin::RenameCooperative, Concerns::Cooperative(id), old.ok_or(DomainError::NotFound("cooperative"))?)
            }
        };
        if let Some(staff) = actor {
            let target = match concerns {
                Concerns::Library(p) => p,
                Concerns::Institution(institution, cooperative) => Placement { institution, cooperative, ..staff.home },
                Concerns::Cooperative(cooperative) => Placement { cooperative, ..staff.home },
            };
            authorize_admin(staff, action, &target)?;
        }
        self.admin_change(actor)?;
        self.store.rename(what, &name).await?;
        self.library_added();
        if old != name {
            self.log_admin(actor, concerns, "rename", format!("renamed “{old}” → “{name}”")).await;
        }
        Ok(())
    }

    /// Adds a library: the operator's CLI (`None`, an institution named), an
    /// institution admin to their institution, a cooperative admin to any
    /// institution of their cooperative (their own if none is named).
    pub async fn add_library(
        &self,
        actor: Option<&Staff>,
        institution: Option<InstitutionId>,
        slug: &str,
        name: &str,
    ) -> AppResult<LibraryRecord> {
        let slug = input::slug("slug", slug)?.to_owned();
        let name = required("name", name, 200)?;
        let institution = match (institution, actor) {
            (Some(i), _) => i,
            (None, Some(staff)) => staff.home.institution,
            (None, None) => return Err(DomainError::invalid("institution", "is required").into()),
        };
        let known = self.store.institutions().await?;
        let inst = known.iter().find(|i| i.id == institution).ok_or(DomainError::NotFound("institution"))?;
        if let Some(staff) = actor {
            let target = Placement { institution, cooperative: inst.cooperative, ..staff.home };
            authorize_admin(staff, Admin::AddLibrary, &target)?;
        }
        self.admin_change(actor)?;
        let library = self.store.create_library(institution, &slug, &name).await.map_err(slug_taken(&slug))?;
        self.library_added();
        let detail = format!("library “{name}” added (/ask/{slug})");
        self.log_admin(actor, Concerns::Library(library.placement), "library", detail).await;
        Ok(library)
    }

    /// A library as its admins see it: read from the store, not the
    /// entry points' copy (which may be a few seconds old).
    async fn administered(&self, staff: &Staff, slug: &str, action: Admin) -> AppResult<LibraryRecord> {
        let lib = self.store.library_by_slug(slug).await?.ok_or(DomainError::NotFound("library"))?;
        authorize_admin(staff, action, &lib.placement)?;
        Ok(lib)
    }

    /// The sites allowed to show a library's chat in a frame (its admins
    /// ask); empty: any site.
    pub async fn embed_sites(&self, staff: &Staff, slug: &str) -> AppResult<Vec<String>> {
        Ok(self.administered(staff, slug, Admin::Embedding).await?.embed_sites)
    }

    /// The address a library's e-mails to patrons name for replies (its
    /// admins ask); `None`: none (replies go to `mail.from`).
    pub async fn reply_to(&self, staff: &Staff, slug: &str) -> AppResult<Option<String>> {
        Ok(self.administered(staff, slug, Admin::ReplyTo).await?.reply_to)
    }

    /// Sets the address a library's e-mails (answers, transcripts) name
    /// for replies: one the mailer can send to, or none (`None` or blank).
    /// The mail already queued takes it too (it is read as each is sent).
    pub async fn set_reply_to(&self, staff: &Staff, slug: &str, address: Option<&str>) -> AppResult<Option<String>> {
        let lib = self.administered(staff, slug, Admin::ReplyTo).await?;
        let address = crate::mail::email_address(address).map_err(|e| match e {
            DomainError::Invalid { reason, .. } => DomainError::Invalid { field: "reply_to", reason },
            e => e,
        })?;
        // In a header as it is: a mail server without SMTPUTF8 would refuse
        // or garble other letters.
        if address.as_deref().is_some_and(|a| !a.is_ascii()) {
            let why = "use an address of a-z letters (a domain in other letters in its xn-- form)";
            return Err(DomainError::invalid("reply_to", why).into());
        }
        self.admin_change(Some(staff))?;
        self.store.set_reply_to(lib.placement.library, address.clone()).await?;
        self.library_added();
        if address != lib.reply_to {
            let detail = match &address {
                Some(a) => format!("replies to the library's e-mails go to {a}"),
                None => "replies to the library's e-mails go to the service's address".to_owned(),
            };
            self.log_admin(Some(staff), Concerns::Library(lib.placement), "reply_to", detail).await;
        }
        Ok(address)
    }

    /// A library's notice while its chat is closed to new patrons (its
    /// admins ask); `None`: open.
    pub async fn closed_notice(&self, staff: &Staff, slug: &str) -> AppResult<Option<String>> {
        Ok(self.administered(staff, slug, Admin::Closing).await?.closed_notice)
    }

    /// Closes a library's chat to new patrons — its page and widget show
    /// `notice` instead of the chat and the question form, and both are
    /// refused (`closed`) — or opens it again (`None` or blank). Chats
    /// going on, and patrons already waiting, are not touched. Said at
    /// once on this node, within [`crate::LISTED_FOR`] on the others.
    pub async fn set_closed_notice(
        &self,
        staff: &Staff,
        slug: &str,
        notice: Option<&str>,
    ) -> AppResult<Option<String>> {
        let lib = self.administered(staff, slug, Admin::Closing).await?;
        let notice = input::optional_line("notice", notice, CLOSED_NOTICE_CHARS)?;
        self.admin_change(Some(staff))?;
        self.store.set_closed_notice(lib.placement.library, notice.clone()).await?;
        self.library_added();
        if notice != lib.closed_notice {
            let detail = match &notice {
                Some(n) => format!("the chat is closed to new patrons, who read: {n}"),
                None => "the chat is open again".to_owned(),
            };
            self.log_admin(Some(staff), Concerns::Library(lib.placement), "closing", detail).await;
        }
        tracing::info!(library = %slug, closed = notice.is_some(), staff = %staff.username, "library's chat closed or opened");
        Ok(notice)
    }

    /// Sets how a library's widget button looks on its site
    /// ([`refdesk_domain::org::WidgetLook`]), as kept: the widgets read it
    /// with the library's status, at once from this node, within
    /// [`crate::LISTED_FOR`] from the others.
    pub async fn set_widget_look(
        &self,
        staff: &Staff,
        slug: &str,
        look: refdesk_domain::org::WidgetLook,
    ) -> AppResult<refdesk_domain::org::WidgetLook> {
        let lib = self.administered(staff, slug, Admin::Widget).await?;
        let look = look.checked()?;
        if look == lib.widget {
            return Ok(look);
        }
        self.admin_change(Some(staff))?;
        self.store.set_widget(lib.placement.library, look.clone()).await?;
        self.library_added();
        let words = |w: &Option<String>| w.as_deref().map_or_else(|| "the default".to_owned(), |w| format!("“{w}”"));
        let detail = format!(
            "the widget's button: {} on duty, {} off duty, colours {} on {}, at the bottom {}",
            words(&look.label_online),
            words(&look.label_offline),
            look.text_color.as_deref().unwrap_or("#ffffff"),
            look.color.as_deref().unwrap_or("#0b57d0"),
            look.position.as_deref().unwrap_or("right"),
        );
        self.log_admin(Some(staff), Concerns::Library(lib.placement), "widget", detail).await;
        Ok(look)
    }

    /// Sets the sites allowed to show a library's chat in a frame
    /// ([`input::embed_sites`]; empty: any site), as written back. The
    /// chat page says so to browsers at once on this node, within
    /// [`crate::LISTED_FOR`] on the others.
    pub async fn set_embed_sites(&self, staff: &Staff, slug: &str, sites: &[String]) -> AppResult<Vec<String>> {
        let lib = self.administered(staff, slug, Admin::Embedding).await?;
        let sites = input::embed_sites(sites)?;
        self.admin_change(Some(staff))?;
        self.store.set_embed_sites(lib.placement.library, sites.clone()).await?;
        self.library_added();
        if sites == lib.embed_sites {
            return Ok(sites);
        }
        let detail = if sites.is_empty() {
            "any site may show the chat".to_owned()
        } else {
            format!("only these sites may show the chat: {}", sites.join(" "))
        };
        self.log_admin(Some(staff), Concerns::Library(lib.placement), "embedding", detail).await;
        Ok(sites)
    }
}
