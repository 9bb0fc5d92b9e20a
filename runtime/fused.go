package runtime

/*
#cgo CFLAGS: -O2
#cgo LDFLAGS: -lm
#include <stdlib.h>
#include "fused.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"reflect"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// FusedDomain is the ONNX domain of the fused kernels every session
// registers: ONNX Runtime custom ops of this package (fused.c) for updates
// that stock ONNX ops can only write as many whole-tensor passes.
//
// AdamW (opset 1) takes p, g, m, v (one shape; float32, or float64 on the
// CPU provider) and coef [8] of their type, holding b1, a1, b2, a2, decay,
// step, eps and finite, and returns p′, m′, v′:
//
//	m′ = b1·m + a1·g,  v′ = b2·v + a2·(g·g),  p′ = p·decay − step·(m′ / (√v′ + eps))
//
// each operation rounded once, in this order, so that its results equal
// those of the same formula written with stock Mul, Add, Sqrt, Div and Sub
// nodes bit for bit; finite = 0 returns p, m and v unchanged whatever g
// holds. It reads 16 bytes and writes 12 per float32 element, where the
// stock form moves about 120. The CPU kernel is a C loop; the CUDA kernel
// is PTX that the CUDA driver compiles when a session first runs it, on
// the CUDA provider's stream.
//
// AdamWInPlace (opset 1) takes AdamW's inputs and writes p′, m′ and v′
// over p, m and v, in the buffers the session was fed, returning an empty
// tensor of p's type: each element is read and written by one thread, so
// no second copy of the state exists. ORT knows nothing of the write, so p,
// m and v must be graph inputs bound in the memory of the provider that
// runs the node (resident values), and every other reader of them must run
// before it (graphs.AdamWInPlace says how graphs/train guarantees that).
//
// GeluGrad, CausalConv and CausalConvGrad, SegsumExp and SegsumExpGrad,
// MaskedDiffSq and MaskedDiffSqGrad, CausalSoftmax, SoftCrossEntropy and
// SoftCrossEntropyGrad, LayerNormGrad, SiluMul and SiluMulGrad, Residual
// and Rotary (opset 1) are the kernels of the graphs functions of those
// names, which document their arithmetic; fused.c checks their inputs
// again and fails the run with a message naming the op. CausalConv's
// outputs, CausalConvGrad's dy inputs and Residual's parts are variadic.
//
// AllReduce (opset 1) takes x and returns the element-wise mean of x over
// the ranks of the process's data-parallel group (nccl.go).
const FusedDomain = "mohawk.fused"

// addFused registers FusedDomain in opts, for the library whose OrtApi
// table loadAPI(lib) finds.
func addFused(opts *ort.SessionOptions, lib string) error {
	if err := loadAPI(lib); err != nil {
		return err
	}
	f := reflect.ValueOf(opts).Elem().FieldByName("o")
	if !f.IsValid() || f.Kind() != reflect.Pointer || f.IsNil() {
		return errors.New("onnxruntime_go's SessionOptions has no options field o")
	}
	if err := cErr(C.mh_fused_add((*unsafe.Pointer)(apiTable()), f.UnsafePointer())); err != nil {
		return fmt.Errorf("register the %s kernels: %v", FusedDomain, err)
	}
	return nil
}
