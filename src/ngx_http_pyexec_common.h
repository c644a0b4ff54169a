
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_COMMON_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_COMMON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>


#define NGX_HTTP_PYEXEC_SESSION_ID_MAX   256
#define NGX_HTTP_PYEXEC_UUID_LEN         36

#ifndef NGX_HTTP_GONE
#define NGX_HTTP_GONE                    410
#endif

/*
 * A request terminated while a task held it blocked: later nginx marks it
 * r->main->terminated (since 1.25.4; core's thread handlers test it); 1.22's
 * ngx_http_terminate_request() sets c->error on a blocked request instead,
 * which the completion handlers test as well.
 */

#if (nginx_version >= 1025004)
#define ngx_http_pyexec_terminated(r)  ((r)->main->terminated)
#else
#define ngx_http_pyexec_terminated(r)  0
#endif

#ifndef NGX_HTTP_UNPROCESSABLE_ENTITY
#define NGX_HTTP_UNPROCESSABLE_ENTITY    422
#endif


typedef struct {
    ngx_str_t                    thread_pool_name;
    ngx_thread_pool_t           *thread_pool;
    ngx_str_t                    session_init;
    ngx_str_t                    data_dir;
    ngx_str_t                    python;       /* sys.executable */
    ngx_str_t                    state_dir;    /* checkpoints; empty: off */
    size_t                       checkpoint_max;
    ngx_uint_t                   session_max;
    ngx_msec_t                   session_idle_timeout;
    ngx_uint_t                   session_queue;
    size_t                       output_max;
    ngx_msec_t                   timeout;
    ngx_msec_t                   timeout_max;
    ngx_msec_t                   kill_grace;       /* limit to recycle */
    ngx_msec_t                   interrupt_grace;  /* limit to the stopper */
    ngx_flag_t                   preload;  /* session_init's imports in the
                                              master, shared by the workers */
    ngx_uint_t                   json_max_depth;
    off_t                        memory_limit;     /* 0: off */
    off_t                        session_registry; /* 0: off */
    ngx_str_t                    worker_socket;
    ngx_str_t                    session_secret;
    ngx_uint_t                   uses_python;  /* some location runs code */
    ngx_uint_t                   uses_io;      /* /upload somewhere */
    ngx_uint_t                   upload_replace;
    ngx_str_t                    io_thread_pool_name;
    ngx_thread_pool_t           *io_thread_pool;
    ngx_msec_t                   journal_time;
    size_t                       journal_execution_max;
    size_t                       journal_max;
    ngx_flag_t                   interrupt_on_disconnect;
    ngx_flag_t                   sched_batch;  /* pyexec_sched_batch */
    ngx_msec_t                   demote_after; /* 0: off */
    ngx_uint_t                   uses_front;   /* pyexec_front somewhere */
    void                        *front_channels;  /* front.c's, per cycle */
} ngx_http_pyexec_main_conf_t;


typedef struct {
    ngx_http_handler_pt          handler;     /* cmd->post */
    ngx_array_t                 *gather;      /* of ngx_str_t: URIs */
    ngx_uint_t                   gather_metrics;  /* not GET /sessions */
    ngx_str_t                    auth_token;  /* empty: open */
    ngx_http_upstream_srv_conf_t *front;      /* pyexec_front */
    ngx_flag_t                   handoff;     /* pyexec_front_handoff */
} ngx_http_pyexec_loc_conf_t;


typedef struct ngx_http_pyexec_session_s  ngx_http_pyexec_session_t;


/* ngx_http_pyexec_proc.stopping: cells queued from then on do not run */
#define NGX_HTTP_PYEXEC_STOP_QUIT       1   /* nginx stops: QUIT, TERM */
#define NGX_HTTP_PYEXEC_STOP_RECYCLE    2   /* a cell is stuck in C code */


/* per-process state: the only global, released in exit_process */

typedef struct {
    ngx_http_pyexec_main_conf_t *pmcf;
    ngx_log_t                   *log;
    ngx_http_pyexec_session_t  **buckets;
    ngx_uint_t                   nbuckets;
    ngx_uint_t                   nsessions;
    ngx_uint_t                   ndirty;      /* sessions not checkpointed */
    ngx_queue_t                  lru;
    ngx_event_t                  expire;
    time_t                       started;
    ngx_uint_t                   seq;
    uint64_t                     executions;
    uint64_t                     timeouts;
    uint64_t                     started_ms;
    ngx_uint_t                   cells;       /* in flight: placement.c */
    uint64_t                     busy_ms;     /* with cells in flight, */
    uint64_t                     busy_since;  /* till the last went (ms) */
    volatile ngx_uint_t          stopping;    /* NGX_HTTP_PYEXEC_STOP_* */
    unsigned                     ready:1;
    unsigned                     warm:1;      /* session_init's imports */
    unsigned                     failed:1;
} ngx_http_pyexec_proc_t;


extern ngx_module_t            ngx_http_pyexec_module;
extern ngx_http_pyexec_proc_t  ngx_http_pyexec_proc;



#endif /* _NGX_HTTP_PYEXEC_COMMON_H_INCLUDED_ */
