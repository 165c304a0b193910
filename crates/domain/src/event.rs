//! Committed events: what the store hands to the bus after a commit, and
//! what each connection filters through [`crate::visibility::sees`].

use crate::chat::{Audience, Message, SessionContext};
use crate::ids::SessionId;
use crate::org::Placement;
use crate::Millis;
use serde::{Deserialize, Serialize};

/// A waiting chat as the queue shows it to staff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// The session.
    pub session: SessionId,
    /// The patron's library.
    pub placement: Placement,
    /// The library's display name.
    pub library_name: String,
    /// The patron's name, or "Patron".
    pub patron_name: String,
    /// Their question, as first typed.
    pub question: String,
    /// When they started waiting.
    pub since: Millis,
}

/// One committed change that connected clients may need to hear about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A message was committed in a session.
    Message {
        /// The session, as of the commit.
        ctx: SessionContext,
        /// The message.
        message: Message,
    },
    /// A chat joined the queue.
    QueueAdded(QueueEntry),
    /// Someone is typing (or stopped). Never stored; carried by the bus only.
    Typing {
        /// The session.
        ctx: SessionContext,
        /// Who may know: typing in the note composer is for staff only.
        audience: Audience,
        /// Who is typing, as shown.
        who: String,
        /// Started (true) or stopped (false).
        on: bool,
    },
    /// A chat left the queue (accepted, or the patron left).
    QueueRemoved {
        /// The session.
        session: SessionId,
        /// The patron's library.
        placement: Placement,
    },
}
