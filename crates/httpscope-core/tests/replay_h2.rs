//! Replays HTTP/2 traces recorded from real programs (tests/fixtures/record-h2.sh): every
//! record, exactly.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;

/// One record in a line: who, what, and how it was paired.
fn line(s: &Seen) -> String {
    let mut out = format!(
        "{} {} {} {} s={} x={} {} {} {}",
        s.comm,
        s.role.unwrap_or("-"),
        s.kind,
        s.proto,
        s.stream.map_or("-".into(), |n| n.to_string()),
        s.exchange.map_or("-".into(), |n| n.to_string()),
        s.method.as_deref().unwrap_or("-"),
        s.url.as_deref().unwrap_or("-"),
        s.status.map_or("-".into(), |n| n.to_string()),
    );
    for (flag, on) in [
        ("interim", s.interim),
        ("partial", s.partial),
        ("latency", s.latency_ns.is_some()),
    ] {
        if on {
            out.push(' ');
            out.push_str(flag);
        }
    }
    if s.unknown_headers > 0 {
        out.push_str(&format!(" unknown={}", s.unknown_headers));
    }
    if let Some(grpc) = &s.grpc {
        out.push_str(&format!(" grpc={grpc}"));
    }
    out
}

fn lines(seen: &[Seen]) -> Vec<String> {
    seen.iter().map(line).collect()
}

#[test]
fn curl_prior_knowledge_against_nghttpd() {
    let (seen, report) = replay_fixture("h2c-curl-nghttpd");
    let mut expected = Vec::new();
    for (url, status) in [("/index.html", 200), ("/big.txt", 200), ("/missing", 404)] {
        expected.extend([
            format!("curl client request h2 s=1 x=1 GET {url} -"),
            format!("nghttpd server request h2 s=1 x=1 GET {url} -"),
            format!("nghttpd server response h2 s=1 x=1 GET {url} {status} latency"),
            format!("curl client response h2 s=1 x=1 GET {url} {status} latency"),
        ]);
    }
    assert_eq!(lines(&seen), expected);
    let big = seen
        .iter()
        .find(|s| s.url.as_deref() == Some("/big.txt") && s.kind == "response");
    assert!(big.unwrap().body.starts_with("1\n2\n3\n"));
    assert_eq!(report.pipeline.connections_http2, 6);
    assert_eq!(report.parse.parse_errors + report.parse.non_http_bytes, 0);
    assert_pairing_exact(&seen);
}

#[test]
fn nghttp_multiplexes_three_streams() {
    let (seen, report) = replay_fixture("h2c-nghttp");
    let mut expected = Vec::new();
    let streams = [
        (13, 1, "/index.html"),
        (15, 2, "/big.txt"),
        (17, 3, "/index.html?again"),
    ];
    for (comm, role) in [("nghttp", "client"), ("nghttpd", "server")] {
        for (stream, exchange, url) in streams {
            expected.push(format!(
                "{comm} {role} request h2 s={stream} x={exchange} GET {url} -"
            ));
        }
    }
    for (comm, role) in [("nghttpd", "server"), ("nghttp", "client")] {
        for (stream, exchange, url) in streams {
            expected.push(format!(
                "{comm} {role} response h2 s={stream} x={exchange} GET {url} 200 latency"
            ));
        }
    }
    assert_eq!(lines(&seen), expected);
    assert_eq!(
        report.parse.unpaired_responses + report.parse.unanswered_requests,
        0
    );
}

#[test]
fn curl_upgrades_to_h2c() {
    let (seen, _) = replay_fixture("h2c-upgrade");
    assert_eq!(
        lines(&seen),
        [
            "curl client request http/1.1 s=- x=1 GET /first -",
            "python3 server request http/1.1 s=- x=1 GET /first -",
            "python3 server response http/1.1 s=- x=1 GET /first 101 interim",
            "curl client response http/1.1 s=- x=1 GET /first 101 interim",
            "python3 server response h2 s=1 x=1 GET /first 200 latency",
            "curl client response h2 s=1 x=1 GET /first 200 latency",
            "curl client request h2 s=3 x=2 GET /second -",
            "python3 server request h2 s=3 x=2 GET /second -",
            "python3 server response h2 s=3 x=2 GET /second 200 latency",
            "curl client response h2 s=3 x=2 GET /second 200 latency",
        ]
    );
    assert_eq!(seen[5].body, "upgraded /first\n");
    assert_pairing_exact(&seen);
}

