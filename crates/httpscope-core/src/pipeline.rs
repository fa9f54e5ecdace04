//! The pipeline: kernel events in, HTTP records out to every sink.
//!
//! Time comes only from event timestamps (and `tick`), so replaying a trace
//! is deterministic and tests need no sleeps.

use std::sync::Arc;
use std::time::Duration;

use crate::cgroup::CgroupNames;
use crate::conn::{ConnInfo, ConnTable, Connection};
use crate::event::{decode, ConnOrigin, DataEvent, KernelEvent};
use crate::http::{DataChunk, Emit, HttpConfig, HttpConnection, Outbox, Protocol};
use crate::record::ExchangeRecord;
use crate::redact::Redactor;
use crate::route::{RouteRules, Routes};
use crate::sink::{Sink, SinkError};
use crate::stats::{KernelCounters, PipelineCounters, Report};

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub http: HttpConfig,
    pub max_connections: usize,
    /// Connections silent this long are closed (their state is dropped).
    pub idle_timeout: Duration,
    /// Add to a CLOCK_MONOTONIC timestamp to get Unix time in ns.
    pub wall_clock_offset_ns: i64,
    /// Applied to every message before any sink sees it.
    pub redactor: Redactor,
    /// How each message's route is made (user templates, cap).
    pub routes: RouteRules,
    /// Off only for the benchmark's cost ladder: events are decoded and their
    /// connections kept, their bytes never parsed.
    pub parse_http: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            http: HttpConfig::default(),
            max_connections: 100_000,
            idle_timeout: Duration::from_secs(300),
            wall_clock_offset_ns: 0,
            redactor: Redactor::default(),
            routes: RouteRules::default(),
            parse_http: true,
        }
    }
}

const FLUSH_INTERVAL_NS: u64 = 1_000_000_000;

pub struct Pipeline {
    config: PipelineConfig,
    conns: ConnTable,
    sinks: Vec<Box<dyn Sink>>,
    report: Report,
    messages: Outbox,
    routes: Routes,
    last_flush_ns: u64,
    last_idle_scan_ns: u64,
    latest_ts_ns: u64,
    cgroups: Option<Box<dyn CgroupNames>>,
}

impl Pipeline {
    pub fn new(config: PipelineConfig, sinks: Vec<Box<dyn Sink>>) -> Self {
        Self {
            conns: ConnTable::new(config.max_connections),
            routes: Routes::new(&config.routes),
            config,
            sinks,
            report: Report::default(),
            messages: Outbox::default(),
            last_flush_ns: 0,
            last_idle_scan_ns: 0,
            latest_ts_ns: 0,
            cgroups: None,
        }
    }

    /// Names each connection's cgroup (and container) from its kernel cgroup id.
    pub fn with_cgroups(mut self, cgroups: Box<dyn CgroupNames>) -> Self {
        self.cgroups = Some(cgroups);
        self
    }

    pub fn report(&self) -> &Report {
        &self.report
    }

    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// The kernel's counters, as last read (live) or as recorded (replay).
    pub fn set_kernel_counters(&mut self, counters: KernelCounters) {
        self.report.kernel = counters;
    }

    /// Decodes and processes one raw ring-buffer record; bad records are counted.
    pub fn process_raw(&mut self, raw: &[u8]) -> Result<(), SinkError> {
        match decode(raw) {
            Ok(event) => self.process(event),
            Err(err) => {
                self.report.pipeline.decode_errors += 1;
                tracing::debug!(%err, "undecodable kernel record");
                Ok(())
            }
        }
    }

