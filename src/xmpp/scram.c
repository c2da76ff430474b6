/*
 * scram.c — SCRAM-SHA-1/-256/-512 and their -PLUS variants, server side
 * (RFC 5802, RFC 7677), with the XEP-0474 downgrade-protection attribute.
 *
 * Owns: password preparation (SASLprep-style, NFKC via libunistring), key
 * derivation (Hi = PBKDF2), the server state machine for one exchange,
 * the fake-credential path that hides whether an account exists, the
 * client-side proof computation used by tests and tern-bench, and strict
 * base64.  Pure computation: no I/O, no storage, no event loop.
 *
 * All cryptography comes from OpenSSL 3 (HMAC, EVP_Digest,
 * PKCS5_PBKDF2_HMAC, RAND_bytes, CRYPTO_memcmp, OPENSSL_cleanse).
 */
#include "xmpp/scram.h"

#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

#include <tern/base64.h>

#define SCRAM_MAX_MSG       4096 /* longest client message accepted */
#define SCRAM_MAX_CB        256  /* longest channel-binding value copied */
#define SCRAM_DEFAULT_SALT  16   /* bytes of salt made by scram_derive() */
#define SCRAM_SNONCE_BYTES  24   /* random bytes -> 32 base64 chars */
#define SCRAM_FAKE_SECRET   32
#define SCRAM_DEFAULT_ITERS 4096

/* RFC 6120 §6.5 conditions returned through *failure_r. */
#define COND_NOT_AUTHORIZED  "not-authorized"
#define COND_MALFORMED       "malformed-request"
#define COND_INVALID_AUTHZID "invalid-authzid"
#define COND_ENCRYPTION_REQ  "encryption-required"
#define COND_TEMPORARY       "temporary-auth-failure"

static const char *const cb_name_exporter = "tls-exporter";
static const char *const cb_name_end_point = "tls-server-end-point";

/* ------------------------------------------------------------------ */
/* Hash primitives                                                      */
/* ------------------------------------------------------------------ */

