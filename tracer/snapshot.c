/* The snapshot writer (format in snapfmt.h). It runs outside every
 * allocator lock: copies the trace table, reads the module map, writes the
 * file through a fixed buffer from the metadata arena into an unnamed or
 * temporary file, then publishes it as a new regular file (see publish()),
 * so a reader never sees a torn file and nothing but a regular file of
 * ours is ever replaced. No stdio, no malloc. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "allocator/internal.h"
#include "tracer/internal.h"

static sm_lock_t write_lock = SM_LOCK_INIT; /* one snapshot at a time; lock order: tracer/locks.c */
static uint64_t sequence;                   /* %n */

static int write_all_fd(int fd, const uint8_t *p, size_t n);

/* The payload goes to the file as it is laid out, through a buffer of
 * fixed size: a snapshot of a million traces is hundreds of megabytes,
 * which must not be built in memory first. The checksum is taken on the
 * way; the header, which holds it and the length, is written last. */
typedef struct wbuf {
  uint8_t *p;
  size_t len, cap;  /* bytes waiting in p; p's size */
  int fd;
  uint64_t total;   /* payload bytes so far */
  uint32_t crc;     /* of the payload so far */
  int err;          /* errno of the first failed write (later ones are skipped) */
} wbuf_t;

static void emit(wbuf_t *b, const void *src, size_t n) {
  b->crc = sm_crc32(b->crc, src, n);
  if (!b->err && write_all_fd(b->fd, src, n) != 0) b->err = errno ? errno : EIO;
}

static void flush(wbuf_t *b) {
  if (b->len) emit(b, b->p, b->len);
  b->len = 0;
}

static void put(wbuf_t *b, const void *src, size_t n) {
  b->total += n;
  if (b->len + n > b->cap) flush(b);
  if (n > b->cap) { /* a long string: straight through */
    emit(b, src, n);
    return;
  }
  memcpy(b->p + b->len, src, n);
  b->len += n;
}
static void put_u32(wbuf_t *b, uint32_t v) { put(b, &v, 4); } /* x86-64 is little-endian */
static void put_u64(wbuf_t *b, uint64_t v) { put(b, &v, 8); }
static void put_str(wbuf_t *b, const char *s, size_t n) {
  put_u32(b, (uint32_t)n);
  put(b, s, n);
}

/* Reads a small /proc file into buf; returns its length (0 on failure). */
static size_t read_file(const char *path, char *buf, size_t cap) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  size_t len = 0;
  while (len < cap) {
    ssize_t r = read(fd, buf + len, cap - len);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    len += (size_t)r;
  }
  close(fd);
  return len;
}

static uint64_t rss_bytes(void) {
  char buf[128];
  size_t n = read_file("/proc/self/statm", buf, sizeof buf - 1);
  buf[n] = '\0';
  const char *p = buf;
  while (*p && *p != ' ') p++; /* skip size; the second field is resident pages */
  uint64_t pages = 0;
  for (p++; *p >= '0' && *p <= '9'; p++) pages = pages * 10 + (uint64_t)(*p - '0');
  return pages * sm_os_page_size;
}

/* The process's peak resident set (VmHWM in /proc/self/status), bytes;
 * 0 when unknown. */
static uint64_t peak_rss_bytes(void) {
  char buf[4096];
  size_t n = read_file("/proc/self/status", buf, sizeof buf - 1);
  buf[n] = '\0';
  const char *p = strstr(buf, "\nVmHWM:");
  if (!p) return 0;
  for (p += 7; *p == ' ' || *p == '\t'; p++) {
  }
  uint64_t kb = 0;
  for (; *p >= '0' && *p <= '9'; p++) kb = kb * 10 + (uint64_t)(*p - '0');
  return kb * 1024; /* the kernel reports kB (KiB) */
}

static const char *base_name(const char *path) {
  const char *b = path;
  for (const char *p = path; *p; p++)
    if (*p == '/') b = p + 1;
  return b;
}

/* Expands the `out` pattern: %p pid, %n sequence, %e program name, %% '%'.
 * False if the result does not fit in cap bytes. */
