/* snapmalloc export: a snapshot in a format other tools read.
 *
 *   --format pprof   a gzip-compressed profile.proto, the format of
 *                    github.com/google/pprof (`go tool pprof`, pprof's web
 *                    UI, and the services that take Go heap profiles)
 *   --format folded  collapsed stacks for flamegraph.pl and speedscope: the
 *                    same lines as `top --by trace --format folded --limit 0`
 *
 * The pprof profile has one Sample per trace, values [live bytes, live
 * blocks, bytes allocated, blocks allocated] as sample types
 * inuse_space/bytes, inuse_objects/count, alloc_space/bytes and
 * alloc_objects/count, as Go's heap profiles have them; the alloc_* figures
 * count since tracing started or the last snapmalloc_reset_peak(). A
 * version-1 snapshot has no allocation counts: its profile has only the
 * inuse_* types. Its
 * location ids run innermost first, from the allocation site out (as `top`
 * attributes blocks; --raw keeps the allocator's wrappers). One Location per
 * recorded frame (its return address, in the Mapping of its module), whose
 * Lines are the frame's inline chain, innermost first. Everything is
 * symbolized here, so pprof has nothing left to look up. The protobuf
 * encoder is our own (pbuf.c), the gzip wrapper is zlib's; docs/export.md
 * says why. */
#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uthash.h>
#include <zlib.h>

#include "tools/cli.h"
#include "tools/cliopt.h"
#include "tools/pbuf.h"
#include "tools/report.h"
#include "tools/intern.h"
#include "tools/util.h"

/* profile.proto's field numbers (message.field). */
enum {
  PROFILE_SAMPLE_TYPE = 1, PROFILE_SAMPLE = 2, PROFILE_MAPPING = 3, PROFILE_LOCATION = 4, PROFILE_FUNCTION = 5,
  PROFILE_STRING_TABLE = 6, PROFILE_TIME_NANOS = 9, PROFILE_PERIOD_TYPE = 11, PROFILE_PERIOD = 12,
  PROFILE_COMMENT = 13, PROFILE_DEFAULT_SAMPLE_TYPE = 14,
  VALUETYPE_TYPE = 1, VALUETYPE_UNIT = 2,
  SAMPLE_LOCATION_ID = 1, SAMPLE_VALUE = 2,
  MAPPING_ID = 1, MAPPING_MEMORY_START = 2, MAPPING_MEMORY_LIMIT = 3, MAPPING_FILE_OFFSET = 4,
  MAPPING_FILENAME = 5, MAPPING_BUILD_ID = 6, MAPPING_HAS_FUNCTIONS = 7, MAPPING_HAS_FILENAMES = 8,
  MAPPING_HAS_LINE_NUMBERS = 9, MAPPING_HAS_INLINE_FRAMES = 10,
  LOCATION_ID = 1, LOCATION_MAPPING_ID = 2, LOCATION_ADDRESS = 3, LOCATION_LINE = 4,
  LINE_FUNCTION_ID = 1, LINE_LINE = 2,
  FUNCTION_ID = 1, FUNCTION_NAME = 2, FUNCTION_SYSTEM_NAME = 3, FUNCTION_FILENAME = 4,
};

/* ---------------------------------------------------------------- tables */

typedef struct func_ent {
  UT_hash_handle hh;
  char *key;               /* name '\0' file */
  size_t keylen;
  uint64_t id;
} func_ent_t;

typedef struct loc_key {
  uint32_t module;         /* snapshot module index or SM_SNAP_NO_MODULE */
  uint32_t drop;           /* inline entries left out at the start (a site inside an inline chain) */
  uint64_t offset;
} loc_key_t;

typedef struct loc_ent {
  UT_hash_handle hh;
  loc_key_t key;
  uint64_t id;
} loc_ent_t;

typedef struct mod_info {
  bool functions, filenames, lines;
} mod_info_t;

