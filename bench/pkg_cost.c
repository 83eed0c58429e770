/* pkg_cost.c — CPU cost of packaging one stream (FLV frames -> CMAF parts).
 *
 *   build/bench/pkg_cost [FILE.flv] [RUNS] [DUMP.mp4]
 *
 * Loads an FLV (H.264 + AAC) into memory — by default a 60 s 1280x720 30 fps
 * 2.5 Mbit/s clip made once with the ffmpeg CLI under /tmp — and runs it
 * through cmaf_segmenter RUNS times (default 5) with a sink that only counts,
 * in-process: no RTMP, no index, no I/O. It prints the process CPU time of
 * the fastest and the median run and the packaging CPU per second of media,
 * i.e. the share of one core a live stream of this kind costs the packager.
 * Output: one line of key=value for bench/run.sh. With DUMP.mp4, the init
 * segment and every part of the last run are also written there, one after
 * the other (a fragmented MP4 that ffprobe reads), to check the output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "packager/cmaf_segmenter.h"
#include "tests/unit/cmaf_test_media.h"

#define DEFAULT_FLV "/tmp/castgate_bench_720p30_2500k_60s.flv"

struct counts {
    uint64_t inits, parts, segments, bytes;
    FILE *dump;
};

static void on_init(void *ctx, const struct cmaf_init *i)
{
    struct counts *c = ctx;
    c->inits++;
    c->bytes += i->len;
    if (c->dump)
        fwrite(i->data, 1, i->len, c->dump);
}

static void on_part(void *ctx, const struct cmaf_part *p)
{
    struct counts *c = ctx;
    c->parts++;
    c->bytes += p->len;
    if (c->dump)
        fwrite(p->data, 1, p->len, c->dump);
}

static void on_segment(void *ctx, const struct cmaf_segment *g)
{
    struct counts *c = ctx;
    (void)g;
    c->segments++;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int make_clip(const char *path)
{
    fprintf(stderr, "pkg_cost: generating %s with ffmpeg (once)...\n", path);
    return cmaf_test_sh("ffmpeg -nostdin -y -v error -f lavfi -i testsrc2=size=1280x720:rate=30 "
                        "-f lavfi -i sine=frequency=440:sample_rate=48000 -t 60 "
                        "-c:v libx264 -preset veryfast -pix_fmt yuv420p -b:v 2500k -maxrate 2500k "
                        "-bufsize 5000k -g 60 -keyint_min 60 -sc_threshold 0 -bf 2 "
                        "-c:a aac -b:a 128k -f flv '%s.tmp' && mv '%s.tmp' '%s'",
                        path, path, path);
}

/* Feeds the whole file once; returns CPU seconds, or < 0 on failure. */
static double run_once(const struct cmaf_test_flv *flv, struct counts *c)
{
    struct cmaf_segmenter_config cfg;
    cmaf_segmenter_config_defaults(&cfg);
    struct cmaf_sink sink = { c, on_init, on_part, on_segment };
    char err[128];
    double t0 = cpu_now();
    struct cmaf_segmenter *s = cmaf_segmenter_new(&cfg, &sink, err, sizeof(err));
    if (!s) {
        fprintf(stderr, "pkg_cost: %s\n", err);
        return -1;
    }
    for (size_t i = 0; i < flv->ntags; i++) {
        const struct cmaf_test_tag *t = &flv->tags[i];
        int rc;
        if (t->config) {
            struct media_codec_config cfgm = cmaf_test_config(t, 1280, 720);
            rc = cmaf_segmenter_config(s, &cfgm);
        } else {
            struct media_frame f = cmaf_test_frame(t);
            rc = cmaf_segmenter_frame(s, &f);
        }
        if (rc < 0) {
            fprintf(stderr, "pkg_cost: segmenter error %d at tag %zu\n", rc, i);
            cmaf_segmenter_free(s);
            return -1;
        }
    }
    cmaf_segmenter_flush(s);
    cmaf_segmenter_free(s);
    return cpu_now() - t0;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : DEFAULT_FLV;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (runs < 1 || runs > 100)
        runs = 5;
    log_set_level(LOG_WARN);

    FILE *probe = fopen(path, "rb");
    if (probe)
        fclose(probe);
    else if (argc > 1 || make_clip(path) != 0) {
        fprintf(stderr, "pkg_cost: cannot read or make %s\n", path);
        return 1;
    }
    struct cmaf_test_flv flv;
    if (cmaf_test_flv_load(path, &flv) < 0) {
        fprintf(stderr, "pkg_cost: cannot parse %s\n", path);
        return 1;
    }
    int64_t first = -1, last = 0;
    uint64_t in_bytes = 0, frames = 0;
    for (size_t i = 0; i < flv.ntags; i++) {
        if (flv.tags[i].config)
            continue;
        if (first < 0)
            first = flv.tags[i].ts;
        last = flv.tags[i].ts;
        in_bytes += flv.tags[i].len;
        frames++;
    }
    double media_s = (double)(last - first) / 1000.0;
    if (media_s <= 0) {
        fprintf(stderr, "pkg_cost: no media in %s\n", path);
        return 1;
    }

    double cpu[100];
    struct counts c = { 0 };
    for (int r = 0; r < runs; r++) {
        memset(&c, 0, sizeof(c));
        if (r == runs - 1 && argc > 3 && !(c.dump = fopen(argv[3], "wb"))) {
            fprintf(stderr, "pkg_cost: cannot write %s\n", argv[3]);
            return 1;
        }
        cpu[r] = run_once(&flv, &c);
        if (c.dump)
            fclose(c.dump);
        if (cpu[r] < 0)
            return 1;
    }
    qsort(cpu, (size_t)runs, sizeof(cpu[0]), cmp_double);
    double best = cpu[0], median = cpu[runs / 2];
    printf("pkg_cost file=%s media_s=%.1f frames=%llu in_mbps=%.2f out_bytes=%llu parts=%llu "
           "segments=%llu runs=%d cpu_best_s=%.4f cpu_median_s=%.4f "
           "cpu_per_media_s=%.5f core_pct_per_stream=%.3f streams_per_core=%.0f\n",
           path, media_s, (unsigned long long)frames, (double)in_bytes * 8 / media_s / 1e6,
           (unsigned long long)c.bytes, (unsigned long long)c.parts,
           (unsigned long long)c.segments, runs, best, median, median / media_s,
           100.0 * median / media_s, media_s / median);
    cmaf_test_flv_free(&flv);
    return 0;
}
