
/*
 * Copyright (C) pyexec authors
 *
 * Request parsing and small response helpers, all with yajl.
 *
 * The request is parsed with yajl's callback parser rather than yajl_tree:
 * strings arrive with their lengths (a "code" holding \u0000 is detected,
 * never cut short), nesting depth is bounded as it grows (yajl_tree
 * crashes freeing very deep documents), and nothing is built that the
 * handler does not need.  Errors come back as FastAPI's 422 body.
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_json.h"

#include <math.h>


typedef enum {
    NGX_HTTP_PYEXEC_KEY_OTHER = 0,
    NGX_HTTP_PYEXEC_KEY_CODE,
    NGX_HTTP_PYEXEC_KEY_SESSION_ID,
    NGX_HTTP_PYEXEC_KEY_TIMEOUT,
    NGX_HTTP_PYEXEC_KEY_STREAM,
    NGX_HTTP_PYEXEC_KEY_ASYNC
} ngx_http_pyexec_key_e;


typedef struct {
    const char                  *field;   /* NULL: the body itself */
    const char                  *msg;
    const char                  *type;
} ngx_http_pyexec_json_error_t;


typedef struct {
    ngx_pool_t                  *pool;
    ngx_http_pyexec_request_t   *req;
    ngx_uint_t                   depth;
    ngx_uint_t                   max_depth;
    ngx_http_pyexec_key_e        key;
    ngx_http_pyexec_json_error_t errors[6];
    ngx_uint_t                   nerrors;
    unsigned                     root_seen:1;
    unsigned                     root_map:1;
    unsigned                     too_deep:1;
    unsigned                     nomem:1;
    unsigned                     route:1;   /* session_id only, no copies */
} ngx_http_pyexec_json_ctx_t;


static ngx_int_t ngx_http_pyexec_json_parse(ngx_pool_t *pool,
    ngx_chain_t *in, ngx_uint_t max_depth, ngx_http_pyexec_request_t *req,
    ngx_str_t *err);
static void ngx_http_pyexec_json_error(ngx_http_pyexec_json_ctx_t *ctx,
    const char *field, const char *msg, const char *type);
static int ngx_http_pyexec_json_scalar(ngx_http_pyexec_json_ctx_t *ctx,
    const char *what);
static int ngx_http_pyexec_json_on_null(void *data);
static int ngx_http_pyexec_json_on_boolean(void *data, int v);
static int ngx_http_pyexec_json_on_number(void *data, const char *s,
    size_t len);
static int ngx_http_pyexec_json_on_string(void *data,
    const unsigned char *s, size_t len);
static int ngx_http_pyexec_json_on_start_map(void *data);
static int ngx_http_pyexec_json_on_start_array(void *data);
static int ngx_http_pyexec_json_on_start(ngx_http_pyexec_json_ctx_t *ctx);
static int ngx_http_pyexec_json_on_key(void *data, const unsigned char *s,
    size_t len);
static int ngx_http_pyexec_json_on_end(void *data);
static ngx_int_t ngx_http_pyexec_json_errors(ngx_http_pyexec_json_ctx_t *ctx,
    ssize_t offset, const char *msg, ngx_str_t *out);


static yajl_callbacks  ngx_http_pyexec_json_callbacks = {
    ngx_http_pyexec_json_on_null,
    ngx_http_pyexec_json_on_boolean,
    NULL,
    NULL,
    ngx_http_pyexec_json_on_number,
    ngx_http_pyexec_json_on_string,
    ngx_http_pyexec_json_on_start_map,
    ngx_http_pyexec_json_on_key,
    ngx_http_pyexec_json_on_end,
    ngx_http_pyexec_json_on_start_array,
    ngx_http_pyexec_json_on_end
};


ngx_int_t
ngx_http_pyexec_json_parse_request(ngx_pool_t *pool, u_char *buf, size_t len,
    ngx_uint_t max_depth, ngx_http_pyexec_request_t *req, ngx_str_t *err)
{
    ngx_buf_t    b;
    ngx_chain_t  cl;

    ngx_memzero(&b, sizeof(ngx_buf_t));
    b.pos = buf;
    b.last = buf + len;
    cl.buf = &b;
    cl.next = NULL;

    return ngx_http_pyexec_json_parse(pool, &cl, max_depth, req, err);
}


/*
 * The same parse over the body's buffers as nginx read them (in memory),
 * for the front, which runs the cell right there when the session is this
 * worker's: NGX_OK is exactly parse_request's NGX_OK on the buffers joined;
 * NGX_DECLINED (an invalid body) says no more: the caller parses again the
 * way that builds the 422's detail.
 */

ngx_int_t
ngx_http_pyexec_json_parse_chain(ngx_pool_t *pool, ngx_chain_t *in,
    ngx_uint_t max_depth, ngx_http_pyexec_request_t *req)
{
    return ngx_http_pyexec_json_parse(pool, in, max_depth, req, NULL);
}


/* err NULL: NGX_DECLINED without the detail built */

