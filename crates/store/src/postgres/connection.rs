//! [`Db`] on a PostgreSQL connection: a pooled transaction for writes, a
//! pooled connection for reads.

use super::{db, SessionCache};
use crate::sql::{Arg, Cols, Db, Dialect};
use crate::{Result, SessionRecord, StoreError};
use refdesk_domain::ids::SessionId;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgConnection, Postgres, Row, Transaction};
use std::sync::Arc;

/// The connection an operation runs on.
pub enum PgConn {
    /// A write's transaction.
    Tx(Transaction<'static, Postgres>),
    /// A read's connection.
    Pool(PoolConnection<Postgres>),
}

/// A connection, and the store's copy of sessions for appends.
pub struct PgDb {
    conn: PgConn,
    sessions: Arc<SessionCache>,
    /// Lines this write stored, for the node's copies of their chats once
    /// it commits (not before: a copy that counted a line still in flight
    /// could refuse its re-send as a chat full before the line is there to
    /// be found, and would keep counting it if the commit failed).
    noted: Vec<refdesk_domain::chat::Message>,
}

impl PgDb {
    pub(super) fn new(conn: PgConn, sessions: Arc<SessionCache>) -> PgDb {
        PgDb { conn, sessions, noted: Vec::new() }
    }

    /// The connection, and the lines to note on the copies once it commits.
    pub(super) fn into_inner(self) -> (PgConn, Vec<refdesk_domain::chat::Message>) {
        (self.conn, self.noted)
    }

    fn c(&mut self) -> &mut PgConnection {
        match &mut self.conn {
            PgConn::Tx(tx) => tx,
            PgConn::Pool(c) => c,
        }
    }
}

/// Column `name` of `r`. sqlx finds it in the statement's map of names (an
/// exact match) and its error names the column; the context says it was a
/// read, in the same words as on SQLite.
fn col<'r, T: sqlx::Decode<'r, Postgres> + sqlx::Type<Postgres>>(r: &'r PgRow, name: &str) -> Result<T> {
    r.try_get(name).map_err(|e| StoreError::failed(format!("PostgreSQL: reading column {name}"), e))
}

impl Cols for PgRow {
    fn int(&self, name: &str) -> Result<i64> {
        col(self, name)
    }
    fn opt_int(&self, name: &str) -> Result<Option<i64>> {
        col(self, name)
    }
    fn text(&self, name: &str) -> Result<String> {
        col(self, name)
    }
    fn opt_text(&self, name: &str) -> Result<Option<String>> {
        col(self, name)
    }
    fn flag(&self, name: &str) -> Result<bool> {
        col(self, name)
    }
}

/// A shared statement (`?N` placeholders) in PostgreSQL's spelling.
fn pg(sql: &str) -> String {
    sql.replace('?', "$")
}

/// `sql` with `args` bound.
fn bound<'q>(sql: &'q str, args: &'q [Arg<'_>]) -> Query<'q, Postgres, PgArguments> {
    let mut q = sqlx::query(sql);
    for a in args {
        q = match a {
            Arg::Int(i) => q.bind(*i),
            Arg::Text(t) => q.bind(t.as_ref()),
            Arg::Bool(b) => q.bind(*b),
            Arg::NullInt => q.bind(None::<i64>),
            Arg::NullText => q.bind(None::<String>),
        };
    }
    q
}

impl Db for PgDb {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn exec(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        let text = pg(sql);
        Ok(bound(&text, args).execute(self.c()).await.map_err(db)?.rows_affected())
    }

    async fn rows<T: Send, F: Fn(&dyn Cols) -> Result<T> + Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        f: F,
    ) -> Result<Vec<T>> {
        let text = pg(sql);
        let rows = bound(&text, args).fetch_all(self.c()).await.map_err(db)?;
        rows.iter().map(|r| f(r)).collect()
    }

    async fn row<T: Send, F: Fn(&dyn Cols) -> Result<T> + Send>(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
        f: F,
    ) -> Result<Option<T>> {
        let text = pg(sql);
        let row = bound(&text, args).fetch_optional(self.c()).await.map_err(db)?;
        row.map(|r| f(&r)).transpose()
    }

    /// A transaction-scoped advisory lock on the key's hash.
    async fn lock(&mut self, key: &str) -> Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(key)
            .execute(self.c())
            .await
            .map_err(db)?;
        Ok(())
    }

    /// The write path always reads the row: the store's copy is for the
    /// one-statement fast path (`PgStore::append_on_copy`), which checks it.
    fn cached_session(&mut self, _id: SessionId) -> Option<SessionRecord> {
        None
    }

    fn cache_session(&mut self, version: i64, rec: &SessionRecord) {
        self.sessions.put(rec.ctx.id, version, rec.clone());
    }

    fn note_line(&mut self, line: &refdesk_domain::chat::Message) {
        self.noted.push(line.clone());
    }

    fn forget_session(&mut self, id: SessionId) {
        self.sessions.forget(id);
    }
}

#[cfg(test)]
mod tests {
    use super::pg;

    #[test]
    fn placeholders_take_postgresql_spelling() {
        assert_eq!(pg("a = ?1 AND b = ?2"), "a = $1 AND b = $2");
    }
}
