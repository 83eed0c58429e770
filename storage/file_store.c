/* file_store.c — data_dir layout, atomic publishing, confined removal and
 * the append-writer thread (see file_store.h). */
#include "storage/file_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

/* --- layout ------------------------------------------------------------ */

int file_store_recording_relpath(char *out, size_t outlen, int64_t app_id, int64_t room_id,
                                 int64_t recording_id)
{
    int n = snprintf(out, outlen, "recordings/%" PRId64 "/%" PRId64 "/%" PRId64 ".mp4", app_id,
                     room_id, recording_id);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

int file_store_room_hls_relpath(char *out, size_t outlen, int64_t room_id)
{
    int n = snprintf(out, outlen, "hls/rooms/%" PRId64, room_id);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* Every component of rel is a plain name: no "", ".", "..". */
static bool rel_is_confined(const char *rel)
{
    if (!rel[0] || rel[0] == '/')
        return false;
    const char *p = rel;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!slash)
            break;
        p = slash + 1;
        if (!*p)
            return false; /* trailing slash */
    }
    return true;
}

int file_store_join(char *out, size_t outlen, const char *data_dir, const char *rel)
{
    if (!rel_is_confined(rel))
        return -1;
    size_t dl = strlen(data_dir);
    while (dl > 1 && data_dir[dl - 1] == '/')
        dl--;
    int n = snprintf(out, outlen, "%.*s/%s", (int)dl, data_dir, rel);
    return n < 0 || (size_t)n >= outlen ? -1 : 0;
}

/* --- synchronous helpers ------------------------------------------------ */

int file_store_mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(tmp, mode) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int parent_of(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return snprintf(out, outlen, ".") >= (int)outlen ? -1 : 0;
    if (slash == path)
        return snprintf(out, outlen, "/") >= (int)outlen ? -1 : 0;
    if ((size_t)(slash - path) >= outlen) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(out, path, (size_t)(slash - path));
    out[slash - path] = 0;
    return 0;
}

int file_store_mkdir_parent(const char *path)
{
    char dir[PATH_MAX];
    if (parent_of(path, dir, sizeof dir) != 0)
        return -1;
    return file_store_mkdir_p(dir, 0755);
}

int file_store_fsync_parent(const char *path)
{
    char dir[PATH_MAX];
    if (parent_of(path, dir, sizeof dir) != 0)
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

/* All of p: at offset off (pwrite), or at the file offset when off < 0
 * (write). 0 or -1 (errno). */
static int write_all_at(int fd, const uint8_t *p, size_t len, off_t off)
{
    while (len > 0) {
        ssize_t n = off < 0 ? write(fd, p, len) : pwrite(fd, p, len, off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t)n;
        if (off >= 0)
            off += n;
    }
    return 0;
}

static int write_all(int fd, const uint8_t *p, size_t len) { return write_all_at(fd, p, len, -1); }

int file_store_publish(const char *tmp, const char *path)
{
    if (rename(tmp, path) != 0)
        return -1;
    return file_store_fsync_parent(path);
}

int file_store_write_atomic(const char *path, const void *data, size_t len)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    if (write_all(fd, data, len) != 0 || fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (file_store_publish(tmp, path) != 0)
        goto fail;
    return 0;
fail:;
    int e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = e;
    return -1;
}

/* Removes dirfd/name, depth-first, never following symlinks: a directory is
 * opened with O_NOFOLLOW relative to its parent's fd, so a symlink swapped in
 * during the walk cannot lead outside the tree. */
static int remove_at(int dirfd, const char *name, uint64_t *n, int depth)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(dirfd, name, 0) != 0)
            return errno == ENOENT ? 0 : -1;
        if (n)
            (*n)++;
        return 0;
    }
    if (depth > 32) {
        errno = ELOOP;
        return -1;
    }
    for (int pass = 0; pass < 4; pass++) {
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return errno == ENOENT ? 0 : -1;
        DIR *d = fdopendir(fd);
        if (!d) {
            close(fd);
            return -1;
        }
        int rc = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            if (remove_at(fd, e->d_name, n, depth + 1) != 0)
                rc = -1;
        }
        int saved = errno;
        closedir(d);
        if (rc != 0) {
            errno = saved;
            return -1;
        }
        if (unlinkat(dirfd, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
            return 0;
        if (errno != ENOTEMPTY && errno != EEXIST)
            return -1;
        /* A file appeared while we walked (or readdir skipped one): again. */
    }
    return -1;
}

