
/*
 * Copyright (C) pyexec authors
 *
 * Executions over HTTP: a cell's events as Server-Sent Events while it
 * runs ("stream": true), GET /executions/{id} (its reply, 202 while it
 * runs) and GET /executions/{id}/events (the events again from
 * Last-Event-ID, then live).  A stream follows its execution's journal:
 * every NGX_HTTP_PYEXEC_STREAM_TICK it sends what the cell wrote since,
 * from a buffer of its own refilled each time the client has taken it
 * (up to a burst a tick, and at once when the socket can take more); a
 * client that takes nothing for send_timeout is dropped, and the
 * cell goes on.  The interpreter never waits for a stream.
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_journal.h"
#include "ngx_http_pyexec_json.h"
#include "ngx_http_pyexec_metrics.h"
#include "ngx_http_pyexec_reply.h"
#include "ngx_http_pyexec_route.h"
#include "ngx_http_pyexec_stream.h"
#include "ngx_http_pyexec_task.h"

#include <sys/socket.h>


#define NGX_HTTP_PYEXEC_STREAM_TICK  50            /* ms */
#define NGX_HTTP_PYEXEC_STREAM_BUF   (64 * 1024)   /* bytes in flight */
#define NGX_HTTP_PYEXEC_STREAM_BURST 16            /* buffers a flush */


typedef struct {
    ngx_http_request_t          *r;
    ngx_http_pyexec_exec_t      *exec;
    size_t                       sent;        /* of the events text */
    ngx_event_t                  tick;
    ngx_chain_t                 *free;
    ngx_chain_t                 *busy;
    unsigned                     owner:1;     /* POST /execute's request */
    unsigned                     dropped:1;   /* the client took nothing */
    unsigned                     last:1;      /* the last byte is out */
} ngx_http_pyexec_watch_t;


