/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Go crypto/tls: uprobes on the entry of (*Conn).Write, (*Conn).Read and
 * (*Conn).handshakeContext, and on each RET instruction of Read (never
 * uretprobes: Go moves goroutine stacks, and a rewritten return address
 * would crash the program).
 *
 * Write is recorded at its entry: it returns only once all of b is written
 * (or the connection failed for good), and a record made at its return
 * could reach userspace after the peer's answer, read by another goroutine,
 * which would pair that answer with nothing.
 *
 * Go's register ABI (Go >= 1.17, amd64): the receiver is in RAX, the
 * slice's pointer and length in RBX and RCX, the result n in RAX, and R14
 * always holds the current goroutine (g). Read's entry and return are
 * paired by (tgid, g): a goroutine blocked in Read may come back on another
 * thread.
 *
 * The socket: tls.Conn.conn (net.Conn: itab, data) -> *net.TCPConn ->
 * netFD -> poll.FD.Sysfd, with the offsets from the attach cookie. The
 * itab's first method must be net.(*TCPConn).Close, so a tls.Conn over any
 * other net.Conn leaves the fd unknown (counted) instead of being guessed.
 *
 * The connection: the syscall backend's fd table, or on the socket backend
 * the sock's entry in go_tls_socks (see tls.bpf.h).
 *
 * Needs syscall.bpf.h and tls.bpf.h included before it.
 */
#ifndef GO_TLS_BPF_H
#define GO_TLS_BPF_H

#if defined(__TARGET_ARCH_x86)
#define GO_REG_RECEIVER(ctx) ((ctx)->rax)
#define GO_REG_SLICE_PTR(ctx) ((ctx)->rbx)
#define GO_REG_SLICE_LEN(ctx) ((ctx)->rcx)
#define GO_REG_RESULT0(ctx) ((ctx)->rax)
#define GO_REG_G(ctx) ((ctx)->r14)
#define GO_REG_IP(ctx) ((ctx)->rip)
#endif

struct go_tls_key {
	__u32 tgid;
	__u32 reserved;
	/* The goroutine's g. */
	__u64 goroutine;
};

/* A (*Conn).Read in flight on a goroutine. */
struct go_tls_call {
	__u64 buf;
	__u32 fd;
	__u32 reserved;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct go_tls_key);
	__type(value, struct go_tls_call);
} go_tls_calls SEC(".maps");

#if defined(__TARGET_ARCH_x86)
/* The socket fd of the *tls.Conn in the receiver register; -1 when not a *net.TCPConn. */
static __always_inline __s64 go_tls_fd(struct pt_regs *ctx)
{
	__u64 cookie = attach_cookie(ctx);
	__u64 tcp_conn_close = GO_REG_IP(ctx) + GO_COOKIE_CLOSE_DELTA(cookie);
	__u64 iface[2], close_method, netfd;
	__s64 sysfd;

	if (bpf_probe_read_user(iface, sizeof(iface),
				(void *)(GO_REG_RECEIVER(ctx) + GO_COOKIE_TLS_CONN_CONN(cookie))))
		return -1;
	if (bpf_probe_read_user(&close_method, sizeof(close_method),
				(void *)(iface[0] + GO_COOKIE_ITAB_FUN0(cookie))) ||
	    close_method != tcp_conn_close)
		return -1;
	if (bpf_probe_read_user(&netfd, sizeof(netfd),
				(void *)(iface[1] + GO_COOKIE_TCP_CONN_FD(cookie))))
		return -1;
	if (bpf_probe_read_user(&sysfd, sizeof(sysfd),
				(void *)(netfd + GO_COOKIE_NETFD_SYSFD(cookie))))
		return -1;
	return sysfd >= 0 && sysfd <= 0x7fffffff ? sysfd : -1;
}

/* Where a Go call's plaintext goes: its connection and that connection's plaintext offsets. */
struct go_tls_stream {
	__u64 conn_id;
	__u16 origin;
	__u64 *sent;
	__u64 *recvd;
};

/*
 * Syscall backend: the watched connection of the fd, marked TLS (its socket
 * bytes are ciphertext from now on).
 */
static __always_inline int go_tls_fd_stream(__u32 tgid, __u32 fd, struct go_tls_stream *out)
{
	struct conn_state *conn = watched_conn(tgid, fd, ORIGIN_EXISTING);

	if (!conn)
		return 0;
	conn->tls = 1;
	out->conn_id = conn->conn_id;
	out->origin = conn->origin;
	out->sent = &conn->tls_sent;
	out->recvd = &conn->tls_recvd;
	return 1;
}

/*
 * Socket backend: the fd's sock in go_tls_socks (created here), whose
 * connection the socket events on that sock fill in (join_go_tls_sock). Until
 * one has, the call has no connection: a tls.Conn's handshake always moves
 * bytes first, so only a connection joined mid-way loses its first call.
 */
