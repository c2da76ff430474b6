/*
 * cfg_server.c — the server configuration: tree to checked tern_config_t.
 *
 * Owns: the list of global settings, their defaults and their checks
 * (conf/tern.yml.example documents each one), path resolution, the
 * per-host module lists (global modules merged with the host's own), and
 * config_free()/config_host().  Every error names FILE:LINE of the
 * offending node, or just FILE for a required setting that is absent.
 * Module options are not checked here: the loader checks them against each
 * module's own table (cfg_options.c).
 *
 * Relative paths: state_dir, tls and host certificates/keys are relative
 * to the folder of the configuration file; log_file, storage.path,
 * module_path and admin_socket are relative to state_dir.
 */
#include "config/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <tern/jid.h>

#ifndef TERN_MODULE_DIR
#define TERN_MODULE_DIR "modules"
#endif

#define DEFAULT_C2S_PORT       5222
#define DEFAULT_C2S_TLS_PORT   5223
#define DEFAULT_COMPONENT_PORT 5347
#define DEFAULT_S2S_PORT       5269
#define DEFAULT_S2S_TLS_PORT   5270
#define DEFAULT_HTTP_PORT      5280
#define DEFAULT_HTTPS_PORT     5281
#define MAX_MODULE_NAME        64

typedef struct builder {
    tern_config_t *cfg;
    cfg_mem_t *mem;
    cfg_error_t *err;
} builder_t;

/* "FILE:LINE: message" at node `n`, or "FILE: message" when `n` is NULL
 * (a required setting that is absent).  Always -1. */
__attribute__((format(printf, 3, 4))) static int fail(builder_t *b, const cfg_node_t *n,
                                                      const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n)
        snprintf(b->err->text, sizeof(b->err->text), "%s:%u: %s", n->file, n->line, msg);
    else
        snprintf(b->err->text, sizeof(b->err->text), "%s: %s",
                 b->cfg->path ? b->cfg->path : "configuration", msg);
    return -1;
}

/* Zeroed memory owned by the configuration; NULL after reporting. */
static void *alloc(builder_t *b, size_t n)
{
    void *p = cfg_mem_alloc(&b->mem, n);
    if (!p)
        fail(b, NULL, "out of memory");
    return p;
}

static const char *save(builder_t *b, const char *s)
{
    char *p = cfg_mem_strdup(&b->mem, s);
    if (!p)
        fail(b, NULL, "out of memory");
    return p;
}

/* `rel` resolved against folder `base` ("./" prefixes dropped). */
static const char *join(builder_t *b, const char *base, const char *rel)
{
    if (rel[0] == '/')
        return save(b, rel);
    while (rel[0] == '.' && rel[1] == '/')
        rel += 2;
    if (strcmp(rel, ".") == 0 || rel[0] == '\0')
        return save(b, base);
    size_t bl = strlen(base), rl = strlen(rel);
    int slash = bl > 0 && base[bl - 1] != '/';
    char *p = alloc(b, bl + (size_t)slash + rl + 1);
    if (!p)
        return NULL;
    memcpy(p, base, bl);
    if (slash)
        p[bl] = '/';
    memcpy(p + bl + slash, rel, rl + 1);
    return p;
}

static int is_null(const cfg_node_t *n)
{
    return !n || (n->type == CFG_SCALAR && n->is_null);
}

/* 1 when `n` is a map, 0 when absent or null, -1 (reported) otherwise. */
static int want_map(builder_t *b, const cfg_node_t *n, const char *what)
{
    if (is_null(n))
        return 0;
    if (n->type != CFG_MAP)
        return fail(b, n, "'%s' must be a map", what);
    return 1;
}

/* The string at `key` of `map` into *out (left alone when absent or null).
 * `what` names the setting in errors.  0 or -1. */
static int get_str(builder_t *b, const cfg_node_t *map, const char *key, const char *what,
                   const char **out)
{
    const cfg_node_t *n = cfg_map_get(map, key);
    if (is_null(n))
        return 0;
    if (n->type != CFG_SCALAR)
        return fail(b, n, "'%s' must be a string", what);
    *out = n->value;
    return 0;
}

/* Like get_str, and the value must not be empty. */
static int get_nonempty(builder_t *b, const cfg_node_t *map, const char *key, const char *what,
                        const char **out)
{
    if (get_str(b, map, key, what, out) < 0)
        return -1;
    if (!**out)
        return fail(b, cfg_map_get(map, key), "'%s' must not be empty", what);
    return 0;
}

/* Refuse keys of `map` not in `known` (NULL-terminated).  `what` names the
 * map; NULL for the top level. */
static int check_keys(builder_t *b, const cfg_node_t *map, const char *const *known,
                      const char *what)
{
    for (const cfg_node_t *c = map->children; c; c = c->next) {
        const char *const *k = known;
        while (*k && strcmp(*k, c->key) != 0)
            k++;
        if (*k)
            continue;
        if (!what)
            return fail(b, c, "unknown top-level key '%s'", c->key);
        char list[200];
        size_t used = 0;
        list[0] = '\0';
        for (k = known; *k && used < sizeof(list); k++) {
            int n = snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "", *k);
            used += n > 0 ? (size_t)n : 0;
        }
        return fail(b, c, "unknown key '%s' in '%s' (known: %s)", c->key, what, list);
    }
    return 0;
}

static size_t count_children(const cfg_node_t *n)
{
    size_t count = 0;
    for (const cfg_node_t *c = n ? n->children : NULL; c; c = c->next)
        count++;
    return count;
}

/* ---- simple settings --------------------------------------------------- */

/* Absolute folder holding the configuration file. */
static int config_dir(builder_t *b, const char *path)
{
    const char *slash = strrchr(path, '/');
    size_t len = slash ? (slash == path ? 1 : (size_t)(slash - path)) : 0;
    char *dir = alloc(b, len + 1);
    if (!dir)
        return -1;
    memcpy(dir, path, len);
    if (dir[0] == '/') {
        b->cfg->config_dir = dir;
        return 0;
    }
    char cwd[4096];
    if (!getcwd(cwd, sizeof(cwd)))
        return fail(b, NULL, "cannot find the current folder: %s", strerror(errno));
    b->cfg->config_dir = join(b, cwd, dir);
    return b->cfg->config_dir ? 0 : -1;
}