static void ngx_http_pyexec_stream_tick(ngx_event_t *ev);
static void ngx_http_pyexec_stream_untick(ngx_http_pyexec_watch_t *w);
static void ngx_http_pyexec_stream_write(ngx_http_request_t *r);
static ngx_int_t ngx_http_pyexec_stream_flush(ngx_http_pyexec_watch_t *w);
static void ngx_http_pyexec_stream_drop(ngx_http_pyexec_watch_t *w);
static void ngx_http_pyexec_stream_cleanup(void *data);
static ngx_http_pyexec_watch_t *ngx_http_pyexec_stream_watch(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_pyexec_stream_missing(ngx_http_request_t *r,
    ngx_str_t *id);


static ngx_str_t  ngx_http_pyexec_sse = ngx_string("text/event-stream");


/*
 * The answer of request r becomes the events of execution e from offset
 * from.  owner: r is the cell's own POST /execute, which stays blocked
 * until the cell ends (stream_end() finishes it); else the caller
 * returns NGX_DONE and the stream ends the request after the result.
 */

ngx_int_t
ngx_http_pyexec_stream_start(ngx_http_request_t *r, ngx_http_pyexec_exec_t *e,
    size_t from, ngx_uint_t owner)
{
    ngx_int_t                 rc;
    ngx_pool_cleanup_t       *cln;
    ngx_http_pyexec_watch_t  *w;

    static ngx_str_t  cache = ngx_string("Cache-Control");
    static ngx_str_t  accel = ngx_string("X-Accel-Buffering");

    w = ngx_pcalloc(r->pool, sizeof(ngx_http_pyexec_watch_t));
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (w == NULL || cln == NULL) {
        return NGX_ERROR;
    }

    w->r = r;
    w->exec = e;
    w->sent = from;
    w->owner = owner;
    w->tick.handler = ngx_http_pyexec_stream_tick;
    w->tick.data = w;
    w->tick.log = r->connection->log;
    w->tick.cancelable = 1;

    e->watchers++;
    cln->handler = ngx_http_pyexec_stream_cleanup;
    cln->data = w;

    /* no Content-Length: chunked; a front's proxy buffering off for it */

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = -1;
    r->headers_out.content_type = ngx_http_pyexec_sse;
    r->headers_out.content_type_len = ngx_http_pyexec_sse.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ngx_http_pyexec_add_header(r, &cache, (u_char *) "no-cache", 8)
           != NGX_OK
        || ngx_http_pyexec_add_header(r, &accel, (u_char *) "no", 2) != NGX_OK
        || ngx_http_pyexec_metrics_execution(r, e->id, e->id_len) != NGX_OK
        || ngx_http_pyexec_worker_header(r) != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK) {
        return NGX_ERROR;
    }

    r->write_event_handler = ngx_http_pyexec_stream_write;

    return ngx_http_pyexec_stream_flush(w) == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


/*
 * The owner's cell ended (its result is in the journal) and its request
 * is no longer blocked: the stream goes on as any other, in buffers of
 * NGX_HTTP_PYEXEC_STREAM_BUF, and finalizes the request after the result.
 */

void
ngx_http_pyexec_stream_end(ngx_http_request_t *r)
{
    ngx_http_pyexec_watch_t  *w;

    w = ngx_http_pyexec_stream_watch(r);

    if (w == NULL) {                /* its start failed */
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    if (w->dropped || r->connection->error) {
        ngx_http_pyexec_stream_untick(w);

        ngx_http_finalize_request(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);
        return;
    }

    w->owner = 0;

    if (ngx_http_pyexec_stream_flush(w) == NGX_ERROR) {
        ngx_http_finalize_request(r, NGX_ERROR);
    }
}


static void
ngx_http_pyexec_stream_tick(ngx_event_t *ev)
{
    ngx_http_pyexec_watch_t  *w = ev->data;
    ngx_connection_t         *c = w->r->connection;

    if (ngx_http_pyexec_stream_flush(w) == NGX_ERROR && !w->owner) {
        ngx_http_finalize_request(w->r, NGX_ERROR);
    }

    ngx_http_run_posted_requests(c);
}


/* the client's socket can take more (or send_timeout passed) */

static void
ngx_http_pyexec_stream_write(ngx_http_request_t *r)
{
    ngx_http_pyexec_watch_t  *w;

    w = ngx_http_pyexec_stream_watch(r);

    if (w == NULL || w->dropped) {
        return;
    }

    if (r->connection->write->timedout) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, NGX_ETIMEDOUT,
                      "pyexec: stream of execution \"%*s\": the client took "
                      "nothing for send_timeout, dropped", w->exec->id_len,
                      w->exec->id);
        ngx_http_pyexec_stream_drop(w);
        return;
    }

    if (ngx_http_pyexec_stream_flush(w) == NGX_ERROR && !w->owner) {
        ngx_http_finalize_request(r, NGX_ERROR);
    }
}


/*
 * Send what the journal holds past w->sent, a buffer at a time while the
 * client takes them (at most NGX_HTTP_PYEXEC_STREAM_BURST buffers a call,
 * then the next cycle of the event loop: one stream does not hold it); the
 * end of the stream once the result is out (not for the owner:
 * stream_end()).  NGX_ERROR: the request is to be ended.
 */

