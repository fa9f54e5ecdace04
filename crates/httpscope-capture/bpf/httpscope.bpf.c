// SPDX-License-Identifier: GPL-2.0
/*
 * Socket syscall capture for httpscope.
 *
 * Syscall tracepoints only (no kprobes, no fentry): one BTF tracepoint on
 * the raw sys_exit event sees every syscall return, picks the socket
 * syscalls by number and reads their arguments from the saved user
 * registers, so nothing has to be parked between entry and exit and no
 * per-syscall perf tracepoint runs. Connections live in a table keyed by
 * (tgid, fd) that also remembers the struct file, so fd reuse, dup2 and pid
 * reuse start a new connection id instead of joining two.
 *
 * TLS: uprobes on the TLS library's SSL_read/SSL_write(_ex) copy the
 * plaintext. The call's socket is the one the socket syscalls made inside
 * the call use (or the fd given to SSL_set_fd); plaintext gets its own
 * per-direction stream on that connection, and the connection's ciphertext
 * is no longer logged from then on.
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

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define S_IFMT 0170000
#define S_IFSOCK 0140000
#define MSG_PEEK 2
#define EINPROGRESS 115

/* Minimal kernel types; CO-RE relocates each field by name. */
/*
 * The user registers saved at syscall entry, as the kernel lays them out
 * (the uprobes use <asm/ptrace.h>'s userspace spelling of the same struct).
 */
#if defined(__TARGET_ARCH_x86)
struct pt_regs___kernel {
	unsigned long r10;
	unsigned long dx;
	unsigned long si;
	unsigned long di;
	unsigned long orig_ax;
} __attribute__((preserve_access_index));

#define SYSCALL_NR(regs) ((regs)->orig_ax)
#define SYSCALL_ARG1(regs) ((regs)->di)
#define SYSCALL_ARG2(regs) ((regs)->si)
#define SYSCALL_ARG3(regs) ((regs)->dx)
#define SYSCALL_ARG4(regs) ((regs)->r10)

/* x86_64 syscall numbers. */
#define NR_READ 0
#define NR_WRITE 1
#define NR_CLOSE 3
#define NR_READV 19
#define NR_WRITEV 20
#define NR_SENDFILE 40
#define NR_CONNECT 42
#define NR_ACCEPT 43
#define NR_SENDTO 44
#define NR_RECVFROM 45
#define NR_SENDMSG 46
#define NR_RECVMSG 47
#define NR_SPLICE 275
#define NR_ACCEPT4 288

/* A 32-bit (ia32) syscall: its numbers mean other calls. */
#define TS_COMPAT 0x0002
struct thread_info {
	__u32 status;
} __attribute__((preserve_access_index));
#elif defined(__TARGET_ARCH_arm64)
struct pt_regs___kernel {
	__u64 regs[31];
	__u64 orig_x0;
	__s32 syscallno;
} __attribute__((preserve_access_index));

#define SYSCALL_NR(regs) ((regs)->syscallno)
/* x0 holds the return value by now; orig_x0 keeps the first argument. */
#define SYSCALL_ARG1(regs) ((regs)->orig_x0)
#define SYSCALL_ARG2(regs) ((regs)->regs[1])
#define SYSCALL_ARG3(regs) ((regs)->regs[2])
#define SYSCALL_ARG4(regs) ((regs)->regs[3])

/* arm64 (asm-generic) syscall numbers; there is no plain accept(2) slot clash. */
#define NR_READ 63
#define NR_WRITE 64
#define NR_CLOSE 57
#define NR_READV 65
#define NR_WRITEV 66
#define NR_SENDFILE 71
#define NR_CONNECT 203
#define NR_ACCEPT 202
#define NR_SENDTO 206
#define NR_RECVFROM 207
#define NR_SENDMSG 211
#define NR_RECVMSG 212
#define NR_SPLICE 76
#define NR_ACCEPT4 242
#else
#error "httpscope reads syscall arguments from x86_64 or arm64 registers"
#endif

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
} __attribute__((preserve_access_index));

struct files_struct {
	struct fdtable *fdt;
} __attribute__((preserve_access_index));

struct inode {
	unsigned short i_mode;
} __attribute__((preserve_access_index));

struct file {
	struct inode *f_inode;
	void *private_data;
} __attribute__((preserve_access_index));

