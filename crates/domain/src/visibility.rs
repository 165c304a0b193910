//! The single visibility function (DESIGN §5). Every byte that leaves the
//! server about a session — WebSocket frames, REST responses, transcripts,
//! e-mail, typing, presence — is decided here, and nowhere else.
//!
//! Systems that filter a "private" flag separately at each output leak staff
//! notes one forgotten output at a time; here the outputs ask one question.

use crate::authz::{authorize, Action, Target};
use crate::chat::{Audience, Message, SessionContext, SessionState, Typist};
use crate::ids::SessionId;
use crate::org::{Placement, Staff};
use crate::Millis;

/// Who is looking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Viewer {
    /// The patron of one session, holding its secret token.
    Patron {
        /// The session their token opens.
        session: SessionId,
    },
    /// A signed-in staff member.
    Staff(Staff),
}

/// What is being looked at.
#[derive(Copy, Clone, Debug)]
pub enum Item<'a> {
    /// A committed message of a session.
    Message {
        /// The session, with its place and participants.
        ctx: &'a SessionContext,
        /// The message.
        message: &'a Message,
    },
    /// Someone typing in a session. Typing in the note composer is staff-only
    /// typing: the patron must not even learn that a note is being written.
    Typing {
        /// The session.
        ctx: &'a SessionContext,
        /// Who may know about it.
        audience: Audience,
        /// Who is typing: never told of their own typing.
        by: Option<Typist>,
    },
    /// A waiting chat in the queue.
    Waiting {
        /// The library whose queue it waits in.
        placement: Placement,
        /// How long the patron has waited in it.
        waited: Millis,
        /// After how long it rolls up to the cooperative.
        rollup: Millis,
        /// Offered to the whole cooperative at once.
        coop_now: bool,
    },
    /// A session as the chat monitor lists it (My and ALL tabs).
    Monitored {
        /// The session.
        ctx: &'a SessionContext,
    },
    /// Who is present in a session (B3): staff only.
    Presence {
        /// The session.
        ctx: &'a SessionContext,
    },
    /// A question referred to a library: the staff whose role covers it.
    Referral {
        /// The library it was referred to.
        to: Placement,
    },
    /// A colleague's availability: staff of their cooperative only.
    Colleague {
        /// Their cooperative.
        cooperative: crate::ids::CooperativeId,
    },
    /// That a chat's personal data was erased: whoever may see the chat.
    Erased {
        /// The chat, as the viewer last saw it.
        ctx: &'a SessionContext,
    },
    /// A staff-to-staff direct message: its two ends only.
    Im {
        /// Sender.
        from: crate::ids::StaffId,
        /// Recipient.
        to: crate::ids::StaffId,
    },
}

