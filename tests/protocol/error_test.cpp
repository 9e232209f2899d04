#include <switchboard/protocol/error.hpp>

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace switchboard::protocol {
namespace {

constexpr auto k_last = error::deflate_failed;

TEST(error, every_error_has_a_distinct_description) {
  std::set<std::string_view> seen;
  for (int i = 0; i <= static_cast<int>(k_last); ++i) {
    auto text = describe(static_cast<error>(i));
    EXPECT_FALSE(text.empty()) << i;
    EXPECT_TRUE(seen.insert(text).second) << "duplicate text: " << text;
  }
}

struct close_row {
  error e;
  close_code expected;
};

// RFC 6455 7.4.1: 1002 for protocol violations, 1007 for bad payload data,
// 1009 for messages too big to process.
TEST(error, frame_errors_map_to_their_close_codes) {
  const close_row rows[] = {
      {error::reserved_opcode, close_code::protocol_error},
      {error::reserved_bits, close_code::protocol_error},
      {error::control_frame_too_large, close_code::protocol_error},
      {error::fragmented_control_frame, close_code::protocol_error},
      {error::length_msb_set, close_code::protocol_error},
      {error::unmasked_frame, close_code::protocol_error},
      {error::masked_frame, close_code::protocol_error},
      {error::unexpected_continuation, close_code::protocol_error},
      {error::expected_continuation, close_code::protocol_error},
      {error::message_too_big, close_code::message_too_big},
      {error::invalid_utf8, close_code::invalid_payload},
      {error::close_payload_one_byte, close_code::protocol_error},
      {error::bad_close_code, close_code::protocol_error},
      {error::close_reason_invalid_utf8, close_code::invalid_payload},
      {error::rsv1_on_continuation, close_code::protocol_error},
      {error::inflate_failed, close_code::invalid_payload},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(close_code_for(r.e), r.expected) << describe(r.e);
    EXPECT_TRUE(is_valid_on_wire(to_underlying(close_code_for(r.e)))) << describe(r.e);
    EXPECT_FALSE(is_handshake_error(r.e)) << describe(r.e);
  }
}

struct status_row {
  error e;
  int status;
};

TEST(error, handshake_errors_map_to_http_statuses) {
  const status_row rows[] = {
      {error::head_too_large, 431},         {error::too_many_headers, 431},
      {error::header_line_too_long, 431},   {error::request_line_too_long, 414},
      {error::bad_request_line, 400},       {error::obs_fold, 400},
      {error::bare_lf, 400},                {error::method_not_get, 405},
      {error::http_version_too_old, 505},   {error::missing_host, 400},
      {error::missing_upgrade, 426},        {error::missing_connection_upgrade, 400},
      {error::missing_version, 426},        {error::unsupported_version, 426},
      {error::missing_key, 400},            {error::bad_key, 400},
      {error::bad_extension_header, 400},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(http_status_for(r.e), r.status) << describe(r.e);
    EXPECT_TRUE(is_handshake_error(r.e)) << describe(r.e);
  }
  EXPECT_FALSE(is_handshake_error(error::none));
}

TEST(error, converts_to_std_error_code) {
  std::error_code ec = error::invalid_utf8;
  EXPECT_EQ(ec.category().name(), std::string("switchboard.protocol"));
  EXPECT_EQ(ec.message(), std::string(describe(error::invalid_utf8)));
  EXPECT_TRUE(ec);
  EXPECT_EQ(ec, make_error_code(error::invalid_utf8));
  EXPECT_FALSE(std::error_code(error::none));
}

}  // namespace
}  // namespace switchboard::protocol
