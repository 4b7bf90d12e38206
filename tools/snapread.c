/* Snapshot reader and validator (format in tracer/snapfmt.h). A cursor over
 * the payload refuses to read past the end of the current section, so a
 * corrupt length can never make us read out of bounds or allocate wildly:
 * counts are checked against the bytes that could hold them before any
 * allocation. */
#include "tools/snapread.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tools/util.h"

typedef struct cursor {
  const uint8_t *p, *end;
  bool bad;
} cursor_t;

static bool need(cursor_t *c, size_t n) {
  if (c->bad || (size_t)(c->end - c->p) < n) {
    c->bad = true;
    return false;
  }
  return true;
}
static uint64_t get_u64(cursor_t *c) {
  uint64_t v = 0;
  if (need(c, 8)) memcpy(&v, c->p, 8), c->p += 8;
  return v;
}
static uint32_t get_u32(cursor_t *c) {
  uint32_t v = 0;
  if (need(c, 4)) memcpy(&v, c->p, 4), c->p += 4;
  return v;
}
static uint16_t get_u16(cursor_t *c) {
  uint16_t v = 0;
  if (need(c, 2)) memcpy(&v, c->p, 2), c->p += 2;
  return v;
}
/* An unsigned LEB128 number (version 3); a tenth byte above 1, or an
 * eleventh, would pass 64 bits: bad. */
static uint64_t get_varint(cursor_t *c) {
  uint64_t v = 0;
  for (unsigned shift = 0; shift < 7 * SM_SNAP_VARINT_MAX; shift += 7) {
    if (!need(c, 1)) return 0;
    uint8_t byte = *c->p++;
    if (shift == 63 && byte > 1) break;
    v |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return v;
  }
  c->bad = true;
  return 0;
}
static const uint8_t *get_bytes(cursor_t *c, size_t n) {
  if (!need(c, n)) return NULL;
  const uint8_t *r = c->p;
  c->p += n;
  return r;
}

static char *dup_bytes(const uint8_t *p, size_t n) {
  char *s = xmalloc(n + 1);
  if (n) memcpy(s, p, n);
  s[n] = '\0';
  return s;
}

static int fail(char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return -1;
}

static const char *get_str(cursor_t *c, size_t *len) {
  uint32_t n = get_u32(c);
  const uint8_t *b = get_bytes(c, n);
  *len = n;
  return (const char *)b;
}

static int parse_info(cursor_t *c, sm_snap_t *s, char *err, size_t errlen) {
  s->pid = get_u64(c);
  s->time_ns = get_u64(c);
  s->traced_current = get_u64(c);
  s->traced_peak = get_u64(c);
  s->rss = get_u64(c);
  s->heap_mapped = get_u64(c);
  s->heap_inuse = get_u64(c);
  s->meta_mapped = get_u64(c);
  s->sequence = get_u64(c);
  s->sample_bytes = get_u64(c);
  s->depth = get_u32(c);
  s->flags = get_u32(c);
  if (s->version >= 2) s->peak_rss = get_u64(c);
  size_t n;
  const char *str = get_str(c, &n);
  if (c->bad) return fail(err, errlen, "corrupt INFO section (fields run past its end)");
  if (n > SM_SNAP_MAX_PATH)
    return fail(err, errlen, "corrupt INFO section (program path of %zu bytes, at most %u)", n, SM_SNAP_MAX_PATH);
  s->program = dup_bytes((const uint8_t *)str, n);
  str = get_str(c, &n);
  if (c->bad) return fail(err, errlen, "corrupt INFO section (command line runs past its end)");
  s->cmdline = dup_bytes((const uint8_t *)str, n);
  s->cmdline_len = n;
  str = get_str(c, &n);
  if (c->bad) return fail(err, errlen, "corrupt INFO section (options run past its end)");
  s->options = dup_bytes((const uint8_t *)str, n);
  if (s->depth < 1 || s->depth > SM_SNAP_MAX_FRAMES)
    return fail(err, errlen, "corrupt INFO section (depth %u outside 1..%u)", s->depth, SM_SNAP_MAX_FRAMES);
  return 0;
}

