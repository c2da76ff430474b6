/*
 * xmlscan.h — the client's streaming XML reader.
 *
 * Owns turning the bytes of one XMPP stream into the stream header and a
 * small tree per top-level element (stanza, features, SASL answers),
 * built on expat with namespace processing.  Element names are
 * "namespace|local"; attribute names without a namespace stay as they
 * are.  A tree lives until its callback returns.
 */
#ifndef TERN_BENCH_XMLSCAN_H
#define TERN_BENCH_XMLSCAN_H

#include <stddef.h>

struct xnode {
    const char *name;   /* "ns|local" */
    const char **attrs; /* name, value, ..., NULL */
    struct xnode *parent, *child, *last, *next;
    char *text; /* character data directly inside, NUL-terminated, or NULL */
    size_t text_len;
    size_t text_cap; /* bytes allocated for text */
};

typedef struct xnode xnode_t;
typedef struct xscan xscan_t;

typedef struct {
    void (*header)(void *ud, const char **attrs); /* <stream:stream ...> */
    void (*element)(void *ud, xnode_t *el);       /* each top-level element */
    void (*end)(void *ud);                        /* </stream:stream> */
} xscan_cbs_t;

#define XSCAN_MAX_ELEMENT (1024 * 1024) /* bytes of tree per element */

xscan_t *xscan_new(const xscan_cbs_t *cbs, void *ud);
void xscan_free(xscan_t **xs);
/* Parse len bytes.  Returns 0, or -1 on malformed XML or an element too
 * big (*why says which).  Stops early, without error, after xscan_stop(). */
int xscan_feed(xscan_t *xs, const char *data, size_t len, const char **why);
/* A new stream begins after the current element (STARTTLS, SASL): the
 * bytes after it are parsed as a new document. */
void xscan_restart(xscan_t *xs);
/* Stop parsing (the connection is closing); feed returns at once. */
void xscan_stop(xscan_t *xs);

/* Helpers on trees. */
int xn_is(const xnode_t *n, const char *ns, const char *local);
const char *xn_attr(const xnode_t *n, const char *name);
xnode_t *xn_child(const xnode_t *n, const char *ns, const char *local);
/* The local part of a name ("message" for "jabber:client|message"). */
const char *xn_local(const xnode_t *n);

#endif
