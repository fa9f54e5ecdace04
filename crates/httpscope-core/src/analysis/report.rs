//! The data behind `httpscope report`: the endpoint table, plus requests and errors over
//! time per (role, method, route), the status and gRPC status mixes, and the slowest
//! exchanges with their heads.

use std::collections::{BTreeMap, HashMap};

use super::observation::Observation;
use super::sink::Observer;
use super::table::{is_failure, EndpointKey, EndpointTable, ExchangeView};

/// Slowest exchanges kept.
pub const SLOWEST: usize = 20;
/// Time resolution of the series: short captures still get a curve.
const TICK_NS: i64 = 100_000_000;

/// Requests and errors of one (role, method, route) over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `server GET /users/{id}`
    pub label: String,
    pub total: u64,
    /// Unix time in ticks → (requests, errors).
    per_tick: BTreeMap<i64, (u64, u64)>,
}

/// One exchange among the slowest, with the endpoint it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct SlowExchange {
    pub key: EndpointKey,
    pub exchange: ExchangeView,
}

/// Series binned for a chart: `bin_secs` wide bins from `start_ns`.
#[derive(Debug, Clone, PartialEq)]
pub struct Binned {
    pub start_ns: i64,
    pub bin_secs: f64,
    /// Per bin: (requests per second, errors per second).
    pub points: Vec<(f64, f64)>,
}

#[derive(Debug, Default)]
pub struct ReportData {
    pub table: EndpointTable,
    series: Vec<Series>,
    /// Endpoint → its series (endpoints of several processes share one).
    series_of: HashMap<EndpointKey, usize>,
    /// HTTP status → final responses.
    pub statuses: BTreeMap<u16, u64>,
    /// gRPC calls by `grpc-status` (None: ended without one).
    pub grpc_statuses: BTreeMap<Option<u32>, u64>,
    /// Slowest first.
    pub slowest: Vec<SlowExchange>,
    pub first_ns: Option<i64>,
    pub last_ns: Option<i64>,
}

impl Observer for ReportData {
    fn observe(&mut self, obs: Observation) {
        let Some((key, exchange)) = self.table.observe(obs) else {
            return;
        };
        let grpc = key.proto == "grpc";
        let failed = is_failure(grpc, exchange.status, exchange.grpc_status);
        if grpc {
            *self.grpc_statuses.entry(exchange.grpc_status).or_default() += 1;
        }
        if exchange.status != 0 {
            *self.statuses.entry(exchange.status).or_default() += 1;
        }
        self.first_ns = Some(
            self.first_ns
                .map_or(exchange.unix_ns, |t| t.min(exchange.unix_ns)),
        );
        self.last_ns = Some(
            self.last_ns
                .map_or(exchange.unix_ns, |t| t.max(exchange.unix_ns)),
        );
        let index = match self.series_of.get(key) {
            Some(index) => *index,
            None => {
                let index = series_index(&mut self.series, key);
                self.series_of.insert(key.clone(), index);
                index
            }
        };
        let series = &mut self.series[index];
        series.total += 1;
        let slot = series
            .per_tick
            .entry(exchange.unix_ns.div_euclid(TICK_NS))
            .or_default();
        slot.0 += 1;
        slot.1 += u64::from(failed);
        let slow_enough = self.slowest.len() < SLOWEST
            || self
                .slowest
                .last()
                .is_some_and(|s| s.exchange.latency_ns < exchange.latency_ns);
        if slow_enough {
            let at = self
                .slowest
                .partition_point(|s| s.exchange.latency_ns >= exchange.latency_ns);
            self.slowest.insert(
                at,
                SlowExchange {
                    key: key.clone(),
                    exchange: exchange.clone(),
                },
            );
            self.slowest.truncate(SLOWEST);
        }
    }
}

/// The series of `key`'s (role, method, route), created when new.
fn series_index(series: &mut Vec<Series>, key: &EndpointKey) -> usize {
    let label = format!("{} {} {}", key.role, key.method, key.route);
    if let Some(index) = series.iter().position(|s| s.label == label) {
        return index;
    }
    series.push(Series {
        label,
        total: 0,
        per_tick: BTreeMap::new(),
    });
    series.len() - 1
}

