
/*
 * Copyright (C) pyexec authors
 *
 * The journal: every execution of a worker, its events as Server-Sent
 * Events text ("id: n", "event: stdout|stderr|display|result", "data:
 * <JSON>") and its reply, kept pyexec_journal_time after it ends, at most
 * pyexec_journal_execution_max bytes of events each (past that, one
 * "truncated" event, then only the result) and pyexec_journal_max bytes
 * in all (the oldest ended executions go first).  The interpreter thread
 * appends a running cell's events under the journal's lock; the event loop
 * creates, ends, finds, copies out and expires.  Memory is the heap's,
 * never a request's: an execution outlives the request that started it.
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_journal.h"
#include "ngx_http_pyexec_json.h"

#include <pthread.h>


#define NGX_HTTP_PYEXEC_JOURNAL_TICK  1000      /* ms between expiries */


static ngx_int_t ngx_http_pyexec_journal_append(ngx_http_pyexec_exec_t *e,
    const char *kind, u_char *data, size_t len, ngx_uint_t text,
    ngx_uint_t always);
static void ngx_http_pyexec_journal_free(ngx_http_pyexec_exec_t *e);
static void ngx_http_pyexec_journal_trim(void);
static void ngx_http_pyexec_journal_expire(ngx_event_t *ev);


static pthread_mutex_t     ngx_http_pyexec_journal_lock =
    PTHREAD_MUTEX_INITIALIZER;
static ngx_rbtree_t        ngx_http_pyexec_journal_tree;
static ngx_rbtree_node_t   ngx_http_pyexec_journal_sentinel;
static ngx_queue_t         ngx_http_pyexec_journal_queue;
static ngx_event_t         ngx_http_pyexec_journal_timer;
static size_t              ngx_http_pyexec_journal_total;   /* bytes */
static ngx_uint_t          ngx_http_pyexec_journal_n;
static ngx_uint_t          ngx_http_pyexec_journal_ready;


ngx_int_t
ngx_http_pyexec_journal_init_process(ngx_cycle_t *cycle)
{
    ngx_rbtree_init(&ngx_http_pyexec_journal_tree,
                    &ngx_http_pyexec_journal_sentinel,
                    ngx_rbtree_insert_value);
    ngx_queue_init(&ngx_http_pyexec_journal_queue);

    ngx_http_pyexec_journal_timer.handler = ngx_http_pyexec_journal_expire;
    /* debug logs read a timer's data as a connection: something large */
    ngx_http_pyexec_journal_timer.data = &ngx_http_pyexec_proc;
    ngx_http_pyexec_journal_timer.log = cycle->log;
    ngx_http_pyexec_journal_timer.cancelable = 1;
    ngx_http_pyexec_journal_ready = 1;

    return NGX_OK;
}


void
ngx_http_pyexec_journal_exit_process(void)
{
    if (ngx_http_pyexec_journal_timer.timer_set) {
        ngx_del_timer(&ngx_http_pyexec_journal_timer);
    }
}


/* a cell posted: its execution, running (NULL: no memory, not journaled) */

ngx_http_pyexec_exec_t *
ngx_http_pyexec_journal_start(u_char *id, size_t len, uint64_t exec_id)
{
    ngx_http_pyexec_exec_t  *e;

    if (!ngx_http_pyexec_journal_ready) {
        return NULL;
    }

    e = ngx_calloc(sizeof(ngx_http_pyexec_exec_t) + len, ngx_cycle->log);
    if (e == NULL) {
        return NULL;
    }

    e->id = (u_char *) (e + 1);
    e->id_len = len;
    ngx_memcpy(e->id, id, len);
    e->node.key = (ngx_rbtree_key_t) exec_id;
    e->running = 1;
    e->thread = 1;
    e->starts = e->start1;          /* a trivial cell's result: no malloc */
    e->nstarts = 2;

    ngx_rbtree_insert(&ngx_http_pyexec_journal_tree, &e->node);
    ngx_queue_insert_tail(&ngx_http_pyexec_journal_queue, &e->queue);
    (void) __atomic_add_fetch(&ngx_http_pyexec_journal_total,
                              sizeof(ngx_http_pyexec_exec_t) + len,
                              __ATOMIC_RELAXED);
    ngx_http_pyexec_journal_n++;

    return e;
}


