
/*
 * Copyright (C) pyexec authors
 *
 * The front's short cut for cells: "pyexec_front UPSTREAM;" beside
 * "proxy_pass http://UPSTREAM;" in the front's location for /execute.
 * Once the body is read and its session id resolved (the same rules, and
 * the same variable, that the upstream hashes on), the worker the upstream
 * would pick is asked for, without connecting:
 *
 *   - this worker: the cell runs here, as the worker's own pyexec_execute
 *     would run it behind the socket, without a second HTTP request;
 *   - another worker of this host: the client's connection is handed to
 *     it (SCM_RIGHTS over a socketpair the master made for that worker)
 *     with the request as nginx read it, rebuilt; that worker replays the
 *     request into its own front server and serves the connection from
 *     then on, so a client's next cells of that session are local there;
 *   - anything else (another host, "async": true, a body over 64 KB, TLS,
 *     HTTP/2, PROXY protocol, a pipelined request, a worker that is not
 *     up, a full channel): proxy_pass, as without this directive.
 *
 * A worker that quits answers what is still in its channel with the 503
 * "retry shortly" a proxied request gets when its worker is gone.
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_front.h"
#include "ngx_http_pyexec_handler.h"
#include "ngx_http_pyexec_metrics.h"
#include "ngx_http_pyexec_placement.h"
#include "ngx_http_pyexec_route.h"
#include "ngx_http_pyexec_socket.h"

#include <sys/socket.h>


#define NGX_HTTP_PYEXEC_FRONT_MAX     (64 * 1024)   /* a request handed on */
#define NGX_HTTP_PYEXEC_FRONT_MAGIC   0x50595846    /* "PYXF" */
#define NGX_HTTP_PYEXEC_FRONT_BATCH   64            /* messages per event */

/* the route state of a request (route.c keeps it in the request ctx) */
#define NGX_HTTP_PYEXEC_FRONT_NEW      0
#define NGX_HTTP_PYEXEC_FRONT_READING  1
#define NGX_HTTP_PYEXEC_FRONT_READ     2
#define NGX_HTTP_PYEXEC_FRONT_WAITING  3
#define NGX_HTTP_PYEXEC_FRONT_PROXY    4
#define NGX_HTTP_PYEXEC_FRONT_LOCAL    5


typedef struct {
    uint32_t                     magic;
    uint32_t                     listening;   /* in cycle->listening */
    uint32_t                     len;         /* of the request after it */
} ngx_http_pyexec_front_msg_t;


/* what a handed-on connection has still to "read" of its first request */

typedef struct {
    u_char                      *pos;
    u_char                      *last;
} ngx_http_pyexec_front_replay_t;


typedef struct {
    ngx_uint_t                   n;          /* workers */
    ngx_socket_t               (*fds)[2];    /* [w][0] sends to w's [w][1] */
} ngx_http_pyexec_front_channels_t;


static ngx_int_t ngx_http_pyexec_front_handler(ngx_http_request_t *r);
static void ngx_http_pyexec_front_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_pyexec_front_route(ngx_http_request_t *r,
    ngx_uint_t *state, ngx_uint_t sync);
static ngx_int_t ngx_http_pyexec_front_decide(ngx_http_request_t *r);
static ngx_int_t ngx_http_pyexec_front_hand(ngx_http_request_t *r,
    ngx_uint_t w, ngx_str_t *id, ngx_uint_t minted);
static u_char *ngx_http_pyexec_front_request(ngx_http_request_t *r,
    u_char *p, u_char *last, ngx_str_t *id);
static ngx_uint_t ngx_http_pyexec_front_listed(ngx_str_t *name,
    ngx_str_t *list);
static void ngx_http_pyexec_front_close_channels(void *data);
static void ngx_http_pyexec_front_receive(ngx_event_t *rev);
static ngx_int_t ngx_http_pyexec_front_receive_one(ngx_socket_t s,
    ngx_uint_t adopt);
static void ngx_http_pyexec_front_adopt(ngx_socket_t fd, ngx_listening_t *ls,
    u_char *data, size_t len);
static ssize_t ngx_http_pyexec_front_replay(ngx_connection_t *c, u_char *buf,
    size_t size);
