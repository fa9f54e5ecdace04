//! `httpscope report` rendered by a real browser (headless Chromium): the DOM it builds
//! holds every endpoint's route, histogram bars and time-series points, and its
//! screenshot is a non-blank image of the requested size. No root needed.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::matrix::run;
use crate::support::{httpscope_ok, skip_unless_ci, TempDir};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 1600;

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|name| {
        Command::new(name)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Chromium on `page` with a fresh profile and nothing reaching out to the network.
fn browse(browser: &str, profile: &Path, page: &Path, action: &[String]) -> String {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(action)
    .arg(format!("file://{}", page.display()));
    let out = run(&mut cmd, Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every `(attribute value)` of `name="…"` in `html`, in order.
fn attributes<'a>(html: &'a str, tag: &str, name: &str) -> Vec<&'a str> {
    html.split(&format!("<{tag} "))
        .skip(1)
        .filter_map(|element| {
            let element = element.split('>').next()?;
            let start = element.find(&format!("{name}=\""))? + name.len() + 2;
            element[start..].split('"').next()
        })
        .collect()
}

fn check_dom(dom: &str, fixture: &str) {
    let stats: Value = serde_json::from_str(&httpscope_ok(&[
        "stats",
        "--json",
        crate::support::fixture(fixture).to_str().unwrap(),
    ]))
    .unwrap();
    let endpoints = stats["endpoints"].as_array().unwrap();
    assert!(!endpoints.is_empty());
    let rows = attributes(dom, "tr", "data-route");
    assert_eq!(
        rows.len(),
        endpoints.len(),
        "{fixture}: one row per endpoint"
    );
    for endpoint in endpoints {
        let route = endpoint["route"].as_str().unwrap();
        assert!(rows.contains(&route), "{fixture}: {route} missing");
    }
    let bars: Vec<u64> = attributes(dom, "rect", "data-count")
        .iter()
        .map(|n| n.parse().unwrap())
        .collect();
    let counted: u64 = endpoints.iter().map(|e| e["count"].as_u64().unwrap()).sum();
    assert_eq!(
        bars.iter().sum::<u64>(),
        counted,
        "{fixture}: bars count every exchange"
    );
    let lines = attributes(dom, "polyline", "points");
    assert!(!lines.is_empty(), "{fixture}: no time series");
    for points in lines {
        assert!(points.split(' ').count() >= 2, "{fixture}: {points}");
    }
    for reference in ["src=", "href=", "<link", "url(", "@import"] {
        assert!(
            !dom.contains(reference),
            "{fixture}: {reference} would fetch"
        );
    }
}

/// (width, height, share of pixels that are not the most common colour).
fn screenshot_stats(path: &Path) -> (u32, u32, f64) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let step = info.color_type.samples();
    let mut counts = std::collections::HashMap::new();
    for pixel in bytes.chunks(step) {
        *counts.entry(&pixel[..3]).or_insert(0u64) += 1;
    }
    let total = (bytes.len() / step) as f64;
    let common = counts.values().max().copied().unwrap_or(0) as f64;
    (info.width, info.height, 1.0 - common / total)
}

#[test]
fn report_renders_in_headless_chromium() {
    let Some(browser) = chromium() else {
        skip_unless_ci(
            "report_renders_in_headless_chromium",
            "chromium is missing (scripts/setup.sh --test)",
        );
        return;
    };
    let dir = TempDir::new();
    for fixture in ["demo-traffic", "curl-bodies", "grpc-python"] {
        let page = dir.path.join(format!("{fixture}.html"));
        httpscope_ok(&[
            "report",
            crate::support::fixture(fixture).to_str().unwrap(),
            "-o",
            page.to_str().unwrap(),
        ]);
        let profile = dir.path.join(format!("profile-{fixture}"));
        let dom = browse(browser, &profile, &page, &["--dump-dom".to_owned()]);
        check_dom(&dom, fixture);
        if fixture == "grpc-python" {
            assert!(dom.contains("gRPC status"), "no gRPC status mix");
        }

        let shot = dir.path.join(format!("{fixture}.png"));
        browse(
            browser,
            &profile,
            &page,
            &[
                format!("--screenshot={}", shot.display()),
                format!("--window-size={WIDTH},{HEIGHT}"),
            ],
        );
        let (width, height, ink) = screenshot_stats(&shot);
        assert_eq!((width, height), (WIDTH, HEIGHT), "{fixture}");
        assert!(
            ink > 0.02,
            "{fixture}: the screenshot is blank ({ink:.4} inked)"
        );
    }

    // From the JSON lines `replay --format json` writes: the same endpoints.
    let lines = dir.path.join("curl-bodies.jsonl");
    httpscope_ok(&[
        "replay",
        crate::support::fixture("curl-bodies").to_str().unwrap(),
        "--format",
        "json",
        "--no-summary",
        "--output",
        lines.to_str().unwrap(),
    ]);
    let page = dir.path.join("from-json.html");
    httpscope_ok(&[
        "report",
        lines.to_str().unwrap(),
        "-o",
        page.to_str().unwrap(),
    ]);
    let profile = dir.path.join("profile-json");
    let dom = browse(browser, &profile, &page, &["--dump-dom".to_owned()]);
    check_dom(&dom, "curl-bodies");
}
