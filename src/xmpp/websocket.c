/*
 * websocket.c — RFC 6455 frames (wslay) around an RFC 7395 XMPP stream.
 *
 * The transport's callbacks come here first: input goes through wslay,
 * whose complete text messages are checked and fed to the conn; the
 * others (input brackets, flow control, idle, close, free) are forwarded
 * to the conn's own transport callbacks.  Output: conn hands each element
 * to ws_send(), which queues it as one text message; wslay writes the
 * frames into the transport's queue.
 *
 * Memory: wslay's context holds two 4 KiB buffers.  A quiet connection
 * (the transport's on_quiet) between messages, with nothing queued,
 * keeps no state in it: the context is freed then and made again with
 * the next byte in or out, as conn parks its parser.
 */
#include "xmpp/websocket.h"

#include <ctype.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <tern/base64.h>
#include <wslay/wslay.h>

#include "util/log.h"
#include "net/transport.h"

typedef struct ws {
    wslay_event_context_ptr wctx;
    struct transport *t;
    conn_t *c;
    const char *in; /* the read being decoded */
    size_t in_len;
    int began;    /* on_input_begin was forwarded: forward the end */
    int stopping; /* a close frame was queued: the transport closes */
    int in_frame; /* a frame began and did not end */
    int in_msg;   /* a fragmented message began and did not end */
    size_t max_message;
    struct evbuffer *rest;
    struct event *rest_ev;
} ws_t;

static int wctx(ws_t *ws);

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int ws_accept_key(const char *key, char *out, size_t outlen)
{
    size_t n = 0;
    unsigned char *raw = tern_base64_decode(key, strlen(key), 0, &n);
    free(raw);
    if (!raw || n != 16 || outlen < 29)
        return -1;
    char joined[128];
    int jl = snprintf(joined, sizeof(joined), "%s%s", key, ws_guid);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (jl < 0 || (size_t)jl >= sizeof(joined) ||
        !EVP_Digest(joined, (size_t)jl, md, &mdlen, EVP_sha1(), NULL))
        return -1;
    char *b64 = tern_base64_encode(md, mdlen, 0);
    if (!b64)
        return -1;
    snprintf(out, outlen, "%s", b64);
    free(b64);
    return 0;
}

int ws_header_has_token(const char *value, const char *token)
{
    size_t tl = strlen(token);
    const char *p = value;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        size_t n = 0;
        while (p[n] && p[n] != ',')
            n++;
        size_t m = n;
        while (m && (p[m - 1] == ' ' || p[m - 1] == '\t'))
            m--;
        if (m == tl && strncasecmp(p, token, tl) == 0)
            return 1;
        p += n;
    }
    return 0;
}

/* ---- wslay's callbacks ---- */

static ssize_t w_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    ws_t *ws = user;
    (void)flags;
    if (ws->in_len == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = len < ws->in_len ? len : ws->in_len;
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->in_len -= n;
    return (ssize_t)n;
}

