/* The allocator's system calls: mappings, purging, residency, the lock's
 * slow path, the clock, randomness (huge.c's mremap is the one exception:
 * it is the huge-block policy itself). Every function here is safe before
 * libc is initialised (raw syscalls through libc's thin wrappers, no
 * allocation, errno saved where a caller could observe it). */
#include "allocator/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

size_t sm_os_page_size = 4096;

sm_os_thp_t sm_os_thp = SM_OS_THP_NONE;
size_t sm_os_thp_calls; /* statistics, relaxed atomics */

/* The start of a small file of the kernel's (one read, NUL-terminated):
 * its length, or 0 if it cannot be read. errno is kept. Raw system calls:
 * open, read and close are cancellation points (a thread cancelled in one
 * would unwind out of an arena's lock) and another preloaded library may
 * wrap them and allocate. */
static size_t read_small(const char *path, char *buf, size_t cap) {
  int saved = errno;
  long fd = syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
  long n = fd >= 0 ? syscall(SYS_read, fd, buf, cap - 1) : -1;
  if (fd >= 0) syscall(SYS_close, fd);
  errno = saved;
  if (n <= 0) return 0;
  buf[n] = '\0';
  return (size_t)n;
}

/* What the kernel does with anonymous memory (the bracketed word of
 * /sys/kernel/mm/transparent_hugepage/enabled): huge pages for every
 * mapping, only for those that ask (madvise), or none. A file that cannot
 * be read (no /sys in a container or a chroot) leaves it unknown. */
static sm_os_thp_t thp_mode(void) {
  /* Read at every start-up (SM_RUNTIME_DATA). */
  SM_RUNTIME_DATA static const char path[] = "/sys/kernel/mm/transparent_hugepage/enabled";
  SM_RUNTIME_DATA static const struct {
    char word[12];
    sm_os_thp_t mode;
  } modes[] = {{"[always]", SM_OS_THP_ALWAYS}, {"[madvise]", SM_OS_THP_MADVISE}};
  char buf[128];
  size_t n = read_small(path, buf, sizeof buf);
  if (n == 0) return SM_OS_THP_UNKNOWN;
  for (unsigned m = 0; m < sizeof modes / sizeof modes[0]; m++) {
    const char *w = modes[m].word;
    size_t len = __builtin_strlen(w);
    for (size_t i = 0; i + len <= n; i++)
      if (__builtin_memcmp(buf + i, w, len) == 0) return modes[m].mode;
  }
  return SM_OS_THP_NONE;
}

/* Whether a virtio balloon under driver_dir (the sysfs directory of the
 * virtio_balloon driver, which lists its devices as virtioN) reports free
 * pages to the host: feature bit 5 (VIRTIO_BALLOON_F_REPORTING) of some
 * device's `features`, a string of '0' and '1' indexed by bit. Such a host
 * takes back memory the guest kernel has held free for a couple of
 * seconds, and on the machine this was measured on (a virtual machine)
 * a huge page faulted on memory not lately used as one cost 17-30 times a
 * warm one and 4.5 times the 512 small pages it replaces (docs/allocator.md,
 * "Transparent huge pages"). False when the directory cannot be read. The
 * listing is read with the raw getdents64 call (opendir allocates). */
SM_RUNTIME bool sm_os_free_page_reporting(const char *driver_dir) {
  int saved = errno;
  long fd = syscall(SYS_openat, AT_FDCWD, driver_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    errno = saved;
    return false;
  }
  bool found = false;
  char ents[2048] __attribute__((aligned(8)));
  long n;
  while (!found && (n = syscall(SYS_getdents64, fd, ents, sizeof ents)) > 0) {
    for (long off = 0; off < n && !found;) {
      /* struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name */
      unsigned short reclen;
      __builtin_memcpy(&reclen, ents + off + 16, sizeof reclen);
      if (reclen < 20 || off + reclen > n) break; /* not a record with a name */
      const char *name = ents + off + 19;
      off += reclen;
      if (__builtin_strncmp(name, "virtio", 6) != 0) continue;
      char path[512], bits[160];
      size_t dl = __builtin_strlen(driver_dir), nl = __builtin_strlen(name);
      if (dl + 1 + nl + sizeof "/features" > sizeof path) continue;
      __builtin_memcpy(path, driver_dir, dl);
      path[dl] = '/';
      __builtin_memcpy(path + dl + 1, name, nl);
      __builtin_memcpy(path + dl + 1 + nl, "/features", sizeof "/features");
      size_t got = read_small(path, bits, sizeof bits);
      found = got > 5 && bits[5] == '1';
    }
  }
  syscall(SYS_close, fd);
  errno = saved;
  return found;
}

