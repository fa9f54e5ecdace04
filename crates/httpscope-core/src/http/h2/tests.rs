//! The HTTP/2 engine through the connection API, fed chunk by chunk like the kernel would.
#![allow(clippy::unwrap_used)]

use crate::direction::Direction;
use crate::http::{
    DataChunk, Emit, HeaderFields, HttpConfig, HttpConnection, HttpMessage, HttpVersion, Outbox,
    ParseCounters, Role,
};
use crate::redact::HeaderNames;

const SEND: Direction = Direction::Send;
const RECV: Direction = Direction::Recv;

struct Feed {
    conn: HttpConnection,
    config: HttpConfig,
    out: Outbox,
    counters: ParseCounters,
    offsets: [u64; 2],
    ts: u64,
}

impl Feed {
    fn new(mid_stream: bool) -> Self {
        Feed {
            conn: HttpConnection::new(mid_stream),
            config: HttpConfig::default(),
            out: Outbox::default(),
            counters: ParseCounters::default(),
            offsets: [0; 2],
            ts: 0,
        }
    }

    fn chunk(&mut self, direction: Direction, data: &[u8], len: u64) -> &mut Self {
        self.record(direction, data, len, false)
    }

    /// One kernel record of `len` bytes: `data`, then the rest lost or `elided` on purpose.
    fn record(&mut self, direction: Direction, data: &[u8], len: u64, elided: bool) -> &mut Self {
        self.ts += 1_000_000;
        let offset = &mut self.offsets[direction.index()];
        let chunk = DataChunk {
            direction,
            offset: *offset,
            len,
            data,
            elided,
        };
        *offset += len;
        let mut cx = Emit::new(&self.config, &mut self.counters, &mut self.out, self.ts);
        self.conn.on_data(&chunk, &mut cx);
        self
    }

    fn send(&mut self, data: &[u8]) -> &mut Self {
        self.chunk(SEND, data, data.len() as u64)
    }

    fn recv(&mut self, data: &[u8]) -> &mut Self {
        self.chunk(RECV, data, data.len() as u64)
    }

    fn close(&mut self) -> Vec<HttpMessage> {
        let mut cx = Emit::new(&self.config, &mut self.counters, &mut self.out, self.ts);
        self.conn.on_close(&mut cx);
        self.out.take()
    }
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend([kind, flags]);
    out.extend(stream.to_be_bytes());
    out.extend(payload);
    out
}

fn settings(entries: &[(u16, u32)]) -> Vec<u8> {
    let payload: Vec<u8> = entries
        .iter()
        .flat_map(|(id, value)| id.to_be_bytes().into_iter().chain(value.to_be_bytes()))
        .collect();
    frame(4, 0, 0, &payload)
}

/// A literal field with a literal name: `0x00` without indexing, `0x40` with.
fn literal(prefix: u8, name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![prefix, name.len() as u8];
    out.extend(name.as_bytes());
    out.push(value.len() as u8);
    out.extend(value.as_bytes());
    out
}

fn block(fields: &[(&str, &str)]) -> Vec<u8> {
    fields
        .iter()
        .flat_map(|(n, v)| literal(0x00, n, v))
        .collect()
}

fn headers(stream: u32, end_stream: bool, fields: &[(&str, &str)]) -> Vec<u8> {
    frame(1, 0x4 | u8::from(end_stream), stream, &block(fields))
}

fn data(stream: u32, end_stream: bool, payload: &[u8]) -> Vec<u8> {
    frame(0, u8::from(end_stream), stream, payload)
}

fn client_start(f: &mut Feed) {
    let mut first = PREFACE.to_vec();
    first.extend(settings(&[(3, 100)]));
    f.send(&first);
    f.recv(&settings(&[]));
}