struct task_struct {
#if defined(__TARGET_ARCH_x86)
	struct thread_info thread_info;
#endif
	struct files_struct *files;
	struct task_struct *group_leader;
	char comm[16];
} __attribute__((preserve_access_index));

struct in6_addr {
	__u8 s6_addr[16];
};

struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;
	unsigned short skc_family;
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;
} __attribute__((preserve_access_index));

struct socket {
	short type;
	struct sock *sk;
} __attribute__((preserve_access_index));

struct user_iovec {
	__u64 base;
	__u64 len;
};

/* struct user_msghdr as laid out in user memory on 64-bit. */
struct user_msghdr {
	__u64 msg_name;
	__u32 msg_namelen;
	__u32 pad;
	__u64 msg_iov;
	__u64 msg_iovlen;
};

/* Configuration, set by the loader before the programs load. */
const volatile __u16 watched_ports[HTTPSCOPE_MAX_PORTS] = {};
const volatile __u32 watched_port_count = 0;
const volatile __u32 filter_tgid = 0;
const volatile __u8 filter_comm[HTTPSCOPE_COMM_LEN] = {};
const volatile __u32 capture_bytes = 4096;
/* The TLS library uprobes are attached: socket syscalls may run inside SSL calls. */
const volatile __u8 tls_probes = 0;
/* Wake the reader only once this much is queued (0: on every event). */
const volatile __u64 wakeup_bytes = 0;

enum copy_mode {
	COPY_BUFFER = 0,
	COPY_IOVEC = 1,
	COPY_NONE = 2,
};

struct conn_state {
	__u64 conn_id;
	/* The struct file this fd held when we first saw it. */
	__u64 file;
	__u64 sent;
	__u64 recvd;
	__u16 origin;
	__u8 open_pending;
	/* A TLS library call used this socket: its syscall bytes are ciphertext. */
	__u8 tls;
	__u8 reserved[4];
	/* Plaintext stream offsets of the TLS library calls. */
	__u64 tls_sent;
	__u64 tls_recvd;
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
};

enum ssl_op {
	SSL_OP_WRITE = 1,
	SSL_OP_READ = 2,
	SSL_OP_WRITE_EX = 3,
	SSL_OP_READ_EX = 4,
	/* SSL_do_handshake (SSL_connect, SSL_accept): no data, only the socket. */
	SSL_OP_HANDSHAKE = 5,
};

/* A TLS library call in flight on this thread. */
struct ssl_call {
	__u64 ssl;
	__u64 buf;
	/* SSL_read_ex/SSL_write_ex: where the library stores the byte count. */
	__u64 count_ptr;
	__u32 fd;
	__u8 op;
	/* A socket syscall inside the call found the fd. */
	__u8 fd_known;
	__u8 active;
	__u8 reserved;
};

struct ssl_key {
	__u32 tgid;
	__u32 reserved;
	__u64 ssl;
};

struct stat_counters {
	__u64 values[STAT_COUNT];
};

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
	/* Twice the capture limit so the verifier can bound iovec offsets. */
	__u8 data[2 * HTTPSCOPE_MAX_CAPTURE];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct conn_state);
} conns SEC(".maps");

/* Per-thread TLS library call in flight. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ssl_call);
} ssl_calls SEC(".maps");

/* (tgid, SSL *) -> fd: for calls served from the library's buffer, without a syscall. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ssl_key);
	__type(value, __u32);
} ssl_fds SEC(".maps");

/* (tgid, fd) -> the socket found not to be watched: skips the socket walk. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} unwatched_fds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u8);
} traced_processes SEC(".maps");

/* Indexed by CPU; sized to the possible CPUs by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct data_scratch);
} scratch SEC(".maps");

/* One per-CPU slot holding every counter: a single lookup per program run. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stat_counters);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} next_conn_id SEC(".maps");

static __always_inline void stat_add(__u32 idx, __u64 value)
{
	__u32 zero = 0;
	struct stat_counters *counters = bpf_map_lookup_elem(&stats, &zero);

	if (counters && idx < STAT_COUNT)
		counters->values[idx] += value;
}

/*
 * TLS library calls in flight on all threads. While it is 0 no socket syscall
 * can be inside one, and the per-thread lookup is skipped. A call whose return
 * probe never ran (the thread died inside it) only keeps the lookups on.
 */
