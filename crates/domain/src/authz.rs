//! The one authorization module (DESIGN §2, I5). Every use case asks
//! [`authorize`] before it acts; the table test at the bottom is the
//! specification: role × scope × action → allowed or refused.

use crate::chat::{ConferenceMode, Member, MessageKind, SessionContext, SessionState};
use crate::ids::StaffId;
use crate::org::Role;
use crate::org::{Placement, Staff};
use crate::{DomainError, Millis};

/// What a staff member wants to do to a session or its question.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// See a waiting chat in the queue and accept it.
    Serve {
        /// How long the patron has waited in this queue.
        waited: Millis,
        /// After how long a chat is offered to the whole cooperative.
        rollup: Millis,
        /// Offered to the whole cooperative at once (transferred to its queue).
        coop_now: bool,
    },
    /// Read the session and its question (transcript with notes, timeline).
    View,
    /// See the session in the chat monitor's ALL tab.
    Monitor,
    /// Write a message or note into the session.
    Send(MessageKind),
    /// End the chat.
    End,
    /// Set or change the resolution code.
    SetCode,
    /// Enter someone else's live chat from the ALL tab, in a mode (R3, B2).
    Conference(ConferenceMode),
    /// Take the chat over from its librarian (B2).
    TakeOver,
    /// Leave a chat one conferenced into.
    Leave,
    /// Hand the chat to a colleague or a queue.
    Transfer,
}

/// The session acted on, as authorization sees it. For `Serve`, the
/// placement is the library whose queue the chat waits in.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Target<'a> {
    /// The patron's library (or, for `Serve`, the queue's library).
    pub placement: Placement,
    /// Its state.
    pub state: SessionState,
    /// The chatting librarian, once accepted.
    pub librarian: Option<StaffId>,
    /// Whether its question is referred to another library.
    pub referred: bool,
    /// Conference members present.
    pub members: &'a [Member],
}

