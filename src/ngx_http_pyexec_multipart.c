
/*
 * Copyright (C) pyexec authors
 *
 * A streaming multipart/form-data parser (RFC 7578, RFC 2046 framing).
 * It is fed the body in chunks of any size and calls back per part: its
 * headers once, its data in pieces, its end.  Memory is the struct itself:
 * nothing grows with the body.  No nginx request structures are used, so
 * the fuzz harness (fuzz/) drives it directly.
 *
 * The body is scanned for the delimiter "\r\n--" boundary, as if the body
 * began with "\r\n" (the first delimiter has no CRLF before it).  The
 * boundary may not hold CR or LF, so after a partial match fails, the
 * matched bytes are plain data and matching restarts at the current byte.
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_multipart.h"


static ngx_int_t ngx_http_pyexec_multipart_headers(
    ngx_http_pyexec_multipart_t *mp);
static ngx_int_t ngx_http_pyexec_multipart_param(u_char *p, u_char *last,
    const char *name, u_char *buf, ngx_str_t *value, ngx_uint_t *found);
static ngx_int_t ngx_http_pyexec_multipart_fail(
    ngx_http_pyexec_multipart_t *mp, const char *err);


ngx_int_t
ngx_http_pyexec_multipart_init(ngx_http_pyexec_multipart_t *mp,
    ngx_str_t *content_type)
{
    u_char      *p, *last;
    ngx_str_t    b;
    ngx_uint_t   found;

    mp->err = NULL;
    mp->parts = 0;
    mp->match = 0;
    mp->dashes = 0;
    mp->hdr_len = 0;

    p = content_type->data;
    last = p + content_type->len;

    if (content_type->len < 19
        || ngx_strncasecmp(p, (u_char *) "multipart/form-data", 19) != 0)
    {
        return NGX_DECLINED;
    }

    if (ngx_http_pyexec_multipart_param(p + 19, last, "boundary", mp->name,
                                        &b, &found)
        != NGX_OK || !found)
    {
        return ngx_http_pyexec_multipart_fail(mp,
                                        "multipart body without a boundary");
    }

    if (b.len == 0 || b.len > NGX_HTTP_PYEXEC_BOUNDARY_MAX
        || ngx_strlchr(b.data, b.data + b.len, '\r')
        || ngx_strlchr(b.data, b.data + b.len, '\n'))
    {
        return ngx_http_pyexec_multipart_fail(mp,
                                              "invalid multipart boundary");
    }

    mp->delim[0] = '\r';
    mp->delim[1] = '\n';
    mp->delim[2] = '-';
    mp->delim[3] = '-';
    ngx_memcpy(mp->delim + 4, b.data, b.len);
    mp->delim_len = b.len + 4;

    mp->state = NGX_HTTP_PYEXEC_MP_PREAMBLE;
    mp->match = 2;      /* the body starts as if after "\r\n" */

    return NGX_OK;
}


