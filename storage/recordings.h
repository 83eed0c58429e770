/* recordings.h — SQL for recordings and their expiry (SPEC REC-1..REC-5, API-7).
 *
 * Every function is synchronous libpq: call it on a db-pool thread, the
 * finalizer / sweeper threads or the CLI, never on a loop. Each state change
 * is one statement (data-modifying CTEs), guarded by the state it leaves, and
 * writes its event row in the same statement (SPEC §2, API-10).
 *
 * Row states: RECORDING → PROCESSING → READY → EXPIRED, or FAILED (reason).
 *
 * Expiry (REC-4): expiresAt = room ended_at + (apps.recording_ttl_sec or the
 * node's recording_ttl_sec). recordings.expires_at is stored lazily: by
 * recordings_set_expiry_for_room() (the state machine may call it when a
 * room ends), by recordings_mark_ready() when the room has ended already, and
 * by every sweeper pass for rows still lacking it. Reads never depend on
 * that having happened: they use COALESCE(expires_at, ended_at + ttl). */
#ifndef STORAGE_RECORDINGS_H
#define STORAGE_RECORDINGS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

/* Results besides 0 (done) and -1 (database error, logged). */
enum {
    RECORDINGS_NOT_FOUND = 1,     /* no such row / room (or another app's) */
    RECORDINGS_WRONG_STATE = 2,   /* the guard did not hold (row moved on, room not live) */
    RECORDINGS_DISABLED = 3,      /* the room's `recording` setting is off */
};

#define RECORDINGS_TIME_MAX 40

struct recording_row {
    int64_t id, app_id, room_id;
    char status[16];                       /* RECORDING, PROCESSING, READY, EXPIRED, FAILED */
    char filename[128];                    /* download name, e.g. room12-20250101T101500Z-34.mp4 */
    char path[256];                        /* relative to data_dir */
    char node_id[128];
    char failure_reason[256];              /* "" unless FAILED */
    int64_t size_bytes, duration_ms;
    char started_at[RECORDINGS_TIME_MAX];  /* ISO-8601 UTC, microseconds */
    char ended_at[RECORDINGS_TIME_MAX];    /* "" while recording */
    int64_t expires_at;                    /* unix seconds; 0 = not known yet (room live) */
};

struct recording_new {
    int64_t room_id;
    int64_t ingest_session_id;  /* 0 = none */
    const char *node_id;
    const char *actor;          /* events.actor, e.g. "ingest:node-a" */
};

/* Creates a RECORDING row for a room that is LIVE / LIVE_INACTIVE with its
 * `recording` setting on; sets video_rooms.is_recording, clears
 * recording_error, appends event recording_started. out receives the row
 * (path = recordings/{app}/{room}/{id}.mp4). 0, RECORDINGS_NOT_FOUND,
 * RECORDINGS_WRONG_STATE, RECORDINGS_DISABLED, or -1. */
int recordings_create(PGconn *c, const struct recording_new *in, struct recording_row *out);

/* RECORDING → PROCESSING with the recorder's figures; ended_at = now();
 * event recording_stopped. stop_intent: the stop was asked for (API stop,
 * room end), so the room's is_recording goes false too; a reconnect or a
 * codec-change rotation passes false. 0, RECORDINGS_WRONG_STATE, -1. */
int recordings_close(PGconn *c, int64_t id, int64_t size_bytes, int64_t duration_ms,
                     bool stop_intent, const char *actor);

/* RECORDING/PROCESSING → READY with figures measured from the final file;
 * stores expires_at if the room has ended. 0, RECORDINGS_WRONG_STATE, -1. */
int recordings_mark_ready(PGconn *c, int64_t id, int64_t size_bytes, int64_t duration_ms,
                          int default_ttl_sec, const char *actor);

/* RECORDING/PROCESSING → FAILED with a reason; the room gets
 * recording_error = reason and is_recording = false; event recording_state.
 * 0, RECORDINGS_WRONG_STATE, -1. */
int recordings_mark_failed(PGconn *c, int64_t id, const char *reason, const char *actor);

/* Stores expires_at = ended_at + ttl on the room's rows that lack it (the
 * room must have ended). Returns the number of rows updated, or -1. */
int recordings_set_expiry_for_room(PGconn *c, int64_t room_id, int default_ttl_sec);

/* One row by id (any app). 0, RECORDINGS_NOT_FOUND, -1. */
int recordings_get(PGconn *c, int64_t id, int default_ttl_sec, struct recording_row *out);

/* The room as the recordings API sees it. */
struct recordings_room {
    int64_t id, app_id;
    char video_room_state[16];
    bool recording_enabled, is_recording;
    char recording_error[256];
    bool ended;
    int64_t expires_at;      /* unix seconds, when ended */
    char expires_at_iso[RECORDINGS_TIME_MAX]; /* "" until ended */
    int64_t now;             /* database clock, unix seconds */
};

/* The app's room (state ACTIVE) and its rows, oldest first. *rows is
 * malloc'd (free it); *nrows may be 0. 0, RECORDINGS_NOT_FOUND, -1. */
int recordings_list_for_room(PGconn *c, int64_t app_id, int64_t room_id, int default_ttl_sec,
                             struct recordings_room *room, struct recording_row **rows, int *nrows);

/* API recording start/stop (REC-2): sets the room's is_recording intent and
 * notifies the node holding the stream (channel "castgate", payload
 * {"type":"recording_start"|"recording_stop","roomId":N,"keyId":N|null}),
 * in one statement. start requires the room LIVE/LIVE_INACTIVE
 * (RECORDINGS_WRONG_STATE) and its `recording` setting on
 * (RECORDINGS_DISABLED); stop only requires the room. *is_recording gets
 * the resulting flag. 0, RECORDINGS_NOT_FOUND, …, -1. */
int recordings_request(PGconn *c, int64_t app_id, int64_t room_id, bool start, bool *is_recording);

/* The secret that signs download URLs: cfg->token_secret when set, else one
 * shared by every node on the database (created once, table
 * cluster_secrets). Cached after the first read. 0 or -1. */
int recordings_signing_secret(PGconn *c, const struct config *cfg, char *out, size_t outlen);

/* Rows this node left RECORDING/PROCESSING (a crash or restart, OPS-6):
 * moves RECORDING ones to PROCESSING (ended_at = now()) and returns them all
 * (malloc'd *rows). 0 or -1. */
int recordings_claim_unfinished(PGconn *c, const char *node_id, const char *actor,
                                struct recording_row **rows, int *nrows);

/* "4h 23m" / "12m" / "0m" for a number of seconds (negative = "0m"). */
void recordings_format_expires_in(int64_t seconds, char *out, size_t outlen);

#endif
