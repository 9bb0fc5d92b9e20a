package torchpickle

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"mohawk/internal/shareddata"
	"mohawk/safetensors"
	"mohawk/tensors"
)

// loadBytes loads a checkpoint held in memory under the name test.bin.
func loadBytes(b []byte) ([]Named, error) {
	return load("test.bin", bytes.NewReader(b), int64(len(b)))
}

func TestReferenceCheckpoint(t *testing.T) {
	t.Parallel()
	bin := shareddata.Path(t, "reference", "phimamba-random", "pytorch_model.bin")
	st := shareddata.Path(t, "reference", "phimamba-random", "model.safetensors")
	named, err := LoadOrdered(bin)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := safetensors.Open(st)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	if len(named) != len(ref.Names()) {
		t.Fatalf("%d tensors, model.safetensors has %d", len(named), len(ref.Names()))
	}
	if named[0].Name != "backbone.embedding.weight" {
		t.Errorf("first tensor is %q; the state dict starts with backbone.embedding.weight", named[0].Name)
	}
	for _, n := range named {
		want, err := ref.Tensor(n.Name)
		if err != nil {
			t.Errorf("%s: %v", n.Name, err)
			continue
		}
		if n.T.DType != want.DType || !slices.Equal(n.T.Shape, want.Shape) || !bytes.Equal(n.T.Data, want.Data) {
			t.Errorf("%s: got %v%v, safetensors has %v%v (data equal: %v)", n.Name, n.T.DType, n.T.Shape, want.DType, want.Shape, bytes.Equal(n.T.Data, want.Data))
		}
	}
	m, err := Load(bin)
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != len(named) {
		t.Errorf("Load returns %d tensors, LoadOrdered %d", len(m), len(named))
	}
}

// seq is 0, 1, ..., n-1 as float32.
func seq(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i)
	}
	return v
}

func f32(v ...float32) []byte { return le(v) }

// seqobj emits its items one after another, unwrapped.
type seqobj []obj

func (s seqobj) emit(w *pw) {
	for _, o := range s {
		o.emit(w)
	}
}

// sglobal and sstr are the protocol-4 spellings: SHORT_BINUNICODE and
// STACK_GLOBAL, memoized with MEMOIZE.
type (
	sglobal struct{ module, name string }
	sstr    string
)

func (s sstr) emit(w *pw) {
	w.op(opShortBinUni, byte(len(s)))
	w.WriteString(string(s))
	w.op(opMemoize)
}

func (g sglobal) emit(w *pw) {
	sstr(g.module).emit(w)
	sstr(g.name).emit(w)
	w.op(opStackGlobal, opMemoize)
}

// proto4 is a state dict {"w": float32 tensor of size 2×2 over storage "0"}
// written with protocol-4 opcodes inside a FRAME.
func proto4() []byte {
	w := &pw{}
	seqobj{
		sglobal{"collections", "OrderedDict"}, raw{opEmptyTuple, opReduce, opMemoize},
		sstr("w"),
		sglobal{"torch._utils", "_rebuild_tensor_v2"}, raw{opMark, opMark},
		sstr("storage"), sglobal{"torch", "FloatStorage"}, sstr("0"), sstr("cpu"), pint(4),
		raw{opTuple, opMemoize, opBinPersID},
		pint(0), raw{opBinInt1, 2, opBinInt1, 2, opTuple2, opBinInt1, 2, opBinInt1, 1, opTuple2, opNewFalse},
		sglobal{"collections", "OrderedDict"}, raw{opEmptyTuple, opReduce, opTuple, opReduce, opMemoize},
		// Harmless stack traffic: DUP then POP, MARK then POP_MARK.
		raw{opDup, opPop, opMark, opNone, opPopMark},
		raw{opSetItem},
	}.emit(w)
	body := append(w.Bytes(), opStop)
	out := []byte{opProto, 4, opFrame}
	out = binary.LittleEndian.AppendUint64(out, uint64(len(body)))
	return append(out, body...)
}

