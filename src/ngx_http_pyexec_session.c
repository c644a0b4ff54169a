
/*
 * Copyright (C) pyexec authors
 *
 * The per-worker session table: a chained hash table keyed by the id
 * (O(1) lookup, grown by doubling), an LRU queue for eviction and idle
 * expiry, and the minting of ids that remember when they were minted.
 *
 * Session structs are heap memory (ngx_alloc), one block holding the id:
 * a pool per session would cost more than the session itself (an idle
 * session is ~100 bytes here).  The Python namespace a session points to
 * is owned by the interpreter thread and released there by a DESTROY task.
 * Everything in this file runs on the event loop.
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_interp.h"
#include "ngx_http_pyexec_metrics.h"
#include "ngx_http_pyexec_placement.h"
#include "ngx_http_pyexec_registry.h"
#include "ngx_http_pyexec_session.h"
#include "ngx_http_pyexec_task.h"

#include <ngx_md5.h>
#include <sys/random.h>


#define NGX_HTTP_PYEXEC_BUCKETS_MIN  1024
#define NGX_HTTP_PYEXEC_CKPT_RETRY   200    /* ms: a writer still at work */
#define NGX_HTTP_PYEXEC_CKPT_BURST   200000 /* us of checkpoints banked */
#define NGX_HTTP_PYEXEC_CKPT_MIN     1000   /* us: a first one's guess */


static ngx_event_t       ngx_http_pyexec_ckpt_retry;
static int64_t           ngx_http_pyexec_ckpt_budget =
                             NGX_HTTP_PYEXEC_CKPT_BURST;   /* us */
static uint64_t          ngx_http_pyexec_ckpt_budget_at;   /* ms */
static uint64_t          ngx_http_pyexec_ckpt_busy_at;     /* ms busy then */
static ngx_connection_t  ngx_http_pyexec_ckpt_conn;     /* ev->data, logs */


static ngx_int_t ngx_http_pyexec_session_grow(void);
static void ngx_http_pyexec_session_unlink(ngx_http_pyexec_session_t *s);
static void ngx_http_pyexec_session_expire(ngx_event_t *ev);
static void ngx_http_pyexec_session_checkpointed(ngx_event_t *ev);
static void ngx_http_pyexec_session_ckpt_later(ngx_msec_t wait);
static ngx_msec_t ngx_http_pyexec_session_ckpt_budget(uint64_t now);
static void ngx_http_pyexec_session_destroyed(ngx_event_t *ev);
static void ngx_http_pyexec_session_ckpt_retry(ngx_event_t *ev);
static ngx_int_t ngx_http_pyexec_session_decode(u_char *id, size_t len,
    u_char *b);
static ngx_int_t ngx_http_pyexec_session_minted_before(u_char *id,
    size_t len);
static uint32_t ngx_http_pyexec_session_mac(u_char *p, size_t len);


ngx_http_pyexec_proc_t  ngx_http_pyexec_proc;

static u_char  ngx_http_pyexec_secret[16];
static ngx_uint_t  ngx_http_pyexec_secret_set;


void
ngx_http_pyexec_session_set_secret(ngx_str_t *configured)
{
    ngx_md5_t  md5;

    if (configured->len) {
        /* shared by every host behind one front: 410 works across hosts */

        ngx_md5_init(&md5);
        ngx_md5_update(&md5, configured->data, configured->len);
        ngx_md5_final(ngx_http_pyexec_secret, &md5);
        ngx_http_pyexec_secret_set = 1;
        return;
    }

    if (!ngx_http_pyexec_secret_set) {
        ngx_http_pyexec_random(ngx_http_pyexec_secret,
                               sizeof(ngx_http_pyexec_secret));
        ngx_http_pyexec_secret_set = 1;
    }
}


