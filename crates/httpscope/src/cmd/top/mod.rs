//! `httpscope top`: a live terminal view of endpoints (ratatui + crossterm).
//!
//! Single-threaded: the capture loop polls the ring buffer every 20 ms and
//! calls [`TopHooks::tick`] in between, which reads keys without blocking and
//! redraws at most every 250 ms (ratatui diffs frames: no flicker).

mod app;
pub(crate) mod columns;
mod render;
mod shapes;
mod terminal;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::io::{self, Write};
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossterm::event::{self, Event};
use httpscope_core::analysis::{EndpointSink, EndpointTable, SharedTable};
use httpscope_core::pipeline::Pipeline;
use httpscope_core::sink::Sink;

use super::record::{capture, require_privileges, CaptureHooks};
use crate::cli::RecordArgs;
use crate::output::{open_log, sinks};
use app::App;
use terminal::TerminalGuard;

const REDRAW_INTERVAL: Duration = Duration::from_millis(250);

pub fn run(args: &RecordArgs) -> anyhow::Result<ExitCode> {
    if !require_privileges() {
        return Ok(ExitCode::from(2));
    }
    let table: SharedTable = Rc::new(RefCell::new(EndpointTable::new()));
    let mut all_sinks: Vec<Box<dyn Sink>> = vec![Box::new(EndpointSink::new(Rc::clone(&table)))];
    if args.output.output.is_some() {
        let mut output = args.output.clone();
        output.no_summary = true;
        all_sinks.extend(sinks(&output, open_log(&output, "-", false)?));
    }
    let ports = args.watched_ports();
    let title = if ports.is_empty() {
        "all ports".to_string()
    } else {
        format!(
            "ports {}",
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    let mut hooks = TopHooks {
        table: Rc::clone(&table),
        app: App::new(title),
        guard: None,
        last_draw: None,
    };
    let result = capture(args, all_sinks, &mut hooks);
    drop(hooks.guard.take());
    let report = result?;
    let table = table.borrow();
    let _ = writeln!(
        io::stderr(),
        "httpscope top: {} endpoints, {} records, {} events, {} kernel drops",
        table.len(),
        table.messages,
        report.pipeline.events,
        report.kernel.dropped_events()
    );
    Ok(ExitCode::SUCCESS)
}

struct TopHooks {
    table: SharedTable,
    app: App,
    guard: Option<TerminalGuard>,
    last_draw: Option<Instant>,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl CaptureHooks for TopHooks {
    fn shows_messages(&self) -> bool {
        true
    }

    fn attached(&mut self) -> anyhow::Result<()> {
        self.guard = Some(TerminalGuard::enter()?);
        Ok(())
    }

    fn tick(&mut self, pipeline: &Pipeline) -> anyhow::Result<bool> {
        let Some(guard) = self.guard.as_mut() else {
            return Ok(true);
        };
        let now = now_ns();
        let table = self.table.borrow();
        let mut changed = false;
        while event::poll(Duration::ZERO)? {
            match event::read()? {
                Event::Key(key) => changed |= self.app.on_key(key, &table, now),
                Event::Resize(..) => changed = true,
                _ => {}
            }
            if self.app.quit {
                return Ok(false);
            }
        }
        let due = self
            .last_draw
            .is_none_or(|t| t.elapsed() >= REDRAW_INTERVAL);
        if changed || due {
            let shown = self.app.rows(&table, now).len();
            self.app.clamp_selection(shown);
            guard.terminal.draw(|frame| {
                render::draw(frame, &self.app, &table, pipeline.report(), now);
            })?;
            self.last_draw = Some(Instant::now());
        }
        Ok(true)
    }
}
