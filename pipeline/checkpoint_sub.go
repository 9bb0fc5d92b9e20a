package pipeline

import (
	"path/filepath"

	"mohawk/stages"
)

// Sub is an independent checkpoint series in a subdirectory (one per layer
// group of a Stage 1/2 trained in groups), with the same retention.
func (c *Checkpoints) Sub(name string) stages.Checkpointer {
	s := *c
	s.Dir = filepath.Join(c.Dir, name)
	return &s
}