#[test]
fn curl_over_tls_with_alpn_h2() {
    let (seen, report) = replay_fixture("h2-tls-curl");
    let mut got = lines(&seen);
    got.sort();
    let mut expected = Vec::new();
    for (stream, url) in [(1, "/index.html"), (3, "/big.txt")] {
        for (comm, role) in [("curl", "client"), ("nghttpd", "server")] {
            expected.push(format!(
                "{comm} {role} request h2 s={stream} x={stream_x} GET {url} -",
                stream_x = stream / 2 + 1
            ));
            expected.push(format!(
                "{comm} {role} response h2 s={stream} x={stream_x} GET {url} 200 latency",
                stream_x = stream / 2 + 1
            ));
        }
    }
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(report.pipeline.connections_tls, 0, "the plaintext was seen");
}

#[test]
fn grpc_calls_from_python() {
    let (seen, report) = replay_fixture("grpc-python");
    let server: Vec<String> = seen
        .iter()
        .filter(|s| s.role == Some("server"))
        .map(line)
        .collect();
    assert_eq!(
        server,
        [
            "python3 server request h2 s=1 x=1 POST /fixture.Echo/Unary - grpc=fixture.Echo/Unary None 1",
            "python3 server response h2 s=1 x=1 POST /fixture.Echo/Unary 200 latency grpc=fixture.Echo/Unary Some(0) 1",
            "python3 server request h2 s=3 x=2 POST /fixture.Echo/Unary - grpc=fixture.Echo/Unary None 1",
            "python3 server response h2 s=3 x=2 POST /fixture.Echo/Unary 200 latency grpc=fixture.Echo/Unary Some(5) 0",
            "python3 server request h2 s=5 x=3 POST /fixture.Echo/ServerStream - grpc=fixture.Echo/ServerStream None 1",
            "python3 server response h2 s=5 x=3 POST /fixture.Echo/ServerStream 200 latency grpc=fixture.Echo/ServerStream Some(0) 3",
            "python3 server request h2 s=7 x=4 POST /fixture.Echo/Bidi - grpc=fixture.Echo/Bidi None 2",
            "python3 server response h2 s=7 x=4 POST /fixture.Echo/Bidi 200 latency grpc=fixture.Echo/Bidi Some(0) 2",
        ]
    );
    // The client's first sendmsg (preface, SETTINGS and the first call) was cut by the capture
    // limit: its HPACK insertions are unknown, so later fields that refer to them are flagged,
    // never guessed, and the first response is reported unpaired.
    let client: Vec<String> = seen
        .iter()
        .filter(|s| s.role == Some("client"))
        .map(line)
        .collect();
    assert_eq!(
        client,
        [
            "python3 client response h2 s=1 x=- - - 200",
            "python3 client request h2 s=3 x=1 POST - - unknown=6",
            "python3 client response h2 s=3 x=1 POST - 200 latency",
            "python3 client request h2 s=5 x=2 POST /fixture.Echo/ServerStream - unknown=5",
            "python3 client response h2 s=5 x=2 POST /fixture.Echo/ServerStream 200 latency",
            "python3 client request h2 s=7 x=3 POST /fixture.Echo/Bidi - unknown=5",
            "python3 client response h2 s=7 x=3 POST /fixture.Echo/Bidi 200 latency",
        ]
    );
    assert_eq!(report.parse.unpaired_responses, 1);
    assert!(report.parse.gap_bytes > 0);
    assert_pairing_exact(&seen);
}

#[test]
fn late_attach_recovers_what_is_exact() {
    let (seen, report) = replay_fixture("h2c-late-attach");
    let mut expected = Vec::new();
    for (i, stream) in [5, 7, 9].into_iter().enumerate() {
        let url = format!("/index.html?after={}", i + 1);
        let x = i + 1;
        expected.extend([
            format!("node client request h2 s={stream} x={x} GET {url} - unknown=2"),
            format!("nghttpd server request h2 s={stream} x={x} GET {url} - unknown=2"),
            format!("nghttpd server response h2 s={stream} x={x} GET {url} 200 latency unknown=4"),
            format!("node client response h2 s={stream} x={x} GET {url} 200 latency unknown=4"),
        ]);
    }
    assert_eq!(lines(&seen), expected);
    // The literal header sent after attaching is recovered; the ones from before are not.
    assert!(report.parse.h2_unknown_headers > 0);
    assert_pairing_exact(&seen);
}
