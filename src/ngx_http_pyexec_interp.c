
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


#define PY_SSIZE_T_CLEAN
#include <Python.h>         /* first: it sets the feature macros */

#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_bootstrap.h"
#include "ngx_http_pyexec_child.h"
#include "ngx_http_pyexec_interp.h"
#include "ngx_http_pyexec_journal.h"
#include "ngx_http_pyexec_json.h"
#include "ngx_http_pyexec_metrics.h"
#include "ngx_http_pyexec_placement.h"
#include "ngx_http_pyexec_session.h"
#include "ngx_http_pyexec_task.h"

#include <ngx_md5.h>

#include <dlfcn.h>
#include <malloc.h>
#include <signal.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>


#define NGX_HTTP_PYEXEC_SIGNAL        (SIGRTMIN + 3)
#define NGX_HTTP_PYEXEC_VALUE_DEPTH   100
#define NGX_HTTP_PYEXEC_WATCH_TICK    50    /* ms */
#define NGX_HTTP_PYEXEC_STOP_GRACE    500   /* ms a cell may run on at a stop */
#define NGX_HTTP_PYEXEC_CKPT_FORK     200000  /* us of pickling worth a fork */
#define NGX_HTTP_PYEXEC_TRIM_CPU      1000  /* us of a cell worth a trim */
#define NGX_HTTP_PYEXEC_CKPT_STUCK    120000  /* ms: a writer is hung */

#define NGX_HTTP_PYEXEC_STR(x)        NGX_HTTP_PYEXEC_STR2(x)
#define NGX_HTTP_PYEXEC_STR2(x)       #x
#define NGX_HTTP_PYEXEC_LIBPYTHON                                             \
    "libpython" NGX_HTTP_PYEXEC_STR(PY_MAJOR_VERSION) "."                     \
    NGX_HTTP_PYEXEC_STR(PY_MINOR_VERSION) ".so.1.0"


static void ngx_http_pyexec_interp_init_thread(void *data, ngx_log_t *log);
static void ngx_http_pyexec_interp_demotable(
    ngx_http_pyexec_main_conf_t *pmcf, ngx_log_t *log);
static void ngx_http_pyexec_interp_promote(ngx_log_t *log);
static void ngx_http_pyexec_interp_sched(ngx_http_pyexec_main_conf_t *pmcf,
    ngx_log_t *log);
static void ngx_http_pyexec_interp_init_done(ngx_event_t *ev);
static void ngx_http_pyexec_interp_warm_done(ngx_event_t *ev);
static ngx_int_t ngx_http_pyexec_interp_boot(ngx_http_pyexec_main_conf_t *pmcf,
    ngx_log_t *log);
static void ngx_http_pyexec_interp_execute(ngx_http_pyexec_task_t *t,
    ngx_log_t *log);
static void ngx_http_pyexec_interp_variables(ngx_http_pyexec_task_t *t,
    ngx_log_t *log);
static ngx_int_t ngx_http_pyexec_interp_ensure_ns(ngx_http_pyexec_task_t *t,
    ngx_log_t *log);
static ngx_int_t ngx_http_pyexec_interp_gen_result(ngx_http_pyexec_json_t *j,
    PyObject *res, ngx_http_pyexec_task_t *t);
static ngx_int_t ngx_http_pyexec_interp_gen_str(ngx_http_pyexec_json_t *j,
    PyObject *s);
static ngx_int_t ngx_http_pyexec_interp_gen_value(ngx_http_pyexec_json_t *j,
    PyObject *v, ngx_uint_t depth);
static ngx_int_t ngx_http_pyexec_interp_gen_outputs(ngx_http_pyexec_json_t *j,
    PyObject *outputs);
static void ngx_http_pyexec_interp_start_watch(ngx_log_t *log);
static u_char *ngx_http_pyexec_interp_checkpoint_path(
    ngx_http_pyexec_session_t *s, u_char *buf, size_t size);
static ngx_int_t ngx_http_pyexec_interp_checkpoint_one(
    ngx_http_pyexec_session_t *s, ngx_uint_t count, ngx_uint_t fork_it,
    ngx_log_t *log);
static ngx_int_t ngx_http_pyexec_interp_writer_done(
    ngx_http_pyexec_session_t *s, ngx_uint_t wait, ngx_log_t *log);
static void ngx_http_pyexec_interp_writer_kill(ngx_http_pyexec_session_t *s,
    ngx_log_t *log);
static uint64_t ngx_http_pyexec_interp_cpu_us(void);
static ngx_int_t ngx_http_pyexec_interp_checkpoint_remove(
    ngx_http_pyexec_session_t *s, ngx_log_t *log);
static ngx_int_t ngx_http_pyexec_interp_restore(ngx_http_pyexec_task_t *t,
    ngx_log_t *log);
static void ngx_http_pyexec_interp_rollback(ngx_http_pyexec_task_t *t,
    ngx_log_t *log);
static void ngx_http_pyexec_interp_adopt(ngx_http_pyexec_task_t *t,
    PyObject *res);
static void ngx_http_pyexec_interp_gen_restored(ngx_http_pyexec_json_t *j,
    ngx_http_pyexec_task_t *t);
static void *ngx_http_pyexec_interp_watch(void *data);
static void ngx_http_pyexec_interp_after(ngx_log_t *log);
static void ngx_http_pyexec_interp_log_error(ngx_log_t *log,
    const char *what);
static PyObject *ngx_http_pyexec_interp_emit(PyObject *self, PyObject *args);
static PyObject *ngx_http_pyexec_interp_streams_mark(PyObject *self,
    PyObject *args);
static PyObject *ngx_http_pyexec_interp_streams_same(PyObject *self,
    PyObject *args);
static void ngx_http_pyexec_interp_streams_forget(void);
static PyObject *ngx_http_pyexec_interp_on_signal(PyObject *self,
    PyObject *args);
static PyObject *ngx_http_pyexec_interp_enter(PyObject *self,
    PyObject *args);
static PyObject *ngx_http_pyexec_interp_leave(PyObject *self,
    PyObject *args);
static PyObject *ngx_http_pyexec_interp_disarm(PyObject *self,
    PyObject *args);
static PyObject *ngx_http_pyexec_interp_stop_threads(PyObject *self,
    PyObject *args);
static int ngx_http_pyexec_interp_stopper(PyObject *obj, PyFrameObject *frame,
    int what, PyObject *arg);
static void ngx_http_pyexec_interp_raise(void);
static ngx_int_t ngx_http_pyexec_interp_runtime(
    ngx_http_pyexec_main_conf_t *pmcf, ngx_log_t *log);
static ngx_int_t ngx_http_pyexec_interp_preload_run(
    ngx_http_pyexec_main_conf_t *pmcf, ngx_log_t *log);
static ngx_int_t ngx_http_pyexec_interp_after_preload(ngx_log_t *log);
static void ngx_http_pyexec_interp_untrace(void);
static ngx_int_t ngx_http_pyexec_interp_gen_end(ngx_http_pyexec_json_t *j,
    PyObject *res, ngx_http_pyexec_task_t *t);
static Py_ssize_t ngx_http_pyexec_interp_utf8_len(PyObject *s);


static PyThreadState     *ngx_http_pyexec_tstate;
static PyThreadState     *ngx_http_pyexec_master_tstate;  /* preloaded */
static u_char             ngx_http_pyexec_preloaded_python[NGX_MAX_PATH];
static pthread_t          ngx_http_pyexec_thread;
static PyObject          *ngx_http_pyexec_run;
static PyObject          *ngx_http_pyexec_new_session;
static PyObject          *ngx_http_pyexec_variables;
static PyObject          *ngx_http_pyexec_close_session;
static PyObject          *ngx_http_pyexec_reap;
static PyObject          *ngx_http_pyexec_checkpoint;
static PyObject          *ngx_http_pyexec_restore;
static PyObject          *ngx_http_pyexec_rollback;
static PyObject          *ngx_http_pyexec_warm;
static PyObject          *ngx_http_pyexec_timeout_exc;
static PyObject          *ngx_http_pyexec_init_code;
static PyObject          *ngx_http_pyexec_cap;
static PyObject          *ngx_http_pyexec_builtins;       /* borrowed */
static PyObject          *ngx_http_pyexec_builtins_saved;
static uint64_t           ngx_http_pyexec_builtins_tag;
static ngx_uint_t         ngx_http_pyexec_trim_due;  /* after a checkpoint */

static volatile sig_atomic_t  ngx_http_pyexec_in_user;
static ngx_atomic_t           ngx_http_pyexec_running_seq;

/*
 * Held by the stop watcher while it signals the running cell, and by the
 * interpreter thread when a cell ends: a cell the watcher sees running
 * cannot have ended, so the thread (which core's pool exit may end right
 * after the cell) is alive when it gets the signal.
 */
static pthread_mutex_t        ngx_http_pyexec_run_lock =
    PTHREAD_MUTEX_INITIALIZER;

static pthread_t              ngx_http_pyexec_watcher;
static ngx_uint_t             ngx_http_pyexec_watching;
static volatile sig_atomic_t  ngx_http_pyexec_watch_done;
static ngx_atomic_t           ngx_http_pyexec_kill_seq;
static ngx_msec_t             ngx_http_pyexec_running_timeout;
static ngx_fd_t               ngx_http_pyexec_statm = NGX_INVALID_FILE;
static size_t                 ngx_http_pyexec_rss_after;  /* 0: read again */

/*
 * The ladder (task.c): what the signal aimed at kill_seq raises (the
 * reason) and how (the stage).  Written by the event loop or the stop
 * watcher before the signal; read in the interpreter thread.
 */
static volatile ngx_uint_t    ngx_http_pyexec_kill_reason;
static volatile ngx_uint_t    ngx_http_pyexec_kill_stage;

/* interpreter thread only: the running cell's ladder as it took effect */
static ngx_uint_t             ngx_http_pyexec_raised;     /* stage raised */
static ngx_uint_t             ngx_http_pyexec_traced;     /* stopper set */
static ngx_uint_t             ngx_http_pyexec_disarmed;   /* cell is over */
static ngx_http_pyexec_exec_t *ngx_http_pyexec_emit_exec;  /* its journal */
static PyObject              *ngx_http_pyexec_cell_prefix; /* "<cell-" */
static PyObject              *ngx_http_pyexec_user_dir;    /* data dir/ */


static PyMethodDef  ngx_http_pyexec_methods[] = {
    { "on_signal", ngx_http_pyexec_interp_on_signal, METH_VARARGS, NULL },
    { "enter", ngx_http_pyexec_interp_enter, METH_NOARGS, NULL },
    { "leave", ngx_http_pyexec_interp_leave, METH_NOARGS, NULL },
    { "disarm", ngx_http_pyexec_interp_disarm, METH_NOARGS, NULL },
    { "stop_threads", ngx_http_pyexec_interp_stop_threads, METH_VARARGS,
      NULL },
    /* from here on: bootstrap.py's "_<name>" */
    { "emit", ngx_http_pyexec_interp_emit, METH_VARARGS, NULL },
    { "streams_mark", ngx_http_pyexec_interp_streams_mark, METH_VARARGS,
      NULL },
    { "streams_same", ngx_http_pyexec_interp_streams_same, METH_NOARGS,
      NULL },
    { NULL, NULL, 0, NULL }
};

#define NGX_HTTP_PYEXEC_FIRST_GLOBAL  5


/*
 * What bootstrap.py's _reset_streams() guards, as _streams_mark() last saw
 * it: the classes of sys.stdout & co. (their dicts' versions), the stream
 * objects (their class, their dict and its version) and what sys's six
 * stream names are bound to.  A dict's ma_version_tag changes with every
 * change to the dict, so equal tags mean an unchanged dict.
 */

#define NGX_HTTP_PYEXEC_GUARDED  8

typedef struct {
    PyObject                 *obj;      /* a class, or a stream object */
    PyObject                 *type;     /* a stream object's class */
    PyObject                 *dict;     /* a stream object's dict */
    uint64_t                  tag;
} ngx_http_pyexec_guarded_t;

static ngx_http_pyexec_guarded_t  ngx_http_pyexec_guarded[
                                      NGX_HTTP_PYEXEC_GUARDED];
static ngx_uint_t                 ngx_http_pyexec_nclasses;
static ngx_uint_t                 ngx_http_pyexec_nguarded;
static PyObject                  *ngx_http_pyexec_sys_streams;  /* tuple */

static const char  *ngx_http_pyexec_sys_names[] = {
    "stdout", "stderr", "__stdout__", "__stderr__", "stdin", "__stdin__"
};

#define NGX_HTTP_PYEXEC_SYS_NAMES                                             \
    (sizeof(ngx_http_pyexec_sys_names) / sizeof(ngx_http_pyexec_sys_names[0]))

/* the names above as interned strings, and sys's dict as marked */
static PyObject  *ngx_http_pyexec_sys_keys[NGX_HTTP_PYEXEC_SYS_NAMES];
static PyObject  *ngx_http_pyexec_sys_dict;
static uint64_t   ngx_http_pyexec_sys_tag;


