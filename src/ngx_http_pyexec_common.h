
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_HTTP_PYEXEC_COMMON_H_INCLUDED_
#define _NGX_HTTP_PYEXEC_COMMON_H_INCLUDED_


/*
 * <Python.h> comes first: it defines _GNU_SOURCE/_POSIX_C_SOURCE and other
 * feature macros that must be set before any system header is read; nginx's
 * headers would otherwise pull <stdio.h> and friends in first.  Only
 * src/ngx_http_pyexec_interp.c uses the Python API.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <ngx_thread_pool.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>


#define NGX_HTTP_PYEXEC_SESSION_ID_MAX   256
#define NGX_HTTP_PYEXEC_UUID_LEN         36

#ifndef NGX_HTTP_GONE
#define NGX_HTTP_GONE                    410
#endif

#ifndef NGX_HTTP_UNPROCESSABLE_ENTITY
#define NGX_HTTP_UNPROCESSABLE_ENTITY    422
#endif


typedef enum {
    NGX_HTTP_PYEXEC_OP_EXECUTE = 0,
    NGX_HTTP_PYEXEC_OP_VARIABLES,
    NGX_HTTP_PYEXEC_OP_DESTROY,
    NGX_HTTP_PYEXEC_OP_REAP
} ngx_http_pyexec_op_e;


typedef enum {
    NGX_HTTP_PYEXEC_HANDLER_EXECUTE = 1,
    NGX_HTTP_PYEXEC_HANDLER_HEALTH,
    NGX_HTTP_PYEXEC_HANDLER_STATUS,
    NGX_HTTP_PYEXEC_HANDLER_SESSIONS,
    NGX_HTTP_PYEXEC_HANDLER_GATHER,
    NGX_HTTP_PYEXEC_HANDLER_UPLOAD,
    NGX_HTTP_PYEXEC_HANDLER_FILES
} ngx_http_pyexec_handler_e;


typedef struct {
    ngx_str_t                    thread_pool_name;
    ngx_thread_pool_t           *thread_pool;
    ngx_str_t                    session_init;
    ngx_str_t                    data_dir;
    ngx_str_t                    python;       /* sys.executable */
    ngx_uint_t                   session_max;
    ngx_msec_t                   session_idle_timeout;
    ngx_uint_t                   session_queue;
    size_t                       output_max;
    ngx_msec_t                   timeout;
    ngx_msec_t                   timeout_max;
    ngx_msec_t                   kill_grace;
    ngx_uint_t                   json_max_depth;
    off_t                        memory_limit;     /* 0: off */
    off_t                        session_registry; /* 0: off */
    ngx_str_t                    worker_socket;
    ngx_str_t                    session_secret;
    ngx_uint_t                   uses_python;  /* some location runs code */
    ngx_uint_t                   uses_io;      /* /upload somewhere */
    ngx_uint_t                   upload_replace;
    ngx_str_t                    io_thread_pool_name;
    ngx_thread_pool_t           *io_thread_pool;
} ngx_http_pyexec_main_conf_t;


typedef struct {
    ngx_uint_t                   kind;
    ngx_array_t                 *gather;      /* of ngx_str_t: URIs */
    ngx_str_t                    auth_token;  /* empty: open */
} ngx_http_pyexec_loc_conf_t;


typedef struct ngx_http_pyexec_session_s  ngx_http_pyexec_session_t;

struct ngx_http_pyexec_session_s {
    ngx_http_pyexec_session_t   *hash_next;
    ngx_queue_t                  lru;
    void                        *ns;          /* owned by the Python thread */
    void                        *injected;    /* owned by the Python thread */
    ngx_uint_t                   refs;
    ngx_uint_t                   pending;
    ngx_uint_t                   execution_count;
    time_t                       created_at;
    time_t                       last_used;
    uint32_t                     hash;
    unsigned                     in_table:1;
    size_t                       id_len;
    u_char                       id[1];
};


