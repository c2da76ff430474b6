/*
 * caps.c — XEP-0115 Entity Capabilities, for PEP's filtered notifications.
 *
 * Every session that sends available presence with <c node ver hash/> gets
 * a reference to a caps entry: the features behind that 'ver'.  Entries are
 * shared through a cache keyed "HASH VER" (memory, bounded by
 * caps_cache_size, and the key-value store "caps", one value per key with
 * the features one per line), so a second client with the same 'ver' costs
 * no query (§6.1).  On a miss the server asks the session itself with a
 * disco#info query to node 'NODE#VER' (§6.2) and keeps the answer only when
 * its verification string hashes to 'ver' (§5.1, §5.4): nobody can poison
 * the cache for other clients.  Legacy caps without 'hash' (§8.3?) are
 * queried the same way but kept for that session only.
 *
 * The first available presence of a session also triggers XEP-0163 §4.3.4
 * (the last published items), at once when the caps are known, else when
 * the answer to the query arrives.
 *
 * Contacts on other servers: their available presence with <c/> reaches
 * our users ("in-presence/bare", "in-presence/full"), so we learn their
 * caps the same way (the query goes to their full JID across) and keep,
 * per (our user, remote bare JID), the resources that are available with
 * a reference to their caps entry, until their unavailable presence (or an
 * error) arrives.  A resource that arrives gets the user's last items
 * (§4.3.4) once its caps are known.  Bounded: MAX_REMOTE_RESOURCES per
 * pair, caps_cache_size pairs (any evicted first).
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tern/base64.h>
#include <tern/strlist.h>

#include "pep.h"

typedef enum { CAPS_PENDING = 0, CAPS_READY, CAPS_FAILED } caps_state_t;

/* A session waiting for the answer to send its last items, or (user set) a
 * contact on another server, `full`, that the items of `user` wait for. */
typedef struct caps_waiter {
    struct caps_waiter *next;
    uint64_t serial;
    char *user; /* malloc'd, or NULL for a session */
    char full[];
} caps_waiter_t;

struct caps_entry {
    int refs;
    caps_state_t state;
    char *key;  /* "HASH VER", or NULL for legacy caps (not shared) */
    char *hash; /* NULL for legacy */
    char *ver;
    char **features; /* sorted */
    size_t n_features;
    caps_waiter_t *waiters;
    struct caps_entry *next_pending; /* in the module's list of queries out */
    int in_flight;
};

static void free_waiters(caps_entry_t *e)
{
    while (e->waiters != NULL) {
        caps_waiter_t *w = e->waiters;
        e->waiters = w->next;
        free(w->user);
        free(w);
    }
}

void pep_caps_entry_unref(caps_entry_t *e)
{
    if (e == NULL || --e->refs > 0)
        return;
    for (size_t i = 0; i < e->n_features; i++)
        free(e->features[i]);
    free(e->features);
    free_waiters(e);
    free(e->key);
    free(e->hash);
    free(e->ver);
    free(e);
}

static void cache_value_free(void *p)
{
    pep_caps_entry_unref(p);
}

