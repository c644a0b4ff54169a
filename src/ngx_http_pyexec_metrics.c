
/*
 * Copyright (C) pyexec authors
 *
 * Observability: a worker's counters and its /metrics (the Prometheus
 * text format, every series labelled with the worker), the front's
 * /metrics gathered from every worker (families merged, so each name has
 * one HELP and TYPE), the X-Pyexec-* headers of a cell's answer and the
 * $pyexec_execution_id & co. variables that read them for log_format (in
 * a worker, and in a front, which passes the headers on).
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_interp.h"
#include "ngx_http_pyexec_journal.h"
#include "ngx_http_pyexec_metrics.h"
#include "ngx_http_pyexec_placement.h"
#include "ngx_http_pyexec_reply.h"

#include <malloc.h>
#include <sys/stat.h>


#define NGX_HTTP_PYEXEC_METRICS_MAX  (64 * 1024)   /* one worker's text */
#define NGX_HTTP_PYEXEC_PLAIN        21            /* one-sample families */


static void ngx_http_pyexec_metrics_observe(ngx_http_pyexec_histogram_t *h,
    uint64_t us);
static u_char *ngx_http_pyexec_metrics_family(u_char *p, u_char *last,
    const char *name, const char *type, const char *help);
static u_char *ngx_http_pyexec_metrics_histogram(u_char *p, u_char *last,
    const char *name, const char *help, ngx_uint_t w,
    ngx_http_pyexec_histogram_t *h);
static u_char *ngx_http_pyexec_metrics_seconds(u_char *p, u_char *last,
    uint64_t us);
static u_char *ngx_http_pyexec_metrics_find(ngx_str_t *body, ngx_str_t *name,
    u_char **end);
static ngx_int_t ngx_http_pyexec_metrics_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


ngx_http_pyexec_metrics_t  ngx_http_pyexec_metrics;


static const uint64_t  ngx_http_pyexec_le_us[NGX_HTTP_PYEXEC_BUCKETS] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
    1000000, 2500000, 5000000, 10000000, 30000000, 60000000, 120000000,
    300000000, 600000000
};

static const char  *ngx_http_pyexec_le[NGX_HTTP_PYEXEC_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
    "0.5", "1", "2.5", "5", "10", "30", "60", "120", "300", "600"
};


/* the headers of a cell's answer; the variables read them back */

static ngx_str_t  ngx_http_pyexec_cell_headers[] = {
    ngx_string("X-Pyexec-Execution-Id"),
    ngx_string("X-Pyexec-Duration-Ms"),
    ngx_string("X-Pyexec-Termination"),
    ngx_string("X-Pyexec-Queue-Ms")
};

