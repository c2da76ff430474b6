/*
 * resolver.c — DNS on the event loop with c-ares.
 *
 * Owns: one c-ares channel per resolver, driven by the libevent loop (the
 * channel's sockets are watched with events set from its socket-state
 * callback, and one timer follows ares_timeout()), the answer cache, and
 * the composition of the answers into what resolver.h promises: SRV
 * targets ordered per RFC 2782 and XEP-0368, addresses IPv6 first.
 *
 * Must not: block the loop, call a caller back from inside the call that
 * started a query, or call c-ares from inside one of its own callbacks.
 *
 * Every query is one or two DNS lookups (the two SRV names of a service,
 * or AAAA and A of a host), asked in parallel.  Each lookup's answer
 * (records, "no such name", "no data") goes into the cache for its TTL
 * (negative answers for min(SOA minimum, SOA TTL, 60 s)), so a second
 * query within the TTL asks nothing.  The caller's callback always runs
 * from an event of its own on the loop: c-ares callbacks only store the
 * answer and wake that event.  c-ares cannot forget one lookup, so a
 * cancelled query only detaches its lookups; their answers still fill
 * the cache.
 */
#include "net/resolver.h"

#include <ares.h>
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/config.h"
#include "util/hashmap.h"

#define CACHE_MAX          4096  /* cached answers (RR sets) per resolver */
#define NEG_TTL_MAX        60    /* seconds a negative answer is kept at most */
#define NEG_TTL_DEFAULT    30    /* ... when the answer carries no SOA */
#define TTL_MAX            86400 /* seconds any answer is kept at most */
#define DNS_TIMEOUT_MS     1500  /* first try; c-ares doubles it for the second */
#define DNS_TRIES          2     /* 1.5 s + 3 s: a dead server fails within ~5 s */
#define MAX_NAME           254
#define DNS_TYPE_A         1
#define DNS_TYPE_SOA       6
#define DNS_TYPE_AAAA      28
#define DNS_TYPE_SRV       33
#define DNS_CLASS_IN       1
#define ERR_NO_SERVICE     "the domain says it offers no such service"
#define ERR_NO_DOMAIN      RESOLVER_ERR_NO_DOMAIN
#define ERR_SERVER_SILENT  "the DNS server did not answer"
#define ERR_SERVER_FAILED  "the DNS server failed to answer"
#define ERR_SERVER_REFUSED "the DNS server refused to answer"
#define ERR_BAD_NAME       "not a valid domain name"
#define ERR_NO_MEMORY      "out of memory"

/* One record of an answer: an address (family set) or an SRV record. */
typedef struct dns_rr {
    int family; /* AF_INET or AF_INET6 for an address, 0 for SRV */
    unsigned char addr[16];
    unsigned short prio, weight, port;
    char target[MAX_NAME]; /* SRV target without the trailing dot; "." for none */
} dns_rr_t;

/* The answer to one lookup. */
typedef struct rrset {
    int status; /* ARES_SUCCESS, ARES_ENOTFOUND, ARES_ENODATA, or another failure */
    size_t n;
    dns_rr_t *rr;
} rrset_t;

typedef struct cache_entry cache_entry_t;
struct cache_entry {
    char *key; /* "TYPE name" */
    int64_t expires_ms;
    rrset_t set;
    cache_entry_t *prev, *next; /* insertion order: the oldest goes first */
};

typedef struct sock_watch sock_watch_t;
struct sock_watch {
    ares_socket_t fd;
    struct event *ev;
    sock_watch_t *next;
};

typedef struct lookup lookup_t;

enum { Q_TARGETS = 1, Q_ADDRS };

struct resolver_query {
    resolver_t *r;
    resolver_query_t *prev, *next; /* the resolver's pending queries */
    int kind;                      /* Q_TARGETS or Q_ADDRS */
    struct event *ev;              /* delivers the answer from the loop */
    resolver_targets_cb tcb;
    resolver_addrs_cb acb;
    void *arg;
    char host[MAX_NAME]; /* domain or host, no trailing dot */
    unsigned short port; /* default_port, or the port of the addresses */
    int literal;         /* host is an IP literal: no lookups */
    char names[2][MAX_NAME + 64];
    int types[2];    /* DNS_TYPE_SRV (direct TLS first) or AAAA, A */
    rrset_t res[2];  /* the answers */
    lookup_t *lk[2]; /* lookups still running */
    int pending;     /* lookups not yet answered */
    int delivering;  /* its callback is running */
};

