package main

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
)

// checkFinite returns an error naming the first NaN or ±Inf float in v (a
// result about to be printed), by its JSON field path, e.g. "perplexity" or
// "rows[2].ms": pipeline never prints a non-finite result with status 0.
func checkFinite(what string, v any) error {
	if path, x, ok := firstNonFinite(reflect.ValueOf(v), ""); ok {
		return fmt.Errorf("%s: %s is %v, not a finite number, so no result is printed (a model whose weights hold NaN/Inf or whose outputs overflow gives this)", what, strings.TrimPrefix(path, "."), x)
	}
	return nil
}

// firstNonFinite walks v depth-first in field order.
func firstNonFinite(v reflect.Value, path string) (string, float64, bool) {
	switch v.Kind() {
	case reflect.Float32, reflect.Float64:
		if x := v.Float(); math.IsNaN(x) || math.IsInf(x, 0) {
			return path, x, true
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return firstNonFinite(v.Elem(), path)
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if p, x, ok := firstNonFinite(v.Field(i), path+"."+name); ok {
				return p, x, true
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if p, x, ok := firstNonFinite(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); ok {
				return p, x, true
			}
		}
	case reflect.Map:
		iter := v.MapRange()
		for iter.Next() {
			if p, x, ok := firstNonFinite(iter.Value(), fmt.Sprintf("%s[%v]", path, iter.Key())); ok {
				return p, x, true
			}
		}
	}
	return "", 0, false
}

// printJSON prints v as one line of JSON after checkFinite; an encoding
// error is returned, never dropped.
func printJSON(what string, v any) error {
	if err := checkFinite(what, v); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("%s: encode the result as JSON: %w", what, err)
	}
	fmt.Println(string(b))
	return nil
}
