/*
 * scram.c — the client side of SASL SCRAM (see scram.h).
 *
 * Owns the SCRAM computations on libcrypto: PBKDF2 for the salted
 * password, HMAC and the hash for the proof and the server signature.
 * It keeps the salted password's derived keys only for the exchange and
 * wipes them when freed.  RFC 5802 §3 (algorithm), §5.1 (attributes),
 * §7 (formal syntax).
 */
#include "scram.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NONCE_BYTES    18 /* 24 base64 characters */
#define MAX_ITERATIONS 10000000
#define MAX_MSG        2048

struct scram {
    const EVP_MD *md;
    size_t hlen;
    char nonce[NONCE_BYTES * 2];
    char *first_bare; /* n=user,r=nonce */
    unsigned char server_sig[EVP_MAX_MD_SIZE];
};

scram_t *scram_new(const char *mech)
{
    const EVP_MD *md = NULL;
    if (mech != NULL && strcmp(mech, "SCRAM-SHA-1") == 0)
        md = EVP_sha1();
    else if (mech != NULL && strcmp(mech, "SCRAM-SHA-256") == 0)
        md = EVP_sha256();
    if (md == NULL)
        return NULL;
    scram_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->md = md;
    s->hlen = (size_t)EVP_MD_get_size(md);
    return s;
}

void scram_free(scram_t **sp)
{
    scram_t *s = *sp;
    if (s == NULL)
        return;
    free(s->first_bare);
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
    *sp = NULL;
}

static char *b64_encode(const unsigned char *in, size_t n)
{
    char *out = malloc(4 * ((n + 2) / 3) + 1);
    if (out != NULL)
        EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    return out;
}

/* Decode base64 into out (size >= 3/4 of the input); returns the length or -1. */
static int b64_decode(const char *in, unsigned char *out, size_t size)
{
    size_t n = strlen(in);
    if (n == 0 || n % 4 != 0 || n / 4 * 3 > size)
        return -1;
    int len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (len < 0)
        return -1;
    if (in[n - 1] == '=')
        len--;
    if (in[n - 2] == '=')
        len--;
    return len;
}

char *scram_client_first(scram_t *s, const char *user)
{
    unsigned char raw[NONCE_BYTES];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return NULL;
    EVP_EncodeBlock((unsigned char *)s->nonce, raw, sizeof(raw));
    /* RFC 5802 §5.1: "=" and "," in the name are escaped. */
    char name[3 * 256 + 1];
    size_t o = 0;
    for (const char *p = user; *p != '\0' && o + 4 < sizeof(name); p++) {
        if (*p == '=' || *p == ',') {
            memcpy(name + o, *p == '=' ? "=3D" : "=2C", 3);
            o += 3;
        } else {
            name[o++] = *p;
        }
    }
    name[o] = '\0';
    size_t blen = strlen(name) + strlen(s->nonce) + 8;
    free(s->first_bare);
    s->first_bare = malloc(blen);
    if (s->first_bare == NULL)
        return NULL;
    snprintf(s->first_bare, blen, "n=%s,r=%s", name, s->nonce);
    char msg[3 * 256 + 64];
    int n = snprintf(msg, sizeof(msg), "n,,%s", s->first_bare);
    return b64_encode((unsigned char *)msg, (size_t)n);
}

/* The value of attribute `a` in a SCRAM message ("a=value,..."), copied
 * into buf; -1 if absent or too long. */
static int attr(const char *msg, char a, char *buf, size_t size)
{
    const char *p = msg;
    while (p != NULL && *p != '\0') {
        if (p[0] == a && p[1] == '=') {
            const char *v = p + 2, *end = strchr(v, ',');
            size_t n = end != NULL ? (size_t)(end - v) : strlen(v);
            if (n >= size)
                return -1;
            memcpy(buf, v, n);
            buf[n] = '\0';
            return 0;
        }
        p = strchr(p, ',');
        if (p != NULL)
            p++;
    }
    return -1;
}

static int hmac(const scram_t *s, const unsigned char *key, const void *data, size_t n,
                unsigned char *out)
{
    unsigned int len = 0;
    return HMAC(s->md, key, (int)s->hlen, data, n, out, &len) != NULL ? 0 : -1;
}

