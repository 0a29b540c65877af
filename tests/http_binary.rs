//! The real `notifeed` binary: it serves on the address it prints, answers `/health`, runs the
//! documented curl session, and on SIGTERM syncs and exits cleanly; a restart on the same data
//! directory sees exactly what was acknowledged. Its `verify` and `backup` commands check and
//! copy a stopped server's log store, and its `[maintenance]` schedule backs a running one up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use http_common::{demo_auth, demo_host, seed_example, send};
use serde_json::json;

struct Running {
    child: Child,
    base: String,
}

fn start(data_dir: &std::path::Path, extra: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_notifeed"))
        .args(["--address", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .args(extra)
        .env_remove("NOTIFEED_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first:?}"))
        .to_owned();
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    Running { child, base }
}

/// Sends SIGTERM and waits; returns the exit success and stderr.
fn terminate(running: Running) -> (bool, String) {
    let status = Command::new("kill").args(["-TERM", &running.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = running.child.wait_with_output().unwrap();
    (output.status.success(), String::from_utf8_lossy(&output.stderr).into_owned())
}

fn subscribe(base: &str, user: &str) -> String {
    let reply = send(
        base,
        "POST",
        "/subscriptions",
        &[("Authorization", &demo_auth()), ("Content-Type", "application/json")],
        Some(json!({ "userId": user }).to_string().into_bytes()),
    );
    assert_eq!(reply.status, 201);
    reply.json()["id"].as_str().unwrap().to_owned()
}

#[test]
fn binary_serves_shuts_down_cleanly_and_keeps_what_it_acknowledged_on_the_log_engine() {
    let dir = tempfile::tempdir().unwrap();
    serve_shut_down_and_restart(dir.path(), &[]);
    assert!(dir.path().join("log").is_dir());
    // The default configuration keeps no index snapshot.
    assert!(!dir.path().join("log").join("INDEX").exists());
}

/// The config's `[log]` section reaches the engine: with `index_snapshot = true`, each clean
/// shutdown leaves the snapshot, and the restart serves exactly what was acknowledged.
#[test]
fn binary_opens_the_log_engine_with_its_log_section() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("log.toml");
    std::fs::write(&config, "[log]\nindex_snapshot = true\nwindow_seconds = 600\nhead_cache_bytes = 0\n").unwrap();
    let data = dir.path().join("data");
    serve_shut_down_and_restart(&data, &["--config", config.to_str().unwrap()]);
    assert!(data.join("log").join("INDEX").is_file());
}

#[test]
fn binary_serves_shuts_down_cleanly_and_keeps_what_it_acknowledged_on_the_sled_engine() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sled.toml");
    std::fs::write(&config, "engine = \"sled\"\n").unwrap();
    serve_shut_down_and_restart(dir.path(), &["--config", config.to_str().unwrap()]);
    assert!(dir.path().join("sled").is_dir());
    assert!(!dir.path().join("log").exists());
}

fn serve_shut_down_and_restart(dir: &std::path::Path, extra: &[&str]) {
    let server = start(dir, extra);
    let health = send(&server.base, "GET", "/health", &[], None);
    assert_eq!((health.status, health.json()["status"].clone()), (200, json!("ok")));

    let uns = subscribe(&server.base, "nina");
    let post = |id: &str| {
        send(
            &server.base,
            "POST",
            "/me/notifications",
            &[("Authorization", &demo_auth()), ("X-UNS-ID", &uns), ("Content-Type", "application/json")],
            Some(seed_example(demo_host(), id).to_string().into_bytes()),
        )
    };
    let mut accepted = Vec::new();
    for i in 0..5 {
        let reply = post(&format!("n{i}"));
        assert_eq!(reply.status, 201);
        accepted.push(reply.json()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(post("").status, 400);
    let (clean, stderr) = terminate(server);
    assert!(clean, "{stderr}");
    assert!(stderr.contains("shut down cleanly"), "{stderr}");
    // One log line per request: method, path, status, time.
    assert!(stderr.lines().any(|l| l.starts_with("POST /me/notifications 201 ") && l.ends_with("ms")), "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("POST /me/notifications 400 ")), "{stderr}");

    // Restart: the subscription and exactly the acknowledged notifications are there.
    let server = start(dir, extra);
    let reply = send(
        &server.base,
        "GET",
        "/me/notifications?$top=100",
        &[("Authorization", &demo_auth()), ("X-UNS-ID", &uns)],
        None,
    );
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let mut listed: Vec<String> =
        reply.json()["value"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap().to_owned()).collect();
    listed.reverse();
    assert_eq!(listed, accepted);
    let (clean, stderr) = terminate(server);
    assert!(clean, "{stderr}");
}

#[test]
fn binary_runs_the_documented_curl_session() {
    if !Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success()) {
        eprintln!("curl is not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = doc.split("## Try it with curl").nth(1).unwrap();
    let start_at = section.find("```sh\n").unwrap() + "```sh\n".len();
    let session = &section[start_at..start_at + section[start_at..].find("\n```").unwrap()];
    let output = Command::new("sh").args(["-e", "-c", session]).env("NOTIFEED", &server.base).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let (clean, stderr) = terminate(server);
    assert!(output.status.success(), "{stdout}\n{}\n{stderr}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(r#""readState":"Read""#), "{stdout}");
    assert!(stdout.contains(r#""@removed":{"reason":"deleted"}"#), "{stdout}");
    assert!(clean, "{stderr}");
}

#[test]
fn binary_refuses_a_bad_config_without_printing_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("notifeed.toml");
    std::fs::write(&config, "[[apps]]\nid = \"a\"\nhost_name = \"a\"\nbearer_tokens = [\"secret-token-value\" 1]\n")
        .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_notifeed"))
        .args(["--address", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 4"), "{stderr}");
    assert!(!stderr.contains("secret-token-value"), "{stderr}");
}

/// Fills `data_dir/log` as a server with the default configuration would, with `count`
/// notifications over 3 users; returns each user's notification ids, oldest first.
fn fill_log(data_dir: &std::path::Path, count: usize) -> Vec<Vec<notifeed::NotificationId>> {
    use notifeed::engine::log::{LogConfig, LogStore};
    use notifeed::{FeedKey, FeedStore, NewNotification};
    let store = LogStore::open(&data_dir.join("log"), LogConfig::default(), std::sync::Arc::new(notifeed::SystemClock))
        .unwrap();
    let mut ids = vec![Vec::new(); 3];
    for i in 0..count {
        let feed = FeedKey::for_user_app(&format!("user{}", i % 3), demo_host()).unwrap();
        let n = store.append(&feed, NewNotification::raw(demo_host(), &format!("n{i}"), &"x".repeat(200))).unwrap();
        ids[i % 3].push(n.id);
    }
    store.close().unwrap();
    ids
}

/// The ids each of the 3 users' feeds holds in the log store at `dir`, oldest first.
fn held_ids(dir: &std::path::Path) -> Vec<Vec<notifeed::NotificationId>> {
    use notifeed::engine::log::{LogConfig, LogStore};
    use notifeed::{FeedKey, FeedStore, ListQuery};
    let store = LogStore::open(dir, LogConfig::default(), std::sync::Arc::new(notifeed::SystemClock)).unwrap();
    let held = (0..3)
        .map(|u| {
            let feed = FeedKey::for_user_app(&format!("user{u}"), demo_host()).unwrap();
            let page = store.list(&feed, &ListQuery { limit: 1000, ..ListQuery::default() }).unwrap();
            page.items.iter().rev().map(|n| n.id).collect()
        })
        .collect();
    store.close().unwrap();
    held
}

/// Runs the binary with `args`; returns (exit success, stdout, stderr).
fn run(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let output =
        Command::new(env!("CARGO_BIN_EXE_notifeed")).args(args).env_remove("NOTIFEED_CONFIG").output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn verify_command_checks_every_record_and_reports_a_flipped_byte_with_its_file() {
    let dir = tempfile::tempdir().unwrap();
    fill_log(dir.path(), 30);
    let data = dir.path().as_os_str();
    let (ok, stdout, stderr) = run(&["verify".as_ref(), "--data-dir".as_ref(), data]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("verified: 30 records"), "{stdout}");
    assert!(stdout.contains("30 notifications readable"), "{stdout}");

    // One byte of the first record's body flipped. The open that `verify` starts with scans
    // every record (the server's configuration keeps no index snapshot), so it is the open
    // that reports it, naming the segment and offset; a snapshot-trusting open would leave it
    // to `LogStore::verify` (tests/log_verify.rs).
    let segment = std::fs::read_dir(dir.path().join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("a segment file");
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[40 + 20 + 10] ^= 0x40; // the 40-byte segment header, a 20-byte frame header, the body
    std::fs::write(&segment, &bytes).unwrap();
    let (ok, stdout, stderr) = run(&["verify".as_ref(), "--data-dir".as_ref(), data]);
    assert!(!ok, "{stdout}");
    assert!(!stdout.contains("verified"), "{stdout}");
    let name = segment.file_name().unwrap().to_str().unwrap();
    assert!(stderr.contains("corruption in") && stderr.contains(&format!("{name} offset 40")), "{stderr}");
}

#[test]
fn backup_command_copies_a_stopped_store_that_then_opens_with_the_same_feeds() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ids = fill_log(&data, 40);
    let dest = dir.path().join("copy");
    let (ok, stdout, stderr) = run(&["backup".as_ref(), dest.as_os_str(), "--data-dir".as_ref(), data.as_os_str()]);
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("backed up"), "{stdout}");
    assert_eq!(held_ids(&dest), ids);
    assert_eq!(held_ids(&data.join("log")), ids);

    // A destination that holds files is refused, and left as it was.
    let (ok, _, stderr) = run(&["backup".as_ref(), dest.as_os_str(), "--data-dir".as_ref(), data.as_os_str()]);
    assert!(!ok);
    assert!(stderr.contains("backup into"), "{stderr}");
    assert_eq!(held_ids(&dest), ids);

    // With --refresh it is brought up to now: every notification replaced since (new records,
    // the same ids), and with nothing new, nothing written.
    assert_eq!(fill_log(&data, 40), ids);
    let refresh = |dest: &std::path::Path| {
        run(&["backup".as_ref(), dest.as_os_str(), "--refresh".as_ref(), "--data-dir".as_ref(), data.as_os_str()])
    };
    let (ok, stdout, stderr) = refresh(&dest);
    assert!(ok && stdout.contains("refreshed") && !stdout.contains(" 0 written"), "{stdout}{stderr}");
    assert_eq!(held_ids(&dest), ids);
    let (ok, stdout, stderr) = refresh(&dest);
    assert!(ok && stdout.contains(" 0 written"), "{stdout}{stderr}");
    let (ok, _, stderr) = run(&["verify".as_ref(), "--refresh".as_ref(), "--data-dir".as_ref(), data.as_os_str()]);
    assert!(!ok && stderr.contains("--refresh applies to backup only"), "{stderr}");

    // A destination inside the store, no destination, a flag or a stray argument where a
    // value belongs, or a directory without a log store: clear errors.
    let inside = data.join("log").join("copy");
    let (ok, _, stderr) = run(&["backup".as_ref(), inside.as_os_str(), "--data-dir".as_ref(), data.as_os_str()]);
    assert!(!ok && stderr.contains("must not lie one inside the other"), "{stderr}");
    assert!(!inside.exists());
    let (ok, _, stderr) = run(&["backup".as_ref()]);
    assert!(!ok && stderr.contains("backup needs a destination"), "{stderr}");
    let (ok, _, stderr) = run(&["backup".as_ref(), "-h".as_ref()]);
    assert!(!ok && stderr.contains("backup needs a destination"), "{stderr}");
    let (ok, _, stderr) = run(&["--data-dir".as_ref(), data.as_os_str(), "verify".as_ref()]);
    assert!(!ok && stderr.contains("unexpected argument verify"), "{stderr}");
    let (ok, _, stderr) = run(&["verify".as_ref(), "--address".as_ref(), "127.0.0.1:0".as_ref()]);
    assert!(!ok && stderr.contains("--address applies to serve only"), "{stderr}");
    let empty = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = run(&["verify".as_ref(), "--data-dir".as_ref(), empty.path().as_os_str()]);
    assert!(!ok && stderr.contains("holds no log store"), "{stderr}");
}

#[test]
fn offline_commands_are_refused_while_a_server_holds_the_store() {
    let dir = tempfile::tempdir().unwrap();
    fill_log(dir.path(), 5);
    let server = start(dir.path(), &[]);
    let data = dir.path().as_os_str();
    let (ok, _, stderr) = run(&["verify".as_ref(), "--data-dir".as_ref(), data]);
    assert!(!ok);
    assert!(stderr.contains("is locked by another process"), "{stderr}");
    let dest = dir.path().join("copy");
    let (ok, _, stderr) = run(&["backup".as_ref(), dest.as_os_str(), "--data-dir".as_ref(), data]);
    assert!(!ok && stderr.contains("is locked by another process"), "{stderr}");
    let (clean, stderr) = terminate(server);
    assert!(clean, "{stderr}");
    let (ok, stdout, stderr) = run(&["verify".as_ref(), "--data-dir".as_ref(), data]);
    assert!(ok, "{stdout}{stderr}");
}

/// A running server's stderr, line by line, as it comes.
struct Log {
    lines: Vec<String>,
    incoming: std::sync::mpsc::Receiver<String>,
    reader: std::thread::JoinHandle<()>,
}

impl Log {
    fn of(server: &mut Running) -> Self {
        let (sender, incoming) = std::sync::mpsc::channel();
        let stderr = BufReader::new(server.child.stderr.take().unwrap());
        let reader = std::thread::spawn(move || {
            for line in stderr.lines() {
                let _ = sender.send(line.unwrap());
            }
        });
        Log { lines: Vec::new(), incoming, reader }
    }

    /// How many lines so far start with `what`.
    fn count(&self, what: &str) -> usize {
        self.lines.iter().filter(|l| l.starts_with(what)).count()
    }

    /// Reads lines until `done` holds (each line waited for up to a minute).
    fn until(&mut self, done: impl Fn(&Self) -> bool) {
        while !done(self) {
            match self.incoming.recv_timeout(std::time::Duration::from_secs(60)) {
                Ok(line) => self.lines.push(line),
                Err(e) => panic!("{e}; logged so far: {:#?}", self.lines),
            }
        }
    }

    /// Terminates the server and reads the rest of its log; returns whether it exited cleanly.
    fn terminate(mut self, server: Running) -> (bool, Vec<String>) {
        let (clean, _) = terminate(server);
        self.reader.join().unwrap();
        self.lines.extend(self.incoming.try_iter());
        (clean, self.lines)
    }
}

/// Every directory in `backups`, each checked complete and holding `ids`.
fn complete_backups(backups: &std::path::Path, ids: &[Vec<notifeed::NotificationId>]) -> Vec<std::path::PathBuf> {
    let left: Vec<_> = std::fs::read_dir(backups).unwrap().map(|e| e.unwrap().path()).collect();
    for backup in &left {
        let name = backup.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(notifeed::maintenance::BACKUP_PREFIX), "{name}");
        assert!(!backup.join(notifeed::engine::log::BACKUP_INCOMPLETE_FILE).exists());
        assert_eq!(held_ids(backup), ids);
    }
    left
}

/// Writes a config with `maintenance` as its `[maintenance]` section; returns its path.
fn maintenance_config(dir: &std::path::Path, maintenance: &str) -> String {
    let config = dir.join("maintenance.toml");
    std::fs::write(&config, format!("[maintenance]\n{maintenance}")).unwrap();
    config.to_str().unwrap().to_owned()
}

/// The schedule runs every second here; the test waits (up to a minute) for the server's log
/// lines saying what it did, then checks the backups themselves.
#[test]
fn a_running_server_backs_up_and_verifies_on_its_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ids = fill_log(&data, 12);
    let backups = dir.path().join("backups");
    let config = maintenance_config(
        dir.path(),
        &format!(
            "verify_interval_seconds = 1\nbackup_dir = {:?}\nbackup_interval_seconds = 1\nbackup_keep = 2\n",
            backups.to_str().unwrap()
        ),
    );
    let mut server = start(&data, &["--config", &config]);
    let mut log = Log::of(&mut server);
    log.until(|log| log.count("notifeed: backed up") >= 3 && log.count("notifeed: verify found") >= 1);
    let (clean, log) = log.terminate(server);
    assert!(clean, "{log:#?}");
    assert!(log.iter().any(|l| l.starts_with("notifeed: verify found 12 records")), "{log:#?}");
    assert!(!log.iter().any(|l| l.contains("FAILED")), "{log:#?}");
    // Each backup is complete and holds what was acknowledged; only the 2 newest are kept.
    let made = log.iter().filter(|l| l.starts_with("notifeed: backed up")).count();
    let removed = log.iter().filter(|l| l.contains("; removed 1 older backups")).count();
    assert_eq!(removed, made - 2, "{log:#?}");
    assert_eq!(complete_backups(&backups, &ids).len(), 2);
}

/// With a daily schedule, `SIGUSR1` makes a backup now; without a backup folder the signal is
/// logged and ignored, and the server goes on (by default the signal would end it).
#[test]
fn sigusr1_backs_a_running_server_up_now_and_is_harmless_without_a_backup_folder() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let ids = fill_log(&data, 9);
    let backups = dir.path().join("backups");
    let config = maintenance_config(dir.path(), &format!("backup_dir = {:?}\n", backups.to_str().unwrap()));
    let usr1 = |server: &Running| {
        assert!(Command::new("kill").args(["-USR1", &server.child.id().to_string()]).status().unwrap().success());
    };
    let mut server = start(&data, &["--config", &config]);
    let mut log = Log::of(&mut server);
    usr1(&server);
    log.until(|log| log.count("notifeed: backed up") == 1);
    let (clean, log) = log.terminate(server);
    assert!(clean, "{log:#?}");
    assert!(log.iter().any(|l| l == "notifeed: SIGUSR1: backing up now"), "{log:#?}");
    assert_eq!(complete_backups(&backups, &ids).len(), 1);

    let mut server = start(&data, &[]);
    let mut log = Log::of(&mut server);
    usr1(&server);
    log.until(|log| log.count("notifeed: SIGUSR1 ignored") == 1);
    let health = send(&server.base, "GET", "/health", &[], None);
    assert_eq!(health.status, 200);
    let (clean, log) = log.terminate(server);
    assert!(clean, "{log:#?}");
}

/// `SIGUSR2` verifies a running server's log store now, with no schedule configured, and so
/// finds a byte flipped on disk after the server opened the store (which its open could not
/// see); on the sled engine the signal is logged and ignored, and the server goes on.
#[test]
fn sigusr2_verifies_a_running_server_now_and_finds_damage_done_after_its_open() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fill_log(&data, 9);
    let usr2 = |server: &Running| {
        assert!(Command::new("kill").args(["-USR2", &server.child.id().to_string()]).status().unwrap().success());
    };
    let mut server = start(&data, &[]);
    let mut log = Log::of(&mut server);
    usr2(&server);
    log.until(|log| log.count("notifeed: verify found") == 1);

    // One byte of the first record's body flipped in place (no truncation: the server may
    // have the file mapped).
    let segment = std::fs::read_dir(data.join("log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("a segment file");
    let file = std::fs::OpenOptions::new().read(true).write(true).open(&segment).unwrap();
    let at = 40 + 20 + 10; // the 40-byte segment header, a 20-byte frame header, the body
    let mut byte = [0];
    file.read_exact_at(&mut byte, at).unwrap();
    file.write_all_at(&[byte[0] ^ 0x40], at).unwrap();
    usr2(&server);
    log.until(|log| log.count("notifeed: VERIFY FAILED") == 1);
    let (clean, log) = log.terminate(server);
    assert!(clean, "{log:#?}");
    assert_eq!(log.iter().filter(|l| *l == "notifeed: SIGUSR2: verifying now").count(), 2, "{log:#?}");
    assert!(log.iter().any(|l| l.starts_with("notifeed: verify found 9 records")), "{log:#?}");
    let name = segment.file_name().unwrap().to_str().unwrap();
    let failed = log.iter().find(|l| l.starts_with("notifeed: VERIFY FAILED")).unwrap();
    assert!(failed.contains(&format!("{name} offset 40")), "{failed}");

    let config = dir.path().join("sled.toml");
    std::fs::write(&config, "engine = \"sled\"\n").unwrap();
    let mut server = start(&dir.path().join("sled-data"), &["--config", config.to_str().unwrap()]);
    let mut log = Log::of(&mut server);
    usr2(&server);
    log.until(|log| log.count("notifeed: SIGUSR2 ignored") == 1);
    assert_eq!(send(&server.base, "GET", "/health", &[], None).status, 200);
    let (clean, log) = log.terminate(server);
    assert!(clean, "{log:#?}");
}

#[test]
fn a_server_refuses_a_backup_folder_that_overlaps_its_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for folder in [data.join("backups"), dir.path().to_path_buf()] {
        let config = dir.path().join("overlap.toml");
        std::fs::write(&config, format!("[maintenance]\nbackup_dir = {:?}\n", folder.to_str().unwrap())).unwrap();
        let (ok, _, stderr) = run(&[
            "--address".as_ref(),
            "127.0.0.1:0".as_ref(),
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--config".as_ref(),
            config.as_os_str(),
        ]);
        assert!(!ok, "{stderr}");
        assert!(stderr.contains("must not lie one inside the other"), "{stderr}");
    }
}