void pep_session_data_free(void *p)
{
    pep_session_t *ps = p;
    if (ps == NULL)
        return;
    pep_caps_entry_unref(ps->caps);
    free(ps);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int pep_caps_wants(const caps_entry_t *e, const char *node)
{
    if (e == NULL || e->state != CAPS_READY)
        return 0;
    size_t len = strlen(node);
    char *want = malloc(len + sizeof "+notify");
    if (want == NULL)
        return 0;
    memcpy(want, node, len);
    memcpy(want + len, "+notify", sizeof "+notify");
    int found = bsearch(&want, e->features, e->n_features, sizeof(char *), cmp_str) != NULL;
    free(want);
    return found;
}

int pep_session_wants(const pep_state_t *st, const tern_session_t *s, const char *node)
{
    const pep_session_t *ps = tern_session_get(s, st->m);
    return ps != NULL && pep_caps_wants(ps->caps, node);
}

/* ---- verification (§5.1, §5.4) ------------------------------------------ */

typedef tern_strlist_t strlist_t;

static int list_has_dup(const strlist_t *l)
{
    for (size_t i = 1; i < l->n; i++)
        if (strcmp(l->v[i - 1], l->v[i]) == 0)
            return 1;
    return 0;
}

/* A growing string. */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    int failed;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *s)
{
    size_t n = strlen(s);
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->s, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

static const char *attr_or_empty(const tern_xml_t *x, const char *name)
{
    const char *v = tern_xml_attr(x, name);
    return v != NULL ? v : "";
}

/* The values of a form field, sorted, each followed by '<'. */
static int field_values(tern_xml_t *field, strlist_t *out)
{
    for (tern_xml_t *v = tern_xml_first_element(field); v != NULL; v = tern_xml_next_element(v))
        if (tern_xml_is(v, "value", NS_DATA) && tern_strlist_add(out, tern_xml_text(v)) < 0)
            return -1;
    tern_strlist_sort(out);
    return 0;
}

/* The FORM_TYPE of an extension form, NULL when it has none or it is not
 * hidden (§5.4 3.6: ignore such forms); *bad when it has several values. */
static const char *form_type(tern_xml_t *form, int *bad)
{
    for (tern_xml_t *f = tern_xml_first_element(form); f != NULL; f = tern_xml_next_element(f)) {
        const char *var = tern_xml_attr(f, "var");
        if (!tern_xml_is(f, "field", NS_DATA) || var == NULL || strcmp(var, "FORM_TYPE") != 0)
            continue;
        const char *type = tern_xml_attr(f, "type");
        if (type == NULL || strcmp(type, "hidden") != 0)
            return NULL;
        int n = 0;
        const char *val = NULL;
        for (tern_xml_t *v = tern_xml_first_element(f); v != NULL; v = tern_xml_next_element(v))
            if (tern_xml_is(v, "value", NS_DATA)) {
                n++;
                val = tern_xml_text(v);
            }
        if (n != 1)
            *bad = 1;
        return val;
    }
    return NULL;
}

/* One form's part of S: FORM_TYPE<, then fields by var, each var<value<... */
static int append_form(sbuf_t *b, tern_xml_t *form, const char *type)
{
    strlist_t vars = {0};
    sb_add(b, type);
    sb_add(b, "<");
    for (tern_xml_t *f = tern_xml_first_element(form); f != NULL; f = tern_xml_next_element(f)) {
        const char *var = tern_xml_attr(f, "var");
        if (tern_xml_is(f, "field", NS_DATA) && var != NULL && strcmp(var, "FORM_TYPE") != 0 &&
            tern_strlist_add(&vars, var) < 0) {
            tern_strlist_clear(&vars);
            return -1;
        }
    }
    tern_strlist_sort(&vars);
    int rc = list_has_dup(&vars) ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < vars.n; i++) {
        tern_xml_t *field = NULL;
        for (tern_xml_t *f = tern_xml_first_element(form); f != NULL && field == NULL;
             f = tern_xml_next_element(f)) {
            const char *var = tern_xml_attr(f, "var");
            if (tern_xml_is(f, "field", NS_DATA) && var != NULL && strcmp(var, vars.v[i]) == 0)
                field = f;
        }
        strlist_t values = {0};
        sb_add(b, vars.v[i]);
        sb_add(b, "<");
        if (field == NULL || field_values(field, &values) < 0)
            rc = -1;
        for (size_t j = 0; rc == 0 && j < values.n; j++) {
            sb_add(b, values.v[j]);
            sb_add(b, "<");
        }
        tern_strlist_clear(&values);
    }
    tern_strlist_clear(&vars);
    return rc;
}