typedef struct profile {
  sm_snap_t *snap;
  sm_intern_t *strings;     /* the string table: its indexes are pprof's */
  func_ent_t *funcs;
  uint64_t nfunc;
  loc_ent_t *locs;
  uint64_t nloc;
  mod_info_t *mods;
  pb_t functions, locations, samples; /* the repeated fields, encoded as they are found */
  pb_t sub, line;          /* scratch for nested messages */
} profile_t;

/* The string table index of s. Every string that comes from the snapshot
 * arrives in its display form (the model's strings are; the rest go
 * through sm_escape here): pprof prints them, and profile.proto wants
 * UTF-8. */
static uint64_t str_idx(profile_t *pf, const char *s) {
  if (!s) s = "";
  return sm_intern_id(pf->strings, s, strlen(s));
}

static uint64_t func_id(profile_t *pf, const char *name, const char *file) {
  size_t nl = strlen(name), fl = file ? strlen(file) : 0;
  char *key = xmalloc(nl + fl + 2);
  memcpy(key, name, nl + 1);
  if (file) memcpy(key + nl + 1, file, fl);
  key[nl + 1 + fl] = '\0';
  size_t keylen = nl + 1 + fl;
  func_ent_t *e;
  HASH_FIND(hh, pf->funcs, key, keylen, e);
  if (e) {
    free(key);
    return e->id;
  }
  e = xcalloc(1, sizeof *e);
  e->key = key;
  e->keylen = keylen;
  e->id = ++pf->nfunc; /* ids are nonzero */
  HASH_ADD_KEYPTR(hh, pf->funcs, e->key, e->keylen, e);
  pb_t *m = &pf->sub;
  pb_reset(m);
  pb_uint(m, FUNCTION_ID, e->id);
  pb_uint(m, FUNCTION_NAME, str_idx(pf, name));
  pb_uint(m, FUNCTION_SYSTEM_NAME, str_idx(pf, name)); /* only the demangled name survives symbolization */
  pb_uint(m, FUNCTION_FILENAME, str_idx(pf, file));
  pb_msg(&pf->functions, PROFILE_FUNCTION, m);
  return e->id;
}

/* The Location of frames[b..e) of t, which all come from one recorded
 * frame; drop says how many entries of its inline chain lie before b. */
static uint64_t loc_id(profile_t *pf, const sm_strace_t *t, int b, int e, int drop) {
  const sm_snap_frame_t *rf = &t->raw->frames[t->frames[b].raw];
  loc_ent_t *l;
  loc_key_t key;
  memset(&key, 0, sizeof key); /* the padding is part of the hash key */
  key.module = rf->module;
  key.drop = (uint32_t)drop;
  key.offset = rf->offset;
  HASH_FIND(hh, pf->locs, &key, sizeof key, l);
  if (l) return l->id;
  l = xcalloc(1, sizeof *l);
  l->key = key;
  l->id = ++pf->nloc;
  HASH_ADD(hh, pf->locs, key, sizeof key, l);

  bool has_mod = rf->module < pf->snap->nmodules;
  /* A Python frame has no address: its Line says all (docs/python.md). */
  uint64_t addr = has_mod ? pf->snap->modules[rf->module].bias + rf->offset
                          : rf->module == SM_SNAP_PY_MODULE ? 0 : rf->offset;
  /* Lines first: func_id may encode a Function into pf->sub. */
  pb_t lines = {0};
  for (int i = b; i < e; i++) {
    const sm_sframe_t *f = &t->frames[i];
    if (!f->function && !f->file) continue; /* nothing known: pprof shows the address */
    pb_reset(&pf->line);
    pb_uint(&pf->line, LINE_FUNCTION_ID, func_id(pf, f->function ? f->function : "??", f->file));
    pb_uint(&pf->line, LINE_LINE, f->file && f->line > 0 ? (uint64_t)f->line : 0);
    pb_msg(&lines, LOCATION_LINE, &pf->line);
    if (has_mod) {
      mod_info_t *mi = &pf->mods[rf->module];
      if (f->function) mi->functions = true;
      if (f->file) mi->filenames = true;
      if (f->file && f->line > 0) mi->lines = true;
    }
  }
  pb_t *m = &pf->sub;
  pb_reset(m);
  pb_uint(m, LOCATION_ID, l->id);
  if (has_mod) pb_uint(m, LOCATION_MAPPING_ID, (uint64_t)rf->module + 1);
  pb_uint(m, LOCATION_ADDRESS, addr);
  pb_append(m, &lines);
  pb_msg(&pf->locations, PROFILE_LOCATION, m);
  pb_free(&lines);
  return l->id;
}

