
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_STREAM_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_STREAM_H_INCLUDED_


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_journal.h"


ngx_int_t ngx_http_pyexec_stream_start(ngx_http_request_t *r,
    ngx_http_pyexec_exec_t *e, size_t from, ngx_uint_t owner);
void ngx_http_pyexec_stream_end(ngx_http_request_t *r);
ngx_int_t ngx_http_pyexec_executions_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_PYEXEC_STREAM_H_INCLUDED_ */
