/*
 * check.h — `ternctl check [HOST]` (check.c): DNS records, where they
 * point, and certificates, per host.
 */
#ifndef TERN_TERNCTL_CHECK_H
#define TERN_TERNCTL_CHECK_H

#include "config/config.h"

/* Check every host of cfg (or only `host`, when non-NULL), printing one
 * line per finding on stdout.  The number of problems found, or -1 when
 * the check could not run (the reason on stderr). */
int ternctl_check(const tern_config_t *cfg, const char *host);

#endif
