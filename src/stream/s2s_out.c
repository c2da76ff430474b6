/*
 * s2s_out.c — streams we open to other servers (RFC 6120 §3.2, §5, §6).
 *
 * One link per pair (our domain, remote domain): the router's remote hook
 * (s2s_out_route) hands it each stanza.  While no authenticated stream
 * exists the stanzas wait in the link's queue (bounded in stanzas, bytes
 * and age) and a stream is set up:
 *
 *   DNS (SRV _xmpps-server / _xmpp-server, else the domain on 5269) ->
 *   each target, each address -> TCP (direct TLS with ALPN xmpp-server and
 *   SNI, or STARTTLS) -> the peer's certificate checked ->
 *   SASL EXTERNAL when it is valid and offered; dialback otherwise (or when
 *   EXTERNAL is refused), dialback with a bad certificate only for the
 *   domains of s2s.dialback_only -> authenticated: the queue is flushed
 *   in order.
 *
 * A failure bounces every queued stanza with RFC 6120 §8.3.3's condition
 * (remote-server-not-found; remote-server-timeout after connect_timeout)
 * and a text saying why, and is remembered: a new stanza within the
 * backoff (1 s, doubling up to 60 s, reset by success) waits until it has
 * passed, then a new attempt starts at once.  The same links carry our
 * db:verify questions as a receiving server (s2s_out_verify).
 *
 * XEP-0288: we ask for a bidirectional stream when the peer offers it and
 * then route its stanzas (from the domain we connected to) like an
 * incoming stream's; an incoming stream that asked for it carries ours
 * (s2s_out_bidi_attach) while we have no authenticated stream of our own.
 * Must not: block, or send a stanza before the stream is authenticated.
 */
#include "stream/s2s_int.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/hashmap.h"
#include "util/log.h"
#include "route/domains.h"
#include "route/host.h"
#include "route/router.h"
#include "xml/xml_stream.h"
#include "xmpp/conn.h"
#include "xmpp/stanza.h"
#include "stream/dialback.h"
#include "stream/limits.h"

#define BACKOFF_FIRST_MS 1000
#define BACKOFF_MAX_MS   60000

typedef struct queued {
    struct queued *next;
    tern_xml_t *stanza;
    size_t bytes;
    long long at_ms;
} queued_t;

typedef struct verify_req {
    struct verify_req *next;
    char in_id[STREAM_ID_LEN];
    char key[129];
} verify_req_t;

typedef enum {
    OUT_CONNECTING = 0, /* until the peer's stream header */
    OUT_OPEN,           /* header seen, waiting for features */
    OUT_STARTTLS,       /* <starttls/> sent */
    OUT_SASL,           /* <auth mechanism='EXTERNAL'/> sent */
    OUT_SASL_RESTART,   /* success: waiting for the new stream's features */
    OUT_DIALBACK,       /* <db:result/> sent */
    OUT_AUTHED
} out_state_t;

typedef struct link link_t;

/* A domain pair the peer authenticated by dialback on our bidirectional
 * stream (XEP-0288), besides the one we connected for. */
typedef struct peer_pair {
    struct peer_pair *next;
    char *orig, *recv; /* the peer's domain, ours */
    int valid;         /* 0 while its key is being checked */
} peer_pair_t;

typedef struct s2s_out {
    link_t *link; /* NULL once the link gave up on this stream */
    conn_t *conn;
    out_state_t state;
    int tls, direct;
    int header_on_secure; /* STARTTLS: our new header once TLS is up */
    int ready;            /* db:verify may go out (features after TLS seen) */
    int offers_external, offers_dialback;
    const char *auth; /* "EXTERNAL" or "dialback" once authenticated */
    int bidi;         /* XEP-0288: the peer may send us its stanzas on it */
    tls_verify_t verify;
    char stream_id[129];
    long long rate_tokens, rate_at_ms; /* the peer's stanzas (bidi), as on s2s_in.c */
    struct event *rate_timer;
    peer_pair_t *peer_pairs; /* the peer's further pairs (bidi) */
} s2s_out_t;

struct link {
    link_t *next;
    char *local, *remote;
    char key[520];
    s2s_out_t *out; /* the stream being set up or up, or NULL */
    conn_t *bidi;   /* an incoming stream that may carry ours (XEP-0288), or NULL */
    queued_t *q, *q_tail;
    size_t q_len, q_bytes;
    verify_req_t *verifies; /* waiting for a stream that can carry them */
    long long backoff_ms, retry_at_ms;
    struct event *timer;         /* retry after the backoff; queue age */
    struct event *connect_timer; /* connect_timeout of an attempt */
    int attempting;              /* an attempt is under way (DNS, connect, negotiation) */
    resolver_query_t *query;
    resolver_target_t *targets;
    size_t n_targets, ti;
    resolver_addr_t *addrs;
    size_t n_addrs, ai;
    char why[300];              /* the last reason an address failed */
    int no_domain;              /* the domain itself has no DNS records at all */
    resolver_target_t redirect; /* see-other-host: where to go next */
    int redirect_pending, redirects;
    conn_t *via;      /* XEP-0220 §2.6: another stream that carries our pair: the outgoing
                         one of another link, or an incoming bidirectional one (XEP-0288) */
    int via_valid;    /* the peer said valid to our db:result on `via` */
    int no_piggyback; /* the peer refused a piggybacked pair: our own stream */
};

static hashmap_t *links_by_key;
static link_t *all_links;
static struct event *sweep_timer; /* forgets idle links */

#define SWEEP_MAX_MS 60000
static long long sweep_ms; /* the period the sweep timer runs at */

static void free_link(link_t *l);

/* How often unused links are forgotten: every minute, or every
 * s2s.idle_timeout when that is shorter. */
static long long sweep_period_ms(void)
{
    long long idle = server.cfg->s2s.idle_timeout_ms;
    return idle > 0 && idle < SWEEP_MAX_MS ? idle : SWEEP_MAX_MS;
}

/* Every sweep period: forget the links with nothing under way and no
 * failure to remember (their backoff passed a period ago), so that memory
 * follows the domains in use, not every domain ever reached. */
static void sweep(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    long long now = s2s_now_ms();
    link_t **pp = &all_links;
    while (*pp) {
        link_t *l = *pp;
        if (!l->out && !l->bidi && !l->via && !l->q && !l->verifies && !l->attempting &&
            !l->query && now >= l->retry_at_ms + sweep_ms) {
            *pp = l->next;
            hashmap_remove(links_by_key, l->key);
            log_debug("s2s-out %s -> %s: unused, forgotten", l->local, l->remote);
            free_link(l);
        } else {
            pp = &l->next;
        }
    }
}

