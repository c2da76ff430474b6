/*
 * test_scram.c — unit tests for src/xmpp/scram.c: RFC 5802 / RFC 7677 /
 * XEP-0474 test vectors, full exchanges for every hash, channel binding,
 * downgrade protection, unknown users, malformed input, password
 * preparation and base64.
 */
#include "xmpp/scram.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "check.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                              */
/* ------------------------------------------------------------------ */

/* One account; lookup derives its credentials on demand. */
typedef struct test_user {
    const char *username;
    const char *password;
    const char *salt_b64; /* NULL: random salt */
    unsigned iterations;
    int calls;
    char last_lookup[128];
    int force_wrong_hash;
} test_user_t;

static int test_lookup(void *ctx, const char *username, scram_hash_t h, scram_cred_t *cred)
{
    test_user_t *u = ctx;
    u->calls++;
    snprintf(u->last_lookup, sizeof(u->last_lookup), "%s", username);
    if (strcmp(username, u->username) != 0)
        return -1;
    unsigned char *salt = NULL;
    size_t salt_len = 0;
    if (u->salt_b64) {
        salt = b64_decode(u->salt_b64, strlen(u->salt_b64), &salt_len);
        if (!salt)
            return -1;
    }
    int rc =
        scram_derive(h, u->password, salt, salt_len, u->iterations ? u->iterations : 4096, cred);
    free(salt);
    if (u->force_wrong_hash)
        cred->hash = (scram_hash_t)((h + 1) % SCRAM_HASH_COUNT);
    return rc;
}

/* Feed `msg` to the server from an exactly-sized heap buffer (no NUL), so
 * that ASan catches any read past in_len. */
static scram_status_t step_n(scram_server_t *s, const char *msg, size_t len, char **out,
                             const char **failure)
{
    char *buf = malloc(len ? len : 1);
    size_t out_len = 0;
    if (len)
        memcpy(buf, msg, len);
    *out = NULL;
    *failure = NULL;
    scram_status_t st = scram_server_step(s, buf, len, out, &out_len, failure);
    free(buf);
    if (*out && strlen(*out) != out_len)
        fprintf(stderr, "out_len mismatch\n");
    return st;
}

static scram_status_t step(scram_server_t *s, const char *msg, char **out, const char **failure)
{
    return step_n(s, msg, strlen(msg), out, failure);
}

/* Value of attribute `a` ("r", "s", "i", "h") in a server-first message;
 * malloc'd or NULL. */
static char *attr(const char *msg, char a)
{
    const char *p = msg;
    while (p && *p) {
        if (p[0] == a && p[1] == '=') {
            const char *e = strchr(p, ',');
            size_t n = e ? (size_t)(e - p - 2) : strlen(p + 2);
            char *v = malloc(n + 1);
            memcpy(v, p + 2, n);
            v[n] = '\0';
            return v;
        }
        p = strchr(p, ',');
        if (p)
            p++;
    }
    return NULL;
}

static char *b64_of(const char *s, size_t n)
{
    return b64_encode((const unsigned char *)s, n);
}

/* client-final for `cfwp` with a proof that is valid for the AuthMessage
 * built from it, so that only the attribute under test is wrong. */
static char *signed_final(scram_hash_t h, const char *password, const char *bare,
                          const char *server_first, const char *cfwp)
{
    char *salt_b64 = attr(server_first, 's'), *it = attr(server_first, 'i');
    size_t salt_len = 0, hl = scram_hash_len(h);
    unsigned char *salt = b64_decode(salt_b64, strlen(salt_b64), &salt_len);
    char am[2048], *res = malloc(1024);
    unsigned char proof[SCRAM_MAX_KEY], sig[SCRAM_MAX_KEY];
    snprintf(am, sizeof(am), "%s,%s,%s", bare, server_first, cfwp);
    if (scram_client_proof(h, password, salt, salt_len, (unsigned)atoi(it), am, proof, sig) != 0)
        res[0] = '\0';
    else {
        char *p64 = b64_encode(proof, hl);
        snprintf(res, 1024, "%s,p=%s", cfwp, p64);
        free(p64);
    }
    free(salt_b64);
    free(it);
    free(salt);
    return res;
}

typedef struct exchange {
    scram_status_t first; /* status of client-first */
    scram_status_t final; /* status of client-final (FAIL if not reached) */
    const char *failure;  /* failure condition of the failing step */
    char server_first[512];
    int v_ok; /* server-final matched our ServerSignature */
    int reached_final;
    char username[128];
    char authzid[128];
} exchange_t;

/* Run a whole exchange as a client would: gs2 header, escaped username,
 * password, and the channel-binding data the client uses in c=. */
static void run_exchange(scram_hash_t h, int plus, const scram_cb_data_t *cb, test_user_t *u,
                         const char *gs2, const char *user_esc, const char *password,
                         const unsigned char *cbdata, size_t cbdata_len, exchange_t *ex)
{
    memset(ex, 0, sizeof(*ex));
    ex->final = SCRAM_FAIL;
    scram_server_t *s = scram_server_new(h, plus, cb, test_lookup, u);
    if (!s) {
        ex->first = SCRAM_FAIL;
        ex->failure = "new-failed";
        return;
    }
    char cf[512], bare[256];
    snprintf(bare, sizeof(bare), "n=%s,r=clientNONCE+/=9", user_esc);
    snprintf(cf, sizeof(cf), "%s%s", gs2, bare);
    char *out = NULL;
    const char *failure = NULL;
    ex->first = step(s, cf, &out, &failure);
    if (ex->first != SCRAM_CONTINUE) {
        ex->failure = failure;
        free(out);
        scram_server_free(&s);
        return;
    }
    snprintf(ex->server_first, sizeof(ex->server_first), "%s", out);
    char *r = attr(out, 'r'), *salt_b64 = attr(out, 's'), *it = attr(out, 'i');
    free(out);
    size_t salt_len = 0;
    unsigned char *salt = salt_b64 ? b64_decode(salt_b64, strlen(salt_b64), &salt_len) : NULL;

    /* c= is base64(gs2-header + cbind-data) */
    size_t gl = strlen(gs2);
    char *cb_in = malloc(gl + cbdata_len + 1);
    memcpy(cb_in, gs2, gl);
    if (cbdata_len)
        memcpy(cb_in + gl, cbdata, cbdata_len);
    char *c64 = b64_of(cb_in, gl + cbdata_len);
    char cfwp[512], am[2048], final[1024];
    snprintf(cfwp, sizeof(cfwp), "c=%s,r=%s", c64, r ? r : "");
    snprintf(am, sizeof(am), "%s,%s,%s", bare, ex->server_first, cfwp);
    unsigned char proof[SCRAM_MAX_KEY], sig[SCRAM_MAX_KEY];
    size_t hl = scram_hash_len(h);
    if (salt && it &&
        scram_client_proof(h, password, salt, salt_len, (unsigned)atoi(it), am, proof, sig) == 0) {
        char *p64 = b64_encode(proof, hl);
        snprintf(final, sizeof(final), "%s,p=%s", cfwp, p64);
        free(p64);
        ex->reached_final = 1;
        ex->final = step(s, final, &out, &failure);
        ex->failure = failure;
        if (ex->final == SCRAM_SUCCESS) {
            char *v64 = b64_encode(sig, hl);
            char expect[256];
            snprintf(expect, sizeof(expect), "v=%s", v64);
            ex->v_ok = out && strcmp(out, expect) == 0;
            free(v64);
        } else {
            CHECK(out == NULL);
        }
        free(out);
    }
    const char *un = scram_server_username(s), *az = scram_server_authzid(s);
    snprintf(ex->username, sizeof(ex->username), "%s", un ? un : "");
    snprintf(ex->authzid, sizeof(ex->authzid), "%s", az ? az : "");
    free(cb_in);
    free(c64);
    free(r);
    free(salt_b64);
    free(it);
    free(salt);
    scram_server_free(&s);
}

