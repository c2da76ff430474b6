/*
 * tern/defs.h — common definitions of the public module API.
 *
 * The core is built with -fvisibility=hidden; only what is marked TERN_API
 * is visible to modules.  TERN_ABI changes whenever a public struct or a
 * function signature changes: the loader refuses modules built for another.
 */
#ifndef TERN_DEFS_H
#define TERN_DEFS_H

#define TERN_API __attribute__((visibility("default")))
#define TERN_ABI 2 /* 2: tern_module_t.reconfigure */

#endif
