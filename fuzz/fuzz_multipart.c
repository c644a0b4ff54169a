
/*
 * Copyright (C) pyexec authors
 *
 * libFuzzer harness for the streaming multipart parser of POST /upload.
 *
 * Input: the Content-Type header value up to the first '\n', one byte
 * that picks how the rest is cut into chunks, then the body.
 *
 * What must hold for any input:
 *  - the body parsed in one piece and cut into small chunks gives the
 *    same parts, the same bytes for each and the same verdict (nginx
 *    hands the body over in whatever pieces the network made);
 *  - no part's data contains the delimiter that ends it;
 *  - names and file names fit their buffers, and a failure has a reason.
 */


#include "ngx_fuzz.h"
#include "ngx_http_pyexec_multipart.h"

#include <string.h>


typedef struct {
    u_char      *log;       /* what the callbacks saw, as bytes */
    size_t       len;
    size_t       cap;
    size_t       part_start;
    ngx_http_pyexec_multipart_t  *mp;
} ngx_fuzz_mp_t;


static ngx_int_t ngx_fuzz_mp_run(ngx_fuzz_mp_t *f, ngx_str_t *ct,
    u_char *body, size_t len, size_t chunk);
static ngx_int_t ngx_fuzz_mp_part(void *data, ngx_str_t *name,
    ngx_str_t *filename, ngx_uint_t has_filename);
static ngx_int_t ngx_fuzz_mp_data(void *data, u_char *p, size_t len);
static ngx_int_t ngx_fuzz_mp_end(void *data);
static void ngx_fuzz_mp_log(ngx_fuzz_mp_t *f, const void *p, size_t len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char         *nl, *body;
    size_t          len, chunk;
    ngx_int_t       rc1, rc2;
    ngx_str_t       ct;
    ngx_fuzz_mp_t   whole, cut;

    nl = memchr(data, '\n', size);
    if (nl == NULL || (size_t) (nl - data) + 2 > size) {
        return 0;
    }

    ct.len = nl - data;
    ct.data = malloc(ct.len ? ct.len : 1);
    ngx_fuzz_assert(ct.data != NULL);
    ngx_memcpy(ct.data, data, ct.len);

    chunk = 1 + nl[1] % 17;

    len = size - (nl - data) - 2;
    body = malloc(len ? len : 1);
    ngx_fuzz_assert(body != NULL);
    ngx_memcpy(body, nl + 2, len);

    ngx_memzero(&whole, sizeof(ngx_fuzz_mp_t));
    ngx_memzero(&cut, sizeof(ngx_fuzz_mp_t));

    rc1 = ngx_fuzz_mp_run(&whole, &ct, body, len, len ? len : 1);
    rc2 = ngx_fuzz_mp_run(&cut, &ct, body, len, chunk);

    ngx_fuzz_assert(rc1 == rc2);
    ngx_fuzz_assert(whole.len == cut.len);
    ngx_fuzz_assert(whole.len == 0
                    || memcmp(whole.log, cut.log, whole.len) == 0);

    free(whole.log);
    free(cut.log);
    free(body);
    free(ct.data);

    return 0;
}


static ngx_int_t
ngx_fuzz_mp_run(ngx_fuzz_mp_t *f, ngx_str_t *ct, u_char *body, size_t len,
    size_t chunk)
{
    size_t                        n;
    u_char                       *piece;
    ngx_int_t                     rc;
    ngx_http_pyexec_multipart_t  *mp;

    /* static: 16 KB per run is not worth a malloc (globals have redzones) */
    static ngx_http_pyexec_multipart_t  mp_storage;

    mp = &mp_storage;
    mp->state = NGX_HTTP_PYEXEC_MP_DONE;    /* init must set it */

    mp->on_part = ngx_fuzz_mp_part;
    mp->on_data = ngx_fuzz_mp_data;
    mp->on_end = ngx_fuzz_mp_end;
    mp->data = f;
    f->mp = mp;

    rc = ngx_http_pyexec_multipart_init(mp, ct);

    while (rc == NGX_OK && len) {
        n = len < chunk ? len : chunk;

        /* each piece in a buffer of its own: reads past it are caught */
        piece = malloc(n);
        ngx_fuzz_assert(piece != NULL);
        ngx_memcpy(piece, body, n);

        rc = ngx_http_pyexec_multipart_feed(mp, piece, n);

        free(piece);
        body += n;
        len -= n;
    }

    if (rc == NGX_OK) {
        rc = ngx_http_pyexec_multipart_finish(mp);
    }

    if (rc == NGX_ERROR) {
        ngx_fuzz_assert(mp->err != NULL);
        ngx_fuzz_mp_log(f, "E", 1);
        ngx_fuzz_mp_log(f, mp->err, strlen(mp->err));
    }

    ngx_fuzz_mp_log(f, "R", 1);
    ngx_fuzz_mp_log(f, &rc, sizeof(rc));

    return rc;
}


static ngx_int_t
ngx_fuzz_mp_part(void *data, ngx_str_t *name, ngx_str_t *filename,
    ngx_uint_t has_filename)
{
    ngx_fuzz_mp_t  *f = data;

    ngx_fuzz_assert(name->len <= NGX_HTTP_PYEXEC_PARAM_MAX);
    ngx_fuzz_assert(filename->len <= NGX_HTTP_PYEXEC_PARAM_MAX);
    ngx_fuzz_assert(has_filename || filename->len == 0);

    ngx_fuzz_mp_log(f, "P", 1);
    ngx_fuzz_mp_log(f, &name->len, sizeof(size_t));
    ngx_fuzz_mp_log(f, name->data, name->len);
    ngx_fuzz_mp_log(f, &filename->len, sizeof(size_t));
    ngx_fuzz_mp_log(f, filename->data, filename->len);
    ngx_fuzz_mp_log(f, has_filename ? "F" : "-", 1);

    f->part_start = f->len;

    return NGX_OK;
}


/* the data is logged as it comes; its chunking is not part of the log */

static ngx_int_t
ngx_fuzz_mp_data(void *data, u_char *p, size_t len)
{
    ngx_fuzz_mp_t  *f = data;

    ngx_fuzz_assert(len > 0);
    ngx_fuzz_mp_log(f, p, len);

    return NGX_OK;
}


static ngx_int_t
ngx_fuzz_mp_end(void *data)
{
    ngx_fuzz_mp_t  *f = data;

    ngx_fuzz_assert(memmem(f->log + f->part_start, f->len - f->part_start,
                           f->mp->delim, f->mp->delim_len)
                    == NULL);

    ngx_fuzz_mp_log(f, "D", 1);

    return NGX_OK;
}


static void
ngx_fuzz_mp_log(ngx_fuzz_mp_t *f, const void *p, size_t len)
{
    u_char  *log;

    if (f->len + len > f->cap) {
        f->cap = (f->len + len) * 2 + 64;
        log = realloc(f->log, f->cap);
        ngx_fuzz_assert(log != NULL);
        f->log = log;
    }

    if (len) {
        ngx_memcpy(f->log + f->len, p, len);
        f->len += len;
    }
}
