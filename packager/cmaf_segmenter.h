/* cmaf_segmenter.h — one ingest session's frames -> CMAF init, parts, segments.
 *
 * The segmenter consumes what ingest hands up (core/media.h: codec configs
 * and frames, timestamps in unwrapped milliseconds) and produces, through a
 * struct cmaf_sink (packager/cmaf_sink.h), an init segment, LL-HLS parts and
 * segment closings:
 *
 *  - Timestamp normalization (SPEC ING-8). Each track's input time is mapped
 *    onto one continuous output media timeline. A backwards step (beyond a
 *    frame of jitter) or a forward jump larger than jump_threshold_ms beyond
 *    the expected next time re-bases the track so it continues where it was:
 *    no negative, zero or huge durations. The segment that follows starts at
 *    the first possible point (a video keyframe) and carries
 *    discontinuity=true. Audio and video share one offset unless one of them
 *    jumps alone, so their relative timing is kept exactly; AAC sample times
 *    follow the frame length (1024 / 960 ...) and are re-anchored to the
 *    input whenever they drift by more than half a frame.
 *  - Cutting (SPEC PKG-2, PKG-3). A part is closed before the frame that
 *    would make it longer than part_target_ms; a part is independent when it
 *    starts with a video keyframe (audio-only: always). A segment is closed
 *    at a video keyframe once it reached segment_target_ms (audio-only: at the
 *    frame that reaches it). With part_target_ms == 0 each segment is one
 *    part. Frames before the first video keyframe are dropped.
 *  - Codec configs (SPEC ING-9). The first init waits until every expected
 *    track has its config (or start_wait_ms of media went by). A config with
 *    different extradata, or a track appearing later, closes the segment,
 *    makes a new init (discontinuity=true) and continues at the next keyframe.
 *
 * Every timestamp reported to the sink is output media time in microseconds;
 * the fMP4 tfdt of each track equals it (in the track's timescale).
 * Durations: a part or segment lasts from its start to the start of the next
 * one; the last one before a new init or flush ends at its last frame's end.
 *
 * Latency: a frame is packaged once the next frame of its track (its duration)
 * and the other track's frames up to its time are known (about one frame).
 * A part or segment boundary that is already certain when the frame after it
 * arrives is cut right then, so a part is published as soon as the frame
 * that begins the next one arrives; the last part of a segment carries
 * ends_segment.
 *
 * Threading: one segmenter belongs to one loop thread; no call blocks. Sink
 * callbacks run synchronously inside _config/_frame/_flush and must not call
 * back into the segmenter. */
#ifndef PACKAGER_CMAF_SEGMENTER_H
#define PACKAGER_CMAF_SEGMENTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/media.h"
#include "packager/cmaf_sink.h"

struct cmaf_segmenter;

struct cmaf_segmenter_config {
    uint32_t segment_target_ms;   /* SPEC PKG-2: 2000 */
    uint32_t part_target_ms;      /* SPEC PKG-3: 500; 0 = no parts (one part per segment) */
    uint64_t first_msn;           /* msn of the first segment (a reconnect continues the room's) */
    int64_t start_time_us;        /* media time of the first frame (continue a room's timeline) */
    bool discontinuity_at_start;  /* first init/segment follows an earlier session (reconnect) */
    /* Ceiling of the bytes held: queued frames, and one part in the muxer. */
    size_t max_buffer;
    /* From onMetaData (hasAudio/hasVideo, audio/videocodecid); false = unknown. */
    bool expect_audio, expect_video;
    double frame_rate_hint;       /* onMetaData framerate; 0 = unknown */
    /* How much media (ms) to buffer while waiting for a second track's config
     * before the first init: start_wait_ms for a track nobody announced, five
     * times that for an announced one. */
    uint32_t start_wait_ms;
    uint32_t jump_threshold_ms;   /* ING-8 forward jump beyond the expected time */
    /* Clocks (µs); NULL = CLOCK_REALTIME / CLOCK_MONOTONIC. For tests. */
    long long (*now_wall_us)(void *clock_ctx);
    long long (*now_mono_us)(void *clock_ctx);
    void *clock_ctx;
};

/* Fills the spec defaults: 2000 / 500 ms, msn 0, 64 MiB, 1000 ms wait,
 * 5000 ms jump threshold, system clocks. */
void cmaf_segmenter_config_defaults(struct cmaf_segmenter_config *cfg);

/* Creates a segmenter. cfg is copied; sink is copied and its ctx borrowed
 * until _free. Returns NULL with a message in err on a bad config. */
struct cmaf_segmenter *cmaf_segmenter_new(const struct cmaf_segmenter_config *cfg,
                                          const struct cmaf_sink *sink, char *err, size_t errlen);

/* A codec config (sequence header). The extradata is copied. An identical
 * repeat is ignored. Returns 0, or negative when the config cannot be
 * packaged (unsupported codec, malformed extradata: the track's frames are
 * then dropped) or on a muxer error. */
int cmaf_segmenter_config(struct cmaf_segmenter *s, const struct media_codec_config *cfg);

/* One frame; its bytes are copied. Frames of a track without config, and
 * video before the first keyframe, are dropped (return 0). Returns negative
 * only on an internal error (muxer, memory): the stream should be closed. */
int cmaf_segmenter_frame(struct cmaf_segmenter *s, const struct media_frame *f);

/* End of stream: packages everything held and closes the last part and
 * segment. Frames after a flush start a new segment (discontinuity). */
int cmaf_segmenter_flush(struct cmaf_segmenter *s);

/* msn a segmenter continuing this stream should start at: one past the last
 * segment this one opened (first_msn when none). */
uint64_t cmaf_segmenter_next_msn(const struct cmaf_segmenter *s);

/* Media time (µs) just past the last frame packaged: the start_time_us a
 * continuing segmenter should use. */
int64_t cmaf_segmenter_end_time_us(const struct cmaf_segmenter *s);

/* Measured video frame rate (0 when unknown): updated as frames go by. */
double cmaf_segmenter_frame_rate(const struct cmaf_segmenter *s);

struct cmaf_segmenter_stats {
    uint64_t frames_in, frames_dropped, parts, segments, inits, discontinuities, bytes_out;
};
void cmaf_segmenter_get_stats(const struct cmaf_segmenter *s, struct cmaf_segmenter_stats *out);

void cmaf_segmenter_free(struct cmaf_segmenter *s);

#endif
