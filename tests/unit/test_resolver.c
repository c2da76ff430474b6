/*
 * test_resolver.c — unit tests for src/net/resolver.c against a real DNS
 * server: dnsmasq from Debian, started here on a free port of 127.0.0.1
 * with the records the checks need (the test fails with a clear message
 * when dnsmasq is not installed).
 *
 * Checks: the SRV targets of both record sets merged and ordered by
 * priority, with direct TLS first at equal priority and weight; the domain
 * itself on the default port when there is no SRV record; the "." target
 * error; "no such domain"; AAAA before A; IP literals; answers kept for
 * their TTL and no longer (dnsmasq stopped in between); cancelling a
 * query from another's callback; freeing the resolver with queries pending
 * and from inside a callback; a silent DNS server gives an error within
 * the timeout; callbacks never run inside the call that started them.
 */
#include "net/resolver.h"
#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TTL 3 /* seconds dnsmasq gives its records (--local-ttl) */

static struct event_base *base;
static pid_t dnsmasq_pid;
static char pid_file[64];
static int in_call; /* a resolver_* call is running: callbacks must not */

static const char *find_dnsmasq(void)
{
    static const char *const paths[] = {"/usr/sbin/dnsmasq", "/usr/bin/dnsmasq",
                                        "/usr/local/sbin/dnsmasq", NULL};
    for (const char *const *p = paths; *p; p++)
        if (access(*p, X_OK) == 0)
            return *p;
    return NULL;
}

/* A port free for both UDP and TCP on 127.0.0.1. */
static int free_port(void)
{
    for (int tries = 0; tries < 20; tries++) {
        int u = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET};
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(sin);
        int port = -1;
        if (u >= 0 && t >= 0 && bind(u, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
            getsockname(u, (struct sockaddr *)&sin, &len) == 0 &&
            bind(t, (struct sockaddr *)&sin, sizeof(sin)) == 0)
            port = ntohs(sin.sin_port);
        if (u >= 0)
            close(u);
        if (t >= 0)
            close(t);
        if (port > 0)
            return port;
    }
    return -1;
}

static void stop_dnsmasq(void)
{
    if (dnsmasq_pid <= 0)
        return;
    kill(dnsmasq_pid, SIGTERM);
    waitpid(dnsmasq_pid, NULL, 0);
    dnsmasq_pid = 0;
    unlink(pid_file);
}

/* 1 once something answers DNS over TCP on `port` (dnsmasq is up). */
static int port_open(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = s >= 0 && connect(s, (struct sockaddr *)&sin, sizeof(sin)) == 0;
    if (s >= 0)
        close(s);
    return ok;
}

/* Start dnsmasq on a free port with the test records; the port, or -1. */
static int start_dnsmasq(const char *exe)
{
    int port = free_port();
    if (port < 0)
        return -1;
    char a_port[32], a_pid[96], a_ttl[32];
    snprintf(a_port, sizeof(a_port), "--port=%d", port);
    snprintf(pid_file, sizeof(pid_file), "/tmp/test_resolver.%d.pid", (int)getpid());
    snprintf(a_pid, sizeof(a_pid), "--pid-file=%s", pid_file);
    snprintf(a_ttl, sizeof(a_ttl), "--local-ttl=%d", TTL);
    char *argv[] = {
        (char *)exe, "--no-daemon", "--no-resolv", "--no-hosts", a_port,
        "--listen-address=127.0.0.1", "--bind-interfaces", "--conf-file=/dev/null", a_pid, a_ttl,
        "--local=/test/",
        /* _xmpp- and _xmpps- records of example.test, merged by the resolver */
        "--srv-host=_xmpp-client._tcp.example.test,plain.example.test,5222,10,5",
        "--srv-host=_xmpps-client._tcp.example.test,tls.example.test,5223,10,5",
        "--srv-host=_xmpp-client._tcp.example.test,first.example.test,5299,5,0",
        "--srv-host=_xmpps-client._tcp.example.test,last.example.test,443,20,0",
        /* no target: "." (the service is decidedly not offered) */
        "--srv-host=_xmpp-server._tcp.nosrv.test",
        "--host-record=both.example.test,192.0.2.1,2001:db8::1",
        "--host-record=v4.example.test,192.0.2.7",
        /* asked first by the cache test, so that their TTL starts there */
        "--host-record=cached.example.test,192.0.2.3,2001:db8::3",
        "--srv-host=_xmpp-server._tcp.cached.example.test,cached.example.test,5269,0,0",
        "--srv-host=_xmpps-server._tcp.cached.example.test,cached.example.test,5270,0,0", NULL};
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execv(exe, argv);
        _exit(127);
    }
    dnsmasq_pid = pid;
    for (int i = 0; i < 100; i++) {
        if (port_open(port))
            return port;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            dnsmasq_pid = 0;
            return -1;
        }
        usleep(50 * 1000);
    }
    stop_dnsmasq();
    return -1;
}

