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
/* 2: tern_module_t.reconfigure.  3: stream/NS:NAME, session/in and
 * session/out events, tern_stream_send, tern_session_release. */
#define TERN_ABI 3

#endif
