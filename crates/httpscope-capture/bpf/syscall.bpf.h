/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The syscall backend: one BTF tracepoint on the raw sys_exit event sees
 * every syscall return, picks the socket syscalls by number and reads their
 * arguments from the saved user registers, so nothing has to be parked
 * between entry and exit. A connection is keyed by (tgid, fd, struct file):
 * fd reuse, dup2 and pid reuse start a new connection id instead of joining
 * two.
 *
 * Needs tls.bpf.h, verdict.bpf.h and budget_walk.bpf.h included before it.
 */
#ifndef HTTPSCOPE_SYSCALL_BPF_H
#define HTTPSCOPE_SYSCALL_BPF_H

struct fd_file_key {
	__u32 tgid;
	__u32 fd;
	/* The struct file the fd held when the connection was first seen. */
	__u64 file;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fd_file_key);
	__type(value, struct conn_state);
} conns SEC(".maps");

/*
 * (tgid, fd) -> the file of the newest watched connection on that fd. A close
 * is seen after its fd was released, when another thread may already have
 * reused it: this is how the close finds the connection it ends. Entries are
 * replaced, never deleted, since a delete by (tgid, fd) could remove the
 * entry of the connection that just took the fd.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} fd_files SEC(".maps");

/*
 * A new connection's state is built here, not on the stack: the syscall
 * program shares its 512 bytes of stack with the capture budget's walk. An
 * ended connection's last state is copied here too.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct conn_state);
} fresh_conns SEC(".maps");

/* (tgid, fd) -> the socket found not to be watched: skips the socket walk. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} unwatched_fds SEC(".maps");

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

/*
 * Ends the connection under key: its close record, or its silent end. The
 * delete is the claim: a close and the reuse of its fd can both end the
 * connection at once on two CPUs, and only the one whose delete succeeds
 * reports it. The state is copied first, as a deleted entry is reused at once.
 */
static __always_inline void end_conn(struct fd_file_key *key)
{
	struct conn_state *conn = bpf_map_lookup_elem(&conns, key);
	struct conn_state *last;
	__u32 zero = 0;

	last = bpf_map_lookup_elem(&fresh_conns, &zero);
	if (!conn || !last)
		return;
	*last = *conn;
	if (bpf_map_delete_elem(&conns, key))
		return;
	if (conn_reported(last))
		emit_close(last);
	count_silent_end(last);
	forget_tls_budget(last);
}

/*
 * A new watched connection on key's fd (fd_key: the same (tgid, fd), as
 * fd_files keys it). The fd's previous connection is over: its file is no
 * longer there.
 */
static __always_inline struct conn_state *new_conn(struct fd_file_key *key, __u64 fd_key,
						   struct sock *sk, __u16 origin)
{
	struct fd_file_key previous = *key;
	struct conn_state *conn, *fresh;
	__u64 *last_file, conn_id;
	__u32 zero = 0;
	__u8 one = 1;

	last_file = bpf_map_lookup_elem(&fd_files, &fd_key);
	if (last_file) {
		previous.file = *last_file;
		if (previous.file != key->file)
			end_conn(&previous);
	}
	conn_id = new_conn_id();
	fresh = bpf_map_lookup_elem(&fresh_conns, &zero);
	if (!conn_id || !fresh)
		return NULL;
	__builtin_memset(fresh, 0, sizeof(*fresh));
	fresh->conn_id = conn_id;
	fresh->file = key->file;
	fresh->origin = origin;
	/* Its open record goes out below, once it is in the table: another thread's
	 * call must not send it too meanwhile. */
	fresh->open_pending = !conn_reported(fresh);
	if (bpf_map_update_elem(&conns, key, fresh, BPF_NOEXIST)) {
		/* Another thread's call on this socket saw it first: share its state. */
		conn = bpf_map_lookup_elem(&conns, key);
		if (!conn)
			stat_add(STAT_CONN_TABLE_FULL, 1);
		return conn;
	}
	conn = bpf_map_lookup_elem(&conns, key);
	if (!conn)
		return NULL;
	bpf_map_update_elem(&fd_files, &fd_key, &key->file, BPF_ANY);
	stat_add(STAT_CONNS_WATCHED, 1);
	bpf_map_update_elem(&traced_processes, &key->tgid, &one, BPF_ANY);
	if (conn_reported(conn) && emit_open(conn, key->fd, sk))
		conn->open_pending = 1;
	return conn;
}