static int parse_modules(cursor_t *c, uint32_t count, sm_snap_t *s, char *err, size_t errlen) {
  if (count > SM_SNAP_MAX_MODULES)
    return fail(err, errlen, "too many modules (%u; this tool reads at most %u)", count, SM_SNAP_MAX_MODULES);
  if ((size_t)(c->end - c->p) / SM_SNAP_MODULE_FIXED < count)
    return fail(err, errlen, "corrupt MODULES section (%u modules cannot fit in %zu bytes)", count,
                (size_t)(c->end - c->p));
  s->modules = xcalloc(count, sizeof *s->modules);
  s->nmodules = count;
  for (uint32_t i = 0; i < count; i++) {
    sm_snap_module_t *m = &s->modules[i];
    m->bias = get_u64(c);
    m->start = get_u64(c);
    m->end = get_u64(c);
    uint32_t plen = get_u32(c);
    uint32_t blen = get_u32(c);
    const uint8_t *path = get_bytes(c, plen);
    const uint8_t *bid = get_bytes(c, blen);
    if (c->bad) return fail(err, errlen, "corrupt MODULES section (module %u runs past its end)", i);
    if (blen > 64) return fail(err, errlen, "corrupt MODULES section (module %u has a %u-byte build-id)", i, blen);
    if (plen > SM_SNAP_MAX_PATH)
      return fail(err, errlen, "corrupt MODULES section (module %u has a path of %u bytes, at most %u)", i, plen,
                  SM_SNAP_MAX_PATH);
    if (memchr(path, '\0', plen)) return fail(err, errlen, "corrupt MODULES section (module %u path has a NUL byte)", i);
    m->path = dup_bytes(path, plen);
    m->build_id = (uint8_t *)bid;
    m->build_id_len = blen;
  }
  return 0;
}

/* Adds v to *sum; false when the total would pass SM_SNAP_MAX_TOTAL. */
static bool add_total(uint64_t *sum, uint64_t v) {
  if (v > SM_SNAP_MAX_TOTAL - *sum) return false;
  *sum += v;
  return true;
}

/* Live bytes and blocks, and each leak class's, summed over every trace
 * must stay below 2^63 (no process holds that much): so sums and
 * differences of them never overflow anywhere in the tool. */
static bool totals_fit(const sm_snap_trace_t *t, uint64_t sums[2 + 2 * SM_LEAK_CLASSES]) {
  bool ok = add_total(&sums[0], t->size) && add_total(&sums[1], t->count);
  for (int k = 0; ok && k < SM_LEAK_CLASSES; k++)
    ok = add_total(&sums[2 + 2 * k], t->leak[k][0]) && add_total(&sums[3 + 2 * k], t->leak[k][1]);
  return ok;
}

