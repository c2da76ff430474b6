/*
 * xmlscan.c — the client's streaming XML reader (see xmlscan.h).
 *
 * Owns one expat parser per connection and the arena the per-element
 * trees are built in.  The arena is freed as soon as an element has been
 * handed to the callback, so an idle connection holds no tree memory.
 * It must not interpret XMPP: client.c does that.
 */
#include "xmlscan.h"

#include <expat.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NS_SEP      '|'
#define ARENA_BLOCK 4096

typedef struct block {
    struct block *next;
    size_t used, size;
    char data[];
} block_t;

struct xscan {
    XML_Parser p;
    xscan_cbs_t cbs;
    void *ud;
    int depth;
    xnode_t *cur; /* element being built (depth >= 1) */
    block_t *arena;
    size_t arena_total;
    int too_big;
    int restart;    /* a new document starts after the current element */
    int stopped;    /* xscan_stop() was called */
    size_t stop_at; /* document offset where the restart happens */
    size_t doc_fed; /* bytes of the current document parsed so far */
};

static void *arena_alloc(xscan_t *xs, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    block_t *b = xs->arena;
    if (b == NULL || b->size - b->used < n) {
        size_t size = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        if (xs->arena_total + size > XSCAN_MAX_ELEMENT) {
            xs->too_big = 1;
            return NULL;
        }
        b = malloc(sizeof(*b) + size);
        if (b == NULL)
            return NULL;
        b->next = xs->arena;
        b->used = 0;
        b->size = size;
        xs->arena = b;
        xs->arena_total += size;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

static void arena_reset(xscan_t *xs)
{
    while (xs->arena != NULL) {
        block_t *next = xs->arena->next;
        free(xs->arena);
        xs->arena = next;
    }
    xs->arena_total = 0;
}

static char *arena_strdup(xscan_t *xs, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = arena_alloc(xs, n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    xscan_t *xs = ud;
    xs->depth++;
    if (xs->depth == 1) {
        if (xs->cbs.header != NULL)
            xs->cbs.header(xs->ud, (const char **)attrs);
        return;
    }
    if (xs->too_big)
        return;
    xnode_t *n = arena_alloc(xs, sizeof(*n));
    size_t na = 0;
    while (attrs[na] != NULL)
        na++;
    const char **av = arena_alloc(xs, (na + 1) * sizeof(*av));
    if (n == NULL || av == NULL) {
        xs->too_big = 1;
        XML_StopParser(xs->p, XML_FALSE);
        return;
    }
    memset(n, 0, sizeof(*n));
    n->name = arena_strdup(xs, name);
    for (size_t i = 0; i < na; i++)
        av[i] = arena_strdup(xs, attrs[i]);
    av[na] = NULL;
    n->attrs = av;
    n->parent = xs->cur;
    if (xs->cur != NULL) {
        if (xs->cur->last != NULL)
            xs->cur->last->next = n;
        else
            xs->cur->child = n;
        xs->cur->last = n;
    }
    xs->cur = n;
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    (void)name;
    xscan_t *xs = ud;
    xs->depth--;
    if (xs->depth == 0) {
        if (xs->cbs.end != NULL)
            xs->cbs.end(xs->ud);
        return;
    }
    if (xs->too_big) {
        XML_StopParser(xs->p, XML_FALSE);
        return;
    }
    xnode_t *n = xs->cur;
    xs->cur = n->parent;
    if (xs->depth == 1) {
        xs->cur = NULL;
        xs->cbs.element(xs->ud, n);
        arena_reset(xs);
        if (xs->restart && !xs->stopped) {
            xs->stop_at = (size_t)(XML_GetCurrentByteIndex(xs->p) + XML_GetCurrentByteCount(xs->p));
            XML_StopParser(xs->p, XML_FALSE);
        }
    }
}

static void XMLCALL on_text(void *ud, const XML_Char *s, int len)
{
    xscan_t *xs = ud;
    if (xs->cur == NULL || xs->too_big || len <= 0)
        return;
    xnode_t *n = xs->cur;
    size_t need = n->text_len + (size_t)len + 1;
    if (need > n->text_cap) {
        /* Room doubles, so a long text that comes in many pieces costs
         * about twice its size in the arena, not the sum of its prefixes. */
        size_t cap = n->text_cap * 2 > need ? n->text_cap * 2 : need;
        char *t = arena_alloc(xs, cap);
        if (t == NULL) {
            xs->too_big = 1;
            XML_StopParser(xs->p, XML_FALSE);
            return;
        }
        if (n->text_len > 0)
            memcpy(t, n->text, n->text_len);
        n->text = t;
        n->text_cap = cap;
    }
    char *t = n->text;
    memcpy(t + n->text_len, s, (size_t)len);
    n->text_len += (size_t)len;
    t[n->text_len] = '\0';
}

static void setup(xscan_t *xs)
{
    XML_SetUserData(xs->p, xs);
    XML_SetElementHandler(xs->p, on_start, on_end);
    XML_SetCharacterDataHandler(xs->p, on_text);
    xs->depth = 0;
    xs->cur = NULL;
    xs->restart = 0;
}

xscan_t *xscan_new(const xscan_cbs_t *cbs, void *ud)
{
    xscan_t *xs = calloc(1, sizeof(*xs));
    if (xs == NULL)
        return NULL;
    xs->p = XML_ParserCreateNS(NULL, NS_SEP);
    if (xs->p == NULL) {
        free(xs);
        return NULL;
    }
    xs->cbs = *cbs;
    xs->ud = ud;
    setup(xs);
    return xs;
}

void xscan_free(xscan_t **xsp)
{
    xscan_t *xs = *xsp;
    if (xs == NULL)
        return;
    arena_reset(xs);
    XML_ParserFree(xs->p);
    free(xs);
    *xsp = NULL;
}

void xscan_restart(xscan_t *xs)
{
    xs->restart = 1;
}

void xscan_stop(xscan_t *xs)
{
    xs->stopped = 1;
    XML_StopParser(xs->p, XML_FALSE);
}

int xscan_feed(xscan_t *xs, const char *data, size_t len, const char **why)
{
    while (len > 0 && !xs->stopped) {
        int chunk = len > INT32_MAX ? INT32_MAX : (int)len;
        enum XML_Status st = XML_Parse(xs->p, data, chunk, XML_FALSE);
        if (xs->stopped)
            return 0;
        if (xs->too_big) {
            *why = "element too big";
            return -1;
        }
        if (st == XML_STATUS_ERROR && xs->restart && XML_GetErrorCode(xs->p) == XML_ERROR_ABORTED) {
            /* A new document starts at stop_at (counted from the start of
             * this one): reset, and parse what follows as the new one. */
            size_t used = xs->stop_at - xs->doc_fed;
            if (used > (size_t)chunk)
                used = (size_t)chunk;
            XML_ParserReset(xs->p, NULL);
            setup(xs);
            xs->doc_fed = 0;
            data += used;
            len -= used;
            continue;
        }
        if (st == XML_STATUS_ERROR) {
            *why = XML_ErrorString(XML_GetErrorCode(xs->p));
            return -1;
        }
        xs->doc_fed += (size_t)chunk;
        data += chunk;
        len -= (size_t)chunk;
    }
    return 0;
}

/* ---- tree helpers ------------------------------------------------------- */

const char *xn_local(const xnode_t *n)
{
    const char *sep = strrchr(n->name, NS_SEP);
    return sep != NULL ? sep + 1 : n->name;
}

int xn_is(const xnode_t *n, const char *ns, const char *local)
{
    if (n == NULL)
        return 0;
    if (ns == NULL)
        return strcmp(xn_local(n), local) == 0;
    size_t nl = strlen(ns);
    return strncmp(n->name, ns, nl) == 0 && n->name[nl] == NS_SEP &&
           strcmp(n->name + nl + 1, local) == 0;
}

const char *xn_attr(const xnode_t *n, const char *name)
{
    for (const char **a = n->attrs; a != NULL && a[0] != NULL; a += 2)
        if (strcmp(a[0], name) == 0)
            return a[1];
    return NULL;
}

xnode_t *xn_child(const xnode_t *n, const char *ns, const char *local)
{
    for (xnode_t *c = n->child; c != NULL; c = c->next)
        if (xn_is(c, ns, local))
            return c;
    return NULL;
}
