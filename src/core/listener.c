/*
 * listener.c — bind, listen and hand accepted sockets to their stream type.
 *
 * "::" listens on IPv6 and IPv4 at once (IPV6_V6ONLY off), falling back to
 * IPv4 when the machine has no IPv6.  Accepted sockets get TCP_NODELAY.
 */
#include "core/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "xmpp/c2s.h"
#include "xmpp/component.h"

typedef struct listener {
    struct listener *next;
    struct evconnlistener *evl;
    cfg_listen_kind_t kind;
} listener_t;

static listener_t *listeners;

static const char *kind_name(cfg_listen_kind_t k)
{
    return k == LISTEN_C2S ? "c2s" : k == LISTEN_C2S_TLS ? "c2s_tls" : "component";
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
    }
}

static void on_accept_error(struct evconnlistener *evl, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    /* Out of descriptors: keep listening; the next accept may succeed. */
    log_warn("accept failed: %s", evutil_socket_error_to_string(err));
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
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 1024) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

int listeners_start(struct event_base *base, const tern_config_t *cfg)
{
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
        l->evl = evconnlistener_new(base, on_accept, l, LEV_OPT_CLOSE_ON_FREE, -1, fd);
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
}
