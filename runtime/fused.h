// Fused kernels: ONNX Runtime custom ops (domain mohawk.fused) for work that
// stock ONNX ops can only express as many whole-tensor passes. fused.go
// documents them; fused.c implements them for the CPU and CUDA providers.
#ifndef MOHAWK_FUSED_H
#define MOHAWK_FUSED_H

#include <stddef.h>

// mh_fused_add adds the mohawk.fused domain (created once, on first use,
// from the OrtApi table api) to the session options opts. It returns NULL
// or a malloc'd error message.
char *mh_fused_add(void **api, void *opts);

// mh_adamw_host is the CPU kernel on float (dtype 1) or double (11)
// arrays of n elements; coef holds the 8 coefficients (fused.go).
void mh_adamw_host(int dtype, const void *p, const void *g, const void *m, const void *v, const void *coef,
                   void *po, void *mo, void *vo, size_t n);

// mh_adamw_ptx is the PTX source of the CUDA kernel.
extern const char mh_adamw_ptx[];

#endif
