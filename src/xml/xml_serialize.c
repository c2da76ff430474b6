/*
 * xml_serialize.c — writing stanza trees as XML text.
 *
 * Owns xml_serialize(), xml_escape() and tern_xml_to_string().  Output is
 * compact (no added whitespace), attribute values are single-quoted, and
 * elements are always written unprefixed with a default namespace
 * declaration (xmlns='...') wherever their namespace differs from the one
 * in effect.  Namespaced attributes ("{ns}local" in the tree) get a
 * generated prefix declared on the same element.
 *
 * Everything is written into one flat buffer and handed to the output in
 * one piece.  A frozen root (tern_xml_freeze) keeps those bytes: further
 * writes of the same stanza, to any number of sessions, add the same
 * bytes (serialize once, share the bytes).  A fan-out copy
 * (tern_route_fanout) writes only its start tag and shares the rest.
 *
 * Characters that XML 1.0 cannot carry at all (C0 controls other than tab,
 * LF and CR; XML 1.0 §2.2) are dropped rather than sent, since a single one
 * would make the peer close the stream as not-well-formed.
 */
#include "xml/xml_stream.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Serialized stanzas below this size are copied into the output buffer;
 * larger ones are added by reference (see the measurement above
 * add_bytes()). */
#define COPY_BELOW 512

static xml_serialize_stats_t stats;

void xml_serialize_stats(xml_serialize_stats_t *out)
{
    *out = stats;
}

/* A growable flat buffer; `failed` once an allocation failed.  Most
 * stanzas fit the inline part, so writing one allocates nothing. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
    char inline_buf[512];
} sbuf_t;

static void sb_init(sbuf_t *b)
{
    b->p = b->inline_buf;
    b->len = 0;
    b->cap = sizeof(b->inline_buf);
    b->failed = 0;
}

static void sb_free(sbuf_t *b)
{
    if (b->p != b->inline_buf)
        free(b->p);
}

/* Room for `more` bytes after the current end; -1 (and `failed`) when
 * there is none and no memory for it. */
static int sb_grow(sbuf_t *b, size_t more)
{
    if (b->failed)
        return -1;
    if (more > SIZE_MAX / 2 - b->len) {
        b->failed = 1;
        return -1;
    }
    size_t cap = b->cap * 2;
    while (cap < b->len + more)
        cap *= 2;
    char *p = b->p == b->inline_buf ? malloc(cap) : realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    if (b->p == b->inline_buf)
        memcpy(p, b->inline_buf, b->len);
    b->p = p;
    b->cap = cap;
    return 0;
}

