/*
 * mod_smacks — Stream Management (XEP-0198, urn:xmpp:sm:3): acknowledgements
 * both ways and resumption of a session whose connection was lost.
 *
 * Owns, per client session that sent <enable/>:
 *   - the count of stanzas the client sent and the server handled (h_in,
 *     session/in), answered in <a h/> to the client's <r/>;
 *   - the stanzas written to the client and not yet acknowledged (session/
 *     out), in order, bounded in count and bytes (options max_unacked and
 *     max_unacked_bytes; over either the stream ends with
 *     <resource-constraint/>, RFC 6120 §4.9.3.17, and what was unacked
 *     goes the undelivered way below); an <r/> goes to the client every
 *     request_every stanzas and when the bytes since the last pass half the
 *     byte bound;
 *   - with resume='true': an id and the right to take the session over
 *     from a new stream (<resume previd h/>) for the resumption timeout
 *     after the connection was lost without a clean close.  Meanwhile the
 *     session is detached (the core's queue holds what is routed to it)
 *     and stays available to contacts.
 * Counters are 32 bits and wrap at 2^32 (XEP-0198 §4).
 *
 * When a session with stream management ends (timeout, clean close,
 * replacement, stream error) its unacknowledged stanzas go the way of an
 * undelivered stanza (tern_session_undelivered): messages to the user's
 * other available resources, else offline storage; the copy carries a
 * <delay from='HOST'/> with the time it was first sent, so a client that
 * also reads the archive can tell it again (its <stanza-id/> is kept; the
 * archive does not store it twice).
 *
 * Must not: count elements of this namespace as stanzas, or resend what
 * the client acknowledged.  Messages to a detached session live in memory
 * (this module and the core's queue); see doc/admin-guide.md for what a
 * crash of the server loses.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tern/module.h>
#include <tern/table.h>
#include <time.h>

#include "sm_count.h"

#define NS_SM     "urn:xmpp:sm:3"
#define NS_STREAM "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_STANZA "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_DELAY  "urn:xmpp:delay"

static const tern_option_t options[] = {
    {.name = "resumption_timeout",
     .type = TERN_OPT_DURATION,
     .def = "300s",
     .doc = "How long a session whose connection was lost waits to be resumed (its contacts "
            "still see it available), unless the client asks for less. At most "
            "`max_resumption_timeout`."},
    {.name = "max_resumption_timeout",
     .type = TERN_OPT_DURATION,
     .def = "1h",
     .doc = "The longest resumption timeout a client may ask for with `max` (1 s to 1 day)."},
    {.name = "max_detached_per_user",
     .type = TERN_OPT_INT,
     .def = "5",
     .doc = "Detached sessions kept per account; when one more connection is lost, the oldest "
            "detached session ends.",
     .min = 1,
     .max = 1000},
    {.name = "max_unacked",
     .type = TERN_OPT_INT,
     .def = "1000",
     .doc = "Stanzas sent to a client and not yet acknowledged; over it the stream ends with "
            "`resource-constraint`. Also the size of the queue of a detached session.",
     .min = 10,
     .max = 100000},
    {.name = "max_unacked_bytes",
     .type = TERN_OPT_SIZE,
     .def = "2M",
     .doc = "The same bound in bytes (64K to 1G).",
     .min = 0,
     .max = 0},
    {.name = "request_every",
     .type = TERN_OPT_INT,
     .def = "5",
     .doc = "Ask the client for an acknowledgement (`<r/>`) after this many unacknowledged "
            "stanzas (or half of `max_unacked_bytes`).",
     .min = 1,
     .max = 10000},
    {.name = NULL}};

/* An unacknowledged stanza, kept serialized: a few hundred bytes rather
 * than the stanza's tree and arena (idle sessions stay small). */
typedef struct unacked {
    char *xml;
    size_t bytes;
    int64_t sent_us;
} unacked_t;

typedef struct sm {
    tern_module_ctx_t *m;
    tern_session_t *s;
    char id[40];         /* resumption id, "" without resume */
    uint32_t h_in;       /* stanzas handled from the client */
    uint32_t acked;      /* the client's last h */
    unacked_t *q;        /* ring of unacked stanzas, oldest at head */
    size_t head, n, cap; /* count n: sent == acked + n (mod 2^32) */
    size_t bytes;
    size_t since_r, bytes_since_r; /* since the last <r/> */
    long long timeout_ms;
    int64_t detached_us;    /* when it detached; 0 while attached */
    tern_timer_t *timer;    /* resumption timeout, or the deferred close */
    int over;               /* over the bound: closing */
    struct sm *prev, *next; /* every sm_t of the module (unload) */
    struct state *st;       /* NULL once the module unloads */
} sm_t;

