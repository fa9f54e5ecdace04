//! HTTP/2 streams and pairing: each stream carries one request and one response, paired by
//! stream id, so pairing is exact whatever else was lost. Records are emitted when a side
//! ends (END_STREAM, RST_STREAM, or the connection closing), the request before its response.

use std::sync::Arc;

use hashbrown::HashMap;

use super::grpc::{self, MessageCounter};
use super::hpack::Fields;
use crate::direction::Direction;
use crate::http::body::{BodySink, Encoding};
use crate::http::message::{borrowed_if_known, KNOWN_METHODS};
use crate::http::{Emit, GrpcCall, HeaderFields, Headers, HttpMessage, HttpVersion, MessageKind};

/// Streams tracked at once per connection; a new one beyond this ends the oldest as partial.
const MAX_STREAMS: usize = 1024;

/// One side (request or response) of a stream while it is open.
#[derive(Debug)]
struct Half {
    msg: HttpMessage,
    body: BodySink,
    grpc_messages: Option<MessageCounter>,
}

/// What a response takes from its request.
#[derive(Debug, Default)]
struct RequestFacts {
    exchange: Option<u64>,
    method: Option<std::borrow::Cow<'static, str>>,
    url: Option<Arc<str>>,
    authority: Option<Arc<str>>,
    first_ts_ns: Option<u64>,
    grpc: Option<(Arc<str>, Arc<str>)>,
}

#[derive(Debug, Default)]
struct Stream {
    request: Option<Half>,
    response: Option<Half>,
    /// The request ended and was emitted (or began before capture).
    request_emitted: bool,
    facts: RequestFacts,
}

/// The streams of one connection, and what they tell about its roles.
#[derive(Debug)]
pub(super) struct Streams {
    open: HashMap<u32, Stream>,
    last_exchange: u64,
    /// The direction requests travel in, once a request was seen.
    pub request_dir: Option<Direction>,
}

/// A request seen as HTTP/1 before `Upgrade: h2c`: it is stream 1, answered in HTTP/2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgraded {
    pub exchange: u64,
    pub method: std::borrow::Cow<'static, str>,
    pub url: Arc<str>,
    pub request_first_ts_ns: u64,
    pub request_dir: Direction,
}

impl Streams {
    pub fn new(upgraded: Option<Upgraded>) -> Self {
        let mut streams = Streams {
            open: HashMap::new(),
            last_exchange: 0,
            request_dir: None,
        };
        if let Some(up) = upgraded {
            streams.last_exchange = up.exchange;
            streams.request_dir = Some(up.request_dir);
            streams.open.insert(
                1,
                Stream {
                    request_emitted: true,
                    facts: RequestFacts {
                        exchange: Some(up.exchange),
                        method: Some(up.method),
                        url: Some(up.url),
                        first_ts_ns: Some(up.request_first_ts_ns),
                        ..RequestFacts::default()
                    },
                    ..Stream::default()
                },
            );
        }
        streams
    }

    /// A complete header block on `id`: request, interim or final response, or trailers.
    /// `fields` is None when the block could not be decoded at all.
    pub fn headers(
        &mut self,
        dir: Direction,
        id: u32,
        fields: Option<Fields>,
        end_stream: bool,
        wire_len: u64,
        cx: &mut Emit<'_>,
    ) {
        let fields = fields.unwrap_or_else(|| Fields {
            unknown: 1,
            ..Fields::default()
        });
        cx.counters.h2_unknown_headers += u64::from(fields.unknown);
        if !self.open.contains_key(&id) && self.open.len() >= MAX_STREAMS {
            // Streams whose end was lost would otherwise pile up: the oldest gives way.
            cx.counters.queue_overflows += 1;
            let oldest = self.open.keys().copied().min().unwrap_or(id);
            if let Some(stream) = self.open.remove(&oldest) {
                finish_stream(stream, None, false, cx);
            }
        }
        let stream = self.open.entry(id).or_default();
        let open_here = [&stream.request, &stream.response]
            .into_iter()
            .flatten()
            .find(|half| half.msg.direction == dir)
            .map(|half| half.msg.kind);
        // A side already open this way is getting its trailers.
        let kind = if let Some(kind) = open_here {
            kind
        } else if fields.get(":method").is_some() {
            MessageKind::Request
        } else if fields.get(":status").is_some() {
            MessageKind::Response
        } else {
            match self.request_dir {
                Some(d) if d == dir => MessageKind::Request,
                Some(_) => MessageKind::Response,
                None => {
                    // Neither pseudo-header is readable and no request was seen yet.
                    cx.counters.partial_messages += 1;
                    return;
                }
            }
        };
        let mine = match kind {
            MessageKind::Request => &mut stream.request,
            MessageKind::Response => &mut stream.response,
        };
        if let Some(half) = mine {
            // A second block on this side: trailers.
            add_trailers(&mut half.msg, &fields, &cx.config.header_fields);
            half.msg.wire_bytes = half.msg.wire_bytes.saturating_add(wire_len);
            half.msg.last_ts_ns = cx.ts;
        } else {
            if kind == MessageKind::Request {
                self.request_dir.get_or_insert(dir);
                if stream.request_emitted {
                    cx.counters.parse_errors += 1;
                    return;
                }
            }
            let mut half = new_half(kind, dir, id, &fields, wire_len, cx);
            match kind {
                MessageKind::Request => {
                    self.last_exchange += 1;
                    half.msg.exchange = Some(self.last_exchange);
                    stream.facts = RequestFacts {
                        exchange: half.msg.exchange,
                        method: half.msg.method.clone(),
                        url: half.msg.url.clone(),
                        authority: half.msg.authority().map(Arc::from),
                        first_ts_ns: Some(half.msg.first_ts_ns),
                        grpc: half
                            .msg
                            .grpc
                            .as_ref()
                            .map(|g| (g.service.clone(), g.method.clone())),
                    };
                }
                MessageKind::Response => {
                    inherit(&mut half.msg, &stream.facts);
                    let status = half.msg.status.unwrap_or_default();
                    if (100..200).contains(&status) && !end_stream {
                        half.msg.interim = true;
                        emit(half, true, cx);
                        return;
                    }
                }
            }
            *mine = Some(half);
        }
        if end_stream {
            self.end(id, kind, None, cx);
        }
    }