static bool expand_name(char *dst, size_t cap, const char *pattern, uint64_t seq) {
  char exe[256];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  exe[n > 0 ? n : 0] = '\0';
  size_t len = 0;
  for (const char *p = pattern; *p; p++) {
    char tmp[32];
    const char *ins = tmp;
    if (*p != '%' || !p[1]) {
      tmp[0] = *p;
      tmp[1] = '\0';
    } else {
      p++;
      switch (*p) {
      case 'p': sm_snprintf(tmp, sizeof tmp, "%d", (int)getpid()); break;
      case 'n': sm_snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)seq); break;
      case 'e': ins = base_name(exe); break;
      case '%': ins = "%"; break;
      default: sm_snprintf(tmp, sizeof tmp, "%%%c", *p); break;
      }
    }
    for (; *ins; ins++) {
      if (len + 1 >= cap) return false;
      dst[len++] = *ins;
    }
  }
  dst[len] = '\0';
  return true;
}

/* What a snapshot reports besides the traces, read once for both passes. */
typedef struct snap_info {
  int64_t current, peak; /* traced bytes, read with the traces */
  uint64_t rss, peak_rss; /* read together, before the snapshot's own buffer exists */
  uint32_t flags;
  uint64_t seq;
  const char *cmdline;
  size_t cmdlen;
} snap_info_t;