static int load_logging(builder_t *b, const cfg_node_t *root)
{
    static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
    tern_config_t *cfg = b->cfg;
    cfg->log_level = "info";
    if (get_str(b, root, "log_level", "log_level", &cfg->log_level) < 0)
        return -1;
    const char *const *l = levels;
    while (*l && strcmp(*l, cfg->log_level) != 0)
        l++;
    if (!*l)
        return fail(b, cfg_map_get(root, "log_level"),
                    "'log_level' must be error, warn, info or debug");
    const char *file = "";
    if (get_str(b, root, "log_file", "log_file", &file) < 0)
        return -1;
    cfg->log_file = *file ? join(b, cfg->state_dir, file) : NULL;
    return *file && !cfg->log_file ? -1 : 0;
}

/* state_dir, storage, module_path and admin_socket. */
static int load_paths(builder_t *b, const cfg_node_t *root)
{
    tern_config_t *cfg = b->cfg;
    const char *s = ".";
    if (get_nonempty(b, root, "state_dir", "state_dir", &s) < 0 ||
        !(cfg->state_dir = join(b, cfg->config_dir, s)))
        return -1;

    const cfg_node_t *storage = cfg_map_get(root, "storage");
    int have = want_map(b, storage, "storage");
    static const char *const storage_keys[] = {"driver", "path", NULL};
    if (have < 0 || (have && check_keys(b, storage, storage_keys, "storage") < 0))
        return -1;
    const char *driver = "sqlite", *path = "tern.db";
    if (get_str(b, storage, "driver", "storage.driver", &driver) < 0 ||
        get_nonempty(b, storage, "path", "storage.path", &path) < 0)
        return -1;
    if (strcmp(driver, "sqlite") != 0)
        return fail(b, cfg_map_get(storage, "driver"),
                    "storage driver '%s' is not supported (only sqlite)", driver);
    if (!(cfg->storage_path = join(b, cfg->state_dir, path)))
        return -1;

    s = TERN_MODULE_DIR;
    if (get_nonempty(b, root, "module_path", "module_path", &s) < 0 ||
        !(cfg->module_path = join(b, cfg->state_dir, s)))
        return -1;

    s = "ternctl.sock";
    if (get_nonempty(b, root, "admin_socket", "admin_socket", &s) < 0 ||
        !(cfg->admin_socket = join(b, cfg->state_dir, s)))
        return -1;
    struct sockaddr_un sun;
    if (strlen(cfg->admin_socket) >= sizeof(sun.sun_path)) {
        const cfg_node_t *at = cfg_map_get(root, "admin_socket");
        return fail(b, at ? at : cfg_map_get(root, "state_dir"),
                    "admin socket path %s is too long (at most %zu bytes)", cfg->admin_socket,
                    sizeof(sun.sun_path) - 1);
    }
    return 0;
}

/* admins: a list (or one scalar) of bare account JIDs, kept prepared. */
static int load_admins(builder_t *b, const cfg_node_t *root)
{
    const cfg_node_t *n = cfg_map_get(root, "admins");
    const cfg_node_t *first = NULL;
    size_t count = 0;
    if (!is_null(n)) {
        if (n->type == CFG_SCALAR) {
            first = n;
            count = 1;
        } else if (n->type == CFG_SEQ) {
            first = n->children;
            count = count_children(n);
        } else {
            return fail(b, n, "'admins' must be a list of JIDs");
        }
    }
    const char **admins = alloc(b, (count + 1) * sizeof(*admins));
    if (!admins)
        return -1;
    const cfg_node_t *c = first;
    for (size_t i = 0; i < count; i++, c = c->next) {
        if (c->type != CFG_SCALAR || c->is_null)
            return fail(b, c, "'admins' must be a list of JIDs");
        const char *why = NULL;
        tern_jid_t *jid = tern_jid_new(c->value, &why);
        if (!jid)
            return fail(b, c, "admin '%s' is not a valid JID: %s", c->value,
                        why ? why : "malformed");
        int bare = jid->local && !jid->resource;
        admins[i] = bare ? save(b, jid->bare) : NULL;
        tern_jid_free(&jid);
        if (!bare)
            return fail(b, c, "admin '%s' must be a bare account JID (user@host)", c->value);
        if (!admins[i])
            return -1;
    }
    b->cfg->admins = admins;
    return 0;
}

/* certificate + key under `map` (relative to the config folder): both or
 * neither.  `what` names the map. */
static int load_cert_pair(builder_t *b, const cfg_node_t *map, const char *what,
                          const char **cert_r, const char **key_r)
{
    char wc[160], wk[160];
    snprintf(wc, sizeof(wc), "%s.certificate", what);
    snprintf(wk, sizeof(wk), "%s.key", what);
    const char *cert = "", *key = "";
    if (get_str(b, map, "certificate", wc, &cert) < 0 || get_str(b, map, "key", wk, &key) < 0)
        return -1;
    if (!*cert != !*key)
        return fail(b, map, "'%s' needs both certificate and key", what);
    *cert_r = *key_r = NULL;
    if (*cert && (!(*cert_r = join(b, b->cfg->config_dir, cert)) ||
                  !(*key_r = join(b, b->cfg->config_dir, key))))
        return -1;
    return 0;
}

static int load_tls(builder_t *b, const cfg_node_t *root)
{
    static const char *const keys[] = {"certificate", "key", "ciphers", "ciphersuites", NULL};
    tern_config_t *cfg = b->cfg;
    const cfg_node_t *tls = cfg_map_get(root, "tls");
    int have = want_map(b, tls, "tls");
    if (have < 0 || (have && check_keys(b, tls, keys, "tls") < 0) ||
        load_cert_pair(b, tls, "tls", &cfg->certificate, &cfg->key) < 0)
        return -1;
    const char *ciphers = "", *suites = "";
    if (get_str(b, tls, "ciphers", "tls.ciphers", &ciphers) < 0 ||
        get_str(b, tls, "ciphersuites", "tls.ciphersuites", &suites) < 0)
        return -1;
    cfg->tls_ciphers = *ciphers ? ciphers : NULL;
    cfg->tls_ciphersuites = *suites ? suites : NULL;
    return 0;
}

/* ---- limits and c2s (declared like module options) --------------------- */

