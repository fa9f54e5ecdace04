//! The capture loop: polls the ring buffer and paces its drains, reads the kernel's
//! counters, follows `--container`, and gives freed heap back, until told to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use httpscope_core::event::abi::KernelStat;
use httpscope_core::event::KernelCounters;

use crate::cgroups::ContainerFilter;
use crate::loader::{Capture, CaptureError};
use crate::monotonic_ns;
use crate::pacer::DrainPacer;

const POLL_INTERVAL: Duration = Duration::from_millis(20);
const COUNTER_INTERVAL: Duration = Duration::from_secs(1);
/// How often memory freed inside the heap goes back to the system (see [`release_free_memory`]).
const TRIM_INTERVAL: Duration = Duration::from_secs(10);

/// What the capture loop hands the records and the kernel's counters to.
pub trait CaptureHandler {
    /// The handler's own errors; the loop's are converted into it.
    type Error: From<CaptureError>;

    /// One ring-buffer record, as the kernel wrote it.
    fn record(&mut self, raw: &[u8]);

    /// After each poll's records, at `now_ns` on the monotonic clock.
    fn polled(&mut self, now_ns: u64);

    /// Every second, and once more as the capture stops: the kernel's counters and
    /// the ring buffer's fill since the previous call (the most one poll drained, as
    /// a fraction of the ring).
    fn counters(&mut self, counters: KernelCounters, ring_fill: f64);

    /// An error the handler keeps ends the capture after this poll, without a last drain.
    fn failed(&self) -> bool;

    /// Between polls while capturing; false stops the capture after one last drain.
    fn tick(&mut self) -> Result<bool, Self::Error>;
}

/// When a capture run ends, and what it needs to pace itself.
pub struct RunOptions {
    /// Set (by a signal handler, say) to stop after one last drain.
    pub stop: Arc<AtomicBool>,
    /// Stop after this long; `None`: only `stop` or the handler end the run.
    pub duration: Option<Duration>,
    /// The ring buffer's size, as attached (`CaptureConfig::ring_bytes`).
    pub ring_bytes: u32,
    /// `--container`: rescanned with every read of the counters, so that containers
    /// started since are captured too.
    pub containers: Option<ContainerFilter>,
}

/// What one poll drained.
struct Drained {
    /// Ring bytes, headers and padding included.
    bytes: u64,
    records: u64,
}

impl Capture {
    /// Feeds `handler` until `options.stop` is set, `options.duration` has passed or
    /// the handler stops it, then drains once more so that nothing captured is lost
    /// (not when the handler failed).
    pub fn run<H: CaptureHandler>(
        &mut self,
        mut options: RunOptions,
        handler: &mut H,
    ) -> Result<(), H::Error> {
        let deadline = options.duration.map(|d| Instant::now() + d);
        let ring_bytes = f64::from(options.ring_bytes);
        // Ring buffer fill, estimated: the most bytes one poll drained in the interval.
        let mut max_fill = 0.0f64;
        let mut last_counters = Instant::now();
        let mut dropped_before = 0;
        // What loading the programs and parsing BTF freed goes back first.
        release_free_memory();
        let mut last_trim = Instant::now();
        let mut pacer = DrainPacer::new(ring_bytes);
        loop {
            let stopping = options.stop.load(Ordering::Relaxed)
                || deadline.is_some_and(|d| Instant::now() >= d);
            // One last drain after the stop request, so nothing captured is lost.
            let timeout = if stopping {
                Duration::ZERO
            } else {
                POLL_INTERVAL
            };
            let since_last_drain = pacer.drain_started();
            let drained = self.drain_into(timeout, handler)?;
            max_fill = max_fill.max(drained.bytes as f64 / ring_bytes);
            handler.polled(monotonic_ns());
            if last_counters.elapsed() >= COUNTER_INTERVAL || stopping {
                last_counters = Instant::now();
                self.read_counters(handler, max_fill, &mut dropped_before)?;
                self.follow_containers(&mut options.containers)?;
                max_fill = 0.0;
            }
            if last_trim.elapsed() >= TRIM_INTERVAL {
                last_trim = Instant::now();
                release_free_memory();
            }
            if handler.failed() || stopping {
                return Ok(());
            }
            if !handler.tick()? {
                options.stop.store(true, Ordering::Relaxed);
            }
            let pause = pacer.pause(drained.bytes, drained.records, since_last_drain);
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
        }
    }

    /// One poll, every record handed to `handler`.
    fn drain_into(
        &mut self,
        timeout: Duration,
        handler: &mut impl CaptureHandler,
    ) -> Result<Drained, CaptureError> {
        let mut drained = Drained {
            bytes: 0,
            records: 0,
        };
        self.poll(timeout, &mut |raw| {
            // Each ring record: an 8-byte header, the sample rounded up to 8 bytes.
            drained.bytes += (raw.len() as u64).div_ceil(8) * 8 + 8;
            drained.records += 1;
            handler.record(raw);
        })?;
        Ok(drained)
    }

    /// Hands the kernel's counters to `handler`, and warns when the ring buffer
    /// overflowed since the last read (`dropped_before` events had been dropped then).
    fn read_counters(
        &self,
        handler: &mut impl CaptureHandler,
        ring_fill: f64,
        dropped_before: &mut u64,
    ) -> Result<(), CaptureError> {
        let counters = self.counters()?;
        let dropped = counters.dropped_events();
        if dropped > *dropped_before {
            tracing::warn!(
                dropped,
                bytes = counters.get(KernelStat::DataBytesDropped),
                "the kernel ring buffer overflowed; affected messages are flagged (try a larger --ring-mb)"
            );
        }
        *dropped_before = dropped;
        handler.counters(counters, ring_fill);
        Ok(())
    }

    /// Adds the cgroups of containers that matched `--container` since the last scan.
    fn follow_containers(
        &mut self,
        containers: &mut Option<ContainerFilter>,
    ) -> Result<(), CaptureError> {
        if let Some(filter) = containers {
            filter.rescan();
            self.select_cgroups(&filter.cgroups())?;
        }
        Ok(())
    }
}

/// Gives the heap's free pages back to the system. The allocator keeps what a burst
/// freed (a backlog after the reader was starved, a storm of unpaired messages after
/// drops): measured here, 100 MiB of RSS after such a burst, 42 MiB after this call, so
/// without it RSS shows the worst moment rather than what is live. Takes 6-19 ms with a
/// 100 MiB heap (logged at debug level), every TRIM_INTERVAL.
fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    {
        let started = Instant::now();
        // SAFETY: malloc_trim only returns free heap pages to the kernel; no pointer changes.
        unsafe { libc::malloc_trim(0) };
        tracing::debug!(took_us = started.elapsed().as_micros(), "heap trimmed");
    }
}
