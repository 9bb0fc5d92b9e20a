// Package cpubench reports a benchmark's throughput per second of CPU time
// (user and system) as well as per second of wall time: on a machine
// shared with other work, wall-clock MB/s measures the share of the
// processors a benchmark got, while CPU time is disturbed less. Tests only.
package cpubench
