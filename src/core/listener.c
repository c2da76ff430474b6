/*
 * listener.c — bind, listen and hand accepted sockets to their stream type
 * (clients, components, servers).
 *
 * "::" listens on IPv6 and IPv4 at once (IPV6_V6ONLY off), falling back to
 * IPv4 when the machine has no IPv6.  Accepted sockets get TCP_NODELAY.
 * The backlog is LISTEN_BACKLOG (the kernel caps it at net.core.somaxconn).
 *
 * Out of descriptors (accept() fails with EMFILE or ENFILE), a listening
 * socket stays readable, and a listener left armed would wake the loop
 * again at once, forever.  Instead every listener pauses for
 * ACCEPT_RETRY_MS and then tries again; the descriptor kept spare for the
 * purpose is given up for a moment so that the connection at the head of
 * the queue can be accepted and closed at once (its client hears "no"
 * instead of waiting).  After a pause the listeners are on probation for
 * ACCEPT_RETRY_MS: a failure then continues the same shortage.  The
 * shortage is logged when it starts, then at most once a minute while it
 * lasts, and once when a probation ends without a failure.
 */
#include "core/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/log.h"
#include "stream/c2s.h"
#include "stream/component.h"
#include "stream/s2s.h"
#include "http/http.h"
#include "route/host.h"

#define LISTEN_BACKLOG      1024
#define ACCEPT_RETRY_MS     1000
#define ACCEPT_LOG_EVERY_MS 60000

typedef struct listener {
    struct listener *next;
    struct evconnlistener *evl;
    cfg_listen_kind_t kind;
    int port;
    struct event_base *base;
} listener_t;

static listener_t *listeners;
static int spare_fd = -1;      /* given up to refuse one connection when out of fds */
static struct event *retry_ev; /* accepting resumes when it fires */
/* ACCEPTING: all is well; PAUSED: every listener is disabled until the
 * timer; PROBATION: accepting again, and the timer says when the shortage
 * is over if no accept fails until then. */
static enum { ACCEPTING, PAUSED, PROBATION } accept_state;
static struct timeval starved_at; /* the first failure of the current shortage */
static struct timeval logged_at;  /* the last warning about it */
static unsigned long refused;     /* connections accepted and closed meanwhile */
static unsigned long failures;    /* failed accept() calls meanwhile */

static const char *kind_name(cfg_listen_kind_t k)
{
    return cfg_listen_kind_name(k);
}

static void format_peer(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], host, sizeof(host));
            snprintf(buf, len, "%s:%d", host, ntohs(s6->sin6_port));
            return;
        }
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        port = ntohs(s6->sin6_port);
        snprintf(buf, len, "[%s]:%d", host, port);
        return;
    }
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
    snprintf(buf, len, "%s:%d", host, ntohs(s4->sin_port));
}

static long long ms_between(const struct timeval *a, const struct timeval *b)
{
    return (long long)(b->tv_sec - a->tv_sec) * 1000 + (b->tv_usec - a->tv_usec) / 1000;
}

static void spare_open(void)
{
    if (spare_fd < 0)
        spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void on_accept(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    listener_t *l = arg;
    char peer[80];
    format_peer(sa, peer, sizeof(peer));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    switch (l->kind) {
    case LISTEN_C2S:
        c2s_accept(fd, peer, 0);
        break;
    case LISTEN_C2S_TLS:
        c2s_accept(fd, peer, 1);
        break;
    case LISTEN_COMPONENT:
        component_accept(fd, peer);
        break;
    case LISTEN_S2S:
        s2s_accept(fd, peer, 0);
        break;
    case LISTEN_S2S_TLS:
        s2s_accept(fd, peer, 1);
        break;
    case LISTEN_HTTP:
        http_accept(l->base, fd, peer, NULL, l->port);
        break;
    case LISTEN_HTTPS: {
        SSL *ssl = server.tls ? tls_server_ssl(server.tls, "http/1.1") : NULL;
        if (!ssl) {
            log_info("https %s: no TLS certificate: connection refused", peer);
            evutil_closesocket(fd);
            break;
        }
        http_accept(l->base, fd, peer, ssl, l->port);
        break;
    }
    }
}

static void set_paused(int on)
{
    for (listener_t *l = listeners; l; l = l->next) {
        if (on)
            evconnlistener_disable(l->evl);
        else
            evconnlistener_enable(l->evl);
    }
}

static int retry_in(long long ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return evtimer_add(retry_ev, &tv);
}

/* The pause is over: accept again, on probation.  The probation is over
 * without a failure: the shortage has ended, say so once. */
static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    spare_open(); /* may fail again; the next shortage then waits without it */
    if (accept_state == PAUSED) {
        accept_state = PROBATION;
        set_paused(0);
        if (retry_in(ACCEPT_RETRY_MS) == 0)
            return;
    }
    struct timeval now;
    evutil_gettimeofday(&now, NULL);
    log_warn("accepting connections again after %lld ms of failing accepts "
             "(%lu connections refused)",
             ms_between(&starved_at, &now) - ACCEPT_RETRY_MS, refused);
    accept_state = ACCEPTING;
    refused = failures = 0;
}