const char *
ngx_http_pyexec_interp_version(void)
{
    return Py_GetVersion();
}


/* monotonic clock, any thread */

uint64_t
ngx_http_pyexec_interp_now_us(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


uint64_t
ngx_http_pyexec_interp_now_ms(void)
{
    return ngx_http_pyexec_interp_now_us() / 1000;
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

    /* kept open for interp_rss(): read once per cell, one pread() */

    ngx_http_pyexec_statm = ngx_open_file("/proc/self/statm",
                                          NGX_FILE_RDONLY|O_CLOEXEC,
                                          NGX_FILE_OPEN, 0);
    if (ngx_http_pyexec_statm == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                      ngx_open_file_n " \"/proc/self/statm\" failed: "
                      "rss_delta_kib and /status rss are 0");
    }

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

    ngx_http_pyexec_interp_sched(pmcf, log);
    ngx_http_pyexec_interp_demotable(pmcf, log);

    /* nginx pool threads block all signals; let ours in */

    sigemptyset(&set);
    sigaddset(&set, NGX_HTTP_PYEXEC_SIGNAL);
    (void) pthread_sigmask(SIG_UNBLOCK, &set, NULL);

    if (ngx_http_pyexec_interp_boot(pmcf, log) != NGX_OK) {
        ngx_http_pyexec_proc.failed = 1;
    }
}


/*
 * pyexec_sched_batch on: the calling thread (the event loop, the
 * interpreter thread) becomes SCHED_BATCH, so that neither preempts the
 * other when it wakes it: the event loop hands over all the cells it read
 * before the interpreter thread runs them, and takes all their answers
 * after, instead of a switch there and back per cell on a shared core
 * (0.71 context switches per trivial cell down to 0.19).  Off by default:
 * a request that arrives while a cell computes then waits for the
 * interpreter thread's slice (/health p50 0.6 ms -> 2-5 ms).  The stop
 * watcher stays as it was; a fork()ed child gets SCHED_OTHER back
 * (child.c).
 */

static void
ngx_http_pyexec_interp_sched(ngx_http_pyexec_main_conf_t *pmcf,
    ngx_log_t *log)
{
    struct sched_param  sp;

    if (!pmcf->sched_batch) {
        return;
    }

    ngx_memzero(&sp, sizeof(struct sched_param));

    if (sched_setscheduler(0, SCHED_BATCH, &sp) == -1) {
        ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                      "pyexec: sched_setscheduler(SCHED_BATCH) failed");
    }
}


/*
 * pyexec_demote_after: a cell that has run that long gets its thread's
 * nice raised by NGX_HTTP_PYEXEC_DEMOTE (the event loop's timer does it,
 * task.c), and the thread takes its own nice back when the cell ends.
 * On a busy machine the other workers' short cells then get the cores
 * first; on an idle one nothing changes.  Linux's setpriority() on a
 * thread id sets that thread only.  Taking the nice back needs
 * RLIMIT_NICE (the master raises it before it forks, to the workers'
 * worker_priority and no further) or root.
 */

#define NGX_HTTP_PYEXEC_DEMOTE  10

static pid_t       ngx_http_pyexec_thread_tid;
static int         ngx_http_pyexec_thread_nice;
static ngx_uint_t  ngx_http_pyexec_demotable;
static ngx_uint_t  ngx_http_pyexec_demoted;      /* under run_lock */


/* the master, before it forks: let the workers undo a demotion */

ngx_int_t
ngx_http_pyexec_interp_nice_limit(ngx_cycle_t *cycle)
{
    struct rlimit     rl;
    ngx_core_conf_t  *ccf;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (getrlimit(RLIMIT_NICE, &rl) == -1) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "pyexec: getrlimit(RLIMIT_NICE) failed");
        return NGX_ERROR;
    }

    /* RLIMIT_NICE n: a process may lower its nice down to 20 - n */

    if (rl.rlim_cur != RLIM_INFINITY
        && rl.rlim_cur < (rlim_t) (20 - ccf->priority))
    {
        rl.rlim_cur = 20 - ccf->priority;

        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur) {
            rl.rlim_max = rl.rlim_cur;
        }

        if (setrlimit(RLIMIT_NICE, &rl) == -1) {
            /* not root: the workers say whether they can demote */
            ngx_log_debug0(NGX_LOG_DEBUG_CORE, cycle->log, ngx_errno,
                           "pyexec: setrlimit(RLIMIT_NICE) failed");
        }
    }

    return NGX_OK;
}


/* interpreter thread, at its start */

static void
ngx_http_pyexec_interp_demotable(ngx_http_pyexec_main_conf_t *pmcf,
    ngx_log_t *log)
{
    struct rlimit  rl;

    if (pmcf->demote_after == 0) {
        return;
    }

    ngx_http_pyexec_thread_tid = gettid();

    errno = 0;
    ngx_http_pyexec_thread_nice = getpriority(PRIO_PROCESS,
                                              ngx_http_pyexec_thread_tid);
    if (errno != 0) {
        ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                      "pyexec: getpriority() failed, long cells stay as "
                      "they are");
        return;
    }

    if (getrlimit(RLIMIT_NICE, &rl) == -1
        || (rl.rlim_cur != RLIM_INFINITY
            && 20 - (int) rl.rlim_cur > ngx_http_pyexec_thread_nice
            && geteuid() != 0))
    {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "pyexec: long cells are not demoted: RLIMIT_NICE "
                      "would not let this worker take its nice %d back",
                      ngx_http_pyexec_thread_nice);
        return;
    }

    ngx_http_pyexec_demotable = 1;
}


/* event loop: cell "seq" has run for pyexec_demote_after */

void
ngx_http_pyexec_interp_demote(ngx_uint_t seq, ngx_log_t *log)
{
    int  nice;

    if (!ngx_http_pyexec_demotable) {
        return;
    }

    nice = ngx_min(ngx_http_pyexec_thread_nice + NGX_HTTP_PYEXEC_DEMOTE, 19);

    (void) pthread_mutex_lock(&ngx_http_pyexec_run_lock);

    if (ngx_http_pyexec_running_seq == seq && !ngx_http_pyexec_demoted) {
        if (setpriority(PRIO_PROCESS, ngx_http_pyexec_thread_tid, nice)
            == -1)
        {
            ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                          "pyexec: setpriority(%d) failed", nice);

        } else {
            ngx_http_pyexec_demoted = 1;
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                           "pyexec cell %ui demoted to nice %d", seq, nice);
        }
    }

    (void) pthread_mutex_unlock(&ngx_http_pyexec_run_lock);
}


/* interpreter thread, the cell over, under run_lock */

static void
ngx_http_pyexec_interp_promote(ngx_log_t *log)
{
    if (!ngx_http_pyexec_demoted) {
        return;
    }

    ngx_http_pyexec_demoted = 0;

    if (setpriority(PRIO_PROCESS, ngx_http_pyexec_thread_tid,
                    ngx_http_pyexec_thread_nice)
        == -1)
    {
        ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                      "pyexec: setpriority(%d) failed, long cells are no "
                      "longer demoted", ngx_http_pyexec_thread_nice);
        ngx_http_pyexec_demotable = 0;
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
        ngx_http_pyexec_interp_start_watch(ev->log);

        /* the event loop too, now that the watcher is started without */
        ngx_http_pyexec_interp_sched(ngx_http_pyexec_proc.pmcf, ev->log);

        /* warm: session_init's imports, before the first session's cell */

        if (ngx_http_pyexec_proc.pmcf->session_init.len == 0
            || ngx_http_pyexec_task_post_server(NGX_HTTP_PYEXEC_OP_WARM, NULL,
                                                ngx_http_pyexec_interp_warm_done)
               != NGX_OK)
        {
            ngx_http_pyexec_proc.warm = 1;
            ngx_http_pyexec_placement_report();
        }
    }

    ngx_free(task);
}


static void
ngx_http_pyexec_interp_warm_done(ngx_event_t *ev)
{
    ngx_log_t   *log = ev->log;
    ngx_time_t  *tp;

    ngx_free(ev->data);             /* the task: ev is inside it */

    ngx_http_pyexec_proc.warm = 1;
    ngx_http_pyexec_placement_report();

    tp = ngx_timeofday();

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "pyexec: worker warm: pyexec_session_init's imports done "
                  "%uL ms after it started",
                  (uint64_t) tp->sec * 1000 + tp->msec
                  - ngx_http_pyexec_proc.started_ms);
}


/*
 * Durable sessions (pyexec_state_dir): the checkpoint of a session is
 * <state dir>/<md5 of its id>.ckpt (the id itself is inside, checked on
 * restore); bootstrap.py's checkpoint() and restore() do the pickling.
 * Interpreter thread only, with the GIL.
 */

static u_char *
ngx_http_pyexec_interp_checkpoint_path(ngx_http_pyexec_session_t *s,
    u_char *buf, size_t size)
{
    u_char      digest[16], hex[33];
    ngx_md5_t   md5;
    ngx_str_t  *dir;

    dir = &ngx_http_pyexec_proc.pmcf->state_dir;

    if (dir->len == 0 || dir->len + sizeof("/.ckpt.tmp") + 32 > size) {
        return NULL;
    }

    ngx_md5_init(&md5);
    ngx_md5_update(&md5, s->id, s->id_len);
    ngx_md5_final(digest, &md5);
    *ngx_hex_dump(hex, digest, 16) = '\0';

    *ngx_snprintf(buf, size - 1, "%V/%s.ckpt", dir, hex) = '\0';

    return buf;
}


/*
 * Between cells, at most a fiftieth of the time goes to a session's
 * checkpoints (eight agents' sessions on two cores took 10% of a core
 * each at a tenth, bench/fleet.sh; a small session written at every
 * pause of a busy worker, 0.7 ms each, cost its cells a third of their
 * rate): one whose last checkpoint took 1 ms of CPU is written again 50
 * ms after it began at the earliest, one of 50 ms 2.5 s after.  The ms
 * to wait, 0 if due.  Event loop (before it posts the task) and
 * interpreter thread.
 */

ngx_msec_t
ngx_http_pyexec_interp_checkpoint_due(ngx_http_pyexec_session_t *s,
    uint64_t now)
{
    uint64_t  gap;

    gap = (uint64_t) s->ckpt_cost * NGX_HTTP_PYEXEC_CKPT_SHARE / 1000;

    if (s->ckpt_at == 0 || now - s->ckpt_at >= gap) {
        return 0;
    }

    return (ngx_msec_t) (gap - (now - s->ckpt_at));
}


/*
 * Write a session's checkpoint.  Between cells (fork set), a session whose
 * last checkpoint took 200 ms or more is written by a child the
 * interpreter thread forks, as Redis' BGSAVE does (a smaller one is
 * written here: cheaper than a fork, and measured again): the child
 * holds a copy-on-write image of the namespace, pickles it and exits, and
 * the thread goes on to the next cell at once (a fork costs milliseconds;
 * the pickling of a large DataFrame hundreds of them).  One writer per
 * session at a time, so checkpoints land in order: NGX_BUSY while the
 * last one is still being written.  At exit (reload, quit, a recycle's
 * rescue) it is written here, after the session's writer has finished.
 */

