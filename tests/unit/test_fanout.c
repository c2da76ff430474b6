/*
 * test_fanout.c — unit tests of frozen stanzas and shared serialized
 * bytes (xml_tree.c freezing, xml_serialize.c cache and fan-out rest).
 *
 * Every cached or shared form is compared byte for byte with a fresh
 * serialization of an unfrozen copy of the same tree.
 */
#include "check.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "xml/xml_stream.h"

/* Everything `out` holds, as a malloc'd string; `out` is drained. */
static char *drain(struct evbuffer *out, size_t *len_r)
{
    size_t len = evbuffer_get_length(out);
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    evbuffer_remove(out, s, len);
    s[len] = '\0';
    if (len_r)
        *len_r = len;
    return s;
}

/* One write of `n` for a stream of `stream_ns`, as a string. */
static char *write_once(const tern_xml_t *n, const char *stream_ns, size_t *len_r)
{
    struct evbuffer *b = evbuffer_new();
    char *s = NULL;
    if (b && xml_serialize(n, stream_ns, b) == 0)
        s = drain(b, len_r);
    if (b)
        evbuffer_free(b);
    return s;
}

/* A fresh serialization: an unfrozen copy is never cached. */
static char *fresh(const tern_xml_t *n, const char *stream_ns, size_t *len_r)
{
    tern_xml_t *c = tern_xml_copy(n);
    char *s = c ? write_once(c, stream_ns, len_r) : NULL;
    tern_xml_unref(c);
    return s;
}

/* ---- refused changes ------------------------------------------------ */

static int reports;
static char last_report[256];

static void on_report(const char *msg)
{
    reports++;
    snprintf(last_report, sizeof(last_report), "%s", msg);
}

static void test_frozen_refuses(void)
{
    xml_set_misuse_report(on_report);
    xml_set_misuse_abort(0);
    tern_xml_t *m = tern_xml_parse("<message to='a@b' type='chat'><body>hi</body><x xmlns='u:x'/>"
                                   "</message>",
                                   strlen("<message to='a@b' type='chat'><body>hi</body><x "
                                          "xmlns='u:x'/></message>"));
    CHECK(m != NULL);
    if (!m)
        return;
    char *before = tern_xml_to_string(m, NULL);
    CHECK(!tern_xml_frozen(m));
    tern_xml_freeze(m);
    CHECK(tern_xml_frozen(m));
    tern_xml_t *body = tern_xml_child(m, "body", NULL);
    CHECK(tern_xml_frozen(body)); /* the whole tree */

    CHECK(tern_xml_add_child(m, "subject", NULL) == NULL);
    CHECK(reports == 1);
    CHECK(strstr(last_report, "tern_xml_add_child") != NULL);
    CHECK(tern_xml_add_child(m, "thread", NULL) == NULL);
    CHECK(reports == 1); /* each call reported once */
    tern_xml_add_text(body, " there", 6);
    CHECK(strstr(last_report, "tern_xml_add_text") != NULL);
    tern_xml_set_attr(m, "to", "c@d");
    CHECK(strstr(last_report, "tern_xml_set_attr") != NULL);
    tern_xml_set_attr(m, "type", NULL); /* deleting through set_attr */
    tern_xml_del_attr(m, "type");
    CHECK(strstr(last_report, "tern_xml_del_attr") != NULL);
    tern_xml_unlink(body);
    CHECK(strstr(last_report, "tern_xml_unlink") != NULL);
    tern_xml_t *other = tern_xml_new("x", "u:y");
    CHECK(tern_xml_copy_into(m, other) == NULL);
    CHECK(strstr(last_report, "tern_xml_copy_into") != NULL);
    CHECK(reports == 6);

    char *after = tern_xml_to_string(m, NULL);
    CHECK_STR(after, before); /* nothing changed */
    CHECK_STR(tern_xml_attr(m, "to"), "a@b");

    /* Copies are not frozen, and a frozen tree may be copied from. */
    tern_xml_t *c = tern_xml_copy(m);
    CHECK(c != NULL && !tern_xml_frozen(c));
    tern_xml_set_attr(c, "to", "c@d");
    CHECK_STR(tern_xml_attr(c, "to"), "c@d");
    CHECK(tern_xml_copy_into(other, m) != NULL); /* frozen source, open target */
    CHECK(reports == 6);

    tern_xml_unref(c);
    tern_xml_unref(other);
    free(before);
    free(after);
    tern_xml_unref(m);
    xml_set_misuse_report(NULL);
}

