package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"mohawk/internal/shareddata"
	"mohawk/runtime"
	"mohawk/safetensors"
	"mohawk/tensors"
)

func TestCheckTokenIDs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ids  []int64 // [2, 3]
		want string  // "" for no error
	}{
		{"bounds", []int64{0, 1, 9, 9, 0, 5}, ""},
		{"negative", []int64{0, 1, 2, 3, -1, 5}, "x[1][1] is token id -1, outside the model's vocabulary [0, 10) (L); 1 of 6 ids"},
		{"vocab size itself", []int64{10, 1, 2, 3, 4, 5}, "x[0][0] is token id 10, outside the model's vocabulary [0, 10) (L); 1 of 6 ids"},
		{"first of several", []int64{0, 1, 2, 1 << 40, -5, 10}, "x[1][0] is token id 1099511627776, outside the model's vocabulary [0, 10) (L); 3 of 6 ids"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := checkTokenIDs(tensors.FromInt64([]int64{2, 3}, tt.ids), 10, "x", "L")
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v\nwant an error containing %q", err, tt.want)
			}
		})
	}
}

// TestGradsRefusesOutOfRangeIDs feeds grads ids the teacher has no
// embedding row for: ONNX Runtime's Gather would wrap -1 to the last row
// and fail on 8192 with an error naming no file.
func TestGradsRefusesOutOfRangeIDs(t *testing.T) {
	t.Parallel()
	model := shareddata.Path(t, "reference", "phi-tiny-en")
	for _, id := range []int64{-1, 8192} {
		in := filepath.Join(t.TempDir(), "ids.safetensors")
		if err := safetensors.Write(in, []safetensors.Named{{Name: "input_ids", T: tensors.FromInt64([]int64{1, 4}, []int64{5, 7, id, 9})}}, nil); err != nil {
			t.Fatal(err)
		}
		_, err := Grads(context.Background(), model, in, filepath.Join(t.TempDir(), "g.safetensors"), runtime.Config{}, nil)
		for _, want := range []string{in + ": input_ids[0][2] is token id " + strconv.FormatInt(id, 10), "[0, 8192)", filepath.Join(model, "config.json")} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("id %d: got %v\nwant an error containing %q", id, err, want)
			}
		}
	}
}

// TestTokenizerBeyondEmbeddingRows gives a model a tokenizer.json whose
// added token has an id past the embedding rows: eval and validate must
// refuse the pair, naming the id and the rows.
func TestTokenizerBeyondEmbeddingRows(t *testing.T) {
	t.Parallel()
	dir := copyDir(t, shareddata.Path(t, "reference", "phi-tiny-en"))
	tj := filepath.Join(dir, "tokenizer.json")
	b, err := os.ReadFile(tj)
	if err != nil {
		t.Fatal(err)
	}
	extra := `{"id": 8195, "content": "<|extra|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}, `
	b = []byte(strings.Replace(string(b), `"added_tokens": [`, `"added_tokens": [`+extra, 1))
	if err := os.WriteFile(tj, b, 0o644); err != nil {
		t.Fatal(err)
	}
	want := "tokenizer " + tj + ` has ids up to 8195 ("<|extra|>") but `
	_, err = EvalPerplexity(context.Background(), EvalOptions{Model: dir, Data: filepath.Join(demoDir(t), "val.txt"), SeqLen: 16, Windows: 1})
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "8192 embedding rows") {
		t.Errorf("eval: got %v\nwant an error containing %q and the rows", err, want)
	}
	cfg, path := tinyConfig(t, "  - {kind: eval}", "teacher: {path: "+dir+"}")
	err = Validate(cfg, path)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("validate: got %v\nwant an error containing %q", err, want)
	}
}
