/*
 * server.c — start, reload and stop the server as a whole.
 *
 * A reload builds the new configuration, checks every module against it
 * and builds the new TLS contexts before anything is swapped; then hosts
 * and modules are brought to it in place (modules_reload.c), keeping the
 * state of unchanged modules and of every open session.  On any error the
 * running configuration stays untouched.
 */
#include "core/server.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "net/resolver.h"
#include "store/accounts.h"
#include "route/hooks.h"
#include "util/log.h"
#include "core/modules.h"
#include "route/router.h"
#include "route/sessions.h"
#include "xmpp/conn.h"
#include "xmpp/flow.h"
#include "core/web.h"
#include "stream/s2s.h"

/* The host a service domain without a certificate of its own borrows one
 * from: the host it is a subdomain of (the longest such name), or NULL. */
static const cfg_host_t *parent_host(const tern_config_t *cfg, const cfg_host_t *svc)
{
    const cfg_host_t *best = NULL;
    size_t len = strlen(svc->name);
    for (size_t i = 0; i < cfg->n_hosts; i++) {
        const cfg_host_t *h = &cfg->hosts[i];
        size_t hl = strlen(h->name);
        if (h->is_service || hl + 1 >= len || svc->name[len - hl - 1] != '.' ||
            strcmp(svc->name + len - hl, h->name) != 0)
            continue;
        if (!best || hl > strlen(best->name))
            best = h;
    }
    return best;
}

/* TLS contexts for every host and service domain: its own certificate,
 * else (a service domain) the certificate of the host it is under, else
 * the global one. */
void server_cert_paths(const tern_config_t *cfg, const cfg_host_t *h, const char **cert,
                       const char **key)
{
    const cfg_host_t *from = h;
    if (h->is_service && !h->certificate && (from = parent_host(cfg, h)) == NULL)
        from = h;
    *cert = from->certificate ? from->certificate : cfg->certificate;
    *key = from->key ? from->key : cfg->key;
}

tls_server_t *server_build_tls(const tern_config_t *cfg, cfg_error_t *err)
{
    tls_cert_spec_t *specs = calloc(cfg->n_hosts + 1, sizeof(*specs));
    if (!specs)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_hosts; i++) {
        const cfg_host_t *h = &cfg->hosts[i];
        const char *cert, *key;
        server_cert_paths(cfg, h, &cert, &key);
        if (cert && key)
            specs[n++] = (tls_cert_spec_t){.host = h->name, .certificate = cert, .key = key};
    }
    tls_server_t *t = NULL;
    if (n == 0) {
        snprintf(err->text, sizeof(err->text),
                 "%s: no TLS certificate configured (tls.certificate and tls.key)", cfg->path);
    } else {
        t = tls_server_new(specs, n, cfg->tls_ciphers, cfg->tls_ciphersuites, err->text,
                           sizeof(err->text));
    }
    free(specs);
    return t;
}

int server_check_config(const tern_config_t *cfg, cfg_error_t *err)
{
    if (hosts_check(cfg, err) < 0)
        return -1;
    tls_server_t *tls = server_build_tls(cfg, err);
    if (!tls)
        return -1;
    tls_server_free(&tls);
    /* The trust store for other servers' certificates (federation). */
    char why[300];
    tls_client_t *trust = tls_client_new(cfg->s2s.ca_file, why, sizeof(why));
    if (!trust) {
        snprintf(err->text, sizeof(err->text), "%s: s2s.ca_file: %s", cfg->path, why);
        return -1;
    }
    tls_client_free(&trust);
    return 0;
}

void server_apply_settings(const tern_config_t *cfg)
{
    flow_set_stall_ms(cfg->slow_reader_timeout_ms);
    web_apply_settings(cfg);
}

static int same_servers(const tern_config_t *a, const tern_config_t *b)
{
    if (a->n_dns_servers != b->n_dns_servers)
        return 0;
    for (size_t i = 0; i < a->n_dns_servers; i++)
        if (strcmp(a->dns_servers[i], b->dns_servers[i]) != 0)
            return 0;
    return 1;
}

resolver_t *server_build_resolver(const tern_config_t *cfg, cfg_error_t *err)
{
    char why[256];
    resolver_t *r =
        resolver_new(server.base, cfg->dns_servers, cfg->n_dns_servers, why, sizeof(why));
    if (!r)
        snprintf(err->text, sizeof(err->text), "%s: DNS: %s", cfg->path, why);
    return r;
}

