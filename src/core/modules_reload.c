/*
 * modules_reload.c — bring the running hosts and modules to a new
 * configuration without losing what users have.
 *
 * A module whose options did not change keeps its context untouched:
 * hooks, data, per-session slots, timers, pending iqs.  A module whose
 * options changed keeps its context too; its values are swapped in place
 * and its reconfigure callback runs.  Only modules and hosts that the new
 * configuration adds or removes are loaded or unloaded.  The work is done
 * in an order that can be undone until nothing can fail any more:
 *   1. build every changed module's new values (nothing changes yet);
 *   2. add new hosts and load added modules (undone by unloading them);
 *   3. swap changed options and call reconfigure (undone by swapping back);
 *   4. commit: unload removed modules, retire removed hosts.
 * Service domains (`services:` in the configuration) are hosts marked
 * is_service, added, changed and removed the same way.
 * It must not touch TLS contexts or listeners (server.c owns those).
 */
#include "core/modules.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "core/server.h"

static const tern_option_t no_options[] = {{.name = NULL}};

/* Whether two value sets of the same option table hold the same values. */
static int values_equal(const cfg_values_t *a, const cfg_values_t *b)
{
    if (a->count != b->count)
        return 0;
    for (size_t i = 0; i < a->count; i++) {
        const cfg_value_t *x = &a->values[i], *y = &b->values[i];
        if (x->num != y->num || x->list_len != y->list_len)
            return 0;
        if ((x->str == NULL) != (y->str == NULL) || (x->str && strcmp(x->str, y->str) != 0))
            return 0;
        if ((x->list == NULL) != (y->list == NULL))
            return 0;
        for (size_t j = 0; x->list && j < x->list_len; j++)
            if (strcmp(x->list[j], y->list[j]) != 0)
                return 0;
    }
    return 1;
}

static const cfg_module_t *cfg_module_of(const cfg_host_t *ch, const char *name)
{
    for (size_t i = 0; ch && i < ch->n_modules; i++)
        if (strcmp(ch->modules[i].name, name) == 0)
            return &ch->modules[i];
    return NULL;
}

/* Every module of h, last loaded first, in a fresh array of *n (NULL and
 * *n 0 when h has none or memory is short). */
static tern_module_ctx_t **modules_backwards(host_t *h, size_t *n)
{
    *n = 0;
    for (tern_module_ctx_t *m = h->modules; m; m = m->next)
        (*n)++;
    tern_module_ctx_t **v = *n ? calloc(*n, sizeof(*v)) : NULL;
    if (!v) {
        *n = 0;
        return NULL;
    }
    size_t i = *n;
    for (tern_module_ctx_t *m = h->modules; m; m = m->next)
        v[--i] = m;
    return v;
}

static void unlink_module(host_t *h, tern_module_ctx_t *m)
{
    tern_module_ctx_t **p = &h->modules;
    while (*p && *p != m)
        p = &(*p)->next;
    if (*p)
        *p = m->next;
}

/* Unload the modules of h that `gone` says must go, dependents first;
 * `why` (or NULL) is logged with each. */
static void unload_matching(host_t *h, int (*gone)(const tern_module_ctx_t *m, const void *arg),
                            const void *arg, const char *why)
{
    size_t n;
    tern_module_ctx_t **v = modules_backwards(h, &n);
    for (size_t i = 0; i < n; i++)
        if (gone(v[i], arg)) {
            if (why)
                log_info("reload: module %s unloaded from %s (%s)", v[i]->desc->name, h->name, why);
            unlink_module(h, v[i]);
            module_unload(v[i]);
        }
    free(v);
}

static int loaded_by_this_reload(const tern_module_ctx_t *m, const void *arg)
{
    return m->generation == *(const unsigned *)arg;
}

static int not_configured(const tern_module_ctx_t *m, const void *arg)
{
    return cfg_module_of(arg, m->desc->name) == NULL;
}

/* Step 1: the new values of every kept module whose options changed go to
 * m->staged.  Nothing the running server uses changes.  0, or -1 with err. */
static int stage_options(const tern_config_t *cfg, cfg_error_t *err)
{
    size_t n;
    host_t *const *hosts = hosts_list(&n);
    for (size_t i = 0; i < n; i++) {
        const cfg_host_t *ch = config_host(cfg, hosts[i]->name);
        for (tern_module_ctx_t *m = hosts[i]->modules; ch && m; m = m->next) {
            const cfg_module_t *cm = cfg_module_of(ch, m->desc->name);
            if (!cm)
                continue;
            cfg_values_t v;
            const tern_option_t *table = m->desc->options ? m->desc->options : no_options;
            if (cfg_values_build(table, cm->options, cm->name, &v, err) < 0)
                return -1;
            if (values_equal(&v, &m->values)) {
                cfg_values_clear(&v);
                continue;
            }
            m->staged = v;
            m->has_staged = 1;
        }
    }
    return 0;
}

/* Undo steps 3 (swap back, reconfigure again) and 1 (drop staged values). */
static void unstage_options(void)
{
    size_t n;
    host_t *const *hosts = hosts_list(&n);
    for (size_t i = 0; i < n; i++)
        for (tern_module_ctx_t *m = hosts[i]->modules; m; m = m->next) {
            if (m->swapped) {
                cfg_values_t t = m->values;
                m->values = m->staged;
                m->staged = t;
                m->swapped = 0;
                if (m->desc->reconfigure && m->desc->reconfigure(m) < 0)
                    log_error("reload: module %s on %s refused its previous options again",
                              m->desc->name, hosts[i]->name);
            }
            if (m->has_staged)
                cfg_values_clear(&m->staged);
            m->has_staged = 0;
        }
}

