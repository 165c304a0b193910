//! `spawn_app()` and the typed helpers every test uses.

use futures_util::{SinkExt, StreamExt};
use refdesk_app::{demo, Clock};
use refdesk_server::{AppState, Config};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message as Ws;

/// How long a test waits for something that should happen at once.
const PATIENCE: Duration = Duration::from_secs(10);

/// A running server and its data folder.
pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Every log line of the run, at debug level (shown too when TEST_LOG is
/// set): the privacy test reads them for patron data.
static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

/// Writes a log line into [`LOGS`], and to the test's output with TEST_LOG.
struct Capture;

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        if std::env::var_os("TEST_LOG").is_some() {
            print!("{}", String::from_utf8_lossy(buf));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("debug,sqlx=warn,hyper=info,tungstenite=info,tokio_tungstenite=info,async_nats=info,reqwest=info,rustls=info")
        .with_ansi(false).with_writer(|| Capture).try_init();
}

/// Everything logged so far in this test run.
pub fn captured_logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
}

/// A fresh server with the demo cooperative loaded.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// For a test that writes (or reads) much as staff over HTTP to reach
/// another limit, or signs the same accounts in again and again: a staff
/// member's writes spend a frame budget (`frames_per_second`), their lines
/// the day's (`staff_lines_per_day`), their reads a budget of their own
/// (`staff_reads_per_second`), and an account holds
/// `sign_ins_per_account` sign-ins.
pub fn staff_writes_unbounded(c: &mut Config) {
    c.limits.frames_per_second = 100_000;
    c.limits.frame_burst = 100_000;
    c.limits.staff_lines_per_day = 10_000_000;
    c.limits.staff_reads_per_second = 100_000;
    c.limits.sign_ins_per_account = 1_000;
}

/// A fresh server, with the configuration adjusted by `tweak`.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("a temp folder");
    let app = start(dir, tweak).await;
    demo::load(&app.state.app).await.expect("the demo data loads");
    app
}

/// A fresh server whose clock moves only when the test says so
/// (`app.clock().advance(ms)`): roll-ups and sign-offs without sleeping.
pub async fn spawn_app_with_manual_clock() -> TestApp {
    spawn_app_with_manual_clock_and(|_| {}).await
}

/// A manual clock and a configuration tweak.
pub async fn spawn_app_with_manual_clock_and(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("a temp folder");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    let app = start_with(dir, tweak, Clock::manual(now)).await;
    demo::load(&app.state.app).await.expect("the demo data loads");
    app
}

/// A server on an existing data folder (for restarts).
pub async fn start(dir: TempDir, tweak: impl FnOnce(&mut Config)) -> TestApp {
    start_with(dir, tweak, Clock::system()).await
}

/// The backend under test: the embedded default (SQLite, in-process bus), or
/// with `REFDESK_TEST_BACKEND=postgres` a fresh PostgreSQL database per
/// server (kept for its restarts: its URL is written in the data folder)
/// and the NATS server on 127.0.0.1:4222, on a subject of its own.
async fn backend(config: &mut Config, dir: &std::path::Path) {
    match std::env::var("REFDESK_TEST_BACKEND").as_deref() {
        Err(_) | Ok("sqlite") => {}
        Ok("postgres") => {
            let marker = dir.join("database_url");
            let url = match std::fs::read_to_string(&marker) {
                Ok(url) => url,
                Err(_) => {
                    let server = std::env::var("REFDESK_TEST_POSTGRES")
                        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
                    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
                    let name = format!("refdesk_api_{}_{nanos}", std::process::id());
                    let url = refdesk_store::postgres::create_database(&server, &name)
                        .await
                        .unwrap_or_else(|e| panic!("PostgreSQL must be running at {server}: {e}"));
                    std::fs::write(&marker, &url).unwrap();
                    url
                }
            };
            let subject = url.rsplit('/').next().unwrap_or("x").to_owned();
            config.database_url = Some(url);
            // Two tests run at once, each with its servers: a few connections each.
            config.database_connections = 4;
            config.nats_url = Some("nats://127.0.0.1:4222".into());
            config.nats_subject = format!("test.{subject}");
            // The key the nodes seal envelopes with (required with NATS);
            // the same for every server of the run, like a deployment's.
            config.nats_key = Some("5f0e8a1d3c7b9e2f4a6d8c0b1e3f5a7c9d2e4f6a8b0c1d3e5f7a9b2c4d6e8f01".into());
        }
        Ok(other) => panic!("REFDESK_TEST_BACKEND={other:?}: use sqlite or postgres"),
    }
}

