/*
 * fuzz_xml_stream.c — libFuzzer target for the stream parser and the
 * stanza tree (src/xml/).
 *
 * The input is a byte stream as a client would send it after a fixed
 * stream header.  The first two bytes seed the points at which it is
 * split into reads, so every split is reachable.  Each stanza received is
 * serialized, copied, read back with tern_xml_parse() and serialized
 * again: the two serializations must be equal (for a stanza in a
 * namespace: tern_xml_parse() reads an unqualified one as jabber:client);
 * written frozen, as for routing (with the bytes received after its start
 * tag when they may be reused), it must read back as the same tree.
 * <auth/> and <starttls/>
 * restart the stream as SASL and STARTTLS do, <park/> parks it between
 * reads.  Limits are small so the fuzzer reaches them.
 */
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xml/xml_stream.h"

static const char header[] = "<stream:stream xmlns='jabber:client' "
                             "xmlns:stream='http://etherx.jabber.org/streams' to='x'>";

typedef struct {
    xml_stream_t *xs;
    int park;
} ctx_t;

static void on_open(void *ctx, const char *name, const char *ns, const char **attrs)
{
    (void)ctx;
    (void)name;
    (void)ns;
    (void)attrs;
}

/* Serialization, copy, re-parse: what was received reads back the same. */
static void on_stanza(void *vctx, tern_xml_t *st)
{
    ctx_t *ctx = vctx;
    size_t len = 0;
    char *text = tern_xml_to_string(st, &len);
    tern_xml_t *copy = tern_xml_copy(st);
    if (text && copy) {
        tern_xml_t *back = *st->ns ? tern_xml_parse(text, len) : NULL;
        if (back) {
            size_t len2 = 0;
            char *again = tern_xml_to_string(back, &len2);
            if (again && (len2 != len || memcmp(again, text, len) != 0))
                __builtin_trap(); /* serialize(parse(serialize(x))) != serialize(x) */
            free(again);
            tern_xml_unref(back);
            /* Routed (frozen), it may go out with the bytes received after
             * its start tag: they must read back as the same tree. */
            tern_xml_freeze(st);
            struct evbuffer *wire = evbuffer_new();
            if (wire && xml_serialize(st, "jabber:client", wire) == 0) {
                size_t wlen = evbuffer_get_length(wire);
                const char *w = (const char *)evbuffer_pullup(wire, -1);
                tern_xml_t *routed = w ? tern_xml_parse(w, wlen) : NULL;
                char *rtext = routed ? tern_xml_to_string(routed, &len2) : NULL;
                if (w && (!routed || (rtext && (len2 != len || memcmp(rtext, text, len) != 0))))
                    __builtin_trap(); /* parse(routed bytes) != x */
                free(rtext);
                tern_xml_unref(routed);
            }
            if (wire)
                evbuffer_free(wire);
        }
        (void)tern_xml_text(copy);
        tern_xml_copy_into(copy, st);
        struct evbuffer *out = evbuffer_new();
        if (out) {
            xml_serialize(copy, "jabber:server", out);
            evbuffer_free(out);
        }
    }
    free(text);
    tern_xml_unref(copy);
    if (tern_xml_is(st, "auth", NULL) || tern_xml_is(st, "starttls", NULL))
        xml_stream_restart(ctx->xs);
    if (tern_xml_is(st, "park", NULL))
        ctx->park = 1;
    tern_xml_unref(st);
}

static void on_close(void *ctx)
{
    (void)ctx;
}

static void on_error(void *ctx, const char *condition, const char *text)
{
    (void)ctx;
    (void)condition;
    (void)text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const xml_stream_callbacks_t cb = {on_open, on_stanza, on_close, on_error};
    xml_stream_limits_t lim = {.max_stanza_bytes = 16384, .max_depth = 16, .max_attrs = 16};
    if (size < 2)
        return 0;
    uint32_t seed = (uint32_t)data[0] << 8 | data[1];
    data += 2;
    size -= 2;
    ctx_t ctx = {0};
    ctx.xs = xml_stream_new(&cb, &ctx, &lim);
    if (!ctx.xs)
        return 0;
    xml_stream_feed(ctx.xs, header, sizeof(header) - 1);
    size_t off = 0;
    while (off < size) {
        seed = seed * 1103515245u + 12345u;
        size_t n = (seed >> 16) % 64 == 0 ? size - off : 1 + (seed >> 16) % 97;
        if (n > size - off)
            n = size - off;
        if (xml_stream_feed(ctx.xs, (const char *)data + off, n) < 0)
            break;
        off += n;
        if (ctx.park) {
            xml_stream_park(ctx.xs);
            ctx.park = 0;
        }
    }
    xml_stream_free(&ctx.xs);
    return 0;
}
