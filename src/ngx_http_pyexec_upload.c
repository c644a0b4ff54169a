
/*
 * Copyright (C) pyexec authors
 *
 * POST /upload and GET /files.
 *
 * An upload's body is read by nginx (to its temp file when large); then a
 * task on the I/O thread pool (never the interpreter's thread, never the
 * event loop) streams it through the multipart parser, 64 KB at a time,
 * into a staging folder inside the data folder.  Only when the whole body
 * parsed and every name was valid is the data folder emptied (replace
 * mode) and the files renamed into place, so a bad upload changes nothing.
 * Parent folders are opened one component at a time with O_NOFOLLOW: a
 * symlink in the data folder cannot send a file outside it.
 *
 * GET /files lists the data folder with a walk on the same I/O pool;
 * downloads (GET /files/{path}) are nginx's own static file serving: an
 * alias location over the data folder (see nginx.conf).
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_json.h"
#include "ngx_http_pyexec_metrics.h"
#include "ngx_http_pyexec_multipart.h"
#include "ngx_http_pyexec_reply.h"
#include "ngx_http_pyexec_upload.h"

#include <dirent.h>


#define NGX_HTTP_PYEXEC_STAGING      ".pyexec-upload-"
#define NGX_HTTP_PYEXEC_CHUNK        65536
#define NGX_HTTP_PYEXEC_FILES_MAX    10000
#define NGX_HTTP_PYEXEC_LIST_MAX     100000


typedef struct {
    ngx_fd_t                     fd;          /* NGX_INVALID_FILE: memory */
    u_char                      *pos;
    off_t                        offset;
    size_t                       len;
} ngx_http_pyexec_segment_t;


typedef struct {
    ngx_http_request_t          *r;
    ngx_log_t                   *log;

    /* input */
    ngx_str_t                    content_type;
    ngx_http_pyexec_segment_t   *segs;
    ngx_uint_t                   nsegs;
    u_char                      *data_dir;    /* NUL-terminated */
    ngx_uint_t                   replace;

    /* thread state */
    ngx_http_pyexec_multipart_t  mp;
    int                          dir_fd;      /* the data folder */
    int                          stage_fd;    /* the staging folder */
    u_char                       stage[64];
    ngx_fd_t                     out;
    ngx_uint_t                   in_file;
    char                       **names;       /* malloc'd, staged files */
    ngx_uint_t                   nnames;
    ngx_uint_t                   nalloc;
    off_t                        bytes;       /* written to staged files */
    char                         errbuf[NGX_HTTP_PYEXEC_PARAM_MAX + 128];
    const char                  *error;       /* success: false */

    /* output */
    ngx_uint_t                   status;
    ngx_http_pyexec_json_t       json;        /* json.g NULL: none */
} ngx_http_pyexec_upload_t;


typedef struct {
    ngx_http_request_t          *r;
    u_char                      *data_dir;    /* NUL-terminated */
    ngx_uint_t                   count;
    ngx_uint_t                   skipped;     /* names that are not UTF-8 */
    ngx_http_pyexec_json_t       json;
    u_char                       rel[PATH_MAX];
} ngx_http_pyexec_files_t;


static void ngx_http_pyexec_upload_body(ngx_http_request_t *r);
static void ngx_http_pyexec_upload_thread(void *data, ngx_log_t *log);
static void ngx_http_pyexec_upload_done(ngx_event_t *ev);
static void ngx_http_pyexec_io_finish(ngx_http_request_t *r,
    ngx_uint_t status, ngx_http_pyexec_json_t *j);
static ngx_int_t ngx_http_pyexec_upload_stream(ngx_http_pyexec_upload_t *u);
static ngx_int_t ngx_http_pyexec_upload_promote(ngx_http_pyexec_upload_t *u);
static void ngx_http_pyexec_upload_answer(ngx_http_pyexec_upload_t *u);
static void ngx_http_pyexec_upload_cleanup(ngx_http_pyexec_upload_t *u);
static ngx_int_t ngx_http_pyexec_upload_part(void *data, ngx_str_t *name,
    ngx_str_t *filename, ngx_uint_t has_filename);