/* Build S (§5.1) from a disco#info <query/>; NULL when §5.4 says invalid. */
static char *verification_string(const tern_xml_t *query)
{
    strlist_t ids = {0}, idkeys = {0}, features = {0}, types = {0};
    sbuf_t b = {0};
    int bad = 0;
    for (tern_xml_t *c = tern_xml_first_element(query); c != NULL && !bad;
         c = tern_xml_next_element(c)) {
        if (tern_xml_is(c, "identity", NS_DISCO_INFO)) {
            const char *cat = attr_or_empty(c, "category"), *type = attr_or_empty(c, "type");
            const char *lang = attr_or_empty(c, "xml:lang"), *name = attr_or_empty(c, "name");
            size_t len = strlen(cat) + strlen(type) + strlen(lang) + strlen(name) + 5;
            char *s = malloc(len);
            if (s == NULL) {
                bad = 1;
                break;
            }
            snprintf(s, len, "%s/%s/%s/%s<", cat, type, lang, name);
            bad = tern_strlist_add(&ids, s) < 0;
            snprintf(s, len, "%s/%s/%s", cat, type, lang); /* §5.4 3.3: no duplicates */
            bad = bad || tern_strlist_add(&idkeys, s) < 0;
            free(s);
        } else if (tern_xml_is(c, "feature", NS_DISCO_INFO)) {
            const char *var = tern_xml_attr(c, "var");
            bad = var == NULL || tern_strlist_add(&features, var) < 0;
        }
    }
    tern_strlist_sort(&ids);
    tern_strlist_sort(&idkeys);
    tern_strlist_sort(&features);
    bad = bad || list_has_dup(&idkeys) || list_has_dup(&features); /* §5.4 3.3, 3.4 */
    for (size_t i = 0; !bad && i < ids.n; i++)
        sb_add(&b, ids.v[i]);
    for (size_t i = 0; !bad && i < features.n; i++) {
        sb_add(&b, features.v[i]);
        sb_add(&b, "<");
    }
    /* Extended forms (XEP-0128), sorted by FORM_TYPE; one per type (§5.4 3.5). */
    for (tern_xml_t *c = tern_xml_first_element(query); c != NULL && !bad;
         c = tern_xml_next_element(c)) {
        if (!tern_xml_is(c, "x", NS_DATA))
            continue;
        const char *t = form_type(c, &bad);
        if (t != NULL)
            bad = bad || tern_strlist_add(&types, t) < 0;
    }
    tern_strlist_sort(&types);
    bad = bad || list_has_dup(&types);
    for (size_t i = 0; !bad && i < types.n; i++) {
        for (tern_xml_t *c = tern_xml_first_element(query); c != NULL && !bad;
             c = tern_xml_next_element(c)) {
            int ignored = 0;
            const char *t = tern_xml_is(c, "x", NS_DATA) ? form_type(c, &ignored) : NULL;
            if (t != NULL && strcmp(t, types.v[i]) == 0)
                bad = append_form(&b, c, t) < 0;
        }
    }
    tern_strlist_clear(&ids);
    tern_strlist_clear(&idkeys);
    tern_strlist_clear(&features);
    tern_strlist_clear(&types);
    if (bad || b.failed) {
        free(b.s);
        return NULL;
    }
    if (b.s == NULL)
        b.s = strdup("");
    return b.s;
}

static const EVP_MD *digest_of(const char *hash)
{
    /* IANA Hash Function Textual Names, as XEP-0115 §5.1 requires. */
    if (strcmp(hash, "sha-1") == 0)
        return EVP_sha1();
    if (strcmp(hash, "sha-224") == 0)
        return EVP_sha224();
    if (strcmp(hash, "sha-256") == 0)
        return EVP_sha256();
    if (strcmp(hash, "sha-384") == 0)
        return EVP_sha384();
    if (strcmp(hash, "sha-512") == 0)
        return EVP_sha512();
    return NULL;
}