static void ngx_http_pyexec_front_refuse(ngx_socket_t fd);


static ngx_http_pyexec_front_channels_t   *ngx_http_pyexec_front_channels;
static ngx_connection_t                   *ngx_http_pyexec_front_channel;
static ngx_http_pyexec_front_replay_t    **ngx_http_pyexec_front_replays;
static u_char                             *ngx_http_pyexec_front_buf;


/*
 * The headers a handed-on request is rebuilt without; and, with the id
 * this front minted, the client's own (proxy_set_header replaces them).
 */

static ngx_str_t  ngx_http_pyexec_front_dropped[] = {
    ngx_string("Content-Length"),
    ngx_string("Transfer-Encoding"),      /* the body is read, de-chunked */
    ngx_string("Expect"),                 /* 100 Continue was sent */
    ngx_null_string
};

static ngx_str_t  ngx_http_pyexec_front_minted[] = {
    ngx_string("X-Session-Id"),
    ngx_string("X-Pyexec-New-Session"),
    ngx_null_string
};


char *
ngx_http_pyexec_front(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_pyexec_loc_conf_t *plcf = conf;

    ngx_str_t                    *value;
    ngx_url_t                     u;
    ngx_http_pyexec_main_conf_t  *pmcf;

    if (plcf->front) {
        return "is duplicate";
    }

    value = cf->args->elts;

    ngx_memzero(&u, sizeof(ngx_url_t));
    u.url = value[1];
    u.no_resolve = 1;

    plcf->front = ngx_http_upstream_add(cf, &u, 0);
    if (plcf->front == NULL) {
        return NGX_CONF_ERROR;
    }

    /* a front-only host runs nothing itself: no interpreter for this */

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_pyexec_module);
    pmcf->uses_front = 1;

    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_pyexec_front_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_pyexec_front_handler;

    return NGX_OK;
}


/*
 * The precontent phase of a pyexec_front location: the body is read
 * (nginx's own buffers, which proxy_pass then sends as they are), then
 * routed.  The body handler runs at once when the body is all there.
 */