int file_store_remove_tree(const char *path, uint64_t *files_removed)
{
    if (!path[0] || strcmp(path, "/") == 0) {
        errno = EINVAL;
        return -1;
    }
    return remove_at(AT_FDCWD, path, files_removed, 0);
}

/* --- writer thread ------------------------------------------------------ */

/* ~2.7 s of 300 streams at 2.5 Mbit/s: a writer short of CPU for a moment
 * (a loaded machine) catches up instead of failing recordings. Memory is
 * used only while the disk or the writer is behind. */
#define FW_DEFAULT_QUEUE_MAX (256u << 20)
#define FW_DEFAULT_FSYNC_MS 2000

enum fw_op_kind { FW_APPEND, FW_CLOSE };

struct fw_op {
    struct fw_op *next;
    enum fw_op_kind kind;
    struct fw_file *f;
    void *data;
    size_t len;
    fw_closed_fn on_closed;
    void *ctx;
};

struct fw_file {
    struct file_writer *w;
    char path[PATH_MAX];
    struct fw_file_cb cb;
    atomic_int refs;
    atomic_int err;          /* first failure (errno); set once */
    char msg[256];           /* written by whoever set err, before posting */
    atomic_bool detached;    /* owner closed it */
    /* writer thread only */
    int fd;
    bool opened;
    bool direct;             /* fd has O_DIRECT: appends go through dio_write */
    uint64_t bytes;
    /* Direct I/O: the file offset of the block holding the tail, and the
     * tail itself (bytes past the last full block, written padded and cut
     * back with ftruncate, rewritten with the next append). */
    off_t dio_base;
    size_t dio_tail_len;
    uint8_t *dio_tail;
    long long last_sync_ms;
    struct fw_file *open_next, *open_prev; /* files with an fd, for file_writer_free */
};

struct file_writer {
    char name[32];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct fw_op *head, *tail;
    size_t queued_bytes;
    size_t queue_max;
    int fsync_ms;
    bool stopping;
    atomic_bool direct_io;      /* read at each file's first append */
    struct fw_file *open_files; /* writer thread only */
    /* writer thread only: the aligned staging buffer of direct appends */
    uint8_t *dio_buf;
    size_t dio_cap;
};

static void file_unref(struct fw_file *f)
{
    if (atomic_fetch_sub(&f->refs, 1) == 1) {
        free(f->dio_tail);
        free(f);
    }
}

struct fw_error_post {
    struct fw_file *f;
    int err;
};

static void deliver_error(void *arg)
{
    struct fw_error_post *p = arg;
    struct fw_file *f = p->f;
    if (!atomic_load(&f->detached) && f->cb.on_error)
        f->cb.on_error(f->cb.ctx, p->err, f->msg);
    file_unref(f);
    free(p);
}

/* Records the first failure of f and reports it to the owner. Any thread. */
static void file_set_error(struct fw_file *f, int err, const char *msg)
{
    int expected = 0;
    if (err == 0)
        err = EIO;
    if (!atomic_compare_exchange_strong(&f->err, &expected, err))
        return; /* already failed: the first reason stands */
    snprintf(f->msg, sizeof f->msg, "%s", msg);
    log_warn("file_writer: %s", msg);
    struct fw_error_post *p = malloc(sizeof *p);
    if (!p)
        return;
    p->f = f;
    p->err = err;
    atomic_fetch_add(&f->refs, 1);
    if (!f->cb.loop) {
        deliver_error(p);
        return;
    }
    if (loop_post(f->cb.loop, deliver_error, p) != 0) {
        /* Owner loop gone or full: the failure still shows in the close result. */
        file_unref(f);
        free(p);
    }
}

