
/*
 * Copyright (C) pyexec authors
 *
 * The content handlers of /health, /status, /execute and /sessions, and
 * the completion of their interpreter tasks.  Replies and body reading
 * are the reply layer's (reply.c); HTTP statuses appear only here and in
 * the other content handlers (route.c's gather, upload.c).
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_handler.h"
#include "ngx_http_pyexec_interp.h"
#include "ngx_http_pyexec_journal.h"
#include "ngx_http_pyexec_json.h"
#include "ngx_http_pyexec_metrics.h"
#include "ngx_http_pyexec_reply.h"
#include "ngx_http_pyexec_route.h"
#include "ngx_http_pyexec_session.h"
#include "ngx_http_pyexec_stream.h"
#include "ngx_http_pyexec_task.h"


#define NGX_HTTP_PYEXEC_BUSIEST  5     /* sessions /status lists */


static void ngx_http_pyexec_status_activity(ngx_http_pyexec_json_t *j);
static ngx_int_t ngx_http_pyexec_session_list(ngx_http_request_t *r);
static ngx_int_t ngx_http_pyexec_session_new(ngx_http_request_t *r);
static ngx_int_t ngx_http_pyexec_resolve_id(ngx_http_request_t *r,
    ngx_http_pyexec_request_t *req, u_char *minted, ngx_str_t *id);
static ngx_int_t ngx_http_pyexec_bad_header_id(ngx_http_request_t *r,
    ngx_int_t rc);
static ngx_int_t ngx_http_pyexec_session_info(ngx_http_request_t *r,
    ngx_str_t *id);
static ngx_int_t ngx_http_pyexec_session_delete(ngx_http_request_t *r,
    ngx_str_t *id);
static ngx_int_t ngx_http_pyexec_session_rollback(ngx_http_request_t *r,
    ngx_str_t *id);
static ngx_int_t ngx_http_pyexec_session_task(ngx_http_request_t *r,
    ngx_http_pyexec_session_t *s, ngx_http_pyexec_op_e op);
static void ngx_http_pyexec_task_done(ngx_http_pyexec_task_t *t);
static void ngx_http_pyexec_unheld_done(ngx_http_pyexec_task_t *t);
static void ngx_http_pyexec_journal_answer(ngx_http_pyexec_task_t *t);
static void ngx_http_pyexec_answered_done(ngx_http_pyexec_task_t *t);
static ngx_int_t ngx_http_pyexec_answer_early(ngx_http_request_t *r,
    ngx_http_pyexec_task_t *t, ngx_uint_t stream);
static ngx_uint_t ngx_http_pyexec_wants_stream(ngx_http_request_t *r);
static void ngx_http_pyexec_disconnect(ngx_http_request_t *r);
static ngx_http_pyexec_end_e ngx_http_pyexec_abandoned_end(
    ngx_http_pyexec_task_t *t);
static ngx_int_t ngx_http_pyexec_gone(ngx_http_request_t *r);
static ngx_int_t ngx_http_pyexec_full(ngx_http_request_t *r);
static ngx_int_t ngx_http_pyexec_no_interpreter(ngx_http_request_t *r);
static ngx_int_t ngx_http_pyexec_restarting(ngx_http_request_t *r,
    ngx_http_pyexec_task_t *t);
static ngx_int_t ngx_http_pyexec_session_interrupt(ngx_http_request_t *r,
    ngx_str_t *id);
static void ngx_http_pyexec_finalize(ngx_http_request_t *r, ngx_int_t rc);


static ngx_str_t  ngx_http_pyexec_deleted =
    ngx_string("{\"message\":\"Session deleted\"}");

static ngx_str_t  ngx_http_pyexec_queue_full =
    ngx_string("{\"detail\":\"interpreter queue full\"}");
static ngx_str_t  ngx_http_pyexec_healthy =
    ngx_string("{\"status\":\"healthy\"}");


ngx_int_t
ngx_http_pyexec_execute_handler(ngx_http_request_t *r)
{
    return ngx_http_pyexec_post_body(r, ngx_http_pyexec_execute_body);
}


ngx_int_t
ngx_http_pyexec_health_handler(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_pyexec_get_only(r);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_http_pyexec_send(r, NGX_HTTP_OK, &ngx_http_pyexec_healthy);
}