__u64 ssl_calls_in_flight = 0;

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

/* Direct loads through the BTF task pointer: no helper call per hop. */
static __always_inline struct file *file_of_fd(__u32 fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct files_struct *files = task->files;
	struct fdtable *fdt;
	struct file **fds;
	struct file *file = NULL;

	if (!files)
		return NULL;
	fdt = files->fdt;
	if (!fdt || fd >= fdt->max_fds)
		return NULL;
	fds = fdt->fd;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	return file;
}

/* The TCP sock behind a file, or NULL for anything else. */
static __always_inline struct sock *tcp_sock_of_file(struct file *file)
{
	unsigned short mode = BPF_CORE_READ(file, f_inode, i_mode);
	struct socket *socket;
	struct sock *sk;
	unsigned short family;

	if ((mode & S_IFMT) != S_IFSOCK)
		return NULL;
	socket = BPF_CORE_READ(file, private_data);
	if (!socket || BPF_CORE_READ(socket, type) != SOCK_STREAM)
		return NULL;
	sk = BPF_CORE_READ(socket, sk);
	if (!sk)
		return NULL;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	if (BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return NULL;
	return sk;
}

static __always_inline int port_watched(__u16 local_port, __u16 remote_port)
{
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
	return submit(&event, sizeof(event), STAT_CONTROL_EVENTS_DROPPED);
}

static __always_inline void emit_close(struct conn_state *conn)
{
	struct conn_close_event event = {};

	fill_header(&event.header, EVENT_KIND_CONN_CLOSE, conn->conn_id);
	event.sent_bytes = conn->sent;
	event.recv_bytes = conn->recvd;
	submit(&event, sizeof(event), STAT_CONTROL_EVENTS_DROPPED);
}

/*
 * The connection state of a watched socket fd, created on first sight.
 * Returns NULL for fds that are not watched TCP sockets.
 */
static __always_inline struct conn_state *watched_conn(__u32 tgid, __u32 fd, __u16 origin)
{
	__u64 key = ((__u64)tgid << 32) | fd;
	struct file *file = file_of_fd(fd);
	struct conn_state *conn;
	struct sock *sk;
	__u32 zero = 0;
	__u64 *id;
	__u8 one = 1;

	if (!file)
		return NULL;
	conn = bpf_map_lookup_elem(&conns, &key);
	if (conn) {
		if (conn->file == (__u64)file) {
			if (conn->open_pending) {
				sk = tcp_sock_of_file(file);
				if (sk && !emit_open(conn, fd, sk))
					conn->open_pending = 0;
			}
			return conn;
		}
		/* The fd now holds another file: the old connection is over. */
		emit_close(conn);
		bpf_map_delete_elem(&conns, &key);
	}
	/* accept and connect always classify: their sockets are new. */
	if (origin == ORIGIN_EXISTING) {
		__u64 *unwatched;

		/* Files, pipes and the like: one inode read, no cache entry. */
		if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
			return NULL;
		unwatched = bpf_map_lookup_elem(&unwatched_fds, &key);

		if (unwatched && *unwatched == (__u64)file)
			return NULL;
	}

	sk = tcp_sock_of_file(file);
	if (!sk || !port_watched(BPF_CORE_READ(sk, __sk_common.skc_num),
				 bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport))) ||
	    !process_selected(tgid)) {
		__u64 file_id = (__u64)file;

		bpf_map_update_elem(&unwatched_fds, &key, &file_id, BPF_ANY);
		return NULL;
	}

	id = bpf_map_lookup_elem(&next_conn_id, &zero);
	if (!id)
		return NULL;
	struct conn_state fresh = {
		.conn_id = __sync_fetch_and_add(id, 1) + 1,
		.file = (__u64)file,
		.origin = origin,
		.open_pending = 1,
	};
	if (bpf_map_update_elem(&conns, &key, &fresh, BPF_ANY)) {
		stat_add(STAT_CONN_TABLE_FULL, 1);
		return NULL;
	}
	conn = bpf_map_lookup_elem(&conns, &key);
	if (!conn)
		return NULL;
	stat_add(STAT_CONNS_OPENED, 1);
	bpf_map_update_elem(&traced_processes, &tgid, &one, BPF_ANY);
	if (!emit_open(conn, fd, sk))
		conn->open_pending = 0;
	return conn;
}

