// Package graphtest runs graphs on ONNX Runtime in tests: it exports a
// graph, opens a session on a shared CPU runtime and feeds host tensors by
// name, and it checks gradients built by graphs.Gradients against central
// differences.
//
// It is the one package under graphs/ that imports export and runtime (test
// support only, like a conformance suite); product code never imports it.
package graphtest
