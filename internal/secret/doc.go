// Package secret masks secret values in text before it leaves Conveyor: job logs, API answers
// and error messages. A Masker is built once from the values a run may see and is read-only
// afterwards; String and Bytes mask a whole text, Writer masks a stream written in chunks.
//
// # What is masked
//
// Each secret is looked for under every form in which a program is likely to print it, and
// each occurrence of any form is replaced by Mask ("***"):
//
//   - the raw value;
//   - its base64 encodings, standard and URL alphabets, padded and unpadded: what
//     `printf %s "$TOKEN" | base64` shows;
//   - the part of its base64 encoding that the secret alone determines when it sits inside a
//     longer encoded text, at each of the three alignments (below): a Basic auth header, or
//     `base64 <<<"$TOKEN"`, which encodes a newline after it;
//   - url.QueryEscape and url.PathEscape of it: a secret in a URL or a form body;
//   - its JSON string form without the quotes, with HTML escaping (json.Marshal: <, >, & as
//     \u003c...) and without it (an Encoder with SetEscapeHTML(false)).
//
// Identical forms are kept once. Forms shorter than MinLength bytes are not masked: they would
// destroy ordinary text. (With MinLength values every form is long enough; the rule is there
// so that a lower minimum could never mask "a" everywhere.)
//
// # Base64 inside a longer text
//
// Base64 maps each 3 bytes to 4 characters of 6 bits. When the secret (n bytes) starts at
// offset a mod 3 of the encoded data, it holds bits [8a, 8a+8n) of its group run, and
// character k shows bits [6k, 6k+6). The characters fully inside the secret's bits, from
// ceil(8a/6) to floor((8a+8n)/6), are the same whatever the neighbouring bytes are; those are
// masked. The one character at each end that mixes neighbouring bits with at most 4 bits of
// the secret stays visible: it depends on the neighbours, so no fixed text can catch it.
// Base64 wrapped over several lines (MIME, PEM) is not caught, nor is lower-case
// percent-encoding, hex, or any other encoding not listed above.
//
// # Overlaps and streams
//
// Occurrences are found for every form at every position, and the union of the bytes they
// cover is masked: a run of covered bytes, even one made of several overlapping or adjacent
// occurrences, becomes one Mask. (Replacing longest forms first would miss a secret that
// overlaps another one already replaced.)
//
// A Writer holds back the last (longest form - 1) bytes it was given, so that a secret split
// across Write calls is caught as if the text had been written at once: its output is
// String of everything written. Flush and Close write what is held back; a secret split
// across a Flush is not caught.
//
// Secrets should not contain '*': next to a Mask such a secret can seem to reappear, made of
// the text around it and the Mask's own stars.
package secret
