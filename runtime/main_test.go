package runtime

import (
	"flag"
	"fmt"
	"os"
	"testing"
)

// The tests share one Env on the real ORT library, found by the normal
// lookup (runtime.library is unset, so $ORT_LIB, then
// $ONNXRUNTIME_SHARED_LIBRARY_PATH, then the user cache) and installed into
// the user cache with npm when missing, as on a fresh CI machine (~110 MB
// download). Tests that need it skip, with the reason, when that fails;
// Examples are then skipped too, as they cannot skip themselves.
var (
	testEnv    *Env
	testEnvErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	if lib := os.Getenv(childEnv); lib != "" {
		// A child process of a test, which opens its own library.
		testEnvErr = fmt.Errorf("child test process for %s", lib)
	} else {
		testEnv, testEnvErr = Open(Config{}, os.Stderr)
	}
	if testEnvErr != nil {
		fmt.Fprintf(os.Stderr, "runtime tests: no ONNX Runtime, skipping the tests that need it and the Examples: %v\n", testEnvErr)
		if f := flag.Lookup("test.skip"); f != nil && f.Value.String() == "" {
			flag.Set("test.skip", "^Example")
		}
	}
	code := m.Run()
	if testEnv != nil {
		if err := testEnv.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "close test env: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// needORT returns the shared Env or skips t.
func needORT(t testing.TB) *Env {
	t.Helper()
	if testEnv == nil {
		t.Skipf("needs ONNX Runtime %s: %v", ORTVersion, testEnvErr)
	}
	return testEnv
}
