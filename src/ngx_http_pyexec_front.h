
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_FRONT_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_FRONT_H_INCLUDED_


#include "ngx_http_pyexec_common.h"


char *ngx_http_pyexec_front(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_pyexec_front_init(ngx_conf_t *cf);
ngx_int_t ngx_http_pyexec_front_init_module(ngx_cycle_t *cycle);
ngx_int_t ngx_http_pyexec_front_init_process(ngx_cycle_t *cycle);
void ngx_http_pyexec_front_exit_process(void);
void ngx_http_pyexec_front_atfork(void);


#endif /* _NGX_HTTP_PYEXEC_FRONT_H_INCLUDED_ */
