/*
 * xml_stream.c — the incremental XMPP stream parser on expat.
 *
 * Owns struct xml_stream: one expat parser per stream document, the
 * stanza being built, and the byte accounting behind the limits.
 *
 * Levels: 0 = outside the stream root, 1 = inside <stream:stream> between
 * stanzas, 2 and more = inside a stanza (the stanza element is at depth 1
 * for max_depth).
 *
 * Size limit.  A "window" of input is open at any time: from the first
 * byte of the open stanza, or, between stanzas, from the end of the last
 * event at stream level (stream header, stanza end, whitespace).  A window
 * that grows past max_stanza_bytes is a policy-violation.  Input is handed
 * to expat in slices that end at most one byte past the current limit and
 * the window is checked after each slice, so a stanza (or a single token,
 * such as a start tag with an endless attribute) that never ends is cut
 * off after max_stanza_bytes + 1 bytes, at the same byte whatever way the
 * input was split.  Text and attributes are buffered only within the
 * window, so nothing oversize is ever built.
 *
 * Expat's reparse deferral (expat >= 2.6) is turned off: with it, a
 * complete stanza could wait inside expat for more input that a client
 * waiting for our answer never sends, and the byte accounting of
 * xml_stream_restart() assumes expat parses all it is given.  Without it,
 * expat re-scans an unfinished token from its start on every call, so a
 * tag trickled in a byte at a time would cost O(n^2).  A small scanner of
 * our own therefore holds back the unfinished tag or reference at the end
 * of the input ("held") until its closing '>' or ';' arrives, and expat
 * only ever sees whole tags: every byte is scanned a bounded number of
 * times.  Held bytes count against the size window like parsed ones.
 *
 * Idle streams.  xml_stream_park() frees the expat parser (several KiB)
 * when all input up to a stream-level event is parsed and no stanza is
 * open; the next input first replays the stream header's own bytes, kept
 * for that, into a new parser, so that the namespace prefixes it declared
 * still hold.  The owner parks a stream once it has been quiet for a
 * while (a busy stream would pay for a new parser on every stanza), so a
 * connection that waits between stanzas, which is most of them, keeps
 * only this struct and its header.
 *
 * Names.  Expat keeps every element name, attribute name and namespace
 * prefix it has seen until the parser is freed, so a busy stream that
 * keeps using new names would grow without end (about 7 bytes of memory
 * per byte of such input).  Every name comes from a start tag: once one
 * parser has read RECYCLE_TAG_BYTES of start tags, it is replaced at the
 * next stanza end by a new one that has replayed the stream header, as
 * when unparking; the bytes after that stanza go to the new parser.
 *
 * Received bytes.  A stanza that is only routed goes out as it came in,
 * but for its start tag, which the router changes ('from').  So the bytes
 * after the stanza's start tag, up to and including its end tag, are kept
 * in the tree (xml_rest_set) when they mean the same under any start tag
 * the serializer writes: the stanza is in the content namespace with no
 * prefix, and inside it no prefix is declared or used (but xml:), no
 * element is in the stream namespace and no element declares a content
 * namespace (jabber:client, jabber:server ...) as its default; and the
 * stream header declared no prefix but stream:.  The serializer then
 * writes the start tag and adds those bytes; any change to the tree but
 * its root's attributes drops them (xml_tree.c).  The bytes are taken
 * from the slice being parsed, and copied from earlier slices only when
 * a stanza spans several.
 *
 * tern_xml_parse(), at the end, reads one stored element back with the
 * same parser, so that stored trees read exactly as received ones.
 */
#include "xml/xml_stream.h"

#include <expat.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

/* Byte 0xFF never occurs in UTF-8, so it cannot be part of a namespace
 * URI or a name: it separates them unambiguously in expat's names. */
#define NS_SEP '\xFF'

#define DEFAULT_MAX_STANZA_BYTES (256 * 1024)
#define DEFAULT_MAX_DEPTH        64
#define DEFAULT_MAX_ATTRS        64

/* Bytes of start tags one parser may read before it is replaced by a new
 * one at the next stanza end (see the top of the file). */
#define RECYCLE_TAG_BYTES (64 * 1024)

/* Buffers larger than this are released between stanzas. */
#define KEEP_BUFFER (16 * 1024)

#define NS_STREAM_CONTENT_SERVER    "jabber:server"
#define NS_STREAM_CONTENT_COMPONENT "jabber:component:accept"
#define NS_STREAMS                  "http://etherx.jabber.org/streams"

struct xml_stream {
    XML_Parser p;
    xml_stream_callbacks_t cb;
    void *ctx;
    xml_stream_limits_t lim;

    /* Byte positions in the current document (expat's byte index). */
    uint64_t fed;          /* bytes handed to expat */
    uint64_t mark;         /* end of the last stream-level event */
    uint64_t stanza_start; /* first byte of the open stanza */
    uint64_t restart_at;   /* end of the event during which restart was asked */
    uint64_t tag_bytes;    /* bytes of start tags this parser has read */

    unsigned level;     /* open elements, see the top of the file */
    tern_xml_t *stanza; /* stanza being built (level >= 2) */
    tern_xml_t *cur;    /* innermost open element of it */
    size_t built;       /* bytes of names, attributes and text in it */

    char *text; /* character data not yet added to `cur` */
    size_t text_len, text_cap;
    char *scratch; /* NUL-terminated name pieces handed to the tree */
    size_t scratch_cap;

    char *header; /* the stream header's start tag as received, for replay */
    size_t header_len;

