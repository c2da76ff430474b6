/*
 * mod_csi — XEP-0352 Client State Indication (urn:xmpp:csi:0).
 *
 * Owns the active/inactive state of each bound client session and the
 * stanzas held back from it while it is inactive.  It must not change a
 * stanza (they are frozen and shared), nor answer <active/>/<inactive/>
 * (§4: no answer), nor hold anything a user must see at once.
 *
 * The client advertises nothing; the server offers <csi/> in the features
 * after login (§3), and a bound session sends <inactive/> or <active/> at
 * the top level of its stream (§4).  A session starts active.  While it is
 * inactive, the session/out handler (priority 100: above anything that
 * counts what reaches the wire, such as stream management) sorts each
 * stanza for it (§5, "Server behaviour"):
 *   - held, and replaced by a later one with the same key (the earlier one
 *     is dropped, the later one takes the end of the queue):
 *       presence available or unavailable: per sender's full JID (contacts
 *       and group chat occupants alike: unavailable replaces available);
 *       a message whose only content is a XEP-0085 chat state: per sender
 *       and type;
 *       a PEP notification (pubsub#event) of one item or one retraction:
 *       per publisher, node and item id (so items of multi-item nodes such
 *       as bookmarks are never lost);
 *   - held as they are, in order: other messages without a body (receipts,
 *     markers, subjects, other PEP events...);
 *   - sent at once, after everything held (in order, so that a message
 *     never overtakes the presence that came before it): iq stanzas,
 *     messages with a body (also inside a carbon or an archive result;
 *     group chat messages with a body, so mentions too), XEP-0353 call
 *     messages (urn:xmpp:jingle-message:0), errors, presence
 *     subscriptions, and PEP notifications of the nodes listed in the
 *     `immediate_nodes` option.
 * On <active/> everything held is written, in order.  When the queue holds
 * `max_held` stanzas it is written out, and holding goes on.  When the
 * session ends, what is held is dropped: only presence, chat states and
 * bodyless notifications are ever held, and the contacts' presence comes
 * again at the next login.  A session that is detached and resumed keeps
 * its state and its queue.
 *
 * Counters (`ternctl status`): "csi stanzas held", "csi stanzas coalesced"
 * (dropped because a later one replaced them), "csi stanzas flushed",
 * "csi stanzas dropped" (held when the session ended).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tern/module.h>
#include <tern/table.h>

#define NS_CSI        "urn:xmpp:csi:0"
#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
#define NS_JMI        "urn:xmpp:jingle-message:0"
#define NS_PUBSUB_EV  "http://jabber.org/protocol/pubsub#event"
#define NS_CARBONS    "urn:xmpp:carbons:2"
#define NS_FORWARD    "urn:xmpp:forward:0"
#define NS_HINTS      "urn:xmpp:hints"
#define NS_SID        "urn:xmpp:sid:0"

#define C_HELD      "csi stanzas held"
#define C_COALESCED "csi stanzas coalesced"
#define C_FLUSHED   "csi stanzas flushed"
#define C_DROPPED   "csi stanzas dropped"

static const tern_option_t options[] = {
    {.name = "max_held",
     .type = TERN_OPT_INT,
     .def = "1000",
     .min = 1,
     .max = 100000,
     .doc = "Most stanzas held for one inactive client (after coalescing); when reached, all held "
            "stanzas are sent."},
    {.name = "immediate_nodes",
     .type = TERN_OPT_LIST,
     .def = "",
     .doc = "PEP nodes whose notifications go to an inactive client at once (by default all are "
            "held, the latest per publisher, node and item)."},
    {.name = NULL},
};

typedef struct held {
    tern_xml_t *st; /* NULL once a later stanza with the same key replaced it */
    char *key;      /* coalescing key, or NULL */
} held_t;

typedef struct csi {
    tern_module_ctx_t *m;
    int inactive;
    held_t *q;
    size_t n, cap, live; /* slots used, allocated, still holding a stanza */
    tern_table_t *keys;  /* key -> slot index + 1 */
} csi_t;

static void queue_clear(held_t *q, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (q[i].st != NULL)
            tern_xml_unref(q[i].st);
        free(q[i].key);
    }
    free(q);
}

static void csi_free(void *p)
{
    csi_t *c = p;
    if (c->live > 0)
        tern_counter_add(c->m, C_DROPPED, (long long)c->live);
    queue_clear(c->q, c->n);
    tern_table_free(&c->keys);
    free(c);
}

static csi_t *csi_of(tern_module_ctx_t *m, tern_session_t *s)
{
    csi_t *c = tern_session_get(s, m);
    if (c == NULL && (c = calloc(1, sizeof(*c))) != NULL) {
        c->m = m;
        tern_session_set(s, m, c, csi_free);
    }
    return c;
}

