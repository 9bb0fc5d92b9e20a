package dist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Comm is what the pipeline needs from a group of ranks. Conn implements it
// over TCP on the host (CPU ranks, and the control collectives of GPU
// ranks); the NCCL layer implements it, plus a device variant, on GPUs.
type Comm interface {
	Rank() int
	Size() int
	// AllReduce replaces buf, on every rank, by the element-wise sum over
	// the ranks, added in rank order so that every rank gets the same bits.
	// All ranks call it with buffers of one length.
	AllReduce(ctx context.Context, buf []float32) error
	// Barrier returns once every rank has called it.
	Barrier(ctx context.Context) error
	Close() error
}

// RankError is the reason a job stops: the rank at fault and what it did.
type RankError struct {
	Rank   int    `json:"rank"`
	Reason string `json:"reason"`
}

func (e *RankError) Error() string { return fmt.Sprintf("rank %d %s", e.Rank, e.Reason) }

// StoppedError is this rank stopping because another one failed.
type StoppedError struct {
	Rank  int // this rank
	Cause *RankError
}

func (e *StoppedError) Error() string { return fmt.Sprintf("rank %d stopped: %v", e.Rank, e.Cause) }
func (e *StoppedError) Unwrap() error { return e.Cause }

// ExitStopped is the exit status of a rank that stopped because another
// failed (a *StoppedError), so that Spawn names the one that failed.
const ExitStopped = 75

// ErrClosed is returned by collectives after Close.
var ErrClosed = errors.New("dist: connection closed")

// Options configure Join.
type Options struct {
	Launch
	// PlanHash and BinaryHash must be equal on every rank: the job refuses
	// to start otherwise, naming the rank that differs.
	PlanHash, BinaryHash string
	// Blob makes rank 0's opaque blob for every rank (the NCCL unique id);
	// nil hands out none.
	Blob func() ([]byte, error)
	// JoinTimeout bounds the rendezvous (default 5 minutes).
	JoinTimeout time.Duration
	// Heartbeat is how often ranks tell each other they are alive (default
	// 1 s); a rank silent for DeadAfter (default 30 s) is taken for dead or
	// hung and stops the job.
	Heartbeat, DeadAfter time.Duration
	// CollectiveTimeout bounds the wait for the other ranks in a collective
	// (default 30 minutes): a rank whose process lives but whose work hangs
	// is named when it does not arrive.
	CollectiveTimeout time.Duration
}

func (o *Options) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.JoinTimeout, 5*time.Minute)
	def(&o.Heartbeat, time.Second)
	def(&o.DeadAfter, 30*time.Second)
	def(&o.CollectiveTimeout, 30*time.Minute)
}

// Conn is this rank's connection to the others: a star around rank 0.
type Conn struct {
	opt   Options
	peers map[int]*peer // rank 0: every other rank; others: rank 0
	blob  []byte
	seq   uint64 // collectives performed

	ctx    context.Context
	cancel context.CancelCauseFunc
	once   sync.Once
	err    error // why the connection ended: a *RankError or ErrClosed
	wg     sync.WaitGroup
	stop   chan struct{}
}

type peer struct {
	rank   int
	conn   net.Conn
	wmu    sync.Mutex
	last   atomic.Int64  // unix nanoseconds of the last frame received
	reduce chan []byte   // reduce payloads received
	gone   chan struct{} // closed when the peer said goodbye
}

func newPeer(rank int, c net.Conn) *peer {
	p := &peer{rank: rank, conn: c, reduce: make(chan []byte, 1), gone: make(chan struct{})}
	p.last.Store(time.Now().UnixNano())
	return p
}

// Read reads from the connection and notes the time: bytes of a large
// frame in transit show that the peer lives.
func (p *peer) Read(b []byte) (int, error) {
	n, err := p.conn.Read(b)
	if n > 0 {
		p.last.Store(time.Now().UnixNano())
	}
	return n, err
}

// beat sends a heartbeat unless a frame is being written, which shows
// life already.
func (p *peer) beat(timeout time.Duration) {
	if !p.wmu.TryLock() {
		return
	}
	defer p.wmu.Unlock()
	p.conn.SetWriteDeadline(time.Now().Add(timeout))
	writeFrame(p.conn, frameBeat, nil)
}

// send writes one frame, giving up after timeout (a peer that stopped
// reading must not block this rank forever).
func (p *peer) send(typ byte, payload []byte, timeout time.Duration) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.conn.SetWriteDeadline(time.Now().Add(timeout))
	return writeFrame(p.conn, typ, payload)
}

