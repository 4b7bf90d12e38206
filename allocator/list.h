/* Intrusive doubly linked lists, the one implementation the allocator's
 * lists share: pages in a heap's avail and full lists, segments in their
 * heap's list, an arena's chunks, the segment registry and the abandoned
 * segments, the registry of heaps.
 *
 * A list is a head {first, last}; a node holds its two links in fields the
 * caller names (`next, prev` for pages and segments, `all_next, all_prev`
 * for the segment registry, ...), so one node can sit on several lists
 * through several pairs of links. A removed node's links are cleared. No
 * list is thread-safe by itself: each is owned by one thread or one lock,
 * said where its head is declared. Macros rather than functions, because
 * the node types differ and the pool's lists are on the hot path's edges. */
#ifndef SM_ALLOCATOR_LIST_H
#define SM_ALLOCATOR_LIST_H

#include <stddef.h>

#define SM_LIST_HEAD(type) \
  struct {                 \
    type *first, *last;    \
  }

#define sm_list_push_front(l, n, next, prev) \
  do {                                       \
    (n)->prev = NULL;                        \
    (n)->next = (l)->first;                  \
    if ((l)->first) (l)->first->prev = (n);  \
    else (l)->last = (n);                    \
    (l)->first = (n);                        \
  } while (0)

#define sm_list_push_back(l, n, next, prev) \
  do {                                      \
    (n)->next = NULL;                       \
    (n)->prev = (l)->last;                  \
    if ((l)->last) (l)->last->next = (n);   \
    else (l)->first = (n);                  \
    (l)->last = (n);                        \
  } while (0)

#define sm_list_remove(l, n, next, prev)          \
  do {                                            \
    if ((n)->prev) (n)->prev->next = (n)->next;   \
    else (l)->first = (n)->next;                  \
    if ((n)->next) (n)->next->prev = (n)->prev;   \
    else (l)->last = (n)->prev;                   \
    (n)->next = (n)->prev = NULL;                 \
  } while (0)

#endif
