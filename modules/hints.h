/*
 * hints.h — XEP-0334 Message Processing Hints, for any module.
 *
 * A header of static inline checks, shared by the modules that store or
 * copy messages (offline, carbons, mam...).  It only reads a stanza: what
 * a hint means for a module is that module's rule to document.
 *
 * The hints are direct children of the <message/> in urn:xmpp:hints
 * (XEP-0334 §4): <no-permanent-store/>, <no-store/>, <no-copy/>, <store/>.
 * Hints are hints (§5): a module may still refuse to store or copy.
 */
#ifndef TERN_MODULES_HINTS_H
#define TERN_MODULES_HINTS_H

#include <stddef.h>
#include <string.h>
#include <tern/xml.h>

#define TERN_NS_HINTS "urn:xmpp:hints"

/* 1 when `stanza` carries <HINT xmlns='urn:xmpp:hints'/> as a direct child
 * ("no-store", "no-permanent-store", "no-copy", "store"), else 0. */
static inline int has_hint(const tern_xml_t *stanza, const char *hint)
{
    return stanza != NULL && hint != NULL && tern_xml_child(stanza, hint, TERN_NS_HINTS) != NULL;
}

/* XEP-0334 §4.2: no storage at all, not even for offline delivery. */
static inline int hint_no_store(const tern_xml_t *stanza)
{
    return has_hint(stanza, "no-store");
}

/* XEP-0334 §4.1, §4.2: not for an archive (MAM, logs).  <no-store/> forbids
 * every storage, so it implies <no-permanent-store/>. */
static inline int hint_no_permanent_store(const tern_xml_t *stanza)
{
    return has_hint(stanza, "no-permanent-store") || has_hint(stanza, "no-store");
}

/* XEP-0334 §4.3: not to be copied to other addresses (XEP-0280 carbons). */
static inline int hint_no_copy(const tern_xml_t *stanza)
{
    return has_hint(stanza, "no-copy");
}

/* XEP-0334 §4.4: store even what the entity would not store by its own
 * rules (a message without a body, say); never a message of type 'error'.
 * A <no-store/> or <no-permanent-store/> on the same message wins: it is
 * the safer reading of a contradictory message. */
static inline int hint_store(const tern_xml_t *stanza)
{
    const char *type = stanza != NULL ? tern_xml_attr(stanza, "type") : NULL;
    return has_hint(stanza, "store") && !hint_no_permanent_store(stanza) &&
           !(type != NULL && strcmp(type, "error") == 0);
}

#endif
