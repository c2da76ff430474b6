/*
 * xml_tree.c — the stanza tree of <tern/xml.h>.
 *
 * Owns struct tern_xml_arena: every node, attribute and string of one tree
 * lives in a single arena made of chunked blocks, and the arena carries the
 * tree's reference count.  Nodes are never freed one by one; the last
 * tern_xml_unref() frees every block at once.
 *
 * Strings are always copied into the arena (or shared with another string
 * of the same arena, which is safe because arena memory lives as long as
 * the tree).  Text nodes are stored NUL-terminated even though readers
 * must use text_len.  Everything here is iterative, so a deep tree built
 * by a module cannot exhaust the C stack.
 */
#include "autoconfig.h"

#include <tern/xml.h>

#include "xml/xml_stream.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xml/xml_stream.h"

/* Size of the first chunk (allocated together with the arena header) and
 * the cap on later chunks, which double in size up to it. */
#define ARENA_FIRST_CHUNK 1024
#define ARENA_MAX_CHUNK   (32 * 1024)

/* A chunk allocated after the first one; `data` follows the header. */
struct arena_block {
    struct arena_block *next;
    max_align_t data[];
};

struct tern_xml_arena {
    size_t refs;
    int frozen;                          /* no more changes: see tern_xml_freeze() */
    xml_bytes_t *cache[XML_CACHE_SLOTS]; /* serialized root, one per stream namespace */
    const char *cache_ns[XML_CACHE_SLOTS];
    xml_bytes_t *rest; /* fan-out copy: the shared bytes after the root's start tag */
    /* A fan-out view (xml_fanout_view): its root shares the children of
     * `view_of`, whose arena (`base`) it keeps a reference on. */
    struct tern_xml_arena *base;
    const tern_xml_t *view_of;
    char *cur, *end;                   /* free space of the current chunk */
    struct arena_block *extra;         /* chunks malloc'd after the first, to free */
    size_t next_chunk;                 /* size of the next ordinary chunk */
    size_t first_size;                 /* bytes of `first` */
    struct tern_xml_arena *spare_next; /* in the spare list (below) */
    max_align_t first[];               /* the first chunk, ARENA_FIRST_CHUNK bytes */
};

/* Spare arenas.  Most trees are one stanza that lives for a moment, and
 * an arena with its first chunk is too large for the allocator's fast
 * bins: up to ARENA_SPARES freed ordinary arenas are kept and handed out
 * again (measured: about 450 instructions per routed message).  The list
 * belongs to one thread, the first that frees a tree (the event loop's:
 * it builds and frees trees from start-up on); other threads (worker
 * jobs) allocate and free as before.  Under AddressSanitizer the nodes'
 * chunk of a kept arena is poisoned, so that a use after the last unref
 * is still reported (not the header: the leak checker follows the list
 * through it). */
#define ARENA_SPARES 8

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_ASAN 1
#endif
#endif
#ifdef ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define ARENA_POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define ARENA_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define ARENA_POISON(p, n)   ((void)(p), (void)(n))
#define ARENA_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

static struct {
    struct tern_xml_arena *first;
    unsigned count;
    pthread_t owner;
    atomic_int claimed; /* 0 free, 1 being claimed, 2 `owner` set */
} spares;

/* Whether the calling thread owns the spare list (claiming it when no
 * thread does yet). */
static int spares_mine(void)
{
    int st = atomic_load_explicit(&spares.claimed, memory_order_acquire);
    if (st == 0) {
        int expect = 0;
        if (atomic_compare_exchange_strong(&spares.claimed, &expect, 1)) {
            spares.owner = pthread_self();
            atomic_store_explicit(&spares.claimed, 2, memory_order_release);
            return 1;
        }
        return 0;
    }
    return st == 2 && pthread_equal(spares.owner, pthread_self());
}

/* Keep `a` (an ordinary arena, blocks already freed) as a spare; 0 when
 * it is not kept and the caller frees it. */
static int spare_put(struct tern_xml_arena *a)
{
    if (spares.count >= ARENA_SPARES || !spares_mine())
        return 0;
    a->spare_next = spares.first;
    spares.first = a;
    spares.count++;
    ARENA_POISON(a->first, ARENA_FIRST_CHUNK);
    return 1;
}

