/*
 * nodes.c — a PEP node as stored, its configuration and who may read it.
 *
 * One map store entry per node: user -> node name -> a <node/> tree in our
 * own namespace, holding the configuration as attributes, the whitelist
 * (<affiliation jid affiliation/>) and the items (<item id published
 * publisher>payload</item>, oldest first).  A node with persist_items false
 * (XEP-0060 §16.4.3) keeps its configuration in the store and its items in
 * memory only, so they are gone after a restart.
 *
 * Access (XEP-0060 §4.5, XEP-0163 §4): the owner always; "open" anyone;
 * "presence" the contacts whose roster subscription is from or both, as the
 * "roster" service (mod_roster) tells; "whitelist" the JIDs given the
 * affiliation member or publisher.  Without the roster service nobody but
 * the owner passes "presence".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pep.h"
#include "../roster_api.h"

/* ---- configuration ------------------------------------------------------ */

void pep_default_config(const pep_state_t *st, const char *node, tern_pep_config_t *cfg)
{
    cfg->access_model = TERN_PEP_ACCESS_PRESENCE; /* XEP-0163 §8 */
    cfg->persist_items = 1;
    cfg->max_items = st->default_max_items;
    cfg->send_last = 2; /* on_sub_and_presence: XEP-0163 §4.3.4 */
    cfg->notify_retract = 1;
}

const char *pep_access_name(tern_pep_access_t a)
{
    switch (a) {
    case TERN_PEP_ACCESS_OPEN:
        return "open";
    case TERN_PEP_ACCESS_WHITELIST:
        return "whitelist";
    default:
        return "presence";
    }
}

const char *pep_send_last_name(int v)
{
    return v == 0 ? "never" : v == 1 ? "on_sub" : "on_sub_and_presence";
}

static int parse_access(const char *s, tern_pep_access_t *a)
{
    if (strcmp(s, "presence") == 0)
        *a = TERN_PEP_ACCESS_PRESENCE;
    else if (strcmp(s, "open") == 0)
        *a = TERN_PEP_ACCESS_OPEN;
    else if (strcmp(s, "whitelist") == 0)
        *a = TERN_PEP_ACCESS_WHITELIST;
    else
        return -1;
    return 0;
}

static int parse_send_last(const char *s, int *v)
{
    if (strcmp(s, "never") == 0)
        *v = 0;
    else if (strcmp(s, "on_sub") == 0)
        *v = 1;
    else if (strcmp(s, "on_sub_and_presence") == 0)
        *v = 2;
    else
        return -1;
    return 0;
}

/* XEP-0004 §3.3 boolean. */
static int parse_bool(const char *s, int *v)
{
    if (strcmp(s, "1") == 0 || strcmp(s, "true") == 0)
        *v = 1;
    else if (strcmp(s, "0") == 0 || strcmp(s, "false") == 0)
        *v = 0;
    else
        return -1;
    return 0;
}

/* "max" or a positive integer, capped at the server's limit (XEP-0060
 * §16.4.3: pubsub#max_items; "max" is the largest the service allows). */
static int parse_max(const pep_state_t *st, const char *s, long *v)
{
    if (strcmp(s, "max") == 0) {
        *v = st->max_items_limit;
        return 0;
    }
    char *end;
    long n = strtol(s, &end, 10);
    if (end == s || *end != '\0' || n < 1)
        return -1;
    *v = n > st->max_items_limit ? st->max_items_limit : n;
    return 0;
}

static const char *field_value(tern_xml_t *field)
{
    tern_xml_t *v = tern_xml_child(field, "value", NS_DATA);
    return v != NULL ? tern_xml_text(v) : NULL;
}