static void push_op(struct file_writer *w, struct fw_op *op)
{
    op->next = NULL;
    if (w->tail)
        w->tail->next = op;
    else
        w->head = op;
    w->tail = op;
    pthread_cond_signal(&w->cv);
}

static void open_list_add(struct file_writer *w, struct fw_file *f)
{
    f->open_prev = NULL;
    f->open_next = w->open_files;
    if (w->open_files)
        w->open_files->open_prev = f;
    w->open_files = f;
}

static void open_list_del(struct file_writer *w, struct fw_file *f)
{
    if (f->open_prev)
        f->open_prev->open_next = f->open_next;
    else if (w->open_files == f)
        w->open_files = f->open_next;
    if (f->open_next)
        f->open_next->open_prev = f->open_prev;
    f->open_next = f->open_prev = NULL;
}

/* O_DIRECT needs buffer, offset and length aligned to the device's block;
 * 4096 covers every device and memory alignment we meet. */
#define FW_DIO_ALIGN 4096u

/* Appends with O_DIRECT: the page cache is bypassed, so a recording that is
 * written once and read back only by the finalizer and downloads costs no
 * page-cache copy (and, on a VM, no first touch of fresh guest pages). The
 * tail past the last full block is written zero-padded and the file cut back
 * to its true size, so every append is in the file when this returns, as
 * with buffered writes (kill -9 loses nothing written). 0 or -1 (errno). */
static int dio_write(struct file_writer *w, struct fw_file *f, const uint8_t *data, size_t len)
{
    size_t have = f->dio_tail_len + len;
    size_t padded = (have + FW_DIO_ALIGN - 1) / FW_DIO_ALIGN * FW_DIO_ALIGN;
    if (padded > w->dio_cap) {
        size_t cap = padded < (1u << 20) ? (1u << 20) : padded;
        void *nb = NULL;
        if (posix_memalign(&nb, FW_DIO_ALIGN, cap) != 0) {
            errno = ENOMEM;
            return -1;
        }
        free(w->dio_buf);
        w->dio_buf = nb;
        w->dio_cap = cap;
    }
    if (!f->dio_tail && !(f->dio_tail = malloc(FW_DIO_ALIGN))) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(w->dio_buf, f->dio_tail, f->dio_tail_len);
    memcpy(w->dio_buf + f->dio_tail_len, data, len);
    memset(w->dio_buf + have, 0, padded - have);
    if (write_all_at(f->fd, w->dio_buf, padded, f->dio_base) != 0)
        return -1;
    if (padded != have && ftruncate(f->fd, f->dio_base + (off_t)have) != 0)
        return -1;
    size_t full = have / FW_DIO_ALIGN * FW_DIO_ALIGN;
    f->dio_tail_len = have - full;
    memcpy(f->dio_tail, w->dio_buf + full, f->dio_tail_len);
    f->dio_base += (off_t)full;
    return 0;
}

/* Opens for writing, with O_DIRECT when the writer asks for it and the file
 * system takes it (tmpfs does not: plain buffered writes then). */
static int open_for_append(struct file_writer *w, struct fw_file *f)
{
    int flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
    if (atomic_load(&w->direct_io)) {
        int fd = open(f->path, flags | O_DIRECT, 0644);
        if (fd >= 0) {
            f->direct = true;
            return fd;
        }
        if (errno != EINVAL)
            return -1;
    }
    f->direct = false;
    return open(f->path, flags, 0644);
}

