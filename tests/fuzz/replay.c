/* Runs every file of a fuzzing corpus through a fuzz target (the reader's,
 * fuzz_snapread.c, or the whole tool's, fuzz_cli.c): a crash fails the
 * test. Built with the normal compiler, so CI needs no fuzzer. Prints how
 * many inputs were replayed. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Defined by the targets that need a set-up, as libFuzzer allows. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  int out = dup(STDOUT_FILENO); /* a target may send standard output elsewhere */
  if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
  DIR *d = opendir(argv[1]);
  if (!d) {
    perror(argv[1]);
    return 1;
  }
  struct dirent *e;
  int n = 0;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
    FILE *f = fopen(path, "rb");
    if (!f) continue;
    static uint8_t buf[1 << 22];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    LLVMFuzzerTestOneInput(buf, len);
    n++;
  }
  closedir(d);
  dprintf(out, "%d corpus inputs replayed\n", n);
  return n > 0 ? 0 : 1;
}
