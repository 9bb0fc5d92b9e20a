// Package filehash digests files: the checksums of ONNX Runtime downloads
// (runtime) and of checkpoint manifests (pipeline) are computed here once.
package filehash