ngx_int_t
ngx_http_pyexec_multipart_feed(ngx_http_pyexec_multipart_t *mp, u_char *buf,
    size_t len)
{
    u_char     *p, *last, *data;
    u_char      c;
    ngx_int_t   rc;

    p = buf;
    last = buf + len;
    data = p;       /* start of the part data not yet passed on */

    while (p < last) {

        switch (mp->state) {

        case NGX_HTTP_PYEXEC_MP_PREAMBLE:
        case NGX_HTTP_PYEXEC_MP_BODY:

            c = *p;

            if (c == mp->delim[mp->match]) {
                if (mp->match == 0 && mp->state == NGX_HTTP_PYEXEC_MP_BODY
                    && p > data)
                {
                    rc = mp->on_data(mp->data, data, p - data);
                    if (rc != NGX_OK) {
                        return rc;
                    }
                }

                p++;
                data = p;

                if (++mp->match < mp->delim_len) {
                    break;
                }

                /* a whole delimiter */

                if (mp->state == NGX_HTTP_PYEXEC_MP_BODY) {
                    rc = mp->on_end(mp->data);
                    if (rc != NGX_OK) {
                        return rc;
                    }
                }

                mp->match = 0;
                mp->dashes = 0;
                mp->state = NGX_HTTP_PYEXEC_MP_AFTER_DELIM;
                break;
            }

            if (mp->match) {
                /* a false start: the matched bytes were data */

                if (mp->state == NGX_HTTP_PYEXEC_MP_BODY) {
                    rc = mp->on_data(mp->data, mp->delim, mp->match);
                    if (rc != NGX_OK) {
                        return rc;
                    }
                }

                mp->match = 0;
                data = p;
                break;      /* the same byte again, from the start */
            }

            p++;

            if (mp->state == NGX_HTTP_PYEXEC_MP_PREAMBLE) {
                data = p;
            }

            break;

        case NGX_HTTP_PYEXEC_MP_AFTER_DELIM:

            c = *p++;

            if (mp->dashes == 0 && (c == ' ' || c == '\t')) {
                break;      /* transport padding */
            }

            if (c == '-') {
                if (++mp->dashes == 2) {
                    mp->state = NGX_HTTP_PYEXEC_MP_DONE;
                }
                break;
            }

            if (mp->dashes == 0 && c == '\r') {
                mp->dashes = 3;     /* expecting LF */
                break;
            }

            if (mp->dashes == 3 && c == '\n') {
                mp->state = NGX_HTTP_PYEXEC_MP_HEADERS;
                mp->hdr_len = 0;
                break;
            }

            return ngx_http_pyexec_multipart_fail(mp,
                                    "malformed multipart body: bad delimiter");

        case NGX_HTTP_PYEXEC_MP_HEADERS:

            if (mp->hdr_len == sizeof(mp->hdr)) {
                return ngx_http_pyexec_multipart_fail(mp,
                                    "multipart part headers are too large");
            }

            mp->hdr[mp->hdr_len++] = *p++;

            if ((mp->hdr_len == 2 && mp->hdr[0] == '\r' && mp->hdr[1] == '\n')
                || (mp->hdr_len >= 4
                    && ngx_strncmp(mp->hdr + mp->hdr_len - 4, "\r\n\r\n", 4)
                       == 0))
            {
                rc = ngx_http_pyexec_multipart_headers(mp);
                if (rc != NGX_OK) {
                    return rc;
                }

                mp->state = NGX_HTTP_PYEXEC_MP_BODY;
                mp->parts++;
                data = p;
            }

            break;

        default: /* NGX_HTTP_PYEXEC_MP_DONE: the epilogue is ignored */
            return NGX_OK;
        }
    }

    if (mp->state == NGX_HTTP_PYEXEC_MP_BODY && mp->match == 0 && p > data) {
        return mp->on_data(mp->data, data, p - data);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_pyexec_multipart_finish(ngx_http_pyexec_multipart_t *mp)
{
    if (mp->state != NGX_HTTP_PYEXEC_MP_DONE) {
        return ngx_http_pyexec_multipart_fail(mp,
                                "malformed multipart body: it ends early");
    }

    return NGX_OK;
}


/* Content-Disposition: form-data; name="files"; filename="sub/x.csv" */

static ngx_int_t
ngx_http_pyexec_multipart_headers(ngx_http_pyexec_multipart_t *mp)
{
    u_char      *p, *last, *eol;
    ngx_str_t    name, filename;
    ngx_uint_t   found, has_filename, has_disposition;

    p = mp->hdr;
    last = mp->hdr + mp->hdr_len;
    has_disposition = 0;
    has_filename = 0;
    ngx_str_null(&name);
    ngx_str_null(&filename);

    while (p < last) {
        eol = ngx_strlchr(p, last, '\r');
        if (eol == NULL) {
            eol = last;
        }

        if (eol - p > 20
            && ngx_strncasecmp(p, (u_char *) "content-disposition:", 20) == 0)
        {
            if (has_disposition) {
                return ngx_http_pyexec_multipart_fail(mp,
                    "a multipart part has two Content-Disposition headers");
            }

            has_disposition = 1;

            if (ngx_http_pyexec_multipart_param(p + 20, eol, "name",
                                                mp->name, &name, &found)
                != NGX_OK
                || ngx_http_pyexec_multipart_param(p + 20, eol, "filename",
                                                   mp->filename, &filename,
                                                   &has_filename)
                   != NGX_OK)
            {
                return ngx_http_pyexec_multipart_fail(mp,
                            "malformed multipart Content-Disposition header");
            }
        }

        p = eol + 2;
    }

    if (!has_disposition) {
        return ngx_http_pyexec_multipart_fail(mp,
                    "a multipart part has no Content-Disposition header");
    }

    return mp->on_part(mp->data, &name, &filename, has_filename);
}


/*
 * The value of parameter `name` in "; a=b; c="d"", copied into `buf`
 * (NGX_HTTP_PYEXEC_PARAM_MAX bytes): quoted-strings lose their quotes and
 * backslash escapes, tokens end at ';' or a blank.
 */

static ngx_int_t
ngx_http_pyexec_multipart_param(u_char *p, u_char *last, const char *name,
    u_char *buf, ngx_str_t *value, ngx_uint_t *found)
{
    size_t  n, len;

    n = ngx_strlen(name);
    *found = 0;

    while (p < last) {

        /* to the next ';' outside quotes */

        while (p < last && *p != ';') {
            if (*p == '"') {
                for (p++; p < last && *p != '"'; p++) {
                    if (*p == '\\') {
                        p++;
                    }
                }
            }
            p++;
        }

        if (p >= last) {
            return NGX_OK;
        }

        for (p++; p < last && (*p == ' ' || *p == '\t'); p++) { /* void */ }

        if ((size_t) (last - p) <= n
            || ngx_strncasecmp(p, (u_char *) name, n) != 0
            || p[n] != '=')
        {
            continue;
        }

        p += n + 1;
        len = 0;

        if (p < last && *p == '"') {
            for (p++; p < last && *p != '"'; p++) {
                if (*p == '\\' && p + 1 < last) {
                    p++;
                }

                if (len == NGX_HTTP_PYEXEC_PARAM_MAX) {
                    return NGX_ERROR;
                }

                buf[len++] = *p;
            }

            if (p >= last) {
                return NGX_ERROR;       /* unterminated */
            }

        } else {
            for ( /* void */ ; p < last && *p != ';' && *p != ' '
                               && *p != '\t'; p++)
            {
                if (len == NGX_HTTP_PYEXEC_PARAM_MAX) {
                    return NGX_ERROR;
                }

                buf[len++] = *p;
            }
        }

        value->data = buf;
        value->len = len;
        *found = 1;

        return NGX_OK;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_pyexec_multipart_fail(ngx_http_pyexec_multipart_t *mp,
    const char *err)
{
    mp->err = err;
    return NGX_ERROR;
}