    /* Received bytes of the open stanza after its start tag (see "Received
     * bytes" at the top): the slice expat is parsing, and what earlier
     * slices held of the stanza. */
    const char *slice;
    uint64_t slice_base; /* document position of slice[0] */
    size_t slice_n;      /* bytes at slice */
    uint64_t raw_from;   /* document position of the first byte after the start tag */
    char *raw;
    size_t raw_len, raw_cap;
    bool raw_ok;        /* the open stanza's bytes may be reused so far */
    bool raw_bad;       /* a namespace declaration in this stanza forbids it */
    bool header_prefix; /* the stream header declared a prefix other than stream: */

    char *held; /* the start of an unfinished tag or reference (see feeding) */
    size_t held_len, held_cap;
    unsigned char lex; /* LEX_* state of the markup scanner after all input */

    bool in_feed, in_parse;
    bool replaying; /* parsing `header` into a new parser: no events */
    bool dead;      /* error reported or stopped: no more input */
    bool restart;   /* new document requested during this parse */
    bool recycle;   /* new parser for the same document requested */
    bool opened, closed;
};

/* ---- helpers -------------------------------------------------------- */

static bool halted(const xml_stream_t *s)
{
    return s->dead || s->restart;
}

/* Between stanzas: give back buffers that one big stanza grew, so that
 * an idle stream holds little memory. */
static void trim_buffers(xml_stream_t *s)
{
    if (s->text_cap > KEEP_BUFFER) {
        free(s->text);
        s->text = NULL;
        s->text_cap = 0;
    }
    if (s->scratch_cap > KEEP_BUFFER) {
        free(s->scratch);
        s->scratch = NULL;
        s->scratch_cap = 0;
    }
    if (s->raw_cap > KEEP_BUFFER) {
        free(s->raw);
        s->raw = NULL;
        s->raw_cap = 0;
    }
}

/* Drop the stanza being built and its pending text. */
static void drop_stanza(xml_stream_t *s)
{
    tern_xml_unref(s->stanza);
    s->stanza = s->cur = NULL;
    s->text_len = 0;
    s->built = 0;
    s->raw_ok = s->raw_bad = false;
    s->raw_len = 0;
    trim_buffers(s);
}

/* Parsing cannot go on: report `condition` once, stop expat if it is
 * running, and refuse further input. */
static void fail(xml_stream_t *s, const char *condition, const char *text)
{
    if (s->dead)
        return;
    s->dead = true;
    drop_stanza(s);
    if (s->in_parse)
        XML_StopParser(s->p, XML_FALSE);
    if (s->cb.on_error)
        s->cb.on_error(s->ctx, condition, text);
}

/* End of the current event, in document bytes (call from a handler). */
static uint64_t event_end(const xml_stream_t *s)
{
    XML_Index i = XML_GetCurrentByteIndex(s->p);
    int c = XML_GetCurrentByteCount(s->p);
    return (uint64_t)(i > 0 ? i : 0) + (uint64_t)(c > 0 ? c : 0);
}

/* First byte of the open window (see the top of the file). */
static uint64_t window_start(const xml_stream_t *s)
{
    return s->level >= 2 ? s->stanza_start : s->mark;
}

static const char *too_large_text(const xml_stream_t *s)
{
    return s->opened ? "stanza too large" : "stream header too large";
}

/* Whether the window up to `end` is within max_stanza_bytes; fails the
 * stream when not. */
static bool window_ok(xml_stream_t *s, uint64_t end)
{
    if (end - window_start(s) <= s->lim.max_stanza_bytes)
        return true;
    fail(s, "policy-violation", too_large_text(s));
    return false;
}

/* Account `n` more built bytes of the stanza against the same limit. */
static bool grow_ok(xml_stream_t *s, size_t n)
{
    if (n <= s->lim.max_stanza_bytes && s->built <= s->lim.max_stanza_bytes - n) {
        s->built += n;
        return true;
    }
    fail(s, "policy-violation", "stanza too large");
    return false;
}

/* Make room for `need` bytes in a buffer that grows by doubling. */
static bool reserve(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 128;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return false;
        n *= 2;
    }
    char *p = realloc(*buf, n);
    if (!p)
        return false;
    *buf = p;
    *cap = n;
    return true;
}

/* Join `n` pieces (none of them inside the scratch buffer) into the
 * scratch buffer as one NUL-terminated string. */
static const char *scratch_join(xml_stream_t *s, size_t n, const char *const *part,
                                const size_t *len)
{
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        if (len[i] > SIZE_MAX - total) {
            fail(s, "resource-constraint", "out of memory");
            return NULL;
        }
        total += len[i];
    }
    if (!reserve(&s->scratch, &s->scratch_cap, total)) {
        fail(s, "resource-constraint", "out of memory");
        return NULL;
    }
    char *p = s->scratch;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, part[i], len[i]);
        p += len[i];
    }
    *p = '\0';
    return s->scratch;
}

/* ---- names ---------------------------------------------------------- */

/* Split expat's "uri<SEP>local" into local part and URI length; a name
 * without namespace has uri_len 0 and is its own local part. */
static const char *split_name(const char *name, size_t *uri_len)
{
    const char *sep = strchr(name, (unsigned char)NS_SEP);
    if (!sep) {
        *uri_len = 0;
        return name;
    }
    *uri_len = (size_t)(sep - name);
    return sep + 1;
}

/* Namespace URI of an element as stored in the tree: the three stream
 * content namespaces all become TERN_NS_CLIENT (RFC 6120 §4.8.2,
 * XEP-0114).  Points into the scratch buffer or at a literal. */