ngx_int_t
ngx_http_pyexec_status_handler(ngx_http_request_t *r)
{
    size_t       n;
    ngx_http_pyexec_json_t   j;
    ngx_int_t    rc;
    const char  *v;

    rc = ngx_http_pyexec_get_only(r);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    if (ngx_http_pyexec_json_init(&j) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v = ngx_http_pyexec_interp_version();
    for (n = 0; v[n] && v[n] != ' '; n++) { /* void */ }

    ngx_http_pyexec_json_map_open(&j);
    ngx_http_pyexec_json_kv(&j, "status", (u_char *) "healthy", 7);
    ngx_http_pyexec_json_key(&j, "worker");
    ngx_http_pyexec_json_int(&j, ngx_worker);
    ngx_http_pyexec_json_key(&j, "pid");
    ngx_http_pyexec_json_int(&j, ngx_pid);
    ngx_http_pyexec_json_kv(&j, "python", (u_char *) v, n);
    ngx_http_pyexec_json_key(&j, "sessions");
    ngx_http_pyexec_json_int(&j, ngx_http_pyexec_proc.nsessions);
    ngx_http_pyexec_json_key(&j, "uptime_s");
    ngx_http_pyexec_json_int(&j, ngx_time() - ngx_http_pyexec_proc.started);
    ngx_http_pyexec_json_key(&j, "executions");
    ngx_http_pyexec_json_int(&j, ngx_http_pyexec_proc.executions);
    ngx_http_pyexec_json_key(&j, "timeouts");
    ngx_http_pyexec_json_int(&j, ngx_http_pyexec_proc.timeouts);
    ngx_http_pyexec_json_key(&j, "interpreter_ready");
    ngx_http_pyexec_json_bool(&j, ngx_http_pyexec_proc.ready);
    ngx_http_pyexec_json_key(&j, "warm");
    ngx_http_pyexec_json_bool(&j, ngx_http_pyexec_proc.warm);
    ngx_http_pyexec_json_key(&j, "cells_in_flight");
    ngx_http_pyexec_json_int(&j, ngx_http_pyexec_proc.cells);
    ngx_http_pyexec_json_key(&j, "rss_bytes");
    ngx_http_pyexec_json_int(&j, ngx_http_pyexec_interp_rss());
    ngx_http_pyexec_json_key(&j, "journal");
    ngx_http_pyexec_json_map_open(&j);
    ngx_http_pyexec_json_key(&j, "executions");
    ngx_http_pyexec_json_int(&j, ngx_http_pyexec_journal_count());
    ngx_http_pyexec_json_key(&j, "bytes");
    ngx_http_pyexec_json_int(&j, ngx_http_pyexec_journal_bytes());
    ngx_http_pyexec_json_key(&j, "max_bytes");
    ngx_http_pyexec_json_int(&j, ngx_http_pyexec_proc.pmcf->journal_max);
    ngx_http_pyexec_json_map_close(&j);
    ngx_http_pyexec_status_activity(&j);
    ngx_http_pyexec_json_map_close(&j);

    return ngx_http_pyexec_send_json(r, NGX_HTTP_OK, &j);
}


/*
 * What the worker is doing: "running", the cell in the interpreter now
 * (null when none), and "busiest", its sessions with the most cells,
 * NGX_HTTP_PYEXEC_BUSIEST at most.
 */

static void
ngx_http_pyexec_status_activity(ngx_http_pyexec_json_t *j)
{
    ngx_uint_t                  i, k, n;
    ngx_queue_t                *q;
    ngx_http_pyexec_task_t     *t;
    ngx_http_pyexec_session_t  *s, *top[NGX_HTTP_PYEXEC_BUSIEST];

    ngx_http_pyexec_json_key(j, "running");

    t = ngx_http_pyexec_task_running(NULL);

    if (t == NULL) {
        ngx_http_pyexec_json_null(j);

    } else {
        ngx_http_pyexec_json_map_open(j);
        ngx_http_pyexec_json_kv(j, "session_id", t->session->id,
                                t->session->id_len);
        ngx_http_pyexec_json_kv(j, "execution_id", t->execution_id,
                                t->execution_id_len);
        ngx_http_pyexec_json_key(j, "running_ms");
        ngx_http_pyexec_json_int(j, ngx_http_pyexec_interp_now_ms()
                                    - t->started_ms);
        ngx_http_pyexec_json_map_close(j);
    }

    /* the top few by cells, insertion into a short sorted array */

    n = 0;

    for (q = ngx_queue_head(&ngx_http_pyexec_proc.lru);
         q != ngx_queue_sentinel(&ngx_http_pyexec_proc.lru);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_pyexec_session_t, lru);

        if (s->execution_count == 0
            || (n == NGX_HTTP_PYEXEC_BUSIEST
                && s->execution_count <= top[n - 1]->execution_count))
        {
            continue;
        }

        k = n < NGX_HTTP_PYEXEC_BUSIEST ? n++ : n - 1;

        while (k > 0 && top[k - 1]->execution_count < s->execution_count) {
            top[k] = top[k - 1];
            k--;
        }

        top[k] = s;
    }

    ngx_http_pyexec_json_key(j, "busiest");
    ngx_http_pyexec_json_array_open(j);

    for (i = 0; i < n; i++) {
        s = top[i];

        ngx_http_pyexec_json_map_open(j);
        ngx_http_pyexec_json_kv(j, "session_id", s->id, s->id_len);
        ngx_http_pyexec_json_key(j, "cells");
        ngx_http_pyexec_json_int(j, s->execution_count);
        ngx_http_pyexec_json_key(j, "pending");
        ngx_http_pyexec_json_int(j, s->pending);
        ngx_http_pyexec_json_key(j, "last_duration_ms");

        if (s->last_exec) {
            ngx_http_pyexec_json_int(j, s->last_ms);

        } else {
            ngx_http_pyexec_json_null(j);
        }

        ngx_http_pyexec_task_last_execution(j, s);
        ngx_http_pyexec_json_map_close(j);
    }

    ngx_http_pyexec_json_array_close(j);
}


