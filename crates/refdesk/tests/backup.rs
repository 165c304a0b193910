//! `refdesk backup` and `refdesk restore` with the real binary.
//!
//! The main story: a server on the demo data, librarians' messages being
//! sent into several chats at once; `refdesk backup` run while they go on;
//! the server killed; the backup restored into a new data folder and served
//! from there. Every message acknowledged before the backup began is in it
//! (I2: acknowledged means committed, and the backup is one snapshot taken
//! after). And the refusals: an existing file is not overwritten, a restore
//! is refused while a server runs, a file that is not a refdesk database is
//! not restored — and in each case nothing is changed.

use serde_json::{json, Value};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_refdesk");
const DEMO: &str = "refdesk-demo";
/// Chats written to at once during the backup.
const CHATS: usize = 6;

/// Runs `refdesk --data-dir DIR ARGS…`.
fn refdesk(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir").arg(dir).args(args).stdin(Stdio::null());
    cmd.env_remove("REFDESK_CONFIG").env_remove("REFDESK_DATABASE_URL").env("REFDESK_LOG", "warn");
    cmd.output().expect("refdesk runs")
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The names in a folder, and the database's bytes: what "nothing changed"
/// compares.
fn snapshot(dir: &Path) -> (Vec<String>, Vec<u8>) {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    (names, std::fs::read(dir.join("refdesk.sqlite3")).unwrap())
}

/// A `refdesk serve` on loopback, killed (SIGKILL) when dropped.
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
    async fn start(dir: &Path, extra: &[&str]) -> Server {
        Server::start_with(dir, extra, &[]).await
    }

    /// Started with `env` set too.
    async fn start_with(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = Command::new(BIN);
        cmd.arg("--data-dir").arg(dir).args(["serve", "--listen", &listen]).args(extra);
        cmd.stdout(Stdio::null()).stderr(Stdio::null()).env("REFDESK_LOG", "warn");
        cmd.env_remove("REFDESK_CONFIG").env_remove("REFDESK_DATABASE_URL");
        // The load is Ann's lines over HTTP, as fast as they are acknowledged.
        cmd.env("REFDESK_FRAMES_PER_SECOND", "100000").env("REFDESK_FRAME_BURST", "100000");
        cmd.env("REFDESK_STAFF_LINES_PER_DAY", "10000000")
            .env("REFDESK_STAFF_READS_PER_SECOND", "100000")
            .env("REFDESK_SIGN_INS_PER_ACCOUNT", "1000");
        cmd.envs(env.iter().copied());
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

    /// Ann, signed in and on duty.
    async fn ann(&self) -> reqwest::Client {
        let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let login = json!({"username": "ann", "password": DEMO});
        assert_eq!(client.post(self.url("/api/login")).json(&login).send().await.unwrap().status(), 200);
        let duty = json!({"availability": "on_duty"});
        assert_eq!(client.post(self.url("/api/me/availability")).json(&duty).send().await.unwrap().status(), 200);
        client
    }

    /// A patron's chat at riverside-main, accepted by `ann`; its id.
    async fn chat(&self, ann: &reqwest::Client, n: usize) -> i64 {
        let start = json!({"name": format!("Patron {n}"), "question": "Where are the 1889 shore surveys?"});
        let r = reqwest::Client::new()
            .post(self.url("/api/libraries/riverside-main/chats"))
            .json(&start)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let session = r.json::<Value>().await.unwrap()["session"].as_i64().unwrap();
        let r = ann.post(self.url(&format!("/api/sessions/{session}/accept"))).send().await.unwrap();
        assert_eq!(r.status(), 200, "ann accepts chat {session}");
        session
    }
}

/// Signs `who` in.
async fn signed_in(server: &Server, who: &str) -> reqwest::Client {
    let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
    let login = json!({"username": who, "password": DEMO});
    assert_eq!(client.post(server.url("/api/login")).json(&login).send().await.unwrap().status(), 200);
    client
}

/// A patron's chat at riverside-main, with a transcript asked for to
/// `email`, accepted by `ann` and ended by the patron; its id.
async fn ended_chat(server: &Server, ann: &reqwest::Client, name: &str, email: &str) -> i64 {
    let start = json!({"name": name, "email": email, "question": format!("I am {name}: where are the shore surveys?")});
    let r = reqwest::Client::new()
        .post(server.url("/api/libraries/riverside-main/chats"))
        .json(&start)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let started = r.json::<Value>().await.unwrap();
    let (session, token) = (started["session"].as_i64().unwrap(), started["token"].as_str().unwrap().to_owned());
    let r = ann.post(server.url(&format!("/api/sessions/{session}/accept"))).send().await.unwrap();
    assert_eq!(r.status(), 200, "ann accepts chat {session}");
    let patron = reqwest::Client::new();
    for (path, body) in [("/api/chat/transcript", json!({"email": email})), ("/api/chat/end", json!(null))] {
        let r = patron.post(server.url(path)).bearer_auth(&token).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}: {}", r.text().await.unwrap_or_default());
    }
    session
}