static char *ssdp_expected(scram_hash_t h, const char *s, size_t len)
{
    const EVP_MD *md = h == SCRAM_SHA1     ? EVP_sha1()
                       : h == SCRAM_SHA256 ? EVP_sha256()
                                           : EVP_sha512();
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    EVP_Digest(s, len, d, &dl, md, NULL);
    unsigned char b[2 * EVP_MAX_MD_SIZE];
    EVP_EncodeBlock(b, d, (int)dl);
    return strdup((char *)b);
}

/* ------------------------------------------------------------------ */
/* Test vectors                                                         */
/* ------------------------------------------------------------------ */

/* RFC 5802 §5 */
static void test_rfc5802(void)
{
    test_user_t u = {"user", "pencil", "QSXCR+Q6sek8bf92", 4096, 0, "", 0};
    scram_server_t *s = scram_server_new(SCRAM_SHA1, 0, NULL, test_lookup, &u);
    CHECK(s != NULL);
    scram_server_set_nonce_for_test(s, "3rfcNHYJY1ZVvWVs7j");
    char *out;
    const char *f;
    CHECK(step(s, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", &out, &f) == SCRAM_CONTINUE);
    CHECK_STR(out, "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
    free(out);
    CHECK(scram_server_username(s) == NULL);
    CHECK(step(s,
               "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
               &out, &f) == SCRAM_SUCCESS);
    CHECK_STR(out, "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    free(out);
    CHECK_STR(scram_server_username(s), "user");
    CHECK(scram_server_authzid(s) == NULL);
    CHECK_STR(u.last_lookup, "user");
    /* step after the final result */
    CHECK(step(s, "c=biws", &out, &f) == SCRAM_FAIL);
    CHECK(out == NULL);
    CHECK_STR(scram_server_username(s), "user");
    scram_server_free(&s);
    CHECK(s == NULL);
    scram_server_free(&s);

    /* and the client side */
    size_t sl;
    unsigned char *salt = b64_decode("QSXCR+Q6sek8bf92", 16, &sl);
    unsigned char proof[20], sig[20];
    CHECK(scram_client_proof(SCRAM_SHA1, "pencil", salt, sl, 4096,
                             "n=user,r=fyko+d2lbbFgONRv9qkxdawL,"
                             "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,"
                             "i=4096,c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
                             proof, sig) == 0);
    char *p64 = b64_encode(proof, 20), *s64 = b64_encode(sig, 20);
    CHECK_STR(p64, "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
    CHECK_STR(s64, "rmF9pqV8S7suAoZWja4dJRkFsKQ=");
    free(p64);
    free(s64);
    free(salt);
}

/* RFC 7677 §3 */
static void test_rfc7677(void)
{
    test_user_t u = {"user", "pencil", "W22ZaJ0SNY7soEsUEjb6gQ==", 4096, 0, "", 0};
    scram_server_t *s = scram_server_new(SCRAM_SHA256, 0, NULL, test_lookup, &u);
    CHECK(s != NULL);
    scram_server_set_nonce_for_test(s, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    char *out;
    const char *f;
    CHECK(step(s, "n,,n=user,r=rOprNGfwEbeRWgbNEkqO", &out, &f) == SCRAM_CONTINUE);
    CHECK_STR(out, "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                   "s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
    free(out);
    CHECK(step(s,
               "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
               "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
               &out, &f) == SCRAM_SUCCESS);
    CHECK_STR(out, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    free(out);
    scram_server_free(&s);
}

/* XEP-0474 §"Full Example": SCRAM-SHA-1-PLUS with tls-exporter, the "h"
 * attribute and an "x" extension in client-final. */
static void test_xep0474_example(void)
{
    static const char *const mechs[] = {"SCRAM-SHA-1-PLUS", "SCRAM-SHA-1", NULL};
    static const unsigned char fake_cb[] = "THIS IS FAKE CB DATA";
    static const unsigned char ep[] = "some end point hash.";
    test_user_t u = {"user", "pencil", "QSXCR+Q6sek8bf92", 4096, 0, "", 0};
    scram_cb_data_t cb = {
        SCRAM_CB_TLS_EXPORTER | SCRAM_CB_TLS_SERVER_END_POINT, fake_cb, 20, ep, 20, 1, mechs};
    scram_server_t *s = scram_server_new(SCRAM_SHA1, 1, &cb, test_lookup, &u);
    CHECK(s != NULL);
    scram_server_set_nonce_for_test(s, "a09117a6-ac50-4f2f-93f1-93799c2bddf6");
    char *out;
    const char *f;
    CHECK(step(s, "p=tls-exporter,,n=user,r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6", &out, &f) ==
          SCRAM_CONTINUE);
    CHECK_STR(out, "r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6a09117a6-ac50-4f2f-93f1-93799c2bddf6,"
                   "s=QSXCR+Q6sek8bf92,i=4096,h=G6k/rBLDqgOhRRaCuuatSDFkJ08=");
    free(out);
    CHECK(step(s,
               "c=cD10bHMtZXhwb3J0ZXIsLFRISVMgSVMgRkFLRSBDQiBEQVRB,"
               "r=12C4CD5C-E38E-4A98-8F6D-15C38F51CCC6a09117a6-ac50-4f2f-93f1-93799c2bddf6,"
               "x=19C6532F-1CF4-4A27-A18D-DC9CEA41BBB3,p=M/SIDjT+dfcxUh89jZEypRvFxB4=",
               &out, &f) == SCRAM_SUCCESS);
    CHECK_STR(out, "v=MQrMPvv7yv4x4Cq4W4Ih25EqS2c=");
    free(out);
    scram_server_free(&s);
}

/* XEP-0474 "h" recomputed here from the XEP's formula. */
static void test_ssdp(void)
{
    static const char *const mechs[] = {"SCRAM-SHA-512-PLUS", "SCRAM-SHA-1",   "PLAIN",
                                        "SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", NULL};
    /* i;octet order: "PLAIN" < "SCRAM-SHA-1" < "SCRAM-SHA-256" <
     * "SCRAM-SHA-256-PLUS" < "SCRAM-SHA-512-PLUS" */
    static const char both[] = "PLAIN\x1eSCRAM-SHA-1\x1eSCRAM-SHA-256\x1eSCRAM-SHA-256-PLUS"
                               "\x1eSCRAM-SHA-512-PLUS\x1ftls-exporter\x1etls-server-end-point";
    static const char end_only[] = "PLAIN\x1eSCRAM-SHA-1\x1eSCRAM-SHA-256\x1eSCRAM-SHA-256-PLUS"
                                   "\x1eSCRAM-SHA-512-PLUS\x1ftls-server-end-point";
    static const char none[] = "PLAIN\x1eSCRAM-SHA-1\x1eSCRAM-SHA-256\x1eSCRAM-SHA-256-PLUS"
                               "\x1eSCRAM-SHA-512-PLUS";
    static const unsigned char ex[32] = {1, 2, 3};
    struct {
        scram_hash_t h;
        unsigned offered;
        const char *s;
        size_t len;
    } cases[] = {
        {SCRAM_SHA256, SCRAM_CB_TLS_EXPORTER | SCRAM_CB_TLS_SERVER_END_POINT, both,
         sizeof(both) - 1},
        {SCRAM_SHA512, SCRAM_CB_TLS_EXPORTER | SCRAM_CB_TLS_SERVER_END_POINT, both,
         sizeof(both) - 1},
        {SCRAM_SHA1, SCRAM_CB_TLS_SERVER_END_POINT, end_only, sizeof(end_only) - 1},
        {SCRAM_SHA256, 0, none, sizeof(none) - 1},
    };
    test_user_t u = {"user", "pencil", NULL, 4096, 0, "", 0};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        scram_cb_data_t cb = {cases[i].offered, ex, 32, ex, 32, 0, mechs};
        exchange_t e;
        run_exchange(cases[i].h, 0, &cb, &u, "n,,", "user", "pencil", NULL, 0, &e);
        char *hv = attr(e.server_first, 'h');
        char *expect = ssdp_expected(cases[i].h, cases[i].s, cases[i].len);
        CHECK_STR(hv, expect);
        CHECK(e.final == SCRAM_SUCCESS && e.v_ok);
        /* "h" is the last attribute of server-first */
        const char *last = strrchr(e.server_first, ',');
        CHECK(last && strncmp(last, ",h=", 3) == 0);
        free(hv);
        free(expect);
    }
    /* offered_mechs == NULL: no attribute */
    scram_cb_data_t cb = {SCRAM_CB_TLS_EXPORTER, ex, 32, NULL, 0, 0, NULL};
    exchange_t e;
    run_exchange(SCRAM_SHA256, 0, &cb, &u, "n,,", "user", "pencil", NULL, 0, &e);
    char *hv = attr(e.server_first, 'h');
    CHECK(hv == NULL);
    CHECK(e.final == SCRAM_SUCCESS);
    free(hv);
}

/* ------------------------------------------------------------------ */
/* Exchanges                                                            */
/* ------------------------------------------------------------------ */

static void test_full_exchanges(void)
{
    test_user_t u = {"user", "pencil", NULL, 4096, 0, "", 0};
    for (int h = 0; h < SCRAM_HASH_COUNT; h++) {
        exchange_t e;
        run_exchange((scram_hash_t)h, 0, NULL, &u, "n,,", "user", "pencil", NULL, 0, &e);
        CHECK(e.first == SCRAM_CONTINUE);
        CHECK(e.final == SCRAM_SUCCESS);
        CHECK(e.v_ok);
        CHECK_STR(e.username, "user");
        /* server nonce: client nonce + >= 24 printable characters */
        char *r = attr(e.server_first, 'r');
        CHECK(r && strncmp(r, "clientNONCE+/=9", 15) == 0 && strlen(r) >= 15 + 24);
        free(r);
    }
    /* The SHA-512 exchange once more, with authzid and an escaped name. */
    test_user_t u2 = {"a,b=c", "secret", NULL, 5000, 0, "", 0};
    exchange_t e;
    run_exchange(SCRAM_SHA512, 0, NULL, &u2, "n,a=adm=2Cin=3D@example.org,", "a=2Cb=3Dc", "secret",
                 NULL, 0, &e);
    CHECK(e.final == SCRAM_SUCCESS && e.v_ok);
    CHECK_STR(u2.last_lookup, "a,b=c");
    CHECK_STR(e.username, "a,b=c");
    CHECK_STR(e.authzid, "adm,in=@example.org");
    char *it = attr(e.server_first, 'i');
    CHECK_STR(it, "5000");
    free(it);

    /* Wrong password */
    run_exchange(SCRAM_SHA256, 0, NULL, &u, "n,,", "user", "pencil2", NULL, 0, &e);
    CHECK(e.reached_final && e.final == SCRAM_FAIL);
    CHECK_STR(e.failure, "not-authorized");
    CHECK_STR(e.username, "");

    /* Non-ASCII account and password */
    test_user_t u3 = {"j\xc3\xbcrgen", "p\xc3\xa4ssw\xc3\xb6rd", NULL, 4096, 0, "", 0};
    run_exchange(SCRAM_SHA256, 0, NULL, &u3, "n,,", "j\xc3\xbcrgen", "p\xc3\xa4ssw\xc3\xb6rd", NULL,
                 0, &e);
    CHECK(e.final == SCRAM_SUCCESS && e.v_ok);
    /* the client sends the decomposed form: NFKC makes it equal */
    run_exchange(SCRAM_SHA256, 0, NULL, &u3, "n,,", "j\xc3\xbcrgen", "pa\xcc\x88ssw\xc3\xb6rd",
                 NULL, 0, &e);
    CHECK(e.final == SCRAM_SUCCESS && e.v_ok);

    /* Empty initial response: empty challenge, then the normal exchange. */
    scram_server_t *s = scram_server_new(SCRAM_SHA1, 0, NULL, test_lookup, &u);
    char *out;
    const char *f;
    CHECK(step_n(s, "", 0, &out, &f) == SCRAM_CONTINUE);
    CHECK(out != NULL && out[0] == '\0');
    free(out);
    CHECK(step_n(s, "", 0, &out, &f) == SCRAM_FAIL);
    CHECK_STR(f, "malformed-request");
    scram_server_free(&s);
    s = scram_server_new(SCRAM_SHA1, 0, NULL, test_lookup, &u);
    CHECK(step_n(s, "", 0, &out, &f) == SCRAM_CONTINUE);
    free(out);
    CHECK(step(s, "n,,n=user,r=abc", &out, &f) == SCRAM_CONTINUE);
    free(out);
    scram_server_free(&s);

    /* Nonce altered in client-final */
    s = scram_server_new(SCRAM_SHA1, 0, NULL, test_lookup, &u);
    scram_server_set_nonce_for_test(s, "SERVER");
    CHECK(step(s, "n,,n=user,r=abc", &out, &f) == SCRAM_CONTINUE);
    char *fin = signed_final(SCRAM_SHA1, "pencil", "n=user,r=abc", out, "c=biws,r=abcSERVEX");
    free(out);
    CHECK(step(s, fin, &out, &f) == SCRAM_FAIL);
    CHECK_STR(f, "not-authorized");
    CHECK(out == NULL);
    free(fin);
    scram_server_free(&s);
    /* control: the same with the right nonce succeeds */
    s = scram_server_new(SCRAM_SHA1, 0, NULL, test_lookup, &u);
    scram_server_set_nonce_for_test(s, "SERVER");
    CHECK(step(s, "n,,n=user,r=abc", &out, &f) == SCRAM_CONTINUE);
    fin = signed_final(SCRAM_SHA1, "pencil", "n=user,r=abc", out, "c=biws,r=abcSERVER");
    free(out);
    CHECK(step(s, fin, &out, &f) == SCRAM_SUCCESS);
    free(out);
    free(fin);
    scram_server_free(&s);
    /* a truncated nonce (client part only) */
    s = scram_server_new(SCRAM_SHA1, 0, NULL, test_lookup, &u);
    scram_server_set_nonce_for_test(s, "SERVER");
    CHECK(step(s, "n,,n=user,r=abc", &out, &f) == SCRAM_CONTINUE);
    fin = signed_final(SCRAM_SHA1, "pencil", "n=user,r=abc", out, "c=biws,r=abc");
    free(out);
    CHECK(step(s, fin, &out, &f) == SCRAM_FAIL);
    CHECK_STR(f, "not-authorized");
    free(fin);
    scram_server_free(&s);

    /* A store answering with credentials of another hash */
    test_user_t u4 = {"user", "pencil", NULL, 4096, 0, "", 1};
    run_exchange(SCRAM_SHA256, 0, NULL, &u4, "n,,", "user", "pencil", NULL, 0, &e);
    CHECK(e.first == SCRAM_FAIL);
    CHECK_STR(e.failure, "temporary-auth-failure");

    /* Bad constructor arguments */
    CHECK(scram_server_new((scram_hash_t)7, 0, NULL, test_lookup, &u) == NULL);
    CHECK(scram_server_new(SCRAM_SHA1, 0, NULL, NULL, &u) == NULL);
}

static void test_channel_binding(void)
{
    static const unsigned char exporter[32] = "0123456789abcdef0123456789abcdef";
    static const unsigned char wrong[32] = "0123456789abcdef0123456789abcdeX";
    static const unsigned char endpt[32] = "ENDPOINT-HASH-ENDPOINT-HASH-1234";
    test_user_t u = {"user", "pencil", NULL, 4096, 0, "", 0};
    scram_cb_data_t both = {
        SCRAM_CB_TLS_EXPORTER | SCRAM_CB_TLS_SERVER_END_POINT, exporter, 32, endpt, 32, 1, NULL};
    scram_cb_data_t exp_only = {SCRAM_CB_TLS_EXPORTER, exporter, 32, NULL, 0, 1, NULL};
    scram_cb_data_t not_adv = {SCRAM_CB_TLS_EXPORTER, exporter, 32, NULL, 0, 0, NULL};
    scram_cb_data_t plain = {0, NULL, 0, NULL, 0, 0, NULL};
    exchange_t e;

    for (int h = 0; h < SCRAM_HASH_COUNT; h++) {
        run_exchange((scram_hash_t)h, 1, &both, &u, "p=tls-exporter,,", "user", "pencil", exporter,
                     32, &e);
        CHECK(e.final == SCRAM_SUCCESS && e.v_ok);
    }
    /* wrong exporter data */
    run_exchange(SCRAM_SHA256, 1, &both, &u, "p=tls-exporter,,", "user", "pencil", wrong, 32, &e);
    CHECK(e.reached_final && e.final == SCRAM_FAIL);
    CHECK_STR(e.failure, "not-authorized");
    /* end-point data sent for the exporter type */
    run_exchange(SCRAM_SHA256, 1, &both, &u, "p=tls-exporter,,", "user", "pencil", endpt, 32, &e);
    CHECK_STR(e.failure, "not-authorized");
    /* missing cbind data */
    run_exchange(SCRAM_SHA256, 1, &both, &u, "p=tls-exporter,,", "user", "pencil", NULL, 0, &e);
    CHECK(e.reached_final);
    CHECK_STR(e.failure, "not-authorized");
    /* tls-server-end-point */
    run_exchange(SCRAM_SHA256, 1, &both, &u, "p=tls-server-end-point,,", "user", "pencil", endpt,
                 32, &e);
    CHECK(e.final == SCRAM_SUCCESS && e.v_ok);
    /* with an authzid in the gs2 header */
    run_exchange(SCRAM_SHA256, 1, &both, &u, "p=tls-exporter,a=user@example.org,", "user", "pencil",
                 exporter, 32, &e);
    CHECK(e.final == SCRAM_SUCCESS && e.v_ok);
    CHECK_STR(e.authzid, "user@example.org");

    /* a type not offered: a protocol mismatch, not a password failure, and
     * the refused name is told to the caller (RFC 5802 §7) */
    run_exchange(SCRAM_SHA256, 1, &exp_only, &u, "p=tls-server-end-point,,", "user", "pencil",
                 endpt, 32, &e);
    CHECK(e.first == SCRAM_FAIL && !e.reached_final);
    CHECK_STR(e.failure, "malformed-request");
    run_exchange(SCRAM_SHA256, 1, &both, &u, "p=tls-unique,,", "user", "pencil", exporter, 32, &e);
    CHECK(e.first == SCRAM_FAIL);
    CHECK_STR(e.failure, "malformed-request");
    {
        scram_server_t *s = scram_server_new(SCRAM_SHA256, 1, &both, test_lookup, &u);
        char *out = NULL;
        const char *f = NULL;
        CHECK(scram_server_cb_refused(s) == NULL);
        CHECK(step(s, "p=tls-unique,,n=user,r=abc", &out, &f) == SCRAM_FAIL);
        CHECK_STR(scram_server_cb_refused(s), "tls-unique");
        CHECK_STR(scram_server_authcid(s), "user");
        free(out);
        scram_server_free(&s);
        /* a wrong binding of a supported type is no such refusal */
        s = scram_server_new(SCRAM_SHA256, 1, &both, test_lookup, &u);
        CHECK(step(s, "p=tls-exporter,,n=user,r=abc", &out, &f) == SCRAM_CONTINUE);
        CHECK(scram_server_cb_refused(s) == NULL);
        free(out);
        scram_server_free(&s);
    }
    /* PLUS on a connection without any binding */
    run_exchange(SCRAM_SHA256, 1, &plain, &u, "p=tls-exporter,,", "user", "pencil", exporter, 32,
                 &e);
    CHECK(e.first == SCRAM_FAIL);
    CHECK_STR(e.failure, "encryption-required");
    run_exchange(SCRAM_SHA256, 1, NULL, &u, "p=tls-exporter,,", "user", "pencil", exporter, 32, &e);
    CHECK_STR(e.failure, "encryption-required");

    /* "y" while -PLUS is advertised: downgrade */
    run_exchange(SCRAM_SHA256, 0, &both, &u, "y,,", "user", "pencil", NULL, 0, &e);
    CHECK(e.first == SCRAM_FAIL);
    CHECK_STR(e.failure, "not-authorized");
    /* "y" when not advertised is fine, and so is "n" */
    run_exchange(SCRAM_SHA256, 0, &not_adv, &u, "y,,", "user", "pencil", NULL, 0, &e);
    CHECK(e.final == SCRAM_SUCCESS && e.v_ok);
    run_exchange(SCRAM_SHA256, 0, &both, &u, "n,,", "user", "pencil", NULL, 0, &e);
    CHECK(e.final == SCRAM_SUCCESS && e.v_ok);
    /* c= must repeat the header actually sent: "y" sent, "n" claimed */
    {
        scram_server_t *s = scram_server_new(SCRAM_SHA1, 0, &not_adv, test_lookup, &u);
        char *out;
        const char *f;
        scram_server_set_nonce_for_test(s, "S");
        CHECK(step(s, "y,,n=user,r=abc", &out, &f) == SCRAM_CONTINUE);
        char *fin = signed_final(SCRAM_SHA1, "pencil", "n=user,r=abc", out, "c=biws,r=abcS");
        free(out);
        CHECK(step(s, fin, &out, &f) == SCRAM_FAIL);
        CHECK_STR(f, "not-authorized");
        free(fin);
        scram_server_free(&s);
    }

    /* "n" (or "y") with a PLUS mechanism, "p=" with a plain one */
    run_exchange(SCRAM_SHA256, 1, &both, &u, "n,,", "user", "pencil", NULL, 0, &e);
    CHECK(e.first == SCRAM_FAIL);
    CHECK_STR(e.failure, "malformed-request");
    run_exchange(SCRAM_SHA256, 1, &not_adv, &u, "y,,", "user", "pencil", NULL, 0, &e);
    CHECK(e.first == SCRAM_FAIL);
    CHECK_STR(e.failure, "malformed-request");
    run_exchange(SCRAM_SHA256, 0, &both, &u, "p=tls-exporter,,", "user", "pencil", exporter, 32,
                 &e);
    CHECK(e.first == SCRAM_FAIL);
    CHECK_STR(e.failure, "malformed-request");

    /* The binding data is copied: the caller's buffer may go away. */
    unsigned char *tmp = malloc(32);
    memcpy(tmp, exporter, 32);
    scram_cb_data_t heap = {SCRAM_CB_TLS_EXPORTER, tmp, 32, NULL, 0, 1, NULL};
    scram_server_t *s = scram_server_new(SCRAM_SHA1, 1, &heap, test_lookup, &u);
    free(tmp);
    CHECK(s != NULL);
    scram_server_free(&s);
    /* oversized binding data refused */
    unsigned char big[300] = {0};
    scram_cb_data_t huge = {SCRAM_CB_TLS_EXPORTER, big, sizeof(big), NULL, 0, 1, NULL};
    CHECK(scram_server_new(SCRAM_SHA1, 1, &huge, test_lookup, &u) == NULL);
}

static void test_unknown_user(void)
{
    test_user_t u = {"user", "pencil", NULL, 4096, 0, "", 0};
    exchange_t known, e1, e2, e3, e4;
    run_exchange(SCRAM_SHA256, 0, NULL, &u, "n,,", "user", "pencil", NULL, 0, &known);
    run_exchange(SCRAM_SHA256, 0, NULL, &u, "n,,", "ghost", "pencil", NULL, 0, &e1);
    run_exchange(SCRAM_SHA256, 0, NULL, &u, "n,,", "ghost", "other", NULL, 0, &e2);
    run_exchange(SCRAM_SHA256, 0, NULL, &u, "n,,", "phantom", "pencil", NULL, 0, &e3);
    run_exchange(SCRAM_SHA512, 0, NULL, &u, "n,,", "ghost", "pencil", NULL, 0, &e4);

    CHECK(e1.first == SCRAM_CONTINUE);
    CHECK(e1.reached_final && e1.final == SCRAM_FAIL);
    CHECK_STR(e1.failure, "not-authorized");
    CHECK_STR(e1.username, "");
    CHECK_STR(u.last_lookup, "ghost");

    /* same shape as a known user */
    char *kr = attr(known.server_first, 'r'), *ks = attr(known.server_first, 's');
    char *ki = attr(known.server_first, 'i');
    char *r1 = attr(e1.server_first, 'r'), *s1 = attr(e1.server_first, 's');
    char *i1 = attr(e1.server_first, 'i');
    char *s2 = attr(e2.server_first, 's'), *s3 = attr(e3.server_first, 's');
    char *s4 = attr(e4.server_first, 's');
    CHECK(kr && r1 && strlen(kr) == strlen(r1));
    CHECK(ks && s1 && strlen(ks) == strlen(s1));
    CHECK_STR(i1, ki);
    char *h1 = attr(e1.server_first, 'h');
    CHECK(h1 == NULL);
    free(h1);
    /* r=,s=,i= in that order */
    CHECK(strncmp(e1.server_first, "r=", 2) == 0 && strstr(e1.server_first, ",s=") &&
          strstr(e1.server_first, ",i="));
    /* stable fake salt per user and hash */
    CHECK_STR(s2, s1);
    CHECK(s3 && s1 && strcmp(s3, s1) != 0);
    CHECK(s4 && s1 && strcmp(s4, s1) != 0);
    /* the fake iteration count follows the real accounts */
    test_user_t slow = {"slow", "pencil", NULL, 10000, 0, "", 0};
    exchange_t e5, e6;
    run_exchange(SCRAM_SHA1, 0, NULL, &slow, "n,,", "slow", "pencil", NULL, 0, &e5);
    run_exchange(SCRAM_SHA1, 0, NULL, &slow, "n,,", "ghost", "pencil", NULL, 0, &e6);
    char *i5 = attr(e5.server_first, 'i'), *i6 = attr(e6.server_first, 'i');
    CHECK_STR(i5, "10000");
    CHECK_STR(i6, "10000");
    CHECK(e6.final == SCRAM_FAIL);
    free(i5);
    free(i6);
    free(kr);
    free(ks);
    free(ki);
    free(r1);
    free(s1);
    free(i1);
    free(s2);
    free(s3);
    free(s4);
}

/* ------------------------------------------------------------------ */
/* Malformed input                                                      */
/* ------------------------------------------------------------------ */

static void expect_first_fails(const char *msg, size_t len, const char *cond)
{
    test_user_t u = {"user", "pencil", NULL, 4096, 0, "", 0};
    scram_server_t *s = scram_server_new(SCRAM_SHA256, 0, NULL, test_lookup, &u);
    char *out;
    const char *f;
    scram_status_t st = step_n(s, msg, len, &out, &f);
    CHECK(st == SCRAM_FAIL);
    CHECK(out == NULL);
    CHECK_STR(f, cond);
    if (st != SCRAM_FAIL || !f || strcmp(f, cond) != 0)
        fprintf(stderr, "  input: %.*s\n", (int)len, msg);
    free(out);
    CHECK(u.calls == 0);
    /* nothing more is accepted afterwards */
    CHECK(step(s, "n,,n=user,r=abc", &out, &f) == SCRAM_FAIL);
    free(out);
    scram_server_free(&s);
}

static void expect_final_fails(const char *final, const char *cond)
{
    test_user_t u = {"user", "pencil", "QSXCR+Q6sek8bf92", 4096, 0, "", 0};
    scram_server_t *s = scram_server_new(SCRAM_SHA1, 0, NULL, test_lookup, &u);
    char *out;
    const char *f;
    scram_server_set_nonce_for_test(s, "3rfcNHYJY1ZVvWVs7j");
    CHECK(step(s, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", &out, &f) == SCRAM_CONTINUE);
    free(out);
    scram_status_t st = step(s, final, &out, &f);
    CHECK(st == SCRAM_FAIL);
    CHECK(out == NULL);
    CHECK_STR(f, cond);
    if (st != SCRAM_FAIL || !f || strcmp(f, cond) != 0)
        fprintf(stderr, "  input: %s\n", final);
    free(out);
    scram_server_free(&s);
}

#define N_ "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j"
#define P_ "p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="

static void test_malformed(void)
{
    static const char *const first[] = {
        "x,,n=user,r=abc",              /* bad gs2 flag */
        "n",                            /* truncated */
        "n,",                           /* truncated */
        "n,,",                          /* no bare message */
        "n,n=user,r=abc",               /* one comma missing */
        "nn,,n=user,r=abc",             /* junk after the flag */
        "p,,n=user,r=abc",              /* p without = */
        "p=,,n=user,r=abc",             /* empty cb-name */
        "p=tls_exporter,,n=user,r=abc", /* bad cb-name char */
        "n,b=x,n=user,r=abc",           /* not an authzid */
        "n,a=,n=user,r=abc",            /* empty authzid */
        "n,a=x=41,n=user,r=abc",        /* bad escape in authzid */
        "n,,r=abc",                     /* no username */
        "n,,n=user",                    /* no nonce */
        "n,,n=user,",                   /* no nonce */
        "n,,n=user,r=",                 /* empty nonce */
        "n,,n=,r=abc",                  /* empty username */
        "n,,n=user,x=1,r=abc",          /* wrong order */
        "n,,m=ext,n=user,r=abc",        /* reserved m= extension */
        "n,,n=user,r=abc,m=ext",        /* m= anywhere */
        "n,,n=us=2Xer,r=abc",           /* bad =XX escape */
        "n,,n=us=2cer,r=abc",           /* lowercase escape */
        "n,,n=user=,r=abc",             /* truncated escape */
        "n,,n=user=3,r=abc",            /* truncated escape */
        "n,,n=us=er,r=abc",             /* bare = */
        "n,,n=user,r=abc,",             /* trailing comma */
        "n,,n=user,r=abc,x",            /* bad extension */
        "n,,n=user,r=abc,x=",           /* empty extension value */
        "n,,n=user,r=abc,1=x",          /* extension name not ALPHA */
        "n,,n=user,r=ab\001c",          /* nonce not printable */
        "n,,n=user,r=ab c",             /* nonce with space */
        "n,,n=user,r=ab\xc3\xa9",       /* nonce not ASCII */
        "n,,n=\xff\xfe,r=abc",          /* username not UTF-8 */
        "n,,n=user,r=abc,x=\xc3",       /* truncated UTF-8 */
        "N,,n=user,r=abc",              /* flags are lowercase */
    };
    for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++)
        expect_first_fails(first[i], strlen(first[i]), "malformed-request");

    /* embedded NUL */
    static const char nul[] = "n,,n=us\0er,r=abc";
    expect_first_fails(nul, sizeof(nul) - 1, "malformed-request");
    static const char nul_end[] = "n,,n=user,r=abc\0";
    expect_first_fails(nul_end, sizeof(nul_end) - 1, "malformed-request");
    /* oversize */
    size_t big_len = 5000;
    char *big = malloc(big_len);
    memcpy(big, "n,,n=user,r=", 12);
    memset(big + 12, 'a', big_len - 12);
    expect_first_fails(big, big_len, "malformed-request");
    free(big);
    /* invalid authzid */
    expect_first_fails("n,a=\x01x,n=user,r=abc", 19, "invalid-authzid");
    expect_first_fails("n,a=\xc3(,n=user,r=abc", 19, "invalid-authzid");

    /* valid message with extensions after the nonce is accepted */
    {
        test_user_t u = {"user", "pencil", NULL, 4096, 0, "", 0};
        scram_server_t *s = scram_server_new(SCRAM_SHA256, 0, NULL, test_lookup, &u);
        char *out;
        const char *f;
        CHECK(step(s, "n,,n=user,r=abc,x=1,y=\xc3\xa9", &out, &f) == SCRAM_CONTINUE);
        free(out);
        scram_server_free(&s);
    }

    /* client-final */
    expect_final_fails("", "malformed-request");
    expect_final_fails(N_ "," P_, "malformed-request");            /* no c= */
    expect_final_fails("c=biws," P_, "malformed-request");         /* no r= */
    expect_final_fails("c=biws," N_, "malformed-request");         /* no p= */
    expect_final_fails("c=biws," N_ ",", "malformed-request");     /* trailing , */
    expect_final_fails("c=biws," N_ ",p=", "malformed-request");   /* empty proof */
    expect_final_fails("c=biw," N_ "," P_, "malformed-request");   /* bad base64 */
    expect_final_fails("c=biws=," N_ "," P_, "malformed-request"); /* bad base64 */
    expect_final_fails("c=," N_ "," P_, "malformed-request");      /* empty c= */
    expect_final_fails("c=biws,r=," P_, "malformed-request");      /* empty nonce */
    expect_final_fails("c=biws," N_ ",p=v0X8v3Bz2T0CJGbJQyF0X+HI4T=",
                       "malformed-request"); /* bad base64 */
    expect_final_fails("c=biws," N_ ",p=v0X8v3Bz2T0CJGbJQyF0X+HI", "malformed-request");
    expect_final_fails("c=biws," N_ ",p=dGVzdA==", "malformed-request"); /* proof length */
    expect_final_fails("c=biws," N_ "," P_ ",x=1", "malformed-request"); /* p= not last */
    expect_final_fails("c=biws," N_ ",m=1," P_, "malformed-request");    /* m= */
    expect_final_fails("c=biws," N_ ",x," P_, "malformed-request");      /* bad extension */
    expect_final_fails(N_ ",c=biws," P_, "malformed-request");           /* order */
    expect_final_fails("c=biws," N_ ",x=\xff," P_, "malformed-request"); /* not UTF-8 */
    expect_final_fails("c=biws,r=fyko+d2lbbFgONRv9qkxdawL," P_, "not-authorized"); /* nonce */
    expect_final_fails("c=eSws," N_ "," P_, "not-authorized");                     /* "y,," */
    /* the RFC proof with an extra extension: AuthMessage differs */
    expect_final_fails("c=biws," N_ ",x=1," P_, "not-authorized");
    /* and the untouched RFC message still succeeds with this harness */
    {
        test_user_t u = {"user", "pencil", "QSXCR+Q6sek8bf92", 4096, 0, "", 0};
        scram_server_t *s = scram_server_new(SCRAM_SHA1, 0, NULL, test_lookup, &u);
        char *out;
        const char *f;
        scram_server_set_nonce_for_test(s, "3rfcNHYJY1ZVvWVs7j");
        CHECK(step(s, "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL", &out, &f) == SCRAM_CONTINUE);
        free(out);
        CHECK(step(s, "c=biws," N_ "," P_, &out, &f) == SCRAM_SUCCESS);
        free(out);
        scram_server_free(&s);
    }

    /* NULL arguments */
    {
        char *out = (char *)1;
        size_t ol = 7;
        const char *f = NULL;
        CHECK(scram_server_step(NULL, "n", 1, &out, &ol, &f) == SCRAM_FAIL);
        CHECK(out == NULL && ol == 0);
        CHECK_STR(f, "malformed-request");
        test_user_t u = {"user", "pencil", NULL, 4096, 0, "", 0};
        scram_server_t *s = scram_server_new(SCRAM_SHA256, 0, NULL, test_lookup, &u);
        CHECK(scram_server_step(s, NULL, 5, &out, &ol, &f) == SCRAM_FAIL);
        scram_server_free(&s);
    }
}

/* ------------------------------------------------------------------ */
/* Derivation, SASLprep                                                 */
/* ------------------------------------------------------------------ */

static int same_keys(const char *pw_a, const char *pw_b)
{
    static const unsigned char salt[16] = "0123456789abcdef";
    scram_cred_t a, b;
    if (scram_derive(SCRAM_SHA256, pw_a, salt, 16, 4096, &a) != 0 ||
        scram_derive(SCRAM_SHA256, pw_b, salt, 16, 4096, &b) != 0)
        return 0;
    return memcmp(a.stored_key, b.stored_key, 32) == 0 &&
           memcmp(a.server_key, b.server_key, 32) == 0;
}

static void test_derive(void)
{
    static const unsigned char salt[16] = "0123456789abcdef";
    scram_cred_t c, d;

    /* RFC 5802 keys: StoredKey for "pencil" */
    size_t sl;
    unsigned char *rs = b64_decode("QSXCR+Q6sek8bf92", 16, &sl);
    CHECK(scram_derive(SCRAM_SHA1, "pencil", rs, sl, 4096, &c) == 0);
    CHECK(c.hash == SCRAM_SHA1 && c.iterations == 4096 && c.salt_len == 12);
    CHECK(memcmp(c.salt, rs, 12) == 0);
    free(rs);

    /* random salt */
    CHECK(scram_derive(SCRAM_SHA512, "pencil", NULL, 0, 4096, &c) == 0);
    CHECK(scram_derive(SCRAM_SHA512, "pencil", NULL, 0, 4096, &d) == 0);
    CHECK(c.salt_len == 16 && d.salt_len == 16);
    CHECK(memcmp(c.salt, d.salt, 16) != 0);
    CHECK(memcmp(c.stored_key, d.stored_key, 64) != 0);

    /* iteration counts */
    CHECK(scram_derive(SCRAM_SHA256, "pencil", salt, 16, 1, &c) == 0);
    CHECK(scram_derive(SCRAM_SHA256, "pencil", salt, 16, 0, &c) == -1);
    /* bad arguments */
    CHECK(scram_derive(SCRAM_SHA256, "pencil", salt, 0, 4096, &c) == -1);
    CHECK(scram_derive(SCRAM_SHA256, "pencil", salt, SCRAM_MAX_SALT + 1, 4096, &c) == -1);
    CHECK(scram_derive((scram_hash_t)9, "pencil", salt, 16, 4096, &c) == -1);
    CHECK(scram_derive(SCRAM_SHA256, NULL, salt, 16, 4096, &c) == -1);

    /* SASLprep / OpaqueString */
    CHECK(scram_derive(SCRAM_SHA256, "", salt, 16, 4096, &c) == -1);
    CHECK(scram_derive(SCRAM_SHA256, "pen\ncil", salt, 16, 4096, &c) == -1);
    CHECK(scram_derive(SCRAM_SHA256,
                       "pen\x7f"
                       "cil",
                       salt, 16, 4096, &c) == -1);
    CHECK(scram_derive(SCRAM_SHA256,
                       "p\xc3\xa9n\xc2\x85"
                       "cil",
                       salt, 16, 4096, &c) == -1);
    CHECK(scram_derive(SCRAM_SHA256,
                       "pen\xff"
                       "cil",
                       salt, 16, 4096, &c) == -1);
    CHECK(scram_derive(SCRAM_SHA256, "pen\xc3", salt, 16, 4096, &c) == -1);
    CHECK(scram_derive(SCRAM_SHA256, "\xed\xa0\x80", salt, 16, 4096, &c) == -1); /* surrogate */
    CHECK(scram_derive(SCRAM_SHA256, "pen cil", salt, 16, 4096, &c) == 0);
    /* NO-BREAK SPACE and IDEOGRAPHIC SPACE map to SPACE */
    CHECK(same_keys("pen\xc2\xa0"
                    "cil",
                    "pen cil"));
    /* OGHAM SPACE MARK (Zs without a compatibility mapping) */
    CHECK(same_keys("pen\xe1\x9a\x80"
                    "cil",
                    "pen cil"));
    CHECK(same_keys("pen\xe3\x80\x80"
                    "cil",
                    "pen cil"));
    /* NFKC: fullwidth letters, ROMAN NUMERAL NINE, composed vs decomposed */
    CHECK(same_keys("\xef\xbd\x90\xef\xbd\x85\xef\xbd\x8e\xef\xbd\x83\xef\xbd\x89\xef\xbd\x8c",
                    "pencil"));
    CHECK(same_keys("I\xe2\x85\xa8", "IIX"));
    CHECK(same_keys("caf\xc3\xa9", "cafe\xcc\x81"));
    CHECK(!same_keys("caf\xc3\xa9", "cafe"));
    CHECK(!same_keys("Pencil", "pencil")); /* no case mapping */
    /* the RFC 5802 example expressed with a fullwidth password still
     * gives the RFC proof */
    {
        size_t l;
        unsigned char *s = b64_decode("QSXCR+Q6sek8bf92", 16, &l);
        unsigned char proof[20], sig[20];
        CHECK(scram_client_proof(SCRAM_SHA1,
                                 "\xef\xbd\x90\xef\xbd\x85\xef\xbd\x8e\xef\xbd\x83\xef\xbd\x89l", s,
                                 l, 4096,
                                 "n=user,r=fyko+d2lbbFgONRv9qkxdawL,"
                                 "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,"
                                 "i=4096,c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j",
                                 proof, sig) == 0);
        char *p64 = b64_encode(proof, 20);
        CHECK_STR(p64, "v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=");
        free(p64);
        CHECK(scram_client_proof(SCRAM_SHA1, "", s, l, 4096, "x", proof, sig) == -1);
        free(s);
    }
}

/* ------------------------------------------------------------------ */
/* Mechanism names, base64                                              */
/* ------------------------------------------------------------------ */

static void test_mechs(void)
{
    static const char *const names[] = {"SCRAM-SHA-1",   "SCRAM-SHA-1-PLUS",
                                        "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS",
                                        "SCRAM-SHA-512", "SCRAM-SHA-512-PLUS"};
    for (int i = 0; i < 6; i++) {
        scram_hash_t h = (scram_hash_t)99;
        int plus = -1;
        CHECK(scram_mech_parse(names[i], &h, &plus) == 0);
        CHECK((int)h == i / 2 && plus == i % 2);
        CHECK_STR(scram_mech_name(h, plus), names[i]);
    }
    scram_hash_t h;
    int plus;
    CHECK(scram_mech_parse("SCRAM-SHA-384", &h, &plus) == -1);
    CHECK(scram_mech_parse("scram-sha-1", &h, &plus) == -1);
    CHECK(scram_mech_parse("SCRAM-SHA-1-PLUS ", &h, &plus) == -1);
    CHECK(scram_mech_parse("PLAIN", &h, &plus) == -1);
    CHECK(scram_mech_parse(NULL, &h, &plus) == -1);
    CHECK(scram_mech_name((scram_hash_t)3, 0) == NULL);
    CHECK(scram_hash_len(SCRAM_SHA1) == 20);
    CHECK(scram_hash_len(SCRAM_SHA256) == 32);
    CHECK(scram_hash_len(SCRAM_SHA512) == 64);
    CHECK(scram_hash_len(SCRAM_HASH_COUNT) == 0);
}

static void test_base64(void)
{
    static const char *const vec[][2] = {{"", ""},
                                         {"f", "Zg=="},
                                         {"fo", "Zm8="},
                                         {"foo", "Zm9v"},
                                         {"foob", "Zm9vYg=="},
                                         {"fooba", "Zm9vYmE="},
                                         {"foobar", "Zm9vYmFy"}};
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        char *e = b64_encode((const unsigned char *)vec[i][0], strlen(vec[i][0]));
        CHECK_STR(e, vec[i][1]);
        free(e);
        size_t n = 99;
        unsigned char *d = b64_decode(vec[i][1], strlen(vec[i][1]), &n);
        CHECK(d != NULL && n == strlen(vec[i][0]) && memcmp(d, vec[i][0], n) == 0);
        free(d);
    }
    /* round trips of every length 0..100 with all byte values */
    int ok = 1;
    for (size_t len = 0; len <= 100; len++) {
        unsigned char buf[100];
        for (size_t i = 0; i < len; i++)
            buf[i] = (unsigned char)(i * 37 + len * 11 + 0xf0);
        char *e = b64_encode(buf, len);
        size_t n = 0;
        unsigned char *d = e ? b64_decode(e, strlen(e), &n) : NULL;
        if (!e || !d || n != len || (len && memcmp(d, buf, len) != 0) ||
            strlen(e) != (len + 2) / 3 * 4)
            ok = 0;
        free(e);
        free(d);
    }
    CHECK(ok);
    /* invalid input */
    static const char *const bad[] = {
        "Zg=",  "Zg",    "Z",      "Zg===",    "Z===", "====", "=Zg=",     "Zg=a",    "Zh==",
        "Zm9=", "Zm 9v", "Zm9v\n", "Zg==Zg==", "Zm-v", "Zm_v", "Zm9v====", "Zm9\x80", " Zm9",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n;
        unsigned char *d = b64_decode(bad[i], strlen(bad[i]), &n);
        CHECK(d == NULL);
        if (d)
            fprintf(stderr, "  accepted: %s\n", bad[i]);
        free(d);
    }
    size_t n;
    CHECK(b64_decode("Zm\0v", 4, &n) == NULL);
    CHECK(b64_decode(NULL, 4, &n) == NULL);
    CHECK(b64_decode("Zm9v", 4, NULL) == NULL);
    /* decoding only reads `len` bytes */
    unsigned char *d = b64_decode("Zm9vJUNK", 4, &n);
    CHECK(d && n == 3 && memcmp(d, "foo", 3) == 0);
    free(d);
    CHECK(b64_encode(NULL, 3) == NULL);
}

int main(void)
{
    test_rfc5802();
    test_rfc7677();
    test_xep0474_example();
    test_ssdp();
    test_full_exchanges();
    test_channel_binding();
    test_unknown_user();
    test_malformed();
    test_derive();
    test_mechs();
    test_base64();
    return check_summary();
}