static struct tern_xml_arena *spare_get(void)
{
    if (!spares.first || !spares_mine())
        return NULL;
    struct tern_xml_arena *a = spares.first;
    ARENA_UNPOISON(a->first, ARENA_FIRST_CHUNK);
    spares.first = a->spare_next;
    spares.count--;
    return a;
}

/* ---- arena ---------------------------------------------------------- */

/* A new arena whose first chunk holds `first` bytes. */
static struct tern_xml_arena *arena_new_sized(size_t first)
{
    struct tern_xml_arena *a = first == ARENA_FIRST_CHUNK ? spare_get() : NULL;
    if (!a)
        a = malloc(sizeof(*a) + first);
    if (!a)
        return NULL;
    a->first_size = first;
    a->refs = 1;
    a->frozen = 0;
    for (size_t i = 0; i < XML_CACHE_SLOTS; i++) {
        a->cache[i] = NULL;
        a->cache_ns[i] = NULL;
    }
    a->rest = NULL;
    a->base = NULL;
    a->view_of = NULL;
    a->cur = (char *)a->first;
    a->end = a->cur + first;
    a->extra = NULL;
    a->next_chunk = 2 * ARENA_FIRST_CHUNK;
    return a;
}

static struct tern_xml_arena *arena_new(void)
{
    return arena_new_sized(ARENA_FIRST_CHUNK);
}

static void arena_free(struct tern_xml_arena *a)
{
    for (size_t i = 0; i < XML_CACHE_SLOTS; i++)
        xml_bytes_unref(a->cache[i]);
    xml_bytes_unref(a->rest);
    struct tern_xml_arena *base = a->base;
    struct arena_block *b = a->extra;
    while (b) {
        struct arena_block *next = b->next;
        free(b);
        b = next;
    }
    if (a->first_size != ARENA_FIRST_CHUNK || !spare_put(a))
        free(a);
    if (base && --base->refs == 0)
        arena_free(base); /* a template has no base: one level only */
}

/* Malloc a block with `size` usable bytes and put it on the free list. */
static char *arena_block(struct tern_xml_arena *a, size_t size)
{
    if (size > SIZE_MAX - sizeof(struct arena_block))
        return NULL;
    struct arena_block *b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    b->next = a->extra;
    a->extra = b;
    return (char *)b->data;
}

/* `n` bytes aligned to `align` (a power of two <= alignof(max_align_t)).
 * A request that does not fit the current chunk opens the next ordinary
 * chunk only when it fits there with room to spare; a larger one (over a
 * quarter of the largest chunk, or over the next chunk's size) gets a
 * block of its own, so that nothing is ever written past a chunk and the
 * current chunk's free space is not thrown away.  NULL on allocation
 * failure. */
static void *arena_alloc(struct tern_xml_arena *a, size_t n, size_t align)
{
    uintptr_t p = ((uintptr_t)a->cur + (align - 1)) & ~(uintptr_t)(align - 1);
    if (p <= (uintptr_t)a->end && n <= (uintptr_t)a->end - p) {
        a->cur = (char *)p + n;
        return (void *)p;
    }
    if (n > ARENA_MAX_CHUNK / 4 || n > a->next_chunk / 2)
        return arena_block(a, n);
    size_t size = a->next_chunk;
    char *chunk = arena_block(a, size);
    if (!chunk)
        return NULL;
    if (a->next_chunk < ARENA_MAX_CHUNK)
        a->next_chunk *= 2;
    a->cur = chunk + n; /* chunk is max-aligned and n <= size */
    a->end = chunk + size;
    return chunk;
}