/* ---- cached bytes == fresh bytes ------------------------------------ */

static const char *const shapes[] = {
    "<presence/>",
    "<message/>",
    "<message type='chat' to='juliet@example.com/balcony' from='romeo@example.net/orchard' "
    "id='a1'><body>Art thou not Romeo?</body></message>",
    "<message to='a@b' title='&lt;&amp;&gt;&quot;&apos; tab&#9;lf&#10;cr&#13;'><body>a &lt; b "
    "&amp;&amp; c &gt; d &#13; \"quoted\" 'single'</body></message>",
    "<iq type='get' id='1'><query xmlns='jabber:iq:roster'><item jid='x@y' name='X'><group>Friends"
    "</group></item><item jid='z@y'/></query></iq>",
    "<presence xml:lang='en'><show>away</show><status xml:lang='fr'>absent</status><priority>5"
    "</priority><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v='/><x "
    "xmlns='vcard-temp:x:update'><photo/></x></presence>",
    "<message><a xmlns='urn:a'><b><c xmlns='urn:c'><d/>text<e>more</e></c></b></a><f xmlns='urn:a' "
    "xmlns:p='urn:p' p:attr='v' p:other='w'/></message>",
    "<message xmlns='urn:not-client'><body>other namespace at the top</body></message>",
    "<message><body>mixed <b xmlns='urn:b'>bold</b> tail &amp; more</body><empty "
    "xmlns='urn:e'></empty></message>",
    "<iq type='result' id='x'/>",
};

static void check_cached_equals_fresh(tern_xml_t *n, const char *stream_ns)
{
    size_t flen = 0, alen = 0, blen = 0;
    char *f = fresh(n, stream_ns, &flen);
    char *a = write_once(n, stream_ns, &alen); /* first write of the frozen root */
    char *b = write_once(n, stream_ns, &blen); /* reused */
    CHECK(f != NULL && a != NULL && b != NULL);
    CHECK(flen == alen && alen == blen);
    CHECK(f && a && b && memcmp(f, a, flen) == 0 && memcmp(a, b, alen) == 0);
    if (f && a && strcmp(f, a) != 0)
        fprintf(stderr, "  fresh:  %s\n  cached: %s\n", f, a);
    free(f);
    free(a);
    free(b);
}

static void take_stanza(void *ctx, tern_xml_t *stanza)
{
    tern_xml_t **got = ctx;
    if (*got)
        tern_xml_unref(*got);
    *got = stanza;
}

/* Parse `data` as one stanza (tern_xml_parse reads it as a client's
 * stanza on a jabber:client stream), freeze it and write it once for a
 * client stream. */
static char *routed(const char *data, tern_xml_t **tree_r)
{
    tern_xml_t *n = tern_xml_parse(data, strlen(data));
    if (!n)
        return NULL;
    tern_xml_freeze(n);
    char *s = write_once(n, TERN_NS_CLIENT, NULL);
    if (tree_r)
        *tree_r = n;
    else
        tern_xml_unref(n);
    return s;
}

/* What follows a received stanza's start tag goes out as it came in
 * (xml_stream.c, "Received bytes"), while its start tag is written
 * afresh (the router changes it); when the bytes could mean something
 * else under the new start tag, or the tree changed, it is written
 * afresh in full. */
