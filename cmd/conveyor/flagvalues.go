package main

import (
	"fmt"
	"math"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/conveyorci/conveyor/internal/pipeline"
)

// byteSize is a flag value of a size in bytes, written 500MB, 10GiB or 1048576.
type byteSize int64

func (b *byteSize) Set(s string) error {
	n, err := humanize.ParseBytes(s)
	if err != nil || n > math.MaxInt64 {
		return fmt.Errorf("give a size such as 500MB or 10GiB")
	}
	*b = byteSize(n)
	return nil
}

func (b *byteSize) String() string { return humanize.IBytes(uint64(*b)) }
func (b *byteSize) Type() string   { return "size" }

// dayDuration is a flag value of a duration written as Go writes them (90m, 36h) or in days
// (7d), as pipeline files have them.
type dayDuration time.Duration

func (d *dayDuration) Set(s string) error {
	v, err := pipeline.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("want a positive duration, or 0")
	}
	*d = dayDuration(v)
	return nil
}

func (d *dayDuration) String() string { return pipeline.Duration(*d).String() }
func (d *dayDuration) Type() string   { return "duration" }
