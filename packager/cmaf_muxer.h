/* cmaf_muxer.h — CMAF init segment and fragments in memory.
 *
 * One muxer = one init segment (ftyp+moov, written by libavformat's mp4
 * muxer) and then any number of fragments (moof+mdat, written by this
 * module), all in memory with a ceiling; no file or socket is touched (SPEC
 * PKG-1, PKG-7). The muxer is driven with samples whose timestamps are
 * already in the track's timescale (90 kHz for video, the sample rate for
 * audio) and whose duration is known, and it closes a fragment on request:
 * that fragment is one LL-HLS part (SPEC PKG-3). Both tracks' samples written
 * since the last flush go into the one moof (one traf per track, video
 * first; in the mdat each track's samples are contiguous, video first).
 *
 * Timestamps: each fragment's tfdt (version 1) is the dts of its first sample
 * of that track, so a muxer created mid-stream (new codec config, SPEC ING-9)
 * continues the media timeline instead of restarting at zero, and a gap
 * between fragments (a track that paused) stays a gap. Inside a fragment a
 * sample lasts until the next one of its track; the last one lasts its given
 * duration. Composition offsets are written as given (pts - dts >= 0, trun
 * version 0), without an edit list and without shifting the decode timeline.
 * (movflags "cmaf" is not used for the init: it forces negative CTS offsets,
 * which shift every track's decode time by its first composition offset. The
 * boxes needed by CMAF / HLS fMP4 - empty moov with mvex, moof with
 * default-base-is-moof, tfdt v1 - are written; the ftyp carries iso5/iso6.)
 *
 * Threading: a muxer belongs to one thread; no call blocks. */
#ifndef PACKAGER_CMAF_MUXER_H
#define PACKAGER_CMAF_MUXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/media.h"

#define CMAF_MUXER_VIDEO_TIMESCALE 90000
#define CMAF_MUXER_DEFAULT_MAX_BYTES (32u << 20)
#define CMAF_MUXER_MIN_MAX_BYTES (256u << 10)

struct cmaf_muxer;

struct cmaf_muxer_config {
    /* Track configs; either may be NULL (audio-only / video-only), not both.
     * Borrowed for the duration of cmaf_muxer_new() only. */
    const struct media_codec_config *video;
    const struct media_codec_config *audio;
    /* Ceiling of the memory buffer: the init segment and every single
     * fragment must fit. 0 = CMAF_MUXER_DEFAULT_MAX_BYTES; values below
     * CMAF_MUXER_MIN_MAX_BYTES are raised to it. */
    size_t max_bytes;
    /* mfhd sequence number of the first fragment (0 or 1 = start at 1), so a
     * muxer that replaces another keeps the numbers increasing. */
    uint32_t first_fragment;
};

struct cmaf_muxer_sample {
    enum media_kind kind;
    int64_t dts;        /* track timescale; >= the previous sample's dts + duration */
    int64_t pts;        /* >= dts */
    int64_t duration;   /* > 0: distance to the next sample of the track */
    bool keyframe;      /* sync sample (always true for audio) */
    const uint8_t *data; /* mp4 sample format (see core/media.h) */
    size_t len;
};

/* Decoded fields of an AAC AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1). */
struct cmaf_muxer_asc {
    int object_type;    /* 2 = AAC-LC, 5 = SBR, 29 = PS ... */
    int sample_rate;    /* core sampling frequency */
    int out_rate;       /* output frequency (the SBR one when signalled) */
    int channels;       /* from channelConfiguration; 0 = in a PCE */
    int frame_samples;  /* samples per frame at out_rate (1024, 960, 2048 ...) */
};

/* Parses an AudioSpecificConfig. Returns 0, or -1 when it is malformed. */
int cmaf_muxer_parse_asc(const uint8_t *asc, size_t len, struct cmaf_muxer_asc *out);

/* Creates the muxer and writes the init segment. Returns NULL and a message
 * in err on failure (unsupported codec, bad extradata, libavformat error). */
struct cmaf_muxer *cmaf_muxer_new(const struct cmaf_muxer_config *cfg, char *err, size_t errlen);

/* The init segment (ftyp+moov); owned by the muxer, valid until _free. */
const uint8_t *cmaf_muxer_init_data(const struct cmaf_muxer *m, size_t *len);

bool cmaf_muxer_has_track(const struct cmaf_muxer *m, enum media_kind kind);
/* Timescale of a track (ticks per second); 0 when the track is absent. */
uint32_t cmaf_muxer_timescale(const struct cmaf_muxer *m, enum media_kind kind);

/* Adds a sample to the open fragment. Returns 0; -EINVAL for a rejected
 * sample (absent track, dts before the previous sample's end, pts < dts,
 * duration <= 0);
 * -ENOSPC when the open fragment would outgrow the ceiling (flush first);
 * the muxer stays usable after those. After a libavformat / output error
 * (-EIO, -ENOMEM) every further call fails. */
int cmaf_muxer_write(struct cmaf_muxer *m, const struct cmaf_muxer_sample *s);

/* Closes the open fragment: *data and *len receive its moof+mdat bytes, owned by
 * the muxer and valid until the next _write/_flush/_free. With no sample
 * written since the last flush, returns 0 with *len == 0. */
int cmaf_muxer_flush(struct cmaf_muxer *m, const uint8_t **data, size_t *len);

/* Bytes of sample data in the open fragment. */
size_t cmaf_muxer_pending_bytes(const struct cmaf_muxer *m);

/* Number of fragments closed so far. */
uint32_t cmaf_muxer_fragments(const struct cmaf_muxer *m);

void cmaf_muxer_free(struct cmaf_muxer *m);

#endif
