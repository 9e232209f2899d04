// loadgen_report.cpp — merging and printing switchboard_loadgen's counts.
#include "loadgen_report.hpp"

#include <cstdio>

namespace switchboard::bench {
namespace {

unsigned long long n(std::uint64_t v) {
  return static_cast<unsigned long long>(v);
}

double us(std::uint64_t ns) {
  return static_cast<double>(ns) / 1000.0;
}

}  // namespace

void report(const loadgen_options& o, const loop_stats& s, std::uint64_t established,
            double seconds) {
  const double msg_rate = static_cast<double>(s.messages) / seconds;
  const double hs_rate = static_cast<double>(s.handshakes) / seconds;
  const double tls_rate = static_cast<double>(s.tls_handshakes) / seconds;
  char server_cpu[32] = "null";
  if (s.window_server_cpu_s >= 0) {
    std::snprintf(server_cpu, sizeof server_cpu, "%.3f", s.window_server_cpu_s);
  }
  const double mib = msg_rate * static_cast<double>(o.size) / (1024.0 * 1024.0);
  const auto& h = s.latency;
  const double payload = static_cast<double>(s.payload_out + s.payload_in);
  const double ratio = payload > 0 ? static_cast<double>(s.wire_out + s.wire_in) / payload : 0;
  if (o.json) {
    std::printf(
        "{\"mode\":\"%s\",\"raw\":%s,\"connections\":%zu,\"established\":%llu,\"size\":%zu,"
        "\"inflight\":%zu,\"threads\":%zu,\"seconds\":%.3f,\"messages\":%llu,\"echoes_total\":%llu,"
        "\"messages_per_s\":%.1f,\"mib_per_s\":%.2f,\"latency_us\":{\"p50\":%.1f,\"p99\":%.1f,"
        "\"p999\":%.1f,\"max\":%.1f},\"handshakes\":%llu,\"handshakes_per_s\":%.1f,"
        "\"cycles\":%llu,\"upgrades_total\":%llu,\"loadgen_cpu_s\":%.3f,"
        "\"window_cpu_s\":{\"loadgen\":%.3f,\"server\":%s},\"errors\":{\"connect\":%llu,\"protocol\":%llu,\"closed\":%llu,"
        "\"timeout\":%llu,\"mismatch\":%llu,\"tls\":%llu},\"payload\":\"%s\",\"deflate\":{\"offered\":%s,"
        "\"offer\":\"%s\",\"agreed\":%llu,\"compressed_in\":%llu,\"payload_out\":%llu,"
        "\"wire_out\":%llu,\"payload_in\":%llu,\"wire_in\":%llu,\"wire_ratio\":%.4f},"
        "\"tls\":{\"on\":%s,\"handshakes\":%llu,\"handshakes_per_s\":%.1f,"
        "\"handshakes_total\":%llu,\"errors\":%llu,"
        "\"version\":\"%s\",\"cipher\":\"%s\"}}\n",
        mode_name(o.mode), o.raw ? "true" : "false", o.connections, n(established), o.size,
        o.inflight, o.threads, seconds, n(s.messages), n(s.echoes), msg_rate, mib,
        us(h.percentile(0.50)), us(h.percentile(0.99)), us(h.percentile(0.999)), us(h.max()),
        n(s.handshakes), hs_rate, n(s.cycles), n(s.upgrades), s.cpu_s,
        s.window_cpu_s, server_cpu,
        n(s.connect_errors), n(s.protocol_errors),
        n(s.closed_early), n(s.timeouts), n(s.mismatches), n(s.tls_errors),
        o.payload == payload_kind::json ? "json" : "bytes", o.deflate ? "true" : "false",
        offer_name(o.offer), n(s.deflate_agreed), n(s.compressed_in), n(s.payload_out),
        n(s.wire_out), n(s.payload_in), n(s.wire_in), ratio, o.tls ? "true" : "false",
        n(s.tls_handshakes), tls_rate, n(s.tls_handshakes_total), n(s.tls_errors), s.tls_version.c_str(),
        s.tls_cipher.c_str());
    return;
  }
  std::printf(
      "mode %s%s%s: %zu connections (%llu established), %zu B, inflight %zu, %zu thread(s), "
      "%.2f s measured\n",
      mode_name(o.mode), o.raw ? " (raw TCP)" : "", o.tls ? " over TLS" : "", o.connections,
      n(established), o.size, o.inflight, o.threads, seconds);
  if (o.mode == load_mode::echo) {
    std::printf("messages/s    %.0f  (%.1f MiB/s payload each way)\n", msg_rate, mib);
    std::printf("latency us    p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", us(h.percentile(0.5)),
                us(h.percentile(0.99)), us(h.percentile(0.999)), us(h.max()));
  } else if (o.mode == load_mode::connect_storm) {
    std::printf("handshakes/s  %.0f  (%llu full cycles)\n", hs_rate, n(s.cycles));
  }
  if (o.tls) {
    std::printf("tls           %s %s, %.0f TLS handshakes/s, %llu TLS errors\n",
                s.tls_version.empty() ? "?" : s.tls_version.c_str(),
                s.tls_cipher.empty() ? "?" : s.tls_cipher.c_str(), tls_rate, n(s.tls_errors));
  }
  if (o.deflate) {
    std::printf("deflate       %s offer, agreed on %llu upgrades, %llu echoes compressed\n",
                offer_name(o.offer), n(s.deflate_agreed), n(s.compressed_in));
  }
  if (payload > 0) {
    std::printf("wire / payload %.3f  (out %llu / %llu B, in %llu / %llu B)\n", ratio,
                n(s.wire_out), n(s.payload_out), n(s.wire_in), n(s.payload_in));
  }
  std::printf("cpu in window loadgen %.2f s%s%s\n", s.window_cpu_s,
              s.window_server_cpu_s >= 0 ? ", server " : "",
              s.window_server_cpu_s >= 0 ? server_cpu : "");
  std::printf(
      "errors        connect %llu, protocol %llu, closed by server %llu, timeouts %llu, "
      "mismatches %llu\n",
      n(s.connect_errors), n(s.protocol_errors), n(s.closed_early), n(s.timeouts), n(s.mismatches));
}

void loop_stats::merge(const loop_stats& o) {
  messages += o.messages;
  echoes += o.echoes;
  handshakes += o.handshakes;
  cycles += o.cycles;
  upgrades += o.upgrades;
  connect_errors += o.connect_errors;
  protocol_errors += o.protocol_errors;
  closed_early += o.closed_early;
  timeouts += o.timeouts;
  mismatches += o.mismatches;
  tls_handshakes += o.tls_handshakes;
  tls_handshakes_total += o.tls_handshakes_total;
  tls_errors += o.tls_errors;
  if (tls_version.empty()) tls_version = o.tls_version;
  if (tls_cipher.empty()) tls_cipher = o.tls_cipher;
  deflate_agreed += o.deflate_agreed;
  payload_out += o.payload_out;
  wire_out += o.wire_out;
  payload_in += o.payload_in;
  wire_in += o.wire_in;
  compressed_in += o.compressed_in;
  latency.merge(o.latency);
}

}  // namespace switchboard::bench
