package tensors

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestHalfRoundTrip(t *testing.T) {
	t.Parallel()
	// Every finite binary16 value must survive decode → encode unchanged.
	for h := 0; h < 1<<16; h++ {
		u := uint16(h)
		if u&0x7c00 == 0x7c00 && u&0x3ff != 0 {
			continue // NaN payloads are canonicalised
		}
		if got := Float32ToHalf(HalfToFloat32(u)); got != u {
			t.Fatalf("half %#04x → %v → %#04x", u, HalfToFloat32(u), got)
		}
	}
}

func TestHalfKnownValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		h    uint16
		want float32
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, float32(math.Ldexp(1, -24))},
		{0x3555, 0.33325195}, {0x0000, 0},
	}
	for _, tt := range tests {
		if got := HalfToFloat32(tt.h); got != tt.want {
			t.Errorf("HalfToFloat32(%#04x) = %v, want %v", tt.h, got, tt.want)
		}
	}
	if got := Float32ToHalf(1e6); got != 0x7c00 {
		t.Errorf("overflow to +Inf: got %#04x", got)
	}
}

func TestBFloat16(t *testing.T) {
	t.Parallel()
	for _, v := range []float32{1, -2.5, 3.140625, 0, 0x1p-100} {
		if got := BFloat16ToFloat32(Float32ToBFloat16(v)); got != v {
			t.Errorf("bf16 round trip of %v gave %v", v, got)
		}
	}
	// 1 + 2^-8 is halfway between two bf16 values; ties go to even (1).
	if got := BFloat16ToFloat32(Float32ToBFloat16(1 + 1.0/256)); got != 1 {
		t.Errorf("tie rounding: got %v", got)
	}
}

func TestViewsAndConvert(t *testing.T) {
	t.Parallel()
	x := FromFloat32([]int64{2, 2}, []float32{1, 2, 3, 4})
	x.Float32s()[3] = 5
	if got := x.AsFloat64().Float64s(); got[3] != 5 || got[0] != 1 {
		t.Fatalf("AsFloat64 = %v", got)
	}
	h := x.Convert(Float16)
	if got := h.AsFloat32().Float32s(); got[1] != 2 || got[3] != 5 {
		t.Fatalf("float16 round trip = %v", got)
	}
	if err := (&Tensor{DType: Float32, Shape: []int64{3}, Data: make([]byte, 8)}).Check(); err == nil {
		t.Fatal("Check accepted 8 bytes for 3 float32 values")
	}
}

func TestJoin(t *testing.T) {
	a, b := FromInt64([]int64{1, 2}, []int64{1, 2}), FromInt64([]int64{1, 2}, []int64{3, 4})
	got := Join([]int64{2, 2}, a, b)
	if fmt.Sprint(got.Shape, got.Int64s()) != "[2 2] [1 2 3 4]" {
		t.Errorf("Join = %v %v", got.Shape, got.Int64s())
	}
	got.Int64s()[0] = 9
	if a.Int64s()[0] != 1 {
		t.Error("Join shares the parts' memory")
	}
	for _, tc := range []struct {
		name  string
		shape []int64
		parts []*Tensor
		want  string
	}{
		{"dtypes differ", []int64{4}, []*Tensor{a, FromInt32([]int64{2}, []int32{1, 2})}, "dtypes"},
		{"too many elements", []int64{3}, []*Tensor{a, b}, "more than"},
		{"too few elements", []int64{5}, []*Tensor{a, b}, "fewer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), tc.want) {
					t.Errorf("panic %v, want one containing %q", r, tc.want)
				}
			}()
			Join(tc.shape, tc.parts...)
		})
	}
}