static int parse_traces(cursor_t *c, uint32_t count, sm_snap_t *s, char *err, size_t errlen) {
  if (count > SM_SNAP_MAX_TRACES)
    return fail(err, errlen, "too many traces (%u; this tool reads at most %u)", count, SM_SNAP_MAX_TRACES);
  uint64_t sums[2 + 2 * SM_LEAK_CLASSES] = {0};
  if ((size_t)(c->end - c->p) / SM_SNAP_TRACE_FIXED < count)
    return fail(err, errlen, "corrupt TRACES section (%u traces cannot fit in %zu bytes)", count,
                (size_t)(c->end - c->p));
  s->traces = xcalloc(count, sizeof *s->traces);
  s->ntraces = count;
  for (uint32_t i = 0; i < count; i++) {
    sm_snap_trace_t *t = &s->traces[i];
    t->id = get_u32(c);
    t->nframes = get_u16(c);
    t->flags = get_u16(c);
    t->size = get_u64(c);
    t->count = get_u64(c);
    for (int k = 0; k < SM_LEAK_CLASSES; k++) {
      t->leak[k][0] = get_u64(c);
      t->leak[k][1] = get_u64(c);
    }
    if (c->bad) return fail(err, errlen, "corrupt TRACES section (trace %u runs past its end)", i);
    if (t->nframes > SM_SNAP_MAX_FRAMES)
      return fail(err, errlen, "corrupt TRACES section (trace %u has %u frames, at most %u allowed)", i, t->nframes,
                  SM_SNAP_MAX_FRAMES);
    if (!need(c, (size_t)t->nframes * SM_SNAP_FRAME_SIZE))
      return fail(err, errlen, "corrupt TRACES section (frames of trace %u run past its end)", i);
    t->frames = xcalloc(t->nframes, sizeof *t->frames);
    for (unsigned f = 0; f < t->nframes; f++) {
      t->frames[f].module = get_u32(c);
      t->frames[f].offset = get_u64(c);
      if (t->frames[f].module != SM_SNAP_NO_MODULE && t->frames[f].module >= s->nmodules)
        return fail(err, errlen, "corrupt TRACES section (trace %u names module %u of %u)", i, t->frames[f].module,
                    s->nmodules);
    }
    if (t->count == 0 && t->size != 0 && !(s->flags & SM_SNAP_LEAKS))
      return fail(err, errlen, "corrupt TRACES section (trace %u has %llu bytes in 0 blocks)", i,
                  (unsigned long long)t->size);
    if (!totals_fit(t, sums))
      return fail(err, errlen, "corrupt TRACES section (sizes or counts up to trace %u add up to 2^63 or more)", i);
  }
  return 0;
}

/* FLOW (version 2): one record per trace of nonzero id, in TRACES' order. */
static int parse_flow(cursor_t *c, uint32_t count, sm_snap_t *s, char *err, size_t errlen) {
  size_t want = 0;
  for (size_t i = 0; i < s->ntraces; i++) want += s->traces[i].id != 0;
  if (count != want)
    return fail(err, errlen, "corrupt FLOW section (%u records for %zu traces)", count, want);
  if ((size_t)(c->end - c->p) / SM_SNAP_FLOW_SIZE < count)
    return fail(err, errlen, "corrupt FLOW section (%u records cannot fit in %zu bytes)", count,
                (size_t)(c->end - c->p));
  uint64_t sums[5] = {0};
  for (size_t i = 0; i < s->ntraces; i++) {
    sm_snap_trace_t *t = &s->traces[i];
    if (t->id == 0) continue;
    uint32_t id = get_u32(c);
    uint32_t zero = get_u32(c);
    t->peak_size = get_u64(c);
    t->peak_count = get_u64(c);
    t->allocations = get_u64(c);
    t->allocated = get_u64(c);
    t->temporary = get_u64(c);
    if (id != t->id || zero != 0)
      return fail(err, errlen, "corrupt FLOW section (record for trace %u where trace %u was expected)", id, t->id);
    if (!add_total(&sums[0], t->peak_size) || !add_total(&sums[1], t->peak_count) ||
        !add_total(&sums[2], t->allocations) || !add_total(&sums[3], t->allocated) ||
        !add_total(&sums[4], t->temporary))
      return fail(err, errlen, "corrupt FLOW section (figures up to trace %u add up to 2^63 or more)", id);
  }
  s->has_flow = true;
  return 0;
}

/* A PYFRAMES string: at most max bytes, none of them NUL; NULL when bad. */
static char *get_pystr(cursor_t *c, uint32_t len, uint32_t max, bool empty_ok) {
  const uint8_t *b = get_bytes(c, len);
  if (!b || len > max || (!len && !empty_ok) || memchr(b, '\0', len)) return NULL;
  return dup_bytes(b, len);
}

/* PYFRAMES (version 3): the interpreter's module, then the Python frames
 * FRAMES names. */
