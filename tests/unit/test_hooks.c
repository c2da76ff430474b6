/*
 * test_hooks.c — event names of src/route/hooks.c.
 *
 * Every name a module of modules/ hooks (or the core fires) is valid;
 * typos and names the core never fires are not, so that tern_hook can
 * refuse them when a module loads instead of hooking an event that never
 * comes.  Also the handles on per-stanza events (session/in, session/out)
 * and handing an event on below one module's handler.
 */
#include <string.h>

#include "check.h"
#include "route/hooks.h"

/* The names hooked in modules/ and fired in src/, namespaces spelt out. */
static const char *const valid[] = {
    /* KIND/DEST */
    "message/host", "message/bare", "message/full", "message/self", "presence/host",
    "presence/bare", "presence/full", "presence/self", "iq/host", "iq/bare", "iq/full", "iq/self",
    /* pre-KIND/DEST */
    "pre-message/host", "pre-message/bare", "pre-message/full", "pre-message/self",
    "pre-presence/host", "pre-presence/bare", "pre-presence/full", "pre-presence/self",
    "pre-iq/host", "pre-iq/bare", "pre-iq/full", "pre-iq/self",
    /* in-KIND/DEST */
    "in-message/bare", "in-message/full", "in-presence/bare", "in-presence/full", "in-iq/bare",
    "in-iq/full",
    /* non-stanza events */
    "message/offline", "session/bound", "session/closed", "session/idle", "user/created",
    "user/deleted", "server/started", "server/stopping", "stream-features/unauth",
    "stream-features/auth", "session/in", "session/out", "session/detached", "session/resumed",
    /* stream-level elements: XEP-0198, XEP-0352 */
    "stream/urn:xmpp:sm:3:enable", "stream/urn:xmpp:sm:3:r", "stream/urn:xmpp:sm:3:a",
    "stream/urn:xmpp:sm:3:resume", "stream/urn:xmpp:csi:0:active", "stream/urn:xmpp:csi:0:inactive",
    "stream/http://example.org/protocol/x:y",
    /* iq payloads: mod_disco, mod_ping, mod_version, mod_time, mod_uptime */
    "iq-get/host/http://jabber.org/protocol/disco#info:query",
    "iq-get/host/http://jabber.org/protocol/disco#items:query",
    "iq-get/bare/http://jabber.org/protocol/disco#info:query",
    "iq-get/bare/http://jabber.org/protocol/disco#items:query", "iq-get/host/urn:xmpp:ping:ping",
    "iq-get/self/urn:xmpp:ping:ping", "iq-get/host/jabber:iq:version:query",
    "iq-get/host/urn:xmpp:time:time", "iq-get/host/jabber:iq:last:query",
    /* mod_roster */
    "iq-get/self/jabber:iq:roster:query", "iq-set/self/jabber:iq:roster:query",
    "iq-get/bare/jabber:iq:last:query",
    /* mod_register, mod_invites */
    "iq-get/host/jabber:iq:register:query", "iq-set/host/jabber:iq:register:query",
    "iq-get/self/jabber:iq:register:query", "iq-set/self/jabber:iq:register:query",
    "iq-get/unauth/jabber:iq:register:query", "iq-set/unauth/jabber:iq:register:query",
    "iq-set/unauth/urn:xmpp:pars:0:preauth",
    /* mod_vcard, mod_search */
    "iq-get/host/vcard-temp:vCard", "iq-set/host/vcard-temp:vCard", "iq-get/self/vcard-temp:vCard",
    "iq-set/self/vcard-temp:vCard", "iq-get/bare/vcard-temp:vCard", "iq-set/bare/vcard-temp:vCard",
    "iq-get/host/jabber:iq:search:query", "iq-set/host/jabber:iq:search:query",
    /* mod_private, mod_bookmarks */
    "iq-get/self/jabber:iq:private:query", "iq-set/self/jabber:iq:private:query",
    "iq-get/bare/jabber:iq:private:query", "iq-set/bare/jabber:iq:private:query",
    /* mod_carbons, mod_blocking */
    "iq-set/self/urn:xmpp:carbons:2:enable", "iq-set/self/urn:xmpp:carbons:2:disable",
    "iq-get/self/urn:xmpp:blocking:blocklist", "iq-set/self/urn:xmpp:blocking:block",
    "iq-set/self/urn:xmpp:blocking:unblock",
    /* mod_mam */
    "iq-set/self/urn:xmpp:mam:2:query", "iq-get/self/urn:xmpp:mam:2:query",
    "iq-get/self/urn:xmpp:mam:2:metadata", "iq-set/host/urn:xmpp:mam:2:query",
    "iq-get/host/urn:xmpp:mam:2:query", "iq-get/host/urn:xmpp:mam:2:metadata",
    "iq-get/self/urn:xmpp:mam:2:prefs", "iq-set/self/urn:xmpp:mam:2:prefs",
    "iq-set/bare/urn:xmpp:mam:2:query", "iq-get/bare/urn:xmpp:mam:2:query",
    "iq-get/bare/urn:xmpp:mam:2:metadata", "iq-get/bare/urn:xmpp:mam:2:prefs",
    "iq-set/bare/urn:xmpp:mam:2:prefs",
    /* mod_pep */
    "iq-set/self/http://jabber.org/protocol/pubsub:pubsub",
    "iq-set/bare/http://jabber.org/protocol/pubsub:pubsub",
    "iq-get/self/http://jabber.org/protocol/pubsub:pubsub",
    "iq-get/bare/http://jabber.org/protocol/pubsub:pubsub",
    "iq-set/self/http://jabber.org/protocol/pubsub#owner:pubsub",
    "iq-get/bare/http://jabber.org/protocol/pubsub#owner:pubsub",
    "iq-get/self/http://jabber.org/protocol/disco#info:query",
    "iq-get/self/http://jabber.org/protocol/disco#items:query",
    /* one-letter parts are enough */
    "iq-get/full/a:b", NULL};

