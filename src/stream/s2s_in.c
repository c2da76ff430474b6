/*
 * s2s_in.c — streams other servers open to us (RFC 6120 between servers).
 *
 *   header -> features (STARTTLS) -> TLS -> header -> features (SASL
 *   EXTERNAL when the peer sent a certificate, dialback) -> EXTERNAL ->
 *   header -> features, or db:result per domain pair -> stanzas
 *
 * Owns: the negotiation of incoming streams, the domains each stream
 * authenticated (EXTERNAL, XEP-0178: one; Server Dialback, XEP-0220: any
 * number of pairs, piggybacked), the answers we give as an authoritative
 * server (db:verify), and the checks of every stanza a peer sends before
 * the router sees it: 'from' at a domain authenticated on this stream,
 * 'to' at a domain we serve (router_rule, ROUTE_PEER); nothing is relayed.
 * The key of a db:result is checked with the peer's authoritative server
 * over an outgoing stream (s2s_out_verify), whose answer comes back
 * through s2s_in_verified().  A peer that asks for a bidirectional
 * stream (XEP-0288) gets our stanzas for the pairs it authenticated on it
 * (s2s_out_bidi_attach).  Must not: route a stanza before its sender
 * authenticated, or echo a peer's text without checking it.
 */
#include "stream/s2s_int.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <tern/base64.h>

#include "util/log.h"
#include "route/domains.h"
#include "route/host.h"
#include "route/router.h"
#include "xmpp/conn.h"
#include "xmpp/flow.h"
#include "xmpp/stanza.h"
#include "stream/dialback.h"
#include "stream/limits.h"

/* A domain pair of Server Dialback on this stream. */
typedef struct in_pair {
    struct in_pair *next;
    char *orig; /* the peer's domain */
    char *recv; /* ours */
    int valid;  /* 0 while its key is being checked */
} in_pair_t;

typedef struct s2s_in {
    struct s2s_in *prev, *next;
    conn_t *conn;
    int tls;
    char *local;       /* the stream's 'to': one of our domains */
    char *from;        /* the stream's 'from', prepared, or NULL */
    char *sasl_domain; /* authenticated with SASL EXTERNAL ... */
    char *sasl_local;  /* ... towards this domain of ours (the stream's 'to' then) */
    int bidi;          /* XEP-0288: asked to carry our stanzas too */
    int bidi_pending;  /* ... from the restarted stream on (after SASL) */
    in_pair_t *pairs;
    char stream_id[STREAM_ID_LEN];
    long long rate_tokens, rate_at_ms;
    struct event *rate_timer;
    struct event *auth_timer; /* until a first domain is authenticated */
} s2s_in_t;

static s2s_in_t *all_in;

static int plain_dialback_ok(void)
{
    return server.cfg->s2s.dialback_without_tls && !server.cfg->s2s.require_encryption;
}

static void send_header(conn_t *c)
{
    s2s_in_t *s = c->data;
    stream_id_new(s->stream_id);
    char buf[2400];
    snprintf(buf, sizeof(buf),
             "<?xml version='1.0'?><stream:stream xmlns='" NS_SERVER "' xmlns:db='" NS_DIALBACK
             "' xmlns:stream='" NS_STREAM "' id='%s'%s%s%s%s%s%s version='1.0'>",
             s->stream_id, s->local ? " from='" : "", s->local ? s->local : "", s->local ? "'" : "",
             s->from ? " to='" : "", s->from ? s->from : "", s->from ? "'" : "");
    conn_write_str(c, buf);
    c->header_sent = 1;
}

static void send_features(s2s_in_t *s)
{
    struct evbuffer *out = evbuffer_new();
    if (!out)
        return;
    const tern_config_t *cfg = server.cfg;
    evbuffer_add_printf(out, "<stream:features>");
    if (!s->tls && server.tls)
        evbuffer_add_printf(out, "<starttls xmlns='" NS_TLS "'>%s</starttls>",
                            plain_dialback_ok() ? "" : "<required/>");
    if (s->tls && !s->sasl_domain && SSL_get0_peer_certificate(conn_ssl(s->conn)))
        evbuffer_add_printf(out, "<mechanisms xmlns='" NS_SASL
                                 "'><mechanism>EXTERNAL</mechanism></mechanisms>");
    if (s->tls || plain_dialback_ok())
        evbuffer_add_printf(out, "<dialback xmlns='" NS_DIALBACK_FEAT "'><errors/></dialback>");
    evbuffer_add_printf(out, "<bidi xmlns='" NS_BIDI_FEAT "'/>"); /* XEP-0288 §2.1 */
    (void)cfg;
    evbuffer_add_printf(out, "</stream:features>");
    size_t len = evbuffer_get_length(out);
    conn_write(s->conn, (const char *)evbuffer_pullup(out, -1), len);
    evbuffer_free(out);
}

