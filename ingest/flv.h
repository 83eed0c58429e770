/* flv.h — FLV audio/video tag bodies (as carried in RTMP messages 8 and 9)
 * into codec configurations and frames: legacy FLV (H.264 codec id 7, AAC
 * sound format 10) and Enhanced RTMP (FourCC 'avc1', 'hvc1', 'av01'; the
 * IsExHeader bit, PacketTypes SequenceStart / CodedFrames / CodedFramesX /
 * SequenceEnd / Metadata). Also the codec-config record parsers that derive
 * width/height and the RFC 6381 codecs string (avcC + SPS, hvcC, av1C,
 * AudioSpecificConfig).
 *
 * Pure functions over buffers; no allocation; every length is checked. */
#ifndef INGEST_FLV_H
#define INGEST_FLV_H

#include <stddef.h>
#include <stdint.h>

#include "core/media.h"

enum flv_result {
    FLV_FRAME = 1,          /* *frame filled (points into the tag body) */
    FLV_CONFIG = 2,         /* *config filled (extradata points into the tag body) */
    FLV_IGNORED = 0,        /* valid but nothing to hand on (end of sequence, metadata, empty) */
    FLV_ERR_TRUNCATED = -1,
    FLV_ERR_UNSUPPORTED = -2, /* codec we do not package: *reason says which */
    FLV_ERR_MALFORMED = -3,   /* bad config record etc.: *reason says what */
};

/* tag_ts_ms is the unwrapped 64-bit RTMP message timestamp (the DTS).
 * On FLV_ERR_UNSUPPORTED / FLV_ERR_MALFORMED, *reason is set to a static
 * string for the log line, e.g. "video codec id 2 (Sorenson H.263) unsupported". */
int flv_parse_video(const uint8_t *body, size_t len, int64_t tag_ts_ms,
                    struct media_codec_config *config, struct media_frame *frame,
                    const char **reason);
int flv_parse_audio(const uint8_t *body, size_t len, int64_t tag_ts_ms,
                    struct media_codec_config *config, struct media_frame *frame,
                    const char **reason);

/* Codec-config record parsers: fill width/height (video) or sample_rate/channels
 * (audio) and codec_string of cfg from the record. 0 or -1 (malformed). */
int flv_parse_avcc(const uint8_t *rec, size_t len, struct media_codec_config *cfg);
int flv_parse_hvcc(const uint8_t *rec, size_t len, struct media_codec_config *cfg);
int flv_parse_av1c(const uint8_t *rec, size_t len, struct media_codec_config *cfg);
int flv_parse_asc(const uint8_t *rec, size_t len, struct media_codec_config *cfg);

#endif
