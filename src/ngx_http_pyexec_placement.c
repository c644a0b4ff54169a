
/*
 * Copyright (C) pyexec authors
 *
 * Placement: where a new session goes, and keeping it there.  Every
 * worker writes its load into a slot of a small shared zone (cells in
 * flight, running and queued; sessions held; whether its interpreter is
 * warm) whenever it changes.  A front that mints a session's id (the
 * client sent none) picks the least busy warm worker -- fewest cells in
 * flight, then fewest sessions, ties taken in turn -- and writes that
 * worker's number into the id, under the id's MAC (session.c).
 *
 * `pyexec_placement` in an upstream{} after `hash ... consistent` wraps
 * the balancer: a request whose id names a worker goes to that server of
 * the list (the Nth `server` line is worker N); every other id keeps the
 * consistent hash, and `keepalive` (after both) keeps its connections.
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_placement.h"
#include "ngx_http_pyexec_session.h"
#include "ngx_http_pyexec_socket.h"


#define NGX_HTTP_PYEXEC_SLOTS  256


typedef struct {
    ngx_atomic_t                 pid;       /* 0: no worker */
    ngx_atomic_t                 cells;     /* in flight: running, queued */
    ngx_atomic_t                 sessions;
    ngx_atomic_t                 warm;
    ngx_atomic_t                 starts;    /* processes that held it */
} ngx_http_pyexec_slot_t;


typedef struct {
    ngx_atomic_t                 turn;      /* ties, in turn */
    ngx_http_pyexec_slot_t       slots[NGX_HTTP_PYEXEC_SLOTS];
} ngx_http_pyexec_load_t;


typedef struct {
    ngx_http_upstream_init_pt       original_init_upstream;
    ngx_http_upstream_init_peer_pt  original_init_peer;
    ngx_int_t                       id_index;  /* $pyexec_session_id */
} ngx_http_pyexec_placement_conf_t;


typedef struct {
    ngx_http_upstream_rr_peer_t    *peer;
} ngx_http_pyexec_placement_peer_t;


static ngx_int_t ngx_http_pyexec_placement_init_zone(ngx_shm_zone_t *zone,
    void *data);
static uint64_t ngx_http_pyexec_placement_score(ngx_http_pyexec_slot_t *slot);
static ngx_int_t ngx_http_pyexec_placement_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_pyexec_placement_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_pyexec_placement_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_pyexec_placement_free_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t state);


static ngx_http_pyexec_load_t  *ngx_http_pyexec_load;


/* the zone, in the configuration of every nginx that loads the module */

ngx_int_t
ngx_http_pyexec_placement_conf(ngx_conf_t *cf)
{
    ngx_str_t        name = ngx_string("pyexec_placement");
    ngx_shm_zone_t  *zone;

    ngx_http_pyexec_load = NULL;

    zone = ngx_shared_memory_add(cf, &name,
                                 ngx_align(sizeof(ngx_http_pyexec_load_t),
                                           ngx_pagesize)
                                 + 8 * ngx_pagesize,
                                 &ngx_http_pyexec_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_pyexec_placement_init_zone;

    return NGX_OK;
}


static ngx_int_t
ngx_http_pyexec_placement_init_zone(ngx_shm_zone_t *zone, void *data)
{
    ngx_slab_pool_t         *shpool;
    ngx_http_pyexec_load_t  *load;

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (data) {
        load = data;                /* a reload: the same zone */

    } else if (zone->shm.exists) {
        load = shpool->data;

    } else {
        load = ngx_slab_calloc(shpool, sizeof(ngx_http_pyexec_load_t));
        if (load == NULL) {
            return NGX_ERROR;
        }

        shpool->data = load;
    }

    zone->data = load;
    ngx_http_pyexec_load = load;

    return NGX_OK;
}


/* a worker's slot: ngx_worker (0 in a single process), NULL past the table */

static ngx_http_pyexec_slot_t *
ngx_http_pyexec_placement_slot(void)
{
    ngx_uint_t  w;

    w = ngx_worker == (ngx_uint_t) -1 ? 0 : ngx_worker;

    if (ngx_http_pyexec_load == NULL || w >= NGX_HTTP_PYEXEC_SLOTS) {
        return NULL;
    }

    return &ngx_http_pyexec_load->slots[w];
}


/* a worker: its load now (cells in flight, sessions held, warm or not) */

void
ngx_http_pyexec_placement_report(void)
{
    ngx_http_pyexec_slot_t  *slot;

    slot = ngx_http_pyexec_placement_slot();
    if (slot == NULL || ngx_http_pyexec_proc.pmcf == NULL) {
        return;
    }

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        /* a worker of the old cycle: its successor owns the slot now */
        return;
    }

    if (slot->pid != (ngx_atomic_uint_t) ngx_pid
        && !ngx_http_pyexec_proc.stopping)
    {
        (void) ngx_atomic_fetch_add(&slot->starts, 1);    /* its first */
    }

    slot->cells = ngx_http_pyexec_proc.cells;
    slot->sessions = ngx_http_pyexec_proc.nsessions;
    slot->warm = ngx_http_pyexec_proc.warm;
    ngx_memory_barrier();
    slot->pid = ngx_pid;
}