static const tern_option_t limit_options[] = {
    {.name = "max_stanza_size",
     .type = TERN_OPT_SIZE,
     .def = "256K",
     .doc = "Largest stanza a peer may send",
     .min = 10000,
     .max = 64LL << 20},
    {.name = "c2s_idle_timeout",
     .type = TERN_OPT_DURATION,
     .def = "300s",
     .doc = "Close idle client connections after this long",
     .min = 10 * 1000,
     .max = 7LL * 86400 * 1000},
    {.name = "handshake_timeout",
     .type = TERN_OPT_DURATION,
     .def = "30s",
     .doc = "Time allowed from connect until authenticated",
     .min = 1000,
     .max = 3600 * 1000},
    {.name = "auth_failure_delay",
     .type = TERN_OPT_DURATION,
     .def = "1s",
     .doc = "Delay before answering a failed authentication",
     .min = 0,
     .max = 60 * 1000},
    {.name = "max_auth_failures",
     .type = TERN_OPT_INT,
     .def = "3",
     .doc = "Failed authentications before the connection is closed",
     .min = 1,
     .max = 100},
    {.name = "component_handshake_timeout",
     .type = TERN_OPT_DURATION,
     .def = "30s",
     .doc = "Time allowed a component connection from connect until its handshake",
     .min = 1000,
     .max = 3600 * 1000},
    {.name = "component_idle_timeout",
     .type = TERN_OPT_DURATION,
     .def = "300s",
     .doc = "Close silent component connections after this long (pinged at half)",
     .min = 1000,
     .max = 7LL * 86400 * 1000},
    {.name = "max_sessions_per_user",
     .type = TERN_OPT_INT,
     .def = "10",
     .doc = "Resources one account may have bound at once",
     .min = 1,
     .max = 10000},
    {.name = "slow_reader_timeout",
     .type = TERN_OPT_DURATION,
     .def = "60s",
     .doc = "How long a client may leave a full output queue unread, holding up its senders, "
            "before it is disconnected",
     .min = 1000,
     .max = 3600 * 1000},
    {.name = "max_connections_per_ip",
     .type = TERN_OPT_INT,
     .def = "0",
     .doc = "Client connections one IP address may have open at once; 0 = no limit",
     .min = 0,
     .max = 1000000},
    {.name = "max_stanzas_per_second",
     .type = TERN_OPT_INT,
     .def = "0",
     .doc = "Stanzas per second one account may send, all its sessions together; 0 = no limit",
     .min = 0,
     .max = 1000000},
    {.name = "stanza_burst",
     .type = TERN_OPT_INT,
     .def = "100",
     .doc = "Stanzas an account may send at once above max_stanzas_per_second",
     .min = 1,
     .max = 1000000},
    {.name = NULL},
};

static const tern_option_t c2s_options[] = {
    {.name = "require_encryption",
     .type = TERN_OPT_BOOL,
     .def = "true",
     .doc = "Refuse to authenticate clients before TLS"},
    {.name = "allow_plain",
     .type = TERN_OPT_BOOL,
     .def = "false",
     .doc = "Offer SASL PLAIN (only ever over TLS)"},
    {.name = "strict_channel_binding",
     .type = TERN_OPT_BOOL,
     .def = "true",
     .doc = "Refuse SCRAM clients that claim channel binding ('y') while -PLUS is offered"},
    {.name = "legacy_session",
     .type = TERN_OPT_BOOL,
     .def = "true",
     .doc = "Advertise the optional RFC 3921 session"},
    {.name = "resource_conflict",
     .type = TERN_OPT_STRING,
     .def = "kick_old",
     .doc = "kick_old or refuse"},
    {.name = "scram_iterations",
     .type = TERN_OPT_INT,
     .def = "4096",
     .doc = "PBKDF2 iterations for new SCRAM credentials",
     .min = 4096,
     .max = 10000000},
    {.name = NULL},
};

static const tern_option_t s2s_options[] = {
    {.name = "enabled",
     .type = TERN_OPT_BOOL,
     .def = "true",
     .doc = "Open connections to other servers for stanzas to remote domains"},
    {.name = "require_encryption",
     .type = TERN_OPT_BOOL,
     .def = "true",
     .doc = "TLS on every server-to-server connection, both ways"},
    {.name = "require_valid_certificates",
     .type = TERN_OPT_BOOL,
     .def = "true",
     .doc = "A peer must present a valid certificate for its domain (except dialback_only)"},
    {.name = "dialback_only",
     .type = TERN_OPT_LIST,
     .def = "",
     .doc = "Remote domains allowed to authenticate with dialback although their certificate "
            "does not check"},
    {.name = "dialback_without_tls",
     .type = TERN_OPT_BOOL,
     .def = "false",
     .doc = "Allow dialback on connections without TLS (XEP-0344 advises against it)"},
    {.name = "allow",
     .type = TERN_OPT_LIST,
     .def = "",
     .doc = "Remote domains we federate with; empty = all (but those in deny)"},
    {.name = "deny",
     .type = TERN_OPT_LIST,
     .def = "",
     .doc = "Remote domains we never federate with"},
    {.name = "connect_timeout",
     .type = TERN_OPT_DURATION,
     .def = "10s",
     .doc = "Time allowed an outgoing connection from the DNS query until authenticated",
     .min = 500,
     .max = 600 * 1000},
    {.name = "idle_timeout",
     .type = TERN_OPT_DURATION,
     .def = "600s",
     .doc = "Close server-to-server connections idle for this long",
     .min = 1000,
     .max = 7LL * 86400 * 1000},
    {.name = "max_connections",
     .type = TERN_OPT_INT,
     .def = "1000",
     .doc = "Server-to-server connections open at once, incoming and outgoing",
     .min = 1,
     .max = 1000000},
    {.name = "queue_max_stanzas",
     .type = TERN_OPT_INT,
     .def = "100",
     .doc = "Stanzas held per remote domain while its connection is being set up",
     .min = 1,
     .max = 1000000},
    {.name = "queue_max_bytes",
     .type = TERN_OPT_SIZE,
     .def = "1M",
     .doc = "Bytes held per remote domain while its connection is being set up",
     .min = 1024,
     .max = 1LL << 30},
    {.name = "queue_max_age",
     .type = TERN_OPT_DURATION,
     .def = "30s",
     .doc = "A held stanza bounces when its connection is not up after this long",
     .min = 500,
     .max = 3600 * 1000},
    {.name = "ca_file",
     .type = TERN_OPT_STRING,
     .def = "",
     .doc = "PEM file (or folder hashed by openssl rehash) of the CAs trusted for peers' "
            "certificates; empty = the system's store"},
    {.name = "dialback_secret",
     .type = TERN_OPT_STRING,
     .def = "",
     .doc = "Secret of the dialback keys; empty = random at each start (several processes "
            "serving one domain must share one)"},
    {.name = NULL},
};

