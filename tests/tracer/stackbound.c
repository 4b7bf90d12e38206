/* The stack walker never reads past the top of the thread's stack. A
 * thread runs on a stack of our own (64 KiB, with 256 KiB of inaccessible
 * memory right above it) and calls malloc through a frame whose unwind rule is
 * wrong: it claims a 128 KiB frame, so the caller's return address would
 * be read 128 KiB up, past the stack's end. The walk must stop at the top
 * of the stack mapping instead (before: SIGSEGV in the tracer).
 * Runs under the preload with trace=1 (unwind=fast, the default). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* bogus_frame(fn, n): calls fn(n) with a CFI rule "CFA = rsp + 128 KiB". */
__asm__(".text\n"
        ".globl bogus_frame\n"
        ".type bogus_frame, @function\n"
        "bogus_frame:\n"
        ".cfi_startproc\n"
        "  sub $8, %rsp\n"
        ".cfi_def_cfa_offset 131072\n"
        "  mov %rdi, %rax\n"
        "  mov %rsi, %rdi\n"
        "  call *%rax\n"
        "  add $8, %rsp\n"
        ".cfi_def_cfa_offset 8\n"
        "  ret\n"
        ".cfi_endproc\n"
        ".size bogus_frame, .-bogus_frame\n");
void *bogus_frame(void *(*fn)(size_t), size_t n);

static void *thread_main(void *arg) {
  (void)arg;
  for (int i = 0; i < 100; i++) free(bogus_frame(malloc, 24 + (size_t)i));
  return (void *)1;
}

int main(void) {
  size_t size = 64 * 1024, guard = 256 * 1024;
  char *m = mmap(NULL, size + guard, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED || mprotect(m + size, guard, PROT_NONE) != 0) {
    perror("stackbound: mmap");
    return 1;
  }
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstack(&attr, m, size);
  pthread_t t;
  void *res = NULL;
  if (pthread_create(&t, &attr, thread_main, NULL) != 0 || pthread_join(t, &res) != 0 || res != (void *)1) {
    fprintf(stderr, "stackbound: thread failed\n");
    return 1;
  }
  fprintf(stderr, "stackbound: 100 traced allocations through a bad frame on a 64 KiB stack: fine\n");
  return 0;
}
