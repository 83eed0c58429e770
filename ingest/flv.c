/* flv.c — FLV audio/video tag bodies and codec configuration records.
 *
 * Implements:
 *  - legacy FLV VIDEODATA / AUDIODATA tag bodies (Adobe FLV spec v10.1,
 *    Annex E.4.2.1 and E.4.3.1): H.264 (codec id 7) and AAC (sound format 10);
 *  - Enhanced RTMP ExVideoTagHeader / ExAudioTagHeader (veovera enhanced-rtmp
 *    v2: "Enhanced Video", "Enhanced Audio"): FourCC 'avc1' 'hvc1' 'av01' and
 *    'mp4a', VideoPacketType SequenceStart/CodedFrames/SequenceEnd/
 *    CodedFramesX/Metadata/MPEG2TSSequenceStart and ModEx prefixes;
 *  - AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1) and the H.264
 *    SPS (ITU-T H.264 §7.3.2.1.1), HEVCDecoderConfigurationRecord (14496-15
 *    §8.3.3.1) and the HEVC SPS (ITU-T H.265 §7.3.2.2), AV1CodecConfiguration
 *    Record (AV1-ISOBMFF §2.3) and the AV1 sequence header OBU (AV1 spec
 *    §5.5), AudioSpecificConfig (ISO/IEC 14496-3 §1.6.2.1);
 *  - RFC 6381 codecs strings: avc1 (RFC 6381 §3.3), hvc1 (14496-15 Annex E),
 *    av01 (AV1-ISOBMFF "Codecs Parameter String"), mp4a.40.x (RFC 6381 §3.3).
 *
 * Packaging policy (SPEC ING-5): frames are handed on in the mp4 sample form
 * without copying, so H.264/HEVC NAL units must use 4-byte length prefixes;
 * a configuration record with lengthSizeMinusOne != 3 is refused as
 * unsupported (every encoder we target writes 4). Each H.264/HEVC frame's
 * length prefixes must walk the payload exactly, and each AV1 frame's OBU
 * headers must, or the frame is FLV_ERR_MALFORMED.
 *
 * No allocation: every pointer handed out points into the caller's buffer. */
#include "ingest/flv.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/bytes.h"

/* ---- bit reader -----------------------------------------------------------
 * MSB-first reader over a byte buffer. With `epb` set it drops H.264/HEVC
 * emulation-prevention bytes (0x000003 -> 0x0000, H.264 §7.4.1) on the fly,
 * so no unescaped copy is needed. Reading past the end sets `err` and yields
 * zeros; callers check err before trusting a result. */
struct bits {
    const uint8_t *p;
    size_t len, pos;
    int zeros;      /* consecutive 0x00 bytes just read (EPB detection) */
    bool epb;
    uint8_t cur;
    int nbits;      /* bits left in cur */
    bool err;
};

static void bits_init(struct bits *b, const uint8_t *p, size_t len, bool epb)
{
    memset(b, 0, sizeof *b);
    b->p = p;
    b->len = len;
    b->epb = epb;
}

static bool bits_load(struct bits *b)
{
    if (b->pos >= b->len) {
        b->err = true;
        return false;
    }
    uint8_t c = b->p[b->pos++];
    if (b->epb && b->zeros >= 2 && c == 0x03) {
        b->zeros = 0;
        if (b->pos >= b->len) {
            b->err = true;
            return false;
        }
        c = b->p[b->pos++];
    }
    b->zeros = c == 0 ? b->zeros + 1 : 0;
    b->cur = c;
    b->nbits = 8;
    return true;
}

static uint32_t get_bit(struct bits *b)
{
    if (b->err)
        return 0;
    if (b->nbits == 0 && !bits_load(b))
        return 0;
    b->nbits--;
    return (b->cur >> b->nbits) & 1u;
}

/* n <= 32 */
static uint32_t get_bits(struct bits *b, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n && !b->err; i++)
        v = (v << 1) | get_bit(b);
    return b->err ? 0 : (uint32_t)v;
}

static void skip_bits(struct bits *b, unsigned n)
{
    while (n-- && !b->err)
        get_bit(b);
}

/* ue(v), H.264 §9.1. Codes longer than 32 bits are an error. */
static uint32_t get_ue(struct bits *b)
{
    int lz = 0;
    while (!b->err && get_bit(b) == 0) {
        if (++lz > 31) {
            b->err = true;
            return 0;
        }
    }
    if (b->err)
        return 0;
    return (uint32_t)(((uint64_t)1 << lz) - 1 + get_bits(b, lz));
}

/* se(v), H.264 §9.1.1 */
static int64_t get_se(struct bits *b)
{
    uint32_t k = get_ue(b);
    return (k & 1) ? (int64_t)(k / 2) + 1 : -(int64_t)(k / 2);
}

/* uvlc(), AV1 §4.10.3 */
static uint32_t get_uvlc(struct bits *b)
{
    int lz = 0;
    while (!b->err && get_bit(b) == 0)
        if (++lz >= 32)
            break;
    if (b->err)
        return 0;
    if (lz >= 32)
        return UINT32_MAX;
    return (uint32_t)(((uint64_t)1 << lz) - 1 + get_bits(b, lz));
}

/* ---- H.264 ---------------------------------------------------------------- */

#define MAX_DIM 65535u

/* scaling_list(), H.264 §7.3.2.1.1.1: only consumed, not kept. */
static bool h264_skip_scaling_list(struct bits *b, int size)
{
    int last = 8, next = 8;
    for (int j = 0; j < size && !b->err; j++) {
        if (next != 0) {
            int64_t delta = get_se(b);
            if (delta < -128 || delta > 127)
                return false;
            next = (int)((last + delta + 256) % 256);
        }
        last = next == 0 ? last : next;
    }
    return !b->err;
}

