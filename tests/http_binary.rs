//! The real `notifeed` binary: it serves on the address it prints, answers `/health`, runs the
//! documented curl session, and on SIGTERM syncs and exits cleanly; a restart on the same data
//! directory sees exactly what was acknowledged.
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