/// Whether `viewer` may see `item`. `false` means the item must not leave
/// the server towards that viewer in any form.
pub fn sees(viewer: &Viewer, item: Item<'_>) -> bool {
    match (viewer, item) {
        (Viewer::Patron { session }, Item::Message { ctx, message }) => {
            ctx.id == *session && message.session == *session && message.audience == Audience::Everyone
        }
        (Viewer::Patron { session }, Item::Typing { ctx, audience, by }) => {
            ctx.id == *session
                && audience == Audience::Everyone
                && match by {
                    Some(Typist::Patron) => false,
                    // Only someone the patron knows is there (B2): the
                    // chatting librarian, or a colleague who joined announced.
                    Some(Typist::Staff(id)) => {
                        ctx.librarian == Some(id) || ctx.member_mode(id) == Some(crate::chat::ConferenceMode::Join)
                    }
                    None => true,
                }
        }
        (Viewer::Patron { session }, Item::Erased { ctx }) => ctx.id == *session,
        // Patrons never see the queue, the monitor, who is watching, staff
        // availability or staff IM.
        (
            Viewer::Patron { .. },
            Item::Waiting { .. }
            | Item::Monitored { .. }
            | Item::Presence { .. }
            | Item::Im { .. }
            | Item::Referral { .. }
            | Item::Colleague { .. },
        ) => false,
        (Viewer::Staff(staff), Item::Message { ctx, message }) => {
            message.session == ctx.id && staff_may_view(staff, ctx)
        }
        (Viewer::Staff(staff), Item::Typing { ctx, by, .. }) => {
            by != Some(Typist::Staff(staff.id)) && staff_may_view(staff, ctx)
        }
        (Viewer::Staff(staff), Item::Waiting { placement, waited, rollup, coop_now }) => {
            let target =
                Target { placement, state: SessionState::Waiting, librarian: None, referred: false, members: &[] };
            authorize(staff, Action::Serve { waited, rollup, coop_now }, &target).is_ok()
        }
        (Viewer::Staff(staff), Item::Monitored { ctx }) => {
            authorize(staff, Action::Monitor, &Target::of(ctx, SessionState::Active)).is_ok()
        }
        (Viewer::Staff(staff), Item::Presence { ctx } | Item::Erased { ctx }) => staff_may_view(staff, ctx),
        (Viewer::Staff(staff), Item::Im { from, to }) => staff.id == from || staff.id == to,
        (Viewer::Staff(staff), Item::Colleague { cooperative }) => staff.home.cooperative == cooperative,
        (Viewer::Staff(staff), Item::Referral { to }) => staff.role_covers(&to),
    }
}

fn staff_may_view(staff: &Staff, ctx: &SessionContext) -> bool {
    // The state does not matter for viewing; Active is a stand-in.
    crate::authz::authorize_view(staff, ctx, SessionState::Active).is_ok()
}

/// The number `viewer` knows a line by, once [`sees`] let it through: a
/// patron numbers the lines of their chat by their own count
/// ([`Message::patron_seq`], the lines they see alone), so that no gap
/// between two of them tells that staff wrote in between; staff number
/// them by the session's count.
pub fn seq_seen(viewer: &Viewer, message: &Message) -> u64 {
    match viewer {
        Viewer::Patron { .. } => message.patron_seq,
        Viewer::Staff(_) => message.seq,
    }
}

/// A line as `viewer` is given it: numbered as they know it ([`seq_seen`]).
pub fn as_seen(viewer: &Viewer, mut message: Message) -> Message {
    message.seq = seq_seen(viewer, &message);
    message
}

/// The messages of a transcript that `viewer` may see, in order. Used for
/// REST transcripts, resumes and e-mailed transcripts alike.
pub fn transcript<'a>(
    viewer: &'a Viewer,
    ctx: &'a SessionContext,
    messages: &'a [Message],
) -> impl Iterator<Item = &'a Message> + 'a {
    messages.iter().filter(move |m| sees(viewer, Item::Message { ctx, message: m }))
}

