//! The demo cooperative: two institutions, three libraries, a staff member
//! of every role and the default resolution codes — so that a newcomer can
//! try every flow at once.

use crate::{App, AppResult};
use refdesk_domain::org::Role;
use refdesk_domain::question::default_codes;

/// The password of every demo account.
pub const PASSWORD: &str = "refdesk-demo";

/// One demo account: (username, display name, role, home library slug).
pub const ACCOUNTS: &[(&str, &str, Role, &str)] = &[
    ("ann", "Ann Archer", Role::Librarian, "riverside-main"),
    ("ben", "Ben Booker", Role::Librarian, "lakeside-public"),
    ("carla", "Carla Catalog", Role::LibraryAdmin, "riverside-main"),
    ("dev", "Dev Dewey", Role::InstitutionAdmin, "riverside-law"),
    ("erin", "Erin Index", Role::CooperativeAdmin, "lakeside-public"),
];

/// The demo libraries: (slug, name, institution index).
pub const LIBRARIES: &[(&str, &str, usize)] = &[
    ("riverside-main", "Riverside University Main Library", 0),
    ("riverside-law", "Riverside University Law Library", 0),
    ("lakeside-public", "Lakeside Public Library", 1),
];

/// Whether the database holds a demo account that still signs in with the
/// demo password (known to everyone): such a server serves loopback only.
pub async fn present(app: &App) -> AppResult<bool> {
    for (username, ..) in ACCOUNTS {
        let Some(rec) = app.store.staff_by_username(username).await? else { continue };
        if rec.disabled {
            continue;
        }
        let hash = rec.password_hash.clone();
        if app.hash_work(move || crate::auth::verify_password(PASSWORD, &hash)).await? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Loads the demo data into an empty store.
pub async fn load(app: &App) -> AppResult<()> {
    let coop = app.store.create_cooperative("24/7 Reference Cooperative", default_codes()).await?;
    let mut institutions = Vec::new();
    for name in ["Riverside University", "City of Lakeside"] {
        institutions.push(app.store.create_institution(coop, name).await?);
    }
    for (slug, name, inst) in LIBRARIES {
        app.store.create_library(institutions[*inst], slug, name).await?;
    }
    app.library_added();
    for (username, name, role, lib) in ACCOUNTS {
        app.add_account(None, lib, username, name, *role, PASSWORD).await?;
    }
    Ok(())
}
