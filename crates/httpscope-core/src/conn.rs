//! The connection table: what we know of each traced socket, and its HTTP state.

use hashbrown::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::cgroup::CgroupInfo;
use crate::event::abi::FD_UNKNOWN;
use crate::event::{unknown_addr, ConnOpenEvent, ConnOrigin, TlsLib};
use crate::http::HttpConnection;

/// Where a connection lives and who owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub conn_id: u64,
    pub tgid: u32,
    pub fd: Option<u32>,
    pub comm: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub origin: ConnOrigin,
    /// `local` and `remote` as text, formatted once per connection (boxed: no spare capacity).
    pub local_text: Box<str>,
    pub remote_text: Box<str>,
    /// TLS plaintext was captured on this connection (from TLS library calls).
    pub tls: bool,
    /// The library that plaintext came from.
    pub tls_lib: Option<TlsLib>,
    /// The cgroup (and container) of the process that opened the connection.
    pub cgroup: Option<Arc<CgroupInfo>>,
}

impl ConnInfo {
    pub fn from_open(open: &ConnOpenEvent) -> Self {
        Self {
            conn_id: open.header.conn_id,
            tgid: open.header.tgid,
            fd: (open.fd != FD_UNKNOWN).then_some(open.fd),
            comm: open.comm.clone(),
            local: open.local,
            remote: open.remote,
            origin: open.origin,
            local_text: open.local.to_string().into(),
            remote_text: open.remote.to_string().into(),
            tls: false,
            tls_lib: None,
            cgroup: None,
        }
    }

    /// A connection whose open event was lost: we know only its owner.
    pub fn unknown(conn_id: u64, tgid: u32) -> Self {
        Self {
            conn_id,
            tgid,
            fd: None,
            comm: String::new(),
            local: unknown_addr(),
            remote: unknown_addr(),
            origin: ConnOrigin::Existing,
            local_text: unknown_addr().to_string().into(),
            remote_text: unknown_addr().to_string().into(),
            tls: false,
            tls_lib: None,
            cgroup: None,
        }
    }
}

pub struct Connection {
    pub info: ConnInfo,
    /// The socket syscalls' bytes (ciphertext on a TLS connection).
    pub http: HttpConnection,
    /// The TLS plaintext stream (SSL_read/SSL_write), once one was seen.
    /// Boxed: most connections never carry TLS plaintext, and an engine is ~1 KiB.
    pub tls_http: Option<Box<HttpConnection>>,
    pub last_seen_ns: u64,
    /// Thread of the latest syscall: records completed at close are attributed to it.
    pub last_tid: u32,
    /// Whether a non-HTTP/1 protocol on this connection was already reported.
    pub protocol_reported: bool,
    /// The latest (url, route): a response shares its request's url, so the pair's route
    /// is found once.
    pub last_route: Option<(Arc<str>, Arc<str>)>,
}

/// Connections by kernel connection id, bounded in number.
pub struct ConnTable {
    /// Boxed: the table grows by doubling, so inline values would leave up to half its slots
    /// (a whole connection each) empty, and a resize would briefly hold both tables.
    conns: HashMap<u64, Box<Connection>>,
    max_connections: usize,
}

impl ConnTable {
    pub fn new(max_connections: usize) -> Self {
        Self {
            conns: HashMap::new(),
            max_connections: max_connections.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.conns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.conns.len() >= self.max_connections
    }

    pub fn get_mut(&mut self, conn_id: u64) -> Option<&mut Connection> {
        self.conns.get_mut(&conn_id).map(|conn| &mut **conn)
    }

    pub fn insert(&mut self, conn: Connection) {
        self.conns.insert(conn.info.conn_id, Box::new(conn));
    }

    pub fn remove(&mut self, conn_id: u64) -> Option<Box<Connection>> {
        self.conns.remove(&conn_id)
    }

    /// Ids of connections owned by a process.
    pub fn of_process(&self, tgid: u32) -> Vec<u64> {
        self.conns
            .values()
            .filter(|c| c.info.tgid == tgid)
            .map(|c| c.info.conn_id)
            .collect()
    }

    /// Ids of connections silent since `cutoff_ns`.
    pub fn idle_since(&self, cutoff_ns: u64) -> Vec<u64> {
        self.conns
            .values()
            .filter(|c| c.last_seen_ns < cutoff_ns)
            .map(|c| c.info.conn_id)
            .collect()
    }

    /// The connection silent for longest, to make room for a new one.
    pub fn least_recently_seen(&self) -> Option<u64> {
        self.conns
            .values()
            .min_by_key(|c| c.last_seen_ns)
            .map(|c| c.info.conn_id)
    }

    pub fn ids(&self) -> Vec<u64> {
        self.conns.keys().copied().collect()
    }
}
