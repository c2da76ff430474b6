/*
 * mod_private — XEP-0049 Private XML Storage.
 *
 * Owns the jabber:iq:private get and set a user sends to their own account
 * (no 'to', or their bare JID), and the refusal of the same request
 * addressed to anybody else's account (XEP-0049 §2.3, §4: forbidden).
 * For every namespace NS a user stores in, the module keeps the elements
 * of NS from the user's last set, in the map store "private" (key NS, value
 * the text of <query xmlns='jabber:iq:private'>elements</query>).  A set
 * naming several namespaces replaces each of them independently.  Two
 * quotas per user: max_namespaces, and max_bytes of stored text in all.
 *
 * Other modules reach the same data through the "private" service
 * (modules/private_api.h): get, set, and watches told of every write, so
 * that mod_bookmarks can mirror XEP-0048 storage:bookmarks.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tern/module.h>

#include "private_api.h"

#define NS_PRIVATE TERN_NS_PRIVATE
#define STORE_NAME "private"

/* A watch registered through the service. */
typedef struct private_watch {
    struct private_watch *next;
    tern_module_ctx_t *watcher;
    char *ns; /* NULL: every namespace */
    tern_private_watch_fn fn;
    void *arg;
    int dead; /* unwatched while watches were being called */
} private_watch_t;

/* Module data.  `api` comes first: the service table other modules get is
 * the address of this struct. */
typedef struct private_state {
    tern_private_api_t api;
    tern_module_ctx_t *m;
    tern_store_t *store;
    long long max_namespaces;
    long long max_bytes;
    private_watch_t *watches;
    int notifying; /* depth of watch calls in progress */
} private_state_t;

static const tern_option_t options[] = {
    {.name = "max_namespaces",
     .type = TERN_OPT_INT,
     .def = "100",
     .doc = "Most namespaces one user may store data in; 0 = no limit.",
     .min = 0,
     .max = 100000},
    {.name = "max_bytes",
     .type = TERN_OPT_SIZE,
     .def = "1M",
     .doc = "Most bytes of XML one user may store, all namespaces together; 0 = no limit. A "
            "store that would go beyond it gets `not-acceptable`.",
     .min = 0,
     .max = 1LL << 30},
    {.name = NULL},
};

/* ---- reading stored text back ------------------------------------------ */

/* Parse one stored element: as a new tree when `parent` is NULL, else
 * copied under `parent`.  The element, or NULL when the text is not one
 * well-formed element. */
static tern_xml_t *parse_stored(tern_xml_t *parent, const char *data, size_t len)
{
    tern_xml_t *el = tern_xml_parse(data, len);
    if (el == NULL || parent == NULL)
        return el;
    tern_xml_t *copy = tern_xml_copy_into(parent, el);
    tern_xml_unref(el);
    return copy;
}

/* ---- storage ------------------------------------------------------------- */

/* XEP-0049 §2.3: a namespace the module refuses to store.  Stanza content
 * (jabber:client and jabber:server both read as TERN_NS_CLIENT) and the
 * protocol's own namespace would make a stored element that is not private
 * data. */
static int reserved_ns(const char *ns)
{
    return ns == NULL || ns[0] == '\0' || strcmp(ns, TERN_NS_CLIENT) == 0 ||
           strcmp(ns, NS_PRIVATE) == 0;
}

/* Append the stored elements of `ns` for `user` under `parent` (as one
 * <query/>): 1 found, 0 nothing stored, -1 error. */
static int load_ns(private_state_t *st, const char *user, const char *ns, tern_xml_t *parent,
                   tern_xml_t **query_r)
{
    tern_blob_t blob = {0};
    int rc = st->store != NULL ? tern_map_get(st->store, user, ns, &blob) : -1;
    if (rc == 1) {
        *query_r = parse_stored(parent, blob.data, blob.len);
        if (*query_r == NULL) {
            tern_log(st->m, TERN_LOG_ERROR, "stored data of %s in %s is not XML", user, ns);
            rc = -1;
        }
    }
    free(blob.data);
    return rc;
}

typedef struct usage {
    long long keys, bytes;
} usage_t;

static int count_key(void *ctx, const char *key, const char *data, size_t len)
{
    usage_t *u = ctx;
    u->keys++;
    u->bytes += (long long)len;
    return 0;
}

