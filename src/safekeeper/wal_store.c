/* SPDX-License-Identifier: Apache-2.0 */
/* wal_store.c -- a safekeeper's WAL segment files: writing, recovery of the end, truncation. */
#include "safekeeper/wal_store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/crc32c.h"
#include "common/failpoint.h"
#include "common/log.h"

/* PostgreSQL 15's WAL format (access/xlog_internal.h, access/xlogrecord.h). Little-endian. */
#define SK_XLP_MAGIC         0xD110 /* XLOG_PAGE_MAGIC of PostgreSQL 15 */
#define SK_XLP_FIRST_IS_CONT 0x0001 /* XLP_FIRST_IS_CONTRECORD */
#define SK_XLP_LONG_HEADER   0x0002
#define SK_XLP_ALL_FLAGS     0x000F
#define SK_XLP_SHORT_SIZE    24                    /* MAXALIGN(sizeof(XLogPageHeaderData)) */
#define SK_XLP_LONG_SIZE     40                    /* MAXALIGN(sizeof(XLogLongPageHeaderData)) */
#define SK_XLREC_HDR_SIZE    24                    /* SizeOfXLogRecord */
#define SK_XLREC_CRC_OFF     20                    /* offsetof(XLogRecord, xl_crc) */
#define SK_XLREC_MAX         (1020u * 1024 * 1024) /* XLogRecordMaxSize */
#define SK_RM_XLOG_ID        0
#define SK_XLOG_SWITCH       0x40
#define SK_MAXALIGN(x)       (((x) + 7) & ~(kc_lsn)7)
#define SK_PAGE_START(x)     ((x) & ~(kc_lsn)(SK_WAL_PAGE_SIZE - 1))

#define SK_WAL_FDS      8  /* segment files kept open */
#define SK_WAL_NAME_MAX 40 /* a segment name with a suffix, and the terminator */
#define SK_WAL_ZERO_BUF (1u << 20)

struct sk_wal_fd {
    uint64_t segno; /* the segment */
    int fd;         /* -1: slot unused */
    bool dirty;     /* written since its last fdatasync */
};

/* One store; see wal_store.h. Owned and used by one thread. */
struct sk_wal {
    char *dir;              /* the timeline directory, for messages */
    int dirfd;              /* the directory, for *at() calls and fsync */
    uint32_t seg_size;      /* bytes per segment */
    uint64_t system_id;     /* 0: not checked */
    kc_lsn start_lsn;       /* where this store's WAL begins */
    kc_lsn begin_lsn;       /* oldest readable LSN */
    kc_lsn write_lsn;       /* end of the WAL written */
    kc_lsn flush_lsn;       /* end of the durable WAL */
    bool have_segs;         /* lo_seg..hi_seg exist */
    uint64_t lo_seg;        /* lowest existing segment */
    uint64_t hi_seg;        /* highest existing segment */
    uint64_t first_partial; /* segments below have plain names, the others ".partial" */
    struct sk_wal_fd fds[SK_WAL_FDS];
    unsigned next_victim;  /* round-robin eviction in fds */
    uint64_t *recycled;    /* segment numbers of the "<name>.recycled" files */
    unsigned nrecycled;    /* entries in recycled */
    unsigned max_recycled; /* most to keep */
    bool broken;           /* an fsync failed: refuse to go on */
    uint8_t *page;         /* SK_WAL_PAGE_SIZE scratch bytes for recovery */
};

static inline uint16_t sk_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t sk_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint64_t sk_le64(const uint8_t *p)
{
    return (uint64_t)sk_le32(p) | ((uint64_t)sk_le32(p + 4) << 32);
}

/* ---- names, files and errors ---- */

static void sk_wal_name(const struct sk_wal *w, uint64_t segno, const char *suffix,
                        char out[SK_WAL_NAME_MAX])
{
    char base[KC_WAL_FILE_NAME_LEN];

    kc_wal_file_name(base, SK_WAL_TIMELINE, segno, w->seg_size);
    snprintf(out, SK_WAL_NAME_MAX, "%s%s", base, suffix);
}

/* The current name of existing segment segno. */
static void sk_wal_seg_name(const struct sk_wal *w, uint64_t segno, char out[SK_WAL_NAME_MAX])
{
    sk_wal_name(w, segno, segno >= w->first_partial ? SK_WAL_PARTIAL_SUFFIX : "", out);
}

static bool sk_wal_exists(const struct sk_wal *w, uint64_t segno)
{
    return w->have_segs && segno >= w->lo_seg && segno <= w->hi_seg;
}

static int sk_wal_io(struct kc_error *err, const struct sk_wal *w, const char *what,
                     const char *name, int e)
{
    kc_error_set(err, KC_EIO, "could not %s \"%s/%s\": %s", what, w->dir, name, strerror(e));
    return KC_EIO;
}

static int sk_wal_broken_error(const struct sk_wal *w, struct kc_error *err)
{
    kc_error_set(err, KC_EIO, "WAL store \"%s\" is unusable after a failed fsync", w->dir);
    kc_error_detail(err, "The kernel may have dropped WAL that was written but not yet durable.");
    kc_error_hint(err, "Restart the safekeeper: it recovers the WAL from the files.");
    return KC_EIO;
}

/* A failed fsync: the store is unusable from now on (the kernel may have dropped pages). */
static int sk_wal_fsync_failed(struct sk_wal *w, struct kc_error *err, const char *name, int e)
{
    w->broken = true;
    sk_wal_io(err, w, "fsync", name, e);
    kc_error_hint(err, "Restart the safekeeper: it recovers the WAL from the files.");
    return KC_EIO;
}

/* fdatasync fd (segment name for messages), honouring the failpoint. */
static int sk_wal_datasync(struct sk_wal *w, int fd, const char *name, struct kc_error *err)
{
    char v[KC_FAILPOINT_VALUE_MAX + 1];

    if (kc_failpoint("safekeeper.wal.before-fsync", v, sizeof(v)))
        return sk_wal_fsync_failed(w, err, name, kc_failpoint_errno(v, EIO));
    if (fdatasync(fd) != 0)
        return sk_wal_fsync_failed(w, err, name, errno);
    return 0;
}

static int sk_wal_fsync_dir(struct sk_wal *w, struct kc_error *err)
{
    if (fsync(w->dirfd) != 0)
        return sk_wal_fsync_failed(w, err, ".", errno);
    return 0;
}