/*
 * The connection state of a watched socket fd, created on first sight.
 * Returns NULL for fds that are not watched TCP sockets.
 */
static __always_inline struct conn_state *watched_conn(__u32 tgid, __u32 fd, __u16 origin)
{
	struct fd_file_key key = { .tgid = tgid, .fd = fd };
	__u64 fd_key = ((__u64)tgid << 32) | fd;
	struct file *file = file_of_fd(fd);
	struct conn_state *conn;
	struct sock *sk;
	int watched;

	if (!file)
		return NULL;
	key.file = (__u64)file;
	conn = bpf_map_lookup_elem(&conns, &key);
	if (conn) {
		if (conn->open_pending && conn_reported(conn)) {
			sk = tcp_sock_of_file(file);
			if (sk && !emit_open(conn, fd, sk))
				conn->open_pending = 0;
		}
		return conn;
	}
	/* accept and connect always classify: their sockets are new. */
	if (origin == ORIGIN_EXISTING) {
		__u64 *unwatched;

		/* Files, pipes and the like: one inode read, no cache entry. */
		if ((BPF_CORE_READ(file, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
			return NULL;
		unwatched = bpf_map_lookup_elem(&unwatched_fds, &fd_key);

		if (unwatched && *unwatched == key.file)
			return NULL;
	}

	sk = tcp_sock_of_file(file);
	watched = sk && port_watched(BPF_CORE_READ(sk, __sk_common.skc_num),
				     bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)));
	if (!watched || !process_selected(tgid)) {
		if (watched)
			stat_add(STAT_CONNS_FILTERED, 1);
		bpf_map_update_elem(&unwatched_fds, &fd_key, &key.file, BPF_ANY);
		return NULL;
	}
	return new_conn(&key, fd_key, sk, origin);
}

/* Admits (or not) a call's bytes under --all-ports; a connection just judged
 * HTTP gets its open record now. */
static __always_inline int admit_call(struct conn_state *conn, __u32 fd, struct data_call *call,
				      __s64 ret, int in_tls_call)
{
	struct file *file;
	struct sock *sk;

	if (!call_admitted(conn, call, ret, in_tls_call))
		return 0;
	if (conn->open_pending && all_ports) {
		file = file_of_fd(fd);
		sk = file ? tcp_sock_of_file(file) : NULL;
		if (sk && !emit_open(conn, fd, sk))
			conn->open_pending = 0;
	}
	return 1;
}

/* A data syscall on fd returned ret: copy what moved if fd is a watched connection. */
static __always_inline void on_data(struct stat_counters *counters, __u32 tgid, __s64 ret, __u32 fd,
				    struct data_call *call)
{
	struct ssl_call *ssl = active_ssl_call();
	struct conn_state *conn;
	int node = 0;

	/* A failed read inside SSL_read still tells which socket the SSL object uses. */
	if (ret <= 0 && !ssl)
		return;
	conn = watched_conn(tgid, fd, ORIGIN_EXISTING);
	if (!conn || ladder_stops_at(2))
		return;
	if (ssl) {
		join_ssl_call(ssl, tgid, fd);
		conn->tls = 1;
	}
	/* The ciphertext a Node TLSWrap reads, or a Node client's first flight (node_tls.bpf.h). */
	if (ret > 0 &&
	    (call->direction == DIRECTION_RECV ? node_tls_receive(conn->conn_id, fd, call, ret)
					       : node_tls_first_send(conn, call, ret))) {
		conn->tls = 1;
		node = 1;
	}
	if (ret > 0 && admit_call(conn, fd, call, ret, ssl != NULL || node))
		copy_data(counters, conn, ret, call);
}

/* close(fd): the connection (or the cached verdict) that fd held is over. */
static __always_inline void on_close(__u32 tgid, __u32 fd)
{
	struct fd_file_key key = { .tgid = tgid, .fd = fd };
	__u64 fd_key = ((__u64)tgid << 32) | fd;
	__u64 *last_file;

	bpf_map_delete_elem(&unwatched_fds, &fd_key);
	last_file = bpf_map_lookup_elem(&fd_files, &fd_key);
	if (!last_file)
		return;
	key.file = *last_file;
	/* The fd holds that file: dup2 put it back, or another thread already
	 * reused the fd and the start of its new connection ended this one. */
	if (key.file == (__u64)file_of_fd(fd))
		return;
	end_conn(&key);
}

/*
 * --pid: another process's new connection on a watched port is counted as
 * filtered; its other syscalls are not looked at.
 */
static __always_inline void count_filtered_open(long nr, long ret, __u32 fd)
{
	struct file *file;
	struct sock *sk;

	if ((nr == NR_ACCEPT || nr == NR_ACCEPT4) && ret >= 0)
		fd = ret;
	else if (nr != NR_CONNECT || (ret != 0 && ret != -EINPROGRESS))
		return;
	file = file_of_fd(fd);
	sk = file ? tcp_sock_of_file(file) : NULL;
	if (!sk)
		return;
	if (port_watched(BPF_CORE_READ(sk, __sk_common.skc_num),
			 bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport))))
		stat_add(STAT_CONNS_FILTERED, 1);
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

	if (ladder_stops_at(1))
		return 0;
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
	if (current_task_status() & TS_COMPAT)
		return 0;
