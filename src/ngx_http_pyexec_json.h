
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_JSON_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_JSON_H_INCLUDED_


#include "ngx_http_pyexec_common.h"
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>


typedef struct {
    ngx_str_t                    code;
    ngx_str_t                    session_id;
    ngx_msec_t                   timeout;
    unsigned                     has_code:1;
    unsigned                     has_session_id:1;
    unsigned                     has_timeout:1;
    unsigned                     stream:1;    /* "stream": true */
    unsigned                     async:1;     /* "async": true */
} ngx_http_pyexec_request_t;


/* a yajl generator that keeps its first failure (see json.c) */

typedef struct {
    yajl_gen                     g;
    yajl_gen_status              rc;
    const char                  *call;       /* the call that failed */
} ngx_http_pyexec_json_t;


ngx_int_t ngx_http_pyexec_json_parse_request(ngx_pool_t *pool,
    u_char *buf, size_t len, ngx_uint_t max_depth,
    ngx_http_pyexec_request_t *req, ngx_str_t *err);
ngx_int_t ngx_http_pyexec_json_parse_chain(ngx_pool_t *pool,
    ngx_chain_t *in, ngx_uint_t max_depth, ngx_http_pyexec_request_t *req);
ngx_int_t ngx_http_pyexec_json_session_id(ngx_pool_t *pool,
    ngx_chain_t *in, ngx_uint_t max_depth, ngx_str_t *id);
ngx_int_t ngx_http_pyexec_json_route(ngx_pool_t *pool, ngx_chain_t *in,
    ngx_uint_t max_depth, ngx_str_t *id, ngx_uint_t *async);
ngx_int_t ngx_http_pyexec_id_has_control(u_char *p, size_t len);
ngx_int_t ngx_http_pyexec_id_is_valid(u_char *p, size_t len);
ngx_int_t ngx_http_pyexec_json_is_utf8(u_char *p, size_t len);

ngx_int_t ngx_http_pyexec_json_init(ngx_http_pyexec_json_t *j);
void ngx_http_pyexec_json_free(ngx_http_pyexec_json_t *j);
ngx_int_t ngx_http_pyexec_json_text(ngx_http_pyexec_json_t *j,
    ngx_str_t *text);
void ngx_http_pyexec_json_map_open(ngx_http_pyexec_json_t *j);
void ngx_http_pyexec_json_map_close(ngx_http_pyexec_json_t *j);
void ngx_http_pyexec_json_array_open(ngx_http_pyexec_json_t *j);
void ngx_http_pyexec_json_array_close(ngx_http_pyexec_json_t *j);
void ngx_http_pyexec_json_str(ngx_http_pyexec_json_t *j, const u_char *s,
    size_t len);
void ngx_http_pyexec_json_cstr(ngx_http_pyexec_json_t *j, const char *s);
void ngx_http_pyexec_json_key(ngx_http_pyexec_json_t *j, const char *key);
void ngx_http_pyexec_json_int(ngx_http_pyexec_json_t *j, long long n);
void ngx_http_pyexec_json_number(ngx_http_pyexec_json_t *j, const char *s,
    size_t len);
void ngx_http_pyexec_json_bool(ngx_http_pyexec_json_t *j, ngx_uint_t v);
void ngx_http_pyexec_json_null(ngx_http_pyexec_json_t *j);
void ngx_http_pyexec_json_kv(ngx_http_pyexec_json_t *j, const char *key,
    const u_char *val, size_t len);
void ngx_http_pyexec_json_iso8601(ngx_http_pyexec_json_t *j, time_t t);
ngx_int_t ngx_http_pyexec_json_peek(ngx_http_pyexec_json_t *j,
    const u_char **buf, size_t *len);
ngx_int_t ngx_http_pyexec_json_take(ngx_http_pyexec_json_t *j,
    ngx_pool_t *pool, ngx_str_t *out);
const char *ngx_http_pyexec_json_error_text(ngx_http_pyexec_json_t *j);
ngx_int_t ngx_http_pyexec_json_copy_array(ngx_http_pyexec_json_t *j,
    u_char *buf, size_t len, const char *key, ngx_uint_t max_depth);


#endif /* _NGX_HTTP_PYEXEC_JSON_H_INCLUDED_ */
