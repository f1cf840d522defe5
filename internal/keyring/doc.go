// Package keyring holds the server's master keys and does envelope encryption with them, as a
// KMS does: data is encrypted with a fresh data key, and only the small data key is encrypted
// ("wrapped") by a master key. Rotating the master key rewraps data keys; no data is rewritten.
//
// # Master keys
//
// A master key is 32 random bytes with a short ID. They are read from a key file (Load; the
// server makes one on first start with Create) or from the CONVEYOR_MASTER_KEY variable
// (FromEnv). Both hold one key per entry, "ID:base64key", the last one current; the key file
// has one entry per line (blank lines and lines starting with # are skipped), the variable
// separates entries by newlines or commas. The key file must be mode 0600: Load refuses a file
// open to group or others. Rotate appends a new current key; the old ones stay, they are
// needed to unwrap what they wrapped until everything is rewrapped.
//
// # Formats
//
// All integers are big-endian; every format starts with a version byte (1) so it can change.
//
//	wrapped data key  1 | len(ID) (1 byte) | ID | nonce (12) | AES-256-GCM(master, data key, aad "conveyor data key v1") (48)
//	sealed value      1 | len(wrapped) (2 bytes) | wrapped data key | nonce (12) | AES-256-GCM(data key, value, caller's aad)
//
// A stream (EncryptWriter, DecryptReader) is for data too large to hold in memory:
//
//	header  "CVST" | 1 | salt (16) | nonce prefix (7)
//	chunks  AES-256-GCM(stream key, 64 KiB of plaintext, nonce = prefix | counter (4) | last (1))
//
// The stream key is HKDF-SHA256(data key, salt, "conveyor stream v1"), so a data key may be
// reused for several streams. Every chunk holds 64 KiB but the last, which holds 0 to 64 KiB
// (0 only when the stream is empty) and has the last flag set: this is the STREAM
// construction of age and Tink's streaming AEAD. A reader detects a changed byte anywhere,
// chunks reordered, dropped, duplicated or appended, and a stream cut short at any point,
// chunk boundaries included; it releases a chunk's plaintext only once the chunk is
// authenticated. Such errors wrap ErrIntegrity.
package keyring
