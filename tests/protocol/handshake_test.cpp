#include <switchboard/protocol/handshake.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace switchboard::protocol {
namespace {

using namespace std::string_view_literals;

constexpr std::string_view k_key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view k_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

std::string_view sv(const std::array<char, 28>& a) {
  return {a.data(), a.size()};
}

// A valid upgrade request (RFC 6455 §1.3) with the field named `drop` left
// out and `add` appended.
std::string upgrade_request_text(std::string_view drop = {}, std::string_view add = {},
                                 std::string_view request_line = "GET /chat?x=1 HTTP/1.1") {
  const std::pair<std::string_view, std::string_view> fields[] = {
      {"Host", "server.example.com"},   {"Upgrade", "websocket"},
      {"Connection", "Upgrade"},        {"Sec-WebSocket-Key", k_key},
      {"Origin", "http://example.com"}, {"Sec-WebSocket-Protocol", "chat, superchat"},
      {"Sec-WebSocket-Version", "13"},
  };
  std::string s = std::string(request_line) + "\r\n";
  for (const auto& [name, value] : fields)
    if (name != drop) s += std::string(name) + ": " + std::string(value) + "\r\n";
  return s + std::string(add) + "\r\n";
}

TEST(handshake, compute_accept_matches_known_vectors) {
  EXPECT_EQ(sv(compute_accept(k_key)), k_accept);  // RFC 6455 §1.3
  EXPECT_EQ(sv(compute_accept("x3JJHMbDL1EzLkh9GBhXDw==")), "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
  EXPECT_EQ(sv(compute_accept("AAAAAAAAAAAAAAAAAAAAAA==")), "ICX+Yqv66kxgM0FcWaLWlFLwTAI=");
}

TEST(handshake, compute_accept_is_safe_from_many_threads) {
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i)
        if (sv(compute_accept(k_key)) != k_accept) ++mismatches;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches, 0);
}

TEST(handshake, key_must_be_canonical_base64_of_16_bytes) {
  struct row {
    std::string_view key;
    bool valid;
  };
  const row rows[] = {
      {k_key, true},
      {"AAAAAAAAAAAAAAAAAAAAAA==", true},
      {"+/+/+/+/+/+/+/+/+/+/+w==", true},
      {"AAAAAAAAAAAAAAAAAAAAAB==", false},  // non-zero unused bits: non-canonical
      {"AAAAAAAAAAAAAAAAAAAAAQ==", true},
      {"dGhlIHNhbXBsZSBub25jZQ=", false},    // 23 characters
      {"dGhlIHNhbXBsZSBub25jZQ===", false},  // 25 characters
      {"dGhlIHNhbXBsZSBub25jZQAA", false},   // no padding: 18 bytes
      {"dGhlIHNhbXBsZSBub25j====", false},   // 15 bytes
      {"dGhlIHNhbXBsZSBub25jZ-==", false},   // base64url alphabet
      {"dGhlIHNhbXBsZSBub2 jZQ==", false},
      {"", false},
  };
  for (const auto& row : rows) EXPECT_EQ(is_valid_key(row.key), row.valid) << row.key;
}

TEST(handshake, validate_upgrade_accepts_the_rfc_request) {
  request_parser p;
  const auto text = upgrade_request_text();
  ASSERT_EQ(p.parse(text).status, parse_status::complete);
  upgrade_request up;
  ASSERT_EQ(validate_upgrade(p.head(), up), error::none);
  EXPECT_EQ(up.path, "/chat");
  EXPECT_EQ(up.query, "x=1");
  EXPECT_EQ(up.host, "server.example.com");
  EXPECT_EQ(up.origin, "http://example.com");
  EXPECT_EQ(up.key, k_key);
  EXPECT_EQ(up.head, &p.head());
}

TEST(handshake, validate_upgrade_accepts_lenient_but_valid_variants) {
  const std::string variants[] = {
      upgrade_request_text("Origin"),  // non-browser clients send no Origin
      upgrade_request_text("Sec-WebSocket-Protocol"),
      upgrade_request_text("Upgrade", "Upgrade: h2c, WebSocket\r\n"),
      upgrade_request_text("Connection", "Connection: keep-alive, upgrade\r\n"),
      upgrade_request_text("Connection", "Connection: keep-alive\r\nConnection: Upgrade\r\n"),
      upgrade_request_text("Sec-WebSocket-Protocol", "Sec-WebSocket-Protocol: a,,b \r\n"),
      upgrade_request_text({},
                           "Sec-WebSocket-Extensions: permessage-deflate; "
                           "client_max_window_bits, x-foo\r\n"),
      upgrade_request_text({}, {}, "GET / HTTP/1.2"),
  };
  for (const auto& text : variants) {
    request_parser p;
    ASSERT_EQ(p.parse(text).status, parse_status::complete) << text;
    upgrade_request up;
    EXPECT_EQ(validate_upgrade(p.head(), up), error::none) << text;
  }
}