const char *pep_form_to_config(const pep_state_t *st, const tern_xml_t *form,
                               tern_pep_config_t *cfg, unsigned *seen)
{
    unsigned bits = 0;
    for (tern_xml_t *f = tern_xml_first_element(form); f != NULL; f = tern_xml_next_element(f)) {
        if (!tern_xml_is(f, "field", NS_DATA))
            continue;
        const char *var = tern_xml_attr(f, "var");
        const char *val = field_value(f);
        if (var == NULL || strcmp(var, "FORM_TYPE") == 0)
            continue;
        int bad = 0;
        if (strcmp(var, "pubsub#access_model") == 0) {
            bad = val == NULL || parse_access(val, &cfg->access_model) < 0;
            bits |= PEP_F_ACCESS;
        } else if (strcmp(var, "pubsub#persist_items") == 0) {
            bad = val == NULL || parse_bool(val, &cfg->persist_items) < 0;
            bits |= PEP_F_PERSIST;
        } else if (strcmp(var, "pubsub#max_items") == 0) {
            bad = val == NULL || parse_max(st, val, &cfg->max_items) < 0;
            bits |= PEP_F_MAX;
        } else if (strcmp(var, "pubsub#send_last_published_item") == 0) {
            bad = val == NULL || parse_send_last(val, &cfg->send_last) < 0;
            bits |= PEP_F_SEND_LAST;
        } else if (strcmp(var, "pubsub#notify_retract") == 0) {
            bad = val == NULL || parse_bool(val, &cfg->notify_retract) < 0;
            bits |= PEP_F_NOTIFY_RETRACT;
        }
        /* Other fields (title, deliver_payloads...) are accepted and ignored. */
        if (bad)
            return "not-acceptable"; /* XEP-0060 §8.2.5.3 */
    }
    if (seen != NULL)
        *seen = bits;
    return NULL;
}

int pep_config_matches(const tern_pep_config_t *have, const tern_pep_config_t *want, unsigned seen)
{
    return !((seen & PEP_F_ACCESS) && have->access_model != want->access_model) &&
           !((seen & PEP_F_PERSIST) && have->persist_items != want->persist_items) &&
           !((seen & PEP_F_MAX) && have->max_items != want->max_items) &&
           !((seen & PEP_F_SEND_LAST) && have->send_last != want->send_last) &&
           !((seen & PEP_F_NOTIFY_RETRACT) && have->notify_retract != want->notify_retract);
}

static void add_field(tern_xml_t *x, const char *var, const char *type, const char *value)
{
    tern_xml_t *f = tern_xml_add_child(x, "field", NULL);
    if (f == NULL)
        return;
    tern_xml_set_attr(f, "var", var);
    if (type != NULL)
        tern_xml_set_attr(f, "type", type);
    tern_xml_t *v = tern_xml_add_child(f, "value", NULL);
    if (v != NULL)
        tern_xml_add_text(v, value, strlen(value));
}

static void add_options(tern_xml_t *f, const char *const *opts)
{
    for (; *opts != NULL; opts++) {
        tern_xml_t *o = tern_xml_add_child(f, "option", NULL);
        tern_xml_t *v = o != NULL ? tern_xml_add_child(o, "value", NULL) : NULL;
        if (v != NULL)
            tern_xml_add_text(v, *opts, strlen(*opts));
    }
}

/* XEP-0060 §8.2.1: the configuration form. */
void pep_config_form(tern_xml_t *parent, const char *node, const tern_pep_config_t *cfg)
{
    static const char *const access[] = {"presence", "open", "whitelist", NULL};
    static const char *const send_last[] = {"never", "on_sub", "on_sub_and_presence", NULL};
    char max[32];
    tern_xml_t *x = tern_xml_add_child(parent, "x", NS_DATA);
    if (x == NULL)
        return;
    tern_xml_set_attr(x, "type", "form");
    add_field(x, "FORM_TYPE", "hidden", NS_NODE_CONFIG);
    add_field(x, "pubsub#access_model", "list-single", pep_access_name(cfg->access_model));
    add_options(x->last_child, access);
    add_field(x, "pubsub#persist_items", "boolean", cfg->persist_items ? "true" : "false");
    snprintf(max, sizeof max, "%ld", cfg->max_items);
    add_field(x, "pubsub#max_items", "text-single", max);
    add_field(x, "pubsub#send_last_published_item", "list-single",
              pep_send_last_name(cfg->send_last));
    add_options(x->last_child, send_last);
    add_field(x, "pubsub#notify_retract", "boolean", cfg->notify_retract ? "true" : "false");
    (void)node;
}

/* ---- storage ------------------------------------------------------------ */

static void cfg_from_doc(const pep_state_t *st, pep_node_t *n)
{
    const char *v;
    pep_default_config(st, n->name, &n->cfg);
    if ((v = tern_xml_attr(n->doc, "access")) != NULL)
        parse_access(v, &n->cfg.access_model);
    if ((v = tern_xml_attr(n->doc, "persist")) != NULL)
        parse_bool(v, &n->cfg.persist_items);
    if ((v = tern_xml_attr(n->doc, "max")) != NULL)
        parse_max(st, v, &n->cfg.max_items);
    if ((v = tern_xml_attr(n->doc, "send-last")) != NULL)
        parse_send_last(v, &n->cfg.send_last);
    if ((v = tern_xml_attr(n->doc, "notify-retract")) != NULL)
        parse_bool(v, &n->cfg.notify_retract);
}

