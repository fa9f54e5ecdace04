/* SPDX-License-Identifier: GPL-2.0 */
/*
 * TLS plaintext: uprobes on the TLS library's SSL_read/SSL_write(_ex),
 * SSL_do_handshake and SSL_set_fd (OpenSSL), or gnutls_record_recv/send and
 * gnutls_handshake (GnuTLS, whose default transport calls recv/send on the
 * session's fd inside the call, as OpenSSL's socket BIO does). The call's socket is the one the socket
 * calls made inside the call use (or the fd given to SSL_set_fd); plaintext
 * gets its own per-direction stream on that connection, and the connection's
 * ciphertext is no longer logged from then on. Each backend supplies the
 * return probe, which resolves the call's connection its own way.
 *
 * Needs node_tls.bpf.h and copy.bpf.h included before it.
 */
#ifndef HTTPSCOPE_TLS_BPF_H
#define HTTPSCOPE_TLS_BPF_H

enum ssl_op {
	SSL_OP_WRITE = 1,
	SSL_OP_READ = 2,
	SSL_OP_WRITE_EX = 3,
	SSL_OP_READ_EX = 4,
	/* SSL_do_handshake (SSL_connect, SSL_accept), gnutls_handshake: no data, only the socket. */
	SSL_OP_HANDSHAKE = 5,
	/* GnuTLS: gnutls_record_send / gnutls_record_recv (session, data, size) -> ssize_t. */
	SSL_OP_GNUTLS_SEND = 6,
	SSL_OP_GNUTLS_RECV = 7,
	/* rustls (rustls.bpf.h): read_tls/write_tls binding only, no data. */
	SSL_OP_RUSTLS_BIND = 8,
	/* Reader::read: io::Result<usize> returned as (RAX = 0 for Ok, RDX = n). */
	SSL_OP_RUSTLS_READ = 9,
	/* write_tls sending what Writer::write took: plain_len bytes at buf (iovecs: iovcnt). */
	SSL_OP_RUSTLS_WRITE = 10,
	SSL_OP_RUSTLS_WRITEV = 11,
};

/* A TLS library call in flight on this thread. */
struct ssl_call {
	__u64 ssl;
	/* The stack pointer at the call's entry: a call entered inside it runs below. */
	__u64 sp;
	__u64 buf;
	/* SSL_read_ex/SSL_write_ex: where the library stores the byte count. */
	__u64 count_ptr;
	/* rustls writes: the plaintext length (and iovec count) known before the call. */
	__u64 plain_len;
	__u64 iovcnt;
	__u32 fd;
	__u8 op;
	/* A socket syscall inside the call found the fd (socket backend: the connection). */
	__u8 fd_known;
	__u8 active;
	/* A Node.js TLSWrap thread: socket calls inside the call are not its (node_tls.bpf.h). */
	__u8 memory_bio;
};

struct ssl_key {
	__u32 tgid;
	__u32 reserved;
	__u64 ssl;
};

/*
 * Per thread: the TLS library call in flight, and the one it was entered
 * inside (a BIO callback, or a library calling another): each level returns
 * with its own arguments.
 */
struct ssl_thread {
	struct ssl_call call;
	struct ssl_call outer;
};

DEFINE_THREAD_STORAGE(ssl_calls, struct ssl_thread);

/* Syscall backend: an SSL object's socket fd, and whether Node's TLSWrap bound it. */
struct ssl_fd {
	__u32 fd;
	__u32 node;
};

/* (tgid, SSL *) -> its fd: for calls served from the library's buffer, without a syscall. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ssl_key);
	__type(value, struct ssl_fd);
} ssl_fds SEC(".maps");

/* Socket backend: the plaintext streams of one SSL object, on its connection. */
struct tls_stream {
	__u64 conn_id;
	__u64 sent;
	__u64 recvd;
	/* Bound by Node's TLSWrap (tls_lib node). */
	__u32 node;
	/* How the connection was found (ORIGIN_*; 0 before a socket event joined it). */
	__u16 origin;
	__u16 reserved;
};

