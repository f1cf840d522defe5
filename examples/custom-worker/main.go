// Command custom-worker is an example custom worker, written with pkg/client's JobWorker: it
// takes the jobs of the custom action type Deploy/Echo. Each action "deploys" its message in
// two rounds, to show a continuation: the first job starts the work and returns a
// continuation token, the next job of the same action comes with the token and finishes,
// publishing the message as the output variable MESSAGE. An empty message is a typed
// failure (ConfigurationError).
//
//	custom-worker --server http://127.0.0.1:8080 --token "$WORKER_TOKEN"
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/conveyorci/conveyor/pkg/client"
)

// echoType is the custom action type this worker serves.
var echoType = client.ActionType{Category: "Deploy", Provider: "Echo"}

func main() {
	server := flag.String("server", cmp.Or(os.Getenv("CONVEYOR_SERVER"), "http://127.0.0.1:8080"), "URL of the conveyor server (default $CONVEYOR_SERVER)")
	token := flag.String("token", os.Getenv("CONVEYOR_WORKER_TOKEN"), "a worker token: conveyor token create --user NAME --worker (default $CONVEYOR_WORKER_TOKEN)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *server, *token, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "custom-worker:", err)
		os.Exit(1)
	}
}

// run takes Deploy/Echo jobs from the server until ctx is done, logging to log.
func run(ctx context.Context, server, token string, log io.Writer) error {
	if token == "" {
		return fmt.Errorf("no worker token: pass --token or set CONVEYOR_WORKER_TOKEN (conveyor token create --user NAME --worker makes one)")
	}
	logger := slog.New(slog.NewTextHandler(log, nil))
	w, err := client.NewJobWorker(server, token, echoType, client.WithWorkerLogger(logger))
	if err != nil {
		return err
	}
	logger.Info("taking jobs", "type", echoType.Category+"/"+echoType.Provider, "server", server)
	return w.Run(ctx, func(ctx context.Context, j *client.Job) (*client.Success, error) {
		logger.Info("job", "id", j.ID, "continuation", j.ContinuationToken)
		return echo(j)
	})
}

// echo does one round of a Deploy/Echo action.
func echo(j *client.Job) (*client.Success, error) {
	msg, _ := j.Configuration["message"].(string)
	if msg == "" {
		return nil, &client.Failure{Type: client.ConfigurationError, Message: "message is empty: set configuration.message"}
	}
	if j.ContinuationToken == "" {
		// Round 1: start the work, and say where to pick it up.
		id := "echo-" + j.ExecutionID
		return &client.Success{Summary: "echo started", ExternalID: id, ContinuationToken: id}, nil
	}
	// Round 2: the work named by the token is done.
	return &client.Success{Summary: "echoed: " + msg, ExternalID: j.ContinuationToken,
		Variables: map[string]string{"MESSAGE": msg}}, nil
}
