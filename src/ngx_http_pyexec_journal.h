
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_JOURNAL_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_JOURNAL_H_INCLUDED_


#include "ngx_http_pyexec_common.h"


typedef struct ngx_http_pyexec_exec_s  ngx_http_pyexec_exec_t;

struct ngx_http_pyexec_exec_s {
    ngx_rbtree_node_t            node;        /* key: the exec_id */
    ngx_queue_t                  queue;       /* the journal, oldest first */
    u_char                      *id;          /* "<hex>.<session id>" */
    size_t                       id_len;

    /* under the journal's lock: the interpreter thread appends events */
    u_char                      *events;      /* Server-Sent Events text */
    size_t                       len;
    size_t                       size;
    size_t                      *starts;      /* event n starts at [n - 1] */
    size_t                       start1[2];   /* starts, while they fit */
    ngx_uint_t                   nevents;
    ngx_uint_t                   nstarts;     /* room in starts */
    size_t                       copied;      /* read by a stream so far */
    const char                  *last_kind;   /* of the last text event */
    unsigned                     cut:1;       /* events dropped at the cap */
    unsigned                     closed:1;    /* the result is in */

    /* event loop only */
    unsigned                     running:1;
    unsigned                     thread:1;    /* the thread may touch it */
    ngx_uint_t                   status;      /* of the reply */
    size_t                       reply;       /* its offset in events */
    size_t                       reply_len;
    ngx_msec_t                   ended;
    ngx_uint_t                   watchers;    /* streams that follow it */
};


ngx_int_t ngx_http_pyexec_journal_init_process(ngx_cycle_t *cycle);
void ngx_http_pyexec_journal_exit_process(void);
ngx_http_pyexec_exec_t *ngx_http_pyexec_journal_start(u_char *id,
    size_t len, uint64_t exec_id);
void ngx_http_pyexec_journal_end(ngx_http_pyexec_exec_t *e, ngx_uint_t status,
    u_char *reply, size_t len);
void ngx_http_pyexec_journal_release(ngx_http_pyexec_exec_t *e);
void ngx_http_pyexec_journal_emit(ngx_http_pyexec_exec_t *e,
    const char *kind, u_char *data, size_t len, ngx_uint_t text);
ngx_http_pyexec_exec_t *ngx_http_pyexec_journal_find(u_char *id, size_t len);
size_t ngx_http_pyexec_journal_copy(ngx_http_pyexec_exec_t *e, size_t from,
    u_char *buf, size_t size);
size_t ngx_http_pyexec_journal_after(ngx_http_pyexec_exec_t *e,
    ngx_uint_t last_event_id);
ngx_int_t ngx_http_pyexec_journal_reply(ngx_http_pyexec_exec_t *e,
    ngx_str_t *reply);
size_t ngx_http_pyexec_journal_bytes(void);
ngx_uint_t ngx_http_pyexec_journal_count(void);


#endif /* _NGX_HTTP_PYEXEC_JOURNAL_H_INCLUDED_ */
