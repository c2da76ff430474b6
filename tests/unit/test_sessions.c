/*
 * test_sessions.c — session objects of src/route/sessions.c and the
 * directory of src/route/directory.c.
 *
 * A real host with its hooks, a real router and session table, and fake
 * links that record what they are given.  Checks binding, detaching
 * (the session stays bound, its presence and slots with it), the queue
 * of a detached session and its caps, attaching again (flushed in order),
 * the final end while detached (nothing leaks: run under ASan), a new
 * bind over a detached session, the counts and the session/ events.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "route/hooks.h"
#include "core/modules.h"
#include "core/server.h"
#include "route/directory.h"
#include "route/router.h"
#include "route/sessions.h"

#define MAX_GOT 16

/* A stream as the session sees it: what reached it, in order. */
typedef struct link_rec {
    tern_xml_t *got[MAX_GOT];
    int n;
    int closed;
} link_rec_t;

static void rec_deliver(tern_session_t *s, tern_xml_t *st)
{
    link_rec_t *r = s->link.conn;
    if (r->n < MAX_GOT)
        r->got[r->n++] = tern_xml_ref(st);
}

static void rec_close(tern_session_t *s, const char *cond)
{
    link_rec_t *r = s->link.conn;
    r->closed++;
    sessions_unbind(s);
}

/* Input holds through the link (sessions_hold_input). */
static int holds, releases;

static void rec_hold(tern_session_t *s)
{
    (void)s;
    holds++;
}

static void rec_release(tern_session_t *s)
{
    (void)s;
    releases++;
}

static void rec_reset(link_rec_t *r)
{
    for (int i = 0; i < r->n; i++)
        tern_xml_unref(r->got[i]);
    r->n = 0;
}

static session_link_t link_to(link_rec_t *r)
{
    session_link_t l = {.deliver = rec_deliver, .close = rec_close, .conn = r};
    return l;
}

/* Events seen on the host. */
static tern_module_ctx_t watcher;
static int n_detached_ev, n_resumed_ev, n_closed_ev;
static tern_session_t *last_ev_session;
static int resumed_queue_empty;
static char offline_ids[16][16];
static int n_offline, offline_takes = 1;

static int on_detached(tern_module_ctx_t *m, tern_event_t *ev)
{
    n_detached_ev++;
    last_ev_session = ev->session;
    return TERN_PASS;
}

static int on_resumed(tern_module_ctx_t *m, tern_event_t *ev)
{
    n_resumed_ev++;
    last_ev_session = ev->session;
    resumed_queue_empty = sessions_queued(ev->session, NULL) == 0;
    return TERN_PASS;
}

static int on_closed(tern_module_ctx_t *m, tern_event_t *ev)
{
    n_closed_ev++;
    last_ev_session = ev->session;
    return TERN_PASS;
}

static int on_offline(tern_module_ctx_t *m, tern_event_t *ev)
{
    if (n_offline < 16) {
        const char *id = tern_xml_attr(ev->stanza, "id");
        snprintf(offline_ids[n_offline++], sizeof(offline_ids[0]), "%s", id ? id : "");
    }
    return offline_takes ? TERN_HANDLED : TERN_PASS;
}

static int slot_frees;
static void slot_free(void *p)
{
    slot_frees++;
    free(p);
}

static tern_xml_t *stanza(const char *kind, const char *type, const char *id, const char *body)
{
    tern_xml_t *st = tern_xml_new(kind, TERN_NS_CLIENT);
    if (type)
        tern_xml_set_attr(st, "type", type);
    tern_xml_set_attr(st, "id", id);
    tern_xml_set_attr(st, "from", "romeo@example.com/orchard");
    tern_xml_set_attr(st, "to", "juliet@example.com/balcony");
    if (body) {
        tern_xml_t *b = tern_xml_add_child(st, "body", TERN_NS_CLIENT);
        tern_xml_add_text(b, body, strlen(body));
    }
    return st;
}

/* Hand a new stanza to s as the router would, dropping our reference. */
static void give(tern_session_t *s, const char *kind, const char *type, const char *id,
                 const char *body)
{
    tern_xml_t *st = stanza(kind, type, id, body);
    sessions_deliver(s, st);
    tern_xml_unref(st);
}

static int ids_are(const link_rec_t *r, const char *const *ids, int n)
{
    if (r->n != n)
        return 0;
    for (int i = 0; i < n; i++) {
        const char *id = tern_xml_attr(r->got[i], "id");
        if (!id || strcmp(id, ids[i]) != 0)
            return 0;
    }
    return 1;
}

static int count_loc(void *ctx, const dir_location_t *loc)
{
    int *n = ctx;
    if (loc->where == DIR_LOCAL && loc->session)
        (*n)++;
    return 0;
}

