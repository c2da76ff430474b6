/*
 * jid.c — JID parsing and preparation (RFC 7622).
 *
 * Owns tern_jid_t: splitting a JID string into its three parts
 * (RFC 7622 §3.1), preparing each part (localpart: PRECIS
 * UsernameCaseMapped, RFC 8265 §3.3; domainpart: IP literal or IDNA2008
 * via libidn2, RFC 7622 §3.2; resourcepart: PRECIS OpaqueString,
 * RFC 8265 §4.2), and the single-allocation layout of the result.
 *
 * Pure-ASCII parts take a fast path that never calls libunistring or
 * libidn2.  tern_jid_new() first tries a faster one still: a string
 * already in prepared form (lowercase ASCII, the usual case on the wire)
 * is checked in one pass per part and copied whole; other strings are
 * looked up in a small cache of prepared results before the full path
 * (see jid_new_fast() and the cache below; tests/unit/test_jid.c checks
 * both against the full path).  The PRECIS derived property (RFC 8264 §8) is computed from
 * libunistring's Unicode tables; see precis_property().
 */
#include <tern/jid.h>

#include "xmpp/jid_prep.h"

#include <arpa/inet.h>
#include <idn2.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unicase.h>
#include <unictype.h>
#include <uninorm.h>
#include <unistr.h>

/* RFC 7622 §3.3, §3.2, §3.4: each part is at most 1023 octets. */
#define PART_MAX 1023
/* Bound on a raw (unprepared) non-ASCII part.  Preparation shrinks a
 * string by at most a small factor (fullwidth → ASCII is 3:1, Hangul
 * jamo → syllable is 3:1), so anything larger can never fit PART_MAX. */
#define PART_RAW_MAX (6 * PART_MAX)
/* RFC 1035 §2.3.4 / RFC 5890: DNS limits for the A-label form. */
#define DNS_LABEL_MAX 63
#define DNS_NAME_MAX  253

/* A prepared part: `n` bytes at `s`, to be copied into the JID (ASCII
 * lowercased on the way when `lower` is set).  `owned`, when not NULL,
 * is a malloc'd buffer behind `s` that the caller frees. */
typedef struct {
    const char *s;
    size_t n;
    bool lower;
    char *owned;
} prep_t;

static void prep_release(prep_t *p)
{
    free(p->owned);
    p->owned = NULL;
}

static bool is_ascii(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] >= 0x80) {
            return false;
        }
    }
    return true;
}

static char ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* ------------------------------------------------------------------ */
/* PRECIS derived property (RFC 8264 §8)                               */
/* ------------------------------------------------------------------ */

enum precis_prop {
    PRECIS_PVALID,
    PRECIS_FREE_PVAL, /* ID_DIS / FREE_PVAL: valid in FreeformClass only */
    PRECIS_CONTEXTJ,
    PRECIS_CONTEXTO,
    PRECIS_DISALLOWED,
    PRECIS_UNASSIGNED,
};

/* RFC 8264 §9.6 (the Exceptions of RFC 5892 §2.6).  Returns -1 when `c`
 * is not an exception. */
static int precis_exception(ucs4_t c)
{
    switch (c) {
    case 0x00DF: /* LATIN SMALL LETTER SHARP S */
    case 0x03C2: /* GREEK SMALL LETTER FINAL SIGMA */
    case 0x06FD:
    case 0x06FE:
    case 0x0F0B:
    case 0x3007:
        return PRECIS_PVALID;
    case 0x00B7: /* MIDDLE DOT */
    case 0x0375: /* GREEK LOWER NUMERAL SIGN */
    case 0x05F3: /* HEBREW PUNCTUATION GERESH */
    case 0x05F4: /* HEBREW PUNCTUATION GERSHAYIM */
    case 0x30FB: /* KATAKANA MIDDLE DOT */
        return PRECIS_CONTEXTO;
    case 0x0640:
    case 0x07FA:
    case 0x302E:
    case 0x302F:
    case 0x3031:
    case 0x3032:
    case 0x3033:
    case 0x3034:
    case 0x3035:
    case 0x303B:
        return PRECIS_DISALLOWED;
    default:
        break;
    }
    if ((c >= 0x0660 && c <= 0x0669) || (c >= 0x06F0 && c <= 0x06F9)) {
        return PRECIS_CONTEXTO; /* ARABIC-INDIC DIGITS, both sets */
    }
    return -1;
}

/* RFC 8264 §9.9: Hangul_Syllable_Type L, V or T (conjoining jamo). */
static bool is_old_hangul_jamo(ucs4_t c)
{
    return (c >= 0x1100 && c <= 0x11FF) || (c >= 0xA960 && c <= 0xA97C) ||
           (c >= 0xD7B0 && c <= 0xD7C6) || (c >= 0xD7CB && c <= 0xD7FB);
}

