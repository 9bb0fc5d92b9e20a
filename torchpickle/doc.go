// Package torchpickle reads PyTorch checkpoints written by torch.save in
// its zip format (PyTorch 1.6 and later; pytorch_model.bin, *.pt, *.pth)
// into host tensors, without Python and without running anything the file
// asks for.
//
// # Format
//
// The archive holds <prefix>/data.pkl, a Python pickle (protocol 2 unless
// the writer chose another), and one member <prefix>/data/<key> per storage
// holding its raw little-endian bytes; <prefix>/version,
// <prefix>/byteorder and similar small records sit beside them. The pickle
// builds the saved object, typically an OrderedDict from names to tensors,
// each made by torch._utils._rebuild_tensor_v2(storage, storage_offset,
// size, stride, requires_grad, backward_hooks[, metadata]), where storage
// is the persistent id ('storage', torch.FloatStorage (or another storage
// class), key, location, numel). Sizes, strides and the offset count
// elements.
//
// Load and LoadOrdered flatten nested containers into dotted names:
// {"model": {"w": t}} yields "model.w", list and tuple items use their
// index, and values that are not tensors (step counters, strings,
// hyperparameters) are skipped; a file holding a single bare tensor yields one
// entry named "". Every tensor comes back dense, row-major and in memory of
// its own: a contiguous view is read straight from the file into its aligned
// buffer, a strided one (a transposed weight, a slice, an expanded buffer)
// is materialised, and tensors that share a storage (tied weights) get
// separate copies.
//
// # Implementation choice
//
// The pickle is decoded by a small virtual machine in this package, not by
// github.com/nlpodyssey/gopickle. gopickle v0.2.0 (February 2023, its
// latest release) allocates buffers from lengths read out of the stream
// before checking them against the input (FRAME, BINUNICODE8 and BINBYTES8
// accept up to 2⁶³−1 bytes): a 12-byte pickle makes it panic with
// "makeslice: len out of range", and a length just below the machine's
// memory exhausts it, which Go cannot recover from. It also resolves
// collections, __builtin__ and copy_reg globals itself before its FindClass
// hook is consulted, and has no limits on stack or memo growth. Wrapping it safely would mean re-validating every opcode
// first, which is the work of writing the VM. The one here implements the
// opcodes that torch.save emits under pickle protocols 2 to 5 and nothing
// else (no text-mode protocol 0 opcodes, no INST/OBJ/EXT/NEWOBJ_EX, no
// bytearrays or out-of-band buffers); it also keeps the module free of a
// dependency.
//
// # Security
//
// In Python, unpickling calls whatever functions the file names. Here the
// file can name only this allow-list, each implemented in Go without side
// effects: collections.OrderedDict; builtins set and frozenset (whose
// contents are discarded); torch._utils._rebuild_tensor, _rebuild_tensor_v2,
// _rebuild_tensor_v3, _rebuild_parameter and _rebuild_parameter_with_state;
// torch._tensor._rebuild_from_type_v2 (for plain tensors and parameters);
// torch.nn.parameter.Parameter and torch.Tensor; the storage classes of the
// supported element types (torch.FloatStorage, DoubleStorage, HalfStorage,
// BFloat16Storage, LongStorage, IntStorage, CharStorage, ByteStorage,
// BoolStorage, UntypedStorage); and the matching dtypes (torch.float32, ...).
// Any other global fails the load with an error naming it, before anything
// else happens.
//
// Nothing is allocated from a size the file declares until that size has
// been checked against the file, and no work grows faster than the file:
//   - pickle strings and frames must fit in data.pkl; the stack (2²⁰
//     values), the MARK nesting (1000, Python's recursion limit) and the
//     memo (2²⁰ entries) are capped;
//   - listing the tensors refuses cycles, and caps the values visited, the
//     number of tensors and the total length of their names relative to
//     data.pkl's size, so that shared containers (a memo reference costs two
//     bytes) cannot multiply the work;
//   - every member read must be stored uncompressed and unencrypted and lie
//     inside the file, so no zip bomb can expand; member names that are
//     absolute or contain ".." are refused, as are duplicate names;
//   - a storage's numel × element size must fit in its member, and a
//     tensor's offset, sizes and strides, in overflow-checked arithmetic,
//     must address only bytes inside its storage;
//   - the tensors may total at most 4× the file's size plus 16 MiB (tied
//     weights need 2×, an expanded buffer somewhat more), and a storage is
//     read at most once for all of its strided views.
//
// CRC-32 checksums are verified for data.pkl and for every member read
// whole.
//
// Place in the dependency order: a leaf that imports only mohawk/tensors and
// the standard library.
//
// # Errors
//
// Bad input never panics. Every error names the file and, where one is
// involved, the zip member and the tensor, and says what to do. Malformed
// or hostile files wrap ErrFormat, files that name a global outside the
// allow-list wrap ErrRefused, and well-formed features this reader does not
// implement (int16 or complex storages, compressed members, big-endian
// checkpoints, the pre-1.6 format) wrap ErrUnsupported, so callers can test
// with errors.Is.
package torchpickle