/* Write everything held, in order.  The queue is taken off the session
 * first: what a release writes may come back through session/out. */
static void flush(tern_module_ctx_t *m, tern_session_t *s, csi_t *c)
{
    held_t *q = c->q;
    size_t n = c->n, live = c->live;
    if (n == 0)
        return;
    c->q = NULL;
    c->n = c->cap = c->live = 0;
    tern_table_free(&c->keys);
    for (size_t i = 0; i < n; i++)
        if (q[i].st != NULL)
            tern_session_release(m, s, q[i].st);
    queue_clear(q, n);
    tern_counter_add(m, C_FLUSHED, (long long)live);
}

/* Drop the slots replaced by later stanzas and renumber the keys. */
static void compact(csi_t *c)
{
    size_t j = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->q[i].st == NULL) {
            free(c->q[i].key);
            continue;
        }
        c->q[j] = c->q[i];
        if (c->q[j].key != NULL)
            tern_table_put(c->keys, c->q[j].key, (void *)(uintptr_t)(j + 1));
        j++;
    }
    c->n = j;
}

/* Keep `st` at the end of the queue, dropping an earlier one with the same
 * key.  0, or -1 when out of memory (the caller lets it through). */
static int hold(tern_module_ctx_t *m, csi_t *c, tern_xml_t *st, const char *key)
{
    if (key != NULL && c->keys == NULL && (c->keys = tern_table_new()) == NULL)
        return -1;
    size_t prev = key != NULL ? (size_t)(uintptr_t)tern_table_get(c->keys, key) : 0;
    if (prev != 0) {
        tern_xml_unref(c->q[prev - 1].st);
        c->q[prev - 1].st = NULL;
        c->live--;
        tern_counter_add(m, C_COALESCED, 1);
    }
    if (c->n == c->cap && c->n > c->live)
        compact(c);
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        held_t *q = realloc(c->q, cap * sizeof(*q));
        if (q == NULL)
            return -1;
        c->q = q;
        c->cap = cap;
    }
    char *k = NULL;
    if (key != NULL && ((k = strdup(key)) == NULL ||
                        tern_table_put(c->keys, key, (void *)(uintptr_t)(c->n + 1)) < 0)) {
        free(k);
        if (prev != 0)
            tern_table_remove(c->keys, key);
        return -1;
    }
    c->q[c->n].st = tern_xml_ref(st);
    c->q[c->n].key = k;
    c->n++;
    c->live++;
    tern_counter_add(m, C_HELD, 1);
    return 0;
}

/* A direct child in namespace ns. */
static const tern_xml_t *child_ns(const tern_xml_t *st, const char *ns)
{
    for (const tern_xml_t *el = tern_xml_first_element(st); el != NULL;
         el = tern_xml_next_element(el))
        if (el->ns != NULL && strcmp(el->ns, ns) == 0)
            return el;
    return NULL;
}

/* The message a carbon (XEP-0280) or an archive result (XEP-0313) wraps. */
static const tern_xml_t *wrapped(const tern_xml_t *msg)
{
    for (const tern_xml_t *el = tern_xml_first_element(msg); el != NULL;
         el = tern_xml_next_element(el)) {
        const tern_xml_t *fwd = tern_xml_child(el, "forwarded", NS_FORWARD);
        const tern_xml_t *inner =
            fwd != NULL ? tern_xml_child(fwd, "message", TERN_NS_CLIENT) : NULL;
        if (inner != NULL)
            return inner;
    }
    return NULL;
}

/* A message a user must see at once: a body or a call (XEP-0353), itself
 * or inside a carbon or an archive result. */
static int urgent_message(const tern_xml_t *msg)
{
    if (tern_xml_child(msg, "body", TERN_NS_CLIENT) != NULL || child_ns(msg, NS_JMI) != NULL)
        return 1;
    const tern_xml_t *inner = wrapped(msg);
    return inner != NULL && (tern_xml_child(inner, "body", TERN_NS_CLIENT) != NULL ||
                             child_ns(inner, NS_JMI) != NULL);
}

/* A message whose only content is a chat state (XEP-0085), with at most a
 * thread, hints and stanza ids beside it. */
static int only_chat_state(const tern_xml_t *msg)
{
    int state = 0;
    for (const tern_xml_t *el = tern_xml_first_element(msg); el != NULL;
         el = tern_xml_next_element(el)) {
        const char *ns = el->ns != NULL ? el->ns : "";
        if (strcmp(ns, NS_CHATSTATES) == 0)
            state = 1;
        else if (!(strcmp(ns, TERN_NS_CLIENT) == 0 && strcmp(el->name, "thread") == 0) &&
                 strcmp(ns, NS_HINTS) != 0 && strcmp(ns, NS_SID) != 0)
            return 0;
    }
    return state;
}

