package strict

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how a test ended.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                        {}
func (r *recorder) Fatalf(format string, a ...any) { r.fatal = fmt.Sprintf(format, a...) }
func (r *recorder) Skip(a ...any)                  { r.skip = a[0].(string) }

func TestUnavailable(t *testing.T) {
	for _, c := range []struct {
		strict, ci string
		fails      bool
	}{
		{"", "", false},
		{"0", "false", false},
		{"1", "", true},
		{"", "true", true},
	} {
		t.Setenv(Env, c.strict)
		t.Setenv("CI", c.ci)
		r := &recorder{TB: t}
		Unavailable(r, "no %s", "library")
		switch {
		case c.fails && (r.fatal == "" || r.skip != ""):
			t.Errorf("%s=%q CI=%q: fatal %q, skip %q; want a failure", Env, c.strict, c.ci, r.fatal, r.skip)
		case !c.fails && (r.skip != "no library" || r.fatal != ""):
			t.Errorf("%s=%q CI=%q: fatal %q, skip %q; want a skip naming the reason", Env, c.strict, c.ci, r.fatal, r.skip)
		case c.fails && !strings.Contains(r.fatal, "not a skip"):
			t.Errorf("the failure does not say why it is not a skip: %q", r.fatal)
		}
	}
}
