
/*
 * Copyright (C) pyexec authors
 *
 * One unix socket per worker, so that a front can pin a session to the
 * worker that holds it (upstream hash ... consistent over the sockets).
 *
 * "pyexec_worker_socket unix:PATH;" names a "listen unix:PATH;" of the
 * server{} that serves the API.  Worker N listens on "PATH.N" with a
 * private copy of that listening (the copy carries the server{} config)
 * that nginx's cycle does not know about:
 *
 *   - binding: to a temporary name, then rename(2) over PATH.N, so a
 *     connecting front never finds the path missing, not even while a
 *     respawned or reloaded worker takes it over;
 *   - leaving: a worker that quits keeps accepting until a successor owns
 *     PATH.N (a different inode there) or half a second has passed, then
 *     accepts what is already queued and closes; it unlinks the path only
 *     while the path is still its own;
 *   - noticing the quit: the listening connection is marked idle, so
 *     nginx's ngx_close_idle_connections() calls its handler with
 *     c->close set when the worker starts shutting down.
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_socket.h"

#include <poll.h>
#include <sys/un.h>


#define NGX_HTTP_PYEXEC_HANDOVER_STEP   10
#define NGX_HTTP_PYEXEC_HANDOVER_MAX    500


typedef struct {
    ngx_listening_t              ls;
    ngx_connection_t            *c;
    ngx_event_t                  handover;
    ngx_msec_t                   waited;
    ino_t                        ino;
    dev_t                        dev;
    u_char                       path[sizeof(((struct sockaddr_un *) 0)
                                             ->sun_path)];
    u_char                       addr_text[sizeof("unix:")
                                           + sizeof(((struct sockaddr_un *) 0)
                                                    ->sun_path)];
} ngx_http_pyexec_socket_t;


static void ngx_http_pyexec_socket_accept(ngx_event_t *ev);
static void ngx_http_pyexec_socket_handover(ngx_event_t *ev);
static ngx_uint_t ngx_http_pyexec_socket_ours(ngx_http_pyexec_socket_t *ws);
static void ngx_http_pyexec_socket_close(ngx_http_pyexec_socket_t *ws,
    ngx_uint_t drain);


static ngx_http_pyexec_socket_t  *ngx_http_pyexec_socket;


/* the "listen unix:PATH" that pyexec_worker_socket names, or NULL */

ngx_listening_t *
ngx_http_pyexec_socket_template(ngx_cycle_t *cycle, ngx_str_t *tmpl)
{
    ngx_uint_t        i;
    ngx_listening_t  *ls;

    ls = cycle->listening.elts;

    for (i = 0; i < cycle->listening.nelts; i++) {
        if (ls[i].sockaddr->sa_family == AF_UNIX
            && ls[i].addr_text.len == tmpl->len
            && ngx_strncmp(ls[i].addr_text.data, tmpl->data, tmpl->len) == 0)
        {
            return &ls[i];
        }
    }

    ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                  "pyexec: \"pyexec_worker_socket %V\" names no \"listen\" "
                  "of any server", tmpl);

    return NULL;
}


