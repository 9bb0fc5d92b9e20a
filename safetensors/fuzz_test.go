package safetensors

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"mohawk/tensors"
)

// FuzzOpen feeds arbitrary bytes to Open. Whatever the input, Open must not
// panic or allocate from unchecked sizes; whatever it accepts must read back
// completely and survive a Write/Open round trip unchanged.
func FuzzOpen(f *testing.F) {
	valid := filepath.Join(f.TempDir(), "valid.safetensors")
	err := Write(valid, []Named{
		{"w", patterned(tensors.Float16, 1, 2, 3)},
		{"ids", patterned(tensors.Int64, 2, 2)},
		{"mask", patterned(tensors.Bool, 0, 3)},
		{"scalar", patterned(tensors.Float32, 3)},
		{"empty", patterned(tensors.BFloat16, 0, 0, 4)},
	}, map[string]string{"format": "pt"})
	if err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(valid)
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{
		b,
		file(`{}`, 0),
		file(`{"__metadata__":{"k":"v"}}   `, 0),
		raw(math.MaxUint64, `{}`, 0),
		raw(0, ``, 0),
		raw(MaxHeaderSize+1, `{}`, 0),
		raw(64, `{}`, 0),
		file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}`, 8),
		file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}`, 8),
		file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, 12),
		file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}`, 20),
		file(`{"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}}`, 8),
		file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 12),
		file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 4),
		file(`{"a":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}}`, 2),
	} {
		f.Add(seed)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		tmp, err := os.CreateTemp(dir, "in-*.safetensors")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(tmp.Name())
		_, err = tmp.Write(b)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatal(err)
		}
		sf, err := Open(tmp.Name())
		if err != nil {
			return
		}
		defer sf.Close()
		var infos []NamedInfo
		var ts []*tensors.Tensor
		for _, name := range sf.Names() {
			info, ok := sf.Info(name)
			if !ok {
				t.Fatalf("Names lists %q but Info does not know it", name)
			}
			tt, err := sf.Tensor(name)
			if err != nil {
				if info.DType == tensors.Bool {
					return // invalid boolean bytes are reported, not written back
				}
				t.Fatalf("Tensor(%q): %v", name, err)
			}
			if int64(len(tt.Data)) != info.Size || tt.Check() != nil {
				t.Fatalf("Tensor(%q) has %d bytes, Info says %d", name, len(tt.Data), info.Size)
			}
			if !bytes.Equal(tt.Data, b[info.Offset:info.Offset+info.Size]) {
				t.Fatalf("Tensor(%q) differs from the file bytes at Offset", name)
			}
			infos = append(infos, NamedInfo{name, tt.DType, tt.Shape})
			ts = append(ts, tt)
		}

		// Write what was read (in memory: Write's fsyncs would dominate the
		// fuzzer's time) and parse it again.
		header, sizes, err := encodeHeader(infos, sf.Metadata())
		if err != nil {
			t.Fatalf("encoding what Open accepted: %v", err)
		}
		var out bytes.Buffer
		if err := writeBody(&out, header, infos, sizes, func(i int) (*tensors.Tensor, error) { return ts[i], nil }); err != nil {
			t.Fatal(err)
		}
		again, err := parse("round trip", out.Bytes())
		if err != nil {
			t.Fatalf("parsing what Write produces: %v", err)
		}
		for i, info := range infos {
			got, err := again.Tensor(info.Name)
			if err != nil {
				t.Fatal(err)
			}
			if got.DType != info.DType || !slices.Equal(got.Shape, info.Shape) || !bytes.Equal(got.Data, ts[i].Data) {
				t.Fatalf("%q changed in the round trip", info.Name)
			}
		}
		m1, m2 := sf.Metadata(), again.Metadata()
		if len(m1) != len(m2) {
			t.Fatalf("metadata %q became %q", m1, m2)
		}
		for k, v := range m1 {
			if m2[k] != v {
				t.Fatalf("metadata %q became %q", m1, m2)
			}
		}
	})
}
