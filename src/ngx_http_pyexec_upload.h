
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_UPLOAD_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_UPLOAD_H_INCLUDED_


#include "ngx_http_pyexec_common.h"


ngx_int_t ngx_http_pyexec_upload_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_pyexec_files_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_PYEXEC_UPLOAD_H_INCLUDED_ */
