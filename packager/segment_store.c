/* segment_store.c — queued tmp+rename file writes on one thread. See segment_store.h. */
#include "packager/segment_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/log.h"

enum job_kind { JOB_WRITE, JOB_APPEND, JOB_FLUSH };

struct job {
    struct job *next;
    enum job_kind kind;
    char *rel_dir, *name;
    struct segment_store_chunk *chunks; /* JOB_WRITE: borrowed data */
    size_t nchunks;
    size_t bytes;
    char *text;                         /* JOB_APPEND: owned */
    segment_store_done_fn done;
    void *arg;
    bool *flushed;                      /* JOB_FLUSH */
};

struct segment_store {
    char *root;
    size_t max_queued;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* work queued / stop */
    pthread_cond_t done_cv;  /* a flush job completed */
    struct job *head, *tail;
    bool stopping;
    size_t queued_bytes;
    struct segment_store_stats st;
};

int segment_store_path_ok(const char *rel)
{
    if (!rel || !*rel || *rel == '/' || strlen(rel) > 512)
        return 0;
    const char *comp = rel;
    for (const char *p = rel;; p++) {
        if (*p == '/' || *p == '\0') {
            size_t n = (size_t)(p - comp);
            if (n == 0 || (n == 1 && comp[0] == '.') || (n == 2 && comp[0] == '.' && comp[1] == '.'))
                return 0;
            if (*p == '\0')
                break;
            comp = p + 1;
            continue;
        }
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

/* mkdir -p for root/rel_dir (only after an open found it missing). */
static int ensure_dir(struct segment_store *s, const char *full)
{
    (void)s;
    char tmp[PATH_MAX];
    size_t n = strlen(full);
    if (n >= sizeof(tmp))
        return -1;
    memcpy(tmp, full, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* All chunks with writev(2) (one call for a whole segment, normally). */
static int write_all(int fd, const struct segment_store_chunk *c, size_t n)
{
    struct iovec iov[64];
    size_t done = 0; /* chunks fully written */
    size_t skip = 0; /* bytes of chunk `done` already written */
    while (done < n) {
        int cnt = 0;
        for (size_t i = done; i < n && cnt < 64; i++, cnt++) {
            size_t off = i == done ? skip : 0;
            iov[cnt].iov_base = (void *)((const uint8_t *)c[i].data + off);
            iov[cnt].iov_len = c[i].len - off;
        }
        ssize_t w = writev(fd, iov, cnt);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        size_t left = (size_t)w;
        while (done < n && left >= c[done].len - skip) {
            left -= c[done].len - skip;
            skip = 0;
            done++;
        }
        skip += left;
    }
    return 0;
}

/* open(2); when the directory is missing (first file of a target, or the
 * sweeper removed it), mkdir -p and once more. */
static int open_in(struct segment_store *s, const char *dir, const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT && ensure_dir(s, dir) == 0)
        fd = open(path, flags | O_CLOEXEC, 0644);
    return fd;
}

static int do_write(struct segment_store *s, struct job *j)
{
    char dir[PATH_MAX], path[PATH_MAX], tmp[PATH_MAX];
    int fd = -1;
    if (snprintf(dir, sizeof(dir), "%s/%s", s->root, j->rel_dir) >= (int)sizeof(dir) ||
        snprintf(path, sizeof(path), "%s/%s", dir, j->name) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        goto fail;
    if (j->kind == JOB_APPEND) {
        fd = open_in(s, dir, path, O_WRONLY | O_CREAT | O_APPEND);
        if (fd < 0)
            goto fail;
        struct segment_store_chunk c = {j->text, j->bytes};
        if (write_all(fd, &c, 1) != 0)
            goto fail;
        close(fd);
        return 0;
    }
    fd = open_in(s, dir, tmp, O_WRONLY | O_CREAT | O_TRUNC);
    if (fd < 0)
        goto fail;
    if (write_all(fd, j->chunks, j->nchunks) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto fail;
    return 0;
fail:
    log_warn("hls: store write failed path=%s/%s/%s err=%s", s->root, j->rel_dir, j->name, strerror(errno));
    if (fd >= 0)
        close(fd);
    if (j->kind == JOB_WRITE)
        unlink(tmp);
    return -1;
}

static void job_free(struct job *j)
{
    free(j->rel_dir);
    free(j->name);
    free(j->chunks);
    free(j->text);
    free(j);
}

static void *writer_main(void *arg)
{
    struct segment_store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->cv, &s->mu);
        struct job *j = s->head;
        if (!j)
            break; /* stopping and drained */
        s->head = j->next;
        if (!s->head)
            s->tail = NULL;
        pthread_mutex_unlock(&s->mu);

        int rc = 0;
        if (j->kind != JOB_FLUSH)
            rc = do_write(s, j);
        if (j->done)
            j->done(j->arg, rc);

        pthread_mutex_lock(&s->mu);
        if (j->kind == JOB_FLUSH) {
            *j->flushed = true;
            pthread_cond_broadcast(&s->done_cv);
        } else {
            s->queued_bytes -= j->bytes;
            if (rc == 0) {
                s->st.files_written += j->kind == JOB_WRITE;
                s->st.bytes_written += j->bytes;
            } else {
                s->st.failed++;
            }
        }
        job_free(j);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

struct segment_store *segment_store_new(const char *root, size_t max_queued_bytes)
{
    struct segment_store *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->root = strdup(root ? root : ".");
    s->max_queued = max_queued_bytes ? max_queued_bytes : (size_t)256 << 20;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    if (!s->root || pthread_create(&s->thread, NULL, writer_main, s) != 0) {
        free(s->root);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        pthread_cond_destroy(&s->done_cv);
        free(s);
        return NULL;
    }
    pthread_setname_np(s->thread, "hls-writer");
    return s;
}

void segment_store_free(struct segment_store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->done_cv);
    free(s->root);
    free(s);
}

const char *segment_store_root(const struct segment_store *s) { return s->root; }

/* Takes j; on refusal calls done(-1) and frees it. */
static int enqueue(struct segment_store *s, struct job *j)
{
    pthread_mutex_lock(&s->mu);
    bool over = s->stopping || (j->kind != JOB_FLUSH && s->queued_bytes + j->bytes > s->max_queued);
    if (over) {
        s->st.refused++;
        pthread_mutex_unlock(&s->mu);
        log_warn("hls: store refused write name=%s bytes=%zu (queue full or stopping)", j->name ? j->name : "-",
                 j->bytes);
        if (j->done)
            j->done(j->arg, -1);
        job_free(j);
        return -1;
    }
    s->queued_bytes += j->bytes;
    j->next = NULL;
    if (s->tail)
        s->tail->next = j;
    else
        s->head = j;
    s->tail = j;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static struct job *job_new(enum job_kind kind, const char *rel_dir, const char *name)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->kind = kind;
    j->rel_dir = strdup(rel_dir);
    j->name = strdup(name);
    if (!j->rel_dir || !j->name) {
        job_free(j);
        return NULL;
    }
    return j;
}

int segment_store_write(struct segment_store *s, const char *rel_dir, const char *name,
                        const struct segment_store_chunk *chunks, size_t nchunks, segment_store_done_fn done,
                        void *arg)
{
    struct job *j = NULL;
    if (!segment_store_path_ok(rel_dir) || !segment_store_path_ok(name) || strchr(name, '/'))
        goto refuse;
    j = job_new(JOB_WRITE, rel_dir, name);
    if (!j)
        goto refuse;
    j->chunks = calloc(nchunks ? nchunks : 1, sizeof(*chunks));
    if (!j->chunks)
        goto refuse;
    memcpy(j->chunks, chunks, nchunks * sizeof(*chunks));
    j->nchunks = nchunks;
    for (size_t i = 0; i < nchunks; i++)
        j->bytes += chunks[i].len;
    j->done = done;
    j->arg = arg;
    return enqueue(s, j);
refuse:
    if (j)
        job_free(j);
    pthread_mutex_lock(&s->mu);
    s->st.refused++;
    pthread_mutex_unlock(&s->mu);
    if (done)
        done(arg, -1);
    return -1;
}

int segment_store_append(struct segment_store *s, const char *rel_dir, const char *name, const char *text,
                         size_t len)
{
    if (!segment_store_path_ok(rel_dir) || !segment_store_path_ok(name) || strchr(name, '/'))
        return -1;
    struct job *j = job_new(JOB_APPEND, rel_dir, name);
    if (!j)
        return -1;
    j->text = malloc(len ? len : 1);
    if (!j->text) {
        job_free(j);
        return -1;
    }
    memcpy(j->text, text, len);
    j->bytes = len;
    return enqueue(s, j);
}

void segment_store_flush(struct segment_store *s)
{
    bool flushed = false;
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return;
    j->kind = JOB_FLUSH;
    j->flushed = &flushed;
    if (enqueue(s, j) != 0)
        return;
    pthread_mutex_lock(&s->mu);
    while (!flushed)
        pthread_cond_wait(&s->done_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
}

void segment_store_get_stats(struct segment_store *s, struct segment_store_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->st;
    out->queued_bytes = s->queued_bytes;
    pthread_mutex_unlock(&s->mu);
}
