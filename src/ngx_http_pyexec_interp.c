
/*
 * Copyright (C) pyexec authors
 *
 * The embedded interpreter: one per worker, started and used only in the
 * single thread of the pyexec thread pool, which thereby becomes Python's
 * "main thread" -- the only thread where CPython runs signal handlers.
 * The time limit is a real-time signal sent to that thread by the event
 * loop (lock-free, never touching the GIL); our handler raises
 * _pyexec.TimeoutError when the cell it was aimed at is still running.
 * Blocking calls get EINTR, and the regex engine, sleep, select, socket
 * reads and the eval loop all check for signals.
 *
 * This is the only file that calls the Python API.
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_bootstrap.h"

#include <dlfcn.h>
#include <signal.h>
#include <pthread.h>


#define NGX_HTTP_PYEXEC_SIGNAL        (SIGRTMIN + 3)
#define NGX_HTTP_PYEXEC_VALUE_DEPTH   100

#define NGX_HTTP_PYEXEC_STR(x)        NGX_HTTP_PYEXEC_STR2(x)
#define NGX_HTTP_PYEXEC_STR2(x)       #x
#define NGX_HTTP_PYEXEC_LIBPYTHON                                             \
    "libpython" NGX_HTTP_PYEXEC_STR(PY_MAJOR_VERSION) "."                     \
    NGX_HTTP_PYEXEC_STR(PY_MINOR_VERSION) ".so.1.0"


static void ngx_http_pyexec_interp_init_thread(void *data, ngx_log_t *log);
static void ngx_http_pyexec_interp_init_done(ngx_event_t *ev);
static ngx_int_t ngx_http_pyexec_interp_boot(ngx_http_pyexec_main_conf_t *pmcf,
    ngx_log_t *log);
static void ngx_http_pyexec_interp_execute(ngx_http_pyexec_task_t *t);
static void ngx_http_pyexec_interp_variables(ngx_http_pyexec_task_t *t);
static ngx_int_t ngx_http_pyexec_interp_ensure_ns(ngx_http_pyexec_task_t *t);
static ngx_int_t ngx_http_pyexec_interp_gen_result(yajl_gen g,
    PyObject *res, ngx_http_pyexec_task_t *t);
static ngx_int_t ngx_http_pyexec_interp_gen_str(yajl_gen g, PyObject *s);
static ngx_int_t ngx_http_pyexec_interp_gen_value(yajl_gen g, PyObject *v,
    ngx_uint_t depth);
static ngx_int_t ngx_http_pyexec_interp_gen_outputs(yajl_gen g,
    PyObject *outputs);
static void ngx_http_pyexec_interp_after(ngx_log_t *log);
static void ngx_http_pyexec_interp_log_error(ngx_log_t *log,
    const char *what);
static PyObject *ngx_http_pyexec_interp_on_signal(PyObject *self,
    PyObject *args);
static PyObject *ngx_http_pyexec_interp_enter(PyObject *self,
    PyObject *args);
static PyObject *ngx_http_pyexec_interp_leave(PyObject *self,
    PyObject *args);


static PyThreadState     *ngx_http_pyexec_tstate;
static pthread_t          ngx_http_pyexec_thread;
static PyObject          *ngx_http_pyexec_run;
static PyObject          *ngx_http_pyexec_new_session;
static PyObject          *ngx_http_pyexec_variables;
static PyObject          *ngx_http_pyexec_close_session;
static PyObject          *ngx_http_pyexec_reap;
static PyObject          *ngx_http_pyexec_timeout_exc;
static PyObject          *ngx_http_pyexec_init_code;
static PyObject          *ngx_http_pyexec_cap;
static PyObject          *ngx_http_pyexec_builtins;       /* borrowed */
static PyObject          *ngx_http_pyexec_builtins_saved;
static uint64_t           ngx_http_pyexec_builtins_tag;

static volatile sig_atomic_t  ngx_http_pyexec_in_user;
static ngx_atomic_t           ngx_http_pyexec_running_seq;
static ngx_atomic_t           ngx_http_pyexec_kill_seq;
static ngx_msec_t             ngx_http_pyexec_running_timeout;


static PyMethodDef  ngx_http_pyexec_methods[] = {
    { "on_signal", ngx_http_pyexec_interp_on_signal, METH_VARARGS, NULL },
    { "enter", ngx_http_pyexec_interp_enter, METH_NOARGS, NULL },
    { "leave", ngx_http_pyexec_interp_leave, METH_NOARGS, NULL },
    { NULL, NULL, 0, NULL }
};