/* seq_parameter_set_data(), H.264 §7.3.2.1.1, up to frame cropping; the
 * display size follows §7.4.2.1.1 (CropUnitX/CropUnitY). sps points at the
 * NAL unit including its one-byte header. */
static int h264_sps_dimensions(const uint8_t *sps, size_t len, int *w, int *h)
{
    if (len < 4 || (sps[0] & 0x80) || (sps[0] & 0x1f) != 7)
        return -1;
    struct bits b;
    bits_init(&b, sps + 1, len - 1, true);
    uint32_t profile_idc = get_bits(&b, 8);
    skip_bits(&b, 16); /* constraint flags, level_idc */
    if (get_ue(&b) > 31) /* seq_parameter_set_id */
        return -1;
    uint32_t chroma_format_idc = 1;
    bool separate_colour_plane = false;
    switch (profile_idc) {
    case 100: case 110: case 122: case 244: case 44: case 83: case 86:
    case 118: case 128: case 138: case 139: case 134: case 135:
        chroma_format_idc = get_ue(&b);
        if (chroma_format_idc > 3)
            return -1;
        if (chroma_format_idc == 3)
            separate_colour_plane = get_bit(&b);
        if (get_ue(&b) > 6 || get_ue(&b) > 6) /* bit_depth_luma/chroma_minus8 */
            return -1;
        get_bit(&b); /* qpprime_y_zero_transform_bypass_flag */
        if (get_bit(&b)) { /* seq_scaling_matrix_present_flag */
            int n = chroma_format_idc != 3 ? 8 : 12;
            for (int i = 0; i < n; i++)
                if (get_bit(&b) && !h264_skip_scaling_list(&b, i < 6 ? 16 : 64))
                    return -1;
        }
        break;
    default:
        break;
    }
    if (get_ue(&b) > 12) /* log2_max_frame_num_minus4 */
        return -1;
    uint32_t poc_type = get_ue(&b);
    if (poc_type == 0) {
        if (get_ue(&b) > 12) /* log2_max_pic_order_cnt_lsb_minus4 */
            return -1;
    } else if (poc_type == 1) {
        get_bit(&b); /* delta_pic_order_always_zero_flag */
        get_se(&b);  /* offset_for_non_ref_pic */
        get_se(&b);  /* offset_for_top_to_bottom_field */
        uint32_t cycle = get_ue(&b);
        if (cycle > 255)
            return -1;
        for (uint32_t i = 0; i < cycle && !b.err; i++)
            get_se(&b);
    } else if (poc_type != 2) {
        return -1;
    }
    get_ue(&b);  /* max_num_ref_frames */
    get_bit(&b); /* gaps_in_frame_num_value_allowed_flag */
    uint64_t w_mbs = (uint64_t)get_ue(&b) + 1;
    uint64_t h_map = (uint64_t)get_ue(&b) + 1;
    uint32_t frame_mbs_only = get_bit(&b);
    if (!frame_mbs_only)
        get_bit(&b); /* mb_adaptive_frame_field_flag */
    get_bit(&b);     /* direct_8x8_inference_flag */
    uint64_t crop_l = 0, crop_r = 0, crop_t = 0, crop_b = 0;
    if (get_bit(&b)) {
        crop_l = get_ue(&b);
        crop_r = get_ue(&b);
        crop_t = get_ue(&b);
        crop_b = get_ue(&b);
    }
    if (b.err)
        return -1;
    uint64_t width = w_mbs * 16;
    uint64_t height = (2 - frame_mbs_only) * h_map * 16;
    if (width > MAX_DIM || height > MAX_DIM)
        return -1;
    uint32_t chroma_array_type = separate_colour_plane ? 0 : chroma_format_idc;
    uint64_t cux, cuy;
    if (chroma_array_type == 0) {
        cux = 1;
        cuy = 2 - frame_mbs_only;
    } else {
        uint64_t sub_w = chroma_array_type == 3 ? 1 : 2;
        uint64_t sub_h = chroma_array_type == 1 ? 2 : 1;
        cux = sub_w;
        cuy = sub_h * (2 - frame_mbs_only);
    }
    uint64_t cw = cux * (crop_l + crop_r), ch = cuy * (crop_t + crop_b);
    if (cw >= width || ch >= height)
        return -1;
    *w = (int)(width - cw);
    *h = (int)(height - ch);
    return 0;
}

int flv_parse_avcc(const uint8_t *rec, size_t len, struct media_codec_config *cfg)
{
    /* ISO/IEC 14496-15 §5.3.3.1.1: version, profile, compat, level,
     * 6 bits reserved + lengthSizeMinusOne, 3 bits reserved + numOfSPS. */
    if (!rec || !cfg || len < 7 || rec[0] != 1)
        return -1;
    size_t pos = 5;
    unsigned nsps = rec[pos++] & 0x1f;
    if (nsps == 0)
        return -1;
    const uint8_t *sps = NULL;
    size_t sps_len = 0;
    for (unsigned i = 0; i < nsps; i++) {
        if (len - pos < 2)
            return -1;
        size_t n = rd_be16(rec + pos);
        pos += 2;
        if (n == 0 || len - pos < n)
            return -1;
        if (i == 0) {
            sps = rec + pos;
            sps_len = n;
        }
        pos += n;
    }
    if (len - pos < 1)
        return -1;
    unsigned npps = rec[pos++];
    for (unsigned i = 0; i < npps; i++) {
        if (len - pos < 2)
            return -1;
        size_t n = rd_be16(rec + pos);
        pos += 2;
        if (n == 0 || len - pos < n)
            return -1;
        pos += n;
    }
    /* Trailing high-profile fields (chroma_format etc.) are not needed. */
    int w, h;
    if (h264_sps_dimensions(sps, sps_len, &w, &h) < 0)
        return -1;
    struct media_codec_config c = *cfg;
    c.kind = MEDIA_KIND_VIDEO;
    c.codec = MEDIA_CODEC_H264;
    c.extradata = rec;
    c.extradata_len = len;
    c.width = w;
    c.height = h;
    snprintf(c.codec_string, sizeof c.codec_string, "avc1.%02x%02x%02x",
             rec[1], rec[2], rec[3]);
    *cfg = c;
    return 0;
}