int pep_caps_verify(const tern_xml_t *query, const char *hash, const char *ver)
{
    const EVP_MD *md = digest_of(hash);
    char *s = md != NULL ? verification_string(query) : NULL;
    if (s == NULL)
        return -1;
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    int ok = EVP_Digest(s, strlen(s), digest, &dlen, md, NULL) == 1;
    free(s);
    /* XEP-0115 §5.1 step 11: base64 (RFC 4648 §4) of the hash. */
    char *b64 = ok ? tern_base64_encode(digest, dlen, 0) : NULL;
    ok = b64 != NULL && strcmp(b64, ver) == 0;
    free(b64);
    return ok ? 0 : -1;
}

/* ---- the cache ------------------------------------------------------------ */

static caps_entry_t *entry_new(const char *hash, const char *ver)
{
    caps_entry_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->refs = 1;
    e->ver = strdup(ver);
    if (hash != NULL) {
        size_t len = strlen(hash) + strlen(ver) + 2;
        e->hash = strdup(hash);
        e->key = malloc(len);
        if (e->key != NULL)
            snprintf(e->key, len, "%s %s", hash, ver);
    }
    if (e->ver == NULL || (hash != NULL && (e->hash == NULL || e->key == NULL))) {
        pep_caps_entry_unref(e);
        return NULL;
    }
    return e;
}

/* Take the features of a disco#info <query/> or of stored text (one per
 * line) into e, sorted; e becomes READY.  -1 out of memory. */
static int entry_fill_from_query(caps_entry_t *e, const tern_xml_t *query)
{
    strlist_t l = {0};
    for (tern_xml_t *c = tern_xml_first_element(query); c != NULL; c = tern_xml_next_element(c)) {
        const char *var = tern_xml_is(c, "feature", NS_DISCO_INFO) ? tern_xml_attr(c, "var") : NULL;
        if (var != NULL && strchr(var, '\n') == NULL && tern_strlist_add(&l, var) < 0) {
            tern_strlist_clear(&l);
            return -1;
        }
    }
    tern_strlist_sort(&l);
    e->features = l.v;
    e->n_features = l.n;
    e->state = CAPS_READY;
    return 0;
}

static int entry_fill_from_text(caps_entry_t *e, const char *text)
{
    strlist_t l = {0};
    const char *p = text;
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        char *line = strndup(p, len);
        int rc = line != NULL && len > 0 ? tern_strlist_add(&l, line) : line != NULL ? 0 : -1;
        free(line);
        if (rc < 0) {
            tern_strlist_clear(&l);
            return -1;
        }
        p += len + (nl != NULL);
    }
    tern_strlist_sort(&l);
    e->features = l.v;
    e->n_features = l.n;
    e->state = CAPS_READY;
    return 0;
}

static void store_entry(pep_state_t *st, caps_entry_t *e)
{
    sbuf_t b = {0};
    for (size_t i = 0; i < e->n_features; i++) {
        sb_add(&b, e->features[i]);
        sb_add(&b, "\n");
    }
    if (st->caps != NULL && !b.failed &&
        tern_kv_set(st->caps, e->key, b.s != NULL ? b.s : "", b.len) < 0)
        tern_log(st->m, TERN_LOG_WARN, "cannot store caps %s", e->key);
    free(b.s);
}

/* Put e in the memory cache (one more reference), bounded by caps_cache_size. */
static void cache_put(pep_state_t *st, caps_entry_t *e)
{
    while (st->caps_cache_size > 0 && strmap_count(st->caps_cache) >= (size_t)st->caps_cache_size)
        if (!strmap_evict_one(st->caps_cache, e->key))
            break;
    e->refs++;
    if (strmap_put(st->caps_cache, e->key, e) < 0)
        e->refs--;
}