struct lookup {
    resolver_t *r;
    resolver_query_t *q; /* NULL once the query is cancelled */
    int slot;
    int type;
    char name[MAX_NAME + 64];
};

struct resolver {
    struct event_base *base;
    ares_channel channel;
    int channel_ok;
    struct event *timer;
    sock_watch_t *socks;
    resolver_query_t *queries;
    hashmap_t *cache;
    cache_entry_t *oldest, *newest;
    resolver_stats_t stats;
    /* Retired (resolver_retire): freed from `reap` once idle; listed by
     * its heir, whose resolver_free frees it too. */
    resolver_t *heir, *retired, *next_retired;
    struct event *reap;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the channel on the loop -------------------------------------------- */

/* Arm the timer for the channel's next timeout, or stop it when idle. */
static void reset_timer(resolver_t *r)
{
    struct timeval tv;
    if (ares_timeout(r->channel, NULL, &tv))
        evtimer_add(r->timer, &tv);
    else
        evtimer_del(r->timer);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    resolver_t *r = arg;
    ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    reset_timer(r);
}

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
    resolver_t *r = arg;
    ares_process_fd(r->channel, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
                    (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    reset_timer(r);
}

/* c-ares opens, changes or closes a socket: watch it as it asks. */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    resolver_t *r = data;
    sock_watch_t **pp = &r->socks;
    while (*pp && (*pp)->fd != fd)
        pp = &(*pp)->next;
    sock_watch_t *w = *pp;
    if (w) {
        event_free(w->ev);
        w->ev = NULL;
    }
    if (!readable && !writable) {
        if (w) {
            *pp = w->next;
            free(w);
        }
        return;
    }
    if (!w) {
        w = calloc(1, sizeof(*w));
        if (!w)
            return; /* the lookup times out */
        w->fd = fd;
        w->next = r->socks;
        r->socks = w;
    }
    short what = (short)(EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0));
    w->ev = event_new(r->base, fd, what, on_sock, r);
    if (w->ev)
        event_add(w->ev, NULL);
}

/* ---- the cache ---------------------------------------------------------- */

static void rrset_clear(rrset_t *s)
{
    free(s->rr);
    s->rr = NULL;
    s->n = 0;
}

static int rrset_copy(rrset_t *dst, const rrset_t *src)
{
    dst->status = src->status;
    dst->n = 0;
    dst->rr = NULL;
    if (!src->n)
        return 0;
    dst->rr = malloc(src->n * sizeof(*dst->rr));
    if (!dst->rr)
        return -1;
    memcpy(dst->rr, src->rr, src->n * sizeof(*dst->rr));
    dst->n = src->n;
    return 0;
}

static void cache_unlink(resolver_t *r, cache_entry_t *e)
{
    hashmap_remove(r->cache, e->key);
    if (e->prev)
        e->prev->next = e->next;
    else
        r->oldest = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        r->newest = e->prev;
    free(e->key);
    rrset_clear(&e->set);
    free(e);
}

static void cache_key(char *buf, size_t len, int type, const char *name)
{
    snprintf(buf, len, "%d %s", type, name);
}

/* The cached answer for (type, name), or NULL; an expired one is dropped. */
static const rrset_t *cache_get(resolver_t *r, int type, const char *name)
{
    char key[MAX_NAME + 96];
    cache_key(key, sizeof(key), type, name);
    cache_entry_t *e = hashmap_get(r->cache, key);
    if (!e)
        return NULL;
    if (e->expires_ms <= now_ms()) {
        cache_unlink(r, e);
        return NULL;
    }
    return &e->set;
}