impl<'a> Target<'a> {
    /// The target a session's context describes.
    pub fn of(ctx: &'a SessionContext, state: SessionState) -> Target<'a> {
        Target {
            placement: ctx.placement,
            state,
            librarian: ctx.librarian,
            referred: ctx.referred.is_some(),
            members: &ctx.members,
        }
    }

    fn mode_of(&self, staff: StaffId) -> Option<ConferenceMode> {
        self.members.iter().find(|m| m.staff == staff).map(|m| m.mode)
    }
}

/// Whether `staff` is part of the session: its chatting librarian or a
/// conference member. A staff member serving a patron of another library
/// sees that session while they are part of it (DESIGN §2).
fn participates(staff: &Staff, target: &Target) -> bool {
    target.librarian == Some(staff.id) || target.mode_of(staff.id).is_some()
}

/// Whether `staff` may view a session (its record, its lines as the
/// visibility function lets them see each): what their role covers
/// ([`Action::View`]), or the library its question was referred to. The
/// one rule for a session's page, a socket's resume and the visibility
/// function's staff lines.
pub fn authorize_view(staff: &Staff, ctx: &SessionContext, state: SessionState) -> Result<(), DomainError> {
    if ctx.referred.is_some_and(|r| staff.role_covers(&r)) {
        return Ok(());
    }
    authorize(staff, Action::View, &Target::of(ctx, state))
}

/// Whether `staff` may read a session now (its page, a socket's resume):
/// [`authorize_view`], and the librarian who chatted with another library's
/// patron only while they are part of it (DESIGN §2): while the chat goes
/// on and for [`WRAP_UP_MS`] after it ended, as for its question
/// ([`authorize_question_work`]). After that the chat is its library's.
pub fn authorize_view_at(
    staff: &Staff,
    ctx: &SessionContext,
    state: SessionState,
    ended_at: Option<Millis>,
    now: Millis,
) -> Result<(), DomainError> {
    authorize_view(staff, ctx, state)?;
    match view_ends(staff, ctx, ended_at) {
        Some(until) if now > until => Err(DomainError::NotFound("session")),
        _ => Ok(()),
    }
}

/// When `staff`'s view of a session that ended at `ended_at` ends
/// ([`authorize_view_at`]): `None` when it does not (their role covers the
/// session, or the library it was referred to) or the chat goes on.
pub fn view_ends(staff: &Staff, ctx: &SessionContext, ended_at: Option<Millis>) -> Option<Millis> {
    let covered = staff.role_covers(&ctx.placement) || ctx.referred.is_some_and(|r| staff.role_covers(&r));
    ended_at.filter(|_| !covered).map(|at| at.saturating_add(WRAP_UP_MS))
}

/// Decides whether `staff` may do `action` to `target`. Refusals say why,
/// without naming anything the caller may not see.
pub fn authorize(staff: &Staff, action: Action, target: &Target) -> Result<(), DomainError> {
    let in_scope = staff.role_covers(&target.placement) || participates(staff, target);
    match action {
        Action::Serve { waited, rollup, coop_now } => {
            // Staff of the queue's library at once; the rest of the
            // cooperative once the chat has rolled up (DESIGN §9).
            let own = staff.home.library == target.placement.library;
            let coop = staff.home.cooperative == target.placement.cooperative && (coop_now || waited >= rollup);
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
        Action::Monitor => {
            // The ALL tab is for admins (DESIGN §2); everyone sees their own chats.
            if participates(staff, target) || (staff.role >= Role::LibraryAdmin && staff.role_covers(&target.placement))
            {
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
            if target.librarian == Some(staff.id) {
                return Ok(());
            }
            // Conference members write as their mode allows (B2): no
            // unannounced second librarian ever writes to the patron.
            match (target.mode_of(staff.id), kind) {
                (Some(ConferenceMode::Join), _) | (Some(ConferenceMode::Whisper), MessageKind::Note) => Ok(()),
                (Some(ConferenceMode::Whisper), _) => {
                    Err(DomainError::Forbidden("you are whispering: send librarian notes, or join the chat first"))
                }
                (Some(ConferenceMode::Monitor), _) => {
                    Err(DomainError::Forbidden("you are monitoring (read only): whisper or join to write"))
                }
                (None, _) => Err(DomainError::Forbidden("you are not part of this chat")),
            }
        }
        Action::Conference(_) | Action::TakeOver => {
            // Institution and cooperative admins, from the ALL tab (R3).
            if !(staff.role >= Role::InstitutionAdmin && staff.role_covers(&target.placement)) {
                return Err(if in_scope {
                    DomainError::Forbidden("conferencing is for institution and cooperative admins")
                } else {
                    DomainError::NotFound("session")
                });
            }
            if target.librarian == Some(staff.id) {
                return Err(DomainError::Conflict("you are already the chatting librarian".into()));
            }
            if target.state != SessionState::Active {
                return Err(DomainError::Conflict("only an active chat can be entered".into()));
            }
            Ok(())
        }
        Action::Leave => {
            if target.mode_of(staff.id).is_some() {
                Ok(())
            } else if in_scope {
                Err(DomainError::Conflict("you are not conferencing in this chat".into()))
            } else {
                Err(DomainError::NotFound("session"))
            }
        }
        Action::Transfer => {
            if !in_scope {
                return Err(DomainError::NotFound("session"));
            }
            if target.librarian != Some(staff.id) {
                return Err(DomainError::Forbidden("only the chatting librarian transfers a chat"));
            }
            if target.state != SessionState::Active {
                return Err(DomainError::Conflict("only an active chat can be transferred".into()));
            }
            Ok(())
        }
        Action::End => {
            if !in_scope {
                return Err(DomainError::NotFound("session"));
            }
            if target.librarian == Some(staff.id) {
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
            // set by mistake can be changed by either). A question with no
            // chatting librarian (the offline form's, a patron who left the
            // queue or was sent back to it) is coded by its library's
            // staff once the chat has ended: nobody but an admin could,
            // and it stayed without a code, counted as answered in the
            // reports. Not one referred to another library, which works it
            // now: a code other than a referral's would take it back.
            let admin = staff.role > Role::Librarian && staff.role_covers(&target.placement);
            let unclaimed = target.librarian.is_none()
                && target.state == SessionState::Ended
                && !target.referred
                && staff.role_covers(&target.placement);
            if target.librarian == Some(staff.id) || admin || unclaimed {
                Ok(())
            } else {
                Err(DomainError::Forbidden("only the chatting librarian or an admin sets the code"))
            }
        }
    }
}

/// How a staff member reaches a question.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// Their role covers its library, or the library it was referred to.
    Scope,
    /// Only as the librarian who chatted with its patron (cooperative
    /// coverage, I5): see [`authorize_question_work`].
    Chatted,
}

/// Question-list work (read a question, act on it): staff whose role covers
/// the owning library, or the library it was referred to, and the librarian
/// who chatted (I5), who may read it and wrap it up
/// ([`authorize_question_work`]). Outside that: refused, and nothing changes
/// — as not found when the question is another cooperative's (question
/// numbers count over the whole service: a refusal would tell another
/// cooperative's which exist).
pub fn authorize_question(
    staff: &Staff,
    owner: &Placement,
    referred: Option<&Placement>,
    librarian: Option<StaffId>,
) -> Result<Standing, DomainError> {
    if staff.role_covers(owner) || referred.is_some_and(|r| staff.role_covers(r)) {
        Ok(Standing::Scope)
    } else if librarian == Some(staff.id) {
        Ok(Standing::Chatted)
    } else if owner.cooperative != staff.home.cooperative {
        Err(DomainError::NotFound("question"))
    } else {
        Err(DomainError::Forbidden("this question is outside your scope"))
    }
}

/// What is done to a question, as [`authorize_question_work`] tells it apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Reading it: the question, its transcript, its history.
    Read,
    /// A note, a message to the chatting librarian, an answer shown in the
    /// chat or e-mailed to the patron's own address, a resolution code that
    /// refers it to no other library: the chat's wrap-up.
    WrapUp,
    /// What decides who has the question or where its answer goes: a
    /// referral (or a code that refers it), an assignment, a claim, closing
    /// or reopening it, an answer e-mailed to another address.
    Manage,
}

/// How long after its chat ended the librarian who chatted may still wrap
/// a question up. From the end, not from their last word: their own notes
/// would otherwise keep it theirs.
pub const WRAP_UP_MS: Millis = 24 * 60 * 60 * 1000;

/// Whether a staff member of this [`Standing`] may do `work` on a question
/// whose chat ended at `ended_at` (`None`: it goes on). Staff in scope may
/// do anything. The librarian who chatted for the cooperative is part of it
/// only while it lasts (DESIGN §2): they wrap it up — a note, the answer to
/// the patron, the code (or a new one) — while the chat goes on and for
/// [`WRAP_UP_MS`] after it ended, and never decide who has it or where it
/// goes: a librarian who took one chat for the cooperative could otherwise
/// refer the patron's question (and with it their name, address and
/// transcript) to their own library's staff, re-code it out of its
/// library's figures, or e-mail it anywhere under that library's name, at
/// any time after.
pub fn authorize_question_work(
    standing: Standing,
    work: Work,
    ended_at: Option<Millis>,
    now: Millis,
) -> Result<(), DomainError> {
    match (standing, work) {
        (Standing::Scope, _) => Ok(()),
        (Standing::Chatted, Work::Manage) => Err(DomainError::Forbidden(
            "you chatted with this patron for the cooperative: referring, assigning, closing or reopening the question, or e-mailing an answer elsewhere, is for its library's staff",
        )),
        (Standing::Chatted, Work::Read | Work::WrapUp) if ended_at.is_none_or(|at| now.saturating_sub(at) <= WRAP_UP_MS) => {
            Ok(())
        }
        (Standing::Chatted, Work::Read | Work::WrapUp) => Err(DomainError::Forbidden(
            "you chatted with this patron for the cooperative, and the chat ended over a day ago: the question is its library's now",
        )),
    }
}

/// Staff management (DESIGN §2): library admins and above manage staff
/// whose home library their role covers, never above their own role — not
/// in what they grant, nor in whom they change.
pub fn authorize_staff_admin(
    actor: &Staff,
    target_home: &Placement,
    target_role: Role,
    new_role: Option<Role>,
) -> Result<(), DomainError> {
    if actor.role < Role::LibraryAdmin {
        return Err(DomainError::Forbidden("managing staff is for library admins and above"));
    }
    if !actor.role_covers(target_home) {
        return Err(DomainError::Forbidden("that library is outside your scope"));
    }
    if target_role > actor.role || new_role.is_some_and(|r| r > actor.role) {
        return Err(DomainError::Forbidden("nobody manages or grants a role above their own"));
    }
    Ok(())
}

/// A new account: as [`authorize_staff_admin`], and of a role below one's
/// own. A peer one added could not be managed by the one who added it
/// ([`authorize_staff_change`]): an account of one's own role is added by a
/// role above it (a cooperative admin, by the operator's `refdesk user add`).
pub fn authorize_staff_add(actor: &Staff, home: &Placement, role: Role) -> Result<(), DomainError> {
    authorize_staff_admin(actor, home, role, Some(role))?;
    if role == actor.role {
        return Err(DomainError::Forbidden(
            "an account of your own role is added by a role above it (a cooperative admin, by the operator's refdesk user add)",
        ));
    }
    Ok(())
}

/// A change to an existing account (its role, disabling or enabling it,
/// a new password): as [`authorize_staff_admin`], and only to accounts of
/// a role below one's own (never into it), or one's own. A peer of the same role could
/// otherwise reset a fellow admin's password and sign in as them, or
/// disable every other admin of the library; a role above theirs manages
/// them (a cooperative admin, with none above: the operator's `refdesk
/// user disable` or `password`).
pub fn authorize_staff_change(
    actor: &Staff,
    target: StaffId,
    target_home: &Placement,
    target_role: Role,
    new_role: Option<Role>,
) -> Result<(), DomainError> {
    authorize_staff_admin(actor, target_home, target_role, new_role)?;
    if target_role == actor.role && target != actor.id {
        return Err(DomainError::Forbidden(
            "an account of your own role is managed by a role above it (a cooperative admin's, by the operator's refdesk user)",
        ));
    }
    // Nor made a peer: one could not manage them after.
    if new_role == Some(actor.role) && target != actor.id {
        return Err(DomainError::Forbidden("your own role is granted by a role above it"));
    }
    Ok(())
}

/// Administration of a library or cooperative (DESIGN §2, §9).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Admin {
    /// Write a library's policy page.
    EditPolicy,
    /// Keep scripts for a library.
    LibraryScripts,
    /// Keep scripts for the cooperative.
    CooperativeScripts,
    /// Change the cooperative's resolution codes (R6).
    EditCodes,
    /// Add a library to one's institution (cooperative admins: to any
    /// institution of the cooperative).
    AddLibrary,
    /// Add an institution to the cooperative.
    AddInstitution,
    /// List and lift blocks on abusive patrons (and block after a chat ended).
    Blocks,
    /// Set a library's retention period; find and erase a patron's data.
    Privacy,
    /// Give a library a new name (its admins and those above).
    RenameLibrary,
    /// Say which web sites may show a library's chat (its widget).
    Embedding,
    /// Set how a library's widget button looks on its site.
    Widget,
    /// Say where patrons' replies to a library's e-mails go.
    ReplyTo,
    /// Close a library's chat to new patrons, with a notice, and open it again.
    Closing,
    /// Give an institution a new name (its admins and cooperative admins).
    RenameInstitution,
    /// Give the cooperative a new name.
    RenameCooperative,
}

/// Decides administration: library admins for their library's policy page
/// and scripts, institution admins add libraries to their institution,
/// cooperative admins keep cooperative scripts and resolution codes — each
/// only within the role's scope (`target` is the library or, for
/// cooperative-wide actions, any library of the cooperative).
pub fn authorize_admin(staff: &Staff, action: Admin, target: &Placement) -> Result<(), DomainError> {
    let (needed, why) = match action {
        Admin::EditPolicy => (Role::LibraryAdmin, "only the library's admins edit its policy page"),
        Admin::LibraryScripts => (Role::LibraryAdmin, "only admins keep scripts for a library"),
        Admin::AddLibrary => (Role::InstitutionAdmin, "libraries are added by institution and cooperative admins"),
        Admin::AddInstitution => (Role::CooperativeAdmin, "institutions are added by cooperative admins"),
        Admin::CooperativeScripts => (Role::CooperativeAdmin, "only cooperative admins keep cooperative scripts"),
        Admin::EditCodes => (Role::CooperativeAdmin, "resolution codes are the cooperative admins' to change"),
        Admin::Blocks => (Role::LibraryAdmin, "blocks are for the library's admins"),
        Admin::Privacy => (Role::LibraryAdmin, "patron privacy is for the library's admins"),
        Admin::RenameLibrary => (Role::LibraryAdmin, "a library is renamed by its admins"),
        Admin::Embedding => (Role::LibraryAdmin, "the sites that show a library's chat are its admins' to say"),
        Admin::Widget => (Role::LibraryAdmin, "a library's widget button is its admins' to set"),
        Admin::ReplyTo => (Role::LibraryAdmin, "where replies to a library's e-mails go is its admins' to say"),
        Admin::Closing => (Role::LibraryAdmin, "a library's chat is closed and opened again by its admins"),
        Admin::RenameInstitution => (Role::InstitutionAdmin, "an institution is renamed by its admins"),
        Admin::RenameCooperative => (Role::CooperativeAdmin, "the cooperative is renamed by its admins"),
    };
    if staff.role < needed {
        Err(DomainError::Forbidden(why))
    } else if !staff.role_covers(target) {
        // The role is enough, but not here: said as such, not as a role
        // the admin already has.
        Err(DomainError::Forbidden("that is outside the libraries your role covers"))
    } else {
        Ok(())
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

    fn target(w: Where, librarian: Option<StaffId>) -> Target<'static> {
        let placement = match w {
            Where::SameLibrary => place(1, 1, 1),
            Where::SameInstitution => place(2, 1, 1),
            Where::SameCooperative => place(3, 2, 1),
            Where::OtherCooperative => place(9, 9, 9),
        };
        Target { placement, state: SessionState::Active, librarian, referred: false, members: &[] }
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
            assert_eq!(got.clone().ok(), allowed.then_some(Standing::Scope), "{role:?} × {w:?}");
            // Another cooperative's is not found: its number tells nothing.
            if !allowed {
                let other = matches!(w, OtherCooperative);
                assert_eq!(matches!(got, Err(DomainError::NotFound(_))), other, "{role:?} × {w:?}: {got:?}");
            }
        }
        let other = target(Where::SameCooperative, None).placement;
        let home = target(Where::SameLibrary, None).placement;
        let me = staff(5, Role::Librarian);
        assert_eq!(authorize_question(&me, &other, Some(&home), None), Ok(Standing::Scope), "referred to me");
        assert_eq!(authorize_question(&me, &other, None, Some(StaffId(5))), Ok(Standing::Chatted), "I chatted");
        assert_eq!(authorize_question(&me, &home, None, Some(StaffId(5))), Ok(Standing::Scope), "mine and I chatted");
    }

