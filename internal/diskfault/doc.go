// Package diskfault lets tests make the files atomicfile writes fail the
// way a full or failing disk does: ENOSPC or EIO after some bytes, a short
// write, an fsync that fails. atomicfile passes every file it writes
// through Wrap, which is a no-op unless a test called Inject; no
// privileges (a tmpfs mount) are needed, so these tests run everywhere.
// It imports only the standard library.
package diskfault