static int listed(const char *const *list, const char *s)
{
    for (size_t i = 0; list != NULL && list[i] != NULL; i++)
        if (strcmp(list[i], s) == 0)
            return 1;
    return 0;
}

enum { SEND, HOLD };

/* A coalescing key of three parts; none ("") when it does not fit. */
static void set_key(char *key, size_t keylen, char kind, const char *a, const char *b,
                    const char *c)
{
    int n = snprintf(key, keylen, "%c\n%s\n%s\n%s", kind, a, b, c != NULL ? c : "");
    if (n < 0 || (size_t)n >= keylen)
        key[0] = '\0';
}

/* Sort one stanza for an inactive session (see the top of the file):
 * SEND, or HOLD with the coalescing key in `key` ("" for none). */
static int classify(tern_module_ctx_t *m, const tern_xml_t *st, char *key, size_t keylen)
{
    const char *type = tern_xml_attr(st, "type");
    const char *from = tern_xml_attr(st, "from");
    key[0] = '\0';
    if (tern_xml_is(st, "presence", TERN_NS_CLIENT)) {
        if (type != NULL && strcmp(type, "unavailable") != 0)
            return SEND; /* subscriptions, errors */
        if (from != NULL)
            set_key(key, keylen, 'p', from, "", NULL);
        return HOLD;
    }
    if (!tern_xml_is(st, "message", TERN_NS_CLIENT))
        return SEND; /* iq */
    if ((type != NULL && strcmp(type, "error") == 0) || urgent_message(st))
        return SEND;
    const tern_xml_t *event = tern_xml_child(st, "event", NS_PUBSUB_EV);
    if (event != NULL) {
        const tern_xml_t *items = tern_xml_child(event, "items", NS_PUBSUB_EV);
        const char *node = items != NULL ? tern_xml_attr(items, "node") : NULL;
        if (node != NULL && listed(tern_opt_list(m, "immediate_nodes"), node))
            return SEND;
        const tern_xml_t *item = items != NULL ? tern_xml_first_element(items) : NULL;
        const char *id = item != NULL ? tern_xml_attr(item, "id") : NULL;
        if (id != NULL && from != NULL && tern_xml_next_element(item) == NULL)
            set_key(key, keylen, 'e', from, node, id);
        return HOLD;
    }
    if (from != NULL && only_chat_state(st))
        set_key(key, keylen, 's', from, type != NULL ? type : "normal", NULL);
    return HOLD;
}

/* session/out: hold or let through (see the top of the file). */
static int on_out(tern_module_ctx_t *m, tern_event_t *ev)
{
    csi_t *c = tern_session_get(ev->session, m);
    if (c == NULL || !c->inactive)
        return TERN_PASS;
    char key[3200];
    if (classify(m, ev->stanza, key, sizeof(key)) == SEND ||
        c->live >= (size_t)tern_opt_int(m, "max_held")) {
        flush(m, ev->session, c);
        return TERN_PASS;
    }
    if (hold(m, c, ev->stanza, key[0] != '\0' ? key : NULL) < 0) {
        tern_log(m, TERN_LOG_WARN, "out of memory: a stanza for an inactive client went at once");
        flush(m, ev->session, c);
        return TERN_PASS;
    }
    return TERN_HANDLED;
}

/* §4: <inactive/>, no answer.  Before bind the core ends the stream. */
static int on_inactive(tern_module_ctx_t *m, tern_event_t *ev)
{
    if (ev->session == NULL)
        return TERN_PASS;
    csi_t *c = csi_of(m, ev->session);
    if (c != NULL)
        c->inactive = 1;
    return TERN_HANDLED;
}

/* §4: <active/>, no answer: write what was held, before anything the
 * client sends next is handled. */
static int on_active(tern_module_ctx_t *m, tern_event_t *ev)
{
    if (ev->session == NULL)
        return TERN_PASS;
    csi_t *c = tern_session_get(ev->session, m);
    if (c != NULL) {
        c->inactive = 0;
        flush(m, ev->session, c);
    }
    return TERN_HANDLED;
}

/* §3: the stream feature, offered with resource binding. */
static int on_features(tern_module_ctx_t *m, tern_event_t *ev)
{
    tern_xml_add_child(ev->stanza, "csi", NS_CSI);
    return TERN_PASS;
}

static int load(tern_module_ctx_t *m)
{
    if (tern_hook(m, "stream-features/auth", on_features, 0) < 0 ||
        tern_hook(m, "stream/" NS_CSI ":inactive", on_inactive, 0) < 0 ||
        tern_hook(m, "stream/" NS_CSI ":active", on_active, 0) < 0 ||
        tern_hook(m, "session/out", on_out, 100) < 0)
        return -1;
    return 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "csi",
    .description = "Client State Indication: holds presence, chat states and PEP for inactive "
                   "clients (XEP-0352)",
    .options = options,
    .load = load,
};