func TestLoadHandBuilt(t *testing.T) {
	t.Parallel()
	s6 := persid{"FloatStorage", "0", 6}
	s12 := persid{"FloatStorage", "0", 12}
	zero := int64(0)
	type want struct {
		name  string
		dt    tensors.DType
		shape []int64
		data  []byte
	}
	fp := func(name string, shape []int64, v ...float32) want {
		return want{name, tensors.Float32, shape, f32(v...)}
	}
	cases := []struct {
		name     string
		pkl      []byte
		storages map[string][]byte
		want     []want
	}{
		{
			name: "contiguous state dict",
			pkl: pickle(odict{
				{key: "w", val: tensor{st: s6, size: []int64{2, 3}}},
				{key: "b", val: tensor{st: persid{"FloatStorage", "1", 3}, size: []int64{3}}},
			}),
			storages: map[string][]byte{"0": f32(seq(6)...), "1": f32(7, 8, 9)},
			want:     []want{fp("w", []int64{2, 3}, seq(6)...), fp("b", []int64{3}, 7, 8, 9)},
		},
		{
			name:     "transposed",
			pkl:      pickle(odict{{key: "wT", val: tensor{st: s6, size: []int64{3, 2}, stride: []int64{1, 3}}}}),
			storages: map[string][]byte{"0": f32(seq(6)...)},
			want:     []want{fp("wT", []int64{3, 2}, 0, 3, 1, 4, 2, 5)},
		},
		{
			name: "storage offsets",
			pkl: pickle(odict{
				{key: "tail", val: tensor{st: s12, offset: 3, size: []int64{4}}},
				{key: "block", val: tensor{st: s12, offset: 5, size: []int64{2, 2}, stride: []int64{4, 1}}},
				{key: "strided", val: tensor{st: s12, offset: 1, size: []int64{2}, stride: []int64{5}}},
				{key: "scalar", val: tensor{st: s12, offset: 11, size: []int64{}}},
				{key: "empty", val: tensor{st: s12, offset: 12, size: []int64{0, 5}}},
			}),
			storages: map[string][]byte{"0": f32(seq(12)...)},
			want: []want{
				fp("tail", []int64{4}, 3, 4, 5, 6),
				fp("block", []int64{2, 2}, 5, 6, 9, 10),
				fp("strided", []int64{2}, 1, 6),
				fp("scalar", []int64{}, 11),
				fp("empty", []int64{0, 5}),
			},
		},
		{
			name: "shared storage",
			pkl: pickle(odict{
				{key: "embed", val: tensor{st: s6, size: []int64{2, 3}}},
				{key: "row1", val: tensor{st: s6, offset: 3, size: []int64{3}}},
				{key: "lm_head", val: tensor{st: s6, size: []int64{2, 3}}},
			}),
			storages: map[string][]byte{"0": f32(seq(6)...)},
			want: []want{
				fp("embed", []int64{2, 3}, seq(6)...),
				fp("row1", []int64{3}, 3, 4, 5),
				fp("lm_head", []int64{2, 3}, seq(6)...),
			},
		},
		{
			name:     "expanded",
			pkl:      pickle(odict{{key: "pos", val: tensor{st: persid{"FloatStorage", "0", 3}, size: []int64{2, 3}, stride: []int64{0, 1}}}}),
			storages: map[string][]byte{"0": f32(1, 2, 3)},
			want:     []want{fp("pos", []int64{2, 3}, 1, 2, 3, 1, 2, 3)},
		},
		{
			name: "element types",
			pkl: pickle(odict{
				{key: "f16", val: tensor{st: persid{"HalfStorage", "h", 3}, size: []int64{3}}},
				{key: "f16T", val: tensor{st: persid{"HalfStorage", "h", 3}, size: []int64{1, 3}, stride: []int64{1, 1}}},
				{key: "bf16", val: tensor{st: persid{"BFloat16Storage", "b", 2}, size: []int64{2}}},
				{key: "i64", val: tensor{st: persid{"LongStorage", "l", 2}, size: []int64{2}}},
				{key: "mask", val: tensor{st: persid{"BoolStorage", "m", 3}, size: []int64{3}}},
				{key: "f64", val: tensor{st: persid{"DoubleStorage", "d", 1}, size: []int64{1}}},
				{key: "i32", val: tensor{st: persid{"IntStorage", "i", 2}, size: []int64{2}, stride: []int64{1}}},
				{key: "i8", val: tensor{st: persid{"CharStorage", "c", 1}, size: []int64{1}}},
				{key: "u8T", val: tensor{st: persid{"ByteStorage", "u", 4}, size: []int64{2, 2}, stride: []int64{1, 2}}},
			}),
			storages: map[string][]byte{
				"h": le([]uint16{0x3c00, 0xc000, 0x7c00}),
				"b": le([]uint16{0x3f80, 0xc000}),
				"l": le([]int64{-1, 1 << 40}),
				"m": {1, 0, 1},
				"d": le([]float64{math.Pi}),
				"i": le([]int32{-7, 7}),
				"c": {0xfd},
				"u": {1, 2, 3, 4},
			},
			want: []want{
				{"f16", tensors.Float16, []int64{3}, le([]uint16{0x3c00, 0xc000, 0x7c00})},
				{"f16T", tensors.Float16, []int64{1, 3}, le([]uint16{0x3c00, 0xc000, 0x7c00})},
				{"bf16", tensors.BFloat16, []int64{2}, le([]uint16{0x3f80, 0xc000})},
				{"i64", tensors.Int64, []int64{2}, le([]int64{-1, 1 << 40})},
				{"mask", tensors.Bool, []int64{3}, []byte{1, 0, 1}},
				{"f64", tensors.Float64, []int64{1}, le([]float64{math.Pi})},
				{"i32", tensors.Int32, []int64{2}, le([]int32{-7, 7})},
				{"i8", tensors.Int8, []int64{1}, []byte{0xfd}},
				{"u8T", tensors.Uint8, []int64{2, 2}, []byte{1, 3, 2, 4}},
			},
		},
		{
			name: "nested containers",
			pkl: pickle(dict{
				{key: "model", val: odict{{key: "w", val: tensor{st: s6, size: []int64{6}}}}},
				{key: "step", val: pint(1 << 40)},
				{key: "optimizer", val: dict{
					{key: "state", val: dict{{ikey: &zero, val: dict{{key: "exp_avg", val: tensor{st: s6, offset: 4, size: []int64{2}}}}}}},
					{key: "param_groups", val: plist{dict{{key: "lr", val: pfloat(0.1)}, {key: "params", val: plist{pint(0)}}}}},
				}},
				{key: "buffers", val: plist{tensor{st: s6, size: []int64{1}}, pnone{}, ptuple{pstr("x"), tensor{st: s6, offset: 5, size: []int64{1}}}}},
			}),
			storages: map[string][]byte{"0": f32(seq(6)...)},
			want: []want{
				fp("model.w", []int64{6}, seq(6)...),
				fp("optimizer.state.0.exp_avg", []int64{2}, 4, 5),
				fp("buffers.0", []int64{1}, 0),
				fp("buffers.2.1", []int64{1}, 5),
			},
		},
		{
			name: "scalar keys",
			pkl: pickle(seqobj{
				raw{opEmptyDict, opMark, opNewTrue}, tensor{st: s6, size: []int64{1}},
				raw{opNewFalse}, tensor{st: s6, size: []int64{1}},
				pnone{}, tensor{st: s6, size: []int64{1}},
				pfloat(0.5), tensor{st: s6, size: []int64{1}},
				raw{opShortBinBytes, 1, 'k'}, tensor{st: s6, size: []int64{1}},
				pint(-3), tensor{st: s6, size: []int64{1}},
				raw{opSetItems},
			}),
			storages: map[string][]byte{"0": f32(seq(6)...)},
			want: []want{
				fp("True", []int64{1}, 0), fp("False", []int64{1}, 0), fp("None", []int64{1}, 0),
				fp("0.5", []int64{1}, 0), fp("k", []int64{1}, 0), fp("-3", []int64{1}, 0),
			},
		},
		{
			name:     "bare tensor",
			pkl:      pickle(tensor{st: s6, size: []int64{2, 3}}),
			storages: map[string][]byte{"0": f32(seq(6)...)},
			want:     []want{fp("", []int64{2, 3}, seq(6)...)},
		},
		{
			name: "parameters and rebuild variants",
			pkl: pickle(odict{
				{key: "param", val: call{"torch._utils", "_rebuild_parameter", []obj{tensor{st: s6, size: []int64{2}}, pbool(true), call{"collections", "OrderedDict", nil}}}},
				{key: "param_state", val: call{"torch._utils", "_rebuild_parameter_with_state", []obj{tensor{st: s6, size: []int64{2}}, pbool(true), call{"collections", "OrderedDict", nil}, dict{}}}},
				{key: "legacy", val: call{"torch.nn.parameter", "Parameter", []obj{tensor{st: s6, size: []int64{2}}, pbool(true)}}},
				{key: "subclass", val: call{"torch._tensor", "_rebuild_from_type_v2", []obj{
					pglobal{"torch._utils", "_rebuild_tensor_v2"}, pglobal{"torch.nn.parameter", "Parameter"},
					ptuple(tensor{st: s6, size: []int64{2}}.args()), dict{{key: "note", val: pstr("attr")}},
				}}},
				{key: "old_module", val: call{"torch.tensor", "_rebuild_from_type_v2", []obj{
					pglobal{"torch._utils", "_rebuild_tensor"}, pglobal{"torch", "Tensor"},
					ptuple(tensor{st: s6, size: []int64{2}}.args()[:4]), pnone{},
				}}},
				{key: "with_metadata", val: call{"torch._utils", "_rebuild_tensor_v2", append(tensor{st: s6, size: []int64{2}}.args(), dict{{key: "conj", val: pbool(false)}})}},
				{key: "v3_untyped", val: call{"torch._utils", "_rebuild_tensor_v3", append(tensor{st: persid{"UntypedStorage", "0", 24}, offset: 1, size: []int64{2}}.args(), pglobal{"torch", "float32"}, pnone{})}},
				{key: "built", val: seqobj{tensor{st: s6, size: []int64{2}}, dict{}, raw{opBuild}}},
				{key: "set", val: call{"__builtin__", "set", []obj{plist{pint(1)}}}},
				{key: "frozen", val: raw{opMark, opBinInt1, 1, opFrozenSet, opEmptySet, opMark, opNone, opAddItems, opPop}},
			}),
			storages: map[string][]byte{"0": f32(seq(6)...)},
			want: []want{
				fp("param", []int64{2}, 0, 1),
				fp("param_state", []int64{2}, 0, 1),
				fp("legacy", []int64{2}, 0, 1),
				fp("subclass", []int64{2}, 0, 1),
				fp("old_module", []int64{2}, 0, 1),
				fp("with_metadata", []int64{2}, 0, 1),
				fp("v3_untyped", []int64{2}, 1, 2),
				fp("built", []int64{2}, 0, 1),
			},
		},
		{
			name:     "protocol 4",
			pkl:      proto4(),
			storages: map[string][]byte{"0": f32(1, 2, 3, 4)},
			want:     []want{fp("w", []int64{2, 2}, 1, 2, 3, 4)},
		},
		{
			name: "old-style containers",
			// LIST, DICT, SHORT_BINSTRING, BINSTRING, BINBYTES, LONG4,
			// APPEND and SETITEM, as older picklers write them.
			pkl: []byte{opProto, 2, opMark,
				opShortBinString, 1, 'a', opMark, opShortBinBytes, 1, 'x', opBinBytes, 1, 0, 0, 0, 'y', opLong4, 1, 0, 0, 0, 0xff, opList,
				opBinString, 1, 0, 0, 0, 'b', opEmptyList, opNone, opAppend,
				opBinUnicode8, 1, 0, 0, 0, 0, 0, 0, 0, 'c', opEmptyDict, opBinBytes8, 1, 0, 0, 0, 0, 0, 0, 0, 'k', opNewTrue, opSetItem,
				opDict, opStop},
			want: []want{},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got, err := loadBytes(checkpoint(t, c.pkl, c.storages))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.want) {
				names := []string{}
				for _, g := range got {
					names = append(names, g.Name)
				}
				t.Fatalf("got %d tensors %q, want %d", len(got), names, len(c.want))
			}
			for i, w := range c.want {
				g := got[i]
				if g.Name != w.name || g.T.DType != w.dt || !slices.Equal(g.T.Shape, w.shape) || !bytes.Equal(g.T.Data, w.data) {
					t.Errorf("tensor %d: got %q %v%v % x, want %q %v%v % x", i, g.Name, g.T.DType, g.T.Shape, g.T.Data, w.name, w.dt, w.shape, w.data)
				}
				if err := g.T.Check(); err != nil {
					t.Errorf("%s: %v", g.Name, err)
				}
			}
		})
	}
}