static ngx_http_variable_t  ngx_http_pyexec_metrics_vars[] = {

    { ngx_string("pyexec_execution_id"), NULL,
      ngx_http_pyexec_metrics_variable, 0, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("pyexec_duration_ms"), NULL,
      ngx_http_pyexec_metrics_variable, 1, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("pyexec_termination"), NULL,
      ngx_http_pyexec_metrics_variable, 2, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("pyexec_queue_ms"), NULL,
      ngx_http_pyexec_metrics_variable, 3, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/*
 * A cell answered (or dropped: its client went away), on the event loop:
 * counted by its termination reason, its wall time and its wait in the
 * queue observed, and its answer given the X-Pyexec-* headers.  end < 0:
 * no reply of a cell (the interpreter failed): nothing is counted.
 */

void
ngx_http_pyexec_metrics_cell(ngx_http_request_t *r, ngx_http_pyexec_task_t *t,
    ngx_int_t end)
{
    u_char      dur[NGX_INT64_LEN + 4], wait[NGX_INT64_LEN + 4];
    uint64_t    wall, queue;
    ngx_str_t   val[4];
    ngx_uint_t  i;

    if (end < 0 || end >= NGX_HTTP_PYEXEC_END_N) {
        return;
    }

    ngx_http_pyexec_metrics.executions[end]++;

    wall = 0;
    queue = 0;

    if (t->started_us) {
        /* an abandoned cell may still run: its thread writes wall_us */
        wall = t->abandoned ? ngx_http_pyexec_interp_now_us() - t->started_us
                            : t->wall_us;
        queue = t->started_us > t->posted_us ? t->started_us - t->posted_us
                                             : 0;

        ngx_http_pyexec_metrics_observe(&ngx_http_pyexec_metrics.duration,
                                        wall);
        ngx_http_pyexec_metrics_observe(&ngx_http_pyexec_metrics.queue,
                                        queue);
    }

    if (!t->abandoned) {
        ngx_http_pyexec_metrics.output_bytes += t->output_bytes;
    }

    t->session->last_ms = (uint32_t) ngx_min(wall / 1000, 0xffffffff);

    if (r->connection->error || r->header_sent) {
        return;
    }

    val[0].data = t->execution_id;
    val[0].len = t->execution_id_len;
    val[1].data = dur;
    val[1].len = ngx_sprintf(dur, "%uL.%03uL", wall / 1000, wall % 1000) - dur;
    val[2].data = (u_char *) ngx_http_pyexec_task_reasons[end];
    val[2].len = ngx_strlen(val[2].data);
    val[3].data = wait;
    val[3].len = ngx_sprintf(wait, "%uL.%03uL", queue / 1000, queue % 1000)
                 - wait;

    for (i = 0; i < 4; i++) {
        if (ngx_http_pyexec_add_header(r, &ngx_http_pyexec_cell_headers[i],
                                       val[i].data, val[i].len)
            != NGX_OK)
        {
            return;
        }
    }
}


/* the execution's header alone: an answer that goes out before its cell ends */

ngx_int_t
ngx_http_pyexec_metrics_execution(ngx_http_request_t *r, u_char *id,
    size_t len)
{
    return ngx_http_pyexec_add_header(r, &ngx_http_pyexec_cell_headers[0],
                                      id, len);
}


static void
ngx_http_pyexec_metrics_observe(ngx_http_pyexec_histogram_t *h, uint64_t us)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_PYEXEC_BUCKETS; i++) {
        if (us <= ngx_http_pyexec_le_us[i]) {
            break;
        }
    }

    h->count[i]++;
    h->sum_us += us;
    h->n++;
}


/* a checkpoint written (interpreter thread): its CPU time and file size */

void
ngx_http_pyexec_metrics_checkpoint(uint64_t cpu_us, const char *path)
{
    struct stat  st;

    (void) __atomic_add_fetch(&ngx_http_pyexec_metrics.checkpoints, 1,
                              __ATOMIC_RELAXED);
    (void) __atomic_add_fetch(&ngx_http_pyexec_metrics.checkpoint_us, cpu_us,
                              __ATOMIC_RELAXED);

    if (stat(path, &st) == 0) {
        (void) __atomic_add_fetch(&ngx_http_pyexec_metrics.checkpoint_bytes,
                                  (uint64_t) st.st_size, __ATOMIC_RELAXED);
    }
}


/* a worker's GET /metrics */

