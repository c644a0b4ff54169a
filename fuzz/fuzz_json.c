
/*
 * Copyright (C) pyexec authors
 *
 * libFuzzer harness for the request-JSON parser (the body of POST
 * /execute, parsed by the front and by the worker) and for the copy of
 * a worker's session list that the front's gather does.
 *
 * What must hold for any input:
 *  - an accepted body has a NUL-terminated code string (a NUL inside is
 *    Python's to refuse), a session id of at
 *    most 256 bytes with no control character, a positive timeout, and
 *    is JSON that yajl's tree parser accepts too;
 *  - a refused body gets a 422 document: JSON with a non-empty "detail";
 *  - when an allocation fails, the parser says so (NGX_ERROR), whichever
 *    allocation it is;
 *  - the gather's copy either leaves the generator untouched or adds
 *    valid JSON;
 *  - the input as an X-Session-Id or /sessions/{id} id: when the id
 *    checks pass it, yajl's validating generator writes it, so no answer
 *    that echoes it is ever broken JSON;
 *  - the front's scan for the session_id (from nginx's buffers, cut
 *    anywhere) finds what the worker's parser takes from an accepted body,
 *    and the same id whether the body is in one buffer or two.
 */


#include "ngx_fuzz.h"

#include "ngx_http_pyexec_json.h"

#include <yajl/yajl_tree.h>


#define NGX_FUZZ_DEPTH  64


static void ngx_fuzz_json_detail(ngx_str_t *err);
static void ngx_fuzz_json_copy(const uint8_t *data, size_t size);
static void ngx_fuzz_json_id(u_char *p, size_t len);
static void ngx_fuzz_json_route(u_char *buf, size_t size, size_t cut,
    ngx_int_t rc, ngx_http_pyexec_request_t *req);
static yajl_val ngx_fuzz_json_tree(const u_char *p, size_t len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                     *buf;
    size_t                      n;
    ngx_int_t                   rc;
    ngx_str_t                   err;
    yajl_val                    tree;
    ngx_http_pyexec_request_t   req;

    /* an exact-size copy: a read past the end is caught */
    buf = malloc(size ? size : 1);
    ngx_fuzz_assert(buf != NULL);
    ngx_memcpy(buf, data, size);

    ngx_fuzz_pool_reset(0);

    rc = ngx_http_pyexec_json_parse_request(NULL, buf, size, NGX_FUZZ_DEPTH,
                                            &req, &err);

    if (rc == NGX_OK) {
        ngx_fuzz_assert(req.has_code);
        ngx_fuzz_assert(req.code.data[req.code.len] == '\0');

        if (req.has_session_id) {
            ngx_fuzz_assert(req.session_id.len
                            <= NGX_HTTP_PYEXEC_SESSION_ID_MAX);
            ngx_fuzz_assert(!ngx_http_pyexec_id_has_control(
                                req.session_id.data, req.session_id.len));
        }

        if (req.has_timeout) {
            ngx_fuzz_assert(req.timeout > 0);
        }

        tree = ngx_fuzz_json_tree(buf, size);
        ngx_fuzz_assert(tree != NULL && YAJL_IS_OBJECT(tree));
        yajl_tree_free(tree);

    } else {
        ngx_fuzz_assert(rc == NGX_DECLINED);
        ngx_fuzz_json_detail(&err);
    }

    /* again, with each allocation failing in turn (one per input) */

    n = ngx_fuzz_pool_count();

    if (n) {
        ngx_fuzz_pool_reset(1 + (size * 31 + (size ? data[0] : 0)) % n);
        rc = ngx_http_pyexec_json_parse_request(NULL, buf, size,
                                                NGX_FUZZ_DEPTH, &req, &err);
        ngx_fuzz_assert(rc == NGX_ERROR);
    }

    ngx_fuzz_pool_reset(0);

    /* the first parse's request, as a failed allocation left req */
    rc = ngx_http_pyexec_json_parse_request(NULL, buf, size, NGX_FUZZ_DEPTH,
                                            &req, &err);
    ngx_fuzz_json_route(buf, size, size ? (data[0] * 7 + size) % (size + 1)
                                        : 0, rc, &req);

    ngx_fuzz_json_copy(buf, size);

    ngx_fuzz_json_id(buf, size);

    free(buf);

    return 0;
}


