//! The HTTP/2 engine of one connection (RFC 9113): frames are read in wire order per
//! direction from the reassembled byte streams, header blocks go through that direction's
//! HPACK decoder, and streams turn into one request and one response record each.
//!
//! Entry: the client preface (prior knowledge, or the plaintext of TLS with ALPN h2), the
//! `Upgrade: h2c` handoff from the HTTP/1 engine (the upgraded request is stream 1), or a
//! connection already open when capture began: then a direction starts decoding at the first
//! syscall whose bytes are exactly a run of plausible frames, with HPACK joined late.
//!
//! Losses: a gap inside a DATA payload of known length only cuts that body; any other gap
//! loses the frame boundaries of its direction, which are found again the same way as on a
//! late join. Pairing is by stream id, so it never depends on what was lost.

mod frame;
mod grpc;
mod hpack;
mod streams;

use std::collections::VecDeque;

use frame::{FrameHeader, Kind, HEADER_LEN};
use hpack::Decoder;
use streams::Streams;

use super::stream::{Placed, StreamPos};
use super::{DataChunk, Emit, HttpConfig, Role};
use crate::direction::Direction;

pub use frame::exact_frames;
pub use streams::Upgraded;

/// SETTINGS a direction sent and the peer has not acknowledged yet, at most.
const MAX_PENDING_SETTINGS: usize = 8;

/// Where a direction is in its byte stream.
#[derive(Debug)]
enum ReadState {
    /// At the start: the client preface may come first; this many of its bytes matched.
    Start(usize),
    Header {
        buf: [u8; HEADER_LEN],
        have: usize,
    },
    /// A non-DATA frame's payload, buffered whole.
    Payload {
        header: FrameHeader,
        buf: Vec<u8>,
    },
    /// A DATA frame's payload, streamed: `left` bytes to come, `pad` of which are padding
    /// (None until the pad length byte of a PADDED frame is read).
    Data {
        header: FrameHeader,
        left: u32,
        pad: Option<u32>,
    },
    /// A frame too large to buffer: skipped.
    Skip {
        left: u32,
    },
    /// Frame boundaries unknown: waiting for a syscall that starts with whole frames.
    Lost,
}

/// A header block being assembled from HEADERS or PUSH_PROMISE and CONTINUATION frames.
#[derive(Debug)]
struct Block {
    stream: u32,
    end_stream: bool,
    promise: bool,
    bytes: Vec<u8>,
    wire_len: u64,
    /// Longer than we keep: undecodable, and the table is lost with it.
    overflow: bool,
}

/// One direction of the connection.
#[derive(Debug)]
struct Reader {
    dir: Direction,
    pos: StreamPos,
    state: ReadState,
    hpack: Decoder,
    block: Option<Block>,
    /// SETTINGS_HEADER_TABLE_SIZE values this direction announced, oldest first, until
    /// acknowledged (None: that SETTINGS did not change it).
    pending_limits: VecDeque<Option<u32>>,
    /// Largest frame this direction may carry: the peer's SETTINGS_MAX_FRAME_SIZE. Longer
    /// frames are a connection error (RFC 9113 §4.2), or bytes we misread.
    max_frame: u32,
}

/// What a frame asks of the connection beyond its own direction.
enum Effect {
    None,
    /// The peer acknowledged our SETTINGS: its table size limit applies to the other side.
    SettingsAck,
    /// SETTINGS with (or without) a header table size for the other direction's decoder.
    Settings(Option<u32>),
}

/// The HTTP/2 engine of one TCP connection.
#[derive(Debug)]
pub struct H2Connection {
    send: Reader,
    recv: Reader,
    streams: Streams,
    /// The direction that carried the client preface.
    client_preface: Option<Direction>,
}

impl H2Connection {
    /// A connection seen from its first byte (`from_start`) or joined mid-way; `positions`
    /// continue the send and receive streams; `upgraded` is the HTTP/1 request of an h2c
    /// upgrade.
    pub fn new(
        config: &HttpConfig,
        from_start: bool,
        positions: [StreamPos; 2],
        upgraded: Option<Upgraded>,
    ) -> Self {
        let [send, recv] = positions;
        H2Connection {
            send: Reader::new(Direction::Send, send, from_start, config),
            recv: Reader::new(Direction::Recv, recv, from_start, config),
            streams: Streams::new(upgraded),
            client_preface: None,
        }
    }

    pub fn on_data(&mut self, chunk: &DataChunk<'_>, cx: &mut Emit<'_>) {
        let placed = self.reader(chunk.direction).pos.place(chunk, cx.counters);
        self.feed(chunk.direction, placed, cx);
    }