ngx_int_t
ngx_http_pyexec_metrics_handler(ngx_http_request_t *r)
{
    u_char                     *p, *last, *start;
    uint64_t                    vals[NGX_HTTP_PYEXEC_PLAIN];
    ngx_int_t                   rc;
    ngx_str_t                   body;
    ngx_uint_t                  w, i;
    struct mallinfo2            mi;
    ngx_http_pyexec_metrics_t  *m = &ngx_http_pyexec_metrics;

    static ngx_str_t  type = ngx_string("text/plain; version=0.0.4");

    static struct {
        const char  *name;
        const char  *type;
        const char  *help;
        ngx_uint_t   seconds;      /* vals[] in us, written in seconds */
    }  plain[NGX_HTTP_PYEXEC_PLAIN] = {
        { "pyexec_cells_in_flight", "gauge",
          "Cells running or queued in the worker's interpreter.", 0 },
        { "pyexec_sessions", "gauge", "Sessions the worker holds.", 0 },
        { "pyexec_sessions_created_total", "counter",
          "Sessions started empty: a namespace made for a new id, or for "
          "one with no checkpoint to restore.", 0 },
        { "pyexec_sessions_expired_total", "counter",
          "Sessions dropped after pyexec_session_idle_timeout.", 0 },
        { "pyexec_sessions_evicted_total", "counter",
          "Idle sessions dropped for a new one at pyexec_session_max.", 0 },
        { "pyexec_sessions_restored_total", "counter",
          "Sessions brought back from their checkpoint.", 0 },
        { "pyexec_sessions_lost_total", "counter",
          "Requests answered 410: the session was lost with its worker.", 0 },
        { "pyexec_checkpoints_total", "counter",
          "Session checkpoints written.", 0 },
        { "pyexec_checkpoint_bytes_total", "counter",
          "Bytes of the checkpoint files written.", 0 },
        { "pyexec_checkpoint_seconds_total", "counter",
          "CPU time spent writing checkpoints.", 1 },
        { "pyexec_output_bytes_total", "counter",
          "Bytes cells wrote to stdout and stderr, past the cap included.", 0 },
        { "pyexec_upload_bytes_total", "counter",
          "Bytes of files stored by /upload.", 0 },
        { "pyexec_worker_resident_memory_bytes", "gauge",
          "The worker's resident memory.", 0 },
        { "pyexec_worker_heap_bytes", "gauge",
          "Bytes in use in the worker's malloc heap (Python's objects over "
          "512 bytes, arrays, buffers; small objects are in pymalloc's "
          "arenas, which the resident memory counts).", 0 },
        { "pyexec_worker_starts_total", "counter",
          "Processes that have held this worker's slot (start, reload, "
          "restart after a crash or a recycle).", 0 },
        { "pyexec_worker_warm", "gauge",
          "1 once pyexec_session_init's imports are done.", 0 },
        { "pyexec_journal_executions", "gauge",
          "Executions in the worker's journal (running, or ended less than "
          "pyexec_journal_time ago).", 0 },
        { "pyexec_journal_bytes", "gauge",
          "Bytes the journal holds (events, replies), at most "
          "pyexec_journal_max but for running cells.", 0 },
        { "pyexec_front_local_total", "counter",
          "Cells the front ran in its own worker (pyexec_front: the "
          "session is this worker's), without a proxied request.", 0 },
        { "pyexec_front_handoffs_sent_total", "counter",
          "Client connections this worker's front handed to the worker "
          "of their cell's session.", 0 },
        { "pyexec_front_handoffs_received_total", "counter",
          "Client connections handed to this worker by another worker's "
          "front.", 0 }
    };

    rc = ngx_http_pyexec_get_only(r);
    if (rc != NGX_DECLINED) {
        return rc;
    }

    start = ngx_pnalloc(r->pool, NGX_HTTP_PYEXEC_METRICS_MAX);
    if (start == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = start;
    last = start + NGX_HTTP_PYEXEC_METRICS_MAX;
    w = ngx_worker == (ngx_uint_t) -1 ? 0 : ngx_worker;

    p = ngx_http_pyexec_metrics_family(p, last, "pyexec_executions_total",
            "counter", "Cells run, by termination.reason of their reply.");

    for (i = 0; i < NGX_HTTP_PYEXEC_END_N; i++) {
        p = ngx_slprintf(p, last,
                         "pyexec_executions_total{worker=\"%ui\","
                         "reason=\"%s\"} %uL\n",
                         w, ngx_http_pyexec_task_reasons[i],
                         m->executions[i]);
    }

    p = ngx_http_pyexec_metrics_histogram(p, last,
            "pyexec_execution_duration_seconds",
            "Wall time of cells in the interpreter.", w, &m->duration);
    p = ngx_http_pyexec_metrics_histogram(p, last,
            "pyexec_queue_wait_seconds",
            "Time cells waited for the interpreter before they started.",
            w, &m->queue);

    mi = mallinfo2();

    vals[0] = ngx_http_pyexec_proc.cells;
    vals[1] = ngx_http_pyexec_proc.nsessions;
    vals[2] = __atomic_load_n(&m->sessions_created, __ATOMIC_RELAXED);
    vals[3] = m->sessions_expired;
    vals[4] = m->sessions_evicted;
    vals[5] = m->sessions_restored;
    vals[6] = m->sessions_lost;
    vals[7] = __atomic_load_n(&m->checkpoints, __ATOMIC_RELAXED);
    vals[8] = __atomic_load_n(&m->checkpoint_bytes, __ATOMIC_RELAXED);
    vals[9] = __atomic_load_n(&m->checkpoint_us, __ATOMIC_RELAXED);
    vals[10] = m->output_bytes;
    vals[11] = m->upload_bytes;
    vals[12] = ngx_http_pyexec_interp_rss();
    vals[13] = mi.uordblks + mi.hblkhd;
    vals[14] = ngx_http_pyexec_placement_starts();
    vals[15] = ngx_http_pyexec_proc.warm ? 1 : 0;
    vals[16] = ngx_http_pyexec_journal_count();
    vals[17] = ngx_http_pyexec_journal_bytes();
    vals[18] = m->front_local;
    vals[19] = m->handoffs_sent;
    vals[20] = m->handoffs_received;

    for (i = 0; i < NGX_HTTP_PYEXEC_PLAIN; i++) {
        p = ngx_http_pyexec_metrics_family(p, last, plain[i].name,
                                           plain[i].type, plain[i].help);
        p = ngx_slprintf(p, last, "%s{worker=\"%ui\"} ", plain[i].name, w);

        if (plain[i].seconds) {
            p = ngx_http_pyexec_metrics_seconds(p, last, vals[i]);
            p = ngx_slprintf(p, last, "\n");

        } else {
            p = ngx_slprintf(p, last, "%uL\n", vals[i]);
        }
    }

    if (p == last) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "pyexec: /metrics text over %d bytes",
                      NGX_HTTP_PYEXEC_METRICS_MAX);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.data = start;
    body.len = p - start;

    return ngx_http_pyexec_send_type(r, NGX_HTTP_OK, &type, &body);
}


