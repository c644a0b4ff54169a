
/*
 * Copyright (C) pyexec authors
 *
 * Offload to the thread pool: post, time limit, completion.
 *
 * Request tasks live in r->pool and hold r->main->blocked (the core
 * pattern, as in ngx_http_copy_thread_handler()): the request cannot be
 * freed while Python may still write into the task, and a client that goes
 * away only makes the final write fail.  Server-side tasks (interpreter
 * start, session release) are heap memory freed by their completion.
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_interp.h"
#include "ngx_http_pyexec_json.h"
#include "ngx_http_pyexec_placement.h"
#include "ngx_http_pyexec_socket.h"
#include "ngx_http_pyexec_task.h"

#include <unistd.h>


/* the first half of every execution_id of this process, drawn once */

static uint32_t    ngx_http_pyexec_execution_base;
static ngx_uint_t  ngx_http_pyexec_execution_drawn;


/* "termination": {"reason"}, by ngx_http_pyexec_end_e */

const char  *ngx_http_pyexec_task_reasons[] = {
    "ok", "error", "memory", "timeout", "interrupted", "worker_lost"
};


static u_char *ngx_http_pyexec_task_execution_id(u_char *buf,
    uint64_t exec_id, ngx_http_pyexec_session_t *s);
static void ngx_http_pyexec_task_thread(void *data, ngx_log_t *log);
static void ngx_http_pyexec_task_server_thread(void *data, ngx_log_t *log);
static void ngx_http_pyexec_task_event(ngx_event_t *ev);
static ngx_msec_t ngx_http_pyexec_task_next(ngx_http_pyexec_task_t *t,
    uint64_t ran);
static void ngx_http_pyexec_task_timer(ngx_event_t *ev);
static void ngx_http_pyexec_task_escalate(ngx_http_pyexec_task_t *t,
    uint64_t now, ngx_log_t *log);
static void ngx_http_pyexec_task_recycle(ngx_http_pyexec_task_t *stuck,
    ngx_log_t *log);
static void ngx_http_pyexec_task_drain(ngx_event_t *ev);


#define NGX_HTTP_PYEXEC_DRAIN_TICK   100
#define NGX_HTTP_PYEXEC_DRAIN_MAX    60000
#define NGX_HTTP_PYEXEC_RESCUE_WAIT  2000


static ngx_queue_t  ngx_http_pyexec_tasks = {
    &ngx_http_pyexec_tasks, &ngx_http_pyexec_tasks
};

static ngx_event_t       ngx_http_pyexec_drain_event;
static ngx_connection_t  ngx_http_pyexec_drain_conn;  /* ev->data for logs */
static ngx_msec_t        ngx_http_pyexec_drain_deadline;

/* the stuck cell's session: its namespace is in use, never written */
static ngx_http_pyexec_session_t  *ngx_http_pyexec_stuck_session;


ngx_http_pyexec_task_t *
ngx_http_pyexec_task_alloc(ngx_pool_t *pool)
{
    ngx_thread_task_t       *task;
    ngx_http_pyexec_task_t  *t;

    task = ngx_thread_task_alloc(pool, sizeof(ngx_http_pyexec_task_t));
    if (task == NULL) {
        return NULL;
    }

    t = task->ctx;
    t->task = task;
    t->end = -1;

    return t;
}


/*
 * A cell's execution_id, "<16 hex digits>.<session id>": the digits are
 * a random number drawn once per worker and the worker's count of cells,
 * so ids differ across workers and hosts, and the session id names where
 * the execution ran, for a front to route on as it routes the session.
 */

static u_char *
ngx_http_pyexec_task_execution_id(u_char *buf, uint64_t exec_id,
    ngx_http_pyexec_session_t *s)
{
    buf = ngx_sprintf(buf, "%016xL.", exec_id);

    return ngx_cpymem(buf, s->id, s->id_len);
}


void
ngx_http_pyexec_task_execution(ngx_http_pyexec_task_t *t)
{
    u_char  *p;

    if (!ngx_http_pyexec_execution_drawn) {
        ngx_http_pyexec_random((u_char *) &ngx_http_pyexec_execution_base,
                               sizeof(uint32_t));
        ngx_http_pyexec_execution_drawn = 1;
    }

    t->exec_id = ((uint64_t) ngx_http_pyexec_execution_base << 32)
                 | (uint32_t) t->seq;

    p = ngx_http_pyexec_task_execution_id(t->execution_id, t->exec_id,
                                          t->session);
    t->execution_id_len = p - t->execution_id;
}


