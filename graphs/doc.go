// Package graphs is mohawk's typed graph IR and builder: every value has a
// dtype and a shape whose dims are static or symbolic ("batch", "seq",
// products and offsets of them), op constructors are named after the ONNX
// ops they build (MatMul, Gemm, LayerNormalization, CumSum, Loop, ...), and
// each op's shape rule runs while the graph is built.
//
// The op table (Ops, Lookup) holds one row per op: its shape rule, its
// gradient rule (a vector-Jacobian product written with ordinary ops) or an
// explicit no-gradient mark, its ONNX emitter and the opset it needs.
// Gradients derives the backward graph of a scalar loss by walking the
// graph in reverse creation order (creation order is topological), so a
// training step is an ordinary graph that ONNX Runtime runs.
//
// Most rows are default-domain ONNX ops; the others are ONNX Runtime's
// com.microsoft MultiHeadAttention (fused attention) or mohawk's own fused
// kernels in FusedDomain (AdamW, AdamWInPlace, GeluGrad, CausalConv,
// CausalConvGrad, SegsumExp, SegsumExpGrad, MaskedDiffSq, MaskedDiffSqGrad,
// CausalSoftmax, SoftCrossEntropy and its gradient, LayerNormGrad, SiluMul
// and its gradient, Residual, Rotary, GateSkip and its gradient,
// AllReduce), which mohawk/runtime
// registers in every session. Gradients and optimizer
// updates use the fused kernels; forward layers use them only in graphs
// that opt in (Graph.UseFusedKernels), so exported models stay stock ONNX.
//
// Place in the dependency order: graphs imports only tensors and the
// standard library; layers, losses, train and the models build on it;
// export turns graphs into ONNX bytes. No cgo, no protobuf, no runtime.
//
// Error policy: building a graph wrongly (mismatched shapes or dtypes, a
// value from an unrelated graph) panics with *Error, which names the op,
// the shapes and the caller's file:line; Try converts that panic into an
// error at package boundaries and re-raises any other panic.
package graphs
