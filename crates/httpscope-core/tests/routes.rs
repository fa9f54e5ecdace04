//! Routes through the whole pipeline: a generated REST-like load of thousands of
//! distinct URLs over a dozen routes (static siblings like `/users/me` next to
//! `/users/{id}`) must come out as exactly those routes, and the recorded
//! fixtures get the routes their paths call for.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::rng::Rng;
use common::{replay_fixture, Collector};
use httpscope_core::direction::Direction;
use httpscope_core::event::{encode, ConnOrigin, EventHeader};
use httpscope_core::pipeline::{Pipeline, PipelineConfig};
use httpscope_core::route::RouteRules;

/// What the generated URLs are made of.
trait Pieces {
    fn from(&mut self, alphabet: &[u8], len: usize) -> String;
    fn hex(&mut self, len: usize) -> String;
    fn uuid(&mut self) -> String;
    fn date(&mut self) -> String;
}

impl Pieces for Rng {
    fn from(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| char::from(alphabet[self.below(alphabet.len() as u64) as usize]))
            .collect()
    }

    fn hex(&mut self, len: usize) -> String {
        self.from(b"0123456789abcdef", len)
    }

    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-4{}-a{}-{}",
            self.hex(8),
            self.hex(4),
            self.hex(3),
            self.hex(3),
            self.hex(12)
        )
    }

    fn date(&mut self) -> String {
        format!(
            "20{:02}-{:02}-{:02}",
            10 + self.below(20),
            1 + self.below(12),
            1 + self.below(28)
        )
    }
}

const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// One URL of route number `which`, with its true route.
fn url(rng: &mut Rng, which: u64) -> (String, &'static str) {
    let id = 1 + rng.below(10_000_000);
    match which {
        0 => (format!("/api/v1/users/{id}"), "/api/v1/users/{id}"),
        1 => ("/api/v1/users/me".into(), "/api/v1/users/me"),
        2 => (
            format!("/api/v1/users/search?q=a{id}"),
            "/api/v1/users/search",
        ),
        3 => (
            format!("/api/v1/users/{id}/orders/{}", rng.uuid()),
            "/api/v1/users/{id}/orders/{id}",
        ),
        4 => (
            format!("/api/v1/orders/{}", rng.uuid()),
            "/api/v1/orders/{id}",
        ),
        5 => ("/api/v1/orders/export".into(), "/api/v1/orders/export"),
        6 => (format!("/files/{}", rng.hex(40)), "/files/{id}"),
        // 32 random bytes, as Python's `secrets.token_urlsafe()` makes them.
        7 => (
            format!("/sessions/{}", rng.from(BASE64URL, 43)),
            "/sessions/{id}",
        ),
        8 => (
            format!("/events/01{}", rng.from(CROCKFORD, 24)),
            "/events/{id}",
        ),
        9 => (
            format!("/reports/{}/summary", rng.date()),
            "/reports/{id}/summary",
        ),
        10 => (format!("/accounts/user{id}@example.com"), "/accounts/{id}"),
        11 => (
            format!(
                "/hosts/10.{}.{}.{}/metrics",
                rng.below(256),
                rng.below(256),
                rng.below(256)
            ),
            "/hosts/{id}/metrics",
        ),
        12 => (
            format!("/api/v2/customers/cus_{}", rng.hex(14)),
            "/api/v2/customers/{id}",
        ),
        _ => ("/healthz".into(), "/healthz"),
    }
}

/// Requests and responses of `urls` on one server connection, as kernel events.
fn events(urls: &[String]) -> Vec<Vec<u8>> {
    let header = |ts_ns| EventHeader {
        tgid: 10,
        tid: 10,
        ts_ns,
        conn_id: 1,
    };
    let mut raw = vec![encode::conn_open(
        &header(1),
        5,
        ConnOrigin::Accept,
        "127.0.0.1:8080".parse().unwrap(),
        "127.0.0.1:40000".parse().unwrap(),
        "api",
    )];
    let (mut recv, mut send) = (0u64, 0u64);
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    for (i, url) in urls.iter().enumerate() {
        let ts = 1_000 + i as u64 * 1_000;
        let request = format!("GET {url} HTTP/1.1\r\nHost: api\r\n\r\n");
        let len = request.len() as u64;
        raw.push(encode::data(
            &header(ts),
            Direction::Recv,
            recv,
            len,
            request.as_bytes(),
        ));
        recv += len;
        let len = response.len() as u64;
        raw.push(encode::data(
            &header(ts + 500),
            Direction::Send,
            send,
            len,
            response,
        ));
        send += len;
    }
    raw
}