static const EVP_MD *scram_md(scram_hash_t h)
{
    switch (h) {
    case SCRAM_SHA1:
        return EVP_sha1();
    case SCRAM_SHA256:
        return EVP_sha256();
    case SCRAM_SHA512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

size_t scram_hash_len(scram_hash_t h)
{
    switch (h) {
    case SCRAM_SHA1:
        return 20;
    case SCRAM_SHA256:
        return 32;
    case SCRAM_SHA512:
        return 64;
    default:
        return 0;
    }
}

/* HMAC(key, data) into out (scram_hash_len(h) bytes).  0 or -1. */
static int scram_hmac(scram_hash_t h, const unsigned char *key, size_t key_len, const void *data,
                      size_t data_len, unsigned char *out)
{
    const EVP_MD *md = scram_md(h);
    unsigned int len = 0;
    if (!md || key_len > INT_MAX)
        return -1;
    if (!HMAC(md, key, (int)key_len, data, data_len, out, &len))
        return -1;
    return len == scram_hash_len(h) ? 0 : -1;
}

/* H(data) into out.  0 or -1. */
static int scram_digest(scram_hash_t h, const void *data, size_t data_len, unsigned char *out)
{
    const EVP_MD *md = scram_md(h);
    unsigned int len = 0;
    if (!md || !EVP_Digest(data, data_len, out, &len, md, NULL))
        return -1;
    return len == scram_hash_len(h) ? 0 : -1;
}

/* ------------------------------------------------------------------ */
/* Mechanism names                                                      */
/* ------------------------------------------------------------------ */

static const char *const mech_names[SCRAM_HASH_COUNT][2] = {
    {"SCRAM-SHA-1", "SCRAM-SHA-1-PLUS"},
    {"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"},
    {"SCRAM-SHA-512", "SCRAM-SHA-512-PLUS"},
};

/* Exact (case-sensitive) match against the IANA mechanism names. */
int scram_mech_parse(const char *mech, scram_hash_t *h, int *plus_r)
{
    if (!mech)
        return -1;
    for (int i = 0; i < SCRAM_HASH_COUNT; i++) {
        for (int p = 0; p < 2; p++) {
            if (strcmp(mech, mech_names[i][p]) == 0) {
                if (h)
                    *h = (scram_hash_t)i;
                if (plus_r)
                    *plus_r = p;
                return 0;
            }
        }
    }
    return -1;
}

const char *scram_mech_name(scram_hash_t h, int plus)
{
    if ((int)h < 0 || h >= SCRAM_HASH_COUNT)
        return NULL;
    return mech_names[h][plus ? 1 : 0];
}

/* ------------------------------------------------------------------ */
/* base64 (RFC 4648 §4, padded, no line breaks)                         */
/* ------------------------------------------------------------------ */

/* Both are the public tern_base64_* (src/util/base64.c) in strict mode:
 * padded, no white space, canonical trailing bits. */
char *b64_encode(const unsigned char *in, size_t len)
{
    return tern_base64_encode(in, len, 0);
}

unsigned char *b64_decode(const char *in, size_t len, size_t *out_len)
{
    return tern_base64_decode(in, len, 0, out_len);
}

/* ------------------------------------------------------------------ */
/* Password preparation and key derivation                              */
/* ------------------------------------------------------------------ */

static int is_control(ucs4_t uc)
{
    return uc < 0x20 || (uc >= 0x7f && uc <= 0x9f);
}

/* Normalize(password) (RFC 5802 §2.2): SASLprep / PRECIS OpaqueString
 * as profiled for Tern.  Printable ASCII is passed through unchanged.
 * Otherwise: the string must be valid UTF-8; non-ASCII space separators
 * (Zs) are mapped to U+0020 (RFC 4013 §2.1, RFC 8265 §4.2.2), the result
 * is NFKC-normalized (RFC 4013 §2.2), and control characters are
 * rejected (RFC 4013 §2.3).  Empty passwords are rejected.
 * On success *out is a malloc'd buffer of *out_len bytes that the caller
 * must OPENSSL_cleanse() and free().  0 or -1. */
static int prep_password(const char *pw, unsigned char **out, size_t *out_len)
{
    if (!pw)
        return -1;
    size_t n = strlen(pw);
    if (n == 0 || n > INT_MAX)
        return -1;

    int ascii = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)pw[i];
        if (c >= 0x80)
            ascii = 0;
        else if (is_control(c))
            return -1;
    }
    if (ascii) {
        unsigned char *copy = malloc(n);
        if (!copy)
            return -1;
        memcpy(copy, pw, n);
        *out = copy;
        *out_len = n;
        return 0;
    }

    const uint8_t *u = (const uint8_t *)pw;
    if (u8_check(u, n) != NULL)
        return -1;

    /* Map non-ASCII spaces to U+0020; the result is never longer. */
    uint8_t *mapped = malloc(n);
    if (!mapped)
        return -1;
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        ucs4_t uc;
        int l = u8_mbtouc(&uc, u + i, n - i);
        if (l <= 0) {
            OPENSSL_cleanse(mapped, n);
            free(mapped);
            return -1;
        }
        if (uc >= 0x80 && uc_is_general_category(uc, UC_CATEGORY_Zs)) {
            mapped[m++] = ' ';
        } else {
            memcpy(mapped + m, u + i, (size_t)l);
            m += (size_t)l;
        }
        i += (size_t)l;
    }

    size_t nl = 0;
    uint8_t *norm = u8_normalize(UNINORM_NFKC, mapped, m, NULL, &nl);
    OPENSSL_cleanse(mapped, n);
    free(mapped);
    if (!norm)
        return -1;

    int ok = nl > 0 && nl <= INT_MAX;
    for (size_t i = 0; ok && i < nl;) {
        ucs4_t uc;
        int l = u8_mbtouc(&uc, norm + i, nl - i);
        if (l <= 0 || uc == 0xfffd || is_control(uc))
            ok = 0;
        else
            i += (size_t)l;
    }
    if (!ok) {
        OPENSSL_cleanse(norm, nl);
        free(norm);
        return -1;
    }
    *out = norm;
    *out_len = nl;
    return 0;
}

/* SaltedPassword = Hi(Normalize(password), salt, i) (RFC 5802 §3);
 * Hi is PBKDF2 with dkLen = hash length.  out holds scram_hash_len(h). */
static int salted_password(scram_hash_t h, const char *password, const unsigned char *salt,
                           size_t salt_len, unsigned iterations, unsigned char *out)
{
    const EVP_MD *md = scram_md(h);
    unsigned char *pw = NULL;
    size_t pw_len = 0;
    if (!md || !salt || salt_len == 0 || salt_len > INT_MAX || iterations < 1 ||
        iterations > INT_MAX)
        return -1;
    if (prep_password(password, &pw, &pw_len) != 0)
        return -1;
    int ok = PKCS5_PBKDF2_HMAC((const char *)pw, (int)pw_len, salt, (int)salt_len, (int)iterations,
                               md, (int)scram_hash_len(h), out);
    OPENSSL_cleanse(pw, pw_len);
    free(pw);
    return ok == 1 ? 0 : -1;
}

/* RFC 5802 §3: ClientKey, StoredKey and ServerKey from SaltedPassword. */
int scram_derive(scram_hash_t h, const char *password, const unsigned char *salt, size_t salt_len,
                 unsigned iterations, scram_cred_t *out)
{
    unsigned char sp[SCRAM_MAX_KEY], ck[SCRAM_MAX_KEY];
    size_t hl = scram_hash_len(h);
    int rc = -1;

    if (!out || hl == 0 || iterations < 1)
        return -1;
    if (salt && (salt_len == 0 || salt_len > SCRAM_MAX_SALT))
        return -1;
    memset(out, 0, sizeof(*out));
    out->hash = h;
    out->iterations = iterations;
    if (salt) {
        memcpy(out->salt, salt, salt_len);
        out->salt_len = salt_len;
    } else {
        if (RAND_bytes(out->salt, SCRAM_DEFAULT_SALT) != 1)
            goto done;
        out->salt_len = SCRAM_DEFAULT_SALT;
    }
    if (salted_password(h, password, out->salt, out->salt_len, iterations, sp) != 0)
        goto done;
    if (scram_hmac(h, sp, hl, "Client Key", 10, ck) != 0 ||
        scram_digest(h, ck, hl, out->stored_key) != 0 ||
        scram_hmac(h, sp, hl, "Server Key", 10, out->server_key) != 0)
        goto done;
    rc = 0;
done:
    OPENSSL_cleanse(sp, sizeof(sp));
    OPENSSL_cleanse(ck, sizeof(ck));
    if (rc != 0)
        OPENSSL_cleanse(out, sizeof(*out));
    return rc;
}

