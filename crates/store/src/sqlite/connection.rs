//! [`Db`] on a SQLite connection. Each primitive runs its statement before
//! it returns (see `run_now`): SQLite is a library on this thread, there is
//! nothing to wait for.

use super::db as failed;
use super::kept::Kept;
use crate::sql::{Arg, ClientIdSeen, Cols, Db, Dialect};
use crate::{Result, SessionRecord, StoreError};
use refdesk_domain::ids::SessionId;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{params_from_iter, Connection, Row, ToSql};

/// A connection, and — on the writer's — its copy of sessions for appends.
pub struct SqliteDb {
    pub(super) conn: Connection,
    /// The writer's copies of live sessions ([`Kept`]); reads never append,
    /// and leave it empty.
    pub(super) sessions: Kept,
}

impl SqliteDb {
    pub(super) fn new(conn: Connection) -> SqliteDb {
        SqliteDb { conn, sessions: Kept::new() }
    }
}

impl ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Arg::Int(i) => ToSqlOutput::Owned(Value::Integer(*i)),
            Arg::Text(t) => ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes())),
            Arg::Bool(b) => ToSqlOutput::Owned(Value::Integer(i64::from(*b))),
            Arg::NullInt | Arg::NullText => ToSqlOutput::Owned(Value::Null),
        })
    }
}

/// A row and the names of its statement's columns, read once per query.
/// rusqlite's own `Row::get(&str)` asks SQLite for the name of every column
/// it passes, on every call: about 66 calls for a message row, which
/// doubled the cost of reading a replay (release build, 20,000 lines: 0.55
/// to 0.6 µs a line by position, 1.05 to 1.25 with rusqlite's lookup, 0.6
/// to 0.7 with this one). The names belong to the query and go with it;
/// nothing is kept between queries. A name matches exactly, as sqlx's does
/// on PostgreSQL, so a name in the wrong case fails on SQLite too.
struct Named<'a, 'stmt> {
    row: &'a Row<'stmt>,
    names: &'a [String],
}

impl Named<'_, '_> {
    fn col<T: rusqlite::types::FromSql>(&self, name: &str) -> Result<T> {
        let what = || format!("SQLite: reading column {name}");
        let Some(i) = self.names.iter().position(|n| n == name) else {
            return Err(StoreError::backend(format!("{}: the query has no such column", what())));
        };
        // rusqlite's error names the column and the type it found.
        self.row.get(i).map_err(|e| StoreError::failed(what(), e))
    }
}

impl Cols for Named<'_, '_> {
    fn int(&self, name: &str) -> Result<i64> {
        self.col(name)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>> {
        self.col(name)
    }
    fn text(&self, name: &str) -> Result<String> {
        self.col(name)
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>> {
        self.col(name)
    }
    fn flag(&self, name: &str) -> Result<bool> {
        self.col(name)
    }
}

impl SqliteDb {
    /// Runs a query and decodes its rows with `f`, up to `limit` of them.
    fn each<T>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        limit: usize,
        f: impl Fn(&dyn Cols) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut st = self.conn.prepare_cached(sql).map_err(failed)?;
        let names: Vec<String> = st.column_names().into_iter().map(str::to_owned).collect();
        let mut rows = st.query(params_from_iter(args.iter())).map_err(failed)?;
        let mut out = Vec::new();
        while out.len() < limit {
            let Some(row) = rows.next().map_err(failed)? else { break };
            out.push(f(&Named { row, names: &names })?);
        }
        Ok(out)
    }
}

impl Db for SqliteDb {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        let mut st = self.conn.prepare_cached(sql).map_err(failed)?;
        // A statement with RETURNING yields rows; `execute` refuses those.
        if st.column_count() > 0 {
            let mut rows = st.query(params_from_iter(args.iter())).map_err(failed)?;
            let mut n = 0;
            while rows.next().map_err(failed)?.is_some() {
                n += 1;
            }
            return Ok(n);
        }
        Ok(st.execute(params_from_iter(args.iter())).map_err(failed)? as u64)
    }