static void try_addr(link_t *l);
static void try_target(link_t *l);
static void link_connect(link_t *l);
static void rider_detach(link_t *l);
static void link_fail(link_t *l, const char *condition, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- links ---- */

static link_t *find_link(const char *local, const char *remote, int create)
{
    char key[520];
    snprintf(key, sizeof(key), "%s %s", local, remote);
    link_t *l = links_by_key ? hashmap_get(links_by_key, key) : NULL;
    if (l || !create)
        return l;
    if (!links_by_key && !(links_by_key = hashmap_new()))
        return NULL;
    if (!sweep_timer)
        sweep_timer = event_new(server.base, -1, EV_PERSIST, sweep, NULL);
    if (sweep_timer && (!evtimer_pending(sweep_timer, NULL) || sweep_ms != sweep_period_ms())) {
        sweep_ms = sweep_period_ms();
        const struct timeval every = {sweep_ms / 1000, (sweep_ms % 1000) * 1000};
        event_add(sweep_timer, &every);
    }
    l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    l->local = strdup(local);
    l->remote = strdup(remote);
    snprintf(l->key, sizeof(l->key), "%s", key);
    if (!l->local || !l->remote || hashmap_put(links_by_key, l->key, l) < 0) {
        free(l->local);
        free(l->remote);
        free(l);
        return NULL;
    }
    l->next = all_links;
    all_links = l;
    return l;
}

static void forget_targets(link_t *l)
{
    if (l->query) {
        resolver_cancel(l->query);
        l->query = NULL;
    }
    free(l->targets);
    l->targets = NULL;
    free(l->addrs);
    l->addrs = NULL;
    l->n_targets = l->n_addrs = l->ti = l->ai = 0;
}

/* `l` no longer rides on another link's stream. */
static void rider_detach(link_t *l)
{
    l->via = NULL;
    l->via_valid = 0;
}

/* Free `l`, already out of the table and the list, with what it holds
 * (its stream, if any, forgets it). */
static void free_link(link_t *l)
{
    forget_targets(l);
    rider_detach(l);
    if (l->out) {
        l->out->link = NULL;
        l->out = NULL;
    }
    while (l->q) {
        queued_t *q = l->q;
        l->q = q->next;
        tern_xml_unref(q->stanza);
        free(q);
    }
    while (l->verifies) {
        verify_req_t *v = l->verifies;
        l->verifies = v->next;
        free(v);
    }
    if (l->timer)
        event_free(l->timer);
    if (l->connect_timer)
        event_free(l->connect_timer);
    free(l->local);
    free(l->remote);
    free(l);
}

/* ---- writing ---- */

static void write_header(s2s_out_t *o)
{
    char buf[2400];
    snprintf(buf, sizeof(buf),
             "<?xml version='1.0'?><stream:stream xmlns='" NS_SERVER "' xmlns:db='" NS_DIALBACK
             "' xmlns:stream='" NS_STREAM "' from='%s' to='%s' version='1.0'>",
             o->link ? o->link->local : "", o->link ? o->link->remote : "");
    conn_write_str(o->conn, buf);
    o->conn->header_sent = 1;
}

static void send_header(conn_t *c)
{
    write_header(c->data);
}

/* A db:verify for link `l`'s pair on stream `o` (its own, or another to
 * the same remote domain: XEP-0220 lets any stream carry it). */
static void write_verify(conn_t *c, const link_t *l, const verify_req_t *v)
{
    char buf[2600];
    snprintf(buf, sizeof(buf), "<db:verify from='%s' to='%s' id='%s'>%s</db:verify>", l->local,
             l->remote, v->in_id, v->key);
    conn_write_str(c, buf);
}

static void send_link_verifies(conn_t *c, link_t *l)
{
    while (l->verifies) {
        verify_req_t *v = l->verifies;
        l->verifies = v->next;
        write_verify(c, l, v);
        free(v);
    }
}

static void send_verifies(s2s_out_t *o)
{
    o->ready = 1;
    send_link_verifies(o->conn, o->link);
}

/* ---- outcome ---- */

static void arm_timer(link_t *l);

/* What waited goes on `c`, in order. */
static void flush_queue(link_t *l, conn_t *c)
{
    while (l->q) {
        queued_t *q = l->q;
        l->q = q->next;
        conn_send(c, q->stanza);
        tern_xml_unref(q->stanza);
        free(q);
    }
    l->q_tail = NULL;
    l->q_len = l->q_bytes = 0;
}

/* The stream is authenticated: what waited goes, in order. */
static void link_up(link_t *l, const char *method)
{
    s2s_out_t *o = l->out;
    o->state = OUT_AUTHED;
    o->auth = method;
    l->attempting = 0;
    l->backoff_ms = 0;
    l->retry_at_ms = 0;
    if (l->connect_timer)
        evtimer_del(l->connect_timer);
    forget_targets(l);
    SSL *ssl = conn_ssl(o->conn);
    log_info("s2s-out %s: %s -> %s authenticated with %s%s (%s, certificate check: %s)",
             o->conn->peer, l->local, l->remote, method, o->bidi ? ", bidirectional" : "",
             ssl ? SSL_get_version(ssl) : "no TLS", s2s_verify_words(o->verify));
    flush_queue(l, o->conn);
}

/* Give up the current attempt: bounce what waits, answer the db:verify
 * questions with an error, and remember the failure for the backoff. */
static void link_fail(link_t *l, const char *condition, const char *fmt, ...)
{
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    log_info("s2s-out %s -> %s: failed: %s", l->local, l->remote, text);
    forget_targets(l);
    rider_detach(l);
    l->attempting = 0;
    if (l->connect_timer)
        evtimer_del(l->connect_timer);
    if (l->out) {
        s2s_out_t *o = l->out;
        l->out = NULL;
        o->link = NULL;
        conn_close(o->conn);
    }
    l->backoff_ms = l->backoff_ms ? l->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (l->backoff_ms > BACKOFF_MAX_MS)
        l->backoff_ms = BACKOFF_MAX_MS;
    l->retry_at_ms = s2s_now_ms() + l->backoff_ms;
    queued_t *q = l->q;
    l->q = l->q_tail = NULL;
    l->q_len = l->q_bytes = 0;
    verify_req_t *v = l->verifies;
    l->verifies = NULL;
    char *local = strdup(l->local), *remote = strdup(l->remote);
    while (q) {
        queued_t *next = q->next;
        router_bounce(q->stanza,
                      strcmp(condition, "remote-server-timeout") == 0 ? "wait" : "cancel",
                      condition, text);
        tern_xml_unref(q->stanza);
        free(q);
        q = next;
    }
    while (v) {
        verify_req_t *next = v->next;
        if (local && remote)
            s2s_in_verified(v->in_id, remote, local, "error", "remote-server-not-found");
        free(v);
        v = next;
    }
    free(local);
    free(remote);
}

static void connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link_t *l = arg;
    long long ms = server.cfg->s2s.connect_timeout_ms;
    if (l->via && !l->via_valid) {
        /* The peer never answered our piggybacked db:result (some servers
         * ignore more pairs on a stream): a stream of our own instead. */
        log_info(
            "s2s-out %s -> %s: no answer to dialback on the existing stream within %lld.%03lld "
            "s: connecting",
            l->local, l->remote, ms / 1000, ms % 1000);
        rider_detach(l);
        l->attempting = 0;
        l->no_piggyback = 1;
        link_connect(l);
        return;
    }
    link_fail(l, "remote-server-timeout", "%s did not answer within %lld.%03lld s (%s)", l->remote,
              ms / 1000, ms % 1000,
              l->out ? (l->out->state == OUT_CONNECTING ? "connecting or TLS handshake"
                                                        : "stream negotiation")
                     : "DNS");
}

/* ---- DNS and connect ---- */

static void on_addrs(void *arg, const resolver_addr_t *addrs, size_t n, const char *error)
{
    link_t *l = arg;
    l->query = NULL;
    if (error || n == 0) {
        /* No SRV record and the domain itself unknown (the resolver's "no
         * such domain", resolver.h): the address the user typed is wrong. */
        l->no_domain = l->n_targets == 1 && error && strcmp(error, RESOLVER_ERR_NO_DOMAIN) == 0 &&
                       strcasecmp(l->targets[l->ti].host, l->remote) == 0;
        snprintf(l->why, sizeof(l->why), "%s: %s", l->targets[l->ti].host,
                 error ? error : "no address");
        l->ti++;
        try_target(l);
        return;
    }
    free(l->addrs);
    l->addrs = malloc(n * sizeof(*addrs));
    if (!l->addrs) {
        link_fail(l, "remote-server-not-found", "out of memory");
        return;
    }
    memcpy(l->addrs, addrs, n * sizeof(*addrs));
    l->n_addrs = n;
    l->ai = 0;
    try_addr(l);
}

