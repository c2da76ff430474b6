/*
 * main.c — ternd: parse the command line, start the server, run the loop,
 * and release everything on the way out.
 */
#include "autoconfig.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "core/admin.h"
#include "core/listener.h"
#include "util/log.h"
#include "core/modules.h"
#include "core/server.h"
#include "net/resolver.h"
#include "util/workers.h"
#include "route/router.h"
#include "route/sessions.h"
#include "store/store.h"
#include "store/account_names.h"
#include "stream/s2s.h"
#include "xml/xml_stream.h"
#include "xmpp/conn.h"
#include "core/web.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ternd [-c CONFIG] [--check-config] [--version]\n"
            "       ternd --options-doc DIR NAME...\n"
            "  -c, --config FILE   configuration file (default %s/tern.yml)\n"
            "      --check-config  check the configuration and modules, then exit\n"
            "      --options-doc   print the option tables of modules DIR/mod_NAME.so\n"
            "                      as Markdown (how doc/ is generated)\n"
            "  -V, --version       print the version\n",
            TERN_SYSCONFDIR);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    if (sig == SIGHUP) {
        cfg_error_t err;
        if (server_reload(&err) < 0)
            log_error("reload failed, keeping the running configuration: %s", err.text);
    } else {
        server_stop();
    }
}

/* Storage writes made while reading connections share commits (store.h):
 * a batch is committed before anything goes back to a connection whose
 * input is being handled, after BATCH_DELAY_US at the latest, and at
 * shutdown. */
#define BATCH_DELAY_US 2000

/* Threads for key derivation (PLAIN logins, registrations, password
 * changes): two keep a core for the loop on a small machine. */
#define WORKER_THREADS 2

/* The loop's wait for another process's write lock (ternctl).  Every
 * user waits with it, so it is short: ternd's own writers never contend
 * with it (checkpoints take turns through a gate, store_checkpoint.c),
 * and ternctl's account commands hold the lock for milliseconds (keys
 * are derived before their transactions).  A write that still finds the
 * lock taken after this fails and is reported like any storage error,
 * rather than freezing every session for seconds. */
#define LOOP_BUSY_TIMEOUT_MS 250

static struct event *batch_timer;

static void batch_flush(void)
{
    if (store_batch_flush(server.db) < 0)
        log_error("storage: cannot commit: %s", store_last_error(server.db));
}

static void on_batch_timer(evutil_socket_t fd, short what, void *arg)
{
    batch_flush();
}

static void batch_begin(void)
{
    store_batch_begin(server.db);
}

static void batch_end(void)
{
    if (store_batch_end(server.db) && batch_timer && !evtimer_pending(batch_timer, NULL)) {
        const struct timeval delay = {0, BATCH_DELAY_US};
        evtimer_add(batch_timer, &delay);
    }
}

/* The archive items of deleted accounts go PURGE_STEP at a time, every
 * PURGE_EVERY_MS, between other work (store_defer_purges). */
#define PURGE_STEP     500
#define PURGE_EVERY_MS 20

static struct event *purge_timer;

static void on_purge_timer(evutil_socket_t fd, short what, void *arg)
{
    if (store_purge_step(server.db, PURGE_STEP) < 0)
        log_error("storage: cannot remove a deleted account's history: %s",
                  store_last_error(server.db));
}

/* A server holds one descriptor per connection: use all the system allows. */
/* A module or the core changed a stanza that was already routed. */
static void report_misuse(const char *msg)
{
    log_error("%s", msg);
}

static void raise_file_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t old = rl.rlim_cur;
    if (old < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            rl.rlim_cur = old;
    }
    if (rl.rlim_cur != old)
        log_info("open files limit raised from %llu to %llu (the hard limit)",
                 (unsigned long long)old, (unsigned long long)rl.rlim_cur);
    else
        log_info("open files limit: %llu", (unsigned long long)rl.rlim_cur);
}

static int check_config(const char *path)
{
    cfg_error_t err;
    tern_config_t *cfg = config_load(path, &err);
    int ok = cfg && server_check_config(cfg, &err) == 0;
    config_free(&cfg);
    if (!ok) {
        fprintf(stderr, "ternd: %s\n", err.text);
        return 1;
    }
    printf("config OK\n");
    return 0;
}

/* ternd --options-doc DIR NAME...: each module's options, a table each,
 * separated by a line "## NAME". */
static int options_doc(const char *dir, char **names, int n)
{
    for (int i = 0; i < n; i++) {
        cfg_error_t err;
        printf("## %s\n", names[i]);
        if (module_options_doc(dir, names[i], stdout, &err) < 0) {
            fprintf(stderr, "ternd: %s\n", err.text);
            return 1;
        }
    }
    return 0;
}

