// Package sharedpath locates ../shared (the reference models and data that
// sit beside the repository) for tests and benchmarks. It imports only the
// standard library and internal/strict, so every package's tests can use it.
package sharedpath
