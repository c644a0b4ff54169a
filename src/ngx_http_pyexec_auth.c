
/*
 * Copyright (C) pyexec authors
 *
 * pyexec_auth_token: every request of a location where it is set must
 * carry "Authorization: Bearer <token>", checked in the access phase (so
 * it covers the static /files downloads and the proxied front as well as
 * the module's handlers).  The comparison takes the same time whatever
 * the token sent.  Subrequests are not checked (nginx skips the access
 * phase for them); "pyexec_auth_token off" opens one location (/health).
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_auth.h"


static ngx_int_t ngx_http_pyexec_auth_handler(ngx_http_request_t *r);
static ngx_uint_t ngx_http_pyexec_auth_equal(ngx_str_t *a, ngx_str_t *b);


ngx_int_t
ngx_http_pyexec_auth_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_pyexec_auth_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_http_pyexec_auth_handler(ngx_http_request_t *r)
{
    ngx_str_t                    got, type;
    ngx_table_elt_t             *h;
    ngx_http_complex_value_t     cv;
    ngx_http_pyexec_loc_conf_t  *plcf;

    static ngx_str_t  unauthorized = ngx_string(
        "{\"detail\":\"Not authenticated\"}");

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_pyexec_module);

    if (plcf->auth_token.len == 0) {
        return NGX_DECLINED;
    }

    h = r->headers_in.authorization;
    ngx_str_null(&got);

    if (h && h->value.len > 7
        && ngx_strncasecmp(h->value.data, (u_char *) "Bearer ", 7) == 0)
    {
        got.data = h->value.data + 7;
        got.len = h->value.len - 7;
    }

    if (got.len && ngx_http_pyexec_auth_equal(&got, &plcf->auth_token)) {
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "pyexec: %s bearer token",
                  h ? "wrong" : "no");

    r->headers_out.www_authenticate = ngx_list_push(&r->headers_out.headers);
    if (r->headers_out.www_authenticate == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.www_authenticate->hash = 1;
    ngx_str_set(&r->headers_out.www_authenticate->key, "WWW-Authenticate");
    ngx_str_set(&r->headers_out.www_authenticate->value, "Bearer");

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * the JSON answer is sent here and the request finalized; NGX_DONE
     * stops the phases (a 401 returned would get nginx's HTML page)
     */

    ngx_memzero(&cv, sizeof(ngx_http_complex_value_t));
    cv.value = unauthorized;
    ngx_str_set(&type, "application/json");

    ngx_http_finalize_request(r,
        ngx_http_send_response(r, NGX_HTTP_UNAUTHORIZED, &type, &cv));

    return NGX_DONE;
}


/* constant time in the content of both: every byte is looked at */

static ngx_uint_t
ngx_http_pyexec_auth_equal(ngx_str_t *a, ngx_str_t *b)
{
    size_t      i;
    ngx_uint_t  diff;

    diff = a->len ^ b->len;

    for (i = 0; i < b->len; i++) {
        diff |= b->data[i] ^ (i < a->len ? a->data[i] : 0);
    }

    return diff == 0;
}