/* The <query/> holding the elements of the set from `e` on that share e's
 * namespace: what store_ns() keeps for it.  NULL when out of memory. */
static tern_xml_t *ns_query(const tern_xml_t *e)
{
    tern_xml_t *one = tern_xml_new("query", NS_PRIVATE);
    for (const tern_xml_t *s = e; one != NULL && s != NULL; s = tern_xml_next_element(s))
        if (strcmp(s->ns, e->ns) == 0 && tern_xml_copy_into(one, s) == NULL) {
            tern_xml_unref(one);
            one = NULL;
        }
    return one;
}

/* Whether the element `e` is the first of the set in its namespace. */
static int first_of_ns(const tern_xml_t *first, const tern_xml_t *e)
{
    for (const tern_xml_t *p = first; p != e; p = tern_xml_next_element(p))
        if (strcmp(p->ns, e->ns) == 0)
            return 0;
    return 1;
}

/* Whether storing the elements from `first` on keeps `user` within
 * max_namespaces and max_bytes: 1 yes, 0 too many namespaces, 2 too many
 * bytes, -1 error.  Costs one walk of the user's own namespaces (at most
 * max_namespaces of them). */
static int within_limit(private_state_t *st, const char *user, const tern_xml_t *first)
{
    if (st->max_namespaces == 0 && st->max_bytes == 0)
        return 1;
    usage_t have = {0, 0};
    long long added = 0, bytes = 0;
    if (tern_map_foreach(st->store, user, count_key, &have) < 0)
        return -1;
    bytes = have.bytes;
    for (const tern_xml_t *e = first; e != NULL; e = tern_xml_next_element(e)) {
        if (!first_of_ns(first, e))
            continue;
        tern_blob_t blob = {0};
        int rc = tern_map_get(st->store, user, e->ns, &blob);
        free(blob.data);
        if (rc < 0)
            return -1;
        added += rc == 0;
        bytes -= rc == 1 ? (long long)blob.len : 0;
        tern_xml_t *one = st->max_bytes > 0 ? ns_query(e) : NULL;
        size_t len = 0;
        char *text = one != NULL ? tern_xml_to_string(one, &len) : NULL;
        if (one != NULL)
            tern_xml_unref(one);
        if (st->max_bytes > 0 && text == NULL)
            return -1;
        free(text);
        bytes += (long long)len;
    }
    if (st->max_namespaces > 0 && have.keys + added > st->max_namespaces)
        return 0;
    if (st->max_bytes > 0 && bytes > st->max_bytes)
        return 2;
    return 1;
}

/* Free the watches marked dead, unless watches are being called (the
 * outermost notify() sweeps when it is done). */
static void sweep(private_state_t *st)
{
    if (st->notifying > 0)
        return;
    private_watch_t **wp = &st->watches;
    while (*wp != NULL) {
        private_watch_t *w = *wp;
        if (w->dead) {
            *wp = w->next;
            free(w->ns);
            free(w);
        } else {
            wp = &w->next;
        }
    }
}

/* Tell the watches of `ns`, except `caller`'s, that `user` stored `query`.
 * A watch removed meanwhile is freed once no call is in progress. */
static void notify(private_state_t *st, tern_module_ctx_t *caller, const char *user, const char *ns,
                   const tern_xml_t *query)
{
    st->notifying++;
    for (private_watch_t *w = st->watches; w != NULL; w = w->next)
        if (!w->dead && w->watcher != caller && (w->ns == NULL || strcmp(w->ns, ns) == 0))
            w->fn(w->watcher, user, ns, query, w->arg);
    st->notifying--;
    sweep(st);
}

/* Store `query` (a <query/> whose element children are all in `ns`, or
 * none: remove) as the data of `ns` for `user`, then notify.  0 or -1. */
static int store_ns(private_state_t *st, tern_module_ctx_t *caller, const char *user,
                    const char *ns, const tern_xml_t *query)
{
    int rc;
    if (tern_xml_first_element(query) == NULL) {
        rc = tern_map_set(st->store, user, ns, NULL, 0);
    } else {
        size_t len = 0;
        char *text = tern_xml_to_string(query, &len);
        rc = text != NULL ? tern_map_set(st->store, user, ns, text, len) : -1;
        free(text);
    }
    if (rc < 0) {
        tern_log(st->m, TERN_LOG_ERROR, "cannot store private data of %s in %s", user, ns);
        return -1;
    }
    notify(st, caller, user, ns, query);
    return 0;
}

