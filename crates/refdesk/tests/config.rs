//! The configuration an operator runs with (issue 16), through the real
//! binary: every setting from the file, the environment (`REFDESK_<NAME>`)
//! or a flag (`--set`); `refdesk config` prints what is in effect with its
//! secrets hidden; `refdesk config --check` exits non-zero naming the line
//! at fault.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_refdesk");

fn refdesk(file: Option<&Path>, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).stdin(Stdio::null());
    if let Some(f) = file {
        cmd.arg("--config").arg(f);
    }
    cmd.envs(env.iter().copied()).args(args).output().expect("refdesk runs")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn file(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join(format!("refdesk-{}.toml", std::fs::read_dir(dir).unwrap().count()));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_configuration_in_effect_comes_from_the_file_the_environment_and_flags_with_secrets_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let f = file(dir.path(), "database_connections = 3\n\n[limits]\nblock_hours = 12\nrollup_seconds = 30\n");
    let env = [
        ("REFDESK_LIMITS_ROLLUP_SECONDS", "45"),
        ("REFDESK_SMTP_URL", "smtp://mailer:hunter2@mail.example.org:587?tls=required"),
        ("REFDESK_IDLE_CHAT_MINUTES", "9"),
    ];
    let o = refdesk(Some(&f), &env, &["--set", "limits.block_hours=48", "config"]);
    assert!(o.status.success(), "{}", err(&o));
    let shown: toml::Table = toml::from_str(&out(&o)).expect("the output is TOML");
    let limits = shown["limits"].as_table().unwrap();
    assert_eq!(shown["database_connections"].as_integer(), Some(3), "from the file");
    assert_eq!(limits["rollup_seconds"].as_integer(), Some(45), "the environment over the file");
    assert_eq!(limits["idle_chat_minutes"].as_integer(), Some(9), "a table's setting by its key alone");
    assert_eq!(limits["block_hours"].as_integer(), Some(48), "a flag over the file");
    let smtp = shown["mail"]["smtp_url"].as_str().unwrap();
    assert_eq!(smtp, "smtp://mailer:***@mail.example.org:587?tls=required");
    assert!(!out(&o).contains("hunter2"));
}

