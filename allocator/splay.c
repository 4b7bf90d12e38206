/* Top-down splay tree (Sleator and Tarjan, "Self-adjusting binary search
 * trees", 1985), keyed by (size, address). See splay.h. */
#include "allocator/splay.h"

/* <0, 0, >0 as key (size, addr) is below, at, above node n. */
static int key_cmp(size_t size, uintptr_t addr, const sm_fnode_t *n) {
  size_t ns = sm_fnode_size(n);
  if (size != ns) return size < ns ? -1 : 1;
  if (addr != (uintptr_t)n) return addr < (uintptr_t)n ? -1 : 1;
  return 0;
}

/* Brings the node with the given key, or the last node on the search path
 * (its predecessor or successor), to the root and returns the new root. */
SM_RUNTIME static sm_fnode_t *splay(sm_fnode_t *t, size_t size, uintptr_t addr) {
  if (!t) return NULL;
  sm_fnode_t header = {0};
  sm_fnode_t *l = &header, *r = &header; /* right spine of the left tree, left spine of the right tree */
  for (;;) {
    int c = key_cmp(size, addr, t);
    if (c < 0) {
      if (!t->left) break;
      if (key_cmp(size, addr, t->left) < 0) { /* zig-zig: rotate right */
        sm_fnode_t *y = t->left;
        t->left = y->right;
        y->right = t;
        t = y;
        if (!t->left) break;
      }
      r->left = t; /* link right */
      r = t;
      t = t->left;
    } else if (c > 0) {
      if (!t->right) break;
      if (key_cmp(size, addr, t->right) > 0) { /* zag-zag: rotate left */
        sm_fnode_t *y = t->right;
        t->right = y->left;
        y->left = t;
        t = y;
        if (!t->right) break;
      }
      l->right = t; /* link left */
      l = t;
      t = t->right;
    } else {
      break;
    }
  }
  l->right = t->left; /* reassemble */
  r->left = t->right;
  t->left = header.right;
  t->right = header.left;
  return t;
}

void sm_splay_insert(sm_fnode_t **root, sm_fnode_t *n) {
  size_t size = sm_fnode_size(n);
  sm_fnode_t *t = splay(*root, size, (uintptr_t)n);
  sm_assert(t != n); /* n is in the tree already: a block freed twice */
  if (!t) {
    n->left = n->right = NULL;
  } else if (key_cmp(size, (uintptr_t)n, t) < 0) {
    n->left = t->left;
    n->right = t;
    t->left = NULL;
  } else {
    n->right = t->right;
    n->left = t;
    t->right = NULL;
  }
  *root = n;
}

/* Joins two trees where every key of l is below every key of r. */
static sm_fnode_t *join(sm_fnode_t *l, sm_fnode_t *r) {
  if (!l) return r;
  /* Splaying for a key above everything brings l's maximum to its root,
   * which then has no right child. */
  l = splay(l, ~(size_t)0, ~(uintptr_t)0);
  l->right = r;
  return l;
}

void sm_splay_remove(sm_fnode_t **root, sm_fnode_t *n) {
  sm_fnode_t *t = splay(*root, sm_fnode_size(n), (uintptr_t)n);
  /* t == n: the caller guarantees n is in the tree */
  sm_assert(t == n);
  *root = join(t->left, t->right);
}

sm_fnode_t *sm_splay_take_best(sm_fnode_t **root, size_t size) {
  /* (size, 0) is below every node of that size, so after the splay the root
   * is the predecessor or the successor of the key. */
  sm_fnode_t *t = splay(*root, size, 0);
  if (!t) return NULL;
  if (sm_fnode_size(t) < size) {
    if (!t->right) {
      *root = t;
      return NULL;
    }
    /* The successor is the minimum of the right subtree: splay it up
     * (it then has no left child) and make it the root. */
    sm_fnode_t *s = splay(t->right, size, 0);
    t->right = NULL;
    s->left = t;
    t = s;
  }
  *root = join(t->left, t->right);
  return t;
}

/* Morris in-order traversal: threads each predecessor's right link to its
 * successor for the walk and restores it on the way back. */
void sm_splay_foreach(sm_fnode_t *root, void (*fn)(sm_fnode_t *n, void *arg), void *arg) {
  sm_fnode_t *cur = root;
  while (cur) {
    if (!cur->left) {
      fn(cur, arg);
      cur = cur->right;
      continue;
    }
    sm_fnode_t *pre = cur->left;
    while (pre->right && pre->right != cur) pre = pre->right;
    if (!pre->right) {
      pre->right = cur;
      cur = cur->left;
    } else {
      pre->right = NULL;
      fn(cur, arg);
      cur = cur->right;
    }
  }
}

typedef struct check_state {
  const sm_fnode_t *prev;
  size_t count;
  bool bad;
} check_state_t;

static void check_one(sm_fnode_t *n, void *arg) {
  check_state_t *st = arg;
  if (st->prev && key_cmp(sm_fnode_size(st->prev), (uintptr_t)st->prev, n) >= 0) st->bad = true;
  st->prev = n;
  st->count++;
}

size_t sm_splay_check(sm_fnode_t *root) {
  check_state_t st = {NULL, 0, false};
  sm_splay_foreach(root, check_one, &st);
  return st.bad ? (size_t)-1 : st.count;
}
