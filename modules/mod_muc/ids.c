/*
 * ids.c — the ids a room puts on what it sends: a unique XEP-0359
 * <stanza-id by='room'/> on every groupchat message (the id history and
 * an archive keep, and moderation names), and the XEP-0421
 * <occupant-id/> of the sender on its messages and presence.
 *
 * An occupant id is stable per (room, real bare JID) and reveals neither:
 * base64 of HMAC-SHA-256 under the service's secret (random, made once and
 * kept in the module's key-value store, so ids survive restarts) of
 * "room@service" NUL "bare JID" (XEP-0421 §5).  Anything a client put in
 * its stanza that claims to be one of these is removed first (XEP-0359 §4
 * rule 3, XEP-0421 §4).  Nothing here sends a stanza.
 */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <tern/base64.h>
#include <tern/store.h>

#include "muc.h"

static int random_bytes(unsigned char *out, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = getrandom(out + got, n - got, 0);
        if (k <= 0)
            return -1;
        got += (size_t)k;
    }
    return 0;
}

int ids_load_secret(muc_t *mu)
{
    tern_store_t *st = tern_store(mu->m, "secret", TERN_STORE_KV);
    tern_blob_t b = {0};
    if (st && tern_kv_get(st, "", &b) == 1 && b.len == sizeof(mu->secret)) {
        memcpy(mu->secret, b.data, sizeof(mu->secret));
        free(b.data);
        return 0;
    }
    free(b.data);
    if (random_bytes(mu->secret, sizeof(mu->secret)) != 0)
        return -1;
    if (st && tern_kv_set(st, "", (const char *)mu->secret, sizeof(mu->secret)) != 0)
        tern_log(mu->m, TERN_LOG_WARN, "muc: cannot keep the occupant id secret");
    return 0;
}

int ids_new_stanza_id(char out[MUC_ID_LEN])
{
    unsigned char raw[16];
    if (random_bytes(raw, sizeof(raw)) != 0)
        return -1;
    /* 128 bits: 22 characters, no padding (RFC 4648 §5). */
    char *id = tern_base64_encode(raw, sizeof(raw), TERN_BASE64_URL | TERN_BASE64_NOPAD);
    if (!id || strlen(id) >= MUC_ID_LEN) {
        free(id);
        return -1;
    }
    strcpy(out, id);
    free(id);
    return 0;
}

int ids_occupant_id(const muc_t *mu, const char *room, const char *bare, char out[MUC_OID_LEN])
{
    size_t lr = strlen(room), lb = strlen(bare);
    unsigned char *data = malloc(lr + lb + 1);
    if (!data)
        return -1;
    memcpy(data, room, lr + 1);
    memcpy(data + lr + 1, bare, lb);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    unsigned char *ok =
        HMAC(EVP_sha256(), mu->secret, (int)sizeof(mu->secret), data, lr + 1 + lb, mac, &maclen);
    free(data);
    if (!ok || maclen != 32)
        return -1;
    char *id = tern_base64_encode(mac, maclen, 0);
    if (!id || strlen(id) >= MUC_OID_LEN) {
        free(id);
        return -1;
    }
    strcpy(out, id);
    free(id);
    return 0;
}

/* Remove the children of `st` named name/ns (with 'by' = `by` when by != NULL). */
static void strip(tern_xml_t *st, const char *name, const char *ns, const char *by)
{
    tern_xml_t *c = tern_xml_first_element(st);
    while (c) {
        tern_xml_t *next = tern_xml_next_element(c);
        if (tern_xml_is(c, name, ns)) {
            const char *b = tern_xml_attr(c, "by");
            if (!by || (b && strcasecmp(b, by) == 0))
                tern_xml_unlink(c);
        }
        c = next;
    }
}

void ids_add_occupant_id(const muc_room_t *r, const char *bare, tern_xml_t *st)
{
    strip(st, "occupant-id", NS_OCCUPANT_ID, NULL);
    char oid[MUC_OID_LEN];
    if (!bare || ids_occupant_id(r->mu, r->jid, bare, oid) != 0)
        return;
    tern_xml_t *e = tern_xml_add_child(st, "occupant-id", NS_OCCUPANT_ID);
    if (e)
        tern_xml_set_attr(e, "id", oid);
}

int ids_stamp_message(const muc_room_t *r, const char *bare, tern_xml_t *msg,
                      char id_out[MUC_ID_LEN])
{
    strip(msg, "stanza-id", NS_SID, r->jid); /* XEP-0359 §4 rule 3 */
    ids_add_occupant_id(r, bare, msg);
    if (ids_new_stanza_id(id_out) != 0)
        return -1;
    tern_xml_t *sid = tern_xml_add_child(msg, "stanza-id", NS_SID);
    if (!sid)
        return -1;
    tern_xml_set_attr(sid, "id", id_out);
    tern_xml_set_attr(sid, "by", r->jid);
    return 0;
}
