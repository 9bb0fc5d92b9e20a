package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// readParquet returns the documents of a Parquet shard: the values of its
// string column, one document per row, in row order. A null value, a column
// that is missing, repeated or not of strings, and a value that is not UTF-8
// text are errors naming the file, the row and the column.
func (sh shard) readParquet(ctx context.Context, column string) (docs []document, err error) {
	f, err := os.Open(sh.path)
	if err != nil {
		return nil, fmt.Errorf("%w; check data.path", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// The library trusts the file's metadata; a corrupt file can make it
	// panic, which is reported as a corrupt file.
	defer func() {
		if r := recover(); r != nil {
			docs, err = nil, fmt.Errorf("%s: corrupt Parquet file (%v); check it with a Parquet tool or regenerate it", sh.path, r)
		}
	}()
	pf, err := parquet.OpenFile(f, st.Size(), parquet.SkipBloomFilters(true), parquet.SkipPageIndex(true))
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable Parquet file: %v", sh.path, err)
	}
	leaf, ok := pf.Schema().Lookup(strings.Split(column, ".")...)
	if !ok {
		var names []string
		for _, c := range pf.Schema().Columns() {
			names = append(names, strings.Join(c, "."))
		}
		return nil, fmt.Errorf("%s has no column %q (it has %s); set data.column to the column that holds the text",
			sh.path, column, strings.Join(names, ", "))
	}
	if kind := leaf.Node.Type().Kind(); kind != parquet.ByteArray || leaf.MaxRepetitionLevel > 0 {
		what := kind.String() + " values"
		if leaf.MaxRepetitionLevel > 0 {
			what = "lists"
		}
		return nil, fmt.Errorf("%s: column %q holds %s, not strings; set data.column to the column that holds the text", sh.path, column, what)
	}
	docs = make([]document, 0, pf.NumRows())
	values := make([]parquet.Value, 256)
	for _, rg := range pf.RowGroups() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		pages := rg.ColumnChunks()[leaf.ColumnIndex].Pages()
		err := readPages(sh.path, pages, values, func(v parquet.Value) error {
			row := len(docs) + 1
			if v.IsNull() {
				return fmt.Errorf("%s: row %d: column %q is null; drop rows without text or fill them", sh.path, row, column)
			}
			b := v.ByteArray()
			if err := checkText(b, 0); err != nil {
				return fmt.Errorf("%s: row %d: column %q has %v of its value; the text column must hold UTF-8 text", sh.path, row, column, err)
			}
			docs = append(docs, document{text: string(b), row: row, size: len(b)})
			return nil
		})
		pages.Close()
		if err != nil {
			return nil, err
		}
	}
	return docs, nil
}

// readPages calls fn with every value of a column chunk of file, in order,
// and returns the first error of fn as it is.
func readPages(file string, pages parquet.Pages, buf []parquet.Value, fn func(parquet.Value) error) error {
	for {
		page, err := pages.ReadPage()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: corrupt Parquet page: %v; check the file or regenerate it", file, err)
		}
		r := page.Values()
		for {
			n, err := r.ReadValues(buf)
			for _, v := range buf[:n] {
				if err := fn(v); err != nil {
					parquet.Release(page)
					return err
				}
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				parquet.Release(page)
				return fmt.Errorf("%s: corrupt Parquet values: %v; check the file or regenerate it", file, err)
			}
		}
		parquet.Release(page)
	}
}
