/*
 * check.c — `ternctl check [HOST]`: can clients and other servers reach
 * each host, seen from this machine.
 *
 * Owns the checks an admin would otherwise make by hand with dig and
 * openssl: the SRV records for clients and servers (with and without
 * direct TLS), the host's own addresses, whether the records point at a
 * listener of this configuration on an address of this machine, and the
 * certificate each host presents (its names, its chain to a trusted CA,
 * its expiry).  Every finding is one line: "ok", "note" (worth knowing)
 * or "PROBLEM" (something fails) followed by what to change.
 *
 * DNS goes through the server's own resolver (net/resolver.h) on a private
 * event loop, asking the servers of `dns.servers` like ternd does.
 */
#include "ternctl/check.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <strings.h>
#include <event2/event.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/server.h"
#include "net/resolver.h"

#define EXPIRY_WARN_DAYS 14
#define MAX_TARGETS      16
#define MAX_ADDRS        16

typedef struct checker {
    const tern_config_t *cfg;
    struct event_base *base;
    resolver_t *resolver;
    struct ifaddrs *local; /* this machine's addresses */
    int problems;
} checker_t;

/* ---- output -------------------------------------------------------------- */

static void say(checker_t *k, const char *level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(checker_t *k, const char *level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("  %-8s ", level);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (strcmp(level, "PROBLEM") == 0)
        k->problems++;
}

/* ---- DNS, one query at a time on the private loop -------------------------- */

typedef struct targets_answer {
    int done;
    resolver_target_t t[MAX_TARGETS];
    size_t n;
    char error[256];
} targets_answer_t;

typedef struct addrs_answer {
    int done;
    resolver_addr_t a[MAX_ADDRS];
    size_t n;
    char error[256];
} addrs_answer_t;

static void on_targets(void *arg, const resolver_target_t *t, size_t n, const char *error)
{
    targets_answer_t *ans = arg;
    ans->done = 1;
    ans->n = n < MAX_TARGETS ? n : MAX_TARGETS;
    if (ans->n)
        memcpy(ans->t, t, ans->n * sizeof(*t));
    snprintf(ans->error, sizeof(ans->error), "%s", error ? error : "");
}

static void on_addrs(void *arg, const resolver_addr_t *a, size_t n, const char *error)
{
    addrs_answer_t *ans = arg;
    ans->done = 1;
    ans->n = n < MAX_ADDRS ? n : MAX_ADDRS;
    if (ans->n)
        memcpy(ans->a, a, ans->n * sizeof(*a));
    snprintf(ans->error, sizeof(ans->error), "%s", error ? error : "");
}

static void wait_for(checker_t *k, const int *done)
{
    while (!*done)
        if (event_base_loop(k->base, EVLOOP_ONCE) < 0)
            break;
}

static void ask_targets(checker_t *k, const char *host, const char *service, unsigned short port,
                        targets_answer_t *ans)
{
    memset(ans, 0, sizeof(*ans));
    if (!resolver_targets(k->resolver, host, service, port, on_targets, ans)) {
        snprintf(ans->error, sizeof(ans->error), "out of memory");
        return;
    }
    wait_for(k, &ans->done);
}

static void ask_addrs(checker_t *k, const char *host, unsigned short port, addrs_answer_t *ans)
{
    memset(ans, 0, sizeof(*ans));
    if (!resolver_addrs(k->resolver, host, port, on_addrs, ans)) {
        snprintf(ans->error, sizeof(ans->error), "out of memory");
        return;
    }
    wait_for(k, &ans->done);
}

/* ---- where records point ------------------------------------------------- */

static void addr_text(const resolver_addr_t *a, char *buf, size_t len)
{
    const void *p = a->ss.ss_family == AF_INET6
                        ? (const void *)&((const struct sockaddr_in6 *)&a->ss)->sin6_addr
                        : (const void *)&((const struct sockaddr_in *)&a->ss)->sin_addr;
    if (!inet_ntop(a->ss.ss_family, p, buf, (socklen_t)len))
        snprintf(buf, len, "?");
}

static int same_ip(const struct sockaddr *x, const struct sockaddr_storage *y)
{
    if (x->sa_family != y->ss_family)
        return 0;
    if (x->sa_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)x)->sin_addr,
                      &((const struct sockaddr_in *)y)->sin_addr, sizeof(struct in_addr)) == 0;
    return memcmp(&((const struct sockaddr_in6 *)x)->sin6_addr,
                  &((const struct sockaddr_in6 *)y)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

static int is_local(const checker_t *k, const resolver_addr_t *a)
{
    for (const struct ifaddrs *i = k->local; i; i = i->ifa_next)
        if (i->ifa_addr && same_ip(i->ifa_addr, &a->ss))
            return 1;
    return 0;
}

/* Whether a listener of the kind that serves (s2s, direct_tls) takes
 * connections on `port` at address `a` (or on every address). */
static const char *kind_for(int s2s, int direct_tls)
{
    if (s2s)
        return direct_tls ? "s2s_tls" : "s2s";
    return direct_tls ? "c2s_tls" : "c2s";
}

static int listener_is(const cfg_listener_t *l, int s2s, int direct_tls)
{
    return strcmp(cfg_listen_kind_name(l->kind), kind_for(s2s, direct_tls)) == 0;
}

static int listens_at(const checker_t *k, int s2s, int direct_tls, const resolver_addr_t *a,
                      unsigned short port)
{
    for (size_t i = 0; i < k->cfg->n_listeners; i++) {
        const cfg_listener_t *l = &k->cfg->listeners[i];
        if (!listener_is(l, s2s, direct_tls) || l->port != port)
            continue;
        if (strcmp(l->address, "::") == 0 || strcmp(l->address, "0.0.0.0") == 0)
            return 1;
        resolver_addr_t want;
        memset(&want, 0, sizeof(want));
        struct sockaddr_in *v4 = (struct sockaddr_in *)&want.ss;
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&want.ss;
        if (inet_pton(AF_INET, l->address, &v4->sin_addr) == 1)
            v4->sin_family = AF_INET;
        else if (inet_pton(AF_INET6, l->address, &v6->sin6_addr) == 1)
            v6->sin6_family = AF_INET6;
        if (same_ip((const struct sockaddr *)&want.ss, &a->ss))
            return 1;
    }
    return 0;
}

static int has_listener(const checker_t *k, int s2s, int direct_tls)
{
    for (size_t i = 0; i < k->cfg->n_listeners; i++)
        if (listener_is(&k->cfg->listeners[i], s2s, direct_tls))
            return 1;
    return 0;
}

/* One SRV target (or the host itself when it has no records): its
 * addresses, each on this machine and at a listener of the right kind. */
static void check_target(checker_t *k, const char *what, int s2s, const resolver_target_t *t)
{
    addrs_answer_t ans;
    ask_addrs(k, t->host, t->port, &ans);
    if (ans.n == 0) {
        say(k, "PROBLEM",
            "%s points at %s port %u, but %s has no address (%s). Fix: add A and/or AAAA "
            "records for %s.",
            what, t->host, t->port, t->host, ans.error[0] ? ans.error : "no records", t->host);
        return;
    }
    for (size_t i = 0; i < ans.n; i++) {
        char ip[INET6_ADDRSTRLEN];
        addr_text(&ans.a[i], ip, sizeof(ip));
        const char *kind = kind_for(s2s, t->direct_tls);
        if (!is_local(k, &ans.a[i]))
            say(k, "note",
                "%s: %s port %u is %s, not an address of this machine (fine behind port "
                "forwarding or a load balancer; else fix the record).",
                what, t->host, t->port, ip);
        else if (!listens_at(k, s2s, t->direct_tls, &ans.a[i], t->port))
            say(k, "PROBLEM",
                "%s: %s port %u (%s) has no %s listener in this configuration. Fix: add a "
                "listener {type: %s, port: %u} or correct the record's port.",
                what, t->host, t->port, ip, kind, kind, t->port);
        else
            say(k, "ok", "%s: %s port %u (%s) reaches a %s listener here.", what, t->host, t->port,
                ip, kind);
    }
}

/* The SRV records of one service (xmpp-client or xmpp-server), both
 * flavours, and where they point. */
static void check_service(checker_t *k, const char *host, int s2s)
{
    const char *service = s2s ? "xmpp-server" : "xmpp-client";
    unsigned short port = s2s ? 5269 : 5222;
    targets_answer_t ans;
    ask_targets(k, host, service, port, &ans);
    int plain = has_listener(k, s2s, 0), direct = has_listener(k, s2s, 1);
    const char *who = s2s ? "other servers" : "clients";

    if (ans.error[0]) {
        if (s2s && !plain && !direct)
            say(k, "ok", "_%s._tcp.%s: %s, and no s2s listener is configured either.", service,
                host, ans.error);
        else
            say(k, "PROBLEM",
                "_%s._tcp.%s: %s. Fix: publish SRV records for the %s listeners, or remove "
                "the record with target \".\".",
                service, host, ans.error, s2s ? "s2s" : "c2s");
        return;
    }
    int srv = 0, srv_plain = 0, srv_direct = 0;
    for (size_t i = 0; i < ans.n; i++) {
        srv |= ans.t[i].from_srv;
        srv_plain |= ans.t[i].from_srv && !ans.t[i].direct_tls;
        srv_direct |= ans.t[i].from_srv && ans.t[i].direct_tls;
    }
    if (!srv) {
        if (s2s && !plain && !direct) {
            say(k, "note",
                "no s2s listener and no _xmpp-server records: %s cannot reach this host "
                "(federation is off). Fix, to federate: add a listener {type: s2s, port: "
                "5269} and the record _xmpp-server._tcp.%s. SRV 0 5 5269 <your server's name>.",
                who, host);
            return;
        }
        say(k, "note",
            "no _%s._tcp or _xmpps-%s._tcp records: %s try %s port %u. Fix, if that is not "
            "where you listen: add _%s._tcp.%s. SRV 0 5 <port> <your server's name>.",
            service, service + 5, who, host, port, service, host);
        resolver_target_t self = ans.t[0];
        char what[300];
        snprintf(what, sizeof(what), "%s (no SRV)", host);
        check_target(k, what, s2s, &self);
        return;
    }
    if (plain && !srv_plain)
        say(k, "note",
            "no _%s._tcp.%s record though a %s listener is configured: %s that do not use "
            "direct TLS fall back to %s port %u.",
            service, host, kind_for(s2s, 0), who, host, port);
    if (direct && !srv_direct)
        say(k, "note",
            "no _xmpps-%s._tcp.%s record (XEP-0368) though a %s listener is configured: %s "
            "will not find it.",
            service + 5, host, kind_for(s2s, 1), who);
    for (size_t i = 0; i < ans.n; i++) {
        char what[300];
        snprintf(what, sizeof(what), "_%s%s._tcp.%s", ans.t[i].direct_tls ? "xmpps-" : "xmpp-",
                 s2s ? "server" : "client", host);
        check_target(k, what, s2s, &ans.t[i]);
    }
}

/* ---- the certificate ------------------------------------------------------- */

/* The leaf and the rest of the chain of a PEM file; the leaf is NULL when
 * the file cannot be read. */
static X509 *read_chain(const char *path, STACK_OF(X509) * *rest)
{
    *rest = sk_X509_new_null();
    FILE *f = fopen(path, "r");
    if (!f || !*rest) {
        if (f)
            fclose(f);
        return NULL;
    }
    X509 *leaf = PEM_read_X509(f, NULL, NULL, NULL);
    X509 *x;
    while (leaf && (x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
        if (!sk_X509_push(*rest, x))
            X509_free(x);
    fclose(f);
    return leaf;
}

static void check_names(checker_t *k, X509 *leaf, const char *path, const char *name)
{
    if (X509_check_host(leaf, name, 0, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, NULL) == 1)
        say(k, "ok", "the certificate %s names %s.", path, name);
    else
        say(k, "PROBLEM",
            "the certificate %s does not name %s: clients and servers will refuse it. Fix: "
            "get a certificate whose subjectAltName lists %s (or a wildcard covering it).",
            path, name, name);
}

static void check_certificate(checker_t *k, const cfg_host_t *h)
{
    const char *cert = NULL, *key = NULL;
    server_cert_paths(k->cfg, h, &cert, &key);
    if (!cert) {
        say(k, "PROBLEM", "no certificate for %s. Fix: set tls.certificate and tls.key.", h->name);
        return;
    }
    STACK_OF(X509) *rest = NULL;
    X509 *leaf = read_chain(cert, &rest);
    if (!leaf) {
        say(k, "PROBLEM", "cannot read the certificate %s.", cert);
        sk_X509_pop_free(rest, X509_free);
        return;
    }
    check_names(k, leaf, cert, h->name);
    /* Service domains that present the same certificate. */
    for (size_t i = 0; i < k->cfg->n_hosts; i++) {
        const cfg_host_t *s = &k->cfg->hosts[i];
        const char *sc = NULL, *sk = NULL;
        if (!s->is_service || s == h)
            continue;
        server_cert_paths(k->cfg, s, &sc, &sk);
        size_t hl = strlen(h->name), sl = strlen(s->name);
        if (sc && strcmp(sc, cert) == 0 && sl > hl + 1 && s->name[sl - hl - 1] == '.' &&
            strcmp(s->name + sl - hl, h->name) == 0)
            check_names(k, leaf, cert, s->name);
    }

    int days = 0, secs = 0;
    const ASN1_TIME *end = X509_get0_notAfter(leaf);
    if (X509_cmp_current_time(end) <= 0) {
        say(k, "PROBLEM", "the certificate %s has expired. Fix: renew it, then `ternctl reload`.",
            cert);
    } else if (ASN1_TIME_diff(&days, &secs, NULL, end) == 1 && days < EXPIRY_WARN_DAYS) {
        say(k, "PROBLEM",
            "the certificate %s expires in %d days. Fix: renew it, then `ternctl reload`.", cert,
            days);
    } else {
        say(k, "ok", "the certificate %s is valid for %d more days.", cert, days);
    }

    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    if (store && ctx && X509_STORE_set_default_paths(store) == 1 &&
        X509_STORE_CTX_init(ctx, store, leaf, rest) == 1) {
        X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
        if (X509_verify_cert(ctx) == 1) {
            say(k, "ok", "the certificate %s chains to a CA this machine trusts.", cert);
        } else {
            int e = X509_STORE_CTX_get_error(ctx);
            if (e == X509_V_ERR_CERT_HAS_EXPIRED)
                ; /* said above */
            else
                say(k, "PROBLEM",
                    "the certificate %s does not chain to a trusted CA (%s): other servers "
                    "will refuse it for federation, and clients warn. Fix: use a certificate "
                    "from a public CA, with its intermediate certificates in the same file.",
                    cert, X509_verify_cert_error_string(e));
        }
    }
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(leaf);
    sk_X509_pop_free(rest, X509_free);
}

/* ---- per host -------------------------------------------------------------- */

static void check_host(checker_t *k, const cfg_host_t *h)
{
    printf("%s%s\n", h->name, h->is_service ? " (service domain)" : "");
    if (!h->is_service)
        check_service(k, h->name, 0);
    check_service(k, h->name, 1);
    check_certificate(k, h);
}

int ternctl_check(const tern_config_t *cfg, const char *only)
{
    checker_t k = {.cfg = cfg};
    char why[256];
    const cfg_host_t *one = NULL;
    if (only) {
        for (size_t i = 0; i < cfg->n_hosts && !one; i++)
            if (strcasecmp(cfg->hosts[i].name, only) == 0)
                one = &cfg->hosts[i];
        if (!one) {
            fprintf(stderr, "ternctl: %s is not a host or service domain of %s\n", only, cfg->path);
            return -1;
        }
    }
    if (!(k.base = event_base_new()) ||
        !(k.resolver =
              resolver_new(k.base, cfg->dns_servers, cfg->n_dns_servers, why, sizeof(why)))) {
        fprintf(stderr, "ternctl: DNS: %s\n", k.base ? why : "out of memory");
        if (k.base)
            event_base_free(k.base);
        return -1;
    }
    if (getifaddrs(&k.local) != 0)
        k.local = NULL;
    for (size_t i = 0; i < cfg->n_hosts; i++)
        if (!one || one == &cfg->hosts[i])
            check_host(&k, &cfg->hosts[i]);
    if (k.local)
        freeifaddrs(k.local);
    resolver_free(&k.resolver);
    event_base_free(k.base);
    printf(k.problems ? "%d problem%s found\n" : "no problems found\n", k.problems,
           k.problems == 1 ? "" : "s");
    return k.problems;
}
