/*
 * modules.c — hosts and the module loader.
 *
 * Modules are found as mod_NAME.so in the module path.  A module is
 * refused when built for another ABI, when its options do not validate, or
 * when a module it depends on is not configured on the same host.  Load
 * order follows dependencies, never the order of names in the config.
 */
#include "core/modules.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "core/module_api.h"
#include "route/router.h"
#include "route/domains.h"
#include "route/sessions.h"
#include "core/web.h"

static host_t **host_list; /* served hosts */
static size_t n_hosts;
static host_t **retired; /* removed by a reload; streams may still point to them */
static size_t n_retired;
unsigned modules_generation;

/* Hosts and services are found through the domain registry (hosts_find,
 * route/host.c). */
void hosts_set_service(host_t *h, int is_service)
{
    h->is_service = is_service ? 1 : 0;
    if (hosts_find(h->name) == h)
        domains_set_host(h->name, h, h->is_service);
}

static void set_err(cfg_error_t *err, const char *file, unsigned line, const char *fmt,
                    const char *a, const char *b)
{
    char msg[400];
    if (snprintf(msg, sizeof(msg), fmt, a, b) >= (int)sizeof(msg))
        msg[sizeof(msg) - 2] = '~'; /* a long path: say it was cut */
    if (file)
        snprintf(err->text, sizeof(err->text), "%s:%u: %s", file, line, msg);
    else
        snprintf(err->text, sizeof(err->text), "%s", msg);
}

/* dlopen mod_NAME.so and return its descriptor, checking the ABI. */
static const tern_module_t *open_module(const tern_config_t *cfg, const cfg_module_t *cm,
                                        void **dl_r, cfg_error_t *err)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/mod_%s.so", cfg->module_path, cm->name);
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        set_err(err, cm->file, cm->line, "module '%s' cannot be loaded: %s", cm->name, dlerror());
        return NULL;
    }
    const tern_module_t *desc = dlsym(dl, "tern_module");
    if (!desc) {
        set_err(err, cm->file, cm->line, "module '%s': %s has no module descriptor", cm->name,
                path);
        dlclose(dl);
        return NULL;
    }
    if (desc->abi != TERN_ABI) {
        char why[1100];
        snprintf(why, sizeof(why), "%s has module ABI %d, this server needs %d", path, desc->abi,
                 TERN_ABI);
        set_err(err, cm->file, cm->line,
                "module '%s' was built for another server version (%s): rebuild it against "
                "this server's headers",
                cm->name, why);
        dlclose(dl);
        return NULL;
    }
    if (!desc->name || strcmp(desc->name, cm->name) != 0) {
        set_err(err, cm->file, cm->line, "module '%s': descriptor name mismatch in %s", cm->name,
                path);
        dlclose(dl);
        return NULL;
    }
    *dl_r = dl;
    return desc;
}

static const cfg_module_t *find_cfg_module(const cfg_host_t *ch, const char *name)
{
    for (size_t i = 0; i < ch->n_modules; i++)
        if (strcmp(ch->modules[i].name, name) == 0)
            return &ch->modules[i];
    return NULL;
}

static tern_module_ctx_t *find_loaded(host_t *h, const char *name)
{
    for (tern_module_ctx_t *m = h->modules; m; m = m->next)
        if (strcmp(m->desc->name, name) == 0)
            return m;
    return NULL;
}

