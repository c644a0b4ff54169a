
/*
 * Copyright (C) pyexec authors
 *
 * The session registry: which worker holds which session, in a shared
 * memory zone that outlives the workers.  When a worker dies (a crash, a
 * recycle, a reload) its successor marks every session of its slot as
 * lost; the first request for one of them answers 410 instead of quietly
 * starting an empty session under the same name.  Minted ids say 410 by
 * themselves (their mint time); this is what makes client-named ids say
 * it too.
 *
 * The table is open addressing over 64-bit hashes of the ids, linear
 * probing, deletion by backward shift (no tombstones), one lock.  It is
 * touched when a session is created or removed and when an unknown id
 * arrives, never on a call to a live session.  A full table only means
 * that the sessions it could not hold start afresh after a crash.
 */


#include "ngx_http_pyexec_common.h"
#include "ngx_http_pyexec_registry.h"


#define NGX_HTTP_PYEXEC_REG_LIVE  1
#define NGX_HTTP_PYEXEC_REG_LOST  2


typedef struct {
    uint64_t                     hash;     /* 0: empty */
    uint32_t                     slot;     /* ngx_worker of the holder */
    uint32_t                     state;
} ngx_http_pyexec_reg_entry_t;


typedef struct {
    ngx_uint_t                   size;     /* entries, a power of two */
    ngx_uint_t                   used;
    ngx_uint_t                   full_logged;
    ngx_http_pyexec_reg_entry_t  entries[1];
} ngx_http_pyexec_reg_t;


static ngx_int_t ngx_http_pyexec_registry_init_zone(ngx_shm_zone_t *zone,
    void *data);
static uint64_t ngx_http_pyexec_registry_hash(u_char *id, size_t len);
static ngx_http_pyexec_reg_entry_t *ngx_http_pyexec_registry_lookup(
    uint64_t hash);
static void ngx_http_pyexec_registry_delete(ngx_http_pyexec_reg_entry_t *e);


static ngx_http_pyexec_reg_t  *ngx_http_pyexec_reg;
static ngx_slab_pool_t        *ngx_http_pyexec_reg_pool;


ngx_int_t
ngx_http_pyexec_registry_conf(ngx_conf_t *cf, size_t size)
{
    ngx_str_t        name = ngx_string("pyexec_session_registry");
    ngx_shm_zone_t  *zone;

    ngx_http_pyexec_reg = NULL;

    if (size == 0) {
        return NGX_OK;
    }

    zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_pyexec_module);
    if (zone == NULL) {
        return NGX_ERROR;
    }

    zone->init = ngx_http_pyexec_registry_init_zone;

    return NGX_OK;
}


/*
 * In the master: the workers inherit the pointers.  The zone is an nginx
 * slab pool like any other (the master force-unlocks its mutex when a
 * worker dies holding it); the table is one allocation from it, half the
 * zone.
 */

static ngx_int_t
ngx_http_pyexec_registry_init_zone(ngx_shm_zone_t *zone, void *data)
{
    size_t                  n;
    ngx_slab_pool_t        *shpool;
    ngx_http_pyexec_reg_t  *reg;

    shpool = (ngx_slab_pool_t *) zone->shm.addr;

    if (data) {
        /* a reload: the same zone, the sessions it knows are kept */
        reg = data;

    } else if (zone->shm.exists) {
        reg = shpool->data;

    } else {
        n = zone->shm.size / 2 / sizeof(ngx_http_pyexec_reg_entry_t);

        /* a power of two, for the probe mask */

        while (n & (n - 1)) {
            n &= n - 1;
        }

        reg = ngx_slab_calloc(shpool, offsetof(ngx_http_pyexec_reg_t, entries)
                                      + n * sizeof(ngx_http_pyexec_reg_entry_t));
        if (reg == NULL) {
            return NGX_ERROR;
        }

        reg->size = n;
        shpool->data = reg;
    }

    zone->data = reg;
    ngx_http_pyexec_reg = reg;
    ngx_http_pyexec_reg_pool = shpool;

    return NGX_OK;
}


/* in each worker, before it takes requests: its predecessor's are lost */

void
ngx_http_pyexec_registry_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                    i, lost;
    ngx_http_pyexec_reg_entry_t  *e;

    if (ngx_http_pyexec_reg == NULL) {
        return;             /* pyexec_session_registry off */
    }

    lost = 0;

    ngx_shmtx_lock(&ngx_http_pyexec_reg_pool->mutex);

    for (i = 0; i < ngx_http_pyexec_reg->size; i++) {
        e = &ngx_http_pyexec_reg->entries[i];

        if (e->hash && e->slot == ngx_worker
            && e->state == NGX_HTTP_PYEXEC_REG_LIVE)
        {
            e->state = NGX_HTTP_PYEXEC_REG_LOST;
            lost++;
        }
    }

    ngx_shmtx_unlock(&ngx_http_pyexec_reg_pool->mutex);

    if (lost) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, 0,
                      "pyexec: %ui sessions of the previous worker %ui are "
                      "lost (410 on their next request)", lost, ngx_worker);
    }
}