static int parse_pyframes(cursor_t *c, uint32_t count, sm_snap_t *s, char *err, size_t errlen) {
  if (count == 0 || count > SM_SNAP_MAX_PYFRAMES)
    return fail(err, errlen, "corrupt PYFRAMES section (%u frames; 1 to %u allowed)", count, SM_SNAP_MAX_PYFRAMES);
  if ((size_t)(c->end - c->p) < SM_SNAP_PYFRAMES_FIXED ||
      (size_t)(c->end - c->p - SM_SNAP_PYFRAMES_FIXED) / SM_SNAP_PYFRAME_FIXED < count)
    return fail(err, errlen, "corrupt PYFRAMES section (%u frames cannot fit in %zu bytes)", count,
                (size_t)(c->end - c->p));
  s->py_module = get_u32(c);
  s->py_version = get_u32(c);
  if (s->py_module != SM_SNAP_NO_MODULE && s->py_module >= s->nmodules)
    return fail(err, errlen, "corrupt PYFRAMES section (the interpreter is module %u of %u)", s->py_module,
                s->nmodules);
  s->pyframes = xcalloc(count, sizeof *s->pyframes);
  s->npyframes = count;
  for (uint32_t i = 0; i < count; i++) {
    sm_snap_pyframe_t *f = &s->pyframes[i];
    f->line = get_u32(c);
    uint32_t flen = get_u32(c), nlen = get_u32(c);
    if (c->bad) return fail(err, errlen, "corrupt PYFRAMES section (frame %u runs past its end)", i);
    if (f->line > INT32_MAX) return fail(err, errlen, "corrupt PYFRAMES section (frame %u at line %u)", i, f->line);
    if (!(f->file = get_pystr(c, flen, SM_SNAP_PY_FILE_MAX, false)))
      return fail(err, errlen, "corrupt PYFRAMES section (frame %u: a file name of %u bytes, empty, past the end or "
                  "with a NUL; 1 to %u bytes allowed)", i, flen, SM_SNAP_PY_FILE_MAX);
    if (!(f->function = get_pystr(c, nlen, SM_SNAP_PY_NAME_MAX, true)))
      return fail(err, errlen, "corrupt PYFRAMES section (frame %u: a function name of %u bytes, past the end or "
                  "with a NUL; at most %u bytes allowed)", i, nlen, SM_SNAP_PY_NAME_MAX);
  }
  return 0;
}

/* FRAMES (version 3): the frames the traces name by index. */
static int parse_frames(cursor_t *c, uint32_t count, sm_snap_t *s, char *err, size_t errlen) {
  if ((size_t)(c->end - c->p) / SM_SNAP_FRAME_SIZE < count)
    return fail(err, errlen, "corrupt FRAMES section (%u frames cannot fit in %zu bytes)", count,
                (size_t)(c->end - c->p));
  s->frames_ = xcalloc(count ? count : 1, sizeof *s->frames_);
  s->nframes_ = count;
  for (uint32_t i = 0; i < count; i++) {
    s->frames_[i].module = get_u32(c);
    s->frames_[i].offset = get_u64(c);
    if (s->frames_[i].module == SM_SNAP_PY_MODULE) {
      if (s->frames_[i].offset >= s->npyframes)
        return fail(err, errlen, "corrupt FRAMES section (frame %u names Python frame %llu of %u)", i,
                    (unsigned long long)s->frames_[i].offset, s->npyframes);
    } else if (s->frames_[i].module != SM_SNAP_NO_MODULE && s->frames_[i].module >= s->nmodules) {
      return fail(err, errlen, "corrupt FRAMES section (frame %u names module %u of %u)", i, s->frames_[i].module,
                  s->nmodules);
    }
  }
  return 0;
}