/* RFC 6120 §4.7: the peer's stream header. */
static void on_open(conn_t *c, const char *name, const char *ns, const char **attrs)
{
    s2s_in_t *s = c->data;
    const char *to = NULL, *from = NULL, *version = NULL;
    for (size_t i = 0; attrs[i]; i += 2) {
        if (strcmp(attrs[i], "to") == 0)
            to = attrs[i + 1];
        else if (strcmp(attrs[i], "from") == 0)
            from = attrs[i + 1];
        else if (strcmp(attrs[i], "version") == 0)
            version = attrs[i + 1];
    }
    if (!name || strcmp(name, "stream") != 0 || !ns || strcmp(ns, NS_STREAM) != 0) {
        conn_stream_error(c, "invalid-namespace", NULL);
        return;
    }
    if (!to && conn_ssl(c))
        to = tls_sni(conn_ssl(c));
    char *local = to ? tern_jid_prep_domain(to) : NULL;
    if (!local || !domains_is_ours(local)) {
        free(local);
        conn_stream_error(c, to ? "host-unknown" : "improper-addressing", NULL); /* §4.9.3.6 */
        return;
    }
    free(s->local);
    s->local = local;
    if (from) {
        char *f = tern_jid_prep_domain(from);
        if (!f) {
            conn_stream_error(c, "invalid-from", NULL);
            return;
        }
        free(s->from);
        s->from = f;
    }
    if (!version || strtol(version, NULL, 10) != 1) {
        conn_stream_error(c, "unsupported-version", NULL);
        return;
    }
    send_header(c);
    send_features(s);
    if (s->bidi_pending && s->sasl_domain) { /* the stream restarted after SASL */
        s->bidi_pending = 0;
        s2s_out_bidi_attach(s->sasl_local, s->sasl_domain, s->conn);
    }
}

static int authenticated(const s2s_in_t *s, const char *domain)
{
    if (s->sasl_domain && strcmp(s->sasl_domain, domain) == 0)
        return 1;
    for (const in_pair_t *p = s->pairs; p; p = p->next)
        if (p->valid && strcmp(p->orig, domain) == 0)
            return 1;
    return 0;
}

/* RFC 6120 §4.9.3.9 and XEP-0220 §2.6: a stanza from the peer is taken
 * only for a domain pair authenticated on this stream: EXTERNAL's (its
 * identity towards the stream's 'to' at the time), or a db:result pair
 * found valid. */
static int pair_authenticated(const s2s_in_t *s, const char *from, const char *to)
{
    if (s->sasl_domain && strcmp(s->sasl_domain, from) == 0 && strcmp(s->sasl_local, to) == 0)
        return 1;
    for (const in_pair_t *p = s->pairs; p; p = p->next)
        if (p->valid && strcmp(p->orig, from) == 0 && strcmp(p->recv, to) == 0)
            return 1;
    return s->bidi && s2s_out_rides(s->conn, to, from); /* XEP-0288: a pair of ours, inverted */
}

static int any_authenticated(const s2s_in_t *s)
{
    if (s->sasl_domain)
        return 1;
    for (const in_pair_t *p = s->pairs; p; p = p->next)
        if (p->valid)
            return 1;
    return 0;
}

static void got_authenticated(s2s_in_t *s)
{
    if (s->auth_timer)
        evtimer_del(s->auth_timer);
}

static void handle_starttls(s2s_in_t *s)
{
    SSL *ssl = s->tls || !server.tls ? NULL : tls_server_ssl(server.tls, NULL);
    if (!ssl) {
        conn_write_str(s->conn, "<failure xmlns='" NS_TLS "'/></stream:stream>");
        conn_close(s->conn);
        return;
    }
    tls_request_peer_cert(ssl); /* for SASL EXTERNAL (XEP-0178) */
    conn_write_str(s->conn, "<proceed xmlns='" NS_TLS "'/>");
    s->tls = 1;
    conn_starttls(s->conn, ssl);
}