static void try_target(link_t *l)
{
    if (l->ti >= l->n_targets && l->no_domain) {
        /* A sentence for the user whose message or room entry bounces. */
        link_fail(l, "remote-server-not-found",
                  "The domain %s does not exist (it has no DNS records): check the address",
                  l->remote);
        return;
    }
    if (l->ti >= l->n_targets) {
        link_fail(l, "remote-server-not-found", "cannot connect to %s: %s", l->remote,
                  l->why[0] ? l->why : "no target");
        return;
    }
    const resolver_target_t *t = &l->targets[l->ti];
    l->query = resolver_addrs(server.resolver, t->host, t->port, on_addrs, l);
    if (!l->query)
        link_fail(l, "remote-server-not-found", "out of memory");
}

static void on_targets(void *arg, const resolver_target_t *targets, size_t n, const char *error)
{
    link_t *l = arg;
    l->query = NULL;
    if (error && strcmp(error, RESOLVER_ERR_NO_DOMAIN) == 0) {
        link_fail(l, "remote-server-not-found",
                  "The domain %s does not exist (it has no DNS records): check the address",
                  l->remote);
        return;
    }
    if (error || n == 0) {
        link_fail(l, "remote-server-not-found", "DNS for %s: %s", l->remote,
                  error ? error : "no target");
        return;
    }
    l->targets = malloc(n * sizeof(*targets));
    if (!l->targets) {
        link_fail(l, "remote-server-not-found", "out of memory");
        return;
    }
    memcpy(l->targets, targets, n * sizeof(*targets));
    l->n_targets = n;
    l->ti = 0;
    try_target(l);
}

static void format_addr(const resolver_addr_t *a, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%d", host, ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&a->ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%d", host, ntohs(s4->sin_port));
    }
}

/* Our certificates as presented to peers, read once and shared by every
 * outgoing connection (an SSL takes references), not parsed again for
 * each: memory per idle link (doc/performance.md).  Forgotten on reload. */
typedef struct our_cert {
    struct our_cert *next;
    char *cert_path, *key_path;
    X509 *leaf;
    STACK_OF(X509) * chain;
    EVP_PKEY *key;
} our_cert_t;

static our_cert_t *our_certs;

static void our_cert_free(our_cert_t *oc)
{
    X509_free(oc->leaf);
    sk_X509_pop_free(oc->chain, X509_free);
    EVP_PKEY_free(oc->key);
    free(oc->cert_path);
    free(oc->key_path);
    free(oc);
}

void s2s_out_forget_certificates(void)
{
    while (our_certs) {
        our_cert_t *oc = our_certs;
        our_certs = oc->next;
        our_cert_free(oc);
    }
}

/* The certificate in `cert_path` (leaf, then its chain) and the key in
 * `key_path`, read the first time; NULL when they cannot be read. */
static const our_cert_t *our_cert(const char *cert_path, const char *key_path)
{
    for (our_cert_t *oc = our_certs; oc; oc = oc->next)
        if (strcmp(oc->cert_path, cert_path) == 0 && strcmp(oc->key_path, key_path) == 0)
            return oc;
    our_cert_t *oc = calloc(1, sizeof(*oc));
    if (!oc)
        return NULL;
    oc->cert_path = strdup(cert_path);
    oc->key_path = strdup(key_path);
    oc->chain = sk_X509_new_null();
    BIO *b = BIO_new_file(cert_path, "r");
    if (b && oc->chain) {
        oc->leaf = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
        X509 *x;
        while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)))
            if (!sk_X509_push(oc->chain, x))
                X509_free(x);
        ERR_clear_error(); /* the end of the file */
    }
    BIO_free(b);
    b = BIO_new_file(key_path, "r");
    if (b)
        oc->key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!oc->cert_path || !oc->key_path || !oc->leaf || !oc->key) {
        our_cert_free(oc);
        return NULL;
    }
    oc->next = our_certs;
    our_certs = oc;
    return oc;
}

/* Our certificate for `local`, presented for SASL EXTERNAL (XEP-0178):
 * the domain's own, else (a service domain) that of the host it is under,
 * else the global one, as the server side picks them. */
static void use_our_certificate(SSL *ssl, const char *local)
{
    const cfg_host_t *h = config_host(server.cfg, local);
    if (h && h->is_service && !h->certificate) {
        const cfg_host_t *best = NULL;
        size_t len = strlen(local);
        for (size_t i = 0; i < server.cfg->n_hosts; i++) {
            const cfg_host_t *p = &server.cfg->hosts[i];
            size_t pl = strlen(p->name);
            if (!p->is_service && pl + 1 < len && local[len - pl - 1] == '.' &&
                strcmp(local + len - pl, p->name) == 0 && (!best || pl > strlen(best->name)))
                best = p;
        }
        if (best)
            h = best;
    }
    const char *cert = h && h->certificate ? h->certificate : server.cfg->certificate;
    const char *key = h && h->key ? h->key : server.cfg->key;
    if (!cert || !key)
        return;
    const our_cert_t *oc = our_cert(cert, key);
    if (!oc || SSL_use_certificate(ssl, oc->leaf) != 1 || SSL_set1_chain(ssl, oc->chain) != 1 ||
        SSL_use_PrivateKey(ssl, oc->key) != 1)
        log_warn("s2s-out: cannot present certificate %s to peers", cert);
}

static SSL *client_ssl(link_t *l, const char *alpn)
{
    SSL *ssl = tls_client_ssl_for_server(s2s.trust, l->remote, 0, alpn);
    if (ssl)
        use_our_certificate(ssl, l->local);
    return ssl;
}

static const conn_ops_t s2s_out_ops;

static void try_addr(link_t *l)
{
    const resolver_target_t *t = &l->targets[l->ti];
    while (l->ai < l->n_addrs) {
        const resolver_addr_t *a = &l->addrs[l->ai];
        char peer[80];
        format_addr(a, peer, sizeof(peer));
        SSL *ssl = NULL;
        if (t->direct_tls && !(ssl = client_ssl(l, "xmpp-server"))) {
            link_fail(l, "remote-server-not-found", "cannot make a TLS context");
            return;
        }
        s2s_out_t *o = calloc(1, sizeof(*o));
        if (!o) {
            if (ssl)
                SSL_free(ssl);
            link_fail(l, "remote-server-not-found", "out of memory");
            return;
        }
        o->link = l;
        o->direct = t->direct_tls;
        o->tls = t->direct_tls;
        o->verify = TLS_VERIFY_PENDING;
        xml_stream_limits_t limits = {.max_stanza_bytes = (size_t)server.cfg->max_stanza_size,
                                      .max_depth = 64,
                                      .max_attrs = 64};
        o->conn = conn_connect(server.base, (const struct sockaddr *)&a->ss, (int)a->len, peer,
                               &s2s_out_ops, o, ssl, &limits, server.cfg->s2s.idle_timeout_ms);
        if (!o->conn) {
            free(o);
            snprintf(l->why, sizeof(l->why), "%s: cannot open a socket", peer);
            l->ai++;
            continue;
        }
        o->conn->stream_ns = NS_SERVER;
        o->conn->never_held = 1;
        s2s.n_conns++;
        l->out = o;
        log_debug("s2s-out %s: connecting for %s -> %s (%s)", peer, l->local, l->remote,
                  t->direct_tls ? "direct TLS" : "STARTTLS");
        write_header(o); /* waits for the connection (and TLS) */
        return;
    }
    l->ti++;
    try_target(l);
}

