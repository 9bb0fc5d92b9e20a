package runtime

import (
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
