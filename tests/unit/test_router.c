/*
 * test_router.c — routing rules (RFC 6120 §10, RFC 6121 §8) checked with
 * fake sessions that record what they receive, a real session table, real
 * hooks and a real account store.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "route/hooks.h"
#include "core/modules.h"
#include "core/server.h"
#include "route/domains.h"
#include "route/router.h"
#include "route/sessions.h"
#include "xmpp/stanza.h"

#define MAX_GOT 16

typedef struct fake {
    tern_session_t *s;
    tern_xml_t *got[MAX_GOT];
    int n;
} fake_t;

static void fake_deliver(tern_session_t *s, tern_xml_t *st)
{
    fake_t *f = s->link.conn;
    if (f->n < MAX_GOT)
        f->got[f->n++] = tern_xml_ref(st);
}

static void fake_close(tern_session_t *s, const char *cond)
{
    sessions_unbind(s);
}

static void fake_reset(fake_t *f)
{
    for (int i = 0; i < f->n; i++)
        tern_xml_unref(f->got[i]);
    f->n = 0;
}

static fake_t *fake_new(host_t *h)
{
    fake_t *f = calloc(1, sizeof(*f));
    session_link_t link = {.deliver = fake_deliver, .close = fake_close, .conn = f};
    f->s = sessions_new(h, &link, NULL);
    return f;
}

static fake_t *fake_bind(const char *user, const char *res, int available, int prio)
{
    fake_t *f = fake_new(hosts_find("example.com"));
    const char *err = NULL;
    CHECK(sessions_bind(f->s, user, res, CONFLICT_KICK_OLD, 0, &err) == 0);
    f->s->available = available;
    f->s->priority = prio;
    return f;
}

static void fake_free(fake_t *f)
{
    fake_reset(f);
    sessions_end(&f->s);
    free(f);
}

/* Build and route a stanza from `from` (a fake session, or NULL with from_jid). */
static void send(fake_t *from, const char *from_jid, const char *kind, const char *type,
                 const char *to, const char *payload_ns)
{
    tern_xml_t *st = tern_xml_new(kind, TERN_NS_CLIENT);
    if (type)
        tern_xml_set_attr(st, "type", type);
    if (to)
        tern_xml_set_attr(st, "to", to);
    tern_xml_set_attr(st, "id", "x1");
    tern_xml_set_attr(st, "from", from ? from->s->jid->full : from_jid);
    if (payload_ns)
        tern_xml_add_child(st, "query", payload_ns);
    router_route(st, from ? from->s : NULL);
    tern_xml_unref(st);
}

static const char *error_condition(const tern_xml_t *st)
{
    tern_xml_t *err = tern_xml_child(st, "error", TERN_NS_CLIENT);
    tern_xml_t *cond = err ? tern_xml_first_element(err) : NULL;
    return cond ? cond->name : "(none)";
}

static int calls_a, calls_b, offline_calls;
static int handler_a(tern_module_ctx_t *m, tern_event_t *ev)
{
    calls_a++;
    return TERN_PASS;
}
static int handler_b(tern_module_ctx_t *m, tern_event_t *ev)
{
    calls_b++;
    CHECK(calls_a == 0); /* higher priority runs first */
    return TERN_HANDLED;
}
static int on_offline(tern_module_ctx_t *m, tern_event_t *ev)
{
    offline_calls++;
    return TERN_HANDLED;
}

/* A filter that keeps every stanza it sees from going further. */
static int drop(tern_module_ctx_t *m, tern_event_t *ev)
{
    return TERN_HANDLED;
}

/* Answers an iq for an account, as modules do (vCard, disco#info...). */
static int answer_for_account(tern_module_ctx_t *m, tern_event_t *ev)
{
    tern_xml_t *r = tern_xml_new("iq", TERN_NS_CLIENT);
    tern_xml_set_attr(r, "type", "result");
    tern_xml_set_attr(r, "id", tern_xml_attr(ev->stanza, "id"));
    tern_xml_set_attr(r, "to", ev->from->full);
    tern_xml_set_attr(r, "from", ev->to->bare);
    router_route(r, NULL);
    tern_xml_unref(r);
    return TERN_HANDLED;
}