/* The offset in the file of the module's lowest PT_LOAD segment, the one
 * that starts at memory_start; 0 (right for what the GNU linkers make) when
 * the file is not there or is not the one that ran. */
static uint64_t first_load_offset(const sm_snap_module_t *m) {
  if (!m->path[0] || m->path[0] == '[') return 0;
  int fd = sm_open_regular(m->path, NULL, 0); /* never a FIFO or a device the snapshot names */
  if (fd < 0) return 0;
  uint64_t off = 0;
  Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
  const void *id;
  ssize_t idlen = elf ? dwelf_elf_gnu_build_id(elf, &id) : -1;
  size_t n;
  bool same = elf && (m->build_id_len == 0 || (idlen == (ssize_t)m->build_id_len && !memcmp(id, m->build_id, (size_t)idlen)));
  if (same && elf_getphdrnum(elf, &n) == 0) {
    uint64_t lowest = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
      GElf_Phdr ph;
      if (gelf_getphdr(elf, (int)i, &ph) && ph.p_type == PT_LOAD && ph.p_vaddr < lowest) {
        lowest = ph.p_vaddr;
        off = ph.p_offset;
      }
    }
  }
  if (elf) elf_end(elf);
  close(fd);
  return off;
}

static void value_type(profile_t *pf, pb_t *out, unsigned field, const char *type, const char *unit) {
  pb_reset(&pf->sub);
  pb_uint(&pf->sub, VALUETYPE_TYPE, str_idx(pf, type));
  pb_uint(&pf->sub, VALUETYPE_UNIT, str_idx(pf, unit));
  pb_msg(out, field, &pf->sub);
}

/* The profile's comments: what the numbers are, and where they came from. */
static void profile_comments(profile_t *pf, pb_t *out) {
  const sm_snap_t *snap = pf->snap;
  uint64_t comments[3];
  size_t ncomments = 0;
  strbuf_t sb = {0}, prog = {0};
  sm_escape(&prog, snap->program[0] ? snap->program : "?", 0);
  sb_printf(&sb, "snapmalloc snapshot %llu of %s (pid %llu): %s", (unsigned long long)snap->sequence, prog.s,
            (unsigned long long)snap->pid,
            snap->has_flow ? "live blocks (inuse_*) and allocations since tracing started or the last peak reset "
                             "(alloc_*)"
                           : "live blocks only (format version 1), so inuse_* and no alloc_*");
  free(prog.s);
  comments[ncomments++] = str_idx(pf, sb.s);
  if (snap->flags & SM_SNAP_SAMPLED) {
    sb.len = 0;
    sb_printf(&sb, "sampled: one allocation traced per %llu bytes on average; sizes and counts are estimates",
              (unsigned long long)snap->sample_bytes);
    comments[ncomments++] = str_idx(pf, sb.s);
  }
  if (snap->cmdline_len) {
    sb.len = 0;
    sb_puts(&sb, "command line:");
    for (size_t i = 0; i < snap->cmdline_len; i += strlen(snap->cmdline + i) + 1) {
      sb_putc(&sb, ' ');
      sm_escape(&sb, snap->cmdline + i, 0);
    }
    comments[ncomments++] = str_idx(pf, sb.s);
  }
  free(sb.s);
  pb_packed(out, PROFILE_COMMENT, comments, ncomments);
}

