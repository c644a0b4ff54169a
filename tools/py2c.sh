#!/bin/sh
# py2c.sh IN.py OUT.h NAME -- embed a Python source file as a C string.
set -eu
in=$1 out=$2 name=$3
{
    printf '/* generated from %s by tools/py2c.sh: do not edit */\n\n' "$(basename "$in")"
    printf 'static const char  %s[] =\n' "$name"
    sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$/\\n"/' "$in"
    printf '    ;\n'
} > "$out.tmp"
mv "$out.tmp" "$out"