static u_char *
ngx_http_pyexec_metrics_family(u_char *p, u_char *last, const char *name,
    const char *type, const char *help)
{
    return ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s %s\n",
                        name, help, name, type);
}


static u_char *
ngx_http_pyexec_metrics_histogram(u_char *p, u_char *last, const char *name,
    const char *help, ngx_uint_t w, ngx_http_pyexec_histogram_t *h)
{
    uint64_t    n;
    ngx_uint_t  i;

    p = ngx_http_pyexec_metrics_family(p, last, name, "histogram", help);

    n = 0;

    for (i = 0; i < NGX_HTTP_PYEXEC_BUCKETS; i++) {
        n += h->count[i];
        p = ngx_slprintf(p, last, "%s_bucket{worker=\"%ui\",le=\"%s\"} %uL\n",
                         name, w, ngx_http_pyexec_le[i], n);
    }

    p = ngx_slprintf(p, last, "%s_bucket{worker=\"%ui\",le=\"+Inf\"} %uL\n"
                     "%s_sum{worker=\"%ui\"} ", name, w, h->n, name, w);
    p = ngx_http_pyexec_metrics_seconds(p, last, h->sum_us);

    return ngx_slprintf(p, last, "\n%s_count{worker=\"%ui\"} %uL\n",
                        name, w, h->n);
}


static u_char *
ngx_http_pyexec_metrics_seconds(u_char *p, u_char *last, uint64_t us)
{
    return ngx_slprintf(p, last, "%uL.%06uL", us / 1000000, us % 1000000);
}


/*
 * The front's GET /metrics (pyexec_metrics_gather): the workers' texts
 * merged family by family, in the order they first appear, each family's
 * HELP and TYPE once and the samples of every worker under them; then
 * pyexec_worker_up, 0 for a worker that did not answer.
 */