ngx_int_t
ngx_http_pyexec_sessions_handler(ngx_http_request_t *r)
{
    ngx_str_t                  id;
    ngx_int_t                  rc;
    ngx_uint_t                 action;
    ngx_http_core_loc_conf_t  *clcf;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    rc = ngx_http_pyexec_route_path_id(r, &clcf->name, &id, &action);

    if (rc == NGX_DECLINED) {
        if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
            return ngx_http_pyexec_session_list(r);
        }

        if (r->method == NGX_HTTP_POST) {
            return ngx_http_pyexec_session_new(r);
        }

        return ngx_http_pyexec_method_not_allowed(r);
    }

    if (rc == NGX_ABORT) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "pyexec: session id in the path is not UTF-8 or "
                      "holds a control character");
        return ngx_http_pyexec_send_detail(r, NGX_HTTP_NOT_FOUND,
                                                "Session not found");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
        return ngx_http_pyexec_session_info(r, &id);
    }

    if (r->method == NGX_HTTP_DELETE) {
        return ngx_http_pyexec_session_delete(r, &id);
    }

    if (action == NGX_HTTP_PYEXEC_ACTION_ROLLBACK) {
        return ngx_http_pyexec_session_rollback(r, &id);
    }

    if (action == NGX_HTTP_PYEXEC_ACTION_INTERRUPT) {
        return ngx_http_pyexec_session_interrupt(r, &id);
    }

    return ngx_http_pyexec_method_not_allowed(r);
}


static ngx_int_t
ngx_http_pyexec_session_list(ngx_http_request_t *r)
{
    ngx_http_pyexec_json_t      j;
    ngx_queue_t                *q;
    ngx_http_pyexec_session_t  *s;

    if (ngx_http_pyexec_json_init(&j) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_pyexec_json_map_open(&j);
    ngx_http_pyexec_json_key(&j, "sessions");
    ngx_http_pyexec_json_array_open(&j);

    for (q = ngx_queue_last(&ngx_http_pyexec_proc.lru);
         q != ngx_queue_sentinel(&ngx_http_pyexec_proc.lru);
         q = ngx_queue_prev(q))
    {
        s = ngx_queue_data(q, ngx_http_pyexec_session_t, lru);

        ngx_http_pyexec_json_map_open(&j);
        ngx_http_pyexec_json_kv(&j, "session_id", s->id, s->id_len);
        ngx_http_pyexec_json_key(&j, "created_at");
        ngx_http_pyexec_json_iso8601(&j, s->created_at);
        ngx_http_pyexec_json_key(&j, "last_used");
        ngx_http_pyexec_json_iso8601(&j, s->last_used);
        ngx_http_pyexec_json_key(&j, "execution_count");
        ngx_http_pyexec_json_int(&j, s->execution_count);
        ngx_http_pyexec_json_map_close(&j);
    }

    ngx_http_pyexec_json_array_close(&j);
    ngx_http_pyexec_json_map_close(&j);

    return ngx_http_pyexec_send_json(r, NGX_HTTP_OK, &j);
}


static ngx_int_t
ngx_http_pyexec_session_new(ngx_http_request_t *r)
{
    u_char                      minted[NGX_HTTP_PYEXEC_UUID_LEN];
    ngx_http_pyexec_json_t      j;
    ngx_int_t                   rc;
    ngx_str_t                   id;
    ngx_http_pyexec_session_t  *s;

    /* a front passes the id it routed on; so may a client */

    rc = ngx_http_pyexec_resolve_id(r, NULL, minted, &id);
    if (rc != NGX_OK) {
        return ngx_http_pyexec_bad_header_id(r, rc);
    }

    s = ngx_http_pyexec_session_find(id.data, id.len);

    if (s == NULL) {
        s = ngx_http_pyexec_session_create(id.data, id.len,
                                           r->connection->log);
        if (s == NULL) {
            return ngx_http_pyexec_full(r);
        }
    }

    if (ngx_http_pyexec_json_init(&j) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_pyexec_json_map_open(&j);
    ngx_http_pyexec_json_kv(&j, "session_id", s->id, s->id_len);
    ngx_http_pyexec_json_map_close(&j);

    return ngx_http_pyexec_send_json(r, NGX_HTTP_OK, &j);
}


/*
 * The session id of an execute or a POST /sessions: the body's, else the
 * X-Session-Id header's (a front passes the id it routed on there), else a
 * new one.  NGX_OK, or NGX_DECLINED for a header id that is too long.
 */

static ngx_int_t
ngx_http_pyexec_resolve_id(ngx_http_request_t *r,
    ngx_http_pyexec_request_t *req, u_char *minted, ngx_str_t *id)
{
    ngx_int_t  rc;

    if (req && req->has_session_id && req->session_id.len) {
        *id = req->session_id;
        return NGX_OK;
    }

    rc = ngx_http_pyexec_route_header_id(r, id);

    if (rc != NGX_DECLINED) {
        return rc;      /* NGX_OK, or too long, or not UTF-8 */
    }

    ngx_http_pyexec_session_mint(minted, ngx_worker == (ngx_uint_t) -1
                                         ? 0 : (ngx_int_t) ngx_worker);
    id->data = minted;
    id->len = NGX_HTTP_PYEXEC_UUID_LEN;

    return NGX_OK;
}


static ngx_int_t
ngx_http_pyexec_bad_header_id(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_str_t  long_id = ngx_string(
        "{\"detail\":[{\"loc\":[\"header\",\"x-session-id\"],"
        "\"msg\":\"ensure this value has at most 256 characters\","
        "\"type\":\"value_error.any_str.max_length\"}]}");
    ngx_str_t  bad_id = ngx_string(
        "{\"detail\":[{\"loc\":[\"header\",\"x-session-id\"],"
        "\"msg\":\"must be valid UTF-8 without control characters\","
        "\"type\":\"value_error.str.encoding\"}]}");

    if (rc == NGX_ABORT) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "pyexec: X-Session-Id header is not UTF-8 or holds "
                      "a control character");

        return ngx_http_pyexec_send(r, NGX_HTTP_UNPROCESSABLE_ENTITY, &bad_id);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "pyexec: X-Session-Id header is too long");

    return ngx_http_pyexec_send(r, NGX_HTTP_UNPROCESSABLE_ENTITY, &long_id);
}