static void do_append(struct file_writer *w, struct fw_file *f, const void *data, size_t len)
{
    char msg[PATH_MAX + 80];
    if (atomic_load(&f->err) != 0)
        return;
    if (!f->opened) {
        f->opened = true;
        if (file_store_mkdir_parent(f->path) != 0) {
            int e = errno;
            snprintf(msg, sizeof msg, "mkdir for %s: %s", f->path, strerror(e));
            file_set_error(f, e, msg);
            return;
        }
        f->fd = open_for_append(w, f);
        if (f->fd < 0 && errno == ENOENT && file_store_mkdir_parent(f->path) == 0)
            /* a sweeper removed the empty folder in between: once more */
            f->fd = open_for_append(w, f);
        if (f->fd < 0) {
            int e = errno;
            snprintf(msg, sizeof msg, "open %s: %s", f->path, strerror(e));
            file_set_error(f, e, msg);
            return;
        }
        open_list_add(w, f);
        f->last_sync_ms = loop_now_ms();
    }
    if (f->fd < 0)
        return;
    if ((f->direct ? dio_write(w, f, data, len) : write_all(f->fd, data, len)) != 0) {
        int e = errno;
        snprintf(msg, sizeof msg, "write %s: %s", f->path, strerror(e));
        file_set_error(f, e, msg);
        return;
    }
    f->bytes += len;
    long long now = loop_now_ms();
    if (now - f->last_sync_ms >= w->fsync_ms) {
        f->last_sync_ms = now;
        if (fdatasync(f->fd) != 0) {
            int e = errno;
            snprintf(msg, sizeof msg, "fsync %s: %s", f->path, strerror(e));
            file_set_error(f, e, msg);
        }
    }
}

struct fw_closed_post {
    fw_closed_fn fn;
    void *ctx;
    struct fw_close_result res;
};

static void deliver_closed(void *arg)
{
    struct fw_closed_post *p = arg;
    p->fn(p->ctx, &p->res);
    free(p);
}

static void do_close(struct file_writer *w, struct fw_file *f, fw_closed_fn fn, void *ctx)
{
    char msg[PATH_MAX + 80];
    if (f->fd >= 0) {
        if (atomic_load(&f->err) == 0 && fsync(f->fd) != 0) {
            int e = errno;
            snprintf(msg, sizeof msg, "fsync %s: %s", f->path, strerror(e));
            file_set_error(f, e, msg);
        }
        if (close(f->fd) != 0 && atomic_load(&f->err) == 0) {
            int e = errno;
            snprintf(msg, sizeof msg, "close %s: %s", f->path, strerror(e));
            file_set_error(f, e, msg);
        }
        f->fd = -1;
        open_list_del(w, f);
        if (file_store_fsync_parent(f->path) != 0)
            log_warn("file_writer: fsync dir of %s: %s", f->path, strerror(errno));
    }
    if (fn) {
        struct fw_closed_post *p = calloc(1, sizeof *p);
        if (p) {
            p->fn = fn;
            p->ctx = ctx;
            p->res.err = atomic_load(&f->err);
            snprintf(p->res.msg, sizeof p->res.msg, "%s", p->res.err ? f->msg : "");
            p->res.bytes = f->bytes;
            p->res.created = f->opened && f->bytes > 0;
            p->res.direct_io = f->direct;
            if (!f->cb.loop)
                deliver_closed(p);
            else if (loop_post(f->cb.loop, deliver_closed, p) != 0) {
                log_warn("file_writer: close of %s not reported: owner loop unavailable", f->path);
                free(p);
            }
        }
    }
    file_unref(f); /* the owner's reference, handed over by file_writer_close */
}