/* an execution id this worker process gave out (its journal may be gone) */

ngx_uint_t
ngx_http_pyexec_task_execution_past(u_char *id, size_t len)
{
    ngx_int_t  hi, seq;

    if (len < 18 || id[16] != '.' || !ngx_http_pyexec_execution_drawn) {
        return 0;
    }

    hi = ngx_hextoi(id, 8);
    seq = ngx_hextoi(id + 8, 8);

    return hi != NGX_ERROR && seq != NGX_ERROR
           && (uint32_t) hi == ngx_http_pyexec_execution_base
           && seq > 0 && (ngx_uint_t) seq <= ngx_http_pyexec_proc.seq;
}


/* "last_execution_id" of GET /sessions/{id}, /status: its latest cell's */

void
ngx_http_pyexec_task_last_execution(ngx_http_pyexec_json_t *j,
    ngx_http_pyexec_session_t *s)
{
    u_char  buf[NGX_HTTP_PYEXEC_EXEC_ID_MAX], *p;

    if (s->last_exec == 0) {
        ngx_http_pyexec_json_key(j, "last_execution_id");
        ngx_http_pyexec_json_null(j);
        return;
    }

    p = ngx_http_pyexec_task_execution_id(buf, s->last_exec, s);

    ngx_http_pyexec_json_kv(j, "last_execution_id", buf, p - buf);
}


ngx_int_t
ngx_http_pyexec_task_post(ngx_http_pyexec_task_t *t)
{
    ngx_thread_task_t            *task = t->task;
    ngx_http_request_t           *r = t->r;
    ngx_http_pyexec_main_conf_t  *pmcf = ngx_http_pyexec_proc.pmcf;

    task->handler = ngx_http_pyexec_task_thread;
    task->event.handler = ngx_http_pyexec_task_event;
    task->event.data = t;
    task->event.log = t->log;
    t->posted_us = ngx_http_pyexec_interp_now_us();

    if (ngx_thread_task_post(pmcf->thread_pool, task) != NGX_OK) {
        return NGX_ERROR;
    }

    r->main->blocked++;
    r->aio = 1;

    ngx_queue_insert_tail(&ngx_http_pyexec_tasks, &t->queue);

    if (t->op == NGX_HTTP_PYEXEC_OP_EXECUTE) {
        if (ngx_http_pyexec_proc.cells++ == 0) {
            ngx_http_pyexec_proc.busy_since = ngx_http_pyexec_interp_now_ms();
        }

        ngx_http_pyexec_placement_report();
    }

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, t->log, 0,
                   "pyexec task posted: op %d cell %ui execution \"%*s\"",
                   (int) t->op, t->seq, t->execution_id_len,
                   t->execution_id);

    if (t->op == NGX_HTTP_PYEXEC_OP_EXECUTE) {
        t->timer.handler = ngx_http_pyexec_task_timer;
        t->timer.data = t;
        t->timer.log = t->log;
        ngx_add_timer(&t->timer, ngx_http_pyexec_task_next(t, 0));
    }

    return NGX_OK;
}


/*
 * The cell the interpreter runs now (of session s, unless NULL), NULL
 * when none; a stuck cell a recycle abandoned still runs.
 */

ngx_http_pyexec_task_t *
ngx_http_pyexec_task_running(ngx_http_pyexec_session_t *s)
{
    ngx_queue_t             *q;
    ngx_http_pyexec_task_t  *t;

    ngx_memory_barrier();

    for (q = ngx_queue_head(&ngx_http_pyexec_tasks);
         q != ngx_queue_sentinel(&ngx_http_pyexec_tasks);
         q = ngx_queue_next(q))
    {
        t = ngx_queue_data(q, ngx_http_pyexec_task_t, queue);

        if (t->op == NGX_HTTP_PYEXEC_OP_EXECUTE && t->started_ms
            && !t->finished && (s == NULL || t->session == s))
        {
            return t;
        }
    }

    return NULL;
}


/*
 * The cell of request r, whose client went away: interrupted if it runs,
 * never started if it waits (interp_run() skips it).  1: there was one.
 */

