/* The splay tree against a brute-force model: random inserts, removals and
 * best-fit takes over fake free blocks, with the order checker after every
 * operation. */
#include <stdlib.h>
#include <string.h>

#include "allocator/splay.h"
#include "tests/testhelper.h"

#define N 600
#define STRIDE 256

static uint8_t arena[N * STRIDE] __attribute__((aligned(64)));
static bool in_tree[N];

static sm_lblock_t *blk(int i) { return (sm_lblock_t *)(arena + (size_t)i * STRIDE); }
static sm_fnode_t *node(int i) { return (sm_fnode_t *)((uint8_t *)blk(i) + SM_LB_HDR); }
static size_t size_of(int i) { return blk(i)->head & ~SM_LB_FLAGS; }

/* Model: smallest (size, index) with size >= want among nodes in the tree. */
static int model_best(size_t want) {
  int best = -1;
  for (int i = 0; i < N; i++)
    if (in_tree[i] && size_of(i) >= want && (best < 0 || size_of(i) < size_of(best))) best = i;
  return best; /* ties: lowest index = lowest address, found first */
}

static void visit(sm_fnode_t *n, void *arg) { (*(size_t *)arg)++; (void)n; }

int main(void) {
  srand(12345);
  sm_fnode_t *root = NULL;
  for (int i = 0; i < N; i++) blk(i)->head = (size_t)(64 + 16 * (rand() % 40)); /* many equal sizes */
  size_t count = 0;
  for (int step = 0; step < 20000; step++) {
    int op = rand() % 3;
    int i = rand() % N;
    if (op == 0 && !in_tree[i]) {
      sm_splay_insert(&root, node(i));
      in_tree[i] = true;
      count++;
    } else if (op == 1 && in_tree[i]) {
      sm_splay_remove(&root, node(i));
      in_tree[i] = false;
      count--;
    } else if (op == 2) {
      size_t want = (size_t)(32 + 16 * (rand() % 45));
      int expect = model_best(want);
      sm_fnode_t *got = sm_splay_take_best(&root, want);
      if (expect < 0) {
        CHECK_MSG(got == NULL, "step %d: want %zu, expected none", step, want);
      } else {
        CHECK_MSG(got == node(expect), "step %d: want %zu, expected block %d (size %zu)", step, want, expect,
                  size_of(expect));
        if (got) {
          int gi = (int)(((uint8_t *)got - SM_LB_HDR - arena) / STRIDE);
          in_tree[gi] = false;
          count--;
        }
      }
    }
    size_t c = sm_splay_check(root);
    CHECK_MSG(c == count, "step %d: checker says %zu nodes, model %zu", step, c, count);
    if (th_failed > 10) break;
  }
  size_t seen = 0;
  sm_splay_foreach(root, visit, &seen);
  CHECK(seen == count);
  /* The checker must notice a broken order. */
  if (root && (root->left || root->right)) {
    sm_fnode_t *child = root->left ? root->left : root->right;
    sm_fnode_t saved_l = *root;
    if (root->left) { root->left = NULL; root->right = child; } else { root->right = NULL; root->left = child; }
    CHECK(sm_splay_check(root) == (size_t)-1);
    root->left = saved_l.left;
    root->right = saved_l.right;
    CHECK(sm_splay_check(root) == count);
  }
  return test_summary();
}
