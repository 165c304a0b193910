//! A real library's first run, with the `refdesk` binary on a fresh data
//! folder: `setup` (a weak password refused and nothing written; a second
//! run refused) → the new cooperative admin signs in, adds an institution, a
//! library and a librarian → a patron of that library chats with that
//! librarian over WebSockets. And the demo stays a demo: a server holding
//! the demo accounts refuses a non-loopback listen address, and a demo
//! sign-in through a proxy (a client elsewhere) is refused.

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Ws;

const BIN: &str = env!("CARGO_BIN_EXE_refdesk");
const STRONG: &str = "river bend otter 1889";

/// Runs `refdesk --data-dir DIR ARGS…` with `REFDESK_PASSWORD` set (or not).
fn refdesk(dir: &Path, args: &[&str], password: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir").arg(dir).args(args).stdin(Stdio::null()).env_remove("REFDESK_PASSWORD");
    if let Some(p) = password {
        cmd.env("REFDESK_PASSWORD", p);
    }
    cmd.output().expect("refdesk runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `refdesk serve` killed when the test ends.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn start(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir").arg(dir).args(["serve", "--listen", &listen]).args(extra);
        cmd.stdout(Stdio::null()).stderr(Stdio::null()).env("REFDESK_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let server = Server { child: cmd.spawn().expect("refdesk serve starts"), port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(server.url("/readyz")).await.map(|r| r.status() != 200).unwrap_or(true) {
            assert!(Instant::now() < deadline, "refdesk serve did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// A node on SQLite is the only one: on SIGTERM it does not wait out
/// `drain_seconds` (no other node could take its clients), it closes at
/// once and cleanly, its write-ahead log emptied and removed.
#[tokio::test]
async fn a_sqlite_node_stops_at_once_on_sigterm_without_a_drain() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[], &[("REFDESK_DRAIN_SECONDS", "30")]).await;
    let term = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().expect("kill runs");
    assert!(term.success());
    let signalled = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(signalled.elapsed() < Duration::from_secs(20), "still running: it waited for a drain");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(!dir.path().join("refdesk.sqlite3-wal").exists());
}

/// SIGHUP (sent by operators expecting a reload) neither stops the server
/// nor changes anything: it exited at once by default, with no drain.
#[tokio::test]
async fn a_sighup_leaves_the_server_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[], &[]).await;
    let hup = Command::new("kill").args(["-HUP", &server.child.id().to_string()]).status().expect("kill runs");
    assert!(hup.success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.child.try_wait().unwrap().is_none(), "still running");
    assert_eq!(reqwest::get(server.url("/readyz")).await.unwrap().status(), 200);
}

