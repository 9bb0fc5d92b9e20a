// Package funclen holds a repository-wide style check: no function written
// by hand in the module is longer than MaxLines lines. The check is its
// test; the package has no other code.
package funclen

// MaxLines is the most lines a non-test, non-generated function may span,
// from its func keyword to its closing brace.
const MaxLines = 120