static ngx_int_t
ngx_http_pyexec_front_handler(ngx_http_request_t *r)
{
    ngx_int_t                    rc;
    ngx_uint_t                  *state;
    ngx_http_pyexec_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_pyexec_module);

    if (plcf->front == NULL || r != r->main || r->method != NGX_HTTP_POST) {
        return NGX_DECLINED;
    }

    state = ngx_http_pyexec_route_front_state(r);
    if (state == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (*state != NGX_HTTP_PYEXEC_FRONT_NEW) {
        return *state == NGX_HTTP_PYEXEC_FRONT_PROXY ? NGX_DECLINED : NGX_DONE;
    }

    *state = NGX_HTTP_PYEXEC_FRONT_READING;

    rc = ngx_http_read_client_request_body(r, ngx_http_pyexec_front_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    if (*state == NGX_HTTP_PYEXEC_FRONT_READ) {
        return ngx_http_pyexec_front_route(r, state, 1);
    }

    *state = NGX_HTTP_PYEXEC_FRONT_WAITING;

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;
}


static void
ngx_http_pyexec_front_body(ngx_http_request_t *r)
{
    ngx_uint_t  *state;

    state = ngx_http_pyexec_route_front_state(r);

    if (state == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (*state == NGX_HTTP_PYEXEC_FRONT_READING) {
        *state = NGX_HTTP_PYEXEC_FRONT_READ;      /* the handler goes on */
        return;
    }

    (void) ngx_http_pyexec_front_route(r, state, 0);
}


/*
 * sync: called by the phase handler, the body's r->main->count++ still
 * held (as a content handler's would be until it returns NGX_DONE); else
 * from the body handler, the count already given back.
 */

static ngx_int_t
ngx_http_pyexec_front_route(ngx_http_request_t *r, ngx_uint_t *state,
    ngx_uint_t sync)
{
    ngx_int_t  rc;

    rc = ngx_http_pyexec_front_decide(r);

    switch (rc) {

    case NGX_OK:
        *state = NGX_HTTP_PYEXEC_FRONT_LOCAL;
        r->write_event_handler = ngx_http_request_empty_handler;

        ngx_http_pyexec_execute_body(r);

        if (sync) {
            ngx_http_finalize_request(r, NGX_DONE);
        }

        return NGX_DONE;

    case NGX_DECLINED:
        *state = NGX_HTTP_PYEXEC_FRONT_PROXY;

        if (sync) {
            r->main->count--;
            return NGX_DECLINED;
        }

        r->write_event_handler = ngx_http_core_run_phases;
        ngx_http_core_run_phases(r);

        return NGX_DONE;

    case NGX_DONE:
        /* handed on: closed here without a byte written */

        if (sync) {
            r->main->count--;
        }

        ngx_http_finalize_request(r, NGX_ERROR);

        return NGX_DONE;

    default:
        if (sync) {
            r->main->count--;
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);

        return NGX_DONE;
    }
}


/* NGX_OK: run here; NGX_DONE: handed on; NGX_DECLINED: proxy; NGX_ERROR */

static ngx_int_t
ngx_http_pyexec_front_decide(ngx_http_request_t *r)
{
    ngx_int_t                    w, self;
    ngx_str_t                    id;
    ngx_uint_t                   minted, async, i, adopted;
    ngx_http_pyexec_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_pyexec_module);

    if (ngx_http_pyexec_route_session(r, &id, &minted, &async) != NGX_OK) {
        return NGX_ERROR;
    }

    self = ngx_http_pyexec_socket_self();
    if (self < 0) {
        return NGX_DECLINED;            /* not a worker with a socket */
    }

    /*
     * "async": true is proxied: its 202 goes out early while the request
     * stays with its cell (handler.c), so the client's connection would
     * wait for the cell's end before it could carry the next request (the
     * poll); behind the proxy, the front's request ends with the 202
     */

    if (async) {
        return NGX_DECLINED;
    }

    w = ngx_http_pyexec_placement_target(r, plcf->front);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "pyexec front: \"%V\" goes to worker %i", &id, w);

    /* the first request of a connection handed here is not handed on */

    adopted = 0;

    if (ngx_http_pyexec_front_replays) {
        i = r->connection - ngx_cycle->connections;
        adopted = ngx_http_pyexec_front_replays[i] != NULL;
        ngx_http_pyexec_front_replays[i] = NULL;
    }

    if (w == self) {
        ngx_http_pyexec_route_local(r);
        ngx_http_pyexec_metrics.front_local++;
        return NGX_OK;
    }

    if (w < 0 || adopted || !plcf->handoff
        || ngx_http_pyexec_front_replays == NULL)
    {
        return NGX_DECLINED;
    }

    return ngx_http_pyexec_front_hand(r, w, &id, minted);
}


/*
 * Hand the client's connection to worker w: the request line, the headers
 * as parsed (less those the rebuilt body makes wrong), the session id
 * this front minted if the client sent none, the body; the descriptor
 * beside them.  NGX_DONE when sent, NGX_DECLINED to proxy instead.
 */

static ngx_int_t
ngx_http_pyexec_front_hand(ngx_http_request_t *r, ngx_uint_t w,
    ngx_str_t *id, ngx_uint_t minted)
{
    u_char                       *p, *last;
    ssize_t                       n;
    ngx_uint_t                    ls;
    ngx_chain_t                  *cl;
    struct iovec                  iov;
    struct msghdr                 msg;
    struct cmsghdr               *cm;
    ngx_connection_t             *c;
    ngx_http_request_body_t      *rb;
    ngx_http_pyexec_front_msg_t  *m;

    union {
        struct cmsghdr            cm;
        char                      space[CMSG_SPACE(sizeof(int))];
    } cmsg;

    c = r->connection;
    rb = r->request_body;

    if (ngx_http_pyexec_front_channels == NULL
        || w >= ngx_http_pyexec_front_channels->n
        || ngx_exiting || ngx_quit || ngx_terminate
        || !ngx_http_pyexec_placement_up(w))
    {
        return NGX_DECLINED;
    }

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        return NGX_DECLINED;
    }
#endif

#if (NGX_HTTP_V2)
    if (r->stream) {
        return NGX_DECLINED;
    }
