/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The capture budget per HTTP message, on plain connections and on TLS
 * plaintext (tls.bpf.h) alike: each message's head and the first body_limit
 * bytes of its body are copied, the rest of the body is counted, not copied
 * (records flagged DATA_FLAG_ELIDED, whose tail after captured_len lies
 * inside a body), and the next message is copied again.
 *
 * Per direction, a small framing state in a struct budget_state (conn_state's
 * for a connection's bytes, tls_budgets' for its plaintext):
 *   - HTTP/2 (the client preface, or a first SETTINGS frame on stream 0, at
 *     the start of a stream): every frame header is walked; only DATA
 *     payload beyond body_limit bytes per DATA frame is left out; HEADERS,
 *     CONTINUATION and every other frame are copied whole.
 *   - HTTP/1: found lazily. A call no larger than body_limit is copied as
 *     is, and the position in the stream becomes unknown (no parsing on the
 *     small keep-alive path). A larger call that starts with a request or
 *     status line is parsed: the head's end, Content-Length or chunked, then
 *     the body is followed across calls; chunk-size lines are always copied.
 *   - Any doubt (a head the kernel cannot frame, a chunk line split across
 *     calls, too many steps in one call) copies the rest of the call whole
 *     (up to capture_bytes) and counts STAT_BUDGET_FALLBACKS: HTTP/1 waits for the next
 *     large call starting a message, HTTP/2 stops budgeting the direction.
 * Userspace still checks that every elided range lies inside a body.
 *
 * The budget is four parts, included in this order after copy.bpf.h:
 *   budget.bpf.h      the walk's cursor and the record primitives (this file)
 *   budget_h1.bpf.h   HTTP/1 heads and chunk-size lines
 *   budget_h2.bpf.h   HTTP/2 frame headers, the preface and SETTINGS detection
 *   budget_walk.bpf.h the walk over one call, and the entry from copy_data
 * This part needs httpscope.h, kernel.bpf.h, conn.bpf.h, words.bpf.h and
 * copy.bpf.h included before it.
 */
#ifndef HTTPSCOPE_BUDGET_BPF_H
#define HTTPSCOPE_BUDGET_BPF_H
/* Bytes read past what a framing step needs, within the record's room. */
#define BUDGET_READ_AHEAD 512
/* Elided bytes shorter than this are copied: a record costs more. */
#define BUDGET_MIN_ELIDE 64

enum budget_walk_result {
	WALK_GO_ON = 0,
	WALK_DONE = 1,
};

/* A head being scanned for its end and its body's framing. */
struct head_scan {
	__u64 start;
	__u64 window;
	__u64 line_start;
	/* Offset from start of the next byte to look at for a line end. */
	__u64 next;
	/* Bytes of the head, 0 until its blank line is found. */
	__u64 head_len;
	__s64 content_length;
	__u16 status;
	__u8 lines;
	__u8 chunked;
	__u8 doubt;
	__u8 response;
	__u8 head_request;
};

/*
 * Where one call's framing walk is. It lives in a map, not on the stack:
 * the verifier keeps no bounds on map contents, so the bpf_loop callbacks
 * converge at once (every offset into the scratch is masked instead).
 */
struct budget_cursor {
	/* The call: its user buffer, stream offset and length, how its records look. */
	__u64 buf;
	__u64 offset;
	__u64 len;
	__u64 conn_id;
	/* Bytes one record may copy. */
	__u64 cap;
	__u64 iovcnt;
	__u8 mode;
	/* An iovec read in progress: where to, what to skip, how much, how much done. */
	__u64 iov_at;
	__u64 iov_skip;
	__u64 iov_n;
	__u64 iov_done;
	__u16 syscall;
	__u8 direction;
	__u8 data_flags;
	/* The connection's unframed_responses, written back after the walk. */
	__u8 unframed_responses;
	/* The direction's framing, written back after the walk. */
	struct framing fr;
	/* Call-relative: the record's first byte, the end of its copied part, its end. */
	__u64 rec_start;
	__u64 copy_end;
	__u64 pos;
	/* Call bytes from rec_start up to here are in the scratch. */
	__u64 have;
	__u8 fallback;
	/* The record's uncopied tail is lost to the capture limit, not elided. */
	__u8 truncated;
	/* How many of the call's first iovec headers iovs holds. */
	__u8 iovs_cached;
	/* The call may not start a message: the first head checks its first bytes. */
	__u8 check_start;
	struct head_scan scan;
	struct user_iovec iovs[IOVEC_BATCH];
	/* A header past those, read on its own. */
	struct user_iovec iov_spare;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct budget_cursor);
} budget_cursors SEC(".maps");