/* Evaluate failpoint name: KC_EFAILPOINT with err filled when a return action fires. */
static int sk_wal_failpoint(const char *name, struct kc_error *err)
{
    char v[KC_FAILPOINT_VALUE_MAX + 1];

    if (kc_failpoint(name, v, sizeof(v)) == 0)
        return 0;
    return kc_error_set(err, KC_EFAILPOINT, "failpoint \"%s\" injected an error%s%s", name,
                        v[0] != '\0' ? ": " : "", v);
}

/* pwrite/pread all of len bytes; 0, or an errno (EIO for an unexpected end of file). */
static int sk_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
    const uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        p += n, len -= (size_t)n, off += n;
    }
    return 0;
}

static int sk_pread_all(int fd, void *buf, size_t len, off_t off)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = pread(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? errno : EIO;
        p += n, len -= (size_t)n, off += n;
    }
    return 0;
}

/* ---- the open-file cache ---- */

static struct sk_wal_fd *sk_wal_cached(struct sk_wal *w, uint64_t segno)
{
    for (int i = 0; i < SK_WAL_FDS; i++)
        if (w->fds[i].fd >= 0 && w->fds[i].segno == segno)
            return &w->fds[i];
    return NULL;
}

/* Close a cache slot, fdatasyncing it first when dirty (sync false: just close). */
static int sk_wal_drop_fd(struct sk_wal *w, struct sk_wal_fd *f, bool sync, struct kc_error *err)
{
    int rc = 0;

    if (f->fd < 0)
        return 0;
    if (sync && f->dirty) {
        char name[SK_WAL_NAME_MAX];
        sk_wal_seg_name(w, f->segno, name);
        rc = sk_wal_datasync(w, f->fd, name, err);
    }
    close(f->fd);
    f->fd = -1;
    f->dirty = false;
    return rc;
}

/* fdatasync every dirty open segment. */
static int sk_wal_sync_dirty(struct sk_wal *w, struct kc_error *err)
{
    for (int i = 0; i < SK_WAL_FDS; i++) {
        struct sk_wal_fd *f = &w->fds[i];
        char name[SK_WAL_NAME_MAX];
        int rc;

        if (f->fd < 0 || !f->dirty)
            continue;
        sk_wal_seg_name(w, f->segno, name);
        if ((rc = sk_wal_datasync(w, f->fd, name, err)) != 0)
            return rc;
        f->dirty = false;
    }
    return 0;
}

/*
 * Make segment segno exist as "<name>.partial" at full size: rename a
 * recycled segment into place, or zero-fill a new one; both made durable.
 */
static int sk_wal_create_segment(struct sk_wal *w, uint64_t segno, struct kc_error *err)
{
    char name[SK_WAL_NAME_MAX], from[SK_WAL_NAME_MAX];
    bool recycle = w->nrecycled > 0;
    int rc;

    sk_wal_name(w, segno, SK_WAL_PARTIAL_SUFFIX, name);
    if (recycle) {
        sk_wal_name(w, w->recycled[w->nrecycled - 1], SK_WAL_RECYCLE_SUFFIX, from);
    } else {
        uint8_t *zeros = kc_calloc(1, SK_WAL_ZERO_BUF);
        int fd =
            openat(w->dirfd, SK_WAL_PREALLOC_NAME, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        snprintf(from, sizeof(from), "%s", SK_WAL_PREALLOC_NAME);
        if (fd < 0) {
            free(zeros);
            return sk_wal_io(err, w, "create file", from, errno);
        }
        rc = 0;
        for (uint32_t off = 0; rc == 0 && off < w->seg_size; off += SK_WAL_ZERO_BUF)
            rc = sk_pwrite_all(fd, zeros, SK_WAL_ZERO_BUF, off);
        free(zeros);
        if (rc != 0) {
            close(fd);
            return sk_wal_io(err, w, "write file", from, rc);
        }
        if (fsync(fd) != 0) {
            rc = errno;
            close(fd);
            return sk_wal_fsync_failed(w, err, from, rc);
        }
        close(fd);
    }
    if ((rc = sk_wal_failpoint("safekeeper.wal.before-segment-create", err)) != 0)
        return rc;
    if (renameat(w->dirfd, from, w->dirfd, name) != 0)
        return sk_wal_io(err, w, "rename file", from, errno);
    if (recycle)
        w->nrecycled--;
    if ((rc = sk_wal_fsync_dir(w, err)) != 0)
        return rc;
    if (!w->have_segs)
        w->lo_seg = segno;
    w->have_segs = true;
    w->hi_seg = segno;
    return 0;
}

/*
 * An open descriptor of segment segno (owned by the cache). A missing
 * segment is created when create is set and it is the next one; otherwise
 * KC_ENOTFOUND.
 */
static int sk_wal_fd_for(struct sk_wal *w, uint64_t segno, bool create, struct sk_wal_fd **out,
                         struct kc_error *err)
{
    char name[SK_WAL_NAME_MAX];
    struct sk_wal_fd *f = sk_wal_cached(w, segno);
    int rc, fd;

    if (f != NULL) {
        *out = f;
        return 0;
    }
    if (!sk_wal_exists(w, segno)) {
        sk_wal_name(w, segno, "", name);
        if (!create || (w->have_segs && segno != w->hi_seg + 1))
            return kc_error_set(err, KC_ENOTFOUND, "WAL segment %s does not exist in \"%s\"", name,
                                w->dir);
        if ((rc = sk_wal_create_segment(w, segno, err)) != 0)
            return rc;
    }
    sk_wal_seg_name(w, segno, name);
    fd = openat(w->dirfd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return sk_wal_io(err, w, "open WAL segment", name, errno);
    f = NULL;
    for (int i = 0; i < SK_WAL_FDS && f == NULL; i++)
        if (w->fds[i].fd < 0)
            f = &w->fds[i];
    if (f == NULL) {
        f = &w->fds[w->next_victim++ % SK_WAL_FDS];
        if ((rc = sk_wal_drop_fd(w, f, true, err)) != 0) {
            close(fd);
            return rc;
        }
    }
    f->segno = segno;
    f->fd = fd;
    f->dirty = false;
    *out = f;
    return 0;
}

/* Forget (close without syncing) the descriptor of segno, if open. */
static void sk_wal_forget_fd(struct sk_wal *w, uint64_t segno)
{
    struct sk_wal_fd *f = sk_wal_cached(w, segno);

    if (f != NULL)
        (void)sk_wal_drop_fd(w, f, false, NULL);
}

/* ---- recovering the end of WAL ---- */

struct sk_page_hdr {
    uint16_t info;    /* xlp_info */
    uint32_t rem_len; /* xlp_rem_len */
    uint32_t size;    /* header bytes: short or long */
};

/* Load page p of the WAL into w->page: 1 loaded, 0 its segment does not exist, <0 error. */
static int sk_wal_load_page(struct sk_wal *w, kc_lsn p, struct kc_error *err)
{
    struct sk_wal_fd *f;
    int rc;

    if (!sk_wal_exists(w, kc_lsn_segno(p, w->seg_size)))
        return 0;
    if ((rc = sk_wal_fd_for(w, kc_lsn_segno(p, w->seg_size), false, &f, err)) != 0)
        return rc;
    rc = sk_pread_all(f->fd, w->page, SK_WAL_PAGE_SIZE, kc_lsn_segoff(p, w->seg_size));
    if (rc != 0) {
        char name[SK_WAL_NAME_MAX];
        sk_wal_seg_name(w, f->segno, name);
        return sk_wal_io(err, w, "read WAL segment", name, rc);
    }
    return 1;
}

/* Is w->page a valid header for page p? Fills h when it is. */
static bool sk_wal_page_ok(const struct sk_wal *w, kc_lsn p, struct sk_page_hdr *h)
{
    bool first = kc_lsn_segoff(p, w->seg_size) == 0;
    uint32_t size = first ? SK_XLP_LONG_SIZE : SK_XLP_SHORT_SIZE;
    const uint8_t *r;
    struct kc_buf b;
    uint16_t info;

    kc_buf_init(&b, w->page, SK_WAL_PAGE_SIZE);
    if (!kc_buf_get_ref(&b, &r, size))
        return false;
    info = sk_le16(r + 2);
    if (sk_le16(r) != SK_XLP_MAGIC || (info & ~SK_XLP_ALL_FLAGS) != 0 || sk_le32(r + 4) == 0 ||
        sk_le64(r + 8) != p || first != ((info & SK_XLP_LONG_HEADER) != 0))
        return false;
    if (first && ((w->system_id != 0 && sk_le64(r + 24) != w->system_id) ||
                  sk_le32(r + 32) != w->seg_size || sk_le32(r + 36) != SK_WAL_PAGE_SIZE))
        return false;
    h->info = info;
    h->rem_len = sk_le32(r + 16);
    h->size = size;
    return true;
}

/* n bytes of w->page at off, through a bounds-checked cursor (NULL when out of range). */
static const uint8_t *sk_wal_page_ref(const struct sk_wal *w, size_t off, size_t n)
{
    const uint8_t *r;
    struct kc_buf b;

    kc_buf_init(&b, w->page, SK_WAL_PAGE_SIZE);
    if (!kc_buf_skip(&b, off) || !kc_buf_get_ref(&b, &r, n))
        return NULL;
    return r;
}

static bool sk_all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0)
            return false;
    return true;
}

