package tensors

import (
	"fmt"
	"math"
	"unsafe"
)

// Tensor is a dense, row-major tensor in host memory. Data holds exactly
// NumElements(Shape)·DType.Size() little-endian bytes. Tensors made by this
// package have Data aligned for their element type, so the typed views
// (Float32s, Int64s, ...) share memory with Data instead of copying it.
type Tensor struct {
	DType DType
	Shape []int64
	Data  []byte
}

// NumElements is the product of the dimensions (1 for a scalar shape).
func NumElements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// alignedBytes returns n zeroed bytes whose start is 8-byte aligned.
func alignedBytes(n int) []byte {
	if n == 0 {
		return []byte{}
	}
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n)
}

// Zeros allocates a zero-filled tensor.
func Zeros(dt DType, shape ...int64) *Tensor {
	if !dt.Valid() {
		panic(fmt.Sprintf("tensors.Zeros: invalid dtype %v", dt))
	}
	for _, d := range shape {
		if d < 0 {
			panic(fmt.Sprintf("tensors.Zeros: negative dimension in shape %v", shape))
		}
	}
	return &Tensor{DType: dt, Shape: append([]int64{}, shape...), Data: alignedBytes(int(NumElements(shape)) * dt.Size())}
}

func fromSlice[T any](dt DType, shape []int64, v []T) *Tensor {
	if int64(len(v)) != NumElements(shape) {
		panic(fmt.Sprintf("tensors: %d values for shape %v (%d elements)", len(v), shape, NumElements(shape)))
	}
	t := Zeros(dt, shape...)
	if len(v) > 0 {
		copy(t.Data, unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), len(t.Data)))
	}
	return t
}

// FromFloat32 copies v into a new float32 tensor of the given shape.
func FromFloat32(shape []int64, v []float32) *Tensor { return fromSlice(Float32, shape, v) }

// FromFloat64 copies v into a new float64 tensor of the given shape.
func FromFloat64(shape []int64, v []float64) *Tensor { return fromSlice(Float64, shape, v) }

// FromInt64 copies v into a new int64 tensor of the given shape.
func FromInt64(shape []int64, v []int64) *Tensor { return fromSlice(Int64, shape, v) }

// FromInt32 copies v into a new int32 tensor of the given shape.
func FromInt32(shape []int64, v []int32) *Tensor { return fromSlice(Int32, shape, v) }

// FromBool copies v into a new bool tensor of the given shape.
func FromBool(shape []int64, v []bool) *Tensor { return fromSlice(Bool, shape, v) }

// Scalar32 is a rank-0 float32 tensor.
func Scalar32(v float32) *Tensor { return FromFloat32(nil, []float32{v}) }

// NumElements of t.
func (t *Tensor) NumElements() int64 { return NumElements(t.Shape) }

// Check verifies that Data has the length the dtype and shape demand.
func (t *Tensor) Check() error {
	if !t.DType.Valid() {
		return fmt.Errorf("invalid dtype %v", t.DType)
	}
	for _, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("negative dimension in shape %v", t.Shape)
		}
	}
	if want := t.NumElements() * int64(t.DType.Size()); int64(len(t.Data)) != want {
		return fmt.Errorf("%v%v needs %d bytes, has %d", t.DType, t.Shape, want, len(t.Data))
	}
	return nil
}

func view[T any](t *Tensor, want DType) []T {
	if t.DType != want {
		panic(fmt.Sprintf("tensors: %v view of a %v tensor", want, t.DType))
	}
	var zero T
	n := len(t.Data) / int(unsafe.Sizeof(zero))
	if n == 0 {
		return []T{}
	}
	p := unsafe.Pointer(&t.Data[0])
	if uintptr(p)%unsafe.Alignof(zero) != 0 {
		// Misaligned (e.g. a sub-slice of a file): copy to aligned memory.
		a := alignedBytes(len(t.Data))
		copy(a, t.Data)
		t.Data = a
		p = unsafe.Pointer(&t.Data[0])
	}
	return unsafe.Slice((*T)(p), n)
}

// Float32s is a view of a float32 tensor's data (shared, not copied).
func (t *Tensor) Float32s() []float32 { return view[float32](t, Float32) }

// Float64s is a view of a float64 tensor's data.
func (t *Tensor) Float64s() []float64 { return view[float64](t, Float64) }

// Int64s is a view of an int64 tensor's data.
func (t *Tensor) Int64s() []int64 { return view[int64](t, Int64) }

// Int32s is a view of an int32 tensor's data.
func (t *Tensor) Int32s() []int32 { return view[int32](t, Int32) }