/* RFC 5802 §3, client side: ClientProof = ClientKey XOR
 * HMAC(StoredKey, AuthMessage) and ServerSignature = HMAC(ServerKey,
 * AuthMessage).  Both outputs hold scram_hash_len(h) bytes.  0 or -1. */
int scram_client_proof(scram_hash_t h, const char *password, const unsigned char *salt,
                       size_t salt_len, unsigned iterations, const char *auth_message,
                       unsigned char *proof_out, unsigned char *server_sig_out)
{
    unsigned char sp[SCRAM_MAX_KEY], ck[SCRAM_MAX_KEY], sk[SCRAM_MAX_KEY];
    unsigned char svk[SCRAM_MAX_KEY], sig[SCRAM_MAX_KEY];
    size_t hl = scram_hash_len(h);
    int rc = -1;

    if (hl == 0 || !auth_message || !proof_out || !server_sig_out)
        return -1;
    size_t am_len = strlen(auth_message);
    if (salted_password(h, password, salt, salt_len, iterations, sp) != 0)
        goto done;
    if (scram_hmac(h, sp, hl, "Client Key", 10, ck) != 0 || scram_digest(h, ck, hl, sk) != 0 ||
        scram_hmac(h, sp, hl, "Server Key", 10, svk) != 0 ||
        scram_hmac(h, sk, hl, auth_message, am_len, sig) != 0 ||
        scram_hmac(h, svk, hl, auth_message, am_len, server_sig_out) != 0)
        goto done;
    for (size_t i = 0; i < hl; i++)
        proof_out[i] = ck[i] ^ sig[i];
    rc = 0;
done:
    OPENSSL_cleanse(sp, sizeof(sp));
    OPENSSL_cleanse(ck, sizeof(ck));
    OPENSSL_cleanse(sk, sizeof(sk));
    OPENSSL_cleanse(svk, sizeof(svk));
    OPENSSL_cleanse(sig, sizeof(sig));
    return rc;
}

/* ------------------------------------------------------------------ */
/* Fake credentials for unknown users                                   */
/* ------------------------------------------------------------------ */

static unsigned char fake_secret[SCRAM_FAKE_SECRET];
static int fake_secret_ok;
static CRYPTO_ONCE fake_once = CRYPTO_ONCE_STATIC_INIT;

/* Iteration count shown for unknown users: the last count seen for a real
 * user of that hash, so that a non-default server setting does not make
 * fake answers stand out. */
static atomic_uint fake_iterations[SCRAM_HASH_COUNT] = {SCRAM_DEFAULT_ITERS, SCRAM_DEFAULT_ITERS,
                                                        SCRAM_DEFAULT_ITERS};

static void fake_secret_init(void)
{
    fake_secret_ok = RAND_bytes(fake_secret, sizeof(fake_secret)) == 1;
}

/* Deterministic per-process fake credentials: salt = first 16 bytes of
 * HMAC-SHA-256(secret, hash-id || username), random keys that no proof can
 * match.  0 or -1. */
static int fake_cred(scram_hash_t h, const char *username, scram_cred_t *cred)
{
    unsigned char mac[32];
    if (!CRYPTO_THREAD_run_once(&fake_once, fake_secret_init) || !fake_secret_ok)
        return -1;
    size_t ulen = strlen(username);
    unsigned char *msg = malloc(ulen + 1);
    if (!msg)
        return -1;
    msg[0] = (unsigned char)h;
    memcpy(msg + 1, username, ulen);
    int rc = scram_hmac(SCRAM_SHA256, fake_secret, sizeof(fake_secret), msg, ulen + 1, mac);
    free(msg);
    if (rc != 0)
        return -1;
    memset(cred, 0, sizeof(*cred));
    cred->hash = h;
    cred->iterations = atomic_load(&fake_iterations[h]);
    memcpy(cred->salt, mac, SCRAM_DEFAULT_SALT);
    cred->salt_len = SCRAM_DEFAULT_SALT;
    if (RAND_bytes(cred->stored_key, sizeof(cred->stored_key)) != 1 ||
        RAND_bytes(cred->server_key, sizeof(cred->server_key)) != 1)
        return -1;
    return 0;
}