TEST(handshake, validate_upgrade_rejects_each_rule_with_its_status) {
  struct row {
    std::string text;
    error expected;
    int status;
  };
  const row rows[] = {
      {upgrade_request_text({}, {}, "POST /chat HTTP/1.1"), error::method_not_get, 405},
      {upgrade_request_text({}, {}, "get /chat HTTP/1.1"), error::method_not_get, 405},
      {upgrade_request_text({}, {}, "GET /chat HTTP/1.0"), error::http_version_too_old, 505},
      {upgrade_request_text({}, {}, "GET /chat HTTP/0.9"), error::http_version_too_old, 505},
      {upgrade_request_text("Host"), error::missing_host, 400},
      {upgrade_request_text({}, "host: other\r\n"), error::duplicate_host, 400},
      {upgrade_request_text("Upgrade"), error::missing_upgrade, 426},
      {upgrade_request_text("Upgrade", "Upgrade: websockets\r\n"), error::missing_upgrade, 426},
      {upgrade_request_text("Connection"), error::missing_connection_upgrade, 400},
      {upgrade_request_text("Connection", "Connection: keep-alive\r\n"),
       error::missing_connection_upgrade, 400},
      {upgrade_request_text("Sec-WebSocket-Version"), error::missing_version, 426},
      {upgrade_request_text("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8\r\n"),
       error::unsupported_version, 426},
      {upgrade_request_text("Sec-WebSocket-Version", "Sec-WebSocket-Version: 13, 8\r\n"),
       error::unsupported_version, 426},
      {upgrade_request_text({}, "Sec-WebSocket-Version: 13\r\n"), error::unsupported_version, 426},
      {upgrade_request_text("Sec-WebSocket-Key"), error::missing_key, 400},
      {upgrade_request_text({}, "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n"),
       error::duplicate_key, 400},
      {upgrade_request_text("Sec-WebSocket-Key", "Sec-WebSocket-Key: dGhlIHNhbXBsZQ==\r\n"),
       error::bad_key, 400},
      {upgrade_request_text("Sec-WebSocket-Key", "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAB==\r\n"),
       error::bad_key, 400},
      {upgrade_request_text("Sec-WebSocket-Protocol", "Sec-WebSocket-Protocol: a b\r\n"),
       error::bad_protocol_header, 400},
      {upgrade_request_text("Sec-WebSocket-Protocol", "Sec-WebSocket-Protocol: \r\n"),
       error::bad_protocol_header, 400},
      {upgrade_request_text({}, "Sec-WebSocket-Protocol: \"chat\"\r\n"), error::bad_protocol_header,
       400},
      {upgrade_request_text({}, "Sec-WebSocket-Extensions: permessage-deflate;\r\n"),
       error::bad_extension_header, 400},
      {upgrade_request_text({}, "Sec-WebSocket-Extensions: ok\r\nSec-WebSocket-Extensions: ,\r\n"),
       error::bad_extension_header, 400},
  };
  for (const auto& row : rows) {
    request_parser p;
    ASSERT_EQ(p.parse(row.text).status, parse_status::complete) << row.text;
    upgrade_request up;
    const auto e = validate_upgrade(p.head(), up);
    EXPECT_EQ(e, row.expected) << row.text;
    EXPECT_EQ(http_status_for(e), row.status) << row.text;
    std::string out;
    write_rejection(out, e);
    EXPECT_EQ(out.substr(0, 13), "HTTP/1.1 " + std::to_string(row.status) + " ");
  }
}

