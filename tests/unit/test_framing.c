/*
 * test_framing.c — unit tests for src/xmpp/conn.c, the XMPP framing on a
 * transport.
 *
 * A conn_t wraps one end of a socketpair; the test plays the client on the
 * other end with plain reads and writes, driving a private event_base.
 * Covers a stream header and stanzas arriving whole and one byte at a
 * time, a stream restart, the peer's close tag, malformed XML (the
 * not-well-formed stream error, RFC 6120 §4.9.3.13), and conn_feed(), the
 * entry point a WebSocket layer would use.
 */
#include "xmpp/conn.h"
#include "check.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HEADER                                                                                     \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                                   \
    "xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>"
#define OUR_HEADER                                                                                 \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "        \
    "from='example.test' version='1.0'>"

static struct event_base *base;

typedef struct seen {
    int opens, closing, freed;
    char names[512]; /* stanza names, space-separated */
    int restart_on;  /* restart the stream after a <restart/> element */
    int hold_on;     /* hold input after a <hold/> element */
    conn_t *held;    /* the conn it held */
    int outgoing;    /* we sent our header first */
} seen_t;

static void send_header(conn_t *c)
{
    conn_write_str(c, OUR_HEADER);
    c->header_sent = 1;
}

static void s_open(conn_t *c, const char *name, const char *ns, const char **attrs)
{
    seen_t *s = c->data;
    s->opens++;
    if (!s->outgoing)
        send_header(c);
}

static void s_stanza(conn_t *c, tern_xml_t *st)
{
    seen_t *s = c->data;
    size_t n = strlen(s->names);
    snprintf(s->names + n, sizeof(s->names) - n, "%s%s", n ? " " : "", st->name);
    if (s->restart_on && strcmp(st->name, "restart") == 0)
        conn_restart_stream(c);
    if (s->hold_on && strcmp(st->name, "hold") == 0) {
        conn_input_hold(c);
        s->held = c;
    }
}

static void s_closing(conn_t *c)
{
    ((seen_t *)c->data)->closing++;
}

static void s_free(conn_t *c)
{
    ((seen_t *)c->data)->freed++;
}

static const conn_ops_t ops = {
    .kind = "test",
    .on_open = s_open,
    .on_stanza = s_stanza,
    .on_closing = s_closing,
    .send_header = send_header,
    .on_free = s_free,
};

static const xml_stream_limits_t limits = {
    .max_stanza_bytes = 65536, .max_depth = 32, .max_attrs = 32};

static void spin(int turns)
{
    for (int i = 0; i < turns; i++) {
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(200);
    }
}

/* A conn on one end of a socketpair; the other end in *peer. */
static conn_t *open_conn(seen_t *s, int *peer)
{
    int fd[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, fd) == 0);
    evutil_make_socket_nonblocking(fd[0]);
    evutil_make_socket_nonblocking(fd[1]);
    *peer = fd[1];
    memset(s, 0, sizeof(*s));
    conn_t *c = conn_new(base, fd[0], "peer", &ops, s, NULL, &limits, 0);
    CHECK(c != NULL);
    return c;
}

static void send_all(int fd, const char *data, size_t len)
{
    CHECK(write(fd, data, len) == (ssize_t)len);
}

/* Everything the conn wrote until it closed (or `turns` passed). */
static size_t read_reply(int fd, char *buf, size_t size, int *eof)
{
    size_t n = 0;
    *eof = 0;
    for (int i = 0; i < 500 && !*eof; i++) {
        spin(1);
        ssize_t r = read(fd, buf + n, size - 1 - n);
        if (r > 0)
            n += (size_t)r;
        else if (r == 0)
            *eof = 1;
        else if (errno != EAGAIN && errno != EWOULDBLOCK)
            *eof = 1;
        if (n >= size - 1)
            break;
    }
    buf[n] = '\0';
    return n;
}

static const char stanzas[] = "<message to='a@example.test'><body>hi &amp; bye</body></message>"
                              "<presence/><iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>";