static void sasl_failure(s2s_in_t *s, const char *condition)
{
    char buf[200];
    snprintf(buf, sizeof(buf), "<failure xmlns='" NS_SASL "'><%s/></failure>", condition);
    conn_write_str(s->conn, buf);
}

/* XEP-0178: SASL EXTERNAL with the certificate of the TLS layer. */
static void handle_sasl(s2s_in_t *s, tern_xml_t *el)
{
    const char *mech = tern_xml_attr(el, "mechanism");
    if (strcmp(el->name, "auth") != 0 || !s->tls || s->sasl_domain || !mech ||
        strcmp(mech, "EXTERNAL") != 0) {
        sasl_failure(s, strcmp(el->name, "abort") == 0 ? "aborted" : "invalid-mechanism");
        return;
    }
    const char *text = tern_xml_text(el);
    char *authzid = NULL;
    if (text && *text && strcmp(text, "=") != 0) {
        size_t n = 0;
        unsigned char *raw = tern_base64_decode(text, strlen(text), 0, &n);
        if (!raw || n == 0 || memchr(raw, 0, n)) {
            free(raw);
            sasl_failure(s, "incorrect-encoding");
            return;
        }
        char *z = malloc(n + 1);
        if (z) {
            memcpy(z, raw, n);
            z[n] = 0;
            authzid = tern_jid_prep_domain(z);
            free(z);
        }
        free(raw);
        if (!authzid || (s->from && strcmp(authzid, s->from) != 0)) {
            free(authzid);
            sasl_failure(s, "invalid-authzid");
            return;
        }
    }
    const char *identity = authzid ? authzid : s->from;
    if (!identity) {
        sasl_failure(s, "invalid-authzid");
        return;
    }
    if (!s2s_allowed(identity) || domains_is_ours(identity)) {
        log_info("s2s-in %s: %s may not federate with us (%s)", s->conn->peer, identity,
                 domains_is_ours(identity) ? "it is one of our own domains" : "s2s.allow/deny");
        sasl_failure(s, "not-authorized");
        free(authzid);
        return;
    }
    tls_verify_t v = tls_peer_verify(s2s.trust, conn_ssl(s->conn), identity);
    if (v != TLS_VERIFY_OK) {
        log_info("s2s-in %s: SASL EXTERNAL for %s refused: certificate %s", s->conn->peer, identity,
                 s2s_verify_words(v));
        sasl_failure(s, "not-authorized");
        free(authzid);
        return;
    }
    s->sasl_domain = strdup(identity);
    s->sasl_local = strdup(s->local);
    free(authzid);
    if (!s->sasl_domain || !s->sasl_local) {
        conn_stream_error(s->conn, "internal-server-error", NULL);
        return;
    }
    log_info("s2s-in %s: %s authenticated with SASL EXTERNAL%s", s->conn->peer, s->sasl_domain,
             s->bidi ? ", bidirectional" : "");
    got_authenticated(s);
    /* XEP-0288 §2.2: our stanzas may go on this stream, but only once the
     * restarted stream has its header, never before <success/> nor
     * between it and the peer's new header (the peer would read them as
     * the root of its new document). */
    s->bidi_pending = s->bidi;
    conn_write_str(s->conn, "<success xmlns='" NS_SASL "'/>");
    conn_restart_stream(s->conn); /* RFC 6120 §6.4.6 */
}

/* <db:result/> answer for pair (orig, recv): valid, invalid, or an
 * error with `condition` (XEP-0220 §2.4). */
static void db_answer(s2s_in_t *s, const char *element, const char *from, const char *to,
                      const char *id, const char *type, const char *condition)
{
    char buf[2600];
    int n = snprintf(buf, sizeof(buf), "<db:%s from='%s' to='%s'%s%s%s type='%s'", element, from,
                     to, id ? " id='" : "", id ? id : "", id ? "'" : "", type);
    if (n < 0 || (size_t)n >= sizeof(buf))
        return;
    if (condition)
        snprintf(buf + n, sizeof(buf) - (size_t)n,
                 "><error type='cancel'><%s xmlns='" NS_STANZAS "'/></error></db:%s>", condition,
                 element);
    else
        snprintf(buf + n, sizeof(buf) - (size_t)n, "/>");
    conn_write_str(s->conn, buf);
}

