//! The data folder's files belong to the user refdesk serves as.
//!
//! An operator runs `restore`, `setup` or `user add` as root now and then
//! (at 3 a.m., with `sudo`): the database file it would make is root's,
//! and the service, which runs as the folder's owner, then cannot open it
//! — a `Permission denied` on a file that is plainly there. So a command
//! run as root in a folder another user owns is refused before it does
//! anything, with the line to run instead. (Giving root's files to that
//! user afterwards would let whoever holds the service's account have root
//! change the owner of files outside the folder, through a link planted in
//! it.) A command run as a user who may not read the database is refused
//! at once too, saying whose it is.

use anyhow::bail;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Refuses a command that would make files in `dir` another user could
/// not use, or open a SQLite database `db` this user may not read: an
/// operator's `one_off` command (not `serve`: a container may serve as root
/// from a volume another user id owns) run as root where the database or
/// the folder is another user's, or any command run as a user the
/// database is closed to.
pub fn check(dir: &Path, db: Option<&Path>, one_off: bool) -> anyhow::Result<()> {
    let me = rustix::process::geteuid();
    if me.is_root() {
        // SQLite's files only: a PostgreSQL node's folder holds none.
        let Some(db) = db.filter(|_| one_off) else { return Ok(()) };
        let owner = |p: &Path| std::fs::metadata(p).ok().map(|m| m.uid()).filter(|uid| *uid != 0);
        if let Some((what, uid)) = owner(db).map(|u| (db, u)).or_else(|| owner(dir).map(|u| (dir, u))) {
            bail!(
                "{} belongs to user id {uid}, and this command runs as root: what it made or changed there would \
                 be root's, and the service, running as that user, could not open it. Run it as that user \
                 (`runuser -u <that user> -- refdesk …`); nothing was changed",
                what.display()
            );
        }
        return Ok(());
    }
    let Some(db) = db else { return Ok(()) };
    let Ok(meta) = std::fs::metadata(db) else { return Ok(()) };
    if rustix::fs::access(db, rustix::fs::Access::READ_OK).is_err() {
        bail!(
            "the database {} belongs to user id {} and is closed to user id {}, which this command runs as: run \
             refdesk as the user the service runs as (`runuser -u <that user> -- refdesk …`)",
            db.display(),
            meta.uid(),
            me.as_raw()
        );
    }
    Ok(())
}
