
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

#include <unistd.h>


static void ngx_http_pyexec_task_thread(void *data, ngx_log_t *log);
static void ngx_http_pyexec_task_server_thread(void *data, ngx_log_t *log);
static void ngx_http_pyexec_task_event(ngx_event_t *ev);
static void ngx_http_pyexec_task_timer(ngx_event_t *ev);
static void ngx_http_pyexec_task_exit(ngx_event_t *ev);


static ngx_event_t  ngx_http_pyexec_exit_event;


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

    return t;
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

    if (ngx_thread_task_post(pmcf->thread_pool, task) != NGX_OK) {
        return NGX_ERROR;
    }

    r->main->blocked++;
    r->aio = 1;

    if (t->op == NGX_HTTP_PYEXEC_OP_EXECUTE) {
        t->timer.handler = ngx_http_pyexec_task_timer;
        t->timer.data = t;
        t->timer.log = t->log;
        ngx_add_timer(&t->timer, t->timeout);
    }

    return NGX_OK;
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


static void
ngx_http_pyexec_task_server_thread(void *data, ngx_log_t *log)
{
    ngx_http_pyexec_interp_run(data);
}


static void
ngx_http_pyexec_task_thread(void *data, ngx_log_t *log)
{
    ngx_http_pyexec_task_t  *t = data;

    ngx_http_pyexec_interp_run(t);

    ngx_memory_barrier();
    t->finished = 1;
}


static void
ngx_http_pyexec_task_event(ngx_event_t *ev)
{
    ngx_http_pyexec_task_t  *t = ev->data;
    ngx_http_request_t      *r = t->r;

    if (t->timer.timer_set) {
        ngx_del_timer(&t->timer);
    }

    r->main->blocked--;
    r->aio = 0;

    ngx_http_pyexec_task_done(t);
}


/*
 * The time limit counts from the moment the cell starts (it may wait in
 * the queue behind other cells first).  At the limit the interpreter
 * thread gets a signal, again every second while the cell keeps running
 * (code that catches the exception); past the kill grace the worker is
 * recycled: only a process exit stops C code that never checks signals.
 */

static void
ngx_http_pyexec_task_timer(ngx_event_t *ev)
{
    uint64_t                      started, elapsed;
    ngx_http_pyexec_task_t       *t = ev->data;
    ngx_http_pyexec_main_conf_t  *pmcf = ngx_http_pyexec_proc.pmcf;

    ngx_memory_barrier();

    if (t->finished) {
        return;   /* the completion event is on its way */
    }

    started = t->started_ms;

    if (started == 0) {
        ngx_add_timer(ev, ngx_min(t->timeout, 1000));
        return;
    }

    elapsed = ngx_http_pyexec_interp_now_ms() - started;

    if (elapsed < t->timeout) {
        ngx_add_timer(ev, t->timeout - elapsed);
        return;
    }

    if (elapsed >= t->timeout + pmcf->kill_grace) {
        ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                      "pyexec: cell did not stop %M ms after its time "
                      "limit (stuck in C code), recycling the worker",
                      pmcf->kill_grace);

        t->stuck = 1;
        t->r->main->blocked--;
        t->r->aio = 0;

        ngx_http_pyexec_task_done(t);
        ngx_http_pyexec_task_recycle_worker(ev->log);
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "pyexec interrupting cell %ui after %uL ms",
                   t->seq, elapsed);

    if (!t->interrupted) {
        t->interrupted = 1;
        ngx_http_pyexec_proc.timeouts++;
    }

    ngx_http_pyexec_interp_interrupt(t->seq);

    ngx_add_timer(ev, ngx_min(1000, t->timeout + pmcf->kill_grace - elapsed));
}


/*
 * Exit the worker so that the master starts a fresh one.  The exit is a
 * moment later so that the answer already written reaches the client.
 * Exit code 1: the master respawns workers that exit with anything but 2.
 */

void
ngx_http_pyexec_task_recycle_worker(ngx_log_t *log)
{
    if (ngx_http_pyexec_proc.recycling) {
        return;
    }

    ngx_http_pyexec_proc.recycling = 1;

    /* not the request's log: the connection is gone by then */

    ngx_http_pyexec_exit_event.handler = ngx_http_pyexec_task_exit;
    ngx_http_pyexec_exit_event.log = ngx_cycle->log;
    ngx_add_timer(&ngx_http_pyexec_exit_event, 50);
}


static void
ngx_http_pyexec_task_exit(ngx_event_t *ev)
{
    ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                  "pyexec: worker exits to be replaced");

    _exit(1);
}
