//! pcapng output: the captured bytes of every connection laid out as TCP segments.
//!
//! Wireshark and tshark then dissect the HTTP as if it had been sniffed on the
//! wire. Nothing here was on the wire as such: the IP/TCP headers are
//! synthesised from the connection's addresses and ports; sequence numbers are
//! the byte offsets in each direction's stream (plus a fixed ISN), so bytes
//! lost in capture show up as sequence gaps ("previous segment not
//! captured"), never as invented bytes. A SYN, SYN-ACK, ACK is written when a
//! connection is first seen being accepted or connected (not for connections
//! that were already open), and FIN/ACKs when it closes.
//!
//! A loopback connection traced from both ends (client and server process)
//! appears once: the first traced end of a 4-tuple owns it.
//!
//! The bytes are the captured ones, before redaction: the file holds
//! credentials and cookies in clear text.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use super::{Sink, SinkError};
use crate::conn::ConnInfo;
use crate::direction::Direction;
use crate::event::{ConnOrigin, DataEvent};
use crate::record::ExchangeRecord;

/// LINKTYPE_RAW: each packet starts with an IPv4 or IPv6 header.
const LINKTYPE_RAW: u16 = 101;
const MAX_SEGMENT: usize = 16 * 1024;
const ISN: u32 = 1_000;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

/// What a pcap sink counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PcapCounters {
    pub packets: u64,
    /// Chunks of connections whose other end is already written.
    pub duplicate_chunks: u64,
    /// Chunks of connections whose addresses are unknown (open event lost).
    pub unaddressed_chunks: u64,
}

struct TcpState {
    local: SocketAddr,
    remote: SocketAddr,
    /// Highest stream offset seen, per direction: the peer's ACK.
    sent_end: u64,
    received_end: u64,
    /// This connection's 4-tuple is written by another conn id.
    shadow: bool,
}

/// Writes a pcapng file from the pipeline's raw data chunks.
pub struct PcapSink<W: Write> {
    out: W,
    conns: HashMap<u64, TcpState>,
    /// Canonical 4-tuple → the conn id that writes it.
    owners: HashMap<(SocketAddr, SocketAddr), u64>,
    counters: PcapCounters,
    buf: Vec<u8>,
}

impl<W: Write> PcapSink<W> {
    /// Writes the section and interface headers.
    pub fn new(mut out: W) -> Result<Self, SinkError> {
        let mut head = Vec::with_capacity(64);
        // Section Header Block.
        push_u32(&mut head, 0x0A0D_0D0A);
        push_u32(&mut head, 28);
        push_u32(&mut head, 0x1A2B_3C4D);
        head.extend_from_slice(&1u16.to_ne_bytes());
        head.extend_from_slice(&0u16.to_ne_bytes());
        head.extend_from_slice(&(-1i64).to_ne_bytes());
        push_u32(&mut head, 28);
        // Interface Description Block, nanosecond timestamps.
        push_u32(&mut head, 1);
        push_u32(&mut head, 32);
        head.extend_from_slice(&LINKTYPE_RAW.to_ne_bytes());
        head.extend_from_slice(&0u16.to_ne_bytes());
        push_u32(&mut head, 0);
        head.extend_from_slice(&9u16.to_ne_bytes()); // if_tsresol
        head.extend_from_slice(&1u16.to_ne_bytes());
        head.extend_from_slice(&[9, 0, 0, 0]); // 10^-9
        push_u32(&mut head, 0); // opt_endofopt
        push_u32(&mut head, 32);
        out.write_all(&head)?;
        Ok(Self {
            out,
            conns: HashMap::new(),
            owners: HashMap::new(),
            counters: PcapCounters::default(),
            buf: Vec::with_capacity(MAX_SEGMENT + 128),
        })
    }

    pub fn counters(&self) -> PcapCounters {
        self.counters
    }