static ngx_int_t ngx_http_pyexec_upload_data(void *data, u_char *p,
    size_t len);
static ngx_int_t ngx_http_pyexec_upload_end(void *data);
static const char *ngx_http_pyexec_upload_check_name(u_char *p, size_t len);
static int ngx_http_pyexec_open_parent(int dir_fd, char *path,
    ngx_uint_t create, char **last);
static void ngx_http_pyexec_remove_tree(int dir_fd, const char *name,
    const char *keep);
static void ngx_http_pyexec_files_thread(void *data, ngx_log_t *log);
static void ngx_http_pyexec_files_done(ngx_event_t *ev);
static void ngx_http_pyexec_files_walk(ngx_http_pyexec_files_t *f, int fd,
    size_t rel_len);
static u_char *ngx_http_pyexec_data_dir(ngx_http_request_t *r);


ngx_int_t
ngx_http_pyexec_upload_handler(ngx_http_request_t *r)
{
    return ngx_http_pyexec_post_body(r, ngx_http_pyexec_upload_body);
}


static void
ngx_http_pyexec_upload_body(ngx_http_request_t *r)
{
    ngx_uint_t                    n;
    ngx_buf_t                    *b;
    ngx_chain_t                  *cl;
    ngx_thread_task_t            *task;
    ngx_http_pyexec_upload_t     *u;
    ngx_http_pyexec_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_pyexec_module);

    if (pmcf->data_dir.len == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "pyexec: /upload needs \"pyexec_data_dir\"");
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    task = ngx_thread_task_alloc(r->pool, sizeof(ngx_http_pyexec_upload_t));
    if (task == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    u = task->ctx;
    u->r = r;
    u->replace = pmcf->upload_replace;
    u->out = NGX_INVALID_FILE;
    u->dir_fd = -1;
    u->stage_fd = -1;

    u->data_dir = ngx_http_pyexec_data_dir(r);
    if (u->data_dir == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (r->headers_in.content_type) {
        u->content_type = r->headers_in.content_type->value;
    }

    /* the body as segments the thread can read without nginx's help */

    n = 0;
    for (cl = r->request_body ? r->request_body->bufs : NULL; cl;
         cl = cl->next)
    {
        n++;
    }

    u->segs = ngx_pcalloc(r->pool, (n + 1) * sizeof(ngx_http_pyexec_segment_t));
    if (u->segs == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    for (cl = r->request_body ? r->request_body->bufs : NULL; cl;
         cl = cl->next)
    {
        b = cl->buf;

        if (b->in_file) {
            u->segs[u->nsegs].fd = b->file->fd;
            u->segs[u->nsegs].offset = b->file_pos;
            u->segs[u->nsegs].len = b->file_last - b->file_pos;

        } else {
            u->segs[u->nsegs].fd = NGX_INVALID_FILE;
            u->segs[u->nsegs].pos = b->pos;
            u->segs[u->nsegs].len = b->last - b->pos;
        }

        u->nsegs++;
    }

    task->handler = ngx_http_pyexec_upload_thread;
    task->event.handler = ngx_http_pyexec_upload_done;
    task->event.data = u;
    task->event.log = r->connection->log;

    if (ngx_thread_task_post(pmcf->io_thread_pool, task) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    r->main->blocked++;
    r->aio = 1;
}


static void
ngx_http_pyexec_upload_done(ngx_event_t *ev)
{
    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_http_pyexec_upload_t  *u = ev->data;

    r = u->r;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "pyexec upload done: status %ui, %ui files",
                   u->status, u->nnames);

    if (!c->error && u->status != NGX_HTTP_OK) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0, "pyexec: upload refused: %s",
                      u->error ? u->error : "no files");

    } else if (!c->error && u->error) {
        ngx_log_error(NGX_LOG_WARN, c->log, 0, "pyexec: upload failed: %s",
                      u->error);
    }

    if (u->status == NGX_HTTP_OK && u->error == NULL) {
        ngx_http_pyexec_metrics.upload_bytes += u->bytes;   /* stored */
    }

    ngx_http_pyexec_io_finish(r, u->status, &u->json);
}


