// switchboard/protocol/permessage_deflate.hpp — the permessage-deflate
// extension (RFC 7692): negotiation (deflate_negotiation.hpp) and the payload
// codec (deflate_codec.hpp). Include this one header to use both.
//
// How the pieces fit, server side:
//   1. Handshake: negotiate_deflate(request_head, policy) → deflate_agreement;
//      answer with accept_options{.extensions = agreement->response.view()}.
//      Set reader_options::allow_rsv1 on the connection.
//   2. Receiving: a message event with `compressed` set is inflated with
//      inflater::inflate_text() (text) or inflate() (binary). Use the loop's
//      shared inflater (window 15, no_context_takeover) when
//      inflate_no_context_takeover(params, role::server), else a dedicated one
//      with inflate_window_bits(params, role::server).
//   3. Sending: if should_compress(size), compress with the loop's shared
//      deflater for deflate_window_bits(params, role::server) when
//      deflate_no_context_takeover(params, role::server), else with the
//      connection's dedicated deflater; write the frame with rsv1 = true.
//      A publish compresses once with a shared deflater and writes the same
//      bytes to every subscriber whose agreed server window is at least the
//      deflater's (dedicated subscribers reset() their deflater afterwards).
//   deflate_server_policy::shared() answers no context takeover both ways, so
//   every connection can use the shared pair and an idle connection holds no
//   zlib state; ::dedicated() keeps context takeover for a better ratio at
//   about 300 KiB per connection with default windows (see deflate_codec.hpp
//   for memory per window and memLevel).
//
// Client side: write_deflate_offer(options) → client_request_options::
// extensions; after validate_response(), validate_deflate_response(head,
// options, agreed); then a dedicated deflater and inflater built from
// `agreed` with role::client.
//
// Thread-safety: see the two headers (negotiation is stateless; a codec
// object is used by one thread at a time).
#pragma once

#include "switchboard/protocol/deflate_codec.hpp"
#include "switchboard/protocol/deflate_negotiation.hpp"