/* One version-3 TRACES record after its id: counts, figures and frames. */
static int parse_trace_v3(cursor_t *c, uint32_t i, sm_snap_trace_t *t, const sm_snap_t *s, char *err, size_t errlen) {
  uint64_t nframes = get_varint(c), flags = get_varint(c);
  t->size = get_varint(c);
  t->count = get_varint(c);
  t->peak_size = get_varint(c);
  t->peak_count = get_varint(c);
  t->allocations = get_varint(c);
  t->allocated = get_varint(c);
  t->temporary = get_varint(c);
  if (c->bad) return fail(err, errlen, "corrupt TRACES section (trace %u runs past its end or a number past 64 bits)", i);
  if (nframes > SM_SNAP_MAX_FRAMES)
    return fail(err, errlen, "corrupt TRACES section (trace %u has %llu frames, at most %u allowed)", i,
                (unsigned long long)nframes, SM_SNAP_MAX_FRAMES);
  if (flags > UINT16_MAX)
    return fail(err, errlen, "corrupt TRACES section (trace %u has flags %llu)", i, (unsigned long long)flags);
  t->nframes = (uint16_t)nframes;
  t->flags = (uint16_t)flags;
  t->frames = xcalloc(t->nframes ? t->nframes : 1, sizeof *t->frames);
  for (unsigned f = 0; f < t->nframes; f++) {
    uint64_t k = get_varint(c);
    if (c->bad) return fail(err, errlen, "corrupt TRACES section (frames of trace %u run past its end)", i);
    if (k >= s->nframes_)
      return fail(err, errlen, "corrupt TRACES section (trace %u names frame %llu of %u)", i, (unsigned long long)k,
                  s->nframes_);
    t->frames[f] = s->frames_[k];
  }
  if ((t->count == 0 && t->size != 0) || (t->peak_count == 0 && t->peak_size != 0))
    return fail(err, errlen, "corrupt TRACES section (trace %u has bytes in 0 blocks)", i);
  return 0;
}

/* TRACES (version 3): varint records, ids rising from 1. */
static int parse_traces_v3(cursor_t *c, uint32_t count, sm_snap_t *s, char *err, size_t errlen) {
  if (count > SM_SNAP_MAX_TRACES)
    return fail(err, errlen, "too many traces (%u; this tool reads at most %u)", count, SM_SNAP_MAX_TRACES);
  if ((size_t)(c->end - c->p) / SM_SNAP_TRACE_MIN_V3 < count)
    return fail(err, errlen, "corrupt TRACES section (%u traces cannot fit in %zu bytes)", count,
                (size_t)(c->end - c->p));
  s->traces = xcalloc(count ? count : 1, sizeof *s->traces);
  s->ntraces = count;
  uint64_t sums[7] = {0}, id = 0;
  for (uint32_t i = 0; i < count; i++) {
    sm_snap_trace_t *t = &s->traces[i];
    uint64_t step = get_varint(c);
    if (!c->bad && (step == 0 || step > UINT32_MAX - id))
      return fail(err, errlen, "corrupt TRACES section (trace %u: ids must rise, from 1 to 2^32-1)", i);
    t->id = (uint32_t)(id += step);
    if (parse_trace_v3(c, i, t, s, err, errlen) != 0) return -1;
    uint64_t v[7] = {t->size, t->count, t->peak_size, t->peak_count, t->allocations, t->allocated, t->temporary};
    for (int k = 0; k < 7; k++)
      if (!add_total(&sums[k], v[k]))
        return fail(err, errlen, "corrupt TRACES section (sizes, counts or flow up to trace %u add up to 2^63 or more)",
                    i);
  }
  s->has_flow = true;
  return 0;
}

static int by_id(const void *key, const void *elem) {
  uint32_t id = *(const uint32_t *)key, other = ((const sm_snap_trace_t *)elem)->id;
  return id < other ? -1 : id > other;
}

/* LEAKS (version 3): leak classes of the traces that leaked, by rising id;
 * id 0 (blocks without a trace) becomes a record of its own with no frames
 * and nothing live, appended to the traces, as version 2 had it. */
