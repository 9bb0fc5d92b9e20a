// Fused kernels: ONNX Runtime custom ops (domain mohawk.fused) for work that
// stock ONNX ops can only express as many whole-tensor passes. fused.go
// documents them; fused.c implements them for the CPU and CUDA providers.
#ifndef MOHAWK_FUSED_H
#define MOHAWK_FUSED_H

// MH_ORT_API_VERSION is the ORT_API_VERSION of the C API header that ships
// with onnxruntime_go (go.mod's version), the one its Go side asks ORT for:
// fused.c and ortapi.go ask for the same OrtApi table, index its members
// and lay out struct OrtCustomOp as that header does. TestOrtAPIIndices
// checks it against the header.
#define MH_ORT_API_VERSION 24

// mh_fused_add adds the mohawk.fused domain (created once, on first use,
// from the OrtApi table api) to the session options opts. It returns NULL
// or a malloc'd error message.
char *mh_fused_add(void **api, void *opts);

// mh_fused_forget releases the domain; the next mh_fused_add makes a new one.
void mh_fused_forget(void);

// mh_fused_ptx, mh_matrix_ptx, mh_loss_ptx, mh_layer_ptx and mh_gate_ptx
// are the PTX sources of the CUDA kernels: five modules, each loaded on
// its first use in a CUDA context.
extern const char mh_fused_ptx[];
extern const char mh_matrix_ptx[];
extern const char mh_loss_ptx[];
extern const char mh_layer_ptx[];
extern const char mh_gate_ptx[];

#endif