/* RFC 8264 §9.17 HasCompat: toNFKC(c) != c. */
static bool has_compat(ucs4_t c)
{
    int tag;
    ucs4_t dec[UC_DECOMPOSITION_MAX_LENGTH];
    if (uc_decomposition(c, &tag, dec) < 0) {
        return false;
    }
    if (tag != UC_DECOMP_CANONICAL) {
        return true; /* a compatibility decomposition never recomposes to c */
    }
    /* Canonical decomposition: NFKC may still differ (singletons,
     * compatibility characters inside the decomposition). */
    ucs4_t buf[UC_DECOMPOSITION_MAX_LENGTH * 2];
    size_t len = sizeof buf / sizeof buf[0];
    ucs4_t *r = u32_normalize(UNINORM_NFKC, &c, 1, buf, &len);
    if (r == NULL) {
        return true; /* be conservative */
    }
    bool differs = !(len == 1 && r[0] == c);
    if (r != buf) {
        free(r);
    }
    return differs;
}

/* The PRECIS derived property of one code point, in the order of the
 * algorithm of RFC 8264 §8.  BackwardCompatible (§9.7) is empty. */
static int precis_property(ucs4_t c)
{
    if (c >= 0x21 && c <= 0x7E) {
        return PRECIS_PVALID; /* ASCII7, RFC 8264 §9.11 */
    }
    int e = precis_exception(c);
    if (e >= 0) {
        return e;
    }
    bool nonchar = uc_is_property_not_a_character(c);
    if (!nonchar && uc_is_general_category_withtable(c, UC_CATEGORY_MASK_Cn)) {
        return PRECIS_UNASSIGNED; /* §9.10 */
    }
    if (c == 0x200C || c == 0x200D) {
        return PRECIS_CONTEXTJ; /* JoinControl, §9.8 */
    }
    if (is_old_hangul_jamo(c)) {
        return PRECIS_DISALLOWED; /* §9.9 */
    }
    if (nonchar || uc_is_property_default_ignorable_code_point(c)) {
        return PRECIS_DISALLOWED; /* PrecisIgnorableProperties, §9.13 */
    }
    if (uc_is_general_category_withtable(c, UC_CATEGORY_MASK_Cc)) {
        return PRECIS_DISALLOWED; /* Controls, §9.12 */
    }
    if (has_compat(c)) {
        return PRECIS_FREE_PVAL; /* §9.17 */
    }
    /* LetterDigits, §9.1 */
    if (uc_is_general_category_withtable(c, UC_CATEGORY_MASK_Ll | UC_CATEGORY_MASK_Lu |
                                                UC_CATEGORY_MASK_Lo | UC_CATEGORY_MASK_Nd |
                                                UC_CATEGORY_MASK_Lm | UC_CATEGORY_MASK_Mn |
                                                UC_CATEGORY_MASK_Mc)) {
        return PRECIS_PVALID;
    }
    /* OtherLetterDigits §9.18, Spaces §9.14, Symbols §9.15,
     * Punctuation §9.16 */
    if (uc_is_general_category_withtable(c, UC_CATEGORY_MASK_Lt | UC_CATEGORY_MASK_Nl |
                                                UC_CATEGORY_MASK_No | UC_CATEGORY_MASK_Me |
                                                UC_CATEGORY_MASK_Zs | UC_CATEGORY_MASK_S |
                                                UC_CATEGORY_MASK_P)) {
        return PRECIS_FREE_PVAL;
    }
    return PRECIS_DISALLOWED; /* Zl, Zp, Cf, Co, Cs */
}

static bool script_is(ucs4_t c, const char *name)
{
    const uc_script_t *s = uc_script(c);
    return s != NULL && strcmp(s->name, name) == 0;
}

/* RFC 5892 Appendix A.1 (ZWNJ) and A.2 (ZWJ) for cp[i]. */
static bool contextj_ok(const ucs4_t *cp, size_t n, size_t i)
{
    if (i > 0 && uc_combining_class(cp[i - 1]) == UC_CCC_VR) {
        return true;
    }
    if (cp[i] != 0x200C) {
        return false;
    }
    /* (Joining_Type:{L,D})(Joining_Type:T)* ZWNJ (Joining_Type:T)*(Joining_Type:{R,D}) */
    size_t b = i;
    while (b > 0 && uc_joining_type(cp[b - 1]) == UC_JOINING_TYPE_T) {
        b--;
    }
    if (b == 0) {
        return false;
    }
    int jt = uc_joining_type(cp[b - 1]);
    if (jt != UC_JOINING_TYPE_L && jt != UC_JOINING_TYPE_D) {
        return false;
    }
    size_t a = i + 1;
    while (a < n && uc_joining_type(cp[a]) == UC_JOINING_TYPE_T) {
        a++;
    }
    if (a >= n) {
        return false;
    }
    jt = uc_joining_type(cp[a]);
    return jt == UC_JOINING_TYPE_R || jt == UC_JOINING_TYPE_D;
}