TEST(handshake, select_subprotocol_prefers_the_clients_order) {
  struct row {
    std::string_view fields;
    std::vector<std::string_view> supported;
    std::optional<std::string_view> expected;
  };
  const row rows[] = {
      {"Sec-WebSocket-Protocol: a, b\r\n", {"b", "a"}, "a"},
      {"Sec-WebSocket-Protocol: x, b\r\n", {"a", "b"}, "b"},
      {"Sec-WebSocket-Protocol: x\r\nSec-WebSocket-Protocol: b, a\r\n", {"a", "b"}, "b"},
      {"Sec-WebSocket-Protocol: Chat\r\n", {"chat"}, std::nullopt},  // case-sensitive
      {"Sec-WebSocket-Protocol: chat\r\n", {}, std::nullopt},
      {"", {"chat"}, std::nullopt},
  };
  for (const auto& row : rows) {
    request_parser p;
    const std::string text = "GET / HTTP/1.1\r\n" + std::string(row.fields) + "\r\n";
    ASSERT_EQ(p.parse(text).status, parse_status::complete);
    const auto chosen = select_subprotocol(p.head(), row.supported);
    EXPECT_EQ(chosen, row.expected) << row.fields;
  }
}

TEST(handshake, select_subprotocol_returns_the_servers_string) {
  request_parser p;
  const auto text = upgrade_request_text();
  ASSERT_EQ(p.parse(text).status, parse_status::complete);
  const std::string_view supported[] = {"superchat", "chat"};
  const auto chosen = select_subprotocol(p.head(), supported);
  ASSERT_TRUE(chosen);
  EXPECT_EQ(chosen->data(), supported[1].data());
}

// --- response writers --------------------------------------------------------

TEST(handshake, write_accept_response_is_byte_exact) {
  std::string out = "kept:";
  ASSERT_TRUE(write_accept_response(out, k_key, {.subprotocol = "chat"}));
  EXPECT_EQ(out,
            "kept:HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Sec-WebSocket-Protocol: chat\r\n"
            "\r\n");

  const http_header extra[] = {{"Set-Cookie", "sid=1; HttpOnly"}, {"X-Node", "a"}};
  out.clear();
  ASSERT_TRUE(write_accept_response(
      out, k_key,
      {.extensions = "permessage-deflate; server_no_context_takeover", .extra_headers = extra}));
  EXPECT_EQ(out,
            "HTTP/1.1 101 Switching Protocols\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
            "Set-Cookie: sid=1; HttpOnly\r\n"
            "X-Node: a\r\n"
            "\r\n");
}

TEST(handshake, write_error_response_is_byte_exact) {
  std::string out;
  ASSERT_TRUE(write_error_response(out, 403, "origin not allowed"));
  EXPECT_EQ(out,
            "HTTP/1.1 403 Forbidden\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 18\r\n"
            "Connection: close\r\n"
            "\r\n"
            "origin not allowed");
  out.clear();
  ASSERT_TRUE(write_error_response(out, 405, ""));
  EXPECT_EQ(out,
            "HTTP/1.1 405 Method Not Allowed\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 0\r\n"
            "Connection: close\r\n"
            "Allow: GET\r\n"
            "\r\n");
  out.clear();
  const http_header extra[] = {{"Retry-After", "30"}};
  ASSERT_TRUE(write_error_response(out, 426, "v13", extra));
  EXPECT_EQ(out,
            "HTTP/1.1 426 Upgrade Required\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 3\r\n"
            "Connection: Upgrade, close\r\n"
            "Upgrade: websocket\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Retry-After: 30\r\n"
            "\r\n"
            "v13");
}

TEST(handshake, reason_phrases) {
  const std::pair<int, std::string_view> rows[] = {
      {400, "Bad Request"},
      {401, "Unauthorized"},
      {403, "Forbidden"},
      {404, "Not Found"},
      {405, "Method Not Allowed"},
      {414, "URI Too Long"},
      {426, "Upgrade Required"},
      {429, "Too Many Requests"},
      {431, "Request Header Fields Too Large"},
      {500, "Internal Server Error"},
      {503, "Service Unavailable"},
      {505, "HTTP Version Not Supported"},
      {418, "Client Error"},
      {599, "Server Error"},
  };
  for (const auto& [status, phrase] : rows) {
    EXPECT_EQ(reason_phrase(status), phrase);
    std::string out;
    ASSERT_TRUE(write_error_response(out, status, "x"));
    EXPECT_EQ(out.substr(0, out.find("\r\n")),
              "HTTP/1.1 " + std::to_string(status) + " " + std::string(phrase));
  }
}

