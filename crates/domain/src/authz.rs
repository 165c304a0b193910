//! The one authorization module (DESIGN §2, I5). Every use case asks
//! [`authorize`] before it acts; the table test at the bottom is the
//! specification: role × scope × action → allowed or refused.

use crate::chat::{MessageKind, SessionState};
use crate::ids::StaffId;
use crate::org::{Placement, Staff};
use crate::{DomainError, Millis};

/// What a staff member wants to do to a session or its question.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// See a waiting chat in the queue and accept it.
    Serve {
        /// How long the patron has waited.
        waited: Millis,
        /// After how long a chat is offered to the whole cooperative.
        rollup: Millis,
    },
    /// Read the session and its question (transcript with notes, timeline).
    View,
    /// Write a message or note into the session.
    Send(MessageKind),
    /// End the chat.
    End,
    /// Set or change the resolution code.
    SetCode,
}

/// The session acted on, as authorization sees it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The patron's library.
    pub placement: Placement,
    /// Its state.
    pub state: SessionState,
    /// The chatting librarian, once accepted.
    pub librarian: Option<StaffId>,
}

/// Whether `staff` is part of the session (today: its chatting librarian).
/// A staff member serving a patron of another library sees that session
/// while they are part of it (DESIGN §2).
fn participates(staff: &Staff, target: &Target) -> bool {
    target.librarian == Some(staff.id)
}

/// Decides whether `staff` may do `action` to `target`. Refusals say why,
/// without naming anything the caller may not see.
pub fn authorize(staff: &Staff, action: Action, target: &Target) -> Result<(), DomainError> {
    let in_scope = staff.role_covers(&target.placement) || participates(staff, target);
    match action {
        Action::Serve { waited, rollup } => {
            // Staff of the patron's library at once; the rest of the
            // cooperative once the chat has rolled up (DESIGN §9).
            let own = staff.home.library == target.placement.library;
            let coop = staff.home.cooperative == target.placement.cooperative && waited >= rollup;
            if own || coop {
                Ok(())
            } else {
                Err(DomainError::Forbidden("this chat is not offered to you"))
            }
        }
        Action::View => {
            if in_scope {
                Ok(())
            } else {
                Err(DomainError::NotFound("session"))
            }
        }
        Action::Send(kind) => {
            if !in_scope {
                return Err(DomainError::NotFound("session"));
            }
            if !matches!(kind, MessageKind::Message | MessageKind::Note) {
                return Err(DomainError::Forbidden("only messages and notes can be sent in a chat"));
            }
            // Until conferencing exists, only the chatting librarian writes
            // into a live chat: no unannounced second librarian (B2).
            if participates(staff, target) {
                Ok(())
            } else {
                Err(DomainError::Forbidden("you are not part of this chat"))
            }
        }
        Action::End => {
            if !in_scope {
                return Err(DomainError::NotFound("session"));
            }
            if participates(staff, target) {
                Ok(())
            } else {
                Err(DomainError::Forbidden("only the chatting librarian ends a chat"))
            }
        }
        Action::SetCode => {
            if !in_scope {
                return Err(DomainError::NotFound("session"));
            }
            // The chatting librarian, or an admin in scope (DESIGN §4: a code
            // set by mistake can be changed by either).
            let admin = staff.role > crate::org::Role::Librarian && staff.role_covers(&target.placement);
            if participates(staff, target) || admin {
                Ok(())
            } else {
                Err(DomainError::Forbidden("only the chatting librarian or an admin sets the code"))
            }
        }
    }
}