static ngx_int_t
ngx_http_pyexec_session_missing(ngx_http_request_t *r, ngx_str_t *id)
{
    if (ngx_http_pyexec_session_lost(id->data, id->len)) {
        return ngx_http_pyexec_gone(r);
    }

    return ngx_http_pyexec_send_detail(r, NGX_HTTP_NOT_FOUND,
                                       "Session not found");
}


static ngx_int_t
ngx_http_pyexec_session_info(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_http_pyexec_json_t        j;
    ngx_http_pyexec_session_t    *s;
    ngx_http_pyexec_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_pyexec_module);

    s = ngx_http_pyexec_session_find(id->data, id->len);

    if (s == NULL && pmcf->state_dir.len == 0) {
        return ngx_http_pyexec_session_missing(r, id);
    }

    if (s == NULL) {
        /* not held here: its checkpoint, if any, is read in the thread */

        s = ngx_http_pyexec_session_create(id->data, id->len,
                                           r->connection->log);
        if (s == NULL) {
            return ngx_http_pyexec_full(r);
        }

        s->restore = 1;
        s->lost = ngx_http_pyexec_session_lost(id->data, id->len) ? 1 : 0;
    }

    if (s->ns == NULL && s->pending == 0 && !s->restore) {

        /* never ran code: nothing to ask the interpreter */

        if (ngx_http_pyexec_json_init(&j) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_pyexec_json_map_open(&j);
        ngx_http_pyexec_json_kv(&j, "session_id", s->id, s->id_len);
        ngx_http_pyexec_json_key(&j, "variables");
        ngx_http_pyexec_json_array_open(&j);
        ngx_http_pyexec_json_array_close(&j);
        ngx_http_pyexec_json_key(&j, "created_at");
        ngx_http_pyexec_json_iso8601(&j, s->created_at);
        ngx_http_pyexec_task_last_execution(&j, s);
        ngx_http_pyexec_json_map_close(&j);

        return ngx_http_pyexec_send_json(r, NGX_HTTP_OK, &j);
    }

    return ngx_http_pyexec_session_task(r, s, NGX_HTTP_PYEXEC_OP_VARIABLES);
}


/* a session's task other than a cell; the content handler's rc */