#[test]
fn config_check_says_what_is_wrong_and_where() {
    let dir = tempfile::tempdir().unwrap();
    let good = file(dir.path(), "listen = \"127.0.0.1:8089\"\n");
    let o = refdesk(Some(&good), &[], &["config", "--check"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("valid"));

    let typo = file(dir.path(), "listen = \"127.0.0.1:8089\"\nlisen = 3\n");
    let o = refdesk(Some(&typo), &[], &["config", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("line 2") && err(&o).contains("lisen"), "{}", err(&o));

    let out_of_range = file(dir.path(), "listen = \"127.0.0.1:8089\"\n\n[limits]\nblock_hours = 0\n");
    let o = refdesk(Some(&out_of_range), &[], &["config", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("line 4") && err(&o).contains("block_hours"), "{}", err(&o));

    let o = refdesk(Some(&good), &[("REFDESK_LIMITS_BLOCK_HOURS", "soon")], &["config", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("REFDESK_LIMITS_BLOCK_HOURS"), "{}", err(&o));

    let o = refdesk(Some(&good), &[], &["--set", "limits.nothing=1", "config", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("limits.nothing"), "{}", err(&o));

    // The usual slip in TOML, a text value without its quotes: the line, on
    // one line, and what to write.
    let unquoted = file(dir.path(), "data_dir = \"data\"\nlisten = 127.0.0.1:8089\n");
    let o = refdesk(Some(&unquoted), &[], &["config", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    let said = err(&o);
    assert!(said.contains("line 2") && said.contains("a text value goes in quotes"), "{said}");
    assert_eq!(said.trim_end().lines().count(), 1, "{said}");
}

#[test]
fn a_setting_from_the_environment_is_checked_with_the_flags_that_complete_it() {
    // NATS links nodes that share a PostgreSQL database: REFDESK_NATS_URL
    // alone is refused, and `--database-url` on the command line makes it
    // valid (the check once ran before the flags were applied).
    let env = [
        ("REFDESK_NATS_URL", "nats://127.0.0.1:4222"),
        ("REFDESK_NATS_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
    ];
    let alone = refdesk(None, &env, &["config", "--check"]);
    assert!(!alone.status.success(), "{}", out(&alone));
    assert!(err(&alone).contains("database_url"), "{}", err(&alone));
    let with_flag =
        refdesk(None, &env, &["--database-url", "postgres://postgres@127.0.0.1:5432/postgres", "config", "--check"]);
    assert!(with_flag.status.success(), "{}", err(&with_flag));
    assert!(out(&with_flag).contains("the configuration is valid"));
}

#[test]
fn a_listen_address_that_is_not_one_says_what_one_looks_like_and_a_missing_database_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mistyped");
    for listen in ["localhost:8080", "127.0.0.1", "127.0.0.1:99999"] {
        let o = refdesk(None, &[], &["--data-dir", data.to_str().unwrap(), "serve", "--listen", listen]);
        assert!(!o.status.success());
        assert!(err(&o).contains("give an IP address and a port"), "{listen}: {}", err(&o));
    }
    // Commands on what is set up refuse a data folder with no database.
    for args in [&["list"][..], &["library", "add", "x", "--name", "X", "--institution", "1"], &["migrate"]] {
        let o = refdesk(None, &[], &[&["--data-dir", data.to_str().unwrap()][..], args].concat());
        assert!(!o.status.success());
        assert!(err(&o).contains("nothing set up yet"), "{args:?}: {}", err(&o));
    }
    assert!(!data.exists(), "nothing was created");
}

#[test]
fn a_setting_out_of_range_names_the_variable_or_the_flag_that_set_it() {
    let o = refdesk(None, &[("REFDESK_BLOCK_HOURS", "0")], &["config", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("limits.block_hours") && err(&o).contains("from REFDESK_BLOCK_HOURS"), "{}", err(&o));
    let o = refdesk(None, &[("REFDESK_BLOCK_HOURS", "0")], &["--set", "limits.block_hours=800", "config", "--check"]);
    assert!(err(&o).contains("from --set limits.block_hours"), "the last to set it: {}", err(&o));
    // Set in the file too: the variable is named, not the file's line.
    let dir = tempfile::tempdir().unwrap();
    let f = file(dir.path(), "[limits]\nblock_hours = 12\n");
    let o = refdesk(Some(&f), &[("REFDESK_BLOCK_HOURS", "0")], &["config", "--check"]);
    assert!(err(&o).contains("from REFDESK_BLOCK_HOURS") && !err(&o).contains("line 2"), "{}", err(&o));
    // Out of range because another setting was lowered: both are named.
    let o = refdesk(None, &[("REFDESK_MAX_BLOCK_HOURS", "12")], &["config", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("limits.block_hours must be between 1 and 12"), "{}", err(&o));
    assert!(err(&o).contains("limits.max_block_hours is 12, from REFDESK_MAX_BLOCK_HOURS"), "{}", err(&o));
}

#[test]
fn a_misspelt_variable_is_warned_about_and_refused_by_the_check() {
    let env = [("REFDESK_LISTN", "127.0.0.1:9"), ("REFDESK_BLOCK_HOURS", "48"), ("REFDESK_TEST_BACKEND", "sqlite")];
    let o = refdesk(None, &env, &["config"]);
    assert!(o.status.success(), "a warning, not an error: {}", err(&o));
    assert_eq!(err(&o).matches("REFDESK_LISTN").count(), 1, "warned about once: {}", err(&o));
    assert!(err(&o).contains("not a refdesk setting"), "{}", err(&o));
    assert!(!err(&o).contains("REFDESK_BLOCK_HOURS") && !err(&o).contains("REFDESK_TEST_BACKEND"), "{}", err(&o));
    // The check before a restart: the setting meant is not in effect.
    let o = refdesk(None, &env, &["config", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("error: REFDESK_LISTN is not a refdesk setting"), "{}", err(&o));
    assert!(!err(&o).contains("REFDESK_TEST_BACKEND is"), "{}", err(&o));
}

/// Every setting answers to `REFDESK_` and its name, the SMTP URL too
/// (unset by default, it had only a short name, and the rule's name was
/// warned about and ignored: the mail was filed, not sent); two names of
/// one setting that disagree are refused, not one taken without a word.
#[test]
fn every_setting_answers_to_its_rules_name_and_two_names_that_disagree_are_refused() {
    let url = "smtp://127.0.0.1:2525";
    let o = refdesk(None, &[("REFDESK_MAIL_SMTP_URL", url), ("REFDESK_MAIL_HOLD", "true")], &["config"]);
    assert!(o.status.success() && !err(&o).contains("not a refdesk setting"), "{}", err(&o));
    let shown: toml::Table = toml::from_str(&out(&o)).expect("the output is TOML");
    assert_eq!(shown["mail"]["smtp_url"].as_str(), Some(url));
    assert_eq!(shown["mail"]["hold"].as_bool(), Some(true));
    let o = refdesk(None, &[("REFDESK_MAIL_SMTP_URL", url), ("REFDESK_SMTP_URL", url)], &["config", "--check"]);
    assert!(o.status.success(), "the same value twice: {}", err(&o));
    let o = refdesk(None, &[("REFDESK_MAIL_SMTP_URL", url), ("REFDESK_SMTP_URL", "smtp://[::1]:25")], &["config"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("REFDESK_SMTP_URL and REFDESK_MAIL_SMTP_URL both set mail.smtp_url"), "{}", err(&o));
    let both = [("REFDESK_LIMITS_BLOCK_HOURS", "48"), ("REFDESK_BLOCK_HOURS", "12")];
    let o = refdesk(None, &both, &["config", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("REFDESK_LIMITS_BLOCK_HOURS and REFDESK_BLOCK_HOURS both set limits.block_hours"),
        "{}",
        err(&o)
    );
}

#[test]
fn the_printed_configuration_keeps_what_makes_a_link_secure_and_refuses_to_run_with_its_hidden_secrets() {
    let env = [("REFDESK_SMTP_URL", "smtp://mailer:hunter2@mail.example.org:587?tls=required")];
    let o = refdesk(None, &env, &["config"]);
    assert!(o.status.success(), "{}", err(&o));
    let shown: toml::Table = toml::from_str(&out(&o)).expect("the output is TOML");
    let smtp = shown["mail"]["smtp_url"].as_str().unwrap();
    // Saved as a configuration, it would still require TLS (it once said
    // `?***`, and the mail then went in the clear)…
    assert_eq!(smtp, "smtp://mailer:***@mail.example.org:587?tls=required");
    // …and it is refused rather than used to sign in with "***".
    let dir = tempfile::tempdir().unwrap();
    let saved = dir.path().join("saved.toml");
    std::fs::write(&saved, out(&o)).unwrap();
    let o = refdesk(Some(&saved), &[], &["config", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("mail.smtp_url holds ***"), "{}", err(&o));
}

#[test]
fn an_error_about_a_setting_a_variable_or_flag_set_names_it_and_not_a_line_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = file(
        dir.path(),
        "listen = \"127.0.0.1:8089\"\npublic_url = \"https://ask.example.org\"\n\n[mail]\nfrom = \"a@b.org\"\n",
    );
    for (var, value, setting) in
        [("REFDESK_PUBLIC_URL", "ask.example.org", "public_url"), ("REFDESK_MAIL_FROM", "bad", "mail.from")]
    {
        let o = refdesk(Some(&f), &[(var, value)], &["config", "--check"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(err(&o).contains(setting) && err(&o).contains(&format!("(from {var})")), "{}", err(&o));
        assert!(!err(&o).contains("line "), "the file's lines are fine: {}", err(&o));
    }
    let o =
        refdesk(Some(&f), &[], &["--data-dir", f.to_str().unwrap(), "--set", "block_hours=30", "config", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("it is limits.block_hours") && !err(&o).contains("line "), "{}", err(&o));
}

#[test]
fn a_relative_path_in_a_file_is_taken_from_the_files_folder_whatever_folder_a_command_runs_in() {
    let etc = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let f = file(etc.path(), "data_dir = \"data\"\n");
    let o = Command::new(BIN)
        .env_clear()
        .current_dir(elsewhere.path())
        .arg("--config")
        .arg(&f)
        .arg("config")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let shown: toml::Table = toml::from_str(&out(&o)).unwrap();
    assert_eq!(shown["data_dir"].as_str().unwrap(), etc.path().join("data").to_str().unwrap());
    // Not set in the file: from the folder the command runs in, as before,
    // and printed whole, so that the output saved as a file elsewhere still
    // names the same folder.
    let o = Command::new(BIN).env_clear().current_dir(elsewhere.path()).arg("config").output().unwrap();
    let shown: toml::Table = toml::from_str(&out(&o)).unwrap();
    assert_eq!(shown["data_dir"].as_str().unwrap(), elsewhere.path().join("data").to_str().unwrap());
    // The NATS files too, with the file named from the folder above its
    // own: printed whole (they were printed from the folder the command ran
    // in, so the output saved as a file named files that are not there).
    let text = "database_url = \"postgres://refdesk@db/refdesk\"\nnats_url = \"nats://nats:4222\"\n\
                nats_key_file = \"nats.key\"\nnats_ca_file = \"ca.pem\"\nnats_credentials_file = \"n.creds\"\n";
    let f = file(etc.path(), text);
    let above = etc.path().parent().unwrap();
    let named = f.strip_prefix(above).unwrap();
    let o = Command::new(BIN).env_clear().current_dir(above).arg("--config").arg(named).arg("config").output().unwrap();
    assert!(o.status.success(), "{}", err(&o));
    let shown: toml::Table = toml::from_str(&out(&o)).unwrap();
    for (setting, name) in
        [("nats_key_file", "nats.key"), ("nats_ca_file", "ca.pem"), ("nats_credentials_file", "n.creds")]
    {
        assert_eq!(shown[setting].as_str().unwrap(), etc.path().join(name).to_str().unwrap(), "{setting}");
    }
    // A path through `..` is printed as the folder it names, made or not.
    let var = tempfile::tempdir().unwrap();
    let up = format!("../{}", var.path().file_name().unwrap().to_str().unwrap());
    let root = var.path().canonicalize().unwrap();
    for (data, named) in [(format!("{up}/data"), root.join("data")), (up, root)] {
        let f = file(etc.path(), &format!("data_dir = \"{data}\"\n"));
        let o = Command::new(BIN).env_clear().arg("--config").arg(&f).arg("config").output().unwrap();
        assert!(o.status.success(), "{}", err(&o));
        let shown: toml::Table = toml::from_str(&out(&o)).unwrap();
        assert_eq!(shown["data_dir"].as_str().unwrap(), named.to_str().unwrap(), "{data}");
    }
}

#[test]
fn a_data_folder_that_cannot_be_one_is_refused_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the folder should be: the check says so.
    let a_file = file(dir.path(), "");
    let o = refdesk(None, &[], &["--data-dir", a_file.to_str().unwrap(), "config", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("is a file, not a folder"), "{}", err(&o));
    // A mistyped path: the check says so, and `serve` refuses it rather than
    // serving an empty service.
    let deep = dir.path().join("no/such/data");
    let o = refdesk(None, &[], &["--data-dir", deep.to_str().unwrap(), "config", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("the folder above it does not exist"), "{}", err(&o));
    let o = refdesk(None, &[], &["--data-dir", deep.to_str().unwrap(), "serve", "--listen", "127.0.0.1:0"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("the folder above it does not exist"), "{}", err(&o));
    // Nor does `setup` make it.
    let setup = ["setup", "--cooperative", "C", "--institution", "I", "--library", "l", "--library-name", "L"];
    let args = [&["--data-dir", deep.to_str().unwrap()][..], &setup, &["--admin", "nora"]].concat();
    let o = refdesk(None, &[("REFDESK_PASSWORD", "river bend otter 1889")], &args);
    assert!(!o.status.success());
    assert!(err(&o).contains("the folder above it does not exist"), "{}", err(&o));
    assert!(!dir.path().join("no").exists());
    // A port already taken: refused before the data folder is made.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().to_string();
    let data = dir.path().join("data");
    let o = refdesk(None, &[], &["--data-dir", data.to_str().unwrap(), "serve", "--listen", &port]);
    assert!(!o.status.success());
    assert!(err(&o).contains("Address already in use") || err(&o).contains("address in use"), "{}", err(&o));
    assert!(!data.exists(), "nothing was created");
    // The metrics' port taken: said before the server says it serves.
    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    let env = [("REFDESK_METRICS_LISTEN", port.as_str())];
    let o = refdesk(None, &env, &["--data-dir", data.to_str().unwrap(), "serve", "--listen", &listen]);
    assert!(!o.status.success());
    assert!(err(&o).contains("metrics_listen") && !out(&o).contains("is serving"), "{}{}", out(&o), err(&o));
}

#[test]
fn a_value_of_the_wrong_form_says_what_the_right_one_looks_like() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("listen = \"localhost:8080\"\n", "like 127.0.0.1:8080 (not a host name)"),
        ("trusted_proxies = [\"proxy.example.org\"]\n", "is not an IP address or a network (such as 10.0.0.5 or"),
        ("trusted_proxies = [\"10.0.0.5/8\"]\n", "has bits set past its prefix"),
        ("[mail]\nsmtp_url = \"mail.example.org:25\"\n", "must start with smtps://"),
        ("listen = \"127.0.0.1:99999\"\n", "a port from 1 to 65535"),
        ("[limits]\nframe_burst = 0\n", "line 2: limits.frame_burst must be between 1 and 100000"),
        ("[mail]\nfrom = \"Ask a Librarian\"\n", "give one like \"Ask a Librarian <ask@library.example.org>\""),
        (
            "[mail]\nfrom = \"Ask <ask@example.org>\"\npublic_url = \"https://ask.example.org\"\n",
            "public_url is a setting of its own, outside every table: it goes above the file's first [table]",
        ),
    ];
    for (text, says) in cases {
        let o = refdesk(Some(&file(dir.path(), text)), &[], &["config", "--check"]);
        assert_eq!(o.status.code(), Some(1), "{text}");
        assert!(err(&o).contains(says), "{text}: {}", err(&o));
    }
    let o = refdesk(None, &[("REFDESK_TRUSTED_PROXIES", "10.0.0.0/0")], &["config", "--check"]);
    assert!(err(&o).contains("a /0 would believe any client"), "{}", err(&o));
    // Networks, for proxies whose addresses change (a platform's ingress).
    let env = [("REFDESK_TRUSTED_PROXIES", "10.0.0.0/8, fd00::/8, 192.0.2.7")];
    let o = refdesk(None, &env, &["config"]);
    assert!(o.status.success(), "{}", err(&o));
    let printed = out(&o).split_whitespace().collect::<String>();
    assert!(printed.contains(r#"trusted_proxies=["10.0.0.0/8","fd00::/8","192.0.2.7",]"#), "{}", out(&o));
    // A log filter that does not parse is warned about, not ignored.
    let o = refdesk(None, &[("REFDESK_LOG", "info,,=x[")], &["config", "--check"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("REFDESK_LOG=\"info,,=x[\" is not a log filter"), "{}", err(&o));
}

#[test]
fn the_check_says_every_problem_at_once_each_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = "listen = \"127.0.0.1:8080\"\nmetrics_listen = \"127.0.0.1:8080\"\nnats_subject = \"a.*\"\n[limits]\nframe_burst = 0\nsockets_per_chat = 5000\n";
    let path = file(dir.path(), text);
    let o = refdesk(Some(&path), &[], &["config", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    let said = err(&o);
    assert!(said.contains("4 problems:"), "{said}");
    let at = |n: usize, what: &str| format!("{}, line {n}: {what}", path.display());
    let mut from = 0;
    // In the file's order.
    for line in [
        at(2, "metrics_listen must differ from listen"),
        at(3, "nats_subject must be dot-separated words"),
        at(5, "limits.frame_burst must be between 1 and 100000"),
        at(6, "limits.sockets_per_chat must be between 1 and 1000"),
    ] {
        let found = said[from..].find(&line).unwrap_or_else(|| panic!("{line:?} after the one before in {said}"));
        from += found + line.len();
    }
    // The mail settings' problems too, each of them.
    let mail = "[mail]\nfrom = \"bad\"\nsmtp_url = \"smtp://user:pw@mail.example.org:25\"\n";
    let o = refdesk(Some(&file(dir.path(), mail)), &[], &["config", "--check"]);
    let said = err(&o);
    assert!(said.contains("2 problems:"), "{said}");
    assert!(said.contains("line 2: mail.from \"bad\" is not an address"), "{said}");
    assert!(said.contains("line 3: mail.smtp_url gives a password over plain SMTP"), "{said}");
    // One is said as before, without a count.
    let o = refdesk(Some(&file(dir.path(), "[limits]\nframe_burst = 0\n")), &[], &["config", "--check"]);
    assert!(!err(&o).contains("problems") && err(&o).contains("line 2: limits.frame_burst"), "{}", err(&o));
}

#[test]
fn a_database_that_does_not_answer_is_named_once_with_its_cause_said_once() {
    // Nothing listens on port 1: the connection is refused. The store's
    // error repeats its source's text (for logs that print only the
    // message); the command line says each cause once.
    let o = refdesk(None, &[], &["--database-url", "postgres://postgres@127.0.0.1:1/test", "list"]);
    assert!(!o.status.success());
    let text = err(&o);
    assert!(text.contains("cannot connect to PostgreSQL at 127.0.0.1:1"), "{text}");
    assert_eq!(text.matches("Connection refused").count(), 1, "{text}");
}

#[test]
fn a_name_given_for_an_id_says_where_the_ids_are() {
    for args in [
        &["institution", "add", "Ghost", "--cooperative", "North Shore Libraries"][..],
        &["library", "add", "annex", "--name", "Annex", "--institution", "0"],
    ] {
        let o = refdesk(None, &[], args);
        assert!(!o.status.success());
        assert!(err(&o).contains("give its id, a number (`refdesk list` shows each with its id)"), "{}", err(&o));
        assert!(!err(&o).contains("invalid digit"), "{}", err(&o));
    }
}

#[test]
fn what_works_but_is_unsafe_on_the_open_internet_is_said_not_refused() {
    let check = |env: &[(&str, &str)]| {
        let mail = [("REFDESK_MAIL_SMTP_URL", "smtp://127.0.0.1:2525"), ("REFDESK_MAIL_FROM", "Ask <ask@example.org>")];
        let env: Vec<_> = env.iter().copied().chain(mail).collect();
        let o = refdesk(None, &env, &["config", "--check"]);
        assert!(o.status.success(), "advice, not an error: {}", err(&o));
        assert!(out(&o).trim_end().ends_with("the configuration is valid"), "said last: {}", out(&o));
        // (The data folder's disk may be nearly full where the tests run;
        // no SMTP server listens at that address: each said, and not what
        // this test is about.)
        let disk = |l: &&str| l.starts_with("warning: the data folder's disk");
        let smtp = |l: &&str| l.starts_with("warning: mail.smtp_url:");
        let said = out(&o);
        said.lines()
            .filter(|l| l.starts_with("warning: ") && !disk(l) && !smtp(l))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    // No SMTP server: the e-mail stays on the machine, which is said.
    let o = refdesk(None, &[], &["config", "--check"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("warning: no mail.smtp_url: answers and transcripts are written to files in"),
        "{}",
        out(&o)
    );
    // An SMTP server, but the default sender at localhost: said as at start.
    let o = refdesk(None, &[("REFDESK_MAIL_SMTP_URL", "smtp://127.0.0.1:2525")], &["config", "--check"]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("warning: mail.from is at localhost (refdesk <noreply@localhost>)"), "{}", out(&o));
    let plain = check(&[("REFDESK_PUBLIC_URL", "http://ask.example.org")]);
    assert_eq!(plain.len(), 1, "{plain:?}");
    assert!(plain[0].contains("public_url is plain http (http://ask.example.org)") && plain[0].contains("https"));
    let locals = [
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
        "http://[::1]",
        "https://ask.example.org",
    ];
    for local in locals {
        assert_eq!(check(&[("REFDESK_PUBLIC_URL", local)]), Vec::<String>::new(), "{local}");
    }
    let proxied = check(&[("REFDESK_TRUSTED_PROXIES", "127.0.0.1")]);
    assert_eq!(proxied.len(), 1, "{proxied:?}");
    assert!(proxied[0].contains("trusted_proxies is set but public_url is not"), "{proxied:?}");
    let both = [("REFDESK_TRUSTED_PROXIES", "127.0.0.1"), ("REFDESK_PUBLIC_URL", "https://ask.example.org")];
    assert_eq!(check(&both), Vec::<String>::new());
}

/// `config --check` looks at the data folder too, before a restart finds
/// out: whether `serve` can make or use it, the space left on its disk, and
/// whether the database is this refdesk's schema version, one `serve` will
/// upgrade (a warning: take a backup first), or one it would refuse.
#[test]
fn config_check_looks_at_the_data_folder_and_says_whether_serve_would_upgrade_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let check = || refdesk(None, &[], &["--data-dir", data.to_str().unwrap(), "config", "--check"]);
    let o = check();
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("not there yet; `refdesk serve` (or `refdesk setup`) creates it"), "{}", out(&o));
    assert!(!data.exists(), "the check creates nothing");

    std::fs::write(&data, "a file, not a folder").unwrap();
    let o = check();
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("not a folder"), "{}", err(&o));
    std::fs::remove_file(&data).unwrap();

    let o = refdesk(None, &[], &["--data-dir", data.to_str().unwrap(), "demo"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = check();
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains(" GB free of "), "{}", out(&o));
    assert!(out(&o).contains(", this refdesk's"), "{}", out(&o));
    let db = data.join("refdesk.sqlite3");
    let version: i64 =
        rusqlite::Connection::open(&db).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();

    let set = |v: i64| rusqlite::Connection::open(&db).unwrap().pragma_update(None, "user_version", v).unwrap();
    set(version - 2);
    let o = check();
    assert!(o.status.success(), "{}", err(&o));
    let said = out(&o);
    assert!(
        said.contains(&format!("warning: database {} is at schema version {}", db.display(), version - 2)),
        "{said}"
    );
    assert!(
        said.contains(&format!("upgrades it to {version} when it starts")) && said.contains("refdesk backup"),
        "{said}"
    );

    set(version + 3);
    let before = std::fs::read(&db).unwrap();
    let o = check();
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains(&format!("newer than this refdesk ({version})")), "{}", err(&o));
    assert!(!out(&o).contains("is valid"), "not said before the error: {}", out(&o));
    assert!(std::fs::read(&db).unwrap() == before, "the check wrote nothing");

    std::fs::write(&db, "not a database at all, but long enough to look like one to a quick glance").unwrap();
    let o = check();
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("refdesk.sqlite3"), "{}", err(&o));
}

/// On PostgreSQL `config --check` connects as `serve` would and reads the
/// schema version, changing nothing, and refuses what `serve` would refuse
/// at start: a bad URL, an `sslrootcert` it cannot read, a database out of
/// reach, a NATS key file or CA file it cannot use.
#[test]
fn config_check_connects_to_postgresql_and_reads_the_nats_links_files_as_serve_would() {
    let server =
        std::env::var("REFDESK_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("refdesk_check_{}_{nanos}", std::process::id());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime
        .block_on(refdesk_store::postgres::create_database(&server, &name))
        .unwrap_or_else(|e| panic!("PostgreSQL must be running at {server} (scripts/test.sh starts it): {e}"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let check = |url: &str, env: &[(&str, &str)]| {
        refdesk(None, env, &["--data-dir", data.to_str().unwrap(), "--database-url", url, "config", "--check"])
    };
    let o = check(&db, &[]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("the PostgreSQL database: not set up yet"), "{}", out(&o));
    let o = check(&db, &[]);
    assert!(out(&o).contains("not set up yet"), "the check created no schema: {}", out(&o));
    let o = refdesk(None, &[], &["--data-dir", data.to_str().unwrap(), "--database-url", &db, "demo"]);
    assert!(o.status.success(), "{}", err(&o));
    let o = check(&db, &[]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("the PostgreSQL database: schema version ") && out(&o).contains(", this refdesk's"));

    let refused = |url: &str, env: &[(&str, &str)], said: &str| {
        let o = check(url, env);
        assert_eq!(o.status.code(), Some(1), "{url} {env:?}: {}", out(&o));
        assert!(err(&o).contains(said), "{url} {env:?}: {}", err(&o));
    };
    refused(&format!("{db}?sslmode=verfy-full"), &[], "bad PostgreSQL URL");
    refused(&format!("{db}?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"), &[], "sslrootcert");
    refused("postgres://postgres@127.0.0.1:1/postgres", &[], "cannot connect to PostgreSQL at 127.0.0.1:1");
    // The setting at fault is named, as for the file's other lines.
    refused("postgres://postgres@127.0.0.1:1/postgres", &[], "database_url (REFDESK_DATABASE_URL");

    let nats = ("REFDESK_NATS_URL", "nats://127.0.0.1:4222");
    refused(&db, &[nats, ("REFDESK_NATS_KEY_FILE", "/nonexistent/nats.key")], "nats_key_file");
    let not_a_ca = dir.path().join("ca.pem");
    std::fs::write(&not_a_ca, "not a certificate").unwrap();
    let key = ("REFDESK_NATS_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
    refused(&db, &[nats, key, ("REFDESK_NATS_CA_FILE", not_a_ca.to_str().unwrap())], "holds no PEM certificate");
    let second = ("REFDESK_NATS_SECOND_KEY_FILE", "/nonexistent/old.key");
    refused(&db, &[nats, key, second], "nats_second_key_file: cannot read the NATS key file /nonexistent/old.key");
    refused(&db, &[nats, key, ("REFDESK_NATS_SECOND_KEY", "short")], "nats_second_key");
    let o = check(&db, &[nats, key]);
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains("NATS link: the nodes' key and the files it names are readable"), "{}", out(&o));
}

#[test]
fn config_check_warns_of_a_file_everyone_may_read_that_holds_a_secret() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let text = format!(
        "data_dir = {:?}\n[mail]\nsmtp_url = \"smtp://mailer:s3cret-words@127.0.0.1:2525\"\n",
        data.to_str().unwrap()
    );
    let secret = file(dir.path(), &text);
    let chmod = |p: &Path, mode: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    chmod(&secret, 0o644);
    let o = refdesk(Some(&secret), &[], &["config", "--check"]);
    assert!(o.status.success(), "a warning, not an error: {}", err(&o));
    let said = out(&o);
    assert!(said.contains("holds mail.smtp_url and every user of this machine can read it"), "{said}");
    assert!(!said.contains("s3cret-words"), "the secret itself is not said: {said}");
    // `serve` says it in its log as it starts (here it stops next: its port
    // is taken).
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let o = refdesk(Some(&secret), &[], &["serve", "--listen", &listen]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("holds mail.smtp_url and every user of this machine can read it"), "{}", err(&o));
    // Readable by its owner (and group) alone, or holding no secret: nothing said.
    chmod(&secret, 0o640);
    assert!(!err(&refdesk(Some(&secret), &[], &["serve", "--listen", &listen])).contains("can read it"));
    assert!(!out(&refdesk(Some(&secret), &[], &["config", "--check"])).contains("can read it"));
    let plain = file(
        dir.path(),
        &format!("data_dir = {:?}\n[mail]\nsmtp_url = \"smtp://127.0.0.1:2525\"\n", data.to_str().unwrap()),
    );
    chmod(&plain, 0o644);
    assert!(!out(&refdesk(Some(&plain), &[], &["config", "--check"])).contains("can read it"));
    // A file wrong besides: its error, and the warning all the same.
    let wrong = file(dir.path(), &format!("{text}[limits]\nblock_hours = 0\n"));
    chmod(&wrong, 0o644);
    let o = refdesk(Some(&wrong), &[], &["config", "--check"]);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(err(&o).contains("block_hours"), "the error: {}", err(&o));
    assert!(out(&o).contains("holds mail.smtp_url and every user of this machine can read it"), "{}", out(&o));
}

/// A `public_url` no browser could be at is refused before anything
/// starts: every sign-in would be refused, and `library snippet` would
/// print a widget address that loads nowhere.
#[test]
fn a_public_url_no_browser_can_reach_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let check = |url: &str| {
        let set = format!("public_url={url}");
        refdesk(None, &[], &["--data-dir", data.to_str().unwrap(), "--set", &set, "config", "--check"])
    };
    for bad in [
        "https://ask.example.org:99999",
        "https://ask.example.org:0",
        "https://-bad-.example..org",
        "https://ask..example.org",
        "https://1.2.3.999",
        "https://ask.example.org:0443",
        "https://ask.example.org:+443",
    ] {
        let o = check(bad);
        assert_eq!(o.status.code(), Some(1), "{bad}: {}", out(&o));
        assert!(err(&o).contains("public_url must be like https://ask.example.org"), "{bad}: {}", err(&o));
    }
    for fine in [
        "https://ask.example.org",
        "https://ask.example.org:8443/",
        "http://127.0.0.1:8080",
        "https://[::1]:8443",
        "https://ask_desk.example.org",
    ] {
        let o = check(fine);
        assert_eq!(o.status.code(), Some(0), "{fine}: {}", err(&o));
    }
    assert!(!data.exists(), "a check creates nothing");
}

/// `migrate` says what it did: the versions it upgraded the schema from and
/// to, then that there was nothing to do.
#[test]
fn migrate_says_from_which_schema_version_it_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../store/tests/fixtures/v0.1-92606b6.sqlite3");
    std::fs::copy(fixture, dir.path().join("refdesk.sqlite3")).unwrap();
    let data = dir.path().to_str().unwrap();
    // The operator's other commands leave an older schema as it is (they may
    // run beside an older server, in the middle of an upgrade): refused.
    let db = dir.path().join("refdesk.sqlite3");
    let before = std::fs::read(&db).unwrap();
    for args in [&["list"][..], &["user", "list"], &["user", "disable", "ann"], &["demo"]] {
        let o = refdesk(None, &[], &[&["--data-dir", data][..], args].concat());
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", out(&o));
        assert!(
            err(&o).contains("this command does not upgrade it") && err(&o).contains("refdesk migrate"),
            "{}",
            err(&o)
        );
        assert!(std::fs::read(&db).unwrap() == before, "{args:?} changed the database");
    }
    let o = refdesk(None, &[], &["--data-dir", data, "migrate"]);
    assert!(o.status.success(), "{}", err(&o));
    let said = out(&o);
    let upgraded = said.split("upgraded from schema version ").nth(1).unwrap_or_else(|| panic!("{said}"));
    let (from, to) = upgraded.trim().split_once(" to ").unwrap();
    let (from, to): (usize, usize) = (from.parse().unwrap(), to.parse().unwrap());
    assert!(from < to, "{said}");
    let o = refdesk(None, &[], &["--data-dir", data, "migrate"]);
    assert!(out(&o).contains(&format!("is up to date (schema version {to}); nothing to do")), "{}", out(&o));
}

/// A table given one value, and a number past any setting's range, are
/// said in the operator's words, not serde's (`expected struct Limits`).
#[test]
fn a_table_given_a_value_and_a_number_too_large_are_said_plainly() {
    let o = refdesk(None, &[], &["--set", "limits=5", "config", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("--set limits: this is a table of settings, not one value"), "{}", err(&o));
    assert!(!err(&o).contains("struct"), "{}", err(&o));
    let o = refdesk(None, &[("REFDESK_MAX_MESSAGE_CHARS", "18446744073709551616")], &["config", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("REFDESK_MAX_MESSAGE_CHARS") && err(&o).contains("too large"), "{}", err(&o));
}

/// A data folder this user may not create is said as such: it is the
/// folder above it this user may not write in (it was said to belong to
/// another user, though it did not exist). Run as `nobody` when the tests
/// run as root, whom no permission stops.
#[test]
fn a_data_folder_that_cannot_be_created_says_which_folder_is_not_writable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let above = dir.path().join("read-only");
    std::fs::create_dir(&above).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&above, std::fs::Permissions::from_mode(0o555)).unwrap();
    let data = above.join("data");
    let root = Command::new("id").arg("-u").output().map(|o| out(&o).trim() == "0").unwrap();
    let mut cmd = Command::new(if root { "runuser" } else { BIN });
    if root {
        cmd.args(["-u", "nobody", "--", BIN]);
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let o = cmd
        .args(["--data-dir", data.to_str().unwrap(), "serve", "--listen", &listen])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(err(&o).contains("may not write in the folder above it"), "{}", err(&o));
    assert!(!err(&o).contains("belongs to another user"), "{}", err(&o));
    assert!(!data.exists());
}

/// `setup` on PostgreSQL advises a `serve` of that database: without its
/// URL, the command it printed opened (and made) an empty SQLite database
/// in the data folder, where the admin it had just made could not sign in.
/// A password in the URL is not printed.
#[test]
fn setup_on_postgresql_advises_serving_that_database_without_printing_its_password() {
    let server =
        std::env::var("REFDESK_TEST_POSTGRES").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let name = format!("refdesk_check_{}_{nanos}", std::process::id());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime
        .block_on(refdesk_store::postgres::create_database(&server, &name))
        .unwrap_or_else(|e| panic!("PostgreSQL must be running at {server} (scripts/test.sh starts it): {e}"));
    // The same database, with a password (trust authentication ignores it).
    let with_password = db.replacen("://postgres@", "://postgres:s3cret@", 1);
    assert_ne!(with_password, db, "{db}");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let setup = ["setup", "--cooperative", "C", "--institution", "I", "--library", "c-main", "--library-name", "Main"];
    let args = [&["--data-dir", data, "--database-url", &with_password][..], &setup[..], &["--admin", "nora"][..]];
    let o = refdesk(None, &[("REFDESK_PASSWORD", "correct horse battery staple 9")], &args.concat());
    assert!(o.status.success(), "{}", err(&o));
    let shown = with_password.replace(":s3cret@", ":***@");
    let next = format!("next: `refdesk --data-dir {data} --database-url '{shown}' serve`");
    assert!(out(&o).contains(&next), "{}", out(&o));
    assert!(!out(&o).contains("s3cret"), "{}", out(&o));
    // The advised command, its password put back, finds what was set up.
    let o = refdesk(None, &[], &["--data-dir", data, "--database-url", &with_password, "list"]);
    assert!(o.status.success() && out(&o).contains("/ask/c-main"), "{}{}", out(&o), err(&o));
    assert!(!std::path::Path::new(data).join("refdesk.sqlite3").exists(), "no SQLite database was made");
}

#[test]
fn the_version_names_the_commit_the_binary_was_built_from() {
    // An operator running several nodes tells their builds apart: the
    // version number is the same between releases.
    let o = refdesk(None, &[], &["--version"]);
    assert!(o.status.success(), "{}", err(&o));
    let said = out(&o);
    let commit = said
        .trim()
        .strip_prefix(concat!("refdesk ", env!("CARGO_PKG_VERSION"), " (commit "))
        .and_then(|c| c.strip_suffix(')'));
    let commit = commit.unwrap_or_else(|| panic!("the version and the commit: {said}"));
    // Git's word on the checkout the test was built in (`unknown` in a
    // copy without Git).
    let git = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or("unknown".to_owned(), |o| out(&o).trim().to_owned());
    assert_eq!(commit, git, "{said}");
}

#[test]
fn config_check_reaches_the_smtp_server_and_warns_when_it_cannot() {
    // A real SMTP server (aiosmtpd, installed by scripts/test.sh).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut smtp = Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Sink"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 with aiosmtpd is installed (scripts/test.sh installs it)");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "aiosmtpd did not start");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let dir = tempfile::tempdir().unwrap();
    let check = |url: &str| {
        let f = file(dir.path(), &format!("[mail]\nsmtp_url = \"{url}\"\nfrom = \"desk@example.org\"\n"));
        refdesk(Some(&f), &[("REFDESK_DATA_DIR", dir.path().to_str().unwrap())], &["config", "--check"])
    };
    let o = check(&format!("smtp://127.0.0.1:{port}"));
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains(&format!("SMTP: smtp://127.0.0.1:{port} answered")), "{}", out(&o));
    // Asked for TLS it does not offer: a warning, and the check still passes.
    let o = check(&format!("smtp://127.0.0.1:{port}?tls=required"));
    assert!(o.status.success(), "{}", err(&o));
    assert!(out(&o).contains(&format!("warning: mail.smtp_url: smtp://127.0.0.1:{port}: ")), "{}", out(&o));
    let _ = smtp.kill();
    let _ = smtp.wait();
    // Nothing listening there now.
    let o = check(&format!("smtp://127.0.0.1:{port}"));
    assert!(o.status.success(), "{}", err(&o));
    assert!(
        out(&o).contains("warning: mail.smtp_url") && out(&o).contains("the configuration is valid"),
        "{}",
        out(&o)
    );
}
