/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Node.js TLS: which connection an SSL object of Node's TLSWrap serves.
 *
 * Node (src/crypto/crypto_tls.cc) drives OpenSSL through memory BIOs, so no
 * socket call happens inside SSL_read/SSL_write. On the receive path the
 * chain is exact and synchronous on one thread, with no JavaScript before
 * the first SSL call:
 *
 *   libuv uv__read: alloc_cb -> TLSWrap::OnStreamAlloc(T) hands out T's
 *   enc_in buffer; read(fd, buf) fills it (the socket receive of connection
 *   C); read_cb -> TLSWrap::OnStreamRead(T, nread, buf) commits those bytes
 *   and cycles: ClearIn(T), whose only SSL call is SSL_write(T->ssl_) of
 *   the cleartext written before the handshake ended (it may finish the
 *   handshake: a client's first request), then ClearOut(T), whose only SSL
 *   call is SSL_read(T->ssl_) (the node binary's one call site of SSL_read).
 *
 * So: a socket receive that follows T's OnStreamAlloc on the same thread is
 * T's ciphertext (C is marked TLS, its ciphertext no longer logged);
 * OnStreamRead(T) whose buffer and length are exactly that receive's opens
 * T's read window (closed by its return probe); an SSL_read or SSL_write
 * called from the body of ClearOut or ClearIn (its return address lies in
 * that function's code, whose size is the probe's cookie) whose newest
 * ClearIn/ClearOut entry is T's and still on the stack (entered above the
 * SSL call's caller frame) is T->ssl_'s, and binds (tgid, SSL *) to C.
 * Later SSL_read/SSL_write on that object use the binding wherever they
 * happen. A client sends its ClientHello before any receive: the first send
 * on a connection by a TLSWrap thread that starts a TLS handshake record
 * marks the connection TLS too (its bytes are ciphertext whoever reads
 * them). Anything that does not fit (TLS over a JavaScript stream, a nested
 * read, ClearOut inlined elsewhere) binds nothing: its plaintext stays
 * counted as tls_fd_unknown.
 *
 * Virtual calls reach OnStreamAlloc and OnStreamRead through non-virtual
 * thunks (in Node 20's build OnStreamAlloc's thunk holds its own copy of the
 * body, OnStreamRead's jumps into it): the loader hooks each thunk too, with
 * the this-adjustment its mangled name states (_ZThn<N>_) as cookie, and an
 * entry seen twice for one call is harmless. On the exported
 * SSL_read/SSL_write the return address is the caller's. OpenSSL, built into
 * node or a shared libssl (Debian's node: libnode.so with the system's
 * libssl), is hooked at its internal read/write workers where the machine
 * code allows, whose caller is SSL_read (SSL_write): when the worker's return
 * address is exactly SSL_read's call site, the return address of SSL_read
 * itself lies a fixed frame above it (both from the attach cookie, measured
 * from the machine code), and the same check runs there. A caller
 * that cannot be told binds nothing: its plaintext stays counted
 * (tls_fd_unknown), never guessed. A thread that ran
 * a TLSWrap probe also makes its SSL calls ignore socket calls inside them:
 * those can only come from JavaScript callbacks, never from the memory BIO.
 *
 * Needs conn.bpf.h and copy.bpf.h included before it.
 */
#ifndef HTTPSCOPE_NODE_TLS_BPF_H
#define HTTPSCOPE_NODE_TLS_BPF_H

enum node_read_state {
	NODE_IDLE = 0,
	/* The socket receive after OnStreamAlloc(wrap) was seen. */
	NODE_RECEIVED = 1,
	/* Inside OnStreamRead(wrap) of that receive. */
	NODE_IN_READ = 2,
};

/* Per thread that ran a TLSWrap probe. */
struct node_tls_thread {
	/* OnStreamAlloc ran for this TLSWrap; its stream's read is next (0: none). */
	__u64 alloc_wrap;
	/* The TLSWrap, connection, fd, buffer and length of the receive (state). */
	__u64 wrap;
	__u64 conn_id;
	__u64 buf;
	__u64 len;
	__u32 fd;
	__u32 state;
	/* The newest TLSWrap::ClearIn/ClearOut entry: object, stack pointer, code range. */
	__u64 clear_wrap;
	__u64 clear_sp;
	__u64 clear_start;
	__u64 clear_end;
};

DEFINE_THREAD_STORAGE(node_tls_threads, struct node_tls_thread);

/* A TLSWrap probe ran: socket receives and SSL calls look at their thread's state. */
__u8 node_tls_seen = 0;

static __always_inline struct node_tls_thread *node_tls_thread(int create)
{
	if (!create && !node_tls_seen)
		return NULL;
	return THREAD_SLOT(node_tls_threads, struct node_tls_thread, create);
}

/*
 * A socket receive of len bytes into buf on connection conn_id (fd): returns 1
 * when it is the read a TLSWrap's OnStreamAlloc announced (its ciphertext).
 */
static __always_inline int node_tls_receive(__u64 conn_id, __u32 fd, struct data_call *call,
					    __u64 len)
{
	struct node_tls_thread *thread = node_tls_thread(0);

	if (!thread || !thread->alloc_wrap)
		return 0;
	thread->wrap = thread->alloc_wrap;
	thread->alloc_wrap = 0;
	thread->conn_id = conn_id;
	thread->fd = fd;
	thread->buf = call->mode == COPY_BUFFER ? call->buf : 0;
	thread->len = len;
	thread->state = NODE_RECEIVED;
	return 1;
}

/* A client's ClientHello: a Node TLSWrap thread's first send on the connection, a TLS record. */
static __always_inline int node_tls_first_send(struct conn_state *conn, struct data_call *call,
					       __s64 ret)
{
	__u8 bytes[VERDICT_PEEK] = {};

	if (conn->sent || conn->tls || !node_tls_thread(0))
		return 0;
	return tls_handshake(bytes, peek_call(call, ret, bytes));
}

static __always_inline int node_tls_selected(void)
{
	return !filter_tgid || filter_tgid == bpf_get_current_pid_tgid() >> 32;
}

/* A TLSWrap probe on a selected process: its thread's state, created (or NULL). */
static __always_inline struct node_tls_thread *node_tls_probe_thread(void)
{
	struct node_tls_thread *thread;

	if (!node_tls_selected())
		return NULL;
	thread = node_tls_thread(1);
	if (thread && !node_tls_seen)
		node_tls_seen = 1;
	return thread;
}

/* TLSWrap::OnStreamAlloc(this, suggested_size); cookie: the thunk's this-adjustment. */
SEC("uprobe")
int node_stream_alloc(struct pt_regs *ctx)
{
	struct node_tls_thread *thread = node_tls_probe_thread();

	if (!thread)
		return 0;
	thread->alloc_wrap = PT_REGS_PARM1(ctx) - attach_cookie(ctx);
	return 0;
}

/* TLSWrap::OnStreamRead(this, ssize_t nread, const uv_buf_t &buf). */
SEC("uprobe")
int node_stream_read(struct pt_regs *ctx)
{
	__u64 wrap = PT_REGS_PARM1(ctx) - attach_cookie(ctx);
	__s64 nread = PT_REGS_PARM2(ctx);
	struct node_tls_thread *thread = node_tls_thread(0);
	__u64 base = 0;
	int same;

	if (!thread)
		return 0;
	thread->alloc_wrap = 0;
	if (bpf_probe_read_user(&base, sizeof(base), (void *)PT_REGS_PARM3(ctx)))
		base = 0;
	same = nread > 0 && base && thread->wrap == wrap && thread->buf == base &&
	       thread->len == (__u64)nread;
	if (same && thread->state == NODE_RECEIVED)
		thread->state = NODE_IN_READ;
	/* Else a read not from that receive, unless it is the thunk's entry seen twice. */
	else if (!(same && thread->state == NODE_IN_READ))
		thread->state = NODE_IDLE;
	return 0;
}

SEC("uretprobe")
int node_stream_read_ret(struct pt_regs *ctx)
{
	struct node_tls_thread *thread = node_tls_thread(0);

	if (thread)
		thread->state = NODE_IDLE;
	return 0;
}

/* TLSWrap::ClearIn(this) or ClearOut(this); cookie: the function's size. */
SEC("uprobe")
int node_clear(struct pt_regs *ctx)
{
	struct node_tls_thread *thread = node_tls_probe_thread();

	if (!thread)
		return 0;
	thread->clear_wrap = PT_REGS_PARM1(ctx);
	thread->clear_sp = PT_REGS_SP(ctx);
	thread->clear_start = PT_REGS_IP(ctx);
	thread->clear_end = PT_REGS_IP(ctx) + attach_cookie(ctx);
	return 0;
}

/*
 * At SSL_read's or SSL_write's entry, whose stack pointer is sp: the read
 * window's state when this is T->ssl_'s call from ClearIn(T) or ClearOut(T)
 * inside T's OnStreamRead, else NULL.
 */
static __always_inline struct node_tls_thread *node_tls_reader(__u64 sp)
{
	struct node_tls_thread *thread = node_tls_thread(0);
	__u64 return_address;

	if (!thread || thread->state != NODE_IN_READ || thread->clear_wrap != thread->wrap)
		return NULL;
	if (bpf_probe_read_user(&return_address, sizeof(return_address), (void *)sp))
		return NULL;
	/* Called from that function's body, by the invocation whose entry was recorded. */
	if (return_address < thread->clear_start || return_address >= thread->clear_end ||
	    sp + 8 >= thread->clear_sp)
		return NULL;
	return thread;
}

/*
 * At an OpenSSL worker's entry (cookie: OPENSSL_WORKER_COOKIE_*): the stack
 * pointer SSL_read (SSL_write) had at its entry when it is the worker's
 * caller, else 0.
 */
static __always_inline __u64 openssl_worker_wrapper_sp(struct pt_regs *ctx)
{
	__u64 cookie = attach_cookie(ctx), sp = PT_REGS_SP(ctx), return_address;

	if (!OPENSSL_WORKER_COOKIE_CALLER_KNOWN(cookie))
		return 0;
	if (bpf_probe_read_user(&return_address, sizeof(return_address), (void *)sp))
		return 0;
	if (return_address != PT_REGS_IP(ctx) - OPENSSL_WORKER_COOKIE_RETURN_DELTA(cookie))
		return 0;
	return sp + 8 + OPENSSL_WORKER_COOKIE_FRAME(cookie);
}

#endif /* HTTPSCOPE_NODE_TLS_BPF_H */
