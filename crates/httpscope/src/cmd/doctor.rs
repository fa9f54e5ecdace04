//! `httpscope doctor`: what works here, and what each missing piece costs.

use std::process::ExitCode;

use httpscope_capture::doctor::{run_checks, Check};

pub fn run() -> ExitCode {
    let checks = run_checks();
    print(&checks);
    if checks.iter().any(|c| c.required && !c.ok) {
        ExitCode::from(2)
    } else {
        println!("httpscope can capture on this machine.");
        ExitCode::SUCCESS
    }
}

pub fn print(checks: &[Check]) {
    for check in checks {
        let mark = if check.ok {
            "ok  "
        } else if check.required {
            "FAIL"
        } else {
            "warn"
        };
        println!("[{mark}] {:<20} {}", check.name, check.detail);
        if !check.ok {
            println!("       without it: {}", check.cost);
        }
    }
}

/// The failed checks, one per line, for error messages.
pub fn describe_failures(checks: &[Check]) -> String {
    checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {} ({})", c.name, c.detail, c.cost))
        .collect::<Vec<_>>()
        .join("; ")
}
