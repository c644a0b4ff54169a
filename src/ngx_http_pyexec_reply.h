
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_REPLY_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_REPLY_H_INCLUDED_


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_json.h"


ngx_int_t ngx_http_pyexec_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body);
ngx_int_t ngx_http_pyexec_send_type(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *body);
ngx_int_t ngx_http_pyexec_send_json(ngx_http_request_t *r,
    ngx_uint_t status, ngx_http_pyexec_json_t *j);
ngx_int_t ngx_http_pyexec_send_detail(ngx_http_request_t *r,
    ngx_uint_t status, const char *detail);
ngx_int_t ngx_http_pyexec_retry_after(ngx_http_request_t *r,
    ngx_uint_t secs);
ngx_int_t ngx_http_pyexec_worker_header(ngx_http_request_t *r);
ngx_int_t ngx_http_pyexec_add_header(ngx_http_request_t *r, ngx_str_t *key,
    u_char *value, size_t len);
ngx_table_elt_t *ngx_http_pyexec_header(ngx_list_t *headers,
    ngx_str_t *name);
ngx_int_t ngx_http_pyexec_add_variables(ngx_conf_t *cf,
    ngx_http_variable_t *vars);
ngx_int_t ngx_http_pyexec_method_not_allowed(ngx_http_request_t *r);
ngx_int_t ngx_http_pyexec_get_only(ngx_http_request_t *r);
ngx_int_t ngx_http_pyexec_post_body(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt done);
ngx_int_t ngx_http_pyexec_body(ngx_http_request_t *r, ngx_str_t *body);
ngx_str_t *ngx_http_pyexec_worker_name(void);


#endif /* _NGX_HTTP_PYEXEC_REPLY_H_INCLUDED_ */
