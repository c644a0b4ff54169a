
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_SOCKET_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_SOCKET_H_INCLUDED_


#include "ngx_http_pyexec_common.h"


ngx_listening_t *ngx_http_pyexec_socket_template(ngx_cycle_t *cycle,
    ngx_str_t *tmpl);
ngx_int_t ngx_http_pyexec_socket_init_process(ngx_cycle_t *cycle,
    ngx_str_t *tmpl);
ngx_int_t ngx_http_pyexec_socket_self(void);
ngx_int_t ngx_http_pyexec_socket_worker(ngx_str_t *name);
void ngx_http_pyexec_socket_exit_process(void);


#endif /* _NGX_HTTP_PYEXEC_SOCKET_H_INCLUDED_ */
