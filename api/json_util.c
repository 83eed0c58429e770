/* json_util.c — pure value rules of the admin API (see json_util.h). */
#include "api/json_util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ju_fail(struct ju_error *e, int status, const char *code, const char *field, const char *fmt,
            ...)
{
    e->status = status;
    snprintf(e->code, sizeof e->code, "%s", code);
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return -1;
}

json_t *ju_error_json(const struct ju_error *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "errorCode", json_string(e->code));
    json_object_set_new(o, "message", json_string(e->message));
    if (e->field[0])
        json_object_set_new(o, "field", json_string(e->field));
    return o;
}

/* --- times ------------------------------------------------------------ */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned dm[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dm[m - 1];
}

int ju_format_time_us(int64_t us, char out[JU_TIME_LEN])
{
    int64_t secs = us / 1000000, frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs--;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 1 || y > 9999) {
        out[0] = 0;
        return -1;
    }
    char tmp[96]; /* wide enough for any int, so no truncation warning */
    snprintf(tmp, sizeof tmp, "%04d-%02u-%02uT%02d:%02d:%02d.%06dZ", (int)y, m, d,
             (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (int)frac);
    snprintf(out, JU_TIME_LEN, "%.*s", JU_TIME_LEN - 1, tmp);
    return 0;
}

/* Reads exactly n digits at *p. */
static int digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return -1;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return 0;
}

int ju_parse_time(const char *s, int64_t *us)
{
    if (!s)
        return -1;
    const char *p = s;
    int y, mo, d, h, mi, sec = 0, frac = 0;
    if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
        digits(&p, 2, &d))
        return -1;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return -1;
    p++;
    if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi))
        return -1;
    if (*p == ':') {
        p++;
        if (digits(&p, 2, &sec))
            return -1;
        if (*p == '.' || *p == ',') {
            p++;
            int n = 0;
            while (isdigit((unsigned char)*p)) {
                if (n < 6)
                    frac = frac * 10 + (*p - '0');
                n++;
                p++;
            }
            if (n == 0)
                return -1;
            for (; n < 6; n++)
                frac *= 10;
        }
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om = 0;
        p++;
        if (digits(&p, 2, &oh))
            return -1;
        if (*p == ':') {
            p++;
            if (digits(&p, 2, &om))
                return -1;
        } else if (isdigit((unsigned char)*p)) {
            if (digits(&p, 2, &om))
                return -1;
        }
        if (oh > 23 || om > 59)
            return -1;
        offset_min = sign * (oh * 60 + om);
    } else {
        return -1; /* a time without a zone is ambiguous */
    }
    if (*p)
        return -1;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || (unsigned)d > days_in_month(y, (unsigned)mo) ||
        h > 23 || mi > 59 || sec > 59)
        return -1;
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t t = days * 86400 + h * 3600 + mi * 60 + sec - (int64_t)offset_min * 60;
    *us = t * 1000000 + frac;
    /* The result must still be a representable year after the offset. */
    char check[JU_TIME_LEN];
    return ju_format_time_us(*us, check);
}

/* --- ids and numbers ---------------------------------------------------- */

bool ju_parse_id(const char *s, int64_t *out)
{
    if (!s || !*s || strlen(s) > 19)
        return false;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        int dgt = *p - '0';
        if (v > (INT64_MAX - dgt) / 10)
            return false;
        v = v * 10 + dgt;
    }
    if (v <= 0)
        return false;
    *out = v;
    return true;
}

int ju_parse_query_int(const char *value, const char *name, int64_t min, int64_t max,
                       int64_t *out, struct ju_error *e)
{
    const char *p = value;
    bool neg = *p == '-';
    if (*p == '-' || *p == '+')
        p++;
    if (!*p || strlen(p) > 19)
        goto bad;
    int64_t v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            goto bad;
        int dgt = *p - '0';
        if (v > (INT64_MAX - dgt) / 10)
            goto bad;
        v = v * 10 + dgt;
    }
    if (neg)
        v = -v;
    if (v < min || v > max)
        return ju_fail(e, 400, "INVALID_PARAMETER", name, "%s must be between %" PRId64
                       " and %" PRId64, name, min, max);
    *out = v;
    return 0;
bad:
    return ju_fail(e, 400, "INVALID_PARAMETER", name, "%s must be an integer", name);
}

/* --- paging ------------------------------------------------------------- */

static const char *const sort_names[] = {
    "CREATED_AT_DESC", "CREATED_AT_ASC", "LAST_MODIFIED_AT_DESC", "LAST_MODIFIED_AT_ASC",
    "APP_USER_ID_ASC", "APP_USER_ID_DESC", NULL,
};