/* The state of the forward scan. */
struct sk_scan {
    struct sk_wal *w;
    kc_lsn page_lsn;                /* page in w->page, or UINT64_MAX */
    kc_lsn pos;                     /* next byte to examine */
    bool in_rec;                    /* inside a record */
    kc_lsn rec_start;               /* where it starts */
    uint32_t tot_len;               /* its xl_tot_len */
    uint32_t got;                   /* bytes of it seen */
    uint8_t hdr[SK_XLREC_HDR_SIZE]; /* its header */
    uint32_t crc;                   /* CRC of its bytes after the header */
    kc_lsn prev;                    /* start of the previous valid record; 0: unknown */
    kc_lsn valid_end;               /* end of the WAL verified so far */
    const char *why;                /* why the scan stopped, for the log */
};

/* Stop the scan (returns 0: end of WAL) and remember why. */
static int sk_scan_stop(struct sk_scan *s, const char *why)
{
    s->why = why;
    return 0;
}

/* Make page p current: 1, 0 missing, <0 error. */
static int sk_scan_page(struct sk_scan *s, kc_lsn p, struct kc_error *err)
{
    int rc;

    if (s->page_lsn == p)
        return 1;
    s->page_lsn = UINT64_MAX;
    if ((rc = sk_wal_load_page(s->w, p, err)) == 1)
        s->page_lsn = p;
    return rc;
}

/*
 * Find a record boundary at or below k to scan from: the first record
 * boundary of the nearest page at or below k that has one. 1 with *start,
 * 0 when no boundary can be verified (removed WAL), <0 on error (KC_ECORRUPT
 * when a page below k, which must be durable WAL, has no valid header).
 */
static int sk_scan_find_start(struct sk_scan *s, kc_lsn k, kc_lsn *start, struct kc_error *err)
{
    struct sk_wal *w = s->w;
    struct sk_page_hdr h;
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];

    if (k == w->start_lsn) {
        *start = k;
        return 1;
    }
    /* A page that starts at k with a fresh record: start there (k may be where WAL
     * was removed up to, so that nothing below can be read). */
    if (k % SK_WAL_PAGE_SIZE == 0) {
        int rc = sk_scan_page(s, k, err);
        if (rc < 0)
            return rc;
        if (rc == 1 && sk_wal_page_ok(w, k, &h) && (h.info & SK_XLP_FIRST_IS_CONT) == 0) {
            *start = k;
            return 1;
        }
    }
    for (kc_lsn p = SK_PAGE_START(k - 1);; p -= SK_WAL_PAGE_SIZE) {
        kc_lsn fb;
        int rc;

        if (p < w->start_lsn) { /* the store's start is a record boundary */
            *start = w->start_lsn;
            return 1;
        }
        if (p < w->begin_lsn)
            return 0;
        if ((rc = sk_scan_page(s, p, err)) < 0)
            return rc;
        if (rc == 0 || !sk_wal_page_ok(w, p, &h)) {
            kc_error_set(err, KC_ECORRUPT, "invalid WAL page at %s in \"%s\"", kc_lsn_format(p, a),
                         w->dir);
            kc_error_detail(err, "The page lies below %s, which is known to be durable WAL.",
                            kc_lsn_format(k, b));
            return KC_ECORRUPT;
        }
        fb = p + h.size;
        if ((h.info & SK_XLP_FIRST_IS_CONT) != 0)
            fb = SK_MAXALIGN(fb + h.rem_len);
        if (fb < p + SK_WAL_PAGE_SIZE && fb <= k) {
            *start = fb;
            return 1;
        }
        if (p == 0)
            return 0;
    }
}