/* The per-CPU maps of one call's framing walk. */
struct budget_walk {
	struct data_scratch *slot;
	struct stat_counters *counters;
	struct budget_cursor *cur;
	struct framing *fr;
};

static __always_inline int budget_walk_maps(struct budget_walk *w)
{
	__u32 cpu = bpf_get_smp_processor_id(), zero = 0;

	w->slot = bpf_map_lookup_elem(&scratch, &cpu);
	w->cur = bpf_map_lookup_elem(&budget_cursors, &zero);
	w->counters = bpf_map_lookup_elem(&stats, &zero);
	if (!w->slot || !w->cur || !w->counters)
		return -1;
	w->fr = &w->cur->fr;
	return 0;
}

static __always_inline __u64 min_u64(__u64 a, __u64 b)
{
	return a < b ? a : b;
}

/*
 * An iovec call's first headers, read in one go when its bytes are first
 * read (a call whose body is only counted reads none): each read of user
 * memory has a cost of its own, whatever its size, and a walk reads the
 * call's bytes in several parts. Done in this callback, whose frame has room:
 * in the walk's steps it grew a frame of the call chain that Linux 6.1 holds
 * to 512 bytes of stack.
 */
static __always_inline void cache_iovecs(struct budget_cursor *cur)
{
	__u64 n = cur->iovcnt < IOVEC_BATCH ? cur->iovcnt : IOVEC_BATCH;

	/* Unreadable headers are read one by one (and fail) instead. */
	if (!cur->iovs_cached && n &&
	    !read_user_at((__u8 *)cur->iovs, 0, 0, n * sizeof(cur->iovs[0]), sizeof(cur->iovs),
			  cur->buf))
		cur->iovs_cached = n;
}

/* One iovec of an iovec call read into the scratch (state in the cursor). */
static long budget_read_iovec(__u64 i, void *ctx)
{
	__u32 cpu = bpf_get_smp_processor_id(), zero = 0;
	struct data_scratch *slot = bpf_map_lookup_elem(&scratch, &cpu);
	struct budget_cursor *cur = bpf_map_lookup_elem(&budget_cursors, &zero);
	struct user_iovec *iov;
	__u64 take;

	if (!slot || !cur || i >= cur->iovcnt || cur->iov_done >= cur->iov_n)
		return WALK_DONE;
	if (i == 0)
		cache_iovecs(cur);
	/* The header is kept in the map: the verifier tracks no stack copy of it. */
	if (i < cur->iovs_cached && i < IOVEC_BATCH) {
		iov = &cur->iovs[i];
	} else {
		iov = &cur->iov_spare;
		if (bpf_probe_read_user(iov, sizeof(*iov), (void *)(cur->buf + i * sizeof(*iov))))
			return WALK_DONE;
	}
	if (cur->iov_skip >= iov->len) {
		cur->iov_skip -= iov->len;
		return WALK_GO_ON;
	}
	take = iov->len - cur->iov_skip;
	if (take > cur->iov_n - cur->iov_done)
		take = cur->iov_n - cur->iov_done;
	if (take > HTTPSCOPE_MAX_CAPTURE)
		return WALK_DONE;
	if (read_user_at(slot->data, (cur->iov_at + cur->iov_done) & (HTTPSCOPE_MAX_CAPTURE - 1),
			 HTTPSCOPE_MAX_CAPTURE - 1, take, HTTPSCOPE_MAX_CAPTURE,
			 iov->base + cur->iov_skip))
		return WALK_DONE;
	cur->iov_done += take;
	cur->iov_skip = 0;
	return WALK_GO_ON;
}

