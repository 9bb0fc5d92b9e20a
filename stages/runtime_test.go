package stages

import (
	"strings"
	"testing"
)

// TestORTRejectsForeignResidents checks that a value another Runtime made
// is refused with an error, not a panic, when handed to ONNX Runtime.
func TestORTRejectsForeignResidents(t *testing.T) {
	t.Parallel()
	if _, err := ORT(nil).Fetch(&fakeResident{}); err == nil || !strings.Contains(err.Error(), "another runtime") {
		t.Errorf("Fetch of a fake resident: %v", err)
	}
}
