/* test_config.c — settings from defaults, file, environment and flags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/config.h"

static void test_defaults_match_spec_table(void **state)
{
    (void)state;
    struct config c;
    config_defaults(&c);
    assert_string_equal(c.rtmp_listen, "0.0.0.0:1935");
    assert_string_equal(c.http_listen, "0.0.0.0:8080");
    assert_string_equal(c.data_dir, "./var");
    assert_string_equal(c.rtmp_app, "live");
    assert_int_equal(c.segment_duration_ms, 2000);
    assert_int_equal(c.part_duration_ms, 500);
    assert_int_equal(c.live_window_segments, 10);
    assert_int_equal(c.recording_ttl_sec, 21600);
    assert_int_equal(c.sweep_interval_sec, 60);
    assert_int_equal(c.ingest_idle_sec, 10);
    assert_int_equal(c.takeover_idle_sec, 5);
    assert_int_equal(c.log_level, LOG_INFO);
    assert_true(c.node_id[0] != 0);
    char err[256];
    assert_int_equal(config_validate(&c, err, sizeof err), 0);
}

struct set_case {
    const char *key, *value;
    int ok;
    const char *err_contains;
};

static void test_config_set_table(void **state)
{
    (void)state;
    static const struct set_case cases[] = {
        {"segment_duration_ms", "4000", 1, NULL},
        {"segment-duration-ms", "3000", 1, NULL},
        {"SEGMENT_DURATION_MS", "3000", 1, NULL},
        {"segment_duration_ms", "abc", 0, "segment_duration_ms"},
        {"segment_duration_ms", "12x", 0, "not an integer"},
        {"segment_duration_ms", "", 0, "not an integer"},
        {"segment_duration_ms", "99999999999999999999", 0, "not an integer"},
        {"segment_duration_ms", "10", 0, "out of range"},
        {"part_duration_ms", "0", 1, NULL},
        {"part_duration_ms", "-1", 0, "out of range"},
        {"http_listen", "127.0.0.1:0", 1, NULL},
        {"http_listen", "[::1]:8080", 1, NULL},
        {"http_listen", "localhost", 0, "not host:port"},
        {"http_listen", "127.0.0.1:70000", 0, "not host:port"},
        {"rtmp_listen", ":1935", 0, "not host:port"},
        {"log_level", "debug", 1, NULL},
        {"log_level", "verbose", 0, "log_level"},
        {"no_such_setting", "1", 0, "unknown setting"},
        {"database_url", "postgresql://u@h/db", 1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct config c;
        config_defaults(&c);
        char err[512] = "";
        int rc = config_set(&c, cases[i].key, cases[i].value, "test", err, sizeof err);
        if (cases[i].ok) {
            if (rc != 0)
                fail_msg("case %zu (%s=%s) failed: %s", i, cases[i].key, cases[i].value, err);
        } else {
            if (rc == 0)
                fail_msg("case %zu (%s=%s) was accepted", i, cases[i].key, cases[i].value);
            if (!strstr(err, cases[i].err_contains))
                fail_msg("case %zu: error \"%s\" lacks \"%s\"", i, err, cases[i].err_contains);
        }
    }
}

static char *write_temp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/castgate-config-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_file_env_flag_precedence(void **state)
{
    (void)state;
    char *path = write_temp("# comment\nsegment_duration_ms = 3000\npart_duration_ms = 600\n"
                            "rtmp_app = school\n");
    char cfgflag[80];
    snprintf(cfgflag, sizeof cfgflag, "--config=%s", path);
    setenv("CASTGATE_PART_DURATION_MS", "700", 1);
    setenv("CASTGATE_RTMP_APP", "fromenv", 1);
    char *argv[] = {"serve", cfgflag, "--rtmp_app", "fromflag", "--json", "pos", NULL};
    int argc = 6;
    struct config c;
    char err[512] = "";
    int rc = config_resolve(&c, &argc, argv, err, sizeof err);
    unsetenv("CASTGATE_PART_DURATION_MS");
    unsetenv("CASTGATE_RTMP_APP");
    unlink(path);
    if (rc != 0)
        fail_msg("resolve failed: %s", err);
    assert_int_equal(c.segment_duration_ms, 3000); /* file */
    assert_int_equal(c.part_duration_ms, 700);     /* env beats file */
    assert_string_equal(c.rtmp_app, "fromflag");   /* flag beats env */
    /* non-settings stay for the subcommand */
    assert_int_equal(argc, 3);
    assert_string_equal(argv[0], "serve");
    assert_string_equal(argv[1], "--json");
    assert_string_equal(argv[2], "pos");
}

