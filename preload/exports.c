/* The C library's allocation entry points, each a forwarding call into the
 * allocator (link-time optimisation inlines them) plus, behind one test of
 * sm_trace_on, the tracer's hook. Semantics follow glibc's documentation:
 * errno values, NULL and zero-size behaviour, overflow checks. Tracing
 * happens here and only here, so an entry point that calls another
 * internally never charges a block twice. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "allocator/internal.h"
#include "tracer/tracer.h"

#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* Out of line so that the untraced fast paths need no stack frame. The
 * stack walk starts at this function's caller: the entry point when it
 * called us, the program when the entry point jumped here. */
static SM_NOINLINE void *traced_in(void *p, size_t req, sm_page_t *page, unsigned move) {
  sm_stack_start_t from;
  SM_STACK_HERE(from);
  return sm_track_alloc(p, req, &from, page, move);
}
/* A block whose pool page the caller does not know (or not a pool block),
 * made by a call with `move`'s promises (SM_MOVE_*: what a sampled block
 * moved out of the pools must keep, sm_track_alloc). */
#define traced(p, req, move) traced_in((p), (req), NULL, (move))

/* traced_in for malloc's fast path, which reaches it by a jump: at entry
 * the return address on top of the stack is malloc's caller's, and rbp
 * is still the caller's (malloc keeps no frame). So this reads the walk's
 * start without a frame of its own and jumps on, with p, req and page
 * untouched in their argument registers: the tracer returns the block to malloc's
 * caller. x86-64 only, as the stack walker is. */
__attribute__((naked, used)) static void *traced_jump(void *p, size_t req, sm_page_t *page) {
  __asm__ volatile("movq (%%rsp), %%rcx\n\t" /* ra */
                   "leaq 8(%%rsp), %%r8\n\t" /* sp after the return */
                   "movq %%rbp, %%r9\n\t"     /* bp */
                   "jmp sm_track_alloc_from" ::: "memory");
}

/* A small block comes off its page's free list with the list's link to the
 * next free block still in its first word. When the program never writes
 * that word, the exit-time leak scan would take the link for a pointer and
 * call a lost block reachable; so while tracing (whenever a leak scan may
 * run) that word is cleared, at the cost of one store to a line the
 * allocation just read. Large blocks clear their tree links themselves
 * (large.c); huge ones are fresh mappings. */
SM_INLINE void *unlinked(void *p) {
  *(void **)p = NULL;
  return p;
}

/* Whether new blocks are traced. The control channel's helper thread may
 * switch tracing while this thread allocates, with atomic stores; this
 * stays a plain load of one byte (which cannot tear), because an atomic
 * load, even relaxed, costs the untraced path an instruction per call here
 * (tests/tracer/untraced_cost.sh measured it: the compiler no longer folds
 * the load into the test). The traced path orders itself (sm_track_alloc
 * loads the flag again with acquire). */
#define TRACING() (sm_trace_on)

/* The result of an allocating call, charged to the caller's stack when
 * tracing; `move`: the call's promises (SM_MOVE_*). */
#define TRACED(p, req, move)                                  \
  do {                                                        \
    void *r_ = (p);                                           \
    if (SM_UNLIKELY(TRACING()) && r_) {                       \
      if (!sm_track_wanted(req)) return unlinked(r_);         \
      return traced(unlinked(r_), (req), (move));             \
    }                                                         \
    return r_;                                                \
  } while (0)

/* malloc's pool fast path is inline here and keeps nothing for after a
 * call: whatever else (the slow and large paths, tracing) is a tail call
 * out of line, so the fast path saves no register and sets up no frame. */
SM_RUNTIME static SM_NOINLINE void *malloc_rest(size_t size) { TRACED(sm_malloc_rest(size), size, SM_MOVE_MALLOC); }

/* malloc's fast path found its heap's gate spent (allocator/internal.h,
 * "The gate"). Traced, and not by the dense sampler: the block loses its
 * link and goes on to the tracer, sampled or not. Only tail calls, so
 * that traced_jump still finds malloc's caller's return address on top of
 * the stack. */
SM_RUNTIME static SM_NOINLINE void *malloc_gate_rest(void *p, size_t size, sm_page_t *pg);
SM_RUNTIME static SM_NOINLINE void *malloc_reopen(void *p, size_t size, sm_page_t *pg);
SM_RUNTIME static SM_NOINLINE void *malloc_gate(void *p, size_t size, sm_page_t *pg) {
  if (SM_LIKELY(sm_gate_traces)) return traced_jump(unlinked(p), size, pg);
  return malloc_gate_rest(p, size, pg);
}

/* The dense sampler counts down first, every block losing its link (its
 * gate stays shut); untraced, malloc_reopen. */
SM_RUNTIME static SM_NOINLINE void *malloc_gate_rest(void *p, size_t size, sm_page_t *pg) {
  if (!__atomic_load_n(&sm_trace_on, __ATOMIC_ACQUIRE)) return malloc_reopen(p, size, pg);
  unlinked(p);
  if (sm_sampling_dense && !sm_track_wanted(size)) return p;
  return traced_jump(p, size, pg);
}