/// Who hears the line a change of hands writes: everyone present before or
/// after it, including the librarian who handed the chat on (as a monitor,
/// if they no longer take part). `previous_name` is that librarian's name.
pub fn handover_audience(
    before: &SessionContext,
    previous_name: Option<&str>,
    after: &SessionContext,
) -> SessionContext {
    let mut ctx = after.clone();
    for m in &before.members {
        if ctx.member_mode(m.staff).is_none() {
            ctx.members.push(m.clone());
        }
    }
    let previous = before.librarian;
    if ctx.librarian.is_none() {
        ctx.librarian = previous;
    } else if let Some(prev) = previous.filter(|p| Some(*p) != ctx.librarian && ctx.member_mode(*p).is_none()) {
        ctx.members.push(crate::chat::Member {
            staff: prev,
            name: previous_name.unwrap_or_default().to_owned(),
            mode: crate::chat::ConferenceMode::Monitor,
        });
    }
    ctx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{Author, MessageKind};
    use crate::ids::{CooperativeId, InstitutionId, LibraryId, StaffId};
    use crate::org::Role;

    fn place(l: i64) -> Placement {
        Placement { library: LibraryId(l), institution: InstitutionId(1), cooperative: CooperativeId(1) }
    }

    fn ctx(id: i64) -> SessionContext {
        SessionContext {
            id: SessionId(id),
            placement: place(1),
            librarian: Some(StaffId(5)),
            question: None,
            referred: None,
            members: vec![],
            version: 0,
        }
    }

    fn msg(session: i64, kind: MessageKind, audience: Audience) -> Message {
        Message {
            session: SessionId(session),
            seq: 1,
            patron_seq: 1,
            kind,
            audience,
            author: Author::System,
            body: "x".into(),
            client_id: None,
            at: 0,
            system: None,
        }
    }

    fn librarian(id: i64, library: i64) -> Viewer {
        Viewer::Staff(Staff {
            id: StaffId(id),
            username: "a".into(),
            display_name: "A".into(),
            role: Role::Librarian,
            home: place(library),
        })
    }

    #[test]
    fn i1_a_patron_never_sees_a_staff_audience_message() {
        let c = ctx(1);
        let patron = Viewer::Patron { session: SessionId(1) };
        for kind in [MessageKind::Message, MessageKind::Note, MessageKind::Answer, MessageKind::System] {
            let m = msg(1, kind, Audience::Staff);
            assert!(!sees(&patron, Item::Message { ctx: &c, message: &m }), "{kind:?}");
        }
        let m = msg(1, MessageKind::Message, Audience::Everyone);
        assert!(sees(&patron, Item::Message { ctx: &c, message: &m }));
    }

    #[test]
    fn a_patron_sees_nothing_of_another_session() {
        let c = ctx(2);
        let m = msg(2, MessageKind::Message, Audience::Everyone);
        assert!(!sees(&Viewer::Patron { session: SessionId(1) }, Item::Message { ctx: &c, message: &m }));
    }

    #[test]
    fn a_patron_never_learns_that_a_note_is_being_typed() {
        let c = ctx(1);
        let patron = Viewer::Patron { session: SessionId(1) };
        let by = Some(Typist::Staff(StaffId(5)));
        assert!(!sees(&patron, Item::Typing { ctx: &c, audience: Audience::Staff, by }));
        assert!(sees(&patron, Item::Typing { ctx: &c, audience: Audience::Everyone, by }));
    }

    #[test]
    fn a_patron_sees_typing_only_from_those_they_know_are_there() {
        use crate::chat::{ConferenceMode, Member};
        let mut c = ctx(1);
        let patron = Viewer::Patron { session: SessionId(1) };
        let typing = |id| Item::Typing { ctx: &c, audience: Audience::Everyone, by: Some(Typist::Staff(StaffId(id))) };
        assert!(sees(&patron, typing(5)), "the chatting librarian");
        assert!(!sees(&patron, typing(9)), "nobody the chat knows of");
        for (mode, shown) in
            [(ConferenceMode::Join, true), (ConferenceMode::Whisper, false), (ConferenceMode::Monitor, false)]
        {
            c.members = vec![Member { staff: StaffId(9), name: "Dev".into(), mode }];
            let typing = Item::Typing { ctx: &c, audience: Audience::Everyone, by: Some(Typist::Staff(StaffId(9))) };
            assert_eq!(sees(&patron, typing), shown, "a member in {mode:?}");
        }
    }

    #[test]
    fn nobody_is_told_of_their_own_typing() {
        let c = ctx(1);
        let patron = Viewer::Patron { session: SessionId(1) };
        let own = Item::Typing { ctx: &c, audience: Audience::Everyone, by: Some(Typist::Patron) };
        assert!(!sees(&patron, own), "the patron's own typing");
        assert!(sees(&librarian(5, 1), own), "the librarian sees the patron typing");
        let ann = Item::Typing { ctx: &c, audience: Audience::Everyone, by: Some(Typist::Staff(StaffId(5))) };
        assert!(!sees(&librarian(5, 1), ann), "the librarian's own typing");
        assert!(sees(&librarian(6, 1), ann), "a colleague in scope sees it");
        assert!(sees(&patron, ann), "the patron sees the librarian typing");
    }

    #[test]
    fn a_referral_is_told_to_the_receiving_librarys_staff_only() {
        let to = Item::Referral { to: place(2) };
        assert!(sees(&librarian(7, 2), to), "the receiving library's librarian");
        assert!(!sees(&librarian(5, 1), to), "another library's");
        assert!(!sees(&Viewer::Patron { session: SessionId(1) }, to), "never a patron");
    }

    #[test]
    fn staff_see_notes_only_within_scope() {
        let c = ctx(1);
        let note = msg(1, MessageKind::Note, Audience::Staff);
        assert!(sees(&librarian(5, 3), Item::Message { ctx: &c, message: &note }), "participant");
        assert!(sees(&librarian(6, 1), Item::Message { ctx: &c, message: &note }), "same library");
        assert!(!sees(&librarian(6, 3), Item::Message { ctx: &c, message: &note }), "other library");
    }

    #[test]
    fn staff_of_the_library_a_question_was_referred_to_may_read_its_chat() {
        let mut c = ctx(1);
        let note = msg(1, MessageKind::Note, Audience::Staff);
        assert!(!sees(&librarian(6, 3), Item::Message { ctx: &c, message: &note }));
        c.referred = Some(place(3));
        assert!(sees(&librarian(6, 3), Item::Message { ctx: &c, message: &note }));
        assert!(!sees(&Viewer::Patron { session: SessionId(2) }, Item::Message { ctx: &c, message: &note }));
    }

    #[test]
    fn patrons_never_see_the_queue() {
        let item = Item::Waiting { placement: place(1), waited: 0, rollup: 60_000, coop_now: false };
        assert!(!sees(&Viewer::Patron { session: SessionId(1) }, item));
        assert!(sees(&librarian(6, 1), item));
    }

    #[test]
    fn patrons_never_see_who_is_watching_nor_staff_im() {
        let c = ctx(1);
        let patron = Viewer::Patron { session: SessionId(1) };
        assert!(!sees(&patron, Item::Presence { ctx: &c }));
        assert!(!sees(&patron, Item::Monitored { ctx: &c }));
        assert!(!sees(&patron, Item::Im { from: StaffId(1), to: StaffId(2) }));
        assert!(!sees(&patron, Item::Colleague { cooperative: CooperativeId(1) }));
        assert!(sees(&librarian(2, 1), Item::Colleague { cooperative: CooperativeId(1) }));
        assert!(!sees(&librarian(2, 1), Item::Colleague { cooperative: CooperativeId(2) }));
        assert!(sees(&librarian(5, 1), Item::Presence { ctx: &c }), "B3: the chatting librarian sees who is there");
        assert!(sees(&librarian(2, 1), Item::Im { from: StaffId(1), to: StaffId(2) }));
        assert!(!sees(&librarian(3, 1), Item::Im { from: StaffId(1), to: StaffId(2) }));
    }

    #[test]
    fn an_erasure_is_told_to_the_chats_patron_and_to_staff_who_may_see_it() {
        let c = ctx(1);
        assert!(sees(&Viewer::Patron { session: SessionId(1) }, Item::Erased { ctx: &c }));
        assert!(!sees(&Viewer::Patron { session: SessionId(2) }, Item::Erased { ctx: &c }));
        assert!(sees(&librarian(6, 1), Item::Erased { ctx: &c }), "same library");
        assert!(!sees(&librarian(6, 3), Item::Erased { ctx: &c }), "other library");
    }

    #[test]
    fn transcripts_for_patrons_drop_notes() {
        let c = ctx(1);
        let all = vec![
            msg(1, MessageKind::Message, Audience::Everyone),
            msg(1, MessageKind::Note, Audience::Staff),
            msg(1, MessageKind::System, Audience::Staff),
        ];
        let patron = Viewer::Patron { session: SessionId(1) };
        assert_eq!(transcript(&patron, &c, &all).count(), 1);
        assert_eq!(transcript(&librarian(5, 1), &c, &all).count(), 3);
    }
}
