/* amf0.c — bounded AMF0 decoder and encoder.
 *
 * Implements the AMF0 wire format of the "Action Message Format -- AMF 0"
 * specification (Adobe, 2007), §2.2-§2.14, as used by RTMP command and data
 * messages (SPEC ING-3).
 *
 * Memory: everything the decoder produces lives in the caller's arena. The
 * arena is used from both ends: finished values, strings and property arrays
 * are bump-allocated from the bottom; while an object is being read, its
 * (key, value) pairs are pushed on a scratch stack that grows down from the
 * top, and when the object-end marker arrives they are copied to one
 * contiguous array at the bottom and the scratch is popped. So an object's
 * property count never has to be known in advance (ECMA array counts lie in
 * practice) and nothing ever grows past the arena: a full arena is
 * AMF0_ERR_TOO_BIG.
 *
 * Recursion is bounded by AMF0_MAX_DEPTH nested containers. */
#include "ingest/amf0.h"

#include <string.h>

#include "core/bytes.h"

/* AMF0 type markers, AMF0 spec §2.1. */
enum {
    M_NUMBER = 0x00, M_BOOLEAN = 0x01, M_STRING = 0x02, M_OBJECT = 0x03,
    M_MOVIECLIP = 0x04, M_NULL = 0x05, M_UNDEFINED = 0x06, M_REFERENCE = 0x07,
    M_ECMA_ARRAY = 0x08, M_OBJECT_END = 0x09, M_STRICT_ARRAY = 0x0a,
    M_DATE = 0x0b, M_LONG_STRING = 0x0c, M_UNSUPPORTED = 0x0d,
    M_RECORDSET = 0x0e, M_XML = 0x0f, M_TYPED_OBJECT = 0x10, M_AVMPLUS = 0x11,
};

#define ALIGN_OF _Alignof(struct amf0_value)

struct dec {
    const uint8_t *p, *end;
    struct amf0_arena *a;
    size_t hi; /* bottom of the scratch stack (grows down from a->cap) */
};

void amf0_arena_init(struct amf0_arena *a, void *mem, size_t cap)
{
    a->mem = mem;
    a->cap = mem ? cap : 0;
    a->used = 0;
}

void amf0_arena_reset(struct amf0_arena *a) { a->used = 0; }

/* Bump allocation from the bottom, below the scratch stack. */
static void *arena_alloc(struct dec *d, size_t size, size_t align)
{
    struct amf0_arena *a = d->a;
    uintptr_t base = (uintptr_t)a->mem + a->used;
    size_t pad = (size_t)(-base & (uintptr_t)(align - 1));
    if (pad > d->hi - a->used || size > d->hi - a->used - pad)
        return NULL;
    void *r = a->mem + a->used + pad;
    a->used += pad + size;
    return r;
}

/* Pushes one pair on the scratch stack at the top of the arena. */
static struct amf0_prop *scratch_push(struct dec *d)
{
    struct amf0_arena *a = d->a;
    size_t sz = sizeof(struct amf0_prop);
    if (d->hi - a->used < sz + ALIGN_OF)
        return NULL;
    uintptr_t top = (uintptr_t)a->mem + d->hi - sz;
    top &= ~(uintptr_t)(_Alignof(struct amf0_prop) - 1);
    size_t nhi = (size_t)(top - (uintptr_t)a->mem);
    if (nhi < a->used)
        return NULL;
    d->hi = nhi;
    return (struct amf0_prop *)(a->mem + nhi);
}

/* Copies len bytes into the arena as a NUL-terminated string. */
static const char *arena_strdup(struct dec *d, const uint8_t *s, size_t len)
{
    if (len == SIZE_MAX)
        return NULL;
    char *r = arena_alloc(d, len + 1, 1);
    if (!r)
        return NULL;
    if (len)
        memcpy(r, s, len);
    r[len] = '\0';
    return r;
}

static size_t left(const struct dec *d) { return (size_t)(d->end - d->p); }

