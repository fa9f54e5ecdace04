/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every structure and id shared between the BPF programs and userspace.
 *
 * Keep in sync with crates/httpscope-core/src/event/abi.rs, which mirrors
 * these layouts and asserts their sizes and offsets at compile time.
 * Ids are explicit and stable: recorded event files depend on them.
 */
#ifndef HTTPSCOPE_H
#define HTTPSCOPE_H

#define HTTPSCOPE_MAX_PORTS 16
/* Largest number of bytes one syscall may copy; a power of two. */
#define HTTPSCOPE_MAX_CAPTURE 32768
#define HTTPSCOPE_COMM_LEN 16
#define HTTPSCOPE_ADDR_LEN 16
/* iovecs copied per readv/writev/sendmsg/recvmsg; later ones are counted, not copied. */
#define HTTPSCOPE_MAX_IOVECS 64

enum httpscope_event_kind {
	EVENT_KIND_DATA = 1,
	EVENT_KIND_CONN_OPEN = 2,
	EVENT_KIND_CONN_CLOSE = 3,
	EVENT_KIND_PROCESS_EXIT = 4,
};

enum httpscope_direction {
	DIRECTION_SEND = 0,
	DIRECTION_RECV = 1,
};

enum httpscope_syscall {
	SYSCALL_READ = 1,
	SYSCALL_WRITE = 2,
	SYSCALL_READV = 3,
	SYSCALL_WRITEV = 4,
	SYSCALL_SENDTO = 5,
	SYSCALL_RECVFROM = 6,
	SYSCALL_SENDMSG = 7,
	SYSCALL_RECVMSG = 8,
	SYSCALL_SENDFILE = 9,
	SYSCALL_SPLICE = 10,
	SYSCALL_SENDMMSG = 11,
	SYSCALL_RECVMMSG = 12,
	/* Plaintext from a TLS library's SSL_read(_ex) / SSL_write(_ex), not a syscall. */
	SYSCALL_SSL_READ = 13,
	SYSCALL_SSL_WRITE = 14,
	/* Socket backend: an io_uring request (no syscall registers: not copied). */
	SYSCALL_IO_URING = 15,
	/* Socket backend: a socket call from another path (not copied). */
	SYSCALL_OTHER = 16,
	/* Plaintext from Go's crypto/tls (*Conn).Read / (*Conn).Write. */
	SYSCALL_GO_TLS_READ = 17,
	SYSCALL_GO_TLS_WRITE = 18,
	/* Plaintext from GnuTLS's gnutls_record_recv / gnutls_record_send. */
	SYSCALL_GNUTLS_RECV = 19,
	SYSCALL_GNUTLS_SEND = 20,
	/* Plaintext from OpenSSL's SSL_read / SSL_write on an SSL object of Node's TLSWrap. */
	SYSCALL_NODE_SSL_READ = 21,
	SYSCALL_NODE_SSL_WRITE = 22,
	/* Plaintext from rustls: Reader::read (or BufRead::consume), Writer::write(_vectored). */
	SYSCALL_RUSTLS_READ = 23,
	SYSCALL_RUSTLS_WRITE = 24,
};

/* conn_open_event.fd when the socket backend could not tell the fd. */
#define HTTPSCOPE_FD_UNKNOWN 0xffffffffu

/*
 * Attach cookie of the Go crypto/tls entry probes (built by the loader's
 * golang/layout.rs): byte offsets of tls.Conn.conn, itab.fun[0],
 * net.TCPConn's fd and netFD's Sysfd, and in the high 32 bits where
 * net.(*TCPConn).Close lies relative to the probed instruction (signed).
 */
#define GO_COOKIE_TLS_CONN_CONN(c) ((c)&0xff)
#define GO_COOKIE_ITAB_FUN0(c) (((c) >> 8) & 0xff)
#define GO_COOKIE_TCP_CONN_FD(c) (((c) >> 16) & 0xff)
#define GO_COOKIE_NETFD_SYSFD(c) (((c) >> 24) & 0xff)
#define GO_COOKIE_CLOSE_DELTA(c) ((__s64)(__s32)((c) >> 32))

/*
 * Attach cookie of the probes on OpenSSL's read/write workers (built by the
 * loader's tls/openssl_workers.rs), 0 when unknown: bit 63 set when SSL_read's
 * (SSL_write's) call to the worker is known; bits 32..48 how many bytes that
 * wrapper pushed or reserved before the call; bits 0..32 the probed
 * instruction's address minus the call's return address (signed).
 */
#define OPENSSL_WORKER_COOKIE_CALLER_KNOWN(c) ((c) >> 63)
#define OPENSSL_WORKER_COOKIE_FRAME(c) (((c) >> 32) & 0xffff)
#define OPENSSL_WORKER_COOKIE_RETURN_DELTA(c) ((__s64)(__s32)(c))

/* How the kernel first saw a connection. */
enum httpscope_conn_origin {
	ORIGIN_ACCEPT = 1,
	ORIGIN_CONNECT = 2,
	/* Already open when capture started (or its accept/connect was missed). */
	ORIGIN_EXISTING = 3,
};

