//! Drawing `top`: a pure function of the view state, the endpoint table, the
//! counters and a clock, so tests render it into ratatui's `TestBackend`.

use httpscope_core::analysis::{EndpointKey, EndpointTable, ExchangeView, MessageView};
use httpscope_core::event::abi::KernelStat;
use httpscope_core::stats::Report;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::app::{App, View};
use super::columns::{clock, Columns};
use super::shapes::{histogram_lines, sparkline};

/// Body characters shown per message in the details view.
const BODY_PREVIEW: usize = 400;
/// The rate sparkline's column: 60 s in 15 characters of 4 s each.
const SPARK_HEADER: &str = "LAST 60s";
const SPARK_WIDTH: u16 = 15;
/// The details view's histogram panel, and its bars' longest.
const HISTOGRAM_WIDTH: u16 = 46;
const HISTOGRAM_BAR: usize = 20;

/// Draws the whole screen. `now_ns` is the Unix time rates are taken at.
pub fn draw(frame: &mut Frame<'_>, app: &App, table: &EndpointTable, report: &Report, now_ns: i64) {
    let [title, main, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(2),
    ])
    .areas(frame.area());
    let rows = app.rows(table, now_ns);
    let title_text = format!(
        " httpscope top  {}  sort: {}  filter: {}{}  endpoints: {}/{}",
        app.title,
        app.sort.label(),
        if app.filter.is_empty() && !app.editing_filter {
            "-"
        } else {
            &app.filter
        },
        if app.editing_filter { "_" } else { "" },
        rows.len(),
        table.len()
    );
    frame.render_widget(
        Paragraph::new(title_text).style(Style::default().add_modifier(Modifier::REVERSED)),
        title,
    );
    match &app.view {
        View::Table => draw_table(frame, main, app, &rows, now_ns),
        View::Details(key) => draw_details(frame, main, app, table, key),
    }
    draw_status(frame, status, app, table, report);
}

/// The selected endpoint: its latency histogram beside its latest exchanges.
fn draw_details(
    frame: &mut Frame<'_>,
    area: Rect,
    app: &App,
    table: &EndpointTable,
    key: &EndpointKey,
) {
    let [heading, body] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(area);
    let [histogram, latest] =
        Layout::horizontal([Constraint::Length(HISTOGRAM_WIDTH), Constraint::Min(1)]).areas(body);
    frame.render_widget(
        Paragraph::new(format!(
            "{} {} {} {}:{}  (latest first; Esc back, ↑/↓ scroll)",
            key.role, key.method, key.route, key.comm, key.port
        ))
        .style(Style::default().add_modifier(Modifier::BOLD)),
        heading,
    );
    let Some(stats) = table.get(key) else {
        frame.render_widget(Paragraph::new("(no exchanges)"), body);
        return;
    };
    let mut bars = vec![Line::styled(
        format!("latency, n={}", stats.count),
        Style::default().add_modifier(Modifier::BOLD),
    )];
    bars.extend(
        histogram_lines(stats, HISTOGRAM_BAR)
            .into_iter()
            .map(Line::raw),
    );
    frame.render_widget(Paragraph::new(bars), histogram);
    let mut lines = Vec::new();
    for exchange in stats.latest.iter().rev() {
        exchange_lines(exchange, &mut lines);
    }
    frame.render_widget(Paragraph::new(lines).scroll((app.scroll, 0)), latest);
}

