/* Compiler attributes and small helpers shared by every allocator file.
 * Nothing here allocates or calls into libc. */
#ifndef SM_ALLOCATOR_BASE_H
#define SM_ALLOCATOR_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SM_LIKELY(x)   __builtin_expect(!!(x), 1)
#define SM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define SM_NOINLINE    __attribute__((noinline))
#define SM_COLD        __attribute__((cold))
#define SM_INLINE      static inline __attribute__((always_inline))
#define SM_NORETURN    __attribute__((noreturn))
#define SM_EXPORT      __attribute__((visibility("default")))
/* Code that every process runs, traced or not (the entry points, their
 * slow paths, start-up and exit), in one section that GNU ld's default
 * script puts at the start of .text, after the cold, exit and start-up
 * code. The kernel maps a file's pages 64 KiB at a time around each fault,
 * so spread over the library this code made a process map 128-136 KiB of
 * it; together, and with the library loaded at a 64 KiB boundary
 * (meson.build: max-page-size, which glibc 2.35 and later honour), it
 * fits one window. */
#define SM_RUNTIME     __attribute__((section(".text.hot.snapmalloc")))
/* Read-only data that every process reads (the size-class tables, the
 * strings start-up passes to the kernel and the loader): in the library's
 * RELRO segment, whose page the loader has made resident to relocate it,
 * instead of .rodata. The segment .rodata shares with the unwind tables is
 * then never read by a process that does not trace, and never resident
 * (28 KiB; tests/preload/footprint.sh). Read-only all the same: the loader
 * write-protects RELRO once it has relocated it (meson.build: -z relro). */
#define SM_RUNTIME_DATA __attribute__((section(".data.rel.ro.snapmalloc")))
/* Large zeroed arrays of which a process touches a page or two, or none
 * unless it traces (the segment map's top level, the metadata ranges, the
 * tracer's id tables): after the rest of bss, in the section GNU ld's
 * default script places there (.lbss; zeroed like .bss, no bytes in the
 * file). Among the small variables, they spread those over five or six
 * pages; together, the small ones take three (tests/preload/footprint.sh).
 * GCC only: clang 14 makes a section of that name PROGBITS, zeros stored
 * in the file, so under clang the arrays stay in .bss. */
#if defined(__GNUC__) && !defined(__clang__)
#define SM_BIG_BSS __attribute__((section(".lbss.snapmalloc")))
#else
#define SM_BIG_BSS
#endif
/* glibc requires initial-exec TLS in a malloc replacement: a dynamic TLS
 * access may itself call malloc on first touch. */
#define SM_TLS         __thread __attribute__((tls_model("initial-exec")))
#define SM_CACHE_ALIGN __attribute__((aligned(64)))

/* The bits set in x. __builtin_popcountll is a call to libgcc's
 * __popcountdi2 on baseline x86-64 (no POPCNT), which the link puts at the
 * far end of the library's code (SM_RUNTIME says why that matters). */
static inline unsigned sm_popcount64(uint64_t x) {
  x -= (x >> 1) & 0x5555555555555555ull;
  x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
  x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0Full;
  return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

/* *left less n; true if that leaves it at 0 or below. One subtraction in
 * memory and a branch on its flags (the compiler would load, subtract,
 * store and test): malloc's gate and the tracer's countdown. Not atomic:
 * only the owner thread subtracts, and whoever else stores into *left
 * checks afterwards that no subtraction undid its store (heap.c,
 * sm_heaps_gates_shut). */
SM_INLINE bool sm_countdown_spend(int64_t *left, int64_t n) {
#if defined(__x86_64__) && defined(__GCC_ASM_FLAG_OUTPUTS__)
  bool spent;
  __asm__("subq %2, %0" : "+m"(*left), "=@ccle"(spent) : "r"(n));
  return spent;
#else
  int64_t v = __atomic_load_n(left, __ATOMIC_RELAXED) - n;
  __atomic_store_n(left, v, __ATOMIC_RELAXED);
  return v <= 0;
#endif
}

/* The thread's words in one TLS block: its heap, which malloc's fast path
 * reads, and the tracer's countdown when that is not the heap's gate. */
struct sm_heap;
typedef struct sm_thread_words {
  struct sm_heap *heap; /* sm_heap_tls (allocator/heap.c) */
  int64_t sample_left;  /* the tracer's countdown when not the heap's gate (tracer/tracer.h, sm_countdown) */
} sm_thread_words_t;
extern SM_TLS sm_thread_words_t sm_tw;

#define SM_KiB ((size_t)1 << 10)
#define SM_MiB ((size_t)1 << 20)
#define SM_GiB ((size_t)1 << 30)

/* Round x up/down to a power-of-two a. */
SM_INLINE uintptr_t sm_align_up(uintptr_t x, uintptr_t a) { return (x + a - 1) & ~(a - 1); }
SM_INLINE uintptr_t sm_align_down(uintptr_t x, uintptr_t a) { return x & ~(a - 1); }
SM_INLINE bool sm_is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

/* Index of the highest set bit; x must not be 0. */
SM_INLINE unsigned sm_log2(size_t x) { return 63u - (unsigned)__builtin_clzl(x); }

/* sm_assert(e): in a checked build (meson setup -Dchecks=true, which defines
 * SM_CHECKS) a false e prints "snapmalloc: assertion failed: e at file:line"
 * through msg.c (no allocation) and aborts. Otherwise e is not evaluated and
 * no code is emitted; sizeof keeps it type-checked. */
SM_NORETURN __attribute__((cold)) void sm_assert_fail(const char *expr, const char *file, int line);
#ifdef __FILE_NAME__
#define SM_FILE __FILE_NAME__
#else
#define SM_FILE __FILE__
#endif
#ifdef SM_CHECKS
#define sm_assert(e) (SM_LIKELY(e) ? (void)0 : sm_assert_fail(#e, SM_FILE, __LINE__))
#else
#define sm_assert(e) ((void)sizeof(!(e)))
#endif

/* A small futex lock (0 free, 1 held, 2 held with sleepers). Critical sections
 * in the allocator are short (splay lookups, list splices); unlike
 * pthread_mutex_t it is plainly re-initialised in a fork child, and it never
 * allocates. The slow path (os.c) spins a little, then sleeps. */
typedef struct sm_lock {
  volatile int held; /* 0 free, 1 held */
} sm_lock_t;

#define SM_LOCK_INIT {0}

void sm_lock_slow(sm_lock_t *l);

/* Acquire only by moving 0 -> 1: an exchange would overwrite the "2" of a
 * lock with sleepers, and the unlock would then skip the wake-up. */
SM_INLINE bool sm_trylock(sm_lock_t *l) {
  int expected = 0;
  return __atomic_compare_exchange_n(&l->held, &expected, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}
SM_INLINE void sm_lock(sm_lock_t *l) {
  if (SM_LIKELY(sm_trylock(l))) return;
  sm_lock_slow(l);
}
void sm_unlock_wake(sm_lock_t *l);
SM_INLINE void sm_unlock(sm_lock_t *l) {
  int was = __atomic_exchange_n(&l->held, 0, __ATOMIC_RELEASE);
  sm_assert(was != 0); /* unlocking a lock nobody held */
  if (SM_UNLIKELY(was == 2)) sm_unlock_wake(l);
}
/* Used only in a fork child, where the holder no longer exists. */
SM_INLINE void sm_lock_reset(sm_lock_t *l) { l->held = 0; }

#endif