ngx_uint_t
ngx_http_pyexec_task_cancel(ngx_http_request_t *r)
{
    ngx_queue_t             *q;
    ngx_http_pyexec_task_t  *t;

    for (q = ngx_queue_head(&ngx_http_pyexec_tasks);
         q != ngx_queue_sentinel(&ngx_http_pyexec_tasks);
         q = ngx_queue_next(q))
    {
        t = ngx_queue_data(q, ngx_http_pyexec_task_t, queue);

        if (t->r != r || t->op != NGX_HTTP_PYEXEC_OP_EXECUTE) {
            continue;
        }

        t->cancelled = 1;
        ngx_memory_barrier();

        if (t->started_ms && !t->finished) {
            (void) ngx_http_pyexec_task_interrupt(t->session);
        }

        return 1;
    }

    return 0;
}


/* no request task in flight: a checkpoint cannot delay a queued cell */

ngx_uint_t
ngx_http_pyexec_task_idle(void)
{
    return ngx_queue_empty(&ngx_http_pyexec_tasks);
}


/*
 * A server-side task (a session's release, reaping children): heap memory,
 * the ngx_thread_task_t followed by its ngx_http_pyexec_task_t; `done`
 * runs on the event loop with ev->data the ngx_thread_task_t, and frees it.
 */