static const char *const invalid[] = {
    /* typos */
    "mesage/bare", "message/bar", "Message/bare", "message/bare ", "message//bare", "presense/full",
    "pre-mesage/full", "pre_message/full", "in-message/hst", "iq-gte/host/a:b",
    "iq-get/hots/urn:xmpp:ping:ping", "session/bind", "session/close", "user/create",
    "server/start", "stream-features/authed", "message/ofline", "stream-feature/auth",
    /* names the core never fires */
    "", "message", "message/", "/bare", "bare", "message/bare/x", "in-message/host",
    "in-message/self", "in-iq/host", "pre-/bare", "in-/bare", "pre-pre-message/bare",
    "pre-in-message/bare", "pre-message/offline", "in-message/offline", "pre-session/bound",
    "session/started", "presence/offline", "iq-get/host", "iq-get/host/", "iq-result/host/a:b",
    "iq-error/host/a:b", "iq-get/unauth", "pre-iq-get/host/a:b", "in-iq-get/bare/a:b",
    "message/unauth", "pre-message/unauth", "iq-get//a:b", "iq-get/host/a:b:",
    /* NS:NAME: both parts, no space, no '/' in NAME */
    "iq-get/host/ping", "iq-get/host/:ping", "iq-get/host/urn:xmpp:ping:", "iq-get/host/a:b/c",
    "iq-get/host/urn:xmpp:ping ping", "iq-get/host/urn:xmpp:ping: ping",
    "iq-get/host/urn:xmpp:ping:ping\n", "iq-get/host/urn:xmpp\tping:ping",
    /* stream/NS:NAME and session/in|out */
    "stream", "stream/", "stream/enable", "stream/:enable",
    "stream/urn:xmpp:sm:3:", "stream/urn:xmpp:sm:3:a/b", "stream/urn:xmpp:sm:3 :r",
    "streams/urn:xmpp:sm:3:r", "Stream/urn:xmpp:sm:3:r", "pre-stream/urn:xmpp:sm:3:r",
    "in-stream/urn:xmpp:sm:3:r", "stream-/urn:xmpp:sm:3:r", "session/outgoing", "session/out/full",
    "session/input", "pre-session/out", "in-session/in", "session/", NULL};

