package torchpickle

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"testing"
)

// pw writes pickle opcodes the way CPython's protocol-2 pickler does when
// torch.save calls it, memoizing every value it writes with BINPUT or
// LONG_BINPUT.
type pw struct {
	bytes.Buffer
	memo int
}

func (w *pw) op(b ...byte) *pw { w.Write(b); return w }

func (w *pw) put() {
	if w.memo < 256 {
		w.op(opBinPut, byte(w.memo))
	} else {
		w.op(opLongBinPut)
		binary.Write(w, binary.LittleEndian, uint32(w.memo))
	}
	w.memo++
}

func (w *pw) global(module, name string) {
	w.op(opGlobal)
	w.WriteString(module + "\n" + name + "\n")
	w.put()
}

func (w *pw) str(s string) {
	w.op(opBinUnicode)
	binary.Write(w, binary.LittleEndian, uint32(len(s)))
	w.WriteString(s)
	w.put()
}

func (w *pw) int(n int64) {
	switch {
	case n >= 0 && n < 1<<8:
		w.op(opBinInt1, byte(n))
	case n >= 0 && n < 1<<16:
		w.op(opBinInt2, byte(n), byte(n>>8))
	case n >= math.MinInt32 && n <= math.MaxInt32:
		w.op(opBinInt)
		binary.Write(w, binary.LittleEndian, int32(n))
	default:
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(n))
		w.op(opLong1, 8)
		w.Write(b[:])
	}
}

// tuple writes items as CPython does: EMPTY_TUPLE, TUPLE1-3, or MARK ...
// TUPLE, memoized unless empty.
func (w *pw) tuple(items ...obj) {
	if len(items) == 0 {
		w.op(opEmptyTuple)
		return
	}
	if len(items) > 3 {
		w.op(opMark)
	}
	for _, it := range items {
		it.emit(w)
	}
	if len(items) > 3 {
		w.op(opTuple)
	} else {
		w.op(opTuple1 + byte(len(items)-1))
	}
	w.put()
}

// obj is a Python value the writer can emit.
type obj interface{ emit(*pw) }

type (
	pint   int64
	pfloat float64
	pstr   string
	pbool  bool
	pnone  struct{}
	// ptuple is a tuple of values.
	ptuple []obj
	// plist is a list, written with EMPTY_LIST and APPENDS.
	plist []obj
	// kv is one dict entry; key is a str unless ikey is set.
	kv struct {
		key  string
		ikey *int64
		val  obj
	}
	// odict is a collections.OrderedDict, written as torch.save writes a
	// state dict: OrderedDict() REDUCE, SETITEMS, then BUILD with the
	// _metadata attribute.
	odict []kv
	// dict is a plain dict.
	dict []kv
	// pglobal is a bare reference to a global.
	pglobal struct{ module, name string }
	// call is REDUCE of a global with arguments.
	call struct {
		module, name string
		args         []obj
	}
	// raw is verbatim opcodes.
	raw []byte
)

func (v pint) emit(w *pw)    { w.int(int64(v)) }
func (v pstr) emit(w *pw)    { w.str(string(v)) }
func (v pnone) emit(w *pw)   { w.op(opNone) }
func (v raw) emit(w *pw)     { w.Write(v) }
func (v ptuple) emit(w *pw)  { w.tuple(v...) }
func (v pglobal) emit(w *pw) { w.global(v.module, v.name) }

func (v pfloat) emit(w *pw) {
	w.op(opBinFloat)
	binary.Write(w, binary.BigEndian, math.Float64bits(float64(v)))
}

func (v pbool) emit(w *pw) {
	if v {
		w.op(opNewTrue)
	} else {
		w.op(opNewFalse)
	}
}

func (v plist) emit(w *pw) {
	w.op(opEmptyList)
	w.put()
	if len(v) == 0 {
		return
	}
	w.op(opMark)
	for _, it := range v {
		it.emit(w)
	}
	w.op(opAppends)
}

