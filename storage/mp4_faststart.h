/* mp4_faststart.h — a fragmented MP4 recording rewritten as a classic
 * (non-fragmented) faststart MP4: ftyp, moov, one mdat (SPEC REC-3).
 *
 * The input is what packager/recorder.c writes: the segmenter's CMAF init
 * (ftyp + moov with mvex/trex, no samples) followed by moof+mdat fragments
 * (ISO/IEC 14496-12 §8.8), possibly cut anywhere by a crash. The moofs are
 * read (never the media), a sample table is built per track, and the output
 * is written as ftyp + moov + mdat whose payload is the fragments' sample
 * bytes copied with copy_file_range(2) (read/write when the kernel refuses):
 * one chunk per track run (trun), chunks in source order, so the copy is
 * one extent per fragment. No libavformat: it is ~3x cheaper in CPU than a
 * remux and copies each byte once.
 *
 * Supported: tracks with handler 'vide' or 'soun' (any sample entry: stsd
 * is copied from the init), trun versions 0/1 with any of the per-sample
 * fields or tfhd/trex defaults, tfdt v0/v1 or none, tfhd base-data-offset /
 * default-base-is-moof / neither. Not supported (probe says 0, the caller
 * falls back to libavformat): an init with samples or an edit list, tracks of
 * other handlers, a moof not directly followed by its mdat, sample data
 * outside that mdat, more than MP4_FASTSTART_MAX_TRACKS tracks.
 *
 * Timing: a track's decode timeline starts at its first tfdt; a gap between
 * fragments lengthens the sample before it, an overlap shortens the samples
 * before it. The presentation is kept as the fragmented file has it (pts =
 * tfdt-based dts + composition offset), moved so the earliest presented
 * sample of all tracks is at 0: a track that starts later or whose first
 * frame has a composition offset gets an edit list (an empty edit, then its
 * media from the earliest composition time), as libavformat's mp4 muxer
 * writes it, so A/V sync is unchanged.
 *
 * Truncation: a moof cut by the end of the file ends the parse; in a moof
 * whose mdat is cut, the samples whose bytes are all in the file are kept,
 * the rest are dropped (st->dropped, st->truncated).
 *
 * Blocking file I/O: worker threads only. */
#ifndef STORAGE_MP4_FASTSTART_H
#define STORAGE_MP4_FASTSTART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MP4_FASTSTART_MAX_TRACKS 8

/* Return codes of mp4_faststart_write. */
#define MP4_FASTSTART_ERROR (-1)        /* I/O or out of memory: a fallback will not help */
#define MP4_FASTSTART_UNSUPPORTED (-2)  /* not a file this writer handles: use libavformat */

struct mp4_faststart_stats {
    uint64_t bytes;        /* size of the output file */
    int64_t duration_ms;   /* movie duration: the longest track, edit lists included */
    uint64_t samples;      /* samples written (all tracks) */
    uint64_t dropped;      /* samples of a cut fragment left out */
    uint32_t fragments;    /* moof+mdat pairs read */
    uint32_t tracks;       /* tracks written (a track without samples is left out) */
    bool truncated;        /* the file ended inside a fragment */
    bool co64;             /* chunk offsets needed 64 bits */
};

/* 1 when path is a fragmented MP4 this writer handles (ftyp, an init moov
 * with mvex and supported tracks, a first moof+mdat whose truns parse),
 * 0 when not (the caller falls back to libavformat), -1 when it cannot be
 * read (open/read error). Reads the init and the first fragment only. */
int mp4_faststart_probe(const char *path);

/* Writes the faststart MP4 of src into dst_tmp (created or truncated,
 * mode 0644), fsynced and closed on success; the caller renames it into
 * place (STYLE 8). On failure dst_tmp is removed and reason says why.
 * 0, MP4_FASTSTART_UNSUPPORTED (the file is not one this writer handles,
 * including something found past the first fragment), or
 * MP4_FASTSTART_ERROR (read/write/fsync error, out of memory, no complete
 * sample). st may be NULL. */
int mp4_faststart_write(const char *src, const char *dst_tmp, struct mp4_faststart_stats *st, char *reason,
                        size_t cap);

/* For tests: the moov mp4_faststart_write would write for src if its mdat
 * payload started `bias` bytes further into the file (the > 4 GiB co64 path
 * without a 4 GiB file). *moov is malloc'd (the caller frees it); *co64 says
 * which chunk offset box was chosen. Same return codes as _write. */
int mp4_faststart_moov_for_test(const char *src, uint64_t bias, uint8_t **moov, size_t *len, bool *co64,
                                char *reason, size_t cap);

#endif