const char *
ngx_http_pyexec_interp_version(void)
{
    return Py_GetVersion();
}


uint64_t
ngx_http_pyexec_interp_now_ms(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* event loop: queue the start of the interpreter as the pool's first task */

ngx_int_t
ngx_http_pyexec_interp_start(ngx_http_pyexec_main_conf_t *pmcf,
    ngx_log_t *log)
{
    ngx_thread_task_t  *task;

    /*
     * nginx dlopen()s modules RTLD_GLOBAL, so libpython's symbols are
     * already visible to extension modules; this makes sure of it should
     * that ever change (C extensions are not linked against libpython).
     */

    (void) dlopen(NGX_HTTP_PYEXEC_LIBPYTHON,
                  RTLD_NOW|RTLD_NOLOAD|RTLD_GLOBAL);

    task = ngx_calloc(sizeof(ngx_thread_task_t), log);
    if (task == NULL) {
        return NGX_ERROR;
    }

    task->ctx = pmcf;
    task->handler = ngx_http_pyexec_interp_init_thread;
    task->event.handler = ngx_http_pyexec_interp_init_done;
    task->event.data = task;
    task->event.log = log;

    if (ngx_thread_task_post(pmcf->thread_pool, task) != NGX_OK) {
        ngx_free(task);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_pyexec_interp_init_thread(void *data, ngx_log_t *log)
{
    ngx_http_pyexec_main_conf_t *pmcf = data;

    sigset_t  set;

    ngx_http_pyexec_thread = pthread_self();

    /* nginx pool threads block all signals; let ours in */

    sigemptyset(&set);
    sigaddset(&set, NGX_HTTP_PYEXEC_SIGNAL);
    (void) pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    if (ngx_http_pyexec_interp_boot(pmcf, log) != NGX_OK) {
        ngx_http_pyexec_proc.failed = 1;
    }
}


static void
ngx_http_pyexec_interp_init_done(ngx_event_t *ev)
{
    ngx_thread_task_t  *task = ev->data;

    if (ngx_http_pyexec_proc.failed) {
        ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                      "pyexec: the Python interpreter failed to start");

    } else {
        ngx_http_pyexec_proc.ready = 1;
        ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                      "pyexec: Python %s ready", Py_GetVersion());

        ngx_http_pyexec_child_start_reaper(ev->log);
    }

    ngx_free(task);
}


static ngx_int_t
ngx_http_pyexec_interp_boot(ngx_http_pyexec_main_conf_t *pmcf, ngx_log_t *log)
{
    PyObject     *mod, *dict, *code, *res, *setup, *handler, *enter, *leave;
    PyStatus      status;
    PyConfig      config;
    PyPreConfig   pre;

    /* UTF-8 mode: nginx workers run in the C locale */

    PyPreConfig_InitIsolatedConfig(&pre);
    pre.utf8_mode = 1;

    status = Py_PreInitialize(&pre);
    if (PyStatus_Exception(status)) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "Py_PreInitialize() failed: %s",
                      status.err_msg ? status.err_msg : "?");
        return NGX_ERROR;
    }

    PyConfig_InitIsolatedConfig(&config);
    config.install_signal_handlers = 0;
    config.site_import = 1;

    /*
     * sys.executable: the Debian interpreter of the same version (checked
     * at start by the module), so that subprocess, multiprocessing's spawn
     * and forkserver and loky start real Python processes; it also makes
     * the path configuration that of that interpreter
     */

    status = PyConfig_SetBytesString(&config, &config.executable,
                                     (char *) pmcf->python.data);
    if (!PyStatus_Exception(status)) {
        status = PyConfig_SetBytesString(&config, &config.base_executable,
                                         (char *) pmcf->python.data);
    }

    if (!PyStatus_Exception(status)) {
        status = Py_InitializeFromConfig(&config);
    }

    PyConfig_Clear(&config);

    if (PyStatus_Exception(status)) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "Py_InitializeFromConfig() failed: %s",
                      status.err_msg ? status.err_msg : "?");
        return NGX_ERROR;
    }

    mod = dict = code = res = setup = handler = enter = leave = NULL;

    mod = PyImport_AddModule("_pyexec");          /* borrowed */
    if (mod == NULL) {
        goto failed;
    }

    dict = PyModule_GetDict(mod);                 /* borrowed */

    if (PyDict_SetItemString(dict, "__builtins__", PyEval_GetBuiltins())
        != 0)
    {
        goto failed;
    }

    code = Py_CompileString(ngx_http_pyexec_bootstrap, "<pyexec>",
                            Py_file_input);
    if (code == NULL) {
        goto failed;
    }

    res = PyEval_EvalCode(code, dict, dict);
    if (res == NULL) {
        goto failed;
    }

    ngx_http_pyexec_run = PyDict_GetItemString(dict, "run");
    ngx_http_pyexec_new_session = PyDict_GetItemString(dict, "new_session");
    ngx_http_pyexec_variables = PyDict_GetItemString(dict, "variables");
    ngx_http_pyexec_close_session = PyDict_GetItemString(dict,
                                                         "close_session");
    ngx_http_pyexec_reap = PyDict_GetItemString(dict, "reap");
    ngx_http_pyexec_timeout_exc = PyDict_GetItemString(dict, "TimeoutError");
    setup = PyDict_GetItemString(dict, "setup");

    if (ngx_http_pyexec_run == NULL || ngx_http_pyexec_new_session == NULL
        || ngx_http_pyexec_variables == NULL
        || ngx_http_pyexec_close_session == NULL
        || ngx_http_pyexec_reap == NULL
        || ngx_http_pyexec_timeout_exc == NULL || setup == NULL)
    {
        ngx_log_error(NGX_LOG_ALERT, log, 0, "pyexec: bootstrap incomplete");
        goto failed;
    }

    Py_INCREF(ngx_http_pyexec_run);
    Py_INCREF(ngx_http_pyexec_new_session);
    Py_INCREF(ngx_http_pyexec_variables);
    Py_INCREF(ngx_http_pyexec_close_session);
    Py_INCREF(ngx_http_pyexec_reap);
    Py_INCREF(ngx_http_pyexec_timeout_exc);

    handler = PyCFunction_New(&ngx_http_pyexec_methods[0], NULL);
    enter = PyCFunction_New(&ngx_http_pyexec_methods[1], NULL);
    leave = PyCFunction_New(&ngx_http_pyexec_methods[2], NULL);
    if (handler == NULL || enter == NULL || leave == NULL) {
        goto failed;
    }

    Py_DECREF(res);
    res = PyObject_CallFunction(setup, "s#OOiOs#",
                                pmcf->data_dir.data, pmcf->data_dir.len,
                                enter, leave,
                                (int) NGX_HTTP_PYEXEC_SIGNAL, handler,
                                pmcf->python.data, pmcf->python.len);
    if (res == NULL) {
        goto failed;
    }

    if (pmcf->session_init.len) {
        ngx_http_pyexec_init_code = PyUnicode_DecodeUTF8(
                                       (char *) pmcf->session_init.data,
                                       pmcf->session_init.len, "strict");
        if (ngx_http_pyexec_init_code == NULL) {
            goto failed;
        }

    } else {
        ngx_http_pyexec_init_code = Py_None;
        Py_INCREF(Py_None);
    }

    ngx_http_pyexec_cap = PyLong_FromSize_t(pmcf->output_max);
    if (ngx_http_pyexec_cap == NULL) {
        goto failed;
    }

    /* the builtins as they are now, put back after any cell changes them */

    ngx_http_pyexec_builtins = PyEval_GetBuiltins();
    ngx_http_pyexec_builtins_saved = PyDict_Copy(ngx_http_pyexec_builtins);
    if (ngx_http_pyexec_builtins_saved == NULL) {
        goto failed;
    }

    ngx_http_pyexec_builtins_tag =
                ((PyDictObject *) ngx_http_pyexec_builtins)->ma_version_tag;

    Py_DECREF(res);
    Py_DECREF(code);
    Py_DECREF(handler);
    Py_DECREF(enter);
    Py_DECREF(leave);

    ngx_http_pyexec_tstate = PyEval_SaveThread();

    return NGX_OK;

