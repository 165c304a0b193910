//! The data folder's files belong to the user refdesk serves as.
//!
//! An operator runs `restore`, `setup` or `user add` as root now and then
//! (at 3 a.m., with `sudo`): the database file it makes is root's, and the
//! service, which runs as the folder's owner, then cannot open it — a
//! `Permission denied` on a file that is plainly there. So a command run as
//! root in a folder another user owns gives what it made there to that
//! user as it ends ([`hand_back`]), and a command run as a user who does
//! not own the database is refused at once, saying whose it is
//! ([`check`]).

use anyhow::bail;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// How deep under the data folder files are looked for (the mail folder's
/// files are one level down).
const DEPTH: usize = 3;

/// Whether this process runs as root.
fn as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Gives the data folder's owner whatever under it is root's, when this
/// process runs as root and the folder is another user's; says each it
/// could not. Returns how many it gave.
pub fn hand_back(dir: &Path) -> usize {
    let Ok(folder) = std::fs::metadata(dir) else { return 0 };
    if !as_root() || folder.uid() == 0 {
        return 0;
    }
    let mut given = 0;
    give(dir, (folder.uid(), folder.gid()), DEPTH, &mut given);
    if given > 0 {
        err!(
            "note: {given} file(s) this command made as root in {} were given to its owner (user id {})",
            dir.display(),
            folder.uid()
        );
    }
    given
}

fn give(dir: &Path, (uid, gid): (u32, u32), depth: usize, given: &mut usize) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        // Not following links: a link's target is not the folder's.
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if meta.uid() == 0 {
            match std::os::unix::fs::lchown(&path, Some(uid), Some(gid)) {
                Ok(()) => *given += 1,
                Err(e) => err!("warning: cannot give {} to user id {uid}: {e}", path.display()),
            }
        }
        if meta.is_dir() && depth > 1 {
            give(&path, (uid, gid), depth - 1, given);
        }
    }
}

/// Refuses a SQLite database that another user owns than the one this
/// command runs as (root may open any): SQLite's own word for it ("unable
/// to open database file", "Permission denied") names neither.
pub fn check(db: &Path) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::metadata(db) else { return Ok(()) };
    let me = rustix::process::geteuid().as_raw();
    if me == 0 || meta.uid() == me {
        return Ok(());
    }
    let folder = db.parent().unwrap_or(Path::new("."));
    bail!(
        "the database {} belongs to user id {}, and refdesk runs as user id {me}: run refdesk as the user the \
         service runs as (`runuser -u <that user> -- refdesk …`), or, if the service runs as this user, give it \
         the data folder (`chown -R <user>: {}`)",
        db.display(),
        meta.uid(),
        folder.display()
    )
}