/* One Sample per trace of the model, its locations from the site out. */
static void profile_samples(profile_t *pf, const sm_model_t *m) {
  uint64_t *ids = NULL;
  size_t idcap = 0;
  for (size_t k = 0; k < m->ntraces; k++) {
    const sm_strace_t *t = &m->traces[k];
    if (!t->raw->count && !t->raw->allocations) continue; /* only peak figures: nothing to show */
    size_t nids = 0;
    for (int i = t->site; i < t->nframes;) {
      int raw = t->frames[i].raw, b = i, e = i;
      while (b > 0 && t->frames[b - 1].raw == raw) b--;
      while (e < t->nframes && t->frames[e].raw == raw) e++;
      if (nids == idcap) {
        idcap = idcap ? idcap * 2 : 64;
        ids = xrealloc(ids, idcap * sizeof *ids);
      }
      ids[nids++] = loc_id(pf, t, i, e, i - b);
      i = e;
    }
    const uint64_t values[4] = {t->raw->size, t->raw->count, t->raw->allocated, t->raw->allocations};
    size_t nvalues = pf->snap->has_flow ? 4 : 2;
    pb_reset(&pf->sub);
    pb_packed(&pf->sub, SAMPLE_LOCATION_ID, ids, nids);
    pb_packed(&pf->sub, SAMPLE_VALUE, values, nvalues);
    pb_msg(&pf->samples, PROFILE_SAMPLE, &pf->sub);
  }
  free(ids);
}

/* One Mapping per module of the snapshot (after the samples: its flags say
 * what the locations found). */
static void profile_mappings(profile_t *pf, pb_t *out) {
  for (uint32_t i = 0; i < pf->snap->nmodules; i++) {
    const sm_snap_module_t *mod = &pf->snap->modules[i];
    char hex[2 * 64 + 1];
    for (uint32_t j = 0; j < mod->build_id_len && j < 64; j++) sprintf(hex + 2 * j, "%02x", mod->build_id[j]);
    hex[2 * (mod->build_id_len < 64 ? mod->build_id_len : 64)] = '\0';
    pb_t *mm = &pf->sub;
    pb_reset(mm);
    pb_uint(mm, MAPPING_ID, (uint64_t)i + 1);
    pb_uint(mm, MAPPING_MEMORY_START, mod->start);
    pb_uint(mm, MAPPING_MEMORY_LIMIT, mod->end);
    pb_uint(mm, MAPPING_FILE_OFFSET, first_load_offset(mod));
    strbuf_t name = {0};
    sm_escape(&name, mod->path, 0);
    pb_uint(mm, MAPPING_FILENAME, str_idx(pf, name.s));
    free(name.s);
    pb_uint(mm, MAPPING_BUILD_ID, str_idx(pf, hex));
    /* True flags tell pprof the names are final: nothing to look up again. */
    pb_uint(mm, MAPPING_HAS_FUNCTIONS, pf->mods[i].functions);
    pb_uint(mm, MAPPING_HAS_FILENAMES, pf->mods[i].filenames);
    pb_uint(mm, MAPPING_HAS_LINE_NUMBERS, pf->mods[i].lines);
    pb_uint(mm, MAPPING_HAS_INLINE_FRAMES, pf->mods[i].lines); /* DWARF lines come with their inline chains */
    pb_msg(out, PROFILE_MAPPING, mm);
  }
}

static void profile_free(profile_t *pf) {
  func_ent_t *fe, *ft;
  HASH_ITER(hh, pf->funcs, fe, ft) {
    HASH_DEL(pf->funcs, fe);
    free(fe->key);
    free(fe);
  }
  loc_ent_t *le, *lt;
  HASH_ITER(hh, pf->locs, le, lt) {
    HASH_DEL(pf->locs, le);
    free(le);
  }
  sm_intern_free(pf->strings);
  free(pf->mods);
  pb_free(&pf->functions);
  pb_free(&pf->locations);
  pb_free(&pf->samples);
  pb_free(&pf->sub);
  pb_free(&pf->line);
}

