
/*
 * Copyright (C) pyexec authors
 *
 * The content handlers: /health, /status, /execute, /sessions; body
 * collection, response sending, finalization.  HTTP statuses appear only
 * here.
 */


#include "ngx_http_pyexec_common.h"


static ngx_int_t ngx_http_pyexec_health(ngx_http_request_t *r);
static ngx_int_t ngx_http_pyexec_status(ngx_http_request_t *r);
static ngx_int_t ngx_http_pyexec_sessions(ngx_http_request_t *r);
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
static void ngx_http_pyexec_execute_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_pyexec_send(ngx_http_request_t *r,
    ngx_uint_t status, ngx_str_t *body);
static ngx_int_t ngx_http_pyexec_detail(ngx_http_request_t *r,
    ngx_uint_t status, const char *detail);
static ngx_int_t ngx_http_pyexec_gone(ngx_http_request_t *r);
static ngx_int_t ngx_http_pyexec_full(ngx_http_request_t *r);
static ngx_int_t ngx_http_pyexec_no_interpreter(ngx_http_request_t *r);
static void ngx_http_pyexec_finalize(ngx_http_request_t *r, ngx_int_t rc);
static size_t ngx_http_pyexec_rss(void);


static ngx_str_t  ngx_http_pyexec_healthy = ngx_string("{\"status\":\"healthy\"}");


ngx_int_t
ngx_http_pyexec_handler(ngx_http_request_t *r)
{
    ngx_http_pyexec_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_pyexec_module);

    switch (plcf->kind) {

    case NGX_HTTP_PYEXEC_HANDLER_HEALTH:
        return ngx_http_pyexec_health(r);

    case NGX_HTTP_PYEXEC_HANDLER_STATUS:
        return ngx_http_pyexec_status(r);

    case NGX_HTTP_PYEXEC_HANDLER_SESSIONS:
        return ngx_http_pyexec_sessions(r);

    case NGX_HTTP_PYEXEC_HANDLER_GATHER:
        return ngx_http_pyexec_gather(r);

    case NGX_HTTP_PYEXEC_HANDLER_UPLOAD:
        return ngx_http_pyexec_upload(r);

    case NGX_HTTP_PYEXEC_HANDLER_FILES:
        return ngx_http_pyexec_files(r);

    default: /* NGX_HTTP_PYEXEC_HANDLER_EXECUTE */
        return ngx_http_pyexec_post_body(r, ngx_http_pyexec_execute_body);
    }
}


/* POST only: read the body, then `done` runs; the content handler's rc */

ngx_int_t
ngx_http_pyexec_post_body(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt done)
{
    ngx_int_t  rc;

    if (r->method != NGX_HTTP_POST) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_pyexec_method_not_allowed(r);
    }

    rc = ngx_http_read_client_request_body(r, done);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


/* GET/HEAD only, body discarded: NGX_DECLINED to go on, else a final rc */