// Bools is a view of a bool tensor's data.
func (t *Tensor) Bools() []bool { return view[bool](t, Bool) }

// Uint16s is a view of the raw 16-bit words of a float16 or bfloat16 tensor.
func (t *Tensor) Uint16s() []uint16 {
	if t.DType != Float16 && t.DType != BFloat16 {
		panic(fmt.Sprintf("tensors: uint16 view of a %v tensor", t.DType))
	}
	return view[uint16](t, t.DType)
}

// Clone returns a deep copy.
func (t *Tensor) Clone() *Tensor {
	c := Zeros(t.DType, t.Shape...)
	copy(c.Data, t.Data)
	return c
}

// Join returns a new tensor of the given shape holding the parts' data one
// after another (row-major order, so equal-shaped parts stack along a new
// or the first axis). The parts must share one dtype and hold shape's
// element count between them.
func Join(shape []int64, parts ...*Tensor) *Tensor {
	out := Zeros(parts[0].DType, shape...)
	off := 0
	for _, p := range parts {
		if p.DType != out.DType {
			panic(fmt.Sprintf("tensors.Join: parts of dtypes %v and %v", out.DType, p.DType))
		}
		if off+len(p.Data) > len(out.Data) {
			panic(fmt.Sprintf("tensors.Join: the parts hold more than the %d elements of %v", out.NumElements(), shape))
		}
		off += copy(out.Data[off:], p.Data)
	}
	if off != len(out.Data) {
		panic(fmt.Sprintf("tensors.Join: the parts hold fewer than the %d elements of %v", out.NumElements(), shape))
	}
	return out
}

// Reshape returns a tensor sharing t's data with a new shape of the same size.
func (t *Tensor) Reshape(shape ...int64) *Tensor {
	if NumElements(shape) != t.NumElements() {
		panic(fmt.Sprintf("tensors.Reshape: %v to %v changes the element count", t.Shape, shape))
	}
	return &Tensor{DType: t.DType, Shape: append([]int64{}, shape...), Data: t.Data}
}

// AsFloat32 converts any float tensor (and int64/int32) to float32. A
// float32 tensor is returned as is.
func (t *Tensor) AsFloat32() *Tensor {
	if t.DType == Float32 {
		return t
	}
	out := Zeros(Float32, t.Shape...)
	o := out.Float32s()
	switch t.DType {
	case Float16:
		for i, h := range t.Uint16s() {
			o[i] = HalfToFloat32(h)
		}
	case BFloat16:
		for i, h := range t.Uint16s() {
			o[i] = BFloat16ToFloat32(h)
		}
	case Float64:
		for i, v := range t.Float64s() {
			o[i] = float32(v)
		}
	case Int64:
		for i, v := range t.Int64s() {
			o[i] = float32(v)
		}
	case Int32:
		for i, v := range t.Int32s() {
			o[i] = float32(v)
		}
	default:
		panic(fmt.Sprintf("tensors.AsFloat32: cannot convert %v", t.DType))
	}
	return out
}

// AsFloat64 converts a float tensor to float64.
func (t *Tensor) AsFloat64() *Tensor {
	if t.DType == Float64 {
		return t
	}
	f := t.AsFloat32().Float32s()
	out := Zeros(Float64, t.Shape...)
	o := out.Float64s()
	for i, v := range f {
		o[i] = float64(v)
	}
	return out
}

// Convert returns t in dtype dt (float types and int64/int32 sources).
func (t *Tensor) Convert(dt DType) *Tensor {
	if t.DType == dt {
		return t
	}
	switch dt {
	case Float32:
		return t.AsFloat32()
	case Float64:
		return t.AsFloat64()
	case Float16, BFloat16:
		f := t.AsFloat32().Float32s()
		out := Zeros(dt, t.Shape...)
		o := out.Uint16s()
		for i, v := range f {
			if dt == Float16 {
				o[i] = Float32ToHalf(v)
			} else {
				o[i] = Float32ToBFloat16(v)
			}
		}
		return out
	}
	panic(fmt.Sprintf("tensors.Convert: %v to %v not supported", t.DType, dt))
}

// HalfToFloat32 decodes an IEEE 754 binary16 value.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// Float32ToHalf encodes f as binary16 with round-to-nearest-even.
func Float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - e)
		half := mant >> shift
		rem := mant & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	}
	half := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++
	}
	return sign | uint16(half)
}

// BFloat16ToFloat32 decodes a bfloat16 value.
func BFloat16ToFloat32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// Float32ToBFloat16 encodes f as bfloat16 with round-to-nearest-even.
func Float32ToBFloat16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40
	}
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}