static void
ngx_fuzz_json_route(u_char *buf, size_t size, size_t cut, ngx_int_t rc,
    ngx_http_pyexec_request_t *req)
{
    ngx_buf_t                   b1, b2;
    ngx_str_t                   id1, id2;
    ngx_int_t                   r1, r2, r3;
    ngx_chain_t                 c1, c2;
    ngx_http_pyexec_request_t   req2;

    ngx_memzero(&b1, sizeof(ngx_buf_t));
    ngx_memzero(&b2, sizeof(ngx_buf_t));

    b1.pos = buf;
    b1.last = buf + size;
    c1.buf = &b1;
    c1.next = NULL;

    r1 = ngx_http_pyexec_json_session_id(NULL, &c1, NGX_FUZZ_DEPTH, &id1);

    b1.last = buf + cut;
    b2.pos = buf + cut;
    b2.last = buf + size;
    c1.next = &c2;
    c2.buf = &b2;
    c2.next = NULL;

    r2 = ngx_http_pyexec_json_session_id(NULL, &c1, NGX_FUZZ_DEPTH, &id2);

    ngx_fuzz_assert(r1 == r2 && (r1 == NGX_OK || r1 == NGX_DECLINED));

    if (r1 == NGX_OK) {
        ngx_fuzz_assert(id1.len == id2.len
                        && ngx_memcmp(id1.data, id2.data, id1.len) == 0);
    }

    /* the front's whole parse of the two buffers: the same request */

    r3 = ngx_http_pyexec_json_parse_chain(NULL, &c1, NGX_FUZZ_DEPTH, &req2);

    ngx_fuzz_assert(r3 == rc);

    if (rc != NGX_OK) {
        return;
    }

    ngx_fuzz_assert(req2.code.len == req->code.len
                    && ngx_memcmp(req2.code.data, req->code.data,
                                  req->code.len) == 0
                    && req2.code.data[req2.code.len] == '\0'
                    && req2.has_session_id == req->has_session_id
                    && req2.session_id.len == req->session_id.len
                    && (req->session_id.len == 0
                        || ngx_memcmp(req2.session_id.data,
                                      req->session_id.data,
                                      req->session_id.len) == 0)
                    && req2.has_timeout == req->has_timeout
                    && req2.timeout == req->timeout
                    && req2.stream == req->stream
                    && req2.async == req->async);

    if (req->has_session_id) {
        ngx_fuzz_assert(r1 == NGX_OK && id1.len == req->session_id.len
                        && ngx_memcmp(id1.data, req->session_id.data,
                                      id1.len) == 0);

    } else {
        ngx_fuzz_assert(r1 == NGX_DECLINED);
    }
}


static void
ngx_fuzz_json_detail(ngx_str_t *err)
{
    yajl_val     tree, detail;
    const char  *path[] = { "detail", NULL };

    ngx_fuzz_assert(err->data != NULL && err->len > 0);

    tree = ngx_fuzz_json_tree(err->data, err->len);
    ngx_fuzz_assert(tree != NULL);

    detail = yajl_tree_get(tree, path, yajl_t_array);
    ngx_fuzz_assert(detail != NULL && YAJL_GET_ARRAY(detail)->len > 0);

    yajl_tree_free(tree);
}