    /// The librarian who chatted for the cooperative wraps the question up
    /// while it lasts, and never decides who has it or where it goes.
    #[test]
    fn a_librarian_who_only_chatted_wraps_the_question_up_while_it_lasts_and_manages_nothing() {
        let (now, day) = (1_000_000_000, WRAP_UP_MS);
        // (standing, work, ended this long ago (None: going on), allowed)
        let table = [
            (Standing::Scope, Work::Manage, Some(10 * day), true),
            (Standing::Scope, Work::WrapUp, Some(10 * day), true),
            (Standing::Chatted, Work::WrapUp, None, true),
            (Standing::Chatted, Work::WrapUp, Some(0), true),
            (Standing::Chatted, Work::WrapUp, Some(day), true),
            (Standing::Chatted, Work::WrapUp, Some(day + 1), false),
            (Standing::Chatted, Work::Manage, None, false),
            (Standing::Scope, Work::Read, Some(10 * day), true),
            (Standing::Chatted, Work::Read, None, true),
            (Standing::Chatted, Work::Read, Some(day), true),
            (Standing::Chatted, Work::Read, Some(day + 1), false),
        ];
        for (standing, work, ago, allowed) in table {
            let got = authorize_question_work(standing, work, ago.map(|ago| now - ago), now);
            assert_eq!(got.is_ok(), allowed, "{standing:?} {work:?} ended {ago:?} ms ago");
            if let Err(e) = got {
                assert!(matches!(e, DomainError::Forbidden(_)));
            }
        }
    }