int main(void)
{
    cfg_host_t hc = {.name = "example.com"};
    tern_config_t cfg = {.hosts = &hc, .n_hosts = 1, .module_path = "/nonexistent"};
    cfg_error_t err;
    CHECK(sessions_init() == 0);
    CHECK(hosts_init(&cfg, &err) == 0);
    host_t *h = hosts_find("example.com");
    CHECK(h != NULL);
    if (!h)
        return check_summary();
    CHECK(hooks_add(h->hooks, "session/detached", on_detached, 0, &watcher) == 0);
    CHECK(hooks_add(h->hooks, "session/resumed", on_resumed, 0, &watcher) == 0);
    CHECK(hooks_add(h->hooks, "session/closed", on_closed, 0, &watcher) == 0);
    CHECK(hooks_add(h->hooks, "message/offline", on_offline, 0, &watcher) == 0);

    /* Romeo is a plain attached session: errors bounced to him land here. */
    link_rec_t romeo_rec = {0};
    session_link_t rl = link_to(&romeo_rec);
    tern_session_t *romeo = sessions_new(h, &rl, "192.0.2.2");
    const char *why = NULL;
    CHECK(sessions_bind(romeo, "romeo", "orchard", CONFLICT_KICK_OLD, 0, &why) == 0);

    /* Bind. */
    link_rec_t first = {0};
    session_link_t l1 = link_to(&first);
    tern_session_t *s = sessions_new(h, &l1, "192.0.2.1");
    CHECK(s != NULL);
    if (!s)
        return check_summary();
    CHECK(s->jid == NULL && strcmp(s->peer_ip, "192.0.2.1") == 0);
    CHECK(sessions_bind(s, "juliet", "balcony", CONFLICT_KICK_OLD, 0, &why) == 0);
    CHECK(sessions_count() == 2 && sessions_count_detached() == 0);
    s->available = 1;
    s->priority = 3;
    /* A slot taken back is gone, and its free function does not run. */
    static char taker;
    const tern_module_ctx_t *taker_key = (const tern_module_ctx_t *)(const void *)&taker;
    int frees_before = slot_frees;
    CHECK(sessions_slot_set(s, taker_key, &taker, slot_free) == 0);
    CHECK(sessions_slot_take(s, taker_key) == &taker);
    CHECK(sessions_slot_get(s, taker_key) == NULL && slot_frees == frees_before);
    CHECK(sessions_slot_take(s, taker_key) == NULL);
    int *data = malloc(sizeof(int));
    CHECK(sessions_slot_set(s, &watcher, data, slot_free) == 0);
    give(s, "message", "chat", "a0", "hi");
    CHECK(first.n == 1 && sessions_queued(s, NULL) == 0);
    rec_reset(&first);
    /* A link that cannot hold input: not held.  One that can: through it. */
    CHECK(sessions_hold_input(s) == 0 && holds == 0);
    sessions_release_input(s);
    CHECK(releases == 0);
    s->link.hold = rec_hold;
    s->link.release = rec_release;
    CHECK(sessions_hold_input(s) == 1 && holds == 1);
    sessions_release_input(s);
    CHECK(releases == 1);
    s->link.hold = NULL;
    s->link.release = NULL;

    /* Detach: still bound, found, available; slots kept; event fired. */
    CHECK(sessions_detach(s) == 0);
    CHECK(n_detached_ev == 1 && last_ev_session == s);
    CHECK(sessions_detach(s) < 0);
    CHECK(sessions_hold_input(s) == 0 && holds == 1); /* detached: no input to hold */
    sessions_release_input(s);
    CHECK(releases == 1);
    CHECK(sessions_count() == 2 && sessions_count_detached() == 1);
    CHECK(sessions_find_full("juliet@example.com/balcony") == s);
    CHECK(sessions_find_bare("juliet@example.com") != NULL);
    CHECK(tern_session_available(s) == 1 && tern_session_priority(s) == 3);
    CHECK(sessions_slot_get(s, &watcher) == data);
    dir_location_t loc;
    CHECK(directory_find_full("juliet@example.com/balcony", &loc) == DIR_LOCAL);
    CHECK(loc.session == s && loc.detached == 1 && loc.serial == s->serial);
    CHECK(directory_find_full("juliet@example.com/nowhere", &loc) == DIR_NONE);
    CHECK(loc.session == NULL);
    CHECK(directory_has_bare("juliet@example.com") && !directory_has_bare("nurse@example.com"));
    int locs = 0;
    CHECK(directory_foreach_bare("juliet@example.com", count_loc, &locs) == 1 && locs == 1);

    /* Queued while detached, both ways in (routed and module output). */
    give(s, "message", "chat", "m1", "one");
    tern_xml_t *st = stanza("message", "chat", "m2", "two");
    tern_session_send(s, st);
    tern_xml_unref(st);
    give(s, "presence", NULL, "p3", NULL);
    size_t bytes = 0;
    CHECK(sessions_queued(s, &bytes) == 3 && bytes > 0);
    CHECK(first.n == 0 && romeo_rec.n == 0 && n_offline == 0);

    /* Attach: flushed in order, then session/resumed. */
    link_rec_t second = {0};
    session_link_t l2 = link_to(&second);
    CHECK(sessions_attach(s, &l2) == 0);
    CHECK(sessions_attach(s, &l2) < 0);
    static const char *const order1[] = {"m1", "m2", "p3"};
    CHECK(ids_are(&second, order1, 3));
    CHECK(n_resumed_ev == 1 && last_ev_session == s && resumed_queue_empty);
    CHECK(sessions_queued(s, NULL) == 0 && sessions_count_detached() == 0);
    give(s, "message", "chat", "m4", "four");
    CHECK(second.n == 4 && first.n == 0);
    rec_reset(&second);

    /* Detach again, attach a third stream. */
    CHECK(sessions_detach(s) == 0 && n_detached_ev == 2);
    give(s, "message", "chat", "r1", NULL);
    give(s, "iq", "get", "r2", NULL);
    link_rec_t third = {0};
    session_link_t l3 = link_to(&third);
    CHECK(sessions_attach(s, &l3) == 0 && n_resumed_ev == 2);
    static const char *const order2[] = {"r1", "r2"};
    CHECK(ids_are(&third, order2, 2));
    rec_reset(&third);

    /* The count cap: the oldest leave the queue the undelivered way;
     * chat messages go to message/offline, an iq get is bounced. */
    sessions_set_queue_limits(3, 0);
    CHECK(sessions_detach(s) == 0);
    give(s, "iq", "get", "q0", NULL);
    give(s, "message", "chat", "q1", "one");
    give(s, "message", "chat", "q2", "two");
    give(s, "message", "headline", "q3", "three");
    CHECK(sessions_queued(s, NULL) == 3);
    CHECK(romeo_rec.n == 1 && strcmp(tern_xml_attr(romeo_rec.got[0], "type"), "error") == 0);
    CHECK(strcmp(tern_xml_attr(romeo_rec.got[0], "id"), "q0") == 0);
    rec_reset(&romeo_rec);
    give(s, "message", "chat", "q4", "four");
    CHECK(n_offline == 1 && strcmp(offline_ids[0], "q1") == 0);
    CHECK(sessions_queued(s, NULL) == 3);
    /* Nobody takes it offline: bounced to the sender. */
    offline_takes = 0;
    give(s, "message", "chat", "q5", "five");
    CHECK(n_offline == 2 && strcmp(offline_ids[1], "q2") == 0);
    CHECK(romeo_rec.n == 1 && strcmp(tern_xml_attr(romeo_rec.got[0], "id"), "q2") == 0);
    rec_reset(&romeo_rec);
    offline_takes = 1;
    /* A headline leaving the queue is dropped. */
    give(s, "message", "chat", "q6", "six");
    CHECK(n_offline == 2 && romeo_rec.n == 0 && sessions_queued(s, NULL) == 3);

    /* The byte cap. */
    sessions_set_queue_limits(100, 400);
    char big[200];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    give(s, "message", "chat", "b1", big); /* q4..q6 leave to make room */
    CHECK(sessions_queued(s, &bytes) == 1 && bytes <= 400);
    CHECK(n_offline == 5 && strcmp(offline_ids[4], "q6") == 0);
    give(s, "message", "chat", "b2", big); /* b1 leaves */
    CHECK(sessions_queued(s, &bytes) == 1 && bytes <= 400 && n_offline == 6);
    char huge[600];
    memset(huge, 'y', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    give(s, "message", "chat", "b3", huge); /* over the cap alone: never waits */
    CHECK(sessions_queued(s, NULL) == 1 && n_offline == 7 && strcmp(offline_ids[6], "b3") == 0);
    sessions_set_queue_limits(256, 256 * 1024);

    /* A new bind of the same full JID ends the detached session, even
     * under the refuse policy; what it held goes offline. */
    link_rec_t fourth = {0};
    session_link_t l4 = link_to(&fourth);
    tern_session_t *s2 = sessions_new(h, &l4, NULL);
    int closed_before = n_closed_ev;
    CHECK(sessions_bind(s2, "juliet", "balcony", CONFLICT_REFUSE, 1, &why) == 0);
    CHECK(n_closed_ev == closed_before + 1 && n_offline == 8);
    CHECK(slot_frees == 1);
    CHECK(sessions_find_full("juliet@example.com/balcony") == s2);
    CHECK(sessions_count() == 2 && sessions_count_detached() == 0);
    /* An attached one is still refused. */
    tern_session_t *s3 = sessions_new(h, &l4, NULL);
    CHECK(sessions_bind(s3, "juliet", "balcony", CONFLICT_REFUSE, 0, &why) < 0);
    CHECK(why && strcmp(why, "conflict") == 0);
    sessions_end(&s3);
    CHECK(s3 == NULL);

    /* End while detached: events, queue and slots all go (ASan checks). */
    CHECK(sessions_slot_set(s2, &watcher, malloc(8), slot_free) == 0);
    CHECK(sessions_detach(s2) == 0 && sessions_count_detached() == 1);
    give(s2, "message", "headline", "e1", "news");
    give(s2, "presence", NULL, "e2", NULL);
    CHECK(sessions_queued(s2, NULL) == 2);
    closed_before = n_closed_ev;
    sessions_end(&s2);
    CHECK(s2 == NULL && n_closed_ev == closed_before + 1 && slot_frees == 2);
    CHECK(sessions_count() == 1 && sessions_count_detached() == 0);
    CHECK(sessions_find_full("juliet@example.com/balcony") == NULL);
    CHECK(!directory_has_bare("juliet@example.com"));

    /* Closing a detached session (an admin's kick) ends it at once. */
    tern_session_t *s4 = sessions_new(h, &l4, NULL);
    CHECK(sessions_bind(s4, "juliet", "garden", CONFLICT_KICK_OLD, 0, &why) == 0);
    CHECK(sessions_detach(s4) == 0);
    give(s4, "message", "chat", "k1", "bye");
    closed_before = n_closed_ev;
    tern_session_close(s4, "policy-violation");
    CHECK(n_closed_ev == closed_before + 1);
    CHECK(n_offline == 9);
    CHECK(fourth.closed == 0);
    CHECK(sessions_count() == 1 && sessions_count_detached() == 0);

    /* RFC 6121 §8.5.3.2.1: what a session never took goes first to the
     * user's other available resources of non-negative priority. */
    link_rec_t other_rec = {0}, shy_rec = {0};
    session_link_t lo = link_to(&other_rec), ls = link_to(&shy_rec);
    tern_session_t *other = sessions_new(h, &lo, NULL);
    tern_session_t *shy = sessions_new(h, &ls, NULL);
    CHECK(sessions_bind(other, "juliet", "desk", CONFLICT_KICK_OLD, 0, &why) == 0);
    CHECK(sessions_bind(shy, "juliet", "hidden", CONFLICT_KICK_OLD, 0, &why) == 0);
    other->available = 1;
    shy->available = 1;
    shy->priority = -1;
    tern_session_t *s6 = sessions_new(h, &l4, NULL);
    CHECK(sessions_bind(s6, "juliet", "phone", CONFLICT_KICK_OLD, 0, &why) == 0);
    CHECK(sessions_detach(s6) == 0);
    give(s6, "message", "chat", "o1", "for the desk");
    give(s6, "presence", NULL, "o2", NULL);
    tern_session_close(s6, NULL);
    CHECK(n_offline == 9 && other_rec.n == 1 && shy_rec.n == 0);
    CHECK(other_rec.n == 1 && strcmp(tern_xml_attr(other_rec.got[0], "id"), "o1") == 0);
    /* sessions_undelivered: the same way, for a stanza a module kept. */
    tern_xml_t *kept = tern_xml_new("message", TERN_NS_CLIENT);
    tern_xml_set_attr(kept, "type", "chat");
    tern_xml_set_attr(kept, "id", "o3");
    tern_xml_set_attr(kept, "from", "romeo@example.com/orchard");
    tern_xml_set_attr(kept, "to", "juliet@example.com/hidden");
    sessions_undelivered(shy, kept);
    CHECK(other_rec.n == 2 && shy_rec.n == 0 && n_offline == 9);
    /* With no other resource available: offline. */
    other->available = 0;
    sessions_undelivered(shy, kept);
    CHECK(other_rec.n == 2 && n_offline == 10);
    tern_xml_unref(kept);
    rec_reset(&other_rec);
    sessions_end(&other);
    sessions_end(&shy);

    /* A detached session left at shutdown is freed with the tables. */
    tern_session_t *s5 = sessions_new(h, &l4, NULL);
    CHECK(sessions_bind(s5, "juliet", "attic", CONFLICT_KICK_OLD, 0, &why) == 0);
    CHECK(sessions_slot_set(s5, &watcher, malloc(8), slot_free) == 0);
    CHECK(sessions_detach(s5) == 0);
    give(s5, "message", "chat", "z1", "left");

    rec_reset(&romeo_rec);
    sessions_end(&romeo);
    hooks_remove_owner(h->hooks, &watcher);
    sessions_drop_owner(&watcher);
    CHECK(slot_frees == 3);
    hosts_free_all();
    sessions_free_all();
    router_free();
    return check_summary();
}