static ngx_int_t
ngx_http_pyexec_interp_checkpoint_one(ngx_http_pyexec_session_t *s,
    ngx_uint_t count, ngx_uint_t fork_it, ngx_log_t *log)
{
    u_char      path[NGX_MAX_PATH];
    uint64_t    now, cpu;
    ngx_pid_t   pid;
    PyObject   *res;
    Py_ssize_t  n;

    if (s->ns == NULL
        || ngx_http_pyexec_interp_checkpoint_path(s, path, sizeof(path))
           == NULL)
    {
        return NGX_OK;
    }

    if (ngx_http_pyexec_interp_writer_done(s, !fork_it, log) != NGX_OK) {
        return NGX_BUSY;
    }

    if (fork_it) {
        now = ngx_http_pyexec_interp_now_ms();

        if (ngx_http_pyexec_interp_checkpoint_due(s, now)) {
            return NGX_BUSY;
        }

        s->ckpt_at = now;

        /* a session that pickles in less than a fork costs: written here */

        if (s->ckpt_cost < NGX_HTTP_PYEXEC_CKPT_FORK) {
            fork_it = 0;
        }
    }

    pid = 0;

    if (fork_it) {
        PyOS_BeforeFork();
        pid = fork();

        if (pid == 0) {
            PyOS_AfterFork_Child();

            /* "pyexec-ckpt" in ps, top: what this process is */
            (void) prctl(PR_SET_NAME, "pyexec-ckpt", 0, 0, 0);

        } else {
            PyOS_AfterFork_Parent();

            if (pid == -1) {
                ngx_log_error(NGX_LOG_WARN, log, ngx_errno,
                              "pyexec: fork() for a checkpoint failed, "
                              "writing it in the interpreter thread");
            }
        }

        if (pid > 0) {
            s->ckpt_pid = pid;

            ngx_log_debug4(NGX_LOG_DEBUG_HTTP, log, 0,
                           "pyexec session \"%*s\" checkpoint %ui: "
                           "writer %P", s->id_len, s->id, count, pid);
            return NGX_OK;
        }
    }

    cpu = ngx_http_pyexec_interp_cpu_us();

    res = PyObject_CallFunction(ngx_http_pyexec_checkpoint, "OOsy#nn",
                                (PyObject *) s->ns, (PyObject *) s->injected,
                                (char *) path, (char *) s->id,
                                (Py_ssize_t) s->id_len, (Py_ssize_t) count,
                                (Py_ssize_t)
                                ngx_http_pyexec_proc.pmcf->checkpoint_max);
    if (res == NULL) {
        ngx_http_pyexec_interp_log_error(log, "checkpoint()");

        if (pid == 0 && fork_it) {
            _exit(1);               /* the writer */
        }

        return NGX_OK;
    }

    if (pid == 0 && !fork_it) {
        cpu = ngx_http_pyexec_interp_cpu_us() - cpu;
        s->ckpt_cost = (uint32_t) ngx_min(cpu, NGX_MAX_UINT32_VALUE);
        ngx_http_pyexec_metrics_checkpoint(cpu, (char *) path);

        /* the pickles' buffers, freed, stay in the heap untrimmed */

        if (cpu >= NGX_HTTP_PYEXEC_TRIM_CPU) {
            ngx_http_pyexec_trim_due = 1;
        }
    }

    n = PyList_Check(res) ? PyList_GET_SIZE(res) : 0;

    if (n) {
        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "pyexec: session \"%*s\" checkpointed at execution "
                      "%ui, %z names not kept", s->id_len, s->id, count,
                      (size_t) n);

    } else {
        ngx_log_debug3(NGX_LOG_DEBUG_HTTP, log, 0,
                       "pyexec session \"%*s\" checkpointed at execution %ui",
                       s->id_len, s->id, count);
    }

    Py_DECREF(res);

    if (pid == 0 && fork_it) {
        _exit(0);                   /* the writer: nothing else of ours */
    }

    return NGX_OK;
}


/*
 * Has the writer of the session's last checkpoint finished (NGX_OK) or is
 * it still writing (NGX_BUSY)?  wait: until it has.  A writer the reaper
 * took first (ECHILD) has finished too.
 */

static ngx_int_t
ngx_http_pyexec_interp_writer_done(ngx_http_pyexec_session_t *s,
    ngx_uint_t wait, ngx_log_t *log)
{
    int            status;
    u_char         path[NGX_MAX_PATH];
    uint64_t       us;
    ngx_pid_t      pid;
    struct rusage  ru;

    if (s->ckpt_pid == 0) {
        return NGX_OK;
    }

    do {
        pid = wait4(s->ckpt_pid, &status, wait ? 0 : WNOHANG, &ru);
    } while (pid == -1 && ngx_errno == NGX_EINTR);

    if (pid == 0) {
        if (wait || ngx_http_pyexec_interp_now_ms() - s->ckpt_at
                    < NGX_HTTP_PYEXEC_CKPT_STUCK)
        {
            return NGX_BUSY;
        }

        /* hung (a user's at-fork hook?): the session is written again */

        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "pyexec: the checkpoint writer %P of session \"%*s\" "
                      "still runs after %d s, killed", s->ckpt_pid,
                      s->id_len, s->id, NGX_HTTP_PYEXEC_CKPT_STUCK / 1000);

        ngx_http_pyexec_interp_writer_kill(s, log);

        return NGX_OK;
    }

    if (pid > 0 && WIFEXITED(status)) {
        /* a writer that was killed says nothing of what a checkpoint costs */
        us = (uint64_t) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000
             + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
        s->ckpt_cost = (uint32_t) ngx_min(us, NGX_MAX_UINT32_VALUE);

        if (WEXITSTATUS(status) == 0
            && ngx_http_pyexec_interp_checkpoint_path(s, path, sizeof(path))
               != NULL)
        {
            ngx_http_pyexec_metrics_checkpoint(us, (char *) path);
        }
    }

    if (pid > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "pyexec: the checkpoint writer %P of session \"%*s\" "
                      "failed (status %d): its previous checkpoint stays",
                      s->ckpt_pid, s->id_len, s->id, status);
    }

    s->ckpt_pid = 0;

    return NGX_OK;
}


/* the session's writer, if any, is gone now: killed and collected */

static void
ngx_http_pyexec_interp_writer_kill(ngx_http_pyexec_session_t *s,
    ngx_log_t *log)
{
    if (s->ckpt_pid) {
        (void) kill(s->ckpt_pid, SIGKILL);
        (void) ngx_http_pyexec_interp_writer_done(s, 1, log);
    }
}


/* NGX_OK: a checkpoint was there and is gone; NGX_DECLINED: none */

static ngx_int_t
ngx_http_pyexec_interp_checkpoint_remove(ngx_http_pyexec_session_t *s,
    ngx_log_t *log)
{
    u_char     path[NGX_MAX_PATH];
    size_t     len;
    ngx_int_t  rc;

    if (ngx_http_pyexec_interp_checkpoint_path(s, path, sizeof(path))
        == NULL)
    {
        return NGX_DECLINED;
    }

    rc = NGX_OK;

    if (unlink((char *) path) == -1) {
        rc = NGX_DECLINED;

        if (ngx_errno != NGX_ENOENT) {
            ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                          "pyexec: unlink(\"%s\") failed", path);
        }
    }

    len = ngx_strlen(path);

    (void) ngx_cpystrn(path + len, (u_char *) ".prev", 6);

    if (unlink((char *) path) == -1 && ngx_errno != NGX_ENOENT) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "pyexec: unlink(\"%s\") failed", path);
    }

    /* what a writer killed mid-write left */

    (void) ngx_cpystrn(path + len, (u_char *) ".tmp", 5);

    if (unlink((char *) path) == -1 && ngx_errno != NGX_ENOENT) {
        ngx_log_error(NGX_LOG_ERR, log, ngx_errno,
                      "pyexec: unlink(\"%s\") failed", path);
    }

    return rc;
}


/* NGX_OK: restored; NGX_DECLINED: no checkpoint, or t->gone says why not */

static ngx_int_t
ngx_http_pyexec_interp_restore(ngx_http_pyexec_task_t *t, ngx_log_t *log)
{
    u_char                      path[NGX_MAX_PATH];
    PyObject                   *res, *type, *exc, *tb, *msg;
    const char                 *why;
    ngx_http_pyexec_session_t  *s = t->session;

    if (ngx_http_pyexec_interp_checkpoint_path(s, path, sizeof(path))
        == NULL)
    {
        return NGX_DECLINED;
    }

    res = PyObject_CallFunction(ngx_http_pyexec_restore, "sy#O",
                                (char *) path, (char *) s->id,
                                (Py_ssize_t) s->id_len,
                                ngx_http_pyexec_init_code);

    if (res == Py_None) {
        Py_DECREF(res);
        return NGX_DECLINED;
    }

    if (res == NULL || !PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 4) {
        PyErr_Fetch(&type, &exc, &tb);
        PyErr_NormalizeException(&type, &exc, &tb);
        Py_XDECREF(type);
        Py_XDECREF(tb);
        msg = exc ? PyObject_Str(exc) : NULL;
        why = msg ? PyUnicode_AsUTF8(msg) : NULL;
        if (why == NULL) {
            PyErr_Clear();
            why = "checkpoint unusable";
        }

        *ngx_snprintf(t->gone, sizeof(t->gone) - 1, "session lost: %s",
                      why) = '\0';

        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "pyexec: session \"%*s\" not restored from \"%s\": %s",
                      s->id_len, s->id, path, why);

        Py_XDECREF(msg);
        Py_XDECREF(exc);
        Py_XDECREF(res);
        return NGX_DECLINED;
    }

    ngx_http_pyexec_interp_adopt(t, res);
    t->execution_count = t->restored_from + 1;

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "pyexec: session \"%*s\" restored at execution %ui",
                  s->id_len, s->id, t->restored_from);

    Py_DECREF(res);

    return NGX_OK;
}


/*
 * The session from restore() or rollback()'s (sess, injected, execution
 * count, lost names): it replaces the session's namespace, if any; the
 * task keeps the count and the lost names for the reply.
 */

static void
ngx_http_pyexec_interp_adopt(ngx_http_pyexec_task_t *t, PyObject *res)
{
    ngx_http_pyexec_session_t  *s = t->session;

    Py_XDECREF((PyObject *) s->ns);
    Py_XDECREF((PyObject *) s->injected);
    s->ns = PyTuple_GET_ITEM(res, 0);
    s->injected = PyTuple_GET_ITEM(res, 1);
    Py_INCREF((PyObject *) s->ns);
    Py_INCREF((PyObject *) s->injected);

    t->restored_from = PyLong_AsSize_t(PyTuple_GET_ITEM(res, 2));
    if (PyErr_Occurred()) {
        PyErr_Clear();
        t->restored_from = 0;
    }

    t->restored = PyTuple_GET_ITEM(res, 3);
    Py_INCREF((PyObject *) t->restored);
    t->was_restored = 1;
}


/*
 * POST /sessions/{id}/rollback: the state before the last cell, from the
 * session's checkpoint or the one before (bootstrap.py rollback()); 404
 * when neither is that state.
 */

static void
ngx_http_pyexec_interp_rollback(ngx_http_pyexec_task_t *t, ngx_log_t *log)
{
    u_char                      path[NGX_MAX_PATH];
    PyObject                   *res;
    ngx_http_pyexec_json_t      j;
    ngx_http_pyexec_session_t  *s = t->session;

    t->status = NGX_HTTP_NOT_FOUND;

    if (s->ns == NULL || t->execution_count == 0
        || ngx_http_pyexec_interp_checkpoint_path(s, path, sizeof(path))
           == NULL)
    {
        return;
    }

    (void) ngx_http_pyexec_interp_writer_done(s, 1, log);  /* files settle */

    res = PyObject_CallFunction(ngx_http_pyexec_rollback, "OOsy#nOn",
                                (PyObject *) s->ns, (PyObject *) s->injected,
                                (char *) path, (char *) s->id,
                                (Py_ssize_t) s->id_len,
                                (Py_ssize_t) t->execution_count,
                                ngx_http_pyexec_init_code,
                                (Py_ssize_t)
                                ngx_http_pyexec_proc.pmcf->checkpoint_max);
    if (res == NULL) {
        ngx_http_pyexec_interp_log_error(log, "rollback()");
        t->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return;
    }

    if (res == Py_None || !PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 4) {
        Py_DECREF(res);
        return;
    }

    ngx_http_pyexec_interp_adopt(t, res);

    Py_DECREF(res);

    if (ngx_http_pyexec_json_init(&j) != NGX_OK) {
        Py_CLEAR(t->restored);
        t->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return;
    }

    ngx_http_pyexec_json_map_open(&j);
    ngx_http_pyexec_json_kv(&j, "session_id", s->id, s->id_len);
    ngx_http_pyexec_json_key(&j, "execution_count");
    ngx_http_pyexec_json_int(&j, t->restored_from);
    ngx_http_pyexec_interp_gen_restored(&j, t);
    ngx_http_pyexec_json_map_close(&j);

    ngx_log_error(NGX_LOG_INFO, log, 0,
                  "pyexec: session \"%*s\" rolled back to execution %ui",
                  s->id_len, s->id, t->restored_from);

    t->json = j;
    t->status = NGX_HTTP_OK;
}


/* "restored": {"from_execution": n, "lost": [{name, type, reason}]} */

static void
ngx_http_pyexec_interp_gen_restored(ngx_http_pyexec_json_t *j,
    ngx_http_pyexec_task_t *t)
{
    PyObject    *item;
    Py_ssize_t   i, n;

    if (t->restored == NULL) {
        return;
    }

    ngx_http_pyexec_json_key(j, "restored");
    ngx_http_pyexec_json_map_open(j);
    ngx_http_pyexec_json_key(j, "from_execution");
    ngx_http_pyexec_json_int(j, t->restored_from);
    ngx_http_pyexec_json_key(j, "lost");
    ngx_http_pyexec_json_array_open(j);

    n = PyList_Check((PyObject *) t->restored)
        ? PyList_GET_SIZE((PyObject *) t->restored) : 0;

    for (i = 0; i < n; i++) {
        item = PyList_GET_ITEM((PyObject *) t->restored, i);

        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3) {
            continue;
        }

        ngx_http_pyexec_json_map_open(j);
        ngx_http_pyexec_json_key(j, "name");
        (void) ngx_http_pyexec_interp_gen_str(j, PyTuple_GET_ITEM(item, 0));
        ngx_http_pyexec_json_key(j, "type");
        (void) ngx_http_pyexec_interp_gen_str(j, PyTuple_GET_ITEM(item, 1));
        ngx_http_pyexec_json_key(j, "reason");
        (void) ngx_http_pyexec_interp_gen_str(j, PyTuple_GET_ITEM(item, 2));
        ngx_http_pyexec_json_map_close(j);
    }

    ngx_http_pyexec_json_array_close(j);
    ngx_http_pyexec_json_map_close(j);

    Py_CLEAR(t->restored);
}


