
/*
 * Copyright (C) pyexec authors
 *
 * Module wiring only: directives, configuration, process hooks.
 * The parts live in src/, one file per concern.
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_auth.h"
#include "ngx_http_pyexec_child.h"
#include "ngx_http_pyexec_front.h"
#include "ngx_http_pyexec_handler.h"
#include "ngx_http_pyexec_interp.h"
#include "ngx_http_pyexec_journal.h"
#include "ngx_http_pyexec_metrics.h"
#include "ngx_http_pyexec_placement.h"
#include "ngx_http_pyexec_registry.h"
#include "ngx_http_pyexec_route.h"
#include "ngx_http_pyexec_session.h"
#include "ngx_http_pyexec_socket.h"
#include "ngx_http_pyexec_stream.h"
#include "ngx_http_pyexec_upload.h"


/* what a content-handler directive needs (cmd->offset) */
#define NGX_HTTP_PYEXEC_NEEDS_PYTHON  0x01
#define NGX_HTTP_PYEXEC_NEEDS_IO      0x02
#define NGX_HTTP_PYEXEC_GATHER_METRICS  0x04


static ngx_int_t ngx_http_pyexec_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_pyexec_postconfiguration(ngx_conf_t *cf);
static char *ngx_http_pyexec_set_token(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_pyexec_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_pyexec_init_main_conf(ngx_conf_t *cf, void *conf);
static char *ngx_http_pyexec_set_init_file(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_pyexec_set_size_off(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void *ngx_http_pyexec_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_pyexec_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_pyexec_set_handler(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_pyexec_set_gather(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_pyexec_check_positive(ngx_conf_t *cf, void *post,
    void *data);
static ngx_int_t ngx_http_pyexec_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_pyexec_check_state_dir(ngx_cycle_t *cycle,
    ngx_http_pyexec_main_conf_t *pmcf);
static ngx_int_t ngx_http_pyexec_init_process(ngx_cycle_t *cycle);
static void ngx_http_pyexec_exit_process(ngx_cycle_t *cycle);


/* below 64m the interpreter and its libraries do not even start */
static off_t  ngx_http_pyexec_memory_min = 64 * 1024 * 1024;
static off_t  ngx_http_pyexec_registry_min = 64 * 1024;

static ngx_conf_post_t  ngx_http_pyexec_positive_post = {
    ngx_http_pyexec_check_positive
};


static ngx_conf_enum_t  ngx_http_pyexec_upload_modes[] = {
    { ngx_string("replace"), 1 },
    { ngx_string("keep"), 0 },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_pyexec_commands[] = {

    { ngx_string("pyexec_execute"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_pyexec_set_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_PYEXEC_NEEDS_PYTHON,
      (void *) ngx_http_pyexec_execute_handler },

    { ngx_string("pyexec_health"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_pyexec_set_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) ngx_http_pyexec_health_handler },

    { ngx_string("pyexec_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_pyexec_set_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_PYEXEC_NEEDS_PYTHON,
      (void *) ngx_http_pyexec_status_handler },

    { ngx_string("pyexec_sessions"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_pyexec_set_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_PYEXEC_NEEDS_PYTHON,
      (void *) ngx_http_pyexec_sessions_handler },

    { ngx_string("pyexec_sessions_gather"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_pyexec_set_gather,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) ngx_http_pyexec_gather_handler },

    { ngx_string("pyexec_executions"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_pyexec_set_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) ngx_http_pyexec_executions_handler },

    { ngx_string("pyexec_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_pyexec_set_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      (void *) ngx_http_pyexec_metrics_handler },

    { ngx_string("pyexec_metrics_gather"),
      NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_pyexec_set_gather,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_PYEXEC_GATHER_METRICS,
      (void *) ngx_http_pyexec_gather_handler },

    { ngx_string("pyexec_upload"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_pyexec_set_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_PYEXEC_NEEDS_IO,
      (void *) ngx_http_pyexec_upload_handler },

    { ngx_string("pyexec_files"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_pyexec_set_handler,
      NGX_HTTP_LOC_CONF_OFFSET,
      NGX_HTTP_PYEXEC_NEEDS_IO,
      (void *) ngx_http_pyexec_files_handler },

    { ngx_string("pyexec_upload_mode"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, upload_replace),
      ngx_http_pyexec_upload_modes },

    { ngx_string("pyexec_io_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, io_thread_pool_name),
      NULL },

    { ngx_string("pyexec_auth_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_pyexec_set_token,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("pyexec_worker_socket"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, worker_socket),
      NULL },

    { ngx_string("pyexec_session_secret"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, session_secret),
      NULL },

    { ngx_string("pyexec_thread_pool"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, thread_pool_name),
      NULL },

    { ngx_string("pyexec_session_init"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, session_init),
      NULL },

    { ngx_string("pyexec_session_init_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_pyexec_set_init_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, session_init),
      NULL },

    { ngx_string("pyexec_state_dir"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, state_dir),
      NULL },

    { ngx_string("pyexec_checkpoint_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, checkpoint_max),
      NULL },

    { ngx_string("pyexec_python"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, python),
      NULL },

    { ngx_string("pyexec_data_dir"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, data_dir),
      NULL },

    { ngx_string("pyexec_session_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, session_max),
      &ngx_http_pyexec_positive_post },

    { ngx_string("pyexec_session_idle_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, session_idle_timeout),
      NULL },

    { ngx_string("pyexec_session_queue"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, session_queue),
      &ngx_http_pyexec_positive_post },

    { ngx_string("pyexec_output_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, output_max),
      NULL },

    { ngx_string("pyexec_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, timeout),
      NULL },

    { ngx_string("pyexec_timeout_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, timeout_max),
      NULL },

    { ngx_string("pyexec_kill_grace"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, kill_grace),
      NULL },

    { ngx_string("pyexec_interrupt_grace"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, interrupt_grace),
      NULL },

    { ngx_string("pyexec_preload"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, preload),
      NULL },

    { ngx_string("pyexec_memory_limit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_pyexec_set_size_off,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, memory_limit),
      &ngx_http_pyexec_memory_min },

    { ngx_string("pyexec_session_registry"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_pyexec_set_size_off,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, session_registry),
      &ngx_http_pyexec_registry_min },

    { ngx_string("pyexec_placement"),
      NGX_HTTP_UPS_CONF|NGX_CONF_NOARGS,
      ngx_http_pyexec_placement,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("pyexec_worker_servers"),
      NGX_HTTP_UPS_CONF|NGX_CONF_TAKE1,
      ngx_http_pyexec_placement_servers,
      NGX_HTTP_SRV_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("pyexec_journal_time"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, journal_time),
      NULL },

    { ngx_string("pyexec_journal_execution_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, journal_execution_max),
      NULL },

    { ngx_string("pyexec_journal_max"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, journal_max),
      NULL },

    { ngx_string("pyexec_interrupt_on_disconnect"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, interrupt_on_disconnect),
      NULL },

    { ngx_string("pyexec_demote_after"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, demote_after),
      NULL },

    { ngx_string("pyexec_sched_batch"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, sched_batch),
      NULL },

    { ngx_string("pyexec_front"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_pyexec_front,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("pyexec_front_handoff"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_pyexec_loc_conf_t, handoff),
      NULL },

    { ngx_string("pyexec_json_max_depth"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_pyexec_main_conf_t, json_max_depth),
      &ngx_http_pyexec_positive_post },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_pyexec_module_ctx = {
    ngx_http_pyexec_preconfiguration,      /* preconfiguration */
    ngx_http_pyexec_postconfiguration,     /* postconfiguration */

    ngx_http_pyexec_create_main_conf,      /* create main configuration */
    ngx_http_pyexec_init_main_conf,        /* init main configuration */

    ngx_http_pyexec_placement_create_conf, /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_pyexec_create_loc_conf,       /* create location configuration */
    ngx_http_pyexec_merge_loc_conf         /* merge location configuration */
};


ngx_module_t  ngx_http_pyexec_module = {
    NGX_MODULE_V1,
    &ngx_http_pyexec_module_ctx,           /* module context */
    ngx_http_pyexec_commands,              /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_pyexec_init_module,           /* init module */
    ngx_http_pyexec_init_process,          /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_pyexec_exit_process,          /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_int_t
ngx_http_pyexec_postconfiguration(ngx_conf_t *cf)
{
    if (ngx_http_pyexec_auth_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_pyexec_front_init(cf);
}


static ngx_int_t
ngx_http_pyexec_preconfiguration(ngx_conf_t *cf)
{
    if (ngx_http_pyexec_metrics_add_variables(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_pyexec_route_add_variables(cf);
}


static void *
ngx_http_pyexec_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_pyexec_main_conf_t  *pmcf;

    pmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_pyexec_main_conf_t));
    if (pmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     pmcf->thread_pool_name = { 0, NULL };
     *     pmcf->thread_pool = NULL;
     *     pmcf->session_init = { 0, NULL };
     *     pmcf->data_dir = { 0, NULL };
     *     pmcf->python = { 0, NULL };
     *     pmcf->worker_socket = { 0, NULL };
     *     pmcf->session_secret = { 0, NULL };
     *     pmcf->uses_python = 0;
     *     pmcf->uses_io = 0;
     *     pmcf->io_thread_pool_name = { 0, NULL };
     *     pmcf->io_thread_pool = NULL;
     */

    pmcf->session_max = NGX_CONF_UNSET_UINT;
    pmcf->session_idle_timeout = NGX_CONF_UNSET_MSEC;
    pmcf->session_queue = NGX_CONF_UNSET_UINT;
    pmcf->output_max = NGX_CONF_UNSET_SIZE;
    pmcf->checkpoint_max = NGX_CONF_UNSET_SIZE;
    pmcf->timeout = NGX_CONF_UNSET_MSEC;
    pmcf->timeout_max = NGX_CONF_UNSET_MSEC;
    pmcf->kill_grace = NGX_CONF_UNSET_MSEC;
    pmcf->interrupt_grace = NGX_CONF_UNSET_MSEC;
    pmcf->preload = NGX_CONF_UNSET;
    pmcf->json_max_depth = NGX_CONF_UNSET_UINT;
    pmcf->memory_limit = NGX_CONF_UNSET;
    pmcf->session_registry = NGX_CONF_UNSET;
    pmcf->upload_replace = NGX_CONF_UNSET_UINT;
    pmcf->journal_time = NGX_CONF_UNSET_MSEC;
    pmcf->journal_execution_max = NGX_CONF_UNSET_SIZE;
    pmcf->journal_max = NGX_CONF_UNSET_SIZE;
    pmcf->interrupt_on_disconnect = NGX_CONF_UNSET;
    pmcf->sched_batch = NGX_CONF_UNSET;
    pmcf->demote_after = NGX_CONF_UNSET_MSEC;

    return pmcf;
}


static char *
ngx_http_pyexec_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_pyexec_main_conf_t *pmcf = conf;

    if (pmcf->thread_pool_name.data == NULL) {
        ngx_str_set(&pmcf->thread_pool_name, "pyexec");
    }

    ngx_conf_init_uint_value(pmcf->session_max, 10000);
    ngx_conf_init_msec_value(pmcf->session_idle_timeout, 86400000);
    ngx_conf_init_uint_value(pmcf->session_queue, 16);
    ngx_conf_init_size_value(pmcf->output_max, 1024 * 1024);
    ngx_conf_init_size_value(pmcf->checkpoint_max, 64 * 1024 * 1024);
    ngx_conf_init_msec_value(pmcf->timeout, 600000);
    ngx_conf_init_msec_value(pmcf->timeout_max, 3600000);
    ngx_conf_init_msec_value(pmcf->kill_grace, 5000);
    ngx_conf_init_msec_value(pmcf->interrupt_grace,
                             ngx_min(1000, pmcf->kill_grace / 2));
    ngx_conf_init_value(pmcf->preload, 1);
    ngx_conf_init_uint_value(pmcf->json_max_depth, 64);
    ngx_conf_init_value(pmcf->memory_limit, 0);
    ngx_conf_init_value(pmcf->session_registry, 8 * 1024 * 1024);
    ngx_conf_init_uint_value(pmcf->upload_replace, 1);
    ngx_conf_init_msec_value(pmcf->journal_time, 600000);
    ngx_conf_init_size_value(pmcf->journal_execution_max, 1024 * 1024);
    ngx_conf_init_size_value(pmcf->journal_max, 64 * 1024 * 1024);
    ngx_conf_init_value(pmcf->interrupt_on_disconnect, 0);
    ngx_conf_init_value(pmcf->sched_batch, 0);
    ngx_conf_init_msec_value(pmcf->demote_after, 0);

    if (pmcf->journal_execution_max < 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"pyexec_journal_execution_max\" must be at "
                           "least 1k");
        return NGX_CONF_ERROR;
    }

    if (pmcf->io_thread_pool_name.data == NULL) {
        ngx_str_set(&pmcf->io_thread_pool_name, "default");
    }

    if (pmcf->timeout == 0 || pmcf->timeout_max == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"pyexec_timeout\" and \"pyexec_timeout_max\" "
                           "must be positive");
        return NGX_CONF_ERROR;
    }

    if (pmcf->timeout > pmcf->timeout_max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"pyexec_timeout\" %M exceeds "
                           "\"pyexec_timeout_max\" %M",
                           pmcf->timeout, pmcf->timeout_max);
        return NGX_CONF_ERROR;
    }

    if (pmcf->interrupt_grace >= pmcf->kill_grace) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"pyexec_interrupt_grace\" %M must be shorter "
                           "than \"pyexec_kill_grace\" %M",
                           pmcf->interrupt_grace, pmcf->kill_grace);
        return NGX_CONF_ERROR;
    }

    if (pmcf->data_dir.len
        && ngx_conf_full_name(cf->cycle, &pmcf->data_dir, 0) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (pmcf->uses_io) {
        pmcf->io_thread_pool = ngx_thread_pool_add(cf,
                                                   &pmcf->io_thread_pool_name);
        if (pmcf->io_thread_pool == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (ngx_http_pyexec_placement_conf(cf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_pyexec_registry_conf(cf, pmcf->uses_python
                                          ? (size_t) pmcf->session_registry
                                          : 0)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (!pmcf->uses_python) {
        /* a front only: no interpreter, no thread pool, no registry */
        return NGX_CONF_OK;
    }

    /*
     * sys.executable: pyexec_python, else the interpreter found when the
     * module was built; subprocess, multiprocessing's spawn and loky
     * start it
     */

    if (pmcf->python.data == NULL) {
        ngx_str_set(&pmcf->python, NGX_HTTP_PYEXEC_PYTHON);
    }

    /* conf strings and the literal are NUL-terminated */

    if (access((char *) pmcf->python.data, X_OK) == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           "pyexec: the Python interpreter \"%V\" is missing "
                           "or not executable (sys.executable; built for "
                           "\"%s\": apt-get install python3, or set "
                           "pyexec_python)", &pmcf->python,
                           NGX_HTTP_PYEXEC_PYTHON);
        return NGX_CONF_ERROR;
    }

    pmcf->thread_pool = ngx_thread_pool_add(cf, &pmcf->thread_pool_name);
    if (pmcf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_pyexec_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_pyexec_loc_conf_t  *plcf;

    plcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_pyexec_loc_conf_t));
    if (plcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     plcf->handler = NULL;
     *     plcf->gather = NULL;
     *     plcf->gather_metrics = 0;
     *     plcf->auth_token = { 0, NULL };
     *     plcf->front = NULL;
     */

    plcf->handoff = NGX_CONF_UNSET;

    plcf->auth_token.len = NGX_CONF_UNSET_SIZE;

    return plcf;
}


static char *
ngx_http_pyexec_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_pyexec_loc_conf_t *prev = parent;
    ngx_http_pyexec_loc_conf_t *conf = child;

    /* handlers are per location and never inherited; the token is */

    ngx_conf_merge_value(conf->handoff, prev->handoff, 1);

    if (conf->auth_token.len == NGX_CONF_UNSET_SIZE) {
        if (prev->auth_token.len == NGX_CONF_UNSET_SIZE) {
            ngx_str_null(&conf->auth_token);

        } else {
            conf->auth_token = prev->auth_token;
        }
    }

    return NGX_CONF_OK;
}


/*
 * pyexec_session_init_file <path>: the session init code read from a file
 * when the configuration is loaded (relative to the conf prefix, as
 * "include" is); it takes the place of pyexec_session_init, so the two
 * are one setting ("is duplicate").
 */

static char *
ngx_http_pyexec_set_init_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_pyexec_main_conf_t *pmcf = conf;

    u_char           *buf;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_str_t        *value, name;
    ngx_file_info_t   fi;

    if (pmcf->session_init.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &name);
        return NGX_CONF_ERROR;
    }

    buf = NULL;
    n = NGX_ERROR;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", &name);
        goto done;
    }

    if (!ngx_is_file(&fi) || ngx_file_size(&fi) > 1024 * 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" is not a regular file of at most 1m",
                           &name);
        goto done;
    }

    buf = ngx_pnalloc(cf->pool, ngx_file_size(&fi) + 1);
    if (buf == NULL) {
        goto done;
    }

    n = ngx_read_fd(fd, buf, ngx_file_size(&fi));

    if (n != (ssize_t) ngx_file_size(&fi)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_read_fd_n " \"%V\" read %z of %O bytes",
                           &name, n, ngx_file_size(&fi));
        n = NGX_ERROR;
        goto done;
    }

    if (ngx_strlchr(buf, buf + n, '\0') != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" holds a NUL byte", &name);
        n = NGX_ERROR;
        goto done;
    }

    buf[n] = '\0';

done:

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%V\" failed", &name);
    }

    if (n == NGX_ERROR || buf == NULL) {
        return NGX_CONF_ERROR;
    }

    pmcf->session_init.data = buf;
    pmcf->session_init.len = n;

    return NGX_CONF_OK;
}


/* pyexec_auth_token <token> | off */

static char *
ngx_http_pyexec_set_token(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_pyexec_loc_conf_t *plcf = conf;

    ngx_str_t  *value;

    if (plcf->auth_token.len != NGX_CONF_UNSET_SIZE) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        ngx_str_null(&plcf->auth_token);
        return NGX_CONF_OK;
    }

    if (value[1].len < 16) {
        return "must be at least 16 characters";
    }

    plcf->auth_token = value[1];

    return NGX_CONF_OK;
}


/*
 * The content-handler directives, lua-nginx-module's way: each carries its
 * handler in cmd->post and what it needs in cmd->offset; the location's
 * handler is that function, no dispatch at request time.
 */

static char *
ngx_http_pyexec_set_handler(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_pyexec_loc_conf_t *plcf = conf;

    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_pyexec_main_conf_t  *pmcf;

    if (plcf->handler) {
        return "is duplicate";
    }

    plcf->handler = (ngx_http_handler_pt) cmd->post;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_pyexec_module);

    if (cmd->offset & NGX_HTTP_PYEXEC_NEEDS_PYTHON) {
        pmcf->uses_python = 1;
    }

    if (cmd->offset & NGX_HTTP_PYEXEC_NEEDS_IO) {
        pmcf->uses_io = 1;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = plcf->handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_pyexec_set_gather(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_pyexec_loc_conf_t *plcf = conf;

    u_char      *p;
    ngx_str_t   *value, *uri;
    ngx_uint_t   i, n, w;

    if (ngx_http_pyexec_set_handler(cf, cmd, conf) != NGX_CONF_OK) {
        return "is duplicate";
    }

    plcf->gather_metrics = (cmd->offset & NGX_HTTP_PYEXEC_GATHER_METRICS)
                           ? 1 : 0;

    plcf->gather = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                    sizeof(ngx_str_t));
    if (plcf->gather == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len == 0 || value[i].data[0] != '/') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"%V\" is not a URI of a location", &value[i]);
            return NGX_CONF_ERROR;
        }

        /* "<worker>" in a URI: one URI per worker, 0 to worker_processes */

        p = ngx_strnstr(value[i].data, "<worker>", value[i].len);
        n = p ? ngx_http_pyexec_placement_workers(cf) : 1;

        for (w = 0; w < n; w++) {
            uri = ngx_array_push(plcf->gather);
            if (uri == NULL) {
                return NGX_CONF_ERROR;
            }

            if (p == NULL) {
                *uri = value[i];
                continue;
            }

            uri->data = ngx_pnalloc(cf->pool, value[i].len + NGX_INT_T_LEN);
            if (uri->data == NULL) {
                return NGX_CONF_ERROR;
            }

            uri->len = ngx_sprintf(uri->data, "%*s%ui%*s",
                                   (size_t) (p - value[i].data),
                                   value[i].data, w,
                                   (size_t) (value[i].data + value[i].len
                                             - (p + sizeof("<worker>") - 1)),
                                   p + sizeof("<worker>") - 1)
                       - uri->data;
        }
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_pyexec_check_positive(ngx_conf_t *cf, void *post, void *data)
{
    ngx_uint_t  *np = data;

    if (*np == 0) {
        return "must be positive";
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_pyexec_init_module(ngx_cycle_t *cycle)
{
    ngx_str_t                     none = ngx_null_string;
    ngx_http_pyexec_main_conf_t  *pmcf;

    /*
     * the master keeps one secret across reloads and worker respawns;
     * pyexec_session_secret shares one between hosts
     */

    pmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_pyexec_module);

    ngx_http_pyexec_session_set_secret(pmcf ? &pmcf->session_secret : &none);

    /* listening sockets exist by now: a wrong template fails the start */

    if (pmcf && pmcf->worker_socket.len
        && ngx_http_pyexec_socket_template(cycle, &pmcf->worker_socket)
           == NULL)
    {
        return NGX_ERROR;
    }

    if (pmcf && pmcf->state_dir.len
        && ngx_http_pyexec_check_state_dir(cycle, pmcf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (pmcf && pmcf->thread_pool && pmcf->preload) {
        ngx_http_pyexec_interp_preload(cycle, pmcf);
    }

    if (pmcf && pmcf->thread_pool && pmcf->demote_after
        && ngx_http_pyexec_interp_nice_limit(cycle) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_pyexec_front_init_module(cycle);
}


/*
 * The state folder holds pickles that the workers load: as private as the
 * server.  Made (0700, owned by the worker user) when missing; [emerg]
 * when it is not a folder, is writable by others, or is not the worker
 * user's.  The master runs this (as root when workers change user).
 */

static ngx_int_t
ngx_http_pyexec_check_state_dir(ngx_cycle_t *cycle,
    ngx_http_pyexec_main_conf_t *pmcf)
{
    ngx_uid_t         uid;
    ngx_gid_t         gid;
    ngx_str_t        *dir;
    ngx_file_info_t   fi;
    ngx_core_conf_t  *ccf;

    dir = &pmcf->state_dir;

    if (ngx_get_full_name(cycle->pool, &cycle->prefix, dir) != NGX_OK) {
        return NGX_ERROR;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    uid = geteuid();
    gid = getegid();

    if (uid == 0 && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT) {
        uid = ccf->user;
        gid = ccf->group;
    }

    if (ngx_file_info(dir->data, &fi) == NGX_FILE_ERROR) {
        if (ngx_errno != NGX_ENOENT
            || ngx_create_dir(dir->data, 0700) == NGX_FILE_ERROR
            || (geteuid() == 0 && chown((char *) dir->data, uid, gid) == -1)
            || ngx_file_info(dir->data, &fi) == NGX_FILE_ERROR)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "pyexec_state_dir \"%V\" cannot be made", dir);
            return NGX_ERROR;
        }
    }

    if (!ngx_is_dir(&fi)) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "pyexec_state_dir \"%V\" is not a folder", dir);
        return NGX_ERROR;
    }

    /* root's own folder (a fresh container volume): given to the workers */

    if (geteuid() == 0 && fi.st_uid == 0 && uid != 0
        && !(fi.st_mode & (S_IWOTH|S_IWGRP)))
    {
        if (chown((char *) dir->data, uid, gid) == -1
            || chmod((char *) dir->data, 0700) == -1
            || ngx_file_info(dir->data, &fi) == NGX_FILE_ERROR)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                          "pyexec_state_dir \"%V\" cannot be given to the "
                          "workers' user", dir);
            return NGX_ERROR;
        }
    }

    if (fi.st_mode & (S_IWOTH|S_IWGRP)) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "pyexec_state_dir \"%V\" is writable by others "
                      "(mode %03o): a checkpoint is a pickle the workers "
                      "load, so the folder must be private (0700)",
                      dir, (int) (fi.st_mode & 0777));
        return NGX_ERROR;
    }

    if (fi.st_uid != uid) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "pyexec_state_dir \"%V\" is owned by uid %d, not by "
                      "the workers' user (uid %d)", dir, (int) fi.st_uid,
                      (int) uid);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_pyexec_init_process(ngx_cycle_t *cycle)
{
    struct rlimit                 rl, cur;
    ngx_http_pyexec_main_conf_t  *pmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    pmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_pyexec_module);
    if (pmcf == NULL || pmcf->thread_pool == NULL) {
        return NGX_OK;
    }

    pmcf->thread_pool = ngx_thread_pool_get(cycle, &pmcf->thread_pool_name);
    if (pmcf->thread_pool == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "pyexec: thread pool \"%V\" not found",
                      &pmcf->thread_pool_name);
        return NGX_ERROR;
    }

    ngx_http_pyexec_proc.pmcf = pmcf;
    ngx_http_pyexec_proc.log = cycle->log;

    if (pmcf->uses_io) {
        pmcf->io_thread_pool = ngx_thread_pool_get(cycle,
                                                   &pmcf->io_thread_pool_name);
        if (pmcf->io_thread_pool == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "pyexec: thread pool \"%V\" not found",
                          &pmcf->io_thread_pool_name);
            return NGX_ERROR;
        }
    }

    if (pmcf->worker_socket.len
        && ngx_http_pyexec_socket_init_process(cycle, &pmcf->worker_socket)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_http_pyexec_session_init_process(cycle) != NGX_OK
        || ngx_http_pyexec_journal_init_process(cycle) != NGX_OK
        || ngx_http_pyexec_front_init_process(cycle) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_pyexec_registry_init_process(cycle);
    ngx_http_pyexec_placement_report();     /* cold until session_init's */

    if (ngx_http_pyexec_child_init_process(cycle) != NGX_OK) {
        return NGX_ERROR;
    }

#if defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer maps terabytes of shadow memory as it goes */

    if (pmcf->memory_limit) {
        ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                      "pyexec_memory_limit ignored: the module is built with "
                      "AddressSanitizer");
        pmcf->memory_limit = 0;
    }
#endif

    if (pmcf->memory_limit) {
        rl.rlim_cur = (rlim_t) pmcf->memory_limit;
        rl.rlim_max = RLIM_INFINITY;

        if (getrlimit(RLIMIT_AS, &cur) == 0) {
            rl.rlim_max = cur.rlim_max;
            if (rl.rlim_cur > cur.rlim_max) {
                rl.rlim_cur = cur.rlim_max;
            }
        }

        if (setrlimit(RLIMIT_AS, &rl) == -1) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                          "pyexec_memory_limit: setrlimit(RLIMIT_AS) failed");
        }
    }

    return ngx_http_pyexec_interp_start(pmcf, cycle->log);
}


/*
 * pyexec_memory_limit off | size: the address space of each worker
 * (RLIMIT_AS); past it, allocations fail and Python raises MemoryError
 * in the cell that asked, instead of the kernel's OOM killer ending the
 * worker with every session on it.
 *
 * pyexec_session_registry off | size: the shared zone that remembers
 * which worker holds which session, so that a dead worker's sessions
 * answer 410 (src/ngx_http_pyexec_registry.c).
 */

static char *
ngx_http_pyexec_set_size_off(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    off_t      *field, *min;
    ngx_str_t  *value;

    field = (off_t *) (p + cmd->offset);
    min = cmd->post;

    if (*field != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        *field = 0;
        return NGX_CONF_OK;
    }

    *field = ngx_parse_offset(&value[1]);

    if (*field == NGX_ERROR || *field < *min) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\": \"off\" or a size of "
                           "at least %O", &value[1], *min);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_pyexec_exit_process(ngx_cycle_t *cycle)
{
    /*
     * The interpreter belongs to the pool thread (its "main thread"), so
     * it is not finalized here: the thread may still be running a cell,
     * and the process is going away anyway.
     */

    ngx_http_pyexec_placement_leave();
    ngx_http_pyexec_interp_stop_watch();
    ngx_http_pyexec_interp_checkpoint_all();

    ngx_http_pyexec_socket_exit_process();
    ngx_http_pyexec_front_exit_process();
    ngx_http_pyexec_session_exit_process();
    ngx_http_pyexec_journal_exit_process();
}
