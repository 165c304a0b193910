//! What the two SQL backends share: the primitives each implements
//! ([`Db`]: run a statement, read rows, take a lock), and everything written
//! once over them — the `SELECT`s and their decoders ([`select`]) and the
//! statements several operations use ([`rows`]).
//!
//! Statements are written with `?N` placeholders, SQLite's spelling; the
//! PostgreSQL backend turns them into `$N` (no statement holds a `?`
//! anywhere else). Where the two dialects differ, [`Dialect`] says how.

pub(crate) mod rows;
pub(crate) mod select;

use crate::{Result, SessionRecord};
use refdesk_domain::ids::SessionId;
use std::borrow::Cow;
use std::future::Future;

/// A result row, whatever the backend: typed access by column name.
///
/// By name, not by position, so that a decoder reads the column it names
/// and a `SELECT` whose columns are reordered, or gain one in the middle,
/// cannot be decoded into the wrong fields. Every column read this way gets
/// an `AS` in its statement: SQLite leaves the name of a column without one
/// unspecified. Names are lower case (PostgreSQL folds unquoted names, and
/// both backends match exactly) and unique within their statement (SQLite's
/// lookup would find the first of two, sqlx's the last).
///
/// A column that is missing, or holds another type, is an error that names it.
pub trait Cols {
    /// An integer column.
    fn int(&self, name: &str) -> Result<i64>;
    /// A nullable integer column.
    fn opt_int(&self, name: &str) -> Result<Option<i64>>;
    /// A text column.
    fn text(&self, name: &str) -> Result<String>;
    /// A nullable text column.
    fn opt_text(&self, name: &str) -> Result<Option<String>>;
    /// A boolean column (0/1 in SQLite).
    fn flag(&self, name: &str) -> Result<bool>;
}

/// A value bound to a placeholder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg<'a> {
    /// An integer.
    Int(i64),
    /// A text.
    Text(Cow<'a, str>),
    /// A boolean (0/1 in SQLite).
    Bool(bool),
    /// NULL where an integer goes (PostgreSQL wants the type).
    NullInt,
    /// NULL where a text goes.
    NullText,
}

impl Arg<'static> {
    /// A text the argument owns.
    pub(crate) fn owned(text: String) -> Arg<'static> {
        Arg::Text(Cow::Owned(text))
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<bool> for Arg<'_> {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Cow::Borrowed(v))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Cow::Borrowed(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Arg::NullInt, Arg::Int)
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Arg::NullText, Arg::from)
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        v.as_deref().into()
    }
}

/// The arguments of a statement: `args![id.0, name, now]`.
macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$($crate::sql::Arg::from($a)),*] };
}
pub(crate) use args;

/// `column IN (1, 2, 3)` for a set of libraries (never true for none). The
/// ids are integers, written into the statement: nothing else ever is.
pub(crate) fn within(column: &str, libraries: &[refdesk_domain::ids::LibraryId]) -> String {
    if libraries.is_empty() {
        return "1 = 0".into();
    }
    let ids: Vec<String> = libraries.iter().map(|l| l.0.to_string()).collect();
    format!("{column} IN ({})", ids.join(", "))
}

/// Where the SQL of the two backends differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The larger of two values (a scalar function).
    pub(crate) fn greatest(self) -> &'static str {
        match self {
            Dialect::Sqlite => "max",
            Dialect::Postgres => "GREATEST",
        }
    }

    /// A LIKE that ignores the case of ASCII letters (SQLite's LIKE does).
    pub(crate) fn like(self) -> &'static str {
        match self {
            Dialect::Sqlite => "LIKE",
            Dialect::Postgres => "ILIKE",
        }
    }

    /// `column` in lower case, whatever its script, for a LIKE against a
    /// pattern lower-cased alike: SQLite's LIKE and `lower` fold ASCII
    /// letters only ("ВОЛГИ" did not find "Волги"), so its connections have
    /// `casefold` (`sqlite::open_conn`). PostgreSQL's ILIKE folds by the
    /// database's locale (a UTF-8 one folds every script; "C", ASCII
    /// alone): the column as it is (ICU's collation would fold whatever the
    /// locale, but a server built without ICU would then fail the search).
    pub(crate) fn folded(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("casefold({column})"),
            Dialect::Postgres => column.to_owned(),
        }
    }

    /// Appended to a `SELECT` whose rows the transaction goes on to change.
    /// SQLite has one writer, so nothing is needed there.
    pub(crate) fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }

    /// A row the transaction reads and relies on, which must not change
    /// before it commits (it waits for a change under way).
    pub(crate) fn for_share(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR SHARE",
        }
    }

    /// The lock a start takes on its library's row: it orders the starts
    /// of one library without blocking what refers to the row.
    pub(crate) fn no_key_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR NO KEY UPDATE",
        }
    }

    /// Like [`Dialect::for_update`], for a queue several nodes take rows
    /// from at once: each takes rows the others have not locked.
    pub(crate) fn skip_locked(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        }
    }
}

