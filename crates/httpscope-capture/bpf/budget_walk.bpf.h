/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The capture budget's walk over one call: framing steps (HTTP/1 or HTTP/2)
 * until the call is framed, then its last record; and budget_data, the
 * entry copy_data calls for plain connections and the TLS probes for their
 * plaintext. Needs budget_h1.bpf.h and budget_h2.bpf.h (and what they need)
 * included before it.
 */
#ifndef HTTPSCOPE_BUDGET_WALK_BPF_H
#define HTTPSCOPE_BUDGET_WALK_BPF_H

/* Framing steps (head, body part, chunk line, frame header, payload) per call. */
#define BUDGET_MAX_STEPS 128

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

/*
 * len bytes at offset of a call on the streams budget tracks (a connection's
 * bytes, or its TLS plaintext; origin: how the connection was found): copied
 * within the budget.
 */
static __always_inline void budget_data(struct data_call *call, struct stat_counters *counters,
					struct budget_state *budget, __u64 conn_id, __u16 origin,
					__u64 offset, __u64 len)
{
	struct framing *fr =
		call->direction == DIRECTION_SEND ? &budget->send_framing : &budget->recv_framing;
	struct budget_cursor *cur;
	__u32 zero = 0;
	int at_head;

	if (fr->proto == FRAMING_DETECT) {
		if (offset)
			fr->proto = FRAMING_H1;
		else
			detect_protocol(origin, fr, call, len);
	} else if (fr->proto != FRAMING_NONE && fr->next != offset) {
		/* Another call of this direction was framed out of order (threads racing). */
		counters->values[STAT_BUDGET_FALLBACKS]++;
		if (fr->proto == FRAMING_H2)
			fr->proto = FRAMING_NONE;
		fr->state = H1_LOST;
	}
	fr->next = offset + len;
	if (fr->proto == FRAMING_NONE || call->mode == COPY_NONE) {
		/* Unframed, or no user buffer (sendfile, splice): copied whole. */
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
		emit_data(call, counters, conn_id, offset, len);
		return;
	}
	/*
	 * A call that fits the smallest record is copied whole, past the body
	 * limit if need be: one reserved copy costs less than framing it.
	 */
	at_head = fr->proto == FRAMING_H1 && (fr->state == H1_LOST || fr->state == H1_HEAD);
	if (at_head && (len <= body_limit || len <= TINY_RECORD_CAPTURE)) {
		fr->state = H1_LOST;
		call->request_peek = budget;
		emit_data(call, counters, conn_id, offset, len);
		return;
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
	cur->conn_id = conn_id;
	cur->cap = capture_bytes < HTTPSCOPE_MAX_CAPTURE ? capture_bytes : HTTPSCOPE_MAX_CAPTURE;
	cur->syscall = call->syscall;
	cur->direction = call->direction;
	cur->data_flags = call->data_flags;
	cur->unframed_responses = budget->unframed_responses;
	if (at_head) {
		/* Framed from its head if it starts a message (h1_head checks). */
		fr->state = H1_HEAD;
		cur->check_start = 1;
	}
	cur->fr = *fr;
	bpf_loop(BUDGET_MAX_STEPS, budget_walk_callback, NULL, 0);
	budget_walk_finish();
	*fr = cur->fr;
	budget->unframed_responses = cur->unframed_responses;
}

#endif /* HTTPSCOPE_BUDGET_WALK_BPF_H */
