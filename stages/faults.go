package stages

// FaultHook, when set, sees the learning rates of every training run (the
// stage's name, the 0-based first step of the run and one rate per step)
// just before they are fed to the step graph, and may change them. It is
// nil in normal use; fault-injection tests set a rate to NaN or ±Inf to
// make a real non-finite update flow through the real graph, the trainer's
// checks, the checkpoint guard and the rollback policy
// (pipeline/faults_test.go). Set it only while no training runs.
var FaultHook func(stage string, step int, lrs []float32)