    fn state(&mut self, conn: &ConnInfo, unix_ns: i64) -> Result<Option<u64>, SinkError> {
        if let Some(state) = self.conns.get(&conn.conn_id) {
            return Ok((!state.shadow).then_some(conn.conn_id));
        }
        if conn.local.port() == 0 && conn.remote.port() == 0 {
            return Ok(None);
        }
        let local = canonical(conn.local);
        let remote = canonical(conn.remote);
        let key = if local <= remote {
            (local, remote)
        } else {
            (remote, local)
        };
        let shadow = self.owners.contains_key(&key);
        if !shadow {
            self.owners.insert(key, conn.conn_id);
        }
        self.conns.insert(
            conn.conn_id,
            TcpState {
                local,
                remote,
                sent_end: 0,
                received_end: 0,
                shadow,
            },
        );
        if shadow {
            return Ok(None);
        }
        match conn.origin {
            ConnOrigin::Accept => {
                self.segment(conn.conn_id, unix_ns, false, SYN, true, &[])?;
                self.segment(conn.conn_id, unix_ns, true, SYN | ACK, true, &[])?;
                self.segment(conn.conn_id, unix_ns, false, ACK, false, &[])?;
            }
            ConnOrigin::Connect => {
                self.segment(conn.conn_id, unix_ns, true, SYN, true, &[])?;
                self.segment(conn.conn_id, unix_ns, false, SYN | ACK, true, &[])?;
                self.segment(conn.conn_id, unix_ns, true, ACK, false, &[])?;
            }
            ConnOrigin::Existing => {}
        }
        Ok(Some(conn.conn_id))
    }