static in_pair_t *find_pair(s2s_in_t *s, const char *orig, const char *recv)
{
    for (in_pair_t *p = s->pairs; p; p = p->next)
        if (strcmp(p->orig, orig) == 0 && strcmp(p->recv, recv) == 0)
            return p;
    return NULL;
}

static void drop_pair(s2s_in_t *s, in_pair_t *gone)
{
    for (in_pair_t **pp = &s->pairs; *pp; pp = &(*pp)->next)
        if (*pp == gone) {
            *pp = gone->next;
            free(gone->orig);
            free(gone->recv);
            free(gone);
            return;
        }
}

/* Pair `p` of `s` is authenticated: say so, and with bidi our stanzas for
 * the inverse pair may go on this stream (XEP-0288 §2.2). */
static void pair_valid(s2s_in_t *s, in_pair_t *p)
{
    p->valid = 1;
    log_info("s2s-in %s: %s authenticated with dialback (to %s)%s", s->conn->peer, p->orig, p->recv,
             s->bidi ? ", bidirectional" : "");
    got_authenticated(s);
    db_answer(s, "result", p->recv, p->orig, NULL, "valid", NULL);
    if (s->bidi)
        s2s_out_bidi_attach(p->recv, p->orig, s->conn);
}

/* XEP-0220 §2.1.2: the peer (originating server) claims `from` towards
 * our `to` with a key; its authoritative server tells us whether the key
 * is right. */
static void handle_db_result(s2s_in_t *s, tern_xml_t *el)
{
    const char *type = tern_xml_attr(el, "type");
    if (type) { /* the answer to a pair of ours we sent on this stream (bidi) */
        if (!s->bidi || !s2s_out_rider_answer(s->conn, el, type))
            log_debug("s2s-in %s: unexpected dialback answer", s->conn->peer);
        return;
    }
    char *orig = tern_xml_attr(el, "from") ? tern_jid_prep_domain(tern_xml_attr(el, "from")) : NULL;
    char *recv = tern_xml_attr(el, "to") ? tern_jid_prep_domain(tern_xml_attr(el, "to")) : NULL;
    const char *key = tern_xml_text(el);
    if (!orig || !recv) {
        conn_stream_error(s->conn, "improper-addressing", NULL);
        goto out;
    }
    if (!domains_is_ours(recv)) {
        db_answer(s, "result", recv, orig, NULL, "error", "item-not-found");
        goto out;
    }
    if (!s2s_allowed(orig) || domains_is_ours(orig)) {
        log_info("s2s-in %s: %s may not federate with us (%s)", s->conn->peer, orig,
                 domains_is_ours(orig) ? "it is one of our own domains" : "s2s.allow/deny");
        db_answer(s, "result", recv, orig, NULL, "error", "forbidden");
        goto out;
    }
    tls_verify_t v =
        s->tls ? tls_peer_verify(s2s.trust, conn_ssl(s->conn), orig) : TLS_VERIFY_NO_CERT;
    if (!s2s_dialback_allowed(orig, v)) {
        log_info("s2s-in %s: dialback for %s refused: certificate %s and the domain is not in "
                 "s2s.dialback_only",
                 s->conn->peer, orig, s2s_verify_words(v));
        db_answer(s, "result", recv, orig, NULL, "error", "not-authorized");
        goto out;
    }
    in_pair_t *p = find_pair(s, orig, recv);
    if (p && p->valid) {
        db_answer(s, "result", recv, orig, NULL, "valid", NULL);
        goto out;
    }
    if (p)
        goto out; /* already being checked */
    if (s->sasl_domain && v == TLS_VERIFY_OK) {
        /* XEP-0344 §2.4: on a stream authenticated with EXTERNAL, the same
         * certificate also names `orig`: that proves it without asking. */
        p = calloc(1, sizeof(*p));
        if (!p) {
            conn_stream_error(s->conn, "resource-constraint", NULL);
            goto out;
        }
        p->orig = orig;
        p->recv = recv;
        orig = recv = NULL;
        p->next = s->pairs;
        s->pairs = p;
        pair_valid(s, p);
        goto out;
    }
    if (!s2s_token_ok(key)) {
        log_info("s2s-in %s: malformed dialback key from %s", s->conn->peer, orig);
        db_answer(s, "result", recv, orig, NULL, "invalid", NULL);
        goto out;
    }
    p = calloc(1, sizeof(*p));
    if (!p) {
        conn_stream_error(s->conn, "resource-constraint", NULL);
        goto out;
    }
    p->orig = orig;
    p->recv = recv;
    orig = recv = NULL;
    p->next = s->pairs;
    s->pairs = p;
    log_debug("s2s-in %s: checking the dialback key of %s -> %s", s->conn->peer, p->orig, p->recv);
    s2s_out_verify(p->recv, p->orig, s->stream_id, key);
out:
    free(orig);
    free(recv);
}