/* RFC 5892 Appendix A.3–A.9 for cp[i]. */
static bool contexto_ok(const ucs4_t *cp, size_t n, size_t i)
{
    ucs4_t c = cp[i];
    if (c == 0x00B7) { /* A.3: between two 'l' */
        return i > 0 && i + 1 < n && cp[i - 1] == 0x6C && cp[i + 1] == 0x6C;
    }
    if (c == 0x0375) { /* A.4: followed by Greek */
        return i + 1 < n && script_is(cp[i + 1], "Greek");
    }
    if (c == 0x05F3 || c == 0x05F4) { /* A.5, A.6: preceded by Hebrew */
        return i > 0 && script_is(cp[i - 1], "Hebrew");
    }
    if (c == 0x30FB) { /* A.7: some Hiragana, Katakana or Han in the string */
        for (size_t k = 0; k < n; k++) {
            if (cp[k] != 0x30FB && (script_is(cp[k], "Hiragana") || script_is(cp[k], "Katakana") ||
                                    script_is(cp[k], "Han"))) {
                return true;
            }
        }
        return false;
    }
    /* A.8, A.9: the two sets of Arabic-Indic digits do not mix */
    bool arabic = c >= 0x0660 && c <= 0x0669;
    for (size_t k = 0; k < n; k++) {
        if (arabic ? (cp[k] >= 0x06F0 && cp[k] <= 0x06F9) : (cp[k] >= 0x0660 && cp[k] <= 0x0669)) {
            return false;
        }
    }
    return true;
}

/* The Bidi Rule of RFC 5893 §2, applied only when the string contains a
 * right-to-left code point (RFC 8265 §3.3.2 step 5). */
static bool bidi_rule_ok(const ucs4_t *cp, size_t n)
{
    bool rtl = false;
    for (size_t i = 0; i < n && !rtl; i++) {
        int b = uc_bidi_category(cp[i]);
        rtl = b == UC_BIDI_R || b == UC_BIDI_AL || b == UC_BIDI_AN;
    }
    if (!rtl) {
        return true;
    }
    int first = uc_bidi_category(cp[0]);
    size_t last = n; /* index after the last non-NSM */
    while (last > 0 && uc_bidi_category(cp[last - 1]) == UC_BIDI_NSM) {
        last--;
    }
    if (last == 0) {
        return false;
    }
    int end = uc_bidi_category(cp[last - 1]);
    if (first == UC_BIDI_R || first == UC_BIDI_AL) {
        bool en = false, an = false;
        for (size_t i = 0; i < n; i++) {
            switch (uc_bidi_category(cp[i])) { /* rule 2 */
            case UC_BIDI_EN:
                en = true;
                break;
            case UC_BIDI_AN:
                an = true;
                break;
            case UC_BIDI_R:
            case UC_BIDI_AL:
            case UC_BIDI_ES:
            case UC_BIDI_CS:
            case UC_BIDI_ET:
            case UC_BIDI_ON:
            case UC_BIDI_BN:
            case UC_BIDI_NSM:
                break;
            default:
                return false;
            }
        }
        if (en && an) {
            return false; /* rule 4 */
        }
        return end == UC_BIDI_R || end == UC_BIDI_AL || end == UC_BIDI_EN ||
               end == UC_BIDI_AN; /* rule 3 */
    }
    if (first != UC_BIDI_L) {
        return false; /* rule 1 */
    }
    for (size_t i = 0; i < n; i++) {
        switch (uc_bidi_category(cp[i])) { /* rule 5 */
        case UC_BIDI_L:
        case UC_BIDI_EN:
        case UC_BIDI_ES:
        case UC_BIDI_CS:
        case UC_BIDI_ET:
        case UC_BIDI_ON:
        case UC_BIDI_BN:
        case UC_BIDI_NSM:
            break;
        default:
            return false;
        }
    }
    return end == UC_BIDI_L || end == UC_BIDI_EN; /* rule 6 */
}

/* Check a prepared (NFC, valid UTF-8, at most PART_MAX bytes) string
 * against the IdentifierClass (`freeform` false) or the FreeformClass
 * (RFC 8264 §4.2, §4.3), contextual rules included. */
static bool precis_check(const uint8_t *s, size_t n, bool freeform, bool bidi)
{
    ucs4_t cp[PART_MAX];
    size_t count = 0;
    for (size_t off = 0; off < n && count < PART_MAX;) {
        int len = u8_mbtouc(&cp[count], s + off, n - off);
        if (len <= 0) {
            return false;
        }
        off += (size_t)len;
        count++;
    }
    if (count == 0) {
        return false;
    }
    for (size_t i = 0; i < count; i++) {
        switch (precis_property(cp[i])) {
        case PRECIS_PVALID:
            break;
        case PRECIS_FREE_PVAL:
            if (!freeform) {
                return false;
            }
            break;
        case PRECIS_CONTEXTJ:
            if (!contextj_ok(cp, count, i)) {
                return false;
            }
            break;
        case PRECIS_CONTEXTO:
            if (!contexto_ok(cp, count, i)) {
                return false;
            }
            break;
        default:
            return false;
        }
    }
    return !bidi || bidi_rule_ok(cp, count);
}

