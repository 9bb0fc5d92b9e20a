package cpubench

import (
	"syscall"
	"testing"
	"time"
)

// Seconds is the CPU time, user and system, the process has used so far.
func Seconds(b *testing.B) float64 {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		b.Fatal(err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano()).Seconds()
}

// ReportMB reports the metric MB/cpu-s: bytes per iteration times b.N, in
// megabytes, over the CPU time used since start (a Seconds reading taken
// before the loop).
func ReportMB(b *testing.B, bytes int64, start float64) {
	b.ReportMetric(float64(bytes)*float64(b.N)/1e6/(Seconds(b)-start), "MB/cpu-s")
}