static const char *element_ns(xml_stream_t *s, const char *name, size_t uri_len)
{
    static const char *const content[] = {TERN_NS_CLIENT, NS_STREAM_CONTENT_SERVER,
                                          NS_STREAM_CONTENT_COMPONENT};
    if (uri_len == 0)
        return "";
    for (size_t i = 0; i < sizeof(content) / sizeof(content[0]); i++)
        if (strlen(content[i]) == uri_len && memcmp(name, content[i], uri_len) == 0)
            return xml_ns_client;
    const char *part[] = {name};
    size_t len[] = {uri_len};
    return scratch_join(s, 1, part, len);
}

/* Attribute name as in tern_xml_attr_t: plain, "xml:local" for the XML
 * namespace, "{uri}local" otherwise. */
static const char *attr_name(xml_stream_t *s, const char *name)
{
    size_t uri_len;
    const char *local = split_name(name, &uri_len);
    if (uri_len == 0)
        return name;
    if (uri_len == strlen(TERN_NS_XML) && memcmp(name, TERN_NS_XML, uri_len) == 0) {
        const char *part[] = {"xml:", local};
        size_t len[] = {4, strlen(local)};
        return scratch_join(s, 2, part, len);
    }
    const char *part[] = {"{", name, "}", local};
    size_t len[] = {1, uri_len, 1, strlen(local)};
    return scratch_join(s, 4, part, len);
}

static unsigned count_attrs(const XML_Char **atts)
{
    unsigned n = 0;
    while (atts[2 * (size_t)n] && n < UINT_MAX)
        n++;
    return n;
}

/* Copy expat's attributes onto `node`, counting them against the size
 * limit when `counted`.  Names are unique (expat refuses duplicates), so
 * each is appended without looking for an earlier one. */
static bool add_attrs(xml_stream_t *s, tern_xml_t *node, const XML_Char **atts, bool counted)
{
    for (size_t i = 0; atts[i]; i += 2) {
        const char *name = attr_name(s, atts[i]);
        if (!name)
            return false;
        if (name[0] == '{')
            s->raw_ok = false; /* a prefixed name (see "Received bytes") */
        size_t name_len = strlen(name), value_len = strlen(atts[i + 1]);
        if (counted && !grow_ok(s, name_len + value_len))
            return false;
        if (xml_attr_append(node, name, name_len, atts[i + 1], value_len) < 0) {
            fail(s, "resource-constraint", "out of memory");
            return false;
        }
    }
    return true;
}

/* ---- building ------------------------------------------------------- */

/* Add the character data gathered since the last tag to the open element
 * as one text node, whatever the chunks expat delivered it in. */
static bool flush_text(xml_stream_t *s)
{
    if (!s->text_len || !s->cur)
        return true;
    tern_xml_add_text(s->cur, s->text, s->text_len);
    const tern_xml_t *t = s->cur->last_child;
    if (!t || t->name || t->text_len != s->text_len) {
        fail(s, "resource-constraint", "out of memory");
        return false;
    }
    s->text_len = 0;
    return true;
}

/* New element (`name` as from expat) under `parent`, or a new stanza root
 * when `parent` is NULL. */
static tern_xml_t *new_element(xml_stream_t *s, tern_xml_t *parent, const char *name)
{
    size_t uri_len;
    const char *local = split_name(name, &uri_len);
    size_t local_len = strlen(local);
    if (!grow_ok(s, local_len))
        return NULL;
    const char *ns = element_ns(s, name, uri_len);
    if (!ns)
        return NULL;
    tern_xml_t *n = xml_element_add(parent, local, local_len, ns);
    if (!n)
        fail(s, "resource-constraint", "out of memory");
    return n;
}

/* <stream:stream ...>: report it with its attributes.  The strings live
 * in a scratch tree that is released once on_open returns. */
static void open_stream(xml_stream_t *s, const char *name, const XML_Char **atts, unsigned nattrs)
{
    s->opened = true;
    s->level = 1;
    tern_xml_t *root = new_element(s, NULL, name);
    if (!root)
        return;
    const char **v = NULL;
    if (add_attrs(s, root, atts, false)) {
        v = calloc(2 * (size_t)nattrs + 1, sizeof(*v));
        if (!v)
            fail(s, "resource-constraint", "out of memory");
    }
    s->built = 0;
    if (v) {
        size_t i = 0;
        for (const tern_xml_attr_t *a = root->attrs; a; a = a->next) {
            v[i++] = a->name;
            v[i++] = a->value;
        }
        if (s->cb.on_open)
            s->cb.on_open(s->ctx, root->name, root->ns, v);
    }
    free(v);
    tern_xml_unref(root);
}

/* Keep the bytes of the stream header's start tag (the current event) for
 * replay after the parser is freed.  Without expat's context bytes the
 * stream simply keeps its parser. */
static void keep_header(xml_stream_t *s)
{
    int offset = 0, size = 0;
    const char *buf = XML_GetInputContext(s->p, &offset, &size);
    int count = XML_GetCurrentByteCount(s->p);
    free(s->header);
    s->header = NULL;
    s->header_len = 0;
    if (!buf || count <= 0 || offset < 0 || offset > size || count > size - offset)
        return;
    s->header = malloc((size_t)count);
    if (s->header) {
        memcpy(s->header, buf + offset, (size_t)count);
        s->header_len = (size_t)count;
    }
}

/* ---- expat handlers ------------------------------------------------- */

