/*
 * modules.h — hosts and the modules loaded on them (internal).
 *
 * A host is a domain we serve: its event table, its loaded modules and
 * what they advertise in disco.  The loader dlopen()s mod_NAME.so from the
 * module path, refuses other ABIs, validates options against the module's
 * table, loads dependencies first, and on unload removes every hook,
 * feature, timer and pending iq the module registered.
 */
#ifndef TERN_MODULES_H
#define TERN_MODULES_H

#include <tern/module.h>

#include "core/config.h"
#include "core/hooks.h"

typedef struct host host_t;

struct tern_module_ctx {
    struct tern_module_ctx *next;
    host_t *host;
    const tern_module_t *desc;
    void *dl;            /* dlopen handle */
    cfg_values_t values; /* validated options */
    void *data;          /* tern_set_data */
    int loaded;
};

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

struct host {
    const char *name;
    tern_jid_t *jid;
    hooks_t *hooks;
    tern_module_ctx_t *modules;
    disco_item_t *disco;
    service_t *services;
};

/* Create hosts from the config and load their modules.  0, or -1 with err. */
int hosts_init(const tern_config_t *cfg, cfg_error_t *err);
/* Open every configured module and validate its options without loading
 * it (ternd --check-config, and before a reload touches anything). */
int hosts_check(const tern_config_t *cfg, cfg_error_t *err);
/* Reload: unload every module of every host and load the new config's set. */
int hosts_reload(const tern_config_t *cfg, cfg_error_t *err);
void hosts_free_all(void);
host_t *hosts_find(const char *domain);
/* Fire a non-stanza event on every host (server/started...). */
void hosts_fire_all(const char *event, tern_event_t *ev);

/* The option table of mod_NAME.so in `dir` as Markdown on `out` (ternd
 * --options-doc, which doc/ is generated with).  0, or -1 with err. */
int module_options_doc(const char *dir, const char *name, FILE *out, cfg_error_t *err);

/* Names of the modules a host knows (for `ternctl status`); internal use. */
void module_unload(tern_module_ctx_t *m);

#endif
