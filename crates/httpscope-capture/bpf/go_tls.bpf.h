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
 * Included by httpscope.bpf.c after the connection and record helpers.
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
	__u64 cookie = bpf_get_attach_cookie(ctx);
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
	if (bpf_probe_read_user(&netfd, sizeof(netfd), (void *)(iface[1] + GO_COOKIE_TCP_CONN_FD(cookie))))
		return -1;
	if (bpf_probe_read_user(&sysfd, sizeof(sysfd), (void *)(netfd + GO_COOKIE_NETFD_SYSFD(cookie))))
		return -1;
	return sysfd >= 0 && sysfd <= 0x7fffffff ? sysfd : -1;
}

/*
 * The watched connection of this *tls.Conn, marked TLS (its socket bytes are
 * ciphertext from now on), or NULL.
 */
static __always_inline struct conn_state *go_tls_conn(struct pt_regs *ctx, __u32 tgid, __u32 *fd_out)
{
	__s64 fd;
	struct conn_state *conn;

	if (filter_tgid && filter_tgid != tgid)
		return NULL;
	fd = go_tls_fd(ctx);
	if (fd < 0) {
		stat_add(STAT_TLS_FD_UNKNOWN, 1);
		return NULL;
	}
	conn = watched_conn(tgid, fd, ORIGIN_EXISTING);
	if (conn)
		conn->tls = 1;
	*fd_out = fd;
	return conn;
}

SEC("uprobe")
int go_tls_write_enter(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__s64 len = GO_REG_SLICE_LEN(ctx);
	__u32 fd;

	if (go_tls_conn(ctx, tgid, &fd) && len > 0 && len <= 0x7fffffff)
		emit_tls_plaintext(tgid, fd, GO_REG_SLICE_PTR(ctx), len, 1, SYSCALL_GO_TLS_READ,
				   SYSCALL_GO_TLS_WRITE);
	return 0;
}

SEC("uprobe")
int go_tls_read_enter(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_tls_key key = { .tgid = tgid, .goroutine = GO_REG_G(ctx) };
	struct go_tls_call call = { .buf = GO_REG_SLICE_PTR(ctx) };

	/* A slot left by a call whose return was not seen must not serve this one. */
	if (!go_tls_conn(ctx, tgid, &call.fd)) {
		bpf_map_delete_elem(&go_tls_calls, &key);
		return 0;
	}
	bpf_map_update_elem(&go_tls_calls, &key, &call, BPF_ANY);
	return 0;
}

/* The handshake: its ciphertext is not logged; no call slot (Read/Write may run it inside). */
SEC("uprobe")
int go_tls_handshake_enter(struct pt_regs *ctx)
{
	__u32 fd;

	go_tls_conn(ctx, bpf_get_current_pid_tgid() >> 32, &fd);
	return 0;
}

/* On a RET of Read: n = RAX bytes at the entry's buffer. */
SEC("uprobe")
int go_tls_read_ret(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct go_tls_key key = { .tgid = tgid, .goroutine = GO_REG_G(ctx) };
	struct go_tls_call *slot = bpf_map_lookup_elem(&go_tls_calls, &key);
	struct go_tls_call call;
	__s64 n = GO_REG_RESULT0(ctx);

	if (!slot)
		return 0;
	call = *slot;
	bpf_map_delete_elem(&go_tls_calls, &key);
	if (n <= 0 || n > 0x7fffffff)
		return 0;
	emit_tls_plaintext(tgid, call.fd, call.buf, n, 0, SYSCALL_GO_TLS_READ, SYSCALL_GO_TLS_WRITE);
	return 0;
}
#endif

#endif /* GO_TLS_BPF_H */
