/* media.h — the hand-off between ingest and the packager.
 *
 * ingest/ parses FLV tags (legacy and Enhanced RTMP) into these two shapes and
 * hands them up through a callback table; packager/ consumes them. Neither side
 * includes the other's headers: this file is the whole contract.
 *
 * Ownership: every pointer in these structs is borrowed for the duration of
 * the callback that receives it. A consumer that keeps data copies it. */
#ifndef CORE_MEDIA_H
#define CORE_MEDIA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum media_kind { MEDIA_KIND_VIDEO = 0, MEDIA_KIND_AUDIO = 1 };

enum media_codec {
    MEDIA_CODEC_NONE = 0,
    MEDIA_CODEC_H264,  /* extradata: AVCDecoderConfigurationRecord (avcC) */
    MEDIA_CODEC_HEVC,  /* extradata: HEVCDecoderConfigurationRecord (hvcC) */
    MEDIA_CODEC_AV1,   /* extradata: AV1CodecConfigurationRecord (av1C) */
    MEDIA_CODEC_AAC,   /* extradata: AudioSpecificConfig */
};

/* Codec configuration ("sequence header"). A new one mid-stream means a new
 * init segment and a discontinuity (SPEC ING-9). */
struct media_codec_config {
    enum media_kind kind;
    enum media_codec codec;
    const uint8_t *extradata;
    size_t extradata_len;
    /* RFC 6381 codecs string for the HLS CODECS attribute, e.g.
     * "avc1.64001f", "hvc1.1.6.L93.B0", "av01.0.08M.08", "mp4a.40.2". */
    char codec_string[48];
    /* video */
    int width, height;        /* from the SPS / sequence header; 0 if unknown */
    /* audio */
    int sample_rate, channels; /* from the AudioSpecificConfig */
};

/* One access unit. Video payload is length-prefixed (4-byte) NAL units for
 * H.264/HEVC (the mp4 sample format), OBUs for AV1; audio is raw AAC frames. */
struct media_frame {
    enum media_kind kind;
    int64_t dts_ms;   /* unwrapped, monotonic-per-track 64-bit decode time, ms */
    int32_t cts_ms;   /* composition offset (pts = dts + cts), ms; 0 for audio */
    bool keyframe;    /* video sync sample; always true for audio */
    const uint8_t *data;
    size_t len;
};

#endif
