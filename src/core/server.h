/*
 * server.h — the running server: configuration, hosts, storage, TLS and
 * the event loop, and the operations the admin socket triggers (internal).
 * The server record itself (server_t) lives in route/host.h, where the
 * layers below the core can read it.
 */
#ifndef TERN_SERVER_H
#define TERN_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include "config/config.h"
#include "store/store.h"
#include "tls/tls.h"
#include "route/host.h"

struct event;
/* TLS contexts for every host from cfg; NULL and err on failure. */
tls_server_t *server_build_tls(const tern_config_t *cfg, cfg_error_t *err);
/* The certificate and key files host `h` presents: its own, else (a
 * service domain) its parent host's, else the global ones; NULL when none. */
void server_cert_paths(const tern_config_t *cfg, const cfg_host_t *h, const char **cert,
                       const char **key);
/* Everything --check-config checks beyond config_load(): every module opens
 * and accepts its options, and the TLS certificates load.  0 / -1 with err. */
int server_check_config(const tern_config_t *cfg, cfg_error_t *err);
/* Apply the settings of cfg that hold for the whole process rather than
 * for one host or one connection (limits.slow_reader_timeout): once at
 * start-up and again on every reload, for the connections already open
 * too. */
void server_apply_settings(const tern_config_t *cfg);
struct resolver;
/* A resolver (net/resolver.h) on server.base asking cfg's dns.servers;
 * NULL and err on failure.  Reloads replace server.resolver only when the
 * servers changed. */
struct resolver *server_build_resolver(const tern_config_t *cfg, cfg_error_t *err);
/* Reload config and certificates; the old ones stay on any error.  0 / -1 with err. */
int server_reload(cfg_error_t *err);
/* Close all streams cleanly and leave the loop. */
void server_stop(void);
/* Close every session of host/user with the given stream error condition
 * (e.g. "not-authorized" after a password change or deletion).  Returns the count. */
size_t server_kick_user(const char *host, const char *user, const char *condition);
/* Delete the account host/user as a running server must: end its sessions,
 * delete it and all its stored data, and tell the host's modules
 * ("user/deleted").  0, or -1 with *error_r set. */
int server_delete_user(const char *host, const char *user, const char **error_r);
/* Number of bound client sessions. */
size_t server_session_count(void);
/* True when `domain` is one of our hosts. */
int server_is_host(const char *domain);

#endif
