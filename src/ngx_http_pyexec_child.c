
/*
 * Copyright (C) pyexec authors
 *
 * Child processes of a worker.  User code forks: os.fork(),
 * multiprocessing, concurrent.futures, subprocess, joblib's loky.
 *
 * nginx's signal handler reaps any child on SIGCHLD, in every process
 * (waitpid(-1) in ngx_process_get_status()).  In a worker that took exit
 * statuses away from Python: subprocess saw 0 for every child, and
 * multiprocessing, which then never sees its children end, waited for
 * ever.  A worker has no children of nginx's own, so SIGCHLD goes back to
 * its default disposition and Python waits for its children itself.  What
 * nobody waits for is reaped in the interpreter thread after a task
 * (interp.c), or by a reap task that a timer posts to the interpreter
 * pool while the worker is idle: never on the event loop.
 *
 * A fork()ed child is a copy of the worker.  In the child, at the fork,
 * every descriptor of nginx's connections (listening sockets, clients,
 * upstream and front connections, the channels to the master and to the
 * other workers, the fronts' socketpairs) is closed:
 * the child can neither serve nor keep a socket alive that the worker
 * closes, which would also leave stale events in the worker's epoll set.
 * subprocess and multiprocessing are made to fork() rather than vfork()
 * (bootstrap.py), so that this runs before they exec too.
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_child.h"
#include "ngx_http_pyexec_front.h"
#include "ngx_http_pyexec_task.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>


#define NGX_HTTP_PYEXEC_REAP_INTERVAL  2000


static void ngx_http_pyexec_child_atfork(void);
static void ngx_http_pyexec_child_forking(void);
static void ngx_http_pyexec_child_timer(ngx_event_t *ev);
static void ngx_http_pyexec_child_reap_done(ngx_event_t *ev);


static ngx_event_t       ngx_http_pyexec_child_event;
static ngx_connection_t  ngx_http_pyexec_child_dumb;  /* for debug logs */
static ngx_uint_t        ngx_http_pyexec_child_posted;
static ngx_uint_t        ngx_http_pyexec_child_registered;

/*
 * Kept by the fork handlers, so that a cell's end makes no system call
 * for either question: whether this worker ever forked (until it did, no
 * child of it can have exited), and whether this process is a fork()ed
 * copy of the worker (getpid() is a system call in glibc).
 */
static volatile ngx_uint_t  ngx_http_pyexec_child_forked;
volatile ngx_uint_t         ngx_http_pyexec_child_copy;


ngx_int_t
ngx_http_pyexec_child_init_process(ngx_cycle_t *cycle)
{
    int               err;
    struct sigaction  sa;

    ngx_memzero(&sa, sizeof(struct sigaction));
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);

    if (sigaction(SIGCHLD, &sa, NULL) == -1) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, ngx_errno,
                      "pyexec: sigaction(SIGCHLD) failed");
        return NGX_ERROR;
    }

    if (!ngx_http_pyexec_child_registered) {
        err = pthread_atfork(NULL, ngx_http_pyexec_child_forking,
                             ngx_http_pyexec_child_atfork);
        if (err != 0) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, err,
                          "pyexec: pthread_atfork() failed");
            return NGX_ERROR;
        }

        ngx_http_pyexec_child_registered = 1;
    }

    return NGX_OK;
}


/*
 * event loop, once the interpreter is up (the timer tree may not exist
 * yet when this module's init_process runs); cancelable: a graceful exit
 * does not wait for it
 */

void
ngx_http_pyexec_child_start_reaper(ngx_log_t *log)
{
    /* the event's data is read as a connection by the debug log */

    ngx_http_pyexec_child_dumb.fd = (ngx_socket_t) -1;

    ngx_http_pyexec_child_event.handler = ngx_http_pyexec_child_timer;
    ngx_http_pyexec_child_event.data = &ngx_http_pyexec_child_dumb;
    ngx_http_pyexec_child_event.log = log;
    ngx_http_pyexec_child_event.cancelable = 1;
    ngx_add_timer(&ngx_http_pyexec_child_event, NGX_HTTP_PYEXEC_REAP_INTERVAL);
}


