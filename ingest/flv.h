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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/media.h"

enum flv_result {
    FLV_FRAME = 1,          /* *frame filled (points into the tag body) */
    FLV_CONFIG = 2,         /* *config filled (extradata points into the tag body) */
    FLV_IGNORED = 0,        /* valid but nothing to hand on (end of sequence, metadata, empty) */
    /* errors: *reason is a static string naming the problem */
    FLV_ERR_TRUNCATED = -1,
    FLV_ERR_UNSUPPORTED = -2, /* codec we do not package: *reason says which */
    FLV_ERR_MALFORMED = -3,   /* bad config record etc.: *reason says what */
};

/* tag_ts_ms is the unwrapped 64-bit RTMP message timestamp (the DTS).
 * On FLV_ERR_UNSUPPORTED / FLV_ERR_MALFORMED / FLV_ERR_TRUNCATED, *reason is
 * set to a static string for the log line, e.g. "video codec id 2 (Sorenson
 * H.263) unsupported"; otherwise it is set to NULL. config, frame and reason
 * may be NULL (the result is then only classified).
 *
 * Video: legacy codec id 7 (H.264) and the common codec id 12 extension
 * (HEVC, same layout); Enhanced RTMP FourCC 'avc1', 'hvc1', 'av01' with ModEx
 * prefixes skipped. Keyframe = frame type 1. cts_ms = the SI24 composition
 * time (legacy, and E-RTMP CodedFrames for avc1/hvc1), 0 otherwise. The frame
 * payload is checked before it is handed on: 4-byte NAL lengths must tile it
 * exactly (H.264/HEVC), OBU sizes must (AV1); an avcC/hvcC whose
 * lengthSizeMinusOne is not 3 is FLV_ERR_UNSUPPORTED (no conversion: frames
 * are handed on without copying). Command frames, end of sequence, E-RTMP
 * Metadata, empty sequence headers and empty frames are FLV_IGNORED.
 * Multitrack, MPEG2TSSequenceStart, VP8/VP9 and other codecs are
 * FLV_ERR_UNSUPPORTED.
 *
 * Audio: sound format 10 (AAC) and Enhanced RTMP audio FourCC 'mp4a'. Frames
 * are keyframes with cts 0. Other sound formats / FourCCs and multitrack
 * audio are FLV_ERR_UNSUPPORTED. */
int flv_parse_video(const uint8_t *body, size_t len, int64_t tag_ts_ms,
                    struct media_codec_config *config, struct media_frame *frame,
                    const char **reason);
int flv_parse_audio(const uint8_t *body, size_t len, int64_t tag_ts_ms,
                    struct media_codec_config *config, struct media_frame *frame,
                    const char **reason);

/* Codec-config record parsers: fill width/height (video) or sample_rate/channels
 * (audio) and codec_string of cfg from the record. 0 or -1 (malformed).
 * On success they also set kind, codec and extradata/extradata_len (= rec);
 * other fields of cfg are kept. On failure cfg is untouched. Never read past
 * rec[len).
 *  avcC: "avc1.PPCCLL" from the record's profile/compat/level; size from the
 *        first SPS (cropping applied). Any NAL length size is accepted here.
 *  hvcC: "hvc1.[A-C]<profile>.<compat reversed, hex>.<L|H><level>[.<constraint
 *        byte, 2 hex digits>]*" (ISO/IEC 14496-15 Annex E, trailing zero
 *        bytes omitted; same form as GStreamer's codec-utils); size from
 *        the first SPS in the arrays (required).
 *  av1C: "av01.<profile>.<level, 2 digits><M|H>.<bit depth, 2 digits>"; size
 *        from the sequence header OBU in configOBUs, 0x0 if there is none.
 *  AudioSpecificConfig: "mp4a.40.<audioObjectType>"; sample rate from the
 *        index or the explicit 24-bit value (the extension rate for explicit
 *        SBR/PS, object types 5 and 29); channels from the channel
 *        configuration (0 when it is in a PCE). */
int flv_parse_avcc(const uint8_t *rec, size_t len, struct media_codec_config *cfg);
int flv_parse_hvcc(const uint8_t *rec, size_t len, struct media_codec_config *cfg);
int flv_parse_av1c(const uint8_t *rec, size_t len, struct media_codec_config *cfg);
int flv_parse_asc(const uint8_t *rec, size_t len, struct media_codec_config *cfg);

/* SPEC ING-9: true when `next` describes a different stream than `cur` (kind,
 * codec or configuration-record bytes differ), i.e. a new init segment and an
 * EXT-X-DISCONTINUITY are due. Encoders re-send identical sequence headers
 * (periodically, or after a pause); those are not changes. A NULL cur, or one
 * without extradata, is "no configuration yet": any next is a change.
 * Neither argument is modified. */
bool flv_config_changed(const struct media_codec_config *cur, const struct media_codec_config *next);

#endif
