/*
 * account_jobs.h — tern_account_create_async and tern_account_passwd_async
 * (internal side; see account_jobs.c).
 */
#ifndef TERN_ACCOUNT_JOBS_H
#define TERN_ACCOUNT_JOBS_H

#include <tern/module.h>

/* The module is being unloaded: its pending jobs are dropped and their
 * callbacks told (s == NULL) now, while its code is still there. */
void account_jobs_release(tern_module_ctx_t *m);

#endif