/* ------------------------------------------------------------------ */
/* Localpart: PRECIS UsernameCaseMapped (RFC 8265 §3.3)                */
/* ------------------------------------------------------------------ */

/* RFC 7622 §3.3.1: code points disallowed in a localpart on top of the
 * profile. */
static bool local_forbidden_ascii(unsigned char c)
{
    return c == '"' || c == '&' || c == '\'' || c == '/' || c == ':' || c == '<' || c == '>' ||
           c == '@';
}

/* RFC 8265 §3.3.2 step 1, width mapping: fullwidth and halfwidth code
 * points become their decomposition.  `out` holds at least `n` bytes
 * (the mapping never lengthens a string); returns the length written or
 * (size_t)-1. */
static size_t width_map(const uint8_t *s, size_t n, uint8_t *out)
{
    size_t o = 0;
    for (size_t off = 0; off < n;) {
        ucs4_t c;
        int len = u8_mbtouc(&c, s + off, n - off);
        if (len <= 0) {
            return (size_t)-1;
        }
        off += (size_t)len;
        int tag;
        ucs4_t dec[UC_DECOMPOSITION_MAX_LENGTH];
        int dn = c >= 0x80 ? uc_decomposition(c, &tag, dec) : -1;
        if (dn > 0 && (tag == UC_DECOMP_WIDE || tag == UC_DECOMP_NARROW)) {
            for (int k = 0; k < dn; k++) {
                int w = u8_uctomb(out + o, dec[k], (ptrdiff_t)(n - o));
                if (w <= 0) {
                    return (size_t)-1;
                }
                o += (size_t)w;
            }
        } else {
            if (o + (size_t)len > n) {
                return (size_t)-1;
            }
            memcpy(out + o, s + off - (size_t)len, (size_t)len);
            o += (size_t)len;
        }
    }
    return o;
}

/* Prepare a localpart of `n` bytes.  On success fills `p` and returns
 * NULL; otherwise returns the reason. */
static const char *prep_local(const char *in, size_t n, prep_t *p)
{
    memset(p, 0, sizeof *p);
    if (n == 0) {
        return "empty localpart";
    }
    if (is_ascii(in, n)) {
        /* Fast path: ASCII7 minus RFC 7622 §3.3.1's exclusions; case
         * mapping is plain ASCII lowercasing, NFC is the identity. */
        if (n > PART_MAX) {
            return "localpart too long";
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)in[i];
            if (c < 0x21 || c > 0x7E || local_forbidden_ascii(c)) {
                return "disallowed character in localpart";
            }
        }
        p->s = in;
        p->n = n;
        p->lower = true;
        return NULL;
    }
    if (n > PART_RAW_MAX) {
        return "localpart too long";
    }
    const uint8_t *u = (const uint8_t *)in;
    if (u8_check(u, n) != NULL) {
        return "invalid UTF-8 in localpart";
    }
    uint8_t *wide = malloc(n);
    if (wide == NULL) {
        return "out of memory";
    }
    size_t wn = width_map(u, n, wide);
    if (wn == (size_t)-1) {
        free(wide);
        return "invalid localpart";
    }
    /* RFC 8265 §3.3.2 steps 3 and 4: toLowerCase, then NFC. */
    size_t ln = 0;
    uint8_t *low = u8_tolower(wide, wn, NULL, UNINORM_NFC, NULL, &ln);
    free(wide);
    if (low == NULL) {
        return "invalid localpart";
    }
    const char *err = NULL;
    if (ln == 0) {
        err = "empty localpart";
    } else if (ln > PART_MAX) {
        err = "localpart too long";
    } else {
        for (size_t i = 0; i < ln && err == NULL; i++) {
            if (local_forbidden_ascii(low[i])) {
                err = "disallowed character in localpart";
            }
        }
        if (err == NULL && !precis_check(low, ln, false, true)) {
            err = "disallowed character in localpart";
        }
    }
    if (err != NULL) {
        free(low);
        return err;
    }
    p->s = (const char *)low;
    p->n = ln;
    p->owned = (char *)low;
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Domainpart (RFC 7622 §3.2)                                          */
/* ------------------------------------------------------------------ */

/* LDH syntax check of an ASCII host name (case-insensitive): labels of
 * 1..63 letters, digits and hyphens, not starting or ending with a
 * hyphen, at most 253 bytes in all. */
static bool ldh_ok(const char *s, size_t n)
{
    if (n == 0 || n > DNS_NAME_MAX) {
        return false;
    }
    size_t label = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            if (label == 0 || label > DNS_LABEL_MAX || s[i - 1] == '-') {
                return false;
            }
            label = 0;
            continue;
        }
        char c = ascii_lower(s[i]);
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && label > 0)) {
            return false;
        }
        label++;
    }
    return true;
}