/// A signed-in staff member's HTTP client.
async fn sign_in(server: &Server, username: &str, password: &str) -> reqwest::Client {
    let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let r = client
        .post(server.url("/api/login"))
        .json(&json!({"username": username, "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{username} signs in");
    client
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = client.post(url).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next frame of `type` on a socket (others are skipped).
async fn next_of(ws: &mut Socket, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg =
            tokio::time::timeout(left, ws.next()).await.expect("a frame in time").expect("the socket is open").unwrap();
        if let Ws::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == kind && pred(&v) {
                return v;
            }
        }
    }
}

#[tokio::test]
async fn a_new_service_is_set_up_without_the_demo_and_serves_its_first_patron() {
    let dir = tempfile::tempdir().unwrap();
    let setup = [
        "setup",
        "--cooperative",
        "North Shore Libraries",
        "--institution",
        "North University",
        "--library",
        "north-main",
        "--library-name",
        "North Main Library",
        "--admin",
        "nora",
        "--admin-name",
        "Nora North",
    ];
    // No password: never taken from a flag, and no terminal to ask on.
    let o = refdesk(dir.path(), &setup, None);
    assert!(!o.status.success());
    assert!(text(&o).contains("REFDESK_PASSWORD"), "{}", text(&o));
    // A weak one is refused, and nothing is written.
    let o = refdesk(dir.path(), &setup, Some("password123"));
    assert!(!o.status.success());
    assert!(text(&o).contains("password"), "{}", text(&o));
    assert!(!dir.path().join("refdesk.sqlite3").exists(), "a refused set-up creates no database");
    let o = refdesk(dir.path(), &["list"], None);
    assert!(text(&o).contains("nothing set up yet"), "{}", text(&o));
    // A strong one sets the service up, once.
    let o = refdesk(dir.path(), &setup, Some(STRONG));
    assert!(o.status.success(), "{}", text(&o));
    // It says where the database is, and what to run next.
    let db = std::fs::canonicalize(dir.path().join("refdesk.sqlite3")).unwrap();
    assert!(text(&o).contains(&format!("the database is {}", db.display())), "{}", text(&o));
    let next = format!("next: `refdesk --data-dir {} serve`", dir.path().display());
    assert!(text(&o).contains(&next), "{}", text(&o));
    let o = refdesk(dir.path(), &setup, Some(STRONG));
    assert!(!o.status.success());
    assert!(text(&o).contains("already set up"), "{}", text(&o));
    let o = refdesk(dir.path(), &["list"], None);
    assert!(text(&o).contains("North Shore Libraries") && text(&o).contains("/ask/north-main"), "{}", text(&o));
    // An id that names nothing: said, with where to find the ids.
    let o = refdesk(dir.path(), &["institution", "add", "Nowhere U", "--cooperative", "99"], None);
    assert!(!o.status.success());
    assert!(text(&o).contains("there is no cooperative with that id (`refdesk list`"), "{}", text(&o));
    let o = refdesk(dir.path(), &["library", "add", "nowhere", "--name", "Nowhere", "--institution", "99"], None);
    assert!(!o.status.success());
    assert!(text(&o).contains("there is no institution with that id"), "{}", text(&o));
    // A typo is not for good: the operator renames (the address stays).
    let o = refdesk(dir.path(), &["library", "rename", "north-main", "--name", "North Main Library (Downtown)"], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = refdesk(dir.path(), &["cooperative", "rename", "1", "--name", "North Shore Library Co-op"], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = refdesk(dir.path(), &["institution", "rename", "99", "--name", "Nowhere"], None);
    assert!(!o.status.success() && text(&o).contains("there is no institution with that id"), "{}", text(&o));
    let o = refdesk(dir.path(), &["library", "rename", "north-main", "--name", " "], None);
    assert!(!o.status.success() && text(&o).contains("name"), "{}", text(&o));
    let o = refdesk(dir.path(), &["list"], None);
    assert!(text(&o).contains("North Main Library (Downtown)"), "{}", text(&o));
    assert!(text(&o).contains("North Shore Library Co-op"), "{}", text(&o));
    // The widget's snippet, for the library's own site: it loads from public_url.
    let o = refdesk(dir.path(), &["library", "snippet", "north-main"], None);
    assert!(!o.status.success() && text(&o).contains("set public_url first"), "{}", text(&o));
    let public = ["--set", "public_url=https://ask.north.example.org/", "library", "snippet"];
    let o = refdesk(dir.path(), &[&public[..], &["north-main"]].concat(), None);
    assert!(o.status.success(), "{}", text(&o));
    let snippet = r#"<script src="https://ask.north.example.org/widget.js" data-library="north-main" defer></script>"#;
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), snippet);
    let o = refdesk(dir.path(), &[&public[..], &["north-mian"]].concat(), None);
    assert!(!o.status.success() && text(&o).contains("there is no library at /ask/north-mian"), "{}", text(&o));
    // A clean exit leaves no write-ahead log behind; the data (password
    // hashes, transcripts) is for the service's own user only.
    assert!(!dir.path().join("refdesk.sqlite3-wal").exists());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&dir.path().join("refdesk.sqlite3")), 0o600);
    }

    let server = Server::start(dir.path(), &[], &[]).await;
    let nora = sign_in(&server, "nora", STRONG).await;
    let (status, inst) = post(&nora, server.url("/api/institutions"), json!({"name": "North College"})).await;
    assert_eq!(status, 201, "{inst}");
    let (status, lib) = post(
        &nora,
        server.url("/api/libraries"),
        json!({"slug": "north-college", "name": "North College Library", "institution": inst["id"]}),
    )
    .await;
    assert_eq!(status, 201, "{lib}");
    let (status, staff) = post(
        &nora,
        server.url("/api/staff"),
        json!({"username": "lena", "display_name": "Lena Ledger", "library": "north-college", "role": "librarian", "password": "otter-long-secret-7"}),
    )
    .await;
    assert_eq!(status, 201, "{staff}");

    // Lena, on duty, takes the first patron of the new library.
    let lena = sign_in(&server, "lena", "otter-long-secret-7").await;
    let (status, _) = post(&lena, server.url("/api/institutions"), json!({"name": "Not hers to add"})).await;
    assert_eq!(status, 403, "only cooperative admins add institutions");
    assert_eq!(post(&lena, server.url("/api/me/availability"), json!({"availability": "on_duty"})).await.0, 200);
    let (status, started) = post(
        &reqwest::Client::new(),
        server.url("/api/libraries/north-college/chats"),
        json!({"name": "Pat", "question": "Do you have the 1889 shore survey?"}),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    let session = started["session"].as_i64().unwrap();
    let accept = lena.post(server.url(&format!("/api/sessions/{session}/accept"))).send().await.unwrap();
    assert_eq!(accept.status(), 200);

    let ws = server.url("/api/ws").replacen("http", "ws", 1);
    let (mut patron, _) = tokio_tungstenite::connect_async(ws.as_str()).await.unwrap();
    patron.send(Ws::text(json!({"type": "auth", "token": started["token"]}).to_string())).await.unwrap();
    patron.send(Ws::text(json!({"type": "resume", "after": 0}).to_string())).await.unwrap();
    let cookie = {
        let r = reqwest::Client::new()
            .post(server.url("/api/login"))
            .json(&json!({"username": "lena", "password": "otter-long-secret-7"}))
            .send()
            .await
            .unwrap();
        r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned()
    };
    let mut req = ws.as_str().into_client_request().unwrap();
    req.headers_mut().insert("Cookie", cookie.parse().unwrap());
    let (mut desk, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    desk.send(Ws::text(json!({"type": "auth"}).to_string())).await.unwrap();
    desk.send(Ws::text(json!({"type": "resume", "session": session, "after": 0}).to_string())).await.unwrap();
    next_of(&mut desk, "synced", |_| true).await;
    next_of(&mut patron, "synced", |_| true).await;

    let send =
        |id: &str, body: &str| json!({"type": "send", "session": session, "client_id": id, "body": body}).to_string();
    patron.send(Ws::text(send("p-1", "Is it online?"))).await.unwrap();
    next_of(&mut desk, "event", |v| v["body"] == "Is it online?").await;
    desk.send(Ws::text(send("l-1", "Yes: here is the link."))).await.unwrap();
    let line = next_of(&mut patron, "event", |v| v["body"] == "Yes: here is the link.").await;
    assert_eq!(line["author"]["name"], "Lena Ledger");
}

#[tokio::test]
async fn the_demo_serves_this_machine_only() {
    // `serve --demo` on a public address: refused before anything is loaded.
    let dir = tempfile::tempdir().unwrap();
    let o = refdesk(dir.path(), &["serve", "--demo", "--listen", "0.0.0.0:0"], None);
    assert!(!o.status.success());
    assert!(text(&o).contains("--demo is for trying refdesk on this machine"), "{}", text(&o));
    assert!(text(&o).contains("(0.0.0.0:0)") && text(&o).contains("refdesk setup"), "{}", text(&o));
    // With a public URL on loopback: refused for the URL, and it does not
    // say the database holds the demo accounts (it holds nothing yet).
    let o = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--demo", "--listen", "127.0.0.1:0"])
        .env("REFDESK_PUBLIC_URL", "https://ask.example.org")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("refused with a public_url (https://ask.example.org)"), "{}", text(&o));
    assert!(!text(&o).contains("127.0.0.1") && !text(&o).contains("holds the demo"), "{}", text(&o));

    // A database holding the demo accounts: refused too, without --demo.
    let o = refdesk(dir.path(), &["demo"], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = refdesk(dir.path(), &["serve", "--listen", "0.0.0.0:0"], None);
    assert!(!o.status.success());
    assert!(text(&o).contains("demo accounts"), "{}", text(&o));

    // So is a public URL: a service with one is deployed.
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir").arg(dir.path()).args(["serve", "--listen", "127.0.0.1:0"]).stdin(Stdio::null());
    let o = cmd.env("REFDESK_PUBLIC_URL", "https://ask.example.org").output().unwrap();
    assert!(!o.status.success());
    assert!(text(&o).contains("demo accounts"), "{}", text(&o));

    // On loopback it serves; a demo sign-in that came through a proxy, or
    // that names a public host (a tunnel, a rebinding DNS name), is refused;
    // one made here directly is not.
    let server = Server::start(dir.path(), &[], &[]).await;
    let body = json!({"username": "ann", "password": "refdesk-demo"});
    let client = reqwest::Client::new();
    for (header, value) in [("X-Forwarded-For", "203.0.113.9"), ("Host", "refdesk.example.org")] {
        let r = client.post(server.url("/api/login")).header(header, value).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 403, "{header}: {value}");
        assert!(r.text().await.unwrap().contains("demo accounts sign in only from this machine"));
    }
    let r = client.post(server.url("/api/login")).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn the_operator_gives_a_locked_out_admin_a_new_password_and_disables_an_account_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let setup = ["setup", "--cooperative", "C", "--institution", "I", "--library", "c-main", "--library-name", "Main"];
    let o = refdesk(dir.path(), &[&setup[..], &["--admin", "nora"]].concat(), Some(STRONG));
    assert!(o.status.success(), "{}", text(&o));
    const NEW: &str = "harbour light heron 1921";
    // A weak password or an unknown name: refused, nothing changed.
    let o = refdesk(dir.path(), &["user", "password", "nora"], Some("password123"));
    assert!(!o.status.success() && text(&o).contains("password"), "{}", text(&o));
    let o = refdesk(dir.path(), &["user", "password", "nora"], Some("eleven char"));
    assert!(!o.status.success() && text(&o).contains("12 to 256 characters (an admin's"), "{}", text(&o));
    let empty = dir.path().join("empty-password");
    std::fs::write(&empty, "\n").unwrap();
    let o = refdesk(dir.path(), &["user", "password", "nora", "--password-file", empty.to_str().unwrap()], None);
    assert!(!o.status.success() && text(&o).contains("holds no password on its first line"), "{}", text(&o));
    // An editor's trailing space would have been part of the password.
    std::fs::write(&empty, format!("{NEW} \r\n")).unwrap();
    let o = refdesk(dir.path(), &["user", "password", "nora", "--password-file", empty.to_str().unwrap()], None);
    assert!(!o.status.success() && text(&o).contains("begins or ends with a space or tab"), "{}", text(&o));
    // A username that cannot be one is said before any password is asked
    // for (none is given here: it would have been asked for first).
    let o = refdesk(dir.path(), &["user", "add", "Nora Two", "--library", "c-main"], None);
    assert!(!o.status.success() && text(&o).contains("username"), "{}", text(&o));
    assert!(!text(&o).to_lowercase().contains("password"), "{}", text(&o));
    let o = refdesk(dir.path(), &["user", "password", "nobody"], Some(NEW));
    assert!(!o.status.success() && text(&o).contains("there is no staff member \"nobody\""), "{}", text(&o));
    // REFDESK_PASSWORD is taken as a file's line: spaces around it refused,
    // the line end a secret store leaves dropped (signed in with, below).
    for (bad, said) in
        [(format!(" {NEW}"), "begins or ends with a space or tab"), (format!("{NEW}\nmore"), "more than one line")]
    {
        let o = refdesk(dir.path(), &["user", "password", "nora"], Some(&bad));
        assert!(!o.status.success() && text(&o).contains(said), "{}", text(&o));
    }
    // The name as sign-in takes it: "Nora" is nora.
    let o = refdesk(dir.path(), &["user", "password", "Nora"], Some(&format!("{NEW}\r\n")));
    assert!(o.status.success() && text(&o).contains("nora has a new password"), "{}", text(&o));
    // A file Notepad saved begins with a byte-order mark: not part of the
    // password (signed in with, below).
    std::fs::write(&empty, format!("\u{FEFF}{NEW}\r\n")).unwrap();
    let o = refdesk(dir.path(), &["user", "password", "nora", "--password-file", empty.to_str().unwrap()], None);
    assert!(o.status.success() && text(&o).contains("nora has a new password"), "{}", text(&o));

    let server = Server::start(dir.path(), &[], &[]).await;
    let login = |password: &'static str| {
        let url = server.url("/api/login");
        async move {
            let body = json!({"username": "nora", "password": password});
            reqwest::Client::new().post(url).json(&body).send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(login(STRONG).await, 401, "the old password is gone");
    assert_eq!(login(NEW).await, 200);
    // Disabled beside the running service (the same data folder), then enabled.
    let o = refdesk(dir.path(), &["user", "disable", "nora"], None);
    assert!(o.status.success() && text(&o).contains("nora is disabled"), "{}", text(&o));
    // The cooperative's only cooperative admin: done, and said.
    assert!(text(&o).contains("has no enabled cooperative admin now"), "{}", text(&o));
    // Again: nothing to change, and nothing logged (below).
    let o = refdesk(dir.path(), &["user", "disable", "nora"], None);
    assert!(o.status.success() && text(&o).contains("nora was disabled already; nothing changed"), "{}", text(&o));
    // An operator finds the accounts, and which are disabled, without the desk.
    let o = refdesk(dir.path(), &["user", "list"], None);
    let line = text(&o).lines().find(|l| l.trim_start().starts_with("nora ")).map(str::to_owned);
    assert!(o.status.success() && line.as_deref().is_some_and(|l| l.ends_with("(disabled)")), "{}", text(&o));
    assert_ne!(login(NEW).await, 200, "a disabled account signs in no more");
    let o = refdesk(dir.path(), &["user", "enable", "nora"], None);
    assert!(o.status.success() && text(&o).contains("nora is enabled; they may sign in again"), "{}", text(&o));
    assert_eq!(login(NEW).await, 200);
    // The admin log holds each change once: not the disable that changed nothing.
    let nora = sign_in(&server, "nora", NEW).await;
    let log = nora.get(server.url("/api/admin-log")).send().await.unwrap().text().await.unwrap();
    assert_eq!(log.matches(": disabled").count(), 1, "{log}");
    assert_eq!(log.matches(": enabled").count(), 1, "{log}");
}

/// An operator's `sudo refdesk setup` (or `restore`, `user add`) in the
/// data folder of a service that runs as another user is refused before it
/// makes anything, with the line to run instead: a root-owned database
/// kept the service from starting ("Permission denied" on a file plainly
/// there). Run as that user it works; and a database closed to the user a
/// command runs as is refused saying whose it is. Runs as root, as
/// scripts/test.sh does, and as `nobody` through `runuser`.
#[test]
fn root_is_refused_in_a_services_data_folder_and_a_closed_database_is_named() {
    use std::os::unix::fs::{chown, MetadataExt, PermissionsExt};
    assert_eq!(std::fs::metadata("/proc/self").unwrap().uid(), 0, "this test runs as root (scripts/test.sh does)");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    chown(&data, Some(65534), Some(65534)).unwrap();
    let setup = ["setup", "--cooperative", "C", "--institution", "I", "--library", "c-main", "--library-name", "Main"];
    let setup = [&setup[..], &["--admin", "nora"]].concat();
    let o = refdesk(&data, &setup, Some(STRONG));
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("data belongs to user id 65534, and this command runs as root"), "{}", text(&o));
    assert_eq!(std::fs::read_dir(&data).unwrap().count(), 0, "nothing made");
    let as_nobody = |args: &[&str]| {
        Command::new("runuser")
            .args(["-u", "nobody", "--", BIN, "--data-dir"])
            .arg(&data)
            .args(args)
            .env("REFDESK_PASSWORD", STRONG)
            .output()
            .expect("runuser runs")
    };
    let o = as_nobody(&setup);
    assert!(o.status.success(), "as the folder's owner: {}", text(&o));
    let o = as_nobody(&["list"]);
    assert!(o.status.success() && text(&o).contains("c-main"), "{}", text(&o));
    // Root's database (a restore run as root before this refusal), run as
    // the service's user: whose it is, not SQLite's words.
    chown(data.join("refdesk.sqlite3"), Some(0), Some(0)).unwrap();
    let o = as_nobody(&["list"]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("belongs to user id 0 and is closed to user id 65534"), "{}", text(&o));
    // A folder root keeps, holding the service's database: the database's
    // owner counts.
    chown(&data, Some(0), Some(0)).unwrap();
    chown(data.join("refdesk.sqlite3"), Some(65534), Some(65534)).unwrap();
    let o = refdesk(&data, &["list"], None);
    assert!(
        text(&o).contains("refdesk.sqlite3 belongs to user id 65534, and this command runs as root"),
        "{}",
        text(&o)
    );
}
