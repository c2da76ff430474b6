/*
 * s2s.c — federation's shared parts: the trust store for peers'
 * certificates, the dialback secret, the policy lists, and
 * start-up and shutdown.  The streams themselves are in s2s_in.c and
 * s2s_out.c.  Must not: block (DNS goes through server.resolver,
 * net/resolver.h).
 */
#include "stream/s2s_int.h"

#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "util/log.h"
#include "stream/dialback.h"
#include "route/host.h"
#include "route/router.h"

s2s_shared_t s2s;

int s2s_listed(const char *const *list, const char *domain)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(list[i], domain) == 0)
            return 1;
    return 0;
}

int s2s_allowed(const char *remote)
{
    const tern_config_t *cfg = server.cfg;
    if (s2s_listed(cfg->s2s.deny, remote))
        return 0;
    return !cfg->s2s.allow || !cfg->s2s.allow[0] || s2s_listed(cfg->s2s.allow, remote);
}

int s2s_dialback_allowed(const char *remote, tls_verify_t v)
{
    const tern_config_t *cfg = server.cfg;
    return v == TLS_VERIFY_OK || !cfg->s2s.require_valid_certificates ||
           s2s_listed(cfg->s2s.dialback_only, remote);
}

long long s2s_now_ms(void)
{
    struct timeval tv;
    event_base_gettimeofday_cached(server.base, &tv);
    return (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int s2s_token_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 128)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

const char *s2s_verify_words(tls_verify_t v)
{
    switch (v) {
    case TLS_VERIFY_PENDING:
        return "not checked";
    case TLS_VERIFY_OK:
        return "valid";
    default:
        return tls_verify_str(v);
    }
}

int s2s_key_ok(const char *receiving, const char *originating, const char *id, const char *key)
{
    return dialback_check(s2s.secret, receiving, originating, id, key) ||
           (s2s.old_secret[0] && dialback_check(s2s.old_secret, receiving, originating, id, key));
}

/* s2s.secret from the configuration, or random.  0 or -1. */
static int set_secret(const tern_config_t *cfg, char out[65])
{
    if (cfg->s2s.dialback_secret) {
        snprintf(out, 65, "%s", cfg->s2s.dialback_secret);
        return 0;
    }
    unsigned char raw[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

int s2s_start(char *err, size_t errlen)
{
    const tern_config_t *cfg = server.cfg;
    if (set_secret(cfg, s2s.secret) < 0) {
        snprintf(err, errlen, "federation: no random bytes for the dialback secret");
        return -1;
    }
    s2s.secret_configured = cfg->s2s.dialback_secret != NULL;
    s2s.trust = tls_client_new(cfg->s2s.ca_file, err, errlen);
    if (!s2s.trust)
        return -1;
    s2s.started = 1;
    router_set_remote(s2s_out_route); /* it reads s2s.enabled at each stanza */
    return 0;
}

void s2s_apply(tls_client_t **trust)
{
    const tern_config_t *cfg = server.cfg;
    if (!s2s.started) {
        tls_client_free(trust);
        return;
    }
    tls_client_free(&s2s.trust);
    s2s.trust = *trust;
    *trust = NULL;
    s2s_out_forget_certificates(); /* certificates may have changed too */
    /* A configured secret that changed, or one no longer configured (a
     * random one replaces it); an unset one stays the random one. */
    int change = cfg->s2s.dialback_secret
                     ? !s2s.secret_configured || strncmp(cfg->s2s.dialback_secret, s2s.secret,
                                                         sizeof(s2s.secret) - 1) != 0
                     : s2s.secret_configured;
    char fresh[65];
    if (change && set_secret(cfg, fresh) == 0) {
        memcpy(s2s.old_secret, s2s.secret, sizeof(s2s.old_secret));
        memcpy(s2s.secret, fresh, sizeof(s2s.secret));
        OPENSSL_cleanse(fresh, sizeof(fresh));
        s2s.secret_configured = cfg->s2s.dialback_secret != NULL;
        log_info("federation: new dialback secret (keys given before still verify until the "
                 "next change)");
    }
}

void s2s_stop(void)
{
    if (!s2s.started)
        return;
    router_set_remote(NULL);
    s2s_out_stop();
    s2s_in_stop();
    tls_client_free(&s2s.trust);
    OPENSSL_cleanse(s2s.secret, sizeof(s2s.secret));
    OPENSSL_cleanse(s2s.old_secret, sizeof(s2s.old_secret));
    s2s.started = 0;
}

void s2s_list(void (*fn)(void *arg, const s2s_info_t *info), void *arg)
{
    s2s_in_list(fn, arg);
    s2s_out_list(fn, arg);
}

size_t s2s_close_domain(const char *domain)
{
    return s2s_in_close(domain) + s2s_out_close(domain);
}