static void put_info(wbuf_t *b, const snap_info_t *in) {
  sm_stats_t st;
  sm_stats_get(&st);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  char exe[256];
  ssize_t en = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (en < 0) en = 0;
  const char *spec = sm_options_spec ? sm_options_spec : "";
  size_t info_len = SM_SNAP_INFO_FIXED + 12 + (size_t)en + in->cmdlen + strlen(spec);
  put_u32(b, SM_SNAP_SEC_INFO);
  put_u32(b, 1);
  put_u64(b, info_len);
  put_u64(b, (uint64_t)getpid());
  put_u64(b, (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec);
  put_u64(b, in->current > 0 ? (uint64_t)in->current : 0);
  put_u64(b, in->peak > 0 ? (uint64_t)in->peak : 0);
  put_u64(b, in->rss);
  put_u64(b, st.mapped);
  put_u64(b, st.pool_inuse + st.large_inuse + st.huge_inuse);
  put_u64(b, st.meta);
  put_u64(b, in->seq);
  put_u64(b, sm_opt.sample);
  put_u32(b, (uint32_t)sm_opt.depth);
  put_u32(b, in->flags | (sm_opt.sample ? SM_SNAP_SAMPLED : 0) |
                 (__atomic_load_n(&sm_trace_on, __ATOMIC_ACQUIRE) ? 0 : SM_SNAP_OFF));
  put_u64(b, in->peak_rss);
  put_str(b, exe, (size_t)en);
  put_str(b, in->cmdline, in->cmdlen);
  put_str(b, spec, strlen(spec));
}

static void put_modules(wbuf_t *b) {
  uint32_t nmod = sm_modules_count();
  size_t mod_len = 0;
  for (uint32_t i = 0; i < nmod; i++) {
    const sm_module_t *m = sm_modules_get(i);
    mod_len += SM_SNAP_MODULE_FIXED + strlen(m->path) + m->build_id_len;
  }
  put_u32(b, SM_SNAP_SEC_MODULES);
  put_u32(b, nmod);
  put_u64(b, mod_len);
  for (uint32_t i = 0; i < nmod; i++) {
    const sm_module_t *m = sm_modules_get(i);
    put_u64(b, m->bias);
    put_u64(b, m->start);
    put_u64(b, m->end);
    put_u32(b, (uint32_t)strlen(m->path));
    put_u32(b, m->build_id_len);
    put(b, m->path, strlen(m->path));
    put(b, m->build_id, m->build_id_len);
  }
}

/* ---------------------------------------------------------------- frames
 *
 * Version 3 writes every distinct frame once (FRAMES) and traces name
 * frames by index: a program with a million stacks has a few thousand
 * distinct return addresses, and a record then costs a byte or two a frame
 * instead of twelve. The dictionary is an open-addressed table (frame,
 * module, index) beside the entries in index order, from the metadata
 * arena, built when the snapshot is laid out and gone when it is written. A frame
 * is the raw return address and the module the trace resolved it to, so
 * that code loaded where unloaded code was stays apart. */
typedef struct dict_slot {
  uintptr_t addr;
  uint32_t idx;  /* entry + 1; 0: empty */
  uint16_t mod;  /* module index, 0xffff none */
} dict_slot_t;

typedef struct frame_dict {
  dict_slot_t *slot;
  size_t nslots;    /* a power of two, twice cap */
  uintptr_t *addr;  /* by entry, for FRAMES */
  uint16_t *mod;
  size_t n, cap;    /* entries, room in addr and mod */
} frame_dict_t;

static size_t frame_hash(uintptr_t addr, uint16_t mod, size_t nslots) {
  uint64_t h = ((uint64_t)addr ^ ((uint64_t)mod << 48)) * 0x9E3779B97F4A7C15ull;
  return (size_t)(h >> 32) & (nslots - 1);
}

static void dict_arrays_free(dict_slot_t *slot, size_t nslots, uintptr_t *addr, uint16_t *mod, size_t cap) {
  if (slot) sm_meta_free(slot, nslots * sizeof *slot);
  if (addr) sm_meta_free(addr, cap * sizeof *addr);
  if (mod) sm_meta_free(mod, cap * sizeof *mod);
}

static void dict_free(frame_dict_t *d) {
  dict_arrays_free(d->slot, d->nslots, d->addr, d->mod, d->cap);
  memset(d, 0, sizeof *d);
}

/* Doubles the entry arrays and the slots; false when out of memory (d unchanged). */
static bool dict_grow(frame_dict_t *d) {
  size_t cap = d->cap ? 2 * d->cap : 1024, nslots = 2 * cap;
  dict_slot_t *slot = sm_meta_alloc(nslots * sizeof *slot);
  uintptr_t *addr = sm_meta_alloc(cap * sizeof *addr);
  uint16_t *mod = sm_meta_alloc(cap * sizeof *mod);
  if (!slot || !addr || !mod) {
    dict_arrays_free(slot, nslots, addr, mod, cap);
    return false;
  }
  memset(slot, 0, nslots * sizeof *slot);
  if (d->n) {
    memcpy(addr, d->addr, d->n * sizeof *addr);
    memcpy(mod, d->mod, d->n * sizeof *mod);
  }
  for (size_t e = 0; e < d->n; e++) {
    size_t i = frame_hash(addr[e], mod[e], nslots);
    while (slot[i].idx) i = (i + 1) & (nslots - 1);
    slot[i] = (dict_slot_t){addr[e], (uint32_t)e + 1, mod[e]};
  }
  dict_arrays_free(d->slot, d->nslots, d->addr, d->mod, d->cap);
  d->slot = slot, d->nslots = nslots, d->addr = addr, d->mod = mod, d->cap = cap;
  return true;
}

/* The index of frame (addr, mod), added if new; UINT32_MAX when out of
 * memory. */
static uint32_t dict_index(frame_dict_t *d, uintptr_t addr, uint16_t mod) {
  if (d->n == d->cap && (d->n >= UINT32_MAX / 4 || !dict_grow(d))) return UINT32_MAX;
  size_t i = frame_hash(addr, mod, d->nslots);
  for (; d->slot[i].idx; i = (i + 1) & (d->nslots - 1))
    if (d->slot[i].addr == addr && d->slot[i].mod == mod) return d->slot[i].idx - 1;
  d->slot[i] = (dict_slot_t){addr, (uint32_t)d->n + 1, mod};
  d->addr[d->n] = addr;
  d->mod[d->n] = mod;
  return (uint32_t)d->n++;
}

SM_INLINE uint8_t *varint_to(uint8_t *q, uint64_t v) {
  if (SM_LIKELY(v < 0x80)) { /* most figures of a trace, and the frames of a small dictionary */
    *q = (uint8_t)v;
    return q + 1;
  }
  for (; v >= 0x80; v >>= 7) *q++ = (uint8_t)(v | 0x80);
  *q++ = (uint8_t)v;
  return q;
}

static unsigned varint_len(uint64_t v) { return v < 0x80 ? 1 : 1 + (unsigned)(63 - __builtin_clzll(v)) / 7; }

static void put_varint(wbuf_t *b, uint64_t v) {
  uint8_t tmp[SM_SNAP_VARINT_MAX];
  put(b, tmp, (size_t)(varint_to(tmp, v) - tmp));
}

/* The longest TRACES record: ten varints and 128 frame indices below 2^32. */
#define TRACE_RECORD_MAX (10 * SM_SNAP_VARINT_MAX + SM_SNAP_MAX_FRAMES * 5)

/* The index of frame (addr, mod): straight from its home slot, where
 * nearly every frame of a snapshot is found (a table at most half full),
 * else through dict_index. */
SM_INLINE uint32_t dict_lookup(frame_dict_t *d, uintptr_t addr, uint16_t mod) {
  if (SM_LIKELY(d->nslots != 0)) {
    const dict_slot_t *s = &d->slot[frame_hash(addr, mod, d->nslots)];
    if (SM_LIKELY(s->addr == addr && s->mod == mod && s->idx)) return s->idx - 1;
  }
  return dict_index(d, addr, mod);
}

/* Lays out t's TRACES record in out (TRACE_RECORD_MAX bytes), adding its
 * frames to the dictionary; its length, 0 when out of memory. */
static size_t encode_trace(frame_dict_t *d, const sm_trace_copy_t *t, uint32_t prev_id, uint8_t *out) {
  uint64_t v[10] = {t->id - prev_id, t->nframes, t->flags, t->size, t->count, t->peak_size, t->peak_count,
                    t->allocations, t->allocated, t->temporary};
  uint8_t *q = out;
  for (int k = 0; k < 10; k++) q = varint_to(q, v[k]);
  const uintptr_t *frames = t->frames;
  const uint16_t *mods = t->modules;
  for (unsigned f = 0, n = t->nframes; f < n; f++) {
    uint32_t e = dict_lookup(d, frames[f], mods[f]);
    if (e == UINT32_MAX) return 0;
    q = varint_to(q, e);
  }
  return (size_t)(q - out);
}

/* TRACES' body, laid out once before FRAMES can be written (the
 * dictionary is complete only then), in chunks from the metadata arena: a
 * few dozen bytes a trace, against the trace table's few hundred. */
#define CHUNK_BYTES ((size_t)1 << 20)
typedef struct rec_chunk {
  struct rec_chunk *next;
  size_t len;
  uint8_t data[];
} rec_chunk_t;
#define CHUNK_ROOM (CHUNK_BYTES - sizeof(rec_chunk_t))

static void chunks_free(rec_chunk_t *c) {
  while (c) {
    rec_chunk_t *next = c->next;
    sm_meta_free(c, CHUNK_BYTES);
    c = next;
  }
}

/* Every trace's record into chunks (*first), every frame into the
 * dictionary, the body's length into *bytes; false when out of memory. */
static bool encode_traces(frame_dict_t *d, const sm_trace_copy_t *tr, size_t ntr, rec_chunk_t **first,
                          uint64_t *bytes) {
  rec_chunk_t **link = first, *cur = NULL;
  uint64_t len = 0;
  for (size_t i = 0; i < ntr; i++) {
    if (!cur || CHUNK_ROOM - cur->len < TRACE_RECORD_MAX) {
      if (!(cur = sm_meta_alloc(CHUNK_BYTES))) return false;
      cur->next = NULL;
      cur->len = 0;
      *link = cur;
      link = &cur->next;
    }
    size_t n = encode_trace(d, &tr[i], i ? tr[i - 1].id : 0, cur->data + cur->len);
    if (!n) return false;
    cur->len += n;
    len += n;
  }
  *bytes = len;
  return true;
}

/* A dictionary entry that is a Python frame, described (python.h: the
 * trace holds its id in pyframes.c's table). */
static bool py_entry(const frame_dict_t *d, size_t e, sm_pyframe_info_t *info) {
  return d->mod[e] == SM_PY_MODULE_SLOT && sm_py_is_tagged(d->addr[e]) &&
         sm_pyframe_get((uint32_t)d->addr[e], info);
}

/* PYFRAMES, when a trace has Python frames: their file and function names
 * and lines, copied when first seen, in the order FRAMES names them. */
static void put_pyframes(wbuf_t *b, const frame_dict_t *d) {
  uint32_t count = 0;
  uint64_t len = SM_SNAP_PYFRAMES_FIXED;
  sm_pyframe_info_t info;
  for (size_t e = 0; e < d->n; e++) {
    if (!py_entry(d, e, &info)) continue;
    count++;
    len += SM_SNAP_PYFRAME_FIXED + info.file_len + info.name_len;
  }
  if (!count) return;
  put_u32(b, SM_SNAP_SEC_PYFRAMES);
  put_u32(b, count);
  put_u64(b, len);
  bool on = __atomic_load_n(&sm_py_on, __ATOMIC_ACQUIRE);
  put_u32(b, on ? sm_py_rt.module : SM_SNAP_NO_MODULE);
  put_u32(b, on ? (uint32_t)sm_py_rt.version : 0);
  for (size_t e = 0; e < d->n; e++) {
    if (!py_entry(d, e, &info)) continue;
    put_u32(b, info.line);
    put_u32(b, info.file_len);
    put_u32(b, info.name_len);
    put(b, info.file, info.file_len);
    put(b, info.name, info.name_len);
  }
}

static void put_frames(wbuf_t *b, const frame_dict_t *d) {
  put_u32(b, SM_SNAP_SEC_FRAMES);
  put_u32(b, (uint32_t)d->n);
  put_u64(b, (uint64_t)d->n * SM_SNAP_FRAME_SIZE);
  uint64_t py = 0; /* the next PYFRAMES record */
  sm_pyframe_info_t info;
  for (size_t e = 0; e < d->n; e++) {
    if (py_entry(d, e, &info)) {
      put_u32(b, SM_SNAP_PY_MODULE);
      put_u64(b, py++);
      continue;
    }
    /* (A tagged value that is no Python frame's cannot be in a trace with
     * figures; it would be written as a raw address.) */
    const sm_module_t *m = d->mod[e] >= SM_PY_MODULE_SLOT ? NULL : sm_modules_get(d->mod[e]);
    put_u32(b, m ? d->mod[e] : SM_SNAP_NO_MODULE);
    put_u64(b, m ? d->addr[e] - m->bias : d->addr[e]);
  }
}

static void put_traces(wbuf_t *b, const rec_chunk_t *c, size_t ntr, uint64_t bytes) {
  put_u32(b, SM_SNAP_SEC_TRACES);
  put_u32(b, (uint32_t)ntr);
  put_u64(b, bytes);
  for (; c; c = c->next) put(b, c->data, c->len);
}

static bool leaked(const uint64_t (*leak)[2]) {
  uint64_t any = 0;
  for (int k = 0; k < SM_LEAK_CLASSES; k++) any |= leak[k][0] | leak[k][1];
  return any != 0;
}

/* LEAKS (with leak analysis only): the blocks that have no trace (id 0),
 * then every trace that leaked, by rising id. Two passes: the length, then
 * the records. */
static void put_leaks(wbuf_t *b, const sm_trace_copy_t *tr, size_t ntr) {
  const uint64_t(*untraced)[2] = (const uint64_t(*)[2])sm_leaks_untraced();
  uint32_t count = 0;
  uint64_t len = 0;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) {
      put_u32(b, SM_SNAP_SEC_LEAKS);
      put_u32(b, count);
      put_u64(b, len);
    }
    for (size_t i = 0; i <= ntr; i++) {
      const uint64_t(*leak)[2] = i == 0 ? untraced : tr[i - 1].leak;
      if (!leaked(leak)) continue;
      uint32_t id = i == 0 ? 0 : tr[i - 1].id;
      if (pass == 0) {
        count++;
        len += varint_len(id);
        for (int k = 0; k < SM_LEAK_CLASSES; k++) len += varint_len(leak[k][0]) + varint_len(leak[k][1]);
        continue;
      }
      put_varint(b, id);
      for (int k = 0; k < SM_LEAK_CLASSES; k++) {
        put_varint(b, leak[k][0]);
        put_varint(b, leak[k][1]);
      }
    }
  }
}

