package pipeline

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"mohawk/export/onnxpb"
	"mohawk/internal/strict"
	"mohawk/safetensors"
)

// TestCrashResume is the kill -9 test: it builds cmd/pipeline, runs a tiny
// pipeline (orient 4 steps + distill 8 steps, a checkpoint after every
// step, keep_last 2, then export) once uninterrupted for reference, then
// again and again, each time SIGKILLing the process at a random moment,
// scanning the run directory for torn files, and re-running it (sometimes
// killing the re-run too) until it completes. Every re-run must resume
// from the newest complete checkpoint, and the final stage outputs and the
// exported model must equal the reference byte for byte.
//
// Kills are drawn from a seeded generator: half at a delay uniform over
// the reference run's duration, the rest aimed at a random checkpoint write
// (a moment after its temporary directory appears) or at the export, which
// are too short on this tiny model to be hit often by uniform delays. Each
// kill is classified by what it left behind and the last line printed.
//
// $MOHAWK_CRASH_KILLS sets the number of kills (default 5, the CI version;
// make crash-test runs 50), $MOHAWK_CRASH_SEED the seed, and
// $MOHAWK_CRASH_REPORT a file for the JSON outcome.
func TestCrashResume(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/pipeline and runs it many times")
	}
	kills := envInt(t, "MOHAWK_CRASH_KILLS", 5)
	seed := uint64(envInt(t, "MOHAWK_CRASH_SEED", 1))
	bin := buildPipeline(t)
	base := t.TempDir()
	h := &crashHarness{t: t, bin: bin, base: base, rng: rand.New(rand.NewPCG(seed, 0x6d6f6861776b))}

	// Reference: an uninterrupted run.
	ref := h.config("ref")
	start := time.Now()
	lines, err := h.run(ref, nil)
	if err != nil {
		t.Fatalf("reference run: %v\n%s", err, joinLines(lines))
	}
	h.total = time.Since(start)
	for _, l := range lines {
		if strings.Contains(l.text, "stage export (export): starting") {
			h.exportAt = l.at
		}
	}
	want := h.artifacts(ref)
	t.Logf("reference run: %s, %d artifacts", h.total.Round(time.Millisecond), len(want))

	rep := crashReport{Kills: kills, Seed: seed, ReferenceSeconds: h.total.Seconds(), Phases: map[string]int{}, Modes: map[string]int{}}
	for iter := 0; rep.Killed < kills; iter++ {
		name := fmt.Sprintf("k%03d", iter)
		cfg := h.config(name)
		for attempt := 1; ; attempt++ {
			var expect *resumeExpect
			if attempt > 1 {
				expect = h.expectResume(cfg)
			}
			var k *killPlan
			if attempt == 1 || (rep.Killed < kills && h.rng.Float64() < 0.3) {
				k = h.killPlan(attempt > 1)
			}
			lines, err := h.run(cfg, k)
			if attempt > 1 {
				h.checkResumeLines(name, lines, expect, err == nil)
			}
			if k == nil || !k.fired {
				if err != nil {
					t.Fatalf("%s attempt %d: %v\n%s", name, attempt, err, joinLines(lines))
				}
				break
			}
			rep.Killed++
			phase := h.classify(cfg, lines)
			rep.Phases[phase]++
			rep.Modes[k.mode]++
			torn := h.scan(cfg)
			rep.Leftovers += torn.leftovers
			rep.TornLogLines += torn.tornLines
			rep.Events = append(rep.Events, crashEvent{Run: name, Attempt: attempt, Mode: k.mode, DelayMS: float64(k.at.Microseconds()) / 1000, Phase: phase,
				Leftovers: torn.leftovers, CheckpointsVerified: torn.checkpoints})
			t.Logf("%s attempt %d: %-10s killed at %7.1f ms: %s (%d leftovers, %d checkpoints verified)",
				name, attempt, k.mode, float64(k.at.Microseconds())/1000, phase, torn.leftovers, torn.checkpoints)
		}
		got := h.artifacts(cfg)
		for f, b := range want {
			if !bytes.Equal(got[f], b) {
				t.Fatalf("%s: %s differs from the uninterrupted run (%d vs %d bytes)", name, f, len(got[f]), len(b))
			}
		}
		if left := h.leftovers(cfg); len(left) > 0 {
			t.Errorf("%s: temporary files survived the completed run: %v", name, left)
		}
		rep.RunsCompared++
		os.RemoveAll(filepath.Join(base, name))
	}
	rep.Resumes = h.resumes
	rep.AllEqual = !t.Failed()
	var phases []string
	for p, n := range rep.Phases {
		phases = append(phases, fmt.Sprintf("%s %d", p, n))
	}
	sort.Strings(phases)
	t.Logf("%d kills over %d runs (%s); %d resumes checked; every completed run equal to the reference: %v",
		rep.Killed, rep.RunsCompared, strings.Join(phases, ", "), rep.Resumes, rep.AllEqual)
	if path := os.Getenv("MOHAWK_CRASH_REPORT"); path != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Error(err)
		}
	}
}