enum httpscope_data_flags {
	/* The bytes moved without passing through a user buffer (sendfile, splice). */
	DATA_FLAG_NOT_CAPTURED = 1,
	/* Fewer bytes were copied than the syscall moved (capture limit, iovec limit). */
	DATA_FLAG_TRUNCATED = 2,
	/* TLS plaintext (its own per-direction stream, apart from the syscall stream). */
	DATA_FLAG_TLS = 4,
	/*
	 * The bytes after captured_len were left out on purpose by the capture
	 * budget: the kernel framed them as HTTP body (an HTTP/1 body or chunk
	 * data, an HTTP/2 DATA payload) beyond the body limit.
	 */
	DATA_FLAG_ELIDED = 8,
};

/* Per-CPU counters, indexed by this enum; userspace sums the CPUs. */
enum httpscope_stat {
	STAT_EVENTS_SUBMITTED = 0,
	STAT_DATA_EVENTS_DROPPED = 1,
	STAT_DATA_BYTES_DROPPED = 2,
	STAT_CONTROL_EVENTS_DROPPED = 3,
	STAT_SYSCALLS_TRUNCATED = 4,
	STAT_BYTES_NOT_COPIED = 5,
	STAT_PEEKS_IGNORED = 6,
	STAT_CONN_TABLE_FULL = 7,
	STAT_CALL_TABLE_FULL = 8,
	/* Socket backend: the syscall's fd did not hold the socket; its bytes were not copied. */
	STAT_FD_LOOKUP_FAILED = 9,
	/* Connections reported: their open record went out (once per connection). */
	STAT_CONNS_OPENED = 10,
	STAT_SYSCALLS_TRACED = 11,
	/* Plaintext records from TLS library calls. */
	STAT_TLS_CALLS_TRACED = 12,
	/* Socket syscalls on a TLS connection whose ciphertext was not logged. */
	STAT_CIPHERTEXT_SUPPRESSED = 13,
	/* TLS library calls whose socket could not be determined. */
	STAT_TLS_FD_UNKNOWN = 14,
	/* Socket syscalls of the captured kinds, by any process (the cost base). */
	STAT_HOOKED_SYSCALLS = 15,
	/* Capture budget: calls (or their rests) copied as before because the framing was in doubt. */
	STAT_BUDGET_FALLBACKS = 16,
	/* Capture budget: body bytes counted, not copied (DATA_FLAG_ELIDED). */
	STAT_BYTES_ELIDED = 17,
	/*
	 * The connection accounting: every connection on a watched port that got
	 * its state ends up reported (STAT_CONNS_OPENED) or skipped by one of the
	 * reasons below, once; the rest were still open when capture stopped.
	 */
	STAT_CONNS_WATCHED = 18,
	/* Skipped: its process is not selected (--pid, --comm, --container). */
	STAT_CONNS_FILTERED = 19,
	/* Skipped: --all-ports judged it not HTTP. */
	STAT_CONNS_NOT_HTTP = 20,
	/* Skipped: it ended before its open record went out (no byte moved, still undecided, or the record dropped). */
	STAT_CONNS_SILENT = 21,
	/* A TLS library call entered inside another on the same thread: the outer call's plaintext is lost. */
	STAT_NESTED_TLS_CALLS = 22,
	STAT_COUNT = 23,
};

struct event_header {
	__u32 kind;
	__u32 tgid;
	__u32 tid;
	__u32 reserved;
	/* CLOCK_MONOTONIC nanoseconds when the syscall returned. */
	__u64 ts_ns;
	/* Unique per connection for the life of one profiler; 0 for process events. */
	__u64 conn_id;
};

/* Followed by captured_len bytes of payload. */
struct data_event {
	struct event_header header;
	/* Position of this syscall's first byte in the direction's stream. */
	__u64 stream_offset;
	/* Bytes the syscall really moved. */
	__u64 len;
	__u32 captured_len;
	__u16 syscall;
	__u8 direction;
	__u8 flags;
};

struct conn_open_event {
	struct event_header header;
	__u32 fd;
	__u16 family;
	__u16 origin;
	__u16 local_port;
	__u16 remote_port;
	__u32 reserved;
	/* Network byte order; IPv4 uses the first 4 bytes. */
	__u8 local_addr[HTTPSCOPE_ADDR_LEN];
	__u8 remote_addr[HTTPSCOPE_ADDR_LEN];
	/* The process (thread group leader) name. */
	char comm[HTTPSCOPE_COMM_LEN];
	/*
	 * The cgroup v2 id (the inode of its directory) of the task that opened
	 * (or first used) the connection. Appended: older event files end before it.
	 */
	__u64 cgroup_id;
};

struct conn_close_event {
	struct event_header header;
	__u64 sent_bytes;
	__u64 recv_bytes;
};

/* The whole process (thread group) exited: its connections are gone. */
struct process_exit_event {
	struct event_header header;
};

/*
 * A process may hold TLS code not hooked yet: it exec'd, or its dynamic
 * loader mapped libraries (dlopen). Its own small ring buffer, read by the
 * loader, never by the event pipeline.
 */
enum httpscope_binary_reason {
	BINARY_EXEC = 1,
	BINARY_LIBRARIES = 2,
};

struct binary_event {
	__u32 tgid;
	__u32 reason;
};

#endif /* HTTPSCOPE_H */
