package main

import (
	"context"
	"errors"
)

var errPending = errors.New("not available in this build")

func cmdExport(ctx context.Context, args []string) error        { return errPending }
func cmdGenerate(ctx context.Context, args []string) error      { return errPending }
func cmdBenchGenerate(ctx context.Context, args []string) error { return errPending }
