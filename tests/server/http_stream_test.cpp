// http_stream_test.cpp — streaming answers (http_response::stream,
// http_responder::stream): the head goes out at once, writes from other
// threads arrive in order as chunks, end() finishes the answer, on_close runs
// once whatever ends the stream (end, peer, slow consumer, server stop,
// terminate), HTTP/1.0 gets a close-delimited body, HEAD gets the head only,
// no timer of the connection kills a stream, a handle outlives the server,
// and an independent client (python's http.client) decodes the chunks.
#include <sys/socket.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "http_client.hpp"
#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

class http_stream_test : public server_test {};

// Test servers with keep-alive on (whatever the default of max_http_requests).
server_options stream_options() {
  auto options = test_options();
  options.max_http_requests = 100;
  return options;
}

// What a streaming handler hands to the test thread.
struct stream_box {
  std::mutex mutex;
  http_stream stream;
  std::atomic<int> closes{0};
  std::atomic<bool> started{false};

  http_stream get() {
    std::lock_guard lock(mutex);
    return stream;
  }
  void set(http_stream s) {
    std::lock_guard lock(mutex);
    stream = std::move(s);
    started = true;
  }
  std::function<void()> on_close() {
    return [this] { ++closes; };
  }
};

// Installs GET /stream: a text/event-stream answer whose handle goes to `box`.
void add_stream_route(server& s, stream_box& box) {
  s.http("GET", "/stream", [&box](const http_request&, http_response& res) {
    res.set_content_type("text/event-stream");
    res.add_header("Cache-Control", "no-cache");
    box.set(res.stream(box.on_close()));
  });
}

