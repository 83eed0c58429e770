/* gateway.c — RTMP sessions ↔ state machine ↔ packager ↔ media indexes.
 *
 * One `struct gw_stream` per RTMP publish attempt, owned by the session's
 * media loop. Database work for a stream is a db-pool job whose completion
 * comes back to that loop; the stream is reference-counted (loop-local, no
 * atomics) so a completion arriving after the publisher left finds it alive.
 *
 * The segmenter feeds a fan-out sink: the preview index "keys/{id}" while the
 * key is not live in a room, the room index "rooms/{id}" while it is. A room
 * index joins at a segment boundary (a part with part_index 0 that is
 * independent), after the cached init segment is replayed to it. */
#include "broadcast/gateway.h"

#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broadcast/state_machine.h"
#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "ingest/rtmp_server.h"
#include "packager/cmaf_segmenter.h"
#include "packager/media_index.h"
#include "packager/media_registry.h"
#include "packager/recorder.h"
#include "storage/file_store.h"
#include "storage/finalizer.h"
#include "storage/recordings.h"
#include "storage/db.h"
#include "storage/notify.h"

#define GW_LEASE_SEC 30
#define GW_HEARTBEAT_MS 5000
#define GW_TIMER_MS 1000
#define GW_PREVIEW_WINDOW 4
/* The start-up backlog (see backlog_*) gives up beyond this. */
#define GW_BACKLOG_MAX_BYTES (8u << 20)

enum gw_stream_state { GW_AUTHORIZING, GW_PUBLISHING, GW_CLOSED };

struct gw_init_cache {
    uint8_t *data;
    size_t len;
    struct cmaf_track_info tracks[4];
    int ntracks;
};

/* One packaged event kept from the start of an ingest session. */
struct gw_backlog_item {
    struct gw_backlog_item *next;
    bool is_segment;
    struct cmaf_part part;       /* .data points into bytes[] */
    struct cmaf_segment seg;
    uint8_t bytes[];
};

struct gw_stream {
    struct gateway *gw;
    struct rtmp_session *sess;   /* NULL once closed */
    struct loop *loop;
    atomic_int refs;             /* taken by db jobs and posted commands */
    enum gw_stream_state state;
    char peer[64];
    char key_hint[8];            /* first 4 chars of the key, for logs */

    int64_t key_id, app_id, member_id, session_id, room_id;
    bool first_segment_reported;
    bool room_pending;           /* room index joins at the next segment start */
    bool room_joined;            /* room index receives parts */
    bool preview_on;
    long long last_heartbeat_ms;

    struct cmaf_segmenter *seg;
    struct media_index *preview; /* ref */
    struct media_index *room;    /* ref */
    struct gw_init_cache init;
    bool expect_audio, expect_video;
    double fps_hint;
    /* Recording (REC-1, REC-2): one recorder while the room records. */
    struct recorder *rec;
    struct gw_rec *rec_ctx;
    bool rec_wanted;             /* the room's recording intent (is_recording) */
    /* Start-up backlog: every part and segment since the session's first
     * frame, kept until we know whether a room starts with the first segment
     * (auto-start, SPEC 2.3). Auto-start happens when the first segment is
     * published, so without it the room (and its recording) would begin one
     * segment late and the broadcaster's first seconds would be lost. */
    bool backlog_on;
    bool backlog_room_done;      /* replayed into the room index */
    struct gw_backlog_item *bl_head, *bl_tail;
    size_t bl_bytes;
    struct gw_stream *next_all;  /* gateway list (under gw->mu) */
};

struct gateway {
    const struct config *cfg;
    struct db_pool *db;
    struct loop *accept_loop;
    struct loop **loops;
    int nloops;
    struct media_registry *registry;
    struct rtmp_server *rtmp;
    struct notify_listener *notify;
    struct event *timer;
    struct file_writer *writer;  /* shared by every recorder of this node */
    struct finalizer *finalizer;
    char rtmp_addr[128];

    pthread_mutex_t mu;
    struct gw_stream *streams;   /* every accepted (PUBLISHING) stream */
    int nlive;
    bool stopping;
};

/* ---------------------------------------------------------------- helpers */

/* ------------------------------------------------------- start-up backlog */

static void backlog_end(struct gw_stream *s)
{
    struct gw_backlog_item *it = s->bl_head;
    while (it) {
        struct gw_backlog_item *n = it->next;
        free(it);
        it = n;
    }
    s->bl_head = s->bl_tail = NULL;
    s->bl_bytes = 0;
    s->backlog_on = false;
}

static void backlog_push(struct gw_stream *s, const struct cmaf_part *part, const struct cmaf_segment *seg)
{
    size_t len = part ? part->len : 0;
    if (s->bl_bytes + len > GW_BACKLOG_MAX_BYTES) {
        log_warn("gateway: start-up backlog over %u bytes: dropped key_id=%lld", GW_BACKLOG_MAX_BYTES,
                 (long long)s->key_id);
        backlog_end(s);
        return;
    }
    struct gw_backlog_item *it = malloc(sizeof *it + len);
    if (!it) {
        backlog_end(s);
        return;
    }
    it->next = NULL;
    it->is_segment = seg != NULL;
    if (part) {
        it->part = *part;
        memcpy(it->bytes, part->data, len);
        it->part.data = it->bytes;
    } else {
        it->seg = *seg;
    }
    if (s->bl_tail)
        s->bl_tail->next = it;
    else
        s->bl_head = it;
    s->bl_tail = it;
    s->bl_bytes += len;
}

static void stream_ref(struct gw_stream *s) { atomic_fetch_add(&s->refs, 1); }

