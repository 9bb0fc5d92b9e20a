// NCCL, loaded with dlopen, and the AllReduce op's reducers; see nccl.go.
#ifndef MOHAWK_NCCL_H
#define MOHAWK_NCCL_H

#include <stddef.h>

// mh_nccl is a loaded libnccl: its handle and the entry points used here.
typedef struct mh_nccl mh_nccl;

// MH_NCCL_ID_BYTES is the size of ncclUniqueId.
#define MH_NCCL_ID_BYTES 128

// mh_nccl_open loads the library at path and looks up its entry points. It
// returns NULL and sets *lib, or a malloc'd error message naming the path
// or the missing symbol.
char *mh_nccl_open(const char *path, mh_nccl **lib);

// mh_nccl_close unloads a library that is not kept (one too old).
void mh_nccl_close(mh_nccl *lib);

// NCCL calls; each returns NCCL's ncclResult_t.
int mh_nccl_version(mh_nccl *lib, int *version);
int mh_nccl_unique_id(mh_nccl *lib, void *id);
int mh_nccl_init_rank(mh_nccl *lib, void **comm, int nranks, const void *id, int rank);
int mh_nccl_async_error(mh_nccl *lib, void *comm, int *result);
int mh_nccl_abort(mh_nccl *lib, void *comm);
int mh_nccl_destroy(mh_nccl *lib, void *comm);
// mh_nccl_describe writes rc's name, number and ncclGetErrorString text
// into buf, e.g. "ncclInvalidUsage (5): invalid usage".
void mh_nccl_describe(mh_nccl *lib, int rc, char *buf, size_t len);

// mh_cuda_set_device makes device current on the calling thread with the
// CUDA runtime (libcudart.so.13, loaded on first use). It returns NULL or a
// message in a thread-local buffer.
const char *mh_cuda_set_device(int device);

// mh_allreduce_use registers the communicator the CUDA kernel of AllReduce
// reduces over; mh_allreduce_forget unregisters comm if it is the one.
void mh_allreduce_use(mh_nccl *lib, void *comm);
void mh_allreduce_forget(void *comm);

// The AllReduce op's kernels: out = the element-wise mean over the ranks of
// in (count elements of ONNX element type type). The CUDA one enqueues
// ncclAllReduce(ncclAvg) on stream with the registered communicator; the
// host one copies in to out and hands out to the Go reducer registered
// with SetHostReducer. They return NULL or a message in a thread-local
// buffer.
const char *mh_allreduce_cuda(const void *in, void *out, size_t count, int type, void *stream);
const char *mh_allreduce_host(const void *in, void *out, size_t count, int type);

#endif