static void test_received_bytes(void)
{
    xml_serialize_stats_t s0, s1;
    xml_serialize_stats(&s0);
    /* Unusual but equivalent spelling, kept byte for byte. */
    char *out = routed("<message to = \"a@b\"><body >x &#65; \"q\"</body ><x xmlns=\"urn:x\" "
                       "a=\"1\"/><y xml:lang='en'/></message >",
                       NULL);
    CHECK_STR(out, "<message to='a@b'><body >x &#65; \"q\"</body ><x xmlns=\"urn:x\" "
                   "a=\"1\"/><y xml:lang='en'/></message >");
    free(out);
    xml_serialize_stats(&s1);
    CHECK(s1.received - s0.received == 1);

    /* The start tag may change before the stanza is frozen. */
    tern_xml_t *m = tern_xml_parse("<message><body>hi</body></message>", 34);
    CHECK(m != NULL);
    if (m) {
        tern_xml_set_attr(m, "from", "a@b/c");
        tern_xml_freeze(m);
        out = write_once(m, TERN_NS_CLIENT, NULL);
        CHECK_STR(out, "<message from='a@b/c'><body>hi</body></message>");
        free(out);
        tern_xml_unref(m);
    }

    /* Any other change: written afresh. */
    static const char *const changes[] = {"child", "text", "attr", "unlink"};
    for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
        m = tern_xml_parse("<message><body  >hi</body  ></message>", 38);
        CHECK(m != NULL);
        if (!m)
            continue;
        tern_xml_t *body = tern_xml_child(m, "body", NULL);
        const char *want = NULL;
        switch (i) {
        case 0:
            tern_xml_add_child(m, "thread", NULL);
            want = "<message><body>hi</body><thread/></message>";
            break;
        case 1:
            tern_xml_add_text(body, "!", 1);
            want = "<message><body>hi!</body></message>";
            break;
        case 2:
            tern_xml_set_attr(body, "a", "1");
            want = "<message><body a='1'>hi</body></message>";
            break;
        default:
            tern_xml_unlink(body);
            want = "<message/>";
            break;
        }
        tern_xml_freeze(m);
        out = write_once(m, TERN_NS_CLIENT, NULL);
        CHECK_STR(out, want);
        free(out);
        tern_xml_unref(m);
    }

    /* Prefixes, the stream namespace, or a content namespace declared
     * inside: written afresh. */
    static const char *const unsafe[][2] = {
        {"<message xmlns:p='urn:p'><p:x/></message>", "<message><x xmlns='urn:p'/></message>"},
        {"<message><x xmlns:p='urn:p' p:a='1'/></message>",
         "<message><x xmlns:ns0='urn:p' ns0:a='1'/></message>"},
        {"<message><b xmlns='jabber:client'>t</b></message>", "<message><b>t</b></message>"},
        {"<message><b xmlns='urn:x'><c xmlns='jabber:server'/></b></message>",
         "<message><b xmlns='urn:x'><c xmlns='jabber:client'/></b></message>"},
        {"<message><stream:error/></message>",
         "<message><error xmlns='http://etherx.jabber.org/streams'/></message>"},
        {"<message xmlns='urn:other'><body >x</body ></message>",
         "<message xmlns='urn:other'><body>x</body></message>"},
    };
    for (size_t i = 0; i < sizeof(unsafe) / sizeof(unsafe[0]); i++) {
        out = routed(unsafe[i][0], NULL);
        CHECK_STR(out, unsafe[i][1]);
        free(out);
    }

    /* A stanza split over many reads (down to one byte each) keeps all
     * its bytes. */
    static const char head[] = "<stream:stream xmlns='jabber:client' "
                               "xmlns:stream='http://etherx.jabber.org/streams'>";
    static const char stanza[] = "<message to='x@y'><body >one two three</body ></message>";
    for (size_t step = 1; step <= 7; step += 3) {
        tern_xml_t *got = NULL;
        xml_stream_callbacks_t cb = {.on_stanza = take_stanza};
        xml_stream_t *st = xml_stream_new(&cb, &got, NULL);
        CHECK(st != NULL);
        if (!st)
            continue;
        CHECK(xml_stream_feed(st, head, sizeof(head) - 1) == 0);
        for (size_t i = 0; i < sizeof(stanza) - 1; i += step) {
            size_t n = sizeof(stanza) - 1 - i < step ? sizeof(stanza) - 1 - i : step;
            CHECK(xml_stream_feed(st, stanza + i, n) == 0);
        }
        xml_stream_free(&st);
        CHECK(got != NULL);
        if (!got)
            continue;
        tern_xml_freeze(got);
        out = write_once(got, TERN_NS_CLIENT, NULL);
        CHECK_STR(out, stanza);
        free(out);
        tern_xml_unref(got);
    }
}