/* The last reference may drop on any loop: everything freed here is owned
 * by the stream alone by then (its session is gone, it left every list). */
static void stream_unref(struct gw_stream *s)
{
    if (atomic_fetch_sub(&s->refs, 1) > 1)
        return;
    if (s->seg)
        cmaf_segmenter_free(s->seg);
    backlog_end(s);
    media_index_unref(s->preview);
    media_index_unref(s->room);
    free(s->init.data);
    free(s);
}

static void gw_list_add(struct gateway *gw, struct gw_stream *s)
{
    pthread_mutex_lock(&gw->mu);
    s->next_all = gw->streams;
    gw->streams = s;
    gw->nlive++;
    pthread_mutex_unlock(&gw->mu);
}

static void gw_list_remove(struct gateway *gw, struct gw_stream *s)
{
    pthread_mutex_lock(&gw->mu);
    for (struct gw_stream **pp = &gw->streams; *pp; pp = &(*pp)->next_all) {
        if (*pp == s) {
            *pp = s->next_all;
            gw->nlive--;
            break;
        }
    }
    pthread_mutex_unlock(&gw->mu);
}

/* A db job for one stream: the stream is referenced until done runs on its loop. */
struct gw_job {
    struct gw_stream *s;
    int rc;
    char reason[64];
    struct bc_publish pub;
    enum bc_publish_status pub_status;
};