/* A session that ended while it could have been resumed: its h, to answer
 * a late <resume/> with <failed h/> (XEP-0198 §5). */
typedef struct gone {
    uint32_t h_in;
    int64_t until_us;
} gone_t;

typedef struct state {
    sm_t *all;
    tern_table_t *by_id; /* id -> sm_t of a resumable session */
    tern_table_t *gone;  /* id -> gone_t */
    tern_timer_t *sweep; /* drops old entries of `gone` */
} state_t;

static void send_el(tern_session_t *stream, const char *name, const char *k1, const char *v1,
                    const char *k2, const char *v2, const char *child, const char *child_ns)
{
    tern_xml_t *el = tern_xml_new(name, NS_SM);
    if (!el)
        return;
    if (k1)
        tern_xml_set_attr(el, k1, v1);
    if (k2)
        tern_xml_set_attr(el, k2, v2);
    if (child)
        tern_xml_add_child(el, child, child_ns);
    tern_stream_send(stream, el);
    tern_xml_unref(el);
}

static void send_h(tern_session_t *stream, const char *name, uint32_t h, const char *k2,
                   const char *v2, const char *child)
{
    char num[16];
    snprintf(num, sizeof(num), "%" PRIu32, h);
    send_el(stream, name, "h", num, k2, v2, child, child ? NS_STANZA : NULL);
}

static void drop_acked(sm_t *sm, size_t k)
{
    for (size_t i = 0; i < k; i++) {
        unacked_t *u = &sm->q[sm->head];
        sm->bytes -= u->bytes;
        free(u->xml);
        u->xml = NULL;
        sm->head = (sm->head + 1) % sm->cap;
    }
    sm->n -= k;
    sm->acked += (uint32_t)k;
    if (sm->n == 0)
        sm->head = 0;
}

/* Whether `st` carries a <delay/> from `host` already (XEP-0203). */
static int delayed_by(const tern_xml_t *st, const char *host)
{
    for (tern_xml_t *c = tern_xml_first_element(st); c; c = tern_xml_next_element(c)) {
        const char *from = tern_xml_is(c, "delay", NS_DELAY) ? tern_xml_attr(c, "from") : NULL;
        if (from && strcmp(from, host) == 0)
            return 1;
    }
    return 0;
}

/* The session ends: unacked stanzas go the undelivered way, messages as a
 * copy marked with <delay from='HOST'/> (XEP-0203). */
static void flush_undelivered(sm_t *sm)
{
    for (size_t i = 0; i < sm->n; i++) {
        unacked_t *u = &sm->q[(sm->head + i) % sm->cap];
        tern_xml_t *st = tern_xml_parse(u->xml, u->bytes);
        free(u->xml);
        u->xml = NULL;
        if (!st)
            continue;
        if (st->name && strcmp(st->name, "message") == 0 && !delayed_by(st, tern_host(sm->m))) {
            tern_xml_t *d = tern_xml_add_child(st, "delay", NS_DELAY);
            if (d) {
                char stamp[32];
                time_t t = (time_t)(u->sent_us / 1000000);
                struct tm tm;
                gmtime_r(&t, &tm);
                strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
                tern_xml_set_attr(d, "from", tern_host(sm->m));
                tern_xml_set_attr(d, "stamp", stamp);
            }
        }
        tern_session_undelivered(sm->s, st);
        tern_xml_unref(st);
    }
    sm->n = 0;
    sm->bytes = 0;
}

static void sm_free(void *p)
{
    sm_t *sm = p;
    for (size_t i = 0; i < sm->n; i++)
        free(sm->q[(sm->head + i) % sm->cap].xml);
    if (sm->st) { /* else the core already dropped the module's timers */
        tern_timer_cancel(&sm->timer);
        if (sm->id[0] && tern_table_get(sm->st->by_id, sm->id) == sm)
            tern_table_remove(sm->st->by_id, sm->id);
        if (sm->prev)
            sm->prev->next = sm->next;
        else
            sm->st->all = sm->next;
        if (sm->next)
            sm->next->prev = sm->prev;
    }
    free(sm->q);
    free(sm);
}

static sm_t *sm_of(tern_module_ctx_t *m, tern_session_t *s)
{
    return s ? tern_session_get(s, m) : NULL;
}

