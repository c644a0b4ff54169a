
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_CHILD_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_CHILD_H_INCLUDED_


#include "ngx_http_pyexec_common.h"


extern volatile ngx_uint_t  ngx_http_pyexec_child_copy;


/* this process is a copy of a worker that user code fork()ed */
#define ngx_http_pyexec_child_is_copy()  (ngx_http_pyexec_child_copy != 0)


ngx_int_t ngx_http_pyexec_child_init_process(ngx_cycle_t *cycle);
ngx_uint_t ngx_http_pyexec_child_exited(void);
void ngx_http_pyexec_child_start_reaper(ngx_log_t *log);


#endif /* _NGX_HTTP_PYEXEC_CHILD_H_INCLUDED_ */