/* The cached entry for hash/ver, from memory or the store; NULL on a miss. */
static caps_entry_t *cache_get(pep_state_t *st, const char *hash, const char *ver)
{
    size_t len = strlen(hash) + strlen(ver) + 2;
    char *key = malloc(len);
    if (key == NULL)
        return NULL;
    snprintf(key, len, "%s %s", hash, ver);
    caps_entry_t *e = strmap_get(st->caps_cache, key);
    if (e != NULL) {
        free(key);
        e->refs++;
        return e;
    }
    tern_blob_t blob = {0};
    if (st->caps != NULL && tern_kv_get(st->caps, key, &blob) == 1) {
        e = entry_new(hash, ver);
        if (e != NULL && entry_fill_from_text(e, blob.data) < 0) {
            pep_caps_entry_unref(e);
            e = NULL;
        }
        if (e != NULL)
            cache_put(st, e);
    }
    free(blob.data);
    free(key);
    return e;
}

/* ---- queries (§6.2) ------------------------------------------------------ */

static void pending_unlink(pep_state_t *st, caps_entry_t *e);
static void remote_caps_known(pep_state_t *st, const char *user, const char *full,
                              const caps_entry_t *e);

/* Send the last items to the sessions that waited for e. */
static void release_waiters(pep_state_t *st, caps_entry_t *e)
{
    caps_waiter_t *w = e->waiters;
    e->waiters = NULL;
    while (w != NULL) {
        caps_waiter_t *next = w->next;
        if (w->user != NULL) {
            if (e->state == CAPS_READY)
                remote_caps_known(st, w->user, w->full, e);
        } else {
            tern_session_t *s = e->state == CAPS_READY ? tern_session_find(st->m, w->full) : NULL;
            if (s != NULL && tern_session_serial(s) == w->serial && tern_session_available(s))
                pep_send_last_items(st, s);
        }
        free(w->user);
        free(w);
        w = next;
    }
}

static void on_disco_reply(tern_module_ctx_t *m, tern_xml_t *reply, void *arg)
{
    caps_entry_t *e = arg;
    pep_state_t *st = tern_get_data(m);
    const char *type = reply != NULL ? tern_xml_attr(reply, "type") : NULL;
    tern_xml_t *query = reply != NULL ? tern_xml_child(reply, "query", NS_DISCO_INFO) : NULL;
    if (st != NULL)
        pending_unlink(st, e);
    e->in_flight = 0;
    if (st != NULL && type != NULL && strcmp(type, "result") == 0 && query != NULL &&
        (e->hash == NULL || pep_caps_verify(query, e->hash, e->ver) == 0) &&
        entry_fill_from_query(e, query) == 0) {
        if (e->key != NULL)
            store_entry(st, e);
        release_waiters(st, e);
    } else {
        e->state = CAPS_FAILED;
        free_waiters(e);
        if (st != NULL && e->key != NULL) {
            tern_log(m, TERN_LOG_INFO, "caps %s: no valid answer; not cached", e->key);
            if (strmap_get(st->caps_cache, e->key) == e)
                strmap_del(st->caps_cache, e->key); /* a later presence asks again */
        }
    }
    pep_caps_entry_unref(e); /* the query's reference */
}

static void pending_unlink(pep_state_t *st, caps_entry_t *e)
{
    caps_entry_t **p = &st->caps_pending;
    while (*p != NULL && *p != e)
        p = &(*p)->next_pending;
    if (*p == e)
        *p = e->next_pending;
    e->next_pending = NULL;
}