ngx_int_t
ngx_http_pyexec_task_post_server(ngx_http_pyexec_op_e op,
    ngx_http_pyexec_session_t *s, ngx_event_handler_pt done)
{
    ngx_log_t               *log = ngx_http_pyexec_proc.log;
    ngx_thread_task_t       *task;
    ngx_http_pyexec_task_t  *t;

    task = ngx_calloc(sizeof(ngx_thread_task_t)
                      + sizeof(ngx_http_pyexec_task_t), log);
    if (task == NULL) {
        return NGX_ERROR;
    }

    t = (ngx_http_pyexec_task_t *) (task + 1);
    t->op = op;
    t->session = s;
    t->execution_count = s ? s->execution_count : 0;
    t->log = log;

    task->ctx = t;
    task->handler = ngx_http_pyexec_task_server_thread;
    task->event.handler = done;
    task->event.data = task;
    task->event.log = log;

    if (ngx_thread_task_post(ngx_http_pyexec_proc.pmcf->thread_pool, task)
        != NGX_OK)
    {
        ngx_free(task);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* pool threads: the log is the pool's, never a request's connection log */

static void
ngx_http_pyexec_task_server_thread(void *data, ngx_log_t *log)
{
    ngx_http_pyexec_interp_run(data, log);
}


static void
ngx_http_pyexec_task_thread(void *data, ngx_log_t *log)
{
    ngx_http_pyexec_task_t  *t = data;

    ngx_http_pyexec_interp_run(t, log);

    ngx_memory_barrier();
    t->finished = 1;
}


/*
 * Completion on the event loop, as ngx_http_copy_thread_event_handler()
 * does it: the log names the request, the request is unblocked, and a
 * request that was already answered (a stuck cell's 504) or terminated
 * only has its connection handler run; otherwise the handler's callback
 * answers it.
 */

static void
ngx_http_pyexec_task_event(ngx_event_t *ev)
{
    ngx_http_pyexec_task_t  *t = ev->data;
    ngx_connection_t        *c;
    ngx_http_request_t      *r;

    r = t->r;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "pyexec task event: op %d cell %ui \"%V\"",
                   (int) t->op, t->seq, &r->uri);

    if (t->timer.timer_set) {
        ngx_del_timer(&t->timer);
    }

    ngx_queue_remove(&t->queue);
    ngx_http_pyexec_journal_release(t->exec);   /* the thread let go */

    if (t->op == NGX_HTTP_PYEXEC_OP_EXECUTE) {
        if (--ngx_http_pyexec_proc.cells == 0) {
            ngx_http_pyexec_proc.busy_ms += ngx_http_pyexec_interp_now_ms()
                                            - ngx_http_pyexec_proc.busy_since;
        }

        ngx_http_pyexec_placement_report();
    }

    r->main->blocked--;
    r->aio = 0;

    if (t->abandoned) {
        /* answered when its worker was recycled; the thread let go now */

        ngx_log_error(NGX_LOG_NOTICE, c->log, 0,
                      "pyexec: cell %ui returned after it was abandoned",
                      t->seq);

        ngx_http_pyexec_json_free(&t->json);
        ngx_http_finalize_request(r, NGX_DONE);     /* our reference */
        ngx_http_run_posted_requests(c);
        return;
    }

    t->done(t);

    ngx_http_run_posted_requests(c);
}


/* when the cell's timer looks again, "ran" ms into the cell */

static ngx_msec_t
ngx_http_pyexec_task_next(ngx_http_pyexec_task_t *t, uint64_t ran)
{
    ngx_msec_t                    next;
    ngx_http_pyexec_main_conf_t  *pmcf = ngx_http_pyexec_proc.pmcf;

    next = t->timeout - ran;

    if (!t->demoted && pmcf->demote_after > ran) {
        next = ngx_min(next, pmcf->demote_after - ran);
    }

    return next;
}


/*
 * The time limit counts from the moment the cell starts (it may wait in
 * the queue behind other cells first).  At the limit the ladder begins
 * (task_escalate()).
 */

static void
ngx_http_pyexec_task_timer(ngx_event_t *ev)
{
    uint64_t                      started, now;
    ngx_http_pyexec_task_t       *t = ev->data;
    ngx_http_pyexec_main_conf_t  *pmcf = ngx_http_pyexec_proc.pmcf;

    ngx_memory_barrier();

    if (t->finished) {
        return;   /* the completion event is on its way */
    }

    started = t->started_ms;

    if (started == 0) {
        ngx_add_timer(ev, ngx_min(ngx_http_pyexec_task_next(t, 0), 1000));
        return;
    }

    now = ngx_http_pyexec_interp_now_ms();

    if (t->kill_reason == 0) {

        if (!t->demoted && pmcf->demote_after
            && now - started >= pmcf->demote_after)
        {
            t->demoted = 1;
            ngx_http_pyexec_interp_demote(t->seq, ev->log);
        }

        if (now - started < t->timeout) {
            ngx_add_timer(ev, ngx_http_pyexec_task_next(t, now - started));
            return;
        }

        t->kill_reason = NGX_HTTP_PYEXEC_KILL_TIMEOUT;
        t->ladder_ms = started + t->timeout;
        ngx_http_pyexec_proc.timeouts++;
    }

    ngx_http_pyexec_task_escalate(t, now, ev->log);
}


/*
 * The ladder, from t->ladder_ms (the time limit, or an interrupt): the
 * exception, raised once where the cell is (code may catch it and clean
 * up); pyexec_interrupt_grace later, the same exception at every line and
 * call of the cell's frames, inside except and finally blocks too
 * (interp.c's stopper), sent again every 250 ms to break blocking calls;
 * pyexec_kill_grace after the first stage, a cell still running is stuck
 * in C code and the worker is recycled.  Each stage is logged once.
 */

static void
ngx_http_pyexec_task_escalate(ngx_http_pyexec_task_t *t, uint64_t now,
    ngx_log_t *log)
{
    uint64_t                      past;
    ngx_uint_t                    stage;
    ngx_http_pyexec_main_conf_t  *pmcf = ngx_http_pyexec_proc.pmcf;
    static const char            *why[] = {
        "", "ran past its time limit", "was interrupted", "is stopping"
    };

    past = now > t->ladder_ms ? now - t->ladder_ms : 0;

    if (past >= pmcf->kill_grace) {
        ngx_http_pyexec_task_recycle(t, log);
        return;
    }

    stage = past >= pmcf->interrupt_grace ? NGX_HTTP_PYEXEC_STAGE_TRACE
                                          : NGX_HTTP_PYEXEC_STAGE_EXCEPTION;

    if (stage == NGX_HTTP_PYEXEC_STAGE_EXCEPTION && t->kill_stage == stage) {
        /* raised once: the next stage is due at the grace */
        ngx_add_timer(&t->timer, pmcf->interrupt_grace - past);
        return;
    }

    if (stage != t->kill_stage) {
        t->kill_stage = stage;

        if (stage == NGX_HTTP_PYEXEC_STAGE_EXCEPTION) {
            ngx_log_error(NGX_LOG_INFO, log, 0,
                          "pyexec: cell %ui %s: raising %s", t->seq,
                          why[t->kill_reason],
                          t->kill_reason == NGX_HTTP_PYEXEC_KILL_TIMEOUT
                          ? "TimeoutError" : "KeyboardInterrupt");

        } else {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "pyexec: cell %ui still runs %uL ms after it %s: "
                          "raising at every line", t->seq, past,
                          why[t->kill_reason]);
        }
    }

    ngx_http_pyexec_interp_interrupt(t->seq, t->kill_reason, stage);

    ngx_add_timer(&t->timer,
                  stage == NGX_HTTP_PYEXEC_STAGE_EXCEPTION
                  ? pmcf->interrupt_grace - past
                  : ngx_min(250, pmcf->kill_grace - past));
}


/*
 * POST /sessions/{id}/interrupt: the ladder for the session's running
 * cell, from KeyboardInterrupt, now.  0: nothing of it is running (a cell
 * still queued is not interrupted).
 */