void s2s_in_verified(const char *in_id, const char *orig, const char *recv, const char *type,
                     const char *condition)
{
    s2s_in_t *s = all_in;
    in_pair_t *p = NULL;
    for (; s; s = s->next)
        if (strcmp(s->stream_id, in_id) == 0 && !s->conn->closing &&
            (p = find_pair(s, orig, recv)) && !p->valid)
            break;
    if (!s) { /* a pair the peer asked for on our own (bidi) stream? */
        s2s_out_peer_verified(in_id, orig, recv, type, condition);
        return;
    }
    if (strcmp(type, "valid") == 0) {
        pair_valid(s, p);
        return;
    }
    log_info("s2s-in %s: dialback for %s refused: %s", s->conn->peer, orig,
             condition ? condition : "its authoritative server says the key is invalid");
    drop_pair(s, p);
    if (condition)
        db_answer(s, "result", recv, orig, NULL, "error", condition);
    else
        db_answer(s, "result", recv, orig, NULL, "invalid", NULL);
}

/* XEP-0220 §2.2: we are the authoritative server of `to`: is `key` the
 * key we would give for (from, to, id)? */
static void handle_db_verify(s2s_in_t *s, tern_xml_t *el)
{
    char *recv = tern_xml_attr(el, "from") ? tern_jid_prep_domain(tern_xml_attr(el, "from")) : NULL;
    char *orig = tern_xml_attr(el, "to") ? tern_jid_prep_domain(tern_xml_attr(el, "to")) : NULL;
    const char *id = tern_xml_attr(el, "id");
    if (!recv || !orig || !s2s_token_ok(id)) {
        conn_stream_error(s->conn, "improper-addressing", NULL);
    } else if (!domains_is_ours(orig)) {
        db_answer(s, "verify", orig, recv, id, "error", "item-not-found");
    } else {
        int ok = s2s_key_ok(recv, orig, id, tern_xml_text(el));
        log_debug("s2s-in %s: dialback key for %s -> %s is %s", s->conn->peer, orig, recv,
                  ok ? "valid" : "invalid");
        db_answer(s, "verify", orig, recv, id, ok ? "valid" : "invalid", NULL);
    }
    free(recv);
    free(orig);
}

static void rate_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s2s_in_t *s = arg;
    conn_input_release(s->conn);
}

/* The peer's stanzas count against the same rate as a client's. */
static void charge_stanza(s2s_in_t *s)
{
    long long wait =
        limits_bucket_take(&s->rate_tokens, &s->rate_at_ms, server.cfg->max_stanzas_per_second,
                           server.cfg->stanza_burst, s2s_now_ms());
    if (wait <= 0 || !s->rate_timer)
        return;
    struct timeval w = {wait / 1000, (wait % 1000) * 1000};
    conn_input_hold(s->conn);
    evtimer_add(s->rate_timer, &w);
}

/* RFC 6120 §8.1.2.2, §4.9.3.9, §4.9.3.6: from an authenticated domain,
 * to one of ours, or the stream ends. */
