package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// object is one top-level JSON object of a JSONL file (or an object nested
// in one), with what error messages need to point at it.
type object struct {
	file   string
	line   int    // 1-based line number in file (row number when rows is set)
	rows   bool   // the file is Parquet: line counts rows
	at     int    // byte offset of the line in file
	prefix string // path of a nested object, such as "question.", "" at top level
	fields map[string]json.RawMessage
}

// eachObject calls fn with every non-blank line of a JSONL file, in order.
// Lines may end in "\r\n"; a leading UTF-8 byte-order mark is skipped.
func eachObject(file string, data []byte, fn func(o object) error) error {
	at := 0
	if bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) {
		at = 3
	}
	for line := 1; at < len(data); line++ {
		end := len(data)
		if i := bytes.IndexByte(data[at:], '\n'); i >= 0 {
			end = at + i
		}
		text := bytes.TrimSpace(data[at:end])
		start := at
		at = end + 1
		if len(text) == 0 {
			continue
		}
		if text[0] != '{' {
			return fmt.Errorf("%s:%d: the line is not a JSON object (it starts with %q); write one object per line", file, line, truncate(string(text), 20))
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(text, &fields); err != nil {
			return fmt.Errorf("%s:%d: invalid JSON: %v; write one object per line", file, line, err)
		}
		if err := fn(object{file: file, line: line, at: start, fields: fields}); err != nil {
			return err
		}
	}
	return nil
}

// eachRecord calls fn with every record of a task file: the rows of a
// Parquet file (a name ending in ".parquet"), else the lines of a JSONL
// file. what names the file's task in errors.
func eachRecord(file, what string, fn func(o object) error) error {
	if strings.EqualFold(filepath.Ext(file), ".parquet") {
		if _, err := os.Stat(file); err != nil {
			return fmt.Errorf("%w; check the %s file path", err, what)
		}
		return eachParquetObject(file, fn)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("%w; check the %s file path", err, what)
	}
	return eachObject(file, raw, fn)
}

// truncate shortens s to at most n bytes, marking the cut with "...".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// errorf prefixes a message with the file and line (or Parquet row) of o.
func (o object) errorf(format string, args ...any) error {
	if o.rows {
		return fmt.Errorf("%s: row %d: %s", o.file, o.line, fmt.Sprintf(format, args...))
	}
	return fmt.Errorf("%s:%d: %s", o.file, o.line, fmt.Sprintf(format, args...))
}

// problem is an error about field key, with hint (what to do) appended.
func (o object) problem(key, hint, format string, args ...any) error {
	msg := fmt.Sprintf("field %q %s", o.prefix+key, fmt.Sprintf(format, args...))
	if hint != "" {
		msg += "; " + hint
	}
	return o.errorf("%s", msg)
}

// has reports whether field key is present and not null.
func (o object) has(key string) bool {
	raw, ok := o.fields[key]
	return ok && kind(raw) != "null"
}

// value returns field key, or an error when it is missing or null.
func (o object) value(key, hint string) (json.RawMessage, error) {
	raw, ok := o.fields[key]
	if !ok {
		return nil, o.problem(key, hint, "is missing")
	}
	if kind(raw) == "null" {
		return nil, o.problem(key, hint, "is null")
	}
	return raw, nil
}

// kind names the JSON type of a raw value.
func kind(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "empty"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// str returns string field key.
func (o object) str(key, hint string) (string, error) {
	raw, err := o.value(key, hint)
	if err != nil {
		return "", err
	}
	var s string
	if kind(raw) != "a string" || json.Unmarshal(raw, &s) != nil {
		return "", o.problem(key, hint, "is %s, not a string", kind(raw))
	}
	return s, nil
}

// strs returns field key, an array of strings.
func (o object) strs(key, hint string) ([]string, error) {
	raw, err := o.value(key, hint)
	if err != nil {
		return nil, err
	}
	var items []json.RawMessage
	if kind(raw) != "an array" || json.Unmarshal(raw, &items) != nil {
		return nil, o.problem(key, hint, "is %s, not an array of strings", kind(raw))
	}
	out := make([]string, len(items))
	for i, item := range items {
		if kind(item) != "a string" || json.Unmarshal(item, &out[i]) != nil {
			return nil, o.problem(fmt.Sprintf("%s[%d]", key, i), hint, "is %s, not a string", kind(item))
		}
	}
	return out, nil
}

// integer returns field key, a whole number written as a JSON number or as a
// string holding one (datasets write labels both ways).
func (o object) integer(key, hint string) (int, error) {
	raw, err := o.value(key, hint)
	if err != nil {
		return 0, err
	}
	text := string(raw)
	switch kind(raw) {
	case "a string":
		if json.Unmarshal(raw, &text) != nil {
			return 0, o.problem(key, hint, "is not a valid JSON string")
		}
		text = strings.TrimSpace(text)
		if text == "" {
			return 0, o.problem(key, hint, "is empty (test splits have no labels; use a split that has them)")
		}
	case "a number":
	default:
		return 0, o.problem(key, hint, "is %s, not a whole number", kind(raw))
	}
	if n, err := strconv.Atoi(text); err == nil {
		return n, nil
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || f != math.Trunc(f) || math.Abs(f) > 1<<31 {
		return 0, o.problem(key, hint, "is %s, not a whole number", truncate(text, 20))
	}
	return int(f), nil
}

// sub returns field key, a nested object.
func (o object) sub(key, hint string) (object, error) {
	raw, err := o.value(key, hint)
	if err != nil {
		return object{}, err
	}
	return o.nested(raw, key, hint)
}

// nested decodes raw, the value at key (a field name or "name[i]"), as an
// object.
func (o object) nested(raw json.RawMessage, key, hint string) (object, error) {
	var fields map[string]json.RawMessage
	if kind(raw) != "an object" || json.Unmarshal(raw, &fields) != nil {
		return object{}, o.problem(key, hint, "is %s, not an object", kind(raw))
	}
	return object{file: o.file, line: o.line, rows: o.rows, at: o.at, prefix: o.prefix + key + ".", fields: fields}, nil
}

// objects returns field key, an array of objects.
func (o object) objects(key, hint string) ([]object, error) {
	raw, err := o.value(key, hint)
	if err != nil {
		return nil, err
	}
	var items []json.RawMessage
	if kind(raw) != "an array" || json.Unmarshal(raw, &items) != nil {
		return nil, o.problem(key, hint, "is %s, not an array of objects", kind(raw))
	}
	out := make([]object, len(items))
	for i, item := range items {
		if out[i], err = o.nested(item, fmt.Sprintf("%s[%d]", key, i), hint); err != nil {
			return nil, err
		}
	}
	return out, nil
}
