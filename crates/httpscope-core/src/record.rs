//! One HTTP message with everything known about where it came from.

use std::net::SocketAddr;

use crate::conn::ConnInfo;
use crate::direction::Direction;
use crate::http::{HttpMessage, Role};

/// What sinks receive: a parsed message plus its connection and process.
pub struct ExchangeRecord<'a> {
    /// Unix time of the message's first byte, in ns.
    pub unix_ns: i64,
    /// The thread whose syscall completed the message.
    pub tid: u32,
    pub conn: &'a ConnInfo,
    pub role: Option<Role>,
    pub message: &'a HttpMessage,
    /// The message's route (see [`crate::route`]); None when it has no request target.
    pub route: Option<&'a str>,
}

impl ExchangeRecord<'_> {
    pub fn direction(&self) -> Direction {
        self.message.direction
    }

    /// The sender of these bytes.
    pub fn src(&self) -> SocketAddr {
        match self.message.direction {
            Direction::Send => self.conn.local,
            Direction::Recv => self.conn.remote,
        }
    }

    pub fn src_text(&self) -> &str {
        match self.message.direction {
            Direction::Send => &self.conn.local_text,
            Direction::Recv => &self.conn.remote_text,
        }
    }

    pub fn dst_text(&self) -> &str {
        match self.message.direction {
            Direction::Send => &self.conn.remote_text,
            Direction::Recv => &self.conn.local_text,
        }
    }

    pub fn dst(&self) -> SocketAddr {
        match self.message.direction {
            Direction::Send => self.conn.remote,
            Direction::Recv => self.conn.local,
        }
    }

    /// Path without the query string: what endpoints group by.
    pub fn path(&self) -> Option<&str> {
        self.message
            .url
            .as_deref()
            .map(|url| url.split(['?', '#']).next().unwrap_or(url))
    }

    pub fn latency_ms(&self) -> Option<f64> {
        self.message.latency_ns.map(|ns| ns as f64 / 1e6)
    }
}
