/* snapmalloc's public API. Exported by libsnapmalloc.so; a program that
 * should also run without the library looks the functions up at run time:
 *
 *   int (*snap)(const char *) = (int (*)(const char *))dlsym(RTLD_DEFAULT, "snapmalloc_snapshot");
 *   if (snap) snap(NULL);
 */
#ifndef SNAPMALLOC_H
#define SNAPMALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SNAPMALLOC_VERSION_STRING "0.1.0"

/* Version of the library, "MAJOR.MINOR.PATCH". */
const char *snapmalloc_version(void);

/* Writes a snapshot of the live traced allocations now: to `path`, or to the
 * next name of the `out` pattern when path is NULL. Returns 0, or -1 with
 * errno set (ENOTSUP when tracing was never on and the control channel is
 * not armed). A snapshot written while tracing is off (stopped through the
 * control channel) says so, and holds the blocks traced before. */
int snapmalloc_snapshot(const char *path);

/* Bytes currently charged to traces (estimated when sampling); the peak since
 * start or the last reset goes to *peak when it is not NULL. Like Python's
 * tracemalloc.get_traced_memory(). */
size_t snapmalloc_traced_memory(size_t *peak);

/* Sets the peak to the current traced size (tracemalloc.reset_peak()):
 * the next snapshots' figures at the peak describe the peak from here on,
 * and their flow figures (allocations, bytes allocated, temporary blocks)
 * count from here. */
void snapmalloc_reset_peak(void);

#ifdef __cplusplus
}
#endif

#endif
