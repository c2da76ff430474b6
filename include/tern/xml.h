/*
 * tern/xml.h — the stanza tree that modules read and build.
 *
 * A tree is a set of element and text nodes allocated from one arena that
 * belongs to the root.  The root is reference counted: a handler that keeps
 * a stanza beyond its call takes a reference with tern_xml_ref() and drops
 * it with tern_xml_unref().  Nodes are never freed one by one.
 *
 * Namespaces are resolved: every element carries its namespace URI, never a
 * prefix.  The stream content namespaces (jabber:client, jabber:server,
 * jabber:component:accept) are all stored as TERN_NS_CLIENT so that a stanza
 * reads the same whatever stream it came from.
 *
 * Ownership rule: a stanza is frozen once routed.  tern_route(),
 * tern_route_fanout() and tern_session_send() freeze the tree they are
 * given; a client's stanza is frozen after its sender's outgoing filters
 * (pre-KIND/DEST events, the last point where the core lets it be
 * adjusted).  From then on the core and every module hold references but
 * never change it.  To change a stanza you were handed, copy it
 * (tern_xml_copy), change the copy and route that; a handler that must
 * change the stanza of its own event before delivery uses tern_event_edit()
 * (<tern/module.h>).  On a frozen tree the building calls below
 * (add_child, add_text, set_attr, del_attr, unlink, copy_into with a frozen
 * parent) change nothing: the first misuse of each is logged as an error,
 * and a server built with --enable-sanitizers aborts so that tests catch
 * it.  A frozen stanza is serialized once: every session it goes to gets
 * the same bytes.
 */
#ifndef TERN_XML_H
#define TERN_XML_H

#include <tern/defs.h>
#include <stddef.h>

#define TERN_NS_CLIENT "jabber:client"
#define TERN_NS_XML    "http://www.w3.org/XML/1998/namespace"

typedef struct tern_xml_attr {
    const char *name; /* "type", or "xml:lang"; other prefixed ones as "{ns}local" */
    const char *value;
    struct tern_xml_attr *next;
} tern_xml_attr_t;

typedef struct tern_xml tern_xml_t;
struct tern_xml {
    const char *name; /* element local name; NULL for a text node */
    const char *ns;   /* element namespace URI; NULL for a text node */
    const char *text; /* text node content (not NUL-terminated inside) */
    size_t text_len;
    tern_xml_attr_t *attrs;
    tern_xml_t *parent, *children, *last_child, *next;
    struct tern_xml_arena *arena; /* shared by every node of the tree */
};

/* New root element with its own arena, refcount 1.  NULL on allocation failure. */
TERN_API tern_xml_t *tern_xml_new(const char *name, const char *ns);
/* Take / drop a reference on the tree that holds `node`; the last drop frees it. */
TERN_API tern_xml_t *tern_xml_ref(tern_xml_t *node);
TERN_API void tern_xml_unref(tern_xml_t *node);

/* Freeze the whole tree that holds `node` (see the ownership rule above).
 * There is no unfreeze: copy instead. */
TERN_API void tern_xml_freeze(tern_xml_t *node);
/* 1 when the tree that holds `node` is frozen. */
TERN_API int tern_xml_frozen(const tern_xml_t *node);

/* Build (refused on a frozen tree).  Strings are copied into the arena.  A NULL ns on a child means
 * "same namespace as the parent". */
TERN_API tern_xml_t *tern_xml_add_child(tern_xml_t *parent, const char *name, const char *ns);
TERN_API void tern_xml_add_text(tern_xml_t *parent, const char *text, size_t len);
TERN_API void tern_xml_set_attr(tern_xml_t *node, const char *name, const char *value);
TERN_API void tern_xml_del_attr(tern_xml_t *node, const char *name);
/* Remove `child` from its parent (its memory stays in the arena). */
TERN_API void tern_xml_unlink(tern_xml_t *child);
/* Deep copy of `src` appended under `parent` (in parent's arena). */
TERN_API tern_xml_t *tern_xml_copy_into(tern_xml_t *parent, const tern_xml_t *src);
/* Deep copy of `src` as a new root with its own arena. */
TERN_API tern_xml_t *tern_xml_copy(const tern_xml_t *src);
/* Copy `s` into the arena of the tree that holds `node`. */
TERN_API char *tern_xml_strdup(tern_xml_t *node, const char *s);

/* Read. */
TERN_API const char *tern_xml_attr(const tern_xml_t *node, const char *name);
/* First element child with this name and namespace; either may be NULL for "any". */
TERN_API tern_xml_t *tern_xml_child(const tern_xml_t *node, const char *name, const char *ns);
TERN_API tern_xml_t *tern_xml_first_element(const tern_xml_t *node);
TERN_API tern_xml_t *tern_xml_next_element(const tern_xml_t *node);
/* Concatenated direct text children, NUL-terminated, in the node's arena ("" if none). */
TERN_API const char *tern_xml_text(tern_xml_t *node);
TERN_API int tern_xml_is(const tern_xml_t *node, const char *name, const char *ns);

/* Parse one element, as tern_xml_to_string() writes it, into a new tree of
 * refcount 1 (for data a module stored; restricted XML as on a client
 * stream, RFC 6120 §11).  Unqualified elements read as TERN_NS_CLIENT.
 * NULL when `data` is not exactly one well-formed element. */
TERN_API tern_xml_t *tern_xml_parse(const char *data, size_t len);

/* Serialize into a malloc'd NUL-terminated string (for logs and tests).
 * `len_r` may be NULL.  Returns NULL on allocation failure. */
TERN_API char *tern_xml_to_string(const tern_xml_t *node, size_t *len_r);

#endif
