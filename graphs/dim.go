package graphs

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Dim is one dimension of a shape: a static size, or a symbolic
// K·f1·f2·…+Off built from named factors ("batch", "seq"). Symbolic dims let
// shape rules check graphs whose batch and sequence sizes are only known at
// run time: two dims are equal exactly when all their fields are, so
// x[:, 1:] and x[:, :-1] both have dim seq-1, and padding seq by 3 gives
// seq+3. A product or quotient involving an offset dim becomes an opaque
// factor named after it.
type Dim struct {
	K       int64  // constant factor; the size itself when Factors is empty
	Factors string // sorted factor names joined by "*"; "" for a static dim
	Off     int64  // additive offset of a symbolic dim (0 for static dims)
}

// D is a static dim of size n.
func D(n int64) Dim { return Dim{K: n} }

// Sym is a symbolic dim named name.
func Sym(name string) Dim {
	if name == "" || strings.ContainsAny(name, "*") {
		panic(errorf("Sym", "bad symbolic dim name %q", name))
	}
	return Dim{K: 1, Factors: name}
}

// Static reports whether d has a known size.
func (d Dim) Static() bool { return d.Factors == "" }

// Size is the static size; it panics for a symbolic dim.
func (d Dim) Size() int64 {
	if !d.Static() {
		panic(errorf("Dim.Size", "dim %v is symbolic", d))
	}
	return d.K
}

// IsOne reports whether d is the static size 1.
func (d Dim) IsOne() bool { return d.Static() && d.K == 1 }

func (d Dim) factors() []string {
	if d.Factors == "" {
		return nil
	}
	return strings.Split(d.Factors, "*")
}

// opaque turns an offset dim into a single factor so it can be multiplied.
func (d Dim) opaque() Dim {
	if d.Off == 0 {
		return d
	}
	return Dim{K: 1, Factors: "(" + d.String() + ")"}
}

// Plus adds a constant to a dim.
func (d Dim) Plus(c int64) Dim {
	if d.Static() {
		return D(d.K + c)
	}
	d.Off += c
	return d
}

func makeDim(k int64, f []string) Dim {
	sort.Strings(f)
	return Dim{K: k, Factors: strings.Join(f, "*")}
}

// Mul is the product of two dims.
func (d Dim) Mul(o Dim) Dim {
	d, o = d.opaque(), o.opaque()
	return makeDim(d.K*o.K, append(d.factors(), o.factors()...))
}

// Div divides d by o when the result is a dim (o's factors all appear in d
// and the constants divide); ok is false otherwise.
func (d Dim) Div(o Dim) (Dim, bool) {
	d, o = d.opaque(), o.opaque()
	if o.K == 0 || d.K%o.K != 0 {
		return Dim{}, false
	}
	rest := d.factors()
	for _, f := range o.factors() {
		i := indexOf(rest, f)
		if i < 0 {
			return Dim{}, false
		}
		rest = append(rest[:i:i], rest[i+1:]...)
	}
	return makeDim(d.K/o.K, rest), true
}

func indexOf(s []string, x string) int {
	for i, v := range s {
		if v == x {
			return i
		}
	}
	return -1
}

// Single reports the symbol name of a dim that is exactly one plain symbol.
func (d Dim) Single() (string, bool) {
	if d.K == 1 && d.Off == 0 && d.Factors != "" && !strings.Contains(d.Factors, "*") {
		return d.Factors, true
	}
	return "", false
}

func (d Dim) String() string {
	if d.Static() {
		return strconv.FormatInt(d.K, 10)
	}
	s := d.Factors
	if d.K != 1 {
		s = fmt.Sprintf("%d*%s", d.K, d.Factors)
	}
	switch {
	case d.Off > 0:
		s += fmt.Sprintf("+%d", d.Off)
	case d.Off < 0:
		s += fmt.Sprintf("%d", d.Off)
	}
	return s
}

// Shape is a list of dims. A nil or empty Shape is a scalar.
type Shape []Dim

// S builds a shape from ints (static dims), strings (symbols) and Dims.
func S(dims ...any) Shape {
	s := make(Shape, len(dims))
	for i, d := range dims {
		switch v := d.(type) {
		case int:
			s[i] = D(int64(v))
		case int64:
			s[i] = D(v)
		case string:
			s[i] = Sym(v)
		case Dim:
			s[i] = v
		default:
			panic(errorf("S", "dim %d has type %T; want int, int64, string or Dim", i, d))
		}
	}
	return s
}

// StaticShape builds a shape of static dims.
func StaticShape(dims []int64) Shape {
	s := make(Shape, len(dims))
	for i, d := range dims {
		s[i] = D(d)
	}
	return s
}

// Rank is the number of dims.
func (s Shape) Rank() int { return len(s) }

// Equal reports whether two shapes have the same dims.
func (s Shape) Equal(o Shape) bool {
	if len(s) != len(o) {
		return false
	}
	for i := range s {
		if s[i] != o[i] {
			return false
		}
	}
	return true
}

// Static reports whether every dim is static.
func (s Shape) Static() bool {
	for _, d := range s {
		if !d.Static() {
			return false
		}
	}
	return true
}

// Sizes returns the static sizes; it panics if a dim is symbolic.
func (s Shape) Sizes() []int64 {
	out := make([]int64, len(s))
	for i, d := range s {
		out[i] = d.Size()
	}
	return out
}

// NumElements is the product of all dims (possibly symbolic).
func (s Shape) NumElements() Dim {
	n := D(1)
	for _, d := range s {
		n = n.Mul(d)
	}
	return n
}

// Clone copies s.
func (s Shape) Clone() Shape { return append(Shape{}, s...) }

func (s Shape) String() string {
	parts := make([]string, len(s))
	for i, d := range s {
		parts[i] = d.String()
	}
	return "[" + strings.Join(parts, ",") + "]"
}

// axis normalises a possibly negative axis for rank r.
func normAxis(op string, axis, r int) int {
	if axis < -r || axis >= r {
		panic(errorf(op, "axis %d out of range for rank %d", axis, r))
	}
	if axis < 0 {
		axis += r
	}
	return axis
}

// broadcastShapes applies ONNX multidirectional broadcasting.
func broadcastShapes(op string, shapes ...Shape) Shape {
	r := 0
	for _, s := range shapes {
		if len(s) > r {
			r = len(s)
		}
	}
	out := make(Shape, r)
	for i := range out {
		out[i] = D(1)
	}
	for _, s := range shapes {
		off := r - len(s)
		for i, d := range s {
			o := out[off+i]
			switch {
			case d == o || d.IsOne():
			case o.IsOne():
				out[off+i] = d
			default:
				panic(errorf(op, "shapes %v do not broadcast (dim %d: %v vs %v)", shapes, off+i, o, d))
			}
		}
	}
	return out
}