/* ---- HEVC ----------------------------------------------------------------- */

/* profile_tier_level(1, maxNumSubLayersMinus1), H.265 §7.3.3: consumed only. */
static void hevc_skip_ptl(struct bits *b, unsigned max_sub_layers_minus1)
{
    skip_bits(b, 88); /* general profile space .. general_inbld/reserved */
    skip_bits(b, 8);  /* general_level_idc */
    bool prof[8] = {false}, lvl[8] = {false};
    for (unsigned i = 0; i < max_sub_layers_minus1; i++) {
        prof[i] = get_bit(b);
        lvl[i] = get_bit(b);
    }
    if (max_sub_layers_minus1 > 0)
        for (unsigned i = max_sub_layers_minus1; i < 8; i++)
            skip_bits(b, 2); /* reserved_zero_2bits */
    for (unsigned i = 0; i < max_sub_layers_minus1; i++) {
        if (prof[i])
            skip_bits(b, 88);
        if (lvl[i])
            skip_bits(b, 8);
    }
}

/* seq_parameter_set_rbsp(), H.265 §7.3.2.2.1, up to the conformance window;
 * display size per §7.4.3.2.1 (SubWidthC/SubHeightC, Table 6-1). sps points
 * at the NAL unit including its two-byte header. */
static int hevc_sps_dimensions(const uint8_t *sps, size_t len, int *w, int *h)
{
    if (len < 3 || (sps[0] & 0x80) || ((sps[0] >> 1) & 0x3f) != 33)
        return -1;
    struct bits b;
    bits_init(&b, sps + 2, len - 2, true);
    skip_bits(&b, 4); /* sps_video_parameter_set_id */
    unsigned max_sub_layers_minus1 = get_bits(&b, 3);
    if (max_sub_layers_minus1 > 6)
        return -1;
    get_bit(&b); /* sps_temporal_id_nesting_flag */
    hevc_skip_ptl(&b, max_sub_layers_minus1);
    if (get_ue(&b) > 15) /* sps_seq_parameter_set_id */
        return -1;
    uint32_t chroma_format_idc = get_ue(&b);
    if (chroma_format_idc > 3)
        return -1;
    if (chroma_format_idc == 3)
        get_bit(&b); /* separate_colour_plane_flag: SubWidthC stays 1 */
    uint64_t width = get_ue(&b), height = get_ue(&b);
    uint64_t cl = 0, cr = 0, ct = 0, cb = 0;
    if (get_bit(&b)) { /* conformance_window_flag */
        cl = get_ue(&b);
        cr = get_ue(&b);
        ct = get_ue(&b);
        cb = get_ue(&b);
    }
    if (b.err || width == 0 || height == 0 || width > MAX_DIM || height > MAX_DIM)
        return -1;
    uint64_t sub_w = (chroma_format_idc == 1 || chroma_format_idc == 2) ? 2 : 1;
    uint64_t sub_h = chroma_format_idc == 1 ? 2 : 1;
    uint64_t cw = sub_w * (cl + cr), ch = sub_h * (ct + cb);
    if (cw >= width || ch >= height)
        return -1;
    *w = (int)(width - cw);
    *h = (int)(height - ch);
    return 0;
}

static uint32_t reverse_bits32(uint32_t v)
{
    uint32_t r = 0;
    for (int i = 0; i < 32; i++, v >>= 1)
        r = (r << 1) | (v & 1);
    return r;
}

int flv_parse_hvcc(const uint8_t *rec, size_t len, struct media_codec_config *cfg)
{
    /* ISO/IEC 14496-15 §8.3.3.1.2: 23 fixed bytes, then numOfArrays arrays
     * of (completeness/type, numNalus, (u16 length, NAL unit)*). */
    if (!rec || !cfg || len < 23 || rec[0] != 1)
        return -1;
    unsigned narrays = rec[22];
    size_t pos = 23;
    const uint8_t *sps = NULL;
    size_t sps_len = 0;
    for (unsigned a = 0; a < narrays; a++) {
        if (len - pos < 3)
            return -1;
        unsigned type = rec[pos] & 0x3f;
        unsigned nnal = rd_be16(rec + pos + 1);
        pos += 3;
        for (unsigned i = 0; i < nnal; i++) {
            if (len - pos < 2)
                return -1;
            size_t n = rd_be16(rec + pos);
            pos += 2;
            if (n == 0 || len - pos < n)
                return -1;
            if (type == 33 && !sps) {
                sps = rec + pos;
                sps_len = n;
            }
            pos += n;
        }
    }
    int w, h;
    if (!sps || hevc_sps_dimensions(sps, sps_len, &w, &h) < 0)
        return -1;

    /* Codecs string, ISO/IEC 14496-15 Annex E.3. */
    static const char *const space[4] = { "", "A", "B", "C" };
    unsigned profile_space = rec[1] >> 6, tier = (rec[1] >> 5) & 1, profile_idc = rec[1] & 0x1f;
    uint32_t compat = reverse_bits32(rd_be32(rec + 2));
    unsigned level = rec[12];
    struct media_codec_config c = *cfg;
    int n = snprintf(c.codec_string, sizeof c.codec_string, "hvc1.%s%u.%X.%c%u",
                     space[profile_space], profile_idc, compat, tier ? 'H' : 'L', level);
    int last = -1;
    for (int i = 0; i < 6; i++)
        if (rec[6 + i])
            last = i;
    for (int i = 0; i <= last && n > 0 && (size_t)n < sizeof c.codec_string; i++)
        n += snprintf(c.codec_string + n, sizeof c.codec_string - (size_t)n, ".%02X", rec[6 + i]);
    c.kind = MEDIA_KIND_VIDEO;
    c.codec = MEDIA_CODEC_HEVC;
    c.extradata = rec;
    c.extradata_len = len;
    c.width = w;
    c.height = h;
    *cfg = c;
    return 0;
}

