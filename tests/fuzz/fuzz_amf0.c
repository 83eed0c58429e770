/* fuzz_amf0.c — libFuzzer target for the AMF0 decoder (ingest/amf0.c).
 *
 * Decodes the input with a small and a large arena and walks every value,
 * touching each string and property so ASan sees any pointer that escaped
 * the arena. Invariants: the arena never reports more use than its
 * capacity; every string is NUL-terminated at its length; container counts
 * are consistent with their arrays. Successful decodes are re-encoded with
 * the amf0_put_* helpers and decoded again: the second tree must match.
 * Seeds: tests/fuzz/corpus/amf0 (real FFmpeg/librtmp connect, onMetaData). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/amf0.h"

static _Alignas(16) uint8_t small_mem[512];
static _Alignas(16) uint8_t big_mem[1 << 16];
static uint8_t enc_buf[1 << 17];

static void walk(const struct amf0_value *v, int depth)
{
    if (!v || depth > AMF0_MAX_DEPTH + 1)
        abort();
    volatile uint8_t sink = 0;
    switch (v->type) {
    case AMF0_STRING:
        if (v->u.str.ptr[v->u.str.len] != '\0')
            abort();
        for (size_t i = 0; i < v->u.str.len; i++)
            sink ^= (uint8_t)v->u.str.ptr[i];
        break;
    case AMF0_OBJECT:
    case AMF0_ECMA_ARRAY:
        if (v->u.obj.count && !v->u.obj.props)
            abort();
        for (size_t i = 0; i < v->u.obj.count; i++) {
            const struct amf0_prop *p = &v->u.obj.props[i];
            if (p->key[p->key_len] != '\0')
                abort();
            walk(p->value, depth + 1);
        }
        break;
    case AMF0_STRICT_ARRAY:
        for (size_t i = 0; i < v->u.arr.count; i++)
            walk(v->u.arr.items[i], depth + 1);
        break;
    default:
        break;
    }
    (void)sink;
}

/* Re-encodes v; NULL when the tree holds something the encoder cannot
 * express (empty keys, strict arrays, dates, undefined inside). */
static uint8_t *encode(uint8_t *p, const uint8_t *end, const struct amf0_value *v)
{
    switch (v->type) {
    case AMF0_NUMBER: return amf0_put_number(p, end, v->u.number);
    case AMF0_BOOLEAN: return amf0_put_bool(p, end, v->u.boolean);
    case AMF0_STRING: return amf0_put_string_len(p, end, v->u.str.ptr, v->u.str.len);
    case AMF0_NULL: return amf0_put_null(p, end);
    case AMF0_UNDEFINED: return amf0_put_undefined(p, end);
    case AMF0_OBJECT:
    case AMF0_ECMA_ARRAY:
        p = v->type == AMF0_OBJECT ? amf0_put_object_start(p, end)
                                   : amf0_put_ecma_array_start(p, end, (uint32_t)v->u.obj.count);
        for (size_t i = 0; i < v->u.obj.count && p; i++) {
            const struct amf0_prop *pr = &v->u.obj.props[i];
            if (pr->key_len == 0 || strlen(pr->key) != pr->key_len)
                return NULL;
            p = amf0_put_key(p, end, pr->key);
            if (p)
                p = encode(p, end, pr->value);
        }
        return amf0_put_object_end(p, end);
    default:
        return NULL;
    }
}

static int same(const struct amf0_value *a, const struct amf0_value *b)
{
    if (a->type != b->type)
        return 0;
    switch (a->type) {
    case AMF0_NUMBER:
        return memcmp(&a->u.number, &b->u.number, sizeof a->u.number) == 0;
    case AMF0_BOOLEAN:
        return a->u.boolean == b->u.boolean;
    case AMF0_STRING:
        return a->u.str.len == b->u.str.len && memcmp(a->u.str.ptr, b->u.str.ptr, a->u.str.len) == 0;
    case AMF0_OBJECT:
    case AMF0_ECMA_ARRAY:
        if (a->u.obj.count != b->u.obj.count)
            return 0;
        for (size_t i = 0; i < a->u.obj.count; i++) {
            const struct amf0_prop *x = &a->u.obj.props[i], *y = &b->u.obj.props[i];
            if (x->key_len != y->key_len || memcmp(x->key, y->key, x->key_len) != 0 || !same(x->value, y->value))
                return 0;
        }
        return 1;
    default:
        return 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct amf0_arena a;
    struct amf0_value *v[16];

    amf0_arena_init(&a, small_mem, sizeof small_mem);
    int n = amf0_decode_all(data, size, &a, v, 16);
    if (a.used > a.cap)
        abort();
    for (int i = 0; i < n; i++)
        walk(v[i], 0);

    amf0_arena_init(&a, big_mem, sizeof big_mem);
    n = amf0_decode_all(data, size, &a, v, 16);
    if (a.used > a.cap)
        abort();
    if (n < AMF0_ERR_MALFORMED || n > 16)
        abort();
    for (int i = 0; i < n; i++)
        walk(v[i], 0);

    /* round trip */
    uint8_t *p = enc_buf, *end = enc_buf + sizeof enc_buf;
    for (int i = 0; i < n && p; i++)
        p = encode(p, end, v[i]);
    if (n > 0 && p) {
        static _Alignas(16) uint8_t mem2[1 << 17];
        struct amf0_arena a2;
        struct amf0_value *w[16];
        amf0_arena_init(&a2, mem2, sizeof mem2);
        int m = amf0_decode_all(enc_buf, (size_t)(p - enc_buf), &a2, w, 16);
        if (m != n)
            abort();
        for (int i = 0; i < n; i++)
            if (!same(v[i], w[i]))
                abort();
    }
    /* lookups on whatever came out */
    for (int i = 0; i < n; i++) {
        double d;
        (void)amf0_get_string(v[i], "app");
        (void)amf0_get_number(v[i], "width", &d);
    }
    return 0;
}