static __always_inline __u64 copy_iovecs(__u8 *dst, __u64 iov_ptr, __u64 iovcnt, __u64 budget)
{
	__u64 copied = 0;

	for (int i = 0; i < HTTPSCOPE_MAX_IOVECS; i++) {
		struct user_iovec iov;
		__u64 n;

		if (i >= iovcnt || copied >= budget || copied >= HTTPSCOPE_MAX_CAPTURE)
			break;
		if (bpf_probe_read_user(&iov, sizeof(iov), (void *)(iov_ptr + i * sizeof(iov))))
			break;
		n = iov.len;
		if (n > budget - copied)
			n = budget - copied;
		if (n > HTTPSCOPE_MAX_CAPTURE)
			n = HTTPSCOPE_MAX_CAPTURE;
		if (bpf_probe_read_user(dst + copied, n, (void *)iov.base))
			break;
		copied += n;
	}
	return copied;
}

static __always_inline void count_truncation(struct stat_counters *counters, struct data_event *event,
					     __u8 mode, __u64 len, __u64 captured)
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

static __always_inline void fill_data(struct data_event *event, struct data_call *call, __u64 conn_id,
				      __u64 offset, __u64 len)
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
#define DEFINE_EMIT_RESERVED(name, record_type, capacity)                                         \
	static __always_inline void name(struct data_call *call, struct stat_counters *counters, \
					 __u64 conn_id, __u64 offset, __u64 len, __u64 budget)  \
	{                                                                                        \
		record_type *rec = bpf_ringbuf_reserve(&events, sizeof(*rec), 0);               \
		__u64 captured = 0;                                                              \
                                                                                                 \
		if (!rec) {                                                                      \
			count_drop(counters, len);                                               \
			return;                                                                  \
		}                                                                                \
		fill_data(&rec->event, call, conn_id, offset, len);                              \
		if (budget <= (capacity) &&                                                      \
		    !bpf_probe_read_user(rec->data, budget, (void *)call->buf))                  \
			captured = budget;                                                       \
		count_truncation(counters, &rec->event, call->mode, len, captured);              \
		rec->event.captured_len = captured;                                              \
		bpf_ringbuf_submit(rec, wakeup_flags());                                         \
		counters->values[STAT_EVENTS_SUBMITTED]++;                                       \
	}

DEFINE_EMIT_RESERVED(emit_tiny, struct tiny_data_record, TINY_RECORD_CAPTURE)
DEFINE_EMIT_RESERVED(emit_small, struct small_data_record, SMALL_RECORD_CAPTURE)

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
		if (!bpf_probe_read_user(slot->data, budget, (void *)call->buf))
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
	if (bpf_ringbuf_output(&events, slot, sizeof(struct data_event) + captured, wakeup_flags()))
		count_drop(counters, len);
	else
		counters->values[STAT_EVENTS_SUBMITTED]++;
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
	if (call->mode != COPY_BUFFER)
		emit_large(call, counters, conn_id, offset, len, budget);
	else if (budget <= TINY_RECORD_CAPTURE)
		emit_tiny(call, counters, conn_id, offset, len, budget);
	else if (budget <= SMALL_RECORD_CAPTURE)
		emit_small(call, counters, conn_id, offset, len, budget);
	else
		emit_large(call, counters, conn_id, offset, len, budget);
}

/* The TLS library call in flight on this thread, or NULL. */
static __always_inline struct ssl_call *active_ssl_call(void)
{
	struct ssl_call *ssl;

	if (!tls_probes || !ssl_calls_in_flight)
		return NULL;
	ssl = bpf_task_storage_get(&ssl_calls, bpf_get_current_task_btf(), 0, 0);
	return ssl && ssl->active ? ssl : NULL;
}

/* A socket syscall inside that TLS library call: the call's connection is this fd. */
static __always_inline void join_ssl_call(struct ssl_call *ssl, __u32 tgid, __u32 fd)
{
	struct ssl_key key = { .tgid = tgid, .ssl = ssl->ssl };

	if (ssl->fd_known && ssl->fd == fd)
		return;
	ssl->fd = fd;
	ssl->fd_known = 1;
	bpf_map_update_elem(&ssl_fds, &key, &fd, BPF_ANY);
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
	emit_data(call, counters, conn->conn_id, offset, len);
}

