/*
 * base64.c — the base64 encoder and decoder of the public API
 * (include/tern/base64.h; RFC 4648 §4 and §5).
 *
 * Owns nothing but the two alphabets.  Pure computation: no I/O, no
 * logging; the only allocation is the result the caller frees.
 */
#include <stdint.h>
#include <stdlib.h>

#include <tern/base64.h>

static const char alphabet_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char alphabet_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Encode: three bytes make four characters; the last one or two bytes make
 * two or three characters plus '=' padding unless TERN_BASE64_NOPAD. */
char *tern_base64_encode(const void *in, size_t len, unsigned flags)
{
    if (in == NULL && len > 0)
        return NULL;
    if (len > (SIZE_MAX - 1) / 4 * 3 - 3)
        return NULL;
    const char *abc = (flags & TERN_BASE64_URL) ? alphabet_url : alphabet_std;
    const unsigned char *p = in;
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (out == NULL)
        return NULL;
    size_t o = 0, i = 0;
    for (; i + 3 <= len; i += 3) {
        unsigned long q = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8 | p[i + 2];
        out[o++] = abc[q >> 18 & 63];
        out[o++] = abc[q >> 12 & 63];
        out[o++] = abc[q >> 6 & 63];
        out[o++] = abc[q & 63];
    }
    if (len - i > 0) {
        unsigned long q = (unsigned long)p[i] << 16;
        if (len - i == 2)
            q |= (unsigned long)p[i + 1] << 8;
        out[o++] = abc[q >> 18 & 63];
        out[o++] = abc[q >> 12 & 63];
        if (len - i == 2)
            out[o++] = abc[q >> 6 & 63];
        if (!(flags & TERN_BASE64_NOPAD)) {
            if (len - i == 1)
                out[o++] = '=';
            out[o++] = '=';
        }
    }
    out[o] = '\0';
    return out;
}

/* Value of digit `c` in the chosen alphabet, -1 for any other character. */
static int digit_value(unsigned char c, int url)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (url ? '-' : '+'))
        return 62;
    if (c == (url ? '_' : '/'))
        return 63;
    return -1;
}

/* Decode, checking the rules listed in include/tern/base64.h. */
unsigned char *tern_base64_decode(const char *in, size_t len, unsigned flags, size_t *out_len)
{
    if ((in == NULL && len > 0) || out_len == NULL)
        return NULL;
    int lenient = (flags & TERN_BASE64_LENIENT) != 0, url = (flags & TERN_BASE64_URL) != 0;
    unsigned char *out = malloc(len / 4 * 3 + 3);
    if (out == NULL)
        return NULL;
    size_t o = 0, digits = 0, pad = 0;
    unsigned long acc = 0;
    unsigned nbits = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (lenient && (c == ' ' || c == '\t' || c == '\r' || c == '\n'))
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int d = digit_value(c, url);
        if (d < 0 || pad > 0) /* not a digit, or a digit after the padding */
            goto bad;
        acc = acc << 6 | (unsigned long)d;
        nbits += 6;
        digits++;
        if (nbits >= 8) {
            nbits -= 8;
            out[o++] = (unsigned char)(acc >> nbits);
            acc &= (1UL << nbits) - 1;
        }
    }
    size_t rem = digits % 4;
    if (rem == 1) /* six bits cannot make a byte */
        goto bad;
    if ((pad > 0 || !lenient) && pad != (rem > 0 ? 4 - rem : 0))
        goto bad; /* RFC 4648 §3.2: the padding completes the last quantum */
    if (!lenient && acc != 0)
        goto bad; /* RFC 4648 §3.5: unused bits must be zero */
    *out_len = o;
    return out;
bad:
    free(out);
    return NULL;
}