void
ngx_http_pyexec_registry_add(u_char *id, size_t len, ngx_log_t *log)
{
    uint64_t                      hash;
    ngx_http_pyexec_reg_t        *reg = ngx_http_pyexec_reg;
    ngx_http_pyexec_reg_entry_t  *e;

    if (reg == NULL) {
        return;
    }

    hash = ngx_http_pyexec_registry_hash(id, len);

    ngx_shmtx_lock(&ngx_http_pyexec_reg_pool->mutex);

    e = ngx_http_pyexec_registry_lookup(hash);

    if (e->hash == 0) {

        /* at most 3/4 full, so that probes stay short */

        if (reg->used >= reg->size / 4 * 3) {
            if (!reg->full_logged) {
                reg->full_logged = 1;
                ngx_log_error(NGX_LOG_WARN, log, 0,
                              "pyexec_session_registry is full (%ui "
                              "sessions): sessions beyond it start afresh "
                              "after a worker dies", reg->used);
            }

            ngx_shmtx_unlock(&ngx_http_pyexec_reg_pool->mutex);
            return;
        }

        e->hash = hash;
        reg->used++;
    }

    e->slot = (uint32_t) ngx_worker;
    e->state = NGX_HTTP_PYEXEC_REG_LIVE;

    ngx_shmtx_unlock(&ngx_http_pyexec_reg_pool->mutex);
}


void
ngx_http_pyexec_registry_del(u_char *id, size_t len)
{
    uint64_t                      hash;
    ngx_http_pyexec_reg_entry_t  *e;

    if (ngx_http_pyexec_reg == NULL) {
        return;
    }

    hash = ngx_http_pyexec_registry_hash(id, len);

    ngx_shmtx_lock(&ngx_http_pyexec_reg_pool->mutex);

    e = ngx_http_pyexec_registry_lookup(hash);

    /* another worker's entry for the same id is not this worker's to drop */

    if (e->hash && e->slot == ngx_worker) {
        ngx_http_pyexec_registry_delete(e);
    }

    ngx_shmtx_unlock(&ngx_http_pyexec_reg_pool->mutex);
}


/* 1 if the id belonged to a worker that died; said once, then forgotten */

ngx_int_t
ngx_http_pyexec_registry_lost(u_char *id, size_t len)
{
    uint64_t                      hash;
    ngx_int_t                     lost;
    ngx_http_pyexec_reg_entry_t  *e;

    if (ngx_http_pyexec_reg == NULL) {
        return 0;
    }

    hash = ngx_http_pyexec_registry_hash(id, len);
    lost = 0;

    ngx_shmtx_lock(&ngx_http_pyexec_reg_pool->mutex);

    e = ngx_http_pyexec_registry_lookup(hash);

    if (e->hash && e->state == NGX_HTTP_PYEXEC_REG_LOST) {
        ngx_http_pyexec_registry_delete(e);
        lost = 1;
    }

    ngx_shmtx_unlock(&ngx_http_pyexec_reg_pool->mutex);

    return lost;
}


static uint64_t
ngx_http_pyexec_registry_hash(u_char *id, size_t len)
{
    uint64_t  hash;

    hash = ((uint64_t) ngx_murmur_hash2(id, len) << 32)
           | ngx_crc32_long(id, len);

    return hash ? hash : 1;
}


/* the entry holding hash, or the empty one where it would go */

static ngx_http_pyexec_reg_entry_t *
ngx_http_pyexec_registry_lookup(uint64_t hash)
{
    ngx_uint_t                    i, mask;
    ngx_http_pyexec_reg_entry_t  *entries = ngx_http_pyexec_reg->entries;

    mask = ngx_http_pyexec_reg->size - 1;

    for (i = hash & mask; /* void */ ; i = (i + 1) & mask) {
        if (entries[i].hash == hash || entries[i].hash == 0) {
            return &entries[i];
        }
    }
}


/* backward-shift deletion: later entries of the probe run move up */

static void
ngx_http_pyexec_registry_delete(ngx_http_pyexec_reg_entry_t *e)
{
    ngx_uint_t                    i, j, home, mask;
    ngx_http_pyexec_reg_entry_t  *entries = ngx_http_pyexec_reg->entries;

    mask = ngx_http_pyexec_reg->size - 1;
    i = e - entries;

    for (j = (i + 1) & mask; entries[j].hash; j = (j + 1) & mask) {
        home = entries[j].hash & mask;

        /* entry j may fill hole i if its home is not in (i, j] */

        if (((j - home) & mask) >= ((j - i) & mask)) {
            entries[i] = entries[j];
            i = j;
        }
    }

    ngx_memzero(&entries[i], sizeof(ngx_http_pyexec_reg_entry_t));
    ngx_http_pyexec_reg->used--;
}
