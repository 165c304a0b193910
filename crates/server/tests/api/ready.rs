//! `/readyz` says whether this node can do its work, and says it within
//! half a second whatever the database does: a database that answers reads
//! but cannot commit (on SQLite, a writer that is stuck or gone, or a file
//! the kernel will not let it write) is not ready, a database that does not
//! answer at all is not ready at the bound, and the node is ready again by
//! itself once it can.

use crate::helpers::{spawn_app, spawn_app_with};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `/readyz` answers within 500 ms; this leaves room for a loaded machine.
const ANSWERS_WITHIN: Duration = Duration::from_millis(900);

async fn readyz(app: &crate::helpers::TestApp) -> (u16, String) {
    let r = reqwest::get(app.url("/readyz")).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// `/readyz`, which must answer within [`ANSWERS_WITHIN`].
async fn timed_readyz(app: &crate::helpers::TestApp) -> (u16, String) {
    let began = Instant::now();
    let answer = readyz(app).await;
    assert!(began.elapsed() < ANSWERS_WITHIN, "/readyz took {:?} to say {answer:?}", began.elapsed());
    answer
}

fn is_postgres(app: &crate::helpers::TestApp) -> bool {
    app.dir.path().join("database_url").exists()
}

/// Asks `/readyz` until it says `want`, each answer in time.
async fn until_ready_says(app: &crate::helpers::TestApp, want: (u16, &str)) {
    let began = Instant::now();
    loop {
        let (status, body) = timed_readyz(app).await;
        if (status, body.as_str()) == want {
            return;
        }
        assert!(began.elapsed() < Duration::from_secs(15), "still {status} {body}, waiting for {want:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_while_the_database_cannot_commit_and_200_again_after() {
    let app = spawn_app().await;
    assert_eq!(readyz(&app).await, (200, "ready".into()));

    if is_postgres(&app) {
        // PostgreSQL: the check is a round trip on a connection of its own;
        // a database that does not answer is the next test's business.
        // Its connection ended under it (the server restarted, an operator
        // ended it) is no reason for a 503: the check opens another.
        read_only_postgres(&app, false);
        for _ in 0..3 {
            assert_eq!(timed_readyz(&app).await, (200, "ready".into()));
            tokio::time::sleep(Duration::from_millis(1_100)).await;
        }
    } else {
        // Another process holds SQLite's write lock: reads go on (the old
        // check, a read, said ready), but nothing can commit.
        let other = rusqlite::Connection::open(app.dir.path().join("refdesk.sqlite3")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        // Until the writer's last commit is no longer fresh (1 s); then the
        // check's ping waits for the lock, and /readyz says so at its bound
        // (`database not answering`), or once the check has given up
        // (`database cannot commit`).
        let began = Instant::now();
        loop {
            let (status, body) = timed_readyz(&app).await;
            if status == 503 {
                assert!(body == "database not answering" || body == "database cannot commit", "{body}");
                break;
            }
            assert!(began.elapsed() < Duration::from_secs(10), "still {status} {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert_eq!(app.state.app.store().libraries().await.map(|l| !l.is_empty()).ok(), Some(true), "reads work");
        other.execute_batch("ROLLBACK").unwrap();
        until_ready_says(&app, (200, "ready")).await;
    }

    // A store that has closed is not ready either (once the last verdict,
    // which answers the probes of a second, has gone stale).
    app.state.app.store().close().await;
    let closed = Instant::now();
    while readyz(&app).await.0 != 503 {
        assert!(closed.elapsed() < Duration::from_secs(3), "a closed store still ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A TCP relay in front of the database that can stop passing bytes, as a
/// network that drops every packet does: connections stay open and nothing
/// answers (the case a refused connection does not show, and the one that
/// made `/readyz` take seconds).
struct Relay {
    addr: std::net::SocketAddr,
    frozen: Arc<tokio::sync::watch::Sender<bool>>,
    /// Where new connections go.
    upstream: Arc<Mutex<String>>,
}

impl Relay {
    /// A relay to whatever `upstream` holds when a connection arrives.
    async fn start(upstream: Arc<Mutex<String>>) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let frozen = Arc::new(tokio::sync::watch::Sender::new(false));
        let held = frozen.clone();
        let to_upstream = upstream.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let to = to_upstream.lock().unwrap().clone();
                let Ok(server) = tokio::net::TcpStream::connect(&to).await else { continue };
                let ((cr, cw), (sr, sw)) = (client.into_split(), server.into_split());
                tokio::spawn(pipe(cr, sw, held.subscribe()));
                tokio::spawn(pipe(sr, cw, held.subscribe()));
            }
        });
        Relay { addr, frozen, upstream }
    }
}

/// A fresh server whose PostgreSQL database (if it runs on one) it reaches
/// through a [`Relay`].
async fn spawn_behind_relay() -> (crate::helpers::TestApp, Relay) {
    let upstream = Arc::new(Mutex::new(String::new()));
    let relay = Relay::start(upstream.clone()).await;
    let app = spawn_app_with(|config| {
        if let Some(url) = &config.database_url {
            // postgres://user@host:port/db → the relay's address instead of host:port.
            let host = url.find('@').map_or(url.find("//").unwrap() + 2, |i| i + 1);
            let end = host + url[host..].find('/').unwrap();
            let target = &url[host..end];
            *upstream.lock().unwrap() = if target.contains(':') { target.into() } else { format!("{target}:5432") };
            config.database_url = Some(format!("{}{}{}", &url[..host], relay.addr, &url[end..]));
        }
    })
    .await;
    (app, relay)
}

/// Copies bytes one way, holding them while the relay is frozen.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The database stops answering: `/readyz` says 503 within its bound every
/// time it is asked (it took about 5 s to say anything before), and 200
/// again by itself once the database answers. On PostgreSQL the database
/// is behind a [`Relay`] that stops passing bytes; on SQLite another
/// process holds the write lock, so the check's ping waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_answers_503_within_half_a_second_while_the_database_does_not_answer() {
    let (app, relay) = spawn_behind_relay().await;
    assert_eq!(timed_readyz(&app).await, (200, "ready".into()));

    let lock = if is_postgres(&app) {
        relay.frozen.send_replace(true);
        None
    } else {
        let other = rusqlite::Connection::open(app.dir.path().join("refdesk.sqlite3")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        Some(other)
    };
    until_ready_says(&app, (503, "database not answering")).await;
    // Asked again and again meanwhile: every answer in time, none ready.
    for _ in 0..5 {
        let (status, body) = timed_readyz(&app).await;
        assert_eq!(status, 503, "{body}");
    }

    relay.frozen.send_replace(false);
    if let Some(other) = lock {
        other.execute_batch("ROLLBACK").unwrap();
    }
    until_ready_says(&app, (200, "ready")).await;
}

/// Undoes `chattr +i` however the test ends (the temporary folder could
/// not be removed otherwise).
struct Immutable(Vec<std::path::PathBuf>);

impl Immutable {
    /// Makes the files immutable; `None` where that is not possible (not
    /// root, or a filesystem without the attribute).
    fn set(files: Vec<std::path::PathBuf>) -> Option<Immutable> {
        let done = std::process::Command::new("chattr").arg("+i").args(&files).status();
        match done {
            Ok(s) if s.success() => Some(Immutable(files)),
            _ => None,
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = std::process::Command::new("chattr").arg("-i").args(&self.0).status();
    }
}

/// A database that refuses writes is not ready, though it answers every
/// read; writes fail rather than being acknowledged; once it takes writes
/// again the node is ready by itself.
///
/// SQLite: a file the kernel will not let refdesk write (a filesystem gone
/// read-only after an error, a full disk, an immutable file). It is made so
/// with `chattr +i` on the database and its write-ahead log: the tests run
/// as root, which file modes (`chmod 0400`) do not stop, and remounting a
/// filesystem read-only is refused while a file on it is open for writing
/// (as the database is). The immutable attribute stops root too, and on
/// ext4 (since Linux 5.4) also writes through descriptors opened before it
/// was set: the writer's next commit fails as on a read-only filesystem.
/// Where it cannot be set (not root, or a filesystem without it) the test
/// fails and says why: it never passes by skipping.
///
/// PostgreSQL: `ALTER DATABASE … SET default_transaction_read_only = on`,
/// which takes effect on new connections (the pool's are ended, so it
/// makes new ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_on_a_database_that_cannot_be_written() {
    let app = spawn_app().await;
    assert_eq!(timed_readyz(&app).await, (200, "ready".into()));
    let undo: Box<dyn FnOnce()> = if is_postgres(&app) {
        let name = read_only_postgres(&app, true);
        Box::new(move || {
            assert!(psql(&format!("ALTER DATABASE {name} RESET default_transaction_read_only")).success());
        })
    } else {
        let db = app.dir.path().join("refdesk.sqlite3");
        let wal = app.dir.path().join("refdesk.sqlite3-wal");
        assert!(wal.exists(), "the write-ahead log is there while the database is open");
        // No silent skip: where the flag cannot be set, the test fails and says why.
        let read_only = Immutable::set(vec![db, wal])
            .expect("chattr +i on the database (needs root and a filesystem such as ext4, as scripts/test.sh has)");
        Box::new(move || drop(read_only))
    };

    // SQLite: the background round's batches change nothing and still
    // commit: they prove nothing. The check's ping writes, and its commit
    // fails. PostgreSQL: the check asks whether the session is read-only.
    until_ready_says(&app, (503, "database cannot commit")).await;
    assert!(app.state.app.store().libraries().await.is_ok(), "reads work");
    let start = || async {
        let res = reqwest::Client::new()
            .post(app.url("/api/libraries/riverside-main/chats"))
            .json(&serde_json::json!({"name": "Pat", "question": "Stored?"}))
            .send()
            .await
            .unwrap();
        res.status()
    };
    // Several at once: on PostgreSQL the pool opens connections under the
    // read-only default, and keeps them. Each is told to come back: the
    // database's state, not a fault (503 `unavailable`, not 500).
    let failed =
        futures_util::future::join_all((0..4).map(|_| unavailable(&app, "/api/libraries/riverside-main/chats"))).await;
    assert_eq!(failed.len(), 4, "a write fails, it is not acknowledged");

    // Writable again (PostgreSQL: the connections are not ended). Once the
    // node says ready, writes go through: the pool's connections opened
    // while it was read-only are not used again.
    undo();
    until_ready_says(&app, (200, "ready")).await;
    for _ in 0..4 {
        assert_eq!(start().await, 201, "a write once ready");
    }
}

/// Starts a chat at `path`, which must fail with `503 unavailable`, a
/// `Retry-After` and a message that says nothing internal.
async fn unavailable(app: &crate::helpers::TestApp, path: &str) {
    let res = reqwest::Client::new()
        .post(app.url(path))
        .json(&serde_json::json!({"name": "Pat", "question": "Stored?"}))
        .send()
        .await
        .unwrap();
    let logs = crate::helpers::captured_logs();
    let said = logs.lines().rfind(|l| l.contains("internal error")).unwrap_or_default().to_owned();
    assert_eq!(res.status(), 503, "the last internal error logged: {said}");
    assert_eq!(res.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("try again") && !message.contains("SQLite") && !message.contains("PostgreSQL"),
        "{message}"
    );
}

/// A database that is down — PostgreSQL refusing connections, SQLite's file
/// held by another process's write past the busy wait — is the database's
/// state, not a fault of refdesk's: a sign-in (which writes its sign-in) and
/// a chat's start get `503 unavailable` with `Retry-After`, not `500
/// internal`, the log says it at `warn`, and once the database is back both
/// work again, nothing else done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_is_down_is_503_unavailable_and_each_request_works_once_it_is_back() {
    let (app, relay) = spawn_behind_relay().await;
    let upstream = relay.upstream.clone();
    let sign_in = || async {
        let res = reqwest::Client::new()
            .post(app.url("/api/login"))
            .json(&serde_json::json!({"username": "ann", "password": "refdesk-demo"}))
            .send()
            .await
            .unwrap();
        let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        (res.status().as_u16(), retry_after, res.json::<serde_json::Value>().await.unwrap())
    };
    let patron = app.start_chat("riverside-main", "Before?").await;
    let mut socket = patron.socket().await;
    let before = patron.session;

    let (down, lock) = if is_postgres(&app) {
        // Down: nothing listens where the relay sends new connections, and
        // the database's connections (the pool's) are ended.
        let live = std::mem::replace(&mut *upstream.lock().unwrap(), closed_port());
        read_only_postgres(&app, false);
        (Some(live), None)
    } else {
        let other = rusqlite::Connection::open(app.dir.path().join("refdesk.sqlite3")).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        (None, Some(other))
    };
    // A chat line: an error frame with its id, so that the page sends it
    // again. All three at once (on SQLite each waits out the busy wait).
    let line = serde_json::json!({"type": "send", "body": "Still there?", "client_id": "line-1"});
    let refused_line = async {
        socket.send(line.clone()).await;
        let answer = socket.until_within(Duration::from_secs(30), |f| f["type"] == "error" || f["type"] == "ack").await;
        answer.last().unwrap().clone()
    };
    let ((status, retry_after, body), (), refused) =
        tokio::join!(sign_in(), unavailable(&app, "/api/libraries/riverside-main/chats"), refused_line);
    assert_eq!((status, retry_after.as_deref()), (503, Some("5")), "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    let refused = (&refused["type"], &refused["code"], &refused["client_id"]);
    assert_eq!(refused, (&"error".into(), &"unavailable".into(), &"line-1".into()));
    let logs = crate::helpers::captured_logs();
    assert!(logs.contains("the database is unavailable"), "said in the log");

    if let Some(live) = down {
        *upstream.lock().unwrap() = live;
    }
    if let Some(other) = lock {
        other.execute_batch("ROLLBACK").unwrap();
    }
    until_ready_says(&app, (200, "ready")).await;
    let (status, _, body) = sign_in().await;
    assert_eq!(status, 200, "{body}");
    socket.send(line).await;
    let answer = socket.until_within(Duration::from_secs(10), |f| f["type"] == "error" || f["type"] == "ack").await;
    assert_eq!(answer.last().unwrap()["type"], "ack", "sent again, stored: {answer:?}");
    assert_eq!(app.stored(before).await.iter().filter(|m| m.body == "Still there?").count(), 1);
    assert_eq!(app.start_chat("riverside-main", "Back?").await.session, before + 1, "the refused start made no chat");
}

/// A loopback address where nothing listens (bound, then let go).
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// Runs `sql` with `psql` on the tests' PostgreSQL server.
fn psql(sql: &str) -> std::process::ExitStatus {
    let server =
        std::env::var("REFDESK_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let done = std::process::Command::new("psql")
        .args([server.as_str(), "-q", "-c", sql])
        .stdout(std::process::Stdio::null())
        .status();
    done.expect("psql runs")
}

/// Makes the app's PostgreSQL database read-only by default (or not, with
/// `on: false`) and ends its connections, so the pool opens new ones under
/// the new default; returns the database's name.
fn read_only_postgres(app: &crate::helpers::TestApp, on: bool) -> String {
    let url = std::fs::read_to_string(app.dir.path().join("database_url")).unwrap();
    let name = url.rsplit('/').next().unwrap().split('?').next().unwrap().to_owned();
    if on {
        assert!(psql(&format!("ALTER DATABASE {name} SET default_transaction_read_only = on")).success());
    }
    let end = format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'");
    assert!(psql(&end).success());
    name
}
