// event_stream_test.cpp — event-stream connections (http_response::
// open_event_stream): a GET turned into a long-lived connection of the
// server. The head (the handler's status and headers, chunked), sends and
// server::send() as one chunk each, topic publications as one chunk each
// beside WebSocket subscribers of the same topic (with `after`), close() as
// the last chunk and on_close with its code, client bytes ending the stream,
// the peer going away (1006), heartbeats, the requests that cannot become
// one (HEAD, HTTP/1.0, pipelined), the slow-consumer cap and graceful
// shutdown.
#include <atomic>
#include <mutex>
#include <thread>
#include <string>
#include <vector>

#include <switchboard/server/endpoint.hpp>
#include <switchboard/server/http.hpp>

#include "http_client.hpp"
#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

class event_stream_test : public server_test {};

// The user data of the test endpoint: a marker the handler sets.
struct stream_data {
  int tag = 0;
};

// What the endpoint's callbacks saw, for the test thread.
struct observed {
  std::mutex mutex;
  std::vector<connection_id> opened;
  std::vector<std::uint16_t> close_codes;
  std::vector<int> tags_at_open;
  std::atomic<int> refused{0};

  std::vector<connection_id> ids() {
    std::lock_guard lock(mutex);
    return opened;
  }
  std::vector<std::uint16_t> codes() {
    std::lock_guard lock(mutex);
    return close_codes;
  }
};

struct setup_options {
  std::string topic;                       // subscribed at open (empty: none)
  std::uint64_t after = 0;                 // the subscription's `after`
  std::chrono::milliseconds heartbeat{0};  // event_stream_heartbeat
  std::string greeting;                    // sent at open (empty: nothing)
  std::string comment;                     // event_stream_comment
};

// GET /events: an event stream of an endpoint that records into `seen`;
// a refused request is answered 409. Also a /ws WebSocket endpoint that
// subscribes `o.topic`.
void add_event_stream(server& s, observed& seen, const setup_options& o) {
  ws_behavior b;
  b.with_user_data<stream_data>();
  b.event_stream_heartbeat = o.heartbeat;
  b.on_open = [&seen, o](websocket& ws) {
    {
      std::lock_guard lock(seen.mutex);
      seen.opened.push_back(ws.id());
      seen.tags_at_open.push_back(ws.data<stream_data>().tag);
    }
    EXPECT_TRUE(ws.event_stream());
    if (!o.greeting.empty()) {
      EXPECT_NE(ws.send(o.greeting), send_status::dropped);
    }
    if (!o.topic.empty()) {
      EXPECT_TRUE(ws.subscribe(o.topic, o.after));
    }
  };
  b.event_stream_comment = o.comment;
  b.on_closing = [](websocket& ws, std::uint16_t code, std::string_view reason) {
    std::string last = numbered("event: close\ndata: ", code);
    last.push_back(' ');
    last.append(reason);
    last.append("\n\n");
    ws.send(last);
  };
  b.on_close = [&seen](websocket&, std::uint16_t code, std::string_view) {
    std::lock_guard lock(seen.mutex);
    seen.close_codes.push_back(code);
  };
  const ws_behavior& endpoint = s.event_stream_endpoint(std::move(b));
  s.http("GET", "/events", [&endpoint, &seen](const http_request&, http_response& res) {
    res.set_content_type("text/event-stream");
    res.add_header("Cache-Control", "no-cache");
    websocket* ws = res.open_event_stream(endpoint);
    if (ws == nullptr) {
      ++seen.refused;
      res.set_status(409);
      res.set_body("not an event stream");
      return;
    }
    ws->data<stream_data>().tag = 7;
  });
  ws_behavior w;
  w.on_open = [o](websocket& ws) {
    if (!o.topic.empty()) ws.subscribe(o.topic, o.after);
  };
  s.ws("/ws", std::move(w));
}

// Reads chunks until `n` arrived (nullopt: cut short).
std::optional<std::vector<std::string>> read_chunks(http_client& c, std::size_t n) {
  std::vector<std::string> out;
  while (out.size() < n) {
    auto chunk = c.read_chunk();
    if (!chunk || chunk->empty()) return std::nullopt;
    out.push_back(std::move(*chunk));
  }
  return out;
}

