//! The writer's copies of live sessions, for appends: each session's record
//! and the client ids its lines were stored under.
//!
//! SQLite keeps no index of client ids (migration 014; issue 17): with a
//! thousand chats writing at once, the index's entry for each line dirtied a
//! page of its own (the chat's place in the index), a second page of the log
//! per line beside the messages table's — an eighth of the server's CPU per
//! message. So the writer, the only connection that writes, knows which
//! client ids a kept session holds: a line that is not a re-send (nearly
//! every line) is told so without reading anything, and a re-send is looked
//! up in the session's own lines, which the messages table keeps together.
//! PostgreSQL keeps its unique index: there, several nodes append.
//!
//! What it must never do is answer [`ClientIdSeen::Never`] for a stored
//! line: I4 rests on it, with no index behind it. So every line goes in
//! through `sql::rows::insert_message`, which tells it ([`Kept::note_client_id`]),
//! and nothing else writes lines to the file while the server runs (the
//! commands that may run beside it, `refdesk/src/lock.rs`, write no chat).

use super::db as failed;
use crate::sql::ClientIdSeen;
use crate::{Result, SessionRecord};
use refdesk_domain::ids::SessionId;
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

/// Client ids held in all the sets at most: 16 MiB or so, a thousand live
/// chats of a thousand lines each. A session that would take more goes
/// without a set while it is kept, and each of its appends looks its client
/// id up in its lines.
pub(super) const CLIENT_IDS_KEPT: usize = 1 << 20;

/// A kept session: its record, and what is known of its lines' client ids.
struct KeptSession {
    rec: SessionRecord,
    ids: Ids,
}

/// A kept session's client ids.
enum Ids {
    /// Not read yet: read when an append first needs them.
    Unread,
    /// The keyed hashes of its lines' `(sender, client id)`.
    Set(HashSet<u64>),
    /// Not kept (no room, two hashes alike, or the read failed): the
    /// database answers each time, until the copy is made again.
    Without,
}

/// Session rows as appends need them (context, members, state), with their
/// lines' client ids. Only appends read it, and they change nothing in the
/// record; every other write on a session drops that session's copy
/// (`sql::rows::lock_session`), and a batch that fails to commit drops
/// them all — so nothing a guard or an event's context reads ever differs
/// from the database (its last line and what its patron wrote follow
/// each line stored: `note_line`), and a set never lacks a stored line (it may
/// name one rolled back: see [`Kept::note_client_id`]). It is this
/// backend's fast path for appends: it saves the reads per message that
/// were most of the writer's work per message. Only the writer's
/// connection fills it.
pub(super) struct Kept {
    sessions: HashMap<SessionId, KeptSession>,
    /// Keyed with the process's own random keys: nobody outside can choose
    /// client ids that collide.
    hasher: RandomState,
    /// Client ids in all the sets.
    ids: usize,
    /// At most that many ([`CLIENT_IDS_KEPT`]; less in tests).
    room: usize,
}

impl Kept {
    /// Nothing kept.
    pub(super) fn new() -> Kept {
        Kept { sessions: HashMap::new(), hasher: RandomState::new(), ids: 0, room: CLIENT_IDS_KEPT }
    }

    #[cfg(test)]
    pub(super) fn with_room(room: usize) -> Kept {
        Kept { room, ..Kept::new() }
    }

    /// Client ids in all the sets.
    #[cfg(test)]
    pub(super) fn ids(&self) -> usize {
        self.ids
    }

    /// Sessions kept.
    pub(super) fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Drops every copy: a batch failed, or there are too many.
    pub(super) fn clear(&mut self) {
        self.sessions.clear();
        self.ids = 0;
    }

    /// A kept session's record.
    pub(super) fn get(&self, id: SessionId) -> Option<&SessionRecord> {
        self.sessions.get(&id).map(|c| &c.rec)
    }

