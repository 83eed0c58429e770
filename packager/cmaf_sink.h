/* cmaf_sink.h — what the CMAF segmenter produces, and how it hands it on.
 *
 * The segmenter (packager/cmaf_segmenter.c) turns codec configs and frames of
 * one ingest session into an init segment and a sequence of parts (LL-HLS
 * partial segments; each one or more moof+mdat fragments). Consecutive parts
 * with the same msn form one media segment: the segment's bytes are exactly
 * the concatenation of its parts' bytes. on_segment() closes a segment after
 * all its parts were delivered.
 *
 * The media index (packager/media_index.c) implements the sink: it copies
 * what it keeps into refcounted immutable buffers, renders playlists and
 * serves viewers. All callbacks run on the stream's media loop; every pointer
 * is borrowed for the duration of the call. */
#ifndef PACKAGER_CMAF_SINK_H
#define PACKAGER_CMAF_SINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/media.h"

struct cmaf_track_info {
    enum media_kind kind;
    enum media_codec codec;
    char codec_string[48];   /* RFC 6381, for CODECS */
    int width, height;       /* video */
    double frame_rate;       /* video, measured or from metadata; 0 if unknown */
    int sample_rate, channels; /* audio */
};

struct cmaf_init {
    const uint8_t *data;     /* ftyp + moov */
    size_t len;
    const struct cmaf_track_info *tracks;
    int ntracks;
    /* true when this init replaces an earlier one in the same stream (new
     * sequence header, ING-9): the next segment carries EXT-X-DISCONTINUITY. */
    bool discontinuity;
};

struct cmaf_part {
    const uint8_t *data;     /* moof+mdat (one or more pairs) */
    size_t len;
    uint64_t msn;            /* media sequence number of the segment it belongs to */
    uint32_t part_index;     /* 0-based index within that segment */
    int64_t start_us;        /* media time of its first sample (normalized, continuous) */
    int64_t duration_us;
    bool independent;        /* starts with a video sync sample (always true audio-only) */
    bool discontinuity;      /* first part after a timestamp jump / new init / reconnect */
    long long wall_us;       /* wall clock (µs since epoch) its first sample arrived: PROGRAM-DATE-TIME */
    long long ready_mono_us; /* monotonic clock when this part was closed (latency probes) */
    /* The segment ends with this part: on_segment for its msn follows right
     * after this call (a sink may close the segment now, so that readers
     * woken by this part already see it complete). */
    bool ends_segment;
};

struct cmaf_segment {
    uint64_t msn;
    int64_t start_us, duration_us;
    uint32_t nparts;
    size_t bytes;
    bool discontinuity;      /* same as its first part's */
    long long wall_us;       /* PROGRAM-DATE-TIME of its first sample */
    uint64_t bitrate_bps;    /* bytes * 8 / duration */
};

struct cmaf_sink {
    void *ctx;
    void (*on_init)(void *ctx, const struct cmaf_init *init);
    void (*on_part)(void *ctx, const struct cmaf_part *part);
    void (*on_segment)(void *ctx, const struct cmaf_segment *seg);
};

#endif
