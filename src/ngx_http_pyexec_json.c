
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

#include <math.h>


typedef enum {
    NGX_HTTP_PYEXEC_KEY_OTHER = 0,
    NGX_HTTP_PYEXEC_KEY_CODE,
    NGX_HTTP_PYEXEC_KEY_SESSION_ID,
    NGX_HTTP_PYEXEC_KEY_TIMEOUT
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
    ngx_http_pyexec_json_error_t errors[4];
    ngx_uint_t                   nerrors;
    unsigned                     root_seen:1;
    unsigned                     root_map:1;
    unsigned                     too_deep:1;
    unsigned                     nomem:1;
} ngx_http_pyexec_json_ctx_t;


static void ngx_http_pyexec_json_error(ngx_http_pyexec_json_ctx_t *ctx,
    const char *field, const char *msg, const char *type);
static int ngx_http_pyexec_json_scalar(ngx_http_pyexec_json_ctx_t *ctx,
    const char *what);
static int ngx_http_pyexec_json_null(void *data);
static ngx_int_t ngx_http_pyexec_id_is_utf8(u_char *p, size_t len);
static int ngx_http_pyexec_json_boolean(void *data, int v);
static int ngx_http_pyexec_json_number(void *data, const char *s,
    size_t len);
static int ngx_http_pyexec_json_string(void *data, const unsigned char *s,
    size_t len);
static int ngx_http_pyexec_json_start_map(void *data);
static int ngx_http_pyexec_json_start_array(void *data);
static int ngx_http_pyexec_json_start(ngx_http_pyexec_json_ctx_t *ctx);
static int ngx_http_pyexec_json_key(void *data, const unsigned char *s,
    size_t len);
static int ngx_http_pyexec_json_end(void *data);
static ngx_int_t ngx_http_pyexec_json_errors(ngx_http_pyexec_json_ctx_t *ctx,
    ssize_t offset, const char *msg, ngx_str_t *out);


static yajl_callbacks  ngx_http_pyexec_json_callbacks = {
    ngx_http_pyexec_json_null,
    ngx_http_pyexec_json_boolean,
    NULL,
    NULL,
    ngx_http_pyexec_json_number,
    ngx_http_pyexec_json_string,
    ngx_http_pyexec_json_start_map,
    ngx_http_pyexec_json_key,
    ngx_http_pyexec_json_end,
    ngx_http_pyexec_json_start_array,
    ngx_http_pyexec_json_end
};


ngx_int_t
ngx_http_pyexec_json_parse_request(ngx_pool_t *pool, u_char *buf, size_t len,
    ngx_uint_t max_depth, ngx_http_pyexec_request_t *req, ngx_str_t *err)
{
    size_t                       off;
    u_char                      *msg;
    yajl_handle                  h;
    yajl_status                  st;
    ngx_http_pyexec_json_ctx_t   ctx;

    ngx_str_null(err);
    ngx_memzero(&ctx, sizeof(ngx_http_pyexec_json_ctx_t));
    ngx_memzero(req, sizeof(ngx_http_pyexec_request_t));
    ctx.pool = pool;
    ctx.req = req;
    ctx.max_depth = max_depth;

    if (len == 0) {
        ngx_http_pyexec_json_error(&ctx, NULL, "field required",
                                   "value_error.missing");
        return ngx_http_pyexec_json_errors(&ctx, -1, NULL, err);
    }

    h = yajl_alloc(&ngx_http_pyexec_json_callbacks, NULL, &ctx);
    if (h == NULL) {
        return NGX_ERROR;
    }

    st = yajl_parse(h, buf, len);
    if (st == yajl_status_ok) {
        st = yajl_complete_parse(h);
    }

    if (ctx.nomem) {
        yajl_free(h);
        return NGX_ERROR;
    }

    if (st != yajl_status_ok) {
        off = yajl_get_bytes_consumed(h);

        if (ctx.too_deep) {
            yajl_free(h);
            ctx.nerrors = 0;
            ngx_http_pyexec_json_error(&ctx, NULL,
                                       "JSON nested too deeply",
                                       "value_error.jsondecode");
            return ngx_http_pyexec_json_errors(&ctx, off, NULL, err);
        }

        msg = yajl_get_error(h, 0, buf, len);
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
        return ngx_http_pyexec_json_errors(&ctx, -1, NULL, err);
    }

    return NGX_OK;
}


static void
ngx_http_pyexec_json_error(ngx_http_pyexec_json_ctx_t *ctx,
    const char *field, const char *msg, const char *type)
{
    if (ctx->nerrors < 4) {
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

    default:
        break;
    }

    ctx->key = NGX_HTTP_PYEXEC_KEY_OTHER;

    return 1;
}


static int
ngx_http_pyexec_json_null(void *data)
{
    return ngx_http_pyexec_json_scalar(data, NULL);
}


static int
ngx_http_pyexec_json_boolean(void *data, int v)
{
    return ngx_http_pyexec_json_scalar(data, "boolean");
}


