//! Request/response pairing: a FIFO of outstanding requests, trusted only while no data that
//! could hide a message has been lost (the rule is spelled out in the `http` module docs).

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;

use crate::http::ParseCounters;

/// Outstanding requests beyond this many are not tracked (and pairing stops for good).
const MAX_OUTSTANDING: usize = 1024;

/// What a response inherits from its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Paired {
    pub exchange: u64,
    pub method: Cow<'static, str>,
    pub url: Arc<str>,
    pub request_first_ts_ns: u64,
}

/// Pairing state of one connection.
#[derive(Debug)]
pub(super) struct Pairing {
    /// The queue mirrors the requests the peer still owes responses to.
    certain: bool,
    queue: Outstanding,
    last_exchange: u64,
    /// More than one request was outstanding at once (pipelining, or indistinguishable from it).
    pipelined: bool,
    /// While uncertain: requests seen since, minus final responses seen since.
    unanswered_seen: u32,
}

impl Pairing {
    pub fn new(mid_stream: bool) -> Self {
        Pairing {
            certain: !mid_stream,
            queue: Outstanding::default(),
            last_exchange: 0,
            pipelined: false,
            unanswered_seen: 0,
        }
    }

    /// A request head was parsed; returns its exchange number when it will be paired.
    /// `response_idle`: the response direction sits at a message boundary it has observed.
    pub fn on_request(
        &mut self,
        method: Cow<'static, str>,
        url: Arc<str>,
        first_ts_ns: u64,
        response_idle: bool,
        counters: &mut ParseCounters,
    ) -> Option<u64> {
        if !self.certain {
            self.pipelined |= self.unanswered_seen > 0;
            if self.pipelined || !response_idle {
                self.unanswered_seen = self.unanswered_seen.saturating_add(1);
                return None;
            }
            // Safe point: nothing is owed, the peer is between messages, and the client has
            // never pipelined, so the next final response answers this request.
            self.certain = true;
        }
        if self.queue.len() >= MAX_OUTSTANDING {
            counters.queue_overflows += 1;
            self.lose_track(counters);
            return None;
        }
        self.last_exchange += 1;
        self.queue.push_back(Paired {
            exchange: self.last_exchange,
            method,
            url,
            request_first_ts_ns: first_ts_ns,
        });
        self.pipelined |= self.queue.len() > 1;
        Some(self.last_exchange)
    }

    /// A response head was parsed; returns its request when pairing is certain. Interim (1xx
    /// other than 101) responses share the oldest request's exchange without consuming it.
    pub fn on_response(&mut self, status: u16) -> Option<Paired> {
        let interim = (100..200).contains(&status) && status != 101;
        if !self.certain {
            if !interim {
                self.unanswered_seen = self.unanswered_seen.saturating_sub(1);
            }
            return None;
        }
        if interim {
            return self.queue.front().cloned();
        }
        self.queue.pop_front()
    }

    /// Data that may have held whole messages was lost in either direction.
    pub fn on_loss(&mut self, counters: &mut ParseCounters) {
        self.lose_track(counters);
    }

    /// The connection closed: whatever is still queued was never answered.
    pub fn on_close(&mut self, counters: &mut ParseCounters) {
        counters.unanswered_requests += self.queue.len() as u64;
        self.queue = Outstanding::default();
    }

    fn lose_track(&mut self, counters: &mut ParseCounters) {
        if self.certain {
            // Queued requests may still be answered, so they count as outstanding from now on.
            self.unanswered_seen = u32::try_from(self.queue.len()).unwrap_or(u32::MAX);
            self.certain = false;
        }
        counters.unanswered_requests += self.queue.len() as u64;
        self.queue = Outstanding::default();
    }
}

/// Requests still owed a response, oldest first. The oldest is kept inline, so a connection
/// that does not pipeline never allocates for it.
#[derive(Debug, Default)]
struct Outstanding {
    oldest: Option<Paired>,
    /// Empty whenever `oldest` is None.
    later: VecDeque<Paired>,
}

impl Outstanding {
    fn len(&self) -> usize {
        usize::from(self.oldest.is_some()) + self.later.len()
    }

    fn front(&self) -> Option<&Paired> {
        self.oldest.as_ref()
    }

    fn push_back(&mut self, request: Paired) {
        match self.oldest {
            None => self.oldest = Some(request),
            Some(_) => self.later.push_back(request),
        }
    }

    fn pop_front(&mut self) -> Option<Paired> {
        let oldest = self.oldest.take();
        self.oldest = self.later.pop_front();
        if self.later.is_empty() && self.later.capacity() > 0 {
            // Pipelining is rare and bursty: free the buffer once it drains.
            self.later = VecDeque::new();
        }
        oldest
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn req(p: &mut Pairing, idle: bool, c: &mut ParseCounters) -> Option<u64> {
        p.on_request("GET".into(), "/".into(), 7, idle, c)
    }

    #[test]
    fn fifo_with_interim() {
        let mut c = ParseCounters::default();
        let mut p = Pairing::new(false);
        assert_eq!(req(&mut p, true, &mut c), Some(1));
        assert_eq!(req(&mut p, false, &mut c), Some(2));
        assert_eq!(p.on_response(100).unwrap().exchange, 1);
        assert_eq!(p.on_response(200).unwrap().exchange, 1);
        assert_eq!(p.on_response(200).unwrap().exchange, 2);
        assert_eq!(p.on_response(200), None);
    }

    #[test]
    fn resyncs_only_at_a_safe_point() {
        let mut c = ParseCounters::default();
        let mut p = Pairing::new(true);
        // Response side not observed yet: unsafe.
        assert_eq!(req(&mut p, false, &mut c), None);
        assert_eq!(p.on_response(200), None);
        assert_eq!(req(&mut p, true, &mut c), Some(1));
        assert_eq!(p.on_response(200).unwrap().exchange, 1);
        // A loss with one request queued: the next request makes two outstanding.
        assert_eq!(req(&mut p, true, &mut c), Some(2));
        p.on_loss(&mut c);
        assert_eq!(c.unanswered_requests, 1);
        assert_eq!(req(&mut p, true, &mut c), None);
        assert_eq!(p.on_response(200), None);
        assert_eq!(p.on_response(200), None);
        assert_eq!(
            req(&mut p, true, &mut c),
            None,
            "pipelining suspected: never again"
        );
    }

    #[test]
    fn loss_with_empty_queue_recovers() {
        let mut c = ParseCounters::default();
        let mut p = Pairing::new(false);
        assert_eq!(req(&mut p, true, &mut c), Some(1));
        assert!(p.on_response(200).is_some());
        p.on_loss(&mut c);
        assert_eq!(req(&mut p, false, &mut c), None, "peer mid-message");
        assert_eq!(p.on_response(204), None);
        assert_eq!(req(&mut p, true, &mut c), Some(2));
    }

    #[test]
    fn queue_is_bounded() {
        let mut c = ParseCounters::default();
        let mut p = Pairing::new(false);
        for i in 0..MAX_OUTSTANDING {
            assert_eq!(req(&mut p, true, &mut c), Some(i as u64 + 1));
        }
        assert_eq!(req(&mut p, true, &mut c), None);
        assert_eq!(c.queue_overflows, 1);
        assert_eq!(c.unanswered_requests, MAX_OUTSTANDING as u64);
        assert_eq!(p.on_response(200), None);
        assert_eq!(req(&mut p, true, &mut c), None);
    }
}
