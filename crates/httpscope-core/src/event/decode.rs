//! Checked decoding of raw ring-buffer records into [`KernelEvent`]s.

use std::mem::{offset_of, size_of};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

use super::abi::*;
use super::{
    ConnCloseEvent, ConnOpenEvent, ConnOrigin, DataEvent, EventHeader, KernelEvent,
    ProcessExitEvent, Syscall,
};
use crate::direction::Direction;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than its {needed}-byte header")]
    Short { len: usize, needed: usize },
    #[error("unknown event kind {0}")]
    UnknownKind(u32),
    #[error("data event claims {claimed} captured bytes but carries {present}")]
    CapturedLength { claimed: u32, present: usize },
    #[error("unknown syscall id {0}")]
    UnknownSyscall(u16),
    #[error("unknown direction {0}")]
    UnknownDirection(u8),
    #[error("unknown connection origin {0}")]
    UnknownOrigin(u16),
    #[error("unknown address family {0}")]
    UnknownFamily(u16),
    #[error("data event claims {0} bytes moved by one syscall")]
    ImpossibleLength(u64),
}

/// Most bytes one syscall can move (Linux's MAX_RW_COUNT is INT_MAX rounded down to a page):
/// a larger `len` is corrupt, and would overflow byte counters downstream.
const MAX_SYSCALL_BYTES: u64 = i32::MAX as u64;

/// Decodes one ring-buffer record. Trailing padding after the payload is ignored.
pub fn decode(raw: &[u8]) -> Result<KernelEvent<'_>, DecodeError> {
    let header = header(raw)?;
    match read_u32(raw, offset_of!(RawEventHeader, kind)) {
        EVENT_KIND_DATA => data(raw, header).map(KernelEvent::Data),
        EVENT_KIND_CONN_OPEN => conn_open(raw, header).map(KernelEvent::ConnOpen),
        EVENT_KIND_CONN_CLOSE => {
            need(raw, size_of::<RawConnCloseEvent>())?;
            Ok(KernelEvent::ConnClose(ConnCloseEvent {
                header,
                sent_bytes: read_u64(raw, offset_of!(RawConnCloseEvent, sent_bytes)),
                recv_bytes: read_u64(raw, offset_of!(RawConnCloseEvent, recv_bytes)),
            }))
        }
        EVENT_KIND_PROCESS_EXIT => Ok(KernelEvent::ProcessExit(ProcessExitEvent { header })),
        other => Err(DecodeError::UnknownKind(other)),
    }
}

/// The record without the unused tail of a fixed-size ring reservation, for saving.
pub fn trimmed(raw: &[u8]) -> &[u8] {
    if raw.len() < size_of::<RawDataEvent>()
        || read_u32(raw, offset_of!(RawEventHeader, kind)) != EVENT_KIND_DATA
    {
        return raw;
    }
    let captured = read_u32(raw, offset_of!(RawDataEvent, captured_len)) as usize;
    let used = size_of::<RawDataEvent>().saturating_add(captured);
    raw.get(..used).unwrap_or(raw)
}

fn header(raw: &[u8]) -> Result<EventHeader, DecodeError> {
    need(raw, size_of::<RawEventHeader>())?;
    Ok(EventHeader {
        tgid: read_u32(raw, offset_of!(RawEventHeader, tgid)),
        tid: read_u32(raw, offset_of!(RawEventHeader, tid)),
        ts_ns: read_u64(raw, offset_of!(RawEventHeader, ts_ns)),
        conn_id: read_u64(raw, offset_of!(RawEventHeader, conn_id)),
    })
}