TEST(handshake, write_rejection_uses_the_error_table) {
  std::string out;
  write_rejection(out, error::unsupported_version);
  const auto body = describe(error::unsupported_version);
  EXPECT_EQ(out,
            "HTTP/1.1 426 Upgrade Required\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: " +
                std::to_string(body.size()) +
                "\r\n"
                "Connection: Upgrade, close\r\n"
                "Upgrade: websocket\r\n"
                "Sec-WebSocket-Version: 13\r\n"
                "\r\n" +
                std::string(body));
  out.clear();
  write_rejection(out, error::head_too_large);
  EXPECT_EQ(out.substr(0, 46), "HTTP/1.1 431 Request Header Fields Too Large\r\n");
  out.clear();
  write_rejection(out, error::none);
  EXPECT_EQ(out.substr(0, 36), "HTTP/1.1 500 Internal Server Error\r\n");
}

TEST(handshake, writers_refuse_header_injection_and_leave_out_unchanged) {
  const http_header bad_value[] = {{"X-Ok", "a\r\nSet-Cookie: evil=1"}};
  const http_header bad_lf[] = {{"X-Ok", "a\nb"}};
  const http_header bad_nul[] = {{"X-Ok", "a\0b"sv}};
  const http_header bad_name[] = {{"X Bad", "v"}};
  const http_header crlf_name[] = {{"X\r\nEvil", "v"}};
  const http_header empty_name[] = {{"", "v"}};
  const std::span<const http_header> bad_sets[] = {bad_value, bad_lf,    bad_nul,
                                                   bad_name,  crlf_name, empty_name};
  std::string out = "prefix";
  for (const auto extra : bad_sets) {
    EXPECT_FALSE(write_accept_response(out, k_key, {.extra_headers = extra}));
    EXPECT_FALSE(write_error_response(out, 400, "b", extra));
    EXPECT_FALSE(write_upgrade_request(out, {.host = "h", .extra_headers = extra}, k_key));
  }
  EXPECT_FALSE(write_accept_response(out, k_key, {.subprotocol = "chat\r\nX: y"}));
  EXPECT_FALSE(write_accept_response(out, k_key, {.subprotocol = "a b"}));
  EXPECT_FALSE(write_accept_response(out, k_key, {.extensions = "x\r\n\r\nHTTP/1.1 200 OK"}));
  EXPECT_FALSE(write_error_response(out, 99, "b"));
  EXPECT_FALSE(write_error_response(out, 600, "b"));
  const std::string_view bad_protocol[] = {"chat", "a,b"};
  const client_request_options bad_requests[] = {
      {.host = "h\r\nX: y"},
      {.host = ""},
      {.host = "h", .target = ""},
      {.host = "h", .target = "/a b"},
      {.host = "h", .target = "/\r"},
      {.host = "h", .origin = "o\n"},
      {.host = "h", .protocols = bad_protocol},
      {.host = "h", .extensions = "e\r\n"},
  };
  for (const auto& opts : bad_requests) EXPECT_FALSE(write_upgrade_request(out, opts, k_key));
  EXPECT_FALSE(write_upgrade_request(out, {.host = "h"}, "key\r\n"));
  EXPECT_EQ(out, "prefix");
}

// --- client side -------------------------------------------------------------

TEST(handshake, generate_key_is_fresh_and_well_formed) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const auto key = generate_key();
    const std::string_view text(key.data(), key.size());
    EXPECT_TRUE(is_valid_key(text)) << text;
    seen.emplace(text);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(handshake, write_upgrade_request_is_byte_exact) {
  std::string out;
  ASSERT_TRUE(write_upgrade_request(out, {.host = "server.example.com"}, k_key));
  EXPECT_EQ(out,
            "GET / HTTP/1.1\r\n"
            "Host: server.example.com\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n");
  const std::string_view protocols[] = {"chat", "superchat"};
  const http_header extra[] = {{"Authorization", "Bearer t"}};
  out.clear();
  ASSERT_TRUE(write_upgrade_request(out,
                                    {.host = "server.example.com:8080",
                                     .target = "/chat?room=1",
                                     .origin = "http://example.com",
                                     .protocols = protocols,
                                     .extensions = "permessage-deflate; client_max_window_bits",
                                     .extra_headers = extra},
                                    k_key));
  EXPECT_EQ(out,
            "GET /chat?room=1 HTTP/1.1\r\n"
            "Host: server.example.com:8080\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "Origin: http://example.com\r\n"
            "Sec-WebSocket-Protocol: chat, superchat\r\n"
            "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            "Authorization: Bearer t\r\n"
            "\r\n");
}