    async fn rows<T: Send, F: Fn(&dyn Cols) -> Result<T> + Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        f: F,
    ) -> Result<Vec<T>> {
        self.each(sql, args, usize::MAX, f)
    }

    async fn row<T: Send, F: Fn(&dyn Cols) -> Result<T> + Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        f: F,
    ) -> Result<Option<T>> {
        Ok(self.each(sql, args, 1, f)?.pop())
    }

    /// One writer: every write already runs alone.
    async fn lock(&mut self, _key: &str) -> Result<()> {
        Ok(())
    }

    fn cached_session(&mut self, id: SessionId) -> Option<SessionRecord> {
        self.sessions.get(id).cloned()
    }

    fn cache_session(&mut self, _version: i64, rec: &SessionRecord) {
        self.sessions.keep(rec);
    }

    fn note_line(&mut self, line: &refdesk_domain::chat::Message) {
        self.sessions.note_line(line);
    }

    fn forget_session(&mut self, id: SessionId) {
        self.sessions.forget(id);
    }

    fn client_id_seen(&mut self, id: SessionId, sender: &str, client_id: &str) -> ClientIdSeen {
        self.sessions.client_id(&self.conn, id, sender, client_id)
    }

    fn note_client_id(&mut self, id: SessionId, sender: &str, client_id: &str) {
        self.sessions.note_client_id(id, sender, client_id);
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::MIGRATIONS;
    use super::SqliteDb;
    use crate::sql::{select as sel, Db};
    use crate::{ScopeLevel, StoreError};
    use refdesk_domain::chat::{Author, Message};
    use refdesk_domain::ids::{CooperativeId, LibraryId, SessionId, StaffId};
    use rusqlite::{params_from_iter, Connection};

    /// One message's columns as `(name, value)`, to be put in a `SELECT` in
    /// any order.
    const LINE: [(&str, &str); 12] = [
        ("session_id", "7"),
        ("seq", "3"),
        ("patron_seq", "2"),
        ("kind", "'message'"),
        ("audience", "'everyone'"),
        ("author_kind", "'staff'"),
        ("author_id", "42"),
        ("author_name", "'Ann'"),
        ("client_id", "'c-1'"),
        ("body", "'Try the catalogue.'"),
        ("system", "NULL"),
        ("at", "1000"),
    ];

    fn select(columns: &[(&str, &str)]) -> String {
        let list: Vec<String> = columns.iter().map(|(name, value)| format!("{value} AS {name}")).collect();
        format!("SELECT {}", list.join(", "))
    }

    /// The line `sql` returns, decoded as the store decodes a stored one.
    async fn decode(sql: &str) -> Result<Message, StoreError> {
        let conn = Connection::open_in_memory().expect("an in-memory database");
        let mut db = SqliteDb::new(conn);
        db.row(sql, &[], sel::message).await.map(|m| m.expect("one row"))
    }

    #[tokio::test]
    async fn a_decoder_reads_each_column_by_its_name_whatever_the_order() {
        // Arrange: the same line, its columns in MESSAGE_SELECT's order and reversed.
        let mut reversed = LINE;
        reversed.reverse();

        // Act
        let in_order = decode(&select(&LINE)).await.expect("the line in order decodes");
        let backwards = decode(&select(&reversed)).await.expect("the line reversed decodes");

        // Assert
        assert_eq!(in_order, backwards);
        assert_eq!(in_order.session, SessionId(7));
        assert_eq!((in_order.seq, in_order.patron_seq), (3, 2));
        assert_eq!(in_order.author, Author::Staff { id: StaffId(42), name: "Ann".into() });
        assert_eq!(in_order.body, "Try the catalogue.");
        assert_eq!(in_order.client_id.as_deref(), Some("c-1"));
        assert_eq!(in_order.at, 1000);
    }

    #[tokio::test]
    async fn a_missing_mistyped_or_miscased_column_is_named_in_the_error() {
        let without_body: Vec<_> = LINE.iter().copied().filter(|(name, _)| *name != "body").collect();
        let missing = decode(&select(&without_body)).await.expect_err("a line without its body does not decode");
        assert!(missing.to_string().contains("column body"), "{missing}");

        let text_seq: Vec<_> =
            LINE.iter().map(|&(name, value)| if name == "seq" { (name, "'three'") } else { (name, value) }).collect();
        let mistyped = decode(&select(&text_seq)).await.expect_err("a text seq does not decode");
        assert!(mistyped.to_string().contains("column seq"), "{mistyped}");

        // PostgreSQL would fold an unquoted `Body` to `body`; SQLite keeps
        // it, and the match is exact on both.
        let capital: Vec<_> = LINE
            .iter()
            .map(|&(name, value)| if name == "body" { ("\"Body\"", value) } else { (name, value) })
            .collect();
        let miscased = decode(&select(&capital)).await.expect_err("a column named Body is not body");
        assert!(miscased.to_string().contains("column body"), "{miscased}");
    }

    /// An in-memory database at the current schema.
    fn migrated() -> Connection {
        let conn = Connection::open_in_memory().expect("an in-memory database");
        for m in MIGRATIONS {
            conn.execute_batch(m).expect("the migrations apply");
        }
        conn
    }

    /// Decoders read columns by name (see `Cols`): a name given twice would
    /// be the first column on SQLite and the last on PostgreSQL, and one
    /// with a capital is a different name on each (PostgreSQL folds it).
    #[test]
    fn every_select_names_each_column_once_in_lower_case() {
        let conn = migrated();
        let selects = [
            ("LIBRARY_SELECT", sel::LIBRARY_SELECT),
            ("INSTITUTION_SELECT", sel::INSTITUTION_SELECT),
            ("STAFF_SELECT", sel::STAFF_SELECT),
            ("IM_SELECT", sel::IM_SELECT),
            ("IM_CONVERSATIONS", sel::IM_CONVERSATIONS),
            ("SESSION_SELECT", sel::SESSION_SELECT),
            ("MEMBERS_SELECT", sel::MEMBERS_SELECT),
            ("QUEUE_SELECT", sel::QUEUE_SELECT),
            ("MESSAGE_SELECT", sel::MESSAGE_SELECT),
            ("TIMELINE_SELECT", sel::TIMELINE_SELECT),
            ("QUESTION_STATE_SELECT", sel::QUESTION_STATE_SELECT),
            ("QUESTION_SELECT", sel::QUESTION_SELECT),
            ("OUTBOX_SELECT", sel::OUTBOX_SELECT),
            ("CODES_SELECT", sel::CODES_SELECT),
            ("BLOCK_SELECT", sel::BLOCK_SELECT),
            ("SCRIPT_SELECT", sel::SCRIPT_SELECT),
            ("POLICY_SELECT", sel::POLICY_SELECT),
        ];
        for (what, sql) in selects {
            let st = conn.prepare(sql).unwrap_or_else(|e| panic!("{what} does not prepare: {e}"));
            let names = st.column_names();
            for (i, name) in names.iter().enumerate() {
                let plain = name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
                assert!(plain, "{what} names a column {name:?}: lower case, digits and _ only");
                assert!(!names[..i].contains(name), "{what} names two columns {name:?}");
            }
        }
    }

    /// SQLite's plan for `sql`, one line per step.
    fn plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("the query prepares");
        let nulls = vec![rusqlite::types::Null; st.parameter_count()];
        let rows = st.query_map(params_from_iter(nulls), |r| r.get::<_, String>(3)).expect("a plan");
        rows.map(|r| r.expect("a step")).collect()
    }

    /// The background round's idle check, its look for chats whose
    /// librarian left or whose desk is gone (every second, on every node),
    /// the desk's and the monitor's lists read the live sessions through their
    /// index, not every session ever held (a year of a cooperative is a
    /// million rows).
    #[test]
    fn the_live_sessions_are_found_without_reading_the_ended_ones() {
        let conn = migrated();
        let queries = [
            ("SESSIONS_OF", format!("{} WHERE {}", sel::SESSION_SELECT, sel::SESSIONS_OF)),
            ("live_seen_by", format!("{} WHERE {}", sel::SESSION_SELECT, sel::live_seen_by("i.cooperative_id = ?1"))),
            ("live_seen_by", format!("{} WHERE {}", sel::SESSION_SELECT, sel::live_seen_by("s.library_id = ?1"))),
            ("IDLE_SESSIONS", sel::IDLE_SESSIONS.to_owned()),
            ("ORPHANED_CHATS", sel::ORPHANED_CHATS.to_owned()),
            ("LIBRARIANS_TO_TELL", sel::LIBRARIANS_TO_TELL.to_owned()),
        ];
        for (what, sql) in queries {
            let steps = plan(&conn, &sql);
            let sessions: Vec<&String> = steps.iter().filter(|s| s.contains(" s ") || s.ends_with(" s")).collect();
            assert!(
                !sessions.is_empty() && sessions.iter().all(|s| s.contains("INDEX sessions_live")),
                "{what} reads the sessions table other than through sessions_live: {steps:?}"
            );
        }
    }

    /// A staff member's list of conversations reads their conversations'
    /// rows, and of the messages only each conversation's recent range: it
    /// summed every message of their history at each read.
    #[test]
    fn the_im_conversations_are_listed_without_reading_the_history() {
        let conn = migrated();
        let steps = plan(&conn, sel::IM_CONVERSATIONS);
        let messages: Vec<&String> = steps.iter().filter(|s| s.contains(" m ") || s.ends_with(" m")).collect();
        assert!(
            messages.len() == 1 && messages[0].contains("PRIMARY KEY (low=? AND high=? AND seq>?)"),
            "the messages are read otherwise: {steps:?}"
        );
        let conversations: Vec<&String> = steps.iter().filter(|s| s.contains(" c ") || s.ends_with(" c")).collect();
        assert!(
            !conversations.is_empty() && conversations.iter().all(|s| !s.starts_with("SCAN")),
            "the conversations are scanned: {steps:?}"
        );
    }

    /// The addresses answers were e-mailed to are copied from the timelines
    /// an older release kept, but those of chats already erased (their
    /// entries hold the mask, not an address) and those of entries that are
    /// not answers or went to no address.
    #[test]
    fn the_answer_addresses_of_an_older_release_are_filled_in() {
        let conn = Connection::open_in_memory().expect("an in-memory database");
        let (before, from) = MIGRATIONS.split_at(25);
        for m in before {
            conn.execute_batch(m).expect("the migrations apply");
        }
        conn.execute_batch(
            r#"PRAGMA foreign_keys = OFF;
             INSERT INTO sessions (id, library_id, token_hash, state, question_text, created_at, erased_at) VALUES
               (1, 1, 'a', 'ended', 'q', 10, NULL), (2, 1, 'b', 'ended', 'q', 10, 20);
             INSERT INTO questions (id, session_id, library_id, text, status, created_at) VALUES
               (1, 1, 1, 'q', 'answered', 10), (2, 2, 1, 'q', 'answered', 10);
             INSERT INTO timeline (question_id, at, actor_name, change) VALUES
               (1, 11, 'Ann', '{"change":"answer","body":"Hi","emailed_to":"Jo@example.org","in_chat":false}'),
               (1, 12, 'Ann', '{"change":"answer","body":"Hi","emailed_to":null,"in_chat":true}'),
               (1, 13, 'Ann', '{"change":"note","body":"emailed_to: x@example.org"}'),
               (2, 11, 'Ann', '{"change":"answer","body":"[masked]","emailed_to":"[email]","in_chat":false}');"#,
        )
        .expect("an older release's timelines");
        for m in from {
            conn.execute_batch(m).expect("the migrations apply");
        }
        let mut st = conn.prepare("SELECT question_id, address FROM answer_addresses").unwrap();
        let rows: Vec<(i64, String)> =
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(rows, [(1, "Jo@example.org".to_owned())]);
    }

    /// Who e-mailed each question's last answer is filled in from an older
    /// release's timelines: an answer in the chat alone, a note that names
    /// the field, a later answer by another (the last one counts), an erased
    /// question's masked answer.
    #[test]
    fn who_emailed_the_answers_of_an_older_release_is_filled_in() {
        let conn = Connection::open_in_memory().expect("an in-memory database");
        let (before, from) = MIGRATIONS.split_at(39);
        for m in before {
            conn.execute_batch(m).expect("the migrations apply");
        }
        conn.execute_batch(
            r#"PRAGMA foreign_keys = OFF;
             INSERT INTO questions (id, session_id, library_id, text, status, created_at) VALUES
               (1, 1, 1, 'q', 'answered', 10), (2, 2, 1, 'q', 'answered', 10), (3, 3, 1, 'q', 'new', 10),
               (4, 4, 1, 'q', 'answered', 10);
             INSERT INTO timeline (question_id, at, actor_id, actor_name, change) VALUES
               (1, 11, 7, 'Ann', '{"change":"answer","body":"Hi","emailed_to":"jo@example.org","in_chat":false}'),
               (1, 12, 8, 'Ben', '{"change":"answer","body":"Again","emailed_to":"jo@example.org","in_chat":false}'),
               (2, 11, 7, 'Ann', '{"change":"answer","body":"Hi","emailed_to":null,"in_chat":true}'),
               (3, 13, 7, 'Ann', '{"change":"note","body":""emailed_to":"x@example.org""}'),
               (4, 11, 9, 'Cy', '{"change":"answer","body":"[masked]","emailed_to":"[email]","in_chat":false}');"#,
        )
        .expect("an older release's timelines");
        for m in from {
            conn.execute_batch(m).expect("the migrations apply");
        }
        let mut st = conn.prepare("SELECT id, emailed_by FROM questions ORDER BY id").unwrap();
        let rows: Vec<(i64, Option<i64>)> =
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(rows, [(1, Some(8)), (2, None), (3, None), (4, Some(9))]);
    }

    /// The conversations' rows are filled in from the messages an older
    /// release kept: each pair's last number and time.
    #[test]
    fn the_im_conversations_of_an_older_release_are_filled_in() {
        let conn = Connection::open_in_memory().expect("an in-memory database");
        let (before, from) = MIGRATIONS.split_at(19);
        for m in before {
            conn.execute_batch(m).expect("the migrations apply");
        }
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO im_messages (low, high, seq, sender, recipient, body, at) VALUES
               (1, 2, 1, 1, 2, 'a', 10), (1, 2, 2, 2, 1, 'b', 20), (2, 3, 1, 3, 2, 'c', 15);",
        )
        .expect("an older release's messages");
        for m in from {
            conn.execute_batch(m).expect("the migrations apply");
        }
        let mut st = conn.prepare("SELECT low, high, last_seq, last_at FROM im_conversations ORDER BY low").unwrap();
        let rows: Vec<(i64, i64, i64, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(rows, [(1, 2, 2, 20), (2, 3, 1, 15)]);
    }

    /// What the retention round, an erasure, a demotion, the transcript
    /// cap and a chat's start look up goes through an index: each was a
    /// scan of every mail, block, member or chat the service ever held (a
    /// read-only audit of what grows with history, 2026-12-03).
    #[test]
    fn what_grows_with_history_is_read_through_indexes() {
        use crate::ops::{privacy, staffing};
        let conn = migrated();
        let block = format!("{} {}", sel::BLOCK_SELECT, sel::ACTIVE_BLOCK);
        let ids = [LibraryId(1), LibraryId(2)];
        let statements: [(&str, String, &str); 12] = [
            ("outbox of a chat", privacy::OUTBOX_OF_SESSION.into(), "INDEX outbox_session (session_id=?)"),
            ("outbox of a question", privacy::OUTBOX_OF_QUESTION.into(), "INDEX outbox_question (question_id=?)"),
            ("blocks of a chat", privacy::BLOCKS_OF_SESSION.into(), "INDEX blocks_session (session_id=?)"),
            ("spent blocks of a chat", privacy::forget_spent(true), "INDEX blocks_session (session_id=?)"),
            ("spent blocks", privacy::forget_spent(false), "PRIMARY KEY"),
            (
                "a patron's chats",
                privacy::patron_sessions_sql(&ids, false),
                "INDEX answer_addresses_address (<expr>=?)",
            ),
            (
                "a patron's chats that asked a transcript to the address",
                privacy::patron_sessions_sql(&ids, false),
                "INDEX sessions_transcript_to (<expr>=?)",
            ),
            (
                "transcripts to an address",
                sel::TRANSCRIPTS_ENDED_TO.into(),
                "INDEX sessions_transcript_ended (transcript_key=? AND ended_at>?)",
            ),
            ("a block in force", block, "MULTI-INDEX OR"),
            (
                "blocks of a cooperative",
                format!(
                    "{} WHERE {} ORDER BY b.id DESC LIMIT ?2",
                    sel::BLOCK_SELECT,
                    sel::block_scope(ScopeLevel::Cooperative(CooperativeId(1))).0
                ),
                "INDEX blocks_cooperative (cooperative_id=?)",
            ),
            ("ended memberships", staffing::ENDED_MEMBERSHIPS.into(), "INDEX session_members_staff (staff_id=?)"),
            ("delivered mail", privacy::SENT_MAIL_BEFORE.into(), "INDEX outbox_sent (sent_at>? AND sent_at<?)"),
        ];
        for (what, sql, index) in statements {
            let steps = plan(&conn, &sql);
            assert!(steps.iter().any(|s| s.contains(index)), "{what} is not read through {index}: {steps:?}");
            let scans: Vec<&String> =
                steps.iter().filter(|s| s.starts_with("SCAN") && !s.contains("CONSTANT")).collect();
            let blocks_alone = what == "spent blocks"; // the round's own walk of the blocks, each chat by its key
            assert!(scans.is_empty() || blocks_alone, "{what} scans: {steps:?}");
        }
    }

    /// The question list's views of work to do read their questions in their
    /// own partial indexes, in every scope: with the scope spanning two
    /// tables, New, Pending, Live… walked every question of the service
    /// when fewer than a page matched. The views of everything (All,
    /// Answered, Closed) walk the questions newest first and stop at a page.
    #[test]
    fn the_views_of_work_to_do_are_read_in_their_own_indexes() {
        use crate::{QuestionQuery, QuestionScope};
        use refdesk_domain::actions::View;
        use refdesk_domain::ids::InstitutionId;
        let conn = migrated();
        let sparse: [(View, &[&str]); 6] = [
            (View::New, &["questions_open"]),
            (View::Pending, &["questions_open"]),
            (View::Unassigned, &["questions_open"]),
            (View::Referred, &["questions_referred"]),
            (View::FollowUp, &["questions_follow_up"]),
            (View::Live, &["questions_uncoded", "sessions_live"]),
        ];
        let scopes = [
            ScopeLevel::Library(LibraryId(1)),
            ScopeLevel::Institution(InstitutionId(1)),
            ScopeLevel::Cooperative(CooperativeId(1)),
        ];
        for covers in scopes {
            for (view, indexes) in sparse {
                let query =
                    QuestionQuery::page(QuestionScope { covers, participant: StaffId(2), chatted_since: 0 }, view, 50);
                let steps = plan(&conn, &sel::question_query(&query, crate::sql::Dialect::Sqlite).0);
                for index in indexes {
                    assert!(steps.iter().any(|s| s.contains(index)), "{covers:?} {view:?} skips {index}: {steps:?}");
                }
                let walks = steps.iter().filter(|s| s.starts_with("SCAN q") && !s.contains("INDEX questions_"));
                assert_eq!(walks.count(), 0, "{covers:?} {view:?} walks every question: {steps:?}");
            }
        }
        // A search reads every question in scope, no more: a librarian's, those
        // of the library, those referred to it and those of their chats.
        let mut search = QuestionQuery::page(
            QuestionScope { covers: scopes[0], participant: StaffId(2), chatted_since: 0 },
            View::All,
            50,
        );
        search.text = Some("words".into());
        let steps = plan(&conn, &sel::question_query(&search, crate::sql::Dialect::Sqlite).0);
        for index in ["questions_library (library_id=?)", "questions_referred", "sessions_librarian (librarian_id=?)"] {
            assert!(steps.iter().any(|s| s.contains(index)), "the search skips {index}: {steps:?}");
        }
        assert!(!steps.iter().any(|s| s.starts_with("SCAN q") && !s.contains("INDEX questions_")), "{steps:?}");
    }

    /// A patron's place in line is counted from the entries ahead of theirs
    /// in the waiting chats' own index: with thousands waiting, reading
    /// every waiting chat's row filled a read connection's page cache for
    /// each patron connecting (issue 17).
    #[test]
    fn a_place_in_line_is_counted_in_the_queues_index() {
        let conn = migrated();
        let steps = plan(&conn, sel::QUEUE_AHEAD);
        assert!(
            steps.len() == 1 && steps[0].contains("COVERING INDEX sessions_queue (<expr>=? AND <expr><?)"),
            "the place in line is counted otherwise: {steps:?}"
        );
    }
}
