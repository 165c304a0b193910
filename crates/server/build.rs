//! Names the commit a build was made from (`REFDESK_COMMIT`, for
//! `refdesk --version` and the `refdesk_build_info` metric): so that an
//! operator can tell which build each node runs, when the version number
//! alone (the same between releases) cannot.
//!
//! From `REFDESK_COMMIT` in the build's environment when set (a package
//! built from a tarball, without Git: 1 to 64 letters, digits, `.`, `_`
//! or `-`, or the build stops saying so), else from `git` in the checkout;
//! `unknown` when neither says. A checkout with uncommitted changes is
//! not marked: the commit is what the build started from.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=REFDESK_COMMIT");
    let commit = match std::env::var("REFDESK_COMMIT") {
        Ok(given) if !given.trim().is_empty() => {
            let given = given.trim().to_owned();
            let fits = given.len() <= 64 && given.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            assert!(fits, "REFDESK_COMMIT must be 1 to 64 letters, digits, '.', '_' or '-': {given:?}");
            given
        }
        _ => from_git().unwrap_or_else(|| "unknown".into()),
    };
    println!("cargo:rustc-env=REFDESK_COMMIT={commit}");
}

/// The checkout's commit (12 hex digits), with the files that say it
/// watched: the build script runs again when a commit, a checkout or a
/// reset moves them (`logs/HEAD` records each; a branch's own file may be
/// packed away). Paths from `--git-path` (Git 2.5 and later), which knows
/// worktrees.
fn from_git() -> Option<String> {
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
        Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
    };
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    if !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    let watched = ["HEAD", "logs/HEAD", "packed-refs"].into_iter().map(str::to_owned).chain(branch);
    // Only files that exist: Cargo runs the script at every build for one
    // that does not.
    for file in watched.filter_map(|f| git(&["rev-parse", "--git-path", &f])).map(PathBuf::from) {
        if let Ok(file) = std::fs::canonicalize(&file) {
            println!("cargo:rerun-if-changed={}", file.display());
        }
    }
    Some(commit)
}