failed:

    ngx_http_pyexec_interp_log_error(log, "pyexec bootstrap");

    Py_XDECREF(res);
    Py_XDECREF(code);
    Py_XDECREF(handler);
    Py_XDECREF(enter);
    Py_XDECREF(leave);

    ngx_http_pyexec_tstate = PyEval_SaveThread();

    return NGX_ERROR;
}


/* any thread: is the interpreter ours to use here */

void
ngx_http_pyexec_interp_run(ngx_http_pyexec_task_t *t)
{
    PyObject                   *res;
    ngx_http_pyexec_session_t  *s;

    if (ngx_http_pyexec_proc.failed || ngx_http_pyexec_tstate == NULL) {
        t->status = NGX_HTTP_SERVICE_UNAVAILABLE;     /* failed to start */
        return;
    }

    if (!pthread_equal(pthread_self(), ngx_http_pyexec_thread)) {
        ngx_log_error(NGX_LOG_ALERT, t->log, 0,
                      "pyexec: task ran outside the interpreter thread; "
                      "the pyexec thread pool must have threads=1");
        t->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return;
    }

    PyEval_RestoreThread(ngx_http_pyexec_tstate);

    switch (t->op) {

    case NGX_HTTP_PYEXEC_OP_EXECUTE:
        ngx_http_pyexec_interp_execute(t);
        break;

    case NGX_HTTP_PYEXEC_OP_VARIABLES:
        ngx_http_pyexec_interp_variables(t);
        break;

    case NGX_HTTP_PYEXEC_OP_DESTROY:
        s = t->session;
        res = PyObject_CallOneArg(ngx_http_pyexec_close_session,
                                  (PyObject *) s->ns);
        if (res == NULL) {
            ngx_http_pyexec_interp_log_error(t->log, "close_session()");
        }

        Py_XDECREF(res);
        Py_CLEAR(s->ns);
        Py_CLEAR(s->injected);
        break;

    case NGX_HTTP_PYEXEC_OP_REAP:
        break;      /* interp_after() reaps */
    }

    ngx_http_pyexec_interp_after(t->log);

    ngx_http_pyexec_tstate = PyEval_SaveThread();
}