static void arm_connect_timer(link_t *l)
{
    if (!l->connect_timer)
        l->connect_timer = evtimer_new(server.base, connect_timeout, l);
    long long ms = server.cfg->s2s.connect_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (l->connect_timer)
        evtimer_add(l->connect_timer, &tv);
}

/* An authenticated stream of ours to `remote` that can take one more
 * domain pair by dialback, or NULL. */
static s2s_out_t *carrier_for(const link_t *l)
{
    for (link_t *c = all_links; c; c = c->next) {
        s2s_out_t *o = c->out;
        if (c != l && o && o->state == OUT_AUTHED && !o->conn->closing &&
            strcmp(c->remote, l->remote) == 0 && o->offers_dialback &&
            (o->tls || server.cfg->s2s.dialback_without_tls) &&
            s2s_dialback_allowed(l->remote, o->verify))
            return o;
    }
    return NULL;
}

/* XEP-0220 §2.6 (piggybacking): when a stream of ours to the same remote
 * domain is up and the peer offers dialback, our pair goes on it with a
 * db:result instead of a new connection.  1 when it did. */
static int piggyback(link_t *l)
{
    if (l->no_piggyback)
        return 0;
    s2s_out_t *o = carrier_for(l);
    const char *id = o ? o->stream_id : NULL;
    conn_t *c = o ? o->conn : s2s_in_bidi_carrier(l->remote, &id);
    char key[DIALBACK_KEY_LEN];
    if (!c || dialback_key(s2s.secret, l->remote, l->local, id, key) < 0)
        return 0;
    l->via = c;
    l->via_valid = 0;
    l->attempting = 1;
    l->why[0] = '\0';
    arm_connect_timer(l);
    char buf[2400];
    snprintf(buf, sizeof(buf), "<db:result from='%s' to='%s'>%s</db:result>", l->local, l->remote,
             key);
    conn_write_str(c, buf);
    log_debug("s2s-out %s: %s -> %s asked for on an existing stream", c->peer, l->local, l->remote);
    return 1;
}

/* The peer said valid to our piggybacked pair: what waited goes. */
static void rider_up(link_t *l)
{
    conn_t *c = l->via;
    l->via_valid = 1;
    l->attempting = 0;
    l->backoff_ms = 0;
    l->retry_at_ms = 0;
    if (l->connect_timer)
        evtimer_del(l->connect_timer);
    forget_targets(l);
    log_info("s2s-out %s: %s -> %s authenticated with dialback on an existing stream", c->peer,
             l->local, l->remote);
    send_link_verifies(c, l);
    flush_queue(l, c);
}

/* Stream `c` ends: the links riding on it go their own way; those with
 * something waiting try again at once. */
static void riders_release(conn_t *c)
{
    for (link_t *r = all_links; r; r = r->next) {
        if (r->via != c)
            continue;
        int was_valid = r->via_valid;
        rider_detach(r);
        if (!was_valid) {
            r->attempting = 0;
            if (r->connect_timer)
                evtimer_del(r->connect_timer);
        }
        if ((r->q || r->verifies) && !server.stopping)
            link_connect(r);
    }
}

static void link_connect(link_t *l)
{
    if (l->attempting || l->out || l->via)
        return;
    if (piggyback(l))
        return;
    if (s2s.n_conns >= server.cfg->s2s.max_connections) {
        link_fail(l, "resource-constraint", "too many server connections (s2s.max_connections)");
        return;
    }
    l->attempting = 1;
    l->why[0] = '\0';
    l->no_domain = 0;
    l->redirects = 0;
    l->redirect_pending = 0;
    arm_connect_timer(l);
    l->query = resolver_targets(server.resolver, l->remote, "xmpp-server", 5269, on_targets, l);
    if (!l->query)
        link_fail(l, "remote-server-not-found", "out of memory");
}

/* The link's timer: stanzas older than queue_max_age bounce; after the
 * backoff, a new attempt for what waits. */
static void link_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link_t *l = arg;
    long long now = s2s_now_ms(), max_age = server.cfg->s2s.queue_max_age_ms;
    while (l->q && now - l->q->at_ms >= max_age) {
        queued_t *q = l->q;
        l->q = q->next;
        if (!l->q)
            l->q_tail = NULL;
        l->q_len--;
        l->q_bytes -= q->bytes;
        router_bounce(q->stanza, "wait", "remote-server-timeout",
                      "no connection to the recipient's server in time");
        tern_xml_unref(q->stanza);
        free(q);
    }
    if ((l->q || l->verifies) && !l->out && !l->via && !l->attempting && now >= l->retry_at_ms)
        link_connect(l);
    arm_timer(l);
}

static void arm_timer(link_t *l)
{
    if (!l->q && !(l->verifies && !l->attempting))
        return;
    if (!l->timer && !(l->timer = evtimer_new(server.base, link_timer, l)))
        return;
    long long now = s2s_now_ms(), at = LLONG_MAX;
    if (l->q)
        at = l->q->at_ms + server.cfg->s2s.queue_max_age_ms;
    if (!l->out && !l->via && !l->attempting && l->retry_at_ms < at)
        at = l->retry_at_ms;
    long long ms = at > now ? at - now : 0;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(l->timer, &tv);
}

/* ---- the stream ---- */

