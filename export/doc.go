// Package export turns a graphs.Graph into an ONNX model: protobuf bytes for
// an in-memory session, or a model.onnx file (plus model.onnx.data holding
// large initializers as ONNX external data) written atomically.
//
// Place in the dependency order: export imports graphs, tensors, atomicfile
// and its own generated protobuf types (export/onnxpb); it knows nothing of
// ONNX Runtime. The opset, IR version and producer name are set here only.
//
// Errors: every function returns errors (duplicate value names, a model over
// protobuf's 2 GB limit without external data, an unwritable directory);
// nothing panics on bad input.
package export