static tern_xml_t *component_got;
static void component_deliver(void *ctx, tern_xml_t *st)
{
    component_got = tern_xml_ref(st);
}

static int remote_calls;
static int remote_take(tern_xml_t *st, const tern_jid_t *to)
{
    remote_calls++;
    return strcmp(to->domain, "federated.example") == 0 ? 0 : -1;
}

static int service_calls;
static int count_service(tern_module_ctx_t *m, tern_event_t *ev)
{
    service_calls++;
    return TERN_HANDLED;
}

static const char *closed_with;
static void record_close(tern_session_t *s, const char *cond)
{
    closed_with = cond;
}

/* A chat message from session `s` claiming `from`, routed as the client's. */
static void send_as(tern_session_t *s, const char *from, const char *to)
{
    tern_xml_t *st = tern_xml_new("message", TERN_NS_CLIENT);
    tern_xml_set_attr(st, "type", "chat");
    tern_xml_set_attr(st, "from", from);
    tern_xml_set_attr(st, "to", to);
    router_route(st, s);
    tern_xml_unref(st);
}

/* The same from another origin; router_route_from's result. */
static int route_as(const route_origin_t *o, const char *from, const char *to, const char **cond)
{
    tern_xml_t *st = tern_xml_new("message", TERN_NS_CLIENT);
    tern_xml_set_attr(st, "type", "chat");
    tern_xml_set_attr(st, "from", from);
    tern_xml_set_attr(st, "to", to);
    int rc = router_route_from(st, o, cond);
    tern_xml_unref(st);
    return rc;
}

