/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The capture budget per HTTP message, on plain connections: each message's
 * head and the first body_limit bytes of its body are copied, the rest of
 * the body is counted, not copied (records flagged DATA_FLAG_ELIDED, whose
 * tail after captured_len lies inside a body), and the next message is
 * copied again.
 *
 * Per direction, a small framing state in conn_state:
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
 *     calls, too many steps in one call) copies the rest of the call as
 *     before and counts STAT_BUDGET_FALLBACKS: HTTP/1 waits for the next
 *     large call starting a message, HTTP/2 stops budgeting the direction.
 * Userspace still checks that every elided range lies inside a body.
 */
#ifndef HTTPSCOPE_BUDGET_BPF_H
#define HTTPSCOPE_BUDGET_BPF_H

/* Bytes read past what a framing step needs, within the record's room. */
#define BUDGET_READ_AHEAD 512
/* A capture limit below this copies every call as before. */
#define BUDGET_MIN_CAPTURE 256
/* Elided bytes shorter than this are copied: a record costs more. */
#define BUDGET_MIN_ELIDE 64
/* Head bytes searched for the head's end; longer heads are copied as they come. */
#define BUDGET_HEAD_SCAN 2048
/* Framing steps (head, body part, chunk line, frame header, payload) per call. */
#define BUDGET_MAX_STEPS 128
/* A chunk-size line the kernel frames: up to 8 hex digits and CRLF, then "\r\n" after a last chunk. */
#define BUDGET_CHUNK_LINE 12

#define H2_FRAME_HEADER 9
#define H2_PREFACE_LEN 24
#define H2_TYPE_DATA 0
#define H2_TYPE_SETTINGS 4
#define H2_FLAG_PADDED 0x8

enum budget_walk_result {
	WALK_GO_ON = 0,
	WALK_DONE = 1,
};

/* A head being scanned for its end and its body's framing. */
struct head_scan {
	__u64 start;
	__u64 window;
	__u64 line_start;
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
	struct head_scan scan;
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

/* One iovec of an iovec call read into the scratch (state in the cursor). */
static long budget_read_iovec(__u64 i, void *ctx)
{
	__u32 cpu = bpf_get_smp_processor_id(), zero = 0;
	struct data_scratch *slot = bpf_map_lookup_elem(&scratch, &cpu);
	struct budget_cursor *cur = bpf_map_lookup_elem(&budget_cursors, &zero);
	struct user_iovec iov;
	__u64 take;

	if (!slot || !cur || i >= cur->iovcnt || cur->iov_done >= cur->iov_n)
		return WALK_DONE;
	if (bpf_probe_read_user(&iov, sizeof(iov), (void *)(cur->buf + i * sizeof(iov))))
		return WALK_DONE;
	if (cur->iov_skip >= iov.len) {
		cur->iov_skip -= iov.len;
		return WALK_GO_ON;
	}
	take = iov.len - cur->iov_skip;
	if (take > cur->iov_n - cur->iov_done)
		take = cur->iov_n - cur->iov_done;
	if (take > HTTPSCOPE_MAX_CAPTURE)
		return WALK_DONE;
	if (bpf_probe_read_user(slot->data + ((cur->iov_at + cur->iov_done) & (HTTPSCOPE_MAX_CAPTURE - 1)),
				take, (void *)(iov.base + cur->iov_skip)))
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
	} else if (bpf_probe_read_user(w->slot->data + at, n, (void *)(w->cur->buf + w->cur->have))) {
		return -1;
	}
	w->cur->have = upto;
	return 0;
}

/* The record so far (copied part, then elided tail) goes out; the next starts at pos. */
static __always_inline void flush_record(struct budget_walk *w)
{
	struct data_scratch *slot = w->slot;
	__u64 captured = w->cur->copy_end - w->cur->rec_start;
	__u64 len = w->cur->pos - w->cur->rec_start;

	if (!len)
		return;
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
	if (captured > HTTPSCOPE_MAX_CAPTURE)
		captured = HTTPSCOPE_MAX_CAPTURE;
	if (bpf_ringbuf_output(&events, slot, sizeof(struct data_event) + captured, wakeup_flags()))
		count_drop(w->counters, len);
	else
		w->counters->values[STAT_EVENTS_SUBMITTED]++;
	w->cur->rec_start = w->cur->copy_end = w->cur->have = w->cur->pos;
	w->cur->truncated = 0;
}