/* any thread: has a child exited that nobody reaped yet (nothing reaped) */

ngx_uint_t
ngx_http_pyexec_child_exited(void)
{
    siginfo_t  si;

    if (!ngx_http_pyexec_child_forked) {
        return 0;
    }

    si.si_pid = 0;

    if (waitid(P_ALL, 0, &si, WEXITED|WNOHANG|WNOWAIT) == -1) {
        return 0;       /* ECHILD: no children at all */
    }

    return si.si_pid != 0;
}


/*
 * In the child of fork(), only async-signal-safe calls.  The child also
 * gets the signals of a plain process back: nginx's pool threads block
 * every signal and nginx's handlers only set flags of its event loop, so
 * a child (and whatever it execs) would otherwise ignore SIGTERM, and
 * Pool.terminate() would wait for ever.
 */

static int  ngx_http_pyexec_child_signals[] = {
    SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGIO,
    SIGALRM, SIGCHLD, SIGSYS, 0
};


/* in the parent, after fork(): from now on children may exit */

static void
ngx_http_pyexec_child_forking(void)
{
    ngx_http_pyexec_child_forked = 1;
}


static void
ngx_http_pyexec_child_atfork(void)
{
    int                 *sig;
    sigset_t             set;
    ngx_int_t            n;
    ngx_uint_t           i;
    ngx_connection_t    *c;
    struct sched_param   sp;

    ngx_http_pyexec_child_copy = 1;

    for (sig = ngx_http_pyexec_child_signals; *sig; sig++) {
        (void) signal(*sig, SIG_DFL);
    }

    /* a plain process's scheduling (the interpreter thread's may be batch) */

    ngx_memzero(&sp, sizeof(struct sched_param));
    (void) sched_setscheduler(0, SCHED_OTHER, &sp);

    sigemptyset(&set);
    (void) sigprocmask(SIG_SETMASK, &set, NULL);

    /*
     * the channels to the other workers, which are no connections here:
     * a worker keeps channel[0] of each live sibling, and nginx sets it
     * to -1 when it closes one (NGX_CMD_CLOSE_CHANNEL); siblings started
     * after this worker are not counted in its ngx_last_process
     */

    for (n = 0; n < NGX_MAX_PROCESSES; n++) {
        if (n != ngx_process_slot && ngx_processes[n].pid > 0
            && ngx_processes[n].channel[0] > 2)
        {
            (void) close(ngx_processes[n].channel[0]);
        }
    }

    ngx_http_pyexec_front_atfork();

    if (ngx_cycle == NULL || ngx_cycle->connections == NULL) {
        return;
    }

    c = ngx_cycle->connections;

    for (i = 0; i < ngx_cycle->connection_n; i++) {
        if (c[i].fd != (ngx_socket_t) -1 && c[i].fd > 2) {
            (void) close(c[i].fd);
        }
    }
}


static void
ngx_http_pyexec_child_timer(ngx_event_t *ev)
{
    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    ngx_add_timer(ev, NGX_HTTP_PYEXEC_REAP_INTERVAL);

    if (ngx_http_pyexec_child_posted || !ngx_http_pyexec_proc.ready
        || !ngx_http_pyexec_child_exited())
    {
        return;
    }

    if (ngx_http_pyexec_task_post_server(NGX_HTTP_PYEXEC_OP_REAP, NULL,
                                         ngx_http_pyexec_child_reap_done)
        != NGX_OK)
    {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_CORE, ev->log, 0,
                   "pyexec: a child exited, reap task posted");

    ngx_http_pyexec_child_posted = 1;
}


static void
ngx_http_pyexec_child_reap_done(ngx_event_t *ev)
{
    ngx_free(ev->data);

    ngx_http_pyexec_child_posted = 0;
}
