/*
 * test_base64.c — unit tests of src/util/base64.c: the RFC 4648 §10 test
 * vectors both ways, the base64url alphabet and unpadded output, strict
 * rejection of malformed input, and the lenient form avatar and vCard
 * data use (XEP-0084 §4.1, XEP-0153 §4.7).
 */
#include <stdlib.h>
#include <string.h>

#include <tern/base64.h>

#include "check.h"

/* Decode `in` with `flags` and expect exactly `want`. */
static void decodes(const char *in, unsigned flags, const char *want)
{
    size_t n = 99;
    unsigned char *out = tern_base64_decode(in, strlen(in), flags, &n);
    CHECK(out != NULL);
    if (out == NULL) {
        fprintf(stderr, "  \"%s\" was refused\n", in);
        return;
    }
    CHECK(n == strlen(want));
    CHECK(n == strlen(want) && memcmp(out, want, n) == 0);
    free(out);
}

/* Expect `in` to be refused with `flags`. */
static void refused(const char *in, size_t len, unsigned flags)
{
    size_t n = 99;
    unsigned char *out = tern_base64_decode(in, len, flags, &n);
    CHECK(out == NULL);
    if (out != NULL) {
        fprintf(stderr, "  \"%.*s\" was accepted\n", (int)len, in);
        free(out);
    }
}

static void encodes(const char *in, unsigned flags, const char *want)
{
    char *out = tern_base64_encode(in, strlen(in), flags);
    CHECK(out != NULL);
    if (out != NULL)
        CHECK_STR(out, want);
    free(out);
}

/* RFC 4648 §10. */
static void test_rfc_vectors(void)
{
    static const char *v[][2] = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        encodes(v[i][0], 0, v[i][1]);
        decodes(v[i][1], 0, v[i][0]);
        decodes(v[i][1], TERN_BASE64_LENIENT, v[i][0]);
    }
    encodes("fo", TERN_BASE64_NOPAD, "Zm8");
    encodes("f", TERN_BASE64_NOPAD, "Zg");
}

/* RFC 4648 §5: '-' and '_' instead of '+' and '/'. */
static void test_url(void)
{
    encodes("\xfb\xff", 0, "+/8=");
    encodes("\xfb\xff", TERN_BASE64_URL, "-_8=");
    encodes("\xfb\xff", TERN_BASE64_URL | TERN_BASE64_NOPAD, "-_8");
    decodes("-_8=", TERN_BASE64_URL, "\xfb\xff");
    refused("+/8=", 4, TERN_BASE64_URL);
    refused("-_8=", 4, 0);
    unsigned char raw[16];
    memset(raw, 0xff, sizeof raw);
    char *id = tern_base64_encode(raw, sizeof raw, TERN_BASE64_URL | TERN_BASE64_NOPAD);
    CHECK(id != NULL && strlen(id) == 22);
    free(id);
}

static void test_strict_refuses(void)
{
    refused("Zg", 2, 0);        /* padding missing */
    refused("Zg=", 3, 0);       /* padding short */
    refused("Zg===", 5, 0);     /* padding too long */
    refused("Zm9v====", 8, 0);  /* padding after a whole quantum */
    refused("Z===", 4, 0);      /* one character cannot make a byte */
    refused("Zm=v", 4, 0);      /* '=' inside */
    refused("Zg==Zm9v", 8, 0);  /* data after padding */
    refused("Zm9v Yg==", 9, 0); /* white space */
    refused("Zm9v\nYg==", 9, 0);
    refused("Zm9*", 4, 0);    /* not in the alphabet */
    refused("Zm9\0", 4, 0);   /* NUL */
    refused("Zm9\xc3", 4, 0); /* a byte above 127 */
    refused("Zh==", 4, 0);    /* RFC 4648 §3.5: unused bits set */
    refused("Zm9=", 4, 0);
    refused(NULL, 4, 0);
    size_t n = 0;
    CHECK(tern_base64_decode("Zg==", 4, 0, NULL) == NULL);
    CHECK(tern_base64_encode(NULL, 1, 0) == NULL);
    unsigned char *empty = tern_base64_decode(NULL, 0, 0, &n);
    CHECK(empty != NULL && n == 0);
    free(empty);
}

/* XEP-0084 §4.1, XEP-0153 §4.7: line breaks ignored, padding optional. */
static void test_lenient(void)
{
    const unsigned L = TERN_BASE64_LENIENT;
    decodes("Zm9v\r\nYmFy", L, "foobar");
    decodes(" Zm9v\tYg==\n", L, "foob");
    decodes("Zm9vYg", L, "foob");
    decodes("Zm9vYmE", L, "fooba");
    decodes("Zm9vYg= =", L, "foob");
    decodes("Zh", L, "f"); /* unused bits ignored, as OpenSSL's decoder did */
    decodes("  \n", L, "");
    refused("Zm9vY", 5, L);     /* a dangling character */
    refused("Zm9vYg=", 7, L);   /* padding incomplete */
    refused("Zm9vYg===", 9, L); /* too much */
    refused("Zm9v====", 8, L);
    refused("Zm=vYg==", 8, L); /* '=' inside */
    refused("Zm9v*Yg==", 9, L);
    refused("Zm9v\vYg==", 9, L); /* only space, tab, CR and LF are skipped */
}

int main(void)
{
    test_rfc_vectors();
    test_url();
    test_strict_refuses();
    test_lenient();
    return check_summary();
}