/* ------------------------------------------------------------------ */
/* Server state machine                                                 */
/* ------------------------------------------------------------------ */

typedef enum { ST_START, ST_FIRST_SENT, ST_SUCCESS, ST_FAILED } scram_state_t;

struct scram_server {
    scram_hash_t h;
    int plus;
    scram_state_t state;
    int empty_seen;

    /* Copy of the connection's channel-binding data. */
    unsigned offered;
    unsigned char exporter[SCRAM_MAX_CB];
    size_t exporter_len;
    unsigned char end_point[SCRAM_MAX_CB];
    size_t end_point_len;
    int plus_advertised;
    char *ssdp;          /* XEP-0474 "h" value, or NULL */
    char cb_refused[32]; /* "p=" type this connection does not support, or "" */

    scram_lookup_fn lookup;
    void *lookup_ctx;
    char *test_nonce;

    /* Exchange state. */
    char *username;
    char *authzid;
    char *gs2_header;
    size_t gs2_len;
    unsigned cb_type; /* SCRAM_CB_* chosen by "p=", 0 for "n"/"y" */
    char *client_first_bare;
    char *server_first;
    char *nonce; /* client nonce + server nonce */
    scram_cred_t cred;
    int fake;
};

static int cmp_str(const void *a, const void *b)
{
    /* strcmp compares as unsigned char: the "i;octet" collation. */
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* XEP-0474 §"Server Sends Downgrade Protection Hash" (version 0.5.0):
 * S = sorted(mechanisms) joined by 0x1E; if channel-binding types are
 * advertised (XEP-0440), S += 0x1F + sorted(cb types) joined by 0x1E;
 * h = base64(H(S)) with H the hash of the SCRAM mechanism in use.
 * Sorting is "i;octet" (RFC 4790 §9.3).  malloc'd, NULL on error. */
static char *ssdp_value(scram_hash_t h, const char *const *mechs, unsigned offered)
{
    size_t n = 0, total = 2;
    while (mechs[n]) {
        total += strlen(mechs[n]) + 1;
        n++;
    }
    const char *cbs[2];
    size_t ncb = 0;
    if (offered & SCRAM_CB_TLS_EXPORTER)
        cbs[ncb++] = cb_name_exporter;
    if (offered & SCRAM_CB_TLS_SERVER_END_POINT)
        cbs[ncb++] = cb_name_end_point;
    for (size_t i = 0; i < ncb; i++)
        total += strlen(cbs[i]) + 1;

    const char **sorted = malloc((n ? n : 1) * sizeof(*sorted));
    char *s = malloc(total);
    char *res = NULL;
    if (!sorted || !s)
        goto done;
    memcpy(sorted, mechs, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), cmp_str);
    qsort(cbs, ncb, sizeof(*cbs), cmp_str);

    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (i)
            s[len++] = '\x1e';
        size_t l = strlen(sorted[i]);
        memcpy(s + len, sorted[i], l);
        len += l;
    }
    if (ncb) {
        s[len++] = '\x1f';
        for (size_t i = 0; i < ncb; i++) {
            if (i)
                s[len++] = '\x1e';
            size_t l = strlen(cbs[i]);
            memcpy(s + len, cbs[i], l);
            len += l;
        }
    }
    unsigned char md[SCRAM_MAX_KEY];
    if (scram_digest(h, s, len, md) == 0)
        res = b64_encode(md, scram_hash_len(h));
done:
    free(sorted);
    free(s);
    return res;
}

/* `cb` may be NULL (nothing offered).  The channel-binding data and the
 * mechanism list are copied; the caller's buffers need not outlive the
 * call.  NULL on bad arguments (unknown hash, NULL lookup, binding data
 * longer than 256 bytes) or allocation failure. */
scram_server_t *scram_server_new(scram_hash_t h, int plus, const scram_cb_data_t *cb,
                                 scram_lookup_fn lookup, void *lookup_ctx)
{
    if (scram_hash_len(h) == 0 || !lookup)
        return NULL;
    if (cb && (cb->exporter_len > SCRAM_MAX_CB || cb->end_point_len > SCRAM_MAX_CB ||
               (cb->exporter_len && !cb->exporter) || (cb->end_point_len && !cb->end_point)))
        return NULL;
    scram_server_t *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->h = h;
    s->plus = plus ? 1 : 0;
    s->state = ST_START;
    s->lookup = lookup;
    s->lookup_ctx = lookup_ctx;
    if (cb) {
        s->offered = cb->offered & (SCRAM_CB_TLS_EXPORTER | SCRAM_CB_TLS_SERVER_END_POINT);
        if (cb->exporter_len)
            memcpy(s->exporter, cb->exporter, cb->exporter_len);
        s->exporter_len = cb->exporter_len;
        if (cb->end_point_len)
            memcpy(s->end_point, cb->end_point, cb->end_point_len);
        s->end_point_len = cb->end_point_len;
        s->plus_advertised = cb->plus_advertised ? 1 : 0;
        if (cb->offered_mechs) {
            s->ssdp = ssdp_value(h, cb->offered_mechs, s->offered);
            if (!s->ssdp) {
                free(s);
                return NULL;
            }
        }
    }
    return s;
}

