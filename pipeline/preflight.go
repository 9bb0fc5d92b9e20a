package pipeline

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"mohawk/graphs/models/family"
	"mohawk/runtime"
	"mohawk/stages"
)

// The preflight check runs after the plan is made and before any stage
// does work: it estimates the disk space the remaining stages will write
// (checkpoints with their AdamW moments, stage outputs, the export) and the
// memory the largest stage needs, compares them with what the machine has,
// and fails with both numbers and what to change. $MOHAWK_PREFLIGHT=warn
// turns the failure into a warning, =off skips the check.

// runtimeOverheadBytes is the resident memory of ONNX Runtime, its thread
// pools and the Go runtime beyond the planned tensors (about 200 MiB
// measured on the demo's tiny run), rounded up.
const runtimeOverheadBytes = 256 << 20

// Resources is what the remaining stages of a plan need and what is there.
type Resources struct {
	DiskPath    string   `json:"disk_path"`   // where the run writes (the run directory or its nearest existing parent)
	DiskNeeded  int64    `json:"disk_needed"` // bytes still to be written, net of what the unfinished stages already hold
	DiskFree    int64    `json:"disk_free"`   // -1: unknown
	DiskParts   []string `json:"disk_parts"`  // how DiskNeeded adds up
	MemWhat     string   `json:"mem_what"`    // "host memory" or "CUDA memory"
	MemNeeded   int64    `json:"mem_needed"`
	MemAvail    int64    `json:"mem_available"` // -1: unknown
	MemSource   string   `json:"mem_source"`    // where MemAvail comes from
	HostNeeded  int64    `json:"host_needed"`   // on a GPU provider: host copies of weights and optimizer state
	HostAvail   int64    `json:"host_available"`
	Notes       []string `json:"notes,omitempty"`
	Unfinished  int      `json:"unfinished_stages"`
	CheckpointN int      `json:"checkpoints_kept"` // per stage at the peak of a save
}

// sysProbe reads the machine; tests replace it.
type sysProbe struct {
	freeDisk     func(path string) (int64, error)
	memAvailable func() (int64, string, error)
}

var realProbe = sysProbe{freeDisk: statfsFree, memAvailable: hostMemAvailable}

// preflight measures and checks the resources of w's plan, printing one
// line; on a shortage it returns an error (a warning in a dry run or with
// $MOHAWK_PREFLIGHT=warn).
func preflight(w *work, out io.Writer, dryRun bool) error {
	mode := os.Getenv("MOHAWK_PREFLIGHT")
	if mode == "off" {
		return nil
	}
	r := measureResources(w.plan, w.cfg, w.teacher.Config, w.student.Config, realProbe)
	fmt.Fprintln(out, r.summary())
	err := r.check(w.cfg)
	if err != nil && (dryRun || mode == "warn") {
		fmt.Fprintf(out, "warning: %v\n", err)
		return nil
	}
	return err
}

