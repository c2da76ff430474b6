/*
 * host.c — the server record and host look-up (route/host.h).
 *
 * Owns the one server_t of the process (the core fills it) and finds the
 * host serving a domain through the domain registry.  Includes nothing
 * above src/route.
 */
#include "route/host.h"

#include <stddef.h>

#include "route/domains.h"

server_t server;

host_t *hosts_find(const char *domain)
{
    const domain_entry_t *e = domains_find(domain);
    return e && (e->kind == DOMAIN_HOST || e->kind == DOMAIN_SERVICE) ? e->host : NULL;
}
