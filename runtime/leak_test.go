package runtime

import (
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	pb "mohawk/export/onnxpb"
	"mohawk/internal/strict"
	"mohawk/tensors"
)

// rssBytes is the process's resident set size from /proc/self/statm.
func rssBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		strict.Unavailable(t, "no /proc/self/statm: %v", err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

// TestRunDoesNotLeak runs a session 1000 times with 1 MiB inputs and
// outputs: a leaked ORT output alone would grow the RSS by ~1 GiB.
func TestRunDoesNotLeak(t *testing.T) {
	env := needORT(t)
	const n = 512
	model := modelBytes(t,
		[]*pb.NodeProto{node("Add", []string{"a", "b"}, []string{"c"}), node("ReduceSum", []string{"c"}, []string{"s"}, intAttr("keepdims", 0)),
			node("Cast", []string{"c"}, []string{"h"}, &pb.AttributeProto{Name: "to", I: int64(tensors.Float16), Type: pb.AttributeProto_INT})},
		[]*pb.ValueInfoProto{vi("a", tensors.Float32, "rows", n), vi("b", tensors.Float32, "rows", n)},
		[]*pb.ValueInfoProto{vi("c", tensors.Float32, "rows", n), vi("s", tensors.Float32), vi("h", tensors.Float16, "rows", n)})
	s, err := env.NewSession("leak", model, []string{"a", "b"}, []string{"c", "s", "h"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := tensors.Zeros(tensors.Float32, n, n)
	for i := range a.Float32s() {
		a.Float32s()[i] = 1
	}
	run := func(times int) {
		for i := 0; i < times; i++ {
			out, err := s.Run([]*tensors.Tensor{a, a})
			if err != nil {
				t.Fatal(err)
			}
			if got := out[1].Float32s()[0]; got != 2*n*n {
				t.Fatalf("run %d: sum %v, want %v", i, got, 2*n*n)
			}
		}
	}
	settle := func() int64 {
		goruntime.GC()
		debug.FreeOSMemory()
		return rssBytes(t)
	}
	run(50) // warm up ORT's arena and Go's heap
	before := settle()
	run(1000)
	after := settle()
	t.Logf("RSS %.1f MiB before, %.1f MiB after 1000 runs", float64(before)/(1<<20), float64(after)/(1<<20))
	if growth := after - before; growth > 64<<20 {
		t.Errorf("RSS grew by %.1f MiB over 1000 runs; something is not destroyed", float64(growth)/(1<<20))
	}
}
