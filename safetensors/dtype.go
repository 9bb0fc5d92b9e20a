package safetensors

import (
	"fmt"

	"mohawk/tensors"
)

// dtypeNames maps the safetensors dtype strings mohawk supports to tensors
// dtypes.
var dtypeNames = map[string]tensors.DType{
	"F32":  tensors.Float32,
	"F16":  tensors.Float16,
	"BF16": tensors.BFloat16,
	"F64":  tensors.Float64,
	"I64":  tensors.Int64,
	"I32":  tensors.Int32,
	"I8":   tensors.Int8,
	"U8":   tensors.Uint8,
	"BOOL": tensors.Bool,
}

// supportedDTypes lists dtypeNames' keys for error messages.
const supportedDTypes = "F32, F16, BF16, F64, I64, I32, I8, U8, BOOL"

// dtypeName is the safetensors spelling of dt.
func dtypeName(dt tensors.DType) (string, error) {
	for name, d := range dtypeNames {
		if d == dt {
			return name, nil
		}
	}
	return "", fmt.Errorf("dtype %v has no safetensors equivalent (supported: %s)", dt, supportedDTypes)
}
