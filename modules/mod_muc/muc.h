/*
 * muc.h — Multi-User Chat (XEP-0045), shared by the files of mod_muc.
 *
 * The module serves a service domain (conference.example.org): a room is
 * room@domain, an occupant room@domain/nick.  Files, one job each:
 *   mod.c        entry, option table, event dispatch, load/unload;
 *   rooms.c      rooms: state, lookup, affiliations, creation, freeing;
 *   occupants.c  presence: join, leave, nick change, status codes,
 *                several sessions of one user under one nick;
 *   messages.c   groupchat fan-out, private messages, subject, history,
 *                invitations, voice requests;
 *   admin.c      roles and affiliations (muc#admin);
 *   owner.c      room configuration (muc#owner, muc#roomconfig), destroy;
 *   persist.c    persistent rooms in the module's map storage;
 *   disco.c      service and room discovery (disco#info, disco#items);
 *   forms.c      small XEP-0004 data form helpers;
 *   ids.c        stanza ids (XEP-0359) and occupant ids (XEP-0421);
 *   selfping.c   self-ping (XEP-0410);
 *   moderate.c   moderation of messages (XEP-0425);
 *   archive.c    the rooms' archives (XEP-0313);
 *   avatar.c     the rooms' vCards and avatars (XEP-0486).
 * Rooms live in memory; persistent ones are also written to the store and
 * read back at load.  Nothing here touches sockets or the core's internals.
 */
#ifndef MOD_MUC_H
#define MOD_MUC_H

#include <stdint.h>
#include <tern/module.h>
#include <tern/strlist.h>
#include <tern/table.h>

#include "../muc_api.h"

#define NS_MUC        "http://jabber.org/protocol/muc"
#define NS_MUC_USER   "http://jabber.org/protocol/muc#user"
#define NS_MUC_ADMIN  "http://jabber.org/protocol/muc#admin"
#define NS_MUC_OWNER  "http://jabber.org/protocol/muc#owner"
#define NS_MUC_CONFIG "http://jabber.org/protocol/muc#roomconfig"
#define NS_MUC_INFO   "http://jabber.org/protocol/muc#roominfo"
#define NS_MUC_REQ    "http://jabber.org/protocol/muc#request"
#define NS_DATA       "jabber:x:data"
#define NS_DELAY      "urn:xmpp:delay"
#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEM "http://jabber.org/protocol/disco#items"

/* ids.c, selfping.c */
#define NS_SID         "urn:xmpp:sid:0"
#define NS_OCCUPANT_ID "urn:xmpp:occupant-id:0"
#define NS_PING        "urn:xmpp:ping"
#define NS_SELF_PING   "http://jabber.org/protocol/muc#self-ping-optimization"

/* XEP-0045 §5.2: affiliations, ordered so that a higher value has more rights. */
enum { AFF_OUTCAST = -1, AFF_NONE = 0, AFF_MEMBER = 1, AFF_ADMIN = 2, AFF_OWNER = 3 };
/* XEP-0045 §5.1: roles. */
enum { ROLE_NONE = 0, ROLE_VISITOR = 1, ROLE_PARTICIPANT = 2, ROLE_MODERATOR = 3 };

enum { CREATE_ANYONE = 0, CREATE_LOCAL, CREATE_ADMINS };

typedef struct muc_config {
    char *name;     /* muc#roomconfig_roomname, malloc'd, never NULL */
    char *desc;     /* muc#roomconfig_roomdesc */
    char *password; /* muc#roomconfig_roomsecret */
    int persistent, public_room, members_only, moderated, password_protected;
    int nonanonymous; /* muc#roomconfig_whois = anyone */
    int change_subject, allow_invites;
    long max_occupants; /* 0: the module's max_occupants */
    long history_len;   /* messages kept for history on join */
} muc_config_t;

