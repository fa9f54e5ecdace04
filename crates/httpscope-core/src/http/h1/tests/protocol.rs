//! Protocol and role detection from the first bytes of a connection.

use super::*;
use crate::http::{Protocol, Role};

/// The start of a real TLS 1.2 ClientHello record.
const CLIENT_HELLO: &[u8] = &[
    0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, 0x00, 0x01, 0x02, 0x03, 0x04,
    0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12,
];

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00";

#[test]
fn short_first_read_is_not_misjudged() {
    let mut f = Feed::new();
    f.send(b"GET");
    assert_eq!(f.conn.protocol(), Protocol::Unknown);
    assert_eq!(f.conn.role(), None);
    f.send(b" /slow HTTP/1.1\r\n");
    assert_eq!(f.conn.protocol(), Protocol::Http1);
    f.send(b"\r\n");
    assert_eq!(f.conn.role(), Some(Role::Client));
    assert_eq!(f.take()[0].url.as_deref(), Some("/slow"));
}

#[test]
fn random_bytes_are_other() {
    let mut f = Feed::new();
    f.send(b"\x00\x01\x02\x03hello\xff")
        .recv(b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(f.conn.protocol(), Protocol::Other);
    assert!(f.out.is_empty());
    assert_eq!(f.counters.non_http_bytes, 10 + 18);
    assert_eq!(f.counters.parse_errors, 0);
    // A plausible token that turns out wrong once the line ends.
    let mut f = Feed::new();
    f.split(SEND, b"HELLO world\r\n", 1);
    assert_eq!(f.conn.protocol(), Protocol::Other);
    assert_eq!(f.counters.non_http_bytes, 13);
}

#[test]
fn tls_client_hello() {
    for step in [1, 2, CLIENT_HELLO.len()] {
        let mut f = Feed::new();
        f.split(SEND, CLIENT_HELLO, step)
            .recv(b"\x16\x03\x03\x00\x10server hello...");
        assert_eq!(f.conn.protocol(), Protocol::Tls, "step {step}");
        assert!(f.out.is_empty());
        assert_eq!(f.counters.non_http_bytes, CLIENT_HELLO.len() as u64 + 20);
    }
}

#[test]
fn h2_prior_knowledge_preface() {
    for step in [1, 5, H2_PREFACE.len()] {
        let mut f = Feed::new();
        f.split(SEND, H2_PREFACE, step);
        assert_eq!(f.conn.protocol(), Protocol::Http2, "step {step}");
        f.recv(b"\x00\x00\x00\x04\x01\x00\x00\x00\x00");
        assert!(f.out.is_empty());
        // The HTTP/2 engine takes every byte: none is counted as unreadable.
        assert_eq!(f.counters.non_http_bytes, 0);
        assert_eq!(f.counters.parse_errors + f.counters.skipped_bytes, 0);
        assert_eq!(f.counters.messages, 0);
    }
}

#[test]
fn h2c_server_that_speaks_first_is_http2() {
    // An h2c server (Node.js http2.createServer) sends its SETTINGS frame before the client's
    // preface reaches it: its first bytes must not make the connection "not HTTP".
    const SETTINGS: &[u8] = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64";
    for step in [1, 4, SETTINGS.len()] {
        let mut f = Feed::new();
        f.split(SEND, SETTINGS, step).recv(H2_PREFACE);
        assert_eq!(f.conn.protocol(), Protocol::Http2, "step {step}");
        assert!(f.out.is_empty());
        assert_eq!(f.counters.non_http_bytes, 0);
        assert_eq!(f.counters.parse_errors + f.counters.skipped_bytes, 0);
    }
}

#[test]
fn mid_stream_tls_is_recognised_and_garbage_is_skipped() {
    let mut f = Feed::with(true, HttpConfig::default());
    f.recv(&[0x17, 0x03, 0x03, 0x00, 0x20, 1, 2, 3])
        .send(b"anything");
    assert_eq!(f.conn.protocol(), Protocol::Tls);
    assert_eq!(f.counters.non_http_bytes, 16);

    let mut f = Feed::with(true, HttpConfig::default());
    f.recv(b"\x00\x01 binary").send(b"more");
    assert_eq!(
        f.conn.protocol(),
        Protocol::Unknown,
        "mid-stream garbage is not judged"
    );
    assert_eq!(f.counters.skipped_bytes, 13);
}

#[test]
fn response_first_still_sets_the_role() {
    let mut f = Feed::new();
    f.send(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(f.conn.role(), Some(Role::Server));
    assert_eq!(f.counters.unpaired_responses, 1);
    f.recv(&get("/")).send(&response("x"));
    assert_eq!(f.take()[2].exchange, Some(1));
}