#endif
	counters = bpf_map_lookup_elem(&stats, &zero);
	if (!counters)
		return 0;
	counters->values[STAT_HOOKED_SYSCALLS]++;
	pid_tgid = bpf_get_current_pid_tgid();
	tgid = pid_tgid >> 32;
	fd = SYSCALL_ARG1(regs);
	if (filter_tgid && filter_tgid != tgid) {
		count_filtered_open(nr, ret, fd);
		return 0;
	}

	switch (nr) {
	case NR_READ:
	case NR_WRITE:
	case NR_SENDTO:
	case NR_RECVFROM:
	case NR_READV:
	case NR_WRITEV:
	case NR_SENDMSG:
	case NR_RECVMSG:
		/* A peek leaves the bytes in the socket: the next read reports them. */
		if ((nr == NR_RECVFROM && (SYSCALL_ARG4(regs) & MSG_PEEK)) ||
		    (nr == NR_RECVMSG && (SYSCALL_ARG3(regs) & MSG_PEEK))) {
			counters->values[STAT_PEEKS_IGNORED]++;
			return 0;
		}
		if (user_buffer_of_syscall(nr, regs, &call))
			on_data(counters, tgid, ret, fd, &call);
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
			if (admit_call(conn, SYSCALL_ARG3(regs), &call, ret, 0))
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

/* This backend: len bytes of a returned call's plaintext, on its fd's connection. */
static __always_inline void ssl_emit_fd(struct ssl_call *in, __u64 len)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct stat_counters *counters;
	struct conn_state *conn;
	struct ssl_call call = *in;
	__u32 zero = 0;
	int node = 0;

	if (!call.fd_known) {
		struct ssl_key key = { .tgid = tgid, .ssl = call.ssl };
		struct ssl_fd *bound = bpf_map_lookup_elem(&ssl_fds, &key);

		if (!bound) {
			stat_add(STAT_TLS_FD_UNKNOWN, 1);
			return;
		}
		call.fd = bound->fd;
		node = bound->node;
	}
	conn = watched_conn(tgid, call.fd, ORIGIN_EXISTING);
	counters = bpf_map_lookup_elem(&stats, &zero);
	if (!conn || !counters)
		return;
	conn->tls = 1;
	/* The hooks read this connection's plaintext: it is kept (and reported). */
	if (all_ports && !admit_call(conn, call.fd, NULL, 0, 1))
		return;
	emit_tls_data(counters, &call, conn->conn_id, conn->origin, &conn->tls_sent,
		      &conn->tls_recvd, len, node);
}

/* This backend's TLS return probe: the call's connection is its fd's. */
SEC("uretprobe")
int ssl_ret(struct pt_regs *ctx)
{
	struct ssl_call call;
	__u64 len;

	if (ssl_call_returned(ctx, &call, &len))
		ssl_emit_fd(&call, len);
	return 0;
}

#endif /* HTTPSCOPE_SYSCALL_BPF_H */
