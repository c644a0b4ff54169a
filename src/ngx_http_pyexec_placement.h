
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_PLACEMENT_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_PLACEMENT_H_INCLUDED_


#include "ngx_http_pyexec_common.h"


ngx_int_t ngx_http_pyexec_placement_conf(ngx_conf_t *cf);
void ngx_http_pyexec_placement_report(void);
void ngx_http_pyexec_placement_leave(void);
ngx_uint_t ngx_http_pyexec_placement_starts(void);
ngx_int_t ngx_http_pyexec_placement_pick(void);
ngx_int_t ngx_http_pyexec_placement_target(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
ngx_uint_t ngx_http_pyexec_placement_up(ngx_uint_t w);
void *ngx_http_pyexec_placement_create_conf(ngx_conf_t *cf);
char *ngx_http_pyexec_placement(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_uint_t ngx_http_pyexec_placement_workers(ngx_conf_t *cf);
char *ngx_http_pyexec_placement_servers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_HTTP_PYEXEC_PLACEMENT_H_INCLUDED_ */
