//! Property tests of the HTTP/1 engine: records do not depend on how the streams are cut into
//! syscalls, and no input (bytes, gaps, overlaps, limits) makes it panic or break its bounds.
#![allow(clippy::unwrap_used)]

use httpscope_core::direction::Direction;
use httpscope_core::http::{
    DataChunk, Emit, HeaderFields, HttpConfig, HttpConnection, HttpMessage, MessageKind, Outbox,
    ParseCounters,
};
use httpscope_core::redact::{HeaderNames, Redactor};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Body {
    Empty,
    Length(Vec<u8>),
    Chunked(Vec<Vec<u8>>),
}

#[derive(Debug, Clone)]
struct Exchange {
    method: &'static str,
    path: String,
    req_body: Body,
    status: u16,
    resp_body: Body,
    expect_continue: bool,
}

fn body() -> impl Strategy<Value = Body> {
    let bytes = || prop::collection::vec(any::<u8>(), 1..200);
    prop_oneof![
        Just(Body::Empty),
        bytes().prop_map(Body::Length),
        prop::collection::vec(bytes(), 1..4).prop_map(Body::Chunked),
    ]
}

fn exchange() -> impl Strategy<Value = Exchange> {
    (
        prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"]),
        "/[a-z0-9]{0,12}",
        body(),
        prop::sample::select(vec![200u16, 201, 204, 304, 404, 500]),
        body(),
        any::<bool>(),
    )
        .prop_map(
            |(method, path, req_body, status, resp_body, expect_continue)| Exchange {
                method,
                path,
                req_body,
                status,
                resp_body,
                expect_continue,
            },
        )
}

fn push_message(wire: &mut Vec<u8>, start: &str, body: &Body, send_body: bool) {
    wire.extend_from_slice(start.as_bytes());
    match body {
        Body::Empty => wire.extend_from_slice(b"\r\n"),
        Body::Length(b) => {
            wire.extend_from_slice(format!("Content-Length: {}\r\n\r\n", b.len()).as_bytes());
            if send_body {
                wire.extend_from_slice(b);
            }
        }
        Body::Chunked(chunks) => {
            wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            if send_body {
                for c in chunks {
                    wire.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                    wire.extend_from_slice(c);
                    wire.extend_from_slice(b"\r\n");
                }
                wire.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
            }
        }
    }
}

fn request(x: &Exchange) -> Vec<u8> {
    let mut wire = Vec::new();
    let expect = if x.expect_continue {
        "Expect: 100-continue\r\n"
    } else {
        ""
    };
    let start = format!("{} {} HTTP/1.1\r\nHost: h\r\n{expect}", x.method, x.path);
    push_message(&mut wire, &start, &x.req_body, true);
    wire
}