/*
 * Starts copying at pos: an elided tail ends the record first, and a record
 * without room for `room` more copied bytes goes out as it is.
 */
static __always_inline void begin_copy(struct budget_walk *w, __u64 room)
{
	if (w->cur->pos > w->cur->copy_end || w->cur->copy_end - w->cur->rec_start + room > w->cur->cap)
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

/* The call's remaining bytes are copied as before (as far as one record holds). */
static __always_inline void fall_back(struct budget_walk *w)
{
	__u64 rest = w->cur->len - w->cur->pos;

	w->counters->values[STAT_BUDGET_FALLBACKS]++;
	w->cur->fallback = 1;
	if (w->cur->pos > w->cur->copy_end || w->cur->copy_end > w->cur->rec_start)
		flush_record(w);
	copy_step(w, rest);
	if (w->cur->pos < w->cur->len) {
		/* More than one record holds: the tail is not copied, as before. */
		w->cur->pos = w->cur->len;
		w->cur->truncated = 1;
		flush_record(w);
	}
}

/* ---- HTTP/1 heads ---- */


#define LOWER8(v) ((v) | 0x2020202020202020ULL)

/* 8 scratch bytes at call-relative position at, as a little-endian word. */
static __always_inline __u64 scratch_word(struct budget_walk *w, __u64 at)
{
	__u64 v;

	__builtin_memcpy(&v, w->slot->data + ((at - w->cur->rec_start) & SCRATCH_MASK), 8);
	return v;
}

/* "content-" and "length:", "transfer" and "-encodin", little-endian. */
#define WORD_CONTENT_ 0x2d746e65746e6f63ULL
#define WORD_LENGTH_ 0x003a6874676e656cULL
#define WORD_TRANSFER 0x726566736e617274ULL
#define WORD_ENCODIN 0x6e69646f636e652dULL
/* "chunked" (7 bytes), little-endian. */
#define WORD_CHUNKED 0x0064656b6e756863ULL
#define LOW7 0x00ffffffffffffffULL

/* A header line [ls, end) (CR excluded) of a head: Content-Length or Transfer-Encoding. */
static __always_inline void scan_header(struct budget_walk *w, struct head_scan *s, __u64 ls, __u64 end)
{
	__u64 n = end - ls, v, value = 0, digits = 0;
	int c;

	if (n < 15)
		return;
	v = LOWER8(scratch_word(w, ls));
	if (v == WORD_CONTENT_ &&
	    (LOWER8(scratch_word(w, ls + 8)) & LOW7) == WORD_LENGTH_) {
		for (int i = 15; i < 40; i++) {
			if (ls + i >= end)
				break;
			c = scratch_byte(w, ls + i);
			if (c == ' ' || c == '\t') {
				if (digits)
					break;
				continue;
			}
			if (c < '0' || c > '9' || digits >= 15) {
				s->doubt = 1;
				return;
			}
			value = value * 10 + (c - '0');
			digits++;
		}
		if (!digits || (s->content_length >= 0 && s->content_length != (__s64)value))
			s->doubt = 1;
		s->content_length = value;
		return;
	}
	if (v == WORD_TRANSFER && n >= 18 && LOWER8(scratch_word(w, ls + 8)) == WORD_ENCODIN &&
	    (scratch_byte(w, ls + 16) | 0x20) == 'g' && scratch_byte(w, ls + 17) == ':') {
		/* Only a value that is exactly "chunked" is framed. */
		__u64 at = ls + 18;

		for (int i = 0; i < 8; i++) {
			c = scratch_byte(w, at);
			if (at >= end || (c != ' ' && c != '\t'))
				break;
			at++;
		}
		for (int i = 0; i < 8; i++) {
			c = scratch_byte(w, end - 1);
			if (end <= at || (c != ' ' && c != '\t'))
				break;
			end--;
		}
		if (end - at == 7 && (LOWER8(scratch_word(w, at)) & LOW7) == WORD_CHUNKED)
			s->chunked = 1;
		else
			s->doubt = 1;
	}
}

/* "HTTP/1.", little-endian. */
#define WORD_HTTP1 0x002e312f50545448ULL

/* The first line: a request line (method, space) or a status line ("HTTP/1.x NNN"). */
static __always_inline void scan_start_line(struct budget_walk *w, struct head_scan *s, __u64 ls, __u64 end)
{
	__u64 word = scratch_word(w, ls);
	int c;

	if (end - ls >= 12 && (word & LOW7) == WORD_HTTP1) {
		__u16 status = 0;

		s->response = 1;
		for (int i = 9; i < 12; i++) {
			c = scratch_byte(w, ls + i);
			if (c < '0' || c > '9') {
				s->doubt = 1;
				return;
			}
			status = status * 10 + (c - '0');
		}
		s->status = status;
		return;
	}
	/* "HEAD " and "CONNECT ": their responses cannot be framed from the response alone. */
	if ((word & 0xffffffffffULL) == WORD_HEAD_ || word == WORD_CONNECT_)
		s->head_request = 1;
	for (int i = 0; i < 16; i++) {
		if (ls + i >= end)
			break;
		c = scratch_byte(w, ls + i);
		if (c == ' ' && i > 0)
			return;
		if (c < 'A' || c > 'Z')
			break;
	}
	s->doubt = 1;
}

static long head_scan_byte(__u64 i, struct budget_walk *w)
{
	struct head_scan *s = &w->cur->scan;
	__u64 at = s->start + i;
	__u64 ls = s->line_start;

	if (i >= s->window)
		return WALK_DONE;
	if (scratch_byte(w, at) != '\n')
		return WALK_GO_ON;
	if (at == ls || scratch_byte(w, at - 1) != '\r') {
		s->doubt = 1;
		return WALK_DONE;
	}
	if (at - 1 == ls) {
		s->head_len = at + 1 - s->start;
		return WALK_DONE;
	}
	if (s->lines++ == 0)
		scan_start_line(w, s, ls, at - 1);
	else
		scan_header(w, s, ls, at - 1);
	s->line_start = at + 1;
	return s->doubt ? WALK_DONE : WALK_GO_ON;
}

/* At a message start: frame its head, copy it, and set up its body. */
static __always_inline void h1_head(struct budget_walk *w)
{
	struct framing *fr = w->fr;
	struct head_scan *s = &w->cur->scan;
	__u64 room;

	begin_copy(w, BUDGET_HEAD_SCAN);
	room = w->cur->cap - (w->cur->copy_end - w->cur->rec_start);
	__builtin_memset(s, 0, sizeof(*s));
	s->content_length = -1;
	s->start = w->cur->pos;
	s->line_start = w->cur->pos;
	s->window = min_u64(min_u64(w->cur->len - w->cur->pos, BUDGET_HEAD_SCAN), room);
	if (materialize(w, w->cur->pos + s->window)) {
		fall_back(w);
		return;
	}
	bpf_loop(BUDGET_HEAD_SCAN, head_scan_byte, w, 0);
	if (s->head_request)
		w->cur->unframed_responses = 1;
	if (s->doubt || !s->head_len || (s->response && w->cur->unframed_responses) ||
	    (s->chunked && s->content_length >= 0))
		goto doubt;
	fr->body_copied = 0;
	fr->left = 0;
	if (s->response && (s->status == 101 || (s->status >= 200 && s->status != 204 &&
						  s->status != 304 && !s->chunked &&
						  s->content_length < 0))) {
		/* A switch of protocol or a body delimited by the close: nothing to frame after. */
		fr->proto = FRAMING_NONE;
		fall_back(w);
		return;
	}
	if (s->response && (s->status < 200 || s->status == 204 || s->status == 304))
		fr->state = H1_HEAD;
	else if (s->chunked)
		fr->state = H1_CHUNK_LINE;
	else if (s->content_length > 0) {
		fr->state = H1_BODY;
		fr->left = s->content_length;
	} else
		fr->state = H1_HEAD;
	copy_step(w, s->head_len);
	return;
doubt:
	fr->state = H1_LOST;
	fall_back(w);
}

/* At a chunk-size line: copy it, and set up the chunk's data (or the message's end). */
static __always_inline void h1_chunk_line(struct budget_walk *w)
{
	struct framing *fr = w->fr;
	__u64 window = min_u64(w->cur->len - w->cur->pos, BUDGET_CHUNK_LINE), size = 0, line = 0;
	int c;

	begin_copy(w, BUDGET_CHUNK_LINE);
	if (materialize(w, w->cur->pos + window))
		goto doubt;
	for (int i = 0; i < BUDGET_CHUNK_LINE - 1; i++) {
		if (i + 1 >= window)
			break;
		c = scratch_byte(w, w->cur->pos + i);
		if (c == '\r') {
			if (i == 0 || scratch_byte(w, w->cur->pos + i + 1) != '\n')
				goto doubt;
			line = i + 2;
			break;
		}
		c |= 0x20;
		if (c >= '0' && c <= '9')
			size = size * 16 + (c - '0');
		else if (c >= 'a' && c <= 'f')
			size = size * 16 + (c - 'a' + 10);
		else
			goto doubt;
	}
	if (!line)
		goto doubt;
	if (!size) {
		/* The last chunk: only "0\r\n\r\n" (no trailers) is framed. */
		if (line + 2 > window || scratch_byte(w, w->cur->pos + line) != '\r' ||
		    scratch_byte(w, w->cur->pos + line + 1) != '\n')
			goto doubt;
		fr->state = H1_HEAD;
		copy_step(w, line + 2);
		return;
	}
	fr->state = H1_CHUNK_DATA;
	fr->left = size + 2;
	copy_step(w, line);
	return;
doubt:
	fr->state = H1_LOST;
	fall_back(w);
}

/* ---- HTTP/2 frames ---- */

/* At a frame header (maybe split across calls): copy it, and set up its payload. */
static __always_inline void h2_header(struct budget_walk *w)
{
	struct framing *fr = w->fr;
	__u64 have = fr->hdr_have, n;
	__u32 length;
	int c;

	if (have >= H2_FRAME_HEADER)
		have = 0;
	n = min_u64(H2_FRAME_HEADER - have, w->cur->len - w->cur->pos);
	begin_copy(w, H2_FRAME_HEADER);
	if (materialize(w, w->cur->pos + n)) {
		fr->proto = FRAMING_NONE;
		fall_back(w);
		return;
	}
	for (int i = 0; i < 5; i++) {
		if (i < have || i >= have + n)
			continue;
		c = scratch_byte(w, w->cur->pos + i - have);
		fr->hdr[i] = c;
	}
	copy_step(w, n);
	fr->hdr_have = have + n;
	if (fr->hdr_have < H2_FRAME_HEADER)
		return;
	fr->hdr_have = 0;
	length = (__u32)fr->hdr[0] << 16 | (__u32)fr->hdr[1] << 8 | fr->hdr[2];
	fr->left = length;
	fr->body_copied = 0;
	if (fr->hdr[3] == H2_TYPE_DATA && !(fr->hdr[4] & H2_FLAG_PADDED))
		fr->state = H2_DATA;
	else
		fr->state = H2_PAYLOAD;
	if (!length)
		fr->state = H2_HEADER;
}

/* One framing step at pos; WALK_DONE when the call is framed. */
static __always_inline int budget_step(struct budget_walk *w)
{
	struct framing *fr = w->fr;
	__u64 rest, n, keep;

	if (w->cur->pos >= w->cur->len || w->cur->fallback)
		return WALK_DONE;
	rest = w->cur->len - w->cur->pos;
	keep = body_limit > fr->body_copied ? body_limit - fr->body_copied : 0;
	switch (fr->state) {
	case H1_HEAD:
		h1_head(w);
		break;
	case H1_BODY:
		n = body_step(w, min_u64(fr->left, rest), keep);
		fr->left -= n;
		fr->body_copied += min_u64(n, keep);
		if (!fr->left)
			fr->state = H1_HEAD;
		break;
	case H1_CHUNK_LINE:
		h1_chunk_line(w);
		break;
	case H1_CHUNK_DATA:
		if (fr->left <= 2) {
			/* The CRLF after the data: copied (userspace checks it). */
			n = copy_step(w, min_u64(fr->left, rest));
		} else {
			n = body_step(w, min_u64(fr->left - 2, rest), keep);
			fr->body_copied += min_u64(n, keep);
		}
		fr->left -= n;
		if (!fr->left)
			fr->state = H1_CHUNK_LINE;
		break;
	case H2_PREFACE:
	case H2_PAYLOAD:
		n = copy_step(w, min_u64(fr->left, rest));
		fr->left -= n;
		if (!fr->left)
			fr->state = H2_HEADER;
		break;
	case H2_HEADER:
		h2_header(w);
		break;
	case H2_DATA:
		n = body_step(w, min_u64(fr->left, rest), keep);
		fr->left -= n;
		fr->body_copied += min_u64(n, keep);
		if (!fr->left)
			fr->state = H2_HEADER;
		break;
	default:
		fall_back(w);
		break;
	}
	return w->cur->pos >= w->cur->len || w->cur->fallback ? WALK_DONE : WALK_GO_ON;
}

/*
 * The walk's parts are global functions: the verifier checks each once, on
 * its own, whatever the state of its callers.
 */
__noinline int budget_walk_step(void)
{
	struct budget_walk w;

	if (budget_walk_maps(&w))
		return WALK_DONE;
	return budget_step(&w);
}

/* The call's rest when the steps ran out (framing lost), and its last record. */
__noinline int budget_walk_finish(void)
{
	struct budget_walk w;

	if (budget_walk_maps(&w))
		return 0;
	if (w.cur->pos < w.cur->len && !w.cur->fallback) {
		if (w.fr->proto == FRAMING_H2)
			w.fr->proto = FRAMING_NONE;
		w.fr->state = H1_LOST;
		fall_back(&w);
	}
	flush_record(&w);
	return 0;
}

static long budget_walk_callback(__u64 i, void *ctx)
{
	return budget_walk_step() ? WALK_DONE : WALK_GO_ON;
}

/* ---- protocol detection and the entry ---- */

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

/* First bytes of a direction's stream: HTTP/2 (preface or SETTINGS), HTTP/1, or neither. */
static __always_inline void detect_protocol(struct conn_state *conn, struct framing *fr,
					    struct data_call *call, __u64 len)
{
	__u8 b[16] = {};

	fr->proto = FRAMING_H1;
	fr->state = H1_LOST;
	/* A connection joined mid-stream may hold anything: HTTP/1 resync only. */
	if (conn->origin == ORIGIN_EXISTING || len < H2_FRAME_HEADER)
		return;
	if (read_call_prefix(call, b, sizeof(b)) && read_call_prefix(call, b, H2_FRAME_HEADER))
		return;
	if (len >= 16 && b[0] == 'P' && b[1] == 'R' && b[2] == 'I' && b[3] == ' ' && b[4] == '*' &&
	    b[5] == ' ' && b[6] == 'H' && b[7] == 'T' && b[8] == 'T' && b[9] == 'P' && b[10] == '/' &&
	    b[11] == '2') {
		fr->proto = FRAMING_H2;
		fr->state = H2_PREFACE;
		fr->left = H2_PREFACE_LEN;
		return;
	}
	/* A SETTINGS frame (not an ack) on stream 0 with whole settings. */
	if (b[3] == H2_TYPE_SETTINGS && !b[4] && !b[5] && !b[6] && !b[7] && !b[8] && !b[0] &&
	    ((b[1] << 8 | b[2]) % 6) == 0) {
		fr->proto = FRAMING_H2;
		fr->state = H2_HEADER;
		fr->hdr_have = 0;
		return;
	}
}

/* Does the call start like an HTTP/1 message (a request line or "HTTP/1.")? */
static __always_inline int starts_message(struct data_call *call)
{
	__u8 b[8] = {};

	if (read_call_prefix(call, b, sizeof(b)))
		return 0;
	if (b[0] == 'H' && b[1] == 'T' && b[2] == 'T' && b[3] == 'P' && b[4] == '/' && b[5] == '1' &&
	    b[6] == '.')
		return 1;
	for (int i = 0; i < 8; i++) {
		if (b[i] == ' ' && i >= 3)
			return 1;
		if (b[i] < 'A' || b[i] > 'Z')
			return 0;
	}
	return 0;
}

/* len bytes at offset of a plain connection's call: copied within the budget. */
static __always_inline void budget_data(struct data_call *call, struct stat_counters *counters,
					struct conn_state *conn, __u64 offset, __u64 len)
{
	struct framing *fr = call->direction == DIRECTION_SEND ? &conn->send_framing : &conn->recv_framing;
	struct budget_cursor *cur;
	__u32 zero = 0;

	if (fr->proto == FRAMING_DETECT) {
		if (offset)
			fr->proto = FRAMING_H1;
		else
			detect_protocol(conn, fr, call, len);
	} else if (fr->proto != FRAMING_NONE && fr->next != offset) {
		/* Another call of this direction was framed out of order (threads racing). */
		counters->values[STAT_BUDGET_FALLBACKS]++;
		if (fr->proto == FRAMING_H2)
			fr->proto = FRAMING_NONE;
		fr->state = H1_LOST;
	}
	fr->next = offset + len;
	if (fr->proto == FRAMING_NONE || call->mode == COPY_NONE) {
		/* Unframed, or no user buffer (sendfile, splice): as before. */
		if (fr->proto == FRAMING_H2) {
			fr->proto = FRAMING_NONE;
		} else if (fr->state == H1_BODY && fr->left >= len) {
			/* A body sent from a file: still framed. */
			fr->left -= len;
			if (!fr->left)
				fr->state = H1_HEAD;
		} else {
			fr->state = H1_LOST;
		}
		emit_data(call, counters, conn->conn_id, offset, len);
		return;
	}
	if (fr->proto == FRAMING_H1 && (fr->state == H1_LOST || fr->state == H1_HEAD)) {
		if (len <= body_limit || !starts_message(call)) {
			fr->state = H1_LOST;
			call->request_peek = conn;
			emit_data(call, counters, conn->conn_id, offset, len);
			return;
		}
		fr->state = H1_HEAD;
	}
	cur = bpf_map_lookup_elem(&budget_cursors, &zero);
	if (!cur)
		return;
	__builtin_memset(cur, 0, offsetof(struct budget_cursor, scan));
	cur->buf = call->buf;
	cur->iovcnt = call->iovcnt;
	cur->mode = call->mode;
	cur->offset = offset;
	cur->len = len;
	cur->conn_id = conn->conn_id;
	cur->cap = capture_bytes < HTTPSCOPE_MAX_CAPTURE ? capture_bytes : HTTPSCOPE_MAX_CAPTURE;
	cur->syscall = call->syscall;
	cur->direction = call->direction;
	cur->data_flags = call->data_flags;
	cur->unframed_responses = conn->unframed_responses;
	cur->fr = *fr;
	bpf_loop(BUDGET_MAX_STEPS, budget_walk_callback, NULL, 0);
	budget_walk_finish();
	*fr = cur->fr;
	conn->unframed_responses = cur->unframed_responses;
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
	offset = call->direction == DIRECTION_SEND ? __sync_fetch_and_add(&conn->sent, len)
						   : __sync_fetch_and_add(&conn->recvd, len);
	if (body_limit && capture_bytes >= BUDGET_MIN_CAPTURE)
		budget_data(call, counters, conn, offset, len);
	else
		emit_data(call, counters, conn->conn_id, offset, len);
}

#endif /* HTTPSCOPE_BUDGET_BPF_H */