/* Keep a copy of `set` for `ttl` seconds (nothing kept for 0). */
static void cache_put(resolver_t *r, int type, const char *name, const rrset_t *set, int ttl)
{
    if (ttl <= 0)
        return;
    if (ttl > TTL_MAX)
        ttl = TTL_MAX;
    char key[MAX_NAME + 96];
    cache_key(key, sizeof(key), type, name);
    cache_entry_t *old = hashmap_get(r->cache, key);
    if (old)
        cache_unlink(r, old);
    int64_t now = now_ms();
    while (r->oldest && r->oldest->expires_ms <= now)
        cache_unlink(r, r->oldest);
    while (r->oldest && hashmap_count(r->cache) >= CACHE_MAX)
        cache_unlink(r, r->oldest);
    cache_entry_t *e = calloc(1, sizeof(*e));
    if (!e)
        return;
    e->key = strdup(key);
    if (!e->key || rrset_copy(&e->set, set) < 0 || hashmap_put(r->cache, key, e) < 0) {
        free(e->key);
        rrset_clear(&e->set);
        free(e);
        return;
    }
    e->expires_ms = now + (int64_t)ttl * 1000;
    e->prev = r->newest;
    if (r->newest)
        r->newest->next = e;
    else
        r->oldest = e;
    r->newest = e;
}

/* ---- reading answers ---------------------------------------------------- */

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Skip the (possibly compressed) name at *p; -1 when malformed. */
static int skip_name(const unsigned char *abuf, int alen, const unsigned char **p)
{
    char *name = NULL;
    long len = 0;
    if (ares_expand_name(*p, abuf, alen, &name, &len) != ARES_SUCCESS)
        return -1;
    ares_free_string(name);
    *p += len;
    return *p <= abuf + alen ? 0 : -1;
}

/* The TTLs of a raw answer: the smallest of the answer records of `type`
 * into *ttl (-1 when none), and the negative TTL of its SOA (RFC 2308 §5:
 * the smaller of the SOA's own TTL and its MINIMUM) into *neg_ttl (-1 when
 * there is no SOA).  0, or -1 when malformed. */
static int scan_ttls(const unsigned char *abuf, int alen, int type, int *ttl, int *neg_ttl)
{
    *ttl = *neg_ttl = -1;
    if (!abuf || alen < 12)
        return -1;
    const unsigned char *p = abuf + 12, *end = abuf + alen;
    unsigned qd = get16(abuf + 4), an = get16(abuf + 6), ns = get16(abuf + 8);
    for (unsigned i = 0; i < qd; i++) {
        if (skip_name(abuf, alen, &p) < 0 || end - p < 4)
            return -1;
        p += 4;
    }
    for (unsigned i = 0; i < an + ns; i++) {
        if (skip_name(abuf, alen, &p) < 0 || end - p < 10)
            return -1;
        unsigned rtype = get16(p), rlen = get16(p + 8);
        uint32_t rttl = get32(p + 4);
        int t = rttl > TTL_MAX ? TTL_MAX : (int)rttl;
        p += 10;
        if (end - p < (long)rlen)
            return -1;
        if (i < an && (int)rtype == type && (*ttl < 0 || t < *ttl))
            *ttl = t;
        if (i >= an && rtype == DNS_TYPE_SOA) {
            const unsigned char *q = p;
            if (skip_name(abuf, alen, &q) == 0 && skip_name(abuf, alen, &q) == 0 && q + 20 <= end) {
                uint32_t minimum = get32(q + 16);
                int m = minimum < (uint32_t)t ? (int)minimum : t;
                *neg_ttl = m;
            }
        }
        p += rlen;
    }
    return 0;
}

