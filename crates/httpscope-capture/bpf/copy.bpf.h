/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Copying what a socket call moved into the ring buffer: the smallest
 * record that holds the capture budget, iovecs through a per-CPU scratch
 * slot, truncations and drops counted; copy_data decides between a whole
 * copy and the capture budget (budget*.bpf.h, included after this part).
 * Needs httpscope.h, kernel.bpf.h, conn.bpf.h, ladder.bpf.h and words.bpf.h
 * before it.
 */
#ifndef HTTPSCOPE_COPY_BPF_H
#define HTTPSCOPE_COPY_BPF_H

enum copy_mode {
	COPY_BUFFER = 0,
	COPY_IOVEC = 1,
	COPY_NONE = 2,
};

/* What one socket syscall (or TLS library call) moved, and how to copy it. */
struct data_call {
	__u64 buf;
	__u64 iovcnt;
	__u16 syscall;
	__u8 direction;
	__u8 mode;
	/* DATA_FLAG_* set on every record of this call. */
	__u8 data_flags;
	__u8 reserved[3];
	/* Capture budget: the streams told when this copy starts a HEAD or CONNECT request. */
	struct budget_state *request_peek;
};

/* A copy starting a HEAD or CONNECT request: responses on the connection are not framed. */
static __always_inline void peek_request_method(struct data_call *call, const __u8 *data)
{
	__u64 word;

	if (!call->request_peek)
		return;
	__builtin_memcpy(&word, data, sizeof(word));
	if ((word & 0xffffffffffULL) == WORD_HEAD_ || word == WORD_CONNECT_)
		call->request_peek->unframed_responses = 1;
}

/*
 * Records reserved directly in the ring buffer come in two sizes, so that a
 * typical small request or response takes a quarter of the ring space.
 */
#define TINY_RECORD_CAPTURE 200
#define SMALL_RECORD_CAPTURE 1024

struct tiny_data_record {
	struct data_event event;
	__u8 data[TINY_RECORD_CAPTURE];
};

struct small_data_record {
	struct data_event event;
	__u8 data[SMALL_RECORD_CAPTURE];
};

struct data_scratch {
	struct data_event event;
	/*
	 * Twice the capture limit so the verifier can bound iovec offsets; 8
	 * more for the capture budget's word reads at a masked offset.
	 */
	__u8 data[2 * HTTPSCOPE_MAX_CAPTURE + 8];
};

/* Indexed by CPU; sized to the possible CPUs by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct data_scratch);
} scratch SEC(".maps");

/*
 * iovec headers read in one go (a typical writev has two or three); a call
 * with more reads the rest one at a time. Four keeps the syscall program within
 * the 512-byte stack that it shares with the capture budget's walk.
 */
#define IOVEC_BATCH 4

static __always_inline __u64 copy_iovecs(__u8 *dst, __u64 iov_ptr, __u64 iovcnt, __u64 budget)
{
	struct user_iovec batch[IOVEC_BATCH];
	__u64 copied = 0, batched = iovcnt < IOVEC_BATCH ? iovcnt : IOVEC_BATCH;

	/* One read for the first headers (a typical writev has two or three); 0 if it faults. */
	if (read_user_at((__u8 *)batch, 0, 0, batched * sizeof(batch[0]), sizeof(batch), iov_ptr))
		batched = 0;
	for (int i = 0; i < HTTPSCOPE_MAX_IOVECS; i++) {
		struct user_iovec iov;
		__u64 n;

		if (i >= iovcnt || copied >= budget || copied >= HTTPSCOPE_MAX_CAPTURE)
			break;
		if (i < batched && i < IOVEC_BATCH)
			iov = batch[i];
		else if (bpf_probe_read_user(&iov, sizeof(iov),
					     (void *)(iov_ptr + i * sizeof(iov))))
			break;
		n = iov.len;
		if (n > budget - copied)
			n = budget - copied;
		if (n > HTTPSCOPE_MAX_CAPTURE)
			n = HTTPSCOPE_MAX_CAPTURE;
		if (read_user_at(dst, copied, HTTPSCOPE_MAX_CAPTURE - 1, n, HTTPSCOPE_MAX_CAPTURE,
				 iov.base))
			break;
		copied += n;
	}
	return copied;
}

static __always_inline void count_truncation(struct stat_counters *counters,
					     struct data_event *event, __u8 mode, __u64 len,
					     __u64 captured)
{
	if (captured >= len)
		return;
	if (mode != COPY_NONE) {
		event->flags |= DATA_FLAG_TRUNCATED;
		counters->values[STAT_SYSCALLS_TRUNCATED]++;
	}
	counters->values[STAT_BYTES_NOT_COPIED] += len - captured;
}

