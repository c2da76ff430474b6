/*
 * component.c — the jabber:component:accept stream (XEP-0114).
 *
 * Timeouts: a connection has limits.component_handshake_timeout from
 * accept until its handshake is accepted; once connected, a component
 * silent for half of limits.component_idle_timeout gets an XMPP ping
 * (XEP-0199 §4.3, answered by any component: a result or an error) and
 * is closed with connection-timeout if the other half passes in silence.
 */
#include "stream/component.h"

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "route/host.h"
#include "route/router.h"
#include "xmpp/conn.h"
#include "xmpp/stanza.h"

typedef struct component {
    conn_t *conn;
    char *domain; /* set once the header named a configured component */
    char *secret;
    char stream_id[STREAM_ID_LEN];
    int attached;
    struct event *handshake_timer; /* until the handshake is accepted */
    unsigned pings;                /* keepalive pings sent, for their ids */
} component_t;

static void send_header(conn_t *c)
{
    component_t *k = c->data;
    stream_id_new(k->stream_id);
    char buf[512];
    snprintf(buf, sizeof(buf),
             "<?xml version='1.0'?><stream:stream xmlns='" NS_COMPONENT "' xmlns:stream='" NS_STREAM
             "' id='%s'%s%s%s>",
             k->stream_id, k->domain ? " from='" : "", k->domain ? k->domain : "",
             k->domain ? "'" : "");
    conn_write_str(c, buf);
    c->header_sent = 1;
}

static const cfg_component_t *find_component(const char *domain)
{
    for (size_t i = 0; i < server.cfg->n_components; i++)
        if (strcmp(server.cfg->components[i].domain, domain) == 0)
            return &server.cfg->components[i];
    return NULL;
}

static void on_open(conn_t *c, const char *name, const char *ns, const char **attrs)
{
    component_t *k = c->data;
    const char *to = NULL;
    for (size_t i = 0; attrs[i]; i += 2)
        if (strcmp(attrs[i], "to") == 0)
            to = attrs[i + 1];
    if (!name || strcmp(name, "stream") != 0 || !ns || strcmp(ns, NS_STREAM) != 0) {
        conn_stream_error(c, "invalid-namespace", NULL);
        return;
    }
    char *domain = to ? tern_jid_prep_domain(to) : NULL;
    const cfg_component_t *cc = domain ? find_component(domain) : NULL;
    if (!cc) {
        free(domain);
        conn_stream_error(c, "host-unknown", NULL);
        return;
    }
    k->domain = domain;
    k->secret = strdup(cc->secret);
    if (!k->secret) {
        conn_stream_error(c, "internal-server-error", NULL);
        return;
    }
    send_header(c);
}

/* XEP-0114 §3: handshake = lowercase hex SHA-1(stream id + secret). */
static int handshake_ok(const component_t *k, const char *given)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) &&
             EVP_DigestUpdate(ctx, k->stream_id, strlen(k->stream_id)) &&
             EVP_DigestUpdate(ctx, k->secret, strlen(k->secret)) &&
             EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    size_t n = strlen(given);
    char lower[2 * EVP_MAX_MD_SIZE + 1];
    if (n != 2 * mdlen)
        return 0;
    for (size_t i = 0; i < n; i++)
        lower[i] = (char)(given[i] >= 'A' && given[i] <= 'F' ? given[i] + 32 : given[i]);
    return CRYPTO_memcmp(lower, hex, n) == 0;
}

static void deliver(void *ctx, tern_xml_t *stanza)
{
    component_t *k = ctx;
    conn_send(k->conn, stanza);
}

