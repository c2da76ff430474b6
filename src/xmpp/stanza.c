/*
 * stanza.c — stanza kinds, default types and error replies.
 */
#include "xmpp/stanza.h"

#include <stdio.h>
#include <string.h>
#include <openssl/rand.h>

stanza_kind_t stanza_kind(const tern_xml_t *s)
{
    if (!s->name || !s->ns || strcmp(s->ns, TERN_NS_CLIENT) != 0)
        return STANZA_OTHER;
    if (strcmp(s->name, "message") == 0)
        return STANZA_MESSAGE;
    if (strcmp(s->name, "presence") == 0)
        return STANZA_PRESENCE;
    if (strcmp(s->name, "iq") == 0)
        return STANZA_IQ;
    return STANZA_OTHER;
}

const char *stanza_type(const tern_xml_t *s)
{
    const char *t = tern_xml_attr(s, "type");
    if (t)
        return t;
    switch (stanza_kind(s)) {
    case STANZA_MESSAGE:
        return "normal";
    case STANZA_PRESENCE:
        return "available";
    default:
        return "";
    }
}

tern_xml_t *stanza_error_reply(const tern_xml_t *orig, const char *type, const char *condition,
                               const char *text)
{
    const char *otype = tern_xml_attr(orig, "type");
    if (otype && strcmp(otype, "error") == 0)
        return NULL; /* RFC 6120 §8.3.1: never answer an error with an error */
    tern_xml_t *r = tern_xml_copy(orig);
    if (!r)
        return NULL;
    const char *from = tern_xml_attr(orig, "from");
    const char *to = tern_xml_attr(orig, "to");
    tern_xml_del_attr(r, "to");
    tern_xml_del_attr(r, "from");
    if (from)
        tern_xml_set_attr(r, "to", from);
    if (to)
        tern_xml_set_attr(r, "from", to);
    tern_xml_set_attr(r, "type", "error");
    tern_xml_t *err = tern_xml_add_child(r, "error", TERN_NS_CLIENT);
    tern_xml_set_attr(err, "type", type);
    tern_xml_add_child(err, condition, NS_STANZAS);
    if (text && *text) {
        tern_xml_t *t = tern_xml_add_child(err, "text", NS_STANZAS);
        tern_xml_set_attr(t, "xml:lang", "en");
        tern_xml_add_text(t, text, strlen(text));
    }
    return r;
}

tern_xml_t *stream_error_new(const char *condition, const char *text)
{
    tern_xml_t *e = tern_xml_new("error", NS_STREAM);
    if (!e)
        return NULL;
    tern_xml_add_child(e, condition, NS_STREAMS);
    if (text && *text) {
        tern_xml_t *t = tern_xml_add_child(e, "text", NS_STREAMS);
        tern_xml_set_attr(t, "xml:lang", "en");
        tern_xml_add_text(t, text, strlen(text));
    }
    return e;
}

void stream_id_new(char out[STREAM_ID_LEN])
{
    unsigned char rnd[9];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        memset(rnd, 0, sizeof(rnd)); /* only when OpenSSL's generator failed; the id stays unique
                                        enough for logs */
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(out + 2 * i, 3, "%02x", rnd[i]);
}
