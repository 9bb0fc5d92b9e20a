package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mohawk/tensors"
)

const (
	shard1 = "model-00001-of-00002.safetensors"
	shard2 = "model-00002-of-00002.safetensors"
)

// checkpoint writes a two-shard checkpoint into a fresh directory and
// returns it with the tensors it holds.
func checkpoint(t *testing.T) (string, map[string]*tensors.Tensor) {
	t.Helper()
	dir := t.TempDir()
	want := map[string]*tensors.Tensor{
		"a": patterned(tensors.Float16, 1, 2, 3),
		"b": patterned(tensors.Float32, 2, 4),
		"c": patterned(tensors.Int64, 3, 2),
	}
	write := func(name string, names ...string) {
		var ts []Named
		for _, n := range names {
			ts = append(ts, Named{n, want[n]})
		}
		if err := Write(filepath.Join(dir, name), ts, map[string]string{"format": "pt"}); err != nil {
			t.Fatal(err)
		}
	}
	write(shard1, "a", "b")
	write(shard2, "c")
	writeIndex(t, dir, map[string]string{"a": shard1, "b": shard1, "c": shard2})
	return dir, want
}

func writeIndex(t *testing.T, dir string, weightMap map[string]string) {
	t.Helper()
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 44}, "weight_map": weightMap})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, IndexFileName), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSetSharded(t *testing.T) {
	t.Parallel()
	dir, want := checkpoint(t)
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := strings.Join(s.Names(), ","); got != "a,b,c" {
		t.Errorf("Names = %s", got)
	}
	if !s.Has("c") || s.Has("d") {
		t.Errorf("Has(c) = %v, Has(d) = %v", s.Has("c"), s.Has("d"))
	}
	if len(s.files) != 0 {
		t.Errorf("%d shards mapped before any tensor was read", len(s.files))
	}
	info, err := s.Info("c")
	if err != nil {
		t.Fatal(err)
	}
	if info.DType != tensors.Int64 || !slices.Equal(info.Shape, []int64{2}) || info.Size != 16 {
		t.Errorf("Info(c) = %+v", info)
	}
	if len(s.files) != 1 || s.files[shard2] == nil {
		t.Errorf("mapped shards %v, want only %s", s.files, shard2)
	}
	for name, w := range want {
		got, err := s.Tensor(name)
		if err != nil {
			t.Fatal(err)
		}
		if got.DType != w.DType || !slices.Equal(got.Shape, w.Shape) || !bytes.Equal(got.Data, w.Data) {
			t.Errorf("%s differs from what was written", name)
		}
	}
	if _, err := s.Tensor("d"); err == nil || !strings.Contains(err.Error(), `no tensor "d"`) {
		t.Errorf("Tensor(d): %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Tensor("a"); err == nil || !strings.Contains(err.Error(), "the checkpoint is closed") {
		t.Errorf("Tensor after Close: %v", err)
	}
}

func TestOpenFileOrDir(t *testing.T) {
	t.Parallel()
	dir, _ := checkpoint(t)
	single := filepath.Join(t.TempDir(), "one.safetensors")
	if err := Write(single, []Named{{"x", patterned(tensors.Uint8, 0, 3)}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, names string }{
		{dir, "a,b,c"},
		{filepath.Join(dir, IndexFileName), "a,b,c"},
		{filepath.Join(dir, shard2), "c"},
		{single, "x"},
	} {
		s, err := OpenFileOrDir(tc.path)
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		if got := strings.Join(s.Names(), ","); got != tc.names {
			t.Errorf("%s: Names = %s, want %s", tc.path, got, tc.names)
		}
		for _, n := range s.Names() {
			if _, err := s.Tensor(n); err != nil {
				t.Error(err)
			}
		}
		s.Close()
	}
	if _, err := OpenFileOrDir(filepath.Join(dir, "nope")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing path: %v", err)
	}
}

func TestOpenDirPrefersSingleFile(t *testing.T) {
	t.Parallel()
	dir, _ := checkpoint(t)
	if err := Write(filepath.Join(dir, SingleFileName), []Named{{"only", patterned(tensors.Int8, 0, 1)}}, nil); err != nil {
		t.Fatal(err)
	}
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := strings.Join(s.Names(), ","); got != "only" {
		t.Errorf("Names = %s, want only", got)
	}
}

func TestSymlinkInsideDirAccepted(t *testing.T) {
	t.Parallel()
	dir, want := checkpoint(t)
	if err := os.Mkdir(filepath.Join(dir, "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, shard2), filepath.Join(dir, "blobs", "c0ffee")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("blobs", "c0ffee"), filepath.Join(dir, shard2)); err != nil {
		t.Fatal(err)
	}
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Tensor("c")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Data, want["c"].Data) {
		t.Error("tensor c differs")
	}
}

func TestSetErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string) // changes the checkpoint
		open  bool                           // the error comes from Tensor("c"), not OpenDir
		is    error
		want  []string
	}{
		{"empty directory", func(t *testing.T, dir string) {
			for _, n := range []string{IndexFileName, shard1, shard2} {
				os.Remove(filepath.Join(dir, n))
			}
		}, false, nil, []string{"holds neither model.safetensors nor model.safetensors.index.json"}},
		{"missing shard", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, shard2))
		}, false, fs.ErrNotExist, []string{IndexFileName, "shard " + shard2 + " is missing", "it should hold tensor c", "download it again"}},
		{"dangling symlink", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, shard2))
			os.Symlink("gone.safetensors", filepath.Join(dir, shard2))
		}, false, fs.ErrNotExist, []string{"shard " + shard2 + " is missing"}},
		{"absolute shard path", func(t *testing.T, dir string) {
			writeIndex(t, dir, map[string]string{"a": shard1, "c": filepath.Join(dir, shard2)})
		}, false, ErrFormat, []string{`weight_map puts tensor "c" in "/`, "must be relative"}},
		{"dot-dot shard path", func(t *testing.T, dir string) {
			writeIndex(t, dir, map[string]string{"a": shard1, "c": "../" + shard2})
		}, false, ErrFormat, []string{`tensor "c" in "../` + shard2 + `"`}},
		{"shard path climbing through a subdirectory", func(t *testing.T, dir string) {
			writeIndex(t, dir, map[string]string{"a": shard1, "c": "sub/../../x.safetensors"})
		}, false, ErrFormat, []string{`"sub/../../x.safetensors", which is not a file name inside`}},
		{"backslash shard path", func(t *testing.T, dir string) {
			writeIndex(t, dir, map[string]string{"a": shard1, "c": `..\x.safetensors`})
		}, false, ErrFormat, []string{`"..\\x.safetensors"`}},
		{"empty shard path", func(t *testing.T, dir string) {
			writeIndex(t, dir, map[string]string{"c": ""})
		}, false, ErrFormat, []string{`tensor "c" in ""`}},
		{"symlink escaping the directory", func(t *testing.T, dir string) {
			outside := filepath.Join(t.TempDir(), "elsewhere.safetensors")
			os.Rename(filepath.Join(dir, shard2), outside)
			os.Symlink(outside, filepath.Join(dir, shard2))
		}, false, ErrFormat, []string{"shard " + shard2 + " resolves to", "elsewhere.safetensors, outside", "copy them there"}},
		{"index not JSON", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"weight_map":`), 0o644)
		}, false, ErrFormat, []string{IndexFileName, "not JSON", "re-download the index"}},
		{"weight_map missing", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"metadata":{}}`), 0o644)
		}, false, ErrFormat, []string{"weight_map is missing or empty"}},
		{"weight_map entry not a string", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, IndexFileName), []byte(`{"weight_map":{"a":1}}`), 0o644)
		}, false, ErrFormat, []string{`weight_map: the entry for "a" is a number, not a shard file name`}},
		{"shard lacks a listed tensor", func(t *testing.T, dir string) {
			writeIndex(t, dir, map[string]string{"a": shard1, "c": shard1})
		}, true, ErrFormat, []string{`the index puts tensor "c" in ` + shard1 + `, but that shard does not hold it`}},
		{"malformed shard", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, shard2), file(`{"c":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}`, 8), 0o644)
		}, true, ErrTruncated, []string{shard2 + ": truncated: tensor c needs bytes [0,16) but the data section has 8 bytes"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir, _ := checkpoint(t)
			tc.setup(t, dir)
			s, err := OpenDir(dir)
			if tc.open {
				if err != nil {
					t.Fatalf("OpenDir: %v", err)
				}
				defer s.Close()
				_, err = s.Tensor("c")
			} else if err == nil {
				s.Close()
			}
			if err == nil {
				t.Fatal("no error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			if !strings.HasPrefix(err.Error(), dir) {
				t.Errorf("error %q does not start with the checkpoint directory", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestSetConcurrent reads from many goroutines while the set is closed
// under them: every read must either succeed with the right data or report
// that the checkpoint is closed.
func TestSetConcurrent(t *testing.T) {
	t.Parallel()
	dir, want := checkpoint(t)
	s, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 50; i++ {
				for name, w := range want {
					got, err := s.Tensor(name)
					if err != nil {
						if !strings.Contains(err.Error(), "closed") {
							errs <- err
							return
						}
						continue
					}
					if !bytes.Equal(got.Data, w.Data) {
						errs <- errors.New(name + " differs")
						return
					}
				}
			}
			errs <- nil
		}()
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
	for g := 0; g < 8; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
