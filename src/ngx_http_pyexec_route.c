
/*
 * Copyright (C) pyexec authors
 *
 * Routing: the variables a front server hashes on ($pyexec_session_id,
 * $pyexec_session_new) and logs ($pyexec_worker), the X-Session-Id and
 * X-Pyexec-New-Session headers a worker reads, and the gathering of every
 * worker's session list behind one GET /sessions.
 *
 * The id a front routes on is the id the worker uses, by the same rules in
 * the same order: a non-empty "session_id" string in the JSON body, else
 * the X-Session-Id header, else the {id} of a /sessions/{id} path.  When
 * there is none the front mints one and passes it on in X-Session-Id with
 * X-Pyexec-New-Session set, so the worker creates exactly that session.
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_json.h"
#include "ngx_http_pyexec_metrics.h"
#include "ngx_http_pyexec_placement.h"
#include "ngx_http_pyexec_reply.h"
#include "ngx_http_pyexec_route.h"
#include "ngx_http_pyexec_session.h"


/* a body the front parses whole (a cell it may run), at most this */
#define NGX_HTTP_PYEXEC_ROUTE_PARSE_MAX  (64 * 1024)


/* the module's request ctx: routing (front) and gathering (GET /sessions) */

typedef struct {
    ngx_str_t                    id;
    ngx_http_pyexec_request_t    req;         /* the body, parsed whole */
    ngx_uint_t                   n;
    ngx_uint_t                   done;
    ngx_str_t                   *bodies;
    ngx_uint_t                  *statuses;
    ngx_uint_t                   front;       /* front.c's route state */
    unsigned                     resolved:1;
    unsigned                     minted:1;
    unsigned                     local:1;     /* run by the front itself */
    unsigned                     async:1;     /* the body's "async": true */
    unsigned                     parse:1;     /* the front: parse it whole */
    unsigned                     parsed:1;    /* req: a valid request */
} ngx_http_pyexec_ctx_t;


static ngx_http_pyexec_ctx_t *ngx_http_pyexec_ctx(ngx_http_request_t *r);
static ngx_int_t ngx_http_pyexec_route_resolve(ngx_http_request_t *r,
    ngx_http_pyexec_ctx_t **ctxp);
static ngx_int_t ngx_http_pyexec_route_body_id(ngx_http_request_t *r,
    ngx_http_pyexec_ctx_t *ctx);
static ngx_int_t ngx_http_pyexec_route_exec_id(ngx_http_request_t *r,
    ngx_str_t *id);
