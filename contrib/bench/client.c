/*
 * client.c — one XMPP client connection of tern-bench.
 *
 * Owns the connection state machine of RFC 6120 from the TCP connect to
 * an online session: source-address bind, TCP_NODELAY, STARTTLS or
 * direct TLS (no certificate check: bench only), SASL SCRAM (scram.c),
 * resource binding, the legacy session iq when a server requires it, the
 * roster get and the initial presence.  Once online it answers pings and
 * roster pushes, refuses other requests, and hands every other stanza to
 * the scenario through the worker.  It must not know what a scenario
 * measures.  The bytes travel over link.c.
 */
#include "bench.h"
#include "scram.h"
#include "xmlscan.h"

#include <errno.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define NS_STREAM  "http://etherx.jabber.org/streams"
#define NS_TLS     "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL    "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND    "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"
#define NS_CLIENT  "jabber:client"
#define NS_ROSTER  "jabber:iq:roster"
#define NS_PING    "urn:xmpp:ping"

#define CLOSE_WAIT_S 2 /* seconds a graceful close may take */

static const link_ops_t link_ops;

void xml_escape(const char *s, char *buf, size_t size)
{
    size_t o = 0;
    for (; *s != '\0' && o + 7 < size; s++) {
        const char *e = NULL;
        switch (*s) {
        case '&':
            e = "&amp;";
            break;
        case '<':
            e = "&lt;";
            break;
        case '>':
            e = "&gt;";
            break;
        case '\'':
            e = "&apos;";
            break;
        case '"':
            e = "&quot;";
            break;
        default:
            buf[o++] = *s;
            continue;
        }
        size_t n = strlen(e);
        memcpy(buf + o, e, n);
        o += n;
    }
    buf[o] = '\0';
}

void client_bare_jid(const bench_opts_t *o, int idx, char *buf, size_t size)
{
    char name[BENCH_NAME_MAX];
    bench_user_name(o, idx, name, sizeof(name));
    snprintf(buf, size, "%s@%s", name, bench_user_domain(o, idx));
}

void client_send(client_t *c, const char *xml, size_t len)
{
    if (c->has_link && !c->dead)
        link_send(&c->link, xml, len);
}

void client_sendf(client_t *c, const char *fmt, ...)
{
    if (!c->has_link || c->dead)
        return;
    va_list ap;
    va_start(ap, fmt);
    link_vsendf(&c->link, fmt, ap);
    va_end(ap);
}

/* Free everything the connection holds; the struct stays (it lives in
 * the worker's array). */
static void teardown(client_t *c)
{
    client_free(c);
}