/* ---- driving the loop --------------------------------------------------- */

static int timed_out;

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    timed_out = 1;
}

/* Run the loop until *done or `ms` passed. */
static void run_until(const int *done, int ms)
{
    struct event *t = evtimer_new(base, on_timeout, NULL);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    timed_out = 0;
    evtimer_add(t, &tv);
    while (!*done && !timed_out)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(t);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* What one query answered. */
typedef struct answer {
    int done, calls, in_call;
    char error[256];
    resolver_target_t t[16];
    resolver_addr_t a[16];
    size_t n;
} answer_t;

static void on_targets(void *arg, const resolver_target_t *t, size_t n, const char *error)
{
    answer_t *ans = arg;
    ans->calls++;
    ans->done = 1;
    ans->in_call |= in_call;
    snprintf(ans->error, sizeof(ans->error), "%s", error ? error : "");
    ans->n = n < 16 ? n : 16;
    if (ans->n)
        memcpy(ans->t, t, ans->n * sizeof(*t));
}

static void on_addrs(void *arg, const resolver_addr_t *a, size_t n, const char *error)
{
    answer_t *ans = arg;
    ans->calls++;
    ans->done = 1;
    ans->in_call |= in_call;
    snprintf(ans->error, sizeof(ans->error), "%s", error ? error : "");
    ans->n = n < 16 ? n : 16;
    if (ans->n)
        memcpy(ans->a, a, ans->n * sizeof(*a));
}

static void targets(resolver_t *r, const char *domain, const char *service, unsigned short port,
                    answer_t *ans)
{
    memset(ans, 0, sizeof(*ans));
    in_call = 1;
    resolver_query_t *q = resolver_targets(r, domain, service, port, on_targets, ans);
    in_call = 0;
    CHECK(q != NULL);
    run_until(&ans->done, 8000);
    CHECK(ans->calls == 1);
    CHECK(!ans->in_call);
}

static void addrs(resolver_t *r, const char *host, unsigned short port, answer_t *ans)
{
    memset(ans, 0, sizeof(*ans));
    in_call = 1;
    resolver_query_t *q = resolver_addrs(r, host, port, on_addrs, ans);
    in_call = 0;
    CHECK(q != NULL);
    run_until(&ans->done, 8000);
    CHECK(ans->calls == 1);
    CHECK(!ans->in_call);
}

/* "IP" of address i of ans, and its port. */
static const char *addr_text(const answer_t *ans, size_t i, int *port)
{
    static char buf[INET6_ADDRSTRLEN];
    const struct sockaddr_storage *ss = &ans->a[i].ss;
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &v6->sin6_addr, buf, sizeof(buf));
        *port = ntohs(v6->sin6_port);
    } else {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &v4->sin_addr, buf, sizeof(buf));
        *port = ntohs(v4->sin_port);
    }
    return buf;
}

/* ---- the checks --------------------------------------------------------- */