/* The records of a successful answer into *set; the TTL to keep it. */
static int parse_records(int type, const unsigned char *abuf, int alen, rrset_t *set)
{
    set->n = 0;
    set->rr = NULL;
    if (type == DNS_TYPE_SRV) {
        struct ares_srv_reply *srv = NULL;
        int rc = ares_parse_srv_reply(abuf, alen, &srv);
        if (rc != ARES_SUCCESS)
            return rc;
        size_t n = 0;
        for (struct ares_srv_reply *s = srv; s; s = s->next)
            n++;
        set->rr = calloc(n ? n : 1, sizeof(*set->rr));
        if (!set->rr) {
            ares_free_data(srv);
            return ARES_ENOMEM;
        }
        for (struct ares_srv_reply *s = srv; s; s = s->next) {
            dns_rr_t *rr = &set->rr[set->n];
            size_t len = strlen(s->host);
            while (len && s->host[len - 1] == '.')
                len--;
            if (len >= sizeof(rr->target))
                continue;
            memcpy(rr->target, s->host, len);
            rr->target[len] = '\0';
            if (!len)
                strcpy(rr->target, ".");
            rr->prio = s->priority;
            rr->weight = s->weight;
            rr->port = s->port;
            set->n++;
        }
        ares_free_data(srv);
        return set->n ? ARES_SUCCESS : ARES_ENODATA;
    }
    enum { MAX_ADDRS = 64 };
    int n = MAX_ADDRS, rc;
    struct ares_addrttl v4[MAX_ADDRS];
    struct ares_addr6ttl v6[MAX_ADDRS];
    if (type == DNS_TYPE_A)
        rc = ares_parse_a_reply(abuf, alen, NULL, v4, &n);
    else
        rc = ares_parse_aaaa_reply(abuf, alen, NULL, v6, &n);
    if (rc != ARES_SUCCESS)
        return rc;
    if (n <= 0)
        return ARES_ENODATA;
    set->rr = calloc((size_t)n, sizeof(*set->rr));
    if (!set->rr)
        return ARES_ENOMEM;
    for (int i = 0; i < n; i++) {
        dns_rr_t *rr = &set->rr[i];
        if (type == DNS_TYPE_A) {
            rr->family = AF_INET;
            memcpy(rr->addr, &v4[i].ipaddr, 4);
        } else {
            rr->family = AF_INET6;
            memcpy(rr->addr, &v6[i].ip6addr, 16);
        }
    }
    set->n = (size_t)n;
    return ARES_SUCCESS;
}

/* ---- queries ------------------------------------------------------------ */

static void query_unlink(resolver_query_t *q)
{
    resolver_t *r = q->r;
    if (!r)
        return;
    if (q->prev)
        q->prev->next = q->next;
    else if (r->queries == q)
        r->queries = q->next;
    if (q->next)
        q->next->prev = q->prev;
    q->prev = q->next = NULL;
    q->r = NULL;
    if (r->reap && !r->queries)
        event_active(r->reap, 0, 0);
}

/* Free a query that is no longer in its resolver's list. */
static void query_destroy(resolver_query_t *q)
{
    for (int i = 0; i < 2; i++) {
        if (q->lk[i])
            q->lk[i]->q = NULL;
        rrset_clear(&q->res[i]);
    }
    if (q->ev)
        event_free(q->ev);
    free(q);
}

/* A lookup's answer (from c-ares): cache it and hand it to its query. */
static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    lookup_t *lk = arg;
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED) {
        if (lk->q) {
            lk->q->lk[lk->slot] = NULL;
            lk->q->res[lk->slot].status = status;
        }
        free(lk);
        return;
    }
    resolver_t *r = lk->r;
    rrset_t set = {.status = status};
    int ttl = -1, neg_ttl = -1;
    if (status == ARES_SUCCESS || status == ARES_ENOTFOUND || status == ARES_ENODATA)
        scan_ttls(abuf, alen, lk->type, &ttl, &neg_ttl);
    if (status == ARES_SUCCESS)
        set.status = parse_records(lk->type, abuf, alen, &set);
    if (set.status == ARES_SUCCESS) {
        cache_put(r, lk->type, lk->name, &set, ttl);
    } else if (set.status == ARES_ENOTFOUND || set.status == ARES_ENODATA) {
        if (neg_ttl < 0)
            neg_ttl = NEG_TTL_DEFAULT;
        cache_put(r, lk->type, lk->name, &set, neg_ttl < NEG_TTL_MAX ? neg_ttl : NEG_TTL_MAX);
    }
    resolver_query_t *q = lk->q;
    if (q) {
        q->lk[lk->slot] = NULL;
        q->res[lk->slot] = set;
        set.rr = NULL;
        if (--q->pending == 0)
            event_active(q->ev, 0, 0);
    }
    rrset_clear(&set);
    free(lk);
}

/* One SRV record and the name it came from. */
typedef struct srv_pick {
    const dns_rr_t *rr;
    int direct_tls; /* from _xmpps- */
} srv_pick_t;

/* RFC 2782 order of the records in[0..n) (one priority, zero weights
 * first) into out[]: pick at random by weight among those left; at equal
 * weight direct TLS goes first (XEP-0368 §3). */
