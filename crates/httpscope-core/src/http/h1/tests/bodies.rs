//! Body framing: lengths, chunking, bodiless responses, limits and content decoding.

use std::io::Write;

use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use flate2::Compression;

use super::*;

/// A response whose body is `body` compressed by `coding` ("raw-deflate": deflate without the
/// zlib wrapper, which servers also label "deflate").
fn encoded(coding: &str, body: &[u8]) -> Vec<u8> {
    let label = coding.trim_start_matches("raw-");
    let mut head = format!("HTTP/1.1 200 OK\r\nContent-Encoding: {label}\r\n").into_bytes();
    let zipped = match coding {
        "gzip" => {
            let mut e = GzEncoder::new(Vec::new(), Compression::default());
            e.write_all(body).unwrap();
            e.finish().unwrap()
        }
        "deflate" => {
            let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
            e.write_all(body).unwrap();
            e.finish().unwrap()
        }
        _ => {
            let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
            e.write_all(body).unwrap();
            e.finish().unwrap()
        }
    };
    head.extend_from_slice(format!("Content-Length: {}\r\n\r\n", zipped.len()).as_bytes());
    head.extend_from_slice(&zipped);
    head
}

fn exchange(f: &mut Feed, resp: &[u8]) -> HttpMessage {
    f.send(&get("/")).recv(resp);
    let mut out = f.take();
    assert_eq!(out.len(), 2, "{out:?}");
    out.pop().unwrap()
}

#[test]
fn chunked_with_trailers_split_everywhere() {
    let resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
        4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Sum: 9\r\n\r\n";
    for step in 1..resp.len() {
        let mut f = Feed::new();
        f.send(&get("/")).split(RECV, resp, step).send(&get("/2"));
        let out = f.take();
        assert_eq!(out.len(), 3, "step {step}");
        let r = &out[1];
        assert_eq!(r.body, b"Wikipedia in\r\n\r\nchunks.", "step {step}");
        assert_eq!(r.body_len, 23);
        assert_eq!(r.wire_bytes, resp.len() as u64);
        assert!(!r.partial && r.body_captured);
    }
}

#[test]
fn bodiless_responses() {
    let mut f = Feed::new();
    f.send(b"HEAD / HTTP/1.1\r\n\r\n");
    f.recv(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nContent-Encoding: gzip\r\n\r\n");
    for status in ["204 No Content", "304 Not Modified"] {
        f.send(&get("/"));
        f.recv(format!("HTTP/1.1 {status}\r\nContent-Length: 7\r\n\r\n").as_bytes());
    }
    f.send(&get("/last")).recv(&response("x"));
    let out = f.take();
    assert_eq!(out.len(), 8);
    for r in out.iter().skip(1).step_by(2) {
        assert!(!r.partial, "{r:?}");
    }
    assert_eq!(out[1].body_len, 0);
    assert_eq!(out[7].body, b"x");
    assert_eq!(out[7].url.as_deref(), Some("/last"));
    assert_eq!(f.counters.decode_errors, 0);
    assert_eq!(f.counters.parse_errors, 0);
}

#[test]
fn request_without_length_has_no_body() {
    let mut f = Feed::new();
    f.send(b"DELETE /x HTTP/1.1\r\n\r\nPOST /y HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
    let out = f.take();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].body_len, 0);
    assert_eq!(out[1].body, b"hi");
}