#endif

    if (r->http_version < NGX_HTTP_VERSION_10
        || r->http_version >= NGX_HTTP_VERSION_20
        || c->proxy_protocol || r->http_connection->addr_conf->proxy_protocol
        || rb == NULL || rb->rest || rb->temp_file
        || r->header_in->pos != r->header_in->last)
    {
        return NGX_DECLINED;
    }

    /* a listening of the cycle (not socket.c's private copy): its index */

    if (c->listening < (ngx_listening_t *) ngx_cycle->listening.elts
        || c->listening >= (ngx_listening_t *) ngx_cycle->listening.elts
                           + ngx_cycle->listening.nelts)
    {
        return NGX_DECLINED;
    }

    ls = c->listening - (ngx_listening_t *) ngx_cycle->listening.elts;

    for (cl = rb->bufs; cl; cl = cl->next) {
        if (!ngx_buf_special(cl->buf) && !ngx_buf_in_memory_only(cl->buf)) {
            return NGX_DECLINED;
        }
    }

    /*
     * the worker's message buffer, also the receiving one: one event loop,
     * sendmsg() copies it, and a message received is copied out before
     * its connection is served
     */

    p = ngx_http_pyexec_front_buf;
    m = (ngx_http_pyexec_front_msg_t *) p;
    last = p + sizeof(ngx_http_pyexec_front_msg_t) + NGX_HTTP_PYEXEC_FRONT_MAX;

    p = ngx_http_pyexec_front_request(r, p + sizeof(*m), last,
                                      minted && !ngx_http_pyexec_route_is_new(r)
                                      ? id : NULL);
    if (p == NULL) {
        return NGX_DECLINED;            /* too large to hand on */
    }

    m->magic = NGX_HTTP_PYEXEC_FRONT_MAGIC;
    m->listening = (uint32_t) ls;
    m->len = (uint32_t) (p - (u_char *) m - sizeof(*m));

    ngx_memzero(&msg, sizeof(struct msghdr));
    ngx_memzero(&cmsg, sizeof(cmsg));

    iov.iov_base = (void *) m;
    iov.iov_len = p - (u_char *) m;

    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (caddr_t) &cmsg;
    msg.msg_controllen = sizeof(cmsg);

    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    ngx_memcpy(CMSG_DATA(cm), &c->fd, sizeof(int));

    n = sendmsg(ngx_http_pyexec_front_channels->fds[w][0], &msg,
                MSG_DONTWAIT|MSG_NOSIGNAL);

    if (n != (ssize_t) iov.iov_len) {
        /* a full channel (the worker is slow or gone): proxy this one */
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, ngx_socket_errno,
                       "pyexec front: sendmsg() to worker %ui failed", w);
        return NGX_DECLINED;
    }

    /*
     * The socket lives on in worker w.  Closing it here would not take it
     * out of this worker's epoll set (the file stays open there), so it
     * is taken out first; the other worker logs the request.
     */

    if (ngx_del_conn) {
        (void) ngx_del_conn(c, 0);

    } else {
        if (c->read->active) {
            (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
        }

        if (c->write->active) {
            (void) ngx_del_event(c->write, NGX_WRITE_EVENT, 0);
        }
    }

    r->logged = 1;
    r->keepalive = 0;
    ngx_http_pyexec_metrics.handoffs_sent++;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "pyexec front: connection handed to worker %ui", w);

    return NGX_DONE;
}


/* the request as the other worker's front reads it; NULL: over last */

