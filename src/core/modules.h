/*
 * modules.h — hosts and the modules loaded on them (internal).
 *
 * A host is a domain we serve: its event table, its loaded modules and
 * what they advertise in disco.  A service domain (conference., upload.)
 * is a host marked is_service: it has modules and events like a host, but
 * no accounts and no client logins.  Hosts and services are entered in
 * the domain registry (route/domains.h), which the router reads.  The loader dlopen()s mod_NAME.so
 * from the module path, refuses other ABIs, validates options against the module's table, loads
 * dependencies first, and on unload removes every hook, feature, timer and pending iq the module
 * registered.
 */
#ifndef TERN_MODULES_H
#define TERN_MODULES_H

#include <tern/module.h>

#include "config/config.h"
#include "route/hooks.h"
#include "route/host.h"

struct tern_module_ctx {
    struct tern_module_ctx *next;
    host_t *host;
    const tern_module_t *desc;
    void *dl;            /* dlopen handle */
    cfg_values_t values; /* validated options */
    void *data;          /* tern_set_data */
    int loaded;
    /* Reload (modules_reload.c): the other set of option values while a
     * reload is under way (the new ones, then the old ones once swapped). */
    cfg_values_t staged;
    int has_staged, swapped;
    unsigned generation; /* the reload that loaded it (0: start-up) */
    char error[128];     /* why the core refused a call of load() (tern_hook), or "" */
};

/* Create hosts from the config and load their modules.  0, or -1 with err. */
int hosts_init(const tern_config_t *cfg, cfg_error_t *err);
/* Open every configured module and validate its options without loading
 * it (ternd --check-config, and before a reload touches anything). */
int hosts_check(const tern_config_t *cfg, cfg_error_t *err);
/* Reload (modules_reload.c): bring hosts and modules to the new config.
 * Modules whose options did not change keep their context (hooks, data,
 * session slots, timers); changed ones get their new options in place and
 * their reconfigure callback; removed ones unload, added ones load; added
 * hosts are served, removed hosts close their sessions and stop being
 * served.  All or nothing: on error (a module refusing to load or its new
 * options), the running set is as before.  0, or -1 with err. */
int hosts_reload(const tern_config_t *cfg, cfg_error_t *err);
void hosts_free_all(void);
/* Fire a non-stanza event on every host (server/started...). */
void hosts_fire_all(const char *event, tern_event_t *ev);

/* The option table of mod_NAME.so in `dir` as Markdown on `out` (ternd
 * --options-doc, which doc/ is generated with).  0, or -1 with err. */
int module_options_doc(const char *dir, const char *name, FILE *out, cfg_error_t *err);

/* Unload one module: its unload callback, then every hook, feature,
 * service, timer, pending iq and session slot it owns (it must already be
 * out of its host's list). */
void module_unload(tern_module_ctx_t *m);

/* For modules_reload.c. */
extern unsigned modules_generation; /* stamped on each module loaded */
/* Load the modules of ch that h does not have yet, dependencies first.  A
 * module that fails stays in h's list (not loaded) for the caller to
 * unload.  0, or -1 with err. */
int host_load_modules(host_t *h, const tern_config_t *cfg, const cfg_host_t *ch, cfg_error_t *err);
/* A host with no modules, in the table of served hosts (NULL: out of
 * memory).  A host retired earlier under that name comes back. */
host_t *hosts_add(const char *name);
/* Unload every module of h (dependents first) and take h out of the
 * served hosts; it stays allocated, for the streams that still point to
 * it, until hosts_free_all(). */
void hosts_retire(host_t *h);
/* Mark h a service domain or a host, in h and in the domain registry. */
void hosts_set_service(host_t *h, int is_service);
/* The served hosts, as an array of *n. */
host_t *const *hosts_list(size_t *n);

#endif
