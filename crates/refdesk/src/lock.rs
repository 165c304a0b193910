//! One `refdesk serve` per SQLite data folder.
//!
//! Two servers on one database file would each think its writer is the only
//! one and its in-process bus the only bus: a patron on one would never see
//! what a librarian on the other wrote, and their group commits would queue
//! behind each other's locks. So `serve` takes an exclusive lock on
//! `refdesk.lock` in the data folder and holds it for the life of the
//! process; a second `serve` there is refused with a message saying why.
//!
//! The lock is the operating system's (`flock`), not the file's existence:
//! it goes away with the process however that ends (a crash, `kill -9`), so
//! a stale file never keeps a server from starting. The file holds the
//! holder's process id and what it holds the folder for (`serve` or
//! `restore`), for the message; a `serve` that ends in order adds
//! `stopped`, so the next one can tell an unclean stop (and says so).
//!
//! `restore` takes it too: it replaces the database file, which no server
//! may have open. `backup` does not: it copies the live database beside the
//! server, through SQLite. The operator's other commands (`setup`, `user add`,
//! `demo`, `migrate`…) may run beside a server: each is one short run of
//! writes, and SQLite's own locking serialises them with the server's
//! writer (the server's commits wait for theirs, and theirs for the
//! server's). None of them starts a chat or writes a chat's lines: the
//! server's writer alone does, and it keeps what it knows of live chats
//! (their client ids, I4) in memory (`store/src/sqlite/kept.rs`). Several
//! nodes serve one service through PostgreSQL (`database_url`), which takes
//! no lock here.

use anyhow::{bail, Context};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

/// The lock file's name in the data folder.
pub const LOCK_FILE: &str = "refdesk.lock";

/// An exclusive hold on a data folder, released when dropped (or when the
/// process ends).
#[derive(Debug)]
pub struct DataDirLock {
    file: File,
    /// The process id of the `serve` that held the folder before and did
    /// not stop cleanly (a crash, `kill -9`, a power cut): it never wrote
    /// that it stopped ([`DataDirLock::stopped`]).
    pub unclean_before: Option<String>,
}

impl DataDirLock {
    /// Notes in the lock file that this `serve` stopped cleanly, so that the
    /// next one does not report an unclean stop.
    pub fn stopped(mut self) {
        let said = format!("{} serve stopped", std::process::id());
        self.file.set_len(0).and_then(|()| self.file.rewind()).and_then(|()| writeln!(self.file, "{said}")).ok();
    }
}

/// What the lock is taken for: what a refusal tells the operator to do.
#[derive(Clone, Copy, Debug)]
pub enum Purpose {
    /// `serve`: another server, or a restore, holds the folder.
    Serve,
    /// `restore`: the service must be stopped first.
    Restore,
    /// `move-to-postgres`: the service must be stopped first.
    Move,
}

/// Takes the data folder's lock, creating the folder (0700; the folder
/// above it must exist) and the lock file (0600) if needed; refuses if
/// another process holds it.
pub fn lock_data_dir(dir: &Path, purpose: Purpose) -> anyhow::Result<DataDirLock> {
    let mut create = std::fs::DirBuilder::new();
    // Not the folders above it: a mistyped path is refused, not served
    // empty.
    create.recursive(false);
    let mut open = std::fs::OpenOptions::new();
    open.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        create.mode(0o700);
        open.mode(0o600);
    }
    if !dir.is_dir() {
        create.create(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "creating the data folder {}: the folder above it does not exist (is data_dir right? refdesk \
                 creates the data folder, not the folders above it)",
                dir.display()
            ),
            // Not the data folder's owner: it is not there yet. The folder
            // above it is not this user's to write in.
            std::io::ErrorKind::PermissionDenied => anyhow::anyhow!(
                "creating the data folder {}: {e} (this user may not write in the folder above it: create the data \
                 folder for the user refdesk runs as, e.g. `install -d -o refdesk -m 700 {}`)",
                dir.display(),
                dir.display()
            ),
            _ => on_data(e, format!("creating the data folder {}", dir.display())),
        })?;
    }
    let path = dir.join(LOCK_FILE);
    let mut file = open.open(&path).map_err(|e| on_data(e, format!("opening {}", path.display())))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => bail!("{}", refusal(dir, &mut file, purpose)),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("locking {}", path.display()));
        }
    }
    // A `serve` before this one that never said it stopped did not stop
    // cleanly (its lock went with its process).
    let mut before = String::new();
    let _ = file.read_to_string(&mut before);
    let words: Vec<&str> = before.split_whitespace().collect();
    let unclean_before = match words.as_slice() {
        [pid, "serve"] if matches!(purpose, Purpose::Serve) => Some((*pid).to_owned()),
        _ => None,
    };
    // Ours now: say whose it is and why (for the message above, and for
    // the next `serve`'s look at how this one ended).
    let holder = format!("{} {}", std::process::id(), purpose.command());
    file.set_len(0).and_then(|()| file.rewind()).and_then(|()| writeln!(file, "{holder}")).ok();
    Ok(DataDirLock { file, unclean_before })
}

impl Purpose {
    /// The command that takes the lock for this, as the lock file says it.
    fn command(self) -> &'static str {
        match self {
            Purpose::Serve => "serve",
            Purpose::Restore => "restore",
            Purpose::Move => "move-to-postgres",
        }
    }
}