void pep_node_sync_cfg(pep_node_t *n)
{
    char max[32];
    snprintf(max, sizeof max, "%ld", n->cfg.max_items);
    tern_xml_set_attr(n->doc, "access", pep_access_name(n->cfg.access_model));
    tern_xml_set_attr(n->doc, "persist", n->cfg.persist_items ? "1" : "0");
    tern_xml_set_attr(n->doc, "max", max);
    tern_xml_set_attr(n->doc, "send-last", pep_send_last_name(n->cfg.send_last));
    tern_xml_set_attr(n->doc, "notify-retract", n->cfg.notify_retract ? "1" : "0");
}

static pep_node_t *node_alloc(const char *user, const char *name)
{
    pep_node_t *n = calloc(1, sizeof *n);
    if (n == NULL)
        return NULL;
    n->user = strdup(user);
    n->name = strdup(name);
    if (n->user == NULL || n->name == NULL) {
        pep_node_free(&n);
        return NULL;
    }
    return n;
}

void pep_node_free(pep_node_t **np)
{
    pep_node_t *n = *np;
    if (n == NULL)
        return;
    if (n->doc != NULL)
        tern_xml_unref(n->doc);
    free(n->user);
    free(n->name);
    free(n);
    *np = NULL;
}

pep_node_t *pep_node_new(pep_state_t *st, const char *user, const char *name,
                         const tern_pep_config_t *cfg)
{
    pep_node_t *n = node_alloc(user, name);
    if (n == NULL)
        return NULL;
    n->doc = tern_xml_new("node", NS_PEP_STORE);
    if (n->doc == NULL) {
        pep_node_free(&n);
        return NULL;
    }
    if (cfg != NULL)
        n->cfg = *cfg;
    else
        pep_default_config(st, name, &n->cfg);
    pep_node_sync_cfg(n);
    return n;
}

/* Copy the in-memory items of a persist_items=false node into n->doc. */
static void add_volatile_items(pep_state_t *st, pep_node_t *n)
{
    char *key = pep_join(n->user, n->name);
    tern_xml_t *mem = key != NULL ? strmap_get(st->volatile_items, key) : NULL;
    for (tern_xml_t *it = mem != NULL ? tern_xml_first_element(mem) : NULL; it != NULL;
         it = tern_xml_next_element(it))
        tern_xml_copy_into(n->doc, it);
    free(key);
}

int pep_node_load(pep_state_t *st, const char *user, const char *name, pep_node_t **out)
{
    tern_blob_t blob = {0};
    *out = NULL;
    if (st->nodes == NULL)
        return -1;
    int rc = tern_map_get(st->nodes, user, name, &blob);
    if (rc <= 0)
        return rc;
    pep_node_t *n = node_alloc(user, name);
    if (n != NULL)
        n->doc = tern_xml_parse(blob.data, blob.len);
    free(blob.data);
    if (n == NULL || n->doc == NULL) {
        tern_log(st->m, TERN_LOG_ERROR, "node %s of %s: unreadable in storage", name, user);
        pep_node_free(&n);
        return -1;
    }
    cfg_from_doc(st, n);
    if (!n->cfg.persist_items)
        add_volatile_items(st, n);
    *out = n;
    return 1;
}

/* Drop the oldest items beyond max_items (XEP-0060 §12.10). */
static void apply_max(pep_node_t *n)
{
    size_t count = pep_item_count(n);
    while (count > (size_t)n->cfg.max_items) {
        tern_xml_t *it = tern_xml_child(n->doc, "item", NS_PEP_STORE);
        if (it == NULL)
            break;
        tern_xml_unlink(it);
        count--;
    }
}

