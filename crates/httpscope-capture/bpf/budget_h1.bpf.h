/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The capture budget's HTTP/1 framing: a message head scanned for its end
 * and its body's framing (Content-Length, chunked), and chunk-size lines.
 * Needs budget.bpf.h (and what it needs) included before it.
 */
#ifndef HTTPSCOPE_BUDGET_H1_BPF_H
#define HTTPSCOPE_BUDGET_H1_BPF_H

/* Head bytes searched for the head's end; longer heads are copied as they come. */
#define BUDGET_HEAD_SCAN 2048
/* A chunk-size line the kernel frames: up to 8 hex digits and CRLF, then "\r\n" after a last chunk. */
#define BUDGET_CHUNK_LINE 12

/* A header line [ls, end) (CR excluded) of a head: Content-Length or Transfer-Encoding. */
static __always_inline void scan_header(struct budget_walk *w, struct head_scan *s, __u64 ls,
					__u64 end)
{
	__u64 n = end - ls, v, value = 0, digits = 0;
	int c;

	if (n < 15)
		return;
	v = LOWER8(scratch_word(w, ls));
	if (v == WORD_CONTENT_ && (LOWER8(scratch_word(w, ls + 8)) & LOW7) == WORD_LENGTH_) {
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

/* The first line: a request line (method, space) or a status line ("HTTP/1.x NNN"). */
static __always_inline void scan_start_line(struct budget_walk *w, struct head_scan *s, __u64 ls,
					    __u64 end)
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

/*
 * The index of the first '\n' among the word's first n bytes, or 8. Only the
 * lowest byte the zero-byte test flags is exact (a borrow can flag the bytes
 * above it), so only that one is taken.
 */
static __always_inline __u64 first_newline(__u64 word, __u64 n)
{
	__u64 x = word ^ (BYTES_01 * '\n'), hits = (x - BYTES_01) & ~x & BYTES_80, low, at = 0;

	if (n < 8)
		hits &= (1ULL << (8 * n)) - 1;
	if (!hits)
		return 8;
	low = hits & -hits;
	if (!(low & 0xffffffffULL)) {
		at += 4;
		low >>= 32;
	}
	if (!(low & 0xffff)) {
		at += 2;
		low >>= 16;
	}
	if (!(low & 0xff))
		at += 1;
	return at;
}

/* One line end of the head (or 8 bytes without one): its start line, a header, or its end. */
static long head_scan_line(__u64 i, struct budget_walk *w)
{
	struct head_scan *s = &w->cur->scan;
	__u64 ls = s->line_start, at, k;

	if (s->next >= s->window)
		return WALK_DONE;
	k = first_newline(scratch_word(w, s->start + s->next), s->window - s->next);
	if (k == 8) {
		s->next += 8;
		return WALK_GO_ON;
	}
	at = s->start + s->next + k;
	s->next += k + 1;
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

/*
 * Does the call start like an HTTP/1 message (a request line or "HTTP/1.")?
 * Asked of the head's scan window, already read: a head costs one read of
 * user memory, not two.
 */
static __always_inline int starts_message(struct budget_walk *w)
{
	__u64 word = scratch_word(w, w->cur->pos);
	int c;

	if ((word & LOW7) == WORD_HTTP1)
		return 1;
	/* A method: 3 to 7 capital letters, then a space. */
	for (int i = 0; i < 8; i++) {
		c = (word >> (8 * i)) & 0xff;
		if (c == ' ' && i >= 3)
			return 1;
		if (c < 'A' || c > 'Z')
			return 0;
	}
	return 0;
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
	if (w->cur->check_start) {
		w->cur->check_start = 0;
		if (s->window < 8 || !starts_message(w)) {
			/* Not a message's start: copied whole, and the position stays unknown. */
			fr->state = H1_LOST;
			copy_rest(w);
			return;
		}
	}
	bpf_loop(BUDGET_HEAD_SCAN, head_scan_line, w, 0);
	if (s->head_request)
		w->cur->unframed_responses = 1;
	if (s->doubt || !s->head_len || (s->response && w->cur->unframed_responses) ||
	    (s->chunked && s->content_length >= 0))
		goto doubt;
	fr->body_copied = 0;
	fr->left = 0;
	if (s->response &&
	    (s->status == 101 || (s->status >= 200 && s->status != 204 && s->status != 304 &&
				  !s->chunked && s->content_length < 0))) {
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

#endif /* HTTPSCOPE_BUDGET_H1_BPF_H */
