package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"mohawk/tensors"
)

// patterned returns a tensor whose bytes are a recognisable pattern (0/1
// for bool, so the data stays valid).
func patterned(dt tensors.DType, seed byte, shape ...int64) *tensors.Tensor {
	t := tensors.Zeros(dt, shape...)
	for i := range t.Data {
		if dt == tensors.Bool {
			t.Data[i] = byte(i+int(seed)) & 1
		} else {
			t.Data[i] = byte(i*7) + seed
		}
	}
	return t
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	dtypes := []tensors.DType{tensors.Float32, tensors.Float16, tensors.BFloat16, tensors.Float64, tensors.Int64, tensors.Int32, tensors.Int8, tensors.Uint8, tensors.Bool}
	shapes := [][]int64{{}, {3}, {2, 3}, {1, 2, 5}, {0}, {4, 0, 2}}
	for _, dt := range dtypes {
		t.Run(dt.String(), func(t *testing.T) {
			t.Parallel()
			var ts []Named
			for i, s := range shapes {
				ts = append(ts, Named{Name: "t" + string(rune('a'+i)) + "." + dt.String(), T: patterned(dt, byte(i), s...)})
			}
			meta := map[string]string{"format": "pt", "dtype": dt.String(), "quote\"<&>": "ünïcode"}
			path := filepath.Join(t.TempDir(), "rt.safetensors")
			if err := Write(path, ts, meta); err != nil {
				t.Fatal(err)
			}
			first, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if n := binary.LittleEndian.Uint64(first); n%8 != 0 {
				t.Errorf("header length %d is not a multiple of 8", n)
			}
			if err := Write(path, ts, meta); err != nil {
				t.Fatal(err)
			}
			if second, _ := os.ReadFile(path); !bytes.Equal(first, second) {
				t.Error("writing the same tensors twice gave different bytes")
			}

			f, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if got := f.Metadata(); len(got) != len(meta) || got["quote\"<&>"] != "ünïcode" || got["dtype"] != dt.String() {
				t.Errorf("Metadata = %q, want %q", got, meta)
			}
			if len(f.Names()) != len(ts) {
				t.Errorf("Names = %q", f.Names())
			}
			for _, n := range ts {
				got, err := f.Tensor(n.Name)
				if err != nil {
					t.Fatal(err)
				}
				if got.DType != dt || !slices.Equal(got.Shape, n.T.Shape) || !bytes.Equal(got.Data, n.T.Data) {
					t.Errorf("%s: read %v%v %v, wrote %v%v %v", n.Name, got.DType, got.Shape, got.Data, dt, n.T.Shape, n.T.Data)
				}
				if err := got.Check(); err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestWriteLayout(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "layout.safetensors")
	ts := []Named{
		{"z", tensors.FromFloat32([]int64{2}, []float32{1, 2})},
		{"a<b>", tensors.FromInt64(nil, []int64{-1})},
	}
	if err := Write(path, ts, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wantHeader := `{"__metadata__":{"format":"pt"},"z":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a<b>":{"dtype":"I64","shape":[],"data_offsets":[8,16]}}`
	for len(wantHeader)%8 != 0 {
		wantHeader += " "
	}
	var want bytes.Buffer
	want.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(wantHeader))))
	want.WriteString(wantHeader)
	want.Write(ts[0].T.Data)
	want.Write(ts[1].T.Data)
	if !bytes.Equal(b, want.Bytes()) {
		t.Errorf("file is\n%q\nwant\n%q", b, want.Bytes())
	}
}

func TestWriteRejects(t *testing.T) {
	t.Parallel()
	ok := tensors.FromFloat32([]int64{2}, []float32{1, 2})
	tests := []struct {
		name string
		ts   []Named
		meta map[string]string
		want string
	}{
		{"nil tensor", []Named{{"w", nil}}, nil, `tensor "w" is nil`},
		{"data length mismatch", []Named{{"w", &tensors.Tensor{DType: tensors.Float32, Shape: []int64{3}, Data: make([]byte, 8)}}}, nil, `tensor "w": float32[3] needs 12 bytes, has 8`},
		{"invalid dtype", []Named{{"w", &tensors.Tensor{DType: 99, Shape: []int64{1}}}}, nil, `tensor "w": invalid dtype`},
		{"duplicate name", []Named{{"w", ok}, {"w", ok}}, nil, `tensor "w" appears twice`},
		{"reserved name", []Named{{"__metadata__", ok}}, nil, "cannot be named __metadata__"},
		{"name not UTF-8", []Named{{"w\xff", ok}}, nil, `tensor name "w\xff": not valid UTF-8`},
		{"metadata not UTF-8", nil, map[string]string{"k": "\xfe"}, `metadata value of "k": not valid UTF-8`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "out.safetensors")
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := Write(path, tc.ts, tc.meta)
			if err == nil || !strings.Contains(err.Error(), path+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %s: ...%s...", err, path, tc.want)
			}
			assertOnly(t, dir, path, "old")
		})
	}
}

