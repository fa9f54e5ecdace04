//! One connection's HTTP, whichever version it speaks: the HTTP/1 engine until the bytes say
//! HTTP/2 (the client preface, a 101 to h2c, or whole frames on a connection joined mid-way),
//! then the HTTP/2 engine from the same point of each stream.

use super::h1::H1Connection;
use super::h2::{self, H2Connection};
use super::stream::Placed;
use super::{DataChunk, Emit, Protocol, Role};
use crate::direction::Direction;

#[derive(Debug)]
pub struct HttpConnection {
    h1: H1Connection,
    /// Boxed: most connections never speak HTTP/2.
    h2: Option<Box<H2Connection>>,
    mid_stream: bool,
}

impl HttpConnection {
    /// `mid_stream`: the connection existed before capture started, so the first bytes may be
    /// mid-message.
    pub fn new(mid_stream: bool) -> Self {
        HttpConnection {
            h1: H1Connection::new(mid_stream),
            h2: None,
            mid_stream,
        }
    }

    /// Feeds the bytes of one syscall; complete messages are appended to `cx.out`.
    pub fn on_data(&mut self, chunk: &DataChunk<'_>, cx: &mut Emit<'_>) {
        if let Some(h2) = &mut self.h2 {
            return h2.on_data(chunk, cx);
        }
        if self.mid_stream
            && self.h1.protocol() == Protocol::Unknown
            && chunk.len == chunk.data.len() as u64
            && h2::exact_frames(chunk.data)
        {
            // Joined mid-way, and this syscall is whole HTTP/2 frames.
            let positions = self.h1.take_handoff().positions;
            let mut h2 = Box::new(H2Connection::new(cx.config, false, positions, None));
            h2.on_data(chunk, cx);
            self.h2 = Some(h2);
            return;
        }
        self.h1.on_data(chunk, cx);
        if self.h1.protocol() == Protocol::Http2 {
            self.switch_to_h2(cx);
        }
    }

    /// The HTTP/1 engine saw HTTP/2 begin: the HTTP/2 engine takes the bytes from there.
    fn switch_to_h2(&mut self, cx: &mut Emit<'_>) {
        let handoff = self.h1.take_handoff();
        let mut h2 = Box::new(H2Connection::new(
            cx.config,
            !self.mid_stream || handoff.request_dir.is_some(),
            handoff.positions,
            handoff.upgraded,
        ));
        for dir in [Direction::Send, Direction::Recv] {
            let placed = Placed {
                pre_gap: 0,
                data: &handoff.bytes[dir.index()],
                post_gap: handoff.gaps[dir.index()],
                elided: handoff.gaps_elided[dir.index()],
                at_start: false,
                first: false,
            };
            h2.feed(dir, placed, cx);
        }
        self.h2 = Some(h2);
    }

    /// The connection closed at `cx.ts`: incomplete messages are flushed as partial.
    pub fn on_close(&mut self, cx: &mut Emit<'_>) {
        self.h1.on_close(cx);
        if let Some(h2) = &mut self.h2 {
            h2.on_close(cx);
        }
    }

    /// Client if this process sends requests, Server if it receives them; None until known.
    pub fn role(&self) -> Option<Role> {
        self.h2
            .as_ref()
            .and_then(|h2| h2.role())
            .or_else(|| self.h1.role())
    }

    pub fn protocol(&self) -> Protocol {
        if self.h2.is_some() {
            Protocol::Http2
        } else {
            self.h1.protocol()
        }
    }
}
