// client_subscriptions.cpp — realtime::client's subscriptions (recovery with
// `since`, duplicates dropped by offset) and requests (publish, presence,
// history, unsubscribe); see client_core.hpp.
#include <simdjson.h>

#include <utility>

#include "client_core.hpp"
#include "client_wire.hpp"

namespace switchboard::realtime::detail {

// --- subscriptions ------------------------------------------------------------------------

client_core::subscription* client_core::find(std::string_view channel) {
  const auto it = subs_.find(channel);
  return it == subs_.end() ? nullptr : &it->second;
}

void client_core::send_subscribe(subscription& sub) {
  ++sub.generation;
  sub.subscribed = false;
  if (!sub.want_history) {
    send_subscribe_command(sub);
    return;
  }
  // The latest kept publications first, then a subscribe `since` the
  // position they end at: the server fills anything published in between,
  // so there is no gap and no duplicate, without holding live pushes.
  std::string body = "\"cmd\":\"history\"," + channel_field(sub.channel);
  body.append(",\"limit\":");
  append_uint(body, sub.options.history);
  const std::uint64_t generation = sub.generation;
  const std::string channel = sub.channel;
  send_command(body,
               [this, channel, generation](const request_error* error, simdjson::dom::element r) {
                 subscription* s = find(channel);
                 if (!s || s->generation != generation) return;
                 if (error && error->code == k_error_no_reply)
                   return;  // retried after the reconnect
                 if (error && error->code != 405) {
                   end_subscription(channel, *error);
                   return;
                 }
                 s->want_history = false;
                 if (!error) {
                   const std::string epoch = string_field(r, "epoch");
                   simdjson::dom::array pubs;
                   // An empty history keeps no channel state on the server, so its epoch
                   // may not outlive this reply: subscribe afresh then.
                   if (!r["publications"].get(pubs) && pubs.size() > 0) {
                     s->has_position = true;
                     s->epoch = epoch;
                     s->offset = 0;
                     for (simdjson::dom::element p : pubs)
                       deliver(*s, read_publication(p, channel, epoch));
                     s->offset = uint_field(r, "offset");
                   }
                 }
                 send_subscribe_command(*s);
               });
}

void client_core::send_subscribe_command(subscription& sub) {
  std::string body = "\"cmd\":\"subscribe\"," + channel_field(sub.channel);
  const bool resumed = sub.has_position;
  if (resumed) append_since(body, stream_position{sub.epoch, sub.offset});
  const std::string channel = sub.channel;
  const std::uint64_t generation = sub.generation;
  send_command(body, [this, channel, generation, resumed](const request_error* error,
                                                          simdjson::dom::element r) {
    on_subscribe_reply(channel, generation, resumed, error, r);
  });
}

void client_core::on_subscribe_reply(const std::string& channel, std::uint64_t generation,
                                     bool resumed, const request_error* error,
                                     simdjson::dom::element result) {
  subscription* sub = find(channel);
  if (!sub || sub->generation != generation) return;
  if (error) {
    if (error->code == k_error_no_reply) return;  // subscribed again after the reconnect
    end_subscription(channel, *error);
    return;
  }
  subscribe_result event;
  event.channel = channel;
  event.epoch = string_field(result, "epoch");
  event.offset = uint_field(result, "offset");
  event.resumed = resumed;
  event.recovered = resumed && bool_field(result, "recovered");
  sub->subscribed = true;
  if (event.recovered) {
    sub->epoch = event.epoch;
  } else {
    if (resumed) {
      event.reason = string_field(result, "reason");
      if (event.reason.empty()) event.reason = "not recovered";
    }
    sub->has_position = true;
    sub->epoch = event.epoch;
    sub->offset = event.offset;
  }
  if (handlers_.on_subscribed) handlers_.on_subscribed(event);
  if (sub->first_done) {
    auto done = std::move(sub->first_done);
    sub->first_done = nullptr;
    done(event);
  }
  if (event.recovered) {
    simdjson::dom::array pubs;
    if (!result["publications"].get(pubs)) {
      for (simdjson::dom::element p : pubs) deliver(*sub, read_publication(p, channel, sub->epoch));
    }
  }
}

void client_core::end_subscription(const std::string& channel, const request_error& error) {
  const auto it = subs_.find(channel);
  if (it == subs_.end()) return;
  auto done = std::move(it->second.first_done);
  subs_.erase(it);
  if (done) {
    subscribe_result r;
    r.error = error;
    r.channel = channel;
    done(r);
  } else {
    report(channel, error);
  }
}

void client_core::deliver(subscription& sub, publication pub) {
  if (sub.has_position && pub.epoch != sub.epoch) {
    // The stream started over under us: offsets of the old epoch mean nothing.
    sub.epoch = pub.epoch;
    sub.offset = 0;
    if (handlers_.on_subscribed) {
      subscribe_result event;
      event.channel = sub.channel;
      event.epoch = pub.epoch;
      event.offset = pub.offset > 0 ? pub.offset - 1 : 0;
      event.reason = "epoch changed";
      handlers_.on_subscribed(event);
    }
  } else if (sub.has_position && pub.offset <= sub.offset) {
    return;  // already delivered: the server promises none, the client checks anyway
  }
  sub.has_position = true;
  sub.epoch = pub.epoch;
  sub.offset = pub.offset;
  if (handlers_.on_message) handlers_.on_message(pub);
}

void client_core::subscribe(std::string channel, subscribe_options options,
                            std::function<void(const subscribe_result&)> done) {
  if (subscription* existing = find(channel)) {
    subscribe_result r;
    r.channel = channel;
    if (existing->by_server && existing->subscribed) {
      // The server subscribed us already: the application takes it over (it
      // is resubscribed after a reconnect from now on, like its own).
      existing->by_server = false;
      existing->options = std::move(options);
      r.epoch = existing->epoch;
      r.offset = existing->offset;
    } else {
      r.error = make_error(409, "already subscribed: " + channel);
    }
    if (done) done(r);
    return;
  }
  subscription sub;
  sub.channel = channel;
  sub.first_done = std::move(done);
  if (options.since) {
    sub.has_position = true;
    sub.epoch = options.since->epoch;
    sub.offset = options.since->offset;
  } else {
    sub.want_history = options.history > 0;
  }
  sub.options = std::move(options);
  subscription& s = subs_.emplace(channel, std::move(sub)).first->second;
  if (phase_ == phase::connected) send_subscribe(s);
}

void client_core::unsubscribe(std::string channel,
                              std::function<void(const unsubscribe_result&)> done) {
  const auto it = subs_.find(channel);
  if (it == subs_.end()) {
    if (done) done(unsubscribe_result{make_error(404, "not subscribed: " + channel)});
    return;
  }
  auto first_done = std::move(it->second.first_done);
  subs_.erase(it);
  if (first_done) {
    subscribe_result r;
    r.error = make_error(k_error_no_reply, "unsubscribed before the subscribe completed");
    r.channel = channel;
    first_done(r);
  }
  if (phase_ != phase::connected) {
    if (done) done(unsubscribe_result{});
    return;
  }
  send_command("\"cmd\":\"unsubscribe\"," + channel_field(channel),
               [done = std::move(done)](const request_error* error, simdjson::dom::element) {
                 if (!done) return;
                 // Not subscribed on the server (or no connection left): the goal is met.
                 if (!error || error->code == 404 || error->code == k_error_no_reply) {
                   done(unsubscribe_result{});
                 } else {
                   done(unsubscribe_result{*error});
                 }
               });
}

void client_core::publish(std::string channel, std::string data,
                          std::function<void(const publish_result&)> done) {
  std::string value;
  if (!valid_json(data, value)) {
    // A command that is not JSON gets a reply without an id: never send one.
    if (done) {
      publish_result r;
      r.error = make_error(k_error_bad_json, "data is not a JSON value; not sent");
      done(r);
    }
    return;
  }
  std::string body = "\"cmd\":\"publish\"," + channel_field(channel) + ",\"data\":" + value;
  request(std::move(body),
          [done = std::move(done)](const request_error* error, simdjson::dom::element r) {
            if (!done) return;
            publish_result out;
            if (error) {
              out.error = *error;
            } else {
              out.epoch = string_field(r, "epoch");
              out.offset = uint_field(r, "offset");
            }
            done(out);
          });
}

void client_core::presence(std::string channel, std::function<void(const presence_result&)> done) {
  request("\"cmd\":\"presence\"," + channel_field(channel),
          [done = std::move(done), channel](const request_error* error, simdjson::dom::element r) {
            if (!done) return;
            presence_result out;
            out.channel = channel;
            simdjson::dom::array clients;
            if (error) {
              out.error = *error;
            } else {
              if (!r["clients"].get(clients)) {
                for (simdjson::dom::element c : clients)
                  out.clients.push_back(read_presence_entry(c));
              }
              std::uint64_t count = 0;
              out.count = r["count"].get(count) == simdjson::SUCCESS ? count : out.clients.size();
              std::string_view cursor;
              if (r["cursor"].get(cursor) == simdjson::SUCCESS) out.cursor = cursor;
            }
            done(out);
          });
}

void client_core::history(std::string channel, history_options options,
                          std::function<void(const history_result&)> done) {
  std::string body = "\"cmd\":\"history\"," + channel_field(channel);
  if (options.limit > 0) {
    body.append(",\"limit\":");
    append_uint(body, options.limit);
  }
  if (options.since) append_since(body, *options.since);
  request(std::move(body),
          [done = std::move(done), channel](const request_error* error, simdjson::dom::element r) {
            if (!done) return;
            history_result out;
            out.channel = channel;
            if (error) {
              out.error = *error;
              done(out);
              return;
            }
            out.epoch = string_field(r, "epoch");
            out.offset = uint_field(r, "offset");
            out.recovered = bool_field(r, "recovered");
            out.reason = string_field(r, "reason");
            simdjson::dom::array pubs;
            if (!r["publications"].get(pubs)) {
              for (simdjson::dom::element p : pubs) {
                out.publications.push_back(read_publication(p, channel, out.epoch));
              }
            }
            done(out);
          });
}

}  // namespace switchboard::realtime::detail