    /// The librarian who chatted with another library's patron reads the
    /// chat while it goes on and for a day after its end; staff whose role
    /// covers it, or the library it was referred to, for good.
    #[test]
    fn a_chat_is_read_by_the_librarian_who_had_it_for_another_library_while_they_are_part_of_it() {
        let (now, day) = (1_000_000_000, WRAP_UP_MS);
        let ctx = |w: Where, referred: Option<Where>| crate::chat::SessionContext {
            id: crate::ids::SessionId(1),
            placement: target(w, None).placement,
            librarian: Some(StaffId(5)),
            question: None,
            referred: referred.map(|r| target(r, None).placement),
            members: vec![],
            version: 0,
        };
        let me = staff(5, Role::Librarian);
        // (the patron's library, referred to, ended this long ago, allowed)
        let table = [
            (Where::SameCooperative, None, None, true),
            (Where::SameCooperative, None, Some(day), true),
            (Where::SameCooperative, None, Some(day + 1), false),
            (Where::SameCooperative, Some(Where::SameLibrary), Some(10 * day), true),
            (Where::SameLibrary, None, Some(10 * day), true),
        ];
        for (w, referred, ago, allowed) in table {
            let got = authorize_view_at(&me, &ctx(w, referred), SessionState::Ended, ago.map(|ago| now - ago), now);
            assert_eq!(got.is_ok(), allowed, "{w:?} referred to {referred:?}, ended {ago:?} ms ago");
            if let Err(e) = got {
                assert_eq!(e, DomainError::NotFound("session"), "says nothing of the chat");
            }
        }
        // Someone else's chat of another library: never.
        let mut theirs = ctx(Where::SameCooperative, None);
        theirs.librarian = Some(StaffId(6));
        assert!(authorize_view_at(&me, &theirs, SessionState::Active, None, now).is_err());
    }

