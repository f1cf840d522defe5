// Package invoke is the Invoke/Webhook provider: it calls an HTTP endpoint with a JSON
// payload describing the job, signed as Conveyor's notifications are (X-Conveyor-Signature:
// sha256=HEX, signature.Set), and takes the endpoint's 2xx answer as the action's
// success, with the summary, link and output variables a JSON answer gives.
//
// Configuration (pipeline.ProviderWebhook):
//
//	url:     http:// or https:// endpoint, required
//	method:  POST (default) or PUT
//	secret:  { secret: NAME }: the job receives the secret's value, which signs the body
//	headers: more request headers (NAME: value)
//	payload: more fields for the payload's "data" object (NAME: value)
//
// The call is retried, with the same body and idempotency key (the job id), on a 5xx or 429
// answer or a connection error, a few times with exponential backoff (a Retry-After answer
// sets the wait), always within the job's context. Redirects are followed only to the same
// host and scheme; answers are read up to 1 MiB. The provider never reads the runner's
// environment: no proxy from HTTP_PROXY and the like.
package invoke