/* sm_os_free_page_reporting of the system's balloon driver, read at the
 * first call (a heap big enough to ask for huge pages) and kept. Two
 * threads may both read it; they find the same. */
sm_os_host_t sm_os_host_reclaim;

bool sm_os_host_reclaims(void) {
  sm_os_host_t v = __atomic_load_n(&sm_os_host_reclaim, __ATOMIC_RELAXED);
  if (v == SM_OS_HOST_UNREAD) {
    v = sm_os_free_page_reporting("/sys/bus/virtio/drivers/virtio_balloon") ? SM_OS_HOST_RECLAIMS : SM_OS_HOST_KEEPS;
    __atomic_store_n(&sm_os_host_reclaim, v, __ATOMIC_RELAXED);
  }
  return v == SM_OS_HOST_RECLAIMS;
}

void sm_os_init(void) {
  long ps = sysconf(_SC_PAGESIZE);
  if (ps > 0) sm_os_page_size = (size_t)ps;
  sm_os_thp = thp_mode();
}

size_t sm_os_anon_resident(void) {
  char buf[160];
  if (!read_small("/proc/self/statm", buf, sizeof buf)) return 0;
  /* size resident shared ...: pages; resident less shared is anonymous */
  unsigned long long f[3] = {0, 0, 0};
  const char *c = buf;
  for (unsigned i = 0; i < 3; i++) {
    while (*c == ' ') c++;
    if (*c < '0' || *c > '9') return 0;
    while (*c >= '0' && *c <= '9') f[i] = f[i] * 10 + (unsigned)(*c++ - '0');
  }
  return f[1] > f[2] ? (size_t)(f[1] - f[2]) * sm_os_page_size : 0;
}

bool sm_os_huge_pages(void *p, size_t size, bool huge) {
  __atomic_add_fetch(&sm_os_thp_calls, 1, __ATOMIC_RELAXED);
  int saved = errno;
  bool ok = madvise(p, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE) == 0;
  errno = saved;
  return ok;
}

/* Eight unpredictable bytes: getrandom without blocking, or, where it is
 * refused (an old kernel, a seccomp filter, entropy not yet initialised),
 * the kernel's per-exec random bytes mixed with the clock and this
 * mapping's address. AT_RANDOM is never used as it is: glibc takes its
 * stack canary from it, and a value derived from ours may end up in heap
 * memory that the program can read. */
uint64_t sm_os_random64(void) {
  uint64_t r = 0;
  if (syscall(SYS_getrandom, &r, sizeof r, GRND_NONBLOCK) == (long)sizeof r && r) return r;
  const uint64_t *aux = (const uint64_t *)getauxval(AT_RANDOM);
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  r = (aux ? aux[1] : 0) ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)ts.tv_nsec ^ (uintptr_t)&r;
  /* splitmix64's finaliser: every input bit reaches every output bit. */
  r ^= r >> 31;
  r *= 0xbf58476d1ce4e5b9u;
  r ^= r >> 29;
  r *= 0x94d049bb133111ebu;
  r ^= r >> 32;
  return r;
}

/* Whether every page of [p, p + len) is mapped: mincore fails with ENOMEM
 * when some page of the range is not (any other failure counts as mapped).
 * At most four pages are asked about. errno is kept. */
bool sm_os_mapped(const void *p, size_t len) {
  uintptr_t from = (uintptr_t)p & ~(uintptr_t)(sm_os_page_size - 1);
  unsigned char vec[4];
  size_t pages = ((uintptr_t)p + len - from + sm_os_page_size - 1) / sm_os_page_size;
  if (pages > sizeof vec) pages = sizeof vec;
  int saved = errno;
  bool ok = mincore((void *)from, pages * sm_os_page_size, vec) == 0 || errno != ENOMEM;
  errno = saved;
  return ok;
}