// Join connects this rank to the others (see the package comment) and
// returns once every rank has joined with the same plan and binary.
func Join(ctx context.Context, opt Options) (*Conn, error) {
	opt.defaults()
	if err := opt.check(); err != nil {
		return nil, err
	}
	c := &Conn{opt: opt, peers: map[int]*peer{}, stop: make(chan struct{})}
	var err error
	if opt.Rank == 0 {
		err = c.accept(ctx)
	} else {
		err = c.dial(ctx)
	}
	if err != nil {
		for _, p := range c.peers {
			p.conn.Close()
		}
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	for _, p := range c.peers {
		c.wg.Add(1)
		go c.read(p)
	}
	c.wg.Add(1)
	go c.watch()
	return c, nil
}

// Rank is this process's rank.
func (c *Conn) Rank() int { return c.opt.Rank }

// Size is the number of ranks.
func (c *Conn) Size() int { return c.opt.Size }

// Blob is what rank 0's Options.Blob made.
func (c *Conn) Blob() []byte { return c.blob }

// Context is cancelled, with the *RankError as its cause, when the job
// must stop.
func (c *Conn) Context() context.Context { return c.ctx }

// Err is why the job stopped (a *RankError), nil while it runs.
func (c *Conn) Err() error {
	if c.ctx.Err() == nil {
		return nil
	}
	return context.Cause(c.ctx)
}

// Abort stops every rank, blaming this one for err (a failed step, a
// non-finite loss): the others return a *RankError naming it.
func (c *Conn) Abort(err error) {
	c.fault(&RankError{Rank: c.opt.Rank, Reason: "failed: " + err.Error()}, true)
}

// Close says goodbye to the other ranks and closes the connections.
func (c *Conn) Close() error {
	c.once.Do(func() {
		c.err = ErrClosed
		c.cancel(ErrClosed)
		close(c.stop)
		for _, p := range c.peers {
			p.send(frameBye, nil, time.Second)
			p.conn.Close()
		}
	})
	c.wg.Wait()
	return nil
}

// fault ends the job for every rank: rank 0 tells the others who failed;
// another rank tells rank 0 when the failure is its own (tell).
func (c *Conn) fault(e *RankError, tell bool) {
	c.once.Do(func() {
		c.err = e
		b, _ := json.Marshal(e)
		// The aborts go out before this rank learns of the fault, which
		// may make it exit; at most a second each, all at once.
		var wg sync.WaitGroup
		for _, p := range c.peers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// rank 0 tells every other rank, the one at fault too (it
				// may live and wait); another rank tells rank 0 of its own
				// failure.
				if c.opt.Rank == 0 || (tell && p.rank != e.Rank) {
					p.send(frameAbort, b, time.Second)
				}
				p.conn.Close()
			}()
		}
		wg.Wait()
		c.cancel(e)
		close(c.stop)
	})
}

// read receives p's frames until the connection ends.
func (c *Conn) read(p *peer) {
	defer c.wg.Done()
	for {
		typ, b, err := readFrame(p)
		if err != nil {
			select {
			case <-c.stop:
			case <-p.gone:
			default:
				c.lost(p, err)
			}
			return
		}
		switch typ {
		case frameReduce:
			select {
			case p.reduce <- b:
			case <-c.stop:
				return
			}
		case frameAbort:
			var e RankError
			if json.Unmarshal(b, &e) != nil {
				e = RankError{Rank: p.rank, Reason: "sent an unreadable abort"}
			}
			c.fault(&e, false)
			return
		case frameBye:
			close(p.gone)
			return
		}
	}
}

// watch sends heartbeats and stops the job when a peer falls silent.
func (c *Conn) watch() {
	defer c.wg.Done()
	t := time.NewTicker(c.opt.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		for _, p := range c.peers {
			select {
			case <-p.gone:
				continue
			default:
			}
			p.beat(c.opt.DeadAfter)
			if quiet := time.Since(time.Unix(0, p.last.Load())); quiet > c.opt.DeadAfter {
				c.fault(&RankError{Rank: p.rank, Reason: fmt.Sprintf("sent nothing for %s (watchdog): it hangs, was stopped, or its host is unreachable",
					quiet.Round(time.Millisecond))}, false)
				return
			}
		}
	}
}

// Barrier returns once every rank has called it.
func (c *Conn) Barrier(ctx context.Context) error { return reduceChunk[float32](ctx, c, nil) }

// AllReduce sums buf over the ranks in rank order (rank 0 adds them up and
// sends the result back), in chunks of chunkValues values.
func (c *Conn) AllReduce(ctx context.Context, buf []float32) error { return allReduce(ctx, c, buf) }