    /// Viewing a session: the role's scope, or the library its question was
    /// referred to — never a library the referral names not.
    #[test]
    fn a_session_is_viewed_within_the_role_or_by_the_library_it_was_referred_to() {
        use Role::*;
        let ctx = |w: Where, referred: Option<Where>| crate::chat::SessionContext {
            id: crate::ids::SessionId(1),
            placement: target(w, None).placement,
            librarian: Some(StaffId(99)),
            question: None,
            referred: referred.map(|r| target(r, None).placement),
            members: vec![],
            version: 0,
        };
        let view =
            |role, c: &crate::chat::SessionContext| authorize_view(&staff(5, role), c, SessionState::Ended).is_ok();
        assert!(view(Librarian, &ctx(Where::SameLibrary, None)));
        assert!(!view(Librarian, &ctx(Where::SameCooperative, None)), "another library's");
        assert!(view(Librarian, &ctx(Where::SameCooperative, Some(Where::SameLibrary))), "referred to mine");
        assert!(!view(Librarian, &ctx(Where::SameCooperative, Some(Where::SameInstitution))), "referred elsewhere");
        assert!(
            view(InstitutionAdmin, &ctx(Where::SameCooperative, Some(Where::SameInstitution))),
            "to my institution"
        );
        assert!(!view(CooperativeAdmin, &ctx(Where::OtherCooperative, None)), "another cooperative's");
    }

