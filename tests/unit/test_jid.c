/*
 * test_jid.c — unit tests of src/xmpp/jid.c: RFC 7622 §3.5 examples
 * (with verified erratum 4560), PRECIS preparation of each part, the
 * domainpart fast path / IDN path, limits, and the tern_jid_t helpers.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <tern/jid.h>

#include "check.h"
#include "xmpp/jid_prep.h"

/* Parse `in` and expect the full prepared form `full`. */
static void valid(const char *in, const char *full)
{
    const char *err = "unset";
    tern_jid_t *j = tern_jid_new(in, &err);
    CHECK(j != NULL);
    if (j == NULL) {
        fprintf(stderr, "  for \"%s\": %s\n", in, err ? err : "(null)");
        return;
    }
    CHECK(err == NULL);
    CHECK_STR(j->full, full);
    tern_jid_free(&j);
    CHECK(j == NULL);
}

static void invalid(const char *in)
{
    const char *err = NULL;
    tern_jid_t *j = tern_jid_new(in, &err);
    CHECK(j == NULL);
    CHECK(err != NULL);
    if (j != NULL) {
        fprintf(stderr, "  \"%s\" parsed as \"%s\"\n", in, j->full);
        tern_jid_free(&j);
    }
}

static void parts(const char *in, const char *local, const char *domain, const char *resource)
{
    tern_jid_t *j = tern_jid_new(in, NULL);
    CHECK(j != NULL);
    if (j == NULL) {
        return;
    }
    if (local) {
        CHECK_STR(j->local, local);
    } else {
        CHECK(j->local == NULL);
    }
    CHECK_STR(j->domain, domain);
    if (resource) {
        CHECK_STR(j->resource, resource);
    } else {
        CHECK(j->resource == NULL);
    }
    tern_jid_free(&j);
}