#[test]
fn prior_knowledge_exchange() {
    let mut f = Feed::new(false);
    client_start(&mut f);
    f.send(&headers(
        1,
        true,
        &[
            (":method", "GET"),
            (":path", "/a?b=1"),
            (":authority", "h:1"),
            (":scheme", "http"),
            ("user-agent", "t"),
        ],
    ));
    f.recv(&headers(
        1,
        false,
        &[(":status", "200"), ("content-type", "text/plain")],
    ))
    .recv(&data(1, false, b"hel"))
    .recv(&data(1, true, b"lo"));
    assert_eq!(f.conn.role(), Some(Role::Client));
    let out = f.close();
    assert_eq!(out.len(), 2, "{out:#?}");
    let (q, r) = (&out[0], &out[1]);
    assert_eq!(
        (q.proto, q.stream.map(|s| s.get()), q.exchange),
        (HttpVersion::H2, Some(1), Some(1))
    );
    assert_eq!(q.method.as_deref(), Some("GET"));
    assert_eq!(q.url.as_deref(), Some("/a?b=1"));
    assert_eq!(q.authority(), Some("h:1"));
    assert_eq!(q.headers.iter().collect::<Vec<_>>(), [("user-agent", "t")]);
    assert!(!q.partial);
    assert_eq!(
        (r.status, r.exchange, r.stream.map(|s| s.get())),
        (Some(200), Some(1), Some(1))
    );
    assert_eq!(r.body, b"hello");
    assert_eq!(r.wire_bytes, 9 + 38 + 9 + 3 + 9 + 2);
    assert_eq!(r.latency_ns, Some(3_000_000));
    assert_eq!(r.url.as_deref(), Some("/a?b=1"));
    assert!(!r.partial && r.body_captured);
    assert_eq!(
        f.counters.unpaired_responses + f.counters.unanswered_requests,
        0
    );
}

#[test]
fn grpc_server_streaming_with_trailers() {
    // A log that shows no header field keeps only those the gRPC status is read from.
    for fields in [HeaderFields::All, HeaderFields::Only(HeaderNames::none())] {
        grpc_server_streaming(fields);
    }
}

fn grpc_server_streaming(fields: HeaderFields) {
    let all = fields == HeaderFields::All;
    let mut f = Feed::new(false);
    f.config.header_fields = fields;
    // This process is the server: the preface arrives.
    let mut first = PREFACE.to_vec();
    first.extend(settings(&[]));
    f.recv(&first);
    f.send(&settings(&[]));
    let call = [
        (":method", "POST"),
        (":path", "/pkg.Echo/Stream"),
        (":authority", "x"),
        ("content-type", "application/grpc"),
    ];
    f.recv(&headers(3, false, &call))
        .recv(&data(3, true, b"\x00\x00\x00\x00\x02hi"));
    f.send(&headers(
        3,
        false,
        &[(":status", "200"), ("content-type", "application/grpc")],
    ))
    .send(&data(3, false, b"\x00\x00\x00\x00\x01a\x00\x00\x00"))
    .send(&data(3, false, b"\x00\x01b"))
    .send(&headers(
        3,
        true,
        &[("grpc-status", "5"), ("grpc-message", "not%20found")],
    ));
    assert_eq!(f.conn.role(), Some(Role::Server));
    let out = f.close();
    assert_eq!(out.len(), 2);
    let q = out[0].grpc.as_deref().unwrap();
    assert_eq!(
        (&*q.service, &*q.method, q.messages, q.status),
        ("pkg.Echo", "Stream", 1, None)
    );
    let r = out[1].grpc.as_deref().unwrap();
    assert_eq!(
        (r.messages, r.status, r.message.as_deref()),
        (2, Some(5), Some("not found"))
    );
    assert_eq!(out[1].trailers().map(|t| t.len()), Some(2));
    assert_eq!(out[1].body, b"\x00\x00\x00\x00\x01a\x00\x00\x00\x00\x01b");
    let content_type = out[1].headers.iter().find(|(n, _)| *n == "content-type");
    assert_eq!(content_type.is_some(), all);
}

#[test]
fn grpc_trailers_only_and_reset_streams() {
    for fields in [HeaderFields::All, HeaderFields::Only(HeaderNames::none())] {
        grpc_trailers_only_and_reset(fields);
    }
}

fn grpc_trailers_only_and_reset(fields: HeaderFields) {
    let mut f = Feed::new(false);
    f.config.header_fields = fields;
    client_start(&mut f);
    let call = [
        (":method", "POST"),
        (":path", "/s.S/M"),
        ("content-type", "application/grpc"),
    ];
    f.send(&headers(1, true, &call));
    f.recv(&headers(
        1,
        true,
        &[
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", "12"),
        ],
    ));
    // Stream 3: reset by the client in the middle of the response body.
    f.send(&headers(3, true, &[(":method", "GET"), (":path", "/big")]));
    f.recv(&headers(3, false, &[(":status", "200")]))
        .recv(&data(3, false, b"part"))
        .send(&frame(3, 0, 3, &8u32.to_be_bytes()));
    let out = f.close();
    assert_eq!(out.len(), 4, "{out:#?}");
    assert_eq!(out[1].grpc.as_deref().and_then(|g| g.status), Some(12));
    let reset = &out[3];
    assert_eq!(
        (reset.reset_code(), reset.partial, reset.exchange),
        (Some(8), true, Some(2))
    );
    assert_eq!(reset.body, b"part");
    assert_eq!(f.counters.h2_rst_streams, 1);
}