typedef struct muc_occ {
    char *nick;
    char *bare;           /* the occupant's real bare JID */
    int role;             /* ROLE_* */
    tern_strlist_t fulls; /* the real full JIDs joined under this nick */
    tern_xml_t *pres;     /* the last available presence it sent (a copy), or NULL */
    /* Its plain available presence as others see it, without [0] and with
     * [1] its real JID: built once, frozen, serialized once, sent to every
     * newcomer; dropped when anything in it changes (occ_invalidate). */
    tern_xml_t *cache[2];
    struct muc_occ *prev, *next;
} muc_occ_t;

typedef struct muc_hist {
    tern_xml_t *msg; /* frozen, with <delay/> */
    int64_t when_us;
    size_t chars; /* its size as XML, for maxchars */
} muc_hist_t;

typedef struct muc muc_t;

typedef struct muc_room {
    muc_t *mu;   /* the module state it belongs to */
    char *local; /* the room's localpart */
    char *jid;   /* room@service */
    muc_config_t cfg;
    int locked;            /* created, awaiting its owner's configuration (§10.1) */
    char *creator;         /* bare JID that created it */
    char *subject;         /* NULL: none */
    char *subject_nick;    /* who set it */
    tern_table_t *by_nick; /* nick -> muc_occ_t */
    tern_table_t *by_full; /* real full JID -> muc_occ_t */
    muc_occ_t *first, *last;
    size_t n_occ;
    tern_table_t *affs; /* bare JID -> (void *)(intptr_t)(aff + 2) */
    muc_hist_t *hist;   /* ring of hist_cap entries */
    size_t hist_cap, hist_n, hist_head;
} muc_room_t;

#define MUC_MAX_WATCHERS 8

typedef struct muc_watcher {
    tern_module_ctx_t *who;
    tern_muc_watch_fn fn;
    void *arg;
} muc_watcher_t;

struct muc {
    tern_muc_api_t api; /* first: the table other modules get points here */
    tern_module_ctx_t *m;
    muc_watcher_t watchers[MUC_MAX_WATCHERS];
    size_t n_watchers;
    tern_table_t *rooms; /* localpart -> muc_room_t */
    tern_store_t *store; /* map: user "", key = room localpart */
    int create;          /* CREATE_* */
    muc_config_t defaults;
    long max_rooms_per_user, max_occupants;
    int admins_are_owners;
    unsigned char secret[32]; /* occupant ids (ids.c) */
    tern_store_t *archive;    /* archive: user = room JID, id = stanza id */
    int archive_on;           /* option archive */
    tern_store_t *vcards;     /* map: user "", key = room localpart (avatar.c) */
};

/* A growable array of borrowed strings (recipients of a fan-out). */
typedef struct muc_vec {
    const char **v;
    size_t n, cap;
} muc_vec_t;
void muc_vec_add(muc_vec_t *v, const char *s);
void muc_vec_free(muc_vec_t *v);

/* mod.c */
muc_t *muc_get(tern_module_ctx_t *m);

/* rooms.c */
muc_room_t *room_find(muc_t *mu, const char *local);
/* A new, locked room owned by `creator` (NULL when loading from the store). */
muc_room_t *room_new(muc_t *mu, const char *local, const char *creator);
/* Forget the room (memory only; persist_remove drops its stored copy). */
void room_free(muc_t *mu, muc_room_t **r);
int room_aff(muc_t *mu, const muc_room_t *r, const char *bare);
/* The stored affiliation only (no admins_are_owners). */
int room_aff_stored(const muc_room_t *r, const char *bare);
void room_set_aff(muc_room_t *r, const char *bare, int aff);
size_t room_count_owned(muc_t *mu, const char *bare);
size_t room_count_aff(const muc_room_t *r, int aff);
int room_default_role(const muc_room_t *r, int aff);
void room_set_history_len(muc_room_t *r, long len);
const char *aff_name(int aff);
int aff_parse(const char *s); /* -2 when unknown */
const char *role_name(int role);
int role_parse(const char *s); /* -1 when unknown */
void muc_config_copy(muc_config_t *dst, const muc_config_t *src);
void muc_config_clear(muc_config_t *c);
/* After the last occupant left: a temporary room goes away. */
void room_maybe_gc(muc_t *mu, muc_room_t *r);

