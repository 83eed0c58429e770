/* test_loop.c — loop threads and the cross-thread inbox. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdatomic.h>

#include <cmocka.h>

#include "core/loop.h"

struct counter {
    atomic_int n;
    struct loop *l;
    atomic_int on_loop_thread;
    int order[1000];
    atomic_int next;
};

static void bump(void *arg)
{
    struct counter *c = arg;
    if (loop_is_current(c->l))
        atomic_fetch_add(&c->on_loop_thread, 1);
    atomic_fetch_add(&c->n, 1);
}

struct ordered { struct counter *c; int v; };
static void record(void *arg)
{
    struct ordered *o = arg;
    int i = atomic_fetch_add(&o->c->next, 1);
    o->c->order[i] = o->v;
}

static void test_post_runs_on_loop_thread_in_fifo_order(void **state)
{
    (void)state;
    assert_int_equal(loop_global_init(), 0);
    struct counter c = {0};
    c.l = loop_new("t-fifo", 4096);
    assert_non_null(c.l);
    static struct ordered o[1000];
    for (int i = 0; i < 1000; i++) {
        o[i].c = &c;
        o[i].v = i;
        assert_int_equal(loop_post(c.l, record, &o[i]), 0);
    }
    assert_int_equal(loop_post(c.l, bump, &c), 0);
    assert_int_equal(loop_start(c.l), 0);
    loop_stop(c.l); /* runs what is queued, then joins */
    assert_int_equal(atomic_load(&c.n), 1);
    assert_int_equal(atomic_load(&c.on_loop_thread), 1);
    assert_int_equal(atomic_load(&c.next), 1000);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(c.order[i], i);
    loop_free(c.l);
}

static void test_inbox_ceiling_refuses_instead_of_growing(void **state)
{
    (void)state;
    struct counter c = {0};
    c.l = loop_new("t-cap", 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(loop_post(c.l, bump, &c), 0);
    assert_int_equal(loop_post(c.l, bump, &c), -1);
    assert_int_equal(loop_start(c.l), 0);
    loop_stop(c.l);
    assert_int_equal(atomic_load(&c.n), 8);
    /* a stopped loop refuses posts */
    assert_int_equal(loop_post(c.l, bump, &c), -1);
    loop_free(c.l);
}

struct poster { struct loop *l; struct counter *c; int n; };
static void *poster_main(void *arg)
{
    struct poster *p = arg;
    for (int i = 0; i < p->n; i++)
        while (loop_post(p->l, bump, p->c) != 0)
            ; /* inbox momentarily full: retry */
    return NULL;
}

static void test_many_threads_post_concurrently(void **state)
{
    (void)state;
    struct counter c = {0};
    c.l = loop_new("t-mt", 1024);
    assert_int_equal(loop_start(c.l), 0);
    pthread_t th[4];
    struct poster p = {c.l, &c, 20000};
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, poster_main, &p);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    loop_stop(c.l);
    assert_int_equal(atomic_load(&c.n), 80000);
    assert_int_equal(atomic_load(&c.on_loop_thread), 80000);
    loop_free(c.l);
}

static void test_clocks_are_sane(void **state)
{
    (void)state;
    long long a = loop_now_us(), b = loop_now_us();
    assert_true(b >= a);
    assert_true(wall_now_us() > 1600000000LL * 1000000LL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_runs_on_loop_thread_in_fifo_order),
        cmocka_unit_test(test_inbox_ceiling_refuses_instead_of_growing),
        cmocka_unit_test(test_many_threads_post_concurrently),
        cmocka_unit_test(test_clocks_are_sane),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
