//! The writer's copies of live sessions, for appends: each session's record
//! and the client ids its lines were stored under.
//!
//! SQLite keeps no index of client ids (migration 014; issue 17): with a
//! thousand chats writing at once, the index's entry for each line dirtied a
//! page of its own (the chat's place in the index), a second page of the log
//! per line beside the messages table's — a fifth of the server's CPU per
//! message. So the writer, the only connection that writes, knows which
//! client ids a kept session holds: a line that is not a re-send (nearly
//! every line) is told so without reading anything, and a re-send is looked
//! up in the session's own lines, which the messages table keeps together.
//! PostgreSQL keeps its unique index: there, several nodes append.

use super::db as failed;
use crate::sql::ClientIdSeen;
use crate::{Result, SessionRecord};
use refdesk_domain::ids::SessionId;
use refdesk_domain::Millis;
use rusqlite::Connection;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};

/// Client ids held in all the copies at most: 16 MiB or so, a thousand live
/// chats of a thousand lines each. A session past it goes without a set,
/// and each of its appends looks its client id up in its lines.
pub(super) const CLIENT_IDS_KEPT: usize = 1 << 20;

/// A kept session: its record, and, once an append has needed it, the
/// keyed hashes of its lines' `(sender, client id)`.
struct Copy {
    rec: SessionRecord,
    client_ids: Option<HashSet<u64>>,
}

/// Session rows as appends need them (context, members, state), with their
/// lines' client ids. Only appends read it, and they change nothing in the
/// record; every other write on a session drops that session's copy
/// (`sql::rows::lock_session`), and a batch that fails to commit drops
/// them all — so nothing a guard or an event's context reads ever differs
/// from the database (`last_seq` and `last_message_at` do lag; nothing
/// reads them from the copy), and a set never lacks a stored line (it may
/// name one rolled back: see [`Kept::note_client_id`]). It is this backend's fast
/// path for appends: it saves the reads per message that were most of the
/// writer's work per message. Only the writer's connection fills it.
pub(super) struct Kept {
    sessions: HashMap<SessionId, Copy>,
    /// Keyed with the process's own random keys: nobody outside can choose
    /// client ids that collide.
    hasher: RandomState,
    /// Client ids in all the sets.
    ids: usize,
    /// At most that many ([`CLIENT_IDS_KEPT`]; less in tests).
    room: usize,
}

impl Kept {
    pub(super) fn new() -> Kept {
        Kept { sessions: HashMap::new(), hasher: RandomState::new(), ids: 0, room: CLIENT_IDS_KEPT }
    }

    #[cfg(test)]
    pub(super) fn with_room(room: usize) -> Kept {
        Kept { room, ..Kept::new() }
    }

    pub(super) fn len(&self) -> usize {
        self.sessions.len()
    }

    pub(super) fn clear(&mut self) {
        self.sessions.clear();
        self.ids = 0;
    }

    pub(super) fn get(&self, id: SessionId) -> Option<&SessionRecord> {
        self.sessions.get(&id).map(|c| &c.rec)
    }

    pub(super) fn keep(&mut self, rec: &SessionRecord) {
        self.forget(rec.ctx.id);
        self.sessions.insert(rec.ctx.id, Copy { rec: rec.clone(), client_ids: None });
    }

    pub(super) fn note_line(&mut self, id: SessionId, seq: u64, at: Millis) {
        if let Some(c) = self.sessions.get_mut(&id) {
            c.rec.note_line(seq, at);
        }
    }

    pub(super) fn forget(&mut self, id: SessionId) {
        if let Some(c) = self.sessions.remove(&id) {
            self.ids -= c.client_ids.map_or(0, |s| s.len());
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
        if copy.client_ids.is_none() {
            match stored_client_ids(conn, &self.hasher, id) {
                Ok(Some(set)) if self.ids + set.len() <= self.room => {
                    self.ids += set.len();
                    copy.client_ids = Some(set);
                }
                // Over the room, two of its lines' hashes alike, or the
                // read failed: the database answers each time.
                _ => return ClientIdSeen::Unknown,
            }
        }
        match copy.client_ids.as_ref().is_some_and(|s| s.contains(&key)) {
            true => ClientIdSeen::Perhaps,
            false => ClientIdSeen::Never,
        }
    }

    /// A line stored in session `id` under `client_id`. A set may name a
    /// line that is not there (its job or its batch was rolled back): it
    /// costs a look in the database, never a lost line. It never lacks one.
    pub(super) fn note_client_id(&mut self, id: SessionId, sender: &str, client_id: &str) {
        let key = self.key(sender, client_id);
        let Some(copy) = self.sessions.get_mut(&id) else { return };
        let Some(set) = copy.client_ids.as_mut() else { return };
        if set.insert(key) {
            self.ids += 1;
        } else {
            // Named already: a line rolled back, or two hashes alike. The
            // set is read again when next needed.
            self.ids -= set.len();
            copy.client_ids = None;
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
        let (sender, client_id): (String, String) = (row.get(0).map_err(failed)?, row.get(1).map_err(failed)?);
        if !set.insert(hasher.hash_one((sender.as_str(), client_id.as_str()))) {
            return Ok(None);
        }
    }
    Ok(Some(set))
}