static u_char *
ngx_http_pyexec_front_request(ngx_http_request_t *r, u_char *p, u_char *last,
    ngx_str_t *id)
{
    off_t              len;
    size_t             size;
    ngx_uint_t         i;
    ngx_list_part_t   *part;
    ngx_chain_t       *cl;
    ngx_table_elt_t   *h;

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        len += ngx_buf_size(cl->buf);
    }

    if (len > NGX_HTTP_PYEXEC_FRONT_MAX) {
        return NULL;
    }

    size = r->request_line.len + 2;

    if ((size_t) (last - p) < size) {
        return NULL;
    }

    p = ngx_cpymem(p, r->request_line.data, r->request_line.len);
    *p++ = CR; *p++ = LF;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash == 0) {
            continue;
        }

        if (ngx_http_pyexec_front_listed(&h[i].key,
                                         ngx_http_pyexec_front_dropped)
            || (id && ngx_http_pyexec_front_listed(&h[i].key,
                                                   ngx_http_pyexec_front_minted)))
        {
            continue;
        }

        size = h[i].key.len + 2 + h[i].value.len + 2;

        if ((size_t) (last - p) < size) {
            return NULL;
        }

        p = ngx_cpymem(p, h[i].key.data, h[i].key.len);
        *p++ = ':'; *p++ = ' ';
        p = ngx_cpymem(p, h[i].value.data, h[i].value.len);
        *p++ = CR; *p++ = LF;
    }

    if (id) {
        size = sizeof("X-Session-Id: \r\nX-Pyexec-New-Session: 1\r\n") - 1
               + id->len;

        if ((size_t) (last - p) < size) {
            return NULL;
        }

        p = ngx_sprintf(p, "X-Session-Id: %V\r\nX-Pyexec-New-Session: 1\r\n",
                        id);
    }

    size = sizeof("Content-Length: \r\n\r\n") - 1 + NGX_OFF_T_LEN + len;

    if ((size_t) (last - p) < size) {
        return NULL;
    }

    p = ngx_sprintf(p, "Content-Length: %O\r\n\r\n", len);

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (!ngx_buf_special(cl->buf)) {
            p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
        }
    }

    return p;
}


static ngx_uint_t
ngx_http_pyexec_front_listed(ngx_str_t *name, ngx_str_t *list)
{
    for ( /* void */ ; list->len; list++) {
        if (name->len == list->len
            && ngx_strncasecmp(name->data, list->data, list->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * The master, before it forks: a datagram socketpair per worker, kept
 * across the respawns of a worker (what was queued for a worker that died
 * is served by its successor); a reload makes new ones.
 */

ngx_int_t
ngx_http_pyexec_front_init_module(ngx_cycle_t *cycle)
{
    ngx_uint_t                         i, n;
    ngx_core_conf_t                   *ccf;
    ngx_pool_cleanup_t                *cln;
    ngx_http_pyexec_main_conf_t       *pmcf;
    ngx_http_pyexec_front_channels_t  *ch;

    pmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_pyexec_module);
    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (pmcf == NULL || !pmcf->uses_front || !pmcf->uses_python
        || pmcf->worker_socket.len == 0
        || !ccf->master || ccf->worker_processes < 2)
    {
        return NGX_OK;
    }

    n = ccf->worker_processes;

    ch = ngx_pcalloc(cycle->pool, sizeof(ngx_http_pyexec_front_channels_t));
    if (ch == NULL) {
        return NGX_ERROR;
    }

    ch->fds = ngx_palloc(cycle->pool, n * sizeof(ngx_socket_t[2]));
    if (ch->fds == NULL) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cycle->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_pyexec_front_close_channels;
    cln->data = ch;

    for (i = 0; i < n; i++) {
        if (socketpair(AF_UNIX, SOCK_DGRAM|SOCK_CLOEXEC, 0, ch->fds[i])
            == -1)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                          "pyexec: socketpair() for worker %ui failed", i);
            return NGX_ERROR;
        }

        ch->n = i + 1;

        if (ngx_nonblocking(ch->fds[i][1]) == -1) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                          ngx_nonblocking_n " failed");
            return NGX_ERROR;
        }
    }

    /* the cycle's own: a reload that fails leaves the old one's in place */

    pmcf->front_channels = ch;

    return NGX_OK;
}


static void
ngx_http_pyexec_front_close_channels(void *data)
{
    ngx_http_pyexec_front_channels_t  *ch = data;

    ngx_uint_t  i;

    for (i = 0; i < ch->n; i++) {
        (void) close(ch->fds[i][0]);
        (void) close(ch->fds[i][1]);
    }

    ch->n = 0;
}


