/*
 * rooms.c — rooms of mod_muc: creation, lookup, affiliations, freeing.
 * Owns the muc_room_t memory (occupants are freed here with their room);
 * sends nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "muc.h"

void muc_vec_add(muc_vec_t *v, const char *s)
{
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        const char **nv = realloc(v->v, cap * sizeof(*nv));
        if (!nv)
            return;
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = s;
}

void muc_vec_free(muc_vec_t *v)
{
    free(v->v);
    v->v = NULL;
    v->n = v->cap = 0;
}

static const char *const aff_names[] = {"outcast", "none", "member", "admin", "owner"};
static const char *const role_names[] = {"none", "visitor", "participant", "moderator"};

const char *aff_name(int aff)
{
    return aff >= AFF_OUTCAST && aff <= AFF_OWNER ? aff_names[aff + 1] : "none";
}

int aff_parse(const char *s)
{
    for (int i = 0; s && i < 5; i++)
        if (strcmp(s, aff_names[i]) == 0)
            return i - 1;
    return -2;
}

const char *role_name(int role)
{
    return role >= ROLE_NONE && role <= ROLE_MODERATOR ? role_names[role] : "none";
}

int role_parse(const char *s)
{
    for (int i = 0; s && i < 4; i++)
        if (strcmp(s, role_names[i]) == 0)
            return i;
    return -1;
}

static char *xstrdup(const char *s)
{
    return strdup(s ? s : "");
}

void muc_config_copy(muc_config_t *dst, const muc_config_t *src)
{
    *dst = *src;
    dst->name = xstrdup(src->name);
    dst->desc = xstrdup(src->desc);
    dst->password = xstrdup(src->password);
}

void muc_config_clear(muc_config_t *c)
{
    free(c->name);
    free(c->desc);
    free(c->password);
    c->name = c->desc = c->password = NULL;
}

muc_room_t *room_find(muc_t *mu, const char *local)
{
    return local ? tern_table_get(mu->rooms, local) : NULL;
}

void room_set_history_len(muc_room_t *r, long len)
{
    if (len < 0)
        len = 0;
    if ((size_t)len == r->hist_cap)
        return;
    history_clear(r);
    free(r->hist);
    r->hist = len ? calloc((size_t)len, sizeof(*r->hist)) : NULL;
    r->hist_cap = r->hist ? (size_t)len : 0;
    r->hist_n = r->hist_head = 0;
    r->cfg.history_len = (long)r->hist_cap;
}

muc_room_t *room_new(muc_t *mu, const char *local, const char *creator)
{
    muc_room_t *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->mu = mu;
    r->local = strdup(local);
    size_t len = strlen(local) + strlen(tern_host(mu->m)) + 2;
    r->jid = malloc(len);
    r->by_nick = tern_table_new();
    r->by_full = tern_table_new();
    r->affs = tern_table_new();
    if (!r->local || !r->jid || !r->by_nick || !r->by_full || !r->affs ||
        tern_table_put(mu->rooms, local, r) != 0) {
        free(r->local);
        free(r->jid);
        tern_table_free(&r->by_nick);
        tern_table_free(&r->by_full);
        tern_table_free(&r->affs);
        free(r);
        return NULL;
    }
    snprintf(r->jid, len, "%s@%s", local, tern_host(mu->m));
    muc_config_copy(&r->cfg, &mu->defaults);
    if (!*r->cfg.name) {
        free(r->cfg.name);
        r->cfg.name = strdup(local);
    }
    long hl = r->cfg.history_len;
    r->cfg.history_len = 0;
    room_set_history_len(r, hl);
    if (creator) {
        r->creator = strdup(creator);
        r->locked = 1;
        room_set_aff(r, creator, AFF_OWNER);
    }
    return r;
}

void room_free(muc_t *mu, muc_room_t **rp)
{
    muc_room_t *r = *rp;
    if (!r)
        return;
    tern_table_remove(mu->rooms, r->local);
    muc_occ_t *o = r->first;
    while (o) {
        muc_occ_t *next = o->next;
        occ_destroy(o);
        o = next;
    }
    tern_table_free(&r->affs);
    tern_table_free(&r->by_nick);
    tern_table_free(&r->by_full);
    history_clear(r);
    free(r->hist);
    muc_config_clear(&r->cfg);
    free(r->local);
    free(r->jid);
    free(r->creator);
    free(r->subject);
    free(r->subject_nick);
    free(r);
    *rp = NULL;
}

int room_aff_stored(const muc_room_t *r, const char *bare)
{
    void *v = bare ? tern_table_get(r->affs, bare) : NULL;
    return v ? (int)((intptr_t)v - 2) : AFF_NONE;
}

/* XEP-0045 §5.2 plus the policy "server admins own every room". */
int room_aff(muc_t *mu, const muc_room_t *r, const char *bare)
{
    if (mu->admins_are_owners && tern_is_admin(mu->m, bare))
        return AFF_OWNER;
    return room_aff_stored(r, bare);
}

void room_set_aff(muc_room_t *r, const char *bare, int aff)
{
    if (aff == AFF_NONE)
        tern_table_remove(r->affs, bare);
    else
        tern_table_put(r->affs, bare, (void *)(intptr_t)(aff + 2));
}

typedef struct {
    int aff;
    size_t n;
} count_ctx_t;

static int count_aff(void *ctx, const char *key, void *value)
{
    (void)key;
    count_ctx_t *c = ctx;
    if ((int)((intptr_t)value - 2) == c->aff)
        c->n++;
    return 0;
}

size_t room_count_aff(const muc_room_t *r, int aff)
{
    count_ctx_t c = {aff, 0};
    tern_table_foreach(r->affs, count_aff, &c);
    return c.n;
}

typedef struct {
    const char *bare;
    size_t n;
} owned_ctx_t;

static int count_owned(void *ctx, const char *key, void *value)
{
    (void)key;
    owned_ctx_t *c = ctx;
    const muc_room_t *r = value;
    if (r->creator && strcmp(r->creator, c->bare) == 0)
        c->n++;
    return 0;
}

size_t room_count_owned(muc_t *mu, const char *bare)
{
    owned_ctx_t c = {bare, 0};
    tern_table_foreach(mu->rooms, count_owned, &c);
    return c.n;
}

/* XEP-0045 §5.1.2: the role an occupant gets on entering. */
int room_default_role(const muc_room_t *r, int aff)
{
    if (aff >= AFF_ADMIN)
        return ROLE_MODERATOR;
    if (r->cfg.moderated && aff < AFF_MEMBER)
        return ROLE_VISITOR;
    return ROLE_PARTICIPANT;
}

void room_maybe_gc(muc_t *mu, muc_room_t *r)
{
    if (r->n_occ == 0 && !r->cfg.persistent) {
        persist_remove(mu, r);
        room_free(mu, &r);
    }
}