static ngx_int_t
ngx_http_pyexec_json_parse(ngx_pool_t *pool, ngx_chain_t *in,
    ngx_uint_t max_depth, ngx_http_pyexec_request_t *req, ngx_str_t *err)
{
    off_t                        len, off;
    u_char                      *msg, *pos;
    size_t                       n;
    yajl_handle                  h;
    yajl_status                  st;
    ngx_chain_t                 *cl;
    ngx_http_pyexec_json_ctx_t   ctx;

    if (err) {
        ngx_str_null(err);
    }

    ngx_memzero(&ctx, sizeof(ngx_http_pyexec_json_ctx_t));
    ngx_memzero(req, sizeof(ngx_http_pyexec_request_t));
    ctx.pool = pool;
    ctx.req = req;
    ctx.max_depth = max_depth;

    len = 0;

    for (cl = in; cl; cl = cl->next) {
        len += cl->buf->last - cl->buf->pos;
    }

    if (len == 0) {
        if (err == NULL) {
            return NGX_DECLINED;
        }

        ngx_http_pyexec_json_error(&ctx, NULL, "field required",
                                   "value_error.missing");
        return ngx_http_pyexec_json_errors(&ctx, -1, NULL, err);
    }

    h = yajl_alloc(&ngx_http_pyexec_json_callbacks, NULL, &ctx);
    if (h == NULL) {
        return NGX_ERROR;
    }

    st = yajl_status_ok;
    off = 0;                    /* where the buffer that failed starts */
    pos = NULL;
    n = 0;

    for (cl = in; cl; cl = cl->next) {
        pos = cl->buf->pos;
        n = cl->buf->last - pos;

        if (n == 0) {
            continue;
        }

        st = yajl_parse(h, pos, n);
        if (st != yajl_status_ok) {
            break;
        }

        off += n;
    }

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
        off = 0;                /* yajl counts the end as its own buffer */
    }

    if (ctx.nomem) {
        yajl_free(h);
        return NGX_ERROR;
    }

    if (st != yajl_status_ok) {
        if (err == NULL) {
            yajl_free(h);
            return NGX_DECLINED;
        }

        off += yajl_get_bytes_consumed(h);

        if (ctx.too_deep) {
            yajl_free(h);
            ctx.nerrors = 0;
            ngx_http_pyexec_json_error(&ctx, NULL,
                                       "JSON nested too deeply",
                                       "value_error.jsondecode");
            return ngx_http_pyexec_json_errors(&ctx, off, NULL, err);
        }

        msg = yajl_get_error(h, 0, pos, n);
        ctx.nerrors = 0;
        ngx_http_pyexec_json_error(&ctx, NULL, NULL,
                                   "value_error.jsondecode");
        (void) ngx_http_pyexec_json_errors(&ctx, off,
                                           msg ? (char *) msg : "invalid",
                                           err);
        if (msg) {
            yajl_free_error(h, msg);
        }

        yajl_free(h);
        return err->data ? NGX_DECLINED : NGX_ERROR;
    }

    yajl_free(h);

    if (!ctx.root_map) {
        if (err == NULL) {
            return NGX_DECLINED;
        }

        ctx.nerrors = 0;
        ngx_http_pyexec_json_error(&ctx, NULL, "value is not a valid dict",
                                   "type_error.dict");
        return ngx_http_pyexec_json_errors(&ctx, -1, NULL, err);
    }

    if (!req->has_code) {
        ngx_http_pyexec_json_error(&ctx, "code", "field required",
                                   "value_error.missing");
    }

    /*
     * a NUL in code is Python's to refuse (compile() says so, a cell
     * error); the code travels with its length, never as a C string
     */

    if (req->has_session_id
        && req->session_id.len > NGX_HTTP_PYEXEC_SESSION_ID_MAX)
    {
        ngx_http_pyexec_json_error(&ctx, "session_id",
                                   "ensure this value has at most 256 "
                                   "characters",
                                   "value_error.any_str.max_length");

    } else if (req->has_session_id
               && ngx_http_pyexec_id_has_control(req->session_id.data,
                                                 req->session_id.len))
    {
        /* it travels in headers (X-Session-Id): CR LF would split them */
        ngx_http_pyexec_json_error(&ctx, "session_id",
                                   "session_id contains a control character",
                                   "value_error.str.control");
    }

    if (ctx.nerrors) {
        return err ? ngx_http_pyexec_json_errors(&ctx, -1, NULL, err)
                   : NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * The front's look at a body: the "session_id" the worker's parser would
 * take from it (the last top-level one; null unsets it), read from the
 * body's buffers as they are, no code copied.  NGX_OK with the id,
 * NGX_DECLINED when there is none or the body is not a valid object (the
 * worker answers 422), NGX_ERROR.
 */

ngx_int_t
ngx_http_pyexec_json_session_id(ngx_pool_t *pool, ngx_chain_t *in,
    ngx_uint_t max_depth, ngx_str_t *id)
{
    ngx_uint_t  async;

    return ngx_http_pyexec_json_route(pool, in, max_depth, id, &async);
}


/* the same scan, and whether the body asks for "async": true (else 0) */

ngx_int_t
ngx_http_pyexec_json_route(ngx_pool_t *pool, ngx_chain_t *in,
    ngx_uint_t max_depth, ngx_str_t *id, ngx_uint_t *async)
{
    yajl_handle                  h;
    yajl_status                  st;
    ngx_chain_t                 *cl;
    ngx_http_pyexec_request_t    req;
    ngx_http_pyexec_json_ctx_t   ctx;

    ngx_memzero(&ctx, sizeof(ngx_http_pyexec_json_ctx_t));
    ngx_memzero(&req, sizeof(ngx_http_pyexec_request_t));
    ctx.pool = pool;
    ctx.req = &req;
    ctx.max_depth = max_depth;
    ctx.route = 1;

    h = yajl_alloc(&ngx_http_pyexec_json_callbacks, NULL, &ctx);
    if (h == NULL) {
        return NGX_ERROR;
    }

    st = yajl_status_ok;

    for (cl = in; cl && st == yajl_status_ok; cl = cl->next) {
        if (cl->buf->last > cl->buf->pos) {
            st = yajl_parse(h, cl->buf->pos, cl->buf->last - cl->buf->pos);
        }
    }

    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    yajl_free(h);

    if (ctx.nomem) {
        return NGX_ERROR;
    }

    *async = st == yajl_status_ok && ctx.root_map && req.async;

    if (st != yajl_status_ok || !ctx.root_map || !req.has_session_id) {
        return NGX_DECLINED;
    }

    *id = req.session_id;

    return NGX_OK;
}


static void
ngx_http_pyexec_json_error(ngx_http_pyexec_json_ctx_t *ctx,
    const char *field, const char *msg, const char *type)
{
    if (ctx->nerrors < 6) {
        ctx->errors[ctx->nerrors].field = field;
        ctx->errors[ctx->nerrors].msg = msg;
        ctx->errors[ctx->nerrors].type = type;
        ctx->nerrors++;
    }
}


/* a value that is not what the current top-level key wants */

static int
ngx_http_pyexec_json_scalar(ngx_http_pyexec_json_ctx_t *ctx, const char *what)
{
    ngx_http_pyexec_request_t  *req = ctx->req;

    if (!ctx->root_seen) {
        ctx->root_seen = 1;
        return 1;
    }

    if (ctx->depth != 1 || !ctx->root_map) {
        return 1;
    }

    switch (ctx->key) {

    case NGX_HTTP_PYEXEC_KEY_CODE:
        req->has_code = 1;
        ngx_http_pyexec_json_error(ctx, "code", "str type expected",
                                   "type_error.str");
        break;

    case NGX_HTTP_PYEXEC_KEY_SESSION_ID:
        if (what == NULL) {   /* null is allowed */
            req->has_session_id = 0;
            break;
        }
        ngx_http_pyexec_json_error(ctx, "session_id", "str type expected",
                                   "type_error.str");
        break;

    case NGX_HTTP_PYEXEC_KEY_TIMEOUT:
        if (what == NULL) {
            req->has_timeout = 0;
            break;
        }
        ngx_http_pyexec_json_error(ctx, "timeout",
                                   "value is not a valid float",
                                   "type_error.float");
        break;

    case NGX_HTTP_PYEXEC_KEY_STREAM:
    case NGX_HTTP_PYEXEC_KEY_ASYNC:
        if (what == NULL) {   /* null: false */
            break;
        }
        ngx_http_pyexec_json_error(ctx,
                                   ctx->key == NGX_HTTP_PYEXEC_KEY_STREAM
                                   ? "stream" : "async",
                                   "value could not be parsed to a boolean",
                                   "type_error.bool");
        break;

    default:
        break;
    }

    ctx->key = NGX_HTTP_PYEXEC_KEY_OTHER;

    return 1;
}


static int
ngx_http_pyexec_json_on_null(void *data)
{
    return ngx_http_pyexec_json_scalar(data, NULL);
}


static int
ngx_http_pyexec_json_on_boolean(void *data, int v)
{
    ngx_http_pyexec_json_ctx_t  *ctx = data;

    if (ctx->root_map && ctx->depth == 1
        && (ctx->key == NGX_HTTP_PYEXEC_KEY_STREAM
            || ctx->key == NGX_HTTP_PYEXEC_KEY_ASYNC))
    {
        if (ctx->key == NGX_HTTP_PYEXEC_KEY_STREAM) {
            ctx->req->stream = v ? 1 : 0;

        } else {
            ctx->req->async = v ? 1 : 0;
        }

        ctx->key = NGX_HTTP_PYEXEC_KEY_OTHER;
        return 1;
    }

    return ngx_http_pyexec_json_scalar(data, "boolean");
}


static int
ngx_http_pyexec_json_on_number(void *data, const char *s, size_t len)
{
    u_char                      *p;
    double                       d;
    ngx_http_pyexec_json_ctx_t  *ctx = data;

    if (!(ctx->root_map && ctx->depth == 1
          && ctx->key == NGX_HTTP_PYEXEC_KEY_TIMEOUT))
    {
        return ngx_http_pyexec_json_scalar(ctx, "number");
    }

    ctx->key = NGX_HTTP_PYEXEC_KEY_OTHER;

    p = ngx_pnalloc(ctx->pool, len + 1);
    if (p == NULL) {
        ctx->nomem = 1;
        return 0;
    }

    ngx_memcpy(p, s, len);
    p[len] = '\0';

    d = strtod((char *) p, NULL);

    if (!isfinite(d) || d <= 0) {
        ngx_http_pyexec_json_error(ctx, "timeout",
                                   "ensure this value is greater than 0",
                                   "value_error.number.not_gt");
        return 1;
    }

    ctx->req->has_timeout = 1;
    ctx->req->timeout = (d * 1000 > 1e12) ? (ngx_msec_t) 1e12
                                          : (ngx_msec_t) (d * 1000);
    if (ctx->req->timeout == 0) {
        ctx->req->timeout = 1;
    }

    return 1;
}


static int
ngx_http_pyexec_json_on_string(void *data, const unsigned char *s,
    size_t len)
{
    ngx_str_t                   *dst;
    ngx_http_pyexec_json_ctx_t  *ctx = data;

    if (!(ctx->root_map && ctx->depth == 1)) {
        return ngx_http_pyexec_json_scalar(ctx, "string");
    }

    switch (ctx->key) {

    case NGX_HTTP_PYEXEC_KEY_CODE:
        if (ctx->route) {
            ctx->key = NGX_HTTP_PYEXEC_KEY_OTHER;
            return 1;
        }

        dst = &ctx->req->code;
        ctx->req->has_code = 1;
        break;

    case NGX_HTTP_PYEXEC_KEY_SESSION_ID:
        dst = &ctx->req->session_id;
        ctx->req->has_session_id = 1;
        break;

    case NGX_HTTP_PYEXEC_KEY_TIMEOUT:
    case NGX_HTTP_PYEXEC_KEY_STREAM:
    case NGX_HTTP_PYEXEC_KEY_ASYNC:
        return ngx_http_pyexec_json_scalar(ctx, "string");

    default:
        return 1;
    }

    ctx->key = NGX_HTTP_PYEXEC_KEY_OTHER;

    dst->data = ngx_pnalloc(ctx->pool, len + 1);
    if (dst->data == NULL) {
        ctx->nomem = 1;
        return 0;
    }

    ngx_memcpy(dst->data, s, len);
    dst->data[len] = '\0';
    dst->len = len;

    return 1;
}


static int
ngx_http_pyexec_json_on_start_map(void *data)
{
    ngx_http_pyexec_json_ctx_t  *ctx = data;

    if (!ctx->root_seen) {
        ctx->root_map = 1;
    }

    return ngx_http_pyexec_json_on_start(ctx);
}


static int
ngx_http_pyexec_json_on_start_array(void *data)
{
    return ngx_http_pyexec_json_on_start(data);
}


static int
ngx_http_pyexec_json_on_start(ngx_http_pyexec_json_ctx_t *ctx)
{
    if (!ctx->root_seen) {
        ctx->root_seen = 1;

    } else if (ctx->depth == 1 && ctx->root_map
               && ctx->key != NGX_HTTP_PYEXEC_KEY_OTHER)
    {
        /* a container where a scalar was expected */
        (void) ngx_http_pyexec_json_scalar(ctx, "container");
    }

    if (++ctx->depth > ctx->max_depth) {
        ctx->too_deep = 1;
        return 0;
    }

    return 1;
}


static int
ngx_http_pyexec_json_on_key(void *data, const unsigned char *s, size_t len)
{
    ngx_http_pyexec_json_ctx_t  *ctx = data;

    if (ctx->depth != 1 || !ctx->root_map) {
        return 1;
    }

    if (len == 4 && ngx_strncmp(s, "code", 4) == 0) {
        ctx->key = NGX_HTTP_PYEXEC_KEY_CODE;

    } else if (len == 10 && ngx_strncmp(s, "session_id", 10) == 0) {
        ctx->key = NGX_HTTP_PYEXEC_KEY_SESSION_ID;

    } else if (len == 7 && ngx_strncmp(s, "timeout", 7) == 0) {
        ctx->key = NGX_HTTP_PYEXEC_KEY_TIMEOUT;

    } else if (len == 6 && ngx_strncmp(s, "stream", 6) == 0) {
        ctx->key = NGX_HTTP_PYEXEC_KEY_STREAM;

    } else if (len == 5 && ngx_strncmp(s, "async", 5) == 0) {
        ctx->key = NGX_HTTP_PYEXEC_KEY_ASYNC;

    } else {
        ctx->key = NGX_HTTP_PYEXEC_KEY_OTHER;
    }

    return 1;
}


static int
ngx_http_pyexec_json_on_end(void *data)
{
    ngx_http_pyexec_json_ctx_t  *ctx = data;

    ctx->depth--;

    return 1;
}


static ngx_int_t
ngx_http_pyexec_json_errors(ngx_http_pyexec_json_ctx_t *ctx, ssize_t offset,
    const char *msg, ngx_str_t *out)
{
    u_char                        *p, *last;
    ngx_uint_t                     i;
    ngx_http_pyexec_json_t         j;
    ngx_http_pyexec_json_error_t  *e;

    if (ngx_http_pyexec_json_init(&j) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_map_open(&j);
    ngx_http_pyexec_json_key(&j, "detail");
    ngx_http_pyexec_json_array_open(&j);

    for (i = 0; i < ctx->nerrors; i++) {
        e = &ctx->errors[i];

        ngx_http_pyexec_json_map_open(&j);
        ngx_http_pyexec_json_key(&j, "loc");
        ngx_http_pyexec_json_array_open(&j);
        ngx_http_pyexec_json_cstr(&j, "body");

        if (e->field) {
            ngx_http_pyexec_json_cstr(&j, e->field);

        } else if (offset >= 0) {
            ngx_http_pyexec_json_int(&j, offset);
        }

        ngx_http_pyexec_json_array_close(&j);
        ngx_http_pyexec_json_key(&j, "msg");

        if (e->msg) {
            ngx_http_pyexec_json_cstr(&j, e->msg);

        } else {
            /* yajl's message: "lexical error: ...\n  text\n  (pointer)" */
            p = (u_char *) msg;
            last = p + ngx_strlen(p);
            p = ngx_strlchr(p, last, '\n');
            if (p == NULL) {
                p = last;
            }

            ngx_http_pyexec_json_str(&j, (u_char *) msg, p - (u_char *) msg);
        }

        ngx_http_pyexec_json_key(&j, "type");
        ngx_http_pyexec_json_cstr(&j, e->type);
        ngx_http_pyexec_json_map_close(&j);
    }

    ngx_http_pyexec_json_array_close(&j);
    ngx_http_pyexec_json_map_close(&j);

    if (ngx_http_pyexec_json_take(&j, ctx->pool, out) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_DECLINED;
}


/* NUL, CR, LF and the other C0 controls, and DEL */

ngx_int_t
ngx_http_pyexec_id_has_control(u_char *p, size_t len)
{
    u_char  *last;

    for (last = p + len; p < last; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return 1;
        }
    }

    return 0;
}


/*
 * An id from a header or a path that can be written into every answer and
 * passed on in a header: well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing past U+10FFFF: a subset of what yajl's generator
 * accepts with yajl_gen_validate_utf8; fuzz/fuzz_json.c checks that) and
 * no control character.  Body ids are UTF-8 already (yajl's parser).
 */

ngx_int_t
ngx_http_pyexec_id_is_valid(u_char *p, size_t len)
{
    return ngx_http_pyexec_json_is_utf8(p, len)
           && !ngx_http_pyexec_id_has_control(p, len);
}


ngx_int_t
ngx_http_pyexec_json_is_utf8(u_char *p, size_t len)
{
    u_char    *last;
    size_t     n, i;
    uint32_t   u, min;

    last = p + len;

    while (p < last) {
        u = *p++;

        if (u < 0x80) {
            continue;
        }

        if (u >= 0xc2 && u <= 0xdf) {
            n = 1; u &= 0x1f; min = 0x80;

        } else if (u >= 0xe0 && u <= 0xef) {
            n = 2; u &= 0x0f; min = 0x800;

        } else if (u >= 0xf0 && u <= 0xf4) {
            n = 3; u &= 0x07; min = 0x10000;

        } else {
            return 0;
        }

        if ((size_t) (last - p) < n) {
            return 0;
        }

        for (i = 0; i < n; i++) {
            if ((p[i] & 0xc0) != 0x80) {
                return 0;
            }

            u = (u << 6) | (p[i] & 0x3f);
        }

        p += n;

        if (u < min || u > 0x10ffff || (u >= 0xd800 && u <= 0xdfff)) {
            return 0;
        }
    }

    return 1;
}


/*
 * The response writer: yajl's generator with the first failing status kept
 * (sticky, as ngx_chain_writer keeps its error).  Every yajl_gen_* status
 * is checked here; after a failure the writer writes nothing more, and
 * ngx_http_pyexec_json_take() refuses the document, so a generator that
 * failed (an invalid UTF-8 string, a non-finite number) never reaches the
 * wire half-written with its keys shifted into value slots.
 */

ngx_int_t
ngx_http_pyexec_json_init(ngx_http_pyexec_json_t *j)
{
    j->rc = yajl_gen_status_ok;
    j->call = NULL;

    j->g = yajl_gen_alloc(NULL);
    if (j->g == NULL) {
        return NGX_ERROR;
    }

    if (!yajl_gen_config(j->g, yajl_gen_validate_utf8, 1)) {
        yajl_gen_free(j->g);
        j->g = NULL;
        return NGX_ERROR;
    }

    return NGX_OK;
}


void
ngx_http_pyexec_json_free(ngx_http_pyexec_json_t *j)
{
    if (j->g) {
        yajl_gen_free(j->g);
        j->g = NULL;
    }
}


/* the document written so far, if every write succeeded (no copy) */

ngx_int_t
ngx_http_pyexec_json_text(ngx_http_pyexec_json_t *j, ngx_str_t *text)
{
    size_t         len;
    const u_char  *buf;

    if (j->g == NULL || j->rc != yajl_gen_status_ok
        || yajl_gen_get_buf(j->g, &buf, &len) != yajl_gen_status_ok)
    {
        return NGX_ERROR;
    }

    text->data = (u_char *) buf;
    text->len = len;

    return NGX_OK;
}


static void
ngx_http_pyexec_json_check(ngx_http_pyexec_json_t *j, yajl_gen_status rc,
    const char *call)
{
    if (rc != yajl_gen_status_ok && j->rc == yajl_gen_status_ok) {
        j->rc = rc;
        j->call = call;
    }
}


#define ngx_http_pyexec_json_ok(j)  ((j)->rc == yajl_gen_status_ok)


void
ngx_http_pyexec_json_map_open(ngx_http_pyexec_json_t *j)
{
    if (ngx_http_pyexec_json_ok(j)) {
        ngx_http_pyexec_json_check(j, yajl_gen_map_open(j->g),
                                   "yajl_gen_map_open()");
    }
}


void
ngx_http_pyexec_json_map_close(ngx_http_pyexec_json_t *j)
{
    if (ngx_http_pyexec_json_ok(j)) {
        ngx_http_pyexec_json_check(j, yajl_gen_map_close(j->g),
                                   "yajl_gen_map_close()");
    }
}


void
ngx_http_pyexec_json_array_open(ngx_http_pyexec_json_t *j)
{
    if (ngx_http_pyexec_json_ok(j)) {
        ngx_http_pyexec_json_check(j, yajl_gen_array_open(j->g),
                                   "yajl_gen_array_open()");
    }
}


void
ngx_http_pyexec_json_array_close(ngx_http_pyexec_json_t *j)
{
    if (ngx_http_pyexec_json_ok(j)) {
        ngx_http_pyexec_json_check(j, yajl_gen_array_close(j->g),
                                   "yajl_gen_array_close()");
    }
}


void
ngx_http_pyexec_json_str(ngx_http_pyexec_json_t *j, const u_char *s,
    size_t len)
{
    if (ngx_http_pyexec_json_ok(j)) {
        ngx_http_pyexec_json_check(j, yajl_gen_string(j->g, s, len),
                                   "yajl_gen_string()");
    }
}


void
ngx_http_pyexec_json_cstr(ngx_http_pyexec_json_t *j, const char *s)
{
    ngx_http_pyexec_json_str(j, (const u_char *) s, ngx_strlen(s));
}


void
ngx_http_pyexec_json_key(ngx_http_pyexec_json_t *j, const char *key)
{
    ngx_http_pyexec_json_str(j, (const u_char *) key, ngx_strlen(key));
}


void
ngx_http_pyexec_json_int(ngx_http_pyexec_json_t *j, long long n)
{
    u_char     buf[NGX_INT64_LEN], *p, *last;
    uint64_t   u;

    /*
     * yajl_gen_integer() formats with sprintf(), a cost in every reply;
     * digits by hand (the fuzz harness links no ngx_sprintf())
     */

    if (!ngx_http_pyexec_json_ok(j)) {
        return;
    }

    last = buf + sizeof(buf);
    p = last;
    u = n < 0 ? (uint64_t) 0 - (uint64_t) n : (uint64_t) n;

    do {
        *--p = (u_char) ('0' + u % 10);
        u /= 10;
    } while (u);

    if (n < 0) {
        *--p = '-';
    }

    ngx_http_pyexec_json_check(j, yajl_gen_number(j->g, (char *) p,
                                                  last - p),
                               "yajl_gen_number()");
}


/* a number already formatted as JSON ("1e+300", "3.14") */

void
ngx_http_pyexec_json_number(ngx_http_pyexec_json_t *j, const char *s,
    size_t len)
{
    if (ngx_http_pyexec_json_ok(j)) {
        ngx_http_pyexec_json_check(j, yajl_gen_number(j->g, s, len),
                                   "yajl_gen_number()");
    }
}


void
ngx_http_pyexec_json_bool(ngx_http_pyexec_json_t *j, ngx_uint_t v)
{
    if (ngx_http_pyexec_json_ok(j)) {
        ngx_http_pyexec_json_check(j, yajl_gen_bool(j->g, v ? 1 : 0),
                                   "yajl_gen_bool()");
    }
}


void
ngx_http_pyexec_json_null(ngx_http_pyexec_json_t *j)
{
    if (ngx_http_pyexec_json_ok(j)) {
        ngx_http_pyexec_json_check(j, yajl_gen_null(j->g),
                                   "yajl_gen_null()");
    }
}


/* "key": "val", or "key": null when val is NULL */

void
ngx_http_pyexec_json_kv(ngx_http_pyexec_json_t *j, const char *key,
    const u_char *val, size_t len)
{
    ngx_http_pyexec_json_key(j, key);

    if (val == NULL) {
        ngx_http_pyexec_json_null(j);

    } else {
        ngx_http_pyexec_json_str(j, val, len);
    }
}


void
ngx_http_pyexec_json_iso8601(ngx_http_pyexec_json_t *j, time_t t)
{
    u_char     buf[32], *p;
    ngx_tm_t   tm;

    ngx_gmtime(t, &tm);

    p = ngx_sprintf(buf, "%4d-%02d-%02dT%02d:%02d:%02dZ",
                    tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                    tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);

    ngx_http_pyexec_json_str(j, buf, p - buf);
}


/* the writer's current document, without taking it (NGX_ERROR: failed) */

ngx_int_t
ngx_http_pyexec_json_peek(ngx_http_pyexec_json_t *j, const u_char **buf,
    size_t *len)
{
    if (ngx_http_pyexec_json_ok(j)) {
        ngx_http_pyexec_json_check(j, yajl_gen_get_buf(j->g, buf, len),
                                   "yajl_gen_get_buf()");
    }

    return ngx_http_pyexec_json_ok(j) ? NGX_OK : NGX_ERROR;
}


/*
 * Copy the document into the pool and free the generator.  NGX_ERROR when
 * a call failed (j->rc and j->call say which) or memory ran out (j->rc
 * still ok); the generator is freed either way.
 */

ngx_int_t
ngx_http_pyexec_json_take(ngx_http_pyexec_json_t *j, ngx_pool_t *pool,
    ngx_str_t *out)
{
    size_t          len;
    ngx_int_t       rc;
    const u_char   *buf;

    rc = NGX_ERROR;

    if (j->g && ngx_http_pyexec_json_peek(j, &buf, &len) == NGX_OK) {
        out->data = ngx_pnalloc(pool, len);

        if (out->data) {
            out->len = len;
            ngx_memcpy(out->data, buf, len);
            rc = NGX_OK;
        }
    }

    ngx_http_pyexec_json_free(j);

    return rc;
}


/* for the log: what failed */

const char *
ngx_http_pyexec_json_error_text(ngx_http_pyexec_json_t *j)
{
    switch (j->rc) {

    case yajl_gen_status_ok:
        return "out of memory";

    case yajl_gen_keys_must_be_strings:
        return "a key that is not a string";

    case yajl_max_depth_exceeded:
        return "nesting too deep";

    case yajl_gen_in_error_state:
        return "generator in error state";

    case yajl_gen_generation_complete:
        return "a value after the complete document";

    case yajl_gen_invalid_number:
        return "an invalid number";

    case yajl_gen_no_buf:
        return "no buffer";

    case yajl_gen_invalid_string:
        return "a string that is not valid UTF-8";

    default:
        return "unknown yajl_gen status";
    }
}


/*
 * Copying the elements of one top-level array ({"<key>": [ ... ]}) of a
 * worker's answer into another writer: GET /sessions behind a front.
 * The answer is checked as any input is (depth, syntax); nothing is
 * emitted unless the whole document parses.  A write that fails stops
 * the parse (the callback returns 0).
 */

typedef struct {
    ngx_http_pyexec_json_t      *j;
    const char                  *key;
    ngx_uint_t                   depth;
    ngx_uint_t                   max_depth;
    unsigned                     in_key:1;
    unsigned                     copying:1;
    unsigned                     found:1;
} ngx_http_pyexec_copy_ctx_t;


#define ngx_http_pyexec_copying(ctx)                                          \
    ((ctx)->j && (ctx)->copying && (ctx)->depth >= 2)

#define ngx_http_pyexec_copy_ok(ctx)                                          \
    ((ctx)->j == NULL || ngx_http_pyexec_json_ok((ctx)->j))


static int
ngx_http_pyexec_copy_null(void *data)
{
    ngx_http_pyexec_copy_ctx_t  *ctx = data;

    if (ngx_http_pyexec_copying(ctx)) {
        ngx_http_pyexec_json_null(ctx->j);
    }

    ctx->in_key = 0;

    return ngx_http_pyexec_copy_ok(ctx);
}


static int
ngx_http_pyexec_copy_boolean(void *data, int v)
{
    ngx_http_pyexec_copy_ctx_t  *ctx = data;

    if (ngx_http_pyexec_copying(ctx)) {
        ngx_http_pyexec_json_bool(ctx->j, v);
    }

    ctx->in_key = 0;

    return ngx_http_pyexec_copy_ok(ctx);
}


static int
ngx_http_pyexec_copy_number(void *data, const char *s, size_t len)
{
    ngx_http_pyexec_copy_ctx_t  *ctx = data;

    if (ngx_http_pyexec_copying(ctx)) {
        ngx_http_pyexec_json_number(ctx->j, s, len);
    }

    ctx->in_key = 0;

    return ngx_http_pyexec_copy_ok(ctx);
}


static int
ngx_http_pyexec_copy_string(void *data, const unsigned char *s, size_t len)
{
    ngx_http_pyexec_copy_ctx_t  *ctx = data;

    if (ngx_http_pyexec_copying(ctx)) {
        ngx_http_pyexec_json_str(ctx->j, s, len);
    }

    ctx->in_key = 0;

    return ngx_http_pyexec_copy_ok(ctx);
}


static int
ngx_http_pyexec_copy_key(void *data, const unsigned char *s, size_t len)
{
    ngx_http_pyexec_copy_ctx_t  *ctx = data;

    if (ngx_http_pyexec_copying(ctx)) {
        ngx_http_pyexec_json_str(ctx->j, s, len);
    }

    ctx->in_key = (ctx->depth == 1 && !ctx->found
                   && len == ngx_strlen(ctx->key)
                   && ngx_strncmp(s, ctx->key, len) == 0);

    return ngx_http_pyexec_copy_ok(ctx);
}


static int
ngx_http_pyexec_copy_open(ngx_http_pyexec_copy_ctx_t *ctx, ngx_uint_t map)
{
    if (ngx_http_pyexec_copying(ctx)) {
        if (map) {
            ngx_http_pyexec_json_map_open(ctx->j);

        } else {
            ngx_http_pyexec_json_array_open(ctx->j);
        }

    } else if (ctx->in_key && !map) {
        ctx->copying = 1;
        ctx->found = 1;
    }

    ctx->in_key = 0;

    return ++ctx->depth <= ctx->max_depth && ngx_http_pyexec_copy_ok(ctx);
}


static int
ngx_http_pyexec_copy_start_map(void *data)
{
    return ngx_http_pyexec_copy_open(data, 1);
}


static int
ngx_http_pyexec_copy_start_array(void *data)
{
    return ngx_http_pyexec_copy_open(data, 0);
}


static int
ngx_http_pyexec_copy_close(ngx_http_pyexec_copy_ctx_t *ctx, ngx_uint_t map)
{
    ctx->depth--;

    if (ngx_http_pyexec_copying(ctx)) {
        if (map) {
            ngx_http_pyexec_json_map_close(ctx->j);

        } else {
            ngx_http_pyexec_json_array_close(ctx->j);
        }

    } else if (ctx->depth == 1) {
        ctx->copying = 0;
    }

    return ngx_http_pyexec_copy_ok(ctx);
}


static int
ngx_http_pyexec_copy_end_map(void *data)
{
    return ngx_http_pyexec_copy_close(data, 1);
}


static int
ngx_http_pyexec_copy_end_array(void *data)
{
    return ngx_http_pyexec_copy_close(data, 0);
}


static yajl_callbacks  ngx_http_pyexec_copy_callbacks = {
    ngx_http_pyexec_copy_null,
    ngx_http_pyexec_copy_boolean,
    NULL,
    NULL,
    ngx_http_pyexec_copy_number,
    ngx_http_pyexec_copy_string,
    ngx_http_pyexec_copy_start_map,
    ngx_http_pyexec_copy_key,
    ngx_http_pyexec_copy_end_map,
    ngx_http_pyexec_copy_start_array,
    ngx_http_pyexec_copy_end_array
};


static ngx_int_t
ngx_http_pyexec_copy_run(ngx_http_pyexec_copy_ctx_t *ctx, u_char *buf,
    size_t len)
{
    yajl_handle  h;
    yajl_status  st;

    h = yajl_alloc(&ngx_http_pyexec_copy_callbacks, NULL, ctx);
    if (h == NULL) {
        return NGX_ERROR;
    }

    st = yajl_parse(h, buf, len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    yajl_free(h);

    if (!ngx_http_pyexec_copy_ok(ctx)) {
        return NGX_ERROR;       /* the writer failed: j->rc says why */
    }

    return (st == yajl_status_ok && ctx->found) ? NGX_OK : NGX_DECLINED;
}


/* NGX_OK, NGX_DECLINED (a bad document: j untouched), NGX_ERROR */

ngx_int_t
ngx_http_pyexec_json_copy_array(ngx_http_pyexec_json_t *j, u_char *buf,
    size_t len, const char *key, ngx_uint_t max_depth)
{
    ngx_int_t                    rc;
    ngx_http_pyexec_copy_ctx_t   ctx;

    if (len == 0) {
        return NGX_DECLINED;
    }

    /* a dry run first: a bad document must leave j untouched */

    ngx_memzero(&ctx, sizeof(ngx_http_pyexec_copy_ctx_t));
    ctx.key = key;
    ctx.max_depth = max_depth;

    rc = ngx_http_pyexec_copy_run(&ctx, buf, len);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_memzero(&ctx, sizeof(ngx_http_pyexec_copy_ctx_t));
    ctx.j = j;
    ctx.key = key;
    ctx.max_depth = max_depth;

    return ngx_http_pyexec_copy_run(&ctx, buf, len);
}