/* n bytes of an iovec call from stream position skip on, into the scratch at at; 0 once read. */
static __always_inline int read_iovecs(struct budget_cursor *cur, __u64 at, __u64 skip, __u64 n)
{
	cur->iov_at = at;
	cur->iov_skip = skip;
	cur->iov_n = n;
	cur->iov_done = 0;
	bpf_loop(HTTPSCOPE_MAX_IOVECS, budget_read_iovec, NULL, 0);
	return cur->iov_done == n ? 0 : -1;
}

/* Call bytes up to `upto` into the scratch, after those already there. */
static __always_inline int materialize(struct budget_walk *w, __u64 upto)
{
	/* Below the capture limit: every caller keeps upto within the record's room. */
	__u64 at = (w->cur->have - w->cur->rec_start) & (HTTPSCOPE_MAX_CAPTURE - 1);
	__u64 n;

	if (upto <= w->cur->have)
		return 0;
	/* Read ahead within the record's room: one read for a call of small frames, not one each. */
	if (upto < w->cur->have + BUDGET_READ_AHEAD)
		upto = min_u64(min_u64(w->cur->have + BUDGET_READ_AHEAD, w->cur->len),
			       w->cur->rec_start + w->cur->cap);
	n = upto - w->cur->have;
	if (n > HTTPSCOPE_MAX_CAPTURE)
		return -1;
	if (w->cur->mode == COPY_IOVEC) {
		if (read_iovecs(w->cur, at, w->cur->have, n))
			return -1;
	} else if (read_user_at(w->slot->data, at, HTTPSCOPE_MAX_CAPTURE - 1, n,
				HTTPSCOPE_MAX_CAPTURE, w->cur->buf + w->cur->have)) {
		return -1;
	}
	w->cur->have = upto;
	return 0;
}

/* The record so far (copied part, then elided tail) goes out; the next starts at pos. */
static __always_inline void emit_record(struct budget_walk *w)
{
	struct data_scratch *slot = w->slot;
	__u64 captured = w->cur->copy_end - w->cur->rec_start;
	__u64 len = w->cur->pos - w->cur->rec_start;

	if (!len)
		return;
	if (ladder_stops_before_record()) {
		w->cur->rec_start = w->cur->copy_end = w->cur->have = w->cur->pos;
		return;
	}
	if (captured > HTTPSCOPE_MAX_CAPTURE || materialize(w, w->cur->copy_end)) {
		/* Unreadable: lost, not elided. */
		captured = 0;
		w->cur->truncated = 1;
	}
	fill_header(&slot->event.header, EVENT_KIND_DATA, w->cur->conn_id);
	slot->event.stream_offset = w->cur->offset + w->cur->rec_start;
	slot->event.len = len;
	slot->event.syscall = w->cur->syscall;
	slot->event.direction = w->cur->direction;
	slot->event.flags = w->cur->data_flags;
	if (captured < len && w->cur->truncated) {
		slot->event.flags |= DATA_FLAG_TRUNCATED;
		w->counters->values[STAT_SYSCALLS_TRUNCATED]++;
		w->counters->values[STAT_BYTES_NOT_COPIED] += len - captured;
	} else if (captured < len) {
		slot->event.flags |= DATA_FLAG_ELIDED;
		w->counters->values[STAT_BYTES_ELIDED] += len - captured;
	}
	slot->event.captured_len = captured;
	if (output_scratch(slot, captured))
		count_drop(w->counters, len);
	else
		w->counters->values[STAT_EVENTS_SUBMITTED]++;
	w->cur->rec_start = w->cur->copy_end = w->cur->have = w->cur->pos;
	w->cur->truncated = 0;
}