static ssize_t w_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                      void *user)
{
    ws_t *ws = user;
    (void)flags;
    if (transport_dying(ws->t) || evbuffer_add(transport_output(ws->t), data, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

/* Write what wslay queued (pongs, close frames, messages). */
static void flush(ws_t *ws)
{
    if (transport_dying(ws->t) || !ws->wctx)
        return;
    wslay_event_send(ws->wctx);
    transport_queue_output(ws->t);
}

static void stop(ws_t *ws, uint16_t code, const char *why)
{
    if (ws->stopping)
        return;
    ws->stopping = 1;
    if (why)
        log_info("websocket %s: %s: closing with %u", ws->c->peer, why, code);
    if (wctx(ws) == 0) {
        wslay_event_queue_close(ws->wctx, code, NULL, 0);
        flush(ws);
    }
    if (!transport_closing(ws->t))
        transport_close(ws->t);
}

static int starts_with_tag(const char *p, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len > n + 1 && p[0] == '<' && memcmp(p + 1, name, n) == 0 &&
           (p[n + 1] == ' ' || p[n + 1] == '/' || p[n + 1] == '>' || p[n + 1] == '\t' ||
            p[n + 1] == '\r' || p[n + 1] == '\n');
}

/* One text message: one element (RFC 7395 §3.3.3).  The <open/> becomes
 * the start tag of a stream document, <close/> its end tag. */
static void on_text(ws_t *ws, const char *p, size_t len)
{
    conn_t *c = ws->c;
    while (len && isspace((unsigned char)*p)) {
        p++;
        len--;
    }
    while (len && isspace((unsigned char)p[len - 1]))
        len--;
    if (len > 5 && memcmp(p, "<?xml", 5) == 0) { /* a declaration: allowed, dropped */
        const char *end = memchr(p, '>', len);
        if (!end) {
            conn_stream_error(c, "not-well-formed", NULL);
            return;
        }
        len -= (size_t)(end + 1 - p);
        p = end + 1;
        while (len && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
    }
    if (len == 0 || p[0] != '<') {
        conn_stream_error(c, "not-well-formed", NULL);
        return;
    }
    if (starts_with_tag(p, len, "open")) {
        if (len >= 2 && memcmp(p + len - 2, "/>", 2) == 0) {
            conn_feed(c, p, len - 2);
            conn_feed(c, ">", 1);
        } else if (len > 7 && memcmp(p + len - 7, "</open>", 7) == 0) {
            conn_feed(c, p, len - 7);
        } else {
            conn_stream_error(c, "not-well-formed", NULL);
        }
        return;
    }
    if (starts_with_tag(p, len, "close")) {
        conn_feed(c, "</open>", 7);
        return;
    }
    conn_feed(c, p, len);
}

static void w_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                  void *user)
{
    ws_t *ws = user;
    (void)ctx;
    if (ws->stopping || ws->c->closing)
        return;
    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
        on_text(ws, (const char *)arg->msg, arg->msg_length);
        break;
    case WSLAY_BINARY_FRAME:
        stop(ws, WSLAY_CODE_UNSUPPORTED_DATA, "binary message");
        break;
    case WSLAY_CONNECTION_CLOSE:
        /* wslay answered the close; the stream ends with the connection */
        log_debug("websocket %s: the client closed (%u)", ws->c->peer, arg->status_code);
        ws->stopping = 1;
        flush(ws);
        transport_close(ws->t);
        break;
    default: /* pings are answered by wslay; pongs need nothing */
        break;
    }
}

static void w_frame_start(wslay_event_context_ptr ctx,
                          const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
    ws_t *ws = user;
    (void)ctx;
    ws->in_frame = 1;
    if (!wslay_is_ctrl_frame(arg->opcode))
        ws->in_msg = !arg->fin;
}

static void w_frame_end(wslay_event_context_ptr ctx, void *user)
{
    ws_t *ws = user;
    (void)ctx;
    ws->in_frame = 0;
}

static const struct wslay_event_callbacks w_callbacks = {
    .recv_callback = w_recv,
    .send_callback = w_send,
    .on_frame_recv_start_callback = w_frame_start,
    .on_frame_recv_end_callback = w_frame_end,
    .on_msg_recv_callback = w_msg,
};

/* wslay's context, made again after a quiet spell.  0 or -1. */
static int wctx(ws_t *ws)
{
    if (ws->wctx)
        return 0;
    if (wslay_event_context_server_init(&ws->wctx, &w_callbacks, ws) != 0) {
        ws->wctx = NULL;
        return -1;
    }
    wslay_event_config_set_max_recv_msg_length(ws->wctx, ws->max_message);
    return 0;
}

/* ---- conn's framing ---- */

static int ws_send(void *ctx, struct evbuffer *msg)
{
    ws_t *ws = ctx;
    size_t len = evbuffer_get_length(msg);
    if (ws->stopping) {
        evbuffer_drain(msg, len);
        return 0;
    }
    struct wslay_event_msg m = {
        .opcode = WSLAY_TEXT_FRAME, .msg = evbuffer_pullup(msg, -1), .msg_length = len};
    int rc = wctx(ws) == 0 ? wslay_event_queue_msg(ws->wctx, &m) : -1;
    evbuffer_drain(msg, len);
    if (rc != 0)
        return -1;
    wslay_event_send(ws->wctx); /* into the transport's queue; conn queues it */
    return 0;
}

static void ws_ping(void *ctx)
{
    ws_t *ws = ctx;
    struct wslay_event_msg m = {.opcode = WSLAY_PING, .msg = NULL, .msg_length = 0};
    if (ws->stopping || wctx(ws) < 0 || wslay_event_queue_msg(ws->wctx, &m) != 0)
        return;
    flush(ws);
}

static void ws_close(void *ctx)
{
    stop(ctx, WSLAY_CODE_NORMAL_CLOSURE, NULL);
}

static const conn_framing_t ws_framing = {.send = ws_send, .ping = ws_ping, .close = ws_close};

/* ---- the transport's callbacks, forwarded ---- */

static int tr_data(void *ctx, const char *data, size_t len)
{
    ws_t *ws = ctx;
    if (ws->stopping || ws->c->closing)
        return -1;
    if (wctx(ws) < 0) {
        conn_destroy(ws->c);
        return -1;
    }
    ws->in = data;
    ws->in_len = len;
    int rc = wslay_event_recv(ws->wctx);
    ws->in = NULL;
    ws->in_len = 0;
    if (rc != 0 && !ws->stopping) {
        ws->stopping = 1; /* a protocol error: wslay queued its close */
        log_info("websocket %s: bad frame: closing", ws->c->peer);
    }
    if (!wslay_event_get_read_enabled(ws->wctx) && !ws->stopping) {
        ws->stopping = 1; /* over the size limit: wslay queued 1009 */
        log_info("websocket %s: message too big: closing", ws->c->peer);
    }
    flush(ws);
    if (ws->stopping && !transport_closing(ws->t))
        transport_close(ws->t);
    return ws->stopping || ws->c->closing ? -1 : 0;
}

static void tr_input_begin(void *ctx)
{
    ws_t *ws = ctx;
    ws->began = 1;
    conn_transport_ops()->on_input_begin(ws->c);
}

static void tr_input_end(void *ctx)
{
    ws_t *ws = ctx;
    if (!ws->began)
        return;
    ws->began = 0;
    conn_transport_ops()->on_input_end(ws->c);
}

static int tr_may_read(void *ctx)
{
    ws_t *ws = ctx;
    return conn_transport_ops()->may_read(ws->c);
}

static void tr_drained(void *ctx)
{
    ws_t *ws = ctx;
    conn_transport_ops()->on_drained(ws->c);
}

static void tr_idle(void *ctx)
{
    ws_t *ws = ctx;
    conn_transport_ops()->on_idle(ws->c);
}

static void tr_quiet(void *ctx)
{
    ws_t *ws = ctx;
    conn_transport_ops()->on_quiet(ws->c);
    if (ws->wctx && !ws->in_frame && !ws->in_msg && !ws->stopping &&
        wslay_event_get_queued_msg_count(ws->wctx) == 0) {
        wslay_event_context_free(ws->wctx);
        ws->wctx = NULL;
    }
}

static void tr_close(void *ctx, transport_reason_t reason)
{
    ws_t *ws = ctx;
    conn_transport_ops()->on_close(ws->c, reason);
}

static void tr_free(void *ctx)
{
    ws_t *ws = ctx;
    conn_transport_ops()->on_free(ws->c);
    if (ws->rest_ev)
        event_free(ws->rest_ev);
    if (ws->rest)
        evbuffer_free(ws->rest);
    if (ws->wctx)
        wslay_event_context_free(ws->wctx);
    free(ws);
}

static const transport_ops_t ws_ops = {
    .on_data = tr_data,
    .on_input_begin = tr_input_begin,
    .on_input_end = tr_input_end,
    .may_read = tr_may_read,
    .on_drained = tr_drained,
    .on_idle = tr_idle,
    .on_quiet = tr_quiet,
    .on_close = tr_close,
    .on_free = tr_free,
};

/* Bytes the client sent right after its handshake, before the answer. */
static void on_rest(evutil_socket_t fd, short what, void *arg)
{
    ws_t *ws = arg;
    (void)fd;
    (void)what;
    size_t len = evbuffer_get_length(ws->rest);
    if (!len || transport_closing(ws->t))
        return;
    tr_input_begin(ws);
    tr_data(ws, (const char *)evbuffer_pullup(ws->rest, -1), len);
    tr_input_end(ws);
    evbuffer_drain(ws->rest, len);
}

conn_t *ws_conn_new(struct event_base *base, struct transport *t, const char *peer,
                    const conn_ops_t *ops, void *data, const xml_stream_limits_t *limits,
                    long long idle_ms, size_t max_message, struct evbuffer *rest)
{
    ws_t *ws = calloc(1, sizeof(*ws));
    if (!ws)
        return NULL;
    ws->t = t;
    ws->max_message = max_message;
    if (wctx(ws) < 0) {
        free(ws);
        return NULL;
    }
    ws->c = conn_new_framed(base, t, peer, ops, data, limits, &ws_framing, ws);
    if (!ws->c) {
        wslay_event_context_free(ws->wctx);
        free(ws);
        return NULL;
    }
    transport_set_owner(t, ops->kind, &ws_ops, ws);
    conn_set_idle(ws->c, idle_ms);
    if (rest && evbuffer_get_length(rest)) {
        ws->rest = evbuffer_new();
        ws->rest_ev = event_new(base, -1, 0, on_rest, ws);
        if (ws->rest && ws->rest_ev) {
            evbuffer_add_buffer(ws->rest, rest);
            event_active(ws->rest_ev, 0, 0);
        }
    }
    return ws->c;
}