ngx_uint_t
ngx_http_pyexec_task_interrupt(ngx_http_pyexec_session_t *s)
{
    ngx_http_pyexec_task_t  *t;

    t = ngx_http_pyexec_task_running(s);

    if (t == NULL || t->abandoned) {
        return 0;
    }

    if (t->kill_reason) {
        return 1;               /* already on its ladder */
    }

    if (t->timer.timer_set) {
        ngx_del_timer(&t->timer);
    }

    t->kill_reason = NGX_HTTP_PYEXEC_KILL_INTERRUPT;
    t->ladder_ms = ngx_http_pyexec_interp_now_ms();

    ngx_http_pyexec_task_escalate(t, t->ladder_ms, t->log);

    return 1;
}


/* a stuck cell is recycling this worker: nothing new is queued */

ngx_uint_t
ngx_http_pyexec_task_recycling(void)
{
    return ngx_http_pyexec_proc.stopping == NGX_HTTP_PYEXEC_STOP_RECYCLE;
}


/* "termination": {"reason", "stage"}; stage 0: null (not the ladder) */

void
ngx_http_pyexec_task_termination(ngx_http_pyexec_json_t *j,
    ngx_http_pyexec_end_e end, ngx_uint_t stage)
{
    static const char  *stages[] = { "", "exception", "trace", "recycle" };

    ngx_http_pyexec_json_key(j, "termination");
    ngx_http_pyexec_json_map_open(j);
    ngx_http_pyexec_json_key(j, "reason");
    ngx_http_pyexec_json_cstr(j, ngx_http_pyexec_task_reasons[end]);
    ngx_http_pyexec_json_key(j, "stage");

    if (stage) {
        ngx_http_pyexec_json_cstr(j, stages[stage]);

    } else {
        ngx_http_pyexec_json_null(j);
    }

    ngx_http_pyexec_json_map_close(j);
}


/*
 * A cell stuck in C code past its kill grace: the interpreter thread is
 * lost to this worker.  Every request task still in flight (the stuck
 * cell: 504; those queued behind it: 503) is answered now but stays
 * blocked, with a reference of ours, because the thread may still write
 * into its r->pool memory; the late completion releases it.  Then the
 * worker drains: no new connections (ngx_quit in a worker: core's
 * graceful shutdown; in a single process its listeners are closed here,
 * as core's quit would not wait), its other requests finish, and once
 * nothing but the abandoned requests is left, or at the deadline, it
 * exits and the master starts a fresh one.  If the stuck cell returns
 * before that, the worker leaves as any worker does on QUIT.
 */

static void
ngx_http_pyexec_task_recycle(ngx_http_pyexec_task_t *stuck, ngx_log_t *log)
{
    ngx_queue_t             *q;
    ngx_http_request_t      *r;
    ngx_core_conf_t         *ccf;
    ngx_http_pyexec_task_t  *t;

    ngx_log_error(NGX_LOG_ALERT, log, 0,
                  "pyexec: cell %ui did not stop %M ms after its %s "
                  "(stuck in C code), recycling the worker",
                  stuck->seq, ngx_http_pyexec_proc.pmcf->kill_grace,
                  stuck->kill_reason == NGX_HTTP_PYEXEC_KILL_INTERRUPT
                  ? "interrupt" : "time limit");

    ngx_http_pyexec_proc.stopping = NGX_HTTP_PYEXEC_STOP_RECYCLE;
    ngx_http_pyexec_placement_leave();      /* no new session comes here */
    stuck->stuck = 1;
    ngx_http_pyexec_stuck_session = stuck->session;

    for (q = ngx_queue_head(&ngx_http_pyexec_tasks);
         q != ngx_queue_sentinel(&ngx_http_pyexec_tasks);
         q = ngx_queue_next(q))
    {
        t = ngx_queue_data(q, ngx_http_pyexec_task_t, queue);

        if (t->abandoned) {
            continue;
        }

        t->abandoned = 1;

        if (t->timer.timer_set) {
            ngx_del_timer(&t->timer);
        }

        /*
         * still blocked (the thread may write into the task), but no
         * longer waiting for it: r->aio would hold the answer back
         */

        r = t->r;
        r->aio = 0;
        r->keepalive = 0;
        r->main->count++;       /* released by the late completion */

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                       "pyexec abandoning cell %ui%s", t->seq,
                       t->stuck ? " (stuck)" : " (queued)");

        t->done(t);
        ngx_http_run_posted_requests(r->connection);
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);

    ngx_http_pyexec_drain_deadline = ngx_current_msec
                                     + (ccf->shutdown_timeout
                                        ? ccf->shutdown_timeout
                                        : NGX_HTTP_PYEXEC_DRAIN_MAX);

    if (ngx_process == NGX_PROCESS_WORKER) {
        ngx_quit = 1;

    } else {
        ngx_close_listening_sockets((ngx_cycle_t *) ngx_cycle);
        ngx_close_idle_connections((ngx_cycle_t *) ngx_cycle);
    }

    /* not cancelable: the worker's event loop stays until this says so */

    ngx_http_pyexec_drain_event.handler = ngx_http_pyexec_task_drain;
    ngx_http_pyexec_drain_conn.fd = (ngx_socket_t) -1;
    ngx_http_pyexec_drain_event.data = &ngx_http_pyexec_drain_conn;
    ngx_http_pyexec_drain_event.log = ngx_cycle->log;
    ngx_add_timer(&ngx_http_pyexec_drain_event, NGX_HTTP_PYEXEC_DRAIN_TICK);
}


