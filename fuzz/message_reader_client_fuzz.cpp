// libFuzzer harness for message_reader in the client role (reading unmasked
// server frames). The harness, its input layout and its invariants are those
// of message_reader_server_fuzz.cpp; only the reader's role differs, so the
// masking rule flips and every other path is exercised from the other side.
#define SWITCHBOARD_FUZZ_ROLE client
#include "message_reader_server_fuzz.cpp"