    #[test]
    fn serving_is_own_library_at_once_and_cooperative_after_rollup() {
        let s = staff(5, Role::Librarian);
        let serve = |waited| Action::Serve { waited, rollup: 60_000, coop_now: false };
        assert!(authorize(&s, serve(0), &target(Where::SameLibrary, None)).is_ok());
        assert!(authorize(&s, serve(0), &target(Where::SameCooperative, None)).is_err());
        assert!(authorize(&s, serve(60_000), &target(Where::SameCooperative, None)).is_ok());
        assert!(authorize(&s, serve(600_000), &target(Where::OtherCooperative, None)).is_err());
        let now = Action::Serve { waited: 0, rollup: 60_000, coop_now: true };
        assert!(
            authorize(&s, now, &target(Where::SameCooperative, None)).is_ok(),
            "transferred to the cooperative queue"
        );
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
        // No chatting librarian (a form question, a patron who left the
        // queue): its library's librarians code it once it has ended; not
        // while it waits, not another library's, not once it is referred
        // to another library (that library works it now).
        let ended = |w, referred| Target { state: SessionState::Ended, referred, ..target(w, None) };
        let ann = staff(5, Role::Librarian);
        assert!(authorize(&ann, Action::SetCode, &ended(Where::SameLibrary, false)).is_ok());
        let waiting = Target { state: SessionState::Waiting, ..target(Where::SameLibrary, None) };
        assert!(authorize(&ann, Action::SetCode, &waiting).is_err(), "a chat still waiting");
        assert!(authorize(&ann, Action::SetCode, &ended(Where::SameInstitution, false)).is_err(), "another library's");
        assert!(authorize(&ann, Action::SetCode, &ended(Where::SameLibrary, true)).is_err(), "referred elsewhere");
        assert!(
            authorize(&staff(5, Role::LibraryAdmin), Action::SetCode, &ended(Where::SameLibrary, true)).is_ok(),
            "an admin still may"
        );
        let chatted = Target { state: SessionState::Ended, ..theirs };
        assert!(authorize(&ann, Action::SetCode, &chatted).is_err(), "a colleague's chat, ended");
    }

    #[test]
    fn r3_b2_conferencing_is_for_institution_and_cooperative_admins_in_scope() {
        use Role::*;
        use Where::*;
        let table = [
            (Librarian, SameLibrary, false),
            (LibraryAdmin, SameLibrary, false),
            (InstitutionAdmin, SameLibrary, true),
            (InstitutionAdmin, SameInstitution, true),
            (InstitutionAdmin, SameCooperative, false),
            (CooperativeAdmin, SameCooperative, true),
            (CooperativeAdmin, OtherCooperative, false),
        ];
        for (role, w, allowed) in table {
            for action in [Action::Conference(ConferenceMode::Monitor), Action::TakeOver] {
                let got = authorize(&staff(5, role), action, &target(w, Some(StaffId(99))));
                assert_eq!(got.is_ok(), allowed, "{role:?} × {w:?} × {action:?}");
            }
        }
    }

    #[test]
    fn b2_what_a_conference_member_may_send_follows_their_mode() {
        let members = |mode| vec![Member { staff: StaffId(5), name: "D".into(), mode }];
        let me = staff(5, Role::InstitutionAdmin);
        for (mode, message, note) in [
            (ConferenceMode::Monitor, false, false),
            (ConferenceMode::Whisper, false, true),
            (ConferenceMode::Join, true, true),
        ] {
            let m = members(mode);
            let t = Target { members: &m, ..target(Where::SameLibrary, Some(StaffId(99))) };
            assert_eq!(authorize(&me, Action::Send(MessageKind::Message), &t).is_ok(), message, "{mode:?}");
            assert_eq!(authorize(&me, Action::Send(MessageKind::Note), &t).is_ok(), note, "{mode:?}");
            assert!(authorize(&me, Action::Leave, &t).is_ok());
            assert!(authorize(&me, Action::End, &t).is_err(), "only the chatting librarian ends");
        }
    }

    #[test]
    fn the_all_tab_is_for_admins_in_scope_and_my_tab_for_participants() {
        let t = target(Where::SameLibrary, Some(StaffId(99)));
        assert!(authorize(&staff(5, Role::Librarian), Action::Monitor, &t).is_err());
        assert!(authorize(&staff(5, Role::LibraryAdmin), Action::Monitor, &t).is_ok());
        assert!(authorize(&staff(99, Role::Librarian), Action::Monitor, &t).is_ok(), "my own chat");
        assert!(
            authorize(&staff(5, Role::LibraryAdmin), Action::Monitor, &target(Where::SameInstitution, None)).is_err()
        );
    }

    #[test]
    fn only_the_chatting_librarian_transfers() {
        let t = target(Where::SameLibrary, Some(StaffId(5)));
        assert!(authorize(&staff(5, Role::Librarian), Action::Transfer, &t).is_ok());
        assert!(authorize(&staff(6, Role::CooperativeAdmin), Action::Transfer, &t).is_err());
    }

