package main

import (
	"fmt"
	"io"

	"github.com/ipcguard/ipcguard/internal/metrics"
)

// metricsSink is where --metrics goes, its directory opened and checked
// before the command starts so that a bad path is a usage error. A nil
// sink writes nothing.
type metricsSink struct{ f *metrics.File }

func openMetrics(path string) (*metricsSink, error) {
	if path == "" {
		return nil, nil
	}
	f, err := metrics.Open(path)
	if err != nil {
		return nil, usagef("--metrics %v", err)
	}
	return &metricsSink{f}, nil
}

// write adds r (guard.RunMetrics, SweepMetrics, OrphanMetrics) to the
// file; a failure to write is reported on stderr and changes no exit
// status.
func (m *metricsSink) write(r metrics.Run, stderr io.Writer) {
	if m == nil {
		return
	}
	if err := m.f.Write(r); err != nil {
		fmt.Fprintf(stderr, "ipcguard: writing the metrics: %v\n", err)
	}
	m.f.Close()
}