/*
 * Socket backend: (tgid, SSL *) -> its connection and plaintext offsets. The
 * uprobes cannot reach socket storage, so the socket calls inside an SSL call
 * leave the connection here.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ssl_key);
	__type(value, struct tls_stream);
} tls_streams SEC(".maps");

/*
 * Socket backend, Go crypto/tls (go_tls.bpf.h): struct sock * -> the plaintext
 * streams of the tls.Conn on it. The Go uprobes create the entry (they know
 * the sock from the fd); the socket events on that sock fill in its
 * connection and mark the connection TLS, as the socket calls inside an
 * OpenSSL call do for tls_streams.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct tls_stream);
} go_tls_socks SEC(".maps");

/* Socket backend: a connection's plaintext offsets, by connection id. */
struct tls_offsets {
	__u64 sent;
	__u64 recvd;
};

/*
 * Socket backend, rustls (rustls.bpf.h): the plaintext of one connection
 * comes through several objects (the Reader's and the Writer's buffers,
 * again at each address the connection is moved to), each with its
 * tls_streams entry: the offsets are the connection's, kept here.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct tls_offsets);
} tls_conn_offsets SEC(".maps");

/*
 * The capture budget's state of a connection's TLS plaintext, by connection
 * id: made at its first plaintext call, deleted when the connection ends
 * (the syscall backend's conn_state holds the budget of its ciphertext).
 */
#if HAVE_BPF_LOOP
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct budget_state);
} tls_budgets SEC(".maps");
#endif

/* A TLS connection ended: its plaintext's budget state goes. */
static __always_inline void forget_tls_budget(struct conn_state *conn)
{
#if HAVE_BPF_LOOP
	if (conn->tls)
		bpf_map_delete_elem(&tls_budgets, &conn->conn_id);
#endif
}

/* A Go crypto/tls probe ran: socket events look their sock up in go_tls_socks. */
__u8 go_tls_seen = 0;

/*
 * Socket backend: a socket event on a sock a Go tls.Conn uses gives it its
 * connection. An entry dies with its sock (sock_destroy), since the next
 * socket at that address is another connection: one already joined to
 * another connection outlived its sock and is dropped, never believed.
 */
static __always_inline void join_go_tls_sock(void *sk, struct conn_state *conn)
{
	__u64 key = (__u64)sk;
	struct tls_stream *stream;

	if (!go_tls_seen || conn->tls)
		return;
	stream = bpf_map_lookup_elem(&go_tls_socks, &key);
	if (!stream)
		return;
	if (stream->conn_id && stream->conn_id != conn->conn_id) {
		bpf_map_delete_elem(&go_tls_socks, &key);
		return;
	}
	stream->conn_id = conn->conn_id;
	stream->origin = conn->origin;
	conn->tls = 1;
}

/*
 * TLS library calls in flight on all threads. While it is 0 no socket syscall
 * can be inside one, and the per-thread lookup is skipped. A call whose return
 * probe never ran (the thread died inside it) only keeps the lookups on.
 */
__u64 ssl_calls_in_flight = 0;

/* The TLS library call in flight on this thread, or NULL. */
static __always_inline struct ssl_call *active_ssl_call(void)
{
	struct ssl_thread *thread;

	if (!tls_probes || !ssl_calls_in_flight)
		return NULL;
	thread = THREAD_SLOT(ssl_calls, struct ssl_thread, 0);
	return thread && thread->call.active && !thread->call.memory_bio ? &thread->call : NULL;
}

/* A socket syscall inside that TLS library call: the call's connection is this fd. */
static __always_inline void join_ssl_call(struct ssl_call *ssl, __u32 tgid, __u32 fd)
{
	struct ssl_key key = { .tgid = tgid, .ssl = ssl->ssl };
	struct ssl_fd value = { .fd = fd };

	if (ssl->fd_known && ssl->fd == fd)
		return;
	ssl->fd = fd;
	ssl->fd_known = 1;
	bpf_map_update_elem(&ssl_fds, &key, &value, BPF_ANY);
}