fn draw_table(
    frame: &mut Frame<'_>,
    area: Rect,
    app: &App,
    rows: &[super::columns::Row<'_>],
    now_ns: i64,
) {
    let columns = Columns::for_rows(rows);
    let mut headers = columns.headers();
    let mut widths = columns.widths();
    // The sparkline only where it fits beside the full table (borders: a space a column,
    // two for the highlight symbol).
    let needed: u16 = widths.iter().map(|w| w + 1).sum::<u16>() + 2 + SPARK_WIDTH;
    let spark = area.width >= needed;
    if spark {
        headers.push(SPARK_HEADER);
        widths.push(SPARK_WIDTH);
    }
    let header = Row::new(headers.into_iter().map(|h| {
        let style = if h.starts_with(app.sort.label()) {
            Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED)
        } else {
            Style::default().add_modifier(Modifier::BOLD)
        };
        Cell::from(h).style(style)
    }));
    let body = rows.iter().map(|(key, stats)| {
        let mut cells = columns.cells(key, stats, stats.rate(now_ns));
        if spark {
            cells.push(sparkline(&stats.history(now_ns), usize::from(SPARK_WIDTH)));
        }
        let row = Row::new(cells);
        if stats.errors > 0 {
            row.style(Style::default().fg(Color::Red))
        } else {
            row
        }
    });
    let route_column = columns.route_column();
    let widths = widths.into_iter().enumerate().map(|(i, w)| {
        if i == route_column {
            Constraint::Min(w)
        } else {
            Constraint::Length(w)
        }
    });
    let table = Table::new(body, widths)
        .header(header)
        .row_highlight_style(Style::default().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(if rows.is_empty() {
        None
    } else {
        Some(app.selected.min(rows.len() - 1))
    });
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_status(
    frame: &mut Frame<'_>,
    area: Rect,
    app: &App,
    table: &EndpointTable,
    report: &Report,
) {
    let kernel = &report.kernel;
    let drops = kernel.dropped_events();
    let health = format!(
        " events={} records={} kernel_drops={} truncated_syscalls={} partial={} truncated_bodies={} parse_errors={}",
        report.pipeline.events,
        table.messages,
        drops,
        kernel.get(KernelStat::SyscallsTruncated),
        table.partial_messages,
        table.truncated_bodies,
        report.parse.parse_errors,
    );
    let style = if drops > 0 {
        Style::default().fg(Color::Black).bg(Color::Yellow)
    } else {
        Style::default()
    };
    let help = if app.editing_filter {
        " filter: type process, port or route words; Enter apply, Esc clear"
    } else {
        " q quit  s/S sort  / filter  ↑/↓ select  Enter details  Esc back"
    };
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(Span::styled(health, style)),
            Line::styled(help, Style::default().add_modifier(Modifier::DIM)),
        ]),
        area,
    );
}

fn exchange_lines(exchange: &ExchangeView, lines: &mut Vec<Line<'static>>) {
    lines.push(Line::raw(""));
    let grpc = exchange
        .grpc_status
        .map(|code| format!(" grpc-status {code}"))
        .unwrap_or_default();
    lines.push(Line::styled(
        format!(
            "{} pid {}  {}  -> {}{grpc}  {:.2} ms",
            clock(exchange.unix_ns),
            exchange.pid,
            exchange.url,
            exchange.status,
            exchange.latency_ns as f64 / 1e6
        ),
        Style::default().add_modifier(Modifier::BOLD),
    ));
    match &exchange.request {
        Some(request) => message_lines("> ", request, lines),
        None => lines.push(Line::raw("> (request not seen)")),
    }
    message_lines("< ", &exchange.response, lines);
}

fn message_lines(prefix: &str, message: &MessageView, lines: &mut Vec<Line<'static>>) {
    for (name, value) in &message.headers {
        lines.push(Line::raw(format!(
            "{prefix}{name}: {}",
            printable(value, 200)
        )));
    }
    if !message.body.is_empty() {
        let cut = if message.body_truncated || message.body.chars().count() > BODY_PREVIEW {
            " [truncated]"
        } else {
            ""
        };
        lines.push(Line::raw(format!(
            "{prefix}{}{cut}",
            printable(&message.body, BODY_PREVIEW)
        )));
    }
}

/// At most `max` characters, control characters (newlines, escapes) made visible.
fn printable(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { '·' } else { c })
        .collect()
}