ngx_int_t
ngx_http_pyexec_front_init_process(ngx_cycle_t *cycle)
{
    ngx_connection_t                  *c;
    ngx_http_pyexec_main_conf_t       *pmcf;
    ngx_http_pyexec_front_channels_t  *ch;

    pmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_pyexec_module);
    ch = pmcf ? pmcf->front_channels : NULL;

    if (ch == NULL || ngx_worker >= ch->n) {
        return NGX_OK;
    }

    ngx_http_pyexec_front_channels = ch;

    ngx_http_pyexec_front_replays = ngx_pcalloc(cycle->pool,
                            cycle->connection_n * sizeof(void *));
    ngx_http_pyexec_front_buf = ngx_palloc(cycle->pool,
                            sizeof(ngx_http_pyexec_front_msg_t)
                            + NGX_HTTP_PYEXEC_FRONT_MAX);

    if (ngx_http_pyexec_front_replays == NULL
        || ngx_http_pyexec_front_buf == NULL)
    {
        return NGX_ERROR;
    }

    c = ngx_get_connection(ch->fds[ngx_worker][1], cycle->log);
    if (c == NULL) {
        return NGX_ERROR;
    }

    c->type = SOCK_DGRAM;
    c->read->channel = 1;       /* not a client's: no "open socket left" */
    c->read->log = cycle->log;
    c->read->handler = ngx_http_pyexec_front_receive;

    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) == NGX_ERROR) {
        ngx_free_connection(c);
        return NGX_ERROR;
    }

    ngx_http_pyexec_front_channel = c;

    return NGX_OK;
}


/* in a fork()ed child of a worker (child.c): only close(), no socketpair */

void
ngx_http_pyexec_front_atfork(void)
{
    ngx_http_pyexec_front_channels_t  *ch = ngx_http_pyexec_front_channels;

    if (ch == NULL) {
        return;
    }

    ngx_http_pyexec_front_close_channels(ch);

    ngx_http_pyexec_front_channels = NULL;
    ngx_http_pyexec_front_channel = NULL;
}


/* a worker that quits: what is still queued for it is answered 503 */

void
ngx_http_pyexec_front_exit_process(void)
{
    ngx_uint_t         n;
    ngx_connection_t  *c = ngx_http_pyexec_front_channel;

    if (c == NULL) {
        return;
    }

    for (n = 0; n < 4096; n++) {
        if (ngx_http_pyexec_front_receive_one(c->fd, 0) == NGX_AGAIN) {
            break;
        }
    }

    /* the descriptor stays open for a successor; only the event goes */

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT, 0);
    }

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;
    ngx_http_pyexec_front_channel = NULL;
}


static void
ngx_http_pyexec_front_receive(ngx_event_t *rev)
{
    ngx_uint_t         n;
    ngx_connection_t  *c = rev->data;

    for (n = 0; n < NGX_HTTP_PYEXEC_FRONT_BATCH; n++) {
        if (ngx_http_pyexec_front_receive_one(c->fd, !ngx_exiting)
            == NGX_AGAIN)
        {
            break;
        }
    }
}


/* one message: NGX_OK (served or refused), NGX_AGAIN (none left) */

