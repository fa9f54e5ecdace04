//! The endpoint table: per (role, protocol, method, route, process, port) counts,
//! errors, bytes, a sliding-window rate, latency histograms and the latest exchanges.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};

use hdrhistogram::Histogram;

use super::observation::Observation;

/// Endpoints kept at most; later ones are summed under [`OTHER_ROUTES`].
pub const MAX_ENDPOINTS: usize = 1000;
pub const OTHER_ROUTES: &str = "(other routes)";
/// Latest exchanges kept per endpoint.
pub const LATEST_EXCHANGES: usize = 8;
/// Width of the sliding rate window, in seconds.
pub const RATE_WINDOW_SECS: i64 = 10;
/// Seconds of per-second counts kept (for sparklines); the rate window is their end.
pub const HISTORY_SECS: i64 = 60;
/// Requests awaiting their response, at most (then the oldest are forgotten).
const MAX_PENDING: usize = 4096;

/// What identifies an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointKey {
    pub role: String,
    /// `1.0`, `1.1`, `h2`, or `grpc` for gRPC calls (over h2).
    pub proto: &'static str,
    pub method: String,
    /// The route (the path when the observation has none).
    pub route: String,
    pub comm: String,
    /// The container's full id; empty outside containers.
    pub container: String,
    pub port: u16,
}

/// One side of an exchange, as shown in the details view.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MessageView {
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub body_truncated: bool,
    pub bytes: u64,
}

/// A finished exchange: the response and, when it was seen, its request.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeView {
    pub unix_ns: i64,
    pub pid: u32,
    pub url: String,
    /// HTTP status; 0 for a gRPC call reset before its response head.
    pub status: u16,
    /// gRPC calls: their `grpc-status`, when they ended with one.
    pub grpc_status: Option<u32>,
    pub latency_ns: u64,
    pub request: Option<MessageView>,
    pub response: MessageView,
}

/// Counters and histograms of one endpoint.
#[derive(Debug, Clone)]
pub struct EndpointStats {
    pub count: u64,
    /// 4xx and 5xx responses; for gRPC, calls whose `grpc-status` is not 0 (or missing).
    pub errors: u64,
    pub status_classes: [u64; 5],
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub latency_us: Histogram<u64>,
    pub first_ns: i64,
    pub last_ns: i64,
    /// Responses per second slot: (second, count), indexed by second % history.
    buckets: [(i64, u32); HISTORY_SECS as usize],
    pub latest: VecDeque<ExchangeView>,
    /// The endpoint these are the stats of (so that [`EndpointTable::observe`] can say).
    key: EndpointKey,
}

impl EndpointStats {
    fn new(key: EndpointKey) -> Self {
        Self {
            key,
            count: 0,
            errors: 0,
            status_classes: [0; 5],
            request_bytes: 0,
            response_bytes: 0,
            latency_us: latency_histogram(),
            first_ns: i64::MAX,
            last_ns: i64::MIN,
            buckets: [(i64::MIN, 0); HISTORY_SECS as usize],
            latest: VecDeque::new(),
        }
    }

    /// Responses per second over the window ending at `now_ns`.
    pub fn rate(&self, now_ns: i64) -> f64 {
        let now = now_ns.div_euclid(1_000_000_000);
        let sum: u64 = self
            .buckets
            .iter()
            .filter(|(sec, _)| *sec > now - RATE_WINDOW_SECS && *sec <= now)
            .map(|(_, n)| u64::from(*n))
            .sum();
        sum as f64 / RATE_WINDOW_SECS as f64
    }

    /// Responses in each of the [`HISTORY_SECS`] seconds ending at `now_ns`, oldest first.
    pub fn history(&self, now_ns: i64) -> [u32; HISTORY_SECS as usize] {
        let now = now_ns.div_euclid(1_000_000_000);
        let mut counts = [0; HISTORY_SECS as usize];
        for (sec, n) in &self.buckets {
            let age = now - sec;
            if (0..HISTORY_SECS).contains(&age) {
                counts[(HISTORY_SECS - 1 - age) as usize] = *n;
            }
        }
        counts
    }

    /// Responses per second from the first to the last one seen (offline view).
    pub fn mean_rate(&self) -> f64 {
        let span = (self.last_ns.saturating_sub(self.first_ns)) as f64 / 1e9;
        if self.count == 0 {
            0.0
        } else if span < 1.0 {
            self.count as f64
        } else {
            self.count as f64 / span
        }
    }

    pub fn error_pct(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.errors as f64 * 100.0 / self.count as f64
        }
    }

    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.latency_us.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn bytes(&self) -> u64 {
        self.request_bytes.saturating_add(self.response_bytes)
    }
}

/// Whether an exchange failed: 4xx and 5xx; for gRPC, a `grpc-status` other than 0 (or none).
pub fn is_failure(grpc: bool, status: u16, grpc_status: Option<u32>) -> bool {
    if grpc {
        grpc_status != Some(0)
    } else {
        status >= 400
    }
}

/// The PROTO column: what a user tells apart at a glance.
fn proto_label(proto: &str, grpc: bool) -> &'static str {
    match (proto, grpc) {
        (_, true) => "grpc",
        ("h2", false) => "h2",
        ("http/1.0", false) => "1.0",
        _ => "1.1",
    }
}

