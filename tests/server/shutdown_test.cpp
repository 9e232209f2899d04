// shutdown_test.cpp — graceful shutdown: every client gets the shutdown close
// code, the server waits for their close frames (or the deadline), stops.
#include <future>
#include <memory>
#include <vector>

#include "server_test_support.hpp"

namespace switchboard::server::test {
namespace {

using protocol::event_kind;
using protocol::opcode;

class shutdown_test : public server_test {};

void check_graceful(protocol::close_code code) {
  auto options = test_options();
  options.threads = 2;
  options.shutdown_code = code;
  options.shutdown_timeout = 5s;
  running_server srv(options, add_echo);
  std::vector<std::unique_ptr<ws_client>> clients;
  for (int i = 0; i < 6; ++i) {
    clients.push_back(std::make_unique<ws_client>(srv.port()));
    ASSERT_EQ(clients.back()->upgrade(), 101);
  }
  const auto start = std::chrono::steady_clock::now();
  srv.get().shutdown();
  for (auto& c : clients) {
    received r = c->next();
    ASSERT_EQ(r.kind, event_kind::close);
    EXPECT_EQ(r.code, protocol::to_underlying(code));
    ASSERT_TRUE(c->send_close(r.code));
    EXPECT_TRUE(c->wait_closed());
  }
  EXPECT_FALSE(srv.get().wait());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s) << "run did not end before the deadline";
  // No longer accepting.
  ws_client late(srv.port(), 500ms);
  EXPECT_NE(late.upgrade(), 101);
}

TEST_F(shutdown_test, GracefulShutdownWith1001) { check_graceful(protocol::close_code::going_away); }

TEST_F(shutdown_test, GracefulShutdownWith1012) {
  check_graceful(protocol::close_code::service_restart);
}

TEST_F(shutdown_test, DeadlineDropsPeersThatNeverAnswer) {
  auto options = test_options();
  options.shutdown_timeout = 300ms;
  options.close_timeout = 10s;
  running_server srv(options, add_echo);
  ws_client c(srv.port());
  ASSERT_EQ(c.upgrade(), 101);
  const auto start = std::chrono::steady_clock::now();
  srv.get().shutdown();
  srv.get().shutdown();  // idempotent
  EXPECT_EQ(c.next().kind, event_kind::close);
  EXPECT_FALSE(srv.get().wait());
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 3s);
  EXPECT_TRUE(c.wait_closed());
}

TEST_F(shutdown_test, ShutdownWithNoConnectionsStopsAtOnce) {
  running_server srv(test_options(), add_echo);
  srv.get().shutdown();
  EXPECT_FALSE(srv.get().wait());
}

}  // namespace
}  // namespace switchboard::server::test