fn data(raw: &[u8], header: EventHeader) -> Result<DataEvent<'_>, DecodeError> {
    let fixed = size_of::<RawDataEvent>();
    need(raw, fixed)?;
    let captured = read_u32(raw, offset_of!(RawDataEvent, captured_len));
    let payload = raw
        .get(fixed..)
        .and_then(|rest| rest.get(..captured as usize))
        .ok_or(DecodeError::CapturedLength {
            claimed: captured,
            present: raw.len().saturating_sub(fixed),
        })?;
    let syscall_id = read_u16(raw, offset_of!(RawDataEvent, syscall));
    let syscall = Syscall::from_id(syscall_id).ok_or(DecodeError::UnknownSyscall(syscall_id))?;
    let direction = match raw[offset_of!(RawDataEvent, direction)] {
        DIRECTION_SEND => Direction::Send,
        DIRECTION_RECV => Direction::Recv,
        other => return Err(DecodeError::UnknownDirection(other)),
    };
    let flags = raw[offset_of!(RawDataEvent, flags)];
    let len = read_u64(raw, offset_of!(RawDataEvent, len));
    if len > MAX_SYSCALL_BYTES {
        return Err(DecodeError::ImpossibleLength(len));
    }
    Ok(DataEvent {
        header,
        stream_offset: read_u64(raw, offset_of!(RawDataEvent, stream_offset)),
        // A record never carries more bytes than the syscall moved.
        len: len.max(payload.len() as u64),
        syscall,
        direction,
        not_captured: flags & DATA_FLAG_NOT_CAPTURED != 0,
        elided: flags & DATA_FLAG_ELIDED != 0,
        tls: flags & DATA_FLAG_TLS != 0,
        data: payload,
    })
}

/// Open records saved before `cgroup_id` was appended end here.
const CONN_OPEN_WITHOUT_CGROUP: usize = offset_of!(RawConnOpenEvent, cgroup_id);

fn conn_open(raw: &[u8], header: EventHeader) -> Result<ConnOpenEvent, DecodeError> {
    need(raw, CONN_OPEN_WITHOUT_CGROUP)?;
    let family = read_u16(raw, offset_of!(RawConnOpenEvent, family));
    let origin = match read_u16(raw, offset_of!(RawConnOpenEvent, origin)) {
        ORIGIN_ACCEPT => ConnOrigin::Accept,
        ORIGIN_CONNECT => ConnOrigin::Connect,
        ORIGIN_EXISTING => ConnOrigin::Existing,
        other => return Err(DecodeError::UnknownOrigin(other)),
    };
    let local_addr = read_array::<ADDR_LEN>(raw, offset_of!(RawConnOpenEvent, local_addr));
    let remote_addr = read_array::<ADDR_LEN>(raw, offset_of!(RawConnOpenEvent, remote_addr));
    let local_port = read_u16(raw, offset_of!(RawConnOpenEvent, local_port));
    let remote_port = read_u16(raw, offset_of!(RawConnOpenEvent, remote_port));
    let comm = read_array::<COMM_LEN>(raw, offset_of!(RawConnOpenEvent, comm));
    let comm_len = comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
    Ok(ConnOpenEvent {
        header,
        fd: read_u32(raw, offset_of!(RawConnOpenEvent, fd)),
        origin,
        local: SocketAddr::new(ip(family, local_addr)?, local_port),
        remote: SocketAddr::new(ip(family, remote_addr)?, remote_port),
        comm: String::from_utf8_lossy(&comm[..comm_len]).into_owned(),
        cgroup_id: if raw.len() >= size_of::<RawConnOpenEvent>() {
            read_u64(raw, offset_of!(RawConnOpenEvent, cgroup_id))
        } else {
            0
        },
    })
}

