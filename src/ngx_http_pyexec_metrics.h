
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_METRICS_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_METRICS_H_INCLUDED_


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_task.h"


/* le buckets of the histograms, seconds: 1 ms to 10 min, then +Inf */
#define NGX_HTTP_PYEXEC_BUCKETS  18


typedef struct {
    uint64_t                     count[NGX_HTTP_PYEXEC_BUCKETS + 1];
    uint64_t                     sum_us;
    uint64_t                     n;
} ngx_http_pyexec_histogram_t;


/*
 * A worker's counters.  The event loop writes them but those marked
 * atomic, which the interpreter thread adds to.
 */

typedef struct {
    uint64_t                     executions[NGX_HTTP_PYEXEC_END_N];
    ngx_http_pyexec_histogram_t  duration;
    ngx_http_pyexec_histogram_t  queue;
    uint64_t                     output_bytes;
    uint64_t                     sessions_created;   /* atomic */
    uint64_t                     sessions_expired;
    uint64_t                     sessions_evicted;
    uint64_t                     sessions_restored;
    uint64_t                     sessions_lost;
    uint64_t                     upload_bytes;
    uint64_t                     checkpoints;        /* atomic */
    uint64_t                     checkpoint_bytes;   /* atomic */
    uint64_t                     checkpoint_us;      /* atomic */
    uint64_t                     front_local;
    uint64_t                     handoffs_sent;
    uint64_t                     handoffs_received;
} ngx_http_pyexec_metrics_t;


extern ngx_http_pyexec_metrics_t  ngx_http_pyexec_metrics;


void ngx_http_pyexec_metrics_cell(ngx_http_request_t *r,
    ngx_http_pyexec_task_t *t, ngx_int_t end);
ngx_int_t ngx_http_pyexec_metrics_execution(ngx_http_request_t *r,
    u_char *id, size_t len);
void ngx_http_pyexec_metrics_checkpoint(uint64_t cpu_us, const char *path);
ngx_int_t ngx_http_pyexec_metrics_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_pyexec_metrics_merge(ngx_http_request_t *r,
    ngx_str_t *bodies, ngx_uint_t *statuses, ngx_str_t *uris, ngx_uint_t n);
ngx_int_t ngx_http_pyexec_metrics_add_variables(ngx_conf_t *cf);


#endif /* _NGX_HTTP_PYEXEC_METRICS_H_INCLUDED_ */