/* Does some label of the ASCII name start with the ACE prefix "xn--"? */
static bool has_ace_label(const char *s, size_t n)
{
    for (size_t i = 0; i + 4 <= n; i++) {
        if ((i == 0 || s[i - 1] == '.') && ascii_lower(s[i]) == 'x' &&
            ascii_lower(s[i + 1]) == 'n' && s[i + 2] == '-' && s[i + 3] == '-') {
            return true;
        }
    }
    return false;
}

/* IP literal of RFC 7622 §3.2.1: "[IPv6]" or dotted IPv4. */
static bool is_ip_literal(const char *s, size_t n)
{
    char buf[INET6_ADDRSTRLEN + 1];
    unsigned char addr[sizeof(struct in6_addr)];
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        if (n - 2 > INET6_ADDRSTRLEN || n == 2) {
            return false;
        }
        memcpy(buf, s + 1, n - 2);
        buf[n - 2] = '\0';
        return inet_pton(AF_INET6, buf, addr) == 1;
    }
    if (n > INET_ADDRSTRLEN) {
        return false;
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    return inet_pton(AF_INET, buf, addr) == 1;
}

/* Whether the U-label form `uni` converts back to the A-label form `ace`. */
static bool same_ace(const char *uni, const char *ace)
{
    char *back = NULL;
    bool same = idn2_to_ascii_8z(uni, &back, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT) == IDN2_OK &&
                back != NULL && strcasecmp(back, ace) == 0;
    idn2_free(back);
    return same;
}

/* IDNA2008 path (RFC 7622 §3.2.2): to A-labels via libidn2 (UTS #46
 * non-transitional mapping, which also lowercases), LDH-check the
 * result, then back to U-labels, which is the stored form.  An A-label
 * given as such is only decoded by that last step, not checked: the
 * U-labels must give the same A-labels again (RFC 5891 §5.4), else a
 * disallowed code point would be stored. */
static const char *prep_domain_idn(const char *in, size_t n, prep_t *p)
{
    if (n > PART_RAW_MAX) {
        return "domainpart too long";
    }
    if (u8_check((const uint8_t *)in, n) != NULL) {
        return "invalid UTF-8 in domainpart";
    }
    char *z = malloc(n + 1);
    if (z == NULL) {
        return "out of memory";
    }
    memcpy(z, in, n);
    z[n] = '\0';
    char *ace = NULL, *uni = NULL;
    int rc = idn2_to_ascii_8z(z, &ace, IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT);
    free(z);
    const char *err = NULL;
    if (rc != IDN2_OK || ace == NULL) {
        err = rc == IDN2_MALLOC ? "out of memory" : "invalid IDN domainpart";
    } else if (!ldh_ok(ace, strlen(ace))) {
        err = "invalid domainpart";
    } else if (idn2_to_unicode_8z8z(ace, &uni, 0) != IDN2_OK || uni == NULL ||
               !same_ace(uni, ace)) {
        err = "invalid IDN domainpart";
    } else {
        size_t un = strlen(uni);
        if (un > PART_MAX) {
            err = "domainpart too long";
        } else if ((p->owned = malloc(un + 1)) == NULL) {
            err = "out of memory";
        } else {
            memcpy(p->owned, uni, un + 1);
            p->s = p->owned;
            p->n = un;
            p->lower = true;
        }
    }
    idn2_free(ace);
    idn2_free(uni);
    return err;
}

/* Prepare a domainpart of `n` bytes; see prep_local() for the result. */
static const char *prep_domain(const char *in, size_t n, prep_t *p)
{
    memset(p, 0, sizeof *p);
    /* RFC 7622 §3.2: strip one trailing dot before anything else. */
    if (n > 0 && in[n - 1] == '.') {
        n--;
    }
    if (n == 0) {
        return "empty domainpart";
    }
    if (!is_ascii(in, n) || has_ace_label(in, n)) {
        return prep_domain_idn(in, n, p);
    }
    /* Fast path: ASCII.  IP literals as they are, names must be LDH. */
    if (!is_ip_literal(in, n) && !ldh_ok(in, n)) {
        return "invalid domainpart";
    }
    p->s = in;
    p->n = n;
    p->lower = true; /* harmless for IP literals: hex digits only */
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Resourcepart: PRECIS OpaqueString (RFC 8265 §4.2)                   */
/* ------------------------------------------------------------------ */

/* Prepare a resourcepart of `n` bytes; see prep_local() for the result. */
static const char *prep_resource(const char *in, size_t n, prep_t *p)
{
    memset(p, 0, sizeof *p);
    if (n == 0) {
        return "empty resourcepart";
    }
    if (is_ascii(in, n)) {
        /* Fast path: printable ASCII and space; no control characters. */
        if (n > PART_MAX) {
            return "resourcepart too long";
        }
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)in[i];
            if (c < 0x20 || c > 0x7E) {
                return "disallowed character in resourcepart";
            }
        }
        p->s = in;
        p->n = n;
        return NULL;
    }
    if (n > PART_RAW_MAX) {
        return "resourcepart too long";
    }
    const uint8_t *u = (const uint8_t *)in;
    if (u8_check(u, n) != NULL) {
        return "invalid UTF-8 in resourcepart";
    }
    /* RFC 8265 §4.2.2 step 2: non-ASCII spaces map to U+0020 (which
     * never lengthens the string). */
    uint8_t *mapped = malloc(n);
    if (mapped == NULL) {
        return "out of memory";
    }
    size_t mn = 0;
    for (size_t off = 0; off < n;) {
        ucs4_t c;
        int len = u8_mbtouc(&c, u + off, n - off);
        if (c >= 0x80 && uc_is_general_category_withtable(c, UC_CATEGORY_MASK_Zs)) {
            mapped[mn++] = ' ';
        } else {
            memcpy(mapped + mn, u + off, (size_t)len);
            mn += (size_t)len;
        }
        off += (size_t)len;
    }
    /* Step 4: NFC. */
    size_t nn = 0;
    uint8_t *nfc = u8_normalize(UNINORM_NFC, mapped, mn, NULL, &nn);
    free(mapped);
    if (nfc == NULL) {
        return "invalid resourcepart";
    }
    const char *err = NULL;
    if (nn == 0) {
        err = "empty resourcepart";
    } else if (nn > PART_MAX) {
        err = "resourcepart too long";
    } else if (!precis_check(nfc, nn, true, false)) {
        err = "disallowed character in resourcepart";
    }
    if (err != NULL) {
        free(nfc);
        return err;
    }
    p->s = (const char *)nfc;
    p->n = nn;
    p->owned = (char *)nfc;
    return NULL;
}

