//! Typed identifiers. All are database row ids; the newtypes exist so that the
//! compiler refuses a `LibraryId` where a `StaffId` is meant.

use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub struct $name(pub i64);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    )*};
}

id_type!(
    /// A cooperative: institutions that share the staffing of the chat service.
    CooperativeId,
    /// An institution (a university, a city) with one or more libraries.
    InstitutionId,
    /// A library: owns questions and a patron entry point.
    LibraryId,
    /// A staff member.
    StaffId,
    /// A live chat session.
    SessionId,
    /// A question record.
    QuestionId,
);
