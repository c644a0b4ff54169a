
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_TASK_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_TASK_H_INCLUDED_


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_journal.h"
#include "ngx_http_pyexec_json.h"
#include "ngx_http_pyexec_session.h"


typedef enum {
    NGX_HTTP_PYEXEC_OP_EXECUTE = 0,
    NGX_HTTP_PYEXEC_OP_VARIABLES,
    NGX_HTTP_PYEXEC_OP_DESTROY,
    NGX_HTTP_PYEXEC_OP_REAP,
    NGX_HTTP_PYEXEC_OP_CHECKPOINT,
    NGX_HTTP_PYEXEC_OP_ROLLBACK,
    NGX_HTTP_PYEXEC_OP_FORGET,
    NGX_HTTP_PYEXEC_OP_WARM
} ngx_http_pyexec_op_e;


/* why the ladder stops a cell (interp_interrupt()) */
#define NGX_HTTP_PYEXEC_KILL_TIMEOUT      1
#define NGX_HTTP_PYEXEC_KILL_INTERRUPT    2   /* POST .../interrupt */
#define NGX_HTTP_PYEXEC_KILL_STOP         3   /* nginx stops */

/* its stages, in order */
#define NGX_HTTP_PYEXEC_STAGE_EXCEPTION   1   /* raised once, may be caught */
#define NGX_HTTP_PYEXEC_STAGE_TRACE       2   /* raised at every line */
#define NGX_HTTP_PYEXEC_STAGE_RECYCLE     3   /* the worker is replaced */

/* "termination": {"reason"} of an /execute reply */
typedef enum {
    NGX_HTTP_PYEXEC_END_OK = 0,
    NGX_HTTP_PYEXEC_END_ERROR,
    NGX_HTTP_PYEXEC_END_MEMORY,
    NGX_HTTP_PYEXEC_END_TIMEOUT,
    NGX_HTTP_PYEXEC_END_INTERRUPTED,
    NGX_HTTP_PYEXEC_END_WORKER_LOST,
    NGX_HTTP_PYEXEC_END_N
} ngx_http_pyexec_end_e;

/* "<16 hex digits>.<session id>" */
#define NGX_HTTP_PYEXEC_EXEC_ID_MAX  (16 + 1 + NGX_HTTP_PYEXEC_SESSION_ID_MAX)


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
    uint64_t                     exec_id;     /* its first 16 hex digits */
    ngx_http_pyexec_exec_t      *exec;        /* its journal, or NULL */
    uint64_t                     posted_us;   /* monotonic */
    size_t                       execution_id_len;
    u_char                       execution_id[NGX_HTTP_PYEXEC_EXEC_ID_MAX];
    unsigned                     restore:1;   /* try the checkpoint */
    unsigned                     lost:1;      /* none: 410, not a new one */

    /* written by the thread, read after completion */
    volatile uint64_t            started_ms;
    volatile uint64_t            started_us;  /* monotonic, 0: never ran */
    uint64_t                     wall_us;
    ngx_int_t                    end;         /* END_*, -1: no reply */
    uint64_t                     output_bytes; /* stdout + stderr */
    volatile ngx_uint_t          finished;
    volatile ngx_uint_t          cancelled;   /* its client went away */
    ngx_http_pyexec_json_t       json;        /* response; json.g NULL: none */
    ngx_int_t                    status;
    void                        *restored;    /* lost names (Python list) */
    ngx_uint_t                   restored_from;
    u_char                       gone[160];   /* why no restore: 410 */
    ngx_uint_t                   not_found;   /* no checkpoint to restore */
    ngx_uint_t                   was_restored;
    ngx_uint_t                   reason;      /* KILL_* the cell ended by */
    ngx_uint_t                   stage;       /* STAGE_* that ended it */
    uint64_t                     cpu_us;      /* the cell's thread */
    off_t                        rss_delta;   /* bytes */

    /* event loop only */
    ngx_event_t                  timer;
    ngx_queue_t                  queue;       /* request tasks in flight */
    uint64_t                     ladder_ms;   /* its first stage, or 0 */
    ngx_uint_t                   kill_reason; /* KILL_*, 0: none yet */
    ngx_uint_t                   kill_stage;  /* the last stage sent */
    unsigned                     stuck:1;     /* ran past its kill grace */
    unsigned                     abandoned:1; /* answered; still blocked */
    unsigned                     shut:1;      /* its write side shut down */
    unsigned                     detached:1;  /* "async": answered 202 */
    unsigned                     streamed:1;  /* answered with its events */
    unsigned                     demoted:1;   /* pyexec_demote_after */
};


ngx_http_pyexec_task_t *ngx_http_pyexec_task_alloc(ngx_pool_t *pool);
ngx_int_t ngx_http_pyexec_task_post(ngx_http_pyexec_task_t *t);
ngx_uint_t ngx_http_pyexec_task_idle(void);
ngx_http_pyexec_task_t *ngx_http_pyexec_task_running(
    ngx_http_pyexec_session_t *s);
ngx_uint_t ngx_http_pyexec_task_interrupt(ngx_http_pyexec_session_t *s);
ngx_uint_t ngx_http_pyexec_task_cancel(ngx_http_request_t *r);
ngx_uint_t ngx_http_pyexec_task_recycling(void);
void ngx_http_pyexec_task_execution(ngx_http_pyexec_task_t *t);
ngx_uint_t ngx_http_pyexec_task_execution_past(u_char *id, size_t len);
void ngx_http_pyexec_task_last_execution(ngx_http_pyexec_json_t *j,
    ngx_http_pyexec_session_t *s);
void ngx_http_pyexec_task_termination(ngx_http_pyexec_json_t *j,
    ngx_http_pyexec_end_e end, ngx_uint_t stage);
ngx_int_t ngx_http_pyexec_task_post_server(ngx_http_pyexec_op_e op,
    ngx_http_pyexec_session_t *s, ngx_event_handler_pt done);



extern const char  *ngx_http_pyexec_task_reasons[];


#endif /* _NGX_HTTP_PYEXEC_TASK_H_INCLUDED_ */