static void test_valid_names(void)
{
    for (size_t i = 0; valid[i]; i++) {
        int ok = hooks_event_valid(valid[i]);
        CHECK(ok);
        if (!ok)
            fprintf(stderr, "  refused: \"%s\"\n", valid[i]);
    }
}

static void test_invalid_names(void)
{
    for (size_t i = 0; invalid[i]; i++) {
        int ok = hooks_event_valid(invalid[i]);
        CHECK(!ok);
        if (ok)
            fprintf(stderr, "  accepted: \"%s\"\n", invalid[i]);
    }
    CHECK(!hooks_event_valid(NULL));
}

/* Handlers that record their order in `trace` and take the event when told. */
static char trace[16];
static int take_at;
static int handler(tern_module_ctx_t *m, tern_event_t *ev, char tag)
{
    size_t n = strlen(trace);
    if (n + 1 < sizeof(trace)) {
        trace[n] = tag;
        trace[n + 1] = '\0';
    }
    return take_at == tag ? TERN_HANDLED : TERN_PASS;
}
static int h_a(tern_module_ctx_t *m, tern_event_t *ev)
{
    return handler(m, ev, 'a');
}
static int h_b(tern_module_ctx_t *m, tern_event_t *ev)
{
    return handler(m, ev, 'b');
}
static int h_c(tern_module_ctx_t *m, tern_event_t *ev)
{
    return handler(m, ev, 'c');
}

static int fire_traced(hooks_event_t *e, int take)
{
    trace[0] = '\0';
    take_at = take;
    tern_event_t ev = {0};
    return hooks_event_fire(e, &ev);
}

static int fire_after_traced(hooks_t *h, const char *name, tern_module_ctx_t *owner)
{
    trace[0] = '\0';
    take_at = 0;
    tern_event_t ev = {0};
    return hooks_fire_after(h, name, owner, &ev);
}

/* A handle taken before anyone hooks the event sees later hooks and
 * unhooks; with no handler it passes at once. */
static void test_event_handles(void)
{
    /* Owners are only compared: any distinct addresses do. */
    static char owner_x, owner_y;
    tern_module_ctx_t *x = (tern_module_ctx_t *)&owner_x, *y = (tern_module_ctx_t *)&owner_y;
    hooks_t *h = hooks_new();
    CHECK(h != NULL);
    if (!h)
        return;
    CHECK(!hooks_event_hooked(NULL));
    CHECK(hooks_event_fire(NULL, NULL) == TERN_PASS);
    hooks_event_t *out = hooks_event(h, "session/out");
    CHECK(out != NULL);
    CHECK(hooks_event(h, "session/out") == out);
    CHECK(!hooks_event_hooked(out));
    CHECK(fire_traced(out, 0) == TERN_PASS && trace[0] == '\0');
    CHECK(!hooks_has(h, "session/out"));

    CHECK(hooks_add(h, "session/out", h_c, -10, y) == 0);
    CHECK(hooks_add(h, "session/out", h_a, 10, x) == 0);
    CHECK(hooks_add(h, "session/out", h_b, 0, y) == 0);
    CHECK(hooks_event_hooked(out));
    CHECK(fire_traced(out, 0) == TERN_PASS && strcmp(trace, "abc") == 0);
    CHECK(fire_traced(out, 'a') == TERN_HANDLED && strcmp(trace, "a") == 0);
    CHECK(fire_traced(out, 'b') == TERN_HANDLED && strcmp(trace, "ab") == 0);

    /* Handing on below x's handler: b and c; below y's first (b): c. */
    CHECK(fire_after_traced(h, "session/out", x) == TERN_PASS && strcmp(trace, "bc") == 0);
    CHECK(fire_after_traced(h, "session/out", y) == TERN_PASS && strcmp(trace, "c") == 0);
    /* An owner with no handler there: every handler runs. */
    CHECK(fire_after_traced(h, "session/in", x) == TERN_PASS && trace[0] == '\0');
    hooks_remove_owner(h, x);
    CHECK(fire_after_traced(h, "session/out", x) == TERN_PASS && strcmp(trace, "bc") == 0);

    hooks_remove_owner(h, y);
    CHECK(!hooks_event_hooked(out));
    CHECK(fire_traced(out, 0) == TERN_PASS && trace[0] == '\0');
    hooks_free(&h);
    CHECK(h == NULL);
}