/* ------------------------------------------------------------------ */
/* tern_jid_t                                                          */
/* ------------------------------------------------------------------ */

static char *copy_part(char *dst, const prep_t *p)
{
    if (p->lower) {
        for (size_t i = 0; i < p->n; i++) {
            dst[i] = ascii_lower(p->s[i]);
        }
    } else {
        memcpy(dst, p->s, p->n);
    }
    return dst + p->n;
}

/* Build a JID from prepared parts (`l` and `r` may be NULL) in a single
 * allocation laid out as: struct, "local\0", "local@domain\0",
 * "local@domain/resource\0".  domain and resource point into the bare
 * and full strings; full == bare when there is no resource. */
static tern_jid_t *jid_build(const prep_t *l, const prep_t *d, const prep_t *r)
{
    size_t bare_len = (l ? l->n + 1 : 0) + d->n;
    size_t full_len = r ? bare_len + 1 + r->n : 0;
    size_t size = sizeof(tern_jid_t) + (l ? l->n + 1 : 0) + bare_len + 1 + (r ? full_len + 1 : 0);
    tern_jid_t *j = malloc(size);
    if (j == NULL) {
        return NULL;
    }
    char *w = (char *)(j + 1);
    j->local = NULL;
    if (l) {
        j->local = w;
        w = copy_part(w, l);
        *w++ = '\0';
    }
    char *bare = w;
    if (l) {
        w = copy_part(w, l);
        *w++ = '@';
    }
    j->domain = w;
    w = copy_part(w, d);
    *w++ = '\0';
    j->bare = bare;
    j->full = bare;
    j->resource = NULL;
    if (r) {
        j->full = w;
        memcpy(w, bare, bare_len);
        w += bare_len;
        *w++ = '/';
        j->resource = w;
        w = copy_part(w, r);
        *w = '\0';
    }
    return j;
}

static prep_t prep_of(const char *s)
{
    prep_t p = {s, strlen(s), false, NULL};
    return p;
}

/* Split per RFC 7622 §3.1 (resourcepart after the first '/', localpart
 * before the first '@' ahead of it), prepare each part and build. */
tern_jid_t *jid_new_slow(const char *s, const char **error_r)
{
    const char *err = NULL;
    tern_jid_t *j = NULL;
    if (s == NULL) {
        if (error_r) {
            *error_r = "no JID";
        }
        return NULL;
    }
    const char *slash = strchr(s, '/');
    size_t head = slash ? (size_t)(slash - s) : strlen(s);
    const char *at = memchr(s, '@', head);
    prep_t l, d, r;
    bool have_l = false, have_d = false, have_r = false;

    if (at != NULL) {
        err = prep_local(s, (size_t)(at - s), &l);
        have_l = err == NULL;
    }
    if (err == NULL) {
        const char *dom = at ? at + 1 : s;
        err = prep_domain(dom, (size_t)(s + head - dom), &d);
        have_d = err == NULL;
    }
    if (err == NULL && slash != NULL) {
        err = prep_resource(slash + 1, strlen(slash + 1), &r);
        have_r = err == NULL;
    }
    if (err == NULL) {
        j = jid_build(have_l ? &l : NULL, &d, have_r ? &r : NULL);
        if (j == NULL) {
            err = "out of memory";
        }
    }
    if (have_l) {
        prep_release(&l);
    }
    if (have_d) {
        prep_release(&d);
    }
    if (have_r) {
        prep_release(&r);
    }
    if (error_r) {
        *error_r = err;
    }
    return j;
}

