/*
 * mod_ping — XEP-0199 XMPP Ping, both ways.
 *
 * Owns the pong to a ping addressed to the host (or sent with no 'to', or
 * to the sender's own bare JID: XEP-0199 §4.2), and the server-to-client
 * keepalive (§4.1): when the core reports a client session as idle, ping
 * it and close it with connection-timeout if nothing comes back within
 * `ping_timeout`.  Any answer, even an error, proves the stream alive.
 *
 * A session may close while its ping is out, and the core keeps no session
 * pointer valid across the wait; so a pending ping holds the session's full
 * JID and serial number, never the pointer, and finds the session again
 * when the timeout fires.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tern/module.h>

#define NS_PING "urn:xmpp:ping"

/* A ping sent and not answered yet (the callback argument). */
typedef struct ping_wait {
    struct ping_wait *prev, *next;
    uint64_t serial; /* the pinged session's serial, so a successor with its JID is spared */
    char full[];     /* and its full JID */
} ping_wait_t;

/* Module data: what unload() must free. */
typedef struct ping_state {
    ping_wait_t *waits;
    long long timeout_ms;
    unsigned long long sent; /* for iq ids */
    int off;                 /* keepalive turned off by a reload */
} ping_state_t;

static const tern_option_t options[] = {
    {.name = "keepalive",
     .type = TERN_OPT_BOOL,
     .def = "true",
     .doc = "Ping idle client sessions and close those that do not answer. When false, only answer "
            "pings."},
    {.name = "ping_timeout",
     .type = TERN_OPT_DURATION,
     .def = "30s",
     .doc = "How long an idle client has to answer a ping. Must be more than 0."},
    {.name = NULL},
};

/* XEP-0199 §4.2: the pong is an empty result. */
static int on_ping(tern_module_ctx_t *m, tern_event_t *ev)
{
    return tern_iq_answer(m, ev, tern_iq_result(ev), 1);
}

static void wait_unlink(ping_state_t *st, ping_wait_t *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        st->waits = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

/* The answer to a keepalive ping, or NULL after ping_timeout: then close the
 * session if it is still the one we pinged (RFC 6120 §4.9.3.4). */
static void on_pong(tern_module_ctx_t *m, tern_xml_t *reply, void *arg)
{
    ping_wait_t *w = arg;
    ping_state_t *st = tern_get_data(m);
    if (st != NULL)
        wait_unlink(st, w);
    if (reply == NULL) {
        tern_session_t *s = tern_session_find(m, w->full);
        if (s != NULL && tern_session_serial(s) == w->serial) {
            tern_log(m, TERN_LOG_INFO, "%s did not answer a ping; closing", w->full);
            tern_session_close(s, "connection-timeout");
        }
    }
    free(w);
}

/* Build <iq type='get' to=FULLJID from=HOST id=...><ping/></iq>, or NULL. */
static tern_xml_t *ping_iq(tern_module_ctx_t *m, ping_state_t *st, const tern_jid_t *to)
{
    char id[32];
    tern_xml_t *iq = tern_xml_new("iq", TERN_NS_CLIENT);
    if (iq == NULL)
        return NULL;
    if (tern_xml_add_child(iq, "ping", NS_PING) == NULL) {
        tern_xml_unref(iq);
        return NULL;
    }
    snprintf(id, sizeof id, "ping%llu", ++st->sent);
    tern_xml_set_attr(iq, "type", "get");
    tern_xml_set_attr(iq, "to", to->full);
    tern_xml_set_attr(iq, "from", tern_host(m));
    tern_xml_set_attr(iq, "id", id);
    return iq;
}

/* XEP-0199 §4.1: ping a quiet client instead of the core's whitespace.
 * Passes (so the core keeps its own keepalive) when it cannot ping. */
static int on_idle(tern_module_ctx_t *m, tern_event_t *ev)
{
    ping_state_t *st = tern_get_data(m);
    const tern_jid_t *jid = ev->session != NULL ? tern_session_jid(ev->session) : NULL;
    if (st == NULL || st->off || jid == NULL || jid->resource == NULL)
        return TERN_PASS; /* keepalive off, or not bound yet */

    size_t len = strlen(jid->full);
    ping_wait_t *w = calloc(1, sizeof *w + len + 1);
    tern_xml_t *iq = w != NULL ? ping_iq(m, st, jid) : NULL;
    if (iq == NULL) {
        free(w);
        return TERN_PASS;
    }
    memcpy(w->full, jid->full, len + 1);
    w->serial = tern_session_serial(ev->session);
    w->next = st->waits;
    if (w->next != NULL)
        w->next->prev = w;
    st->waits = w;
    int rc = tern_send_iq(m, iq, st->timeout_ms, on_pong, w);
    tern_xml_unref(iq);
    if (rc != 0) {
        wait_unlink(st, w);
        free(w);
        return TERN_PASS;
    }
    return TERN_HANDLED;
}

/* Turn keepalive on (checking ping_timeout) or off as the options say.
 * 0, or -1 (logged) with nothing changed. */
static int apply_keepalive(tern_module_ctx_t *m)
{
    ping_state_t *st = tern_get_data(m);
    if (!tern_opt_int(m, "keepalive")) {
        if (st != NULL)
            st->off = 1; /* pings already out still end normally */
        return 0;
    }
    long long timeout_ms = tern_opt_int(m, "ping_timeout");
    if (timeout_ms <= 0) {
        tern_log(m, TERN_LOG_ERROR, "ping_timeout must be more than 0");
        return -1;
    }
    if (st == NULL) {
        if ((st = calloc(1, sizeof *st)) == NULL) {
            tern_log(m, TERN_LOG_ERROR, "out of memory");
            return -1;
        }
        if (tern_hook(m, "session/idle", on_idle, 0) != 0) {
            free(st);
            return -1;
        }
        tern_set_data(m, st);
    }
    st->timeout_ms = timeout_ms;
    st->off = 0;
    return 0;
}

static int load(tern_module_ctx_t *m)
{
    tern_add_feature(m, NS_PING);
    if (tern_hook(m, "iq-get/host/" NS_PING ":ping", on_ping, 0) != 0 ||
        tern_hook(m, "iq-get/self/" NS_PING ":ping", on_ping, 0) != 0)
        return -1;
    return apply_keepalive(m);
}

/* A reload changed keepalive or ping_timeout: apply them to idle sessions
 * from now on. */
static int reconfigure(tern_module_ctx_t *m)
{
    return apply_keepalive(m);
}

/* Pending pings die with the module: the core drops their callbacks. */
static void unload(tern_module_ctx_t *m)
{
    ping_state_t *st = tern_get_data(m);
    if (st == NULL)
        return;
    while (st->waits != NULL) {
        ping_wait_t *w = st->waits;
        wait_unlink(st, w);
        free(w);
    }
    free(st);
    tern_set_data(m, NULL);
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "ping",
    .description = "XMPP Ping: answers pings and pings idle clients (XEP-0199)",
    .options = options,
    .load = load,
    .unload = unload,
    .reconfigure = reconfigure,
};