/* the processes that have held this worker's slot (0: no zone) */

ngx_uint_t
ngx_http_pyexec_placement_starts(void)
{
    ngx_http_pyexec_slot_t  *slot;

    slot = ngx_http_pyexec_placement_slot();

    return slot ? (ngx_uint_t) slot->starts : 0;
}


/* a worker that exits: no session is placed on it until its successor */

void
ngx_http_pyexec_placement_leave(void)
{
    ngx_http_pyexec_slot_t  *slot;

    slot = ngx_http_pyexec_placement_slot();
    if (slot != NULL && slot->pid == (ngx_atomic_uint_t) ngx_pid) {
        slot->pid = 0;
    }
}


/* lower is less busy; a cold worker only when every one is: (1 << 62) */

static uint64_t
ngx_http_pyexec_placement_score(ngx_http_pyexec_slot_t *slot)
{
    return ((uint64_t) (slot->warm ? 0 : 1) << 62)
           + ((uint64_t) slot->cells << 32) + slot->sessions;
}


/*
 * A front minting an id: the worker for the new session, or -1 (no worker
 * has reported: the id is not pinned, the hash places it).  Warm workers
 * first; among them the fewest cells in flight, then the fewest sessions;
 * ties in turn.  The chosen worker's session count goes up at once, so a
 * burst of new sessions spreads before the workers report.
 */

ngx_int_t
ngx_http_pyexec_placement_pick(void)
{
    ngx_uint_t               i, n, best, ties, pick, turn;
    uint64_t                 score, low;
    ngx_core_conf_t         *ccf;
    ngx_http_pyexec_slot_t  *slot;

    if (ngx_http_pyexec_load == NULL) {
        return -1;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(ngx_cycle->conf_ctx,
                                           ngx_core_module);

    n = ngx_min((ngx_uint_t) ccf->worker_processes, NGX_HTTP_PYEXEC_SLOTS);

    low = (uint64_t) -1;
    ties = 0;
    best = 0;
    turn = ngx_atomic_fetch_add(&ngx_http_pyexec_load->turn, 1);

    for (i = 0; i < n; i++) {
        slot = &ngx_http_pyexec_load->slots[i];

        if (slot->pid == 0) {
            continue;
        }

        score = ngx_http_pyexec_placement_score(slot);

        if (score < low) {
            low = score;
            ties = 0;
        }

        if (score == low) {
            ties++;
        }
    }

    if (ties == 0) {
        return -1;
    }

    pick = turn % ties;

    for (i = 0; i < n; i++) {
        slot = &ngx_http_pyexec_load->slots[i];

        if (slot->pid == 0) {
            continue;
        }

        score = ngx_http_pyexec_placement_score(slot);

        if (score == low && pick-- == 0) {
            best = i;
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&ngx_http_pyexec_load->slots[best].sessions,
                                1);

    return (ngx_int_t) best;
}


/* every server{} and upstream{} gets one; only upstreams use it */

void *
ngx_http_pyexec_placement_create_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_http_pyexec_placement_conf_t));
}