/// Question-list work (read a question, act on it): staff whose role covers
/// the owning library, or the library it was referred to, and the librarian
/// who chatted (I5). Outside that: refused, and nothing changes.
pub fn authorize_question(
    staff: &Staff,
    owner: &Placement,
    referred: Option<&Placement>,
    librarian: Option<StaffId>,
) -> Result<(), DomainError> {
    let covers = staff.role_covers(owner) || referred.is_some_and(|r| staff.role_covers(r));
    if covers || librarian == Some(staff.id) {
        Ok(())
    } else {
        Err(DomainError::Forbidden("this question is outside your scope"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CooperativeId, InstitutionId, LibraryId};
    use crate::org::Role;

    fn place(l: i64, i: i64, c: i64) -> Placement {
        Placement { library: LibraryId(l), institution: InstitutionId(i), cooperative: CooperativeId(c) }
    }

    fn staff(id: i64, role: Role) -> Staff {
        Staff {
            id: StaffId(id),
            username: format!("s{id}"),
            display_name: format!("S{id}"),
            role,
            home: place(1, 1, 1),
        }
    }

    /// Where the patron's library lies relative to the staff member's home (library 1, institution 1, coop 1).
    #[derive(Copy, Clone, Debug)]
    enum Where {
        SameLibrary,
        SameInstitution,
        SameCooperative,
        OtherCooperative,
    }

    fn target(w: Where, librarian: Option<StaffId>) -> Target {
        let placement = match w {
            Where::SameLibrary => place(1, 1, 1),
            Where::SameInstitution => place(2, 1, 1),
            Where::SameCooperative => place(3, 2, 1),
            Where::OtherCooperative => place(9, 9, 9),
        };
        Target { placement, state: SessionState::Active, librarian }
    }

    #[test]
    fn i5_view_follows_role_scope_or_participation() {
        use Role::*;
        use Where::*;
        let table = [
            (Librarian, SameLibrary, true),
            (Librarian, SameInstitution, false),
            (Librarian, SameCooperative, false),
            (Librarian, OtherCooperative, false),
            (LibraryAdmin, SameLibrary, true),
            (LibraryAdmin, SameInstitution, false),
            (InstitutionAdmin, SameInstitution, true),
            (InstitutionAdmin, SameCooperative, false),
            (CooperativeAdmin, SameCooperative, true),
            (CooperativeAdmin, OtherCooperative, false),
        ];
        for (role, w, allowed) in table {
            let got = authorize(&staff(5, role), Action::View, &target(w, Some(StaffId(99))));
            assert_eq!(got.is_ok(), allowed, "{role:?} × {w:?}");
        }
        // Cooperative coverage: the chatting librarian sees a session outside
        // their role scope while they are part of it.
        assert!(authorize(&staff(5, Role::Librarian), Action::View, &target(Where::SameCooperative, Some(StaffId(5))))
            .is_ok());
    }

    #[test]
    fn i5_question_work_follows_role_scope_referral_or_participation() {
        use Role::*;
        use Where::*;
        let table = [
            (Librarian, SameLibrary, true),
            (Librarian, SameInstitution, false),
            (LibraryAdmin, SameInstitution, false),
            (InstitutionAdmin, SameInstitution, true),
            (InstitutionAdmin, SameCooperative, false),
            (CooperativeAdmin, SameCooperative, true),
            (CooperativeAdmin, OtherCooperative, false),
        ];
        for (role, w, allowed) in table {
            let t = target(w, Some(StaffId(99)));
            let got = authorize_question(&staff(5, role), &t.placement, None, t.librarian);
            assert_eq!(got.is_ok(), allowed, "{role:?} × {w:?}");
        }
        let other = target(Where::SameCooperative, None).placement;
        let home = target(Where::SameLibrary, None).placement;
        assert!(authorize_question(&staff(5, Role::Librarian), &other, Some(&home), None).is_ok(), "referred to me");
        assert!(authorize_question(&staff(5, Role::Librarian), &other, None, Some(StaffId(5))).is_ok(), "I chatted");
    }

    #[test]
    fn serving_is_own_library_at_once_and_cooperative_after_rollup() {
        let s = staff(5, Role::Librarian);
        let serve = |waited| Action::Serve { waited, rollup: 60_000 };
        assert!(authorize(&s, serve(0), &target(Where::SameLibrary, None)).is_ok());
        assert!(authorize(&s, serve(0), &target(Where::SameCooperative, None)).is_err());
        assert!(authorize(&s, serve(60_000), &target(Where::SameCooperative, None)).is_ok());
        assert!(authorize(&s, serve(600_000), &target(Where::OtherCooperative, None)).is_err());
    }

    #[test]
    fn only_the_chatting_librarian_sends_and_ends() {
        let me = staff(5, Role::CooperativeAdmin);
        let mine = target(Where::SameLibrary, Some(StaffId(5)));
        let theirs = target(Where::SameLibrary, Some(StaffId(6)));
        for action in [Action::Send(MessageKind::Message), Action::Send(MessageKind::Note), Action::End] {
            assert!(authorize(&me, action, &mine).is_ok(), "{action:?}");
            assert!(matches!(authorize(&me, action, &theirs), Err(DomainError::Forbidden(_))), "{action:?}");
        }
        let out = target(Where::OtherCooperative, Some(StaffId(6)));
        assert!(matches!(authorize(&me, Action::End, &out), Err(DomainError::NotFound(_))));
    }

    #[test]
    fn answers_and_system_lines_are_not_sent_over_the_chat() {
        let me = staff(5, Role::Librarian);
        let mine = target(Where::SameLibrary, Some(StaffId(5)));
        assert!(authorize(&me, Action::Send(MessageKind::System), &mine).is_err());
        assert!(authorize(&me, Action::Send(MessageKind::Answer), &mine).is_err());
    }

    #[test]
    fn codes_are_set_by_the_chatting_librarian_or_an_admin_in_scope() {
        let theirs = target(Where::SameLibrary, Some(StaffId(6)));
        assert!(authorize(&staff(5, Role::Librarian), Action::SetCode, &theirs).is_err());
        assert!(authorize(&staff(5, Role::LibraryAdmin), Action::SetCode, &theirs).is_ok());
        assert!(authorize(&staff(6, Role::Librarian), Action::SetCode, &theirs).is_ok());
        let elsewhere = target(Where::SameInstitution, Some(StaffId(6)));
        assert!(authorize(&staff(5, Role::LibraryAdmin), Action::SetCode, &elsewhere).is_err());
    }
}
