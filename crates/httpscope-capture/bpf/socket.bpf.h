/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The socket backend: BTF tracepoints on sock_send_length/sock_recv_length
 * fire on socket sends and receives only, in the calling task, with the
 * struct sock. The ports come from the sock before anything else; a watched
 * socket keeps its connection state in socket storage, which the kernel
 * frees with the socket (no fd table, no negative cache, no fd reuse
 * aliasing). The syscall and its buffers come from the task's saved
 * registers; a call with no user buffer of its own (sendfile, splice,
 * io_uring, the *mmsg calls) or whose fd does not hold this socket is
 * counted, never copied. inet_sock_set_state tells accept from connect and
 * tcp_destroy_sock ends the connection. No syscall tracepoint is attached.
 *
 * Needs tls.bpf.h, verdict.bpf.h and budget_walk.bpf.h included before it.
 */
#ifndef HTTPSCOPE_SOCKET_BPF_H
#define HTTPSCOPE_SOCKET_BPF_H

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct conn_state);
} sock_conns SEC(".maps");

static __always_inline int sock_watched(struct sock *sk)
{
	return port_watched(sk->__sk_common.skc_num, bpf_ntohs(sk->__sk_common.skc_dport));
}

/* The state of a watched TCP socket seen for the first time, or NULL. */
static __always_inline struct conn_state *sock_conn_create(struct sock *sk, __u16 origin)
{
	unsigned short family = sk->__sk_common.skc_family;
	struct conn_state *conn;
	__u64 conn_id;

	if (sk->sk_protocol != IPPROTO_TCP || (family != AF_INET && family != AF_INET6))
		return NULL;
	conn_id = new_conn_id();
	if (!conn_id)
		return NULL;
	struct conn_state fresh = {
		.conn_id = conn_id,
		.origin = origin,
		.open_pending = 1,
		.fd = HTTPSCOPE_FD_UNKNOWN,
	};
	conn = bpf_sk_storage_get(&sock_conns, sk, &fresh, BPF_SK_STORAGE_GET_F_CREATE);
	stat_add(conn ? STAT_CONNS_WATCHED : STAT_CONN_TABLE_FULL, 1);
	return conn;
}

/*
 * The origin of a connection first seen at a data call, its open missed (open
 * before capture, or its socket storage not made then). A receive that took
 * every byte the stream ever received, on a stream that has written nothing,
 * is the stream's start: it is followed from there as if its accept had been
 * seen. Anything else is joined mid-stream.
 */
static __always_inline __u16 first_sight_origin(struct sock *sk, __u8 direction, int ret)
{
	struct tcp_sock *tp = (struct tcp_sock *)sk;

	if (direction != DIRECTION_RECV || ret <= 0)
		return ORIGIN_EXISTING;
	if (BPF_CORE_READ(tp, bytes_received) != (__u64)ret || BPF_CORE_READ(tp, bytes_sent) ||
	    BPF_CORE_READ(tp, write_seq) != BPF_CORE_READ(tp, snd_una))
		return ORIGIN_EXISTING;
	return ORIGIN_ACCEPT;
}

/* Whether fd of process tgid holds sk; the last pair that did is remembered. */
static __always_inline int fd_holds_sock(struct conn_state *conn, __u32 tgid, __u32 fd,
					 struct sock *sk)
{
	struct file *file;

	if (conn->fd_tgid == tgid && conn->fd == fd)
		return 1;
	file = file_of_fd(fd);
	if (!file || file != BPF_CORE_READ(sk, sk_socket, file))
		return 0;
	conn->fd_tgid = tgid;
	conn->fd = fd;
	return 1;
}

/*
 * What the socket call running in this task moved, and from which user
 * buffer. Only a read/write-family syscall in the same direction on an fd
 * that holds sk names a buffer; anything else is counted as not copied.
 */
static __always_inline void describe_sock_call(struct data_call *call,
					       struct stat_counters *counters,
					       struct conn_state *conn, struct sock *sk, __u32 tgid,
					       __u8 direction)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct pt_regs___kernel *regs;
	long nr;

	call->direction = direction;
	call->mode = COPY_NONE;
	call->syscall = SYSCALL_OTHER;
	if (task->flags & PF_IO_WORKER) {
		call->syscall = SYSCALL_IO_URING;
		return;
	}
#if defined(__TARGET_ARCH_x86)
	if (task->thread_info.status & TS_COMPAT)
		return;
