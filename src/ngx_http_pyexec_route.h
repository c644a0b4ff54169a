
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_ROUTE_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_ROUTE_H_INCLUDED_


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_json.h"


/* route_path_id()'s action: POST /sessions/{id}/<action> */
#define NGX_HTTP_PYEXEC_ACTION_NONE       0
#define NGX_HTTP_PYEXEC_ACTION_ROLLBACK   1
#define NGX_HTTP_PYEXEC_ACTION_INTERRUPT  2


ngx_int_t ngx_http_pyexec_route_add_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_pyexec_route_header_id(ngx_http_request_t *r,
    ngx_str_t *id);
ngx_uint_t ngx_http_pyexec_route_is_new(ngx_http_request_t *r);
ngx_int_t ngx_http_pyexec_route_session(ngx_http_request_t *r, ngx_str_t *id,
    ngx_uint_t *minted, ngx_uint_t *async);
void ngx_http_pyexec_route_local(ngx_http_request_t *r);
ngx_int_t ngx_http_pyexec_route_parsed(ngx_http_request_t *r,
    ngx_http_pyexec_request_t *req);
ngx_uint_t *ngx_http_pyexec_route_front_state(ngx_http_request_t *r);
ngx_int_t ngx_http_pyexec_route_path_id(ngx_http_request_t *r,
    ngx_str_t *prefix, ngx_str_t *id, ngx_uint_t *action);
ngx_int_t ngx_http_pyexec_gather_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_PYEXEC_ROUTE_H_INCLUDED_ */