/* ---- enable, r, a ---- */

/* XEP-0198 §3: <enable/> after bind, once. */
static int on_enable(tern_module_ctx_t *m, tern_event_t *ev)
{
    state_t *st = tern_get_data(m);
    if (!ev->session || sm_of(m, ev->session)) {
        send_el(ev->origin, "failed", NULL, NULL, NULL, NULL, "unexpected-request", NS_STANZA);
        return TERN_HANDLED;
    }
    sm_t *sm = calloc(1, sizeof(*sm));
    if (!sm) {
        send_el(ev->origin, "failed", NULL, NULL, NULL, NULL, "resource-constraint", NS_STANZA);
        return TERN_HANDLED;
    }
    sm->m = m;
    sm->s = ev->session;
    sm->st = st;
    sm->next = st->all;
    if (st->all)
        st->all->prev = sm;
    st->all = sm;
    const char *resume = tern_xml_attr(ev->stanza, "resume");
    int want = resume && (strcmp(resume, "true") == 0 || strcmp(resume, "1") == 0);
    long long max_ms = tern_opt_int(m, "max_resumption_timeout");
    sm->timeout_ms = tern_opt_int(m, "resumption_timeout");
    const char *max = tern_xml_attr(ev->stanza, "max");
    if (max) {
        long long asked = strtoll(max, NULL, 10);
        if (asked > 0 && asked * 1000 < sm->timeout_ms)
            sm->timeout_ms = asked * 1000; /* a client may ask for less, not more */
    }
    if (sm->timeout_ms > max_ms)
        sm->timeout_ms = max_ms;
    tern_session_set(ev->session, m, sm, sm_free);
    if (want && sm->timeout_ms >= 1000) {
        unsigned char raw[12];
        FILE *f = fopen("/dev/urandom", "rb");
        size_t got = f ? fread(raw, 1, sizeof(raw), f) : 0;
        if (f)
            fclose(f);
        if (got == sizeof(raw)) {
            char *p = sm->id;
            for (size_t i = 0; i < sizeof(raw); i++)
                p += sprintf(p, "%02x", raw[i]);
        }
        if (sm->id[0] && tern_table_put(st->by_id, sm->id, sm) == 0) {
            tern_session_set_resumable(ev->session, 1);
        } else {
            sm->id[0] = '\0';
        }
    }
    /* <enabled id resume max/>: max in seconds (XEP-0198 §3). */
    tern_xml_t *el = tern_xml_new("enabled", NS_SM);
    if (el && sm->id[0]) {
        char secs[24];
        snprintf(secs, sizeof(secs), "%lld", sm->timeout_ms / 1000);
        tern_xml_set_attr(el, "id", sm->id);
        tern_xml_set_attr(el, "resume", "true");
        tern_xml_set_attr(el, "max", secs);
    }
    if (el)
        tern_stream_send(ev->origin, el);
    tern_xml_unref(el);
    tern_log(m, TERN_LOG_DEBUG, "stream management enabled for %s%s",
             tern_session_jid(ev->session)->full, sm->id[0] ? " (resumable)" : "");
    return TERN_HANDLED;
}

static int on_r(tern_module_ctx_t *m, tern_event_t *ev)
{
    sm_t *sm = sm_of(m, ev->session);
    if (!sm)
        return TERN_PASS; /* the core ends the stream */
    send_h(ev->origin, "a", sm->h_in, NULL, NULL, NULL);
    return TERN_HANDLED;
}

/* End `sm`'s stream from the loop, not from inside the event that found
 * the fault. */
static void close_later(tern_module_ctx_t *m, void *arg)
{
    sm_t *sm = arg;
    tern_timer_cancel(&sm->timer);
    tern_log(m, TERN_LOG_INFO, "%s: too many unacknowledged stanzas (%zu, %zu bytes): closing",
             tern_session_jid(sm->s)->full, sm->n, sm->bytes);
    tern_session_close(sm->s, "resource-constraint");
}

static int on_a(tern_module_ctx_t *m, tern_event_t *ev)
{
    sm_t *sm = sm_of(m, ev->session);
    if (!sm)
        return TERN_PASS; /* the core ends the stream */
    uint32_t h;
    long long k = sm_parse_h(tern_xml_attr(ev->stanza, "h"), &h) == 0
                      ? sm_newly_acked(sm->acked, sm->n, h)
                      : -1;
    if (k < 0) {
        /* XEP-0198 §4: an h larger than what was sent. */
        tern_log(m, TERN_LOG_INFO, "%s acknowledged more than was sent: closing",
                 tern_session_jid(ev->session)->full);
        tern_session_close(ev->origin, "undefined-condition");
        return TERN_HANDLED;
    }
    drop_acked(sm, (size_t)k);
    return TERN_HANDLED;
}