typedef struct {
    ngx_thread_task_t           *task;
    ngx_http_pyexec_op_e         op;
    ngx_http_pyexec_session_t   *session;
    ngx_http_request_t          *r;           /* NULL for server tasks */
    ngx_log_t                   *log;

    /* input, read-only in the thread */
    u_char                      *code;
    size_t                       code_len;
    ngx_uint_t                   seq;
    ngx_uint_t                   execution_count;
    ngx_msec_t                   timeout;
    unsigned                     init_session:1;

    /* written by the thread, read after completion */
    volatile uint64_t            started_ms;
    volatile ngx_uint_t          finished;
    yajl_gen                     gen;         /* response JSON */
    ngx_int_t                    status;

    /* event loop only */
    ngx_event_t                  timer;
    unsigned                     interrupted:1;
    unsigned                     stuck:1;
} ngx_http_pyexec_task_t;


typedef struct {
    ngx_str_t                    code;
    ngx_str_t                    session_id;
    ngx_msec_t                   timeout;
    unsigned                     has_code:1;
    unsigned                     has_session_id:1;
    unsigned                     has_timeout:1;
} ngx_http_pyexec_request_t;


/* per-process state: the only global, released in exit_process */

typedef struct {
    ngx_http_pyexec_main_conf_t *pmcf;
    ngx_log_t                   *log;
    ngx_http_pyexec_session_t  **buckets;
    ngx_uint_t                   nbuckets;
    ngx_uint_t                   nsessions;
    ngx_queue_t                  lru;
    ngx_event_t                  expire;
    time_t                       started;
    ngx_uint_t                   seq;
    uint64_t                     executions;
    uint64_t                     timeouts;
    uint64_t                     started_ms;
    unsigned                     ready:1;
    unsigned                     failed:1;
    unsigned                     recycling:1;
} ngx_http_pyexec_proc_t;


extern ngx_module_t            ngx_http_pyexec_module;
extern ngx_http_pyexec_proc_t  ngx_http_pyexec_proc;


/* handler.c */
ngx_int_t ngx_http_pyexec_handler(ngx_http_request_t *r);
void ngx_http_pyexec_task_done(ngx_http_pyexec_task_t *t);
ngx_int_t ngx_http_pyexec_body(ngx_http_request_t *r, ngx_str_t *body);
ngx_int_t ngx_http_pyexec_send_json(ngx_http_request_t *r, ngx_uint_t status,
    yajl_gen g);
ngx_int_t ngx_http_pyexec_method_not_allowed(ngx_http_request_t *r);
ngx_int_t ngx_http_pyexec_get_only(ngx_http_request_t *r);
ngx_int_t ngx_http_pyexec_post_body(ngx_http_request_t *r,
    ngx_http_client_body_handler_pt done);

/* route.c */
ngx_int_t ngx_http_pyexec_route_add_variables(ngx_conf_t *cf);
ngx_str_t *ngx_http_pyexec_route_worker(void);
ngx_int_t ngx_http_pyexec_route_worker_header(ngx_http_request_t *r);
ngx_table_elt_t *ngx_http_pyexec_route_header(ngx_http_request_t *r,
    ngx_str_t *name);
ngx_int_t ngx_http_pyexec_route_header_id(ngx_http_request_t *r,
    ngx_str_t *id);
ngx_uint_t ngx_http_pyexec_route_is_new(ngx_http_request_t *r);
ngx_int_t ngx_http_pyexec_path_id(ngx_pool_t *pool, u_char *p, u_char *last,
    ngx_str_t *id);
ngx_int_t ngx_http_pyexec_gather(ngx_http_request_t *r);

/* auth.c */
ngx_int_t ngx_http_pyexec_auth_init(ngx_conf_t *cf);

/* upload.c */
ngx_int_t ngx_http_pyexec_upload(ngx_http_request_t *r);
ngx_int_t ngx_http_pyexec_files(ngx_http_request_t *r);

/* socket.c */
ngx_listening_t *ngx_http_pyexec_socket_template(ngx_cycle_t *cycle,
    ngx_str_t *tmpl);
ngx_int_t ngx_http_pyexec_socket_init_process(ngx_cycle_t *cycle,
    ngx_str_t *tmpl);
