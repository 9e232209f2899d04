#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <switchboard/protocol/deflate_negotiation.hpp>
#include <vector>

namespace switchboard::protocol {
namespace {

// The server's answer to `offer` under `policy`, or "-" when it declines.
std::string answer(std::string_view offer, const deflate_server_policy& policy = {}) {
  std::vector<extension> offers;
  EXPECT_EQ(parse_extensions(offer, offers), error::none) << offer;
  const auto a = negotiate_deflate(offers, policy);
  return a ? std::string(a->response.view()) : std::string("-");
}

struct server_row {
  std::string_view offer;
  std::string_view expected;  // "-": declined
};

void check_rows(std::span<const server_row> rows, const deflate_server_policy& policy) {
  for (const auto& r : rows) EXPECT_EQ(answer(r.offer, policy), r.expected) << r.offer;
}

TEST(permessage_deflate, server_answers_with_default_policy) {
  const server_row rows[] = {
      {"permessage-deflate", "permessage-deflate"},
      {"permessage-deflate; client_max_window_bits", "permessage-deflate"},
      {"permessage-deflate; server_no_context_takeover",
       "permessage-deflate; server_no_context_takeover"},
      {"permessage-deflate; client_no_context_takeover",
       "permessage-deflate; client_no_context_takeover"},
      {"permessage-deflate; server_no_context_takeover; client_no_context_takeover",
       "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
      // §7.1.2.1: an offered server window is always confirmed, <= the offer.
      {"permessage-deflate; server_max_window_bits=10",
       "permessage-deflate; server_max_window_bits=10"},
      {"permessage-deflate; server_max_window_bits=15",
       "permessage-deflate; server_max_window_bits=15"},
      {"permessage-deflate; server_max_window_bits=9",
       "permessage-deflate; server_max_window_bits=9"},
      {"permessage-deflate; server_max_window_bits=\"12\"",
       "permessage-deflate; server_max_window_bits=12"},
      // §7.1.2.2: a value the client names is echoed when it narrows.
      {"permessage-deflate; client_max_window_bits=10",
       "permessage-deflate; client_max_window_bits=10"},
      {"permessage-deflate; client_max_window_bits=15", "permessage-deflate"},
      // The client's own 8 is its business (we inflate with 9 or more).
      {"permessage-deflate; client_max_window_bits=8",
       "permessage-deflate; client_max_window_bits=8"},
      {"permessage-deflate;client_max_window_bits;server_max_window_bits=11",
       "permessage-deflate; server_max_window_bits=11"},
      // Other extensions are skipped, not failed.
      {"x-webkit-deflate-frame", "-"},
      {"x-foo, permessage-deflate", "permessage-deflate"},
      {"Permessage-Deflate", "-"},  // names are case-sensitive
  };
  check_rows(rows, {});
}

TEST(permessage_deflate, server_declines_bad_offers) {
  const server_row rows[] = {
      {"permessage-deflate; foo", "-"},  // unknown parameter
      {"permessage-deflate; foo=1", "-"},
      {"permessage-deflate; Server_No_Context_Takeover", "-"},    // case-sensitive
      {"permessage-deflate; server_no_context_takeover=1", "-"},  // flag with a value
      {"permessage-deflate; client_no_context_takeover=\"x\"", "-"},
      {"permessage-deflate; server_no_context_takeover; server_no_context_takeover", "-"},
      {"permessage-deflate; client_no_context_takeover; client_no_context_takeover", "-"},
      {"permessage-deflate; server_max_window_bits", "-"},  // needs a value
      {"permessage-deflate; server_max_window_bits=7", "-"},
      {"permessage-deflate; server_max_window_bits=16", "-"},
      {"permessage-deflate; server_max_window_bits=0", "-"},
      {"permessage-deflate; server_max_window_bits=010", "-"},  // leading zero
      {"permessage-deflate; server_max_window_bits=09", "-"},
      {"permessage-deflate; server_max_window_bits=1a", "-"},
      {"permessage-deflate; server_max_window_bits=+9", "-"},
      {"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10", "-"},
      {"permessage-deflate; client_max_window_bits=16", "-"},
      {"permessage-deflate; client_max_window_bits=7", "-"},
      {"permessage-deflate; client_max_window_bits=abc", "-"},
      {"permessage-deflate; client_max_window_bits; client_max_window_bits", "-"},
      {"permessage-deflate; client_max_window_bits=9; client_max_window_bits=9", "-"},
      // §7.1.2.1 would force an answer <= 8, which zlib cannot deflate with.
      {"permessage-deflate; server_max_window_bits=8", "-"},
  };
  check_rows(rows, {});
}

TEST(permessage_deflate, server_takes_the_first_acceptable_offer) {
  const server_row rows[] = {
      {"permessage-deflate; server_max_window_bits=8, permessage-deflate; client_max_window_bits",
       "permessage-deflate"},
      {"permessage-deflate; bogus, permessage-deflate; server_no_context_takeover",
       "permessage-deflate; server_no_context_takeover"},
      {"permessage-deflate; server_max_window_bits=10, permessage-deflate",
       "permessage-deflate; server_max_window_bits=10"},
      {"permessage-deflate; a, permessage-deflate; b, permessage-deflate; c", "-"},
      {"x-other; server_max_window_bits=8, permessage-deflate; server_max_window_bits=12",
       "permessage-deflate; server_max_window_bits=12"},
  };
  check_rows(rows, {});
}

TEST(permessage_deflate, server_policy_shared_forces_no_context_takeover) {
  const auto policy = deflate_server_policy::shared();
  const server_row rows[] = {
      // §7.1.1.1 and §7.1.1.2 let the server add both flags unasked.
      {"permessage-deflate",
       "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
      {"permessage-deflate; client_max_window_bits",
       "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
      {"permessage-deflate; server_max_window_bits=10",
       "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
       "server_max_window_bits=10"},
  };
  check_rows(rows, policy);
  std::vector<extension> offers;
  ASSERT_EQ(parse_extensions("permessage-deflate", offers), error::none);
  const auto a = negotiate_deflate(offers, policy);
  ASSERT_TRUE(a);
  EXPECT_TRUE(inflate_no_context_takeover(a->params, role::server));
  EXPECT_TRUE(deflate_no_context_takeover(a->params, role::server));
}

TEST(permessage_deflate, server_policy_windows) {
  // Our deflater limited to 12: named even when the client did not ask.
  const server_row ours12[] = {
      {"permessage-deflate", "permessage-deflate; server_max_window_bits=12"},
      {"permessage-deflate; server_max_window_bits=10",
       "permessage-deflate; server_max_window_bits=10"},
      {"permessage-deflate; server_max_window_bits=14",
       "permessage-deflate; server_max_window_bits=12"},
  };
  check_rows(ours12, {.server_max_window_bits = 12});
  // A policy of 8 for our own deflater is answered as 9, which §7.1.2.1
  // allows when the offer named no server window.
  const server_row ours8[] = {
      {"permessage-deflate", "permessage-deflate; server_max_window_bits=9"},
      {"permessage-deflate; server_max_window_bits=12",
       "permessage-deflate; server_max_window_bits=9"},
      {"permessage-deflate; server_max_window_bits=8", "-"},
  };
  check_rows(ours8, {.server_max_window_bits = 8});
  // The client's window: only when offered (§7.1.2.2), never above its value.
  const server_row client10[] = {
      {"permessage-deflate", "permessage-deflate"},
      {"permessage-deflate; client_max_window_bits",
       "permessage-deflate; client_max_window_bits=10"},
      {"permessage-deflate; client_max_window_bits=12",
       "permessage-deflate; client_max_window_bits=10"},
      {"permessage-deflate; client_max_window_bits=9",
       "permessage-deflate; client_max_window_bits=9"},
  };
  check_rows(client10, {.client_max_window_bits = 10});
  const server_row client8[] = {
      {"permessage-deflate; client_max_window_bits",
       "permessage-deflate; client_max_window_bits=9"},
  };
  check_rows(client8, {.client_max_window_bits = 8});
  check_rows(std::initializer_list<server_row>{{"permessage-deflate", "-"}}, {.enabled = false});
}

TEST(permessage_deflate, server_agreed_params_drive_codec_settings) {
  std::vector<extension> offers;
  ASSERT_EQ(parse_extensions("permessage-deflate; server_max_window_bits=10; "
                             "client_max_window_bits=11; client_no_context_takeover",
                             offers),
            error::none);
  const auto a = negotiate_deflate(offers, {});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->params, (deflate_params{.client_no_context_takeover = true,
                                       .server_max_window_bits = 10,
                                       .client_max_window_bits = 11}));
  EXPECT_EQ(deflate_window_bits(a->params, role::server), 10);
  EXPECT_FALSE(deflate_no_context_takeover(a->params, role::server));
  EXPECT_EQ(inflate_window_bits(a->params, role::server), 11);
  EXPECT_TRUE(inflate_no_context_takeover(a->params, role::server));
  EXPECT_EQ(deflate_window_bits(a->params, role::client), 11);
  EXPECT_EQ(inflate_window_bits(a->params, role::client), 10);
  // An 8-bit peer window is inflated with 9 bits.
  EXPECT_EQ(inflate_window_bits({.client_max_window_bits = 8}, role::server), 9);
}

TEST(permessage_deflate, server_negotiates_from_a_request_head) {
  const std::string raw =
      "GET / HTTP/1.1\r\nHost: a\r\nSec-WebSocket-Extensions: x-foo\r\n"
      "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=11\r\n\r\n";
  request_parser parser;
  ASSERT_EQ(parser.parse(raw).status, parse_status::complete);
  const auto a = negotiate_deflate(parser.head(), {});
  ASSERT_TRUE(a);
  EXPECT_EQ(a->response.view(), "permessage-deflate; server_max_window_bits=11");
}

TEST(permessage_deflate, longest_answer_fits) {
  const auto a = [] {
    std::vector<extension> offers;
    EXPECT_EQ(parse_extensions("permessage-deflate; server_no_context_takeover; "
                               "client_no_context_takeover; server_max_window_bits=10; "
                               "client_max_window_bits=10",
                               offers),
              error::none);
    return negotiate_deflate(offers, {});
  }();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->response.view(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10; client_max_window_bits=10");
}

// --- Client -------------------------------------------------------------------

TEST(permessage_deflate, client_offers) {
  EXPECT_EQ(write_deflate_offer({}).view(), "permessage-deflate; client_max_window_bits");
  EXPECT_EQ(write_deflate_offer({.offer_client_max_window_bits = false}).view(),
            "permessage-deflate");
  EXPECT_EQ(write_deflate_offer({.server_no_context_takeover = true,
                                 .client_no_context_takeover = true,
                                 .server_max_window_bits = 10,
                                 .client_max_window_bits = 12})
                .view(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=10; client_max_window_bits=12");
  // 8 for our own window is offered as 9; 8 for the server's is fine to ask.
  EXPECT_EQ(write_deflate_offer({.server_max_window_bits = 8, .client_max_window_bits = 8}).view(),
            "permessage-deflate; server_max_window_bits=8; client_max_window_bits=9");
  // Every offer we write parses and is accepted by our own server.
  for (int s = 8; s <= 15; ++s) {
    const auto offer =
        write_deflate_offer({.server_max_window_bits = static_cast<std::uint8_t>(s)});
    std::vector<extension> parsed;
    ASSERT_EQ(parse_extensions(offer.view(), parsed), error::none);
    EXPECT_EQ(negotiate_deflate(parsed, {}).has_value(), s != 8) << offer.view();
  }
}

struct client_row {
  std::string_view answer;
  error expected;
};

error validate(std::string_view answer, const deflate_client_options& offered,
               std::optional<deflate_params>& agreed) {
  std::vector<extension> parsed;
  EXPECT_EQ(parse_extensions(answer, parsed), error::none) << answer;
  return validate_deflate_response(parsed, offered, agreed);
}

TEST(permessage_deflate, client_validates_answers) {
  const deflate_client_options offered{};  // "permessage-deflate; client_max_window_bits"
  const client_row rows[] = {
      {"permessage-deflate", error::none},
      {"permessage-deflate; server_no_context_takeover", error::none},  // §7.1.1.1 may add
      {"permessage-deflate; client_no_context_takeover", error::none},  // §7.1.1.2 may add
      {"permessage-deflate; server_max_window_bits=9", error::none},    // §7.1.2.1 may add
      {"permessage-deflate; server_max_window_bits=8", error::none},    // we inflate with 9
      {"permessage-deflate; client_max_window_bits=9", error::none},
      {"permessage-deflate; client_max_window_bits=15", error::none},
      {"permessage-deflate; client_max_window_bits=8", error::response_deflate_window_8},
      {"permessage-deflate; client_max_window_bits", error::response_deflate_bad_param},
      {"permessage-deflate; client_max_window_bits=16", error::response_deflate_bad_param},
      {"permessage-deflate; server_max_window_bits", error::response_deflate_bad_param},
      {"permessage-deflate; server_max_window_bits=7", error::response_deflate_bad_param},
      {"permessage-deflate; server_max_window_bits=010", error::response_deflate_bad_param},
      {"permessage-deflate; server_no_context_takeover=1", error::response_deflate_bad_param},
      {"permessage-deflate; client_no_context_takeover; client_no_context_takeover",
       error::response_deflate_bad_param},
      {"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
       error::response_deflate_bad_param},
      {"permessage-deflate; foo", error::response_deflate_bad_param},
      {"permessage-deflate, permessage-deflate", error::response_deflate_repeated},
      {"x-other", error::none},  // not ours to judge: validate_response checks names
  };
  for (const auto& r : rows) {
    std::optional<deflate_params> agreed;
    EXPECT_EQ(validate(r.answer, offered, agreed), r.expected) << r.answer;
    EXPECT_EQ(agreed.has_value(), r.expected == error::none && r.answer != "x-other") << r.answer;
  }
}

TEST(permessage_deflate, client_validates_answers_against_its_offer) {
  const deflate_client_options offered{.server_no_context_takeover = true,
                                       .server_max_window_bits = 10,
                                       .offer_client_max_window_bits = false};
  const client_row rows[] = {
      {"permessage-deflate; server_no_context_takeover; server_max_window_bits=10", error::none},
      {"permessage-deflate; server_no_context_takeover; server_max_window_bits=9", error::none},
      {"permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
       error::response_deflate_bad_param},
      // §7.1.2.2: not offered, so the server must not limit our window.
      {"permessage-deflate; server_no_context_takeover; server_max_window_bits=10; "
       "client_max_window_bits=10",
       error::response_deflate_bad_param},
      {"permessage-deflate; server_max_window_bits=10", error::response_deflate_missing_param},
      {"permessage-deflate; server_no_context_takeover", error::response_deflate_missing_param},
      {"permessage-deflate", error::response_deflate_missing_param},
  };
  for (const auto& r : rows) {
    std::optional<deflate_params> agreed;
    EXPECT_EQ(validate(r.answer, offered, agreed), r.expected) << r.answer;
  }
  // An offered client window caps the server's answer.
  std::optional<deflate_params> agreed;
  EXPECT_EQ(validate("permessage-deflate; client_max_window_bits=12",
                     {.client_max_window_bits = 11}, agreed),
            error::response_deflate_bad_param);
  EXPECT_EQ(validate("permessage-deflate; client_max_window_bits=10",
                     {.client_max_window_bits = 11}, agreed),
            error::none);
  EXPECT_EQ(agreed->client_max_window_bits, 10);
  // Not echoed: our offered limit still applies to us.
  EXPECT_EQ(validate("permessage-deflate", {.client_max_window_bits = 11}, agreed), error::none);
  EXPECT_EQ(agreed->client_max_window_bits, 11);
}

TEST(permessage_deflate, client_agreed_params) {
  std::optional<deflate_params> agreed;
  ASSERT_EQ(validate("permessage-deflate; client_no_context_takeover; server_max_window_bits=12; "
                     "client_max_window_bits=13",
                     {}, agreed),
            error::none);
  ASSERT_TRUE(agreed);
  EXPECT_EQ(*agreed, (deflate_params{.client_no_context_takeover = true,
                                     .server_max_window_bits = 12,
                                     .client_max_window_bits = 13}));
  EXPECT_TRUE(deflate_no_context_takeover(*agreed, role::client));
  EXPECT_EQ(deflate_window_bits(*agreed, role::client), 13);
  EXPECT_EQ(inflate_window_bits(*agreed, role::client), 12);
  // A promise made in the offer holds even when the server does not echo it.
  ASSERT_EQ(validate("permessage-deflate", {.client_no_context_takeover = true}, agreed),
            error::none);
  EXPECT_TRUE(agreed->client_no_context_takeover);
}

TEST(permessage_deflate, client_validates_a_response_head) {
  const std::string raw =
      "HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"
      "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
  response_parser parser;
  ASSERT_EQ(parser.parse(raw).status, parse_status::complete);
  std::optional<deflate_params> agreed;
  EXPECT_EQ(validate_deflate_response(parser.head(), {}, agreed), error::response_deflate_repeated);
  EXPECT_FALSE(agreed);
}

// Every answer our server gives to every offer our client can make validates.
TEST(permessage_deflate, server_answers_always_validate_for_our_client) {
  const deflate_server_policy policies[] = {
      {},
      deflate_server_policy::shared(),
      deflate_server_policy::dedicated(10, 9),
      {.server_max_window_bits = 8, .client_max_window_bits = 8}};
  int checked = 0;
  for (const auto& policy : policies)
    for (int flags = 0; flags < 8; ++flags)
      for (int sbits = 8; sbits <= 15; ++sbits)
        for (int cbits = 9; cbits <= 15; ++cbits) {
          const deflate_client_options o{
              .server_no_context_takeover = (flags & 1) != 0,
              .client_no_context_takeover = (flags & 2) != 0,
              .server_max_window_bits = static_cast<std::uint8_t>(sbits),
              .offer_client_max_window_bits = (flags & 4) != 0,
              .client_max_window_bits = static_cast<std::uint8_t>(cbits)};
          const auto offer = write_deflate_offer(o);
          std::vector<extension> offers;
          ASSERT_EQ(parse_extensions(offer.view(), offers), error::none);
          const auto a = negotiate_deflate(offers, policy);
          if (!a) {
            EXPECT_EQ(sbits, 8) << offer.view();
            continue;
          }
          std::optional<deflate_params> agreed;
          ASSERT_EQ(validate(a->response.view(), o, agreed), error::none)
              << offer.view() << " -> " << a->response.view();
          // Both ends agree on what each side does.
          EXPECT_EQ(*agreed, a->params) << offer.view() << " -> " << a->response.view();
          ++checked;
        }
  EXPECT_GT(checked, 1000);
}

}  // namespace
}  // namespace switchboard::protocol
