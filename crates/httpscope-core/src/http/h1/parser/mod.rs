//! Per-direction HTTP/1 state machine: accumulates heads, frames bodies, absorbs gaps,
//! resyncs after losses and emits finished messages.

mod heads;

use std::mem;
use std::sync::Arc;

use crate::direction::Direction;

use super::framing::Framing;
use super::pairing::Pairing;
use crate::http::body::BodySink;
use crate::http::h2::Upgraded;
use crate::http::message::{push_capped, HttpMessage, MessageKind};
use crate::http::sniff;
use crate::http::stream::{Placed, StreamPos};
use crate::http::{Emit, Protocol};

/// State shared by both directions of a connection.
#[derive(Debug)]
pub(super) struct Link {
    pub protocol: Protocol,
    pub request_dir: Option<Direction>,
    pub pairing: Pairing,
    pub mid_stream: bool,
    /// The request a 101 switched to h2c: HTTP/2 answers it on stream 1.
    pub upgraded: Option<Upgraded>,
    /// While a chunk is handled: the other direction sits at a message boundary it observed.
    pub peer_idle: bool,
}

impl Link {
    /// Whether the stream's first bytes are still being classified.
    fn detecting(&self) -> bool {
        self.protocol == Protocol::Unknown && !self.mid_stream
    }
}

/// A message whose head is parsed and whose body is still arriving.
#[derive(Debug)]
struct InFlight {
    msg: HttpMessage,
    framing: Framing,
    sink: BodySink,
    request_ts: Option<u64>,
    /// 101 or CONNECT 2xx: bytes after this message are not HTTP/1.
    tunnel_after: bool,
}

impl InFlight {
    /// Takes body bytes from the start of `data`: returns how many, whether the body is done,
    /// and whether its framing broke.
    fn take_body(&mut self, data: &[u8], cx: &Emit<'_>) -> (usize, bool, bool) {
        let (used, done, broken) = match &mut self.framing {
            Framing::Length(left) => {
                let take = data.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                self.sink.push(data.get(..take).unwrap_or_default());
                *left -= take as u64;
                (take, *left == 0, false)
            }
            Framing::Close => {
                self.sink.push(data);
                (data.len(), false, false)
            }
            Framing::Chunked(chunked) => {
                let sink = &mut self.sink;
                match chunked.feed(data, |d| sink.push(d)) {
                    Ok((used, done)) => (used, done, false),
                    Err(e) => (e.used, false, true),
                }
            }
        };
        push_capped(
            &mut self.msg.raw,
            data.get(..used).unwrap_or_default(),
            cx.config.raw_limit,
        );
        self.msg.wire_bytes = self.msg.wire_bytes.saturating_add(used as u64);
        if used > 0 {
            self.msg.last_ts_ns = cx.ts;
        }
        (used, done, broken)
    }
}

#[derive(Debug)]
enum State {
    /// Between messages, or accumulating a head in `DirParser::head`.
    Head,
    /// Boxed: idle keep-alive connections far outnumber bodies in flight, and the table holds
    /// two directions per connection.
    Body(Box<InFlight>),
    /// Lost track of message boundaries: skipping to a chunk that starts a message.
    Resync,
    /// Not HTTP/1 (or a tunnel): bytes are only counted.
    Passthrough,
}

/// Parser of one direction of a connection.
#[derive(Debug)]
pub(super) struct DirParser {
    dir: Direction,
    pub stream: StreamPos,
    state: State,
    head: Vec<u8>,
    /// Where the search for the end of the buffered head resumes.
    scanned: usize,
    head_ts: u64,
    /// The target of the last request sent this way, shared with the next when the same.
    last_url: Option<Arc<str>>,
    /// Bytes after the switch to HTTP/2, for the HTTP/2 engine to take over (at most one
    /// chunk: the engine takes them as soon as the chunk is handled).
    pub handoff: Vec<u8>,
    /// Bytes lost after `handoff`.
    pub handoff_gap: u64,
    /// `handoff_gap` is one range the kernel's capture budget elided, nothing after it: the
    /// HTTP/2 engine judges whether it lies inside a DATA payload.
    pub handoff_gap_elided: bool,
}

impl DirParser {
    pub fn new(dir: Direction, mid_stream: bool) -> Self {
        DirParser {
            dir,
            stream: StreamPos::new(mid_stream),
            state: if mid_stream {
                State::Resync
            } else {
                State::Head
            },
            head: Vec::new(),
            scanned: 0,
            head_ts: 0,
            last_url: None,
            handoff: Vec::new(),
            handoff_gap: 0,
            handoff_gap_elided: false,
        }
    }

