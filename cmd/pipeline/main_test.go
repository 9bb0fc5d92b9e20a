package main

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mohawk/deploy"
	"mohawk/internal/fifotest"
	"mohawk/internal/shareddata"
	"mohawk/pipeline"
	"mohawk/stages"
)

// TestMain runs the command itself when the test binary is started by
// start, so the tests can signal a real process without building one.
func TestMain(m *testing.M) {
	if os.Getenv("MOHAWK_TEST_PIPELINE_MAIN") == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// proc is a pipeline process started by a test.
type proc struct {
	cmd            *exec.Cmd
	stdout, stderr syncBuffer
}

// syncBuffer is a bytes.Buffer safe to read while the process writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start starts `pipeline args...` (this test binary re-run as the
// command).
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(os.Args[0], args...)}
	p.cmd.Env = append(os.Environ(), "MOHAWK_TEST_PIPELINE_MAIN=1")
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	return p
}

// wait waits for the process and returns its exit status.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	err := p.cmd.Wait()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return p.cmd.ProcessState.ExitCode()
}

// waitFor polls until stderr contains s, failing after limit.
func (p *proc) waitFor(t *testing.T, s string, limit time.Duration) {
	t.Helper()
	for start := time.Now(); !strings.Contains(p.stderr.String(), s); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > limit {
			t.Fatalf("no %q on stderr after %v:\n%s", s, limit, p.stderr.String())
		}
	}
}

// stopBound is how long a command may take to exit after SIGINT/SIGTERM.
// The goal is under a second; the bound leaves room for a loaded 2-core
// test machine (an ONNX Runtime session being created finishes first).
const stopBound = 5 * time.Second

// TestSignalStopsEval signals eval while it reads a FIFO that never gets a
// writer, while it reads a FIFO that never ends, and in the middle of scoring: each time
// the process exits with status 130 within stopBound and prints no result.
// Before, eval ignored both signals and only SIGKILL ended it.
func TestSignalStopsEval(t *testing.T) {
	model := shareddata.Path(t, "reference", "phi-tiny-en")
	dir := t.TempDir()
	fifo, endless := fifotest.Idle(t, dir), fifotest.Endless(t, dir)
	for _, c := range []struct {
		name  string
		sig   syscall.Signal
		data  string
		ready string // wait for this on stderr before the signal
		args  []string
	}{
		{"FIFO without a writer, SIGINT", syscall.SIGINT, fifo, "", nil},
		{"endless text, SIGTERM", syscall.SIGTERM, endless, "", nil},
		{"mid-scoring, SIGTERM", syscall.SIGTERM, shareddata.Path(t, "data", "en", "val.txt"), "eval: 20/200 (10%)", []string{"--windows", "200", "--batch", "1"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := start(t, append([]string{"eval", "--model", model, "--data", c.data}, c.args...)...)
			if c.ready != "" {
				p.waitFor(t, c.ready, 2*time.Minute)
			} else {
				time.Sleep(time.Second)
			}
			if err := p.cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			sent := time.Now()
			rc := p.wait(t)
			took := time.Since(sent)
			t.Logf("exit %d %v after %v", rc, took, c.sig)
			if rc != 130 || !(took < stopBound) {
				t.Errorf("exit status %d %v after %v; want 130 within %v\n%s", rc, took, c.sig, stopBound, p.stderr.String())
			}
			if out := p.stdout.String(); out != "" || !strings.Contains(p.stderr.String(), "pipeline eval: interrupted by a signal") {
				t.Errorf("stdout %q, stderr %q; want no result and the interruption named", out, p.stderr.String())
			}
		})
	}
}

// TestEvalRefusesZeros: /dev/zero as eval data is refused at its first byte,
// exit 1, instead of being read until a signal.
func TestEvalRefusesZeros(t *testing.T) {
	p := start(t, "eval", "--model", shareddata.Path(t, "reference", "phi-tiny-en"), "--data", "/dev/zero")
	rc := p.wait(t)
	if want := "NUL byte at byte 0"; rc != 1 || p.stdout.String() != "" || !strings.Contains(p.stderr.String(), want) {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1, nothing, %q", rc, p.stdout.String(), p.stderr.String(), want)
	}
}

// TestEvalNonFiniteWeights: eval of a teacher with a NaN weight exits 1
// naming the tensor, with and without --json, and prints no result (before:
// "perplexity NaN", or an empty line with --json, and status 0).
func TestEvalNonFiniteWeights(t *testing.T) {
	dir := shareddata.Poisoned(t, filepath.Join("..", "..", "testdata", "demo", "teacher"), "model.layers.1.mlp.fc1.bias", 7, float32(math.NaN()))
	data := filepath.Join("..", "..", "testdata", "demo", "val.txt")
	for _, json := range []bool{false, true} {
		args := []string{"eval", "--model", dir, "--data", data, "--windows", "4", "--seq-len", "32"}
		if json {
			args = append(args, "--json")
		}
		p := start(t, args...)
		rc := p.wait(t)
		want := "tensor model.layers.1.mlp.fc1.bias holds a non-finite value (element 7)"
		if rc != 1 || p.stdout.String() != "" || !strings.Contains(p.stderr.String(), want) {
			t.Errorf("--json %v: exit %d, stdout %q, stderr %q; want 1, nothing, %q", json, rc, p.stdout.String(), p.stderr.String(), want)
		}
	}
}

