//! Builds raw records in the kernel's layout: for tests, fuzzing and synthetic traces.

use std::mem::{offset_of, size_of};
use std::net::{IpAddr, SocketAddr};

use super::abi::*;
use super::{ConnOrigin, EventHeader, Syscall, TlsLib};
use crate::direction::Direction;

fn header_bytes(kind: u32, header: &EventHeader, size: usize) -> Vec<u8> {
    let mut raw = vec![0u8; size];
    put(
        &mut raw,
        offset_of!(RawEventHeader, kind),
        &kind.to_ne_bytes(),
    );
    put(
        &mut raw,
        offset_of!(RawEventHeader, tgid),
        &header.tgid.to_ne_bytes(),
    );
    put(
        &mut raw,
        offset_of!(RawEventHeader, tid),
        &header.tid.to_ne_bytes(),
    );
    put(
        &mut raw,
        offset_of!(RawEventHeader, ts_ns),
        &header.ts_ns.to_ne_bytes(),
    );
    put(
        &mut raw,
        offset_of!(RawEventHeader, conn_id),
        &header.conn_id.to_ne_bytes(),
    );
    raw
}

fn put(raw: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = raw.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// A data record; `len` may exceed `data.len()` to model truncation.
pub fn data(
    header: &EventHeader,
    direction: Direction,
    stream_offset: u64,
    len: u64,
    data: &[u8],
) -> Vec<u8> {
    let fixed = size_of::<RawDataEvent>();
    let mut raw = header_bytes(EVENT_KIND_DATA, header, fixed);
    put(
        &mut raw,
        offset_of!(RawDataEvent, stream_offset),
        &stream_offset.to_ne_bytes(),
    );
    put(&mut raw, offset_of!(RawDataEvent, len), &len.to_ne_bytes());
    let captured = u32::try_from(data.len()).unwrap_or(u32::MAX);
    put(
        &mut raw,
        offset_of!(RawDataEvent, captured_len),
        &captured.to_ne_bytes(),
    );
    let syscall = match direction {
        Direction::Send => Syscall::Write,
        Direction::Recv => Syscall::Read,
    };
    put_syscall(&mut raw, syscall);
    let dir = match direction {
        Direction::Send => DIRECTION_SEND,
        Direction::Recv => DIRECTION_RECV,
    };
    put(&mut raw, offset_of!(RawDataEvent, direction), &[dir]);
    let flags = if (data.len() as u64) < len {
        DATA_FLAG_TRUNCATED
    } else {
        0
    };
    put(&mut raw, offset_of!(RawDataEvent, flags), &[flags]);
    raw.extend_from_slice(data);
    raw
}

fn put_syscall(raw: &mut [u8], syscall: Syscall) {
    put(
        raw,
        offset_of!(RawDataEvent, syscall),
        &(syscall as u16).to_ne_bytes(),
    );
}

/// A TLS plaintext data record from OpenSSL (SSL_read/SSL_write).
pub fn tls_data(
    header: &EventHeader,
    direction: Direction,
    stream_offset: u64,
    len: u64,
    data: &[u8],
) -> Vec<u8> {
    tls_lib_data(TlsLib::Openssl, header, direction, stream_offset, len, data)
}

/// A TLS plaintext data record from `lib`'s read or write call, as its uprobes write it.
pub fn tls_lib_data(
    lib: TlsLib,
    header: &EventHeader,
    direction: Direction,
    stream_offset: u64,
    len: u64,
    data: &[u8],
) -> Vec<u8> {
    let mut raw = self::data(header, direction, stream_offset, len, data);
    put_syscall(&mut raw, lib.call(direction));
    raw[offset_of!(RawDataEvent, flags)] |= DATA_FLAG_TLS;
    raw
}

/// A connection-open record.
pub fn conn_open(
    header: &EventHeader,
    fd: u32,
    origin: ConnOrigin,
    local: SocketAddr,
    remote: SocketAddr,
    comm: &str,
) -> Vec<u8> {
    let mut raw = header_bytes(EVENT_KIND_CONN_OPEN, header, size_of::<RawConnOpenEvent>());
    let (family, local_bytes, remote_bytes) = match (local.ip(), remote.ip()) {
        (IpAddr::V4(l), IpAddr::V4(r)) => {
            let (mut lb, mut rb) = ([0u8; ADDR_LEN], [0u8; ADDR_LEN]);
            lb[..4].copy_from_slice(&l.octets());
            rb[..4].copy_from_slice(&r.octets());
            (AF_INET, lb, rb)
        }
        (l, r) => (AF_INET6, v6_octets(l), v6_octets(r)),
    };
    let origin = match origin {
        ConnOrigin::Accept => ORIGIN_ACCEPT,
        ConnOrigin::Connect => ORIGIN_CONNECT,
        ConnOrigin::Existing => ORIGIN_EXISTING,
    };
    put(
        &mut raw,
        offset_of!(RawConnOpenEvent, fd),
        &fd.to_ne_bytes(),
    );
    put(
        &mut raw,
        offset_of!(RawConnOpenEvent, family),
        &family.to_ne_bytes(),
    );
    put(
        &mut raw,
        offset_of!(RawConnOpenEvent, origin),
        &origin.to_ne_bytes(),
    );
    put(
        &mut raw,
        offset_of!(RawConnOpenEvent, local_port),
        &local.port().to_ne_bytes(),
    );
    put(
        &mut raw,
        offset_of!(RawConnOpenEvent, remote_port),
        &remote.port().to_ne_bytes(),
    );
    put(
        &mut raw,
        offset_of!(RawConnOpenEvent, local_addr),
        &local_bytes,
    );
    put(
        &mut raw,
        offset_of!(RawConnOpenEvent, remote_addr),
        &remote_bytes,
    );
    let name = comm.as_bytes();
    put(
        &mut raw,
        offset_of!(RawConnOpenEvent, comm),
        &name[..name.len().min(COMM_LEN - 1)],
    );
    raw
}

fn v6_octets(ip: IpAddr) -> [u8; ADDR_LEN] {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// A connection-close record.
/// Sets the cgroup id of a connection-open record made by [`conn_open`].
pub fn set_cgroup_id(raw: &mut [u8], cgroup_id: u64) {
    put(
        raw,
        offset_of!(RawConnOpenEvent, cgroup_id),
        &cgroup_id.to_ne_bytes(),
    );
}

pub fn conn_close(header: &EventHeader, sent_bytes: u64, recv_bytes: u64) -> Vec<u8> {
    let mut raw = header_bytes(
        EVENT_KIND_CONN_CLOSE,
        header,
        size_of::<RawConnCloseEvent>(),
    );
    put(
        &mut raw,
        offset_of!(RawConnCloseEvent, sent_bytes),
        &sent_bytes.to_ne_bytes(),
    );
    put(
        &mut raw,
        offset_of!(RawConnCloseEvent, recv_bytes),
        &recv_bytes.to_ne_bytes(),
    );
    raw
}

/// A process-exit record.
pub fn process_exit(header: &EventHeader) -> Vec<u8> {
    header_bytes(EVENT_KIND_PROCESS_EXIT, header, size_of::<RawEventHeader>())
}