/*
 * The end of an I/O task's request, as core's thread event handlers end
 * theirs: unblocked, answered with the thread's document, or dropped when
 * the client went away (1.22 marks a request terminated while blocked with
 * c->error).
 */

static void
ngx_http_pyexec_io_finish(ngx_http_request_t *r, ngx_uint_t status,
    ngx_http_pyexec_json_t *j)
{
    ngx_connection_t  *c = r->connection;

    r->main->blocked--;
    r->aio = 0;

    if (c->error || ngx_http_pyexec_terminated(r)) {
        ngx_http_pyexec_json_free(j);
        ngx_http_finalize_request(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);

    } else {
        ngx_http_finalize_request(r, ngx_http_pyexec_send_json(r, status, j));
    }

    ngx_http_run_posted_requests(c);
}


/* the I/O thread: parse, stage, promote, answer; no nginx API but logging */

static void
ngx_http_pyexec_upload_thread(void *data, ngx_log_t *log)
{
    ngx_http_pyexec_upload_t  *u = data;
    ngx_int_t                  rc;

    u->log = log;               /* the pool's: never the request's */
    u->status = NGX_HTTP_OK;

    rc = ngx_http_pyexec_multipart_init(&u->mp, &u->content_type);

    if (rc == NGX_DECLINED) {
        u->status = NGX_HTTP_UNPROCESSABLE_ENTITY;   /* FastAPI: no form */
        goto answer;
    }

    if (rc != NGX_OK) {
        u->status = NGX_HTTP_BAD_REQUEST;
        u->error = u->mp.err;
        goto answer;
    }

    (void) mkdir((char *) u->data_dir, 0755);   /* before the first cell */

    u->dir_fd = open((char *) u->data_dir, O_RDONLY|O_DIRECTORY);
    if (u->dir_fd == -1) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "pyexec: open(\"%s\") failed", u->data_dir);
        u->error = "the data folder cannot be opened";
        goto answer;
    }

    (void) ngx_sprintf(u->stage, NGX_HTTP_PYEXEC_STAGING "%P-%uA%Z",
                       ngx_pid, (ngx_atomic_uint_t) (uintptr_t) u);

    if (mkdirat(u->dir_fd, (char *) u->stage, 0700) == -1
        || (u->stage_fd = openat(u->dir_fd, (char *) u->stage,
                                 O_RDONLY|O_DIRECTORY|O_NOFOLLOW)) == -1)
    {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "pyexec: staging folder in \"%s\" failed", u->data_dir);
        u->error = "cannot write to the data folder";
        goto answer;
    }

    u->mp.on_part = ngx_http_pyexec_upload_part;
    u->mp.on_data = ngx_http_pyexec_upload_data;
    u->mp.on_end = ngx_http_pyexec_upload_end;
    u->mp.data = u;

    rc = ngx_http_pyexec_upload_stream(u);

    if (rc == NGX_ERROR && u->mp.err) {
        u->status = NGX_HTTP_BAD_REQUEST;
        u->error = u->mp.err;

    } else if (rc == NGX_OK && u->nnames == 0) {
        u->status = NGX_HTTP_UNPROCESSABLE_ENTITY;

    } else if (rc == NGX_OK) {
        (void) ngx_http_pyexec_upload_promote(u);
    }

answer:

    ngx_http_pyexec_upload_answer(u);
    ngx_http_pyexec_upload_cleanup(u);
}