// TestCheckFinite: a NaN or ±Inf anywhere in a printed result is an error
// naming its JSON path, and printJSON returns encoding errors.
func TestCheckFinite(t *testing.T) {
	type row struct {
		MS float64 `json:"ms"`
	}
	type nested struct {
		Rows []row           `json:"rows"`
		By   map[string]*row `json:"by"`
		Any  any             `json:"any"`
		Skip float64         `json:"-"`
		Ppl  *stages.PerplexityResult
	}
	for _, c := range []struct {
		name string
		v    any
		want string // "" for no error
	}{
		{"finite", stages.PerplexityResult{Perplexity: 12.5, NLL: 2.5, Tokens: 10, Windows: 1}, ""},
		{"perplexity NaN", &stages.PerplexityResult{Perplexity: math.NaN(), NLL: math.NaN()}, "eval: perplexity is NaN, not a finite number"},
		{"nll +Inf", stages.PerplexityResult{Perplexity: 1, NLL: math.Inf(1)}, "eval: nll is +Inf"},
		{"in a slice", nested{Rows: []row{{1}, {math.Inf(-1)}}}, "eval: rows[1].ms is -Inf"},
		{"in a map", nested{By: map[string]*row{"a": {math.NaN()}}}, "eval: by[a].ms is NaN"},
		{"in an interface", nested{Any: float32(math.Inf(1))}, "eval: any is +Inf"},
		{"behind a pointer", nested{Ppl: &stages.PerplexityResult{Perplexity: math.NaN()}}, "eval: Ppl.perplexity is NaN"},
		{"json:\"-\" is not printed", nested{Skip: math.NaN()}, ""},
		{"nil pointer", nested{}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := checkFinite("eval", c.v)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
	if err := printJSON("profile", map[string]any{"c": make(chan int)}); err == nil || !strings.Contains(err.Error(), "profile: encode the result as JSON") {
		t.Errorf("printJSON of a channel: %v, want the encoding error", err)
	}
}

// TestGenerateFlags: nonsense sampling flags are usage errors (status 2)
// naming each flag, found before the model is opened.
func TestGenerateFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--max-new-tokens", "-1"}, []string{"--max-new-tokens -1"}},
		{[]string{"--max-new-tokens", "0"}, []string{"--max-new-tokens 0"}},
		{[]string{"--temperature", "-0.5", "--top-k", "-1"}, []string{"--temperature -0.5", "--top-k -1"}},
		{[]string{"--temperature", "NaN"}, []string{"--temperature NaN"}},
		{[]string{"--top-p", "0"}, []string{"--top-p 0"}},
		{[]string{"--top-p", "1.01"}, []string{"--top-p 1.01"}},
	} {
		err := cmdGenerate(context.Background(), append([]string{"--model", t.TempDir(), "--prompt", "The cat"}, c.args...))
		if !errors.Is(err, errUsage) {
			t.Errorf("%v: error %v, want a usage error", c.args, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not name %q", c.args, err, w)
			}
		}
	}
	if err := checkSampling(1, deploy.SamplingOptions{Temperature: 0.8, TopK: 50, TopP: 1}); err != nil {
		t.Errorf("sensible flags refused: %v", err)
	}
}

// TestGenerateLength: a teacher asked to decode past its
// max_position_embeddings warns on stderr (its rotary embeddings run on,
// untrained there) and still generates; within them it does not warn. A
// deployment folder whose mohawk.json was edited to a 4 TB conv state is
// refused before anything is allocated (before: a Go fatal error, status
// 2).
func TestGenerateLength(t *testing.T) {
	teacher := filepath.Join(t.TempDir(), "teacher")
	if _, err := pipeline.ExportModel(filepath.Join("..", "..", "testdata", "demo", "teacher"), teacher, deploy.Options{}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("The cat sat on the mat. ", 400) // about 2,400 tokens
	for _, c := range []struct {
		prompt string
		warn   bool
	}{{"The cat", false}, {long, true}} {
		p := start(t, "generate", "--model", teacher, "--prompt", c.prompt, "--max-new-tokens", "2", "--temperature", "0")
		rc := p.wait(t)
		warned := strings.Contains(p.stderr.String(), "past the 2048 positions this teacher was trained on (max_position_embeddings)")
		if rc != 0 || warned != c.warn || !strings.HasPrefix(p.stdout.String(), c.prompt) {
			t.Errorf("prompt of %d bytes: exit %d, warned %v (want %v), stderr %q", len(c.prompt), rc, warned, c.warn, p.stderr.String())
		}
	}

	student := filepath.Join(t.TempDir(), "student")
	if _, err := pipeline.ExportModel(shareddata.Path(t, "reference", "phimamba-tiny-en"), student, deploy.Options{}); err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(filepath.Join(student, deploy.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	tampered := strings.ReplaceAll(string(m), "768,\n        3", "1000000,\n        1000000")
	if tampered == string(m) {
		t.Fatalf("no conv_state shape [-1, 768, 3] to edit in\n%s", m)
	}
	os.WriteFile(filepath.Join(student, deploy.ManifestFile), []byte(tampered), 0o644)
	p := start(t, "generate", "--model", student, "--prompt", "The cat")
	rc := p.wait(t)
	want := "mohawk.json: state past_key_values.0.conv_state has shape [-1 1000000 1000000], but " + student + "/model.onnx declares dimension 1 as 768"
	if rc != 1 || !strings.Contains(p.stderr.String(), want) {
		t.Errorf("tampered mohawk.json: exit %d, stderr %q; want 1 and %q", rc, p.stderr.String(), want)
	}
}
