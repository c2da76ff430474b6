/*
 * domains.c — the domain registry: one hash table from a prepared domain
 * to what serves it (route/domains.h).
 *
 * Written by the core when hosts, services and components come and go
 * (start, reload), read by the router for every stanza.  Owns its entries
 * and its key copies; never the hosts they point to.
 */
#include "route/domains.h"

#include <stdlib.h>

#include "util/hashmap.h"

static hashmap_t *domains;

const domain_entry_t *domains_find(const char *domain)
{
    return domains && domain ? hashmap_get(domains, domain) : NULL;
}

domain_kind_t domains_kind(const char *domain)
{
    const domain_entry_t *e = domains_find(domain);
    return e ? e->kind : DOMAIN_REMOTE;
}

int domains_is_ours(const char *domain)
{
    return domains_find(domain) != NULL;
}

/* The entry of `name`, created empty if absent (NULL: out of memory). */
static domain_entry_t *entry_for(const char *name)
{
    if (!domains && !(domains = hashmap_new()))
        return NULL;
    domain_entry_t *e = hashmap_get(domains, name);
    if (e)
        return e;
    e = calloc(1, sizeof(*e));
    if (!e || hashmap_put(domains, name, e) < 0) {
        free(e);
        return NULL;
    }
    return e;
}

int domains_set_host(const char *name, struct host *h, int service)
{
    domain_entry_t *e = entry_for(name);
    if (!e)
        return -1;
    *e = (domain_entry_t){.kind = service ? DOMAIN_SERVICE : DOMAIN_HOST, .host = h};
    return 0;
}

int domains_declare_component(const char *name)
{
    const domain_entry_t *old = domains_find(name);
    if (old)
        return old->kind == DOMAIN_COMPONENT ? 0 : -1;
    domain_entry_t *e = entry_for(name);
    if (!e)
        return -1;
    e->kind = DOMAIN_COMPONENT;
    return 0;
}

int domains_attach_component(const char *name, domain_deliver_fn fn, void *ctx)
{
    domain_entry_t *e = domains ? hashmap_get(domains, name) : NULL;
    if (!e || e->kind != DOMAIN_COMPONENT || e->ctx || !ctx)
        return -1;
    e->fn = fn;
    e->ctx = ctx;
    return 0;
}

void domains_detach_component(const char *name, void *ctx)
{
    domain_entry_t *e = domains ? hashmap_get(domains, name) : NULL;
    if (e && e->kind == DOMAIN_COMPONENT && e->ctx == ctx) {
        e->fn = NULL;
        e->ctx = NULL;
    }
}

void domains_remove(const char *name)
{
    if (domains)
        free(hashmap_remove(domains, name));
}

static int free_entry(void *ctx, const char *key, void *value)
{
    (void)ctx;
    (void)key;
    free(value);
    return 0;
}

void domains_free(void)
{
    if (domains)
        hashmap_foreach(domains, free_entry, NULL);
    hashmap_free(&domains);
}