static void test_cache_equals_fresh(void)
{
    static const char *const stream_nss[] = {TERN_NS_CLIENT, "jabber:server",
                                             "jabber:component:accept", NULL};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        /* A copy: a parsed stanza may go out with its received bytes
         * (test_received_bytes), a copy is always written by the
         * serializer. */
        tern_xml_t *parsed = tern_xml_parse(shapes[i], strlen(shapes[i]));
        tern_xml_t *n = tern_xml_copy(parsed);
        tern_xml_unref(parsed);
        CHECK(n != NULL);
        if (!n) {
            fprintf(stderr, "  cannot parse shape %zu\n", i);
            continue;
        }
        tern_xml_freeze(n);
        for (size_t k = 0; k < sizeof(stream_nss) / sizeof(stream_nss[0]); k++) {
            xml_serialize_stats_t s0, s1;
            xml_serialize_stats(&s0);
            check_cached_equals_fresh(n, stream_nss[k]);
            xml_serialize_stats(&s1);
            /* A parsed stanza is written with its received bytes after
             * the start tag when it can be (xml_stream.c): count both. */
            unsigned long long written = s1.full - s0.full + s1.received - s0.received;
            if (k < XML_CACHE_SLOTS) {
                /* fresh copy + first write: two; the second write reuses. */
                CHECK(written == 2);
                CHECK(s1.reused - s0.reused == 1);
            } else {
                /* every slot taken: still right, written afresh */
                CHECK(written == 3);
                CHECK(s1.reused - s0.reused == 0);
            }
        }
        tern_xml_unref(n);
    }

    /* Built by hand: characters the serializer must drop or escape, and
     * a stanza large enough to be shared by reference. */
    tern_xml_t *m = tern_xml_new("message", TERN_NS_CLIENT);
    tern_xml_set_attr(m, "to", "o'brien@example.com/\"home\"");
    tern_xml_set_attr(m, "{urn:ext}flag", "<yes>");
    tern_xml_t *body = tern_xml_add_child(m, "body", NULL);
    tern_xml_add_text(body, "ctl\x01\x02 chars & <tags>\r\n", 22);
    tern_xml_t *big = tern_xml_add_child(m, "data", "urn:big");
    char chunk[1001];
    memset(chunk, 'x', 1000);
    chunk[1000] = '\0';
    for (int i = 0; i < 20; i++)
        tern_xml_add_text(big, chunk, 1000);
    tern_xml_freeze(m);
    check_cached_equals_fresh(m, TERN_NS_CLIENT);
    check_cached_equals_fresh(m, NULL);

    /* The shared bytes outlive the tree in an output buffer. */
    struct evbuffer *out = evbuffer_new();
    CHECK(out && xml_serialize(m, TERN_NS_CLIENT, out) == 0);
    size_t want = 0;
    char *w = fresh(m, TERN_NS_CLIENT, &want);
    tern_xml_unref(m);
    size_t got_len = 0;
    char *got = out ? drain(out, &got_len) : NULL;
    CHECK(got && w && got_len == want && memcmp(got, w, want) == 0);
    free(got);
    free(w);
    if (out)
        evbuffer_free(out);

    /* A part of a frozen tree is written afresh, never from the cache. */
    tern_xml_t *p = tern_xml_parse(shapes[4], strlen(shapes[4]));
    tern_xml_freeze(p);
    char *whole = write_once(p, TERN_NS_CLIENT, NULL);
    char *part = write_once(tern_xml_first_element(p), TERN_NS_CLIENT, NULL);
    CHECK_STR(part, "<query xmlns='jabber:iq:roster'><item jid='x@y' name='X'><group>Friends"
                    "</group></item><item jid='z@y'/></query>");
    free(whole);
    free(part);
    tern_xml_unref(p);
}

/* ---- fan-out: start tag per recipient + shared rest ------------------ */