ngx_int_t
ngx_http_pyexec_session_init_process(ngx_cycle_t *cycle)
{
    ngx_time_t              *tp;
    ngx_http_pyexec_proc_t  *p = &ngx_http_pyexec_proc;

    p->nbuckets = NGX_HTTP_PYEXEC_BUCKETS_MIN;
    p->buckets = ngx_calloc(p->nbuckets * sizeof(void *), cycle->log);
    if (p->buckets == NULL) {
        return NGX_ERROR;
    }

    ngx_queue_init(&p->lru);

    ngx_time_update();
    tp = ngx_timeofday();
    p->started = tp->sec;
    p->started_ms = (uint64_t) tp->sec * 1000 + tp->msec;

    p->expire.handler = ngx_http_pyexec_session_expire;
    p->expire.log = cycle->log;
    p->expire.data = p;
    p->expire.cancelable = 1;

    return NGX_OK;
}


void
ngx_http_pyexec_session_exit_process(void)
{
    if (ngx_http_pyexec_proc.expire.timer_set) {
        ngx_del_timer(&ngx_http_pyexec_proc.expire);
    }

    /* session memory goes with the process; Python is not finalized */
}


static uint32_t
ngx_http_pyexec_session_hash(u_char *id, size_t len)
{
    return ngx_murmur_hash2(id, len);
}


ngx_http_pyexec_session_t *
ngx_http_pyexec_session_find(u_char *id, size_t len)
{
    uint32_t                    hash;
    ngx_http_pyexec_session_t  *s;

    hash = ngx_http_pyexec_session_hash(id, len);

    for (s = ngx_http_pyexec_proc.buckets[hash
                                         & (ngx_http_pyexec_proc.nbuckets - 1)];
         s;
         s = s->hash_next)
    {
        if (s->hash == hash && s->id_len == len
            && ngx_memcmp(s->id, id, len) == 0)
        {
            return s;
        }
    }

    return NULL;
}


ngx_http_pyexec_session_t *
ngx_http_pyexec_session_create(u_char *id, size_t len, ngx_log_t *log)
{
    ngx_queue_t                 *q;
    ngx_http_pyexec_proc_t      *p = &ngx_http_pyexec_proc;
    ngx_http_pyexec_session_t   *s, *victim, **bucket;

    if (p->nsessions >= p->pmcf->session_max) {

        /* evict the least recently used session that is idle */

        victim = NULL;

        for (q = ngx_queue_head(&p->lru);
             q != ngx_queue_sentinel(&p->lru);
             q = ngx_queue_next(q))
        {
            s = ngx_queue_data(q, ngx_http_pyexec_session_t, lru);
            if (s->pending == 0) {
                victim = s;
                break;
            }
        }

        if (victim == NULL) {
            return NULL;
        }

        ngx_log_error(NGX_LOG_INFO, log, 0,
                      "pyexec: session limit %ui reached, evicting \"%*s\"",
                      p->pmcf->session_max, victim->id_len, victim->id);

        ngx_http_pyexec_session_remove(victim);
        ngx_http_pyexec_metrics.sessions_evicted++;
    }

    if (p->nsessions >= p->nbuckets
        && ngx_http_pyexec_session_grow() != NGX_OK)
    {
        return NULL;
    }

    s = ngx_alloc(offsetof(ngx_http_pyexec_session_t, id) + len, log);
    if (s == NULL) {
        return NULL;
    }

    ngx_memzero(s, offsetof(ngx_http_pyexec_session_t, id));
    ngx_memcpy(s->id, id, len);
    s->id_len = len;
    s->hash = ngx_http_pyexec_session_hash(id, len);
    s->refs = 1;
    s->in_table = 1;
    s->created_at = ngx_time();
    s->last_used = s->created_at;

    bucket = &p->buckets[s->hash & (p->nbuckets - 1)];
    s->hash_next = *bucket;
    *bucket = s;

    ngx_queue_insert_tail(&p->lru, &s->lru);
    p->nsessions++;
    ngx_http_pyexec_placement_report();

    ngx_http_pyexec_registry_add(id, len, log);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, log, 0,
                   "pyexec session \"%*s\" created", len, id);

    if (!p->expire.timer_set) {
        ngx_add_timer(&p->expire,
                      ngx_min(p->pmcf->session_idle_timeout, 60000));
    }

    return s;
}


