//! Routes: a message's path with its values replaced by `{id}`, computed once per
//! message in the pipeline and shown by every sink (endpoint tables, metrics, spans,
//! records).
//!
//! The placeholder is spelled `{id}`: it is how OpenAPI and most routers write a path
//! parameter, so inferred routes read like the `--route` templates users write
//! (`/users/{id}`) and like the routes their own framework reports; `*` would be
//! confused with the `OPTIONS *` target and with glob patterns.

mod segment;

use std::sync::Arc;

use hashbrown::HashSet;

pub use segment::is_variable;

/// Distinct routes kept by default before new ones are reported as `{other}`.
pub const DEFAULT_MAX_ROUTES: usize = 200;
/// The route of messages beyond the cap, and of targets that are not paths.
pub const OTHER_ROUTE: &str = "{other}";
/// What a variable segment becomes.
pub const PLACEHOLDER: &str = "{id}";

const MAX_SEGMENTS: usize = 8;

/// How routes are made: user templates first, then inference, under a cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRules {
    /// Templates like `/users/{name}/repos`: a `{…}` segment matches any one segment.
    pub templates: Vec<String>,
    /// Distinct routes reported at most; later new ones are `{other}`.
    pub max_routes: usize,
}

impl Default for RouteRules {
    fn default() -> Self {
        Self {
            templates: Vec::new(),
            max_routes: DEFAULT_MAX_ROUTES,
        }
    }
}

/// Turns paths into routes: `/users/42/orders` → `/users/{id}/orders`.
///
/// User templates are tried first, in order. Otherwise each segment that holds a
/// value (see [`is_variable`]) becomes `{id}`, and paths are cut after 8 segments
/// (`/{…}`). gRPC paths (`/package.Service/Method`) stay as they are. At most
/// `max_routes` distinct routes are reported; later new ones are `{other}`.
#[derive(Debug, Clone)]
pub struct Routes {
    templates: Vec<Vec<String>>,
    max_routes: usize,
    /// Routes handed out so far: each is allocated once and shared after.
    seen: HashSet<Arc<str>>,
    other: Arc<str>,
    scratch: String,
}

impl Default for Routes {
    fn default() -> Self {
        Self::new(&RouteRules::default())
    }
}

impl Routes {
    pub fn new(rules: &RouteRules) -> Self {
        let templates = rules
            .templates
            .iter()
            .map(|t| split_path(t).map(str::to_string).collect())
            .collect();
        Self {
            templates,
            max_routes: rules.max_routes,
            seen: HashSet::new(),
            other: Arc::from(OTHER_ROUTE),
            scratch: String::new(),
        }
    }

    /// How many distinct routes are kept; other labels drawn from peers use the same cap.
    pub fn max_routes(&self) -> usize {
        self.max_routes
    }

    /// The route of request target `url` (query and fragment are ignored); `grpc` paths
    /// are kept whole.
    pub fn route(&mut self, url: &str, grpc: bool) -> Arc<str> {
        let path = strip_origin(url.split(['?', '#']).next().unwrap_or(url));
        let mut route = std::mem::take(&mut self.scratch);
        route.clear();
        if grpc {
            route.push_str(path);
        } else {
            self.template(path, &mut route);
        }
        let shared = self.intern(&route);
        self.scratch = route;
        shared
    }

    fn intern(&mut self, route: &str) -> Arc<str> {
        if let Some(shared) = self.seen.get(route) {
            return Arc::clone(shared);
        }
        if self.seen.len() >= self.max_routes || route == OTHER_ROUTE {
            return Arc::clone(&self.other);
        }
        let shared: Arc<str> = Arc::from(route);
        self.seen.insert(Arc::clone(&shared));
        shared
    }

    fn template(&self, path: &str, route: &mut String) {
        if !path.starts_with('/') {
            // `*` (OPTIONS), authority form (CONNECT) or garbage.
            route.push_str(if path == "*" { "*" } else { OTHER_ROUTE });
            return;
        }
        if self.apply_template(path, route) {
            return;
        }
        for (count, segment) in split_path(path).enumerate() {
            if count == MAX_SEGMENTS {
                route.push_str("/{…}");
                return;
            }
            route.push('/');
            route.push_str(if is_variable(segment) {
                PLACEHOLDER
            } else {
                segment
            });
        }
        if route.is_empty() || path.ends_with('/') {
            route.push('/');
        }
    }

    /// Writes the first user template `path` matches; false when none does.
    fn apply_template(&self, path: &str, route: &mut String) -> bool {
        let matches = |template: &Vec<String>| {
            let mut segments = split_path(path);
            template
                .iter()
                .all(|t| segments.next().is_some_and(|s| is_placeholder(t) || t == s))
                && segments.next().is_none()
        };
        let Some(template) = self.templates.iter().find(|t| matches(t)) else {
            return false;
        };
        for segment in template {
            route.push('/');
            route.push_str(segment);
        }
        if template.is_empty() {
            route.push('/');
        }
        true
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

#[cfg(test)]
mod tests {
    use super::*;

    fn route(routes: &mut Routes, url: &str) -> String {
        routes.route(url, false).to_string()
    }

    #[test]
    fn infers_routes() {
        let mut r = Routes::default();
        assert_eq!(route(&mut r, "/users/42?x=1"), "/users/{id}");
        assert_eq!(
            route(&mut r, "/o/123e4567-e89b-12d3-a456-426614174000/x"),
            "/o/{id}/x"
        );
        assert_eq!(route(&mut r, "/blob/deadbeef01"), "/blob/{id}");
        assert_eq!(route(&mut r, "/users/me"), "/users/me");
        assert_eq!(route(&mut r, "/healthz"), "/healthz");
        assert_eq!(route(&mut r, "/"), "/");
        assert_eq!(route(&mut r, "/dir/"), "/dir/");
        assert_eq!(route(&mut r, "http://h:1/users/7"), "/users/{id}");
        assert_eq!(route(&mut r, "*"), "*");
        assert_eq!(route(&mut r, "example.com:443"), OTHER_ROUTE);
        assert_eq!(
            route(&mut r, "/a/b/c/d/e/f/g/h/i/j"),
            "/a/b/c/d/e/f/g/h/{…}"
        );
    }

    #[test]
    fn grpc_paths_stay_whole() {
        let mut r = Routes::default();
        assert_eq!(&*r.route("/pkg.v1.Echo/Say", true), "/pkg.v1.Echo/Say");
        // Even when a method name looks like a value.
        assert_eq!(
            &*r.route("/pkg.Echo/0123456789abcdef", true),
            "/pkg.Echo/0123456789abcdef"
        );
    }

    #[test]
    fn templates_win_and_the_cap_holds() {
        let mut r = Routes::new(&RouteRules {
            templates: vec!["/users/{name}/repos".into(), "/files/{path}".into()],
            max_routes: 4,
        });
        assert_eq!(route(&mut r, "/users/alice/repos"), "/users/{name}/repos");
        // A template beats inference even where inference would also replace the segment.
        assert_eq!(route(&mut r, "/files/42"), "/files/{path}");
        assert_eq!(route(&mut r, "/a"), "/a");
        assert_eq!(route(&mut r, "/b"), "/b");
        assert_eq!(route(&mut r, "/c"), OTHER_ROUTE);
        assert_eq!(route(&mut r, "/a"), "/a");
    }

    #[test]
    fn a_route_is_allocated_once() {
        let mut r = Routes::default();
        let first = r.route("/users/1", false);
        let second = r.route("/users/2", false);
        assert!(Arc::ptr_eq(&first, &second));
    }
}
