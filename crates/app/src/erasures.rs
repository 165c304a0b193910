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
//! before the erasure is written; and as it starts, before its mailer sends
//! anything, it erases again every chat the journal names whose personal
//! data the database still holds (`refdesk_store::Privacy::redo_erasures`).
//! A chat that was going on when the backup was taken is erased once it
//! ends there (the retention run retries it).
//!
//! The journal holds no personal data: chat ids, times, an account's id.
//! Entries older than [`KEPT`] are dropped as the node starts.

use crate::{App, AppError, AppResult, Failure};
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
    /// The admin who made it.
    pub by: i64,
    /// What happened to the transcripts.
    pub transcripts: Transcripts,
    /// The chats: `[id, when it started]`.
    pub chats: Vec<(i64, Millis)>,
}

/// What a start found in the journal and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redone {
    /// Entries read.
    pub entries: usize,
    /// Chats erased again now.
    pub erased: u64,
    /// Chats still going on in this database, to erase once they end.
    pub waiting: usize,
    /// Lines that were not an entry (one cut short by a crash as it was
    /// written: its erasure was not made either), left out.
    pub unreadable: usize,
}

/// The journal file; one writer at a time in this process.
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

    /// Appends `entry` and flushes it to disk (and, for a new file, its
    /// folder's entry for it) before returning.
    pub fn record(&self, entry: &Entry) -> std::io::Result<()> {
        let _one = self.writing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let new = !self.path.exists();
        let mut file =
            private_file(std::fs::OpenOptions::new().create(true).read(true).append(true)).open(&self.path)?;
        // A line a crash cut short is ended first, so that it does not take
        // this entry with it.
        let mut line = if ends_a_line(&mut file)? { Vec::new() } else { vec![b'\n'] };
        serde_json::to_writer(&mut line, entry)?;
        line.push(b'\n');
        file.write_all(&line)?;
        file.sync_all()?;
        if new {
            sync_folder(&self.path)?;
        }
        Ok(())
    }

    /// Every entry made since `since`, and how many lines were not one.
    /// When the file holds older entries or such lines, it is written again
    /// without them (beside it, flushed, then renamed over it).
    pub fn read_since(&self, since: Millis) -> std::io::Result<(Vec<Entry>, usize)> {
        let _one = self.writing.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let text = match std::fs::read(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
            Err(e) => return Err(e),
        };
        let (mut entries, mut unreadable, mut old) = (Vec::new(), 0, 0);
        for line in text.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            match serde_json::from_slice::<Entry>(line) {
                Ok(e) if e.at < since => old += 1,
                Ok(e) => entries.push(e),
                Err(_) => unreadable += 1,
            }
        }
        if old + unreadable > 0 {
            self.write_again(&entries)?;
        }
        Ok((entries, unreadable))
    }

    fn write_again(&self, entries: &[Entry]) -> std::io::Result<()> {
        let aside = self.path.with_extension("jsonl.new");
        let mut file =
            private_file(std::fs::OpenOptions::new().create(true).write(true).truncate(true)).open(&aside)?;
        for e in entries {
            let mut line = serde_json::to_vec(e)?;
            line.push(b'\n');
            file.write_all(&line)?;
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
        by: StaffId,
        transcripts: Transcripts,
        chats: Vec<(SessionId, Millis)>,
    ) -> AppResult<()> {
        let Some(journal) = self.erasures.get().cloned() else { return Ok(()) };
        let entry = Entry {
            at: self.clock.now(),
            by: by.0,
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
    /// it starts, before its mailer; the retention run again while some
    /// chat waits for its end.
    pub async fn redo_erasures(&self) -> AppResult<Redone> {
        let Some(journal) = self.erasures.get().cloned() else { return Ok(Redone::default()) };
        let now = self.clock.now();
        let (entries, unreadable) = tokio::task::spawn_blocking(move || journal.read_since(now - KEPT))
            .await
            .map_err(|e| journal_failed("reading the erasure journal", e))?
            .map_err(|e| journal_failed("reading the erasure journal", e))?;
        let mut done = Redone { entries: entries.len(), unreadable, ..Redone::default() };
        let mut waiting = false;
        for e in entries {
            let chats = e.chats.iter().map(|(id, at)| (SessionId(*id), *at)).collect();
            let r = self.store.redo_erasures(chats, e.transcripts, StaffId(e.by), now).await?;
            done.erased += r.erased;
            done.waiting += r.waiting.len();
            waiting |= !r.waiting.is_empty();
        }
        self.erasures_waiting.store(waiting, std::sync::atomic::Ordering::Relaxed);
        if done.erased > 0 || done.waiting > 0 || done.unreadable > 0 {
            tracing::warn!(
                chats = done.erased,
                waiting = done.waiting,
                unreadable_lines = done.unreadable,
                "erasures on request the database did not hold were made again (a restore from an older backup?); \
                 chats still going on there are erased once they end"
            );
        }
        Ok(done)
    }

    /// Whether a chat the journal names waits for its end to be erased again.
    pub(crate) fn erasures_waiting(&self) -> bool {
        self.erasures_waiting.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{app_on_sqlite, waiting_chat};

    fn entry(at: Millis, chats: Vec<(i64, Millis)>) -> Entry {
        Entry { at, by: 7, transcripts: Transcripts::Delete, chats }
    }

    #[test]
    fn entries_are_read_back_and_old_ones_and_torn_lines_dropped_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let journal = Journal::new(path.clone());
        assert_eq!(journal.read_since(0).unwrap(), (vec![], 0), "no file yet: nothing");
        journal.record(&entry(10, vec![(1, 5)])).unwrap();
        journal.record(&entry(20, vec![(2, 6), (3, 7)])).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        // A crash as a line was written leaves it cut short.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"at\":30,\"by\":7,\"tra").unwrap();
        journal.record(&entry(40, vec![(4, 8)])).unwrap();
        let (all, torn) = journal.read_since(0).unwrap();
        assert_eq!(torn, 1);
        assert_eq!(
            all.iter().map(|e| e.at).collect::<Vec<_>>(),
            vec![10, 20, 40],
            "the torn line took nothing with it"
        );
        let (kept, torn) = journal.read_since(15).unwrap();
        assert_eq!(torn, 0, "the file was written again without it");
        assert_eq!(kept, vec![entry(20, vec![(2, 6), (3, 7)]), entry(40, vec![(4, 8)])]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!dir.path().join("erasures.jsonl.new").exists());
    }

    /// A chat the journal names that is going on in the database waits; the
    /// retention run erases it once it has ended.
    #[tokio::test]
    async fn a_chat_going_on_is_erased_again_by_the_retention_run_once_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let app = app_on_sqlite(&dir).await;
        app.keep_erasures(dir.path().join(FILE));
        let chat = waiting_chat(&app).await;
        let record = app.store.session(chat).await.unwrap().unwrap();
        let entry = Entry {
            at: app.clock.now(),
            by: 1,
            transcripts: Transcripts::Mask,
            chats: vec![(chat.0, record.created_at)],
        };
        app.erasure_journal().unwrap().record(&entry).unwrap();
        let done = app.redo_erasures().await.unwrap();
        assert_eq!((done.entries, done.erased, done.waiting), (1, 0, 1));
        assert_eq!(app.apply_retention(app.clock.now()).await.unwrap(), 0);
        assert!(app.store.session(chat).await.unwrap().unwrap().patron_name.is_some(), "not while it goes on");
        app.patron_end(&record).await.unwrap();
        app.apply_retention(app.clock.now()).await.unwrap();
        assert_eq!(app.store.session(chat).await.unwrap().unwrap().patron_name, None);
        assert!(!app.erasures_waiting(), "none waits now");
    }
}