static void test_srv_order(resolver_t *r)
{
    answer_t ans;
    targets(r, "example.test", "xmpp-client", 5222, &ans);
    CHECK_STR(ans.error, "");
    CHECK(ans.n == 4);
    if (ans.n != 4)
        return;
    CHECK_STR(ans.t[0].host, "first.example.test");
    CHECK(ans.t[0].port == 5299 && !ans.t[0].direct_tls);
    /* equal priority and weight: direct TLS first */
    CHECK_STR(ans.t[1].host, "tls.example.test");
    CHECK(ans.t[1].port == 5223 && ans.t[1].direct_tls);
    CHECK_STR(ans.t[2].host, "plain.example.test");
    CHECK(ans.t[2].port == 5222 && !ans.t[2].direct_tls);
    CHECK_STR(ans.t[3].host, "last.example.test");
    CHECK(ans.t[3].port == 443 && ans.t[3].direct_tls);
    /* A trailing dot on the domain is the same name. */
    targets(r, "example.test.", "xmpp-client", 5222, &ans);
    CHECK(ans.n == 4);
}

static void test_fallback(resolver_t *r)
{
    answer_t ans;
    targets(r, "plain.example.test", "xmpp-server", 5269, &ans);
    CHECK_STR(ans.error, "");
    CHECK(ans.n == 1);
    CHECK_STR(ans.t[0].host, "plain.example.test");
    CHECK(ans.t[0].port == 5269 && !ans.t[0].direct_tls);
}

static void test_no_service(resolver_t *r)
{
    answer_t ans;
    targets(r, "nosrv.test", "xmpp-server", 5269, &ans);
    CHECK_STR(ans.error, "the domain says it offers no such service");
    CHECK(ans.n == 0);
}

static void test_nxdomain(resolver_t *r)
{
    answer_t ans;
    addrs(r, "nowhere.test", 5269, &ans);
    CHECK_STR(ans.error, "no such domain");
    CHECK(ans.n == 0);
    /* The name exists but has no address of either kind. */
    addrs(r, "_xmpp-server._tcp.nosrv.test", 5269, &ans);
    CHECK_STR(ans.error, "no address for _xmpp-server._tcp.nosrv.test");
}

static void test_addrs(resolver_t *r)
{
    answer_t ans;
    int port = 0;
    addrs(r, "both.example.test", 5269, &ans);
    CHECK_STR(ans.error, "");
    CHECK(ans.n == 2);
    if (ans.n == 2) {
        CHECK_STR(addr_text(&ans, 0, &port), "2001:db8::1");
        CHECK(port == 5269 && ans.a[0].len == sizeof(struct sockaddr_in6));
        CHECK_STR(addr_text(&ans, 1, &port), "192.0.2.1");
        CHECK(port == 5269 && ans.a[1].len == sizeof(struct sockaddr_in));
    }
    addrs(r, "v4.example.test", 5222, &ans);
    CHECK_STR(ans.error, "");
    CHECK(ans.n == 1);
    CHECK_STR(addr_text(&ans, 0, &port), "192.0.2.7");
}

static void test_literals(resolver_t *r)
{
    answer_t ans;
    int port = 0;
    addrs(r, "192.0.2.9", 5269, &ans);
    CHECK(ans.n == 1);
    CHECK_STR(addr_text(&ans, 0, &port), "192.0.2.9");
    CHECK(port == 5269);
    addrs(r, "2001:db8::7", 1, &ans);
    CHECK(ans.n == 1);
    CHECK_STR(addr_text(&ans, 0, &port), "2001:db8::7");
    CHECK(port == 1);
    targets(r, "192.0.2.9", "xmpp-server", 5269, &ans);
    CHECK(ans.n == 1);
    CHECK_STR(ans.t[0].host, "192.0.2.9");
    CHECK(ans.t[0].port == 5269 && !ans.t[0].direct_tls);
}

/* Two queries; the first callback cancels the other. */
typedef struct pair {
    resolver_query_t *q[2];
    int calls[2];
    int done;
} pair_t;

static pair_t pair;

static void pair_cb(int i)
{
    pair.calls[i]++;
    pair.done = 1;
    resolver_cancel(pair.q[1 - i]);
    pair.q[1 - i] = NULL;
    pair.q[i] = NULL;
}

static void pair_cb0(void *arg, const resolver_addr_t *a, size_t n, const char *error)
{
    pair_cb(0);
}

static void pair_cb1(void *arg, const resolver_target_t *t, size_t n, const char *error)
{
    pair_cb(1);
}

