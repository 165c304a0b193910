//! The erasure journal: every erasure on a patron's request, written to a
//! file of its own beside the database before the database erases, so that
//! a database restored from a backup taken before it is erased again.
//!
//! A backup keeps what the database held when it was taken; a library's
//! retention periods erase again on their own after a restore (they are in
//! the backup), but an erasure on request made since would come back, with
//! the patron's name, address and words. So each node notes the chats it
//! erases on request (their ids, and when each started: a restored database
//! may give an id again to another chat, which is then left alone) in
//! `<data_dir>/erasures.jsonl`, one JSON line an erasure, flushed to disk
//! before the erasure is written; and as it starts, before it serves and
//! before its mailer sends anything, it erases again every chat the journal
//! names whose personal data the database still holds
//! (`refdesk_store::Privacy::redo_erasures`). A chat that was going on when
//! the backup was taken is erased once it ends there (the retention run
//! tries again every ten minutes); meanwhile the mailer sends none of its
//! e-mails.
//!
//! The journal holds no name, address or text: chat ids and times, an
//! account's id and username. Entries older than [`KEPT`] are dropped as
//! the node starts. Processes sharing the data folder take turns on it
//! through a lock on `erasures.lock` beside it.

use crate::{App, AppError, AppResult, Failure};
use refdesk_domain::event::Event;
use refdesk_domain::ids::{SessionId, StaffId};
use refdesk_domain::privacy::Transcripts;
use refdesk_domain::report::DAY;
use refdesk_domain::Millis;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The journal's file name in the data folder.
pub const FILE: &str = "erasures.jsonl";

/// How long an entry is kept: longer than anyone keeps a backup of a
/// database whose libraries erase on request (docs/operations.md, "How
/// long to keep backups").
pub const KEPT: Millis = 400 * DAY;

/// An erasure on request, as the journal keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When it was made.
    pub at: Millis,
    /// The admin who made it: the account's id…
    pub by: i64,
    /// …and its username (an id alone may be another account's in a
    /// restored database).
    #[serde(default)]
    pub username: String,
    /// What happened to the transcripts.
    pub transcripts: Transcripts,
    /// The chats: `[id, when it started]`.
    pub chats: Vec<(i64, Millis)>,
}

/// What a pass over the journal found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redone {
    /// Entries read.
    pub entries: usize,
    /// Chats erased again now.
    pub erased: usize,
    /// Chats still going on in this database, to erase once they end.
    pub waiting: usize,
    /// Lines that are no entry this release can read, kept in the file as
    /// they are (one a newer release wrote, or damage): logged at `error`.
    pub unreadable: usize,
}

/// What [`Journal::read_since`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Read {
    /// The entries since the time asked for.
    pub entries: Vec<Entry>,
    /// Lines a crash cut short as they were written (their erasures were
    /// not made either): dropped.
    pub torn: usize,
    /// Other lines that are no entry: kept.
    pub unreadable: usize,
}

/// The journal file; one writer at a time, in this process and beside it.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    writing: std::sync::Mutex<()>,
}

impl Journal {
    /// The journal at `path` (made by the first erasure).
    pub fn new(path: PathBuf) -> Journal {
        Journal { path, writing: std::sync::Mutex::new(()) }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This process's turn and, through `erasures.lock` beside the file,
    /// every other process's sharing the folder.
    fn turn(&self) -> std::io::Result<(std::sync::MutexGuard<'_, ()>, std::fs::File)> {
        let ours = self.writing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let lock = private_file(std::fs::OpenOptions::new().create(true).truncate(false).write(true))
            .open(self.path.with_extension("lock"))?;
        lock.lock()?;
        Ok((ours, lock))
    }

    /// Appends `entry` and flushes it, and the folder's entry for the file,
    /// to disk before returning.
    pub fn record(&self, entry: &Entry) -> std::io::Result<()> {
        let _turn = self.turn()?;
        let mut file =
            private_file(std::fs::OpenOptions::new().create(true).read(true).append(true)).open(&self.path)?;
        // A line a crash cut short is ended first, so that it does not take
        // this entry with it.
        let mut line = if ends_a_line(&mut file)? { Vec::new() } else { vec![b'\n'] };
        serde_json::to_writer(&mut line, entry)?;
        line.push(b'\n');
        file.write_all(&line)?;
        file.sync_all()?;
        sync_folder(&self.path)
    }

    /// Every entry made since `since`. When the file holds older entries or
    /// lines cut short, it is written again without them (beside it,
    /// flushed, then renamed over it); other lines that are no entry stay.
    pub fn read_since(&self, since: Millis) -> std::io::Result<Read> {
        let _turn = self.turn()?;
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Read::default()),
            Err(e) => return Err(e),
        };
        let mut read = Read::default();
        let mut kept: Vec<&[u8]> = Vec::new();
        let mut old = 0;
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Entry>(line) {
                Ok(e) if e.at < since => old += 1,
                Ok(e) => {
                    read.entries.push(e);
                    kept.push(line);
                }
                Err(e) if e.is_eof() => read.torn += 1,
                Err(_) => {
                    read.unreadable += 1;
                    kept.push(line);
                }
            }
        }
        if old + read.torn > 0 {
            self.write_again(&kept)?;
        }
        Ok(read)
    }

    fn write_again(&self, lines: &[&[u8]]) -> std::io::Result<()> {
        let aside = self.path.with_extension("jsonl.new");
        let mut file =
            private_file(std::fs::OpenOptions::new().create(true).write(true).truncate(true)).open(&aside)?;
        for line in lines {
            file.write_all(line)?;
            file.write_all(b"\n")?;
        }
        file.sync_all()?;
        std::fs::rename(&aside, &self.path)?;
        sync_folder(&self.path)
    }
}