static const tern_option_t dns_options[] = {
    {.name = "servers",
     .type = TERN_OPT_LIST,
     .def = "[]",
     .doc = "DNS servers to ask (\"IP\", \"IP:PORT\" or \"[IPv6]:PORT\"); empty = those of "
            "/etc/resolv.conf"},
    {.name = NULL},
};

static long long num(const cfg_values_t *v, const char *name)
{
    return cfg_values_get(v, name)->num;
}

/* A list of remote domains, prepared, into *out (NULL-terminated). */
static int domain_list(builder_t *b, const cfg_values_t *v, const cfg_node_t *section,
                       const char *name, const char ***out)
{
    const cfg_value_t *val = cfg_values_get(v, name);
    const char **list = alloc(b, (val->list_len + 1) * sizeof(*list));
    if (!list)
        return -1;
    for (size_t i = 0; i < val->list_len; i++) {
        char *d = tern_jid_prep_domain(val->list[i]);
        if (!d)
            return fail(b, cfg_map_get(section, name),
                        "section 's2s': option '%s': '%s' is not a valid domain", name,
                        val->list[i]);
        list[i] = save(b, d);
        free(d);
        if (!list[i])
            return -1;
    }
    *out = list;
    return 0;
}

/* s2s: federation. */
static int load_s2s(builder_t *b, const cfg_node_t *root)
{
    tern_config_t *cfg = b->cfg;
    const cfg_node_t *n = cfg_map_get(root, "s2s");
    cfg_values_t v;
    if (cfg_section_build(s2s_options, n, "s2s", &v, b->err) < 0)
        return -1;
    cfg->s2s.enabled = (int)num(&v, "enabled");
    cfg->s2s.require_encryption = (int)num(&v, "require_encryption");
    cfg->s2s.require_valid_certificates = (int)num(&v, "require_valid_certificates");
    cfg->s2s.dialback_without_tls = (int)num(&v, "dialback_without_tls");
    cfg->s2s.connect_timeout_ms = num(&v, "connect_timeout");
    cfg->s2s.idle_timeout_ms = num(&v, "idle_timeout");
    cfg->s2s.max_connections = num(&v, "max_connections");
    cfg->s2s.queue_max_stanzas = num(&v, "queue_max_stanzas");
    cfg->s2s.queue_max_bytes = num(&v, "queue_max_bytes");
    cfg->s2s.queue_max_age_ms = num(&v, "queue_max_age");
    const char *ca = cfg_values_get(&v, "ca_file")->str;
    const char *secret = cfg_values_get(&v, "dialback_secret")->str;
    int rc = domain_list(b, &v, n, "dialback_only", &cfg->s2s.dialback_only) < 0 ||
                     domain_list(b, &v, n, "allow", &cfg->s2s.allow) < 0 ||
                     domain_list(b, &v, n, "deny", &cfg->s2s.deny) < 0
                 ? -1
                 : 0;
    if (rc == 0 && *ca && !(cfg->s2s.ca_file = join(b, cfg->config_dir, ca)))
        rc = -1;
    if (rc == 0 && *secret) {
        if (strlen(secret) < 16)
            rc = fail(b, cfg_map_get(n, "dialback_secret"),
                      "section 's2s': option 'dialback_secret' must be at least 16 characters");
        else if (!(cfg->s2s.dialback_secret = save(b, secret)))
            rc = -1;
    }
    cfg_values_clear(&v);
    return rc;
}

static const tern_option_t http_options[] = {
    {.name = "max_header_size",
     .type = TERN_OPT_SIZE,
     .def = "8K",
     .doc = "Largest request line and headers of one request (431 beyond)",
     .min = 1024,
     .max = 1024 * 1024},
    {.name = "max_body_size",
     .type = TERN_OPT_SIZE,
     .def = "1M",
     .doc = "Largest request body the server holds in memory (413 beyond); paths that stream "
            "their body set their own limit",
     .min = 0,
     .max = 1024LL * 1024 * 1024},
    {.name = "request_timeout",
     .type = TERN_OPT_DURATION,
     .def = "10s",
     .doc = "A request must arrive whole within this time once its first byte came (408 after)",
     .min = 100,
     .max = 3600 * 1000},
    {.name = "idle_timeout",
     .type = TERN_OPT_DURATION,
     .def = "60s",
     .doc = "Close a kept-alive connection with no request for this long",
     .min = 100,
     .max = 3600 * 1000},
    {.name = "max_requests_per_connection",
     .type = TERN_OPT_INT,
     .def = "100",
     .doc = "Requests served on one kept-alive connection before it is closed",
     .min = 1,
     .max = 1000000},
    {.name = "requests_per_second",
     .type = TERN_OPT_INT,
     .def = "0",
     .doc = "Requests per second allowed one client address (burst of ten times that; "
            "429 beyond); 0 = no limit",
     .min = 0,
     .max = 1000000},
    {.name = "trusted_proxies",
     .type = TERN_OPT_LIST,
     .def = "",
     .doc = "Addresses of reverse proxies whose X-Forwarded-For or Forwarded header names the "
            "client (for logs, rate limits and WebSocket security)"},
    {0},
};

static const tern_option_t websocket_options[] = {
    {.name = "enabled",
     .type = TERN_OPT_BOOL,
     .def = "true",
     .doc = "Serve XMPP over WebSocket (RFC 7395) at /xmpp-websocket on the http and https "
            "listeners"},
    {.name = "origins",
     .type = TERN_OPT_LIST,
     .def = "",
     .doc = "Origin header values allowed to open a WebSocket (e.g. https://chat.example.org); "
            "empty = any"},
    {.name = "allow_insecure",
     .type = TERN_OPT_BOOL,
     .def = "false",
     .doc = "Treat plain ws:// from the loopback address or a trusted proxy as secure (the "
            "proxy ends TLS); other plain connections still need c2s.require_encryption off"},
    {.name = "see_other_uri",
     .type = TERN_OPT_STRING,
     .def = "",
     .doc = "Send every WebSocket client to this wss:// URL (<close see-other-uri=.../>)"},
    {.name = "public_url",
     .type = TERN_OPT_STRING,
     .def = "",
     .doc = "The WebSocket URL clients see in host-meta (behind a proxy); empty = "
            "wss://DOMAIN:PORT/xmpp-websocket of the first https listener"},
    {.name = "max_message_size",
     .type = TERN_OPT_SIZE,
     .def = "256K",
     .doc = "Largest WebSocket message (close 1009 beyond); a stanza is also held to "
            "limits.max_stanza_size",
     .min = 1024,
     .max = 64 * 1024 * 1024},
    {0},
};