static void test_cancel_in_callback(resolver_t *r)
{
    memset(&pair, 0, sizeof(pair));
    pair.q[0] = resolver_addrs(r, "v4.example.test", 5222, pair_cb0, NULL);
    pair.q[1] = resolver_targets(r, "example.test", "xmpp-client", 5222, pair_cb1, NULL);
    int never = 0;
    run_until(&pair.done, 8000);
    run_until(&never, 300); /* time for the other answer, if it came */
    CHECK(pair.calls[0] + pair.calls[1] == 1);
    /* A literal answers first: cancel a lookup on the wire from its callback. */
    memset(&pair, 0, sizeof(pair));
    pair.q[1] = resolver_targets(r, "cancelled.test", "xmpp-server", 5269, pair_cb1, NULL);
    pair.q[0] = resolver_addrs(r, "192.0.2.1", 5222, pair_cb0, NULL);
    run_until(&pair.done, 8000);
    run_until(&never, 300);
    CHECK(pair.calls[0] == 1 && pair.calls[1] == 0);
    /* Cancelling before the loop runs: no callback at all. */
    answer_t ans;
    memset(&ans, 0, sizeof(ans));
    resolver_cancel(resolver_addrs(r, "192.0.2.1", 5222, on_addrs, &ans));
    resolver_cancel(resolver_addrs(r, "both.example.test", 5222, on_addrs, &ans));
    run_until(&never, 300);
    CHECK(ans.calls == 0);
}

static resolver_t *freed_in_cb;
static int free_cb_calls;

static void free_cb(void *arg, const resolver_addr_t *a, size_t n, const char *error)
{
    free_cb_calls++;
    resolver_free(&freed_in_cb);
}

static void test_free_pending(const char *server)
{
    char err[256];
    const char *servers[] = {server};
    answer_t ans;
    memset(&ans, 0, sizeof(ans));
    /* Freed at once, before the loop ran. */
    resolver_t *r = resolver_new(base, servers, 1, err, sizeof(err));
    CHECK(r != NULL);
    resolver_addrs(r, "both.example.test", 5222, on_addrs, &ans);
    resolver_targets(r, "example.test", "xmpp-client", 5222, on_targets, &ans);
    resolver_addrs(r, "192.0.2.1", 5222, on_addrs, &ans);
    resolver_free(&r);
    CHECK(r == NULL);
    int never = 0;
    run_until(&never, 200);
    CHECK(ans.calls == 0);
    /* Freed from a literal's callback while lookups are on the wire. */
    freed_in_cb = resolver_new(base, servers, 1, err, sizeof(err));
    CHECK(freed_in_cb != NULL);
    resolver_addrs(freed_in_cb, "both.example.test", 5222, on_addrs, &ans);
    resolver_targets(freed_in_cb, "example.test", "xmpp-client", 5222, on_targets, &ans);
    resolver_addrs(freed_in_cb, "192.0.2.1", 5222, free_cb, NULL);
    run_until(&never, 500);
    CHECK(free_cb_calls == 1);
    CHECK(freed_in_cb == NULL);
    CHECK(ans.calls == 0);
}

/* Replaced by a new resolver: a pending query still gets its answer. */
static void test_retire(const char *server)
{
    char err[256];
    const char *servers[] = {server};
    resolver_t *old = resolver_new(base, servers, 1, err, sizeof(err));
    resolver_t *heir = resolver_new(base, servers, 1, err, sizeof(err));
    CHECK(old && heir);
    answer_t ans;
    memset(&ans, 0, sizeof(ans));
    resolver_addrs(old, "both.example.test", 5222, on_addrs, &ans);
    resolver_retire(&old, heir);
    CHECK(old == NULL);
    run_until(&ans.done, 8000);
    CHECK(ans.calls == 1 && ans.n == 2);
    /* Another retired with a query pending is freed with its heir. */
    old = resolver_new(base, servers, 1, err, sizeof(err));
    memset(&ans, 0, sizeof(ans));
    resolver_addrs(old, "both.example.test", 5222, on_addrs, &ans);
    resolver_retire(&old, heir);
    resolver_free(&heir);
    int never = 0;
    run_until(&never, 200);
    CHECK(ans.calls == 0);
}