// Tensors that share a storage come back with separate memory.
func TestSharedStorageCopies(t *testing.T) {
	t.Parallel()
	s := persid{"FloatStorage", "0", 4}
	pkl := pickle(odict{{key: "a", val: tensor{st: s, size: []int64{4}}}, {key: "b", val: tensor{st: s, size: []int64{4}}}})
	got, err := loadBytes(checkpoint(t, pkl, map[string][]byte{"0": f32(1, 2, 3, 4)}))
	if err != nil {
		t.Fatal(err)
	}
	got[0].T.Float32s()[0] = 42
	if v := got[1].T.Float32s()[0]; v != 1 {
		t.Fatalf("writing a changed b to %v", v)
	}
}

func TestLoadFile(t *testing.T) {
	t.Parallel()
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("a directory: %v", err)
	}
	if _, err := Load("does-not-exist.bin"); err == nil || !strings.Contains(err.Error(), "does-not-exist.bin") {
		t.Errorf("a missing file: %v", err)
	}
}

func TestHostile(t *testing.T) {
	t.Parallel()
	s6 := persid{"FloatStorage", "0", 6}
	st6 := map[string][]byte{"0": f32(seq(6)...)}
	one := func(v obj) []byte { return pickle(odict{{key: "w", val: v}}) }
	ckpt := func(pkl []byte) func(t *testing.T) []byte {
		return func(t *testing.T) []byte { return checkpoint(t, pkl, st6) }
	}
	valid := one(tensor{st: s6, size: []int64{6}})
	nested := []byte{opProto, 2}
	for range 2000 {
		nested = append(nested, opMark)
	}
	// d = {}; d["x"] = d
	cycle := []byte{opProto, 2, opEmptyDict, opBinPut, 0, opShortBinUni, 1, 'x', opBinGet, 0, opSetItem, opStop}
	// Thirty levels of {"a": x, "b": x} over an empty dict: 2³⁰ paths.
	dag := &pw{}
	dict{}.emit(dag)
	dag.op(opPop)
	for range 30 {
		id := dag.memo - 1
		dag.op(opEmptyDict, opMark, opShortBinUni, 1, 'a', opLongBinGet)
		binary.Write(dag, binary.LittleEndian, uint32(id))
		dag.op(opShortBinUni, 1, 'b', opLongBinGet)
		binary.Write(dag, binary.LittleEndian, uint32(id))
		dag.op(opSetItems)
		dag.put()
		dag.op(opPop)
	}
	dag.op(opLongBinGet)
	binary.Write(dag, binary.LittleEndian, uint32(dag.memo-1))
	dagPkl := append([]byte{opProto, 2}, append(dag.Bytes(), opStop)...)

	// One empty tensor repeated by DUP: two thousand entries from a byte each.
	dups := &pw{}
	dups.op(opProto, 2, opMark)
	tensor{st: s6, size: []int64{0}}.emit(dups)
	for range 2000 {
		dups.op(opDup)
	}
	dups.op(opList, opStop)
	// A dict of 5000 scalars listed 5000 times: 25 million items to look at.
	wide := &pw{}
	wide.op(opProto, 2, opMark, opEmptyDict, opMark)
	for i := range 5000 {
		wide.int(int64(i))
		wide.op(opNone)
	}
	wide.op(opSetItems)
	for range 5000 {
		wide.op(opDup)
	}
	wide.op(opList, opStop)
	// A 60 kB key reused as the key of 100 nested dicts: a 6 MB name.
	long := &pw{}
	get := func(id int) {
		long.op(opLongBinGet)
		binary.Write(long, binary.LittleEndian, uint32(id))
	}
	long.op(opProto, 2)
	tensor{st: s6, size: []int64{1}}.emit(long)
	prev := long.memo - 1
	pstr(strings.Repeat("k", 60000)).emit(long)
	key := long.memo - 1
	long.op(opPop, opPop)
	for range 100 {
		long.op(opEmptyDict)
		get(key)
		get(prev)
		long.op(opSetItem)
		long.put()
		prev = long.memo - 1
		long.op(opPop)
	}
	get(prev)
	long.op(opStop)

	cases := []struct {
		name string
		file func(t *testing.T) []byte
		kind error
		want []string // substrings of the message, besides test.bin
	}{
		{"GLOBAL os.system", ckpt(pickle(call{"os", "system", []obj{pstr("echo pwned")}})), ErrRefused,
			[]string{"archive/data.pkl", "refers to os.system, which a weights file never needs; refusing to load it"}},
		{"STACK_GLOBAL os.system", ckpt(append(append([]byte{opProto, 4}, func() []byte {
			w := &pw{}
			sglobal{"os", "system"}.emit(w)
			return w.Bytes()
		}()...), opStop)), ErrRefused, []string{"os.system", "refusing"}},
		{"builtins eval", ckpt(pickle(call{"__builtin__", "eval", []obj{pstr("1")}})), ErrRefused, []string{"__builtin__.eval"}},
		{"hostile global name", ckpt(pickle(pglobal{"os\x1b[2J", "system"})), ErrRefused, []string{`"os\x1b[2J.system"`}},
		{"whole module", ckpt(pickle(call{"torch.nn.modules.linear", "Linear", nil})), ErrRefused, []string{"torch.nn.modules.linear.Linear", "state_dict()"}},
		{"int16 storage", ckpt(one(tensor{st: persid{"ShortStorage", "0", 6}, size: []int64{6}})), ErrUnsupported, []string{"torch.ShortStorage"}},
		{"complex dtype", ckpt(pickle(pglobal{"torch", "complex64"})), ErrUnsupported, []string{"torch.complex64"}},
		{"sparse tensor", ckpt(pickle(pglobal{"torch._utils", "_rebuild_sparse_tensor"})), ErrUnsupported, []string{"_rebuild_sparse_tensor"}},
		{"size past storage", ckpt(one(tensor{st: s6, size: []int64{2, 4}})), ErrFormat,
			[]string{`tensor "w"`, "zip member archive/data/0", "reach past the 24 bytes"}},
		{"stride past storage", ckpt(one(tensor{st: s6, size: []int64{3, 2}, stride: []int64{1, 4}})), ErrFormat, []string{`tensor "w"`, "reach past"}},
		{"offset past storage", ckpt(one(tensor{st: s6, offset: 5, size: []int64{2}})), ErrFormat, []string{"reach past"}},
		{"stride overflow", ckpt(one(tensor{st: s6, size: []int64{3}, stride: []int64{math.MaxInt64 / 2}})), ErrFormat, []string{"reach past"}},
		{"numel overflow", ckpt(one(tensor{st: s6, size: []int64{1 << 40, 1 << 40}, stride: []int64{0, 0}})), ErrFormat, []string{"more elements than fit in 64 bits"}},
		{"negative size", ckpt(one(tensor{st: s6, size: []int64{-1}, stride: []int64{1}})), ErrFormat, []string{"negative"}},
		{"negative offset", ckpt(one(tensor{st: s6, offset: -1, size: []int64{1}})), ErrFormat, []string{"negative storage offset"}},
		{"expansion bomb", ckpt(one(tensor{st: s6, size: []int64{1 << 20, 1 << 20}, stride: []int64{0, 0}})), ErrFormat, []string{"left to this file"}},
		{"huge declared storage", ckpt(one(tensor{st: persid{"FloatStorage", "0", 1 << 61}, size: []int64{6}})), ErrFormat,
			[]string{"storage \"0\" declares 2305843009213693952 float32 elements", "archive/data/0"}},
		{"storage overflow", ckpt(one(tensor{st: persid{"DoubleStorage", "0", math.MaxInt64 / 4}, size: []int64{1}})), ErrFormat, []string{"declares"}},
		{"missing storage", func(t *testing.T) []byte { return checkpoint(t, valid, nil) }, ErrFormat, []string{"zip member archive/data/0 is missing"}},
		{"storage key with slash", ckpt(one(tensor{st: persid{"FloatStorage", "../data.pkl", 1}, size: []int64{1}})), ErrFormat, []string{"storage key"}},
		{"truncated data.pkl", ckpt(valid[:len(valid)/2]), ErrFormat, []string{"archive/data.pkl", "ends"}},
		{"empty data.pkl", ckpt(nil), ErrFormat, []string{"without a STOP"}},
		{"deeply nested MARKs", ckpt(nested), ErrFormat, []string{"nested more than 1000 deep"}},
		{"huge string", ckpt([]byte{opProto, 2, opBinUnicode, 0xff, 0xff, 0xff, 0xff, 'x', opStop}), ErrFormat, []string{"runs past the end"}},
		{"huge string8", ckpt([]byte{opProto, 4, opBinUnicode8, 0, 0, 0, 0, 0, 0, 0, 0x80, opStop}), ErrFormat, []string{"runs past the end"}},
		{"huge frame", ckpt([]byte{opProto, 4, opFrame, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, opStop}), ErrFormat, []string{"FRAME"}},
		{"negative BINSTRING", ckpt([]byte{opProto, 2, opBinString, 0xff, 0xff, 0xff, 0xff, opStop}), ErrFormat, []string{"negative"}},
		{"wide integer", ckpt([]byte{opProto, 2, opLong1, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, opStop}), ErrFormat, []string{"64 bits"}},
		{"long GLOBAL line", ckpt(append([]byte{opProto, 2, opGlobal}, bytes.Repeat([]byte{'a'}, 1000)...)), ErrFormat, []string{"longer than 256"}},
		{"unknown memo", ckpt([]byte{opProto, 2, opBinGet, 7, opStop}), ErrFormat, []string{"memo entry 7"}},
		{"stack underflow", ckpt([]byte{opProto, 2, opReduce, opStop}), ErrFormat, []string{"stack underflow"}},
		{"leftovers at STOP", ckpt([]byte{opProto, 2, opNone, opNone, opStop}), ErrFormat, []string{"leaves 1 values"}},
		{"not an opcode", ckpt([]byte{opProto, 2, 0xff}), ErrFormat, []string{"0xff is not a pickle opcode"}},
		{"INST", ckpt([]byte{opProto, 2, 'i', 'o', 's', '\n'}), ErrUnsupported, []string{"INST"}},
		{"newer protocol", ckpt([]byte{opProto, 9, opStop}), ErrFormat, []string{"protocol 9"}},
		{"call of a non-callable", ckpt([]byte{opProto, 2, opNone, opEmptyTuple, opReduce, opStop}), ErrFormat, []string{"not callable"}},
		{"storage class called", ckpt(pickle(call{"torch", "FloatStorage", nil})), ErrFormat, []string{"torch.FloatStorage: cannot be called"}},
		{"APPEND to a dict", ckpt([]byte{opProto, 2, opEmptyDict, opNone, opAppend, opStop}), ErrFormat, []string{"APPEND to a dict"}},
		{"SETITEM on a list", ckpt([]byte{opProto, 2, opEmptyList, opNone, opNone, opSetItem, opStop}), ErrFormat, []string{"SETITEM on a list"}},
		{"odd SETITEMS", ckpt([]byte{opProto, 2, opEmptyDict, opMark, opNone, opSetItems, opStop}), ErrFormat, []string{"do not pair"}},
		{"unhashable key", ckpt([]byte{opProto, 2, opEmptyDict, opEmptyList, opNone, opSetItem, opStop}), ErrFormat, []string{"dict key of type list"}},
		{"BUILD on a list", ckpt([]byte{opProto, 2, opEmptyList, opNone, opBuild, opStop}), ErrFormat, []string{"BUILD on a list"}},
		{"bad persistent id", ckpt([]byte{opProto, 2, opNone, opBinPersID, opStop}), ErrFormat, []string{"persistent id is a None"}},
		{"wrong rebuild arguments", ckpt(pickle(call{"torch._utils", "_rebuild_tensor_v2", []obj{pnone{}}})), ErrFormat, []string{"_rebuild_tensor_v2: takes 6 to 7 arguments"}},
		{"conj bit", ckpt(one(call{"torch._utils", "_rebuild_tensor_v2", append(tensor{st: s6, size: []int64{1}}.args(), dict{{key: "conj", val: pbool(true)}})})), ErrUnsupported, []string{"conj"}},
		{"dict containing itself", ckpt(cycle), ErrFormat, []string{`dict at "x" contains itself`}},
		{"exponential sharing", ckpt(dagPkl), ErrFormat, []string{"visits more than"}},
		{"shared wide dict", ckpt(wide.Bytes()), ErrFormat, []string{"visits more than"}},
		{"too many tensors", ckpt(dups.Bytes()), ErrFormat, []string{"more than 602 tensors in a 2152-byte data.pkl"}},
		{"long names", ckpt(long.Bytes()), ErrFormat, []string{"names total more than"}},
		{"colliding names", ckpt(pickle(odict{{key: "a.b", val: tensor{st: s6, size: []int64{1}}}, {key: "a", val: dict{{key: "b", val: tensor{st: s6, size: []int64{1}}}}}})), ErrFormat,
			[]string{`two tensors are named "a.b"`}},
		{"bool byte", func(t *testing.T) []byte {
			return checkpoint(t, one(tensor{st: persid{"BoolStorage", "0", 2}, size: []int64{2}}), map[string][]byte{"0": {1, 2}})
		}, ErrFormat, []string{"byte 2, not 0 or 1"}},
		{"parent-relative member", func(t *testing.T) []byte { return checkpoint(t, valid, st6, member{name: "../evil"}) }, ErrFormat, []string{`"../evil"`}},
		{"nested parent-relative member", func(t *testing.T) []byte { return checkpoint(t, valid, st6, member{name: `archive\..\..\evil`}) }, ErrFormat, []string{"parent-relative"}},
		{"absolute member", func(t *testing.T) []byte { return checkpoint(t, valid, st6, member{name: "/etc/passwd"}) }, ErrFormat, []string{`"/etc/passwd"`}},
		{"drive letter member", func(t *testing.T) []byte { return checkpoint(t, valid, st6, member{name: "C:/evil"}) }, ErrFormat, []string{`"C:/evil"`}},
		{"duplicate member", func(t *testing.T) []byte {
			return checkpoint(t, valid, st6, member{name: "archive/data/0", data: f32(seq(6)...)})
		}, ErrFormat, []string{"appears twice"}},
		{"two data.pkl", func(t *testing.T) []byte {
			return checkpoint(t, valid, st6, member{name: "other/data.pkl", data: valid})
		}, ErrFormat, []string{"2 data.pkl members"}},
		{"no data.pkl", func(t *testing.T) []byte { return zipOf(t, member{name: "archive/data/0", data: f32(1)}) }, ErrFormat, []string{"no <archive>/data.pkl"}},
		{"compressed storage", func(t *testing.T) []byte {
			return zipOf(t, member{name: "archive/data.pkl", data: valid}, member{name: "archive/data/0", data: f32(seq(6)...), method: 8})
		}, ErrUnsupported, []string{"zip member archive/data/0 is compressed"}},
		{"encrypted storage", func(t *testing.T) []byte {
			return zipOf(t, member{name: "archive/data.pkl", data: valid}, member{name: "archive/data/0", data: f32(seq(6)...), flags: 1})
		}, ErrUnsupported, []string{"zip member archive/data/0 is encrypted"}},
		{"big-endian", func(t *testing.T) []byte {
			return zipOf(t, member{name: "archive/data.pkl", data: valid}, member{name: "archive/byteorder", data: []byte("big")}, member{name: "archive/data/0", data: f32(seq(6)...)})
		}, ErrUnsupported, []string{"big-endian"}},
		{"odd byteorder", func(t *testing.T) []byte {
			return zipOf(t, member{name: "archive/data.pkl", data: valid}, member{name: "archive/byteorder", data: []byte("middle")})
		}, ErrFormat, []string{`says "middle"`}},
		{"corrupt storage", func(t *testing.T) []byte {
			b := checkpoint(t, valid, st6)
			b[bytes.Index(b, f32(seq(6)...))+7] ^= 1
			return b
		}, ErrFormat, []string{"zip member archive/data/0 fails its CRC-32 check"}},
		{"corrupt data.pkl", func(t *testing.T) []byte {
			b := checkpoint(t, valid, st6)
			b[bytes.Index(b, []byte("_rebuild_tensor_v2"))] ^= 1
			return b
		}, ErrFormat, []string{"archive/data.pkl fails its CRC-32 check"}},
		{"member past the end", func(t *testing.T) []byte {
			b := checkpoint(t, valid, st6)
			// Point the central directory's size of data/0 far past the file.
			i := bytes.LastIndex(b, []byte("archive/data/0")) - 46 + 20
			binary.LittleEndian.PutUint32(b[i:], 1<<30)
			binary.LittleEndian.PutUint32(b[i+4:], 1<<30)
			return b
		}, ErrFormat, []string{"past the end of the"}},
		{"garbage", func(t *testing.T) []byte { return []byte("this is not a checkpoint at all, just words") }, ErrFormat, []string{"not a zip archive"}},
		{"truncated zip", func(t *testing.T) []byte { b := checkpoint(t, valid, st6); return b[:len(b)-30] }, ErrFormat, []string{"not a zip archive"}},
		{"safetensors", func(t *testing.T) []byte { return []byte("\x02\x00\x00\x00\x00\x00\x00\x00{}") }, ErrFormat, []string{"looks like a safetensors file"}},
		{"legacy format", func(t *testing.T) []byte { return valid }, ErrUnsupported, []string{"legacy torch.save format"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := loadBytes(c.file(t))
			if err == nil {
				t.Fatal("loaded without error")
			}
			if !errors.Is(err, c.kind) {
				t.Errorf("error is not %v: %v", c.kind, err)
			}
			for _, s := range append([]string{"test.bin: "}, c.want...) {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error lacks %q: %v", s, err)
				}
			}
		})
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r *bytes.Reader
	n int64
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	return n, err
}

// Many strided views of one large storage read it once, not once each.
func TestStridedViewsReadStorageOnce(t *testing.T) {
	t.Parallel()
	const n = 1 << 14
	big := persid{"FloatStorage", "0", n}
	var entries odict
	for i := range 200 {
		entries = append(entries, kv{key: "v" + strconv.Itoa(i), val: tensor{st: big, offset: int64(i), size: []int64{2}, stride: []int64{n - 200}}})
	}
	b := checkpoint(t, pickle(entries), map[string][]byte{"0": f32(seq(n)...)})
	r := &countingReader{r: bytes.NewReader(b)}
	named, err := load("test.bin", r, int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if got := named[199].T.Float32s(); got[0] != 199 || got[1] != n-1 {
		t.Fatalf("last view is %v", got)
	}
	if r.n > 2*int64(len(b)) {
		t.Fatalf("read %d bytes of a %d-byte file", r.n, len(b))
	}
}