static int equal_str(const char *a, const char *b)
{
    tern_jid_t *ja = tern_jid_new(a, NULL), *jb = tern_jid_new(b, NULL);
    int eq = ja && jb && tern_jid_equal(ja, jb);
    tern_jid_free(&ja);
    tern_jid_free(&jb);
    return eq;
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* RFC 7622 §3.5, Table 1: valid JIDs. */
static void test_rfc_valid(void)
{
    valid("juliet@example.com", "juliet@example.com");
    valid("juliet@example.com/foo", "juliet@example.com/foo");
    valid("juliet@example.com/foo bar", "juliet@example.com/foo bar");
    valid("juliet@example.com/foo@bar", "juliet@example.com/foo@bar");
    valid("foo\\20bar@example.com", "foo\\20bar@example.com");
    valid("fussball@example.com", "fussball@example.com");
    valid("fu\xc3\x9f"
          "ball@example.com",
          "fu\xc3\x9f"
          "ball@example.com");                                     /* ß is not folded to ss */
    valid("\xcf\x80@example.com", "\xcf\x80@example.com");         /* π */
    valid("\xce\xa3@example.com/foo", "\xcf\x83@example.com/foo"); /* Σ → σ */
    valid("\xcf\x83@example.com/foo", "\xcf\x83@example.com/foo"); /* σ */
    valid("\xcf\x82@example.com/foo", "\xcf\x82@example.com/foo"); /* ς kept */
    valid("king@example.com/\xe2\x99\x9a", "king@example.com/\xe2\x99\x9a"); /* ♚ */
    valid("example.com", "example.com");
    valid("example.com/foobar", "example.com/foobar");
    valid("a.example.com/b@example.net", "a.example.com/b@example.net");
    parts("a.example.com/b@example.net", NULL, "a.example.com", "b@example.net");
    parts("juliet@example.com/foo@bar", "juliet", "example.com", "foo@bar");
    /* Example 18 was removed by verified erratum 4560: OpaqueString
     * allows a leading space. */
    parts("juliet@example.com/ foo", "juliet", "example.com", " foo");
    parts("juliet@example.com/foo/bar", "juliet", "example.com", "foo/bar");
}

/* RFC 7622 §3.5, Table 2: invalid JIDs (example 18 excepted). */
static void test_rfc_invalid(void)
{
    invalid("\"juliet\"@example.com");
    invalid("foo bar@example.com");
    invalid("@example.com/");
    invalid("henry\xe2\x85\xa3@example.com"); /* ROMAN NUMERAL FOUR */
    invalid("\xe2\x99\x9a@example.com");      /* BLACK CHESS KING */
    invalid("juliet@");
    invalid("/foobar");
}

static void test_structure(void)
{
    invalid("");
    invalid("@example.com");
    invalid("example.com/");
    invalid("u@");
    invalid("@d");
    invalid("d/");
    invalid("u@/r");
    invalid("a@b@example.com");
    CHECK(tern_jid_new(NULL, NULL) == NULL);
    parts("juliet@example.com", "juliet", "example.com", NULL);
    parts("example.com", NULL, "example.com", NULL);
    parts("juliet@example.com/r", "juliet", "example.com", "r");
}

static void test_case_and_width(void)
{
    tern_jid_t *j = tern_jid_new("JuLiEt@ExAmple.COM/Balcony", NULL);
    CHECK(j != NULL);
    if (j) {
        CHECK_STR(j->local, "juliet");
        CHECK_STR(j->domain, "example.com");
        CHECK_STR(j->resource, "Balcony");
        CHECK_STR(j->bare, "juliet@example.com");
        CHECK_STR(j->full, "juliet@example.com/Balcony");
    }
    tern_jid_free(&j);
    CHECK(equal_str("Juliet@Example.com", "juliet@example.com"));
    CHECK(!equal_str("juliet@example.com/Balcony", "juliet@example.com/balcony"));
    CHECK(equal_str("\xce\xa3@example.com", "\xcf\x83@example.com"));  /* Σ == σ */
    CHECK(!equal_str("\xcf\x82@example.com", "\xcf\x83@example.com")); /* ς != σ */
    /* Fullwidth "ＪＵＬＩＥＴ" maps to "juliet" in the localpart. */
    valid("\xef\xbc\xaa\xef\xbc\xb5\xef\xbc\xac\xef\xbc\xa9\xef\xbc\xa5\xef\xbc\xb4@example.com",
          "juliet@example.com");
    /* Halfwidth katakana ｶ (U+FF76) maps to カ (U+30AB). */
    valid("\xef\xbd\xb6@example.com", "\xe3\x82\xab@example.com");
    /* Fullwidth commercial at (U+FF20) maps to '@': not allowed. */
    invalid("a\xef\xbc\xa0"
            "b@example.com");
    /* The resourcepart has no width mapping and keeps its case. */
    valid("a@example.com/\xef\xbc\xa1", "a@example.com/\xef\xbc\xa1");
    /* KELVIN SIGN lowercases to 'k'. */
    valid("\xe2\x84\xaa@example.com", "k@example.com");
    /* Decomposed é in the localpart becomes NFC. */
    valid("Ce\xcc\x81line@example.com", "c\xc3\xa9line@example.com");
}

static void test_localpart(void)
{
    const char *bad[] = {"a\"b", "a&b", "a'b", "a/b", "a:b", "a<b", "a>b", "a@b", "a b", "a\tb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *p = tern_jid_prep_local(bad[i]);
        CHECK(p == NULL);
        free(p);
    }
    invalid("a:b@example.com");
    invalid("a<b@example.com");
    invalid("\x7f@example.com");
    valid("a.b-c_d+e!#$%*=?^`{|}~@example.com", "a.b-c_d+e!#$%*=?^`{|}~@example.com");
    invalid("\xf0\x9f\x98\x80@example.com"); /* emoji: symbol */
    invalid("a\xc2\xa0"
            "b@example.com"); /* NBSP: space */
    invalid("a\xe2\x80\x8d"
            "b@example.com"); /* ZWJ, no virama before */
    invalid("a\xc2\xad"
            "b@example.com");                                  /* SOFT HYPHEN: ignorable */
    invalid("\xcd\xb8@example.com");                           /* U+0378 unassigned */
    invalid("\xef\xb7\x90@example.com");                       /* U+FDD0 noncharacter */
    invalid("\xc2\xbd@example.com");                           /* ½: HasCompat */
    valid("l\xc2\xb7l@example.com", "l\xc2\xb7l@example.com"); /* col·la */
    invalid("a\xc2\xb7"
            "b@example.com"); /* MIDDLE DOT, context */
    valid("\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d@example.com",
          "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d@example.com"); /* Hebrew, RTL */
    invalid("a\xd7\xa9@example.com");                      /* Bidi rule: LTR + R */
    valid("\xe3\x81\x82\xe3\x83\xbb\xe3\x81\x84@example.com",
          "\xe3\x81\x82\xe3\x83\xbb\xe3\x81\x84@example.com"); /* あ・い */
    valid("\xe0\xa4\x95\xe0\xa5\x8d\xe2\x80\x8d\xe0\xa4\xb7@example.com",
          "\xe0\xa4\x95\xe0\xa5\x8d\xe2\x80\x8d\xe0\xa4\xb7@example.com"); /* virama+ZWJ */

    char *p = tern_jid_prep_local("JuLiEt");
    CHECK_STR(p, "juliet");
    free(p);
    CHECK(tern_jid_prep_local("") == NULL);
    CHECK(tern_jid_prep_local(NULL) == NULL);
}

static void test_domainpart(void)
{
    valid("juliet@example.com.", "juliet@example.com");
    valid("example.com./r", "example.com/r");
    invalid("example.com..");
    invalid("juliet@.");
    invalid("a..b");
    invalid("ex_ample.com");
    invalid("ex ample.com");
    invalid("-example.com");
    invalid("example-.com");
    valid("ex-ample.com", "ex-ample.com");
    valid("localhost", "localhost");
    /* IP literals. */
    parts("juliet@[::1]/r", "juliet", "[::1]", "r");
    valid("[2001:DB8::1]", "[2001:db8::1]");
    valid("127.0.0.1", "127.0.0.1");
    valid("u@192.0.2.1/r", "u@192.0.2.1/r");
    invalid("[::1");
    invalid("[]");
    invalid("[example.com]");
    invalid("[1.2.3.4]");
    /* IDN: U-labels and A-labels compare equal; the U-label is stored. */
    valid("m\xc3\xbc"
          "nchen.de",
          "m\xc3\xbc"
          "nchen.de");
    valid("xn--mnchen-3ya.de", "m\xc3\xbc"
                               "nchen.de");
    valid("XN--MNCHEN-3YA.DE", "m\xc3\xbc"
                               "nchen.de");
    valid("juliet@M\xc3\x9c"
          "NCHEN.de/r",
          "juliet@m\xc3\xbc"
          "nchen.de/r");
    CHECK(equal_str("juliet@m\xc3\xbc"
                    "nchen.de",
                    "juliet@xn--mnchen-3ya.de."));
    invalid("xn--abc.de");
    invalid("xn--zz.de");
    /* an A-label whose U-label IDNA2008 disallows (U+00AF MACRON): it
     * would be stored as a domain that does not prepare again */
    invalid("user@xn--can--caf-dma.ex");
    invalid("xn--can--caf-dma.example");
    invalid("\xf0\x9f\x92\xa9.de"); /* emoji not in IDNA2008 */
    invalid("ex_ample.m\xc3\xbc"
            "nchen.de"); /* LDH checked on the IDN path too */
    invalid("m\xc3\xbc"
            "nchen..de");

    char *p = tern_jid_prep_domain("Example.COM.");
    CHECK_STR(p, "example.com");
    free(p);
    p = tern_jid_prep_domain("xn--mnchen-3ya.de");
    CHECK_STR(p, "m\xc3\xbc"
                 "nchen.de");
    free(p);
    CHECK(tern_jid_prep_domain("") == NULL);
    CHECK(tern_jid_prep_domain(".") == NULL);
}

static void test_resourcepart(void)
{
    invalid("juliet@example.com/a\x01"
            "b");
    invalid("juliet@example.com/a\tb");
    invalid("juliet@example.com/a\x7f");
    invalid("juliet@example.com/a\xc2\x85");     /* U+0085 NEL: control */
    invalid("juliet@example.com/a\xee\x80\x80"); /* private use */
    invalid("juliet@example.com/\xcd\xb8");      /* unassigned */
    invalid("juliet@example.com/a\xe2\x80\x8b"
            "b"); /* ZERO WIDTH SPACE: ignorable */
    /* Non-ASCII spaces become U+0020. */
    valid("juliet@example.com/a\xc2\xa0"
          "b\xe3\x80\x80"
          "c",
          "juliet@example.com/a b c");
    /* NFC. */
    valid("juliet@example.com/e\xcc\x81", "juliet@example.com/\xc3\xa9");
    /* Symbols and compatibility characters are fine here. */
    valid("juliet@example.com/\xc2\xbd\xe2\x85\xa3\xf0\x9f\x98\x80",
          "juliet@example.com/\xc2\xbd\xe2\x85\xa3\xf0\x9f\x98\x80");
    valid("juliet@example.com/ ", "juliet@example.com/ ");

    char *p = tern_jid_prep_resource("Foo Bar");
    CHECK_STR(p, "Foo Bar");
    free(p);
    CHECK(tern_jid_prep_resource("") == NULL);
}

static void test_utf8(void)
{
    invalid("\xff@example.com");
    invalid("a\xc3@example.com");
    invalid("\xc0\xaf@example.com"); /* overlong '/' */
    invalid("ex\xe4mple.com");
    invalid("juliet@example.com/\xc3");
    invalid("juliet@example.com/\xed\xa0\x80");     /* surrogate */
    invalid("juliet@example.com/\xf4\x90\x80\x80"); /* > U+10FFFF */
}

static void test_lengths(void)
{
    char buf[3000];
    char *l1023 = repeat('a', 1023), *l1024 = repeat('a', 1024);

    snprintf(buf, sizeof buf, "%s@example.com", l1023);
    tern_jid_t *j = tern_jid_new(buf, NULL);
    CHECK(j != NULL && strlen(j->local) == 1023);
    tern_jid_free(&j);
    snprintf(buf, sizeof buf, "%s@example.com", l1024);
    invalid(buf);

    snprintf(buf, sizeof buf, "example.com/%s", l1023);
    j = tern_jid_new(buf, NULL);
    CHECK(j != NULL && strlen(j->resource) == 1023);
    tern_jid_free(&j);
    snprintf(buf, sizeof buf, "example.com/%s", l1024);
    invalid(buf);

    /* Domain labels: 63 bytes max, 253 in all. */
    char *lab63 = repeat('b', 63), *lab64 = repeat('b', 64);
    snprintf(buf, sizeof buf, "%s.com", lab63);
    valid(buf, buf);
    snprintf(buf, sizeof buf, "%s.com", lab64);
    invalid(buf);
    snprintf(buf, sizeof buf, "%s.%s.%s.%s", lab63, lab63, lab63, lab63); /* 255 */
    invalid(buf);
    snprintf(buf, sizeof buf, "%s.%s.%s.%.61s", lab63, lab63, lab63, lab63); /* 253 */
    valid(buf, buf);
    snprintf(buf, sizeof buf, "%s.%s.%s.%.61s.", lab63, lab63, lab63, lab63); /* + dot */
    j = tern_jid_new(buf, NULL);
    CHECK(j != NULL && strlen(j->domain) == 253);
    tern_jid_free(&j);
    snprintf(buf, sizeof buf, "%s.%s.%s.%.62s", lab63, lab63, lab63, lab63); /* 254 */
    invalid(buf);

    /* 1023 bytes only after preparation: fullwidth ａ (3 bytes) → a. */
    char *wide = malloc(1024 * 3 + 32);
    size_t o = 0;
    for (int i = 0; i < 1023; i++) {
        memcpy(wide + o, "\xef\xbd\x81", 3);
        o += 3;
    }
    strcpy(wide + o, "@example.com");
    j = tern_jid_new(wide, NULL);
    CHECK(j != NULL && strcmp(j->local, l1023) == 0);
    tern_jid_free(&j);
    memcpy(wide + o, "\xef\xbd\x81@example.com", 16);
    invalid(wide);
    /* 2-byte characters: 512 of them make 1024 bytes. */
    o = 0;
    for (int i = 0; i < 512; i++) {
        memcpy(wide + o, "\xc3\xa9", 2);
        o += 2;
    }
    strcpy(wide + o, "@example.com");
    invalid(wide);
    free(wide);

    free(l1023);
    free(l1024);
    free(lab63);
    free(lab64);
}

static void test_helpers(void)
{
    const char *err = "unset";
    tern_jid_t *j = tern_jid_new("Juliet@Example.com/Balcony", &err);
    CHECK(j != NULL && err == NULL);
    if (j == NULL) {
        return;
    }
    /* The struct and strings are one block: strings follow the struct. */
    CHECK((const char *)j->local > (const char *)j);
    CHECK(j->domain == j->bare + strlen("juliet@"));
    CHECK(j->resource == j->full + strlen("juliet@example.com/"));

    tern_jid_t *b = tern_jid_bare(j);
    CHECK(b != NULL);
    if (b) {
        CHECK_STR(b->full, "juliet@example.com");
        CHECK_STR(b->bare, "juliet@example.com");
        CHECK_STR(b->local, "juliet");
        CHECK_STR(b->domain, "example.com");
        CHECK(b->resource == NULL);
        CHECK(b->full == b->bare);
        CHECK(!tern_jid_equal(j, b));
        tern_jid_t *bb = tern_jid_bare(b);
        CHECK(bb != NULL && tern_jid_equal(b, bb));
        tern_jid_free(&bb);
    }

    tern_jid_t *d = tern_jid_dup(j);
    CHECK(d != NULL && d != j);
    if (d) {
        CHECK(tern_jid_equal(j, d));
        CHECK_STR(d->full, j->full);
        CHECK_STR(d->bare, j->bare);
        CHECK_STR(d->local, "juliet");
        CHECK_STR(d->domain, "example.com");
        CHECK_STR(d->resource, "Balcony");
    }

    tern_jid_t *dom = tern_jid_new("example.com/x", NULL);
    tern_jid_t *dd = tern_jid_dup(dom);
    CHECK(dd != NULL && dd->local == NULL);
    if (dd) {
        CHECK_STR(dd->full, "example.com/x");
        CHECK_STR(dd->bare, "example.com");
        CHECK_STR(dd->domain, "example.com");
    }
    tern_jid_t *domb = tern_jid_bare(dom);
    CHECK(domb != NULL && domb->local == NULL && domb->resource == NULL);
    if (domb) {
        CHECK_STR(domb->full, "example.com");
    }

    CHECK(tern_jid_equal(NULL, NULL));
    CHECK(!tern_jid_equal(j, NULL));
    CHECK(!tern_jid_equal(NULL, j));
    CHECK(tern_jid_dup(NULL) == NULL);
    CHECK(tern_jid_bare(NULL) == NULL);

    tern_jid_free(&j);
    CHECK(j == NULL);
    tern_jid_free(&j); /* NULL-safe */
    tern_jid_free(NULL);
    tern_jid_free(&b);
    tern_jid_free(&d);
    tern_jid_free(&dom);
    tern_jid_free(&dd);
    tern_jid_free(&domb);
}

static void test_from_parts(void)
{
    const char *err = "unset";
    tern_jid_t *j = tern_jid_from_parts("JuLiEt", "ExAmple.COM.", "Balcony", &err);
    CHECK(j != NULL && err == NULL);
    if (j) {
        CHECK_STR(j->full, "juliet@example.com/Balcony");
        CHECK_STR(j->bare, "juliet@example.com");
        tern_jid_t *k = tern_jid_new("juliet@example.com/Balcony", NULL);
        CHECK(tern_jid_equal(j, k));
        tern_jid_free(&k);
    }
    tern_jid_free(&j);

    j = tern_jid_from_parts(NULL, "example.com", NULL, &err);
    CHECK(j != NULL && err == NULL);
    if (j) {
        CHECK_STR(j->full, "example.com");
        CHECK(j->local == NULL && j->resource == NULL);
    }
    tern_jid_free(&j);

    j = tern_jid_from_parts(NULL, "xn--mnchen-3ya.de", "r/s", NULL);
    CHECK(j != NULL);
    if (j) {
        CHECK_STR(j->full, "m\xc3\xbc"
                           "nchen.de/r/s");
    }
    tern_jid_free(&j);

    /* A '@' or '/' inside a part is not a separator here. */
    err = NULL;
    CHECK(tern_jid_from_parts("a@b", "example.com", NULL, &err) == NULL);
    CHECK(err != NULL);
    CHECK(tern_jid_from_parts("a", "example.com/x", NULL, NULL) == NULL);
    CHECK(tern_jid_from_parts("a", "user@example.com", NULL, NULL) == NULL);
    CHECK(tern_jid_from_parts("", "example.com", NULL, NULL) == NULL);
    CHECK(tern_jid_from_parts("a", "", NULL, NULL) == NULL);
    CHECK(tern_jid_from_parts("a", NULL, NULL, NULL) == NULL);
    CHECK(tern_jid_from_parts("a", "example.com", "", NULL) == NULL);
    CHECK(tern_jid_from_parts("a", "example.com", "\x01", NULL) == NULL);
}

/* ---- the fast path and the cache against the full path ------------- */

/* Equal strings, or both NULL. */
static int same_str(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static int same_jid(const tern_jid_t *a, const tern_jid_t *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return same_str(a->local, b->local) && same_str(a->domain, b->domain) &&
           same_str(a->resource, b->resource) && same_str(a->bare, b->bare) &&
           same_str(a->full, b->full);
}

static int fast_taken, paths_compared;

/* jid_new_fast() (when it takes `in`), tern_jid_new() twice (the second
 * time from the cache when `in` is not in prepared form) and tern_jid_dup()
 * all give what jid_new_slow() gives, error included. */
static void compare_paths(const char *in)
{
    const char *slow_err = NULL, *err1 = "unset", *err2 = "unset";
    tern_jid_t *slow = jid_new_slow(in, &slow_err);
    tern_jid_t *fast = jid_new_fast(in);
    tern_jid_t *first = tern_jid_new(in, &err1);
    tern_jid_t *second = tern_jid_new(in, &err2);
    tern_jid_t *dup = tern_jid_dup(second);
    int ok = (fast == NULL || same_jid(fast, slow)) && same_jid(first, slow) &&
             same_jid(second, slow) && same_jid(dup, slow) && same_str(err1, slow_err) &&
             same_str(err2, slow_err);
    CHECK(ok);
    if (!ok) {
        fprintf(stderr, "  paths differ for \"%s\": full path %s, fast %s, first %s (%s)\n", in,
                slow ? slow->full : slow_err, fast ? fast->full : "-", first ? first->full : "-",
                err1 ? err1 : "-");
    }
    fast_taken += fast != NULL;
    paths_compared++;
    tern_jid_free(&slow);
    tern_jid_free(&fast);
    tern_jid_free(&first);
    tern_jid_free(&second);
    tern_jid_free(&dup);
}

/* Deterministic pseudo-random numbers (a 64-bit LCG). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)(rng_state >> 33) % n;
}

static void test_fast_path(void)
{
    static const char *const edge[] = {
        "juliet@example.com",
        "juliet@example.com/balcony",
        "example.com",
        "example.com/r",
        "Juliet@example.com",
        "juliet@Example.com",
        "juliet@example.com.",
        "juliet@example.com/",
        "@example.com",
        "juliet@",
        "/r",
        "",
        "a@b@c",
        "a@b/c@d/e",
        "a@b/ c ",
        "a@b/\x7f",
        "a@b/\t",
        "a\"b@c",
        "a&b@c",
        "a'b@c",
        "a:b@c",
        "a<b@c",
        "a>b@c",
        "a b@c",
        "a@b c",
        "a@-b",
        "a@b-",
        "a@b-.c",
        "a@b..c",
        "a@.b",
        "a@b_c",
        "a@xn--bcher-kva.example",
        "a@XN--bcher-kva.example",
        "a@xn-b.example",
        "a@axn--b.example",
        "a@xn--",
        "a@x",
        "a@1.2.3.4",
        "a@1.2.3.4/r",
        "a@[::1]",
        "a@[::1]/r",
        "a@[1.2.3.4]",
        "a@256.1.1.1",
        "a@b\xc3\xa4r.example",
        "\xc3\xa4@b",
        "a@b/\xc3\xa4",
        "\xef\xbc\xa1@b",
        "a@b/\xe2\x80\x8b",
        "a@b/\xc2\xa0x",
        "\xff@b",
        "a@b/\xff",
        "a@localhost",
        "u12@localhost/bench",
        "-a@b",
        "a-@b",
        "~!#$%()*+,-.;=?[\\]^_`{|}@b",
        "A@B/C",
        "a@b/C",
        "a@b/a/b/c",
    };
    for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
        compare_paths(edge[i]);
    }
    /* Lengths at and around the limits: 1023-byte parts, 63-byte labels,
     * 253-byte domains. */
    static const size_t lens[] = {1, 62, 63, 64, 252, 253, 254, 1022, 1023, 1024};
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        size_t n = lens[i];
        char *part = repeat('a', n);
        char *buf = malloc(2 * n + 64);
        CHECK(part != NULL && buf != NULL);
        if (part == NULL || buf == NULL) {
            free(part);
            free(buf);
            return;
        }
        snprintf(buf, 2 * n + 64, "%s@example.com", part);
        compare_paths(buf);
        snprintf(buf, 2 * n + 64, "a@example.com/%s", part);
        compare_paths(buf);
        snprintf(buf, 2 * n + 64, "a@%s", part);
        compare_paths(buf);
        snprintf(buf, 2 * n + 64, "a@%s.com", part);
        compare_paths(buf);
        /* Labels of 63 joined by dots up to about n bytes. */
        size_t w = 0;
        w += (size_t)snprintf(buf + w, 2 * n + 64 - w, "a@");
        while (w + 64 <= n + 2) {
            memset(buf + w, 'b', 63);
            w += 63;
            buf[w++] = '.';
        }
        snprintf(buf + w, 2 * n + 64 - w, "c");
        compare_paths(buf);
        free(part);
        free(buf);
    }
    /* Random strings over an alphabet of the characters every rule looks
     * at, and of short runs that look like real JIDs. */
    static const char *const pieces[] = {"a",
                                         "z",
                                         "0",
                                         "9",
                                         "A",
                                         "Z",
                                         "x",
                                         "n",
                                         "xn--",
                                         "-",
                                         ".",
                                         "@",
                                         "/",
                                         " ",
                                         "\t",
                                         "\"",
                                         "&",
                                         "'",
                                         ":",
                                         "<",
                                         ">",
                                         "_",
                                         "~",
                                         "[",
                                         "]",
                                         "::1",
                                         "1.2.3.4",
                                         "\x7f",
                                         "\xc3\xa4",
                                         "\xc3\x84",
                                         "\xef\xbc\xa1",
                                         "\xe2\x80\x8b",
                                         "\xc2\xa0",
                                         "\xcc\x88",
                                         "\xff",
                                         "juliet",
                                         "example",
                                         "com",
                                         "localhost",
                                         "bench"};
    char buf[64];
    for (int round = 0; round < 20000; round++) {
        size_t w = 0;
        unsigned n = 1 + rnd(8);
        for (unsigned k = 0; k < n; k++) {
            const char *p = pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))];
            size_t pl = strlen(p);
            if (w + pl >= sizeof(buf)) {
                break;
            }
            memcpy(buf + w, p, pl);
            w += pl;
        }
        buf[w] = '\0';
        compare_paths(buf);
        /* The same shaped like a JID most of the time. */
        char jid[3 * sizeof(buf) + 4];
        snprintf(jid, sizeof(jid), "%s@%s.com/%s", round % 3 ? "u" : buf,
                 round % 5 ? "example" : buf, round % 2 ? "r" : buf);
        compare_paths(jid);
    }
    /* The cache holds what it was given, whatever else evicted it since. */
    jid_cache_clear();
    compare_paths("Juliet@Example.COM/Balcony");
    compare_paths("Juliet@Example.COM/Balcony");
    jid_cache_clear();
    /* The fast path must have been tried on many of them. */
    CHECK(fast_taken > 1000);
    CHECK(paths_compared - fast_taken > 1000);
    printf("fast path: %d of %d inputs\n", fast_taken, paths_compared);
}

int main(void)
{
    test_rfc_valid();
    test_rfc_invalid();
    test_structure();
    test_case_and_width();
    test_localpart();
    test_domainpart();
    test_resourcepart();
    test_utf8();
    test_lengths();
    test_helpers();
    test_from_parts();
    test_fast_path();
    return check_summary();
}
