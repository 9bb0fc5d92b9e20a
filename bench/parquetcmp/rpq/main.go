package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/parquet-go/parquet-go"
)

func main() {
	t0 := time.Now()
	f, _ := os.Open(os.Args[1])
	st, _ := f.Stat()
	pf, err := parquet.OpenFile(f, st.Size())
	if err != nil {
		panic(err)
	}
	leaf, ok := pf.Schema().Lookup("text")
	if !ok {
		panic("no text")
	}
	var total, rows int
	vals := make([]parquet.Value, 1024)
	for _, rg := range pf.RowGroups() {
		pages := rg.ColumnChunks()[leaf.ColumnIndex].Pages()
		for {
			p, err := pages.ReadPage()
			if err == io.EOF {
				break
			}
			if err != nil {
				panic(err)
			}
			r := p.Values()
			for {
				n, err := r.ReadValues(vals)
				for _, v := range vals[:n] {
					total += len(v.ByteArray())
					rows++
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					panic(err)
				}
			}
			parquet.Release(p)
		}
		pages.Close()
	}
	d := time.Since(t0)
	fmt.Printf("parquet-go rows %d bytes %d %.2fs %.1f MB/s\n", rows, total, d.Seconds(), float64(total)/1e6/d.Seconds())
}