    pub fn process(&mut self, event: KernelEvent<'_>) -> Result<(), SinkError> {
        let counters = &mut self.report.pipeline;
        counters.events += 1;
        match event {
            KernelEvent::Data(data) => self.on_data(&data)?,
            KernelEvent::ConnOpen(open) => {
                self.latest_ts_ns = self.latest_ts_ns.max(open.header.ts_ns);
                let mut info = ConnInfo::from_open(&open);
                if let (Some(cgroups), 1..) = (&mut self.cgroups, open.cgroup_id) {
                    info.cgroup = cgroups.name(open.cgroup_id);
                }
                match self.conns.get_mut(info.conn_id) {
                    // Data raced ahead of a retried open event: fill in the addresses.
                    Some(conn) => {
                        let (tls, tls_lib) = (conn.info.tls, conn.info.tls_lib);
                        conn.info = info;
                        conn.info.tls = tls;
                        conn.info.tls_lib = tls_lib;
                    }
                    None => self.open(info, open.header.ts_ns)?,
                }
            }
            KernelEvent::ConnClose(close) => {
                self.latest_ts_ns = self.latest_ts_ns.max(close.header.ts_ns);
                self.close(close.header.conn_id, close.header.ts_ns)?;
                self.report.pipeline.connections_closed += 1;
            }
            KernelEvent::ProcessExit(exit) => {
                self.latest_ts_ns = self.latest_ts_ns.max(exit.header.ts_ns);
                for conn_id in self.conns.of_process(exit.header.tgid) {
                    self.close(conn_id, exit.header.ts_ns)?;
                    self.report.pipeline.connections_closed += 1;
                }
            }
        }
        self.tick(self.latest_ts_ns)
    }

    fn open(&mut self, info: ConnInfo, ts_ns: u64) -> Result<(), SinkError> {
        if self.conns.is_full() {
            if let Some(oldest) = self.conns.least_recently_seen() {
                self.close(oldest, ts_ns)?;
                self.report.pipeline.connections_evicted += 1;
            }
        }
        self.report.pipeline.connections_opened += 1;
        let mid_stream = info.origin == ConnOrigin::Existing;
        self.conns.insert(Connection {
            info,
            http: HttpConnection::new(mid_stream),
            tls_http: None,
            last_seen_ns: ts_ns,
            last_tid: 0,
            protocol_reported: false,
            last_route: None,
        });
        Ok(())
    }

    fn on_data(&mut self, data: &DataEvent<'_>) -> Result<(), SinkError> {
        let header = &data.header;
        self.latest_ts_ns = self.latest_ts_ns.max(header.ts_ns);
        self.report.pipeline.data_bytes += data.len;
        let conn = match self.conns.get_mut(header.conn_id) {
            Some(conn) => conn,
            None => {
                self.report.pipeline.connections_without_open += 1;
                self.open(ConnInfo::unknown(header.conn_id, header.tgid), header.ts_ns)?;
                let Some(conn) = self.conns.get_mut(header.conn_id) else {
                    return Ok(());
                };
                conn
            }
        };
        conn.last_seen_ns = header.ts_ns;
        conn.last_tid = header.tid;
        let unix_ns = (header.ts_ns as i64).saturating_add(self.config.wall_clock_offset_ns);
        for sink in &mut self.sinks {
            sink.data(&conn.info, data, unix_ns)?;
        }
        if !self.config.parse_http {
            return Ok(());
        }
        let chunk = DataChunk {
            direction: data.direction,
            offset: data.stream_offset,
            len: data.len,
            data: data.data,
            elided: data.elided,
        };
        let engine = if data.tls {
            // TLS plaintext: its own stream, apart from the ciphertext the syscalls saw.
            conn.info.tls = true;
            conn.info.tls_lib = data.syscall.tls_lib().or(conn.info.tls_lib);
            let mid_stream = conn.info.origin == ConnOrigin::Existing;
            conn.tls_http
                .get_or_insert_with(|| Box::new(HttpConnection::new(mid_stream)))
        } else {
            &mut conn.http
        };
        let mut cx = Emit::new(
            &self.config.http,
            &mut self.report.parse,
            &mut self.messages,
            header.ts_ns,
        );
        engine.on_data(&chunk, &mut cx);
        if !conn.protocol_reported {
            report_protocol(conn, &mut self.report.pipeline);
        }
        if self.messages.is_empty() {
            return Ok(());
        }
        write_records(
            &mut self.sinks,
            &mut self.messages,
            &mut self.report.pipeline,
            &self.config,
            &mut self.routes,
            conn,
            header.tid,
        )
    }

    fn close(&mut self, conn_id: u64, ts_ns: u64) -> Result<(), SinkError> {
        let Some(mut conn) = self.conns.remove(conn_id) else {
            return Ok(());
        };
        let mut cx = Emit::new(
            &self.config.http,
            &mut self.report.parse,
            &mut self.messages,
            ts_ns,
        );
        conn.http.on_close(&mut cx);
        if let Some(tls_http) = conn.tls_http.as_mut() {
            tls_http.on_close(&mut cx);
        }
        let last_tid = conn.last_tid;
        let result = write_records(
            &mut self.sinks,
            &mut self.messages,
            &mut self.report.pipeline,
            &self.config,
            &mut self.routes,
            &mut conn,
            last_tid,
        );
        let unix_ns = (ts_ns as i64).saturating_add(self.config.wall_clock_offset_ns);
        for sink in &mut self.sinks {
            sink.closed(&conn.info, unix_ns)?;
        }
        result
    }