int server_reload(cfg_error_t *err)
{
    tern_config_t *cfg = config_load(server.cfg->path, err);
    if (!cfg)
        return -1;
    tls_server_t *tls = NULL;
    if (hosts_check(cfg, err) < 0 || !(tls = server_build_tls(cfg, err))) {
        config_free(&cfg);
        return -1;
    }
    /* The trust store for peers' certificates (s2s.ca_file). */
    char why[300];
    tls_client_t *trust = tls_client_new(cfg->s2s.ca_file, why, sizeof(why));
    if (!trust) {
        snprintf(err->text, sizeof(err->text), "%s: s2s.ca_file: %s", cfg->path, why);
        config_free(&cfg);
        tls_server_free(&tls);
        return -1;
    }
    /* A new resolver only for new DNS servers: the old one keeps its
     * cache, or finishes its pending queries once replaced. */
    resolver_t *resolver = NULL;
    if (!same_servers(cfg, server.cfg) && !(resolver = server_build_resolver(cfg, err))) {
        config_free(&cfg);
        tls_server_free(&tls);
        tls_client_free(&trust);
        return -1;
    }
    /* Modules read the new configuration (server.cfg) while they load or
     * reconfigure; on failure hosts_reload has put everything back. */
    tern_config_t *old = server.cfg;
    server.cfg = cfg;
    if (hosts_reload(cfg, err) < 0) {
        server.cfg = old;
        config_free(&cfg);
        tls_server_free(&tls);
        tls_client_free(&trust);
        resolver_free(&resolver);
        return -1;
    }
    if (resolver) {
        resolver_retire(&server.resolver, resolver);
        server.resolver = resolver;
        log_info("DNS servers changed");
    }
    if (log_open(cfg->log_level, cfg->log_file) < 0)
        log_warn("cannot reopen log file %s", cfg->log_file);
    tls_server_free(&server.tls);
    server.tls = tls;
    server_apply_settings(cfg);
    s2s_apply(&trust); /* ca_file, dialback_secret; the other s2s settings are read at use */
    for (size_t i = 0; i < cfg->n_components; i++)
        router_component_declare(cfg->components[i].domain);
    config_free(&old);
    log_info("configuration and certificates reloaded");
    return 0;
}

static void stop_poll(evutil_socket_t fd, short what, void *arg)
{
    static int rounds;
    if (conn_count() == 0 || ++rounds > 40)
        event_base_loopexit(server.base, NULL);
}

void server_stop(void)
{
    if (server.stopping)
        return;
    server.stopping = 1;
    log_info("shutting down");
    tern_event_t ev = {0};
    hosts_fire_all("server/stopping", &ev);
    conn_close_all("system-shutdown");
    web_close_connections();
    /* Give streams up to two seconds to flush their goodbyes. */
    struct event *poll = event_new(server.base, -1, EV_PERSIST, stop_poll, NULL);
    struct timeval tv = {0, 50000};
    if (!poll || event_add(poll, &tv) < 0)
        event_base_loopexit(server.base, NULL);
    server.stop_event = poll;
}

size_t server_kick_user(const char *host, const char *user, const char *condition)
{
    char bare[2048];
    snprintf(bare, sizeof(bare), "%s@%s", user, host);
    user_sessions_t *u = sessions_find_bare(bare);
    size_t n = 0;
    tern_session_t *next;
    for (tern_session_t *s = u ? u->first : NULL; s; s = next) {
        next = s->next_of_user;
        sessions_close(s, condition);
        n++;
    }
    return n;
}

int server_delete_user(const char *host, const char *user, const char **error_r)
{
    host_t *h = hosts_find(host);
    if (!h || h->is_service) {
        *error_r = "not a host of this server";
        return -1;
    }
    server_kick_user(host, user, "not-authorized");
    if (!server.db || accounts_delete(server.db, host, user, error_r) < 0)
        return -1;
    tern_event_t ev = {.user = user};
    hooks_fire(h->hooks, "user/deleted", &ev);
    return 0;
}

size_t server_session_count(void)
{
    return sessions_count();
}

int server_is_host(const char *domain)
{
    const host_t *h = hosts_find(domain);
    return h != NULL && !h->is_service;
}