static ngx_int_t
ngx_http_pyexec_front_receive_one(ngx_socket_t s, ngx_uint_t adopt)
{
    int                           fds[4];
    ssize_t                       n;
    ngx_err_t                     err;
    ngx_uint_t                    i, nfds;
    struct iovec                  iov;
    struct msghdr                 msg;
    struct cmsghdr               *cm;
    ngx_listening_t              *ls;
    ngx_http_pyexec_front_msg_t   m;

    union {
        struct cmsghdr            cm;
        char                      space[CMSG_SPACE(sizeof(fds))];
    } cmsg;

    ngx_memzero(&msg, sizeof(struct msghdr));

    iov.iov_base = (void *) ngx_http_pyexec_front_buf;
    iov.iov_len = sizeof(ngx_http_pyexec_front_msg_t)
                  + NGX_HTTP_PYEXEC_FRONT_MAX;

    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = (caddr_t) &cmsg;
    msg.msg_controllen = sizeof(cmsg);

    n = recvmsg(s, &msg, MSG_DONTWAIT|MSG_CMSG_CLOEXEC);

    if (n == -1) {
        err = ngx_socket_errno;

        if (err != NGX_EAGAIN && err != NGX_EINTR) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, err,
                          "pyexec: recvmsg() from the front channel failed");
        }

        return NGX_AGAIN;
    }

    nfds = 0;

    for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS
            || cm->cmsg_len < CMSG_LEN(0))
        {
            continue;
        }

        for (i = 0; i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int)
                    && nfds < 4; i++)
        {
            ngx_memcpy(&fds[nfds++], CMSG_DATA(cm) + i * sizeof(int),
                       sizeof(int));
        }
    }

    ngx_memzero(&m, sizeof(m));

    if (n >= (ssize_t) sizeof(m)) {
        ngx_memcpy(&m, ngx_http_pyexec_front_buf, sizeof(m));
    }

    if (nfds != 1 || (msg.msg_flags & (MSG_TRUNC|MSG_CTRUNC))
        || n < (ssize_t) sizeof(m)
        || m.magic != NGX_HTTP_PYEXEC_FRONT_MAGIC
        || m.len != (size_t) n - sizeof(m)
        || m.listening >= ngx_cycle->listening.nelts)
    {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "pyexec: malformed message in the front channel "
                      "(%z bytes, %ui descriptors, flags %xd, magic %xD, "
                      "length %uD, listening %uD of %ui)", n, nfds,
                      msg.msg_flags, m.magic, m.len, m.listening,
                      ngx_cycle->listening.nelts);

        for (i = 0; i < nfds; i++) {
            (void) close(fds[i]);
        }

        return NGX_OK;
    }

    ls = (ngx_listening_t *) ngx_cycle->listening.elts + m.listening;

    if (!adopt || ls->handler != ngx_http_init_connection) {
        ngx_http_pyexec_front_refuse(fds[0]);
        return NGX_OK;
    }

    ngx_http_pyexec_front_adopt(fds[0], ls,
                                ngx_http_pyexec_front_buf + sizeof(m), m.len);

    return NGX_OK;
}


/*
 * A connection handed here: set up as ngx_event_accept() sets up one it
 * accepted on ls, then given to the http module, which reads the request
 * from the replay before it reads the socket.
 */

static void
ngx_http_pyexec_front_adopt(ngx_socket_t fd, ngx_listening_t *ls,
    u_char *data, size_t len)
{
    socklen_t                        socklen;
    ngx_log_t                       *log;
    ngx_event_t                     *rev, *wev;
    ngx_sockaddr_t                   sa;
    ngx_connection_t                *c;
    ngx_http_pyexec_front_replay_t  *rp;

    socklen = sizeof(ngx_sockaddr_t);

    if (getpeername(fd, &sa.sockaddr, &socklen) == -1) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, ngx_socket_errno,
                      "pyexec: a handed-on client is gone");
        (void) close(fd);
        return;
    }

    c = ngx_get_connection(fd, ngx_cycle->log);
    if (c == NULL) {
        ngx_http_pyexec_front_refuse(fd);
        return;
    }

    c->type = SOCK_STREAM;

#if (NGX_STAT_STUB)
    (void) ngx_atomic_fetch_add(ngx_stat_active, 1);
#endif

    c->pool = ngx_create_pool(ls->pool_size, ngx_cycle->log);
    if (c->pool == NULL) {
        goto failed;
    }

    if (socklen > (socklen_t) sizeof(ngx_sockaddr_t)) {
        socklen = sizeof(ngx_sockaddr_t);
    }

    c->sockaddr = ngx_palloc(c->pool, socklen);
    log = ngx_palloc(c->pool, sizeof(ngx_log_t));
    rp = ngx_palloc(c->pool, sizeof(ngx_http_pyexec_front_replay_t));

    if (c->sockaddr == NULL || log == NULL || rp == NULL) {
        goto failed;
    }

    rp->pos = ngx_pnalloc(c->pool, len);
    if (rp->pos == NULL) {
        goto failed;
    }

    rp->last = ngx_cpymem(rp->pos, data, len);

    ngx_memcpy(c->sockaddr, &sa, socklen);

    *log = ls->log;

    c->recv = ngx_http_pyexec_front_replay;
    c->send = ngx_send;
    c->recv_chain = ngx_recv_chain;
    c->send_chain = ngx_send_chain;

    c->log = log;
    c->pool->log = log;

    c->socklen = socklen;
    c->listening = ls;
    c->local_sockaddr = ls->sockaddr;
    c->local_socklen = ls->socklen;

