package hfconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// state is what a decoder found at a key.
type state int

const (
	absent    state = iota // no such key, or null
	present                // decoded into the destination
	wrongType              // reported as a problem; the destination is untouched
)

// decoder reads typed values out of one JSON object, recording keys of the
// wrong JSON type as problems.
type decoder struct {
	raw      map[string]json.RawMessage
	prefix   string // for nested objects: "rope_parameters."
	problems *[]Problem
}

// get returns key's value, or nil when the key is absent or null.
func (d *decoder) get(key string) json.RawMessage {
	v := bytes.TrimSpace(d.raw[key])
	if len(v) == 0 || string(v) == "null" {
		return nil
	}
	return v
}

func (d *decoder) fail(key string, v json.RawMessage, want string) state {
	*d.problems = append(*d.problems, Problem{d.prefix + key, fmt.Sprintf("is %s, which is not %s; write %s there", snippet(v), want, want)})
	return wrongType
}

func (d *decoder) int(key string, dst *int) state {
	v := d.get(key)
	if v == nil {
		return absent
	}
	if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		return d.fail(key, v, "an integer")
	}
	if n, err := strconv.ParseInt(string(v), 10, 0); err == nil {
		*dst = int(n)
		return present
	}
	// Some writers spell integers as 2048.0.
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) >= math.MaxInt64 {
		return d.fail(key, v, "an integer")
	}
	*dst = int(f)
	return present
}

func (d *decoder) float(key string, dst *float64) state {
	v := d.get(key)
	if v == nil {
		return absent
	}
	if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		return d.fail(key, v, "a number")
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil {
		return d.fail(key, v, "a finite number")
	}
	*dst = f
	return present
}

func (d *decoder) bool(key string, dst *bool) state {
	switch v := d.get(key); string(v) {
	case "":
		return absent
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		return d.fail(key, v, "true or false")
	}
	return present
}

func (d *decoder) str(key string, dst *string) state {
	v := d.get(key)
	if v == nil {
		return absent
	}
	if v[0] != '"' || json.Unmarshal(v, dst) != nil {
		return d.fail(key, v, "a string")
	}
	return present
}

func (d *decoder) object(key string, dst *map[string]json.RawMessage) state {
	v := d.get(key)
	if v == nil {
		return absent
	}
	if v[0] != '{' || json.Unmarshal(v, dst) != nil {
		return d.fail(key, v, "an object")
	}
	return present
}

// jsonObject decodes data read from source (named in the error) as one
// JSON object.
func jsonObject(data []byte, source string) (map[string]json.RawMessage, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
		if err == nil {
			err = fmt.Errorf("the file holds null")
		}
		return nil, fmt.Errorf("%s: not a JSON object: %w; fix the file or re-download it", source, err)
	}
	return raw, nil
}
