//! Names the commit a build was made from (`REFDESK_COMMIT`, for
//! `refdesk --version` and the `refdesk_build_info` metric): so that an
//! operator can tell which build each node runs, when the version number
//! alone (the same between releases) cannot.
//!
//! From `REFDESK_COMMIT` in the build's environment when set (a package
//! built from a tarball, without Git), else from `git` in the checkout;
//! `unknown` when neither says. A checkout with uncommitted changes is
//! not marked: the commit is what the build started from.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=REFDESK_COMMIT");
    let commit = match std::env::var("REFDESK_COMMIT") {
        Ok(given) if !given.trim().is_empty() => given.trim().to_owned(),
        _ => from_git().unwrap_or_else(|| "unknown".into()),
    };
    println!("cargo:rustc-env=REFDESK_COMMIT={commit}");
}

/// The checkout's commit (12 hex digits), with the files that say it
/// watched: the build script runs again when a commit or a checkout moves
/// them.
fn from_git() -> Option<String> {
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).output().ok().filter(|o| o.status.success())?;
        Some(String::from_utf8(out.stdout).ok()?.trim().to_owned())
    };
    let dir = PathBuf::from(git(&["rev-parse", "--absolute-git-dir"])?);
    let common = PathBuf::from(git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])?);
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    // Only files that exist: Cargo runs the script at every build for one
    // that does not.
    let watched = [Some(dir.join("HEAD")), Some(common.join("packed-refs")), branch.map(|b| common.join(b))];
    for file in watched.into_iter().flatten().filter(|f| f.exists()) {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    commit.bytes().all(|b| b.is_ascii_hexdigit()).then_some(commit)
}