/* "pyexec_placement" in an upstream{}: wrap its balancer (see above) */

char *
ngx_http_pyexec_placement(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t                          name = ngx_string("pyexec_session_id");
    ngx_http_upstream_srv_conf_t      *uscf;
    ngx_http_pyexec_placement_conf_t  *pcf = conf;

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);

    pcf->id_index = ngx_http_get_variable_index(cf, &name);
    if (pcf->id_index == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    if (uscf->peer.init_upstream == ngx_http_pyexec_placement_init_upstream) {
        return "is duplicate";
    }

    pcf->original_init_upstream = uscf->peer.init_upstream
                                  ? uscf->peer.init_upstream
                                  : ngx_http_upstream_init_round_robin;

    uscf->peer.init_upstream = ngx_http_pyexec_placement_init_upstream;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_pyexec_placement_init_upstream(ngx_conf_t *cf,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_pyexec_placement_conf_t  *pcf;

    pcf = ngx_http_conf_upstream_srv_conf(us, ngx_http_pyexec_module);

    if (pcf->original_init_upstream(cf, us) != NGX_OK) {
        return NGX_ERROR;
    }

    pcf->original_init_peer = us->peer.init;
    us->peer.init = ngx_http_pyexec_placement_init_peer;

    return NGX_OK;
}


/*
 * Per request: the wrapped balancer first (the hash evaluates its key,
 * $pyexec_session_id, which resolves and, for a new session, mints the
 * id); then an id that names a worker of the list takes that server.
 */

static ngx_int_t
ngx_http_pyexec_placement_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_int_t                          w;
    ngx_http_upstream_t               *u;
    ngx_http_variable_value_t         *v;
    ngx_http_upstream_rr_peers_t      *peers;
    ngx_http_pyexec_placement_peer_t  *pp;
    ngx_http_pyexec_placement_conf_t  *pcf;

    pcf = ngx_http_conf_upstream_srv_conf(us, ngx_http_pyexec_module);

    if (pcf->original_init_peer(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    v = ngx_http_get_indexed_variable(r, pcf->id_index);
    if (v == NULL || v->not_found) {
        return NGX_OK;
    }

    w = ngx_http_pyexec_session_pinned(v->data, v->len);
    peers = us->peer.data;

    if (w < 0 || peers == NULL || (ngx_uint_t) w >= peers->number) {
        return NGX_OK;
    }

    pp = ngx_palloc(r->pool, sizeof(ngx_http_pyexec_placement_peer_t));
    if (pp == NULL) {
        return NGX_ERROR;
    }

    pp->peer = &peers->peer[w];

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "pyexec placement: the session's worker %i, \"%V\"",
                   w, &pp->peer->name);

    u = r->upstream;
    u->peer.data = pp;
    u->peer.get = ngx_http_pyexec_placement_get_peer;
    u->peer.free = ngx_http_pyexec_placement_free_peer;
    u->peer.tries = 1;

    return NGX_OK;
}


/*
 * The worker of this host that the upstream would send the request to
 * (the balancer asked, as a connect would ask it, and the peer given
 * back unused), or -1: another host, or no pyexec_placement there.
 */

ngx_int_t
ngx_http_pyexec_placement_target(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_int_t                          w;
    ngx_http_upstream_t               *u, *saved;
    ngx_http_pyexec_placement_conf_t  *pcf;

    pcf = ngx_http_conf_upstream_srv_conf(us, ngx_http_pyexec_module);

    if (pcf == NULL || pcf->original_init_peer == NULL) {
        return -1;
    }

    u = ngx_pcalloc(r->pool, sizeof(ngx_http_upstream_t));
    if (u == NULL) {
        return -1;
    }

    u->peer.log = r->connection->log;
    u->peer.log_error = NGX_ERROR_ERR;

    saved = r->upstream;
    r->upstream = u;
    w = -1;

    if (ngx_http_pyexec_placement_init_peer(r, us) == NGX_OK
        && u->peer.get(&u->peer, u->peer.data) == NGX_OK)
    {
        if (u->peer.name) {
            w = ngx_http_pyexec_socket_worker(u->peer.name);
        }

        u->peer.free(&u->peer, u->peer.data, 0);
    }

    r->upstream = saved;

    return w;
}


/* worker w has a process that reported, and has not left */

ngx_uint_t
ngx_http_pyexec_placement_up(ngx_uint_t w)
{
    return ngx_http_pyexec_load && w < NGX_HTTP_PYEXEC_SLOTS
           && ngx_http_pyexec_load->slots[w].pid != 0;
}


static ngx_int_t
ngx_http_pyexec_placement_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_pyexec_placement_peer_t  *pp = data;

    pc->sockaddr = pp->peer->sockaddr;
    pc->socklen = pp->peer->socklen;
    pc->name = &pp->peer->name;
    pc->cached = 0;
    pc->connection = NULL;

    return NGX_OK;
}


