/*
 * dialback.c — Server Dialback keys (XEP-0185).
 *
 * Key = HEX(HMAC-SHA256(HEX(SHA256(secret)), "Receiving Originating
 * StreamID")), lowercase.  The secret never leaves this file in clear:
 * only its digest keys the HMAC.  Must not: log keys or secrets.
 */
#include "stream/dialback.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void to_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

int dialback_key(const char *secret, const char *receiving, const char *originating,
                 const char *stream_id, char out[DIALBACK_KEY_LEN])
{
    if (!secret || !receiving || !originating || !stream_id)
        return -1;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(secret, strlen(secret), md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return -1;
    char hkey[65];
    to_hex(md, 32, hkey);
    size_t n = strlen(receiving) + strlen(originating) + strlen(stream_id) + 3;
    char *data = malloc(n);
    if (!data)
        return -1;
    snprintf(data, n, "%s %s %s", receiving, originating, stream_id);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    int ok = HMAC(EVP_sha256(), hkey, 64, (const unsigned char *)data, strlen(data), mac,
                  &maclen) != NULL &&
             maclen == 32;
    free(data);
    OPENSSL_cleanse(hkey, sizeof(hkey));
    if (!ok)
        return -1;
    to_hex(mac, 32, out);
    return 0;
}

int dialback_check(const char *secret, const char *receiving, const char *originating,
                   const char *stream_id, const char *given)
{
    char want[DIALBACK_KEY_LEN];
    if (!given || strlen(given) != 64 ||
        dialback_key(secret, receiving, originating, stream_id, want) < 0)
        return 0;
    char lower[64];
    for (size_t i = 0; i < 64; i++)
        lower[i] = (char)(given[i] >= 'A' && given[i] <= 'F' ? given[i] + 32 : given[i]);
    return CRYPTO_memcmp(lower, want, 64) == 0;
}