static void order_priority(const srv_pick_t *in, size_t n, srv_pick_t *out)
{
    int used[64] = {0};
    for (size_t k = 0; k < n; k++) {
        unsigned long sum = 0;
        for (size_t i = 0; i < n; i++)
            if (!used[i])
                sum += in[i].rr->weight;
        unsigned long pick = sum ? (unsigned long)random() % (sum + 1) : 0, run = 0;
        size_t chosen = n;
        for (size_t i = 0; i < n; i++) {
            if (used[i])
                continue;
            run += in[i].rr->weight;
            if (run >= pick) {
                chosen = i;
                break;
            }
        }
        if (chosen == n)
            for (chosen = 0; used[chosen]; chosen++)
                ;
        if (!in[chosen].direct_tls)
            for (size_t i = 0; i < n; i++)
                if (!used[i] && in[i].direct_tls && in[i].rr->weight == in[chosen].rr->weight) {
                    chosen = i;
                    break;
                }
        used[chosen] = 1;
        out[k] = in[chosen];
    }
}

/* Priority ascending, then zero weights first (RFC 2782). */
static int srv_before(const srv_pick_t *x, const srv_pick_t *y)
{
    if (x->rr->prio != y->rr->prio)
        return x->rr->prio < y->rr->prio;
    return x->rr->weight == 0 && y->rr->weight != 0;
}

/* The error sentence for a failed lookup. */
static const char *status_error(int status, const char *host, char *buf, size_t len)
{
    switch (status) {
    case ARES_ENOTFOUND:
        return ERR_NO_DOMAIN;
    case ARES_ENODATA:
        snprintf(buf, len, "no address for %s", host);
        return buf;
    case ARES_ETIMEOUT:
    case ARES_ECONNREFUSED:
        return ERR_SERVER_SILENT;
    case ARES_ESERVFAIL:
        return ERR_SERVER_FAILED;
    case ARES_EREFUSED:
        return ERR_SERVER_REFUSED;
    case ARES_EBADNAME:
        return ERR_BAD_NAME;
    case ARES_ENOMEM:
        return ERR_NO_MEMORY;
    default:
        snprintf(buf, len, "DNS lookup failed: %s", ares_strerror(status));
        return buf;
    }
}

static int hard_error(int status)
{
    return status != ARES_SUCCESS && status != ARES_ENOTFOUND && status != ARES_ENODATA;
}

/* Compose and hand over the targets of q. */
static void deliver_targets(resolver_query_t *q)
{
    char ebuf[320];
    if (q->literal) {
        resolver_target_t t;
        memset(&t, 0, sizeof(t));
        snprintf(t.host, sizeof(t.host), "%s", q->host);
        t.port = q->port;
        q->tcb(q->arg, &t, 1, NULL);
        return;
    }
    /* res[0] is _xmpps- (direct TLS), res[1] is _xmpp-. */
    size_t total = q->res[0].n + q->res[1].n, n = 0;
    int dot = 0;
    srv_pick_t *srv = calloc(total ? total : 1, sizeof(*srv));
    srv_pick_t *ord = calloc(total ? total : 1, sizeof(*ord));
    resolver_target_t *t = calloc(total ? total : 1, sizeof(*t));
    if (!srv || !ord || !t) {
        q->tcb(q->arg, NULL, 0, ERR_NO_MEMORY);
        goto out;
    }
    for (int s = 0; s < 2; s++) {
        if (q->res[s].status != ARES_SUCCESS)
            continue;
        for (size_t i = 0; i < q->res[s].n; i++) {
            if (strcmp(q->res[s].rr[i].target, ".") == 0) {
                dot = 1; /* RFC 2782: decidedly not available */
                continue;
            }
            /* Insertion sort: stable, and the sets are small. */
            srv_pick_t x = {.rr = &q->res[s].rr[i], .direct_tls = s == 0};
            size_t j = n++;
            while (j > 0 && srv_before(&x, &srv[j - 1])) {
                srv[j] = srv[j - 1];
                j--;
            }
            srv[j] = x;
        }
    }
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && srv[j].rr->prio == srv[i].rr->prio && j - i < 64)
            j++;
        order_priority(srv + i, j - i, ord + i);
        i = j;
    }
    for (size_t i = 0; i < n; i++) {
        snprintf(t[i].host, sizeof(t[i].host), "%s", ord[i].rr->target);
        t[i].port = ord[i].rr->port;
        t[i].direct_tls = ord[i].direct_tls;
        t[i].from_srv = 1;
    }
    if (n) {
        q->tcb(q->arg, t, n, NULL);
    } else if (dot) {
        q->tcb(q->arg, NULL, 0, ERR_NO_SERVICE);
    } else if (hard_error(q->res[1].status) || hard_error(q->res[0].status)) {
        int st = hard_error(q->res[1].status) ? q->res[1].status : q->res[0].status;
        q->tcb(q->arg, NULL, 0, status_error(st, q->host, ebuf, sizeof(ebuf)));
    } else {
        /* RFC 6120 §3.2.2: no SRV records, the domain itself. */
        snprintf(t[0].host, sizeof(t[0].host), "%s", q->host);
        t[0].port = q->port;
        t[0].direct_tls = 0;
        q->tcb(q->arg, t, 1, NULL);
    }