/* Lays out the payload into b (b->err = ENOMEM when the frame dictionary
 * or the records do not fit in memory). */
static void build_payload(wbuf_t *b, const sm_trace_copy_t *tr, size_t ntr, const snap_info_t *in) {
  frame_dict_t d = {0};
  rec_chunk_t *traces = NULL;
  uint64_t traces_len;
  if (encode_traces(&d, tr, ntr, &traces, &traces_len)) {
    put_info(b, in);
    put_modules(b);
    put_pyframes(b, &d);
    put_frames(b, &d);
    put_traces(b, traces, ntr, traces_len);
    if (in->flags & SM_SNAP_LEAKS) put_leaks(b, tr, ntr);
  } else {
    b->err = ENOMEM;
  }
  chunks_free(traces);
  dict_free(&d);
}

static int write_all_fd(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* ---------------------------------------------------------------- publishing
 *
 * The rule: a snapshot only ever becomes a new regular file, or replaces a
 * regular file owned by our effective uid. Nothing else at the target name
 * (a device, a FIFO, a directory, a symlink, someone else's file) is
 * touched: the write fails with EEXIST.
 *
 * The bytes go first into an unnamed file (O_TMPFILE in the target's
 * directory), which a killed writer cannot leave behind. It is then linked
 * in: straight at the target name when there is none (linkat fails if one
 * appeared meanwhile, so a name created in between is never replaced), or
 * at a fresh random name that is renamed over our own regular file. Where
 * the filesystem has no O_TMPFILE, the bytes go to that random name
 * directly (O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600), published the same
 * way; every failure path unlinks it. Random names are
 * ".snapmalloc-NS-PID-XXXXXXXXXXXXXXXX.tmp" beside the target (NS: the
 * writer's pid namespace): 64 bits from
 * getrandom(), so nobody can plant a file or a link there in advance, and a
 * leftover (a writer killed between write and rename, without O_TMPFILE)
 * is recognisable by name and pid: the next process that writes a snapshot
 * into that directory removes it (sweep_temporaries), if its writer was in
 * the same pid namespace and is gone.
 *
 * The owner check and the rename are two steps (rename(2) has no "only if
 * it is a regular file of mine" flag). Whoever can swap the entry between
 * them has write access to the directory and could replace it anyway; in
 * a sticky directory (/tmp) they can only swap in entries of their own,
 * which rename then refuses to replace (EPERM) unless we own the directory. */

/* Target's directory (a prefix of name, "." without a slash). */
static bool dir_of(const char *name, char *dir, size_t cap) {
  const char *slash = strrchr(name, '/');
  if (!slash) {
    sm_snprintf(dir, cap, ".");
    return true;
  }
  size_t n = slash == name ? 1 : (size_t)(slash - name);
  if (n + 1 > cap) return false;
  memcpy(dir, name, n);
  dir[n] = '\0';
  return true;
}

/* The pid namespace we live in (its inode; 0 without /proc): a pid means
 * something only there, and a directory may be shared with containers. */
static unsigned long long pid_namespace(void) {
  struct stat st;
  return stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long long)st.st_ino : 0;
}

static bool random_name(char *dst, size_t cap, const char *dir) {
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
    r = (sm_os_now_ms() * 0x9E3779B97F4A7C15ull) ^ (uintptr_t)&r ^ __builtin_ia32_rdtsc();
  return sm_snprintf(dst, cap, "%s/.snapmalloc-%llu-%d-%016llx.tmp", dir, pid_namespace(), (int)getpid(),
                     (unsigned long long)r) + 1 < cap;
}

/* Parses digits at *p; false if there are none or too many. */
static bool parse_num(const char **p, unsigned long long *v) {
  const char *s = *p;
  *v = 0;
  while (**p >= '0' && **p <= '9' && *p - s < 19) *v = *v * 10 + (unsigned)(*(*p)++ - '0');
  return *p > s && !(**p >= '0' && **p <= '9');
}

/* 0: name is free; 1: a regular file of ours; -1 with errno: leave it alone. */
static int target_state(const char *name) {
  struct stat st;
  if (lstat(name, &st) != 0) return errno == ENOENT ? 0 : -1;
  if (S_ISREG(st.st_mode) && st.st_uid == geteuid()) return 1;
  errno = EEXIST;
  return -1;
}

/* Moves the file at tmp (a name of ours) to name under the rule above;
 * unlinks tmp unless it became name. */
static int move_into_place(const char *tmp, const char *name) {
  int state = target_state(name);
  int rc = -1;
  if (state == 0) {
    rc = link(tmp, name); /* EEXIST if the name appeared meanwhile */
  } else if (state == 1) {
    rc = rename(tmp, name);
    if (rc == 0) return 0;
  }
  int e = errno;
  unlink(tmp);
  errno = e;
  return rc;
}

/* A writer killed between linking its random name and the rename leaves
 * that name behind. Each process's first snapshot into a directory removes
 * the ones of writers that no longer run (their pid is in the name). Raw
 * getdents64: opendir would call malloc. */
static pid_t swept_by; /* the pid that swept (a fork child sweeps again) */

static void sweep_temporaries(const char *dir) {
  if (swept_by == getpid()) return;
  swept_by = getpid();
  int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  unsigned long long my_ns = pid_namespace();
  char buf[4096];
  long n;
  while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
    for (long off = 0; off < n;) {
      struct dirent64 *d = (struct dirent64 *)(buf + off);
      off += d->d_reclen;
      static const char prefix[] = ".snapmalloc-";
      if (strncmp(d->d_name, prefix, sizeof prefix - 1) != 0) continue;
      /* .snapmalloc-NS-PID-XXXXXXXXXXXXXXXX.tmp, of a writer in our pid
       * namespace that no longer runs */
      const char *p = d->d_name + sizeof prefix - 1;
      unsigned long long ns, pid;
      if (!parse_num(&p, &ns) || *p++ != '-' || !parse_num(&p, &pid) || ns != my_ns) continue;
      if (pid == 0 || pid > (1u << 30) || strlen(p) != 21 || *p != '-' || strcmp(p + 17, ".tmp") != 0) continue;
      if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) unlinkat(fd, d->d_name, 0);
    }
  }
  close(fd);
}

/* The snapshot's bytes: a header of zeros, the payload as it is laid
 * out, then the header with the payload's length and checksum. */
typedef struct snap_fill {
  const sm_trace_copy_t *tr;
  size_t ntr;
  const snap_info_t *in;
} snap_fill_t;

#define FILL_BUFFER ((size_t)1 << 20)

static int fill_snapshot(int fd, void *arg) {
  const snap_fill_t *f = arg;
  uint8_t hdr[SM_SNAP_HEADER_SIZE] = {0};
  if (write_all_fd(fd, hdr, sizeof hdr) != 0) return -1;
  uint8_t *chunk = sm_meta_alloc(FILL_BUFFER);
  if (!chunk) {
    errno = ENOMEM;
    return -1;
  }
  wbuf_t b = {chunk, 0, FILL_BUFFER, fd, 0, 0, 0};
  build_payload(&b, f->tr, f->ntr, f->in);
  flush(&b);
  sm_meta_free(chunk, FILL_BUFFER);
  if (b.err) {
    errno = b.err;
    return -1;
  }
  uint32_t version = SM_SNAP_VERSION, hsize = SM_SNAP_HEADER_SIZE;
  memcpy(hdr, SM_SNAP_MAGIC, 8);
  memcpy(hdr + 8, &version, 4);
  memcpy(hdr + 12, &hsize, 4);
  memcpy(hdr + 16, &b.total, 8);
  memcpy(hdr + 24, &b.crc, 4);
  for (size_t done = 0; done < sizeof hdr;) {
    ssize_t w = pwrite(fd, hdr + done, sizeof hdr - done, (off_t)done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      if (w == 0) errno = EIO;
      return -1;
    }
    done += (size_t)w;
  }
  return 0;
}

/* Writes a file's bytes to fd (0, or -1 with errno). */
typedef int (*fill_fn)(int fd, void *arg);

static int publish(const char *name, fill_fn fill, void *arg) {
  char dir[PATH_MAX], tmp[PATH_MAX + 64];
  if (!dir_of(name, dir, sizeof dir) || !random_name(tmp, sizeof tmp, dir)) {
    errno = ENAMETOOLONG;
    return -1;
  }
  sweep_temporaries(dir);
  int state = target_state(name);
  if (state < 0) return -1;
  int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0) {
    char self[64];
    sm_snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
    int rc = fill(fd, arg);
    if (rc == 0) {
      if (state == 0) {
        rc = linkat(AT_FDCWD, self, AT_FDCWD, name, AT_SYMLINK_FOLLOW);
      } else {
        rc = linkat(AT_FDCWD, self, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW);
        if (rc == 0) rc = move_into_place(tmp, name);
      }
    }
    int e = errno;
    close(fd);
    errno = e;
    if (rc == 0 || (errno != ENOENT && errno != EXDEV)) return rc; /* ENOENT: no /proc */
  } else if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL) {
    return -1;
  }
  fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return -1;
  int rc = fill(fd, arg);
  int e = errno ? errno : EIO;
  close(fd);
  if (rc != 0) {
    unlink(tmp);
    errno = e;
    return -1;
  }
  return move_into_place(tmp, name);
}