static void *writer_main(void *arg)
{
    struct file_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->head && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        struct fw_op *op = w->head;
        if (!op)
            break; /* stopping and drained */
        w->head = op->next;
        if (!w->head)
            w->tail = NULL;
        pthread_mutex_unlock(&w->mu);

        if (op->kind == FW_APPEND)
            do_append(w, op->f, op->data, op->len);
        else
            do_close(w, op->f, op->on_closed, op->ctx);

        pthread_mutex_lock(&w->mu);
        if (op->kind == FW_APPEND)
            w->queued_bytes -= op->len;
        pthread_mutex_unlock(&w->mu);
        free(op->data);
        free(op);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    /* Files the owner never closed: make what was written durable. */
    while (w->open_files) {
        struct fw_file *f = w->open_files;
        log_warn("file_writer: %s was not closed by its owner; closing", f->path);
        if (f->fd >= 0) {
            fsync(f->fd);
            close(f->fd);
            f->fd = -1;
        }
        open_list_del(w, f);
    }
    return NULL;
}

struct file_writer *file_writer_new(const char *name, size_t queue_max_bytes, int fsync_interval_ms)
{
    struct file_writer *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    snprintf(w->name, sizeof w->name, "%s", name ? name : "writer");
    w->queue_max = queue_max_bytes ? queue_max_bytes : FW_DEFAULT_QUEUE_MAX;
    w->fsync_ms = fsync_interval_ms > 0 ? fsync_interval_ms : FW_DEFAULT_FSYNC_MS;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w);
        return NULL;
    }
    char tname[16];
    snprintf(tname, sizeof tname, "%.15s", w->name);
    pthread_setname_np(w->thread, tname);
    return w;
}

void file_writer_free(struct file_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->dio_buf);
    free(w);
}

void file_writer_set_direct_io(struct file_writer *w, bool on)
{
    atomic_store(&w->direct_io, on);
}

struct fw_file *file_writer_open(struct file_writer *w, const char *path, const struct fw_file_cb *cb)
{
    struct fw_file *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->w = w;
    snprintf(f->path, sizeof f->path, "%s", path);
    if (cb)
        f->cb = *cb;
    atomic_init(&f->refs, 1);
    atomic_init(&f->err, 0);
    atomic_init(&f->detached, false);
    f->fd = -1;
    return f;
}

int file_writer_append(struct fw_file *f, void *data, size_t len)
{
    if (atomic_load(&f->err) != 0) {
        free(data);
        return -1;
    }
    struct fw_op *op = malloc(sizeof *op);
    if (!op) {
        free(data);
        file_set_error(f, ENOMEM, "file_writer: out of memory");
        return -1;
    }
    struct file_writer *w = f->w;
    pthread_mutex_lock(&w->mu);
    if (w->queued_bytes + len > w->queue_max) {
        size_t q = w->queued_bytes;
        pthread_mutex_unlock(&w->mu);
        free(op);
        free(data);
        char msg[PATH_MAX + 120];
        snprintf(msg, sizeof msg, "write %s: writer queue full (%zu bytes waiting): disk too slow",
                 f->path, q);
        file_set_error(f, ENOBUFS, msg);
        return -1;
    }
    op->kind = FW_APPEND;
    op->f = f;
    op->data = data;
    op->len = len;
    w->queued_bytes += len;
    push_op(w, op);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

void file_writer_fail(struct fw_file *f, int err, const char *msg) { file_set_error(f, err, msg); }

int file_writer_error(const struct fw_file *f) { return atomic_load(&f->err); }

void file_writer_close(struct fw_file *f, fw_closed_fn on_closed, void *ctx)
{
    atomic_store(&f->detached, true);
    struct fw_op *op = calloc(1, sizeof *op);
    if (!op) {
        /* Cannot queue: leave the fd to file_writer_free's sweep. */
        log_error("file_writer: out of memory closing %s", f->path);
        return;
    }
    op->kind = FW_CLOSE;
    op->f = f;
    op->on_closed = on_closed;
    op->ctx = ctx;
    struct file_writer *w = f->w;
    pthread_mutex_lock(&w->mu);
    push_op(w, op);
    pthread_mutex_unlock(&w->mu);
}

size_t file_writer_queued_bytes(struct file_writer *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->queued_bytes;
    pthread_mutex_unlock(&w->mu);
    return n;
}