/// 1 µs to 1 hour at 3 significant digits.
fn latency_histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant bounds are valid")
}

/// Every endpoint seen, plus health counters.
#[derive(Debug, Default)]
pub struct EndpointTable {
    endpoints: HashMap<EndpointKey, EndpointStats>,
    pending: HashMap<(u64, u64), MessageView>,
    pending_order: VecDeque<(u64, u64)>,
    pub messages: u64,
    pub partial_messages: u64,
    pub truncated_bodies: u64,
    /// Latest message timestamp: the table's own "now" offline.
    pub latest_ns: i64,
}

impl EndpointTable {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }

    pub fn get(&self, key: &EndpointKey) -> Option<&EndpointStats> {
        self.endpoints.get(key)
    }

    /// Keeps only the endpoints `keep` accepts (the message counters stay whole).
    pub fn retain_endpoints(&mut self, mut keep: impl FnMut(&EndpointKey) -> bool) {
        self.endpoints.retain(|key, _| keep(key));
    }

    /// Endpoints in key order.
    pub fn rows(&self) -> Vec<(&EndpointKey, &EndpointStats)> {
        let mut rows: Vec<_> = self.endpoints.iter().collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        rows
    }

    /// Takes in one message; for a final response, returns the exchange it completed and
    /// the endpoint it was counted under.
    pub fn observe(&mut self, obs: Observation) -> Option<(&EndpointKey, &ExchangeView)> {
        self.messages += 1;
        self.latest_ns = self.latest_ns.max(obs.unix_ns);
        self.partial_messages += u64::from(obs.partial);
        self.truncated_bodies += u64::from(obs.body_truncated);
        let view = MessageView {
            headers: obs.headers,
            body: obs.body,
            body_truncated: obs.body_truncated,
            bytes: obs.wire_bytes,
        };
        if !obs.is_response {
            if let Some(exchange) = obs.exchange {
                self.remember_request((obs.conn, exchange), view);
            }
            return None;
        }
        if obs.interim {
            return None;
        }
        let latency_ns = obs.latency_ns?;
        // A gRPC call reset before its response head has no HTTP status, and is still a call.
        let status = match (obs.status, obs.grpc) {
            (Some(status), _) => status,
            (None, true) => 0,
            (None, false) => return None,
        };
        let failed = is_failure(obs.grpc, status, obs.grpc_status);
        let request = obs
            .exchange
            .and_then(|exchange| self.pending.remove(&(obs.conn, exchange)));
        let route = if obs.route.is_empty() {
            obs.url
                .split(['?', '#'])
                .next()
                .unwrap_or_default()
                .to_owned()
        } else {
            obs.route
        };
        let mut key = EndpointKey {
            role: obs.role,
            proto: proto_label(&obs.proto, obs.grpc),
            method: obs.method,
            route,
            comm: obs.comm,
            container: obs.container,
            port: obs.port,
        };
        if self.endpoints.len() >= MAX_ENDPOINTS && !self.endpoints.contains_key(&key) {
            key.route = OTHER_ROUTES.to_owned();
        }
        let stats = match self.endpoints.entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                let key = entry.key().clone();
                entry.insert(EndpointStats::new(key))
            }
        };
        stats.count += 1;
        stats.errors += u64::from(failed);
        if let Some(slot) = (status / 100)
            .checked_sub(1)
            .and_then(|i| stats.status_classes.get_mut(usize::from(i)))
        {
            *slot += 1;
        }
        stats.request_bytes += request.as_ref().map_or(0, |r| r.bytes);
        stats.response_bytes += view.bytes;
        stats
            .latency_us
            .saturating_record((latency_ns / 1000).max(1));
        stats.first_ns = stats.first_ns.min(obs.unix_ns);
        stats.last_ns = stats.last_ns.max(obs.unix_ns);
        let sec = obs.unix_ns.div_euclid(1_000_000_000);
        let slot = &mut stats.buckets[sec.rem_euclid(HISTORY_SECS) as usize];
        if slot.0 == sec {
            slot.1 = slot.1.saturating_add(1);
        } else if slot.0 < sec {
            *slot = (sec, 1);
        }
        if stats.latest.len() >= LATEST_EXCHANGES {
            stats.latest.pop_front();
        }
        stats.latest.push_back(ExchangeView {
            unix_ns: obs.unix_ns,
            pid: obs.pid,
            url: obs.url,
            status,
            grpc_status: obs.grpc_status,
            latency_ns,
            request,
            response: view,
        });
        let exchange = stats.latest.back()?;
        Some((&stats.key, exchange))
    }

    fn remember_request(&mut self, id: (u64, u64), view: MessageView) {
        if self.pending.len() >= MAX_PENDING {
            while let Some(old) = self.pending_order.pop_front() {
                if self.pending.remove(&old).is_some() {
                    break;
                }
            }
        }
        if self.pending.insert(id, view).is_none() {
            self.pending_order.push_back(id);
        }
        if self.pending_order.len() > 2 * MAX_PENDING {
            let pending = &self.pending;
            self.pending_order.retain(|id| pending.contains_key(id));
        }
    }
}
