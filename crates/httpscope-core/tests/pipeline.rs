//! The pipeline on synthetic kernel events: connection lifetime, identity and counters.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use httpscope_core::direction::Direction;
use httpscope_core::event::{encode, ConnOrigin, EventHeader};
use httpscope_core::pipeline::{Pipeline, PipelineConfig};
use httpscope_core::sink::{LineFormat, LineSink};

const MS: u64 = 1_000_000;
const REQUEST: &[u8] = b"GET /items?id=7 HTTP/1.1\r\nHost: x\r\nX-Request-Id: 41\r\n\r\n";
const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Request-Id: 41\r\n\r\nhello";

fn header(conn_id: u64, tgid: u32, ts_ns: u64) -> EventHeader {
    EventHeader {
        tgid,
        tid: tgid + 1,
        ts_ns,
        conn_id,
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct Harness {
    pipeline: Pipeline,
    collector: Collector,
}

impl Harness {
    fn new(config: PipelineConfig) -> Self {
        let collector = Collector::default();
        let pipeline = Pipeline::new(config, vec![Box::new(collector.clone())]);
        Harness {
            pipeline,
            collector,
        }
    }

    fn feed(&mut self, raw: Vec<u8>) {
        self.pipeline.process_raw(&raw).unwrap();
    }

    fn open_server_conn(&mut self, conn_id: u64, tgid: u32, fd: u32, ts: u64) {
        self.feed(encode::conn_open(
            &header(conn_id, tgid, ts),
            fd,
            ConnOrigin::Accept,
            addr("10.0.0.1:8080"),
            addr("10.0.0.2:50000"),
            "server",
        ));
    }

    fn exchange(&mut self, conn_id: u64, tgid: u32, ts: u64, offset: u64) {
        let h = header(conn_id, tgid, ts);
        self.feed(encode::data(
            &h,
            Direction::Recv,
            offset,
            REQUEST.len() as u64,
            REQUEST,
        ));
        let h = header(conn_id, tgid, ts + 3 * MS);
        self.feed(encode::data(
            &h,
            Direction::Send,
            offset,
            RESPONSE.len() as u64,
            RESPONSE,
        ));
    }

    fn seen(&self) -> Vec<Seen> {
        self.collector.0.borrow().clone()
    }
}

#[test]
fn pairs_an_exchange_with_wall_clock_and_addresses() {
    let mut h = Harness::new(PipelineConfig {
        wall_clock_offset_ns: 1_700_000_000_000_000_000,
        ..PipelineConfig::default()
    });
    h.open_server_conn(1, 100, 5, 10 * MS);
    h.exchange(1, 100, 20 * MS, 0);
    let seen = h.seen();
    assert_eq!(seen.len(), 2);
    let (request, response) = (&seen[0], &seen[1]);
    assert_eq!(request.kind, "request");
    assert_eq!(request.role, Some("server"));
    assert_eq!(
        (request.src.as_str(), request.dst.as_str()),
        ("10.0.0.2:50000", "10.0.0.1:8080")
    );
    assert_eq!(
        (response.src.as_str(), response.dst.as_str()),
        ("10.0.0.1:8080", "10.0.0.2:50000")
    );
    assert_eq!(response.latency_ns, Some(3 * MS));
    assert_eq!(response.url.as_deref(), Some("/items?id=7"));
    assert_eq!(response.body, "hello");
    assert_eq!(request.unix_ns, 1_700_000_000_000_000_000 + 20 * MS as i64);
    assert_eq!(
        (request.pid, request.tid, request.comm.as_str()),
        (100, 101, "server")
    );
}

#[test]
fn fd_reuse_is_a_new_connection() {
    let mut h = Harness::new(PipelineConfig::default());
    h.open_server_conn(1, 100, 5, MS);
    // A request whose response never comes, then the fd closes and is reused.
    let req = header(1, 100, 2 * MS);
    h.feed(encode::data(
        &req,
        Direction::Recv,
        0,
        REQUEST.len() as u64,
        REQUEST,
    ));
    h.feed(encode::conn_close(
        &header(1, 100, 3 * MS),
        0,
        REQUEST.len() as u64,
    ));
    h.open_server_conn(2, 100, 5, 4 * MS);
    h.exchange(2, 100, 5 * MS, 0);
    let responses: Vec<_> = h
        .seen()
        .into_iter()
        .filter(|s| s.kind == "response")
        .collect();
    assert_eq!(responses.len(), 1);
    assert_eq!(responses[0].conn, 2);
    assert_eq!(
        responses[0].latency_ns,
        Some(3 * MS),
        "not paired with the old connection's request"
    );
    assert_eq!(h.pipeline.report().parse.unanswered_requests, 1);
}

#[test]
fn process_exit_closes_its_connections() {
    let mut h = Harness::new(PipelineConfig::default());
    h.open_server_conn(1, 100, 5, MS);
    h.open_server_conn(2, 200, 5, MS);
    assert_eq!(h.pipeline.connections(), 2);
    h.feed(encode::process_exit(&header(0, 100, 2 * MS)));
    assert_eq!(h.pipeline.connections(), 1);
    assert_eq!(h.pipeline.report().pipeline.connections_closed, 1);
}

#[test]
fn data_without_open_is_counted_and_resyncs() {
    let mut h = Harness::new(PipelineConfig::default());
    // Mid-message bytes first: they must not become a record.
    let h1 = header(9, 100, MS);
    h.feed(encode::data(&h1, Direction::Recv, 0, 10, b"ength: 5\r\n"));
    h.exchange(9, 100, 2 * MS, 10);
    let report = h.pipeline.report().clone();
    assert_eq!(report.pipeline.connections_without_open, 1);
    let seen = h.seen();
    assert!(seen.iter().all(|s| s.url.as_deref() != Some("ength")));
    assert_eq!(seen.iter().filter(|s| s.kind == "request").count(), 1);
}

#[test]
fn undecodable_records_are_counted_not_fatal() {
    let mut h = Harness::new(PipelineConfig::default());
    h.feed(vec![1, 2, 3]);
    h.feed(vec![0xff; 64]);
    let mut truncated = encode::data(&header(1, 1, 1), Direction::Send, 0, 4, b"abcd");
    truncated.truncate(truncated.len() - 2);
    h.feed(truncated);
    assert_eq!(h.pipeline.report().pipeline.decode_errors, 3);
    assert!(h.seen().is_empty());
}

#[test]
fn http2_on_a_watched_port_is_decoded() {
    let mut h = Harness::new(PipelineConfig::default());
    h.open_server_conn(1, 100, 5, MS);
    // The preface, an empty SETTINGS, and HEADERS for `GET /h2` on stream 1 (static-table
    // :method and :scheme, a literal :path).
    let request = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00\
        \x00\x00\x07\x01\x05\x00\x00\x00\x01\x82\x86\x44\x03/h2";
    h.feed(encode::data(
        &header(1, 100, 2 * MS),
        Direction::Recv,
        0,
        request.len() as u64,
        request,
    ));
    let report = h.pipeline.report();
    assert_eq!(report.pipeline.connections_http2, 1);
    assert_eq!(report.parse.non_http_bytes, 0);
    let seen = h.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (
            seen[0].kind,
            seen[0].role,
            seen[0].url.as_deref(),
            seen[0].exchange
        ),
        ("request", Some("server"), Some("/h2"), Some(1))
    );
}

#[test]
fn idle_connections_are_evicted() {
    let mut h = Harness::new(PipelineConfig {
        idle_timeout: Duration::from_secs(10),
        ..PipelineConfig::default()
    });
    h.open_server_conn(1, 100, 5, MS);
    h.pipeline.tick(5_000 * MS).unwrap();
    assert_eq!(h.pipeline.connections(), 1);
    h.pipeline.tick(12_000 * MS).unwrap();
    assert_eq!(h.pipeline.connections(), 0);
    assert_eq!(h.pipeline.report().pipeline.connections_evicted, 1);
}

#[test]
fn connection_limit_evicts_the_least_recently_seen() {
    let mut h = Harness::new(PipelineConfig {
        max_connections: 2,
        ..PipelineConfig::default()
    });
    h.open_server_conn(1, 100, 5, MS);
    h.open_server_conn(2, 100, 6, 2 * MS);
    h.open_server_conn(3, 100, 7, 3 * MS);
    assert_eq!(h.pipeline.connections(), 2);
    assert_eq!(h.pipeline.report().pipeline.connections_evicted, 1);
}

/// The log lines, in `format`, of one client exchange: `request` sent, `response` received.
fn logged(format: LineFormat, request: &[u8], response: &[u8]) -> String {
    let out = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let sink = LineSink::new(Shared(out.clone()), format);
    let mut pipeline = Pipeline::new(
        PipelineConfig {
            wall_clock_offset_ns: 1_795_616_404_000_000_000,
            ..PipelineConfig::default()
        },
        vec![Box::new(sink)],
    );
    let feed = |p: &mut Pipeline, raw: Vec<u8>| p.process_raw(&raw).unwrap();
    feed(
        &mut pipeline,
        encode::conn_open(
            &header(1, 100, 0),
            5,
            ConnOrigin::Connect,
            addr("[::1]:40000"),
            addr("[::1]:8080"),
            "curl",
        ),
    );
    let calls = [
        (Direction::Send, 123 * MS, request),
        (Direction::Recv, 125 * MS, response),
    ];
    for (direction, ts, bytes) in calls {
        let event = encode::data(&header(1, 100, ts), direction, 0, bytes.len() as u64, bytes);
        feed(&mut pipeline, event);
    }
    pipeline.finish().unwrap();
    let text = String::from_utf8(out.borrow().clone()).unwrap();
    text
}

#[test]
fn json_lines_follow_the_contract() {
    let text = logged(LineFormat::Json, REQUEST, RESPONSE);
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let response = &lines[1];
    assert_eq!(response["ts"], "2026-11-25T14:20:04.125Z");
    assert_eq!(response["role"], "client");
    assert_eq!(response["dir"], "recv");
    assert_eq!(response["src"], "[::1]:8080");
    assert_eq!(response["dst"], "[::1]:40000");
    assert_eq!(response["kind"], "response");
    assert_eq!(response["method"], "GET");
    assert_eq!(response["url"], "/items?id=7");
    assert_eq!(response["status"], 200);
    assert_eq!(response["headers"]["x-request-id"], "41");
    assert_eq!(response["bytes"], RESPONSE.len());
    assert_eq!(response["body"], "hello");
    assert_eq!(response["body_truncated"], false);
    assert_eq!(response["latency_ms"], 2.0);
    assert_eq!(response["pid"], 100);
    assert_eq!(response["tid"], 101);
    assert_eq!(response["comm"], "curl");
    assert!(response["raw"]
        .as_str()
        .unwrap()
        .starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(lines[0]["kind"], "request");
    assert!(lines[0].get("latency_ms").is_none());
}

#[test]
fn a_credential_line_the_parser_skips_is_still_hidden() {
    // A control byte makes a field line invalid: the parser skips it, so no parsed field
    // names it, but the raw bytes still hold it.
    let request = b"GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3\tcr\x01et\r\n\r\n";
    let response = b"HTTP/1.1 200 OK\r\nSet-Cookie: id=s3\x7fcret\r\nContent-Length: 0\r\n\r\n";
    for format in [LineFormat::Logfmt, LineFormat::Json] {
        let text = logged(format, request, response);
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(!text.contains("s3"), "{text}");
        assert!(text.contains("Authorization: [REDACTED]"), "{text}");
        assert!(text.contains("Set-Cookie: [REDACTED]"), "{text}");
        let flagged = match format {
            LineFormat::Logfmt => "unknown_headers=1",
            LineFormat::Json => "\"unknown_headers\":1",
        };
        assert_eq!(text.matches(flagged).count(), 2, "{text}");
    }
}
