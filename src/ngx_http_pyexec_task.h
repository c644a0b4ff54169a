
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_TASK_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_TASK_H_INCLUDED_


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_json.h"
#include "ngx_http_pyexec_session.h"


typedef enum {
    NGX_HTTP_PYEXEC_OP_EXECUTE = 0,
    NGX_HTTP_PYEXEC_OP_VARIABLES,
    NGX_HTTP_PYEXEC_OP_DESTROY,
    NGX_HTTP_PYEXEC_OP_REAP
} ngx_http_pyexec_op_e;


typedef struct ngx_http_pyexec_task_s  ngx_http_pyexec_task_t;

typedef void (*ngx_http_pyexec_task_done_pt)(ngx_http_pyexec_task_t *t);

struct ngx_http_pyexec_task_s {
    ngx_thread_task_t           *task;
    ngx_http_pyexec_op_e         op;
    ngx_http_pyexec_session_t   *session;
    ngx_http_request_t          *r;           /* NULL for server tasks */
    ngx_log_t                   *log;         /* the event loop's */
    ngx_http_pyexec_task_done_pt done;        /* request tasks */

    /* input, read-only in the thread */
    u_char                      *code;
    size_t                       code_len;
    ngx_uint_t                   seq;
    ngx_uint_t                   execution_count;
    ngx_msec_t                   timeout;
    unsigned                     init_session:1;

    /* written by the thread, read after completion */
    volatile uint64_t            started_ms;
    volatile ngx_uint_t          finished;
    ngx_http_pyexec_json_t       json;        /* response; json.g NULL: none */
    ngx_int_t                    status;

    /* event loop only */
    ngx_event_t                  timer;
    ngx_queue_t                  queue;       /* request tasks in flight */
    unsigned                     interrupted:1;
    unsigned                     stuck:1;     /* ran past its kill grace */
    unsigned                     abandoned:1; /* answered; still blocked */
    unsigned                     shut:1;      /* its write side shut down */
};


/*
 * A request terminated while a task held it blocked: later nginx marks it
 * r->main->terminated (core's thread handlers test that); nginx 1.22's
 * ngx_http_terminate_request() sets c->error on a blocked request instead,
 * which the completion handlers test as well.
 */

#if (nginx_version >= 1025000)
#define ngx_http_pyexec_terminated(r)  ((r)->main->terminated)
#else
#define ngx_http_pyexec_terminated(r)  0
#endif


ngx_http_pyexec_task_t *ngx_http_pyexec_task_alloc(ngx_pool_t *pool);
ngx_int_t ngx_http_pyexec_task_post(ngx_http_pyexec_task_t *t);
ngx_int_t ngx_http_pyexec_task_post_server(ngx_http_pyexec_op_e op,
    ngx_http_pyexec_session_t *s, ngx_event_handler_pt done);


#endif /* _NGX_HTTP_PYEXEC_TASK_H_INCLUDED_ */
