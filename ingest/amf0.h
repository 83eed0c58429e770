/* amf0.h — bounded AMF0 decoder and encoder (RTMP command messages).
 *
 * Decoding builds a small tree of `struct amf0_value` inside a caller-provided
 * arena with a hard ceiling (node count, nesting depth, total string bytes):
 * input over a ceiling is an error, never growth. Strings point into the arena,
 * not into the input, so the input buffer may be freed after decoding.
 *
 * Supported markers: number(0) boolean(1) string(2) object(3) null(5)
 * undefined(6) ecma-array(8) object-end(9) strict-array(10) date(11)
 * long-string(12). Others (movieclip, reference, xml, typed object, AMF3
 * switch) are a decode error AMF0_ERR_UNSUPPORTED. */
#ifndef INGEST_AMF0_H
#define INGEST_AMF0_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum amf0_type {
    AMF0_NUMBER, AMF0_BOOLEAN, AMF0_STRING, AMF0_OBJECT, AMF0_NULL,
    AMF0_UNDEFINED, AMF0_ECMA_ARRAY, AMF0_STRICT_ARRAY, AMF0_DATE,
};

struct amf0_value;
struct amf0_prop { const char *key; size_t key_len; struct amf0_value *value; };

struct amf0_value {
    enum amf0_type type;
    union {
        double number;                 /* NUMBER, DATE (ms) */
        bool boolean;
        struct { const char *ptr; size_t len; } str;      /* NUL-terminated too */
        struct { struct amf0_prop *props; size_t count; } obj;   /* OBJECT, ECMA_ARRAY */
        struct { struct amf0_value **items; size_t count; } arr; /* STRICT_ARRAY */
    } u;
};

enum amf0_err {
    AMF0_OK = 0, AMF0_ERR_TRUNCATED = -1, AMF0_ERR_UNSUPPORTED = -2,
    AMF0_ERR_TOO_DEEP = -3, AMF0_ERR_TOO_BIG = -4, AMF0_ERR_MALFORMED = -5,
};

/* At most this many containers (object, ECMA array, strict array) nest; the
 * next one is AMF0_ERR_TOO_DEEP. Top-level scalars are depth 0. */
#define AMF0_MAX_DEPTH 16

/* Arena: caller-owned storage for decoded values; reset by amf0_arena_reset. */
struct amf0_arena {
    uint8_t *mem;
    size_t cap, used;
};
void amf0_arena_init(struct amf0_arena *a, void *mem, size_t cap);
void amf0_arena_reset(struct amf0_arena *a);

/* Decodes up to max_values top-level values from buf[0..len) (an RTMP command
 * message is a sequence of values). Returns the number decoded (>= 0) or a
 * negative amf0_err. out[] receives pointers into the arena. Values already in
 * the arena stay (decoding appends); on error the arena holds partial garbage
 * until the caller resets it. The input is not referenced after the call.
 * Ceilings: the arena size bounds all strings, nodes and property arrays
 * (AMF0_ERR_TOO_BIG); a strict-array count larger than the bytes left is
 * AMF0_ERR_TRUNCATED before anything is reserved; ECMA array counts are
 * advisory (ignored), and an ECMA array may end at the end of the message
 * without its object-end marker; an object must have its end marker. An
 * object-end marker outside a property list is AMF0_ERR_MALFORMED. */
int amf0_decode_all(const uint8_t *buf, size_t len, struct amf0_arena *a,
                    struct amf0_value **out, int max_values);

/* Lookup helpers: NULL if absent or not an object/ecma array. */
const struct amf0_value *amf0_get(const struct amf0_value *obj, const char *key);
const char *amf0_get_string(const struct amf0_value *obj, const char *key);
bool amf0_get_number(const struct amf0_value *obj, const char *key, double *out);

/* Encoder into a caller buffer: each returns the new write position, or NULL
 * if it would pass `end` (the writer then stops; check the final pointer).
 * A NULL p is passed through as NULL, so calls can be chained. */
uint8_t *amf0_put_number(uint8_t *p, const uint8_t *end, double v);
uint8_t *amf0_put_bool(uint8_t *p, const uint8_t *end, bool v);
/* Strings longer than 65535 bytes are written as long strings (marker 12). */
uint8_t *amf0_put_string(uint8_t *p, const uint8_t *end, const char *s);
uint8_t *amf0_put_string_len(uint8_t *p, const uint8_t *end, const char *s, size_t len);
uint8_t *amf0_put_null(uint8_t *p, const uint8_t *end);
uint8_t *amf0_put_undefined(uint8_t *p, const uint8_t *end);
uint8_t *amf0_put_object_start(uint8_t *p, const uint8_t *end);
uint8_t *amf0_put_ecma_array_start(uint8_t *p, const uint8_t *end, uint32_t count);
/* A key inside an object/ecma array; follow with a put_* for the value.
 * Empty keys are refused (NULL): they would read as the object end. */
uint8_t *amf0_put_key(uint8_t *p, const uint8_t *end, const char *key);
uint8_t *amf0_put_object_end(uint8_t *p, const uint8_t *end);

#endif