static int
ngx_http_pyexec_json_number(void *data, const char *s, size_t len)
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
ngx_http_pyexec_json_string(void *data, const unsigned char *s, size_t len)
{
    ngx_str_t                   *dst;
    ngx_http_pyexec_json_ctx_t  *ctx = data;

    if (!(ctx->root_map && ctx->depth == 1)) {
        return ngx_http_pyexec_json_scalar(ctx, "string");
    }

    switch (ctx->key) {

    case NGX_HTTP_PYEXEC_KEY_CODE:
        dst = &ctx->req->code;
        ctx->req->has_code = 1;
        break;

    case NGX_HTTP_PYEXEC_KEY_SESSION_ID:
        dst = &ctx->req->session_id;
        ctx->req->has_session_id = 1;
        break;

    case NGX_HTTP_PYEXEC_KEY_TIMEOUT:
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
ngx_http_pyexec_json_start_map(void *data)
{
    ngx_http_pyexec_json_ctx_t  *ctx = data;

    if (!ctx->root_seen) {
        ctx->root_map = 1;
    }

    return ngx_http_pyexec_json_start(ctx);
}


static int
ngx_http_pyexec_json_start_array(void *data)
{
    return ngx_http_pyexec_json_start(data);
}


static int
ngx_http_pyexec_json_start(ngx_http_pyexec_json_ctx_t *ctx)
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
ngx_http_pyexec_json_key(void *data, const unsigned char *s, size_t len)
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

    } else {
        ctx->key = NGX_HTTP_PYEXEC_KEY_OTHER;
    }

    return 1;
}


static int
ngx_http_pyexec_json_end(void *data)
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
    yajl_gen                       g;
    ngx_uint_t                     i;
    ngx_http_pyexec_json_error_t  *e;

    g = ngx_http_pyexec_json_gen();
    if (g == NULL) {
        return NGX_ERROR;
    }

    yajl_gen_map_open(g);
    ngx_http_pyexec_json_str(g, "detail");
    yajl_gen_array_open(g);

    for (i = 0; i < ctx->nerrors; i++) {
        e = &ctx->errors[i];

        yajl_gen_map_open(g);
        ngx_http_pyexec_json_str(g, "loc");
        yajl_gen_array_open(g);
        ngx_http_pyexec_json_str(g, "body");

        if (e->field) {
            ngx_http_pyexec_json_str(g, e->field);

        } else if (offset >= 0) {
            yajl_gen_integer(g, offset);
        }

        yajl_gen_array_close(g);

        if (e->msg) {
            ngx_http_pyexec_json_str(g, "msg");
            ngx_http_pyexec_json_str(g, e->msg);

        } else {
            /* yajl's message: "lexical error: ...\n  text\n  (pointer)" */
            p = (u_char *) msg;
            last = p + ngx_strlen(p);
            p = ngx_strlchr(p, last, '\n');
            if (p == NULL) {
                p = last;
            }

            ngx_http_pyexec_json_str(g, "msg");
            yajl_gen_string(g, (u_char *) msg, p - (u_char *) msg);
        }

        ngx_http_pyexec_json_str(g, "type");
        ngx_http_pyexec_json_str(g, e->type);
        yajl_gen_map_close(g);
    }

    yajl_gen_array_close(g);
    yajl_gen_map_close(g);

    if (ngx_http_pyexec_json_take(g, ctx->pool, out) != NGX_OK) {
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
    return ngx_http_pyexec_id_is_utf8(p, len)
           && !ngx_http_pyexec_id_has_control(p, len);
}


static ngx_int_t
ngx_http_pyexec_id_is_utf8(u_char *p, size_t len)
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


yajl_gen
ngx_http_pyexec_json_gen(void)
{
    yajl_gen  g;

    g = yajl_gen_alloc(NULL);
    if (g == NULL) {
        return NULL;
    }

    (void) yajl_gen_config(g, yajl_gen_validate_utf8, 1);

    return g;
}


/* copy the generated document into the pool and free the generator */

ngx_int_t
ngx_http_pyexec_json_take(yajl_gen g, ngx_pool_t *pool, ngx_str_t *out)
{
    size_t                len;
    const unsigned char  *buf;

    if (yajl_gen_get_buf(g, &buf, &len) != yajl_gen_status_ok) {
        yajl_gen_free(g);
        return NGX_ERROR;
    }

    out->data = ngx_pnalloc(pool, len);
    if (out->data == NULL) {
        yajl_gen_free(g);
        return NGX_ERROR;
    }

    out->len = len;
    ngx_memcpy(out->data, buf, len);
    yajl_gen_free(g);

    return NGX_OK;
}


void
ngx_http_pyexec_json_str(yajl_gen g, const char *s)
{
    yajl_gen_string(g, (const unsigned char *) s, ngx_strlen(s));
}


void
ngx_http_pyexec_json_kv(yajl_gen g, const char *key, u_char *val, size_t len)
{
    ngx_http_pyexec_json_str(g, key);

    if (val == NULL) {
        yajl_gen_null(g);

    } else {
        yajl_gen_string(g, val, len);
    }
}