static bool content_ns(const char *uri)
{
    return strcmp(uri, TERN_NS_CLIENT) == 0 || strcmp(uri, NS_STREAM_CONTENT_SERVER) == 0 ||
           strcmp(uri, NS_STREAM_CONTENT_COMPONENT) == 0;
}

/* A namespace declaration, reported before the start tag that holds it:
 * what it means for reusing received bytes (see the top of the file). */
static void XMLCALL on_ns_decl(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
    xml_stream_t *s = ud;
    if (s->level == 0) {
        if (prefix && !(strcmp(prefix, "stream") == 0 && uri && strcmp(uri, NS_STREAMS) == 0))
            s->header_prefix = true;
        return;
    }
    /* Level 1: the stanza's own start tag; deeper: inside it. */
    if (prefix || (s->level >= 2 && uri && content_ns(uri))) {
        s->raw_bad = true;
        s->raw_ok = false;
    }
}

static void XMLCALL on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    xml_stream_t *s = ud;
    if (halted(s))
        return;
    uint64_t end = event_end(s);
    int tag_len = XML_GetCurrentByteCount(s->p);
    s->tag_bytes += tag_len > 0 ? (uint64_t)tag_len : 0;
    unsigned nattrs = count_attrs(atts);
    if (nattrs > s->lim.max_attrs) {
        fail(s, "policy-violation", "too many attributes");
        return;
    }
    if (s->level == 0) {
        if (s->replaying) {
            s->level = 1;
            s->mark = end;
        } else if (window_ok(s, end)) {
            s->mark = end;
            keep_header(s);
            open_stream(s, name, atts, nattrs);
        }
        return;
    }
    if (s->level == 1) {
        XML_Index i = XML_GetCurrentByteIndex(s->p);
        s->stanza_start = i > 0 ? (uint64_t)i : 0;
        s->level = 2;
        s->built = 0;
        if (!window_ok(s, end))
            return;
        s->stanza = s->cur = new_element(s, NULL, name);
        s->raw_ok = !s->raw_bad && !s->header_prefix && s->stanza && s->stanza->ns == xml_ns_client;
        s->raw_from = end;
        s->raw_len = 0;
    } else {
        if (s->level > s->lim.max_depth) {
            fail(s, "policy-violation", "stanza too deep");
            return;
        }
        if (!window_ok(s, end) || !flush_text(s))
            return;
        tern_xml_t *child = new_element(s, s->cur, name);
        if (!child)
            return;
        if (s->raw_ok && child->ns != s->cur->ns && strcmp(child->ns, NS_STREAMS) == 0)
            s->raw_ok = false;
        s->cur = child;
        s->level++;
    }
    if (s->cur)
        add_attrs(s, s->cur, atts, true);
}

/* Keep the received bytes of the complete stanza after its start tag, up
 * to `end`, in its tree (see "Received bytes" at the top).  Nothing is
 * kept on allocation failure: the tree is then written out as usual. */
static void keep_raw(xml_stream_t *s, uint64_t end)
{
    if (!s->raw_ok || !s->stanza->children || !s->slice || end < s->raw_from ||
        end < s->slice_base || end - s->slice_base > s->slice_n)
        return;
    const char *p;
    size_t n;
    if (s->raw_from >= s->slice_base) {
        p = s->slice + (s->raw_from - s->slice_base);
        n = (size_t)(end - s->raw_from);
    } else {
        size_t tail = (size_t)(end - s->slice_base);
        if (!reserve(&s->raw, &s->raw_cap, s->raw_len + tail))
            return;
        memcpy(s->raw + s->raw_len, s->slice, tail);
        s->raw_len += tail;
        p = s->raw;
        n = s->raw_len;
    }
    if (n != end - s->raw_from || n == 0 || p[n - 1] != '>')
        return; /* not every byte was seen, or not up to the end tag: never expected */
    xml_bytes_t *b = xml_arena_bytes(s->stanza, n);
    if (b) {
        memcpy(b->data, p, n);
        xml_rest_set(s->stanza, b);
    }
}

/* A complete stanza: hand it over (with our reference). */
static void deliver_stanza(xml_stream_t *s, uint64_t end)
{
    keep_raw(s, end);
    s->raw_ok = s->raw_bad = false;
    s->raw_len = 0;
    tern_xml_t *st = s->stanza;
    s->stanza = s->cur = NULL;
    s->level = 1;
    s->mark = end;
    trim_buffers(s);
    if (s->cb.on_stanza)
        s->cb.on_stanza(s->ctx, st);
    else
        tern_xml_unref(st);
    if (!halted(s) && s->tag_bytes > RECYCLE_TAG_BYTES && s->header) {
        /* Names: a new parser from the next byte on (see the top). */
        s->recycle = true;
        s->restart_at = end;
        XML_StopParser(s->p, XML_TRUE);
    }
}

static void XMLCALL on_end(void *ud, const XML_Char *name)
{
    xml_stream_t *s = ud;
    (void)name; /* expat has checked that it matches */
    if (halted(s))
        return;
    uint64_t end = event_end(s);
    if (s->level >= 2) {
        if (!window_ok(s, end) || !flush_text(s))
            return;
        if (s->level == 2) {
            deliver_stanza(s, end);
        } else {
            s->cur = s->cur->parent;
            s->level--;
        }
        return;
    }
    /* </stream:stream> (RFC 6120 §4.4) */
    s->level = 0;
    s->closed = true;
    s->mark = end;
    if (s->cb.on_close)
        s->cb.on_close(s->ctx);
}

static bool all_whitespace(const char *t, int len)
{
    for (int i = 0; i < len; i++)
        if (t[i] != ' ' && t[i] != '\t' && t[i] != '\r' && t[i] != '\n')
            return false;
    return true;
}