__attribute__((format(printf, 3, 4))) static void fail_stream(s2s_out_t *o, const char *condition,
                                                              const char *fmt, ...)
{
    link_t *l = o->link;
    if (!l)
        return;
    char text[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    link_fail(l, condition, "%s", text);
}

static void on_open(conn_t *c, const char *name, const char *ns, const char **attrs)
{
    s2s_out_t *o = c->data;
    const char *id = NULL;
    for (size_t i = 0; attrs[i]; i += 2)
        if (strcmp(attrs[i], "id") == 0)
            id = attrs[i + 1];
    if (!name || strcmp(name, "stream") != 0 || !ns || strcmp(ns, NS_STREAM) != 0) {
        conn_stream_error(c, "invalid-namespace", NULL);
        return;
    }
    if (!s2s_token_ok(id)) {
        conn_stream_error(c, "invalid-xml", "a stream id of letters and digits is required");
        return;
    }
    snprintf(o->stream_id, sizeof(o->stream_id), "%s", id);
    if (o->state == OUT_CONNECTING)
        o->state = OUT_OPEN;
}

static tls_verify_t check_certificate(s2s_out_t *o)
{
    SSL *ssl = conn_ssl(o->conn);
    if (!ssl)
        return TLS_VERIFY_NO_CERT;
    tls_verify_t v = tls_peer_verify(s2s.trust, ssl, o->link->remote);
    tls_verify_t name_check = conn_tls_verify(o->conn); /* DNS-ID with our trust store */
    if (v == TLS_VERIFY_OK || name_check == TLS_VERIFY_OK)
        return TLS_VERIFY_OK;
    return name_check != TLS_VERIFY_PENDING ? name_check : v;
}

static void start_dialback(s2s_out_t *o)
{
    link_t *l = o->link;
    char key[DIALBACK_KEY_LEN];
    if (dialback_key(s2s.secret, l->remote, l->local, o->stream_id, key) < 0) {
        fail_stream(o, "remote-server-not-found", "cannot compute a dialback key");
        return;
    }
    char buf[2400];
    snprintf(buf, sizeof(buf), "<db:result from='%s' to='%s'>%s</db:result>", l->local, l->remote,
             key);
    conn_write_str(o->conn, buf);
    o->state = OUT_DIALBACK;
}

/* Dialback after EXTERNAL was not possible: allowed with a valid
 * certificate, or with a bad one for the domains of dialback_only. */
static void dialback_or_fail(s2s_out_t *o)
{
    link_t *l = o->link;
    if (!s2s_dialback_allowed(l->remote, o->verify)) {
        fail_stream(o, "remote-server-not-found",
                    "the certificate of %s is not valid (%s) and the domain is not in "
                    "s2s.dialback_only",
                    l->remote, s2s_verify_words(o->verify));
        return;
    }
    start_dialback(o);
}

static void handle_features(s2s_out_t *o, tern_xml_t *f)
{
    link_t *l = o->link;
    const tern_config_t *cfg = server.cfg;
    if (o->state == OUT_SASL_RESTART) {
        link_up(l, "EXTERNAL");
        return;
    }
    if (o->state != OUT_OPEN)
        return;
    tern_xml_t *mechs = tern_xml_child(f, "mechanisms", NS_SASL);
    o->offers_external = 0;
    for (tern_xml_t *m = mechs ? tern_xml_first_element(mechs) : NULL; m;
         m = tern_xml_next_element(m))
        if (strcmp(tern_xml_text(m), "EXTERNAL") == 0)
            o->offers_external = 1;
    o->offers_dialback = tern_xml_child(f, "dialback", NS_DIALBACK_FEAT) != NULL;
    if (!o->tls) {
        if (tern_xml_child(f, "starttls", NS_TLS)) {
            conn_write_str(o->conn, "<starttls xmlns='" NS_TLS "'/>");
            o->state = OUT_STARTTLS;
            return;
        }
        if (cfg->s2s.require_encryption || !cfg->s2s.dialback_without_tls) {
            fail_stream(o, "remote-server-not-found", "%s does not offer TLS%s", l->remote,
                        cfg->s2s.require_encryption ? " (s2s.require_encryption)" : "");
            return;
        }
        o->verify = TLS_VERIFY_NO_CERT;
        send_verifies(o);
        dialback_or_fail(o);
        return;
    }
    o->verify = check_certificate(o);
    send_verifies(o);
    if (tern_xml_child(f, "bidi", NS_BIDI_FEAT)) {
        conn_write_str(o->conn, "<bidi xmlns='" NS_BIDI "'/>"); /* XEP-0288 §2.2 */
        o->bidi = 1;
    }
    if (o->verify == TLS_VERIFY_OK && o->offers_external) {
        conn_write_str(o->conn, "<auth xmlns='" NS_SASL "' mechanism='EXTERNAL'>=</auth>");
        o->state = OUT_SASL;
        return;
    }
    dialback_or_fail(o);
}

/* A db:result answer on our stream for the peer's pair (orig, recv). */
static void peer_db_answer(s2s_out_t *o, const char *orig, const char *recv, const char *type,
                           const char *condition)
{
    char buf[2600];
    if (condition)
        snprintf(
            buf, sizeof(buf),
            "<db:result from='%s' to='%s' type='error'><error type='cancel'><%s xmlns='" NS_STANZAS
            "'/></error></db:result>",
            recv, orig, condition);
    else
        snprintf(buf, sizeof(buf), "<db:result from='%s' to='%s' type='%s'/>", recv, orig, type);
    conn_write_str(o->conn, buf);
}

static peer_pair_t *find_peer_pair(s2s_out_t *o, const char *orig, const char *recv)
{
    for (peer_pair_t *p = o->peer_pairs; p; p = p->next)
        if (strcmp(p->orig, orig) == 0 && strcmp(p->recv, recv) == 0)
            return p;
    return NULL;
}

static void drop_peer_pair(s2s_out_t *o, peer_pair_t *gone)
{
    for (peer_pair_t **pp = &o->peer_pairs; *pp; pp = &(*pp)->next)
        if (*pp == gone) {
            *pp = gone->next;
            free(gone->orig);
            free(gone->recv);
            free(gone);
            return;
        }
}

static void peer_pair_valid(s2s_out_t *o, peer_pair_t *p)
{
    p->valid = 1;
    log_info("s2s-out %s: %s authenticated with dialback (to %s) on our bidirectional stream",
             o->conn->peer, p->orig, p->recv);
    peer_db_answer(o, p->orig, p->recv, "valid", NULL);
    s2s_out_bidi_attach(p->recv, p->orig, o->conn); /* XEP-0288 §2.2: the inverse pair */
}

/* XEP-0288 §2.2 with XEP-0220 §2.1.2: on our bidirectional stream the
 * peer claims another domain of its own (or ours) with a db:result; it is
 * checked like one on an incoming stream: with its authoritative server,
 * or at once when our stream authenticated it with EXTERNAL and its
 * certificate names that domain too (XEP-0344 §2.4). */
static void peer_db_result(s2s_out_t *o, tern_xml_t *el)
{
    const char *from = tern_xml_attr(el, "from"), *to = tern_xml_attr(el, "to");
    char *orig = from ? tern_jid_prep_domain(from) : NULL;
    char *recv = to ? tern_jid_prep_domain(to) : NULL;
    const char *key = tern_xml_text(el);
    if (!orig || !recv) {
        conn_stream_error(o->conn, "improper-addressing", NULL);
        goto out;
    }
    if (!o->bidi || o->state != OUT_AUTHED) {
        peer_db_answer(o, orig, recv, "error", "feature-not-implemented");
        goto out;
    }
    if (!domains_is_ours(recv)) {
        peer_db_answer(o, orig, recv, "error", "item-not-found");
        goto out;
    }
    if (!s2s_allowed(orig) || domains_is_ours(orig)) {
        log_info("s2s-out %s: %s may not federate with us (%s)", o->conn->peer, orig,
                 domains_is_ours(orig) ? "it is one of our own domains" : "s2s.allow/deny");
        peer_db_answer(o, orig, recv, "error", "forbidden");
        goto out;
    }
    SSL *ssl = o->tls ? conn_ssl(o->conn) : NULL;
    tls_verify_t v = ssl ? tls_peer_verify(s2s.trust, ssl, orig) : TLS_VERIFY_NO_CERT;
    if (!s2s_dialback_allowed(orig, v)) {
        log_info("s2s-out %s: dialback for %s refused: certificate %s and the domain is not in "
                 "s2s.dialback_only",
                 o->conn->peer, orig, s2s_verify_words(v));
        peer_db_answer(o, orig, recv, "error", "not-authorized");
        goto out;
    }
    peer_pair_t *p = find_peer_pair(o, orig, recv);
    if (p) {
        if (p->valid)
            peer_db_answer(o, orig, recv, "valid", NULL);
        goto out; /* else being checked */
    }
    int at_once = o->auth && strcmp(o->auth, "EXTERNAL") == 0 && v == TLS_VERIFY_OK;
    if (!at_once && !s2s_token_ok(key)) {
        peer_db_answer(o, orig, recv, "invalid", NULL);
        goto out;
    }
    p = calloc(1, sizeof(*p));
    if (!p) {
        conn_stream_error(o->conn, "resource-constraint", NULL);
        goto out;
    }
    p->orig = orig;
    p->recv = recv;
    orig = recv = NULL;
    p->next = o->peer_pairs;
    o->peer_pairs = p;
    if (at_once)
        peer_pair_valid(o, p);
    else
        s2s_out_verify(p->recv, p->orig, o->stream_id, key);
out:
    free(orig);
    free(recv);
}

void s2s_out_peer_verified(const char *id, const char *orig, const char *recv, const char *type,
                           const char *condition)
{
    for (link_t *l = all_links; l; l = l->next) {
        s2s_out_t *o = l->out;
        peer_pair_t *p;
        if (!o || o->conn->closing || strcmp(o->stream_id, id) != 0 ||
            !(p = find_peer_pair(o, orig, recv)) || p->valid)
            continue;
        if (strcmp(type, "valid") == 0) {
            peer_pair_valid(o, p);
            return;
        }
        log_info("s2s-out %s: dialback for %s refused: %s", o->conn->peer, orig,
                 condition ? condition : "its authoritative server says the key is invalid");
        drop_peer_pair(o, p);
        peer_db_answer(o, orig, recv, condition ? "error" : "invalid", condition);
        return;
    }
}

int s2s_out_rider_answer(conn_t *c, tern_xml_t *el, const char *type)
{
    const char *to = tern_xml_attr(el, "to"), *from = tern_xml_attr(el, "from");
    link_t *r = to && from ? find_link(to, from, 0) : NULL;
    if (!r || r->via != c)
        return 0;
    if (r->via_valid)
        return 1;
    if (strcmp(type, "valid") == 0) {
        rider_up(r);
        return 1;
    }
    tern_xml_t *err = tern_xml_child(el, "error", NULL);
    tern_xml_t *cond = err ? tern_xml_first_element(err) : NULL;
    if (strcmp(type, "error") == 0) {
        /* It does not take more pairs here: a stream of our own. */
        log_info("s2s-out %s: %s refused %s -> %s on this stream (%s): connecting", c->peer,
                 r->remote, r->local, r->remote, cond ? cond->name : "no reason");
        rider_detach(r);
        r->attempting = 0;
        r->no_piggyback = 1;
        link_connect(r);
        return 1;
    }
    link_fail(r, "remote-server-not-found", "%s refused our dialback key for %s", r->remote,
              r->local);
    return 1;
}

/* A db:verify question on our stream: is it our key for (from, to, id)? */
static void answer_verify(s2s_out_t *o, tern_xml_t *el)
{
    const char *from = tern_xml_attr(el, "from"), *to = tern_xml_attr(el, "to");
    const char *id = tern_xml_attr(el, "id");
    char *recv = from ? tern_jid_prep_domain(from) : NULL;
    char *orig = to ? tern_jid_prep_domain(to) : NULL;
    char buf[2600];
    if (!o->bidi || !recv || !orig || !s2s_token_ok(id)) {
        conn_stream_error(o->conn, "improper-addressing", NULL);
    } else if (!domains_is_ours(orig)) {
        snprintf(buf, sizeof(buf),
                 "<db:verify from='%s' to='%s' id='%s' type='error'><error type='cancel'>"
                 "<item-not-found xmlns='" NS_STANZAS "'/></error></db:verify>",
                 orig, recv, id);
        conn_write_str(o->conn, buf);
    } else {
        int ok = s2s_key_ok(recv, orig, id, tern_xml_text(el));
        snprintf(buf, sizeof(buf), "<db:verify from='%s' to='%s' id='%s' type='%s'/>", orig, recv,
                 id, ok ? "valid" : "invalid");
        conn_write_str(o->conn, buf);
    }
    free(recv);
    free(orig);
}

static void handle_dialback(s2s_out_t *o, tern_xml_t *el)
{
    link_t *l = o->link;
    const char *type = tern_xml_attr(el, "type");
    if (strcmp(el->name, "verify") == 0 && !type) {
        /* XEP-0288: on a bidirectional stream the peer may ask us, as
         * authoritative server, about a key (XEP-0220 §2.2). */
        answer_verify(o, el);
        return;
    }
    if (strcmp(el->name, "verify") == 0) {
        /* The answer to a question of ours as receiving server, for any
         * of our domains (the stream may carry others' questions). */
        const char *id = tern_xml_attr(el, "id");
        const char *to = tern_xml_attr(el, "to");
        char *recv = to ? tern_jid_prep_domain(to) : NULL;
        tern_xml_t *err =
            type && strcmp(type, "error") == 0 ? tern_xml_child(el, "error", NULL) : NULL;
        tern_xml_t *cond = err ? tern_xml_first_element(err) : NULL;
        if (id && type && recv)
            s2s_in_verified(id, l->remote, recv, type,
                            strcmp(type, "error") == 0 ? (cond ? cond->name : "undefined-condition")
                                                       : NULL);
        free(recv);
        return;
    }
    if (strcmp(el->name, "result") == 0 && !type) {
        peer_db_result(o, el);
        return;
    }
    if (strcmp(el->name, "result") == 0 && type && s2s_out_rider_answer(o->conn, el, type))
        return;
    if (strcmp(el->name, "result") != 0 || o->state != OUT_DIALBACK)
        return;
    if (type && strcmp(type, "valid") == 0) {
        link_up(l, "dialback");
        return;
    }
    tern_xml_t *err = tern_xml_child(el, "error", NULL);
    tern_xml_t *cond = err ? tern_xml_first_element(err) : NULL;
    fail_stream(o, "remote-server-not-found", "%s refused our dialback key (%s)", l->remote,
                cond   ? cond->name
                : type ? type
                       : "no answer");
}

static void rate_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s2s_out_t *o = arg;
    conn_input_release(o->conn);
}

