// http_request_test.cpp — rules every request meets before routing, on every
// route (issue 14, 8): HTTP versions other than 1.0 and 1.1 are 505, a
// missing (HTTP/1.1) or repeated Host is 400, and HEAD is served by a GET
// route without the body.
#include <string>

#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

class http_request_test : public server_test {};

void routes(server& s) {
  s.http("GET", "/hello", [](const http_request&, http_response& res) {
    res.add_header("X-Route", "hello");
    res.set_body("hello, world\n");
  });
  s.http("POST", "/post-only", [](const http_request&, http_response& res) { res.set_body("ok"); });
  s.ws("/ws", ws_behavior{});
}

bool status_is(const std::string& response, int status) {
  return response.rfind("HTTP/1.1 " + std::to_string(status) + " ", 0) == 0;
}

std::string body_of(const std::string& response) {
  const auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
}

std::string ask(const running_server& srv, const std::string& request) {
  ws_client c(srv.port());
  return c.http_exchange(request);
}

TEST_F(http_request_test, OtherHttpVersionsAre505OnEveryRoute) {
  running_server srv(test_options(), routes);
  for (const char* version : {"HTTP/2.0", "HTTP/1.2", "HTTP/0.9", "HTTP/3.0"}) {
    for (const char* path : {"/hello", "/ws", "/nowhere"}) {
      const std::string r =
          ask(srv, std::string("GET ") + path + " " + version + "\r\nHost: x\r\n\r\n");
      EXPECT_TRUE(status_is(r, 505)) << version << " " << path << ": " << r;
    }
  }
  EXPECT_TRUE(status_is(ask(srv, "GET /hello HTTP/1.0\r\n\r\n"), 200));
  EXPECT_TRUE(status_is(ask(srv, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"), 200));
  EXPECT_EQ(srv.get().statistics().handshake_failures_for(handshake_failure::unsupported_http_version),
            12u);
}

TEST_F(http_request_test, MissingOrRepeatedHostIs400OnEveryRoute) {
  running_server srv(test_options(), routes);
  for (const char* path : {"/hello", "/nowhere"}) {
    std::string r = ask(srv, std::string("GET ") + path + " HTTP/1.1\r\n\r\n");
    EXPECT_TRUE(status_is(r, 400)) << path << ": " << r;
    r = ask(srv, std::string("GET ") + path + " HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    EXPECT_TRUE(status_is(r, 400)) << path << ": " << r;
    r = ask(srv, std::string("GET ") + path + " HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n");
    EXPECT_TRUE(status_is(r, 400)) << path << ": " << r;
  }
  EXPECT_TRUE(status_is(ask(srv, "POST /post-only HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
                        400));
}

TEST_F(http_request_test, HeadIsServedByTheGetRouteWithoutTheBody) {
  running_server srv(test_options(), routes);
  // "Connection: close": the answer ends at EOF, so nothing may follow the head.
  const std::string r = ask(srv, "HEAD /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(status_is(r, 200)) << r;
  EXPECT_NE(r.find("Content-Length: 13\r\n"), std::string::npos) << r;
  EXPECT_NE(r.find("X-Route: hello\r\n"), std::string::npos) << r;
  EXPECT_EQ(body_of(r), "");
  // A path without GET still says which methods it has.
  const std::string post_only =
      ask(srv, "HEAD /post-only HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(status_is(post_only, 405)) << post_only;
  const std::string other = ask(srv, "PUT /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(status_is(other, 405)) << other;
  EXPECT_NE(other.find("Allow: GET, HEAD\r\n"), std::string::npos) << other;
}

// The peer's address reaches the handler (per-address limits on plain HTTP
// routes need it); a request made by hand has none.
TEST_F(http_request_test, remote_address_is_the_peer_of_the_connection) {
  running_server srv(test_options(), [](server& s) {
    s.http("GET", "/who", [](const http_request& req, http_response& res) {
      std::string body;
      body.push_back('[');
      body.append(req.remote_address());
      body.push_back(']');
      res.set_body(std::move(body));
    });
  });
  const std::string r = ask(srv, "GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(status_is(r, 200)) << r;
  EXPECT_EQ(body_of(r), "[127.0.0.1]");
  protocol::request_head head;
  EXPECT_EQ(http_request(head).remote_address(), "");
}

}  // namespace
}  // namespace switchboard::server::test