    /// Periodic work at monotonic time `now_ns`: flush sinks, close idle connections.
    pub fn tick(&mut self, now_ns: u64) -> Result<(), SinkError> {
        if now_ns.saturating_sub(self.last_idle_scan_ns) >= FLUSH_INTERVAL_NS {
            self.last_idle_scan_ns = now_ns;
            let timeout = self.config.idle_timeout.as_nanos() as u64;
            let cutoff = now_ns.saturating_sub(timeout);
            for conn_id in self.conns.idle_since(cutoff) {
                self.close(conn_id, now_ns)?;
                self.report.pipeline.connections_evicted += 1;
            }
        }
        if now_ns.saturating_sub(self.last_flush_ns) >= FLUSH_INTERVAL_NS {
            self.last_flush_ns = now_ns;
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), SinkError> {
        for sink in &mut self.sinks {
            sink.flush()?;
        }
        Ok(())
    }

    /// Ends capture: still-open connections end as seen (incomplete messages are flagged).
    pub fn finish(mut self) -> Result<Report, SinkError> {
        let end = self.latest_ts_ns;
        for conn_id in self.conns.ids() {
            self.close(conn_id, end)?;
        }
        for sink in &mut self.sinks {
            sink.finish(&self.report)?;
        }
        Ok(self.report)
    }
}

/// Counts HTTP/2 connections, and logs once per connection traffic on a watched port that is
/// not HTTP.
fn report_protocol(conn: &mut Connection, counters: &mut PipelineCounters) {
    let protocol = match &conn.tls_http {
        // The plaintext of this connection was captured from the TLS library.
        Some(tls_http) => tls_http.protocol(),
        None => conn.http.protocol(),
    };
    let (counter, what) = match protocol {
        Protocol::Http2 => {
            // Decoded like HTTP/1: counted, nothing to warn about.
            counters.connections_http2 += 1;
            conn.protocol_reported = true;
            return;
        }
        Protocol::Tls => (
            &mut counters.connections_tls,
            "TLS: the plaintext is not visible to syscalls",
        ),
        Protocol::Other => (&mut counters.connections_other, "not HTTP"),
        Protocol::Unknown | Protocol::Http1 | Protocol::Tunnel => return,
    };
    *counter += 1;
    conn.protocol_reported = true;
    let info = &conn.info;
    tracing::warn!(
        conn = info.conn_id,
        pid = info.tgid,
        comm = %info.comm,
        local = %info.local,
        remote = %info.remote,
        protocol = protocol.as_str(),
        "traffic on a watched port is not HTTP ({what}); its bytes are counted, not logged"
    );
}

/// Redacts each message and finds its route, then hands it to every sink; the first sink
/// error is returned.
fn write_records(
    sinks: &mut [Box<dyn Sink>],
    messages: &mut Outbox,
    counters: &mut PipelineCounters,
    config: &PipelineConfig,
    routes: &mut Routes,
    conn: &mut Connection,
    tid: u32,
) -> Result<(), SinkError> {
    let role = match &conn.tls_http {
        Some(tls_http) => tls_http.role(),
        None => conn.http.role(),
    };
    let mut result = Ok(());
    // Borrowed in place rather than moved out: a move copies the whole message.
    for message in messages.messages_mut() {
        config.redactor.apply(message);
        let route = message.url.as_ref().map(|url| match &conn.last_route {
            Some((seen, route)) if Arc::ptr_eq(seen, url) => Arc::clone(route),
            _ => {
                let route = routes.route(url, message.grpc.is_some());
                conn.last_route = Some((Arc::clone(url), Arc::clone(&route)));
                route
            }
        });
        let record = ExchangeRecord {
            unix_ns: (message.first_ts_ns as i64).saturating_add(config.wall_clock_offset_ns),
            tid,
            conn: &conn.info,
            role,
            message,
            route: route.as_deref(),
        };
        counters.records += 1;
        for sink in sinks.iter_mut() {
            if let Err(err) = sink.record(&record) {
                result = result.and(Err(err));
            }
        }
    }
    messages.recycle();
    result
}