// measureResources estimates the needs of the stages of p not yet done.
func measureResources(p *Plan, cfg *Config, tc family.Teacher, sc family.Student, probe sysProbe) Resources {
	r := Resources{MemAvail: -1, DiskFree: -1, HostAvail: -1}
	keep := cfg.Checkpoints.KeepLast
	var ckpt, outputs, export, graphs, existing int64
	large := 4*(tc.NumParams()+sc.NumParams()) >= 2<<30
	for _, s := range p.Stages {
		if stageDone(s) {
			continue
		}
		r.Unfinished++
		existing += duBytes(s.Dir)
		if o := s.Train; o != nil {
			saves := 1
			if o.CheckpointEvery > 0 {
				saves = o.Steps/o.CheckpointEvery + 1
			}
			// keep_last newest, the best by held-out loss, and the one being
			// written before retention runs.
			n := min(saves, keep+2)
			r.CheckpointN = max(r.CheckpointN, n)
			ckpt += int64(n) * 3 * 4 * trainableParams(s, tc, sc) // parameters + two moments, float32
			if s.Kind == KindPretrain && s.PretrainWhat != "student" {
				b := 4 * tc.NumParams()
				if s.SaveDType == "float16" {
					b /= 2
				}
				outputs += b
			} else {
				outputs += 4 * sc.NumParams()
			}
			if large { // step and evaluation graphs saved with external data
				graphs += 2 * 4 * (tc.NumParams() + sc.NumParams())
			}
		}
		if e := s.Export; e != nil {
			existing += duBytes(e.Out)
			div := int64(1)
			if e.FP16 {
				div = 2
			}
			export += 4 * sc.NumParams() / div
			if e.Teacher {
				export += 4 * tc.NumParams() / div
			}
		}
	}
	r.DiskNeeded = max(0, ckpt+outputs+export+graphs-existing)
	r.DiskParts = []string{"checkpoints " + stages.HumanBytes(ckpt), "stage outputs " + stages.HumanBytes(outputs), "export " + stages.HumanBytes(export)}
	if graphs > 0 {
		r.DiskParts = append(r.DiskParts, "external-data graphs "+stages.HumanBytes(graphs))
	}
	if existing > 0 {
		r.DiskParts = append(r.DiskParts, "less "+stages.HumanBytes(existing)+" already there")
	}
	r.DiskPath = existingParent(p.RunDir)
	if free, err := probe.freeDisk(r.DiskPath); err == nil {
		r.DiskFree = free
	} else {
		r.Notes = append(r.Notes, fmt.Sprintf("free disk space not checked: %v", err))
	}

	m := p.Memory
	hostAvail, src, err := probe.memAvailable()
	if err != nil {
		r.Notes = append(r.Notes, fmt.Sprintf("host memory not checked: %v", err))
		hostAvail = -1
	}
	switch cfg.Runtime.Provider {
	case "", runtime.ProviderCPU:
		r.MemWhat, r.MemNeeded, r.MemAvail, r.MemSource = "host memory", m.TotalBytes+runtimeOverheadBytes, hostAvail, src
	default:
		// The Go side holds both models and the optimizer state between
		// steps; the device holds the planned total.
		r.HostNeeded, r.HostAvail = m.TeacherBytes+m.StudentBytes+m.OptimizerBytes+runtimeOverheadBytes, hostAvail
		r.MemWhat, r.MemNeeded = "CUDA memory", m.TotalBytes
		if lim := cfg.Runtime.CUDA.MemLimitBytes; lim > 0 {
			r.MemAvail, r.MemSource = lim, "runtime.cuda.mem_limit_bytes"
		} else {
			r.Notes = append(r.Notes, "device memory not checked: ONNX Runtime cannot report it; set runtime.cuda.mem_limit_bytes to the memory the run may use to have it checked")
		}
	}
	if r.Unfinished == 0 {
		r.DiskNeeded, r.MemNeeded, r.HostNeeded = 0, 0, 0
	}
	return r
}