/* stream/NS:NAME is fired by its pieces like the iq payload events. */
static int fire_slot_traced(hooks_t *h, unsigned slot, const char *a, const char *b, int take)
{
    trace[0] = '\0';
    take_at = take;
    tern_event_t ev = {0};
    return hooks_fire_slot(h, slot, a, b, &ev);
}

/* The router's per-stanza events by slot: the same handlers as by name,
 * whether hooked before the first fire or after it, in priority order,
 * and gone with their owner. */
static void test_event_slots(void)
{
    hooks_t *h = hooks_new();
    tern_module_ctx_t *x = (tern_module_ctx_t *)&trace[1], *y = (tern_module_ctx_t *)&trace[2];
    CHECK(h != NULL);
    CHECK(hooks_add(h, "pre-message/bare", h_b, 0, x) == 0);
    CHECK(fire_slot_traced(h, 5, "pre-message", "bare", 0) == TERN_PASS && strcmp(trace, "b") == 0);
    CHECK(fire_slot_traced(h, 6, "message", "bare", 0) == TERN_PASS && trace[0] == '\0');
    CHECK(!hooks_has(h, "message/bare"));
    CHECK(hooks_add(h, "message/bare", h_c, -5, y) == 0);
    CHECK(hooks_add(h, "message/bare", h_a, 5, x) == 0);
    CHECK(fire_slot_traced(h, 6, "message", "bare", 0) == TERN_PASS && strcmp(trace, "ac") == 0);
    CHECK(fire_slot_traced(h, 6, "message", "bare", 'a') == TERN_HANDLED &&
          strcmp(trace, "a") == 0);
    /* A slot past the table still fires by name. */
    CHECK(fire_slot_traced(h, HOOKS_SLOTS, "message", "bare", 0) == TERN_PASS &&
          strcmp(trace, "ac") == 0);
    hooks_remove_owner(h, x);
    CHECK(fire_slot_traced(h, 6, "message", "bare", 0) == TERN_PASS && strcmp(trace, "c") == 0);
    CHECK(fire_slot_traced(h, 5, "pre-message", "bare", 0) == TERN_PASS && trace[0] == '\0');
    hooks_free(&h);
}

static void test_stream_event_parts(void)
{
    static char owner;
    tern_module_ctx_t *x = (tern_module_ctx_t *)&owner;
    hooks_t *h = hooks_new();
    CHECK(h != NULL);
    if (!h)
        return;
    CHECK(hooks_add(h, "stream/urn:xmpp:sm:3:enable", h_a, 0, x) == 0);
    const char *parts[3] = {"stream", "urn:xmpp:sm:3", "enable"};
    tern_event_t ev = {0};
    trace[0] = '\0';
    take_at = 'a';
    CHECK(hooks_fire_parts(h, parts, 3, "/:", &ev) == TERN_HANDLED && strcmp(trace, "a") == 0);
    const char *other[3] = {"stream", "urn:xmpp:sm:3", "r"};
    trace[0] = '\0';
    CHECK(hooks_fire_parts(h, other, 3, "/:", &ev) == TERN_PASS && trace[0] == '\0');
    hooks_free(&h);
}

int main(void)
{
    test_valid_names();
    test_invalid_names();
    test_event_handles();
    test_event_slots();
    test_stream_event_parts();
    return check_summary();
}