static void
ngx_fuzz_json_copy(const uint8_t *data, size_t size)
{
    size_t                   len, before;
    yajl_val                 tree;
    ngx_int_t                rc;
    const u_char            *out;
    ngx_http_pyexec_json_t   j;

    ngx_fuzz_assert(ngx_http_pyexec_json_init(&j) == NGX_OK);

    ngx_http_pyexec_json_array_open(&j);
    ngx_fuzz_assert(ngx_http_pyexec_json_peek(&j, &out, &before) == NGX_OK);

    rc = ngx_http_pyexec_json_copy_array(&j, (u_char *) data, size,
                                         "sessions", NGX_FUZZ_DEPTH);

    /* the input was parsed before: the writer itself never fails here */

    ngx_fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED);

    if (rc == NGX_DECLINED) {
        ngx_fuzz_assert(ngx_http_pyexec_json_peek(&j, &out, &len) == NGX_OK);
        ngx_fuzz_assert(len == before);
    }

    ngx_http_pyexec_json_array_close(&j);
    ngx_fuzz_assert(ngx_http_pyexec_json_peek(&j, &out, &len) == NGX_OK);

    tree = ngx_fuzz_json_tree(out, len);
    ngx_fuzz_assert(tree != NULL && YAJL_IS_ARRAY(tree));
    yajl_tree_free(tree);

    ngx_http_pyexec_json_free(&j);
}


/* yajl_tree_parse() wants a C string */

static yajl_val
ngx_fuzz_json_tree(const u_char *p, size_t len)
{
    char      *s;
    yajl_val   v;

    s = malloc(len + 1);
    ngx_fuzz_assert(s != NULL);
    ngx_memcpy(s, p, len);
    s[len] = '\0';

    v = yajl_tree_parse(s, NULL, 0);

    free(s);

    return v;
}


/*
 * An id from a header or a path (ngx_http_pyexec_id_is_valid(), as the
 * worker's X-Session-Id and /sessions/{id} checks and the front's routing
 * use it): every id it lets through is one the writer takes, so an answer
 * naming it is never refused; and one it refuses is never routed on.
 */

static void
ngx_fuzz_json_id(u_char *p, size_t len)
{
    size_t                   n;
    ngx_str_t                taken;
    const u_char            *out;
    ngx_http_pyexec_json_t   j;

    if (len > NGX_HTTP_PYEXEC_SESSION_ID_MAX) {
        return;
    }

    if (!ngx_http_pyexec_json_is_utf8(p, len)) {

        /*
         * the writer refuses it, writes nothing more (the key after it
         * does not slide into its value slot) and take() refuses the
         * document: a failed generator never reaches the wire.  yajl's
         * check is laxer than ours on overlong forms (E0 9C 9B passes
         * it): what keeps those off the wire is the id check above it.
         */

        ngx_fuzz_assert(!ngx_http_pyexec_id_is_valid(p, len));
        ngx_fuzz_assert(ngx_http_pyexec_json_init(&j) == NGX_OK);
        ngx_http_pyexec_json_map_open(&j);
        ngx_http_pyexec_json_kv(&j, "session_id", p, len);
        ngx_http_pyexec_json_key(&j, "success");
        ngx_http_pyexec_json_bool(&j, 1);
        ngx_http_pyexec_json_map_close(&j);

        if (j.rc == yajl_gen_status_ok) {
            ngx_http_pyexec_json_free(&j);
            return;
        }

        ngx_fuzz_assert(j.rc == yajl_gen_invalid_string);
        ngx_fuzz_assert(ngx_http_pyexec_json_take(&j, NULL, &taken)
                        == NGX_ERROR);
        ngx_fuzz_assert(j.g == NULL);
        return;
    }

    if (!ngx_http_pyexec_id_is_valid(p, len)) {
        return;
    }

    ngx_fuzz_assert(ngx_http_pyexec_json_is_utf8(p, len));

    ngx_fuzz_assert(ngx_http_pyexec_json_init(&j) == NGX_OK);
    ngx_http_pyexec_json_map_open(&j);
    ngx_http_pyexec_json_kv(&j, "session_id", p, len);
    ngx_http_pyexec_json_map_close(&j);
    ngx_fuzz_assert(j.rc == yajl_gen_status_ok);
    ngx_fuzz_assert(ngx_http_pyexec_json_peek(&j, &out, &n) == NGX_OK);
    ngx_http_pyexec_json_free(&j);
}
