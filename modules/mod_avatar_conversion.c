/*
 * mod_avatar_conversion — XEP-0398 User Avatar to vCard-Based Avatars
 * Conversion: keeps a user's XEP-0084 PEP avatar and the PHOTO of their
 * vcard-temp vCard (XEP-0153) in step, so that clients of either kind see
 * the avatar the other kind set.
 *
 *   - PEP -> vCard (§3.1): after the owner publishes to (or retracts from,
 *     purges, deletes) urn:xmpp:avatar:metadata, the newest metadata item
 *     decides.  Its first <info/> without a 'url' whose image is on
 *     urn:xmpp:avatar:data (item id = that info's id, SHA-1 checked) becomes
 *     the vCard's PHOTO (TYPE + BINVAL), other vCard fields kept; metadata
 *     with no <info/> (XEP-0084 "disable": empty, or <stop/>), or no
 *     metadata at all, removes the PHOTO.  A data item published after its
 *     metadata is picked up then.  mod_vcard then advertises the new hash
 *     in presence (XEP-0398 §4).
 *   - vCard -> PEP (§3.2): after a vCard is stored with a decodable
 *     PHOTO/BINVAL, the image is published to the data node (id = hex
 *     SHA-1 of the bytes), then one <info/> (id, bytes, type, and width and
 *     height for PNG and GIF) to the metadata node; a vCard without an image
 *     publishes an empty <metadata/>.  Contacts get the usual PEP
 *     notifications.
 *
 * It never loops and never republishes what is already there: mod_pep does
 * not tell an observer of its own changes, a vCard this module stores is
 * ignored by its own watch (the `busy` flag), and each direction first
 * compares with what the other side holds (hash and type).  Nodes it
 * creates get mod_pep's defaults (access model presence); existing nodes
 * keep their configuration.  A PEP avatar goes into the vCard, which
 * anyone may read, only when its data node's access model is open enough
 * (option pep_to_vcard); a whitelist node's avatar never does.
 *
 * It stores nothing and answers no iq: mod_vcard and mod_pep do; this
 * module only reads and writes through their services ("depends").
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <tern/base64.h>
#include <tern/module.h>

#include "pep_api.h"
#include "vcard_api.h"

#define NS_CONVERSION  "urn:xmpp:pep-vcard-conversion:0"
#define NS_AVATAR_DATA "urn:xmpp:avatar:data"
#define NS_AVATAR_META "urn:xmpp:avatar:metadata"
#define DEFAULT_TYPE   "image/png" /* XEP-0084 §4.1: the data node's content type */
#define SHA1_HEX_LEN   40
#define MAX_TYPE_LEN   100

static const char *const depends[] = {"vcard", "pep", NULL};

static const tern_option_t options[] = {
    {.name = "pep_to_vcard",
     .type = TERN_OPT_STRING,
     .def = "presence",
     .doc = "Which PEP avatars are copied into the public vCard: `presence` — those on a data node "
            "with access model `presence` (the default, as XEP-0398 describes) or `open`; `open` — "
            "only those the user published with access model `open` (XEP-0398 §6). Any other value "
            "keeps the module from loading."},
    {.name = "vcard_to_pep",
     .type = TERN_OPT_BOOL,
     .def = "true",
     .doc = "Publish the photo a vCard client stores as the user's PEP avatar (XEP-0398 §3.2, "
            "optional in the XEP)."},
    {.name = NULL},
};

/* Module data. */
typedef struct conv_state {
    int open_only;    /* pep_to_vcard: open */
    int vcard_to_pep; /* option */
    int busy;         /* we are storing a vCard: its watch callback is our own echo */
} conv_state_t;

/* An image and what describes it. */
typedef struct image {
    unsigned char *bytes; /* malloc'd */
    size_t len;
    char sha1[SHA1_HEX_LEN + 1]; /* lower-case hex */
    char type[MAX_TYPE_LEN + 1]; /* content type, "" when unknown */
} image_t;

static void image_clear(image_t *img)
{
    free(img->bytes);
    memset(img, 0, sizeof *img);
}

/* ---- services ------------------------------------------------------------ */

static const tern_pep_api_t *pep_of(tern_module_ctx_t *m)
{
    const tern_pep_api_t *pep = tern_require(m, TERN_PEP_SERVICE);
    return pep != NULL && pep->abi == TERN_PEP_ABI ? pep : NULL;
}