/* A data syscall on fd returned ret: copy what moved if fd is a watched connection. */
static __always_inline void on_data(struct stat_counters *counters, __u32 tgid, __s64 ret, __u32 fd,
				    struct data_call *call)
{
	struct ssl_call *ssl = active_ssl_call();
	struct conn_state *conn;

	/* A failed read inside SSL_read still tells which socket the SSL object uses. */
	if (ret <= 0 && !ssl)
		return;
	conn = watched_conn(tgid, fd, ORIGIN_EXISTING);
	if (!conn)
		return;
	if (ssl) {
		join_ssl_call(ssl, tgid, fd);
		conn->tls = 1;
	}
	if (ret > 0)
		copy_data(counters, conn, ret, call);
}

/* sendmsg/recvmsg: the iovecs of the user's msghdr. */
static __always_inline void on_msg(struct stat_counters *counters, __u32 tgid, __s64 ret, __u32 fd,
				   __u64 msghdr, __u16 syscall, __u8 direction)
{
	struct user_msghdr msg;
	struct data_call call = { .syscall = syscall, .direction = direction, .mode = COPY_IOVEC };

	if (bpf_probe_read_user(&msg, sizeof(msg), (void *)msghdr))
		return;
	call.buf = msg.msg_iov;
	call.iovcnt = msg.msg_iovlen;
	on_data(counters, tgid, ret, fd, &call);
}

/* close(fd): the connection (or the cached verdict) that fd held is over. */
static __always_inline void on_close(__u32 tgid, __u32 fd)
{
	__u64 key = ((__u64)tgid << 32) | fd;
	struct conn_state *conn;
	struct file *reopened;

	bpf_map_delete_elem(&unwatched_fds, &key);
	conn = bpf_map_lookup_elem(&conns, &key);
	if (!conn)
		return;
	/* Another thread already reused the fd and its new connection took the slot. */
	reopened = file_of_fd(fd);
	if (reopened && conn->file == (__u64)reopened)
		return;
	emit_close(conn);
	bpf_map_delete_elem(&conns, &key);
}

/*
 * Every syscall return on the machine passes here: anything that is not a
 * socket syscall leaves after one compare chain. The syscall's arguments are
 * the user registers saved at entry (the return value is elsewhere).
 */
