/*
 * fixture.h — the set-up shared by the unit tests that need a small
 * server: a store file in a fresh temporary folder, an event base, the
 * session table, one host (FIXTURE_HOST) and fake sessions bound on it.
 *
 * The fixture fills the global `server` record (core/server.h) and undoes
 * all of it in fixture_stop.  It reports through return values, never
 * through CHECK (check.h counts per test file): the caller checks them.
 */
#ifndef TERN_TEST_FIXTURE_H
#define TERN_TEST_FIXTURE_H

#include "core/modules.h"
#include "core/server.h"
#include "route/sessions.h"

#define FIXTURE_HOST         "example.com"
#define FIXTURE_MAX_SESSIONS 4

typedef struct fixture {
    char dir[64];   /* the temporary folder */
    char path[128]; /* the store file in it */
    cfg_host_t host;
    tern_config_t cfg;
    session_link_t link;
    tern_session_t *sessions[FIXTURE_MAX_SESSIONS]; /* ended by fixture_stop */
    size_t n_sessions;
} fixture_t;

/* Open the store, make the event base, the session table and the host
 * FIXTURE_HOST.  `deliver` receives what is sent to the fake sessions
 * (NULL: dropped).  The host, or NULL (with a message on stderr). */
host_t *fixture_start(fixture_t *f, void (*deliver)(tern_session_t *s, tern_xml_t *st));

/* A fake session bound as user@FIXTURE_HOST/resource; closing it unbinds
 * it.  NULL on failure (at most FIXTURE_MAX_SESSIONS). */
tern_session_t *fixture_session(fixture_t *f, const char *user, const char *resource);

/* End the sessions still there, free the hosts, sessions, router, event
 * base and store, and remove the files.  The worker pool, if the test
 * started one, is the test's to stop first. */
void fixture_stop(fixture_t *f);

#endif
