/* SPDX-License-Identifier: GPL-2.0 */
/*
 * --all-ports: every TCP connection is a candidate, and the kernel decides
 * once per connection, from the first bytes it sees in either direction,
 * whether it carries HTTP/1.x, HTTP/2 (the client preface or a SETTINGS
 * frame) or TLS whose plaintext the TLS hooks read. The verdict lives in the
 * connection's state: a connection found to carry anything else is dropped
 * from then on at the cost of the lookup that found its state. Its open and
 * close records are never sent. A connection already open at attach time is
 * judged at its next message boundary: its calls are skipped until one starts
 * like an HTTP message, or dropped after VERDICT_MAX_PROBES calls.
 *
 * Needs conn.bpf.h and copy.bpf.h included before it.
 */
#ifndef HTTPSCOPE_VERDICT_BPF_H
#define HTTPSCOPE_VERDICT_BPF_H

enum conn_verdict {
	VERDICT_UNDECIDED = 0,
	VERDICT_KEEP = 1,
	VERDICT_DROP = 2,
};

/* Calls of an already open connection judged before giving up on it. */
#define VERDICT_MAX_PROBES 64
/* Bytes looked at: the longest start recognised is the h2 preface's first 14. */
#define VERDICT_PEEK 16

static __always_inline int starts_with(const __u8 *bytes, __u32 len, const char *prefix, __u32 n)
{
	if (len < n)
		return 0;
#pragma unroll
	for (int i = 0; i < VERDICT_PEEK; i++) {
		if (i >= n)
			break;
		if (bytes[i] != (__u8)prefix[i])
			return 0;
	}
	return 1;
}

/* An HTTP/1.x request or status line, or the HTTP/2 client preface. */
static __always_inline int http1_or_preface(const __u8 *b, __u32 len)
{
	return starts_with(b, len, "HTTP/1.", 7) || starts_with(b, len, "GET ", 4) ||
	       starts_with(b, len, "POST ", 5) || starts_with(b, len, "PUT ", 4) ||
	       starts_with(b, len, "HEAD ", 5) || starts_with(b, len, "DELETE ", 7) ||
	       starts_with(b, len, "OPTIONS ", 8) || starts_with(b, len, "PATCH ", 6) ||
	       starts_with(b, len, "CONNECT ", 8) || starts_with(b, len, "TRACE ", 6) ||
	       starts_with(b, len, "PRI * HTTP/2.0", 14);
}

/*
 * A valid first HTTP/2 frame: SETTINGS (type 4) on stream 0, a whole number
 * of 6-byte settings, flags 0 (or ACK with no payload). A server may send it
 * before it has read the client's preface.
 */
static __always_inline int h2_settings_frame(const __u8 *b, __u32 len)
{
	__u32 length;

	if (len < 9 || b[3] != 4 || b[5] || b[6] || b[7] || (b[8] & 0x7f))
		return 0;
	length = ((__u32)b[0] << 16) | ((__u32)b[1] << 8) | b[2];
	if (b[4] == 1)
		return length == 0;
	return b[4] == 0 && length % 6 == 0 && length <= 16384;
}

/* A TLS handshake record (ClientHello or ServerHello): 0x16 0x03 0x0N. */
static __always_inline int tls_handshake(const __u8 *b, __u32 len)
{
	return len >= 3 && b[0] == 0x16 && b[1] == 0x03 && b[2] <= 0x04;
}

/* The first bytes the call moved (up to VERDICT_PEEK); returns how many were read. */
static __always_inline __u32 peek_call(struct data_call *call, __s64 ret, __u8 *bytes)
{
	__u64 base = call->buf;
	__u32 n;

	if (call->mode == COPY_NONE || ret <= 0)
		return 0;
	if (call->mode == COPY_IOVEC) {
		struct user_iovec iov;

		if (!call->iovcnt || bpf_probe_read_user(&iov, sizeof(iov), (void *)call->buf))
			return 0;
		base = (__u64)iov.base;
		if ((__u64)ret > iov.len)
			ret = iov.len;
	}
	n = ret > VERDICT_PEEK ? VERDICT_PEEK : ret;
	/* Keeps the bound check below in the program: the verifier must see it. */
	asm volatile("" : "+r"(n));
	if (n == 0 || n > VERDICT_PEEK || bpf_probe_read_user(bytes, n, (void *)base))
		return 0;
	return n;
}

/*
 * Whether this call's bytes are captured: always without --all-ports; with
 * it, once the connection is judged HTTP. Judges undecided connections.
 */
static __always_inline int call_admitted(struct conn_state *conn, struct data_call *call, __s64 ret,
					 int in_tls_call)
{
	__u8 bytes[VERDICT_PEEK] = {};
	__u32 len;

	if (!all_ports || conn->verdict == VERDICT_KEEP)
		return 1;
	if (conn->verdict == VERDICT_DROP)
		return 0;
	if (in_tls_call) {
		conn->verdict = VERDICT_KEEP;
		return 1;
	}
	len = peek_call(call, ret, bytes);
	if (http1_or_preface(bytes, len) || h2_settings_frame(bytes, len) ||
	    (tls_probes && tls_handshake(bytes, len))) {
		conn->verdict = VERDICT_KEEP;
		return 1;
	}
	/* Unreadable bytes say nothing. A new connection's first bytes said no;
	 * an old one gets more chances to show a message start. */
	if (len && (conn->origin != ORIGIN_EXISTING || ++conn->probes >= VERDICT_MAX_PROBES)) {
		conn->verdict = VERDICT_DROP;
		stat_add(STAT_CONNS_NOT_HTTP, 1);
	}
	return 0;
}

/*
 * Open and close records are sent for every watched connection; under
 * --all-ports only for the connections judged HTTP.
 */
static __always_inline int conn_reported(struct conn_state *conn)
{
	return !all_ports || conn->verdict == VERDICT_KEEP;
}

/* A connection ends before its open record went out, and no skip reason was counted for it. */
static __always_inline void count_silent_end(struct conn_state *conn)
{
	if (conn->open_pending && conn->verdict != VERDICT_DROP)
		stat_add(STAT_CONNS_SILENT, 1);
}

#endif /* HTTPSCOPE_VERDICT_BPF_H */