/* XEP-0288: on a bidirectional stream the peer sends stanzas of the
 * domain we connected to (its certificate, or DNS for dialback, vouched
 * for it) to ours; they pass the router's peer rules like those of an
 * incoming stream, at the same rate. */
/* Whether the peer may send from `from` to `to` on `o`: the inverse of
 * each pair of ours it carries (XEP-0288 §2.2), and the pairs the peer
 * authenticated on it. */
static int peer_pair_ok(const s2s_out_t *o, const char *from, const char *to)
{
    const link_t *l = o->link;
    if (strcmp(from, l->remote) == 0 && strcmp(to, l->local) == 0)
        return 1;
    if (s2s_out_rides(o->conn, to, from))
        return 1;
    for (const peer_pair_t *p = o->peer_pairs; p; p = p->next)
        if (p->valid && strcmp(from, p->orig) == 0 && strcmp(to, p->recv) == 0)
            return 1;
    return 0;
}

static int peer_domain_ok(const s2s_out_t *o, const char *from)
{
    if (strcmp(from, o->link->remote) == 0)
        return 1;
    for (const peer_pair_t *p = o->peer_pairs; p; p = p->next)
        if (p->valid && strcmp(from, p->orig) == 0)
            return 1;
    return 0;
}

static void peer_stanza(s2s_out_t *o, tern_xml_t *st)
{
    const char *from = tern_xml_attr(st, "from"), *to = tern_xml_attr(st, "to");
    tern_jid_t *fj = from ? tern_jid_new(from, NULL) : NULL;
    tern_jid_t *tj = to ? tern_jid_new(to, NULL) : NULL;
    const char *refusal = !fj || !tj                                 ? "improper-addressing"
                          : !peer_domain_ok(o, fj->domain)           ? "invalid-from"
                          : !peer_pair_ok(o, fj->domain, tj->domain) ? "host-unknown" /* §4.9.3.6 */
                                                                     : NULL;
    if (refusal) {
        log_info("s2s-out %s: stanza from %s to %s refused: %s (a domain pair not authenticated "
                 "on this stream)",
                 o->conn->peer, from ? from : "(none)", to ? to : "(none)", refusal);
        tern_jid_free(&fj);
        tern_jid_free(&tj);
        conn_stream_error(o->conn, refusal, NULL);
        return;
    }
    tern_jid_free(&tj);
    long long wait =
        limits_bucket_take(&o->rate_tokens, &o->rate_at_ms, server.cfg->max_stanzas_per_second,
                           server.cfg->stanza_burst, s2s_now_ms());
    if (wait > 0 && (o->rate_timer || (o->rate_timer = evtimer_new(server.base, rate_over, o)))) {
        struct timeval w = {wait / 1000, (wait % 1000) * 1000};
        conn_input_hold(o->conn);
        evtimer_add(o->rate_timer, &w);
    }
    const route_origin_t origin = {.kind = ROUTE_PEER, .domain = fj->domain};
    const char *refused = NULL;
    if (router_route_from(st, &origin, &refused) < 0 && refused) {
        log_info("s2s-out %s: stanza from %s to %s refused: %s", o->conn->peer, from, to, refused);
        conn_stream_error(o->conn, refused, NULL);
    }
    tern_jid_free(&fj);
}