/*
 * A global function: the walk flushes from dozens of places, and the
 * verifier checks a global function once, not inlined at each of them.
 */
__noinline int budget_flush(void)
{
	struct budget_walk w;

	if (!budget_walk_maps(&w))
		emit_record(&w);
	return 0;
}

/* Every map value w points to is re-read after the call: it changes them. */
static __always_inline void flush_record(struct budget_walk *w)
{
	budget_flush();
}

/*
 * Starts copying at pos: an elided tail ends the record first, and a record
 * without room for `room` more copied bytes goes out as it is.
 */
static __always_inline void begin_copy(struct budget_walk *w, __u64 room)
{
	if (w->cur->pos > w->cur->copy_end ||
	    w->cur->copy_end - w->cur->rec_start + room > w->cur->cap)
		flush_record(w);
}

/* Copies up to n bytes at pos; returns how many (0: the record was full and went out). */
static __always_inline __u64 copy_step(struct budget_walk *w, __u64 n)
{
	__u64 room;

	if (w->cur->pos > w->cur->copy_end)
		flush_record(w);
	room = w->cur->cap - (w->cur->copy_end - w->cur->rec_start);
	if (n > room)
		n = room;
	if (!n) {
		flush_record(w);
		return 0;
	}
	w->cur->copy_end += n;
	w->cur->pos += n;
	return n;
}

/* A body part of n bytes at pos, of which keep more may be copied: returns the bytes framed. */
static __always_inline __u64 body_step(struct budget_walk *w, __u64 n, __u64 keep)
{
	if (keep)
		return copy_step(w, min_u64(n, keep));
	if (n < BUDGET_MIN_ELIDE)
		return copy_step(w, n);
	w->cur->pos += n;
	return n;
}

/* Scratch offsets are masked, not compared: the verifier then bounds them whatever the compiler does. */
#define SCRATCH_MASK (2 * HTTPSCOPE_MAX_CAPTURE - 1)

/* The byte at call-relative position at, already in the scratch. */
static __always_inline int scratch_byte(struct budget_walk *w, __u64 at)
{
	return w->slot->data[(at - w->cur->rec_start) & SCRATCH_MASK];
}

/* The call's remaining bytes are copied whole (as far as one record holds). */
static __always_inline void copy_rest(struct budget_walk *w)
{
	__u64 rest = w->cur->len - w->cur->pos;

	w->cur->fallback = 1;
	if (w->cur->pos > w->cur->copy_end || w->cur->copy_end > w->cur->rec_start)
		flush_record(w);
	copy_step(w, rest);
	if (w->cur->pos < w->cur->len) {
		/* More than one record holds: the tail is not copied (truncated). */
		w->cur->pos = w->cur->len;
		w->cur->truncated = 1;
		flush_record(w);
	}
}

/* The framing is in doubt: the call's rest is copied whole, counted. */
static __always_inline void fall_back(struct budget_walk *w)
{
	w->counters->values[STAT_BUDGET_FALLBACKS]++;
	copy_rest(w);
}

/* 8 scratch bytes at call-relative position at, as a little-endian word. */
static __always_inline __u64 scratch_word(struct budget_walk *w, __u64 at)
{
	__u64 v;

	__builtin_memcpy(&v, w->slot->data + ((at - w->cur->rec_start) & SCRATCH_MASK), 8);
	return v;
}

/* The call's first n bytes (a plain buffer, or the first iovec); 0 on success. */
static __always_inline long read_call_prefix(struct data_call *call, void *dst, __u32 n)
{
	struct user_iovec iov;

	if (call->mode == COPY_BUFFER)
		return bpf_probe_read_user(dst, n, (void *)call->buf);
	if (call->mode != COPY_IOVEC || !call->iovcnt ||
	    bpf_probe_read_user(&iov, sizeof(iov), (void *)call->buf) || iov.len < n)
		return -1;
	return bpf_probe_read_user(dst, n, (void *)iov.base);
}

#endif /* HTTPSCOPE_BUDGET_BPF_H */