    /// Keeps a session as just read (its client ids unread).
    pub(super) fn keep(&mut self, rec: &SessionRecord) {
        self.forget(rec.ctx.id);
        self.sessions.insert(rec.ctx.id, KeptSession { rec: rec.clone(), ids: Ids::Unread });
    }

    /// A line stored in a kept session: its record's last line follows.
    pub(super) fn note_line(&mut self, line: &refdesk_domain::chat::Message) {
        if let Some(c) = self.sessions.get_mut(&line.session) {
            c.rec.note_line(line);
        }
    }

    /// Drops a session's copy.
    pub(super) fn forget(&mut self, id: SessionId) {
        if let Some(mut c) = self.sessions.remove(&id) {
            self.drop_set(&mut c.ids);
        }
    }

    /// A set no longer kept, and no longer counted.
    fn drop_set(&mut self, ids: &mut Ids) {
        if let Ids::Set(set) = std::mem::replace(ids, Ids::Without) {
            self.ids -= set.len();
        }
    }

    fn key(&self, sender: &str, client_id: &str) -> u64 {
        self.hasher.hash_one((sender, client_id))
    }

    /// Whether `sender` stored a line in session `id` under `client_id`, as
    /// far as the copy knows; a kept session's set is read from its lines
    /// the first time it is needed.
    pub(super) fn client_id(
        &mut self,
        conn: &Connection,
        id: SessionId,
        sender: &str,
        client_id: &str,
    ) -> ClientIdSeen {
        let key = self.key(sender, client_id);
        let Some(copy) = self.sessions.get_mut(&id) else { return ClientIdSeen::Unknown };
        if let Ids::Unread = copy.ids {
            copy.ids = match stored_client_ids(conn, &self.hasher, id) {
                Ok(Some(set)) if self.ids + set.len() <= self.room => {
                    self.ids += set.len();
                    Ids::Set(set)
                }
                // Over the room, two of its lines' hashes alike, or the
                // read failed.
                _ => Ids::Without,
            };
        }
        match &copy.ids {
            Ids::Set(set) if set.contains(&key) => ClientIdSeen::Perhaps,
            Ids::Set(_) => ClientIdSeen::Never,
            Ids::Unread | Ids::Without => ClientIdSeen::Unknown,
        }
    }

    /// A line stored in session `id` under `client_id`. A set may name a
    /// line that is not there (its job or its batch was rolled back): it
    /// costs a look in the database, never a lost line. It never lacks one.
    pub(super) fn note_client_id(&mut self, id: SessionId, sender: &str, client_id: &str) {
        let key = self.key(sender, client_id);
        let Some(copy) = self.sessions.get_mut(&id) else { return };
        let Ids::Set(set) = &mut copy.ids else { return };
        if self.ids < self.room && set.insert(key) {
            self.ids += 1;
        } else {
            // No room left, or named already (a line rolled back, or two
            // hashes alike): the database answers from now on.
            self.ids -= set.len();
            copy.ids = Ids::Without;
        }
    }
}

/// The keyed hashes of a session's lines' `(sender, client id)`, read from
/// its lines; `None` if two are alike.
fn stored_client_ids(conn: &Connection, hasher: &RandomState, id: SessionId) -> Result<Option<HashSet<u64>>> {
    const SQL: &str = "SELECT sender, client_id FROM messages WHERE session_id = ?1 AND client_id IS NOT NULL";
    let mut st = conn.prepare_cached(SQL).map_err(failed)?;
    let mut rows = st.query([id.0]).map_err(failed)?;
    let mut set = HashSet::new();
    while let Some(row) = rows.next().map_err(failed)? {
        let text = |i| -> Result<&str> {
            let value = row.get_ref(i).map_err(failed)?;
            value.as_str().map_err(|e| crate::StoreError::failed("SQLite: reading a client id", e))
        };
        let (sender, client_id) = (text(0)?, text(1)?);
        if !set.insert(hasher.hash_one((sender, client_id))) {
            return Ok(None);
        }
    }
    Ok(Some(set))
}