static void XMLCALL on_text(void *ud, const XML_Char *t, int len)
{
    xml_stream_t *s = ud;
    if (halted(s) || len <= 0)
        return;
    if (s->level == 1) {
        /* Whitespace between stanzas is a keepalive (RFC 6120 §4.6.1);
         * anything else has no place there. */
        if (!all_whitespace(t, len))
            fail(s, "bad-format", "text between stanzas");
        else
            s->mark = event_end(s);
        return;
    }
    if (s->level < 2 || !grow_ok(s, (size_t)len))
        return;
    if (!reserve(&s->text, &s->text_cap, s->text_len + (size_t)len)) {
        fail(s, "resource-constraint", "out of memory");
        return;
    }
    memcpy(s->text + s->text_len, t, (size_t)len);
    s->text_len += (size_t)len;
}

/* RFC 6120 §11.6: UTF-8 only.  The parser is created for UTF-8 whatever
 * the declaration says; one that says otherwise is refused. */
static void XMLCALL on_xml_decl(void *ud, const XML_Char *version, const XML_Char *encoding,
                                int standalone)
{
    xml_stream_t *s = ud;
    (void)version;
    (void)standalone;
    if (halted(s))
        return;
    if (encoding && strcasecmp(encoding, "UTF-8") != 0) {
        fail(s, "unsupported-encoding", "only UTF-8 is supported");
        return;
    }
    s->mark = event_end(s);
}

/* RFC 6120 §11.1: no DTD, entity declaration, processing instruction or
 * comment.  The DTD is refused at its first token, so no entity can ever
 * be declared (and none expanded: billion laughs, external entities). */
static void restricted(xml_stream_t *s, const char *what)
{
    if (!halted(s))
        fail(s, "restricted-xml", what);
}

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal_subset;
    restricted(ud, "DTD not allowed");
}

static void XMLCALL on_entity_decl(void *ud, const XML_Char *name, int is_param,
                                   const XML_Char *value, int value_len, const XML_Char *base,
                                   const XML_Char *sysid, const XML_Char *pubid,
                                   const XML_Char *notation)
{
    (void)name;
    (void)is_param;
    (void)value;
    (void)value_len;
    (void)base;
    (void)sysid;
    (void)pubid;
    (void)notation;
    restricted(ud, "entity declaration not allowed");
}

static void XMLCALL on_unparsed_decl(void *ud, const XML_Char *name, const XML_Char *base,
                                     const XML_Char *sysid, const XML_Char *pubid,
                                     const XML_Char *notation)
{
    (void)name;
    (void)base;
    (void)sysid;
    (void)pubid;
    (void)notation;
    restricted(ud, "entity declaration not allowed");
}

static void XMLCALL on_notation_decl(void *ud, const XML_Char *name, const XML_Char *base,
                                     const XML_Char *sysid, const XML_Char *pubid)
{
    (void)name;
    (void)base;
    (void)sysid;
    (void)pubid;
    restricted(ud, "notation declaration not allowed");
}

static void XMLCALL on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    (void)target;
    (void)data;
    restricted(ud, "processing instruction not allowed");
}

static void XMLCALL on_comment(void *ud, const XML_Char *data)
{
    (void)data;
    restricted(ud, "comment not allowed");
}

static void XMLCALL on_skipped_entity(void *ud, const XML_Char *name, int is_param)
{
    (void)name;
    (void)is_param;
    restricted(ud, "entity reference not allowed");
}

/* Never load anything: returning XML_STATUS_ERROR makes expat fail. */
static int XMLCALL on_external_entity(XML_Parser p, const XML_Char *context, const XML_Char *base,
                                      const XML_Char *sysid, const XML_Char *pubid)
{
    (void)context;
    (void)base;
    (void)sysid;
    (void)pubid;
    restricted(XML_GetUserData(p), "external entity not allowed");
    return XML_STATUS_ERROR;
}

/* ---- parser life ---------------------------------------------------- */

/* Expat salts its hash tables against collision floods, by default with
 * fresh random bytes (a system call) for every parser; idle streams make
 * parsers often, so one secret salt per process is drawn once instead. */
static unsigned long hash_salt(void)
{
    static unsigned long salt;
    while (!salt && getrandom(&salt, sizeof(salt), 0) != (ssize_t)sizeof(salt))
        continue;
    return salt;
}

/* A new expat parser for one stream document, with every handler set. */
static XML_Parser parser_new(xml_stream_t *s)
{
    XML_Parser p = XML_ParserCreateNS("UTF-8", NS_SEP);
    if (!p)
        return NULL;
    XML_SetHashSalt(p, hash_salt());
    XML_SetUserData(p, s);
    XML_SetElementHandler(p, on_start, on_end);
    XML_SetNamespaceDeclHandler(p, on_ns_decl, NULL);
    XML_SetCharacterDataHandler(p, on_text);
    XML_SetXmlDeclHandler(p, on_xml_decl);
    XML_SetStartDoctypeDeclHandler(p, on_doctype);
    XML_SetEntityDeclHandler(p, on_entity_decl);
    XML_SetUnparsedEntityDeclHandler(p, on_unparsed_decl);
    XML_SetNotationDeclHandler(p, on_notation_decl);
    XML_SetProcessingInstructionHandler(p, on_pi);
    XML_SetCommentHandler(p, on_comment);
    XML_SetSkippedEntityHandler(p, on_skipped_entity);
    XML_SetExternalEntityRefHandler(p, on_external_entity);
    XML_SetParamEntityParsing(p, XML_PARAM_ENTITY_PARSING_NEVER);
#ifdef XML_DTD
    /* Expat >= 2.4; belt and braces, since no entity is ever declared.
     * expat.h declares these only when the application defines XML_DTD. */
    XML_SetBillionLaughsAttackProtectionMaximumAmplification(p, 2.0f);
    XML_SetBillionLaughsAttackProtectionActivationThreshold(p, 64 * 1024);
#endif
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 6)
    XML_SetReparseDeferralEnabled(p, XML_FALSE);