void scram_server_free(scram_server_t **sp)
{
    if (!sp || !*sp)
        return;
    scram_server_t *s = *sp;
    free(s->ssdp);
    free(s->test_nonce);
    free(s->username);
    free(s->authzid);
    free(s->gs2_header);
    free(s->client_first_bare);
    free(s->server_first);
    free(s->nonce);
    OPENSSL_cleanse(s, sizeof(*s));
    free(s);
    *sp = NULL;
}

const char *scram_server_username(const scram_server_t *s)
{
    return s && s->state == ST_SUCCESS ? s->username : NULL;
}

const char *scram_server_authzid(const scram_server_t *s)
{
    return s ? s->authzid : NULL;
}

const char *scram_server_cb_refused(const scram_server_t *s)
{
    return s && s->cb_refused[0] ? s->cb_refused : NULL;
}

const char *scram_server_authcid(const scram_server_t *s)
{
    return s ? s->username : NULL;
}

/* malloc'd printf; NULL on error. */
__attribute__((format(printf, 2, 3))) static char *str_printf(size_t *len_r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *buf = malloc((size_t)n + 1);
    if (!buf)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(buf, (size_t)n + 1, fmt, ap);
    va_end(ap);
    if (len_r)
        *len_r = (size_t)n;
    return buf;
}