/* RFC 6120 §4.9.3.19: "host", "host:port" or "[IPv6]:port" (port 5269
 * when left out), at most MAX_REDIRECTS times per attempt.  0 when the
 * next connection goes there. */
#define MAX_REDIRECTS 2
static int see_other_host(link_t *l, const s2s_out_t *o, const char *text)
{
    char host[256];
    unsigned port = 5269;
    size_t n = text ? strlen(text) : 0;
    if (n == 0 || n >= sizeof(host) || l->redirects >= MAX_REDIRECTS)
        return -1;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end == text + 1)
            return -1;
        snprintf(host, sizeof(host), "%.*s", (int)(end - text - 1), text + 1);
        if (end[1] == ':' && sscanf(end + 2, "%5u", &port) != 1)
            return -1;
    } else {
        const char *colon = strchr(text, ':');
        snprintf(host, sizeof(host), "%.*s", (int)(colon ? (size_t)(colon - text) : n), text);
        if (colon && sscanf(colon + 1, "%5u", &port) != 1)
            return -1;
    }
    int v6 = strspn(host, "0123456789abcdefABCDEF:.") == strlen(host) && strchr(host, ':');
    if (port == 0 || port > 65535 || !(s2s_token_ok(host) || v6))
        return -1;
    memset(&l->redirect, 0, sizeof(l->redirect));
    snprintf(l->redirect.host, sizeof(l->redirect.host), "%s", host);
    l->redirect.port = (unsigned short)port;
    l->redirect.direct_tls = o->direct;
    l->redirect_pending = 1;
    l->redirects++;
    log_info("s2s-out %s -> %s: redirected to %s port %u", l->local, l->remote, host, port);
    return 0;
}

static void on_stanza(conn_t *c, tern_xml_t *st)
{
    s2s_out_t *o = c->data;
    if (!o->link)
        return; /* given up: closing */
    link_t *l = o->link;
    const char *ns = st->ns ? st->ns : "";
    if (strcmp(ns, NS_STREAM) == 0 && strcmp(st->name, "features") == 0) {
        handle_features(o, st);
    } else if (strcmp(ns, NS_STREAM) == 0 && strcmp(st->name, "error") == 0) {
        tern_xml_t *cond = tern_xml_first_element(st);
        snprintf(l->why, sizeof(l->why), "%s sent the stream error %s", l->remote,
                 cond ? cond->name : "(none)");
        log_info("s2s-out %s: %s", c->peer, l->why);
        if (cond && strcmp(cond->name, "see-other-host") == 0 && o->state != OUT_AUTHED &&
            see_other_host(l, o, tern_xml_text(cond)) == 0)
            conn_close(c); /* on_closing goes there */
        else if (o->state != OUT_AUTHED)
            fail_stream(o, "remote-server-not-found", "%s", l->why);
        else
            conn_close(c);
    } else if (strcmp(ns, NS_TLS) == 0 && strcmp(st->name, "proceed") == 0 &&
               o->state == OUT_STARTTLS) {
        SSL *ssl = client_ssl(l, NULL);
        if (!ssl) {
            fail_stream(o, "remote-server-not-found", "cannot make a TLS context");
            return;
        }
        o->tls = 1;
        o->header_on_secure = 1;
        o->state = OUT_OPEN;
        conn_starttls(c, ssl);
    } else if (strcmp(ns, NS_TLS) == 0) {
        fail_stream(o, "remote-server-not-found", "%s refused STARTTLS", l->remote);
    } else if (strcmp(ns, NS_SASL) == 0 && o->state == OUT_SASL) {
        if (strcmp(st->name, "success") == 0) {
            o->state = OUT_SASL_RESTART;
            conn_restart_stream(c);
            write_header(o);
            return;
        }
        tern_xml_t *cond = tern_xml_first_element(st);
        log_info("s2s-out %s: %s refused SASL EXTERNAL (%s): trying dialback", c->peer, l->remote,
                 cond ? cond->name : "no reason");
        o->state = OUT_OPEN;
        dialback_or_fail(o);
    } else if (strcmp(ns, NS_DIALBACK) == 0) {
        handle_dialback(o, st);
    } else if (o->bidi && o->state == OUT_AUTHED && stanza_kind(st) != STANZA_OTHER) {
        peer_stanza(o, st);
    } else {
        conn_stream_error(c, "unsupported-stanza-type", "this stream carries our stanzas only");
    }
}

static void on_secure(conn_t *c)
{
    s2s_out_t *o = c->data;
    if (o->header_on_secure && o->link) {
        o->header_on_secure = 0;
        o->state = OUT_CONNECTING;
        write_header(o);
    }
}

static void on_idle(conn_t *c)
{
    s2s_out_t *o = c->data;
    if (o->state == OUT_AUTHED)
        conn_write_str(c, " ");
}

/* The stream ended (either side, or the connect failed): before it was
 * authenticated, the next address is tried. */
static void on_closing(conn_t *c)
{
    s2s_out_t *o = c->data;
    s2s_out_bidi_detach(c); /* and the pairs riding on it */
    link_t *l = o->link;
    if (!l || l->out != o)
        return;
    l->out = NULL;
    o->link = NULL;
    if (o->state == OUT_AUTHED) {
        log_info("s2s-out %s: stream %s -> %s closed", c->peer, l->local, l->remote);
        return;
    }
    if (server.stopping) {
        link_fail(l, "remote-server-not-found", "%s", "the server is shutting down");
        return;
    }
    if (o->state == OUT_CONNECTING && !o->stream_id[0])
        snprintf(l->why, sizeof(l->why), "%s: %s", c->peer,
                 o->tls ? "connection or TLS handshake failed" : "connection failed");
    else if (!l->why[0])
        snprintf(l->why, sizeof(l->why), "%s closed the stream during negotiation", c->peer);
    log_info("s2s-out %s -> %s: %s", l->local, l->remote, l->why);
    if (l->redirect_pending) { /* see-other-host: that target alone */
        l->redirect_pending = 0;
        forget_targets(l);
        l->targets = malloc(sizeof(*l->targets));
        if (!l->targets) {
            link_fail(l, "remote-server-not-found", "out of memory");
            return;
        }
        l->targets[0] = l->redirect;
        l->n_targets = 1;
        try_target(l);
        return;
    }
    l->ai++;
    if (l->addrs)
        try_addr(l);
    else
        link_fail(l, "remote-server-not-found", "%s", l->why);
}

static void on_free(conn_t *c)
{
    s2s_out_t *o = c->data;
    if (o->link && o->link->out == o)
        o->link->out = NULL;
    if (o->rate_timer)
        event_free(o->rate_timer);
    riders_release(c); /* (already at closing; in case it never closed) */
    while (o->peer_pairs)
        drop_peer_pair(o, o->peer_pairs);
    s2s.n_conns--;
    free(o);
}

static const conn_ops_t s2s_out_ops = {.kind = "s2s-out",
                                       .on_open = on_open,
                                       .on_stanza = on_stanza,
                                       .on_idle = on_idle,
                                       .on_closing = on_closing,
                                       .send_header = send_header,
                                       .on_free = on_free,
                                       .on_secure = on_secure};

/* ---- entry points ---- */

static size_t stanza_bytes(const tern_xml_t *st)
{
    struct evbuffer *b = evbuffer_new();
    if (!b)
        return 0;
    xml_serialize(st, NS_SERVER, b);
    size_t n = evbuffer_get_length(b);
    evbuffer_free(b);
    return n;
}

