//! The rest of the feed over real HTTP: subscriptions, list pages and filters, get, mark read,
//! delete, group delete, delta with `@removed`, stale and bad tokens, and `Prefer: wait` long
//! polls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod http_common;

use std::time::{Duration, Instant};

use http_common::{TestServer, demo_auth, demo_host, seed_example};
use notifeed::config::Config;
use serde_json::{Value, json};

fn path_of(link: &str, base: &str) -> String {
    link.strip_prefix(base).unwrap_or_else(|| panic!("{link} is not under {base}")).to_owned()
}

#[test]
fn subscriptions_are_created_read_and_ended_by_their_app_only() {
    let config = Config::from_toml(
        "[[apps]]\nid = \"demo\"\nhost_name = \"demo.notifeed.local\"\nbearer_tokens = [\"notifeed-demo-token\"]\n\
         [[apps]]\nid = \"other\"\nhost_name = \"other.example\"\nbearer_tokens = [\"other-token\"]\n",
    )
    .unwrap();
    let server = TestServer::start(config);
    let reply = server.send(
        "POST",
        "/subscriptions",
        &[("Authorization", &demo_auth()), ("Content-Type", "application/json")],
        Some(br#"{"userId":"erin","expirationDateTime":"2099-01-01T00:00:00Z"}"#.to_vec()),
    );
    // Too far ahead (the default maximum is 30 days).
    assert_eq!(reply.status, 400);
    assert!(reply.error_message().contains("expirationDateTime"));
    let id = server.subscribe("erin");
    let got = server.send("GET", &format!("/subscriptions/{id}"), &[("Authorization", &demo_auth())], None);
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["userId"], "erin");
    assert_eq!(got.json()["appHostName"], demo_host());
    // Another app neither sees nor ends it.
    let other = [("Authorization", "Bearer other-token")];
    assert_eq!(server.send("GET", &format!("/subscriptions/{id}"), &other, None).status, 404);
    assert_eq!(server.send("DELETE", &format!("/subscriptions/{id}"), &other, None).status, 404);
    // Bad bodies name the field.
    for (body, field) in
        [(r#"{"user":"x"}"#, "user"), (r#"{"userId":"a/b"}"#, "userId"), (r#"{"userId":""}"#, "userId")]
    {
        let reply = server.send(
            "POST",
            "/subscriptions",
            &[("Authorization", &demo_auth()), ("Content-Type", "application/json")],
            Some(body.as_bytes().to_vec()),
        );
        assert_eq!(reply.status, 400, "{body}");
        assert!(reply.error_message().contains(field), "{body}: {}", reply.error_message());
    }
    assert_eq!(server.post(&id, &seed_example(demo_host(), "a")).status, 201);
    let ended = server.send("DELETE", &format!("/subscriptions/{id}"), &[("Authorization", &demo_auth())], None);
    assert_eq!(ended.status, 204);
    assert_eq!(server.post(&id, &seed_example(demo_host(), "b")).status, 403);
    // The table is in the data directory.
    assert!(server.data_dir.path().join(notifeed::handler::SUBSCRIPTIONS_FILE).exists());
}

#[test]
fn list_pages_filter_get_mark_read_and_delete() {
    let server = TestServer::start(Config::default());
    let uns = server.subscribe("frank");
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut n = seed_example(demo_host(), &format!("n{i}"));
        n["groupName"] = json!(if i % 2 == 0 { "even's" } else { "odd" });
        let reply = server.post(&uns, &n);
        assert_eq!(reply.status, 201);
        ids.push(reply.json()["id"].as_str().unwrap().to_owned());
    }
    // Pages of two, newest first, following @odata.nextLink as given.
    let mut seen = Vec::new();
    let mut path = "/me/notifications?$top=2".to_owned();
    loop {
        let reply = server.get(&uns, &path);
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        let body = reply.json();
        assert_eq!(body["@odata.context"], "$metadata#users('frank')/notifications");
        seen.extend(body["value"].as_array().unwrap().iter().map(|n| n["id"].as_str().unwrap().to_owned()));
        match body["@odata.nextLink"].as_str() {
            Some(link) => path = path_of(link, &server.base),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    // $filter by group, with a quote in the name, paging through the filter.
    let reply = server.get(&uns, "/me/notifications?$top=1&$filter=groupName%20eq%20'even''s'");
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["value"][0]["id"], ids[4].as_str());
    let next = path_of(body["@odata.nextLink"].as_str().unwrap(), &server.base);
    let body = server.get(&uns, &next).json();
    assert_eq!(body["value"][0]["id"], ids[2].as_str());
    assert_eq!(server.get(&uns, "/me/notifications?$filter=priority%20eq%20'High'").status, 400);
    assert_eq!(server.get(&uns, "/me/notifications?$top=0").status, 400);
    assert_eq!(server.get(&uns, "/me/notifications?$skiptoken=bogus").status, 400);
    assert_eq!(server.get(&uns, "/me/notifications?$orderby=id").status, 400);

    // Get one, mark it read, see it read.
    let one = server.get(&uns, &format!("/me/notifications/{}", ids[0]));
    assert_eq!(one.status, 200);
    assert_eq!(one.json()["readState"], "Unread");
    assert_eq!(one.json()["@odata.context"], "$metadata#users('frank')/notifications/$entity");
    let patch = |body: &str| {
        server.send(
            "PATCH",
            &format!("/me/notifications/{}", ids[0]),
            &[("Authorization", &demo_auth()), ("X-UNS-ID", &uns), ("Content-Type", "application/json")],
            Some(body.as_bytes().to_vec()),
        )
    };
    let reply = patch(r#"{"readState":"Read","userActionState":"Activated"}"#);
    assert_eq!(reply.status, 200);
    assert_eq!(
        (reply.json()["readState"].clone(), reply.json()["userActionState"].clone()),
        (json!("Read"), json!("Activated"))
    );
    assert_eq!(server.get(&uns, &format!("/me/notifications/{}", ids[0])).json()["readState"], "Read");
    assert!(patch(r#"{"readState":"Maybe"}"#).error_message().contains("readState"));
    assert_eq!(patch(r#"{"title":"x"}"#).status, 400);
    assert_eq!(patch("{}").status, 400);

    // Delete one; it is gone; deleting again is 404.
    let delete = |id: &str| {
        server.send(
            "DELETE",
            &format!("/me/notifications/{id}"),
            &[("Authorization", &demo_auth()), ("X-UNS-ID", &uns)],
            None,
        )
    };
    assert_eq!(delete(&ids[1]).status, 204);
    assert_eq!(delete(&ids[1]).status, 404);
    assert_eq!(server.get(&uns, &format!("/me/notifications/{}", ids[1])).status, 404);
    assert_eq!(server.get(&uns, "/me/notifications/not-a-uuid").status, 404);

    // Delete a whole group.
    let reply = server.send(
        "DELETE",
        "/me/notifications?groupName=even's",
        &[("Authorization", &demo_auth()), ("X-UNS-ID", &uns)],
        None,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["deletedCount"], 3);
    let reply =
        server.send("DELETE", "/me/notifications", &[("Authorization", &demo_auth()), ("X-UNS-ID", &uns)], None);
    assert_eq!(reply.status, 400);
    let left: Vec<Value> = server.get(&uns, "/me/notifications").json()["value"].as_array().unwrap().clone();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["id"], ids[3].as_str());
}

#[test]
fn delta_reports_upserts_and_removals_and_refuses_bad_tokens() {
    let server = TestServer::start(Config::default());
    let uns = server.subscribe("gina");
    let first = server.get(&uns, "/me/notifications/delta");
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["value"], json!([]));
    let mut delta = path_of(first.json()["@odata.deltaLink"].as_str().unwrap(), &server.base);
    let created = server.post(&uns, &seed_example(demo_host(), "a")).json();
    let id = created["id"].as_str().unwrap().to_owned();
    let reply = server.get(&uns, &delta);
    let body = reply.json();
    assert_eq!(body["value"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["value"][0]["id"], id.as_str());
    delta = path_of(body["@odata.deltaLink"].as_str().unwrap(), &server.base);
    let reply = server.send(
        "DELETE",
        &format!("/me/notifications/{id}"),
        &[("Authorization", &demo_auth()), ("X-UNS-ID", &uns)],
        None,
    );
    assert_eq!(reply.status, 204);
    let body = server.get(&uns, &delta).json();
    assert_eq!(body["value"], json!([{"id": id, "@removed": {"reason": "deleted"}}]));

    // Paging a delta with $top follows @odata.nextLink, then ends with a deltaLink.
    for i in 0..3 {
        server.post(&uns, &seed_example(demo_host(), &format!("p{i}")));
    }
    let delta = path_of(body["@odata.deltaLink"].as_str().unwrap(), &server.base);
    let body = server.get(&uns, &format!("{delta}&$top=2")).json();
    assert_eq!(body["value"].as_array().unwrap().len(), 2);
    let next = path_of(body["@odata.nextLink"].as_str().unwrap(), &server.base);
    let body = server.get(&uns, &next).json();
    assert_eq!(body["value"].as_array().unwrap().len(), 1);
    assert!(body["@odata.deltaLink"].is_string());

    // A token from the future is stale (410 with guidance); garbage is 400.
    let reply = server.get(&uns, "/me/notifications/delta?$deltatoken=s999999999.t0");
    assert_eq!((reply.status, reply.error_code().as_str()), (410, "resyncRequired"));
    assert!(reply.error_message().contains("without a token"), "{}", reply.error_message());
    assert_eq!(server.get(&uns, "/me/notifications/delta?$deltatoken=garbage").status, 400);
}

#[test]
fn long_poll_returns_when_a_change_arrives_or_when_the_wait_ends() {
    let server = std::sync::Arc::new(TestServer::start(Config::default()));
    let uns = server.subscribe("hank");
    let link = server.get(&uns, "/me/notifications/delta").json()["@odata.deltaLink"].as_str().unwrap().to_owned();
    let delta = path_of(&link, &server.base);

    // Nothing happens: the poll ends after the wait with an empty page and the same kind of link.
    let started = Instant::now();
    let reply =
        server.send("GET", &delta, &[("Authorization", &demo_auth()), ("X-UNS-ID", &uns), ("Prefer", "wait=1")], None);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("preference-applied"), Some("wait=1"));
    assert_eq!(reply.json()["value"], json!([]));
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());

    // A post from another thread ends a 60-second poll early with the new notification.
    let poller = {
        let server = std::sync::Arc::clone(&server);
        let (uns, delta) = (uns.clone(), delta.clone());
        std::thread::spawn(move || {
            server.send(
                "GET",
                &delta,
                &[("Authorization", &demo_auth()), ("X-UNS-ID", &uns), ("Prefer", "wait=60")],
                None,
            )
        })
    };
    let started = Instant::now();
    let posted = server.post(&uns, &seed_example(demo_host(), "wake")).json();
    let reply = poller.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert_eq!(reply.json()["value"][0]["id"], posted["id"]);
}
