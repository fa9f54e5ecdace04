//! The endpoint table's columns, sorting and filtering, shared by `top` and `stats`.

use httpscope_core::analysis::{EndpointKey, EndpointStats};

const HEADERS: [&str; 14] = [
    "PROCESS",
    "CONTAINER",
    "PORT",
    "ROLE",
    "PROTO",
    "METHOD",
    "ROUTE",
    "REQ/S",
    "ERR%",
    "P50ms",
    "P90ms",
    "P99ms",
    "BYTES",
    "COUNT",
];

/// Column widths in characters (ROUTE takes what is left in the TUI).
const WIDTHS: [u16; 14] = [14, 12, 5, 6, 5, 7, 28, 7, 6, 8, 8, 8, 7, 7];
const CONTAINER_COLUMN: usize = 1;
/// Where ROUTE is; it and the columns before it are text (left-aligned), the rest numbers.
const ROUTE_COLUMN: usize = 6;
/// The CONTAINER column shows this many characters of the id, as `docker ps` does.
const SHORT_ID: usize = 12;

pub type Row<'a> = (&'a EndpointKey, &'a EndpointStats);

/// What the table is sorted by (largest first, except ROUTE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Rate,
    Count,
    Errors,
    P50,
    P90,
    P99,
    Bytes,
    Route,
}

impl SortKey {
    const ALL: [SortKey; 8] = [
        SortKey::Rate,
        SortKey::Count,
        SortKey::Errors,
        SortKey::P50,
        SortKey::P90,
        SortKey::P99,
        SortKey::Bytes,
        SortKey::Route,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SortKey::Rate => "REQ/S",
            SortKey::Count => "COUNT",
            SortKey::Errors => "ERR%",
            SortKey::P50 => "P50",
            SortKey::P90 => "P90",
            SortKey::P99 => "P99",
            SortKey::Bytes => "BYTES",
            SortKey::Route => "ROUTE",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(0)
    }

    pub fn next(self) -> Self {
        Self::ALL[(self.index() + 1) % Self::ALL.len()]
    }

    pub fn prev(self) -> Self {
        Self::ALL[(self.index() + Self::ALL.len() - 1) % Self::ALL.len()]
    }
}

/// Sorts rows by `key`, ties broken by endpoint key so the order is stable.
pub fn sort_rows(rows: &mut [Row<'_>], key: SortKey, rate: &dyn Fn(&EndpointStats) -> f64) {
    let metric = |s: &EndpointStats| -> f64 {
        match key {
            SortKey::Rate => rate(s),
            SortKey::Count => s.count as f64,
            SortKey::Errors => s.error_pct(),
            SortKey::P50 => s.quantile_ms(0.5),
            SortKey::P90 => s.quantile_ms(0.9),
            SortKey::P99 => s.quantile_ms(0.99),
            SortKey::Bytes => s.bytes() as f64,
            SortKey::Route => 0.0,
        }
    };
    rows.sort_by(|a, b| {
        metric(b.1)
            .total_cmp(&metric(a.1))
            .then_with(|| (&a.0.route, a.0).cmp(&(&b.0.route, b.0)))
    });
}

/// Whether an endpoint matches every whitespace-separated word of `filter`:
/// a word matches the process name or route (substring, any case), the protocol
/// (`h2`, `grpc`, `1.1`), the beginning of the container id, or the port.
pub fn matches(filter: &str, key: &EndpointKey) -> bool {
    filter.split_whitespace().all(|word| {
        let word_lower = word.to_ascii_lowercase();
        let port = word.trim_start_matches(':');
        key.comm.to_ascii_lowercase().contains(&word_lower)
            || key.route.to_ascii_lowercase().contains(&word_lower)
            || key.proto == word_lower
            || in_container(key, &word_lower)
            || port.parse::<u16>().is_ok_and(|p| p == key.port)
    })
}

/// Whether the endpoint is in a container whose id starts with `prefix` (lowercase).
pub fn in_container(key: &EndpointKey, prefix: &str) -> bool {
    !key.container.is_empty() && !prefix.is_empty() && key.container.starts_with(prefix)
}

/// The columns a table shows: CONTAINER only when an endpoint is in a container.
#[derive(Debug, Clone, Copy)]
pub struct Columns {
    container: bool,
}

impl Columns {
    pub fn for_rows(rows: &[Row<'_>]) -> Self {
        Self {
            container: rows.iter().any(|(key, _)| !key.container.is_empty()),
        }
    }

    fn shown(self) -> impl Iterator<Item = usize> {
        (0..HEADERS.len()).filter(move |&i| self.container || i != CONTAINER_COLUMN)
    }

    pub fn headers(self) -> Vec<&'static str> {
        self.shown().map(|i| HEADERS[i]).collect()
    }

    pub fn widths(self) -> Vec<u16> {
        self.shown().map(|i| WIDTHS[i]).collect()
    }

    /// ROUTE's position: the columns up to it are text (left-aligned), the rest numbers.
    pub fn route_column(self) -> usize {
        self.shown().position(|i| i == ROUTE_COLUMN).unwrap_or(0)
    }

    /// The cells of one row, in [`Columns::headers`] order.
    pub fn cells(self, key: &EndpointKey, stats: &EndpointStats, rate: f64) -> Vec<String> {
        let mut all = cells(key, stats, rate).map(Some);
        self.shown().filter_map(|i| all[i].take()).collect()
    }
}

/// Every cell of one row, in [`HEADERS`] order.
fn cells(key: &EndpointKey, stats: &EndpointStats, rate: f64) -> [String; 14] {
    [
        key.comm.clone(),
        match key.container.get(..SHORT_ID) {
            Some(short) => short.to_owned(),
            None if key.container.is_empty() => "-".to_owned(),
            None => key.container.clone(),
        },
        key.port.to_string(),
        key.role.clone(),
        key.proto.to_owned(),
        key.method.clone(),
        key.route.clone(),
        format!("{rate:.1}"),
        format!("{:.1}", stats.error_pct()),
        format!("{:.2}", stats.quantile_ms(0.5)),
        format!("{:.2}", stats.quantile_ms(0.9)),
        format!("{:.2}", stats.quantile_ms(0.99)),
        human_bytes(stats.bytes()),
        stats.count.to_string(),
    ]
}

/// 999, 1.2K, 3.4M, 5.6G.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["K", "M", "G", "T"];
    if bytes < 1000 {
        return bytes.to_string();
    }
    let mut value = bytes as f64;
    let mut unit = "";
    for u in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = u;
    }
    format!("{value:.1}{unit}")
}

/// `HH:MM:SS.mmm` UTC of a Unix time in ns.
pub fn clock(unix_ns: i64) -> String {
    let ms = unix_ns.div_euclid(1_000_000);
    let secs = ms.div_euclid(1000);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs.rem_euclid(86_400) / 3600,
        secs.rem_euclid(3600) / 60,
        secs.rem_euclid(60),
        ms.rem_euclid(1000)
    )
}