out:
    free(srv);
    free(ord);
    free(t);
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

/* Compose and hand over the addresses of q: res[0] AAAA, res[1] A. */
static void deliver_addrs(resolver_query_t *q)
{
    char ebuf[320];
    if (q->literal) {
        resolver_addr_t a;
        literal(q->host, q->port, &a);
        q->acb(q->arg, &a, 1, NULL);
        return;
    }
    size_t total = q->res[0].n + q->res[1].n, n = 0;
    resolver_addr_t *a = calloc(total ? total : 1, sizeof(*a));
    if (!a) {
        q->acb(q->arg, NULL, 0, ERR_NO_MEMORY);
        return;
    }
    for (int s = 0; s < 2; s++) {
        if (q->res[s].status != ARES_SUCCESS)
            continue;
        for (size_t i = 0; i < q->res[s].n; i++) {
            const dns_rr_t *rr = &q->res[s].rr[i];
            resolver_addr_t *x = &a[n++];
            if (rr->family == AF_INET6) {
                struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&x->ss;
                v6->sin6_family = AF_INET6;
                v6->sin6_port = htons(q->port);
                memcpy(&v6->sin6_addr, rr->addr, 16);
                x->len = sizeof(*v6);
            } else {
                struct sockaddr_in *v4 = (struct sockaddr_in *)&x->ss;
                v4->sin_family = AF_INET;
                v4->sin_port = htons(q->port);
                memcpy(&v4->sin_addr, rr->addr, 4);
                x->len = sizeof(*v4);
            }
        }
    }
    int s6 = q->res[0].status, s4 = q->res[1].status;
    if (n)
        q->acb(q->arg, a, n, NULL);
    else if (s6 == ARES_ENOTFOUND && s4 == ARES_ENOTFOUND)
        q->acb(q->arg, NULL, 0, ERR_NO_DOMAIN);
    else if (hard_error(s6) || hard_error(s4))
        q->acb(q->arg, NULL, 0,
               status_error(hard_error(s6) ? s6 : s4, q->host, ebuf, sizeof(ebuf)));
    else
        q->acb(q->arg, NULL, 0, status_error(ARES_ENODATA, q->host, ebuf, sizeof(ebuf)));
    free(a);
}

/* The query's event: every answer is in; call back, then free it.  The
 * callback may cancel any query (this one too: nothing happens) or free
 * the resolver: the query is out of the resolver's list by then. */
static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    resolver_query_t *q = arg;
    query_unlink(q);
    q->delivering = 1;
    if (q->kind == Q_TARGETS)
        deliver_targets(q);
    else
        deliver_addrs(q);
    query_destroy(q);
}

/* A name as DNS takes it: no trailing dot, not empty, short enough. */
static int clean_name(const char *in, char *out, size_t len)
{
    size_t n = in ? strlen(in) : 0;
    while (n && in[n - 1] == '.')
        n--;
    if (!n || n >= len || n > 253)
        return -1;
    memcpy(out, in, n);
    out[n] = '\0';
    return 0;
}