static void
ngx_http_pyexec_placement_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    pc->tries = 0;          /* one worker holds the session: no other try */
}


/* worker_processes as configured so far (it comes before http{}), >= 1 */

ngx_uint_t
ngx_http_pyexec_placement_workers(ngx_conf_t *cf)
{
    ngx_core_conf_t  *ccf;

    ccf = (ngx_core_conf_t *) ngx_get_conf(cf->cycle->conf_ctx,
                                           ngx_core_module);

    return ccf->worker_processes == NGX_CONF_UNSET
           || ccf->worker_processes < 1
           ? 1 : (ngx_uint_t) ccf->worker_processes;
}


/*
 * "pyexec_worker_servers unix:<path>" in an upstream{}: one server per
 * worker, <path>.0 to <path>.N-1 for worker_processes N (each worker's
 * pyexec_worker_socket), in order, max_fails=0 (a worker that is down is
 * waited for, never skipped: it holds its sessions).  worker_processes is
 * then the only place the count is written.
 */

char *
ngx_http_pyexec_placement_servers(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_str_t                     *value;
    ngx_url_t                      u;
    ngx_uint_t                     i, n;
    ngx_http_upstream_server_t    *us;
    ngx_http_upstream_srv_conf_t  *uscf;

    uscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_upstream_module);
    value = cf->args->elts;
    n = ngx_http_pyexec_placement_workers(cf);

    if (n > NGX_HTTP_PYEXEC_SLOTS) {
        return "is for at most 256 workers";
    }

    for (i = 0; i < n; i++) {
        us = ngx_array_push(uscf->servers);
        if (us == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(us, sizeof(ngx_http_upstream_server_t));
        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url.data = ngx_pnalloc(cf->pool, value[1].len + NGX_INT_T_LEN + 1);
        if (u.url.data == NULL) {
            return NGX_CONF_ERROR;
        }

        u.url.len = ngx_sprintf(u.url.data, "%V.%ui", &value[1], i)
                    - u.url.data;
        u.default_port = 80;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
            if (u.err) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "%s in \"%V\"", u.err, &u.url);
            }

            return NGX_CONF_ERROR;
        }

        us->name = u.url;
        us->addrs = u.addrs;
        us->naddrs = u.naddrs;
        us->weight = 1;
        us->max_fails = 0;
        us->fail_timeout = 10;
    }

    return NGX_CONF_OK;
}
