/* Leak corpus: one scenario per argument, each leaving a known set of blocks
 * at exit. tests/leaks/compare.sh runs every scenario under `snapmalloc
 * check` and under valgrind's memcheck and requires the same totals per
 * class (definitely, indirectly, possibly lost, still reachable).
 * Sizes are distinct per scenario so a mix-up shows. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

struct node {
  struct node *left, *right;
  char pad[16];
};

void *global_keep;             /* blocks held by a global */
static void *static_keep[3];   /* and by static storage */
static __thread void *tls_keep; /* and by thread-local storage */
static volatile int stop_thread;

NOINLINE static void lose(void) {
  for (int i = 0; i < 11; i++) {
    void *p = malloc(48);
    memset(p, i, 48);
  } /* 11 x 48: definitely lost */
}

NOINLINE static struct node *tree(int depth) {
  if (!depth) return NULL;
  struct node *n = calloc(1, sizeof *n);
  n->left = tree(depth - 1);
  n->right = tree(depth - 1);
  return n;
}

NOINLINE static void lose_tree(void) {
  struct node *root = tree(3); /* 7 nodes: 1 definitely + 6 indirectly lost */
  root->pad[0] = 1;
}

NOINLINE static void lose_cycle(void) {
  struct node *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
  a->left = b;
  b->left = a; /* a cycle nobody points to: 1 definitely + 1 indirectly lost */
}

NOINLINE static void keep_globals(void) {
  global_keep = malloc(100);
  for (int i = 0; i < 3; i++) static_keep[i] = malloc(200); /* still reachable */
}

NOINLINE static void keep_heap_chain(void) {
  void **holder = malloc(4 * sizeof(void *));
  for (int i = 0; i < 4; i++) holder[i] = malloc(64); /* reachable through a reachable block */
  global_keep = holder;
}

NOINLINE static void keep_interior(void) {
  char *p = malloc(1000);
  global_keep = p + 500; /* only an interior pointer: possibly lost */
}

NOINLINE static void lose_unaligned(void) {
  static char buf[16];
  void *p = malloc(77);
  memcpy(buf + 3, &p, sizeof p); /* stored unaligned: not a pointer to either tool */
}

NOINLINE static void lose55(void) {
  void *p = malloc(55);
  memset(p, 1, 55);
}

/* A record whose first field is never written, over a block that was on a
 * free list: the list's old link must not pass for a pointer to the lost
 * record of the same size that follows (small blocks), nor a free tree's
 * links for pointers to the lost big block (large blocks). */
struct rec {
  void *first;
  long a, b, c;
};
struct rec *stale_keep;
void *stale_big_keep;

NOINLINE static void lose_behind_stale_links(size_t big) {
  struct rec *x = malloc(sizeof *x), *y = malloc(sizeof *y);
  free(y);
  free(x);
  stale_keep = malloc(sizeof *stale_keep); /* reachable; first word unset */
  stale_keep->a = 1;
  struct rec *lost = malloc(sizeof *lost); /* definitely lost */
  lost->a = 2;
  /* three free blocks of one size, kept apart by live ones (freed at the
   * end, after the two allocations that reuse them) */
  char *b[6];
  for (int k = 0; k < 6; k++) b[k] = malloc(big);
  for (int k = 0; k < 6; k += 2) free(b[k]);
  stale_big_keep = malloc(big); /* reachable; its first words unset */
  ((char *)stale_big_keep)[100] = 1;
  char *lost_big = malloc(big); /* definitely lost */
  lost_big[100] = 2;
  for (int k = 1; k < 6; k += 2) free(b[k]);
}

/* Small blocks carved from a page that served another size class: that
 * class's old free links sit at offsets the new blocks' first word does not
 * cover (the 64-byte record's word at +32 held a 32-byte block's link, which
 * pointed at the next record). */
struct rec64 {
  void *first;
  char pad[24];
  void *maybe; /* never written */
  char rest[24];
};
void *stale_class_keep;

NOINLINE static void lose_behind_other_class(void) {
  enum { N = 8192 };
  static void *a[N];
  for (int i = 0; i < N; i++) a[i] = malloc(32);
  for (int i = N - 1; i >= 0; i--) free(a[i]); /* the pages empty and go back */
  memset(a, 0, sizeof a);
  struct rec64 *r1 = malloc(sizeof *r1), *r2 = malloc(sizeof *r2);
  r1->first = r2->first = NULL;
  stale_class_keep = r1; /* r2 is lost */
}

/* A sandbox that refuses process_vm_readv (EPERM from a seccomp filter):
 * the scan must still read the roots, or every block would look lost. */
static void refuse_process_vm_readv(void) {
  struct sock_filter f[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_readv, 0, 1),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = {sizeof f / sizeof f[0], f};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
    perror("corpus: seccomp");
    exit(2);
  }
}

/* The program's own allocation wrapper (--alloc-fn names it). */
NOINLINE void *my_xmalloc(size_t n) {
  void *p = malloc(n);
  if (!p) abort();
  return p;
}

NOINLINE static void lose_wrapped(void) {
  char *p = my_xmalloc(66);
  memset(p, 3, 66);
}

static void *thread_stack_holder(void *arg) {
  (void)arg;
  volatile void *mine = malloc(333); /* held by a live thread's stack */
  tls_keep = malloc(444);            /* and by its TLS */
  while (!stop_thread) usleep(1000);
  (void)mine;
  return NULL;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  if (!strcmp(mode, "clean")) {
    void *p = malloc(10);
    free(p);
    printf("clean\n"); /* stdio's buffer stays: reachable, never a leak */
  } else if (!strcmp(mode, "lost")) {
    lose();
  } else if (!strcmp(mode, "tree")) {
    lose_tree();
  } else if (!strcmp(mode, "cycle")) {
    lose_cycle();
  } else if (!strcmp(mode, "globals")) {
    keep_globals();
  } else if (!strcmp(mode, "heap")) {
    keep_heap_chain();
  } else if (!strcmp(mode, "interior")) {
    keep_interior();
  } else if (!strcmp(mode, "unaligned")) {
    lose_unaligned();
  } else if (!strcmp(mode, "stale")) {
    lose_behind_stale_links(40000);
    lose_behind_other_class();
  } else if (!strcmp(mode, "thread")) {
    pthread_t t;
    pthread_create(&t, NULL, thread_stack_holder, NULL);
    usleep(100000);
    /* exit with the thread still running: its stack and TLS are roots */
    exit(0);
  } else if (!strcmp(mode, "fork")) { /* only the child leaks */
    pid_t pid = fork();
    if (pid == 0) {
      lose55();
      exit(0);
    }
    int st;
    waitpid(pid, &st, 0);
  } else if (!strcmp(mode, "seccomp")) { /* the globals scenario in a sandbox */
    refuse_process_vm_readv();
    keep_globals();
  } else if (!strcmp(mode, "wrapped")) {
    lose_wrapped();
  } else if (!strcmp(mode, "_exit")) { /* ends without exit(): no analysis */
    lose();
    _exit(0);
  } else if (!strcmp(mode, "fail")) { /* leaks, but fails: its status wins */
    lose();
    return 3;
  } else if (!strcmp(mode, "all")) {
    lose();
    lose_tree();
    lose_cycle();
    keep_globals();
    keep_interior();
    lose_unaligned();
  } else {
    fprintf(stderr, "usage: corpus clean|lost|tree|cycle|globals|heap|interior|unaligned|stale|thread|fork|seccomp|wrapped|_exit|fail|all\n");
    return 2;
  }
  return 0;
}
