
/*
 * Copyright (C) pyexec authors
 */


#ifndef _NGX_FUZZ_H_INCLUDED_
#define _NGX_FUZZ_H_INCLUDED_


#include "ngx_http_pyexec_common.h"

#include <stdint.h>
#include <stdlib.h>


/* stops the fuzzer with the input that broke a promise */
#define ngx_fuzz_assert(cond)                                                 \
    if (!(cond)) {                                                            \
        fprintf(stderr, "%s:%d: broken: %s\n", __FILE__, __LINE__, #cond);   \
        abort();                                                              \
    }


void ngx_fuzz_pool_reset(size_t fail_at);
size_t ngx_fuzz_pool_count(void);


#endif /* _NGX_FUZZ_H_INCLUDED_ */