ngx_int_t
ngx_http_pyexec_json_detail(ngx_pool_t *pool, const char *detail,
    ngx_str_t *out)
{
    yajl_gen  g;

    g = ngx_http_pyexec_json_gen();
    if (g == NULL) {
        return NGX_ERROR;
    }

    yajl_gen_map_open(g);
    ngx_http_pyexec_json_str(g, "detail");
    ngx_http_pyexec_json_str(g, detail);
    yajl_gen_map_close(g);

    return ngx_http_pyexec_json_take(g, pool, out);
}


ngx_int_t
ngx_http_pyexec_json_iso8601(yajl_gen g, time_t t)
{
    u_char     buf[32], *p;
    ngx_tm_t   tm;

    ngx_gmtime(t, &tm);

    p = ngx_sprintf(buf, "%4d-%02d-%02dT%02d:%02d:%02dZ",
                    tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                    tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);

    return yajl_gen_string(g, buf, p - buf) == yajl_gen_status_ok
           ? NGX_OK : NGX_ERROR;
}


/*
 * Copying the elements of one top-level array ({"<key>": [ ... ]}) of a
 * worker's answer into another generator: GET /sessions behind a front.
 * The answer is checked as any input is (depth, syntax); nothing is
 * emitted unless the whole document parses.
 */

typedef struct {
    yajl_gen                     g;
    const char                  *key;
    ngx_uint_t                   depth;
    ngx_uint_t                   max_depth;
    unsigned                     in_key:1;
    unsigned                     copying:1;
    unsigned                     found:1;
} ngx_http_pyexec_copy_ctx_t;


#define ngx_http_pyexec_copying(ctx)                                          \
    ((ctx)->g && (ctx)->copying && (ctx)->depth >= 2)


static int
ngx_http_pyexec_copy_null(void *data)
{
    ngx_http_pyexec_copy_ctx_t  *ctx = data;

    if (ngx_http_pyexec_copying(ctx)) {
        yajl_gen_null(ctx->g);
    }

    ctx->in_key = 0;

    return 1;
}


static int
ngx_http_pyexec_copy_boolean(void *data, int v)
{
    ngx_http_pyexec_copy_ctx_t  *ctx = data;

    if (ngx_http_pyexec_copying(ctx)) {
        yajl_gen_bool(ctx->g, v);
    }

    ctx->in_key = 0;

    return 1;
}


static int
ngx_http_pyexec_copy_number(void *data, const char *s, size_t len)
{
    ngx_http_pyexec_copy_ctx_t  *ctx = data;

    if (ngx_http_pyexec_copying(ctx)) {
        yajl_gen_number(ctx->g, s, len);
    }

    ctx->in_key = 0;

    return 1;
}


static int
ngx_http_pyexec_copy_string(void *data, const unsigned char *s, size_t len)
{
    ngx_http_pyexec_copy_ctx_t  *ctx = data;

    if (ngx_http_pyexec_copying(ctx)) {
        yajl_gen_string(ctx->g, s, len);
    }

    ctx->in_key = 0;

    return 1;
}


static int
ngx_http_pyexec_copy_key(void *data, const unsigned char *s, size_t len)
{
    ngx_http_pyexec_copy_ctx_t  *ctx = data;

    if (ngx_http_pyexec_copying(ctx)) {
        yajl_gen_string(ctx->g, s, len);
    }

    ctx->in_key = (ctx->depth == 1 && !ctx->found
                   && len == ngx_strlen(ctx->key)
                   && ngx_strncmp(s, ctx->key, len) == 0);

    return 1;
}


static int
ngx_http_pyexec_copy_open(ngx_http_pyexec_copy_ctx_t *ctx, ngx_uint_t map)
{
    if (ngx_http_pyexec_copying(ctx)) {
        if (map) {
            yajl_gen_map_open(ctx->g);

        } else {
            yajl_gen_array_open(ctx->g);
        }

    } else if (ctx->in_key && !map) {
        ctx->copying = 1;
        ctx->found = 1;
    }

    ctx->in_key = 0;

    return ++ctx->depth <= ctx->max_depth;
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
            yajl_gen_map_close(ctx->g);

        } else {
            yajl_gen_array_close(ctx->g);
        }

    } else if (ctx->depth == 1) {
        ctx->copying = 0;
    }

    return 1;
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

    return (st == yajl_status_ok && ctx->found) ? NGX_OK : NGX_DECLINED;
}


ngx_int_t
ngx_http_pyexec_json_copy_array(yajl_gen g, u_char *buf, size_t len,
    const char *key, ngx_uint_t max_depth)
{
    ngx_int_t                    rc;
    ngx_http_pyexec_copy_ctx_t   ctx;

    if (len == 0) {
        return NGX_DECLINED;
    }

    /* a dry run first: a bad document must leave g untouched */

    ngx_memzero(&ctx, sizeof(ngx_http_pyexec_copy_ctx_t));
    ctx.key = key;
    ctx.max_depth = max_depth;

    rc = ngx_http_pyexec_copy_run(&ctx, buf, len);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_memzero(&ctx, sizeof(ngx_http_pyexec_copy_ctx_t));
    ctx.g = g;
    ctx.key = key;
    ctx.max_depth = max_depth;

    return ngx_http_pyexec_copy_run(&ctx, buf, len);
}
