// http_body_test.cpp — request bodies of plain HTTP handlers: read whole
// before the handler runs whether they come with the head or byte by byte,
// bounded by max_http_body (413 from the head alone), a bad Content-Length
// 400, Transfer-Encoding 411, Expect: 100-continue, and no body at all.
#include <string>
#include <thread>

#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

class http_body_test : public server_test {};

// POST /echo answers "<length>:<body>"; GET /echo too (a GET may carry one).
void body_echo(server& s) {
  const auto echo = [](const http_request& req, http_response& res) {
    res.set_body(numbered("", static_cast<long>(req.body().size())) + ":" +
                 std::string(req.body()));
  };
  s.http("POST", "/echo", echo);
  s.http("GET", "/echo", echo);
}

std::string post(std::string_view body, std::string_view extra = {}) {
  return "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: " +
         numbered("", static_cast<long>(body.size())) + "\r\n" + std::string(extra) + "\r\n" +
         std::string(body);
}

// The body of a whole response (after the head), or "" without one.
std::string body_of(const std::string& response) {
  const auto end = response.find("\r\n\r\n");
  return end == std::string::npos ? std::string() : response.substr(end + 4);
}

bool status_is(const std::string& response, int status) {
  return response.rfind("HTTP/1.1 " + numbered("", status) + " ", 0) == 0;
}

TEST_F(http_body_test, BodyInTheSameReadAsTheHead) {
  running_server srv(test_options(), body_echo);
  ws_client c(srv.port());
  const std::string r = c.http_exchange(post("hello world"));
  EXPECT_TRUE(status_is(r, 200)) << r;
  EXPECT_EQ(body_of(r), "11:hello world");
}

TEST_F(http_body_test, BodyTrickledByteByByte) {
  running_server srv(test_options(), body_echo);
  ws_client c(srv.port());
  const std::string body = "trickled, one byte per segment";
  const std::string request = post(body);
  const std::size_t head_size = request.size() - body.size();
  ASSERT_TRUE(c.send_raw(request.substr(0, head_size)));
  for (const char byte : body) {
    std::this_thread::sleep_for(1ms);  // each byte its own read on the server
    ASSERT_TRUE(c.send_raw(std::string_view(&byte, 1)));
  }
  const std::string r = c.http_exchange("");
  EXPECT_TRUE(status_is(r, 200)) << r;
  EXPECT_EQ(body_of(r), numbered("", static_cast<long>(body.size())) + ":" + body);
}

TEST_F(http_body_test, HeadAndBodySplitAnywhere) {
  running_server srv(test_options(), body_echo);
  const std::string body = "0123456789abcdef";
  const std::string request = post(body);
  // Every split point: inside the head, at its end, inside the body.
  for (std::size_t split = 1; split < request.size(); split += 7) {
    ws_client c(srv.port());
    ASSERT_TRUE(c.send_raw(request.substr(0, split)));
    std::this_thread::sleep_for(2ms);
    const std::string r = c.http_exchange(request.substr(split));
    EXPECT_EQ(body_of(r), "16:" + body) << "split at " << split << ": " << r;
  }
}

