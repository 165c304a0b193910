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

/// How a library's widget button looks on the library's own site, kept by
/// its admins and read by the widget with the library's status: a change
/// reaches every page that carries the snippet, with no page edited. The
/// snippet's `data-` attributes, where a page gives them, come first.
/// Each `None` is the widget's default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WidgetLook {
    /// The button's words while a librarian is on duty (at most 80
    /// characters; default "Ask a librarian — " and the library's name).
    #[serde(default)]
    pub label_online: Option<String>,
    /// Its words while no one is (the same default).
    #[serde(default)]
    pub label_offline: Option<String>,
    /// Its colour, `#rgb` or `#rrggbb` (default `#0b57d0`).
    #[serde(default)]
    pub color: Option<String>,
    /// Its text's colour (default `#ffffff`).
    #[serde(default)]
    pub text_color: Option<String>,
    /// `left` or `right` (the default): the corner of the page it sits in.
    #[serde(default)]
    pub position: Option<String>,
}

/// The longest wording of a widget button.
pub const WIDGET_LABEL_CHARS: usize = 80;

impl WidgetLook {
    /// The look as it is kept: words trimmed (blank: the default), colours
    /// in lower case, or why not.
    pub fn checked(self) -> Result<WidgetLook, crate::DomainError> {
        use crate::input::optional_line;
        let colour = |field: &'static str, c: Option<String>| {
            let Some(c) = c.map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty()) else { return Ok(None) };
            let hex = c.strip_prefix('#').unwrap_or("");
            match (hex.len(), hex.bytes().all(|b| b.is_ascii_hexdigit())) {
                (3 | 6, true) => Ok(Some(c)),
                _ => Err(crate::DomainError::invalid(field, "use a colour as #rgb or #rrggbb, like #0b57d0")),
            }
        };
        let position = match self.position.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(p @ ("left" | "right")) => Some(p.to_owned()),
            Some(_) => return Err(crate::DomainError::invalid("position", "use left or right")),
        };
        Ok(WidgetLook {
            label_online: optional_line("label_online", self.label_online.as_deref(), WIDGET_LABEL_CHARS)?,
            label_offline: optional_line("label_offline", self.label_offline.as_deref(), WIDGET_LABEL_CHARS)?,
            color: colour("color", self.color)?,
            text_color: colour("text_color", self.text_color)?,
            position,
        })
    }

    /// Whether every part is the default.
    pub fn is_default(&self) -> bool {
        *self == WidgetLook::default()
    }
}

#[cfg(test)]
mod tests {
    use super::WidgetLook;

    #[test]
    fn a_look_is_kept_trimmed_and_anything_else_is_refused_naming_the_field() {
        let look = WidgetLook {
            label_online: Some("  Chat with us  ".into()),
            label_offline: Some("   ".into()),
            color: Some(" #0B57D0".into()),
            text_color: Some("#fff".into()),
            position: Some("left".into()),
        };
        let kept = look.checked().unwrap();
        assert_eq!(kept.label_online.as_deref(), Some("Chat with us"));
        assert_eq!((kept.label_offline, kept.color.as_deref()), (None, Some("#0b57d0")));
        assert!(WidgetLook::default().checked().unwrap().is_default());
        let refused = |look: WidgetLook| match look.checked() {
            Err(crate::DomainError::Invalid { field, .. }) => field,
            other => panic!("not refused: {other:?}"),
        };
        let bad = |f: fn(&mut WidgetLook)| {
            let mut look = WidgetLook::default();
            f(&mut look);
            refused(look)
        };
        assert_eq!(bad(|l| l.color = Some("blue".into())), "color");
        assert_eq!(bad(|l| l.color = Some("#12345".into())), "color");
        assert_eq!(bad(|l| l.text_color = Some("#ggg".into())), "text_color");
        assert_eq!(bad(|l| l.text_color = Some("#fff;background:url(x)".into())), "text_color");
        assert_eq!(bad(|l| l.position = Some("top".into())), "position");
        assert_eq!(bad(|l| l.label_online = Some("x".repeat(81))), "label_online");
        assert_eq!(bad(|l| l.label_offline = Some("two\nlines".into())), "label_offline");
    }
}
