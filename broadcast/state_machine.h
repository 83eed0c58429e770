/* state_machine.h — the stream-key and video-room state machines of SPEC §2,
 * as one transition table, and every event that drives them: the admin API
 * (start, end, force-terminate, reissue, delete), the ingest (publish, first
 * segment, publisher gone, heartbeat) and the timers (auto-end, max
 * duration, node recovery).
 *
 * All state lives in PostgreSQL. Every function here takes a PGconn and runs
 * synchronously — call it on a db-pool thread (or a CLI / test connection),
 * never on a loop. Each call is one transaction that:
 *   1. locks the rows involved in one global order, room before key
 *      (SELECT … FOR UPDATE), so concurrent API calls, ingest events and
 *      several nodes serialize instead of deadlocking;
 *   2. checks the preconditions against the table below and returns the
 *      seed's error when the transition is illegal (nothing changes);
 *   3. applies each transition as one guarded statement
 *      `UPDATE … SET state = to WHERE id = … AND state = from`;
 *   4. appends one `events` row per transition (and connected /
 *      disconnected / class_ended), and pg_notify()s the types gateway.h
 *      lists — all committed together.
 * A deadlock or serialization failure is retried a few times.
 *
 * The connection must not be inside a transaction when called. */
#ifndef BROADCAST_STATE_MACHINE_H
#define BROADCAST_STATE_MACHINE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* --- the transition table (SPEC §2.1, §2.2) ----------------------------- */
enum bc_event {
    BC_EV_PUBLISH,         /* RTMP publish accepted (ING-4) */
    BC_EV_FIRST_SEGMENT,   /* first CMAF segment of this ingest published */
    BC_EV_PUBLISHER_GONE,  /* disconnect, idle timeout, takeover, node restart */
    BC_EV_ROOM_START,      /* API start or auto-start (§2.3) */
    BC_EV_ROOM_END,        /* API end */
    BC_EV_FORCE_TERMINATE, /* API force-terminate (also member delete) */
    BC_EV_AUTO_END,        /* LIVE_INACTIVE longer than autoEndAfterSec */
    BC_EV_MAX_DURATION,    /* live longer than maxDurationSec */
    BC_EV_SWEEP,           /* all recordings expired and swept */
};

/* The state a key / room moves to on ev, or NULL when the table has no such
 * transition (an illegal one). Pure. */
const char *bc_key_next(const char *from, enum bc_event ev);
const char *bc_room_next(const char *from, enum bc_event ev);
const char *bc_event_name(enum bc_event ev);

/* --- results of API-driven transitions --------------------------------- */
enum bc_result {
    BC_OK = 0,
    BC_ERR_DB,                        /* 500 INTERNAL_ERROR */
    BC_ROOM_NOT_FOUND,                /* 404 VIDEO_ROOM_NOT_FOUND */
    BC_ROOM_TYPE_NOT_BROADCAST_RTMP,  /* 400 */
    BC_ROOM_NOT_SCHEDULED,            /* 400 VIDEO_ROOM_STATE_NOT_SCHEDULED */
    BC_ROOM_NOT_LIVE_INACTIVE,        /* 400 VIDEO_ROOM_STATE_NOT_LIVE_INACTIVE */
    BC_ROOM_IS_LIVE,                  /* 400 VIDEO_ROOM_IS_LIVE */
    BC_KEY_NOT_FOUND,                 /* 404 STREAM_KEY_NOT_FOUND */
    BC_KEY_NOT_ACTIVE,                /* 400 STREAM_KEY_STATE_NOT_ACTIVE */
    BC_KEY_NOT_INACTIVE,              /* 400 STREAM_KEY_STATE_NOT_INACTIVE */
    BC_KEY_NOT_INACTIVE_LIVE,         /* 400 STREAM_KEY_STATE_NOT_INACTIVE_LIVE */
    BC_MEMBER_NOT_FOUND,              /* 404 MEMBER_NOT_FOUND */
};
const char *bc_result_code(enum bc_result r);    /* the seed's errorCode */
int bc_result_status(enum bc_result r);          /* HTTP status */
const char *bc_result_message(enum bc_result r); /* one sentence */

/* actor: who asks, for the events rows ("api:app:3"). app_id scopes every
 * lookup: another app's room or key is "not found". */

/* SPEC API-5: SCHEDULED → LIVE; the member's key ACTIVE → ACTIVE_LIVE and
 * bound to the room; started_at; is_recording = recording &&
 * autoStartRecording; NOTIFY room_started. */
enum bc_result bc_room_start(PGconn *c, int64_t app_id, int64_t room_id, const char *actor);
/* SPEC API-5: LIVE_INACTIVE → ENDED with the key INACTIVE_LIVE → INACTIVE,
 * unbound; ended_at; class_ended event; NOTIFY room_ended. */
enum bc_result bc_room_end(PGconn *c, int64_t app_id, int64_t room_id, const char *actor);
/* SPEC API-4: entity state DELETED (refused while LIVE / LIVE_INACTIVE);
 * NOTIFY room_deleted. */
enum bc_result bc_room_delete(PGconn *c, int64_t app_id, int64_t room_id, const char *actor);
/* SPEC API-3: a new key string, only while INACTIVE. */
enum bc_result bc_key_reissue(PGconn *c, int64_t app_id, int64_t key_id, const char *actor);
/* SPEC API-3 / §2: key → INACTIVE with a new key string from any state; the
 * open ingest session is closed; a LIVE / LIVE_INACTIVE room it is bound to
 * → ENDED and that room's RECORDING / PROCESSING recordings are marked
 * FAILED ("discarded by force-terminate"); NOTIFY key_force_terminated (and
 * room_ended) so the node holding the publisher disconnects it. */