/* the cell's completion: its reply, as the last event and for GETs */

void
ngx_http_pyexec_journal_end(ngx_http_pyexec_exec_t *e, ngx_uint_t status,
    u_char *reply, size_t len)
{
    ngx_int_t                     rc;
    ngx_http_pyexec_main_conf_t  *pmcf = ngx_http_pyexec_proc.pmcf;

    e->status = status;

    /* the reply is the result event's data: kept once, served from there */

    (void) pthread_mutex_lock(&ngx_http_pyexec_journal_lock);
    rc = ngx_http_pyexec_journal_append(e, "result", reply, len, 0, 1);
    (void) pthread_mutex_unlock(&ngx_http_pyexec_journal_lock);

    if (rc == NGX_OK) {
        e->reply = e->len - (sizeof("\n\n") - 1) - len;
        e->reply_len = len;
    }

    e->running = 0;
    e->ended = ngx_current_msec;

    ngx_http_pyexec_journal_trim();

    if (!ngx_http_pyexec_journal_timer.timer_set) {
        ngx_add_timer(&ngx_http_pyexec_journal_timer,
                      ngx_min(pmcf->journal_time,
                              NGX_HTTP_PYEXEC_JOURNAL_TICK));
    }
}


/* the task's completion: the interpreter thread is done with it */

void
ngx_http_pyexec_journal_release(ngx_http_pyexec_exec_t *e)
{
    if (e) {
        e->thread = 0;
    }
}


/*
 * The interpreter thread: an event of the running cell.  text: data is
 * the text of stdout or stderr, sent as {"text": "..."}; else data is
 * JSON already (a display output).
 */

void
ngx_http_pyexec_journal_emit(ngx_http_pyexec_exec_t *e, const char *kind,
    u_char *data, size_t len, ngx_uint_t text)
{
    (void) pthread_mutex_lock(&ngx_http_pyexec_journal_lock);
    (void) ngx_http_pyexec_journal_append(e, kind, data, len, text, 0);
    (void) pthread_mutex_unlock(&ngx_http_pyexec_journal_lock);
}


/* under the lock; always: the result, past the cap too */