static ngx_int_t ngx_http_pyexec_variable_session(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_pyexec_variable_worker(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_pyexec_gather_part(ngx_http_request_t *r,
    void *data, ngx_int_t rc);
static void ngx_http_pyexec_gather_resume(ngx_http_request_t *r);


static ngx_str_t  ngx_http_pyexec_x_session_id =
    ngx_string("X-Session-Id");
static ngx_str_t  ngx_http_pyexec_x_new_session =
    ngx_string("X-Pyexec-New-Session");


static ngx_http_variable_t  ngx_http_pyexec_vars[] = {

    { ngx_string("pyexec_session_id"), NULL,
      ngx_http_pyexec_variable_session, 0, 0, 0 },

    { ngx_string("pyexec_session_new"), NULL,
      ngx_http_pyexec_variable_session, 1, 0, 0 },

    { ngx_string("pyexec_worker"), NULL,
      ngx_http_pyexec_variable_worker, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_pyexec_route_add_variables(ngx_conf_t *cf)
{
    return ngx_http_pyexec_add_variables(cf, ngx_http_pyexec_vars);
}


/*
 * The X-Session-Id header of a worker request: NGX_OK with the id,
 * NGX_DECLINED when absent or empty, NGX_ERROR when too long, NGX_ABORT
 * when it is not UTF-8 or holds a control character (it could not be
 * written into a JSON answer, nor passed on in a header).
 */

ngx_int_t
ngx_http_pyexec_route_header_id(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_table_elt_t        *h;
    ngx_http_pyexec_ctx_t  *ctx;

    /* a cell the front runs itself: the id it routed on, as if passed */

    ctx = ngx_http_get_module_ctx(r, ngx_http_pyexec_module);

    if (ctx && ctx->local) {
        *id = ctx->id;
        return NGX_OK;
    }

    h = ngx_http_pyexec_header(&r->headers_in.headers,
                               &ngx_http_pyexec_x_session_id);

    if (h == NULL || h->value.len == 0) {
        return NGX_DECLINED;
    }

    if (h->value.len > NGX_HTTP_PYEXEC_SESSION_ID_MAX) {
        return NGX_ERROR;
    }

    if (!ngx_http_pyexec_id_is_valid(h->value.data, h->value.len)) {
        return NGX_ABORT;
    }

    *id = h->value;

    return NGX_OK;
}


/* the front minted the id of this request: create, never answer 410 */

ngx_uint_t
ngx_http_pyexec_route_is_new(ngx_http_request_t *r)
{
    ngx_http_pyexec_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_pyexec_module);

    if (ctx && ctx->local) {
        return ctx->minted;
    }

    return ngx_http_pyexec_header(&r->headers_in.headers,
                                  &ngx_http_pyexec_x_new_session)
           != NULL;
}


/* the id a front routes this request on (minted: made for it), and
 * whether the body asked for "async" */

ngx_int_t
ngx_http_pyexec_route_session(ngx_http_request_t *r, ngx_str_t *id,
    ngx_uint_t *minted, ngx_uint_t *async)
{
    ngx_http_pyexec_ctx_t  *ctx;

    ctx = ngx_http_pyexec_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ctx->parse = 1;

    if (ngx_http_pyexec_route_resolve(r, &ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    *id = ctx->id;
    *minted = ctx->minted;
    *async = ctx->async;

    return NGX_OK;
}


/* the front runs the cell itself: the worker's handler takes its id */

void
ngx_http_pyexec_route_local(ngx_http_request_t *r)
{
    ngx_http_pyexec_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_pyexec_module);

    if (ctx && ctx->resolved) {
        ctx->local = 1;
    }
}


/*
 * The body of a cell the front runs here, as the front parsed it: NGX_OK
 * with *req; NGX_DECLINED: the execute handler parses the body itself.
 */

ngx_int_t
ngx_http_pyexec_route_parsed(ngx_http_request_t *r,
    ngx_http_pyexec_request_t *req)
{
    ngx_http_pyexec_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_pyexec_module);

    if (ctx == NULL || !ctx->local || !ctx->parsed) {
        return NGX_DECLINED;
    }

    *req = ctx->req;

    return NGX_OK;
}


/* front.c's state of this request, kept in the ctx; NULL: no memory */

ngx_uint_t *
ngx_http_pyexec_route_front_state(ngx_http_request_t *r)
{
    ngx_http_pyexec_ctx_t  *ctx;

    ctx = ngx_http_pyexec_ctx(r);

    return ctx ? &ctx->front : NULL;
}


static ngx_http_pyexec_ctx_t *
ngx_http_pyexec_ctx(ngx_http_request_t *r)
{
    ngx_http_pyexec_ctx_t         *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_pyexec_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_pyexec_ctx_t));
        if (ctx == NULL) {
            return NULL;
        }

        ngx_http_set_ctx(r, ctx, ngx_http_pyexec_module);
    }

    return ctx;
}