/* ---- the canonical fast path and the cache ------------------------- */

/* A localpart that preparation leaves as it is: printable ASCII without
 * uppercase and without RFC 7622 §3.3.1's exclusions (prep_local()'s
 * ASCII path with nothing to lowercase). */
static bool canonical_local(const char *s, size_t n)
{
    if (n == 0 || n > PART_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7E || (c >= 'A' && c <= 'Z') || local_forbidden_ascii(c)) {
            return false;
        }
    }
    return true;
}

/* A domainpart that preparation leaves as it is: lowercase LDH labels
 * (ldh_ok()), no trailing dot, no label starting with the ACE prefix
 * "xn--" (those take the IDN path).  A dotted IPv4 literal is LDH too;
 * an IPv6 literal is left to the full path. */
static bool canonical_domain(const char *s, size_t n)
{
    if (!ldh_ok(s, n) || has_ace_label(s, n)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= 'A' && s[i] <= 'Z') {
            return false;
        }
    }
    return true;
}

/* A resourcepart that preparation leaves as it is: printable ASCII and
 * space (prep_resource()'s ASCII path). */
static bool canonical_resource(const char *s, size_t n)
{
    if (n == 0 || n > PART_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7E) {
            return false;
        }
    }
    return true;
}

/* `s` as a JID when it is already in prepared form (every part as above),
 * which is what clients and servers send nearly always; NULL when it is
 * not (or out of memory): then the full path decides.  Gives exactly what
 * jid_new_slow() gives for such a string, without copying byte by byte. */
tern_jid_t *jid_new_fast(const char *s)
{
    const char *slash = strchr(s, '/');
    size_t head = slash ? (size_t)(slash - s) : strlen(s);
    const char *at = memchr(s, '@', head);
    size_t ln = at ? (size_t)(at - s) : 0;
    const char *dom = at ? at + 1 : s;
    size_t dn = (size_t)(s + head - dom);
    size_t rn = slash ? strlen(slash + 1) : 0;
    if ((at && !canonical_local(s, ln)) || !canonical_domain(dom, dn) ||
        (slash && !canonical_resource(slash + 1, rn))) {
        return NULL;
    }
    /* The layout of jid_build(). */
    size_t lsize = at ? ln + 1 : 0;
    size_t size = sizeof(tern_jid_t) + lsize + head + 1 + (slash ? head + 1 + rn + 1 : 0);
    tern_jid_t *j = malloc(size);
    if (j == NULL) {
        return NULL;
    }
    char *w = (char *)(j + 1);
    j->local = NULL;
    if (at) {
        memcpy(w, s, ln);
        w[ln] = '\0';
        j->local = w;
        w += lsize;
    }
    memcpy(w, s, head);
    w[head] = '\0';
    j->bare = w;
    j->full = w;
    j->domain = w + (at ? ln + 1 : 0);
    j->resource = NULL;
    w += head + 1;
    if (slash) {
        memcpy(w, s, head + 1 + rn + 1);
        j->full = w;
        j->resource = w + head + 1;
    }
    return j;
}

/* A copy of `j` (whose strings follow it in one block, the last being
 * `full`) by one memcpy. */
static tern_jid_t *jid_clone(const tern_jid_t *j)
{
    const char *base = (const char *)j;
    size_t size = (size_t)(j->full - base) + strlen(j->full) + 1;
    tern_jid_t *c = malloc(size);
    if (c == NULL) {
        return NULL;
    }
    memcpy(c, j, size);
    char *cb = (char *)c;
    c->local = j->local ? cb + (j->local - base) : NULL;
    c->domain = cb + (j->domain - base);
    c->resource = j->resource ? cb + (j->resource - base) : NULL;
    c->bare = cb + (j->bare - base);
    c->full = cb + (j->full - base);
    return c;
}

/* Prepared results of strings that are not in prepared form (uppercase,
 * non-ASCII, a trailing dot...), whose preparation through libunistring
 * and libidn2 costs tens of thousands of instructions: a direct-mapped
 * cache of the last CACHE_SLOTS such strings of at most CACHE_KEY_MAX
 * bytes, shared by the threads under a mutex.  A colliding string evicts
 * the one in its slot, so input chosen to collide only costs the full
 * path, as without a cache.  Only valid JIDs are kept. */
#define CACHE_SLOTS   256
#define CACHE_KEY_MAX 256

typedef struct {
    char *key;       /* the string as given */
    tern_jid_t *jid; /* its preparation */
} cache_slot_t;

static cache_slot_t cache[CACHE_SLOTS];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* FNV-1a: the slot of a string (the cache needs no keyed hash, see above). */
static size_t cache_index(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    }
    return h % CACHE_SLOTS;
}

void jid_cache_clear(void)
{
    pthread_mutex_lock(&cache_lock);
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        free(cache[i].key);
        free(cache[i].jid);
        cache[i].key = NULL;
        cache[i].jid = NULL;
    }
    pthread_mutex_unlock(&cache_lock);
}