static int gw_submit(struct gw_stream *s, db_work_fn work, loop_fn done, struct gw_job *j)
{
    j->s = s;
    stream_ref(s);
    if (db_pool_submit(s->gw->db, s->loop, work, done, j) != 0) {
        stream_unref(s);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------- media indexes */

static struct media_index *open_index(struct gateway *gw, const char *kind, int64_t id)
{
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", (long long)id);
    bool created = false;
    return media_registry_get_or_create(gw->registry, kind, ids, &created);
}

/* Replays the cached init to a room index that joins mid-stream. */
static void room_join(struct gw_stream *s)
{
    if (!s->init.data)
        return;
    struct cmaf_init init = {
        .data = s->init.data,
        .len = s->init.len,
        .tracks = s->init.tracks,
        .ntracks = s->init.ntracks,
        .discontinuity = false,
    };
    const struct cmaf_sink *sink = media_index_sink(s->room);
    sink->on_init(sink->ctx, &init);
    s->room_joined = true;
    s->room_pending = false;
}

/* The room starts with the session's first segment: it gets everything
 * packaged so far, then the live parts. */
static void room_join_from_backlog(struct gw_stream *s)
{
    room_join(s);
    if (!s->room_joined)
        return;
    const struct cmaf_sink *sink = media_index_sink(s->room);
    for (const struct gw_backlog_item *it = s->bl_head; it; it = it->next) {
        if (it->is_segment)
            sink->on_segment(sink->ctx, &it->seg);
        else
            sink->on_part(sink->ctx, &it->part);
    }
    s->backlog_room_done = true;
    log_info("gateway: room starts from the first frame key_id=%lld room=%lld bytes=%zu",
             (long long)s->key_id, (long long)s->room_id, s->bl_bytes);
}

/* ------------------------------------------------------- fan-out sink */

static void rec_new_file(struct gw_stream *s);

static void fan_on_init(void *ctx, const struct cmaf_init *init)
{
    struct gw_stream *s = ctx;
    if (s->backlog_on && s->bl_head)
        backlog_end(s); /* its parts belong to the previous init */
    uint8_t *copy = malloc(init->len);
    if (copy) {
        memcpy(copy, init->data, init->len);
        free(s->init.data);
        s->init.data = copy;
        s->init.len = init->len;
        s->init.ntracks = init->ntracks < 4 ? init->ntracks : 4;
        memcpy(s->init.tracks, init->tracks, sizeof(init->tracks[0]) * (size_t)s->init.ntracks);
    }
    if (s->preview_on) {
        const struct cmaf_sink *k = media_index_sink(s->preview);
        k->on_init(k->ctx, init);
    }
    if (s->room_joined) {
        const struct cmaf_sink *k = media_index_sink(s->room);
        k->on_init(k->ctx, init);
    }
    if (s->rec && recorder_init(s->rec, init) == RECORDER_ROTATED)
        rec_new_file(s); /* ING-9: a new file for the new codec configuration */
}

static void fan_on_part(void *ctx, const struct cmaf_part *part)
{
    struct gw_stream *s = ctx;
    metrics_add(METRIC_PARTS_TOTAL, 1);
    if (s->room_pending && part->part_index == 0 && part->independent)
        room_join(s);
    if (s->preview_on) {
        const struct cmaf_sink *k = media_index_sink(s->preview);
        k->on_part(k->ctx, part);
    }
    if (s->room_joined) {
        const struct cmaf_sink *k = media_index_sink(s->room);
        k->on_part(k->ctx, part);
    }
    /* REC-1: the recording is these same fragments after the init. */
    if (s->rec)
        recorder_part(s->rec, part);
    if (s->backlog_on)
        backlog_push(s, part, NULL);
}

static void first_segment_work(PGconn *c, void *arg);
static void first_segment_done(void *arg);

static void fan_on_segment(void *ctx, const struct cmaf_segment *seg)
{
    struct gw_stream *s = ctx;
    metrics_add(METRIC_SEGMENTS_TOTAL, 1);
    if (s->preview_on) {
        const struct cmaf_sink *k = media_index_sink(s->preview);
        k->on_segment(k->ctx, seg);
    }
    if (s->room_joined) {
        const struct cmaf_sink *k = media_index_sink(s->room);
        k->on_segment(k->ctx, seg);
    }
    if (s->backlog_on)
        backlog_push(s, NULL, seg);
    if (!s->first_segment_reported && s->state == GW_PUBLISHING) {
        s->first_segment_reported = true;
        struct gw_job *j = calloc(1, sizeof *j);
        if (j && gw_submit(s, first_segment_work, first_segment_done, j) != 0) {
            log_error("gateway: first segment not recorded: db queue full key_id=%lld",
                      (long long)s->key_id);
            free(j);
        }
    }
}


/* ------------------------------------------------------- recording */

/* Context shared by a recorder's callbacks. It outlives the recorder until
 * every file that got a path has reported on_file_closed (the recorder may
 * call that after recorder_free). Loop-local: all callbacks run on the
 * stream's loop. */
#define GW_REC_FILES 8
struct gw_rec {
    struct gateway *gw;
    struct loop *loop;
    int64_t room_id, session_id;
    bool alive;                  /* the recorder exists */
    bool stop_intent;            /* the stop was asked for (API stop) */
    int pending;                 /* files with a path, not yet closed */
    struct {
        char path[800];
        char rel[256];
        int64_t id;
        bool failed;              /* on_error already marked the row FAILED */
    } files[GW_REC_FILES];
};

static void gw_rec_maybe_free(struct gw_rec *rc)
{
    if (!rc->alive && rc->pending == 0)
        free(rc);
}

static int gw_rec_slot(struct gw_rec *rc, const char *path)
{
    for (int i = 0; i < GW_REC_FILES; i++)
        if (rc->files[i].id && strcmp(rc->files[i].path, path) == 0)
            return i;
    return -1;
}

/* A db job about one recording row. */
struct gw_rec_job {
    struct gw_rec *rc;
    struct gw_stream *s;         /* only for create (holds a stream ref) */
    int64_t id;
    int64_t bytes, duration_ms;
    bool stop_intent;
    int rc_status;
    char rel[256];
    char reason[256];
    struct recording_row row;
};

static void rec_close_work(PGconn *c, void *arg)
{
    struct gw_rec_job *j = arg;
    char actor[160];
    snprintf(actor, sizeof actor, "ingest:%s", j->rc->gw->cfg->node_id);
    if (j->reason[0]) {
        recordings_mark_failed(c, j->id, j->reason, actor);
        return;
    }
    if (recordings_close(c, j->id, j->bytes, j->duration_ms, j->stop_intent, actor) == 0 &&
        j->rc->gw->finalizer)
        finalizer_submit(j->rc->gw->finalizer, j->id, j->rel);
}

static void rec_job_done(void *arg)
{
    struct gw_rec_job *j = arg;
    struct gw_rec *rc = j->rc;
    rc->pending--;
    gw_rec_maybe_free(rc);
    free(j);
}

static void rec_on_file_closed(void *ctx, const char *path, const struct recorder_stats *st, int error,
                               const char *reason)
{
    struct gw_rec *rc = ctx;
    int i = gw_rec_slot(rc, path);
    if (i < 0)
        return;
    if (rc->files[i].failed) {
        rc->files[i].id = 0;
        rc->pending--;
        gw_rec_maybe_free(rc);
        return;
    }
    struct gw_rec_job *j = calloc(1, sizeof *j);
    if (!j) {
        rc->pending--;
        rc->files[i].id = 0;
        gw_rec_maybe_free(rc);
        return;
    }
    j->rc = rc;
    j->id = rc->files[i].id;
    snprintf(j->rel, sizeof j->rel, "%s", rc->files[i].rel);
    j->bytes = (int64_t)st->bytes;
    j->duration_ms = st->duration_ms;
    j->stop_intent = rc->stop_intent;
    if (error || st->bytes == 0) {
        snprintf(j->reason, sizeof j->reason, "%s", error && reason && reason[0] ? reason : "no media recorded");
        metrics_add(METRIC_RECORDING_ERRORS_TOTAL, error ? 1 : 0);
    }
    rc->files[i].id = 0;
    if (db_pool_submit(rc->gw->db, rc->loop, rec_close_work, rec_job_done, j) != 0) {
        log_error("recording: close not recorded (db queue full) recording=%lld", (long long)j->id);
        free(j);
        rc->pending--;
        gw_rec_maybe_free(rc);
    }
}

static void rec_fail_work(PGconn *c, void *arg)
{
    struct gw_rec_job *j = arg;
    char actor[160];
    snprintf(actor, sizeof actor, "ingest:%s", j->rc->gw->cfg->node_id);
    recordings_mark_failed(c, j->id, j->reason, actor);
}

/* Disk full or a write error (SPEC issue 6.6): the recording fails with the
 * reason; the live stream goes on. */
static void rec_on_error(void *ctx, const char *path, const char *reason)
{
    struct gw_rec *rc = ctx;
    metrics_add(METRIC_RECORDING_ERRORS_TOTAL, 1);
    int i = gw_rec_slot(rc, path);
    log_error("recording: failed room=%lld reason=\"%s\"", (long long)rc->room_id, reason);
    if (i < 0)
        return;
    struct gw_rec_job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->rc = rc;
    j->id = rc->files[i].id;
    snprintf(j->reason, sizeof j->reason, "%s", reason);
    /* The row becomes FAILED; on_file_closed, which always follows, then
     * only releases the slot. */
    rc->files[i].failed = true;
    rc->pending++; /* the job reads rc on the db thread: keep it alive */
    if (db_pool_submit(rc->gw->db, rc->loop, rec_fail_work, rec_job_done, j) != 0) {
        rc->pending--;
        free(j);
    }
}

static void rec_create_work(PGconn *c, void *arg)
{
    struct gw_rec_job *j = arg;
    char actor[160];
    snprintf(actor, sizeof actor, "ingest:%s", j->rc->gw->cfg->node_id);
    struct recording_new in = {j->rc->room_id, j->rc->session_id, j->rc->gw->cfg->node_id, actor};
    j->rc_status = recordings_create(c, &in, &j->row);
}

static void rec_create_done(void *arg)
{
    struct gw_rec_job *j = arg;
    struct gw_stream *s = j->s;
    struct gw_rec *rc = j->rc;
    if (j->rc_status != 0) {
        if (j->rc_status > 0)
            log_info("recording: not started room=%lld status=%d", (long long)rc->room_id, j->rc_status);
    } else if (s->rec && s->rec_ctx == rc) {
        int slot = -1;
        for (int i = 0; i < GW_REC_FILES && slot < 0; i++)
            if (!rc->files[i].id)
                slot = i;
        if (slot >= 0) {
            snprintf(rc->files[slot].rel, sizeof rc->files[slot].rel, "%s", j->row.path);
            snprintf(rc->files[slot].path, sizeof rc->files[slot].path, "%s/%s", s->gw->cfg->data_dir,
                     j->row.path);
            if (recorder_set_path(s->rec, rc->files[slot].path) == 0) {
                rc->files[slot].id = j->row.id;
                rc->files[slot].failed = false;
                rc->pending++;
                log_info("recording: started room=%lld recording=%lld", (long long)rc->room_id,
                         (long long)j->row.id);
            }
        }
    } else {
        /* The recorder went away while the row was created: close it empty. */
        struct gw_rec_job *f = calloc(1, sizeof *f);
        if (f) {
            f->rc = rc;
            f->id = j->row.id;
            snprintf(f->reason, sizeof f->reason, "no media recorded");
            rc->pending++;
            if (db_pool_submit(s->gw->db, rc->loop, rec_close_work, rec_job_done, f) != 0) {
                rc->pending--;
                free(f);
            }
        }
    }
    rc->pending--; /* the create job's own hold */
    gw_rec_maybe_free(rc);
    stream_unref(s);
    free(j);
}

/* Asks the database for a new recording row; the recorder queues frames
 * until the path arrives. */
static void rec_new_file(struct gw_stream *s)
{
    struct gw_rec_job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->rc = s->rec_ctx;
    j->s = s;
    stream_ref(s);
    s->rec_ctx->pending++;
    if (db_pool_submit(s->gw->db, s->loop, rec_create_work, rec_create_done, j) != 0) {
        s->rec_ctx->pending--;
        stream_unref(s);
        free(j);
    }
}

static void rec_start(struct gw_stream *s)
{
    if (s->rec || !s->room_id || s->state != GW_PUBLISHING)
        return;
    struct gw_rec *rc = calloc(1, sizeof *rc);
    if (!rc)
        return;
    rc->gw = s->gw;
    rc->loop = s->loop;
    rc->room_id = s->room_id;
    rc->session_id = s->session_id;
    rc->alive = true;
    struct recorder_config cfg = {0};
    cfg.loop = s->loop;
    cfg.writer = s->gw->writer;
    cfg.ctx = rc;
    cfg.on_error = rec_on_error;
    cfg.on_file_closed = rec_on_file_closed;
    s->rec = recorder_new(&cfg);
    if (!s->rec) {
        free(rc);
        return;
    }
    s->rec_ctx = rc;
    if (s->init.data) {
        struct cmaf_init init = {s->init.data, s->init.len, s->init.tracks, s->init.ntracks, false};
        recorder_init(s->rec, &init);
    }
    rec_new_file(s);
    if (s->backlog_on && s->backlog_room_done) {
        /* The room started with the first segment: so does its recording. */
        for (const struct gw_backlog_item *it = s->bl_head; it; it = it->next)
            if (!it->is_segment)
                recorder_part(s->rec, &it->part);
        backlog_end(s);
    }
}

/* stop_intent: asked for (API stop): the room's is_recording goes false. */
static void rec_stop(struct gw_stream *s, bool stop_intent)
{
    if (!s->rec)
        return;
    s->rec_ctx->stop_intent = stop_intent;
    recorder_close(s->rec, NULL);
    recorder_free(s->rec);
    s->rec = NULL;
    s->rec_ctx->alive = false;
    gw_rec_maybe_free(s->rec_ctx);
    s->rec_ctx = NULL;
}

struct gw_intent_job {
    struct gw_stream *s;
    int64_t room_id;
    bool recording;
};

static void rec_intent_work(PGconn *c, void *arg)
{
    struct gw_intent_job *j = arg;
    char a[24];
    snprintf(a, sizeof a, "%lld", (long long)j->room_id);
    const char *p[1] = {a};
    PGresult *r = db_exec(c, "recording intent",
                          "SELECT is_recording FROM video_rooms WHERE id = $1"
                          " AND video_room_state IN ('LIVE', 'LIVE_INACTIVE')",
                          1, p, NULL);
    j->recording = r && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
}

static void rec_intent_done(void *arg)
{
    struct gw_intent_job *j = arg;
    struct gw_stream *s = j->s;
    if (s->room_id == j->room_id && s->state == GW_PUBLISHING) {
        if (j->recording)
            rec_start(s);
        else
            rec_stop(s, false);
        if (s->backlog_room_done)
            backlog_end(s); /* the recorder has had its chance */
    }
    stream_unref(s);
    free(j);
}

/* Reads the room's recording intent and starts or stops the recorder. */
static void rec_sync(struct gw_stream *s)
{
    if (!s->room_id)
        return;
    struct gw_intent_job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->s = s;
    j->room_id = s->room_id;
    stream_ref(s);
    if (db_pool_submit(s->gw->db, s->loop, rec_intent_work, rec_intent_done, j) != 0) {
        stream_unref(s);
        free(j);
    }
}

/* Binds the stream to a room (the key is live there). */
static void stream_bind_room(struct gw_stream *s, int64_t room_id, bool reconnect)
{
    if (s->room && s->room_id == room_id)
        return;
    media_index_unref(s->room);
    s->room = open_index(s->gw, "rooms", room_id);
    s->room_id = room_id;
    if (!s->room) {
        log_error("gateway: cannot open room index room=%lld", (long long)room_id);
        return;
    }
    media_index_begin_session(s->room);
    s->room_joined = false;
    s->room_pending = true;
    /* reconnect: from the first frame, nothing was packaged for the room yet.
     * Otherwise the room started while the session's start-up backlog is
     * still kept (auto-start with the first segment): it begins there. */
    if (!reconnect && s->backlog_on && !s->backlog_room_done && s->bl_head)
        room_join_from_backlog(s);
    /* The preview stops once the room carries the stream (SPEC PKG-4: it is
     * the broadcaster's view before the room starts). Readers are woken, the
     * registry forgets it, and its window (~3 MB at 2.5 Mbit/s) goes with
     * the last reader instead of staying for the rest of the process. */
    if (s->preview_on) {
        char ids[32];
        snprintf(ids, sizeof ids, "%lld", (long long)s->key_id);
        media_index_set_inactive(s->preview);
        media_registry_remove(s->gw->registry, "keys", ids);
        media_index_unref(s->preview);
        s->preview = NULL;
        s->preview_on = false;
    }
    log_info("gateway: stream joins room key_id=%lld room=%lld", (long long)s->key_id, (long long)room_id);
    rec_sync(s);
}

/* ------------------------------------------------------- db jobs */

static void first_segment_work(PGconn *c, void *arg)
{
    struct gw_job *j = arg;
    j->rc = bc_ingest_first_segment(c, j->s->key_id, j->s->session_id,
                                    j->s->gw->cfg->auto_start_early_sec, &j->pub);
}

static void first_segment_done(void *arg)
{
    struct gw_job *j = arg;
    struct gw_stream *s = j->s;
    if (j->rc == 0) {
        log_info("gateway: first segment key_id=%lld state=%s room=%lld", (long long)s->key_id,
                 j->pub.key_state, (long long)j->pub.room_id);
        if (j->pub.room_id && s->state == GW_PUBLISHING)
            stream_bind_room(s, j->pub.room_id, false);
    }
    if (!s->backlog_room_done)
        backlog_end(s); /* no room started with the first segment */
    stream_unref(s);
    free(j);
}

static void heartbeat_work(PGconn *c, void *arg)
{
    struct gw_job *j = arg;
    j->rc = bc_ingest_heartbeat(c, j->s->key_id, j->s->session_id, GW_LEASE_SEC);
}

static void heartbeat_done(void *arg)
{
    struct gw_job *j = arg;
    if (j->rc == 1 && j->s->sess) {
        /* The key was taken over or terminated elsewhere: this node lost it. */
        log_warn("gateway: lease lost key_id=%lld, closing publisher", (long long)j->s->key_id);
        rtmp_session_close(j->s->sess, "lease lost");
    }
    stream_unref(j->s);
    free(j);
}

static void closed_work(PGconn *c, void *arg)
{
    struct gw_job *j = arg;
    j->rc = bc_ingest_closed(c, j->s->key_id, j->s->session_id, j->reason);
    if (j->s->room_id && j->s->room) {
        struct media_index_stats st;
        media_index_get_stats(j->s->room, &st);
        bc_room_set_hls_position(c, j->s->room_id, (int64_t)st.next_msn, (int)st.session_no);
    }
}

static void closed_done(void *arg)
{
    struct gw_job *j = arg;
    stream_unref(j->s);
    free(j);
}

/* ------------------------------------------------------- RTMP handler */

static void publish_work(PGconn *c, void *arg)
{
    struct gw_job *j = arg;
    struct gw_stream *s = j->s;
    j->pub_status = bc_ingest_publish(c, j->reason /* the key, see on_publish */, s->gw->cfg->node_id,
                                      s->peer, s->gw->cfg->takeover_idle_sec, GW_LEASE_SEC, &j->pub);
    memset(j->reason, 0, sizeof j->reason); /* the key string: gone as soon as used */
}

static void close_local_holder(struct gateway *gw, int64_t key_id, struct gw_stream *except);

static void publish_done(void *arg)
{
    struct gw_job *j = arg;
    struct gw_stream *s = j->s;
    if (!s->sess) {
        /* The publisher left while we checked: undo the claim. */
        if (j->pub_status == BC_PUBLISH_OK) {
            s->key_id = j->pub.key_id;
            s->session_id = j->pub.session_id;
            struct gw_job *c = calloc(1, sizeof *c);
            if (c) {
                snprintf(c->reason, sizeof c->reason, "left during key check");
                if (gw_submit(s, closed_work, closed_done, c) != 0)
                    free(c);
            }
        }
        goto out;
    }
    switch (j->pub_status) {
    case BC_PUBLISH_OK:
        break;
    case BC_PUBLISH_BUSY:
        log_info("gateway: publish refused: key busy key=%s… peer=%s", s->key_hint, s->peer);
        rtmp_session_publish_result(s->sess, false, "NetStream.Publish.BadName",
                                    "stream key is already publishing");
        goto out;
    case BC_PUBLISH_UNKNOWN_KEY:
        log_info("gateway: publish refused: unknown key key=%s… peer=%s", s->key_hint, s->peer);
        rtmp_session_publish_result(s->sess, false, "NetStream.Publish.BadName", "unknown stream key");
        goto out;
    default:
        log_error("gateway: publish refused: database error peer=%s", s->peer);
        rtmp_session_publish_result(s->sess, false, "NetStream.Publish.Failed",
                                    "temporarily unavailable");
        goto out;
    }
    s->key_id = j->pub.key_id;
    s->app_id = j->pub.app_id;
    s->member_id = j->pub.member_id;
    s->session_id = j->pub.session_id;
    /* A takeover (ING-6) of a publisher on this node: close the old one. */
    close_local_holder(s->gw, s->key_id, s);

    struct cmaf_segmenter_config sc;
    cmaf_segmenter_config_defaults(&sc);
    sc.segment_target_ms = (uint32_t)s->gw->cfg->segment_duration_ms;
    sc.part_target_ms = (uint32_t)s->gw->cfg->part_duration_ms;
    sc.expect_audio = s->expect_audio;
    sc.expect_video = s->expect_video;
    sc.frame_rate_hint = s->fps_hint;
    if (j->pub.room_id) {
        /* Reconnect into a live room: continue its numbering and timeline. */
        char ids[32];
        snprintf(ids, sizeof ids, "%lld", (long long)j->pub.room_id);
        struct media_index *room = media_registry_get(s->gw->registry, "rooms", ids);
        if (room) {
            sc.first_msn = media_index_next_msn(room);
            sc.start_time_us = media_index_next_start_us(room);
            sc.discontinuity_at_start = true;
            media_index_unref(room);
        }
    }
    static const struct cmaf_sink fan = {NULL, fan_on_init, fan_on_part, fan_on_segment};
    struct cmaf_sink sink = fan;
    sink.ctx = s;
    char err[256];
    s->seg = cmaf_segmenter_new(&sc, &sink, err, sizeof err);
    s->preview = open_index(s->gw, "keys", s->key_id);
    if (!s->seg || !s->preview) {
        log_error("gateway: packager set-up failed key_id=%lld: %s", (long long)s->key_id, err);
        rtmp_session_publish_result(s->sess, false, "NetStream.Publish.Failed", "internal error");
        struct gw_job *c = calloc(1, sizeof *c);
        if (c) {
            snprintf(c->reason, sizeof c->reason, "packager set-up failed");
            if (gw_submit(s, closed_work, closed_done, c) != 0)
                free(c);
        }
        goto out;
    }
    media_index_begin_session(s->preview);
    s->preview_on = true;
    if (j->pub.room_id) /* reconnect into a live room: ACTIVE_LIVE_PREP */
        stream_bind_room(s, j->pub.room_id, true);
    else
        s->backlog_on = true;
    s->state = GW_PUBLISHING;
    s->last_heartbeat_ms = loop_now_ms();
    gw_list_add(s->gw, s);
    log_info("gateway: publishing key_id=%lld session=%lld state=%s room=%lld peer=%s",
             (long long)s->key_id, (long long)s->session_id, j->pub.key_state,
             (long long)j->pub.room_id, s->peer);
    rtmp_session_publish_result(s->sess, true, "NetStream.Publish.Start", "publishing");
out:
    stream_unref(s);
    free(j);
}

static void on_publish(void *ctx, struct rtmp_session *sess, const struct rtmp_publish_info *info)
{
    struct gateway *gw = ctx;
    struct gw_stream *s = calloc(1, sizeof *s);
    if (!s) {
        rtmp_session_publish_result(sess, false, "NetStream.Publish.Failed", "out of memory");
        return;
    }
    s->gw = gw;
    s->sess = sess;
    s->loop = rtmp_session_loop(sess);
    atomic_init(&s->refs, 1); /* the session's reference, dropped in on_close */
    s->state = GW_AUTHORIZING;
    /* Unknown until onMetaData says: an expected-but-absent track would hold
     * the first init back (the segmenter waits for it). */
    s->expect_audio = s->expect_video = false;
    snprintf(s->peer, sizeof s->peer, "%s", rtmp_session_peer(sess));
    snprintf(s->key_hint, sizeof s->key_hint, "%.4s", info->stream_key);
    rtmp_session_set_userdata(sess, s);
    struct gw_job *j = calloc(1, sizeof *j);
    if (!j || strlen(info->stream_key) >= sizeof j->reason) {
        free(j);
        rtmp_session_publish_result(sess, false, "NetStream.Publish.BadName", "unknown stream key");
        return;
    }
    /* The key travels to the db thread in the job and is wiped after use. */
    snprintf(j->reason, sizeof j->reason, "%s", info->stream_key);
    if (gw_submit(s, publish_work, publish_done, j) != 0) {
        free(j);
        rtmp_session_publish_result(sess, false, "NetStream.Publish.Failed", "server busy");
    }
}

static void on_metadata(void *ctx, struct rtmp_session *sess, double width, double height, double fps,
                        double kbps)
{
    (void)ctx;
    (void)width;
    (void)height;
    (void)kbps;
    struct gw_stream *s = rtmp_session_userdata(sess);
    if (s && fps > 0 && fps < 1000)
        s->fps_hint = fps;
}

static void on_codec_config(void *ctx, struct rtmp_session *sess, const struct media_codec_config *cfg)
{
    (void)ctx;
    struct gw_stream *s = rtmp_session_userdata(sess);
    if (!s || s->state != GW_PUBLISHING)
        return;
    if (cmaf_segmenter_config(s->seg, cfg) != 0)
        log_warn("gateway: codec config not packaged key_id=%lld codec=%s", (long long)s->key_id,
                 cfg->codec_string);
}

static void heartbeat_if_due(struct gw_stream *s)
{
    long long now = loop_now_ms();
    if (now - s->last_heartbeat_ms < GW_HEARTBEAT_MS)
        return;
    s->last_heartbeat_ms = now;
    struct gw_job *j = calloc(1, sizeof *j);
    if (j && gw_submit(s, heartbeat_work, heartbeat_done, j) != 0)
        free(j);
}

static void on_frame(void *ctx, struct rtmp_session *sess, const struct media_frame *f)
{
    (void)ctx;
    struct gw_stream *s = rtmp_session_userdata(sess);
    if (!s || s->state != GW_PUBLISHING)
        return;
    if (cmaf_segmenter_frame(s->seg, f) < 0) {
        log_error("gateway: packager failed key_id=%lld, closing publisher", (long long)s->key_id);
        rtmp_session_close(sess, "packager error");
        return;
    }
    heartbeat_if_due(s);
}

static void on_close(void *ctx, struct rtmp_session *sess, const char *reason)
{
    struct gateway *gw = ctx;
    struct gw_stream *s = rtmp_session_userdata(sess);
    if (!s)
        return;
    s->sess = NULL;
    if (s->state == GW_PUBLISHING) {
        gw_list_remove(gw, s);
        rec_stop(s, false); /* a reconnect starts a new file (REC-1) */
        backlog_end(s);
        cmaf_segmenter_flush(s->seg);
        if (s->preview_on)
            media_index_set_inactive(s->preview);
        if (s->room)
            media_index_set_inactive(s->room);
        log_info("gateway: publisher gone key_id=%lld reason=%s", (long long)s->key_id, reason);
        struct gw_job *j = calloc(1, sizeof *j);
        if (j) {
            snprintf(j->reason, sizeof j->reason, "%s", reason ? reason : "closed");
            if (gw_submit(s, closed_work, closed_done, j) != 0) {
                log_error("gateway: publisher-gone not recorded (db queue full) key_id=%lld",
                          (long long)s->key_id);
                free(j);
            }
        }
    }
    s->state = GW_CLOSED;
    stream_unref(s);
}

/* ------------------------------------------------ commands to streams */

/* Runs fn(stream) on each matching stream's own loop. */
struct gw_cmd {
    struct gw_stream *s;
    int64_t room_id;
    char type[32];
};

static void cmd_run(void *arg)
{
    struct gw_cmd *c = arg;
    struct gw_stream *s = c->s;
    if (s->state == GW_PUBLISHING && s->sess) {
        if (strcmp(c->type, "room_started") == 0) {
            stream_bind_room(s, c->room_id, false);
        } else if (strcmp(c->type, "recording_start") == 0 && s->room_id == c->room_id) {
            rec_start(s);
        } else if (strcmp(c->type, "recording_stop") == 0 && s->room_id == c->room_id) {
            rec_stop(s, true);
        } else if (strcmp(c->type, "key_force_terminated") == 0 || strcmp(c->type, "takeover") == 0 ||
                   strcmp(c->type, "room_ended") == 0 || strcmp(c->type, "room_deleted") == 0) {
            log_info("gateway: disconnecting publisher key_id=%lld cause=%s", (long long)s->key_id, c->type);
            rtmp_session_close(s->sess, c->type);
        }
    }
    stream_unref(s);
    free(c);
}

/* Called with gw->mu held: only refs are taken; work happens on the loop. */
static void post_cmd_locked(struct gw_stream *s, const char *type, int64_t room_id)
{
    struct gw_cmd *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->s = s;
    c->room_id = room_id;
    snprintf(c->type, sizeof c->type, "%s", type);
    stream_ref(s); /* safe: a listed stream still holds its session reference */
    if (loop_post(s->loop, cmd_run, c) != 0) {
        atomic_fetch_sub(&s->refs, 1);
        free(c);
    }
}

static void close_local_holder(struct gateway *gw, int64_t key_id, struct gw_stream *except)
{
    pthread_mutex_lock(&gw->mu);
    for (struct gw_stream *s = gw->streams; s; s = s->next_all)
        if (s->key_id == key_id && s != except)
            post_cmd_locked(s, "takeover", 0);
    pthread_mutex_unlock(&gw->mu);
}

/* Index end for a room on whatever loop: media_index_end is index-locked. */
static void room_index_end(struct gateway *gw, int64_t room_id)
{
    char ids[32];
    snprintf(ids, sizeof ids, "%lld", (long long)room_id);
    struct media_index *idx = media_registry_get(gw->registry, "rooms", ids);
    if (idx) {
        media_index_end(idx);
        media_index_unref(idx);
    }
}

static void on_notify(void *ctx, const char *channel, const char *payload)
{
    (void)channel;
    struct gateway *gw = ctx;
    json_error_t e;
    json_t *o = json_loads(payload, 0, &e);
    if (!o)
        return;
    const char *type = json_string_value(json_object_get(o, "type"));
    int64_t room_id = json_integer_value(json_object_get(o, "roomId"));
    int64_t key_id = json_integer_value(json_object_get(o, "keyId"));
    if (!type) {
        json_decref(o);
        return;
    }
    log_debug("gateway: notify type=%s room=%lld key_id=%lld", type, (long long)room_id, (long long)key_id);
    pthread_mutex_lock(&gw->mu);
    for (struct gw_stream *s = gw->streams; s; s = s->next_all) {
        bool match = (key_id && s->key_id == key_id) || (room_id && s->room_id == room_id);
        if (match)
            post_cmd_locked(s, type, room_id);
    }
    pthread_mutex_unlock(&gw->mu);
    if (room_id && (strcmp(type, "room_ended") == 0 || strcmp(type, "room_deleted") == 0 ||
                    strcmp(type, "key_force_terminated") == 0))
        room_index_end(gw, room_id);
    json_decref(o);
}

static void on_notify_reconnect(void *ctx)
{
    (void)ctx;
    log_info("gateway: notify connection (re)established");
}

/* ------------------------------------------------ timers (main loop) */

struct gw_timer_job {
    struct gateway *gw;
    int ended;
};

static void auto_end_work(PGconn *c, void *arg)
{
    struct gw_timer_job *j = arg;
    j->ended = bc_rooms_auto_end(c);
}

static void auto_end_done(void *arg)
{
    struct gw_timer_job *j = arg;
    if (j->ended > 0)
        log_info("gateway: rooms ended by timers count=%d", j->ended);
    free(j);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct gateway *gw = arg;
    struct gw_timer_job *j = calloc(1, sizeof *j);
    if (!j)
        return;
    j->gw = gw;
    if (db_pool_submit(gw->db, gw->accept_loop, auto_end_work, auto_end_done, j) != 0)
        free(j);
}

/* ------------------------------------------------ lifecycle */

struct gateway *gateway_start(const struct gateway_deps *d, char *err, size_t errlen)
{
    struct gateway *gw = calloc(1, sizeof *gw);
    if (!gw)
        return NULL;
    gw->cfg = d->cfg;
    gw->db = d->db;
    gw->accept_loop = d->accept_loop;
    gw->loops = d->media_loops;
    gw->nloops = d->nmedia_loops;
    gw->registry = d->registry;
    gw->finalizer = d->finalizer;
    pthread_mutex_init(&gw->mu, NULL);
    gw->writer = file_writer_new("rec-writer", 0, d->cfg->recording_fsync_interval_ms);
    if (!gw->writer) {
        snprintf(err, errlen, "gateway: cannot start the recording writer");
        pthread_mutex_destroy(&gw->mu);
        free(gw);
        return NULL;
    }
    file_writer_set_direct_io(gw->writer, d->cfg->recording_direct_io != 0);

    /* OPS-6: sessions this node left open before a crash or restart. */
    PGconn *c = db_connect(d->conninfo, err, errlen);
    if (!c)
        goto fail;
    int recovered = bc_node_recover(c, gw->cfg->node_id);
    PQfinish(c);
    if (recovered < 0) {
        snprintf(err, errlen, "gateway: start-up recovery failed");
        goto fail;
    }
    if (recovered > 0)
        log_info("gateway: recovered sessions left open by this node count=%d", recovered);

    static const struct notify_handler nh_tmpl = {NULL, on_notify, on_notify_reconnect};
    struct notify_handler nh = nh_tmpl;
    nh.ctx = gw;
    gw->notify = notify_listener_start(d->conninfo, "castgate", &nh, err, errlen);
    if (!gw->notify)
        goto fail;

    struct rtmp_server_config rc;
    rtmp_server_config_from(&rc, gw->cfg);
    static const struct rtmp_handler h_tmpl = {
        .on_publish = on_publish,
        .on_codec_config = on_codec_config,
        .on_frame = on_frame,
        .on_metadata = on_metadata,
        .on_close = on_close,
    };
    struct rtmp_handler h = h_tmpl;
    h.ctx = gw;
    gw->rtmp = rtmp_server_new(&rc, gw->accept_loop, gw->loops, gw->nloops, &h, err, errlen);
    if (!gw->rtmp)
        goto fail;
    snprintf(gw->rtmp_addr, sizeof gw->rtmp_addr, "%s", rtmp_server_address(gw->rtmp));

    gw->timer = event_new(loop_base(gw->accept_loop), -1, EV_PERSIST, on_timer, gw);
    struct timeval tv = {GW_TIMER_MS / 1000, (GW_TIMER_MS % 1000) * 1000};
    event_add(gw->timer, &tv);
    return gw;
fail:
    if (gw->notify)
        notify_listener_stop(gw->notify);
    file_writer_free(gw->writer);
    pthread_mutex_destroy(&gw->mu);
    free(gw);
    return NULL;
}

const char *gateway_rtmp_address(const struct gateway *gw) { return gw->rtmp_addr; }

void gateway_stop(struct gateway *gw)
{
    if (!gw)
        return;
    if (gw->timer) {
        event_free(gw->timer);
        gw->timer = NULL;
    }
    if (gw->notify) {
        notify_listener_stop(gw->notify);
        gw->notify = NULL;
    }
    if (gw->rtmp) {
        /* Closes every session on its loop; on_close records each one. */
        rtmp_server_free(gw->rtmp);
        gw->rtmp = NULL;
    }
    /* Recorders closed with their sessions: write and close their files now,
     * while the loops and the db pool still run to record the results. */
    if (gw->writer) {
        file_writer_free(gw->writer);
        gw->writer = NULL;
    }
}

void gateway_free(struct gateway *gw)
{
    if (!gw)
        return;
    pthread_mutex_destroy(&gw->mu);
    free(gw);
}

bool gateway_key_has_publisher(struct gateway *gw, int64_t key_id)
{
    if (!gw)
        return false;
    bool found = false;
    pthread_mutex_lock(&gw->mu);
    for (struct gw_stream *s = gw->streams; s && !found; s = s->next_all)
        found = s->key_id == key_id;
    pthread_mutex_unlock(&gw->mu);
    return found;
}

int gateway_live_streams(struct gateway *gw)
{
    if (!gw)
        return 0;
    pthread_mutex_lock(&gw->mu);
    int n = gw->nlive;
    pthread_mutex_unlock(&gw->mu);
    return n;
}
