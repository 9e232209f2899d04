#include <switchboard/protocol/close_code.hpp>

#include <gtest/gtest.h>

namespace switchboard::protocol {
namespace {

// RFC 6455 7.4.1/7.4.2 and IANA's registry, enumerated over the whole
// 16-bit space so no range boundary is guessed.
TEST(close_code, valid_on_wire_matches_the_registry) {
  for (std::uint32_t c = 0; c <= 0xFFFF; ++c) {
    const bool expected = (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
                          (c >= 3000 && c <= 4999);
    EXPECT_EQ(is_valid_on_wire(static_cast<std::uint16_t>(c)), expected) << c;
  }
}

TEST(close_code, local_only_codes_are_never_sent) {
  for (auto c : {close_code::no_status, close_code::abnormal, close_code::tls_handshake})
    EXPECT_FALSE(is_valid_on_wire(to_underlying(c))) << to_underlying(c);
  EXPECT_FALSE(is_valid_on_wire(1004));  // reserved
}

TEST(close_code, named_values) {
  EXPECT_EQ(to_underlying(close_code::normal), 1000);
  EXPECT_EQ(to_underlying(close_code::invalid_payload), 1007);
  EXPECT_EQ(to_underlying(close_code::message_too_big), 1009);
  EXPECT_EQ(to_underlying(close_code::service_restart), 1012);
}

}  // namespace
}  // namespace switchboard::protocol
