/*
 * config.h — the YAML configuration, loaded and checked (internal).
 *
 * cfg_load() reads the file into a tree that remembers file and line of
 * every node, then builds a tern_config_t with every global setting
 * checked.  Any error is fatal and names FILE:LINE.  A reload builds a new
 * tern_config_t and swaps it in only when it is wholly valid.
 */
#ifndef TERN_CONFIG_H
#define TERN_CONFIG_H

#include <stddef.h>
#include <stdio.h>
#include <tern/options.h>

typedef enum { CFG_SCALAR = 1, CFG_MAP, CFG_SEQ } cfg_type_t;

typedef struct cfg_node cfg_node_t;
struct cfg_node {
    cfg_type_t type;
    const char *key;             /* key under which this node sits in its parent map, else NULL */
    const char *value;           /* scalar value, else NULL */
    cfg_node_t *children, *next; /* map entries / sequence items, in file order */
    const char *file;
    unsigned line; /* 1-based; for a map entry, the line of its key */
    int is_null;   /* plain scalar "", "~" or "null": no value given */
    void *mem;     /* root only: owner of the whole tree (NULL elsewhere) */
};

/* Error text buffer: "FILE:LINE: message". */
typedef struct cfg_error {
    char text[512];
} cfg_error_t;

/* Allocations released together (cfg_yaml.c): zeroed, aligned for any
 * type.  `*mem` starts NULL; cfg_mem_free() releases all and resets it. */
typedef struct cfg_mem cfg_mem_t;
void *cfg_mem_alloc(cfg_mem_t **mem, size_t n);
char *cfg_mem_strdup(cfg_mem_t **mem, const char *s);
void cfg_mem_free(cfg_mem_t **mem);

/* Generic tree (cfg_yaml.c).  One YAML document; anchors and aliases are
 * refused, and so are duplicate keys.  An empty document is a null scalar.
 * `name` is what errors and node->file say.  NULL and err on error. */
cfg_node_t *cfg_yaml_load(const char *path, cfg_error_t *err);
cfg_node_t *cfg_yaml_parse(const char *text, size_t len, const char *name, cfg_error_t *err);
/* Free a tree returned by cfg_yaml_load/parse (no-op on inner nodes). */
void cfg_node_free(cfg_node_t **root);
/* The entry `key` of `map`; NULL when absent or `map` is not a map. */
cfg_node_t *cfg_map_get(const cfg_node_t *map, const char *key);

/* Typed option values (cfg_options.c). */
typedef struct cfg_value {
    const tern_option_t *opt;
    long long num;     /* BOOL 0/1, INT, DURATION (ms), SIZE (bytes) */
    const char *str;   /* STRING */
    const char **list; /* LIST: NULL-terminated */
    size_t list_len;
} cfg_value_t;

typedef struct cfg_values {
    const tern_option_t *table; /* terminated by .name == NULL */
    cfg_value_t *values;        /* one per table row, same order */
    size_t count;
    void *mem; /* owner of strings and lists */
} cfg_values_t;

/* Check `node` (a map, or NULL for all defaults) against `table`: unknown
 * keys, wrong types, out-of-range values are errors "FILE:LINE: module
 * 'NAME': ...".  On success fills *out (free with cfg_values_clear). */
int cfg_values_build(const tern_option_t *table, const cfg_node_t *node, const char *owner,
                     cfg_values_t *out, cfg_error_t *err);
/* The same for a section of the global configuration: errors read
 * "FILE:LINE: section 'NAME': ...". */
int cfg_section_build(const tern_option_t *table, const cfg_node_t *node, const char *section,
                      cfg_values_t *out, cfg_error_t *err);
void cfg_values_clear(cfg_values_t *v);
const cfg_value_t *cfg_values_get(const cfg_values_t *v, const char *name);
/* Parse helpers shared by the global config; 0, or -1 when invalid.
 * bool: true/false/yes/no/on/off (any case).  duration: a number of
 * seconds, or with suffix ms/s/m/h/d, fractions allowed ("1.5s").  size: a
 * number of bytes, or with suffix K/M/G/T (also KB, KiB...: powers of 1024). */