ngx_int_t
ngx_http_pyexec_socket_init_process(ngx_cycle_t *cycle, ngx_str_t *tmpl)
{
    u_char                     tmp[sizeof(((struct sockaddr_un *) 0)
                                          ->sun_path)];
    size_t                     n;
    ngx_socket_t               fd;
    ngx_listening_t           *ls;
    struct stat                st;
    ngx_connection_t          *c;
    struct sockaddr_un        *sun, bind_to;
    ngx_http_pyexec_socket_t  *ws;

    ls = ngx_http_pyexec_socket_template(cycle, tmpl);
    if (ls == NULL) {
        return NGX_ERROR;
    }

    ws = ngx_pcalloc(cycle->pool, sizeof(ngx_http_pyexec_socket_t));
    if (ws == NULL) {
        return NGX_ERROR;
    }

    ws->ls = *ls;

    sun = ngx_pcalloc(cycle->pool, sizeof(struct sockaddr_un));
    if (sun == NULL) {
        return NGX_ERROR;
    }

    sun->sun_family = AF_UNIX;

    n = ngx_snprintf(ws->path, sizeof(ws->path) - 1, "%s.%ui",
                     ((struct sockaddr_un *) ls->sockaddr)->sun_path,
                     ngx_worker) - ws->path;

    if (n >= sizeof(ws->path) - 1
        || n + NGX_INT_T_LEN + 6 >= sizeof(sun->sun_path))
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "pyexec: worker socket path \"%V\" is too long", tmpl);
        return NGX_ERROR;
    }

    ws->path[n] = '\0';
    ngx_memcpy(sun->sun_path, ws->path, n + 1);

    (void) ngx_snprintf(tmp, sizeof(tmp), "%s.%P.tmp%Z", ws->path, ngx_pid);

    fd = ngx_socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd == (ngx_socket_t) -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "pyexec: socket() for \"%s\" failed", ws->path);
        return NGX_ERROR;
    }

    ngx_memzero(&bind_to, sizeof(struct sockaddr_un));
    bind_to.sun_family = AF_UNIX;
    ngx_memcpy(bind_to.sun_path, tmp, ngx_strlen(tmp) + 1);

    (void) unlink((char *) tmp);

    if (bind(fd, (struct sockaddr *) &bind_to, sizeof(bind_to)) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_socket_errno,
                      "pyexec: bind() to \"%s\" failed (is its directory "
                      "writable by the worker user?)", tmp);
        goto failed;
    }

    if (chmod((char *) tmp, 0666) == -1
        || listen(fd, ls->backlog) == -1
        || ngx_nonblocking(fd) == -1)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "pyexec: listening on \"%s\" failed", tmp);
        (void) unlink((char *) tmp);
        goto failed;
    }

    if (stat((char *) tmp, &st) == -1
        || rename((char *) tmp, (char *) ws->path) == -1)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "pyexec: rename() \"%s\" to \"%s\" failed",
                      tmp, ws->path);
        (void) unlink((char *) tmp);
        goto failed;
    }

    /* fstat() of a socket gives the sockfs inode, not the path's */

    ws->ino = st.st_ino;
    ws->dev = st.st_dev;

    c = ngx_get_connection(fd, cycle->log);
    if (c == NULL) {
        (void) unlink((char *) ws->path);
        goto failed;
    }

    ws->ls.fd = fd;
    ws->ls.sockaddr = (struct sockaddr *) sun;
    ws->ls.socklen = sizeof(struct sockaddr_un);
    ws->ls.connection = c;
    ws->ls.previous = NULL;
    ws->ls.addr_text.len = ngx_snprintf(ws->addr_text, sizeof(ws->addr_text),
                                        "unix:%s", ws->path)
                           - ws->addr_text;
    ws->ls.addr_text.data = ws->addr_text;
    ws->ls.log.data = &ws->ls.addr_text;

    c->type = SOCK_STREAM;
    c->listening = &ws->ls;
    c->log = &ws->ls.log;
    c->idle = 1;                /* told by ngx_close_idle_connections() */

    c->read->log = c->log;
    c->read->accept = 1;
    c->read->handler = ngx_http_pyexec_socket_accept;

    ws->c = c;
    ws->handover.handler = ngx_http_pyexec_socket_handover;
    ws->handover.data = ws;
    ws->handover.log = cycle->log;
    ws->handover.cancelable = 0;   /* keeps the worker until handed over */

    if (ngx_add_event(c->read, NGX_READ_EVENT, 0) == NGX_ERROR) {
        (void) unlink((char *) ws->path);
        ngx_free_connection(c);
        goto failed;
    }

    ngx_http_pyexec_socket = ws;

    ngx_log_error(NGX_LOG_INFO, cycle->log, 0,
                  "pyexec: worker %ui listens on unix:%s", ngx_worker,
                  ws->path);

    return NGX_OK;

failed:

    (void) ngx_close_socket(fd);

    return NGX_ERROR;
}


