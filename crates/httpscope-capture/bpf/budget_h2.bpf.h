/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The capture budget's HTTP/2 framing: frame headers (maybe split across
 * calls), and which streams start as HTTP/2 (the client preface, or a first
 * SETTINGS frame). Needs budget.bpf.h (and what it needs) included before it.
 */
#ifndef HTTPSCOPE_BUDGET_H2_BPF_H
#define HTTPSCOPE_BUDGET_H2_BPF_H

#define H2_FRAME_HEADER 9
#define H2_PREFACE_LEN 24
#define H2_TYPE_DATA 0
#define H2_TYPE_SETTINGS 4
#define H2_FLAG_PADDED 0x8

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

/* First bytes of a direction's stream: HTTP/2 (preface or SETTINGS), HTTP/1, or neither. */
static __always_inline void detect_protocol(__u16 origin, struct framing *fr,
					    struct data_call *call, __u64 len)
{
	__u8 b[16] = {};

	fr->proto = FRAMING_H1;
	fr->state = H1_LOST;
	/* A connection joined mid-stream may hold anything: HTTP/1 resync only. */
	if (origin == ORIGIN_EXISTING || len < H2_FRAME_HEADER)
		return;
	if (read_call_prefix(call, b, sizeof(b)) && read_call_prefix(call, b, H2_FRAME_HEADER))
		return;
	if (len >= 16 && b[0] == 'P' && b[1] == 'R' && b[2] == 'I' && b[3] == ' ' && b[4] == '*' &&
	    b[5] == ' ' && b[6] == 'H' && b[7] == 'T' && b[8] == 'T' && b[9] == 'P' &&
	    b[10] == '/' && b[11] == '2') {
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

#endif /* HTTPSCOPE_BUDGET_H2_BPF_H */
