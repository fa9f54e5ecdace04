//! Load mode: N keep-alive workers send `GET <path>` for a fixed time.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;
use hyper::{Method, Uri};
use serde::Serialize;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::client::Client;
use crate::Target;

/// Latencies above this are recorded as this (microseconds).
const MAX_LATENCY_US: u64 = 60_000_000;
/// Pause after a failed exchange so a dead target is not hammered in a busy loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(50);

/// Settings of a load test.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Concurrent workers, each one request at a time on a keep-alive connection.
    pub concurrency: u32,
    /// How long to start new requests.
    pub duration: Duration,
    /// Optional limit on the total request rate (requests per second).
    pub rate: Option<f64>,
    /// Path requested with GET.
    pub path: String,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Outcome of a load test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadSummary {
    /// Completed requests, failed ones included.
    pub requests: u64,
    /// Requests that failed to complete or got a status of 400 or above.
    pub errors: u64,
    /// Wall-clock time of the test.
    pub duration_s: f64,
    /// `requests / duration_s`.
    pub rps: f64,
    /// Median latency, in milliseconds, over the requests that got a response.
    pub p50_ms: f64,
    /// 90th percentile latency, in milliseconds.
    pub p90_ms: f64,
    /// 99th percentile latency, in milliseconds.
    pub p99_ms: f64,
    /// Highest latency, in milliseconds.
    pub max_ms: f64,
}

impl fmt::Display for LoadSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "requests: {} in {:.2}s ({:.1} req/s), errors: {}",
            self.requests, self.duration_s, self.rps, self.errors
        )?;
        write!(
            f,
            "latency: p50 {:.3}ms, p90 {:.3}ms, p99 {:.3}ms, max {:.3}ms",
            self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
        )
    }
}

/// What all workers share.
struct Shared {
    client: Client,
    uri: Uri,
    deadline: Instant,
    stop: CancellationToken,
    next_id: AtomicU64,
    requests: AtomicU64,
    errors: AtomicU64,
    latencies: Mutex<Histogram<u64>>,
    first_error: Mutex<Option<String>>,
}

/// Runs a load test (ending early once `stop` is cancelled).
///
/// Request failures are counted in the summary, not returned as errors.
pub async fn run_load(
    target: &Target,
    config: &LoadConfig,
    stop: CancellationToken,
) -> anyhow::Result<LoadSummary> {
    let workers = config.concurrency.max(1);
    let start = Instant::now();
    let shared = Arc::new(Shared {
        client: Client::new(workers as usize, config.timeout),
        uri: target.uri(&config.path)?,
        deadline: start + config.duration,
        stop,
        next_id: AtomicU64::new(1),
        requests: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        latencies: Mutex::new(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)?),
        first_error: Mutex::new(None),
    });
    info!(
        "load test: {workers} workers, GET {} for {:?}{}",
        shared.uri,
        config.duration,
        config
            .rate
            .map(|r| format!(", at most {r} req/s"))
            .unwrap_or_default()
    );

    // Each worker gets an equal share of the rate, with staggered start times.
    let period = config
        .rate
        .and_then(|rate| Duration::try_from_secs_f64(f64::from(workers) / rate).ok());
    let tasks: Vec<_> = (0..workers)
        .map(|i| {
            let pace = period.map(|period| {
                let first = start + period.mul_f64(f64::from(i) / f64::from(workers));
                let mut pace = tokio::time::interval_at(first, period);
                pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
                pace
            });
            tokio::spawn(worker(Arc::clone(&shared), pace))
        })
        .collect();
    for task in tasks {
        task.await?;
    }
    let elapsed = start.elapsed().as_secs_f64();

    if let Some(err) = lock(&shared.first_error).take() {
        warn!("first error: {err}");
    }
    let latencies = lock(&shared.latencies);
    let ms = |us: u64| us as f64 / 1000.0;
    let requests = shared.requests.load(Ordering::Relaxed);
    Ok(LoadSummary {
        requests,
        errors: shared.errors.load(Ordering::Relaxed),
        duration_s: elapsed,
        rps: if elapsed > 0.0 {
            requests as f64 / elapsed
        } else {
            0.0
        },
        p50_ms: ms(latencies.value_at_quantile(0.50)),
        p90_ms: ms(latencies.value_at_quantile(0.90)),
        p99_ms: ms(latencies.value_at_quantile(0.99)),
        max_ms: ms(latencies.max()),
    })
}

async fn worker(shared: Arc<Shared>, mut pace: Option<tokio::time::Interval>) {
    loop {
        if let Some(pace) = &mut pace {
            tokio::select! {
                _ = pace.tick() => {}
                () = tokio::time::sleep_until(shared.deadline) => return,
                () = shared.stop.cancelled() => return,
            }
        }
        if Instant::now() >= shared.deadline || shared.stop.is_cancelled() {
            return;
        }
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (latency, result) = shared.client.send(Method::GET, &shared.uri, id, None).await;
        shared.requests.fetch_add(1, Ordering::Relaxed);
        let failure = match result {
            Ok(status) => {
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                lock(&shared.latencies).saturating_record(micros.max(1));
                (status.as_u16() >= 400).then(|| format!("status {status}"))
            }
            Err(err) => {
                tokio::select! {
                    () = tokio::time::sleep(ERROR_BACKOFF) => {}
                    () = shared.stop.cancelled() => {}
                }
                Some(format!("{err:#}"))
            }
        };
        if let Some(failure) = failure {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            lock(&shared.first_error).get_or_insert(failure);
        }
    }
}

/// Locks `mutex`; a panicked worker cannot leave these values inconsistent.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