#[test]
fn invalid_lengths_are_parse_errors() {
    for bad in [
        "Content-Length: 2\r\nContent-Length: 2",
        "Content-Length: 2, 2",
        "Content-Length: -1",
        "Content-Length: 99999999999999999999999",
        "Transfer-Encoding: gzip",
    ] {
        let mut f = Feed::new();
        f.send(&get("/")).recv(&response("ok"));
        f.send(format!("POST / HTTP/1.1\r\n{bad}\r\n\r\nhi").as_bytes());
        assert_eq!(f.counters.parse_errors, 1, "{bad}");
        assert_eq!(f.out.len(), 2, "{bad}");
        assert_eq!(f.conn.protocol(), crate::http::Protocol::Http1);
    }
    let mut f = Feed::new();
    f.send(&get("/"));
    f.recv(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab");
    assert_eq!(f.counters.parse_errors, 1);
    assert_eq!(f.out.len(), 1);
}

#[test]
fn body_limit_truncates() {
    let config = HttpConfig {
        body_limit: 4,
        ..HttpConfig::default()
    };
    let mut f = Feed::with(false, config);
    let r = exchange(&mut f, &response("0123456789"));
    assert_eq!((r.body.as_slice(), r.body_len), (&b"0123"[..], 10));
    assert!(r.body_truncated && r.body_captured);
}

#[test]
fn gzip_and_deflate_bodies_are_decoded() {
    let text = "hello hello hello hello, compressed world ".repeat(40);
    for coding in ["gzip", "deflate", "raw-deflate"] {
        let resp = encoded(coding, text.as_bytes());
        let mut f = Feed::new();
        f.send(&get("/")).split(RECV, &resp, 7);
        let r = f.take().pop().unwrap();
        assert_eq!(
            r.body,
            text.as_bytes()[..1024].to_vec(),
            "{coding} in pieces"
        );
        let r = exchange(&mut f, &resp);
        assert_eq!(r.body, text.as_bytes()[..1024].to_vec(), "{coding}");
        assert!(r.body_truncated, "decoded text is longer than body_limit");
        let wire_body = resp.len() - head_len(&resp);
        assert_eq!(r.body_len, wire_body as u64, "body_len is the wire size");
        assert_eq!(r.wire_bytes, resp.len() as u64);
        assert_eq!(f.counters.decode_errors, 0);
        // A short body decodes completely and is not truncated; split in 3-byte pieces.
        let mut f = Feed::new();
        f.send(&get("/")).split(RECV, &encoded(coding, b"tiny"), 3);
        let r = f.take().pop().unwrap();
        assert_eq!(r.body, b"tiny", "{coding}");
        assert!(!r.body_truncated);
    }
}

#[test]
fn decompression_stops_at_the_limit() {
    // 8 MiB of zeros in ~8 KiB of gzip: only the first body_limit bytes are kept.
    let zeros = vec![0u8; 8 << 20];
    let resp = encoded("gzip", &zeros);
    let mut f = Feed::new();
    let r = exchange(&mut f, &resp);
    assert_eq!(r.body, vec![0u8; 1024]);
    assert!(r.body_truncated && r.body_captured);
    assert_eq!(r.body_len, (resp.len() - head_len(&resp)) as u64);
}

fn head_len(resp: &[u8]) -> usize {
    resp.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4
}

#[test]
fn corrupt_or_incomplete_gzip_keeps_raw_bytes() {
    let mut f = Feed::new();
    let bad = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!";
    let r = exchange(&mut f, bad);
    assert_eq!(r.body, b"not gzip!");
    assert_eq!(f.counters.decode_errors, 1);
    // Gzip cut short (valid prefix, no trailer).
    let full = encoded("gzip", b"some text that is long enough");
    let cut = &full[..full.len() - 6];
    let head_end = head_len(cut);
    let len = cut.len() - head_end;
    let mut resp =
        format!("HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {len}\r\n\r\n")
            .into_bytes();
    resp.extend_from_slice(&cut[head_end..]);
    let r = exchange(&mut f, &resp);
    assert_eq!(r.body, cut[head_end..].to_vec());
    assert_eq!(f.counters.decode_errors, 2);
    // Not captured: raw bytes, and not a decode error.
    let full = encoded("gzip", b"abc");
    let head_end = head_len(&full);
    f.send(&get("/"))
        .chunk(RECV, &full[..head_end + 2], full.len() as u64);
    let r = f.take().pop().unwrap();
    assert_eq!(r.body, full[head_end..head_end + 2].to_vec());
    assert!(!r.body_captured && r.body_truncated);
    assert_eq!(f.counters.decode_errors, 2);
}

#[test]
fn one_mib_body_with_capture_limit() {
    const CAPTURE: usize = 4096;
    const WRITE: usize = 64 * 1024;
    let body = vec![b'z'; 1 << 20];
    let mut resp =
        format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    let head_len = resp.len();
    resp.extend_from_slice(&body);
    let mut f = Feed::new();
    f.send(&get("/big"));
    for write in resp.chunks(WRITE) {
        f.chunk(RECV, &write[..write.len().min(CAPTURE)], write.len() as u64);
    }
    f.send(&get("/after")).recv(&response("fine"));
    let out = f.take();
    assert_eq!(out.len(), 4);
    let r = &out[1];
    assert_eq!(r.body_len, 1 << 20);
    assert_eq!(r.wire_bytes, (head_len + (1 << 20)) as u64);
    assert_eq!(r.body.len(), 1024);
    assert!(!r.body_captured && r.body_truncated && !r.partial);
    assert_eq!(r.exchange, Some(1));
    assert_eq!(out[3].exchange, Some(2), "pairing survives body gaps");
    let captured: usize = resp.chunks(WRITE).map(|w| w.len().min(CAPTURE)).sum();
    assert_eq!(f.counters.gap_bytes, (resp.len() - captured) as u64);
}

#[test]
fn sendfile_body() {
    let mut f = Feed::new();
    f.send(&get("/file"));
    f.recv(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n");
    f.chunk(RECV, b"", 5000);
    let r = f.take().pop().unwrap();
    assert_eq!((r.body_len, r.body.len()), (5000, 0));
    assert!(!r.body_captured && r.body_truncated && !r.partial);
}
