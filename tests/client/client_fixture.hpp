// client_fixture.hpp — a test fixture holding an event loop and one
// websocket_client whose callbacks are recorded, plus per-test hooks. The loop
// stops when the client reaches `closed` (or a test stops it); a watchdog
// bounds every run; the net tests' fixture checks for descriptor leaks.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../net/test_support.hpp"
#include "switchboard/client/websocket_client.hpp"

namespace switchboard::client::test {

using namespace std::chrono_literals;

struct received_message {
  std::string payload;
  protocol::opcode op;
};

class client_test : public net::test::net_test {
 protected:
  void TearDown() override {
    client_.reset();
    net::test::net_test::TearDown();
  }

  // Creates the client with callbacks that record into the members below and
  // then call the matching hook, if set.
  void make_client(client_options options = {}) {
    client_handlers h;
    h.on_open = [this](std::string_view sub) {
      subprotocol_ = std::string(sub);
      ++opens_;
      if (on_open_hook) on_open_hook();
    };
    h.on_message = [this](std::string_view payload, protocol::opcode op) {
      messages_.push_back({std::string(payload), op});
      if (on_message_hook) on_message_hook();
    };
    h.on_ping = [this](std::string_view p) { pings_.emplace_back(p); };
    h.on_pong = [this](std::string_view p) { pongs_.emplace_back(p); };
    h.on_close = [this](std::uint16_t code, std::string_view reason) {
      close_ = std::make_pair(code, std::string(reason));
    };
    h.on_error = [this](std::error_code e, std::string_view text) {
      errors_.push_back(e);
      error_texts_.emplace_back(text);
    };
    h.on_state = [this](const state_change& change) {
      states_.push_back(change);
      if (on_state_hook) on_state_hook(change);
      if (change.state == client_state::closed) loop_->stop();
    };
    client_ = std::make_unique<websocket_client>(*loop_, std::move(options), std::move(h));
  }

  // Runs the loop until the client is closed (or a hook stops it).
  [[nodiscard]] bool run(std::chrono::milliseconds limit = 10s) {
    return net::test::run_for_at_most(*loop_, limit);
  }

  // The sequence of states seen, e.g. {connecting, handshaking, open, closing, closed}.
  [[nodiscard]] std::vector<client_state> state_sequence() const {
    std::vector<client_state> out;
    for (const auto& s : states_) out.push_back(s.state);
    return out;
  }

  std::unique_ptr<net::event_loop> loop_ = net::test::make_loop();
  std::unique_ptr<websocket_client> client_;

  std::function<void()> on_open_hook;
  std::function<void()> on_message_hook;
  std::function<void(const state_change&)> on_state_hook;

  int opens_ = 0;
  std::string subprotocol_;
  std::vector<received_message> messages_;
  std::vector<std::string> pings_;
  std::vector<std::string> pongs_;
  std::optional<std::pair<std::uint16_t, std::string>> close_;
  std::vector<std::error_code> errors_;
  std::vector<std::string> error_texts_;
  std::vector<state_change> states_;
};

}  // namespace switchboard::client::test