/* ---- the "private" service ---------------------------------------------- */

static tern_xml_t *api_get(const tern_private_api_t *self, const char *user, const char *ns)
{
    private_state_t *st = (private_state_t *)self;
    if (user == NULL || ns == NULL)
        return NULL;
    tern_xml_t *query = NULL;
    int rc = load_ns(st, user, ns, NULL, &query);
    if (rc == 0)
        query = tern_xml_new("query", NS_PRIVATE);
    return rc < 0 ? NULL : query;
}

static int api_set(const tern_private_api_t *self, tern_module_ctx_t *caller, const char *user,
                   const char *ns, const tern_xml_t *element)
{
    private_state_t *st = (private_state_t *)self;
    if (element != NULL)
        ns = element->ns;
    if (user == NULL || reserved_ns(ns) || st->store == NULL)
        return -1;
    tern_xml_t *query = tern_xml_new("query", NS_PRIVATE);
    if (query == NULL || (element != NULL && tern_xml_copy_into(query, element) == NULL)) {
        tern_xml_unref(query);
        return -1;
    }
    int rc = store_ns(st, caller, user, ns, query);
    tern_xml_unref(query);
    return rc;
}

static int api_watch(const tern_private_api_t *self, tern_module_ctx_t *watcher, const char *ns,
                     tern_private_watch_fn fn, void *arg)
{
    private_state_t *st = (private_state_t *)self;
    private_watch_t *w = calloc(1, sizeof *w);
    if (w == NULL || fn == NULL || (ns != NULL && (w->ns = strdup(ns)) == NULL)) {
        free(w);
        return -1;
    }
    w->watcher = watcher;
    w->fn = fn;
    w->arg = arg;
    w->next = st->watches;
    st->watches = w;
    return 0;
}

static void api_unwatch(const tern_private_api_t *self, tern_module_ctx_t *watcher)
{
    private_state_t *st = (private_state_t *)self;
    for (private_watch_t *w = st->watches; w != NULL; w = w->next)
        if (w->watcher == watcher)
            w->dead = 1;
    sweep(st);
}

/* ---- the protocol -------------------------------------------------------- */

static int refuse(tern_module_ctx_t *m, const tern_event_t *ev, const char *type,
                  const char *condition, const char *text)
{
    tern_reply_error(m, ev, type, condition, text);
    return TERN_HANDLED;
}

/* XEP-0049 §2.3: retrieve the data of the one namespace the request names.
 * Nothing stored: the requested element comes back as it was asked. */
static int on_get(tern_module_ctx_t *m, tern_event_t *ev)
{
    private_state_t *st = tern_get_data(m);
    const tern_xml_t *query = tern_xml_first_element(ev->stanza);
    const tern_xml_t *want = tern_xml_first_element(query);
    if (want == NULL) /* §2.3, §3: "Bad Format" */
        return refuse(m, ev, "modify", "bad-request", "name the element to retrieve");
    for (const tern_xml_t *e = tern_xml_next_element(want); e != NULL; e = tern_xml_next_element(e))
        if (strcmp(e->ns, want->ns) != 0) /* §2.3: one namespace per get */
            return refuse(m, ev, "modify", "bad-request", "one namespace per request");
    if (reserved_ns(want->ns))
        return refuse(m, ev, "modify", "not-acceptable", "reserved namespace");

    tern_xml_t *result = tern_iq_result(ev);
    tern_xml_t *found = NULL;
    int rc = result != NULL ? load_ns(st, ev->from->local, want->ns, result, &found) : -1;
    if (rc < 0) {
        tern_xml_unref(result);
        return refuse(m, ev, "wait", "internal-server-error", NULL);
    }
    if (rc == 0) {
        found = tern_xml_add_child(result, "query", NS_PRIVATE);
        for (const tern_xml_t *e = want; found != NULL && e != NULL; e = tern_xml_next_element(e))
            if (tern_xml_copy_into(found, e) == NULL)
                found = NULL;
    }
    return tern_iq_answer(m, ev, result, found != NULL);
}

/* XEP-0049 §2.3: store the elements of the set, each namespace replacing
 * what the user had stored in it.  Everything is checked before anything
 * is written. */
