//! Cooperative > institution > library, staff and their roles (DESIGN §2).

use crate::ids::{CooperativeId, InstitutionId, LibraryId, StaffId};
use serde::{Deserialize, Serialize};

/// Where a library sits in the organisation. Carried with every session so
/// that scope can be decided without another lookup.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Placement {
    /// The library itself.
    pub library: LibraryId,
    /// Its institution.
    pub institution: InstitutionId,
    /// Its cooperative.
    pub cooperative: CooperativeId,
}

/// A staff role. The order matters: a later role includes every power of an
/// earlier one, and nobody may grant a role above their own.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Staffs the desk and works their own library's question list.
    Librarian,
    /// Also manages the library; ALL tab for their library's sessions.
    LibraryAdmin,
    /// ALL tab and conferencing for every library of the institution.
    InstitutionAdmin,
    /// ALL tab and conferencing across the cooperative; manages codes.
    CooperativeAdmin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 4] = [Role::Librarian, Role::LibraryAdmin, Role::InstitutionAdmin, Role::CooperativeAdmin];

    /// The name used in the API, the database and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Librarian => "librarian",
            Role::LibraryAdmin => "library_admin",
            Role::InstitutionAdmin => "institution_admin",
            Role::CooperativeAdmin => "cooperative_admin",
        }
    }

    /// Parses [`Role::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A signed-in staff member as the rules see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Staff {
    /// Their id.
    pub id: StaffId,
    /// Sign-in name.
    pub username: String,
    /// What patrons and colleagues see.
    pub display_name: String,
    /// Their role.
    pub role: Role,
    /// Their home library and its place in the organisation.
    pub home: Placement,
}

impl Staff {
    /// Whether `target` lies within this staff member's *role* scope: the
    /// libraries whose question lists they work and whose live sessions they
    /// see in the ALL tab. (Serving a patron of another library through
    /// cooperative coverage is a separate, narrower right: see `authz`.)
    pub fn role_covers(&self, target: &Placement) -> bool {
        match self.role {
            Role::Librarian | Role::LibraryAdmin => self.home.library == target.library,
            Role::InstitutionAdmin => self.home.institution == target.institution,
            Role::CooperativeAdmin => self.home.cooperative == target.cooperative,
        }
    }
}