int ju_parse_page(const char *page, const char *page_size, const char *sort_by,
                  bool allow_app_user_id, struct ju_page *out, struct ju_error *e)
{
    out->page = 0;
    out->page_size = JU_PAGE_SIZE_DEFAULT;
    out->sort = JU_SORT_CREATED_AT_DESC;
    int64_t v;
    if (page) {
        if (ju_parse_query_int(page, "page", 0, JU_PAGE_MAX, &v, e) != 0)
            return -1;
        out->page = v;
    }
    if (page_size) {
        if (ju_parse_query_int(page_size, "pageSize", 1, JU_PAGE_SIZE_MAX, &v, e) != 0)
            return -1;
        out->page_size = (int)v;
    }
    if (sort_by) {
        int i = ju_enum_index(sort_by, sort_names);
        if (i < 0 || (!allow_app_user_id && i >= JU_SORT_APP_USER_ID_ASC))
            return ju_fail(e, 400, "INVALID_PARAMETER", "sortBy",
                           "sortBy must be one of CREATED_AT_ASC, CREATED_AT_DESC, "
                           "LAST_MODIFIED_AT_ASC, LAST_MODIFIED_AT_DESC%s",
                           allow_app_user_id ? ", APP_USER_ID_ASC, APP_USER_ID_DESC" : "");
        out->sort = (enum ju_sort)i;
    }
    return 0;
}

const char *ju_sort_sql(enum ju_sort sort, const char *alias)
{
    /* Fixed strings per alias; the id breaks ties so pages never overlap. */
#define JU_SORTS(a)                                                                        \
    {                                                                                      \
        a ".created_at DESC, " a ".id DESC", a ".created_at ASC, " a ".id ASC",           \
            a ".last_modified_at DESC, " a ".id DESC",                                     \
            a ".last_modified_at ASC, " a ".id ASC", "m.app_user_id ASC, m.id ASC",        \
            "m.app_user_id DESC, m.id DESC"                                                \
    }
    static const char *const by_m[] = JU_SORTS("m");
    static const char *const by_r[] = JU_SORTS("r");
    static const char *const by_k[] = JU_SORTS("k");
#undef JU_SORTS
    if ((int)sort < 0 || sort > JU_SORT_APP_USER_ID_DESC)
        sort = JU_SORT_CREATED_AT_DESC;
    if (alias && strcmp(alias, "r") == 0)
        return by_r[sort];
    if (alias && strcmp(alias, "k") == 0)
        return by_k[sort];
    return by_m[sort];
}

static json_t *sort_json(void)
{
    return json_pack("{s:b, s:b, s:b}", "empty", 0, "sorted", 1, "unsorted", 0);
}

json_t *ju_page_json(json_t *content, int64_t total, const struct ju_page *p)
{
    int64_t n = (int64_t)json_array_size(content);
    int64_t pages = total == 0 ? 0 : (total + p->page_size - 1) / p->page_size;
    json_t *o = json_object();
    json_object_set_new(o, "content", content);
    json_t *pageable = json_object();
    json_object_set_new(pageable, "sort", sort_json());
    json_object_set_new(pageable, "offset", json_integer(p->page * p->page_size));
    json_object_set_new(pageable, "pageNumber", json_integer(p->page));
    json_object_set_new(pageable, "pageSize", json_integer(p->page_size));
    json_object_set_new(pageable, "paged", json_true());
    json_object_set_new(pageable, "unpaged", json_false());
    json_object_set_new(o, "pageable", pageable);
    json_object_set_new(o, "last", json_boolean(p->page + 1 >= pages));
    json_object_set_new(o, "totalPages", json_integer(pages));
    json_object_set_new(o, "totalElements", json_integer(total));
    json_object_set_new(o, "size", json_integer(p->page_size));
    json_object_set_new(o, "number", json_integer(p->page));
    json_object_set_new(o, "sort", sort_json());
    json_object_set_new(o, "first", json_boolean(p->page == 0));
    json_object_set_new(o, "numberOfElements", json_integer(n));
    json_object_set_new(o, "empty", json_boolean(n == 0));
    return o;
}

/* --- typed fields ------------------------------------------------------- */

static const char *lbl(const char *key, const char *label) { return label ? label : key; }

int ju_get_string(json_t *obj, const char *key, const char *label, size_t max_chars,
                  enum ju_presence *st, const char **out, struct ju_error *e)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v) {
        *st = JU_ABSENT;
        return 0;
    }
    if (json_is_null(v)) {
        *st = JU_NULL;
        return 0;
    }
    if (!json_is_string(v))
        return ju_fail(e, 400, "INVALID_PARAMETER", lbl(key, label), "%s must be a string",
                       lbl(key, label));
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    /* jansson guarantees UTF-8; NUL only with JSON_ALLOW_NUL, checked anyway. */
    if (strlen(s) != n || !ju_utf8_valid(s, n))
        return ju_fail(e, 400, "INVALID_PARAMETER", lbl(key, label),
                       "%s must be valid UTF-8 text without NUL", lbl(key, label));
    if (ju_utf8_len(s, n) > max_chars)
        return ju_fail(e, 400, "INVALID_PARAMETER", lbl(key, label),
                       "%s must be at most %zu characters", lbl(key, label), max_chars);
    *st = JU_SET;
    *out = s;
    return 0;
}

