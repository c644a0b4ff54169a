
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_INTERP_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_INTERP_H_INCLUDED_


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_task.h"


void ngx_http_pyexec_interp_preload(ngx_cycle_t *cycle,
    ngx_http_pyexec_main_conf_t *pmcf);
ngx_int_t ngx_http_pyexec_interp_start(ngx_http_pyexec_main_conf_t *pmcf,
    ngx_log_t *log);
void ngx_http_pyexec_interp_run(ngx_http_pyexec_task_t *t, ngx_log_t *log);
void ngx_http_pyexec_interp_interrupt(ngx_uint_t seq, ngx_uint_t reason,
    ngx_uint_t stage);
void ngx_http_pyexec_interp_stop_watch(void);
void ngx_http_pyexec_interp_checkpoint_all(void);
void ngx_http_pyexec_interp_checkpoint_rescue(
    ngx_http_pyexec_session_t *stuck, ngx_msec_t wait);
const char *ngx_http_pyexec_interp_version(void);
uint64_t ngx_http_pyexec_interp_now_us(void);
/* 1 / the time a session's checkpoints, and a busy worker's, may take */
#define NGX_HTTP_PYEXEC_CKPT_SHARE  50

uint64_t ngx_http_pyexec_interp_now_ms(void);
ngx_msec_t ngx_http_pyexec_interp_checkpoint_due(
    ngx_http_pyexec_session_t *s, uint64_t now);
size_t ngx_http_pyexec_interp_rss(void);
void ngx_http_pyexec_interp_demote(ngx_uint_t seq, ngx_log_t *log);
ngx_int_t ngx_http_pyexec_interp_nice_limit(ngx_cycle_t *cycle);


#endif /* _NGX_HTTP_PYEXEC_INTERP_H_INCLUDED_ */
