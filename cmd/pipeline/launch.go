package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"mohawk/dist"
	"mohawk/stages"
)

// launch decides how `run` takes part in a job. Under a launcher's
// variables (torchrun, Slurm, Open MPI, a PyTorchJob) it returns this
// rank's options; with --nproc-per-node N > 1 and no such variables it
// starts N local ranks of the same command and waits for them (nil
// options: the work is done); a dry run only shows the ranks.
func launch(ctx context.Context, args []string, nproc, port int, dry bool) (*dist.Options, error) {
	if nproc < 1 {
		return nil, &flagError{fmt.Sprintf("--nproc-per-node %d: must be at least 1", nproc)}
	}
	l, multi, err := dist.FromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	if multi {
		if nproc > 1 && nproc != l.LocalSize {
			return nil, &flagError{fmt.Sprintf("--nproc-per-node %d, but the %s launcher gives this node %d ranks: drop the flag under a launcher", nproc, l.Launcher, l.LocalSize)}
		}
		return &dist.Options{Launch: l}, nil
	}
	if nproc == 1 {
		return &dist.Options{}, nil
	}
	if dry {
		return &dist.Options{Launch: dist.Launch{Launcher: "nproc-per-node", Size: nproc, LocalSize: nproc, MasterAddr: "127.0.0.1", MasterPort: port}}, nil
	}
	err = dist.Spawn(ctx, dist.SpawnOptions{N: nproc, Args: append([]string{"run"}, args...), MasterPort: port})
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w (%v)", stages.ErrInterrupted, err)
	}
	var ee *dist.ExitError
	if errors.As(err, &ee) {
		return nil, fmt.Errorf("%w; the newest complete checkpoints are kept: run the same command again to resume", err)
	}
	return nil, err
}