int pep_node_save(pep_state_t *st, pep_node_t *n)
{
    if (st->nodes == NULL)
        return -1;
    pep_node_sync_cfg(n);
    apply_max(n);
    char *key = pep_join(n->user, n->name);
    if (key == NULL)
        return -1;
    tern_xml_t *doc = n->doc;
    tern_xml_t *stored = NULL;
    int rc = 0;
    if (!n->cfg.persist_items) {
        /* Items go to memory; the store keeps the rest. */
        tern_xml_t *mem = tern_xml_new("node", NS_PEP_STORE);
        stored = tern_xml_new("node", NS_PEP_STORE);
        if (mem == NULL || stored == NULL) {
            if (mem != NULL)
                tern_xml_unref(mem);
            rc = -1;
        } else {
            for (tern_xml_attr_t *a = doc->attrs; a != NULL; a = a->next)
                tern_xml_set_attr(stored, a->name, a->value);
            for (tern_xml_t *c = tern_xml_first_element(doc); c != NULL;
                 c = tern_xml_next_element(c))
                tern_xml_copy_into(tern_xml_is(c, "item", NS_PEP_STORE) ? mem : stored, c);
            if (strmap_put(st->volatile_items, key, mem) < 0) {
                tern_xml_unref(mem);
                rc = -1;
            }
            doc = stored;
        }
    } else {
        strmap_del(st->volatile_items, key);
    }
    size_t len = 0;
    char *text = rc == 0 ? tern_xml_to_string(doc, &len) : NULL;
    if (text == NULL || tern_map_set(st->nodes, n->user, n->name, text, len) < 0)
        rc = -1;
    free(text);
    free(key);
    if (stored != NULL)
        tern_xml_unref(stored);
    if (rc < 0)
        tern_log(st->m, TERN_LOG_ERROR, "node %s of %s: cannot store it", n->name, n->user);
    return rc;
}

int pep_node_remove(pep_state_t *st, const char *user, const char *name)
{
    char *key = pep_join(user, name);
    if (key != NULL)
        strmap_del(st->volatile_items, key);
    free(key);
    return st->nodes != NULL ? tern_map_set(st->nodes, user, name, NULL, 0) : -1;
}

typedef struct count_ctx {
    int n;
    int (*fn)(void *ctx, const char *name);
    void *ctx;
} count_ctx_t;

static int visit_node(void *ctx, const char *key, const char *data, size_t len)
{
    count_ctx_t *c = ctx;
    c->n++;
    return c->fn != NULL ? c->fn(c->ctx, key) : 0;
}

int pep_node_count(pep_state_t *st, const char *user)
{
    count_ctx_t c = {0};
    if (st->nodes == NULL || tern_map_foreach(st->nodes, user, visit_node, &c) < 0)
        return -1;
    return c.n;
}

int pep_node_foreach(pep_state_t *st, const char *user, int (*fn)(void *ctx, const char *name),
                     void *ctx)
{
    count_ctx_t c = {.fn = fn, .ctx = ctx};
    if (st->nodes == NULL)
        return -1;
    return tern_map_foreach(st->nodes, user, visit_node, &c);
}

/* ---- items -------------------------------------------------------------- */

tern_xml_t *pep_item_find(pep_node_t *n, const char *id)
{
    for (tern_xml_t *it = tern_xml_first_element(n->doc); it != NULL;
         it = tern_xml_next_element(it)) {
        const char *iid = tern_xml_attr(it, "id");
        if (tern_xml_is(it, "item", NS_PEP_STORE) && iid != NULL && strcmp(iid, id) == 0)
            return it;
    }
    return NULL;
}

tern_xml_t *pep_item_last(pep_node_t *n)
{
    tern_xml_t *last = NULL;
    for (tern_xml_t *it = tern_xml_first_element(n->doc); it != NULL;
         it = tern_xml_next_element(it))
        if (tern_xml_is(it, "item", NS_PEP_STORE))
            last = it;
    return last;
}

size_t pep_item_count(pep_node_t *n)
{
    size_t count = 0;
    for (tern_xml_t *it = tern_xml_first_element(n->doc); it != NULL;
         it = tern_xml_next_element(it))
        count += tern_xml_is(it, "item", NS_PEP_STORE);
    return count;
}

tern_xml_t *pep_item_put(pep_node_t *n, const char *id, const tern_xml_t *payload,
                         const char *publisher)
{
    char when[32];
    pep_item_remove(n, id); /* XEP-0060 §7.1.2: same id replaces, and is newest */
    tern_xml_t *it = tern_xml_add_child(n->doc, "item", NS_PEP_STORE);
    if (it == NULL)
        return NULL;
    snprintf(when, sizeof when, "%lld", (long long)tern_now_us());
    tern_xml_set_attr(it, "id", id);
    tern_xml_set_attr(it, "published", when);
    if (publisher != NULL)
        tern_xml_set_attr(it, "publisher", publisher);
    if (payload != NULL && tern_xml_copy_into(it, payload) == NULL) {
        tern_xml_unlink(it);
        return NULL;
    }
    return it;
}

int pep_item_remove(pep_node_t *n, const char *id)
{
    tern_xml_t *it = pep_item_find(n, id);
    if (it == NULL)
        return 0;
    tern_xml_unlink(it);
    return 1;
}