TEST_F(event_stream_test, TheHeadIsTheHandlersAndSendsAreChunks) {
  observed seen;
  setup_options o;
  o.greeting = "retry: 10\n\n";
  running_server srv(test_options(), [&](server& s) { add_event_stream(s, seen, o); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/events")));
  const http_answer_read head = c.read_head();
  EXPECT_EQ(head.status, 200) << head.head;
  EXPECT_TRUE(head.chunked) << head.head;
  EXPECT_EQ(head.header("Content-Type"), "text/event-stream");
  EXPECT_EQ(head.header("Cache-Control"), "no-cache");
  EXPECT_EQ(head.header("Content-Length"), std::nullopt);
  EXPECT_EQ(c.read_chunk(), "retry: 10\n\n");
  ASSERT_EQ(seen.ids().size(), 1u);
  EXPECT_EQ(seen.tags_at_open[0], 7) << "the handler's user data reaches on_open";
  EXPECT_EQ(srv.get().connections(), 1u) << "an event stream counts as a connection";
  // From another thread, as for a WebSocket.
  srv.get().send(seen.ids()[0], "data: one\n\n", protocol::opcode::text);
  srv.get().send(seen.ids()[0], "data: two\n\n", protocol::opcode::text);
  EXPECT_EQ(c.read_chunk(), "data: one\n\n");
  EXPECT_EQ(c.read_chunk(), "data: two\n\n");
  EXPECT_TRUE(seen.codes().empty());
}

TEST_F(event_stream_test, PublicationsReachEventStreamsAsChunksBesideWebSockets) {
  observed seen;
  setup_options o;
  o.topic = "news";
  running_server srv(test_options(), [&](server& s) { add_event_stream(s, seen, o); });
  std::vector<std::unique_ptr<http_client>> streams;
  for (int i = 0; i < 3; ++i) {
    streams.push_back(std::make_unique<http_client>(srv.port()));
    ASSERT_TRUE(streams.back()->send(http_request_text("GET", "/events")));
    ASSERT_EQ(streams.back()->read_head().status, 200);
  }
  ws_client ws(srv.port());
  ASSERT_EQ(ws.upgrade("/ws"), 101);
  ASSERT_TRUE(wait_until([&] { return seen.ids().size() == 3; }));
  std::this_thread::sleep_for(20ms);  // the WebSocket's subscribe ran on its loop
  std::vector<std::string> sent;
  for (int i = 0; i < 40; ++i) sent.push_back(numbered("data: ", i) + "\n\n");
  sent.push_back(std::string(100 * 1024, 'L'));  // written at once, not staged
  for (const auto& m : sent) srv.get().publish("news", m, protocol::opcode::text);
  for (auto& c : streams) {
    const auto got = read_chunks(*c, sent.size());
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, sent);
  }
  for (const auto& m : sent) {
    const received r = ws.next();
    ASSERT_EQ(r.kind, protocol::event_kind::message);
    EXPECT_EQ(r.payload, m) << "the WebSocket form is unchanged";
  }
  // An empty publication is no chunk (it would end the body).
  srv.get().publish("news", "", protocol::opcode::text);
  srv.get().publish("news", "after", protocol::opcode::text);
  EXPECT_EQ(streams[0]->read_chunk(), "after");
}

TEST_F(event_stream_test, AfterFiltersSequencedPublications) {
  observed seen;
  setup_options o;
  o.topic = "seq";
  o.after = 5;
  running_server srv(test_options(), [&](server& s) { add_event_stream(s, seen, o); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/events")));
  ASSERT_EQ(c.read_head().status, 200);
  ASSERT_TRUE(wait_until([&] { return seen.ids().size() == 1; }));
  for (std::uint64_t s = 4; s <= 7; ++s) {
    srv.get().publish("seq", numbered("p", static_cast<long>(s)), protocol::opcode::text, s);
  }
  EXPECT_EQ(c.read_chunk(), "p6");
  EXPECT_EQ(c.read_chunk(), "p7");
}

TEST_F(event_stream_test, CloseEndsTheBodyAfterWhatIsQueuedAndRunsOnCloseWithItsCode) {
  observed seen;
  setup_options o;
  running_server srv(test_options(), [&](server& s) { add_event_stream(s, seen, o); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/events")));
  ASSERT_EQ(c.read_head().status, 200);
  ASSERT_TRUE(wait_until([&] { return seen.ids().size() == 1; }));
  srv.get().send(seen.ids()[0], "data: bye\n\n", protocol::opcode::text);
  srv.get().close(seen.ids()[0], 4000, "done");
  EXPECT_EQ(c.read_chunk(), "data: bye\n\n");
  EXPECT_EQ(c.read_chunk(), "event: close\ndata: 4000 done\n\n") << "on_closing's final event";
  EXPECT_EQ(c.read_chunk(), "") << "the last chunk";
  EXPECT_TRUE(c.wait_closed());
  c.close();
  ASSERT_TRUE(wait_until([&] { return seen.codes().size() == 1; }));
  EXPECT_EQ(seen.codes()[0], 4000);
  EXPECT_TRUE(wait_until([&] { return srv.get().connections() == 0; }));
}

TEST_F(event_stream_test, BytesFromTheClientEndTheStreamCleanly) {
  observed seen;
  setup_options o;
  running_server srv(test_options(), [&](server& s) { add_event_stream(s, seen, o); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/events")));
  ASSERT_EQ(c.read_head().status, 200);
  ASSERT_TRUE(wait_until([&] { return seen.ids().size() == 1; }));
  ASSERT_TRUE(c.send(http_request_text("GET", "/events")));
  EXPECT_EQ(c.read_chunk(), "event: close\ndata: 1000 \n\n");
  EXPECT_EQ(c.read_chunk(), "") << "the last chunk; the request behind is not served";
  EXPECT_TRUE(c.wait_closed());
  c.close();
  ASSERT_TRUE(wait_until([&] { return seen.codes().size() == 1; }));
  EXPECT_EQ(seen.codes()[0], 1000);
  EXPECT_EQ(seen.ids().size(), 1u);
}

TEST_F(event_stream_test, APeerThatGoesAwayGives1006) {
  observed seen;
  setup_options o;
  o.topic = "t";
  running_server srv(test_options(), [&](server& s) { add_event_stream(s, seen, o); });
  {
    http_client c(srv.port());
    ASSERT_TRUE(c.send(http_request_text("GET", "/events")));
    ASSERT_EQ(c.read_head().status, 200);
    ASSERT_TRUE(wait_until([&] { return seen.ids().size() == 1; }));
  }
  ASSERT_TRUE(wait_until([&] { return seen.codes().size() == 1; }));
  EXPECT_EQ(seen.codes()[0], 1006);
  EXPECT_TRUE(wait_until([&] { return srv.get().connections() == 0; }));
  EXPECT_EQ(srv.get().publish("t", "x"), 1u) << "publishing to a topic nobody holds is harmless";
}

TEST_F(event_stream_test, AQuietStreamGetsHeartbeatComments) {
  observed seen;
  setup_options o;
  o.heartbeat = 30ms;
  running_server srv(test_options(), [&](server& s) { add_event_stream(s, seen, o); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/events")));
  ASSERT_EQ(c.read_head().status, 200);
  EXPECT_EQ(c.read_chunk(), ":\n\n");
  EXPECT_EQ(c.read_chunk(), ":\n\n");
  EXPECT_TRUE(seen.codes().empty());
}

TEST_F(event_stream_test, WritesPostponeTheHeartbeat) {
  observed seen;
  setup_options o;
  o.heartbeat = 400ms;
  running_server srv(test_options(), [&](server& s) { add_event_stream(s, seen, o); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/events")));
  ASSERT_EQ(c.read_head().status, 200);
  ASSERT_TRUE(wait_until([&] { return seen.ids().size() == 1; }));
  // Writes every 20 ms for 600 ms: never 400 ms of silence, so no comment.
  std::vector<std::string> sent;
  for (int i = 0; i < 30; ++i) {
    sent.push_back(numbered("data: ", i) + "\n\n");
    srv.get().send(seen.ids()[0], sent.back(), protocol::opcode::text);
    std::this_thread::sleep_for(20ms);
  }
  const auto got = read_chunks(c, sent.size());
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(*got, sent);
  EXPECT_EQ(c.read_chunk(), ":\n\n") << "then silence: the heartbeat";
}

TEST_F(event_stream_test, TheHeartbeatCommentIsTheEndpoints) {
  observed seen;
  setup_options o;
  o.heartbeat = 20ms;
  o.comment = " hb";
  running_server srv(test_options(), [&](server& s) { add_event_stream(s, seen, o); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/events")));
  ASSERT_EQ(c.read_head().status, 200);
  EXPECT_EQ(c.read_chunk(), ": hb\n\n");
}

TEST_F(event_stream_test, RequestsThatCannotBecomeOneAreAnsweredAsUsual) {
  observed seen;
  setup_options o;
  auto options = test_options();
  options.max_http_requests = 100;
  running_server srv(options, [&](server& s) { add_event_stream(s, seen, o); });
  {
    http_client c(srv.port());  // HEAD: no body to stream
    ASSERT_TRUE(c.send(http_request_text("HEAD", "/events")));
    EXPECT_EQ(c.read_answer(true).status, 409);
  }
  {
    http_client c(srv.port());  // HTTP/1.0: no chunked coding
    ASSERT_TRUE(c.send(http_request_text("GET", "/events", {}, {}, "HTTP/1.0")));
    EXPECT_EQ(c.read_answer().status, 409);
  }
  {
    http_client c(srv.port());  // a request pipelined behind it
    ASSERT_TRUE(c.send(http_request_text("GET", "/events") + http_request_text("GET", "/events")));
    EXPECT_EQ(c.read_answer().status, 409);
    // The second one is alone on the connection by the time it is read.
    EXPECT_EQ(c.read_head().status, 200);
  }
  EXPECT_EQ(seen.refused.load(), 3);
  EXPECT_TRUE(wait_until([&] { return seen.ids().size() == 1; }));
}

TEST_F(event_stream_test, MaxConnectionsCountsEventStreams) {
  observed seen;
  setup_options o;
  auto options = test_options();
  options.max_connections = 1;
  running_server srv(options, [&](server& s) { add_event_stream(s, seen, o); });
  http_client a(srv.port());
  ASSERT_TRUE(a.send(http_request_text("GET", "/events")));
  ASSERT_EQ(a.read_head().status, 200);
  http_client b(srv.port());
  ASSERT_TRUE(b.send(http_request_text("GET", "/events")));
  EXPECT_EQ(b.read_answer().status, 409);
  ws_client ws(srv.port());
  EXPECT_EQ(ws.upgrade("/ws"), 503);
}

TEST_F(event_stream_test, ASlowReaderIsClosedAtTheBackpressureCap) {
  observed seen;
  setup_options o;
  o.topic = "flood";
  auto options = test_options();
  options.max_backpressure = 64 * 1024;
  running_server srv(options, [&](server& s) { add_event_stream(s, seen, o); });
  http_client c(srv.port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/events")));  // and never read
  ASSERT_TRUE(wait_until([&] { return seen.ids().size() == 1; }));
  const std::string piece(8 * 1024, 'x');
  for (int i = 0; i < 2000 && seen.codes().empty(); ++i) {
    srv.get().publish("flood", piece, protocol::opcode::text);
    if (i % 16 == 0) std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(wait_until([&] { return seen.codes().size() == 1; }));
  EXPECT_EQ(seen.codes()[0], 1008);
  EXPECT_GE(srv.get().statistics().backpressure_drops, 1u);
}

TEST_F(event_stream_test, GracefulShutdownEndsTheBodyAndRunsOnClose) {
  observed seen;
  setup_options o;
  auto srv = std::make_unique<running_server>(test_options(),
                                              [&](server& s) { add_event_stream(s, seen, o); });
  http_client c(srv->port());
  ASSERT_TRUE(c.send(http_request_text("GET", "/events")));
  ASSERT_EQ(c.read_head().status, 200);
  ASSERT_TRUE(wait_until([&] { return seen.ids().size() == 1; }));
  srv->get().shutdown();
  EXPECT_EQ(c.read_chunk(), numbered("event: close\ndata: ", protocol::to_underlying(
                                                                 srv->get().options().shutdown_code)) +
                                " server shutting down\n\n");
  EXPECT_EQ(c.read_chunk(), "");
  EXPECT_TRUE(c.wait_closed());
  c.close();
  EXPECT_EQ(srv->get().wait(), std::error_code());
  ASSERT_EQ(seen.codes().size(), 1u);
  EXPECT_EQ(seen.codes()[0], protocol::to_underlying(srv->get().options().shutdown_code));
}

}  // namespace
}  // namespace switchboard::server::test
