package safetensors

import (
	"mohawk/internal/sharedpath"
	"slices"

	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"mohawk/tensors"
)

// referenceDir returns the shared phi-tiny-en checkpoint or skips.
func referenceDir(t *testing.T) string {
	t.Helper()
	return sharedpath.Path(t, "reference", "phi-tiny-en")
}

func TestReferenceCheckpoint(t *testing.T) {
	t.Parallel()
	dir := referenceDir(t)
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	idx, err := os.ReadFile(filepath.Join(dir, IndexFileName))
	if err != nil {
		t.Fatal(err)
	}
	var index struct {
		Metadata struct {
			TotalSize int64 `json:"total_size"`
		}
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(idx, &index); err != nil {
		t.Fatal(err)
	}
	if len(s.Names()) != len(index.WeightMap) {
		t.Errorf("%d tensors, the index lists %d", len(s.Names()), len(index.WeightMap))
	}
	var total int64
	for _, name := range s.Names() {
		info, err := s.Info(name)
		if err != nil {
			t.Fatal(err)
		}
		if info.DType != tensors.Float16 {
			t.Errorf("%s is %v, want float16", name, info.DType)
		}
		total += info.Size
	}
	if total != index.Metadata.TotalSize {
		t.Errorf("tensors hold %d bytes, the index's total_size is %d", total, index.Metadata.TotalSize)
	}
	for _, tc := range []struct {
		name  string
		shape []int64
	}{
		{"model.embed_tokens.weight", []int64{8192, 256}},
		{"model.layers.3.mlp.fc1.weight", []int64{1024, 256}},
		{"model.layers.5.self_attn.dense.bias", []int64{256}},
		{"lm_head.weight", []int64{8192, 256}},
	} {
		info, err := s.Info(tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(info.Shape, tc.shape) {
			t.Errorf("%s: shape %v, want %v", tc.name, info.Shape, tc.shape)
		}
	}
	embed, err := s.Tensor("model.embed_tokens.weight")
	if err != nil {
		t.Fatal(err)
	}

	ref, err := Open(filepath.Join(dir, "reference.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	want := map[string][]int64{
		"input_ids": {2, 48},
		"logits":    {2, 48, 8192},
		"loss":      {1},
	}
	for i := 0; i <= 6; i++ {
		want["hidden_states."+strconv.Itoa(i)] = []int64{2, 48, 256}
	}
	for i := 0; i <= 5; i++ {
		want["attentions."+strconv.Itoa(i)] = []int64{2, 8, 48, 48}
	}
	grads := 0
	for _, name := range ref.Names() {
		if len(name) > 5 && name[:5] == "grad." {
			grads++
			if !s.Has(name[5:]) {
				t.Errorf("%s is the gradient of no checkpoint tensor", name)
			}
		}
	}
	if grads == 0 {
		t.Error("no grad.* tensors")
	}
	for name, shape := range want {
		info, ok := ref.Info(name)
		if !ok {
			t.Fatalf("reference.safetensors lacks %s", name)
		}
		wantDT := tensors.Float32
		if name == "input_ids" {
			wantDT = tensors.Int64
		}
		if info.DType != wantDT || !slices.Equal(info.Shape, shape) {
			t.Errorf("%s: %v%v, want %v%v", name, info.DType, info.Shape, wantDT, shape)
		}
	}

	// The data itself: hidden_states.0 is the embedding of input_ids, so
	// float16 embedding rows must widen exactly to it; attention rows are
	// softmax outputs and sum to 1.
	ids := mustTensor(t, ref, "input_ids").Int64s()
	h0 := mustTensor(t, ref, "hidden_states.0").Float32s()
	rows := embed.AsFloat32().Float32s()
	for i, id := range ids {
		if id < 0 || id >= 8192 {
			t.Fatalf("input_ids[%d] = %d is out of the vocabulary", i, id)
		}
		for j := 0; j < 256; j++ {
			if got, w := h0[i*256+j], rows[int(id)*256+j]; got != w {
				t.Fatalf("hidden_states.0[%d][%d] = %v, embedding row %d has %v", i, j, got, id, w)
			}
		}
	}
	att := mustTensor(t, ref, "attentions.0").Float32s()
	for r := 0; r < len(att)/48; r++ {
		var sum float64
		for _, v := range att[r*48 : (r+1)*48] {
			sum += float64(v)
		}
		if !(math.Abs(sum-1) <= 1e-4) {
			t.Fatalf("attention row %d sums to %v", r, sum)
		}
	}
	if loss := mustTensor(t, ref, "loss").Float32s()[0]; !(loss > 0) || math.IsInf(float64(loss), 0) {
		t.Errorf("loss = %v", loss)
	}
}

func mustTensor(t *testing.T, f *File, name string) *tensors.Tensor {
	t.Helper()
	x, err := f.Tensor(name)
	if err != nil {
		t.Fatal(err)
	}
	return x
}
