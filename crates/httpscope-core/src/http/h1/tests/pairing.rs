//! Pairing through the engine: interim responses, tunnels, and never mis-pairing after losses.

use super::*;
use crate::http::Protocol;

fn pairs(out: &[HttpMessage]) -> Vec<(Option<&str>, Option<u16>, Option<u64>)> {
    out.iter()
        .map(|m| (m.url.as_deref(), m.status, m.exchange))
        .collect()
}

#[test]
fn expect_100_continue() {
    let mut f = Feed::new();
    f.send(b"PUT /f HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    f.recv(b"HTTP/1.1 100 Continue\r\n\r\n");
    f.send(b"data").recv(&response("stored"));
    let out = f.take();
    assert_eq!(
        pairs(&out),
        [
            (Some("/f"), Some(100), Some(1)),
            (Some("/f"), None, Some(1)),
            (Some("/f"), Some(200), Some(1)),
        ]
    );
    assert!(out[0].interim && !out[2].interim);
    assert_eq!(out[0].method.as_deref(), Some("PUT"));
    assert_eq!(out[1].body, b"data");
    assert_eq!(out[2].latency_ns, Some(30));
    assert_eq!(f.counters.unpaired_responses, 0);
}

#[test]
fn switching_protocols_makes_a_tunnel() {
    let mut f = Feed::new();
    f.send(b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n");
    f.recv(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello");
    f.send(b"\x81\x85abcdxxxxx").recv(b"GET / HTTP/1.1\r\n\r\n");
    let out = f.take();
    assert_eq!(
        pairs(&out),
        [
            (Some("/ws"), None, Some(1)),
            (Some("/ws"), Some(101), Some(1))
        ]
    );
    assert!(!out[1].interim);
    assert_eq!(f.conn.protocol(), Protocol::Tunnel);
    assert_eq!(f.counters.tunnel_bytes, 7 + 11 + 18);
}

#[test]
fn connect_tunnels_only_when_accepted() {
    let mut f = Feed::new();
    f.send(b"CONNECT example:443 HTTP/1.1\r\n\r\n");
    f.recv(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(f.conn.protocol(), Protocol::Http1);
    f.send(b"CONNECT example:443 HTTP/1.1\r\nProxy-Authorization: x\r\n\r\n");
    f.recv(b"HTTP/1.1 200 Connection established\r\n\r\n");
    assert_eq!(f.conn.protocol(), Protocol::Tunnel);
    f.send(&[0x16, 0x03, 0x01, 0x00, 0x05]);
    let out = f.take();
    assert_eq!(out.len(), 4);
    assert_eq!(out[3].method.as_deref(), Some("CONNECT"));
    assert_eq!(out[3].body_len, 0, "a 2xx to CONNECT has no body");
    assert_eq!(f.counters.tunnel_bytes, 5);
}

#[test]
fn response_without_request_is_unpaired() {
    let mut f = Feed::new();
    f.send(&get("/")).recv(&response("a")).recv(&response("b"));
    let out = f.take();
    assert_eq!(out[2].exchange, None);
    assert_eq!(out[2].latency_ns, None);
    assert_eq!(f.counters.unpaired_responses, 1);
}

#[test]
fn lost_response_then_next_request_stays_unpaired() {
    // Indistinguishable from pipelining, so the rest of the connection is unpaired.
    let mut f = Feed::new();
    f.send(&get("/1")).lose(RECV, 40).send(&get("/2"));
    f.recv(&response("two"));
    f.send(&get("/3")).recv(&response("three"));
    f.send(&get("/4")).recv(&response("four"));
    let out = f.take();
    assert_eq!(out.len(), 7);
    for m in &out[2..] {
        assert_eq!(m.exchange, None, "{m:?}");
    }
    assert_eq!(f.counters.unpaired_responses, 3);
    assert_eq!(f.counters.unanswered_requests, 2);
}

#[test]
fn pipelined_requests_with_a_lost_request_never_mispair() {
    let mut f = Feed::new();
    f.send(&get("/1")).send(&get("/2"));
    f.send(b"GET /3 HT").lose(SEND, 20).send(&get("/5"));
    f.recv(&response("1"))
        .recv(&response("2"))
        .recv(&response("3"));
    f.send(&get("/6")).recv(&response("5")).recv(&response("6"));
    let out = f.take();
    // /1 and /2 were queued before the loss; after it, nothing pairs again.
    assert!(out
        .iter()
        .all(|m| m.exchange.is_none() || m.url.as_deref() <= Some("/2")));
    let answered: Vec<_> = out
        .iter()
        .filter(|m| m.status.is_some() && m.exchange.is_some())
        .collect();
    assert!(
        answered.is_empty(),
        "queue was dropped at the loss: {answered:?}"
    );
    assert_eq!(f.counters.unpaired_responses, 5);
}

#[test]
fn latency_never_underflows() {
    let mut f = Feed::new();
    f.send(&get("/"));
    let resp = response("");
    let early = DataChunk {
        direction: RECV,
        offset: 0,
        len: resp.len() as u64,
        data: &resp,
        elided: false,
    };
    f.deliver(&early, 1);
    assert_eq!(f.take()[1].latency_ns, Some(0));
}
