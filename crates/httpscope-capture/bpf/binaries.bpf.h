/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Programs and libraries that appear after capture started: the exec of any
 * process (sched_process_exec), and the dynamic loader's debugger hook
 * _dl_debug_state, which it calls after every change to the loaded
 * libraries (start-up, dlopen, dlclose). Userspace looks at that process's
 * executable and mappings, and hooks each new file once.
 *
 * Needs conn.bpf.h included before it.
 */
#ifndef HTTPSCOPE_BINARIES_BPF_H
#define HTTPSCOPE_BINARIES_BPF_H

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 10);
} binaries SEC(".maps");

static __always_inline int report_binary(__u32 reason)
{
	struct binary_event event = {
		.tgid = bpf_get_current_pid_tgid() >> 32,
		.reason = reason,
	};

	if (filter_tgid && filter_tgid != event.tgid)
		return 0;
	bpf_ringbuf_output(&binaries, &event, sizeof(event), 0);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int process_exec(void *ctx)
{
	return report_binary(BINARY_EXEC);
}

SEC("uprobe")
int libraries_changed(struct pt_regs *ctx)
{
	return report_binary(BINARY_LIBRARIES);
}

#endif /* HTTPSCOPE_BINARIES_BPF_H */
