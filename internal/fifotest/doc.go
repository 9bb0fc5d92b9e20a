// Package fifotest makes named pipes for tests of readers that must stop
// on cancellation: one that never gets a writer, and one whose writer never
// stops. Tests only.
package fifotest