static void test_whole(void)
{
    seen_t s;
    int peer;
    conn_t *c = open_conn(&s, &peer);
    send_all(peer, HEADER, strlen(HEADER));
    send_all(peer, stanzas, strlen(stanzas));
    spin(20);
    CHECK(s.opens == 1);
    CHECK_STR(s.names, "message presence iq");
    /* The peer's close tag: ours goes back, then the socket closes. */
    send_all(peer, "</stream:stream>", 16);
    char buf[4096];
    int eof;
    read_reply(peer, buf, sizeof buf, &eof);
    CHECK(eof);
    CHECK(strstr(buf, OUR_HEADER) == buf);
    size_t n = strlen(buf);
    CHECK(n > 16 && strcmp(buf + n - 16, "</stream:stream>") == 0);
    CHECK(s.closing == 1);
    spin(5);
    CHECK(s.freed == 1);
    (void)c;
    close(peer);
}

/* One byte per read: the same stanzas come out. */
static void test_byte_at_a_time(void)
{
    seen_t s;
    int peer;
    conn_t *c = open_conn(&s, &peer);
    char all[1024];
    snprintf(all, sizeof all, "%s%s", HEADER, stanzas);
    for (size_t i = 0; all[i]; i++) {
        send_all(peer, all + i, 1);
        spin(1);
    }
    spin(5);
    CHECK(s.opens == 1);
    CHECK_STR(s.names, "message presence iq");
    conn_close(c);
    char buf[4096];
    int eof;
    read_reply(peer, buf, sizeof buf, &eof);
    CHECK(eof);
    spin(5);
    CHECK(s.freed == 1);
    close(peer);
}

/* A restart (after SASL): a new header, a new document. */
static void test_restart(void)
{
    seen_t s;
    int peer;
    conn_t *c = open_conn(&s, &peer);
    s.restart_on = 1;
    const char *in = HEADER "<restart/>" HEADER "<presence/>";
    send_all(peer, in, strlen(in));
    spin(20);
    CHECK(s.opens == 2);
    CHECK_STR(s.names, "restart presence");
    char buf[4096];
    int eof;
    conn_destroy(c);
    read_reply(peer, buf, sizeof buf, &eof);
    CHECK(eof);
    /* Two headers went out, one per stream document. */
    char *second = strstr(buf, OUR_HEADER);
    CHECK(second && strstr(second + 1, OUR_HEADER) != NULL);
    CHECK(s.closing == 1 && s.freed == 1);
    close(peer);
}

/* Malformed XML: the stream error, the close tag, then the end. */
static void test_malformed(void)
{
    seen_t s;
    int peer;
    conn_t *c = open_conn(&s, &peer);
    const char *in = HEADER "<message><body>x</message><presence/>";
    send_all(peer, in, strlen(in));
    char buf[4096];
    int eof;
    read_reply(peer, buf, sizeof buf, &eof);
    CHECK(eof);
    CHECK(strstr(buf, "<stream:error><not-well-formed "
                      "xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>") != NULL);
    size_t n = strlen(buf);
    CHECK(n > 31 && strcmp(buf + n - 31, "</stream:error></stream:stream>") == 0);
    CHECK_STR(s.names, ""); /* nothing after the error is handed on */
    CHECK(s.closing == 1);
    spin(5);
    CHECK(s.freed == 1);
    (void)c;
    close(peer);

    /* A stream error before any header: ours is sent first. */
    c = open_conn(&s, &peer);
    send_all(peer, "<<<", 3);
    read_reply(peer, buf, sizeof buf, &eof);
    CHECK(strstr(buf, OUR_HEADER "<stream:error><not-well-formed ") == buf);
    spin(5);
    CHECK(s.freed == 1);
    close(peer);
}

/* conn_feed(): bytes handed in by a layer above the transport. */
static void test_feed(void)
{
    seen_t s;
    int peer;
    conn_t *c = open_conn(&s, &peer);
    CHECK(conn_feed(c, HEADER, strlen(HEADER)) == 0);
    CHECK(conn_feed(c, "<presence", 9) == 0);
    CHECK(conn_feed(c, "/>", 2) == 0);
    CHECK(s.opens == 1);
    CHECK_STR(s.names, "presence");
    CHECK(conn_feed(c, "</stream:stream>", 16) == -1);
    CHECK(conn_feed(c, "<presence/>", 11) == -1); /* closed: no more input */
    char buf[4096];
    int eof;
    read_reply(peer, buf, sizeof buf, &eof);
    CHECK(eof);
    spin(5);
    CHECK(s.freed == 1);
    close(peer);
}

