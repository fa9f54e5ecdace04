/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rustls 0.23: plaintext at its buffered API, bound to a socket by the
 * socket calls inside read_tls/write_tls. Needs tls.bpf.h, syscall.bpf.h and
 * socket.bpf.h included before it.
 *
 * rustls is sans-IO: the application moves records with read_tls/write_tls
 * (generic, so inlined into tokio-rustls or rustls::Stream), whose bodies
 * call ChunkVecBuffer::is_full(&received_plaintext) then
 * DeframerVecBuffer::read(&deframer, rd) (read_tls), and
 * ChunkVecBuffer::write_to(&sendable_tls, wr) (write_tls). These functions
 * are not generic and have no other callers, and the socket call of rd/wr
 * happens inside them: that names the socket, as for OpenSSL.
 *
 * The objects the plaintext functions see are not the connection but a
 * field of it, and Rust fixes no layout, so none is assumed; each side is
 * bound by a rule that follows from rustls's code:
 *
 * Reading. Reader holds &received_plaintext (P) at offset 0. P is bound to
 * the socket of the DeframerVecBuffer::read that read_tls calls right after
 * is_full(P), from the same frame (same stack pointer). A connection moved
 * after its handshake (tokio-rustls returns the stream by value, hyper moves
 * it again) may hold plaintext decrypted before the move, read before any
 * read_tls at its new place. Rust moves by copying bytes: the thread keeps
 * the first RUSTLS_MOVE_WINDOW bytes of the buffer it last bound, as they
 * are after each change seen (process_new_packets ends with
 * CommonState::current_io_state; consume returns), and an unbound P holding
 * plaintext whose bytes are exactly those (its chunk list, a heap pointer
 * no other buffer holds) is that buffer moved: it takes its binding. The
 * connection's offsets are its own, whichever object its bytes came through
 * (tls_conn_offsets). Reader::read returns io::Result<usize> as (RAX = 0
 * for Ok, RDX = n). tokio-rustls instead takes
 * Reader::into_first_chunk (the result through the pointer in RDI, the
 * Reader in RSI; Ok is a non-null data pointer and its length) and then
 * BufRead::consume(&Reader, amt): the bytes consumed are the first amt of
 * that chunk, recorded at consume.
 *
 * Writing. Writer holds the connection (C, a &mut dyn PlaintextSink) at
 * offset 0; write/write_vectored return io::Result<usize> like read. The
 * plaintext it took is encrypted into sendable_tls (S), which the next
 * write_tls sends: tokio-rustls (poll_write, poll_write_vectored) and
 * rustls::Stream call write_tls before returning to their caller. So the
 * first write_to on the thread after a Writer call, entered from that
 * caller's frame or deeper and on a buffer inside that connection object
 * (S - C below RUSTLS_CONNECTION_SPAN), sends it: the plaintext is recorded
 * at write_to's return, on the socket written inside it. A Writer call
 * followed by anything else loses its plaintext, counted (tls_fd_unknown).
 *
 * Where the probes sit. The Writer's methods and consume begin with a load
 * that the kernel's uprobe trap single-steps, a second trap that costs many
 * times a probe hit. The Writer's methods only jump through their `dyn
 * PlaintextSink` to <ConnectionCommon<T> as PlaintextSink>::write(_vectored),
 * which take the connection itself and begin with a push: those are probed
 * (rustls_sink_w, rustls_sink_wv). consume loads its buffer into RDI and
 * jumps: the jump is probed (rustls_used_buf). The loader finds both shapes,
 * and moves other entry probes past instructions that change nothing they
 * read (probe_site.rs); anything else stays on the entry.
 *
 * The loader checks the argument registers in each function's machine code
 * (tls/rustls.rs). Uretprobes are safe here: Rust threads' stacks do not
 * move (async tasks are state machines, not stacks).
 */
#ifndef HTTPSCOPE_RUSTLS_BPF_H
#define HTTPSCOPE_RUSTLS_BPF_H

/* A rustls connection object is smaller than this: S - C must fall below it. */
#define RUSTLS_CONNECTION_SPAN 0x4000
/* Bytes of a received_plaintext compared to tell a moved copy (its chunk list's words). */
#define RUSTLS_MOVE_WINDOW 48

/* Per thread: what the rustls probes hand on to each other. */
struct rustls_thread {
	/* read_tls's ChunkVecBuffer::is_full(received_plaintext): its buffer, stack pointer. */
	__u64 full_buf;
	__u64 full_sp;
	/* The received_plaintext last bound on this thread, and its first bytes. */
	__u64 bound_reader;
	__u64 snapshot[RUSTLS_MOVE_WINDOW / 8];
	/* A Writer call in flight: connection, buffer or iovecs, iovec count, stack pointer. */
	__u64 writer;
	__u64 write_buf;
	__u64 write_iovcnt;
	__u64 write_sp;
	/* Plaintext a Writer call took, for the next write_tls (len 0: none). */
	__u64 pending_writer;
	__u64 pending_buf;
	__u64 pending_len;
	__u64 pending_iovcnt;
	__u64 pending_sp;
	/* Reader::into_first_chunk in flight: the Reader's buffer, the result's address. */
	__u64 chunk_call_reader;
	__u64 chunk_call_out;
	/* The first chunk it handed out: the Reader's buffer, the bytes left. */
	__u64 chunk_reader;
	__u64 chunk_ptr;
	__u64 chunk_len;
};

DEFINE_THREAD_STORAGE(rustls_threads, struct rustls_thread);

/* This thread's slot when its process is selected, created if needed. */
static __always_inline struct rustls_thread *rustls_thread(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (filter_tgid && filter_tgid != tgid)
		return NULL;
	return THREAD_SLOT(rustls_threads, struct rustls_thread, 1);
}

/* The word at the start of a Reader or Writer (its buffer or connection), or 0. */
static __always_inline __u64 rustls_field0(__u64 object)
{
	__u64 value = 0;

	if (bpf_probe_read_user(&value, sizeof(value), (void *)object))
		return 0;
	return value;
}

/* ChunkVecBuffer::is_full(self): read_tls's check of its received_plaintext. */
SEC("uprobe")
int rustls_is_full(struct pt_regs *ctx)
{
	struct rustls_thread *thread = rustls_thread();

	if (!thread)
		return 0;
	thread->full_buf = PT_REGS_PARM1(ctx);
	thread->full_sp = PT_REGS_SP(ctx);
	return 0;
}

/* DeframerVecBuffer::read(self, rd, ...): read_tls's socket read, for that received_plaintext. */
SEC("uprobe")
int rustls_read_tls(struct pt_regs *ctx)
{
	struct rustls_thread *thread = rustls_thread();
	__u64 reader = 0;

	if (!thread)
		return 0;
	if (thread->full_buf && thread->full_sp == PT_REGS_SP(ctx))
		reader = thread->full_buf;
	thread->full_buf = 0;
	if (reader)
		thread->bound_reader = reader;
	/* Entered even unbound: the backend's return probe pops every entry. */
	ssl_enter_object(ctx, reader, 0, 0, SSL_OP_RUSTLS_BIND);
	return 0;
}

/* Keeps the first bytes of the bound buffer as they are now. */
static __always_inline void rustls_snapshot(struct rustls_thread *thread)
{
	if (thread->bound_reader && bpf_probe_read_user(thread->snapshot, sizeof(thread->snapshot),
							(void *)thread->bound_reader))
		thread->bound_reader = 0;
}

/* Whether the bytes at received are exactly the snapshot. */
static __always_inline int rustls_same_bytes(struct rustls_thread *thread, __u64 received)
{
	__u64 bytes[RUSTLS_MOVE_WINDOW / 8];
	int i;

	if (bpf_probe_read_user(bytes, sizeof(bytes), (void *)received))
		return 0;
	for (i = 0; i < RUSTLS_MOVE_WINDOW / 8; i++)
		if (bytes[i] != thread->snapshot[i])
			return 0;
	return 1;
}

/*
 * An unbound received_plaintext holding plaintext, a moved copy of the one
 * this thread's read_tls last bound: it takes that binding (see above).
 */
static __always_inline void rustls_adopt_moved(struct rustls_thread *thread, __u64 received)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct ssl_key from = { .tgid = tgid, .ssl = thread->bound_reader };
	struct ssl_key to = { .tgid = tgid, .ssl = received };
	void *binding;

	if (!from.ssl || from.ssl == received)
		return;
	binding = socket_backend ? bpf_map_lookup_elem(&tls_streams, &to)
				 : bpf_map_lookup_elem(&ssl_fds, &to);
	if (binding || !rustls_same_bytes(thread, received))
		return;
	thread->bound_reader = received;
	if (socket_backend) {
		struct tls_stream *stream = bpf_map_lookup_elem(&tls_streams, &from);

		if (stream)
			bpf_map_update_elem(&tls_streams, &to, stream, BPF_NOEXIST);
	} else {
		struct ssl_fd *fd = bpf_map_lookup_elem(&ssl_fds, &from);

		if (fd)
			bpf_map_update_elem(&ssl_fds, &to, fd, BPF_NOEXIST);
	}
}

/* CommonState::current_io_state: the end of process_new_packets, the plaintext appended. */
SEC("uprobe")
int rustls_io_state(struct pt_regs *ctx)
{
	struct rustls_thread *thread = rustls_thread();

	if (thread)
		rustls_snapshot(thread);
	return 0;
}

/* A Writer call's plaintext that no write_tls sent: lost, counted. */
static __always_inline void rustls_drop_pending(struct rustls_thread *thread)
{
	if (thread->pending_len)
		stat_add(STAT_TLS_FD_UNKNOWN, 1);
	thread->pending_len = 0;
}

/* ChunkVecBuffer::write_to(self, wr): write_tls's socket write of sendable_tls. */
SEC("uprobe")
int rustls_write_tls(struct pt_regs *ctx)
{
	struct rustls_thread *thread = rustls_thread();
	__u64 sendable = PT_REGS_PARM1(ctx);
	struct ssl_call *call;
	int sends_pending;

	if (!thread)
		return 0;
	sends_pending = thread->pending_len && PT_REGS_SP(ctx) <= thread->pending_sp &&
			sendable - thread->pending_writer < RUSTLS_CONNECTION_SPAN;
	if (!sends_pending) {
		rustls_drop_pending(thread);
		ssl_enter_object(ctx, sendable, 0, 0, SSL_OP_RUSTLS_BIND);
		return 0;
	}
	call = ssl_enter_object(ctx, sendable, thread->pending_buf, 0,
				thread->pending_iovcnt ? SSL_OP_RUSTLS_WRITEV
						       : SSL_OP_RUSTLS_WRITE);
	if (call) {
		call->plain_len = thread->pending_len;
		call->iovcnt = thread->pending_iovcnt;
	}
	thread->pending_len = 0;
	return 0;
}

/* A Writer call entered with the connection its Writer holds. */
static __always_inline int rustls_writer_enter(struct pt_regs *ctx, __u64 connection, __u64 iovcnt)
{
	struct rustls_thread *thread = rustls_thread();

	if (!thread)
		return 0;
	rustls_drop_pending(thread);
	thread->writer = connection;
	thread->write_buf = PT_REGS_PARM2(ctx);
	thread->write_iovcnt = iovcnt;
	thread->write_sp = PT_REGS_SP(ctx);
	return 0;
}

/* <Writer as io::Write>::write(&mut self, buf: &[u8]). */
SEC("uprobe")
int rustls_write(struct pt_regs *ctx)
{
	return rustls_writer_enter(ctx, rustls_field0(PT_REGS_PARM1(ctx)), 0);
}

/* A write_vectored's iovec count; 0 for none (nothing to record; 0 reads as a plain buffer). */
static __always_inline __u64 rustls_iovec_count(struct pt_regs *ctx)
{
	__u64 count = PT_REGS_PARM3(ctx);

	return count > 0x7fffffff ? 0 : count;
}

/* <Writer as io::Write>::write_vectored(&mut self, bufs: &[IoSlice]): IoSlice is an iovec. */
SEC("uprobe")
int rustls_write_vectored(struct pt_regs *ctx)
{
	__u64 count = rustls_iovec_count(ctx);

	return count ? rustls_writer_enter(ctx, rustls_field0(PT_REGS_PARM1(ctx)), count) : 0;
}

/*
 * The same calls probed on the functions the Writer's methods jump to through their
 * PlaintextSink vtable, <ConnectionCommon<T> as PlaintextSink>::write(_vectored): same
 * arguments, same stack pointer, same return, with the connection itself first. The
 * Writer's methods begin with instructions the kernel single-steps, these with a push.
 */
SEC("uprobe")
int rustls_sink_w(struct pt_regs *ctx)
{
	return rustls_writer_enter(ctx, PT_REGS_PARM1(ctx), 0);
}

SEC("uprobe")
int rustls_sink_wv(struct pt_regs *ctx)
{
	__u64 count = rustls_iovec_count(ctx);

	return count ? rustls_writer_enter(ctx, PT_REGS_PARM1(ctx), count) : 0;
}

/* Either Writer call returns: what it took waits for the next write_tls. */
SEC("uretprobe")
int rustls_write_ret(struct pt_regs *ctx)
{
	struct rustls_thread *thread = rustls_thread();
	__u64 taken = SECOND_RETURN_REG(ctx);

	if (!thread || !thread->writer)
		return 0;
	if (!PT_REGS_RC(ctx) && taken && taken <= 0x7fffffff) {
		thread->pending_writer = thread->writer;
		thread->pending_buf = thread->write_buf;
		thread->pending_len = taken;
		thread->pending_iovcnt = thread->write_iovcnt;
		thread->pending_sp = thread->write_sp;
	}
	thread->writer = 0;
	return 0;
}

/* <Reader as io::Read>::read(&mut self, buf): the backend's return probe records it. */
SEC("uprobe")
int rustls_read(struct pt_regs *ctx)
{
	struct rustls_thread *thread = rustls_thread();
	__u64 received = rustls_field0(PT_REGS_PARM1(ctx));

	if (thread)
		rustls_adopt_moved(thread, received);
	ssl_enter_object(ctx, received, PT_REGS_PARM2(ctx), 0, SSL_OP_RUSTLS_READ);
	return 0;
}

/* Reader::into_first_chunk(self) -> io::Result<&[u8]>: result at RDI, the Reader at RSI. */
SEC("uprobe")
int rustls_first_chunk(struct pt_regs *ctx)
{
	struct rustls_thread *thread = rustls_thread();

	if (!thread)
		return 0;
	thread->chunk_call_reader = rustls_field0(PT_REGS_PARM2(ctx));
	thread->chunk_call_out = PT_REGS_PARM1(ctx);
	return 0;
}

SEC("uretprobe")
int rustls_first_chunk_ret(struct pt_regs *ctx)
{
	struct rustls_thread *thread = rustls_thread();
	__u64 result[2];

	if (!thread || !thread->chunk_call_out)
		return 0;
	thread->chunk_len = 0;
	if (!bpf_probe_read_user(result, sizeof(result), (void *)thread->chunk_call_out) &&
	    result[0] && result[1] <= 0x7fffffff) {
		thread->chunk_reader = thread->chunk_call_reader;
		thread->chunk_ptr = result[0];
		thread->chunk_len = result[1];
		if (result[1])
			rustls_adopt_moved(thread, thread->chunk_reader);
	}
	thread->chunk_call_out = 0;
	return 0;
}

/* consume(amt) on the Reader of buffer received: the first amt bytes of that chunk were read. */
static __always_inline int rustls_consume_from(struct pt_regs *ctx, __u64 received)
{
	struct rustls_thread *thread = rustls_thread();
	__u64 amount = PT_REGS_PARM2(ctx);
	struct ssl_call call = { .ssl = received, .op = SSL_OP_RUSTLS_READ };

	if (!thread || !amount)
		return 0;
	if (thread->chunk_reader != received || amount > thread->chunk_len) {
		stat_add(STAT_TLS_FD_UNKNOWN, 1);
		thread->chunk_len = 0;
		return 0;
	}
	call.buf = thread->chunk_ptr;
	thread->chunk_ptr += amount;
	thread->chunk_len -= amount;
	if (socket_backend)
		ssl_emit_sock(&call, amount);
	else
		ssl_emit_fd(&call, amount);
	return 0;
}

/* <Reader as BufRead>::consume(&mut self, amt). */
SEC("uprobe")
int rustls_consume(struct pt_regs *ctx)
{
	return rustls_consume_from(ctx, rustls_field0(PT_REGS_PARM1(ctx)));
}

/*
 * The same, probed after consume's first instruction has loaded the Reader's buffer into
 * RDI itself (mov rdi,[rdi]; then a jump the kernel emulates, unlike that load).
 */
SEC("uprobe")
int rustls_used_buf(struct pt_regs *ctx)
{
	return rustls_consume_from(ctx, PT_REGS_PARM1(ctx));
}

/* consume returns: the buffer changed; it is the one this thread knows from now on. */
SEC("uretprobe")
int rustls_consume_ret(struct pt_regs *ctx)
{
	struct rustls_thread *thread = rustls_thread();

	if (thread && thread->chunk_reader) {
		thread->bound_reader = thread->chunk_reader;
		rustls_snapshot(thread);
	}
	return 0;
}

#endif /* HTTPSCOPE_RUSTLS_BPF_H */