static ngx_int_t
ngx_http_pyexec_session_grow(void)
{
    ngx_uint_t                   i, n;
    ngx_http_pyexec_proc_t      *p = &ngx_http_pyexec_proc;
    ngx_http_pyexec_session_t  **b, *s, *next;

    n = p->nbuckets * 2;

    b = ngx_calloc(n * sizeof(void *), p->log);
    if (b == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < p->nbuckets; i++) {
        for (s = p->buckets[i]; s; s = next) {
            next = s->hash_next;
            s->hash_next = b[s->hash & (n - 1)];
            b[s->hash & (n - 1)] = s;
        }
    }

    ngx_free(p->buckets);
    p->buckets = b;
    p->nbuckets = n;

    return NGX_OK;
}


void
ngx_http_pyexec_session_touch(ngx_http_pyexec_session_t *s)
{
    s->last_used = ngx_time();

    if (s->in_table) {
        ngx_queue_remove(&s->lru);
        ngx_queue_insert_tail(&ngx_http_pyexec_proc.lru, &s->lru);
    }
}


static void
ngx_http_pyexec_session_unlink(ngx_http_pyexec_session_t *s)
{
    ngx_http_pyexec_proc_t      *p = &ngx_http_pyexec_proc;
    ngx_http_pyexec_session_t  **pp;

    for (pp = &p->buckets[s->hash & (p->nbuckets - 1)];
         *pp;
         pp = &(*pp)->hash_next)
    {
        if (*pp == s) {
            *pp = s->hash_next;
            break;
        }
    }

    ngx_http_pyexec_session_dirty(s, 0);   /* no checkpoint for it now */
    ngx_queue_remove(&s->lru);
    s->in_table = 0;
    p->nsessions--;
    ngx_http_pyexec_placement_report();

    ngx_http_pyexec_registry_del(s->id, s->id_len);
}


void
ngx_http_pyexec_session_remove(ngx_http_pyexec_session_t *s)
{
    if (!s->in_table) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "pyexec session \"%*s\" removed", s->id_len, s->id);

    ngx_http_pyexec_session_unlink(s);
    ngx_http_pyexec_session_release(s);
}


void
ngx_http_pyexec_session_release(ngx_http_pyexec_session_t *s)
{
    if (--s->refs) {
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "pyexec session \"%*s\" released%s", s->id_len, s->id,
                   s->ns ? ": namespace dropped in the interpreter thread"
                         : "");

    if (s->ns == NULL) {
        ngx_free(s);
        return;
    }

    /*
     * The namespace can only be dropped with the GIL: a DESTROY task runs
     * after every task already queued for this session (one FIFO thread).
     * If it cannot be posted, the namespace leaks (ngx_calloc() or the
     * queue overflow has logged why).
     */

    (void) ngx_http_pyexec_task_post_server(NGX_HTTP_PYEXEC_OP_DESTROY, s,
                                            ngx_http_pyexec_session_destroyed);
}


/*
 * Durable sessions: once no request task is in flight, every session
 * changed since its checkpoint gets a CHECKPOINT task of its own, so a
 * cell that arrives meanwhile waits behind at most one checkpoint.
 */