static int parse_leaks_v3(cursor_t *c, uint32_t count, sm_snap_t *s, char *err, size_t errlen) {
  if ((size_t)(c->end - c->p) / SM_SNAP_LEAK_MIN_V3 < count)
    return fail(err, errlen, "corrupt LEAKS section (%u records cannot fit in %zu bytes)", count,
                (size_t)(c->end - c->p));
  uint64_t sums[2 * SM_LEAK_CLASSES] = {0}, prev = 0;
  size_t sorted = s->ntraces; /* TRACES' records; an id-0 record goes after them */
  for (uint32_t i = 0; i < count; i++) {
    uint64_t id = get_varint(c), leak[SM_LEAK_CLASSES][2], any = 0;
    for (int k = 0; k < SM_LEAK_CLASSES; k++) {
      leak[k][0] = get_varint(c);
      leak[k][1] = get_varint(c);
      any |= leak[k][0] | leak[k][1];
    }
    if (c->bad) return fail(err, errlen, "corrupt LEAKS section (record %u runs past its end or a number past 64 bits)", i);
    if ((i > 0 && id <= prev) || id > UINT32_MAX)
      return fail(err, errlen, "corrupt LEAKS section (record %u: ids must rise)", i);
    if (!any) return fail(err, errlen, "corrupt LEAKS section (record %u leaked nothing)", i);
    prev = id;
    sm_snap_trace_t *t;
    if (id == 0) {
      s->traces = xrealloc(s->traces, (s->ntraces + 1) * sizeof *s->traces);
      t = &s->traces[s->ntraces++];
      memset(t, 0, sizeof *t);
      t->frames = xcalloc(1, sizeof *t->frames);
    } else {
      uint32_t key = (uint32_t)id;
      t = bsearch(&key, s->traces, sorted, sizeof *s->traces, by_id);
      if (!t) return fail(err, errlen, "corrupt LEAKS section (record for trace %u, which TRACES does not have)", key);
    }
    memcpy(t->leak, leak, sizeof leak);
    for (int k = 0; k < 2 * SM_LEAK_CLASSES; k++)
      if (!add_total(&sums[k], leak[k / 2][k % 2]))
        return fail(err, errlen, "corrupt LEAKS section (leaks up to record %u add up to 2^63 or more)", i);
  }
  return 0;
}

/* Checks the file header (magic, version, size, checksum); 0 with the
 * payload's length in *payload and the version in *versionp, or the failure. */
static int check_header(const uint8_t *data, size_t len, uint64_t *payloadp, uint32_t *versionp, char *err,
                        size_t errlen) {
  if (len < SM_SNAP_HEADER_SIZE)
    return fail(err, errlen, "not a snapmalloc snapshot (only %zu bytes)", len);
  if (memcmp(data, SM_SNAP_MAGIC, 8) != 0) return fail(err, errlen, "not a snapmalloc snapshot (bad magic)");
  cursor_t h = {data + 8, data + SM_SNAP_HEADER_SIZE, false};
  uint32_t version = get_u32(&h);
  uint32_t hdrsize = get_u32(&h);
  uint64_t payload = get_u64(&h);
  uint32_t crc = get_u32(&h);
  if (version > SM_SNAP_VERSION_MAX)
    return fail(err, errlen, "written by a newer snapmalloc (format version %u; this tool reads up to %u)", version,
                SM_SNAP_VERSION_MAX);
  if (version < SM_SNAP_VERSION_MIN) return fail(err, errlen, "corrupt header (format version %u)", version);
  if (hdrsize != SM_SNAP_HEADER_SIZE) return fail(err, errlen, "corrupt header (header size %u)", hdrsize);
  if (payload > len - SM_SNAP_HEADER_SIZE)
    return fail(err, errlen, "truncated (header promises %llu bytes of data, the file has %zu)",
                (unsigned long long)payload, len - SM_SNAP_HEADER_SIZE);
  if (payload < len - SM_SNAP_HEADER_SIZE)
    return fail(err, errlen, "corrupt (%zu unexpected bytes after the data)", (size_t)(len - SM_SNAP_HEADER_SIZE - payload));
  if (sm_crc32(0, data + SM_SNAP_HEADER_SIZE, payload) != crc) return fail(err, errlen, "corrupt (checksum mismatch)");
  *payloadp = payload;
  *versionp = version;
  return 0;
}