#endif
    return p;
}

/* Forget the current document and start a new one that expects a fresh
 * stream header (RFC 6120 §4.3.3 restart). */
static void new_document(xml_stream_t *s)
{
    XML_Parser p = parser_new(s);
    if (!p) {
        fail(s, "resource-constraint", "out of memory");
        return;
    }
    XML_ParserFree(s->p);
    s->p = p;
    drop_stanza(s);
    free(s->header);
    s->header = NULL;
    s->header_len = 0;
    s->fed = s->mark = s->stanza_start = s->restart_at = s->tag_bytes = 0;
    s->level = 0;
    s->restart = s->recycle = s->opened = s->closed = false;
    s->header_prefix = false;
}

xml_stream_t *xml_stream_new(const xml_stream_callbacks_t *cb, void *ctx,
                             const xml_stream_limits_t *limits)
{
    if (!cb)
        return NULL;
    xml_stream_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->cb = *cb;
    s->ctx = ctx;
    /* A zero limit means "the default" too. */
    s->lim.max_stanza_bytes =
        limits && limits->max_stanza_bytes ? limits->max_stanza_bytes : DEFAULT_MAX_STANZA_BYTES;
    s->lim.max_depth = limits && limits->max_depth ? limits->max_depth : DEFAULT_MAX_DEPTH;
    s->lim.max_attrs = limits && limits->max_attrs ? limits->max_attrs : DEFAULT_MAX_ATTRS;
    s->p = parser_new(s);
    if (!s->p) {
        free(s);
        return NULL;
    }
    return s;
}

/* Must not be called from inside a callback of the same stream. */
void xml_stream_free(xml_stream_t **sp)
{
    if (!sp || !*sp)
        return;
    xml_stream_t *s = *sp;
    drop_stanza(s);
    if (s->p)
        XML_ParserFree(s->p);
    free(s->header);
    free(s->held);
    free(s->text);
    free(s->scratch);
    free(s->raw);
    free(s);
    *sp = NULL;
}

/* ---- feeding -------------------------------------------------------- */

/* How much of `len` bytes to hand expat next: at most one byte past the
 * window's limit, so that check_window() sees an overflow at the same
 * byte however the input is split.  The window never exceeds the limit
 * between slices, so the result is at least 1. */
static size_t slice_len(const xml_stream_t *s, size_t len)
{
    size_t n = len > INT_MAX ? INT_MAX : len;
    if (s->closed)
        return n;
    uint64_t room = window_start(s) + s->lim.max_stanza_bytes + 1 - s->fed;
    return room < n ? (size_t)room : n;
}

static void check_window(xml_stream_t *s)
{
    if (!s->dead && !s->closed)
        window_ok(s, s->fed);
}

static bool unpark(xml_stream_t *s);

/* Parse one slice.  Returns how many of its bytes belong to the current
 * document: all of them, except when a callback asked for a restart, in
 * which case the bytes after that event start the new document. */
static size_t parse_slice(xml_stream_t *s, const char *data, size_t n)
{
    uint64_t base = s->fed;
    s->fed += n;
    s->slice = data;
    s->slice_base = base;
    s->slice_n = n;
    s->in_parse = true;
    enum XML_Status st = XML_Parse(s->p, data, (int)n, XML_FALSE);
    s->in_parse = false;
    s->slice = NULL;
    if (s->dead)
        return n;
    if (s->raw_ok && s->level >= 2 && !s->restart && !s->recycle) {
        /* A stanza goes on in the next slice: keep its bytes so far. */
        uint64_t from = s->raw_from > base ? s->raw_from : base;
        size_t k = from < base + n ? (size_t)(base + n - from) : 0;
        if (k && reserve(&s->raw, &s->raw_cap, s->raw_len + k)) {
            memcpy(s->raw + s->raw_len, data + (from - base), k);
            s->raw_len += k;
        } else if (k) {
            s->raw_ok = false;
        }
    }
    if (s->restart) {
        /* The event ended inside this slice since expat parses all it is
         * given (no reparse deferral); anything else is a bug. */
        if (s->restart_at <= base || s->restart_at > base + n) {
            fail(s, "undefined-condition", "cannot restart the stream here");
            return n;
        }
        size_t used = (size_t)(s->restart_at - base);
        new_document(s);
        return used;
    }
    if (s->recycle) {
        /* Same document, new parser (see the top); as for a restart, the
         * stanza ended inside this slice. */
        s->recycle = false;
        if (s->restart_at <= base || s->restart_at > base + n) {
            fail(s, "undefined-condition", "cannot renew the parser here");
            return n;
        }
        size_t used = (size_t)(s->restart_at - base);
        XML_ParserFree(s->p);
        s->p = NULL;
        unpark(s);
        return used;
    }
    if (st == XML_STATUS_ERROR) {
        /* RFC 6120 §4.9.3.13 */
        fail(s, "not-well-formed", XML_ErrorString(XML_GetErrorCode(s->p)));
    }
    return n;
}

