/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What every backend shares: the loader's configuration, the connection
 * state, the ring buffer and counters, the port and process filters, and
 * the connection open/close events.
 *
 * Needs kernel.bpf.h (and what it needs) included before it.
 */
#ifndef HTTPSCOPE_CONN_BPF_H
#define HTTPSCOPE_CONN_BPF_H

/* Configuration, set by the loader before the programs load. */
const volatile __u16 watched_ports[HTTPSCOPE_MAX_PORTS] = {};
const volatile __u32 watched_port_count = 0;
const volatile __u32 filter_tgid = 0;
const volatile __u8 filter_comm[HTTPSCOPE_COMM_LEN] = {};
const volatile __u32 capture_bytes = 4096;
/* The capture budget: body bytes copied per HTTP message (0: every call copied up to capture_bytes). */
const volatile __u32 body_limit = 0;
/* The TLS library uprobes are attached: socket syscalls may run inside SSL calls. */
const volatile __u8 tls_probes = 0;
/* --all-ports: every TCP port is a candidate (watched_ports, if any, narrow). */
const volatile __u8 all_ports = 0;
/* Only tasks whose cgroup v2 id is in selected_cgroups (--container). */
const volatile __u8 filter_cgroups = 0;
/* The socket backend is attached (else the syscall backend): the TLS uprobes find connections its way. */
const volatile __u8 socket_backend = 0;
/* Wake the reader only once this much is queued (0: on every event). */
const volatile __u64 wakeup_bytes = 0;

/* The capture budget (budget.bpf.h): what a direction's stream carries. */
enum framing_proto {
	/* Nothing seen yet: the first bytes decide. */
	FRAMING_DETECT = 0,
	FRAMING_H1 = 1,
	FRAMING_H2 = 2,
	/* Not framed: every call is copied as it comes. */
	FRAMING_NONE = 3,
};

enum framing_state {
	/* HTTP/1, position unknown: calls are copied until a large one starts a message. */
	H1_LOST = 0,
	/* HTTP/1, at a message start. */
	H1_HEAD = 1,
	/* HTTP/1, left body bytes to come. */
	H1_BODY = 2,
	/* HTTP/1, at a chunk-size line. */
	H1_CHUNK_LINE = 3,
	/* HTTP/1, left bytes of chunk data and its CRLF to come. */
	H1_CHUNK_DATA = 4,
	/* HTTP/2, left bytes of the client preface to come. */
	H2_PREFACE = 5,
	/* HTTP/2, at a frame header (hdr_have of its bytes seen). */
	H2_HEADER = 6,
	/* HTTP/2, left bytes of a frame payload copied whole. */
	H2_PAYLOAD = 7,
	/* HTTP/2, left bytes of a DATA payload to come. */
	H2_DATA = 8,
};

/* Where one direction's stream is, for the capture budget. */
struct framing {
	/* The stream offset the next call must start at: calls seen out of order unframe. */
	__u64 next;
	__u64 left;
	/* Body bytes copied: of the HTTP/1 message, or of the HTTP/2 DATA frame. */
	__u32 body_copied;
	__u8 proto;
	__u8 state;
	__u8 hdr_have;
	__u8 reserved;
	/* The first bytes of a frame header split across calls (length, type, flags). */
	__u8 hdr[8];
};

/*
 * The capture budget's state of one stream pair: a connection's bytes
 * (in conn_state), or its TLS plaintext (tls_budgets, tls.bpf.h).
 */
struct budget_state {
	struct framing send_framing;
	struct framing recv_framing;
	/* A HEAD or CONNECT request went by: responses cannot be framed by the kernel. */
	__u8 unframed_responses;
};

struct conn_state {
	__u64 conn_id;
	/* Syscall backend: the struct file this fd held when we first saw it. */
	__u64 file;
	__u64 sent;
	__u64 recvd;
	__u16 origin;
	__u8 open_pending;
	/* A TLS library call used this socket: its syscall bytes are ciphertext. */
	__u8 tls;
	/* --all-ports: enum conn_verdict, and the calls judged while undecided. */
	__u8 verdict;
	__u8 probes;
	/* Socket backend: the first process to use the socket is not selected. */
	__u8 ignored;
	/* Socket backend: the close event went out. */
	__u8 closed;
	/* Plaintext stream offsets of the TLS library calls (syscall backend). */
	__u64 tls_sent;
	__u64 tls_recvd;
	/* Socket backend: the (process, fd) last checked to hold this socket. */
	__u32 fd_tgid;
	__u32 fd;
	/* The capture budget's place in each direction (not the TLS plaintext's). */
	struct budget_state budget;
};

struct stat_counters {
	__u64 values[STAT_COUNT];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} traced_processes SEC(".maps");