int main(void)
{
    char dir[] = "/tmp/tern-router-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof(path), "%s/t.db", dir);
    const char *why = NULL;
    server.db = store_open(path, &why);
    CHECK(server.db != NULL);
    scram_cred_t creds[SCRAM_HASH_COUNT];
    memset(creds, 0, sizeof(creds));
    for (int i = 0; i < SCRAM_HASH_COUNT; i++) {
        creds[i].hash = (scram_hash_t)i;
        creds[i].iterations = 4096;
        creds[i].salt_len = 16;
    }
    CHECK(store_account_create(server.db, "example.com", "juliet", creds, NULL) == 0);
    CHECK(store_account_create(server.db, "example.com", "romeo", creds, NULL) == 0);
    CHECK(store_account_create(server.db, "example.com", "nurse", creds, NULL) == 0);

    cfg_host_t hosts[2] = {{.name = "example.com"}, {.name = "rooms.example.com", .is_service = 1}};
    tern_config_t cfg = {.hosts = hosts, .n_hosts = 2, .module_path = "/nonexistent"};
    cfg_error_t err;
    CHECK(sessions_init() == 0);
    CHECK(hosts_init(&cfg, &err) == 0);
    host_t *h = hosts_find("example.com");
    CHECK(h != NULL);

    fake_t *romeo = fake_bind("romeo", "orchard", 1, 0);
    fake_t *j1 = fake_bind("juliet", "balcony", 1, 1);
    fake_t *j2 = fake_bind("juliet", "chamber", 1, 5);

    /* RFC 6121 §8.5.2.1.1: chat to bare goes to the highest priority only. */
    send(romeo, NULL, "message", "chat", "juliet@example.com", NULL);
    CHECK(j2->n == 1 && j1->n == 0 && romeo->n == 0);
    fake_reset(j2);

    /* Equal top priorities: all of them. */
    j1->s->priority = 5;
    send(romeo, NULL, "message", "chat", "juliet@example.com", NULL);
    CHECK(j1->n == 1 && j2->n == 1);
    fake_reset(j1);
    fake_reset(j2);

    /* Headline: every non-negative available resource. */
    j1->s->priority = -1;
    send(romeo, NULL, "message", "headline", "juliet@example.com", NULL);
    CHECK(j1->n == 0 && j2->n == 1);
    fake_reset(j2);

    /* Full JID: exactly that resource. */
    send(romeo, NULL, "message", "chat", "juliet@example.com/balcony", NULL);
    CHECK(j1->n == 1 && j2->n == 0);
    fake_reset(j1);

    /* Full JID of a resource that is gone: chat falls back to the bare JID. */
    send(romeo, NULL, "message", "chat", "juliet@example.com/gone", NULL);
    CHECK(j2->n == 1 && j1->n == 0 && romeo->n == 0);
    fake_reset(j2);

    /* iq to a missing resource: service-unavailable back to the sender. */
    send(romeo, NULL, "iq", "get", "juliet@example.com/gone", "jabber:iq:version");
    CHECK(romeo->n == 1 && romeo->n &&
          strcmp(error_condition(romeo->got[0]), "service-unavailable") == 0);
    CHECK(romeo->n && strcmp(tern_xml_attr(romeo->got[0], "from"), "juliet@example.com/gone") == 0);
    fake_reset(romeo);

    /* iq result to a missing resource: dropped, never bounced. */
    send(romeo, NULL, "iq", "result", "juliet@example.com/gone", NULL);
    CHECK(romeo->n == 0);

    /* Unavailable and negative-priority sessions get no bare messages:
     * without an offline module the sender learns service-unavailable. */
    j1->s->available = 0;
    j2->s->priority = -2;
    send(romeo, NULL, "message", "chat", "juliet@example.com", NULL);
    CHECK(j1->n == 0 && j2->n == 0);
    CHECK(romeo->n == 1 && romeo->n &&
          strcmp(error_condition(romeo->got[0]), "service-unavailable") == 0);
    fake_reset(romeo);

    /* With a message/offline handler, the module takes it instead. */
    tern_module_ctx_t fake_mod = {.host = h};
    CHECK(hooks_add(h->hooks, "message/offline", on_offline, 0, &fake_mod) == 0);
    send(romeo, NULL, "message", "chat", "juliet@example.com", NULL);
    CHECK(offline_calls == 1 && romeo->n == 0);
    /* A user with no session at all (nurse) also goes offline. */
    send(romeo, NULL, "message", "normal", "nurse@example.com", NULL);
    CHECK(offline_calls == 2 && romeo->n == 0);
    j1->s->available = 1;
    j2->s->priority = 5;

    /* Groupchat to a bare JID: error. */
    send(romeo, NULL, "message", "groupchat", "juliet@example.com", NULL);
    CHECK(romeo->n == 1 && romeo->n &&
          strcmp(error_condition(romeo->got[0]), "service-unavailable") == 0);
    fake_reset(romeo);

    /* No such account: messages and iqs bounce, presence is dropped. */
    send(romeo, NULL, "message", "chat", "tybalt@example.com", NULL);
    CHECK(romeo->n == 1 && romeo->n &&
          strcmp(error_condition(romeo->got[0]), "service-unavailable") == 0);
    fake_reset(romeo);
    send(romeo, NULL, "presence", "subscribe", "tybalt@example.com", NULL);
    CHECK(romeo->n == 0);
    send(romeo, NULL, "iq", "get", "tybalt@example.com", "jabber:iq:version");
    CHECK(romeo->n == 1);
    fake_reset(romeo);

    /* Errors are never answered with errors (RFC 6120 §8.3.1). */
    send(romeo, NULL, "message", "error", "tybalt@example.com", NULL);
    CHECK(romeo->n == 0);

    /* Presence to a bare JID reaches the available resources. */
    send(romeo, NULL, "presence", NULL, "juliet@example.com", NULL);
    CHECK(j1->n == 1 && j2->n == 1);
    fake_reset(j1);
    fake_reset(j2);

    /* Directed presence to a missing full JID is dropped. */
    send(romeo, NULL, "presence", NULL, "juliet@example.com/gone", NULL);
    CHECK(j1->n == 0 && j2->n == 0 && romeo->n == 0);

    /* iq to the server without a handler: service-unavailable. */
    send(romeo, NULL, "iq", "get", "example.com", "urn:xmpp:ping");
    CHECK(romeo->n == 1 && romeo->n &&
          strcmp(error_condition(romeo->got[0]), "service-unavailable") == 0);
    CHECK(romeo->n && strcmp(tern_xml_attr(romeo->got[0], "from"), "example.com") == 0);
    fake_reset(romeo);

    /* Hooks: higher priority first; the first HANDLED stops the chain and
     * the default bounce does not happen. */
    CHECK(hooks_add(h->hooks, "iq-get/host/urn:xmpp:ping:query", handler_a, 1, &fake_mod) == 0);
    CHECK(hooks_add(h->hooks, "iq-get/host/urn:xmpp:ping:query", handler_b, 10, &fake_mod) == 0);
    send(romeo, NULL, "iq", "get", "example.com", "urn:xmpp:ping");
    CHECK(calls_b == 1 && calls_a == 0 && romeo->n == 0);

    /* No 'to': the "self" event falls back to the host's handlers. */
    send(romeo, NULL, "iq", "get", NULL, "urn:xmpp:ping");
    CHECK(calls_b == 2 && romeo->n == 0);

    /* An iq set of another namespace is not taken by the get handler. */
    send(romeo, NULL, "iq", "set", "example.com", "urn:xmpp:ping");
    CHECK(calls_b == 2 && romeo->n == 1);
    fake_reset(romeo);
    hooks_remove_owner(h->hooks, &fake_mod);
    send(romeo, NULL, "iq", "get", "example.com", "urn:xmpp:ping");
    CHECK(calls_b == 2 && romeo->n == 1);
    fake_reset(romeo);

    /* A malformed 'to' gets jid-malformed. */
    send(romeo, NULL, "message", "chat", "juliet@@example.com", NULL);
    CHECK(romeo->n == 1 && romeo->n &&
          strcmp(error_condition(romeo->got[0]), "jid-malformed") == 0);
    fake_reset(romeo);

    /* Remote domains without federation: remote-server-not-found. */
    send(romeo, NULL, "message", "chat", "someone@elsewhere.example", NULL);
    CHECK(romeo->n == 1 && romeo->n &&
          strcmp(error_condition(romeo->got[0]), "remote-server-not-found") == 0);
    fake_reset(romeo);
    router_set_remote(remote_take);
    send(romeo, NULL, "message", "chat", "someone@federated.example", NULL);
    CHECK(remote_calls == 1 && romeo->n == 0);
    router_set_remote(NULL);

    /* Components: declared but away bounces; attached receives. */
    CHECK(router_component_declare("muc.example.com") == 0);
    send(romeo, NULL, "message", "groupchat", "room@muc.example.com", NULL);
    CHECK(romeo->n == 1 && romeo->n &&
          strcmp(error_condition(romeo->got[0]), "service-unavailable") == 0);
    fake_reset(romeo);
    int ctx = 0;
    CHECK(router_component_attach("muc.example.com", component_deliver, &ctx) == 0);
    CHECK(router_component_attach("muc.example.com", component_deliver, &ctx) < 0);
    send(romeo, NULL, "message", "groupchat", "room@muc.example.com", NULL);
    CHECK(component_got != NULL && romeo->n == 0);
    if (component_got)
        tern_xml_unref(component_got);
    router_component_detach("muc.example.com", &ctx);

    /* A service domain: stanzas to it and to JIDs at it fire events on it,
     * like on a host; it has no accounts; what its modules send from it
     * runs no pre- filters (they are for accounts of local hosts). */
    host_t *rooms = hosts_find("rooms.example.com");
    CHECK(rooms != NULL && rooms->is_service &&
          domains_kind("rooms.example.com") == DOMAIN_SERVICE);
    CHECK(server_is_host("example.com") && !server_is_host("rooms.example.com"));
    tern_module_ctx_t svc = {.host = rooms};
    service_calls = 0;
    CHECK(hooks_add(rooms->hooks, "message/host", count_service, 0, &svc) == 0);
    CHECK(hooks_add(rooms->hooks, "message/bare", count_service, 0, &svc) == 0);
    CHECK(hooks_add(rooms->hooks, "pre-message/full", count_service, 0, &svc) == 0);
    send(romeo, NULL, "message", "groupchat", "rooms.example.com", NULL);
    send(romeo, NULL, "message", "groupchat", "hall@rooms.example.com", NULL);
    CHECK(service_calls == 2 && romeo->n == 0);
    /* No module took it: a JID at a service is no account. */
    send(romeo, NULL, "iq", "get", "hall@rooms.example.com/nick", "jabber:iq:version");
    CHECK(romeo->n == 1 && strcmp(error_condition(romeo->got[0]), "service-unavailable") == 0);
    fake_reset(romeo);
    send(NULL, "hall@rooms.example.com/nick", "message", "groupchat", "romeo@example.com/orchard",
         NULL);
    CHECK(service_calls == 2 && romeo->n == 1);
    fake_reset(romeo);
    hooks_remove_owner(rooms->hooks, &svc);

    /* Origins: a client's forged 'from' is refused and closes its session
     * with invalid-from; a component's or a peer's likewise, with nothing
     * routed; a peer may not relay through us. */
    fake_t *nurse = fake_bind("nurse", "desk", 1, 0);
    nurse->s->link.close = record_close;
    closed_with = NULL;
    send_as(nurse->s, "romeo@example.com/orchard", "romeo@example.com/orchard");
    CHECK(closed_with && strcmp(closed_with, "invalid-from") == 0 && romeo->n == 0);
    send_as(nurse->s, "nurse@example.com", "romeo@example.com/orchard");
    CHECK(romeo->n == 1 &&
          strcmp(tern_xml_attr(romeo->got[0], "from"), "nurse@example.com/desk") == 0);
    fake_reset(romeo);
    fake_free(nurse);
    const char *cond = NULL;
    route_origin_t comp = {.kind = ROUTE_COMPONENT, .domain = "muc.example.com"};
    CHECK(route_as(&comp, "juliet@example.com", "romeo@example.com/orchard", &cond) < 0);
    CHECK(cond && strcmp(cond, "invalid-from") == 0 && romeo->n == 0);
    CHECK(route_as(&comp, "bot@muc.example.com", "romeo@example.com/orchard", &cond) == 0);
    CHECK(romeo->n == 1);
    fake_reset(romeo);
    route_origin_t peer = {.kind = ROUTE_PEER, .domain = "remote.example"};
    CHECK(route_as(&peer, "a@remote.example", "nobody@third.example", &cond) < 0);
    CHECK(cond && strcmp(cond, "host-unknown") == 0);
    CHECK(route_as(&peer, "a@elsewhere.example", "romeo@example.com/orchard", &cond) < 0);
    CHECK(cond && strcmp(cond, "invalid-from") == 0 && romeo->n == 0);
    CHECK(route_as(&peer, "a@remote.example/x", "romeo@example.com/orchard", &cond) == 0);
    CHECK(romeo->n == 1);
    fake_reset(romeo);

    /* A stanza from a component to a local user is delivered. */
    send(NULL, "room@muc.example.com/nick", "message", "groupchat", "romeo@example.com/orchard",
         NULL);
    CHECK(romeo->n == 1);
    fake_reset(romeo);

    /* Inbound filters (in-KIND/DEST) run before the modules that answer
     * for an account, whatever the origin; never for DEST self. */
    tern_module_ctx_t answerer = {.host = h}, in_filter = {.host = h}, pre_filter = {.host = h};
    CHECK(hooks_add(h->hooks, "iq-get/bare/jabber:iq:version:query", answer_for_account, 0,
                    &answerer) == 0);
    send(romeo, NULL, "iq", "get", "juliet@example.com", "jabber:iq:version");
    CHECK(romeo->n == 1 && romeo->n && strcmp(tern_xml_attr(romeo->got[0], "type"), "result") == 0);
    fake_reset(romeo);
    CHECK(hooks_add(h->hooks, "in-iq/bare", drop, 0, &in_filter) == 0);
    CHECK(hooks_add(h->hooks, "in-message/bare", drop, 0, &in_filter) == 0);
    send(romeo, NULL, "iq", "get", "juliet@example.com", "jabber:iq:version");
    CHECK(romeo->n == 0);
    send(romeo, NULL, "iq", "get", "romeo@example.com", "jabber:iq:version");
    CHECK(romeo->n == 1 && romeo->n && strcmp(tern_xml_attr(romeo->got[0], "type"), "result") == 0);
    fake_reset(romeo);
    send(NULL, "bot@muc.example.com", "message", "chat", "romeo@example.com", NULL);
    send(romeo, NULL, "message", "chat", "juliet@example.com", NULL);
    CHECK(romeo->n == 0 && j1->n == 0 && j2->n == 0);
    /* DEST full is a separate event. */
    send(romeo, NULL, "message", "chat", "juliet@example.com/chamber", NULL);
    CHECK(j2->n == 1);
    fake_reset(j2);
    hooks_remove_owner(h->hooks, &in_filter);
    hooks_remove_owner(h->hooks, &answerer);

    /* Outgoing filters (pre-KIND/DEST) run on the sender's host for what a
     * module routes for a local account too, not for a component's stanza. */
    CHECK(hooks_add(h->hooks, "pre-message/full", drop, 0, &pre_filter) == 0);
    send(NULL, "juliet@example.com", "message", "chat", "romeo@example.com/orchard", NULL);
    CHECK(romeo->n == 0);
    send(NULL, "bot@muc.example.com", "message", "chat", "romeo@example.com/orchard", NULL);
    CHECK(romeo->n == 1);
    fake_reset(romeo);
    hooks_remove_owner(h->hooks, &pre_filter);
    send(NULL, "juliet@example.com", "message", "chat", "romeo@example.com/orchard", NULL);
    CHECK(romeo->n == 1);
    fake_reset(romeo);

    /* Resource conflict, kick-old: the older session is closed. */
    fake_t *j3 = fake_bind("juliet", "balcony", 1, 0);
    CHECK(j1->s->jid == NULL);
    CHECK(sessions_find_full("juliet@example.com/balcony") == j3->s);
    /* Refuse policy keeps the existing one. */
    fake_t *refused = fake_new(h);
    const char *why2 = NULL;
    CHECK(sessions_bind(refused->s, "juliet", "balcony", CONFLICT_REFUSE, 0, &why2) < 0);
    CHECK(why2 && strcmp(why2, "conflict") == 0);
    CHECK(sessions_count() == 3);
    /* RFC 6120 §7.6.2.1: juliet has two sessions; with a limit of two a
     * third resource is refused, a kick-old replacement is not. */
    fake_t *third = fake_new(h);
    why2 = NULL;
    CHECK(sessions_bind(third->s, "juliet", "garden", CONFLICT_KICK_OLD, 2, &why2) < 0);
    CHECK(why2 && strcmp(why2, "resource-constraint") == 0);
    CHECK(third->s->jid == NULL && sessions_count() == 3);
    CHECK(sessions_bind(third->s, "juliet", "garden", CONFLICT_KICK_OLD, 3, &why2) == 0);
    CHECK(sessions_count() == 4);
    sessions_unbind(third->s);
    CHECK(sessions_count() == 3);
    fake_t *repl = fake_new(h);
    CHECK(sessions_bind(repl->s, "juliet", "balcony", CONFLICT_KICK_OLD, 2, &why2) == 0);
    CHECK(j3->s->jid == NULL && sessions_find_full("juliet@example.com/balcony") == repl->s);
    sessions_unbind(repl->s);
    CHECK(sessions_count() == 2);
    fake_free(refused);
    fake_free(third);
    fake_free(repl);

    fake_free(j3);
    fake_free(j1);
    fake_free(j2);
    fake_free(romeo);
    CHECK(sessions_count() == 0);
    hosts_free_all();
    sessions_free_all();
    router_free();
    store_close(&server.db);
    unlink(path);
    char wal[300];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    unlink(wal);
    snprintf(wal, sizeof(wal), "%s-shm", path);
    unlink(wal);
    rmdir(dir);
    return check_summary();
}
