/*
 * test_xml.c — unit tests of the stanza tree (xml_tree.c), the serializer
 * (xml_serialize.c) and the stream parser (xml_stream.c).
 *
 * Parser tests record every callback in a text log; most inputs are fed
 * whole, split at every byte position and one byte at a time, and all
 * three must give the same log.
 */
#include "check.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "xml/xml_stream.h"

#define NS_STREAM "http://etherx.jabber.org/streams"
#define HEADER                                                                                     \
    "<stream:stream xmlns='jabber:client' xmlns:stream='" NS_STREAM "' to='example.com' "          \
    "version='1.0'>"
#define OPEN_LOG "open {" NS_STREAM "}stream to=example.com version=1.0\n"

/* ---- helpers -------------------------------------------------------- */

/* Serialize into a malloc'd string (NULL stream_ns: standalone form). */
static char *ser(const tern_xml_t *n, const char *stream_ns)
{
    if (!stream_ns)
        return tern_xml_to_string(n, NULL);
    struct evbuffer *b = evbuffer_new();
    char *s = NULL;
    if (b && xml_serialize(n, stream_ns, b) == 0) {
        size_t len = evbuffer_get_length(b);
        s = malloc(len + 1);
        if (s) {
            evbuffer_copyout(b, s, len);
            s[len] = '\0';
        }
    }
    if (b)
        evbuffer_free(b);
    return s;
}

#define CHECK_SER(node, stream_ns, expect)                                                         \
    do {                                                                                           \
        char *got_ = ser((node), (stream_ns));                                                     \
        CHECK_STR(got_, (expect));                                                                 \
        free(got_);                                                                                \
    } while (0)

static char *escaped(const char *s, size_t len)
{
    struct evbuffer *b = evbuffer_new();
    char *r = NULL;
    if (b && xml_escape(s, len, b) == 0) {
        size_t n = evbuffer_get_length(b);
        r = calloc(1, n + 1);
        if (r)
            evbuffer_copyout(b, r, n);
    }
    if (b)
        evbuffer_free(b);
    return r;
}

static size_t count_attrs(const tern_xml_t *n)
{
    size_t c = 0;
    for (const tern_xml_attr_t *a = n->attrs; a; a = a->next)
        c++;
    return c;
}

/* ---- tree ----------------------------------------------------------- */

static void test_tree_build(void)
{
    tern_xml_t *iq = tern_xml_new("iq", TERN_NS_CLIENT);
    CHECK(iq != NULL);
    CHECK(tern_xml_is(iq, "iq", TERN_NS_CLIENT));
    CHECK(tern_xml_is(iq, "iq", NULL));
    CHECK(!tern_xml_is(iq, "message", NULL));
    tern_xml_set_attr(iq, "type", "get");
    tern_xml_set_attr(iq, "id", "1");
    tern_xml_set_attr(iq, "type", "set"); /* replaces, keeps order */
    CHECK_STR(tern_xml_attr(iq, "type"), "set");
    CHECK(count_attrs(iq) == 2);
    CHECK_STR(iq->attrs->name, "type");
    tern_xml_del_attr(iq, "type");
    CHECK(tern_xml_attr(iq, "type") == NULL);
    CHECK(count_attrs(iq) == 1);
    tern_xml_set_attr(iq, "id", NULL); /* NULL value deletes */
    CHECK(iq->attrs == NULL);

    tern_xml_t *q = tern_xml_add_child(iq, "query", "jabber:iq:roster");
    tern_xml_t *item = tern_xml_add_child(q, "item", NULL);
    CHECK_STR(item->ns, "jabber:iq:roster"); /* inherited */
    CHECK(item->parent == q && q->parent == iq);
    tern_xml_t *plain = tern_xml_add_child(iq, "x", NULL);
    CHECK_STR(plain->ns, TERN_NS_CLIENT);
    CHECK(tern_xml_child(iq, "query", "jabber:iq:roster") == q);
    CHECK(tern_xml_child(iq, "query", TERN_NS_CLIENT) == NULL);
    CHECK(tern_xml_child(iq, NULL, TERN_NS_CLIENT) == plain);
    CHECK(tern_xml_child(iq, "nope", NULL) == NULL);

    /* text: concatenated direct text children only */
    tern_xml_t *body = tern_xml_add_child(iq, "body", NULL);
    CHECK_STR(tern_xml_text(body), "");
    tern_xml_add_text(body, "Hello", 5);
    CHECK_STR(tern_xml_text(body), "Hello");
    tern_xml_t *b = tern_xml_add_child(body, "b", NULL);
    tern_xml_add_text(b, "bold", 4);
    tern_xml_add_text(body, ", world!xyz", 8);
    CHECK_STR(tern_xml_text(body), "Hello, world!");
    CHECK(tern_xml_first_element(body) == b);
    CHECK(tern_xml_next_element(b) == NULL);
    CHECK(tern_xml_first_element(iq) == q);
    CHECK(tern_xml_next_element(q) == plain);
    CHECK(tern_xml_next_element(plain) == body);

    /* unlink the middle and the last child */
    tern_xml_unlink(plain);
    CHECK(plain->parent == NULL);
    CHECK(tern_xml_next_element(q) == body);
    tern_xml_unlink(body);
    CHECK(iq->last_child == q);
    tern_xml_add_child(iq, "last", NULL);
    CHECK_SER(iq, TERN_NS_CLIENT,
              "<iq><query xmlns='jabber:iq:roster'><item/></query><last/></iq>");

    char *dup = tern_xml_strdup(iq, "copied");
    CHECK_STR(dup, "copied");

    /* references: the tree lives until the last unref */
    CHECK(tern_xml_ref(q) == q);
    tern_xml_unref(iq);
    CHECK_STR(q->name, "query");
    tern_xml_unref(q);

    CHECK(tern_xml_new(NULL, NULL) == NULL);
    tern_xml_t *nons = tern_xml_new("x", NULL);
    CHECK_STR(nons->ns, "");
    tern_xml_unref(nons);
    tern_xml_unref(NULL);
}

static void test_tree_copy(void)
{
    tern_xml_t *m = tern_xml_new("message", TERN_NS_CLIENT);
    tern_xml_set_attr(m, "to", "juliet@example.com");
    tern_xml_set_attr(m, "{urn:x}a", "1");
    tern_xml_t *body = tern_xml_add_child(m, "body", NULL);
    tern_xml_add_text(body, "hi <there>", 10);
    tern_xml_t *x = tern_xml_add_child(m, "x", "urn:x");
    tern_xml_add_child(tern_xml_add_child(x, "y", NULL), "z", TERN_NS_CLIENT);
    char *orig = tern_xml_to_string(m, NULL);

    tern_xml_t *c = tern_xml_copy(m);
    CHECK(c != NULL && c != m && c->arena != m->arena);
    tern_xml_unref(m); /* the copy must not depend on the original */
    char *copied = tern_xml_to_string(c, NULL);
    CHECK_STR(copied, orig);
    CHECK(c->children->parent == c);

    /* across arenas */
    tern_xml_t *fwd = tern_xml_new("forwarded", "urn:xmpp:forward:0");
    tern_xml_t *in = tern_xml_copy_into(fwd, c);
    CHECK(in != NULL && in->parent == fwd && in->arena == fwd->arena);
    tern_xml_unref(c);
    CHECK_SER(fwd, TERN_NS_CLIENT,
              "<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' "
              "to='juliet@example.com' xmlns:ns1='urn:x' ns1:a='1'><body>hi &lt;there&gt;</body>"
              "<x xmlns='urn:x'><y><z xmlns='jabber:client'/></y></x></message></forwarded>");

    /* into itself: a snapshot is copied, not the growing tree */
    tern_xml_t *again = tern_xml_copy_into(in, in);
    CHECK(again != NULL && again->parent == in);
    CHECK(tern_xml_child(again, "message", NULL) == NULL);
    CHECK_STR(tern_xml_text(tern_xml_child(again, "body", NULL)), "hi <there>");

    /* a text node alone */
    tern_xml_t *t = tern_xml_copy(tern_xml_child(in, "body", NULL)->children);
    CHECK(t != NULL && t->name == NULL && t->text_len == 10);
    CHECK_STR(tern_xml_text(t), "hi <there>");
    tern_xml_unref(t);
    tern_xml_unref(fwd);
    free(orig);
    free(copied);
}

