package torchpickle

import (
	"fmt"
	"strconv"
	"strings"

	"mohawk/tensors"
)

// maxRank bounds a tensor's number of dimensions; PyTorch allows 64.
const maxRank = 64

type globalKind int

const (
	kindOrderedDict globalKind = iota
	kindSet
	kindRebuildTensor
	kindRebuildTensorV2
	kindRebuildTensorV3
	kindRebuildParameter
	kindRebuildParameterWithState
	kindRebuildFromType
	kindParameter
	kindTensorClass
	kindStorage
	kindDType
)

// global is an allow-listed Python global: a function or class that this
// package implements in Go, or a storage class or dtype standing for an
// element type.
type global struct {
	name  string // as Python spells it, for messages
	kind  globalKind
	dtype tensors.DType // for kindStorage and kindDType
}

// allowed is every global a checkpoint may name, by module.name.
var allowed = func() map[string]*global {
	m := map[string]*global{}
	add := func(name string, kind globalKind, dt tensors.DType) {
		m[name] = &global{name: name, kind: kind, dtype: dt}
	}
	add("collections.OrderedDict", kindOrderedDict, 0)
	add("builtins.set", kindSet, 0)
	add("builtins.frozenset", kindSet, 0)
	add("torch._utils._rebuild_tensor", kindRebuildTensor, 0)
	add("torch._utils._rebuild_tensor_v2", kindRebuildTensorV2, 0)
	add("torch._utils._rebuild_tensor_v3", kindRebuildTensorV3, 0)
	add("torch._utils._rebuild_parameter", kindRebuildParameter, 0)
	add("torch._utils._rebuild_parameter_with_state", kindRebuildParameterWithState, 0)
	add("torch._tensor._rebuild_from_type_v2", kindRebuildFromType, 0)
	add("torch.nn.parameter.Parameter", kindParameter, 0)
	add("torch.Tensor", kindTensorClass, 0)
	for _, t := range []struct {
		storage, dtype string
		dt             tensors.DType
	}{
		{"FloatStorage", "float32", tensors.Float32},
		{"DoubleStorage", "float64", tensors.Float64},
		{"HalfStorage", "float16", tensors.Float16},
		{"BFloat16Storage", "bfloat16", tensors.BFloat16},
		{"LongStorage", "int64", tensors.Int64},
		{"IntStorage", "int32", tensors.Int32},
		{"CharStorage", "int8", tensors.Int8},
		{"ByteStorage", "uint8", tensors.Uint8},
		{"BoolStorage", "bool", tensors.Bool},
	} {
		add("torch."+t.storage, kindStorage, t.dt)
		add("torch."+t.dtype, kindDType, t.dt)
	}
	// An untyped storage counts bytes; torch.load reads it as uint8.
	add("torch.UntypedStorage", kindStorage, tensors.Uint8)
	return m
}()

// moduleAliases maps module names that older writers and pickle protocol 2
// use to the ones in allowed.
var moduleAliases = map[string]string{
	"__builtin__":  "builtins",
	"torch.tensor": "torch._tensor",
}

// resolveGlobal returns the allow-listed global module.name or an error
// naming it.
func resolveGlobal(module, name string) (*global, error) {
	canon := module
	if a, ok := moduleAliases[module]; ok {
		canon = a
	}
	if g, ok := allowed[canon+"."+name]; ok {
		return g, nil
	}
	full := printable(module + "." + name)
	switch {
	case canon == "torch" && (strings.HasSuffix(name, "Storage") || isDTypeName(name)):
		return nil, fmt.Errorf("%w: the pickle refers to %s, an element type mohawk/tensors does not have; convert the checkpoint to float32, float16, bfloat16, float64, int64, int32, int8, uint8 or bool", ErrUnsupported, full)
	case canon == "torch._utils" && strings.HasPrefix(name, "_rebuild_"):
		return nil, fmt.Errorf("%w: the pickle refers to %s, a kind of tensor (quantized, sparse, nested, meta or a subclass) this reader does not load; save plain dense tensors", ErrUnsupported, full)
	case canon == "torch" || strings.HasPrefix(canon, "torch."):
		return nil, fmt.Errorf("%w: the pickle refers to %s, which is not plain tensor data; refusing to load it (save model.state_dict() rather than the model or other objects)", ErrRefused, full)
	}
	return nil, fmt.Errorf("%w: the pickle refers to %s, which a weights file never needs; refusing to load it", ErrRefused, full)
}

// isDTypeName reports whether name looks like one of torch's dtype names
// (int16, complex64, float8_e4m3fn, qint8, bits8, ...).
func isDTypeName(name string) bool {
	i := strings.IndexFunc(name, func(r rune) bool { return r < 'a' || r > 'z' })
	if i <= 0 || name[i] < '0' || name[i] > '9' {
		return false
	}
	switch name[:i] {
	case "int", "uint", "float", "bfloat", "complex", "qint", "quint", "bits":
		return true
	}
	return false
}

// printable returns s as is when it looks like a dotted Python name, and
// quoted otherwise, so hostile bytes cannot garble a message.
func printable(s string) string {
	for _, r := range s {
		if !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return strconv.Quote(s)
		}
	}
	return s
}

// storageRef is a storage a persistent id named, checked against its zip
// member.
type storageRef struct {
	member string // zip member name
	class  string // its storage class, e.g. torch.FloatStorage
	dtype  tensors.DType
	nbytes int64 // numel × element size; at most the member's size
	data   span  // where the member's bytes lie in the file
}

// tensorRef is a tensor as the pickle describes it: a view of a storage.
// Its numbers are checked when it is materialised, where its name is known.
type tensorRef struct {
	storage *storageRef
	dtype   tensors.DType
	offset  int64 // in elements of dtype
	shape   []int64
	stride  []int64 // in elements of dtype
}

