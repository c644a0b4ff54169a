
/*
 * Copyright (C) pyexec authors
 *
 * The few nginx core functions the parsers call, for the fuzz harnesses
 * (nginx-dev ships headers only).  Every pool allocation is its own
 * malloc() so that AddressSanitizer sees its exact bounds; the harness
 * frees them all after each input.  An allocation can be made to fail on
 * purpose, to reach the parsers' out-of-memory paths.
 */


#include "ngx_fuzz.h"

#include <stdlib.h>


static void       **ngx_fuzz_allocs;
static size_t       ngx_fuzz_nallocs;
static size_t       ngx_fuzz_cap;
static size_t       ngx_fuzz_fail_at;   /* 1-based; 0: never fail */
static size_t       ngx_fuzz_count;


void *
ngx_pnalloc(ngx_pool_t *pool, size_t size)
{
    void   *p, **a;

    if (++ngx_fuzz_count == ngx_fuzz_fail_at) {
        return NULL;
    }

    if (ngx_fuzz_nallocs == ngx_fuzz_cap) {
        ngx_fuzz_cap = ngx_fuzz_cap ? ngx_fuzz_cap * 2 : 64;
        a = realloc(ngx_fuzz_allocs, ngx_fuzz_cap * sizeof(void *));
        if (a == NULL) {
            abort();
        }
        ngx_fuzz_allocs = a;
    }

    /* malloc(0) may return NULL: never ask for nothing */
    p = malloc(size ? size : 1);
    if (p == NULL) {
        abort();
    }

    ngx_fuzz_allocs[ngx_fuzz_nallocs++] = p;

    return p;
}


void
ngx_fuzz_pool_reset(size_t fail_at)
{
    size_t  i;

    for (i = 0; i < ngx_fuzz_nallocs; i++) {
        free(ngx_fuzz_allocs[i]);
    }

    ngx_fuzz_nallocs = 0;
    ngx_fuzz_count = 0;
    ngx_fuzz_fail_at = fail_at;
}


size_t
ngx_fuzz_pool_count(void)
{
    return ngx_fuzz_count;
}


ngx_int_t
ngx_strncasecmp(u_char *s1, u_char *s2, size_t n)
{
    ngx_uint_t  c1, c2;

    while (n--) {
        c1 = (ngx_uint_t) *s1++;
        c2 = (ngx_uint_t) *s2++;

        c1 = (c1 >= 'A' && c1 <= 'Z') ? (c1 | 0x20) : c1;
        c2 = (c2 >= 'A' && c2 <= 'Z') ? (c2 | 0x20) : c2;

        if (c1 != c2) {
            return c1 - c2;
        }

        if (c1 == 0) {
            return 0;
        }
    }

    return 0;
}


/* the date helpers are linked in with the parser but never reached */

u_char * ngx_cdecl
ngx_sprintf(u_char *buf, const char *fmt, ...)
{
    abort();
}


void
ngx_gmtime(time_t t, ngx_tm_t *tp)
{
    abort();
}
