
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_MULTIPART_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_MULTIPART_H_INCLUDED_


#define NGX_HTTP_PYEXEC_BOUNDARY_MAX  200
#define NGX_HTTP_PYEXEC_PARAM_MAX     4096


typedef enum {
    NGX_HTTP_PYEXEC_MP_PREAMBLE = 0,
    NGX_HTTP_PYEXEC_MP_AFTER_DELIM,
    NGX_HTTP_PYEXEC_MP_HEADERS,
    NGX_HTTP_PYEXEC_MP_BODY,
    NGX_HTTP_PYEXEC_MP_DONE
} ngx_http_pyexec_mp_state_e;


typedef struct {
    /* callbacks: NGX_OK to go on, anything else stops the parse */
    ngx_int_t                  (*on_part)(void *data, ngx_str_t *name,
                                          ngx_str_t *filename,
                                          ngx_uint_t has_filename);
    ngx_int_t                  (*on_data)(void *data, u_char *p,
                                          size_t len);
    ngx_int_t                  (*on_end)(void *data);
    void                        *data;

    const char                  *err;         /* why NGX_ERROR */
    ngx_uint_t                   parts;

    /* parser state, reset by ngx_http_pyexec_multipart_init() */
    ngx_http_pyexec_mp_state_e   state;
    size_t                       match;
    size_t                       delim_len;
    ngx_uint_t                   dashes;
    size_t                       hdr_len;
    u_char                       delim[NGX_HTTP_PYEXEC_BOUNDARY_MAX + 4];
    u_char                       name[NGX_HTTP_PYEXEC_PARAM_MAX];
    u_char                       filename[NGX_HTTP_PYEXEC_PARAM_MAX];
    u_char                       hdr[8192];
} ngx_http_pyexec_multipart_t;


ngx_int_t ngx_http_pyexec_multipart_init(ngx_http_pyexec_multipart_t *mp,
    ngx_str_t *content_type);
ngx_int_t ngx_http_pyexec_multipart_feed(ngx_http_pyexec_multipart_t *mp,
    u_char *buf, size_t len);
ngx_int_t ngx_http_pyexec_multipart_finish(ngx_http_pyexec_multipart_t *mp);


#endif /* _NGX_HTTP_PYEXEC_MULTIPART_H_INCLUDED_ */