#endif
	regs = (struct pt_regs___kernel *)bpf_task_pt_regs(task);
	if (!regs)
		return;
	nr = SYSCALL_NR(regs);
	switch (nr) {
	case NR_SENDFILE:
		call->syscall = SYSCALL_SENDFILE;
		return;
	case NR_SPLICE:
		call->syscall = SYSCALL_SPLICE;
		return;
	case NR_SENDMMSG:
		call->syscall = SYSCALL_SENDMMSG;
		return;
	case NR_RECVMMSG:
		call->syscall = SYSCALL_RECVMMSG;
		return;
	case NR_IO_URING_ENTER:
		call->syscall = SYSCALL_IO_URING;
		return;
	}
	if (!user_buffer_of_syscall(nr, regs, call))
		return;
	if (call->direction != direction || !fd_holds_sock(conn, tgid, SYSCALL_ARG1(regs), sk)) {
		call->direction = direction;
		call->mode = COPY_NONE;
		counters->values[STAT_FD_LOOKUP_FAILED]++;
	}
}

/* A send or receive of ret bytes on sk by the current task. */
static __always_inline int on_sock_data(struct sock *sk, int ret, int flags, __u8 direction)
{
	struct stat_counters *counters;
	struct data_call call = {};
	struct conn_state *conn = NULL;
	struct ssl_call *ssl;
	__u32 tgid, zero = 0;
	__u8 one = 1;
	int node = 0;

	if (ladder_stops_at(1))
		return 0;
	counters = bpf_map_lookup_elem(&stats, &zero);
	if (!counters)
		return 0;
	counters->values[STAT_HOOKED_SYSCALLS]++;
	if (!sock_watched(sk)) {
		/*
		 * A socket reset or closed under its owner gave its local port back (it
		 * reads 0) and may still hold received bytes: its storage says if it is watched.
		 */
		if (sk->__sk_common.skc_num)
			return 0;
		conn = bpf_sk_storage_get(&sock_conns, sk, 0, 0);
		if (!conn)
			return 0;
	}
	/* A peek leaves the bytes in the socket: the next read reports them. */
	if (flags & (MSG_PEEK | MSG_ERRQUEUE)) {
		if (flags & MSG_PEEK)
			counters->values[STAT_PEEKS_IGNORED]++;
		return 0;
	}
	ssl = active_ssl_call();
	/* A failed read inside SSL_read still tells which socket the SSL object uses. */
	if (ret <= 0 && !ssl)
		return 0;
	tgid = bpf_get_current_pid_tgid() >> 32;
	if (!conn)
		conn = bpf_sk_storage_get(&sock_conns, sk, 0, 0);
	if (!conn) {
		conn = sock_conn_create(sk, first_sight_origin(sk, direction, ret));
		if (!conn)
			return 0;
	}
	if (conn->ignored)
		return 0;
	/* --all-ports: a connection judged not HTTP costs this one lookup per call. */
	if (conn->verdict == VERDICT_DROP)
		return 0;
	if (conn->open_pending && !process_selected(tgid)) {
		conn->ignored = 1;
		counters->values[STAT_CONNS_FILTERED]++;
		return 0;
	}
	if (ladder_stops_at(2))
		return 0;
	/*
	 * Ciphertext of a connection already known as TLS, inside an OpenSSL or
	 * GnuTLS call: only the SSL object's binding matters (the bytes are never
	 * copied), so the syscall is not looked at.
	 */
	if (ssl && conn->tls && !conn->open_pending) {
		join_ssl_stream(ssl, tgid, conn);
		if (ret > 0) {
			/* As call_admitted decides for bytes moved inside a TLS call. */
			if (all_ports)
				conn->verdict = VERDICT_KEEP;
			counters->values[STAT_CIPHERTEXT_SUPPRESSED]++;
		}
		return 0;
	}
	describe_sock_call(&call, counters, conn, sk, tgid, direction);
	if (ssl) {
		join_ssl_stream(ssl, tgid, conn);
		conn->tls = 1;
	}
	join_go_tls_sock(sk, conn);
	/* The ciphertext a Node TLSWrap reads, or a Node client's first flight (node_tls.bpf.h). */
	if (ret > 0 &&
	    (direction == DIRECTION_RECV ? node_tls_receive(conn->conn_id, conn->fd, &call, ret)
					 : node_tls_first_send(conn, &call, ret))) {
		conn->tls = 1;
		node = 1;
	}
	/* --all-ports: nothing of a connection is reported before it is judged HTTP. */
	if (ret <= 0 || !call_admitted(conn, &call, ret, ssl != NULL || node))
		return 0;
	if (conn->open_pending) {
		if (!emit_open(conn, conn->fd, sk))
			conn->open_pending = 0;
		bpf_map_update_elem(&traced_processes, &tgid, &one, BPF_ANY);
	}
	copy_data(counters, conn, ret, &call);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(sock_send, struct sock *sk, int ret, int flags)
{
	return on_sock_data(sk, ret, flags, DIRECTION_SEND);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(sock_recv, struct sock *sk, int ret, int flags)
{
	return on_sock_data(sk, ret, flags, DIRECTION_RECV);
}

/* A new connection: connect() moves it to SYN_SENT, an accepted one leaves SYN_RECV. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(sock_state, struct sock *sk, int oldstate, int newstate)
{
	__u16 origin;

	if (newstate == TCP_SYN_SENT)
		origin = ORIGIN_CONNECT;
	else if (newstate == TCP_ESTABLISHED && oldstate == TCP_SYN_RECV)
		origin = ORIGIN_ACCEPT;
	else
		return 0;
	if (sock_watched(sk))
		sock_conn_create(sk, origin);
	return 0;
}

/*
 * The socket is destroyed: no byte can move on it any more. No port filter: a
 * socket that reached TCP_CLOSE has given its local port back (it reads 0), so
 * only the storage says whether it was watched.
 */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(sock_destroy, struct sock *sk)
{
	struct conn_state *conn;
	__u64 key = (__u64)sk;

	conn = bpf_sk_storage_get(&sock_conns, sk, 0, 0);
	if (conn && !conn->ignored) {
		if (!conn->open_pending)
			emit_close(conn);
		count_silent_end(conn);
		if (conn->tls)
			bpf_map_delete_elem(&tls_conn_offsets, &conn->conn_id);
		forget_tls_budget(conn);
	}
	/* The next sock at this address is another connection: it must not find this one's entry. */
	if (go_tls_seen)
		bpf_map_delete_elem(&go_tls_socks, &key);
	return 0;
}

/* This backend: len bytes of a returned call's plaintext, on the connection its object last used. */
static __always_inline void ssl_emit_sock(struct ssl_call *call, __u64 len)
{
	struct ssl_key key = { .tgid = bpf_get_current_pid_tgid() >> 32, .ssl = call->ssl };
	struct stat_counters *counters;
	struct tls_stream *stream;
	__u64 *sent, *recvd;
	__u32 zero = 0;

	/*
	 * None: the SSL object's socket is not watched (or never moved a byte), or a
	 * Node TLSWrap's (a rustls buffer's) object was not bound (counted).
	 */
	stream = bpf_map_lookup_elem(&tls_streams, &key);
	counters = bpf_map_lookup_elem(&stats, &zero);
	if (!stream && (call->memory_bio || call->op >= SSL_OP_RUSTLS_READ))
		stat_add(STAT_TLS_FD_UNKNOWN, 1);
	if (!stream || !counters)
		return;
	sent = &stream->sent;
	recvd = &stream->recvd;
	if (call->op >= SSL_OP_RUSTLS_READ) {
		struct tls_offsets fresh = {}, *offsets;

		bpf_map_update_elem(&tls_conn_offsets, &stream->conn_id, &fresh, BPF_NOEXIST);
		offsets = bpf_map_lookup_elem(&tls_conn_offsets, &stream->conn_id);
		if (!offsets)
			return;
		sent = &offsets->sent;
		recvd = &offsets->recvd;
	}
	/* One call site: the capture budget's walk is inlined once. */
	emit_tls_data(counters, call, stream->conn_id, stream->origin, sent, recvd, len,
		      call->op < SSL_OP_RUSTLS_READ && stream->node);
}

/* This backend's TLS return probe: the call's connection is the one its SSL object last used. */
SEC("uretprobe")
int ssl_ret_sock(struct pt_regs *ctx)
{
	struct ssl_call call;
	__u64 len;

	if (ssl_call_returned(ctx, &call, &len))
		ssl_emit_sock(&call, len);
	return 0;
}

#endif /* HTTPSCOPE_SOCKET_BPF_H */
