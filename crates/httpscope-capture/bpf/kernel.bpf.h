/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel constants and the few kernel types the programs read (CO-RE
 * relocates each field by name), plus where each architecture keeps a
 * syscall's number and arguments in the registers saved at entry.
 *
 * Needs the libbpf headers and httpscope.h included before it.
 */
#ifndef HTTPSCOPE_KERNEL_BPF_H
#define HTTPSCOPE_KERNEL_BPF_H

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define IPPROTO_TCP 6
#define S_IFMT 0170000
#define S_IFSOCK 0140000
#define MSG_PEEK 2
#define MSG_ERRQUEUE 0x2000
#define EINPROGRESS 115
#define PF_IO_WORKER 0x00000010
#define PF_KTHREAD 0x00200000
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define NR_IO_URING_ENTER 426

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
#define NR_RECVMMSG 299
#define NR_SENDMMSG 307

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
#define NR_RECVMMSG 243
#define NR_SENDMMSG 269
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
	unsigned int flags;
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

struct socket;

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;
	struct socket *sk_socket;
} __attribute__((preserve_access_index));

/* The byte counters that tell whether a TCP stream is still at its start. */
struct tcp_sock {
	__u64 bytes_received;
	__u64 bytes_sent;
	__u32 write_seq;
	__u32 snd_una;
} __attribute__((preserve_access_index));

struct socket {
	short type;
	struct file *file;
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

#endif /* HTTPSCOPE_KERNEL_BPF_H */
