/* test_file_writer.c — the writer thread of storage/file_store.c, buffered
 * and with O_DIRECT (SPEC REC-1: what was handed over is in the file; the
 * loop never waits for the disk).
 *
 * The direct path writes whole blocks, pads the tail and cuts the file back:
 * after every append (not only at close) the file must hold exactly the bytes
 * appended so far, whatever the chunk sizes. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "storage/file_store.h"

struct closed {
    volatile int done;
    struct fw_close_result res;
};

static void on_closed(void *ctx, const struct fw_close_result *res)
{
    struct closed *c = ctx;
    c->res = *res;
    __atomic_store_n(&c->done, 1, __ATOMIC_RELEASE);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polls until the writer has nothing queued (deadline 10 s). */
static void wait_drained(struct file_writer *w)
{
    long long end = now_ms() + 10000;
    while (file_writer_queued_bytes(w) != 0) {
        assert_true(now_ms() < end);
        usleep(1000);
    }
}

static void wait_closed(struct closed *c)
{
    long long end = now_ms() + 10000;
    while (!__atomic_load_n(&c->done, __ATOMIC_ACQUIRE)) {
        assert_true(now_ms() < end);
        usleep(1000);
    }
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

static void expect_file_is(const char *path, const uint8_t *want, size_t len)
{
    size_t got_len;
    uint8_t *got = read_file(path, &got_len);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, want, len);
    free(got);
}

static char dir[256];

static int setup(void **state)
{
    (void)state;
    /* Under the build tree, not /tmp: /tmp may be tmpfs (no O_DIRECT). */
    snprintf(dir, sizeof dir, "%s/fw-XXXXXX", getenv("TEST_TMPDIR") ? getenv("TEST_TMPDIR") : ".");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return file_store_remove_tree(dir, NULL);
}

/* Odd chunk sizes across block boundaries: 1 byte, a block minus one, a
 * block, several blocks plus change, an empty one; a deterministic pattern so
 * a misplaced tail shows. */
static void append_pattern_and_check(bool direct)
{
    static const size_t sizes[] = {1, 4095, 4096, 3, 12289, 0, 700, 65536, 4097, 1, 100000, 511, 513};
    struct file_writer *w = file_writer_new("t-writer", 0, 0);
    assert_non_null(w);
    file_writer_set_direct_io(w, direct);
    char path[512];
    snprintf(path, sizeof path, "%s/rec/%s.mp4", dir, direct ? "direct" : "buffered");
    struct fw_file *f = file_writer_open(w, path, NULL);
    assert_non_null(f);

    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        total += sizes[i];
    uint8_t *want = malloc(total);
    assert_non_null(want);
    for (size_t i = 0; i < total; i++)
        want[i] = (uint8_t)(i * 131u + (i >> 9));

    size_t off = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *chunk = malloc(sizes[i] ? sizes[i] : 1);
        assert_non_null(chunk);
        memcpy(chunk, want + off, sizes[i]);
        assert_int_equal(file_writer_append(f, chunk, sizes[i]), 0);
        off += sizes[i];
        wait_drained(w);
        /* Every append is in the file as soon as the writer took it: a
         * kill -9 now would lose nothing. */
        if (off > 0)
            expect_file_is(path, want, off);
    }
    struct closed c = {0};
    file_writer_close(f, on_closed, &c);
    wait_closed(&c);
    assert_int_equal(c.res.err, 0);
    assert_int_equal(c.res.bytes, total);
    assert_true(c.res.created);
    assert_int_equal(c.res.direct_io, direct); /* the build tree is not on tmpfs */
    expect_file_is(path, want, total);
    free(want);
    file_writer_free(w);
}

static void test_buffered_appends_land_in_order(void **state)
{
    (void)state;
    append_pattern_and_check(false);
}

static void test_direct_appends_land_whole_after_every_append(void **state)
{
    (void)state;
    append_pattern_and_check(true);
}

/* Many files at once through one writer: each tail belongs to its own file. */
static void test_direct_interleaved_files_keep_their_own_tails(void **state)
{
    (void)state;
    enum { NFILES = 4, ROUNDS = 40 };
    struct file_writer *w = file_writer_new("t-writer", 0, 0);
    assert_non_null(w);
    file_writer_set_direct_io(w, true);
    struct fw_file *f[NFILES];
    char path[NFILES][512];
    uint8_t *want[NFILES];
    size_t len[NFILES] = {0};
    for (int i = 0; i < NFILES; i++) {
        snprintf(path[i], sizeof path[i], "%s/many/%d.mp4", dir, i);
        f[i] = file_writer_open(w, path[i], NULL);
        assert_non_null(f[i]);
        want[i] = malloc((size_t)ROUNDS * 9000);
        assert_non_null(want[i]);
    }
    unsigned seed = 7;
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < NFILES; i++) {
            seed = seed * 1103515245u + 12345u;
            size_t n = (seed >> 8) % 9000;
            uint8_t *chunk = malloc(n ? n : 1);
            assert_non_null(chunk);
            for (size_t k = 0; k < n; k++)
                chunk[k] = want[i][len[i] + k] = (uint8_t)(i * 50 + r + k);
            len[i] += n;
            assert_int_equal(file_writer_append(f[i], chunk, n), 0);
        }
    struct closed c[NFILES];
    memset(c, 0, sizeof c);
    for (int i = 0; i < NFILES; i++)
        file_writer_close(f[i], on_closed, &c[i]);
    for (int i = 0; i < NFILES; i++) {
        wait_closed(&c[i]);
        assert_int_equal(c[i].res.err, 0);
        assert_int_equal(c[i].res.bytes, len[i]);
        expect_file_is(path[i], want[i], len[i]);
        free(want[i]);
    }
    file_writer_free(w);
}

/* tmpfs (/dev/shm): older kernels refuse O_DIRECT there (the writer then
 * falls back to buffered writes), 6.6+ take it; either way every byte lands. */
static void test_direct_on_tmpfs_lands_every_byte(void **state)
{
    (void)state;
    char shm[256];
    snprintf(shm, sizeof shm, "/dev/shm/fw-XXXXXX");
    if (!mkdtemp(shm))
        skip();
    struct file_writer *w = file_writer_new("t-writer", 0, 0);
    assert_non_null(w);
    file_writer_set_direct_io(w, true);
    char path[512];
    snprintf(path, sizeof path, "%s/x.mp4", shm);
    struct fw_file *f = file_writer_open(w, path, NULL);
    uint8_t want[5000];
    for (size_t i = 0; i < sizeof want; i++)
        want[i] = (uint8_t)(i ^ 0x5a);
    uint8_t *chunk = malloc(sizeof want);
    assert_non_null(chunk);
    memcpy(chunk, want, sizeof want);
    assert_int_equal(file_writer_append(f, chunk, sizeof want), 0);
    struct closed c = {0};
    file_writer_close(f, on_closed, &c);
    wait_closed(&c);
    assert_int_equal(c.res.err, 0);
    expect_file_is(path, want, sizeof want);
    file_writer_free(w);
    file_store_remove_tree(shm, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_buffered_appends_land_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_appends_land_whole_after_every_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_interleaved_files_keep_their_own_tails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_on_tmpfs_lands_every_byte, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
