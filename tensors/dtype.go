package tensors

import "fmt"

// DType is an element type. The numbering is ONNX's TensorProto.DataType, so
// a DType can be written into a model or handed to ONNX Runtime unchanged.
type DType int32

// The element types mohawk uses.
const (
	Invalid  DType = 0
	Float32  DType = 1
	Uint8    DType = 2
	Int8     DType = 3
	Int32    DType = 6
	Int64    DType = 7
	Bool     DType = 9
	Float16  DType = 10
	Float64  DType = 11
	BFloat16 DType = 16
)

var dtypeInfo = map[DType]struct {
	name string
	size int
}{
	Float32:  {"float32", 4},
	Uint8:    {"uint8", 1},
	Int8:     {"int8", 1},
	Int32:    {"int32", 4},
	Int64:    {"int64", 8},
	Bool:     {"bool", 1},
	Float16:  {"float16", 2},
	Float64:  {"float64", 8},
	BFloat16: {"bfloat16", 2},
}

// Size is the number of bytes of one element; 0 for an unknown type.
func (d DType) Size() int { return dtypeInfo[d].size }

// Valid reports whether d is one of the types above.
func (d DType) Valid() bool { _, ok := dtypeInfo[d]; return ok }

// IsFloat reports whether d is a floating-point type.
func (d DType) IsFloat() bool {
	return d == Float32 || d == Float64 || d == Float16 || d == BFloat16
}

func (d DType) String() string {
	if i, ok := dtypeInfo[d]; ok {
		return i.name
	}
	return fmt.Sprintf("dtype(%d)", int32(d))
}

// ParseDType maps a name such as "float32" back to its DType.
func ParseDType(s string) (DType, error) {
	for d, i := range dtypeInfo {
		if i.name == s {
			return d, nil
		}
	}
	return Invalid, fmt.Errorf("unknown dtype %q", s)
}
