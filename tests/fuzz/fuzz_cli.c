/* libFuzzer entry point for the whole command-line tool: one input is
 * written to a snapshot file and run through every command that reads
 * snapshots (top in each --by mode and format, at the peak and by a flow
 * figure, diff of the input with itself and with its peak, leaks, export as pprof and folded stacks, flame of one and of
 * two snapshots, timeline), in this process. Any input must give output
 * or one line of error, never a crash, hang, leak or undefined behaviour.
 * The checksum would stop most inputs at the door, so it is rewritten
 * first (the reader's own fuzzer, fuzz_snapread.c, keeps half of them).
 *   tests/fuzz/fuzz_cli.sh builds and runs it with clang's libFuzzer;
 *   replay.c runs its corpus (tests/fuzz/corpus-cli) in the normal build.
 * Reports go to /dev/null and files to a temporary directory;
 * SNAPFUZZ_VERBOSE=1 keeps the tool's messages on stderr. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tools/cli.h"
#include "tools/snapread.h"

static char dir[64];
static char in_path[128], out_pb[128], out_folded[128], out_svg[128], out_svg2[128], out_tl[128];

static void cleanup(void) {
  const char *files[] = {in_path, out_pb, out_folded, out_svg, out_svg2, out_tl};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(files[i]);
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/smfuzz.XXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    perror("fuzz_cli: mkdtemp");
    exit(1);
  }
  snprintf(in_path, sizeof in_path, "%s/in.snap", dir);
  snprintf(out_pb, sizeof out_pb, "%s/out.pb.gz", dir);
  snprintf(out_folded, sizeof out_folded, "%s/out.folded", dir);
  snprintf(out_svg, sizeof out_svg, "%s/flame.svg", dir);
  snprintf(out_svg2, sizeof out_svg2, "%s/diff.svg", dir);
  snprintf(out_tl, sizeof out_tl, "%s/timeline.svg", dir);
  atexit(cleanup);
  /* The reports of top, diff and leaks go to standard output. */
  if (!freopen("/dev/null", "w", stdout)) exit(1);
  /* The tool's own messages go through stdio's stderr; the fuzzer's and the
   * sanitizers' reports are written to descriptor 2 directly and stay. */
  if (!getenv("SNAPFUZZ_VERBOSE")) {
    FILE *null = fopen("/dev/null", "w");
    if (null) stderr = null;
  }
  return 0;
}

static void run(const char *const *args) {
  char *argv[16];
  int argc = 0;
  argv[argc++] = "snapmalloc";
  for (; *args && argc < 15; args++) argv[argc++] = (char *)*args;
  argv[argc] = NULL;
  sm_cli_main(argc, argv);
  fflush(stdout);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *copy = malloc(size ? size : 1);
  if (!copy) return 0;
  memcpy(copy, data, size);
  if (size >= SM_SNAP_HEADER_SIZE) { /* the checksum at offset 24, made right */
    uint32_t crc = sm_crc32(0, copy + SM_SNAP_HEADER_SIZE, size - SM_SNAP_HEADER_SIZE);
    memcpy(copy + 24, &crc, 4);
  }
  FILE *f = fopen(in_path, "wb");
  size_t wrote = f ? fwrite(copy, 1, size, f) : 0;
  free(copy);
  if (!f || fclose(f) != 0 || wrote != size) return 0;
  const char *in = in_path;
  const char *const cmds[][14] = {
      {"top", in, NULL},
      {"top", in, "--by", "file", "--format", "json", NULL},
      {"top", in, "--by", "function", "--cumulative", "--limit", "0", NULL},
      {"top", in, "--by", "trace", "--limit", "0", NULL},
      {"top", in, "--by", "trace", "--format", "json", "--raw", "--full-paths", NULL},
      {"top", in, "--format", "folded", NULL},
      {"top", in, "--at", "peak", "--by", "trace", NULL},
      {"top", in, "--sort", "temporary", "--cumulative", "--limit", "1", NULL},
      {"diff", in, in, "--limit", "0", NULL},
      {"diff", in, in, "--old-at", "peak", "--sort", "count", "--format", "json", "--limit", "1", NULL},
      {"diff", in, in, "--by", "trace", "--format", "json", NULL},
      {"leaks", in, NULL},
      {"leaks", in, "--format", "json", "--show", "reachable", NULL},
      {"export", in, "-o", out_pb, NULL},
      {"export", in, "--format", "folded", "-o", out_folded, NULL},
      {"flame", in, "-o", out_svg, NULL},
      {"flame", in, in, "-o", out_svg2, NULL},
      {"flame", in, in, "--old-at", "peak", "-o", out_svg2, NULL},
      {"timeline", in, in, "-o", out_tl, NULL},
  };
  for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) run(cmds[i]);
  return 0;
}