/* occupants.c */
int muc_on_presence(tern_module_ctx_t *m, tern_event_t *ev);
int muc_on_presence_bare(tern_module_ctx_t *m, tern_event_t *ev);
muc_occ_t *occ_by_full(const muc_room_t *r, const char *full);
muc_occ_t *occ_by_nick(const muc_room_t *r, const char *nick);
/* Whether `to` may see `o`'s real JID. */
int occ_jid_visible(const muc_room_t *r, const muc_occ_t *to);
/* Send o's presence (type NULL: available, or "unavailable") to every
 * occupant: others get it with or without the real JID, o's own sessions
 * with status 110 and `self_codes` added.  actor/reason/nick_new go into
 * the <item/>; `extra` (may be NULL) is copied into the <x/>. */
void occ_broadcast(muc_t *mu, muc_room_t *r, muc_occ_t *o, const char *type, const int *codes,
                   size_t ncodes, const int *self_codes, size_t nself, const char *nick_new,
                   const char *actor, const char *reason, const tern_xml_t *extra);
/* Take o out of the room with an unavailable presence carrying `code`
 * (307 kick, 301 ban, 321, 322, or 0), then free it. */
void occ_remove(muc_t *mu, muc_room_t *r, muc_occ_t *o, int code, const char *actor,
                const char *reason);
/* The session `full` of o leaves (§7.14); o goes with its last session,
 * with `code` (0, or 333 when its address bounced an error), and a
 * temporary room that is left empty goes. */
void occ_leave(muc_t *mu, muc_room_t *r, muc_occ_t *o, const char *full, int code);
/* Free an occupant already unlinked from its room's tables and list. */
void occ_destroy(muc_occ_t *o);
/* Drop o's cached presences (its presence, nick, role or affiliation changed). */
void occ_invalidate(muc_occ_t *o);
/* o's role or affiliation changed: tell everyone. */
void occ_changed(muc_t *mu, muc_room_t *r, muc_occ_t *o, const char *actor, const char *reason);
/* Route a message from the room (bare) carrying status codes to all occupants. */
void room_status_message(muc_t *mu, muc_room_t *r, const int *codes, size_t n);
void occ_collect_all(const muc_room_t *r, muc_vec_t *to);

/* messages.c */
int muc_on_room_message(tern_module_ctx_t *m, tern_event_t *ev);
int muc_on_private_message(tern_module_ctx_t *m, tern_event_t *ev);
/* Send history (honouring <history/> of the join, may be NULL) and the subject to `full`. */
void history_send(muc_t *mu, muc_room_t *r, const char *full, tern_xml_t *history);
void subject_send(muc_t *mu, muc_room_t *r, const char *full);
void history_clear(muc_room_t *r);
/* Add msg (as the room sent it, sent at `when_us`) to r's history, with a <delay/>. */
void history_push(muc_room_t *r, const tern_xml_t *msg, int64_t when_us);

/* admin.c */
int muc_on_admin_get(tern_module_ctx_t *m, tern_event_t *ev);
int muc_on_admin_set(tern_module_ctx_t *m, tern_event_t *ev);

/* owner.c */
int muc_on_owner_get(tern_module_ctx_t *m, tern_event_t *ev);
int muc_on_owner_set(tern_module_ctx_t *m, tern_event_t *ev);
/* Destroy: every occupant gets unavailable with <destroy/>; the room and
 * its stored copy go. */
void room_destroy(muc_t *mu, muc_room_t **r, const char *alt, const char *reason);
/* Every occupant gets its own unavailable presence with `code` (0: none)
 * and `extra` in the <x/>, and is taken out; nobody hears of the others. */
void room_evict_all(muc_t *mu, muc_room_t *r, int code, const tern_xml_t *extra);

/* persist.c */
void persist_save(muc_t *mu, const muc_room_t *r);
void persist_remove(muc_t *mu, const muc_room_t *r);
int persist_load_all(muc_t *mu);