    #[test]
    fn staff_are_managed_within_scope_and_never_above_ones_own_role() {
        use Role::*;
        use Where::*;
        let place_of = |w| target(w, None).placement;
        let table = [
            (Librarian, SameLibrary, Librarian, None, false),
            (LibraryAdmin, SameLibrary, Librarian, Some(LibraryAdmin), true),
            (LibraryAdmin, SameLibrary, Librarian, Some(InstitutionAdmin), false),
            (LibraryAdmin, SameLibrary, InstitutionAdmin, None, false),
            (LibraryAdmin, SameInstitution, Librarian, None, false),
            (InstitutionAdmin, SameInstitution, LibraryAdmin, Some(InstitutionAdmin), true),
            (InstitutionAdmin, SameCooperative, Librarian, None, false),
            (CooperativeAdmin, SameCooperative, InstitutionAdmin, Some(CooperativeAdmin), true),
            (CooperativeAdmin, OtherCooperative, Librarian, None, false),
        ];
        for (role, w, target_role, new_role, allowed) in table {
            let got = authorize_staff_admin(&staff(5, role), &place_of(w), target_role, new_role);
            assert_eq!(got.is_ok(), allowed, "{role:?} × {w:?} × {target_role:?} → {new_role:?}");
        }
    }

    #[test]
    fn an_account_is_changed_by_a_role_above_it_or_by_its_owner_never_by_a_peer() {
        use Role::*;
        use Where::*;
        let place_of = |w| target(w, None).placement;
        let (me, peer) = (StaffId(5), StaffId(6));
        let table = [
            (LibraryAdmin, peer, Librarian, None, true),
            (LibraryAdmin, peer, LibraryAdmin, None, false),
            (LibraryAdmin, peer, LibraryAdmin, Some(Librarian), false),
            (LibraryAdmin, me, LibraryAdmin, None, true),
            (InstitutionAdmin, peer, LibraryAdmin, None, true),
            (CooperativeAdmin, peer, CooperativeAdmin, None, false),
            (CooperativeAdmin, peer, InstitutionAdmin, Some(InstitutionAdmin), true),
            // Never made a peer (one could not manage them after).
            (LibraryAdmin, peer, Librarian, Some(LibraryAdmin), false),
            (CooperativeAdmin, peer, InstitutionAdmin, Some(CooperativeAdmin), false),
            (InstitutionAdmin, peer, Librarian, Some(LibraryAdmin), true),
        ];
        for (role, who, target_role, new_role, allowed) in table {
            let got = authorize_staff_change(&staff(5, role), who, &place_of(SameLibrary), target_role, new_role);
            assert_eq!(got.is_ok(), allowed, "{role:?} × {who:?} ({target_role:?}) → {new_role:?}");
        }
        // An account is added of a role below one's own only.
        for (role, new, allowed) in [
            (LibraryAdmin, Librarian, true),
            (LibraryAdmin, LibraryAdmin, false),
            (CooperativeAdmin, InstitutionAdmin, true),
            (CooperativeAdmin, CooperativeAdmin, false),
        ] {
            let got = authorize_staff_add(&staff(5, role), &place_of(SameLibrary), new);
            assert_eq!(got.is_ok(), allowed, "{role:?} adds {new:?}");
        }
        // Scope and the role ceiling still hold.
        let ceiling =
            authorize_staff_change(&staff(5, LibraryAdmin), peer, &place_of(SameLibrary), InstitutionAdmin, None);
        assert!(ceiling.is_err());
        let scope =
            authorize_staff_change(&staff(5, CooperativeAdmin), peer, &place_of(OtherCooperative), Librarian, None);
        assert!(scope.is_err());
    }

