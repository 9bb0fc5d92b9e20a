// Command testreport runs go test -json with the arguments it is given and
// prints what go test would print without -json (each failing test's
// output, the ok and FAIL lines of the packages, build errors), then a
// closing summary:
//
//	tests: 812 passed, 0 failed, 3 skipped
//	skipped: mohawk/pkg.TestA (why), mohawk/pkg.TestB (why), ...
//
// so that a reader of CI output sees what did not run and why. A package
// that fails without a failing test (a build error, a TestMain exit, a
// panic) counts as one failure. It exits non-zero when a test or a package
// failed or go test itself did. make test runs it (see the Makefile);
// $GO names the go tool (default go).
package main
