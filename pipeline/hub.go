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
			if err := resolveSource(ctx, cfg, fmt.Sprintf("%s[%d]", list.key, i), &list.srcs[i], download, out); err != nil {
				return err
			}
		}
	}
	return resolveTasks(ctx, cfg.Eval.Tasks, cfg.Resolve, download, out)
}

// resolveSource turns a {dataset, files} source into a path source.
func resolveSource(ctx context.Context, cfg *Config, key string, s *Source, download bool, out io.Writer) error {
	switch {
	case s.Dataset == "" && s.Files != "":
		return fmt.Errorf("%s.files applies to dataset sources only; put the file or glob in %s.path, or name the dataset in %s.dataset", key, key, key)
	case s.Dataset == "":
		return nil
	case s.Path != "":
		return fmt.Errorf("%s: set path (a local file or glob) or dataset (a Hugging Face dataset id), not both", key)
	case s.Files == "":
		return fmt.Errorf("%s: dataset %s needs files, the pattern of the files to read inside it (e.g. files: \"data/train-*.parquet\")", key, s.Dataset)
	}
	if _, err := hfhub.ParseDatasetID(s.Dataset); err != nil {
		return fmt.Errorf("%s.dataset: %w; for local files use %s.path", key, err, key)
	}
	if _, err := path.Match(s.Files, ""); err != nil || !filepath.IsLocal(filepath.FromSlash(s.Files)) {
		return fmt.Errorf("%s.files %q is not a pattern of files inside the dataset, like data/train-*.parquet ('*' stays within a folder)", key, s.Files)
	}
	local := cfg.Resolve(s.Dataset)
	dir, err := hfhub.Resolve(ctx, hfhub.Request{Role: key, Path: s.Dataset, Local: local, Type: hfhub.Dataset,
		Files: []string{s.Files}, Download: download, Log: out})
	if err != nil {
		return err
	}
	if dir == local { // a local folder of that name: relative to the config file, as written
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