#[test]
fn h2c_upgrade_answers_the_http1_request_on_stream_1() {
    // Metrics mode keeps no header fields but the one the upgrade is read from.
    for fields in [HeaderFields::All, HeaderFields::Only(HeaderNames::none())] {
        h2c_upgrade_exchange(fields);
    }
}

fn h2c_upgrade_exchange(fields: HeaderFields) {
    let mut f = Feed::new(false);
    f.config.header_fields = fields;
    f.send(b"GET /up HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n");
    let mut reply =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    reply.extend(settings(&[]));
    reply.extend(headers(1, false, &[(":status", "200")]));
    reply.extend(data(1, true, b"upgraded"));
    f.recv(&reply);
    let mut preface = PREFACE.to_vec();
    preface.extend(settings(&[]));
    f.send(&preface);
    f.send(&headers(3, true, &[(":method", "GET"), (":path", "/next")]));
    f.recv(&headers(3, true, &[(":status", "204")]));
    let out = f.close();
    let summary: Vec<_> = out
        .iter()
        .map(|m| {
            (
                m.proto,
                m.status,
                m.exchange,
                m.interim,
                m.url.as_deref().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (HttpVersion::Http11, None, Some(1), false, "/up"),
            (HttpVersion::Http11, Some(101), Some(1), true, "/up"),
            (HttpVersion::H2, Some(200), Some(1), false, "/up"),
            (HttpVersion::H2, None, Some(2), false, "/next"),
            (HttpVersion::H2, Some(204), Some(2), false, "/next"),
        ]
    );
    assert_eq!(out[2].body, b"upgraded");
    assert!(out[2].latency_ns.is_some());
    assert_eq!(f.counters.non_http_bytes + f.counters.tunnel_bytes, 0);
}

#[test]
fn late_join_decodes_exactly_what_it_can() {
    let mut f = Feed::new(true);
    // A response referencing a dynamic entry from before capture (index 62), plus :status 200.
    let mut fields = vec![0x88, 0xbe];
    fields.extend(literal(0x00, "x-seen", "1"));
    f.recv(&frame(1, 0x5, 7, &fields));
    // A request inserting an entry, then one referencing it.
    let mut request = vec![0x82, 0x84];
    request.extend(literal(0x40, "x-token", "abc"));
    f.send(&frame(1, 0x5, 9, &request));
    f.recv(&frame(1, 0x5, 9, &[0x88]));
    f.send(&frame(1, 0x5, 11, &[0x82, 0x84, 0xbe, 0xbf]));
    let out = f.close();
    assert_eq!(out.len(), 4, "{out:#?}");
    assert_eq!(
        (out[0].status, out[0].exchange, out[0].unknown_headers()),
        (Some(200), None, 1)
    );
    assert_eq!(out[0].headers.iter().collect::<Vec<_>>(), [("x-seen", "1")]);
    assert_eq!((out[1].exchange, out[2].exchange), (Some(1), Some(1)));
    let last = &out[3];
    assert_eq!(
        last.headers.iter().collect::<Vec<_>>(),
        [("x-token", "abc")]
    );
    assert_eq!(
        last.unknown_headers(),
        1,
        "the entry before capture stays unknown"
    );
    assert_eq!(f.conn.role(), Some(Role::Client));
    assert_eq!(f.counters.unpaired_responses, 1);
    assert_eq!(f.counters.unanswered_requests, 1);
}

#[test]
fn padding_priority_and_continuation() {
    let mut f = Feed::new(false);
    client_start(&mut f);
    let fields = block(&[(":method", "GET"), (":path", "/p"), ("a", "1"), ("b", "2")]);
    let (first, rest) = fields.split_at(10);
    // HEADERS with PADDED and PRIORITY, then CONTINUATION with END_HEADERS.
    let mut payload = vec![3];
    payload.extend([0, 0, 0, 0, 16]);
    payload.extend(first);
    payload.extend([0, 0, 0]);
    f.send(&frame(1, 0x1 | 0x8 | 0x20, 1, &payload));
    f.send(&frame(9, 0x4, 1, rest));
    f.recv(&headers(1, false, &[(":status", "200")]));
    f.recv(&frame(0, 0x1 | 0x8, 1, b"\x02ok\x00\x00"));
    let out = f.close();
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!(out[0].headers.len(), 2);
    assert_eq!(out[1].body, b"ok");
}

#[test]
fn a_gap_inside_a_body_keeps_the_frames() {
    let mut f = Feed::new(false);
    client_start(&mut f);
    f.send(&headers(1, true, &[(":method", "GET"), (":path", "/")]));
    f.recv(&headers(1, false, &[(":status", "200")]));
    let body = data(1, true, b"0123456789");
    // Only the first 12 bytes of the frame were captured.
    f.chunk(RECV, &body[..12], body.len() as u64);
    f.send(&headers(3, true, &[(":method", "GET"), (":path", "/2")]));
    f.recv(&headers(3, true, &[(":status", "204")]));
    let out = f.close();
    assert_eq!(out.len(), 4);
    assert_eq!(
        (out[1].body.as_slice(), out[1].body_captured),
        (&b"012"[..], false)
    );
    assert_eq!(out[1].body_len, 10);
    assert_eq!((out[3].status, out[3].exchange), (Some(204), Some(2)));
}

#[test]
fn a_table_size_update_over_the_acknowledged_limit_is_an_error() {
    let mut f = Feed::new(false);
    let mut first = PREFACE.to_vec();
    first.extend(settings(&[(1, 0)]));
    f.send(&first);
    f.recv(&settings(&[]));
    f.recv(&frame(4, 1, 0, &[]));
    f.send(&headers(1, true, &[(":method", "GET"), (":path", "/")]));
    // 0x3f 0xe1 0x1f: a size update to 4096, above the 0 the client allowed.
    f.recv(&frame(1, 0x5, 1, &[0x3f, 0xe1, 0x1f, 0x88]));
    let out = f.close();
    assert_eq!(f.counters.h2_hpack_errors, 1);
    assert_eq!(out.len(), 2);
    // The stream did answer, but nothing of its head is made up.
    assert_eq!(
        (out[1].status, out[1].unknown_headers(), out[1].exchange),
        (None, 1, Some(1))
    );
}

#[test]
fn hostile_input_stays_bounded() {
    let mut f = Feed::new(false);
    client_start(&mut f);
    // A CONTINUATION flood: far beyond the head limit, never ending the block.
    f.send(&frame(1, 0, 1, &block(&[(":method", "GET")])));
    let filler = vec![0u8; 16_000];
    for _ in 0..20 {
        f.send(&frame(9, 0, 1, &filler));
    }
    f.send(&frame(9, 0x5, 1, &[]));
    // Huge SETTINGS values, and random bytes.
    f.recv(&settings(&[(1, u32::MAX), (5, u32::MAX), (4, u32::MAX)]));
    let mut state = 0x1234_5678u32;
    let noise: Vec<u8> = (0..4000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect();
    f.recv(&noise);
    let out = f.close();
    assert!(out.len() <= 2, "{out:#?}");
    assert!(f.counters.parse_errors >= 1);
}

#[test]
fn good_traffic_after_a_lost_direction_is_exact_again() {
    let mut f = Feed::new(false);
    client_start(&mut f);
    f.recv(b"\xff\xff\xff garbage that is no frame");
    // A later syscall of whole frames: decoding resumes.
    f.send(&headers(
        1,
        true,
        &[(":method", "GET"), (":path", "/again")],
    ));
    f.recv(&headers(1, true, &[(":status", "200"), ("x", "y")]));
    let out = f.close();
    assert_eq!(out.len(), 2, "{out:#?}");
    assert_eq!((out[1].status, out[1].exchange), (Some(200), Some(1)));
    assert_eq!(f.counters.resyncs, 1);
}

#[test]
fn streams_whose_end_was_lost_do_not_pile_up() {
    let mut f = Feed::new(false);
    client_start(&mut f);
    // 1100 requests whose responses never come.
    for i in 0..1100u32 {
        f.send(&headers(
            2 * i + 1,
            true,
            &[(":method", "GET"), (":path", "/")],
        ));
    }
    f.recv(&headers(2 * 1099 + 1, true, &[(":status", "200")]));
    let out = f.close();
    assert_eq!(f.counters.queue_overflows, 1100 - 1024);
    let last = out.iter().find(|m| m.status == Some(200)).unwrap();
    assert_eq!(last.exchange, Some(1100));
    assert_eq!(f.counters.unanswered_requests, 1099);
}

/// DATA payload the kernel's capture budget counted without copying it: the stream's body
/// is cut, its length exact, the message whole; every frame around it still decodes.
#[test]
fn elided_data_payload_is_an_expected_gap() {
    let mut f = Feed::new(false);
    client_start(&mut f);
    let get = |path| {
        [
            (":method", "GET"),
            (":path", path),
            (":authority", "h"),
            (":scheme", "http"),
        ]
    };
    f.send(&headers(1, true, &get("/big")));
    f.send(&headers(3, true, &get("/small")));
    let big = vec![b'x'; 16_000];
    let mut first = headers(1, false, &[(":status", "200")]);
    first.extend(data(1, false, &big));
    // Copied: the HEADERS frame, the DATA frame header and 1024 payload bytes; then elided.
    let copied = first.len() - (16_000 - 1024);
    f.record(RECV, &first[..copied], first.len() as u64, true);
    // Stream 3 answered in between, then stream 1's last DATA frame.
    f.recv(&headers(3, false, &[(":status", "200")]))
        .recv(&data(3, true, b"tiny"));
    let last = data(1, true, &big[..5000]);
    f.record(RECV, &last[..9 + 1024], last.len() as u64, true);
    let out = f.close();
    let r1 = out
        .iter()
        .find(|m| m.status.is_some() && m.stream.map(|s| s.get()) == Some(1));
    let r1 = r1.unwrap_or_else(|| panic!("{out:#?}"));
    assert_eq!((r1.body_len, r1.body.len()), (21_000, 1024));
    assert!(
        !r1.partial && r1.body_truncated && r1.exchange.is_some(),
        "{r1:#?}"
    );
    let r3 = out
        .iter()
        .find(|m| m.status.is_some() && m.stream.map(|s| s.get()) == Some(3));
    assert_eq!(r3.unwrap().body, b"tiny");
    assert_eq!(f.counters.elided_bytes, (16_000 - 1024) + (5000 - 1024));
    assert_eq!(f.counters.gap_bytes, 0);
    assert_eq!(f.counters.partial_messages, 0);
}

/// An elided range where the engine expects a frame header is a loss, counted as one.
#[test]
fn elided_bytes_outside_data_are_a_loss() {
    let mut f = Feed::new(false);
    client_start(&mut f);
    let hdr = headers(1, false, &[(":status", "200")]);
    f.record(RECV, &hdr[..4], hdr.len() as u64, true);
    assert_eq!(f.counters.elided_bytes, 0);
    assert_eq!(f.counters.gap_bytes, hdr.len() as u64 - 4);
}

/// The client's first write holds the preface, its SETTINGS, a POST and part of its body
/// elided: the HTTP/1 engine detects HTTP/2 and hands the elided gap over with the bytes.
#[test]
fn elided_data_in_the_first_write_survives_the_handoff() {
    let mut f = Feed::new(false);
    let mut first = PREFACE.to_vec();
    first.extend(settings(&[(3, 100)]));
    first.extend(headers(
        1,
        false,
        &[
            (":method", "POST"),
            (":path", "/up"),
            (":authority", "h"),
            (":scheme", "http"),
        ],
    ));
    first.extend(data(1, true, &[b'u'; 3000]));
    let copied = first.len() - (3000 - 1024);
    f.record(SEND, &first[..copied], first.len() as u64, true);
    f.recv(&settings(&[]))
        .recv(&headers(1, true, &[(":status", "204")]));
    let out = f.close();
    let q = out.iter().find(|m| m.method.is_some()).unwrap();
    assert_eq!((q.body_len, q.body.len()), (3000, 1024));
    assert!(!q.partial && q.exchange.is_some(), "{q:#?}");
    assert_eq!(f.counters.elided_bytes, 3000 - 1024);
    assert_eq!(f.counters.gap_bytes + f.counters.partial_messages, 0);
}
