/*
 * xml_stream.h — incremental parser for one XMPP stream (internal).
 *
 * Feeds bytes as they arrive from the network into expat and hands out
 * the stream header and each complete top-level element (stanza) as a
 * tern_xml_t tree.  It enforces RFC 6120 §11 restricted XML (no DTD,
 * comments, processing instructions or entity declarations) and the
 * configured limits while parsing, before anything oversize is built.
 * It knows nothing of sockets or XMPP semantics.
 */
#ifndef TERN_XML_STREAM_H
#define TERN_XML_STREAM_H

#include <stddef.h>
#include <tern/xml.h>

typedef struct xml_stream xml_stream_t;

typedef struct xml_stream_limits {
    size_t max_stanza_bytes; /* raw bytes of one top-level element (default 256 KiB) */
    unsigned max_depth;      /* element nesting inside a stanza (default 64) */
    unsigned max_attrs;      /* attributes on one element (default 64) */
} xml_stream_limits_t;

typedef struct xml_stream_callbacks {
    /* <stream:stream ...> opened.  `attrs` is name, value, ..., NULL with
     * names as in tern_xml_attr_t.  `name`/`ns` are the root element's. */
    void (*on_open)(void *ctx, const char *name, const char *ns, const char **attrs);
    /* A complete top-level element; ownership (one reference) passes to the callee. */
    void (*on_stanza)(void *ctx, tern_xml_t *stanza);
    /* </stream:stream> */
    void (*on_close)(void *ctx);
    /* Parsing cannot go on.  `condition` is the RFC 6120 §4.9.3 stream error
     * to send: "not-well-formed", "restricted-xml", "policy-violation"
     * (stanza too large / too deep), "invalid-namespace", "bad-format". */
    void (*on_error)(void *ctx, const char *condition, const char *text);
} xml_stream_callbacks_t;

/* `limits` may be NULL for the defaults.  NULL on allocation failure. */
xml_stream_t *xml_stream_new(const xml_stream_callbacks_t *cb, void *ctx,
                             const xml_stream_limits_t *limits);
void xml_stream_free(xml_stream_t **s);

/* Parse `len` bytes (any split, down to one byte at a time, at linear cost:
 * an unfinished tag at the end is held until it ends).  Callbacks run
 * from inside this call.  Returns 0, or -1 once on_error was called or the
 * stream was stopped; after -1 the stream takes no more input. */
int xml_stream_feed(xml_stream_t *s, const char *data, size_t len);

/* Start a new stream document after the bytes consumed so far (STARTTLS,
 * SASL success).  Safe to call from inside a callback: bytes already fed
 * after the current element go to the new document. */
void xml_stream_restart(xml_stream_t *s);

/* Free the parser of a stream that is between stanzas with all its input
 * parsed; the next feed makes a new one (see xml_stream.c).  Returns 1 if
 * the stream now holds no parser, 0 if it still needs it (a stanza is
 * open, or a partial token is held). */
int xml_stream_park(xml_stream_t *s);
/* Whether the stream holds no parser now. */
int xml_stream_parked(const xml_stream_t *s);

/* Stop parsing; safe from inside a callback.  feed() then returns -1. */
void xml_stream_stop(xml_stream_t *s);

/* Append attribute `name`="`value`" (lengths without the NUL) to `node`,
 * which must not have one of that name yet (xml_tree.c; for the parser,
 * whose input has unique names).  Returns 0, or -1 on allocation failure
 * with `node` unchanged. */
int xml_attr_append(tern_xml_t *node, const char *name, size_t name_len, const char *value,
                    size_t value_len);

/* The namespace string of every TERN_NS_CLIENT element the tree code
 * makes (xml_tree.c): compare by address first. */
extern const char xml_ns_client[];

/* For the parser (xml_tree.c): a new element named by the `name_len`
 * bytes at `name`, appended to `parent` (not frozen), or a new root when
 * `parent` is NULL; `ns` as for tern_xml_add_child.  NULL on allocation
 * failure. */
tern_xml_t *xml_element_add(tern_xml_t *parent, const char *name, size_t name_len, const char *ns);

/* Serialization (xml_serialize.c). */
struct evbuffer;
/* Append `node` to `out`.  `stream_ns` is the content namespace of the
 * stream the stanza goes to ("jabber:client", "jabber:server",
 * "jabber:component:accept"): TERN_NS_CLIENT elements are written in it
 * without an xmlns attribute at top level.  Text and attribute values are
 * escaped.  Returns 0, or -1 on allocation failure. */