int s2s_out_route(tern_xml_t *stanza, const tern_jid_t *to)
{
    if (!server.cfg->s2s.enabled)
        return -1; /* bounced remote-server-not-found */
    const char *from = tern_xml_attr(stanza, "from");
    tern_jid_t *fj = from ? tern_jid_new(from, NULL) : NULL;
    if (!fj || !domains_is_ours(fj->domain)) {
        tern_jid_free(&fj);
        return -1; /* we relay for nobody: bounced */
    }
    if (!s2s_allowed(to->domain)) {
        log_info("s2s-out: %s is not allowed (s2s.allow/deny): stanza bounced", to->domain);
        router_bounce(stanza, "cancel", "remote-server-not-found",
                      "this server does not federate with that domain");
        tern_jid_free(&fj);
        return 0;
    }
    link_t *l = find_link(fj->domain, to->domain, 1);
    tern_jid_free(&fj);
    if (!l) {
        router_bounce(stanza, "wait", "resource-constraint", "out of memory");
        return 0;
    }
    if (l->out && l->out->state == OUT_AUTHED) {
        conn_send(l->out->conn, stanza);
        return 0;
    }
    if (l->via && l->via_valid && !l->via->closing) {
        conn_send(l->via, stanza);
        return 0;
    }
    if (l->bidi && !l->bidi->closing) {
        conn_send(l->bidi, stanza);
        return 0;
    }
    size_t bytes = stanza_bytes(stanza);
    if (l->q_len >= (size_t)server.cfg->s2s.queue_max_stanzas ||
        l->q_bytes + bytes > (size_t)server.cfg->s2s.queue_max_bytes) {
        router_bounce(stanza, "wait", "resource-constraint",
                      "too many stanzas wait for the connection to the recipient's server");
        return 0;
    }
    queued_t *q = calloc(1, sizeof(*q));
    if (!q) {
        router_bounce(stanza, "wait", "resource-constraint", "out of memory");
        return 0;
    }
    q->stanza = tern_xml_ref(stanza);
    q->bytes = bytes;
    q->at_ms = s2s_now_ms();
    if (l->q_tail)
        l->q_tail->next = q;
    else
        l->q = q;
    l->q_tail = q;
    l->q_len++;
    l->q_bytes += bytes;
    if (!l->out && !l->via && !l->attempting && q->at_ms >= l->retry_at_ms)
        link_connect(l);
    if (l->q) /* a failure at once bounced it already */
        arm_timer(l);
    return 0;
}

void s2s_out_verify(const char *recv, const char *orig, const char *in_id, const char *key)
{
    link_t *l = find_link(recv, orig, 1);
    verify_req_t *v = l ? calloc(1, sizeof(*v)) : NULL;
    if (!v) {
        s2s_in_verified(in_id, orig, recv, "error", "resource-constraint");
        return;
    }
    snprintf(v->in_id, sizeof(v->in_id), "%s", in_id);
    snprintf(v->key, sizeof(v->key), "%s", key);
    s2s_out_t *carrier = l->out && l->out->ready ? l->out : !l->out ? carrier_for(l) : NULL;
    if (!carrier && l->via) {
        write_verify(l->via, l, v);
        free(v);
        return;
    }
    if (carrier) {
        write_verify(carrier->conn, l, v);
        free(v);
        return;
    }
    v->next = l->verifies;
    l->verifies = v;
    if (!l->out && !l->attempting) {
        if (s2s_now_ms() >= l->retry_at_ms)
            link_connect(l);
        else
            arm_timer(l);
    }
}

void s2s_out_bidi_attach(const char *local, const char *remote, conn_t *c)
{
    link_t *l = find_link(local, remote, 1);
    if (!l || l->bidi)
        return;
    l->bidi = c;
    if (!(l->out && l->out->state == OUT_AUTHED))
        flush_queue(l, c);
}

void s2s_out_bidi_detach(conn_t *c)
{
    for (link_t *l = all_links; l; l = l->next)
        if (l->bidi == c)
            l->bidi = NULL;
    riders_release(c);
}

size_t s2s_out_pairs_on(const conn_t *c, char *buf, size_t len, size_t n)
{
    for (const link_t *l = all_links; l && n < len; l = l->next) {
        if (l->via != c && l->bidi != c)
            continue;
        int w = snprintf(buf + n, len - n, "%s%s->%s%s", n ? " " : "", l->local, l->remote,
                         l->via == c && !l->via_valid ? "?" : "");
        if (w < 0)
            break;
        n += (size_t)w;
    }
    return n;
}

int s2s_out_rides(const conn_t *c, const char *local, const char *remote)
{
    const link_t *l = find_link(local, remote, 0);
    return l && l->via == c && l->via_valid;
}

/* "a->b c->d?" of the pairs stream `o` of link `l` carries, into `buf`. */
static void out_pairs(const link_t *l, const s2s_out_t *o, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
#define PAIR(f, t, ok)                                                                             \
    do {                                                                                           \
        int w = snprintf(buf + n, len - n, "%s%s->%s%s", n ? " " : "", f, t, ok ? "" : "?");       \
        if (w < 0 || (size_t)w >= len - n)                                                         \
            return;                                                                                \
        n += (size_t)w;                                                                            \
    } while (0)
    PAIR(l->local, l->remote, o && o->state == OUT_AUTHED);
    for (const link_t *r = o ? all_links : NULL; r; r = r->next)
        if (r->via == o->conn)
            PAIR(r->local, r->remote, r->via_valid);
    for (const peer_pair_t *p = o ? o->peer_pairs : NULL; p; p = p->next)
        PAIR(p->orig, p->recv, p->valid);
#undef PAIR
}

void s2s_out_list(void (*fn)(void *arg, const s2s_info_t *info), void *arg)
{
    for (link_t *l = all_links; l; l = l->next) {
        if ((!l->out && !l->q_len && !l->attempting) || l->via)
            continue; /* (a piggybacked pair is listed with its stream) */
        s2s_out_t *o = l->out;
        char pairs[1024];
        out_pairs(l, o, pairs, sizeof(pairs));
        SSL *ssl = o && o->tls ? conn_ssl(o->conn) : NULL;
        s2s_info_t info = {.direction = "out",
                           .remote = l->remote,
                           .local = l->local,
                           .auth = !o || !o->auth                     ? "none"
                                   : !o->bidi                         ? o->auth
                                   : strcmp(o->auth, "EXTERNAL") == 0 ? "EXTERNAL+bidi"
                                                                      : "dialback+bidi",
                           .tls = ssl ? SSL_get_version(ssl) : "none",
                           .cert = s2s_verify_words(o ? o->verify : TLS_VERIFY_PENDING),
                           .queued = l->q_len,
                           .peer = o ? o->conn->peer : "(resolving)",
                           .pairs = pairs};
        fn(arg, &info);
    }
}

size_t s2s_out_close(const char *remote)
{
    size_t n = 0;
    for (link_t *l = all_links; l; l = l->next) {
        if (strcmp(l->remote, remote) != 0 || !l->out)
            continue;
        if (l->out->state == OUT_AUTHED) {
            conn_close(l->out->conn);
        } else {
            link_fail(l, "remote-server-not-found", "%s", "closed by the administrator");
        }
        n++;
    }
    return n;
}

void s2s_out_stop(void)
{
    s2s_out_forget_certificates();
    while (all_links) {
        link_t *l = all_links;
        all_links = l->next;
        free_link(l);
    }
    hashmap_free(&links_by_key);
    if (sweep_timer) {
        event_free(sweep_timer);
        sweep_timer = NULL;
    }
}