/* Ask `full` for disco#info of node#ver on behalf of entry e. */
static void send_query(pep_state_t *st, caps_entry_t *e, const char *full, const char *node)
{
    size_t len = strlen(node) + strlen(e->ver) + 2;
    char *qnode = malloc(len);
    tern_xml_t *iq = tern_xml_new("iq", TERN_NS_CLIENT);
    tern_xml_t *q = iq != NULL ? tern_xml_add_child(iq, "query", NS_DISCO_INFO) : NULL;
    if (qnode == NULL || q == NULL) {
        free(qnode);
        if (iq != NULL)
            tern_xml_unref(iq);
        e->state = CAPS_FAILED;
        return;
    }
    snprintf(qnode, len, "%s#%s", node, e->ver);
    tern_xml_set_attr(q, "node", qnode);
    tern_xml_set_attr(iq, "type", "get");
    tern_xml_set_attr(iq, "to", full);
    tern_xml_set_attr(iq, "from", tern_host(st->m));
    free(qnode);
    e->refs++;
    e->in_flight = 1;
    e->next_pending = st->caps_pending; /* the query holds a reference: see pep_caps_release */
    st->caps_pending = e;
    if (tern_send_iq(st->m, iq, st->caps_timeout_ms, on_disco_reply, e) < 0) {
        pending_unlink(st, e);
        e->in_flight = 0;
        e->state = CAPS_FAILED;
        e->refs--;
    }
    tern_xml_unref(iq);
}

/* ---- presence --------------------------------------------------------- */

static pep_session_t *session_data(pep_state_t *st, tern_session_t *s)
{
    pep_session_t *ps = tern_session_get(s, st->m);
    if (ps == NULL && (ps = calloc(1, sizeof *ps)) != NULL)
        tern_session_set(s, st->m, ps, pep_session_data_free);
    return tern_session_get(s, st->m);
}

/* The caps entry for a <c/> element (a new reference), querying `full`
 * when unknown; NULL when the element is unusable. */
static caps_entry_t *caps_for(pep_state_t *st, const tern_xml_t *c, const char *full)
{
    const char *node = tern_xml_attr(c, "node"), *ver = tern_xml_attr(c, "ver");
    const char *hash = tern_xml_attr(c, "hash");
    if (node == NULL || ver == NULL || *ver == '\0')
        return NULL;
    if (hash != NULL && digest_of(hash) == NULL)
        return NULL; /* §5.4: a hash we cannot check */
    caps_entry_t *e = hash != NULL ? cache_get(st, hash, ver) : NULL;
    if (e != NULL)
        return e;
    if ((e = entry_new(hash, ver)) == NULL)
        return NULL;
    if (e->key != NULL)
        cache_put(st, e);
    send_query(st, e, full, node);
    return e;
}

int pep_caps_on_presence(tern_module_ctx_t *m, tern_event_t *ev)
{
    pep_state_t *st = tern_get_data(m);
    tern_session_t *s = ev->origin;
    const char *type = tern_xml_attr(ev->stanza, "type");
    if (st == NULL || s == NULL || tern_xml_attr(ev->stanza, "to") != NULL)
        return TERN_PASS;
    if (type != NULL) {
        pep_session_t *ps = strcmp(type, "unavailable") == 0 ? tern_session_get(s, m) : NULL;
        if (ps != NULL)
            ps->announced = 0; /* the next available presence is initial again */
        return TERN_PASS;
    }
    pep_session_t *ps = session_data(st, s);
    if (ps == NULL)
        return TERN_PASS;
    const tern_xml_t *c = tern_xml_child(ev->stanza, "c", NS_CAPS);
    caps_entry_t *e = c != NULL ? caps_for(st, c, tern_session_jid(s)->full) : NULL;
    pep_caps_entry_unref(ps->caps);
    ps->caps = e;
    if (ps->announced)
        return TERN_PASS;
    ps->announced = 1;
    if (e != NULL && e->state == CAPS_PENDING) {
        const char *full = tern_session_jid(s)->full;
        size_t len = strlen(full);
        caps_waiter_t *w = malloc(sizeof *w + len + 1);
        if (w != NULL) {
            memcpy(w->full, full, len + 1);
            w->serial = tern_session_serial(s);
            w->user = NULL;
            w->next = e->waiters;
            e->waiters = w;
        }
    } else if (e != NULL && e->state == CAPS_READY) {
        pep_send_last_items(st, s);
    }
    return TERN_PASS;
}