/* Copy `n` bytes of `s` into the arena, NUL-terminated. */
static char *arena_strndup(struct tern_xml_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *d = arena_alloc(a, n + 1, 1);
    if (!d)
        return NULL;
    if (n)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* `s` itself when it already lives in this arena (`shared`), else a copy. */
static const char *arena_str(struct tern_xml_arena *a, const char *s, int shared)
{
    if (!s)
        return NULL;
    return shared ? s : arena_strndup(a, s, strlen(s));
}

/* Whether the NUL-terminated `a` and `b` are equal; inline, since the
 * strings compared on the hot path (attribute names, namespaces that are
 * mostly equal by address) are short or differ in their first byte. */
static inline int name_eq(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

static int streq(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* The parent of `n` in a walk of the tree rooted at `top`: a fan-out
 * view's shared children have the template's root as their parent, and
 * the view's root stands in for it. */
const tern_xml_t *xml_parent_in(const tern_xml_t *n, const tern_xml_t *top)
{
    const tern_xml_t *p = n->parent;
    return p && p == top->arena->view_of ? top : p;
}

/* ---- freezing ------------------------------------------------------- */

static void default_report(const char *msg)
{
    fprintf(stderr, "tern: %s\n", msg);
}

static void (*misuse_report)(const char *msg) = default_report;
#ifdef TERN_FREEZE_ABORT
static int misuse_abort = 1;
#else
static int misuse_abort = 0;
#endif

void xml_set_misuse_report(void (*fn)(const char *msg))
{
    misuse_report = fn ? fn : default_report;
}

void xml_set_misuse_abort(int on)
{
    misuse_abort = on;
}

/* Calls that change a tree, each reported once. */
enum {
    CALL_ADD_CHILD,
    CALL_ADD_TEXT,
    CALL_SET_ATTR,
    CALL_DEL_ATTR,
    CALL_UNLINK,
    CALL_COPY_INTO,
    CALL_COUNT
};
static const char *const call_names[CALL_COUNT] = {
    "tern_xml_add_child", "tern_xml_add_text", "tern_xml_set_attr",
    "tern_xml_del_attr",  "tern_xml_unlink",   "tern_xml_copy_into",
};

/* 1 (and the change must be refused) when `node` belongs to a frozen
 * tree.  The first refusal of each call is reported; builds with
 * sanitizers stop right there so that tests catch the offender. */
static int reported[CALL_COUNT];

static int refused(const tern_xml_t *node, int call)
{
    if (!node || !node->arena->frozen)
        return 0;
    if (!reported[call]) {
        reported[call] = 1;
        char msg[160];
        snprintf(msg, sizeof(msg),
                 "%s on a stanza that was already routed (frozen): refused; change a copy "
                 "(tern_xml_copy) instead",
                 call_names[call]);
        misuse_report(msg);
    }
    if (misuse_abort)
        abort();
    return 1;
}

void tern_xml_freeze(tern_xml_t *node)
{
    if (node)
        node->arena->frozen = 1;
}

int tern_xml_frozen(const tern_xml_t *node)
{
    return node && node->arena->frozen;
}

/* Serialization cache of a frozen root, for xml_serialize.c. */
xml_bytes_t *xml_cache_get(const tern_xml_t *root, const char *stream_ns)
{
    const struct tern_xml_arena *a = root->arena;
    for (size_t i = 0; i < XML_CACHE_SLOTS && a->cache[i]; i++)
        if (a->cache_ns[i] == stream_ns ||
            (a->cache_ns[i] && stream_ns && name_eq(a->cache_ns[i], stream_ns)))
            return a->cache[i];
    return NULL;
}

void xml_cache_put(tern_xml_t *root, const char *stream_ns, xml_bytes_t *b)
{
    struct tern_xml_arena *a = root->arena;
    for (size_t i = 0; i < XML_CACHE_SLOTS; i++) {
        if (!a->cache[i]) {
            const char *ns = !stream_ns ? NULL
                             : name_eq(stream_ns, xml_ns_client)
                                 ? xml_ns_client
                                 : arena_strndup(a, stream_ns, strlen(stream_ns));
            if (stream_ns && !ns)
                return;
            a->cache[i] = xml_bytes_ref(b);
            a->cache_ns[i] = ns;
            return;
        }
    }
}

xml_bytes_t *xml_arena_bytes(tern_xml_t *root, size_t len)
{
    if (len > SIZE_MAX - sizeof(xml_bytes_t))
        return NULL;
    xml_bytes_t *b = arena_alloc(root->arena, sizeof(*b) + len, alignof(xml_bytes_t));
    if (b) {
        b->refs = XML_BYTES_IN_ARENA;
        b->len = len;
    }
    return b;
}

/* `node`'s tree changes (not only its root's attributes): bytes kept for
 * what follows the root's start tag no longer match it.  Only a tree
 * that is not frozen gets here, so never a fan-out copy. */
static void rest_drop(const tern_xml_t *node)
{
    struct tern_xml_arena *a = node->arena;
    if (a->rest) {
        xml_bytes_unref(a->rest);
        a->rest = NULL;
    }
}

xml_bytes_t *xml_rest_get(const tern_xml_t *root)
{
    return root->arena->rest;
}

void xml_rest_set(tern_xml_t *root, xml_bytes_t *rest)
{
    xml_bytes_unref(root->arena->rest);
    root->arena->rest = xml_bytes_ref(rest);
}

/* ---- nodes ---------------------------------------------------------- */

static tern_xml_t *node_alloc(struct tern_xml_arena *a)
{
    tern_xml_t *n = arena_alloc(a, sizeof(*n), alignof(tern_xml_t));
    if (n) {
        memset(n, 0, sizeof(*n));
        n->arena = a;
    }
    return n;
}

static void append_child(tern_xml_t *parent, tern_xml_t *child)
{
    child->parent = parent;
    child->next = NULL;
    if (parent->last_child)
        parent->last_child->next = child;
    else
        parent->children = child;
    parent->last_child = child;
}

const char xml_ns_client[] = TERN_NS_CLIENT;

/* Namespace string for a new element under `parent`: the parent's own
 * string when equal (no copy), xml_ns_client for TERN_NS_CLIENT (every
 * stanza's, never copied, and the serializer knows it by its address),
 * else a copy (or `ns` when `shared`).  A NULL ns is stored as "" (no
 * namespace). */
static const char *element_ns(struct tern_xml_arena *a, const tern_xml_t *parent, const char *ns,
                              int shared)
{
    if (!ns)
        ns = "";
    if (parent && streq(ns, parent->ns))
        return parent->ns;
    if (!*ns)
        return "";
    if (ns == xml_ns_client || (ns[0] == 'j' && strcmp(ns, TERN_NS_CLIENT) == 0))
        return xml_ns_client;
    return arena_str(a, ns, shared);
}

/* New element in arena `a`, appended to `parent` when not NULL. */
static tern_xml_t *element_new(struct tern_xml_arena *a, tern_xml_t *parent, const char *name,
                               const char *ns, int shared)
{
    tern_xml_t *n = node_alloc(a);
    if (!n)
        return NULL;
    n->name = arena_str(a, name, shared);
    n->ns = element_ns(a, parent, ns, shared);
    if (!n->name || !n->ns)
        return NULL;
    if (parent)
        append_child(parent, n);
    return n;
}

/* New text node of `len` bytes, appended to `parent` when not NULL. */
static tern_xml_t *text_new(struct tern_xml_arena *a, tern_xml_t *parent, const char *text,
                            size_t len)
{
    tern_xml_t *n = node_alloc(a);
    if (!n)
        return NULL;
    char *t = arena_strndup(a, text, len);
    if (!t)
        return NULL;
    n->text = t;
    n->text_len = len;
    if (parent)
        append_child(parent, n);
    return n;
}

tern_xml_t *tern_xml_new(const char *name, const char *ns)
{
    if (!name)
        return NULL;
    struct tern_xml_arena *a = arena_new();
    if (!a)
        return NULL;
    tern_xml_t *n = element_new(a, NULL, name, ns, 0);
    if (!n)
        arena_free(a);
    return n;
}

tern_xml_t *xml_element_add(tern_xml_t *parent, const char *name, size_t name_len, const char *ns)
{
    struct tern_xml_arena *a = parent ? parent->arena : arena_new();
    if (!a)
        return NULL;
    tern_xml_t *n = node_alloc(a);
    if (n) {
        n->name = arena_strndup(a, name, name_len);
        n->ns = element_ns(a, parent, ns, 0);
    }
    if (!n || !n->name || !n->ns) {
        if (!parent)
            arena_free(a);
        return NULL;
    }
    if (parent)
        append_child(parent, n);
    return n;
}

tern_xml_t *tern_xml_ref(tern_xml_t *node)
{
    if (node)
        node->arena->refs++;
    return node;
}

void tern_xml_unref(tern_xml_t *node)
{
    if (node && --node->arena->refs == 0)
        arena_free(node->arena);
}

tern_xml_t *tern_xml_add_child(tern_xml_t *parent, const char *name, const char *ns)
{
    if (!parent || !parent->name || !name || refused(parent, CALL_ADD_CHILD))
        return NULL;
    rest_drop(parent);
    return element_new(parent->arena, parent, name, ns ? ns : parent->ns, 0);
}

/* Each call adds one text node (adjacent ones are not merged; see
 * tern_xml_text).  On allocation failure the text is dropped. */
void tern_xml_add_text(tern_xml_t *parent, const char *text, size_t len)
{
    if (!parent || !parent->name || !text || len == 0 || refused(parent, CALL_ADD_TEXT))
        return;
    rest_drop(parent);
    text_new(parent->arena, parent, text, len);
}

static tern_xml_attr_t *find_attr(const tern_xml_t *node, const char *name)
{
    for (tern_xml_attr_t *a = node->attrs; a; a = a->next)
        if (name_eq(a->name, name))
            return a;
    return NULL;
}

/* Append an attribute (strings copied unless `shared`); order is kept. */
static tern_xml_attr_t *attr_append(tern_xml_t *node, const char *name, const char *value,
                                    int shared)
{
    struct tern_xml_arena *a = node->arena;
    tern_xml_attr_t *at = arena_alloc(a, sizeof(*at), alignof(tern_xml_attr_t));
    if (!at)
        return NULL;
    at->name = arena_str(a, name, shared);
    at->value = arena_str(a, value, shared);
    at->next = NULL;
    if (!at->name || !at->value)
        return NULL;
    tern_xml_attr_t **tail = &node->attrs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = at;
    return at;
}

/* xml_stream.h: append an attribute that `node` does not have yet, the
 * lengths of both strings known (the parser: expat refuses duplicate
 * names).  The attribute and its strings take one piece of the arena. */
int xml_attr_append(tern_xml_t *node, const char *name, size_t name_len, const char *value,
                    size_t value_len)
{
    if (name_len > SIZE_MAX / 2 - sizeof(tern_xml_attr_t) || value_len > SIZE_MAX / 2)
        return -1;
    tern_xml_attr_t *at =
        arena_alloc(node->arena, sizeof(*at) + name_len + value_len + 2, alignof(tern_xml_attr_t));
    if (!at)
        return -1;
    char *w = (char *)(at + 1);
    memcpy(w, name, name_len);
    w[name_len] = '\0';
    at->name = w;
    w += name_len + 1;
    memcpy(w, value, value_len);
    w[value_len] = '\0';
    at->value = w;
    at->next = NULL;
    tern_xml_attr_t **tail = &node->attrs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = at;
    return 0;
}

/* Replace the value of an attribute of the same name, or append one.
 * A NULL value deletes the attribute.  On allocation failure the node is
 * left unchanged. */
void tern_xml_set_attr(tern_xml_t *node, const char *name, const char *value)
{
    if (!node || !node->name || !name || refused(node, CALL_SET_ATTR))
        return;
    if (node->parent)
        rest_drop(node);
    if (!value) {
        tern_xml_del_attr(node, name);
        return;
    }
    tern_xml_attr_t *at = find_attr(node, name);
    if (!at) {
        attr_append(node, name, value, 0);
        return;
    }
    const char *v = arena_strndup(node->arena, value, strlen(value));
    if (v)
        at->value = v;
}

void tern_xml_del_attr(tern_xml_t *node, const char *name)
{
    if (!node || !name || refused(node, CALL_DEL_ATTR))
        return;
    if (node->parent)
        rest_drop(node);
    for (tern_xml_attr_t **p = &node->attrs; *p; p = &(*p)->next) {
        if (strcmp((*p)->name, name) == 0) {
            *p = (*p)->next;
            return;
        }
    }
}

void tern_xml_unlink(tern_xml_t *child)
{
    if (!child || !child->parent || refused(child, CALL_UNLINK))
        return;
    rest_drop(child);
    tern_xml_t *parent = child->parent, *prev = NULL;
    for (tern_xml_t *c = parent->children; c && c != child; c = c->next)
        prev = c;
    if (prev)
        prev->next = child->next;
    else if (parent->children == child)
        parent->children = child->next;
    else
        return; /* not found: inconsistent tree, leave it alone */
    if (parent->last_child == child)
        parent->last_child = prev;
    child->parent = NULL;
    child->next = NULL;
}

/* ---- copies --------------------------------------------------------- */

/* Copy one node (element with its attributes, or text) without its
 * children into arena `a`, appended to `parent` when not NULL.  `shared`:
 * `src` lives in `a`, so its strings can be shared. */
static tern_xml_t *clone_node(struct tern_xml_arena *a, tern_xml_t *parent, const tern_xml_t *src,
                              int shared)
{
    if (!src->name)
        return text_new(a, parent, src->text ? src->text : "", src->text ? src->text_len : 0);
    /* Build detached, then attach, so a failure leaves `parent` as it was. */
    tern_xml_t *n = element_new(a, NULL, src->name, src->ns, shared);
    if (!n)
        return NULL;
    if (parent && streq(n->ns, parent->ns))
        n->ns = parent->ns;
    for (const tern_xml_attr_t *at = src->attrs; at; at = at->next)
        if (!attr_append(n, at->name, at->value ? at->value : "", shared))
            return NULL;
    if (parent)
        append_child(parent, n);
    return n;
}

/* Deep copy of `src` into arena `a` (iterative pre-order walk).  Returns
 * the copy, or NULL after detaching any partial copy from `parent`. */
static tern_xml_t *clone_tree(struct tern_xml_arena *a, tern_xml_t *parent, const tern_xml_t *src,
                              int shared)
{
    tern_xml_t *root = clone_node(a, parent, src, shared);
    if (!root)
        return NULL;
    const tern_xml_t *s = src;
    tern_xml_t *d = root;
    for (;;) {
        if (s->name && s->children) {
            s = s->children;
            d = clone_node(a, d, s, shared);
        } else {
            while (s != src && !s->next) {
                s = xml_parent_in(s, src);
                d = d->parent;
            }
            if (s == src)
                return root;
            s = s->next;
            d = clone_node(a, d->parent, s, shared);
        }
        if (!d)
            break;
    }
    tern_xml_unlink(root);
    return NULL;
}

static int is_ancestor_or_self(const tern_xml_t *anc, const tern_xml_t *node)
{
    for (; node; node = node->parent)
        if (node == anc)
            return 1;
    return 0;
}

tern_xml_t *tern_xml_copy_into(tern_xml_t *parent, const tern_xml_t *src)
{
    if (!parent || !parent->name || !src || refused(parent, CALL_COPY_INTO))
        return NULL;
    rest_drop(parent);
    if (is_ancestor_or_self(src, parent)) {
        /* Copying a tree into itself would walk the nodes it is adding:
         * take a snapshot first. */
        tern_xml_t *tmp = tern_xml_copy(src);
        if (!tmp)
            return NULL;
        tern_xml_t *r = clone_tree(parent->arena, parent, tmp, 0);
        tern_xml_unref(tmp);
        return r;
    }
    return clone_tree(parent->arena, parent, src, src->arena == parent->arena);
}

/* About the arena bytes a copy of `src` takes (a little more, for
 * alignment): copies kept for long, such as a session's last presence,
 * then hold no unused first chunk. */
static size_t copy_size(const tern_xml_t *src)
{
    const size_t pad = alignof(max_align_t);
    size_t n = 0;
    const tern_xml_t *s = src;
    for (;;) {
        n += sizeof(tern_xml_t) + pad;
        if (s->name) {
            n += strlen(s->name) + (s->ns ? strlen(s->ns) : 0) + 2 + pad;
            for (const tern_xml_attr_t *at = s->attrs; at; at = at->next)
                n += sizeof(*at) + strlen(at->name) + strlen(at->value) + 2 + 2 * pad;
        } else {
            n += s->text_len + 1;
        }
        if (s->name && s->children) {
            s = s->children;
            continue;
        }
        while (s != src && !s->next)
            s = xml_parent_in(s, src);
        if (s == src)
            return n;
        s = s->next;
    }
}

tern_xml_t *tern_xml_copy(const tern_xml_t *src)
{
    if (!src)
        return NULL;
    size_t size = copy_size(src);
    struct tern_xml_arena *a = arena_new_sized(size < ARENA_FIRST_CHUNK ? size : ARENA_FIRST_CHUNK);
    if (!a)
        return NULL;
    tern_xml_t *r = clone_tree(a, NULL, src, 0);
    if (!r)
        arena_free(a);
    return r;
}

tern_xml_t *xml_fanout_view(const tern_xml_t *tmpl, const char *to)
{
    if (!tmpl || !tmpl->name || tmpl->parent || !tmpl->arena->frozen || tmpl->arena->view_of || !to)
        return NULL;
    struct tern_xml_arena *a = arena_new_sized(256);
    if (!a)
        return NULL;
    a->base = tmpl->arena;
    a->base->refs++;
    a->view_of = tmpl;
    tern_xml_t *v = node_alloc(a);
    if (!v) {
        arena_free(a);
        return NULL;
    }
    /* The template's strings live as long as its arena, which this one
     * holds: shared, not copied. */
    v->name = tmpl->name;
    v->ns = tmpl->ns;
    for (const tern_xml_attr_t *at = tmpl->attrs; at; at = at->next) {
        if (strcmp(at->name, "to") != 0 && !attr_append(v, at->name, at->value, 1)) {
            arena_free(a);
            return NULL;
        }
    }
    if (!attr_append(v, "to", to, 0)) {
        arena_free(a);
        return NULL;
    }
    v->children = tmpl->children;
    v->last_child = tmpl->last_child;
    a->frozen = 1;
    return v;
}

char *tern_xml_strdup(tern_xml_t *node, const char *s)
{
    if (!node || !s)
        return NULL;
    return arena_strndup(node->arena, s, strlen(s));
}

/* ---- reading -------------------------------------------------------- */

const char *tern_xml_attr(const tern_xml_t *node, const char *name)
{
    if (!node || !name)
        return NULL;
    const tern_xml_attr_t *at = find_attr(node, name);
    return at ? at->value : NULL;
}

int tern_xml_is(const tern_xml_t *node, const char *name, const char *ns)
{
    return node && node->name && (!name || strcmp(node->name, name) == 0) &&
           (!ns || streq(node->ns, ns));
}

tern_xml_t *tern_xml_child(const tern_xml_t *node, const char *name, const char *ns)
{
    if (!node)
        return NULL;
    for (tern_xml_t *c = node->children; c; c = c->next)
        if (tern_xml_is(c, name, ns))
            return c;
    return NULL;
}

tern_xml_t *tern_xml_first_element(const tern_xml_t *node)
{
    return tern_xml_child(node, NULL, NULL);
}

tern_xml_t *tern_xml_next_element(const tern_xml_t *node)
{
    if (!node)
        return NULL;
    for (tern_xml_t *c = node->next; c; c = c->next)
        if (c->name)
            return c;
    return NULL;
}

/* A single text child is returned as is (text nodes are stored
 * NUL-terminated); several are joined into a new arena string.  A text
 * node given as `node` returns its own content.  "" when there is none or
 * on allocation failure. */
const char *tern_xml_text(tern_xml_t *node)
{
    if (!node)
        return "";
    if (!node->name)
        return node->text ? node->text : "";
    size_t total = 0, count = 0;
    const tern_xml_t *only = NULL;
    for (const tern_xml_t *c = node->children; c; c = c->next) {
        if (c->name || !c->text_len)
            continue;
        if (c->text_len > SIZE_MAX - 1 - total)
            return "";
        total += c->text_len;
        count++;
        only = c;
    }
    if (count == 0)
        return "";
    if (count == 1)
        return only->text;
    char *out = arena_alloc(node->arena, total + 1, 1);
    if (!out)
        return "";
    char *p = out;
    for (const tern_xml_t *c = node->children; c; c = c->next) {
        if (!c->name && c->text_len) {
            memcpy(p, c->text, c->text_len);
            p += c->text_len;
        }
    }
    *p = '\0';
    return out;
}