/* Out of descriptors: free the spare one, take the oldest waiting
 * connection with it and close that at once, then keep the spare again. */
static void refuse_one(evutil_socket_t lfd)
{
    if (spare_fd < 0)
        return;
    close(spare_fd);
    spare_fd = -1;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        refused++;
    }
    spare_open();
}

/* accept() failed with something other than "nothing to accept" (libevent
 * retries EAGAIN, EINTR and ECONNABORTED itself): stop every listener
 * and try again in ACCEPT_RETRY_MS instead of failing again at once. */
static void on_accept_error(struct evconnlistener *evl, void *arg)
{
    (void)arg;
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval now;
    evutil_gettimeofday(&now, NULL);
    failures++;
    if (err == EMFILE || err == ENFILE)
        refuse_one(evconnlistener_get_fd(evl));
    if (accept_state == ACCEPTING) {
        starved_at = logged_at = now;
        log_warn("accept failed: %s: not accepting connections for %d ms",
                 evutil_socket_error_to_string(err), ACCEPT_RETRY_MS);
    } else if (ms_between(&logged_at, &now) >= ACCEPT_LOG_EVERY_MS) {
        logged_at = now;
        log_warn("accept still failing: %s: %lu failures, %lu connections refused in %lld ms",
                 evutil_socket_error_to_string(err), failures, refused,
                 ms_between(&starved_at, &now));
    }
    if (retry_in(ACCEPT_RETRY_MS) == 0) { /* else keep accepting: never stop for good */
        accept_state = PAUSED;
        set_paused(1);
    }
}

/* A bound, listening, non-blocking socket for address:port, or -1. */
static evutil_socket_t open_socket(const char *address, int port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    if (inet_pton(AF_INET6, address, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof(*s6);
    } else if (inet_pton(AF_INET, address, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof(*s4);
    } else {
        errno = EINVAL;
        return -1;
    }
    evutil_socket_t fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int listeners_start(struct event_base *base, const tern_config_t *cfg)
{
    if (!retry_ev && !(retry_ev = evtimer_new(base, on_retry, NULL)))
        return -1;
    spare_open();
    for (size_t i = 0; i < cfg->n_listeners; i++) {
        const cfg_listener_t *cl = &cfg->listeners[i];
        const char *address = cl->address;
        evutil_socket_t fd = open_socket(address, cl->port);
        if (fd < 0 && strcmp(address, "::") == 0 &&
            (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
            log_warn("no IPv6 on this machine: %s listens on 0.0.0.0:%d", kind_name(cl->kind),
                     cl->port);
            address = "0.0.0.0";
            fd = open_socket(address, cl->port);
        }
        if (fd < 0) {
            log_error("cannot listen on %s port %d (%s): %s", cl->address, cl->port,
                      kind_name(cl->kind), strerror(errno));
            return -1;
        }
        listener_t *l = calloc(1, sizeof(*l));
        if (!l) {
            close(fd);
            return -1;
        }
        l->kind = cl->kind;
        l->port = cl->port;
        l->base = base;
        /* Backlog 0: the socket already listens; -1 would make libevent
         * listen() again with its own backlog of 128. */
        l->evl = evconnlistener_new(base, on_accept, l, LEV_OPT_CLOSE_ON_FREE, 0, fd);
        if (!l->evl) {
            close(fd);
            free(l);
            return -1;
        }
        evconnlistener_set_error_cb(l->evl, on_accept_error);
        l->next = listeners;
        listeners = l;
        log_info("listening for %s on %s port %d", kind_name(cl->kind), address, cl->port);
    }
    return 0;
}

void listeners_stop(void)
{
    while (listeners) {
        listener_t *l = listeners;
        listeners = l->next;
        evconnlistener_free(l->evl);
        free(l);
    }
    if (retry_ev) {
        event_free(retry_ev);
        retry_ev = NULL;
    }
    accept_state = ACCEPTING;
    if (spare_fd >= 0) {
        close(spare_fd);
        spare_fd = -1;
    }
}