/// IPv4-mapped IPv6 addresses are shown as the IPv4 address they carry.
fn ip(family: u16, bytes: [u8; ADDR_LEN]) -> Result<IpAddr, DecodeError> {
    match family {
        AF_INET => Ok(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        AF_INET6 => {
            let v6 = Ipv6Addr::from(bytes);
            Ok(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        other => Err(DecodeError::UnknownFamily(other)),
    }
}

fn need(raw: &[u8], needed: usize) -> Result<(), DecodeError> {
    if raw.len() < needed {
        return Err(DecodeError::Short {
            len: raw.len(),
            needed,
        });
    }
    Ok(())
}

// The readers below are only called after `need` checked the whole fixed part.
fn read_array<const N: usize>(raw: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    if let Some(src) = raw.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

fn read_u16(raw: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes(read_array(raw, at))
}

fn read_u32(raw: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(read_array(raw, at))
}

fn read_u64(raw: &[u8], at: usize) -> u64 {
    u64::from_ne_bytes(read_array(raw, at))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::event::encode;

    fn header() -> EventHeader {
        EventHeader {
            tgid: 7,
            tid: 8,
            ts_ns: 99,
            conn_id: 3,
        }
    }

    #[test]
    fn round_trips_every_kind() {
        let raw = encode::data(&header(), Direction::Recv, 10, 6, b"abc");
        let KernelEvent::Data(data) = decode(&raw).unwrap() else {
            panic!("not data")
        };
        assert_eq!(
            (data.stream_offset, data.len, data.data),
            (10, 6, &b"abc"[..])
        );
        assert_eq!(data.direction, Direction::Recv);
        assert_eq!(data.header, header());

        let local: SocketAddr = "[::ffff:127.0.0.1]:8080".parse().unwrap();
        let remote: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        let raw = encode::conn_open(&header(), 4, ConnOrigin::Accept, local, remote, "nginx");
        let KernelEvent::ConnOpen(open) = decode(&raw).unwrap() else {
            panic!("not open")
        };
        assert_eq!(
            open.local.to_string(),
            "127.0.0.1:8080",
            "v4-mapped shown as IPv4"
        );
        assert_eq!(open.remote, remote);
        assert_eq!(
            (open.fd, open.comm.as_str(), open.origin),
            (4, "nginx", ConnOrigin::Accept)
        );

        assert_eq!(open.cgroup_id, 0);

        let mut raw = encode::conn_open(&header(), 4, ConnOrigin::Accept, local, remote, "x");
        encode::set_cgroup_id(&mut raw, 0x1234);
        let KernelEvent::ConnOpen(open) = decode(&raw).unwrap() else {
            panic!("not open")
        };
        assert_eq!(open.cgroup_id, 0x1234);
        // Saved before cgroup_id was appended: still an open record, cgroup unknown.
        let KernelEvent::ConnOpen(old) = decode(&raw[..CONN_OPEN_WITHOUT_CGROUP]).unwrap() else {
            panic!("not open")
        };
        assert_eq!((old.cgroup_id, old.comm.as_str()), (0, "x"));
        assert!(decode(&raw[..CONN_OPEN_WITHOUT_CGROUP - 1]).is_err());

        let raw = encode::conn_close(&header(), 1, 2);
        assert!(
            matches!(decode(&raw).unwrap(), KernelEvent::ConnClose(c) if c.sent_bytes == 1 && c.recv_bytes == 2)
        );
        let raw = encode::process_exit(&header());
        assert!(matches!(decode(&raw).unwrap(), KernelEvent::ProcessExit(_)));
    }

    #[test]
    fn trims_reservation_padding_only() {
        let mut raw = encode::data(&header(), Direction::Send, 0, 3, b"abc");
        let exact = raw.len();
        raw.extend_from_slice(&[0; 100]);
        assert_eq!(trimmed(&raw).len(), exact);
        assert_eq!(decode(trimmed(&raw)), decode(&raw));
        let close = encode::conn_close(&header(), 1, 2);
        assert_eq!(trimmed(&close), &close[..]);
    }

    #[test]
    fn rejects_inconsistent_records() {
        assert!(matches!(decode(&[0; 8]), Err(DecodeError::Short { .. })));
        let mut raw = encode::data(&header(), Direction::Send, 0, 3, b"abc");
        raw.pop();
        assert!(matches!(
            decode(&raw),
            Err(DecodeError::CapturedLength { claimed: 3, .. })
        ));
        let mut raw = encode::process_exit(&header());
        raw[0] = 77;
        assert_eq!(decode(&raw), Err(DecodeError::UnknownKind(77)));
        let mut raw = encode::data(&header(), Direction::Send, 0, 3, b"abc");
        raw[offset_of!(RawDataEvent, direction)] = 9;
        assert_eq!(decode(&raw), Err(DecodeError::UnknownDirection(9)));
        let raw = encode::data(&header(), Direction::Send, 0, u64::MAX, b"abc");
        assert_eq!(decode(&raw), Err(DecodeError::ImpossibleLength(u64::MAX)));
    }
}