SM_RUNTIME void *sm_os_map(size_t size) {
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void *sm_os_reserve(size_t size) {
  void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

SM_RUNTIME void sm_os_unmap(void *p, size_t size) {
  if (size == 0) return;
  int saved = errno;
  munmap(p, size);
  errno = saved;
}

/* Map `size` bytes read-write at a start address with (start + shift) a
 * multiple of `align`. Requires align >= SM_SEGMENT_SIZE and shift a multiple
 * of SM_SEGMENT_SIZE, so start is segment-aligned too. Over-maps by `align`
 * and trims both ends. */
SM_RUNTIME void *sm_os_map_aligned(size_t size, size_t align, size_t shift) {
  size_t over = size + align;
  if (over < size) return NULL;
  uint8_t *raw = mmap(NULL, over, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return NULL;
  uint8_t *start = (uint8_t *)(sm_align_up((uintptr_t)raw + shift, align) - shift);
  uint8_t *end = raw + over;
  if (start > raw) sm_os_unmap(raw, (size_t)(start - raw));
  if (start + size < end) sm_os_unmap(start + size, (size_t)(end - (start + size)));
  return start;
}

size_t sm_os_purge_calls, sm_os_purge_bytes; /* statistics, relaxed atomics */

/* Give committed pages back; the range reads as zeros afterwards. */
SM_RUNTIME void sm_os_purge(void *p, size_t size) {
  uintptr_t a = sm_align_up((uintptr_t)p, sm_os_page_size);
  uintptr_t b = sm_align_down((uintptr_t)p + size, sm_os_page_size);
  if (b <= a) return;
  __atomic_add_fetch(&sm_os_purge_calls, 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&sm_os_purge_bytes, b - a, __ATOMIC_RELAXED);
  int saved = errno;
  madvise((void *)a, b - a, MADV_DONTNEED);
  errno = saved;
}

SM_RUNTIME uint64_t sm_os_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t sm_os_tid(void) { return (uint64_t)syscall(SYS_gettid); }

/* Every store another thread of the process has made is visible once this
 * returns: membarrier(2) has each CPU that runs one of them execute a full
 * barrier, which drains its store buffer. Registered on first use, and
 * again whenever the kernel answers that it is not (EPERM). Where
 * the kernel lacks it or a filter refuses it, 2 ms of sleep: a store
 * buffer drains in microseconds. */
void sm_os_membarrier(void) {
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0) return;
  if (errno == EPERM && syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 &&
      syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0)
    return;
  struct timespec ts = {0, 2 * 1000 * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Spin briefly (the holder is probably running on the other core), then
 * sleep on the lock word with a futex. 0 = free, 1 = held, 2 = held with
 * waiters. */
SM_RUNTIME void sm_lock_slow(sm_lock_t *l) {
  for (int i = 0; i < 64; i++) {
    __builtin_ia32_pause();
    if (__atomic_load_n(&l->held, __ATOMIC_RELAXED) == 0 && sm_trylock(l)) return;
  }
  int saved = errno;
  /* From here on the lock is marked "2" whenever we hold or wait for it, so
   * our unlock wakes the next sleeper even if we never slept. */
  while (__atomic_exchange_n(&l->held, 2, __ATOMIC_ACQUIRE) != 0)
    syscall(SYS_futex, &l->held, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
  errno = saved;
}

SM_RUNTIME void sm_unlock_wake(sm_lock_t *l) {
  int saved = errno;
  syscall(SYS_futex, &l->held, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
  errno = saved;
}

size_t sm_os_purge_all, sm_os_purge_old; /* statistics: purge passes by kind */

void sm_purge_emptied(sm_purge_state_t *st, uint64_t now) {
  st->shrunk_at = 0;
  st->last = now;
  st->emptied_at = now ? now : 1;
  st->emptied_peak = st->peak;
  __atomic_add_fetch(&sm_os_purge_all, 1, __ATOMIC_RELAXED);
}

SM_RUNTIME sm_purge_t sm_purge_decide(uint64_t now, size_t dirty, size_t inuse, size_t retain, sm_purge_state_t *st,
                           uint32_t *cutoff) {
  if (inuse > st->peak) st->peak = inuse;
  if (dirty <= retain) { /* nothing to give back, or the held memory was reused */
    st->shrunk_at = 0;
    return SM_PURGE_NONE;
  }
  /* After a shrink gave everything back: did the owner grow back soon? */
  if (st->emptied_at && inuse >= st->emptied_peak / 2) {
    st->cycling = now - st->emptied_at <= SM_REGROW_MS;
    st->emptied_at = 0;
  }
  /* Live memory fell far below its recent peak and the free memory now
   * dwarfs it: the program shrank. A program that churns near its peak
   * only gets the aged purges below. */
  bool shrunk = inuse < st->peak / 8 && dirty > 2 * retain + 2 * inuse;
  if (!shrunk) {
    st->shrunk_at = 0;
  } else {
    if (st->cycling) { /* held for the next cycle, for a while */
      if (!st->shrunk_at) st->shrunk_at = now ? now : 1;
      if (now - st->shrunk_at < SM_SHRINK_GRACE_MS) return SM_PURGE_NONE;
      st->cycling = false; /* held in vain: give it back, and wait no more */
    }
    sm_purge_emptied(st, now);
    return SM_PURGE_ALL;
  }
  if (now - st->last >= SM_PURGE_AGE_MS) {
    st->last = now;
    *cutoff = (uint32_t)(now - SM_PURGE_AGE_MS);
    st->peak = inuse; /* the peak decays with each aged pass */
    __atomic_add_fetch(&sm_os_purge_old, 1, __ATOMIC_RELAXED);
    return SM_PURGE_OLD;
  }
  return SM_PURGE_NONE;
}

SM_RUNTIME sm_purge_t sm_purge_due(size_t dirty, size_t inuse, size_t retain, sm_purge_state_t *st, uint32_t *cutoff) {
  /* Nothing over retain, the common case, needs no clock. */
  return sm_purge_decide(dirty <= retain ? 0 : sm_os_now_ms(), dirty, inuse, retain, st, cutoff);
}

/* ---------------------------------------------------------------- mappings */

static uintptr_t parse_hex(const char **s) {
  uintptr_t v = 0;
  for (;; (*s)++) {
    char c = **s;
    unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16u;
    if (d == 16) return v;
    v = v * 16 + d;
  }
}

/* /proc/self/maps, read a buffer at a time (no allocation): the mapping
 * that contains addr. Adjacent mappings are not merged: a thread's stack is
 * one mapping, its guard page another. */
bool sm_os_mapping_of(uintptr_t addr, uintptr_t *start, uintptr_t *end) {
  int saved = errno;
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  bool found = false;
  if (fd >= 0) {
    char buf[4096];
    size_t have = 0;
    for (;;) {
      ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      have += (size_t)r;
      buf[have] = '\0';
      char *line = buf, *nl;
      while ((nl = __builtin_strchr(line, '\n')) != NULL) {
        const char *q = line;
        uintptr_t lo = parse_hex(&q);
        uintptr_t hi = *q == '-' ? (q++, parse_hex(&q)) : 0;
        if (addr >= lo && addr < hi) {
          *start = lo;
          *end = hi;
          found = true;
          break;
        }
        line = nl + 1;
      }
      if (found) break;
      have = (size_t)(buf + have - line);
      if (have == sizeof buf - 1) have = 0; /* a line longer than the buffer: its path only, skip it */
      __builtin_memmove(buf, line, have);
    }
    close(fd);
  }
  errno = saved;
  return found;
}

/* The calling thread's stack mapping, found once per thread and again when
 * the stack pointer leaves it (the main thread's stack grows down). */
static SM_TLS uintptr_t stack_lo, stack_hi;

bool sm_os_thread_stack(uintptr_t *lo, uintptr_t *hi) {
  uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
  if (sp < stack_lo || sp >= stack_hi) {
    uintptr_t a, b;
    if (!sm_os_mapping_of(sp, &a, &b)) return false;
    stack_lo = a;
    stack_hi = b;
  }
  *lo = stack_lo;
  *hi = stack_hi;
  return true;
}
