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

/* Version of the library, "MAJOR.MINOR.PATCH". */
const char *snapmalloc_version(void);

#ifdef __cplusplus
}
#endif

#endif