/* After a valid XLOG_SWITCH record: the rest of its segment must be empty pages. 1 or 0/<0. */
static int sk_scan_switch(struct sk_scan *s, struct kc_error *err)
{
    struct sk_wal *w = s->w;
    kc_lsn seg_end = kc_lsn_seg_start(s->valid_end - 1, w->seg_size) + w->seg_size;
    struct sk_page_hdr h;
    const uint8_t *r;
    int rc;

    if (s->pos % SK_WAL_PAGE_SIZE != 0 && s->pos < seg_end) {
        uint32_t off = (uint32_t)(s->pos % SK_WAL_PAGE_SIZE);
        if ((rc = sk_scan_page(s, SK_PAGE_START(s->pos), err)) <= 0)
            return rc < 0 ? rc : sk_scan_stop(s, "no segment file");
        r = sk_wal_page_ref(w, off, SK_WAL_PAGE_SIZE - off);
        if (r == NULL || !sk_all_zero(r, SK_WAL_PAGE_SIZE - off))
            return sk_scan_stop(s, "bytes after a switch record");
        s->pos = s->valid_end = SK_PAGE_START(s->pos) + SK_WAL_PAGE_SIZE;
    }
    while (s->pos < seg_end) {
        if ((rc = sk_scan_page(s, s->pos, err)) <= 0)
            return rc < 0 ? rc : sk_scan_stop(s, "no segment file");
        if (!sk_wal_page_ok(w, s->pos, &h) || (h.info & SK_XLP_FIRST_IS_CONT) != 0)
            return sk_scan_stop(s, "invalid page header after a switch record");
        r = sk_wal_page_ref(w, h.size, SK_WAL_PAGE_SIZE - h.size);
        if (r == NULL || !sk_all_zero(r, SK_WAL_PAGE_SIZE - h.size))
            return sk_scan_stop(s, "bytes in a page after a switch record");
        s->pos = s->valid_end = s->pos + SK_WAL_PAGE_SIZE;
    }
    return 1;
}

/* A record is complete: check its CRC and prev-link. true when valid. */
static bool sk_scan_finish_record(struct sk_scan *s)
{
    uint32_t crc = kc_crc32c(s->crc, s->hdr, SK_XLREC_CRC_OFF);
    kc_lsn xl_prev = sk_le64(s->hdr + 8);

    if (crc != sk_le32(s->hdr + SK_XLREC_CRC_OFF))
        return sk_scan_stop(s, "record checksum mismatch");
    if (s->prev != 0 ? xl_prev != s->prev : xl_prev >= s->rec_start)
        return sk_scan_stop(s, "record prev-link mismatch");
    s->prev = s->rec_start;
    s->valid_end = s->pos; /* not rec_start + tot_len: page headers may lie in between */
    s->in_rec = false;
    s->pos = SK_MAXALIGN(s->valid_end);
    return true;
}

/* Feed n bytes of the current record. */
static void sk_scan_feed(struct sk_scan *s, const uint8_t *p, uint32_t n)
{
    if (s->got < SK_XLREC_HDR_SIZE) {
        uint32_t h = n < SK_XLREC_HDR_SIZE - s->got ? n : SK_XLREC_HDR_SIZE - s->got;
        memcpy(s->hdr + s->got, p, h);
        p += h, n -= h, s->got += h;
    }
    if (n > 0) {
        s->crc = kc_crc32c(s->crc, p, n);
        s->got += n;
    }
}

/* Enter page p at s->pos: check its header. 1 go on, 0 end of WAL, <0 error. */
static int sk_scan_enter_page(struct sk_scan *s, kc_lsn p, struct kc_error *err)
{
    struct sk_page_hdr h;
    bool cont;
    int rc;

    if ((rc = sk_scan_page(s, p, err)) <= 0)
        return rc < 0 ? rc : sk_scan_stop(s, "no segment file");
    if (p < s->w->start_lsn) /* the page holding a mid-page start has no header here */
        return 1;
    if (!sk_wal_page_ok(s->w, p, &h))
        return sk_scan_stop(s, "invalid page header");
    if (s->pos != p) /* entering mid-page at the scan's start */
        return 1;
    cont = (h.info & SK_XLP_FIRST_IS_CONT) != 0;
    if (s->in_rec ? (!cont || h.rem_len != s->tot_len - s->got) : cont)
        return sk_scan_stop(s, "page header does not continue the record");
    s->pos = p + h.size;
    return 1;
}

/* Follow records from s->pos until the WAL stops being valid. 0 or <0 (error). */
static int sk_scan_run(struct sk_scan *s, struct kc_error *err)
{
    for (;;) {
        kc_lsn p = SK_PAGE_START(s->pos);
        const uint8_t *r;
        uint32_t off, avail, n;
        int rc;

        if (p != s->page_lsn && (rc = sk_scan_enter_page(s, p, err)) <= 0)
            return rc;
        off = (uint32_t)(s->pos - p);
        avail = SK_WAL_PAGE_SIZE - off;
        if (!s->in_rec) {
            if ((r = sk_wal_page_ref(s->w, off, 4)) == NULL)
                return sk_scan_stop(s, "no room for a record");
            s->tot_len = sk_le32(r);
            if (s->tot_len < SK_XLREC_HDR_SIZE || s->tot_len > SK_XLREC_MAX)
                return sk_scan_stop(s, "no record length");
            s->in_rec = true;
            s->rec_start = s->pos;
            s->got = 0;
            s->crc = 0;
        }
        n = avail < s->tot_len - s->got ? avail : s->tot_len - s->got;
        if ((r = sk_wal_page_ref(s->w, off, n)) == NULL)
            return sk_scan_stop(s, "record out of page"); /* not reached */
        sk_scan_feed(s, r, n);
        s->pos += n;
        if (s->got < s->tot_len)
            continue; /* on the next page */
        if (!sk_scan_finish_record(s))
            return 0; /* with why set */
        if (s->hdr[17] == SK_RM_XLOG_ID && (s->hdr[16] & 0xF0) == SK_XLOG_SWITCH &&
            (rc = sk_scan_switch(s, err)) <= 0)
            return rc;
    }
}