/// The e-mail files written in `dir`'s `mail/` folder, as text.
fn mail_files(dir: &Path) -> Vec<String> {
    let Ok(files) = std::fs::read_dir(dir.join("mail")) else { return Vec::new() };
    files.map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap()).collect()
}

/// One acknowledged message: its chat, its client id, and when the answer
/// (sent after the commit) arrived.
struct Acked {
    session: i64,
    client_id: String,
    at: Instant,
}

/// Sends `ann`'s messages into `session` one after another, each after the
/// last is acknowledged, until `stop`; counts them in `acked`.
async fn keep_sending(
    url: String,
    ann: reqwest::Client,
    session: i64,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
) -> Vec<Acked> {
    let mut done = Vec::new();
    for i in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let client_id = format!("s{session}-{i}");
        let body = json!({"body": format!("line {i} of chat {session}"), "client_id": client_id});
        let r = ann.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
        done.push(Acked { session, client_id, at: Instant::now() });
        acked.fetch_add(1, Ordering::Relaxed);
    }
    done
}

/// Waits (without a fixed sleep for timing) until `acked` reaches `n`.
async fn until(acked: &AtomicUsize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::Relaxed) < n {
        assert!(Instant::now() < deadline, "the load stalled at {} messages", acked.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Client ids of the messages stored in the database at `path`, by chat;
/// and that the database passes SQLite's integrity check.
fn stored(path: &Path) -> HashSet<(i64, String)> {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(check, "ok");
    let mut st = conn.prepare("SELECT session_id, client_id FROM messages WHERE client_id IS NOT NULL").unwrap();
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_every_message_acknowledged_before_it() {
    let live = tempfile::tempdir().unwrap();
    let server = Server::start(live.path(), &["--demo"]).await;
    let ann = server.ann().await;
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicUsize::new(0));
    let mut load = Vec::new();
    for n in 0..CHATS {
        let session = server.chat(&ann, n).await;
        let url = server.url(&format!("/api/sessions/{session}/messages"));
        load.push(tokio::spawn(keep_sending(url, ann.clone(), session, stop.clone(), acked.clone())));
    }
    until(&acked, 300).await;

    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("refdesk-backup.sqlite3");
    // Counted first: each of these was acknowledged before `began`.
    let before = acked.load(Ordering::Relaxed);
    let began = Instant::now();
    let (dir, to) = (live.path().to_owned(), file.clone());
    let out =
        tokio::task::spawn_blocking(move || refdesk(&dir, &["backup", "--to", to.to_str().unwrap()])).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("integrity check ok"), "{}", text(&out));
    // The load went on through the backup and after it.
    until(&acked, acked.load(Ordering::Relaxed) + 100).await;
    stop.store(true, Ordering::Relaxed);
    let mut sent = Vec::new();
    for task in load {
        sent.extend(task.await.unwrap());
    }
    drop(server);

    let restored = tempfile::tempdir().unwrap();
    let data = restored.path().join("data");
    let out = refdesk(&data, &["restore", "--from", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("there was no database there before"), "{}", text(&out));
    // What to run next names the same data folder, with the e-mail held.
    let next = format!("`REFDESK_MAIL_HOLD=true refdesk --data-dir {} serve`", data.display());
    // (No journal was there: the erasures since, if any, are the operator's to repeat.)
    assert!(text(&out).contains(&next), "{}", text(&out));
    let in_backup = stored(&data.join("refdesk.sqlite3"));
    let due: Vec<&Acked> = sent.iter().filter(|m| m.at < began).collect();
    assert!(due.len() >= before, "{} acknowledged before the backup, {before} counted", due.len());
    for m in &due {
        assert!(
            in_backup.contains(&(m.session, m.client_id.clone())),
            "{} in chat {} is missing",
            m.client_id,
            m.session
        );
    }
    assert!(sent.len() > due.len() + 100, "messages were sent during and after the backup");

    // The restored folder serves: the chats go on where the backup left them.
    let server = Server::start(&data, &[]).await;
    let ann = server.ann().await;
    let session = due[0].session;
    let body = json!({"body": "Back after the restore.", "client_id": "after-restore"});
    let r = ann.post(server.url(&format!("/api/sessions/{session}/messages"))).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn backup_and_restore_refuse_what_would_lose_data_and_change_nothing() {
    let live = tempfile::tempdir().unwrap();
    let server = Server::start(live.path(), &["--demo"]).await;
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("nightly.sqlite3");
    let arg = |p: &PathBuf| p.to_str().unwrap().to_owned();

    // An existing file is kept, unless --force.
    std::fs::write(&file, "last night's").unwrap();
    let out = refdesk(live.path(), &["backup", "--to", &arg(&file)]);
    assert!(!out.status.success());
    assert!(text(&out).contains("already exists") && text(&out).contains("--force"), "{}", text(&out));
    assert_eq!(std::fs::read(&file).unwrap(), b"last night's");
    let out = refdesk(live.path(), &["backup", "--to", &arg(&file), "--force"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("warning"), "{}", text(&out));
    // A device or a pipe (/dev/null, say) is never replaced, --force or not.
    let fifo = backups.path().join("a-pipe");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let out = refdesk(live.path(), &["backup", "--to", &arg(&fifo), "--force"]);
    assert!(!out.status.success() && text(&out).contains("is not a regular file"), "{}", text(&out));
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&std::fs::symlink_metadata(&fifo).unwrap().file_type()));
    // A copy inside the data folder is made, and said to be in the wrong
    // place (the folder's disk, and out of retention's and erasures' reach).
    std::fs::create_dir(live.path().join("copies")).unwrap();
    let out = refdesk(live.path(), &["backup", "--to", &arg(&live.path().join("copies/extra.sqlite3"))]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("is inside the data folder") && text(&out).contains("move it elsewhere"),
        "{}",
        text(&out)
    );
    std::fs::remove_dir_all(live.path().join("copies")).unwrap();

    // Nor, --force or not, the files SQLite keeps beside the database
    // (a copy in place of the log would break it).
    let wal = live.path().join("refdesk.sqlite3-wal");
    for (to, part) in [
        (wal.clone(), "write-ahead log"),
        (live.path().join("refdesk.sqlite3-shm"), "shared-memory index"),
        (live.path().join("refdesk.sqlite3-journal"), "rollback journal"),
    ] {
        let to_arg = arg(&to);
        for args in [vec!["backup", "--to", &to_arg, "--force"], vec!["backup", "--to", &to_arg]] {
            let out = refdesk(live.path(), &args);
            assert!(!out.status.success(), "{}", to.display());
            assert!(text(&out).contains(&format!("is the database's {part}")), "{}", text(&out));
        }
    }
    assert!(!live.path().join("refdesk.sqlite3-journal").exists());
    let log = std::fs::read(&wal).unwrap_or_default();
    assert!(!log.starts_with(b"SQLite format 3"), "the log is still a log");

    // No restore under a running server.
    let was = snapshot(live.path());
    let out = refdesk(live.path(), &["restore", "--from", &arg(&file)]);
    assert!(!out.status.success());
    assert!(text(&out).contains("needs the service stopped"), "{}", text(&out));
    assert!(text(&out).contains(&format!("a refdesk serve (process {})", server.child.id())), "{}", text(&out));
    assert!(!text(&out).contains("--data-dir"), "no advice meant for a second server: {}", text(&out));
    assert_eq!(snapshot(live.path()).0, was.0);
    drop(server);

    // Nor from the database itself (it would be copied onto itself, and
    // set aside beside itself).
    let was = snapshot(live.path());
    let out = refdesk(live.path(), &["restore", "--from", &arg(&live.path().join("refdesk.sqlite3"))]);
    assert!(!out.status.success());
    assert!(text(&out).contains("is the database itself"), "{}", text(&out));
    assert_eq!(snapshot(live.path()), was);

    // A folder given as the backup's file is said to be one, --force or
    // not (it failed renaming the copy onto it).
    let out = refdesk(live.path(), &["backup", "--to", &arg(&backups.path().to_path_buf()), "--force"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("is a folder: give the backup's file in it"), "{}", text(&out));

    // A backup into a folder that is not there says which folder.
    let nowhere = backups.path().join("no-such-folder");
    let out = refdesk(live.path(), &["backup", "--to", &arg(&nowhere.join("x.sqlite3"))]);
    assert!(!out.status.success());
    assert!(text(&out).contains(&format!("the folder {} does not exist", nowhere.display())), "{}", text(&out));

    // Nor of a file that is not a refdesk database.
    let junk = backups.path().join("notes.txt");
    std::fs::write(&junk, "not a database, just notes ".repeat(400)).unwrap();
    let was = snapshot(live.path());
    let out = refdesk(live.path(), &["restore", "--from", &arg(&junk)]);
    assert!(!out.status.success());
    assert!(text(&out).contains("nothing was changed"), "{}", text(&out));
    assert!(text(&out).contains("not a usable SQLite database"), "{}", text(&out));
    assert_eq!(snapshot(live.path()), was);

    // Nor of a file that is not there: not even a data folder is made for it.
    let fresh = backups.path().join("mistyped-data-folder");
    let out = refdesk(&fresh, &["restore", "--from", &arg(&backups.path().join("no-such-backup"))]);
    assert!(!out.status.success());
    assert!(text(&out).contains("nothing was changed"), "{}", text(&out));
    assert!(!fresh.exists(), "a data folder was made for a backup that is not there");
    // Nor for one that is there but no refdesk database.
    let out = refdesk(&fresh, &["restore", "--from", &arg(&junk)]);
    assert!(!out.status.success());
    assert!(text(&out).contains("nothing was changed"), "{}", text(&out));
    assert!(!fresh.exists(), "a data folder was left behind by a restore that failed");
    let out = refdesk(&fresh, &["restore", "--from", &arg(&backups.path().to_path_buf())]);
    assert!(!out.status.success());
    assert!(text(&out).contains("not a file"), "{}", text(&out));
    assert!(!fresh.exists(), "a data folder was made for a folder given as a backup");

    // And PostgreSQL has tools of its own.
    let out = refdesk(live.path(), &["--database-url", "postgres://refdesk@127.0.0.1/none", "backup", "--to", "x"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("pg_dump"), "{}", text(&out));
}

#[tokio::test]
async fn an_erasure_on_request_made_after_a_backup_is_made_again_before_the_restored_database_sends_any_mail() {
    let live = tempfile::tempdir().unwrap();
    // The e-mail held: the transcripts wait in the outbox, and so in the backup.
    let server = Server::start_with(live.path(), &["--demo"], &[("REFDESK_MAIL_HOLD", "true")]).await;
    let ann = server.ann().await;
    let tag = std::process::id();
    let (erased_email, kept_email) = (format!("quill.{tag}@example.org"), format!("sam.{tag}@example.org"));
    let erased = ended_chat(&server, &ann, "Quillfeather", &erased_email).await;
    let kept = ended_chat(&server, &ann, "Sam", &kept_email).await;
    let backups = tempfile::tempdir().unwrap();
    let file = backups.path().join("nightly.sqlite3");
    let out = refdesk(live.path(), &["backup", "--to", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));

    // After the backup, the patron asks for her data to be erased.
    let carla = signed_in(&server, "carla").await;
    let ask = json!({"email": erased_email, "sessions": [erased], "transcripts": "delete"});
    let r = carla.post(server.url("/api/privacy/erase")).json(&ask).send().await.unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
    let journal = std::fs::read_to_string(live.path().join("erasures.jsonl")).unwrap();
    assert!(journal.contains(&format!("[{erased},")), "the chat is noted: {journal}");
    assert!(!journal.contains("example.org") && !journal.contains("Quillfeather"), "and nothing of hers: {journal}");
    drop(server);

    // The backup comes back over the database; the journal stays.
    let out = refdesk(live.path(), &["restore", "--from", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("makes again the erasures on request noted in"), "{}", text(&out));
    let db = live.path().join("refdesk.sqlite3");
    let email_of = |id: i64| -> Option<String> {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row("SELECT patron_email FROM sessions WHERE id = ?1", [id], |r| r.get(0)).unwrap()
    };
    assert_eq!(email_of(erased), Some(erased_email.clone()), "the backup holds her data again");

    // Served with the e-mail no longer held: the other patron's transcript
    // goes, hers does not, and her data is gone again.
    let server = Server::start(live.path(), &[]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !mail_files(live.path()).iter().any(|m| m.contains(&kept_email)) {
        assert!(Instant::now() < deadline, "the other patron's transcript was not sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mails = mail_files(live.path());
    assert!(!mails.iter().any(|m| m.contains(&erased_email) || m.contains("Quillfeather")), "{mails:?}");
    assert_eq!(email_of(erased), None);
    assert_eq!(email_of(kept), Some(kept_email));
    let carla = signed_in(&server, "carla").await;
    let r = carla.post(server.url("/api/privacy/patron")).json(&json!({"email": erased_email})).send().await.unwrap();
    let found = r.json::<Value>().await.unwrap();
    assert_eq!(found.as_array().map(Vec::len), Some(0), "{found}");
    let log = carla.get(server.url("/api/privacy/log")).send().await.unwrap().json::<Value>().await.unwrap();
    let redo = log.as_array().unwrap().iter().find(|e| e["action"] == "redo").expect("the audit list says so");
    assert_eq!((redo["sessions"].as_i64(), redo["by"].as_str()), (Some(1), Some("Carla Catalog")), "{redo}");
    assert_eq!(redo["transcripts"], "delete");
}

/// A tmpfs mounted at a folder of its own, unmounted when dropped (the
/// tests run as root, as CI does: `mount` must work, or the test fails).
struct Mounted(PathBuf);

impl Mounted {
    fn new(at: PathBuf) -> Mounted {
        Mounted::sized(at, "50%")
    }

    /// Of `size` (tmpfs's `size=`: `32m`, `50%`).
    fn sized(at: PathBuf, size: &str) -> Mounted {
        std::fs::create_dir_all(&at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "refdesk-test"])
            .arg(&at)
            .output()
            .unwrap();
        assert!(out.status.success(), "mounting a tmpfs (as root): {}", text(&out));
        Mounted(at)
    }

    /// Remounts it read-only (`ro`) or read-write.
    fn remount(&self, mode: &str) {
        let out = Command::new("mount").args(["-o", &format!("remount,{mode}")]).arg(&self.0).output().unwrap();
        assert!(out.status.success(), "remounting {mode}: {}", text(&out));
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

/// Lines of chat `session` in the database at `path`.
fn lines_of(path: &Path, session: i64) -> i64 {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row("SELECT count(*) FROM messages WHERE session_id = ?1", [session], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn a_backup_is_taken_from_a_data_folder_whose_file_system_was_remounted_read_only() {
    let root = tempfile::tempdir().unwrap();
    let disk = Mounted::new(root.path().join("disk"));
    let data = disk.0.join("data");
    let backups = tempfile::tempdir().unwrap();
    let to = |name: &str| backups.path().join(name);

    // Stopped cleanly: no write-ahead log, no shared-memory index, and
    // none can be made on a read-only file system.
    let mut server = Server::start(&data, &["--demo"]).await;
    let ann = server.ann().await;
    let session = server.chat(&ann, 1).await;
    let body = json!({"body": "Before the disk went read-only.", "client_id": "ro-1"});
    let url = server.url(&format!("/api/sessions/{session}/messages"));
    assert_eq!(ann.post(&url).json(&body).send().await.unwrap().status(), 200);
    let stopped = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(stopped.success());
    assert!(server.child.wait().unwrap().success());
    for gone in ["refdesk.sqlite3-wal", "refdesk.sqlite3-shm"] {
        assert!(!data.join(gone).exists(), "a clean stop removes {gone}");
    }
    disk.remount("ro");
    let out = refdesk(&data, &["backup", "--to", to("clean.sqlite3").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let lines = lines_of(&to("clean.sqlite3"), session);
    assert!(lines >= 2, "the question and the line: {lines}");

    // Killed: the log and its index stay, and SQLite reads both.
    disk.remount("rw");
    server = Server::start(&data, &[]).await;
    let ann = server.ann().await;
    let body = json!({"body": "After the restart, in the log alone.", "client_id": "ro-2"});
    let url = server.url(&format!("/api/sessions/{session}/messages"));
    assert_eq!(ann.post(&url).json(&body).send().await.unwrap().status(), 200);
    drop(server);
    assert!(std::fs::metadata(data.join("refdesk.sqlite3-wal")).unwrap().len() > 0);
    disk.remount("ro");
    let out = refdesk(&data, &["backup", "--to", to("killed.sqlite3").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(lines_of(&to("killed.sqlite3"), session), lines + 1, "the line in the log is in the backup");

    // A log with transactions but no index: an immutable read would miss
    // them, so it is refused, saying what to do, and leaves nothing.
    disk.remount("rw");
    std::fs::remove_file(data.join("refdesk.sqlite3-shm")).unwrap();
    disk.remount("ro");
    let out = refdesk(&data, &["backup", "--to", to("no-index.sqlite3").to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("copy the database and the files beside it to a writable folder"), "{}", text(&out));
    let left: Vec<_> = std::fs::read_dir(backups.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left.len(), 2, "only the two backups: {left:?}");
}

/// Fills the file system of `dir` with a file of zeros until it is full;
/// the file's path.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => break, // ENOSPC
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    let _ = file.sync_all();
    path
}

/// A data folder's disk that fills up (an operator's bad day): lines that
/// cannot be written are refused, never acknowledged; `/readyz` says the
/// database cannot commit; nothing acknowledged before is lost; and once
/// space is freed the same server takes lines again, without a restart.
/// After a kill, every acknowledged line is in the database, once.
#[tokio::test]
async fn a_full_disk_refuses_lines_without_losing_any_and_the_server_goes_on_once_space_is_freed() {
    let root = tempfile::tempdir().unwrap();
    let disk = Mounted::sized(root.path().join("disk"), "48m");
    let data = disk.0.join("data");
    let server = Server::start(&data, &["--demo"]).await;
    let ann = server.ann().await;
    let session = server.chat(&ann, 1).await;
    let url = server.url(&format!("/api/sessions/{session}/messages"));
    let mut acked = HashSet::new();
    let send = |n: usize| {
        let (ann, url) = (ann.clone(), url.clone());
        async move {
            let client_id = format!("full-{n}");
            let body = json!({"body": format!("line {n}: {}", "x".repeat(2000)), "client_id": client_id});
            let r = ann.post(&url).json(&body).send().await.unwrap();
            (r.status().as_u16(), client_id)
        }
    };
    for n in 0..20 {
        let (status, id) = send(n).await;
        assert_eq!(status, 200);
        acked.insert((session, id));
    }

    let filler = fill(&disk.0);
    let mut refused = None;
    for n in 20..3000 {
        match send(n).await {
            (200, id) => {
                acked.insert((session, id));
            }
            (status, _) => {
                refused = Some(status);
                break;
            }
        }
    }
    let refused = refused.expect("a line was refused on the full disk");
    let (available, size) = disk_figures(&server).await;
    assert!(available < 2 << 20, "/metrics says the disk is full: {available} bytes left");
    assert!((40 << 20..=48 << 20).contains(&size), "the disk's size: {size}");
    assert_eq!(refused, 503, "refused as the database's state (unavailable), not the librarian's fault nor a bug");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = reqwest::get(server.url("/readyz")).await.unwrap();
        if r.status() == 503 {
            let why = r.text().await.unwrap();
            assert!(why.contains("cannot commit"), "{why}");
            break;
        }
        assert!(Instant::now() < deadline, "/readyz kept saying ready on a full disk");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Space again: the same server takes lines, and says it is ready.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 5000;
    loop {
        let (status, id) = send(n).await;
        n += 1;
        if status == 200 {
            acked.insert((session, id));
            break;
        }
        assert!(Instant::now() < deadline, "the server took no line after space was freed ({status})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for _ in 0..20 {
        let (status, id) = send(n).await;
        n += 1;
        assert_eq!(status, 200, "lines go on after the first");
        acked.insert((session, id));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while reqwest::get(server.url("/readyz")).await.unwrap().status() != 200 {
        assert!(Instant::now() < deadline, "/readyz did not say ready again once space was freed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let (available, _) = disk_figures(&server).await;
    assert!(available > 8 << 20, "/metrics says space is back: {available} bytes");

    drop(server);
    let stored = stored(&data.join("refdesk.sqlite3"));
    let missing: Vec<_> = acked.difference(&stored).collect();
    assert!(missing.is_empty(), "acknowledged but not stored: {missing:?}");
}

/// `refdesk_data_dir_available_bytes` and `refdesk_data_dir_size_bytes` as
/// `/metrics` says them.
async fn disk_figures(server: &Server) -> (u64, u64) {
    let text = reqwest::get(server.url("/metrics")).await.unwrap().text().await.unwrap();
    let figure = |name: &str| {
        let line =
            text.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name} in {text}"));
        line[name.len() + 1..].trim().parse::<u64>().unwrap()
    };
    (figure("refdesk_data_dir_available_bytes"), figure("refdesk_data_dir_size_bytes"))
}

/// `refdesk move-to-postgres`: a SQLite service's history, moved into a new
/// PostgreSQL database, is served from there as it was — Ann signs in with
/// her password and reads the chat she had — and the SQLite database is
/// left byte for byte. Refused, changing nothing: while a server runs on
/// the folder, into a database that holds data, and from a service that is
/// on PostgreSQL already.
#[tokio::test]
async fn a_sqlite_service_moved_into_postgresql_is_served_from_there_as_it_was() {
    let server_url =
        std::env::var("REFDESK_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("refdesk_move_{}_{nanos}", std::process::id());
    let url = refdesk_store::postgres::create_database(&server_url, &name)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be running at {server_url} (scripts/test.sh starts it): {e}"));
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(dir.path(), &["--demo"], &[("REFDESK_DRAIN_SECONDS", "0")]).await;
    let ann = server.ann().await;
    let chat = ended_chat(&server, &ann, "Quillfeather", "quill@example.org").await;
    let read = |server: &Server, ann: &reqwest::Client| {
        let request = ann.get(server.url(&format!("/api/sessions/{chat}")));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let before = read(&server, &ann).await;
    assert!(before["messages"].as_array().is_some_and(|m| m.len() > 2), "{before}");

    let out = refdesk(dir.path(), &["move-to-postgres", "--to", &url]);
    assert!(!out.status.success() && text(&out).contains("needs the service stopped"), "{}", text(&out));
    // Stopped as `systemctl stop` does: the log emptied and gone.
    let stop = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(stop.success());
    assert!(server.child.wait().unwrap().success(), "a clean stop");
    let (_, sqlite) = snapshot(dir.path());
    let not_pg = refdesk(dir.path(), &["move-to-postgres", "--to", "mysql://localhost/refdesk"]);
    assert!(!not_pg.status.success() && text(&not_pg).contains("must be a PostgreSQL URL"), "{}", text(&not_pg));
    let out = refdesk(dir.path(), &["move-to-postgres", "--to", &url]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("every table's rows counted on both sides"), "{}", text(&out));
    assert!(snapshot(dir.path()).1 == sqlite, "the SQLite database is only read");
    let files = snapshot(dir.path()).0;
    assert!(!files.iter().any(|f| f.ends_with("-wal") || f.ends_with("-shm")), "as its server left it: {files:?}");
    // A copy now: served from SQLite again, its outbox would send twice.
    let stale = refdesk(dir.path(), &["serve", "--listen", "127.0.0.1:0"]);
    assert!(!stale.status.success() && text(&stale).contains("was moved to PostgreSQL"), "{}", text(&stale));

    let moved = Server::start(dir.path(), &["--database-url", &url]).await;
    let ann = moved.ann().await;
    let after = read(&moved, &ann).await;
    assert_eq!(after["messages"], before["messages"], "the chat as it was");
    assert_eq!(after["session"], before["session"]);
    drop(moved);

    // Every command on the copy refuses it (an account disabled there
    // would stay enabled in PostgreSQL), a second move too.
    let copy = [&["user", "list"][..], &["move-to-postgres", "--to", &url], &["backup", "--to", "/tmp/x.sqlite3"]];
    for args in copy.into_iter().chain([&["config", "--check"][..]]) {
        let refused = refdesk(dir.path(), args);
        assert!(
            !refused.status.success() && text(&refused).contains("it is a copy now"),
            "{args:?}: {}",
            text(&refused)
        );
    }
    let on_pg = refdesk(dir.path(), &["--database-url", &url, "move-to-postgres", "--to", &url]);
    assert!(!on_pg.status.success() && text(&on_pg).contains("already keeps its data in PostgreSQL"));
    assert!(snapshot(dir.path()).1 == sqlite, "nothing changed");
    use sqlx::Connection as _;
    let mut c = sqlx::PgConnection::connect(&server_url).await.unwrap();
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut c).await.unwrap();
}
