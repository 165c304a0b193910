//! [`Db`] on a SQLite connection. Each primitive runs its statement before
//! it returns (see `run_now`): SQLite is a library on this thread, there is
//! nothing to wait for.

use super::db as failed;
use crate::sql::{Arg, Cols, Db, Dialect};
use crate::{Result, SessionRecord};
use refdesk_domain::ids::SessionId;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{params_from_iter, Connection, Row, ToSql};
use std::collections::HashMap;

/// A connection, and — on the writer's — its copy of sessions for appends.
pub struct SqliteDb {
    pub(super) conn: Connection,
    /// Session rows as appends need them (context, members, state). Only
    /// appends read it, and they change nothing in it; every other write on
    /// a session drops that session's copy (`sql::rows::lock_session`), and
    /// a batch that fails to commit drops them all — so it never holds a
    /// row that differs from the database. It saves the two reads per
    /// message that were most of the writer's work per message. Only the
    /// writer's connection fills it: reads never append.
    pub(super) sessions: HashMap<SessionId, SessionRecord>,
}

impl SqliteDb {
    pub(super) fn new(conn: Connection) -> SqliteDb {
        SqliteDb { conn, sessions: HashMap::new() }
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

fn col<T: rusqlite::types::FromSql>(r: &Row, i: usize) -> Result<T> {
    r.get(i).map_err(failed)
}

impl Cols for Row<'_> {
    fn int(&self, i: usize) -> Result<i64> {
        col(self, i)
    }
    fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        col(self, i)
    }
    fn text(&self, i: usize) -> Result<String> {
        col(self, i)
    }
    fn opt_text(&self, i: usize) -> Result<Option<String>> {
        col(self, i)
    }
    fn flag(&self, i: usize) -> Result<bool> {
        col(self, i)
    }
}

impl SqliteDb {
    fn each<T>(&mut self, sql: &str, args: &[Arg<'_>], mut f: impl FnMut(&Row) -> Result<T>) -> Result<Vec<T>> {
        let mut st = self.conn.prepare_cached(sql).map_err(failed)?;
        let mut rows = st.query(params_from_iter(args.iter())).map_err(failed)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(failed)? {
            out.push(f(r)?);
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
        self.each(sql, args, |r| f(r))
    }

    async fn row<T: Send, F: Fn(&dyn Cols) -> Result<T> + Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        f: F,
    ) -> Result<Option<T>> {
        let mut st = self.conn.prepare_cached(sql).map_err(failed)?;
        let mut rows = st.query(params_from_iter(args.iter())).map_err(failed)?;
        match rows.next().map_err(failed)? {
            Some(r) => Ok(Some(f(r)?)),
            None => Ok(None),
        }
    }

    /// One writer: every write already runs alone.
    async fn lock(&mut self, _key: &str) -> Result<()> {
        Ok(())
    }

    fn cached_session(&mut self, id: SessionId) -> Option<SessionRecord> {
        self.sessions.get(&id).cloned()
    }

    fn cache_session(&mut self, _version: i64, rec: &SessionRecord) {
        self.sessions.insert(rec.ctx.id, rec.clone());
    }

    fn forget_session(&mut self, id: SessionId) {
        self.sessions.remove(&id);
    }
}