    /// DATA payload bytes of `id` in `dir` (padding excluded).
    pub fn data(&mut self, dir: Direction, id: u32, bytes: &[u8]) {
        if let Some(half) = self.half(dir, id) {
            half.body.push(bytes);
            if let Some(counter) = &mut half.grpc_messages {
                counter.push(bytes);
            }
        }
    }

    /// A DATA frame of `frame_len` wire bytes on `id` ended.
    pub fn data_end(
        &mut self,
        dir: Direction,
        id: u32,
        frame_len: u64,
        end_stream: bool,
        cx: &mut Emit<'_>,
    ) {
        let ts = cx.ts;
        let Some(half) = self.half(dir, id) else {
            cx.counters.skipped_bytes += frame_len;
            return;
        };
        half.msg.wire_bytes = half.msg.wire_bytes.saturating_add(frame_len);
        half.msg.last_ts_ns = ts;
        let kind = half.msg.kind;
        if end_stream {
            self.end(id, kind, None, cx);
        }
    }

    /// `n` DATA payload bytes of `id` in `dir` were lost.
    pub fn lost_bytes(&mut self, dir: Direction, id: u32, n: u64) {
        if let Some(half) = self.half(dir, id) {
            half.msg.partial = true;
            half.body.skip(n);
            if let Some(counter) = &mut half.grpc_messages {
                counter.skip();
            }
        }
    }

    /// `n` DATA payload bytes of a stream were counted, not copied (the capture budget): its
    /// body is cut, the message stays whole.
    pub fn elided_bytes(&mut self, dir: Direction, id: u32, n: u64) {
        if let Some(half) = self.half(dir, id) {
            half.body.skip(n);
            if let Some(counter) = &mut half.grpc_messages {
                counter.skip();
            }
        }
    }

    /// Bytes of `dir` were lost: every open side sending that way may have lost some.
    pub fn lost(&mut self, dir: Direction) {
        for stream in self.open.values_mut() {
            for half in [&mut stream.request, &mut stream.response]
                .into_iter()
                .flatten()
            {
                if half.msg.direction == dir {
                    half.msg.partial = true;
                    half.body.skip(0);
                    if let Some(counter) = &mut half.grpc_messages {
                        counter.skip();
                    }
                }
            }
        }
    }

    /// RST_STREAM: whatever is open on `id` ends here.
    pub fn reset(&mut self, id: u32, code: u32, cx: &mut Emit<'_>) {
        cx.counters.h2_rst_streams += 1;
        if self.open.contains_key(&id) {
            self.end(id, MessageKind::Response, Some(code), cx);
        }
    }

    /// The connection ended: open sides are emitted as partial, unanswered requests counted.
    pub fn close(&mut self, cx: &mut Emit<'_>) {
        let mut ids: Vec<u32> = self.open.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(stream) = self.open.remove(&id) {
                finish_stream(stream, None, false, cx);
            }
        }
    }

    fn half(&mut self, dir: Direction, id: u32) -> Option<&mut Half> {
        let stream = self.open.get_mut(&id)?;
        [&mut stream.request, &mut stream.response]
            .into_iter()
            .flatten()
            .find(|half| half.msg.direction == dir)
    }

    /// `kind`'s side of `id` ended; a response ending (or a reset) ends the stream.
    fn end(&mut self, id: u32, kind: MessageKind, reset: Option<u32>, cx: &mut Emit<'_>) {
        if kind == MessageKind::Request && reset.is_none() {
            if let Some(stream) = self.open.get_mut(&id) {
                if let Some(half) = stream.request.take() {
                    emit(half, true, cx);
                    stream.request_emitted = true;
                }
            }
            return;
        }
        if let Some(stream) = self.open.remove(&id) {
            finish_stream(stream, reset, reset.is_none(), cx);
        }
    }
}

