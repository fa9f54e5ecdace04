//! How long the capture loop lets events build up in the ring buffer between drains.

use std::time::{Duration, Instant};

/// Pause between drains while events keep coming. Draining in batches keeps the
/// reader off the ring buffer's shared positions, which every traced syscall
/// touches, and amortises the per-drain work; the pause shrinks when the ring
/// fills fast.
const BATCH_INTERVAL: Duration = Duration::from_millis(10);
/// Records larger than this on average mean bodies are streaming through the
/// ring in bursts that a pause could let overflow it.
const BULK_RECORD_BYTES: u64 = 2048;
/// After a drain of bulk records, how long the reader drains without pausing.
const BULK_QUIET: Duration = Duration::from_secs(1);

/// Decides how long the reader lets events accumulate after each drain.
pub(crate) struct DrainPacer {
    ring_bytes: f64,
    last_drain: Instant,
    last_bulk_drain: Option<Instant>,
}

impl DrainPacer {
    pub(crate) fn new(ring_bytes: f64) -> Self {
        Self {
            ring_bytes,
            last_drain: Instant::now(),
            last_bulk_drain: None,
        }
    }

    /// Call as a drain begins: the bytes it finds built up since the previous one began.
    pub(crate) fn drain_started(&mut self) -> Duration {
        let since_last_drain = self.last_drain.elapsed();
        self.last_drain = Instant::now();
        since_last_drain
    }

    /// The pause after a drain that found `records` records of `drained` bytes in
    /// all, built up over `since_last_drain`: BATCH_INTERVAL for streams of small
    /// records, less when a sixteenth of the ring would fill sooner at that rate,
    /// none while bulk data has flowed within BULK_QUIET.
    pub(crate) fn pause(
        &mut self,
        drained: u64,
        records: u64,
        since_last_drain: Duration,
    ) -> Duration {
        if records == 0 {
            return Duration::ZERO;
        }
        if drained / records > BULK_RECORD_BYTES {
            self.last_bulk_drain = Some(Instant::now());
        }
        if self
            .last_bulk_drain
            .is_some_and(|at| at.elapsed() < BULK_QUIET)
        {
            return Duration::ZERO;
        }
        let rate = drained as f64 / since_last_drain.as_secs_f64().max(1e-6);
        let sixteenth_fill = Duration::from_secs_f64(self.ring_bytes / 16.0 / rate.max(1.0));
        BATCH_INTERVAL.min(sixteenth_fill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RING: f64 = 16.0 * 1024.0 * 1024.0;

    #[test]
    fn small_records_pause_less_when_the_ring_fills_fast() {
        let mut pacer = DrainPacer::new(RING);
        // 64 KiB of small records in 20 ms: a sixteenth of the ring takes 320 ms.
        let slow = pacer.pause(64 << 10, 256, Duration::from_millis(20));
        assert_eq!(slow, BATCH_INTERVAL);
        // 4 MiB of small records in 20 ms: a sixteenth of the ring fills in 5 ms.
        let fast = pacer.pause(4 << 20, 16 << 10, Duration::from_millis(20));
        assert!(
            fast > Duration::from_millis(4) && fast < Duration::from_millis(6),
            "{fast:?}"
        );
        // Nothing drained, or no measurable time: no pause, no division by zero.
        assert_eq!(pacer.pause(0, 0, Duration::from_millis(20)), Duration::ZERO);
        assert!(pacer.pause(8, 1, Duration::ZERO) <= BATCH_INTERVAL);
    }

    #[test]
    fn bulk_records_stop_pausing_for_a_while() {
        let mut pacer = DrainPacer::new(RING);
        assert_eq!(
            pacer.pause(4 << 20, 256, Duration::from_millis(20)),
            Duration::ZERO
        );
        // A drain of small records right after bulk data: still no pause.
        assert_eq!(
            pacer.pause(1 << 10, 8, Duration::from_millis(20)),
            Duration::ZERO
        );
    }
}