static resolver_query_t *query_new(resolver_t *r, int kind, const char *host, unsigned short port,
                                   void *arg)
{
    resolver_query_t *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->ev = event_new(r->base, -1, 0, on_deliver, q);
    if (!q->ev) {
        free(q);
        return NULL;
    }
    q->kind = kind;
    q->arg = arg;
    q->port = port;
    if (clean_name(host, q->host, sizeof(q->host)) < 0) {
        /* Answered from the loop with "not a valid domain name". */
        q->res[0].status = q->res[1].status = ARES_EBADNAME;
        snprintf(q->host, sizeof(q->host), "%.*s", (int)sizeof(q->host) - 1, host ? host : "");
    }
    q->r = r;
    q->next = r->queries;
    if (r->queries)
        r->queries->prev = q;
    r->queries = q;
    return q;
}

/* Take each answer from the cache or ask for it; answer from the loop. */
static void query_start(resolver_query_t *q)
{
    resolver_t *r = q->r;
    r->stats.queries++;
    resolver_addr_t a;
    if (q->res[0].status == ARES_EBADNAME || (q->literal = literal(q->host, q->port, &a))) {
        event_active(q->ev, 0, 0);
        return;
    }
    int miss[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        const rrset_t *c = cache_get(r, q->types[i], q->names[i]);
        if (c && rrset_copy(&q->res[i], c) == 0) {
            r->stats.cache_hits++;
            continue;
        }
        miss[i] = 1;
        q->pending++;
    }
    if (!q->pending) {
        event_active(q->ev, 0, 0);
        return;
    }
    for (int i = 0; i < 2; i++) {
        if (!miss[i])
            continue;
        lookup_t *lk = calloc(1, sizeof(*lk));
        if (!lk) {
            q->res[i].status = ARES_ENOMEM;
            if (--q->pending == 0)
                event_active(q->ev, 0, 0);
            continue;
        }
        lk->r = r;
        lk->q = q;
        lk->slot = i;
        lk->type = q->types[i];
        snprintf(lk->name, sizeof(lk->name), "%s", q->names[i]);
        q->lk[i] = lk;
        r->stats.lookups++;
        /* May answer at once (bad name, no memory): on_answer only stores. */
        ares_query(r->channel, lk->name, DNS_CLASS_IN, lk->type, on_answer, lk);
    }
    reset_timer(r);
}

resolver_query_t *resolver_targets(resolver_t *r, const char *domain, const char *service,
                                   unsigned short default_port, resolver_targets_cb cb, void *arg)
{
    resolver_query_t *q = query_new(r, Q_TARGETS, domain, default_port, arg);
    if (!q)
        return NULL;
    q->tcb = cb;
    /* "xmpp-server" -> _xmpps-server._tcp and _xmpp-server._tcp */
    const char *svc = service ? service : "xmpp-server";
    if (strncmp(svc, "xmpp-", 5) == 0)
        svc += 5;
    snprintf(q->names[0], sizeof(q->names[0]), "_xmpps-%.40s._tcp.%s", svc, q->host);
    snprintf(q->names[1], sizeof(q->names[1]), "_xmpp-%.40s._tcp.%s", svc, q->host);
    q->types[0] = q->types[1] = DNS_TYPE_SRV;
    query_start(q);
    return q;
}

resolver_query_t *resolver_addrs(resolver_t *r, const char *host, unsigned short port,
                                 resolver_addrs_cb cb, void *arg)
{
    resolver_query_t *q = query_new(r, Q_ADDRS, host, port, arg);
    if (!q)
        return NULL;
    q->acb = cb;
    snprintf(q->names[0], sizeof(q->names[0]), "%s", q->host);
    snprintf(q->names[1], sizeof(q->names[1]), "%s", q->host);
    q->types[0] = DNS_TYPE_AAAA;
    q->types[1] = DNS_TYPE_A;
    query_start(q);
    return q;
}

void resolver_cancel(resolver_query_t *q)
{
    if (!q || q->delivering)
        return;
    query_unlink(q);
    query_destroy(q);
}

/* ---- the resolver ------------------------------------------------------- */