/// What another process holding `dir` means for `purpose`, naming the
/// process and its command when its lock file says them (a file of an
/// older build names only the process, which was a `serve` or a restore).
fn refusal(dir: &Path, file: &mut File, purpose: Purpose) -> String {
    let mut said = String::new();
    let _ = file.read_to_string(&mut said);
    let mut words = said.split_whitespace();
    let holder = match words.next() {
        Some(pid) if pid.bytes().all(|b| b.is_ascii_digit()) => format!(" (process {pid})"),
        _ => String::new(),
    };
    let (dir, path) = (dir.display(), dir.join(LOCK_FILE));
    match words.next() {
        Some(w) if w == Purpose::Restore.command() => {
            return format!(
                "a refdesk restore{holder} is replacing the database in the data folder {dir} (it holds {}): wait \
                 for it to end, then try again",
                path.display()
            );
        }
        Some(w) if w == Purpose::Move.command() => {
            return format!(
                "a refdesk move-to-postgres{holder} is copying the database in the data folder {dir} into \
                 PostgreSQL (it holds {}): wait for it to end, then serve from PostgreSQL",
                path.display()
            );
        }
        _ => {}
    }
    match purpose {
        Purpose::Serve => format!(
            "another refdesk serve{holder} is already using the data folder {dir}: one server per SQLite data \
             folder (it holds {}). Stop that one first, or give this one its own --data-dir; to run several \
             nodes for one service, use PostgreSQL (database_url)",
            path.display()
        ),
        Purpose::Restore => format!(
            "a refdesk serve{holder} is using the data folder {dir} (it holds {}): refdesk restore needs the \
             service stopped (e.g. `systemctl stop refdesk`), and keeps it from starting until the restore ends",
            path.display()
        ),
        Purpose::Move => format!(
            "a refdesk serve{holder} is using the data folder {dir} (it holds {}): refdesk move-to-postgres needs \
             the service stopped (e.g. `systemctl stop refdesk`): what it writes meanwhile would not be moved",
            path.display()
        ),
    }
}

/// Whether another process holds `dir` now, and what that means for
/// `serve`; nothing is created (a folder or lock file that is not there is
/// held by no one). For a `serve` that could not bind its port: a second
/// copy of a running service is told so, not just that the port is taken.
pub fn held(dir: &Path) -> Option<String> {
    let mut file = File::open(dir.join(LOCK_FILE)).ok()?;
    match file.try_lock() {
        Err(std::fs::TryLockError::WouldBlock) => Some(refusal(dir, &mut file, Purpose::Serve)),
        // Free (released again as `file` drops), or not lockable: nothing to say.
        _ => None,
    }
}

/// An I/O error on the data folder, saying what to do when the folder
/// belongs to another user (a command run as root, or not as `refdesk`).
pub fn on_data(e: std::io::Error, what: String) -> anyhow::Error {
    let hint = match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            " (the data folder belongs to another user: run refdesk as its owner, e.g. `runuser -u refdesk -- refdesk …`)"
        }
        _ => "",
    };
    anyhow::anyhow!("{what}: {e}{hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_folder_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert_eq!(held(&data), None, "no folder: held by no one");
        let first = lock_data_dir(&data, Purpose::Serve).unwrap();
        let err = lock_data_dir(&data, Purpose::Serve).unwrap_err().to_string();
        assert!(err.contains("another refdesk serve"), "{err}");
        assert!(err.contains(&format!("(process {})", std::process::id())), "{err}");
        assert_eq!(held(&data), Some(err), "said without taking it");
        let err = lock_data_dir(&data, Purpose::Restore).unwrap_err().to_string();
        assert!(err.contains("needs the service stopped") && !err.contains("--data-dir"), "{err}");
        drop(first);
        assert_eq!(held(&data), None, "free again");
        let restoring = lock_data_dir(&data, Purpose::Restore).expect("free again once the holder is gone");
        for purpose in [Purpose::Serve, Purpose::Restore] {
            let err = lock_data_dir(&data, purpose).unwrap_err().to_string();
            assert!(err.contains("a refdesk restore (process ") && err.contains("wait for it to end"), "{err}");
        }
        assert!(held(&data).is_some_and(|e| e.contains("a refdesk restore")), "a serve that cannot bind is told too");
        drop(restoring);
        // A serve that did not say it stopped is told to the next one.
        let serving = lock_data_dir(&data, Purpose::Serve).unwrap();
        assert_eq!(serving.unclean_before, None, "a restore before it");
        drop(serving);
        let again = lock_data_dir(&data, Purpose::Serve).unwrap();
        assert_eq!(again.unclean_before, Some(std::process::id().to_string()), "killed: never said it stopped");
        again.stopped();
        assert_eq!(lock_data_dir(&data, Purpose::Serve).unwrap().unclean_before, None, "stopped cleanly");
        // A lock file from an older build names the process alone.
        std::fs::write(data.join(LOCK_FILE), "4242\n").unwrap();
        let file = std::fs::File::open(data.join(LOCK_FILE)).unwrap();
        file.try_lock().unwrap();
        let err = lock_data_dir(&data, Purpose::Serve).unwrap_err().to_string();
        assert!(err.contains("another refdesk serve (process 4242)"), "{err}");
        drop(file);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&data), 0o700);
            assert_eq!(mode(&data.join(LOCK_FILE)), 0o600);
        }
    }
}