/* Load module `cm` on host h after its dependencies; `depth` guards cycles. */
static int load_one(host_t *h, const tern_config_t *cfg, const cfg_host_t *ch,
                    const cfg_module_t *cm, int depth, cfg_error_t *err)
{
    if (find_loaded(h, cm->name))
        return 0;
    if (depth > 32) {
        set_err(err, cm->file, cm->line, "module '%s': dependency cycle%s", cm->name, "");
        return -1;
    }
    void *dl;
    const tern_module_t *desc = open_module(cfg, cm, &dl, err);
    if (!desc)
        return -1;
    for (const char *const *d = desc->depends; d && *d; d++) {
        const cfg_module_t *dep = find_cfg_module(ch, *d);
        if (!dep) {
            set_err(err, cm->file, cm->line, "module '%s' needs module '%s', which is not enabled",
                    cm->name, *d);
            dlclose(dl);
            return -1;
        }
        if (load_one(h, cfg, ch, dep, depth + 1, err) < 0) {
            dlclose(dl);
            return -1;
        }
    }
    tern_module_ctx_t *m = calloc(1, sizeof(*m));
    if (!m) {
        dlclose(dl);
        return -1;
    }
    m->host = h;
    m->desc = desc;
    m->dl = dl;
    m->generation = modules_generation;
    static const tern_option_t no_options[] = {{.name = NULL}};
    if (cfg_values_build(desc->options ? desc->options : no_options, cm->options, cm->name,
                         &m->values, err) < 0) {
        dlclose(dl);
        free(m);
        return -1;
    }
    /* Append, so that unload runs in reverse dependency order from the tail. */
    tern_module_ctx_t **tail = &h->modules;
    while (*tail)
        tail = &(*tail)->next;
    *tail = m;
    if (desc->load && desc->load(m) < 0) {
        if (m->error[0]) {
            char what[300];
            snprintf(what, sizeof(what), "%s: %s", h->name, m->error);
            set_err(err, cm->file, cm->line, "module '%s' failed to load on host %s", cm->name,
                    what);
        } else {
            set_err(err, cm->file, cm->line, "module '%s' failed to load on host %s", cm->name,
                    h->name);
        }
        return -1;
    }
    m->loaded = 1;
    log_debug("module %s loaded on %s", cm->name, h->name);
    return 0;
}

void module_unload(tern_module_ctx_t *m)
{
    if (m->loaded && m->desc->unload)
        m->desc->unload(m);
    hooks_remove_owner(m->host->hooks, m);
    web_module_unload(m);
    module_api_release(m);
    disco_item_t **p = &m->host->disco;
    while (*p) {
        if ((*p)->owner == m) {
            disco_item_t *dead = *p;
            *p = dead->next;
            if (dead->form)
                tern_xml_unref(dead->form);
            free(dead);
        } else {
            p = &(*p)->next;
        }
    }
    service_t **sp = &m->host->services;
    while (*sp) {
        if ((*sp)->owner == m) {
            service_t *dead = *sp;
            *sp = dead->next;
            free(dead);
        } else {
            sp = &(*sp)->next;
        }
    }
    sessions_drop_owner(m);
    cfg_values_clear(&m->values);
    if (m->has_staged)
        cfg_values_clear(&m->staged);
        /* Under sanitizers keep the code mapped so leak reports can name it. */
#ifndef TERN_KEEP_MODULES_MAPPED
    dlclose(m->dl);
#endif
    free(m);
}

/* Unload in reverse load order so dependents go before what they need. */
static void unload_host_modules(host_t *h)
{
    while (h->modules) {
        tern_module_ctx_t **p = &h->modules;
        while ((*p)->next)
            p = &(*p)->next;
        tern_module_ctx_t *last = *p;
        *p = NULL;
        module_unload(last);
    }
}

static host_t *host_new(const char *name)
{
    host_t *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    h->name = strdup(name);
    h->jid = tern_jid_new(name, NULL);
    h->hooks = hooks_new();
    if (!h->name || !h->jid || !h->hooks) {
        free((char *)h->name);
        tern_jid_free(&h->jid);
        hooks_free(&h->hooks);
        free(h);
        return NULL;
    }
    return h;
}

static void host_free(host_t *h)
{
    unload_host_modules(h);
    hooks_free(&h->hooks);
    tern_jid_free(&h->jid);
    free((char *)h->name);
    free(h);
}

int host_load_modules(host_t *h, const tern_config_t *cfg, const cfg_host_t *ch, cfg_error_t *err)
{
    for (size_t i = 0; i < ch->n_modules; i++)
        if (load_one(h, cfg, ch, &ch->modules[i], 0, err) < 0)
            return -1;
    return 0;
}

int hosts_init(const tern_config_t *cfg, cfg_error_t *err)
{
    router_set_iq_reply(module_api_iq_reply); /* answers to tern_send_iq */
    host_list = calloc(cfg->n_hosts ? cfg->n_hosts : 1, sizeof(*host_list));
    if (!host_list)
        return -1;
    for (size_t i = 0; i < cfg->n_hosts; i++) {
        host_t *h = host_new(cfg->hosts[i].name);
        if (!h)
            return -1;
        h->is_service = cfg->hosts[i].is_service;
        host_list[n_hosts++] = h;
        if (domains_set_host(h->name, h, h->is_service) < 0)
            return -1;
    }
    for (size_t i = 0; i < n_hosts; i++)
        if (host_load_modules(host_list[i], cfg, &cfg->hosts[i], err) < 0)
            return -1;
    return 0;
}

