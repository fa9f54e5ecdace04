//! Entering and leaving the full-screen terminal, on every way out: normal
//! exit, error, signal (the capture loop stops and the guard drops) and panic.
//!
//! While the screen is up, stderr (log lines) goes to /dev/null so it cannot
//! scribble over the view; it is restored with the terminal.

use std::io::{self, Stdout};
use std::os::fd::AsRawFd;
use std::sync::Mutex;

use crossterm::cursor::{Hide, Show};
use crossterm::execute;
use crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;

/// The saved stderr descriptor, while it points at /dev/null.
static SAVED_STDERR: Mutex<Option<i32>> = Mutex::new(None);

pub struct TerminalGuard {
    pub terminal: Terminal<CrosstermBackend<Stdout>>,
}

impl TerminalGuard {
    pub fn enter() -> anyhow::Result<Self> {
        install_panic_hook();
        enable_raw_mode()?;
        if let Err(err) = execute!(io::stdout(), EnterAlternateScreen, Hide) {
            restore();
            return Err(err.into());
        }
        silence_stderr();
        let mut terminal = match Terminal::new(CrosstermBackend::new(io::stdout())) {
            Ok(terminal) => terminal,
            Err(err) => {
                restore();
                return Err(err.into());
            }
        };
        terminal.clear()?;
        Ok(Self { terminal })
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Leaves the alternate screen, shows the cursor, ends raw mode, gives stderr back.
pub fn restore() {
    let _ = execute!(io::stdout(), LeaveAlternateScreen, Show);
    let _ = disable_raw_mode();
    if let Ok(mut saved) = SAVED_STDERR.lock() {
        if let Some(fd) = saved.take() {
            // SAFETY: fd is our own dup of the original stderr; 2 stays open.
            unsafe {
                libc::dup2(fd, 2);
                libc::close(fd);
            }
        }
    }
}

fn silence_stderr() {
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    // SAFETY: dup/dup2 on descriptors we own or on 2; failures leave stderr as it is.
    let saved = unsafe { libc::dup(2) };
    if saved < 0 {
        return;
    }
    if unsafe { libc::dup2(null.as_raw_fd(), 2) } < 0 {
        // SAFETY: saved is ours.
        unsafe { libc::close(saved) };
        return;
    }
    if let Ok(mut slot) = SAVED_STDERR.lock() {
        *slot = Some(saved);
    }
}

fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore();
        previous(info);
    }));
}