static __always_inline int go_tls_sock_stream(__u32 fd, struct go_tls_stream *out)
{
	struct file *file = file_of_fd(fd);
	struct sock *sk = file ? tcp_sock_of_file(file) : NULL;
	struct tls_stream fresh = {}, *stream;
	__u64 key = (__u64)sk;

	/* An unwatched sock never gets a connection to join: no entry. */
	if (!sk || !port_watched(BPF_CORE_READ(sk, __sk_common.skc_num),
				 bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport))))
		return 0;
	stream = bpf_map_lookup_elem(&go_tls_socks, &key);
	if (!stream) {
		go_tls_seen = 1;
		bpf_map_update_elem(&go_tls_socks, &key, &fresh, BPF_NOEXIST);
		return 0;
	}
	if (!stream->conn_id)
		return 0;
	out->conn_id = stream->conn_id;
	out->origin = stream->origin;
	out->sent = &stream->sent;
	out->recvd = &stream->recvd;
	return 1;
}

/* The socket fd of the *tls.Conn in the receiver register if its process is selected, or -1. */
static __always_inline __s64 go_tls_selected_fd(struct pt_regs *ctx, __u32 tgid)
{
	__s64 fd;

	if (filter_tgid && filter_tgid != tgid)
		return -1;
	fd = go_tls_fd(ctx);
	if (fd < 0)
		stat_add(STAT_TLS_FD_UNKNOWN, 1);
	return fd;
}

/* The plaintext stream of socket fd, this backend's way, or 0. */
static __always_inline int go_tls_stream_of(__u32 tgid, __u32 fd, struct go_tls_stream *out)
{
	return socket_backend ? go_tls_sock_stream(fd, out) : go_tls_fd_stream(tgid, fd, out);
}

/* The plaintext stream of the *tls.Conn in the receiver register, or 0. */
static __always_inline int go_tls_stream(struct pt_regs *ctx, __u32 tgid, struct go_tls_stream *out)
{
	__s64 fd = go_tls_selected_fd(ctx, tgid);

	return fd >= 0 && go_tls_stream_of(tgid, fd, out);
}

/* len bytes of plaintext at buf on the stream: one record. */
static __always_inline void go_tls_emit(struct go_tls_stream *stream, __u64 buf, __u64 len,
					int write)
{
	__u32 zero = 0;
	struct stat_counters *counters = bpf_map_lookup_elem(&stats, &zero);
	struct data_call data = {
		.buf = buf,
		.syscall = write ? SYSCALL_GO_TLS_WRITE : SYSCALL_GO_TLS_READ,
		.direction = write ? DIRECTION_SEND : DIRECTION_RECV,
		.mode = COPY_BUFFER,
		.data_flags = DATA_FLAG_TLS,
	};
	__u64 offset;

	if (!counters)
		return;
	counters->values[STAT_TLS_CALLS_TRACED]++;
	offset = write ? FETCH_ADD(stream->sent, len) : FETCH_ADD(stream->recvd, len);
	copy_plaintext(&data, counters, stream->conn_id, stream->origin, offset, len);
}

SEC("uprobe")
int go_tls_write_enter(struct pt_regs *ctx)
{
	__s64 len = GO_REG_SLICE_LEN(ctx);
	struct go_tls_stream stream;

	if (go_tls_stream(ctx, bpf_get_current_pid_tgid() >> 32, &stream) && len > 0 &&
	    len <= 0x7fffffff)
		go_tls_emit(&stream, GO_REG_SLICE_PTR(ctx), len, 1);
	return 0;
}

/*
 * Read: the buffer is kept for the return probes. The connection is found
 * again there: on the socket backend the read inside the call may be what
 * first gives a sock its connection.
 */
SEC("uprobe")
int go_tls_read_enter(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_tls_key key = { .tgid = tgid, .goroutine = GO_REG_G(ctx) };
	struct go_tls_call call = { .buf = GO_REG_SLICE_PTR(ctx) };
	struct go_tls_stream stream;
	__s64 fd = go_tls_selected_fd(ctx, tgid);

	/* A slot left by a call whose return was not seen must not serve this one. */
	if (fd < 0) {
		bpf_map_delete_elem(&go_tls_calls, &key);
		return 0;
	}
	call.fd = fd;
	/* Marks the connection TLS (syscall backend) or registers the sock (socket backend). */
	go_tls_stream_of(tgid, fd, &stream);
	bpf_map_update_elem(&go_tls_calls, &key, &call, BPF_ANY);
	return 0;
}

/* The handshake: its ciphertext is not logged. No call slot: Read and Write run it too. */
SEC("uprobe")
int go_tls_handshake_enter(struct pt_regs *ctx)
{
	struct go_tls_stream stream;

	go_tls_stream(ctx, bpf_get_current_pid_tgid() >> 32, &stream);
	return 0;
}

/* On a RET of Read: n = RAX bytes at the entry's buffer. */
SEC("uprobe")
int go_tls_read_ret(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_tls_key key = { .tgid = tgid, .goroutine = GO_REG_G(ctx) };
	struct go_tls_call *slot = bpf_map_lookup_elem(&go_tls_calls, &key);
	struct go_tls_stream stream;
	struct go_tls_call call;
	__s64 n = GO_REG_RESULT0(ctx);

	if (!slot)
		return 0;
	call = *slot;
	bpf_map_delete_elem(&go_tls_calls, &key);
	if (n <= 0 || n > 0x7fffffff)
		return 0;
	if (go_tls_stream_of(tgid, call.fd, &stream))
		go_tls_emit(&stream, call.buf, n, 0);
	return 0;
}
#endif

#endif /* GO_TLS_BPF_H */