/* Parse and prepare: strings already in prepared form directly, others
 * from the cache or through the full path (whose valid results are then
 * cached). */
tern_jid_t *tern_jid_new(const char *s, const char **error_r)
{
    if (s == NULL) {
        return jid_new_slow(s, error_r);
    }
    tern_jid_t *j = jid_new_fast(s);
    if (j != NULL) {
        if (error_r) {
            *error_r = NULL;
        }
        return j;
    }
    size_t n = strlen(s);
    if (n > CACHE_KEY_MAX) {
        return jid_new_slow(s, error_r);
    }
    size_t slot = cache_index(s, n);
    pthread_mutex_lock(&cache_lock);
    if (cache[slot].key != NULL && strcmp(cache[slot].key, s) == 0) {
        j = jid_clone(cache[slot].jid);
    }
    pthread_mutex_unlock(&cache_lock);
    if (j != NULL) {
        if (error_r) {
            *error_r = NULL;
        }
        return j;
    }
    j = jid_new_slow(s, error_r);
    if (j == NULL) {
        return NULL;
    }
    char *key = strdup(s);
    tern_jid_t *kept = jid_clone(j);
    if (key == NULL || kept == NULL) {
        free(key);
        free(kept);
        return j;
    }
    pthread_mutex_lock(&cache_lock);
    char *old_key = cache[slot].key;
    tern_jid_t *old_jid = cache[slot].jid;
    cache[slot].key = key;
    cache[slot].jid = kept;
    pthread_mutex_unlock(&cache_lock);
    free(old_key);
    free(old_jid);
    return j;
}

/* Prepare each given part (local and resource may be NULL, an empty
 * string is invalid) and build the JID. */
tern_jid_t *tern_jid_from_parts(const char *local, const char *domain, const char *resource,
                                const char **error_r)
{
    const char *err = NULL;
    tern_jid_t *j = NULL;
    prep_t l, d, r;
    bool have_l = false, have_d = false, have_r = false;

    if (domain == NULL) {
        err = "empty domainpart";
    }
    if (err == NULL && local != NULL) {
        err = prep_local(local, strlen(local), &l);
        have_l = err == NULL;
    }
    if (err == NULL) {
        err = prep_domain(domain, strlen(domain), &d);
        have_d = err == NULL;
    }
    if (err == NULL && resource != NULL) {
        err = prep_resource(resource, strlen(resource), &r);
        have_r = err == NULL;
    }
    if (err == NULL) {
        j = jid_build(have_l ? &l : NULL, &d, have_r ? &r : NULL);
        if (j == NULL) {
            err = "out of memory";
        }
    }
    if (have_l) {
        prep_release(&l);
    }
    if (have_d) {
        prep_release(&d);
    }
    if (have_r) {
        prep_release(&r);
    }
    if (error_r) {
        *error_r = err;
    }
    return j;
}

tern_jid_t *tern_jid_dup(const tern_jid_t *j)
{
    if (j == NULL) {
        return NULL;
    }
    prep_t l = prep_of(j->local ? j->local : ""), d = prep_of(j->domain),
           r = prep_of(j->resource ? j->resource : "");
    return jid_build(j->local ? &l : NULL, &d, j->resource ? &r : NULL);
}

tern_jid_t *tern_jid_bare(const tern_jid_t *j)
{
    if (j == NULL) {
        return NULL;
    }
    prep_t l = prep_of(j->local ? j->local : ""), d = prep_of(j->domain);
    return jid_build(j->local ? &l : NULL, &d, NULL);
}

void tern_jid_free(tern_jid_t **j)
{
    if (j != NULL) {
        free(*j);
        *j = NULL;
    }
}

/* Turn a prepared part into a NUL-terminated malloc'd string. */
static char *prep_to_string(const char *err, prep_t *p)
{
    if (err != NULL) {
        return NULL;
    }
    char *out = malloc(p->n + 1);
    if (out != NULL) {
        *copy_part(out, p) = '\0';
    }
    prep_release(p);
    return out;
}

char *tern_jid_prep_local(const char *local)
{
    prep_t p;
    if (local == NULL) {
        return NULL;
    }
    const char *err = prep_local(local, strlen(local), &p);
    return prep_to_string(err, &p);
}

char *tern_jid_prep_domain(const char *domain)
{
    prep_t p;
    if (domain == NULL) {
        return NULL;
    }
    const char *err = prep_domain(domain, strlen(domain), &p);
    return prep_to_string(err, &p);
}

char *tern_jid_prep_resource(const char *resource)
{
    prep_t p;
    if (resource == NULL) {
        return NULL;
    }
    const char *err = prep_resource(resource, strlen(resource), &p);
    return prep_to_string(err, &p);
}

/* Equal when the full (prepared) strings are; two NULLs are equal. */
int tern_jid_equal(const tern_jid_t *a, const tern_jid_t *b)
{
    if (a == b) {
        return 1;
    }
    if (a == NULL || b == NULL) {
        return 0;
    }
    return strcmp(a->full, b->full) == 0;
}