type crashReport struct {
	Kills            int            `json:"kills_requested"`
	Seed             uint64         `json:"seed"`
	ReferenceSeconds float64        `json:"reference_seconds"`
	Killed           int            `json:"killed"`
	RunsCompared     int            `json:"runs_compared"`
	Resumes          int            `json:"resumes_checked"`
	AllEqual         bool           `json:"all_equal"`
	Phases           map[string]int `json:"phases"`
	Modes            map[string]int `json:"modes"`
	Leftovers        int            `json:"leftovers_ignored"`
	TornLogLines     int            `json:"torn_metrics_lines"`
	Events           []crashEvent   `json:"events"`
}

type crashEvent struct {
	Run                 string  `json:"run"`
	Attempt             int     `json:"attempt"`
	Mode                string  `json:"mode"`
	DelayMS             float64 `json:"delay_ms"`
	Phase               string  `json:"phase"`
	Leftovers           int     `json:"leftovers"`
	CheckpointsVerified int     `json:"checkpoints_verified"`
}

func envInt(t *testing.T, key string, def int) int {
	s := os.Getenv(key)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("$%s: %v", key, err)
	}
	return n
}

// buildPipeline builds cmd/pipeline into a temporary directory.
func buildPipeline(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		strict.Unavailable(t, "no go tool to build cmd/pipeline: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "pipeline")
	cmd := exec.Command(goTool, "build", "-o", bin, "mohawk/cmd/pipeline")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/pipeline: %v\n%s", err, out)
	}
	return bin
}

type crashHarness struct {
	t        *testing.T
	bin      string
	base     string
	rng      *rand.Rand
	total    time.Duration // the reference run's wall time
	exportAt time.Duration // when the reference run started its export
	resumes  int
}

// crashStages: a checkpoint after every step, so kills land in saves and
// retention often.
const crashStages = `  - {kind: orient, tokens: 512}
  - {kind: distill, tokens: 1024, lr: 0.002}
  - {kind: export}`

// config writes the tiny pipeline for run directory base/name/runs/tiny.
func (h *crashHarness) config(name string) string {
	dir := filepath.Join(h.base, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.t.Fatal(err)
	}
	y := tinyYAML(h.t, dir, filepath.Join(h.base, "cache"), crashStages,
		"training: {seq_len: 32, micro_batch: 2, tokens_per_update: 128, eval_windows: 2, checkpoint_every: 1}",
		"checkpoints: {keep_last: 2}")
	path := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(path, []byte(y), 0o644); err != nil {
		h.t.Fatal(err)
	}
	return path
}

func runDirOf(cfg string) string { return filepath.Join(filepath.Dir(cfg), "runs", "tiny") }

// killPlan says when to SIGKILL a run.
type killPlan struct {
	mode  string        // uniform | checkpoint | export
	delay time.Duration // uniform: from the start; else from the trigger
	save  int           // checkpoint: which save (0-based) triggers
	fired bool
	// set when fired
	at time.Duration
}