static ngx_int_t
ngx_http_pyexec_stream_flush(ngx_http_pyexec_watch_t *w)
{
    off_t                      sent;
    size_t                     n;
    ngx_int_t                  rc;
    ngx_uint_t                 i;
    ngx_buf_t                 *b;
    ngx_chain_t               *cl;
    ngx_connection_t          *c;
    ngx_http_request_t        *r = w->r;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;

    if (w->dropped || w->last || c->error) {
        return w->owner ? NGX_OK : NGX_ERROR;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    for (i = 0; i < NGX_HTTP_PYEXEC_STREAM_BURST; i++) {

        sent = c->sent;

        /* after the first buffer, the write just tried says it all */

        if (i == 0 && (w->busy || c->buffered)) {
            rc = ngx_http_output_filter(r, NULL);
            if (rc == NGX_ERROR) {
                return NGX_ERROR;
            }

            cl = NULL;
            ngx_chain_update_chains(r->pool, &w->free, &w->busy, &cl,
                                  (ngx_buf_tag_t) ngx_http_pyexec_stream_start);
        }

        if (w->busy || c->buffered) {
            /*
             * the client is slow: the journal keeps the rest meanwhile;
             * as nginx's send_timeout, the time between two writes that
             * move
             */

            if (!c->write->timer_set || c->sent > sent) {
                ngx_add_timer(c->write, clcf->send_timeout);
            }

            if (ngx_handle_write_event(c->write, clcf->send_lowat) != NGX_OK)
            {
                return NGX_ERROR;
            }

            break;
        }

        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }

        if (w->free) {
            cl = w->free;
            w->free = cl->next;
            cl->next = NULL;
            b = cl->buf;
            b->pos = b->start;
            b->last = b->start;

        } else {
            cl = ngx_alloc_chain_link(r->pool);
            b = ngx_create_temp_buf(r->pool, NGX_HTTP_PYEXEC_STREAM_BUF);
            if (cl == NULL || b == NULL) {
                return NGX_ERROR;
            }

            b->tag = (ngx_buf_tag_t) ngx_http_pyexec_stream_start;
            cl->buf = b;
            cl->next = NULL;
        }

        n = ngx_http_pyexec_journal_copy(w->exec, w->sent, b->pos,
                                         NGX_HTTP_PYEXEC_STREAM_BUF);
        b->last = b->pos + n;
        w->sent += n;
        b->flush = 1;

        if (!w->owner && !w->exec->running && w->sent >= w->exec->len) {
            b->last_buf = 1;
            b->last_in_chain = 1;
            w->last = 1;
        }

        if (n == 0 && !w->last) {
            cl->next = w->free;
            w->free = cl;
            break;                  /* all sent that the cell wrote yet */
        }

        rc = ngx_http_output_filter(r, cl);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        ngx_chain_update_chains(r->pool, &w->free, &w->busy, &cl,
                                (ngx_buf_tag_t) ngx_http_pyexec_stream_start);

        if (w->last) {
            ngx_http_finalize_request(r, rc);
            return NGX_OK;
        }
    }

    if (i == NGX_HTTP_PYEXEC_STREAM_BURST) {
        /* a whole burst taken: more in the next cycle, after the others */

        if (w->tick.timer_set) {
            ngx_del_timer(&w->tick);
        }

        if (!w->tick.posted) {
            ngx_post_event(&w->tick, &ngx_posted_next_events);
        }

    } else if (!w->tick.timer_set && !w->tick.posted) {
        ngx_add_timer(&w->tick, NGX_HTTP_PYEXEC_STREAM_TICK);
    }

    return NGX_OK;
}


/*
 * A client that took nothing for send_timeout: no more events for it.  A
 * stream of its own ends; the owner's request stays blocked by its cell,
 * so its socket is shut down, and the cell's completion ends it.
 */

static void
ngx_http_pyexec_stream_drop(ngx_http_pyexec_watch_t *w)
{
    ngx_connection_t  *c = w->r->connection;

    w->dropped = 1;
    c->timedout = 1;

    ngx_http_pyexec_stream_untick(w);

    if (!w->owner) {
        ngx_http_finalize_request(w->r, NGX_HTTP_REQUEST_TIME_OUT);
        return;
    }

    c->error = 1;
    (void) shutdown(c->fd, SHUT_RDWR);
}


/* a request's stream: the data of its pool's cleanup of ours */

static ngx_http_pyexec_watch_t *
ngx_http_pyexec_stream_watch(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t  *cln;

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler == ngx_http_pyexec_stream_cleanup) {
            return cln->data;
        }
    }

    return NULL;
}


/* no more ticks: neither the timer nor a burst's posted event */

static void
ngx_http_pyexec_stream_untick(ngx_http_pyexec_watch_t *w)
{
    if (w->tick.timer_set) {
        ngx_del_timer(&w->tick);
    }

    if (w->tick.posted) {
        ngx_delete_posted_event(&w->tick);
    }
}


static void
ngx_http_pyexec_stream_cleanup(void *data)
{
    ngx_http_pyexec_watch_t  *w = data;

    ngx_http_pyexec_stream_untick(w);

    w->exec->watchers--;
}