static ngx_int_t
ngx_http_pyexec_upload_stream(ngx_http_pyexec_upload_t *u)
{
    u_char                     *buf;
    off_t                       off;
    size_t                      n;
    ssize_t                     got;
    ngx_int_t                   rc;
    ngx_uint_t                  i;
    ngx_http_pyexec_segment_t  *s;

    buf = ngx_alloc(NGX_HTTP_PYEXEC_CHUNK, u->log);
    if (buf == NULL) {
        u->error = "out of memory";
        return NGX_ABORT;
    }

    rc = NGX_OK;

    for (i = 0; i < u->nsegs && rc == NGX_OK; i++) {
        s = &u->segs[i];

        if (s->fd == NGX_INVALID_FILE) {
            rc = ngx_http_pyexec_multipart_feed(&u->mp, s->pos, s->len);
            continue;
        }

        for (off = 0; off < (off_t) s->len && rc == NGX_OK; off += got) {
            n = ngx_min((size_t) (s->len - off), NGX_HTTP_PYEXEC_CHUNK);
            got = pread(s->fd, buf, n, s->offset + off);

            if (got <= 0) {
                ngx_log_error(NGX_LOG_ERR, u->log, ngx_errno,
                              "pyexec: reading the upload body failed");
                u->error = "reading the request body failed";
                rc = NGX_ABORT;
                break;
            }

            rc = ngx_http_pyexec_multipart_feed(&u->mp, buf, got);
        }
    }

    ngx_free(buf);

    if (rc == NGX_OK) {
        rc = ngx_http_pyexec_multipart_finish(&u->mp);
    }

    if (u->out != NGX_INVALID_FILE) {
        (void) close(u->out);
        u->out = NGX_INVALID_FILE;
    }

    return rc;
}


static ngx_int_t
ngx_http_pyexec_upload_part(void *data, ngx_str_t *name, ngx_str_t *filename,
    ngx_uint_t has_filename)
{
    ngx_http_pyexec_upload_t *u = data;

    int          fd;
    char        *path, *last, **names;
    const char  *why;

    u->in_file = 0;

    if (name->len != 5 || ngx_strncmp(name->data, "files", 5) != 0) {
        return NGX_OK;      /* other form fields are ignored */
    }

    why = has_filename ? ngx_http_pyexec_upload_check_name(filename->data,
                                                           filename->len)
                       : "a \"files\" part without a filename";
    if (why) {
        /* the name as sent, control bytes shown as '?' */
        path = (char *) ngx_snprintf((u_char *) u->errbuf,
                                     sizeof(u->errbuf) - 1,
                                     "invalid filename \"%V\": %s%Z",
                                     filename, why);
        for (last = u->errbuf; last < path - 1; last++) {
            if ((u_char) *last < 0x20) {
                *last = '?';
            }
        }

        u->error = u->errbuf;
        return NGX_ABORT;
    }

    if (u->nnames == NGX_HTTP_PYEXEC_FILES_MAX) {
        u->error = "too many files in one upload";
        return NGX_ABORT;
    }

    if (u->nnames == u->nalloc) {
        names = ngx_alloc((u->nalloc ? 2 * u->nalloc : 16) * sizeof(char *),
                          u->log);
        if (names == NULL) {
            u->error = "out of memory";
            return NGX_ABORT;
        }

        if (u->nnames) {
            ngx_memcpy(names, u->names, u->nnames * sizeof(char *));
        }

        ngx_free(u->names);
        u->names = names;
        u->nalloc = u->nalloc ? 2 * u->nalloc : 16;
    }

    path = ngx_alloc(filename->len + 1, u->log);
    if (path == NULL) {
        u->error = "out of memory";
        return NGX_ABORT;
    }

    (void) ngx_cpystrn((u_char *) path, filename->data, filename->len + 1);
    u->names[u->nnames++] = path;

    fd = ngx_http_pyexec_open_parent(u->stage_fd, path, 1, &last);
    if (fd == -1) {
        goto failed;
    }

    u->out = openat(fd, last, O_WRONLY|O_CREAT|O_TRUNC|O_NOFOLLOW, 0644);
    (void) close(fd);

    if (u->out == -1) {
        goto failed;
    }

    u->in_file = 1;

    return NGX_OK;

failed:

    (void) ngx_snprintf((u_char *) u->errbuf, sizeof(u->errbuf) - 1,
                        "cannot write \"%s\": %s%Z", path, strerror(errno));
    u->error = u->errbuf;

    return NGX_ABORT;
}


