/*
 * fuzz_scram.c — libFuzzer target for the SCRAM server's message parsing
 * (src/xmpp/scram.c, RFC 5802 §7): client-first and client-final.
 *
 * The first byte picks the mechanism (hash, -PLUS or not, channel-binding
 * types offered); the rest is split at the first "\n--\n" into
 * client-first and client-final.  The server nonce is fixed ("SRV"), so a
 * client-final that repeats the nonce reaches proof checking.  The user
 * "user" exists with few iterations, any other user does not.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "xmpp/scram.h"

static scram_cred_t creds[SCRAM_HASH_COUNT];
static int have_creds;

static int lookup(void *ctx, const char *username, scram_hash_t h, scram_cred_t *cred)
{
    (void)ctx;
    if (strcmp(username, "user") != 0)
        return -1;
    *cred = creds[h];
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char cb_bytes[32] = {1, 2, 3};
    static const char *const mechs[] = {"SCRAM-SHA-1", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", NULL};
    if (!have_creds) {
        for (int h = 0; h < SCRAM_HASH_COUNT; h++)
            scram_derive((scram_hash_t)h, "pencil", (const unsigned char *)"salt", 4, 2, &creds[h]);
        have_creds = 1;
    }
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    data++;
    size--;
    scram_cb_data_t cb = {
        .offered = sel & 3u,
        .exporter = cb_bytes,
        .exporter_len = sizeof(cb_bytes),
        .end_point = cb_bytes,
        .end_point_len = sizeof(cb_bytes),
        .plus_advertised = (sel >> 2) & 1,
        .offered_mechs = (sel & 8) ? mechs : NULL,
    };
    scram_server_t *s = scram_server_new((scram_hash_t)((sel >> 4) % SCRAM_HASH_COUNT),
                                         (sel >> 6) & 1, &cb, lookup, NULL);
    if (!s)
        return 0;
    scram_server_set_nonce_for_test(s, "SRV");
    const char *rest = memmem(data, size, "\n--\n", 4);
    size_t first = rest ? (size_t)(rest - (const char *)data) : size;
    const char *part[2] = {(const char *)data, rest ? rest + 4 : NULL};
    size_t len[2] = {first, rest ? size - first - 4 : 0};
    for (int i = 0; i < 2 && part[i]; i++) {
        char *out = NULL;
        size_t out_len = 0;
        const char *failure = NULL;
        scram_status_t st = scram_server_step(s, part[i], len[i], &out, &out_len, &failure);
        free(out);
        if (st != SCRAM_CONTINUE)
            break;
    }
    (void)scram_server_username(s);
    (void)scram_server_authzid(s);
    scram_server_free(&s);
    return 0;
}
