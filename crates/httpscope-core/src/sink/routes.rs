//! Low-cardinality route labels for metrics and span names: paths templated and capped.

use std::collections::HashSet;

/// Distinct routes kept by default before new ones are reported as `{other}`.
pub const DEFAULT_MAX_ROUTES: usize = 200;

const MAX_SEGMENTS: usize = 8;
const MAX_SEGMENT_LEN: usize = 64;

/// Turns paths into low-cardinality routes: `/users/42/orders` → `/users/{id}/orders`.
///
/// User patterns (`/users/{id}`, a `{…}` segment matches any one segment) are
/// tried first, in order. Otherwise numeric, UUID, long hex (≥ 8, with a digit)
/// and over-long segments become `{id}`; paths are cut after 8 segments
/// (`/{…}`). At most `max_routes` distinct routes are reported; later new
/// ones are `{other}`.
#[derive(Debug, Clone)]
pub struct RouteTemplater {
    patterns: Vec<Vec<String>>,
    max_routes: usize,
    seen: HashSet<String>,
}

impl Default for RouteTemplater {
    fn default() -> Self {
        Self::new(Vec::new(), DEFAULT_MAX_ROUTES)
    }
}

impl RouteTemplater {
    pub fn new(patterns: Vec<String>, max_routes: usize) -> Self {
        let patterns = patterns
            .iter()
            .map(|p| split_path(p).map(str::to_string).collect())
            .collect();
        Self {
            patterns,
            max_routes,
            seen: HashSet::new(),
        }
    }

    /// How many distinct routes are kept; other labels drawn from peers use the same cap.
    pub fn max_routes(&self) -> usize {
        self.max_routes
    }

    pub fn route(&mut self, path: Option<&str>) -> String {
        let Some(path) = path else {
            return "{unknown}".to_string();
        };
        let route = self.template(path);
        if self.seen.contains(&route) {
            return route;
        }
        if self.seen.len() >= self.max_routes {
            return "{other}".to_string();
        }
        self.seen.insert(route.clone());
        route
    }

    fn template(&self, path: &str) -> String {
        let path = strip_origin(path);
        if !path.starts_with('/') {
            // `*` (OPTIONS), authority form (CONNECT) or garbage.
            return if path == "*" {
                "*".to_string()
            } else {
                "{other}".to_string()
            };
        }
        let segments: Vec<&str> = split_path(path).collect();
        for pattern in &self.patterns {
            if pattern.len() == segments.len()
                && pattern
                    .iter()
                    .zip(&segments)
                    .all(|(p, s)| is_placeholder(p) || p == s)
            {
                return format!("/{}", pattern.join("/"));
            }
        }
        let mut route = String::new();
        for (i, segment) in segments.iter().enumerate() {
            if i == MAX_SEGMENTS {
                route.push_str("/{…}");
                break;
            }
            route.push('/');
            if is_id(segment) {
                route.push_str("{id}");
            } else {
                route.push_str(segment);
            }
        }
        if route.is_empty() || path.ends_with('/') && segments.len() < MAX_SEGMENTS {
            route.push('/');
        }
        route
    }
}

fn split_path(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn is_placeholder(segment: &str) -> bool {
    segment.len() >= 2 && segment.starts_with('{') && segment.ends_with('}')
}

/// `http://host:port/x` (proxy form) → `/x`.
fn strip_origin(path: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = path.strip_prefix(scheme) {
            return rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    path
}

fn is_id(segment: &str) -> bool {
    let bytes = segment.as_bytes();
    if segment.len() > MAX_SEGMENT_LEN || bytes.iter().all(u8::is_ascii_digit) {
        return true;
    }
    let is_uuid = bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    is_uuid
        || (bytes.len() >= 8
            && bytes.iter().all(u8::is_ascii_hexdigit)
            && bytes.iter().any(u8::is_ascii_digit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_ids() {
        let mut t = RouteTemplater::default();
        assert_eq!(t.route(Some("/users/42")), "/users/{id}");
        assert_eq!(
            t.route(Some("/o/123e4567-e89b-12d3-a456-426614174000/x")),
            "/o/{id}/x"
        );
        assert_eq!(t.route(Some("/blob/deadbeef01")), "/blob/{id}");
        assert_eq!(t.route(Some("/healthz")), "/healthz");
        assert_eq!(t.route(Some("/")), "/");
        assert_eq!(t.route(Some("http://h:1/users/7")), "/users/{id}");
        assert_eq!(t.route(Some("*")), "*");
        assert_eq!(t.route(None), "{unknown}");
        assert_eq!(
            t.route(Some("/a/b/c/d/e/f/g/h/i/j")),
            "/a/b/c/d/e/f/g/h/{…}"
        );
    }

    #[test]
    fn user_patterns_and_cap() {
        let mut t = RouteTemplater::new(vec!["/users/{name}/repos".into()], 3);
        assert_eq!(t.route(Some("/users/alice/repos")), "/users/{name}/repos");
        assert_eq!(t.route(Some("/a")), "/a");
        assert_eq!(t.route(Some("/b")), "/b");
        assert_eq!(t.route(Some("/c")), "{other}");
        assert_eq!(t.route(Some("/a")), "/a");
    }
}