func (v call) emit(w *pw) {
	w.global(v.module, v.name)
	w.tuple(v.args...)
	w.op(opReduce)
	w.put()
}

func emitItems(w *pw, items []kv) {
	if len(items) == 0 {
		return
	}
	w.op(opMark)
	for _, e := range items {
		if e.ikey != nil {
			w.int(*e.ikey)
		} else {
			w.str(e.key)
		}
		e.val.emit(w)
	}
	w.op(opSetItems)
}

func (v dict) emit(w *pw) {
	w.op(opEmptyDict)
	w.put()
	emitItems(w, v)
}

func (v odict) emit(w *pw) {
	call{"collections", "OrderedDict", nil}.emit(w)
	emitItems(w, v)
	// state_dict()._metadata, as torch.save leaves it.
	dict{{key: "_metadata", val: call{"collections", "OrderedDict", nil}}}.emit(w)
	w.op(opBuild)
}

// persid is the persistent id torch.save writes for a storage.
type persid struct {
	class string // e.g. FloatStorage
	key   string
	numel int64
}

func (p persid) emit(w *pw) {
	ptuple{pstr("storage"), pglobal{"torch", p.class}, pstr(p.key), pstr("cpu"), pint(p.numel)}.emit(w)
	w.op(opBinPersID)
}

// tensor is torch._utils._rebuild_tensor_v2 of a storage view, exactly as
// torch.save writes it.
type tensor struct {
	st     persid
	offset int64
	size   []int64
	stride []int64 // row-major when nil
}

func ints(v []int64) ptuple {
	t := ptuple{}
	for _, x := range v {
		t = append(t, pint(x))
	}
	return t
}

func rowMajor(size []int64) []int64 {
	s := make([]int64, len(size))
	n := int64(1)
	for i := len(size) - 1; i >= 0; i-- {
		s[i] = n
		n *= size[i]
	}
	return s
}

// args are _rebuild_tensor_v2's arguments but for the trailing metadata.
func (t tensor) args() []obj {
	stride := t.stride
	if stride == nil {
		stride = rowMajor(t.size)
	}
	return []obj{t.st, pint(t.offset), ints(t.size), ints(stride), pbool(false), call{"collections", "OrderedDict", nil}}
}

func (t tensor) emit(w *pw) { call{"torch._utils", "_rebuild_tensor_v2", t.args()}.emit(w) }

// pickle returns the protocol-2 pickle of v.
func pickle(v obj) []byte {
	w := &pw{}
	w.op(opProto, 2)
	v.emit(w)
	w.op(opStop)
	return w.Bytes()
}

// member is one zip entry.
type member struct {
	name string
	data []byte
	// method is zip.Store unless set; flags are ORed into the header.
	method uint16
	flags  uint16
}

// checkpoint writes a zip laid out as torch.save lays it out: data.pkl,
// byteorder, the storages under data/, version; extra members come last.
func checkpoint(t testing.TB, pkl []byte, storages map[string][]byte, extra ...member) []byte {
	t.Helper()
	ms := []member{{name: "archive/data.pkl", data: pkl}, {name: "archive/byteorder", data: []byte("little")}}
	keys := make([]string, 0, len(storages))
	for k := range storages {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		ms = append(ms, member{name: "archive/data/" + k, data: storages[k]})
	}
	ms = append(ms, member{name: "archive/version", data: []byte("3\n")})
	return zipOf(t, append(ms, extra...)...)
}

func zipOf(t testing.TB, ms ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, m := range ms {
		fh := &zip.FileHeader{Name: m.name, Method: m.method}
		f, err := zw.CreateHeader(fh)
		if err != nil {
			t.Fatal(err)
		}
		fh.Flags |= m.flags // CreateHeader has set its own flags; add these to the central directory
		if _, err := f.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// le encodes values little-endian.
func le(vs any) []byte {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.LittleEndian, vs); err != nil {
		panic(err)
	}
	return b.Bytes()
}