/* The end of valid WAL at or after k (itself durable): *end >= k. */
static int sk_wal_recover_end(struct sk_wal *w, kc_lsn k, kc_lsn *end, struct kc_error *err)
{
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN], c[KC_LSN_STRLEN];
    struct sk_scan s;
    kc_lsn start;
    int rc;

    memset(&s, 0, sizeof(s));
    s.w = w;
    s.page_lsn = UINT64_MAX;
    *end = k;
    s.why = "no verifiable record boundary at or below it";
    rc = sk_scan_find_start(&s, k, &start, err);
    if (rc > 0) {
        s.pos = s.valid_end = start;
        s.page_lsn = UINT64_MAX; /* enter the first page afresh (its header, at a page start) */
        rc = sk_scan_run(&s, err);
    }
    if (rc < 0)
        return rc;
    if (s.valid_end > k)
        *end = s.valid_end;
    kc_info("WAL in \"%s\" ends at %s: %s at %s (scan from durable %s)", w->dir,
            kc_lsn_format(*end, a), s.why, kc_lsn_format(s.pos, b), kc_lsn_format(k, c));
    return 0;
}

/* ---- cutting the WAL at an LSN ---- */

/* Delete every segment above segno, highest first. */
static int sk_wal_delete_after(struct sk_wal *w, uint64_t segno, struct kc_error *err)
{
    while (w->have_segs && w->hi_seg > segno) {
        char name[SK_WAL_NAME_MAX];

        sk_wal_seg_name(w, w->hi_seg, name);
        sk_wal_forget_fd(w, w->hi_seg);
        if (unlinkat(w->dirfd, name, 0) != 0 && errno != ENOENT)
            return sk_wal_io(err, w, "remove WAL segment", name, errno);
        if (w->hi_seg == w->lo_seg)
            w->have_segs = false;
        else
            w->hi_seg--;
    }
    return 0;
}

/*
 * Make sure nothing at or after l in its segment can pass for WAL: zero the
 * rest of l's page, and the header of every later page of the segment that
 * carries its own address (old WAL; recycled pages carry other addresses).
 * Then fdatasync the segment.
 */
static int sk_wal_invalidate(struct sk_wal *w, kc_lsn l, struct kc_error *err)
{
    uint64_t segno = kc_lsn_segno(l, w->seg_size);
    kc_lsn seg_end = kc_lsn_from_seg(segno + 1, 0, w->seg_size);
    kc_lsn pend = SK_PAGE_START(l) + SK_WAL_PAGE_SIZE;
    static const uint8_t zeros[SK_WAL_PAGE_SIZE];
    char name[SK_WAL_NAME_MAX];
    struct sk_wal_fd *f;
    int rc;

    if (!sk_wal_exists(w, segno))
        return 0;
    if ((rc = sk_wal_fd_for(w, segno, false, &f, err)) != 0)
        return rc;
    sk_wal_seg_name(w, segno, name);
    rc = sk_pwrite_all(f->fd, zeros, (size_t)(pend - l), kc_lsn_segoff(l, w->seg_size));
    for (kc_lsn p = pend; rc == 0 && p < seg_end; p += SK_WAL_PAGE_SIZE) {
        uint8_t h[SK_XLP_SHORT_SIZE];

        rc = sk_pread_all(f->fd, h, sizeof(h), kc_lsn_segoff(p, w->seg_size));
        if (rc == 0 && sk_le16(h) == SK_XLP_MAGIC && sk_le64(h + 8) == p)
            rc = sk_pwrite_all(f->fd, zeros, sizeof(h), kc_lsn_segoff(p, w->seg_size));
    }
    if (rc != 0)
        return sk_wal_io(err, w, "invalidate WAL in segment", name, rc);
    f->dirty = false;
    return sk_wal_datasync(w, f->fd, name, err);
}

/* Rename segments that lie entirely below end from ".partial" to their plain names. */
static int sk_wal_complete_segments(struct sk_wal *w, kc_lsn end, struct kc_error *err)
{
    uint64_t upto = kc_lsn_segno(end, w->seg_size);
    bool renamed = false;
    int rc;

    for (; w->first_partial < upto; w->first_partial++) {
        char from[SK_WAL_NAME_MAX], to[SK_WAL_NAME_MAX];

        if (!sk_wal_exists(w, w->first_partial))
            continue;
        sk_wal_name(w, w->first_partial, SK_WAL_PARTIAL_SUFFIX, from);
        sk_wal_name(w, w->first_partial, "", to);
        if ((rc = sk_wal_failpoint("safekeeper.wal.before-segment-rename", err)) != 0)
            return rc;
        if (renameat(w->dirfd, from, w->dirfd, to) != 0)
            return sk_wal_io(err, w, "rename WAL segment", from, errno);
        renamed = true;
    }
    return renamed ? sk_wal_fsync_dir(w, err) : 0;
}

/* ---- opening ---- */

struct sk_seg_file {
    uint64_t segno; /* segment number */
    bool partial;   /* named "<name>.partial" */
};

/* Parse a 24-hex-digit segment name of len bytes at s; true with *segno when it is ours. */
static bool sk_wal_parse_name(const struct sk_wal *w, const char *s, size_t len, uint64_t *segno)
{
    uint64_t per = (UINT64_C(1) << 32) / w->seg_size, v[3] = {0, 0, 0};
    char back[KC_WAL_FILE_NAME_LEN];

    if (len != KC_WAL_FILE_NAME_LEN - 1)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return false;
        v[i / 8] = v[i / 8] * 16 + (uint64_t)d;
    }
    if (v[0] != SK_WAL_TIMELINE || v[2] >= per)
        return false;
    *segno = v[1] * per + v[2];
    kc_wal_file_name(back, SK_WAL_TIMELINE, *segno, w->seg_size);
    return memcmp(back, s, len) == 0;
}

static int sk_seg_cmp(const void *a, const void *b)
{
    const struct sk_seg_file *x = a, *y = b;

    if (x->segno != y->segno)
        return x->segno < y->segno ? -1 : 1;
    return (int)x->partial - (int)y->partial;
}

/* Is dir entry name (size checked) a full-size file? KC_ECORRUPT when not. */
static int sk_wal_check_size(struct sk_wal *w, const char *name, struct kc_error *err)
{
    struct stat st;

    if (fstatat(w->dirfd, name, &st, 0) != 0)
        return sk_wal_io(err, w, "stat WAL segment", name, errno);
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != w->seg_size) {
        kc_error_set(err, KC_ECORRUPT, "WAL segment \"%s/%s\" has %lld bytes, not %u", w->dir, name,
                     (long long)st.st_size, w->seg_size);
        kc_error_detail(err, "Segments are preallocated to the WAL segment size.");
        kc_error_hint(err, "Check that the WAL segment size matches the timeline's control file.");
        return KC_ECORRUPT;
    }
    return 0;
}

