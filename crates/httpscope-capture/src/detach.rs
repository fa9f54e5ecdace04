//! Detaching the uprobes quickly: closing a uprobe_multi link waits for an RCU grace
//! period (tasks-trace RCU), and closes one after another wait for one each. Closed from
//! many threads at once, the waits overlap. (Perf-event uprobes gain nothing from this:
//! the kernel closes them one at a time under one lock.)

use std::time::Instant;

/// Threads that close links at most; each takes an equal share.
const CLOSERS: usize = 64;

/// Drops every item of `links` (links: each drop detaches its probes), from up to
/// [`CLOSERS`] threads at once, and returns when all are dropped.
pub(crate) fn close_in_parallel<L: Send>(mut links: Vec<L>) {
    if links.is_empty() {
        return;
    }
    let started = Instant::now();
    let count = links.len();
    let share = count.div_ceil(CLOSERS);
    std::thread::scope(|scope| {
        while !links.is_empty() {
            let batch: Vec<L> = links.split_off(links.len().saturating_sub(share));
            // A thread that cannot start drops its share here, one link after another.
            let spawned = std::thread::Builder::new()
                .name("detach".into())
                .spawn_scoped(scope, move || drop(batch));
            if let Err(err) = spawned {
                tracing::debug!(%err, "closing links on this thread");
            }
        }
    });
    tracing::debug!(
        links = count,
        ms = started.elapsed().as_secs_f64() * 1e3,
        "uprobes detached"
    );
}