int xml_serialize(const tern_xml_t *node, const char *stream_ns, struct evbuffer *out);
/* Escape `len` bytes of text for element content or attribute values. */
int xml_escape(const char *s, size_t len, struct evbuffer *out);

/* ---- serialize once, share the bytes (xml_serialize.c, xml_tree.c) ----
 *
 * A frozen root (tern_xml_freeze) keeps its serialized bytes, one copy per
 * stream content namespace, the first time xml_serialize() writes it; every
 * later write of that stanza, to any session, adds the same bytes.  The
 * bytes are immutable and reference counted, so an output buffer may keep
 * them after the tree is gone. */
typedef struct xml_bytes {
    size_t refs;
    size_t len;
    char data[];
} xml_bytes_t;

#define XML_CACHE_SLOTS 3 /* jabber:client, jabber:server, jabber:component:accept */

/* `refs` of bytes allocated in a tree's arena (xml_arena_bytes): they are
 * freed with the tree, and ref/unref do nothing on them. */
#define XML_BYTES_IN_ARENA ((size_t)-1)

xml_bytes_t *xml_bytes_ref(xml_bytes_t *b);
void xml_bytes_unref(xml_bytes_t *b);

/* Slots on the tree's arena (xml_tree.c); `root` must be frozen.
 * xml_cache_put takes its own reference, or does nothing when every slot
 * is taken. */
xml_bytes_t *xml_cache_get(const tern_xml_t *root, const char *stream_ns);
void xml_cache_put(tern_xml_t *root, const char *stream_ns, xml_bytes_t *b);
/* A fan-out copy shares `rest`: everything after its root's start tag;
 * a received stanza may keep its own received bytes there (xml_stream.c,
 * "Received bytes").  Every change to the tree but to its root's
 * attributes drops them. */
xml_bytes_t *xml_rest_get(const tern_xml_t *root);
void xml_rest_set(tern_xml_t *root, xml_bytes_t *rest);
/* Room for `len` bytes in the arena of `root`'s tree, refs
 * XML_BYTES_IN_ARENA: for bytes that are copied out, never kept by
 * reference past the tree.  NULL on allocation failure. */
xml_bytes_t *xml_arena_bytes(tern_xml_t *root, size_t len);

/* Fan-out (tern_route_fanout): serialize frozen `tmpl` once and return the
 * bytes after its root's start tag (new reference; NULL on allocation
 * failure).  A copy of `tmpl` that differs only in its root's attributes
 * may share them through xml_rest_set(). */
xml_bytes_t *xml_serialize_rest(const tern_xml_t *tmpl);

/* A fan-out copy of frozen `tmpl` (a root) for recipient `to`, without
 * copying the tree: a new frozen root with `tmpl`'s name and attributes
 * and 'to' (appended, as tern_xml_set_attr would on a copy) whose
 * children are `tmpl`'s own, shared; it keeps `tmpl` alive.  Reads,
 * copies and serialization see an ordinary tree, but the shared
 * children's parent is `tmpl`: walks that climb use xml_parent_in().
 * NULL on allocation failure or when `tmpl` is not a frozen root. */
tern_xml_t *xml_fanout_view(const tern_xml_t *tmpl, const char *to);
/* `n`'s parent in a walk of the tree rooted at `top` (a view's shared
 * children climb to the view, not to its template). */
const tern_xml_t *xml_parent_in(const tern_xml_t *n, const tern_xml_t *top);

/* Counters since start, for `ternctl status`. */
typedef struct xml_serialize_stats {
    unsigned long long full;   /* stanza trees written out in full */
    unsigned long long reused; /* writes that reused a frozen stanza's bytes */
    unsigned long long heads;  /* only the start tag written: fan-out copies, received stanzas */
    /* of `heads`, received stanzas: the bytes received after the start tag
     * follow it (xml_stream.c, "Received bytes") */
    unsigned long long received;
} xml_serialize_stats_t;
void xml_serialize_stats(xml_serialize_stats_t *out);

/* Where refused changes to frozen trees are reported (default: stderr;
 * each call once).  Whether a refusal aborts: by default only in builds
 * configured with --enable-sanitizers (TERN_FREEZE_ABORT); unit tests of
 * the refusal itself turn it off. */
void xml_set_misuse_report(void (*fn)(const char *msg));
void xml_set_misuse_abort(int on);

#endif
