/*
 * tls_io.c — one read, and writing an output queue out, on a
 * non-blocking socket with or without TLS (see tls_io.h).
 */
#include "tls/tls_io.h"

#include <errno.h>
#include <event2/buffer.h>
#include <openssl/err.h>
#include <sys/socket.h>

#define TLS_RECORD_MAX 16384

static int retry_later(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/* What SSL_get_error() says a failed call waits for. */
static tls_io_t ssl_status(SSL *ssl, int r)
{
    switch (SSL_get_error(ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return TLS_IO_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_IO_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        return TLS_IO_CLOSED;
    default:
        return TLS_IO_ERROR;
    }
}

/* SSL_get_error() reads the thread's error queue, so it must be empty
 * before each call.  Emptying an empty queue costs as much as a small
 * record's decryption in OpenSSL 3; looking first is cheap. */
static void clear_errors(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

tls_io_t tls_io_read(SSL *ssl, int fd, char *buf, size_t want, size_t *got)
{
    if (ssl) {
        clear_errors();
        errno = 0;
        int r = SSL_read(ssl, buf, (int)want);
        if (r > 0) {
            *got = (size_t)r;
            return TLS_IO_OK;
        }
        return ssl_status(ssl, r);
    }
    ssize_t n = recv(fd, buf, want, 0);
    if (n > 0) {
        *got = (size_t)n;
        return TLS_IO_OK;
    }
    if (n == 0)
        return TLS_IO_CLOSED;
    return retry_later(errno) ? TLS_IO_WANT_READ : TLS_IO_ERROR;
}

tls_io_t tls_io_flush(SSL *ssl, int fd, struct evbuffer *out, int *retry_len)
{
    while (evbuffer_get_length(out) > 0) {
        if (!ssl) {
            int r = evbuffer_write(out, fd);
            if (r > 0)
                continue;
            return r < 0 && retry_later(errno) ? TLS_IO_WANT_WRITE : TLS_IO_ERROR;
        }
        size_t len = evbuffer_get_length(out);
        size_t n = *retry_len ? (size_t)*retry_len : len < TLS_RECORD_MAX ? len : TLS_RECORD_MAX;
        unsigned char *data = evbuffer_pullup(out, (ev_ssize_t)n);
        if (!data) {
            errno = ENOMEM;
            return TLS_IO_ERROR;
        }
        clear_errors();
        errno = 0;
        int r = SSL_write(ssl, data, (int)n);
        if (r > 0) {
            *retry_len = 0;
            evbuffer_drain(out, (size_t)r);
            continue;
        }
        *retry_len = (int)n;
        return ssl_status(ssl, r);
    }
    return TLS_IO_OK;
}