/* ---- contacts on other servers -------------------------------------------- */

/* Most available resources remembered per (user, remote contact). */
#define MAX_REMOTE_RESOURCES 16

typedef struct remote_res {
    struct remote_res *next;
    caps_entry_t *caps; /* a reference, or NULL (no usable <c/>) */
    char full[];
} remote_res_t;

/* The value of st->remote: the available resources of one remote contact
 * that sent presence to one of our users. */
typedef struct remote_contact {
    remote_res_t *res;
    unsigned n;
} remote_contact_t;

static void remote_contact_free(void *p)
{
    remote_contact_t *rc = p;
    while (rc->res != NULL) {
        remote_res_t *r = rc->res;
        rc->res = r->next;
        pep_caps_entry_unref(r->caps);
        free(r);
    }
    free(rc);
}

static remote_res_t *remote_find(const remote_contact_t *rc, const char *full)
{
    for (remote_res_t *r = rc != NULL ? rc->res : NULL; r != NULL; r = r->next)
        if (strcmp(r->full, full) == 0)
            return r;
    return NULL;
}

/* Forget `from` under `key` (a full JID: that resource; a bare JID: all). */
static void remote_forget(pep_state_t *st, const char *key, const tern_jid_t *from)
{
    remote_contact_t *rc = strmap_get(st->remote, key);
    if (rc == NULL)
        return;
    if (from->resource == NULL) {
        strmap_del(st->remote, key);
        return;
    }
    for (remote_res_t **p = &rc->res; *p != NULL; p = &(*p)->next)
        if (strcmp((*p)->full, from->full) == 0) {
            remote_res_t *r = *p;
            *p = r->next;
            rc->n--;
            pep_caps_entry_unref(r->caps);
            free(r);
            break;
        }
    if (rc->res == NULL)
        strmap_del(st->remote, key);
}

/* Remember under `key` that `full` is available with caps e (a reference
 * that passes to the record; may be NULL).  1 when the resource is new or
 * its caps changed, 0 when nothing changed or it could not be kept. */
static int remote_remember(pep_state_t *st, const char *key, const char *full, caps_entry_t *e)
{
    remote_contact_t *rc = strmap_get(st->remote, key);
    if (rc == NULL) {
        while (st->caps_cache_size > 0 && strmap_count(st->remote) >= (size_t)st->caps_cache_size)
            if (!strmap_evict_one(st->remote, NULL))
                break;
        if ((rc = calloc(1, sizeof *rc)) == NULL || strmap_put(st->remote, key, rc) < 0) {
            free(rc);
            pep_caps_entry_unref(e);
            return 0;
        }
    }
    remote_res_t *r = remote_find(rc, full);
    if (r != NULL) {
        int changed = r->caps != e;
        pep_caps_entry_unref(r->caps);
        r->caps = e;
        return changed;
    }
    size_t len = strlen(full);
    r = rc->n < MAX_REMOTE_RESOURCES ? malloc(sizeof *r + len + 1) : NULL;
    if (r == NULL) {
        pep_caps_entry_unref(e);
        return 0;
    }
    memcpy(r->full, full, len + 1);
    r->caps = e;
    r->next = rc->res;
    rc->res = r;
    rc->n++;
    return 1;
}

/* The caps e of the remote `full` are known: if `user` still has it with
 * them, send it the last items of user's nodes it is interested in. */
static void remote_caps_known(pep_state_t *st, const char *user, const char *full,
                              const caps_entry_t *e)
{
    size_t blen = strcspn(full, "/");
    char *bare = strndup(full, blen);
    char *key = bare != NULL ? pep_join(user, bare) : NULL;
    const remote_res_t *r = key != NULL ? remote_find(strmap_get(st->remote, key), full) : NULL;
    if (r != NULL && r->caps == e)
        pep_send_last_items_remote(st, user, bare, full, e);
    free(key);
    free(bare);
}

