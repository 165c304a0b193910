//! The data folder: one `refdesk serve` per SQLite data folder. A second
//! server started there by mistake (a second terminal, a unit file and a
//! hand-started copy) refuses to start and says why; the first goes on
//! serving. The operator's commands still run beside the server.

use crate::harness::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// Waits for `child` to exit (at most `within`); kills it and fails if it
/// does not. Returns its exit status and everything it printed.
fn exits_within(mut child: std::process::Child, within: Duration) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            return (status, text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("still running after {within:?}: {}", String::from_utf8_lossy(&out.stdout));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn a_second_serve_on_one_data_folder_refuses_to_start_and_the_first_keeps_serving() {
    let server = Server::start("", &[]).await;
    let (session, _token) = start_chat(&server, "riverside-main", "Before the second server").await;

    let port = free_port();
    let second = server.command(&["serve", "--listen", &format!("127.0.0.1:{port}")]).spawn().unwrap();
    let (status, said) = exits_within(second, Duration::from_secs(30));
    assert!(!status.success(), "the second serve fails: {said}");
    assert!(said.contains("another refdesk serve"), "a clear message: {said}");
    assert!(said.contains(&format!("(process {})", server.child.id())), "naming the holder: {said}");
    assert!(said.contains(&server.data_path().display().to_string()), "and the folder: {said}");
    assert!(reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.is_err(), "it never listened");
    // The usual mistake: the same configuration, so the same port too. The
    // port is taken, and that is said as the folder's being in use, not
    // only as an address in use.
    let same = server.command(&["serve", "--listen", &format!("127.0.0.1:{}", server.port)]).spawn().unwrap();
    let (status, said) = exits_within(same, Duration::from_secs(30));
    assert!(!status.success(), "the second serve fails: {said}");
    assert!(said.contains("another refdesk serve"), "a clear message: {said}");
    assert!(said.contains(&format!("(process {})", server.child.id())), "naming the holder: {said}");

    // The first serves on: ready, the chat from before is still waiting, a
    // new one starts, and a librarian accepts both.
    assert_eq!(reqwest::get(server.url("/readyz")).await.unwrap().status(), 200);
    let (later, _) = start_chat(&server, "riverside-main", "After the second server").await;
    let ann = sign_in(&server, "ann").await;
    let (status, _) = post(&ann, server.url("/api/me/availability"), json!({"availability": "on_duty"})).await;
    assert_eq!(status, 200);
    for s in [session, later] {
        let (status, v) = post(&ann, server.url(&format!("/api/sessions/{s}/accept")), json!(null)).await;
        assert_eq!(status, 200, "{v}");
    }

    // An operator's command is no server: it runs beside this one (SQLite
    // locks each write) and the server sees what it did.
    let add =
        server.command(&["library", "add", "annex", "--name", "The Annex", "--institution", "1"]).spawn().unwrap();
    let (status, said) = exits_within(add, Duration::from_secs(30));
    assert!(status.success(), "library add beside a running server: {said}");
    let r = reqwest::get(server.url("/api/libraries/annex/status")).await.unwrap();
    assert_eq!(r.status(), 200, "the server sees the new library");
}

#[tokio::test]
async fn once_the_first_server_is_gone_the_folder_serves_again() {
    let mut server = Server::start("", &[]).await;
    // Killed outright: no clean shutdown, the lock file is left behind. The
    // lock was the process's, and it went with it.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    assert!(server.data_path().join("refdesk.lock").exists());

    let port = free_port();
    let mut again = server.command(&["serve", "--listen", &format!("127.0.0.1:{port}")]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://127.0.0.1:{port}/readyz");
    while reqwest::get(&url).await.map(|r| r.status() != 200).unwrap_or(true) {
        if let Some(status) = again.try_wait().unwrap() {
            panic!("the new server exited ({status}) although the old one is gone");
        }
        assert!(Instant::now() < deadline, "the new server did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = again.kill();
    let _ = again.wait();
}