/// Emits what is left of a stream: the request (cut short unless it ended), then the response.
fn finish_stream(
    mut stream: Stream,
    reset: Option<u32>,
    response_complete: bool,
    cx: &mut Emit<'_>,
) {
    if let Some(mut half) = stream.request.take() {
        if reset.is_some() {
            half.msg.extra_mut().reset_code = reset;
        }
        emit(half, false, cx);
        stream.request_emitted = true;
    }
    match stream.response.take() {
        Some(mut half) => {
            if reset.is_some() {
                half.msg.extra_mut().reset_code = reset;
            }
            if let (Some(first), true) = (stream.facts.first_ts_ns, stream.facts.exchange.is_some())
            {
                half.msg.latency_ns = Some(half.msg.last_ts_ns.saturating_sub(first));
            }
            emit(half, response_complete, cx);
        }
        None if stream.facts.exchange.is_some() => cx.counters.unanswered_requests += 1,
        None => {}
    }
}

fn new_half(
    kind: MessageKind,
    dir: Direction,
    id: u32,
    fields: &Fields,
    wire_len: u64,
    cx: &Emit<'_>,
) -> Half {
    let mut msg = HttpMessage::new(kind, dir, HttpVersion::H2, cx.ts);
    msg.stream = std::num::NonZeroU32::new(id);
    msg.wire_bytes = wire_len;
    if fields.unknown > 0 {
        msg.extra_mut().unknown_headers = fields.unknown;
    }
    msg.partial = fields.dropped > 0;
    let mut encoding = Encoding::Identity;
    let mut headers = Headers::with_capacity(fields.fields.len(), 0);
    let mut grpc_call = false;
    for (name, value) in &fields.fields {
        match &**name {
            ":method" => msg.method = Some(borrowed_if_known(value, &KNOWN_METHODS)),
            ":path" => msg.url = Some(value.clone()),
            ":authority" => msg.extra_mut().authority = Some(value.clone()),
            ":status" => msg.status = value.parse().ok(),
            n if n.starts_with(':') => {}
            n => {
                if n == "content-encoding" {
                    encoding = encoding.with_header(value.as_bytes());
                } else if n == "content-type" {
                    grpc_call |= grpc::is_grpc(value);
                }
                if cx.config.header_fields.keeps(n) {
                    headers.push(n, value);
                }
            }
        }
    }
    msg.headers = headers;
    if grpc_call && kind == MessageKind::Request {
        if let Some((service, method)) = msg.url.as_deref().and_then(grpc::service_and_method) {
            msg.grpc = Some(Box::new(GrpcCall {
                service,
                method,
                status: None,
                message: None,
                messages: 0,
            }));
        }
    }
    Half {
        body: BodySink::new(encoding, cx.config.body_limit, Vec::new()),
        grpc_messages: grpc_call.then(MessageCounter::default),
        msg,
    }
}

/// A response takes its request's exchange, method, url, authority and gRPC call.
fn inherit(msg: &mut HttpMessage, facts: &RequestFacts) {
    msg.exchange = facts.exchange;
    msg.method = facts.method.clone();
    msg.url = facts.url.clone();
    if let Some(authority) = &facts.authority {
        msg.extra_mut().authority = Some(authority.clone());
    }
    if let Some((service, method)) = &facts.grpc {
        msg.grpc = Some(Box::new(GrpcCall {
            service: service.clone(),
            method: method.clone(),
            status: None,
            message: None,
            messages: 0,
        }));
    }
}

fn add_trailers(msg: &mut HttpMessage, fields: &Fields, keep: &HeaderFields) {
    msg.partial |= fields.dropped > 0;
    let extra = msg.extra_mut();
    extra.unknown_headers = extra.unknown_headers.saturating_add(fields.unknown);
    for (name, value) in &fields.fields {
        if !name.starts_with(':') && keep.keeps(name) {
            extra.trailers.push(name, value);
        }
    }
}

/// Finishes a side into a record: body, gRPC status and message count.
fn emit(half: Half, complete: bool, cx: &mut Emit<'_>) {
    let Half {
        mut msg,
        body,
        grpc_messages,
    } = half;
    body.finish(&mut msg, complete, cx.counters);
    msg.partial |= !complete;
    if msg.grpc.is_some() {
        // Responses: trailers, or the headers of a trailers-only response.
        let lookup = |name: &str| {
            msg.trailers()
                .into_iter()
                .flat_map(|trailers| trailers.iter())
                .chain(msg.headers.iter())
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v)
        };
        let is_response = msg.kind == MessageKind::Response;
        let status = lookup("grpc-status")
            .and_then(grpc::status)
            .filter(|_| is_response);
        let message = lookup("grpc-message")
            .map(grpc::message)
            .filter(|_| is_response);
        if let Some(call) = msg.grpc.as_deref_mut() {
            call.messages = grpc_messages.as_ref().map_or(0, |c| c.messages);
            call.status = status;
            call.message = message;
        }
    }
    cx.counters.messages += 1;
    cx.counters.partial_messages += u64::from(msg.partial);
    if msg.kind == MessageKind::Response && msg.exchange.is_none() && !msg.interim {
        cx.counters.unpaired_responses += 1;
    }
    cx.out.push(msg);
}