static void on_stanza(conn_t *c, tern_xml_t *st)
{
    component_t *k = c->data;
    if (!k->attached) {
        if (!k->secret || !tern_xml_is(st, "handshake", TERN_NS_CLIENT) ||
            !handshake_ok(k, tern_xml_text(st))) {
            log_info("component %s: handshake for %s refused", c->peer, k->domain);
            conn_stream_error(c, "not-authorized", NULL);
            return;
        }
        if (router_component_attach(k->domain, deliver, k) < 0) {
            conn_stream_error(c, "conflict", "another component serves this domain");
            return;
        }
        k->attached = 1;
        if (k->handshake_timer)
            evtimer_del(k->handshake_timer);
        conn_write_str(c, "<handshake/>");
        log_info("component %s: %s connected", c->peer, k->domain);
        return;
    }
    if (stanza_kind(st) == STANZA_OTHER) {
        conn_stream_error(c, "unsupported-stanza-type", NULL);
        return;
    }
    /* The router's rules for a component: it speaks for its own domain
     * (and subdomains) and addresses someone, or the stream ends. */
    const route_origin_t origin = {.kind = ROUTE_COMPONENT, .domain = k->domain};
    const char *refused = NULL;
    if (router_route_from(st, &origin, &refused) < 0 && refused)
        conn_stream_error(c, refused, NULL);
}

static void on_closing(conn_t *c)
{
    component_t *k = c->data;
    if (k->attached) {
        router_component_detach(k->domain, k);
        k->attached = 0;
        log_info("component %s: %s disconnected", c->peer, k->domain);
    }
}

/* Half the idle timeout in silence: ping a connected component, whose
 * answer (result or error) is input.  Before the handshake nothing: the
 * handshake timeout governs that time (and a space before our stream
 * header would not be XML). */
static void on_idle(conn_t *c)
{
    component_t *k = c->data;
    if (!k->attached)
        return;
    if (server.cfg->n_hosts == 0) {
        conn_write_str(c, " ");
        return;
    }
    char buf[2200]; /* two domains of at most 1023 bytes (RFC 7622 §3.2) */
    snprintf(buf, sizeof(buf),
             "<iq type='get' id='tern-keepalive-%u' from='%s' to='%s'>"
             "<ping xmlns='urn:xmpp:ping'/></iq>",
             ++k->pings, server.cfg->hosts[0].name, k->domain);
    conn_write_str(c, buf);
}

static void handshake_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    component_t *k = arg;
    log_info("component %s: no handshake within the handshake timeout", k->conn->peer);
    conn_stream_error(k->conn, "connection-timeout", NULL);
}

static void on_free(conn_t *c)
{
    component_t *k = c->data;
    on_closing(c);
    if (k->handshake_timer)
        event_free(k->handshake_timer);
    free(k->domain);
    if (k->secret)
        OPENSSL_cleanse(k->secret, strlen(k->secret));
    free(k->secret);
    free(k);
}

static const conn_ops_t component_ops = {.kind = "component",
                                         .on_open = on_open,
                                         .on_stanza = on_stanza,
                                         .on_idle = on_idle,
                                         .on_closing = on_closing,
                                         .send_header = send_header,
                                         .on_free = on_free};

void component_accept(evutil_socket_t fd, const char *peer)
{
    component_t *k = calloc(1, sizeof(*k));
    if (!k) {
        evutil_closesocket(fd);
        return;
    }
    xml_stream_limits_t limits = {
        .max_stanza_bytes = (size_t)server.cfg->max_stanza_size, .max_depth = 64, .max_attrs = 64};
    k->conn = conn_new(server.base, fd, peer, &component_ops, k, NULL, &limits,
                       server.cfg->component_idle_timeout_ms);
    if (!k->conn) {
        free(k);
        return;
    }
    k->conn->stream_ns = NS_COMPONENT;
    long long ms = server.cfg->component_handshake_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    k->handshake_timer = evtimer_new(server.base, handshake_timeout, k);
    if (!k->handshake_timer || evtimer_add(k->handshake_timer, &tv) < 0) {
        log_warn("component %s: out of memory", peer);
        conn_destroy(k->conn); /* frees k through on_free */
        return;
    }
    k->conn->never_held = 1; /* one slow client must not stall the service for all */
    log_info("component %s: new connection", peer);
}