/*
 * After every task, in the interpreter thread: what user code may have
 * done to the whole worker is undone before the next session runs.
 */

static void
ngx_http_pyexec_interp_after(ngx_log_t *log)
{
    PyObject      *res;
    PyDictObject  *b;

    /*
     * A child that user code fork()ed (os.fork(), multiprocessing) comes
     * back here with a copy of the worker: it ran the rest of its cell and
     * ends now, before it could touch the worker's event loop or sockets.
     */

    if (getpid() != ngx_pid) {
        _exit(0);
    }

    /* children that exited: reaped here, never on the event loop */

    if (ngx_http_pyexec_child_exited()) {
        res = PyObject_CallNoArgs(ngx_http_pyexec_reap);
        if (res == NULL) {
            ngx_http_pyexec_interp_log_error(log, "reap()");
        }

        Py_XDECREF(res);
    }

    /* builtins are shared by every session of the worker: restore them */

    b = (PyDictObject *) ngx_http_pyexec_builtins;

    if (b != NULL && b->ma_version_tag != ngx_http_pyexec_builtins_tag) {
        PyDict_Clear((PyObject *) b);

        if (PyDict_Update((PyObject *) b, ngx_http_pyexec_builtins_saved)
            != 0)
        {
            ngx_http_pyexec_interp_log_error(log, "restoring builtins");
        }

        ngx_http_pyexec_builtins_tag = b->ma_version_tag;

        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "pyexec: a cell changed the builtins; restored");
    }
}


static ngx_int_t
ngx_http_pyexec_interp_ensure_ns(ngx_http_pyexec_task_t *t)
{
    PyObject                   *res, *err;
    const char                 *msg;
    ngx_http_pyexec_session_t  *s = t->session;

    if (s->ns) {
        return NGX_OK;
    }

    res = PyObject_CallFunctionObjArgs(ngx_http_pyexec_new_session,
                                       ngx_http_pyexec_init_code, NULL);
    if (res == NULL) {
        ngx_http_pyexec_interp_log_error(t->log, "new_session()");
        return NGX_ERROR;
    }

    s->ns = PyTuple_GET_ITEM(res, 0);
    s->injected = PyTuple_GET_ITEM(res, 1);
    err = PyTuple_GET_ITEM(res, 2);
    Py_INCREF((PyObject *) s->ns);
    Py_INCREF((PyObject *) s->injected);

    if (err != Py_None) {
        msg = PyUnicode_AsUTF8(err);
        if (msg == NULL) {
            PyErr_Clear();
            msg = "?";
        }

        ngx_log_error(NGX_LOG_WARN, t->log, 0,
                      "pyexec_session_init failed: %s", msg);
    }

    Py_DECREF(res);

    return NGX_OK;
}