void
ngx_http_pyexec_session_checkpoint_idle(void)
{
    uint64_t                    now;
    ngx_uint_t                  left;
    ngx_msec_t                  wait;
    ngx_queue_t                *q, *prev;
    ngx_http_pyexec_session_t  *s;

    if (ngx_http_pyexec_proc.pmcf->state_dir.len == 0
        || !ngx_http_pyexec_task_idle() || ngx_exiting
        || ngx_http_pyexec_proc.stopping)
    {
        return;
    }

    /*
     * a changed session ran a cell a moment ago, so it is near the LRU's
     * tail: the walk goes from there and stops once it has seen them all
     * (not the whole table after every cell)
     */

    left = ngx_http_pyexec_proc.ndirty;
    now = ngx_http_pyexec_interp_now_ms();

    for (q = ngx_queue_last(&ngx_http_pyexec_proc.lru);
         left && q != ngx_queue_sentinel(&ngx_http_pyexec_proc.lru);
         q = prev)
    {
        prev = ngx_queue_prev(q);
        s = ngx_queue_data(q, ngx_http_pyexec_session_t, lru);

        if (!s->dirty) {
            continue;
        }

        left--;

        if (s->checkpointing || s->ns == NULL) {
            continue;
        }

        wait = ngx_http_pyexec_interp_checkpoint_due(s, now);

        if (wait) {
            /* written once it is due, by then idle or after a cell */
            ngx_http_pyexec_session_ckpt_later(wait);
            continue;
        }

        wait = ngx_http_pyexec_session_ckpt_budget(now);

        if (wait) {
            /* the busy worker's share is spent: the rest once it is back */
            ngx_http_pyexec_session_ckpt_later(wait);
            return;
        }

        if (ngx_http_pyexec_task_post_server(NGX_HTTP_PYEXEC_OP_CHECKPOINT, s,
                                      ngx_http_pyexec_session_checkpointed)
            != NGX_OK)
        {
            return;                 /* tried again after the next cell */
        }

        ngx_http_pyexec_session_dirty(s, 0);
        s->checkpointing = 1;
        s->refs++;

        /* its cost, as its last checkpoint's */
        ngx_http_pyexec_ckpt_budget -= (int64_t)
            ngx_max(s->ckpt_cost, NGX_HTTP_PYEXEC_CKPT_MIN);
    }
}


/*
 * The worker's share: besides each session's own (interp.c), a busy
 * worker's checkpoints take at most a fiftieth of its time, so that a
 * thousand sessions changed in turn do not each cost their cells a
 * checkpoint (bench/run.sh's "many" through the front).  Time with no
 * cell in flight is all theirs, so that the last sessions of a burst are
 * written as fast as before once the cells stop (t/010: a kill -9 a
 * moment after them), and sparse cells are not held back (t/032).  A
 * budget in us of checkpoint time, at most NGX_HTTP_PYEXEC_CKPT_BURST
 * banked, spent at each post; the ms to wait until it is positive again
 * at the idle rate.  Event loop only.
 */

static ngx_msec_t
ngx_http_pyexec_session_ckpt_budget(uint64_t now)
{
    uint64_t  from, busy, busy_now;

    from = ngx_http_pyexec_ckpt_budget_at;

    busy_now = ngx_http_pyexec_proc.busy_ms;

    if (ngx_http_pyexec_proc.cells && now > ngx_http_pyexec_proc.busy_since) {
        busy_now += now - ngx_http_pyexec_proc.busy_since;
    }

    if (from && now > from) {
        busy = ngx_min(busy_now - ngx_http_pyexec_ckpt_busy_at, now - from);

        ngx_http_pyexec_ckpt_budget += (int64_t)
            (busy * 1000 / NGX_HTTP_PYEXEC_CKPT_SHARE
             + (now - from - busy) * 1000);
    }

    ngx_http_pyexec_ckpt_budget = ngx_min(ngx_http_pyexec_ckpt_budget,
                                          NGX_HTTP_PYEXEC_CKPT_BURST);
    ngx_http_pyexec_ckpt_budget_at = now;
    ngx_http_pyexec_ckpt_busy_at = busy_now;

    if (ngx_http_pyexec_ckpt_budget > 0) {
        return 0;
    }

    return (ngx_msec_t) (-ngx_http_pyexec_ckpt_budget / 1000) + 1;
}


/* a session changed since its checkpoint, or not: the bit and the count */

void
ngx_http_pyexec_session_dirty(ngx_http_pyexec_session_t *s, ngx_uint_t dirty)
{
    if (s->dirty == dirty) {
        return;
    }

    s->dirty = dirty;

    if (dirty) {
        ngx_http_pyexec_proc.ndirty++;

    } else {
        ngx_http_pyexec_proc.ndirty--;
    }
}


