package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"mohawk/tensors"
)

// raw assembles a file from a header length, header bytes and data length.
func raw(n uint64, header string, data int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, n)
	b = append(b, header...)
	return append(b, make([]byte, data)...)
}

// file assembles a well-formed prefix around header, followed by data bytes.
func file(header string, data int) []byte { return raw(uint64(len(header)), header, data) }

// writeTemp writes b to a fresh file called name and returns its path.
func writeTemp(t testing.TB, name string, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpenMalformed(t *testing.T) {
	t.Parallel()
	const w = `"layer.w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}`
	tests := []struct {
		name string
		b    []byte
		is   error
		want []string // substrings besides the path
	}{
		{"empty file", nil, ErrTruncated, []string{"has 0 bytes", "re-download"}},
		{"short length prefix", []byte{1, 2, 3}, ErrTruncated, []string{"has 3 bytes"}},
		{"header length MaxUint64", raw(math.MaxUint64, "{}", 0), ErrFormat, []string{"header length 18446744073709551615 exceeds the 100000000-byte limit"}},
		{"header length cap+1", raw(MaxHeaderSize+1, "{}", 0), ErrFormat, []string{"header length 100000001 exceeds"}},
		{"header length past the end", raw(100, "{}", 8), ErrTruncated, []string{"header length 100 exceeds the 10 bytes that follow it"}},
		{"header length 0", raw(0, "", 0), ErrFormat, []string{"header: not JSON"}},
		{"header not UTF-8", file("{\"\xff\":1}", 0), ErrFormat, []string{"not valid UTF-8"}},
		{"header not JSON", file(`{"a":`, 0), ErrFormat, []string{"header: not JSON"}},
		{"header an array", file(`[]`, 0), ErrFormat, []string{"not a JSON object"}},
		{"two JSON values", file(`{} {}`, 0), ErrFormat, []string{"after the JSON object"}},
		{"duplicate tensor", file(`{`+w+`,`+w+`}`, 8), ErrFormat, []string{`duplicate key "layer.w"`}},
		{"tensor not an object", file(`{"layer.w":3}`, 0), ErrFormat, []string{`tensor "layer.w": not a JSON object`}},
		{"unknown dtype", file(`{"layer.w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}}`, 2), ErrFormat, []string{`tensor "layer.w": unsupported dtype "F8_E4M3"`, "convert"}},
		{"dtype not a string", file(`{"layer.w":{"dtype":1,"shape":[2],"data_offsets":[0,8]}}`, 8), ErrFormat, []string{`tensor "layer.w": dtype is a number`}},
		{"missing dtype", file(`{"layer.w":{"shape":[2],"data_offsets":[0,8]}}`, 8), ErrFormat, []string{`tensor "layer.w": dtype is missing`}},
		{"missing shape", file(`{"layer.w":{"dtype":"F32","data_offsets":[0,8]}}`, 8), ErrFormat, []string{`tensor "layer.w": shape is missing`}},
		{"missing data_offsets", file(`{"layer.w":{"dtype":"F32","shape":[2]}}`, 8), ErrFormat, []string{`tensor "layer.w": data_offsets is missing`}},
		{"shape null", file(`{"layer.w":{"dtype":"F32","shape":null,"data_offsets":[0,4]}}`, 4), ErrFormat, []string{`tensor "layer.w": shape: is null, not an array`}},
		{"negative dimension", file(`{"layer.w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, 8), ErrFormat, []string{`tensor "layer.w": shape: entry 0 (-2) is negative`}},
		{"fractional dimension", file(`{"layer.w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}`, 8), ErrFormat, []string{`entry 0 (2.5) is not an integer`}},
		{"quoted dimension", file(`{"layer.w":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}`, 8), ErrFormat, []string{`shape: entry 0 is the string "2", not an integer`}},
		{"nested dimension", file(`{"layer.w":{"dtype":"F32","shape":[[2]],"data_offsets":[0,8]}}`, 8), ErrFormat, []string{`shape: entry 0 is an array, not an integer`}},
		{"too many dimensions", file(`{"layer.w":{"dtype":"F32","shape":[`+strings.Repeat("1,", 64)+`1],"data_offsets":[0,4]}}`, 4), ErrFormat, []string{`tensor "layer.w": shape: has more than 64 entries`}},
		{"dimension past int64", file(`{"layer.w":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,8]}}`, 8), ErrFormat, []string{`tensor "layer.w": shape [9223372036854775808]: dimension 0 is out of range`}},
		{"size overflow", file(`{"layer.w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}`, 8), ErrFormat, []string{`tensor "layer.w": shape [4611686018427387904,4] × 4 bytes per element overflows`}},
		{"short data_offsets", file(`{"layer.w":{"dtype":"F32","shape":[2],"data_offsets":[0]}}`, 8), ErrFormat, []string{`tensor "layer.w": data_offsets has 1 entries, want [begin, end]`}},
		{"long data_offsets", file(`{"layer.w":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}}`, 8), ErrFormat, []string{"data_offsets: has more than 2 entries"}},
		{"data_offsets not an array", file(`{"layer.w":{"dtype":"F32","shape":[2],"data_offsets":{}}}`, 8), ErrFormat, []string{"data_offsets: is an object"}},
		{"inverted data_offsets", file(`{"layer.w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}`, 8), ErrFormat, []string{`tensor "layer.w": data_offsets [8,0] ends before it begins`}},
		{"negative offset", file(`{"layer.w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}`, 8), ErrFormat, []string{`entry 0 (-8) is negative`}},
		{"offset past uint64", file(`{"layer.w":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551616]}}`, 8), ErrFormat, []string{`not an integer in [0, 2^64)`}},
		{"size mismatch", file(`{"layer.w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 4), ErrFormat, []string{`tensor "layer.w": data_offsets [0,4] span 4 bytes but F32[2] needs 8`}},
		{"overlap", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12), ErrFormat,
			[]string{`tensor "b" (bytes [4,12)) overlaps tensor "a" (bytes [0,8))`}},
		{"same range twice", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8), ErrFormat,
			[]string{`tensor "b" (bytes [0,8)) overlaps tensor "a"`}},
		{"gap", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}`, 20), ErrFormat,
			[]string{`bytes [8,12) of the data section belong to no tensor (gap before tensor "b")`}},
		{"gap at the start", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12), ErrFormat, []string{`bytes [0,4)`, `gap before tensor "a"`}},
		{"trailing bytes", file(`{`+w+`}`, 12), ErrFormat, []string{"4 trailing bytes after the last tensor (the data section has 12 bytes, the tensors cover 8)"}},
		{"trailing bytes without tensors", file(`{}`, 3), ErrFormat, []string{"3 trailing bytes"}},
		{"truncated", file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"model.layers.3.mlp.fc1.weight":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, 12), ErrTruncated,
			[]string{"truncated: tensor model.layers.3.mlp.fc1.weight needs bytes [8,16) but the data section has 12 bytes; re-download or re-save the file"}},
		{"offsets past the end of the file", file(`{"layer.w":{"dtype":"U8","shape":[1099511627776],"data_offsets":[0,1099511627776]}}`, 16), ErrTruncated,
			[]string{"tensor layer.w needs bytes [0,1099511627776) but the data section has 16 bytes"}},
		{"metadata value not a string", file(`{"__metadata__":{"format":1}}`, 0), ErrFormat, []string{`__metadata__: value of "format" is a number, not a string`}},
		{"metadata not an object", file(`{"__metadata__":[]}`, 0), ErrFormat, []string{"__metadata__: not a JSON object"}},
		{"duplicate metadata key", file(`{"__metadata__":{"a":"1","a":"2"}}`, 0), ErrFormat, []string{`__metadata__: duplicate key "a"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeTemp(t, "bad.safetensors", tc.b)
			f, err := Open(path)
			if err == nil {
				f.Close()
				t.Fatal("Open succeeded, want an error")
			}
			if !errors.Is(err, tc.is) {
				t.Errorf("error %q is not %v", err, tc.is)
			}
			if !strings.HasPrefix(err.Error(), path+": ") {
				t.Errorf("error %q does not start with the path", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestOpenAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		b      []byte
		tensor string
		shape  []int64
	}{
		{"no tensors", file(`{}`, 0), "", nil},
		{"null metadata", file(`{"__metadata__":null}`, 0), "", nil},
		{"padded header", file(`{"x":{"dtype":"I8","shape":[3],"data_offsets":[0,3]}}     `, 3), "x", []int64{3}},
		{"offsets out of order", file(`{"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]},"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, 3), "b", []int64{1}},
		{"zero-size tensors share an offset", file(`{"e":{"dtype":"F32","shape":[0,4],"data_offsets":[0,0]},"f":{"dtype":"F64","shape":[3,0],"data_offsets":[0,0]},"s":{"dtype":"I32","shape":[],"data_offsets":[0,4]}}`, 4), "s", []int64{}},
		{"unknown fields ignored", file(`{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"note":"hi"}}`, 1), "x", []int64{1}},
		{"escaped name", file(`{"a\u002eb":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 1), "a.b", []int64{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := Open(writeTemp(t, "ok.safetensors", tc.b))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if tc.tensor == "" {
				if n := f.Names(); len(n) != 0 {
					t.Fatalf("Names = %q, want none", n)
				}
				return
			}
			info, ok := f.Info(tc.tensor)
			if !ok {
				t.Fatalf("no tensor %q among %q", tc.tensor, f.Names())
			}
			if !slices.Equal(info.Shape, tc.shape) {
				t.Errorf("shape %v, want %v", info.Shape, tc.shape)
			}
			if _, err := f.Tensor(tc.tensor); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestInfoOffsets(t *testing.T) {
	t.Parallel()
	header := `{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"I32","shape":[1],"data_offsets":[2,6]}}`
	b := file(header, 6)
	copy(b[8+len(header):], []byte{1, 2, 7, 0, 0, 0})
	f, err := Open(writeTemp(t, "x.safetensors", b))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Info("b")
	want := TensorInfo{DType: tensors.Int32, Shape: []int64{1}, Offset: int64(8 + len(header) + 2), Size: 4}
	if info.DType != want.DType || !slices.Equal(info.Shape, want.Shape) || info.Offset != want.Offset || info.Size != want.Size {
		t.Errorf("Info(b) = %+v, want %+v", info, want)
	}
	if got := b[info.Offset : info.Offset+info.Size]; !bytes.Equal(got, []byte{7, 0, 0, 0}) {
		t.Errorf("bytes at Offset = %v", got)
	}
	info.Shape[0] = 99 // must not alter the file's copy
	if again, _ := f.Info("b"); again.Shape[0] != 1 {
		t.Error("Info shares its Shape with the File")
	}
	if _, ok := f.Info("nope"); ok {
		t.Error("Info(nope) ok")
	}
}

func TestTensorErrors(t *testing.T) {
	t.Parallel()
	header := `{"flag":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}}`
	b := file(header, 3)
	copy(b[8+len(header):], []byte{1, 0, 2})
	path := writeTemp(t, "flags.safetensors", b)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, tensor, want string }{
		{"bool byte out of range", "flag", path + `: invalid safetensors: tensor "flag": element 2 is byte 2, not a boolean 0 or 1`},
		{"unknown tensor", "nope", path + `: no tensor "nope"`},
	} {
		if _, err := f.Tensor(tc.tensor); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := f.Tensor("flag"); err == nil || !strings.Contains(err.Error(), `reading tensor "flag": the file is closed`) {
		t.Errorf("Tensor after Close: %v", err)
	}
}

// TestFileShrinksWhileMapped checks that a file truncated behind an open
// File yields an error, not a crash.
func TestFileShrinksWhileMapped(t *testing.T) {
	t.Parallel()
	const n = 1 << 20
	header := `{"big":{"dtype":"U8","shape":[` + strconv.Itoa(n) + `],"data_offsets":[0,` + strconv.Itoa(n) + `]}}`
	path := writeTemp(t, "shrinks.safetensors", file(header, n))
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	_, err = f.Tensor("big")
	if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), `memory fault while reading tensor "big"`) {
		t.Errorf("error %v, want a memory fault turned into ErrTruncated", err)
	}
}

func TestOpenNotRegular(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open(dir) error %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing.safetensors")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) error %v", err)
	}
}