/* ---- AV1 ------------------------------------------------------------------ */

/* leb128(), AV1 §4.10.5: at most 8 bytes, value < 2^32 for our use. */
static int read_leb128(const uint8_t *p, size_t len, size_t *used, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++) {
        if (i >= len)
            return -1;
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *used = i + 1;
            *out = v;
            return v > UINT32_MAX ? -1 : 0;
        }
    }
    return -1;
}

/* Walks one OBU at p (AV1 §5.3.1 obu_header + optional obu_size); sets the
 * payload span and the total OBU size. An OBU without obu_size extends to the
 * end of the buffer. */
static int obu_next(const uint8_t *p, size_t len, int *type, const uint8_t **payload,
                    size_t *payload_len, size_t *total)
{
    if (len < 1 || (p[0] & 0x80)) /* obu_forbidden_bit */
        return -1;
    *type = (p[0] >> 3) & 0x0f;
    bool ext = p[0] & 0x04, has_size = p[0] & 0x02;
    size_t hdr = ext ? 2 : 1;
    if (len < hdr)
        return -1;
    size_t plen;
    if (has_size) {
        size_t used;
        uint64_t sz;
        if (read_leb128(p + hdr, len - hdr, &used, &sz) < 0)
            return -1;
        hdr += used;
        if (sz > len - hdr)
            return -1;
        plen = (size_t)sz;
    } else {
        plen = len - hdr;
    }
    *payload = p + hdr;
    *payload_len = plen;
    *total = hdr + plen;
    return 0;
}

/* sequence_header_obu(), AV1 §5.5.1, up to max_frame_{width,height}_minus_1. */
static int av1_seq_dimensions(const uint8_t *p, size_t len, int *w, int *h)
{
    struct bits b;
    bits_init(&b, p, len, false);
    skip_bits(&b, 3); /* seq_profile */
    get_bit(&b);      /* still_picture */
    bool reduced = get_bit(&b);
    if (reduced) {
        skip_bits(&b, 5); /* seq_level_idx[0] */
    } else {
        bool decoder_model_info_present = false;
        unsigned buffer_delay_len = 0;
        if (get_bit(&b)) { /* timing_info_present_flag: timing_info() §5.5.3 */
            skip_bits(&b, 64);
            if (get_bit(&b)) /* equal_picture_interval */
                get_uvlc(&b);
            decoder_model_info_present = get_bit(&b);
            if (decoder_model_info_present) { /* decoder_model_info() §5.5.4 */
                buffer_delay_len = get_bits(&b, 5) + 1;
                skip_bits(&b, 32 + 5 + 5);
            }
        }
        bool initial_display_delay_present = get_bit(&b);
        unsigned ops = get_bits(&b, 5) + 1;
        for (unsigned i = 0; i < ops && !b.err; i++) {
            skip_bits(&b, 12); /* operating_point_idc */
            if (get_bits(&b, 5) > 7) /* seq_level_idx */
                get_bit(&b);          /* seq_tier */
            if (decoder_model_info_present && get_bit(&b))
                skip_bits(&b, 2 * buffer_delay_len + 1); /* operating_parameters_info() */
            if (initial_display_delay_present && get_bit(&b))
                skip_bits(&b, 4);
        }
    }
    int wbits = (int)get_bits(&b, 4) + 1, hbits = (int)get_bits(&b, 4) + 1;
    uint64_t width = (uint64_t)get_bits(&b, wbits) + 1;
    uint64_t height = (uint64_t)get_bits(&b, hbits) + 1;
    if (b.err || width > MAX_DIM || height > MAX_DIM)
        return -1;
    *w = (int)width;
    *h = (int)height;
    return 0;
}

int flv_parse_av1c(const uint8_t *rec, size_t len, struct media_codec_config *cfg)
{
    /* AV1-ISOBMFF §2.3.3: marker(1)=1 version(7)=1; seq_profile(3)
     * seq_level_idx_0(5); seq_tier_0 high_bitdepth twelve_bit monochrome
     * subsampling_x subsampling_y chroma_sample_position(2); reserved(3)
     * initial_presentation_delay(5); configOBUs. */
    if (!rec || !cfg || len < 4 || rec[0] != 0x81)
        return -1;
    unsigned profile = rec[1] >> 5, level = rec[1] & 0x1f;
    unsigned tier = rec[2] >> 7, high_bd = (rec[2] >> 6) & 1, twelve = (rec[2] >> 5) & 1;
    if (profile > 2)
        return -1;
    unsigned depth = (profile == 2 && high_bd) ? (twelve ? 12 : 10) : (high_bd ? 10 : 8);
    int w = 0, h = 0;
    bool have_seq = false;
    size_t pos = 4;
    while (pos < len) {
        int type;
        const uint8_t *pl;
        size_t plen, total;
        if (obu_next(rec + pos, len - pos, &type, &pl, &plen, &total) < 0)
            return -1;
        if (type == 1 && !have_seq) { /* OBU_SEQUENCE_HEADER */
            if (av1_seq_dimensions(pl, plen, &w, &h) < 0)
                return -1;
            have_seq = true;
        }
        pos += total;
    }
    struct media_codec_config c = *cfg;
    c.kind = MEDIA_KIND_VIDEO;
    c.codec = MEDIA_CODEC_AV1;
    c.extradata = rec;
    c.extradata_len = len;
    c.width = w;
    c.height = h;
    snprintf(c.codec_string, sizeof c.codec_string, "av01.%u.%02u%c.%02u",
             profile, level, tier ? 'H' : 'M', depth);
    *cfg = c;
    return 0;
}