/* conn_connect(): a stream we open (server-to-server); our header waits
 * for the connection. */
static void test_connect(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(sin);
    CHECK(bind(l, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    CHECK(listen(l, 4) == 0);
    CHECK(getsockname(l, (struct sockaddr *)&sin, &len) == 0);

    seen_t s;
    memset(&s, 0, sizeof(s));
    s.outgoing = 1;
    conn_t *c = conn_connect(base, (struct sockaddr *)&sin, sizeof(sin), "127.0.0.1", &ops, &s,
                             NULL, &limits, 0);
    CHECK(c != NULL);
    if (!c)
        return;
    send_header(c);
    spin(5);
    int peer = accept(l, NULL, NULL);
    CHECK(peer >= 0);
    evutil_make_socket_nonblocking(peer);
    char buf[4096];
    size_t n = 0;
    for (int i = 0; i < 500 && n < strlen(OUR_HEADER); i++) {
        spin(1);
        ssize_t r = read(peer, buf + n, sizeof(buf) - 1 - n);
        if (r > 0)
            n += (size_t)r;
    }
    buf[n] = '\0';
    CHECK_STR(buf, OUR_HEADER);
    const char *in = HEADER "<presence/>";
    send_all(peer, in, strlen(in));
    spin(20);
    CHECK(s.opens == 1);
    CHECK_STR(s.names, "presence");
    conn_close(c);
    int eof;
    read_reply(peer, buf, sizeof buf, &eof);
    CHECK(eof);
    CHECK_STR(buf, "</stream:stream>");
    spin(5);
    CHECK(s.closing == 1 && s.freed == 1);
    close(peer);

    /* Nobody listens: on_closing and on_free, from the loop. */
    close(l);
    memset(&s, 0, sizeof(s));
    s.outgoing = 1;
    c = conn_connect(base, (struct sockaddr *)&sin, sizeof(sin), "127.0.0.1", &ops, &s, NULL,
                     &limits, 0);
    CHECK(c != NULL);
    CHECK(s.closing == 0);
    spin(20);
    CHECK(s.closing == 1 && s.freed == 1 && s.opens == 0);
}

/* A stanza that holds input (a pending store read, a rate limit): the
 * stanzas parsed from the same read, and the close tag, wait until the
 * hold is released, then come in order (RFC 6120 §10.1). */
static void test_hold_keeps_order(void)
{
    seen_t s;
    int peer;
    conn_t *c = open_conn(&s, &peer);
    s.hold_on = 1;
    send_all(peer, HEADER, strlen(HEADER));
    const char in[] = "<presence/><hold/><message/><iq/><hold/><presence/></stream:stream>";
    send_all(peer, in, strlen(in));
    spin(20);
    CHECK_STR(s.names, "presence hold");
    CHECK(s.closing == 0);
    conn_input_release(c);
    CHECK_STR(s.names, "presence hold"); /* not from inside the caller */
    spin(20);
    CHECK_STR(s.names, "presence hold message iq hold");
    CHECK(s.closing == 0);
    conn_input_release(c);
    spin(20);
    CHECK_STR(s.names, "presence hold message iq hold presence");
    CHECK(s.closing == 1);
    char buf[4096];
    int eof;
    read_reply(peer, buf, sizeof buf, &eof);
    CHECK(eof);
    spin(5);
    CHECK(s.freed == 1);
    close(peer);
}

/* Held stanzas of a connection that goes away are freed with it. */
static void test_hold_then_gone(void)
{
    seen_t s;
    int peer;
    conn_t *c = open_conn(&s, &peer);
    s.hold_on = 1;
    send_all(peer, HEADER, strlen(HEADER));
    const char in[] = "<hold/><message><body>waiting</body></message><iq/>";
    send_all(peer, in, strlen(in));
    spin(20);
    CHECK_STR(s.names, "hold");
    conn_destroy(c);
    spin(5);
    CHECK_STR(s.names, "hold");
    CHECK(s.freed == 1);
    close(peer);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as ternd does: a closed peer is an error return */
    base = event_base_new();
    test_whole();
    test_byte_at_a_time();
    test_restart();
    test_malformed();
    test_feed();
    test_connect();
    test_hold_keeps_order();
    test_hold_then_gone();
    CHECK(conn_count() == 0);
    event_base_free(base);
    return check_summary();
}