/*
 * exit_process, main thread: the interpreter thread has ended (core's pool
 * exit ran first), so the GIL is free unless a cell is stuck; every
 * session changed since its checkpoint is written now (reload, quit).
 */

void
ngx_http_pyexec_interp_checkpoint_all(void)
{
    ngx_queue_t                *q;
    PyGILState_STATE            gs;
    ngx_http_pyexec_session_t  *s;

    if (ngx_http_pyexec_proc.pmcf == NULL
        || ngx_http_pyexec_proc.pmcf->state_dir.len == 0
        || !ngx_http_pyexec_proc.ready || ngx_http_pyexec_proc.failed
        || ngx_http_pyexec_running_seq != 0
        || ngx_http_pyexec_proc.stopping == NGX_HTTP_PYEXEC_STOP_RECYCLE
        || ngx_http_pyexec_child_is_copy()
        || ngx_http_pyexec_proc.lru.next == NULL)
    {
        return;
    }

    gs = PyGILState_Ensure();

    for (q = ngx_queue_head(&ngx_http_pyexec_proc.lru);
         q != ngx_queue_sentinel(&ngx_http_pyexec_proc.lru);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_pyexec_session_t, lru);

        if (s->dirty && s->ns) {
            (void) ngx_http_pyexec_interp_checkpoint_one(s,
                                                         s->execution_count,
                                                         0, ngx_cycle->log);
        }
    }

    PyGILState_Release(gs);
}


/*
 * A worker recycled by a stuck cell, just before it exits: a helper thread
 * takes the GIL -- it gets it when the stuck C call released it (a ctypes
 * call, a blocking read), never when a C loop holds it -- and writes every
 * changed session but the stuck one.  The event loop waits at most `wait`
 * ms for it; the exit then ends the helper wherever it is.
 */

static volatile sig_atomic_t  ngx_http_pyexec_rescue_done;


static void *
ngx_http_pyexec_interp_rescue_thread(void *data)
{
    ngx_queue_t                *q;
    PyGILState_STATE            gs;
    ngx_http_pyexec_session_t  *s, *stuck = data;

    gs = PyGILState_Ensure();

    for (q = ngx_queue_head(&ngx_http_pyexec_proc.lru);
         q != ngx_queue_sentinel(&ngx_http_pyexec_proc.lru);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_pyexec_session_t, lru);

        if (s->dirty && s->ns && s != stuck) {
            (void) ngx_http_pyexec_interp_checkpoint_one(s,
                                                         s->execution_count,
                                                         0, ngx_cycle->log);
        }
    }

    PyGILState_Release(gs);

    ngx_http_pyexec_rescue_done = 1;

    return NULL;
}


void
ngx_http_pyexec_interp_checkpoint_rescue(ngx_http_pyexec_session_t *stuck,
    ngx_msec_t wait)
{
    ngx_uint_t                  n, dirty;
    sigset_t                    all, old;
    pthread_t                   tid;
    ngx_queue_t                *q;
    ngx_http_pyexec_session_t  *s;

    if (ngx_http_pyexec_proc.pmcf->state_dir.len == 0
        || !ngx_http_pyexec_proc.ready)
    {
        return;
    }

    dirty = 0;

    for (q = ngx_queue_head(&ngx_http_pyexec_proc.lru);
         q != ngx_queue_sentinel(&ngx_http_pyexec_proc.lru);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_pyexec_session_t, lru);

        if (s->dirty && s != stuck) {
            dirty++;
        }
    }

    if (dirty == 0) {
        return;
    }

    (void) sigfillset(&all);
    (void) pthread_sigmask(SIG_SETMASK, &all, &old);

    n = pthread_create(&tid, NULL, ngx_http_pyexec_interp_rescue_thread,
                       stuck);

    (void) pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (n != 0) {
        return;
    }

    for (n = 0; n < wait / 10 && !ngx_http_pyexec_rescue_done; n++) {
        (void) usleep(10000);
    }

    ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                  "pyexec: %s the %ui changed sessions before the exit",
                  ngx_http_pyexec_rescue_done ? "checkpointed"
                  : "could not checkpoint (the stuck cell holds the GIL)",
                  dirty);
}


/*
 * The stop watcher: a small thread of ours, all signals blocked, that
 * never touches nginx's structures.  When nginx begins to stop (QUIT,
 * TERM, a reload, in a worker or a single process), a running cell would
 * otherwise hold the process for its whole time limit -- or for ever,
 * since core's thread pool exit waits for the interpreter thread and no
 * nginx timer fires by then.  Each cell may run on for 500 ms after the
 * stop began (a reload's backlog of quick cells still completes); then
 * the watcher interrupts it (KeyboardInterrupt, again every 250 ms; past
 * pyexec_interrupt_grace at every line: task.c's ladder).  A cell stuck
 * in C code for a kill grace past that ends the process.
 * While a stuck cell recycles the worker, the drain (task.c) owns the
 * exit.
 */

static void
ngx_http_pyexec_interp_start_watch(ngx_log_t *log)
{
    int             err;
    sigset_t        all, old;
    pthread_t       tid;
    pthread_attr_t  attr;

    (void) sigfillset(&all);
    (void) pthread_sigmask(SIG_SETMASK, &all, &old);

    err = pthread_attr_init(&attr);

    if (err == 0) {
        err = pthread_create(&tid, &attr, ngx_http_pyexec_interp_watch,
                             NULL);
        (void) pthread_attr_destroy(&attr);
    }

    (void) pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (err == 0) {
        ngx_http_pyexec_watcher = tid;
        ngx_http_pyexec_watching = 1;
    }

    if (err != 0) {
        ngx_log_error(NGX_LOG_ALERT, log, err,
                      "pyexec: pthread_create() of the stop watcher failed; "
                      "a stop waits for a running cell");
    }
}


static void *
ngx_http_pyexec_interp_watch(void *data)
{
    uint64_t    now, since, last;
    ngx_uint_t  seq;
    ngx_msec_t  grace;

    grace = ngx_http_pyexec_proc.pmcf->kill_grace;
    seq = 0;
    since = 0;
    last = 0;

    while (!ngx_http_pyexec_watch_done) {
        (void) usleep(NGX_HTTP_PYEXEC_WATCH_TICK * 1000);

        if (!(ngx_quit || ngx_terminate || ngx_exiting)) {
            continue;
        }

        if (ngx_http_pyexec_proc.stopping == 0) {
            ngx_http_pyexec_proc.stopping = NGX_HTTP_PYEXEC_STOP_QUIT;
        }

        if (ngx_http_pyexec_proc.stopping == NGX_HTTP_PYEXEC_STOP_RECYCLE
            || ngx_http_pyexec_running_seq == 0)
        {
            continue;
        }

        /* each cell gets NGX_HTTP_PYEXEC_STOP_GRACE from the stop (or
         * from its start, for one queued before the stop) */

        now = ngx_http_pyexec_interp_now_ms();

        if (seq != ngx_http_pyexec_running_seq) {
            seq = ngx_http_pyexec_running_seq;
            since = now;
        }

        if (now - since < NGX_HTTP_PYEXEC_STOP_GRACE) {
            continue;
        }

        if (now - last >= 250) {
            last = now;

            (void) pthread_mutex_lock(&ngx_http_pyexec_run_lock);

            if (ngx_http_pyexec_running_seq == seq) {
                ngx_http_pyexec_interp_interrupt(seq, NGX_HTTP_PYEXEC_KILL_STOP,
                    now - since < NGX_HTTP_PYEXEC_STOP_GRACE
                                  + ngx_http_pyexec_proc.pmcf->interrupt_grace
                    ? NGX_HTTP_PYEXEC_STAGE_EXCEPTION
                    : NGX_HTTP_PYEXEC_STAGE_TRACE);
            }

            (void) pthread_mutex_unlock(&ngx_http_pyexec_run_lock);
        }

        if (now - since > NGX_HTTP_PYEXEC_STOP_GRACE + grace) {
            ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                          "pyexec: a cell did not stop %M ms after nginx "
                          "began to stop (stuck in C code), exiting", grace);
            _exit(1);
        }
    }

    return NULL;
}


/*
 * pyexec_preload (on by default): the master initialises Python and runs
 * pyexec_session_init once, as the worker user, output discarded, so its
 * imports (numpy, pandas, matplotlib, ...) are done before nginx forks the
 * workers: every worker starts warm, and their pages are shared
 * copy-on-write.  gc.freeze() then keeps the collector of a worker from
 * writing into them.  Python stays idle in the master (its thread state
 * saved, the GIL free), so a fork finds no Python lock held.  A reload
 * runs the code again (new imports for the new workers).  Not with
 * master_process off nor for nginx -t.
 */

void
ngx_http_pyexec_interp_preload(ngx_cycle_t *cycle,
    ngx_http_pyexec_main_conf_t *pmcf)
{
    ngx_uid_t         uid;
    ngx_gid_t         gid;
    ngx_uint_t        as_user;
    ngx_core_conf_t  *ccf;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    if (ngx_test_config || !ccf->master || pmcf->session_init.len == 0) {
        return;
    }

    if (ngx_http_pyexec_master_tstate
        && ngx_strcmp(ngx_http_pyexec_preloaded_python, pmcf->python.data)
           != 0)
    {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "pyexec_python \"%V\" takes effect at the next start "
                      "of nginx: the master preloaded \"%s\"",
                      &pmcf->python, ngx_http_pyexec_preloaded_python);
        return;
    }

    if (ngx_http_pyexec_master_tstate == NULL && Py_IsInitialized()) {
        return;
    }

    uid = geteuid();
    gid = getegid();
    as_user = 0;

    if (uid == 0 && ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT
        && ccf->user != 0)
    {
        if (setegid(ccf->group) == -1 || seteuid(ccf->user) == -1) {
            ngx_log_error(NGX_LOG_WARN, cycle->log, ngx_errno,
                          "pyexec_preload: seteuid(%d) failed, not preloaded",
                          (int) ccf->user);

            if (setegid(gid) == -1) {
                ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                              "pyexec_preload: setegid(%d) back failed",
                              (int) gid);
            }

            return;
        }

        as_user = 1;
    }

    if (ngx_http_pyexec_master_tstate) {
        PyEval_RestoreThread(ngx_http_pyexec_master_tstate);
        (void) ngx_http_pyexec_interp_preload_run(pmcf, cycle->log);
        ngx_http_pyexec_master_tstate = PyEval_SaveThread();

    } else if (pmcf->python.len < sizeof(ngx_http_pyexec_preloaded_python)
               && ngx_http_pyexec_interp_runtime(pmcf, cycle->log) == NGX_OK)
    {
        (void) ngx_cpystrn(ngx_http_pyexec_preloaded_python,
                           pmcf->python.data, pmcf->python.len + 1);
        (void) ngx_http_pyexec_interp_preload_run(pmcf, cycle->log);
        ngx_http_pyexec_master_tstate = PyEval_SaveThread();
    }

    if (as_user && (seteuid(uid) == -1 || setegid(gid) == -1)) {
        ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                      "pyexec_preload: seteuid(%d) back failed", (int) uid);
    }
}


/* master, with the GIL: pyexec_session_init in a scratch namespace */

static ngx_int_t
ngx_http_pyexec_interp_preload_run(ngx_http_pyexec_main_conf_t *pmcf,
    ngx_log_t *log)
{
    uint64_t   start;
    PyObject  *globals, *res, *fn, *code;

    static const char  src[] =
        "def preload(code):\n"
        "    import contextlib, gc, io, sys\n"
        "    out = io.StringIO()\n"
        "    with contextlib.redirect_stdout(out), "
                 "contextlib.redirect_stderr(out):\n"
        "        exec(compile(code, '<pyexec_session_init>', 'exec'),\n"
        "             {'__name__': '__main__'})\n"
        "    gc.collect()\n"
        "    gc.freeze()\n"
        "    return len(sys.modules)\n";

    start = ngx_http_pyexec_interp_now_ms();
    res = NULL;
    code = NULL;

    globals = PyDict_New();
    if (globals == NULL
        || PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins())
           != 0)
    {
        goto failed;
    }

    res = PyRun_String(src, Py_file_input, globals, globals);
    if (res == NULL) {
        goto failed;
    }

    Py_DECREF(res);

    fn = PyDict_GetItemString(globals, "preload");           /* borrowed */
    code = PyUnicode_DecodeUTF8((char *) pmcf->session_init.data,
                                pmcf->session_init.len, "strict");
    if (fn == NULL || code == NULL) {
        goto failed;
    }

    res = PyObject_CallOneArg(fn, code);
    if (res == NULL) {
        goto failed;
    }

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "pyexec: pyexec_session_init preloaded in the master in "
                  "%uL ms, %l modules", ngx_http_pyexec_interp_now_ms() - start,
                  PyLong_AsLong(res));

    Py_DECREF(res);
    Py_DECREF(code);
    Py_DECREF(globals);

    return NGX_OK;