#if (NGX_HAVE_UNIX_DOMAIN)
    if (c->sockaddr->sa_family == AF_UNIX) {
        c->tcp_nopush = NGX_TCP_NOPUSH_DISABLED;
        c->tcp_nodelay = NGX_TCP_NODELAY_DISABLED;
    }
#endif

    rev = c->read;
    wev = c->write;

    wev->ready = 1;
    rev->ready = 1;             /* the replay is there to read */

    rev->log = log;
    wev->log = log;

    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);
    c->start_time = ngx_current_msec;

    if (ls->addr_ntop) {
        c->addr_text.data = ngx_pnalloc(c->pool, ls->addr_text_max_len);
        if (c->addr_text.data == NULL) {
            goto failed;
        }

        c->addr_text.len = ngx_sock_ntop(c->sockaddr, c->socklen,
                                         c->addr_text.data,
                                         ls->addr_text_max_len, 0);
        if (c->addr_text.len == 0) {
            goto failed;
        }
    }

    log->data = NULL;
    log->handler = NULL;

    /*
     * Watched from now on: nginx adds a read event when a read finds
     * nothing, but the replay may hold all it reads before the answer, and
     * a client that goes away meanwhile must be seen (test_reading()).
     */

    if (ngx_add_event(rev, NGX_READ_EVENT,
                      (ngx_event_flags & NGX_USE_CLEAR_EVENT)
                      ? NGX_CLEAR_EVENT : NGX_LEVEL_EVENT)
        != NGX_OK)
    {
        goto failed;
    }

    ngx_http_pyexec_front_replays[c - ngx_cycle->connections] = rp;
    ngx_http_pyexec_metrics.handoffs_received++;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "pyexec front: *%uA handed here, %uz bytes",
                   c->number, len);

    ls->handler(c);

    return;

failed:

    /* as ngx_close_accepted_connection(); the client is told to retry */

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    ngx_http_pyexec_front_refuse(fd);

    if (c->pool) {
        ngx_destroy_pool(c->pool);
    }

#if (NGX_STAT_STUB)
    (void) ngx_atomic_fetch_add(ngx_stat_active, -1);
#endif
}


/* c->recv of a handed-on connection until its first request is read */

static ssize_t
ngx_http_pyexec_front_replay(ngx_connection_t *c, u_char *buf, size_t size)
{
    size_t                           n;
    ngx_http_pyexec_front_replay_t  *rp;

    rp = ngx_http_pyexec_front_replays[c - ngx_cycle->connections];

    n = rp ? ngx_min(size, (size_t) (rp->last - rp->pos)) : 0;

    if (n == 0) {
        c->recv = ngx_recv;
        return c->recv(c, buf, size);
    }

    buf = ngx_cpymem(buf, rp->pos, n);
    rp->pos += n;

    if (rp->pos == rp->last) {
        c->recv = ngx_recv;     /* the socket's own bytes come next */
    }

    c->read->ready = 1;

    return n;
}


/*
 * The answer a proxied cell gets when its worker is gone (the shipped
 * conf's $pyexec_unavailable for /execute), then close.
 */

static void
ngx_http_pyexec_front_refuse(ngx_socket_t fd)
{
    u_char  buf[256], *p;

    static const char  body[] =
        "{\"detail\":\"worker unavailable, retry shortly\","
        "\"termination\":{\"reason\":\"worker_lost\",\"stage\":null}}";

    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "pyexec: a connection handed to this worker could not be "
                  "served (it quits, or is out of connections): 503");

    p = ngx_snprintf(buf, sizeof(buf),
                     "HTTP/1.1 503 Service Unavailable" CRLF
                     "Content-Type: application/json" CRLF
                     "Content-Length: %uz" CRLF
                     "Connection: close" CRLF CRLF "%s",
                     sizeof(body) - 1, body);

    (void) send(fd, buf, p - buf, MSG_DONTWAIT|MSG_NOSIGNAL);
    (void) close(fd);
}
