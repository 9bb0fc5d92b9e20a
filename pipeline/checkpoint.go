package pipeline

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"mohawk/atomicfile"
	"mohawk/internal/filehash"
	"mohawk/safetensors"
	"mohawk/stages"
)

// Checkpoint file names. A checkpoint is a directory step-NNNNNNNN holding
// the tensors, the metadata and, written last, a manifest of SHA-256 sums;
// a directory without a complete, matching manifest is never resumed from.
const (
	ckptTensors  = "state.safetensors"
	ckptMeta     = "meta.json"
	ckptManifest = "MANIFEST.sha256"
	ckptPrefix   = "step-"
)

// Checkpoints implements stages.Checkpointer for one stage directory.
type Checkpoints struct {
	Dir      string // …/checkpoints
	KeepLast int    // newest complete checkpoints kept (the best is kept too)
	Log      func(format string, args ...any)
	// Key identifies the stage configuration (its plan hash); checkpoints
	// written under another key are neither resumed from nor kept.
	Key string
}

var _ stages.Checkpointer = (*Checkpoints)(nil)

// save writes the checkpoint of step: files into a temporary directory,
// fsynced, then the manifest, then an atomic rename; then retention.
func (c *Checkpoints) save(step int, t stages.Weights, meta stages.Meta) error {
	if err := checkFinite(step, t); err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	final := filepath.Join(c.Dir, fmt.Sprintf("%s%08d", ckptPrefix, step))
	tmp, err := os.MkdirTemp(c.Dir, tmpPrefix+filepath.Base(final)+"-")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	defer os.RemoveAll(tmp) // no-op after the rename
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	files := []string{ckptTensors, ckptMeta}
	if c.Key != "" {
		if err := atomicfile.WriteBytes(filepath.Join(tmp, ckptKey), []byte(c.Key+"\n")); err != nil {
			return fmt.Errorf("checkpoint step %d: %w", step, err)
		}
		files = append(files, ckptKey)
	}
	var named []safetensors.Named
	for _, n := range sortedNames(t) {
		named = append(named, safetensors.Named{Name: n, T: t[n]})
	}
	if err := safetensors.Write(filepath.Join(tmp, ckptTensors), named, nil); err != nil {
		return fmt.Errorf("checkpoint step %d: %w", step, err)
	}
	mb, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(tmp, ckptMeta), mb); err != nil {
		return fmt.Errorf("checkpoint step %d: %w", step, err)
	}
	if err := writeManifest(tmp, files); err != nil {
		return fmt.Errorf("checkpoint step %d: %w", step, err)
	}
	if err := retire(final); err != nil { // a stale directory of the same step
		return fmt.Errorf("checkpoint step %d: %w", step, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("checkpoint step %d: %w", step, err)
	}
	if err := atomicfile.SyncDir(c.Dir); err != nil {
		return err
	}
	return c.prune()
}

// writeManifest records the SHA-256 of each file, one "sum  name" line,
// written atomically after the files themselves were synced.
func writeManifest(dir string, files []string) error {
	var b strings.Builder
	for _, f := range files {
		sum, err := filehash.SHA256(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s  %s\n", sum, f)
	}
	return atomicfile.WriteBytes(filepath.Join(dir, ckptManifest), []byte(b.String()))
}

// verify checks a checkpoint directory against its manifest.
func verify(dir string) error {
	f, err := os.Open(filepath.Join(dir, ckptManifest))
	if err != nil {
		return fmt.Errorf("no manifest (incomplete checkpoint)")
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || strings.ContainsAny(name, `/\`) || name == ".." {
			return fmt.Errorf("malformed manifest line %q", sc.Text())
		}
		got, err := filehash.SHA256(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if got != sum {
			return fmt.Errorf("%s: sha256 %s, manifest says %s (corrupt file)", name, got, sum)
		}
		seen[name] = true
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if !seen[ckptTensors] || !seen[ckptMeta] {
		return fmt.Errorf("manifest does not cover %s and %s", ckptTensors, ckptMeta)
	}
	return nil
}

// steps lists checkpoint directories, newest first.
func (c *Checkpoints) steps() []int {
	ents, _ := os.ReadDir(c.Dir)
	var out []int
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), ckptPrefix) {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), ckptPrefix)); err == nil {
			out = append(out, n)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(out)))
	return out
}

func (c *Checkpoints) path(step int) string {
	return filepath.Join(c.Dir, fmt.Sprintf("%s%08d", ckptPrefix, step))
}

// Latest loads the newest checkpoint whose manifest verifies; damaged or
// incomplete ones are reported and skipped.
func (c *Checkpoints) Latest() (int, stages.Weights, stages.Meta, bool, error) {
	for _, step := range c.steps() {
		dir := c.path(step)
		if key, ok := c.foreign(dir); ok {
			c.logf("checkpoint %s was written for another configuration of this stage (key %s, now %s); not resuming from it", dir, key, c.Key)
			continue
		}
		if err := verify(dir); err != nil {
			c.logf("checkpoint %s is not usable (%v); trying an older one", dir, err)
			continue
		}
		w, meta, err := readCheckpoint(dir)
		if err != nil {
			c.logf("checkpoint %s: %v; trying an older one", dir, err)
			continue
		}
		return step, w, meta, true, nil
	}
	return 0, nil, stages.Meta{}, false, nil
}

func readCheckpoint(dir string) (stages.Weights, stages.Meta, error) {
	var meta stages.Meta
	mb, err := os.ReadFile(filepath.Join(dir, ckptMeta))
	if err != nil {
		return nil, meta, err
	}
	if err := json.Unmarshal(mb, &meta); err != nil {
		return nil, meta, fmt.Errorf("%s: %w", ckptMeta, err)
	}
	f, err := safetensors.Open(filepath.Join(dir, ckptTensors))
	if err != nil {
		return nil, meta, err
	}
	defer f.Close()
	w := stages.Weights{}
	for _, n := range f.Names() {
		t, err := f.Tensor(n)
		if err != nil {
			return nil, meta, err
		}
		w[n] = t
	}
	return w, meta, nil
}

func (c *Checkpoints) logf(format string, args ...any) {
	if c.Log != nil {
		c.Log(format, args...)
	}
}

// prune keeps the KeepLast newest complete checkpoints and the one with the
// lowest held-out loss; it also removes leftover temporary directories.
func (c *Checkpoints) prune() error {
	if ents, err := os.ReadDir(c.Dir); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), tmpPrefix) {
				os.RemoveAll(filepath.Join(c.Dir, e.Name()))
			}
		}
	}
	if c.KeepLast <= 0 {
		return nil
	}
	steps := c.steps()
	best, bestLoss := -1, 0.0
	for _, s := range steps {
		var m stages.Meta
		if _, ok := c.foreign(c.path(s)); ok {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(c.path(s), ckptMeta)); err == nil && json.Unmarshal(b, &m) == nil {
			if m.ValLoss > 0 && (best < 0 || m.ValLoss < bestLoss) {
				best, bestLoss = s, m.ValLoss
			}
		}
	}
	var errs []error
	kept := 0
	for _, s := range steps {
		if key, ok := c.foreign(c.path(s)); ok {
			c.logf("removing checkpoint %s of another configuration of this stage (key %s, now %s)", c.path(s), key, c.Key)
		} else if kept++; kept <= c.KeepLast || s == best {
			continue
		}
		if err := retire(c.path(s)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
