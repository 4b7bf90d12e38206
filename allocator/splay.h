/* Top-down splay tree of free large blocks, keyed by (block size, address).
 * Best fit is the smallest key >= (size, 0); splaying lifts recently used
 * sizes to the root, so a program that keeps asking for the same few sizes
 * finds them in a few steps (the reason OCaml's best-fit policy uses one).
 * Nodes live inside the free blocks themselves (sm_fnode_t after the block
 * header); the tree allocates nothing. Not thread-safe: the arena lock. */
#ifndef SM_ALLOCATOR_SPLAY_H
#define SM_ALLOCATOR_SPLAY_H

#include "allocator/types.h"

/* Size of the free block that holds node n. */
SM_INLINE size_t sm_fnode_size(const sm_fnode_t *n) {
  return ((const sm_lblock_t *)((const uint8_t *)n - SM_LB_HDR))->head & ~SM_LB_FLAGS;
}

void sm_splay_insert(sm_fnode_t **root, sm_fnode_t *n);
/* n must be in the tree. */
void sm_splay_remove(sm_fnode_t **root, sm_fnode_t *n);
/* Removes and returns the smallest node with size >= size, or NULL. */
sm_fnode_t *sm_splay_take_best(sm_fnode_t **root, size_t size);
/* Calls fn on every node in key order (iterative, no recursion); fn may
 * change node payload fields but not the tree. */
void sm_splay_foreach(sm_fnode_t *root, void (*fn)(sm_fnode_t *n, void *arg), void *arg);
/* Invariant checker: strict (size, address) order. Returns the node count,
 * or (size_t)-1 if the order is broken. */
size_t sm_splay_check(sm_fnode_t *root);

#endif
