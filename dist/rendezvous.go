package dist

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"mohawk/internal/filehash"
)

// accept is rank 0's side of the rendezvous: listen, take one hello from
// every other rank, check them, hand out the blob.
func (c *Conn) accept(ctx context.Context) error {
	o := c.opt
	ln, err := net.Listen("tcp", netJoin("", o.MasterPort))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("rank 0: port %d (MASTER_PORT) is in use: another job or a previous run holds it; choose another port or stop that process", o.MasterPort)
		}
		return fmt.Errorf("rank 0: cannot listen on port %d (MASTER_PORT): %w", o.MasterPort, err)
	}
	defer ln.Close()
	deadline := time.Now().Add(o.JoinTimeout)
	ln.(*net.TCPListener).SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for len(c.peers) < o.Size-1 {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("rank 0: ranks %v did not join at port %d within %s: check that they started, that MASTER_ADDR=%s reaches this host, and that no firewall blocks the port",
				c.missing(), o.MasterPort, o.JoinTimeout, o.MasterAddr)
		}
		h, err := readHello(conn, deadline)
		if err != nil { // a stray connection, not a rank: ignore it
			conn.Close()
			continue
		}
		if reason := c.admit(h); reason != "" {
			writeFrame(conn, frameReject, []byte(reason))
			conn.Close()
			c.rejectRest(ln, h.Rank, reason, deadline)
			return errors.New(reason)
		}
		c.peers[h.Rank] = newPeer(h.Rank, conn)
	}
	var blob []byte
	if o.Blob != nil {
		if blob, err = o.Blob(); err != nil {
			reason := fmt.Sprintf("rank 0 could not make the blob for the other ranks: %v", err)
			for _, p := range c.peers {
				p.send(frameReject, []byte(reason), time.Second)
			}
			return errors.New(reason)
		}
	}
	c.blob = blob
	w, _ := json.Marshal(welcome{Blob: blob})
	for _, p := range c.peers {
		if err := p.send(frameWelcome, w, o.DeadAfter); err != nil {
			return fmt.Errorf("rank 0: welcome rank %d: %w", p.rank, err)
		}
	}
	return nil
}

// rejectRest tells the ranks that joined, and those still coming (for up
// to 10 s), why the job cannot start: rank bad's reason.
func (c *Conn) rejectRest(ln net.Listener, bad int, reason string, deadline time.Time) {
	told := map[int]bool{bad: true}
	for r, p := range c.peers {
		p.send(frameReject, []byte(reason), time.Second)
		told[r] = true
	}
	if d := time.Now().Add(10 * time.Second); d.Before(deadline) {
		deadline = d
	}
	ln.(*net.TCPListener).SetDeadline(deadline)
	for len(told) < c.opt.Size-1 {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		if h, err := readHello(conn, deadline); err == nil {
			writeFrame(conn, frameReject, []byte(reason))
			told[h.Rank] = true
		}
		conn.Close()
	}
}

// admit checks a hello against rank 0's own; "" admits it.
func (c *Conn) admit(h hello) string {
	o := c.opt
	switch {
	case h.Version != protocolVersion:
		return fmt.Sprintf("rank %d speaks rendezvous protocol %d, rank 0 speaks %d: install the same build on every node", h.Rank, h.Version, protocolVersion)
	case h.Size != o.Size:
		return fmt.Sprintf("rank %d was launched with world size %d, rank 0 with %d: launch every rank with the same WORLD_SIZE", h.Rank, h.Size, o.Size)
	case h.Rank < 1 || h.Rank >= o.Size:
		return fmt.Sprintf("a process joined as rank %d, outside 1..%d: check RANK on every node", h.Rank, o.Size-1)
	case c.peers[h.Rank] != nil:
		return fmt.Sprintf("two processes joined as rank %d: check RANK on every node (or another job uses port %d)", h.Rank, o.MasterPort)
	case h.Binary != o.BinaryHash:
		return fmt.Sprintf("rank %d runs a different pipeline binary (sha256 %s) from rank 0 (%s): install the same build on every node", h.Rank, short(h.Binary), short(o.BinaryHash))
	case h.Plan != o.PlanHash:
		return fmt.Sprintf("rank %d's plan (hash %s) differs from rank 0's (%s): every rank must run the same configuration, overrides and data; compare their plan.json", h.Rank, short(h.Plan), short(o.PlanHash))
	}
	return ""
}

// missing lists the ranks that have not joined.
func (c *Conn) missing() []int {
	var out []int
	for r := 1; r < c.opt.Size; r++ {
		if c.peers[r] == nil {
			out = append(out, r)
		}
	}
	sort.Ints(out)
	return out
}

func readHello(conn net.Conn, deadline time.Time) (hello, error) {
	d := time.Now().Add(10 * time.Second)
	if deadline.Before(d) {
		d = deadline
	}
	conn.SetReadDeadline(d)
	defer conn.SetReadDeadline(time.Time{})
	typ, b, err := readFrame(conn)
	var h hello
	if err == nil && typ != frameHello {
		err = fmt.Errorf("frame %d before hello", typ)
	}
	if err == nil {
		err = json.Unmarshal(b, &h)
	}
	return h, err
}

// dial is the other ranks' side: connect to rank 0, retrying until the
// join timeout, say hello and wait for the welcome.
func (c *Conn) dial(ctx context.Context) error {
	o := c.opt
	addr := o.Addr()
	deadline := time.Now().Add(o.JoinTimeout)
	var conn net.Conn
	for {
		var err error
		d := net.Dialer{Timeout: min(2*time.Second, time.Until(deadline))}
		if conn, err = d.DialContext(ctx, "tcp", addr); err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rank %d: cannot reach rank 0 at %s within %s (%v): check MASTER_ADDR and MASTER_PORT, that rank 0 started, and that no firewall blocks the port",
				o.Rank, addr, o.JoinTimeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	c.peers[0] = newPeer(0, conn)
	h := hello{Version: protocolVersion, Rank: o.Rank, Size: o.Size, Plan: o.PlanHash, Binary: o.BinaryHash}
	conn.SetDeadline(deadline)
	defer conn.SetDeadline(time.Time{})
	if err := writeJSON(conn, frameHello, h); err != nil {
		return fmt.Errorf("rank %d: send hello to rank 0 at %s: %w", o.Rank, addr, err)
	}
	typ, b, err := readFrame(conn)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return fmt.Errorf("rank %d: no welcome from rank 0 at %s within %s (%v): the other ranks did not all join", o.Rank, addr, o.JoinTimeout, err)
	case typ == frameReject:
		return errors.New(string(b))
	case typ != frameWelcome:
		return fmt.Errorf("rank %d: unexpected frame %d from %s: is it a mohawk rank 0?", o.Rank, typ, addr)
	}
	var w welcome
	if err := json.Unmarshal(b, &w); err != nil {
		return fmt.Errorf("rank %d: unreadable welcome from rank 0: %w", o.Rank, err)
	}
	c.blob = w.Blob
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

var binaryHash = sync.OnceValues(func() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	return filehash.SHA256(exe)
})

// BinaryHash is the SHA-256 of this process's executable, which every rank
// compares at the rendezvous.
func BinaryHash() (string, error) { return binaryHash() }