/* ---- counting ---- */

static int on_in(tern_module_ctx_t *m, tern_event_t *ev)
{
    sm_t *sm = sm_of(m, ev->session);
    if (sm)
        sm->h_in++; /* wraps at 2^32 */
    return TERN_PASS;
}

static int on_out(tern_module_ctx_t *m, tern_event_t *ev)
{
    sm_t *sm = sm_of(m, ev->session);
    if (!sm)
        return TERN_PASS;
    if (sm->n == sm->cap) {
        size_t cap = sm->cap ? sm->cap * 2 : 8;
        unacked_t *q = malloc(cap * sizeof(*q));
        if (!q) {
            tern_session_close(ev->session, "resource-constraint");
            return TERN_PASS;
        }
        for (size_t i = 0; i < sm->n; i++)
            q[i] = sm->q[(sm->head + i) % sm->cap];
        free(sm->q);
        sm->q = q;
        sm->head = 0;
        sm->cap = cap;
    }
    size_t bytes = 0;
    char *xml = tern_xml_to_string(ev->stanza, &bytes);
    if (!xml) {
        tern_session_close(ev->session, "resource-constraint");
        return TERN_PASS;
    }
    unacked_t *u = &sm->q[(sm->head + sm->n) % sm->cap];
    u->xml = xml;
    u->bytes = bytes;
    u->sent_us = tern_now_us();
    sm->n++;
    sm->bytes += bytes;
    size_t max_bytes = (size_t)tern_opt_int(m, "max_unacked_bytes");
    if (tern_session_detached(ev->session))
        return TERN_PASS;
    if ((sm->n > (size_t)tern_opt_int(m, "max_unacked") || sm->bytes > max_bytes) && !sm->over) {
        sm->over = 1;
        tern_timer_cancel(&sm->timer);
        sm->timer = tern_timer_add(m, 0, 0, close_later, sm);
    }
    sm->since_r++;
    sm->bytes_since_r += bytes;
    /* Now and then ask for an acknowledgement, written after the stanza:
     * this handler is the last, so the stanza is handed on first. */
    if (sm->since_r >= (size_t)tern_opt_int(m, "request_every") ||
        sm->bytes_since_r >= max_bytes / 2) {
        sm->since_r = 0;
        sm->bytes_since_r = 0;
        /* Written after this stanza: released first, then the request. */
        tern_session_release(m, ev->session, ev->stanza);
        send_el(ev->session, "r", NULL, NULL, NULL, NULL, NULL, NULL);
        return TERN_HANDLED;
    }
    return TERN_PASS;
}

/* ---- detach, timeout, end ---- */

static void timed_out(tern_module_ctx_t *m, void *arg)
{
    sm_t *sm = arg;
    tern_timer_cancel(&sm->timer);
    tern_log(m, TERN_LOG_INFO, "detached session %s was not resumed in %lld s: it ends",
             tern_session_jid(sm->s)->full, sm->timeout_ms / 1000);
    tern_session_close(sm->s, NULL); /* session/closed: on_closed below */
}

static int on_detached(tern_module_ctx_t *m, tern_event_t *ev)
{
    sm_t *sm = sm_of(m, ev->session);
    if (!sm || !sm->id[0])
        return TERN_PASS;
    sm->detached_us = tern_now_us();
    sm->over = 0;
    sm->since_r = sm->bytes_since_r = 0;
    tern_timer_cancel(&sm->timer);
    sm->timer = tern_timer_add(m, sm->timeout_ms, 0, timed_out, sm);
    tern_log(m, TERN_LOG_INFO, "session %s detached (%zu unacknowledged); resumable for %lld s",
             tern_session_jid(ev->session)->full, sm->n, sm->timeout_ms / 1000);
    /* Per-user cap: the oldest other detached session ends. */
    const tern_jid_t *jid = tern_session_jid(ev->session);
    size_t count = 0;
    tern_session_t *oldest = NULL;
    int64_t oldest_us = 0;
    for (tern_session_t *o = tern_user_first_session(m, jid->local); o; o = tern_session_next(o)) {
        sm_t *osm = sm_of(m, o);
        if (!tern_session_detached(o))
            continue;
        count++;
        if (o != ev->session && osm && (!oldest || osm->detached_us < oldest_us)) {
            oldest = o;
            oldest_us = osm->detached_us;
        }
    }
    if (count > (size_t)tern_opt_int(m, "max_detached_per_user") && oldest) {
        tern_log(m, TERN_LOG_INFO, "too many detached sessions for %s: %s ends", jid->bare,
                 tern_session_jid(oldest)->full);
        tern_session_close(oldest, NULL);
    }
    return TERN_PASS;
}

