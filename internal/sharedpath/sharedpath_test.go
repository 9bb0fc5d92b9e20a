package sharedpath

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that records a failure instead of ending the
// test, and takes a skip as no failure.
type recorder struct {
	testing.TB
	fatal string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Fatalf(format string, a ...any) { r.fatal = fmt.Sprintf(format, a...) }
func (r *recorder) Skipf(format string, a ...any)  { r.fatal = "" }

// TestMissingFileFails: a file missing from an existing ../shared fails the
// test, naming the file, in every mode.
func TestMissingFileFails(t *testing.T) {
	Path(t, "reference") // skips or fails, as the mode says, without ../shared
	r := &recorder{TB: t}
	Path(r, "reference", "no-such-model", "teacher_metrics.json")
	if !strings.Contains(r.fatal, "reference/no-such-model/teacher_metrics.json is missing") {
		t.Errorf("a missing reference file gave %q, want a failure naming it", r.fatal)
	}
}
