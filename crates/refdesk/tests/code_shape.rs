//! The shape the code keeps (issue 14, STYLE.md): no function of the
//! crates' sources longer than `MAX_LINES`, outside the declarative tables
//! listed in `TABLES`. A long function hides the steps a reader needs to
//! see; split it into the steps. And every crate forbids `unsafe` but
//! `crates/memory`, whose one function calls the C library.
//!
//! The sources are rustfmt-formatted (CI checks it), so a function's body
//! ends at the first line that is its opening line's indentation and `}`.

use std::path::{Path, PathBuf};

/// The longest a function may be, its signature and closing brace included.
const MAX_LINES: usize = 80;

/// Functions that are one table (a `match` from every case to its answer),
/// read row by row, and the test that is the table of role × scope ×
/// action (DESIGN §2): longer is clearer than split. `file:function`.
const TABLES: &[&str] = &["domain/src/authz.rs:authorize", "domain/src/authz.rs:administration_follows_role_and_scope"];

/// The workspace's crates, by folder.
const CRATES: [&str; 6] = ["domain", "memory", "store", "app", "server", "refdesk"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// `(name, first line, length)` of every function with a body in `text`.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let after = ["pub(crate) ", "pub(super) ", "pub ", "const ", "async ", "unsafe "]
            .iter()
            .fold(trimmed, |t, p| t.strip_prefix(p).unwrap_or(t));
        let Some(rest) = after.strip_prefix("fn ") else { continue };
        let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        // The signature ends with `{` (a body) or `;` (a declaration).
        let Some(open) = (i..lines.len()).find(|&j| lines[j].ends_with('{') || lines[j].ends_with(';')) else {
            continue;
        };
        if lines[open].ends_with(';') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = (open + 1..lines.len()).find(|&j| lines[j] == close) {
            found.push((name, i + 1, end - i + 1));
        }
    }
    found
}

#[test]
fn no_function_is_longer_than_the_limit_outside_declarative_tables() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for krate in CRATES {
        sources(&crates.join(krate).join("src"), &mut files);
    }
    assert!(files.len() > 40, "the sources were not found under {}", crates.display());
    let mut long = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("a source file");
        let shown = file.strip_prefix(&crates).unwrap_or(file).display().to_string();
        for (name, line, length) in functions(&text) {
            if length > MAX_LINES && !TABLES.contains(&format!("{shown}:{name}").as_str()) {
                long.push(format!("{shown}:{line} {name} ({length} lines)"));
            }
        }
    }
    assert!(long.is_empty(), "functions longer than {MAX_LINES} lines:\n{}", long.join("\n"));
}

#[test]
fn the_measure_finds_a_long_function_and_skips_declarations() {
    let body = "    x();\n".repeat(90);
    let text = format!("trait T {{\n    fn d(&self);\n}}\n\npub async fn long() {{\n{body}}}\n\nfn short() {{\n}}\n");
    let found = functions(&text);
    assert_eq!(found, vec![("long".to_owned(), 5, 92), ("short".to_owned(), 98, 2)]);
}

#[test]
fn every_crate_forbids_unsafe_code_but_the_one_that_calls_c() {
    let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let members = std::fs::read_to_string(crates.join("../Cargo.toml")).expect("the workspace's Cargo.toml");
    for krate in CRATES {
        assert!(members.contains(&format!("\"crates/{krate}\"")), "{krate} is not a member of the workspace");
        let root = ["lib.rs", "main.rs"].map(|f| crates.join(krate).join("src").join(f));
        let root = root.iter().find(|p| p.exists()).unwrap_or_else(|| panic!("{krate} has no lib.rs or main.rs"));
        let text = std::fs::read_to_string(root).expect("a crate root");
        let forbids = text.lines().any(|l| l.trim() == "#![forbid(unsafe_code)]");
        match krate {
            "memory" => assert!(text.contains("#![deny(unsafe_code)]") && !forbids, "crates/memory's root changed"),
            _ => assert!(forbids, "crates/{krate} does not forbid unsafe code"),
        }
    }
    // Every member is in CRATES.
    let listed = members.lines().find(|l| l.starts_with("members")).expect("the workspace's members");
    assert_eq!(listed.matches("crates/").count(), CRATES.len(), "a crate is missing from CRATES: {listed}");
}
