/* The tool's one string interning table: each distinct string is kept
 * once, in an arena, with an index (the order in which strings were first
 * interned) and a pointer that stays valid until the table is freed. An
 * entry may carry one derived string (aux: the symbolizer keeps a name's
 * demangled form there). Used by the symbolizer (symbol, file and function
 * names), the report's model (display forms) and export (pprof's string
 * table, whose indexes are these).
 * Out of memory: the tool's one policy, util.c's x* functions (one line,
 * exit 2). */
#ifndef SM_TOOLS_INTERN_H
#define SM_TOOLS_INTERN_H

#include <stddef.h>
#include <stdint.h>

typedef struct sm_intern sm_intern_t;

sm_intern_t *sm_intern_new(void);
void sm_intern_free(sm_intern_t *t);
/* The index of the string s[0..n) (which holds no NUL), added if new. */
uint32_t sm_intern_id(sm_intern_t *t, const char *s, size_t n);
/* s interned; NULL stays NULL. */
const char *sm_intern(sm_intern_t *t, const char *s);
const char *sm_intern_str(const sm_intern_t *t, uint32_t id);
uint32_t sm_intern_count(const sm_intern_t *t);
/* The derived string of entry id (NULL until set). */
const char *sm_intern_aux(const sm_intern_t *t, uint32_t id);
void sm_intern_set_aux(sm_intern_t *t, uint32_t id, const char *aux);
/* The table's hash of n bytes (FNV-1a, folded), for other tables keyed by strings. */
uint64_t sm_hash_bytes(const void *p, size_t n);

#endif
