#![allow(clippy::unwrap_used)]

use super::*;

fn request(conn: u64, exchange: u64, url: &str, ts_s: i64) -> Observation {
    Observation {
        unix_ns: ts_s * 1_000_000_000,
        is_response: false,
        role: "server".into(),
        comm: "srv".into(),
        pid: 7,
        conn,
        exchange: Some(exchange),
        port: 8080,
        method: "GET".into(),
        url: url.into(),
        wire_bytes: 100,
        headers: vec![("host".into(), "x".into())],
        body: "req-body".into(),
        ..Observation::default()
    }
}

fn response(conn: u64, exchange: u64, url: &str, status: u16, ms: u64, ts_s: i64) -> Observation {
    Observation {
        is_response: true,
        status: Some(status),
        latency_ns: Some(ms * 1_000_000),
        wire_bytes: 1000,
        body: format!("resp-{exchange}"),
        headers: vec![("content-type".into(), "text/plain".into())],
        ..request(conn, exchange, url, ts_s)
    }
}

#[test]
fn aggregates_counts_errors_bytes_and_percentiles() {
    let mut table = EndpointTable::new();
    for i in 1..=100u64 {
        table.observe(request(1, i, "/a?q=1", 0));
        let status = if i % 10 == 0 { 503 } else { 200 };
        table.observe(response(1, i, "/a?q=1", status, i, 0));
    }
    table.observe(response(2, 1, "/b", 404, 3, 0));
    let rows = table.rows();
    assert_eq!(rows.len(), 2);
    let (key, a) = rows[0];
    assert_eq!(
        (key.route.as_str(), key.port, key.comm.as_str()),
        ("/a", 8080, "srv")
    );
    assert_eq!(
        (a.count, a.errors, a.status_classes),
        (100, 10, [0, 90, 0, 0, 10])
    );
    assert!((a.error_pct() - 10.0).abs() < 1e-9);
    assert_eq!(
        (a.request_bytes, a.response_bytes, a.bytes()),
        (10_000, 100_000, 110_000)
    );
    assert!((a.quantile_ms(0.5) - 50.0).abs() < 0.5 && (a.quantile_ms(0.99) - 99.0).abs() < 0.5);
    // The /b response had no request seen: no request bytes, and still counted.
    assert_eq!(
        (rows[1].1.count, rows[1].1.errors, rows[1].1.request_bytes),
        (1, 1, 0)
    );
    assert_eq!(table.messages, 201);
}

#[test]
fn keeps_latest_exchanges_joined_with_their_requests() {
    let mut table = EndpointTable::new();
    for i in 1..=20u64 {
        table.observe(request(1, i, "/x", 0));
        table.observe(response(1, i, "/x", 200, 1, 0));
    }
    let (_, stats) = table.rows()[0];
    assert_eq!(stats.latest.len(), LATEST_EXCHANGES);
    let last = stats.latest.back().unwrap();
    assert_eq!(last.response.body, "resp-20");
    let req = last.request.as_ref().unwrap();
    assert_eq!(
        (req.body.as_str(), req.headers[0].0.as_str()),
        ("req-body", "host")
    );
    assert_eq!(stats.latest.front().unwrap().response.body, "resp-13");
}

#[test]
fn rate_is_a_sliding_window() {
    let mut table = EndpointTable::new();
    for s in 0..30 {
        for i in 0..5 {
            table.observe(response(1, (s * 10 + i) as u64, "/r", 200, 1, s));
        }
    }
    let (_, stats) = table.rows()[0];
    let now = 29 * 1_000_000_000;
    assert!((stats.rate(now) - 5.0).abs() < 1e-9, "{}", stats.rate(now));
    assert!((stats.rate(now + 5_000_000_000) - 2.5).abs() < 1e-9);
    assert_eq!(stats.rate(now + 60_000_000_000), 0.0);
    assert!((stats.mean_rate() - 150.0 / 29.0).abs() < 1e-9);
    let history = stats.history(now);
    assert_eq!(history[..30], [0; 30]);
    assert_eq!(history[30..], [5; 30]);
    assert_eq!(stats.history(now + 40_000_000_000)[..20], [5; 20]);
    assert_eq!(stats.history(now + 40_000_000_000)[20..], [0; 40]);
}

#[test]
fn interim_and_unpaired_responses_are_not_endpoints() {
    let mut table = EndpointTable::new();
    let mut interim = response(1, 1, "/i", 100, 1, 0);
    interim.interim = true;
    table.observe(interim);
    let mut unpaired = response(1, 2, "/u", 200, 1, 0);
    unpaired.latency_ns = None;
    table.observe(unpaired);
    assert!(table.is_empty());
}

