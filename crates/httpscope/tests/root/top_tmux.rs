//! Root end-to-end test: `httpscope top` in a real terminal (tmux), against live
//! demo traffic: the table fills in, keys sort, filter and open details, `q`
//! quits and the terminal is given back in its normal state.

use std::process::Command;
use std::time::{Duration, Instant};

use macro_rules_attribute::apply;

use crate::support::*;

/// A private tmux server, killed when dropped.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "top"];
        args.extend_from_slice(keys);
        self.run(&args);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }

    /// Waits until the screen satisfies `ok`; returns it.
    fn wait(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .arg("kill-server")
            .status();
    }
}

/// The row of an HTTP/1.1 endpoint: ROLE, PROTO, METHOD and ROUTE side by side.
fn row<'a>(screen: &'a str, role: &str, method: &str, path: &str) -> Option<&'a str> {
    screen.lines().find(|l| {
        let words: Vec<&str> = l.split_whitespace().collect();
        words.windows(4).any(|w| w == [role, "1.1", method, path])
    })
}

/// COUNT: the row's last whole number (the sparkline after it has no digits).
fn count(row: &str) -> Option<u64> {
    row.split_whitespace().rev().find_map(|w| w.parse().ok())
}

/// The details view's histogram rows (`≤    0.25 ms      12 ████`): (count, bar length).
fn histogram_rows(screen: &str) -> Vec<(u64, usize)> {
    screen
        .lines()
        .filter(|l| l.starts_with('≤') || l.starts_with("     more"))
        .filter_map(|l| {
            let (_, rest) = l.split_once(" ms ")?;
            let mut words = rest.split_whitespace();
            let n = words.next()?.parse().ok()?;
            let bar = words
                .next()
                .map_or(0, |w| w.chars().filter(|c| *c == '█').count());
            Some((n, bar))
        })
        .collect()
}

#[apply(root_test!)]
fn top_shows_live_endpoints_and_restores_the_terminal() {
    assert!(
        Command::new("tmux")
            .arg("-V")
            .status()
            .is_ok_and(|s| s.success()),
        "tmux is missing (scripts/setup.sh --test)"
    );
    let (_server, port) = demo_server(&[]);
    let dir = TempDir::new();
    let tmux = Tmux {
        socket: format!("httpscope-test-{}", std::process::id()),
    };
    tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "160",
        "-y",
        "40",
        "env PS1='$ ' bash --norc --noprofile",
    ]);
    let command = format!(
        "RUST_LOG=info {} top --port {port} 2>{}; echo TOP-EXIT=$?",
        bin("httpscope").display(),
        dir.path.join("top.err").display()
    );
    tmux.keys(&[&command, "Enter"]);
    tmux.wait("the top screen", |s| {
        s.contains("httpscope top") && s.contains("PROCESS")
    });

    let status = Command::new(bin("demo-traffic"))
        .env("HTTP_PORT", port.to_string())
        .env("TOTAL_REQUESTS", "20")
        .env("REQUEST_DELAY_MS", "0")
        .status()
        .unwrap();
    assert!(status.success(), "demo-traffic failed");
    let screen = tmux.wait("all 8 endpoints with 20 exchanges each", |s| {
        ["client", "server"].iter().all(|role| {
            [
                ("GET", "/"),
                ("GET", "/healthz"),
                ("GET", "/slow"),
                ("POST", "/echo"),
            ]
            .iter()
            .all(|(m, p)| row(s, role, m, p).is_some_and(|r| count(r) == Some(20)))
        })
    });
    eprintln!("captured top screen:\n{screen}");
    assert!(screen.contains("kernel_drops=0"), "{screen}");
    let slow = row(&screen, "server", "GET", "/slow").unwrap();
    assert!(slow.contains("demo-server"), "{slow}");
    // The rate sparkline after COUNT: the last minute's traffic, in block characters.
    assert!(screen.contains("LAST 60s"), "{screen}");
    let spark = slow.rsplit(" 20 ").next().unwrap();
    assert!(spark.chars().any(|c| ('▁'..='█').contains(&c)), "{slow}");
    std::fs::write(dir.path.join("screen.txt"), &screen).unwrap();

    tmux.keys(&["s"]);
    tmux.wait("sort by COUNT", |s| s.contains("sort: COUNT"));
    tmux.keys(&["/", "healthz", "Enter"]);
    // The screen is redrawn often: wait for a whole frame, not the first line of one.
    // (A timeout here, with /slow still listed, is a filter that did not filter.)
    tmux.wait("the healthz filter hiding /slow", |s| {
        s.contains("endpoints: 2/8")
            && row(s, "server", "GET", "/healthz").is_some()
            && row(s, "server", "GET", "/slow").is_none()
    });
    tmux.keys(&["Down", "Enter"]);
    let details = tmux.wait("the details view with its histogram", |s| {
        s.contains("latest first") && histogram_rows(s).iter().map(|(n, _)| n).sum::<u64>() == 20
    });
    assert!(
        details.contains("/healthz") && details.contains("\"status\":\"ok\""),
        "{details}"
    );
    assert!(
        details.contains("< content-type: application/json"),
        "{details}"
    );
    // The latency histogram beside the exchanges: a bar per bucket, counting all 20.
    assert!(details.contains("latency, n=20"), "{details}");
    let bars = histogram_rows(&details);
    assert!(!bars.is_empty(), "{details}");
    assert_eq!(bars.iter().map(|(n, _)| n).sum::<u64>(), 20, "{details}");
    assert!(
        bars.iter().all(|(n, bar)| (*n > 0) == (*bar > 0)),
        "{details}"
    );
    tmux.keys(&["Escape"]);
    tmux.wait("the table again", |s| s.contains("PROCESS"));
    tmux.keys(&["q"]);
    // The typed command holds "TOP-EXIT=$?" too: wait for the line echo prints.
    let after = tmux.wait("top to exit", |s| {
        s.lines().any(|l| l.starts_with("TOP-EXIT="))
    });
    assert!(
        after.lines().any(|l| l.trim_end() == "TOP-EXIT=0"),
        "{after}"
    );
    // The alternate screen is gone: the shell's own screen is back.
    assert!(
        !after.contains("PROCESS") && after.contains("top --port"),
        "{after}"
    );
    // Raw mode is off and the cursor is shown again.
    tmux.keys(&[
        "stty -a | tr ' ' '\\n' | grep -x -e icanon -e echo | tr '\\n' ,; echo STTY-$((1+1))",
        "Enter",
    ]);
    let stty = tmux.wait("stty", |s| s.contains("STTY-2"));
    assert!(
        stty.contains("icanon,echo,STTY-2"),
        "terminal not restored: {stty}"
    );
    assert_eq!(
        tmux.run(&["display-message", "-p", "-t", "top", "#{cursor_flag}"])
            .trim(),
        "1"
    );
    let log = std::fs::read_to_string(dir.path.join("top.err")).unwrap();
    assert!(
        log.contains("attached") && log.contains("httpscope top: 8 endpoints"),
        "{log}"
    );
}