/* The sections each version must have, in the order they must come. */
static const uint32_t order_v1[] = {SM_SNAP_SEC_INFO, SM_SNAP_SEC_MODULES, SM_SNAP_SEC_TRACES};
static const uint32_t order_v2[] = {SM_SNAP_SEC_INFO, SM_SNAP_SEC_MODULES, SM_SNAP_SEC_TRACES, SM_SNAP_SEC_FLOW};
static const uint32_t order_v3[] = {SM_SNAP_SEC_INFO,   SM_SNAP_SEC_MODULES, SM_SNAP_SEC_PYFRAMES,
                                    SM_SNAP_SEC_FRAMES, SM_SNAP_SEC_TRACES,  SM_SNAP_SEC_LEAKS};
static const char *const section_names[] = {"", "INFO", "MODULES", "TRACES", "FLOW", "FRAMES", "LEAKS", "PYFRAMES"};
#define SECTION_TAGS 8

/* One known section's body; 1 for a section this version does not have
 * (skipped, as unknown tags are). */
static int parse_section(uint32_t tag, cursor_t *sec, uint32_t count, sm_snap_t *s, char *err, size_t errlen) {
  switch (tag) {
  case SM_SNAP_SEC_INFO:
    if (count != 1) return fail(err, errlen, "corrupt INFO section (count %u)", count);
    return parse_info(sec, s, err, errlen);
  case SM_SNAP_SEC_MODULES: return parse_modules(sec, count, s, err, errlen);
  case SM_SNAP_SEC_TRACES:
    return s->version >= 3 ? parse_traces_v3(sec, count, s, err, errlen) : parse_traces(sec, count, s, err, errlen);
  case SM_SNAP_SEC_FLOW: return s->version == 2 ? parse_flow(sec, count, s, err, errlen) : 1;
  case SM_SNAP_SEC_FRAMES: return s->version >= 3 ? parse_frames(sec, count, s, err, errlen) : 1;
  case SM_SNAP_SEC_LEAKS: return s->version >= 3 ? parse_leaks_v3(sec, count, s, err, errlen) : 1;
  case SM_SNAP_SEC_PYFRAMES: return s->version >= 3 ? parse_pyframes(sec, count, s, err, errlen) : 1;
  default: return 1;
  }
}

/* Reads the sections of the payload into s (freed on failure). Each known
 * section comes once, after the ones before it in its version's order. */
static int parse_sections(const uint8_t *body, uint64_t payload, sm_snap_t *s, char *err, size_t errlen) {
  const uint32_t *order = s->version >= 3 ? order_v3 : s->version == 2 ? order_v2 : order_v1;
  size_t norder = s->version >= 3 ? 6 : s->version == 2 ? 4 : 3;
  cursor_t c = {body, body + payload, false};
  size_t next = 0; /* order[next] is the next section due */
  int rc = 0;
  while (c.p < c.end && rc == 0) {
    uint32_t tag = get_u32(&c);
    uint32_t count = get_u32(&c);
    uint64_t bytes = get_u64(&c);
    if (c.bad || bytes > (uint64_t)(c.end - c.p)) {
      rc = fail(err, errlen, "corrupt (a section runs past the end of the file)");
      break;
    }
    cursor_t sec = {c.p, c.p + bytes, false};
    c.p += bytes;
    size_t at = 0;
    while (at < norder && order[at] != tag) at++;
    if (at < norder && at < next) {
      rc = fail(err, errlen, "corrupt (section %s out of place)", section_names[tag]);
    } else if (at < norder && at > next && !(order[next] == SM_SNAP_SEC_PYFRAMES && at == next + 1)) {
      /* (PYFRAMES is optional: the section due is the one after it) */
      size_t due = order[next] == SM_SNAP_SEC_PYFRAMES ? next + 1 : next;
      rc = fail(err, errlen, "corrupt (%s before %s)", section_names[tag], section_names[order[due]]);
    } else if (s->version >= 3 && tag == SM_SNAP_SEC_LEAKS && !(s->flags & SM_SNAP_LEAKS)) {
      rc = fail(err, errlen, "corrupt (a LEAKS section, but INFO says no leak classes were computed)");
    } else if ((rc = parse_section(tag, &sec, count, s, err, errlen)) == 1) {
      rc = 0; /* a section this reader or this version does not know: skipped */
    } else if (rc == 0) {
      if (sec.p != sec.end)
        rc = fail(err, errlen, "corrupt (section %u has %zu unexplained bytes)", tag, (size_t)(sec.end - sec.p));
      next = at + 1; /* (PYFRAMES, which only Python processes have, may be passed over) */
    }
  }
  if (s->version >= 3 && !(s->flags & SM_SNAP_LEAKS)) norder--; /* LEAKS comes with leak classes only */
  if (rc == 0 && next < norder && order[next] == SM_SNAP_SEC_PYFRAMES) next++; /* optional */
  if (rc == 0 && next < norder) rc = fail(err, errlen, "corrupt (no %s section)", section_names[order[next]]);
  if (rc != 0) sm_snap_free(s);
  return rc;
}

