//! gRPC over HTTP/2: recognising a call, naming it from its path, counting its
//! length-prefixed messages, and reading `grpc-status` / `grpc-message`.

use std::sync::Arc;

/// `content-type: application/grpc` with or without a `+proto`-like suffix or parameters.
pub fn is_grpc(content_type: &str) -> bool {
    content_type
        .get(..16)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("application/grpc"))
        && matches!(content_type.as_bytes().get(16), None | Some(b'+' | b';'))
}

/// Service and method of `/package.Service/Method`.
pub fn service_and_method(path: &str) -> Option<(Arc<str>, Arc<str>)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then(|| (Arc::from(service), Arc::from(method)))
}

/// `grpc-status`: a decimal code.
pub fn status(value: &str) -> Option<u32> {
    value.trim().parse().ok()
}

/// `grpc-message` is percent-encoded UTF-8 (gRPC over HTTP/2 spec); bad escapes stay as sent.
pub fn message(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Counts the messages of one direction of a call: each is a 1-byte flag, a 4-byte length
/// and that many bytes, spread over DATA frames in any way.
#[derive(Debug, Default)]
pub struct MessageCounter {
    /// Bytes of the current prefix seen so far.
    prefix: [u8; 5],
    prefix_len: usize,
    /// Bytes of the current message body still to come.
    body_left: u64,
    pub messages: u64,
    /// Bytes were lost: the count may be short.
    pub lost: bool,
}

impl MessageCounter {
    pub fn push(&mut self, mut data: &[u8]) {
        if self.lost {
            return;
        }
        while !data.is_empty() {
            if self.body_left > 0 {
                let take = data
                    .len()
                    .min(usize::try_from(self.body_left).unwrap_or(usize::MAX));
                self.body_left -= take as u64;
                data = data.get(take..).unwrap_or_default();
                continue;
            }
            let take = data.len().min(5 - self.prefix_len);
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
            self.prefix_len += take;
            data = data.get(take..).unwrap_or_default();
            if self.prefix_len == 5 {
                let [_, a, b, c, d] = self.prefix;
                self.body_left = u64::from(u32::from_be_bytes([a, b, c, d]));
                self.prefix_len = 0;
                self.messages += 1;
            }
        }
    }

    pub fn skip(&mut self) {
        self.lost = true;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn recognises_calls_and_names() {
        assert!(is_grpc("application/grpc"));
        assert!(is_grpc("application/grpc+proto"));
        assert!(is_grpc("Application/GRPC;charset=utf-8"));
        assert!(!is_grpc("application/grpc-web"));
        assert!(!is_grpc("application/json"));
        let (service, method) = service_and_method("/helloworld.Greeter/SayHello").unwrap();
        assert_eq!((&*service, &*method), ("helloworld.Greeter", "SayHello"));
        assert_eq!(service_and_method("/only"), None);
        assert_eq!(service_and_method("/a/b/c"), None);
        assert_eq!(status(" 14"), Some(14));
        assert_eq!(status("x"), None);
        assert_eq!(message("bad%20thing%3a%zz%"), "bad thing:%zz%");
    }

    #[test]
    fn counts_messages_split_anywhere() {
        let stream = b"\x00\x00\x00\x00\x03abc\x00\x00\x00\x00\x00\x01\x00\x00\x00\x01z";
        for split in 0..stream.len() {
            let mut counter = MessageCounter::default();
            counter.push(&stream[..split]);
            counter.push(&stream[split..]);
            assert_eq!(counter.messages, 3, "split at {split}");
        }
        let mut counter = MessageCounter::default();
        counter.push(b"\x00\x00\x00");
        counter.skip();
        counter.push(b"\x00\x00\x00\x00\x00\x00");
        assert_eq!((counter.messages, counter.lost), (0, true));
    }
}