/* The SSL object belongs to the connection of a Node TLSWrap (node_tls.bpf.h). */
static __always_inline void bind_node_ssl(__u32 tgid, __u64 ssl, struct node_tls_thread *node)
{
	struct ssl_key key = { .tgid = tgid, .ssl = ssl };

	if (socket_backend) {
		struct tls_stream *stream = bpf_map_lookup_elem(&tls_streams, &key);
		struct tls_stream fresh = { .conn_id = node->conn_id, .node = 1 };

		if (stream && stream->conn_id == node->conn_id && stream->node)
			return;
		bpf_map_update_elem(&tls_streams, &key, &fresh, BPF_ANY);
	} else {
		struct ssl_fd value = { .fd = node->fd, .node = 1 };

		bpf_map_update_elem(&ssl_fds, &key, &value, BPF_ANY);
	}
}

/* TLS library calls (uprobes on SSL_read/SSL_write(_ex), SSL_do_handshake, SSL_set_fd). */

/*
 * Whether the call in flight in slot is still running around a call entered
 * with stack pointer sp: else its return was missed and it is over.
 */
static __always_inline int ssl_call_encloses(struct ssl_call *slot, __u64 sp)
{
	return slot->active && sp < slot->sp;
}

/* Where a 16-byte result's second word comes back (Rust's io::Result<usize>). */
#if defined(__TARGET_ARCH_x86)
#define SECOND_RETURN_REG(ctx) PT_REGS_PARM3(ctx) /* RDX */
#else
#define SECOND_RETURN_REG(ctx) PT_REGS_PARM2(ctx) /* X1 */
#endif

/* A call on the TLS object ssl enters: the socket calls inside it name the object's socket. */
static __always_inline struct ssl_call *ssl_enter_object(struct pt_regs *ctx, __u64 ssl, __u64 buf,
							 __u64 count_ptr, __u8 op)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 sp = PT_REGS_SP(ctx);
	struct ssl_thread *thread;
	struct ssl_call *slot;

	if (filter_tgid && filter_tgid != tgid)
		return NULL;
	thread = THREAD_SLOT(ssl_calls, struct ssl_thread, 1);
	if (!thread) {
		stat_add(STAT_CALL_TABLE_FULL, 1);
		return NULL;
	}
	slot = &thread->call;
	if (ssl_call_encloses(slot, sp)) {
		/* Two levels are kept: a third loses the outermost call, counted. */
		if (ssl_call_encloses(&thread->outer, sp))
			stat_add(STAT_NESTED_TLS_CALLS, 1);
		else
			__sync_fetch_and_add(&ssl_calls_in_flight, 1);
		thread->outer = *slot;
	} else if (!slot->active) {
		__sync_fetch_and_add(&ssl_calls_in_flight, 1);
	}
	slot->ssl = ssl;
	slot->sp = sp;
	slot->buf = buf;
	slot->count_ptr = count_ptr;
	slot->plain_len = 0;
	slot->iovcnt = 0;
	slot->fd = 0;
	slot->op = op;
	slot->fd_known = 0;
	slot->active = 1;
	slot->memory_bio = node_tls_thread(0) != NULL;
	return slot;
}

/* A C library call: the object is its first argument. */
static __always_inline int ssl_enter(struct pt_regs *ctx, __u64 buf, __u64 count_ptr, __u8 op)
{
	ssl_enter_object(ctx, PT_REGS_PARM1(ctx), buf, count_ptr, op);
	return 0;
}

/*
 * SSL_read/SSL_write (entered with stack pointer sp) from a Node TLSWrap
 * reading its connection bind the object to it.
 */
static __always_inline void node_ssl_call(struct pt_regs *ctx, __u64 sp)
{
	struct node_tls_thread *node = sp ? node_tls_reader(sp) : NULL;

	if (node && node_tls_selected())
		bind_node_ssl(bpf_get_current_pid_tgid() >> 32, PT_REGS_PARM1(ctx), node);
}

/* On OpenSSL's workers: the same, through the SSL_read/SSL_write that called the worker. */
static __always_inline void node_ssl_worker_call(struct pt_regs *ctx)
{
	if (node_tls_seen)
		node_ssl_call(ctx, openssl_worker_wrapper_sp(ctx));
}