    #[test]
    fn administration_follows_role_and_scope() {
        use Role::*;
        use Where::*;
        let place_of = |w| target(w, None).placement;
        let table = [
            (Librarian, Admin::EditPolicy, SameLibrary, false),
            (LibraryAdmin, Admin::EditPolicy, SameLibrary, true),
            (LibraryAdmin, Admin::EditPolicy, SameInstitution, false),
            (LibraryAdmin, Admin::LibraryScripts, SameLibrary, true),
            (Librarian, Admin::LibraryScripts, SameLibrary, false),
            (LibraryAdmin, Admin::LibraryScripts, SameInstitution, false),
            (InstitutionAdmin, Admin::LibraryScripts, SameInstitution, true),
            (InstitutionAdmin, Admin::LibraryScripts, SameCooperative, false),
            (CooperativeAdmin, Admin::LibraryScripts, SameCooperative, true),
            (CooperativeAdmin, Admin::LibraryScripts, OtherCooperative, false),
            (Librarian, Admin::Widget, SameLibrary, false),
            (LibraryAdmin, Admin::Widget, SameLibrary, true),
            (LibraryAdmin, Admin::Widget, SameInstitution, false),
            (CooperativeAdmin, Admin::Widget, SameCooperative, true),
            (CooperativeAdmin, Admin::Widget, OtherCooperative, false),
            (LibraryAdmin, Admin::AddLibrary, SameLibrary, false),
            (InstitutionAdmin, Admin::AddLibrary, SameInstitution, true),
            (InstitutionAdmin, Admin::EditCodes, SameLibrary, false),
            (InstitutionAdmin, Admin::CooperativeScripts, SameLibrary, false),
            (CooperativeAdmin, Admin::EditCodes, SameCooperative, true),
            (CooperativeAdmin, Admin::CooperativeScripts, SameCooperative, true),
            (CooperativeAdmin, Admin::EditPolicy, OtherCooperative, false),
            (InstitutionAdmin, Admin::AddLibrary, SameCooperative, false),
            (CooperativeAdmin, Admin::AddLibrary, SameCooperative, true),
            (CooperativeAdmin, Admin::AddLibrary, OtherCooperative, false),
            (InstitutionAdmin, Admin::AddInstitution, SameInstitution, false),
            (CooperativeAdmin, Admin::AddInstitution, SameCooperative, true),
            (CooperativeAdmin, Admin::AddInstitution, OtherCooperative, false),
            (Librarian, Admin::Privacy, SameLibrary, false),
            (LibraryAdmin, Admin::Privacy, SameLibrary, true),
            (LibraryAdmin, Admin::Privacy, SameInstitution, false),
            (InstitutionAdmin, Admin::Privacy, SameInstitution, true),
            (InstitutionAdmin, Admin::Privacy, SameCooperative, false),
            (CooperativeAdmin, Admin::Privacy, SameCooperative, true),
            (CooperativeAdmin, Admin::Privacy, OtherCooperative, false),
            (Librarian, Admin::RenameLibrary, SameLibrary, false),
            (LibraryAdmin, Admin::RenameLibrary, SameLibrary, true),
            (LibraryAdmin, Admin::RenameLibrary, SameInstitution, false),
            (InstitutionAdmin, Admin::RenameLibrary, SameInstitution, true),
            (InstitutionAdmin, Admin::RenameLibrary, SameCooperative, false),
            (CooperativeAdmin, Admin::RenameLibrary, SameCooperative, true),
            (CooperativeAdmin, Admin::RenameLibrary, OtherCooperative, false),
            (Librarian, Admin::Embedding, SameLibrary, false),
            (LibraryAdmin, Admin::Embedding, SameLibrary, true),
            (LibraryAdmin, Admin::Embedding, SameInstitution, false),
            (InstitutionAdmin, Admin::Embedding, SameInstitution, true),
            (CooperativeAdmin, Admin::Embedding, OtherCooperative, false),
            (Librarian, Admin::ReplyTo, SameLibrary, false),
            (LibraryAdmin, Admin::ReplyTo, SameLibrary, true),
            (LibraryAdmin, Admin::ReplyTo, SameInstitution, false),
            (CooperativeAdmin, Admin::ReplyTo, SameCooperative, true),
            (Librarian, Admin::Closing, SameLibrary, false),
            (LibraryAdmin, Admin::Closing, SameLibrary, true),
            (LibraryAdmin, Admin::Closing, SameInstitution, false),
            (CooperativeAdmin, Admin::Closing, SameCooperative, true),
            (LibraryAdmin, Admin::RenameInstitution, SameLibrary, false),
            (InstitutionAdmin, Admin::RenameInstitution, SameInstitution, true),
            (InstitutionAdmin, Admin::RenameInstitution, SameCooperative, false),
            (CooperativeAdmin, Admin::RenameInstitution, SameCooperative, true),
            (CooperativeAdmin, Admin::RenameInstitution, OtherCooperative, false),
            (InstitutionAdmin, Admin::RenameCooperative, SameInstitution, false),
            (CooperativeAdmin, Admin::RenameCooperative, SameCooperative, true),
            (CooperativeAdmin, Admin::RenameCooperative, OtherCooperative, false),
        ];
        for (role, action, w, allowed) in table {
            assert_eq!(
                authorize_admin(&staff(5, role), action, &place_of(w)).is_ok(),
                allowed,
                "{role:?} × {action:?} × {w:?}"
            );
        }
        // A refusal says why: a role too low, or a place outside the role.
        let why = |role, w| match authorize_admin(&staff(5, role), Admin::AddLibrary, &place_of(w)) {
            Err(DomainError::Forbidden(why)) => why,
            other => panic!("{other:?}"),
        };
        assert_eq!(why(LibraryAdmin, SameLibrary), "libraries are added by institution and cooperative admins");
        assert_eq!(why(InstitutionAdmin, SameCooperative), "that is outside the libraries your role covers");
    }
}