static void
ngx_http_pyexec_task_drain(ngx_event_t *ev)
{
    ngx_uint_t               i, busy;
    ngx_queue_t             *q;
    ngx_connection_t        *c;
    ngx_http_pyexec_task_t  *t;

    /*
     * an abandoned request keeps its connection open until the thread lets
     * go of it: once its answer is out, the client gets EOF at least
     */

    for (q = ngx_queue_head(&ngx_http_pyexec_tasks);
         q != ngx_queue_sentinel(&ngx_http_pyexec_tasks);
         q = ngx_queue_next(q))
    {
        t = ngx_queue_data(q, ngx_http_pyexec_task_t, queue);
        c = t->r->connection;

        if (t->abandoned && !t->shut && !c->buffered && !c->error) {
            t->shut = 1;

            if (ngx_shutdown_socket(c->fd, NGX_WRITE_SHUTDOWN) == -1) {
                ngx_log_error(NGX_LOG_INFO, c->log, ngx_socket_errno,
                              ngx_shutdown_socket_n " failed");
            }
        }
    }

    /*
     * connections other than listeners, the channel, and abandoned
     * requests whose answer is out
     */

    busy = 0;
    c = ngx_cycle->connections;

    for (i = 0; i < ngx_cycle->connection_n; i++, c++) {

        if (c->fd == (ngx_socket_t) -1 || c->fd == ngx_channel
            || (c->read && c->read->channel)    /* front.c's socketpair */
            || (c->listening && c->listening->connection == c))
        {
            continue;
        }

        for (q = ngx_queue_head(&ngx_http_pyexec_tasks);
             q != ngx_queue_sentinel(&ngx_http_pyexec_tasks);
             q = ngx_queue_next(q))
        {
            t = ngx_queue_data(q, ngx_http_pyexec_task_t, queue);

            if (t->r->connection == c) {
                break;
            }
        }

        /* an abandoned request counts while its answer is being sent */

        if (q == ngx_queue_sentinel(&ngx_http_pyexec_tasks) || c->buffered) {
            busy++;
        }
    }

    if (busy && (ngx_msec_int_t) (ngx_http_pyexec_drain_deadline
                                  - ngx_current_msec) > 0)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                       "pyexec drain: %ui connections busy", busy);

        ngx_add_timer(ev, NGX_HTTP_PYEXEC_DRAIN_TICK);
        return;
    }

    if (ngx_queue_empty(&ngx_http_pyexec_tasks)) {
        ngx_log_error(NGX_LOG_NOTICE, ev->log, 0,
                      "pyexec: the stuck cell returned, the worker exits");

        if (ngx_process != NGX_PROCESS_WORKER) {
            ngx_quit = 1;       /* the thread is free: core's quit is safe */
        }

        return;
    }

    /*
     * nothing is left but requests the stuck thread still holds (or the
     * deadline passed, cutting "busy" connections): core's exit would wait
     * for that thread for ever in the thread pool's exit handler
     */

    ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                  "pyexec: worker exits to be replaced (%ui connections "
                  "cut)", busy);

    ngx_http_pyexec_interp_checkpoint_rescue(ngx_http_pyexec_stuck_session,
                                             NGX_HTTP_PYEXEC_RESCUE_WAIT);

    ngx_http_pyexec_socket_exit_process();

    _exit(1);
}