#[test]
fn generated_rest_load_yields_exactly_its_routes() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (urls, truth): (Vec<String>, Vec<&str>) = (0..6000)
        .map(|_| {
            let which = rng.below(14);
            url(&mut rng, which)
        })
        .unzip();
    let distinct_urls: BTreeSet<&String> = urls.iter().collect();
    assert!(distinct_urls.len() > 4000, "{} urls", distinct_urls.len());

    let collector = Collector::default();
    let mut pipeline = Pipeline::new(PipelineConfig::default(), vec![Box::new(collector.clone())]);
    for raw in events(&urls) {
        pipeline.process_raw(&raw).unwrap();
    }
    pipeline.finish().unwrap();
    let seen = collector.0.borrow();
    let requests: Vec<_> = seen.iter().filter(|s| s.kind == "request").collect();
    assert_eq!(requests.len(), urls.len());
    for (record, expected) in requests.iter().zip(&truth) {
        assert_eq!(record.route.as_deref(), Some(*expected), "{:?}", record.url);
    }
    // Responses carry their request's route.
    for record in seen.iter().filter(|s| s.kind == "response") {
        let request = requests.iter().find(|r| r.exchange == record.exchange);
        assert_eq!(record.route, request.unwrap().route);
    }
    let found: BTreeSet<&str> = seen.iter().filter_map(|s| s.route.as_deref()).collect();
    let expected: BTreeSet<&str> = truth.iter().copied().collect();
    assert_eq!(found, expected);
    assert_eq!(found.len(), 14);
}

#[test]
fn user_templates_take_precedence_in_the_pipeline() {
    let urls: Vec<String> = ["/users/alice/repos", "/users/42/repos", "/users/me"]
        .map(String::from)
        .to_vec();
    let collector = Collector::default();
    let config = PipelineConfig {
        routes: RouteRules {
            templates: vec!["/users/{name}/repos".into()],
            ..RouteRules::default()
        },
        ..PipelineConfig::default()
    };
    let mut pipeline = Pipeline::new(config, vec![Box::new(collector.clone())]);
    for raw in events(&urls) {
        pipeline.process_raw(&raw).unwrap();
    }
    pipeline.finish().unwrap();
    let routes: Vec<String> = collector
        .0
        .borrow()
        .iter()
        .filter(|s| s.kind == "request")
        .filter_map(|s| s.route.clone())
        .collect();
    assert_eq!(
        routes,
        ["/users/{name}/repos", "/users/{name}/repos", "/users/me"]
    );
}

/// Path → route of every record of a fixture (query strings dropped).
fn fixture_routes(name: &str) -> BTreeMap<String, String> {
    let (seen, _) = replay_fixture(name);
    let mut routes = BTreeMap::new();
    for record in &seen {
        assert_eq!(record.url.is_some(), record.route.is_some(), "{record:?}");
        if let (Some(url), Some(route)) = (&record.url, &record.route) {
            let path = url.split('?').next().unwrap().to_owned();
            if let Some(old) = routes.insert(path, route.clone()) {
                assert_eq!(&old, route, "one path, two routes");
            }
        }
    }
    routes
}

#[test]
fn recorded_fixtures_get_their_routes() {
    let bodies = fixture_routes("curl-bodies");
    let expected = [
        ("/", "/"),
        ("/bytes/100000", "/bytes/{id}"),
        ("/chunked/5000", "/chunked/{id}"),
        ("/status/204", "/status/{id}"),
        ("/status/304", "/status/{id}"),
    ];
    assert_eq!(
        bodies,
        expected
            .map(|(p, r)| (p.to_owned(), r.to_owned()))
            .into_iter()
            .collect()
    );
    // Static paths (HTTP/1, h2, gRPC) stay as they are.
    for fixture in [
        "demo-traffic",
        "curl-keepalive",
        "h2c-curl-nghttpd",
        "h2-tls-curl",
        "grpc-python",
        "h2c-upgrade",
    ] {
        let routes = fixture_routes(fixture);
        assert!(!routes.is_empty(), "{fixture}");
        for (path, route) in routes {
            assert_eq!(path, route, "{fixture}");
        }
    }
}
