/*
 * domains.h — who serves a domain (internal).
 *
 * One table, keyed by the prepared domain, answers in O(1) for every
 * stanza the router sees: a local host (accounts, client logins), a
 * service domain owned by the modules loaded on it (no accounts, no client
 * logins: conference., upload.), an external component (XEP-0114), or
 * nothing, which means remote.  The core fills it (hosts and services from
 * the module loader, components from the configuration); the router only
 * reads it.  It must not know about sessions, streams or modules: a host
 * is an opaque pointer here.
 */
#ifndef TERN_DOMAINS_H
#define TERN_DOMAINS_H

#include <tern/module.h>

struct host;

typedef enum {
    DOMAIN_REMOTE = 0, /* not ours: anything not in the table */
    DOMAIN_HOST,       /* a local host: accounts and client logins */
    DOMAIN_SERVICE,    /* a service domain: its modules answer, no accounts */
    DOMAIN_COMPONENT   /* an external component, attached or away */
} domain_kind_t;

typedef void (*domain_deliver_fn)(void *ctx, tern_xml_t *stanza);

typedef struct domain_entry {
    domain_kind_t kind;
    struct host *host;    /* DOMAIN_HOST and DOMAIN_SERVICE */
    domain_deliver_fn fn; /* DOMAIN_COMPONENT: its link ... */
    void *ctx;            /* ... and its context, NULL while it is away */
} domain_entry_t;

/* The entry of `domain` (prepared), or NULL for a remote domain. */
const domain_entry_t *domains_find(const char *domain);
/* What serves `domain`: DOMAIN_REMOTE when it is not ours. */
domain_kind_t domains_kind(const char *domain);
/* Whether we serve `domain` in any way (host, service or component). */
int domains_is_ours(const char *domain);

/* Serve `name` as a host or a service domain (`service` non-zero) by h;
 * replaces what the name had.  0, or -1 when memory is short. */
int domains_set_host(const char *name, struct host *h, int service);
/* Declare a component domain (away until attached); a domain already
 * declared as a component stays as it is.  0, or -1 when memory is short
 * or the name is a host or service domain. */
int domains_declare_component(const char *name);
/* Attach a live component; -1 if not declared or already attached. */
int domains_attach_component(const char *name, domain_deliver_fn fn, void *ctx);
/* Detach it, if ctx is the one attached. */
void domains_detach_component(const char *name, void *ctx);
/* Forget `name` (it becomes remote). */
void domains_remove(const char *name);
/* Forget every domain. */
void domains_free(void);

#endif
