//! What every behaviour starts from: a fresh store of one kind with a small
//! organisation in it ([`World`]), the sink it publishes to, and the helpers
//! that keep the tests about the behaviour rather than the set-up.

use refdesk_domain::chat::{Author, MessageKind};
use refdesk_domain::event::Event;
use refdesk_domain::ids::{CooperativeId, SessionId};
use refdesk_domain::org::{Role, Staff};
use refdesk_domain::question::default_codes;
use refdesk_store::postgres::{PgOptions, PgStore};
use refdesk_store::sqlite::SqliteStore;
use refdesk_store::{EventSink, Guard, LibraryRecord, NewMessage, NewSession, NewStaff, PatronKeys, Store};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

/// Keeps every event a store publishes, in the order it publishes them.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn publish(&self, events: Vec<Event>) {
        self.0.lock().unwrap().extend(events);
    }
}

impl Recorder {
    /// The context each message of `session` was published with, by seq.
    pub fn message_contexts(&self, session: SessionId) -> Vec<(u64, refdesk_domain::chat::SessionContext)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Message { ctx, message } if message.session == session => Some((message.seq, ctx.clone())),
                _ => None,
            })
            .collect()
    }

    /// The availabilities published for `staff`, in order.
    pub fn availabilities(&self, staff: refdesk_domain::ids::StaffId) -> Vec<refdesk_domain::event::Availability> {
        let events = self.0.lock().unwrap();
        events
            .iter()
            .filter_map(|e| match e {
                Event::Availability { staff: who, availability, .. } if *who == staff => Some(*availability),
                _ => None,
            })
            .collect()
    }

    /// The sequence numbers of the messages published for `session`, in
    /// the order they were published.
    pub fn message_seqs(&self, session: SessionId) -> Vec<u64> {
        self.messages(session).iter().map(|m| m.seq).collect()
    }

    /// The messages published for `session`, in the order they were published.
    pub fn messages(&self, session: SessionId) -> Vec<refdesk_domain::chat::Message> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Message { message, .. } if message.session == session => Some(message.clone()),
                _ => None,
            })
            .collect()
    }
}

/// Which backend a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A SQLite file in a folder of its own.
    Sqlite,
    /// A new database on the PostgreSQL the tests use.
    Postgres,
    /// A new database on the PostgreSQL that accepts verified TLS only.
    PostgresTls,
}

/// Where a store keeps its rows, for the few checks the trait cannot make
/// and to remove it afterwards.
enum Underneath {
    Sqlite(PathBuf),
    Postgres {
        /// The new database's URL.
        url: String,
        /// The server's URL, to drop the database from.
        server: String,
        /// The database's name.
        name: String,
    },
}

impl Underneath {
    /// The SQLite file, or the PostgreSQL database's URL.
    fn place(&self) -> (Option<&std::path::Path>, Option<&str>) {
        match self {
            Underneath::Sqlite(path) => (Some(path), None),
            Underneath::Postgres { url, .. } => (None, Some(url)),
        }
    }

    /// Closes `store` and drops its PostgreSQL database (a SQLite store's
    /// folder goes with its `TempDir`).
    async fn remove(&self, store: &dyn Store) {
        store.close().await;
        if let Underneath::Postgres { server, name, .. } = self {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(server).await.unwrap();
            // The name is ours (`database_name`): it cannot break out of the statement.
            sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).await.unwrap();
            let _ = c.close().await;
        }
    }
}

/// A store with nothing in it yet.
pub struct Empty {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The sink it was opened with.
    pub sink: Arc<Recorder>,
    underneath: Underneath,
    /// The SQLite store's folder, removed when the test is done.
    _dir: Option<tempfile::TempDir>,
}

