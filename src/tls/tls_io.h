/*
 * tls_io.h — reading and writing a non-blocking socket, through TLS when
 * the connection has it (internal; the server's connections and the load
 * tool's both use it).
 *
 * Neither function logs or touches events: each says what the socket
 * needs next and leaves the rest to its caller.  After TLS_IO_CLOSED or
 * TLS_IO_ERROR, errno and OpenSSL's error queue still say why.
 */
#ifndef TERN_TLS_IO_H
#define TERN_TLS_IO_H

#include <stddef.h>
#include <openssl/ssl.h>

struct evbuffer;

typedef enum {
    TLS_IO_OK,         /* read: bytes came; write: everything is out */
    TLS_IO_WANT_READ,  /* wait until the socket is readable */
    TLS_IO_WANT_WRITE, /* wait until the socket is writable */
    TLS_IO_CLOSED,     /* the peer closed (TLS close_notify, or end of the TCP stream) */
    TLS_IO_ERROR,      /* the connection is broken */
} tls_io_t;

/* One read of at most `want` bytes into `buf` from `fd`, or from `ssl`
 * when it is not NULL; on TLS_IO_OK `*got` is how many (> 0). */
tls_io_t tls_io_read(SSL *ssl, int fd, char *buf, size_t want, size_t *got);

/* Write `out` until it is empty or the socket takes no more, draining
 * what was written.  With TLS, records are at most 16 KiB, and a write
 * that must be repeated is repeated with the same length (OpenSSL
 * requires it): `*retry_len`, 0 at first, keeps that length between
 * calls.  TLS_IO_ERROR also when memory runs out (errno ENOMEM). */
tls_io_t tls_io_flush(SSL *ssl, int fd, struct evbuffer *out, int *retry_len);

#endif