/* Classify one directory entry: segment (appended to *segs), recycled, leftover, other. */
static int sk_wal_list_entry(struct sk_wal *w, const char *name, struct sk_seg_file **segs,
                             size_t *n, struct kc_error *err)
{
    size_t len = strlen(name), plen = strlen(SK_WAL_PARTIAL_SUFFIX);
    size_t rlen = strlen(SK_WAL_RECYCLE_SUFFIX);
    uint64_t segno;
    int rc;

    if (strcmp(name, SK_WAL_PREALLOC_NAME) == 0) {
        kc_info("removing \"%s/%s\" left by an interrupted segment preallocation", w->dir, name);
        if (unlinkat(w->dirfd, name, 0) != 0)
            return sk_wal_io(err, w, "remove file", name, errno);
        return 0;
    }
    if (len > rlen && strcmp(name + len - rlen, SK_WAL_RECYCLE_SUFFIX) == 0 &&
        sk_wal_parse_name(w, name, len - rlen, &segno)) {
        if (w->nrecycled < w->max_recycled && sk_wal_check_size(w, name, NULL) == 0) {
            w->recycled[w->nrecycled++] = segno;
        } else if (unlinkat(w->dirfd, name, 0) != 0) {
            return sk_wal_io(err, w, "remove recycled segment", name, errno);
        }
        return 0;
    }
    if (sk_wal_parse_name(w, name, len, &segno) ||
        (len > plen && strcmp(name + len - plen, SK_WAL_PARTIAL_SUFFIX) == 0 &&
         sk_wal_parse_name(w, name, len - plen, &segno))) {
        if ((rc = sk_wal_check_size(w, name, err)) != 0)
            return rc;
        *segs = kc_realloc(*segs, (*n + 1) * sizeof(**segs));
        (*segs)[*n].segno = segno;
        (*segs)[*n].partial = len != KC_WAL_FILE_NAME_LEN - 1;
        (*n)++;
    }
    return 0;
}

/* List the directory: segments sorted into *segs (freed by the caller), recycled ones noted. */
static int sk_wal_list(struct sk_wal *w, struct sk_seg_file **segs, size_t *n, struct kc_error *err)
{
    int fd = openat(w->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    struct dirent *de;

    *segs = NULL;
    *n = 0;
    if (d == NULL) {
        rc = errno;
        if (fd >= 0)
            close(fd);
        return sk_wal_io(err, w, "list directory", ".", rc);
    }
    while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        rc = sk_wal_list_entry(w, de->d_name, segs, n, err);
    }
    if (rc == 0 && errno != 0)
        rc = sk_wal_io(err, w, "list directory", ".", errno);
    closedir(d);
    if (rc == 0 && *n > 1)
        qsort(*segs, *n, sizeof(**segs), sk_seg_cmp);
    return rc;
}

static int sk_wal_layout_error(struct sk_wal *w, struct kc_error *err, uint64_t segno,
                               const char *problem)
{
    char name[SK_WAL_NAME_MAX];

    sk_wal_name(w, segno, "", name);
    kc_error_set(err, KC_ECORRUPT, "WAL segment %s in \"%s\" %s", name, w->dir, problem);
    return KC_ECORRUPT;
}

/*
 * Check the listed segments and set lo/hi/first_partial/begin. *k is the
 * durable LSN; it is raised to what the files prove durable (the end of the
 * plain-named segments; the start of the first segment when older ones were
 * removed).
 */
static int sk_wal_check_layout(struct sk_wal *w, const struct sk_seg_file *segs, size_t n,
                               kc_lsn *k, struct kc_error *err)
{
    uint64_t start_seg = kc_lsn_segno(w->start_lsn, w->seg_size);
    char a[KC_LSN_STRLEN];

    w->first_partial = n > 0 ? segs[n - 1].segno + 1 : kc_lsn_segno(*k, w->seg_size);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && segs[i].segno == segs[i - 1].segno)
            return sk_wal_layout_error(w, err, segs[i].segno, "exists both complete and partial");
        if (i > 0 && segs[i].segno != segs[i - 1].segno + 1)
            return sk_wal_layout_error(w, err, segs[i - 1].segno + 1, "is missing");
        if (!segs[i].partial && i > 0 && segs[i - 1].partial)
            return sk_wal_layout_error(w, err, segs[i].segno, "is complete after a partial one");
        if (segs[i].partial && w->first_partial > segs[i].segno)
            w->first_partial = segs[i].segno;
    }
    if (n > 0 && segs[0].segno < start_seg) {
        sk_wal_layout_error(w, err, segs[0].segno, "lies before the start of this WAL");
        kc_error_detail(err, "This safekeeper's WAL starts at %s.", kc_lsn_format(w->start_lsn, a));
        return KC_ECORRUPT;
    }
    w->have_segs = n > 0;
    if (n > 0) {
        w->lo_seg = segs[0].segno;
        w->hi_seg = segs[n - 1].segno;
        if (kc_lsn_from_seg(w->lo_seg, 0, w->seg_size) > *k)
            *k = kc_lsn_from_seg(w->lo_seg, 0, w->seg_size); /* removal implies durability */
        if (w->first_partial > w->lo_seg && kc_lsn_from_seg(w->first_partial, 0, w->seg_size) > *k)
            *k = kc_lsn_from_seg(w->first_partial, 0, w->seg_size);
    }
    /* With no segment left, WAL was removed up to k only if k is a segment boundary. */
    if (n > 0)
        w->begin_lsn = kc_lsn_from_seg(w->lo_seg, 0, w->seg_size);
    else
        w->begin_lsn = kc_lsn_segoff(*k, w->seg_size) == 0 ? *k : w->start_lsn;
    if (w->begin_lsn < w->start_lsn)
        w->begin_lsn = w->start_lsn;
    if (*k > w->begin_lsn && !sk_wal_exists(w, kc_lsn_segno(*k - 1, w->seg_size))) {
        sk_wal_layout_error(w, err, kc_lsn_segno(*k - 1, w->seg_size), "is missing");
        kc_error_detail(err, "It holds WAL below %s, which is known to be durable.",
                        kc_lsn_format(*k, a));
        return KC_ECORRUPT;
    }
    return 0;
}

/*
 * Settle the files at the recovered end: make the recovered WAL durable,
 * invalidate what follows it, delete later segments, name full ones.
 */