ngx_int_t
ngx_http_pyexec_get_only(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return ngx_http_pyexec_method_not_allowed(r);
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_pyexec_health(ngx_http_request_t *r)
{
    ngx_int_t  rc;

    rc = ngx_http_pyexec_get_only(r);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    return ngx_http_pyexec_send(r, NGX_HTTP_OK, &ngx_http_pyexec_healthy);
}


static ngx_int_t
ngx_http_pyexec_status(ngx_http_request_t *r)
{
    size_t       n;
    yajl_gen     g;
    ngx_int_t    rc;
    const char  *v;

    rc = ngx_http_pyexec_get_only(r);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    g = ngx_http_pyexec_json_gen();
    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    v = ngx_http_pyexec_interp_version();
    for (n = 0; v[n] && v[n] != ' '; n++) { /* void */ }

    yajl_gen_map_open(g);
    ngx_http_pyexec_json_kv(g, "status", (u_char *) "healthy", 7);
    ngx_http_pyexec_json_str(g, "worker");
    yajl_gen_integer(g, ngx_worker);
    ngx_http_pyexec_json_str(g, "pid");
    yajl_gen_integer(g, ngx_pid);
    ngx_http_pyexec_json_kv(g, "python", (u_char *) v, n);
    ngx_http_pyexec_json_str(g, "sessions");
    yajl_gen_integer(g, ngx_http_pyexec_proc.nsessions);
    ngx_http_pyexec_json_str(g, "uptime_s");
    yajl_gen_integer(g, ngx_time() - ngx_http_pyexec_proc.started);
    ngx_http_pyexec_json_str(g, "executions");
    yajl_gen_integer(g, ngx_http_pyexec_proc.executions);
    ngx_http_pyexec_json_str(g, "timeouts");
    yajl_gen_integer(g, ngx_http_pyexec_proc.timeouts);
    ngx_http_pyexec_json_str(g, "interpreter_ready");
    yajl_gen_bool(g, ngx_http_pyexec_proc.ready);
    ngx_http_pyexec_json_str(g, "rss_bytes");
    yajl_gen_integer(g, ngx_http_pyexec_rss());
    yajl_gen_map_close(g);

    return ngx_http_pyexec_send_json(r, NGX_HTTP_OK, g);
}


static ngx_int_t
ngx_http_pyexec_sessions(ngx_http_request_t *r)
{
    u_char                    *p, *last;
    ngx_str_t                  id;
    ngx_int_t                  rc;
    ngx_http_core_loc_conf_t  *clcf;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    /* the id is taken from the raw URI: it may hold "%2F" and the like */

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    p = r->unparsed_uri.data;
    last = ngx_strlchr(p, p + r->unparsed_uri.len, '?');
    if (last == NULL) {
        last = p + r->unparsed_uri.len;
    }

    if ((size_t) (last - p) >= clcf->name.len
        && ngx_strncmp(p, clcf->name.data, clcf->name.len) == 0)
    {
        p += clcf->name.len;

    } else {
        p = r->uri.data + ngx_min(clcf->name.len, r->uri.len);
        last = r->uri.data + r->uri.len;
    }

    if (p < last && *p == '/') {
        p++;
    }

    if (p == last) {
        if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
            return ngx_http_pyexec_session_list(r);
        }

        if (r->method == NGX_HTTP_POST) {
            return ngx_http_pyexec_session_new(r);
        }

        return ngx_http_pyexec_method_not_allowed(r);
    }

    rc = ngx_http_pyexec_path_id(r->pool, p, last, &id);

    if (rc == NGX_DECLINED) {
        return ngx_http_pyexec_detail(r, NGX_HTTP_NOT_FOUND,
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

    return ngx_http_pyexec_method_not_allowed(r);
}


static ngx_int_t
ngx_http_pyexec_session_list(ngx_http_request_t *r)
{
    yajl_gen                    g;
    ngx_queue_t                *q;
    ngx_http_pyexec_session_t  *s;

    g = ngx_http_pyexec_json_gen();
    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    yajl_gen_map_open(g);
    ngx_http_pyexec_json_str(g, "sessions");
    yajl_gen_array_open(g);

    for (q = ngx_queue_last(&ngx_http_pyexec_proc.lru);
         q != ngx_queue_sentinel(&ngx_http_pyexec_proc.lru);
         q = ngx_queue_prev(q))
    {
        s = ngx_queue_data(q, ngx_http_pyexec_session_t, lru);

        yajl_gen_map_open(g);
        ngx_http_pyexec_json_kv(g, "session_id", s->id, s->id_len);
        ngx_http_pyexec_json_str(g, "created_at");
        (void) ngx_http_pyexec_json_iso8601(g, s->created_at);
        ngx_http_pyexec_json_str(g, "last_used");
        (void) ngx_http_pyexec_json_iso8601(g, s->last_used);
        ngx_http_pyexec_json_str(g, "execution_count");
        yajl_gen_integer(g, s->execution_count);
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
    yajl_gen_map_close(g);

    return ngx_http_pyexec_send_json(r, NGX_HTTP_OK, g);
}


static ngx_int_t
ngx_http_pyexec_session_new(ngx_http_request_t *r)
{
    u_char                      minted[NGX_HTTP_PYEXEC_UUID_LEN];
    yajl_gen                    g;
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

    g = ngx_http_pyexec_json_gen();
    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    yajl_gen_map_open(g);
    ngx_http_pyexec_json_kv(g, "session_id", s->id, s->id_len);
    yajl_gen_map_close(g);

    return ngx_http_pyexec_send_json(r, NGX_HTTP_OK, g);
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

    ngx_http_pyexec_session_mint(minted);
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

    return ngx_http_pyexec_detail(r, NGX_HTTP_NOT_FOUND,
                                  "Session not found");
}


static ngx_int_t
ngx_http_pyexec_session_info(ngx_http_request_t *r, ngx_str_t *id)
{
    yajl_gen                    g;
    ngx_http_pyexec_task_t     *t;
    ngx_http_pyexec_session_t  *s;

    s = ngx_http_pyexec_session_find(id->data, id->len);
    if (s == NULL) {
        return ngx_http_pyexec_session_missing(r, id);
    }

    if (s->ns == NULL && s->pending == 0) {

        /* never ran code: nothing to ask the interpreter */

        g = ngx_http_pyexec_json_gen();
        if (g == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        yajl_gen_map_open(g);
        ngx_http_pyexec_json_kv(g, "session_id", s->id, s->id_len);
        ngx_http_pyexec_json_str(g, "variables");
        yajl_gen_array_open(g);
        yajl_gen_array_close(g);
        ngx_http_pyexec_json_str(g, "created_at");
        (void) ngx_http_pyexec_json_iso8601(g, s->created_at);
        yajl_gen_map_close(g);

        return ngx_http_pyexec_send_json(r, NGX_HTTP_OK, g);
    }

    t = ngx_http_pyexec_task_alloc(r->pool);
    if (t == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    t->op = NGX_HTTP_PYEXEC_OP_VARIABLES;
    t->r = r;
    t->log = r->connection->log;
    t->session = s;

    if (ngx_http_pyexec_task_post(t) != NGX_OK) {
        return ngx_http_pyexec_detail(r, NGX_HTTP_SERVICE_UNAVAILABLE,
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
    yajl_gen                    g;
    ngx_http_pyexec_session_t  *s;

    s = ngx_http_pyexec_session_find(id->data, id->len);
    if (s == NULL) {
        return ngx_http_pyexec_session_missing(r, id);
    }

    ngx_http_pyexec_session_remove(s);

    g = ngx_http_pyexec_json_gen();
    if (g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    yajl_gen_map_open(g);
    ngx_http_pyexec_json_kv(g, "message", (u_char *) "Session deleted", 15);
    yajl_gen_map_close(g);

    return ngx_http_pyexec_send_json(r, NGX_HTTP_OK, g);
}


static void
ngx_http_pyexec_execute_body(ngx_http_request_t *r)
{
    u_char                        minted[NGX_HTTP_PYEXEC_UUID_LEN];
    ngx_int_t                     rc;
    ngx_str_t                     body, err, sid;
    ngx_http_pyexec_task_t       *t;
    ngx_http_pyexec_request_t     req;
    ngx_http_pyexec_session_t    *s;
    ngx_http_pyexec_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_pyexec_module);

    if (ngx_http_pyexec_proc.failed) {
        ngx_http_pyexec_finalize(r, ngx_http_pyexec_no_interpreter(r));
        return;
    }

    if (ngx_http_pyexec_body(r, &body) != NGX_OK) {
        ngx_http_pyexec_finalize(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_str_null(&err);

    rc = ngx_http_pyexec_json_parse_request(r->pool, body.data, body.len,
                                            pmcf->json_max_depth, &req, &err);

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
        if (sid.data != minted && !ngx_http_pyexec_route_is_new(r)
            && ngx_http_pyexec_session_lost(sid.data, sid.len))
        {
            ngx_http_pyexec_finalize(r, ngx_http_pyexec_gone(r));
            return;
        }

        s = ngx_http_pyexec_session_create(sid.data, sid.len,
                                           r->connection->log);
        if (s == NULL) {
            ngx_http_pyexec_finalize(r, ngx_http_pyexec_full(r));
            return;
        }
    }

    if (s->pending >= pmcf->session_queue) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "pyexec: queue of session \"%*s\" is full (%ui)",
                      s->id_len, s->id, s->pending);
        ngx_http_pyexec_finalize(r,
            ngx_http_pyexec_detail(r, NGX_HTTP_TOO_MANY_REQUESTS,
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
    t->session = s;
    t->code = req.code.data;
    t->code_len = req.code.len;
    t->seq = ++ngx_http_pyexec_proc.seq;
    t->timeout = req.has_timeout ? ngx_min(req.timeout, pmcf->timeout_max)
                                 : pmcf->timeout;
    t->execution_count = s->execution_count + 1;

    if (ngx_http_pyexec_task_post(t) != NGX_OK) {
        ngx_http_pyexec_finalize(r,
            ngx_http_pyexec_detail(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                   "interpreter queue full"));
        return;
    }

    s->execution_count++;
    s->refs++;
    s->pending++;
    ngx_http_pyexec_session_touch(s);
    ngx_http_pyexec_proc.executions++;
}


/* completion of a request task, on the event loop */

void
ngx_http_pyexec_task_done(ngx_http_pyexec_task_t *t)
{
    ngx_int_t                   rc;
    yajl_gen                    g;
    ngx_http_request_t         *r = t->r;
    ngx_connection_t           *c = r->connection;
    ngx_http_pyexec_session_t  *s = t->session;

    s->pending--;
    ngx_http_pyexec_session_touch(s);

    g = t->gen;
    t->gen = NULL;

    if (c->error) {
        /* the client went away: the cell ran, its answer is dropped */

        if (g) {
            yajl_gen_free(g);
        }

        ngx_http_pyexec_session_release(s);
        ngx_http_pyexec_finalize(r, NGX_HTTP_CLIENT_CLOSED_REQUEST);
        ngx_http_run_posted_requests(c);
        return;
    }

    if (t->stuck) {
        rc = ngx_http_pyexec_detail(r, NGX_HTTP_GATEWAY_TIME_OUT,
                                    "execution could not be stopped; the "
                                    "worker is restarting and its sessions "
                                    "are lost");

    } else if (g) {
        rc = ngx_http_pyexec_send_json(r, t->status, g);

    } else if (t->status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        rc = ngx_http_pyexec_no_interpreter(r);

    } else {
        rc = ngx_http_pyexec_detail(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                    "internal error running the code");
    }

    ngx_http_pyexec_session_release(s);
    ngx_http_pyexec_finalize(r, rc);
    ngx_http_run_posted_requests(c);
}


ngx_int_t
ngx_http_pyexec_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    off_t         len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_set(body, "");

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        len += b->in_file ? b->file_last - b->file_pos : b->last - b->pos;
    }

    p = ngx_pnalloc(r->pool, len + 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            len = b->file_last - b->file_pos;
            n = ngx_read_file(b->file, p, len, b->file_pos);

            if (n != len) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "pyexec: short read of the request body "
                              "temp file (%z of %O)", n, len);
                return NGX_ERROR;
            }

            p += len;

        } else {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    *p = '\0';

    return NGX_OK;
}


static ngx_int_t
ngx_http_pyexec_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = body->len;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    if (ngx_http_pyexec_route_worker_header(r) != NGX_OK) {
        return NGX_ERROR;
    }

    if (body->len == 0) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_pyexec_send_json(ngx_http_request_t *r, ngx_uint_t status,
    yajl_gen g)
{
    ngx_str_t  body;

    if (ngx_http_pyexec_json_take(g, r->pool, &body) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "pyexec: yajl_gen_get_buf() failed");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_pyexec_send(r, status, &body);
}


static ngx_int_t
ngx_http_pyexec_detail(ngx_http_request_t *r, ngx_uint_t status,
    const char *detail)
{
    ngx_str_t  body;

    if (ngx_http_pyexec_json_detail(r->pool, detail, &body) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_pyexec_send(r, status, &body);
}


ngx_int_t
ngx_http_pyexec_method_not_allowed(ngx_http_request_t *r)
{
    return ngx_http_pyexec_detail(r, NGX_HTTP_NOT_ALLOWED,
                                  "Method Not Allowed");
}


/* a session id minted before this worker started: its session died */

static ngx_int_t
ngx_http_pyexec_gone(ngx_http_request_t *r)
{
    return ngx_http_pyexec_detail(r, NGX_HTTP_GONE,
                                  "session lost: worker restarted");
}


static ngx_int_t
ngx_http_pyexec_no_interpreter(ngx_http_request_t *r)
{
    return ngx_http_pyexec_detail(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "the Python interpreter failed to start");
}


/* pyexec_session_max reached and every session has work queued */

static ngx_int_t
ngx_http_pyexec_full(ngx_http_request_t *r)
{
    return ngx_http_pyexec_detail(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "session limit reached and no "
                                  "session is idle");
}


/* the one place a body-reading request is finalized */

static void
ngx_http_pyexec_finalize(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_finalize_request(r, rc);
}


static size_t
ngx_http_pyexec_rss(void)
{
    char     buf[64];
    ssize_t  n;
    ngx_fd_t fd;
    long     pages, resident;

    fd = ngx_open_file("/proc/self/statm", NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        return 0;
    }

    n = read(fd, buf, sizeof(buf) - 1);
    ngx_close_file(fd);

    if (n <= 0) {
        return 0;
    }

    buf[n] = '\0';

    if (sscanf(buf, "%ld %ld", &pages, &resident) != 2) {
        return 0;
    }

    return (size_t) resident * ngx_pagesize;
}