#[test]
fn endpoints_and_pending_requests_are_bounded() {
    let mut table = EndpointTable::new();
    for i in 0..(MAX_ENDPOINTS + 10) as u64 {
        table.observe(response(1, i, &format!("/users/{i}"), 200, 1, 0));
    }
    assert_eq!(table.len(), MAX_ENDPOINTS + 1);
    let other = table
        .rows()
        .into_iter()
        .find(|(k, _)| k.route == OTHER_ROUTES)
        .unwrap();
    assert_eq!(other.1.count, 10);
    for i in 0..20_000u64 {
        table.observe(request(9, i, "/p", 0));
    }
    table.observe(response(9, 19_999, "/p", 200, 1, 0));
    let p = table
        .rows()
        .into_iter()
        .find(|(k, _)| k.route == OTHER_ROUTES)
        .unwrap();
    assert!(p.1.latest.back().unwrap().request.is_some());
}

#[test]
fn histogram_buckets_cover_every_response() {
    let mut table = EndpointTable::new();
    for (i, ms) in [1u64, 1, 3, 40, 400, 400, 400].into_iter().enumerate() {
        table.observe(response(1, i as u64, "/h", 200, ms, 0));
    }
    let buckets = latency_buckets(table.rows()[0].1);
    assert_eq!(buckets.iter().map(|b| b.count).sum::<u64>(), 7);
    assert_eq!(
        buckets.first().unwrap(),
        &LatencyBucket {
            le_ms: Some(1.0),
            count: 2
        }
    );
    assert_eq!(
        buckets.last().unwrap(),
        &LatencyBucket {
            le_ms: Some(500.0),
            count: 3
        }
    );
}

#[test]
fn json_lines_become_observations() {
    let line = r#"{"ts":"2026-11-25T15:38:24.148Z","pid":12218,"tid":1,"comm":"demo-server","role":"server","dir":"send","src":"127.0.0.1:8080","dst":"127.0.0.1:57470","conn":4,"kind":"response","exchange":1,"method":"POST","url":"/echo?a=b","status":200,"headers":{"content-type":"application/json"},"bytes":147,"body":"{}","latency_ms":0.058,"partial":false,"interim":false}"#;
    let obs = Observation::from_json(&serde_json::from_str(line).unwrap()).unwrap();
    assert_eq!(
        (obs.port, obs.pid, obs.conn, obs.exchange),
        (8080, 12218, 4, Some(1))
    );
    assert_eq!(
        (obs.path(), obs.status, obs.latency_ns),
        ("/echo", Some(200), Some(58_000))
    );
    assert_eq!(obs.unix_ns, 1_795_621_104_148_000_000);
    assert_eq!(
        obs.headers,
        vec![("content-type".into(), "application/json".into())]
    );
    assert!(Observation::from_json(&serde_json::json!({"kind": "other"})).is_none());
    assert!(
        Observation::from_json(&serde_json::json!({"kind": "response", "status": "x"})).is_some()
    );
    assert_eq!(
        parse_rfc3339_ns("1970-01-01T00:00:01Z"),
        Some(1_000_000_000)
    );
    assert_eq!(parse_rfc3339_ns("garbage"), None);
}

#[test]
fn grpc_status_is_the_error_signal_and_protocols_get_their_own_rows() {
    let mut table = EndpointTable::new();
    let grpc = |exchange: u64, status: Option<u16>, grpc_status: Option<u32>| Observation {
        proto: "h2".into(),
        method: "POST".into(),
        grpc: true,
        grpc_status,
        status,
        ..response(1, exchange, "/pkg.Echo/Say", 200, 1, 0)
    };
    table.observe(grpc(1, Some(200), Some(0)));
    table.observe(grpc(2, Some(200), Some(5)));
    // Reset before its response head: no HTTP status, no grpc-status; still a failed call.
    table.observe(grpc(3, None, None));
    table.observe(Observation {
        proto: "h2".into(),
        ..response(1, 4, "/pkg.Echo/Say", 503, 1, 0)
    });
    table.observe(response(1, 5, "/pkg.Echo/Say", 200, 1, 0));
    let rows = table.rows();
    let protos: Vec<(&str, &str, u64, u64)> = rows
        .iter()
        .map(|(k, s)| (k.proto, k.method.as_str(), s.count, s.errors))
        .collect();
    assert_eq!(
        protos,
        [
            ("1.1", "GET", 1, 0),
            ("grpc", "POST", 3, 2),
            ("h2", "GET", 1, 1)
        ]
    );
    let (_, calls) = rows.iter().find(|(k, _)| k.proto == "grpc").unwrap();
    let statuses: Vec<(u16, Option<u32>)> = calls
        .latest
        .iter()
        .map(|e| (e.status, e.grpc_status))
        .collect();
    assert_eq!(statuses, [(200, Some(0)), (200, Some(5)), (0, None)]);
}

#[test]
fn json_lines_without_proto_are_http1() {
    let line = serde_json::json!({"kind": "response", "http_version": "1.0", "status": 200});
    assert_eq!(Observation::from_json(&line).unwrap().proto, "http/1.0");
    let line = serde_json::json!({"kind": "response", "proto": "h2", "grpc_service": "a.B",
        "grpc_status": 7});
    let obs = Observation::from_json(&line).unwrap();
    assert_eq!(
        (obs.proto.as_str(), obs.grpc, obs.grpc_status),
        ("h2", true, Some(7))
    );
}