int sm_snap_parse(const uint8_t *data, size_t len, sm_snap_t *s, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  s->py_module = SM_SNAP_NO_MODULE;
  uint64_t payload;
  uint32_t version;
  int rc = check_header(data, len, &payload, &version, err, errlen);
  if (rc != 0) return rc;
  s->version = version;
  return parse_sections(data + SM_SNAP_HEADER_SIZE, payload, s, err, errlen);
}

int sm_snap_read(const char *path, sm_snap_t *s, char *err, size_t errlen) {
  memset(s, 0, sizeof *s);
  char why[128];
  int fd = sm_open_regular(path, why, sizeof why);
  if (fd < 0) return fail(err, errlen, "cannot open: %s", why);
  struct stat st;
  if (fstat(fd, &st) != 0) {
    close(fd);
    return fail(err, errlen, "cannot open: %s", strerror(errno));
  }
  if ((uint64_t)st.st_size > SM_SNAP_MAX_FILE) {
    close(fd);
    return fail(err, errlen, "too large (%" PRIu64 " bytes; this tool reads snapshots of at most %llu)",
                (uint64_t)st.st_size, SM_SNAP_MAX_FILE);
  }
  /* The size fstat gave; a file that grows meanwhile is read up to it. */
  size_t cap = (size_t)st.st_size, len = 0;
  uint8_t *data = malloc(cap ? cap : 1);
  if (!data) {
    close(fd);
    return fail(err, errlen, "out of memory reading the file");
  }
  while (len < cap) {
    ssize_t r = read(fd, data + len, cap - len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      free(data);
      close(fd);
      return fail(err, errlen, "read error: %s", strerror(e));
    }
    if (r == 0) break;
    len += (size_t)r;
  }
  close(fd);
  int rc = sm_snap_parse(data, len, s, err, errlen);
  if (rc != 0) {
    free(data);
    return rc;
  }
  /* Build-ids point into the buffer: keep it with the snapshot. */
  s->path = xstrdup(path);
  s->modules_buffer_ = data;
  return 0;
}

void sm_snap_free(sm_snap_t *s) {
  for (uint32_t i = 0; s->modules && i < s->nmodules; i++) free(s->modules[i].path);
  free(s->modules);
  for (size_t i = 0; s->traces && i < s->ntraces; i++) free(s->traces[i].frames);
  free(s->traces);
  free(s->frames_);
  for (uint32_t i = 0; s->pyframes && i < s->npyframes; i++) {
    free(s->pyframes[i].file);
    free(s->pyframes[i].function);
  }
  free(s->pyframes);
  free(s->program);
  free(s->options);
  free(s->cmdline);
  free(s->path);
  free(s->modules_buffer_);
  memset(s, 0, sizeof *s);
}