static void
ngx_http_pyexec_socket_accept(ngx_event_t *ev)
{
    ngx_connection_t          *c = ev->data;
    ngx_http_pyexec_socket_t  *ws = ngx_http_pyexec_socket;

    if (c->close) {
        /* the worker is quitting: keep serving until a successor binds */

        c->close = 0;
        c->idle = 0;

        if (!ws->handover.timer_set) {
            ngx_add_timer(&ws->handover, NGX_HTTP_PYEXEC_HANDOVER_STEP);
        }

        return;
    }

    ngx_event_accept(ev);
}


static void
ngx_http_pyexec_socket_handover(ngx_event_t *ev)
{
    ngx_http_pyexec_socket_t  *ws = ev->data;

    if (ngx_http_pyexec_socket_ours(ws)) {
        ws->waited += NGX_HTTP_PYEXEC_HANDOVER_STEP;

        if (ws->waited < NGX_HTTP_PYEXEC_HANDOVER_MAX && !ngx_terminate) {
            ngx_add_timer(ev, NGX_HTTP_PYEXEC_HANDOVER_STEP);
            return;
        }

        /* no successor (fewer workers after a reload): the path goes */

        (void) unlink((char *) ws->path);
    }

    ngx_http_pyexec_socket_close(ws, 1);
}


static ngx_uint_t
ngx_http_pyexec_socket_ours(ngx_http_pyexec_socket_t *ws)
{
    struct stat  st;

    return stat((char *) ws->path, &st) == 0
           && st.st_ino == ws->ino && st.st_dev == ws->dev;
}


/* accept what the backlog still holds, then close the listening socket */

static void
ngx_http_pyexec_socket_close(ngx_http_pyexec_socket_t *ws, ngx_uint_t drain)
{
    ngx_uint_t        n;
    struct pollfd     pfd;
    ngx_connection_t  *c = ws->c;

    if (c == NULL) {
        return;
    }

    for (n = 0; drain && n < 4096; n++) {
        pfd.fd = c->fd;
        pfd.events = POLLIN;
        pfd.revents = 0;

        if (poll(&pfd, 1, 0) != 1 || !(pfd.revents & POLLIN)) {
            break;
        }

        c->read->ready = 1;
        ngx_event_accept(c->read);
    }

    ngx_close_connection(c);
    ws->c = NULL;
}


/* this worker's number when it serves its socket, else -1 */

ngx_int_t
ngx_http_pyexec_socket_self(void)
{
    return ngx_http_pyexec_socket && ngx_http_pyexec_socket->c
           ? (ngx_int_t) ngx_worker : -1;
}


/*
 * The worker whose socket an upstream peer's name is ("unix:PATH.N" for
 * the template "unix:PATH"), or -1.
 */

ngx_int_t
ngx_http_pyexec_socket_worker(ngx_str_t *name)
{
    size_t                        len;
    ngx_int_t                     w;
    ngx_http_pyexec_main_conf_t  *pmcf;

    pmcf = ngx_http_pyexec_proc.pmcf;

    if (pmcf == NULL || pmcf->worker_socket.len == 0) {
        return -1;
    }

    len = pmcf->worker_socket.len;

    if (name->len < len + 2 || name->data[len] != '.'
        || ngx_strncmp(name->data, pmcf->worker_socket.data, len) != 0)
    {
        return -1;
    }

    w = ngx_atoi(name->data + len + 1, name->len - len - 1);

    return w == NGX_ERROR ? -1 : w;
}


void
ngx_http_pyexec_socket_exit_process(void)
{
    ngx_http_pyexec_socket_t  *ws = ngx_http_pyexec_socket;

    if (ws == NULL) {
        return;
    }

    if (ws->handover.timer_set) {
        ngx_del_timer(&ws->handover);
    }

    if (ws->c && ngx_http_pyexec_socket_ours(ws)) {
        (void) unlink((char *) ws->path);
    }

    /* no event loop is left to serve what is queued */
    ngx_http_pyexec_socket_close(ws, 0);

    ngx_http_pyexec_socket = NULL;
}