SEC("tp_btf/sys_exit")
int BPF_PROG(syscall_exit, struct pt_regs___kernel *regs, long ret)
{
	long nr = SYSCALL_NR(regs);
	__u64 pid_tgid;
	struct stat_counters *counters;
	struct conn_state *conn;
	struct data_call call = {};
	__u32 tgid, zero = 0, fd;

	switch (nr) {
	case NR_READ:
	case NR_WRITE:
	case NR_CLOSE:
	case NR_READV:
	case NR_WRITEV:
	case NR_SENDFILE:
	case NR_CONNECT:
	case NR_ACCEPT:
	case NR_SENDTO:
	case NR_RECVFROM:
	case NR_SENDMSG:
	case NR_RECVMSG:
	case NR_SPLICE:
	case NR_ACCEPT4:
		break;
	default:
		return 0;
	}
#if defined(__TARGET_ARCH_x86)
	if (bpf_get_current_task_btf()->thread_info.status & TS_COMPAT)
		return 0;
#endif
	counters = bpf_map_lookup_elem(&stats, &zero);
	if (!counters)
		return 0;
	counters->values[STAT_HOOKED_SYSCALLS]++;
	pid_tgid = bpf_get_current_pid_tgid();
	tgid = pid_tgid >> 32;
	if (filter_tgid && filter_tgid != tgid)
		return 0;
	fd = SYSCALL_ARG1(regs);

	switch (nr) {
	case NR_READ:
	case NR_WRITE:
	case NR_SENDTO:
	case NR_RECVFROM:
		/* A peek leaves the bytes in the socket: the next read reports them. */
		if (nr == NR_RECVFROM && (SYSCALL_ARG4(regs) & MSG_PEEK)) {
			counters->values[STAT_PEEKS_IGNORED]++;
			return 0;
		}
		call.buf = SYSCALL_ARG2(regs);
		call.mode = COPY_BUFFER;
		call.direction = nr == NR_READ || nr == NR_RECVFROM ? DIRECTION_RECV : DIRECTION_SEND;
		call.syscall = nr == NR_READ	? SYSCALL_READ
			       : nr == NR_WRITE ? SYSCALL_WRITE
			       : nr == NR_SENDTO ? SYSCALL_SENDTO
						 : SYSCALL_RECVFROM;
		on_data(counters, tgid, ret, fd, &call);
		return 0;
	case NR_READV:
	case NR_WRITEV:
		call.buf = SYSCALL_ARG2(regs);
		call.iovcnt = SYSCALL_ARG3(regs);
		call.mode = COPY_IOVEC;
		call.direction = nr == NR_READV ? DIRECTION_RECV : DIRECTION_SEND;
		call.syscall = nr == NR_READV ? SYSCALL_READV : SYSCALL_WRITEV;
		on_data(counters, tgid, ret, fd, &call);
		return 0;
	case NR_SENDMSG:
		on_msg(counters, tgid, ret, fd, SYSCALL_ARG2(regs), SYSCALL_SENDMSG, DIRECTION_SEND);
		return 0;
	case NR_RECVMSG:
		if (SYSCALL_ARG3(regs) & MSG_PEEK) {
			counters->values[STAT_PEEKS_IGNORED]++;
			return 0;
		}
		on_msg(counters, tgid, ret, fd, SYSCALL_ARG2(regs), SYSCALL_RECVMSG, DIRECTION_RECV);
		return 0;
	case NR_SENDFILE:
		call.mode = COPY_NONE;
		call.syscall = SYSCALL_SENDFILE;
		call.direction = DIRECTION_SEND;
		on_data(counters, tgid, ret, fd, &call);
		return 0;
	case NR_SPLICE:
		if (ret <= 0)
			return 0;
		call.mode = COPY_NONE;
		call.syscall = SYSCALL_SPLICE;
		/* splice(fd_in, off_in, fd_out, ...): into or out of a watched socket. */
		conn = watched_conn(tgid, SYSCALL_ARG3(regs), ORIGIN_EXISTING);
		if (conn) {
			call.direction = DIRECTION_SEND;
			copy_data(counters, conn, ret, &call);
		} else {
			call.direction = DIRECTION_RECV;
			on_data(counters, tgid, ret, fd, &call);
		}
		return 0;
	case NR_CONNECT:
		if (ret == 0 || ret == -EINPROGRESS)
			watched_conn(tgid, fd, ORIGIN_CONNECT);
		return 0;
	case NR_ACCEPT:
	case NR_ACCEPT4:
		if (ret >= 0)
			watched_conn(tgid, ret, ORIGIN_ACCEPT);
		return 0;
	case NR_CLOSE:
		on_close(tgid, fd);
		return 0;
	}
	return 0;
}

/* TLS library calls (uprobes on SSL_read/SSL_write(_ex), SSL_do_handshake, SSL_set_fd). */

static __always_inline int ssl_enter(__u64 ssl, __u64 buf, __u64 count_ptr, __u8 op)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct ssl_call *slot;

	if (filter_tgid && filter_tgid != tgid)
		return 0;
	slot = bpf_task_storage_get(&ssl_calls, bpf_get_current_task_btf(), 0,
				    BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!slot) {
		stat_add(STAT_CALL_TABLE_FULL, 1);
		return 0;
	}
	slot->ssl = ssl;
	slot->buf = buf;
	slot->count_ptr = count_ptr;
	if (!slot->active)
		__sync_fetch_and_add(&ssl_calls_in_flight, 1);
	slot->fd = 0;
	slot->op = op;
	slot->fd_known = 0;
	slot->active = 1;
	return 0;
}

SEC("uprobe")
int ssl_write_enter(struct pt_regs *ctx)
{
	return ssl_enter(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0, SSL_OP_WRITE);
}

SEC("uprobe")
int ssl_read_enter(struct pt_regs *ctx)
{
	return ssl_enter(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), 0, SSL_OP_READ);
}

SEC("uprobe")
int ssl_write_ex_enter(struct pt_regs *ctx)
{
	return ssl_enter(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx), SSL_OP_WRITE_EX);
}