func (h *crashHarness) killPlan(rerun bool) *killPlan {
	r := h.rng.Float64()
	switch {
	case rerun || r < 0.5:
		return &killPlan{mode: "uniform", delay: time.Duration(h.rng.Float64() * float64(h.total))}
	case r < 0.8:
		// A save takes about 2 ms (orient) to 17 ms (distill) here; a
		// delay past its end kills the retention or the next step.
		return &killPlan{mode: "checkpoint", save: h.rng.IntN(12), delay: time.Duration(h.rng.Float64() * float64(20*time.Millisecond))}
	}
	d := h.total - h.exportAt
	return &killPlan{mode: "export", delay: time.Duration(h.rng.Float64() * float64(max(d, time.Millisecond)))}
}

type outLine struct {
	at   time.Duration
	text string
}

func joinLines(ls []outLine) string {
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "%8.3fs %s\n", l.at.Seconds(), l.text)
	}
	return b.String()
}

// run starts the pipeline on cfg and, with k, kills it as k says. It
// returns the output lines (all of them: the pipe is drained after the
// kill) and the process's error.
func (h *crashHarness) run(cfg string, k *killPlan) ([]outLine, error) {
	cmd := exec.Command(h.bin, "run", cfg)
	pr, pw, err := os.Pipe()
	if err != nil {
		h.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	start := time.Now()
	if err := cmd.Start(); err != nil {
		h.t.Fatal(err)
	}
	pw.Close()
	var mu sync.Mutex
	var lines []outLine
	exportSeen := make(chan struct{})
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := false
		for sc.Scan() {
			l := outLine{at: time.Since(start), text: sc.Text()}
			mu.Lock()
			lines = append(lines, l)
			mu.Unlock()
			if !once && strings.Contains(l.text, "stage export (export): starting") {
				once = true
				close(exportSeen)
			}
		}
	}()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	kill := func() {
		k.at = time.Since(start)
		k.fired = true
		cmd.Process.Signal(syscall.SIGKILL)
	}
	var werr error
	if k == nil {
		werr = <-exited
	} else {
		switch k.mode {
		case "uniform":
			select {
			case werr = <-exited:
			case <-time.After(k.delay):
				kill()
				werr = <-exited
			}
		case "export":
			select {
			case werr = <-exited:
			case <-exportSeen:
				time.Sleep(k.delay)
				kill()
				werr = <-exited
			}
		case "checkpoint":
			werr = h.killAtSave(cmd, cfg, k, exited, kill)
		}
	}
	<-readDone
	pr.Close()
	mu.Lock()
	defer mu.Unlock()
	return lines, werr
}

