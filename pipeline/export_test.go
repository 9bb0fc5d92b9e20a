package pipeline

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"mohawk/deploy"
	"mohawk/export"
	"mohawk/export/onnxpb"
	"mohawk/internal/shareddata"
	"mohawk/internal/strict"
	"mohawk/runtime"
	"mohawk/tensors"
)

// TestPlainTeacherExport exports phi-tiny-en as a plain input_ids → logits
// model of standard ONNX ops, runs it with ONNX Runtime alone and compares
// the logits with transformers' reference within 1e-4.
func TestPlainTeacherExport(t *testing.T) {
	model := shareddata.Path(t, "reference", "phi-tiny-en")
	ref := shareddata.Tensors(t, "reference", "phi-tiny-en", "reference.safetensors")
	for _, o := range []deploy.Options{{}, {FP16: true}} {
		out := t.TempDir()
		if err := ExportPlainTeacher(model, out, o); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{export.ModelFile, "config.json", "tokenizer.json"} {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Fatal(err)
			}
		}
		// Standard ONNX only (no ONNX Runtime contrib domain), for any runtime.
		data, err := os.ReadFile(filepath.Join(out, export.ModelFile))
		if err != nil {
			t.Fatal(err)
		}
		var m onnxpb.ModelProto
		if err := proto.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		for _, imp := range m.OpsetImport {
			if imp.Domain != "" {
				t.Errorf("plain export imports domain %q", imp.Domain)
			}
		}
		rt, err := runtime.Open(runtime.Defaults(), nil)
		if err != nil {
			strict.Unavailable(t, "needs ONNX Runtime: %v", err)
		}
		s, err := rt.NewSessionFromFile("plain", filepath.Join(out, export.ModelFile), []string{"input_ids"}, []string{"logits"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.Run([]*tensors.Tensor{ref["input_ids"]})
		s.Close()
		rt.Close()
		if err != nil {
			t.Fatal(err)
		}
		// fp16 storage of fp16 checkpoint weights is exact, so both match.
		if d := shareddata.MaxAbsDiff(got[0], ref["logits"]); !(d <= 1e-4) {
			t.Errorf("fp16 %v: logits differ from transformers by %.3g", o.FP16, d)
		} else {
			t.Logf("fp16 %v: max |Δ logits| = %.3g", o.FP16, d)
		}
	}
}
