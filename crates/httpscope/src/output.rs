//! Opens the output and builds the sinks both record and replay feed.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use httpscope_core::http::{HeaderFields, HttpConfig};
use httpscope_core::redact::{HeaderNames, Redactor};
use httpscope_core::sink::{LineFormat, LineSink, Sink, SummarySink};

use crate::cli::{Format, OutputArgs};

/// Opens `path` for appending (creating it 0600 and its directory), or stdout for `-`.
pub fn open_output(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    if path == Path::new("-") {
        return Ok(Box::new(io::stdout()));
    }
    Ok(Box::new(open_append(path)?))
}

/// Like [`open_output`], and a file is reopened at its path after SIGHUP: logrotate's
/// `postrotate` convention, for the long-running capture.
pub fn open_reopenable_output(path: &Path) -> anyhow::Result<Box<dyn Write>> {
    if path == Path::new("-") {
        return Ok(Box::new(io::stdout()));
    }
    let hangup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hangup))
        .context("installing the SIGHUP handler")?;
    Ok(Box::new(ReopeningFile {
        file: open_append(path)?,
        path: path.to_owned(),
        hangup,
    }))
}

fn open_append(path: &Path) -> anyhow::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot write output {}: creating directory {}",
                path.display(),
                dir.display()
            )
        })?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "cannot write output {}: opening it for appending",
                path.display()
            )
        })
}

/// An output file that moves to a new file at its path once `hangup` is set. The switch
/// happens only in `flush`, which the line sink calls between whole lines, so every line
/// lands whole in the old file or the new one.
struct ReopeningFile {
    file: File,
    path: PathBuf,
    hangup: Arc<AtomicBool>,
}

impl ReopeningFile {
    fn reopen(&mut self) {
        match open_append(&self.path) {
            Ok(file) => {
                self.file = file;
                tracing::info!(output = %self.path.display(), "SIGHUP: output reopened");
            }
            // Writing on to the rotated file loses nothing; the next SIGHUP tries again.
            Err(err) => tracing::warn!("SIGHUP: {err:#}; still writing to the old file"),
        }
    }
}

impl Write for ReopeningFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.hangup.swap(false, Ordering::Relaxed) {
            self.reopen();
        }
        Ok(())
    }
}

pub fn output_path(args: &OutputArgs, default: &str) -> PathBuf {
    args.output
        .clone()
        .unwrap_or_else(|| PathBuf::from(default))
}

/// The log `--output` names (`default` when none is given), or `None` for no log;
/// `reopen_on_hangup` for the long-running capture.
pub fn open_log(
    args: &OutputArgs,
    default: &str,
    reopen_on_hangup: bool,
) -> anyhow::Result<Option<Box<dyn Write>>> {
    if !log_wanted(args) {
        return Ok(None);
    }
    let path = output_path(args, default);
    let out = if reopen_on_hangup {
        open_reopenable_output(&path)?
    } else {
        open_output(&path)?
    };
    Ok(Some(out))
}

/// `--output none` (or `/dev/null`): no log at all, not a file of that name, and no
/// line formatted only to be thrown away. Metrics, OTLP and the summary still run.
fn log_wanted(args: &OutputArgs) -> bool {
    !args
        .output
        .as_deref()
        .is_some_and(|path| path == Path::new("none") || path == Path::new("/dev/null"))
}

/// Whether an output keeps message bytes: a log, or a pcap file. Without one (and without
/// an event file or a live view), only metrics and traces are wanted: metrics mode.
pub fn output_keeps_bytes(args: &OutputArgs) -> bool {
    log_wanted(args) || args.integrations.pcap.is_some()
}

/// What reads the finished messages, which decides what the pipeline keeps of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A front end shows whole messages (`top`'s details): bodies, wire bytes and every
    /// header field, whatever the output.
    LiveView,
    /// A log, a pcap or an event file: bodies and wire bytes, and the header fields the
    /// log shows (JSON all of them). A logfmt line shows none: only those the redactor
    /// hides are kept, to redact `raw` by.
    Everything,
    /// Metrics mode: nothing keeps a body or wire bytes (`--output none`, no pcap, no
    /// event file). The kernel copies heads and frames, not bodies; the pipeline keeps
    /// no body, no raw bytes and no header fields.
    MetricsOnly,
}

/// What the pipeline keeps of each message, for `purpose`; `redactor` is the pipeline's,
/// whose header names a logfmt log keeps.
pub fn http_config(args: &OutputArgs, purpose: Purpose, redactor: &Redactor) -> HttpConfig {
    let header_fields = match (purpose, args.format) {
        (Purpose::MetricsOnly, _) => {
            return HttpConfig {
                body_limit: 0,
                raw_limit: 0,
                header_fields: HeaderFields::Only(HeaderNames::none()),
                ..HttpConfig::default()
            };
        }
        (Purpose::LiveView, _) | (Purpose::Everything, Format::Json) => HeaderFields::All,
        (Purpose::Everything, Format::Logfmt) => {
            HeaderFields::Only(redactor.header_names().clone())
        }
    };
    HttpConfig {
        body_limit: args.body_limit as usize,
        raw_limit: args.raw_limit as usize,
        header_fields,
        ..HttpConfig::default()
    }
}

/// The log's sink (when `out` is given) and the summary's.
pub fn sinks(args: &OutputArgs, out: Option<Box<dyn Write>>) -> Vec<Box<dyn Sink>> {
    let format = match args.format {
        Format::Logfmt => LineFormat::Logfmt,
        Format::Json => LineFormat::Json,
    };
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(out) = out {
        sinks.push(Box::new(LineSink::new(out, format)));
    }
    if !args.no_summary {
        sinks.push(Box::new(SummarySink::new(io::stderr())));
    }
    sinks
}

pub fn redactor(args: &OutputArgs) -> Redactor {
    if args.no_redact {
        tracing::warn!(
            "--no-redact: credentials and cookies will be written to the output in clear text"
        );
    }
    Redactor::new(!args.no_redact, &args.redact, !args.no_body)
}

/// Creates (or truncates) a file readable by its owner only: captures hold secrets.
pub fn create_private(path: &Path, what: &str) -> anyhow::Result<std::fs::File> {
    OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {what} {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_hangup_moves_writing_to_a_new_file_at_the_next_flush() {
        let dir = std::env::temp_dir().join(format!("httpscope-reopen-{}", std::process::id()));
        let path = dir.join("out.log");
        let rotated = dir.join("out.log.1");
        let hangup = Arc::new(AtomicBool::new(false));
        let mut out = ReopeningFile {
            file: open_append(&path).unwrap(),
            path: path.clone(),
            hangup: Arc::clone(&hangup),
        };
        out.write_all(b"one\n").unwrap();
        fs::rename(&path, &rotated).unwrap();
        hangup.store(true, Ordering::Relaxed);
        // Until the flush, writing goes on into the file that was renamed.
        out.write_all(b"two\n").unwrap();
        out.flush().unwrap();
        out.write_all(b"three\n").unwrap();
        out.flush().unwrap();
        assert_eq!(fs::read_to_string(&rotated).unwrap(), "one\ntwo\n");
        assert_eq!(fs::read_to_string(&path).unwrap(), "three\n");
        fs::remove_dir_all(&dir).unwrap();
    }
}
