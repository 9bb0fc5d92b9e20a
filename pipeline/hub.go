package pipeline

import (
	"context"
	"io"

	"mohawk/hfhub"
)

// ResolveModels replaces teacher.path and student.path by the local
// directories they name: a directory (relative to the config file), or a
// Hugging Face id (org/name[@revision]) found in the hub cache or, with
// download, fetched into it. Each id gets one line on out saying what was
// used. Afterwards the paths are absolute, so the rest of the pipeline
// sees plain directories.
func ResolveModels(ctx context.Context, cfg *Config, download bool, out io.Writer) error {
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
	return nil
}
