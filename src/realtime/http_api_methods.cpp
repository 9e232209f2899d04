// http_api_methods.cpp — the server API's methods (see http_api_methods.hpp).
//
// A method reads every parameter it needs before it starts a broker call:
// the parsed body lives in a thread_local parser that the next request on
// this thread reuses, while the completion may come later from another
// thread. A batch keeps its commands as text and runs them one after the
// other, each parsed when its turn comes.
#include "http_api_methods.hpp"

#include <openssl/crypto.h>
#include <simdjson.h>

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <set>
#include <vector>

#include "channel.hpp"
#include "http_api.hpp"
#include "json.hpp"
#include "wire.hpp"

namespace switchboard::realtime::detail {

namespace {

api_reply fail(const failure& f) {
  return api_reply{f.code, {}, f.message};
}
api_reply fail(const error_def& e, std::string_view detail = {}) {
  return fail(make_failure(e, detail));
}
api_reply ok(std::string result) {
  return api_reply{200, std::move(result), {}};
}

// A parameter outside the method's list is refused: a misspelt optional one
// ("chanel", "limt") would otherwise be ignored without a word.
std::optional<failure> check_keys(simdjson::dom::object p,
                                  std::initializer_list<std::string_view> allowed) {
  for (const auto field : p) {
    if (std::find(allowed.begin(), allowed.end(), field.key) == allowed.end()) {
      std::string detail = "unknown parameter: ";
      detail.append(field.key);
      return make_failure(errors::bad_param, detail);
    }
  }
  if (auto key = find_duplicate_key(p)) return make_failure(errors::duplicate_key, *key);
  return std::nullopt;
}

failure bad(std::string_view field, std::string_view what) {
  std::string detail(field);
  detail.append(what);
  return make_failure(errors::bad_param, detail);
}

// `key` as a string: nullopt and `out` set, or the 400 naming it. Absent and
// not `required`: nullopt, `out` untouched.
std::optional<failure> get_string(simdjson::dom::object p, std::string_view key,
                                  std::string_view& out, bool required) {
  simdjson::dom::element e;
  if (p[key].get(e)) {
    if (required) return bad(key, " is required");
    return std::nullopt;
  }
  if (e.get(out)) return bad(key, " must be a string");
  return std::nullopt;
}

// The "channel" parameter: present, a string, valid, in a namespace.
std::optional<failure> get_channel(const sessions& s, simdjson::dom::object p,
                                   std::string_view& name, const namespace_options*& ns) {
  std::string_view channel;
  if (auto f = get_string(p, "channel", channel, true)) return f;
  command c;
  c.has_channel = true;
  c.channel = channel;
  return s.check_channel(nullptr, c, name, ns);
}

// Who an action is for: "user", "client", or both (that client, if it is
// that user's). Appends ,"user":…,"client":… to the control message.
std::optional<failure> get_target(simdjson::dom::object p, std::string& message) {
  std::string_view user, client;
  if (auto f = get_string(p, "user", user, false)) return f;
  if (auto f = get_string(p, "client", client, false)) return f;
  if (user.empty() && client.empty()) {
    return make_failure(errors::bad_param, "user or client is required (a non-empty string)");
  }
  if (!user.empty()) {
    message.append(",\"user\":");
    append_json_string(message, user);
  }
  if (!client.empty()) {
    message.append(",\"client\":");
    append_json_string(message, client);
  }
  return std::nullopt;
}

// Glob: '*' any run of characters, '?' one character; the rest literal.
bool glob_match(std::string_view pattern, std::string_view text) {
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

void append_error_object(std::string& out, int code, std::string_view message) {
  out.append("{\"code\":");
  append_uint(out, static_cast<std::uint64_t>(code));
  out.append(",\"message\":");
  append_json_string(out, message);
  out.push_back('}');
}

// Where a completion answers an HTTP request: `res` itself while the
// handler runs, else a deferred response (as in http_api.cpp).
class answer {
 public:
  explicit answer(server::http_response& res) : res_(&res) {}
  void handler_returns() {
    std::lock_guard lock(mutex_);
    if (!done_) responder_ = res_->defer();
    res_ = nullptr;
  }
  void fill(const api_reply& r) {
    std::lock_guard lock(mutex_);
    done_ = true;
    if (res_) {
      write(*res_, r);
      return;
    }
    server::http_response out;
    write(out, r);
    responder_.respond(std::move(out));
  }

 private:
  static void write(server::http_response& res, const api_reply& r) {
    res.set_status(r.status);
    res.set_content_type("application/json");
    res.set_body(r.status == 200 ? r.result : http_error_body(r.status, r.message));
  }
  std::mutex mutex_;
  server::http_response* res_;
  server::http_responder responder_;
  bool done_ = false;
};

constexpr std::string_view k_methods[] = {
    "publish",  "broadcast",      "batch",   "subscribe",      "unsubscribe", "disconnect",
    "presence", "presence_stats", "history", "history_remove", "channels",    "info"};

}  // namespace

api_methods::api_methods(hub& h, sessions& s, std::string node_id, node_stats stats)
    : hub_(h), sessions_(s), node_id_(std::move(node_id)), stats_(std::move(stats)) {}

void api_methods::install(server::server& srv, const http_api& api, counter_family& errors) {
  // One handler for both shapes: `method` empty means POST /api, whose body
  // names the method.
  auto route = [this, &api, &errors](std::string method) {
    return
        [this, &api, &errors, method](const server::http_request& req, server::http_response& res) {
          auto a = std::make_shared<answer>(res);
          auto finish = [a, &errors](api_reply r) {
            if (r.status >= 400) errors.with(std::to_string(r.status)).inc();
            a->fill(r);
          };
          if (!api.check_api_key(req, res)) {
            errors.with(std::to_string(res.status())).inc();
            return;
          }
          if (!method.empty()) {
            call(method, req.body(), std::move(finish));
            a->handler_returns();
            return;
          }
          thread_local simdjson::dom::parser parser;
          simdjson::dom::object obj;
          const std::string_view body = req.body();
          if (parser.parse(body.data(), body.size()).get(obj)) {
            finish(fail(errors::bad_param, "the body must be a JSON object"));
            return;
          }
          std::string_view name;
          simdjson::dom::element params;
          std::string params_text = "{}";
          if (auto f = check_keys(obj, {"method", "params"})) {
            finish(fail(*f));
            return;
          }
          if (auto f = get_string(obj, "method", name, true)) {
            finish(fail(*f));
            return;
          }
          if (!obj["params"].get(params)) {
            if (!params.is_object()) {
              finish(fail(errors::bad_param, "params must be an object"));
              return;
            }
            params_text = simdjson::minify(params);
          }
          // Copied: call() parses again with the same thread's parser.
          const std::string m(name);
          call(m, params_text, std::move(finish));
          a->handler_returns();
        };
  };
  srv.http("POST", "/api", route({}));
  for (const std::string_view m : k_methods) {
    if (m == "publish") continue;  // http_api's POST /api/publish
    std::string path = "/api/";
    path.append(m);
    srv.http("POST", path, route(std::string(m)));
  }
}

void api_methods::call(std::string_view method, std::string_view params, done_fn done) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::object p;
  if (parser.parse(params.data(), params.size()).get(p)) {
    done(fail(errors::bad_param, "the parameters must be a JSON object"));
    return;
  }
  if (method == "publish") return publish(p, std::move(done));
  if (method == "broadcast") return broadcast(p, std::move(done));
  if (method == "batch") return batch(p, std::move(done));
  if (method == "subscribe" || method == "unsubscribe" || method == "disconnect") {
    return control(method, p, std::move(done));
  }
  if (method == "presence") return presence(p, std::move(done));
  if (method == "presence_stats") return presence_stats(p, std::move(done));
  if (method == "history") return history(p, std::move(done));
  if (method == "history_remove") return history_remove(p, std::move(done));
  if (method == "channels") return channels(p, std::move(done));
  if (method == "info") return info(p, std::move(done));
  done(fail(errors::unknown_method, method));
}

// ---------------------------------------------------------------------------
// publish, broadcast

void api_methods::publish(simdjson::dom::object p, done_fn done) {
  if (auto f = check_keys(p, {"channel", "data"})) return done(fail(*f));
  std::string_view name;
  const namespace_options* ns = nullptr;
  if (auto f = get_channel(sessions_, p, name, ns)) return done(fail(*f));
  simdjson::dom::element data;
  if (p["data"].get(data)) return done(fail(errors::no_data));
  hub_.publish(name, *ns, simdjson::minify(data), {}, {},
               [done = std::move(done)](publish_result r) mutable {
                 if (r.error) return done(fail(*r.error));
                 std::string result;
                 append_publish_result(result, r.epoch, r.offset);
                 done(ok(std::move(result)));
               });
}

void api_methods::broadcast(simdjson::dom::object p, done_fn done) {
  if (auto f = check_keys(p, {"channels", "data"})) return done(fail(*f));
  simdjson::dom::array list;
  simdjson::dom::element e;
  if (p["channels"].get(e)) return done(fail(bad("channels", " is required")));
  if (e.get(list)) return done(fail(bad("channels", " must be an array of channel names")));
  if (list.size() == 0) return done(fail(bad("channels", " is empty")));
  if (list.size() > k_max_broadcast) return done(fail(bad("channels", " has over 1000 names")));
  simdjson::dom::element data;
  if (p["data"].get(data)) return done(fail(errors::no_data));
  // Every name is checked before anything is published: a broadcast with a
  // bad name publishes nothing.
  struct target {
    std::string name;
    const namespace_options* ns;
  };
  std::vector<target> targets;
  std::size_t i = 0;
  for (const simdjson::dom::element item : list) {
    std::string_view channel;
    const std::string field = "channels[" + std::to_string(i++) + "]";
    if (item.get(channel)) return done(fail(bad(field, " must be a string")));
    command c;
    c.has_channel = true;
    c.channel = channel;
    std::string_view name;
    const namespace_options* ns = nullptr;
    if (auto f = sessions_.check_channel(nullptr, c, name, ns)) {
      return done(api_reply{f->code, {}, field + ": " + f->message});
    }
    targets.push_back({std::string(name), ns});
  }
  struct gather {
    std::mutex mutex;
    std::vector<std::string> items;
    std::size_t pending;
    done_fn done;
  };
  auto g = std::make_shared<gather>();
  g->items.resize(targets.size());
  g->pending = targets.size();
  g->done = std::move(done);
  const std::string body = simdjson::minify(data);
  for (std::size_t k = 0; k < targets.size(); ++k) {
    hub_.publish(targets[k].name, *targets[k].ns, body, {}, {},
                 [g, k, channel = targets[k].name](publish_result r) {
                   std::string item = "{\"channel\":";
                   append_json_string(item, channel);
                   if (r.error) {
                     item.append(",\"error\":");
                     append_error_object(item, r.error->code, r.error->message);
                   } else {
                     item.append(",\"epoch\":");
                     append_json_string(item, r.epoch);
                     item.append(",\"offset\":");
                     append_uint(item, r.offset);
                   }
                   item.push_back('}');
                   std::unique_lock lock(g->mutex);
                   g->items[k] = std::move(item);
                   if (--g->pending != 0) return;
                   lock.unlock();
                   std::string result = "{\"responses\":[";
                   for (std::size_t j = 0; j < g->items.size(); ++j) {
                     if (j != 0) result.push_back(',');
                     result.append(g->items[j]);
                   }
                   result.append("]}");
                   g->done(ok(std::move(result)));
                 });
  }
}

// ---------------------------------------------------------------------------
// batch: in order, one at a time (a later command may depend on an earlier
// one: publish, then history). Completions that come before call() returns
// continue the loop rather than recursing, so a batch of 1000 commands on
// the memory broker uses one stack frame per command at most once.

namespace {

struct batch_run : std::enable_shared_from_this<batch_run> {
  api_methods* methods = nullptr;
  std::vector<std::pair<std::string, std::string>> commands;  // method, params text
  std::vector<std::string> replies;
  broker::completion<api_reply> done;
  std::mutex mutex;
  std::size_t next = 0;
  bool in_call = false;
  bool completed = false;

