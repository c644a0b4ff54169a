#!/bin/sh
# tools/workers.sh -- how many pyexec workers (interpreters) this machine
# gets: two per core (a worker is mostly idle, waiting for its agent's next
# cell), at most one per GiB of half the memory (an idle warm worker
# holds ~145 MB resident, 107 MB PSS with pandas, matplotlib and
# scikit-learn imported, bench/fleet.sh; the rest is for the sessions'
# data), at least one.  `make conf` puts the count into
# nginx.conf's worker_processes; WORKERS=n overrides it.
cores=$(nproc 2>/dev/null || echo 1)
mem_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo 2>/dev/null)
n=$((cores * 2))
cap=$(( ${mem_kib:-1048576} / 2 / 1048576 ))
[ "$cap" -ge 1 ] || cap=1
[ "$n" -le "$cap" ] || n=$cap
echo "$n"