ngx_int_t
ngx_http_pyexec_metrics_merge(ngx_http_request_t *r, ngx_str_t *bodies,
    ngx_uint_t *statuses, ngx_str_t *uris, ngx_uint_t n)
{
    u_char      *p, *last, *start, *fam, *end, *q, *eol, *line, *other;
    size_t       size;
    ngx_str_t    body, name;
    ngx_uint_t   i, j, k, seen;

    static ngx_str_t  type = ngx_string("text/plain; version=0.0.4");

    size = 256 + n * 64;

    for (i = 0; i < n; i++) {
        if (statuses[i] == NGX_HTTP_OK) {
            size += bodies[i].len;

        } else {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "pyexec: metrics of \"%V\" left out: status %ui",
                          &uris[i], statuses[i]);
        }
    }

    start = ngx_pnalloc(r->pool, size);
    if (start == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = start;
    last = start + size;

    for (i = 0; i < n; i++) {
        if (statuses[i] != NGX_HTTP_OK) {
            continue;
        }

        fam = ngx_http_pyexec_metrics_find(&bodies[i], NULL, &end);

        while (fam) {
            /* "# HELP <name> ...": the family's name */

            name.data = fam + sizeof("# HELP ") - 1;
            for (q = name.data; q < end && *q != ' ' && *q != '\n'; q++) {
                /* void */
            }
            name.len = q - name.data;

            seen = 0;
            for (j = 0; j < i && !seen; j++) {
                seen = statuses[j] == NGX_HTTP_OK
                       && ngx_http_pyexec_metrics_find(&bodies[j], &name,
                                                       &q) != NULL;
            }

            if (!seen) {
                p = ngx_cpymem(p, fam, ngx_min((size_t) (end - fam),
                                               (size_t) (last - p)));

                for (k = i + 1; k < n; k++) {
                    if (statuses[k] != NGX_HTTP_OK) {
                        continue;
                    }

                    other = ngx_http_pyexec_metrics_find(&bodies[k], &name,
                                                         &q);

                    for (line = other; line && line < q; line = eol) {
                        eol = ngx_strlchr(line, q, '\n');
                        eol = eol ? eol + 1 : q;

                        if (*line != '#') {
                            p = ngx_cpymem(p, line,
                                           ngx_min((size_t) (eol - line),
                                                   (size_t) (last - p)));
                        }
                    }
                }
            }

            body.data = end;
            body.len = bodies[i].data + bodies[i].len - end;
            fam = ngx_http_pyexec_metrics_find(&body, NULL, &end);
        }
    }

    p = ngx_slprintf(p, last, "# HELP pyexec_worker_up 1 if the worker "
                     "answered this scrape.\n# TYPE pyexec_worker_up gauge\n");

    for (i = 0; i < n; i++) {
        p = ngx_slprintf(p, last, "pyexec_worker_up{worker=\"%ui\"} %d\n",
                         i, statuses[i] == NGX_HTTP_OK ? 1 : 0);
    }

    if (p == last) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "pyexec: gathered /metrics over %uz bytes", size);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    body.data = start;
    body.len = p - start;

    return ngx_http_pyexec_send_type(r, NGX_HTTP_OK, &type, &body);
}


/*
 * The family of a text that starts with "# HELP <name> " (name NULL: the
 * first family), NULL when none; *end: where the next family starts.
 */

static u_char *
ngx_http_pyexec_metrics_find(ngx_str_t *body, ngx_str_t *name, u_char **end)
{
    u_char  *p, *last, *eol, *fam;

    p = body->data;
    last = body->data + body->len;
    fam = NULL;

    for ( /* void */ ; p < last; p = eol) {
        eol = ngx_strlchr(p, last, '\n');
        eol = eol ? eol + 1 : last;

        if ((size_t) (eol - p) < sizeof("# HELP ") - 1
            || ngx_strncmp(p, "# HELP ", sizeof("# HELP ") - 1) != 0)
        {
            continue;
        }

        if (fam) {
            *end = p;
            return fam;
        }

        if (name == NULL
            || ((size_t) (eol - p) > sizeof("# HELP ") - 1 + name->len
                && ngx_strncmp(p + sizeof("# HELP ") - 1, name->data,
                               name->len) == 0
                && p[sizeof("# HELP ") - 1 + name->len] == ' '))
        {
            fam = p;
        }
    }

    *end = last;

    return fam;
}


ngx_int_t
ngx_http_pyexec_metrics_add_variables(ngx_conf_t *cf)
{
    return ngx_http_pyexec_add_variables(cf, ngx_http_pyexec_metrics_vars);
}


/*
 * $pyexec_execution_id, $pyexec_duration_ms, $pyexec_termination,
 * $pyexec_queue_ms: the X-Pyexec-* header of the answer (a worker's own,
 * or the one a front passed on from its worker); empty (not found) for
 * answers that are not a cell's.
 */

static ngx_int_t
ngx_http_pyexec_metrics_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_table_elt_t  *h;

    h = ngx_http_pyexec_header(&r->headers_out.headers,
                               &ngx_http_pyexec_cell_headers[data]);

    if (h != NULL) {
        v->len = h->value.len;
        v->valid = 1;
        v->no_cacheable = 1;
        v->not_found = 0;
        v->data = h->value.data;

        return NGX_OK;
    }

    v->not_found = 1;

    return NGX_OK;
}
