package dist

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a rank: with MOHAWK_DIST_HELPER set it joins
// the job its environment describes and sums a buffer every 20 ms until
// the job stops, then prints the error and exits ExitStopped (1 when the
// error is its own). MOHAWK_DIST_HELPER=exit
// makes rank 1 exit with status 3 after the first collective.
func TestMain(m *testing.M) {
	if mode := os.Getenv("MOHAWK_DIST_HELPER"); mode != "" {
		os.Exit(helperRank(mode))
	}
	os.Exit(m.Run())
}

func helperRank(mode string) int {
	l, _, err := FromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	c, err := Join(context.Background(), Options{Launch: l, PlanHash: "p", BinaryHash: "b", JoinTimeout: 20 * time.Second,
		Heartbeat: 100 * time.Millisecond, DeadAfter: 2 * time.Second, CollectiveTimeout: time.Minute})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println("joined")
	for i := 0; ; i++ {
		if mode == "exit" && l.Rank == 1 && i == 1 { // after one collective: every rank has said "joined"
			return 3
		}
		if err := c.AllReduce(context.Background(), make([]float32, 16)); err != nil {
			fmt.Println("error:", err)
			var re *RankError
			if errors.As(err, &re) && re.Rank != l.Rank {
				return ExitStopped
			}
			return 1
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rankProcess is one helper rank started by the test.
type rankProcess struct {
	cmd  *exec.Cmd
	out  *bufio.Scanner
	done chan string // the line after "joined" the rank printed last
}

func startRanks(t *testing.T, n int) []*rankProcess {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ps := make([]*rankProcess, n)
	for r := range ps {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "MOHAWK_DIST_HELPER=loop", "RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(n),
			"MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
		cmd.Stderr = os.Stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &rankProcess{cmd: cmd, out: bufio.NewScanner(stdout), done: make(chan string, 1)}
		ps[r] = p
		t.Cleanup(func() { cmd.Process.Kill() })
	}
	for r, p := range ps {
		if !p.out.Scan() || p.out.Text() != "joined" {
			t.Fatalf("rank %d did not join: %q", r, p.out.Text())
		}
		go func() {
			last := ""
			for p.out.Scan() {
				last = p.out.Text()
			}
			p.cmd.Wait()
			p.done <- last
		}()
	}
	return ps
}

// TestKilledOrStoppedRank: a rank killed with SIGKILL, or stopped with
// SIGSTOP (a hang), makes every other rank exit within a bound, naming it.
func TestKilledOrStoppedRank(t *testing.T) {
	for _, c := range []struct {
		sig   syscall.Signal
		want  string
		bound time.Duration
	}{
		{syscall.SIGKILL, "rank 1 lost its connection", 3 * time.Second},
		{syscall.SIGSTOP, "rank 1 sent nothing for", 6 * time.Second}, // DeadAfter 2 s + heartbeats
	} {
		t.Run(c.sig.String(), func(t *testing.T) {
			ps := startRanks(t, 3)
			time.Sleep(200 * time.Millisecond) // a few collectives
			t0 := time.Now()
			ps[1].cmd.Process.Signal(c.sig)
			for _, r := range []int{0, 2} {
				select {
				case last := <-ps[r].done:
					if !strings.Contains(last, c.want) {
						t.Errorf("rank %d said %q, want %q", r, last, c.want)
					}
					if code := ps[r].cmd.ProcessState.ExitCode(); code != ExitStopped {
						t.Errorf("rank %d exited with %d, want %d", r, code, ExitStopped)
					}
				case <-time.After(c.bound):
					t.Fatalf("rank %d still runs %s after rank 1 got %v", r, c.bound, c.sig)
				}
			}
			t.Logf("%v: the other ranks stopped after %s", c.sig, time.Since(t0).Round(time.Millisecond))
		})
	}
}

// TestSpawn starts three local ranks with the torchrun variables; rank 1
// exits with status 3 after joining, so the others are stopped and the
// error names rank 1.
func TestSpawn(t *testing.T) {
	var out bytes.Buffer
	t.Setenv("MOHAWK_DIST_HELPER", "exit")
	t0 := time.Now()
	err := Spawn(context.Background(), SpawnOptions{N: 3, Exe: os.Args[0], Args: []string{"-test.run=^$"}, Out: &out, Grace: 5 * time.Second})
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Rank != 1 || ee.Code != 3 {
		t.Fatalf("got %v, want rank 1's exit status 3\n%s", err, out.String())
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Errorf("took %s", d)
	}
	for r := range 3 {
		if !strings.Contains(out.String(), fmt.Sprintf("[rank %d] joined", r)) {
			t.Errorf("no line from rank %d:\n%s", r, out.String())
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the ranks' writers and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSpawnForwardsSignals: a SIGTERM to the launcher reaches every rank.
func TestSpawnForwardsSignals(t *testing.T) {
	out := &syncBuffer{}
	t.Setenv("MOHAWK_DIST_HELPER", "loop")
	done := make(chan error, 1)
	go func() {
		done <- Spawn(context.Background(), SpawnOptions{N: 2, Exe: os.Args[0], Args: []string{"-test.run=^$"}, Out: out, Grace: 5 * time.Second})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(out.String(), "joined") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the ranks did not join:\n%s", out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM) // Spawn has signal.Notify'd it
	select {
	case err := <-done:
		var ee *ExitError
		if !errors.As(err, &ee) || ee.Signal != syscall.SIGTERM.String() {
			t.Fatalf("got %v, want a rank ended by SIGTERM\n%s", err, out)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the ranks still run 10 s after SIGTERM:\n%s", out)
	}
}
