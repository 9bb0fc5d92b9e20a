package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"

	"mohawk/dist"
	"mohawk/stages"
	"mohawk/tensors"
)

// ranks is this process's place in a job of several ranks (nil: a run of
// one process). Stages 1 and 2 split their layer groups among the ranks
// (stages.Shard); the other training stages run whole on every rank, rank 0
// writing their checkpoints after the ranks compared a checksum of the
// state; evaluation, export, stage outputs, done.json and the report are
// rank 0's alone. output_dir must be one shared directory.
type ranks struct {
	conn *dist.Conn
	ctx  context.Context // the run's context
}

// joinRanks joins the other ranks of opt's job (nil when opt is nil or has
// one rank), comparing the plan and this binary with theirs.
func joinRanks(ctx context.Context, opt *dist.Options, p *Plan, out io.Writer) (*ranks, error) {
	if opt == nil || opt.Size < 2 {
		return nil, nil
	}
	o := *opt
	o.PlanHash = p.hash()
	if o.BinaryHash == "" {
		bh, err := dist.BinaryHash()
		if err != nil {
			return nil, fmt.Errorf("rank %d: hash this executable: %w", o.Rank, err)
		}
		o.BinaryHash = bh
	}
	fmt.Fprintf(out, "rank %d of %d (%s): joining at %s\n", o.Rank, o.Size, o.Launcher, o.Addr())
	c, err := dist.Join(ctx, o)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "rank %d: all %d ranks joined\n", o.Rank, o.Size)
	return &ranks{conn: c}, nil
}

// hash identifies the plan across ranks: the chained stage hashes cover
// the teacher, data, student and every stage's settings.
func (p *Plan) hash() string {
	var parts []string
	for _, s := range p.Stages {
		parts = append(parts, s.Name, s.Kind, s.Hash)
	}
	return sha256Hex(parts...)
}

// leader reports whether this process writes the run's files: rank 0, or
// the only process.
func (r *ranks) leader() bool { return r == nil || r.conn.Rank() == 0 }

// start ties the run's context to the job: a failed rank cancels it.
func (r *ranks) start(ctx context.Context) context.Context {
	ctx, cancel := context.WithCancelCause(ctx)
	context.AfterFunc(r.conn.Context(), func() { cancel(r.conn.Err()) })
	r.ctx = ctx
	return ctx
}

// finish ends this rank's part: with err, the other ranks stop, naming
// this one; when another rank stopped the job, its error is the answer.
func (r *ranks) finish(err error) error {
	if r == nil {
		return err
	}
	if jobErr := r.conn.Err(); jobErr != nil && !errors.Is(jobErr, dist.ErrClosed) {
		var re *dist.RankError
		if errors.As(jobErr, &re) && re.Rank != r.conn.Rank() {
			return &dist.StoppedError{Rank: r.conn.Rank(), Cause: re}
		}
		return err
	}
	if err != nil && !errors.Is(err, stages.ErrInterrupted) {
		r.conn.Abort(err)
		return err
	}
	r.conn.Close() // an interrupted rank just leaves: the launcher signals every rank
	return err
}

// agree checks that every rank gives the same answer to question (a
// stage's done.json, a checkpoint), as one shared output_dir ensures.
func (r *ranks) agree(question string, answer []byte) error {
	if r == nil {
		return nil
	}
	if err := dist.VerifyIdentical(r.ctx, r.conn, question, answer); err != nil {
		return fmt.Errorf("%w; output_dir must be one directory shared by every rank", err)
	}
	return nil
}

// setup gives a training stage its share of the job: Stages 1 and 2 a
// layer shard (each rank writes its own groups' checkpoints), the others
// checkpoints that rank 0 writes once the ranks' states agree.
func (r *ranks) setup(env *stages.Env, sp StagePlan) {
	if r == nil || sp.Train == nil {
		return
	}
	if sp.Kind == KindOrient || sp.Kind == KindAlign {
		env.Shard = layerShard{r}
		return
	}
	env.Ckpt = &rankCheckpoints{inner: env.Ckpt, r: r}
}

// ShardRange is rank's consecutive share of n layer groups among size
// ranks: the first n%size ranks take one more.
func ShardRange(rank, size, n int) (lo, hi int) {
	per, extra := n/size, n%size
	lo = rank*per + min(rank, extra)
	hi = lo + per
	if rank < extra {
		hi++
	}
	return lo, hi
}

// layerShard is stages.Shard over the job's connection.
type layerShard struct{ r *ranks }

func (s layerShard) Range(n int) (int, int) { return ShardRange(s.r.conn.Rank(), s.r.conn.Size(), n) }

// Merge sums, over the ranks, a buffer in which each rank holds the
// tensors it trained and -0 elsewhere: x + (-0) is x bit for bit (and -0
// stays -0), so the sum is an exact gather.
func (s layerShard) Merge(w stages.Weights, names []string, own func(string) bool) (stages.Weights, error) {
	names = append([]string(nil), names...)
	sort.Strings(names)
	total := 0
	for _, n := range names {
		t, ok := w[n]
		if !ok || t.DType != tensors.Float32 {
			return nil, fmt.Errorf("tensor %s: missing or not float32", n)
		}
		total += int(t.NumElements())
	}
	negZero := float32(math.Copysign(0, -1))
	buf := make([]float32, total)
	at := 0
	for _, n := range names {
		x := w[n].Float32s()
		if own(n) {
			copy(buf[at:], x)
		} else {
			for i := range x {
				buf[at+i] = negZero
			}
		}
		at += len(x)
	}
	if err := s.r.conn.AllReduce(s.r.ctx, buf); err != nil {
		return nil, err
	}
	out := stages.Weights{}
	for k, v := range w {
		out[k] = v
	}
	at = 0
	for _, n := range names {
		k := int(w[n].NumElements())
		out[n] = tensors.FromFloat32(w[n].Shape, buf[at:at+k])
		at += k
	}
	return out, nil
}

