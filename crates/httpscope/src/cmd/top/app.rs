//! `top`'s view state and what each key does to it.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use httpscope_core::analysis::{EndpointKey, EndpointTable};

use super::columns::{matches, sort_rows, Row, SortKey};

/// Which screen is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum View {
    Table,
    /// The latest exchanges of one endpoint.
    Details(EndpointKey),
}

/// Everything the user chose; the data lives in the [`EndpointTable`].
#[derive(Debug, Clone)]
pub struct App {
    pub sort: SortKey,
    pub filter: String,
    /// The filter is being typed.
    pub editing_filter: bool,
    pub selected: usize,
    pub view: View,
    /// Lines scrolled in the details view.
    pub scroll: u16,
    pub quit: bool,
    /// Shown in the title bar (e.g. the watched ports).
    pub title: String,
}

impl App {
    pub fn new(title: String) -> Self {
        Self {
            sort: SortKey::Rate,
            filter: String::new(),
            editing_filter: false,
            selected: 0,
            view: View::Table,
            scroll: 0,
            quit: false,
            title,
        }
    }

    /// The rows shown: filtered, then sorted, with rates taken at `now_ns`.
    pub fn rows<'a>(&self, table: &'a EndpointTable, now_ns: i64) -> Vec<Row<'a>> {
        let mut rows: Vec<Row<'a>> = table
            .rows()
            .into_iter()
            .filter(|(key, _)| matches(&self.filter, key))
            .collect();
        sort_rows(&mut rows, self.sort, &|s| s.rate(now_ns));
        rows
    }

    /// Applies one key press. Returns whether anything changed.
    pub fn on_key(&mut self, key: KeyEvent, table: &EndpointTable, now_ns: i64) -> bool {
        if key.kind == KeyEventKind::Release {
            return false;
        }
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.quit = true;
            return true;
        }
        if self.editing_filter {
            match key.code {
                KeyCode::Enter => self.editing_filter = false,
                KeyCode::Esc => {
                    self.editing_filter = false;
                    self.filter.clear();
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) if self.filter.len() < 64 => self.filter.push(c),
                _ => return false,
            }
            self.selected = 0;
            return true;
        }
        if let View::Details(_) = self.view {
            match key.code {
                KeyCode::Esc | KeyCode::Backspace | KeyCode::Left => {
                    self.view = View::Table;
                    self.scroll = 0;
                }
                KeyCode::Char('q') => self.quit = true,
                KeyCode::Up | KeyCode::Char('k') => self.scroll = self.scroll.saturating_sub(1),
                KeyCode::Down | KeyCode::Char('j') => self.scroll = self.scroll.saturating_add(1),
                KeyCode::PageUp => self.scroll = self.scroll.saturating_sub(10),
                KeyCode::PageDown => self.scroll = self.scroll.saturating_add(10),
                _ => return false,
            }
            return true;
        }
        let shown = self.rows(table, now_ns).len();
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => self.quit = true,
            KeyCode::Char('s') => self.sort = self.sort.next(),
            KeyCode::Char('S') => self.sort = self.sort.prev(),
            KeyCode::Char('/') => self.editing_filter = true,
            KeyCode::Up | KeyCode::Char('k') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Down | KeyCode::Char('j') => {
                self.selected = (self.selected + 1).min(shown.saturating_sub(1));
            }
            KeyCode::Home => self.selected = 0,
            KeyCode::End => self.selected = shown.saturating_sub(1),
            KeyCode::Enter => {
                let rows = self.rows(table, now_ns);
                match rows.get(self.selected) {
                    Some((key, _)) => {
                        self.view = View::Details((*key).clone());
                        self.scroll = 0;
                    }
                    None => return false,
                }
            }
            _ => return false,
        }
        true
    }

    /// Keeps the selection on a shown row after the table changed.
    pub fn clamp_selection(&mut self, shown: usize) {
        self.selected = self.selected.min(shown.saturating_sub(1));
    }
}
