// http_api.cpp — POST /api/publish, GET /api/channels (see http_api.hpp).
//
// The handlers answer from the broker's completion: at once when it
// completes before returning (the memory broker), otherwise later through
// a deferred response (http_response::defer()) from the broker's thread.
#include "http_api.hpp"

#include <openssl/crypto.h>
#include <simdjson.h>

#include <algorithm>
#include <memory>
#include <mutex>

#include "json.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

namespace {

void json_error(server::http_response& res, int status, std::string_view message) {
  res.set_status(status);
  res.set_content_type("application/json");
  res.set_body(http_error_body(status, message));
}

// Where a broker completion answers: `res` itself while the handler runs
// (the broker completed before returning), else a deferred response.
class answer {
 public:
  explicit answer(server::http_response& res) : res_(&res) {}
  // Call after starting the broker call: from now on completions defer.
  void handler_returns() {
    std::lock_guard lock(mutex_);
    if (!done_) responder_ = res_->defer();
    res_ = nullptr;
  }
  template <class F>
  void fill(F&& f) {
    std::lock_guard lock(mutex_);
    done_ = true;
    if (res_) {
      f(*res_);
      return;
    }
    server::http_response out;
    f(out);
    responder_.respond(std::move(out));
  }

 private:
  std::mutex mutex_;
  server::http_response* res_;
  server::http_responder responder_;
  bool done_ = false;
};

}  // namespace

http_api::http_api(const realtime_config& config, hub& h, const sessions& s)
    : config_(config), hub_(h), sessions_(s) {}

void http_api::install(server::server& srv, counter_family& errors) {
  srv.http("POST", "/api/publish",
           [this, &errors](const server::http_request& req, server::http_response& res) {
             publish(req, res);
             if (res.status() >= 400) errors.with(std::to_string(res.status())).inc();
           });
  srv.http("GET", "/api/channels",
           [this, &errors](const server::http_request& req, server::http_response& res) {
             channels(req, res);
             if (res.status() >= 400) errors.with(std::to_string(res.status())).inc();
           });
}

bool http_api::check_api_key(const server::http_request& req, server::http_response& res) const {
  if (config_.api_key.empty()) {
    json_error(res, 403, "the HTTP API is off: no api.key configured");
    return false;
  }
  const auto key = req.header("X-API-Key");
  // Constant time: the comparison must not tell an attacker how much of a guess was right.
  if (!key || key->size() != config_.api_key.size() ||
      CRYPTO_memcmp(key->data(), config_.api_key.data(), key->size()) != 0) {
    json_error(res, 401, key ? "bad API key" : "missing X-API-Key");
    return false;
  }
  return true;
}

void http_api::publish(const server::http_request& req, server::http_response& res) {
  if (!check_api_key(req, res)) return;
  thread_local simdjson::dom::parser parser;
  const std::string_view body = req.body();
  simdjson::dom::element root;
  simdjson::dom::object obj;
  if (parser.parse(body.data(), body.size()).get(root) || root.get(obj)) {
    json_error(res, 400, "the body must be a JSON object");
    return;
  }
  if (auto key = find_duplicate_key(obj)) {
    json_error(res, 400, make_failure(errors::duplicate_key, *key).message);
    return;
  }
  command c;
  read_command_fields(obj, c);
  std::string_view name;
  const namespace_options* ns = nullptr;
  if (auto f = sessions_.check_channel(nullptr, c, name, ns)) {
    json_error(res, f->code, f->message);
    return;
  }
  if (!c.has_data) {
    json_error(res, 400, "no data");
    return;
  }
  auto a = std::make_shared<answer>(res);
  hub_.publish(name, *ns, c.data, {}, {}, [a](publish_result r) {
    a->fill([&](server::http_response& out) {
      if (r.error) {
        json_error(out, r.error->code, r.error->message);
        return;
      }
      std::string result;
      append_publish_result(result, r.epoch, r.offset);
      out.set_content_type("application/json");
      out.set_body(std::move(result));
    });
  });
  a->handler_returns();
}

void http_api::channels(const server::http_request& req, server::http_response& res) {
  if (!check_api_key(req, res)) return;
  auto a = std::make_shared<answer>(res);
  hub_.backend().channels([this, a](broker::channels_result r) {
    a->fill([&](server::http_response& out) { list_channels(r, out); });
  });
  a->handler_returns();
}

void http_api::list_channels(broker::channels_result& r, server::http_response& res) const {
  if (r.error) {
    json_error(res, r.error->code, r.error->message);
    return;
  }
  std::string body = channels_json(r.channels, hub_);
  res.set_content_type("application/json");
  res.set_body(std::move(body));
}

std::string channels_json(std::vector<channel_info>& channels, hub& h) {
  std::sort(channels.begin(), channels.end(),
            [](const channel_info& a, const channel_info& b) { return a.name < b.name; });
  std::string body = "{\"channels\":[";
  bool first = true;
  for (const channel_info& ch : channels) {
    if (!first) body.push_back(',');
    first = false;
    body.append("{\"channel\":");
    append_json_string(body, ch.name);
    body.append(",\"subscribers\":");
    append_uint(body, h.subscribers(ch.name));
    body.append(",\"epoch\":");
    append_json_string(body, ch.epoch);
    body.append(",\"offset\":");
    append_uint(body, ch.offset);
    body.push_back('}');
  }
  body.append("]}");
  return body;
}

}  // namespace switchboard::realtime::detail
