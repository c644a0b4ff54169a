
/*
 * Copyright (C) pyexec authors
 *
 * Runs a fuzz harness over files, without libFuzzer: the corpus replay
 * that `make test` does with gcc and AddressSanitizer.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);


int
main(int argc, char **argv)
{
    int       i;
    long      len;
    FILE     *f;
    uint8_t  *buf;

    for (i = 1; i < argc; i++) {
        f = fopen(argv[i], "rb");
        if (f == NULL) {
            perror(argv[i]);
            return 2;
        }

        if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0
            || fseek(f, 0, SEEK_SET) != 0)
        {
            perror(argv[i]);
            return 2;
        }

        buf = malloc(len ? len : 1);
        if (buf == NULL || fread(buf, 1, len, f) != (size_t) len) {
            perror(argv[i]);
            return 2;
        }

        fclose(f);

        LLVMFuzzerTestOneInput(buf, len);

        free(buf);
    }

    printf("replayed %d inputs\n", argc - 1);

    return 0;
}