static void test_malformed_file_line_names_line(void **state)
{
    (void)state;
    char *path = write_temp("segment_duration_ms = 2000\nthis line has no equals sign\n");
    struct config c;
    config_defaults(&c);
    char err[512] = "";
    assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
    unlink(path);
    assert_non_null(strstr(err, ":2"));
    assert_non_null(strstr(err, "malformed"));
}

static void test_bad_value_in_file_names_setting_and_line(void **state)
{
    (void)state;
    char *path = write_temp("\n\nlive_window_segments = many\n");
    struct config c;
    config_defaults(&c);
    char err[512] = "";
    assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
    unlink(path);
    assert_non_null(strstr(err, "live_window_segments"));
    assert_non_null(strstr(err, "line 3"));
}

static void test_part_must_fit_segment(void **state)
{
    (void)state;
    char *argv[] = {"serve", "--segment_duration_ms", "1000", "--part_duration_ms", "800", NULL};
    int argc = 5;
    struct config c;
    char err[512] = "";
    assert_int_equal(config_resolve(&c, &argc, argv, err, sizeof err), -1);
    assert_non_null(strstr(err, "part_duration_ms"));
}

static void test_flag_missing_value(void **state)
{
    (void)state;
    char *argv[] = {"serve", "--http_listen", NULL};
    int argc = 2;
    struct config c;
    char err[512] = "";
    assert_int_equal(config_resolve(&c, &argc, argv, err, sizeof err), -1);
    assert_non_null(strstr(err, "needs a value"));
}

static void test_env_database_url(void **state)
{
    (void)state;
    char *envp[] = {"DATABASE_URL=postgresql://x@y/z", "CASTGATE_LOG_LEVEL=warn", "OTHER=1", NULL};
    struct config c;
    config_defaults(&c);
    char err[512];
    assert_int_equal(config_load_env(&c, envp, err, sizeof err), 0);
    assert_string_equal(c.database_url, "postgresql://x@y/z");
    assert_int_equal(c.log_level, LOG_WARN);
    char *bad[] = {"CASTGATE_INGEST_IDLE_SEC=0", NULL};
    assert_int_equal(config_load_env(&c, bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "CASTGATE_INGEST_IDLE_SEC"));
}

static void test_split_hostport(void **state)
{
    (void)state;
    char host[64];
    int port;
    assert_int_equal(config_split_hostport("0.0.0.0:1935", host, sizeof host, &port), 0);
    assert_string_equal(host, "0.0.0.0");
    assert_int_equal(port, 1935);
    assert_int_equal(config_split_hostport("[::1]:80", host, sizeof host, &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(config_split_hostport("[::1]80", host, sizeof host, &port), -1);
    assert_int_equal(config_split_hostport("h:", host, sizeof host, &port), -1);
    assert_int_equal(config_split_hostport("h:-1", host, sizeof host, &port), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_match_spec_table),
        cmocka_unit_test(test_config_set_table),
        cmocka_unit_test(test_file_env_flag_precedence),
        cmocka_unit_test(test_malformed_file_line_names_line),
        cmocka_unit_test(test_bad_value_in_file_names_setting_and_line),
        cmocka_unit_test(test_part_must_fit_segment),
        cmocka_unit_test(test_flag_missing_value),
        cmocka_unit_test(test_env_database_url),
        cmocka_unit_test(test_split_hostport),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
