//! The real `notifeed` binary with `engine = "redis"`: it serves from a Redis Cluster, and a
//! restart sees exactly what it acknowledged.
#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;
mod redis_cluster;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use http_common::{demo_auth, demo_host, seed_example, send};
use serde_json::json;

fn start(data_dir: &std::path::Path, config: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_notifeed"))
        .args(["--address", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .env_remove("NOTIFEED_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let base = first.split_whitespace().find(|w| w.starts_with("http://")).unwrap().to_owned();
    std::thread::spawn(move || lines.for_each(drop));
    (child, base)
}

fn terminate(mut child: Child) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(child.wait().unwrap().success());
}

#[test]
fn the_server_serves_from_a_redis_cluster_selected_in_its_config() {
    let cluster = redis_cluster::shared();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("notifeed.toml");
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("{u:?}")).collect();
    let prefix = format!("server-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(
        &config,
        format!(
            "engine = \"redis\"\n[redis]\nnodes = [{}]\nkey_prefix = \"{prefix}\"\nmin_replicas_acked = 1\n",
            nodes.join(", ")
        ),
    )
    .unwrap();

    let (server, base) = start(dir.path(), &config);
    let reply = send(
        &base,
        "POST",
        "/subscriptions",
        &[("Authorization", &demo_auth()), ("Content-Type", "application/json")],
        Some(json!({ "userId": "olga" }).to_string().into_bytes()),
    );
    assert_eq!(reply.status, 201);
    let uns = reply.json()["id"].as_str().unwrap().to_owned();
    let mut accepted = Vec::new();
    for i in 0..3 {
        let reply = send(
            &base,
            "POST",
            "/me/notifications",
            &[("Authorization", &demo_auth()), ("X-UNS-ID", &uns), ("Content-Type", "application/json")],
            Some(seed_example(demo_host(), &format!("n{i}")).to_string().into_bytes()),
        );
        assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
        accepted.push(reply.json()["id"].as_str().unwrap().to_owned());
    }
    terminate(server);
    assert!(!dir.path().join("log").exists(), "nothing went to the log engine");

    let (server, base) = start(dir.path(), &config);
    let reply =
        send(&base, "GET", "/me/notifications?$top=100", &[("Authorization", &demo_auth()), ("X-UNS-ID", &uns)], None);
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
    let mut listed: Vec<String> =
        reply.json()["value"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap().to_owned()).collect();
    listed.reverse();
    assert_eq!(listed, accepted);
    terminate(server);

    // The notifications are in the cluster under the configured prefix.
    let client = redis::cluster::ClusterClient::new(cluster.urls()).unwrap();
    let mut conn = client.get_connection().unwrap();
    let per_master: Vec<Vec<String>> = cluster
        .master_ports()
        .iter()
        .map(|&p| {
            redis_cluster::cli(p, &["--scan", "--pattern", &format!("{prefix}:*:notes")])
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .collect();
    let notes: Vec<&String> = per_master.iter().flatten().collect();
    assert_eq!(notes.len(), 1, "one feed: {notes:?}");
    let stored: usize = redis::cmd("HLEN").arg(notes[0]).query(&mut conn).unwrap();
    assert_eq!(stored, 3);
}
