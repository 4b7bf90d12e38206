/* The search for a file's separate debug file, as libdwfl's callbacks
 * (sym_internal.h). Not dwfl_standard_find_debuginfo, which may go to a
 * debuginfod server over the network: DIR/.build-id/xx/rest.debug for each
 * DIR in SNAPMALLOC_DEBUG_DIRS and /usr/lib/debug, then the
 * .gnu_debuglink name next to the file, in its .debug/ subdirectory and
 * under each DIR. Candidates are accepted only when their build-id (or,
 * for files without one, the debuglink CRC) matches. dwz alternate files
 * (.gnu_debugaltlink) go through the same callback. */
#include <elfutils/libdwelf.h>
#include <gelf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/sym_internal.h"
#include "tracer/snapfmt.h"
#include "tools/util.h"

static void hex_id(char *out, const uint8_t *id, size_t len) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < len; i++) {
    out[2 * i] = digits[id[i] >> 4];
    out[2 * i + 1] = digits[id[i] & 15];
  }
  out[2 * len] = '\0';
}

/* DIR/.build-id/xx/rest.debug into buf; false if it does not fit. */
static bool build_id_path(char *buf, size_t cap, const char *dir, const uint8_t *id, size_t len) {
  if (len < 2 || len > 64) return false;
  char hex[129];
  hex_id(hex, id, len);
  int n = snprintf(buf, cap, "%s/.build-id/%.2s/%s.debug", dir, hex, hex + 2);
  return n > 0 && (size_t)n < cap;
}

/* CRC-32 of a whole file, as .gnu_debuglink records it (the snapshot
 * format's CRC-32: the same polynomial and form). */
static bool file_crc32(int fd, uint32_t *out) {
  unsigned char buf[65536];
  uint32_t c = 0;
  off_t pos = 0;
  for (;;) {
    ssize_t r = pread(fd, buf, sizeof(buf), pos);
    if (r < 0) return false;
    if (r == 0) break;
    c = sm_crc32(c, buf, (size_t)r);
    pos += r;
  }
  *out = c;
  return true;
}

/* Opens path as a debug-file candidate.  Accepted when it is a regular ELF
 * file other than `self` whose build-id equals id (if id is given and the
 * candidate has one), else whose CRC equals crc (if check_crc).  Returns an
 * fd or -1. */
