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

/* Little-endian 64-bit load of 8 bytes (one load on little-endian hosts). */
static inline uint64_t load64(const unsigned char *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
#else
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
#endif
}

/* Paper §2, "SipRound", on four local words (kept in registers: the hash
 * of a short key is a few dozen of these). */
#define SIPROUND(v0, v1, v2, v3)                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

/* Compression of one message word m_i: v3 ^= m; c SipRounds; v0 ^= m. */
#define COMPRESS(v0, v1, v2, v3, m)                                                                \
    do {                                                                                           \
        v3 ^= (m);                                                                                 \
        SIPROUND(v0, v1, v2, v3);                                                                  \
        SIPROUND(v0, v1, v2, v3);                                                                  \
        v0 ^= (m);                                                                                 \
    } while (0)

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
    uint64_t v0 = st->v0, v1 = st->v1, v2 = st->v2, v3 = st->v3;
    while (len > 0 && (st->len & 7) != 0) {
        st->tail |= (uint64_t)*p++ << (8 * (st->len & 7));
        st->len++;
        len--;
        if ((st->len & 7) == 0) {
            COMPRESS(v0, v1, v2, v3, st->tail);
            st->tail = 0;
        }
    }
    for (; len >= 8; p += 8, len -= 8, st->len += 8) {
        uint64_t m = load64(p);
        COMPRESS(v0, v1, v2, v3, m);
    }
    for (; len > 0; len--, st->len++)
        st->tail |= (uint64_t)*p++ << (8 * (st->len & 7));
    st->v0 = v0;
    st->v1 = v1;
    st->v2 = v2;
    st->v3 = v3;
}

/* The last word holds the remaining bytes and, in its top byte, the
 * length mod 256; then v2 ^= 0xff, d SipRounds, and v0^v1^v2^v3. */
uint64_t siphash_final(const siphash_t *st)
{
    uint64_t v0 = st->v0, v1 = st->v1, v2 = st->v2, v3 = st->v3;
    uint64_t m = st->tail | ((uint64_t)(st->len & 0xff) << 56);
    COMPRESS(v0, v1, v2, v3, m);
    v2 ^= 0xff;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
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