/* A list of IP addresses (checked), kept in the configuration's memory. */
static int addr_list(builder_t *b, const cfg_values_t *v, const cfg_node_t *section,
                     const char *sname, const char *name, const char ***out)
{
    const cfg_value_t *val = cfg_values_get(v, name);
    const char **list = alloc(b, (val->list_len + 1) * sizeof(*list));
    if (!list)
        return -1;
    for (size_t i = 0; i < val->list_len; i++) {
        unsigned char bytes[16];
        if (inet_pton(AF_INET, val->list[i], bytes) != 1 &&
            inet_pton(AF_INET6, val->list[i], bytes) != 1)
            return fail(b, cfg_map_get(section, name),
                        "section '%s': option '%s': '%s' is not an IP address", sname, name,
                        val->list[i]);
        if (!(list[i] = save(b, val->list[i])))
            return -1;
    }
    *out = list;
    return 0;
}

/* A list of strings kept in the configuration's memory. */
static int str_list(builder_t *b, const cfg_values_t *v, const char *name, const char ***out)
{
    const cfg_value_t *val = cfg_values_get(v, name);
    const char **list = alloc(b, (val->list_len + 1) * sizeof(*list));
    if (!list)
        return -1;
    for (size_t i = 0; i < val->list_len; i++)
        if (!(list[i] = save(b, val->list[i])))
            return -1;
    *out = list;
    return 0;
}

/* http and websocket. */
static int load_http(builder_t *b, const cfg_node_t *root)
{
    tern_config_t *cfg = b->cfg;
    const cfg_node_t *n = cfg_map_get(root, "http");
    cfg_values_t v;
    if (cfg_section_build(http_options, n, "http", &v, b->err) < 0)
        return -1;
    cfg->http.max_header_size = num(&v, "max_header_size");
    cfg->http.max_body_size = num(&v, "max_body_size");
    cfg->http.request_timeout_ms = num(&v, "request_timeout");
    cfg->http.idle_timeout_ms = num(&v, "idle_timeout");
    cfg->http.max_requests_per_connection = num(&v, "max_requests_per_connection");
    cfg->http.requests_per_second = num(&v, "requests_per_second");
    int rc = addr_list(b, &v, n, "http", "trusted_proxies", &cfg->http.trusted_proxies);
    cfg_values_clear(&v);
    if (rc < 0)
        return -1;
    n = cfg_map_get(root, "websocket");
    if (cfg_section_build(websocket_options, n, "websocket", &v, b->err) < 0)
        return -1;
    cfg->websocket.enabled = (int)num(&v, "enabled");
    cfg->websocket.allow_insecure = (int)num(&v, "allow_insecure");
    cfg->websocket.max_message_size = num(&v, "max_message_size");
    const char *see = cfg_values_get(&v, "see_other_uri")->str;
    const char *url = cfg_values_get(&v, "public_url")->str;
    rc = str_list(b, &v, "origins", &cfg->websocket.origins);
    if (rc == 0 && *see && !(cfg->websocket.see_other_uri = save(b, see)))
        rc = -1;
    if (rc == 0 && *url && !(cfg->websocket.public_url = save(b, url)))
        rc = -1;
    cfg_values_clear(&v);
    return rc;
}

static int load_sections(builder_t *b, const cfg_node_t *root)
{
    tern_config_t *cfg = b->cfg;
    cfg_values_t v;
    if (cfg_section_build(limit_options, cfg_map_get(root, "limits"), "limits", &v, b->err) < 0)
        return -1;
    cfg->max_stanza_size = num(&v, "max_stanza_size");
    cfg->c2s_idle_timeout_ms = num(&v, "c2s_idle_timeout");
    cfg->handshake_timeout_ms = num(&v, "handshake_timeout");
    cfg->auth_failure_delay_ms = num(&v, "auth_failure_delay");
    cfg->max_auth_failures = num(&v, "max_auth_failures");
    cfg->component_handshake_timeout_ms = num(&v, "component_handshake_timeout");
    cfg->component_idle_timeout_ms = num(&v, "component_idle_timeout");
    cfg->max_sessions_per_user = num(&v, "max_sessions_per_user");
    cfg->slow_reader_timeout_ms = num(&v, "slow_reader_timeout");
    cfg->max_connections_per_ip = num(&v, "max_connections_per_ip");
    cfg->max_stanzas_per_second = num(&v, "max_stanzas_per_second");
    cfg->stanza_burst = num(&v, "stanza_burst");
    cfg_values_clear(&v);

    const cfg_node_t *c2s = cfg_map_get(root, "c2s");
    if (cfg_section_build(c2s_options, c2s, "c2s", &v, b->err) < 0)
        return -1;
    cfg->require_encryption = (int)num(&v, "require_encryption");
    cfg->allow_plain = (int)num(&v, "allow_plain");
    cfg->legacy_session = (int)num(&v, "legacy_session");
    cfg->strict_channel_binding = (int)num(&v, "strict_channel_binding");
    cfg->scram_iterations = num(&v, "scram_iterations");
    const char *conflict = cfg_values_get(&v, "resource_conflict")->str;
    int bad = 0;
    if (strcmp(conflict, "kick_old") == 0)
        cfg->resource_conflict = CONFLICT_KICK_OLD;
    else if (strcmp(conflict, "refuse") == 0)
        cfg->resource_conflict = CONFLICT_REFUSE;
    else
        bad = 1;
    cfg_values_clear(&v);
    if (bad)
        return fail(b, cfg_map_get(c2s, "resource_conflict"),
                    "section 'c2s': option 'resource_conflict' must be kick_old or refuse");
    if (load_http(b, root) < 0)
        return -1;
    return load_s2s(b, root);
}