static void
ngx_http_pyexec_interp_execute(ngx_http_pyexec_task_t *t)
{
    PyObject  *code, *res;
    yajl_gen   g;

    res = NULL;
    code = NULL;
    g = NULL;

    if (ngx_http_pyexec_interp_ensure_ns(t) != NGX_OK) {
        goto failed;
    }

    code = PyUnicode_DecodeUTF8((char *) t->code, t->code_len,
                                "surrogateescape");
    if (code == NULL) {
        ngx_http_pyexec_interp_log_error(t->log, "PyUnicode_DecodeUTF8()");
        goto failed;
    }

    ngx_http_pyexec_running_timeout = t->timeout;
    ngx_http_pyexec_running_seq = t->seq;
    t->started_ms = ngx_http_pyexec_interp_now_ms();
    ngx_memory_barrier();

    res = PyObject_CallFunctionObjArgs(ngx_http_pyexec_run,
                                       (PyObject *) t->session->ns, code,
                                       ngx_http_pyexec_cap, NULL);

    ngx_http_pyexec_running_seq = 0;

    if (res == NULL) {
        ngx_http_pyexec_interp_log_error(t->log, "pyexec run()");
        goto failed;
    }

    g = ngx_http_pyexec_json_gen();
    if (g == NULL) {
        goto failed;
    }

    if (ngx_http_pyexec_interp_gen_result(g, res, t) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, t->log, 0,
                      "pyexec: building the response failed");
        PyErr_Clear();
        goto failed;
    }

    t->gen = g;
    t->status = NGX_HTTP_OK;

    Py_DECREF(res);
    Py_DECREF(code);

    return;

failed:

    if (g) {
        yajl_gen_free(g);
    }

    Py_XDECREF(res);
    Py_XDECREF(code);

    t->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
}