static int on_closed(tern_module_ctx_t *m, tern_event_t *ev)
{
    state_t *st = tern_get_data(m);
    sm_t *sm = sm_of(m, ev->session);
    if (!sm)
        return TERN_PASS;
    tern_timer_cancel(&sm->timer);
    if (sm->id[0]) {
        tern_table_remove(st->by_id, sm->id);
        gone_t *g = malloc(sizeof(*g));
        if (g) {
            g->h_in = sm->h_in;
            g->until_us = tern_now_us() + tern_opt_int(m, "max_resumption_timeout") * 1000;
            free(tern_table_remove(st->gone, sm->id));
            if (tern_table_put(st->gone, sm->id, g) < 0)
                free(g);
        }
        if (sm->detached_us)
            tern_log(m, TERN_LOG_INFO,
                     "detached session %s ended (%zu unacknowledged stanzas "
                     "go to other resources or offline storage)",
                     tern_session_jid(ev->session)->full, sm->n);
    }
    flush_undelivered(sm);
    return TERN_PASS;
}

/* ---- resume ---- */

static int on_resume(tern_module_ctx_t *m, tern_event_t *ev)
{
    state_t *st = tern_get_data(m);
    const char *previd = tern_xml_attr(ev->stanza, "previd");
    uint32_t h = 0;
    if (ev->session) { /* XEP-0198 §5: before bind only */
        send_el(ev->origin, "failed", NULL, NULL, NULL, NULL, "unexpected-request", NS_STANZA);
        return TERN_HANDLED;
    }
    if (!previd || sm_parse_h(tern_xml_attr(ev->stanza, "h"), &h) < 0) {
        send_el(ev->origin, "failed", NULL, NULL, NULL, NULL, "bad-request", NS_STANZA);
        return TERN_HANDLED;
    }
    sm_t *sm = tern_table_get(st->by_id, previd);
    if (sm &&
        (!tern_session_jid(sm->s)->local || strcmp(tern_session_jid(sm->s)->local, ev->user) != 0))
        sm = NULL; /* another account's: as unknown */
    if (!sm) {
        gone_t *g = tern_table_get(st->gone, previd);
        tern_log(m, TERN_LOG_INFO, "%s: resumption of an unknown or ended session refused",
                 ev->from ? ev->from->bare : "?");
        if (g)
            send_h(ev->origin, "failed", g->h_in, NULL, NULL, "item-not-found");
        else
            send_el(ev->origin, "failed", NULL, NULL, NULL, NULL, "item-not-found", NS_STANZA);
        return TERN_HANDLED;
    }
    long long k = sm_newly_acked(sm->acked, sm->n, h);
    if (k < 0) {
        send_h(ev->origin, "failed", sm->h_in, NULL, NULL, "undefined-condition");
        tern_session_close(ev->origin, "undefined-condition");
        return TERN_HANDLED;
    }
    drop_acked(sm, (size_t)k);
    /* <resumed/>, then what the client missed, in order, then what
     * waited in the core's queue (tern_session_resume hands it on). */
    send_h(ev->origin, "resumed", sm->h_in, "previd", previd, NULL);
    for (size_t i = 0; i < sm->n; i++) {
        unacked_t *u = &sm->q[(sm->head + i) % sm->cap];
        tern_xml_t *again = tern_xml_parse(u->xml, u->bytes);
        if (again)
            tern_stream_send(ev->origin, again);
        tern_xml_unref(again);
    }
    tern_session_t *s = sm->s;
    size_t resent = sm->n;
    if (tern_session_resume(ev->origin, s) < 0) {
        tern_session_close(ev->origin, "internal-server-error");
        return TERN_HANDLED;
    }
    /* session/resumed cleared the timer */
    tern_log(m, TERN_LOG_INFO, "session %s resumed (%zu stanzas sent again)",
             tern_session_jid(s)->full, resent);
    return TERN_HANDLED;
}