void pep_item_purge(pep_node_t *n)
{
    tern_xml_t *it, *next;
    for (it = tern_xml_first_element(n->doc); it != NULL; it = next) {
        next = tern_xml_next_element(it);
        if (tern_xml_is(it, "item", NS_PEP_STORE))
            tern_xml_unlink(it);
    }
}

tern_xml_t *pep_copy_item(tern_xml_t *parent, const tern_xml_t *stored, const char *ns)
{
    tern_xml_t *it = tern_xml_add_child(parent, "item", ns);
    if (it == NULL)
        return NULL;
    tern_xml_set_attr(it, "id", tern_xml_attr(stored, "id"));
    for (tern_xml_t *c = tern_xml_first_element(stored); c != NULL; c = tern_xml_next_element(c))
        tern_xml_copy_into(it, c);
    return it;
}

/* ---- affiliations and access ------------------------------------------- */

static tern_xml_t *find_affiliation(pep_node_t *n, const char *bare)
{
    for (tern_xml_t *a = tern_xml_first_element(n->doc); a != NULL; a = tern_xml_next_element(a)) {
        const char *jid = tern_xml_attr(a, "jid");
        if (tern_xml_is(a, "affiliation", NS_PEP_STORE) && jid != NULL && strcmp(jid, bare) == 0)
            return a;
    }
    return NULL;
}

const char *pep_affiliation(pep_node_t *n, const char *bare)
{
    tern_xml_t *a = find_affiliation(n, bare);
    const char *aff = a != NULL ? tern_xml_attr(a, "affiliation") : NULL;
    return aff != NULL ? aff : "none";
}

void pep_set_affiliation(pep_node_t *n, const char *bare, const char *affiliation)
{
    tern_xml_t *a = find_affiliation(n, bare);
    if (strcmp(affiliation, "none") == 0) {
        if (a != NULL)
            tern_xml_unlink(a);
        return;
    }
    if (a == NULL && (a = tern_xml_add_child(n->doc, "affiliation", NS_PEP_STORE)) != NULL)
        tern_xml_set_attr(a, "jid", bare);
    if (a != NULL)
        tern_xml_set_attr(a, "affiliation", affiliation);
}

/* Whether `bare` is the account that owns n. */
static int is_owner(pep_state_t *st, pep_node_t *n, const char *bare)
{
    const char *at = strchr(bare, '@');
    return at != NULL && (size_t)(at - bare) == strlen(n->user) &&
           strncmp(bare, n->user, (size_t)(at - bare)) == 0 &&
           strcmp(at + 1, tern_host(st->m)) == 0;
}

int pep_access(pep_state_t *st, pep_node_t *n, const char *requester)
{
    if (is_owner(st, n, requester))
        return PEP_ALLOW;
    switch (n->cfg.access_model) {
    case TERN_PEP_ACCESS_OPEN:
        return PEP_ALLOW;
    case TERN_PEP_ACCESS_WHITELIST: {
        const char *aff = pep_affiliation(n, requester);
        return strcmp(aff, "member") == 0 || strcmp(aff, "publisher") == 0 ||
                       strcmp(aff, "owner") == 0
                   ? PEP_ALLOW
                   : PEP_DENY_WHITELIST;
    }
    default:
        return pep_contact_allowed(st, n->user, requester) ? PEP_ALLOW : PEP_DENY_PRESENCE;
    }
}

/* ---- roster ------------------------------------------------------------- */

static const roster_api_t *roster(pep_state_t *st)
{
    return tern_require(st->m, ROSTER_SERVICE);
}

int pep_contact_allowed(pep_state_t *st, const char *user, const char *contact_bare)
{
    const roster_api_t *r = roster(st);
    return r != NULL && r->is_subscribed_to(tern_host(st->m), user, contact_bare) == 1;
}

typedef struct roster_walk {
    int want_from;
    int (*fn)(void *ctx, const char *contact_bare);
    void *ctx;
} roster_walk_t;

static int roster_visit(void *ctx, const char *contact, roster_sub_t sub, const char *name)
{
    roster_walk_t *w = ctx;
    int ok = (sub & (w->want_from ? ROSTER_SUB_FROM : ROSTER_SUB_TO)) != 0;
    return ok ? w->fn(w->ctx, contact) : 0;
}

int pep_roster_foreach(pep_state_t *st, const char *user, int want_from,
                       int (*fn)(void *ctx, const char *contact_bare), void *ctx)
{
    const roster_api_t *r = roster(st);
    roster_walk_t w = {.want_from = want_from, .fn = fn, .ctx = ctx};
    return r != NULL ? r->foreach (tern_host(st->m), user, roster_visit, &w) : 0;
}
