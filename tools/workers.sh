#!/bin/sh
# tools/workers.sh -- how many pyexec workers (interpreters) this machine
# gets: four per core (a worker is mostly idle, waiting for its agent's
# next cell, and a short cell waits behind any long one of its worker's
# other sessions: more workers, fewer sessions each), at most one per GiB
# of half the memory (an idle warm worker holds ~20-30 MB PSS, the
# imports shared with the master by pyexec_preload, bench/fleet.sh; the
# rest is for the sessions' data), at least one.  `make conf` puts the
# count into nginx.conf's worker_processes; WORKERS=n overrides it.
cores=$(nproc 2>/dev/null || echo 1)
mem_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo 2>/dev/null)
n=$((cores * 4))
cap=$(( ${mem_kib:-1048576} / 2 / 1048576 ))
[ "$cap" -ge 1 ] || cap=1
[ "$n" -le "$cap" ] || n=$cap
echo "$n"
