//! Lost chunks, uncaptured tails, overlaps, mid-stream starts and closes mid-message.

use super::*;

#[test]
fn gap_inside_length_body_is_not_partial() {
    let mut f = Feed::new();
    f.send(&get("/"));
    f.recv(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab");
    f.lose(RECV, 5).recv(b"cde");
    f.send(&get("/2")).recv(&response("x"));
    let out = f.take();
    assert_eq!(out.len(), 4);
    let r = &out[1];
    assert_eq!(
        (r.body.as_slice(), r.body_len),
        (&b"ab"[..], 10),
        "body stays a prefix"
    );
    assert!(!r.partial && !r.body_captured && r.body_truncated);
    assert_eq!(r.wire_bytes, 39 + 10);
    assert_eq!(r.exchange, Some(1));
    assert_eq!(out[3].exchange, Some(2));
    assert_eq!(f.counters.gap_bytes, 5);
    assert_eq!(f.counters.partial_messages, 0);
}

#[test]
fn gap_inside_chunk_data_is_not_partial() {
    let mut f = Feed::new();
    f.send(&get("/"));
    f.recv(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabcd");
    f.lose(RECV, 8).recv(b"efgh\r\n0\r\n\r\n");
    let r = f.take().pop().unwrap();
    assert_eq!((r.body.as_slice(), r.body_len), (&b"abcd"[..], 16));
    assert!(!r.partial && !r.body_captured);
    assert_eq!(f.counters.partial_messages, 0);
}

#[test]
fn gap_through_chunk_framing_makes_the_message_partial() {
    let mut f = Feed::new();
    f.send(&get("/1"));
    f.recv(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n");
    f.send(&get("/2"));
    f.lose(RECV, 30).recv(&response("two"));
    f.send(&get("/3")).recv(&response("three"));
    let out = f.take();
    let urls: Vec<_> = out.iter().map(|m| (m.url.as_deref(), m.exchange)).collect();
    assert_eq!(
        urls,
        [
            (Some("/1"), Some(1)),
            (Some("/2"), Some(2)),
            (Some("/1"), Some(1)),
            (None, None),
            (Some("/3"), Some(3)),
            (Some("/3"), Some(3)),
        ]
    );
    assert!(out[2].partial && out[2].body == b"abcd");
    assert_eq!(out[3].body, b"two");
    assert_eq!(f.counters.partial_messages, 1);
    assert_eq!(f.counters.unpaired_responses, 1);
    assert_eq!(f.counters.unanswered_requests, 1);
    assert_eq!(f.counters.resyncs, 1);
}

#[test]
fn gap_in_request_head_drops_it_and_resyncs() {
    let mut f = Feed::new();
    f.send(b"GET /1 HTTP/1.1\r\nHo").recv(&response("one"));
    f.lose(SEND, 10).send(&get("/2")).recv(&response("two"));
    let out = f.take();
    assert_eq!(out.len(), 3);
    assert_eq!(out[0].exchange, None, "its request never completed");
    assert_eq!(out[1].url.as_deref(), Some("/2"));
    assert_eq!((out[1].exchange, out[2].exchange), (Some(1), Some(1)));
    assert_eq!(out[2].body, b"two");
    assert_eq!(f.counters.partial_messages, 1);
    assert_eq!(f.counters.resyncs, 1);
    assert_eq!(f.counters.unpaired_responses, 1);
}

#[test]
fn uncaptured_tail_of_a_head_is_a_loss() {
    let mut f = Feed::new();
    f.chunk(SEND, b"GET /x HTTP/1.1\r\nHost", 300);
    f.send(b"not a request start").send(&get("/y"));
    let out = f.take();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].url.as_deref(), Some("/y"));
    assert_eq!(f.counters.gap_bytes, 300 - 21);
    assert_eq!(f.counters.skipped_bytes, 21 + 19);
}

#[test]
fn lost_first_chunk_of_a_fresh_connection() {
    let mut f = Feed::new();
    f.lose(SEND, 30).send(&get("/x")).recv(&response("ok"));
    let out = f.take();
    assert_eq!(out.len(), 2);
    assert_eq!(
        out[1].exchange,
        Some(1),
        "the response side was idle: safe point"
    );
    assert_eq!(f.counters.gap_bytes, 30);
}

#[test]
fn gap_in_close_delimited_body() {
    let mut f = Feed::new();
    f.send(&get("/")).recv(b"HTTP/1.1 200 OK\r\n\r\nabc");
    f.lose(RECV, 100).recv(b"xyz").close();
    let r = f.take().pop().unwrap();
    assert_eq!((r.body.as_slice(), r.body_len), (&b"abc"[..], 106));
    assert!(!r.partial && !r.body_captured);
}

#[test]
fn overlapping_chunks_are_skipped() {
    let mut f = Feed::new();
    let req = get("/dup");
    f.send(&req);
    // A retransmitted report of the same syscall, then one half old, half new.
    let dup = DataChunk {
        direction: SEND,
        offset: 0,
        len: req.len() as u64,
        data: &req,
        elided: false,
    };
    f.deliver(&dup, 99);
    let mut both = req[10..].to_vec();
    both.extend_from_slice(&get("/next"));
    let half = DataChunk {
        direction: SEND,
        offset: 10,
        len: both.len() as u64,
        data: &both,
        elided: false,
    };
    f.deliver(&half, 100);
    let out = f.take();
    assert_eq!(out.len(), 2);
    assert_eq!(out[1].url.as_deref(), Some("/next"));
    assert_eq!(f.counters.overlap_bytes, 2 * req.len() as u64 - 10);
    assert_eq!(f.counters.parse_errors, 0);
}

#[test]
fn mid_stream_resyncs_and_pairs_after_a_clean_exchange() {
    let (tail_in, tail_out) = (
        &b"ody of an earlier request"[..],
        &b"e of an earlier response"[..],
    );
    let mut f = Feed::with(true, HttpConfig::default());
    f.recv(tail_in).send(tail_out);
    f.recv(&get("/a")).send(&response("A"));
    f.recv(&get("/b")).send(&response("B"));
    let out = f.take();
    assert_eq!(out.len(), 4);
    assert_eq!(f.conn.role(), Some(crate::http::Role::Server));
    let pairs: Vec<_> = out.iter().map(|m| (m.url.as_deref(), m.exchange)).collect();
    assert_eq!(
        pairs,
        [
            (Some("/a"), None),
            (None, None),
            (Some("/b"), Some(1)),
            (Some("/b"), Some(1))
        ]
    );
    assert_eq!(out[1].body, b"A");
    assert_eq!(f.counters.resyncs, 2);
    assert_eq!(
        f.counters.skipped_bytes,
        (tail_in.len() + tail_out.len()) as u64
    );
    assert_eq!(f.counters.unpaired_responses, 1);
}

#[test]
fn close_mid_message() {
    let mut f = Feed::new();
    f.send(&get("/1")).send(&get("/2"));
    f.recv(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        .close();
    let out = f.take();
    let r = &out[2];
    assert!(r.partial && r.body_truncated && r.body_captured);
    assert_eq!((r.body.as_slice(), r.body_len), (&b"abc"[..], 3));
    assert_eq!(f.counters.partial_messages, 1);
    assert_eq!(f.counters.unanswered_requests, 1);
    // Data after close is ignored.
    f.send(&get("/3"));
    assert!(f.out.is_empty());

    let mut f = Feed::new();
    f.send(b"GET / HT").close();
    assert!(f.out.is_empty());
    assert_eq!(f.counters.partial_messages, 1);
}
