/*
 * resolver.h — DNS on the event loop (internal).
 *
 * Owns name resolution for connections the server opens itself: the XMPP
 * targets of a domain from its SRV records (RFC 6120 §3.2, XEP-0368) and
 * the addresses of a host (AAAA and A).  Queries never block the loop;
 * answers are cached for their TTL.  It knows nothing of XMPP streams:
 * the caller tries the targets in the order given.
 *
 * Callbacks run once per query, always from the event loop and never from
 * inside the call that started the query, unless the query is cancelled
 * first.  A query handle is valid until its callback returns or
 * resolver_cancel() is called.
 */
#ifndef TERN_RESOLVER_H
#define TERN_RESOLVER_H

#include <stddef.h>
#include <sys/socket.h>

struct event_base;
typedef struct resolver resolver_t;
typedef struct resolver_query resolver_query_t;

/* One place to connect to for a service. */
typedef struct resolver_target {
    char host[256]; /* a host name (no trailing dot) or an IP literal */
    unsigned short port;
    int direct_tls; /* from _xmpps-*: TLS from the first byte (XEP-0368) */
    int from_srv;   /* from an SRV record; 0 for the domain itself (no records) */
} resolver_target_t;

/* One address of a host, with the port asked for set in it. */
typedef struct resolver_addr {
    struct sockaddr_storage ss;
    socklen_t len;
} resolver_addr_t;

/* A resolver asking `servers` ("IP", "IP:PORT" or "[IPv6]:PORT"), or the
 * servers of /etc/resolv.conf when nservers is 0.  NULL on failure, the
 * reason in err.  Each question is tried twice (1.5 s, then 3 s): a
 * server that does not answer gives an error within about 5 s per
 * server.  The cache keeps up to 4096 answers for their TTL (negative
 * ones for at most 60 s). */
resolver_t *resolver_new(struct event_base *base, const char *const *servers, size_t nservers,
                         char *err, size_t errlen);
/* Cancel every pending query (their callbacks do not run) and free; sets
 * *r to NULL. */
void resolver_free(resolver_t **r);

/* Replace a resolver (new servers) without failing its pending queries:
 * they still get their answers, then it frees itself.  Freeing `heir`
 * first frees it too (their callbacks do not run).  Sets *r to NULL. */
void resolver_retire(resolver_t **r, resolver_t *heir);

/* The error of a name that does not exist at all (NXDOMAIN), for callers
 * that tell users so in other words. */
#define RESOLVER_ERR_NO_DOMAIN "no such domain"

/* `error` is NULL on success, else a short sentence for logs and bounce
 * texts ("no such domain", "no address for HOST", "the DNS server did not
 * answer", "the domain says it offers no such service").  The arrays are borrowed for
 * the call. */
typedef void (*resolver_targets_cb)(void *arg, const resolver_target_t *targets, size_t n,
                                    const char *error);
typedef void (*resolver_addrs_cb)(void *arg, const resolver_addr_t *addrs, size_t n,
                                  const char *error);

/* The targets of `domain` for `service` ("xmpp-server", "xmpp-client"):
 * the SRV records of _xmpps-SERVICE._tcp and _xmpp-SERVICE._tcp merged
 * and ordered by priority, then weight (RFC 2782, random by weight within
 * a priority; at equal priority and weight direct TLS first).  Without
 * any record, one target: the domain itself on default_port, not direct
 * TLS.  A lone "." target (the service is decidedly not offered) is an
 * error.  An IP literal domain answers itself.  NULL only when memory is
 * short (nothing will be called). */
resolver_query_t *resolver_targets(resolver_t *r, const char *domain, const char *service,
                                   unsigned short default_port, resolver_targets_cb cb, void *arg);

/* The addresses of `host` with `port`: AAAA answers first, then A.  An IP
 * literal answers itself.  NULL only when memory is short. */
resolver_query_t *resolver_addrs(resolver_t *r, const char *host, unsigned short port,
                                 resolver_addrs_cb cb, void *arg);

/* Forget a pending query: its callback will not run.  Safe from any
 * callback, on any pending query (from its own callback: no effect). */
void resolver_cancel(resolver_query_t *q);

/* Counters, for tests and the admin. */
typedef struct resolver_stats {
    unsigned long queries;    /* resolver_targets and resolver_addrs calls */
    unsigned long lookups;    /* DNS questions sent (each query asks two at most) */
    unsigned long cache_hits; /* questions answered from the cache */
    size_t cache_entries;     /* answers cached now (expired ones included) */
} resolver_stats_t;

void resolver_stats(const resolver_t *r, resolver_stats_t *out);

#endif