fn response(x: &Exchange) -> Vec<u8> {
    let mut wire = Vec::new();
    if x.expect_continue {
        wire.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let start = format!("HTTP/1.1 {} Whatever\r\nServer: s\r\n", x.status);
    let bodiless = x.method == "HEAD" || x.status == 204 || x.status == 304;
    // Bodiless responses may still declare a length; others need one to end before close.
    let body = match (&x.resp_body, bodiless) {
        (Body::Length(_), _) => x.resp_body.clone(),
        (_, true) => Body::Empty,
        (Body::Empty, false) => Body::Length(Vec::new()),
        (Body::Chunked(_), false) => x.resp_body.clone(),
    };
    push_message(&mut wire, &start, &body, !bodiless);
    wire
}

/// Field lines for a head: secrets the default redactor hides, plain ones, and lines the
/// parser skips as invalid (a control byte in the value, a space in the name).
fn field_lines() -> impl Strategy<Value = String> {
    let line = prop::sample::select(vec![
        "Authorization: Bearer t\r\n",
        "Cookie: s=1\r\n",
        "X-Api-Key: k\r\n",
        "X-Session-Token: z\r\n",
        "Accept: */*\r\n",
        "User-Agent: u\r\n",
        "Upgrade: websocket\r\n",
        "X-Secret-Code: \x01\r\n",
        "Bad Name: v\r\n",
    ]);
    prop::collection::vec(line, 0..5).prop_map(|lines| lines.concat())
}

/// `wire` with `fields` after its start line.
fn with_fields(wire: &[u8], fields: &str) -> Vec<u8> {
    let start = wire
        .iter()
        .position(|&b| b == b'\n')
        .map_or(wire.len(), |i| i + 1);
    let mut out = wire[..start].to_vec();
    out.extend_from_slice(fields.as_bytes());
    out.extend_from_slice(&wire[start..]);
    out
}

/// Feeds `(direction, bytes)` segments, cutting each into pieces with sizes taken cyclically
/// from `cuts` (one piece per segment when `cuts` is empty), then closes.
fn run(segments: &[(Direction, Vec<u8>)], cuts: &[usize]) -> (Vec<HttpMessage>, ParseCounters) {
    let config = HttpConfig::default();
    let mut conn = HttpConnection::new(false);
    let (mut out, mut counters) = (Outbox::default(), ParseCounters::default());
    let mut cx = Emit::new(&config, &mut counters, &mut out, 1);
    let mut offsets = [0u64; 2];
    let mut sizes = cuts.iter().cycle();
    for (dir, bytes) in segments {
        let mut rest = bytes.as_slice();
        while !rest.is_empty() {
            let n = sizes.next().copied().unwrap_or(rest.len()).min(rest.len());
            let (piece, tail) = rest.split_at(n);
            let offset = &mut offsets[dir.index()];
            let chunk = DataChunk {
                direction: *dir,
                offset: *offset,
                len: n as u64,
                data: piece,
                elided: false,
            };
            *offset += n as u64;
            conn.on_data(&chunk, &mut cx);
            rest = tail;
        }
    }
    cx.ts = 2;
    conn.on_close(&mut cx);
    (out.take(), counters)
}

fn segments(xs: &[Exchange], server: bool, pipelined: bool) -> Vec<(Direction, Vec<u8>)> {
    let (req_dir, resp_dir) = if server {
        (Direction::Recv, Direction::Send)
    } else {
        (Direction::Send, Direction::Recv)
    };
    if pipelined {
        vec![
            (req_dir, xs.iter().flat_map(request).collect()),
            (resp_dir, xs.iter().flat_map(response).collect()),
        ]
    } else {
        xs.iter()
            .flat_map(|x| [(req_dir, request(x)), (resp_dir, response(x))])
            .collect()
    }
}

proptest! {
    #[test]
    fn chunking_does_not_change_records(
        xs in prop::collection::vec(exchange(), 1..6),
        cuts in prop::collection::vec(1usize..40, 1..64),
        server in any::<bool>(),
        pipelined in any::<bool>(),
    ) {
        // Pipelined 100-continue is not something clients do (they wait for the 100).
        let pipelined = pipelined && !xs.iter().any(|x| x.expect_continue);
        let segs = segments(&xs, server, pipelined);
        let (whole, counters) = run(&segs, &[]);
        let interim = xs.iter().filter(|x| x.expect_continue).count();
        prop_assert_eq!(whole.len(), 2 * xs.len() + interim);
        prop_assert_eq!(counters.parse_errors + counters.partial_messages + counters.unpaired_responses, 0);
        prop_assert!(whole.iter().all(|m| m.exchange.is_some()));
        let (split, _) = run(&segs, &cuts);
        let timeless = |mut m: HttpMessage| {
            m.first_ts_ns = 0;
            m.last_ts_ns = 0;
            m.latency_ns = None;
            m
        };
        let whole: Vec<_> = whole.into_iter().map(timeless).collect();
        let split: Vec<_> = split.into_iter().map(timeless).collect();
        prop_assert_eq!(whole, split);
    }
}

fn fragment() -> impl Strategy<Value = Vec<u8>> {
    let pieces: Vec<&'static [u8]> = vec![
        b"GET / HTTP/1.1\r\n",
        b"HEAD /h HTTP/1.0\r\n",
        b"CONNECT a:1 HTTP/1.1\r\n",
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 101 S\r\n\r\n",
        b"HTTP/1.1 204 N\r\n",
        b"Content-Length: 5\r\n",
        b"Content-Length: 99999\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Content-Encoding: gzip\r\n",
        b"\r\n",
        b"\n",
        b"5\r\nhello\r\n",
        b"0\r\n\r\n",
        b"fffffffffffffffffff\r\n",
        b"PRI * HTTP/2.0\r\n",
        b"\x16\x03\x01",
        b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
    ];
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48),
        prop::collection::vec(prop::sample::select(pieces), 0..8).prop_map(|v| v.concat()),
    ]
}

#[derive(Debug, Clone)]
struct Op {
    send: bool,
    /// Offset relative to the expected one: 0 mostly, gaps, overlaps, absurd jumps.
    skew: i64,
    uncaptured: u64,
    data: Vec<u8>,
    close: bool,
}

fn op() -> impl Strategy<Value = Op> {
    let skew = prop_oneof![6 => Just(0i64), 2 => 1i64..300, 2 => -300i64..0, 1 => any::<i64>()];
    let uncaptured = prop_oneof![6 => Just(0u64), 2 => 1u64..500, 1 => any::<u64>()];
    (
        any::<bool>(),
        skew,
        uncaptured,
        fragment(),
        prop::bool::weighted(0.03),
    )
        .prop_map(|(send, skew, uncaptured, data, close)| Op {
            send,
            skew,
            uncaptured,
            data,
            close,
        })
}