// assertOnly checks that dir holds nothing but path, with the given content.
func assertOnly(t *testing.T, dir, path, content string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != filepath.Base(path) {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want only %s", names, filepath.Base(path))
	}
	if b, _ := os.ReadFile(path); string(b) != content {
		t.Errorf("%s holds %q, want %q", path, b, content)
	}
}

func TestWriteStream(t *testing.T) {
	t.Parallel()
	infos := []NamedInfo{
		{"a", tensors.Float16, []int64{2, 2}},
		{"b", tensors.Int32, []int64{3}},
	}
	produce := func(i int) (*tensors.Tensor, error) {
		return patterned(infos[i].DType, byte(i), infos[i].Shape...), nil
	}
	t.Run("ok", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "s.safetensors")
		calls := 0
		err := WriteStream(path, infos, nil, func(i int) (*tensors.Tensor, error) {
			if i != calls {
				t.Errorf("producer called for %d, want %d", i, calls)
			}
			calls++
			return produce(i)
		})
		if err != nil {
			t.Fatal(err)
		}
		f, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for i, info := range infos {
			got, err := f.Tensor(info.Name)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := produce(i)
			if !bytes.Equal(got.Data, want.Data) {
				t.Errorf("%s: %v, want %v", info.Name, got.Data, want.Data)
			}
		}
		if f.Metadata() != nil {
			t.Errorf("Metadata = %v, want nil", f.Metadata())
		}
	})

	boom := errors.New("boom")
	tests := []struct {
		name  string
		infos []NamedInfo
		next  func(int) (*tensors.Tensor, error)
		want  string
	}{
		{"producer fails", infos, func(i int) (*tensors.Tensor, error) {
			if i == 1 {
				return nil, boom
			}
			return produce(i)
		}, `producing tensor "b": boom`},
		{"producer returns nil", infos, func(int) (*tensors.Tensor, error) { return nil, nil }, `tensor "a": the producer returned nil`},
		{"wrong dtype", infos, func(i int) (*tensors.Tensor, error) { return patterned(tensors.Float32, 0, 2, 2), nil }, `tensor "a" is float32[2 2] but was declared float16[2 2]`},
		{"wrong shape", infos, func(i int) (*tensors.Tensor, error) { return patterned(tensors.Float16, 0, 4), nil }, `tensor "a" is float16[4] but was declared float16[2 2]`},
		{"short data", infos, func(i int) (*tensors.Tensor, error) {
			return &tensors.Tensor{DType: tensors.Float16, Shape: []int64{2, 2}, Data: make([]byte, 6)}, nil
		}, `tensor "a": float16[2 2] needs 8 bytes but holds 6`},
		{"invalid dtype", []NamedInfo{{"x", tensors.Invalid, []int64{1}}}, produce, `tensor "x": dtype dtype(0) has no safetensors equivalent`},
		{"negative dimension", []NamedInfo{{"x", tensors.Uint8, []int64{-1}}}, produce, `tensor "x": negative dimension`},
		{"size overflow", []NamedInfo{{"x", tensors.Float64, []int64{1 << 61, 2}}}, produce, `tensor "x": shape [2305843009213693952 2] overflows`},
		{"total overflow", []NamedInfo{{"x", tensors.Uint8, []int64{1 << 62}}, {"y", tensors.Uint8, []int64{1 << 62}}}, produce, `tensor "y": the data section would exceed 2^63 bytes`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "s.safetensors")
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := WriteStream(path, tc.infos, nil, tc.next)
			if err == nil || !strings.Contains(err.Error(), path+": ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %s: ...%s...", err, path, tc.want)
			}
			if tc.name == "producer fails" && !errors.Is(err, boom) {
				t.Errorf("error %v does not wrap the producer's", err)
			}
			assertOnly(t, dir, path, "old")
		})
	}
}

func TestWriteReplacesAtomically(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, []Named{{"w", patterned(tensors.Uint8, 1, 4)}}, nil); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	if err := Write(filepath.Join(dir, "no-such-dir", "m.safetensors"), nil, nil); err == nil || !strings.Contains(err.Error(), "creating a temporary file next to it") {
		t.Errorf("writing into a missing directory: %v", err)
	}
}