/* Between stanzas with nothing pending: free the parser (see the top). */
int xml_stream_park(xml_stream_t *s)
{
    if (!s || s->in_feed)
        return 0;
    if (!s->p)
        return 1;
    if (s->dead || !s->opened || s->closed || s->level != 1 || s->fed != s->mark || !s->header ||
        s->held_len)
        return 0;
    XML_ParserFree(s->p);
    s->p = NULL;
    free(s->held);
    s->held = NULL;
    s->held_cap = 0;
    free(s->text);
    free(s->scratch);
    free(s->raw);
    s->text = s->scratch = s->raw = NULL;
    s->text_cap = s->scratch_cap = s->text_len = s->raw_cap = s->raw_len = 0;
    return 1;
}

/* A new parser in the state park() left: inside the stream header. */
static bool unpark(xml_stream_t *s)
{
    s->p = parser_new(s);
    if (!s->p) {
        fail(s, "resource-constraint", "out of memory");
        return false;
    }
    s->level = 0;
    s->fed = s->mark = s->stanza_start = 0;
    s->header_prefix = false; /* the replayed header declares them again */
    s->replaying = true;
    s->in_parse = true;
    enum XML_Status st = XML_Parse(s->p, s->header, (int)s->header_len, XML_FALSE);
    s->in_parse = false;
    s->replaying = false;
    s->fed = s->header_len;
    s->tag_bytes = 0;
    if (st == XML_STATUS_ERROR || s->level != 1 || s->dead) {
        fail(s, "undefined-condition", "cannot resume the stream");
        return false;
    }
    return true;
}

/* How many of the `len` bytes at the start of a new document are
 * whitespace.  XML allows nothing before an XML declaration, but clients
 * send a newline after the element that restarts the stream (the server's
 * SASL <success/>, RFC 6120 §6.4.6, or <proceed/>, §5.4.3.3) and then a
 * new header that starts with "<?xml"; expat would call that declaration
 * not well-formed.  Whitespace outside the root element carries nothing,
 * so it is dropped. */
static size_t prolog_space(const char *data, size_t len)
{
    size_t i = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
        i++;
    return i;
}

/* Hand `len` bytes to expat (through the size slices), starting new
 * documents where a callback restarted the stream. */
static void feed_doc(xml_stream_t *s, const char *data, size_t len)
{
    while (len > 0 && !s->dead) {
        if (s->fed == 0) {
            /* A new document: whitespace before it is dropped (prolog_space). */
            size_t skip = prolog_space(data, len);
            data += skip;
            len -= skip;
            if (len == 0)
                break;
        }
        size_t n = slice_len(s, len);
        size_t used = parse_slice(s, data, n);
        data += used;
        len -= used;
        if (used == n)
            check_window(s);
    }
}

/* ---- holding back unfinished markup (see the top of the file) --------- */

enum {
    LEX_TEXT, /* character data, or between tags */
    LEX_LT,   /* just after '<' */
    LEX_TAG,  /* in a start or end tag */
    LEX_SQ,   /* in a tag, in a '...' attribute value */
    LEX_DQ,   /* in a tag, in a "..." attribute value */
    LEX_DECL, /* in <!...> or <?...?>: up to the next '>' */
    LEX_REF,  /* in an &entity; or &#character; reference */
};

/* The scanner's state after byte `c` in state `st`. */
static unsigned char lex_step(unsigned char st, char c)
{
    if (c == '<')
        return LEX_LT;
    switch (st) {
    case LEX_TEXT:
        return c == '&' ? LEX_REF : LEX_TEXT;
    case LEX_LT:
        return c == '>' ? LEX_TEXT : c == '!' || c == '?' ? LEX_DECL : LEX_TAG;
    case LEX_TAG:
        return c == '>' ? LEX_TEXT : c == '\'' ? LEX_SQ : c == '"' ? LEX_DQ : LEX_TAG;
    case LEX_SQ:
        return c == '\'' ? LEX_TAG : LEX_SQ;
    case LEX_DQ:
        return c == '"' ? LEX_TAG : LEX_DQ;
    case LEX_DECL:
        return c == '>' ? LEX_TEXT : LEX_DECL;
    default: /* LEX_REF: ends at ';'; whitespace is an error for expat */
        return c == ';' || c == ' ' || c == '\t' || c == '\r' || c == '\n' ? LEX_TEXT : LEX_REF;
    }
}

/* Run the scanner over `len` bytes.  `first` and `last` get the first and
 * last offsets (0..len) at which every byte before is part of a complete
 * token, or of a token expat is to see now (a '<' always starts a new
 * token; one inside a tag is an error that expat reports); SIZE_MAX when
 * there is none.  O(len), and most bytes are only looked at by memrchr():
 * what comes before the last '<' goes to expat whatever it is. */
static void lex_scan(xml_stream_t *s, const char *data, size_t len, size_t *first, size_t *last)
{
    unsigned char st = s->lex;
    size_t i = 0;
    /* The end of the token left unfinished by the last call. */
    while (i < len && st != LEX_TEXT && data[i] != '<')
        st = lex_step(st, data[i++]);
    if (st != LEX_TEXT && i == len) {
        s->lex = st;
        *first = *last = SIZE_MAX;
        return;
    }
    *first = i;
    const char *lt = memrchr(data + i, '<', len - i);
    if (lt) {
        /* From the last '<' on, step by step. */
        size_t l = (size_t)(lt - data);
        st = LEX_LT;
        *last = l;
        for (size_t j = l + 1; j < len; j++) {
            st = lex_step(st, data[j]);
            if (st == LEX_TEXT)
                *last = j + 1;
        }
        if (st != LEX_TEXT)
            *last = l;
    } else {
        /* Text to the end, unless its last '&' starts an unfinished
         * reference. */
        st = LEX_TEXT;
        *last = len;
        const char *amp = memrchr(data + i, '&', len - i);
        if (amp) {
            unsigned char r = LEX_REF;
            for (const char *c = amp + 1; c < data + len && r == LEX_REF; c++)
                r = lex_step(r, *c);
            if (r == LEX_REF) {
                st = LEX_REF;
                *last = (size_t)(amp - data);
            }
        }
    }
    s->lex = st;
}