// call applies an allow-listed global to args, as REDUCE and NEWOBJ do.
func (g *global) call(args pyTuple) (any, error) {
	switch g.kind {
	case kindOrderedDict:
		if len(args) != 0 {
			return nil, fmt.Errorf("takes no arguments in a checkpoint, got %d", len(args))
		}
		return newDict(), nil
	case kindSet:
		if len(args) > 1 {
			return nil, fmt.Errorf("takes at most 1 argument, got %d", len(args))
		}
		return &pySet{}, nil
	case kindRebuildTensor, kindRebuildTensorV2, kindRebuildTensorV3:
		return rebuildTensor(g.kind, args)
	case kindRebuildParameter, kindRebuildParameterWithState, kindParameter:
		// _rebuild_parameter(data, requires_grad, backward_hooks),
		// _rebuild_parameter_with_state(data, requires_grad,
		// backward_hooks, state) and the legacy Parameter(data[,
		// requires_grad]) all wrap a tensor that is already built.
		lo, hi := 3, 3
		switch g.kind {
		case kindRebuildParameterWithState:
			lo, hi = 4, 4
		case kindParameter:
			lo, hi = 1, 2
		}
		if len(args) < lo || len(args) > hi {
			return nil, fmt.Errorf("takes %d to %d arguments, got %d", lo, hi, len(args))
		}
		t, ok := args[0].(*tensorRef)
		if !ok {
			return nil, fmt.Errorf("wraps a %s, not a tensor", typeName(args[0]))
		}
		return t, nil
	case kindRebuildFromType:
		// _rebuild_from_type_v2(func, new_type, args, state): func(*args)
		// recast as new_type with Python attributes state, which carry
		// no weights.
		if len(args) != 4 {
			return nil, fmt.Errorf("takes 4 arguments, got %d", len(args))
		}
		f, ok := args[0].(*global)
		if !ok || f.kind < kindRebuildTensor || f.kind > kindRebuildParameterWithState {
			return nil, fmt.Errorf("rebuilds with a %s, not a tensor rebuild function", typeName(args[0]))
		}
		if c, ok := args[1].(*global); !ok || c.kind != kindTensorClass && c.kind != kindParameter {
			return nil, fmt.Errorf("makes a %s, not a torch.Tensor or torch.nn.Parameter", typeName(args[1]))
		}
		inner, ok := args[2].(pyTuple)
		if !ok {
			return nil, fmt.Errorf("passes a %s as arguments, not a tuple", typeName(args[2]))
		}
		v, err := f.call(inner)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("cannot be called")
}

// rebuildTensor implements _rebuild_tensor(storage, storage_offset, size,
// stride), _rebuild_tensor_v2(..., requires_grad, backward_hooks[,
// metadata]) and _rebuild_tensor_v3(..., requires_grad, backward_hooks,
// dtype[, metadata]).
func rebuildTensor(kind globalKind, args pyTuple) (any, error) {
	lo, hi := 4, 4
	switch kind {
	case kindRebuildTensorV2:
		lo, hi = 6, 7
	case kindRebuildTensorV3:
		lo, hi = 7, 8
	}
	if len(args) < lo || len(args) > hi {
		return nil, fmt.Errorf("takes %d to %d arguments, got %d", lo, hi, len(args))
	}
	st, ok := args[0].(*storageRef)
	if !ok {
		return nil, fmt.Errorf("the storage is a %s, not a storage", typeName(args[0]))
	}
	offset, ok := args[1].(int64)
	if !ok {
		return nil, fmt.Errorf("the storage offset is a %s, not an int", typeName(args[1]))
	}
	shape, err := intTuple(args[2], "size")
	if err != nil {
		return nil, err
	}
	stride, err := intTuple(args[3], "stride")
	if err != nil {
		return nil, err
	}
	if len(stride) != len(shape) {
		return nil, fmt.Errorf("size %v and stride %v differ in rank", shape, stride)
	}
	t := &tensorRef{storage: st, dtype: st.dtype, offset: offset, shape: shape, stride: stride}
	if kind == kindRebuildTensor {
		return t, nil
	}
	metadata := 6
	if kind == kindRebuildTensorV3 {
		d, ok := args[6].(*global)
		if !ok || d.kind != kindDType {
			return nil, fmt.Errorf("the dtype is a %s, not a torch dtype", typeName(args[6]))
		}
		t.dtype = d.dtype
		metadata = 7
	}
	if len(args) > metadata {
		if err := checkMetadata(args[metadata]); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// intTuple converts a size or stride tuple.
func intTuple(v any, what string) ([]int64, error) {
	t, ok := v.(pyTuple)
	if !ok {
		return nil, fmt.Errorf("the %s is a %s, not a tuple", what, typeName(v))
	}
	if len(t) > maxRank {
		return nil, fmt.Errorf("the %s has %d dimensions, more than %d", what, len(t), maxRank)
	}
	out := make([]int64, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok {
			return nil, fmt.Errorf("the %s holds a %s, not an int", what, typeName(x))
		}
		out[i] = n
	}
	return out, nil
}

// checkMetadata accepts the metadata of torch._utils.get_tensor_metadata
// as long as it sets no flag (conj, neg) that would change the values.
func checkMetadata(v any) error {
	if v == nil {
		return nil
	}
	d, ok := v.(*pyDict)
	if !ok {
		return fmt.Errorf("the tensor metadata is a %s, not a dict", typeName(v))
	}
	for _, k := range d.keys {
		if b, ok := d.vals[k].(bool); ok && !b {
			continue
		}
		return fmt.Errorf("%w: the tensor metadata sets %v, which this reader does not apply; save the tensor after .resolve_conj().resolve_neg()", ErrUnsupported, k)
	}
	return nil
}