/// A server on a data folder, with a configuration tweak and a clock.
pub async fn start_with(dir: TempDir, tweak: impl FnOnce(&mut Config), clock: Clock) -> TestApp {
    init_logs();
    let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
    // Tests sign many people in from one address; the limits have their own test.
    config.limits.logins_per_minute = 100_000;
    config.limits.starts_per_minute = 100_000;
    config.limits.chats_per_address_per_day = 100_000;
    config.limits.max_waiting_per_address = 100_000;
    // `stop` ends a test's server at once; the drain has its own test
    // (crates/refdesk/tests/multinode.rs), with real processes.
    config.drain_seconds = 0;
    backend(&mut config, dir.path()).await;
    tweak(&mut config);
    let state = refdesk_server::open(&config, clock).await.expect("the store opens");
    // Bound before spawning: the server is ready when this returns. On a
    // port of its own, on loopback unless the test asked for another
    // address (`[::]` for a dual-stack listener).
    let bind = match config.listen.ip() {
        ip if ip.is_unspecified() => std::net::SocketAddr::new(ip, 0),
        _ => std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let listener = tokio::net::TcpListener::bind(bind).await.expect("a port");
    let addr = match listener.local_addr().unwrap() {
        a if a.ip().is_unspecified() => std::net::SocketAddr::from(([127, 0, 0, 1], a.port())),
        a => a,
    };
    let (tx, rx) = oneshot::channel::<()>();
    let serving = state.clone();
    let task = tokio::spawn(async move {
        refdesk_server::run(listener, serving, async move {
            let _ = rx.await;
        })
        .await
        .expect("the server runs");
    });
    TestApp { addr, state, dir, shutdown: Some(tx), task: Some(task) }
}

impl TestApp {
    /// The server's clock (manual in `spawn_app_with_manual_clock`).
    pub fn clock(&self) -> &Clock {
        self.state.app.clock()
    }

    /// Waits (bounded) until `check` holds, re-evaluating it as the server's
    /// background work runs; fails the test with `what` otherwise.
    pub async fn eventually<F, Fut>(&self, what: &str, check: F)
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = std::time::Instant::now() + PATIENCE;
        while !check().await {
            assert!(std::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the server and returns its data folder.
    pub async fn stop(mut self) -> TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(PATIENCE, task)
                .await
                .expect("the server stops")
                .expect("the server task ends cleanly");
        }
        let TestApp { dir, state, .. } = self;
        drop(state);
        dir
    }

    /// A signed-in staff client, on duty (a demo account).
    pub async fn staff(&self, username: &str) -> Staff {
        self.staff_with_password(username, demo::PASSWORD).await
    }

    /// A signed-in staff client, on duty.
    pub async fn staff_with_password(&self, username: &str, password: &str) -> Staff {
        let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let res = http
            .post(self.url("/api/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{username} signs in");
        let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let me: Value = res.json().await.unwrap();
        let staff = Staff { http, cookie, id: me["id"].as_i64().unwrap(), base: self.url(""), addr: self.addr };
        // At the desk, on duty: only staff on duty are offered chats.
        let (status, _) = staff.post("/api/me/availability", json!({"availability": "on_duty"})).await;
        assert_eq!(status, 200);
        staff
    }

    /// A patron starts a chat; returns (session id, token).
    pub async fn start_chat(&self, library: &str, question: &str) -> Patron {
        self.start_chat_with(library, json!({"name": "Pat", "question": question})).await
    }

    /// A patron starts a chat with this pre-chat form.
    pub async fn start_chat_with(&self, library: &str, form: Value) -> Patron {
        let res = reqwest::Client::new()
            .post(self.url(&format!("/api/libraries/{library}/chats")))
            .json(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let v: Value = res.json().await.unwrap();
        Patron {
            session: v["session"].as_i64().unwrap(),
            token: v["token"].as_str().unwrap().to_owned(),
            addr: self.addr,
        }
    }

    /// A patron leaves `question` with a library's offline form (as
    /// `pat@example.org`).
    pub async fn ask_by_form(&self, library: &str, question: &str) {
        let res = reqwest::Client::new()
            .post(self.url(&format!("/api/libraries/{library}/questions")))
            .json(&json!({"email": "pat@example.org", "question": question}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }

    /// A second store on this server's database, publishing nowhere: what
    /// it writes, this server's bus never hears of — as with a write made
    /// by another node whose events were lost on the way.
    pub async fn other_writer(&self) -> std::sync::Arc<dyn refdesk_store::Store> {
        let sink = std::sync::Arc::new(refdesk_store::NoSink);
        match std::fs::read_to_string(self.dir.path().join("database_url")) {
            Ok(url) => {
                let options = refdesk_store::postgres::PgOptions::default();
                std::sync::Arc::new(refdesk_store::postgres::PgStore::open(&url, options, sink).await.unwrap())
            }
            Err(_) => {
                let path = self.dir.path().join("refdesk.sqlite3");
                std::sync::Arc::new(refdesk_store::sqlite::SqliteStore::open(&path, sink).unwrap())
            }
        }
    }

    /// Every stored message of a session, straight from the store.
    pub async fn stored(&self, session: i64) -> Vec<refdesk_domain::chat::Message> {
        self.state.app.store().messages_after(refdesk_domain::ids::SessionId(session), 0, u32::MAX).await.unwrap()
    }
}

/// A signed-in staff member.
pub struct Staff {
    pub http: reqwest::Client,
    pub cookie: String,
    pub id: i64,
    base: String,
    addr: SocketAddr,
}

impl Staff {
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let res = self.http.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        let res = self.http.put(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// The question of a chat, from this staff member's list.
    pub async fn question_of(&self, session: i64) -> Value {
        let (status, list) = self.get("/api/questions?limit=200").await;
        assert_eq!(status, 200, "{list}");
        list.as_array().unwrap().iter().find(|q| q["session"] == session).cloned().expect("the question is in the list")
    }

    /// Acts on a question from the question list.
    pub async fn act(&self, question: i64, action: &str, body: Value) -> (u16, Value) {
        self.post(&format!("/api/questions/{question}/{action}"), body).await
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn accept(&self, session: i64) -> (u16, Value) {
        self.post(&format!("/api/sessions/{session}/accept"), json!(null)).await
    }

    pub async fn socket(&self) -> Socket {
        Socket::connect(&format!("ws://{}/api/ws", self.addr), Some(&self.cookie), None).await
    }

    /// A socket of a page that only reads along (a question's page).
    pub async fn reader_socket(&self) -> Socket {
        let auth = json!({"type": "auth", "reader": true});
        Socket::connect_with(&format!("ws://{}/api/ws", self.addr), Some(&self.cookie), auth).await
    }

    /// A desk's socket that has asked for the queue and read its snapshot
    /// (returned): what it hears next is what changed since.
    pub async fn queue_socket(&self) -> (Socket, Value) {
        let mut ws = self.socket().await;
        ws.send(json!({"type": "queue"})).await;
        let queue = ws.until(|f| f["type"] == "queue").await.pop().unwrap();
        (ws, queue)
    }
}

/// A patron holding a chat token.
pub struct Patron {
    pub session: i64,
    pub token: String,
    /// The server it talks to (changes when a test restarts the server).
    pub addr: SocketAddr,
}

impl Patron {
    pub async fn socket(&self) -> Socket {
        Socket::connect(&format!("ws://{}/api/ws", self.addr), None, Some(&self.token)).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = reqwest::Client::new()
            .get(format!("http://{}{path}", self.addr))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let res = reqwest::Client::new()
            .post(format!("http://{}{path}", self.addr))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }
}

type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client that records every frame it receives.
pub struct Socket {
    ws: Stream,
    /// Every frame received, in order.
    pub frames: Vec<Value>,
    /// The first one, `hello`.
    pub hello: Value,
}

impl Socket {
    /// Connects and authenticates in the first frame: with a patron's
    /// token, or bare (the staff cookie of the upgrade decides).
    pub async fn connect(url: &str, cookie: Option<&str>, token: Option<&str>) -> Socket {
        Socket::connect_with(url, cookie, json!({"type": "auth", "token": token})).await
    }

    /// Connects and authenticates with `auth` as the first frame.
    pub async fn connect_with(url: &str, cookie: Option<&str>, auth: Value) -> Socket {
        let mut s = Socket::opened(url, cookie).await;
        s.send(auth).await;
        s.hello = s.next().await;
        assert_eq!(s.hello["type"], "hello");
        s
    }

    /// Connects, sends `auth`, and returns the first frame the server
    /// answers with (a refusal's `error`, or the `hello`).
    pub async fn first_answer(url: &str, cookie: Option<&str>, auth: Value) -> Value {
        let mut s = Socket::opened(url, cookie).await;
        s.send(auth).await;
        s.next().await
    }

    async fn opened(url: &str, cookie: Option<&str>) -> Socket {
        let mut req = url.into_client_request().unwrap();
        if let Some(c) = cookie {
            req.headers_mut().insert("Cookie", c.parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await.expect("the WebSocket connects");
        Socket { ws, frames: Vec::new(), hello: Value::Null }
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Ws::text(frame.to_string())).await.expect("the frame is sent");
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Ws::text(text.to_owned())).await.expect("the frame is sent");
    }

    /// The next text frame (fails the test after PATIENCE).
    pub async fn next(&mut self) -> Value {
        self.next_within(PATIENCE).await
    }

    /// [`Socket::next`], waiting up to `within`.
    pub async fn next_within(&mut self, within: Duration) -> Value {
        loop {
            let msg = tokio::time::timeout(within, self.ws.next())
                .await
                .expect("a frame arrives in time")
                .expect("the socket is open")
                .expect("the frame is readable");
            if let Ws::Text(t) = msg {
                let v: Value = serde_json::from_str(t.as_str()).expect("frames are JSON");
                self.frames.push(v.clone());
                return v;
            }
        }
    }

    /// Closes from this side (1000) and returns the code of the close frame
    /// the server answers with, or `None` when it dropped the connection
    /// without one.
    pub async fn close_from_here(&mut self) -> Option<u16> {
        use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
        let bye = CloseFrame { code: CloseCode::Normal, reason: "bye".into() };
        self.ws.send(Ws::Close(Some(bye))).await.expect("the close is sent");
        loop {
            match tokio::time::timeout(PATIENCE, self.ws.next()).await.expect("an answer in time") {
                Some(Ok(Ws::Close(frame))) => return Some(frame.map_or(1005, |f| u16::from(f.code))),
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return None,
            }
        }
    }

    /// Whether the server ends the socket within `within`; text frames
    /// until then are kept.
    pub async fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return false,
                Ok(None | Some(Err(_)) | Some(Ok(Ws::Close(_)))) => return true,
                Ok(Some(Ok(Ws::Text(t)))) => {
                    self.frames.push(serde_json::from_str(t.as_str()).expect("frames are JSON"))
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Frames until (and including) the first that matches.
    pub async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        self.until_within(PATIENCE, pred).await
    }

    /// [`Socket::until`], waiting up to `within` for each frame.
    pub async fn until_within(&mut self, within: Duration, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let f = self.next_within(within).await;
            let done = pred(&f);
            out.push(f);
            if done {
                return out;
            }
        }
    }

    /// Resumes a session and returns the events replayed before `synced`.
    pub async fn resume(&mut self, session: Option<i64>, after: u64) -> Vec<Value> {
        let mut frame = json!({"type": "resume", "after": after});
        if let Some(s) = session {
            frame["session"] = json!(s);
        }
        self.send(frame).await;
        let frames = self.until(|f| f["type"] == "synced" || f["type"] == "error").await;
        let last = frames.last().unwrap();
        assert_eq!(last["type"], "synced", "resume succeeds: {last}");
        frames.into_iter().filter(|f| f["type"] == "event").collect()
    }

    /// Sends a chat line and waits for its ack (or error).
    pub async fn say(&mut self, session: Option<i64>, kind: &str, body: &str, client_id: &str) -> Value {
        let mut frame = json!({"type": "send", "kind": kind, "body": body, "client_id": client_id});
        if let Some(s) = session {
            frame["session"] = json!(s);
        }
        self.send(frame).await;
        let frames = self.until(|f| (f["type"] == "ack" || f["type"] == "error") && f["client_id"] == client_id).await;
        frames.last().unwrap().clone()
    }

    /// Waits for the event with this sequence number; returns every event up to it.
    pub async fn events_until_seq(&mut self, seq: u64) -> Vec<Value> {
        let frames = self.until(|f| f["type"] == "event" && f["seq"].as_u64().is_some_and(|s| s >= seq)).await;
        frames.into_iter().filter(|f| f["type"] == "event").collect()
    }

    /// Every event frame received so far.
    pub fn events(&self) -> Vec<&Value> {
        self.frames.iter().filter(|f| f["type"] == "event").collect()
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// A real SMTP server (Python's aiosmtpd, installed by `scripts/test.sh`)
/// storing what it receives in a maildir.
pub struct SmtpServer {
    pub port: u16,
    maildir: TempDir,
    child: Option<std::process::Child>,
}

/// A loopback port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl SmtpServer {
    /// Starts one on a free port.
    pub async fn start() -> SmtpServer {
        SmtpServer::start_on(free_port()).await
    }

    /// Starts one on `port`.
    pub async fn start_on(port: u16) -> SmtpServer {
        let mut s = SmtpServer { port, maildir: tempfile::tempdir().unwrap(), child: None };
        s.up().await;
        s
    }

    /// (Re)starts the server process and waits until it accepts connections.
    pub async fn up(&mut self) {
        let child = std::process::Command::new("python3")
            .args([
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{}", self.port),
                "-c",
                "aiosmtpd.handlers.Mailbox",
            ])
            .arg(self.maildir.path().join("box"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd is installed (scripts/test.sh installs it)");
        self.child = Some(child);
        let deadline = std::time::Instant::now() + PATIENCE;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "aiosmtpd did not start on port {}", self.port);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Starts one on a free port that refuses every recipient with `reply`,
    /// in which `{addr}` stands for the address refused (as real servers
    /// quote it), and writes each address it refused to a file.
    pub async fn start_refusing(reply: &str) -> SmtpServer {
        let port = free_port();
        let maildir = tempfile::tempdir().unwrap();
        let script = r#"
import sys, time
from aiosmtpd.controller import Controller
port, reply, seen = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class Refusing:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with open(seen, "a") as f:
            f.write(address + "\n")
        return reply.replace("{addr}", address)
Controller(Refusing(), hostname="127.0.0.1", port=port).start()
while True:
    time.sleep(3600)
"#;
        let child = std::process::Command::new("python3")
            .args(["-c", script, &port.to_string(), reply])
            .arg(maildir.path().join("refused"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 with aiosmtpd is installed (scripts/test.sh installs it)");
        let deadline = std::time::Instant::now() + PATIENCE;
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "aiosmtpd did not start on port {port}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        SmtpServer { port, maildir, child: Some(child) }
    }

    /// The recipients a server of [`SmtpServer::start_refusing`] refused so far.
    pub fn refused(&self) -> Vec<String> {
        let text = std::fs::read_to_string(self.maildir.path().join("refused")).unwrap_or_default();
        text.lines().map(str::to_owned).collect()
    }

    /// Stops the server process.
    pub fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The SMTP URL refdesk should use.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, as raw text.
    pub fn messages(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            if let Ok(entries) = std::fs::read_dir(self.maildir.path().join("box").join(sub)) {
                for e in entries.flatten() {
                    out.push(std::fs::read_to_string(e.path()).unwrap_or_default());
                }
            }
        }
        out
    }

    /// Waits until at least `n` messages have arrived; returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            assert!(std::time::Instant::now() < deadline, "expected {n} e-mails, got {}", got.len());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.down();
    }
}

/// Decodes an e-mail's body (quoted-printable or base64 as lettre chose) well
/// enough to search it for text.
pub fn mail_text(raw: &str) -> String {
    let (head, body) = raw.split_once("\r\n\r\n").or_else(|| raw.split_once("\n\n")).unwrap_or((raw, ""));
    let lower = head.to_ascii_lowercase();
    if lower.contains("content-transfer-encoding: base64") {
        let clean: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        String::from_utf8_lossy(&base64_decode(&clean)).into_owned()
    } else if lower.contains("quoted-printable") {
        quoted_printable(body)
    } else {
        body.to_owned()
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn quoted_printable(s: &str) -> String {
    let joined = s.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