enum bc_result bc_key_force_terminate(PGconn *c, int64_t app_id, int64_t key_id, const char *actor);
/* SPEC API-2: members (by appUserId) → DELETED with their keys; a key that
 * is live is force-terminated first. All or nothing: if one is not found,
 * *missing is its index and nothing changes (BC_MEMBER_NOT_FOUND). */
enum bc_result bc_members_delete(PGconn *c, int64_t app_id, const char *const *app_user_ids,
                                 size_t n, const char *actor, size_t *missing);
/* SPEC §2.2 / REC-4: ENDED → ARCHIVED once the sweeper removed everything of
 * the room. 0 changed, 1 not ENDED (nothing changed), -1 error. */
int bc_room_archive(PGconn *c, int64_t room_id, const char *actor);

/* --- ingest (ING-4, ING-6, OPS-6, OPS-7) ------------------------------- */
struct bc_publish {
    int64_t key_id, app_id, member_id;
    int64_t room_id;             /* 0 if the key is not bound to a room */
    int64_t session_id;          /* ingest_sessions.id of this publisher */
    char key_state[24];          /* the key's state after the call */
    int64_t room_next_msn;       /* video_rooms.hls_next_msn / hls_session_no: */
    int room_session_no;         /*   where the room's HLS numbering continues */
    bool room_recording;         /* video_rooms.is_recording */
    int64_t replaced_session_id; /* publish: the session taken over (0 = none) */
};
enum bc_publish_status {
    BC_PUBLISH_OK,
    BC_PUBLISH_UNKNOWN_KEY, /* not found, wrong, deleted, or its app/member deleted */
    BC_PUBLISH_BUSY,        /* another publisher sent media within takeover_idle_sec (ING-6) */
    BC_PUBLISH_ERROR,
};
/* Finds the key by its 12-character prefix, compares the whole key in
 * constant time, and claims it for node_id under a lease of lease_sec
 * (OPS-7): a new ingest_sessions row; INACTIVE → ACTIVE_PREP or
 * INACTIVE_LIVE → ACTIVE_LIVE_PREP. A key held by another session is taken
 * over (that session closed as by bc_ingest_closed) when its last media is
 * older than takeover_idle_sec or its lease expired; otherwise BUSY.
 * peer is the client address (stored with the session). */
enum bc_publish_status bc_ingest_publish(PGconn *c, const char *stream_key, const char *node_id,
                                         const char *peer, int takeover_idle_sec, int lease_sec,
                                         struct bc_publish *out);
/* The session's first CMAF segment: ACTIVE_PREP → ACTIVE (then SPEC §2.3
 * auto-start: the member's oldest SCHEDULED BROADCAST_RTMP autoStart room
 * with scheduled_at ≤ now() + auto_start_early_sec is started as by the
 * API), or ACTIVE_LIVE_PREP → ACTIVE_LIVE with the room LIVE_INACTIVE → LIVE.
 * out gets the key state and, when the key is live in a room, the room.
 * 0 done (also when already past PREP), 1 the session no longer holds the
 * key (nothing changed), -1 error. */
int bc_ingest_first_segment(PGconn *c, int64_t key_id, int64_t session_id,
                            int auto_start_early_sec, struct bc_publish *out);
/* Publisher gone (clean close, idle timeout, takeover, shutdown):
 * ACTIVE_PREP/ACTIVE → INACTIVE; ACTIVE_LIVE/ACTIVE_LIVE_PREP → INACTIVE_LIVE
 * and the room LIVE → LIVE_INACTIVE (inactive_since = now). The session row
 * is closed with reason. 0 done, 1 the session no longer held the key (only
 * its row is closed), -1 error. */
int bc_ingest_closed(PGconn *c, int64_t key_id, int64_t session_id, const char *reason);
/* Renews the lease and last_media_at. 0, 1 the session no longer holds the
 * key (the caller should disconnect it), -1 error. */
int bc_ingest_heartbeat(PGconn *c, int64_t key_id, int64_t session_id, int lease_sec);
/* Where the room's HLS numbering continues after a reconnect. 0 or -1. */
int bc_room_set_hls_position(PGconn *c, int64_t room_id, int64_t next_msn, int session_no);

/* --- timers -------------------------------------------------------------- */
/* LIVE_INACTIVE rooms past autoEndAfterSec (key INACTIVE_LIVE) → ENDED, key
 * → INACTIVE; LIVE / LIVE_INACTIVE rooms past maxDurationSec → ENDED, key →
 * INACTIVE, its session closed, NOTIFY room_ended (the holder disconnects the
 * publisher). Returns the number of rooms ended, or -1. */
int bc_rooms_auto_end(PGconn *c);
/* OPS-6: at start-up, closes every open ingest session of node_id: keys →
 * INACTIVE / INACTIVE_LIVE, rooms → LIVE_INACTIVE. Returns the number of
 * keys released, or -1. */
int bc_node_recover(PGconn *c, const char *node_id);

/* Stream keys: 40 random [A-Za-z0-9]; the first 12 are the lookup prefix. */
#define BC_STREAM_KEY_LEN 40
#define BC_KEY_PREFIX_LEN 12
/* Fills key (BC_STREAM_KEY_LEN + 1 bytes) and prefix (BC_KEY_PREFIX_LEN + 1). 0 or -1. */
int bc_new_stream_key(char *key, char *prefix);

#endif
