// Package tensors holds host-memory tensors: a dtype, a shape and the raw
// little-endian bytes, plus conversions between float16, bfloat16, float32
// and float64.
//
// It is the leaf of the dependency graph: graphs (initializers), runtime
// (session inputs and outputs), checkpoint readers and the pipeline all
// exchange *Tensor values, and this package imports nothing of the project.
//
// Errors: constructors panic on programmer errors (a data length that does
// not match the shape); functions that read external bytes return errors.
package tensors