/* Encodes the whole profile into out. */
static void build_profile(sm_model_t *m, pb_t *out) {
  sm_snap_t *snap = m->snap;
  profile_t pf = {0};
  pf.snap = snap;
  pf.mods = xcalloc(snap->nmodules ? snap->nmodules : 1, sizeof *pf.mods);
  pf.strings = sm_intern_new();
  str_idx(&pf, ""); /* string_table[0] must be "" */

  value_type(&pf, out, PROFILE_SAMPLE_TYPE, "inuse_space", "bytes");
  value_type(&pf, out, PROFILE_SAMPLE_TYPE, "inuse_objects", "count");
  if (snap->has_flow) {
    value_type(&pf, out, PROFILE_SAMPLE_TYPE, "alloc_space", "bytes");
    value_type(&pf, out, PROFILE_SAMPLE_TYPE, "alloc_objects", "count");
  }
  value_type(&pf, out, PROFILE_PERIOD_TYPE, "space", "bytes");
  bool sampled = (snap->flags & SM_SNAP_SAMPLED) != 0;
  pb_uint(out, PROFILE_PERIOD, sampled ? snap->sample_bytes : 1);
  pb_uint(out, PROFILE_TIME_NANOS, snap->time_ns);
  pb_uint(out, PROFILE_DEFAULT_SAMPLE_TYPE, str_idx(&pf, "inuse_space"));
  profile_comments(&pf, out);
  profile_samples(&pf, m);
  profile_mappings(&pf, out);

  /* Fields may come in any order: the string table last, once every string is in. */
  pb_append(out, &pf.samples);
  pb_append(out, &pf.locations);
  pb_append(out, &pf.functions);
  for (uint32_t i = 0; i < sm_intern_count(pf.strings); i++)
    pb_str(out, PROFILE_STRING_TABLE, sm_intern_str(pf.strings, i));
  profile_free(&pf);
}

/* ---------------------------------------------------------------- output */

/* Writes data gzip-compressed (pprof's files are gzipped profile.protos). */
static int write_gzip(FILE *f, const uint8_t *data, size_t n) {
  z_stream z;
  memset(&z, 0, sizeof z);
  /* 15 + 16: the largest window, with a gzip header and trailer instead of zlib's */
  if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -1;
  uint8_t buf[65536];
  int rc;
  do {
    if (z.avail_in == 0 && n) { /* avail_in is 32 bits: feed big inputs in pieces */
      size_t piece = n < (1u << 30) ? n : (1u << 30);
      z.next_in = (Bytef *)data;
      z.avail_in = (uInt)piece;
      data += piece;
      n -= piece;
    }
    z.next_out = buf;
    z.avail_out = sizeof buf;
    rc = deflate(&z, n || z.avail_in ? Z_NO_FLUSH : Z_FINISH);
    if (rc == Z_STREAM_ERROR) break;
    size_t have = sizeof buf - z.avail_out;
    if (have && fwrite(buf, 1, have, f) != have) {
      rc = Z_ERRNO;
      break;
    }
  } while (rc != Z_STREAM_END);
  deflateEnd(&z);
  return rc == Z_STREAM_END ? 0 : -1;
}

/* ---------------------------------------------------------------- command */

static const char export_help[] =
    "usage: snapmalloc export SNAPSHOT [options]\n\n"
    "Writes SNAPSHOT in a format other tools read.\n\n"
    "  --format pprof       gzip-compressed pprof profile.proto (default): for\n"
    "                       'go tool pprof' and the tools that read Go heap profiles;\n"
    "                       sample types inuse_space (bytes) and inuse_objects (count)\n"
    "                       and, from a version-2 snapshot, alloc_space and\n"
    "                       alloc_objects (allocated since tracing started)\n"
    "  --format folded      collapsed stacks, one line per trace: frame;frame;... BYTES\n"
    "  -o, --output FILE    write to FILE (default: standard output, '-')\n"
    "  --include GLOB       keep traces whose site file, function or module\n"
    "                       matches GLOB (repeatable)\n"
    "  --exclude GLOB       drop traces whose site matches GLOB (repeatable)\n"
    "  --raw                stacks start at the innermost frame, allocation wrappers\n"
    "                       (strdup, operator new, ...) included\n"
    "  --alloc-fn GLOB      a function of the program's own that allocates for its\n"
    "                       callers (xmalloc): never the site (repeatable)\n"
    "  --full-paths         do not shorten paths under the current directory\n";

enum { E_FORMAT = CLI_OWN };
static const struct option export_opts[] = {
    {"format", required_argument, NULL, E_FORMAT},
    {NULL, 0, NULL, 0},
};

