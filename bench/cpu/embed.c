/*
 * bench/cpu/embed.c -- the smallest program that embeds libpython the way
 * the module does (linked in from Debian's libpython3.X-pic.a, UTF-8 mode),
 * and runs bench/cpu/driver.py: the floor pyexec's cells are compared to.
 *
 *   embed DRIVER.py
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <stdlib.h>


int
main(int argc, char **argv)
{
    FILE         *f;
    PyStatus      status;
    PyPreConfig   pre;

    if (argc != 2) {
        fprintf(stderr, "usage: embed DRIVER.py\n");
        return 2;
    }

    PyPreConfig_InitPythonConfig(&pre);
    pre.utf8_mode = 1;

    status = Py_PreInitialize(&pre);
    if (PyStatus_Exception(status)) {
        Py_ExitStatusException(status);
    }

    Py_Initialize();

    f = fopen(argv[1], "r");
    if (f == NULL) {
        perror(argv[1]);
        return 1;
    }

    if (PyRun_SimpleFileExFlags(f, argv[1], 1, NULL) != 0) {
        return 1;
    }

    return Py_FinalizeEx() < 0 ? 1 : 0;
}
