/* json_util.h — the admin API's value rules as pure functions (SPEC §6):
 * ISO-8601 times, numeric ids, paging (`page`, `pageSize`, `sortBy`) and the
 * seed's paged-list shape, typed field readers that name the field in their
 * error, the metadata nesting rule and UTF-8 checks.
 *
 * Nothing here touches the network or the database, so the unit tests and the
 * fuzzer (tests/fuzz/fuzz_api_body.c) call these directly. Errors are written
 * to a caller-owned `struct ju_error` (HTTP status, seed error code, message). */
#ifndef API_JSON_UTIL_H
#define API_JSON_UTIL_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JU_TIME_LEN 32 /* "2022-10-19T06:41:09.865054Z" + NUL, with room */

struct ju_error {
    int status;       /* 0 = no error */
    char code[48];    /* "INVALID_PARAMETER", "MEMBER_NOT_FOUND", ... */
    char field[64];   /* the offending field, "" when none */
    char message[320];
};

/* Fills e and returns -1 (so validators can `return ju_fail(...)`). */
int ju_fail(struct ju_error *e, int status, const char *code, const char *field, const char *fmt,
            ...) __attribute__((format(printf, 5, 6)));
/* {"errorCode", "message"[, "field"]} — the body of an API error. New reference. */
json_t *ju_error_json(const struct ju_error *e);

/* --- times (UTC, microseconds) --------------------------------------- */
/* Formats µs since the epoch as "YYYY-MM-DDTHH:MM:SS.ffffffZ". 0 or -1 (year
 * outside 1..9999). */
int ju_format_time_us(int64_t us, char out[JU_TIME_LEN]);
/* Parses ISO-8601 "YYYY-MM-DDTHH:MM[:SS[.fraction]](Z|±HH:MM|±HHMM|±HH)"
 * (a space instead of T is accepted; fraction digits beyond 6 are
 * truncated). Calendar-checked (no Feb 30, no hour 24). 0 or -1. */
int ju_parse_time(const char *s, int64_t *us);

/* --- ids and numbers ---------------------------------------------------- */
/* A path id: 1..19 decimal digits, 1..INT64_MAX, nothing else. */
bool ju_parse_id(const char *s, int64_t *out);
/* A query-string integer in [min, max]; `name` is the field for the error. */
int ju_parse_query_int(const char *value, const char *name, int64_t min, int64_t max,
                       int64_t *out, struct ju_error *e);

/* --- paging (SPEC §6: page zero-based, pageSize ≤ 100, sortBy) -------- */
enum ju_sort {
    JU_SORT_CREATED_AT_DESC = 0, /* default */
    JU_SORT_CREATED_AT_ASC,
    JU_SORT_LAST_MODIFIED_AT_DESC,
    JU_SORT_LAST_MODIFIED_AT_ASC,
    JU_SORT_APP_USER_ID_ASC,     /* members (and stream keys) only */
    JU_SORT_APP_USER_ID_DESC,
};
#define JU_PAGE_SIZE_DEFAULT 10
#define JU_PAGE_SIZE_MAX 100
#define JU_PAGE_MAX 10000000

struct ju_page {
    int64_t page;
    int page_size;
    enum ju_sort sort;
};
/* Any argument may be NULL (absent). allow_app_user_id admits the
 * APP_USER_ID_* sorts. 0 or -1 with 400 INVALID_PARAMETER naming the field. */
int ju_parse_page(const char *page, const char *page_size, const char *sort_by,
                  bool allow_app_user_id, struct ju_page *out, struct ju_error *e);
/* "ORDER BY" body for a sort, columns qualified with `alias.` — a fixed
 * string, never built from input. The member alias is used for APP_USER_ID. */
const char *ju_sort_sql(enum ju_sort sort, const char *alias);
/* The seed's page object around `content` (stolen). New reference. */
json_t *ju_page_json(json_t *content, int64_t total, const struct ju_page *p);

/* --- typed body fields -------------------------------------------------- */
enum ju_presence { JU_ABSENT = 0, JU_NULL, JU_SET };

/* Reads obj[key] as a string of at most max_chars characters (UTF-8 code
 * points). label names the field in errors (NULL = key). *out points into
 * obj. Wrong type / too long → 400 INVALID_PARAMETER. */
int ju_get_string(json_t *obj, const char *key, const char *label, size_t max_chars,
                  enum ju_presence *st, const char **out, struct ju_error *e);
int ju_get_bool(json_t *obj, const char *key, const char *label, enum ju_presence *st, bool *out,
                struct ju_error *e);
/* An integer in [min, max] (JSON integers only; 1.5 or "3" are errors). */
int ju_get_int(json_t *obj, const char *key, const char *label, int64_t min, int64_t max,
               enum ju_presence *st, int64_t *out, struct ju_error *e);
/* Index of value in the NULL-terminated list, or -1. */
int ju_enum_index(const char *value, const char *const *allowed);

/* SPEC API-4 / seed 003: metadata is a JSON object whose values are scalars,
 * or objects/arrays of scalars (one level of nesting). 0 or -1 (400
 * INVALID_PARAMETER naming the path). */
int ju_validate_metadata(const json_t *v, struct ju_error *e);

/* --- SQL text with numbered parameters -------------------------------- */
/* Builds a statement from fixed fragments; values only ever travel as
 * parameters. A fragment's "$?" becomes the next "$N". */
#define JU_QUERY_MAX_PARAMS 16
struct ju_query {
    char sql[4096];
    const char *params[JU_QUERY_MAX_PARAMS];
    int n;
    bool overflow; /* a fragment did not fit: do not run it */
    char nums[JU_QUERY_MAX_PARAMS][24];
};
void ju_query_init(struct ju_query *q, const char *sql);
/* Appends fragment; when it holds "$?", value (may be NULL = SQL NULL) is bound. */
void ju_query_add(struct ju_query *q, const char *fragment, const char *value);
/* Decimal text of v kept inside q (for ju_query_add). */
const char *ju_query_i64(struct ju_query *q, int64_t v);

/* --- result columns → JSON (NULL → null) ------------------------------- */
json_t *ju_col_string(const PGresult *r, int row, int col);
json_t *ju_col_int(const PGresult *r, int row, int col);
json_t *ju_col_bool(const PGresult *r, int row, int col);
/* A json/jsonb column as a JSON value (null when NULL or unparsable). */
json_t *ju_col_json(const PGresult *r, int row, int col);

/* --- text ---------------------------------------------------------------- */
/* Well-formed UTF-8 (no overlongs, no surrogates, ≤ U+10FFFF), no NUL. */
bool ju_utf8_valid(const char *s, size_t n);
/* Number of code points in valid UTF-8. */
size_t ju_utf8_len(const char *s, size_t n);
/* True if s has no non-whitespace character. */
bool ju_is_blank(const char *s);

#endif
