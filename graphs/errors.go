package graphs

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
)

// Error is the value graph construction panics with when an op is misused
// (wrong dtype, shapes that do not fit, a value from another graph). Build
// and Try recover it into an ordinary error; any other panic is re-raised.
type Error struct {
	Op   string // the op or function being built
	Msg  string
	Site string // file:line of the first caller outside this package
}

func (e *Error) Error() string {
	if e.Site != "" {
		return fmt.Sprintf("graphs: %s: %s (at %s)", e.Op, e.Msg, e.Site)
	}
	return fmt.Sprintf("graphs: %s: %s", e.Op, e.Msg)
}

func errorf(op, format string, args ...any) *Error {
	return &Error{Op: op, Msg: fmt.Sprintf(format, args...), Site: callerSite()}
}

// callerSite finds the first stack frame outside package graphs, so that a
// shape error points at the layer or model code that caused it.
func callerSite() string {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if !strings.Contains(f.Function, "mohawk/graphs.") || strings.HasSuffix(f.File, "_test.go") {
			return fmt.Sprintf("%s:%d", shortFile(f.File), f.Line)
		}
		if !more {
			return ""
		}
	}
}

func shortFile(p string) string {
	if i := strings.LastIndex(p, "/mohawk/"); i >= 0 {
		return p[i+len("/mohawk/"):]
	}
	return p
}

// Try runs fn and turns a graph-construction panic (*Error) into an error.
// Other panics propagate unchanged.
func Try(fn func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			var ge *Error
			if e, ok := r.(error); ok && errors.As(e, &ge) {
				err = ge
				return
			}
			panic(r)
		}
	}()
	fn()
	return nil
}
