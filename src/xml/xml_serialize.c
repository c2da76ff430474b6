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
 * Characters that XML 1.0 cannot carry at all (C0 controls other than tab,
 * LF and CR; XML 1.0 §2.2) are dropped rather than sent, since a single one
 * would make the peer close the stream as not-well-formed.
 */
#include "xml/xml_stream.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum escape_mode { ESC_TEXT, ESC_ATTR };

static int streq(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

static int put(struct evbuffer *out, const char *s)
{
    return evbuffer_add(out, s, strlen(s));
}

/* `a` then `b` then `c` (each may be ""): cheaper than a format string on
 * the path every routed stanza takes. */
static int put3(struct evbuffer *out, const char *a, const char *b, const char *c)
{
    return put(out, a) < 0 || put(out, b) < 0 || put(out, c) < 0 ? -1 : 0;
}

/* Replacement for byte `c`: an entity, "" to drop it, or NULL to copy it.
 * Text escapes & < > (and CR, which a parser would turn into LF);
 * attribute values also escape both quotes and the whitespace that
 * attribute-value normalisation would change (XML 1.0 §3.3.3). */
static const char *escape_of(unsigned char c, enum escape_mode mode)
{
    switch (c) {
    case '&':
        return "&amp;";
    case '<':
        return "&lt;";
    case '>':
        return "&gt;";
    case '\r':
        return "&#13;";
    case '"':
        return mode == ESC_ATTR ? "&quot;" : NULL;
    case '\'':
        return mode == ESC_ATTR ? "&apos;" : NULL;
    case '\t':
        return mode == ESC_ATTR ? "&#9;" : NULL;
    case '\n':
        return mode == ESC_ATTR ? "&#10;" : NULL;
    default:
        return c < 0x20 ? "" : NULL;
    }
}

/* Append `len` bytes of `s`, escaped for `mode`; unchanged runs are
 * copied in one piece. */
static int escape(const char *s, size_t len, enum escape_mode mode, struct evbuffer *out)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        const char *rep = escape_of((unsigned char)s[i], mode);
        if (!rep)
            continue;
        if (i > run && evbuffer_add(out, s + run, i - run) < 0)
            return -1;
        if (put(out, rep) < 0)
            return -1;
        run = i + 1;
    }
    if (len > run && evbuffer_add(out, s + run, len - run) < 0)
        return -1;
    return 0;
}

/* Safe for both element content and attribute values: escapes all five
 * of & < > " ' (XML 1.0 §2.4). */
int xml_escape(const char *s, size_t len, struct evbuffer *out)
{
    if (!s || !out)
        return -1;
    return escape(s, len, ESC_ATTR, out);
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
static int write_attr(const tern_xml_attr_t *attrs, unsigned pos, const tern_xml_attr_t *a,
                      struct evbuffer *out)
{
    const char *ns = NULL;
    size_t ns_len = 0;
    const char *local = split_attr_name(a->name, &ns, &ns_len);
    char prefix[16];
    int r = 0;

    if (!local || ns_len == 0) {
        r = put3(out, " ", local ? local : a->name, "='");
    } else if (ns_len == strlen(TERN_NS_XML) && memcmp(ns, TERN_NS_XML, ns_len) == 0) {
        r = put3(out, " xml:", local, "='");
    } else {
        unsigned idx = prefix_index(attrs, ns, ns_len);
        snprintf(prefix, sizeof(prefix), "ns%u", idx);
        if (idx == pos) {
            r = put3(out, " xmlns:", prefix, "='");
            if (r >= 0 && (escape(ns, ns_len, ESC_ATTR, out) < 0 || put(out, "'") < 0))
                return -1;
        }
        if (r >= 0)
            r = put3(out, " ", prefix, ":") < 0 ? -1 : put3(out, local, "='", "");
    }
    if (r < 0)
        return -1;
    const char *v = a->value ? a->value : "";
    if (escape(v, strlen(v), ESC_ATTR, out) < 0 || put(out, "'") < 0)
        return -1;
    return 0;
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
    return !streq(n->ns, stream_ns) && !streq(n->ns, TERN_NS_CLIENT);
}

/* Start tag of `n`, or the whole element when it has no children. */
static int write_open(const tern_xml_t *n, const tern_xml_t *top, const char *stream_ns,
                      struct evbuffer *out)
{
    if (put3(out, "<", n->name, "") < 0)
        return -1;
    if (needs_xmlns(n, top, stream_ns)) {
        const char *ns = n->ns ? n->ns : "";
        if (put(out, " xmlns='") < 0 || escape(ns, strlen(ns), ESC_ATTR, out) < 0 ||
            put(out, "'") < 0)
            return -1;
    }
    unsigned pos = 0;
    for (const tern_xml_attr_t *a = n->attrs; a; a = a->next, pos++)
        if (write_attr(n->attrs, pos, a, out) < 0)
            return -1;
    return put(out, n->children ? ">" : "/>");
}

static int write_close(const tern_xml_t *n, struct evbuffer *out)
{
    return put3(out, "</", n->name, ">");
}

/* A text node or an element's start tag. */
static int write_node(const tern_xml_t *n, const tern_xml_t *top, const char *stream_ns,
                      struct evbuffer *out)
{
    if (!n->name)
        return n->text ? escape(n->text, n->text_len, ESC_TEXT, out) : 0;
    return write_open(n, top, stream_ns, out);
}

/* Iterative pre-order walk: start tags on the way down, end tags on the
 * way up, so that tree depth never becomes C stack depth. */
int xml_serialize(const tern_xml_t *node, const char *stream_ns, struct evbuffer *out)
{
    if (!node || !out)
        return -1;
    const tern_xml_t *n = node;
    for (;;) {
        if (write_node(n, node, stream_ns, out) < 0)
            return -1;
        if (n->name && n->children) {
            n = n->children;
            continue;
        }
        while (n != node && !n->next) {
            n = n->parent;
            if (write_close(n, out) < 0)
                return -1;
        }
        if (n == node)
            return 0;
        n = n->next;
    }
}

/* Standalone form: no stream context, so the top element declares its
 * namespace (jabber:client included). */
char *tern_xml_to_string(const tern_xml_t *node, size_t *len_r)
{
    struct evbuffer *buf = evbuffer_new();
    if (!buf)
        return NULL;
    char *s = NULL;
    if (xml_serialize(node, NULL, buf) == 0) {
        size_t len = evbuffer_get_length(buf);
        s = malloc(len + 1);
        if (s) {
            if (len)
                evbuffer_copyout(buf, s, len);
            s[len] = '\0';
            if (len_r)
                *len_r = len;
        }
    }
    evbuffer_free(buf);
    return s;
}
