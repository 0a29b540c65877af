//! The curl session of the README, run verbatim with `sh` and `curl`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;

use http_common::TestServer;
use notifeed::config::Config;

/// The shell block under "## Try it with curl" in README.md.
fn session() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = doc.split("## Try it with curl").nth(1).unwrap();
    let start = section.find("```sh\n").unwrap() + "```sh\n".len();
    let end = section[start..].find("\n```").unwrap();
    section[start..start + end].to_owned()
}

/// Runs the session with `sh -e` against `base`; returns stdout.
pub fn run_session(base: &str) -> String {
    let output =
        std::process::Command::new("sh").arg("-e").arg("-c").arg(session()).env("NOTIFEED", base).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "the session failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn curl_available() -> bool {
    std::process::Command::new("curl").arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn the_documented_curl_session_works_against_the_axum_app() {
    if !curl_available() {
        eprintln!("curl is not installed; skipping");
        return;
    }
    let server = TestServer::start(Config::default());
    let out = run_session(&server.base);
    check_transcript(&out);
}

fn check_transcript(out: &str) {
    eprintln!("{out}");
    assert!(out.contains("subscription: "), "{out}");
    assert!(
        out.contains(r#""@odata.context":"$metadata#users('alice%40contoso.com')/notifications/$entity""#),
        "{out}"
    );
    assert!(out.contains(r#""readState":"Read""#), "{out}");
    assert!(out.contains(r#""@removed":{"reason":"deleted"}"#), "{out}");
    assert!(out.trim_end().ends_with("done"), "{out}");
}
