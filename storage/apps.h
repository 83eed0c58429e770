/* apps.h — tenants ("apps", SPEC API-1): created from the command line. */
#ifndef STORAGE_APPS_H
#define STORAGE_APPS_H

#include <libpq-fe.h>
#include <stddef.h>
#include <stdint.h>

struct app_credentials {
    int64_t app_id;
    char api_key[32];     /* public identifier (Basic auth user) */
    char api_secret[48];  /* shown once; only its SHA-256 is stored */
    char org_id[40];      /* read-only organization id (VF-ORG-ID) */
};

/* Creates an app. 0, or -1 with err. */
int apps_create(PGconn *c, const char *name, struct app_credentials *out, char *err, size_t errlen);

#endif
