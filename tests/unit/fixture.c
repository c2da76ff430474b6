/*
 * fixture.c — the small server the unit tests share (see fixture.h).
 */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "route/router.h"
#include "store/store.h"

static void drop_deliver(tern_session_t *s, tern_xml_t *st)
{
    (void)s;
    (void)st;
}

static void unbind_on_close(tern_session_t *s, const char *cond)
{
    (void)cond;
    sessions_unbind(s);
}

host_t *fixture_start(fixture_t *f, void (*deliver)(tern_session_t *s, tern_xml_t *st))
{
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/tern-test-XXXXXX");
    if (mkdtemp(f->dir) == NULL) {
        perror("fixture: mkdtemp");
        f->dir[0] = '\0';
        return NULL;
    }
    snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
    const char *why = NULL;
    server.db = store_open(f->path, &why);
    if (server.db == NULL) {
        fprintf(stderr, "fixture: store_open: %s\n", why != NULL ? why : "?");
        return NULL;
    }
    server.base = event_base_new();
    if (server.base == NULL || sessions_init() < 0) {
        fprintf(stderr, "fixture: no event base or session table\n");
        return NULL;
    }
    f->host.name = FIXTURE_HOST;
    f->cfg.hosts = &f->host;
    f->cfg.n_hosts = 1;
    f->cfg.module_path = "/nonexistent";
    cfg_error_t err;
    if (hosts_init(&f->cfg, &err) < 0) {
        fprintf(stderr, "fixture: hosts_init failed\n");
        return NULL;
    }
    f->link.deliver = deliver != NULL ? deliver : drop_deliver;
    f->link.close = unbind_on_close;
    return hosts_find(FIXTURE_HOST);
}

tern_session_t *fixture_session(fixture_t *f, const char *user, const char *resource)
{
    host_t *host = hosts_find(FIXTURE_HOST);
    if (host == NULL || f->n_sessions == FIXTURE_MAX_SESSIONS)
        return NULL;
    tern_session_t *s = sessions_new(host, &f->link, NULL);
    if (s == NULL)
        return NULL;
    const char *e = NULL;
    if (sessions_bind(s, user, resource, CONFLICT_KICK_OLD, 0, &e) < 0) {
        fprintf(stderr, "fixture: bind %s/%s: %s\n", user, resource, e != NULL ? e : "?");
        sessions_end(&s);
        return NULL;
    }
    f->sessions[f->n_sessions++] = s;
    return s;
}

void fixture_stop(fixture_t *f)
{
    for (size_t i = 0; i < f->n_sessions; i++)
        sessions_end(&f->sessions[i]);
    f->n_sessions = 0;
    hosts_free_all();
    sessions_free_all();
    router_free();
    if (server.base != NULL)
        event_base_free(server.base);
    server.base = NULL;
    store_close(&server.db);
    if (f->dir[0] == '\0')
        return;
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s%s", f->path, suffix[i]);
        unlink(p);
    }
    rmdir(f->dir);
}
