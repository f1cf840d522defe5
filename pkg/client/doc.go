// Package client is the Go client of Conveyor's REST API (docs/api.md): one typed method per
// endpoint, response types of its own that mirror the JSON the server returns, and errors a
// caller can classify.
//
// An API error is a *Error carrying the HTTP status and the API's code (CodeNotFound,
// CodeConflict, ...); a server that cannot be reached is an *UnreachableError. Every method
// takes a context: its deadline bounds the call.
//
//	c, err := client.New("http://127.0.0.1:8080", os.Getenv("CONVEYOR_TOKEN"))
//	if err != nil {
//		return err
//	}
//	exec, err := c.StartExecution(ctx, "webapp", client.StartInput{
//		Variables: map[string]string{"DEPLOY_ENV": "prod"},
//	})
//	var apiErr *client.Error
//	if errors.As(err, &apiErr) && apiErr.Code == client.CodeNotFound {
//		// no pipeline webapp: apply it first with ApplyPipeline
//	}
package client
