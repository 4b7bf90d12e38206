/* Sampling at a sparse rate keeps tags off pool blocks (allocator/tag.c,
 * sm_tag_big_only): the sampler moves the pool block it picked to a large
 * block (sm_tag_relocate), tag setting refuses pool blocks, and the
 * untraced free, which such sampling keeps, hands a large or huge block's
 * tag to the tracer. Each is checked here against the allocator alone:
 * the move keeps the block's bytes when asked to (calloc, realloc), the
 * alignment it is asked for (memalign) and at least the pool block's
 * usable size (pvalloc promises a whole page), and frees the pool block;
 * blocks that are not pool blocks stay where they are; errno is kept. */
#include <errno.h>
#include <string.h>

#include "allocator/internal.h"
#include "tests/testhelper.h"

static int releases;
static uint32_t released_trace;
static size_t released_req;
static const void *released_p;

static void on_released(uint32_t trace, size_t req, const void *p) {
  releases++;
  released_trace = trace;
  released_req = req;
  released_p = p;
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(seed + i * 31);
}

static bool same(const unsigned char *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(seed + i * 31)) return false;
  return true;
}

static unsigned kind_of(const void *p) {
  sm_segment_t *seg = sm_segment_of(p);
  return seg ? seg->kind : 0u;
}

int main(void) {
  sm_init();
  sm_tag_released = on_released;
  sm_tag_big_only = true;

  /* Pool blocks of every kind of size move to large blocks with their
   * bytes; the pool block is freed (marked, its page kept by a neighbour). */
  size_t sizes[] = {0, 1, 8, 16, 24, 31, 32, 33, 48, 100, 129, 1000, 4096, 5000, 20000, 60000, SM_POOL_MAX};
  for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    void *keep = sm_malloc(n);
    unsigned char *p = sm_malloc(n);
    CHECK(keep != NULL && p != NULL);
    CHECK_MSG(kind_of(p) == SM_SEG_POOL, "%zu bytes: not a pool block", n);
    fill(p, n, i);
    size_t usable = sm_usable_size(p);
    errno = 4321;
    unsigned char *q = sm_tag_relocate(p, n, SM_MOVE_MALLOC | SM_MOVE_COPY);
    CHECK_MSG(errno == 4321, "%zu bytes: errno %d after the move", n, errno);
    CHECK_MSG(q != NULL && q != p, "%zu bytes: not moved", n);
    if (!q || q == p) continue;
    CHECK_MSG(kind_of(q) == SM_SEG_LARGE, "%zu bytes: moved to a kind-%u segment", n, kind_of(q));
    CHECK_MSG(same(q, n, i), "%zu bytes: the bytes changed in the move", n);
    CHECK_MSG(sm_usable_size(q) >= usable, "%zu bytes: %zu usable, the pool block %zu", n, sm_usable_size(q), usable);
    CHECK((uintptr_t)q % 16 == 0);
    CHECK_MSG(((sm_block_t *)p)->mark == sm_marks.local, "%zu bytes: the pool block was not freed", n);
    sm_free(q);
    sm_free(keep);
  }
  CHECK_MSG(releases == 0, "%d untagged blocks handed to the tracer", releases);

  /* Blocks from memalign keep the alignment their pool class gave them. */
  size_t aligns[] = {32, 64, 128, 256, 512, 1024, 4096};
  for (unsigned i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
    unsigned char *p = sm_memalign(aligns[i], 200);
    CHECK(p != NULL && (uintptr_t)p % aligns[i] == 0);
    if (!p || kind_of(p) != SM_SEG_POOL) continue;
    fill(p, 200, i);
    unsigned char *q = sm_tag_relocate(p, 200, SM_MOVE_ALIGN(aligns[i]));
    CHECK(q != NULL && q != p && kind_of(q) == SM_SEG_LARGE);
    CHECK_MSG(q && (uintptr_t)q % aligns[i] == 0, "align %zu: moved to %p", aligns[i], (void *)q);
    sm_free(q);
  }

  /* Large and huge blocks stay where they are. */
  void *large = sm_malloc(SM_POOL_MAX + 1), *huge = sm_malloc(64 * SM_MiB);
  CHECK(large && kind_of(large) == SM_SEG_LARGE && sm_tag_relocate(large, SM_POOL_MAX + 1, SM_MOVE_MALLOC) == large);
  CHECK(huge && kind_of(huge) == SM_SEG_HUGE && sm_tag_relocate(huge, 64 * SM_MiB, SM_MOVE_MALLOC) == huge);

  /* A pool block takes no tag; a moved one does, and its untraced free
   * hands the tag over after the block is freed. */
  void *p = sm_malloc(40);
  CHECK(!sm_tag_set(p, 7, 40));
  size_t req = 0;
  CHECK(sm_tag_take(p, &req) == 0);
  void *q = sm_tag_relocate(p, 40, SM_MOVE_MALLOC);
  CHECK(q != NULL && sm_tag_set(q, 7, 40));
  sm_free(q);
  CHECK_MSG(releases == 1 && released_trace == 7 && released_req == 40 && released_p == q,
            "the free of a tagged moved block: %d releases, last trace %u of %zu bytes at %p", releases,
            released_trace, released_req, released_p);
  CHECK(sm_tag_set(huge, 9, 64 * SM_MiB));
  sm_free(huge);
  CHECK_MSG(releases == 2 && released_trace == 9 && released_req == 64 * SM_MiB && released_p == huge,
            "the free of a tagged huge block: %d releases, last trace %u", releases, released_trace);
  sm_free(large); /* untagged: nothing to hand over */
  CHECK(releases == 2);
  return test_summary();
}
