/*
 * sasl.c — SCRAM and PLAIN for client streams, on top of scram.c.
 */
#include "stream/sasl.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <tern/jid.h>

#include "store/accounts.h"
#include "util/workers.h"
#include "tls/tls.h"
#include "xmpp/scram.h"

#define MAX_SASL_B64 8192

struct sasl {
    sasl_params_t p;
    char mech[32];
    int plain;
    scram_server_t *scram;
    unsigned char exporter[64], end_point[64];
    scram_cb_data_t cb;
    const char *offered[SASL_MAX_MECHS];
    char *username;
    worker_job_t *job; /* PLAIN: the key derivation on the worker pool */
    char *authzid;     /* PLAIN: kept until the derivation is done */
};

static int cb_bits(SSL *ssl, unsigned char *exp, size_t *exp_len, unsigned char *sep,
                   size_t *sep_len)
{
    unsigned bits = 0;
    size_t a = 0, b = 0;
    if (ssl) {
        a = tls_cb_exporter(ssl, exp, 64);
        b = tls_cb_server_end_point(ssl, sep, 64);
    }
    if (a)
        bits |= SCRAM_CB_TLS_EXPORTER;
    if (b)
        bits |= SCRAM_CB_TLS_SERVER_END_POINT;
    if (exp_len)
        *exp_len = a;
    if (sep_len)
        *sep_len = b;
    return (int)bits;
}

void sasl_cb_types(const sasl_params_t *p, const char *types[3])
{
    unsigned char e[64], s[64];
    int bits = cb_bits(p->ssl, e, NULL, s, NULL);
    size_t n = 0;
    if (bits & SCRAM_CB_TLS_EXPORTER)
        types[n++] = "tls-exporter";
    if (bits & SCRAM_CB_TLS_SERVER_END_POINT)
        types[n++] = "tls-server-end-point";
    types[n] = NULL;
}

void sasl_mechanisms(const sasl_params_t *p, const char *mechs[SASL_MAX_MECHS])
{
    static const scram_hash_t order[] = {SCRAM_SHA512, SCRAM_SHA256, SCRAM_SHA1};
    unsigned char e[64], s[64];
    size_t n = 0;
    if (cb_bits(p->ssl, e, NULL, s, NULL))
        for (size_t i = 0; i < 3; i++)
            mechs[n++] = scram_mech_name(order[i], 1);
    for (size_t i = 0; i < 3; i++)
        mechs[n++] = scram_mech_name(order[i], 0);
    if (p->ssl && p->allow_plain)
        mechs[n++] = "PLAIN";
    mechs[n] = NULL;
}

static int lookup(void *ctx, const char *username, scram_hash_t h, scram_cred_t *cred)
{
    sasl_t *s = ctx;
    char *user = tern_jid_prep_local(username);
    if (!user)
        return -1;
    int rc = store_account_get_cred(s->p.db, s->p.host, user, h, cred);
    free(user);
    return rc;
}

sasl_t *sasl_start(const sasl_params_t *p, const char *mech, const char **failure_r)
{
    const char *offered[SASL_MAX_MECHS];
    sasl_mechanisms(p, offered);
    int ok = 0;
    for (size_t i = 0; offered[i]; i++)
        ok |= strcmp(offered[i], mech) == 0;
    if (!ok) {
        *failure_r =
            strcmp(mech, "PLAIN") == 0 && !p->ssl ? "encryption-required" : "invalid-mechanism";
        return NULL;
    }
    sasl_t *s = calloc(1, sizeof(*s));
    if (!s) {
        *failure_r = "temporary-auth-failure";
        return NULL;
    }
    s->p = *p;
    snprintf(s->mech, sizeof(s->mech), "%s", mech);
    memcpy(s->offered, offered, sizeof(offered));
    if (strcmp(mech, "PLAIN") == 0) {
        s->plain = 1;
        return s;
    }
    scram_hash_t h;
    int plus;
    if (scram_mech_parse(mech, &h, &plus) < 0) {
        free(s);
        *failure_r = "invalid-mechanism";
        return NULL;
    }
    size_t el, sl;
    s->cb.offered = (unsigned)cb_bits(p->ssl, s->exporter, &el, s->end_point, &sl);
    s->cb.exporter = s->exporter;
    s->cb.exporter_len = el;
    s->cb.end_point = s->end_point;
    s->cb.end_point_len = sl;
    s->cb.plus_advertised = s->cb.offered != 0 && p->strict_cb;
    s->cb.offered_mechs = s->offered;
    s->scram = scram_server_new(h, plus, &s->cb, lookup, s);
    if (!s->scram) {
        free(s);
        *failure_r = "temporary-auth-failure";
        return NULL;
    }
    return s;
}

/* The authzid, if any, must name the authenticated account (RFC 6120 §6.3.8). */
static int authzid_ok(const sasl_t *s, const char *authzid, const char *user)
{
    if (!authzid || !*authzid)
        return 1;
    tern_jid_t *j = tern_jid_new(authzid, NULL);
    int ok = j && j->local && !j->resource && strcmp(j->local, user) == 0 &&
             strcmp(j->domain, s->p.host) == 0;
    tern_jid_free(&j);
    return ok;
}

/* The PLAIN verdict once the password is checked: success, or the
 * failure condition (RFC 6120 §6.4.5, §6.3.8). */
static sasl_status_t plain_verdict(sasl_t *s, int ok, const char **failure_r)
{
    if (!ok) {
        *failure_r = "not-authorized";
        return SASL_FAILURE;
    }
    if (!authzid_ok(s, s->authzid, s->username)) {
        *failure_r = "invalid-authzid";
        return SASL_FAILURE;
    }
    return SASL_SUCCESS;
}