static int on_set(tern_module_ctx_t *m, tern_event_t *ev)
{
    private_state_t *st = tern_get_data(m);
    const tern_xml_t *query = tern_xml_first_element(ev->stanza);
    const tern_xml_t *first = tern_xml_first_element(query);
    const char *user = ev->from->local;
    if (first == NULL) /* §2.3: at least one child element */
        return refuse(m, ev, "modify", "not-acceptable", "nothing to store");
    for (const tern_xml_t *e = first; e != NULL; e = tern_xml_next_element(e))
        if (reserved_ns(e->ns))
            return refuse(m, ev, "modify", "not-acceptable", "reserved namespace");
    int room = within_limit(st, user, first);
    if (room < 0)
        return refuse(m, ev, "wait", "internal-server-error", NULL);
    if (room == 0)
        return refuse(m, ev, "modify", "policy-violation", "too many namespaces stored");
    if (room == 2) /* RFC 6120 §8.3.3.12: the request does not meet our criteria */
        return refuse(m, ev, "modify", "not-acceptable", "private storage quota exceeded");
    for (const tern_xml_t *e = first; e != NULL; e = tern_xml_next_element(e)) {
        if (!first_of_ns(first, e))
            continue; /* its namespace was written with an earlier element */
        tern_xml_t *one = ns_query(e);
        int ok = one != NULL && store_ns(st, NULL, user, e->ns, one) == 0;
        if (one != NULL)
            tern_xml_unref(one);
        if (!ok)
            return refuse(m, ev, "wait", "internal-server-error", NULL);
    }
    return tern_iq_answer(m, ev, tern_iq_result(ev), 1);
}

/* XEP-0049 §2.3, §4: another user's private data is nobody's business. */
static int on_other(tern_module_ctx_t *m, tern_event_t *ev)
{
    return refuse(m, ev, "cancel", "forbidden", NULL);
}

static int load(tern_module_ctx_t *m)
{
    private_state_t *st = calloc(1, sizeof *st);
    if (st == NULL) {
        tern_log(m, TERN_LOG_ERROR, "out of memory");
        return -1;
    }
    st->m = m;
    st->max_namespaces = tern_opt_int(m, "max_namespaces");
    st->max_bytes = tern_opt_int(m, "max_bytes");
    st->store = tern_store(m, STORE_NAME, TERN_STORE_MAP);
    st->api = (tern_private_api_t){.abi = TERN_PRIVATE_ABI,
                                   .get = api_get,
                                   .set = api_set,
                                   .watch = api_watch,
                                   .unwatch = api_unwatch};
    if (st->store == NULL) {
        tern_log(m, TERN_LOG_ERROR, "no storage");
        free(st);
        return -1;
    }
    tern_set_data(m, st);
    tern_add_feature(m, NS_PRIVATE);
    if (tern_hook(m, "iq-get/self/" NS_PRIVATE ":query", on_get, 0) != 0 ||
        tern_hook(m, "iq-set/self/" NS_PRIVATE ":query", on_set, 0) != 0 ||
        tern_hook(m, "iq-get/bare/" NS_PRIVATE ":query", on_other, 0) != 0 ||
        tern_hook(m, "iq-set/bare/" NS_PRIVATE ":query", on_other, 0) != 0 ||
        tern_provide(m, TERN_PRIVATE_SERVICE, &st->api) != 0) {
        tern_set_data(m, NULL);
        free(st);
        return -1;
    }
    return 0;
}

static void unload(tern_module_ctx_t *m)
{
    private_state_t *st = tern_get_data(m);
    if (st == NULL)
        return;
    for (private_watch_t *w = st->watches; w != NULL; w = w->next)
        w->dead = 1;
    st->notifying = 0;
    sweep(st);
    free(st);
    tern_set_data(m, NULL);
}

/* A reload changed the options: take the new limit for what comes next. */
static int reconfigure(tern_module_ctx_t *m)
{
    private_state_t *st = tern_get_data(m);
    st->max_namespaces = tern_opt_int(m, "max_namespaces");
    st->max_bytes = tern_opt_int(m, "max_bytes");
    return 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "private",
    .description = "Private XML storage for clients and modules (XEP-0049)",
    .options = options,
    .load = load,
    .unload = unload,
    .reconfigure = reconfigure,
};
