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

/// Logs are silent unless TEST_LOG is set.
fn init_logs() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_env_filter("debug").with_test_writer().try_init();
    }
}

/// A fresh server with the demo cooperative loaded.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// A fresh server, with the configuration adjusted by `tweak`.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("a temp folder");
    let app = start(dir, tweak).await;
    demo::load(&app.state.app).await.expect("the demo data loads");
    app
}

/// A server on an existing data folder (for restarts).
pub async fn start(dir: TempDir, tweak: impl FnOnce(&mut Config)) -> TestApp {
    init_logs();
    let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
    tweak(&mut config);
    let state = refdesk_server::open(&config, Clock::system()).expect("the store opens");
    // Bound before spawning: the server is ready when this returns.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let addr = listener.local_addr().unwrap();
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

    /// A signed-in staff client.
    pub async fn staff(&self, username: &str) -> Staff {
        let http = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let res = http
            .post(self.url("/api/login"))
            .json(&json!({"username": username, "password": demo::PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{username} signs in");
        let cookie = res.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let me: Value = res.json().await.unwrap();
        Staff { http, cookie, id: me["id"].as_i64().unwrap(), base: self.url(""), addr: self.addr }
    }

    /// A patron starts a chat; returns (session id, token).
    pub async fn start_chat(&self, library: &str, question: &str) -> Patron {
        let res = reqwest::Client::new()
            .post(self.url(&format!("/api/libraries/{library}/chats")))
            .json(&json!({"name": "Pat", "question": question}))
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

    /// Every stored message of a session, straight from the store.
    pub async fn stored(&self, session: i64) -> Vec<refdesk_domain::chat::Message> {
        self.state.app.store.messages_after(refdesk_domain::ids::SessionId(session), 0, u32::MAX).await.unwrap()
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

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let res = self.http.get(format!("{}{path}", self.base)).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    pub async fn accept(&self, session: i64) -> (u16, Value) {
        self.post(&format!("/api/sessions/{session}/accept"), json!(null)).await
    }

    pub async fn socket(&self) -> Socket {
        Socket::connect(&format!("ws://{}/api/ws", self.addr), Some(&self.cookie)).await
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
        Socket::connect(&format!("ws://{}/api/ws?token={}", self.addr, self.token), None).await
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
}

type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket client that records every frame it receives.
pub struct Socket {
    ws: Stream,
    /// Every frame received, in order.
    pub frames: Vec<Value>,
}

impl Socket {
    pub async fn connect(url: &str, cookie: Option<&str>) -> Socket {
        let mut req = url.into_client_request().unwrap();
        if let Some(c) = cookie {
            req.headers_mut().insert("Cookie", c.parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await.expect("the WebSocket connects");
        let mut s = Socket { ws, frames: Vec::new() };
        let hello = s.next().await;
        assert_eq!(hello["type"], "hello");
        s
    }

    pub async fn send(&mut self, frame: Value) {
        self.ws.send(Ws::text(frame.to_string())).await.expect("the frame is sent");
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws.send(Ws::text(text.to_owned())).await.expect("the frame is sent");
    }

    /// The next text frame (fails the test after PATIENCE).
    pub async fn next(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.ws.next())
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

    /// Frames until (and including) the first that matches.
    pub async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut out = Vec::new();
        loop {
            let f = self.next().await;
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