static int set_servers(resolver_t *r, const char *const *servers, size_t nservers, char *err,
                       size_t errlen)
{
    struct ares_addr_port_node *nodes = calloc(nservers, sizeof(*nodes));
    if (!nodes) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < nservers; i++) {
        char ip[64];
        int port = 53;
        struct ares_addr_port_node *n = &nodes[i];
        if (cfg_parse_dns_server(servers[i], ip, sizeof(ip), &port) < 0) {
            snprintf(err, errlen, "DNS server '%s' must be IP, IP:PORT or [IPv6]:PORT", servers[i]);
            free(nodes);
            return -1;
        }
        if (inet_pton(AF_INET, ip, &n->addr.addr4) == 1) {
            n->family = AF_INET;
        } else {
            inet_pton(AF_INET6, ip, &n->addr.addr6);
            n->family = AF_INET6;
        }
        n->udp_port = n->tcp_port = port;
        n->next = i + 1 < nservers ? &nodes[i + 1] : NULL;
    }
    int rc = ares_set_servers_ports(r->channel, nodes);
    free(nodes);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "cannot use the DNS servers: %s", ares_strerror(rc));
        return -1;
    }
    return 0;
}

resolver_t *resolver_new(struct event_base *base, const char *const *servers, size_t nservers,
                         char *err, size_t errlen)
{
    resolver_t *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    r->base = base;
    r->cache = hashmap_new();
    r->timer = evtimer_new(base, on_timer, r);
    if (!r->cache || !r->timer) {
        snprintf(err, errlen, "out of memory");
        resolver_free(&r);
        return NULL;
    }
    int rc = ares_library_init(ARES_LIB_INIT_ALL);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "cannot start the DNS library: %s", ares_strerror(rc));
        resolver_free(&r);
        return NULL;
    }
    struct ares_options opt;
    memset(&opt, 0, sizeof(opt));
    opt.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES;
    opt.timeout = DNS_TIMEOUT_MS;
    opt.tries = DNS_TRIES;
    opt.sock_state_cb = sock_state;
    opt.sock_state_cb_data = r;
    rc = ares_init_options(&r->channel, &opt,
                           ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
                               ARES_OPT_SOCK_STATE_CB);
    if (rc != ARES_SUCCESS) {
        ares_library_cleanup();
        snprintf(err, errlen, "cannot start the DNS library: %s", ares_strerror(rc));
        resolver_free(&r);
        return NULL;
    }
    r->channel_ok = 1;
    if (nservers && set_servers(r, servers, nservers, err, errlen) < 0) {
        resolver_free(&r);
        return NULL;
    }
    return r;
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    resolver_t *r = arg;
    if (!r->queries) /* else woken again when the last one goes */
        resolver_free(&r);
}

void resolver_retire(resolver_t **rp, resolver_t *heir)
{
    if (!rp || !*rp)
        return;
    resolver_t *r = *rp;
    *rp = NULL;
    if (!r->queries || !heir || r->heir || !(r->reap = event_new(r->base, -1, 0, on_reap, r))) {
        resolver_free(&r);
        return;
    }
    r->heir = heir;
    r->next_retired = heir->retired;
    heir->retired = r;
}

void resolver_free(resolver_t **rp)
{
    if (!rp || !*rp)
        return;
    resolver_t *r = *rp;
    *rp = NULL;
    if (r->heir) {
        resolver_t **pp = &r->heir->retired;
        while (*pp && *pp != r)
            pp = &(*pp)->next_retired;
        if (*pp)
            *pp = r->next_retired;
        r->heir = NULL;
    }
    while (r->retired) {
        resolver_t *old = r->retired;
        r->retired = old->next_retired;
        old->heir = NULL;
        resolver_free(&old);
    }
    if (r->reap) {
        event_free(r->reap);
        r->reap = NULL; /* query_unlink below must not wake it */
    }
    while (r->queries) {
        resolver_query_t *q = r->queries;
        query_unlink(q);
        query_destroy(q);
    }
    if (r->channel_ok) {
        /* Calls on_answer with ARES_EDESTRUCTION for each lookup and
         * sock_state for each socket still open. */
        ares_destroy(r->channel);
        ares_library_cleanup();
    }
    while (r->socks) {
        sock_watch_t *w = r->socks;
        r->socks = w->next;
        if (w->ev)
            event_free(w->ev);
        free(w);
    }
    while (r->oldest)
        cache_unlink(r, r->oldest);
    hashmap_free(&r->cache);
    if (r->timer)
        event_free(r->timer);
    free(r);
}

void resolver_stats(const resolver_t *r, resolver_stats_t *out)
{
    *out = r->stats;
    out->cache_entries = hashmap_count(r->cache);
}