/* ---- AAC ------------------------------------------------------------------ */

/* ISO/IEC 14496-3 §1.6.3.4 samplingFrequencyIndex */
static const int aac_rates[13] = {
    96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
};

static int asc_object_type(struct bits *b)
{
    unsigned aot = get_bits(b, 5);
    if (aot == 31)
        aot = 32 + get_bits(b, 6);
    return (int)aot;
}

static int asc_rate(struct bits *b)
{
    unsigned idx = get_bits(b, 4);
    if (idx == 0x0f)
        return (int)get_bits(b, 24);
    return idx < 13 ? aac_rates[idx] : -1;
}

int flv_parse_asc(const uint8_t *rec, size_t len, struct media_codec_config *cfg)
{
    /* AudioSpecificConfig, ISO/IEC 14496-3 §1.6.2.1, up to the channel
     * configuration (and, for explicit SBR/PS signalling, the extension
     * sampling frequency, which is the output rate). */
    if (!rec || !cfg || len < 2)
        return -1;
    struct bits b;
    bits_init(&b, rec, len, false);
    int aot = asc_object_type(&b);
    int rate = asc_rate(&b);
    unsigned chan_cfg = get_bits(&b, 4);
    if (!b.err && (aot == 5 || aot == 29)) {
        int ext_rate = asc_rate(&b);
        int inner = asc_object_type(&b);
        if (ext_rate <= 0 || inner == 0)
            return -1;
        rate = ext_rate;
    }
    if (b.err || aot == 0 || rate <= 0)
        return -1;
    /* channelConfiguration, ISO/IEC 14496-3 Table 1.19 (0 = in a PCE,
     * which we do not parse: channels stays 0 = unknown). */
    static const int chans[16] = { 0, 1, 2, 3, 4, 5, 6, 8, -1, -1, -1, 7, 8, 24, 8, -1 };
    if (chans[chan_cfg] < 0)
        return -1;
    struct media_codec_config c = *cfg;
    c.kind = MEDIA_KIND_AUDIO;
    c.codec = MEDIA_CODEC_AAC;
    c.extradata = rec;
    c.extradata_len = len;
    c.sample_rate = rate;
    c.channels = chans[chan_cfg];
    snprintf(c.codec_string, sizeof c.codec_string, "mp4a.40.%d", aot);
    *cfg = c;
    return 0;
}

/* ---- frame payload validation ------------------------------------------- */

/* H.264/HEVC sample: 4-byte NAL lengths must tile the payload exactly
 * (ISO/IEC 14496-15 §5.3.2); empty NAL units are refused. */
static bool nal_lengths_walk(const uint8_t *p, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        if (len - pos < 4)
            return false;
        uint32_t n = rd_be32(p + pos);
        pos += 4;
        if (n == 0 || n > len - pos)
            return false;
        pos += n;
    }
    return true;
}

/* AV1 sample: a sequence of OBUs (AV1-ISOBMFF §2.4). */
static bool obus_walk(const uint8_t *p, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        int type;
        const uint8_t *pl;
        size_t plen, total;
        if (obu_next(p + pos, len - pos, &type, &pl, &plen, &total) < 0)
            return false;
        pos += total;
    }
    return true;
}

/* ---- shared by video and audio tags -------------------------------------- */

/* Enhanced RTMP ModEx packets (packet type 7): each is a size (UI8 + 1, or
 * UI16 + 1 after 255), its data, then modExType/packetType in one byte.
 * Skips them from *pos; *pkt gets the packet type that follows. The
 * modExType (TimestampOffsetNano) is not used. -1 when truncated. */
static int skip_modex(const uint8_t *body, size_t len, size_t *pos, unsigned *pkt)
{
    size_t p = *pos;
    while (*pkt == 7) {
        if (len - p < 1)
            return -1;
        size_t sz = (size_t)body[p++] + 1;
        if (sz == 256) {
            if (len - p < 2)
                return -1;
            sz = (size_t)rd_be16(body + p) + 1;
            p += 2;
        }
        if (len - p < sz + 1)
            return -1;
        p += sz;
        *pkt = body[p++] & 0x0f;
    }
    *pos = p;
    return 0;
}

/* Fills *frame; data stays in the tag body (see flv.h). FLV_FRAME. */
static int fill_frame(struct media_frame *frame, enum media_kind kind, const uint8_t *data,
                      size_t len, int64_t ts, int32_t cts, bool key)
{
    memset(frame, 0, sizeof *frame);
    frame->kind = kind;
    frame->dts_ms = ts;
    frame->cts_ms = cts;
    frame->keyframe = key;
    frame->data = data;
    frame->len = len;
    return FLV_FRAME;
}

typedef int (*tag_body_fn)(const uint8_t *body, size_t len, int64_t ts,
                           struct media_codec_config *config, struct media_frame *frame,
                           const char **reason);

/* The public parsers' common entry: NULL out-pointers get scratch ones,
 * *reason starts NULL, an empty body is FLV_IGNORED; then parse(). */