/// The messages and counters of `ops` fed to one connection, which closes at the end.
fn feed_ops(
    ops: &[Op],
    mid_stream: bool,
    config: &HttpConfig,
) -> (Vec<HttpMessage>, ParseCounters) {
    let mut conn = HttpConnection::new(mid_stream);
    let (mut out, mut counters) = (Outbox::default(), ParseCounters::default());
    let mut cx = Emit::new(config, &mut counters, &mut out, 0);
    let mut offsets = [0u64; 2];
    for (i, op) in ops.iter().enumerate() {
        let direction = if op.send {
            Direction::Send
        } else {
            Direction::Recv
        };
        let expected = offsets[direction.index()];
        let offset = expected.saturating_add_signed(op.skew);
        let len = (op.data.len() as u64).saturating_add(op.uncaptured);
        offsets[direction.index()] = offset.saturating_add(len);
        let chunk = DataChunk {
            direction,
            offset,
            len,
            data: &op.data,
            elided: false,
        };
        cx.ts = i as u64;
        conn.on_data(&chunk, &mut cx);
        if op.close {
            conn.on_close(&mut cx);
        }
    }
    cx.ts = u64::MAX;
    conn.on_close(&mut cx);
    (out.take(), counters)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn arbitrary_input_never_panics(
        ops in prop::collection::vec(op(), 0..40),
        mid_stream in any::<bool>(),
        body_limit in 0usize..64,
        raw_limit in 0usize..64,
        max_head_bytes in 0usize..256,
    ) {
        let config = HttpConfig { body_limit, raw_limit, max_head_bytes, header_fields: HeaderFields::All };
        let (out, counters) = feed_ops(&ops, mid_stream, &config);
        prop_assert_eq!(counters.messages, out.len() as u64);
        for m in &out {
            prop_assert!(m.raw.len() <= raw_limit);
            prop_assert!(m.body.len() <= body_limit);
            prop_assert!(m.body_captured || m.body_truncated);
            prop_assert!(m.latency_ns.is_none() || m.kind == MessageKind::Response);
            // A paired response always matches the request that carried its exchange number.
            if let (MessageKind::Response, Some(n)) = (m.kind, m.exchange) {
                // (The request record may come later: a response can beat the request's body.)
                let req = out.iter().find(|q| q.kind == MessageKind::Request && q.exchange == Some(n));
                let req = req.unwrap();
                prop_assert_eq!((&req.method, &req.url), (&m.method, &m.url));
            }
        }
    }

    /// Metrics mode drops header fields no sink reads: nothing else about any message, and
    /// no counter, may change with them.
    #[test]
    fn dropping_headers_changes_nothing_else(
        exchanges in prop::collection::vec(exchange(), 1..6),
        ops in prop::collection::vec(op(), 0..12),
        mid_stream in any::<bool>(),
    ) {
        // Well-formed exchanges first, so that most cases parse heads; then anything at all.
        let mut all = Vec::new();
        for ex in &exchanges {
            all.push(Op { send: false, skew: 0, uncaptured: 0, data: request(ex), close: false });
            all.push(Op { send: true, skew: 0, uncaptured: 0, data: response(ex), close: false });
        }
        all.extend(ops);
        let ops = all;
        let kept = HttpConfig { body_limit: 0, raw_limit: 0, ..HttpConfig::default() };
        let dropped =
            HttpConfig { header_fields: HeaderFields::Only(HeaderNames::none()), ..kept.clone() };
        let (mut full, full_counters) = feed_ops(&ops, mid_stream, &kept);
        let (light, light_counters) = feed_ops(&ops, mid_stream, &dropped);
        prop_assert_eq!(full_counters, light_counters);
        prop_assert_eq!(full.len(), light.len());
        for (f, l) in full.iter_mut().zip(&light) {
            prop_assert!(l.headers.iter().all(|(name, _)| name.eq_ignore_ascii_case("upgrade")));
            f.headers = l.headers.clone();
        }
        prop_assert_eq!(full, light);
    }

    /// A log that shows no header field keeps only those the redactor hides: once redacted,
    /// every message is the same as with all fields kept, `raw` included.
    #[test]
    fn keeping_only_redacted_fields_changes_nothing_redacted(
        exchanges in prop::collection::vec((exchange(), field_lines(), field_lines()), 1..6),
        mid_stream in any::<bool>(),
        raw_limit in 0usize..400,
    ) {
        let mut ops = Vec::new();
        for (ex, req_fields, resp_fields) in &exchanges {
            let data = with_fields(&request(ex), req_fields);
            ops.push(Op { send: false, skew: 0, uncaptured: 0, data, close: false });
            let data = with_fields(&response(ex), resp_fields);
            ops.push(Op { send: true, skew: 0, uncaptured: 0, data, close: false });
        }
        let redactor = Redactor::default();
        let all = HttpConfig { raw_limit, ..HttpConfig::default() };
        let only = HttpConfig {
            header_fields: HeaderFields::Only(redactor.header_names().clone()),
            ..all.clone()
        };
        let (mut full, full_counters) = feed_ops(&ops, mid_stream, &all);
        let (mut light, light_counters) = feed_ops(&ops, mid_stream, &only);
        prop_assert_eq!(full_counters, light_counters);
        prop_assert_eq!(full.len(), light.len());
        for (f, l) in full.iter_mut().zip(&mut light) {
            redactor.apply(f);
            redactor.apply(l);
            f.headers = l.headers.clone();
        }
        prop_assert_eq!(full, light);
    }
}
