package strict

import (
	"fmt"
	"os"
	"testing"
)

// Env is the variable that turns strict mode on ("1"); make test sets it.
const Env = "MOHAWK_STRICT_TESTS"

// On reports whether tests run in strict mode: $MOHAWK_STRICT_TESTS is 1
// or $CI is true.
func On() bool {
	return os.Getenv(Env) == "1" || os.Getenv("CI") == "true"
}

// Unavailable ends t because something it needs is missing: a failure in
// strict mode, a skip otherwise; either way with the reason.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if On() {
		t.Fatalf("%s (a failure, not a skip: %s=1 or CI=true)", reason, Env)
	} else {
		t.Skip(reason)
	}
}
