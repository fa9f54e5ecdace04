//! Body ranges the kernel's capture budget counted without copying them (`elided`): expected
//! inside a body of known extent, a loss anywhere else.

use super::*;

#[test]
fn elided_content_length_body_stays_complete_and_exact() {
    let mut f = Feed::new();
    f.send(&get("/big"));
    // The head and 4 body bytes copied, 9996 counted; then a body spread over more calls.
    f.elided(
        RECV,
        b"HTTP/1.1 200 OK\r\nContent-Length: 30000\r\n\r\nabcd",
        9996,
    );
    f.elided(RECV, b"", 10_000).elided(RECV, b"", 10_000);
    f.send(&get("/next")).recv(&response("two"));
    let out = f.take();
    assert_eq!(out.len(), 4);
    let r = &out[1];
    assert_eq!((r.body.as_slice(), r.body_len), (&b"abcd"[..], 30_000));
    assert!(!r.partial && !r.body_captured && r.body_truncated);
    assert_eq!(r.wire_bytes, 42 + 30_000);
    assert_eq!((r.exchange, out[3].exchange), (Some(1), Some(2)));
    assert_eq!(out[3].body, b"two");
    assert_eq!(f.counters.elided_bytes, 29_996);
    assert_eq!(f.counters.gap_bytes, 0, "elided bytes are no loss");
    assert_eq!(f.counters.partial_messages, 0);
}

#[test]
fn elided_chunk_data_keeps_the_framing() {
    let mut f = Feed::new();
    f.send(&get("/chunked"));
    // Each chunk-size line is copied, the data between them elided: 0x4000 = 16384.
    f.elided(
        RECV,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4000\r\nabcd",
        16_380,
    );
    f.elided(RECV, b"\r\n4000\r\n", 16_384);
    f.recv(b"\r\n3\r\nxyz\r\n0\r\n\r\n");
    f.send(&get("/after")).recv(&response("ok"));
    let out = f.take();
    assert_eq!(out.len(), 4, "{out:#?}");
    let r = &out[1];
    assert_eq!(
        (r.body.as_slice(), r.body_len),
        (&b"abcd"[..], 2 * 16_384 + 3)
    );
    assert!(!r.partial && r.body_truncated);
    assert_eq!(header(r, "transfer-encoding"), Some("chunked"));
    assert_eq!((r.exchange, out[3].exchange), (Some(1), Some(2)));
    assert_eq!(f.counters.elided_bytes, 16_380 + 16_384);
    assert_eq!(f.counters.gap_bytes + f.counters.parse_errors, 0);
}

#[test]
fn pipelined_responses_with_elided_bodies_pair_exactly() {
    let mut f = Feed::new();
    let mut requests = get("/1");
    requests.extend(get("/2"));
    requests.extend(get("/3"));
    f.send(&requests);
    // One write: response 1 with its body elided, response 2 likewise, response 3 whole.
    f.elided(
        RECV,
        b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\nfirst",
        4995,
    );
    f.elided(
        RECV,
        b"HTTP/1.1 200 OK\r\nContent-Length: 7000\r\n\r\nsecond",
        6994,
    );
    f.recv(&response("third"));
    let out = f.take();
    let got: Vec<_> = out
        .iter()
        .filter(|m| m.status.is_some())
        .map(|m| (m.exchange, m.body.clone(), m.body_len, m.partial))
        .collect();
    assert_eq!(
        got,
        [
            (Some(1), b"first".to_vec(), 5000, false),
            (Some(2), b"second".to_vec(), 7000, false),
            (Some(3), b"third".to_vec(), 5, false),
        ]
    );
    assert_eq!(f.counters.elided_bytes, 4995 + 6994);
    assert_eq!(f.counters.gap_bytes, 0);
}

#[test]
fn elided_bytes_beyond_the_body_are_a_loss() {
    let mut f = Feed::new();
    f.send(&get("/1"));
    // The kernel framed 100 more bytes than the body holds: they were the next head.
    f.elided(
        RECV,
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab",
        108,
    );
    f.send(&get("/2")).recv(&response("two"));
    let out = f.take();
    assert_eq!(out[1].body_len, 10, "the body itself is whole");
    assert!(!out[1].partial);
    assert_eq!(f.counters.elided_bytes, 8);
    assert_eq!(f.counters.gap_bytes, 100, "what lies beyond it is lost");
}

#[test]
fn elided_bytes_in_a_head_are_a_loss() {
    let mut f = Feed::new();
    f.send(&get("/1"));
    f.elided(RECV, b"HTTP/1.1 200 OK\r\nContent-", 50);
    f.send(&get("/2")).recv(&response("two"));
    let out = f.take();
    assert!(out
        .iter()
        .all(|m| m.status != Some(200) || m.exchange != Some(1)));
    assert_eq!(f.counters.elided_bytes, 0);
    assert_eq!(f.counters.gap_bytes, 50);
}

#[test]
fn elided_gzip_body_still_shows_decoded_text() {
    use std::io::Write;

    let text = "line of a compressible text, ".repeat(4000);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    let zipped = e.finish().unwrap();
    let mut head = format!(
        "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        zipped.len()
    )
    .into_bytes();
    // Of the compressed body only the first 100 bytes copied: less text than body_limit.
    head.extend_from_slice(&zipped[..100]);
    let mut f = Feed::new();
    f.send(&get("/"));
    f.elided(RECV, &head, zipped.len() as u64 - 100);
    let r = f.take().pop().unwrap();
    assert!(
        !r.body.is_empty() && text.as_bytes().starts_with(&r.body),
        "{r:?}"
    );
    assert!(r.body_truncated && !r.body_captured && !r.partial);
    assert_eq!(r.body_len, zipped.len() as u64);
    assert_eq!(f.counters.decode_errors, 0);
}
