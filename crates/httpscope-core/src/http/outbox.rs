//! The messages the engines finish, on their way to the sinks. Once the sinks have seen
//! them, their buffers come back for the next messages, so that a steady flow of messages
//! allocates little.

use std::mem;

use super::message::{Headers, HttpMessage};

/// Spare buffers kept at most, of each kind.
const MAX_SPARE: usize = 64;
/// Larger buffers are freed rather than kept: one big message must not pin its memory.
const MAX_SPARE_CAPACITY: usize = 4096;

/// Finished messages, and the buffers of those already written, for reuse.
#[derive(Debug, Default)]
pub struct Outbox {
    messages: Vec<HttpMessage>,
    spare_bytes: Vec<Vec<u8>>,
    spare_headers: Vec<Headers>,
}

impl Outbox {
    pub fn push(&mut self, message: HttpMessage) {
        self.messages.push(message);
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn messages(&self) -> &[HttpMessage] {
        &self.messages
    }

    pub fn messages_mut(&mut self) -> &mut [HttpMessage] {
        &mut self.messages
    }

    /// Takes the finished messages out: their buffers will not be reused.
    pub fn take(&mut self) -> Vec<HttpMessage> {
        mem::take(&mut self.messages)
    }

    /// Drops the finished messages, keeping their buffers for the next ones.
    pub fn recycle(&mut self) {
        // Emptied in place: moving a message out copies all of it.
        for message in &mut self.messages {
            for bytes in [&mut message.raw, &mut message.body] {
                if self.spare_bytes.len() < MAX_SPARE
                    && (1..=MAX_SPARE_CAPACITY).contains(&bytes.capacity())
                {
                    bytes.clear();
                    self.spare_bytes.push(mem::take(bytes));
                }
            }
            let headers = &mut message.headers;
            if self.spare_headers.len() < MAX_SPARE
                && (1..=MAX_SPARE_CAPACITY).contains(&headers.capacity())
            {
                headers.clear();
                self.spare_headers.push(mem::take(headers));
            }
        }
        self.messages.clear();
    }

    /// An empty byte buffer with room for `capacity` bytes.
    pub(super) fn bytes(&mut self, capacity: usize) -> Vec<u8> {
        let mut bytes = self.spare_bytes.pop().unwrap_or_default();
        bytes.reserve(capacity);
        bytes
    }

    /// An empty header list, perhaps with room already.
    pub(super) fn headers(&mut self) -> Headers {
        self.spare_headers.pop().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::direction::Direction;
    use crate::http::{HttpVersion, MessageKind};

    #[test]
    fn written_messages_lend_their_buffers_to_the_next() {
        let mut outbox = Outbox::default();
        let mut message = HttpMessage::new(
            MessageKind::Request,
            Direction::Send,
            HttpVersion::Http11,
            0,
        );
        message.raw = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        message.headers = [("Host", "a")].into_iter().collect();
        outbox.push(message);
        assert_eq!(outbox.len(), 1);
        outbox.recycle();
        assert!(outbox.is_empty());
        let raw = outbox.bytes(4);
        assert!(raw.is_empty() && raw.capacity() >= 18);
        let headers = outbox.headers();
        assert!(headers.is_empty() && headers.capacity() > 0);
        // Nothing more to lend: fresh ones.
        assert_eq!(outbox.bytes(0).capacity(), 0);
        assert_eq!(outbox.headers().capacity(), 0);
    }

    #[test]
    fn big_buffers_are_not_kept() {
        let mut outbox = Outbox::default();
        let mut message = HttpMessage::new(
            MessageKind::Response,
            Direction::Recv,
            HttpVersion::Http11,
            0,
        );
        message.body = vec![0; MAX_SPARE_CAPACITY + 1];
        outbox.push(message);
        outbox.recycle();
        assert_eq!(outbox.bytes(0).capacity(), 0);
    }
}
