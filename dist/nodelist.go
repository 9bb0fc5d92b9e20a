package dist

import (
	"fmt"
	"strconv"
	"strings"
)

// ExpandNodeList expands a Slurm host list such as "gpu[01-04,07],login1"
// or "rack[1-2]-n[1-2]" into host names, in order. Numbers keep the width
// of the range's first bound ("01-04" → 01, 02, 03, 04).
func ExpandNodeList(list string) ([]string, error) {
	var out []string
	for _, item := range splitTop(list) {
		if item == "" {
			return nil, fmt.Errorf("empty host name in the node list")
		}
		hosts, err := expandHost(item)
		if err != nil {
			return nil, err
		}
		out = append(out, hosts...)
	}
	return out, nil
}

// splitTop splits at commas outside brackets.
func splitTop(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '[':
			depth++
		case ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// expandHost expands one host pattern with any number of bracket groups.
func expandHost(h string) ([]string, error) {
	open := strings.IndexByte(h, '[')
	if open < 0 {
		if strings.ContainsAny(h, "]") {
			return nil, fmt.Errorf("host %q has a ']' without '['", h)
		}
		return []string{h}, nil
	}
	end := strings.IndexByte(h[open:], ']')
	if end < 0 {
		return nil, fmt.Errorf("host %q has a '[' without ']'", h)
	}
	end += open
	nums, err := expandRanges(h[open+1 : end])
	if err != nil {
		return nil, fmt.Errorf("host %q: %w", h, err)
	}
	rest, err := expandHost(h[end+1:])
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nums {
		for _, r := range rest {
			out = append(out, h[:open]+n+r)
		}
	}
	return out, nil
}

// expandRanges expands "01-04,07" into 01, 02, 03, 04, 07.
func expandRanges(s string) ([]string, error) {
	var out []string
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		if !isRange {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a < 0 || b < a || lo == "" {
			return nil, fmt.Errorf("bad range %q (want numbers such as 01-04,07)", part)
		}
		if b-a > 1<<16 {
			return nil, fmt.Errorf("range %q is too long", part)
		}
		for n := a; n <= b; n++ {
			out = append(out, fmt.Sprintf("%0*d", len(lo), n))
		}
	}
	return out, nil
}
