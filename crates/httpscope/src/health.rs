//! Whether capture is attached and its reader draining, for `/healthz` and `/readyz`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Ready while the reader has drained the ring buffer this recently (it reports about
/// once a second).
const READY_WITHIN: Duration = Duration::from_secs(5);
/// Alive while the reader has drained this recently: longer, so that a busy node's slow
/// second does not restart the agent.
const LIVE_WITHIN: Duration = Duration::from_secs(30);

/// Shared between the capture loop, which reports, and the metrics thread, which answers.
pub struct Health {
    started: Instant,
    /// Milliseconds since `started` at the last drain, plus one; 0 before the first.
    last_drain: AtomicU64,
    detached: AtomicBool,
}

impl Health {
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            last_drain: AtomicU64::new(0),
            detached: AtomicBool::new(false),
        }
    }

    /// The capture loop drained the ring buffer (so it is attached).
    pub fn drained(&self) {
        self.drained_at(Instant::now());
    }

    fn drained_at(&self, now: Instant) {
        let ms = now.saturating_duration_since(self.started).as_millis();
        let ms = u64::try_from(ms).unwrap_or(u64::MAX - 1) + 1;
        self.last_drain.store(ms, Ordering::Relaxed);
    }

    /// Capture stopped: the agent is on its way out.
    pub fn detached(&self) {
        self.detached.store(true, Ordering::Relaxed);
    }

    fn since_drain(&self, now: Instant) -> Option<Duration> {
        match self.last_drain.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(now.saturating_duration_since(self.started + Duration::from_millis(ms - 1))),
        }
    }

    /// `/readyz`: Ok while attached and draining, else why not.
    pub fn readiness(&self, now: Instant) -> Result<String, String> {
        if self.detached.load(Ordering::Relaxed) {
            return Err("stopping: capture is detached".into());
        }
        match self.since_drain(now) {
            None => Err("starting: capture is not attached yet".into()),
            Some(ago) if ago > READY_WITHIN => Err(format!(
                "stalled: the ring buffer was last drained {:.1} s ago",
                ago.as_secs_f64()
            )),
            Some(ago) => Ok(format!(
                "ready: attached, drained {:.1} s ago",
                ago.as_secs_f64()
            )),
        }
    }

    /// `/healthz`: Ok unless the reader stopped draining while attached.
    pub fn liveness(&self, now: Instant) -> Result<String, String> {
        match self.since_drain(now) {
            Some(ago) if ago > LIVE_WITHIN && !self.detached.load(Ordering::Relaxed) => {
                Err(format!(
                    "stuck: the ring buffer was last drained {:.0} s ago",
                    ago.as_secs_f64()
                ))
            }
            _ => Ok("alive".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ready_only_while_attached_and_draining() {
        let health = Health::new();
        let t0 = health.started;
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        assert!(health.readiness(at(1)).unwrap_err().starts_with("starting"));
        assert!(
            health.liveness(at(100)).is_ok(),
            "a slow attach is not a dead agent"
        );
        health.drained_at(at(2));
        assert!(health.readiness(at(3)).is_ok());
        assert!(health.readiness(at(8)).unwrap_err().starts_with("stalled"));
        assert!(health.liveness(at(8)).is_ok());
        assert!(health.liveness(at(40)).unwrap_err().starts_with("stuck"));
        health.drained_at(at(41));
        assert!(health.readiness(at(42)).is_ok());
        health.detached();
        assert!(health
            .readiness(at(42))
            .unwrap_err()
            .starts_with("stopping"));
        assert!(health.liveness(at(400)).is_ok(), "stopping is not stuck");
    }
}
