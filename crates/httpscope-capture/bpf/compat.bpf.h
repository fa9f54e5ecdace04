/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the two builds of this one source differ in. The full object uses
 * bpf_loop, task storage, BTF task pointers and atomic fetch-and-add; the
 * baseline object (HTTPSCOPE_BASELINE, for kernels the loader finds without
 * them) uses none of these: per-thread state lives in a hash keyed by
 * thread, the task is read through bpf_get_current_task, connection ids are
 * drawn per CPU, and there is no capture budget (calls are copied whole, up
 * to capture_bytes). Which object loads is decided by probing the kernel,
 * never by its version.
 *
 * Needs kernel.bpf.h (and what it needs) included before it.
 */
#ifndef HTTPSCOPE_COMPAT_BPF_H
#define HTTPSCOPE_COMPAT_BPF_H

#ifdef HTTPSCOPE_BASELINE
#define HAVE_BPF_LOOP 0
#else
#define HAVE_BPF_LOOP 1
#endif

/* Attach cookies reach uprobes (set by the loader; without them no probe that needs one is attached). */
const volatile __u8 attach_cookies = 0;
/* Baseline: possible CPUs, the stride of connection ids drawn per CPU. */
const volatile __u32 possible_cpus = 1;

/* The attach cookie of the running uprobe, or 0 where the kernel has none. */
static __always_inline __u64 attach_cookie(void *ctx)
{
	return attach_cookies ? bpf_get_attach_cookie(ctx) : 0;
}

/*
 * v stays v if it is at most max, else becomes 0, in one register: the
 * verifier sees the bound on the very register the next use takes, wherever
 * the compiler kept v before (verifiers before Linux 6.3 forget the bound of
 * a value checked after it was spilled to the stack).
 */
#define CLAMP_IN_REGISTER(v, max) \
	asm volatile("if %[val] <= %[bound] goto +1; %[val] = 0" : [val] "+r"(v) : [bound] "i"(max))

/*
 * bpf_probe_read_user(dst + at, n, src) with at <= at_max and n <= n_max,
 * both bounds held in the registers the call takes. Out of bounds reads
 * nothing (-1).
 */
static __always_inline long read_user_at(__u8 *dst, __u64 at, __u64 at_max, __u64 n, __u64 n_max,
					 __u64 src)
{
	if (at > at_max || n > n_max)
		return -1;
	CLAMP_IN_REGISTER(at, at_max);
	CLAMP_IN_REGISTER(n, n_max);
	return bpf_probe_read_user(dst + at, n, (void *)src);
}

#ifndef HTTPSCOPE_BASELINE

/* Per-thread state, freed by the kernel with the thread. */
#define DEFINE_THREAD_STORAGE(name, value_type)          \
	struct {                                         \
		__uint(type, BPF_MAP_TYPE_TASK_STORAGE); \
		__uint(map_flags, BPF_F_NO_PREALLOC);    \
		__type(key, int);                        \
		__type(value, value_type);               \
	} name SEC(".maps")

/* This thread's slot in a DEFINE_THREAD_STORAGE map, created (zeroed) if create. */
#define THREAD_SLOT(map, value_type, create)                                     \
	((value_type *)bpf_task_storage_get(&map, bpf_get_current_task_btf(), 0, \
					    (create) ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0))

static __always_inline __u32 current_task_flags(void)
{
	return bpf_get_current_task_btf()->flags;
}

#if defined(__TARGET_ARCH_x86)
static __always_inline __u32 current_task_status(void)
{
	return bpf_get_current_task_btf()->thread_info.status;
}
#endif

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

/* *ptr += v, returning the value before. */
#define FETCH_ADD(ptr, v) __sync_fetch_and_add(ptr, v)

#else /* HTTPSCOPE_BASELINE */

/* Threads whose state is kept at once; a thread's entry goes when it exits (thread_exit). */
#define THREAD_SLOTS 16384

#define DEFINE_THREAD_STORAGE(name, value_type)      \
	struct {                                     \
		__uint(type, BPF_MAP_TYPE_LRU_HASH); \
		__uint(max_entries, THREAD_SLOTS);   \
		__type(key, __u64);                  \
		__type(value, value_type);           \
	} name SEC(".maps")

#define THREAD_SLOT(map, value_type, create)                                          \
	({                                                                            \
		__u64 thread_key_ = bpf_get_current_pid_tgid();                       \
		value_type *slot_ = bpf_map_lookup_elem(&map, &thread_key_);          \
		if (!slot_ && (create)) {                                             \
			value_type zero_ = {};                                        \
			bpf_map_update_elem(&map, &thread_key_, &zero_, BPF_NOEXIST); \
			slot_ = bpf_map_lookup_elem(&map, &thread_key_);              \
		}                                                                     \
		slot_;                                                                \
	})

static __always_inline __u32 current_task_flags(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, flags);
}

#if defined(__TARGET_ARCH_x86)
static __always_inline __u32 current_task_status(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	return BPF_CORE_READ(task, thread_info.status);
}
#endif

/* The same walk as the full object's, one probe read per hop. */
static __always_inline struct file *file_of_fd(__u32 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *file = NULL;

	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	return file;
}

/*
 * Without fetching atomics the value before is read first: only calls that
 * race on one connection's direction can see the same offset, and the total
 * stays exact.
 */
#define FETCH_ADD(ptr, v)                     \
	({                                    \
		__u64 before_ = *(ptr);       \
		__sync_fetch_and_add(ptr, v); \
		before_;                      \
	})

#endif /* HTTPSCOPE_BASELINE */

#endif /* HTTPSCOPE_COMPAT_BPF_H */
