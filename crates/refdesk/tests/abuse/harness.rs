//! Starting the real binary on the demo data (loopback only), and the
//! clients the attacks use.

#![allow(dead_code)]

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message as Ws;

pub const BIN: &str = env!("CARGO_BIN_EXE_refdesk");
/// The demo accounts' password (they sign in only from loopback).
pub const DEMO: &str = "refdesk-demo";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `refdesk serve --demo` on its own data folder, killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts with the configuration file `toml` (may be empty) and extra
    /// environment variables.
    pub async fn start(toml: &str, env: &[(&str, &str)]) -> Server {
        Server::start_logged(toml, env, None).await
    }

    /// As [`Server::start`], with the server's log (its standard output,
    /// at `REFDESK_LOG=warn`) written to `log` if given.
    pub async fn start_logged(toml: &str, env: &[(&str, &str)], log: Option<&Path>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("refdesk.toml");
        std::fs::write(&config, toml).unwrap();
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(&config).arg("--data-dir").arg(dir.path().join("data"));
        cmd.args(["serve", "--demo", "--listen", &listen]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null()).env("REFDESK_LOG", "warn").env_remove("REFDESK_CONFIG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        // Log lines go to standard error (the start-up banner to standard output).
        if let Some(log) = log {
            cmd.stderr(std::fs::File::create(log).unwrap());
        }
        let server = Server { child: cmd.spawn().expect("refdesk serve starts"), port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while reqwest::get(server.url("/readyz")).await.map(|r| r.status() != 200).unwrap_or(true) {
            assert!(Instant::now() < deadline, "refdesk serve did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The binary run again with this server's configuration file and data
    /// folder (`refdesk --config … --data-dir … ARGS`), e.g. a second
    /// `serve`, or an operator's command beside the server; output captured.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(self._dir.path().join("refdesk.toml"));
        cmd.arg("--data-dir").arg(self.data_path()).args(args);
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.env("REFDESK_LOG", "warn").env_remove("REFDESK_CONFIG");
        cmd
    }

    /// The data folder the server was started on.
    pub fn data_path(&self) -> std::path::PathBuf {
        self._dir.path().join("data")
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/api/ws", self.port)
    }

    /// The server process's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    /// The most resident memory the server process has had, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }

    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).expect("the field in /proc/PID/status");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Whether `/healthz` answers 200 within `within`.
    pub async fn healthy_within(&self, within: Duration) -> bool {
        let client = reqwest::Client::builder().timeout(within).build().unwrap();
        client.get(self.url("/healthz")).send().await.is_ok_and(|r| r.status() == 200)
    }
}

/// A signed-in staff member's HTTP client (cookie kept).
pub async fn sign_in(server: &Server, username: &str) -> reqwest::Client {
    let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let r = client
        .post(server.url("/api/login"))
        .json(&json!({"username": username, "password": DEMO}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{username} signs in");
    client
}

/// The sign-in cookie's value, for a staff WebSocket.
pub async fn sign_in_cookie(server: &Server, username: &str) -> String {
    let r = reqwest::Client::new()
        .post(server.url("/api/login"))
        .json(&json!({"username": username, "password": DEMO}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{username} signs in");
    let cookie = r.headers().get("set-cookie").expect("a sign-in cookie").to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// POSTs JSON; the status and the JSON answer (Null when none).
pub async fn post(client: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = client.post(url).json(&body).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A patron starts a chat at `library`: (session id, token).
pub async fn start_chat(server: &Server, library: &str, question: &str) -> (i64, String) {
    let (status, v) = post(
        &reqwest::Client::new(),
        server.url(&format!("/api/libraries/{library}/chats")),
        json!({"name": "Pat", "question": question}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    (v["session"].as_i64().unwrap(), v["token"].as_str().unwrap().to_owned())
}

pub type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A patron's socket, authenticated with the chat's token.
pub async fn patron_socket(server: &Server, token: &str) -> Socket {
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url()).await.unwrap();
    ws.send(Ws::text(json!({"type": "auth", "token": token}).to_string())).await.unwrap();
    next_of(&mut ws, "hello", |_| true).await;
    ws
}

/// A staff socket, authenticated with the sign-in cookie.
pub async fn staff_socket(server: &Server, cookie: &str) -> Socket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = server.ws_url().into_client_request().unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Ws::text(json!({"type": "auth"}).to_string())).await.unwrap();
    next_of(&mut ws, "hello", |_| true).await;
    ws
}

/// Sends one JSON frame.
pub async fn send(ws: &mut Socket, frame: Value) {
    ws.send(Ws::text(frame.to_string())).await.unwrap();
}

/// The next frame of `kind` that `pred` accepts (others are skipped).
pub async fn next_of(ws: &mut Socket, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = tokio::time::timeout(left, ws.next())
            .await
            .unwrap_or_else(|_| panic!("a {kind} frame in time"))
            .expect("the socket is open")
            .unwrap();
        if let Ws::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            if v["type"] == kind && pred(&v) {
                return v;
            }
        }
    }
}

/// A TCP connection from another loopback address (all of 127.0.0.0/8 is
/// this machine's), so that per-address limits can be tried.
pub async fn connect_from(server: &Server, from: [u8; 4]) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::from((from, 0)))?;
    socket.connect(std::net::SocketAddr::from(([127, 0, 0, 1], server.port))).await
}

/// A reqwest client whose connections come from `from`.
pub fn client_from(from: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder().local_address(std::net::IpAddr::from(from)).build().unwrap()
}

pub fn data_dir(_server: &Server) -> &Path {
    _server._dir.path()
}

/// A WebSocket to `/api/ws` over a TCP connection from `from`, with the
/// sign-in `cookie` if any and, if given, a small receive buffer (a reader
/// that means to stop reading asks for one: the server then fills its own
/// buffers instead of the kernel's). Not authenticated yet.
pub async fn ws_from(server: &Server, from: [u8; 4], cookie: Option<&str>, rcvbuf: Option<u32>) -> Socket {
    ws_to(server.port, from, cookie, rcvbuf).await
}

/// [`ws_from`] by port, for tasks that do not hold the [`Server`].
pub async fn ws_to(port: u16, from: [u8; 4], cookie: Option<&str>, rcvbuf: Option<u32>) -> Socket {
    match try_ws_to(port, from, cookie, rcvbuf).await {
        Ok(ws) => ws,
        Err(status) => panic!("the upgrade was refused: {status}"),
    }
}

/// [`ws_to`], or the HTTP status of a refused upgrade.
pub async fn try_ws_to(port: u16, from: [u8; 4], cookie: Option<&str>, rcvbuf: Option<u32>) -> Result<Socket, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Error;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(size) = rcvbuf {
        socket.set_recv_buffer_size(size).unwrap();
    }
    socket.bind(std::net::SocketAddr::from((from, 0))).unwrap();
    let tcp = socket.connect(std::net::SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
    // As a browser does: small frames go out at once.
    tcp.set_nodelay(true).unwrap();
    let mut req = format!("ws://127.0.0.1:{port}/api/ws").into_client_request().unwrap();
    if let Some(cookie) = cookie {
        req.headers_mut().insert("cookie", cookie.parse().unwrap());
    }
    match tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(tcp)).await {
        Ok((ws, _)) => Ok(ws),
        Err(Error::Http(refused)) => Err(refused.status().as_u16()),
        Err(e) => panic!("the upgrade failed: {e}"),
    }
}

/// The first text frame as JSON (control frames skipped), or the close
/// frame's (code, reason) if the server closes first; `None` when the
/// connection ends without one. Waits at most `within`.
pub async fn first_answer(ws: &mut Socket, within: Duration) -> Result<Value, Option<(u16, String)>> {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => panic!("no answer within {within:?}"),
            Ok(Some(Ok(Ws::Text(t)))) => return Ok(serde_json::from_str(t.as_str()).unwrap()),
            Ok(Some(Ok(Ws::Close(frame)))) => return Err(frame.map(|f| (u16::from(f.code), f.reason.to_string()))),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return Err(None),
        }
    }
}

/// Reads until the server closes: the close frame's (code, reason), if it
/// sent one, and the text frames before it. Panics if still open after `within`.
pub async fn until_closed(ws: &mut Socket, within: Duration) -> (Option<(u16, String)>, Vec<Value>) {
    let deadline = Instant::now() + within;
    let mut frames = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, ws.next()).await {
            Err(_) => panic!("the socket was still open after {within:?}"),
            Ok(Some(Ok(Ws::Text(t)))) => frames.push(serde_json::from_str(t.as_str()).unwrap()),
            Ok(Some(Ok(Ws::Close(frame)))) => {
                return (frame.map(|f| (u16::from(f.code), f.reason.to_string())), frames)
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(_)) | None) => return (None, frames),
        }
    }
}