SEC("uprobe")
int ssl_read_ex_enter(struct pt_regs *ctx)
{
	return ssl_enter(PT_REGS_PARM1(ctx), PT_REGS_PARM2(ctx), PT_REGS_PARM4(ctx), SSL_OP_READ_EX);
}

SEC("uprobe")
int ssl_handshake_enter(struct pt_regs *ctx)
{
	return ssl_enter(PT_REGS_PARM1(ctx), 0, 0, SSL_OP_HANDSHAKE);
}

SEC("uprobe")
int ssl_set_fd_enter(struct pt_regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct ssl_key key = { .tgid = tgid, .ssl = PT_REGS_PARM1(ctx) };
	__u32 fd = PT_REGS_PARM2(ctx);

	if (filter_tgid && filter_tgid != tgid)
		return 0;
	bpf_map_update_elem(&ssl_fds, &key, &fd, BPF_ANY);
	return 0;
}

/*
 * len bytes of plaintext at buf, moved by a TLS library call on socket fd:
 * one record in the connection's TLS stream (read_id/write_id name the call).
 */
static __always_inline void emit_tls_plaintext(__u32 tgid, __u32 fd, __u64 buf, __u64 len, int write,
					       __u16 read_id, __u16 write_id)
{
	struct conn_state *conn = watched_conn(tgid, fd, ORIGIN_EXISTING);
	__u32 zero = 0;
	struct stat_counters *counters = bpf_map_lookup_elem(&stats, &zero);
	__u64 offset;

	if (!conn || !counters)
		return;
	conn->tls = 1;
	counters->values[STAT_TLS_CALLS_TRACED]++;
	struct data_call data = {
		.buf = buf,
		.syscall = write ? write_id : read_id,
		.direction = write ? DIRECTION_SEND : DIRECTION_RECV,
		.mode = COPY_BUFFER,
		.data_flags = DATA_FLAG_TLS,
	};
	offset = write ? __sync_fetch_and_add(&conn->tls_sent, len)
		       : __sync_fetch_and_add(&conn->tls_recvd, len);
	emit_data(&data, counters, conn->conn_id, offset, len);
}

/* One return probe for every hooked call: the slot says which call returns. */
SEC("uretprobe")
int ssl_ret(struct pt_regs *ctx)
{
	struct ssl_call *slot = bpf_task_storage_get(&ssl_calls, bpf_get_current_task_btf(), 0, 0);
	__s32 ret = (__s32)PT_REGS_RC(ctx);
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct ssl_call call;
	__u64 len = 0;
	int write;

	if (!slot || !slot->active)
		return 0;
	call = *slot;
	slot->active = 0;
	__sync_fetch_and_add(&ssl_calls_in_flight, -1);
	if (call.op == SSL_OP_HANDSHAKE)
		return 0;
	if (call.op == SSL_OP_READ_EX || call.op == SSL_OP_WRITE_EX) {
		if (ret != 1 || bpf_probe_read_user(&len, sizeof(len), (void *)call.count_ptr))
			return 0;
	} else {
		if (ret <= 0)
			return 0;
		len = ret;
	}
	if (!len || len > 0x7fffffff)
		return 0;
	if (!call.fd_known) {
		struct ssl_key key = { .tgid = tgid, .ssl = call.ssl };
		__u32 *fd = bpf_map_lookup_elem(&ssl_fds, &key);

		if (!fd) {
			stat_add(STAT_TLS_FD_UNKNOWN, 1);
			return 0;
		}
		call.fd = *fd;
	}
	write = call.op == SSL_OP_WRITE || call.op == SSL_OP_WRITE_EX;
	emit_tls_plaintext(tgid, call.fd, call.buf, len, write, SYSCALL_SSL_READ, SYSCALL_SSL_WRITE);
	return 0;
}

#include "go_tls.bpf.h"

SEC("tracepoint/sched/sched_process_exit")
int process_exit(void *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	struct process_exit_event event = {};

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
_Static_assert(sizeof(struct conn_open_event) == 96, "conn_open_event layout");
_Static_assert(sizeof(struct conn_close_event) == 48, "conn_close_event layout");
_Static_assert(STAT_COUNT == 16, "stat ids");