static ngx_int_t
ngx_http_pyexec_route_resolve(ngx_http_request_t *r,
    ngx_http_pyexec_ctx_t **ctxp)
{
    u_char                 *p;
    ngx_int_t               rc;
    ngx_http_pyexec_ctx_t  *ctx;

    ctx = ngx_http_pyexec_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    *ctxp = ctx;

    if (ctx->resolved) {
        return NGX_OK;
    }

    rc = ngx_http_pyexec_route_body_id(r, ctx);

    if (rc == NGX_DECLINED) {
        /* a header id that is too long or not UTF-8 is not routed on:
         * the worker 422s */
        rc = ngx_http_pyexec_route_header_id(r, &ctx->id);
        if (rc == NGX_ERROR || rc == NGX_ABORT) {
            rc = NGX_DECLINED;
        }

        /* a front in front of this front minted it: still new */
        if (rc == NGX_OK && ngx_http_pyexec_route_is_new(r)) {
            ctx->minted = 1;
        }
    }

    if (rc == NGX_DECLINED) {
        rc = ngx_http_pyexec_route_path_id(r, NULL, &ctx->id, NULL);

        if (rc == NGX_ABORT) {
            rc = NGX_DECLINED;      /* not routed on: a new id */
        }
    }

    if (rc == NGX_DECLINED) {
        rc = ngx_http_pyexec_route_exec_id(r, &ctx->id);
    }

    if (rc == NGX_DECLINED) {
        p = ngx_pnalloc(r->pool, NGX_HTTP_PYEXEC_UUID_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        ngx_http_pyexec_session_mint(p, ngx_http_pyexec_placement_pick());
        ctx->id.data = p;
        ctx->id.len = NGX_HTTP_PYEXEC_UUID_LEN;
        ctx->minted = 1;
        rc = NGX_OK;
    }

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->resolved = 1;

    return NGX_OK;
}


/*
 * /executions/{execution_id}[/events]: the session its id names (after
 * "<16 hex digits>."), so that it goes where the session's cells went.
 */

static ngx_int_t
ngx_http_pyexec_route_exec_id(ngx_http_request_t *r, ngx_str_t *id)
{
    ngx_int_t   rc;
    ngx_str_t   executions = ngx_string("/executions");

    rc = ngx_http_pyexec_route_path_id(r, &executions, id, NULL);
    if (rc != NGX_OK) {
        return rc == NGX_ERROR ? NGX_ERROR : NGX_DECLINED;
    }

    if (id->len > 7
        && ngx_strncmp(id->data + id->len - 7, "/events", 7) == 0)
    {
        id->len -= 7;
    }

    if (id->len < 18 || id->data[16] != '.'
        || id->len - 17 > NGX_HTTP_PYEXEC_SESSION_ID_MAX)
    {
        return NGX_DECLINED;
    }

    id->data += 17;
    id->len -= 17;

    return NGX_OK;
}


/*
 * The body's "session_id", read with the worker's own parser (its
 * buffers as they are, or a body spilled to a temp file read whole); only
 * for a JSON body that nginx has read whole (proxy_request_buffering on).
 */

static ngx_int_t
ngx_http_pyexec_route_body_id(ngx_http_request_t *r,
    ngx_http_pyexec_ctx_t *ctx)
{
    off_t                         len;
    ngx_int_t                     rc;
    ngx_str_t                     body, err, *type;
    ngx_uint_t                    async;
    ngx_chain_t                  *cl;
    ngx_http_pyexec_request_t     req;
    ngx_http_pyexec_main_conf_t  *pmcf;

    ctx->async = 0;

    if (r->request_body == NULL || r->request_body->rest
        || r->request_body->bufs == NULL)
    {
        return NGX_DECLINED;
    }

    type = r->headers_in.content_type ? &r->headers_in.content_type->value
                                      : NULL;

    if (type && !(type->len >= 16
                  && ngx_strncasecmp(type->data,
                                     (u_char *) "application/json", 16) == 0))
    {
        return NGX_DECLINED;
    }

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_pyexec_module);

    /* in memory (the shipped conf's client_body_buffer_size): as it is */

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (cl->buf->in_file) {
            break;
        }

        len += cl->buf->last - cl->buf->pos;
    }

    /*
     * the front's body, small: parsed whole, kept for the execute handler
     * when the cell runs here (one parse, not two); an invalid one is
     * scanned below and parsed again there, where its 422 is built
     */

    if (cl == NULL && ctx->parse && len <= NGX_HTTP_PYEXEC_ROUTE_PARSE_MAX) {
        rc = ngx_http_pyexec_json_parse_chain(r->pool, r->request_body->bufs,
                                              pmcf->json_max_depth,
                                              &ctx->req);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        if (rc == NGX_OK) {
            ctx->parsed = 1;
            ctx->async = ctx->req.async;

            if (!ctx->req.has_session_id || ctx->req.session_id.len == 0) {
                return NGX_DECLINED;
            }

            ctx->id = ctx->req.session_id;
            return NGX_OK;
        }
    }

    if (cl == NULL) {
        rc = ngx_http_pyexec_json_route(r->pool, r->request_body->bufs,
                                        pmcf->json_max_depth,
                                        &req.session_id, &async);
        ctx->async = async;

        if (rc != NGX_OK) {
            return rc;
        }

        req.has_session_id = 1;

    } else {
        if (ngx_http_pyexec_body(r, &body) != NGX_OK) {
            return NGX_ERROR;
        }

        if (ngx_http_pyexec_json_parse_request(r->pool, body.data, body.len,
                                               pmcf->json_max_depth, &req,
                                               &err)
            == NGX_ERROR)
        {
            return NGX_ERROR;
        }

        ctx->async = req.async;
    }

    /* an invalid body is routed by the other rules; the worker says 422 */

    if (!req.has_session_id || req.session_id.len == 0
        || req.session_id.len > NGX_HTTP_PYEXEC_SESSION_ID_MAX)
    {
        return NGX_DECLINED;
    }

    ctx->id = req.session_id;

    return NGX_OK;
}