static int parse_tag(tag_body_fn parse, const uint8_t *body, size_t len, int64_t ts,
                     struct media_codec_config *config, struct media_frame *frame,
                     const char **reason)
{
    const char *dummy_reason;
    struct media_codec_config dummy_config;
    struct media_frame dummy_frame;
    if (!reason)
        reason = &dummy_reason;
    if (!config)
        config = &dummy_config;
    if (!frame)
        frame = &dummy_frame;
    *reason = NULL;
    if (!body || len == 0)
        return FLV_IGNORED;
    return parse(body, len, ts, config, frame, reason);
}

/* ---- video tags ----------------------------------------------------------- */

#define FOURCC(a, b, c, d) (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))

/* Legacy VideoCodecId, FLV spec E.4.3.1 (8, 9, 12, 13 are common extensions). */
static const char *const legacy_video_unsupported[16] = {
    [0] = "video codec id 0 (reserved) unsupported",
    [1] = "video codec id 1 (JPEG) unsupported",
    [2] = "video codec id 2 (Sorenson H.263) unsupported",
    [3] = "video codec id 3 (Screen video) unsupported",
    [4] = "video codec id 4 (On2 VP6) unsupported",
    [5] = "video codec id 5 (On2 VP6 with alpha) unsupported",
    [6] = "video codec id 6 (Screen video v2) unsupported",
    [8] = "video codec id 8 (RealH263) unsupported",
    [9] = "video codec id 9 (MPEG-4 part 2) unsupported",
    [10] = "video codec id 10 (unknown) unsupported",
    [11] = "video codec id 11 (unknown) unsupported",
    [13] = "video codec id 13 (legacy AV1 extension; use Enhanced RTMP 'av01') unsupported",
    [14] = "video codec id 14 (legacy VP8 extension) unsupported",
    [15] = "video codec id 15 (legacy VP9 extension) unsupported",
};

static const char *const video_packet_unsupported[16] = {
    [5] = "Enhanced RTMP video MPEG2TSSequenceStart unsupported",
    [6] = "Enhanced RTMP video multitrack unsupported",
    [8] = "Enhanced RTMP video packet type 8 unsupported",
    [9] = "Enhanced RTMP video packet type 9 unsupported",
    [10] = "Enhanced RTMP video packet type 10 unsupported",
    [11] = "Enhanced RTMP video packet type 11 unsupported",
    [12] = "Enhanced RTMP video packet type 12 unsupported",
    [13] = "Enhanced RTMP video packet type 13 unsupported",
    [14] = "Enhanced RTMP video packet type 14 unsupported",
    [15] = "Enhanced RTMP video packet type 15 unsupported",
};

static int32_t rd_si24(const uint8_t *p)
{
    uint32_t v = rd_be24(p);
    return (int32_t)(v ^ 0x800000u) - 0x800000;
}

/* Per video codec: its config record parser and, for the NAL-based codecs,
 * where the record keeps lengthSizeMinusOne (avcC byte 4, ISO/IEC 14496-15
 * §5.3.3.1; hvcC byte 21, §8.3.3.1). Frames are walked with 4-byte lengths
 * only (nal_lengths_walk). */
static const struct {
    int (*parse)(const uint8_t *rec, size_t len, struct media_codec_config *cfg);
    const char *malformed;
    size_t length_size_at; /* 0: no NAL lengths (AV1) */
    const char *length_size_unsupported;
} video_records[] = {
    [MEDIA_CODEC_H264] = {flv_parse_avcc, "malformed AVC sequence header (avcC/SPS)", 4,
                          "avcC NAL length size other than 4 bytes unsupported"},
    [MEDIA_CODEC_HEVC] = {flv_parse_hvcc, "malformed HEVC sequence header (hvcC/SPS)", 21,
                          "hvcC NAL length size other than 4 bytes unsupported"},
    [MEDIA_CODEC_AV1] = {flv_parse_av1c, "malformed AV1 sequence header (av1C)", 0, NULL},
};

/* Config record of a sequence start: parse it and apply the length-size
 * policy for NAL-based codecs. */
static int video_config(enum media_codec codec, const uint8_t *rec, size_t len,
                        struct media_codec_config *config, const char **reason)
{
    if ((size_t)codec >= sizeof video_records / sizeof video_records[0] ||
        !video_records[codec].parse) {
        *reason = "internal: not a video codec";
        return FLV_ERR_UNSUPPORTED;
    }
    struct media_codec_config c;
    memset(&c, 0, sizeof c);
    if (video_records[codec].parse(rec, len, &c) < 0) {
        *reason = video_records[codec].malformed;
        return FLV_ERR_MALFORMED;
    }
    size_t at = video_records[codec].length_size_at;
    if (at && (rec[at] & 3) != 3) {
        *reason = video_records[codec].length_size_unsupported;
        return FLV_ERR_UNSUPPORTED;
    }
    *config = c;
    return FLV_CONFIG;
}

static int video_frame(enum media_codec codec, const uint8_t *data, size_t len, int64_t ts,
                       int32_t cts, bool key, struct media_frame *frame, const char **reason)
{
    if (len == 0)
        return FLV_IGNORED;
    if (codec == MEDIA_CODEC_AV1) {
        if (!obus_walk(data, len)) {
            *reason = "AV1 frame OBU sizes do not match the payload";
            return FLV_ERR_MALFORMED;
        }
    } else if (!nal_lengths_walk(data, len)) {
        *reason = "video frame NAL unit lengths do not match the payload";
        return FLV_ERR_MALFORMED;
    }
    return fill_frame(frame, MEDIA_KIND_VIDEO, data, len, ts, cts, key);
}

/* Legacy VIDEODATA with AVCVIDEOPACKET layout (codec 7, and the common
 * codec id 12 extension for HEVC): AVCPacketType, SI24 CompositionTime. */
