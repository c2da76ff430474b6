/*
 * fuzz_jid.c — libFuzzer target for JID preparation (src/xmpp/jid.c,
 * RFC 7622).  The input is one JID as it could come in a 'to' or 'from'
 * attribute.  A JID that prepares must prepare again to itself (PRECIS
 * is idempotent, RFC 8264 §7) and its parts must prepare one by one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tern/jid.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    const char *err = NULL;
    tern_jid_t *j = tern_jid_new(s, &err);
    if (j) {
        tern_jid_t *again = tern_jid_new(j->full, &err);
        if (!again || strcmp(again->full, j->full) != 0)
            __builtin_trap(); /* preparation is not idempotent */
        tern_jid_t *bare = tern_jid_bare(j), *dup = tern_jid_dup(j);
        if (!dup || !tern_jid_equal(j, dup))
            __builtin_trap();
        tern_jid_t *parts = tern_jid_from_parts(j->local, j->domain, j->resource, &err);
        if (!parts || strcmp(parts->full, j->full) != 0)
            __builtin_trap();
        tern_jid_free(&parts);
        tern_jid_free(&dup);
        tern_jid_free(&bare);
        tern_jid_free(&again);
        tern_jid_free(&j);
    }
    free(tern_jid_prep_local(s));
    free(tern_jid_prep_domain(s));
    free(tern_jid_prep_resource(s));
    free(s);
    return 0;
}