static __always_inline void count_drop(struct stat_counters *counters, __u64 len)
{
	counters->values[STAT_DATA_EVENTS_DROPPED]++;
	counters->values[STAT_DATA_BYTES_DROPPED] += len;
}

static __always_inline void fill_data(struct data_event *event, struct data_call *call,
				      __u64 conn_id, __u64 offset, __u64 len)
{
	fill_header(&event->header, EVENT_KIND_DATA, conn_id);
	event->stream_offset = offset;
	event->len = len;
	event->syscall = call->syscall;
	event->direction = call->direction;
	event->flags = call->data_flags;
}

/*
 * Plain copies that fit a fixed-size record go straight into a ring-buffer
 * reservation: no scratch, no second copy. One definition per record size.
 */
#define DEFINE_EMIT_RESERVED(name, record_type, capacity)                                        \
	static __always_inline void name(struct data_call *call, struct stat_counters *counters, \
					 __u64 conn_id, __u64 offset, __u64 len, __u64 budget)   \
	{                                                                                        \
		record_type *rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);                \
		__u64 captured = 0;                                                              \
                                                                                                 \
		if (!rec) {                                                                      \
			count_drop(counters, len);                                               \
			return;                                                                  \
		}                                                                                \
		fill_data(&rec->event, call, conn_id, offset, len);                              \
		if (budget <= (capacity) &&                                                      \
		    !read_user_at(rec->data, 0, 0, budget, (capacity), call->buf))               \
			captured = budget;                                                       \
		if (captured >= 8)                                                               \
			peek_request_method(call, rec->data);                                    \
		count_truncation(counters, &rec->event, call->mode, len, captured);              \
		rec->event.captured_len = captured;                                              \
		ladder_submit(rec, wakeup_flags());                                              \
		counters->values[STAT_EVENTS_SUBMITTED]++;                                       \
	}

DEFINE_EMIT_RESERVED(emit_tiny, struct tiny_data_record, TINY_RECORD_CAPTURE)
DEFINE_EMIT_RESERVED(emit_small, struct small_data_record, SMALL_RECORD_CAPTURE)

/*
 * The scratch slot's record, with captured bytes, into the ring buffer; the
 * bound is held in the register the call takes (CLAMP_IN_REGISTER).
 */
static __always_inline long output_scratch(struct data_scratch *slot, __u64 captured)
{
	if (captured > HTTPSCOPE_MAX_CAPTURE)
		captured = HTTPSCOPE_MAX_CAPTURE;
	CLAMP_IN_REGISTER(captured, HTTPSCOPE_MAX_CAPTURE);
	return bpf_ringbuf_output(&events, slot, sizeof(struct data_event) + captured,
				  wakeup_flags());
}

/* Large copies and iovecs are assembled in a per-CPU scratch slot, then copied out. */
static __always_inline void emit_large(struct data_call *call, struct stat_counters *counters,
				       __u64 conn_id, __u64 offset, __u64 len, __u64 budget)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct data_scratch *slot = bpf_map_lookup_elem(&scratch, &cpu);
	__u64 captured = 0;

	if (!slot)
		return;
	fill_data(&slot->event, call, conn_id, offset, len);
	if (call->mode == COPY_BUFFER) {
		if (!read_user_at(slot->data, 0, 0, budget, HTTPSCOPE_MAX_CAPTURE, call->buf))
			captured = budget;
	} else if (call->mode == COPY_IOVEC) {
		captured = copy_iovecs(slot->data, call->buf, call->iovcnt, budget);
	} else {
		slot->event.flags |= DATA_FLAG_NOT_CAPTURED;
	}
	if (captured > HTTPSCOPE_MAX_CAPTURE)
		captured = HTTPSCOPE_MAX_CAPTURE;
	count_truncation(counters, &slot->event, call->mode, len, captured);
	slot->event.captured_len = captured;
	if (ladder_stops_before_record())
		return;
	if (output_scratch(slot, captured))
		count_drop(counters, len);
	else
		counters->values[STAT_EVENTS_SUBMITTED]++;
}

/*
 * The cost ladder's stages 3 and 4 (ladder.bpf.h): the call framed but not
 * copied, or copied into the per-CPU scratch only. Returns 1 when it stops there.
 */
static __always_inline int ladder_copy_only(struct data_call *call, __u64 budget)
{
	struct data_scratch *slot;
	__u32 cpu;

	if (!ladder_stops_at(3) && !ladder_stops_at(4))
		return 0;
	cpu = bpf_get_smp_processor_id();
	slot = bpf_map_lookup_elem(&scratch, &cpu);
	if (!ladder_stops_at(4) || !slot)
		return 1;
	if (call->mode == COPY_BUFFER)
		read_user_at(slot->data, 0, 0, budget, HTTPSCOPE_MAX_CAPTURE, call->buf);
	else if (call->mode == COPY_IOVEC)
		copy_iovecs(slot->data, call->buf, call->iovcnt, budget);
	return 1;
}