static char *mem_dup(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

static int is_alpha(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* RFC 5802 §7 printable: %x21-2B / %x2D-7E (no ','). */
static int is_nonce_char(char c)
{
    return c >= 0x21 && c <= 0x7e && c != ',';
}

/* RFC 5802 §7 cb-name: 1*(ALPHA / DIGIT / "." / "-"). */
static int is_cbname_char(char c)
{
    return is_alpha(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

/* Tests only: use `suffix` as the server part of the nonce instead of a
 * random one.  Must be called before the first step; a suffix that is
 * empty or not RFC 5802 "printable" is ignored. */
void scram_server_set_nonce_for_test(scram_server_t *s, const char *suffix)
{
    if (!s || !suffix || !*suffix)
        return;
    for (const char *c = suffix; *c; c++)
        if (!is_nonce_char(*c))
            return;
    free(s->test_nonce);
    s->test_nonce = strdup(suffix);
}

/* value = 1*value-char: advance *pp over a non-empty run up to ',' or the
 * end; sets *start and *len.  0 or -1 (empty). */
static int parse_value(const char **pp, const char **start, size_t *len)
{
    const char *p = *pp;
    while (*p && *p != ',')
        p++;
    if (p == *pp)
        return -1;
    *start = *pp;
    *len = (size_t)(p - *pp);
    *pp = p;
    return 0;
}

/* saslname (RFC 5802 §5.1, §7): non-empty, "=2C" -> ',' and "=3D" -> '=';
 * any other '=' sequence is an error.  *out is malloc'd.  0 or -1. */
static int parse_saslname(const char **pp, char **out)
{
    const char *start;
    size_t len;
    if (parse_value(pp, &start, &len) != 0)
        return -1;
    char *d = malloc(len + 1);
    if (!d)
        return -1;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (start[i] != '=') {
            d[o++] = start[i];
        } else if (len - i >= 3 && start[i + 1] == '2' && start[i + 2] == 'C') {
            d[o++] = ',';
            i += 2;
        } else if (len - i >= 3 && start[i + 1] == '3' && start[i + 2] == 'D') {
            d[o++] = '=';
            i += 2;
        } else {
            free(d);
            return -1;
        }
    }
    d[o] = '\0';
    *out = d;
    return 0;
}

/* attr-val extension (RFC 5802 §7): ALPHA "=" value.  The reserved "m"
 * attribute is refused wherever it appears (RFC 5802 §5.1).  0 or -1. */
static int parse_extension(const char **pp)
{
    const char *p = *pp;
    const char *v;
    size_t vl;
    if (!is_alpha(p[0]) || p[1] != '=' || p[0] == 'm')
        return -1;
    p += 2;
    if (parse_value(&p, &v, &vl) != 0)
        return -1;
    *pp = p;
    return 0;
}

/* Valid UTF-8 with no control characters. */
static int valid_identity(const char *id)
{
    size_t n = strlen(id);
    const uint8_t *u = (const uint8_t *)id;
    if (u8_check(u, n) != NULL)
        return 0;
    for (size_t i = 0; i < n;) {
        ucs4_t uc;
        int l = u8_mbtouc(&uc, u + i, n - i);
        if (l <= 0 || is_control(uc))
            return 0;
        i += (size_t)l;
    }
    return 1;
}

/* The channel-binding data for one type, or NULL/0 if not usable. */
static const unsigned char *cb_data(const scram_server_t *s, unsigned type, size_t *len)
{
    if (!(s->offered & type))
        return NULL;
    if (type == SCRAM_CB_TLS_EXPORTER && s->exporter_len) {
        *len = s->exporter_len;
        return s->exporter;
    }
    if (type == SCRAM_CB_TLS_SERVER_END_POINT && s->end_point_len) {
        *len = s->end_point_len;
        return s->end_point;
    }
    return NULL;
}

static scram_status_t fail(scram_server_t *s, const char **failure_r, const char *cond)
{
    s->state = ST_FAILED;
    *failure_r = cond;
    return SCRAM_FAIL;
}

/* client-first-message (RFC 5802 §5.1, §7):
 *   gs2-header = ("n" / "y" / "p=" cb-name) "," ["a=" saslname] ","
 *   bare       = ["m=" ...] "n=" saslname ",r=" c-nonce ["," extensions]
 * Produces server-first-message "r=<c+s nonce>,s=<salt>,i=<iter>[,h=<ssdp>]". */
static scram_status_t client_first(scram_server_t *s, const char *msg, char **out, size_t *out_len,
                                   const char **failure_r)
{
    const char *p = msg;
    char flag;
    unsigned cb_type = 0;

    /* gs2-cbind-flag */
    if (p[0] == 'n' || p[0] == 'y') {
        flag = p[0];
        p++;
    } else if (p[0] == 'p' && p[1] == '=') {
        flag = 'p';
        p += 2;
        const char *name = p;
        while (is_cbname_char(*p))
            p++;
        size_t nl = (size_t)(p - name);
        if (nl == 0)
            return fail(s, failure_r, COND_MALFORMED);
        if (nl == strlen(cb_name_exporter) && memcmp(name, cb_name_exporter, nl) == 0)
            cb_type = SCRAM_CB_TLS_EXPORTER;
        else if (nl == strlen(cb_name_end_point) && memcmp(name, cb_name_end_point, nl) == 0)
            cb_type = SCRAM_CB_TLS_SERVER_END_POINT;
    } else {
        return fail(s, failure_r, COND_MALFORMED);
    }
    if (*p != ',')
        return fail(s, failure_r, COND_MALFORMED);
    p++;

    /* [authzid] "," */
    if (*p != ',') {
        if (p[0] != 'a' || p[1] != '=')
            return fail(s, failure_r, COND_MALFORMED);
        p += 2;
        if (parse_saslname(&p, &s->authzid) != 0)
            return fail(s, failure_r, COND_MALFORMED);
        if (*p != ',')
            return fail(s, failure_r, COND_MALFORMED);
    }
    p++;
    s->gs2_len = (size_t)(p - msg);

    /* client-first-message-bare */
    const char *bare = p;
    if (p[0] == 'm' && p[1] == '=') /* RFC 5802 §5.1: unsupported mandatory extension */
        return fail(s, failure_r, COND_MALFORMED);
    if (p[0] != 'n' || p[1] != '=')
        return fail(s, failure_r, COND_MALFORMED);
    p += 2;
    if (parse_saslname(&p, &s->username) != 0)
        return fail(s, failure_r, COND_MALFORMED);
    if (p[0] != ',' || p[1] != 'r' || p[2] != '=')
        return fail(s, failure_r, COND_MALFORMED);
    p += 3;
    const char *cnonce = p;
    while (is_nonce_char(*p))
        p++;
    size_t cnonce_len = (size_t)(p - cnonce);
    if (cnonce_len == 0)
        return fail(s, failure_r, COND_MALFORMED);
    while (*p == ',') {
        p++;
        if (parse_extension(&p) != 0)
            return fail(s, failure_r, COND_MALFORMED);
    }
    if (*p != '\0')
        return fail(s, failure_r, COND_MALFORMED);
    /* An authzid must be a usable identity: UTF-8 without controls. */
    if (s->authzid && !valid_identity(s->authzid))
        return fail(s, failure_r, COND_INVALID_AUTHZID);
    if (u8_check((const uint8_t *)msg, strlen(msg)) != NULL)
        return fail(s, failure_r, COND_MALFORMED);

    /* Channel binding vs. mechanism (RFC 5802 §6). */
    if (flag == 'p') {
        if (!s->plus)
            return fail(s, failure_r, COND_MALFORMED);
        size_t dl = 0;
        if (!(s->offered & (SCRAM_CB_TLS_EXPORTER | SCRAM_CB_TLS_SERVER_END_POINT)))
            return fail(s, failure_r, COND_ENCRYPTION_REQ);
        if (cb_type == 0 || !cb_data(s, cb_type, &dl)) {
            /* RFC 5802 §7 "unsupported-channel-binding-type": a protocol
             * mismatch (tls-unique is undefined on TLS 1.3), not a wrong
             * password.  The name is kept for the caller's log and text. */
            size_t nl = strcspn(msg + 2, ",");
            if (nl >= sizeof(s->cb_refused))
                nl = sizeof(s->cb_refused) - 1;
            memcpy(s->cb_refused, msg + 2, nl);
            s->cb_refused[nl] = 0;
            return fail(s, failure_r, COND_MALFORMED);
        }
    } else {
        if (s->plus)
            return fail(s, failure_r, COND_MALFORMED);
        if (flag == 'y' && s->plus_advertised) /* downgrade attempt */
            return fail(s, failure_r, COND_NOT_AUTHORIZED);
    }
    s->cb_type = cb_type;

    s->gs2_header = mem_dup(msg, s->gs2_len);
    s->client_first_bare = strdup(bare);
    if (!s->gs2_header || !s->client_first_bare)
        return fail(s, failure_r, COND_TEMPORARY);

    /* Credentials, or deterministic fake ones. */
    memset(&s->cred, 0, sizeof(s->cred));
    s->cred.hash = s->h;
    if (s->lookup(s->lookup_ctx, s->username, s->h, &s->cred) == 0) {
        if (s->cred.hash != s->h || s->cred.iterations < 1 || s->cred.salt_len == 0 ||
            s->cred.salt_len > SCRAM_MAX_SALT)
            return fail(s, failure_r, COND_TEMPORARY);
        atomic_store(&fake_iterations[s->h], s->cred.iterations);
    } else {
        s->fake = 1;
        if (fake_cred(s->h, s->username, &s->cred) != 0)
            return fail(s, failure_r, COND_TEMPORARY);
    }

    /* Server nonce: client nonce + 32 random base64 characters. */
    char *snonce;
    if (s->test_nonce) {
        snonce = strdup(s->test_nonce);
    } else {
        unsigned char rnd[SCRAM_SNONCE_BYTES];
        if (RAND_bytes(rnd, sizeof(rnd)) != 1)
            return fail(s, failure_r, COND_TEMPORARY);
        snonce = b64_encode(rnd, sizeof(rnd));
    }
    char *salt_b64 = b64_encode(s->cred.salt, s->cred.salt_len);
    if (snonce && salt_b64) {
        s->nonce = str_printf(NULL, "%.*s%s", (int)cnonce_len, cnonce, snonce);
        if (s->nonce) {
            if (s->ssdp)
                s->server_first = str_printf(out_len, "r=%s,s=%s,i=%u,h=%s", s->nonce, salt_b64,
                                             s->cred.iterations, s->ssdp);
            else
                s->server_first =
                    str_printf(out_len, "r=%s,s=%s,i=%u", s->nonce, salt_b64, s->cred.iterations);
        }
    }
    free(snonce);
    free(salt_b64);
    if (!s->server_first)
        return fail(s, failure_r, COND_TEMPORARY);
    *out = strdup(s->server_first);
    if (!*out) {
        *out_len = 0;
        return fail(s, failure_r, COND_TEMPORARY);
    }
    s->state = ST_FIRST_SENT;
    return SCRAM_CONTINUE;
}

/* client-final-message (RFC 5802 §5.1, §7):
 *   "c=" base64(gs2-header + cbind-data) ",r=" nonce ["," extensions] ",p=" proof
 * Verifies binding, nonce and proof (RFC 5802 §3) and produces
 * server-final-message "v=<ServerSignature>". */
static scram_status_t client_final(scram_server_t *s, const char *msg, char **out, size_t *out_len,
                                   const char **failure_r)
{
    const char *p = msg, *v, *proof_b64 = NULL, *proof_attr = NULL;
    size_t vl, proof_b64_len = 0;
    size_t hl = scram_hash_len(s->h);
    scram_status_t st;

    /* channel-binding */
    if (p[0] != 'c' || p[1] != '=')
        return fail(s, failure_r, COND_MALFORMED);
    p += 2;
    if (parse_value(&p, &v, &vl) != 0)
        return fail(s, failure_r, COND_MALFORMED);
    size_t cbind_len = 0;
    unsigned char *cbind = b64_decode(v, vl, &cbind_len);
    if (!cbind)
        return fail(s, failure_r, COND_MALFORMED);

    /* nonce */
    const char *rn = NULL;
    size_t rn_len = 0;
    if (p[0] != ',' || p[1] != 'r' || p[2] != '=') {
        st = fail(s, failure_r, COND_MALFORMED);
        goto out_cbind;
    }
    p += 3;
    if (parse_value(&p, &rn, &rn_len) != 0) {
        st = fail(s, failure_r, COND_MALFORMED);
        goto out_cbind;
    }

    /* [extensions] proof; the proof is the last attribute */
    while (!proof_attr) {
        if (*p != ',') {
            st = fail(s, failure_r, COND_MALFORMED);
            goto out_cbind;
        }
        if (p[1] == 'p' && p[2] == '=') {
            proof_attr = p;
            p += 3;
            if (parse_value(&p, &proof_b64, &proof_b64_len) != 0 || *p != '\0') {
                st = fail(s, failure_r, COND_MALFORMED);
                goto out_cbind;
            }
        } else {
            p++;
            if (parse_extension(&p) != 0) {
                st = fail(s, failure_r, COND_MALFORMED);
                goto out_cbind;
            }
        }
    }
    if (u8_check((const uint8_t *)msg, strlen(msg)) != NULL) {
        st = fail(s, failure_r, COND_MALFORMED);
        goto out_cbind;
    }
    size_t proof_len = 0;
    unsigned char *proof = b64_decode(proof_b64, proof_b64_len, &proof_len);
    if (!proof || proof_len != hl) {
        free(proof);
        st = fail(s, failure_r, COND_MALFORMED);
        goto out_cbind;
    }

    /* c= must be exactly gs2-header + cbind-data (RFC 5802 §6, §7). */
    int bad = 0;
    const unsigned char *cbd = NULL;
    size_t cbd_len = 0;
    if (s->cb_type)
        cbd = cb_data(s, s->cb_type, &cbd_len);
    if (cbind_len != s->gs2_len + cbd_len || CRYPTO_memcmp(cbind, s->gs2_header, s->gs2_len) != 0 ||
        (cbd_len && CRYPTO_memcmp(cbind + s->gs2_len, cbd, cbd_len) != 0))
        bad = 1;
    if (rn_len != strlen(s->nonce) || memcmp(rn, s->nonce, rn_len) != 0)
        bad = 1;

    /* AuthMessage = client-first-message-bare "," server-first-message ","
     *               client-final-message-without-proof   (RFC 5802 §3) */
    size_t am_len = 0;
    char *am = str_printf(&am_len, "%s,%s,%.*s", s->client_first_bare, s->server_first,
                          (int)(proof_attr - msg), msg);
    unsigned char sig[SCRAM_MAX_KEY], ck[SCRAM_MAX_KEY], sk[SCRAM_MAX_KEY];
    if (!am || scram_hmac(s->h, s->cred.stored_key, hl, am, am_len, sig) != 0) {
        free(am);
        free(proof);
        st = fail(s, failure_r, COND_TEMPORARY);
        goto out_cbind;
    }
    for (size_t i = 0; i < hl; i++)
        ck[i] = proof[i] ^ sig[i];
    free(proof);
    int digest_rc = scram_digest(s->h, ck, hl, sk);
    OPENSSL_cleanse(ck, sizeof(ck));
    if (digest_rc != 0) {
        free(am);
        st = fail(s, failure_r, COND_TEMPORARY);
        goto out_cbind;
    }
    int proof_ok = CRYPTO_memcmp(sk, s->cred.stored_key, hl) == 0;
    if (!proof_ok || bad || s->fake) {
        free(am);
        st = fail(s, failure_r, COND_NOT_AUTHORIZED);
        goto out_cbind;
    }

    /* ServerSignature = HMAC(ServerKey, AuthMessage) */
    int mac_rc = scram_hmac(s->h, s->cred.server_key, hl, am, am_len, sig);
    free(am);
    char *sig_b64 = mac_rc == 0 ? b64_encode(sig, hl) : NULL;
    *out = sig_b64 ? str_printf(out_len, "v=%s", sig_b64) : NULL;
    free(sig_b64);
    if (!*out) {
        *out_len = 0;
        st = fail(s, failure_r, COND_TEMPORARY);
        goto out_cbind;
    }
    s->state = ST_SUCCESS;
    st = SCRAM_SUCCESS;
out_cbind:
    free(cbind);
    return st;
}

/* One step.  An empty message before client-first (no initial response)
 * is answered once with an empty challenge.  After SUCCESS or FAIL, every
 * further step fails with "malformed-request". */
scram_status_t scram_server_step(scram_server_t *s, const char *in, size_t in_len, char **out,
                                 size_t *out_len, const char **failure_r)
{
    const char *dummy_failure;
    size_t dummy_len;
    if (!failure_r)
        failure_r = &dummy_failure;
    if (!out_len)
        out_len = &dummy_len;
    *failure_r = NULL;
    *out_len = 0;
    if (out)
        *out = NULL;
    if (!s) {
        *failure_r = COND_MALFORMED;
        return SCRAM_FAIL;
    }
    if (!out || (!in && in_len))
        return fail(s, failure_r, COND_MALFORMED);
    if (s->state == ST_SUCCESS || s->state == ST_FAILED) {
        *failure_r = COND_MALFORMED; /* the result stays as it was */
        return SCRAM_FAIL;
    }
    if (in_len > SCRAM_MAX_MSG || (in_len && memchr(in, '\0', in_len)))
        return fail(s, failure_r, COND_MALFORMED);

    if (in_len == 0) {
        if (s->state != ST_START || s->empty_seen)
            return fail(s, failure_r, COND_MALFORMED);
        s->empty_seen = 1;
        *out = calloc(1, 1);
        if (!*out)
            return fail(s, failure_r, COND_TEMPORARY);
        return SCRAM_CONTINUE;
    }

    /* Work on a bounded, NUL-terminated copy. */
    char *msg = mem_dup(in, in_len);
    if (!msg)
        return fail(s, failure_r, COND_TEMPORARY);
    scram_status_t st;
    if (s->state == ST_START)
        st = client_first(s, msg, out, out_len, failure_r);
    else
        st = client_final(s, msg, out, out_len, failure_r);
    free(msg);
    return st;
}