/* Arena growth, oversize allocations, and deep trees (no recursion). */
static void test_tree_big(void)
{
    tern_xml_t *r = tern_xml_new("r", "urn:big");
    for (int i = 0; i < 5000; i++) {
        tern_xml_t *c = tern_xml_add_child(r, "item", NULL);
        tern_xml_set_attr(c, "n", "value");
    }
    size_t big_len = 100000;
    char *big = malloc(big_len);
    memset(big, 'x', big_len);
    tern_xml_add_text(r, big, big_len);
    tern_xml_add_text(r, "!", 1);
    const char *t = tern_xml_text(r);
    CHECK(strlen(t) == big_len + 1 && t[big_len] == '!');
    free(big);

    tern_xml_t *deep = tern_xml_new("d", NULL), *cur = deep;
    for (int i = 0; i < 100000 && cur; i++)
        cur = tern_xml_add_child(cur, "d", NULL);
    CHECK(cur != NULL);
    tern_xml_t *dc = tern_xml_copy(deep);
    CHECK(dc != NULL);
    size_t len = 0;
    char *s = tern_xml_to_string(dc, &len);
    CHECK(s != NULL && len == 100000 * 7 + 4 && strncmp(s, "<d><d>", 6) == 0);
    free(s);
    tern_xml_unref(dc);
    tern_xml_unref(deep);
    tern_xml_unref(r);
}

/* ---- serializer ----------------------------------------------------- */

static void test_escape(void)
{
    tern_xml_t *x = tern_xml_new("x", TERN_NS_CLIENT);
    tern_xml_set_attr(x, "v", "<&>\"'");
    tern_xml_add_text(x, "a<b>&c\"d'e", 10);
    CHECK_SER(x, TERN_NS_CLIENT, "<x v='&lt;&amp;&gt;&quot;&apos;'>a&lt;b&gt;&amp;c\"d'e</x>");
    tern_xml_unref(x);

    /* whitespace a parser would normalise, and characters XML 1.0 forbids */
    x = tern_xml_new("x", TERN_NS_CLIENT);
    tern_xml_set_attr(x, "v", "a\tb\nc\rd\x01");
    tern_xml_add_text(x, "l1\r\nl2\x02\t\x7f", 9);
    CHECK_SER(x, TERN_NS_CLIENT, "<x v='a&#9;b&#10;c&#13;d'>l1&#13;\nl2\t\x7f</x>");
    tern_xml_unref(x);

    char *e = escaped("a&b<c>d\"e'f", 11);
    CHECK_STR(e, "a&amp;b&lt;c&gt;d&quot;e&apos;f");
    free(e);
    e = escaped("plain", 5);
    CHECK_STR(e, "plain");
    free(e);
    e = escaped("", 0);
    CHECK_STR(e, "");
    free(e);
}