/*
 * GET /executions/{id}: the reply (202 {"status":"running"} while the
 * cell runs); GET /executions/{id}/events: its events from the one after
 * Last-Event-ID (or ?last_event_id=), then live, to the result.
 */

ngx_int_t
ngx_http_pyexec_executions_handler(ngx_http_request_t *r)
{
    ngx_int_t                  rc, last;
    ngx_str_t                  id, body, arg;
    ngx_uint_t                 events;
    ngx_table_elt_t           *h;
    ngx_http_pyexec_json_t     j;
    ngx_http_pyexec_exec_t    *e;
    ngx_http_core_loc_conf_t  *clcf;

    static ngx_str_t  suffix = ngx_string("/events");
    static ngx_str_t  last_id = ngx_string("Last-Event-ID");

    rc = ngx_http_pyexec_get_only(r);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    rc = ngx_http_pyexec_route_path_id(r, &clcf->name, &id, NULL);
    if (rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_OK) {
        return ngx_http_pyexec_send_detail(r, NGX_HTTP_NOT_FOUND,
                                           "Execution not found");
    }

    events = 0;

    if (id.len > suffix.len
        && ngx_strncmp(id.data + id.len - suffix.len, suffix.data,
                       suffix.len) == 0)
    {
        id.len -= suffix.len;
        events = 1;
    }

    e = ngx_http_pyexec_journal_find(id.data, id.len);
    if (e == NULL) {
        return ngx_http_pyexec_stream_missing(r, &id);
    }

    if (events) {
        last = 0;
        h = ngx_http_pyexec_header(&r->headers_in.headers, &last_id);

        if (h) {
            last = ngx_atoi(h->value.data, h->value.len);

        } else if (ngx_http_arg(r, (u_char *) "last_event_id", 13, &arg)
                   == NGX_OK)
        {
            last = ngx_atoi(arg.data, arg.len);
        }

        if (last == NGX_ERROR) {
            return ngx_http_pyexec_send_detail(r, NGX_HTTP_BAD_REQUEST,
                                               "Last-Event-ID is not an "
                                               "event id of this stream");
        }

        if (r->method == NGX_HTTP_HEAD) {
            r->headers_out.status = NGX_HTTP_OK;
            r->headers_out.content_type = ngx_http_pyexec_sse;
            r->headers_out.content_type_len = ngx_http_pyexec_sse.len;
            return ngx_http_send_header(r);
        }

        /* first: the stream of an ended cell may finalize r at once */
        r->main->count++;

        if (ngx_http_pyexec_stream_start(r, e,
                ngx_http_pyexec_journal_after(e, (ngx_uint_t) last), 0)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        return NGX_DONE;
    }

    if (e->running) {
        if (ngx_http_pyexec_json_init(&j) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_pyexec_json_map_open(&j);
        ngx_http_pyexec_json_kv(&j, "status", (u_char *) "running", 7);
        ngx_http_pyexec_json_kv(&j, "execution_id", e->id, e->id_len);
        ngx_http_pyexec_json_map_close(&j);

        return ngx_http_pyexec_send_json(r, NGX_HTTP_ACCEPTED, &j);
    }

    if (ngx_http_pyexec_journal_reply(e, &body) != NGX_OK) {
        return ngx_http_pyexec_send_detail(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                           "the reply could not be kept");
    }

    return ngx_http_pyexec_send(r, e->status, &body);
}


/* 404 with the reason: expired (one of this worker process's), unknown */

static ngx_int_t
ngx_http_pyexec_stream_missing(ngx_http_request_t *r, ngx_str_t *id)
{
    return ngx_http_pyexec_send_detail(r, NGX_HTTP_NOT_FOUND,
        ngx_http_pyexec_task_execution_past(id->data, id->len)
        ? "Execution expired: its journal is kept pyexec_journal_time "
          "after it ends, within pyexec_journal_max"
        : "Execution not found: unknown, or run by a worker process that "
          "has exited since");
}