static int legacy_video(const uint8_t *body, size_t len, int64_t ts, enum media_codec codec,
                        struct media_codec_config *config, struct media_frame *frame,
                        const char **reason)
{
    unsigned frame_type = body[0] >> 4;
    if (frame_type == 5) /* video info / command frame */
        return FLV_IGNORED;
    if (frame_type < 1 || frame_type > 5) {
        *reason = "reserved video frame type";
        return FLV_ERR_MALFORMED;
    }
    if (len < 5) {
        *reason = "AVC video tag shorter than its 5-byte header";
        return FLV_ERR_TRUNCATED;
    }
    int32_t cts = rd_si24(body + 2);
    switch (body[1]) {
    case 0: /* sequence header */
        if (len == 5)
            return FLV_IGNORED;
        return video_config(codec, body + 5, len - 5, config, reason);
    case 1: /* NALUs */
        return video_frame(codec, body + 5, len - 5, ts, cts, frame_type == 1, frame, reason);
    case 2: /* end of sequence */
        return FLV_IGNORED;
    default:
        *reason = "unknown AVCPacketType";
        return FLV_ERR_MALFORMED;
    }
}

/* Enhanced RTMP ExVideoTagHeader + ExVideoTagBody (single track). */
static int ex_video(const uint8_t *body, size_t len, int64_t ts,
                    struct media_codec_config *config, struct media_frame *frame,
                    const char **reason)
{
    unsigned frame_type = (body[0] >> 4) & 7;
    unsigned pkt = body[0] & 0x0f;
    size_t pos = 1;
    if (skip_modex(body, len, &pos, &pkt) != 0)
        goto truncated;
    if (pkt != 4 && frame_type == 5) /* command frame: one UI8, no payload */
        return FLV_IGNORED;
    if (video_packet_unsupported[pkt]) {
        *reason = video_packet_unsupported[pkt];
        return FLV_ERR_UNSUPPORTED;
    }
    if (len - pos < 4)
        goto truncated;
    uint32_t fourcc = rd_be32(body + pos);
    pos += 4;
    if (pkt == 4 || pkt == 2) /* Metadata (AMF colorInfo) / SequenceEnd */
        return FLV_IGNORED;
    enum media_codec codec;
    switch (fourcc) {
    case FOURCC('a', 'v', 'c', '1'): codec = MEDIA_CODEC_H264; break;
    case FOURCC('h', 'v', 'c', '1'): codec = MEDIA_CODEC_HEVC; break;
    case FOURCC('a', 'v', '0', '1'): codec = MEDIA_CODEC_AV1; break;
    case FOURCC('v', 'p', '0', '8'):
        *reason = "video FourCC 'vp08' (VP8) unsupported";
        return FLV_ERR_UNSUPPORTED;
    case FOURCC('v', 'p', '0', '9'):
        *reason = "video FourCC 'vp09' (VP9) unsupported";
        return FLV_ERR_UNSUPPORTED;
    default:
        *reason = "unknown video FourCC unsupported";
        return FLV_ERR_UNSUPPORTED;
    }
    if (frame_type < 1 || frame_type > 4) {
        *reason = "reserved video frame type";
        return FLV_ERR_MALFORMED;
    }
    if (pkt == 0) { /* SequenceStart */
        if (len == pos)
            return FLV_IGNORED;
        return video_config(codec, body + pos, len - pos, config, reason);
    }
    int32_t cts = 0;
    /* CodedFrames carries SI24 CompositionTime for avc1/hvc1 only; AV1 has
     * none, CodedFramesX implies 0. */
    if (pkt == 1 && codec != MEDIA_CODEC_AV1) {
        if (len - pos < 3)
            goto truncated;
        cts = rd_si24(body + pos);
        pos += 3;
    }
    return video_frame(codec, body + pos, len - pos, ts, cts, frame_type == 1, frame, reason);

truncated:
    *reason = "Enhanced RTMP video header truncated";
    return FLV_ERR_TRUNCATED;
}

/* A non-empty VIDEODATA body: Enhanced RTMP or legacy. */
static int video_tag(const uint8_t *body, size_t len, int64_t tag_ts_ms,
                     struct media_codec_config *config, struct media_frame *frame,
                     const char **reason)
{
    if (body[0] & 0x80) /* IsExHeader */
        return ex_video(body, len, tag_ts_ms, config, frame, reason);
    unsigned codec_id = body[0] & 0x0f;
    if (codec_id == 7)
        return legacy_video(body, len, tag_ts_ms, MEDIA_CODEC_H264, config, frame, reason);
    if (codec_id == 12)
        return legacy_video(body, len, tag_ts_ms, MEDIA_CODEC_HEVC, config, frame, reason);
    *reason = legacy_video_unsupported[codec_id];
    return FLV_ERR_UNSUPPORTED;
}

int flv_parse_video(const uint8_t *body, size_t len, int64_t tag_ts_ms,
                    struct media_codec_config *config, struct media_frame *frame,
                    const char **reason)
{
    return parse_tag(video_tag, body, len, tag_ts_ms, config, frame, reason);
}

/* ---- audio tags ----------------------------------------------------------- */

/* SoundFormat, FLV spec E.4.2.1. */
static const char *const legacy_audio_unsupported[16] = {
    [0] = "sound format 0 (Linear PCM, platform endian) unsupported",
    [1] = "sound format 1 (ADPCM) unsupported",
    [2] = "sound format 2 (MP3) unsupported",
    [3] = "sound format 3 (Linear PCM, little endian) unsupported",
    [4] = "sound format 4 (Nellymoser 16 kHz mono) unsupported",
    [5] = "sound format 5 (Nellymoser 8 kHz mono) unsupported",
    [6] = "sound format 6 (Nellymoser) unsupported",
    [7] = "sound format 7 (G.711 A-law) unsupported",
    [8] = "sound format 8 (G.711 mu-law) unsupported",
    [11] = "sound format 11 (Speex) unsupported",
    [12] = "sound format 12 (reserved) unsupported",
    [13] = "sound format 13 (reserved) unsupported",
    [14] = "sound format 14 (MP3 8 kHz) unsupported",
    [15] = "sound format 15 (device-specific sound) unsupported",
};

