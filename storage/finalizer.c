/* finalizer.c — finished recordings rewritten as faststart MP4s on a worker
 * thread: mp4_faststart, or a libavformat remux as fallback (see finalizer.h). */
#include "storage/finalizer.h"

#include <errno.h>
#include <fcntl.h>
#include <libavformat/avformat.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "storage/db.h"
#include "storage/file_store.h"
#include "storage/mp4_faststart.h"
#include "storage/recordings.h"

#define FIN_DEFAULT_QUEUE 1024

/* --- the remux ------------------------------------------------------------- */

/* reason is a bounded one-liner; long paths are cut, never overflow. */
static void reasonf(char *reason, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void reasonf(char *reason, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, cap, fmt, ap);
    va_end(ap);
}
#define REASON(out, ...) reasonf((out)->reason, sizeof (out)->reason, __VA_ARGS__)

static void reason_av(struct finalize_result *out, const char *what, const char *path, int averr)
{
    char e[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(averr, e, sizeof e);
    REASON(out, "%s %s: %s", what, path, e);
}

static int fsync_path(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* Duration of an MP4 from its moov: the longest track (mdhd/edit lists as
 * the demuxer presents them), in ms. -1 if it cannot be read. */
static int64_t measure_duration_ms(const char *path)
{
    AVFormatContext *ic = NULL;
    if (avformat_open_input(&ic, path, NULL, NULL) < 0)
        return -1;
    int64_t best = -1;
    for (unsigned i = 0; i < ic->nb_streams; i++) {
        AVStream *st = ic->streams[i];
        if (st->duration <= 0 || st->duration == AV_NOPTS_VALUE)
            continue;
        int64_t ms = av_rescale_q(st->duration, st->time_base, (AVRational){1, 1000});
        if (ms > best)
            best = ms;
    }
    if (best < 0 && ic->duration > 0 && ic->duration != AV_NOPTS_VALUE)
        best = ic->duration / 1000;
    avformat_close_input(&ic);
    return best;
}

#define FIN_PRELUDE_MAX 4096          /* packets held back to find the first pts */
#define FIN_PRELUDE_US (2 * AV_TIME_BASE)

struct remux {
    AVFormatContext *ic, *oc;
    int *map;                /* input stream → output stream, -1 = dropped */
    int64_t *last_dur;       /* per input stream, input time base: last dts step */
    int64_t *prev_dts;       /* per input stream */
    int64_t shift_us;        /* subtracted from every timestamp */
    struct finalize_result *out;
    const char *tmp;
};

/* Writes pkt (input time base) shifted by -shift_us into the output. The mov
 * demuxer gives the samples of a fragmented file no duration; the muxer takes
 * them from dts differences except for the last sample, which sets the track
 * end (and the edit list): each packet without one gets its stream's previous
 * dts step, so the last frame is still covered. */
static int write_shifted(struct remux *m, AVPacket *pkt)
{
    int si = pkt->stream_index;
    AVStream *ist = m->ic->streams[si];
    AVStream *ost = m->oc->streams[m->map[si]];
    if (m->prev_dts[si] != AV_NOPTS_VALUE && pkt->dts > m->prev_dts[si])
        m->last_dur[si] = pkt->dts - m->prev_dts[si];
    m->prev_dts[si] = pkt->dts;
    if (pkt->duration <= 0)
        pkt->duration = m->last_dur[si];
    int64_t shift = av_rescale_q(m->shift_us, AV_TIME_BASE_Q, ist->time_base);
    if (pkt->pts != AV_NOPTS_VALUE)
        pkt->pts -= shift;
    pkt->dts -= shift;
    av_packet_rescale_ts(pkt, ist->time_base, ost->time_base);
    pkt->stream_index = m->map[si];
    pkt->pos = -1;
    int ret = av_interleaved_write_frame(m->oc, pkt); /* takes the packet's data */
    if (ret < 0) {
        reason_av(m->out, "write", m->tmp, ret);
        return -1;
    }
    m->out->packets++;
    return 0;
}

static int write_prelude(struct remux *m, AVPacket **prelude, int *n)
{
    int rc = 0;
    for (int i = 0; i < *n; i++) {
        if (rc == 0 && write_shifted(m, prelude[i]) != 0)
            rc = -1;
        av_packet_free(&prelude[i]);
    }
    *n = 0;
    return rc;
}

/* The fallback: libavformat reads the file and its mp4 muxer writes it
 * again with movflags=faststart. */
int finalizer_remux_libavformat(const char *src, const char *dst, struct finalize_result *out)
{
    memset(out, 0, sizeof *out);
    out->writer = "libavformat";
    AVFormatContext *ic = NULL, *oc = NULL;
    AVPacket *pkt = NULL, **prelude = NULL;
    int64_t *last_dur = NULL;
    AVDictionary *opts = NULL;
    int *map = NULL;
    bool tmp_created = false;
    char tmp[PATH_MAX];
    int ret;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", dst) >= (int)sizeof tmp) {
        REASON(out, "path too long: %s", dst);
        return -1;
    }
    if ((ret = avformat_open_input(&ic, src, NULL, NULL)) < 0) {
        reason_av(out, "open", src, ret);
        goto fail;
    }
    if ((ret = avformat_alloc_output_context2(&oc, NULL, "mp4", tmp)) < 0 || !oc) {
        reason_av(out, "muxer for", tmp, ret < 0 ? ret : AVERROR(ENOMEM));
        goto fail;
    }
    map = calloc(ic->nb_streams ? ic->nb_streams : 1, sizeof *map);
    if (!map) {
        reason_av(out, "remux", src, AVERROR(ENOMEM));
        goto fail;
    }
    int nout = 0;
    for (unsigned i = 0; i < ic->nb_streams; i++) {
        AVStream *ist = ic->streams[i];
        map[i] = -1;
        enum AVMediaType t = ist->codecpar->codec_type;
        if (t != AVMEDIA_TYPE_VIDEO && t != AVMEDIA_TYPE_AUDIO)
            continue;
        AVStream *ost = avformat_new_stream(oc, NULL);
        if (!ost || avcodec_parameters_copy(ost->codecpar, ist->codecpar) < 0) {
            reason_av(out, "stream for", tmp, AVERROR(ENOMEM));
            goto fail;
        }
        ost->codecpar->codec_tag =
            ist->codecpar->codec_id == AV_CODEC_ID_HEVC ? MKTAG('h', 'v', 'c', '1') : 0;
        if (ost->codecpar->codec_id == AV_CODEC_ID_AAC && ost->codecpar->frame_size <= 0)
            ost->codecpar->frame_size = 1024;
        ost->time_base = ist->time_base;
        map[i] = nout++;
    }
    if (nout == 0) {
        REASON(out, "no audio or video track in %s", src);
        goto fail;
    }
    if ((ret = avio_open(&oc->pb, tmp, AVIO_FLAG_WRITE)) < 0) {
        reason_av(out, "create", tmp, ret);
        goto fail;
    }
    tmp_created = true;
    av_dict_set(&opts, "movflags", "faststart", 0);
    if ((ret = avformat_write_header(oc, &opts)) < 0) {
        reason_av(out, "header of", tmp, ret);
        goto fail;
    }
    pkt = av_packet_alloc();
    prelude = calloc(FIN_PRELUDE_MAX, sizeof *prelude);
    last_dur = calloc(2 * (size_t)ic->nb_streams, sizeof *last_dur);
    struct remux m = {.ic = ic, .oc = oc, .map = map, .last_dur = last_dur,
                      .prev_dts = last_dur ? last_dur + ic->nb_streams : NULL, .out = out, .tmp = tmp};
    if (!pkt || !prelude || !last_dur) {
        reason_av(out, "remux", src, AVERROR(ENOMEM));
        goto fail;
    }
    for (unsigned i = 0; i < ic->nb_streams; i++)
        m.prev_dts[i] = AV_NOPTS_VALUE;
    /* The first presented sample becomes time 0: the packets of the first
     * FIN_PRELUDE_US are held back to find the smallest pts (B-frames and
     * open-GOP leading pictures come after the keyframe in decode order), then
     * everything is shifted by it. The muxer then writes an edit list for the
     * reordering delay, as an encoder's own file has, and players show every
     * frame including the last one. */
    int64_t min_pts_us = INT64_MAX, first_dts_us = AV_NOPTS_VALUE;
    bool shifting = false;
    int nprelude = 0;
    for (;;) {
        ret = av_read_frame(ic, pkt);
        if (ret == AVERROR_EOF)
            break;
        if (ret < 0) {
            /* A file cut by a crash ends inside a fragment: keep what came
             * before it (REC-1). */
            char e[AV_ERROR_MAX_STRING_SIZE];
            av_strerror(ret, e, sizeof e);
            log_info("finalizer: %s ends early (%s): keeping what came before", src, e);
            break;
        }
        if (pkt->flags & AV_PKT_FLAG_CORRUPT) {
            log_info("finalizer: %s: truncated sample at the end, dropped", src);
            av_packet_unref(pkt);
            break;
        }
        if ((unsigned)pkt->stream_index >= ic->nb_streams || map[pkt->stream_index] < 0 ||
            pkt->dts == AV_NOPTS_VALUE) {
            av_packet_unref(pkt);
            continue;
        }
        if (!shifting) {
            AVRational tb = ic->streams[pkt->stream_index]->time_base;
            int64_t pts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : pkt->dts;
            int64_t pts_us = av_rescale_q(pts, tb, AV_TIME_BASE_Q);
            int64_t dts_us = av_rescale_q(pkt->dts, tb, AV_TIME_BASE_Q);
            if (pts_us < min_pts_us)
                min_pts_us = pts_us;
            if (first_dts_us == AV_NOPTS_VALUE)
                first_dts_us = dts_us;
            prelude[nprelude] = av_packet_alloc();
            if (!prelude[nprelude]) {
                reason_av(out, "remux", src, AVERROR(ENOMEM));
                goto fail;
            }
            av_packet_move_ref(prelude[nprelude++], pkt);
            if (nprelude < FIN_PRELUDE_MAX && dts_us - first_dts_us < FIN_PRELUDE_US)
                continue;
            shifting = true;
            m.shift_us = min_pts_us;
            if (write_prelude(&m, prelude, &nprelude) != 0)
                goto fail;
            continue;
        }
        if (write_shifted(&m, pkt) != 0)
            goto fail;
    }
    m.shift_us = min_pts_us == INT64_MAX ? 0 : min_pts_us;
    if (!shifting && write_prelude(&m, prelude, &nprelude) != 0)
        goto fail;
    if (out->packets == 0) {
        REASON(out, "no media in %s", src);
        goto fail;
    }
    /* faststart: a second pass moves moov in front of mdat (REC-3). */
    if ((ret = av_write_trailer(oc)) < 0) {
        reason_av(out, "trailer of", tmp, ret);
        goto fail;
    }
    if ((ret = avio_closep(&oc->pb)) < 0) {
        reason_av(out, "close", tmp, ret);
        goto fail;
    }
    if (fsync_path(tmp) != 0) {
        REASON(out, "fsync %s: %s", tmp, strerror(errno));
        goto fail;
    }
    avformat_close_input(&ic);
    if (file_store_publish(tmp, dst) != 0) {
        REASON(out, "rename %s: %s", tmp, strerror(errno));
        goto fail;
    }
    tmp_created = false;
    struct stat st;
    out->size_bytes = stat(dst, &st) == 0 ? (int64_t)st.st_size : 0;
    out->duration_ms = measure_duration_ms(dst);
    if (out->duration_ms < 0)
        out->duration_ms = 0;
    av_packet_free(&pkt);
    free(prelude);
    free(last_dur);
    av_dict_free(&opts);
    free(map);
    avformat_free_context(oc);
    return 0;
fail:
    if (!out->reason[0])
        REASON(out, "remux of %s failed", src);
    av_packet_free(&pkt);
    if (prelude) {
        for (int i = 0; i < FIN_PRELUDE_MAX; i++)
            av_packet_free(&prelude[i]);
        free(prelude);
    }
    free(last_dur);
    av_dict_free(&opts);
    free(map);
    if (oc) {
        if (oc->pb)
            avio_closep(&oc->pb);
        avformat_free_context(oc);
    }
    if (ic)
        avformat_close_input(&ic);
    if (tmp_created)
        unlink(tmp);
    return -1;
}

/* Our own recordings go through mp4_faststart (the fragments' bytes are
 * copied, no demux/mux); anything it does not handle through libavformat. */
int finalizer_remux(const char *src, const char *dst, struct finalize_result *out)
{
    memset(out, 0, sizeof *out);
    int probe = mp4_faststart_probe(src);
    if (probe < 0) {
        REASON(out, "read %s: %s", src, strerror(errno));
        return -1;
    }
    if (probe == 0)
        return finalizer_remux_libavformat(src, dst, out);
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", dst) >= (int)sizeof tmp) {
        REASON(out, "path too long: %s", dst);
        return -1;
    }
    struct mp4_faststart_stats st;
    char why[sizeof out->reason];
    int rc = mp4_faststart_write(src, tmp, &st, why, sizeof why); /* tmp is fsynced on success */
    if (rc == MP4_FASTSTART_UNSUPPORTED) {
        log_info("finalizer: %s: %s; remuxing with libavformat", src, why);
        return finalizer_remux_libavformat(src, dst, out);
    }
    out->writer = "mp4_faststart";
    if (rc != 0) {
        REASON(out, "%s: %s", src, why);
        return -1;
    }
    if (st.truncated)
        log_info("finalizer: %s ends inside a fragment: kept %llu samples, dropped %llu", src,
                 (unsigned long long)st.samples, (unsigned long long)st.dropped);
    if (file_store_publish(tmp, dst) != 0) {
        REASON(out, "rename %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return -1;
    }
    out->size_bytes = (int64_t)st.bytes;
    out->duration_ms = st.duration_ms;
    out->packets = (int64_t)st.samples;
    return 0;
}

/* --- the thread -------------------------------------------------------------- */

struct fin_job {
    int64_t id;
    char rel[256];
};

struct finalizer {
    char conninfo[1024];
    char data_dir[PATH_MAX];
    char actor[160];
    int ttl;
    PGconn *conn;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct fin_job *ring;
    size_t cap, head, count;
    bool stopping;
    uint64_t done;
};

static PGconn *fin_conn(struct finalizer *f)
{
    if (f->conn && PQstatus(f->conn) == CONNECTION_OK)
        return f->conn;
    if (f->conn) {
        PQreset(f->conn);
        if (PQstatus(f->conn) == CONNECTION_OK) {
            PQclear(PQexec(f->conn, "SET TIME ZONE 'UTC'"));
            return f->conn;
        }
        PQfinish(f->conn);
        f->conn = NULL;
    }
    char err[512];
    f->conn = db_connect(f->conninfo, err, sizeof err);
    if (!f->conn)
        log_warn("finalizer: %s", err);
    return f->conn;
}

/* Runs a row update, reconnecting once if the connection broke. */
static int fin_update(struct finalizer *f, int64_t id, const struct finalize_result *res, bool ok)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        PGconn *c = fin_conn(f);
        if (!c)
            continue;
        int rc = ok ? recordings_mark_ready(c, id, res->size_bytes, res->duration_ms, f->ttl, f->actor)
                    : recordings_mark_failed(c, id, res->reason, f->actor);
        if (rc >= 0)
            return rc;
        if (PQstatus(c) == CONNECTION_OK)
            return -1; /* a real SQL error: retrying will not help */
    }
    return -1;
}