func (s layerShard) Gather(b []byte) ([][]byte, error) { return dist.AllGather(s.r.ctx, s.r.conn, b) }

// rankCheckpoints is a stage's checkpoints in a job whose ranks all train
// the same state: the ranks compare a checksum of it, rank 0 writes it, and
// every rank learns whether the write worked.
type rankCheckpoints struct {
	inner stages.Checkpointer
	r     *ranks
}

func (c *rankCheckpoints) Save(step int, t stages.Weights, meta stages.Meta) error {
	if err := c.r.conn.Err(); err != nil {
		return err
	}
	if c.r.ctx.Err() != nil { // interrupted: the ranks may stand at different steps
		return fmt.Errorf("%w at step %d; with several ranks only the periodic checkpoints are written", stages.ErrInterrupted, step)
	}
	if err := dist.VerifyIdentical(c.r.ctx, c.r.conn, fmt.Sprintf("the training state at step %d", step), stateSum(step, t, meta)); err != nil {
		return err
	}
	var werr error
	if c.r.leader() {
		werr = c.inner.Save(step, t, meta)
	}
	failed := []float32{0}
	if werr != nil {
		failed[0] = 1
	}
	if err := c.r.conn.AllReduce(c.r.ctx, failed); err != nil {
		return errors.Join(werr, err)
	}
	if werr == nil && failed[0] != 0 {
		return fmt.Errorf("rank 0 could not write checkpoint step %d (its log says why)", step)
	}
	return werr
}

// Latest reads the newest checkpoint on every rank and checks that they
// found the same one.
func (c *rankCheckpoints) Latest() (int, stages.Weights, stages.Meta, bool, error) {
	step, t, meta, ok, err := c.inner.Latest()
	if err != nil {
		return step, t, meta, ok, err
	}
	sum := []byte("none")
	if ok {
		sum = stateSum(step, t, meta)
	}
	if err := c.r.agree("the checkpoint to resume from", sum); err != nil {
		return 0, nil, stages.Meta{}, false, err
	}
	return step, t, meta, ok, nil
}

func (c *rankCheckpoints) Sub(name string) stages.Checkpointer {
	return &rankCheckpoints{inner: c.inner.Sub(name), r: c.r}
}

// stateSum is the SHA-256 of a training state: step, metadata, and every
// tensor's name, dtype, shape and bytes in name order.
func stateSum(step int, t stages.Weights, meta stages.Meta) []byte {
	h := sha256.New()
	mb, _ := json.Marshal(meta)
	fmt.Fprintf(h, "step %d\n%s\n", step, mb)
	names := make([]string, 0, len(t))
	for n := range t {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		x := t[n]
		fmt.Fprintf(h, "%s %d %v %d\n", n, x.DType, x.Shape, len(x.Data))
		h.Write(x.Data)
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(len(names)))
	h.Write(b[:])
	return h.Sum(nil)
}

// printRanks shows, for a job of several ranks, what each rank does in
// every stage (Stages 1 and 2: its layer groups of the student's layers),
// its micro-batches per step and its memory.
func printRanks(w io.Writer, p *Plan, layers int, opt *dist.Options) {
	if opt == nil || opt.Size < 2 {
		return
	}
	n := opt.Size
	fmt.Fprintf(w, "ranks: %d (%s, %d per node), rendezvous at %s; output_dir must be shared by all\n", n, opt.Launcher, opt.LocalSize, opt.Addr())
	for _, s := range p.Stages {
		o := s.Train
		switch {
		case o == nil:
			fmt.Fprintf(w, "  %-10s rank 0 only\n", s.Name)
		case s.Kind == KindOrient || s.Kind == KindAlign:
			groups := 1
			if o.LayerGroup > 0 {
				groups = (layers + o.LayerGroup - 1) / o.LayerGroup
			}
			var parts []string
			for r := range n {
				lo, hi := ShardRange(r, n, groups)
				if lo == hi {
					parts = append(parts, fmt.Sprintf("rank %d idle", r))
				} else {
					parts = append(parts, fmt.Sprintf("rank %d groups %d-%d", r, lo, hi-1))
				}
			}
			fmt.Fprintf(w, "  %-10s %d layer groups: %s; each runs %d micro-batches of %d per step\n", s.Name, groups, strings.Join(parts, ", "), o.MicroBatches, o.MicroBatch)
		default:
			fmt.Fprintf(w, "  %-10s every rank runs all %d micro-batches of %d per step (data parallel needs the NCCL gradient path); rank 0 writes checkpoints\n",
				s.Name, o.MicroBatches, o.MicroBatch)
		}
	}
	fmt.Fprintf(w, "  memory per rank (per GPU) ≈ %s, as for one process\n", stages.HumanBytes(p.Memory.TotalBytes))
}