/* cgroup v2 ids of the selected containers, kept current by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} selected_cgroups SEC(".maps");

/* One per-CPU slot holding every counter: a single lookup per program run. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stat_counters);
} stats SEC(".maps");

#ifndef HTTPSCOPE_BASELINE
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} next_conn_id SEC(".maps");

/* A new connection id: unique for the life of the profiler, 0 when none could be drawn. */
static __always_inline __u64 new_conn_id(void)
{
	__u32 zero = 0;
	__u64 *id = bpf_map_lookup_elem(&next_conn_id, &zero);

	return id ? __sync_fetch_and_add(id, 1) + 1 : 0;
}
#else
/* Baseline: ids drawn per CPU, interleaved (no fetching atomics to share one counter). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} next_conn_id SEC(".maps");

static __always_inline __u64 new_conn_id(void)
{
	__u32 zero = 0;
	__u64 *drawn = bpf_map_lookup_elem(&next_conn_id, &zero);

	if (!drawn)
		return 0;
	return (*drawn)++ * possible_cpus + bpf_get_smp_processor_id() + 1;
}
#endif

static __always_inline void stat_add(__u32 idx, __u64 value)
{
	__u32 zero = 0;
	struct stat_counters *counters = bpf_map_lookup_elem(&stats, &zero);

	if (counters && idx < STAT_COUNT)
		counters->values[idx] += value;
}

/* Consumer position at the last forced wakeup. */
__u64 woken_at_consumer_pos = 0;

/*
 * Wake the reader once per consumer position when the queue holds
 * wakeup_bytes, not on every event above it: a wakeup per event costs every
 * traced syscall. The reader also polls on a short timer.
 */
static __always_inline __u64 wakeup_flags(void)
{
	__u64 consumer_pos;

	if (!wakeup_bytes)
		return 0;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) < wakeup_bytes)
		return BPF_RB_NO_WAKEUP;
	consumer_pos = bpf_ringbuf_query(&events, BPF_RB_CONS_POS);
	if (consumer_pos == woken_at_consumer_pos)
		return BPF_RB_NO_WAKEUP;
	woken_at_consumer_pos = consumer_pos;
	return BPF_RB_FORCE_WAKEUP;
}

static __always_inline int submit(void *event, __u64 size, __u32 drop_stat)
{
	if (bpf_ringbuf_output(&events, event, size, wakeup_flags())) {
		stat_add(drop_stat, 1);
		return -1;
	}
	stat_add(STAT_EVENTS_SUBMITTED, 1);
	return 0;
}

static __always_inline void fill_header(struct event_header *header, __u32 kind, __u64 conn_id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	header->kind = kind;
	header->tgid = pid_tgid >> 32;
	header->tid = (__u32)pid_tgid;
	header->reserved = 0;
	header->ts_ns = bpf_ktime_get_ns();
	header->conn_id = conn_id;
}

static __always_inline int port_watched(__u16 local_port, __u16 remote_port)
{
	if (all_ports && !watched_port_count)
		return 1;
#pragma unroll
	for (int i = 0; i < HTTPSCOPE_MAX_PORTS; i++) {
		if (i >= watched_port_count)
			return 0;
		if (watched_ports[i] == local_port || watched_ports[i] == remote_port)
			return 1;
	}
	return 0;
}

static __always_inline int process_selected(__u32 tgid)
{
	if (filter_tgid && filter_tgid != tgid)
		return 0;
	if (filter_cgroups) {
		__u64 cgroup_id = bpf_get_current_cgroup_id();

		if (!bpf_map_lookup_elem(&selected_cgroups, &cgroup_id))
			return 0;
	}
	if (filter_comm[0]) {
		char comm[HTTPSCOPE_COMM_LEN] = {};
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();

		BPF_CORE_READ_STR_INTO(&comm, task, group_leader, comm);
#pragma unroll
		for (int i = 0; i < HTTPSCOPE_COMM_LEN; i++) {
			if (comm[i] != filter_comm[i])
				return 0;
			if (!comm[i])
				break;
		}
	}
	return 1;
}

static __always_inline int emit_open(struct conn_state *conn, __u32 fd, struct sock *sk)
{
	struct conn_open_event event = {};
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	fill_header(&event.header, EVENT_KIND_CONN_OPEN, conn->conn_id);
	event.fd = fd;
	event.origin = conn->origin;
	event.family = BPF_CORE_READ(sk, __sk_common.skc_family);
	event.local_port = BPF_CORE_READ(sk, __sk_common.skc_num);
	event.remote_port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (event.family == AF_INET) {
		BPF_CORE_READ_INTO(&event.local_addr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO(&event.remote_addr, sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO(&event.local_addr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO(&event.remote_addr, sk, __sk_common.skc_v6_daddr);
	}
	BPF_CORE_READ_STR_INTO(&event.comm, task, group_leader, comm);
	event.cgroup_id = bpf_get_current_cgroup_id();
	if (submit(&event, sizeof(event), STAT_CONTROL_EVENTS_DROPPED))
		return -1;
	stat_add(STAT_CONNS_OPENED, 1);
	return 0;
}

static __always_inline void emit_close(struct conn_state *conn)
{
	struct conn_close_event event = {};

	fill_header(&event.header, EVENT_KIND_CONN_CLOSE, conn->conn_id);
	event.sent_bytes = conn->sent;
	event.recv_bytes = conn->recvd;
	submit(&event, sizeof(event), STAT_CONTROL_EVENTS_DROPPED);
}

#endif /* HTTPSCOPE_CONN_BPF_H */