static void handle_stanza(s2s_in_t *s, tern_xml_t *st)
{
    if (!any_authenticated(s)) {
        conn_stream_error(s->conn, "not-authorized", NULL); /* RFC 6120 §6.4.2 */
        return;
    }
    charge_stanza(s);
    const char *from = tern_xml_attr(st, "from");
    tern_jid_t *fj = from ? tern_jid_new(from, NULL) : NULL;
    if (!fj || !tern_xml_attr(st, "to")) {
        tern_jid_free(&fj);
        conn_stream_error(s->conn, "improper-addressing", NULL);
        return;
    }
    if (!authenticated(s, fj->domain)) {
        log_info("s2s-in %s: stanza from %s, a domain not authenticated on this stream",
                 s->conn->peer, fj->domain);
        tern_jid_free(&fj);
        conn_stream_error(s->conn, "invalid-from", NULL);
        return;
    }
    tern_jid_t *tj = tern_jid_new(tern_xml_attr(st, "to"), NULL);
    if (tj && !pair_authenticated(s, fj->domain, tj->domain)) {
        /* RFC 6120 §4.9.3.6: this stream does not serve that domain for
         * the sender (host-unknown; improper-addressing, §4.9.3.7, is for
         * missing or malformed addresses). */
        log_info("s2s-in %s: stanza from %s to %s, a domain pair not authenticated on this "
                 "stream",
                 s->conn->peer, fj->domain, tj->domain);
        tern_jid_free(&fj);
        tern_jid_free(&tj);
        conn_stream_error(s->conn, "host-unknown", NULL);
        return;
    }
    tern_jid_free(&tj);
    const route_origin_t origin = {.kind = ROUTE_PEER, .domain = fj->domain};
    const char *refused = NULL;
    if (router_route_from(st, &origin, &refused) < 0 && refused) {
        log_info("s2s-in %s: stanza from %s to %s refused: %s", s->conn->peer, fj->domain,
                 tern_xml_attr(st, "to"), refused);
        conn_stream_error(s->conn, refused, NULL);
    }
    tern_jid_free(&fj);
}

static void on_stanza(conn_t *c, tern_xml_t *st)
{
    s2s_in_t *s = c->data;
    if (st->ns && strcmp(st->ns, NS_TLS) == 0 && strcmp(st->name, "starttls") == 0) {
        handle_starttls(s);
        return;
    }
    if (!s->tls && !plain_dialback_ok()) {
        conn_stream_error(c, "policy-violation", "TLS is required");
        return;
    }
    if (st->ns && strcmp(st->ns, NS_BIDI) == 0 && strcmp(st->name, "bidi") == 0)
        s->bidi = 1; /* takes effect for what authenticates from now on */
    else if (st->ns && strcmp(st->ns, NS_SASL) == 0)
        handle_sasl(s, st);
    else if (st->ns && strcmp(st->ns, NS_DIALBACK) == 0 && strcmp(st->name, "result") == 0)
        handle_db_result(s, st);
    else if (st->ns && strcmp(st->ns, NS_DIALBACK) == 0 && strcmp(st->name, "verify") == 0)
        handle_db_verify(s, st);
    else if (stanza_kind(st) != STANZA_OTHER)
        handle_stanza(s, st);
    else
        conn_stream_error(c, "unsupported-stanza-type", NULL);
}

static void on_idle(conn_t *c)
{
    if (c->header_sent)
        conn_write_str(c, " ");
}

static void on_closing(conn_t *c)
{
    s2s_in_t *s = c->data;
    if (s->bidi)
        s2s_out_bidi_detach(c);
    if (any_authenticated(s))
        log_info("s2s-in %s: stream from %s closed", c->peer,
                 s->sasl_domain ? s->sasl_domain
                 : s->pairs     ? s->pairs->orig
                                : "?");
}

static void on_free(conn_t *c)
{
    s2s_in_t *s = c->data;
    if (s->prev)
        s->prev->next = s->next;
    else
        all_in = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s2s.n_conns--;
    while (s->pairs)
        drop_pair(s, s->pairs);
    if (s->rate_timer)
        event_free(s->rate_timer);
    if (s->auth_timer)
        event_free(s->auth_timer);
    free(s->local);
    free(s->from);
    free(s->sasl_domain);
    free(s->sasl_local);
    free(s);
}

static void auth_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    s2s_in_t *s = arg;
    log_info("s2s-in %s: not authenticated within the handshake timeout", s->conn->peer);
    conn_stream_error(s->conn, "connection-timeout", NULL);
}

static const conn_ops_t s2s_in_ops = {.kind = "s2s-in",
                                      .on_open = on_open,
                                      .on_stanza = on_stanza,
                                      .on_idle = on_idle,
                                      .on_closing = on_closing,
                                      .send_header = send_header,
                                      .on_free = on_free};

