package main

import (
	"fmt"
	"os"
	"time"

	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
)

func main() {
	t0 := time.Now()
	f, _ := os.Open(os.Args[1])
	r, err := file.NewParquetReader(f)
	if err != nil {
		panic(err)
	}
	col := r.MetaData().Schema.ColumnIndexByName("text")
	var total, rows int
	vals := make([]parquet.ByteArray, 1024)
	def := make([]int16, 1024)
	for i := 0; i < r.NumRowGroups(); i++ {
		cr, err := r.RowGroup(i).Column(col)
		if err != nil {
			panic(err)
		}
		br := cr.(*file.ByteArrayColumnChunkReader)
		for br.HasNext() {
			_, n, err := br.ReadBatch(1024, vals, def, nil)
			if err != nil {
				panic(err)
			}
			for _, v := range vals[:n] {
				total += len(v)
				rows++
			}
		}
	}
	d := time.Since(t0)
	fmt.Printf("arrow-go rows %d bytes %d %.2fs %.1f MB/s\n", rows, total, d.Seconds(), float64(total)/1e6/d.Seconds())
}
