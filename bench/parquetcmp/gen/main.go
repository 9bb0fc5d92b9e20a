package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"

	"github.com/parquet-go/parquet-go"
)

type row struct {
	Text string `parquet:"text,snappy"`
}

func main() {
	raw, _ := os.ReadFile(os.Args[1])
	target, _ := strconv.Atoi(os.Args[3])
	docs := bytes.Split(raw, []byte("\n\n"))
	f, _ := os.Create(os.Args[2])
	w := parquet.NewGenericWriter[row](f, parquet.MaxRowsPerRowGroup(20000))
	n, rows := 0, 0
	buf := make([]row, 0, 1000)
	for n < target {
		for _, d := range docs {
			buf = append(buf, row{string(d)})
			n += len(d)
			if len(buf) == cap(buf) {
				w.Write(buf)
				rows += len(buf)
				buf = buf[:0]
			}
		}
	}
	w.Write(buf)
	rows += len(buf)
	if err := w.Close(); err != nil {
		panic(err)
	}
	f.Close()
	fmt.Println("rows", rows, "text bytes", n)
}