/* One record for len bytes at offset: the smallest record that holds the capture budget. */
static __always_inline void emit_data(struct data_call *call, struct stat_counters *counters,
				      __u64 conn_id, __u64 offset, __u64 len)
{
	__u64 budget = capture_bytes;

	if (budget > HTTPSCOPE_MAX_CAPTURE)
		budget = HTTPSCOPE_MAX_CAPTURE;
	if (budget > len)
		budget = len;
	if (ladder_copy_only(call, budget))
		return;
	if (call->mode != COPY_BUFFER)
		emit_large(call, counters, conn_id, offset, len, budget);
	else if (budget <= TINY_RECORD_CAPTURE)
		emit_tiny(call, counters, conn_id, offset, len, budget);
	else if (budget <= SMALL_RECORD_CAPTURE)
		emit_small(call, counters, conn_id, offset, len, budget);
	else
		emit_large(call, counters, conn_id, offset, len, budget);
}

/*
 * The user buffer of a read/write-family socket syscall, from the registers
 * saved at its entry: a plain buffer, or the iovecs of readv/writev and of
 * sendmsg/recvmsg's msghdr. Returns 0 for any other syscall (or an unreadable
 * msghdr), leaving call->mode alone.
 */
static __always_inline int user_buffer_of_syscall(long nr, struct pt_regs___kernel *regs,
						  struct data_call *call)
{
	struct user_msghdr msg;

	switch (nr) {
	case NR_READ:
	case NR_WRITE:
	case NR_SENDTO:
	case NR_RECVFROM:
		call->buf = SYSCALL_ARG2(regs);
		call->mode = COPY_BUFFER;
		call->direction =
			nr == NR_READ || nr == NR_RECVFROM ? DIRECTION_RECV : DIRECTION_SEND;
		call->syscall = nr == NR_READ	  ? SYSCALL_READ
				: nr == NR_WRITE  ? SYSCALL_WRITE
				: nr == NR_SENDTO ? SYSCALL_SENDTO
						  : SYSCALL_RECVFROM;
		return 1;
	case NR_READV:
	case NR_WRITEV:
		call->buf = SYSCALL_ARG2(regs);
		call->iovcnt = SYSCALL_ARG3(regs);
		call->mode = COPY_IOVEC;
		call->direction = nr == NR_READV ? DIRECTION_RECV : DIRECTION_SEND;
		call->syscall = nr == NR_READV ? SYSCALL_READV : SYSCALL_WRITEV;
		return 1;
	case NR_SENDMSG:
	case NR_RECVMSG:
		if (bpf_probe_read_user(&msg, sizeof(msg), (void *)SYSCALL_ARG2(regs)))
			return 0;
		call->buf = msg.msg_iov;
		call->iovcnt = msg.msg_iovlen;
		call->mode = COPY_IOVEC;
		call->direction = nr == NR_RECVMSG ? DIRECTION_RECV : DIRECTION_SEND;
		call->syscall = nr == NR_RECVMSG ? SYSCALL_RECVMSG : SYSCALL_SENDMSG;
		return 1;
	}
	return 0;
}

/* A capture limit below this copies every call whole: the budget has no room to frame. */
#define BUDGET_MIN_CAPTURE 256

#if HAVE_BPF_LOOP
/* The capture budget's entry (budget_walk.bpf.h). */
static __always_inline void budget_data(struct data_call *call, struct stat_counters *counters,
					struct budget_state *budget, __u64 conn_id, __u16 origin,
					__u64 offset, __u64 len);
#endif

/* Whether calls are copied within the capture budget (else whole, up to capture_bytes). */
static __always_inline int budget_applies(void)
{
	return HAVE_BPF_LOOP && body_limit && capture_bytes >= BUDGET_MIN_CAPTURE;
}

/* ret bytes moved on a watched connection: one record, unless they are TLS ciphertext. */
static __always_inline void copy_data(struct stat_counters *counters, struct conn_state *conn,
				      __s64 ret, struct data_call *call)
{
	__u64 len = ret, offset;

	if (conn->tls) {
		counters->values[STAT_CIPHERTEXT_SUPPRESSED]++;
		return;
	}
	counters->values[STAT_SYSCALLS_TRACED]++;
	offset = call->direction == DIRECTION_SEND ? FETCH_ADD(&conn->sent, len)
						   : FETCH_ADD(&conn->recvd, len);
#if HAVE_BPF_LOOP
	if (budget_applies()) {
		budget_data(call, counters, &conn->budget, conn->conn_id, conn->origin, offset,
			    len);
		return;
	}
#endif
	emit_data(call, counters, conn->conn_id, offset, len);
}

#endif /* HTTPSCOPE_COPY_BPF_H */
