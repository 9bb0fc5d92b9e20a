package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"mohawk/tensors"
)

// The file names Hugging Face gives a checkpoint's weights.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
)

// Set is a checkpoint: a single safetensors file, or the shards listed by an
// index. Shards are mapped the first time one of their tensors is asked
// for. Its methods are safe for concurrent use.
type Set struct {
	source     string            // the index, or the single file
	dir        string            // where shards live
	root       *os.Root          // dir (or its hub-cache repository), for opening shards without escaping it; nil for a single file
	rootPrefix string            // dir relative to root
	shardOf    map[string]string // tensor name → shard file name, relative to dir
	names      []string

	mu     sync.Mutex
	files  map[string]*File // opened shards by file name
	closed bool
}

// OpenDir opens the checkpoint in dir: model.safetensors if it exists,
// otherwise the shards that model.safetensors.index.json lists.
func OpenDir(dir string) (*Set, error) {
	single := filepath.Join(dir, SingleFileName)
	switch _, err := os.Stat(single); {
	case err == nil:
		return openSingle(single)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("opening checkpoint: %w", err)
	}
	index := filepath.Join(dir, IndexFileName)
	switch _, err := os.Stat(index); {
	case err == nil:
		return openIndex(index)
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s: holds neither %s nor %s; pass a Hugging Face checkpoint directory or a .safetensors file", dir, SingleFileName, IndexFileName)
	default:
		return nil, fmt.Errorf("opening checkpoint: %w", err)
	}
}

// OpenFileOrDir opens a checkpoint directory (see OpenDir), an index file
// (a path ending in .json), or a single safetensors file.
func OpenFileOrDir(path string) (*Set, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("opening checkpoint: %w", err)
	}
	switch {
	case st.IsDir():
		return OpenDir(path)
	case strings.HasSuffix(path, ".json"):
		return openIndex(path)
	}
	return openSingle(path)
}

func openSingle(path string) (*Set, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	key := filepath.Base(path)
	s := &Set{source: path, dir: filepath.Dir(path), shardOf: make(map[string]string), names: f.Names(), files: map[string]*File{key: f}}
	for _, n := range s.names {
		s.shardOf[n] = key
	}
	return s, nil
}

func openIndex(path string) (*Set, error) {
	data, err := readCapped(path, MaxHeaderSize)
	if err != nil {
		return nil, err
	}
	shardOf := make(map[string]string)
	err = eachMember(data, func(key string, val json.RawMessage) error {
		if key != "weight_map" {
			return nil
		}
		err := eachMember(val, func(name string, v json.RawMessage) error {
			if k := jsonKind(v); k != "string" {
				return fmt.Errorf("the entry for %q is %s, not a shard file name", name, withArticle(k))
			}
			var shard string
			if err := json.Unmarshal(v, &shard); err != nil {
				return fmt.Errorf("the entry for %q: %w", name, err)
			}
			shardOf[name] = shard
			return nil
		})
		if err != nil {
			return fmt.Errorf("weight_map: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w; re-download the index", path, ErrFormat, err)
	}
	if len(shardOf) == 0 {
		return nil, fmt.Errorf("%s: %w: weight_map is missing or empty; re-download the index", path, ErrFormat)
	}

	// One tensor per shard, for messages about the shard.
	example := make(map[string]string)
	for name, shard := range shardOf {
		if e, ok := example[shard]; !ok || name < e {
			example[shard] = name
		}
	}
	dir := filepath.Dir(path)
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("opening checkpoint: %w", err)
	}
	area := shardAreaOf(realDir)
	shards := make([]string, 0, len(example))
	for shard := range example {
		shards = append(shards, shard)
	}
	slices.Sort(shards)
	for _, shard := range shards {
		if err := checkShard(path, dir, area, shard, example[shard]); err != nil {
			return nil, err
		}
	}
	root, err := os.OpenRoot(area.root)
	if err != nil {
		return nil, fmt.Errorf("opening checkpoint: %w", err)
	}
	s := &Set{source: path, dir: dir, root: root, rootPrefix: area.prefix, shardOf: shardOf, files: make(map[string]*File)}
	for name := range shardOf {
		s.names = append(s.names, name)
	}
	slices.Sort(s.names)
	return s, nil
}

// readCapped reads a file of at most limit bytes.
func readCapped(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening checkpoint: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %w: larger than %d bytes, which no index needs; re-download the index", path, ErrFormat, limit)
	}
	return data, nil
}

