
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_SESSION_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_SESSION_H_INCLUDED_


#include "ngx_http_pyexec_common.h"


/* ngx_http_pyexec_session_t: the typedef is in common.h (per-process state) */

struct ngx_http_pyexec_session_s {
    ngx_http_pyexec_session_t   *hash_next;
    ngx_queue_t                  lru;
    void                        *ns;          /* owned by the Python thread */
    void                        *injected;    /* owned by the Python thread */
    ngx_uint_t                   refs;
    ngx_uint_t                   pending;
    ngx_uint_t                   execution_count;
    time_t                       created_at;
    time_t                       last_used;
    uint32_t                     hash;
    ngx_pid_t                    ckpt_pid;    /* its checkpoint's writer */
    uint32_t                     ckpt_cost;   /* its last one's CPU, us */
    uint64_t                     ckpt_at;     /* when it was begun, ms */
    uint64_t                     last_exec;   /* its latest cell's exec_id */
    uint32_t                     last_ms;     /* its last ended cell's, ms */
    unsigned                     in_table:1;
    unsigned                     dirty:1;     /* changed since checkpoint */
    unsigned                     checkpointing:1;
    unsigned                     restore:1;   /* try its checkpoint first */
    unsigned                     lost:1;      /* minted before this worker */
    size_t                       id_len;
    u_char                       id[1];
};


ngx_int_t ngx_http_pyexec_session_init_process(ngx_cycle_t *cycle);
void ngx_http_pyexec_session_exit_process(void);
ngx_http_pyexec_session_t *ngx_http_pyexec_session_find(u_char *id,
    size_t len);
ngx_http_pyexec_session_t *ngx_http_pyexec_session_create(u_char *id,
    size_t len, ngx_log_t *log);
void ngx_http_pyexec_session_remove(ngx_http_pyexec_session_t *s);
void ngx_http_pyexec_session_release(ngx_http_pyexec_session_t *s);
void ngx_http_pyexec_session_touch(ngx_http_pyexec_session_t *s);
void ngx_http_pyexec_random(u_char *buf, size_t len);
void ngx_http_pyexec_session_mint(u_char *out, ngx_int_t worker);
ngx_int_t ngx_http_pyexec_session_pinned(u_char *id, size_t len);
ngx_int_t ngx_http_pyexec_session_lost(u_char *id, size_t len);
void ngx_http_pyexec_session_set_secret(ngx_str_t *configured);
void ngx_http_pyexec_session_checkpoint_idle(void);
void ngx_http_pyexec_session_dirty(ngx_http_pyexec_session_t *s,
    ngx_uint_t dirty);


#endif /* _NGX_HTTP_PYEXEC_SESSION_H_INCLUDED_ */