static int sk_wal_settle(struct sk_wal *w, kc_lsn end, struct kc_error *err)
{
    uint64_t endseg = kc_lsn_segno(end, w->seg_size);
    int rc;

    /* WAL found in the page cache after a process crash may not be on disk yet. */
    for (uint64_t s = w->first_partial; w->have_segs && s <= w->hi_seg && s < endseg; s++) {
        struct sk_wal_fd *f;
        if ((rc = sk_wal_fd_for(w, s, false, &f, err)) != 0)
            return rc;
        f->dirty = true;
    }
    if ((rc = sk_wal_sync_dirty(w, err)) != 0 || (rc = sk_wal_delete_after(w, endseg, err)) != 0 ||
        (rc = sk_wal_invalidate(w, end, err)) != 0 ||
        (rc = sk_wal_complete_segments(w, end, err)) != 0)
        return rc;
    w->first_partial = endseg;
    return sk_wal_fsync_dir(w, err);
}

static int sk_wal_check_options(const struct sk_wal_options *o, struct kc_error *err)
{
    if (!kc_wal_segsize_valid(o->seg_size)) {
        kc_error_set(err, KC_EINVAL, "invalid WAL segment size %u", o->seg_size);
        kc_error_detail(err, "The WAL segment size must be a power of two from 1 MiB to 1 GiB.");
        return KC_EINVAL;
    }
    if (o->max_recycled > 1024)
        return kc_error_set(err, KC_EINVAL, "too many recycled WAL segments requested: %u",
                            o->max_recycled);
    return 0;
}

static int sk_wal_open_dir(struct sk_wal *w, const char *dir, struct kc_error *err)
{
    w->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->dirfd >= 0)
        return 0;
    if (errno == ENOENT)
        return kc_error_set(err, KC_ENOTFOUND, "WAL directory \"%s\" does not exist", dir);
    return kc_error_set(err, KC_EIO, "could not open WAL directory \"%s\": %s", dir,
                        strerror(errno));
}

int sk_wal_open(const char *dir, const struct sk_wal_options *opts, struct sk_wal **out,
                struct kc_error *err)
{
    struct sk_wal *w;
    struct sk_seg_file *segs = NULL;
    size_t nsegs = 0;
    kc_lsn k, end = 0;
    int rc;

    if ((rc = sk_wal_check_options(opts, err)) != 0)
        return rc;
    w = kc_calloc(1, sizeof(*w));
    w->dir = kc_strdup(dir);
    w->seg_size = opts->seg_size;
    w->system_id = opts->system_id;
    w->start_lsn = opts->start_lsn;
    w->max_recycled = opts->max_recycled;
    w->recycled = kc_calloc(opts->max_recycled + 1, sizeof(uint64_t));
    w->page = kc_malloc(SK_WAL_PAGE_SIZE);
    for (int i = 0; i < SK_WAL_FDS; i++)
        w->fds[i].fd = -1;
    k = opts->durable_lsn > opts->start_lsn ? opts->durable_lsn : opts->start_lsn;
    if ((rc = sk_wal_open_dir(w, dir, err)) == 0 &&
        (rc = sk_wal_list(w, &segs, &nsegs, err)) == 0 &&
        (rc = sk_wal_check_layout(w, segs, nsegs, &k, err)) == 0 &&
        (rc = sk_wal_recover_end(w, k, &end, err)) == 0)
        rc = sk_wal_settle(w, end, err);
    free(segs);
    if (rc != 0) {
        kc_error_prefix(err, "could not open the WAL");
        sk_wal_close(w);
        return rc;
    }
    w->write_lsn = w->flush_lsn = end;
    *out = w;
    return 0;
}

void sk_wal_close(struct sk_wal *w)
{
    if (w == NULL)
        return;
    for (int i = 0; i < SK_WAL_FDS; i++)
        (void)sk_wal_drop_fd(w, &w->fds[i], false, NULL);
    if (w->dirfd >= 0)
        close(w->dirfd);
    free(w->recycled);
    free(w->page);
    free(w->dir);
    free(w);
}

kc_lsn sk_wal_begin_lsn(const struct sk_wal *w)
{
    return w->begin_lsn;
}

kc_lsn sk_wal_write_lsn(const struct sk_wal *w)
{
    return w->write_lsn;
}

kc_lsn sk_wal_flush_lsn(const struct sk_wal *w)
{
    return w->flush_lsn;
}

unsigned sk_wal_recycled_count(const struct sk_wal *w)
{
    return w->nrecycled;
}

/* ---- writing, flushing, reading ---- */

int sk_wal_write(struct sk_wal *w, kc_lsn lsn, const void *data, size_t len, struct kc_error *err)
{
    const uint8_t *p = data;
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];

    if (w->broken)
        return sk_wal_broken_error(w, err);
    if (lsn != w->write_lsn) {
        kc_error_set(err, KC_EINVAL, "WAL write at %s would leave %s: the WAL ends at %s",
                     kc_lsn_format(lsn, a), lsn > w->write_lsn ? "a gap" : "an overlap",
                     kc_lsn_format(w->write_lsn, b));
        kc_error_detail(err, "Writes must continue exactly where the WAL ends.");
        if (lsn < w->write_lsn)
            kc_error_hint(err, "Truncate the WAL first to rewrite it.");
        return KC_EINVAL;
    }
    if ((uint64_t)len > UINT64_MAX - lsn)
        return kc_error_set(err, KC_EINVAL,
                            "WAL write at %s of %zu bytes passes the end of "
                            "the LSN space",
                            kc_lsn_format(lsn, a), len);
    while (len > 0) {
        uint64_t segno = kc_lsn_segno(lsn, w->seg_size);
        uint32_t off = kc_lsn_segoff(lsn, w->seg_size);
        size_t n = w->seg_size - off < len ? w->seg_size - off : len;
        struct sk_wal_fd *f;
        int rc;

        if ((rc = sk_wal_fd_for(w, segno, true, &f, err)) != 0)
            return rc;
        f->dirty = true;
        if ((rc = sk_pwrite_all(f->fd, p, n, off)) != 0) {
            char name[SK_WAL_NAME_MAX];
            sk_wal_seg_name(w, segno, name);
            return sk_wal_io(err, w, "write WAL segment", name, rc);
        }
        p += n, len -= n, lsn += n;
        w->write_lsn = lsn;
    }
    return 0;
}