static int open_candidate(const char *path, const uint8_t *id, size_t idlen, bool check_crc,
                          uint32_t crc, const struct stat *self) {
  struct stat st;
  int fd = sm_sym_open(path, &st);
  if (fd < 0) return -1;
  if (self && st.st_dev == self->st_dev && st.st_ino == self->st_ino) {
    close(fd);
    return -1;
  }
  bool ok = false;
  Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
  if (elf && elf_kind(elf) == ELF_K_ELF) {
    const void *bits = NULL;
    ssize_t n = dwelf_elf_gnu_build_id(elf, &bits);
    if (idlen > 0 && n > 0) {
      ok = (size_t)n == idlen && memcmp(bits, id, idlen) == 0;
    } else if (check_crc) {
      uint32_t c;
      ok = file_crc32(fd, &c) && c == crc;
    } else {
      ok = idlen == 0;
    }
  }
  if (elf) elf_end(elf);
  if (!ok) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Reads .gnu_debugaltlink of a file: the alternate file's name and
 * build-id.  False if the file has none. */
static bool read_altlink(const char *path, char *name, size_t namecap, uint8_t *id, size_t *idlen) {
  int fd = sm_sym_open(path, NULL);
  if (fd < 0) return false;
  bool found = false;
  Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
  size_t shstrndx;
  if (elf && elf_kind(elf) == ELF_K_ELF && elf_getshdrstrndx(elf, &shstrndx) == 0) {
    Elf_Scn *scn = NULL;
    while (!found && (scn = elf_nextscn(elf, scn)) != NULL) {
      GElf_Shdr sh;
      if (!gelf_getshdr(scn, &sh)) continue;
      const char *sname = elf_strptr(elf, shstrndx, sh.sh_name);
      if (!sname || strcmp(sname, ".gnu_debugaltlink") != 0) continue;
      Elf_Data *d = elf_getdata(scn, NULL);
      if (!d || !d->d_buf || d->d_size == 0) break;
      const char *p = d->d_buf;
      size_t nl = strnlen(p, d->d_size);
      if (nl == d->d_size || nl + 1 > namecap) break;
      size_t il = d->d_size - nl - 1;
      if (il == 0 || il > 64) break;
      memcpy(name, p, nl + 1);
      memcpy(id, p + nl + 1, il);
      *idlen = il;
      found = true;
    }
  }
  if (elf) elf_end(elf);
  close(fd);
  return found;
}

/* Hands a found file to libdwfl: its descriptor, and its name (malloc'd). */
static int give_fd(int fd, const char *path, char **out_name) {
  *out_name = xstrdup(path);
  return fd;
}

/* The dwz alternate file named `name` with build-id id: at name itself
 * when absolute, else next to the file that asked (in dir), then under
 * each debug directory by build-id. */
static int find_altfile(const sm_symbolizer_t *s, const char *dir, const char *name, const uint8_t *id, size_t idlen,
                        char **out_name) {
  char path[PATH_MAX];
  int fd = -1;
  if (name[0] == '/') {
    fd = open_candidate(name, id, idlen, false, 0, NULL);
    if (fd >= 0) return give_fd(fd, name, out_name);
  } else {
    int n = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (n > 0 && (size_t)n < sizeof(path)) {
      fd = open_candidate(path, id, idlen, false, 0, NULL);
      if (fd >= 0) return give_fd(fd, path, out_name);
    }
  }
  for (size_t i = 0; i < s->ndirs; i++) {
    if (!build_id_path(path, sizeof(path), s->dirs[i], id, idlen)) continue;
    fd = open_candidate(path, id, idlen, false, 0, NULL);
    if (fd >= 0) return give_fd(fd, path, out_name);
  }
  return -1;
}

/* The file's own debug file: by build-id under each debug directory, then
 * by the .gnu_debuglink conventions (next to it, in its .debug/, and under
 * each debug directory); never the file itself (self). */
static int find_own_debug(const sm_symfile_t *m, const char *dir, const char *debuglink, GElf_Word crc,
                          const struct stat *self, char **out_name) {
  const sm_symbolizer_t *s = m->owner;
  char path[PATH_MAX];
  for (size_t i = 0; m->file_id_len > 0 && i < s->ndirs; i++) {
    if (!build_id_path(path, sizeof(path), s->dirs[i], m->file_id, m->file_id_len)) continue;
    int fd = open_candidate(path, m->file_id, m->file_id_len, false, 0, self);
    if (fd >= 0) return give_fd(fd, path, out_name);
  }
  if (!debuglink || !debuglink[0] || strchr(debuglink, '/')) return -1;
  const char *fmts[2] = {"%s/%s", "%s/.debug/%s"};
  for (int k = 0; k < 2; k++) {
    int n = snprintf(path, sizeof(path), fmts[k], dir, debuglink);
    if (n <= 0 || (size_t)n >= sizeof(path)) continue;
    int fd = open_candidate(path, m->file_id, m->file_id_len, true, crc, self);
    if (fd >= 0) return give_fd(fd, path, out_name);
  }
  for (size_t i = 0; i < s->ndirs; i++) {
    int n = snprintf(path, sizeof(path), "%s%s%s/%s", s->dirs[i], dir[0] == '/' ? "" : "/", dir, debuglink);
    if (n <= 0 || (size_t)n >= sizeof(path)) continue;
    int fd = open_candidate(path, m->file_id, m->file_id_len, true, crc, self);
    if (fd >= 0) return give_fd(fd, path, out_name);
  }
  return -1;
}

/* Dwfl find_debuginfo callback.  Called for the module's debug file and,
 * once DWARF is loaded, for its dwz alternate file. */
static int find_debuginfo_cb(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                             const char *file_name, const char *debuglink, GElf_Word crc, char **out_name) {
  (void)mod;
  (void)modname;
  (void)base;
  sm_symfile_t *m = userdata ? *userdata : NULL;
  if (!m || !file_name) return -1;
  /* Directory of the file that asked, resolved, for relative names. */
  char real[PATH_MAX];
  if (!realpath(file_name, real)) snprintf(real, sizeof(real), "%s", file_name);
  char dir[PATH_MAX];
  snprintf(dir, sizeof(dir), "%s", real);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
  else snprintf(dir, sizeof(dir), ".");
  char altname[PATH_MAX];
  uint8_t altid[64];
  size_t altidlen = 0;
  if (debuglink && crc == 0 && read_altlink(file_name, altname, sizeof(altname), altid, &altidlen) &&
      strcmp(altname, debuglink) == 0)
    return find_altfile(m->owner, dir, altname, altid, altidlen, out_name);
  struct stat self;
  bool have_self = stat(file_name, &self) == 0;
  return find_own_debug(m, dir, debuglink, crc, have_self ? &self : NULL, out_name);
}

/* Dwfl find_elf callback.  Never needed (the file is reported by path) and
 * kept away from dwfl_build_id_find_elf, which may ask a debuginfod server. */
static int find_elf_cb(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                       char **file_name, Elf **elfp) {
  (void)mod;
  (void)userdata;
  (void)modname;
  (void)base;
  (void)file_name;
  (void)elfp;
  return -1;
}

const Dwfl_Callbacks sm_symdebug_callbacks = {
    .find_elf = find_elf_cb,
    .find_debuginfo = find_debuginfo_cb,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = NULL,
};