int pep_caps_on_remote_presence(tern_module_ctx_t *m, tern_event_t *ev)
{
    pep_state_t *st = tern_get_data(m);
    const tern_jid_t *from = ev->from, *to = ev->to;
    if (st == NULL || st->remote == NULL || from == NULL || to == NULL || to->local == NULL ||
        from->local == NULL || pep_state_of_host(from->domain) != NULL)
        return TERN_PASS; /* our own users' caps come with their sessions */
    const char *type = tern_xml_attr(ev->stanza, "type");
    char *key = pep_join(to->local, from->bare);
    if (key == NULL)
        return TERN_PASS;
    if (type == NULL && from->resource != NULL) {
        const tern_xml_t *c = tern_xml_child(ev->stanza, "c", NS_CAPS);
        remote_res_t *r = remote_find(strmap_get(st->remote, key), from->full);
        const char *ver = c != NULL ? tern_xml_attr(c, "ver") : NULL;
        if (r != NULL && r->caps != NULL && r->caps->hash == NULL && ver != NULL &&
            tern_xml_attr(c, "hash") == NULL && strcmp(r->caps->ver, ver) == 0) {
            free(key); /* legacy caps, as before: no new query at each status */
            return TERN_PASS;
        }
        caps_entry_t *e = c != NULL ? caps_for(st, c, from->full) : NULL;
        /* XEP-0163 §4.3.4: a contact's resource that arrives (or says new
         * interests) gets the last items, once its caps are known. */
        if (remote_remember(st, key, from->full, e) == 1 && e != NULL) {
            if (e->state == CAPS_READY) {
                pep_send_last_items_remote(st, to->local, from->bare, from->full, e);
            } else if (e->state == CAPS_PENDING) {
                size_t len = strlen(from->full);
                caps_waiter_t *w = malloc(sizeof *w + len + 1);
                if (w != NULL && (w->user = strdup(to->local)) != NULL) {
                    memcpy(w->full, from->full, len + 1);
                    w->serial = 0;
                    w->next = e->waiters;
                    e->waiters = w;
                } else {
                    free(w);
                }
            }
        }
    } else if (type != NULL && (strcmp(type, "unavailable") == 0 || strcmp(type, "error") == 0)) {
        remote_forget(st, key, from);
    }
    free(key);
    return TERN_PASS;
}

void pep_remote_foreach_wanting(pep_state_t *st, const char *user, const char *bare,
                                const char *node, void (*fn)(void *ctx, const char *full),
                                void *ctx)
{
    char *key = st->remote != NULL ? pep_join(user, bare) : NULL;
    const remote_contact_t *rc = key != NULL ? strmap_get(st->remote, key) : NULL;
    free(key);
    for (const remote_res_t *r = rc != NULL ? rc->res : NULL; r != NULL; r = r->next)
        if (pep_caps_wants(r->caps, node))
            fn(ctx, r->full);
}

void pep_remote_forget_user(pep_state_t *st, const char *user)
{
    char *prefix = st->remote != NULL ? pep_join(user, "") : NULL;
    if (prefix != NULL)
        strmap_del_prefix(st->remote, prefix);
    free(prefix);
}

/* ---- per-instance bookkeeping -------------------------------------------- */

int pep_caps_init(pep_state_t *st)
{
    st->caps_cache = strmap_new(cache_value_free);
    st->remote = strmap_new(remote_contact_free);
    return st->caps_cache != NULL && st->remote != NULL ? 0 : -1;
}

/* Unload: the core drops pending callbacks uncalled; drop their references. */
void pep_caps_release(pep_state_t *st)
{
    while (st->caps_pending != NULL) {
        caps_entry_t *e = st->caps_pending;
        st->caps_pending = e->next_pending;
        e->next_pending = NULL;
        e->in_flight = 0;
        pep_caps_entry_unref(e);
    }
    strmap_free(&st->remote);
    strmap_free(&st->caps_cache);
}
