package torchpickle

import (
	"testing"
)

// fuzzStorages back the pickles of FuzzPickle: one storage per element
// type, under the keys the seeds use.
var fuzzStorages = map[string][]byte{
	"0": f32(seq(16)...),
	"h": le([]uint16{0x3c00, 0xc000, 0x7c00, 0}),
	"b": le([]uint16{0x3f80, 0xc000}),
	"l": le([]int64{-1, 1 << 40}),
	"m": {1, 0, 1, 1},
}

// fuzzPickles are seed pickles: what torch.save writes, in its variants.
func fuzzPickles() [][]byte {
	s16 := persid{"FloatStorage", "0", 16}
	return [][]byte{
		pickle(odict{
			{key: "w", val: tensor{st: s16, size: []int64{4, 4}}},
			{key: "wT", val: tensor{st: s16, size: []int64{4, 4}, stride: []int64{1, 4}}},
			{key: "tail", val: tensor{st: s16, offset: 13, size: []int64{3}}},
			{key: "pos", val: tensor{st: s16, size: []int64{2, 4}, stride: []int64{0, 1}}},
			{key: "f16", val: tensor{st: persid{"HalfStorage", "h", 4}, size: []int64{2, 2}, stride: []int64{1, 2}}},
			{key: "bf16", val: tensor{st: persid{"BFloat16Storage", "b", 2}, size: []int64{2}}},
			{key: "ids", val: tensor{st: persid{"LongStorage", "l", 2}, size: []int64{2}}},
			{key: "mask", val: tensor{st: persid{"BoolStorage", "m", 4}, size: []int64{4}}},
		}),
		pickle(dict{
			{key: "model", val: odict{{key: "w", val: call{"torch._utils", "_rebuild_parameter", []obj{tensor{st: s16, size: []int64{16}}, pbool(true), call{"collections", "OrderedDict", nil}}}}}},
			{key: "optimizer", val: dict{{key: "param_groups", val: plist{dict{{key: "lr", val: pfloat(1e-3)}}}}}},
			{key: "list", val: plist{tensor{st: s16, size: []int64{}}, pnone{}}},
		}),
		pickle(call{"torch._tensor", "_rebuild_from_type_v2", []obj{
			pglobal{"torch._utils", "_rebuild_tensor_v3"}, pglobal{"torch", "Tensor"},
			ptuple(append(tensor{st: persid{"UntypedStorage", "0", 64}, size: []int64{4}}.args(), pglobal{"torch", "float32"})), dict{},
		}}),
		proto4(),
	}
}

// checkAccepted verifies what a load accepted: unique names and tensors
// whose data matches their dtype and shape.
func checkAccepted(t *testing.T, named []Named) {
	seen := map[string]bool{}
	for _, n := range named {
		if seen[n.Name] {
			t.Fatalf("name %q returned twice", n.Name)
		}
		seen[n.Name] = true
		if err := n.T.Check(); err != nil {
			t.Fatalf("%q: %v", n.Name, err)
		}
	}
}

// FuzzLoad feeds arbitrary bytes, as a whole file, to the loader.
func FuzzLoad(f *testing.F) {
	for _, p := range fuzzPickles() {
		f.Add(checkpoint(f, p, fuzzStorages))
	}
	f.Add(zipOf(f, member{name: "archive/data.pkl", data: fuzzPickles()[0]}, member{name: "archive/data/0", data: f32(seq(16)...), method: 8}))
	f.Add([]byte("PK\x05\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		named, err := loadBytes(b)
		if err == nil {
			checkAccepted(t, named)
		}
	})
}

// FuzzPickle feeds arbitrary bytes as data.pkl of an otherwise valid
// checkpoint, so that mutations reach the pickle machine and the tensor
// checks rather than the zip reader.
func FuzzPickle(f *testing.F) {
	for _, p := range fuzzPickles() {
		f.Add(p)
	}
	f.Add([]byte{opProto, 2, opMark, opMark, opMark, opEmptyDict, opBinPut, 0, opBinGet, 0, opBinGet, 0, opSetItem, opStop})
	f.Fuzz(func(t *testing.T, pkl []byte) {
		named, err := loadBytes(checkpoint(t, pkl, fuzzStorages))
		if err == nil {
			checkAccepted(t, named)
		}
	})
}
