
/*
 * Copyright (C) pyexec authors
 *
 * The reply and body layer under every content handler: method checks,
 * reading the request body into one buffer, sending a JSON answer.  A
 * leaf, like core's ngx_http_send_response() and echo's util file: it
 * calls nothing else of the module (the JSON writer's type is read, its
 * functions are not called: the document is taken with yajl directly).
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_reply.h"


static ngx_str_t   ngx_http_pyexec_x_worker = ngx_string("X-Pyexec-Worker");

static u_char      ngx_http_pyexec_worker_buf[NGX_INT_T_LEN * 2 + 2];
static ngx_str_t   ngx_http_pyexec_worker_str;


/* "<worker number>/<pid>": the X-Pyexec-Worker header, $pyexec_worker */

ngx_str_t *
ngx_http_pyexec_worker_name(void)
{
    if (ngx_http_pyexec_worker_str.len == 0) {
        ngx_http_pyexec_worker_str.data = ngx_http_pyexec_worker_buf;
        ngx_http_pyexec_worker_str.len =
            ngx_sprintf(ngx_http_pyexec_worker_buf, "%ui/%P",
                        (ngx_uint_t) (ngx_worker == (ngx_uint_t) -1
                                      ? 0 : ngx_worker), ngx_pid)
            - ngx_http_pyexec_worker_buf;
    }

    return &ngx_http_pyexec_worker_str;
}


/* "Retry-After: <seconds>" on the answer about to be sent */

ngx_int_t
ngx_http_pyexec_retry_after(ngx_http_request_t *r, ngx_uint_t secs)
{
    u_char            buf[NGX_INT_T_LEN];
    static ngx_str_t  key = ngx_string("Retry-After");

    return ngx_http_pyexec_add_header(r, &key, buf,
                                      ngx_sprintf(buf, "%ui", secs) - buf);
}


/* a header on the answer about to be sent, its value copied */

ngx_int_t
ngx_http_pyexec_add_header(ngx_http_request_t *r, ngx_str_t *key,
    u_char *value, size_t len)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(h, sizeof(ngx_table_elt_t));   /* h->next since 1.23.0 */

    h->hash = 1;
    h->key = *key;
    h->value.data = p;
    h->value.len = len;
    ngx_memcpy(p, value, len);

    return NGX_OK;
}


/* "X-Pyexec-Worker: <worker>/<pid>" on the answer about to be sent */

ngx_int_t
ngx_http_pyexec_worker_header(ngx_http_request_t *r)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(h, sizeof(ngx_table_elt_t));   /* h->next since 1.23.0 */

    h->hash = 1;
    h->key = ngx_http_pyexec_x_worker;
    h->value = *ngx_http_pyexec_worker_name();

    return NGX_OK;
}


/* a header of a list (headers_in, headers_out) by name, or NULL */

ngx_table_elt_t *
ngx_http_pyexec_header(ngx_list_t *headers, ngx_str_t *name)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &headers->part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].hash != 0 && h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            return &h[i];
        }
    }
}


/* a module's variables, from its table ended by ngx_http_null_variable */

ngx_int_t
ngx_http_pyexec_add_variables(ngx_conf_t *cf, ngx_http_variable_t *vars)
{
    ngx_http_variable_t  *var, *v;

    for (v = vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
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


/* the whole request body, in memory or in its temp file, NUL-terminated */

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


ngx_int_t
ngx_http_pyexec_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *body)
{
    static ngx_str_t  json = ngx_string("application/json");

    return ngx_http_pyexec_send_type(r, status, &json, body);
}


ngx_int_t
ngx_http_pyexec_send_type(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_str_t *body)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    r->headers_out.status = status;
    r->headers_out.content_length_n = body->len;
    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;

    if (ngx_http_pyexec_worker_header(r) != NGX_OK) {
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


/*
 * The one way a generated document reaches the wire: a writer that
 * failed (j->rc, j->call) becomes a 500 and an [alert], never a
 * half-written answer.  The writer is freed either way.
 */

ngx_int_t
ngx_http_pyexec_send_json(ngx_http_request_t *r, ngx_uint_t status,
    ngx_http_pyexec_json_t *j)
{
    size_t          len;
    ngx_str_t       body;
    const u_char   *buf;

    if (j->g == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (j->rc == yajl_gen_status_ok) {
        j->rc = yajl_gen_get_buf(j->g, &buf, &len);
        j->call = "yajl_gen_get_buf()";
    }

    if (j->rc != yajl_gen_status_ok) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "pyexec: %s failed with yajl_gen_status %d: "
                      "the answer was not sent", j->call, (int) j->rc);

        yajl_gen_free(j->g);
        j->g = NULL;

        return ngx_http_pyexec_send_detail(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                           "internal error: the answer "
                                           "could not be encoded as JSON");
    }

    body.len = len;
    body.data = ngx_pnalloc(r->pool, len);

    if (body.data) {
        ngx_memcpy(body.data, buf, len);
    }

    yajl_gen_free(j->g);
    j->g = NULL;

    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_pyexec_send(r, status, &body);
}


/* {"detail": "<text>"}: FastAPI's shape for errors; text is our ASCII */

ngx_int_t
ngx_http_pyexec_send_detail(ngx_http_request_t *r, ngx_uint_t status,
    const char *detail)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   body;

    len = ngx_strlen(detail);

    body.len = sizeof("{\"detail\":\"\"}") - 1
               + ngx_escape_json(NULL, (u_char *) detail, len) + len;

    body.data = ngx_pnalloc(r->pool, body.len);
    if (body.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = ngx_cpymem(body.data, "{\"detail\":\"", sizeof("{\"detail\":\"") - 1);
    p = (u_char *) ngx_escape_json(p, (u_char *) detail, len);
    *p++ = '"';
    *p = '}';

    return ngx_http_pyexec_send(r, status, &body);
}


ngx_int_t
ngx_http_pyexec_method_not_allowed(ngx_http_request_t *r)
{
    return ngx_http_pyexec_send_detail(r, NGX_HTTP_NOT_ALLOWED,
                                       "Method Not Allowed");
}
