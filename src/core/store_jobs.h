/*
 * store_jobs.h — the tern_*_async store calls (internal side; see
 * store_jobs.c).
 */
#ifndef TERN_STORE_JOBS_H
#define TERN_STORE_JOBS_H

#include <tern/module.h>

/* The module is being unloaded: its pending reads are dropped and their
 * callbacks told (result NULL) now, while its code is still there. */
void store_jobs_release(tern_module_ctx_t *m);
/* Reads not yet delivered (tests). */
size_t store_jobs_pending(void);

#endif