impl Empty {
    /// Opens a new, empty store of `kind`.
    pub async fn open(kind: Kind) -> Empty {
        let sink = Arc::new(Recorder::default());
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let path = dir.path().join("contract.sqlite3");
                let store = Arc::new(SqliteStore::open(&path, sink.clone()).unwrap());
                Empty { store, sink, underneath: Underneath::Sqlite(path), _dir: Some(dir) }
            }
            Kind::Postgres | Kind::PostgresTls => {
                let tls = matches!(kind, Kind::PostgresTls);
                let server = if tls { postgres_tls_server() } else { postgres_server() };
                let name = database_name();
                let url = fresh_postgres(&server, &name, tls).await;
                let store = Arc::new(PgStore::open(&url, PgOptions::default(), sink.clone()).await.unwrap());
                Empty { store, sink, underneath: Underneath::Postgres { url, server, name }, _dir: None }
            }
        }
    }

    /// Closes the store and removes what it stored.
    pub async fn remove(self) {
        self.underneath.remove(&*self.store).await;
    }

    /// The PostgreSQL database's URL (`None` on SQLite).
    pub fn postgres_url(&self) -> Option<&str> {
        self.underneath.place().1
    }
}

/// A fresh store with the [`World`] in it: what every behaviour gets.
pub struct Backend {
    /// Which backend this is.
    pub kind: Kind,
    /// The store, shareable between tasks.
    pub store: Arc<dyn Store>,
    /// Everything the store has published, the world's creation included.
    pub sink: Arc<Recorder>,
    /// The organisation and staff in the store.
    pub w: World,
    underneath: Underneath,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// A new store of `kind` with the world in it.
    pub async fn open(kind: Kind) -> Backend {
        let Empty { store, sink, underneath, _dir } = Empty::open(kind).await;
        let w = world(&*store).await;
        Backend { kind, store, sink, w, underneath, _dir }
    }

    /// Closes the store and removes what it stored.
    pub async fn remove(self) {
        self.underneath.remove(&*self.store).await;
    }

    /// The SQLite file (`None` on PostgreSQL).
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        self.underneath.place().0
    }

    /// The positions of a cooperative's resolution codes as stored, in
    /// picker order. The trait shows the order but not the positions, and
    /// two codes with one position would leave their order to the database
    /// (whatever it happens to return today), so this looks underneath.
    pub async fn code_positions(&self, coop: CooperativeId) -> Vec<i64> {
        const SQL: &str = "SELECT position FROM resolution_codes WHERE cooperative_id = $1 ORDER BY position";
        match &self.underneath {
            Underneath::Sqlite(path) => {
                let c =
                    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
                let mut st = c.prepare(&SQL.replace('$', "?")).unwrap();
                let rows = st.query_map([coop.0], |r| r.get(0)).unwrap();
                rows.collect::<rusqlite::Result<Vec<i64>>>().unwrap()
            }
            Underneath::Postgres { url, .. } => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                let positions = sqlx::query_scalar(SQL).bind(coop.0).fetch_all(&mut c).await.unwrap();
                let _ = c.close().await;
                positions
            }
        }
    }
}

impl Backend {
    /// A block's browser and network digests as stored: the trait never
    /// shows them (they are for matching only), so this looks underneath.
    pub async fn block_keys(&self, block: i64) -> (Option<String>, Option<String>) {
        let [browser, net] = self.texts("SELECT browser_key, net_key FROM blocks WHERE id = $1", block).await;
        (browser, net)
    }

    /// A session's network digests as stored (its /64's or IPv4 address's,
    /// its /56's, its /48's), which the trait never shows either.
    pub async fn session_networks(&self, session: SessionId) -> [Option<String>; 3] {
        self.texts("SELECT net_key, net56_key, net48_key FROM sessions WHERE id = $1", session.0).await
    }

    /// Gives a session's line `seq` the system kind `kind` underneath, as a
    /// newer release beside this one could write it.
    pub async fn set_system_kind(&self, session: SessionId, seq: u64, kind: &str) {
        let sql = "UPDATE messages SET system = $1 WHERE session_id = $2 AND seq = $3";
        match &self.underneath {
            Underneath::Sqlite(path) => {
                let c = rusqlite::Connection::open(path).unwrap();
                c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
                let changed =
                    c.execute(&sql.replace('$', "?"), rusqlite::params![kind, session.0, seq as i64]).unwrap();
                assert_eq!(changed, 1);
            }
            Underneath::Postgres { url, .. } => {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                let done = sqlx::query(sql).bind(kind).bind(session.0).bind(seq as i64).execute(&mut c).await.unwrap();
                assert_eq!(done.rows_affected(), 1);
                let _ = c.close().await;
            }
        }
    }