static void test_serialize_ns(void)
{
    tern_xml_t *m = tern_xml_new("message", TERN_NS_CLIENT);
    tern_xml_set_attr(m, "to", "a@b");
    tern_xml_add_text(tern_xml_add_child(m, "body", NULL), "hi", 2);
    tern_xml_t *x = tern_xml_add_child(m, "x", "urn:x");
    tern_xml_add_child(x, "y", NULL);
    tern_xml_add_child(x, "z", TERN_NS_CLIENT);
    tern_xml_add_child(x, "none", "");
    const char *inner = "<body>hi</body><x xmlns='urn:x'><y/><z xmlns='jabber:client'/>"
                        "<none xmlns=''/></x></message>";
    char expect[512];
    snprintf(expect, sizeof(expect), "<message to='a@b'>%s", inner);
    CHECK_SER(m, TERN_NS_CLIENT, expect);
    CHECK_SER(m, "jabber:server", expect); /* same text, stream's namespace */
    CHECK_SER(m, "jabber:component:accept", expect);
    snprintf(expect, sizeof(expect), "<message xmlns='jabber:client' to='a@b'>%s", inner);
    CHECK_SER(m, NULL, expect);
    /* a subtree written on its own declares its namespace */
    CHECK_SER(x, TERN_NS_CLIENT,
              "<x xmlns='urn:x'><y/><z xmlns='jabber:client'/><none xmlns=''/></x>");
    CHECK_SER(x->children, NULL, "<y xmlns='urn:x'/>");
    tern_xml_unref(m);

    /* top-level elements outside the content namespace */
    tern_xml_t *tls = tern_xml_new("starttls", "urn:ietf:params:xml:ns:xmpp-tls");
    CHECK_SER(tls, "jabber:server", "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    tern_xml_unref(tls);
    tern_xml_t *none = tern_xml_new("foo", NULL);
    CHECK_SER(none, TERN_NS_CLIENT, "<foo xmlns=''/>");
    CHECK_SER(none, NULL, "<foo/>");
    tern_xml_unref(none);
    tern_xml_t *srv = tern_xml_new("result", "jabber:server");
    CHECK_SER(srv, "jabber:server", "<result/>");
    CHECK_SER(srv, TERN_NS_CLIENT, "<result xmlns='jabber:server'/>");
    tern_xml_unref(srv);

    /* namespaced attributes get generated prefixes; xml: is predeclared */
    tern_xml_t *a = tern_xml_new("a", TERN_NS_CLIENT);
    tern_xml_set_attr(a, "{urn:a}one", "1");
    tern_xml_set_attr(a, "{urn:b}two", "2");
    tern_xml_set_attr(a, "{urn:a}three", "3");
    tern_xml_set_attr(a, "xml:lang", "en");
    tern_xml_set_attr(a, "{" TERN_NS_XML "}space", "preserve");
    tern_xml_set_attr(a, "{urn:q'}v", "'");
    CHECK_SER(a, TERN_NS_CLIENT,
              "<a xmlns:ns0='urn:a' ns0:one='1' xmlns:ns1='urn:b' ns1:two='2' ns0:three='3' "
              "xml:lang='en' xml:space='preserve' xmlns:ns5='urn:q&apos;' ns5:v='&apos;'/>");
    tern_xml_unref(a);

    size_t len = 0;
    tern_xml_t *p = tern_xml_new("presence", TERN_NS_CLIENT);
    char *s = tern_xml_to_string(p, &len);
    CHECK_STR(s, "<presence xmlns='jabber:client'/>");
    CHECK(len == strlen("<presence xmlns='jabber:client'/>"));
    free(s);
    tern_xml_unref(p);
}

/* ---- stream parser harness ------------------------------------------ */

typedef struct {
    const xml_stream_limits_t *limits;
    const char *restart_on; /* restart inside on_stanza after this element */
    const char *stop_on;    /* stop inside on_stanza after this element */
    int stop_in_open;       /* stop inside on_open */
    const char *stream_ns;  /* for the log (default jabber:client) */
} opts_t;

typedef struct {
    xml_stream_t *xs;
    struct evbuffer *log;
    const opts_t *o;
    tern_xml_t *kept[8];
    int n_kept;
} rec_t;

static void rec_open(void *ctx, const char *name, const char *ns, const char **attrs)
{
    rec_t *r = ctx;
    evbuffer_add_printf(r->log, "open {%s}%s", ns, name);
    for (size_t i = 0; attrs[i]; i += 2)
        evbuffer_add_printf(r->log, " %s=%s", attrs[i], attrs[i + 1]);
    evbuffer_add_printf(r->log, "\n");
    if (r->o->stop_in_open)
        xml_stream_stop(r->xs);
}

static void rec_stanza(void *ctx, tern_xml_t *st)
{
    rec_t *r = ctx;
    evbuffer_add_printf(r->log, "stanza ");
    xml_serialize(st, r->o->stream_ns ? r->o->stream_ns : TERN_NS_CLIENT, r->log);
    evbuffer_add_printf(r->log, "\n");
    if (r->o->restart_on && tern_xml_is(st, r->o->restart_on, NULL))
        xml_stream_restart(r->xs);
    if (r->o->stop_on && tern_xml_is(st, r->o->stop_on, NULL))
        xml_stream_stop(r->xs);
    if (r->n_kept < 8)
        r->kept[r->n_kept++] = st;
    else
        tern_xml_unref(st);
}

static void rec_close(void *ctx)
{
    rec_t *r = ctx;
    evbuffer_add_printf(r->log, "close\n");
}

static void rec_error(void *ctx, const char *condition, const char *text)
{
    rec_t *r = ctx;
    evbuffer_add_printf(r->log, "error %s: %s\n", condition, text ? text : "");
}

static const xml_stream_callbacks_t rec_cb = {rec_open, rec_stanza, rec_close, rec_error};

static void rec_init(rec_t *r, const opts_t *o)
{
    memset(r, 0, sizeof(*r));
    r->o = o;
    r->log = evbuffer_new();
    r->xs = xml_stream_new(&rec_cb, r, o->limits);
}

static char *rec_done(rec_t *r, int keep)
{
    size_t n = evbuffer_get_length(r->log);
    char *s = malloc(n + 1);
    evbuffer_copyout(r->log, s, n);
    s[n] = '\0';
    evbuffer_free(r->log);
    xml_stream_free(&r->xs);
    if (!keep)
        for (int i = 0; i < r->n_kept; i++)
            tern_xml_unref(r->kept[i]);
    return s;
}

enum { WHOLE = -1, BYTES = 0 };

/* Feed `in` whole, one byte at a time, or split at `split`; keep feeding
 * after -1 (it must be ignored) and log the last return code. */
static char *run(const char *in, size_t len, const opts_t *o, long split)
{
    rec_t r;
    rec_init(&r, o);
    int rc = 0;
    if (split == WHOLE) {
        rc = xml_stream_feed(r.xs, in, len);
    } else if (split == BYTES) {
        for (size_t i = 0; i < len; i++)
            rc = xml_stream_feed(r.xs, in + i, 1);
    } else {
        rc = xml_stream_feed(r.xs, in, (size_t)split);
        rc = xml_stream_feed(r.xs, in + split, len - (size_t)split);
    }
    evbuffer_add_printf(r.log, "rc=%d\n", rc);
    return rec_done(&r, 0);
}

/* The log of `in` must be `expect` for every way of splitting it. */
static void check_splits(const char *in, size_t len, const opts_t *o, const char *expect)
{
    char *whole = run(in, len, o, WHOLE);
    CHECK_STR(whole, expect);
    free(whole);
    int bad = 0;
    for (long k = 0; k < (long)len; k++) {
        char *got = run(in, len, o, k);
        if (strcmp(got, expect) != 0) {
            if (!bad)
                fprintf(stderr, "split %ld of %zu differs:\n%s\n", k, len, got);
            bad++;
        }
        free(got);
    }
    CHECK(bad == 0);
}

#define CHECK_SPLITS(in, o, expect) check_splits((in), strlen(in), (o), (expect))

/* ---- parser: a realistic client stream ------------------------------ */

static const char client_stream[] =
    "<?xml version='1.0'?>\n"
    "<stream:stream xmlns='jabber:client' xmlns:stream='" NS_STREAM "' to='example.com' "
    "version='1.0' xml:lang='en'>\n  "
    "<message to='juliet@example.com/balcony' type='chat' id='m1' xml:lang='en'>"
    "<body>Wherefore art thou, Romeo? &amp; &lt;3 &#x263A; \xE2\x98\xBA</body>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/>"
    "<x:data xmlns:x='urn:example:x' x:flag='yes' plain=\"dq'uote\">  <x:item>one</x:item>"
    "text<![CDATA[<raw> & stuff]]></x:data></message>"
    " \n\t \r\n"
    "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq> "
    "<presence><show>away</show><status>Out &amp; about</status>"
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://example.com' "
    "ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>\n"
    "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>"
    "</stream:stream>";

static const char client_log[] =
    "open {" NS_STREAM "}stream to=example.com version=1.0 xml:lang=en\n"
    "stanza <message to='juliet@example.com/balcony' type='chat' id='m1' xml:lang='en'>"
    "<body>Wherefore art thou, Romeo? &amp; &lt;3 \xE2\x98\xBA \xE2\x98\xBA</body>"
    "<active xmlns='http://jabber.org/protocol/chatstates'/>"
    "<data xmlns='urn:example:x' xmlns:ns0='urn:example:x' ns0:flag='yes' plain='dq&apos;uote'>"
    "  <item>one</item>text&lt;raw&gt; &amp; stuff</data></message>\n"
    "stanza <iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>\n"
    "stanza <presence><show>away</show><status>Out &amp; about</status>"
    "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://example.com' "
    "ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>\n"
    "stanza <features xmlns='" NS_STREAM "'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
    "</features>\n"
    "close\n"
    "rc=0\n";

static void test_parse_client(void)
{
    opts_t o = {0};
    rec_t r;
    rec_init(&r, &o);
    CHECK(xml_stream_feed(r.xs, client_stream, strlen(client_stream)) == 0);
    CHECK(r.n_kept == 4);
    tern_xml_t *m = r.kept[0];
    CHECK(tern_xml_is(m, "message", TERN_NS_CLIENT));
    CHECK_STR(tern_xml_attr(m, "xml:lang"), "en");
    CHECK_STR(tern_xml_attr(m, "type"), "chat");
    tern_xml_t *body = tern_xml_child(m, "body", TERN_NS_CLIENT);
    CHECK_STR(tern_xml_text(body), "Wherefore art thou, Romeo? & <3 \xE2\x98\xBA \xE2\x98\xBA");
    CHECK(body && body->children && body->children->next == NULL); /* one text node */
    CHECK(tern_xml_child(m, "active", "http://jabber.org/protocol/chatstates") != NULL);
    tern_xml_t *data = tern_xml_child(m, "data", "urn:example:x");
    CHECK_STR(tern_xml_attr(data, "{urn:example:x}flag"), "yes");
    CHECK_STR(tern_xml_attr(data, "plain"), "dq'uote");
    CHECK_STR(tern_xml_text(data), "  text<raw> & stuff");
    CHECK(tern_xml_is(tern_xml_first_element(data), "item", "urn:example:x"));
    tern_xml_t *q = tern_xml_child(r.kept[1], "query", NULL);
    CHECK(tern_xml_is(q, "query", "jabber:iq:roster"));
    CHECK(tern_xml_is(r.kept[3], "features", NS_STREAM));
    /* stanzas outlive the stream */
    char *log = rec_done(&r, 1);
    CHECK_STR(tern_xml_text(tern_xml_child(r.kept[2], "show", NULL)), "away");
    CHECK_SER(
        r.kept[1], NULL,
        "<iq xmlns='jabber:client' type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>");
    for (int i = 0; i < r.n_kept; i++)
        tern_xml_unref(r.kept[i]);
    free(log);

    CHECK_SPLITS(client_stream, &o, client_log);
    /* one byte at a time, separately named in the brief */
    char *bytes = run(client_stream, strlen(client_stream), &o, BYTES);
    CHECK_STR(bytes, client_log);
    free(bytes);
}

/* jabber:server and jabber:component:accept read as jabber:client. */
static void test_parse_server(void)
{
    static const char in[] =
        "<stream:stream xmlns='jabber:server' xmlns:stream='" NS_STREAM "' "
        "xmlns:db='jabber:server:dialback' from='a.example' to='b.example' version='1.0'>"
        "<message from='x@a.example' to='y@b.example'><body>hi</body>"
        "<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' from='z@a.example'>"
        "<body>inner</body></message></forwarded></message>"
        "<db:result from='a.example' to='b.example'>key</db:result>";
    opts_t o = {.stream_ns = "jabber:server"};
    rec_t r;
    rec_init(&r, &o);
    CHECK(xml_stream_feed(r.xs, in, strlen(in)) == 0);
    CHECK(r.n_kept == 2);
    tern_xml_t *m = r.kept[0];
    CHECK(tern_xml_is(m, "message", TERN_NS_CLIENT));
    CHECK(tern_xml_is(tern_xml_child(m, "body", NULL), "body", TERN_NS_CLIENT));
    tern_xml_t *inner = tern_xml_child(tern_xml_child(m, "forwarded", NULL), "message", NULL);
    CHECK(tern_xml_is(inner, "message", TERN_NS_CLIENT));
    CHECK(tern_xml_is(r.kept[1], "result", "jabber:server:dialback"));
    CHECK_SER(m, TERN_NS_CLIENT,
              "<message from='x@a.example' to='y@b.example'><body>hi</body>"
              "<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client' "
              "from='z@a.example'><body>inner</body></message></forwarded></message>");
    char *log = rec_done(&r, 0);
    CHECK(strstr(log,
                 "open {" NS_STREAM "}stream from=a.example to=b.example version=1.0\n"
                 "stanza <message from='x@a.example' to='y@b.example'><body>hi</body>") == log);
    CHECK(strstr(log, "stanza <result xmlns='jabber:server:dialback' from='a.example' "
                      "to='b.example'>key</result>\n") != NULL);
    free(log);

    static const char comp[] = "<stream:stream xmlns='jabber:component:accept' "
                               "xmlns:stream='" NS_STREAM "' to='c.example'>"
                               "<handshake>abc</handshake><iq type='get' id='1'/>";
    opts_t oc = {.stream_ns = "jabber:component:accept"};
    CHECK_SPLITS(comp, &oc,
                 "open {" NS_STREAM "}stream to=c.example\n"
                 "stanza <handshake>abc</handshake>\nstanza <iq type='get' id='1'/>\nrc=0\n");
}

/* ---- parser: restricted XML and malformed input ---------------------- */

static void test_restricted(void)
{
    opts_t o = {0};
    CHECK_SPLITS("<!DOCTYPE stream>" HEADER, &o, "error restricted-xml: DTD not allowed\nrc=-1\n");
    CHECK_SPLITS("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
                 "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
                 "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>"
                 "<lolz>&lol3;</lolz>",
                 &o, "error restricted-xml: DTD not allowed\nrc=-1\n");
    CHECK_SPLITS("<!DOCTYPE foo [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>" HEADER
                 "<message><body>&xxe;</body></message>",
                 &o, "error restricted-xml: DTD not allowed\nrc=-1\n");
    CHECK_SPLITS("<!DOCTYPE stream SYSTEM \"file:///etc/passwd\">" HEADER, &o,
                 "error restricted-xml: DTD not allowed\nrc=-1\n");
    CHECK_SPLITS(HEADER "<?php system('id'); ?><message/>", &o,
                 OPEN_LOG "error restricted-xml: processing instruction not allowed\nrc=-1\n");
    CHECK_SPLITS(HEADER "<message><body>x<?pi data?></body></message>", &o,
                 OPEN_LOG "error restricted-xml: processing instruction not allowed\nrc=-1\n");
    CHECK_SPLITS("<?xml version='1.0'?><?xml-stylesheet href='x'?>" HEADER, &o,
                 "error restricted-xml: processing instruction not allowed\nrc=-1\n");
    CHECK_SPLITS(HEADER "<message><!-- hi --></message>", &o,
                 OPEN_LOG "error restricted-xml: comment not allowed\nrc=-1\n");
    CHECK_SPLITS("<!-- before -->" HEADER, &o,
                 "error restricted-xml: comment not allowed\nrc=-1\n");
    CHECK_SPLITS(HEADER "<message/><!---->", &o,
                 OPEN_LOG "stanza <message/>\nerror restricted-xml: comment not allowed\nrc=-1\n");
    CHECK_SPLITS("<?xml version='1.0' encoding='ISO-8859-1'?>" HEADER, &o,
                 "error unsupported-encoding: only UTF-8 is supported\nrc=-1\n");
    CHECK_SPLITS("<?xml version='1.0' encoding='utf-8'?>" HEADER "<a/>", &o,
                 OPEN_LOG "stanza <a/>\nrc=0\n");
}

static void test_malformed(void)
{
    opts_t o = {0};
    CHECK_SPLITS(HEADER "<message><body>&foo;</body></message>", &o,
                 OPEN_LOG "error not-well-formed: undefined entity\nrc=-1\n");
    CHECK_SPLITS(HEADER "<message><body></message>", &o,
                 OPEN_LOG "error not-well-formed: mismatched tag\nrc=-1\n");
    CHECK_SPLITS(HEADER "<message><body>\xC3\x28</body></message>", &o,
                 OPEN_LOG "error not-well-formed: not well-formed (invalid token)\nrc=-1\n");
    CHECK_SPLITS(HEADER "<a x='1' x='2'/>", &o,
                 OPEN_LOG "error not-well-formed: duplicate attribute\nrc=-1\n");
    CHECK_SPLITS(HEADER "<p:a/>", &o, OPEN_LOG "error not-well-formed: unbound prefix\nrc=-1\n");
    CHECK_SPLITS(HEADER "<a/></stream:stream><b/>", &o,
                 OPEN_LOG "stanza <a/>\nclose\n"
                          "error not-well-formed: junk after document element\nrc=-1\n");
    CHECK_SPLITS(HEADER "  hello <a/>", &o,
                 OPEN_LOG "error bad-format: text between stanzas\nrc=-1\n");

    /* after an error, input is ignored */
    rec_t r;
    rec_init(&r, &o);
    CHECK(xml_stream_feed(r.xs, HEADER "<a></b>", strlen(HEADER "<a></b>")) == -1);
    size_t n = evbuffer_get_length(r.log);
    CHECK(xml_stream_feed(r.xs, "<c/>", 4) == -1);
    CHECK(xml_stream_feed(r.xs, "", 0) == -1);
    CHECK(evbuffer_get_length(r.log) == n);
    free(rec_done(&r, 0));
}

/* ---- parser: limits ------------------------------------------------- */

/* Feed one byte at a time; the offset of the byte whose feed failed. */
static long fail_offset(const char *in, size_t len, const opts_t *o)
{
    rec_t r;
    rec_init(&r, o);
    long at = -1;
    for (size_t i = 0; i < len && at < 0; i++)
        if (xml_stream_feed(r.xs, in + i, 1) < 0)
            at = (long)i;
    free(rec_done(&r, 0));
    return at;
}

/* HEADER + `head` + `n` x `fill` + `tail` in a malloc'd string. */
static char *make(const char *head, char fill, size_t n, const char *tail)
{
    size_t hl = strlen(HEADER), h = strlen(head), t = strlen(tail);
    char *s = malloc(hl + h + n + t + 1);
    memcpy(s, HEADER, hl);
    memcpy(s + hl, head, h);
    memset(s + hl + h, fill, n);
    memcpy(s + hl + h + n, tail, t + 1);
    return s;
}

static void test_limits_size(void)
{
    xml_stream_limits_t lim = {.max_stanza_bytes = 1024, .max_depth = 64, .max_attrs = 64};
    opts_t o = {.limits = &lim};
    const char *too_large = OPEN_LOG "error policy-violation: stanza too large\nrc=-1\n";
    long stanza_at = (long)strlen(HEADER);

    /* a stanza that never closes is cut off at its 1025th byte */
    char *in = make("<message to='a@b'><body>", 'a', 4000, "");
    CHECK_SPLITS(in, &o, too_large);
    CHECK(fail_offset(in, strlen(in), &o) == stanza_at + 1024);
    free(in);

    /* so is a start tag that never ends */
    in = make("<message to='", 'a', 4000, "");
    CHECK_SPLITS(in, &o, too_large);
    CHECK(fail_offset(in, strlen(in), &o) == stanza_at + 1024);
    free(in);

    /* exactly 1024 bytes pass, 1025 do not */
    const char *open = "<message><body>", *close = "</body></message>";
    size_t pad = 1024 - strlen(open) - strlen(close);
    char tail[64];
    snprintf(tail, sizeof(tail), "%s<a/>", close);
    in = make(open, 'x', pad, tail);
    char *log = run(in, strlen(in), &o, WHOLE);
    CHECK(strstr(log, "</body></message>\nstanza <a/>\nrc=0\n") != NULL);
    free(log);
    log = run(in, strlen(in), &o, BYTES);
    CHECK(strstr(log, "</body></message>\nstanza <a/>\nrc=0\n") != NULL);
    free(log);
    free(in);
    in = make(open, 'x', pad + 1, tail);
    CHECK_SPLITS(in, &o, too_large);
    free(in);

    /* nested text and attributes count too */
    in = make("<iq><query xmlns='urn:x'><item name='", 'n', 1100, "'/></query></iq>");
    CHECK_SPLITS(in, &o, too_large);
    free(in);

    /* the stream header is bounded as well */
    char *hdr = malloc(3000);
    snprintf(hdr, 3000, "<stream:stream xmlns='jabber:client' xmlns:stream='%s' to='", NS_STREAM);
    size_t hl = strlen(hdr);
    memset(hdr + hl, 'h', 2000);
    hdr[hl + 2000] = '\0';
    CHECK_SPLITS(hdr, &o, "error policy-violation: stream header too large\nrc=-1\n");
    CHECK(fail_offset(hdr, strlen(hdr), &o) == 1024);
    free(hdr);

    /* whitespace keepalives and many small stanzas are no stanza */
    in = make("<a/>", ' ', 5000, "<b/>");
    CHECK_SPLITS(in, &o, OPEN_LOG "stanza <a/>\nstanza <b/>\nrc=0\n");
    free(in);
    size_t many = 600;
    char *lots = malloc(strlen(HEADER) + many * 4 + 1);
    strcpy(lots, HEADER);
    for (size_t i = 0; i < many; i++)
        strcat(lots, "<a/>");
    log = run(lots, strlen(lots), &o, WHOLE);
    CHECK(strlen(log) == strlen(OPEN_LOG) + many * strlen("stanza <a/>\n") + strlen("rc=0\n"));
    free(log);
    free(lots);
}

static void test_limits_depth_attrs(void)
{
    xml_stream_limits_t lim = {.max_stanza_bytes = 4096, .max_depth = 4, .max_attrs = 3};
    opts_t o = {.limits = &lim};
    CHECK_SPLITS(HEADER "<a><b><c><d/></c></b></a>", &o,
                 OPEN_LOG "stanza <a><b><c><d/></c></b></a>\nrc=0\n");
    CHECK_SPLITS(HEADER "<a><b><c><d><e/></d></c></b></a>", &o,
                 OPEN_LOG "error policy-violation: stanza too deep\nrc=-1\n");
    CHECK_SPLITS(HEADER "<a x='1' y='2' z='3'/>", &o,
                 OPEN_LOG "stanza <a x='1' y='2' z='3'/>\nrc=0\n");
    CHECK_SPLITS(HEADER "<a><b w='0' x='1' y='2' z='3'/></a>", &o,
                 OPEN_LOG "error policy-violation: too many attributes\nrc=-1\n");

    /* defaults: NULL limits allow 64 levels */
    opts_t d = {0};
    char deep[2048] = HEADER;
    for (int i = 0; i < 65; i++)
        strcat(deep, "<d>");
    CHECK_SPLITS(deep, &d, OPEN_LOG "error policy-violation: stanza too deep\nrc=-1\n");
}

/* ---- parser: restart and stop --------------------------------------- */

static void test_restart(void)
{
    opts_t o = {.restart_on = "auth"}, plain = {0};
    char *log;
    /* SASL success: the client's new header follows <auth/> in the same
     * buffer, with an XML declaration this time. */
    static const char sasl[] =
        "<?xml version='1.0'?>" HEADER "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
        "mechanism='PLAIN'>AGp1bGlldAByMG0zMA==</auth>"
        "<?xml version='1.0'?>" HEADER "<iq type='set' id='b'/></stream:stream>";
    CHECK_SPLITS(sasl, &o,
                 OPEN_LOG "stanza <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                          "mechanism='PLAIN'>AGp1bGlldAByMG0zMA==</auth>\n" OPEN_LOG
                          "stanza <iq type='set' id='b'/>\nclose\nrc=0\n");
    /* a client may send a newline (or any whitespace) after the element
     * that restarts the stream and before the new XML declaration */
    static const char sasl_nl[] =
        "<?xml version='1.0'?>" HEADER "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
        "mechanism='PLAIN'>AGp1bGlldAByMG0zMA==</auth>"
        "\n \r\n\t<?xml version='1.0'?>" HEADER "<iq type='set' id='b'/></stream:stream>";
    CHECK_SPLITS(sasl_nl, &o,
                 OPEN_LOG "stanza <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                          "mechanism='PLAIN'>AGp1bGlldAByMG0zMA==</auth>\n" OPEN_LOG
                          "stanza <iq type='set' id='b'/>\nclose\nrc=0\n");
    /* and so before the very first one */
    CHECK_SPLITS("\r\n<?xml version='1.0'?>" HEADER "<a/>", &plain, OPEN_LOG "stanza <a/>\nrc=0\n");
    /* but nothing else */
    log = run("x<?xml version='1.0'?>" HEADER, strlen(HEADER) + 22, &plain, WHOLE);
    CHECK(strstr(log, "error not-well-formed") != NULL);
    free(log);

    /* without the restart, the second declaration is an error */
    log = run(sasl, strlen(sasl), &plain, WHOLE);
    CHECK(strstr(log, "error not-well-formed") != NULL);
    free(log);

    /* STARTTLS-like: an empty element, then a header without declaration,
     * twice in a row */
    opts_t t = {.restart_on = "starttls"};
    static const char tls[] =
        HEADER "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" HEADER
               "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>" HEADER "<presence/>";
    CHECK_SPLITS(tls, &t,
                 OPEN_LOG "stanza <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n" OPEN_LOG
                          "stanza <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n" OPEN_LOG
                          "stanza <presence/>\nrc=0\n");

    /* the size window starts again in the new document */
    xml_stream_limits_t lim = {.max_stanza_bytes = 256, .max_depth = 8, .max_attrs = 8};
    opts_t small = {.limits = &lim, .restart_on = "auth"};
    char *in = make("<auth>", 'z', 200, "</auth>" HEADER "<a/>");
    log = run(in, strlen(in), &small, WHOLE);
    CHECK(strstr(log, "</auth>\n" OPEN_LOG "stanza <a/>\nrc=0\n") != NULL);
    free(log);
    free(in);

    /* outside a callback: the next byte starts a new document */
    rec_t r;
    rec_init(&r, &plain);
    CHECK(xml_stream_feed(r.xs, HEADER "<a/>", strlen(HEADER "<a/>")) == 0);
    xml_stream_restart(r.xs);
    CHECK(xml_stream_feed(r.xs, HEADER "<b/>", strlen(HEADER "<b/>")) == 0);
    log = rec_done(&r, 0);
    CHECK_STR(log, OPEN_LOG "stanza <a/>\n" OPEN_LOG "stanza <b/>\n");
    free(log);
}

static void test_stop(void)
{
    opts_t o = {.stop_on = "message"};
    CHECK_SPLITS(HEADER "<iq/><message/><presence/></stream:stream>", &o,
                 OPEN_LOG "stanza <iq/>\nstanza <message/>\nrc=-1\n");
    /* an empty stanza element: no stray end callback after stop */
    CHECK_SPLITS(HEADER "<message/><message/>", &o, OPEN_LOG "stanza <message/>\nrc=-1\n");
    opts_t oo = {.stop_in_open = 1};
    CHECK_SPLITS(HEADER "<iq/>", &oo, OPEN_LOG "rc=-1\n");

    /* stop and restart in the same callback: stop wins */
    opts_t both = {.stop_on = "auth", .restart_on = "auth"};
    CHECK_SPLITS(HEADER "<auth/>" HEADER "<iq/>", &both, OPEN_LOG "stanza <auth/>\nrc=-1\n");

    /* stop from outside */
    rec_t r;
    rec_init(&r, &o);
    CHECK(xml_stream_feed(r.xs, HEADER, strlen(HEADER)) == 0);
    xml_stream_stop(r.xs);
    CHECK(xml_stream_feed(r.xs, "<iq/>", 5) == -1);
    char *log = rec_done(&r, 0);
    CHECK_STR(log, OPEN_LOG);
    free(log);

    xml_stream_t *none = NULL;
    xml_stream_free(&none);
    CHECK(xml_stream_new(NULL, NULL, NULL) == NULL);
}

/* tern_xml_parse: what tern_xml_to_string() wrote reads back the same. */
static void test_parse_stored(void)
{
    tern_xml_t *m = tern_xml_new("message", TERN_NS_CLIENT);
    tern_xml_set_attr(m, "to", "a@b/c");
    tern_xml_set_attr(m, "xml:lang", "en");
    tern_xml_t *body = tern_xml_add_child(m, "body", NULL);
    tern_xml_add_text(body, "1 < 2 & \"x\"", 12);
    tern_xml_t *x = tern_xml_add_child(m, "x", "urn:example");
    tern_xml_add_child(x, "y", NULL);
    size_t len;
    char *text = tern_xml_to_string(m, &len);
    tern_xml_t *back = tern_xml_parse(text, len);
    CHECK(back != NULL);
    if (back) {
        CHECK(tern_xml_is(back, "message", TERN_NS_CLIENT));
        CHECK_STR(tern_xml_attr(back, "to"), "a@b/c");
        CHECK_STR(tern_xml_attr(back, "xml:lang"), "en");
        CHECK_STR(tern_xml_text(tern_xml_child(back, "body", TERN_NS_CLIENT)), "1 < 2 & \"x\"");
        tern_xml_t *bx = tern_xml_child(back, "x", "urn:example");
        CHECK(bx && tern_xml_child(bx, "y", "urn:example") != NULL);
        char *again = tern_xml_to_string(back, NULL);
        CHECK_STR(again, text);
        free(again);
        tern_xml_unref(back);
    }
    free(text);
    tern_xml_unref(m);

    static const char *const bad[] = {
        "",
        "<a xmlns='x'>",
        "<a xmlns='x'/><b xmlns='x'/>",
        "text",
        "<!DOCTYPE a [<!ENTITY e 'x'>]><a>&e;</a>",
        "<a xmlns='x'><?pi?></a>",
        "</stream:stream><a/>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(tern_xml_parse(bad[i], strlen(bad[i])) == NULL);
    CHECK(tern_xml_parse(NULL, 3) == NULL);
    tern_xml_t *plain = tern_xml_parse("<q xmlns='jabber:iq:private'><n xmlns='s'>v</n></q>", 51);
    CHECK(plain && tern_xml_is(plain, "q", "jabber:iq:private"));
    if (plain)
        tern_xml_unref(plain);
}

/* An idle stream frees its parser between stanzas and resumes it with the
 * header's own namespace declarations. */
static void test_park(void)
{
    opts_t o = {0};
    rec_t r;
    rec_init(&r, &o);
    static const char header[] = "<s:stream xmlns='jabber:client' xmlns:s='" NS_STREAM "' "
                                 "xmlns:x='urn:x' to='example.com' version='1.0'>";
    CHECK(xml_stream_feed(r.xs, header, strlen(header)) == 0);
    CHECK(!xml_stream_parked(r.xs)); /* only when asked */
    CHECK(xml_stream_park(r.xs) == 1);
    CHECK(xml_stream_parked(r.xs));
    CHECK(xml_stream_park(r.xs) == 1); /* already */
    static const char part1[] = "<message x:attr='1'><body>hel";
    static const char part2[] = "lo</body></message> ";
    CHECK(xml_stream_feed(r.xs, part1, strlen(part1)) == 0);
    CHECK(xml_stream_park(r.xs) == 0); /* a stanza is open */
    CHECK(!xml_stream_parked(r.xs));
    CHECK(xml_stream_feed(r.xs, part2, strlen(part2)) == 0);
    CHECK(xml_stream_park(r.xs) == 1);
    static const char tail[] = "<presence/>\r";
    CHECK(xml_stream_feed(r.xs, tail, strlen(tail)) == 0);
    CHECK(xml_stream_park(r.xs) == 0); /* expat holds a trailing CR */
    CHECK(!xml_stream_parked(r.xs));
    CHECK(xml_stream_feed(r.xs, "\n</s:stream>", 12) == 0);
    char *log = rec_done(&r, 0);
    CHECK(strstr(log, "<body>hello</body>") != NULL);
    CHECK(strstr(log, "urn:x") != NULL); /* the prefix from the header still resolves */
    CHECK(strstr(log, "stanza <presence/>") != NULL);
    CHECK(strstr(log, "close") != NULL);
    CHECK(strstr(log, "error") == NULL);
    free(log);
}

/* Texts bigger than the arena's next chunk but not big enough for a block
 * of their own must still fit (they overflowed the chunk before). */
static void test_tree_text_sizes(void)
{
    static const size_t sizes[] = {3000, 7000, 100, 8000};
    tern_xml_t *root = tern_xml_new("message", TERN_NS_CLIENT);
    CHECK(root != NULL);
    char *text = malloc(8001);
    CHECK(text != NULL);
    if (!root || !text) {
        free(text);
        tern_xml_unref(root);
        return;
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        memset(text, (int)('a' + i), sizes[i]);
        tern_xml_t *el = tern_xml_add_child(root, "body", NULL);
        CHECK(el != NULL);
        if (!el)
            break;
        tern_xml_add_text(el, text, sizes[i]);
        const char *got = tern_xml_text(el);
        CHECK(strlen(got) == sizes[i]);
        CHECK(got[0] == (char)('a' + i) && got[sizes[i] - 1] == (char)('a' + i));
    }
    free(text);
    tern_xml_unref(root);
}

/* ---- sizes: every size class of the tree's arena ---------------------- */

/* Sizes worth trying against the arena (xml_tree.c): every size up to a
 * little past the largest ordinary chunk request, every size within 8
 * bytes of each power of two up to 64 KiB + 8 (chunk sizes, the
 * dedicated-block threshold), every `step`th size up to 64 KiB, then 16 KiB
 * steps (each -1, +0, +1) up to 2 * 256 KiB (past the default stanza
 * limit).  Writes at most `cap` sizes into `out`; returns how many. */
static size_t sweep_sizes(size_t *out, size_t cap, size_t dense_to, size_t step)
{
    size_t n = 0;
#define ADD(v)                                                                                     \
    do {                                                                                           \
        if (n < cap && (v) > 0)                                                                    \
            out[n++] = (v);                                                                        \
    } while (0)
    for (size_t v = 1; v <= dense_to; v++)
        ADD(v);
    for (size_t p = 16; p <= 65536; p *= 2)
        for (size_t d = 0; d <= 16; d++)
            if (p + d - 8 > dense_to)
                ADD(p + d - 8);
    for (size_t v = dense_to + 1; v <= 65536; v += step)
        ADD(v);
    for (size_t v = 65536 + 16384; v <= 2 * 256 * 1024 + 16384; v += 16384) {
        ADD(v - 1);
        ADD(v);
        ADD(v + 1);
    }
#undef ADD
    return n;
}

static char *filled(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* The building API: a text, an attribute value and an element name of
 * every swept size, at the start of a fresh arena and after `pre` bytes
 * of other strings, then copied and joined. */
static void test_sizes_tree(void)
{
    static size_t sizes[16384];
    size_t count = sweep_sizes(sizes, sizeof(sizes) / sizeof(sizes[0]), 4200, 127);
    int bad = 0;
    static const size_t pre_sizes[] = {0, 700, 1900};
    for (size_t i = 0; i < count; i++) {
        size_t n = sizes[i];
        char *big = filled('q', n);
        for (size_t k = 0; k < sizeof(pre_sizes) / sizeof(pre_sizes[0]); k++) {
            char *pre = filled('p', pre_sizes[k]);
            tern_xml_t *m = tern_xml_new("message", TERN_NS_CLIENT);
            if (pre_sizes[k])
                tern_xml_add_text(m, pre, pre_sizes[k]);
            tern_xml_t *body = tern_xml_add_child(m, "body", NULL);
            tern_xml_add_text(body, big, n);
            tern_xml_set_attr(m, "id", big);
            tern_xml_t *named = tern_xml_add_child(m, big, "urn:x");
            tern_xml_add_text(body, "!", 1);
            const char *t = tern_xml_text(body); /* joins two texts */
            tern_xml_t *copy = tern_xml_copy(m);
            tern_xml_t *root = tern_xml_new(big, NULL);
            char *dup = tern_xml_strdup(m, big);
            int ok = body && named && copy && root && dup && strlen(t) == n + 1 &&
                     memcmp(t, big, n) == 0 && t[n] == '!' &&
                     strcmp(tern_xml_attr(m, "id"), big) == 0 && strcmp(named->name, big) == 0 &&
                     strcmp(root->name, big) == 0 && strcmp(dup, big) == 0 &&
                     tern_xml_child(copy, big, "urn:x") != NULL &&
                     strcmp(tern_xml_attr(copy, "id"), big) == 0;
            if (!ok && !bad++)
                fprintf(stderr, "tree size %zu (after %zu) wrong\n", n, pre_sizes[k]);
            tern_xml_unref(root);
            tern_xml_unref(copy);
            tern_xml_unref(m);
            free(pre);
        }
        free(big);
    }
    CHECK(bad == 0);
}

typedef struct {
    tern_xml_t *got;
    int stanzas;
    char err[64];
} take_t;

static void take_stanza(void *ctx, tern_xml_t *st)
{
    take_t *t = ctx;
    if (t->stanzas++ == 0)
        t->got = st;
    else
        tern_xml_unref(st);
}

static void take_error(void *ctx, const char *condition, const char *text)
{
    (void)text;
    snprintf(((take_t *)ctx)->err, sizeof(((take_t *)ctx)->err), "%s", condition);
}

/* Parse HEADER + `head` + n x 'v' + `tail` with the default limits, fed
 * whole or in 1000-byte reads; the stanza (or NULL) and its error. */
static tern_xml_t *parse_sized(const char *head, size_t n, const char *tail, int reads, take_t *t)
{
    static const xml_stream_callbacks_t cb = {.on_stanza = take_stanza, .on_error = take_error};
    memset(t, 0, sizeof(*t));
    char *in = make(head, 'v', n, tail);
    size_t len = strlen(in);
    xml_stream_t *xs = xml_stream_new(&cb, t, NULL);
    for (size_t off = 0; off < len;) {
        size_t k = reads && len - off > 1000 ? 1000 : len - off;
        if (xml_stream_feed(xs, in + off, k) < 0)
            break;
        off += k;
    }
    xml_stream_free(&xs);
    free(in);
    return t->got;
}

/* The parser: a body text, an attribute value and an element name of every
 * swept size are received intact up to the stanza limit (256 KiB by
 * default), and refused with policy-violation past it. */
static void test_sizes_parser(void)
{
    static size_t sizes[16384];
    size_t count = sweep_sizes(sizes, sizeof(sizes) / sizeof(sizes[0]), 2100, 127);
    const size_t limit = 256 * 1024;
    int bad = 0;
    for (size_t i = 0; i < count; i++) {
        size_t n = sizes[i];
        for (int kind = 0; kind < 3; kind++) {
            static const char *const head[] = {"<message><body>", "<message id='", "<message><"};
            static const char *const tail[] = {"</body></message>", "'/>", "/></message>"};
            size_t raw = strlen(head[kind]) + n + strlen(tail[kind]);
            take_t t;
            tern_xml_t *st = parse_sized(head[kind], n, tail[kind], (int)(i & 1), &t);
            int ok;
            if (raw > limit) {
                ok = !st && strcmp(t.err, "policy-violation") == 0;
            } else if (kind == 0) {
                const char *b = tern_xml_text(tern_xml_child(st, "body", NULL));
                ok = st && strlen(b) == n && b[0] == 'v' && b[n - 1] == 'v';
            } else if (kind == 1) {
                const char *id = tern_xml_attr(st, "id");
                ok = st && id && strlen(id) == n && id[n - 1] == 'v';
            } else {
                const tern_xml_t *c = tern_xml_first_element(st);
                ok = c && strlen(c->name) == n && c->name[n - 1] == 'v';
            }
            if (!ok && !bad++)
                fprintf(stderr, "parser kind %d size %zu: %s\n", kind, n, t.err);
            tern_xml_unref(st);
        }
    }
    CHECK(bad == 0);
}

/* ---- trickled input: linear work ------------------------------------ */

/* CPU seconds to feed HEADER + `head` + n x 'w' + `tail` one byte at a
 * time; the log must show the stanza `expect`. */
static double trickle_seconds(const char *head, size_t n, const char *tail, const char *expect)
{
    xml_stream_limits_t lim = {.max_stanza_bytes = 512 * 1024, .max_depth = 8, .max_attrs = 8};
    opts_t o = {.limits = &lim};
    char *in = make(head, 'w', n, tail);
    size_t len = strlen(in);
    rec_t r;
    rec_init(&r, &o);
    clock_t t0 = clock();
    for (size_t i = 0; i < len; i++)
        xml_stream_feed(r.xs, in + i, 1);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    char *log = rec_done(&r, 0);
    CHECK(strstr(log, expect) != NULL && strstr(log, "error") == NULL);
    free(log);
    free(in);
    return secs;
}

/* A token that arrives one byte at a time costs linear work: a 128 KiB
 * start tag (about 10^10 byte scans if expat re-read the tag on every
 * byte), end tag and entity reference each parse in well under a
 * second. */
static void test_trickle(void)
{
    const size_t n = 128 * 1024;
    double t = trickle_seconds("<a v='", n, "'/>", "stanza <a v='www");
    fprintf(stderr, "trickled %zu-byte start tag: %.3f s\n", n, t);
    CHECK(t < 1.0);
    t = trickle_seconds("<a><", n, "/></a>", "stanza <a><www");
    CHECK(t < 1.0);
    t = trickle_seconds("<a>", n, "</a>", "stanza <a>www");
    CHECK(t < 1.0);
    t = trickle_seconds("<a>&#x", 0, "41;</a>", "stanza <a>A</a>");
    CHECK(t < 1.0);

    /* what is held back until a tag or reference ends: '>' and the other
     * quote inside attribute values, references at the end of a read, an
     * error inside an unfinished tag, at every split */
    opts_t o = {0};
    CHECK_SPLITS(HEADER "<a v='x>y\"' w=\"p'q>r\">1 &amp; 2 &#x41;&lt;</a> <b/>", &o,
                 OPEN_LOG "stanza <a v='x&gt;y&quot;' w='p&apos;q&gt;r'>1 &amp; 2 A&lt;</a>\n"
                          "stanza <b/>\nrc=0\n");
    char *log = run(HEADER "<a b='1' <c/>", strlen(HEADER "<a b='1' <c/>"), &o, BYTES);
    CHECK(strstr(log, "error not-well-formed") != NULL);
    free(log);
    log = run(HEADER "<a>&amp x;</a>", strlen(HEADER "<a>&amp x;</a>"), &o, BYTES);
    CHECK(strstr(log, "error not-well-formed") != NULL);
    free(log);
}

/* A stream that has read many start tags goes on with a new parser at a
 * stanza end; the stanzas read the same (prefixes from the header still
 * resolve) however the input is split. */
static void test_recycle(void)
{
    static const char header[] = "<s:stream xmlns='jabber:client' xmlns:s='" NS_STREAM "' "
                                 "xmlns:x='urn:x' to='example.com' version='1.0'>";
    const size_t count = 6000; /* about 200 KiB of start tags */
    struct evbuffer *in = evbuffer_new(), *expect = evbuffer_new();
    evbuffer_add(in, header, strlen(header));
    evbuffer_add_printf(expect, "open {%s}stream to=example.com version=1.0\n", NS_STREAM);
    for (size_t i = 0; i < count; i++) {
        evbuffer_add_printf(in, "<m n%zu='%zu'><x:y x:a='b'>t</x:y></m>\n", i, i);
        evbuffer_add_printf(expect,
                            "stanza <m n%zu='%zu'><y xmlns='urn:x' xmlns:ns0='urn:x' "
                            "ns0:a='b'>t</y></m>\n",
                            i, i);
    }
    evbuffer_add_printf(in, "</s:stream>");
    evbuffer_add_printf(expect, "close\nrc=0\n");
    size_t len = evbuffer_get_length(in), elen = evbuffer_get_length(expect);
    char *text = (char *)evbuffer_pullup(in, -1);
    char *want = calloc(1, elen + 1);
    evbuffer_copyout(expect, want, elen);
    opts_t o = {0};
    static const long splits[] = {WHOLE, BYTES, 7, 4093, 65536};
    for (size_t k = 0; k < sizeof(splits) / sizeof(splits[0]); k++) {
        rec_t r;
        rec_init(&r, &o);
        int rc = 0;
        size_t step = splits[k] == WHOLE ? len : splits[k] == BYTES ? 1 : (size_t)splits[k];
        for (size_t off = 0; off < len; off += step)
            rc = xml_stream_feed(r.xs, text + off, len - off < step ? len - off : step);
        evbuffer_add_printf(r.log, "rc=%d\n", rc);
        char *log = rec_done(&r, 0);
        CHECK(strcmp(log, want) == 0);
        free(log);
    }
    free(want);
    evbuffer_free(in);
    evbuffer_free(expect);
}

int main(void)
{
    test_tree_build();
    test_tree_copy();
    test_tree_big();
    test_tree_text_sizes();
    test_escape();
    test_serialize_ns();
    test_parse_client();
    test_parse_server();
    test_restricted();
    test_malformed();
    test_limits_size();
    test_limits_depth_attrs();
    test_restart();
    test_stop();
    test_parse_stored();
    test_park();
    test_sizes_tree();
    test_sizes_parser();
    test_trickle();
    test_recycle();
    return check_summary();
}
