//! What a live capture feeds: the event file, the pipeline and its sinks, the
//! integrations' health, and the front end's hooks.

use httpscope_capture::CaptureHandler;
use httpscope_core::event::KernelCounters;
use httpscope_core::pipeline::Pipeline;
use httpscope_core::stats::Report;

use super::saver::EventSaver;
use super::CaptureHooks;
use crate::integrations::Integrations;

pub(super) struct Recorder<'a> {
    pipeline: Pipeline,
    saver: Option<EventSaver>,
    integrations: Integrations,
    hooks: &'a mut dyn CaptureHooks,
    /// The first error of the event file or the pipeline: it ends the capture.
    failure: Option<anyhow::Error>,
    /// The cost ladder's stage 6: records are drained and dropped, only counted.
    drop_records: bool,
    dropped: u64,
}

impl CaptureHandler for Recorder<'_> {
    type Error = anyhow::Error;

    fn record(&mut self, raw: &[u8]) {
        if self.drop_records {
            self.dropped += 1;
            return;
        }
        if self.failure.is_some() {
            return;
        }
        if let Some(saver) = self.saver.as_mut() {
            if let Err(err) = saver.write(raw) {
                self.failure = Some(err);
                return;
            }
        }
        if let Err(err) = self.pipeline.process_raw(raw) {
            self.failure = Some(anyhow::Error::new(err));
        }
    }

    fn polled(&mut self, now_ns: u64) {
        if let Err(err) = self.pipeline.tick(now_ns) {
            self.failure.get_or_insert(anyhow::Error::new(err));
        }
    }

    fn counters(&mut self, counters: KernelCounters, ring_fill: f64) {
        self.pipeline.set_kernel_counters(counters);
        self.integrations.update_health(
            self.pipeline.report(),
            self.pipeline.connections(),
            Some(ring_fill),
        );
    }

    fn failed(&self) -> bool {
        self.failure.is_some()
    }

    fn tick(&mut self) -> anyhow::Result<bool> {
        self.hooks.tick(&self.pipeline)
    }
}

impl<'a> Recorder<'a> {
    pub(super) fn new(
        pipeline: Pipeline,
        saver: Option<EventSaver>,
        integrations: Integrations,
        hooks: &'a mut dyn CaptureHooks,
    ) -> Self {
        Self {
            pipeline,
            saver,
            integrations,
            hooks,
            failure: None,
            drop_records: false,
            dropped: 0,
        }
    }

    /// The cost ladder's stage 6: each record is counted and dropped, never decoded.
    pub(super) fn dropping_records(mut self, drop: bool) -> Self {
        self.drop_records = drop;
        self
    }

    /// Once capture has detached: closes the event file, then flushes the sinks.
    pub(super) fn finish(self) -> anyhow::Result<Report> {
        if let Some(saver) = self.saver {
            saver.finish(&self.pipeline.report().kernel)?;
        }
        if let Some(err) = self.failure {
            return Err(err.context("capture stopped"));
        }
        if self.drop_records {
            tracing::info!(
                records = self.dropped,
                "cost ladder: ring records dropped unread"
            );
        }
        Ok(self.pipeline.finish()?)
    }
}
