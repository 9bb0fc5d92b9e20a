package pipeline

import (
	"context"
	"fmt"
	"io"
	"path"
	"path/filepath"

	"mohawk/data"
	"mohawk/hfhub"
)

// ResolveHub replaces the Hugging Face ids of a config by the local paths
// they name, found in the hub cache or, with download, fetched into it:
// teacher.path and student.path (a directory, relative to the config file,
// or a model id org/name[@revision]); every data source given as
// {dataset: org/name[@revision], files: PATTERN}, whose path becomes the
// pattern inside the dataset's snapshot; and every eval.tasks path that is
// a dataset id, which becomes the snapshot (holding the files the task
// reads, data.Benchmark.Files). Each id gets one line on out saying what
// was used. A local directory of the id's name wins and keeps its path as
// written; a snapshot's path is absolute, so the rest of the pipeline sees
// plain files and directories.
func ResolveHub(ctx context.Context, cfg *Config, download bool, out io.Writer) error {
	for _, m := range []struct {
		role string
		path *string
	}{{"teacher", &cfg.Teacher.Path}, {"student", &cfg.Student.Path}} {
		if *m.path == "" {
			continue
		}
		local := cfg.Resolve(*m.path)
		dir, err := hfhub.Resolve(ctx, hfhub.Request{Role: m.role, Path: *m.path, Local: local, Download: download, Log: out})
		if err != nil {
			return err
		}
		// A local folder keeps its path as written: it is relative to the
		// config file, and later steps resolve it against that again.
		if dir != local {
			*m.path = dir
		}
	}
	for _, list := range []struct {
		key  string
		srcs []Source
	}{{"data.train", cfg.Data.Train}, {"data.val", cfg.Data.Val}} {
		for i := range list.srcs {
			if err := ResolveSource(ctx, &list.srcs[i], configKeys(fmt.Sprintf("%s[%d]", list.key, i)), cfg.Resolve, download, out); err != nil {
				return err
			}
		}
	}
	return resolveTasks(ctx, cfg.Eval.Tasks, cfg.Resolve, download, out)
}

// SourceKeys name, in the errors and log lines of ResolveSource, where a
// data source's parts were given: config keys (configKeys) or command
// flags (--data, --dataset, --files).
type SourceKeys struct {
	Role    string // starts the line saying which snapshot was used
	Path    string // a local file or glob
	Dataset string // a Hugging Face dataset id
	Files   string // the pattern of the dataset's files to read
}

// configKeys are the keys of the data source at key (data.train[0]).
func configKeys(key string) SourceKeys {
	return SourceKeys{Role: key, Path: key + ".path", Dataset: key + ".dataset", Files: key + ".files"}
}

// ResolveSource turns a {dataset, files} source into a path source: the
// files pattern inside the dataset's snapshot in the hub cache, fetched
// into it with download. A local folder of the dataset's name (local
// turns a path as written into one to open) wins, and the path stays
// relative as written. A source without a dataset is left as it is.
func ResolveSource(ctx context.Context, s *Source, keys SourceKeys, local func(string) string, download bool, out io.Writer) error {
	switch {
	case s.Dataset == "" && s.Files != "":
		return fmt.Errorf("%s applies to dataset sources only; put the file or glob in %s, or name the dataset in %s", keys.Files, keys.Path, keys.Dataset)
	case s.Dataset == "":
		return nil
	case s.Path != "":
		return fmt.Errorf("set %s (a local file or glob) or %s (a Hugging Face dataset id), not both", keys.Path, keys.Dataset)
	case s.Files == "":
		return fmt.Errorf("%s %s needs %s, the pattern of the files to read inside it (e.g. data/train-*.parquet)", keys.Dataset, s.Dataset, keys.Files)
	}
	if _, err := hfhub.ParseDatasetID(s.Dataset); err != nil {
		return fmt.Errorf("%s: %w; for local files use %s", keys.Dataset, err, keys.Path)
	}
	if _, err := path.Match(s.Files, ""); err != nil || !filepath.IsLocal(filepath.FromSlash(s.Files)) {
		return fmt.Errorf("%s %q is not a pattern of files inside the dataset, like data/train-*.parquet ('*' stays within a folder)", keys.Files, s.Files)
	}
	where := local(s.Dataset)
	dir, err := hfhub.Resolve(ctx, hfhub.Request{Role: keys.Role, Path: s.Dataset, Local: where, Type: hfhub.Dataset,
		Files: []string{s.Files}, Download: download, Log: out})
	if err != nil {
		return err
	}
	if dir == where { // a local folder of that name: relative to the config file, as written
		dir = s.Dataset
	}
	s.Path, s.Dataset, s.Files = filepath.Join(dir, filepath.FromSlash(s.Files)), "", ""
	return nil
}

// resolveTasks replaces zero-shot task paths that are Hugging Face dataset
// ids by their snapshots; local paths (resolved by local) stay as written.
// Tasks of an unknown kind or without a dataset are left for validation
// to report.
func resolveTasks(ctx context.Context, tasks []Task, local func(string) string, download bool, out io.Writer) error {
	for i := range tasks {
		t := &tasks[i]
		b, err := data.LookupBenchmark(t.Kind)
		if err != nil || b.Dataset == "" || t.Path == "" {
			continue
		}
		where := local(t.Path)
		dir, err := hfhub.Resolve(ctx, hfhub.Request{Role: fmt.Sprintf("task %s", t.Label()), Path: t.Path, Local: where,
			Type: hfhub.Dataset, Files: b.Files(), Download: download, Log: out})
		if err != nil {
			return err
		}
		if dir != where {
			t.Path = dir
		}
	}
	return nil
}