static ngx_int_t
ngx_http_pyexec_session_task(ngx_http_request_t *r,
    ngx_http_pyexec_session_t *s, ngx_http_pyexec_op_e op)
{
    ngx_http_pyexec_task_t  *t;

    if (ngx_http_pyexec_task_recycling()) {
        return ngx_http_pyexec_restarting(r, NULL);
    }

    t = ngx_http_pyexec_task_alloc(r->pool);
    if (t == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    t->op = op;
    t->r = r;
    t->log = r->connection->log;
    t->done = ngx_http_pyexec_task_done;
    t->session = s;
    t->execution_count = s->execution_count;
    t->restore = s->restore && s->ns == NULL;
    t->lost = s->lost;

    if (ngx_http_pyexec_task_post(t) != NGX_OK) {
        return ngx_http_pyexec_send_detail(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "interpreter queue full");
    }

    s->refs++;
    s->pending++;
    r->main->count++;

    return NGX_DONE;
}


static ngx_int_t
ngx_http_pyexec_session_delete(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_http_pyexec_json_t      j;
    ngx_http_pyexec_session_t  *s;

    s = ngx_http_pyexec_session_find(id->data, id->len);

    if (s == NULL && ngx_http_pyexec_proc.pmcf->state_dir.len) {

        /* not held here: its checkpoint, if any, goes (in the thread) */

        s = ngx_http_pyexec_session_create(id->data, id->len,
                                           r->connection->log);
        if (s == NULL) {
            return ngx_http_pyexec_full(r);
        }

        s->lost = ngx_http_pyexec_session_lost(id->data, id->len) ? 1 : 0;

        return ngx_http_pyexec_session_task(r, s, NGX_HTTP_PYEXEC_OP_FORGET);
    }

    if (s == NULL) {
        return ngx_http_pyexec_session_missing(r, id);
    }

    ngx_http_pyexec_session_remove(s);

    if (ngx_http_pyexec_json_init(&j) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_pyexec_json_map_open(&j);
    ngx_http_pyexec_json_kv(&j, "message", (u_char *) "Session deleted", 15);
    ngx_http_pyexec_json_map_close(&j);

    return ngx_http_pyexec_send_json(r, NGX_HTTP_OK, &j);
}


/* POST /sessions/{id}/rollback: one step of undo (durable sessions) */

static ngx_int_t
ngx_http_pyexec_session_rollback(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_http_pyexec_session_t    *s;
    ngx_http_pyexec_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_pyexec_module);

    s = ngx_http_pyexec_session_find(id->data, id->len);
    if (s == NULL) {
        return ngx_http_pyexec_session_missing(r, id);
    }

    if (pmcf->state_dir.len == 0 || s->ns == NULL) {
        return ngx_http_pyexec_send_detail(r, NGX_HTTP_NOT_FOUND,
                                           "nothing to undo");
    }

    return ngx_http_pyexec_session_task(r, s, NGX_HTTP_PYEXEC_OP_ROLLBACK);
}


/*
 * POST /sessions/{id}/interrupt: the ladder for its running cell, from
 * KeyboardInterrupt (task.c), answered at once on the event loop.  A
 * session this worker does not hold runs nothing here: 404.
 */

static ngx_int_t
ngx_http_pyexec_session_interrupt(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_uint_t                  done;
    ngx_http_pyexec_json_t      j;
    ngx_http_pyexec_session_t  *s;

    s = ngx_http_pyexec_session_find(id->data, id->len);
    if (s == NULL || (s->ns == NULL && s->pending == 0)) {
        return ngx_http_pyexec_session_missing(r, id);
    }

    done = ngx_http_pyexec_task_interrupt(s);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "pyexec: interrupt of session \"%*s\": %s", s->id_len,
                  s->id, done ? "its cell is being stopped"
                              : "no cell running");

    if (ngx_http_pyexec_json_init(&j) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_pyexec_json_map_open(&j);
    ngx_http_pyexec_json_key(&j, "interrupted");
    ngx_http_pyexec_json_bool(&j, done);
    ngx_http_pyexec_json_kv(&j, "session_id", s->id, s->id_len);
    ngx_http_pyexec_json_map_close(&j);

    return ngx_http_pyexec_send_json(r, NGX_HTTP_OK, &j);
}


/* the body handler of pyexec_execute; front.c's for a cell it runs */

void
ngx_http_pyexec_execute_body(ngx_http_request_t *r)
{
    u_char                        minted[NGX_HTTP_PYEXEC_UUID_LEN];
    ngx_int_t                     rc;
    ngx_str_t                     body, err, sid;
    ngx_uint_t                    lost, stream;
    ngx_http_pyexec_task_t       *t;
    ngx_http_pyexec_request_t     req;
    ngx_http_pyexec_session_t    *s;
    ngx_http_pyexec_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_pyexec_module);

    if (ngx_http_pyexec_proc.failed) {
        ngx_http_pyexec_finalize(r, ngx_http_pyexec_no_interpreter(r));
        return;
    }

    ngx_str_null(&err);

    /* a cell the front runs here: it parsed the body already */

    rc = ngx_http_pyexec_route_parsed(r, &req);

    if (rc == NGX_DECLINED) {
        if (ngx_http_pyexec_body(r, &body) != NGX_OK) {
            ngx_http_pyexec_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        rc = ngx_http_pyexec_json_parse_request(r->pool, body.data, body.len,
                                                pmcf->json_max_depth, &req,
                                                &err);
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "pyexec: invalid request body: %V", &err);
        ngx_http_pyexec_finalize(r,
            ngx_http_pyexec_send(r, NGX_HTTP_UNPROCESSABLE_ENTITY, &err));
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_pyexec_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    rc = ngx_http_pyexec_resolve_id(r, &req, minted, &sid);
    if (rc != NGX_OK) {
        ngx_http_pyexec_finalize(r, ngx_http_pyexec_bad_header_id(r, rc));
        return;
    }

    s = ngx_http_pyexec_session_find(sid.data, sid.len);

    if (s == NULL) {
        lost = sid.data != minted && !ngx_http_pyexec_route_is_new(r)
               && ngx_http_pyexec_session_lost(sid.data, sid.len);

        if (lost && pmcf->state_dir.len == 0) {
            ngx_http_pyexec_finalize(r, ngx_http_pyexec_gone(r));
            return;
        }

        s = ngx_http_pyexec_session_create(sid.data, sid.len,
                                           r->connection->log);
        if (s == NULL) {
            ngx_http_pyexec_finalize(r, ngx_http_pyexec_full(r));
            return;
        }

        /* a session this worker does not hold may have a checkpoint */

        if (pmcf->state_dir.len && sid.data != minted
            && !ngx_http_pyexec_route_is_new(r))
        {
            s->restore = 1;
            s->lost = lost;
        }
    }

    if (ngx_http_pyexec_task_recycling()) {
        ngx_http_pyexec_finalize(r, ngx_http_pyexec_restarting(r, NULL));
        return;
    }

    if (s->pending >= pmcf->session_queue) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "pyexec: queue of session \"%*s\" is full (%ui)",
                      s->id_len, s->id, s->pending);
        ngx_http_pyexec_finalize(r,
            ngx_http_pyexec_send_detail(r, NGX_HTTP_TOO_MANY_REQUESTS,
                                        "too many requests queued for this "
                                   "session"));
        return;
    }

    t = ngx_http_pyexec_task_alloc(r->pool);
    if (t == NULL) {
        ngx_http_pyexec_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    t->op = NGX_HTTP_PYEXEC_OP_EXECUTE;
    t->r = r;
    t->log = r->connection->log;
    t->done = ngx_http_pyexec_task_done;
    t->session = s;
    t->code = req.code.data;
    t->code_len = req.code.len;
    t->seq = ++ngx_http_pyexec_proc.seq;
    t->timeout = req.has_timeout ? ngx_min(req.timeout, pmcf->timeout_max)
                                 : pmcf->timeout;
    t->execution_count = s->execution_count + 1;
    t->restore = s->restore && s->ns == NULL;
    t->lost = s->lost;
    ngx_http_pyexec_task_execution(t);

    stream = req.stream || ngx_http_pyexec_wants_stream(r);

    t->exec = ngx_http_pyexec_journal_start(t->execution_id,
                                            t->execution_id_len, t->exec_id);

    if (t->exec == NULL && (stream || req.async)) {
        ngx_http_pyexec_finalize(r,
            ngx_http_pyexec_send_detail(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                        "no memory for the execution's "
                                        "journal"));
        return;
    }

    if (ngx_http_pyexec_task_post(t) != NGX_OK) {
        if (t->exec) {
            ngx_http_pyexec_journal_release(t->exec);
            ngx_http_pyexec_journal_end(t->exec, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        ngx_http_pyexec_queue_full.data,
                                        ngx_http_pyexec_queue_full.len);
        }

        ngx_http_pyexec_finalize(r,
            ngx_http_pyexec_send_detail(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                        "interpreter queue full"));
        return;
    }

    s->execution_count++;
    s->refs++;
    s->pending++;
    s->last_exec = t->exec_id;      /* its latest, running or not */
    ngx_http_pyexec_session_touch(s);
    ngx_http_pyexec_proc.executions++;

    if (pmcf->interrupt_on_disconnect && !req.async) {
        r->read_event_handler = ngx_http_pyexec_disconnect;
    }

    if (stream || req.async) {
        (void) ngx_http_pyexec_answer_early(r, t, stream);
    }
}