    /// Bytes already placed in their stream (also how the HTTP/1 engine hands over).
    pub fn feed(&mut self, dir: Direction, placed: Placed<'_>, cx: &mut Emit<'_>) {
        if placed.pre_gap > 0 {
            self.gap(dir, placed.pre_gap, false, cx);
        }
        let reader = self.reader(dir);
        if placed.at_start && matches!(reader.state, ReadState::Lost) && exact_frames(placed.data) {
            reader.next_frame();
            cx.counters.resyncs += 1;
        }
        let mut data = placed.data;
        while !data.is_empty() {
            let used = self.step(dir, data, cx);
            data = data.get(used..).unwrap_or_default();
        }
        if placed.post_gap > 0 {
            self.gap(dir, placed.post_gap, placed.elided, cx);
        }
    }

    pub fn on_close(&mut self, cx: &mut Emit<'_>) {
        self.streams.close(cx);
    }

    /// Client if this process sends requests (or sent the preface).
    pub fn role(&self) -> Option<Role> {
        self.streams
            .request_dir
            .or(self.client_preface)
            .map(|d| match d {
                Direction::Send => Role::Client,
                Direction::Recv => Role::Server,
            })
    }

    fn reader(&mut self, dir: Direction) -> &mut Reader {
        self.parts(dir).0
    }

    fn parts(&mut self, dir: Direction) -> (&mut Reader, &mut Streams) {
        let reader = match dir {
            Direction::Send => &mut self.send,
            Direction::Recv => &mut self.recv,
        };
        (reader, &mut self.streams)
    }

    /// `n` bytes of `dir` were lost, or `elided` by the kernel's capture budget: those are
    /// expected inside a DATA payload, and lost anywhere else.
    fn gap(&mut self, dir: Direction, n: u64, elided: bool, cx: &mut Emit<'_>) {
        let (reader, streams) = self.parts(dir);
        let inside_body = match &mut reader.state {
            ReadState::Data {
                header,
                left,
                pad: Some(pad),
            } if n <= u64::from(left.saturating_sub(*pad)) => {
                // Inside a body of known length: the frame boundaries hold.
                *left -= n as u32;
                Some(*header)
            }
            _ => None,
        };
        if let Some(header) = inside_body {
            if elided {
                cx.counters.elided_bytes = cx.counters.elided_bytes.saturating_add(n);
                streams.elided_bytes(dir, header.stream, n);
            } else {
                streams.lost_bytes(dir, header.stream, n);
            }
            if reader.data_done(header, cx, streams) {
                reader.next_frame();
            }
            return;
        }
        if elided {
            cx.counters.gap_bytes = cx.counters.gap_bytes.saturating_add(n);
        }
        if !matches!(reader.state, ReadState::Lost) {
            reader.lose();
            streams.lost(dir);
        }
    }

    /// Consumes some of `data`; returns how much (0 only after changing state).
    fn step(&mut self, dir: Direction, data: &[u8], cx: &mut Emit<'_>) -> usize {
        let buffer_cap = cx
            .config
            .max_head_bytes
            .max(frame::DEFAULT_MAX_FRAME as usize);
        let (reader, streams) = self.parts(dir);
        match &mut reader.state {
            ReadState::Lost => {
                cx.counters.skipped_bytes += data.len() as u64;
                data.len()
            }
            ReadState::Start(matched) => {
                let want = &frame::CLIENT_PREFACE[*matched..];
                let take = want.len().min(data.len());
                if data[..take] == want[..take] {
                    *matched += take;
                    if *matched == frame::CLIENT_PREFACE.len() {
                        reader.next_frame();
                        self.client_preface.get_or_insert(dir);
                    }
                    take
                } else if *matched == 0 {
                    reader.next_frame();
                    0
                } else {
                    self.protocol_error(dir, cx);
                    0
                }
            }
            ReadState::Header { buf, have } => {
                let take = (HEADER_LEN - *have).min(data.len());
                buf[*have..*have + take].copy_from_slice(&data[..take]);
                *have += take;
                if *have < HEADER_LEN {
                    return take;
                }
                let header = FrameHeader::parse(buf);
                if header.len > reader.max_frame {
                    self.protocol_error(dir, cx);
                    return take;
                }
                reader.state = match header.kind {
                    Kind::Data => ReadState::Data {
                        header,
                        left: header.len,
                        pad: (!header.has(frame::PADDED)).then_some(0),
                    },
                    _ if header.len as usize > buffer_cap => ReadState::Skip { left: header.len },
                    _ => ReadState::Payload {
                        header,
                        buf: Vec::with_capacity(header.len as usize),
                    },
                };
                if matches!(reader.state, ReadState::Skip { .. }) {
                    self.oversized(dir, header, cx);
                } else if header.len == 0 {
                    self.frame_done(dir, cx);
                }
                take
            }
            ReadState::Payload { header, buf } => {
                let take = (header.len as usize - buf.len()).min(data.len());
                buf.extend_from_slice(&data[..take]);
                if buf.len() == header.len as usize {
                    self.frame_done(dir, cx);
                }
                take
            }
            ReadState::Skip { left } => {
                let take = (*left as usize).min(data.len());
                *left -= take as u32;
                cx.counters.skipped_bytes += take as u64;
                if *left == 0 {
                    reader.next_frame();
                }
                take
            }
            ReadState::Data { header, left, pad } => {
                let header = *header;
                let Some(pad_len) = *pad else {
                    // The pad length byte of a PADDED frame.
                    let pad_len = u32::from(data[0]);
                    if pad_len + 1 > *left {
                        self.protocol_error(dir, cx);
                    } else {
                        *left -= 1;
                        *pad = Some(pad_len);
                        if reader.data_done(header, cx, streams) {
                            reader.next_frame();
                        }
                    }
                    return 1;
                };
                let body_left = left.saturating_sub(pad_len) as usize;
                let take = if body_left > 0 {
                    body_left.min(data.len())
                } else {
                    (*left as usize).min(data.len())
                };
                *left -= take as u32;
                if body_left > 0 {
                    streams.data(dir, header.stream, &data[..take]);
                }
                if reader.data_done(header, cx, streams) {
                    reader.next_frame();
                }
                take
            }
        }
    }