static ngx_int_t
ngx_http_pyexec_upload_data(void *data, u_char *p, size_t len)
{
    ngx_http_pyexec_upload_t *u = data;

    ssize_t  n;

    if (!u->in_file) {
        return NGX_OK;
    }

    while (len) {
        n = write(u->out, p, len);

        if (n == -1 && errno == EINTR) {
            continue;
        }

        if (n <= 0) {
            (void) ngx_snprintf((u_char *) u->errbuf,
                                sizeof(u->errbuf) - 1,
                                "cannot write \"%s\": %s%Z",
                                u->names[u->nnames - 1], strerror(errno));
            u->error = u->errbuf;
            return NGX_ABORT;
        }

        p += n;
        len -= n;
        u->bytes += n;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_pyexec_upload_end(void *data)
{
    ngx_http_pyexec_upload_t *u = data;

    if (u->in_file) {
        u->in_file = 0;

        if (close(u->out) == -1) {
            u->out = NGX_INVALID_FILE;
            u->error = "closing an uploaded file failed";
            return NGX_ABORT;
        }

        u->out = NGX_INVALID_FILE;
    }

    return NGX_OK;
}


/* NULL when a relative name stays inside the folder, else why not */

static const char *
ngx_http_pyexec_upload_check_name(u_char *p, size_t len)
{
    u_char  *last, *c;

    if (len == 0) {
        return "empty";
    }

    if (ngx_strlchr(p, p + len, '\0')) {
        return "contains a NUL byte";
    }

    if (p[0] == '/') {
        return "absolute paths are not allowed";
    }

    if (ngx_strlchr(p, p + len, '\\')) {
        return "backslashes are not allowed";
    }

    if (len > 1024) {
        return "longer than 1024 bytes";
    }

    last = p + len;

    for (c = p; c <= last; c++) {
        if (c < last && *c != '/') {
            continue;
        }

        if (c == p) {
            return "empty path component";
        }

        if (c - p == 2 && p[0] == '.' && p[1] == '.') {
            return "\"..\" is not allowed";
        }

        if (c - p == 1 && p[0] == '.') {
            return "\".\" is not allowed";
        }

        if (p[0] == '.' && c - p >= (ssize_t) sizeof(NGX_HTTP_PYEXEC_STAGING)
                                      - 1
            && ngx_strncmp(p, NGX_HTTP_PYEXEC_STAGING,
                           sizeof(NGX_HTTP_PYEXEC_STAGING) - 1) == 0)
        {
            return "reserved name";
        }

        p = c + 1;
    }

    return NULL;
}


/*
 * The folder that holds `path` (relative, checked), opened below dir_fd
 * one component at a time without following symlinks; made when
 * `create`.  *last is the final component.  -1 on error (errno set).
 */

static int
ngx_http_pyexec_open_parent(int dir_fd, char *path, ngx_uint_t create,
    char **last)
{
    int    fd, next;
    char  *p, *slash;

    fd = dup(dir_fd);
    if (fd == -1) {
        return -1;
    }

    p = path;

    while ((slash = strchr(p, '/')) != NULL) {
        *slash = '\0';

        if (create && mkdirat(fd, p, 0755) == -1 && errno != EEXIST) {
            *slash = '/';
            (void) close(fd);
            return -1;
        }

        next = openat(fd, p, O_RDONLY|O_DIRECTORY|O_NOFOLLOW);
        *slash = '/';
        (void) close(fd);

        if (next == -1) {
            return -1;
        }

        fd = next;
        p = slash + 1;
    }

    *last = p;

    return fd;
}


/* empty the data folder (replace mode), then move the staged files in */

static ngx_int_t
ngx_http_pyexec_upload_promote(ngx_http_pyexec_upload_t *u)
{
    int          from, to;
    char        *last_from, *last_to;
    ngx_uint_t   i;

    if (u->replace) {
        ngx_http_pyexec_remove_tree(u->dir_fd, NULL, (char *) u->stage);
    }

    for (i = 0; i < u->nnames; i++) {
        from = ngx_http_pyexec_open_parent(u->stage_fd, u->names[i], 0,
                                           &last_from);
        to = ngx_http_pyexec_open_parent(u->dir_fd, u->names[i], 1,
                                         &last_to);

        if (from == -1 || to == -1
            || renameat(from, last_from, to, last_to) == -1)
        {
            (void) ngx_snprintf((u_char *) u->errbuf, sizeof(u->errbuf) - 1,
                                "cannot store \"%s\": %s%Z",
                                u->names[i], strerror(errno));
            u->error = u->errbuf;

            if (from != -1) {
                (void) close(from);
            }

            if (to != -1) {
                (void) close(to);
            }

            return NGX_ERROR;
        }

        (void) close(from);
        (void) close(to);
    }

    return NGX_OK;
}


/*
 * Remove `name` below dir_fd and everything in it (never following a
 * symlink); with name NULL, everything in dir_fd except `keep`.
 */

static void
ngx_http_pyexec_remove_tree(int dir_fd, const char *name, const char *keep)
{
    int             fd;
    DIR            *dir;
    struct dirent  *de;

    if (name && unlinkat(dir_fd, name, 0) == 0) {
        return;
    }

    fd = name ? openat(dir_fd, name, O_RDONLY|O_DIRECTORY|O_NOFOLLOW)
              : dup(dir_fd);
    if (fd == -1) {
        return;
    }

    dir = fdopendir(fd);
    if (dir == NULL) {
        (void) close(fd);
        return;
    }

    while ((de = readdir(dir)) != NULL) {
        if (ngx_strcmp(de->d_name, ".") == 0
            || ngx_strcmp(de->d_name, "..") == 0
            || (keep && ngx_strcmp(de->d_name, keep) == 0))
        {
            continue;
        }

        ngx_http_pyexec_remove_tree(dirfd(dir), de->d_name, NULL);
    }

    (void) closedir(dir);

    if (name) {
        (void) unlinkat(dir_fd, name, AT_REMOVEDIR);
    }
}


static void
ngx_http_pyexec_upload_answer(ngx_http_pyexec_upload_t *u)
{
    ngx_uint_t               i;
    ngx_http_pyexec_json_t  *j = &u->json;

    if (ngx_http_pyexec_json_init(j) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, u->log, 0,
                      "pyexec: yajl_gen_alloc() failed");
        return;
    }

    ngx_http_pyexec_json_map_open(j);

    if (u->status == NGX_HTTP_UNPROCESSABLE_ENTITY) {
        ngx_http_pyexec_json_key(j, "detail");
        ngx_http_pyexec_json_array_open(j);
        ngx_http_pyexec_json_map_open(j);
        ngx_http_pyexec_json_key(j, "loc");
        ngx_http_pyexec_json_array_open(j);
        ngx_http_pyexec_json_cstr(j, "body");
        ngx_http_pyexec_json_cstr(j, "files");
        ngx_http_pyexec_json_array_close(j);
        ngx_http_pyexec_json_key(j, "msg");
        ngx_http_pyexec_json_cstr(j, "field required");
        ngx_http_pyexec_json_key(j, "type");
        ngx_http_pyexec_json_cstr(j, "value_error.missing");
        ngx_http_pyexec_json_map_close(j);
        ngx_http_pyexec_json_array_close(j);

    } else if (u->status == NGX_HTTP_BAD_REQUEST) {
        ngx_http_pyexec_json_key(j, "detail");
        ngx_http_pyexec_json_cstr(j, u->error);

    } else {
        ngx_http_pyexec_json_key(j, "success");
        ngx_http_pyexec_json_bool(j, u->error == NULL);
        ngx_http_pyexec_json_key(j, "uploaded_files");
        ngx_http_pyexec_json_array_open(j);
        for (i = 0; u->error == NULL && i < u->nnames; i++) {
            ngx_http_pyexec_json_cstr(j, u->names[i]);
        }
        ngx_http_pyexec_json_array_close(j);
        ngx_http_pyexec_json_key(j, "error");
        if (u->error) {
            ngx_http_pyexec_json_cstr(j, u->error);
        } else {
            ngx_http_pyexec_json_null(j);
        }
    }

    ngx_http_pyexec_json_map_close(j);
}


static void
ngx_http_pyexec_upload_cleanup(ngx_http_pyexec_upload_t *u)
{
    ngx_uint_t  i;

    if (u->out != NGX_INVALID_FILE) {
        (void) close(u->out);
        u->out = NGX_INVALID_FILE;
    }

    if (u->stage_fd != -1) {
        (void) close(u->stage_fd);
        ngx_http_pyexec_remove_tree(u->dir_fd, (char *) u->stage, NULL);
    }

    if (u->dir_fd != -1) {
        (void) close(u->dir_fd);
    }

    for (i = 0; i < u->nnames; i++) {
        ngx_free(u->names[i]);
    }

    ngx_free(u->names);
    u->names = NULL;
}


/* the data folder's path, NUL-terminated, in the request pool */

static u_char *
ngx_http_pyexec_data_dir(ngx_http_request_t *r)
{
    u_char                       *p;
    ngx_http_pyexec_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_pyexec_module);

    p = ngx_pnalloc(r->pool, pmcf->data_dir.len + 1);
    if (p == NULL) {
        return NULL;
    }

    (void) ngx_cpystrn(p, pmcf->data_dir.data, pmcf->data_dir.len + 1);

    return p;
}