static void fin_run(struct finalizer *f, const struct fin_job *job)
{
    char path[PATH_MAX];
    struct finalize_result res;
    memset(&res, 0, sizeof res);
    long long t0 = loop_now_ms();
    bool ok = false;
    if (file_store_join(path, sizeof path, f->data_dir, job->rel) != 0)
        REASON(&res, "bad recording path \"%s\"", job->rel);
    else if (access(path, F_OK) != 0)
        REASON(&res, "recording file missing (%s)", job->rel);
    else
        ok = finalizer_remux(path, path, &res) == 0;
    if (ok)
        log_info("finalizer: ready id=%lld bytes=%lld duration_ms=%lld writer=%s took_ms=%lld", (long long)job->id,
                 (long long)res.size_bytes, (long long)res.duration_ms, res.writer, loop_now_ms() - t0);
    else
        log_warn("finalizer: failed id=%lld reason=\"%s\"", (long long)job->id, res.reason);
    int rc = fin_update(f, job->id, &res, ok);
    if (rc < 0)
        log_warn("finalizer: id=%lld state not saved; it stays PROCESSING until the next start",
                 (long long)job->id);
    else if (rc == RECORDINGS_WRONG_STATE)
        log_info("finalizer: id=%lld moved on meanwhile (swept or failed); not updated", (long long)job->id);
}