int cfg_parse_bool(const char *s, int *out);
int cfg_parse_duration_ms(const char *s, long long *out);
int cfg_parse_size(const char *s, long long *out);
/* A DNS server as `dns.servers` lists it: "IP", "IP:PORT" or
 * "[IPv6]:PORT" (a bare IPv6 address too).  The address into ip (text),
 * the port (53 when none) into *port.  0, or -1 when invalid. */
int cfg_parse_dns_server(const char *s, char *ip, size_t iplen, int *port);
/* `v` of type `t` as an administrator would write it ("90s" -> "90s",
 * 3600000 ms -> "1h", 1048576 bytes -> "1M"). */
void cfg_format_value(tern_opt_type_t t, long long v, char *buf, size_t len);
/* Write option table `table` as a Markdown table (cfg_doc.c). */
void cfg_options_markdown(const tern_option_t *table, FILE *out);

/* Server configuration (cfg_server.c). */
typedef enum {
    LISTEN_C2S = 1,
    LISTEN_C2S_TLS,
    LISTEN_COMPONENT,
    LISTEN_S2S,     /* servers, STARTTLS (default port 5269) */
    LISTEN_S2S_TLS, /* servers, direct TLS with ALPN xmpp-server (XEP-0368; 5270) */
    LISTEN_HTTP,    /* HTTP/1.1: WebSocket, host-meta, module paths (5280) */
    LISTEN_HTTPS,   /* the same over TLS with the server's certificates (5281) */
} cfg_listen_kind_t;

/* The listener type as written in the configuration ("c2s", ...). */
const char *cfg_listen_kind_name(cfg_listen_kind_t kind);

typedef struct cfg_listener {
    cfg_listen_kind_t kind;
    const char *address; /* "::" (dual-stack), "0.0.0.0", "127.0.0.1", ... */
    int port;
} cfg_listener_t;

typedef struct cfg_module {
    const char *name;
    const cfg_node_t *options; /* map or NULL */
    const char *file;
    unsigned line;
} cfg_module_t;

typedef struct cfg_host {
    const char *name;              /* prepared domain */
    int is_service;                /* from `services:`: no accounts, no logins */
    const char *certificate, *key; /* NULL = the global ones */
    cfg_module_t *modules;         /* global modules merged with the host's own */
    size_t n_modules;
} cfg_host_t;

typedef struct cfg_component {
    const char *domain;
    const char *secret;
} cfg_component_t;

typedef enum { CONFLICT_KICK_OLD = 0, CONFLICT_REFUSE = 1 } cfg_conflict_t;

