/*
 * resolver.c — DNS on the event loop: placeholder until c-ares is wired in.
 *
 * Answers IP literals only; every name gets the error "DNS is not
 * available".  Callbacks run from the loop, as resolver.h promises.
 */
#include "net/resolver.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct resolver {
    struct event_base *base;
};

struct resolver_query {
    struct event *ev;
    resolver_targets_cb tcb;
    resolver_addrs_cb acb;
    void *arg;
    char host[256];
    unsigned short port;
};

resolver_t *resolver_new(struct event_base *base, const char *const *servers, size_t nservers,
                         char *err, size_t errlen)
{
    (void)servers;
    (void)nservers;
    resolver_t *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->base = base;
    return r;
}

void resolver_free(resolver_t **r)
{
    if (!r || !*r)
        return;
    free(*r);
    *r = NULL;
}

static int literal(const char *host, unsigned short port, resolver_addr_t *a)
{
    memset(a, 0, sizeof(*a));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&a->ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&a->ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        a->len = sizeof(*v4);
        return 1;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        a->len = sizeof(*v6);
        return 1;
    }
    return 0;
}

static void answer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    resolver_query_t *q = arg;
    resolver_addr_t a;
    int ok = literal(q->host, q->port, &a);
    if (q->tcb) {
        resolver_target_t t;
        memset(&t, 0, sizeof(t));
        snprintf(t.host, sizeof(t.host), "%s", q->host);
        t.port = q->port;
        q->tcb(q->arg, ok ? &t : NULL, ok ? 1 : 0, ok ? NULL : "DNS is not available");
    } else {
        q->acb(q->arg, ok ? &a : NULL, ok ? 1 : 0, ok ? NULL : "DNS is not available");
    }
    event_free(q->ev);
    free(q);
}

static resolver_query_t *start(resolver_t *r, const char *host, unsigned short port,
                               resolver_targets_cb tcb, resolver_addrs_cb acb, void *arg)
{
    resolver_query_t *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->ev = event_new(r->base, -1, 0, answer, q);
    if (!q->ev) {
        free(q);
        return NULL;
    }
    q->tcb = tcb;
    q->acb = acb;
    q->arg = arg;
    q->port = port;
    snprintf(q->host, sizeof(q->host), "%s", host);
    event_active(q->ev, 0, 0);
    return q;
}

resolver_query_t *resolver_targets(resolver_t *r, const char *domain, const char *service,
                                   unsigned short default_port, resolver_targets_cb cb, void *arg)
{
    (void)service;
    return start(r, domain, default_port, cb, NULL, arg);
}

resolver_query_t *resolver_addrs(resolver_t *r, const char *host, unsigned short port,
                                 resolver_addrs_cb cb, void *arg)
{
    return start(r, host, port, NULL, cb, arg);
}

void resolver_cancel(resolver_query_t *q)
{
    if (!q)
        return;
    event_free(q->ev);
    free(q);
}