/*
 * pyexec_interrupt_on_disconnect on: a client that closes its connection
 * while its cell runs interrupts it (as POST .../interrupt does); off, the
 * cell runs on and its reply waits in the journal.
 */

static void
ngx_http_pyexec_disconnect(ngx_http_request_t *r)
{
    ngx_http_test_reading(r);

    if (r->connection->error && ngx_http_pyexec_task_cancel(r)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "pyexec: the client went away: its cell is stopped "
                      "(pyexec_interrupt_on_disconnect)");
    }
}


/*
 * "async": 202 {"execution_id", "session_id"} now; "stream" (or Accept:
 * text/event-stream): the events as they come.  Either way the answer
 * goes out while the request stays blocked by its task (as a recycle's
 * early answers do, task.c): the cell runs on, its result goes to the
 * journal, and its completion (answered_done()) lets the request go.
 */

static ngx_int_t
ngx_http_pyexec_answer_early(ngx_http_request_t *r, ngx_http_pyexec_task_t *t,
    ngx_uint_t stream)
{
    ngx_int_t               rc;
    ngx_http_pyexec_json_t  j;

    r->aio = 0;                     /* the task no longer holds the answer */

    if (stream) {
        t->streamed = 1;

        if (ngx_http_pyexec_stream_start(r, t->exec, 0, 1) != NGX_OK) {
            r->connection->error = 1;       /* completion: 499 */
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    t->detached = 1;
    r->keepalive = 0;
    r->main->count++;               /* released by answered_done() */

    if (ngx_http_pyexec_metrics_execution(r, t->execution_id,
                                          t->execution_id_len)
        != NGX_OK
        || ngx_http_pyexec_json_init(&j) != NGX_OK)
    {
        ngx_http_pyexec_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_map_open(&j);
    ngx_http_pyexec_json_kv(&j, "execution_id", t->execution_id,
                            t->execution_id_len);
    ngx_http_pyexec_json_kv(&j, "session_id", t->session->id,
                            t->session->id_len);
    ngx_http_pyexec_json_map_close(&j);

    rc = ngx_http_pyexec_send_json(r, NGX_HTTP_ACCEPTED, &j);
    ngx_http_pyexec_finalize(r, rc);

    return NGX_OK;
}


/* Accept: text/event-stream */

static ngx_uint_t
ngx_http_pyexec_wants_stream(ngx_http_request_t *r)
{
    ngx_table_elt_t   *h;
    static ngx_str_t   accept = ngx_string("Accept");

    h = ngx_http_pyexec_header(&r->headers_in.headers, &accept);

    return h && ngx_strlcasestrn(h->value.data, h->value.data + h->value.len,
                                 (u_char *) "text/event-stream",
                                 sizeof("text/event-stream") - 2) != NULL;
}


/* the end of a cell answered early: the stream ends, or the request goes */

static void
ngx_http_pyexec_answered_done(ngx_http_pyexec_task_t *t)
{
    if (t->streamed) {
        ngx_http_pyexec_stream_end(t->r);

    } else {
        ngx_http_finalize_request(t->r, NGX_DONE);
    }
}


/*
 * The journal's copy of a cell's answer, whatever becomes of its request:
 * the reply, or the error a request would get in its place.
 */

static void
ngx_http_pyexec_journal_answer(ngx_http_pyexec_task_t *t)
{
    ngx_str_t               text;
    ngx_uint_t              status;
    const char             *detail;
    ngx_http_pyexec_json_t  j;

    if (!t->abandoned && ngx_http_pyexec_json_text(&t->json, &text) == NGX_OK)
    {
        ngx_http_pyexec_journal_end(t->exec, t->status, text.data, text.len);
        return;
    }

    if (t->abandoned) {
        status = t->stuck ? NGX_HTTP_GATEWAY_TIME_OUT
                          : NGX_HTTP_SERVICE_UNAVAILABLE;
        detail = t->stuck ? "execution could not be stopped (stuck in C "
                            "code); the worker restarted"
                          : "the worker restarted (a cell was stuck in C "
                            "code); this cell did not run";

    } else if (t->status == NGX_HTTP_GONE || t->lost) {
        status = NGX_HTTP_GONE;
        detail = t->gone[0] ? (char *) t->gone
                            : "session lost: worker restarted";

    } else if (t->status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        status = t->status;
        detail = "Python interpreter unavailable";

    } else if (t->status == NGX_HTTP_CLIENT_CLOSED_REQUEST) {
        status = t->status;
        detail = "not run: its client went away before it started "
                 "(pyexec_interrupt_on_disconnect)";

    } else {
        status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        detail = "internal error running the code";
    }

    if (ngx_http_pyexec_json_init(&j) != NGX_OK) {
        ngx_http_pyexec_journal_end(t->exec, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    (u_char *) "{}", 2);
        return;
    }

    ngx_http_pyexec_json_map_open(&j);
    ngx_http_pyexec_json_kv(&j, "detail", (u_char *) detail,
                            ngx_strlen(detail));
    ngx_http_pyexec_json_kv(&j, "execution_id", t->execution_id,
                            t->execution_id_len);
    ngx_http_pyexec_json_map_close(&j);

    if (ngx_http_pyexec_json_text(&j, &text) != NGX_OK) {
        ngx_str_set(&text, "{}");
    }

    ngx_http_pyexec_journal_end(t->exec, status, text.data, text.len);
    ngx_http_pyexec_json_free(&j);
}


/* completion of a request task, on the event loop (task->done) */

static void
ngx_http_pyexec_task_done(ngx_http_pyexec_task_t *t)
{
    ngx_int_t                   rc;
    ngx_http_request_t         *r = t->r;
    ngx_connection_t           *c = r->connection;
    ngx_http_pyexec_session_t  *s = t->session;

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "pyexec task done: op %d cell %ui status %i%s",
                   (int) t->op, t->seq, t->status,
                   t->stuck ? " (stuck)" : "");

    s->pending--;
    ngx_http_pyexec_session_touch(s);

    if (t->restore) {
        s->restore = 0;             /* tried, in the thread */
    }

    if (t->op == NGX_HTTP_PYEXEC_OP_EXECUTE && t->exec) {
        ngx_http_pyexec_journal_answer(t);  /* whatever the request's fate */
    }

    if (!t->abandoned
        && (t->op == NGX_HTTP_PYEXEC_OP_FORGET
            || (t->status == NGX_HTTP_GONE && t->json.g == NULL)))
    {
        ngx_http_pyexec_unheld_done(t);
        return;
    }

    if (t->was_restored) {
        ngx_http_pyexec_metrics.sessions_restored++;
        s->execution_count = t->op == NGX_HTTP_PYEXEC_OP_EXECUTE
                             ? t->execution_count : t->restored_from;

        if (t->op == NGX_HTTP_PYEXEC_OP_ROLLBACK) {
            ngx_http_pyexec_session_dirty(s, 0);    /* its checkpoint now */
        }
    }

    if (t->op == NGX_HTTP_PYEXEC_OP_ROLLBACK
        && t->status == NGX_HTTP_NOT_FOUND && t->json.g == NULL
        && !t->abandoned && !c->error)
    {
        ngx_http_pyexec_session_release(s);
        ngx_http_pyexec_finalize(r,
            ngx_http_pyexec_send_detail(r, NGX_HTTP_NOT_FOUND,
                                        "nothing to undo"));
        return;
    }

    if (t->op == NGX_HTTP_PYEXEC_OP_EXECUTE && t->status == NGX_HTTP_OK
        && s->in_table && ngx_http_pyexec_proc.pmcf->state_dir.len)
    {
        ngx_http_pyexec_session_dirty(s, 1);
    }

    if (t->op == NGX_HTTP_PYEXEC_OP_EXECUTE) {
        ngx_http_pyexec_metrics_cell(r, t,
            t->abandoned ? (ngx_int_t) ngx_http_pyexec_abandoned_end(t)
                         : (t->json.g ? t->end : -1));
    }

    if (t->detached || t->streamed) {
        ngx_http_pyexec_json_free(&t->json);
        ngx_http_pyexec_session_release(s);
        ngx_http_pyexec_answered_done(t);
        ngx_http_pyexec_session_checkpoint_idle();
        return;
    }

    if (c->error || ngx_http_pyexec_terminated(r)) {
        /* the client went away: the cell ran, its answer is in the
         * journal (GET /executions/{id}) */

        ngx_http_pyexec_json_free(&t->json);
        ngx_http_pyexec_session_release(s);
        ngx_http_pyexec_finalize(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);
        return;
    }

    if (t->abandoned) {
        /* the worker is being recycled: answered now, still blocked */

        ngx_http_pyexec_json_free(&t->json);
        rc = ngx_http_pyexec_restarting(r, t);

    } else if (t->json.g) {
        rc = ngx_http_pyexec_send_json(r, t->status, &t->json);

    } else if (t->status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        rc = ngx_http_pyexec_no_interpreter(r);

    } else {
        rc = ngx_http_pyexec_send_detail(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                         "internal error running the code");
    }

    ngx_http_pyexec_session_release(s);
    ngx_http_pyexec_finalize(r, rc);

    ngx_http_pyexec_session_checkpoint_idle();
}


/*
 * The end of a request for a session this worker did not hold that leaves
 * it unheld: its checkpoint deleted (DELETE: 200), or none to restore
 * (410 with the reason, 410 for a lost id, else 404).
 */

static void
ngx_http_pyexec_unheld_done(ngx_http_pyexec_task_t *t)
{
    ngx_int_t                   rc;
    ngx_http_request_t         *r = t->r;
    ngx_http_pyexec_session_t  *s = t->session;

    ngx_http_pyexec_session_remove(s);
    ngx_http_pyexec_session_release(s);

    if (t->detached || t->streamed) {
        ngx_http_pyexec_answered_done(t);
        return;
    }

    if (r->connection->error) {
        ngx_http_pyexec_finalize(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);
        return;
    }

    if (t->status == NGX_HTTP_OK) {
        rc = ngx_http_pyexec_send(r, NGX_HTTP_OK, &ngx_http_pyexec_deleted);

    } else if (t->gone[0]) {
        ngx_http_pyexec_metrics.sessions_lost++;
        rc = ngx_http_pyexec_send_detail(r, NGX_HTTP_GONE, (char *) t->gone);

    } else if (t->lost) {
        rc = ngx_http_pyexec_gone(r);

    } else {
        rc = ngx_http_pyexec_send_detail(r, NGX_HTTP_NOT_FOUND,
                                         "Session not found");
    }

    ngx_http_pyexec_finalize(r, rc);
}


/* a session id minted before this worker started: its session died */

static ngx_int_t
ngx_http_pyexec_gone(ngx_http_request_t *r)
{
    ngx_http_pyexec_metrics.sessions_lost++;

    return ngx_http_pyexec_send_detail(r, NGX_HTTP_GONE,
                                       "session lost: worker restarted");
}


/* how a cell a recycle answered early ended: stuck in it, or queued */

static ngx_http_pyexec_end_e
ngx_http_pyexec_abandoned_end(ngx_http_pyexec_task_t *t)
{
    if (!t->stuck) {
        return NGX_HTTP_PYEXEC_END_WORKER_LOST;
    }

    return t->kill_reason == NGX_HTTP_PYEXEC_KILL_TIMEOUT
           ? NGX_HTTP_PYEXEC_END_TIMEOUT : NGX_HTTP_PYEXEC_END_INTERRUPTED;
}


/*
 * The worker is being recycled (a cell stuck in C code): the stuck cell
 * (t->stuck) gets 504 with its termination, the requests queued behind it
 * and those that come during the drain (t NULL or not a cell: not run)
 * get 503 with Retry-After; the next worker restores their sessions.
 */

static ngx_int_t
ngx_http_pyexec_restarting(ngx_http_request_t *r, ngx_http_pyexec_task_t *t)
{
    u_char                  buf[32], *p;
    ngx_uint_t              status, durable;
    ngx_http_pyexec_json_t  j;

    if (ngx_http_pyexec_json_init(&j) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    status = NGX_HTTP_SERVICE_UNAVAILABLE;
    durable = ngx_http_pyexec_proc.pmcf->state_dir.len != 0;

    ngx_http_pyexec_json_map_open(&j);
    ngx_http_pyexec_json_key(&j, "detail");

    if (t && t->stuck) {
        status = NGX_HTTP_GATEWAY_TIME_OUT;

        ngx_http_pyexec_json_cstr(&j, durable
            ? "execution could not be stopped (stuck in C code); the worker "
              "is restarting and the session comes back from its last "
              "checkpoint"
            : "execution could not be stopped (stuck in C code); the worker "
              "is restarting and its sessions are lost");

        ngx_http_pyexec_task_termination(&j, ngx_http_pyexec_abandoned_end(t),
                                         NGX_HTTP_PYEXEC_STAGE_RECYCLE);

        p = ngx_sprintf(buf, "%uL",
                        ngx_http_pyexec_interp_now_ms() - t->started_ms);
        ngx_http_pyexec_json_key(&j, "usage");
        ngx_http_pyexec_json_map_open(&j);
        ngx_http_pyexec_json_key(&j, "wall_ms");
        ngx_http_pyexec_json_number(&j, (const char *) buf, p - buf);
        ngx_http_pyexec_json_map_close(&j);

    } else {
        ngx_http_pyexec_json_cstr(&j, durable
            ? "the worker is restarting (a cell is stuck in C code); this "
              "request did not run: retry, the session comes back from its "
              "last checkpoint"
            : "the worker is restarting (a cell is stuck in C code); this "
              "request did not run, and the worker's sessions are lost");

        if (t == NULL || t->op == NGX_HTTP_PYEXEC_OP_EXECUTE) {
            ngx_http_pyexec_task_termination(&j,
                                             NGX_HTTP_PYEXEC_END_WORKER_LOST,
                                             NGX_HTTP_PYEXEC_STAGE_RECYCLE);
        }

        if (ngx_http_pyexec_retry_after(r, 1) != NGX_OK) {
            ngx_http_pyexec_json_free(&j);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ngx_http_pyexec_json_map_close(&j);

    return ngx_http_pyexec_send_json(r, status, &j);
}


static ngx_int_t
ngx_http_pyexec_no_interpreter(ngx_http_request_t *r)
{
    return ngx_http_pyexec_send_detail(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "the Python interpreter failed "
                                       "to start");
}


/* pyexec_session_max reached and every session has work queued */

static ngx_int_t
ngx_http_pyexec_full(ngx_http_request_t *r)
{
    return ngx_http_pyexec_send_detail(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                       "session limit reached and no "
                                  "session is idle");
}


/* the one place a body-reading request is finalized */

static void
ngx_http_pyexec_finalize(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_finalize_request(r, rc);
}
