/*
 * siphash.c — SipHash-2-4 from the description in the SipHash paper
 * (§2: initialization, compression with c = 2 SipRounds per 8-byte word,
 * finalization with d = 4), and the process-wide random key.
 */
#include "util/siphash.h"

#include <openssl/rand.h>
#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

/* Little-endian 64-bit load of 8 bytes. */
static uint64_t load64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Paper §2, "SipRound". */
static void sipround(siphash_t *s)
{
    s->v0 += s->v1;
    s->v1 = ROTL(s->v1, 13);
    s->v1 ^= s->v0;
    s->v0 = ROTL(s->v0, 32);
    s->v2 += s->v3;
    s->v3 = ROTL(s->v3, 16);
    s->v3 ^= s->v2;
    s->v0 += s->v3;
    s->v3 = ROTL(s->v3, 21);
    s->v3 ^= s->v0;
    s->v2 += s->v1;
    s->v1 = ROTL(s->v1, 17);
    s->v1 ^= s->v2;
    s->v2 = ROTL(s->v2, 32);
}

/* Compression of one message word m_i: v3 ^= m; c SipRounds; v0 ^= m. */
static void compress(siphash_t *s, uint64_t m)
{
    s->v3 ^= m;
    sipround(s);
    sipround(s);
    s->v0 ^= m;
}

void siphash_init(siphash_t *st, const unsigned char key[SIPHASH_KEY_LEN])
{
    uint64_t k0 = load64(key), k1 = load64(key + 8);
    /* "somepseudorandomlygeneratedbytes" */
    st->v0 = k0 ^ 0x736f6d6570736575ULL;
    st->v1 = k1 ^ 0x646f72616e646f6dULL;
    st->v2 = k0 ^ 0x6c7967656e657261ULL;
    st->v3 = k1 ^ 0x7465646279746573ULL;
    st->tail = 0;
    st->len = 0;
}

/* Bytes first complete a pending word, then whole words go straight from
 * the input, and what remains waits in `tail`. */
void siphash_update(siphash_t *st, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0 && (st->len & 7) != 0) {
        st->tail |= (uint64_t)*p++ << (8 * (st->len & 7));
        st->len++;
        len--;
        if ((st->len & 7) == 0) {
            compress(st, st->tail);
            st->tail = 0;
        }
    }
    for (; len >= 8; p += 8, len -= 8, st->len += 8)
        compress(st, load64(p));
    for (; len > 0; len--, st->len++)
        st->tail |= (uint64_t)*p++ << (8 * (st->len & 7));
}

/* The last word holds the remaining bytes and, in its top byte, the
 * length mod 256; then v2 ^= 0xff, d SipRounds, and v0^v1^v2^v3. */
uint64_t siphash_final(const siphash_t *st)
{
    siphash_t s = *st;
    compress(&s, s.tail | ((uint64_t)(s.len & 0xff) << 56));
    s.v2 ^= 0xff;
    for (int i = 0; i < 4; i++)
        sipround(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

uint64_t siphash24(const unsigned char key[SIPHASH_KEY_LEN], const void *data, size_t len)
{
    siphash_t st;
    siphash_init(&st, key);
    siphash_update(&st, data, len);
    return siphash_final(&st);
}

static unsigned char process_key[SIPHASH_KEY_LEN];
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void make_key(void)
{
    if (getrandom(process_key, sizeof(process_key), 0) == (ssize_t)sizeof(process_key))
        return;
    if (RAND_bytes(process_key, sizeof(process_key)) == 1)
        return;
    /* No randomness at all (seccomp, no entropy source): still differ per process. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t a = (uint64_t)ts.tv_sec ^ ((uint64_t)ts.tv_nsec << 20);
    uint64_t b = (uint64_t)(uintptr_t)&ts ^ (uint64_t)(uintptr_t)make_key;
    memcpy(process_key, &a, 8);
    memcpy(process_key + 8, &b, 8);
}

const unsigned char *hash_key(void)
{
    pthread_once(&key_once, make_key);
    return process_key;
}