static void test_fanout_rest(void)
{
    static const char *const tos[] = {"juliet@example.com", "romeo@example.net/orchard",
                                      "o'brien@example.org/a&b<c>\"d\"", "example.com"};
    for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
        tern_xml_t *tmpl = tern_xml_parse(shapes[i], strlen(shapes[i]));
        if (!tmpl)
            continue;
        tern_xml_del_attr(tmpl, "to");
        tern_xml_freeze(tmpl);
        xml_serialize_stats_t s0, s1;
        xml_serialize_stats(&s0);
        xml_bytes_t *rest = xml_serialize_rest(tmpl);
        CHECK(rest != NULL);
        for (size_t k = 0; k < sizeof(tos) / sizeof(tos[0]); k++) {
            /* What a fan-out recipient gets: a view sharing the
             * template's children, and its bytes... */
            tern_xml_t *c = xml_fanout_view(tmpl, tos[k]);
            CHECK(c != NULL && tern_xml_frozen(c));
            if (!c)
                continue;
            xml_rest_set(c, rest);
            /* ...against a plain copy with that 'to', written afresh. */
            tern_xml_t *plain = tern_xml_copy(tmpl);
            tern_xml_set_attr(plain, "to", tos[k]);
            /* The view reads, copies and prints as that plain copy. */
            char *ps = tern_xml_to_string(plain, NULL), *vs = tern_xml_to_string(c, NULL);
            CHECK(ps && vs && strcmp(ps, vs) == 0);
            tern_xml_t *vc = tern_xml_copy(c);
            char *vcs = vc ? tern_xml_to_string(vc, NULL) : NULL;
            CHECK(ps && vcs && strcmp(ps, vcs) == 0);
            tern_xml_t *holder = tern_xml_new("x", "urn:holder");
            tern_xml_t *inner = tern_xml_copy_into(holder, c);
            CHECK(inner != NULL && tern_xml_is(inner, tmpl->name, NULL));
            CHECK_STR(tern_xml_attr(inner, "to"), tos[k]);
            tern_xml_unref(holder);
            free(ps);
            free(vs);
            free(vcs);
            tern_xml_unref(vc);
            const char *nss[] = {TERN_NS_CLIENT, "jabber:server", NULL};
            for (size_t j = 0; j < 3; j++) {
                size_t alen = 0, blen = 0;
                char *a = write_once(c, nss[j], &alen);
                char *b = write_once(plain, nss[j], &blen);
                CHECK(a && b && alen == blen && memcmp(a, b, alen) == 0);
                if (a && b && strcmp(a, b) != 0)
                    fprintf(stderr, "  fan-out: %s\n  plain:   %s\n", a, b);
                /* Well-formed, and the recipient's 'to' reads back. */
                tern_xml_t *back = a ? tern_xml_parse(a, alen) : NULL;
                CHECK(back != NULL);
                if (back)
                    CHECK_STR(tern_xml_attr(back, "to"), tos[k]);
                tern_xml_unref(back);
                free(a);
                free(b);
            }
            tern_xml_unref(plain);
            tern_xml_unref(c);
        }
        xml_serialize_stats(&s1);
        /* One full serialization (the rest) + the plain copies; one start
         * tag per recipient and stream namespace. */
        CHECK(s1.heads - s0.heads == 3 * sizeof(tos) / sizeof(tos[0]));
        CHECK(s1.full - s0.full == 1 + 3 * sizeof(tos) / sizeof(tos[0]));
        /* A view keeps its template alive. */
        tern_xml_t *last = xml_fanout_view(tmpl, "late@example.com");
        xml_bytes_unref(rest);
        tern_xml_unref(tmpl);
        char *ls = last ? tern_xml_to_string(last, NULL) : NULL;
        CHECK(ls && strstr(ls, "to='late@example.com'") != NULL);
        free(ls);
        tern_xml_unref(last);
    }
    /* Only a frozen root can be viewed. */
    tern_xml_t *open_tree = tern_xml_new("presence", TERN_NS_CLIENT);
    CHECK(xml_fanout_view(open_tree, "a@b") == NULL);
    tern_xml_unref(open_tree);
}

int main(void)
{
    test_frozen_refuses();
    test_cache_equals_fresh();
    test_received_bytes();
    test_fanout_rest();
    return check_summary();
}
