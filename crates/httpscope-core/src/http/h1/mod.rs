//! The HTTP/1.0/1.1 engine of one connection: parses each direction's reassembled bytes
//! with httparse, and pairs responses with their requests.
//!
//! # Pairing
//!
//! Request heads are queued FIFO; each final response pairs with the oldest queued request,
//! and 1xx responses other than 101 share that request's exchange without consuming it.
//! The queue is trusted only while nothing that could hide a message was lost: a gap or parse
//! error in a head or in chunk framing (either direction), a gap between messages, or capture
//! starting mid-stream. After such a loss the queue is dropped (its requests count as
//! `unanswered_requests`), and requests and responses are emitted unpaired (`exchange` None;
//! responses count as `unpaired_responses`) until a safe point: a request head completes while
//! every request seen since the loss has had a final response, the response direction is at a
//! message boundary it has observed, and no more than one request has ever been outstanding.
//! A client that has never pipelined sends a request only after reading the previous response,
//! so the next final response answers it. Once two requests were outstanding at once (real
//! pipelining, or a lost response followed by the next request, which looks the same) or the
//! queue overflowed, a loss leaves the connection unpaired until it closes.

mod chunked;
mod framing;
mod head;
mod pairing;
mod parser;

#[cfg(test)]
mod tests;

use super::h2::Upgraded;
use super::stream::StreamPos;
use super::{DataChunk, Emit, Protocol, Role};
use crate::direction::Direction;
use pairing::Pairing;
use parser::{DirParser, Link};

/// The HTTP/1 engine of one TCP connection of one traced process.
#[derive(Debug)]
pub struct H1Connection {
    send: DirParser,
    recv: DirParser,
    link: Link,
    closed: bool,
}

impl H1Connection {
    /// `mid_stream`: the connection existed before capture started, so the first bytes may be
    /// mid-message: resync.
    pub fn new(mid_stream: bool) -> Self {
        H1Connection {
            send: DirParser::new(Direction::Send, mid_stream),
            recv: DirParser::new(Direction::Recv, mid_stream),
            link: Link {
                protocol: Protocol::Unknown,
                request_dir: None,
                pairing: Pairing::new(mid_stream),
                mid_stream,
                upgraded: None,
                peer_idle: false,
            },
            closed: false,
        }
    }

    /// Feeds the bytes of one syscall; complete messages are appended to `cx.out`.
    pub fn on_data(&mut self, chunk: &DataChunk<'_>, cx: &mut Emit<'_>) {
        let counter = match self.link.protocol {
            _ if self.closed => &mut cx.counters.skipped_bytes,
            Protocol::Tunnel => &mut cx.counters.tunnel_bytes,
            p if p.is_opaque() => &mut cx.counters.non_http_bytes,
            _ => {
                let (me, peer) = match chunk.direction {
                    Direction::Send => (&mut self.send, &mut self.recv),
                    Direction::Recv => (&mut self.recv, &mut self.send),
                };
                let placed = me.stream.place(chunk, cx.counters);
                self.link.peer_idle = peer.idle();
                me.feed(placed, cx, &mut self.link);
                if self.link.protocol.is_opaque() {
                    peer.enter_passthrough(cx, &mut self.link);
                }
                return;
            }
        };
        *counter = counter.saturating_add(chunk.len);
    }

    /// The connection closed (close(), EOF seen by the process, or the process exited) at
    /// `cx.ts`: ends close-delimited bodies, flushes incomplete messages as partial, counts
    /// unanswered requests.
    pub fn on_close(&mut self, cx: &mut Emit<'_>) {
        if std::mem::replace(&mut self.closed, true) {
            return;
        }
        let link = &mut self.link;
        link.peer_idle = false;
        // Requests first: a request cut short is older than the response it provoked.
        let (first, second) = match link.request_dir {
            Some(Direction::Recv) => (&mut self.recv, &mut self.send),
            _ => (&mut self.send, &mut self.recv),
        };
        first.close(cx, link);
        second.close(cx, link);
        link.pairing.on_close(cx.counters);
    }

    /// Client if this process sends requests, Server if it receives them; None until a head parses.
    pub fn role(&self) -> Option<Role> {
        self.link.request_dir.map(|d| match d {
            Direction::Send => Role::Client,
            Direction::Recv => Role::Server,
        })
    }

    pub fn protocol(&self) -> Protocol {
        self.link.protocol
    }

    /// After the switch to HTTP/2 (`protocol()` is `Http2`): what the HTTP/2 engine takes
    /// over. The bytes are those of the chunk just handled; both streams continue from here.
    pub fn take_handoff(&mut self) -> Handoff {
        let take = |dir: &mut DirParser| {
            (
                std::mem::take(&mut dir.handoff),
                std::mem::take(&mut dir.handoff_gap),
                std::mem::take(&mut dir.handoff_gap_elided),
                std::mem::replace(&mut dir.stream, StreamPos::new(true)),
            )
        };
        let (send_bytes, send_gap, send_elided, send_pos) = take(&mut self.send);
        let (recv_bytes, recv_gap, recv_elided, recv_pos) = take(&mut self.recv);
        self.closed = true;
        Handoff {
            bytes: [send_bytes, recv_bytes],
            gaps: [send_gap, recv_gap],
            gaps_elided: [send_elided, recv_elided],
            positions: [send_pos, recv_pos],
            upgraded: self.link.upgraded.take(),
            request_dir: self.link.request_dir,
        }
    }
}

/// What the HTTP/1 engine hands to the HTTP/2 engine, indexed by `Direction::index`.
#[derive(Debug)]
pub struct Handoff {
    pub bytes: [Vec<u8>; 2],
    /// Bytes lost after `bytes`.
    pub gaps: [u64; 2],
    /// The gap is a range the kernel's capture budget elided (see `Placed::elided`).
    pub gaps_elided: [bool; 2],
    pub positions: [StreamPos; 2],
    pub upgraded: Option<Upgraded>,
    pub request_dir: Option<Direction>,
}