typedef struct tern_config {
    const char *path;       /* as given to config_load() */
    const char *config_dir; /* absolute folder of `path` */
    cfg_node_t *root;

    const char *log_level;    /* error | warn | info | debug */
    const char *log_file;     /* NULL = stderr; else absolute (state_dir joined) */
    const char *state_dir;    /* absolute (config_dir joined when relative) */
    const char *storage_path; /* absolute (state_dir joined when relative) */
    const char *module_path;  /* absolute (state_dir joined when relative) */
    const char *admin_socket; /* absolute */
    const char **admins;      /* NULL-terminated bare JIDs */

    const char *certificate, *key; /* default TLS certificate chain and key (PEM);
                                      absolute, or NULL when not configured */
    const char *tls_ciphers;       /* TLS 1.2 cipher list; NULL = built-in default */
    const char *tls_ciphersuites;  /* TLS 1.3 suites; NULL = built-in default */

    cfg_listener_t *listeners;
    size_t n_listeners;
    cfg_host_t *hosts; /* the hosts, then the service domains (is_service) */
    size_t n_hosts;
    cfg_component_t *components;
    size_t n_components;

    /* dns */
    const char **dns_servers; /* NULL-terminated; none = /etc/resolv.conf */
    size_t n_dns_servers;

    /* limits */
    long long max_stanza_size;        /* bytes, default 256 KiB */
    long long c2s_idle_timeout_ms;    /* default 300 s; whitespace ping sent at half */
    long long handshake_timeout_ms;   /* default 30 s until authenticated */
    long long auth_failure_delay_ms;  /* default 1000 */
    long long max_auth_failures;      /* per connection, default 3 */
    long long max_sessions_per_user;  /* bound resources of one account, default 10 */
    long long slow_reader_timeout_ms; /* output unread while senders wait, default 60 s */
    long long max_connections_per_ip; /* open c2s connections per address, 0 = no limit */
    long long max_stanzas_per_second; /* per account, 0 = no limit */
    long long stanza_burst;           /* bucket size of that rate, default 100 */

    /* limits for component connections */
    long long component_handshake_timeout_ms; /* default 30 s until the handshake */
    long long component_idle_timeout_ms;      /* default 300 s; pinged at half */

    /* c2s */
    int require_encryption;     /* default true */
    int allow_plain;            /* default false; never without TLS */
    int legacy_session;         /* advertise optional <session/>, default true */
    int strict_channel_binding; /* RFC 5802 §6 'y' downgrade check, default true */
    cfg_conflict_t resource_conflict;
    long long scram_iterations; /* default 4096 */

    /* s2s: federation with other servers (the `s2s:` section) */
    struct {
        int enabled;                    /* outgoing federation, default true */
        int require_encryption;         /* TLS before anything else, default true */
        int require_valid_certificates; /* default true */
        int dialback_without_tls;       /* XEP-0344: default false */
        const char **dialback_only;   /* prepared domains allowed dialback with a bad certificate */
        const char **allow, **deny;   /* prepared domains; empty allow = all */
        long long connect_timeout_ms; /* default 10 s */
        long long idle_timeout_ms;    /* default 600 s */
        long long max_connections;    /* in and out together, default 1000 */
        long long queue_max_stanzas;  /* per remote domain while connecting, default 100 */
        long long queue_max_bytes;    /* default 1 MiB */
        long long queue_max_age_ms;   /* default 30 s */
        const char *ca_file;          /* trust store for peers; NULL = the system's */
        const char *dialback_secret;  /* NULL = random per start */
    } s2s;

    /* http: the HTTP/1.1 server of the http and https listeners */
    struct {
        long long max_header_size;    /* request line and headers, default 8 KiB */
        long long max_body_size;      /* buffered request body, default 1 MiB */
        long long request_timeout_ms; /* a request must arrive whole within, default 10 s */
        long long idle_timeout_ms;    /* keep-alive connection without a request, default 60 s */
        long long max_requests_per_connection; /* default 100 */
        long long requests_per_second;         /* per client address, 0 = no limit */
        const char **trusted_proxies;          /* NULL-terminated IP addresses */
    } http;

    /* websocket: XMPP over WebSocket (RFC 7395) at /xmpp-websocket */
    struct {
        int enabled;                /* default true (on the http/https listeners) */
        const char **origins;       /* NULL-terminated; empty = any Origin */
        int allow_insecure;         /* ws:// on loopback/trusted proxy counts as secure */
        const char *see_other_uri;  /* NULL = none; else every client is sent there */
        const char *public_url;     /* NULL = wss://HOST:PORT/xmpp-websocket */
        long long max_message_size; /* one WebSocket message, default max_stanza_size */
    } websocket;
    void *mem; /* owner */
} tern_config_t;

/* Load and check the whole configuration.  NULL and err on any error. */
tern_config_t *config_load(const char *path, cfg_error_t *err);
void config_free(tern_config_t **cfg);
/* The host named `domain` (prepared, or prepared here if not found as is). */
const cfg_host_t *config_host(const tern_config_t *cfg, const char *domain);

#endif