char *scram_client_final(scram_t *s, const char *password, const char *server_first_b64,
                         const char **why)
{
    unsigned char sf[MAX_MSG];
    int sfl = b64_decode(server_first_b64, sf, sizeof(sf) - 1);
    if (sfl <= 0) {
        *why = "server-first is not base64";
        return NULL;
    }
    sf[sfl] = '\0';
    const char *server_first = (const char *)sf;
    char nonce[512], salt_b64[512], iter_s[16];
    if (server_first[0] == 'm' || attr(server_first, 'r', nonce, sizeof(nonce)) < 0 ||
        attr(server_first, 's', salt_b64, sizeof(salt_b64)) < 0 ||
        attr(server_first, 'i', iter_s, sizeof(iter_s)) < 0) {
        *why = "malformed server-first";
        return NULL;
    }
    if (strncmp(nonce, s->nonce, strlen(s->nonce)) != 0 || strlen(nonce) == strlen(s->nonce)) {
        *why = "server nonce does not extend ours";
        return NULL;
    }
    char *endp;
    long iter = strtol(iter_s, &endp, 10);
    if (*endp != '\0' || iter < 1 || iter > MAX_ITERATIONS) {
        *why = "bad iteration count";
        return NULL;
    }
    unsigned char salt[384];
    int saltl = b64_decode(salt_b64, salt, sizeof(salt));
    if (saltl <= 0) {
        *why = "bad salt";
        return NULL;
    }

    unsigned char salted[EVP_MAX_MD_SIZE], ckey[EVP_MAX_MD_SIZE], stored[EVP_MAX_MD_SIZE];
    unsigned char csig[EVP_MAX_MD_SIZE], skey[EVP_MAX_MD_SIZE];
    char final_np[600], auth[MAX_MSG * 2];
    snprintf(final_np, sizeof(final_np), "c=biws,r=%s", nonce);
    int al = snprintf(auth, sizeof(auth), "%s,%s,%s", s->first_bare, server_first, final_np);
    char *out = NULL;
    *why = "crypto failure";
    if (al < 0 || (size_t)al >= sizeof(auth))
        goto done;
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, saltl, (int)iter, s->md,
                          (int)s->hlen, salted) != 1)
        goto done;
    if (hmac(s, salted, "Client Key", 10, ckey) < 0 || hmac(s, salted, "Server Key", 10, skey) < 0)
        goto done;
    if (EVP_Digest(ckey, s->hlen, stored, NULL, s->md, NULL) != 1)
        goto done;
    if (hmac(s, stored, auth, (size_t)al, csig) < 0 ||
        hmac(s, skey, auth, (size_t)al, s->server_sig) < 0)
        goto done;
    unsigned char proof[EVP_MAX_MD_SIZE];
    for (size_t i = 0; i < s->hlen; i++)
        proof[i] = ckey[i] ^ csig[i];
    char *proof_b64 = b64_encode(proof, s->hlen);
    if (proof_b64 == NULL)
        goto done;
    char msg[800];
    int ml = snprintf(msg, sizeof(msg), "%s,p=%s", final_np, proof_b64);
    free(proof_b64);
    out = b64_encode((unsigned char *)msg, (size_t)ml);
    *why = NULL;
done:
    OPENSSL_cleanse(salted, sizeof(salted));
    OPENSSL_cleanse(ckey, sizeof(ckey));
    OPENSSL_cleanse(skey, sizeof(skey));
    return out;
}

int scram_check_server(scram_t *s, const char *server_final_b64, const char **why)
{
    unsigned char sf[MAX_MSG];
    int sfl = b64_decode(server_final_b64, sf, sizeof(sf) - 1);
    if (sfl <= 0) {
        *why = "server-final is not base64";
        return -1;
    }
    sf[sfl] = '\0';
    char v[256];
    if (attr((const char *)sf, 'v', v, sizeof(v)) < 0) {
        *why = "server-final without signature";
        return -1;
    }
    unsigned char sig[192];
    int sl = b64_decode(v, sig, sizeof(sig));
    if (sl != (int)s->hlen || CRYPTO_memcmp(sig, s->server_sig, s->hlen) != 0) {
        *why = "wrong server signature";
        return -1;
    }
    return 0;
}
