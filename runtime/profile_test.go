package runtime

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "mohawk/export/onnxpb"
	"mohawk/tensors"
)

// TestProfile profiles a two-node session into runtime.profile_dir and
// summarizes the trace ORT writes when the session closes.
func TestProfile(t *testing.T) {
	needORT(t)
	dir := t.TempDir()
	env, err := Open(Config{ProfileDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	model := modelBytes(t,
		[]*pb.NodeProto{node("MatMul", []string{"a", "b"}, []string{"c"}), node("Relu", []string{"c"}, []string{"r"})},
		[]*pb.ValueInfoProto{vi("a", tensors.Float32, 64, 64), vi("b", tensors.Float32, 64, 64)},
		[]*pb.ValueInfoProto{vi("r", tensors.Float32, 64, 64)})
	s, err := env.NewSession("profiled/session", model, []string{"a", "b"}, []string{"r"})
	if err != nil {
		t.Fatal(err)
	}
	x := tensors.Zeros(tensors.Float32, 64, 64)
	for i := 0; i < 3; i++ {
		if _, err := s.Run([]*tensors.Tensor{x, x}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "profiled_session*.json"))
	if len(files) != 1 {
		entries, _ := os.ReadDir(dir)
		t.Fatalf("want one profile named after the session, the folder has %v", entries)
	}
	prof, err := SummarizeProfile(files[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	share := 0.0
	for _, o := range prof.Ops {
		calls[o.Op] += o.Calls
		share += o.Share
		if o.Provider != "CPU" {
			t.Errorf("%s ran on %q", o.Op, o.Provider)
		}
	}
	if calls["MatMul"] < 3 || calls["Relu"] < 3 || share < 0.999 || share > 1.001 {
		t.Errorf("summary %+v: want MatMul and Relu at least 3 calls each, shares summing to 1", prof.Ops)
	}
	// 64×64 float32: MatMul reads two and writes one matrix per call.
	for _, o := range prof.Ops {
		if o.Op == "MatMul" && o.Bytes != int64(o.Calls)*3*64*64*4 {
			t.Errorf("MatMul bytes %d over %d calls, want 3·16 KiB each", o.Bytes, o.Calls)
		}
	}
	if prof.Runs != 3 || len(prof.Nodes) != 2 || prof.Nodes[0].Calls != 3 || !strings.Contains(prof.Nodes[0].Outputs, "64,64") {
		t.Errorf("runs %d, nodes %+v: want 3 runs and two nodes of 3 calls with [64,64] outputs", prof.Runs, prof.Nodes)
	}
	// One group per node here: MatMul's two [64,64] inputs and its output.
	if len(prof.Shapes) != 2 || prof.Shapes[0].Calls != 3 {
		t.Errorf("shape groups %+v: want two of 3 calls", prof.Shapes)
	}
	for _, g := range prof.Shapes {
		if g.Op == "MatMul" && g.Shapes != "float:[64,64] float:[64,64] → float:[64,64]" {
			t.Errorf("MatMul group shapes %q", g.Shapes)
		}
	}
	// Skipping the warm-up run leaves two calls per node; skipping all runs is an error.
	warm, err := SummarizeProfile(files[0], 1)
	if err != nil || warm.Nodes[0].Calls != 2 || warm.Skipped != 1 {
		t.Errorf("skip 1: %+v, %v: want 2 calls per node", warm, err)
	}
	if _, err := SummarizeProfile(files[0], 3); err == nil || !strings.Contains(err.Error(), "3 model runs") {
		t.Errorf("skipping every run: %v", err)
	}

	if tl := prof.Timeline; tl.HostMillis <= 0 || tl.WaitMillis < 0 || tl.HostMillis+tl.WaitMillis > tl.RunMillis*1.001 {
		t.Errorf("timeline %+v: want host time in nodes plus the final wait within the run", tl)
	}

	// Bad input: not a profile, and a profile folder that does not exist.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("{}"), 0o644)
	if _, err := SummarizeProfile(bad, 0); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("summarizing a non-profile: %v", err)
	}
	if err := (Config{ProfileDir: filepath.Join(dir, "missing")}).Validate(); err == nil || !strings.Contains(err.Error(), "runtime.profile_dir") {
		t.Errorf("missing profile folder: %v", err)
	}
}

// TestProfileTimeline checks the host timeline on a hand-made trace: run 1
// spans 0–100 µs with nodes 10–30 and 40–70 (host 50, wait 30); run 2 spans
// 200–250 with one node 210–220 (host 10, wait 30); a Loop node's own time
// is not host time in nodes.
func TestProfileTimeline(t *testing.T) {
	node := func(ts, dur float64, op string) string {
		return fmt.Sprintf(`{"cat":"Node","name":"n%v_kernel_time","ts":%v,"dur":%v,"args":{"op_name":%q,"provider":"CUDAExecutionProvider"}}`, ts, ts, dur, op)
	}
	events := []string{
		`{"cat":"Session","name":"model_run","ts":0,"dur":100}`, node(10, 20, "Add"), node(40, 30, "Mul"), node(5, 80, "Loop"),
		`{"cat":"Session","name":"model_run","ts":200,"dur":50}`, node(210, 10, "Add"),
	}
	path := filepath.Join(t.TempDir(), "trace.json")
	if err := os.WriteFile(path, []byte("["+strings.Join(events, ",")+"]"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		skip            int
		run, host, wait float64 // ms per run
	}{
		{0, 0.075, 0.030, 0.030},
		{1, 0.050, 0.010, 0.030},
	} {
		p, err := SummarizeProfile(path, c.skip)
		if err != nil {
			t.Fatal(err)
		}
		got := p.Timeline
		if !(math.Abs(got.RunMillis-c.run) <= 1e-12) || !(math.Abs(got.HostMillis-c.host) <= 1e-12) || !(math.Abs(got.WaitMillis-c.wait) <= 1e-12) {
			t.Errorf("skip %d: timeline %+v, want run %v host %v wait %v ms", c.skip, got, c.run, c.host, c.wait)
		}
	}
}
