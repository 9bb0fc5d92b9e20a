package dist

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultPort is the rendezvous port when the launcher names none
// (torchrun's default).
const DefaultPort = 29500

// Launchers as Launch.Launcher names them.
const (
	LauncherTorchrun = "torchrun" // torchrun, a Kubernetes PyTorchJob, or Spawn
	LauncherSlurm    = "slurm"
	LauncherOpenMPI  = "openmpi"
)

// Launch is where this process stands among the ranks of a job.
type Launch struct {
	Launcher             string
	Rank, Size           int // global rank and number of ranks
	LocalRank, LocalSize int // rank and number of ranks on this node
	MasterAddr           string
	MasterPort           int
}

// Addr is the rendezvous address host:port.
func (l Launch) Addr() string {
	return netJoin(l.MasterAddr, l.MasterPort)
}

// FromEnv reads the rank layout a launcher put in the environment: the
// torchrun variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT; a PyTorchJob sets the same), then Open MPI's
// OMPI_COMM_WORLD_*, then Slurm's SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID
// and node list. ok is false when none is set or the job has one rank.
func FromEnv(getenv func(string) string) (l Launch, ok bool, err error) {
	switch {
	case getenv("RANK") != "" || getenv("WORLD_SIZE") != "":
		l, err = torchrunEnv(getenv)
	case getenv("OMPI_COMM_WORLD_RANK") != "":
		l, err = openMPIEnv(getenv)
	case getenv("SLURM_PROCID") != "":
		l, err = slurmEnv(getenv)
	default:
		return Launch{}, false, nil
	}
	if err != nil {
		return Launch{}, false, err
	}
	if err := l.check(); err != nil {
		return Launch{}, false, err
	}
	return l, l.Size > 1, nil
}

// envReader parses variables, keeping the first error.
type envReader struct {
	getenv func(string) string
	err    error
}

// int reads a non-negative integer; def is used when the variable is unset
// (def < 0: the variable is required).
func (r *envReader) int(name string, def int) int {
	s := strings.TrimSpace(r.getenv(name))
	if s == "" {
		if def < 0 && r.err == nil {
			r.err = fmt.Errorf("environment variable %s is not set; the launcher must set it (or unset the other rank variables to run one process)", name)
		}
		return max(def, 0)
	}
	v, err := strconv.Atoi(s)
	if (err != nil || v < 0) && r.err == nil {
		r.err = fmt.Errorf("environment variable %s=%q is not a non-negative integer", name, s)
	}
	return v
}

// first returns the first non-empty variable of names.
func (r *envReader) first(names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(r.getenv(n)); v != "" {
			return v
		}
	}
	return ""
}

func torchrunEnv(getenv func(string) string) (Launch, error) {
	r := &envReader{getenv: getenv}
	l := Launch{Launcher: LauncherTorchrun, Rank: r.int("RANK", -1), Size: r.int("WORLD_SIZE", -1),
		LocalRank: r.int("LOCAL_RANK", 0), LocalSize: r.int("LOCAL_WORLD_SIZE", 1),
		MasterAddr: r.first("MASTER_ADDR"), MasterPort: r.int("MASTER_PORT", DefaultPort)}
	if r.err == nil && l.MasterAddr == "" {
		r.err = fmt.Errorf("RANK and WORLD_SIZE are set but MASTER_ADDR is not; set it to rank 0's host")
	}
	return l, r.err
}

func openMPIEnv(getenv func(string) string) (Launch, error) {
	r := &envReader{getenv: getenv}
	l := Launch{Launcher: LauncherOpenMPI, Rank: r.int("OMPI_COMM_WORLD_RANK", -1), Size: r.int("OMPI_COMM_WORLD_SIZE", -1),
		LocalRank: r.int("OMPI_COMM_WORLD_LOCAL_RANK", 0), LocalSize: r.int("OMPI_COMM_WORLD_LOCAL_SIZE", 1),
		MasterAddr: r.first("MASTER_ADDR"), MasterPort: r.int("MASTER_PORT", DefaultPort)}
	if r.err == nil && l.MasterAddr == "" && l.Size > 1 {
		r.err = fmt.Errorf("Open MPI does not say where rank 0 runs: export MASTER_ADDR to its host (mpirun -x MASTER_ADDR=host)")
	}
	return l, r.err
}

func slurmEnv(getenv func(string) string) (Launch, error) {
	r := &envReader{getenv: getenv}
	l := Launch{Launcher: LauncherSlurm, Rank: r.int("SLURM_PROCID", -1), LocalRank: r.int("SLURM_LOCALID", 0),
		MasterPort: r.int("MASTER_PORT", DefaultPort)}
	if r.first("SLURM_NTASKS") != "" {
		l.Size = r.int("SLURM_NTASKS", -1)
	} else {
		l.Size = r.int("SLURM_NPROCS", -1)
	}
	l.LocalSize = 1
	if per := r.first("SLURM_TASKS_PER_NODE"); per != "" && r.err == nil {
		n, err := tasksOnNode(per, r.int("SLURM_NODEID", 0))
		if err != nil {
			r.err = fmt.Errorf("SLURM_TASKS_PER_NODE=%q: %w", per, err)
		}
		l.LocalSize = n
	}
	l.MasterAddr = r.first("MASTER_ADDR")
	if l.MasterAddr == "" && r.err == nil {
		list := r.first("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST")
		if list == "" {
			r.err = fmt.Errorf("Slurm sets no node list (SLURM_JOB_NODELIST) and MASTER_ADDR is unset; export MASTER_ADDR to rank 0's host")
		} else if hosts, err := ExpandNodeList(list); err != nil {
			r.err = fmt.Errorf("SLURM_JOB_NODELIST=%q: %w", list, err)
		} else {
			l.MasterAddr = hosts[0]
		}
	}
	return l, r.err
}

// tasksOnNode reads node's count from Slurm's compressed tasks-per-node
// list, e.g. "4(x2),3" (4 on nodes 0 and 1, 3 on node 2).
func tasksOnNode(list string, node int) (int, error) {
	at := 0
	for _, part := range strings.Split(list, ",") {
		count, rep := part, "1"
		if i := strings.Index(part, "(x"); i >= 0 && strings.HasSuffix(part, ")") {
			count, rep = part[:i], part[i+2:len(part)-1]
		}
		c, err1 := strconv.Atoi(count)
		k, err2 := strconv.Atoi(rep)
		if err1 != nil || err2 != nil || c < 1 || k < 1 {
			return 0, fmt.Errorf("cannot read %q (want counts such as 4(x2),3)", part)
		}
		if node < at+k {
			return c, nil
		}
		at += k
	}
	return 0, fmt.Errorf("no entry for node %d (SLURM_NODEID)", node)
}

// check reports a layout that cannot be.
func (l Launch) check() error {
	switch {
	case l.Size < 1:
		return fmt.Errorf("%s: world size %d; it must be at least 1", l.Launcher, l.Size)
	case l.Rank >= l.Size:
		return fmt.Errorf("%s: rank %d is not below the world size %d", l.Launcher, l.Rank, l.Size)
	case l.LocalSize < 1 || l.LocalRank >= l.LocalSize:
		return fmt.Errorf("%s: local rank %d is not below the local world size %d", l.Launcher, l.LocalRank, l.LocalSize)
	case l.MasterPort < 1 || l.MasterPort > 65535:
		return fmt.Errorf("%s: MASTER_PORT %d is not a TCP port (1-65535)", l.Launcher, l.MasterPort)
	}
	return nil
}
