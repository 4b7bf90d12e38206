/* The reader and the format versions (issue 14):
 * - a version-1 file (tests/tracer/data/phases-v1.snap, written by the
 *   version-1 writer from examples/phases 2000) still reads, without flow
 *   figures, with its known totals;
 * - a version-2 file (tests/tracer/data/phases-v2.snap, written by the
 *   version-2 writer from examples/phases 2000 with leaks=1) reads with its
 *   known totals, flow and leaks; the same file with a FLOW section that
 *   disagrees with TRACES (a record for another trace, a record missing) is
 *   refused with one line;
 * - a version-3 file from this writer reads, and the same file with an
 *   unknown version is refused with one line (tests/cli/snapv3.py plants
 *   defects in version 3's own parts). */
#include <fcntl.h>
#include <sys/stat.h>

#include "tests/tracer/snaptest.h"

static void check_v1(const char *path) {
  sm_snap_t s;
  snaptest_read(path, &s);
  CHECK_EQ_U(s.version, 1);
  CHECK(!s.has_flow);
  CHECK_EQ_U(s.peak_rss, 0);
  CHECK_EQ_U(s.flags, SM_SNAP_FINAL | SM_SNAP_LEAKS);
  CHECK_EQ_U(s.traced_current, 474336);
  CHECK_EQ_U(s.traced_peak, 478432);
  CHECK_EQ_U(s.ntraces, 6);
  uint64_t size = 0, count = 0, v2 = 0;
  for (size_t i = 0; i < s.ntraces; i++) {
    const sm_snap_trace_t *t = &s.traces[i];
    size += t->size, count += t->count;
    v2 |= t->peak_size | t->peak_count | t->allocations | t->allocated | t->temporary;
  }
  CHECK_EQ_U(size, 474336);
  CHECK_EQ_U(count, 6003); /* 2000 records, their names, their index entries, 3 arrays */
  CHECK_EQ_U(v2, 0);
  sm_snap_free(&s);
}

static uint8_t *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  static uint8_t buf[1 << 20];
  *len = fread(buf, 1, sizeof buf, f);
  fclose(f);
  return buf;
}

/* The FLOW section's header in a snapshot's bytes (NULL: none). */
static uint8_t *flow_section(uint8_t *data, size_t len) {
  size_t off = SM_SNAP_HEADER_SIZE;
  while (off + 16 <= len) {
    uint32_t tag;
    uint64_t bytes;
    memcpy(&tag, data + off, 4);
    memcpy(&bytes, data + off + 8, 8);
    if (tag == SM_SNAP_SEC_FLOW) return data + off;
    off += 16 + bytes;
  }
  return NULL;
}

static void reseal(uint8_t *data, size_t len) {
  uint32_t crc = sm_crc32(0, data + SM_SNAP_HEADER_SIZE, len - SM_SNAP_HEADER_SIZE);
  memcpy(data + 24, &crc, 4);
}

/* Parses the bytes; must fail with one line that contains `what`. */
static void refused(const uint8_t *data, size_t len, const char *what) {
  sm_snap_t s;
  char err[256] = "";
  int rc = sm_snap_parse(data, len, &s, err, sizeof err);
  CHECK_MSG(rc != 0 && strstr(err, what) && !strchr(err, '\n'), "rc %d, message \"%s\"", rc, err);
}

/* The figures of examples/phases 2000 in the version-2 file: as in version
 * 1, plus flow, the peak, and the cache that main never frees. */
static void check_v2(const char *path) {
  sm_snap_t s;
  snaptest_read(path, &s);
  CHECK_EQ_U(s.version, 2);
  CHECK(s.has_flow);
  CHECK(s.peak_rss >= s.rss && s.rss > 0);
  CHECK_EQ_U(s.flags, SM_SNAP_FINAL | SM_SNAP_LEAKS);
  CHECK_EQ_U(s.traced_current, 474336);
  CHECK_EQ_U(s.traced_peak, 478432);
  uint64_t size = 0, count = 0, peak = 0, allocs = 0, lost = 0;
  for (size_t i = 0; i < s.ntraces; i++) {
    const sm_snap_trace_t *t = &s.traces[i];
    size += t->size, count += t->count, peak += t->peak_size, allocs += t->allocations;
    lost += t->leak[SM_LEAK_DEFINITE][0];
  }
  CHECK_EQ_U(size, 474336);
  CHECK_EQ_U(count, 6003);
  CHECK_EQ_U(peak, 478432);
  CHECK(allocs >= count);
  CHECK(lost >= 256 * 1024); /* the cache of phase 3 */
  sm_snap_free(&s);
}

/* The bytes of path, which must read as a snapshot of that version with
 * flow figures (NULL otherwise); *ntraces gets its number of traces. */
static uint8_t *load(const char *path, uint32_t version, size_t *len, size_t *ntraces) {
  uint8_t *data = slurp(path, len);
  CHECK(data && *len > SM_SNAP_HEADER_SIZE);
  if (!data) return NULL;
  sm_snap_t s;
  char err[256];
  int rc = sm_snap_parse(data, *len, &s, err, sizeof err);
  CHECK_MSG(rc == 0 && s.version == version && s.has_flow, "%s: %s", path, rc ? err : "another version");
  if (rc != 0) return NULL;
  *ntraces = s.ntraces;
  sm_snap_free(&s);
  return data;
}

static void check_v2_refusals(const char *path) {
  size_t len = 0, ntraces = 0;
  uint8_t *data = load(path, 2, &len, &ntraces);
  if (!data) return;
  static uint8_t copy[1 << 20];
  uint8_t *flow = flow_section(data, len);
  CHECK(flow != NULL && ntraces > 1);
  if (!flow) return;

  memcpy(copy, data, len); /* the first record names another trace */
  uint8_t *rec = copy + (flow - data) + 16;
  uint32_t id;
  memcpy(&id, rec, 4);
  id += 1;
  memcpy(rec, &id, 4);
  reseal(copy, len);
  refused(copy, len, "corrupt FLOW section (record for trace");

  memcpy(copy, data, len); /* one record fewer than TRACES has traces */
  uint32_t count;
  memcpy(&count, copy + (flow - data) + 4, 4);
  count -= 1;
  memcpy(copy + (flow - data) + 4, &count, 4);
  reseal(copy, len);
  refused(copy, len, "corrupt FLOW section (");
}

/* This writer's file is version 3; a version after it is refused. */
static void check_v3(const char *path) {
  size_t len = 0, ntraces = 0;
  uint8_t *data = load(path, 3, &len, &ntraces);
  if (!data) return;
  static uint8_t copy[1 << 20];
  memcpy(copy, data, len); /* a version this reader does not know */
  uint32_t v = SM_SNAP_VERSION_MAX + 1;
  memcpy(copy + 8, &v, 4);
  refused(copy, len, "written by a newer snapmalloc");
}

void *keep[2];
__attribute__((noinline)) void two_sites(void) {
  keep[0] = malloc(100);
  keep[1] = calloc(1, 200);
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: tracer_compat OUT.snap V1.snap V2.snap\n");
    return 2;
  }
  check_v1(argv[2]);
  check_v2(argv[3]);
  check_v2_refusals(argv[3]);
  if (!snaptest_tracing()) TEST_SKIP("needs LD_PRELOAD=libsnapmalloc.so with trace=1");
  two_sites();
  CHECK(snapmalloc_snapshot(argv[1]) == 0);
  check_v3(argv[1]);
  return test_summary();
}
