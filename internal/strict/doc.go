// Package strict decides what a test does when something it needs from the
// machine is missing: ONNX Runtime, a reference file under ../shared, a
// folder the exporter wrote that does not open. A developer without them
// sees the test skipped with the reason; under make test (which sets
// MOHAWK_STRICT_TESTS=1) and on CI machines (CI=true) the same absence is a
// failure, so a broken install or a renamed file cannot pass as a skip.
//
// Tests that need hardware CI cannot have (a GPU, the right to mount a
// file system) skip with t.Skip and the reason instead; this package is
// not for them. It imports only the standard library.
package strict