/* dns: servers, each checked; kept in the configuration's memory. */
static int load_dns(builder_t *b, const cfg_node_t *root)
{
    tern_config_t *cfg = b->cfg;
    const cfg_node_t *dns = cfg_map_get(root, "dns");
    cfg_values_t v;
    if (cfg_section_build(dns_options, dns, "dns", &v, b->err) < 0)
        return -1;
    const cfg_value_t *servers = cfg_values_get(&v, "servers");
    const cfg_node_t *node = cfg_map_get(dns, "servers");
    const cfg_node_t *item = node && node->type == CFG_SEQ ? node->children : node;
    cfg->n_dns_servers = servers->list_len;
    cfg->dns_servers = alloc(b, (servers->list_len + 1) * sizeof(*cfg->dns_servers));
    int rc = cfg->dns_servers ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < servers->list_len; i++, item = item ? item->next : NULL) {
        char ip[64];
        int port;
        if (cfg_parse_dns_server(servers->list[i], ip, sizeof(ip), &port) < 0)
            rc = fail(b, item ? item : node,
                      "section 'dns': server '%s' must be an IP address, IP:PORT or [IPv6]:PORT",
                      servers->list[i]);
        else if (!(cfg->dns_servers[i] = save(b, servers->list[i])))
            rc = -1;
    }
    cfg_values_clear(&v);
    return rc;
}

/* ---- listeners --------------------------------------------------------- */

typedef struct addr_key {
    int family;
    unsigned char bytes[16];
} addr_key_t;

static int parse_addr(const char *s, addr_key_t *k)
{
    memset(k, 0, sizeof(*k));
    if (inet_pton(AF_INET6, s, k->bytes) == 1)
        k->family = AF_INET6;
    else if (inet_pton(AF_INET, s, k->bytes) == 1)
        k->family = AF_INET;
    else
        return -1;
    return 0;
}

/* A port number 1..65535 written in decimal; -1 otherwise. */
static int parse_port(const char *s)
{
    long v = 0;
    if (!*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 65535)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v >= 1 && v <= 65535 ? (int)v : -1;
}

int cfg_parse_dns_server(const char *s, char *ip, size_t iplen, int *port)
{
    char buf[64];
    const char *p = NULL;
    size_t len = strlen(s);
    addr_key_t k;
    *port = 53;
    if (len >= sizeof(buf) || len == 0)
        return -1;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || (close[1] != '\0' && close[1] != ':'))
            return -1;
        len = (size_t)(close - s - 1);
        memcpy(buf, s + 1, len);
        buf[len] = '\0';
        if (inet_pton(AF_INET6, buf, k.bytes) != 1)
            return -1;
        p = close[1] ? close + 2 : NULL;
    } else {
        memcpy(buf, s, len + 1);
        const char *colon = strchr(buf, ':');
        if (colon && !strchr(colon + 1, ':')) {
            /* IPv4:PORT */
            p = s + (colon - buf) + 1;
            buf[colon - buf] = '\0';
            if (inet_pton(AF_INET, buf, k.bytes) != 1)
                return -1;
        } else if (parse_addr(buf, &k) < 0) {
            return -1;
        }
    }
    if (p && (*port = parse_port(p)) < 0)
        return -1;
    if (strlen(buf) >= iplen)
        return -1;
    snprintf(ip, iplen, "%s", buf);
    return 0;
}

/* One listener from map `n` into *l (its binary address into *k). */
static int load_listener(builder_t *b, const cfg_node_t *n, cfg_listener_t *l, addr_key_t *k)
{
    static const char *const keys[] = {"type", "address", "port", NULL};
    if (n->type != CFG_MAP)
        return fail(b, n, "a listener must be a map of type, address and port");
    if (check_keys(b, n, keys, "listener") < 0)
        return -1;
    const char *type = "";
    if (get_str(b, n, "type", "listener type", &type) < 0)
        return -1;
    if (!*type)
        return fail(b, n,
                    "listener needs a type (c2s, c2s_tls, s2s, s2s_tls, component, http or https)");
    if (strcmp(type, "c2s") == 0) {
        l->kind = LISTEN_C2S;
        l->port = DEFAULT_C2S_PORT;
    } else if (strcmp(type, "c2s_tls") == 0) {
        l->kind = LISTEN_C2S_TLS;
        l->port = DEFAULT_C2S_TLS_PORT;
    } else if (strcmp(type, "component") == 0) {
        l->kind = LISTEN_COMPONENT;
        l->port = DEFAULT_COMPONENT_PORT;
    } else if (strcmp(type, "s2s") == 0) {
        l->kind = LISTEN_S2S;
        l->port = DEFAULT_S2S_PORT;
    } else if (strcmp(type, "s2s_tls") == 0) {
        l->kind = LISTEN_S2S_TLS;
        l->port = DEFAULT_S2S_TLS_PORT;
    } else if (strcmp(type, "http") == 0) {
        l->kind = LISTEN_HTTP;
        l->port = DEFAULT_HTTP_PORT;
    } else if (strcmp(type, "https") == 0) {
        l->kind = LISTEN_HTTPS;
        l->port = DEFAULT_HTTPS_PORT;
    } else {
        return fail(b, cfg_map_get(n, "type"),
                    "listener type '%s' is unknown (c2s, c2s_tls, s2s, s2s_tls, component, http or "
                    "https)",
                    type);
    }
    l->address = "::";
    if (get_str(b, n, "address", "listener address", &l->address) < 0)
        return -1;
    if (parse_addr(l->address, k) < 0)
        return fail(b, cfg_map_get(n, "address"), "listener address '%s' is not an IP address",
                    l->address);
    const char *port = NULL;
    if (get_str(b, n, "port", "listener port", &port) < 0)
        return -1;
    if (port && (l->port = parse_port(port)) < 0)
        return fail(b, cfg_map_get(n, "port"),
                    "listener port '%s' must be a number from 1 to 65535", port);
    return 0;
}