void client_free(client_t *c)
{
    if (c->has_link) {
        link_free(&c->link);
        c->has_link = 0;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->draining = 0;
    xscan_free(&c->xs);
    scram_free(&c->scram);
    if (c->timer != NULL) {
        event_free(c->timer);
        c->timer = NULL;
    }
    if (c->w->sc->client_free != NULL)
        c->w->sc->client_free(c);
    c->st = CS_CLOSED;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    client_t *c = arg;
    if (c->dead) {
        teardown(c);
        return;
    }
    /* Login timeout. */
    worker_client_failed(c->w, c, "login timed out");
    client_close(c, 0);
}

/* Free from the loop, not from under a link callback. */
static void teardown_soon(client_t *c)
{
    struct timeval now = {0, 0};
    if (c->timer != NULL)
        evtimer_add(c->timer, &now);
}

void client_close(client_t *c, int graceful)
{
    if (c->st == CS_CLOSED || c->dead)
        return;
    c->dead = 1;
    if (c->xs != NULL)
        xscan_stop(c->xs);
    if (c->timer == NULL)
        c->timer = evtimer_new(c->w->base, on_timer, c);
    else
        evtimer_del(c->timer);
    struct timeval tv = {0, 0};
    if (graceful && c->has_link && !c->link.failed && c->st >= CS_FEATURES_PLAIN &&
        c->st != CS_TLS) {
        link_stop_reading(&c->link);
        link_send(&c->link, "</stream:stream>", 16);
        c->draining = 1;
        tv.tv_sec = CLOSE_WAIT_S; /* on_drained makes it sooner */
    } else if (c->has_link) {
        link_abort(&c->link);
    }
    if (c->timer != NULL)
        evtimer_add(c->timer, &tv);
    else
        teardown(c);
}

/* A failure before the session was online counts as a failed login; after,
 * as a lost connection. */
static void fail(client_t *c, const char *why)
{
    if (c->dead)
        return;
    if (c->st == CS_ONLINE)
        worker_client_lost(c->w, c, why);
    else
        worker_client_failed(c->w, c, why);
    client_close(c, 0);
}

static void open_stream(client_t *c)
{
    client_sendf(c,
                 "<?xml version='1.0'?><stream:stream xmlns='" NS_CLIENT
                 "' xmlns:stream='" NS_STREAM "' to='%s' version='1.0' xml:lang='en'>",
                 bench_user_domain(c->w->o, c->idx));
}

static int start_tls(client_t *c)
{
    worker_t *w = c->w;
    SSL *ssl = SSL_new(w->ssl_ctx);
    if (ssl == NULL)
        return -1;
    SSL_set_tlsext_host_name(ssl, bench_user_domain(w->o, c->idx));
    if (w->o->direct_tls) {
        static const unsigned char alpn[] = "\x0bxmpp-client"; /* XEP-0368 */
        SSL_set_alpn_protos(ssl, alpn, sizeof(alpn) - 1);
    }
    c->tls = 1;
    c->st = CS_TLS;
    if (link_start_tls(&c->link, ssl) < 0) {
        SSL_free(ssl);
        return -1;
    }
    return 0;
}

static void send_iq_roster(client_t *c)
{
    client_sendf(c, "<iq type='get' id='r'><query xmlns='" NS_ROSTER "'/></iq>");
    c->st = CS_ROSTER;
}

static const char *mech_name(const bench_opts_t *o, const xnode_t *mechs)
{
    int sha1 = 0, sha256 = 0;
    for (const xnode_t *m = mechs->child; m != NULL; m = m->next) {
        if (!xn_is(m, NS_SASL, "mechanism") || m->text == NULL)
            continue;
        if (strcmp(m->text, "SCRAM-SHA-1") == 0)
            sha1 = 1;
        else if (strcmp(m->text, "SCRAM-SHA-256") == 0)
            sha256 = 1;
    }
    switch (o->mech) {
    case MECH_SHA1:
        return sha1 ? "SCRAM-SHA-1" : NULL;
    case MECH_SHA256:
        return sha256 ? "SCRAM-SHA-256" : NULL;
    default:
        return sha256 ? "SCRAM-SHA-256" : sha1 ? "SCRAM-SHA-1" : NULL;
    }
}

static void start_auth(client_t *c, const xnode_t *features)
{
    const xnode_t *mechs = xn_child(features, NS_SASL, "mechanisms");
    const char *mech = mechs != NULL ? mech_name(c->w->o, mechs) : NULL;
    if (mech == NULL) {
        fail(c, "the server offers none of the SCRAM mechanisms asked for");
        return;
    }
    char user[BENCH_NAME_MAX];
    bench_user_name(c->w->o, c->idx, user, sizeof(user));
    c->scram = scram_new(mech);
    char *first = c->scram != NULL ? scram_client_first(c->scram, user) : NULL;
    if (first == NULL) {
        fail(c, "cannot start SCRAM");
        return;
    }
    client_sendf(c, "<auth xmlns='" NS_SASL "' mechanism='%s'>%s</auth>", mech, first);
    W_INC(c->w, strcmp(mech, "SCRAM-SHA-1") == 0 ? C_MECH_SHA1 : C_MECH_SHA256);
    free(first);
    c->st = CS_AUTH;
}

static void on_auth(client_t *c, xnode_t *el)
{
    const char *why = NULL;
    const char *text = el->text != NULL ? el->text : "";
    if (xn_is(el, NS_SASL, "challenge")) {
        if (c->sasl_answered) { /* second challenge: the server-final message */
            if (scram_check_server(c->scram, text, &why) < 0) {
                fail(c, why);
                return;
            }
            c->sasl_verified = 1;
            client_sendf(c, "<response xmlns='" NS_SASL "'/>");
            return;
        }
        char pw[BENCH_NAME_MAX];
        bench_user_password(c->w->o, c->idx, pw, sizeof(pw));
        char *final = scram_client_final(c->scram, pw, text, &why);
        if (final == NULL) {
            fail(c, why);
            return;
        }
        client_sendf(c, "<response xmlns='" NS_SASL "'>%s</response>", final);
        free(final);
        c->sasl_answered = 1;
    } else if (xn_is(el, NS_SASL, "success")) {
        if (text[0] != '\0') {
            if (scram_check_server(c->scram, text, &why) < 0) {
                fail(c, why);
                return;
            }
        } else if (!c->sasl_verified) {
            fail(c, "success without the server's signature");
            return;
        }
        scram_free(&c->scram);
        xscan_restart(c->xs);
        open_stream(c);
        c->st = CS_FEATURES_AUTH;
    } else if (xn_is(el, NS_SASL, "failure")) {
        const char *cond = el->child != NULL ? xn_local(el->child) : "unknown";
        char why_buf[128];
        snprintf(why_buf, sizeof(why_buf), "authentication failed (%s)", cond);
        fail(c, why_buf);
    }
}

/* Answer the requests of the server once online (RFC 6120 §8.2.3: every
 * get and set gets an answer). */
static void on_online_iq(client_t *c, xnode_t *el, const char *type)
{
    const char *id = xn_attr(el, "id");
    const char *from = xn_attr(el, "from");
    char eid[256], efrom[512];
    xml_escape(id != NULL ? id : "", eid, sizeof(eid));
    xml_escape(from != NULL ? from : "", efrom, sizeof(efrom));
    int is_ping = el->child != NULL && xn_is(el->child, NS_PING, "ping");
    int is_push =
        strcmp(type, "set") == 0 && el->child != NULL && xn_is(el->child, NS_ROSTER, "query");
    if (is_ping || is_push) {
        if (from != NULL)
            client_sendf(c, "<iq type='result' id='%s' to='%s'/>", eid, efrom);
        else
            client_sendf(c, "<iq type='result' id='%s'/>", eid);
        if (is_push)
            worker_stanza(c->w, c, el);
        return;
    }
    client_sendf(c,
                 "<iq type='error' id='%s'%s%s%s><error type='cancel'><service-unavailable "
                 "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
                 eid, from != NULL ? " to='" : "", from != NULL ? efrom : "",
                 from != NULL ? "'" : "");
}

/* TERN_BENCH_TRACE=1: each element received before the session is
 * online, with the time since connect (for finding slow login steps). */
static void trace(const client_t *c, const xnode_t *el)
{
    static int on = -1;
    if (on < 0)
        on = getenv("TERN_BENCH_TRACE") != NULL;
    if (on)
        fprintf(stderr, "trace %d %.3fms state %d %s\n", c->idx,
                (double)(now_ns() - c->t_start) / 1e6, (int)c->st, el->name);
}

static void on_element(void *ud, xnode_t *el)
{
    client_t *c = ud;
    if (c->dead)
        return;
    if (c->st != CS_ONLINE)
        trace(c, el);
    if (xn_is(el, NS_STREAM, "error")) {
        char why[160];
        snprintf(why, sizeof(why), "stream error (%s)",
                 el->child != NULL ? xn_local(el->child) : "unknown");
        fail(c, why);
        return;
    }
    switch (c->st) {
    case CS_FEATURES_PLAIN:
        if (!xn_is(el, NS_STREAM, "features"))
            return;
        if (xn_child(el, NS_TLS, "starttls") == NULL) {
            fail(c, "the server offers no STARTTLS");
            return;
        }
        client_sendf(c, "<starttls xmlns='" NS_TLS "'/>");
        c->st = CS_STARTTLS;
        return;
    case CS_STARTTLS:
        if (xn_is(el, NS_TLS, "proceed")) {
            xscan_restart(c->xs);
            if (start_tls(c) < 0)
                fail(c, "cannot start TLS");
        } else {
            fail(c, "STARTTLS refused");
        }
        return;
    case CS_FEATURES_TLS:
        if (xn_is(el, NS_STREAM, "features"))
            start_auth(c, el);
        return;
    case CS_AUTH:
        on_auth(c, el);
        return;
    case CS_FEATURES_AUTH:
        if (!xn_is(el, NS_STREAM, "features"))
            return;
        if (xn_child(el, NS_BIND, "bind") == NULL) {
            fail(c, "the server offers no resource binding");
            return;
        }
        /* RFC 3921 §3: only when the server does not mark it optional. */
        const xnode_t *sess = xn_child(el, NS_SESSION, "session");
        c->need_session = sess != NULL && xn_child(sess, NS_SESSION, "optional") == NULL;
        char res[BENCH_NAME_MAX];
        xml_escape(c->w->o->resource, res, sizeof(res));
        client_sendf(c,
                     "<iq type='set' id='b'><bind xmlns='" NS_BIND
                     "'><resource>%s</resource></bind></iq>",
                     res);
        c->st = CS_BIND;
        return;
    case CS_BIND:
    case CS_SESSION:
    case CS_ROSTER: {
        if (!xn_is(el, NS_CLIENT, "iq"))
            return;
        const char *type = xn_attr(el, "type");
        const char *id = xn_attr(el, "id");
        if (type == NULL || id == NULL || (strcmp(type, "result") != 0 && strcmp(type, "error")))
            return;
        if (strcmp(type, "error") == 0) {
            fail(c, c->st == CS_BIND      ? "resource binding failed"
                    : c->st == CS_SESSION ? "session establishment failed"
                                          : "roster get failed");
            return;
        }
        if (c->st == CS_BIND && strcmp(id, "b") == 0) {
            if (c->need_session) {
                client_sendf(c, "<iq type='set' id='s'><session xmlns='" NS_SESSION "'/></iq>");
                c->st = CS_SESSION;
            } else {
                send_iq_roster(c);
            }
        } else if (c->st == CS_SESSION && strcmp(id, "s") == 0) {
            send_iq_roster(c);
        } else if (c->st == CS_ROSTER && strcmp(id, "r") == 0) {
            client_sendf(c, "<presence/>");
            c->available = 1;
            c->st = CS_ONLINE;
            if (c->timer != NULL)
                evtimer_del(c->timer);
            worker_client_online(c->w, c);
            if (!c->dead && c->w->sc->online != NULL)
                c->w->sc->online(c->w, c, el);
        }
        return;
    }
    case CS_ONLINE: {
        const char *type = xn_attr(el, "type");
        if (type != NULL && strcmp(type, "error") == 0)
            W_INC(c->w, C_STANZA_ERRORS);
        if (xn_is(el, NS_CLIENT, "iq") && type != NULL &&
            (strcmp(type, "get") == 0 || strcmp(type, "set") == 0)) {
            on_online_iq(c, el, type);
            return;
        }
        worker_stanza(c->w, c, el);
        return;
    }
    default:
        return;
    }
}

static void on_stream_end(void *ud)
{
    fail(ud, "the server closed the stream");
}

static const xscan_cbs_t scan_cbs = {.header = NULL, .element = on_element, .end = on_stream_end};

static void on_link_data(void *ctx, const char *data, size_t len)
{
    client_t *c = ctx;
    if (c->dead)
        return;
    const char *why = NULL;
    if (xscan_feed(c->xs, data, len, &why) < 0) {
        char buf[160];
        snprintf(buf, sizeof(buf), "XML from the server: %s", why);
        fail(c, buf);
    }
}

static void on_link_connected(void *ctx)
{
    client_t *c = ctx;
    if (c->dead)
        return;
    if (c->st == CS_CONNECTING) {
        if (c->w->o->direct_tls) {
            if (start_tls(c) < 0)
                fail(c, "cannot start TLS");
            return;
        }
        open_stream(c);
        c->st = CS_FEATURES_PLAIN;
    } else if (c->st == CS_TLS) {
        open_stream(c);
        c->st = CS_FEATURES_TLS;
    }
}

static void on_link_error(void *ctx, const char *why)
{
    client_t *c = ctx;
    if (c->dead)
        teardown_soon(c); /* it was closing anyway */
    else
        fail(c, why);
}

static void on_link_drained(void *ctx)
{
    client_t *c = ctx;
    if (c->draining)
        teardown_soon(c);
}

static const link_ops_t link_ops = {.on_connected = on_link_connected,
                                    .on_data = on_link_data,
                                    .on_error = on_link_error,
                                    .on_drained = on_link_drained};

void client_start(client_t *c)
{
    worker_t *w = c->w;
    const bench_opts_t *o = w->o;
    c->t_start = now_ns();
    c->fd = -1;
    W_INC(w, C_CONN_STARTED);
    int site2 = bench_site(o, c->idx) == 1;
    const struct sockaddr_storage *addr = site2 ? &bench_server2_addr : &bench_server_addr;
    socklen_t addr_len = site2 ? bench_server2_addr_len : bench_server_addr_len;
    c->timer = evtimer_new(w->base, on_timer, c);
    c->xs = xscan_new(&scan_cbs, c);
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || c->timer == NULL || c->xs == NULL) {
        char why[160];
        snprintf(why, sizeof(why), "socket: %s", fd < 0 ? strerror(errno) : "out of memory");
        if (fd >= 0)
            close(fd);
        worker_client_failed(w, c, why);
        client_close(c, 0);
        return;
    }
    c->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (o->src_first != 0 && addr->ss_family == AF_INET) {
        /* Round robin over the source addresses; the port is chosen at
         * connect() so that each address has its own 64k ports per
         * destination. */
#ifdef IP_BIND_ADDRESS_NO_PORT
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
        uint32_t span = o->src_last - o->src_first + 1;
        struct sockaddr_in src;
        memset(&src, 0, sizeof(src));
        src.sin_family = AF_INET;
        src.sin_addr.s_addr = htonl(o->src_first + (uint32_t)c->idx % span);
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
            char why[160];
            snprintf(why, sizeof(why), "bind to the source address: %s", strerror(errno));
            worker_client_failed(w, c, why);
            client_close(c, 0);
            return;
        }
    }
    c->st = CS_CONNECTING;
    struct timeval tv = {
        (time_t)o->login_timeout,
        (suseconds_t)((o->login_timeout - (double)(time_t)o->login_timeout) * 1e6)};
    evtimer_add(c->timer, &tv);
    c->has_link = 1;
    if (link_connect(&c->link, w->base, fd, (const struct sockaddr *)addr, addr_len, &link_ops, c) <
        0) {
        char why[160];
        snprintf(why, sizeof(why), "connect: %s", strerror(errno));
        fail(c, why);
    }
}