// AllReduce64 is AllReduce for float64 buffers, added in float64: what the
// CPU kernel of the step graph's AllReduce op (the nccl branch's host
// reducer) sums gradients with, so that two ranks' mean of two float32
// micro-batch gradients rounds once, as one process's does.
func (c *Conn) AllReduce64(ctx context.Context, buf []float64) error { return allReduce(ctx, c, buf) }

func allReduce[T float32 | float64](ctx context.Context, c *Conn, buf []T) error {
	for lo := 0; lo < len(buf) || lo == 0; lo += chunkValues {
		if err := reduceChunk(ctx, c, buf[lo:min(len(buf), lo+chunkValues)]); err != nil {
			return err
		}
		if len(buf) == 0 {
			break
		}
	}
	return nil
}

func reduceChunk[T float32 | float64](ctx context.Context, c *Conn, buf []T) error {
	if err := c.Err(); err != nil {
		return err
	}
	c.seq++
	if c.opt.Rank != 0 {
		p := c.peers[0]
		if err := p.send(frameReduce, encodeReduce(c.seq, buf), c.opt.CollectiveTimeout); err != nil {
			return c.lost(p, fmt.Errorf("collective %d: send to rank 0: %w", c.seq, err))
		}
		x, err := receive[T](ctx, c, p, len(buf))
		if err != nil {
			return err
		}
		copy(buf, x)
		return nil
	}
	got := make([][]T, c.opt.Size)
	for r := 1; r < c.opt.Size; r++ {
		x, err := receive[T](ctx, c, c.peers[r], len(buf))
		if err != nil {
			return err
		}
		got[r] = x
	}
	for i := range buf {
		s := buf[i]
		for _, x := range got[1:] {
			s += x[i]
		}
		buf[i] = s
	}
	out := encodeReduce(c.seq, buf)
	for r := 1; r < c.opt.Size; r++ {
		if err := c.peers[r].send(frameReduce, out, c.opt.CollectiveTimeout); err != nil {
			return c.lost(c.peers[r], fmt.Errorf("collective %d: send to rank %d: %w", c.seq, r, err))
		}
	}
	return nil
}

// receive waits for p's part of the current collective and checks that it
// is one: the same sequence number, element type and length n as this
// rank's.
func receive[T float32 | float64](ctx context.Context, c *Conn, p *peer, n int) ([]T, error) {
	timer := time.NewTimer(c.opt.CollectiveTimeout)
	defer timer.Stop()
	var b []byte
	select {
	case b = <-p.reduce:
	case <-c.stop:
		return nil, c.Err()
	case <-p.gone:
		select { // a part sent just before the goodbye still counts
		case b = <-p.reduce:
			return decode[T](c, p, b, n)
		default:
		}
		c.fault(&RankError{Rank: p.rank, Reason: fmt.Sprintf("finished and closed its connection while this rank waited in collective %d: the ranks ran different work", c.seq)}, false)
		return nil, c.Err()
	case <-timer.C:
		c.fault(&RankError{Rank: p.rank, Reason: fmt.Sprintf("did not reach collective %d within %s (watchdog): its work hangs", c.seq, c.opt.CollectiveTimeout)}, false)
		return nil, c.Err()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return decode[T](c, p, b, n)
}

// decode reads p's part of the current collective.
func decode[T float32 | float64](c *Conn, p *peer, b []byte, n int) ([]T, error) {
	seq, x, err := decodeReduce[T](b)
	switch {
	case err != nil:
	case seq != c.seq:
		err = fmt.Errorf("is at collective %d while rank %d is at %d: the ranks ran different work", seq, c.opt.Rank, c.seq)
	case len(x) != n:
		err = fmt.Errorf("sent %d values to collective %d where rank %d has %d: the ranks ran different work", len(x), c.seq, c.opt.Rank, n)
	}
	if err != nil {
		c.fault(&RankError{Rank: p.rank, Reason: err.Error()}, false)
		return nil, c.Err()
	}
	return x, nil
}

// lost stops the job blaming peer p, whose connection broke (err: a read
// or a send that failed): its process exited, was killed, or stopped
// reading.
func (c *Conn) lost(p *peer, err error) error {
	c.fault(&RankError{Rank: p.rank, Reason: fmt.Sprintf("lost its connection (%v): its process exited or was killed", err)}, false)
	return c.Err()
}

func (o Options) check() error {
	if err := o.Launch.check(); err != nil {
		return err
	}
	if o.MasterAddr == "" {
		return fmt.Errorf("no rendezvous address: set MASTER_ADDR")
	}
	return nil
}
