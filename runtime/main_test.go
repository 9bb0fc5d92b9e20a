package runtime

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"mohawk/internal/strict"
)

// The tests share one Env on the real ORT library, found by the normal
// lookup (runtime.library is unset, so $ORT_LIB, then
// $ONNXRUNTIME_SHARED_LIBRARY_PATH, then the user cache) and installed into
// the user cache with npm when missing, as on a fresh CI machine (~110 MB
// download). Tests that need it skip, with the reason, when that fails;
// Examples are then skipped too, as they cannot skip themselves. In strict
// mode (make test, CI; see internal/strict) that failure fails the package.
var (
	testEnv    *Env
	testEnvErr error
)

func TestMain(m *testing.M) {
	flag.Parse()
	lib := os.Getenv(childEnv)
	if lib != "" {
		// A child process of a test, which opens its own library.
		testEnvErr = fmt.Errorf("child test process for %s", lib)
	} else {
		testEnv, testEnvErr = Open(Config{}, os.Stderr)
	}
	if testEnvErr != nil && lib == "" && strict.On() {
		fmt.Fprintf(os.Stderr, "runtime tests: no ONNX Runtime %s, a failure in strict mode (%s=1 or CI=true): %v\n", ORTVersion, strict.Env, testEnvErr)
		os.Exit(1)
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

// needORT returns the shared Env, or skips t (fails it in strict mode).
func needORT(t testing.TB) *Env {
	t.Helper()
	if testEnv == nil {
		strict.Unavailable(t, "needs ONNX Runtime %s: %v", ORTVersion, testEnvErr)
	}
	return testEnv
}
