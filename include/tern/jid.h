/*
 * tern/jid.h — JIDs prepared per RFC 7622.
 *
 * A tern_jid_t is parsed and prepared once (PRECIS UsernameCaseMapped for
 * the localpart, IDNA2008 + lowercase for the domainpart, OpaqueString
 * for the resourcepart) and is then compared with strcmp on its parts.
 * The struct and its strings live in one allocation.
 */
#ifndef TERN_JID_H
#define TERN_JID_H

#include <tern/defs.h>
typedef struct tern_jid {
    const char *local;    /* NULL when absent */
    const char *domain;   /* never NULL */
    const char *resource; /* NULL when absent */
    const char *bare;     /* "local@domain" or "domain" */
    const char *full;     /* bare, plus "/resource" when there is one */
} tern_jid_t;

/* Parse and prepare `s`.  Returns NULL when `s` is not a valid JID (empty
 * parts, a part over 1023 bytes, disallowed code points, bad IDN, …);
 * `error_r`, if not NULL, then points to a short static reason. */
TERN_API tern_jid_t *tern_jid_new(const char *s, const char **error_r);
/* Build from parts (each prepared); local and resource may be NULL. */
TERN_API tern_jid_t *tern_jid_from_parts(const char *local, const char *domain,
                                         const char *resource, const char **error_r);
TERN_API tern_jid_t *tern_jid_dup(const tern_jid_t *j);
/* The bare JID of `j` as a new tern_jid_t. */
TERN_API tern_jid_t *tern_jid_bare(const tern_jid_t *j);
TERN_API void tern_jid_free(tern_jid_t **j);

/* Prepare single parts; return a malloc'd string or NULL if invalid. */
TERN_API char *tern_jid_prep_local(const char *local);
TERN_API char *tern_jid_prep_domain(const char *domain);
TERN_API char *tern_jid_prep_resource(const char *resource);

TERN_API int tern_jid_equal(const tern_jid_t *a, const tern_jid_t *b);

#endif
