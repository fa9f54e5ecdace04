//! Which way bytes moved, as seen by the traced process.

use serde::Serialize;

/// Direction of a syscall's bytes relative to the traced process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The process wrote these bytes to the socket.
    Send,
    /// The process read these bytes from the socket.
    Recv,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Send => "send",
            Direction::Recv => "recv",
        }
    }

    /// The other way.
    pub fn opposite(self) -> Direction {
        match self {
            Direction::Send => Direction::Recv,
            Direction::Recv => Direction::Send,
        }
    }

    pub fn index(self) -> usize {
        match self {
            Direction::Send => 0,
            Direction::Recv => 1,
        }
    }
}
