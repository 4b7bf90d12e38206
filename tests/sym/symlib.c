/* Shared library for test_sym: functions whose call sites the test knows by
 * the LINE markers below.  Built with -g -O2. */
#include <stddef.h>
#include <stdlib.h>

/* Return address of the latest symlib_capture call. */
void *volatile symlib_last_ra;

__attribute__((noinline, noclone)) void *symlib_capture(size_t n) {
  symlib_last_ra = __builtin_return_address(0);
  __asm__ volatile("" ::: "memory");
  return malloc(n);
}

__attribute__((noinline)) void *symlib_alloc(size_t n) {
  void *p = symlib_capture(n); /* LINE:lib_call */
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}

static inline __attribute__((always_inline)) void *lib_inl(size_t n) {
  void *p = symlib_capture(n * 2); /* LINE:lib_inl_call */
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}

__attribute__((noinline)) void *symlib_inl_outer(size_t n) {
  void *p = lib_inl(n + 5); /* LINE:lib_outer_call */
  __asm__ volatile("" : : "r"(p) : "memory");
  return p;
}
