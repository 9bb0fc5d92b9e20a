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
	ops, err := SummarizeProfile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	share := 0.0
	for _, o := range ops {
		calls[o.Op] += o.Calls
		share += o.Share
		if o.Provider != "CPU" {
			t.Errorf("%s ran on %q", o.Op, o.Provider)
		}
	}
	if calls["MatMul"] < 3 || calls["Relu"] < 3 || share < 0.999 || share > 1.001 {
		t.Errorf("summary %+v: want MatMul and Relu at least 3 calls each, shares summing to 1", ops)
	}

	// Bad input: not a profile, and a profile folder that does not exist.
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("{}"), 0o644)
	if _, err := SummarizeProfile(bad); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("summarizing a non-profile: %v", err)
	}
	if err := (Config{ProfileDir: filepath.Join(dir, "missing")}).Validate(); err == nil || !strings.Contains(err.Error(), "runtime.profile_dir") {
		t.Errorf("missing profile folder: %v", err)
	}
}