/*
 * GET /files: the data folder, recursively (bounded), walked on the I/O
 * thread pool as an upload is: a large or slow folder never stalls the
 * event loop.  The task lives in r->pool and holds r->main->blocked.
 */

ngx_int_t
ngx_http_pyexec_files_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_thread_task_t            *task;
    ngx_http_pyexec_files_t      *f;
    ngx_http_pyexec_main_conf_t  *pmcf;

    rc = ngx_http_pyexec_get_only(r);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_pyexec_module);

    task = ngx_thread_task_alloc(r->pool, sizeof(ngx_http_pyexec_files_t));
    if (task == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    f = task->ctx;
    f->r = r;

    f->data_dir = ngx_http_pyexec_data_dir(r);
    if (f->data_dir == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    task->handler = ngx_http_pyexec_files_thread;
    task->event.handler = ngx_http_pyexec_files_done;
    task->event.data = f;
    task->event.log = r->connection->log;

    if (ngx_thread_task_post(pmcf->io_thread_pool, task) != NGX_OK) {
        return ngx_http_pyexec_send_detail(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "I/O queue full");
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "pyexec files: walking \"%s\" on the I/O pool",
                   f->data_dir);

    r->main->blocked++;
    r->aio = 1;
    r->main->count++;

    return NGX_DONE;
}


static void
ngx_http_pyexec_files_thread(void *data, ngx_log_t *log)
{
    ngx_http_pyexec_files_t  *f = data;

    int                      fd;
    ngx_http_pyexec_json_t  *j = &f->json;

    if (ngx_http_pyexec_json_init(j) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "pyexec: yajl_gen_alloc() failed");
        return;
    }

    ngx_http_pyexec_json_map_open(j);
    ngx_http_pyexec_json_key(j, "files");
    ngx_http_pyexec_json_array_open(j);

    if (f->data_dir[0] && ngx_strlen(f->data_dir) < sizeof(f->rel)) {
        fd = open((char *) f->data_dir, O_RDONLY|O_DIRECTORY);

        if (fd != -1) {
            ngx_http_pyexec_files_walk(f, fd, 0);

        } else if (ngx_errno != NGX_ENOENT) {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          "pyexec: open(\"%s\") failed", f->data_dir);
        }
    }

    ngx_http_pyexec_json_array_close(j);
    ngx_http_pyexec_json_key(j, "truncated");
    ngx_http_pyexec_json_bool(j, f->count > NGX_HTTP_PYEXEC_LIST_MAX);
    ngx_http_pyexec_json_map_close(j);

    if (f->skipped) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "pyexec: GET /files left out %ui names that are not "
                      "UTF-8", f->skipped);
    }
}