static void
ngx_http_pyexec_session_checkpointed(ngx_event_t *ev)
{
    ngx_thread_task_t          *task = ev->data;
    ngx_http_pyexec_task_t     *t = task->ctx;
    ngx_http_pyexec_session_t  *s = t->session;

    s->checkpointing = 0;

    if (t->status == NGX_BUSY && s->in_table) {
        /* its last checkpoint is still being written: again shortly */

        ngx_http_pyexec_session_dirty(s, 1);
        ngx_http_pyexec_session_ckpt_later(NGX_HTTP_PYEXEC_CKPT_RETRY);
    }

    ngx_free(task);
    ngx_http_pyexec_session_release(s);
}


/* the walk of changed sessions again in `wait` ms, or sooner if set so */

static void
ngx_http_pyexec_session_ckpt_later(ngx_msec_t wait)
{
    ngx_event_t  *ev;

    ev = &ngx_http_pyexec_ckpt_retry;

    if (ev->timer_set && ev->timer.key <= ngx_current_msec + wait) {
        return;
    }

    ev->handler = ngx_http_pyexec_session_ckpt_retry;
    ev->log = ngx_cycle->log;
    ev->data = &ngx_http_pyexec_ckpt_conn;
    ev->cancelable = 1;
    ngx_http_pyexec_ckpt_conn.fd = (ngx_socket_t) -1;

    ngx_add_timer(ev, wait);
}


static void
ngx_http_pyexec_session_ckpt_retry(ngx_event_t *ev)
{
    ngx_http_pyexec_session_checkpoint_idle();
}


static void
ngx_http_pyexec_session_destroyed(ngx_event_t *ev)
{
    ngx_thread_task_t       *task = ev->data;
    ngx_http_pyexec_task_t  *t = task->ctx;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                   "pyexec session \"%*s\" destroyed",
                   t->session->id_len, t->session->id);

    ngx_free(t->session);
    ngx_free(task);
}


static void
ngx_http_pyexec_session_expire(ngx_event_t *ev)
{
    time_t                      idle;
    ngx_queue_t                *q, *next;
    ngx_http_pyexec_proc_t     *p = ev->data;
    ngx_http_pyexec_session_t  *s;

    idle = p->pmcf->session_idle_timeout / 1000;

    for (q = ngx_queue_head(&p->lru);
         q != ngx_queue_sentinel(&p->lru);
         q = next)
    {
        next = ngx_queue_next(q);
        s = ngx_queue_data(q, ngx_http_pyexec_session_t, lru);

        if (s->last_used + idle > ngx_time()) {
            break;  /* the rest were used more recently */
        }

        if (s->pending) {
            continue;
        }

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ev->log, 0,
                       "pyexec session \"%*s\" expired", s->id_len, s->id);

        ngx_http_pyexec_session_remove(s);
        ngx_http_pyexec_metrics.sessions_expired++;
    }

    if (p->nsessions && !ngx_exiting) {
        ngx_add_timer(&p->expire,
                      ngx_min(p->pmcf->session_idle_timeout, 60000));
    }
}


/*
 * Minted ids are UUID4 strings: the first 48 bits are the wall-clock time
 * of minting in milliseconds, the eighth byte the worker the session is
 * placed on plus one (0: none; placement.c), the last 32 bits a MAC over
 * the first 96 bits with a secret the master holds (or
 * pyexec_session_secret), 34 bits are random.  An id with a valid MAC that
 * is unknown to a worker and older than the worker itself belonged to a
 * session that died with an earlier worker (410).  Any process may mint:
 * the routing front does, so that the id it routes on is the id the worker
 * creates.
 */