void s2s_accept(evutil_socket_t fd, const char *peer, int direct_tls)
{
    if (!s2s.started || s2s.n_conns >= server.cfg->s2s.max_connections) {
        log_warn("s2s-in %s: refused: %lld server connections are open (s2s.max_connections)", peer,
                 s2s.n_conns);
        evutil_closesocket(fd);
        return;
    }
    s2s_in_t *s = calloc(1, sizeof(*s));
    if (!s) {
        evutil_closesocket(fd);
        return;
    }
    SSL *ssl = NULL;
    if (direct_tls) {
        if (!server.tls || !(ssl = tls_server_ssl(server.tls, "xmpp-server"))) {
            free(s);
            evutil_closesocket(fd);
            return;
        }
        tls_request_peer_cert(ssl);
        s->tls = 1;
    }
    xml_stream_limits_t limits = {
        .max_stanza_bytes = (size_t)server.cfg->max_stanza_size, .max_depth = 64, .max_attrs = 64};
    s->conn = conn_new(server.base, fd, peer, &s2s_in_ops, s, ssl, &limits,
                       server.cfg->s2s.idle_timeout_ms);
    if (!s->conn) {
        free(s);
        return;
    }
    s->conn->stream_ns = NS_SERVER;
    s->conn->never_held = 1; /* serves many users: one slow client must not stall it */
    s2s.n_conns++;
    s->next = all_in;
    if (all_in)
        all_in->prev = s;
    all_in = s;
    s->rate_timer = evtimer_new(server.base, rate_over, s);
    s->auth_timer = evtimer_new(server.base, auth_timeout, s);
    long long ms = server.cfg->handshake_timeout_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (s->auth_timer)
        evtimer_add(s->auth_timer, &tv);
    log_info("s2s-in %s: new %s connection", peer, direct_tls ? "direct TLS" : "plain");
}

conn_t *s2s_in_bidi_carrier(const char *remote, const char **stream_id)
{
    for (s2s_in_t *s = all_in; s; s = s->next) {
        if (!s->bidi || s->conn->closing || !(s->tls || plain_dialback_ok()) ||
            !authenticated(s, remote))
            continue;
        tls_verify_t v =
            s->tls ? tls_peer_verify(s2s.trust, conn_ssl(s->conn), remote) : TLS_VERIFY_NO_CERT;
        if (!s2s_dialback_allowed(remote, v))
            continue;
        *stream_id = s->stream_id;
        return s->conn;
    }
    return NULL;
}

void s2s_in_list(void (*fn)(void *arg, const s2s_info_t *info), void *arg)
{
    for (s2s_in_t *s = all_in; s; s = s->next) {
        const char *remote = s->sasl_domain;
        for (const in_pair_t *p = s->pairs; !remote && p; p = p->next)
            if (p->valid)
                remote = p->orig;
        char pairs[1024];
        size_t n = 0;
        pairs[0] = '\0';
        if (s->sasl_domain)
            n = (size_t)snprintf(pairs, sizeof(pairs), "%s->%s", s->sasl_domain, s->sasl_local);
        for (const in_pair_t *p = s->pairs; p && n < sizeof(pairs); p = p->next) {
            int w = snprintf(pairs + n, sizeof(pairs) - n, "%s%s->%s%s", n ? " " : "", p->orig,
                             p->recv, p->valid ? "" : "?");
            if (w < 0)
                break;
            n += (size_t)w;
        }
        if (n < sizeof(pairs))
            s2s_out_pairs_on(s->conn, pairs, sizeof(pairs), n);
        SSL *ssl = s->tls ? conn_ssl(s->conn) : NULL;
        tls_verify_t v = TLS_VERIFY_PENDING;
        if (ssl && (remote || s->from))
            v = tls_peer_verify(s2s.trust, ssl, remote ? remote : s->from);
        s2s_info_t info = {.direction = "in",
                           .remote = remote    ? remote
                                     : s->from ? s->from
                                               : "",
                           .local = s->local ? s->local : "",
                           .auth = s->sasl_domain ? (s->bidi ? "EXTERNAL+bidi" : "EXTERNAL")
                                   : remote       ? (s->bidi ? "dialback+bidi" : "dialback")
                                                  : "none",
                           .tls = ssl ? SSL_get_version(ssl) : "none",
                           .cert = s2s_verify_words(v),
                           .queued = 0,
                           .peer = s->conn->peer,
                           .pairs = pairs};
        fn(arg, &info);
    }
}

size_t s2s_in_close(const char *remote)
{
    size_t n = 0;
    s2s_in_t *next;
    for (s2s_in_t *s = all_in; s; s = next) {
        next = s->next;
        if (!s->conn->closing && authenticated(s, remote)) {
            conn_close(s->conn);
            n++;
        }
    }
    return n;
}

void s2s_in_stop(void)
{
    for (s2s_in_t *s = all_in; s; s = s->next)
        if (!s->conn->closing)
            conn_stream_error(s->conn, "system-shutdown", NULL);
}