/* Append `len` bytes to the held ones; the window check bounds them. */
static bool hold(xml_stream_t *s, const char *data, size_t len)
{
    if (!len)
        return true;
    if (!reserve(&s->held, &s->held_cap, s->held_len + len)) {
        fail(s, "resource-constraint", "out of memory");
        return false;
    }
    memcpy(s->held + s->held_len, data, len);
    s->held_len += len;
    return true;
}

/* Feed the held bytes, now a complete token, to expat. */
static void release_held(xml_stream_t *s)
{
    size_t n = s->held_len;
    s->held_len = 0;
    feed_doc(s, s->held, n);
}

int xml_stream_feed(xml_stream_t *s, const char *data, size_t len)
{
    if (!s || s->dead || s->in_feed)
        return -1; /* dead, or a callback feeding its own stream */
    if (!data)
        return len ? -1 : 0;
    if (len == 0)
        return 0;
    if (!s->p && !unpark(s))
        return -1;
    s->in_feed = true;
    if (s->closed) {
        /* After </stream:stream> anything but whitespace is an error that
         * expat reports at once: nothing is held back. */
        if (s->held_len)
            release_held(s);
        feed_doc(s, data, len);
    } else {
        size_t first, last;
        lex_scan(s, data, len, &first, &last);
        if (first == SIZE_MAX) {
            hold(s, data, len);
        } else {
            if (s->held_len && hold(s, data, first))
                release_held(s);
            if (!s->dead && last > first)
                feed_doc(s, data + first, last - first);
            if (!s->dead)
                hold(s, data + last, len - last);
        }
        /* Held bytes are part of the window: an endless tag is cut off at
         * the same byte however it arrives. */
        if (!s->dead && !s->closed && s->held_len)
            window_ok(s, s->fed + s->held_len);
    }
    if (s->dead) {
        s->held_len = 0;
        s->lex = LEX_TEXT;
    }
    if (!s->held_len && s->held_cap > KEEP_BUFFER) {
        free(s->held);
        s->held = NULL;
        s->held_cap = 0;
    }
    s->in_feed = false;
    return s->dead ? -1 : 0;
}

/* From inside a callback, the new document begins right after the event
 * being reported; expat is suspended now and replaced when XML_Parse
 * returns.  Outside a callback it begins with the next byte fed (a
 * partial token held by expat, if any, is discarded). */
void xml_stream_restart(xml_stream_t *s)
{
    if (!s || s->dead || s->restart)
        return;
    if (!s->in_parse) {
        s->held_len = 0; /* an unfinished token of the old document */
        s->lex = LEX_TEXT;
        new_document(s);
        return;
    }
    s->restart = true;
    s->restart_at = event_end(s);
    XML_StopParser(s->p, XML_TRUE);
}

int xml_stream_parked(const xml_stream_t *s)
{
    return s && !s->p;
}

void xml_stream_stop(xml_stream_t *s)
{
    if (!s || s->dead)
        return;
    s->dead = true;
    drop_stanza(s);
    if (s->in_parse)
        XML_StopParser(s->p, XML_FALSE);
}

/* ---- tern_xml_parse: one stored element --------------------------------- */

typedef struct parse_result {
    tern_xml_t *element;
    int count, failed;
} parse_result_t;

static void on_element(void *ctx, tern_xml_t *el)
{
    parse_result_t *r = ctx;
    if (r->count++ == 0)
        r->element = el;
    else
        tern_xml_unref(el);
}

static void on_error(void *ctx, const char *condition, const char *text)
{
    (void)condition;
    (void)text;
    ((parse_result_t *)ctx)->failed = 1;
}

TERN_API tern_xml_t *tern_xml_parse(const char *data, size_t len)
{
    static const char head[] = "<stream:stream xmlns='jabber:client' "
                               "xmlns:stream='http://etherx.jabber.org/streams'>";
    static const char tail[] = "</stream:stream>";
    if (data == NULL || len == 0 || len > ((size_t)1 << 30))
        return NULL;
    parse_result_t r = {0};
    xml_stream_callbacks_t cb = {.on_stanza = on_element, .on_error = on_error};
    /* The text was ours once: the limit is only on what it holds, which the
     * built tree may exceed a little (attribute and name copies). */
    xml_stream_limits_t lim = {
        .max_stanza_bytes = 2 * len + 4096, .max_depth = 64, .max_attrs = 64};
    xml_stream_t *s = xml_stream_new(&cb, &r, &lim);
    if (s == NULL)
        return NULL;
    int rc = xml_stream_feed(s, head, sizeof head - 1);
    if (rc == 0)
        rc = xml_stream_feed(s, data, len);
    if (rc == 0)
        rc = xml_stream_feed(s, tail, sizeof tail - 1);
    xml_stream_free(&s);
    if (rc != 0 || r.failed || r.count != 1) {
        if (r.element != NULL)
            tern_xml_unref(r.element);
        return NULL;
    }
    return r.element;
}
