
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_AUTH_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_AUTH_H_INCLUDED_


#include "ngx_http_pyexec_common.h"


ngx_int_t ngx_http_pyexec_auth_init(ngx_conf_t *cf);


#endif /* _NGX_HTTP_PYEXEC_AUTH_H_INCLUDED_ */