/// Whether `file` is empty or ends with a new line.
fn ends_a_line(file: &mut std::fs::File) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    if file.metadata()?.len() == 0 {
        return Ok(true);
    }
    let mut last = [0u8];
    file.seek(SeekFrom::End(-1))?;
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Created readable by the service's user alone, as the database is.
fn private_file(options: &mut std::fs::OpenOptions) -> &mut std::fs::OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Flushes the folder holding `path` (a new name in it survives a crash).
fn sync_folder(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(folder) => std::fs::File::open(folder)?.sync_all(),
        None => std::fs::File::open(".")?.sync_all(),
    }
}

fn journal_failed(what: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> AppError {
    AppError::Internal(Failure::caused_by(what, e))
}

impl App {
    /// Keeps the erasure journal at `path` from now on (the server does,
    /// in its data folder). Once only; a second call changes nothing.
    pub fn keep_erasures(&self, path: PathBuf) {
        let _ = self.erasures.set(Arc::new(Journal::new(path)));
    }

    /// The erasure journal, if this node keeps one.
    pub fn erasure_journal(&self) -> Option<&Arc<Journal>> {
        self.erasures.get()
    }

    /// Notes an erasure on request in the journal, on disk, before it is
    /// made: nothing is erased if it cannot be.
    pub(crate) async fn journal_erasure(
        &self,
        by: &refdesk_domain::org::Staff,
        transcripts: Transcripts,
        chats: Vec<(SessionId, Millis)>,
    ) -> AppResult<()> {
        // Without the journal a restored database would bring the patron's
        // data back: nothing is erased (the node's log said why at start).
        let Some(journal) = self.erasures.get().cloned() else {
            return Err(refdesk_domain::DomainError::Conflict(
                "this node keeps no erasure journal (its data folder could not be made: see its log), so nothing \
                 was erased; ask the service's operator"
                    .into(),
            )
            .into());
        };
        let entry = Entry {
            at: self.clock.now(),
            by: by.id.0,
            username: by.username.clone(),
            transcripts,
            chats: chats.iter().map(|(s, t)| (s.0, *t)).collect(),
        };
        tokio::task::spawn_blocking(move || journal.record(&entry))
            .await
            .map_err(|e| journal_failed("writing the erasure journal", e))?
            .map_err(|e| journal_failed("writing the erasure journal (nothing was erased)", e))
    }

    /// Erases again every chat the journal names whose personal data the
    /// database still holds (see the module's text). The server runs it as
    /// it starts, before it serves and before its mailer.
    pub async fn redo_erasures(&self) -> AppResult<Redone> {
        let Some(journal) = self.erasures.get().cloned() else { return Ok(Redone::default()) };
        let since = self.clock.now() - KEPT;
        let read = tokio::task::spawn_blocking(move || journal.read_since(since))
            .await
            .map_err(|e| journal_failed("reading the erasure journal", e))?
            .map_err(|e| journal_failed("reading the erasure journal", e))?;
        if read.unreadable > 0 {
            tracing::error!(
                lines = read.unreadable,
                "lines of the erasure journal are no entry this release reads (a newer release's, or damage): \
                 kept, and their erasures not made again; see docs/operations.md, \"Restore\""
            );
        }
        let mut done = self.redo_entries(read.entries).await?;
        done.unreadable = read.unreadable;
        if done.erased > 0 || done.waiting > 0 {
            tracing::warn!(
                chats = done.erased,
                waiting = done.waiting,
                "erasures on request the database did not hold were made again (a restore from an older backup?); \
                 chats still going on there are erased once they end, and none of their e-mail goes meanwhile"
            );
        }
        Ok(done)
    }

    /// Makes again the erasures whose chats were going on at the last pass
    /// (the retention run calls it), once they have ended.
    pub(crate) async fn redo_waiting_erasures(&self) -> AppResult<()> {
        let waiting = self.erasures_waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if waiting.is_empty() {
            return Ok(());
        }
        let done = self.redo_entries(waiting).await?;
        if done.erased > 0 {
            tracing::info!(
                chats = done.erased,
                waiting = done.waiting,
                "erasures that waited for their chat's end made"
            );
        }
        Ok(())
    }

    /// Runs `entries` through the store; keeps those with chats still going
    /// on (only those chats) as the waiting ones.
    async fn redo_entries(&self, entries: Vec<Entry>) -> AppResult<Redone> {
        let now = self.clock.now();
        let mut done = Redone { entries: entries.len(), ..Redone::default() };
        let mut waiting = Vec::new();
        for e in entries {
            let chats = e.chats.iter().map(|(id, at)| (SessionId(*id), *at)).collect();
            let by = (StaffId(e.by), e.username.clone());
            let r = self.store.redo_erasures(chats, e.transcripts, by, now).await?;
            done.erased += r.erased.len();
            done.waiting += r.waiting.len();
            if !r.erased.is_empty() {
                // Pages open on them stop showing them, as for any erasure.
                self.bus.publish_ephemeral(Event::Erased { sessions: r.erased });
            }
            if !r.waiting.is_empty() {
                let still: Vec<(i64, Millis)> =
                    e.chats.iter().filter(|(id, _)| r.waiting.contains(&SessionId(*id))).copied().collect();
                waiting.push(Entry { chats: still, ..e });
            }
        }
        *self.erasures_waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = waiting;
        Ok(done)
    }

    /// Whether `session` is a chat the journal names that waits for its end
    /// to be erased again: the mailer sends none of its e-mails meanwhile.
    pub fn erasure_waits(&self, session: SessionId) -> bool {
        let waiting = self.erasures_waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        waiting.iter().any(|e| e.chats.iter().any(|(id, _)| *id == session.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{app_on_sqlite, waiting_chat};

    fn entry(at: Millis, chats: Vec<(i64, Millis)>) -> Entry {
        Entry { at, by: 7, username: "carla".into(), transcripts: Transcripts::Delete, chats }
    }

    #[test]
    fn entries_are_read_back_old_ones_and_torn_lines_dropped_and_lines_of_another_kind_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let journal = Journal::new(path.clone());
        assert_eq!(journal.read_since(0).unwrap(), Read::default(), "no file yet: nothing");
        journal.record(&entry(10, vec![(1, 5)])).unwrap();
        journal.record(&entry(20, vec![(2, 6), (3, 7)])).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // A crash as a line was written leaves it cut short; a newer
        // release may write what this one cannot read.
        let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"at\":30,\"by\":7,\"username\":\"carla\",\"transcripts\":\"shred\",\"chats\":[[9,9]]}\n")
            .unwrap();
        file.write_all(b"{\"at\":35,\"by\":7,\"tra").unwrap();
        journal.record(&entry(40, vec![(4, 8)])).unwrap();
        let read = journal.read_since(0).unwrap();
        assert_eq!((read.torn, read.unreadable), (1, 1));
        let at: Vec<Millis> = read.entries.iter().map(|e| e.at).collect();
        assert_eq!(at, vec![10, 20, 40], "the torn line took nothing with it");
        let read = journal.read_since(15).unwrap();
        assert_eq!((read.torn, read.unreadable), (0, 1), "written again without the torn line, with the other");
        assert_eq!(read.entries, vec![entry(20, vec![(2, 6), (3, 7)]), entry(40, vec![(4, 8)])]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text.contains("shred"), "{text}");
        assert!(!dir.path().join("erasures.jsonl.new").exists());
    }

    /// A chat the journal names that is going on in the database waits,
    /// and none of its e-mail goes; the retention run erases it once it
    /// has ended.
    #[tokio::test]
    async fn a_chat_going_on_is_erased_again_by_the_retention_run_once_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_on_sqlite(&dir).await;
        app.keep_erasures(dir.path().join(FILE));
        let chat = waiting_chat(&app).await;
        let record = app.store.session(chat).await.unwrap().unwrap();
        let entry = Entry { chats: vec![(chat.0, record.created_at)], ..entry(app.clock.now(), vec![]) };
        app.erasure_journal().unwrap().record(&entry).unwrap();
        let done = app.redo_erasures().await.unwrap();
        assert_eq!((done.entries, done.erased, done.waiting), (1, 0, 1));
        assert!(app.erasure_waits(chat), "its e-mail waits");
        assert_eq!(app.apply_retention(app.clock.now()).await.unwrap(), 0);
        assert!(app.store.session(chat).await.unwrap().unwrap().patron_name.is_some(), "not while it goes on");
        app.patron_end(&record).await.unwrap();
        app.apply_retention(app.clock.now()).await.unwrap();
        assert_eq!(app.store.session(chat).await.unwrap().unwrap().patron_name, None);
        assert!(!app.erasure_waits(chat), "none waits now");
    }
}