  void run() {
    for (;;) {
      std::size_t i;
      {
        std::lock_guard lock(mutex);
        if (next == commands.size()) break;
        i = next++;
        in_call = true;
        completed = false;
      }
      methods->call(commands[i].first, commands[i].second,
                    [self = shared_from_this(), i](api_reply r) { self->reply(i, std::move(r)); });
      std::lock_guard lock(mutex);
      in_call = false;
      if (!completed) return;  // reply() continues when it comes
    }
    std::string result = "{\"replies\":[";
    for (std::size_t j = 0; j < replies.size(); ++j) {
      if (j != 0) result.push_back(',');
      result.append(replies[j]);
    }
    result.append("]}");
    done(ok(std::move(result)));
  }

  void reply(std::size_t i, api_reply r) {
    std::string& out = replies[i];
    if (r.status == 200) {
      out.append("{\"result\":");
      out.append(r.result);
      out.push_back('}');
    } else {
      out.append("{\"error\":");
      append_error_object(out, r.status, r.message);
      out.push_back('}');
    }
    bool resume;
    {
      std::lock_guard lock(mutex);
      completed = true;
      resume = !in_call;
    }
    if (resume) run();
  }
};

}  // namespace

void api_methods::batch(simdjson::dom::object p, done_fn done) {
  if (auto f = check_keys(p, {"commands"})) return done(fail(*f));
  simdjson::dom::element e;
  simdjson::dom::array list;
  if (p["commands"].get(e)) return done(fail(bad("commands", " is required")));
  if (e.get(list)) return done(fail(bad("commands", " must be an array")));
  if (list.size() > k_max_batch) return done(fail(errors::batch_too_large));
  auto b = std::make_shared<batch_run>();
  b->methods = this;
  std::size_t i = 0;
  for (const simdjson::dom::element item : list) {
    const std::string field = "commands[" + std::to_string(i++) + "]";
    simdjson::dom::object cmd;
    if (item.get(cmd)) return done(fail(bad(field, " must be an object")));
    for (const auto kv : cmd) {
      if (kv.key != "method" && kv.key != "params") {
        return done(fail(bad(field, ": unknown key: " + std::string(kv.key))));
      }
    }
    std::string_view method;
    if (cmd["method"].get(method)) return done(fail(bad(field, ".method must be a string")));
    // Why: a batch inside a batch would let one request run without bound.
    if (method == "batch") return done(fail(bad(field, ": a batch cannot hold a batch")));
    simdjson::dom::element params;
    std::string text = "{}";
    if (!cmd["params"].get(params)) {
      if (!params.is_object()) return done(fail(bad(field, ".params must be an object")));
      text = simdjson::minify(params);
    }
    b->commands.emplace_back(std::string(method), std::move(text));
  }
  b->replies.resize(b->commands.size());
  b->done = std::move(done);
  b->run();
}

// ---------------------------------------------------------------------------
// subscribe, unsubscribe, disconnect: a control message to every node

void api_methods::control(std::string_view op, simdjson::dom::object p, done_fn done) {
  std::string message = "{\"op\":";
  append_json_string(message, op);
  if (op == "disconnect") {
    if (auto f = check_keys(p, {"user", "client", "code", "reason"})) return done(fail(*f));
    if (auto f = get_target(p, message)) return done(fail(*f));
    simdjson::dom::element e;
    std::uint64_t code = k_close_disconnected;
    if (!p["code"].get(e)) {
      // 1000 or an application's code: the ones a client may see from a
      // server that closes on purpose (RFC 6455 §7.4).
      if (e.get(code) || !(code == 1000 || (code >= 3000 && code <= 4999))) {
        return done(fail(bad("code", " must be 1000 or 3000-4999")));
      }
    }
    std::string_view reason;
    if (auto f = get_string(p, "reason", reason, false)) return done(fail(*f));
    // The close frame's payload is 125 bytes: 2 for the code.
    if (reason.size() > 123) return done(fail(bad("reason", " is over 123 bytes")));
    message.append(",\"code\":");
    append_uint(message, code);
    message.append(",\"reason\":");
    append_json_string(message, reason.empty() ? std::string_view("disconnected") : reason);
  } else {
    if (auto f = check_keys(p, {"user", "client", "channel"})) return done(fail(*f));
    if (auto f = get_target(p, message)) return done(fail(*f));
    std::string_view name;
    const namespace_options* ns = nullptr;
    if (auto f = get_channel(sessions_, p, name, ns)) return done(fail(*f));
    message.append(",\"channel\":");
    append_json_string(message, name);
  }
  message.push_back('}');
  hub_.backend().send_control(std::move(message),
                              [done = std::move(done)](std::optional<failure> f) mutable {
                                if (f) return done(fail(*f));
                                done(ok("{}"));
                              });
}

// ---------------------------------------------------------------------------
// presence, presence_stats

void api_methods::presence(simdjson::dom::object p, done_fn done) {
  if (auto f = check_keys(p, {"channel", "cursor", "limit"})) return done(fail(*f));
  std::string_view name;
  const namespace_options* ns = nullptr;
  if (auto f = get_channel(sessions_, p, name, ns)) return done(fail(*f));
  if (!ns->presence) return done(fail(errors::presence_off));
  command c;
  read_command_fields(p, c);
  if (c.limit_error) return done(fail(*c.limit_error));
  if (c.cursor_error) return done(fail(*c.cursor_error));
  // The API lists any channel in full, page by page (1000 entries a page at
  // most), whatever presence_max_members says for pushes.
  broker::presence_request request;
  request.cursor = c.cursor;
  request.limit = std::min<std::uint64_t>(c.limit.value_or(1000), 1000);
  hub_.backend().presence(
      name, std::move(request),
      [done = std::move(done), channel = std::string(name)](broker::presence_result r) mutable {
        if (r.error) return done(fail(*r.error));
        std::string result;
        append_presence_result(result, channel, r.count, r.listed ? &r.entries : nullptr, r.next);
        done(ok(std::move(result)));
      });
}

void api_methods::presence_stats(simdjson::dom::object p, done_fn done) {
  if (auto f = check_keys(p, {"channel"})) return done(fail(*f));
  std::string_view name;
  const namespace_options* ns = nullptr;
  if (auto f = get_channel(sessions_, p, name, ns)) return done(fail(*f));
  if (!ns->presence) return done(fail(errors::presence_off));
  hub_.backend().presence(
      name, broker::presence_request{},
      [done = std::move(done), channel = std::string(name)](broker::presence_result r) mutable {
        if (r.error) return done(fail(*r.error));
        // Distinct users: entries without a user are anonymous clients.
        std::set<std::string> users;
        std::string list = "[" + r.entries + "]";
        simdjson::dom::parser parser;
        simdjson::dom::array entries;
        if (!parser.parse(list).get(entries)) {
          for (const simdjson::dom::element entry : entries) {
            std::string_view user;
            if (!entry["user"].get(user)) users.emplace(user);
          }
        }
        std::string result = "{\"channel\":";
        append_json_string(result, channel);
        result.append(",\"clients\":");
        append_uint(result, r.count);
        result.append(",\"users\":");
        append_uint(result, users.size());
        result.push_back('}');
        done(ok(std::move(result)));
      });
}

// ---------------------------------------------------------------------------
// history, history_remove

void api_methods::history(simdjson::dom::object p, done_fn done) {
  if (auto f = check_keys(p, {"channel", "limit", "since"})) return done(fail(*f));
  std::string_view name;
  const namespace_options* ns = nullptr;
  if (auto f = get_channel(sessions_, p, name, ns)) return done(fail(*f));
  if (ns->history_size == 0) return done(fail(errors::history_off));
  command c;
  read_command_fields(p, c);
  if (c.since_error) return done(fail(*c.since_error));
  if (c.limit_error) return done(fail(*c.limit_error));
  read_request request;
  request.since = c.since;
  request.limit = ns->history_size;
  if (c.limit) request.limit = std::min<std::size_t>(request.limit, *c.limit);
  request.latest_when_lost = true;
  hub_.backend().read(name, *ns, std::move(request),
                      [done = std::move(done), channel = std::string(name)](read_result r) mutable {
                        if (r.error) return done(fail(*r.error));
                        std::string result = "{";
                        append_stream(result, channel, r.epoch, r.offset);
                        if (r.recovered) append_recovery(result, *r.recovered, r.reason);
                        result.append(",\"publications\":[");
                        result.append(r.publications);
                        result.append("]}");
                        done(ok(std::move(result)));
                      });
}

void api_methods::history_remove(simdjson::dom::object p, done_fn done) {
  if (auto f = check_keys(p, {"channel"})) return done(fail(*f));
  std::string_view name;
  const namespace_options* ns = nullptr;
  if (auto f = get_channel(sessions_, p, name, ns)) return done(fail(*f));
  hub_.backend().remove_history(name, [done = std::move(done)](std::optional<failure> f) mutable {
    if (f) return done(fail(*f));
    done(ok("{}"));
  });
}

// ---------------------------------------------------------------------------
// channels, info

void api_methods::channels(simdjson::dom::object p, done_fn done) {
  if (auto f = check_keys(p, {"pattern"})) return done(fail(*f));
  std::string_view pattern = "*";
  if (auto f = get_string(p, "pattern", pattern, false)) return done(fail(*f));
  if (pattern.size() > 2 * k_max_channel_name) {
    return done(fail(bad("pattern", " is longer than any channel name could match")));
  }
  hub_.backend().channels([this, done = std::move(done),
                           pattern = std::string(pattern)](broker::channels_result r) mutable {
    if (r.error) return done(fail(*r.error));
    std::erase_if(r.channels,
                  [&](const channel_info& ch) { return !glob_match(pattern, ch.name); });
    std::string result = channels_json(r.channels, hub_);
    done(ok(std::move(result)));
  });
}

void api_methods::info(simdjson::dom::object p, done_fn done) {
  if (auto f = check_keys(p, {})) return done(fail(*f));
  // Ours first, fresh: the list then has this node even in its first second.
  hub_.backend().publish_node(node_id_, stats_());
  hub_.backend().nodes([done = std::move(done)](broker::nodes_result r) mutable {
    if (r.error) return done(fail(*r.error));
    // Each object starts with {"node":"<id>": sorted by id.
    std::sort(r.nodes.begin(), r.nodes.end());
    std::string result = "{\"nodes\":[";
    for (std::size_t i = 0; i < r.nodes.size(); ++i) {
      if (i != 0) result.push_back(',');
      result.append(r.nodes[i]);
    }
    result.append("]}");
    done(ok(std::move(result)));
  });
}

}  // namespace switchboard::realtime::detail
