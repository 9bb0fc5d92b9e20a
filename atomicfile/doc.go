// Package atomicfile writes files so that a crash never leaves a torn file
// behind: data goes to a temporary file in the target's directory, which is
// fsynced, renamed over the target, and the directory fsynced.
//
// It is a leaf package (standard library only); every writer of checkpoints,
// models and reports in mohawk goes through it.
package atomicfile