static int run(const char *path)
{
    cfg_error_t err;
    const char *why = NULL;
    struct event *signals[4] = {0};
    int rc = 1;
    server.cfg = config_load(path, &err);
    if (!server.cfg) {
        fprintf(stderr, "ternd: %s\n", err.text);
        return 1;
    }
    if (log_open(server.cfg->log_level, server.cfg->log_file) < 0) {
        fprintf(stderr, "ternd: cannot open log file %s: %s\n", server.cfg->log_file,
                strerror(errno));
        goto out;
    }
    xml_set_misuse_report(report_misuse);
    server_apply_settings(server.cfg);
    raise_file_limit();
    server.started_us = tern_now_us();
    server.base = event_base_new();
    if (!server.base || sessions_init() < 0)
        goto out;
    if (workers_start(server.base, WORKER_THREADS) < 0)
        log_warn("no worker threads: key derivation runs on the event loop");
    if (!(server.tls = server_build_tls(server.cfg, &err))) {
        log_error("%s", err.text);
        goto out;
    }
    if (!(server.resolver = server_build_resolver(server.cfg, &err))) {
        log_error("%s", err.text);
        goto out;
    }
    if (!(server.db = store_open(server.cfg->storage_path, &why))) {
        log_error("cannot open storage %s: %s", server.cfg->storage_path, why);
        goto out;
    }
    if (store_checkpoint_in_background(server.db) < 0)
        log_warn("storage: checkpoints run on the event loop");
    store_set_busy_timeout(server.db, LOOP_BUSY_TIMEOUT_MS);
    account_names_load(server.db); /* account checks from memory (logs when it cannot) */
    store_defer_purges(server.db);
    purge_timer = event_new(server.base, -1, EV_PERSIST, on_purge_timer, NULL);
    if (purge_timer) {
        const struct timeval every = {0, PURGE_EVERY_MS * 1000};
        event_add(purge_timer, &every);
    }
    for (size_t i = 0; i < server.cfg->n_components; i++)
        router_component_declare(server.cfg->components[i].domain);
    if (hosts_init(server.cfg, &err) < 0) {
        log_error("%s", err.text);
        goto out;
    }
    char s2s_err[256];
    if (s2s_start(s2s_err, sizeof(s2s_err)) < 0) {
        log_error("federation: %s", s2s_err);
        goto out;
    }
    batch_timer = evtimer_new(server.base, on_batch_timer, NULL);
    if (batch_timer) {
        const conn_input_hooks_t batching = {batch_begin, batch_flush, batch_end};
        conn_set_input_hooks(&batching);
    }
    if (web_start() < 0 || listeners_start(server.base, server.cfg) < 0)
        goto out;
    if (admin_start(server.base, server.cfg->admin_socket, &why) < 0) {
        log_error("admin socket %s: %s", server.cfg->admin_socket, why);
        goto out;
    }
    const int sigs[4] = {SIGHUP, SIGTERM, SIGINT, 0};
    for (int i = 0; sigs[i]; i++) {
        signals[i] = evsignal_new(server.base, sigs[i], on_signal, NULL);
        if (signals[i])
            evsignal_add(signals[i], NULL);
    }
    tern_event_t ev = {0};
    hosts_fire_all("server/started", &ev);
    log_info("Tern %s started", PACKAGE_VERSION);
    event_base_dispatch(server.base);
    rc = 0;
out:
    admin_stop();
    listeners_stop();
    web_stop();
    s2s_stop();
    for (int i = 0; i < 4; i++)
        if (signals[i])
            event_free(signals[i]);
    if (server.stop_event)
        event_free(server.stop_event);
    if (batch_timer)
        event_free(batch_timer);
    if (purge_timer)
        event_free(purge_timer);
    batch_flush();
    hosts_free_all();
    sessions_free_all();
    workers_stop();
    router_free();
    account_names_free();
    store_close(&server.db);
    tls_server_free(&server.tls);
    resolver_free(&server.resolver);
    if (server.base)
        event_base_free(server.base);
    config_free(&server.cfg);
    log_info("stopped");
    log_close();
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'k'},
        {"options-doc", no_argument, NULL, 'O'},  {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *path = TERN_SYSCONFDIR "/tern.yml";
    int check = 0, doc = 0, opt;
    while ((opt = getopt_long(argc, argv, "c:Vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'O':
            doc = 1;
            break;
        case 'V':
            printf("ternd %s\n", PACKAGE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (doc) {
        if (argc - optind < 2) {
            usage(stderr);
            return 2;
        }
        return options_doc(argv[optind], argv + optind + 1, argc - optind - 1);
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    return check ? check_config(path) : run(path);
}
