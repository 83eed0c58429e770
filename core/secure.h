/* secure.h — secrets: random strings, SHA-256, HMAC-SHA256, constant-time
 * comparison (OpenSSL libcrypto). */
#ifndef CORE_SECURE_H
#define CORE_SECURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* n random characters from [A-Za-z0-9] (unbiased), NUL-terminated: out must
 * hold n + 1 bytes. 0 or -1 (no entropy). */
int secure_random_alnum(char *out, size_t n);
/* Hex SHA-256 of data: out holds 65 bytes. */
void secure_sha256_hex(const void *data, size_t len, char out[65]);
/* HMAC-SHA256 → 32 raw bytes. */
void secure_hmac_sha256(const void *key, size_t keylen, const void *data, size_t len,
                        uint8_t out[32]);
/* base64url without padding of len bytes; out must hold 4*((len+2)/3)+1. */
void secure_base64url(const uint8_t *in, size_t len, char *out);
/* Decodes base64url (no padding); returns bytes written or -1. */
int secure_base64url_decode(const char *in, size_t inlen, uint8_t *out, size_t outcap);
/* Constant-time equality of two strings (length leaks, content does not). */
bool secure_str_equal(const char *a, const char *b);

#endif
