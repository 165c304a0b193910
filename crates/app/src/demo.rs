//! The demo cooperative: two institutions, three libraries, a staff member
//! of every role, the default resolution codes, policy notes and scripts —
//! so that a newcomer can try every flow at once.

use crate::{App, AppResult};
use refdesk_domain::org::Role;
use refdesk_domain::question::default_codes;
use refdesk_domain::DomainError;
use refdesk_store::ScriptOwner;

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

/// The demo's policy notes: (library slug, the admin who wrote them, text).
pub const POLICIES: &[(&str, &str, &str)] = &[
    (
        "riverside-main",
        "carla",
        "Library cards: students and staff use their university ID; visitors register at the front desk with photo ID.\n\
         Renewals: up to 3 times online unless someone holds the item. Fines are not charged on student loans.\n\
         Databases: off campus, sign in with the university account (the proxy asks once a day).\n\
         Maps: the map room (level 2) is open 10–16 on weekdays; the 1890 river survey is in drawer 7.\n\
         Refer: theses and archives questions go to Special Collections by e-mail.",
    ),
    (
        "lakeside-public",
        "erin",
        "Library cards: free for residents of Lakeside; bring proof of address.\n\
         Holds: up to 15 at a time; items wait 7 days at the branch chosen.\n\
         E-books: Libby with the card number and PIN; a forgotten PIN is reset at any branch.\n\
         Local history: the Lakeside Room keeps newspapers from 1870 on microfilm (ask for an appointment).",
    ),
];

/// The demo's scripts: (`None` for the cooperative's, or a library's slug, title, text).
pub const SCRIPTS: &[(Option<&str>, &str, &str)] = &[
    (None, "Greeting", "Hello, I am a librarian and happy to help. Let me read your question."),
    (None, "Searching", "Thanks for waiting: I am still searching and will be back in a minute or two."),
    (
        None,
        "Follow up by e-mail",
        "I would like to look into this further. May I e-mail you an answer? Please check the address you gave us.",
    ),
    (None, "Closing", "Is there anything else I can help you with today? Thank you for using the chat."),
    (
        Some("riverside-main"),
        "Off-campus access",
        "To use our databases from home, sign in with your university account when the page asks for it.",
    ),
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
    let mut libraries = std::collections::HashMap::new();
    for (slug, name, inst) in LIBRARIES {
        let lib = app.store.create_library(institutions[*inst], slug, name).await?;
        libraries.insert(*slug, lib.placement.library);
    }
    app.library_added();
    let mut staff = std::collections::HashMap::new();
    for (username, name, role, lib) in ACCOUNTS {
        staff.insert(*username, app.add_account(None, lib, username, name, *role, PASSWORD).await?);
    }
    // So that the policy and script panels show what they are for.
    let now = app.clock.now();
    let library = |slug: &str| libraries.get(slug).copied().ok_or(DomainError::NotFound("demo library"));
    for (slug, by, text) in POLICIES {
        let by = staff.get(by).copied().ok_or(DomainError::NotFound("demo account"))?;
        app.store.set_policy(library(slug)?, (*text).to_owned(), by, now).await?;
    }
    for (slug, title, text) in SCRIPTS {
        let owner = match slug {
            Some(slug) => ScriptOwner::Library(library(slug)?),
            None => ScriptOwner::Cooperative(coop),
        };
        app.store.create_script(owner, (*title).to_owned(), (*text).to_owned(), now).await?;
    }
    Ok(())
}