/// A connection as the shared code sees it: inside the write's transaction
/// for writes, a plain (read-only on SQLite) connection for reads. Each
/// backend implements these primitives; every operation is written once
/// over them (see `crate::ops`).
///
/// SQLite's implementation runs each statement synchronously on the
/// connection its thread owns: its futures are ready the first time they
/// are polled, which is how the writer runs a whole operation inside its
/// batch without an executor.
pub trait Db: Send {
    /// Which SQL this connection speaks.
    fn dialect(&self) -> Dialect;

    /// Runs a statement; the number of rows it changed.
    fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> impl Future<Output = Result<u64>> + Send;

    /// Every row of a query, decoded by `f`.
    fn rows<T: Send, F: Fn(&dyn Cols) -> Result<T> + Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        f: F,
    ) -> impl Future<Output = Result<Vec<T>>> + Send;

    /// The first row of a query, if any, decoded by `f`.
    fn row<T: Send, F: Fn(&dyn Cols) -> Result<T> + Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        f: F,
    ) -> impl Future<Output = Result<Option<T>>> + Send;

    /// Holds a lock named `key` until the transaction ends, so that writes
    /// which check a count before they insert (queue caps per network, the
    /// sequence of an IM conversation) run one at a time. SQLite's single
    /// writer already does that: there it does nothing.
    fn lock(&mut self, key: &str) -> impl Future<Output = Result<()>> + Send;

    /// A session as appends need it, kept from an earlier write (see the
    /// backends). None: read it.
    fn cached_session(&mut self, _id: SessionId) -> Option<SessionRecord> {
        None
    }

    /// Keeps a session read at `version` for later appends.
    fn cache_session(&mut self, _version: i64, _rec: &SessionRecord) {}

    /// A line stored in a session whose copy may be kept: the copy's last
    /// line follows, so that a guard reading it counts the lines.
    fn note_line(&mut self, _line: &refdesk_domain::chat::Message) {}

    /// Drops any kept copy of a session: it changed, or it ended (an ended
    /// chat's copy, with its patron's name and address, is not kept).
    fn forget_session(&mut self, _id: SessionId) {}

    /// What the backend's copy of a session knows of a client id among its
    /// lines (I4). A backend that does not know says [`ClientIdSeen::Unknown`]
    /// and the database is asked.
    fn client_id_seen(&mut self, _id: SessionId, _sender: &str, _client_id: &str) -> ClientIdSeen {
        ClientIdSeen::Unknown
    }

    /// A line stored in a session under a client id.
    fn note_client_id(&mut self, _id: SessionId, _sender: &str, _client_id: &str) {}
}

/// What a backend's copy of a session knows of a client id (I4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientIdSeen {
    /// Nothing: ask the database.
    Unknown,
    /// No line of that sender's in the session was stored under it.
    Never,
    /// One may have been: ask the database.
    Perhaps,
}

/// The integer column `name` of the one row a query returns (a count, a new
/// row's id).
pub(crate) async fn int<D: Db>(db: &mut D, sql: &str, args: &[Arg<'_>], name: &str) -> Result<i64> {
    db.row(sql, args, |r| r.int(name))
        .await?
        .ok_or_else(|| crate::StoreError::backend("a query that returns one row returned none"))
}