static inline void sb_add(sbuf_t *b, const char *s, size_t n)
{
    if (n > b->cap - b->len && sb_grow(b, n) < 0)
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static inline void sb_byte(sbuf_t *b, char c)
{
    if (b->len == b->cap && sb_grow(b, 1) < 0)
        return;
    b->p[b->len++] = c;
}

/* A string literal, its length known at compile time. */
#define PUT_LIT(out, lit) sb_add((out), (lit), sizeof(lit) - 1)

/* A NUL-terminated name (element, attribute, prefix): short, so copied
 * byte by byte rather than measured first. */
static inline void put_name(sbuf_t *b, const char *s)
{
    /* Locals: stores through `p` could otherwise alias `b`'s fields. */
    char *p = b->p;
    size_t len = b->len, cap = b->cap;
    for (; *s; s++) {
        if (len == cap) {
            b->len = len;
            if (sb_grow(b, 1) < 0)
                return;
            p = b->p;
            cap = b->cap;
        }
        p[len++] = *s;
    }
    b->len = len;
}

/* ---- escaping ----------------------------------------------------------
 *
 * One table per mode gives each byte its class: 0 for bytes copied as
 * they are (most of them), else the index of its replacement below.
 * Text escapes & < > (and CR, which a parser would turn into LF);
 * attribute values also escape both quotes and the whitespace that
 * attribute-value normalisation would change (XML 1.0 §3.3.3).  The C0
 * controls that XML 1.0 cannot carry are dropped (replacement ""). */
enum { E_COPY, E_AMP, E_LT, E_GT, E_CR, E_QUOT, E_APOS, E_TAB, E_LF, E_DROP };

static const struct {
    const char *s;
    size_t len;
} replacement[] = {
    [E_COPY] = {"", 0},       [E_AMP] = {"&amp;", 5}, [E_LT] = {"&lt;", 4},
    [E_GT] = {"&gt;", 4},     [E_CR] = {"&#13;", 5},  [E_QUOT] = {"&quot;", 6},
    [E_APOS] = {"&apos;", 6}, [E_TAB] = {"&#9;", 4},  [E_LF] = {"&#10;", 5},
    [E_DROP] = {"", 0},
};

#define C0_DROPPED                                                                                 \
    [0x00] = E_DROP, [0x01] = E_DROP, [0x02] = E_DROP, [0x03] = E_DROP, [0x04] = E_DROP,           \
    [0x05] = E_DROP, [0x06] = E_DROP, [0x07] = E_DROP, [0x08] = E_DROP, [0x0b] = E_DROP,           \
    [0x0c] = E_DROP, [0x0e] = E_DROP, [0x0f] = E_DROP, [0x10] = E_DROP, [0x11] = E_DROP,           \
    [0x12] = E_DROP, [0x13] = E_DROP, [0x14] = E_DROP, [0x15] = E_DROP, [0x16] = E_DROP,           \
    [0x17] = E_DROP, [0x18] = E_DROP, [0x19] = E_DROP, [0x1a] = E_DROP, [0x1b] = E_DROP,           \
    [0x1c] = E_DROP, [0x1d] = E_DROP, [0x1e] = E_DROP, [0x1f] = E_DROP

static const unsigned char esc_text[256] = {
    C0_DROPPED, ['&'] = E_AMP, ['<'] = E_LT, ['>'] = E_GT, ['\r'] = E_CR,
};

static const unsigned char esc_attr[256] = {
    C0_DROPPED,     ['&'] = E_AMP,   ['<'] = E_LT,   ['>'] = E_GT,  ['\r'] = E_CR,
    ['"'] = E_QUOT, ['\''] = E_APOS, ['\t'] = E_TAB, ['\n'] = E_LF,
};

/* Append `len` bytes of `s`, escaped with table `tab`: runs of bytes that
 * need nothing are copied in one piece. */
static void escape(const char *s, size_t len, const unsigned char *tab, sbuf_t *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    for (;;) {
        size_t run = i;
        /* Four bytes a step while none of them needs anything. */
        while (len - i >= 4 && !(tab[u[i]] | tab[u[i + 1]] | tab[u[i + 2]] | tab[u[i + 3]]))
            i += 4;
        while (i < len && !tab[u[i]])
            i++;
        if (i > run)
            sb_add(out, s + run, i - run);
        if (i == len)
            return;
        unsigned char c = tab[(unsigned char)s[i++]];
        if (replacement[c].len)
            sb_add(out, replacement[c].s, replacement[c].len);
    }
}

/* The same for the NUL-terminated `s` (an attribute value), in one pass:
 * the NUL is one of the bytes the table stops at. */
static void escape_str(const char *s, const unsigned char *tab, sbuf_t *out)
{
    for (;;) {
        const char *run = s;
        /* Unrolled; each byte is tested before the next is read, so the
         * scan never reads past the NUL. */
        for (;;) {
            if (tab[(unsigned char)s[0]])
                break;
            if (tab[(unsigned char)s[1]]) {
                s += 1;
                break;
            }
            if (tab[(unsigned char)s[2]]) {
                s += 2;
                break;
            }
            if (tab[(unsigned char)s[3]]) {
                s += 3;
                break;
            }
            s += 4;
        }
        if (s > run)
            sb_add(out, run, (size_t)(s - run));
        if (!*s)
            return;
        unsigned char c = tab[(unsigned char)*s++];
        if (replacement[c].len)
            sb_add(out, replacement[c].s, replacement[c].len);
    }
}

/* Safe for both element content and attribute values: escapes all five
 * of & < > " ' (XML 1.0 §2.4). */
int xml_escape(const char *s, size_t len, struct evbuffer *out)
{
    if (!s || !out)
        return -1;
    sbuf_t b;
    sb_init(&b);
    escape(s, len, esc_attr, &b);
    int rc = b.failed || evbuffer_add(out, b.p, b.len) < 0 ? -1 : 0;
    sb_free(&b);
    return rc;
}

/* Split an attribute name "{ns}local" into its namespace (`ns`, `ns_len`)
 * and local part.  Returns the local part, or NULL for a plain name. */
static const char *split_attr_name(const char *name, const char **ns, size_t *ns_len)
{
    if (name[0] != '{')
        return NULL;
    const char *close = strchr(name + 1, '}');
    if (!close || !close[1])
        return NULL;
    *ns = name + 1;
    *ns_len = (size_t)(close - name - 1);
    return close + 1;
}

/* Position in `attrs` of the first attribute whose namespace is `ns`:
 * the number of its generated prefix "nsN". */
static unsigned prefix_index(const tern_xml_attr_t *attrs, const char *ns, size_t ns_len)
{
    unsigned i = 0;
    for (const tern_xml_attr_t *a = attrs; a; a = a->next, i++) {
        const char *ans;
        size_t alen;
        if (split_attr_name(a->name, &ans, &alen) && alen == ns_len && memcmp(ans, ns, ns_len) == 0)
            break;
    }
    return i;
}

/* One attribute, with a prefix declaration before the first attribute of
 * each namespace.  The xml: prefix is predeclared and must not be bound
 * to anything else (Namespaces in XML 1.0 §3). */
static void write_attr(const tern_xml_attr_t *attrs, unsigned pos, const tern_xml_attr_t *a,
                       sbuf_t *out)
{
    sb_byte(out, ' ');
    if (a->name[0] != '{') {
        put_name(out, a->name);
    } else {
        const char *ns = NULL;
        size_t ns_len = 0;
        const char *local = split_attr_name(a->name, &ns, &ns_len);
        if (!local || ns_len == 0) {
            put_name(out, local ? local : a->name);
        } else if (ns_len == sizeof(TERN_NS_XML) - 1 && memcmp(ns, TERN_NS_XML, ns_len) == 0) {
            PUT_LIT(out, "xml:");
            put_name(out, local);
        } else {
            char prefix[16];
            unsigned idx = prefix_index(attrs, ns, ns_len);
            snprintf(prefix, sizeof(prefix), "ns%u", idx);
            if (idx == pos) {
                PUT_LIT(out, "xmlns:");
                put_name(out, prefix);
                PUT_LIT(out, "='");
                escape(ns, ns_len, esc_attr, out);
                PUT_LIT(out, "' ");
            }
            put_name(out, prefix);
            sb_byte(out, ':');
            put_name(out, local);
        }
    }
    PUT_LIT(out, "='");
    escape_str(a->value ? a->value : "", esc_attr, out);
    sb_byte(out, '\'');
}

/* Namespace strings compare by pointer first: the parser and the tree
 * share one string for the usual ones (xml_ns_intern). */
static int streq(const char *a, const char *b)
{
    if (a == b)
        return 1;
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Whether element `n` needs an xmlns attribute.  Below the top it needs
 * one when its namespace differs from its parent's.  At the top the
 * stream's content namespace is in effect, and TERN_NS_CLIENT elements
 * are written in it (RFC 6120 §4.8.3); with no stream (`stream_ns` NULL)
 * only the empty namespace is in effect. */
static int needs_xmlns(const tern_xml_t *n, const tern_xml_t *top, const char *stream_ns)
{
    if (n != top)
        return !streq(n->ns, n->parent->ns);
    if (!stream_ns)
        return !streq(n->ns, "");
    if (n->ns == xml_ns_client)
        return 0;
    return !streq(n->ns, stream_ns) && !streq(n->ns, TERN_NS_CLIENT);
}

/* Start tag of `n`, or the whole element when it has no children. */
static void write_open(const tern_xml_t *n, const tern_xml_t *top, const char *stream_ns,
                       sbuf_t *out)
{
    sb_byte(out, '<');
    put_name(out, n->name);
    if (needs_xmlns(n, top, stream_ns)) {
        PUT_LIT(out, " xmlns='");
        escape_str(n->ns ? n->ns : "", esc_attr, out);
        sb_byte(out, '\'');
    }
    unsigned pos = 0;
    for (const tern_xml_attr_t *a = n->attrs; a; a = a->next, pos++)
        write_attr(n->attrs, pos, a, out);
    if (n->children)
        sb_byte(out, '>');
    else
        PUT_LIT(out, "/>");
}

/* A text node or an element's start tag. */
static void write_node(const tern_xml_t *n, const tern_xml_t *top, const char *stream_ns,
                       sbuf_t *out)
{
    if (!n->name) {
        if (n->text)
            escape(n->text, n->text_len, esc_text, out);
        return;
    }
    write_open(n, top, stream_ns, out);
}

/* Iterative pre-order walk: start tags on the way down, end tags on the
 * way up, so that tree depth never becomes C stack depth.  `head_r`, when
 * not NULL, gets the length of the top element's start tag. */
static void write_tree(const tern_xml_t *node, const char *stream_ns, sbuf_t *out, size_t *head_r)
{
    const tern_xml_t *n = node;
    for (;;) {
        write_node(n, node, stream_ns, out);
        if (n == node && head_r)
            *head_r = out->len;
        if (n->name && n->children) {
            n = n->children;
            continue;
        }
        while (n != node && !n->next) {
            n = xml_parent_in(n, node);
            PUT_LIT(out, "</");
            put_name(out, n->name);
            sb_byte(out, '>');
        }
        if (n == node)
            return;
        n = n->next;
    }
}

/* ---- shared bytes ------------------------------------------------------- */

static xml_bytes_t *bytes_new(size_t len)
{
    if (len > SIZE_MAX - sizeof(xml_bytes_t))
        return NULL;
    xml_bytes_t *b = malloc(sizeof(*b) + len);
    if (b) {
        b->refs = 1;
        b->len = len;
    }
    return b;
}

/* Bytes in a tree's arena (XML_BYTES_IN_ARENA) live as long as the tree:
 * references on them count nothing. */
xml_bytes_t *xml_bytes_ref(xml_bytes_t *b)
{
    if (b && b->refs != XML_BYTES_IN_ARENA)
        b->refs++;
    return b;
}

void xml_bytes_unref(xml_bytes_t *b)
{
    if (b && b->refs != XML_BYTES_IN_ARENA && --b->refs == 0)
        free(b);
}

static void unref_cleanup(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    xml_bytes_unref(arg);
}

/* Add shared bytes to an output buffer.  Measured with callgrind
 * (libevent 2.1, -O2; four stanzas queued, then drained as a socket write
 * does): evbuffer_add of a copy costs about 190 instructions for a
 * 200-byte stanza, 450 for 1 000 bytes and 960 for 4 000, while
 * evbuffer_add_reference costs about 340 whatever the size (a chain and
 * a cleanup call per stanza).  So small stanzas, most presence and chat,
 * are copied; larger ones are shared, which also keeps one copy in
 * memory however many sessions queue them. */
static int add_bytes(struct evbuffer *out, xml_bytes_t *b)
{
    if (b->len < COPY_BELOW)
        return evbuffer_add(out, b->data, b->len);
    xml_bytes_ref(b);
    if (evbuffer_add_reference(out, b->data, b->len, unref_cleanup, b) < 0) {
        xml_bytes_unref(b);
        return -1;
    }
    return 0;
}

/* The bytes of a frozen root for `stream_ns`: cached ones, or new ones
 * (the whole tree, or a fan-out copy's start tag + its shared rest), kept
 * in the cache while it has a free slot.  New reference; NULL on
 * allocation failure. */
static xml_bytes_t *frozen_bytes(tern_xml_t *root, const char *stream_ns)
{
    xml_bytes_t *b = xml_cache_get(root, stream_ns);
    if (b) {
        stats.reused++;
        return xml_bytes_ref(b);
    }
    xml_bytes_t *rest = xml_rest_get(root);
    sbuf_t sb;
    sb_init(&sb);
    if (rest) {
        /* A fan-out copy's shared bytes, or a received stanza's own
         * (xml_stream.c, "Received bytes": those live in its arena). */
        write_open(root, root, stream_ns, &sb);
        stats.heads++;
        if (rest->refs == XML_BYTES_IN_ARENA)
            stats.received++;
    } else {
        write_tree(root, stream_ns, &sb, NULL);
        stats.full++;
    }
    size_t rest_len = rest ? rest->len : 0;
    if (!sb.failed && (b = bytes_new(sb.len + rest_len)) != NULL) {
        memcpy(b->data, sb.p, sb.len);
        if (rest_len)
            memcpy(b->data + sb.len, rest->data, rest_len);
        xml_cache_put(root, stream_ns, b);
    }
    sb_free(&sb);
    return b;
}

xml_bytes_t *xml_serialize_rest(const tern_xml_t *tmpl)
{
    sbuf_t sb;
    sb_init(&sb);
    size_t head = 0;
    write_tree(tmpl, TERN_NS_CLIENT, &sb, &head);
    stats.full++;
    xml_bytes_t *b = NULL;
    if (!sb.failed && (b = bytes_new(sb.len - head)) != NULL)
        memcpy(b->data, sb.p + head, sb.len - head);
    sb_free(&sb);
    return b;
}

/* A frozen root goes out as shared bytes; anything else (a tree still
 * being built, or a part of a tree) is written afresh in one piece. */
int xml_serialize(const tern_xml_t *node, const char *stream_ns, struct evbuffer *out)
{
    if (!node || !out)
        return -1;
    if (!node->parent && tern_xml_frozen(node)) {
        /* Only the arena's cache slots change: the tree itself does not. */
        xml_bytes_t *b = frozen_bytes((tern_xml_t *)node, stream_ns);
        int rc = b ? add_bytes(out, b) : -1;
        xml_bytes_unref(b);
        return rc;
    }
    sbuf_t sb;
    sb_init(&sb);
    write_tree(node, stream_ns, &sb, NULL);
    stats.full++;
    int rc = sb.failed || evbuffer_add(out, sb.p, sb.len) < 0 ? -1 : 0;
    sb_free(&sb);
    return rc;
}

/* Standalone form: no stream context, so the top element declares its
 * namespace (jabber:client included).  Always written afresh. */
char *tern_xml_to_string(const tern_xml_t *node, size_t *len_r)
{
    if (!node)
        return NULL;
    sbuf_t sb;
    sb_init(&sb);
    write_tree(node, NULL, &sb, NULL);
    char *s = NULL;
    if (!sb.failed && (s = malloc(sb.len + 1)) != NULL) {
        memcpy(s, sb.p, sb.len);
        s[sb.len] = '\0';
        if (len_r)
            *len_r = sb.len;
    }
    sb_free(&sb);
    return s;
}