static int load_listeners(builder_t *b, const cfg_node_t *root)
{
    tern_config_t *cfg = b->cfg;
    const cfg_node_t *n = cfg_map_get(root, "listeners");
    if (is_null(n)) {
        cfg->listeners = alloc(b, 2 * sizeof(*cfg->listeners));
        if (!cfg->listeners)
            return -1;
        cfg->listeners[0] = (cfg_listener_t){LISTEN_C2S, "::", DEFAULT_C2S_PORT};
        cfg->listeners[1] = (cfg_listener_t){LISTEN_C2S_TLS, "::", DEFAULT_C2S_TLS_PORT};
        cfg->n_listeners = 2;
        return 0;
    }
    if (n->type != CFG_SEQ)
        return fail(b, n, "'listeners' must be a list");
    size_t count = count_children(n);
    cfg->listeners = alloc(b, (count ? count : 1) * sizeof(*cfg->listeners));
    addr_key_t *keys = alloc(b, (count ? count : 1) * sizeof(*keys));
    if (!cfg->listeners || !keys)
        return -1;
    for (const cfg_node_t *c = n->children; c; c = c->next) {
        size_t i = cfg->n_listeners;
        if (load_listener(b, c, &cfg->listeners[i], &keys[i]) < 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (cfg->listeners[j].port == cfg->listeners[i].port &&
                keys[j].family == keys[i].family &&
                memcmp(keys[j].bytes, keys[i].bytes, sizeof(keys[i].bytes)) == 0)
                return fail(b, c, "duplicate listener on address '%s' port %d",
                            cfg->listeners[i].address, cfg->listeners[i].port);
        cfg->n_listeners++;
    }
    return 0;
}

/* ---- modules and hosts ------------------------------------------------- */

static int valid_module_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_MODULE_NAME)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

/* Add the modules of map `n` ("what" names it) to list (*mods, *count),
 * replacing an entry of the same name.  The list has room for them all. */
static int add_modules(builder_t *b, const cfg_node_t *n, const char *what, cfg_module_t *mods,
                       size_t *count)
{
    int have = want_map(b, n, what);
    if (have <= 0)
        return have;
    for (const cfg_node_t *c = n->children; c; c = c->next) {
        if (!valid_module_name(c->key))
            return fail(b, c, "invalid module name '%s' (lowercase letters, digits and _ only)",
                        c->key);
        if (!is_null(c) && c->type != CFG_MAP)
            return fail(b, c, "module '%s': options must be a map", c->key);
        size_t i = 0;
        while (i < *count && strcmp(mods[i].name, c->key) != 0)
            i++;
        if (i == *count)
            (*count)++;
        mods[i].name = c->key;
        mods[i].options = is_null(c) ? NULL : c;
        mods[i].file = c->file;
        mods[i].line = c->line;
    }
    return 0;
}

static int load_host(builder_t *b, const cfg_node_t *n, const cfg_node_t *global_mods,
                     cfg_host_t *h)
{
    static const char *const keys[] = {"certificate", "key", "modules", NULL};
    char *name = tern_jid_prep_domain(n->key);
    if (!name)
        return fail(b, n, "invalid host name '%s'", n->key);
    h->name = save(b, name);
    free(name);
    if (!h->name)
        return -1;
    for (const cfg_host_t *o = b->cfg->hosts; o < h; o++)
        if (strcmp(o->name, h->name) == 0)
            return fail(b, n, "host '%s' is configured twice", h->name);
    char what[300];
    snprintf(what, sizeof(what), "hosts.%s", n->key);
    int have = want_map(b, n, what);
    if (have < 0 || (have && check_keys(b, n, keys, what) < 0))
        return -1;
    if (load_cert_pair(b, n, what, &h->certificate, &h->key) < 0)
        return -1;
    const cfg_node_t *own = cfg_map_get(n, "modules");
    h->modules =
        alloc(b, (count_children(global_mods) + count_children(own) + 1) * sizeof(*h->modules));
    if (!h->modules)
        return -1;
    size_t len = strlen(what);
    snprintf(what + len, sizeof(what) - len, ".modules");
    if (add_modules(b, global_mods, "modules", h->modules, &h->n_modules) < 0 ||
        add_modules(b, own, what, h->modules, &h->n_modules) < 0)
        return -1;
    return 0;
}

static int load_hosts(builder_t *b, const cfg_node_t *root)
{
    tern_config_t *cfg = b->cfg;
    const cfg_node_t *mods = cfg_map_get(root, "modules");
    /* Checked once here so that its errors do not depend on the hosts. */
    size_t n_global = count_children(mods);
    cfg_module_t *scratch = alloc(b, (n_global + 1) * sizeof(*scratch));
    size_t n_scratch = 0;
    if (!scratch || add_modules(b, mods, "modules", scratch, &n_scratch) < 0)
        return -1;

    const cfg_node_t *n = cfg_map_get(root, "hosts");
    if (!n)
        return fail(b, NULL, "'hosts' is missing: at least one host is required");
    int have = want_map(b, n, "hosts");
    if (have < 0)
        return -1;
    if (!have || !n->children)
        return fail(b, n, "'hosts' is empty: at least one host is required");
    /* The service domains follow the hosts in the same array. */
    const cfg_node_t *services = cfg_map_get(root, "services");
    size_t n_services = services && services->type == CFG_MAP ? count_children(services) : 0;
    cfg->hosts = alloc(b, (count_children(n) + n_services) * sizeof(*cfg->hosts));
    if (!cfg->hosts)
        return -1;
    for (const cfg_node_t *c = n->children; c; c = c->next) {
        if (load_host(b, c, mods, &cfg->hosts[cfg->n_hosts]) < 0)
            return -1;
        cfg->n_hosts++;
    }
    return 0;
}

/* A service domain: its own module list only (no global modules, which
 * are for hosts and their accounts) and optionally its own certificate
 * (NULL: the core falls back to its host's). */
static int load_service(builder_t *b, const cfg_node_t *n, cfg_host_t *h)
{
    static const char *const keys[] = {"certificate", "key", "modules", NULL};
    char *name = tern_jid_prep_domain(n->key);
    if (!name)
        return fail(b, n, "invalid service domain '%s'", n->key);
    h->name = save(b, name);
    free(name);
    if (!h->name)
        return -1;
    h->is_service = 1;
    for (const cfg_host_t *o = b->cfg->hosts; o < h; o++)
        if (strcmp(o->name, h->name) == 0)
            return fail(b, n,
                        o->is_service ? "service '%s' is configured twice"
                                      : "service '%s' has the same name as a host",
                        h->name);
    char what[300];
    snprintf(what, sizeof(what), "services.%s", n->key);
    int have = want_map(b, n, what);
    if (have < 0 || (have && check_keys(b, n, keys, what) < 0))
        return -1;
    if (load_cert_pair(b, n, what, &h->certificate, &h->key) < 0)
        return -1;
    const cfg_node_t *own = cfg_map_get(n, "modules");
    h->modules = alloc(b, (count_children(own) + 1) * sizeof(*h->modules));
    if (!h->modules)
        return -1;
    size_t len = strlen(what);
    snprintf(what + len, sizeof(what) - len, ".modules");
    return add_modules(b, own, what, h->modules, &h->n_modules);
}