// check turns a shortage into an error naming the sizes and the settings to
// change.
func (r Resources) check(cfg *Config) error {
	if r.Unfinished == 0 {
		return nil
	}
	var errs []error
	if r.DiskFree >= 0 && r.DiskNeeded > r.DiskFree {
		errs = append(errs, fmt.Errorf("not enough disk space at %s: the remaining stages write about %s (%s; up to %d checkpoints per stage), and %s is free; "+
			"free space there, set output_dir to a larger disk, or lower checkpoints.keep_last (now %d) or raise training.checkpoint_every",
			r.DiskPath, stages.HumanBytes(r.DiskNeeded), strings.Join(r.DiskParts, ", "), r.CheckpointN, stages.HumanBytes(r.DiskFree), cfg.Checkpoints.KeepLast))
	}
	t := cfg.Training
	if r.MemAvail >= 0 && r.MemNeeded > r.MemAvail {
		errs = append(errs, fmt.Errorf("not enough %s: the largest stage needs about %s, and %s is available (%s); "+
			"lower training.micro_batch (now %d) or training.seq_len (now %d), or the largest stage's own micro_batch/seq_len",
			r.MemWhat, stages.HumanBytes(r.MemNeeded), stages.HumanBytes(r.MemAvail), r.MemSource, t.MicroBatch, t.SeqLen))
	}
	if r.HostAvail >= 0 && r.HostNeeded > r.HostAvail {
		errs = append(errs, fmt.Errorf("not enough host memory: the teacher, the student and the optimizer state need about %s on the host, and %s is available; "+
			"use a machine with more memory or a smaller model", stages.HumanBytes(r.HostNeeded), stages.HumanBytes(r.HostAvail)))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("preflight: %w (set MOHAWK_PREFLIGHT=warn to run anyway)", errors.Join(errs...))
}

func (r Resources) summary() string {
	if r.Unfinished == 0 {
		return "preflight: every stage is done"
	}
	disk := "unknown"
	if r.DiskFree >= 0 {
		disk = stages.HumanBytes(r.DiskFree)
	}
	mem := "unknown"
	if r.MemAvail >= 0 {
		mem = stages.HumanBytes(r.MemAvail)
	}
	s := fmt.Sprintf("preflight: disk %s needed, %s free at %s; %s %s needed, %s available",
		stages.HumanBytes(r.DiskNeeded), disk, r.DiskPath, r.MemWhat, stages.HumanBytes(r.MemNeeded), mem)
	for _, n := range r.Notes {
		s += "\n  note: " + n
	}
	return s
}

// trainableParams counts the parameters a training stage updates (the
// checkpoint holds them and their two AdamW moments).
func trainableParams(s StagePlan, tc family.Teacher, sc family.Student) int64 {
	shapes := sc.ParamShapes()
	count := func(names []string) int64 {
		var n int64
		for _, name := range names {
			if sh, ok := shapes[name]; ok {
				k := int64(1)
				for _, d := range sh {
					k *= d
				}
				n += k
			}
		}
		return n
	}
	switch s.Kind {
	case KindOrient, KindAlign:
		var names []string
		for i := 0; i < sc.Sizes().Layers; i++ {
			names = append(names, sc.MixerParams(i, s.Kind == KindOrient)...)
		}
		return count(names)
	case KindDistill:
		if s.Distill != nil && (s.Distill.MixersOnly || s.Distill.FreezeAttention) {
			var names []string
			for n := range shapes {
				if sc.IsAttentionParam(n) {
					if !s.Distill.FreezeAttention {
						names = append(names, n)
					}
				} else if !s.Distill.MixersOnly || sc.IsMixer(n) {
					names = append(names, n)
				}
			}
			return count(names)
		}
		return sc.NumParams()
	case KindPretrain:
		if s.PretrainWhat == "student" {
			return sc.NumParams()
		}
		return tc.NumParams()
	}
	return 0
}

// stageDone reports whether the stage's done.json carries its hash.
func stageDone(s StagePlan) bool {
	b, err := os.ReadFile(filepath.Join(s.Dir, doneFile))
	if err != nil {
		return false
	}
	var rec StageRecord
	return json.Unmarshal(b, &rec) == nil && rec.Hash == s.Hash
}

// duBytes is the size of the regular files under dir (0 if absent).
func duBytes(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// existingParent is path or its nearest existing ancestor.
func existingParent(path string) string {
	p := filepath.Clean(path)
	for {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}

// statfsFree is the space available to an unprivileged writer at path.
func statfsFree(path string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", path, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// hostMemAvailable is /proc/meminfo's MemAvailable, lowered to the room left
// under a cgroup (v2 or v1) memory limit when one applies.
func hostMemAvailable() (int64, string, error) {
	avail, err := meminfoAvailable("/proc/meminfo")
	if err != nil {
		return 0, "", err
	}
	src := "MemAvailable in /proc/meminfo"
	for _, c := range [][2]string{
		{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
		{"/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"},
	} {
		limit, err1 := readInt(c[0])
		used, err2 := readInt(c[1])
		if err1 == nil && err2 == nil && limit > 0 && limit < 1<<60 {
			if room := max(0, limit-used); room < avail {
				avail, src = room, "room under the cgroup memory limit "+c[0]
			}
			break
		}
	}
	return avail, src, nil
}

func meminfoAvailable(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			fields := strings.Fields(rest)
			if len(fields) == 0 {
				break
			}
			kib, err := strconv.ParseInt(fields[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", path, err)
			}
			return kib << 10, nil
		}
	}
	return 0, fmt.Errorf("%s has no MemAvailable line", path)
}

func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}