typedef struct export_args {
  sm_report_opts_t o;
  bool pprof, to_stdout;
  const char *path, *output;
} export_args_t;

/* Parses export's arguments; false after --help (printed). */
static bool parse_export_args(int argc, char **argv, export_args_t *a) {
  static const char *const formats[] = {"pprof", "folded", NULL};
  memset(a, 0, sizeof *a);
  a->o.by = BY_TRACE;
  a->o.format = FMT_FOLDED;
  a->pprof = true;
  cli_select_init(&a->o, argc);
  cli_opts_t p;
  static const struct option *const groups[] = {export_opts, cli_output_opts, cli_select_opts, cli_naming_opts,
                                                cli_help_opts, NULL};
  cli_opts_init(&p, "export", "-o:", groups);
  int c;
  while ((c = cli_opts_next(&p, argc, argv)) != -1) {
    if (cli_select_opt(c, &a->o)) continue;
    switch (c) {
    case CLI_OPERAND:
      if (a->path) cli_usage_error("export", "takes one snapshot, not several");
      a->path = optarg;
      break;
    case E_FORMAT: a->pprof = cli_keyword("export", "--format", formats) == 0; break;
    case 'o':
      if (!*optarg) cli_usage_error("export", "--output takes a file name");
      a->output = optarg;
      break;
    case CLI_HELP:
      fputs(export_help, stdout);
      cli_select_free(&a->o);
      return false;
    }
  }
  if (!a->path) cli_usage_error("export", "needs a snapshot file");
  a->to_stdout = !a->output || !strcmp(a->output, "-");
  if (a->pprof && a->to_stdout && isatty(STDOUT_FILENO))
    cli_usage_error("export", "will not write a compressed profile to a terminal; use -o FILE");
  return true;
}

/* Writes the model to out as the arguments say; 0, or -1 if writing or
 * compressing failed. */
static int render_export(FILE *out, const export_args_t *a, sm_tools_ctx_t *ctx, sm_model_t *m) {
  int rc = 0;
  if (a->pprof) {
    pb_t buf = {0};
    build_profile(m, &buf);
    rc = write_gzip(out, buf.p, buf.len);
    pb_free(&buf);
  } else {
    sm_report(out, ctx, NULL, m);
  }
  return rc;
}

/* Flushes and closes the output; 0, or 2 after saying why it failed (and
 * removing a partial file). rc: what writing it returned. */
static int finish_output(FILE *out, const export_args_t *a, int rc) {
  errno = 0;
  if (fflush(out) != 0 || ferror(out)) rc = -1;
  int err = errno;
  if (!a->to_stdout && fclose(out) != 0) rc = -1, err = err ? err : errno;
  if (rc == 0) return 0;
  fprintf(stderr, "snapmalloc: %s: cannot write: %s\n", a->to_stdout ? "standard output" : a->output,
          err ? strerror(err) : "compression failed");
  if (!a->to_stdout) unlink(a->output);
  return 2;
}

int cmd_export(int argc, char **argv) {
  export_args_t a;
  if (!parse_export_args(argc, argv, &a)) return 0;
  sm_snap_t snap;
  if (cli_load(a.path, &snap) != 0) {
    cli_select_free(&a.o);
    return 2;
  }
  /* Open the output only now, so that bad input leaves no empty file behind. */
  FILE *out = a.to_stdout ? stdout : fopen(a.output, "wb");
  if (!out) {
    fprintf(stderr, "snapmalloc: %s: cannot write: %s\n", a.output, strerror(errno));
    sm_snap_free(&snap);
    cli_select_free(&a.o);
    return 2;
  }
  elf_version(EV_CURRENT);
  sm_tools_ctx_t *ctx = sm_ctx_new(&a.o);
  sm_model_t m;
  sm_model_build(ctx, &snap, &m);
  int rc = finish_output(out, &a, render_export(out, &a, ctx, &m));
  sm_model_free(&m);
  sm_ctx_free(ctx);
  sm_snap_free(&snap);
  cli_select_free(&a.o);
  return rc;
}