static int audio_config(const uint8_t *rec, size_t len, struct media_codec_config *config,
                        const char **reason)
{
    struct media_codec_config c;
    memset(&c, 0, sizeof c);
    if (flv_parse_asc(rec, len, &c) < 0) {
        *reason = "malformed AAC sequence header (AudioSpecificConfig)";
        return FLV_ERR_MALFORMED;
    }
    *config = c;
    return FLV_CONFIG;
}

static int audio_frame(const uint8_t *data, size_t len, int64_t ts, struct media_frame *frame)
{
    if (len == 0)
        return FLV_IGNORED;
    return fill_frame(frame, MEDIA_KIND_AUDIO, data, len, ts, 0, true);
}

/* Enhanced RTMP ExAudioTagHeader + ExAudioTagBody (single track). */
static int ex_audio(const uint8_t *body, size_t len, int64_t ts,
                    struct media_codec_config *config, struct media_frame *frame,
                    const char **reason)
{
    unsigned pkt = body[0] & 0x0f;
    size_t pos = 1;
    if (skip_modex(body, len, &pos, &pkt) != 0)
        goto truncated;
    if (pkt == 5) {
        *reason = "Enhanced RTMP audio multitrack unsupported";
        return FLV_ERR_UNSUPPORTED;
    }
    if (len - pos < 4)
        goto truncated;
    uint32_t fourcc = rd_be32(body + pos);
    pos += 4;
    switch (fourcc) {
    case FOURCC('m', 'p', '4', 'a'):
        break;
    case FOURCC('O', 'p', 'u', 's'):
        *reason = "audio FourCC 'Opus' unsupported";
        return FLV_ERR_UNSUPPORTED;
    case FOURCC('f', 'L', 'a', 'C'):
        *reason = "audio FourCC 'fLaC' (FLAC) unsupported";
        return FLV_ERR_UNSUPPORTED;
    case FOURCC('a', 'c', '-', '3'):
        *reason = "audio FourCC 'ac-3' (AC-3) unsupported";
        return FLV_ERR_UNSUPPORTED;
    case FOURCC('e', 'c', '-', '3'):
        *reason = "audio FourCC 'ec-3' (E-AC-3) unsupported";
        return FLV_ERR_UNSUPPORTED;
    case FOURCC('.', 'm', 'p', '3'):
        *reason = "audio FourCC '.mp3' (MP3) unsupported";
        return FLV_ERR_UNSUPPORTED;
    default:
        *reason = "unknown audio FourCC unsupported";
        return FLV_ERR_UNSUPPORTED;
    }
    switch (pkt) {
    case 0: /* SequenceStart */
        if (len == pos)
            return FLV_IGNORED;
        return audio_config(body + pos, len - pos, config, reason);
    case 1: /* CodedFrames */
        return audio_frame(body + pos, len - pos, ts, frame);
    case 2: /* SequenceEnd */
    case 4: /* MultichannelConfig: AAC is self-describing */
        return FLV_IGNORED;
    default:
        *reason = "unknown Enhanced RTMP audio packet type unsupported";
        return FLV_ERR_UNSUPPORTED;
    }

truncated:
    *reason = "Enhanced RTMP audio header truncated";
    return FLV_ERR_TRUNCATED;
}

/* A non-empty AUDIODATA body: Enhanced RTMP or legacy AAC. */
static int audio_tag(const uint8_t *body, size_t len, int64_t tag_ts_ms,
                     struct media_codec_config *config, struct media_frame *frame,
                     const char **reason)
{
    unsigned fmt = body[0] >> 4;
    if (fmt == 9) /* SoundFormat.ExHeader */
        return ex_audio(body, len, tag_ts_ms, config, frame, reason);
    if (fmt != 10) {
        *reason = legacy_audio_unsupported[fmt];
        return FLV_ERR_UNSUPPORTED;
    }
    /* AACAUDIODATA, FLV spec E.4.2.2 */
    if (len < 2) {
        *reason = "AAC audio tag shorter than its 2-byte header";
        return FLV_ERR_TRUNCATED;
    }
    switch (body[1]) {
    case 0:
        if (len == 2)
            return FLV_IGNORED;
        return audio_config(body + 2, len - 2, config, reason);
    case 1:
        return audio_frame(body + 2, len - 2, tag_ts_ms, frame);
    default:
        *reason = "unknown AACPacketType";
        return FLV_ERR_MALFORMED;
    }
}

int flv_parse_audio(const uint8_t *body, size_t len, int64_t tag_ts_ms,
                    struct media_codec_config *config, struct media_frame *frame,
                    const char **reason)
{
    return parse_tag(audio_tag, body, len, tag_ts_ms, config, frame, reason);
}

/* ---- configuration changes (SPEC ING-9) ----------------------------------- */

bool flv_config_changed(const struct media_codec_config *cur, const struct media_codec_config *next)
{
    if (!next)
        return false;
    if (!cur || !cur->extradata || cur->extradata_len == 0)
        return true;
    if (cur->kind != next->kind || cur->codec != next->codec || cur->extradata_len != next->extradata_len)
        return true;
    return !next->extradata || memcmp(cur->extradata, next->extradata, cur->extradata_len) != 0;
}
