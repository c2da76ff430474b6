/*
 * test_config.c — unit tests for src/config/cfg_yaml.c, cfg_options.c and
 * cfg_server.c.
 *
 * Writes YAML texts to a file in a temporary folder and loads them: the
 * good cases check defaults, merged host modules, resolved paths and
 * parsed durations and sizes; the bad cases check the exact error text
 * with file and line.  Option tables are checked on trees parsed from
 * memory.  Finally conf/tern.yml.example must load cleanly; it is found
 * via argv[1], $srcdir, or the current folder (the top of the sources).
 */
#include "config/config.h"
#include "check.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char cfg_path[128];
static char got[sizeof(((cfg_error_t *)0)->text)];

/* Write `text` to cfg_path. */
static int write_config(const char *text)
{
    FILE *f = fopen(cfg_path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static tern_config_t *load(const char *text, cfg_error_t *err)
{
    memset(err, 0, sizeof(*err));
    if (write_config(text) < 0) {
        snprintf(err->text, sizeof(err->text), "cannot write %s", cfg_path);
        return NULL;
    }
    return config_load(cfg_path, err);
}

/* Load `text` expecting failure; the error text, or "(loaded)". */
static const char *load_err(const char *text)
{
    cfg_error_t err;
    tern_config_t *cfg = load(text, &err);
    if (cfg) {
        config_free(&cfg);
        return "(loaded)";
    }
    snprintf(got, sizeof(got), "%s", err.text);
    return got;
}

/* The error must be cfg_path followed by `suffix` (":LINE: message"). */
#define EXPECT_ERR(text, suffix)                                                                   \
    do {                                                                                           \
        char want_[700];                                                                           \
        snprintf(want_, sizeof(want_), "%s%s", cfg_path, suffix);                                  \
        CHECK_STR(load_err(text), want_);                                                          \
    } while (0)

/* A tree parsed from memory, named "mod.yml". */
static cfg_node_t *tree(const char *text)
{
    cfg_error_t err;
    cfg_node_t *n = cfg_yaml_parse(text, strlen(text), "mod.yml", &err);
    if (!n)
        fprintf(stderr, "parse failed: %s\n", err.text);
    return n;
}

/* ---- scalar parsers ---------------------------------------------------- */

static void test_parsers(void)
{
    int b = -1;
    CHECK(cfg_parse_bool("true", &b) == 0 && b == 1);
    CHECK(cfg_parse_bool("Yes", &b) == 0 && b == 1);
    CHECK(cfg_parse_bool("on", &b) == 0 && b == 1);
    CHECK(cfg_parse_bool("false", &b) == 0 && b == 0);
    CHECK(cfg_parse_bool("NO", &b) == 0 && b == 0);
    CHECK(cfg_parse_bool("off", &b) == 0 && b == 0);
    CHECK(cfg_parse_bool("1", &b) < 0);
    CHECK(cfg_parse_bool("", &b) < 0);
    CHECK(cfg_parse_bool("truex", &b) < 0);

    long long v = -1;
    CHECK(cfg_parse_duration_ms("30", &v) == 0 && v == 30000);
    CHECK(cfg_parse_duration_ms("0", &v) == 0 && v == 0);
    CHECK(cfg_parse_duration_ms("1.5s", &v) == 0 && v == 1500);
    CHECK(cfg_parse_duration_ms("0.25", &v) == 0 && v == 250);
    CHECK(cfg_parse_duration_ms("500ms", &v) == 0 && v == 500);
    CHECK(cfg_parse_duration_ms("2m", &v) == 0 && v == 120000);
    CHECK(cfg_parse_duration_ms("1.5m", &v) == 0 && v == 90000);
    CHECK(cfg_parse_duration_ms("1h", &v) == 0 && v == 3600000);
    CHECK(cfg_parse_duration_ms("2d", &v) == 0 && v == 172800000);
    CHECK(cfg_parse_duration_ms("0.0005s", &v) == 0 && v == 1);
    CHECK(cfg_parse_duration_ms("", &v) < 0);
    CHECK(cfg_parse_duration_ms("s", &v) < 0);
    CHECK(cfg_parse_duration_ms("-1s", &v) < 0);
    CHECK(cfg_parse_duration_ms("1.s", &v) < 0);
    CHECK(cfg_parse_duration_ms(".5s", &v) < 0);
    CHECK(cfg_parse_duration_ms("1.5.2s", &v) < 0);
    CHECK(cfg_parse_duration_ms("1 s", &v) < 0);
    CHECK(cfg_parse_duration_ms("1x", &v) < 0);
    CHECK(cfg_parse_duration_ms("1H", &v) < 0);
    CHECK(cfg_parse_duration_ms("99999999999999999999", &v) < 0);
    CHECK(cfg_parse_duration_ms("9999999999999999d", &v) < 0);

    CHECK(cfg_parse_size("512", &v) == 0 && v == 512);
    CHECK(cfg_parse_size("512B", &v) == 0 && v == 512);
    CHECK(cfg_parse_size("1K", &v) == 0 && v == 1024);
    CHECK(cfg_parse_size("1k", &v) == 0 && v == 1024);
    CHECK(cfg_parse_size("1KB", &v) == 0 && v == 1024);
    CHECK(cfg_parse_size("1KiB", &v) == 0 && v == 1024);
    CHECK(cfg_parse_size("256K", &v) == 0 && v == 262144);
    CHECK(cfg_parse_size("2M", &v) == 0 && v == 2097152);
    CHECK(cfg_parse_size("1MiB", &v) == 0 && v == 1048576);
    CHECK(cfg_parse_size("1G", &v) == 0 && v == 1073741824LL);
    CHECK(cfg_parse_size("1.5K", &v) == 0 && v == 1536);
    CHECK(cfg_parse_size("1.5", &v) < 0);
    CHECK(cfg_parse_size("K", &v) < 0);
    CHECK(cfg_parse_size("1Q", &v) < 0);
    CHECK(cfg_parse_size("-1", &v) < 0);
    CHECK(cfg_parse_size("", &v) < 0);
    CHECK(cfg_parse_size("99999999999999999999", &v) < 0);
    CHECK(cfg_parse_size("99999999999G", &v) < 0);
}

/* ---- YAML tree --------------------------------------------------------- */

static void test_tree(void)
{
    cfg_node_t *t = tree("a: 1\n"
                         "b:\n"
                         "  - x\n"
                         "  - \"y\"\n"
                         "c: {d: e}\n"
                         "n: ~\n"
                         "m:\n"
                         "q: \"\"\n");
    CHECK(t != NULL);
    if (t) {
        CHECK(t->type == CFG_MAP);
        CHECK(t->mem != NULL);
        const cfg_node_t *c = t->children;
        CHECK_STR(c->key, "a");
        CHECK_STR(c->value, "1");
        CHECK(c->line == 1);
        CHECK_STR(c->file, "mod.yml");
        c = c->next;
        CHECK_STR(c->key, "b");
        CHECK(c->type == CFG_SEQ && c->line == 2);
        CHECK(c->children && c->children->line == 3 && c->children->key == NULL);
        if (c->children && c->children->next) {
            CHECK_STR(c->children->value, "x");
            CHECK_STR(c->children->next->value, "y");
            CHECK(c->children->next->line == 4 && !c->children->next->next);
        }
        c = c->next;
        CHECK_STR(c->key, "c");
        CHECK(c->type == CFG_MAP && c->line == 5 && c->mem == NULL);
        CHECK_STR(cfg_map_get(c, "d")->value, "e");
        CHECK(cfg_map_get(t, "n")->is_null);
        CHECK(cfg_map_get(t, "m")->is_null);
        CHECK(!cfg_map_get(t, "q")->is_null);
        CHECK(!cfg_map_get(t, "a")->is_null);
        CHECK(cfg_map_get(t, "zz") == NULL);
        CHECK(cfg_map_get(NULL, "a") == NULL);
        CHECK(cfg_map_get(cfg_map_get(t, "b"), "x") == NULL);
    }
    cfg_node_free(&t);
    CHECK(t == NULL);
    cfg_node_free(&t);

    t = tree("# nothing\n");
    CHECK(t && t->type == CFG_SCALAR && t->is_null && t->line == 1);
    cfg_node_free(&t);

    cfg_error_t err;
    const char *text = "a: 1\n---\nb: 2\n";
    CHECK(cfg_yaml_parse(text, strlen(text), "two.yml", &err) == NULL);
    CHECK_STR(err.text, "two.yml:2: only one YAML document is allowed");
    text = "a: 1\n? [x]\n: 2\n";
    CHECK(cfg_yaml_parse(text, strlen(text), "k.yml", &err) == NULL);
    CHECK_STR(err.text, "k.yml:2: map keys must be plain strings");
    text = "a: \"x\\0y\"\n";
    CHECK(cfg_yaml_parse(text, strlen(text), "nul.yml", &err) == NULL);
    CHECK_STR(err.text, "nul.yml:1: a value contains a NUL character");
    text = "a: [b, {c: d}]\nb: [\n";
    CHECK(cfg_yaml_parse(text, strlen(text), "s.yml", &err) == NULL);
    CHECK_STR(err.text, "s.yml:3: did not find expected node content");
    text = "a: 1\nb: \xff\n";
    CHECK(cfg_yaml_parse(text, strlen(text), "u.yml", &err) == NULL);
    CHECK_STR(err.text, "u.yml:2: invalid leading UTF-8 octet");

    /* Deep nesting is refused before it can exhaust the stack. */
    char deep[400];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 200);
    CHECK(cfg_yaml_parse(deep, sizeof(deep), "d.yml", &err) == NULL);
    CHECK_STR(err.text, "d.yml:1: nesting is too deep");

    CHECK(cfg_yaml_load("/nonexistent/tern.yml", &err) == NULL);
    CHECK_STR(err.text, "/nonexistent/tern.yml: cannot open: No such file or directory");
}

/* ---- option tables ----------------------------------------------------- */

static const tern_option_t opts[] = {
    {.name = "enabled", .type = TERN_OPT_BOOL, .def = "true", .doc = "on or off"},
    {.name = "count", .type = TERN_OPT_INT, .def = "5", .doc = "how many", .min = 1, .max = 10},
    {.name = "label", .type = TERN_OPT_STRING, .def = "hi", .doc = "a word"},
    {.name = "items", .type = TERN_OPT_LIST, .def = "", .doc = "things"},
    {.name = "timeout",
     .type = TERN_OPT_DURATION,
     .def = "30s",
     .doc = "how long",
     .min = 1000,
     .max = 3600000},
    {.name = "buffer", .type = TERN_OPT_SIZE, .def = "64K", .doc = "how big"},
    {.name = NULL},
};

/* Build `text` (NULL: defaults) against `table` as module "m"; the error
 * text or "" on success (values left in *v). */
static const char *build(const tern_option_t *table, const char *text, cfg_values_t *v)
{
    cfg_error_t err;
    memset(&err, 0, sizeof(err));
    cfg_node_t *n = text ? tree(text) : NULL;
    int rc = cfg_values_build(table, n, "m", v, &err);
    cfg_node_free(&n);
    snprintf(got, sizeof(got), "%s", rc == 0 ? "" : err.text);
    return got;
}

static const char *build_err(const tern_option_t *table, const char *text)
{
    cfg_values_t v;
    const char *e = build(table, text, &v);
    if (!*e) {
        cfg_values_clear(&v);
        return "(built)";
    }
    return e;
}

static void test_options(void)
{
    cfg_values_t v;
    CHECK_STR(build(opts, NULL, &v), "");
    CHECK(v.count == 6 && v.table == opts);
    CHECK(cfg_values_get(&v, "enabled")->num == 1);
    CHECK(cfg_values_get(&v, "count")->num == 5);
    CHECK_STR(cfg_values_get(&v, "label")->str, "hi");
    CHECK(cfg_values_get(&v, "items")->list_len == 0);
    CHECK(cfg_values_get(&v, "items")->list && cfg_values_get(&v, "items")->list[0] == NULL);
    CHECK(cfg_values_get(&v, "timeout")->num == 30000);
    CHECK(cfg_values_get(&v, "buffer")->num == 65536);
    CHECK(cfg_values_get(&v, "nope") == NULL);
    CHECK(cfg_values_get(&v, "count")->opt == &opts[1]);
    cfg_values_clear(&v);
    CHECK(v.values == NULL && v.count == 0 && v.mem == NULL);
    cfg_values_clear(&v);

    /* A null node (module: with nothing after it) means all defaults. */
    CHECK_STR(build(opts, "~", &v), "");
    CHECK(cfg_values_get(&v, "count")->num == 5);
    cfg_values_clear(&v);

    CHECK_STR(build(opts,
                    "enabled: off\ncount: 7\nlabel: x y\nitems: [a, b]\ntimeout: 1.5m\n"
                    "buffer: 1MiB\n",
                    &v),
              "");
    CHECK(cfg_values_get(&v, "enabled")->num == 0);
    CHECK(cfg_values_get(&v, "count")->num == 7);
    CHECK_STR(cfg_values_get(&v, "label")->str, "x y");
    const cfg_value_t *items = cfg_values_get(&v, "items");
    CHECK(items->list_len == 2);
    CHECK_STR(items->list[0], "a");
    CHECK_STR(items->list[1], "b");
    CHECK(items->list[2] == NULL);
    CHECK(cfg_values_get(&v, "timeout")->num == 90000);
    CHECK(cfg_values_get(&v, "buffer")->num == 1048576);
    cfg_values_clear(&v);

    /* A list from one scalar; an empty string option from null. */
    CHECK_STR(build(opts, "items: one\nlabel:\n", &v), "");
    items = cfg_values_get(&v, "items");
    CHECK(items->list_len == 1 && items->list[1] == NULL);
    CHECK_STR(items->list[0], "one");
    CHECK_STR(cfg_values_get(&v, "label")->str, "");
    cfg_values_clear(&v);
    CHECK_STR(build(opts, "items:\n  - p\n  - q\n  - r\n", &v), "");
    CHECK(cfg_values_get(&v, "items")->list_len == 3);
    cfg_values_clear(&v);

    CHECK_STR(build_err(opts, "count: 3\ncolour: red\n"),
              "mod.yml:2: module 'm': unknown option 'colour' (known: enabled, count, label, "
              "items, timeout, buffer)");
    CHECK_STR(build_err(opts, "count: many\n"),
              "mod.yml:1: module 'm': option 'count' must be an integer");
    CHECK_STR(build_err(opts, "count: 1.5\n"),
              "mod.yml:1: module 'm': option 'count' must be an integer");
    CHECK_STR(build_err(opts, "count:\n"),
              "mod.yml:1: module 'm': option 'count' must be an integer");
    CHECK_STR(build_err(opts, "enabled: 2\n"),
              "mod.yml:1: module 'm': option 'enabled' must be true or false");
    CHECK_STR(build_err(opts, "label: [a]\n"),
              "mod.yml:1: module 'm': option 'label' must be a string");
    CHECK_STR(build_err(opts, "items: {a: 1}\n"),
              "mod.yml:1: module 'm': option 'items' must be a list of strings");
    CHECK_STR(build_err(opts, "items:\n  - a\n  - [b]\n"),
              "mod.yml:3: module 'm': option 'items' must be a list of strings");
    CHECK_STR(build_err(opts, "timeout: soon\n"),
              "mod.yml:1: module 'm': option 'timeout' must be a duration");
    CHECK_STR(build_err(opts, "buffer: big\n"),
              "mod.yml:1: module 'm': option 'buffer' must be a size");
    CHECK_STR(build_err(opts, "count: 11\n"),
              "mod.yml:1: module 'm': option 'count' must be between 1 and 10");
    CHECK_STR(build_err(opts, "count: 0\n"),
              "mod.yml:1: module 'm': option 'count' must be between 1 and 10");
    CHECK_STR(build_err(opts, "timeout: 2h\n"),
              "mod.yml:1: module 'm': option 'timeout' must be between 1s and 1h");
    CHECK_STR(build_err(opts, "timeout: 999ms\n"),
              "mod.yml:1: module 'm': option 'timeout' must be between 1s and 1h");
    CHECK_STR(build_err(opts, "[1, 2]\n"), "mod.yml:1: module 'm': options must be a map");

    static const tern_option_t none[] = {{.name = NULL}};
    CHECK_STR(build(none, "{}", &v), "");
    CHECK(v.count == 0);
    cfg_values_clear(&v);
    CHECK_STR(build_err(none, "x: 1\n"), "mod.yml:1: module 'm': unknown option 'x' (known: none)");

    /* Bad defaults are bugs in the module, reported without a location. */
    static const tern_option_t bad_int[] = {
        {.name = "n", .type = TERN_OPT_INT, .def = "abc"},
        {.name = NULL},
    };
    CHECK_STR(build_err(bad_int, NULL),
              "module 'm': option 'n' has an invalid default 'abc' (must be an integer)");
    static const tern_option_t bad_range[] = {
        {.name = "t", .type = TERN_OPT_DURATION, .def = "2h", .min = 0, .max = 60000},
        {.name = NULL},
    };
    CHECK_STR(build_err(bad_range, "t: 1s\n"),
              "module 'm': option 't' has an invalid default '2h' (out of range)");
    static const tern_option_t bad_bool[] = {
        {.name = "b", .type = TERN_OPT_BOOL, .def = NULL},
        {.name = NULL},
    };
    CHECK_STR(build_err(bad_bool, NULL),
              "module 'm': option 'b' has an invalid default '' (must be true or false)");
    static const tern_option_t list_def[] = {
        {.name = "l", .type = TERN_OPT_LIST, .def = "[x, y]"},
        {.name = NULL},
    };
    CHECK_STR(build(list_def, NULL, &v), "");
    CHECK(v.values[0].list_len == 2);
    CHECK_STR(v.values[0].list[1], "y");
    cfg_values_clear(&v);

    /* A global section uses the same checks with its own wording. */
    cfg_error_t err;
    cfg_node_t *n = tree("count: 12\n");
    CHECK(cfg_section_build(opts, n, "limits", &v, &err) < 0);
    CHECK_STR(err.text, "mod.yml:1: section 'limits': option 'count' must be between 1 and 10");
    cfg_node_free(&n);
}

/* ---- server configuration: good cases ---------------------------------- */

static void test_defaults(void)
{
    cfg_error_t err;
    tern_config_t *cfg = load("hosts:\n  localhost:\n", &err);
    CHECK(cfg != NULL);
    if (!cfg) {
        fprintf(stderr, "load failed: %s\n", err.text);
        return;
    }
    char want[256];
    CHECK_STR(cfg->path, cfg_path);
    CHECK_STR(cfg->config_dir, dir);
    CHECK_STR(cfg->log_level, "info");
    CHECK(cfg->log_file == NULL);
    CHECK_STR(cfg->state_dir, dir);
    snprintf(want, sizeof(want), "%s/tern.db", dir);
    CHECK_STR(cfg->storage_path, want);
#ifdef TERN_MODULE_DIR
    CHECK_STR(cfg->module_path, TERN_MODULE_DIR);
#endif
    snprintf(want, sizeof(want), "%s/ternctl.sock", dir);
    CHECK_STR(cfg->admin_socket, want);
    CHECK(cfg->admins && cfg->admins[0] == NULL);
    CHECK(cfg->certificate == NULL && cfg->key == NULL);
    CHECK(cfg->tls_ciphers == NULL && cfg->tls_ciphersuites == NULL);
    CHECK(cfg->n_listeners == 2);
    CHECK(cfg->listeners[0].kind == LISTEN_C2S && cfg->listeners[0].port == 5222);
    CHECK_STR(cfg->listeners[0].address, "::");
    CHECK(cfg->listeners[1].kind == LISTEN_C2S_TLS && cfg->listeners[1].port == 5223);
    CHECK_STR(cfg->listeners[1].address, "::");
    CHECK(cfg->max_stanza_size == 262144);
    CHECK(cfg->c2s_idle_timeout_ms == 300000);
    CHECK(cfg->handshake_timeout_ms == 30000);
    CHECK(cfg->component_handshake_timeout_ms == 30000);
    CHECK(cfg->component_idle_timeout_ms == 300000);
    CHECK(cfg->auth_failure_delay_ms == 1000);
    CHECK(cfg->max_auth_failures == 3);
    CHECK(cfg->max_sessions_per_user == 10);
    CHECK(cfg->slow_reader_timeout_ms == 60000);
    CHECK(cfg->max_connections_per_ip == 0);
    CHECK(cfg->max_stanzas_per_second == 0 && cfg->stanza_burst == 100);
    CHECK(cfg->require_encryption == 1);
    CHECK(cfg->allow_plain == 0);
    CHECK(cfg->legacy_session == 1);
    CHECK(cfg->resource_conflict == CONFLICT_KICK_OLD);
    CHECK(cfg->scram_iterations == 4096);
    CHECK(cfg->s2s.enabled == 1 && cfg->s2s.require_encryption == 1);
    CHECK(cfg->s2s.require_valid_certificates == 1 && cfg->s2s.dialback_without_tls == 0);
    CHECK(cfg->s2s.dialback_only && cfg->s2s.dialback_only[0] == NULL);
    CHECK(cfg->s2s.allow && cfg->s2s.allow[0] == NULL);
    CHECK(cfg->s2s.deny && cfg->s2s.deny[0] == NULL);
    CHECK(cfg->s2s.connect_timeout_ms == 10000 && cfg->s2s.idle_timeout_ms == 600000);
    CHECK(cfg->s2s.max_connections == 1000 && cfg->s2s.queue_max_stanzas == 100);
    CHECK(cfg->s2s.queue_max_bytes == 1048576 && cfg->s2s.queue_max_age_ms == 30000);
    CHECK(cfg->s2s.ca_file == NULL && cfg->s2s.dialback_secret == NULL);
    CHECK(cfg->n_hosts == 1);
    CHECK_STR(cfg->hosts[0].name, "localhost");
    CHECK(cfg->hosts[0].n_modules == 0);
    CHECK(cfg->hosts[0].certificate == NULL && cfg->hosts[0].key == NULL);
    CHECK(cfg->n_components == 0);
    CHECK(cfg->n_dns_servers == 0 && cfg->dns_servers && cfg->dns_servers[0] == NULL);
    CHECK(config_host(cfg, "localhost") == &cfg->hosts[0]);
    CHECK(config_host(cfg, "LocalHost") == &cfg->hosts[0]);
    CHECK(config_host(cfg, "example.org") == NULL);
    CHECK(config_host(cfg, NULL) == NULL);
    config_free(&cfg);
    CHECK(cfg == NULL);
    config_free(&cfg);
}

static void test_http(void)
{
    cfg_error_t err;
    tern_config_t *cfg = load("hosts:\n  a.test:\n"
                              "listeners:\n"
                              "  - { type: http, address: 127.0.0.1 }\n"
                              "  - { type: https, address: \"::\" }\n"
                              "http:\n"
                              "  max_body_size: 2M\n"
                              "  trusted_proxies: [127.0.0.1, \"::1\"]\n"
                              "websocket:\n"
                              "  origins: https://chat.a.test\n"
                              "  see_other_uri: wss://b.test/xmpp-websocket\n",
                              &err);
    CHECK(cfg != NULL);
    if (!cfg) {
        fprintf(stderr, "load failed: %s\n", err.text);
        return;
    }
    CHECK(cfg->listeners[0].kind == LISTEN_HTTP && cfg->listeners[0].port == 5280);
    CHECK(cfg->listeners[1].kind == LISTEN_HTTPS && cfg->listeners[1].port == 5281);
    CHECK_STR(cfg_listen_kind_name(LISTEN_HTTPS), "https");
    CHECK(cfg->http.max_body_size == 2 * 1024 * 1024 && cfg->http.max_header_size == 8192);
    CHECK(cfg->http.request_timeout_ms == 10000 && cfg->http.max_requests_per_connection == 100);
    CHECK_STR(cfg->http.trusted_proxies[1], "::1");
    CHECK(cfg->http.trusted_proxies[2] == NULL);
    CHECK(cfg->websocket.enabled && !cfg->websocket.allow_insecure);
    CHECK_STR(cfg->websocket.origins[0], "https://chat.a.test");
    CHECK_STR(cfg->websocket.see_other_uri, "wss://b.test/xmpp-websocket");
    CHECK(cfg->websocket.public_url == NULL);
    config_free(&cfg);
}

static void test_s2s(void)
{
    cfg_error_t err;
    tern_config_t *cfg = load("hosts:\n  a.test:\n"
                              "listeners:\n"
                              "  - { type: s2s, address: 127.0.0.2 }\n"
                              "  - { type: s2s_tls, address: 127.0.0.2 }\n"
                              "s2s:\n"
                              "  enabled: false\n"
                              "  dialback_only: [B.Test, c.test]\n"
                              "  deny: d.test\n"
                              "  connect_timeout: 2s\n"
                              "  queue_max_bytes: 64K\n"
                              "  ca_file: ca.pem\n"
                              "  dialback_secret: 0123456789abcdef0123\n",
                              &err);
    CHECK(cfg != NULL);
    if (!cfg) {
        fprintf(stderr, "load failed: %s\n", err.text);
        return;
    }
    CHECK(cfg->n_listeners == 2);
    CHECK(cfg->listeners[0].kind == LISTEN_S2S && cfg->listeners[0].port == 5269);
    CHECK(cfg->listeners[1].kind == LISTEN_S2S_TLS && cfg->listeners[1].port == 5270);
    CHECK(cfg->s2s.enabled == 0);
    CHECK_STR(cfg->s2s.dialback_only[0], "b.test");
    CHECK_STR(cfg->s2s.dialback_only[1], "c.test");
    CHECK(cfg->s2s.dialback_only[2] == NULL);
    CHECK_STR(cfg->s2s.deny[0], "d.test");
    CHECK(cfg->s2s.connect_timeout_ms == 2000 && cfg->s2s.queue_max_bytes == 65536);
    char want[300];
    snprintf(want, sizeof(want), "%s/ca.pem", dir);
    CHECK_STR(cfg->s2s.ca_file, want);
    CHECK_STR(cfg->s2s.dialback_secret, "0123456789abcdef0123");
    config_free(&cfg);
}

static void test_full(void)
{
    cfg_error_t err;
    tern_config_t *cfg = load("log_level: debug\n"       /* 1 */
                              "log_file: log/tern.log\n" /* 2 */
                              "state_dir: state\n"       /* 3 */
                              "storage: { driver: sqlite, path: /var/x.db }\n"
                              "module_path: ../mods\n"             /* 5 */
                              "admin_socket: /run/tern/ctl.sock\n" /* 6 */
                              "admins: [Alice@LocalHost, bob@example.org]\n"
                              "tls:\n"                                       /* 8 */
                              "  certificate: certs/a.crt\n"                 /* 9 */
                              "  key: /etc/a.key\n"                          /* 10 */
                              "  ciphers: HIGH\n"                            /* 11 */
                              "listeners:\n"                                 /* 12 */
                              "  - { type: c2s, port: 15222 }\n"             /* 13 */
                              "  - { type: c2s, address: 127.0.0.1 }\n"      /* 14 */
                              "  - type: component\n"                        /* 15 */
                              "    address: \"::1\"\n"                       /* 16 */
                              "limits:\n"                                    /* 17 */
                              "  max_stanza_size: 1M\n"                      /* 18 */
                              "  c2s_idle_timeout: 1.5m\n"                   /* 19 */
                              "  handshake_timeout: 2500ms\n"                /* 20 */
                              "  auth_failure_delay: 0\n"                    /* 21 */
                              "  max_auth_failures: 5\n"                     /* 22 */
                              "c2s:\n"                                       /* 23 */
                              "  require_encryption: no\n"                   /* 24 */
                              "  allow_plain: yes\n"                         /* 25 */
                              "  legacy_session: off\n"                      /* 26 */
                              "  resource_conflict: refuse\n"                /* 27 */
                              "  scram_iterations: 10000\n"                  /* 28 */
                              "modules:\n"                                   /* 29 */
                              "  disco: { items: [conference.localhost] }\n" /* 30 */
                              "  ping:\n"                                    /* 31 */
                              "  version: {}\n"                              /* 32 */
                              "hosts:\n"                                     /* 33 */
                              "  LocalHost:\n"                               /* 34 */
                              "  example.org:\n"                             /* 35 */
                              "    certificate: org.crt\n"                   /* 36 */
                              "    key: org.key\n"                           /* 37 */
                              "    modules:\n"                               /* 38 */
                              "      version: { hide_os: true }\n"           /* 39 */
                              "      time: {}\n"                             /* 40 */
                              "components:\n"                                /* 41 */
                              "  Conference.localhost: { secret: s3cret }\n",
                              &err);
    CHECK(cfg != NULL);
    if (!cfg) {
        fprintf(stderr, "load failed: %s\n", err.text);
        return;
    }
    char want[256];
    CHECK_STR(cfg->log_level, "debug");
    snprintf(want, sizeof(want), "%s/state", dir);
    CHECK_STR(cfg->state_dir, want);
    snprintf(want, sizeof(want), "%s/state/log/tern.log", dir);
    CHECK_STR(cfg->log_file, want);
    CHECK_STR(cfg->storage_path, "/var/x.db");
    snprintf(want, sizeof(want), "%s/state/../mods", dir);
    CHECK_STR(cfg->module_path, want);
    CHECK_STR(cfg->admin_socket, "/run/tern/ctl.sock");
    CHECK_STR(cfg->admins[0], "alice@localhost");
    CHECK_STR(cfg->admins[1], "bob@example.org");
    CHECK(cfg->admins[2] == NULL);
    snprintf(want, sizeof(want), "%s/certs/a.crt", dir);
    CHECK_STR(cfg->certificate, want);
    CHECK_STR(cfg->key, "/etc/a.key");
    CHECK_STR(cfg->tls_ciphers, "HIGH");
    CHECK(cfg->tls_ciphersuites == NULL);

    CHECK(cfg->n_listeners == 3);
    CHECK(cfg->listeners[0].kind == LISTEN_C2S && cfg->listeners[0].port == 15222);
    CHECK_STR(cfg->listeners[0].address, "::");
    CHECK(cfg->listeners[1].kind == LISTEN_C2S && cfg->listeners[1].port == 5222);
    CHECK_STR(cfg->listeners[1].address, "127.0.0.1");
    CHECK(cfg->listeners[2].kind == LISTEN_COMPONENT && cfg->listeners[2].port == 5347);
    CHECK_STR(cfg->listeners[2].address, "::1");

    CHECK(cfg->max_stanza_size == 1048576);
    CHECK(cfg->c2s_idle_timeout_ms == 90000);
    CHECK(cfg->handshake_timeout_ms == 2500);
    CHECK(cfg->auth_failure_delay_ms == 0);
    CHECK(cfg->max_auth_failures == 5);
    CHECK(cfg->require_encryption == 0);
    CHECK(cfg->allow_plain == 1);
    CHECK(cfg->legacy_session == 0);
    CHECK(cfg->resource_conflict == CONFLICT_REFUSE);
    CHECK(cfg->scram_iterations == 10000);

    CHECK(cfg->n_hosts == 2);
    const cfg_host_t *h = config_host(cfg, "localhost");
    CHECK(h == &cfg->hosts[0]);
    CHECK(h->certificate == NULL && h->key == NULL);
    CHECK(h->n_modules == 3);
    CHECK_STR(h->modules[0].name, "disco");
    CHECK_STR(h->modules[1].name, "ping");
    CHECK_STR(h->modules[2].name, "version");
    CHECK(h->modules[0].line == 30 && h->modules[1].line == 31);
    CHECK_STR(h->modules[0].file, cfg_path);
    CHECK(h->modules[1].options == NULL);
    CHECK(h->modules[2].options && h->modules[2].options->type == CFG_MAP &&
          h->modules[2].options->children == NULL);
    const cfg_node_t *items = cfg_map_get(h->modules[0].options, "items");
    CHECK(items && items->type == CFG_SEQ);
    CHECK(items && items->children && strcmp(items->children->value, "conference.localhost") == 0);

    h = config_host(cfg, "example.org");
    CHECK(h == &cfg->hosts[1]);
    snprintf(want, sizeof(want), "%s/org.crt", dir);
    CHECK_STR(h->certificate, want);
    snprintf(want, sizeof(want), "%s/org.key", dir);
    CHECK_STR(h->key, want);
    CHECK(h->n_modules == 4);
    CHECK_STR(h->modules[0].name, "disco");
    CHECK_STR(h->modules[1].name, "ping");
    CHECK_STR(h->modules[2].name, "version");
    CHECK(h->modules[2].line == 39);
    const cfg_node_t *hide = cfg_map_get(h->modules[2].options, "hide_os");
    CHECK(hide && strcmp(hide->value, "true") == 0);
    CHECK_STR(h->modules[3].name, "time");

    /* The module options check on a merged entry. */
    static const tern_option_t version_opts[] = {
        {.name = "hide_os", .type = TERN_OPT_BOOL, .def = "false"},
        {.name = NULL},
    };
    cfg_values_t v;
    CHECK(cfg_values_build(version_opts, h->modules[2].options, "version", &v, &err) == 0);
    CHECK(cfg_values_get(&v, "hide_os")->num == 1);
    cfg_values_clear(&v);

    CHECK(cfg->n_components == 1);
    CHECK_STR(cfg->components[0].domain, "conference.localhost");
    CHECK_STR(cfg->components[0].secret, "s3cret");
    config_free(&cfg);
}

/* A relative configuration path: its folder is made absolute. */
/* dns.servers: kept as written, each one parsed. */
static void test_dns(void)
{
    cfg_error_t err;
    tern_config_t *cfg = load("hosts:\n  localhost:\n"
                              "dns:\n  servers:\n    - 192.0.2.53\n    - 127.0.0.1:5353\n"
                              "    - \"[2001:db8::53]:53\"\n    - \"::1\"\n",
                              &err);
    CHECK(cfg != NULL);
    if (!cfg) {
        fprintf(stderr, "%s\n", err.text);
        return;
    }
    CHECK(cfg->n_dns_servers == 4);
    CHECK_STR(cfg->dns_servers[0], "192.0.2.53");
    CHECK_STR(cfg->dns_servers[1], "127.0.0.1:5353");
    CHECK_STR(cfg->dns_servers[2], "[2001:db8::53]:53");
    CHECK_STR(cfg->dns_servers[3], "::1");
    CHECK(cfg->dns_servers[4] == NULL);
    config_free(&cfg);

    char ip[64];
    int port = 0;
    CHECK(cfg_parse_dns_server("192.0.2.1", ip, sizeof(ip), &port) == 0 && port == 53);
    CHECK_STR(ip, "192.0.2.1");
    CHECK(cfg_parse_dns_server("127.0.0.1:5300", ip, sizeof(ip), &port) == 0 && port == 5300);
    CHECK_STR(ip, "127.0.0.1");
    CHECK(cfg_parse_dns_server("[::1]:5301", ip, sizeof(ip), &port) == 0 && port == 5301);
    CHECK_STR(ip, "::1");
    CHECK(cfg_parse_dns_server("[::1]", ip, sizeof(ip), &port) == 0 && port == 53);
    CHECK(cfg_parse_dns_server("2001:db8::1", ip, sizeof(ip), &port) == 0 && port == 53);
    CHECK_STR(ip, "2001:db8::1");
    CHECK(cfg_parse_dns_server("", ip, sizeof(ip), &port) < 0);
    CHECK(cfg_parse_dns_server("localhost", ip, sizeof(ip), &port) < 0);
    CHECK(cfg_parse_dns_server("127.0.0.1:", ip, sizeof(ip), &port) < 0);
    CHECK(cfg_parse_dns_server("127.0.0.1:0", ip, sizeof(ip), &port) < 0);
    CHECK(cfg_parse_dns_server("[127.0.0.1]:53", ip, sizeof(ip), &port) < 0);
    CHECK(cfg_parse_dns_server("[::1]x", ip, sizeof(ip), &port) < 0);
    CHECK(cfg_parse_dns_server("::1:53:", ip, sizeof(ip), &port) < 0);
}

/* services: loaded after the hosts, marked, with their own modules only. */
static void test_services(void)
{
    cfg_error_t err;
    tern_config_t *cfg = load("modules:\n  ping: {}\n"
                              "hosts:\n  localhost:\n"
                              "services:\n  Conference.LocalHost:\n    modules:\n"
                              "      muc: { max_rooms: 5 }\n      disco:\n"
                              "  upload.localhost:\n"
                              "  files.localhost: { certificate: f.crt, key: /k/f.key }\n",
                              &err);
    CHECK(cfg != NULL);
    if (!cfg) {
        fprintf(stderr, "%s\n", err.text);
        return;
    }
    CHECK(cfg->n_hosts == 4);
    CHECK_STR(cfg->hosts[0].name, "localhost");
    CHECK(!cfg->hosts[0].is_service);
    CHECK(cfg->hosts[0].n_modules == 1);
    const cfg_host_t *conf = config_host(cfg, "conference.localhost");
    CHECK(conf == &cfg->hosts[1]);
    CHECK(conf && conf->is_service);
    CHECK(conf && conf->n_modules == 2);
    CHECK(conf && conf->n_modules == 2 && strcmp(conf->modules[0].name, "muc") == 0 &&
          conf->modules[0].options != NULL && strcmp(conf->modules[1].name, "disco") == 0);
    const cfg_host_t *up = config_host(cfg, "upload.localhost");
    CHECK(up && up->is_service && up->n_modules == 0);
    CHECK(conf && !conf->certificate && !conf->key); /* the host's, chosen by the core */
    const cfg_host_t *files = config_host(cfg, "files.localhost");
    CHECK(files && files->is_service && files->certificate && files->key);
    if (files && files->certificate && files->key) {
        const char *slash = strrchr(files->certificate, '/');
        CHECK(files->certificate[0] == '/' && slash && strcmp(slash, "/f.crt") == 0);
        CHECK_STR(files->key, "/k/f.key");
    }
    config_free(&cfg);
}

static void test_relative_path(void)
{
    char cwd[PATH_MAX], here[PATH_MAX];
    CHECK(getcwd(cwd, sizeof(cwd)) != NULL);
    CHECK(write_config("state_dir: ./s\nhosts: { localhost: }\n") == 0);
    CHECK(chdir(dir) == 0);
    CHECK(getcwd(here, sizeof(here)) != NULL);
    cfg_error_t err;
    tern_config_t *cfg = config_load("./config.yml", &err);
    CHECK(cfg != NULL);
    if (cfg) {
        char want[PATH_MAX + 16];
        CHECK_STR(cfg->config_dir, here);
        snprintf(want, sizeof(want), "%s/s", here);
        CHECK_STR(cfg->state_dir, want);
        snprintf(want, sizeof(want), "%s/s/tern.db", here);
        CHECK_STR(cfg->storage_path, want);
        config_free(&cfg);
    }
    cfg = config_load("config.yml", &err);
    CHECK(cfg && strcmp(cfg->config_dir, here) == 0);
    config_free(&cfg);
    CHECK(chdir(cwd) == 0);
}

/* ---- server configuration: errors -------------------------------------- */

static void test_errors(void)
{
    const char *host = "hosts:\n  localhost:\n";
    char text[1024];

    EXPECT_ERR("hosts:\n  localhost:\nfoo: 1\n", ":3: unknown top-level key 'foo'");
    EXPECT_ERR("log_level: [a]\n", ":1: 'log_level' must be a string");
    EXPECT_ERR("log_level: loud\n", ":1: 'log_level' must be error, warn, info or debug");
    EXPECT_ERR("storage: sqlite\n", ":1: 'storage' must be a map");
    EXPECT_ERR("storage: { driver: mysql }\n",
               ":1: storage driver 'mysql' is not supported (only sqlite)");
    EXPECT_ERR("storage:\n  path: \"\"\n", ":2: 'storage.path' must not be empty");
    EXPECT_ERR("storage:\n  file: x\n",
               ":2: unknown key 'file' in 'storage' (known: driver, path)");
    EXPECT_ERR("tls:\n  cert: a.crt\n",
               ":2: unknown key 'cert' in 'tls' (known: certificate, key, ciphers, ciphersuites)");
    EXPECT_ERR("tls:\n  certificate: a.crt\n", ":1: 'tls' needs both certificate and key");
    EXPECT_ERR("admins: [alice@localhost/phone]\n",
               ":1: admin 'alice@localhost/phone' must be a bare account JID (user@host)");
    EXPECT_ERR("admins:\n  - localhost\n",
               ":2: admin 'localhost' must be a bare account JID (user@host)");
    EXPECT_ERR("admins:\n  - \"@localhost\"\n",
               ":2: admin '@localhost' is not a valid JID: empty localpart");
    EXPECT_ERR("admins: {a: b}\n", ":1: 'admins' must be a list of JIDs");

    /* Listeners. */
    EXPECT_ERR("listeners:\n  - { type: c2s, port: 70000 }\n",
               ":2: listener port '70000' must be a number from 1 to 65535");
    EXPECT_ERR("listeners:\n  - type: c2s\n    port: 0\n",
               ":3: listener port '0' must be a number from 1 to 65535");
    EXPECT_ERR("listeners:\n  - { type: c2s, port: -5 }\n",
               ":2: listener port '-5' must be a number from 1 to 65535");
    EXPECT_ERR("listeners:\n  - { type: s2x }\n",
               ":2: listener type 's2x' is unknown (c2s, c2s_tls, s2s, s2s_tls, component, http or "
               "https)");
    EXPECT_ERR("listeners:\n  - { port: 5222 }\n",
               ":2: listener needs a type (c2s, c2s_tls, s2s, s2s_tls, component, http or https)");
    EXPECT_ERR(
        "http:\n  trusted_proxies: [10.0.0.1, proxy.example]\n",
        ":2: section 'http': option 'trusted_proxies': 'proxy.example' is not an IP address");
    EXPECT_ERR("http:\n  max_header_size: 100\n",
               ":2: section 'http': option 'max_header_size' must be between 1K and 1M");
    EXPECT_ERR("websocket:\n  origin: x\n", ":2: section 'websocket': unknown option 'origin' "
                                            "(known: enabled, origins, allow_insecure, "
                                            "see_other_uri, public_url, max_message_size)");
    EXPECT_ERR("s2s:\n  connect_timeout: 1ms\n",
               ":2: section 's2s': option 'connect_timeout' must be between 500ms and 10m");
    EXPECT_ERR("s2s:\n  dialback_only: [\"a..b\"]\n",
               ":2: section 's2s': option 'dialback_only': 'a..b' is not a valid domain");
    EXPECT_ERR("s2s:\n  dialback_secret: short\n",
               ":2: section 's2s': option 'dialback_secret' must be at least 16 characters");
    EXPECT_ERR("s2s:\n  enabled: maybe\n",
               ":2: section 's2s': option 'enabled' must be true or false");
    EXPECT_ERR("listeners:\n  - { type: c2s, address: localhost }\n",
               ":2: listener address 'localhost' is not an IP address");
    EXPECT_ERR("listeners:\n  - { type: c2s, host: x }\n",
               ":2: unknown key 'host' in 'listener' (known: type, address, port)");
    EXPECT_ERR("listeners:\n  - { type: c2s, address: \"::\" }\n"
               "  - { type: c2s_tls, address: \"0::0\", port: 5222 }\n",
               ":3: duplicate listener on address '0::0' port 5222");
    EXPECT_ERR("listeners: { type: c2s }\n", ":1: 'listeners' must be a list");
    EXPECT_ERR("listeners:\n  - c2s\n", ":2: a listener must be a map of type, address and port");

    /* Sections declared as option tables. */
    EXPECT_ERR("limits:\n  max_stanza_size: big\n",
               ":2: section 'limits': option 'max_stanza_size' must be a size");
    EXPECT_ERR("limits:\n  max_stanza_size: 1K\n",
               ":2: section 'limits': option 'max_stanza_size' must be between 10000 and 64M");
    EXPECT_ERR("limits:\n  c2s_idle_timeout: 5s\n",
               ":2: section 'limits': option 'c2s_idle_timeout' must be between 10s and 7d");
    EXPECT_ERR("limits:\n  idle: 5s\n",
               ":2: section 'limits': unknown option 'idle' (known: max_stanza_size, "
               "c2s_idle_timeout, handshake_timeout, auth_failure_delay, max_auth_failures, "
               "component_handshake_timeout, component_idle_timeout, max_sessions_per_user, "
               "slow_reader_timeout, max_connections_per_ip, max_stanzas_per_second, "
               "stanza_burst)");
    EXPECT_ERR("limits:\n  max_sessions_per_user: 0\n",
               ":2: section 'limits': option 'max_sessions_per_user' must be between 1 and 10000");
    EXPECT_ERR("limits:\n  slow_reader_timeout: 0\n",
               ":2: section 'limits': option 'slow_reader_timeout' must be between 1s and 1h");
    EXPECT_ERR("limits:\n  max_connections_per_ip: -1\n",
               ":2: section 'limits': option 'max_connections_per_ip' must be between 0 and "
               "1000000");
    EXPECT_ERR("limits:\n  stanza_burst: 0\n",
               ":2: section 'limits': option 'stanza_burst' must be between 1 and 1000000");
    EXPECT_ERR("limits: 5\n", ":1: section 'limits': options must be a map");
    EXPECT_ERR("c2s:\n  require_encryption: maybe\n",
               ":2: section 'c2s': option 'require_encryption' must be true or false");
    EXPECT_ERR("c2s:\n  scram_iterations: 1000\n",
               ":2: section 'c2s': option 'scram_iterations' must be between 4096 and 10000000");
    EXPECT_ERR("c2s:\n  resource_conflict: kick_new\n",
               ":2: section 'c2s': option 'resource_conflict' must be kick_old or refuse");

    /* DNS servers. */
    EXPECT_ERR("dns:\n  servers:\n    - 127.0.0.1\n    - dns.example.org\n",
               ":4: section 'dns': server 'dns.example.org' must be an IP address, IP:PORT or "
               "[IPv6]:PORT");
    EXPECT_ERR("dns:\n  servers: 127.0.0.1:99999\n",
               ":2: section 'dns': server '127.0.0.1:99999' must be an IP address, IP:PORT or "
               "[IPv6]:PORT");
    EXPECT_ERR("dns:\n  servers: [\"[::1\"]\n",
               ":2: section 'dns': server '[::1' must be an IP address, IP:PORT or [IPv6]:PORT");
    EXPECT_ERR("dns:\n  resolvers: [127.0.0.1]\n",
               ":2: section 'dns': unknown option 'resolvers' (known: servers)");
    EXPECT_ERR("dns: 127.0.0.1\n", ":1: section 'dns': options must be a map");

    /* Modules and hosts. */
    EXPECT_ERR("modules:\n  ../evil: {}\n",
               ":2: invalid module name '../evil' (lowercase letters, digits and _ only)");
    EXPECT_ERR("modules:\n  disco: 3\n", ":2: module 'disco': options must be a map");
    EXPECT_ERR("modules: [disco]\n", ":1: 'modules' must be a map");
    EXPECT_ERR("log_level: info\n", ": 'hosts' is missing: at least one host is required");
    EXPECT_ERR("", ": 'hosts' is missing: at least one host is required");
    EXPECT_ERR("hosts: {}\n", ":1: 'hosts' is empty: at least one host is required");
    EXPECT_ERR("hosts:\n", ":1: 'hosts' is empty: at least one host is required");
    EXPECT_ERR("hosts: [localhost]\n", ":1: 'hosts' must be a map");
    EXPECT_ERR("hosts:\n  \"bad host!\":\n", ":2: invalid host name 'bad host!'");
    EXPECT_ERR("hosts:\n  localhost:\n  LOCALHOST:\n", ":3: host 'localhost' is configured twice");
    EXPECT_ERR("hosts:\n  localhost:\n  localhost:\n", ":3: duplicate key 'localhost'");
    EXPECT_ERR("hosts:\n  localhost:\n    certificate: a.crt\n",
               ":2: 'hosts.localhost' needs both certificate and key");
    EXPECT_ERR("hosts:\n  localhost:\n    modules:\n      disco: x\n",
               ":4: module 'disco': options must be a map");
    EXPECT_ERR("hosts:\n  localhost:\n    listen: 1\n",
               ":3: unknown key 'listen' in 'hosts.localhost' (known: certificate, key, "
               "modules)");
    EXPECT_ERR("- a\n", ":1: the configuration must be a map of settings");

    /* Components. */
    snprintf(text, sizeof(text), "%scomponents:\n  LocalHost: { secret: x }\n", host);
    EXPECT_ERR(text, ":4: component 'localhost' has the same name as a host");
    snprintf(text, sizeof(text), "%scomponents:\n  muc.localhost:\n", host);
    EXPECT_ERR(text, ":4: component 'muc.localhost' needs a non-empty 'secret'");
    snprintf(text, sizeof(text), "%scomponents:\n  muc.localhost: { secret: \"\" }\n", host);
    EXPECT_ERR(text, ":4: component 'muc.localhost' needs a non-empty 'secret'");
    snprintf(text, sizeof(text), "%scomponents:\n  muc.localhost: { secret: a, port: 1 }\n", host);
    EXPECT_ERR(text, ":4: unknown key 'port' in 'components.muc.localhost' (known: secret)");
    snprintf(text, sizeof(text),
             "%scomponents:\n  muc.localhost: { secret: a }\n  MUC.localhost: { secret: b }\n",
             host);
    EXPECT_ERR(text, ":5: component 'muc.localhost' is configured twice");
    snprintf(text, sizeof(text), "%scomponents:\n  \"a b\": { secret: a }\n", host);
    EXPECT_ERR(text, ":4: invalid component name 'a b'");

    /* Service domains. */
    snprintf(text, sizeof(text), "%sservices:\n  LocalHost:\n", host);
    EXPECT_ERR(text, ":4: service 'localhost' has the same name as a host");
    snprintf(text, sizeof(text), "%sservices:\n  muc.localhost:\n  MUC.localhost:\n", host);
    EXPECT_ERR(text, ":5: service 'muc.localhost' is configured twice");
    snprintf(text, sizeof(text), "%sservices:\n  \"a b\":\n", host);
    EXPECT_ERR(text, ":4: invalid service domain 'a b'");
    snprintf(text, sizeof(text), "%sservices: [muc.localhost]\n", host);
    EXPECT_ERR(text, ":3: 'services' must be a map");
    snprintf(text, sizeof(text), "%sservices:\n  muc.localhost:\n    cert: a.crt\n", host);
    EXPECT_ERR(text, ":5: unknown key 'cert' in 'services.muc.localhost' (known: certificate, "
                     "key, modules)");
    snprintf(text, sizeof(text), "%sservices:\n  muc.localhost:\n    certificate: a.crt\n", host);
    EXPECT_ERR(text, ":4: 'services.muc.localhost' needs both certificate and key");
    snprintf(text, sizeof(text), "%sservices:\n  muc.localhost:\n    modules:\n      muc: 3\n",
             host);
    EXPECT_ERR(text, ":6: module 'muc': options must be a map");
    snprintf(text, sizeof(text),
             "%sservices:\n  muc.localhost:\ncomponents:\n  muc.localhost: { secret: x }\n", host);
    EXPECT_ERR(text, ":6: component 'muc.localhost' has the same name as a service");

    /* YAML level. */
    EXPECT_ERR("base: &b { x: 1 }\nhosts:\n  localhost:\n", ":1: aliases are not supported");
    EXPECT_ERR("hosts:\n  localhost: *b\n", ":2: aliases are not supported");
    EXPECT_ERR("hosts:\n  localhost: a: b\n", ":2: mapping values are not allowed in this context");
    EXPECT_ERR("hosts:\n  - a\n  b: c\n", ":3: did not find expected '-' indicator");
    EXPECT_ERR("hosts: { localhost: }\n---\nlog_level: info\n",
               ":2: only one YAML document is allowed");

    /* A path too long for a Unix socket. */
    char longdir[200];
    memset(longdir, 'x', sizeof(longdir));
    longdir[0] = '/';
    longdir[sizeof(longdir) - 1] = '\0';
    snprintf(text, sizeof(text), "state_dir: %s\n%s", longdir, host);
    char want[700];
    snprintf(want, sizeof(want),
             "%s:1: admin socket path %s/ternctl.sock is too long (at most 107 bytes)", cfg_path,
             longdir);
    CHECK_STR(load_err(text), want);

    cfg_error_t err;
    CHECK(config_load("/nonexistent/tern.yml", &err) == NULL);
    CHECK_STR(err.text, "/nonexistent/tern.yml: cannot open: No such file or directory");
}

/* ---- the sample configuration ------------------------------------------ */

static void test_sample(const char *arg)
{
    char path[PATH_MAX];
    const char *srcdir = getenv("srcdir");
    if (arg)
        snprintf(path, sizeof(path), "%s", arg);
    else if (srcdir && *srcdir)
        snprintf(path, sizeof(path), "%s/conf/tern.yml.example", srcdir);
    else
        snprintf(path, sizeof(path), "conf/tern.yml.example");
    cfg_error_t err;
    memset(&err, 0, sizeof(err));
    tern_config_t *cfg = config_load(path, &err);
    CHECK(cfg != NULL);
    if (!cfg) {
        fprintf(stderr, "sample config: %s\n", err.text);
        return;
    }
    CHECK_STR(cfg->log_level, "info");
    CHECK(cfg->log_file == NULL);
#ifdef TERN_MODULE_DIR
    CHECK_STR(cfg->module_path, TERN_MODULE_DIR);
#endif
    CHECK(cfg->n_hosts == 1);
    const cfg_host_t *h = config_host(cfg, "localhost");
    CHECK(h != NULL);
    if (h) {
        /* Every module the server ships, in the sample's order. */
        static const char *const names[] = {"disco",
                                            "ping",
                                            "version",
                                            "time",
                                            "uptime",
                                            "roster",
                                            "offline",
                                            "carbons",
                                            "csi",
                                            "smacks",
                                            "mam",
                                            "blocking",
                                            "private",
                                            "vcard",
                                            "search",
                                            "pep",
                                            "avatar_conversion",
                                            "bookmarks",
                                            "register",
                                            "invites"};
        const size_t n = sizeof(names) / sizeof(names[0]);
        CHECK(h->n_modules == n);
        for (size_t i = 0; i < n && i < h->n_modules; i++)
            CHECK_STR(h->modules[i].name, names[i]);
    }
    CHECK(cfg->n_listeners == 2);
    CHECK(cfg->n_components == 0);
    CHECK(cfg->certificate != NULL && cfg->key != NULL);
    CHECK(cfg->max_stanza_size == 262144 && cfg->scram_iterations == 4096);
    config_free(&cfg);
}

int main(int argc, char **argv)
{
    snprintf(dir, sizeof(dir), "/tmp/tern-test-config-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(cfg_path, sizeof(cfg_path), "%s/config.yml", dir);

    test_parsers();
    test_tree();
    test_options();
    test_defaults();
    test_full();
    test_s2s();
    test_http();
    test_services();
    test_dns();
    test_relative_path();
    test_errors();
    test_sample(argc > 1 ? argv[1] : NULL);

    unlink(cfg_path);
    rmdir(dir);
    return check_summary();
}