/*
 * The {id} of "<prefix>/{id}", unescaped, for the worker's /sessions
 * location (prefix: its name) and for the front (prefix NULL:
 * "/sessions").  It is taken from the raw URI, which may hold "%2F" and
 * the like; a URI that does not start with the prefix as sent (a rewrite)
 * is read from the normalised r->uri.  NGX_OK; NGX_DECLINED: no id (the
 * collection itself, or another path); NGX_ABORT: an id no session can
 * have (not UTF-8, a control character: it would go into a header and
 * into JSON); NGX_ERROR.
 */

ngx_int_t
ngx_http_pyexec_route_path_id(ngx_http_request_t *r, ngx_str_t *prefix,
    ngx_str_t *id, ngx_uint_t *action)
{
    u_char            *p, *last, *dst;
    ngx_str_t          sessions = ngx_string("/sessions");
    ngx_uint_t         i;
    static ngx_str_t   actions[] = {     /* NGX_HTTP_PYEXEC_ACTION_* - 1 */
        ngx_string("/rollback"), ngx_string("/interrupt")
    };

    if (prefix == NULL) {
        prefix = &sessions;
    }

    p = r->unparsed_uri.data;
    last = ngx_strlchr(p, p + r->unparsed_uri.len, '?');
    if (last == NULL) {
        last = p + r->unparsed_uri.len;
    }

    if ((size_t) (last - p) >= prefix->len
        && ngx_strncmp(p, prefix->data, prefix->len) == 0)
    {
        p += prefix->len;

    } else if (r->uri.len >= prefix->len
               && ngx_strncmp(r->uri.data, prefix->data, prefix->len) == 0)
    {
        p = r->uri.data + prefix->len;
        last = r->uri.data + r->uri.len;

    } else {
        return NGX_DECLINED;
    }

    if (p < last && *p == '/') {
        p++;

    } else if (p < last && prefix->len && prefix->data[prefix->len - 1] != '/')
    {
        return NGX_DECLINED;        /* "/sessionsX" */
    }

    if (p == last) {
        return NGX_DECLINED;
    }

    dst = ngx_pnalloc(r->pool, last - p + 1);
    if (dst == NULL) {
        return NGX_ERROR;
    }

    id->data = dst;
    ngx_unescape_uri(&dst, &p, last - p, 0);
    id->len = dst - id->data;

    /* POST /sessions/{id}/rollback, .../interrupt (ids may hold "/": only
     * for POST) */

    if (action) {
        *action = NGX_HTTP_PYEXEC_ACTION_NONE;
    }

    if (r->method == NGX_HTTP_POST) {
        for (i = 0; i < sizeof(actions) / sizeof(actions[0]); i++) {
            if (id->len > actions[i].len
                && ngx_strncmp(id->data + id->len - actions[i].len,
                               actions[i].data, actions[i].len) == 0)
            {
                id->len -= actions[i].len;

                if (action) {
                    *action = i + 1;
                }

                break;
            }
        }
    }

    if (!ngx_http_pyexec_id_is_valid(id->data, id->len)) {
        return NGX_ABORT;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "pyexec session id from the path: \"%*s\"",
                   id->len, id->data);

    return NGX_OK;
}