TEST_F(http_body_test, LargeBodyOverManyReads) {
  auto options = test_options();
  options.max_http_body = 4 * 1024 * 1024;
  running_server srv(options, [](server& s) {
    s.http("POST", "/sum", [](const http_request& req, http_response& res) {
      unsigned long sum = 0;
      for (const char ch : req.body()) sum = sum * 31 + static_cast<unsigned char>(ch);
      res.set_body(numbered("", static_cast<long>(req.body().size())) + ":" +
                   numbered("", static_cast<long>(sum % 1000003)));
    });
  });
  std::string body(3 * 1024 * 1024 + 17, '\0');
  unsigned long sum = 0;
  for (std::size_t i = 0; i < body.size(); ++i) {
    body[i] = static_cast<char>('a' + i % 23);
    sum = sum * 31 + static_cast<unsigned char>(body[i]);
  }
  ws_client c(srv.port());
  const std::string r =
      c.http_exchange("POST /sum HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                      numbered("", static_cast<long>(body.size())) + "\r\n\r\n" + body);
  EXPECT_TRUE(status_is(r, 200)) << r.substr(0, 200);
  EXPECT_EQ(body_of(r), numbered("", static_cast<long>(body.size())) + ":" +
                            numbered("", static_cast<long>(sum % 1000003)));
}

TEST_F(http_body_test, ExactlyAtTheLimitIsReadAndOneMoreIs413WithoutTheBody) {
  auto options = test_options();
  options.max_http_body = 1000;
  running_server srv(options, body_echo);
  {
    ws_client c(srv.port());
    const std::string r = c.http_exchange(post(std::string(1000, 'x')));
    EXPECT_TRUE(status_is(r, 200)) << r.substr(0, 200);
    EXPECT_EQ(body_of(r), "1000:" + std::string(1000, 'x'));
  }
  {
    // Only the head is sent: the 413 comes without waiting for the body.
    ws_client c(srv.port());
    ASSERT_TRUE(c.send_raw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n"));
    std::string head;
    EXPECT_EQ(c.read_response(&head), 413) << head;
    EXPECT_NE(head.find("Connection: close\r\n"), std::string::npos) << head;
  }
  {
    // A length beyond 64 bits is over the limit too.
    ws_client c(srv.port());
    ASSERT_TRUE(
        c.send_raw("POST /echo HTTP/1.1\r\nHost: x\r\n"
                   "Content-Length: 99999999999999999999999999\r\n\r\n"));
    EXPECT_EQ(c.read_response(), 413);
  }
}

TEST_F(http_body_test, BadContentLengthIs400) {
  running_server srv(test_options(), body_echo);
  const char* const bad[] = {
      "Content-Length: abc\r\n",
      "Content-Length: -1\r\n",
      "Content-Length: +5\r\n",
      "Content-Length: 5 5\r\n",
      "Content-Length: 0x10\r\n",
      "Content-Length:\r\n",
      "Content-Length: 5\r\nContent-Length: 6\r\n",  // duplicates that disagree
      "Content-Length: 5, 6\r\n",                    // a list that disagrees
  };
  for (const char* fields : bad) {
    ws_client c(srv.port());
    const std::string r =
        c.http_exchange("POST /echo HTTP/1.1\r\nHost: x\r\n" + std::string(fields) + "\r\nhello");
    EXPECT_TRUE(status_is(r, 400)) << fields << " -> " << r;
  }
  // Duplicates that agree are one length (RFC 9110 §8.6).
  for (const char* fields : {"Content-Length: 5\r\nContent-Length: 5\r\n",
                             "Content-Length: 5, 5\r\n", "Content-Length: 005\r\n"}) {
    ws_client c(srv.port());
    const std::string r =
        c.http_exchange("POST /echo HTTP/1.1\r\nHost: x\r\n" + std::string(fields) + "\r\nhello");
    EXPECT_TRUE(status_is(r, 200)) << fields << " -> " << r;
    EXPECT_EQ(body_of(r), "5:hello") << fields;
  }
}

TEST_F(http_body_test, TransferEncodingIs411) {
  running_server srv(test_options(), body_echo);
  for (const char* coding : {"chunked", "gzip, chunked"}) {
    ws_client c(srv.port());
    const std::string r = c.http_exchange("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " +
                                          std::string(coding) + "\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
    EXPECT_TRUE(status_is(r, 411)) << r;
    EXPECT_NE(body_of(r).find("chunked"), std::string::npos) << r;
  }
  // With a Content-Length as well (a smuggling attempt): still refused.
  ws_client c(srv.port());
  const std::string r = c.http_exchange(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: "
      "chunked\r\n\r\nhello");
  EXPECT_TRUE(status_is(r, 411)) << r;
}

TEST_F(http_body_test, NoBodyIsEmpty) {
  running_server srv(test_options(), body_echo);
  {
    ws_client c(srv.port());
    const std::string r = c.http_exchange("GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_TRUE(status_is(r, 200)) << r;
    EXPECT_EQ(body_of(r), "0:");
  }
  {
    ws_client c(srv.port());
    const std::string r = c.http_exchange(post(""));
    EXPECT_EQ(body_of(r), "0:");
  }
}

TEST_F(http_body_test, BytesAfterTheBodyAreNotPartOfIt) {
  running_server srv(test_options(), body_echo);
  ws_client c(srv.port());
  // Keep-alive: the bytes after the first body are the next request.
  const std::string r = c.http_exchange(post("first") + post("second"));
  EXPECT_EQ(body_of(r), "5:first") << r;
  const std::string next = c.http_exchange("");
  EXPECT_EQ(body_of(next), "6:second") << next;
}

TEST_F(http_body_test, ExpectContinueGets100BeforeTheBody) {
  running_server srv(test_options(), body_echo);
  ws_client c(srv.port());
  ASSERT_TRUE(c.send_raw(
      "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"));
  std::string head;
  ASSERT_EQ(c.read_response(&head), 100) << head;
  const std::string r = c.http_exchange("ping");
  EXPECT_TRUE(status_is(r, 200)) << r;
  EXPECT_EQ(body_of(r), "4:ping");
}

TEST_F(http_body_test, AnIncompleteBodyIsDroppedAtTheHandshakeTimeout) {
  auto options = test_options();
  options.handshake_timeout = 200ms;
  running_server srv(options, body_echo);
  ws_client c(srv.port());
  ASSERT_TRUE(c.send_raw(post("0123456789").substr(0, post("0123456789").size() - 3)));
  const auto start = std::chrono::steady_clock::now();
  // No answer: the connection just closes.
  EXPECT_EQ(c.http_exchange(""), "");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST_F(http_body_test, UpgradeRequestsAreUnchanged) {
  running_server srv(test_options(), [](server& s) {
    body_echo(s);
    add_echo(s);
  });
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade("/chat"), 101);
  ASSERT_TRUE(c.send_message(protocol::opcode::text, "still a websocket"));
  EXPECT_EQ(c.next().payload, "still a websocket");
}

}  // namespace
}  // namespace switchboard::server::test
