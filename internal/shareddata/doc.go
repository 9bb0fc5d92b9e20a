// Package shareddata locates ../shared (reference models and data that sit
// beside the repository) for tests and benchmarks, and loads the reference
// tensors they compare against.
package shareddata
