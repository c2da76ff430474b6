/*
 * stanza.h — small facts and builders for stanzas (internal).
 */
#ifndef TERN_STANZA_H
#define TERN_STANZA_H

#include <tern/xml.h>

#define NS_STANZAS   "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_STREAMS   "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_STREAM    "http://etherx.jabber.org/streams"
#define NS_TLS       "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_SASL      "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND      "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_SESSION   "urn:ietf:params:xml:ns:xmpp-session"
#define NS_SASL_CB   "urn:xmpp:sasl-cb:0"
#define NS_COMPONENT "jabber:component:accept"

typedef enum { STANZA_OTHER = 0, STANZA_MESSAGE, STANZA_PRESENCE, STANZA_IQ } stanza_kind_t;

stanza_kind_t stanza_kind(const tern_xml_t *s);
/* The stanza's 'type', or the RFC default ("normal" for message, "available"
 * for presence without a type; "" for iq without one). */
const char *stanza_type(const tern_xml_t *s);
/* RFC 6120 §8.3: a new error stanza answering `orig` (to/from swapped, same
 * id, original payload kept), or NULL when orig is itself an error. */
tern_xml_t *stanza_error_reply(const tern_xml_t *orig, const char *type, const char *condition,
                               const char *text);
/* The <stream:error/> element for `condition`, with optional text. */
tern_xml_t *stream_error_new(const char *condition, const char *text);
/* A new random stream id (18 hex digits) in out[STREAM_ID_LEN]. */
#define STREAM_ID_LEN 24
void stream_id_new(char out[STREAM_ID_LEN]);

#endif