int ju_get_bool(json_t *obj, const char *key, const char *label, enum ju_presence *st, bool *out,
                struct ju_error *e)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *st = JU_ABSENT;
        return 0;
    }
    if (json_is_null(v)) {
        *st = JU_NULL;
        return 0;
    }
    if (!json_is_boolean(v))
        return ju_fail(e, 400, "INVALID_PARAMETER", lbl(key, label), "%s must be a boolean",
                       lbl(key, label));
    *st = JU_SET;
    *out = json_is_true(v);
    return 0;
}

int ju_get_int(json_t *obj, const char *key, const char *label, int64_t min, int64_t max,
               enum ju_presence *st, int64_t *out, struct ju_error *e)
{
    json_t *v = json_object_get(obj, key);
    if (!v) {
        *st = JU_ABSENT;
        return 0;
    }
    if (json_is_null(v)) {
        *st = JU_NULL;
        return 0;
    }
    if (!json_is_integer(v))
        return ju_fail(e, 400, "INVALID_PARAMETER", lbl(key, label), "%s must be an integer",
                       lbl(key, label));
    json_int_t n = json_integer_value(v);
    if (n < min || n > max)
        return ju_fail(e, 400, "INVALID_PARAMETER", lbl(key, label),
                       "%s must be between %" PRId64 " and %" PRId64, lbl(key, label), min, max);
    *st = JU_SET;
    *out = n;
    return 0;
}

int ju_enum_index(const char *value, const char *const *allowed)
{
    if (!value)
        return -1;
    for (int i = 0; allowed[i]; i++)
        if (strcmp(value, allowed[i]) == 0)
            return i;
    return -1;
}

static bool is_scalar(const json_t *v) { return !json_is_object(v) && !json_is_array(v); }

int ju_validate_metadata(const json_t *v, struct ju_error *e)
{
    if (!json_is_object(v))
        return ju_fail(e, 400, "INVALID_PARAMETER", "metadata", "metadata must be a JSON object");
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)v, key, val) {
        if (is_scalar(val))
            continue;
        if (json_is_object(val)) {
            const char *k2;
            json_t *v2;
            json_object_foreach(val, k2, v2) {
                if (!is_scalar(v2))
                    return ju_fail(e, 400, "INVALID_PARAMETER", "metadata",
                                   "metadata.%.64s.%.64s: only one level of nesting is allowed",
                                   key, k2);
            }
        } else {
            size_t i;
            json_t *v2;
            json_array_foreach(val, i, v2) {
                if (!is_scalar(v2))
                    return ju_fail(e, 400, "INVALID_PARAMETER", "metadata",
                                   "metadata.%.64s[%zu]: only one level of nesting is allowed",
                                   key, i);
            }
        }
    }
    return 0;
}

/* --- SQL text ------------------------------------------------------------ */

void ju_query_init(struct ju_query *q, const char *sql)
{
    memset(q, 0, sizeof *q);
    if (snprintf(q->sql, sizeof q->sql, "%s", sql) >= (int)sizeof q->sql)
        q->overflow = true;
}

void ju_query_add(struct ju_query *q, const char *fragment, const char *value)
{
    const char *mark = strstr(fragment, "$?");
    size_t len = strlen(q->sql);
    int w;
    if (!mark) {
        w = snprintf(q->sql + len, sizeof q->sql - len, "%s", fragment);
    } else {
        if (q->n >= JU_QUERY_MAX_PARAMS) {
            q->overflow = true;
            return;
        }
        q->params[q->n++] = value;
        w = snprintf(q->sql + len, sizeof q->sql - len, "%.*s$%d%s", (int)(mark - fragment),
                     fragment, q->n, mark + 2);
    }
    if (w < 0 || (size_t)w >= sizeof q->sql - len)
        q->overflow = true;
}

const char *ju_query_i64(struct ju_query *q, int64_t v)
{
    /* one slot per parameter position: the next parameter's */
    int slot = q->n < JU_QUERY_MAX_PARAMS ? q->n : JU_QUERY_MAX_PARAMS - 1;
    snprintf(q->nums[slot], sizeof q->nums[slot], "%" PRId64, v);
    return q->nums[slot];
}

/* --- result columns ------------------------------------------------------ */

json_t *ju_col_string(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return json_null();
    const char *v = PQgetvalue(r, row, col);
    json_t *s = json_stringn(v, (size_t)PQgetlength(r, row, col));
    return s ? s : json_null();
}

json_t *ju_col_int(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return json_null();
    return json_integer(strtoll(PQgetvalue(r, row, col), NULL, 10));
}

json_t *ju_col_bool(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return json_null();
    return json_boolean(PQgetvalue(r, row, col)[0] == 't');
}

json_t *ju_col_json(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return json_null();
    json_t *v = json_loadb(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col),
                           JSON_DECODE_ANY, NULL);
    return v ? v : json_null();
}

/* --- text ---------------------------------------------------------------- */

bool ju_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        }
        int len;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + (size_t)len > n)
            return false;
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += (size_t)len;
    }
    return true;
}

size_t ju_utf8_len(const char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            count++;
    return count;
}

bool ju_is_blank(const char *s)
{
    if (!s)
        return true;
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return false;
    return true;
}
