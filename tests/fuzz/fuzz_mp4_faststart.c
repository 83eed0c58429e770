/* fuzz_mp4_faststart.c — libFuzzer target for storage/mp4_faststart.c: the
 * input is a recording file (memfd, read through /proc/self/fd), probed and
 * written to a scratch file.
 *
 * Invariants checked: the probe of a readable file is 0 or 1, never -1; the
 * writer returns 0, UNSUPPORTED or ERROR; a failure carries a reason and
 * leaves no output; a success reports the output's size exactly, and the
 * output is ftyp, moov, mdat whose box sizes add up to the file, the boxes
 * the writer builds nest exactly, and every chunk offset is inside the mdat
 * payload.
 * Seeds: tests/fuzz/corpus/mp4_faststart (a 1.2 s 64x48 H.264 + AAC
 * recording made by the recorder, the same cut inside its second mdat, and
 * its init alone). */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/bytes.h"
#include "storage/mp4_faststart.h"

static char g_out[256];

static void scratch_init(void)
{
    if (g_out[0])
        return;
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(g_out, sizeof g_out, "%s/fuzz_mp4_faststart.%d.out", dir, (int)getpid());
}

/* The boxes we write ourselves (moov, trak, mdia, minf, stbl) must hold
 * exactly a sequence of boxes; the stco/co64 entries of each stbl must point
 * into the mdat payload [lo, hi]. The interiors of boxes copied from the
 * init (stsd, hdlr, dinf, ...) are not ours and are not walked. */
static void walk(const uint8_t *m, size_t pos, size_t end, uint64_t lo, uint64_t hi, int depth)
{
    while (pos < end) {
        if (end - pos < 8)
            abort();
        uint32_t size = rd_be32(m + pos);
        if (size < 8 || size > end - pos)
            abort();
        const uint8_t *t = m + pos + 4;
        if (depth < 5 && (memcmp(t, "trak", 4) == 0 || memcmp(t, "mdia", 4) == 0 ||
                          memcmp(t, "minf", 4) == 0 || memcmp(t, "stbl", 4) == 0 || memcmp(t, "edts", 4) == 0))
            walk(m, pos + 8, pos + size, lo, hi, depth + 1);
        int c64 = memcmp(t, "co64", 4) == 0;
        if (c64 || memcmp(t, "stco", 4) == 0) {
            if (size < 16)
                abort();
            uint32_t n = rd_be32(m + pos + 12);
            if (16 + (uint64_t)n * (c64 ? 8 : 4) != size)
                abort();
            for (uint32_t k = 0; k < n; k++) {
                uint64_t o = c64 ? rd_be64(m + pos + 16 + 8 * k) : rd_be32(m + pos + 16 + 4 * k);
                if (o < lo || o > hi)
                    abort();
            }
        }
        pos += size;
    }
}

/* Our own output must be ftyp, moov, mdat with sizes to the end of the
 * file, of the size reported. */
static void check_output(const char *path, uint64_t reported)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        abort();
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != reported || st.st_size < 16)
        abort();
    uint8_t *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        abort();
    size_t len = (size_t)st.st_size, pos = 0;
    static const char order[3][5] = {"ftyp", "moov", "mdat"};
    size_t moov = 0, moov_len = 0, payload = 0;
    for (int i = 0; i < 3; i++) {
        if (pos + 8 > len || memcmp(m + pos + 4, order[i], 4) != 0)
            abort();
        uint64_t size = rd_be32(m + pos), hdr = 8;
        if (size == 1) {
            size = rd_be64(m + pos + 8);
            hdr = 16;
        }
        if (size < hdr || size > len - pos)
            abort();
        if (i == 1) {
            moov = pos;
            moov_len = (size_t)size;
        }
        if (i == 2)
            payload = pos + (size_t)hdr;
        pos += (size_t)size;
    }
    if (pos != len)
        abort();
    walk(m, moov + 8, moov + moov_len, payload, len, 0);
    munmap(m, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    scratch_init();
    int fd = memfd_create("fuzz-mp4", MFD_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t off = 0;
    while (off < size) {
        ssize_t n = write(fd, data + off, size - off);
        if (n <= 0) {
            close(fd);
            return 0;
        }
        off += (size_t)n;
    }
    char in[64];
    snprintf(in, sizeof in, "/proc/self/fd/%d", fd);
    int probe = mp4_faststart_probe(in);
    if (probe != 0 && probe != 1)
        abort();
    struct mp4_faststart_stats st;
    char reason[256] = "unset";
    int rc = mp4_faststart_write(in, g_out, &st, reason, sizeof reason);
    if (rc == 0) {
        if (reason[0] || st.samples == 0)
            abort();
        check_output(g_out, st.bytes);
        unlink(g_out);
    } else {
        if (rc != MP4_FASTSTART_UNSUPPORTED && rc != MP4_FASTSTART_ERROR)
            abort();
        if (!reason[0] || access(g_out, F_OK) == 0)
            abort();
    }
    close(fd);
    return 0;
}