impl ReportData {
    /// The `n` busiest series, busiest first.
    pub fn top_series(&self, n: usize) -> Vec<&Series> {
        let mut series: Vec<&Series> = self.series.iter().collect();
        series.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.label.cmp(&b.label)));
        series.truncate(n);
        series
    }

    /// `series` over the whole report's time span in at most `max_points` bins (of whole
    /// ticks), as rates per second.
    pub fn binned(&self, series: &Series, max_points: usize) -> Binned {
        let (Some(first), Some(last)) = (self.first_ns, self.last_ns) else {
            return Binned {
                start_ns: 0,
                bin_secs: 1.0,
                points: Vec::new(),
            };
        };
        let start = first.div_euclid(TICK_NS);
        let span = last.div_euclid(TICK_NS) - start + 1;
        let max_points = max_points.max(1) as i64;
        let bin_ticks = (span + max_points - 1) / max_points;
        let bins = (span + bin_ticks - 1) / bin_ticks;
        let bin_secs = (bin_ticks * TICK_NS) as f64 / 1e9;
        let mut points = vec![(0.0, 0.0); bins as usize];
        // The last bin may cover fewer ticks: its rate is over what it covers.
        let last_secs = ((span - (bins - 1) * bin_ticks) * TICK_NS) as f64 / 1e9;
        for (tick, (requests, errors)) in &series.per_tick {
            let bin = ((tick - start) / bin_ticks).clamp(0, bins - 1);
            let secs = if bin == bins - 1 { last_secs } else { bin_secs };
            let point = &mut points[bin as usize];
            point.0 += *requests as f64 / secs;
            point.1 += *errors as f64 / secs;
        }
        Binned {
            start_ns: start * TICK_NS,
            bin_secs,
            points,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(conn: u64, url: &str, route: &str, status: u16, ms: u64, ts_s: i64) -> Observation {
        Observation {
            unix_ns: ts_s * 1_000_000_000,
            is_response: true,
            role: "server".into(),
            comm: "api".into(),
            conn,
            exchange: Some(1),
            port: 8080,
            method: "GET".into(),
            url: url.into(),
            route: route.into(),
            status: Some(status),
            latency_ns: Some(ms * 1_000_000),
            ..Observation::default()
        }
    }

    #[test]
    fn series_statuses_and_slowest() {
        let mut data = ReportData::default();
        for i in 0..100u64 {
            let status = if i % 4 == 0 { 500 } else { 200 };
            let ts = (i / 10) as i64;
            data.observe(exchange(i, &format!("/u/{i}"), "/u/{id}", status, i, ts));
        }
        data.observe(exchange(1000, "/h", "/h", 200, 1, 9));
        assert_eq!(data.statuses, BTreeMap::from([(200, 76), (500, 25)]));
        let top = data.top_series(5);
        assert_eq!(
            top.iter()
                .map(|s| (s.label.as_str(), s.total))
                .collect::<Vec<_>>(),
            [("server GET /u/{id}", 100), ("server GET /h", 1)]
        );
        // 9.1 s in 5 bins: 19 ticks each, the last shorter.
        let binned = data.binned(top[0], 5);
        assert_eq!((binned.bin_secs, binned.points.len()), (1.9, 5));
        // Seconds 0 and 1 fall in the first bin (ticks 0 to 18): 20 requests, 5 of them errors.
        let (requests, errors) = binned.points[0];
        assert!((requests - 20.0 / 1.9).abs() < 1e-9 && (errors - 5.0 / 1.9).abs() < 1e-9);
        assert_eq!(data.binned(top[0], 1000).points.len(), 91);
        // The last bin covers 15 ticks (7.6 s to 9.0 s): the 20 requests of seconds 8 and 9.
        let (last, _) = binned.points[4];
        assert!((last - 20.0 / 1.5).abs() < 1e-9, "{last}");
        let slow: Vec<u64> = data
            .slowest
            .iter()
            .map(|s| s.exchange.latency_ns / 1_000_000)
            .collect();
        assert_eq!(slow, (80..100).rev().collect::<Vec<_>>());
        assert_eq!(data.slowest[0].exchange.url, "/u/99");
    }

    #[test]
    fn grpc_statuses_are_counted_apart() {
        let mut data = ReportData::default();
        for (status, grpc_status) in [(200, Some(0)), (200, Some(14)), (200, None)] {
            data.observe(Observation {
                proto: "h2".into(),
                grpc: true,
                grpc_status,
                ..exchange(1, "/pkg.S/M", "/pkg.S/M", status, 1, 0)
            });
        }
        assert_eq!(
            data.grpc_statuses,
            BTreeMap::from([(None, 1), (Some(0), 1), (Some(14), 1)])
        );
        assert_eq!(data.table.rows()[0].1.errors, 2);
    }
}