    /// Between messages at a boundary we observed (not resyncing, no head bytes pending).
    pub fn idle(&self) -> bool {
        matches!(self.state, State::Head) && self.head.is_empty()
    }

    pub fn feed(&mut self, placed: Placed<'_>, cx: &mut Emit<'_>, link: &mut Link) {
        if placed.pre_gap > 0 {
            self.gap(placed.pre_gap, false, cx, link);
        }
        let tls_mid_stream = link.mid_stream && link.protocol == Protocol::Unknown;
        if placed.first && tls_mid_stream && sniff::looks_like_tls_record(placed.data) {
            self.not_http(Protocol::Tls, link);
        }
        self.data(placed.data, placed.at_start, cx, link);
        if placed.post_gap > 0 {
            self.gap(placed.post_gap, placed.elided, cx, link);
        }
    }

    /// The connection closed: close-delimited bodies end, anything else in flight is cut short.
    pub fn close(&mut self, cx: &mut Emit<'_>, link: &mut Link) {
        if let State::Body(fl) = &self.state {
            let complete = matches!(fl.framing, Framing::Close);
            self.finish(complete, cx, link);
        }
        self.drop_head(cx);
        self.state = State::Resync;
    }

    /// The connection stopped being HTTP/1 because of the other direction.
    pub fn enter_passthrough(&mut self, cx: &mut Emit<'_>, link: &mut Link) {
        match self.state {
            State::Passthrough => return,
            State::Body(_) => self.finish(false, cx, link),
            State::Head | State::Resync => {}
        }
        let head = mem::take(&mut self.head);
        self.pass(&head, cx, link);
        self.state = State::Passthrough;
    }

    fn kind(&self, link: &Link) -> Option<MessageKind> {
        link.request_dir.map(|d| {
            if d == self.dir {
                MessageKind::Request
            } else {
                MessageKind::Response
            }
        })
    }

    fn data(&mut self, mut data: &[u8], at_start: bool, cx: &mut Emit<'_>, link: &mut Link) {
        if at_start
            && matches!(self.state, State::Resync)
            && sniff::looks_like_start(self.kind(link), data)
        {
            self.state = State::Head;
            cx.counters.resyncs += 1;
        }
        // Every arm consumes at least one byte or moves to a state that consumes everything.
        while !data.is_empty() {
            let used = match self.state {
                State::Head => self.head_bytes(data, cx, link),
                State::Body(_) => self.body_bytes(data, cx, link),
                State::Resync => {
                    cx.counters.skipped_bytes += data.len() as u64;
                    data.len()
                }
                State::Passthrough => {
                    self.pass(data, cx, link);
                    data.len()
                }
            };
            data = data.get(used..).unwrap_or_default();
        }
    }

    fn not_http(&mut self, protocol: Protocol, link: &mut Link) {
        link.protocol = protocol;
        self.state = State::Passthrough;
    }

    /// Bytes after the connection stopped being HTTP/1: kept for the HTTP/2 engine, counted
    /// otherwise.
    pub(super) fn pass(&mut self, bytes: &[u8], cx: &mut Emit<'_>, link: &mut Link) {
        if link.protocol != Protocol::Http2 {
            return self.count_passthrough(bytes.len() as u64, cx, link);
        }
        if self.handoff_gap > 0 {
            // Bytes after a hole cannot be handed over in order with the rest.
            self.handoff_gap_elided = false;
            self.handoff_gap = self.handoff_gap.saturating_add(bytes.len() as u64);
        } else {
            self.handoff.extend_from_slice(bytes);
        }
    }

    fn count_passthrough(&self, n: u64, cx: &mut Emit<'_>, link: &Link) {
        let counter = if link.protocol == Protocol::Tunnel {
            &mut cx.counters.tunnel_bytes
        } else {
            &mut cx.counters.non_http_bytes
        };
        *counter = counter.saturating_add(n);
    }

    /// Forgets a partly received head, whose message can then never be reported.
    fn drop_head(&mut self, cx: &mut Emit<'_>) {
        if !self.head.is_empty() {
            cx.counters.partial_messages += 1;
            cx.counters.skipped_bytes += self.head.len() as u64;
        }
        self.head = Vec::new();
    }

    /// Message boundaries are lost in this direction: resync, and stop trusting the pairing.
    fn lose(&mut self, cx: &mut Emit<'_>, link: &mut Link) {
        self.state = State::Resync;
        link.pairing.on_loss(cx.counters);
    }

