package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

func main() {
	os.Exit(run("", os.Args[1:], os.Stdout))
}

// run runs go test -json args in dir ("" for the current directory),
// reports to w, and returns the exit status.
func run(dir string, args []string, w io.Writer) int {
	goTool := os.Getenv("GO")
	if goTool == "" {
		goTool = "go"
	}
	cmd := exec.Command(goTool, append([]string{"test", "-json"}, args...)...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		return 2
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		return 2
	}
	r := newReport(w)
	readErr := r.read(stdout)
	waitErr := cmd.Wait()
	return r.finish(readErr, waitErr)
}

// finish writes the summary and returns the exit status: 0 only when
// nothing failed, go test succeeded and at least one package ran.
func (r *report) finish(readErr, waitErr error) int {
	extra := ""
	var exit *exec.ExitError
	switch {
	case readErr != nil:
		extra = "reading go test's output: " + readErr.Error()
	case waitErr != nil && (!errors.As(waitErr, &exit) || len(r.failed) == 0):
		extra = "go test: " + waitErr.Error()
	case r.packages == 0:
		extra = "go test reported no package"
	}
	r.summary(extra)
	if extra != "" || len(r.failed) > 0 {
		return 1
	}
	return 0
}