/* disco.c */
int muc_on_disco_info_host(tern_module_ctx_t *m, tern_event_t *ev);
int muc_on_disco_items_host(tern_module_ctx_t *m, tern_event_t *ev);
int muc_on_disco_info_room(tern_module_ctx_t *m, tern_event_t *ev);
int muc_on_disco_items_room(tern_module_ctx_t *m, tern_event_t *ev);

/* ids.c */
#define MUC_ID_LEN  32 /* a stanza id and its NUL */
#define MUC_OID_LEN 48 /* an occupant id (base64 of 32 bytes) and its NUL */
/* Read the service's secret, or make and keep one.  0, or -1. */
int ids_load_secret(muc_t *mu);
/* A new unique stanza id (22 characters of base64url).  0, or -1. */
int ids_new_stanza_id(char out[MUC_ID_LEN]);
/* The occupant id of `bare` in `room` (XEP-0421).  0, or -1. */
int ids_occupant_id(const muc_t *mu, const char *room, const char *bare, char out[MUC_OID_LEN]);
/* Replace any <occupant-id/> of `st` with that of `bare` in r. */
void ids_add_occupant_id(const muc_room_t *r, const char *bare, tern_xml_t *st);
/* A groupchat message as the room sends it: drop forged ids, add the
 * sender's occupant id and a new <stanza-id by=room/>, its id in id_out.
 * 0, or -1 (no stanza id). */
int ids_stamp_message(const muc_room_t *r, const char *bare, tern_xml_t *msg,
                      char id_out[MUC_ID_LEN]);

/* selfping.c */
int muc_on_self_ping(tern_module_ctx_t *m, tern_event_t *ev);

/* moderate.c */
#define NS_MODERATE0 "urn:xmpp:message-moderate:0"
#define NS_MODERATE1 "urn:xmpp:message-moderate:1"
int muc_on_moderate(tern_module_ctx_t *m, tern_event_t *ev);
int muc_on_moderate_fasten(tern_module_ctx_t *m, tern_event_t *ev);

/* archive.c */
#define NS_MAM "urn:xmpp:mam:2"
/* Whether r keeps an archive (the option archive, persistent rooms). */
int archive_enabled(const muc_t *mu, const muc_room_t *r);
/* Keep msg (as the room sent it) under its stanza id `sid`. */
void archive_record(muc_t *mu, const muc_room_t *r, const tern_xml_t *msg, const char *sid,
                    int64_t when_us);
/* Replace the archived message `sid`, if there is one, with msg. */
void archive_replace(muc_t *mu, const muc_room_t *r, const char *sid, const tern_xml_t *msg,
                     int64_t when_us);
int muc_on_mam_query(tern_module_ctx_t *m, tern_event_t *ev);
/* After a restart: refill the history of every archived room from its
 * archive (its newest messages, within its history length). */
void archive_fill_histories(muc_t *mu);

/* avatar.c */
#define NS_VCARD "vcard-temp"
/* The hex SHA-1 of r's vCard photo in out; 0, or -1 (out "") when none. */
int avatar_hash(muc_t *mu, const muc_room_t *r, char out[41]);
int muc_on_vcard_get(tern_module_ctx_t *m, tern_event_t *ev);
int muc_on_vcard_set(tern_module_ctx_t *m, tern_event_t *ev);
/* Forget r's vCard (the room is destroyed). */
void avatar_remove(muc_t *mu, const muc_room_t *r);

/* forms.c */
/* Add <name xmlns=ns>text</name> to parent (no text when text is NULL). */
void muc_add_text_child(tern_xml_t *parent, const char *name, const char *ns, const char *text);
tern_xml_t *form_add_field(tern_xml_t *x, const char *var, const char *type, const char *label,
                           const char *value);
/* The first <value/> of field `var` in form x, or NULL. */
const char *form_value(tern_xml_t *x, const char *var);
/* A form's boolean ("1"/"true"); `def` when absent. */
int form_bool(tern_xml_t *x, const char *var, int def);
/* The FORM_TYPE of a form, or NULL. */
const char *form_type(tern_xml_t *x);

#endif