static const vcard_api_t *vcard_of(tern_module_ctx_t *m)
{
    return tern_require(m, VCARD_SERVICE);
}

/* ---- bytes --------------------------------------------------------------- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Decode the base64 text of element `el` (its direct text children; white
 * space ignored: XEP-0084 §4.1, XEP-0153 §4.7; missing '=' padding allowed)
 * into img->bytes and compute img->sha1.  0, or -1 when the text is empty
 * or not base64.  Reads the tree without touching it (it may be mod_pep's). */
static int image_from_base64(image_t *img, const tern_xml_t *el)
{
    size_t len = 0, n = 0;
    for (const tern_xml_t *t = el->children; t != NULL; t = t->next)
        len += t->name == NULL ? t->text_len : 0;
    char *text = malloc(len + 1);
    if (text == NULL)
        return -1;
    for (const tern_xml_t *t = el->children; t != NULL; t = t->next)
        if (t->name == NULL && t->text_len > 0) {
            memcpy(text + n, t->text, t->text_len);
            n += t->text_len;
        }
    img->bytes = tern_base64_decode(text, n, TERN_BASE64_LENIENT, &img->len);
    free(text);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (img->bytes == NULL || img->len == 0 ||
        EVP_Digest(img->bytes, img->len, md, &md_len, EVP_sha1(), NULL) != 1 || md_len != 20) {
        image_clear(img);
        return -1;
    }
    for (unsigned i = 0; i < md_len; i++)
        snprintf(img->sha1 + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* The image as base64 on one line (XEP-0084 §4.1: no line feeds), malloc'd. */
static char *image_base64(const image_t *img)
{
    return tern_base64_encode(img->bytes, img->len, 0);
}

/* Copy `type` (trimmed) into img->type; an empty or oversized one is left "". */
static void image_set_type(image_t *img, const char *type)
{
    while (type != NULL && is_space(*type))
        type++;
    size_t len = type != NULL ? strlen(type) : 0;
    while (len > 0 && is_space(type[len - 1]))
        len--;
    img->type[0] = '\0';
    if (len > 0 && len <= MAX_TYPE_LEN) {
        memcpy(img->type, type, len);
        img->type[len] = '\0';
    }
}

/* The content type told by the image's first bytes, or NULL. */
static const char *sniff_type(const image_t *img)
{
    const unsigned char *b = img->bytes;
    if (img->len >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0)
        return "image/png";
    if (img->len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
        return "image/jpeg";
    if (img->len >= 6 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0))
        return "image/gif";
    if (img->len >= 12 && memcmp(b, "RIFF", 4) == 0 && memcmp(b + 8, "WEBP", 4) == 0)
        return "image/webp";
    return NULL;
}

/* Width and height from a PNG IHDR or a GIF screen descriptor.  1 when
 * known, else 0. */
static int image_size(const image_t *img, unsigned long *w, unsigned long *h)
{
    const unsigned char *b = img->bytes;
    if (img->len >= 24 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0 &&
        memcmp(b + 12, "IHDR", 4) == 0) {
        *w = (unsigned long)b[16] << 24 | (unsigned long)b[17] << 16 | (unsigned long)b[18] << 8 |
             b[19];
        *h = (unsigned long)b[20] << 24 | (unsigned long)b[21] << 16 | (unsigned long)b[22] << 8 |
             b[23];
        return 1;
    }
    if (img->len >= 10 && (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0)) {
        *w = (unsigned long)b[6] | (unsigned long)b[7] << 8;
        *h = (unsigned long)b[8] | (unsigned long)b[9] << 8;
        return 1;
    }
    return 0;
}

/* ---- the vCard side -------------------------------------------------------- */

/* XEP-0153 §3.1: the image of `vcard`'s PHOTO/BINVAL into *img.  1 found,
 * 0 none (no vCard, no BINVAL, not base64). */
static int vcard_image(const tern_xml_t *vcard, image_t *img)
{
    tern_xml_t *photo = vcard != NULL ? tern_xml_child(vcard, "PHOTO", VCARD_NS) : NULL;
    tern_xml_t *binval = photo != NULL ? tern_xml_child(photo, "BINVAL", VCARD_NS) : NULL;
    if (binval == NULL || image_from_base64(img, binval) < 0)
        return 0;
    tern_xml_t *type = tern_xml_child(photo, "TYPE", VCARD_NS);
    image_set_type(img, type != NULL ? tern_xml_text(type) : NULL);
    return 1;
}

/* Store `user`'s vCard with its PHOTO replaced by `img` (NULL: removed),
 * unless it already says so.  Our own watch ignores the write. */
static void vcard_put_photo(tern_module_ctx_t *m, const char *user, const image_t *img)
{
    conv_state_t *st = tern_get_data(m);
    const vcard_api_t *vc = vcard_of(m);
    tern_xml_t *vcard = NULL;
    if (vc == NULL || vc->get(vc, user, &vcard) < 0)
        return;
    image_t have = {0};
    int had = vcard_image(vcard, &have);
    int same = img != NULL ? had && strcmp(have.sha1, img->sha1) == 0 &&
                                 strcasecmp(have.type, img->type) == 0
                           : vcard == NULL || tern_xml_child(vcard, "PHOTO", VCARD_NS) == NULL;
    image_clear(&have);
    if (same) {
        if (vcard != NULL)
            tern_xml_unref(vcard);
        return;
    }
    if (vcard == NULL)
        vcard = tern_xml_new("vCard", VCARD_NS);
    tern_xml_t *old;
    while (vcard != NULL && (old = tern_xml_child(vcard, "PHOTO", VCARD_NS)) != NULL)
        tern_xml_unlink(old);
    char *b64 = img != NULL ? image_base64(img) : NULL;
    int ok = vcard != NULL && (img == NULL || b64 != NULL);
    if (ok && img != NULL) {
        tern_xml_t *photo = tern_xml_add_child(vcard, "PHOTO", VCARD_NS);
        tern_xml_t *type = photo != NULL ? tern_xml_add_child(photo, "TYPE", NULL) : NULL;
        tern_xml_t *binval = photo != NULL ? tern_xml_add_child(photo, "BINVAL", NULL) : NULL;
        ok = type != NULL && binval != NULL;
        if (ok) {
            tern_xml_add_text(type, img->type, strlen(img->type));
            tern_xml_add_text(binval, b64, strlen(b64));
        }
    }
    free(b64);
    const char *err = NULL;
    if (ok) {
        st->busy = 1;
        ok = vc->set(vc, user, vcard, &err) == 0;
        st->busy = 0;
    }
    if (!ok)
        tern_log(m, TERN_LOG_WARN, "%s: cannot copy the PEP avatar into the vCard: %s", user,
                 err != NULL ? err : "out of memory");
    else
        tern_log(m, TERN_LOG_DEBUG, "%s: vCard photo %s from PEP", user,
                 img != NULL ? img->sha1 : "removed");
    if (vcard != NULL)
        tern_xml_unref(vcard);
}

/* ---- the PEP side ---------------------------------------------------------- */

typedef struct newest {
    tern_xml_t *payload;
} newest_t;

static int keep_payload(void *ctx, const char *id, const tern_xml_t *payload)
{
    newest_t *n = ctx;
    if (n->payload != NULL)
        tern_xml_unref(n->payload);
    n->payload = payload != NULL ? tern_xml_copy(payload) : NULL;
    return 0;
}

/* The newest item of a node: *payload_r gets a copy of its payload (NULL
 * when the node is missing or empty; the caller unrefs it).  -1 on a
 * storage error, else 0. */
static int pep_newest(tern_module_ctx_t *m, const tern_pep_api_t *pep, const char *user,
                      const char *node, tern_xml_t **payload_r)
{
    newest_t n = {0};
    int rc = pep->items(m, user, node, 1, keep_payload, &n);
    *payload_r = n.payload;
    return rc < 0 ? -1 : 0;
}

/* The image of data item `id`: found when the item holds a base64
 * <data/> whose SHA-1 is the id (XEP-0398 §3.1: SHOULD verify). */
typedef struct find_data {
    const char *id;
    image_t *img;
    int found; /* 1 the image, -1 an item with that id that is not it */
} find_data_t;

static int match_data(void *ctx, const char *id, const tern_xml_t *payload)
{
    find_data_t *f = ctx;
    if (id == NULL || strcasecmp(id, f->id) != 0)
        return 0;
    f->found = -1;
    if (payload != NULL && tern_xml_is(payload, "data", NS_AVATAR_DATA) &&
        image_from_base64(f->img, payload) == 0) {
        if (strcasecmp(f->img->sha1, f->id) == 0)
            f->found = 1;
        else
            image_clear(f->img);
    }
    return 1;
}

/* The first <info/> of `meta` without a url whose data item is on the data
 * node (XEP-0398 §3.1), into *img with the info's type.  1 found, 0 none;
 * *has_info tells whether there was any <info/> at all. */
static int meta_image(tern_module_ctx_t *m, const tern_pep_api_t *pep, const char *user,
                      const tern_xml_t *meta, image_t *img, int *has_info)
{
    *has_info = 0;
    for (tern_xml_t *info = meta != NULL ? tern_xml_first_element(meta) : NULL; info != NULL;
         info = tern_xml_next_element(info)) {
        if (!tern_xml_is(info, "info", NS_AVATAR_META))
            continue;
        *has_info = 1;
        const char *id = tern_xml_attr(info, "id");
        if (tern_xml_attr(info, "url") != NULL || id == NULL)
            continue;
        find_data_t f = {.id = id, .img = img};
        if (pep->items(m, user, NS_AVATAR_DATA, 0, match_data, &f) < 0)
            return 0;
        if (f.found == 1) {
            image_set_type(img, tern_xml_attr(info, "type"));
            if (img->type[0] == '\0') {
                const char *t = sniff_type(img);
                image_set_type(img, t != NULL ? t : DEFAULT_TYPE);
            }
            return 1;
        }
        if (f.found < 0)
            tern_log(m, TERN_LOG_INFO, "%s: avatar data %s is no base64 image of that SHA-1", user,
                     id);
    }
    return 0;
}

/* XEP-0060 §4.5: may the avatar on the data node go into the public vCard? */
static int pep_avatar_public_enough(tern_module_ctx_t *m, const tern_pep_api_t *pep,
                                    const char *user)
{
    conv_state_t *st = tern_get_data(m);
    tern_pep_config_t cfg;
    if (pep->node_config(m, user, NS_AVATAR_DATA, &cfg) != 1)
        return 0;
    return cfg.access_model == TERN_PEP_ACCESS_OPEN ||
           (cfg.access_model == TERN_PEP_ACCESS_PRESENCE && !st->open_only);
}

/* ---- PEP -> vCard (XEP-0398 §3.1) ------------------------------------------ */

/* Make the vCard's PHOTO what the newest metadata item says.  With
 * `only_id`, act only when that item points at data item `only_id` (a data
 * item just published). */
static void sync_pep_to_vcard(tern_module_ctx_t *m, const char *user, const char *only_id)
{
    const tern_pep_api_t *pep = pep_of(m);
    tern_xml_t *meta = NULL;
    if (pep == NULL || pep_newest(m, pep, user, NS_AVATAR_META, &meta) < 0)
        return;
    if (meta != NULL && !tern_xml_is(meta, "metadata", NS_AVATAR_META)) {
        tern_xml_unref(meta); /* not XEP-0084: leave the vCard alone */
        return;
    }
    image_t img = {0};
    int has_info = 0;
    int found = meta_image(m, pep, user, meta, &img, &has_info);
    if (only_id != NULL && (!found || strcasecmp(img.sha1, only_id) != 0)) {
        /* the metadata is about another image: nothing new for the vCard */
    } else if (found && pep_avatar_public_enough(m, pep, user))
        vcard_put_photo(m, user, &img);
    else if (found)
        tern_log(m, TERN_LOG_DEBUG, "%s: PEP avatar too restricted for the vCard", user);
    else if (!has_info) /* XEP-0084: avatar disabled, or none */
        vcard_put_photo(m, user, NULL);
    /* else: an avatar the server cannot fetch (URL only, data missing or
     * wrong): the vCard keeps what it had. */
    image_clear(&img);
    if (meta != NULL)
        tern_xml_unref(meta);
}

static void on_pep_change(tern_module_ctx_t *m, const char *user, const char *node,
                          tern_pep_change_t what, const char *item_id, const tern_xml_t *payload,
                          void *arg)
{
    if (strcmp(node, NS_AVATAR_META) == 0)
        sync_pep_to_vcard(m, user, NULL);
    else if (what == TERN_PEP_PUBLISHED && item_id != NULL) /* the data node */
        sync_pep_to_vcard(m, user, item_id);
}

/* ---- vCard -> PEP (XEP-0398 §3.2) ------------------------------------------ */

/* Publish to one of the avatar nodes; a missing node gets mod_pep's
 * defaults, an existing one keeps its configuration.  0 or -1. */
static int publish(tern_module_ctx_t *m, const tern_pep_api_t *pep, const char *user,
                   const char *node, const char *id, const tern_xml_t *payload)
{
    const char *err = NULL;
    if (pep->publish(m, user, node, id, payload, NULL, &err) < 0) {
        tern_log(m, TERN_LOG_WARN, "%s: cannot publish the vCard avatar to %s: %s", user, node,
                 err != NULL ? err : "error");
        return -1;
    }
    return 0;
}

/* Whether data item `id` is on the data node already (any payload). */
static int has_data_item(tern_module_ctx_t *m, const tern_pep_api_t *pep, const char *user,
                         const char *id)
{
    image_t img = {0};
    find_data_t f = {.id = id, .img = &img};
    int rc = pep->items(m, user, NS_AVATAR_DATA, 0, match_data, &f);
    image_clear(&img);
    return rc >= 0 && f.found == 1;
}

/* Publish `img` (data, then metadata), or empty metadata when NULL,
 * unless the newest metadata already says so. */
static void sync_vcard_to_pep(tern_module_ctx_t *m, const char *user, image_t *img)
{
    const tern_pep_api_t *pep = pep_of(m);
    tern_xml_t *meta = NULL;
    if (pep == NULL || pep_newest(m, pep, user, NS_AVATAR_META, &meta) < 0)
        return;
    int has_info = 0, same = 0;
    for (tern_xml_t *info = meta != NULL && tern_xml_is(meta, "metadata", NS_AVATAR_META)
                                ? tern_xml_first_element(meta)
                                : NULL;
         info != NULL; info = tern_xml_next_element(info)) {
        if (!tern_xml_is(info, "info", NS_AVATAR_META))
            continue;
        has_info = 1;
        const char *id = tern_xml_attr(info, "id"), *type = tern_xml_attr(info, "type");
        if (img != NULL && tern_xml_attr(info, "url") == NULL && id != NULL &&
            strcasecmp(id, img->sha1) == 0 && type != NULL && strcasecmp(type, img->type) == 0)
            same = 1;
    }
    if (meta != NULL)
        tern_xml_unref(meta);
    if (img == NULL ? !has_info : same)
        return; /* nothing changed */

    tern_xml_t *md = tern_xml_new("metadata", NS_AVATAR_META);
    if (md == NULL)
        return;
    if (img != NULL) {
        /* XEP-0084 §3.1: the data first, under its hash. */
        if (!has_data_item(m, pep, user, img->sha1)) {
            char *b64 = image_base64(img);
            tern_xml_t *data = b64 != NULL ? tern_xml_new("data", NS_AVATAR_DATA) : NULL;
            int rc = -1;
            if (data != NULL) {
                tern_xml_add_text(data, b64, strlen(b64));
                rc = publish(m, pep, user, NS_AVATAR_DATA, img->sha1, data);
                tern_xml_unref(data);
            }
            free(b64);
            if (rc < 0) {
                tern_xml_unref(md);
                return;
            }
        }
        /* XEP-0084 §4.2.1: bytes, id, type; width and height when known. */
        tern_xml_t *info = tern_xml_add_child(md, "info", NULL);
        char num[32];
        unsigned long w, h;
        if (info != NULL) {
            snprintf(num, sizeof num, "%zu", img->len);
            tern_xml_set_attr(info, "bytes", num);
            tern_xml_set_attr(info, "id", img->sha1);
            tern_xml_set_attr(info, "type", img->type);
            if (image_size(img, &w, &h)) {
                snprintf(num, sizeof num, "%lu", w);
                tern_xml_set_attr(info, "width", num);
                snprintf(num, sizeof num, "%lu", h);
                tern_xml_set_attr(info, "height", num);
            }
        }
    }
    /* No <info/> disables the avatar (XEP-0084 §3.5). */
    if (publish(m, pep, user, NS_AVATAR_META, img != NULL ? img->sha1 : NULL, md) == 0)
        tern_log(m, TERN_LOG_DEBUG, "%s: PEP avatar %s from the vCard", user,
                 img != NULL ? img->sha1 : "disabled");
    tern_xml_unref(md);
}

static void on_vcard_change(tern_module_ctx_t *m, const char *user, const tern_xml_t *vcard)
{
    conv_state_t *st = tern_get_data(m);
    if (st == NULL || st->busy || !st->vcard_to_pep)
        return; /* our own write, or the direction is off */
    image_t img = {0};
    if (vcard_image(vcard, &img)) {
        if (img.type[0] == '\0') { /* XEP-0398 §3.2 wants the vCard's TYPE */
            const char *t = sniff_type(&img);
            image_set_type(&img, t != NULL ? t : "");
        }
        if (img.type[0] != '\0')
            sync_vcard_to_pep(m, user, &img);
        else
            tern_log(m, TERN_LOG_INFO, "%s: vCard photo of unknown type: not published to PEP",
                     user);
    } else {
        sync_vcard_to_pep(m, user, NULL);
    }
    image_clear(&img);
}

/* ---- life cycle ------------------------------------------------------------ */

static int load(tern_module_ctx_t *m)
{
    const tern_pep_api_t *pep = pep_of(m); /* loaded before us: see depends */
    const vcard_api_t *vc = vcard_of(m);
    const char *access = tern_opt_str(m, "pep_to_vcard");
    if (pep == NULL || vc == NULL) {
        tern_log(m, TERN_LOG_ERROR, "mod_%s is not loaded", pep == NULL ? "pep" : "vcard");
        return -1;
    }
    if (access == NULL || (strcmp(access, "presence") != 0 && strcmp(access, "open") != 0)) {
        tern_log(m, TERN_LOG_ERROR, "pep_to_vcard: '%s' is neither 'presence' nor 'open'",
                 access != NULL ? access : "");
        return -1;
    }
    conv_state_t *st = calloc(1, sizeof *st);
    if (st == NULL) {
        tern_log(m, TERN_LOG_ERROR, "out of memory");
        return -1;
    }
    st->open_only = strcmp(access, "open") == 0;
    st->vcard_to_pep = tern_opt_int(m, "vcard_to_pep") != 0;
    tern_set_data(m, st);
    tern_add_account_feature(m, NS_CONVERSION); /* XEP-0398 §2 */
    if (pep->observe(m, NS_AVATAR_META, on_pep_change, NULL) < 0 ||
        pep->observe(m, NS_AVATAR_DATA, on_pep_change, NULL) < 0 ||
        vc->watch(vc, m, on_vcard_change) < 0) {
        pep->unobserve(m);
        tern_set_data(m, NULL);
        free(st);
        return -1;
    }
    return 0;
}

static void unload(tern_module_ctx_t *m)
{
    const tern_pep_api_t *pep = pep_of(m);
    const vcard_api_t *vc = vcard_of(m);
    if (pep != NULL)
        pep->unobserve(m);
    if (vc != NULL)
        vc->unwatch(vc, m);
    free(tern_get_data(m));
    tern_set_data(m, NULL);
}

/* A reload changed the options: checked as in load(), then they apply to
 * the next avatar changes. */
static int reconfigure(tern_module_ctx_t *m)
{
    conv_state_t *st = tern_get_data(m);
    const char *access = tern_opt_str(m, "pep_to_vcard");
    if (access == NULL || (strcmp(access, "presence") != 0 && strcmp(access, "open") != 0)) {
        tern_log(m, TERN_LOG_ERROR, "pep_to_vcard: '%s' is neither 'presence' nor 'open'",
                 access != NULL ? access : "");
        return -1;
    }
    st->open_only = strcmp(access, "open") == 0;
    st->vcard_to_pep = tern_opt_int(m, "vcard_to_pep") != 0;
    return 0;
}

TERN_MODULE = {
    .abi = TERN_ABI,
    .name = "avatar_conversion",
    .description = "PEP avatars and vCard avatars kept in step (XEP-0398)",
    .depends = depends,
    .options = options,
    .load = load,
    .unload = unload,
    .reconfigure = reconfigure,
};