    /// A frame too large to buffer: a header block that large cannot be decoded.
    fn oversized(&mut self, dir: Direction, header: FrameHeader, cx: &mut Emit<'_>) {
        cx.counters.parse_errors += 1;
        let reader = self.reader(dir);
        match header.kind {
            Kind::Headers | Kind::PushPromise => {
                reader.block = Some(Block {
                    stream: header.stream,
                    end_stream: header.has(frame::END_STREAM),
                    promise: header.kind == Kind::PushPromise,
                    bytes: Vec::new(),
                    wire_len: frame_wire_len(&header),
                    overflow: true,
                });
            }
            Kind::Continuation => {
                if let Some(block) = &mut reader.block {
                    block.overflow = true;
                    block.bytes = Vec::new();
                }
            }
            _ => return,
        }
        if header.has(frame::END_HEADERS) {
            self.finish_block(dir, cx);
        }
    }

    /// Gives up on this direction's frame boundaries after a violation we cannot skip over.
    fn protocol_error(&mut self, dir: Direction, cx: &mut Emit<'_>) {
        cx.counters.parse_errors += 1;
        let (reader, streams) = self.parts(dir);
        reader.lose();
        streams.lost(dir);
    }

    /// A buffered frame is complete.
    fn frame_done(&mut self, dir: Direction, cx: &mut Emit<'_>) {
        let (reader, streams) = self.parts(dir);
        let state = std::mem::replace(
            &mut reader.state,
            ReadState::Header {
                buf: [0; HEADER_LEN],
                have: 0,
            },
        );
        let (header, payload) = match state {
            ReadState::Payload { header, buf } => (header, buf),
            ReadState::Data { header, .. } => {
                let end_stream = header.has(frame::END_STREAM);
                streams.data_end(dir, header.stream, frame_wire_len(&header), end_stream, cx);
                return;
            }
            _ => return,
        };
        if reader.block.is_some() != (header.kind == Kind::Continuation) {
            // Only CONTINUATION may follow an unfinished block, and only after one.
            return self.protocol_error(dir, cx);
        }
        let effect = match header.kind {
            Kind::Headers => {
                let Some(fragment) = frame::headers_fragment(&header, &payload) else {
                    return self.protocol_error(dir, cx);
                };
                reader.block = Some(Block::start(&header, fragment, false));
                Effect::None
            }
            Kind::PushPromise => {
                cx.counters.h2_push_promises += 1;
                let Some((_, fragment)) = frame::push_promise_fragment(&header, &payload) else {
                    return self.protocol_error(dir, cx);
                };
                reader.block = Some(Block::start(&header, fragment, true));
                Effect::None
            }
            Kind::Continuation => {
                let cap = cx.config.max_head_bytes;
                match &mut reader.block {
                    Some(block) if block.stream == header.stream => {
                        block.wire_len += frame_wire_len(&header);
                        if block.bytes.len() + payload.len() > cap {
                            block.overflow = true;
                            block.bytes = Vec::new();
                        } else if !block.overflow {
                            block.bytes.extend_from_slice(&payload);
                        }
                    }
                    _ => return self.protocol_error(dir, cx),
                }
                Effect::None
            }
            Kind::RstStream => {
                let code = frame::u32_payload(&payload).unwrap_or_default();
                streams.reset(header.stream, code, cx);
                Effect::None
            }
            Kind::Settings if header.has(frame::ACK) => Effect::SettingsAck,
            Kind::Settings => {
                if let Some(size) = frame::setting(&payload, frame::SETTINGS_MAX_FRAME_SIZE) {
                    // Frames towards this direction's sender may be this large from now on.
                    let peer = self.reader(dir.opposite());
                    peer.max_frame = size.clamp(frame::DEFAULT_MAX_FRAME, (1 << 24) - 1);
                }
                Effect::Settings(frame::setting(&payload, frame::SETTINGS_HEADER_TABLE_SIZE))
            }
            Kind::GoAway => {
                cx.counters.h2_goaways += 1;
                Effect::None
            }
            Kind::Data | Kind::Priority | Kind::Ping | Kind::WindowUpdate | Kind::Unknown(_) => {
                Effect::None
            }
        };
        let block_kind = matches!(
            header.kind,
            Kind::Headers | Kind::PushPromise | Kind::Continuation
        );
        if block_kind && header.has(frame::END_HEADERS) {
            self.finish_block(dir, cx);
        }
        match effect {
            Effect::None => {}
            Effect::Settings(limit) => {
                let reader = self.reader(dir);
                if reader.pending_limits.len() < MAX_PENDING_SETTINGS {
                    reader.pending_limits.push_back(limit);
                }
            }
            Effect::SettingsAck => {
                // The other direction's SETTINGS now bind the encoder of this direction.
                let limit = self.reader(dir.opposite()).pending_limits.pop_front();
                if let Some(Some(limit)) = limit {
                    self.reader(dir).hpack.set_limit(limit as usize);
                }
            }
        }
    }