static ngx_int_t
ngx_http_pyexec_interp_gen_result(yajl_gen g, PyObject *res,
    ngx_http_pyexec_task_t *t)
{
    u_char       buf[64], *p;
    size_t       len;
    double       ms;
    yajl_gen     vg;
    PyObject    *text, *value, *repr, *error, *tb, *item, *figs;
    ngx_int_t    has_value, ok;
    Py_ssize_t   i, n;
    const unsigned char  *vbuf;

    if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 14
        || !PyList_Check(PyTuple_GET_ITEM(res, 11))
        || !PyList_Check(PyTuple_GET_ITEM(res, 13)))
    {
        return NGX_ERROR;
    }

    text = PyTuple_GET_ITEM(res, 0);
    has_value = PyObject_IsTrue(PyTuple_GET_ITEM(res, 3));
    value = PyTuple_GET_ITEM(res, 4);
    repr = PyTuple_GET_ITEM(res, 5);
    error = PyTuple_GET_ITEM(res, 7);
    tb = PyTuple_GET_ITEM(res, 8);
    figs = PyTuple_GET_ITEM(res, 11);

    yajl_gen_map_open(g);

    /* result: printed text wins, then the value as JSON, then its repr() */

    ngx_http_pyexec_json_str(g, "result");

    if (PyList_GET_SIZE(figs) > 0) {
        /* a figure: the shape the existing client shows as text + image */

        yajl_gen_map_open(g);
        ngx_http_pyexec_json_str(g, "text/plain");
        ok = ngx_http_pyexec_interp_gen_str(g, PyTuple_GET_ITEM(res, 12));
        ngx_http_pyexec_json_str(g, "image/png");
        if (ok == NGX_OK) {
            ok = ngx_http_pyexec_interp_gen_str(g, PyList_GET_ITEM(figs, 0));
        }
        yajl_gen_map_close(g);

    } else if (PyUnicode_GET_LENGTH(text) > 0) {
        ok = ngx_http_pyexec_interp_gen_str(g, text);

    } else if (has_value && value != Py_None) {

        vg = ngx_http_pyexec_json_gen();
        if (vg == NULL) {
            return NGX_ERROR;
        }

        /* as JSON when it fits the output cap, else its (capped) repr */

        if (ngx_http_pyexec_interp_gen_value(vg, value, 0) == NGX_OK
            && yajl_gen_get_buf(vg, &vbuf, &len) == yajl_gen_status_ok
            && len <= ngx_http_pyexec_proc.pmcf->output_max)
        {
            /* splice the rendered value in verbatim */
            ok = yajl_gen_number(g, (const char *) vbuf, len)
                 == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;

        } else {
            PyErr_Clear();
            ok = ngx_http_pyexec_interp_gen_str(g, repr);
        }

        yajl_gen_free(vg);

    } else {
        ok = (yajl_gen_null(g) == yajl_gen_status_ok) ? NGX_OK : NGX_ERROR;
    }

    if (ok != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_kv(g, "session_id", t->session->id,
                            t->session->id_len);

    ngx_http_pyexec_json_str(g, "success");
    yajl_gen_bool(g, error == Py_None);

    ngx_http_pyexec_json_str(g, "error");
    if (ngx_http_pyexec_interp_gen_str(g, error) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_str(g, "stdout");
    if (ngx_http_pyexec_interp_gen_str(g, PyTuple_GET_ITEM(res, 1)) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_str(g, "stderr");
    if (ngx_http_pyexec_interp_gen_str(g, PyTuple_GET_ITEM(res, 2)) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_str(g, "value");
    if (ngx_http_pyexec_interp_gen_str(g, repr) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_str(g, "outputs");
    if (ngx_http_pyexec_interp_gen_outputs(g, PyTuple_GET_ITEM(res, 13))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_str(g, "error_name");
    if (ngx_http_pyexec_interp_gen_str(g, PyTuple_GET_ITEM(res, 6)) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_str(g, "traceback");

    if (tb == Py_None || !PyList_Check(tb)) {
        yajl_gen_null(g);

    } else {
        yajl_gen_array_open(g);

        n = PyList_GET_SIZE(tb);
        for (i = 0; i < n; i++) {
            item = PyList_GET_ITEM(tb, i);
            if (ngx_http_pyexec_interp_gen_str(g, item) != NGX_OK) {
                return NGX_ERROR;
            }
        }

        yajl_gen_array_close(g);
    }

    ngx_http_pyexec_json_str(g, "execution_count");
    yajl_gen_integer(g, t->execution_count);

    ms = PyFloat_AsDouble(PyTuple_GET_ITEM(res, 10));
    p = ngx_snprintf(buf, sizeof(buf), "%.3f", ms < 0 ? 0.0 : ms);
    ngx_http_pyexec_json_str(g, "duration_ms");
    yajl_gen_number(g, (const char *) buf, p - buf);

    ngx_http_pyexec_json_str(g, "truncated");
    yajl_gen_bool(g, PyObject_IsTrue(PyTuple_GET_ITEM(res, 9)) == 1);

    if (yajl_gen_map_close(g) != yajl_gen_status_ok) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * "outputs": the display() bundles in call order, each
 * {"mime": the richest type, "data": ..., "bundle": {mime: data, ...}},
 * then the figures left open at the end of the cell, {"mime", "data"}
 * (their bundle is None).
 */

static ngx_int_t
ngx_http_pyexec_interp_gen_outputs(yajl_gen g, PyObject *outputs)
{
    PyObject    *item, *pairs, *pair;
    Py_ssize_t   i, j, n, m;

    if (yajl_gen_array_open(g) != yajl_gen_status_ok) {
        return NGX_ERROR;
    }

    n = PyList_GET_SIZE(outputs);
    for (i = 0; i < n; i++) {
        item = PyList_GET_ITEM(outputs, i);

        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3) {
            return NGX_ERROR;
        }

        pairs = PyTuple_GET_ITEM(item, 2);

        if (pairs != Py_None && !PyTuple_Check(pairs)) {
            return NGX_ERROR;
        }

        yajl_gen_map_open(g);
        ngx_http_pyexec_json_str(g, "mime");
        if (ngx_http_pyexec_interp_gen_str(g, PyTuple_GET_ITEM(item, 0))
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ngx_http_pyexec_json_str(g, "data");
        if (ngx_http_pyexec_interp_gen_str(g, PyTuple_GET_ITEM(item, 1))
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (pairs != Py_None) {
            ngx_http_pyexec_json_str(g, "bundle");
            yajl_gen_map_open(g);

            m = PyTuple_GET_SIZE(pairs);
            for (j = 0; j < m; j++) {
                pair = PyTuple_GET_ITEM(pairs, j);

                if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2
                    || ngx_http_pyexec_interp_gen_str(g,
                                                  PyTuple_GET_ITEM(pair, 0))
                       != NGX_OK
                    || ngx_http_pyexec_interp_gen_str(g,
                                                  PyTuple_GET_ITEM(pair, 1))
                       != NGX_OK)
                {
                    return NGX_ERROR;
                }
            }

            yajl_gen_map_close(g);
        }

        if (yajl_gen_map_close(g) != yajl_gen_status_ok) {
            return NGX_ERROR;
        }
    }

    return yajl_gen_array_close(g) == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
}


/* a str (or None -> null) as a JSON string; lone surrogates escaped */

static ngx_int_t
ngx_http_pyexec_interp_gen_str(yajl_gen g, PyObject *s)
{
    PyObject    *b;
    const char  *p;
    Py_ssize_t   len;
    yajl_gen_status  st;

    if (s == Py_None) {
        return yajl_gen_null(g) == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
    }

    if (!PyUnicode_Check(s)) {
        return NGX_ERROR;
    }

    p = PyUnicode_AsUTF8AndSize(s, &len);
    if (p != NULL) {
        st = yajl_gen_string(g, (const unsigned char *) p, len);
        return st == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
    }

    PyErr_Clear();

    b = PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace");
    if (b == NULL) {
        return NGX_ERROR;
    }

    st = yajl_gen_string(g, (const unsigned char *) PyBytes_AS_STRING(b),
                         PyBytes_GET_SIZE(b));
    Py_DECREF(b);

    return st == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
}


/*
 * A value as JSON when it is plainly representable: None, bool, int,
 * finite float, str, list/tuple, dict with str keys.  Exact scalar types
 * only: a numpy scalar or a str subclass goes out as its repr().
 */

static ngx_int_t
ngx_http_pyexec_interp_gen_value(yajl_gen g, PyObject *v, ngx_uint_t depth)
{
    double       d;
    PyObject    *key, *item, *s;
    ngx_int_t    rc;
    Py_ssize_t   i, n, pos, len;
    const char  *p;

    if (depth > NGX_HTTP_PYEXEC_VALUE_DEPTH) {
        return NGX_DECLINED;
    }

    if (v == Py_None) {
        return yajl_gen_null(g) == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
    }

    if (PyBool_Check(v)) {
        return yajl_gen_bool(g, v == Py_True) == yajl_gen_status_ok
               ? NGX_OK : NGX_ERROR;
    }

    if (PyLong_CheckExact(v)) {
        s = PyObject_Str(v);     /* fails beyond sys.int_info digits */
        if (s == NULL) {
            return NGX_DECLINED;
        }

        p = PyUnicode_AsUTF8AndSize(s, &len);
        rc = (p && yajl_gen_number(g, p, len) == yajl_gen_status_ok)
             ? NGX_OK : NGX_DECLINED;
        Py_DECREF(s);
        return rc;
    }

    if (PyFloat_CheckExact(v)) {
        d = PyFloat_AS_DOUBLE(v);
        if (!isfinite(d)) {
            return NGX_DECLINED;
        }

        /* repr() is the shortest string that round-trips */

        p = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (p == NULL) {
            return NGX_DECLINED;
        }

        rc = yajl_gen_number(g, p, ngx_strlen(p)) == yajl_gen_status_ok
             ? NGX_OK : NGX_DECLINED;
        PyMem_Free((void *) p);
        return rc;
    }

    if (PyUnicode_CheckExact(v)) {
        return ngx_http_pyexec_interp_gen_str(g, v) == NGX_OK
               ? NGX_OK : NGX_DECLINED;
    }

    if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
        yajl_gen_array_open(g);

        n = PySequence_Fast_GET_SIZE(v);
        for (i = 0; i < n; i++) {
            item = PySequence_Fast_GET_ITEM(v, i);
            rc = ngx_http_pyexec_interp_gen_value(g, item, depth + 1);
            if (rc != NGX_OK) {
                return rc;
            }

            /* a list may shrink under us only through __repr__ hooks */
            n = ngx_min(n, PySequence_Fast_GET_SIZE(v));
        }

        yajl_gen_array_close(g);
        return NGX_OK;
    }

    if (PyDict_CheckExact(v)) {
        yajl_gen_map_open(g);

        pos = 0;
        while (PyDict_Next(v, &pos, &key, &item)) {
            if (!PyUnicode_CheckExact(key)) {
                return NGX_DECLINED;
            }

            if (ngx_http_pyexec_interp_gen_str(g, key) != NGX_OK) {
                return NGX_DECLINED;
            }

            rc = ngx_http_pyexec_interp_gen_value(g, item, depth + 1);
            if (rc != NGX_OK) {
                return rc;
            }
        }

        yajl_gen_map_close(g);
        return NGX_OK;
    }

    return NGX_DECLINED;
}


static void
ngx_http_pyexec_interp_variables(ngx_http_pyexec_task_t *t)
{
    PyObject                   *names, *item;
    yajl_gen                    g;
    Py_ssize_t                  i, n;
    ngx_http_pyexec_session_t  *s = t->session;

    g = ngx_http_pyexec_json_gen();
    if (g == NULL) {
        t->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return;
    }

    yajl_gen_map_open(g);
    ngx_http_pyexec_json_kv(g, "session_id", s->id, s->id_len);
    ngx_http_pyexec_json_str(g, "variables");
    yajl_gen_array_open(g);

    if (s->ns) {
        names = PyObject_CallFunctionObjArgs(ngx_http_pyexec_variables,
                                             (PyObject *) s->ns,
                                             (PyObject *) s->injected, NULL);
        if (names == NULL) {
            ngx_http_pyexec_interp_log_error(t->log, "variables()");
            yajl_gen_free(g);
            t->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return;
        }

        n = PyList_GET_SIZE(names);
        for (i = 0; i < n; i++) {
            item = PyList_GET_ITEM(names, i);
            if (ngx_http_pyexec_interp_gen_str(g, item) != NGX_OK) {
                PyErr_Clear();
            }
        }

        Py_DECREF(names);
    }

    yajl_gen_array_close(g);
    ngx_http_pyexec_json_str(g, "created_at");
    (void) ngx_http_pyexec_json_iso8601(g, s->created_at);
    yajl_gen_map_close(g);

    t->gen = g;
    t->status = NGX_HTTP_OK;
}


/* event loop: ask the interpreter thread to stop cell "seq" */

void
ngx_http_pyexec_interp_interrupt(ngx_uint_t seq)
{
    ngx_http_pyexec_kill_seq = seq;
    ngx_memory_barrier();

    (void) pthread_kill(ngx_http_pyexec_thread, NGX_HTTP_PYEXEC_SIGNAL);
}


/* interpreter thread, from the eval loop: signal.signal() handler */

static PyObject *
ngx_http_pyexec_interp_on_signal(PyObject *self, PyObject *args)
{
    if (ngx_http_pyexec_in_user
        && ngx_http_pyexec_running_seq != 0
        && ngx_http_pyexec_kill_seq == ngx_http_pyexec_running_seq)
    {
        u_char  msg[80];

        *ngx_snprintf(msg, sizeof(msg) - 1,
                      "execution exceeded the time limit of %.3f s",
                      (double) ngx_http_pyexec_running_timeout / 1000) = '\0';

        PyErr_SetString(ngx_http_pyexec_timeout_exc, (char *) msg);
        return NULL;
    }

    Py_RETURN_NONE;
}


static PyObject *
ngx_http_pyexec_interp_enter(PyObject *self, PyObject *args)
{
    ngx_http_pyexec_in_user = 1;

    Py_RETURN_NONE;
}


static PyObject *
ngx_http_pyexec_interp_leave(PyObject *self, PyObject *args)
{
    ngx_http_pyexec_in_user = 0;

    Py_RETURN_NONE;
}


static void
ngx_http_pyexec_interp_log_error(ngx_log_t *log, const char *what)
{
    PyObject    *type, *value, *tb, *s;
    const char  *msg;

    PyErr_Fetch(&type, &value, &tb);

    msg = "?";
    s = value ? PyObject_Str(value) : NULL;
    if (s) {
        msg = PyUnicode_AsUTF8(s);
        if (msg == NULL) {
            msg = "?";
        }
    }

    ngx_log_error(NGX_LOG_ERR, log, 0, "%s failed: %s: %s", what,
                  type ? ((PyTypeObject *) type)->tp_name : "?", msg);

    Py_XDECREF(s);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
}
