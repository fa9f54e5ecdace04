// SPDX-License-Identifier: GPL-2.0
/*
 * Socket capture for httpscope: one compilation unit, split by concern.
 *
 *   kernel.bpf.h   kernel types and constants, syscall registers
 *   compat.bpf.h   what the full and the baseline object differ in
 *   conn.bpf.h     configuration, connection state, ring buffer, counters,
 *                  filters, connection open/close events
 *   ladder.bpf.h   the benchmark's cost ladder: stop after a given step
 *   words.bpf.h    ASCII words the HTTP/1 framing compares
 *   copy.bpf.h     copying what a call moved into the ring buffer
 *   budget.bpf.h   the capture budget per HTTP message: cursor and records,
 *   budget_h1.bpf.h  HTTP/1 framing, budget_h2.bpf.h HTTP/2 framing,
 *   budget_walk.bpf.h  the walk over a call and its entry
 *   verdict.bpf.h  --all-ports: whether a connection carries HTTP
 *   node_tls.bpf.h Node.js TLSWrap uprobes: the connection of Node's SSL objects
 *   tls.bpf.h      TLS library uprobes (plaintext)
 *   syscall.bpf.h  the syscall backend (tp_btf/sys_exit)
 *   socket.bpf.h   the socket backend (tp_btf/sock_{send,recv}_length)
 *   go_tls.bpf.h   Go crypto/tls uprobes (plaintext), for either backend
 *   rustls.bpf.h   rustls uprobes (plaintext), for either backend
 *   binaries.bpf.h exec and library loads, to hook TLS code that appears later
 *
 * The loader attaches one backend; the TLS uprobes work with either.
 *
 * Tracepoints and uprobes only: no kprobes, no fentry.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
/* struct pt_regs as userspace sees it, for the TLS library uprobes. */
#include <asm/ptrace.h>
#include <bpf/bpf_tracing.h>

#include "httpscope.h"

char LICENSE[] SEC("license") = "GPL";

#include "kernel.bpf.h"
#include "compat.bpf.h"
#include "conn.bpf.h"
#include "ladder.bpf.h"
#include "words.bpf.h"
#include "copy.bpf.h"
#if HAVE_BPF_LOOP
#include "budget.bpf.h"
#include "budget_h1.bpf.h"
#include "budget_h2.bpf.h"
#include "budget_walk.bpf.h"
#endif
#include "verdict.bpf.h"
#include "node_tls.bpf.h"
#include "tls.bpf.h"
#include "syscall.bpf.h"
#include "socket.bpf.h"
#include "go_tls.bpf.h"
#include "rustls.bpf.h"
#include "binaries.bpf.h"

/*
 * Every backend: a traced process exited, its connections are gone. It runs
 * for every exiting thread: the baseline object's per-thread state goes too.
 */
SEC("tracepoint/sched/sched_process_exit")
int process_exit(void *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct process_exit_event event = {};

#ifdef HTTPSCOPE_BASELINE
	bpf_map_delete_elem(&ssl_calls, &pid_tgid);
	bpf_map_delete_elem(&node_tls_threads, &pid_tgid);
	bpf_map_delete_elem(&rustls_threads, &pid_tgid);
#endif
	if ((__u32)pid_tgid != tgid || !bpf_map_lookup_elem(&traced_processes, &tgid))
		return 0;
	bpf_map_delete_elem(&traced_processes, &tgid);
	fill_header(&event.header, EVENT_KIND_PROCESS_EXIT, 0);
	submit(&event, sizeof(event), STAT_CONTROL_EVENTS_DROPPED);
	return 0;
}

/* Mirrored in crates/httpscope-core/src/event/abi.rs. */
_Static_assert(sizeof(struct event_header) == 32, "event_header layout");
_Static_assert(sizeof(struct data_event) == 56, "data_event layout");
_Static_assert(sizeof(struct conn_open_event) == 104, "conn_open_event layout");
_Static_assert(sizeof(struct conn_close_event) == 48, "conn_close_event layout");
_Static_assert(sizeof(struct binary_event) == 8, "binary_event layout");
_Static_assert(STAT_COUNT == 23, "stat ids");