/* ---------------------------------------------------------------- failures
 *
 * A write that fails says so on stderr, outside the 16-warning budget of
 * sm_warning: the first failure of each kind (errno) is reported, then
 * the 2nd, 4th, 8th... of that kind with the count, so a failing interval
 * or signal snapshot never goes silent and never floods. */
#define FAIL_KINDS 160
static uint32_t fail_count[FAIL_KINDS]; /* by errno; the last slot takes the rest */

static void report_failure(const char *name, int err) {
  uint32_t n = __atomic_add_fetch(&fail_count[err > 0 && err < FAIL_KINDS ? err : FAIL_KINDS - 1], 1, __ATOMIC_RELAXED);
  if (n & (n - 1)) return;
  const char *why = strerrordesc_np(err);
  if (err == EEXIST) why = "something that is not a regular file of ours is in the way";
  if (n == 1) sm_warning_always("cannot write snapshot %s: %s", name, why ? why : "unknown error");
  else sm_warning_always("cannot write snapshot %s: %s (%u failures of this kind so far)", name, why ? why : "unknown error", n);
}

int sm_snapshot_write(const char *path, uint32_t flags) { return sm_snapshot_write_as(path, flags, NULL, 0); }

int sm_snapshot_write_as(const char *path, uint32_t flags, char *written, size_t cap) {
  /* Without tracing ever on there is nothing to report but the heap's
   * figures: only an armed process (control=1) writes such a snapshot. */
  if (!sm_tracer_started() && !sm_control_armed()) {
    errno = ENOTSUP;
    return -1;
  }
  /* A signal handler that interrupted this very thread inside the tracer
   * (a snapshot, a stack capture) must not wait for the locks the
   * interrupted code holds: the tracer's "busy" count is this thread's own
   * and is raised before any of them is taken. */
  if (sm_tracer_busy_here()) {
    sm_warning_always("snapshot skipped: this thread is inside the tracer (a snapshot asked for from a signal "
                      "handler that interrupted it)");
    errno = EDEADLK;
    return -1;
  }
  sm_tracer_enter();
  sm_lock(&write_lock);
  int saved_errno = 0, rc = -1;
  uint64_t seq = sequence++;
  static SM_BIG_BSS char name[PATH_MAX]; /* under write_lock */
  size_t plen = path ? strlen(path) : 0;
  if (path ? plen >= sizeof name : !expand_name(name, sizeof name, sm_opt.out, seq)) {
    if (path) sm_snprintf(name, sizeof name, "%.*s...", 200, path);
    saved_errno = ENAMETOOLONG;
    goto out_unlocked_tr;
  }
  if (path) memcpy(name, path, plen + 1);
  static SM_BIG_BSS char cmdline[4096]; /* under write_lock */
  size_t cmdlen = read_file("/proc/self/cmdline", cmdline, sizeof cmdline);
  if (cmdlen && cmdline[cmdlen - 1] == '\0') cmdlen--; /* separators only */

  size_t ntr = 0, ncap = 0;
  snap_info_t in = {0, 0, rss_bytes(), peak_rss_bytes(), flags, seq, cmdline, cmdlen};
  if (in.peak_rss < in.rss) in.peak_rss = in.rss; /* two reads of a moving figure */
  sm_trace_copy_t *tr = sm_tracer_copy(&ntr, &ncap, &in.current, &in.peak);
  sm_modules_refresh();
  snap_fill_t fill = {tr, ntr, &in};
  if (publish(name, fill_snapshot, &fill) == 0) rc = 0;
  else saved_errno = errno ? errno : EIO;
  if (tr) sm_meta_free(tr, ncap * sizeof *tr);
  if (rc == 0 && written) sm_snprintf(written, cap, "%s", name);
out_unlocked_tr:
  if (rc != 0) report_failure(name, saved_errno);
  sm_unlock(&write_lock);
  sm_tracer_leave();
  if (rc != 0) errno = saved_errno;
  return rc;
}

sm_lock_t *const sm_write_lock_ref = &write_lock; /* for the lock table, tracer/locks.c */