/* services: DOMAIN: {modules: {...}}, after the hosts in cfg->hosts. */
static int load_services(builder_t *b, const cfg_node_t *root)
{
    tern_config_t *cfg = b->cfg;
    const cfg_node_t *n = cfg_map_get(root, "services");
    int have = want_map(b, n, "services");
    if (have <= 0)
        return have;
    for (const cfg_node_t *c = n->children; c; c = c->next) {
        if (load_service(b, c, &cfg->hosts[cfg->n_hosts]) < 0)
            return -1;
        cfg->n_hosts++;
    }
    return 0;
}

static int load_components(builder_t *b, const cfg_node_t *root)
{
    static const char *const keys[] = {"secret", NULL};
    tern_config_t *cfg = b->cfg;
    const cfg_node_t *n = cfg_map_get(root, "components");
    int have = want_map(b, n, "components");
    if (have <= 0)
        return have;
    cfg->components = alloc(b, (count_children(n) + 1) * sizeof(*cfg->components));
    if (!cfg->components)
        return -1;
    for (const cfg_node_t *c = n->children; c; c = c->next) {
        cfg_component_t *comp = &cfg->components[cfg->n_components];
        char *domain = tern_jid_prep_domain(c->key);
        if (!domain)
            return fail(b, c, "invalid component name '%s'", c->key);
        comp->domain = save(b, domain);
        free(domain);
        if (!comp->domain)
            return -1;
        const cfg_host_t *same = config_host(cfg, comp->domain);
        if (same)
            return fail(b, c,
                        same->is_service ? "component '%s' has the same name as a service"
                                         : "component '%s' has the same name as a host",
                        comp->domain);
        for (size_t i = 0; i < cfg->n_components; i++)
            if (strcmp(cfg->components[i].domain, comp->domain) == 0)
                return fail(b, c, "component '%s' is configured twice", comp->domain);
        char what[300];
        snprintf(what, sizeof(what), "components.%s", c->key);
        if (want_map(b, c, what) < 0 || (c->type == CFG_MAP && check_keys(b, c, keys, what) < 0))
            return -1;
        const char *secret = "";
        snprintf(what, sizeof(what), "components.%s.secret", c->key);
        if (get_str(b, c, "secret", what, &secret) < 0)
            return -1;
        if (!*secret)
            return fail(b, c, "component '%s' needs a non-empty 'secret'", comp->domain);
        comp->secret = secret;
        cfg->n_components++;
    }
    return 0;
}

/* ---- entry points ------------------------------------------------------ */

static int build(builder_t *b)
{
    static const char *const top[] = {
        "log_level",    "log_file", "state_dir", "storage",    "module_path",
        "admin_socket", "admins",   "tls",       "listeners",  "limits",
        "c2s",          "modules",  "hosts",     "components", "services",
        "dns",          "s2s",      "http",      "websocket",  NULL,
    };
    const cfg_node_t *root = b->cfg->root;
    if (is_null(root))
        root = NULL;
    else if (root->type != CFG_MAP)
        return fail(b, root, "the configuration must be a map of settings");
    if (root && check_keys(b, root, top, NULL) < 0)
        return -1;
    if (config_dir(b, b->cfg->path) < 0 || load_paths(b, root) < 0 || load_logging(b, root) < 0 ||
        load_admins(b, root) < 0 || load_tls(b, root) < 0 || load_listeners(b, root) < 0 ||
        load_sections(b, root) < 0 || load_dns(b, root) < 0 || load_hosts(b, root) < 0 ||
        load_services(b, root) < 0 || load_components(b, root) < 0)
        return -1;
    return 0;
}

tern_config_t *config_load(const char *path, cfg_error_t *err)
{
    err->text[0] = '\0';
    tern_config_t *cfg = calloc(1, sizeof(*cfg));
    if (!cfg) {
        snprintf(err->text, sizeof(err->text), "%s: out of memory", path);
        return NULL;
    }
    builder_t b = {cfg, NULL, err};
    cfg->path = save(&b, path);
    if (cfg->path)
        cfg->root = cfg_yaml_load(path, err);
    if (!cfg->path || !cfg->root || build(&b) < 0) {
        cfg_node_free(&cfg->root);
        cfg_mem_free(&b.mem);
        free(cfg);
        return NULL;
    }
    cfg->mem = b.mem;
    return cfg;
}

void config_free(tern_config_t **cfg)
{
    if (!cfg || !*cfg)
        return;
    cfg_mem_t *mem = (*cfg)->mem;
    cfg_node_free(&(*cfg)->root);
    cfg_mem_free(&mem);
    free(*cfg);
    *cfg = NULL;
}

const cfg_host_t *config_host(const tern_config_t *cfg, const char *domain)
{
    if (!cfg || !domain)
        return NULL;
    for (size_t i = 0; i < cfg->n_hosts; i++)
        if (strcmp(cfg->hosts[i].name, domain) == 0)
            return &cfg->hosts[i];
    char *prepared = tern_jid_prep_domain(domain);
    const cfg_host_t *h = NULL;
    for (size_t i = 0; prepared && !h && i < cfg->n_hosts; i++)
        if (strcmp(cfg->hosts[i].name, prepared) == 0)
            h = &cfg->hosts[i];
    free(prepared);
    return h;
}

const char *cfg_listen_kind_name(cfg_listen_kind_t kind)
{
    switch (kind) {
    case LISTEN_C2S:
        return "c2s";
    case LISTEN_C2S_TLS:
        return "c2s_tls";
    case LISTEN_COMPONENT:
        return "component";
    case LISTEN_S2S:
        return "s2s";
    case LISTEN_S2S_TLS:
        return "s2s_tls";
    case LISTEN_HTTP:
        return "http";
    case LISTEN_HTTPS:
        return "https";
    }
    return "?";
}