static double rd_double(const uint8_t *p)
{
    uint64_t bits = rd_be64(p);
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static int decode_value(struct dec *d, struct amf0_value **out, int depth);

/* Reads the UTF-8-empty key of §2.5 / §2.10 (u16 length + bytes). */
static int read_key(struct dec *d, const uint8_t **key, size_t *klen)
{
    if (left(d) < 2)
        return AMF0_ERR_TRUNCATED;
    size_t n = rd_be16(d->p);
    if (left(d) - 2 < n)
        return AMF0_ERR_TRUNCATED;
    *key = d->p + 2;
    *klen = n;
    d->p += 2 + n;
    return AMF0_OK;
}

/* Object (§2.5) and ECMA array (§2.10) bodies: property pairs up to the
 * object-end marker (empty key followed by 0x09). ECMA arrays announce a
 * count, which encoders get wrong; it is ignored, and an ECMA array that
 * simply runs to the end of the message without an end marker is accepted
 * (seen from some encoders in onMetaData). */
static int decode_props(struct dec *d, struct amf0_value *v, int depth, bool ecma)
{
    size_t hi0 = d->hi;
    size_t n = 0;
    int rc;
    for (;;) {
        if (ecma && left(d) == 0)
            break;
        const uint8_t *key;
        size_t klen;
        if ((rc = read_key(d, &key, &klen)) < 0)
            return rc;
        if (klen == 0) {
            if (left(d) < 1)
                return AMF0_ERR_TRUNCATED;
            if (*d->p == M_OBJECT_END) {
                d->p++;
                break;
            }
        }
        struct amf0_prop *pr = scratch_push(d);
        if (!pr)
            return AMF0_ERR_TOO_BIG;
        pr->key = arena_strdup(d, key, klen);
        if (!pr->key)
            return AMF0_ERR_TOO_BIG;
        pr->key_len = klen;
        pr->value = NULL;
        if ((rc = decode_value(d, &pr->value, depth + 1)) < 0)
            return rc;
        n++;
    }
    /* The pairs sit at [hi, hi0) in reverse order; copy them down. */
    struct amf0_prop *arr = NULL;
    if (n) {
        arr = arena_alloc(d, n * sizeof *arr, _Alignof(struct amf0_prop));
        if (!arr)
            return AMF0_ERR_TOO_BIG;
        const struct amf0_prop *src = (const struct amf0_prop *)(d->a->mem + d->hi);
        for (size_t i = 0; i < n; i++)
            arr[i] = src[n - 1 - i];
    }
    d->hi = hi0;
    v->u.obj.props = arr;
    v->u.obj.count = n;
    return AMF0_OK;
}

/* Strict array, §2.12: u32 count then that many values. The count is checked
 * against the bytes left (each value takes at least one) before anything is
 * allocated, so a lying count cannot reserve memory. */
static int decode_strict_array(struct dec *d, struct amf0_value *v, int depth)
{
    if (left(d) < 4)
        return AMF0_ERR_TRUNCATED;
    uint32_t count = rd_be32(d->p);
    d->p += 4;
    if (count > left(d))
        return AMF0_ERR_TRUNCATED;
    struct amf0_value **items = NULL;
    if (count) {
        items = arena_alloc(d, (size_t)count * sizeof *items, _Alignof(struct amf0_value *));
        if (!items)
            return AMF0_ERR_TOO_BIG;
        memset(items, 0, (size_t)count * sizeof *items);
    }
    v->u.arr.items = items;
    v->u.arr.count = 0;
    for (uint32_t i = 0; i < count; i++) {
        int rc = decode_value(d, &items[i], depth + 1);
        if (rc < 0)
            return rc;
        v->u.arr.count++;
    }
    return AMF0_OK;
}

/* One value at d->p. depth counts enclosing containers (top level = 0). */
static int decode_value(struct dec *d, struct amf0_value **out, int depth)
{
    if (left(d) < 1)
        return AMF0_ERR_TRUNCATED;
    uint8_t marker = *d->p;
    switch (marker) {
    case M_MOVIECLIP: case M_REFERENCE: case M_UNSUPPORTED: case M_RECORDSET:
    case M_XML: case M_TYPED_OBJECT: case M_AVMPLUS:
        return AMF0_ERR_UNSUPPORTED;
    case M_OBJECT_END:
        return AMF0_ERR_MALFORMED; /* only valid after an empty key */
    case M_NUMBER: case M_BOOLEAN: case M_STRING: case M_OBJECT: case M_NULL:
    case M_UNDEFINED: case M_ECMA_ARRAY: case M_STRICT_ARRAY: case M_DATE:
    case M_LONG_STRING:
        break;
    default:
        return AMF0_ERR_MALFORMED; /* not an AMF0 marker at all */
    }
    bool container = marker == M_OBJECT || marker == M_ECMA_ARRAY || marker == M_STRICT_ARRAY;
    if (container && depth >= AMF0_MAX_DEPTH)
        return AMF0_ERR_TOO_DEEP;
    d->p++;

    struct amf0_value *v = arena_alloc(d, sizeof *v, ALIGN_OF);
    if (!v)
        return AMF0_ERR_TOO_BIG;
    memset(v, 0, sizeof *v);
    *out = v;

    switch (marker) {
    case M_NUMBER: /* §2.2: IEEE-754 double, big-endian */
        if (left(d) < 8)
            return AMF0_ERR_TRUNCATED;
        v->type = AMF0_NUMBER;
        v->u.number = rd_double(d->p);
        d->p += 8;
        return AMF0_OK;
    case M_BOOLEAN: /* §2.3 */
        if (left(d) < 1)
            return AMF0_ERR_TRUNCATED;
        v->type = AMF0_BOOLEAN;
        v->u.boolean = *d->p++ != 0;
        return AMF0_OK;
    case M_STRING: /* §2.4: u16 length */
    case M_LONG_STRING: { /* §2.14: u32 length */
        size_t hdr = marker == M_STRING ? 2 : 4;
        if (left(d) < hdr)
            return AMF0_ERR_TRUNCATED;
        size_t n = marker == M_STRING ? rd_be16(d->p) : rd_be32(d->p);
        d->p += hdr;
        if (n > left(d))
            return AMF0_ERR_TRUNCATED;
        v->type = AMF0_STRING;
        v->u.str.ptr = arena_strdup(d, d->p, n);
        if (!v->u.str.ptr)
            return AMF0_ERR_TOO_BIG;
        v->u.str.len = n;
        d->p += n;
        return AMF0_OK;
    }
    case M_NULL: /* §2.7 */
        v->type = AMF0_NULL;
        return AMF0_OK;
    case M_UNDEFINED: /* §2.8 */
        v->type = AMF0_UNDEFINED;
        return AMF0_OK;
    case M_OBJECT:
        v->type = AMF0_OBJECT;
        return decode_props(d, v, depth, false);
    case M_ECMA_ARRAY:
        if (left(d) < 4)
            return AMF0_ERR_TRUNCATED;
        d->p += 4; /* associative-count: advisory only */
        v->type = AMF0_ECMA_ARRAY;
        return decode_props(d, v, depth, true);
    case M_STRICT_ARRAY:
        v->type = AMF0_STRICT_ARRAY;
        return decode_strict_array(d, v, depth);
    case M_DATE: /* §2.13: double ms since epoch + s16 time zone (ignored) */
        if (left(d) < 10)
            return AMF0_ERR_TRUNCATED;
        v->type = AMF0_DATE;
        v->u.number = rd_double(d->p);
        d->p += 10;
        return AMF0_OK;
    }
    return AMF0_ERR_MALFORMED;
}

int amf0_decode_all(const uint8_t *buf, size_t len, struct amf0_arena *a,
                    struct amf0_value **out, int max_values)
{
    if (!a || (!buf && len) || (!out && max_values > 0))
        return AMF0_ERR_MALFORMED;
    if (a->used > a->cap)
        return AMF0_ERR_TOO_BIG;
    struct dec d = { .p = buf, .end = buf + len, .a = a, .hi = a->cap };
    int n = 0;
    while (n < max_values && d.p < d.end) {
        out[n] = NULL;
        int rc = decode_value(&d, &out[n], 0);
        if (rc < 0)
            return rc;
        n++;
    }
    return n;
}

const struct amf0_value *amf0_get(const struct amf0_value *obj, const char *key)
{
    if (!obj || !key || (obj->type != AMF0_OBJECT && obj->type != AMF0_ECMA_ARRAY))
        return NULL;
    size_t klen = strlen(key);
    for (size_t i = 0; i < obj->u.obj.count; i++) {
        const struct amf0_prop *p = &obj->u.obj.props[i];
        if (p->key_len == klen && memcmp(p->key, key, klen) == 0)
            return p->value;
    }
    return NULL;
}

const char *amf0_get_string(const struct amf0_value *obj, const char *key)
{
    const struct amf0_value *v = amf0_get(obj, key);
    return v && v->type == AMF0_STRING ? v->u.str.ptr : NULL;
}

bool amf0_get_number(const struct amf0_value *obj, const char *key, double *out)
{
    const struct amf0_value *v = amf0_get(obj, key);
    if (!v || v->type != AMF0_NUMBER)
        return false;
    if (out)
        *out = v->u.number;
    return true;
}

/* ---- encoder ------------------------------------------------------------ */

static bool room(const uint8_t *p, const uint8_t *end, size_t n)
{
    return p && end && p <= end && (size_t)(end - p) >= n;
}

uint8_t *amf0_put_number(uint8_t *p, const uint8_t *end, double v)
{
    if (!room(p, end, 9))
        return NULL;
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    p[0] = M_NUMBER;
    wr_be64(p + 1, bits);
    return p + 9;
}

uint8_t *amf0_put_bool(uint8_t *p, const uint8_t *end, bool v)
{
    if (!room(p, end, 2))
        return NULL;
    p[0] = M_BOOLEAN;
    p[1] = v ? 1 : 0;
    return p + 2;
}

uint8_t *amf0_put_string_len(uint8_t *p, const uint8_t *end, const char *s, size_t len)
{
    if (!s && len)
        return NULL;
    if (len <= 0xffff) {
        if (!room(p, end, 3) || (size_t)(end - p) - 3 < len)
            return NULL;
        p[0] = M_STRING;
        wr_be16(p + 1, (uint16_t)len);
        p += 3;
    } else {
        if (len > 0xffffffffu || !room(p, end, 5) || (size_t)(end - p) - 5 < len)
            return NULL;
        p[0] = M_LONG_STRING;
        wr_be32(p + 1, (uint32_t)len);
        p += 5;
    }
    if (len)
        memcpy(p, s, len);
    return p + len;
}

uint8_t *amf0_put_string(uint8_t *p, const uint8_t *end, const char *s)
{
    if (!s)
        return NULL;
    return amf0_put_string_len(p, end, s, strlen(s));
}

uint8_t *amf0_put_null(uint8_t *p, const uint8_t *end)
{
    if (!room(p, end, 1))
        return NULL;
    p[0] = M_NULL;
    return p + 1;
}

uint8_t *amf0_put_undefined(uint8_t *p, const uint8_t *end)
{
    if (!room(p, end, 1))
        return NULL;
    p[0] = M_UNDEFINED;
    return p + 1;
}

uint8_t *amf0_put_object_start(uint8_t *p, const uint8_t *end)
{
    if (!room(p, end, 1))
        return NULL;
    p[0] = M_OBJECT;
    return p + 1;
}

uint8_t *amf0_put_ecma_array_start(uint8_t *p, const uint8_t *end, uint32_t count)
{
    if (!room(p, end, 5))
        return NULL;
    p[0] = M_ECMA_ARRAY;
    wr_be32(p + 1, count);
    return p + 5;
}

uint8_t *amf0_put_key(uint8_t *p, const uint8_t *end, const char *key)
{
    if (!key)
        return NULL;
    size_t n = strlen(key);
    /* An empty key would read as the object-end sequence's first half. */
    if (n == 0 || n > 0xffff || !room(p, end, 2) || (size_t)(end - p) - 2 < n)
        return NULL;
    wr_be16(p, (uint16_t)n);
    memcpy(p + 2, key, n);
    return p + 2 + n;
}

uint8_t *amf0_put_object_end(uint8_t *p, const uint8_t *end)
{
    if (!room(p, end, 3))
        return NULL;
    p[0] = 0;
    p[1] = 0;
    p[2] = M_OBJECT_END;
    return p + 3;
}
