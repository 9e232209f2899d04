// admin.cpp — the dashboard's routes, tickets and stats stream (see admin.hpp).
#include "admin.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <simdjson.h>

#include <algorithm>
#include <memory>
#include <switchboard/protocol/http_head.hpp>
#include <vector>

#include "assets.hpp"
#include "json.hpp"
#include "support.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

namespace {

// RFC 7617: "Basic " base64(user ":" password); the password after the first ':'.
std::optional<std::string> basic_password(std::string_view header) {
  constexpr std::string_view k_basic = "Basic ";
  if (header.size() <= k_basic.size() ||
      !protocol::ascii_iequals(header.substr(0, k_basic.size()), k_basic)) {
    return std::nullopt;
  }
  std::string_view b64 = header.substr(k_basic.size());
  // Why: a decoder bound keeps a hostile header from costing more than its size.
  if (b64.size() % 4 != 0 || b64.size() > 4096) return std::nullopt;
  std::string out(b64.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(b64.data()),
                                static_cast<int>(b64.size()));
  if (n < 0) return std::nullopt;
  std::size_t len = static_cast<std::size_t>(n);
  // EVP_DecodeBlock counts the padding's zero bytes too.
  if (b64.ends_with("==")) {
    len -= 2;
  } else if (b64.ends_with("=")) {
    len -= 1;
  }
  out.resize(len);
  const auto colon = out.find(':');
  if (colon == std::string::npos) return std::nullopt;
  return out.substr(colon + 1);
}

std::string_view query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    if (item.size() > name.size() && item.starts_with(name) && item[name.size()] == '=') {
      return item.substr(name.size() + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

}  // namespace

admin_console::admin_console(const realtime_config& config, hub& h, api_methods& methods)
    : config_(config), hub_(h), methods_(methods) {}

bool admin_console::authorized(const server::http_request& req, server::http_response& res) const {
  const std::string& expected =
      config_.admin_password.empty() ? config_.api_key : config_.admin_password;
  const auto header = req.header("Authorization");
  const auto given = header ? basic_password(*header) : std::nullopt;
  // Constant time: the comparison must not tell how much of a guess was right.
  if (given && !expected.empty() && given->size() == expected.size() &&
      CRYPTO_memcmp(given->data(), expected.data(), expected.size()) == 0) {
    return true;
  }
  res.set_status(401);
  res.add_header("WWW-Authenticate", "Basic realm=\"switchboard admin\", charset=\"UTF-8\"");
  res.set_content_type("application/json");
  res.set_body(http_error_body(
      401, header ? "bad admin password" : "the dashboard needs HTTP Basic authentication"));
  return false;
}

std::string admin_console::issue_ticket() {
  std::string ticket = random_hex(16);
  const std::uint64_t now = mono_ms();
  std::lock_guard lock(mutex_);
  std::erase_if(tickets_, [now](const auto& t) { return t.second <= now; });
  // Why: tickets are only made for the password's holder, but a loop of
  // them must not grow memory without bound either.
  if (tickets_.size() >= k_max_tickets) tickets_.erase(tickets_.begin());
  tickets_.emplace(ticket, now + k_ticket_ms);
  return ticket;
}

bool admin_console::redeem_ticket(std::string_view ticket) {
  std::lock_guard lock(mutex_);
  const auto it = tickets_.find(ticket);
  if (it == tickets_.end()) return false;
  const bool fresh = it->second > mono_ms();
  tickets_.erase(it);  // one use
  return fresh;
}

void admin_console::install(server::server& srv, counter_family& errors) {
  srv_ = &srv;
  auto guarded = [this, &errors](auto handler) {
    return [this, &errors, handler](const server::http_request& req, server::http_response& res) {
      if (!authorized(req, res)) {
        errors.with("401").inc();
        return;
      }
      handler(req, res);
      if (res.status() >= 400) errors.with(std::to_string(res.status())).inc();
    };
  };
  for (const asset& a : admin_assets()) {
    auto serve = [a](const server::http_request&, server::http_response& res) {
      res.set_content_type(content_type_of(a.path));
      res.add_header("Cache-Control", "no-cache");
      res.set_body(std::string(a.body));
    };
    srv.http("GET", std::string(a.path), guarded(serve));
    if (a.path == "/admin/index.html") {
      srv.http("GET", "/admin", guarded(serve));
      srv.http("GET", "/admin/", guarded(serve));
    }
  }
  srv.http("GET", "/admin/ticket",
           guarded([this](const server::http_request&, server::http_response& res) {
             std::string body = "{\"ticket\":";
             append_json_string(body, issue_ticket());
             body.push_back('}');
             res.set_content_type("application/json");
             res.add_header("Cache-Control", "no-store");
             res.set_body(std::move(body));
           }));
  constexpr std::string_view k_methods[] = {
      "publish",  "broadcast",      "batch",   "subscribe",      "unsubscribe", "disconnect",
      "presence", "presence_stats", "history", "history_remove", "channels",    "info"};
  for (const std::string_view m : k_methods) {
    std::string path = "/admin/api/";
    path.append(m);
    srv.http("POST", path,
             [this, &errors, method = std::string(m)](const server::http_request& req,
                                                      server::http_response& res) {
               if (!authorized(req, res)) {
                 errors.with("401").inc();
                 return;
               }
               // As http_api_methods.cpp's routes: answered at once or deferred.
               struct state {
                 std::mutex mutex;
                 server::http_response* res;
                 server::http_responder responder;
                 bool done = false;
               };
               auto st = std::make_shared<state>();
               st->res = &res;
               methods_.call(method, req.body(), [st, &errors](api_reply r) {
                 if (r.status >= 400) errors.with(std::to_string(r.status)).inc();
                 server::http_response out;
                 std::lock_guard lock(st->mutex);
                 st->done = true;
                 server::http_response& target = st->res ? *st->res : out;
                 target.set_status(r.status);
                 target.set_content_type("application/json");
                 target.set_body(r.status == 200 ? r.result : http_error_body(r.status, r.message));
                 if (!st->res) st->responder.respond(std::move(out));
               });
               std::lock_guard lock(st->mutex);
               if (!st->done) st->responder = res.defer();
               st->res = nullptr;
             });
  }

  server::ws_behavior b;
  b.on_upgrade = [this, &errors](server::upgrade_request& req) {
    if (!redeem_ticket(query_param(req.query(), "ticket"))) {
      errors.with("401").inc();
      req.reject(401, "a fresh ticket from GET /admin/ticket is needed");
      return;
    }
    req.accept();
  };
  b.on_open = [this](server::websocket& ws) {
    viewers_.fetch_add(1, std::memory_order_relaxed);
    ws.subscribe(k_topic);
  };
  b.on_message = [](server::websocket&, std::string_view, protocol::opcode) {};
  b.on_close = [this](server::websocket&, std::uint16_t, std::string_view) {
    viewers_.fetch_sub(1, std::memory_order_relaxed);
  };
  srv.ws("/admin/ws", std::move(b));
}

// Subscribers per channel over every node of `info` (each lists its most
// subscribed channels, top_channels): a channel outside every node's list is
// not in the result (the caller counts this node's own).
std::unordered_map<std::string, std::size_t> admin_console::cluster_subscribers(
    std::string_view info) {
  std::unordered_map<std::string, std::size_t> sums;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(info.data(), info.size()).get(doc)) return sums;
  simdjson::dom::array nodes;
  if (doc["nodes"].get_array().get(nodes)) return sums;
  for (simdjson::dom::element node : nodes) {
    simdjson::dom::array top;
    if (node["top_channels"].get_array().get(top)) continue;
    for (simdjson::dom::element entry : top) {
      std::string_view name;
      std::uint64_t n = 0;
      if (entry["channel"].get_string().get(name) || entry["subscribers"].get_uint64().get(n)) {
        continue;
      }
      sums[std::string(name)] += static_cast<std::size_t>(n);
    }
  }
  return sums;
}

void admin_console::tick() {
  if (viewers() == 0 || !srv_) return;
  // info (every node) first, then the channels; the frame goes out from the
  // last completion, wherever it runs.
  methods_.call("info", "{}", [this](api_reply info) {
    std::string nodes = info.status == 200 ? info.result : std::string("{\"nodes\":[]}");
    hub_.backend().channels([this, nodes = std::move(nodes)](broker::channels_result r) {
      struct row {
        const channel_info* ch;
        std::size_t subscribers;
      };
      const std::unordered_map<std::string, std::size_t> cluster = cluster_subscribers(nodes);
      std::vector<row> rows;
      rows.reserve(r.channels.size());
      for (const channel_info& ch : r.channels) {
        const auto it = cluster.find(ch.name);
        rows.push_back({&ch, it != cluster.end() ? it->second : hub_.subscribers(ch.name)});
      }
      const std::size_t n = std::min(rows.size(), k_stream_channels);
      std::partial_sort(rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(n), rows.end(),
                        [](const row& a, const row& b) {
                          return a.subscribers != b.subscribers ? a.subscribers > b.subscribers
                                                                : a.ch->offset > b.ch->offset;
                        });
      std::string frame = "{\"type\":\"stats\",\"time_ms\":";
      append_uint(frame, static_cast<std::uint64_t>(wall_ms()));
      frame.append(",\"info\":");
      frame.append(nodes);
      frame.append(",\"channels\":[");
      for (std::size_t i = 0; i < n; ++i) {
        if (i != 0) frame.push_back(',');
        frame.append("{\"channel\":");
        append_json_string(frame, rows[i].ch->name);
        frame.append(",\"subscribers\":");
        append_uint(frame, rows[i].subscribers);
        frame.append(",\"epoch\":");
        append_json_string(frame, rows[i].ch->epoch);
        frame.append(",\"offset\":");
        append_uint(frame, rows[i].ch->offset);
        frame.push_back('}');
      }
      frame.append("]}");
      srv_->publish(k_topic, frame, protocol::opcode::text);
    });
  });
}

}  // namespace switchboard::realtime::detail
