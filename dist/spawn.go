package dist

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// SpawnOptions describe the local ranks Spawn starts.
type SpawnOptions struct {
	N    int      // number of ranks
	Exe  string   // the program (default: this executable)
	Args []string // its arguments
	// MasterPort is the rendezvous port (0: a free one).
	MasterPort int
	// Out receives every rank's output, each line prefixed "[rank i] "
	// (default os.Stderr).
	Out io.Writer
	// Grace is how long the other ranks get to stop after one failed,
	// before they are killed (default 30 s).
	Grace time.Duration
}

// ExitError is a local rank that failed: the first one, which stopped the
// others.
type ExitError struct {
	Rank   int
	Code   int    // exit status, -1 when killed by a signal
	Signal string // the signal that killed it

	afterStop bool // it ended after the launcher began stopping the ranks
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return fmt.Sprintf("rank %d was killed by signal %s; stopped the other ranks", e.Rank, e.Signal)
	}
	return fmt.Sprintf("rank %d exited with status %d; stopped the other ranks", e.Rank, e.Code)
}

// Spawn runs N copies of the program as ranks 0..N-1 of one job on this
// host, with the torchrun variables set (MASTER_ADDR 127.0.0.1), and
// waits for them. SIGINT, SIGTERM and SIGHUP are passed on to every rank,
// and so is ctx's cancellation (as SIGTERM). When a rank fails the others
// get SIGTERM, then SIGKILL after Grace, and the error names the first
// rank that failed. The ranks die with this process (Pdeathsig).
func Spawn(ctx context.Context, o SpawnOptions) error {
	if o.N < 1 {
		return fmt.Errorf("--nproc-per-node %d: must be at least 1", o.N)
	}
	if o.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		o.Exe = exe
	}
	if o.Out == nil {
		o.Out = os.Stderr
	}
	if o.Grace <= 0 {
		o.Grace = 30 * time.Second
	}
	if o.MasterPort == 0 {
		p, err := FreePort()
		if err != nil {
			return err
		}
		o.MasterPort = p
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	cmds := make([]*exec.Cmd, o.N)
	exits := make(chan *ExitError, o.N)
	var outs sync.WaitGroup
	var mu sync.Mutex // serialises lines from the ranks
	for r := range cmds {
		cmd := exec.Command(o.Exe, o.Args...)
		cmd.Env = append(os.Environ(), "RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(o.N),
			"LOCAL_RANK="+strconv.Itoa(r), "LOCAL_WORLD_SIZE="+strconv.Itoa(o.N),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(o.MasterPort))
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		pr, pw := io.Pipe()
		cmd.Stdout, cmd.Stderr = pw, pw
		outs.Add(1)
		go prefix(pr, o.Out, &mu, fmt.Sprintf("[rank %d] ", r), &outs)
		if err := cmd.Start(); err != nil {
			pw.Close()
			signalAll(cmds[:r], syscall.SIGKILL)
			return fmt.Errorf("start rank %d (%s): %w", r, o.Exe, err)
		}
		cmds[r] = cmd
		go func() {
			cmd.Wait()
			pw.Close()
			exits <- exitError(r, cmd.ProcessState)
		}()
	}
	return supervise(ctx, o, cmds, exits, sigs, &outs)
}

// supervise waits for the ranks, passing signals on and stopping the rest
// when one fails.
func supervise(ctx context.Context, o SpawnOptions, cmds []*exec.Cmd, exits chan *ExitError, sigs chan os.Signal, outs *sync.WaitGroup) error {
	var failed []*ExitError // in the order they ended
	var kill <-chan time.Time
	done := ctx.Done()
	for left := len(cmds); left > 0; {
		select {
		case e := <-exits:
			left--
			if e == nil {
				continue
			}
			e.afterStop = kill != nil
			failed = append(failed, e)
			if kill == nil { // the first failure: stop the others
				signalAll(cmds, syscall.SIGTERM)
				kill = time.After(o.Grace)
			}
		case s := <-sigs:
			signalAll(cmds, s)
		case <-done:
			done = nil
			signalAll(cmds, syscall.SIGTERM)
		case <-kill:
			signalAll(cmds, syscall.SIGKILL)
		}
	}
	outs.Wait()
	return blame(failed)
}

// blame names the rank that failed on its own: the first failure that is
// neither a rank stopped because another failed (ExitStopped) nor one that
// ended on the launcher's SIGTERM; else the first failure.
func blame(failed []*ExitError) error {
	for _, e := range failed {
		ours := e.afterStop && (e.Signal == syscall.SIGTERM.String() || e.Code == 130)
		if e.Code != ExitStopped && !ours {
			return e
		}
	}
	if len(failed) > 0 {
		return failed[0]
	}
	return nil
}

func exitError(rank int, st *os.ProcessState) *ExitError {
	if st.Success() {
		return nil
	}
	e := &ExitError{Rank: rank, Code: st.ExitCode()}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.Signal = ws.Signal().String()
	}
	return e
}

func signalAll(cmds []*exec.Cmd, s os.Signal) {
	for _, c := range cmds {
		if c != nil {
			c.Process.Signal(s) // an error means it has exited
		}
	}
}

// prefix copies lines from r to w, each after p.
func prefix(r io.Reader, w io.Writer, mu *sync.Mutex, p string, wg *sync.WaitGroup) {
	defer wg.Done()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		mu.Lock()
		fmt.Fprintf(w, "%s%s\n", p, sc.Bytes())
		mu.Unlock()
	}
	io.Copy(io.Discard, r)
}

// FreePort is a TCP port nobody listens on now.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