    /// `N` nullable text columns of the row `sql` finds by its one id.
    async fn texts<const N: usize>(&self, sql: &str, id: i64) -> [Option<String>; N] {
        match &self.underneath {
            Underneath::Sqlite(path) => {
                let c =
                    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
                c.query_row(&sql.replace('$', "?"), [id], |r| Ok(std::array::from_fn(|i| r.get(i).unwrap()))).unwrap()
            }
            Underneath::Postgres { url, .. } => {
                use sqlx::{Connection, Row};
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                let row = sqlx::query(sql).bind(id).fetch_one(&mut c).await.unwrap();
                let _ = c.close().await;
                std::array::from_fn(|i| row.get(i))
            }
        }
    }
}

/// A new database's name: `refdesk_contract_…`, which `scripts/test.sh`
/// removes on its next run. Tests of one process run at once: the counter
/// keeps their names apart.
fn database_name() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("refdesk_contract_{}_{n}_{nanos}", std::process::id())
}

/// The PostgreSQL server the tests use: `REFDESK_TEST_POSTGRES`, or the
/// one `scripts/test.sh` makes sure is running.
pub fn postgres_server() -> String {
    std::env::var("REFDESK_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A new database `name` on `server`, and its URL. Over `tls`, the server
/// refuses anything but TLS and the URL asks for the certificate to chain
/// to the test CA and to name the host: every connection of the test is
/// verified TLS, or the test fails.
async fn fresh_postgres(server: &str, name: &str, tls: bool) -> String {
    if tls {
        assert!(server.contains("sslmode=verify-full"), "the TLS tests run with verify-full: {server}");
    }
    let url = refdesk_store::postgres::create_database(server, name).await.unwrap_or_else(|e| {
        let which = if tls { "the TLS-only PostgreSQL" } else { "PostgreSQL" };
        panic!("{which} must be running at {server} (scripts/test.sh starts it): {e}")
    });
    if tls {
        assert!(url.contains("sslmode=verify-full"), "the new database is reached over TLS too: {url}");
    }
    url
}

/// The PostgreSQL that accepts TLS connections only, which `scripts/test.sh`
/// starts on localhost:5433 with a certificate from its test CA:
/// `REFDESK_TEST_POSTGRES_TLS`, or that instance's URL.
pub fn postgres_tls_server() -> String {
    std::env::var("REFDESK_TEST_POSTGRES_TLS").unwrap_or_else(|_| {
        "postgres://postgres@localhost:5433/postgres?sslmode=verify-full&sslrootcert=/tmp/refdesk-test-tls/ca.pem"
            .into()
    })
}

/// The TLS server's URL with `query` in place of its own.
pub fn postgres_tls_with(query: &str) -> String {
    let server = postgres_tls_server();
    let base = server.split_once('?').map_or(server.as_str(), |(base, _)| base);
    format!("{base}?{query}")
}

/// One cooperative, one institution, two of its libraries (`main` and
/// `law`), and three staff members: Ann, a librarian, and Carla, a library
/// admin, at `main`; Dev, an institution admin, at `law`.
pub struct World {
    /// A librarian at `main`.
    pub ann: Staff,
    /// A library admin at `main`.
    pub carla: Staff,
    /// An institution admin at `law`.
    pub dev: Staff,
    /// `main`, where the patrons of the tests ask.
    pub library: LibraryRecord,
    /// `law`, a library of the same institution.
    pub other: LibraryRecord,
}

async fn world(store: &dyn Store) -> World {
    let coop = store.create_cooperative("Coop", default_codes()).await.unwrap();
    let inst = store.create_institution(coop, "Uni").await.unwrap();
    let library = store.create_library(inst, "main", "Main").await.unwrap();
    let other = store.create_library(inst, "law", "Law").await.unwrap();
    let mut staff = Vec::new();
    for (u, role, lib) in [
        ("ann", Role::Librarian, &library),
        ("carla", Role::LibraryAdmin, &library),
        ("dev", Role::InstitutionAdmin, &other),
    ] {
        let new = NewStaff {
            library: lib.placement.library,
            username: u.into(),
            display_name: u.to_uppercase(),
            role,
            password_hash: "hash".into(),
        };
        store.create_staff(new).await.unwrap();
        staff.push(store.staff_by_username(u).await.unwrap().unwrap().staff);
    }
    let dev = staff.pop().unwrap();
    let carla = staff.pop().unwrap();
    let ann = staff.pop().unwrap();
    World { ann, carla, dev, library, other }
}

/// A guard that lets the write through.
pub fn ok() -> Guard {
    Box::new(|_| Ok(()))
}

/// A line to append, its audience taken from its kind.
pub fn line(author: Author, kind: MessageKind, body: &str, client_id: Option<&str>) -> NewMessage {
    NewMessage {
        author,
        kind,
        audience: kind.audience(),
        body: body.into(),
        client_id: client_id.map(Into::into),
        system: None,
    }
}

/// A system line.
pub fn system(body: &str) -> NewMessage {
    line(Author::System, MessageKind::System, body, None)
}

/// The patron of the tests, Pat.
pub fn patron() -> Author {
    Author::Patron { name: "Pat".into() }
}

/// A staff member as the author of a line.
pub fn staff_author(s: &Staff) -> Author {
    Author::Staff { id: s.id, name: s.display_name.clone() }
}

/// Pat starts a chat at `main` asking "Where?", with an e-mail address or
/// none; it waits in the queue.
pub async fn start(store: &dyn Store, w: &World, email: Option<&str>, token: &str, now: i64) -> SessionId {
    asking(store, w, email, "Where?", token, now).await
}

/// [`start`], with the question `question`.
pub async fn asking(
    store: &dyn Store,
    w: &World,
    email: Option<&str>,
    question: &str,
    token: &str,
    now: i64,
) -> SessionId {
    let new = NewSession {
        library: w.library.placement.library,
        patron_name: Some("Pat".into()),
        patron_email: email.map(Into::into),
        question: question.into(),
        token_hash: token.into(),
        now,
        transcript_to: None,
        transcript_utc_offset: None,
        keys: Default::default(),
        max_waiting: u32::MAX,
        max_waiting_per_net: u32::MAX,
        max_started_per_net_per_day: u32::MAX,
        max_started_in_library_per_day: u32::MAX,
    };
    store.start_session(new).await.unwrap().0.ctx.id
}

/// Pat starts a chat at `main` and Ann accepts it.
pub async fn chatting(store: &dyn Store, w: &World, email: Option<&str>, token: &str, now: i64) -> SessionId {
    let id = start(store, w, email, token, now).await;
    store.accept(id, w.ann.clone(), ok(), now + 1).await.unwrap();
    id
}

/// A new chat at `main` from a browser and a network (either may be
/// unknown), under the queue caps `max` (per library) and `per_net`.
pub fn keyed(w: &World, token: &str, browser: Option<&str>, net: Option<&str>, max: u32, per_net: u32) -> NewSession {
    NewSession {
        library: w.library.placement.library,
        patron_name: None,
        patron_email: None,
        question: "Q".into(),
        token_hash: token.into(),
        now: 1,
        transcript_to: None,
        transcript_utc_offset: None,
        keys: PatronKeys { browser: browser.map(Into::into), net: net.map(Into::into), ..Default::default() },
        max_waiting: max,
        max_waiting_per_net: per_net,
        max_started_per_net_per_day: u32::MAX,
        max_started_in_library_per_day: u32::MAX,
    }
}
