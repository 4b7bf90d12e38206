/* The checked build's structure checks (docs/checks.md). With SM_CHECKS
 * (meson setup -Dchecks=true) each macro runs an invariant checker at the
 * point where a broken structure is about to be trusted, and a failure
 * aborts with one "snapmalloc: assertion failed: ..." line naming the
 * checker, what it returned and the caller's file:line. Without SM_CHECKS
 * they expand to nothing. The checkers themselves (sm_pool_check,
 * sm_large_check, sm_splay_check) are always built: the unit tests call
 * them directly. */
#ifndef SM_ALLOCATOR_CHECK_H
#define SM_ALLOCATOR_CHECK_H

#include "allocator/types.h"

/* An arena is checked whole (every block of every chunk, and its tree) at
 * every SM_CHECK_ARENA_EVERY-th unlock, not at each: a check costs a walk
 * of the whole arena, and a program with thousands of large blocks would
 * otherwise spend all its time in it. Corruption is still found within 64
 * operations on the arena, and at the next fork. */
#define SM_CHECK_ARENA_EVERY 64

#ifdef SM_CHECKS
void sm_check_page_at(const sm_page_t *pg, const char *file, int line);
void sm_check_arena_unlock_at(sm_arena_t *a, const char *file, int line);
void sm_check_fork_at(const char *file, int line);
/* A pool page: free lists inside the page, no block listed twice, counts agree. */
#define sm_check_page(pg) sm_check_page_at((pg), SM_FILE, __LINE__)
/* Before unlocking an arena: every SM_CHECK_ARENA_EVERY-th time, the whole arena. */
#define sm_check_arena_unlock(a) sm_check_arena_unlock_at((a), SM_FILE, __LINE__)
/* At fork, with every allocator lock held (or in the child): every arena
 * and the pages of the forking thread's heap. */
#define sm_check_fork() sm_check_fork_at(SM_FILE, __LINE__)
#else
#define sm_check_page(pg) ((void)0)
#define sm_check_arena_unlock(a) ((void)0)
#define sm_check_fork() ((void)0)
#endif

#endif
