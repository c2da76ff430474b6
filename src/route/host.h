/*
 * host.h — the records the core fills at start-up and the routing and
 * stream layers read (internal): the running server (event loop, config,
 * store, TLS) and each host we serve (name, event table, disco items,
 * services).
 *
 * Only data and look-ups live here.  What the core does with hosts
 * (loading modules, reloads) stays in core/modules.h and core/server.h;
 * lower layers reach that behaviour only through the function pointers the
 * core registers (router_set_iq_reply, session callbacks).
 */
#ifndef TERN_HOST_H
#define TERN_HOST_H

#include <stdint.h>
#include <tern/module.h>

#include "config/config.h"
#include "route/hooks.h"
#include "store/store.h"
#include "tls/tls.h"

struct event_base;
struct event;
struct resolver;

/* The running server: set up by the core (core/main.c, core/server.c),
 * read by everyone above util. */
typedef struct server {
    struct event_base *base;
    tern_config_t *cfg;
    store_db_t *db;
    tls_server_t *tls;
    struct resolver *resolver; /* DNS (net/resolver.h), from the config's dns.servers */
    int64_t started_us;
    int stopping;
    struct event *stop_event;
} server_t;

extern server_t server; /* the one server of this process */

typedef struct host host_t;

typedef struct disco_item {
    struct disco_item *next;
    tern_module_ctx_t *owner;
    const char *category, *type, *name; /* identity, or NULL */
    const char *feature;                /* feature var, or NULL */
    tern_xml_t *form;                   /* XEP-0128 form, or NULL */
    int account;                        /* advertised by accounts, not the host */
} disco_item_t;

typedef struct service {
    struct service *next;
    tern_module_ctx_t *owner;
    const char *name;
    const void *api;
} service_t;

/* A domain we serve: a host (accounts, client logins) or a service domain
 * (is_service: modules and events, no accounts).  Created and filled by
 * the core's module loader (core/modules.c). */
struct host {
    const char *name;
    int is_service; /* a service domain: no accounts, no client logins */
    tern_jid_t *jid;
    hooks_t *hooks;
    tern_module_ctx_t *modules;
    disco_item_t *disco;
    service_t *services;
};

/* The host or service domain serving `domain` (from the domain registry,
 * route/domains.h), or NULL. */
host_t *hosts_find(const char *domain);

#endif