void
ngx_http_pyexec_session_mint(u_char *out, ngx_int_t worker)
{
    u_char       b[16];
    uint32_t     mac;
    uint64_t     ms;
    ngx_time_t  *tp;

    ngx_http_pyexec_random(b, sizeof(b));

    tp = ngx_timeofday();
    ms = (uint64_t) tp->sec * 1000 + tp->msec;

    b[0] = (u_char) (ms >> 40);
    b[1] = (u_char) (ms >> 32);
    b[2] = (u_char) (ms >> 24);
    b[3] = (u_char) (ms >> 16);
    b[4] = (u_char) (ms >> 8);
    b[5] = (u_char) ms;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[7] = worker >= 0 && worker < 255 ? (u_char) (worker + 1) : 0;
    b[8] = (b[8] & 0x3f) | 0x80;

    mac = ngx_http_pyexec_session_mac(b, 12);
    b[12] = (u_char) (mac >> 24);
    b[13] = (u_char) (mac >> 16);
    b[14] = (u_char) (mac >> 8);
    b[15] = (u_char) mac;

    out = ngx_hex_dump(out, b, 4);
    *out++ = '-';
    out = ngx_hex_dump(out, b + 4, 2);
    *out++ = '-';
    out = ngx_hex_dump(out, b + 6, 2);
    *out++ = '-';
    out = ngx_hex_dump(out, b + 8, 2);
    *out++ = '-';
    (void) ngx_hex_dump(out, b + 10, 6);
}


/*
 * Lost: an id this service minted before the answering worker started,
 * or one the registry knows its dead holder had (said once).
 */

ngx_int_t
ngx_http_pyexec_session_lost(u_char *id, size_t len)
{
    return ngx_http_pyexec_session_minted_before(id, len)
           || ngx_http_pyexec_registry_lost(id, len);
}


/* 1: a valid minted id (MAC checked) older than this worker */

static ngx_int_t
ngx_http_pyexec_session_minted_before(u_char *id, size_t len)
{
    u_char    b[16];
    uint64_t  ms;

    if (ngx_http_pyexec_session_decode(id, len, b) != NGX_OK) {
        return 0;
    }

    ms = ((uint64_t) b[0] << 40) | ((uint64_t) b[1] << 32)
         | ((uint64_t) b[2] << 24) | ((uint64_t) b[3] << 16)
         | ((uint64_t) b[4] << 8) | b[5];

    return ms < ngx_http_pyexec_proc.started_ms;
}


/* the worker a minted id was placed on (MAC checked), or -1 */

ngx_int_t
ngx_http_pyexec_session_pinned(u_char *id, size_t len)
{
    u_char  b[16];

    if (ngx_http_pyexec_session_decode(id, len, b) != NGX_OK || b[7] == 0) {
        return -1;
    }

    return b[7] - 1;
}


/* the 16 bytes of an id this service minted; NGX_DECLINED: not one */

static ngx_int_t
ngx_http_pyexec_session_decode(u_char *id, size_t len, u_char *b)
{
    size_t      i;
    uint32_t    mac;
    ngx_int_t   v;
    ngx_uint_t  n;

    if (len != NGX_HTTP_PYEXEC_UUID_LEN) {
        return NGX_DECLINED;
    }

    n = 0;

    for (i = 0; i < len; i += 2) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (id[i] != '-') {
                return NGX_DECLINED;
            }
            i++;
        }

        v = ngx_hextoi(&id[i], 2);
        if (v == NGX_ERROR) {
            return NGX_DECLINED;
        }

        b[n++] = (u_char) v;
    }

    mac = ngx_http_pyexec_session_mac(b, 12);

    if (b[12] != (u_char) (mac >> 24) || b[13] != (u_char) (mac >> 16)
        || b[14] != (u_char) (mac >> 8) || b[15] != (u_char) mac)
    {
        return NGX_DECLINED;        /* not minted here */
    }

    return NGX_OK;
}


static uint32_t
ngx_http_pyexec_session_mac(u_char *p, size_t len)
{
    u_char  buf[32];

    ngx_memcpy(buf, ngx_http_pyexec_secret, 16);
    ngx_memcpy(buf + 16, p, len);

    return ngx_murmur_hash2(buf, 16 + len) ^ ngx_crc32_short(buf, 16 + len);
}


/* len random bytes (getrandom(), else ngx_random()) */

void
ngx_http_pyexec_random(u_char *buf, size_t len)
{
    size_t   got;
    ssize_t  n;

    for (got = 0; got < len; got += n) {
        n = getrandom(buf + got, len - got, 0);
        if (n <= 0) {
            /* no entropy source: fall back to the libc generator */
            while (got < len) {
                buf[got++] = (u_char) ngx_random();
            }
            return;
        }
    }
}
