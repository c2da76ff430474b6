/*
 * mod_streamtest.c — a module built only for the tests (never installed):
 * it exercises the stream-level events the way stream management
 * (XEP-0198) and client state indication (XEP-0352) modules will
 * (tests/integration/test_stream_hooks.py).
 *
 * Elements of the made-up namespace urn:tern:test:stream that a logged-in
 * client may send at the top level, before or after bind:
 *   <ping/>     answered <pong bound='yes|no' jid='...'/> on the stream;
 *   <pass/>     not taken: the core's default follows (a stream error);
 *   <hold/>     (bound) stanzas for this session are kept back from now on;
 *               answered <holding/>;
 *   <release/>  (bound) the kept stanzas are handed on in order, then
 *               <released n='N'/>;
 *   <count/>    (bound) <counted in='N' out='N' held='N'/>: stanzas the
 *               client sent (session/in) and stanzas written to it
 *               (session/out, counted below the holding handler, so a
 *               kept stanza counts once, when it is handed on).
 * Before bind, <hold/>, <release/> and <count/> get <failed/>.  The
 * features after login carry <streamtest user='LOCALPART'/>.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tern/module.h>

#define NS_TEST "urn:tern:test:stream"

typedef struct counts {
    long in, out;
    int holding;
    tern_xml_t **held;
    size_t n_held, cap;
} counts_t;

static void counts_free(void *p)
{
    counts_t *c = p;
    for (size_t i = 0; i < c->n_held; i++)
        tern_xml_unref(c->held[i]);
    free(c->held);
    free(c);
}

static counts_t *counts_of(tern_module_ctx_t *m, tern_session_t *s)
{
    counts_t *c = tern_session_get(s, m);
    if (!c && (c = calloc(1, sizeof(*c))) != NULL)
        tern_session_set(s, m, c, counts_free);
    return c;
}

/* Write <NAME xmlns=NS_TEST/> on the stream, with up to two attributes. */
static void answer(tern_session_t *stream, const char *name, const char *k1, const char *v1,
                   const char *k2, const char *v2)
{
    tern_xml_t *el = tern_xml_new(name, NS_TEST);
    if (!el)
        return;
    if (k1)
        tern_xml_set_attr(el, k1, v1);
    if (k2)
        tern_xml_set_attr(el, k2, v2);
    tern_stream_send(stream, el);
    tern_xml_unref(el);
}

static int on_ping(tern_module_ctx_t *m, tern_event_t *ev)
{
    answer(ev->origin, "pong", "bound", ev->session ? "yes" : "no", "jid",
           ev->from ? ev->from->full : "");
    return TERN_HANDLED;
}

static int on_hold(tern_module_ctx_t *m, tern_event_t *ev)
{
    counts_t *c = ev->session ? counts_of(m, ev->session) : NULL;
    if (!c) {
        answer(ev->origin, "failed", NULL, NULL, NULL, NULL);
        return TERN_HANDLED;
    }
    c->holding = 1;
    answer(ev->origin, "holding", NULL, NULL, NULL, NULL);
    return TERN_HANDLED;
}

static int on_release(tern_module_ctx_t *m, tern_event_t *ev)
{
    counts_t *c = ev->session ? counts_of(m, ev->session) : NULL;
    if (!c) {
        answer(ev->origin, "failed", NULL, NULL, NULL, NULL);
        return TERN_HANDLED;
    }
    c->holding = 0;
    size_t n = c->n_held;
    for (size_t i = 0; i < n; i++) {
        tern_session_release(m, ev->session, c->held[i]);
        tern_xml_unref(c->held[i]);
    }
    c->n_held = 0;
    char num[32];
    snprintf(num, sizeof(num), "%zu", n);
    answer(ev->origin, "released", "n", num, NULL, NULL);
    return TERN_HANDLED;
}

static int on_count(tern_module_ctx_t *m, tern_event_t *ev)
{
    counts_t *c = ev->session ? counts_of(m, ev->session) : NULL;
    if (!c) {
        answer(ev->origin, "failed", NULL, NULL, NULL, NULL);
        return TERN_HANDLED;
    }
    tern_xml_t *el = tern_xml_new("counted", NS_TEST);
    if (!el)
        return TERN_HANDLED;
    char num[32];
    snprintf(num, sizeof(num), "%ld", c->in);
    tern_xml_set_attr(el, "in", num);
    snprintf(num, sizeof(num), "%ld", c->out);
    tern_xml_set_attr(el, "out", num);
    snprintf(num, sizeof(num), "%zu", c->n_held);
    tern_xml_set_attr(el, "held", num);
    tern_stream_send(ev->origin, el);
    tern_xml_unref(el);
    return TERN_HANDLED;
}

static int on_pass(tern_module_ctx_t *m, tern_event_t *ev)
{
    return TERN_PASS;
}

/* session/out, high priority: keep the stanza while the client asked so. */
static int out_hold(tern_module_ctx_t *m, tern_event_t *ev)
{
    counts_t *c = tern_session_get(ev->session, m);
    if (!c || !c->holding)
        return TERN_PASS;
    if (c->n_held == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        tern_xml_t **held = realloc(c->held, cap * sizeof(*held));
        if (!held)
            return TERN_PASS; /* cannot keep it: let it through */
        c->held = held;
        c->cap = cap;
    }
    c->held[c->n_held++] = tern_xml_ref(ev->stanza);
    return TERN_HANDLED;
}

/* session/out, low priority: what reaches the wire. */
static int out_count(tern_module_ctx_t *m, tern_event_t *ev)
{
    counts_t *c = counts_of(m, ev->session);
    if (c)
        c->out++;
    return TERN_PASS;
}

static int in_count(tern_module_ctx_t *m, tern_event_t *ev)
{
    counts_t *c = counts_of(m, ev->session);
    if (c)
        c->in++;
    return TERN_PASS;
}

static int on_features(tern_module_ctx_t *m, tern_event_t *ev)
{
    tern_xml_t *f = tern_xml_add_child(ev->stanza, "streamtest", NS_TEST);
    if (f && ev->user && ev->from && ev->origin) {
        tern_xml_set_attr(f, "user", ev->user);
        tern_xml_set_attr(f, "jid", ev->from->full);
    }
    return TERN_PASS;
}

static int load(tern_module_ctx_t *m)
{
    static const struct {
        const char *event;
        tern_handler_fn fn;
        int priority;
    } hooks[] = {
        {"stream/" NS_TEST ":ping", on_ping, 0},
        {"stream/" NS_TEST ":hold", on_hold, 0},
        {"stream/" NS_TEST ":release", on_release, 0},
        {"stream/" NS_TEST ":count", on_count, 0},
        {"stream/" NS_TEST ":pass", on_pass, 0},
        {"session/out", out_hold, 10},
        {"session/out", out_count, -10},
        {"session/in", in_count, 0},
        {"stream-features/auth", on_features, 0},
    };
    for (size_t i = 0; i < sizeof(hooks) / sizeof(hooks[0]); i++)
        if (tern_hook(m, hooks[i].event, hooks[i].fn, hooks[i].priority) < 0)
            return -1;
    return 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "streamtest",
    .description = "test only: answers stream-level elements, counts and holds stanzas",
    .load = load,
};