/* Answers stay for their TTL: dnsmasq is gone, the cache still answers. */
static void test_cache(resolver_t *r)
{
    answer_t ans;
    resolver_stats_t before, after;
    addrs(r, "cached.example.test", 5269, &ans);
    CHECK(ans.n == 2);
    targets(r, "cached.example.test", "xmpp-server", 5269, &ans);
    CHECK(ans.n == 2);
    stop_dnsmasq();
    resolver_stats(r, &before);
    addrs(r, "cached.example.test", 5269, &ans);
    CHECK_STR(ans.error, "");
    CHECK(ans.n == 2);
    targets(r, "cached.example.test", "xmpp-server", 5269, &ans);
    CHECK_STR(ans.error, "");
    CHECK(ans.n == 2);
    if (ans.n == 2) {
        CHECK(ans.t[0].port == 5270 && ans.t[0].direct_tls);
        CHECK(ans.t[1].port == 5269 && !ans.t[1].direct_tls);
    }
    resolver_stats(r, &after);
    CHECK(after.cache_hits == before.cache_hits + 4);
    CHECK(after.lookups == before.lookups);
    int never = 0;
    run_until(&never, (TTL + 1) * 1000);
    addrs(r, "cached.example.test", 5269, &ans);
    CHECK_STR(ans.error, "the DNS server did not answer");
    CHECK(ans.n == 0);
}

/* A server that never answers: an error within the timeout. */
static void test_dead_server(void)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sin);
    CHECK(s >= 0 && bind(s, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
          getsockname(s, (struct sockaddr *)&sin, &len) == 0);
    char server[64], err[256];
    snprintf(server, sizeof(server), "127.0.0.1:%d", ntohs(sin.sin_port));
    const char *servers[] = {server};
    resolver_t *r = resolver_new(base, servers, 1, err, sizeof(err));
    CHECK(r != NULL);
    answer_t ans;
    double t0 = now_s();
    addrs(r, "silent.test", 5269, &ans);
    double took = now_s() - t0;
    CHECK_STR(ans.error, "the DNS server did not answer");
    CHECK(took > 1.0 && took < 6.0);
    printf("silent server: error after %.1f s\n", took);
    resolver_free(&r);
    close(s);
}

static void test_bad_servers(void)
{
    char err[256];
    const char *bad[] = {"not-an-ip"};
    CHECK(resolver_new(base, bad, 1, err, sizeof(err)) == NULL);
    CHECK(strstr(err, "not-an-ip") != NULL);
    const char *good[] = {"127.0.0.1", "[::1]:5353", "192.0.2.1:53", "::1"};
    resolver_t *r = resolver_new(base, good, 4, err, sizeof(err));
    CHECK(r != NULL);
    resolver_free(&r);
    /* No servers: those of /etc/resolv.conf. */
    r = resolver_new(base, NULL, 0, err, sizeof(err));
    CHECK(r != NULL);
    resolver_free(&r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const char *exe = find_dnsmasq();
    if (!exe) {
        fprintf(stderr, "test_resolver: dnsmasq is not installed; the resolver tests need it "
                        "(apt-get install dnsmasq; contrib/deps.sh --test installs it)\n");
        check_failed++;
        return check_summary();
    }
    base = event_base_new();
    int port = start_dnsmasq(exe);
    if (port < 0) {
        fprintf(stderr, "test_resolver: cannot start %s\n", exe);
        check_failed++;
        event_base_free(base);
        return check_summary();
    }
    char server[64], err[256];
    snprintf(server, sizeof(server), "127.0.0.1:%d", port);
    const char *servers[] = {server};
    resolver_t *r = resolver_new(base, servers, 1, err, sizeof(err));
    CHECK(r != NULL);
    if (r) {
        test_srv_order(r);
        test_fallback(r);
        test_no_service(r);
        test_nxdomain(r);
        test_addrs(r);
        test_literals(r);
        test_cancel_in_callback(r);
        test_free_pending(server);
        test_retire(server);
        test_cache(r); /* stops dnsmasq */
        resolver_free(&r);
    }
    stop_dnsmasq();
    test_dead_server();
    test_bad_servers();
    event_base_free(base);
    return check_summary();
}