    /// Writes one packet; `from_local` picks the direction, `handshake` the pre-data sequence.
    fn segment(
        &mut self,
        conn_id: u64,
        unix_ns: i64,
        from_local: bool,
        flags: u8,
        handshake: bool,
        payload: &[u8],
    ) -> Result<(), SinkError> {
        self.segment_at(
            conn_id, unix_ns, from_local, flags, handshake, None, payload,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn segment_at(
        &mut self,
        conn_id: u64,
        unix_ns: i64,
        from_local: bool,
        flags: u8,
        handshake: bool,
        offset: Option<u64>,
        payload: &[u8],
    ) -> Result<(), SinkError> {
        let Some(state) = self.conns.get(&conn_id) else {
            return Ok(());
        };
        let (src, dst, own_end, peer_end) = if from_local {
            (
                state.local,
                state.remote,
                state.sent_end,
                state.received_end,
            )
        } else {
            (
                state.remote,
                state.local,
                state.received_end,
                state.sent_end,
            )
        };
        // SYNs use the ISN; everything after is ISN + 1 + stream offset.
        let seq = if handshake {
            ISN
        } else {
            ISN.wrapping_add(1)
                .wrapping_add(offset.unwrap_or(own_end) as u32)
        };
        let ack = if flags & ACK != 0 {
            ISN.wrapping_add(1).wrapping_add(peer_end as u32)
        } else {
            0
        };
        self.buf.clear();
        build_packet(&mut self.buf, src, dst, seq, ack, flags, payload);
        write_epb(&mut self.out, unix_ns, &self.buf)?;
        self.counters.packets += 1;
        Ok(())
    }
}

impl<W: Write> Sink for PcapSink<W> {
    fn record(&mut self, _record: &ExchangeRecord<'_>) -> Result<(), SinkError> {
        Ok(())
    }

    fn data(
        &mut self,
        conn: &ConnInfo,
        event: &DataEvent<'_>,
        unix_ns: i64,
    ) -> Result<(), SinkError> {
        let Some(conn_id) = self.state(conn, unix_ns)? else {
            if self.conns.contains_key(&conn.conn_id) {
                self.counters.duplicate_chunks += 1;
            } else {
                self.counters.unaddressed_chunks += 1;
            }
            return Ok(());
        };
        let from_local = event.direction == Direction::Send;
        let mut offset = event.stream_offset;
        for piece in event.data.chunks(MAX_SEGMENT) {
            self.segment_at(
                conn_id,
                unix_ns,
                from_local,
                PSH | ACK,
                false,
                Some(offset),
                piece,
            )?;
            offset += piece.len() as u64;
        }
        if let Some(state) = self.conns.get_mut(&conn_id) {
            let end = event.stream_offset.saturating_add(event.len);
            let slot = if from_local {
                &mut state.sent_end
            } else {
                &mut state.received_end
            };
            *slot = (*slot).max(end);
        }
        Ok(())
    }

    fn closed(&mut self, conn: &ConnInfo, unix_ns: i64) -> Result<(), SinkError> {
        let Some(state) = self.conns.get(&conn.conn_id) else {
            return Ok(());
        };
        if !state.shadow {
            let id = conn.conn_id;
            self.segment(id, unix_ns, true, FIN | ACK, false, &[])?;
            if let Some(state) = self.conns.get_mut(&id) {
                state.sent_end += 1; // a FIN takes one sequence number
            }
            self.segment(id, unix_ns, false, FIN | ACK, false, &[])?;
            if let Some(state) = self.conns.get_mut(&id) {
                state.received_end += 1;
            }
            self.segment(id, unix_ns, true, ACK, false, &[])?;
        }
        if let Some(state) = self.conns.remove(&conn.conn_id) {
            let key = if state.local <= state.remote {
                (state.local, state.remote)
            } else {
                (state.remote, state.local)
            };
            if self.owners.get(&key) == Some(&conn.conn_id) {
                self.owners.remove(&key);
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush()?;
        Ok(())
    }
}

fn push_u32(buf: &mut Vec<u8>, value: u32) {
    buf.extend_from_slice(&value.to_ne_bytes());
}

/// v4-mapped IPv6 addresses as IPv4, so both ends of a connection agree.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

fn write_epb<W: Write>(out: &mut W, unix_ns: i64, packet: &[u8]) -> Result<(), SinkError> {
    let padded = packet.len().div_ceil(4) * 4;
    let total = (32 + padded) as u32;
    let ts = unix_ns.max(0) as u64;
    let mut head = Vec::with_capacity(28);
    push_u32(&mut head, 6);
    push_u32(&mut head, total);
    push_u32(&mut head, 0);
    push_u32(&mut head, (ts >> 32) as u32);
    push_u32(&mut head, ts as u32);
    push_u32(&mut head, packet.len() as u32);
    push_u32(&mut head, packet.len() as u32);
    out.write_all(&head)?;
    out.write_all(packet)?;
    out.write_all(&[0u8; 3][..padded - packet.len()])?;
    out.write_all(&total.to_ne_bytes())?;
    Ok(())
}

fn checksum_add(mut sum: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for pair in &mut chunks {
        sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn checksum_fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 (both ends IPv4) or IPv6 packet carrying one TCP segment.
fn build_packet(
    buf: &mut Vec<u8>,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) {
    let mut tcp = Vec::with_capacity(20 + payload.len());
    tcp.extend_from_slice(&src.port().to_be_bytes());
    tcp.extend_from_slice(&dst.port().to_be_bytes());
    tcp.extend_from_slice(&seq.to_be_bytes());
    tcp.extend_from_slice(&ack.to_be_bytes());
    tcp.push(5 << 4);
    tcp.push(flags);
    tcp.extend_from_slice(&65535u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    tcp.extend_from_slice(payload);
    let tcp_len = tcp.len();
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut pseudo = checksum_add(0, &s.octets());
            pseudo = checksum_add(pseudo, &d.octets());
            pseudo += 6 + tcp_len as u32;
            let sum = checksum_fold(checksum_add(pseudo, &tcp));
            tcp[16..18].copy_from_slice(&sum.to_be_bytes());
            let total = (20 + tcp_len).min(usize::from(u16::MAX)) as u16;
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64;
            ip[9] = 6;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let sum = checksum_fold(checksum_add(0, &ip));
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            buf.extend_from_slice(&ip);
        }
        (s, d) => {
            let s = v6(s);
            let d = v6(d);
            let mut pseudo = checksum_add(0, &s.octets());
            pseudo = checksum_add(pseudo, &d.octets());
            pseudo += 6 + tcp_len as u32;
            let sum = checksum_fold(checksum_add(pseudo, &tcp));
            tcp[16..18].copy_from_slice(&sum.to_be_bytes());
            buf.extend_from_slice(&[0x60, 0, 0, 0]);
            buf.extend_from_slice(&(tcp_len.min(usize::from(u16::MAX)) as u16).to_be_bytes());
            buf.push(6);
            buf.push(64);
            buf.extend_from_slice(&s.octets());
            buf.extend_from_slice(&d.octets());
        }
    }
    buf.extend_from_slice(&tcp);
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_blocks_are_well_formed() {
        let sink = PcapSink::new(Vec::new()).map_err(|e| e.to_string());
        let Ok(sink) = sink else {
            panic!("new failed");
        };
        let bytes = sink.out;
        assert_eq!(bytes.len(), 60);
        assert_eq!(&bytes[0..4], &0x0A0D_0D0Au32.to_ne_bytes());
        assert_eq!(&bytes[28..32], &1u32.to_ne_bytes());
    }

    #[test]
    fn ipv4_header_checksum_verifies() {
        let mut buf = Vec::new();
        let a: SocketAddr = "127.0.0.1:1234".parse().unwrap_or_else(|_| unreachable!());
        let b: SocketAddr = "127.0.0.1:80".parse().unwrap_or_else(|_| unreachable!());
        build_packet(&mut buf, a, b, 1, 2, ACK, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(checksum_fold(checksum_add(0, &buf[..20])), 0);
        assert_eq!(buf.len(), 20 + 20 + 18);
    }
}
