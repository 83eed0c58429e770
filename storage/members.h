/* members.h — creating a member together with its one stream key (SPEC
 * API-2, §2.1 "each member has exactly one stream key, created with the
 * member, initially INACTIVE"). Runs on a db thread (or a CLI / test
 * connection). Reads, updates and deletes are in api/members.c and
 * broadcast/state_machine.c. */
#ifndef STORAGE_MEMBERS_H
#define STORAGE_MEMBERS_H

#include <libpq-fe.h>
#include <stdint.h>

/* Inserts the member (ACTIVE) and its key (INACTIVE, a fresh random key
 * string) in one transaction. name / img_url may be NULL.
 * 0 with *member_id and *key_id; 1 an ACTIVE member with this appUserId
 * exists in the app (nothing created); -1 error. */
int members_create(PGconn *c, int64_t app_id, const char *app_user_id, const char *name,
                   const char *img_url, int64_t *member_id, int64_t *key_id);

#endif
