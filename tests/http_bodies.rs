//! Bodies and headers the wire can bring: gzip and deflate, a zip bomb, 1 MB bodies, invalid
//! UTF-8, deeply nested JSON, header names and values in odd cases. Each gets its status, and
//! the feed holds exactly the accepted notifications afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;

use std::io::{Read, Write};

use flate2::Compression;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use http_common::{Reply, TestServer, demo_auth, demo_host, seed_example};
use notifeed::config::Config;
use notifeed::{FeedKey, ListQuery};
use serde_json::json;

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn post(server: &TestServer, uns: &str, encoding: Option<&str>, body: Vec<u8>) -> Reply {
    let auth = demo_auth();
    let mut headers = vec![("Authorization", auth.as_str()), ("X-UNS-ID", uns), ("Content-Type", "application/json")];
    if let Some(e) = encoding {
        headers.push(("Content-Encoding", e));
    }
    server.send("POST", "/me/notifications", &headers, Some(body))
}

/// Sends raw bytes over TCP, so header names reach the server exactly as written.
fn raw_request(base: &str, head: &str, body: &[u8]) -> (u16, String) {
    let address = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let head = head.replace('\n', "\r\n");
    stream.write_all(format!("{head}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len()).as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1).unwrap().parse().unwrap();
    (status, text)
}

fn accepted_id(reply: &Reply) -> String {
    assert_eq!(reply.status, 201, "{}", String::from_utf8_lossy(&reply.body));
    reply.json()["id"].as_str().unwrap().to_owned()
}

#[test]
fn encodings_bombs_big_and_broken_bodies_get_their_status_and_only_accepted_ones_are_stored() {
    let server = TestServer::start(Config::default());
    let uns = server.subscribe("carol");
    let mut accepted = Vec::new();
    let example = |id: &str| seed_example(demo_host(), id).to_string().into_bytes();

    accepted.push(accepted_id(&post(&server, &uns, Some("gzip"), gzip(&example("gzip")))));
    accepted.push(accepted_id(&post(&server, &uns, Some("deflate"), zlib(&example("zlib")))));
    accepted.push(accepted_id(&post(&server, &uns, Some("deflate"), raw_deflate(&example("raw-deflate")))));
    accepted.push(accepted_id(&post(&server, &uns, Some("identity"), example("identity"))));

    // A zip bomb: 50 MB of spaces in about 50 KB of gzip.
    let bomb = gzip(&vec![b' '; 50 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024, "{}", bomb.len());
    let reply = post(&server, &uns, Some("gzip"), bomb);
    assert_eq!((reply.status, reply.error_code().as_str()), (413, "payloadTooLarge"));
    assert!(reply.error_message().contains("decoded"));

    // A valid notification padded to 1 MB of JSON whitespace, compressed: too large once decoded.
    let mut padded = example("padded");
    padded.splice(1..1, vec![b' '; 1024 * 1024]);
    assert_eq!(post(&server, &uns, Some("gzip"), gzip(&padded)).status, 413);
    // The same 1 MB uncompressed: too large as sent.
    assert_eq!(post(&server, &uns, None, padded.clone()).status, 413);

    // Garbage under gzip, and a gzip body declared as deflate.
    assert_eq!(post(&server, &uns, Some("gzip"), b"not gzip at all".to_vec()).status, 400);
    assert_eq!(post(&server, &uns, Some("deflate"), gzip(&example("mislabelled"))).status, 400);
    assert_eq!(post(&server, &uns, Some("zstd"), example("zstd")).status, 415);
    assert_eq!(post(&server, &uns, Some("gzip, br"), example("list")).status, 415);

    // Invalid UTF-8 inside a string.
    let mut invalid =
        br#"{"targetHostName":"demo.notifeed.local","appNotificationId":"u","payload":{"rawContent":""#.to_vec();
    invalid.extend_from_slice(&[0xff, 0xfe, 0x80]);
    invalid.extend_from_slice(b"\"}}");
    let reply = post(&server, &uns, None, invalid);
    assert_eq!((reply.status, reply.error_code().as_str()), (400, "invalidRequest"));

    // Deeply nested JSON: arrays and objects far past serde_json's recursion limit.
    let depth = 20_000;
    let arrays = format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
    assert_eq!(post(&server, &uns, None, arrays).status, 400);
    let objects = format!("{}1{}", "{\"a\":".repeat(depth / 2), "}".repeat(depth / 2)).into_bytes();
    assert_eq!(post(&server, &uns, None, objects).status, 400);
    let nested_payload = format!(
        r#"{{"targetHostName":"demo.notifeed.local","appNotificationId":"n","payload":{{"rawContent":{}1{}}}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    assert_eq!(post(&server, &uns, None, nested_payload.into_bytes()).status, 400);

    // Not JSON at all, and a JSON content type spelled oddly but valid.
    let reply = server.send(
        "POST",
        "/me/notifications",
        &[("Authorization", &demo_auth()), ("X-UNS-ID", &uns), ("Content-Type", "text/plain")],
        Some(example("text")),
    );
    assert_eq!(reply.status, 415);
    let reply = server.send(
        "POST",
        "/me/notifications",
        &[("Authorization", &demo_auth()), ("X-UNS-ID", &uns), ("Content-Type", "Application/JSON; Charset=UTF-8")],
        Some(example("odd-content-type")),
    );
    accepted.push(accepted_id(&reply));

    // Header names and values in odd cases, byte for byte on the wire.
    let head = format!(
        "POST /me/notifications HTTP/1.1\nHOST: {}\naUtHoRiZaTiOn: bEaReR notifeed-demo-token\nx-UNS-id: {uns}\n\
         CONTENT-TYPE: APPLICATION/JSON\ncontent-ENCODING: GZIP\nCLIENT-REQUEST-ID: Odd-Case-Id\n",
        server.base.trim_start_matches("http://")
    );
    let (status, text) = raw_request(&server.base, &head, &gzip(&example("odd-headers")));
    assert_eq!(status, 201, "{text}");
    assert!(text.to_ascii_lowercase().contains("client-request-id: odd-case-id"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let value: serde_json::Value = serde_json::from_str(body).unwrap();
    accepted.push(value["id"].as_str().unwrap().to_owned());
    // A lower-case method is not POST.
    let (status, text) = raw_request(&server.base, &head.replacen("POST", "post", 1), &gzip(&example("odd-method")));
    assert_eq!(status, 405, "{text}");

    // Afterwards the feed holds exactly the accepted notifications, newest first.
    let feed = FeedKey::for_user_app("carol", demo_host()).unwrap();
    let page = server.store.list(&feed, &ListQuery { limit: 1000, ..ListQuery::default() }).unwrap();
    let mut stored: Vec<String> = page.items.iter().map(|n| n.id.to_string()).collect();
    stored.reverse();
    assert_eq!(stored, accepted);
    let app_ids: Vec<&str> = page.items.iter().map(|n| n.app_notification_id()).collect();
    assert_eq!(app_ids, ["odd-headers", "odd-content-type", "identity", "raw-deflate", "zlib", "gzip"]);
}

#[test]
fn a_one_megabyte_body_is_read_whole_when_the_limit_allows_it() {
    let config = Config::from_toml("[limits]\nmax_request_bytes = 2097152\n").unwrap();
    let server = TestServer::start(config);
    let uns = server.subscribe("dave");
    // 1 MB of padding around a valid notification: accepted.
    let mut padded = seed_example(demo_host(), "padded").to_string().into_bytes();
    padded.splice(1..1, vec![b'\n'; 1024 * 1024]);
    accepted_id(&post(&server, &uns, None, padded));
    // 1 MB of raw content: refused by the contract, naming the field.
    let big = json!({"targetHostName": demo_host(), "appNotificationId": "big", "payload": {"rawContent": "x".repeat(1024 * 1024)}});
    let reply = post(&server, &uns, None, big.to_string().into_bytes());
    assert_eq!(reply.status, 400);
    assert!(reply.error_message().contains("payload.rawContent"), "{}", reply.error_message());
    let feed = FeedKey::for_user_app("dave", demo_host()).unwrap();
    assert_eq!(server.store.count(&feed).unwrap().total, 1);
}