static int on_resumed(tern_module_ctx_t *m, tern_event_t *ev)
{
    sm_t *sm = sm_of(m, ev->session);
    if (!sm)
        return TERN_PASS;
    tern_timer_cancel(&sm->timer);
    sm->detached_us = 0;
    if (sm->n > 0)
        send_el(ev->session, "r", NULL, NULL, NULL, NULL, NULL, NULL);
    return TERN_PASS;
}

/* XEP-0198 §2: the feature, after login. */
static int on_features(tern_module_ctx_t *m, tern_event_t *ev)
{
    tern_xml_add_child(ev->stanza, "sm", NS_SM);
    return TERN_PASS;
}

static int sweep_gone(void *ctx, const char *key, void *value)
{
    const char **out = ctx;
    gone_t *g = value;
    if (g->until_us < tern_now_us() && !*out)
        *out = key;
    return 0;
}

static void sweep(tern_module_ctx_t *m, void *arg)
{
    state_t *st = tern_get_data(m);
    for (int i = 0; i < 1000; i++) {
        const char *key = NULL;
        tern_table_foreach(st->gone, sweep_gone, &key);
        if (!key)
            break;
        free(tern_table_remove(st->gone, key));
    }
}

static int free_gone(void *ctx, const char *key, void *value)
{
    free(value);
    return 0;
}

static int load(tern_module_ctx_t *m)
{
    long long max_bytes = tern_opt_int(m, "max_unacked_bytes");
    long long t = tern_opt_int(m, "resumption_timeout"),
              maxt = tern_opt_int(m, "max_resumption_timeout");
    if (max_bytes < 64 * 1024 || max_bytes > 1024LL * 1024 * 1024) {
        tern_log(m, TERN_LOG_ERROR, "max_unacked_bytes must be from 64K to 1G");
        return -1;
    }
    if (maxt < 1000 || maxt > 86400000LL || t < 0 || t > maxt) {
        tern_log(m, TERN_LOG_ERROR,
                 "max_resumption_timeout must be from 1 s to 1 day, and "
                 "resumption_timeout at most that");
        return -1;
    }
    state_t *st = calloc(1, sizeof(*st));
    if (!st || !(st->by_id = tern_table_new()) || !(st->gone = tern_table_new())) {
        if (st) {
            tern_table_free(&st->by_id);
            free(st);
        }
        return -1;
    }
    tern_set_data(m, st);
    tern_session_queue_limits((size_t)tern_opt_int(m, "max_unacked"), (size_t)max_bytes);
    static const struct {
        const char *event;
        tern_handler_fn fn;
        int priority;
    } hooks[] = {
        {"stream-features/auth", on_features, 0},
        {"stream/" NS_SM ":enable", on_enable, 0},
        {"stream/" NS_SM ":r", on_r, 0},
        {"stream/" NS_SM ":a", on_a, 0},
        {"stream/" NS_SM ":resume", on_resume, 0},
        {"session/in", on_in, 0},
        /* Low: a module that holds stanzas back (XEP-0352) hooks above and
         * hands them on with tern_session_release. */
        {"session/out", on_out, -1000},
        {"session/detached", on_detached, 0},
        {"session/resumed", on_resumed, 0},
        {"session/closed", on_closed, 100},
    };
    for (size_t i = 0; i < sizeof hooks / sizeof hooks[0]; i++)
        if (tern_hook(m, hooks[i].event, hooks[i].fn, hooks[i].priority) != 0)
            return -1;
    tern_add_feature(m, NS_SM);
    st->sweep = tern_timer_add(m, 60000, 1, sweep, NULL);
    return 0;
}

static void unload(tern_module_ctx_t *m)
{
    state_t *st = tern_get_data(m);
    if (!st)
        return;
    /* Detached sessions end now (nobody would end them later); the others
     * end as plain sessions when their connection goes. */
    for (;;) {
        sm_t *d = st->all;
        while (d && !tern_session_detached(d->s))
            d = d->next;
        if (!d)
            break;
        tern_session_close(d->s, NULL);
    }
    for (sm_t *sm = st->all; sm; sm = sm->next) {
        tern_session_set_resumable(sm->s, 0);
        sm->st = NULL;
        sm->timer = NULL; /* the core cancels the module's timers */
    }
    tern_table_foreach(st->gone, free_gone, NULL);
    tern_table_free(&st->gone);
    tern_table_free(&st->by_id);
    free(st);
}

TERN_MODULE = {.abi = TERN_ABI,
               .name = "smacks",
               .description = "Stream Management (XEP-0198): acknowledgements and resumption",
               .options = options,
               .load = load,
               .unload = unload};