static void *fin_main(void *arg)
{
    struct finalizer *f = arg;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        while (!f->count && !f->stopping)
            pthread_cond_wait(&f->cv, &f->mu);
        if (f->stopping)
            break;
        struct fin_job job = f->ring[f->head];
        f->head = (f->head + 1) % f->cap;
        f->count--;
        pthread_mutex_unlock(&f->mu);
        fin_run(f, &job);
        pthread_mutex_lock(&f->mu);
        f->done++;
    }
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

struct finalizer *finalizer_start(const struct finalizer_config *cfg, char *err, size_t errlen)
{
    struct finalizer *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "finalizer: out of memory");
        return NULL;
    }
    snprintf(f->conninfo, sizeof f->conninfo, "%s", cfg->conninfo);
    snprintf(f->data_dir, sizeof f->data_dir, "%s", cfg->data_dir);
    snprintf(f->actor, sizeof f->actor, "finalizer:%s", cfg->node_id);
    f->ttl = cfg->recording_ttl_sec;
    f->cap = cfg->queue_max > 0 ? (size_t)cfg->queue_max : FIN_DEFAULT_QUEUE;
    f->ring = calloc(f->cap, sizeof *f->ring);
    if (!f->ring) {
        free(f);
        snprintf(err, errlen, "finalizer: out of memory");
        return NULL;
    }
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    if (pthread_create(&f->thread, NULL, fin_main, f) != 0) {
        snprintf(err, errlen, "finalizer: cannot start thread");
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->cv);
        free(f->ring);
        free(f);
        return NULL;
    }
    pthread_setname_np(f->thread, "finalizer");
    return f;
}