/* Step 3: swap in the staged values and tell the module.  0, or -1 with
 * err when a module refuses them (the caller undoes with unstage_options). */
static int swap_options(cfg_error_t *err)
{
    size_t n;
    host_t *const *hosts = hosts_list(&n);
    for (size_t i = 0; i < n; i++)
        for (tern_module_ctx_t *m = hosts[i]->modules; m; m = m->next) {
            if (!m->has_staged || m->generation == modules_generation)
                continue;
            cfg_values_t t = m->values;
            m->values = m->staged;
            m->staged = t;
            m->swapped = 1;
            if (m->desc->reconfigure && m->desc->reconfigure(m) < 0) {
                snprintf(err->text, sizeof(err->text),
                         "module '%s' refused its new options on host %s", m->desc->name,
                         hosts[i]->name);
                return -1;
            }
            log_info("reload: module %s on %s reconfigured", m->desc->name, hosts[i]->name);
        }
    return 0;
}

typedef struct user_list {
    char **v;
    size_t n, cap;
} user_list_t;

static int collect_user(void *ctx, const char *host, const char *user)
{
    user_list_t *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **grown = realloc(l->v, cap * sizeof(*grown));
        if (!grown)
            return 1;
        l->v = grown;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(user)))
        return 1;
    l->n++;
    return 0;
}

/* A host the new configuration no longer has: its users' sessions end with
 * <host-gone/> (RFC 6120 §4.9.3.6), its modules unload, and it is no
 * longer served.  Runs once per reload, not per stanza: walking the host's
 * accounts is fine here. */
static void retire_host(host_t *h)
{
    user_list_t users = {0};
    if (server.db && !h->is_service) /* a service domain has no accounts */
        store_account_foreach(server.db, h->name, collect_user, &users);
    for (size_t i = 0; i < users.n; i++) {
        server_kick_user(h->name, users.v[i], "host-gone");
        free(users.v[i]);
    }
    free(users.v);
    int was_service = h->is_service;
    hosts_retire(h);
    log_info("reload: %s %s is no longer served", was_service ? "service domain" : "host", h->name);
}

int hosts_reload(const tern_config_t *cfg, cfg_error_t *err)
{
    unsigned gen = ++modules_generation;
    if (stage_options(cfg, err) < 0) {
        unstage_options();
        return -1;
    }
    /* Step 2: new hosts, and modules added on kept hosts. */
    host_t **added = calloc(cfg->n_hosts ? cfg->n_hosts : 1, sizeof(*added));
    size_t n_added = 0;
    int rc = added ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < cfg->n_hosts; i++) {
        if (hosts_find(cfg->hosts[i].name))
            continue;
        host_t *h = hosts_add(cfg->hosts[i].name);
        if (!h) {
            snprintf(err->text, sizeof(err->text), "out of memory adding host %s",
                     cfg->hosts[i].name);
            rc = -1;
        } else {
            hosts_set_service(h, cfg->hosts[i].is_service);
            added[n_added++] = h;
        }
    }
    size_t n;
    host_t *const *hosts = hosts_list(&n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const cfg_host_t *ch = config_host(cfg, hosts[i]->name);
        if (ch && host_load_modules(hosts[i], cfg, ch, err) < 0)
            rc = -1;
    }
    /* Step 3. */
    if (rc == 0 && swap_options(err) < 0)
        rc = -1;
    if (rc < 0) {
        unstage_options();
        /* Retired, not freed: a host revived by this reload may still be
         * pointed to by streams from before it was removed. */
        for (size_t i = 0; i < n_added; i++)
            hosts_retire(added[i]); /* unloads what it loaded */
        hosts = hosts_list(&n);
        for (size_t i = 0; i < n; i++)
            unload_matching(hosts[i], loaded_by_this_reload, &gen, NULL);
        free(added);
        return -1;
    }
    free(added);
    /* Step 4: nothing below fails.  The old values of reconfigured modules go. */
    hosts = hosts_list(&n);
    for (size_t i = 0; i < n; i++) {
        for (tern_module_ctx_t *m = hosts[i]->modules; m; m = m->next) {
            if (m->has_staged)
                cfg_values_clear(&m->staged);
            m->has_staged = m->swapped = 0;
            if (m->generation == gen)
                log_info("reload: module %s loaded on %s", m->desc->name, hosts[i]->name);
        }
        const cfg_host_t *ch = config_host(cfg, hosts[i]->name);
        if (ch && ch->is_service != hosts[i]->is_service) {
            /* Its entry exists: marking it cannot fail. */
            hosts_set_service(hosts[i], ch->is_service);
            log_info("reload: %s is now a %s", hosts[i]->name,
                     ch->is_service ? "service domain" : "host");
        }
        if (ch)
            unload_matching(hosts[i], not_configured, ch, "no longer configured");
    }
    for (size_t i = n; i-- > 0;) {
        hosts = hosts_list(&n);
        if (i < n && !config_host(cfg, hosts[i]->name))
            retire_host(hosts[i]);
    }
    return 0;
}