SEC("uprobe")
int ssl_write_enter(struct pt_regs *ctx)
{
	node_ssl_call(ctx, PT_REGS_SP(ctx));
	return ssl_enter(ctx, PT_REGS_PARM2(ctx), 0, SSL_OP_WRITE);
}

SEC("uprobe")
int ssl_read_enter(struct pt_regs *ctx)
{
	node_ssl_call(ctx, PT_REGS_SP(ctx));
	return ssl_enter(ctx, PT_REGS_PARM2(ctx), 0, SSL_OP_READ);
}

/* SSL_write_ex, or OpenSSL's write worker (cookie: OPENSSL_WORKER_COOKIE_*). */
SEC("uprobe")
int ssl_write_ex_enter(struct pt_regs *ctx)
{
	node_ssl_worker_call(ctx);
	return ssl_enter(ctx, PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx), SSL_OP_WRITE_EX);
}

/* SSL_read_ex, or OpenSSL's read worker (cookie: OPENSSL_WORKER_COOKIE_*). */
SEC("uprobe")
int ssl_read_ex_enter(struct pt_regs *ctx)
{
	node_ssl_worker_call(ctx);
	return ssl_enter(ctx, PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx), SSL_OP_READ_EX);
}

SEC("uprobe")
int gnutls_send_enter(struct pt_regs *ctx)
{
	return ssl_enter(ctx, PT_REGS_PARM2(ctx), 0, SSL_OP_GNUTLS_SEND);
}

SEC("uprobe")
int gnutls_recv_enter(struct pt_regs *ctx)
{
	return ssl_enter(ctx, PT_REGS_PARM2(ctx), 0, SSL_OP_GNUTLS_RECV);
}

SEC("uprobe")
int ssl_handshake_enter(struct pt_regs *ctx)
{
	return ssl_enter(ctx, 0, 0, SSL_OP_HANDSHAKE);
}

SEC("uprobe")
int ssl_set_fd_enter(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct ssl_key key = { .tgid = tgid, .ssl = PT_REGS_PARM1(ctx) };
	struct ssl_fd value = { .fd = PT_REGS_PARM2(ctx) };

	if (filter_tgid && filter_tgid != tgid)
		return 0;
	bpf_map_update_elem(&ssl_fds, &key, &value, BPF_ANY);
	return 0;
}

/* Socket backend: a socket call inside that TLS library call: the SSL object's connection. */
static __always_inline void join_ssl_stream(struct ssl_call *ssl, __u32 tgid,
					    struct conn_state *conn)
{
	__u64 conn_id = conn->conn_id;
	struct ssl_key key = { .tgid = tgid, .ssl = ssl->ssl };
	struct tls_stream *stream;

	if (ssl->fd_known)
		return;
	ssl->fd_known = 1;
	stream = bpf_map_lookup_elem(&tls_streams, &key);
	if (stream && stream->conn_id == conn_id)
		return;
	/* A new object, or one reused for another connection: its streams start over. */
	struct tls_stream fresh = { .conn_id = conn_id, .origin = conn->origin };

	bpf_map_update_elem(&tls_streams, &key, &fresh, BPF_ANY);
}

/*
 * One return probe for every hooked call: the slot says which call returns.
 * Returns 1 with the call and its plaintext length when it moved data.
 */
