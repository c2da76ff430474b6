/*
 * accounts.c — create, change and delete accounts (see accounts.h).
 *
 * Owns the one place where a password becomes stored credentials: the
 * username is prepared (RFC 7622 §3.3, PRECIS UsernameCaseMapped), a
 * SCRAM credential with its own random salt is derived for every hash
 * and handed to the store.  Never stores, logs or copies the password;
 * the derived keys are wiped from memory once stored.  Checking that the
 * host is one of ours is the caller's job.  Key derivation is CPU bound:
 * a password check is split (accounts_check_*) so that the daemon runs
 * the derivation on its worker pool (util/workers.c), off the loop.
 */
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <tern/jid.h>
#include "store/accounts.h"

#define DEFAULT_ITERATIONS 4096

/* Derive credentials for every SCRAM hash from `password`, each with a
 * fresh random salt.  0, or -1 when the password is not a valid
 * OpaqueString (or crypto fails); creds are wiped on failure. */
int accounts_derive(const char *password, unsigned iterations, scram_cred_t creds[SCRAM_HASH_COUNT])
{
    if (password == NULL || password[0] == '\0')
        return -1;
    if (iterations == 0)
        iterations = DEFAULT_ITERATIONS;
    for (int h = 0; h < SCRAM_HASH_COUNT; h++) {
        if (scram_derive((scram_hash_t)h, password, NULL, 0, iterations, &creds[h]) < 0) {
            OPENSSL_cleanse(creds, sizeof(scram_cred_t) * SCRAM_HASH_COUNT);
            return -1;
        }
    }
    return 0;
}

/* Prepare `user` as a localpart; malloc'd, or NULL with *error_r set. */
static char *prep_user(const char *user, const char **error_r)
{
    char *local = user != NULL ? tern_jid_prep_local(user) : NULL;
    if (local == NULL)
        *error_r = "invalid username";
    return local;
}

/* Store `creds` for the new account local@host.  0, or -1 with *error_r. */
static int create_local(store_db_t *db, const char *host, const char *local,
                        const scram_cred_t creds[SCRAM_HASH_COUNT], const char **error_r)
{
    int exists = 0;
    if (store_account_create(db, host, local, creds, &exists) < 0) {
        *error_r = exists ? "account exists" : "storage error";
        return -1;
    }
    return 0;
}

/* 0 when local@host exists, else -1 with *error_r. */
static int must_exist(store_db_t *db, const char *host, const char *local, const char **error_r)
{
    int exists = store_account_exists(db, host, local);
    if (exists <= 0) {
        *error_r = exists < 0 ? "storage error" : "no such account";
        return -1;
    }
    return 0;
}

/* Replace the credentials of local@host, which exists. */
static int set_creds_local(store_db_t *db, const char *host, const char *local,
                           const scram_cred_t creds[SCRAM_HASH_COUNT], const char **error_r)
{
    if (store_account_set_creds(db, host, local, creds) < 0) {
        *error_r = "storage error";
        return -1;
    }
    return 0;
}

/* What account_change does to local@host. */
typedef enum {
    ACCOUNT_CREATE, /* a new account; refused when it exists */
    ACCOUNT_PASSWD, /* new credentials for an existing account */
    ACCOUNT_DELETE, /* remove an existing account */
} account_change_t;

/* The one body of the account functions: prepare `user`, check that the
 * account exists (change and delete), derive credentials from `password`
 * unless `creds` are given (create and change), then store.  The derived
 * keys are wiped before returning.  0, or -1 with *error_r (error_r may
 * be NULL). */