int finalizer_submit(struct finalizer *f, int64_t recording_id, const char *rel_path)
{
    if (strlen(rel_path) >= sizeof f->ring[0].rel)
        return -1;
    pthread_mutex_lock(&f->mu);
    if (f->stopping || f->count == f->cap) {
        pthread_mutex_unlock(&f->mu);
        log_warn("finalizer: queue full, id=%lld stays PROCESSING", (long long)recording_id);
        return -1;
    }
    struct fin_job *j = &f->ring[(f->head + f->count) % f->cap];
    j->id = recording_id;
    snprintf(j->rel, sizeof j->rel, "%s", rel_path);
    f->count++;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

int finalizer_recover(struct finalizer *f, PGconn *c)
{
    struct recording_row *rows = NULL;
    int n = 0;
    char node[128];
    /* actor is "finalizer:NODE" */
    snprintf(node, sizeof node, "%s", strchr(f->actor, ':') + 1);
    if (recordings_claim_unfinished(c, node, f->actor, &rows, &n) != 0)
        return -1;
    int queued = 0;
    for (int i = 0; i < n; i++)
        if (finalizer_submit(f, rows[i].id, rows[i].path) == 0)
            queued++;
    if (n)
        log_info("finalizer: recovering %d unfinished recordings of node %s", queued, node);
    free(rows);
    return queued;
}

void finalizer_counts(struct finalizer *f, uint64_t *done, size_t *queued)
{
    pthread_mutex_lock(&f->mu);
    if (done)
        *done = f->done;
    if (queued)
        *queued = f->count;
    pthread_mutex_unlock(&f->mu);
}

void finalizer_stop(struct finalizer *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&f->mu);
    f->stopping = true;
    pthread_cond_signal(&f->cv);
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    if (f->count)
        log_info("finalizer: %zu jobs left PROCESSING for the next start", f->count);
    if (f->conn)
        PQfinish(f->conn);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f->ring);
    free(f);
}
