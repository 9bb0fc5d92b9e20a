// Package atomicfile writes files so that a crash never leaves a torn file
// behind: data goes to a temporary file in the target's directory, which is
// fsynced, renamed over the target, and the directory fsynced.
//
// It depends only on the standard library and internal/diskfault (through
// which tests make writes fail as a full disk would); every writer of
// checkpoints, models and reports in mohawk goes through it.
package atomicfile