/* The gate was open, and spent (after 4 EiB), or left shut by a stop: open
 * it, unless a start is shutting it right now. A start stores the flag,
 * then the gate (release); so the gate is read before the flag again
 * (acquire), and opened only by an exchange from the value read, which
 * fails if the start's store came in between. */
SM_RUNTIME static SM_NOINLINE void *malloc_reopen(void *p, size_t size, sm_page_t *pg) {
  sm_heap_t *h = sm_heap_tls;
  int64_t seen = __atomic_load_n(&h->gate, __ATOMIC_ACQUIRE);
  if (__atomic_load_n(&sm_trace_on, __ATOMIC_ACQUIRE) ||
      !__atomic_compare_exchange_n(&h->gate, &seen, SM_GATE_OPEN, false, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE))
    return malloc_gate_rest(p, size, pg); /* started meanwhile (or the exchange lost to a start: the same) */
  return p;
}

/* No test of tracing of its own: the gate's subtraction is the one test,
 * and a sampled allocation the sampler does not pick returns here. */
SM_RUNTIME SM_EXPORT void *malloc(size_t size) {
  if (SM_LIKELY(size <= SM_POOL_MAX)) {
    sm_heap_t *h = sm_heap_tls;
    sm_page_t *pg;
    void *p = sm_malloc_fast(h, size, &pg);
    if (SM_LIKELY(p != NULL)) {
      if (SM_UNLIKELY(sm_heap_gate_spend(h, size))) return malloc_gate(p, size, pg);
      return p;
    }
  }
  return malloc_rest(size);
}

/* No test of its own: a block of an SM_SEGMAP_POOL segment is freed in
 * line, checked; tracing (where sm_free_traced hands a tagged block's tag
 * to sm_track_untag) first makes every pool segment's entry POOL_ALT,
 * whose blocks, like large and huge ones, go out of line
 * (sm_free_trace_start, allocator/alloc.c).
 * `flatten` puts sm_free_exported's fast path in here (link-time
 * optimisation left it a tail call): 2 instructions less a free, the jump
 * and a register copy. Its slow paths stay calls (SM_NOINLINE). */
SM_RUNTIME SM_EXPORT __attribute__((flatten)) void free(void *p) { sm_free_exported(p); }

SM_RUNTIME SM_EXPORT void *calloc(size_t n, size_t size) { TRACED(sm_calloc(n, size), n * size, SM_MOVE_MALLOC | SM_MOVE_COPY); }

/* realloc charges the result to the realloc call's stack, as tracemalloc
 * does. The old tag is taken first (the block may move or be freed) and put
 * back if the call fails, leaving the old block as it was. */
static SM_NOINLINE void *traced_realloc(void *p, size_t size) {
  sm_stack_start_t from;
  SM_STACK_HERE(from);
  size_t old_req = 0;
  uint32_t old = p ? sm_tag_take(p, &old_req) : 0;
  void *q = sm_realloc(p, size);
  if (!q && p && size != 0) {
    if (old) sm_tag_set(p, old, old_req);
    return NULL;
  }
  if (!p && q) unlinked(q); /* realloc(NULL, n) is a malloc */
  return sm_track_realloc(old, old_req, p, q, size, &from);
}

/* Tested on sm_trace_tags, not sm_trace_on: once tracing was on, blocks
 * may carry tags even while it is off (stopped through the control
 * channel), and a realloc that moves one must take its tag. A plain load,
 * as in TRACING(). */
SM_RUNTIME SM_EXPORT void *realloc(void *p, size_t size) {
  if (SM_UNLIKELY(sm_trace_tags)) return traced_realloc(p, size);
  return sm_realloc(p, size);
}

SM_RUNTIME SM_EXPORT void *reallocarray(void *p, size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc(p, total);
}

/* C23 */
SM_RUNTIME SM_EXPORT void free_sized(void *p, size_t size) { free(p); }
SM_RUNTIME SM_EXPORT void free_aligned_sized(void *p, size_t align, size_t size) { free(p); }

SM_RUNTIME SM_EXPORT int posix_memalign(void **out, size_t align, size_t size) {
  if (align < sizeof(void *) || !sm_is_pow2(align)) return EINVAL;
  int saved = errno; /* POSIX: report through the return value only */
  void *p = sm_memalign(align, size);
  errno = saved;
  if (!p) return ENOMEM;
  if (SM_UNLIKELY(TRACING())) {
    unlinked(p);
    if (sm_track_wanted(size)) p = traced(p, size, SM_MOVE_ALIGN(align));
  }
  *out = p;
  return 0;
}

SM_RUNTIME SM_EXPORT void *aligned_alloc(size_t align, size_t size) {
  if (!sm_is_pow2(align)) {
    errno = EINVAL;
    return NULL;
  }
  TRACED(sm_memalign(align, size), size, SM_MOVE_ALIGN(align));
}