    fn body_bytes(&mut self, data: &[u8], cx: &mut Emit<'_>, link: &mut Link) -> usize {
        let State::Body(fl) = &mut self.state else {
            return 0;
        };
        let (used, done, broken) = fl.take_body(data, cx);
        if broken {
            cx.counters.parse_errors += 1;
            self.finish(false, cx, link);
            self.lose(cx, link);
        } else if done {
            self.finish(true, cx, link);
        }
        used
    }

    /// `n` bytes of this direction were lost, or `elided` by the kernel's capture budget: those
    /// are expected inside a body of known extent, and lost anywhere else.
    fn gap(&mut self, n: u64, elided: bool, cx: &mut Emit<'_>, link: &mut Link) {
        if matches!(self.state, State::Passthrough) && link.protocol == Protocol::Http2 {
            self.handoff_gap_elided = elided && self.handoff_gap == 0;
        }
        let (absorbed, lost) = self.absorb_gap(n, cx, link);
        if elided {
            cx.counters.elided_bytes = cx.counters.elided_bytes.saturating_add(absorbed);
            cx.counters.gap_bytes = cx.counters.gap_bytes.saturating_add(lost);
        }
    }

    /// Places a gap of `n` bytes: returns the bytes inside a body of known extent, and the rest.
    fn absorb_gap(&mut self, n: u64, cx: &mut Emit<'_>, link: &mut Link) -> (u64, u64) {
        let fl = match &mut self.state {
            State::Resync => return (0, n),
            State::Passthrough if link.protocol == Protocol::Http2 => {
                self.handoff_gap = self.handoff_gap.saturating_add(n);
                // The HTTP/2 engine takes the gap over and counts it, elided or lost.
                return (0, 0);
            }
            State::Passthrough => {
                self.count_passthrough(n, cx, link);
                return (0, n);
            }
            State::Head => {
                self.drop_head(cx);
                self.lose(cx, link);
                return (0, n);
            }
            State::Body(fl) => fl,
        };
        // Lost body bytes of known extent are harmless to framing; lost framing is not.
        let (taken, done) = match &mut fl.framing {
            Framing::Length(left) => {
                let taken = n.min(*left);
                *left -= taken;
                (taken, *left == 0)
            }
            Framing::Close => (n, false),
            Framing::Chunked(chunked) => (chunked.skip(n), false),
        };
        if taken > 0 {
            fl.sink.skip(taken);
            fl.msg.wire_bytes = fl.msg.wire_bytes.saturating_add(taken);
            fl.msg.last_ts_ns = cx.ts;
        }
        let beyond = n - taken;
        if done || beyond > 0 {
            self.finish(done, cx, link);
        }
        if beyond > 0 {
            self.lose(cx, link);
        }
        (taken, beyond)
    }

    fn finish(&mut self, complete: bool, cx: &mut Emit<'_>, link: &mut Link) {
        if let State::Body(fl) = mem::replace(&mut self.state, State::Head) {
            self.emit(*fl, complete, cx, link);
        }
    }

    fn emit(&mut self, fl: InFlight, complete: bool, cx: &mut Emit<'_>, link: &mut Link) {
        let InFlight {
            mut msg,
            sink,
            request_ts,
            tunnel_after,
            ..
        } = fl;
        sink.finish(&mut msg, complete, cx.counters);
        msg.partial = !complete;
        msg.latency_ns = request_ts.map(|t| msg.last_ts_ns.saturating_sub(t));
        let h2c = tunnel_after && msg.status == Some(101) && upgrades_to_h2c(&msg);
        if h2c {
            // The final response to this request comes as HTTP/2 on stream 1.
            msg.interim = true;
            msg.latency_ns = None;
            link.upgraded = match (msg.exchange, &msg.method, &msg.url, request_ts) {
                (Some(exchange), Some(method), Some(url), Some(ts)) => Some(Upgraded {
                    exchange,
                    method: method.clone(),
                    url: url.clone(),
                    request_first_ts_ns: ts,
                    request_dir: self.dir.opposite(),
                }),
                _ => None,
            };
        }
        cx.counters.messages += 1;
        cx.counters.partial_messages += u64::from(!complete);
        let unpaired = msg.kind == MessageKind::Response && msg.exchange.is_none();
        cx.counters.unpaired_responses += u64::from(unpaired);
        cx.out.push(msg);
        if tunnel_after {
            link.protocol = if h2c {
                Protocol::Http2
            } else {
                Protocol::Tunnel
            };
            self.state = State::Passthrough;
        }
    }
}

/// A 101 response whose `Upgrade` names h2c (RFC 7540 §3.2).
fn upgrades_to_h2c(msg: &HttpMessage) -> bool {
    msg.headers.iter().any(|(name, value)| {
        name.eq_ignore_ascii_case("upgrade") && value.trim().eq_ignore_ascii_case("h2c")
    })
}