static __always_inline int ssl_call_returned(struct pt_regs *ctx, struct ssl_call *call, __u64 *len)
{
	struct ssl_thread *thread = THREAD_SLOT(ssl_calls, struct ssl_thread, 0);
	__s32 ret = (__s32)PT_REGS_RC(ctx);

	*len = 0;
	if (!thread || !thread->call.active)
		return 0;
	*call = thread->call;
	/* The call this one was entered inside is in flight again. */
	thread->call = thread->outer;
	thread->outer.active = 0;
	__sync_fetch_and_add(&ssl_calls_in_flight, -1);
	switch (call->op) {
	case SSL_OP_HANDSHAKE:
	case SSL_OP_RUSTLS_BIND:
		return 0;
	case SSL_OP_RUSTLS_READ:
		if (PT_REGS_RC(ctx))
			return 0;
		*len = SECOND_RETURN_REG(ctx);
		return *len && *len <= 0x7fffffff;
	case SSL_OP_RUSTLS_WRITE:
	case SSL_OP_RUSTLS_WRITEV:
		*len = call->plain_len;
		return *len && *len <= 0x7fffffff;
	}
	if (call->op == SSL_OP_READ_EX || call->op == SSL_OP_WRITE_EX) {
		if (ret != 1 || bpf_probe_read_user(len, sizeof(*len), (void *)call->count_ptr))
			return 0;
	} else {
		if (ret <= 0)
			return 0;
		*len = ret;
	}
	return *len && *len <= 0x7fffffff;
}

/* Whether a call's plaintext was written (else read). */
static __always_inline int ssl_call_writes(__u8 op)
{
	return op == SSL_OP_WRITE || op == SSL_OP_WRITE_EX || op == SSL_OP_GNUTLS_SEND ||
	       op == SSL_OP_RUSTLS_WRITE || op == SSL_OP_RUSTLS_WRITEV;
}

/* The id a call's records carry: it names the library. */
static __always_inline __u16 ssl_call_id(__u8 op, int node)
{
	int write = ssl_call_writes(op);

	if (op == SSL_OP_GNUTLS_SEND || op == SSL_OP_GNUTLS_RECV)
		return write ? SYSCALL_GNUTLS_SEND : SYSCALL_GNUTLS_RECV;
	if (op >= SSL_OP_RUSTLS_READ)
		return write ? SYSCALL_RUSTLS_WRITE : SYSCALL_RUSTLS_READ;
	if (node)
		return write ? SYSCALL_NODE_SSL_WRITE : SYSCALL_NODE_SSL_READ;
	return write ? SYSCALL_SSL_WRITE : SYSCALL_SSL_READ;
}

/*
 * len bytes of TLS plaintext at offset of the connection's plaintext stream:
 * within the capture budget, as a plain connection's bytes are.
 */
static __always_inline void copy_plaintext(struct data_call *data, struct stat_counters *counters,
					   __u64 conn_id, __u16 origin, __u64 offset, __u64 len)
{
#if HAVE_BPF_LOOP
	if (budget_applies()) {
		struct budget_state *budget = bpf_map_lookup_elem(&tls_budgets, &conn_id);

		if (!budget) {
			struct budget_state fresh = {};

			bpf_map_update_elem(&tls_budgets, &conn_id, &fresh, BPF_NOEXIST);
			budget = bpf_map_lookup_elem(&tls_budgets, &conn_id);
		}
		if (budget) {
			/* A connection's origin unknown: joined mid-stream, for all we know. */
			budget_data(data, counters, budget, conn_id,
				    origin ? origin : ORIGIN_EXISTING, offset, len);
			return;
		}
	}
#endif
	emit_data(data, counters, conn_id, offset, len);
}

/* The plaintext of a returned call, on its own per-direction stream of the connection. */
static __always_inline void emit_tls_data(struct stat_counters *counters, struct ssl_call *call,
					  __u64 conn_id, __u16 origin, __u64 *tls_sent,
					  __u64 *tls_recvd, __u64 len, int node)
{
	int write = ssl_call_writes(call->op);
	struct data_call data = {
		.buf = call->buf,
		.iovcnt = call->iovcnt,
		.syscall = ssl_call_id(call->op, node),
		.direction = write ? DIRECTION_SEND : DIRECTION_RECV,
		.mode = call->op == SSL_OP_RUSTLS_WRITEV ? COPY_IOVEC : COPY_BUFFER,
		.data_flags = DATA_FLAG_TLS,
	};
	__u64 offset = write ? FETCH_ADD(tls_sent, len) : FETCH_ADD(tls_recvd, len);

	counters->values[STAT_TLS_CALLS_TRACED]++;
	copy_plaintext(&data, counters, conn_id, origin, offset, len);
}

#endif /* HTTPSCOPE_TLS_BPF_H */