// killAtSave polls the checkpoint directories for the k.save-th temporary
// checkpoint directory and kills k.delay after it appears.
func (h *crashHarness) killAtSave(cmd *exec.Cmd, cfg string, k *killPlan, exited chan error, kill func()) error {
	rd := runDirOf(cfg)
	dirs := []string{filepath.Join(rd, "stages", "00-orient", "checkpoints"), filepath.Join(rd, "stages", "01-distill", "checkpoints")}
	seen := map[string]bool{}
	for {
		select {
		case err := <-exited:
			return err
		default:
		}
		for _, d := range dirs {
			ents, _ := os.ReadDir(d)
			for _, e := range ents {
				n := filepath.Join(d, e.Name())
				if strings.HasPrefix(e.Name(), ".tmp-step-") && !seen[n] {
					seen[n] = true
					if len(seen) == k.save+1 {
						time.Sleep(k.delay)
						kill()
						return <-exited
					}
				}
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// classify names the phase a kill landed in from what the process left
// behind (temporary files are only there while a write is in flight) and
// the last line it printed.
func (h *crashHarness) classify(cfg string, lines []outLine) string {
	rd := runDirOf(cfg)
	phase := ""
	filepath.WalkDir(rd, func(path string, d fs.DirEntry, err error) error {
		if err != nil || phase != "" {
			return nil
		}
		n := d.Name()
		switch {
		case strings.HasPrefix(n, ".tmp-step-"):
			files, _ := os.ReadDir(path)
			have := map[string]bool{}
			for _, f := range files {
				have[f.Name()] = true
				if strings.HasPrefix(f.Name(), "."+ckptTensors+".tmp-") {
					have["writing"] = true
				}
			}
			switch { // Save writes KEY, the tensors, meta.json, then the manifest
			case have[ckptManifest]:
				phase = "checkpoint write: manifest written, before the rename"
			case have[ckptMeta]:
				phase = "checkpoint write: hashing files for the manifest"
			case have[ckptTensors]:
				phase = "checkpoint write: meta.json"
			default:
				phase = "checkpoint write: tensors"
			}
		case strings.HasPrefix(n, ".tmp-retired-"):
			phase = "checkpoint retention (retiring an old checkpoint)"
		case strings.HasPrefix(n, ".") && strings.Contains(n, ".tmp-"):
			switch {
			case strings.Contains(path, string(filepath.Separator)+"export"+string(filepath.Separator)):
				phase = "export"
			case strings.Contains(path, string(filepath.Separator)+outputDir+string(filepath.Separator)):
				phase = "stage output write"
			default:
				phase = "atomic write of " + strings.SplitN(strings.TrimPrefix(n, "."), ".tmp-", 2)[0]
			}
		}
		return nil
	})
	if phase != "" {
		return phase
	}
	last := ""
	if len(lines) > 0 {
		last = lines[len(lines)-1].text
	}
	switch {
	case last == "" || strings.HasPrefix(last, "plan ") || strings.HasPrefix(last, "  ") || strings.HasPrefix(last, "preflight") || strings.Contains(last, "already done"):
		return "start-up (load, plan, skip finished stages)"
	case strings.Contains(last, "stage export (export): starting"):
		return "export"
	case strings.Contains(last, "perplexity"):
		return "evaluation"
	case strings.Contains(last, "stage export: done") || strings.HasPrefix(last, "done:"):
		return "report"
	case regexp.MustCompile(`^stage \w+: done`).MatchString(last):
		return "stage end (done.json written)"
	case strings.Contains(last, "): starting") || strings.Contains(last, "resuming"):
		return "stage start (graphs, sessions, first evaluation)"
	case regexp.MustCompile(`^stage \w+: \d+/\d+`).MatchString(last):
		return "training step (or a save after its rename)"
	}
	return "other: " + last
}

type tornScan struct {
	leftovers   int
	checkpoints int
	tornLines   int
}

// scan checks every file of the run directory: model and checkpoint
// tensors parse, checkpoint directories verify against their manifests,
// JSON files parse, ONNX models decode, metrics.jsonl has at most a torn
// last line; temporary files are counted (they are ignored and removed by
// the next run).
func (h *crashHarness) scan(cfg string) tornScan {
	t := h.t
	var r tornScan
	rd := runDirOf(cfg)
	if _, err := os.Stat(rd); os.IsNotExist(err) {
		return r // killed before the run directory was made
	}
	filepath.WalkDir(rd, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Errorf("scan %s: %v", path, err)
			return nil
		}
		n := d.Name()
		if isLeftover(n) {
			r.leftovers++
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if strings.HasPrefix(n, ckptPrefix) {
				if err := verify(path); err != nil {
					t.Errorf("torn checkpoint %s: %v", path, err)
				}
				if _, _, err := readCheckpoint(path); err != nil {
					t.Errorf("checkpoint %s does not load: %v", path, err)
				}
				r.checkpoints++
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case strings.HasSuffix(n, ".safetensors"):
			f, err := safetensors.Open(path)
			if err != nil {
				t.Errorf("torn safetensors %s: %v", path, err)
				return nil
			}
			for _, name := range f.Names() {
				if _, err := f.Tensor(name); err != nil {
					t.Errorf("%s: tensor %s: %v", path, name, err)
				}
			}
			f.Close()
		case strings.HasSuffix(n, ".json"):
			b, _ := os.ReadFile(path)
			if !json.Valid(b) {
				t.Errorf("torn JSON file %s (%d bytes)", path, len(b))
			}
		case strings.HasSuffix(n, ".onnx"):
			b, _ := os.ReadFile(path)
			var m onnxpb.ModelProto
			if err := proto.Unmarshal(b, &m); err != nil || m.Graph == nil {
				t.Errorf("torn ONNX model %s: %v", path, err)
			}
		case n == metricsLog:
			b, _ := os.ReadFile(path)
			ls := bytes.Split(b, []byte("\n"))
			for i, l := range ls {
				if len(l) > 0 && !json.Valid(l) {
					if i == len(ls)-1 {
						r.tornLines++ // a record cut by the kill, no newline yet
					} else {
						t.Errorf("%s: line %d is not JSON: %q", path, i+1, l)
					}
				}
			}
		}
		return nil
	})
	return r
}

// leftovers lists temporary files under the run directory.
func (h *crashHarness) leftovers(cfg string) []string {
	var out []string
	filepath.WalkDir(runDirOf(cfg), func(path string, d fs.DirEntry, err error) error {
		if err == nil && isLeftover(d.Name()) {
			out = append(out, path)
		}
		return nil
	})
	return out
}

// artifacts reads the files the comparison covers: every stage output and
// the export.
func (h *crashHarness) artifacts(cfg string) map[string][]byte {
	rd := runDirOf(cfg)
	out := map[string][]byte{}
	for _, f := range []string{
		"stages/00-orient/output/model.safetensors", "stages/00-orient/output/config.json",
		"stages/01-distill/output/model.safetensors", "stages/01-distill/output/config.json",
		"export/student/model.onnx", "export/student/config.json", "export/student/genai_config.json", "export/student/mohawk.json",
	} {
		b, err := os.ReadFile(filepath.Join(rd, f))
		if err != nil {
			h.t.Fatalf("artifact: %v", err)
		}
		out[f] = b
	}
	return out
}

// resumeExpect is, for the first unfinished training stage, the step the
// next run must resume from (0: a fresh start).
type resumeExpect struct {
	stage string
	step  int
}

// expectResume finds the newest checkpoint that verifies and carries the
// stage's key, of the first training stage not done.
func (h *crashHarness) expectResume(cfg string) *resumeExpect {
	b, err := os.ReadFile(filepath.Join(runDirOf(cfg), "plan.json"))
	if err != nil {
		return nil // killed before the plan was written
	}
	var p Plan
	if err := json.Unmarshal(b, &p); err != nil {
		h.t.Fatalf("plan.json: %v", err)
	}
	for _, s := range p.Stages {
		if s.Train == nil || stageDone(s) {
			continue
		}
		c := &Checkpoints{Dir: filepath.Join(s.Dir, "checkpoints"), Key: s.Hash}
		step, _, _, ok, _ := c.Latest()
		if !ok {
			step = 0
		}
		return &resumeExpect{stage: s.Kind, step: step}
	}
	return nil
}

var resumeLine = regexp.MustCompile(`^stage (\w+): resuming at step (\d+)/`)

// checkResumeLines checks the run resumed its first unfinished stage where
// expect says, when the run got far enough to have said so.
func (h *crashHarness) checkResumeLines(name string, lines []outLine, expect *resumeExpect, completed bool) {
	if expect == nil {
		return
	}
	decisive := completed
	got := 0
	past := regexp.MustCompile(`^stage ` + expect.stage + `: (resuming|\d+/\d+|done)`)
	for _, l := range lines {
		if m := resumeLine.FindStringSubmatch(l.text); m != nil && m[1] == expect.stage && got == 0 {
			got, _ = strconv.Atoi(m[2])
		}
		if past.MatchString(l.text) {
			decisive = true
		}
	}
	if !decisive {
		return
	}
	h.resumes++
	if got != expect.step {
		h.t.Errorf("%s: stage %s resumed at step %d, but the newest complete checkpoint is step %d\n%s", name, expect.stage, got, expect.step, joinLines(lines))
	}
}
