package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// event is one line of go test -json (see go doc test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string // build-output events
}

// key names a test of a package ("" for the package itself).
type key struct{ pkg, test string }

// report turns events into go test's plain output and counts the outcomes.
type report struct {
	w       io.Writer
	out     map[key][]string // output lines of the tests still running
	order   []key            // the keys of out, in the order they began
	failsIn map[string]int   // failed tests per package

	passed   int
	failed   []string // names of failed tests and packages
	skipped  []string // "name (reason)"
	packages int      // packages that ended
}

func newReport(w io.Writer) *report {
	return &report{w: w, out: map[key][]string{}, failsIn: map[string]int{}}
}

// read feeds every event of r to the report; a line that is not an event
// (go test's own messages) is printed as it is.
func (r *report) read(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			fmt.Fprintln(r.w, sc.Text())
			continue
		}
		r.feed(e)
	}
	return sc.Err()
}

func (r *report) feed(e event) {
	k := key{e.Package, e.Test}
	switch e.Action {
	case "build-output":
		fmt.Fprint(r.w, e.Output)
	case "output":
		if _, ok := r.out[k]; !ok {
			r.order = append(r.order, k)
		}
		r.out[k] = append(r.out[k], e.Output)
	case "pass", "fail", "skip":
		if e.Test != "" {
			r.endTest(k, e.Action)
		} else {
			r.endPackage(e.Package, e.Action)
		}
	}
}

func (r *report) endTest(k key, action string) {
	lines := r.take(k)
	name := k.pkg + "." + k.test
	switch action {
	case "pass":
		r.passed++
	case "fail":
		r.failed = append(r.failed, name)
		r.failsIn[k.pkg]++
		r.print(lines)
	case "skip":
		r.skipped = append(r.skipped, fmt.Sprintf("%s (%s)", name, skipReason(lines)))
	}
}

// endPackage prints a passing package's ok line, or everything a failing
// one printed: its own output and that of tests that never ended (a panic,
// a timeout).
func (r *report) endPackage(pkg, action string) {
	r.packages++
	if action != "fail" {
		for _, l := range r.take(key{pkg, ""}) {
			if strings.HasPrefix(l, "ok") || strings.HasPrefix(l, "?") {
				fmt.Fprint(r.w, l)
			}
		}
		return
	}
	for _, k := range append([]key(nil), r.order...) {
		if k.pkg == pkg && k.test != "" {
			r.print(r.take(k))
		}
	}
	r.print(r.take(key{pkg, ""}))
	if r.failsIn[pkg] == 0 {
		r.failed = append(r.failed, pkg+" (the package failed without a failing test: build error, TestMain or panic; see above)")
	}
}

// take removes and returns the output of k.
func (r *report) take(k key) []string {
	lines := r.out[k]
	delete(r.out, k)
	for i, o := range r.order {
		if o == k {
			r.order = append(r.order[:i], r.order[i+1:]...)
			break
		}
	}
	return lines
}

// print writes output lines, leaving out the === RUN/PAUSE/CONT lines
// that go test prints only with -v.
func (r *report) print(lines []string) {
	for _, l := range lines {
		if !strings.HasPrefix(l, "=== ") {
			fmt.Fprint(r.w, l)
		}
	}
}

// logPrefix starts a line a test logged: "    file_test.go:12: ".
var logPrefix = regexp.MustCompile(`^\s*[\w.-]+\.go:\d+: `)

// skipReason is the message of a skipped test: the last message it logged
// (t.Skip's), with its continuation lines.
func skipReason(lines []string) string {
	var msg []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case logPrefix.MatchString(l):
			msg = []string{logPrefix.ReplaceAllString(l, "")}
		case msg != nil && t != "" && !strings.HasPrefix(t, "--- ") && !strings.HasPrefix(t, "=== "):
			msg = append(msg, t)
		}
	}
	if msg == nil {
		return "no reason given"
	}
	for i := range msg {
		msg[i] = strings.TrimSpace(msg[i])
	}
	return strings.Join(msg, " ")
}

// summary writes the closing lines; extra is a failure found outside the
// events (go test's exit status), or "".
func (r *report) summary(extra string) {
	failed := r.failed
	if extra != "" {
		failed = append(failed, extra)
	}
	if len(failed) > 0 {
		fmt.Fprintf(r.w, "failed: %s\n", strings.Join(failed, ", "))
	}
	fmt.Fprintf(r.w, "tests: %d passed, %d failed, %d skipped\n", r.passed, len(failed), len(r.skipped))
	skipped := "none"
	if len(r.skipped) > 0 {
		skipped = strings.Join(r.skipped, ", ")
	}
	fmt.Fprintf(r.w, "skipped: %s\n", skipped)
}
