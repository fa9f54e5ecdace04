//! `httpscope stats` on recorded traces: an event file, and the JSON lines
//! `replay --format json` makes of it, give the same endpoints. No root needed.

use std::process::Command;

use serde_json::Value;

use crate::support::{fixture, httpscope_ok};

fn stats_json(path: &str) -> Value {
    serde_json::from_str(&httpscope_ok(&["stats", "--json", path])).unwrap()
}

#[test]
fn event_file_table_and_histograms() {
    let text = httpscope_ok(&["stats", fixture("demo-traffic").to_str().unwrap()]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("PROCESS") && lines[0].contains("P99ms") && lines[0].contains("BYTES")
    );
    let echo = lines
        .iter()
        .find(|l| l.contains("server") && l.contains("/echo"))
        .unwrap();
    assert!(
        echo.starts_with("demo-server") && echo.ends_with(" 5"),
        "{echo}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("18080 client") || l.contains("18080 server"))
            .count(),
        8
    );
    assert!(
        text.contains("records=80") && text.contains("kernel_drops=0"),
        "{text}"
    );
    assert!(text.contains("latency histograms"));
    assert!(
        text.contains(
            "server 1.1 GET /slow (demo-server:18080)  n=5\n  <=  500.00 ms       5 ####"
        ),
        "{text}"
    );
}

#[test]
fn json_output_file_matches_event_file() {
    let events = fixture("demo-traffic");
    let from_events = stats_json(events.to_str().unwrap());
    let dir = std::env::temp_dir().join(format!("httpscope-stats-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jsonl = dir.join("records.jsonl");
    let _ = std::fs::remove_file(&jsonl);
    httpscope_ok(&[
        "replay",
        events.to_str().unwrap(),
        "--format",
        "json",
        "--no-summary",
        "--output",
        jsonl.to_str().unwrap(),
    ]);
    let from_json = stats_json(jsonl.to_str().unwrap());
    std::fs::remove_dir_all(&dir).unwrap();

    let endpoints = from_events["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 8);
    assert_eq!(from_events["records"], 80);
    assert!(from_events["report"]["kernel"].is_object());
    let slow = endpoints
        .iter()
        .find(|e| e["route"] == "/slow" && e["role"] == "server")
        .unwrap();
    assert_eq!(
        (slow["count"].as_u64(), slow["errors"].as_u64()),
        (Some(5), Some(0))
    );
    assert!(slow["p50_ms"].as_f64().unwrap() >= 400.0);
    assert_eq!(slow["histogram"][0]["count"], 5);
    assert!(
        slow["request_bytes"].as_u64().unwrap() > 0 && slow["response_bytes"].as_u64().unwrap() > 0
    );

    // JSON lines carry the same messages: same endpoints, counts and bytes; latency in ms with 3 decimals.
    assert_eq!(from_json["records"], 80);
    assert!(from_json["report"].is_null());
    let json_endpoints = from_json["endpoints"].as_array().unwrap();
    assert_eq!(json_endpoints.len(), endpoints.len());
    for (a, b) in endpoints.iter().zip(json_endpoints) {
        for field in [
            "role",
            "method",
            "route",
            "process",
            "port",
            "count",
            "errors",
            "request_bytes",
            "response_bytes",
        ] {
            assert_eq!(a[field], b[field], "{field}: {a} vs {b}");
        }
        let (pa, pb) = (a["p99_ms"].as_f64().unwrap(), b["p99_ms"].as_f64().unwrap());
        assert!((pa - pb).abs() <= 0.01 + pa * 0.002, "{pa} vs {pb}");
    }
}

#[test]
fn bad_files_are_errors_or_skipped_not_panics() {
    let out = Command::new(env!("CARGO_BIN_EXE_httpscope"))
        .args(["stats", "/nonexistent/x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("opening"));
    let dir = std::env::temp_dir().join(format!("httpscope-stats-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.jsonl");
    std::fs::write(&junk, "not json\n{\"kind\":\"response\"}\n\u{0}\u{1}\n").unwrap();
    let value = stats_json(junk.to_str().unwrap());
    assert_eq!(value["skipped_lines"], 2);
    assert_eq!(value["endpoints"].as_array().unwrap().len(), 0);
    let truncated = dir.join("cut.events");
    let bytes = std::fs::read(fixture("demo-traffic")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_httpscope"))
        .args(["stats", truncated.to_str().unwrap()])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.code().is_some(),
        "no crash on a cut-short event file"
    );
}

/// A request and its response, as `--format json` writes them, in `container` ("" = host).
fn exchange_lines(conn: u64, container: &str) -> String {
    let ids = if container.is_empty() {
        String::new()
    } else {
        format!(r#","cgroup":"/docker/{container}","container_id":"{container}""#)
    };
    let common = format!(
        r#""pid":7,"tid":7,"comm":"api","role":"server","conn":{conn},"exchange":1,"method":"GET","url":"/items""#
    );
    format!(
        "{{\"ts\":\"2026-12-01T10:00:00.000Z\",{common}{ids},\"dir\":\"recv\",\"src\":\"127.0.0.1:5000\",\"dst\":\"127.0.0.1:8080\",\"kind\":\"request\",\"bytes\":40}}\n\
         {{\"ts\":\"2026-12-01T10:00:00.002Z\",{common}{ids},\"dir\":\"send\",\"src\":\"127.0.0.1:8080\",\"dst\":\"127.0.0.1:5000\",\"kind\":\"response\",\"status\":200,\"latency_ms\":2.0,\"bytes\":60}}\n"
    )
}

#[test]
fn endpoints_are_grouped_and_filtered_by_container() {
    let (a, b) = ("a".repeat(64), format!("b{}", "0".repeat(63)));
    let dir = std::env::temp_dir().join(format!("httpscope-stats-ct-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("records.jsonl");
    let lines = [
        exchange_lines(1, &a),
        exchange_lines(2, &a),
        exchange_lines(3, &b),
        exchange_lines(4, ""),
    ];
    std::fs::write(&path, lines.concat()).unwrap();
    let path = path.to_str().unwrap();

    let all = stats_json(path);
    let mut groups: Vec<(String, u64)> = all["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["container_id"].as_str().unwrap().to_owned(),
                e["count"].as_u64().unwrap(),
            )
        })
        .collect();
    groups.sort();
    assert_eq!(
        groups,
        vec![(String::new(), 1), (a.clone(), 2), (b.clone(), 1)]
    );

    let text = httpscope_ok(&["stats", "--container", &a[..12], path]);
    let rows: Vec<&str> = text.lines().skip(1).take_while(|l| !l.is_empty()).collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(
        rows[0].starts_with(&format!("api            {}", &a[..12])),
        "{text}"
    );
    let only_b: Value = serde_json::from_str(&httpscope_ok(&[
        "stats",
        "--json",
        "--container",
        "B0",
        path,
    ]))
    .unwrap();
    assert_eq!(only_b["endpoints"].as_array().unwrap().len(), 1);
    assert_eq!(only_b["endpoints"][0]["container_id"], b.as_str());
    std::fs::remove_dir_all(&dir).unwrap();
}