void ngx_http_pyexec_socket_exit_process(void);

/* json.c */
ngx_int_t ngx_http_pyexec_json_parse_request(ngx_pool_t *pool,
    u_char *buf, size_t len, ngx_uint_t max_depth,
    ngx_http_pyexec_request_t *req, ngx_str_t *err);
yajl_gen ngx_http_pyexec_json_gen(void);
ngx_int_t ngx_http_pyexec_json_take(yajl_gen g, ngx_pool_t *pool,
    ngx_str_t *out);
void ngx_http_pyexec_json_str(yajl_gen g, const char *s);
void ngx_http_pyexec_json_kv(yajl_gen g, const char *key, u_char *val,
    size_t len);
ngx_int_t ngx_http_pyexec_json_detail(ngx_pool_t *pool, const char *detail,
    ngx_str_t *out);
ngx_int_t ngx_http_pyexec_json_iso8601(yajl_gen g, time_t t);
ngx_int_t ngx_http_pyexec_json_copy_array(yajl_gen g, u_char *buf,
    size_t len, const char *key, ngx_uint_t max_depth);

/* session.c */
ngx_int_t ngx_http_pyexec_session_init_process(ngx_cycle_t *cycle);
void ngx_http_pyexec_session_exit_process(void);
ngx_http_pyexec_session_t *ngx_http_pyexec_session_find(u_char *id,
    size_t len);
ngx_http_pyexec_session_t *ngx_http_pyexec_session_create(u_char *id,
    size_t len, ngx_log_t *log);
void ngx_http_pyexec_session_remove(ngx_http_pyexec_session_t *s);
void ngx_http_pyexec_session_release(ngx_http_pyexec_session_t *s);
void ngx_http_pyexec_session_touch(ngx_http_pyexec_session_t *s);
void ngx_http_pyexec_session_mint(u_char *out);
ngx_int_t ngx_http_pyexec_session_lost(u_char *id, size_t len);

ngx_int_t ngx_http_pyexec_id_has_control(u_char *p, size_t len);
ngx_int_t ngx_http_pyexec_id_is_valid(u_char *p, size_t len);

ngx_int_t ngx_http_pyexec_registry_conf(ngx_conf_t *cf, size_t size);
void ngx_http_pyexec_registry_init_process(ngx_cycle_t *cycle);
void ngx_http_pyexec_registry_add(u_char *id, size_t len, ngx_log_t *log);
void ngx_http_pyexec_registry_del(u_char *id, size_t len);
ngx_int_t ngx_http_pyexec_registry_lost(u_char *id, size_t len);
void ngx_http_pyexec_session_set_secret(ngx_str_t *configured);

/* child.c */
ngx_int_t ngx_http_pyexec_child_init_process(ngx_cycle_t *cycle);
ngx_uint_t ngx_http_pyexec_child_exited(void);
void ngx_http_pyexec_child_start_reaper(ngx_log_t *log);

/* task.c */
ngx_int_t ngx_http_pyexec_task_post(ngx_http_pyexec_task_t *t);
ngx_http_pyexec_task_t *ngx_http_pyexec_task_alloc(ngx_pool_t *pool);
ngx_int_t ngx_http_pyexec_task_post_server(ngx_http_pyexec_op_e op,
    ngx_http_pyexec_session_t *s, ngx_event_handler_pt done);
void ngx_http_pyexec_task_recycle_worker(ngx_log_t *log);

/* interp.c */
ngx_int_t ngx_http_pyexec_interp_start(ngx_http_pyexec_main_conf_t *pmcf,
    ngx_log_t *log);
void ngx_http_pyexec_interp_run(ngx_http_pyexec_task_t *t);
void ngx_http_pyexec_interp_interrupt(ngx_uint_t seq);
const char *ngx_http_pyexec_interp_version(void);
uint64_t ngx_http_pyexec_interp_now_ms(void);


#endif /* _NGX_HTTP_PYEXEC_COMMON_H_INCLUDED_ */
