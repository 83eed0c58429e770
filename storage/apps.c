/* apps.c — app rows: random credentials, secret stored as SHA-256 only. */
#include "storage/apps.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "core/secure.h"
#include "storage/db.h"

int apps_create(PGconn *c, const char *name, struct app_credentials *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char key_rand[25], org_rand[21];
    if (secure_random_alnum(key_rand, 24) != 0 || secure_random_alnum(out->api_secret, 40) != 0 ||
        secure_random_alnum(org_rand, 20) != 0) {
        snprintf(err, errlen, "app create: no randomness available");
        return -1;
    }
    snprintf(out->api_key, sizeof out->api_key, "ak_%s", key_rand);
    snprintf(out->org_id, sizeof out->org_id, "org_%s", org_rand);
    char hash[65];
    secure_sha256_hex(out->api_secret, strlen(out->api_secret), hash);
    const char *params[4] = {name, out->api_key, hash, out->org_id};
    PGresult *r = db_exec(c, "app create",
                          "INSERT INTO apps (name, api_key, api_secret_sha256, org_id)"
                          " VALUES ($1, $2, $3, $4) RETURNING id",
                          4, params, NULL);
    if (!r) {
        snprintf(err, errlen, "app create: insert failed (is the name 1..200 characters?)");
        OPENSSL_cleanse(out->api_secret, sizeof out->api_secret);
        return -1;
    }
    out->app_id = db_get_i64(r, 0, 0);
    PQclear(r);
    return 0;
}
