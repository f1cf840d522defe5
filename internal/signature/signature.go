// Package signature signs what Conveyor sends over HTTP (notifications, Invoke/Webhook
// calls) the way generic senders sign what they send it (POST /hooks/generic/NAME): the
// HMAC-SHA256 of the body, keyed with a shared secret, in hex, as
// "X-Conveyor-Signature: sha256=HEX" (GitHub's scheme under Conveyor's name). A receiver
// verifies every one of them alike. Package webhook verifies incoming deliveries with Sign.
package signature

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
)

const (
	// Header carries "sha256=" and the hex HMAC-SHA256 of the body.
	Header = "X-Conveyor-Signature"
	// DeliveryHeader carries the sender's id of the delivery: the same on every retry of
	// one delivery, so a receiver can deduplicate.
	DeliveryHeader = "X-Conveyor-Delivery"
)

// Sign returns the HMAC-SHA256 of body with secret.
func Sign(body []byte, secret string) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return m.Sum(nil)
}

// Set signs body with secret in h: Header: sha256=HEX.
func Set(h http.Header, body []byte, secret string) {
	h.Set(Header, "sha256="+hex.EncodeToString(Sign(body, secret)))
}