int sk_wal_flush(struct sk_wal *w, struct kc_error *err)
{
    int rc;

    if (w->broken)
        return sk_wal_broken_error(w, err);
    if ((rc = sk_wal_sync_dirty(w, err)) != 0)
        return rc;
    w->flush_lsn = w->write_lsn;
    return sk_wal_complete_segments(w, w->flush_lsn, err);
}

int sk_wal_read(struct sk_wal *w, kc_lsn lsn, void *buf, size_t len, struct kc_error *err)
{
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];
    uint8_t *p = buf;

    if (lsn < w->begin_lsn) {
        kc_error_set(err, KC_ENOTFOUND, "requested WAL at %s has been removed",
                     kc_lsn_format(lsn, a));
        kc_error_detail(err, "The oldest WAL this safekeeper holds starts at %s.",
                        kc_lsn_format(w->begin_lsn, b));
        return KC_ENOTFOUND;
    }
    if (lsn > w->flush_lsn || (uint64_t)len > w->flush_lsn - lsn) {
        kc_error_set(err, KC_EINVAL, "requested WAL at %s of %zu bytes is beyond the flushed end",
                     kc_lsn_format(lsn, a), len);
        kc_error_detail(err, "The durable WAL ends at %s.", kc_lsn_format(w->flush_lsn, b));
        return KC_EINVAL;
    }
    while (len > 0) {
        uint64_t segno = kc_lsn_segno(lsn, w->seg_size);
        uint32_t off = kc_lsn_segoff(lsn, w->seg_size);
        size_t n = w->seg_size - off < len ? w->seg_size - off : len;
        struct sk_wal_fd *f;
        int rc;

        if ((rc = sk_wal_fd_for(w, segno, false, &f, err)) != 0)
            return rc;
        if ((rc = sk_pread_all(f->fd, p, n, off)) != 0) {
            char name[SK_WAL_NAME_MAX];
            sk_wal_seg_name(w, segno, name);
            return sk_wal_io(err, w, "read WAL segment", name, rc);
        }
        p += n, len -= n, lsn += n;
    }
    return 0;
}

/* ---- truncation and removal ---- */

int sk_wal_truncate(struct sk_wal *w, kc_lsn lsn, struct kc_error *err)
{
    uint64_t segno = kc_lsn_segno(lsn, w->seg_size);
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN], c[KC_LSN_STRLEN];
    int rc;

    if (w->broken)
        return sk_wal_broken_error(w, err);
    if (lsn < w->begin_lsn || lsn > w->write_lsn) {
        kc_error_set(err, KC_EINVAL, "cannot truncate the WAL at %s", kc_lsn_format(lsn, a));
        kc_error_detail(err, "The WAL holds %s to %s.", kc_lsn_format(w->begin_lsn, b),
                        kc_lsn_format(w->write_lsn, c));
        return KC_EINVAL;
    }
    /* What stays must be durable first; then cut from the top down, so that a
     * crash at any step leaves a prefix of the old WAL at least lsn long. */
    if ((rc = sk_wal_sync_dirty(w, err)) != 0)
        return rc;
    if (lsn == w->write_lsn) {
        w->flush_lsn = lsn;
        return sk_wal_complete_segments(w, lsn, err);
    }
    if ((rc = sk_wal_failpoint("safekeeper.wal.before-truncate-unlink", err)) != 0 ||
        (rc = sk_wal_delete_after(w, segno, err)) != 0)
        return rc;
    if (segno < w->first_partial && sk_wal_exists(w, segno)) {
        char from[SK_WAL_NAME_MAX], to[SK_WAL_NAME_MAX];

        if ((rc = sk_wal_fsync_dir(w, err)) != 0 ||
            (rc = sk_wal_failpoint("safekeeper.wal.before-truncate-rename", err)) != 0)
            return rc;
        sk_wal_name(w, segno, "", from);
        sk_wal_name(w, segno, SK_WAL_PARTIAL_SUFFIX, to);
        if (renameat(w->dirfd, from, w->dirfd, to) != 0)
            return sk_wal_io(err, w, "rename WAL segment", from, errno);
    }
    w->first_partial = segno < w->first_partial ? segno : w->first_partial;
    if ((rc = sk_wal_fsync_dir(w, err)) != 0 ||
        (rc = sk_wal_failpoint("safekeeper.wal.before-truncate-zero", err)) != 0 ||
        (rc = sk_wal_invalidate(w, lsn, err)) != 0)
        return rc;
    w->write_lsn = w->flush_lsn = lsn;
    return 0;
}

int sk_wal_remove_before(struct sk_wal *w, kc_lsn lsn, struct kc_error *err)
{
    char a[KC_LSN_STRLEN], b[KC_LSN_STRLEN];
    bool changed = false;
    int rc = 0;

    if (lsn > w->flush_lsn) {
        kc_error_set(err, KC_EINVAL, "cannot remove WAL up to %s", kc_lsn_format(lsn, a));
        kc_error_detail(err, "The durable WAL ends at %s.", kc_lsn_format(w->flush_lsn, b));
        return KC_EINVAL;
    }
    while (w->have_segs && kc_lsn_from_seg(w->lo_seg + 1, 0, w->seg_size) <= lsn) {
        char name[SK_WAL_NAME_MAX], to[SK_WAL_NAME_MAX];
        uint64_t segno = w->lo_seg;

        if ((rc = sk_wal_failpoint("safekeeper.wal.before-remove", err)) != 0)
            break;
        sk_wal_seg_name(w, segno, name);
        sk_wal_forget_fd(w, segno);
        if (w->nrecycled < w->max_recycled) {
            sk_wal_name(w, segno, SK_WAL_RECYCLE_SUFFIX, to);
            if (renameat(w->dirfd, name, w->dirfd, to) != 0) {
                rc = sk_wal_io(err, w, "recycle WAL segment", name, errno);
                break;
            }
            w->recycled[w->nrecycled++] = segno;
        } else if (unlinkat(w->dirfd, name, 0) != 0) {
            rc = sk_wal_io(err, w, "remove WAL segment", name, errno);
            break;
        }
        changed = true;
        w->begin_lsn = kc_lsn_from_seg(segno + 1, 0, w->seg_size);
        if (w->lo_seg == w->hi_seg)
            w->have_segs = false;
        else
            w->lo_seg++;
    }
    if (changed) {
        int rc2 = sk_wal_fsync_dir(w, err);
        rc = rc != 0 ? rc : rc2;
    }
    return rc;
}
