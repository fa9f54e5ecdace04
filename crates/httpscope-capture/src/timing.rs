//! Timings of the start and the stop, logged at debug level: where the seconds of
//! "start to attached" and "signal to exit" go.

use std::time::Instant;

/// Runs `work` and logs how long `what` took (debug level).
pub(crate) fn timed<T>(what: &str, work: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let result = work();
    tracing::debug!(ms = started.elapsed().as_secs_f64() * 1e3, "{what}");
    result
}