static int account_change(store_db_t *db, const char *host, const char *user, account_change_t what,
                          const char *password, unsigned iterations, const scram_cred_t *creds,
                          const char **error_r)
{
    const char *dummy;
    if (error_r == NULL)
        error_r = &dummy;
    char *local = prep_user(user, error_r);
    if (local == NULL)
        return -1;
    scram_cred_t derived[SCRAM_HASH_COUNT];
    int ret = what == ACCOUNT_CREATE ? 0 : must_exist(db, host, local, error_r);
    if (ret == 0 && what != ACCOUNT_DELETE && creds == NULL) {
        if (accounts_derive(password, iterations, derived) < 0) {
            *error_r = "invalid password";
            ret = -1;
        } else {
            creds = derived;
        }
    }
    if (ret == 0) {
        switch (what) {
        case ACCOUNT_CREATE:
            ret = create_local(db, host, local, creds, error_r);
            break;
        case ACCOUNT_PASSWD:
            ret = set_creds_local(db, host, local, creds, error_r);
            break;
        case ACCOUNT_DELETE:
            if (store_account_delete(db, host, local) < 0) {
                *error_r = "storage error";
                ret = -1;
            }
            break;
        }
    }
    if (creds == derived)
        OPENSSL_cleanse(derived, sizeof(derived));
    free(local);
    return ret;
}

int accounts_add(store_db_t *db, const char *host, const char *user, const char *password,
                 unsigned iterations, const char **error_r)
{
    return account_change(db, host, user, ACCOUNT_CREATE, password, iterations, NULL, error_r);
}

int accounts_add_derived(store_db_t *db, const char *host, const char *user,
                         const scram_cred_t creds[SCRAM_HASH_COUNT], const char **error_r)
{
    return account_change(db, host, user, ACCOUNT_CREATE, NULL, 0, creds, error_r);
}

int accounts_passwd_derived(store_db_t *db, const char *host, const char *user,
                            const scram_cred_t creds[SCRAM_HASH_COUNT], const char **error_r)
{
    return account_change(db, host, user, ACCOUNT_PASSWD, NULL, 0, creds, error_r);
}

int accounts_passwd(store_db_t *db, const char *host, const char *user, const char *password,
                    unsigned iterations, const char **error_r)
{
    return account_change(db, host, user, ACCOUNT_PASSWD, password, iterations, NULL, error_r);
}

int accounts_delete(store_db_t *db, const char *host, const char *user, const char **error_r)
{
    return account_change(db, host, user, ACCOUNT_DELETE, NULL, 0, NULL, error_r);
}

struct accounts_check {
    scram_cred_t stored; /* what the store holds (SCRAM-SHA-256) */
    char *password;      /* a copy, wiped when freed */
    int ok;
};

accounts_check_t *accounts_check_new(store_db_t *db, const char *host, const char *user,
                                     const char *password)
{
    if (password == NULL)
        return NULL;
    accounts_check_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    if (store_account_get_cred(db, host, user, SCRAM_SHA256, &c->stored) < 0 ||
        (c->password = strdup(password)) == NULL) {
        accounts_check_free(&c);
        return NULL;
    }
    return c;
}

void accounts_check_run(void *arg)
{
    accounts_check_t *c = arg;
    scram_cred_t given;
    c->ok =
        scram_derive(SCRAM_SHA256, c->password, c->stored.salt, c->stored.salt_len,
                     c->stored.iterations, &given) == 0 &&
        CRYPTO_memcmp(given.stored_key, c->stored.stored_key, scram_hash_len(SCRAM_SHA256)) == 0;
    OPENSSL_cleanse(&given, sizeof(given));
}

int accounts_check_ok(const accounts_check_t *c)
{
    return c != NULL && c->ok;
}

void accounts_check_free(accounts_check_t **cp)
{
    accounts_check_t *c = *cp;
    if (c == NULL)
        return;
    if (c->password != NULL) {
        OPENSSL_cleanse(c->password, strlen(c->password));
        free(c->password);
    }
    OPENSSL_cleanse(c, sizeof(*c));
    free(c);
    *cp = NULL;
}

int accounts_check_password(store_db_t *db, const char *host, const char *user,
                            const char *password)
{
    accounts_check_t *c = accounts_check_new(db, host, user, password);
    if (c == NULL)
        return 0;
    accounts_check_run(c);
    int ok = accounts_check_ok(c);
    accounts_check_free(&c);
    return ok;
}