/* data 0: $pyexec_session_id; data 1: $pyexec_session_new, "1" when minted */

static ngx_int_t
ngx_http_pyexec_variable_session(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_pyexec_ctx_t         *ctx;

    /* logged after the answer: a request never routed has no id to mint */

    ctx = ngx_http_get_module_ctx(r, ngx_http_pyexec_module);

    if (r->header_sent && (ctx == NULL || !ctx->resolved)) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (ngx_http_pyexec_route_resolve(r, &ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    if (data == 0) {
        v->len = ctx->id.len;
        v->data = ctx->id.data;

    } else {
        v->len = ctx->minted ? 1 : 0;
        v->data = (u_char *) "1";
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_pyexec_variable_worker(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t  *w;

    w = ngx_http_pyexec_worker_name();

    v->len = w->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = w->data;

    return NGX_OK;
}


/*
 * GET /sessions behind a front: one in-memory subrequest per backend
 * (pyexec_sessions_gather lists their internal locations), answered with
 * the concatenation of their "sessions" arrays.  A backend that fails is
 * logged and left out, and the answer says "partial": true.
 */

ngx_int_t
ngx_http_pyexec_gather_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                     *uris;
    ngx_uint_t                     i;
    ngx_http_request_t            *sr;
    ngx_http_post_subrequest_t    *ps;
    ngx_http_pyexec_loc_conf_t    *plcf;
    ngx_http_pyexec_ctx_t         *ctx;

    rc = ngx_http_pyexec_get_only(r);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_pyexec_module);

    ctx = ngx_http_pyexec_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->n = plcf->gather->nelts;
    ctx->bodies = ngx_pcalloc(r->pool, ctx->n * sizeof(ngx_str_t));
    ctx->statuses = ngx_pcalloc(r->pool, ctx->n * sizeof(ngx_uint_t));
    if (ctx->bodies == NULL || ctx->statuses == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    uris = plcf->gather->elts;

    for (i = 0; i < ctx->n; i++) {
        ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
        if (ps == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ps->handler = ngx_http_pyexec_gather_part;
        ps->data = &ctx->statuses[i];

        /*
         * background subrequests run side by side and never wait on the
         * parent's output; their bodies stay in memory
         */

        if (ngx_http_subrequest(r, &uris[i], NULL, &sr, ps,
                                NGX_HTTP_SUBREQUEST_IN_MEMORY
                                |NGX_HTTP_SUBREQUEST_BACKGROUND)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        sr->method = NGX_HTTP_GET;
        ngx_str_set(&sr->method_name, "GET");
        sr->header_only = 0;
    }

    r->write_event_handler = ngx_http_pyexec_gather_resume;
    r->main->count++;

    return NGX_DONE;
}


static ngx_int_t
ngx_http_pyexec_gather_part(ngx_http_request_t *r, void *data, ngx_int_t rc)
{
    ngx_uint_t                    *status = data;
    ngx_uint_t                     i;
    ngx_buf_t                     *b;
    ngx_http_request_t            *pr;
    ngx_http_pyexec_ctx_t         *ctx;

    pr = r->parent;
    ctx = ngx_http_get_module_ctx(pr, ngx_http_pyexec_module);

    i = status - ctx->statuses;

    if (*status != 0) {
        return rc;      /* finalized twice */
    }

    *status = (rc == NGX_OK || rc == NGX_DONE) ? r->headers_out.status : 0;

    if (*status == 0) {
        *status = (rc >= NGX_HTTP_SPECIAL_RESPONSE) ? (ngx_uint_t) rc
                                                    : NGX_HTTP_BAD_GATEWAY;
    }

    b = r->out ? r->out->buf : NULL;

    if (*status == NGX_HTTP_OK && b && b->last > b->pos) {
        ctx->bodies[i].len = b->last - b->pos;
        ctx->bodies[i].data = ngx_pnalloc(pr->pool, ctx->bodies[i].len);
        if (ctx->bodies[i].data == NULL) {
            ctx->bodies[i].len = 0;
            *status = NGX_HTTP_INTERNAL_SERVER_ERROR;

        } else {
            ngx_memcpy(ctx->bodies[i].data, b->pos, ctx->bodies[i].len);
        }
    }

    if (++ctx->done == ctx->n) {
        pr->write_event_handler = ngx_http_pyexec_gather_resume;
        (void) ngx_http_post_request(pr, NULL);
    }

    return rc;
}


static void
ngx_http_pyexec_gather_resume(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                     *uris;
    ngx_uint_t                     i, partial;
    ngx_http_pyexec_json_t         j;
    ngx_http_pyexec_loc_conf_t    *plcf;
    ngx_http_pyexec_main_conf_t   *pmcf;
    ngx_http_pyexec_ctx_t         *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_pyexec_module);

    if (ctx == NULL || ctx->done < ctx->n) {
        return;
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_pyexec_module);
    pmcf = ngx_http_get_module_main_conf(r, ngx_http_pyexec_module);
    uris = plcf->gather->elts;

    if (plcf->gather_metrics) {
        ngx_http_finalize_request(r,
            ngx_http_pyexec_metrics_merge(r, ctx->bodies, ctx->statuses,
                                          uris, ctx->n));
        return;
    }

    if (ngx_http_pyexec_json_init(&j) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    partial = 0;

    ngx_http_pyexec_json_map_open(&j);
    ngx_http_pyexec_json_key(&j, "sessions");
    ngx_http_pyexec_json_array_open(&j);

    for (i = 0; i < ctx->n; i++) {
        rc = NGX_DECLINED;

        if (ctx->statuses[i] == NGX_HTTP_OK) {
            rc = ngx_http_pyexec_json_copy_array(&j, ctx->bodies[i].data,
                                                 ctx->bodies[i].len,
                                                 "sessions",
                                                 pmcf->json_max_depth);
        }

        if (rc == NGX_ERROR) {
            break;      /* the writer failed: send_json() answers 500 */
        }

        if (rc == NGX_OK) {
            continue;
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "pyexec: sessions of \"%V\" left out: status %ui",
                      &uris[i], ctx->statuses[i]);
        partial = 1;
    }

    ngx_http_pyexec_json_array_close(&j);
    ngx_http_pyexec_json_key(&j, "partial");
    ngx_http_pyexec_json_bool(&j, partial);
    ngx_http_pyexec_json_map_close(&j);

    ngx_http_finalize_request(r,
        ngx_http_pyexec_send_json(r, NGX_HTTP_OK, &j));
}
