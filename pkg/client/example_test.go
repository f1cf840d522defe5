package client_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/conveyorci/conveyor/pkg/client"
)

// Start an execution and wait for it to end.
func Example() {
	c, err := client.New("http://127.0.0.1:8080", os.Getenv("CONVEYOR_TOKEN"))
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	exec, err := c.StartExecution(ctx, "webapp", client.StartInput{Variables: map[string]string{"DEPLOY_ENV": "prod"}})
	var apiErr *client.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Code == client.CodeNotFound:
		fmt.Println("no pipeline webapp: apply it first")
		return
	case err != nil:
		fmt.Println(err)
		return
	}
	for !exec.Status.Terminal() {
		time.Sleep(time.Second)
		if exec, err = c.Execution(ctx, exec.ID); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Println(exec.ID, exec.Status)
}
