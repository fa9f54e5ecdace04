//! Replays event traces recorded from real programs (tests/fixtures/record.sh).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

#[test]
fn demo_traffic_trace() {
    let (seen, report) = replay_fixture("demo-traffic");
    for role in ["client", "server"] {
        let responses = of(&seen, role, "response");
        assert_eq!(responses.len(), 20, "{role}");
        assert_eq!(of(&seen, role, "request").len(), 20, "{role}");
        assert!(responses
            .iter()
            .all(|r| r.status == Some(200) && r.exchange.is_some()));
        for slow in responses
            .iter()
            .filter(|r| r.url.as_deref() == Some("/slow"))
        {
            assert!(slow.latency_ns.unwrap() >= 400_000_000, "{slow:?}");
        }
        let echo_bodies: Vec<&str> = of(&seen, role, "request")
            .iter()
            .filter(|r| r.method.as_deref() == Some("POST"))
            .map(|r| r.body.as_str())
            .collect();
        assert_eq!(echo_bodies.len(), 5);
        assert!(echo_bodies.contains(&"{\"message\":\"hello-3\"}"));
    }
    assert!(seen
        .iter()
        .filter(|s| s.role == Some("client"))
        .all(|s| s.comm == "demo-traffic"));
    assert!(seen
        .iter()
        .filter(|s| s.role == Some("server"))
        .all(|s| s.comm == "demo-server"));
    assert_pairing_exact(&seen);
    assert_eq!(report.kernel.dropped_events(), 0);
    assert_eq!(report.parse.parse_errors, 0);
    assert_eq!(report.parse.unpaired_responses, 0);
}

#[test]
fn curl_keepalive_trace() {
    let (seen, _) = replay_fixture("curl-keepalive");
    let client = of(&seen, "client", "response");
    let urls: Vec<_> = client.iter().map(|r| r.url.clone().unwrap()).collect();
    assert_eq!(urls, ["/", "/healthz", "/echo"]);
    // One connection carried all three exchanges.
    assert!(client.iter().all(|r| r.conn == client[0].conn));
    assert_eq!(client[2].body, "{\"message\":\"fixture\"}");
    assert!(
        client[0].src.ends_with(":18080"),
        "response comes from the server: {:?}",
        client[0]
    );
    assert_pairing_exact(&seen);
}

#[test]
fn python_urllib_trace() {
    let (seen, _) = replay_fixture("python-urllib");
    let client = of(&seen, "client", "response");
    let statuses: Vec<_> = client.iter().map(|r| r.status.unwrap()).collect();
    assert_eq!(statuses, [200, 200, 404]);
    // urllib opens a connection per request.
    let mut conns: Vec<_> = client.iter().map(|r| r.conn).collect();
    conns.dedup();
    assert_eq!(conns.len(), 3);
    assert_eq!(of(&seen, "server", "response").len(), 3);
}

#[test]
fn bodies_trace() {
    let (seen, report) = replay_fixture("curl-bodies");
    for role in ["client", "server"] {
        let responses = of(&seen, role, "response");
        let by_url = |url: &str| {
            *responses
                .iter()
                .find(|r| r.url.as_deref() == Some(url))
                .unwrap()
        };
        let head = by_url("/");
        assert_eq!(head.method.as_deref(), Some("HEAD"));
        assert!(head.body.is_empty());
        let chunked = by_url("/chunked/5000");
        assert!(
            chunked.body.starts_with("0123456789"),
            "dechunked body: {chunked:?}"
        );
        assert!(chunked.body_captured);
        assert_eq!(by_url("/status/204").status, Some(204));
        assert_eq!(by_url("/status/304").status, Some(304));
        let big = by_url("/bytes/100000");
        assert!(big.wire_bytes > 100_000, "true size kept: {big:?}");
        assert!(
            !big.body_captured,
            "the capture limit cut the body: {big:?}"
        );
        assert!(!big.partial);
        assert_eq!(responses.len(), 5, "{role}");
    }
    assert_eq!(report.parse.partial_messages, 0);
    assert_pairing_exact(&seen);
}

#[test]
fn pipelined_trace() {
    let (seen, report) = replay_fixture("pipelined");
    for role in ["client", "server"] {
        let responses = of(&seen, role, "response");
        assert_eq!(responses.len(), 16, "{role}");
        for (i, response) in responses.iter().enumerate() {
            assert_eq!(response.url.as_deref(), Some(format!("/?n={i}").as_str()));
            assert_eq!(response.request_id.as_deref(), Some(i.to_string().as_str()));
        }
    }
    assert_pairing_exact(&seen);
    assert_eq!(report.parse.unpaired_responses, 0);
}
