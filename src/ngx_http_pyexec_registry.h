
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_REGISTRY_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_REGISTRY_H_INCLUDED_


#include "ngx_http_pyexec_common.h"


ngx_int_t ngx_http_pyexec_registry_conf(ngx_conf_t *cf, size_t size);
void ngx_http_pyexec_registry_init_process(ngx_cycle_t *cycle);
void ngx_http_pyexec_registry_add(u_char *id, size_t len, ngx_log_t *log);
void ngx_http_pyexec_registry_del(u_char *id, size_t len);
ngx_int_t ngx_http_pyexec_registry_lost(u_char *id, size_t len);


#endif /* _NGX_HTTP_PYEXEC_REGISTRY_H_INCLUDED_ */