static ngx_int_t
ngx_http_pyexec_journal_append(ngx_http_pyexec_exec_t *e, const char *kind,
    u_char *data, size_t len, ngx_uint_t text, ngx_uint_t always)
{
    u_char     *p, *events;
    size_t      need, size, *starts, max, n;
    ngx_uint_t  k;

    if (e->closed) {
        return NGX_DECLINED;        /* a cell abandoned by a recycle */
    }

    max = ngx_http_pyexec_proc.pmcf->journal_execution_max;

    need = sizeof("id: \nevent: \ndata: {\"text\":\"\"}\n\n") - 1
           + NGX_INT_T_LEN + ngx_strlen(kind)
           + len + (text ? ngx_escape_json(NULL, data, len) : 0);

    /*
     * a write of the same stream as the last event, which no stream has
     * read yet: the same event, longer (print() writes its text and its
     * "\n" apart)
     */

    if (text && e->last_kind && !e->cut
        && ngx_strcmp(e->last_kind, kind) == 0
        && e->starts[e->nevents - 1] >= e->copied)
    {
        n = len + ngx_escape_json(NULL, data, len);

        if (e->len + n <= max && e->len + n <= e->size) {
            p = e->events + e->len - (sizeof("\"}\n\n") - 1);
            p = (u_char *) ngx_escape_json(p, data, len);
            p = ngx_cpymem(p, "\"}\n\n", sizeof("\"}\n\n") - 1);
            e->len = p - e->events;
            return NGX_OK;
        }
    }

    e->last_kind = text ? (ngx_strcmp(kind, "stdout") == 0 ? "stdout"
                                                            : "stderr")
                        : NULL;

    e->closed = always;

    if (!always && (e->cut || e->len + need > max)) {
        if (e->cut) {
            return NGX_DECLINED;
        }

        /* once: what was dropped, then nothing but the result */

        e->cut = 1;
        kind = "truncated";
        data = (u_char *) "{\"reason\":\"pyexec_journal_execution_max\"}";
        len = ngx_strlen(data);
        text = 0;
        need = sizeof("id: \nevent: \ndata: \n\n") - 1 + NGX_INT_T_LEN
               + sizeof("truncated") - 1 + len;
    }

    if (e->len + need > e->size) {
        size = e->size ? ngx_max(e->size * 2, e->len + need) : need;

        events = realloc(e->events, size);
        if (events == NULL) {
            return NGX_ERROR;
        }

        (void) __atomic_add_fetch(&ngx_http_pyexec_journal_total,
                                  size - e->size, __ATOMIC_RELAXED);
        e->events = events;
        e->size = size;
    }

    if (e->nevents == e->nstarts) {
        k = e->nstarts * 2;

        starts = realloc(e->starts == e->start1 ? NULL : e->starts,
                         k * sizeof(size_t));
        if (starts == NULL) {
            return NGX_ERROR;
        }

        if (e->starts == e->start1) {
            ngx_memcpy(starts, e->start1, sizeof(e->start1));
        }

        (void) __atomic_add_fetch(&ngx_http_pyexec_journal_total,
                                  (e->starts == e->start1 ? k : k - e->nstarts)
                                  * sizeof(size_t), __ATOMIC_RELAXED);
        e->starts = starts;
        e->nstarts = k;
    }

    e->starts[e->nevents++] = e->len;

    p = e->events + e->len;
    p = ngx_sprintf(p, "id: %ui\nevent: %s\ndata: ", e->nevents, kind);

    if (text) {
        p = ngx_cpymem(p, "{\"text\":\"", sizeof("{\"text\":\"") - 1);
        p = (u_char *) ngx_escape_json(p, data, len);
        p = ngx_cpymem(p, "\"}", 2);

    } else {
        p = ngx_cpymem(p, data, len);
    }

    *p++ = '\n';
    *p++ = '\n';

    e->len = p - e->events;

    return NGX_OK;
}


/* an execution of this worker by its id, NULL when none (or expired) */

ngx_http_pyexec_exec_t *
ngx_http_pyexec_journal_find(u_char *id, size_t len)
{
    uint64_t                 key;
    ngx_int_t                hi, lo;
    ngx_rbtree_node_t       *node, *sentinel;
    ngx_http_pyexec_exec_t  *e;

    if (!ngx_http_pyexec_journal_ready || len < 18 || id[16] != '.') {
        return NULL;
    }

    /* 64 bits: more than ngx_hextoi() takes at once */

    hi = ngx_hextoi(id, 1);
    lo = ngx_hextoi(id + 1, 15);

    if (hi == NGX_ERROR || lo == NGX_ERROR) {
        return NULL;
    }

    key = ((uint64_t) hi << 60) | (uint64_t) lo;

    node = ngx_http_pyexec_journal_tree.root;
    sentinel = ngx_http_pyexec_journal_tree.sentinel;

    while (node != sentinel) {
        if (key != node->key) {
            node = (key < node->key) ? node->left : node->right;
            continue;
        }

        e = (ngx_http_pyexec_exec_t *) node;

        if (e->id_len == len && ngx_memcmp(e->id, id, len) == 0) {
            return e;
        }

        return NULL;
    }

    return NULL;
}


/* up to size bytes of the events text from offset from; how many */

size_t
ngx_http_pyexec_journal_copy(ngx_http_pyexec_exec_t *e, size_t from,
    u_char *buf, size_t size)
{
    size_t  n;

    (void) pthread_mutex_lock(&ngx_http_pyexec_journal_lock);

    n = from < e->len ? ngx_min(size, e->len - from) : 0;
    if (n) {
        ngx_memcpy(buf, e->events + from, n);
    }

    /* a stream is at from + n: no event before that grows any more */
    e->copied = ngx_max(e->copied, from + n);

    (void) pthread_mutex_unlock(&ngx_http_pyexec_journal_lock);

    return n;
}


