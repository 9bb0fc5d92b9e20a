package pipeline

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"mohawk/stages"
)

// runLog writes metrics.jsonl and shows progress on a terminal (or plain
// lines every tenth of the way when the output is not one).
type runLog struct {
	mu      sync.Mutex
	metrics io.WriteCloser
	out     io.Writer
	tty     bool
	observe func(map[string]any)
}

func newRunLog(metricsPath string, out io.Writer) (*runLog, error) {
	f, err := os.OpenFile(metricsPath, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open metrics: %w", err)
	}
	endLine(f) // a line torn by a crash must not swallow the next record
	tty := false
	if fd, ok := out.(interface{ Fd() uintptr }); ok {
		tty = term.IsTerminal(int(fd.Fd()))
	}
	return &runLog{metrics: f, out: out, tty: tty}, nil
}

var _ stages.Logger = (*runLog)(nil)

func (l *runLog) Metric(m map[string]any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	l.metrics.Write(append(b, '\n'))
	if l.observe != nil {
		l.observe(m)
	}
}

func (l *runLog) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.out, format+"\n", args...)
}

func (l *runLog) Close() error { return l.metrics.Close() }

func (l *runLog) Progress(desc string, n int) stages.Progress {
	if l.tty {
		bar := progressbar.NewOptions(n, progressbar.OptionSetWriter(l.out), progressbar.OptionSetDescription(desc),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(24), progressbar.OptionClearOnFinish())
		return &barProgress{bar: bar, desc: desc}
	}
	return &lineProgress{log: l, desc: desc, n: n, start: time.Now()}
}

type barProgress struct {
	bar  *progressbar.ProgressBar
	desc string
}

func (p *barProgress) Set(step int, status string) {
	if status != "" {
		p.bar.Describe(p.desc + " " + status)
	}
	p.bar.Set(step)
}

func (p *barProgress) Done() { p.bar.Finish() }

// lineProgress prints a line at each tenth of the way (for logs and CI).
type lineProgress struct {
	log      *runLog
	desc     string
	n, shown int
	start    time.Time
	last     string
}

func (p *lineProgress) Set(step int, status string) {
	p.last = status
	if p.n <= 0 {
		return
	}
	tenth := step * 10 / p.n
	if tenth > p.shown || step == p.n {
		p.shown = tenth
		p.log.Printf("%s: %d/%d (%d%%) %s [%s]", p.desc, step, p.n, step*100/p.n, status, time.Since(p.start).Round(time.Second))
	}
}

func (p *lineProgress) Done() {}
