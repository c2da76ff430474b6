/*
 * siphash.h — SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast
 * short-input PRF", 2012) and the process-wide random key the hash tables
 * use, so that a remote party cannot choose keys that collide.
 *
 * Pure computation except hash_key(), which reads the random key once.
 */
#ifndef TERN_SIPHASH_H
#define TERN_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_LEN 16

/* Incremental state: feed pieces with siphash_update(), in order. */
typedef struct siphash {
    uint64_t v0, v1, v2, v3;
    uint64_t tail; /* up to 7 bytes not yet hashed, little-endian */
    size_t len;    /* bytes fed so far */
} siphash_t;

void siphash_init(siphash_t *st, const unsigned char key[SIPHASH_KEY_LEN]);
void siphash_update(siphash_t *st, const void *data, size_t len);
uint64_t siphash_final(const siphash_t *st);
/* One call: SipHash-2-4 of `len` bytes under `key`. */
uint64_t siphash24(const unsigned char key[SIPHASH_KEY_LEN], const void *data, size_t len);

/* The process's hash-table key: 16 random bytes from the kernel
 * (getrandom, else OpenSSL's RAND_bytes) read on first use, thread-safe.
 * Should both fail, a key made of the time and addresses is used. */
const unsigned char *hash_key(void);

#endif