failed:

    ngx_http_pyexec_interp_log_error(log, "pyexec_preload: "
                                     "pyexec_session_init in the master");
    Py_XDECREF(code);
    Py_XDECREF(globals);

    return NGX_ERROR;
}


/*
 * Interpreter thread of a worker forked from a master that preloaded:
 * Python was idle in the master, so no lock of it is held.  A thread state
 * of this thread's own, then the interpreter's after-fork work, done here:
 * this thread becomes Python's main thread (signal handlers run in it),
 * the master's thread state is dropped, at-fork hooks run (random's seed).
 * Then what the master's snapshot got wrong for a worker: os.environ (the
 * worker's environment is nginx's env directives, not the master's), and
 * numpy's global random state (one seed per worker, as each process had).
 */

static ngx_int_t
ngx_http_pyexec_interp_after_preload(ngx_log_t *log)
{
    int        rc;
    char     **e, *eq;
    PyObject  *os, *env, *data, *k, *v, *modules, *nprandom, *res;

    (void) PyGILState_Ensure();
    PyOS_AfterFork_Child();
    ngx_http_pyexec_master_tstate = NULL;

    env = data = NULL;

    os = PyImport_ImportModule("os");
    if (os == NULL) {
        goto failed;
    }

    env = PyObject_GetAttrString(os, "environ");
    if (env == NULL) {
        goto failed;
    }

    data = PyObject_GetAttrString(env, "_data");
    if (data == NULL || !PyDict_Check(data)) {
        goto failed;
    }

    PyDict_Clear(data);

    for (e = environ; *e; e++) {
        eq = strchr(*e, '=');
        if (eq == NULL) {
            continue;
        }

        k = PyBytes_FromStringAndSize(*e, eq - *e);
        v = PyBytes_FromString(eq + 1);
        rc = (k && v) ? PyDict_SetItem(data, k, v) : -1;
        Py_XDECREF(k);
        Py_XDECREF(v);

        if (rc != 0) {
            goto failed;
        }
    }

    modules = PyImport_GetModuleDict();                       /* borrowed */
    nprandom = PyDict_GetItemString(modules, "numpy.random"); /* borrowed */

    if (nprandom) {
        res = PyObject_CallMethod(nprandom, "seed", NULL);
        if (res == NULL) {
            goto failed;
        }

        Py_DECREF(res);
    }

    Py_DECREF(data);
    Py_DECREF(env);
    Py_DECREF(os);

    return NGX_OK;

failed:

    ngx_http_pyexec_interp_log_error(log, "pyexec: a preloaded worker's "
                                     "environment");
    Py_XDECREF(data);
    Py_XDECREF(env);
    Py_XDECREF(os);

    (void) PyEval_SaveThread();

    return NGX_ERROR;
}


/*
 * Py_InitializeFromConfig() as the module wants it; the calling thread
 * holds the GIL after it.
 */

static ngx_int_t
ngx_http_pyexec_interp_runtime(ngx_http_pyexec_main_conf_t *pmcf,
    ngx_log_t *log)
{
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

    return NGX_OK;
}


static ngx_int_t
ngx_http_pyexec_interp_boot(ngx_http_pyexec_main_conf_t *pmcf, ngx_log_t *log)
{
    char          name[32];
    PyObject     *mod, *dict, *code, *res, *setup, *handler, *enter, *leave,
                 *disarm, *stop, *fn;
    PyMethodDef  *m;

    if (ngx_http_pyexec_master_tstate) {
        if (ngx_http_pyexec_interp_after_preload(log) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (ngx_http_pyexec_interp_runtime(pmcf, log) != NGX_OK) {
        return NGX_ERROR;
    }

    mod = dict = code = res = setup = handler = enter = leave = NULL;
    disarm = stop = NULL;

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
    ngx_http_pyexec_checkpoint = PyDict_GetItemString(dict, "checkpoint");
    ngx_http_pyexec_restore = PyDict_GetItemString(dict, "restore");
    ngx_http_pyexec_rollback = PyDict_GetItemString(dict, "rollback");
    ngx_http_pyexec_warm = PyDict_GetItemString(dict, "warm");
    ngx_http_pyexec_timeout_exc = PyDict_GetItemString(dict, "TimeoutError");
    setup = PyDict_GetItemString(dict, "setup");

    if (ngx_http_pyexec_run == NULL || ngx_http_pyexec_new_session == NULL
        || ngx_http_pyexec_variables == NULL
        || ngx_http_pyexec_close_session == NULL
        || ngx_http_pyexec_reap == NULL
        || ngx_http_pyexec_checkpoint == NULL
        || ngx_http_pyexec_restore == NULL
        || ngx_http_pyexec_rollback == NULL
        || ngx_http_pyexec_warm == NULL
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
    Py_INCREF(ngx_http_pyexec_checkpoint);
    Py_INCREF(ngx_http_pyexec_restore);
    Py_INCREF(ngx_http_pyexec_rollback);
    Py_INCREF(ngx_http_pyexec_warm);
    Py_INCREF(ngx_http_pyexec_timeout_exc);

    handler = PyCFunction_New(&ngx_http_pyexec_methods[0], NULL);
    enter = PyCFunction_New(&ngx_http_pyexec_methods[1], NULL);
    leave = PyCFunction_New(&ngx_http_pyexec_methods[2], NULL);
    disarm = PyCFunction_New(&ngx_http_pyexec_methods[3], NULL);
    stop = PyCFunction_New(&ngx_http_pyexec_methods[4], NULL);
    if (handler == NULL || enter == NULL || leave == NULL || disarm == NULL
        || stop == NULL)
    {
        goto failed;
    }

    /* the code the stopper raises in: cells, the data folder's modules */

    ngx_http_pyexec_cell_prefix = PyUnicode_FromString("<cell-");
    if (ngx_http_pyexec_cell_prefix == NULL) {
        goto failed;
    }

    if (pmcf->data_dir.len) {
        ngx_http_pyexec_user_dir = PyUnicode_FromFormat("%.*s/",
                                       (int) pmcf->data_dir.len,
                                       (char *) pmcf->data_dir.data);
        if (ngx_http_pyexec_user_dir == NULL) {
            goto failed;
        }
    }

    /*
     * bootstrap.py's _emit() (a running cell's events to its journal),
     * _streams_mark() and _streams_same() (_reset_streams()'s shortcut)
     */

    for (m = &ngx_http_pyexec_methods[NGX_HTTP_PYEXEC_FIRST_GLOBAL];
         m->ml_name;
         m++)
    {
        fn = PyCFunction_New(m, NULL);
        if (fn == NULL) {
            goto failed;
        }

        name[0] = '_';
        (void) ngx_cpystrn((u_char *) name + 1, (u_char *) m->ml_name,
                           sizeof(name) - 1);

        if (PyDict_SetItemString(dict, name, fn) != 0) {
            Py_DECREF(fn);
            goto failed;
        }

        Py_DECREF(fn);
    }

    Py_DECREF(res);
    res = PyObject_CallFunction(setup, "s#OOiOs#OOk",
                                pmcf->data_dir.data, pmcf->data_dir.len,
                                enter, leave,
                                (int) NGX_HTTP_PYEXEC_SIGNAL, handler,
                                pmcf->python.data, pmcf->python.len,
                                disarm, stop,
                                (unsigned long) pmcf->interrupt_grace);
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
    Py_DECREF(disarm);
    Py_DECREF(stop);

    ngx_http_pyexec_tstate = PyEval_SaveThread();

    return NGX_OK;

failed:

    ngx_http_pyexec_interp_log_error(log, "pyexec bootstrap");

    Py_XDECREF(res);
    Py_XDECREF(code);
    Py_XDECREF(handler);
    Py_XDECREF(enter);
    Py_XDECREF(leave);
    Py_XDECREF(disarm);
    Py_XDECREF(stop);

    ngx_http_pyexec_tstate = PyEval_SaveThread();

    return NGX_ERROR;
}


/* any thread: is the interpreter ours to use here */

void
ngx_http_pyexec_interp_run(ngx_http_pyexec_task_t *t, ngx_log_t *log)
{
    PyObject                   *res;
    ngx_http_pyexec_session_t  *s;

    if (ngx_http_pyexec_proc.failed || ngx_http_pyexec_tstate == NULL) {
        t->status = NGX_HTTP_SERVICE_UNAVAILABLE;     /* failed to start */
        return;
    }

    if (t->cancelled) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                       "pyexec cell %ui not run: its client went away",
                       t->seq);
        t->status = NGX_HTTP_CLIENT_CLOSED_REQUEST;
        return;
    }

    if (ngx_http_pyexec_proc.stopping == NGX_HTTP_PYEXEC_STOP_RECYCLE
        && t->op == NGX_HTTP_PYEXEC_OP_EXECUTE)
    {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, log, 0,
                       "pyexec cell %ui not run: stopping", t->seq);
        t->status = NGX_HTTP_SERVICE_UNAVAILABLE;
        return;
    }

    if (!pthread_equal(pthread_self(), ngx_http_pyexec_thread)) {
        ngx_log_error(NGX_LOG_ALERT, log, 0,
                      "pyexec: task ran outside the interpreter thread; "
                      "the pyexec thread pool must have threads=1");
        t->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return;
    }

    PyEval_RestoreThread(ngx_http_pyexec_tstate);

    switch (t->op) {

    case NGX_HTTP_PYEXEC_OP_EXECUTE:
        ngx_http_pyexec_interp_execute(t, log);
        break;

    case NGX_HTTP_PYEXEC_OP_VARIABLES:
        ngx_http_pyexec_interp_variables(t, log);
        break;

    case NGX_HTTP_PYEXEC_OP_DESTROY:
        s = t->session;
        res = PyObject_CallOneArg(ngx_http_pyexec_close_session,
                                  (PyObject *) s->ns);
        if (res == NULL) {
            ngx_http_pyexec_interp_log_error(log, "close_session()");
        }

        Py_XDECREF(res);
        Py_CLEAR(s->ns);
        Py_CLEAR(s->injected);

        /* a writer still at work would put the checkpoint back */

        ngx_http_pyexec_interp_writer_kill(s, log);

        (void) ngx_http_pyexec_interp_checkpoint_remove(s, log);
        break;

    case NGX_HTTP_PYEXEC_OP_CHECKPOINT:
        t->status = ngx_http_pyexec_interp_checkpoint_one(t->session,
                                                          t->execution_count,
                                                          1, log);
        break;

    case NGX_HTTP_PYEXEC_OP_ROLLBACK:
        ngx_http_pyexec_interp_rollback(t, log);
        break;

    case NGX_HTTP_PYEXEC_OP_FORGET:
        t->status = ngx_http_pyexec_interp_checkpoint_remove(t->session, log)
                    == NGX_OK ? NGX_HTTP_OK : NGX_HTTP_NOT_FOUND;
        break;

    case NGX_HTTP_PYEXEC_OP_REAP:
        break;      /* interp_after() reaps */

    case NGX_HTTP_PYEXEC_OP_WARM:
        res = PyObject_CallOneArg(ngx_http_pyexec_warm,
                                  ngx_http_pyexec_init_code);
        if (res == NULL) {
            ngx_http_pyexec_interp_log_error(log, "warm()");
        }

        Py_XDECREF(res);
        break;
    }

    ngx_http_pyexec_interp_after(log);

    if (t->op != NGX_HTTP_PYEXEC_OP_EXECUTE) {
        ngx_http_pyexec_rss_after = 0;      /* a checkpoint, a restore... */
    }

    ngx_http_pyexec_tstate = PyEval_SaveThread();

#if !defined(__SANITIZE_ADDRESS__)

    /*
     * After a cell of 1 ms of CPU or more (NGX_HTTP_PYEXEC_TRIM_CPU), the
     * free pages of the worker's heap go back to the system: a DataFrame's
     * temporaries stay there otherwise (glibc's mmap threshold rises with
     * the first large free).  A trim costs ~10 us with nothing to give
     * back, ~0.5 ms after a pandas cell; within a cell an array reused
     * stays in the heap, without the page faults of each use that a fixed
     * mmap threshold cost (bench/cpu.sh's groupby).  The same after a
     * checkpoint pickled here for 1 ms or more (a DataFrame's pickle).
     */

    if ((t->op == NGX_HTTP_PYEXEC_OP_EXECUTE
         && t->cpu_us >= NGX_HTTP_PYEXEC_TRIM_CPU)
        || ngx_http_pyexec_trim_due)
    {
        ngx_http_pyexec_trim_due = 0;
        (void) malloc_trim(0);
        ngx_http_pyexec_rss_after = 0;
    }
#endif
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

    if (ngx_http_pyexec_child_is_copy()) {
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
ngx_http_pyexec_interp_ensure_ns(ngx_http_pyexec_task_t *t,
    ngx_log_t *log)
{
    PyObject                   *res, *err;
    const char                 *msg;
    ngx_http_pyexec_session_t  *s = t->session;

    if (s->ns) {
        return NGX_OK;
    }

    ngx_http_pyexec_rss_after = 0;      /* not the cell's memory: read again */

    if (t->restore) {
        switch (ngx_http_pyexec_interp_restore(t, log)) {

        case NGX_OK:
            return NGX_OK;

        case NGX_DECLINED:          /* no checkpoint */
            t->not_found = 1;

            if (t->lost || t->op != NGX_HTTP_PYEXEC_OP_EXECUTE) {
                return NGX_DECLINED;
            }

            break;                  /* a new session of that name */

        default:                    /* unusable: t->gone says why */
            return NGX_DECLINED;
        }
    }

    (void) __atomic_add_fetch(&ngx_http_pyexec_metrics.sessions_created, 1,
                              __ATOMIC_RELAXED);

    res = PyObject_CallFunctionObjArgs(ngx_http_pyexec_new_session,
                                       ngx_http_pyexec_init_code, NULL);
    if (res == NULL) {
        ngx_http_pyexec_interp_log_error(log, "new_session()");
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

        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "pyexec_session_init failed: %s", msg);
    }

    Py_DECREF(res);

    return NGX_OK;
}


static void
ngx_http_pyexec_interp_execute(ngx_http_pyexec_task_t *t, ngx_log_t *log)
{
    size_t                   rss;
    uint64_t                 cpu;
    PyObject                *code, *res;
    ngx_http_pyexec_json_t   j;

    res = NULL;
    code = NULL;
    j.g = NULL;

    switch (ngx_http_pyexec_interp_ensure_ns(t, log)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        t->status = NGX_HTTP_GONE;      /* lost, no usable checkpoint */
        return;

    default:
        goto failed;
    }

    code = PyUnicode_DecodeUTF8((char *) t->code, t->code_len,
                                "surrogateescape");
    if (code == NULL) {
        ngx_http_pyexec_interp_log_error(log, "PyUnicode_DecodeUTF8()");
        goto failed;
    }

    ngx_http_pyexec_running_timeout = t->timeout;
    ngx_http_pyexec_raised = 0;
    ngx_http_pyexec_disarmed = 0;
    /* the RSS after the last cell, if nothing ran in the thread since */
    rss = ngx_http_pyexec_rss_after ? ngx_http_pyexec_rss_after
                                    : ngx_http_pyexec_interp_rss();
    cpu = ngx_http_pyexec_interp_cpu_us();
    ngx_http_pyexec_running_seq = t->seq;
    ngx_http_pyexec_emit_exec = t->exec;
    t->started_us = ngx_http_pyexec_interp_now_us();
    t->started_ms = t->started_us / 1000;       /* interp_now_ms()'s */
    ngx_memory_barrier();

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, log, 0,
                   "pyexec cell %ui starts in session \"%*s\"",
                   t->seq, t->session->id_len, t->session->id);

    res = PyObject_CallFunctionObjArgs(ngx_http_pyexec_run,
                                       (PyObject *) t->session->ns, code,
                                       ngx_http_pyexec_cap, NULL);

    if (!ngx_http_pyexec_child_is_copy()) {
        /* not in a child a cell fork()ed: it may hold a copy of the lock */
        (void) pthread_mutex_lock(&ngx_http_pyexec_run_lock);
        ngx_http_pyexec_running_seq = 0;
        ngx_http_pyexec_interp_promote(log);
        (void) pthread_mutex_unlock(&ngx_http_pyexec_run_lock);

    } else {
        ngx_http_pyexec_running_seq = 0;
    }

    ngx_http_pyexec_emit_exec = NULL;
    ngx_http_pyexec_interp_untrace();      /* run() failed before disarm() */

    /*
     * the stopper may have raised where a handler's cleanup would have
     * reset the handled exception: none is left for the next cell
     */
    PyErr_SetHandledException(NULL);

    t->wall_us = ngx_http_pyexec_interp_now_us() - t->started_us;
    t->cpu_us = ngx_http_pyexec_interp_cpu_us() - cpu;
    ngx_http_pyexec_rss_after = ngx_http_pyexec_interp_rss();
    t->rss_delta = (off_t) ngx_http_pyexec_rss_after - (off_t) rss;
    t->stage = ngx_http_pyexec_raised;
    t->reason = ngx_http_pyexec_raised ? ngx_http_pyexec_kill_reason : 0;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, log, 0,
                   "pyexec cell %ui ended after %uL ms (stage %ui)", t->seq,
                   ngx_http_pyexec_interp_now_ms() - t->started_ms,
                   t->stage);

    if (res == NULL) {
        ngx_http_pyexec_interp_log_error(log, "pyexec run()");
        goto failed;
    }

    if (ngx_http_pyexec_json_init(&j) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "pyexec: yajl_gen_alloc() failed");
        goto failed;
    }

    if (ngx_http_pyexec_interp_gen_result(&j, res, t) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "pyexec: building the response failed%s%s",
                      j.call ? " in " : "", j.call ? j.call : "");
        PyErr_Clear();
        goto failed;
    }

    t->json = j;
    t->status = NGX_HTTP_OK;

    Py_DECREF(res);
    Py_DECREF(code);

    return;