SM_RUNTIME SM_EXPORT void *memalign(size_t align, size_t size) {
  /* glibc rounds a non-power-of-two alignment up to the next power of two. */
  if (align > (SIZE_MAX >> 1) + 1) {
    errno = EINVAL;
    return NULL;
  }
  if (!sm_is_pow2(align)) align = align <= 1 ? 1 : (size_t)1 << (sm_log2(align - 1) + 1);
  TRACED(sm_memalign(align, size), size, SM_MOVE_ALIGN(align));
}

SM_RUNTIME SM_EXPORT void *valloc(size_t size) {
  size_t page = (size_t)getpagesize();
  TRACED(sm_memalign(page, size), size, SM_MOVE_ALIGN(page));
}

SM_RUNTIME SM_EXPORT void *pvalloc(size_t size) {
  size_t page = (size_t)getpagesize();
  size_t rounded = (size + page - 1) & ~(page - 1);
  if (rounded < size) {
    errno = ENOMEM;
    return NULL;
  }
  TRACED(sm_memalign(page, rounded ? rounded : page), size, SM_MOVE_ALIGN(page));
}

SM_RUNTIME SM_EXPORT size_t malloc_usable_size(void *p) { return sm_usable_size(p); }

SM_EXPORT int malloc_trim(size_t pad) {
  sm_heap_t *h = sm_heap_tls;
  size_t before = h != &sm_heap_empty ? sm_pool_trim(h) : 0;
  before += sm_large_trim();
  if (sm_heaps_release_parked()) before++;
  sm_segment_trim();
  return before > 0;
}

static size_t clamp_int(size_t v) { return v > (size_t)2147483647 ? (size_t)2147483647 : v; }

SM_EXPORT struct mallinfo2 mallinfo2(void) {
  sm_stats_t st;
  sm_stats_get(&st);
  struct mallinfo2 mi = {0};
  size_t inuse = st.pool_inuse + st.large_inuse + st.huge_inuse;
  mi.arena = st.mapped - st.huge_inuse; /* non-mmapped space, as glibc reports it */
  mi.hblks = 0;
  mi.hblkhd = st.huge_inuse;
  mi.uordblks = st.pool_inuse + st.large_inuse;
  mi.fordblks = st.mapped > inuse ? st.mapped - inuse : 0;
  mi.ordblks = 1;
  mi.usmblks = 0;
  mi.keepcost = 0;
  return mi;
}

SM_EXPORT struct mallinfo mallinfo(void) {
  struct mallinfo2 m2 = mallinfo2();
  struct mallinfo mi = {0};
  mi.arena = (int)clamp_int(m2.arena);
  mi.ordblks = (int)clamp_int(m2.ordblks);
  mi.hblks = (int)clamp_int(m2.hblks);
  mi.hblkhd = (int)clamp_int(m2.hblkhd);
  mi.uordblks = (int)clamp_int(m2.uordblks);
  mi.fordblks = (int)clamp_int(m2.fordblks);
  return mi;
}

SM_EXPORT void malloc_stats(void) { sm_stats_print(2); }

/* Every glibc tunable is accepted and ignored: none of them applies. */
SM_EXPORT int mallopt(int param, int value) { return 1; }

SM_EXPORT int malloc_info(int options, FILE *fp) {
  if (options != 0 || !fp) {
    errno = EINVAL;
    return -1;
  }
  sm_stats_t st;
  sm_stats_get(&st);
  fprintf(fp,
          "<malloc version=\"snapmalloc-1\">\n"
          "<total type=\"mapped\" size=\"%zu\"/>\n"
          "<total type=\"pool-inuse\" size=\"%zu\"/>\n"
          "<total type=\"large-inuse\" size=\"%zu\"/>\n"
          "<total type=\"large-free\" size=\"%zu\"/>\n"
          "<total type=\"huge\" size=\"%zu\"/>\n"
          "<system type=\"current\" size=\"%zu\"/>\n"
          "</malloc>\n",
          st.mapped, st.pool_inuse, st.large_inuse, st.large_free, st.huge_inuse, st.mapped + st.meta);
  return 0;
}

/* glibc's internal names; code built against glibc may call them directly. */
SM_RUNTIME SM_EXPORT void *__libc_malloc(size_t size) { return malloc(size); }
SM_RUNTIME SM_EXPORT void __libc_free(void *p) { free(p); }
SM_RUNTIME SM_EXPORT void *__libc_calloc(size_t n, size_t size) { return calloc(n, size); }
SM_RUNTIME SM_EXPORT void *__libc_realloc(void *p, size_t size) { return realloc(p, size); }
SM_RUNTIME SM_EXPORT void *__libc_memalign(size_t align, size_t size) { return memalign(align, size); }
SM_RUNTIME SM_EXPORT void *__libc_valloc(size_t size) { return valloc(size); }
SM_RUNTIME SM_EXPORT void *__libc_pvalloc(size_t size) { return pvalloc(size); }
SM_EXPORT struct mallinfo __libc_mallinfo(void) { return mallinfo(); }
SM_EXPORT int __libc_mallopt(int param, int value) { return 1; }
SM_RUNTIME SM_EXPORT int __posix_memalign(void **out, size_t align, size_t size) { return posix_memalign(out, align, size); }
