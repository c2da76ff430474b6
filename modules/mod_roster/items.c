/*
 * items.c — roster items as stored, and roster versions.
 *
 * Owns the record kept per (user, contact) in the "roster" map store and
 * the version counter in the "roster_version" key-value store (RFC 6121
 * §2.6).  A record is a few "key=value" lines, values escaped (\\, \n):
 *     v=1  s=<subscription bits>  f=<flags: a ask, i pending in,
 *     p pre-approved, h hidden>  n=<name>  g=<group> (repeated)
 *     t=<status of the pending request>
 * It knows nothing of stanzas beyond turning an item into <item/>.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

ritem_t *item_new(const char *jid)
{
    ritem_t *it = calloc(1, sizeof(*it));
    if (it == NULL || (it->jid = strdup(jid)) == NULL) {
        free(it);
        return NULL;
    }
    return it;
}

void item_clear_groups(ritem_t *it)
{
    for (size_t i = 0; i < it->ngroups; i++)
        free(it->groups[i]);
    free(it->groups);
    it->groups = NULL;
    it->ngroups = 0;
}

void item_free(ritem_t **itp)
{
    ritem_t *it = *itp;
    if (it == NULL)
        return;
    item_clear_groups(it);
    free(it->jid);
    free(it->name);
    free(it->status);
    free(it);
    *itp = NULL;
}

int item_set_name(ritem_t *it, const char *name)
{
    char *copy = name != NULL ? strdup(name) : NULL;
    if (name != NULL && copy == NULL)
        return -1;
    free(it->name);
    it->name = copy;
    return 0;
}

int item_set_status(ritem_t *it, const char *status)
{
    char *copy = status != NULL && *status ? str_cut(status, ROSTER_MAX_STATUS) : NULL;
    if (status != NULL && *status && copy == NULL)
        return -1;
    free(it->status);
    it->status = copy;
    return 0;
}

int item_add_group(ritem_t *it, const char *group)
{
    char **g = realloc(it->groups, (it->ngroups + 1) * sizeof(*g));
    if (g == NULL)
        return -1;
    it->groups = g;
    if ((g[it->ngroups] = strdup(group)) == NULL)
        return -1;
    it->ngroups++;
    return 0;
}

int item_has_group(const ritem_t *it, const char *group)
{
    for (size_t i = 0; i < it->ngroups; i++)
        if (strcmp(it->groups[i], group) == 0)
            return 1;
    return 0;
}

int item_is_empty(const ritem_t *it)
{
    return it->hidden && !it->in;
}

/* ---- the record ---------------------------------------------------------- */

typedef struct buf {
    char *data;
    size_t len, cap;
    int failed;
} buf_t;

