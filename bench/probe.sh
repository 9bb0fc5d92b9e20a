#!/usr/bin/env bash
# Runs one command, optionally signals it, and reports how it ended: the
# exit status, the seconds from the signal to the exit and the peak resident
# set (VmRSS sampled every 0.1 s). Used for the hostile-input probes of
# docs/reliability.md.
#
#   bench/probe.sh SIGNAL AFTER_S LIMIT_S command [args...]
#
# SIGNAL (INT, TERM, or none) is sent AFTER_S seconds after the start; at
# LIMIT_S the command is killed with SIGKILL (reported as "killed at the
# limit", exit status 137). The command's stdout and stderr go to
# $PROBE_OUT.out and $PROBE_OUT.err (default /tmp/probe).
set -u
sig=$1 after=$2 limit=$3
shift 3
out=${PROBE_OUT:-/tmp/probe}
"$@" >"$out.out" 2>"$out.err" &
pid=$!
peak=0 start=$(date +%s.%N) sent=""
while kill -0 "$pid" 2>/dev/null; do
	rss=$(awk '/^VmRSS/{print $2}' "/proc/$pid/status" 2>/dev/null)
	((${rss:-0} > peak)) && peak=${rss:-0}
	el=$(echo "$(date +%s.%N) - $start" | bc)
	if [[ -z $sent && $sig != none ]] && (($(echo "$el >= $after" | bc))); then
		kill "-$sig" "$pid"
		sent=$(date +%s.%N)
	fi
	if (($(echo "$el >= $limit" | bc))); then
		kill -KILL "$pid"
		echo "killed at the limit of ${limit}s"
		break
	fi
	sleep 0.1
done
wait "$pid" 2>/dev/null
rc=$?
end=$(date +%s.%N)
echo "exit $rc, $(echo "$end - $start" | bc) s in all${sent:+, $(echo "$end - $sent" | bc) s after SIG$sig}, peak RSS $((peak / 1024)) MiB"