// shardArea says where an index's shards may resolve to: the checkpoint
// directory itself, and for a snapshot of the Hugging Face hub cache
// (<cache>/models--org--name/snapshots/<commit>, whose files are links to
// ../../blobs/<hash>) also that repository's own blobs folder.
type shardArea struct {
	root    string   // the folder opened as an os.Root, symlink-free
	prefix  string   // the checkpoint directory relative to root
	allowed []string // symlink-free folders a shard may resolve into
	where   string   // the allowed folders, for messages
}

func shardAreaOf(realDir string) shardArea {
	snapshots := filepath.Dir(realDir)
	repo := filepath.Dir(snapshots)
	if filepath.Base(snapshots) == "snapshots" && strings.HasPrefix(filepath.Base(repo), "models--") {
		blobs := filepath.Join(repo, "blobs")
		return shardArea{
			root:    repo,
			prefix:  filepath.Join("snapshots", filepath.Base(realDir)),
			allowed: []string{realDir, blobs},
			where:   realDir + " and its Hugging Face cache repository's " + blobs,
		}
	}
	return shardArea{root: realDir, prefix: ".", allowed: []string{realDir}, where: realDir}
}

// contains reports whether the symlink-free path p lies in an allowed folder.
func (a shardArea) contains(p string) bool {
	for _, dir := range a.allowed {
		if rel, err := filepath.Rel(dir, p); err == nil && filepath.IsLocal(rel) {
			return true
		}
	}
	return false
}

// checkShard verifies that the index's shard file name stays inside dir,
// that it resolves into the area's allowed folders and that the file exists.
func checkShard(index, dir string, area shardArea, shard, tensor string) error {
	if !filepath.IsLocal(shard) || strings.Contains(shard, `\`) {
		return fmt.Errorf("%s: %w: weight_map puts tensor %q in %q, which is not a file name inside the checkpoint directory; shard names must be relative and must not climb out of it", index, ErrFormat, tensor, shard)
	}
	p := filepath.Join(dir, shard)
	real, err := filepath.EvalSymlinks(p)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: shard %s is missing from %s (it should hold tensor %s, among others); download it again: %w", index, shard, dir, tensor, err)
	}
	if err != nil {
		return fmt.Errorf("%s: shard %s: %w", index, shard, err)
	}
	if !area.contains(real) {
		return fmt.Errorf("%s: %w: shard %s resolves to %s, outside %s; shard files must live in the checkpoint directory, so copy them there", index, ErrFormat, shard, real, area.where)
	}
	return nil
}

// Names lists the checkpoint's tensors, sorted.
func (s *Set) Names() []string { return slices.Clone(s.names) }

// Has reports whether the checkpoint lists a tensor of that name.
func (s *Set) Has(name string) bool {
	_, ok := s.shardOf[name]
	return ok
}

// Info describes the named tensor, mapping its shard if needed.
func (s *Set) Info(name string) (TensorInfo, error) {
	f, err := s.fileFor(name)
	if err != nil {
		return TensorInfo{}, err
	}
	info, _ := f.Info(name)
	return info, nil
}

// Tensor copies the named tensor out of its shard, in its stored dtype.
func (s *Set) Tensor(name string) (*tensors.Tensor, error) {
	f, err := s.fileFor(name)
	if err != nil {
		return nil, err
	}
	return f.Tensor(name)
}

// fileFor returns the opened shard holding name.
func (s *Set) fileFor(name string) (*File, error) {
	shard, ok := s.shardOf[name]
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q; see Names for what the checkpoint holds", s.source, name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("%s: reading tensor %q: the checkpoint is closed", s.source, name)
	}
	f := s.files[shard]
	if f == nil {
		var err error
		if f, err = s.openShard(shard); err != nil {
			return nil, err
		}
		s.files[shard] = f
	}
	if _, ok := f.Info(name); !ok {
		return nil, fmt.Errorf("%s: %w: the index puts tensor %q in %s, but that shard does not hold it; the index and shards are out of sync, re-download the checkpoint", s.source, ErrFormat, name, shard)
	}
	return f, nil
}

func (s *Set) openShard(shard string) (*File, error) {
	path := filepath.Join(s.dir, shard)
	fd, err := s.root.Open(filepath.Join(s.rootPrefix, shard))
	if err != nil {
		return nil, fmt.Errorf("%s: opening shard %s: %w", s.source, path, err)
	}
	defer fd.Close()
	return openFile(path, fd)
}

// Close unmaps every opened shard. Closing twice is harmless.
func (s *Set) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	for _, f := range s.files {
		errs = append(errs, f.Close())
	}
	if s.root != nil {
		errs = append(errs, s.root.Close())
	}
	return errors.Join(errs...)
}