int hosts_check(const tern_config_t *cfg, cfg_error_t *err)
{
    static const tern_option_t no_options[] = {{.name = NULL}};
    for (size_t i = 0; i < cfg->n_hosts; i++) {
        const cfg_host_t *ch = &cfg->hosts[i];
        for (size_t j = 0; j < ch->n_modules; j++) {
            void *dl;
            const tern_module_t *desc = open_module(cfg, &ch->modules[j], &dl, err);
            if (!desc)
                return -1;
            cfg_values_t values;
            int rc = cfg_values_build(desc->options ? desc->options : no_options,
                                      ch->modules[j].options, desc->name, &values, err);
            if (rc == 0)
                cfg_values_clear(&values);
            for (const char *const *d = desc->depends; rc == 0 && d && *d; d++)
                if (!find_cfg_module(ch, *d)) {
                    set_err(err, ch->modules[j].file, ch->modules[j].line,
                            "module '%s' needs module '%s', which is not enabled", desc->name, *d);
                    rc = -1;
                }
            dlclose(dl);
            if (rc < 0)
                return -1;
        }
    }
    return 0;
}

host_t *const *hosts_list(size_t *n)
{
    *n = n_hosts;
    return host_list;
}

host_t *hosts_add(const char *name)
{
    host_t **grown = realloc(host_list, (n_hosts + 1) * sizeof(*host_list));
    if (!grown)
        return NULL;
    host_list = grown;
    host_t *h = NULL;
    for (size_t i = 0; i < n_retired && !h; i++)
        if (strcmp(retired[i]->name, name) == 0) {
            h = retired[i];
            retired[i] = retired[--n_retired];
        }
    if (!h && !(h = host_new(name)))
        return NULL;
    if (domains_set_host(h->name, h, h->is_service) < 0) {
        host_free(h);
        return NULL;
    }
    host_list[n_hosts++] = h;
    return h;
}

/* Take h out of the served hosts (table and list). */
static void hosts_unlist(host_t *h)
{
    if (hosts_find(h->name) == h)
        domains_remove(h->name);
    for (size_t i = 0; i < n_hosts; i++)
        if (host_list[i] == h) {
            memmove(&host_list[i], &host_list[i + 1], (n_hosts - i - 1) * sizeof(*host_list));
            n_hosts--;
            break;
        }
}

void hosts_retire(host_t *h)
{
    unload_host_modules(h);
    hosts_unlist(h);
    host_t **grown = realloc(retired, (n_retired + 1) * sizeof(*retired));
    if (!grown) {
        log_error("out of memory: host %s is kept among the served hosts", h->name);
        host_list[n_hosts++] = h; /* the list had room for it */
        domains_set_host(h->name, h, h->is_service);
        return;
    }
    retired = grown;
    retired[n_retired++] = h;
}

void hosts_free_all(void)
{
    for (size_t i = 0; i < n_hosts; i++) {
        if (hosts_find(host_list[i]->name) == host_list[i])
            domains_remove(host_list[i]->name);
        host_free(host_list[i]);
    }
    for (size_t i = 0; i < n_retired; i++)
        host_free(retired[i]);
    free(host_list);
    free(retired);
    host_list = retired = NULL;
    n_hosts = n_retired = 0;
}

void hosts_fire_all(const char *event, tern_event_t *ev)
{
    for (size_t i = 0; i < n_hosts; i++)
        hooks_fire(host_list[i]->hooks, event, ev);
}

int module_options_doc(const char *dir, const char *name, FILE *out, cfg_error_t *err)
{
    tern_config_t cfg = {.module_path = dir};
    const cfg_module_t cm = {.name = name};
    void *dl;
    const tern_module_t *desc = open_module(&cfg, &cm, &dl, err);
    if (!desc)
        return -1;
    cfg_options_markdown(desc->options, out);
    dlclose(dl);
    return 0;
}
