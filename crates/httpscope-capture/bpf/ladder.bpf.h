/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The cost ladder (bench/run.sh --ladder): the benchmark loads the programs
 * with bench_stage set, and they stop after that step of the capture, so that
 * each step's cost is measured apart. 0, the default, runs everything; the
 * verifier prunes the stage tests away, since bench_stage is read-only.
 *
 *   1  the program returns at once
 *   2  plus the port check and the connection-state lookup
 *   3  plus describing the call and the capture budget's framing
 *   4  plus the copy from user memory (into the per-CPU scratch)
 *   5  plus the ring reserve and the copy into it, discarded unseen
 *
 * Stages 6 and up are userspace's: the kernel runs whole. Stages 3 to 5 are
 * exact on the small-message path (a whole message per call, a fixed-size
 * record); a framed large message stops before its copy from stage 3 to 5.
 *
 * Needs conn.bpf.h before it.
 */
#ifndef HTTPSCOPE_LADDER_BPF_H
#define HTTPSCOPE_LADDER_BPF_H

const volatile __u32 bench_stage = 0;

/* Whether the capture stops after step `stage` of the ladder. */
static __always_inline int ladder_stops_at(__u32 stage)
{
	return bench_stage == stage;
}

/* Whether the capture stops before its ring record: at stage 3, 4 or 5. */
static __always_inline int ladder_stops_before_record(void)
{
	return bench_stage >= 3 && bench_stage <= 5;
}

/* A reserved record at stage 5 is given back unseen, and wakes no one. */
static __always_inline void ladder_submit(void *rec, __u64 flags)
{
	if (ladder_stops_at(5))
		bpf_ringbuf_discard(rec, BPF_RB_NO_WAKEUP);
	else
		bpf_ringbuf_submit(rec, flags);
}

#endif /* HTTPSCOPE_LADDER_BPF_H */