TEST_F(http_stream_test, TheHeadGoesOutBeforeAnyWrite) {
  stream_box box;
  running_server srv(stream_options(), [&](server& s) { add_stream_route(s, box); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/stream")));
  const http_answer_read head = c.read_head();
  EXPECT_EQ(head.status, 200) << head.head;
  EXPECT_TRUE(head.chunked) << head.head;
  EXPECT_EQ(head.header("Content-Type"), "text/event-stream");
  EXPECT_EQ(head.header("Cache-Control"), "no-cache");
  EXPECT_EQ(head.header("Content-Length"), std::nullopt);
  EXPECT_EQ(head.header("Connection"), std::nullopt) << "HTTP/1.1 streams keep the connection";
  EXPECT_TRUE(box.get().is_open());
  EXPECT_EQ(box.closes.load(), 0);
}

TEST_F(http_stream_test, WritesFromAnotherThreadArriveInOrderThenEndFinishesTheAnswer) {
  stream_box box;
  running_server srv(stream_options(), [&](server& s) { add_stream_route(s, box); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/stream")));
  ASSERT_EQ(c.read_head().status, 200);
  ASSERT_TRUE(wait_until([&] { return box.started.load(); }));
  constexpr int k_events = 500;
  std::thread writer([s = box.get()] {
    for (int i = 0; i < k_events; ++i) {
      EXPECT_TRUE(s.write(numbered("data: ", i) + "\n\n"));
      if (i % 50 == 0) std::this_thread::sleep_for(1ms);  // several hand-overs, not one
    }
    s.end();
    EXPECT_FALSE(s.write("after end"));
  });
  std::string body;
  for (;;) {
    auto chunk = c.read_chunk();
    ASSERT_TRUE(chunk.has_value()) << "the stream was cut: " << body.size() << " bytes";
    if (chunk->empty()) break;  // the last chunk
    body.append(*chunk);
  }
  writer.join();
  std::string expected;
  for (int i = 0; i < k_events; ++i) expected.append(numbered("data: ", i)).append("\n\n");
  EXPECT_EQ(body, expected);
  ASSERT_TRUE(wait_until([&] { return box.closes.load() == 1; }));
  EXPECT_FALSE(box.get().is_open());
  // The answer is finished; the connection is not closed by it.
  EXPECT_TRUE(c.silent_for(50ms));
}

TEST_F(http_stream_test, OnCloseRunsOnceWhenThePeerGoes) {
  stream_box box;
  running_server srv(stream_options(), [&](server& s) { add_stream_route(s, box); });
  {
    http_client c(srv.port());
    ASSERT_TRUE(c.send(http_request_text("GET", "/stream")));
    ASSERT_EQ(c.read_head().status, 200);
    ASSERT_TRUE(box.get().write("one"));
    ASSERT_EQ(c.read_chunk(), "one");
  }  // the client hangs up
  ASSERT_TRUE(wait_until([&] { return box.closes.load() == 1; }));
  EXPECT_FALSE(box.get().write("nobody reads this"));
  EXPECT_FALSE(box.get().is_open());
  box.get().end();  // harmless
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(box.closes.load(), 1);
}

TEST_F(http_stream_test, ASlowReaderIsClosedAtTheOutboundCap) {
  stream_box box;
  auto options = stream_options();
  options.max_backpressure = 256 * 1024;
  running_server srv(options, [&](server& s) { add_stream_route(s, box); });
  http_client c(srv.port());
  // No reading at all: the kernel's buffers fill, then the connection's queue.
  ASSERT_TRUE(c.send(http_request_text("GET", "/stream")));
  ASSERT_TRUE(wait_until([&] { return box.started.load(); }));
  const http_stream s = box.get();
  const std::string piece(16 * 1024, 'x');
  bool refused = false;
  std::size_t peak = 0;
  // Paced so the loop keeps up: what piles up is what the socket refuses.
  for (int i = 0; i < 20000 && !refused; ++i) {
    refused = !s.write(piece);
    peak = std::max(peak, s.queued());
    std::this_thread::sleep_for(200us);
  }
  EXPECT_TRUE(refused) << "the writer was never stopped";
  ASSERT_TRUE(wait_until([&] { return box.closes.load() == 1; }));
  EXPECT_GE(srv.get().statistics().backpressure_drops, 1u);
  // Bounded: the cap plus one write plus what a hand-over carries.
  EXPECT_LE(peak, options.max_backpressure + 2 * piece.size()) << peak;
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(http_stream_test, ServerStopSendsWhatWasWrittenThenEndsTheStream) {
  stream_box box;
  auto options = stream_options();
  auto srv =
      std::make_unique<running_server>(options, [&](server& s) { add_stream_route(s, box); });
  http_client c(srv->port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/stream")));
  ASSERT_EQ(c.read_head().status, 200);
  ASSERT_TRUE(wait_until([&] { return box.started.load(); }));
  // The layer above writes its final event, then stops the server.
  ASSERT_TRUE(box.get().write("event: reconnect\n\n"));
  srv->get().shutdown();
  EXPECT_EQ(c.read_chunk(), "event: reconnect\n\n");
  EXPECT_EQ(c.read_chunk(), "");  // the last chunk
  EXPECT_TRUE(c.wait_closed());
  c.close();  // the server waits for our FIN (close_timeout) before it stops
  ASSERT_TRUE(wait_until([&] { return box.closes.load() == 1; }));
  EXPECT_EQ(srv->get().wait(), std::error_code());
}

// The same on a keep-alive connection that served a request and sat idle
// before the stream (an EventSource reconnecting over a reused connection):
// while the quiet stream runs without request state it is still a stream,
// not an idle connection that shutdown may just close.
TEST_F(http_stream_test, ServerStopEndsAQuietStreamOnAReusedConnectionGracefully) {
  stream_box box;
  auto options = stream_options();
  auto srv = std::make_unique<running_server>(options, [&](server& s) {
    add_stream_route(s, box);
    s.http("GET", "/hello", [](const http_request&, http_response& res) { res.set_body("hi"); });
  });
  http_client c(srv->port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/hello")));
  EXPECT_EQ(c.read_answer().body, "hi");
  EXPECT_TRUE(c.silent_for(30ms));  // idle between requests
  ASSERT_TRUE(c.send(http_request_text("GET", "/stream")));
  ASSERT_EQ(c.read_head().status, 200);
  ASSERT_TRUE(wait_until([&] { return box.started.load(); }));
  EXPECT_TRUE(c.silent_for(30ms));  // the stream is all the connection does
  ASSERT_TRUE(box.get().write("event: reconnect\n\n"));
  EXPECT_EQ(c.read_chunk(), "event: reconnect\n\n");
  EXPECT_TRUE(c.silent_for(30ms));
  srv->get().shutdown();
  EXPECT_EQ(c.read_chunk(), "");  // the last chunk: ended, not cut
  EXPECT_TRUE(c.wait_closed());
  c.close();
  ASSERT_TRUE(wait_until([&] { return box.closes.load() == 1; }));
  EXPECT_EQ(srv->get().wait(), std::error_code());
}

TEST_F(http_stream_test, OnShutdownWritesTheLastEventBeforeStreamsEnd) {
  stream_box box;
  auto options = stream_options();
  options.on_shutdown = [&box] { box.get().write("event: reconnect\n\n"); };
  auto srv =
      std::make_unique<running_server>(options, [&](server& s) { add_stream_route(s, box); });
  http_client c(srv->port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/stream")));
  ASSERT_EQ(c.read_head().status, 200);
  ASSERT_TRUE(wait_until([&] { return box.started.load(); }));
  srv->get().shutdown();
  EXPECT_EQ(c.read_chunk(), "event: reconnect\n\n");
  EXPECT_EQ(c.read_chunk(), "");
  EXPECT_TRUE(c.wait_closed());
  c.close();
  ASSERT_TRUE(wait_until([&] { return box.closes.load() == 1; }));
}

TEST_F(http_stream_test, TerminatingTheServerRunsOnClose) {
  stream_box box;
  auto options = stream_options();
  options.shutdown_timeout = 0ms;  // no grace: streams are cut
  auto srv =
      std::make_unique<running_server>(options, [&](server& s) { add_stream_route(s, box); });
  http_client c(srv->port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/stream")));
  ASSERT_EQ(c.read_head().status, 200);
  srv->get().shutdown();
  EXPECT_TRUE(c.wait_closed());
  ASSERT_TRUE(wait_until([&] { return box.closes.load() == 1; }));
}

TEST_F(http_stream_test, AHandleOutlivesTheServer) {
  stream_box box;
  {
    running_server srv(stream_options(), [&](server& s) { add_stream_route(s, box); });
    http_client c(srv.port());
    ASSERT_TRUE(c.send(http_request_text("GET", "/stream")));
    ASSERT_EQ(c.read_head().status, 200);
  }  // the server is destroyed with the stream open: no callbacks then
  const http_stream s = box.get();
  EXPECT_FALSE(s.write("into the void"));
  s.end();
  EXPECT_FALSE(s.is_open());
}

TEST_F(http_stream_test, Http10GetsABodyThatEndsWithTheConnection) {
  stream_box box;
  running_server srv(stream_options(), [&](server& s) { add_stream_route(s, box); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/stream", {}, {}, "HTTP/1.0")));
  const http_answer_read head = c.read_head();
  ASSERT_EQ(head.status, 200);
  EXPECT_FALSE(head.chunked) << head.head;
  EXPECT_EQ(head.header("Connection"), "close");
  ASSERT_TRUE(wait_until([&] { return box.started.load(); }));
  ASSERT_TRUE(box.get().write("plain "));
  ASSERT_TRUE(box.get().write("bytes"));
  box.get().end();
  EXPECT_EQ(c.read_to_eof(), "plain bytes");
  ASSERT_TRUE(wait_until([&] { return box.closes.load() == 1; }));
}

TEST_F(http_stream_test, HeadGetsTheHeadAndTheStreamIsOverAtOnce) {
  stream_box box;
  running_server srv(stream_options(), [&](server& s) { add_stream_route(s, box); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(http_request_text("HEAD", "/stream")));
  const http_answer_read head = c.read_answer(true);
  EXPECT_EQ(head.status, 200);
  ASSERT_TRUE(wait_until([&] { return box.closes.load() == 1; }));
  EXPECT_FALSE(box.get().write("no body for HEAD"));
  EXPECT_TRUE(c.silent_for(50ms));
}

TEST_F(http_stream_test, ADeferredRequestStreamsFromAnotherThread) {
  std::vector<std::thread> threads;
  std::atomic<int> closes{0};
  running_server srv(stream_options(), [&](server& s) {
    s.http("GET", "/later", [&](const http_request&, http_response& res) {
      threads.emplace_back([r = res.defer(), &closes] {
        std::this_thread::sleep_for(20ms);
        http_response head;
        head.set_status(200);
        head.set_content_type("text/event-stream");
        const http_stream st = r.stream(std::move(head), [&closes] { ++closes; });
        // Written at once: the bytes wait for the head.
        EXPECT_TRUE(st.write("a"));
        EXPECT_TRUE(st.write("b"));
        st.end();
        // The first answer counts.
        r.respond(http_response());
      });
    });
  });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/later")));
  const http_answer_read a = c.read_answer();
  EXPECT_EQ(a.status, 200) << a.head;
  EXPECT_TRUE(a.chunked);
  EXPECT_EQ(a.body, "ab");
  ASSERT_TRUE(wait_until([&] { return closes.load() == 1; }));
  for (auto& t : threads) t.join();
}

TEST_F(http_stream_test, NoConnectionTimerKillsAStream) {
  stream_box box;
  auto options = stream_options();
  options.handshake_timeout = 100ms;
  options.idle_timeout = 100ms;
  options.ping_interval = 50ms;
  options.pong_timeout = 50ms;
  options.http_idle_timeout = 100ms;
  running_server srv(options, [&](server& s) { add_stream_route(s, box); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/stream")));
  ASSERT_EQ(c.read_head().status, 200);
  EXPECT_TRUE(c.silent_for(400ms)) << "no ping, no close";
  ASSERT_TRUE(box.get().write("still here"));
  EXPECT_EQ(c.read_chunk(), "still here");
  EXPECT_EQ(box.closes.load(), 0);
}

TEST_F(http_stream_test, ADefaultHandleWritesNowhere) {
  const http_stream s;
  EXPECT_FALSE(s.write("x"));
  EXPECT_FALSE(s.is_open());
  EXPECT_EQ(s.queued(), 0u);
  s.end();
}

TEST_F(http_stream_test, AddHeaderRefusesTheFramingFields) {
  http_response r;
  EXPECT_FALSE(r.add_header("Transfer-Encoding", "chunked"));
  EXPECT_FALSE(r.add_header("content-length", "3"));
  EXPECT_FALSE(r.add_header("Connection", "keep-alive"));
  EXPECT_TRUE(r.add_header("X-Accel-Buffering", "no"));
}

// An independent HTTP client decodes the chunked stream: python's http.client.
TEST_F(http_stream_test, PythonHttpClientReadsTheStream) {
  stream_box box;
  running_server srv(stream_options(), [&](server& s) { add_stream_route(s, box); });
  std::thread writer([&] {
    if (!wait_until([&] { return box.started.load(); })) return;
    const http_stream s = box.get();
    for (int i = 0; i < 20; ++i) s.write(numbered("data: ", i) + "\n\n");
    s.end();
  });
  const std::string script =
      "import http.client,sys\n"
      "c=http.client.HTTPConnection('127.0.0.1'," +
      std::to_string(srv.port()) +
      ",timeout=5)\n"
      "c.request('GET','/stream')\n"
      "r=c.getresponse()\n"
      "sys.stdout.write(str(r.status)+' '+str(r.chunked)+'\\n'+r.read().decode())\n"
      "c.request('GET','/nothing')\n"  // the same connection serves the next request
      "r=c.getresponse(); r.read(); sys.stdout.write('\\nnext '+str(r.status))\n";
  const std::string command = "/usr/bin/python3 -c \"$SB_SCRIPT\"";
  ::setenv("SB_SCRIPT", script.c_str(), 1);
  FILE* p = ::popen(command.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  const int status = ::pclose(p);
  writer.join();
  std::string expected = "200 True\n";
  for (int i = 0; i < 20; ++i) expected.append(numbered("data: ", i)).append("\n\n");
  expected.append("\nnext 404");
  EXPECT_EQ(status, 0) << out;
  EXPECT_EQ(out, expected);
}

}  // namespace
}  // namespace switchboard::server::test
