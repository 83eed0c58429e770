/* members.c — member + stream key creation in one transaction. */
#include "storage/members.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "broadcast/state_machine.h"
#include "storage/db.h"

static int rollback(PGconn *c, int rc)
{
    PQclear(PQexec(c, "ROLLBACK"));
    return rc;
}

int members_create(PGconn *c, int64_t app_id, const char *app_user_id, const char *name,
                   const char *img_url, int64_t *member_id, int64_t *key_id)
{
    char app[24], mid[24], sqlstate[6];
    snprintf(app, sizeof app, "%" PRId64, app_id);
    /* A random key colliding with another is astronomically unlikely, but
     * the UNIQUE constraints decide: retry with a new one. */
    for (int attempt = 0; attempt < 4; attempt++) {
        PGresult *r = db_exec(c, "member create: begin", "BEGIN", 0, NULL, NULL);
        if (!r)
            return -1;
        PQclear(r);
        const char *mp[4] = {app, app_user_id, name, img_url};
        r = db_exec(c, "member create",
                    "INSERT INTO members (app_id, app_user_id, app_user_name,"
                    " app_user_profile_img_url) VALUES ($1, $2, $3, $4) RETURNING id",
                    4, mp, sqlstate);
        if (!r)
            return rollback(c, strcmp(sqlstate, "23505") == 0 ? 1 : -1);
        *member_id = db_get_i64(r, 0, 0);
        PQclear(r);
        char key[BC_STREAM_KEY_LEN + 1], prefix[BC_KEY_PREFIX_LEN + 1];
        if (bc_new_stream_key(key, prefix) != 0)
            return rollback(c, -1);
        snprintf(mid, sizeof mid, "%" PRId64, *member_id);
        const char *kp[4] = {app, mid, key, prefix};
        r = db_exec(c, "member create: key",
                    "INSERT INTO stream_keys (app_id, member_id, stream_key, key_prefix)"
                    " VALUES ($1, $2, $3, $4) RETURNING id",
                    4, kp, sqlstate);
        memset(key, 0, sizeof key);
        if (!r) {
            rollback(c, -1);
            if (strcmp(sqlstate, "23505") == 0)
                continue;
            return -1;
        }
        *key_id = db_get_i64(r, 0, 0);
        PQclear(r);
        r = db_exec(c, "member create: commit", "COMMIT", 0, NULL, sqlstate);
        if (!r) {
            if (strcmp(sqlstate, "23505") == 0)
                return 1;
            return -1;
        }
        PQclear(r);
        return 0;
    }
    return -1;
}