    fn finish_block(&mut self, dir: Direction, cx: &mut Emit<'_>) {
        let (reader, streams) = self.parts(dir);
        let Some(block) = reader.block.take() else {
            return;
        };
        let fields = if block.overflow {
            reader.hpack.lose_track();
            None
        } else {
            match reader.hpack.decode(&block.bytes) {
                Ok(fields) => Some(fields),
                Err(_) => {
                    cx.counters.h2_hpack_errors += 1;
                    None
                }
            }
        };
        if !block.promise {
            streams.headers(
                dir,
                block.stream,
                fields,
                block.end_stream,
                block.wire_len,
                cx,
            );
        }
    }
}

impl Block {
    fn start(header: &FrameHeader, fragment: &[u8], promise: bool) -> Block {
        Block {
            stream: header.stream,
            end_stream: header.has(frame::END_STREAM),
            promise,
            bytes: fragment.to_vec(),
            wire_len: frame_wire_len(header),
            overflow: false,
        }
    }
}

impl Reader {
    fn new(dir: Direction, pos: StreamPos, from_start: bool, config: &HttpConfig) -> Self {
        Reader {
            dir,
            pos,
            state: if from_start {
                ReadState::Start(0)
            } else {
                ReadState::Lost
            },
            hpack: Decoder::new(from_start, config.max_head_bytes),
            block: None,
            pending_limits: VecDeque::new(),
            max_frame: frame::DEFAULT_MAX_FRAME,
        }
    }

    /// Frame boundaries are gone: so is the header block in progress, and the HPACK table
    /// can only be trusted for what is inserted from here on.
    fn lose(&mut self) {
        self.state = ReadState::Lost;
        self.block = None;
        self.hpack.lose_track();
    }

    fn next_frame(&mut self) {
        self.state = ReadState::Header {
            buf: [0; HEADER_LEN],
            have: 0,
        };
    }

    /// Ends the DATA frame in progress if all its bytes are in; true when it ended.
    fn data_done(&mut self, header: FrameHeader, cx: &mut Emit<'_>, streams: &mut Streams) -> bool {
        let ReadState::Data { left: 0, .. } = self.state else {
            return false;
        };
        let end_stream = header.has(frame::END_STREAM);
        streams.data_end(
            self.dir,
            header.stream,
            frame_wire_len(&header),
            end_stream,
            cx,
        );
        true
    }
}

fn frame_wire_len(header: &FrameHeader) -> u64 {
    u64::from(header.len) + HEADER_LEN as u64
}

#[cfg(test)]
mod tests;