failed:

    ngx_http_pyexec_json_free(&j);

    Py_XDECREF(res);
    Py_XDECREF(code);
    Py_CLEAR(t->restored);

    t->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/*
 * The execute answer from run()'s tuple.  The writer keeps its first
 * failure (json.c): NGX_ERROR here is a broken tuple, a conversion that
 * failed, or a write that failed (j->rc); the caller sends a 500.
 */

static ngx_int_t
ngx_http_pyexec_interp_gen_result(ngx_http_pyexec_json_t *j, PyObject *res,
    ngx_http_pyexec_task_t *t)
{
    u_char                   buf[64], *p;
    size_t                   len;
    double                   ms;
    PyObject                *text, *value, *repr, *error, *tb, *item, *figs;
    ngx_int_t                has_value, ok;
    Py_ssize_t               i, n;
    const u_char            *vbuf;
    ngx_http_pyexec_json_t   vj;

    if (!PyTuple_Check(res) || PyTuple_GET_SIZE(res) != 16
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

    ngx_http_pyexec_json_map_open(j);

    /* result: printed text wins, then the value as JSON, then its repr() */

    ngx_http_pyexec_json_key(j, "result");

    if (PyList_GET_SIZE(figs) > 0) {
        /* a figure: the shape the existing client shows as text + image */

        ngx_http_pyexec_json_map_open(j);
        ngx_http_pyexec_json_key(j, "text/plain");
        ok = ngx_http_pyexec_interp_gen_str(j, PyTuple_GET_ITEM(res, 12));
        ngx_http_pyexec_json_key(j, "image/png");
        if (ok == NGX_OK) {
            ok = ngx_http_pyexec_interp_gen_str(j, PyList_GET_ITEM(figs, 0));
        }
        ngx_http_pyexec_json_map_close(j);

    } else if (PyUnicode_GET_LENGTH(text) > 0) {
        ok = ngx_http_pyexec_interp_gen_str(j, text);

    } else if (has_value && value != Py_None) {

        if (ngx_http_pyexec_json_init(&vj) != NGX_OK) {
            return NGX_ERROR;
        }

        /* as JSON when it fits the output cap, else its (capped) repr */

        if (ngx_http_pyexec_interp_gen_value(&vj, value, 0) == NGX_OK
            && ngx_http_pyexec_json_peek(&vj, &vbuf, &len) == NGX_OK
            && len <= ngx_http_pyexec_proc.pmcf->output_max)
        {
            /* splice the rendered value in verbatim */
            ngx_http_pyexec_json_number(j, (const char *) vbuf, len);
            ok = NGX_OK;

        } else {
            PyErr_Clear();
            ok = ngx_http_pyexec_interp_gen_str(j, repr);
        }

        ngx_http_pyexec_json_free(&vj);

    } else {
        ngx_http_pyexec_json_null(j);
        ok = NGX_OK;
    }

    if (ok != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_kv(j, "session_id", t->session->id,
                            t->session->id_len);

    ngx_http_pyexec_json_key(j, "success");
    ngx_http_pyexec_json_bool(j, error == Py_None);

    ngx_http_pyexec_json_key(j, "error");
    if (ngx_http_pyexec_interp_gen_str(j, error) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_key(j, "stdout");
    if (ngx_http_pyexec_interp_gen_str(j, PyTuple_GET_ITEM(res, 1)) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_key(j, "stderr");
    if (ngx_http_pyexec_interp_gen_str(j, PyTuple_GET_ITEM(res, 2)) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_key(j, "value");
    if (ngx_http_pyexec_interp_gen_str(j, repr) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_key(j, "outputs");
    if (ngx_http_pyexec_interp_gen_outputs(j, PyTuple_GET_ITEM(res, 13))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_key(j, "error_name");
    if (ngx_http_pyexec_interp_gen_str(j, PyTuple_GET_ITEM(res, 6)) != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_key(j, "traceback");

    if (tb == Py_None || !PyList_Check(tb)) {
        ngx_http_pyexec_json_null(j);

    } else {
        ngx_http_pyexec_json_array_open(j);

        n = PyList_GET_SIZE(tb);
        for (i = 0; i < n; i++) {
            item = PyList_GET_ITEM(tb, i);
            if (ngx_http_pyexec_interp_gen_str(j, item) != NGX_OK) {
                return NGX_ERROR;
            }
        }

        ngx_http_pyexec_json_array_close(j);
    }

    ngx_http_pyexec_json_key(j, "execution_count");
    ngx_http_pyexec_json_int(j, t->execution_count);

    ms = PyFloat_AsDouble(PyTuple_GET_ITEM(res, 10));
    p = ngx_snprintf(buf, sizeof(buf), "%.3f", ms < 0 ? 0.0 : ms);
    ngx_http_pyexec_json_key(j, "duration_ms");
    ngx_http_pyexec_json_number(j, (const char *) buf, p - buf);

    ngx_http_pyexec_json_key(j, "truncated");
    ngx_http_pyexec_json_bool(j,
                              PyObject_IsTrue(PyTuple_GET_ITEM(res, 9)) == 1);

    if (ngx_http_pyexec_interp_gen_end(j, res, t) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_pyexec_interp_gen_restored(j, t);

    /* last: the seed's fields keep their order */
    ngx_http_pyexec_json_kv(j, "execution_id", t->execution_id,
                            t->execution_id_len);

    ngx_http_pyexec_json_map_close(j);

    return j->rc == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
}


/* the UTF-8 length of a str, lone surrogates as 3 bytes each (-1: error) */

static Py_ssize_t
ngx_http_pyexec_interp_utf8_len(PyObject *s)
{
    PyObject    *b;
    Py_ssize_t   n;

    if (PyUnicode_AsUTF8AndSize(s, &n) != NULL) {
        return n;               /* cached in s, as gen_str() needs it */
    }

    PyErr_Clear();

    b = PyUnicode_AsEncodedString(s, "utf-8", "surrogatepass");
    if (b == NULL) {
        return -1;
    }

    n = PyBytes_GET_SIZE(b);
    Py_DECREF(b);

    return n;
}


/*
 * "termination" (why the cell ended: its ladder's reason and stage when
 * the ladder ended it) and "usage" (wall and thread CPU time, the
 * worker's resident memory before and after, the bytes the cell wrote,
 * those past the output cap included).
 */

static ngx_int_t
ngx_http_pyexec_interp_gen_end(ngx_http_pyexec_json_t *j, PyObject *res,
    ngx_http_pyexec_task_t *t)
{
    u_char       buf[64], *p;
    PyObject    *name;
    Py_ssize_t   out, err;
    ngx_uint_t   end;
    const char  *s;

    name = PyTuple_GET_ITEM(res, 6);

    if (name == Py_None) {
        end = NGX_HTTP_PYEXEC_END_OK;

    } else if (t->stage) {
        end = t->reason == NGX_HTTP_PYEXEC_KILL_TIMEOUT
              ? NGX_HTTP_PYEXEC_END_TIMEOUT : NGX_HTTP_PYEXEC_END_INTERRUPTED;

    } else {
        s = PyUnicode_Check(name) ? PyUnicode_AsUTF8(name) : NULL;
        if (s == NULL) {
            return NGX_ERROR;
        }

        end = ngx_strcmp(s, "MemoryError") == 0 ? NGX_HTTP_PYEXEC_END_MEMORY
                                                 : NGX_HTTP_PYEXEC_END_ERROR;
    }

    ngx_http_pyexec_task_termination(j, end,
                                     end >= NGX_HTTP_PYEXEC_END_TIMEOUT
                                     ? t->stage : 0);

    out = ngx_http_pyexec_interp_utf8_len(PyTuple_GET_ITEM(res, 1))
          + PyLong_AsSsize_t(PyTuple_GET_ITEM(res, 14));
    err = ngx_http_pyexec_interp_utf8_len(PyTuple_GET_ITEM(res, 2))
          + PyLong_AsSsize_t(PyTuple_GET_ITEM(res, 15));

    if (PyErr_Occurred()) {
        return NGX_ERROR;
    }

    t->end = end;
    t->output_bytes = (uint64_t) (out + err);

    ngx_http_pyexec_json_key(j, "usage");
    ngx_http_pyexec_json_map_open(j);

    p = ngx_snprintf(buf, sizeof(buf), "%.3f",
                     PyFloat_AsDouble(PyTuple_GET_ITEM(res, 10)));
    ngx_http_pyexec_json_key(j, "wall_ms");
    ngx_http_pyexec_json_number(j, (const char *) buf, p - buf);

    p = ngx_snprintf(buf, sizeof(buf), "%uL.%03uL",
                     (uint64_t) (t->cpu_us / 1000),
                     (uint64_t) (t->cpu_us % 1000));
    ngx_http_pyexec_json_key(j, "cpu_ms");
    ngx_http_pyexec_json_number(j, (const char *) buf, p - buf);

    ngx_http_pyexec_json_key(j, "rss_delta_kib");
    ngx_http_pyexec_json_int(j, (int64_t) (t->rss_delta / 1024));
    ngx_http_pyexec_json_key(j, "stdout_bytes");
    ngx_http_pyexec_json_int(j, (int64_t) out);
    ngx_http_pyexec_json_key(j, "stderr_bytes");
    ngx_http_pyexec_json_int(j, (int64_t) err);

    ngx_http_pyexec_json_map_close(j);

    return NGX_OK;
}


/*
 * "outputs": the display() bundles in call order, each
 * {"mime": the richest type, "data": ..., "bundle": {mime: data, ...}},
 * then the figures left open at the end of the cell, {"mime", "data"}
 * (their bundle is None).
 */

static ngx_int_t
ngx_http_pyexec_interp_gen_outputs(ngx_http_pyexec_json_t *j,
    PyObject *outputs)
{
    PyObject    *item, *pairs, *pair;
    Py_ssize_t   i, k, n, m;

    ngx_http_pyexec_json_array_open(j);

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

        ngx_http_pyexec_json_map_open(j);
        ngx_http_pyexec_json_key(j, "mime");
        if (ngx_http_pyexec_interp_gen_str(j, PyTuple_GET_ITEM(item, 0))
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ngx_http_pyexec_json_key(j, "data");
        if (ngx_http_pyexec_interp_gen_str(j, PyTuple_GET_ITEM(item, 1))
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (pairs != Py_None) {
            ngx_http_pyexec_json_key(j, "bundle");
            ngx_http_pyexec_json_map_open(j);

            m = PyTuple_GET_SIZE(pairs);
            for (k = 0; k < m; k++) {
                pair = PyTuple_GET_ITEM(pairs, k);

                if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2
                    || ngx_http_pyexec_interp_gen_str(j,
                                                  PyTuple_GET_ITEM(pair, 0))
                       != NGX_OK
                    || ngx_http_pyexec_interp_gen_str(j,
                                                  PyTuple_GET_ITEM(pair, 1))
                       != NGX_OK)
                {
                    return NGX_ERROR;
                }
            }

            ngx_http_pyexec_json_map_close(j);
        }

        ngx_http_pyexec_json_map_close(j);
    }

    ngx_http_pyexec_json_array_close(j);

    return j->rc == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
}


/* a str (or None -> null) as a JSON string; lone surrogates escaped */

static ngx_int_t
ngx_http_pyexec_interp_gen_str(ngx_http_pyexec_json_t *j, PyObject *s)
{
    PyObject    *b;
    const char  *p;
    Py_ssize_t   len;

    if (s == Py_None) {
        ngx_http_pyexec_json_null(j);
        return j->rc == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
    }

    if (!PyUnicode_Check(s)) {
        return NGX_ERROR;
    }

    p = PyUnicode_AsUTF8AndSize(s, &len);
    if (p != NULL) {
        ngx_http_pyexec_json_str(j, (const u_char *) p, len);
        return j->rc == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
    }

    PyErr_Clear();

    b = PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace");
    if (b == NULL) {
        return NGX_ERROR;
    }

    ngx_http_pyexec_json_str(j, (const u_char *) PyBytes_AS_STRING(b),
                             PyBytes_GET_SIZE(b));
    Py_DECREF(b);

    return j->rc == yajl_gen_status_ok ? NGX_OK : NGX_ERROR;
}


/*
 * A value as JSON when it is plainly representable: None, bool, int,
 * finite float, str, list/tuple, dict with str keys.  Exact scalar types
 * only: a numpy scalar or a str subclass goes out as its repr().
 * NGX_DECLINED: not representable (or a write failed, j->rc): the caller
 * throws this writer away and sends the repr.
 */

static ngx_int_t
ngx_http_pyexec_interp_gen_value(ngx_http_pyexec_json_t *j, PyObject *v,
    ngx_uint_t depth)
{
    double       d;
    PyObject    *key, *item, *s;
    ngx_int_t    rc;
    Py_ssize_t   i, n, pos, len;
    const char  *p;

    if (depth > NGX_HTTP_PYEXEC_VALUE_DEPTH) {
        return NGX_DECLINED;
    }

    rc = NGX_OK;

    if (v == Py_None) {
        ngx_http_pyexec_json_null(j);

    } else if (PyBool_Check(v)) {
        ngx_http_pyexec_json_bool(j, v == Py_True);

    } else if (PyLong_CheckExact(v)) {
        s = PyObject_Str(v);     /* fails beyond sys.int_info digits */
        if (s == NULL) {
            return NGX_DECLINED;
        }

        p = PyUnicode_AsUTF8AndSize(s, &len);
        if (p) {
            ngx_http_pyexec_json_number(j, p, len);

        } else {
            rc = NGX_DECLINED;
        }

        Py_DECREF(s);

    } else if (PyFloat_CheckExact(v)) {
        d = PyFloat_AS_DOUBLE(v);
        if (!isfinite(d)) {
            return NGX_DECLINED;
        }

        /* repr() is the shortest string that round-trips */

        p = PyOS_double_to_string(d, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (p == NULL) {
            return NGX_DECLINED;
        }

        ngx_http_pyexec_json_number(j, p, ngx_strlen(p));
        PyMem_Free((void *) p);

    } else if (PyUnicode_CheckExact(v)) {
        rc = ngx_http_pyexec_interp_gen_str(j, v);

    } else if (PyList_CheckExact(v) || PyTuple_CheckExact(v)) {
        ngx_http_pyexec_json_array_open(j);

        n = PySequence_Fast_GET_SIZE(v);
        for (i = 0; i < n; i++) {
            item = PySequence_Fast_GET_ITEM(v, i);
            rc = ngx_http_pyexec_interp_gen_value(j, item, depth + 1);
            if (rc != NGX_OK) {
                return rc;
            }

            /* a list may shrink under us only through __repr__ hooks */
            n = ngx_min(n, PySequence_Fast_GET_SIZE(v));
        }

        ngx_http_pyexec_json_array_close(j);

    } else if (PyDict_CheckExact(v)) {
        ngx_http_pyexec_json_map_open(j);

        pos = 0;
        while (PyDict_Next(v, &pos, &key, &item)) {
            if (!PyUnicode_CheckExact(key)
                || ngx_http_pyexec_interp_gen_str(j, key) != NGX_OK)
            {
                return NGX_DECLINED;
            }

            rc = ngx_http_pyexec_interp_gen_value(j, item, depth + 1);
            if (rc != NGX_OK) {
                return rc;
            }
        }

        ngx_http_pyexec_json_map_close(j);

    } else {
        return NGX_DECLINED;
    }

    if (rc == NGX_OK && j->rc != yajl_gen_status_ok) {
        rc = NGX_DECLINED;
    }

    return rc == NGX_OK ? NGX_OK : NGX_DECLINED;
}


static void
ngx_http_pyexec_interp_variables(ngx_http_pyexec_task_t *t, ngx_log_t *log)
{
    PyObject                   *names, *item;
    Py_ssize_t                  i, n;
    ngx_http_pyexec_json_t      j;
    ngx_http_pyexec_session_t  *s = t->session;

    if (s->ns == NULL && t->restore) {
        switch (ngx_http_pyexec_interp_ensure_ns(t, log)) {

        case NGX_OK:
            break;

        case NGX_DECLINED:
            t->status = NGX_HTTP_GONE;      /* or 404: the event loop */
            return;

        default:
            t->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return;
        }
    }

    if (ngx_http_pyexec_json_init(&j) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, log, 0, "pyexec: yajl_gen_alloc() failed");
        t->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return;
    }

    ngx_http_pyexec_json_map_open(&j);
    ngx_http_pyexec_json_kv(&j, "session_id", s->id, s->id_len);
    ngx_http_pyexec_json_key(&j, "variables");
    ngx_http_pyexec_json_array_open(&j);

    if (s->ns) {
        names = PyObject_CallFunctionObjArgs(ngx_http_pyexec_variables,
                                             (PyObject *) s->ns,
                                             (PyObject *) s->injected, NULL);
        if (names == NULL) {
            ngx_http_pyexec_interp_log_error(log, "variables()");
            ngx_http_pyexec_json_free(&j);
            t->status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return;
        }

        /* names are str (variables() keeps only those): never a failure */

        n = PyList_GET_SIZE(names);
        for (i = 0; i < n; i++) {
            item = PyList_GET_ITEM(names, i);
            if (ngx_http_pyexec_interp_gen_str(&j, item) != NGX_OK) {
                PyErr_Clear();
            }
        }

        Py_DECREF(names);
    }

    ngx_http_pyexec_json_array_close(&j);
    ngx_http_pyexec_json_key(&j, "created_at");
    ngx_http_pyexec_json_iso8601(&j, s->created_at);
    ngx_http_pyexec_task_last_execution(&j, s);
    ngx_http_pyexec_interp_gen_restored(&j, t);
    ngx_http_pyexec_json_map_close(&j);

    /* a failed write goes on to send_json(), which answers 500 */

    t->json = j;
    t->status = NGX_HTTP_OK;
}


/* the calling thread's CPU time, microseconds */

static uint64_t
ngx_http_pyexec_interp_cpu_us(void)
{
    struct timespec  ts;

    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == -1) {
        return 0;
    }

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


/* any thread: the worker's resident memory, bytes (0: unknown) */

size_t
ngx_http_pyexec_interp_rss(void)
{
    u_char     buf[64], *p, *last, *start;
    ssize_t    n;
    ngx_int_t  resident;

    if (ngx_http_pyexec_statm == NGX_INVALID_FILE) {
        return 0;
    }

    n = pread(ngx_http_pyexec_statm, buf, sizeof(buf), 0);
    if (n <= 0) {
        return 0;
    }

    /* "size resident shared ...": the second field, in pages */

    last = buf + n;
    p = ngx_strlchr(buf, last, ' ');
    if (p == NULL) {
        return 0;
    }

    start = ++p;

    while (p < last && *p >= '0' && *p <= '9') {
        p++;
    }

    resident = ngx_atoi(start, p - start);
    if (resident == NGX_ERROR) {
        return 0;
    }

    return (size_t) resident * ngx_pagesize;
}


/* exit_process: the watcher ends before the process does */

void
ngx_http_pyexec_interp_stop_watch(void)
{
    if (ngx_http_pyexec_watching && !ngx_http_pyexec_child_is_copy()) {
        ngx_http_pyexec_watch_done = 1;
        (void) pthread_join(ngx_http_pyexec_watcher, NULL);
        ngx_http_pyexec_watching = 0;
    }
}


/*
 * Event loop or stop watcher: ask the interpreter thread to stop "seq",
 * for `reason` (NGX_HTTP_PYEXEC_KILL_*), at `stage`: an exception raised
 * once where the cell is (NGX_HTTP_PYEXEC_STAGE_EXCEPTION), or also at
 * every line and call of its frames until they are gone, inside except
 * and finally blocks too (NGX_HTTP_PYEXEC_STAGE_TRACE).
 */

void
ngx_http_pyexec_interp_interrupt(ngx_uint_t seq, ngx_uint_t reason,
    ngx_uint_t stage)
{
    ngx_http_pyexec_kill_reason = reason;
    ngx_http_pyexec_kill_stage = stage;
    ngx_memory_barrier();
    ngx_http_pyexec_kill_seq = seq;
    ngx_memory_barrier();

    (void) pthread_kill(ngx_http_pyexec_thread, NGX_HTTP_PYEXEC_SIGNAL);
}


/*
 * interpreter thread: _emit(kind, data, text), an event of the running
 * cell into its execution's journal (bootstrap.py's _Streamed, display())
 */

static PyObject *
ngx_http_pyexec_interp_emit(PyObject *self, PyObject *args)
{
    int          text;
    PyObject    *s, *b;
    Py_ssize_t   len;
    const char  *kind, *data;

    if (!PyArg_ParseTuple(args, "sUp", &kind, &s, &text)) {
        return NULL;
    }

    /* a child a cell fork()ed has a copy of the journal and of its lock */

    if (ngx_http_pyexec_emit_exec == NULL
        || ngx_http_pyexec_child_is_copy())
    {
        Py_RETURN_NONE;
    }

    b = NULL;
    data = PyUnicode_AsUTF8AndSize(s, &len);

    if (data == NULL) {
        /* lone surrogates: as the reply's JSON shows them, replaced */
        PyErr_Clear();

        b = PyUnicode_AsEncodedString(s, "utf-8", "replace");
        if (b == NULL) {
            return NULL;
        }

        data = PyBytes_AS_STRING(b);
        len = PyBytes_GET_SIZE(b);
    }

    ngx_http_pyexec_journal_emit(ngx_http_pyexec_emit_exec, kind,
                                 (u_char *) data, (size_t) len, text);

    Py_XDECREF(b);

    Py_RETURN_NONE;
}


/*
 * interpreter thread: _streams_mark(classes, objects, sys_streams), after
 * setup() and after each repair by _reset_streams(): what is guarded, as
 * it is now; sys_streams: what sys's six stream names are bound to
 */

static PyObject *
ngx_http_pyexec_interp_streams_mark(PyObject *self, PyObject *args)
{
    PyObject                   *classes, *objects, *streams, *o, **dp;
    Py_ssize_t                  i, nc, no;
    ngx_http_pyexec_guarded_t  *g;

    if (!PyArg_ParseTuple(args, "O!O!O!", &PyTuple_Type, &classes,
                          &PyTuple_Type, &objects, &PyTuple_Type, &streams))
    {
        return NULL;
    }

    nc = PyTuple_GET_SIZE(classes);
    no = PyTuple_GET_SIZE(objects);

    if (nc + no > NGX_HTTP_PYEXEC_GUARDED
        || PyTuple_GET_SIZE(streams)
           != (Py_ssize_t) NGX_HTTP_PYEXEC_SYS_NAMES)
    {
        PyErr_SetString(PyExc_ValueError, "_streams_mark(): sizes");
        return NULL;
    }

    for (i = 0; i < (Py_ssize_t) NGX_HTTP_PYEXEC_SYS_NAMES; i++) {
        if (ngx_http_pyexec_sys_keys[i] == NULL) {
            ngx_http_pyexec_sys_keys[i] =
                PyUnicode_InternFromString(ngx_http_pyexec_sys_names[i]);

            if (ngx_http_pyexec_sys_keys[i] == NULL) {
                return NULL;
            }
        }
    }

    if (ngx_http_pyexec_sys_dict == NULL) {
        o = PyImport_AddModule("sys");              /* borrowed */
        if (o == NULL) {
            return NULL;
        }

        ngx_http_pyexec_sys_dict = Py_NewRef(PyModule_GetDict(o));
    }

    for (i = 0; i < nc; i++) {
        if (!PyType_Check(PyTuple_GET_ITEM(classes, i))) {
            PyErr_SetString(PyExc_TypeError, "_streams_mark(): a class");
            return NULL;
        }
    }

    for (i = 0; i < no; i++) {
        dp = _PyObject_GetDictPtr(PyTuple_GET_ITEM(objects, i));
        if (dp == NULL || *dp == NULL || !PyDict_Check(*dp)) {
            PyErr_SetString(PyExc_TypeError, "_streams_mark(): an object "
                            "without its dict");
            return NULL;
        }
    }

    ngx_http_pyexec_interp_streams_forget();

    for (i = 0; i < nc + no; i++) {
        g = &ngx_http_pyexec_guarded[i];

        if (i < nc) {
            o = PyTuple_GET_ITEM(classes, i);
            g->obj = Py_NewRef(o);
            g->type = NULL;
            g->dict = Py_NewRef(((PyTypeObject *) o)->tp_dict);

        } else {
            o = PyTuple_GET_ITEM(objects, i - nc);
            g->obj = Py_NewRef(o);
            g->type = Py_NewRef((PyObject *) Py_TYPE(o));
            g->dict = Py_NewRef(*_PyObject_GetDictPtr(o));
        }

        g->tag = ((PyDictObject *) g->dict)->ma_version_tag;
    }

    ngx_http_pyexec_nclasses = nc;
    ngx_http_pyexec_nguarded = nc + no;
    ngx_http_pyexec_sys_streams = Py_NewRef(streams);
    ngx_http_pyexec_sys_tag =
        ((PyDictObject *) ngx_http_pyexec_sys_dict)->ma_version_tag;

    Py_RETURN_NONE;
}


/*
 * interpreter thread: _streams_same(), twice per cell: True when nothing
 * _streams_mark() saw has changed since (no dict changed, no class of a
 * stream object, no sys binding), so that _reset_streams() has nothing
 * to repair
 */

static PyObject *
ngx_http_pyexec_interp_streams_same(PyObject *self, PyObject *args)
{
    PyObject                   **dp;
    ngx_uint_t                   i;
    ngx_http_pyexec_guarded_t   *g;

    if (ngx_http_pyexec_sys_streams == NULL) {
        Py_RETURN_FALSE;
    }

    for (i = 0; i < ngx_http_pyexec_nguarded; i++) {
        g = &ngx_http_pyexec_guarded[i];

        if (i < ngx_http_pyexec_nclasses) {
            if (((PyTypeObject *) g->obj)->tp_dict != g->dict) {
                Py_RETURN_FALSE;
            }

        } else {
            if ((PyObject *) Py_TYPE(g->obj) != g->type) {
                Py_RETURN_FALSE;
            }

            dp = _PyObject_GetDictPtr(g->obj);
            if (dp == NULL || *dp != g->dict) {
                PyErr_Clear();
                Py_RETURN_FALSE;
            }
        }

        if (((PyDictObject *) g->dict)->ma_version_tag != g->tag) {
            Py_RETURN_FALSE;
        }
    }

    /* nothing in sys was set since the mark: its bindings are as marked */

    if (((PyDictObject *) ngx_http_pyexec_sys_dict)->ma_version_tag
        == ngx_http_pyexec_sys_tag)
    {
        Py_RETURN_TRUE;
    }

    for (i = 0; i < NGX_HTTP_PYEXEC_SYS_NAMES; i++) {
        /* borrowed; NULL (deleted) is never the marked object */
        if (PyDict_GetItemWithError(ngx_http_pyexec_sys_dict,
                                    ngx_http_pyexec_sys_keys[i])
            != PyTuple_GET_ITEM(ngx_http_pyexec_sys_streams, i))
        {
            PyErr_Clear();
            Py_RETURN_FALSE;
        }
    }

    Py_RETURN_TRUE;
}


static void
ngx_http_pyexec_interp_streams_forget(void)
{
    ngx_uint_t                  i;
    ngx_http_pyexec_guarded_t  *g;

    for (i = 0; i < ngx_http_pyexec_nguarded; i++) {
        g = &ngx_http_pyexec_guarded[i];
        Py_CLEAR(g->obj);
        Py_CLEAR(g->type);
        Py_CLEAR(g->dict);
    }

    ngx_http_pyexec_nguarded = 0;
    ngx_http_pyexec_nclasses = 0;
    Py_CLEAR(ngx_http_pyexec_sys_streams);
}


/* interpreter thread, from the eval loop: signal.signal() handler */

static PyObject *
ngx_http_pyexec_interp_on_signal(PyObject *self, PyObject *args)
{
    if (!ngx_http_pyexec_in_user
        || ngx_http_pyexec_running_seq == 0
        || ngx_http_pyexec_kill_seq != ngx_http_pyexec_running_seq)
    {
        Py_RETURN_NONE;
    }

    if (ngx_http_pyexec_kill_stage >= NGX_HTTP_PYEXEC_STAGE_TRACE
        && !ngx_http_pyexec_traced && !ngx_http_pyexec_disarmed)
    {
        PyEval_SetTrace(ngx_http_pyexec_interp_stopper, NULL);
        ngx_http_pyexec_traced = 1;
    }

    if (ngx_http_pyexec_raised == 0) {
        ngx_http_pyexec_raised = NGX_HTTP_PYEXEC_STAGE_EXCEPTION;
    }

    ngx_http_pyexec_interp_raise();

    return NULL;
}


/* the exception of the running cell's ladder */

static void
ngx_http_pyexec_interp_raise(void)
{
    u_char  msg[80];

    switch (ngx_http_pyexec_kill_reason) {

    case NGX_HTTP_PYEXEC_KILL_STOP:
        PyErr_SetString(PyExc_KeyboardInterrupt, "the server is stopping");
        return;

    case NGX_HTTP_PYEXEC_KILL_INTERRUPT:
        /* as a Jupyter kernel's interrupt: no message */
        PyErr_SetNone(PyExc_KeyboardInterrupt);
        return;

    default:
        *ngx_snprintf(msg, sizeof(msg) - 1,
                      "execution exceeded the time limit of %.3f s",
                      (double) ngx_http_pyexec_running_timeout / 1000) = '\0';

        PyErr_SetString(ngx_http_pyexec_timeout_exc, (char *) msg);
    }
}


/*
 * The trace function of the ladder's second stage: it raises at every
 * line and every call of the user's code -- cells ("<cell-...>") and the
 * modules in the data folder -- so no `except` or `finally` there can go
 * on running.  Library code is left to finish what it is doing (its
 * `with` blocks release their locks); it raises as soon as it returns to
 * the user's code.  obj NULL: the running cell (the interpreter thread),
 * until disarm(); else a thread of a deleted session, obj its deadline
 * (ms, interp_now_ms()): nothing before it, SystemExit from then on.
 */

static int
ngx_http_pyexec_interp_stopper(PyObject *obj, PyFrameObject *frame, int what,
    PyObject *arg)
{
    int            user;
    PyObject      *file;
    PyCodeObject  *code;

    if (what != PyTrace_LINE && what != PyTrace_CALL) {
        return 0;
    }

    if (obj != NULL) {
        if (ngx_http_pyexec_interp_now_ms()
            < (uint64_t) PyLong_AsUnsignedLongLong(obj))
        {
            return 0;
        }

    } else if (ngx_http_pyexec_disarmed || !ngx_http_pyexec_in_user) {
        return 0;
    }

    code = PyFrame_GetCode(frame);
    file = code->co_filename;

    user = PyUnicode_Tailmatch(file, ngx_http_pyexec_cell_prefix, 0, 6, -1)
           == 1
           || (ngx_http_pyexec_user_dir != NULL
               && PyUnicode_Tailmatch(file, ngx_http_pyexec_user_dir, 0,
                                      PY_SSIZE_T_MAX, -1)
                  == 1);

    Py_DECREF(code);

    if (!user) {
        PyErr_Clear();
        return 0;
    }

    if (obj != NULL) {
        PyErr_SetString(PyExc_SystemExit, "the session was deleted");
        return -1;
    }

    ngx_http_pyexec_raised = NGX_HTTP_PYEXEC_STAGE_TRACE;
    ngx_http_pyexec_interp_raise();

    return -1;
}


/* the cell's own code is over (run()): the stopper lets ours run */

static PyObject *
ngx_http_pyexec_interp_disarm(PyObject *self, PyObject *args)
{
    ngx_http_pyexec_disarmed = 1;
    ngx_http_pyexec_interp_untrace();

    Py_RETURN_NONE;
}


static void
ngx_http_pyexec_interp_untrace(void)
{
    if (ngx_http_pyexec_traced) {
        ngx_http_pyexec_traced = 0;
        PyEval_SetTrace(NULL, NULL);
    }
}


/*
 * close_session(): the threads a deleted session left running, by ident,
 * get the ladder in one go: SystemExit now (their `finally` blocks run),
 * and the stopper from `grace` ms on, for those that swallow it.  A
 * thread blocked in C code stops when it comes back to Python.  Returns
 * how many threads were found.
 */

static PyObject *
ngx_http_pyexec_interp_stop_threads(PyObject *self, PyObject *args)
{
    long            n;
    PyObject       *idents, *deadline, *key;
    unsigned long   grace;
    PyThreadState  *ts;

    if (!PyArg_ParseTuple(args, "O!k", &PySet_Type, &idents, &grace)) {
        return NULL;
    }

    deadline = PyLong_FromUnsignedLongLong(ngx_http_pyexec_interp_now_ms()
                                           + grace);
    if (deadline == NULL) {
        return NULL;
    }

    n = 0;

    for (ts = PyInterpreterState_ThreadHead(PyInterpreterState_Get());
         ts != NULL;
         ts = PyThreadState_Next(ts))
    {
        if (ts == PyThreadState_Get()) {
            continue;
        }

        key = PyLong_FromUnsignedLong(ts->thread_id);
        if (key == NULL) {
            Py_DECREF(deadline);
            return NULL;
        }

        switch (PySet_Contains(idents, key)) {

        case 1:
            (void) PyThreadState_SetAsyncExc(ts->thread_id, PyExc_SystemExit);

            if (_PyEval_SetTrace(ts, ngx_http_pyexec_interp_stopper,
                                 deadline)
                != 0)
            {
                Py_DECREF(key);
                Py_DECREF(deadline);
                return NULL;
            }

            n++;
            break;

        case 0:
            break;

        default:
            Py_DECREF(key);
            Py_DECREF(deadline);
            return NULL;
        }

        Py_DECREF(key);
    }

    Py_DECREF(deadline);

    if (n) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "pyexec: stopping %l thread(s) a deleted session left "
                      "running", n);
    }

    return PyLong_FromLong(n);
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