/* where the events after the one of id last_event_id start */

size_t
ngx_http_pyexec_journal_after(ngx_http_pyexec_exec_t *e,
    ngx_uint_t last_event_id)
{
    size_t  off;

    (void) pthread_mutex_lock(&ngx_http_pyexec_journal_lock);

    off = last_event_id < e->nevents ? e->starts[last_event_id] : e->len;
    e->copied = ngx_max(e->copied, off);

    (void) pthread_mutex_unlock(&ngx_http_pyexec_journal_lock);

    return off;
}


/* an ended execution's reply (NGX_DECLINED: none kept, no memory) */

ngx_int_t
ngx_http_pyexec_journal_reply(ngx_http_pyexec_exec_t *e, ngx_str_t *reply)
{
    if (e->running || e->reply_len == 0) {
        return NGX_DECLINED;
    }

    reply->data = e->events + e->reply;
    reply->len = e->reply_len;

    return NGX_OK;
}


size_t
ngx_http_pyexec_journal_bytes(void)
{
    return __atomic_load_n(&ngx_http_pyexec_journal_total, __ATOMIC_RELAXED);
}


ngx_uint_t
ngx_http_pyexec_journal_count(void)
{
    return ngx_http_pyexec_journal_n;
}


static void
ngx_http_pyexec_journal_free(ngx_http_pyexec_exec_t *e)
{
    ngx_rbtree_delete(&ngx_http_pyexec_journal_tree, &e->node);
    ngx_queue_remove(&e->queue);

    (void) __atomic_sub_fetch(&ngx_http_pyexec_journal_total,
                              sizeof(ngx_http_pyexec_exec_t) + e->id_len
                              + e->size
                              + (e->starts == e->start1
                                 ? 0 : e->nstarts * sizeof(size_t)),
                              __ATOMIC_RELAXED);
    ngx_http_pyexec_journal_n--;

    free(e->events);

    if (e->starts != e->start1) {
        free(e->starts);
    }

    ngx_free(e);
}


/* over pyexec_journal_max: the oldest ended executions go first */

static void
ngx_http_pyexec_journal_trim(void)
{
    ngx_queue_t             *q, *next;
    ngx_http_pyexec_exec_t  *e;

    for (q = ngx_queue_head(&ngx_http_pyexec_journal_queue);
         q != ngx_queue_sentinel(&ngx_http_pyexec_journal_queue)
         && ngx_http_pyexec_journal_bytes()
            > ngx_http_pyexec_proc.pmcf->journal_max;
         q = next)
    {
        next = ngx_queue_next(q);
        e = ngx_queue_data(q, ngx_http_pyexec_exec_t, queue);

        if (!e->running && !e->thread && e->watchers == 0) {
            ngx_http_pyexec_journal_free(e);
        }
    }
}


static void
ngx_http_pyexec_journal_expire(ngx_event_t *ev)
{
    ngx_msec_t               keep;
    ngx_queue_t             *q, *next;
    ngx_http_pyexec_exec_t  *e;

    keep = ngx_http_pyexec_proc.pmcf->journal_time;

    for (q = ngx_queue_head(&ngx_http_pyexec_journal_queue);
         q != ngx_queue_sentinel(&ngx_http_pyexec_journal_queue);
         q = next)
    {
        next = ngx_queue_next(q);
        e = ngx_queue_data(q, ngx_http_pyexec_exec_t, queue);

        if (e->running || e->thread || e->watchers) {
            continue;
        }

        if (ngx_current_msec - e->ended < keep) {
            break;      /* roughly in the order they ended: the rest later */
        }

        ngx_http_pyexec_journal_free(e);
    }

    if (!ngx_queue_empty(&ngx_http_pyexec_journal_queue) && !ngx_exiting) {
        ngx_add_timer(ev, ngx_min(keep, NGX_HTTP_PYEXEC_JOURNAL_TICK));
    }
}