// The whole exchange through both parsers and both validators.
TEST(handshake, client_and_server_agree) {
  const auto key = generate_key();
  const std::string_view key_text(key.data(), key.size());
  const std::string_view protocols[] = {"v2.chat", "chat"};
  const std::string_view extensions[] = {"permessage-deflate"};
  std::string request;
  ASSERT_TRUE(write_upgrade_request(
      request, {.host = "h", .protocols = protocols, .extensions = "permessage-deflate"},
      key_text));
  request_parser server;
  ASSERT_EQ(server.parse(request).status, parse_status::complete);
  upgrade_request up;
  ASSERT_EQ(validate_upgrade(server.head(), up), error::none);
  const std::string_view supported[] = {"chat", "v2.chat"};
  const auto chosen = select_subprotocol(server.head(), supported);
  ASSERT_EQ(chosen, "v2.chat");
  std::string response;
  ASSERT_TRUE(write_accept_response(response, up.key,
                                    {.subprotocol = *chosen, .extensions = "permessage-deflate"}));
  response_parser client;
  ASSERT_EQ(client.parse(response).status, parse_status::complete);
  handshake_response hr;
  ASSERT_EQ(validate_response(client.head(), key_text, protocols, extensions, hr), error::none);
  EXPECT_EQ(hr.status, 101);
  EXPECT_EQ(hr.subprotocol, "v2.chat");
  EXPECT_EQ(hr.extensions, "permessage-deflate");
}

TEST(handshake, validate_response_reports_each_failure) {
  const std::string ok_head =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  const std::string accept = "Sec-WebSocket-Accept: " + std::string(k_accept) + "\r\n";
  struct row {
    std::string text;
    error expected;
  };
  const row rows[] = {
      {ok_head + accept, error::none},
      {ok_head + accept + "Sec-WebSocket-Protocol: chat\r\n", error::none},
      {ok_head + accept + "Sec-WebSocket-Extensions: permessage-deflate; x=1\r\n", error::none},
      {"HTTP/1.1 200 OK\r\n" + accept, error::response_not_101},
      {"HTTP/1.1 101 X\r\nConnection: Upgrade\r\n" + accept, error::response_missing_upgrade},
      {"HTTP/1.1 101 X\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n" + accept,
       error::response_missing_upgrade},
      {"HTTP/1.1 101 X\r\nUpgrade: websocket\r\n" + accept, error::response_missing_connection},
      {ok_head, error::response_missing_accept},
      {ok_head + "Sec-WebSocket-Accept: ICX+Yqv66kxgM0FcWaLWlFLwTAI=\r\n",
       error::response_bad_accept},
      {ok_head + accept + accept, error::response_bad_accept},
      {ok_head + accept + "Sec-WebSocket-Protocol: other\r\n", error::response_unexpected_protocol},
      {ok_head + accept + "Sec-WebSocket-Protocol: Chat\r\n", error::response_unexpected_protocol},
      {ok_head + accept + "Sec-WebSocket-Protocol: chat, superchat\r\n",
       error::response_unexpected_protocol},
      {ok_head + accept + "Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n",
       error::response_unexpected_protocol},
      {ok_head + accept + "Sec-WebSocket-Extensions: x-unknown\r\n",
       error::response_unexpected_extension},
      {ok_head + accept + "Sec-WebSocket-Extensions: permessage-deflate, x-unknown\r\n",
       error::response_unexpected_extension},
      {ok_head + accept + "Sec-WebSocket-Extensions: permessage-deflate;\r\n",
       error::bad_extension_header},
  };
  const std::string_view protocols[] = {"chat", "superchat"};
  const std::string_view extensions[] = {"permessage-deflate"};
  for (const auto& row : rows) {
    response_parser p;
    const auto text = row.text + "\r\n";
    ASSERT_EQ(p.parse(text).status, parse_status::complete) << text;
    handshake_response hr;
    EXPECT_EQ(validate_response(p.head(), k_key, protocols, extensions, hr), row.expected) << text;
    EXPECT_EQ(hr.status, p.head().status());
  }
  // A server may not pick a subprotocol when the client offered none.
  response_parser p;
  const auto text = ok_head + accept + "Sec-WebSocket-Protocol: chat\r\n\r\n";
  ASSERT_EQ(p.parse(text).status, parse_status::complete);
  handshake_response hr;
  EXPECT_EQ(validate_response(p.head(), k_key, {}, extensions, hr),
            error::response_unexpected_protocol);
}

}  // namespace
}  // namespace switchboard::protocol