static void
ngx_http_pyexec_files_done(ngx_event_t *ev)
{
    ngx_http_pyexec_files_t  *f = ev->data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = f->r;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "pyexec files: %ui listed", f->count);

    ngx_http_pyexec_io_finish(r, NGX_HTTP_OK, &f->json);
}


/*
 * One directory, opened as `fd` (closed here), whose path below the data
 * folder is f->rel[0..rel_len): frames stay small however deep the tree
 * is, and the walk stops once the listing is over its cap.  Names that
 * are not UTF-8 cannot be written as JSON strings: they are left out.
 */

static void
ngx_http_pyexec_files_walk(ngx_http_pyexec_files_t *f, int fd,
    size_t rel_len)
{
    int             sub;
    size_t          n;
    u_char         *rel;
    DIR            *dir;
    struct stat     st;
    struct dirent  *de;

    rel = f->rel;

    dir = fdopendir(fd);
    if (dir == NULL) {
        (void) close(fd);
        return;
    }

    while (f->count <= NGX_HTTP_PYEXEC_LIST_MAX
           && (de = readdir(dir)) != NULL)
    {
        if (de->d_name[0] == '.'
            && (de->d_name[1] == '\0'
                || (de->d_name[1] == '.' && de->d_name[2] == '\0')
                || ngx_strncmp(de->d_name, NGX_HTTP_PYEXEC_STAGING,
                               sizeof(NGX_HTTP_PYEXEC_STAGING) - 1) == 0))
        {
            continue;
        }

        n = ngx_strlen(de->d_name);
        if (rel_len + n + 2 >= PATH_MAX) {
            continue;
        }

        if (!ngx_http_pyexec_json_is_utf8((u_char *) de->d_name, n)) {
            f->skipped++;
            continue;
        }

        if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
            continue;
        }

        if (rel_len) {
            rel[rel_len] = '/';
            ngx_memcpy(rel + rel_len + 1, de->d_name, n);
            n += rel_len + 1;

        } else {
            ngx_memcpy(rel, de->d_name, n);
        }

        if (S_ISDIR(st.st_mode)) {
            sub = openat(dirfd(dir), de->d_name,
                         O_RDONLY|O_DIRECTORY|O_NOFOLLOW);
            if (sub != -1) {
                ngx_http_pyexec_files_walk(f, sub, n);
            }

            continue;
        }

        if (!S_ISREG(st.st_mode) || ++f->count > NGX_HTTP_PYEXEC_LIST_MAX) {
            continue;
        }

        ngx_http_pyexec_json_map_open(&f->json);
        ngx_http_pyexec_json_kv(&f->json, "name", rel, n);
        ngx_http_pyexec_json_key(&f->json, "size");
        ngx_http_pyexec_json_int(&f->json, st.st_size);
        ngx_http_pyexec_json_key(&f->json, "mtime");
        ngx_http_pyexec_json_iso8601(&f->json, st.st_mtime);
        ngx_http_pyexec_json_map_close(&f->json);
    }

    (void) closedir(dir);
}