static void buf_add(buf_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (d == NULL) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

/* One "k=value\n" line, the value escaped. */
static void buf_field(buf_t *b, char key, const char *value)
{
    char head[2] = {key, '='};
    buf_add(b, head, 2);
    for (const char *p = value; *p; p++) {
        if (*p == '\\')
            buf_add(b, "\\\\", 2);
        else if (*p == '\n')
            buf_add(b, "\\n", 2);
        else
            buf_add(b, p, 1);
    }
    buf_add(b, "\n", 1);
}

static char *item_encode(const ritem_t *it, size_t *len_r)
{
    buf_t b = {0};
    char sub[2] = {(char)('0' + (it->sub & ROSTER_SUB_BOTH)), '\0'};
    char flags[5];
    size_t nf = 0;
    if (it->ask)
        flags[nf++] = 'a';
    if (it->in)
        flags[nf++] = 'i';
    if (it->appr)
        flags[nf++] = 'p';
    if (it->hidden)
        flags[nf++] = 'h';
    flags[nf] = '\0';
    buf_field(&b, 'v', "1");
    buf_field(&b, 's', sub);
    buf_field(&b, 'f', flags);
    if (it->name != NULL)
        buf_field(&b, 'n', it->name);
    for (size_t i = 0; i < it->ngroups; i++)
        buf_field(&b, 'g', it->groups[i]);
    if (it->status != NULL)
        buf_field(&b, 't', it->status);
    if (b.failed) {
        free(b.data);
        return NULL;
    }
    *len_r = b.len;
    return b.data;
}

/* Unescape data[0..n) into a new string. */
static char *unescape(const char *data, size_t n)
{
    char *out = malloc(n + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (data[i] == '\\' && i + 1 < n) {
            i++;
            *o++ = data[i] == 'n' ? '\n' : data[i];
        } else {
            *o++ = data[i];
        }
    }
    *o = '\0';
    return out;
}

static ritem_t *item_decode(const char *jid, const char *data, size_t len)
{
    ritem_t *it = item_new(jid);
    const char *p = data, *end = data + len;
    while (it != NULL && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *eol = nl ? nl : end;
        if (eol - p >= 2 && p[1] == '=') {
            char *v = unescape(p + 2, (size_t)(eol - p - 2));
            int ok = v != NULL;
            switch (ok ? p[0] : 0) {
            case 's':
                it->sub = (unsigned)atoi(v) & ROSTER_SUB_BOTH;
                break;
            case 'f':
                it->ask = strchr(v, 'a') != NULL;
                it->in = strchr(v, 'i') != NULL;
                it->appr = strchr(v, 'p') != NULL;
                it->hidden = strchr(v, 'h') != NULL;
                break;
            case 'n':
                free(it->name);
                it->name = v;
                v = NULL;
                break;
            case 'g':
                ok = item_add_group(it, v) == 0;
                break;
            case 't':
                free(it->status);
                it->status = v;
                v = NULL;
                break;
            default:
                break;
            }
            free(v);
            if (!ok)
                item_free(&it);
        }
        p = eol + 1;
    }
    return it;
}

int item_get(rhost_t *h, const char *user, const char *contact, ritem_t **out)
{
    tern_blob_t blob = {0};
    *out = NULL;
    int rc = tern_map_get(h->items, user, contact, &blob);
    if (rc <= 0)
        return rc;
    *out = item_decode(contact, blob.data, blob.len);
    free(blob.data);
    return *out != NULL ? 1 : -1;
}

int item_put(rhost_t *h, const char *user, const ritem_t *it)
{
    size_t len = 0;
    char *data = item_encode(it, &len);
    if (data == NULL)
        return -1;
    int rc = tern_map_set(h->items, user, it->jid, data, len);
    free(data);
    return rc;
}

int item_del(rhost_t *h, const char *user, const char *contact)
{
    return tern_map_set(h->items, user, contact, NULL, 0);
}

typedef struct walk {
    int (*fn)(void *ctx, const ritem_t *it);
    void *ctx;
    int count;
    int failed;
} walk_t;

static int walk_one(void *ctx, const char *key, const char *data, size_t len)
{
    walk_t *w = ctx;
    ritem_t *it = item_decode(key, data, len);
    if (it == NULL) {
        w->failed = 1;
        return 1;
    }
    w->count++;
    int stop = w->fn(w->ctx, it);
    item_free(&it);
    return stop;
}

int items_foreach(rhost_t *h, const char *user, int (*fn)(void *ctx, const ritem_t *it), void *ctx)
{
    walk_t w = {.fn = fn, .ctx = ctx};
    if (tern_map_foreach(h->items, user, walk_one, &w) < 0 || w.failed)
        return -1;
    return w.count;
}

int items_foreach_result(const tern_map_result_t *res, int (*fn)(void *ctx, const ritem_t *it),
                         void *ctx)
{
    if (res->rc < 0)
        return -1;
    for (int i = 0; i < res->rc; i++) {
        const tern_map_entry_t *e = &res->entries[i];
        ritem_t *it = item_decode(e->key, e->data, e->len);
        if (it == NULL)
            return -1;
        int stop = fn(ctx, it);
        item_free(&it);
        if (stop)
            break;
    }
    return res->rc;
}

typedef struct counts {
    long visible, hidden;
} counts_t;

static int count_item(void *ctx, const ritem_t *it)
{
    counts_t *c = ctx;
    if (it->hidden)
        c->hidden++;
    else
        c->visible++;
    return 0;
}

long items_count_visible(rhost_t *h, const char *user)
{
    counts_t c = {0};
    return items_foreach(h, user, count_item, &c) < 0 ? -1 : c.visible;
}

long items_count_hidden(rhost_t *h, const char *user)
{
    counts_t c = {0};
    return items_foreach(h, user, count_item, &c) < 0 ? -1 : c.hidden;
}

/* RFC 6121 §2.1.2: jid, name, subscription, ask, approved, groups. */
tern_xml_t *item_to_xml(const ritem_t *it, tern_xml_t *query)
{
    static const char *const subs[] = {"none", "to", "from", "both"};
    tern_xml_t *x = tern_xml_add_child(query, "item", NS_ROSTER);
    if (x == NULL)
        return NULL;
    tern_xml_set_attr(x, "jid", it->jid);
    if (it->name != NULL)
        tern_xml_set_attr(x, "name", it->name);
    tern_xml_set_attr(x, "subscription", subs[it->sub & ROSTER_SUB_BOTH]);
    if (it->ask)
        tern_xml_set_attr(x, "ask", "subscribe");
    if (it->appr && !(it->sub & ROSTER_SUB_FROM))
        tern_xml_set_attr(x, "approved", "true"); /* §3.4 */
    for (size_t i = 0; i < it->ngroups; i++) {
        tern_xml_t *g = tern_xml_add_child(x, "group", NS_ROSTER);
        if (g != NULL)
            tern_xml_add_text(g, it->groups[i], strlen(it->groups[i]));
    }
    return x;
}

/* ---- versions (RFC 6121 §2.6) -------------------------------------------- */

static long long version_read(rhost_t *h, const char *user)
{
    tern_blob_t blob = {0};
    long long v = 0;
    if (tern_kv_get(h->versions, user, &blob) == 1) {
        v = strtoll(blob.data, NULL, 10);
        free(blob.data);
    }
    return v;
}

void roster_version(rhost_t *h, const char *user, char *buf, size_t len)
{
    snprintf(buf, len, "%lld", version_read(h, user));
}

/* The clock in microseconds, so that a roster deleted and made again never
 * repeats a version a client may have cached; +1 when the clock is behind. */
int roster_bump(rhost_t *h, const char *user, char *buf, size_t len)
{
    long long v = version_read(h, user) + 1;
    long long now = (long long)tern_now_us();
    if (now > v)
        v = now;
    snprintf(buf, len, "%lld", v);
    return tern_kv_set(h->versions, user, buf, strlen(buf));
}
