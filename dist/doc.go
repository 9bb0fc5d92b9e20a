// Package dist runs a pipeline as several cooperating processes (ranks):
// it reads the rank layout from the launcher's environment (torchrun or a
// Kubernetes PyTorchJob, Slurm, Open MPI), starts local ranks itself
// (Spawn, for --nproc-per-node), and joins them over TCP (Join): rank 0
// listens at MASTER_ADDR:MASTER_PORT, the others dial it, every rank's plan
// and binary hashes must match, and rank 0 hands out an opaque blob (the
// NCCL unique id on GPUs).
//
// The connection stays open for the run: heartbeats and a watchdog stop
// every rank within a bounded time when one dies, hangs or reports a
// failure, with an error naming that rank (*RankError), and a host-side
// AllReduce of float32 buffers serves CPU ranks and small control
// collectives (checksums, merged layer groups). GPU ranks reduce their
// gradients with NCCL; Comm is the interface both implement.
//
// dist knows nothing of models or ONNX Runtime; pipeline and cmd/pipeline
// import it. Errors name the rank, the variable or the address, and say what
// to change.
package dist
