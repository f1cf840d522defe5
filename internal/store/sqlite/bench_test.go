package sqlite

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/conveyorci/conveyor/internal/engine"
	"github.com/conveyorci/conveyor/internal/store"
)

// BenchmarkUpdate measures Updates that each write one small execution (PutExecution), the
// engine's most frequent write: serially (one caller, a commit each) and from many goroutines
// (group commit). It reports updates/s.
func BenchmarkUpdate(b *testing.B) {
	for _, sync := range []string{"NORMAL", "FULL"} {
		b.Run("serial/"+sync, func(b *testing.B) {
			s := openTemp(b, Options{Synchronous: sync})
			ctx := b.Context()
			e := seedBench(b, s, 1)[0]
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				e.Message = fmt.Sprint(i)
				if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutExecution(ctx, e) }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		})
		b.Run("parallel/"+sync, func(b *testing.B) {
			s := openTemp(b, Options{Synchronous: sync})
			ctx := b.Context()
			es := seedBench(b, s, 256)
			var next atomic.Int64
			b.SetParallelism(8) // 8 × GOMAXPROCS callers
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				e := *es[int(next.Add(1)-1)%len(es)]
				for i := 0; pb.Next(); i++ {
					e.Message = fmt.Sprint(i)
					if err := s.Update(ctx, func(tx store.Tx) error { return tx.PutExecution(ctx, &e) }); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
		})
	}
}

// BenchmarkView measures a read of one execution, with readers in parallel.
func BenchmarkView(b *testing.B) {
	s := openTemp(b, Options{})
	ctx := b.Context()
	seedBench(b, s, 1)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := s.View(ctx, func(r store.Reader) error {
				_, err := r.Execution(ctx, "bench-0")
				return err
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "views/s")
}

func seedBench(b *testing.B, s *Store, n int) []*engine.Execution {
	ctx := b.Context()
	es := make([]*engine.Execution, n)
	err := s.Update(ctx, func(tx store.Tx) error {
		for i := range es {
			es[i] = execution(fmt.Sprintf("bench-%d", i), "bench", i)
			if err := tx.CreateExecution(ctx, es[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return es
}
