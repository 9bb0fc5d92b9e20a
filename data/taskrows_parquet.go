package data

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/parquet-go/parquet-go"
)

// eachParquetObject calls fn with every row of a Parquet file, in order, as
// an object whose fields are the row's columns (nested groups become
// objects, LIST columns arrays), so the JSONL task readers read Parquet rows
// unchanged. Errors name the file and the 1-based row.
func eachParquetObject(file string, fn func(o object) error) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		return fmt.Errorf("%s: not a readable Parquet file: %w", file, err)
	}
	r := parquet.NewReader(pf)
	defer r.Close()
	for row := 1; ; row++ {
		values := map[string]any{}
		if err := r.Read(&values); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("%s: row %d: %w", file, row, err)
		}
		fields := make(map[string]json.RawMessage, len(values))
		for k, v := range values {
			raw, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("%s: row %d: column %q: %w", file, row, k, err)
			}
			fields[k] = raw
		}
		if err := fn(object{file: file, line: row, rows: true, fields: fields}); err != nil {
			return err
		}
	}
}
