/* fuzz_api_body.c — the admin API's request-body → validation path without a
 * database (SPEC §6 "Robust input"): JSON bodies through the member and
 * video-room validators, and the raw bytes through the time, paging, id-list
 * and UTF-8 rules. Checks the validators' promises, not just "no crash". */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/json_util.h"
#include "api/members.h"
#include "api/video_rooms.h"

static void check_error(int rc, const struct ju_error *e)
{
    if (rc != 0 && (e->status < 400 || e->status > 499 || !e->code[0] || !e->message[0]))
        abort(); /* every refusal is a 4xx with a code and a message */
}

static void bodies(json_t *body)
{
    struct ju_error e;
    struct member_input m;
    memset(&e, 0, sizeof e);
    int rc = members_parse_create(body, &m, &e);
    check_error(rc, &e);
    if (rc == 0 && (!m.app_user_id || ju_is_blank(m.app_user_id) || strchr(m.app_user_id, ',')))
        abort();
    memset(&e, 0, sizeof e);
    check_error(members_parse_patch(body, &m, &e), &e);

    struct room_input r;
    memset(&e, 0, sizeof e);
    rc = video_rooms_parse_create(body, &r, &e);
    check_error(rc, &e);
    if (rc == 0) {
        if (!r.app_user_id || !r.type || ju_enum_index(r.type, video_room_types) < 0)
            abort();
        if (strcmp(r.type, "BROADCAST_RTMP") == 0 && r.sched_st != JU_SET)
            abort();
        if (r.meta_st == JU_SET && ju_validate_metadata(r.metadata, &e) != 0)
            abort();
    }
    if (rc == 0 && r.sched_st == JU_SET) {
        int64_t us;
        char again[JU_TIME_LEN];
        if (ju_parse_time(r.scheduled_at, &us) != 0 || ju_format_time_us(us, again) != 0 ||
            strcmp(again, r.scheduled_at) != 0)
            abort(); /* the canonical form is a fixed point */
    }
    memset(&e, 0, sizeof e);
    check_error(video_rooms_parse_patch(body, &r, &e), &e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(body))
        bodies(body);
    json_decref(body);

    char *s = malloc(size + 1);
    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = 0;
    bool utf8 = ju_utf8_valid(s, size);
    if (utf8 && strlen(s) != size)
        abort();

    int64_t us;
    if (ju_parse_time(s, &us) == 0) {
        char out[JU_TIME_LEN];
        int64_t back;
        if (ju_format_time_us(us, out) != 0 || ju_parse_time(out, &back) != 0 || back != us)
            abort();
    }
    int64_t id;
    if (ju_parse_id(s, &id) && id <= 0)
        abort();

    /* page|pageSize|sortBy split on '&' */
    char *parts[3] = {NULL, NULL, NULL};
    char *p = s;
    for (int i = 0; i < 3 && p; i++) {
        parts[i] = p;
        p = strchr(p, '&');
        if (p)
            *p++ = 0;
    }
    struct ju_page page;
    struct ju_error e = {0};
    int rc = ju_parse_page(parts[0], parts[1], parts[2], true, &page, &e);
    check_error(rc, &e);
    if (rc == 0 && (page.page < 0 || page.page_size < 1 || page.page_size > JU_PAGE_SIZE_MAX))
        abort();

    memcpy(s, data, size);
    s[size] = 0;
    char buf[ROUTER_PARAM_MAX + 8];
    const char *ids[MEMBER_DELETE_MAX];
    memset(&e, 0, sizeof e);
    if (strlen(s) < ROUTER_PARAM_MAX) {
        int n = members_split_ids(s, buf, sizeof buf, ids, MEMBER_DELETE_MAX, &e);
        check_error(n < 0 ? -1 : 0, &e);
        for (int i = 0; i < n; i++)
            if (!ids[i][0] || strchr(ids[i], ','))
                abort();
    }
    free(s);
    return 0;
}
