
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_HANDLER_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_HANDLER_H_INCLUDED_


#include "ngx_http_pyexec_common.h"


ngx_int_t ngx_http_pyexec_execute_handler(ngx_http_request_t *r);
void ngx_http_pyexec_execute_body(ngx_http_request_t *r);
ngx_int_t ngx_http_pyexec_health_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_pyexec_status_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_pyexec_sessions_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_PYEXEC_HANDLER_H_INCLUDED_ */