/* A PLAIN check on the worker pool: the check and the exchange it is for. */
typedef struct {
    accounts_check_t *chk;
    sasl_t *s;
} plain_job_t;

static void plain_run(void *arg)
{
    accounts_check_run(((plain_job_t *)arg)->chk);
}

/* A PLAIN check is back from the worker pool (on the loop). */
static void plain_done(void *arg, worker_end_t how)
{
    plain_job_t *job = arg;
    sasl_t *s = how != WORKER_CANCELLED ? job->s : NULL;
    int ok = accounts_check_ok(job->chk);
    accounts_check_free(&job->chk);
    free(job);
    if (s == NULL)
        return; /* the stream went away meanwhile */
    s->job = NULL;
    const char *failure = "temporary-auth-failure"; /* the server is stopping */
    sasl_status_t st = how == WORKER_DONE ? plain_verdict(s, ok, &failure) : SASL_FAILURE;
    if (st != SASL_SUCCESS) {
        free(s->username);
        s->username = NULL;
    }
    s->p.resume(s->p.resume_ctx, st, failure); /* may free s */
}

/* RFC 4616: [authzid] NUL authcid NUL passwd, checked against the stored
 * SCRAM keys by deriving them from the given password: on the worker
 * pool when the stream can be resumed (SASL_PENDING), else inline. */
static sasl_status_t plain_step(sasl_t *s, const unsigned char *msg, size_t len,
                                const char **failure_r)
{
    const char *parts[3];
    size_t start = 0, n = 0;
    for (size_t i = 0; i <= len && n < 3; i++)
        if (i == len || msg[i] == 0) {
            parts[n++] = (const char *)msg + start;
            start = i + 1;
        }
    if (n != 3 || start != len + 1 || s->job != NULL) {
        *failure_r = "malformed-request";
        return SASL_FAILURE;
    }
    char *user = tern_jid_prep_local(parts[1]);
    accounts_check_t *chk = user ? accounts_check_new(s->p.db, s->p.host, user, parts[2]) : NULL;
    if (!chk || (parts[0][0] && !(s->authzid = strdup(parts[0])))) {
        accounts_check_free(&chk);
        free(user);
        *failure_r = "not-authorized";
        return SASL_FAILURE;
    }
    s->username = user;
    plain_job_t *job = s->p.resume ? malloc(sizeof(*job)) : NULL;
    if (job) {
        *job = (plain_job_t){.chk = chk, .s = s};
        if ((s->job = workers_submit(plain_run, plain_done, job)) != NULL)
            return SASL_PENDING;
        free(job);
    }
    accounts_check_run(chk);
    sasl_status_t st = plain_verdict(s, accounts_check_ok(chk), failure_r);
    accounts_check_free(&chk);
    if (st != SASL_SUCCESS) {
        free(s->username);
        s->username = NULL;
    }
    return st;
}

sasl_status_t sasl_step(sasl_t *s, const char *in, char **out, const char **failure_r)
{
    *out = NULL;
    size_t in_len = strlen(in);
    if (in_len > MAX_SASL_B64) {
        *failure_r = "malformed-request";
        return SASL_FAILURE;
    }
    unsigned char *msg;
    size_t msg_len = 0;
    if (in_len == 0 || strcmp(in, "=") == 0) {
        msg = (unsigned char *)strdup("");
    } else {
        unsigned char *raw = b64_decode(in, in_len, &msg_len);
        if (!raw) {
            *failure_r = "incorrect-encoding";
            return SASL_FAILURE;
        }
        /* NUL-terminated copy: PLAIN reads its last field as a string. */
        msg = malloc(msg_len + 1);
        if (msg) {
            memcpy(msg, raw, msg_len);
            msg[msg_len] = 0;
        }
        OPENSSL_cleanse(raw, msg_len);
        free(raw);
    }
    if (!msg) {
        *failure_r = "temporary-auth-failure";
        return SASL_FAILURE;
    }
    sasl_status_t st;
    if (s->plain) {
        st = plain_step(s, msg, msg_len, failure_r);
        OPENSSL_cleanse(msg, msg_len);
        free(msg);
        return st;
    }
    char *reply = NULL;
    size_t reply_len = 0;
    scram_status_t r =
        scram_server_step(s->scram, (const char *)msg, msg_len, &reply, &reply_len, failure_r);
    free(msg);
    if (r == SCRAM_FAIL) {
        free(reply);
        return SASL_FAILURE;
    }
    if (reply && reply_len)
        *out = b64_encode((const unsigned char *)reply, reply_len);
    free(reply);
    if (r == SCRAM_CONTINUE)
        return SASL_CONTINUE;
    char *user = tern_jid_prep_local(scram_server_username(s->scram));
    if (!user) {
        free(*out);
        *out = NULL;
        *failure_r = "not-authorized";
        return SASL_FAILURE;
    }
    if (!authzid_ok(s, scram_server_authzid(s->scram), user)) {
        free(user);
        free(*out);
        *out = NULL;
        *failure_r = "invalid-authzid";
        return SASL_FAILURE;
    }
    s->username = user;
    return SASL_SUCCESS;
}

const char *sasl_username(const sasl_t *s)
{
    return s->username;
}

const char *sasl_mech_name(const sasl_t *s)
{
    return s->mech;
}

const char *sasl_cb_refused(const sasl_t *s)
{
    return s && s->scram ? scram_server_cb_refused(s->scram) : NULL;
}

const char *sasl_authcid(const sasl_t *s)
{
    return s && s->scram ? scram_server_authcid(s->scram) : NULL;
}

void sasl_free(sasl_t **sp)
{
    sasl_t *s = *sp;
    if (!s)
        return;
    workers_cancel(&s->job);
    scram_server_free(&s->scram);
    free(s->username);
    free(s->authzid);
    free(s);
    *sp = NULL;
}
