// Tests for serve_config: the TOML file of `switchboard serve` (every key,
// defaults, each kind of error with its FILE:LINE:COL), the checks over the
// whole configuration, the precedence default < file < environment < flag,
// and the --help text.
#include "serve_config.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace switchboard::app {
namespace {

using realtime::check_config;
using realtime::realtime_config;

// Every field, one per line: two configurations are equal when their dumps are.
std::string dump(const realtime_config& c) {
  std::ostringstream out;
  out << "host=" << c.host << "\nport=" << c.port << "\nthreads=" << c.threads << "\norigins=";
  for (const auto& o : c.allowed_origins) out << o << ",";
  out << "\nmax_connections=" << c.max_connections << "\ndemo=" << c.demo
      << "\ncompression=" << static_cast<int>(c.compression) << "\ntls_cert=" << c.tls_cert
      << "\ntls_key=" << c.tls_key << "\njwt_secret=" << c.jwt_secret
      << "\nallow_anonymous=" << c.allow_anonymous << "\nconnect_timeout=" << c.connect_timeout
      << "\ncookie_name=" << c.cookie_name << "\nallow_token_in_url=" << c.allow_token_in_url
      << "\napi_key=" << c.api_key << "\nmax_message_size=" << c.max_message_size
      << "\nmax_publication_size=" << c.max_publication_size << "\ncommand_rate=" << c.command_rate
      << "\ncommand_burst=" << c.command_burst << "\nrate_limit_close=" << c.rate_limit_close
      << "\nmax_subscriptions=" << c.max_subscriptions
      << "\nmax_backpressure=" << c.max_backpressure
      << "\nbackpressure_policy=" << static_cast<int>(c.backpressure_policy)
      << "\nmax_outbound_memory=" << c.max_outbound_memory
      << "\nping_interval=" << c.ping_interval << "\npong_timeout=" << c.pong_timeout
      << "\nshutdown_code=" << c.shutdown_code << "\nshutdown_timeout=" << c.shutdown_timeout
      << "\nmax_channels=" << c.max_channels << "\nhistory_memory=" << c.history_memory
      << "\nsnapshot_file=" << c.snapshot_file << "\njournal=" << c.journal_file
      << "\njournal_fsync=" << static_cast<int>(c.journal_fsync) << "\nbroker_urls=";
  for (const auto& u : c.broker_urls) out << u << ",";
  out << "\nkey_prefix=" << c.broker_key_prefix << "\npresence_lease=" << c.presence_lease
      << "\npresence_refresh=" << c.presence_refresh << "\nlog_format=" << c.log_format
      << "\nlog_level=" << c.log_level << "\n";
  for (const auto& [name, ns] : c.namespaces) {
    out << "namespace " << name << ": " << ns.history_size << " " << ns.history_ttl << " "
        << ns.presence << " " << ns.presence_max_members << " " << static_cast<int>(ns.publish)
        << "\n";
  }
  return out.str();
}

// A config file in the test's temporary directory, removed at the end.
class temp_file {
 public:
  explicit temp_file(const std::string& text) {
    static std::atomic<int> counter{0};
    path_ =
        (std::filesystem::path(testing::TempDir()) /
         ("serve_config_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + ".toml"))
            .string();
    std::ofstream(path_) << text;
  }
  ~temp_file() { std::filesystem::remove(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Loads `text` over the defaults; returns the error ("" on success).
std::string load(const std::string& text, realtime_config& config) {
  temp_file file(text);
  std::string error = load_config_file(file.path(), config);
  // Error positions name the file as given; tests compare what follows it.
  if (error.rfind(file.path(), 0) == 0) error = "FILE" + error.substr(file.path().size());
  return error;
}

std::string load_error(const std::string& text) {
  realtime_config config;
  return load(text, config);
}

// Parses `args` (after "serve") the way the binary does.
serve_flags parse_flags(std::vector<std::string> args) {
  serve_flags flags;
  CLI::App app;
  add_serve_options(app, flags);
  std::vector<const char*> argv = {"serve"};
  for (const auto& a : args) argv.push_back(a.c_str());
  app.parse(static_cast<int>(argv.size()), argv.data());
  return flags;
}

env_lookup no_env() {
  return [](const char*) -> const char* { return nullptr; };
}

// --- every key -------------------------------------------------------------

TEST(ServeConfig, EveryKeyParses) {
  realtime_config c;
  ASSERT_EQ(load(R"(
[server]
host = "::1"
port = 9000
threads = 4
allowed_origins = ["https://a.example", "https://b.example"]
max_connections = 500
demo = false
compression = "dedicated"
tls_cert = "cert.pem"
tls_key = "key.pem"

[auth]
jwt_secret = "s3cret-0123456789abcdef0123456789abcdef"
allow_anonymous = true
connect_timeout = 2.5
cookie_name = "sb"
allow_token_in_url = true

[api]
key = "k"

[limits]
max_message_size = 1048576
max_publication_size = 4096
command_rate = 10
command_burst = 20.5
rate_limit_close = 7
max_subscriptions = 8
max_backpressure = 65536
backpressure_policy = "drop"
max_channels = 12
history_memory = 4096
max_outbound_memory = 1000000

[keepalive]
ping_interval = 15
pong_timeout = 0.5

[shutdown]
code = 4001
timeout = 0

[history]
snapshot_file = "/tmp/state.json"
journal = "/tmp/state.journal"
journal_fsync = "always"

[log]
format = "json"
level = "debug"

[namespaces.chat]
history_size = 50
history_ttl = 60
presence = false
presence_max_members = 20
publish = "any"

[namespaces.feed]
publish = "none"
)",
                 c),
            "");
  EXPECT_EQ(c.host, "::1");
  EXPECT_EQ(c.port, 9000);
  EXPECT_EQ(c.threads, 4u);
  EXPECT_EQ(c.allowed_origins,
            (std::vector<std::string>{"https://a.example", "https://b.example"}));
  EXPECT_EQ(c.max_connections, 500u);
  EXPECT_FALSE(c.demo);
  EXPECT_EQ(c.compression, realtime::compression_mode::dedicated);
  EXPECT_EQ(c.tls_cert, "cert.pem");
  EXPECT_EQ(c.tls_key, "key.pem");
  EXPECT_EQ(c.jwt_secret, "s3cret-0123456789abcdef0123456789abcdef");
  EXPECT_TRUE(c.allow_anonymous);
  EXPECT_EQ(c.connect_timeout, 2.5);
  EXPECT_EQ(c.cookie_name, "sb");
  EXPECT_TRUE(c.allow_token_in_url);
  EXPECT_EQ(c.api_key, "k");
  EXPECT_EQ(c.max_message_size, 1048576u);
  EXPECT_EQ(c.max_publication_size, 4096u);
  EXPECT_EQ(c.command_rate, 10);
  EXPECT_EQ(c.command_burst, 20.5);
  EXPECT_EQ(c.rate_limit_close, 7u);
  EXPECT_EQ(c.max_subscriptions, 8u);
  EXPECT_EQ(c.max_backpressure, 65536u);
  EXPECT_EQ(c.backpressure_policy, realtime::overflow_policy::drop);
  EXPECT_EQ(c.max_outbound_memory, 1000000u);
  EXPECT_EQ(c.ping_interval, 15);
  EXPECT_EQ(c.pong_timeout, 0.5);
  EXPECT_EQ(c.shutdown_code, 4001);
  EXPECT_EQ(c.shutdown_timeout, 0);
  EXPECT_EQ(c.snapshot_file, "/tmp/state.json");
  EXPECT_EQ(c.journal_file, "/tmp/state.journal");
  EXPECT_EQ(c.journal_fsync, realtime::fsync_policy::always);
  EXPECT_EQ(c.max_channels, 12u);
  EXPECT_EQ(c.history_memory, 4096u);
  EXPECT_EQ(c.log_format, "json");
  EXPECT_EQ(c.log_level, "debug");

  ASSERT_EQ(c.namespaces.size(), 3u);  // default stays
  const auto& chat = c.namespaces.at("chat");
  EXPECT_EQ(chat.history_size, 50u);
  EXPECT_EQ(chat.history_ttl, 60);
  EXPECT_FALSE(chat.presence);
  EXPECT_EQ(chat.presence_max_members, 20u);
  EXPECT_EQ(chat.publish, realtime::publish_policy::any);
  // Keys a namespace leaves out have namespace_options' defaults.
  const auto& feed = c.namespaces.at("feed");
  EXPECT_EQ(feed.history_size, realtime::namespace_options{}.history_size);
  EXPECT_EQ(feed.presence, realtime::namespace_options{}.presence);
  EXPECT_EQ(feed.publish, realtime::publish_policy::none);
  EXPECT_TRUE(c.namespaces.contains(realtime::k_default_namespace));
}

TEST(ServeConfig, EmptyFileKeepsEveryDefault) {
  realtime_config c;
  ASSERT_EQ(load("# nothing here\n", c), "");
  EXPECT_EQ(dump(c), dump(realtime_config{}));
  ASSERT_EQ(load("[server]\n[auth]\n[limits]\n", c), "");
  EXPECT_EQ(dump(c), dump(realtime_config{}));
}

TEST(ServeConfig, AbsentKeysKeepTheirDefaults) {
  realtime_config c;
  ASSERT_EQ(load("[server]\nport = 1234\n", c), "");
  realtime_config expected;
  expected.port = 1234;
  EXPECT_EQ(dump(c), dump(expected));
}

TEST(ServeConfig, IntegersAreAcceptedForSeconds) {
  realtime_config c;
  ASSERT_EQ(load("[keepalive]\nping_interval = 3\npong_timeout = 1.25\n", c), "");
  EXPECT_EQ(c.ping_interval, 3);
  EXPECT_EQ(c.pong_timeout, 1.25);
}

TEST(ServeConfig, DottedKeysAndInlineTablesWork) {
  realtime_config c;
  ASSERT_EQ(load("server.port = 81\nnamespaces.chat = { history_size = 5 }\n", c), "");
  EXPECT_EQ(c.port, 81);
  EXPECT_EQ(c.namespaces.at("chat").history_size, 5u);
}

TEST(ServeConfig, DeclaringDefaultNamespaceReplacesTheBuiltInOne) {
  realtime_config c;
  ASSERT_EQ(load("[namespaces.default]\nhistory_size = 0\npresence = false\n", c), "");
  ASSERT_EQ(c.namespaces.size(), 1u);
  EXPECT_EQ(c.namespaces.at("default").history_size, 0u);
  EXPECT_FALSE(c.namespaces.at("default").presence);
}

TEST(ServeConfig, NamespaceNamesMayUseEveryChannelCharacterButColon) {
  realtime_config c;
  ASSERT_EQ(load("[namespaces.\"A-z_0.9@=\"]\n", c), "");
  EXPECT_TRUE(c.namespaces.contains("A-z_0.9@="));
}

// --- errors ----------------------------------------------------------------

TEST(ServeConfigErrors, SyntaxErrorNamesLineAndColumn) {
  const std::string error = load_error("[server]\nport = 80\nhost = \"unterminated\n");
  EXPECT_EQ(error.rfind("FILE:3:", 0), 0u) << error;
}

TEST(ServeConfigErrors, DuplicateKeyIsASyntaxError) {
  const std::string error = load_error("[server]\nport = 80\nport = 81\n");
  EXPECT_EQ(error.rfind("FILE:3:", 0), 0u) << error;
}

TEST(ServeConfigErrors, MissingFile) {
  realtime_config c;
  const std::string error = load_config_file("/nonexistent/switchboard.toml", c);
  EXPECT_EQ(
      error,
      "/nonexistent/switchboard.toml: cannot open the config file: No such file or directory");
}

TEST(ServeConfigErrors, DirectoryIsNotAConfigFile) {
  realtime_config c;
  const std::string dir = testing::TempDir();
  EXPECT_NE(load_config_file(dir, c).find("is a directory"), std::string::npos);
}

TEST(ServeConfigErrors, UnknownSection) {
  EXPECT_EQ(load_error("[server]\nport = 80\n\n[servre]\nhost = \"x\"\n"),
            "FILE:4:2: unknown section [servre]; did you mean server?");
  const std::string error = load_error("[database]\n");
  EXPECT_EQ(error.rfind("FILE:1:2: unknown section [database]; sections: server, auth", 0), 0u)
      << error;
}

TEST(ServeConfigErrors, UnknownKeyNamesItsLine) {
  EXPECT_EQ(load_error("[server]\nhost = \"0.0.0.0\"\nprot = 80\n"),
            "FILE:3:1: unknown key server.prot; did you mean port?");
  const std::string error = load_error("[limits]\n\n  frobnicate = 1\n");
  EXPECT_EQ(error.rfind("FILE:3:3: unknown key limits.frobnicate; keys of [limits]: "
                        "max_message_size, ",
                        0),
            0u)
      << error;
  EXPECT_EQ(load_error("[namespaces.chat]\nhistory_sise = 5\n"),
            "FILE:2:1: unknown key namespaces.chat.history_sise; did you mean history_size?");
}

TEST(ServeConfigErrors, KeyOutsideItsSection) {
  EXPECT_EQ(load_error("port = 80\n"),
            "FILE:1:1: port belongs in a section: put it under [server]");
}

TEST(ServeConfigErrors, WrongType) {
  EXPECT_EQ(load_error("[server]\nport = \"80\"\n"),
            "FILE:2:8: server.port: expected an integer, got a string");
  EXPECT_EQ(load_error("[server]\nport = 80.0\n"),
            "FILE:2:8: server.port: expected an integer, got a float");
  EXPECT_EQ(load_error("[server]\ndemo = \"yes\"\n"),
            "FILE:2:8: server.demo: expected true or false, got a string");
  EXPECT_EQ(load_error("[keepalive]\nping_interval = \"25s\"\n"),
            "FILE:2:17: keepalive.ping_interval: expected a number, got a string");
  EXPECT_EQ(load_error("[server]\nallowed_origins = \"https://a.example\"\n"),
            "FILE:2:19: server.allowed_origins: expected an array of strings, got a string");
  // The element itself is named.
  EXPECT_EQ(load_error("[server]\nallowed_origins = [\"https://a.example\", 5]\n"),
            "FILE:2:41: server.allowed_origins: expected strings in the array, got an integer");
  EXPECT_EQ(load_error("server = 5\n"),
            "FILE:1:1: server must be a table ([server]), got an integer");
  EXPECT_EQ(load_error("[namespaces]\nchat = true\n"),
            "FILE:2:1: namespaces.chat must be a table ([namespaces.chat]), got a boolean");
}

TEST(ServeConfigErrors, OutOfRange) {
  EXPECT_EQ(load_error("[server]\nport = 70000\n"),
            "FILE:2:8: server.port: must be from 0 to 65535, got 70000");
  EXPECT_EQ(load_error("[server]\nport = -1\n"),
            "FILE:2:8: server.port: must be from 0 to 65535, got -1");
  EXPECT_EQ(load_error("[server]\nthreads = 0\n"),
            "FILE:2:11: server.threads: must be from 1 to 64, got 0");
  EXPECT_EQ(load_error("[server]\nthreads = 65\n"),
            "FILE:2:11: server.threads: must be from 1 to 64, got 65");
  EXPECT_EQ(load_error("[limits]\nmax_message_size = 0\n"),
            "FILE:2:20: limits.max_message_size: must be from 1 to 67108864, got 0");
  EXPECT_EQ(load_error("[server]\nmax_connections = 0\n"),
            "FILE:2:19: server.max_connections: must be from 1 to 10000000, got 0");
  EXPECT_EQ(load_error("[limits]\ncommand_rate = 0\n"),
            "FILE:2:16: limits.command_rate: must be more than 0 and at most 1000000000, got 0");
  EXPECT_EQ(load_error("[limits]\ncommand_burst = 0.5\n"),
            "FILE:2:17: limits.command_burst: must be at least 1, got 0.5");
  EXPECT_EQ(load_error("[keepalive]\npong_timeout = -1\n"),
            "FILE:2:16: keepalive.pong_timeout: must be from 0 to 1000000000, got -1");
  EXPECT_EQ(load_error("[keepalive]\nping_interval = inf\n"),
            "FILE:2:17: keepalive.ping_interval: must be a finite number");
  EXPECT_EQ(load_error("[auth]\nconnect_timeout = 0\n"),
            "FILE:2:19: auth.connect_timeout: must be more than 0 and at most 1000000000, got 0");
  EXPECT_EQ(load_error("[namespaces.chat]\nhistory_size = -5\n"),
            "FILE:2:16: namespaces.chat.history_size: must be from 0 to 1000000, got -5");
}

TEST(ServeConfigErrors, ShutdownCode) {
  for (int code : {1000, 1001, 1012, 4000, 4999}) {
    realtime_config c;
    EXPECT_EQ(load("[shutdown]\ncode = " + std::to_string(code) + "\n", c), "") << code;
    EXPECT_EQ(c.shutdown_code, code);
  }
  for (int code : {0, 1002, 1006, 1011, 3000, 3999, 5000, 65536}) {
    EXPECT_EQ(load_error("[shutdown]\ncode = " + std::to_string(code) + "\n"),
              "FILE:2:8: shutdown.code: must be 1000, 1001, 1012 or 4000 to 4999, got " +
                  std::to_string(code));
  }
}

TEST(ServeConfigErrors, BadEnumListsTheAllowedValues) {
  EXPECT_EQ(load_error("[server]\ncompression = \"gzip\"\n"),
            "FILE:2:15: server.compression: must be \"off\", \"shared\" or \"dedicated\", got "
            "\"gzip\"");
  EXPECT_EQ(load_error("[limits]\nbackpressure_policy = \"block\"\n"),
            "FILE:2:23: limits.backpressure_policy: must be \"close\" or \"drop\", got \"block\"");
  EXPECT_EQ(load_error("[namespaces.chat]\npublish = \"everyone\"\n"),
            "FILE:2:11: namespaces.chat.publish: must be \"subscribers\", \"any\" or \"none\", "
            "got \"everyone\"");
  EXPECT_EQ(load_error("[log]\nformat = \"xml\"\n"),
            "FILE:2:10: log.format: must be \"text\" or \"json\", got \"xml\"");
  EXPECT_EQ(load_error("[log]\nlevel = \"verbose\"\n"),
            "FILE:2:9: log.level: must be \"trace\", \"debug\", \"info\", \"warn\", \"error\" or "
            "\"off\", got \"verbose\"");
}

TEST(ServeConfigErrors, EmptyStringsWhereTheyMakeNoSense) {
  EXPECT_EQ(load_error("[server]\nhost = \"\"\n"), "FILE:2:8: server.host: must not be empty");
  EXPECT_EQ(load_error("[server]\nallowed_origins = [\"\"]\n"),
            "FILE:2:20: server.allowed_origins: must not be empty");
}

TEST(ServeConfigErrors, BadNamespaceName) {
  EXPECT_EQ(load_error("[namespaces.\"chat:room\"]\n"),
            "FILE:1:13: namespaces.chat:room: a namespace name is 1 to 126 of A-Z a-z 0-9 _ - . "
            "@ =");
  EXPECT_NE(load_error("[namespaces.\"with space\"]\n").find("namespaces.with space: a namespace"),
            std::string::npos);
  EXPECT_NE(load_error("[namespaces.\"\"]\n").find("a namespace name is"), std::string::npos);
  EXPECT_NE(
      load_error("[namespaces.\"" + std::string(127, 'a') + "\"]\n").find("a namespace name is"),
      std::string::npos);
  // 126 leaves room for ':' and one character: the longest usable namespace.
  EXPECT_EQ(load_error("[namespaces.\"" + std::string(126, 'a') + "\"]\n"), "");
}

TEST(ServeConfigCheck, NamespaceNamesFromCodeAreCheckedToo) {
  // A program that fills realtime_config itself gets the file's rule.
  realtime_config c;
  c.allow_anonymous = true;
  c.namespaces["bad name"] = {};
  EXPECT_EQ(check_config(c),
            "namespaces: invalid namespace name 'bad name': a namespace name is 1 to 126 of A-Z "
            "a-z 0-9 _ - . @ =");
}

// --- checks over the whole configuration -----------------------------------

TEST(ServeConfigCheck, NobodyCouldConnect) {
  realtime_config c;
  EXPECT_EQ(check_config(c),
            "auth: set auth.jwt_secret or auth.allow_anonymous (nobody could connect)");
  c.jwt_secret = "s-0123456789abcdef0123456789abcdef";
  EXPECT_EQ(check_config(c), "");
  c.jwt_secret.clear();
  c.allow_anonymous = true;
  EXPECT_EQ(check_config(c), "");
}

TEST(ServeConfigCheck, TlsCertAndKeyTogether) {
  realtime_config c;
  c.allow_anonymous = true;
  c.tls_cert = "cert.pem";
  EXPECT_EQ(check_config(c),
            "server: set both tls_cert and tls_key, or neither (only tls_cert is set)");
  c.tls_cert.clear();
  c.tls_key = "key.pem";
  EXPECT_EQ(check_config(c),
            "server: set both tls_cert and tls_key, or neither (only tls_key is set)");
  c.tls_cert = "cert.pem";
  EXPECT_EQ(check_config(c), "");
}

TEST(ServeConfigCheck, PublicationFitsInAMessage) {
  realtime_config c;
  c.allow_anonymous = true;
  c.max_message_size = 1000;
  c.max_publication_size = 1001;
  EXPECT_EQ(check_config(c),
            "limits: max_publication_size (1001) must not exceed max_message_size (1000)");
  c.max_publication_size = 1000;
  EXPECT_EQ(check_config(c), "");
}

TEST(ServeConfigCheck, JournalNeedsASnapshotFileOfItsOwn) {
  realtime_config c;
  c.allow_anonymous = true;
  c.journal_file = "j";
  EXPECT_NE(check_config(c).find("journal needs history.snapshot_file"), std::string::npos);
  c.snapshot_file = "j";
  EXPECT_NE(check_config(c).find("two different files"), std::string::npos);
  c.snapshot_file = "s";
  EXPECT_EQ(check_config(c), "");
}

// Issue 14 (7): entries that can never match used to be accepted silently.
TEST(ServeConfigCheck, AllowedOriginsAreCheckedAtStart) {
  realtime_config c;
  c.allow_anonymous = true;
  c.allowed_origins = {"https://App.example.com"};
  EXPECT_EQ(check_config(c),
            "server: allowed_origins: 'https://App.example.com' must be lower case: write "
            "'https://app.example.com'");
  c.allowed_origins = {"https://app.example.com/"};
  EXPECT_EQ(check_config(c),
            "server: allowed_origins: 'https://app.example.com/' has a path or a trailing "
            "slash; an origin has none: write 'https://app.example.com'");
  c.allowed_origins = {"*", "https://app.example.com"};
  EXPECT_EQ(check_config(c),
            "server: allowed_origins: \"*\" (any origin) must be the only entry");
  c.allowed_origins = {"https://*.example.com", "http://127.0.0.1:8080"};
  EXPECT_EQ(check_config(c), "");
  c.allowed_origins = {"*"};
  EXPECT_EQ(check_config(c), "");
}

TEST(ServeConfigCheck, TrustedProxiesAreAddressesOrRanges) {
  realtime_config c;
  c.allow_anonymous = true;
  c.trusted_proxies = {"10.0.0.5", "::1", "10.0.0.0/8", "::1/128", "fd00::/8", "0.0.0.0/0"};
  EXPECT_EQ(check_config(c), "");
  c.trusted_proxies = {"proxy.internal"};
  EXPECT_EQ(check_config(c),
            "server: trusted_proxies: 'proxy.internal' is not an IPv4 or IPv6 address or CIDR "
            "range (\"10.0.0.5\", \"10.0.0.0/8\", \"fd00::/8\"; no names)");
  c.trusted_proxies = {"10.0.0.0/33"};
  EXPECT_EQ(check_config(c),
            "server: trusted_proxies: '10.0.0.0/33': the prefix length after '/' must be 0 to "
            "32 for IPv4");
  c.trusted_proxies = {"10.1.2.3/8"};
  EXPECT_EQ(check_config(c),
            "server: trusted_proxies: '10.1.2.3/8' has bits set past its prefix: did you mean "
            "10.0.0.0/8?");
}

TEST(ServeConfigCheck, MetricsListenIsHostPortOtherThanTheServer) {
  realtime_config c;
  c.allow_anonymous = true;
  c.port = 8080;
  c.metrics_listen = "127.0.0.1:9100";
  EXPECT_EQ(check_config(c), "");
  c.metrics_listen = "[::1]:9100";
  EXPECT_EQ(check_config(c), "");
  c.metrics_listen = "127.0.0.1:8080";
  EXPECT_EQ(check_config(c),
            "metrics: listen: port 8080 is server.port; /metrics needs a port of its own");
  c.metrics_listen = "localhost:9100";
  EXPECT_EQ(check_config(c),
            "metrics: listen: 'localhost:9100' is not HOST:PORT with a numeric host "
            "(\"127.0.0.1:9100\", \"[::1]:9100\")");
}

// Issue 14 (7): a 1-byte HS256 secret was accepted.
TEST(ServeConfigCheck, ShortJwtSecretIsRefused) {
  realtime_config c;
  c.jwt_secret = std::string(31, 'x');
  EXPECT_EQ(check_config(c),
            "auth: jwt_secret is 31 bytes; an HS256 secret needs at least 32 (RFC 7518 3.2), "
            "e.g. the output of `openssl rand -base64 32`");
  c.jwt_secret = "s";
  EXPECT_NE(check_config(c).find("jwt_secret is 1 bytes"), std::string::npos);
  c.jwt_secret = std::string(32, 'x');
  EXPECT_EQ(check_config(c), "");
}

// Issue 14 (7): no maximum for history_size or max_message_size.
TEST(ServeConfigCheck, MaximaAreEnforcedForProgramsToo) {
  realtime_config c;
  c.allow_anonymous = true;
  c.max_message_size = realtime::k_max_message_size + 1;
  c.max_publication_size = 1;
  EXPECT_EQ(check_config(c),
            "limits: max_message_size (67108865) is over its maximum 67108864");
  c.max_message_size = realtime::k_max_message_size;
  EXPECT_EQ(check_config(c), "");
  c.namespaces["chat"].history_size = realtime::k_max_history_size + 1;
  EXPECT_EQ(check_config(c),
            "namespaces.chat.history_size (1000001) is over its maximum 1000000");
  c.namespaces["chat"].history_size = realtime::k_max_history_size;
  c.max_backpressure = realtime::k_max_backpressure + 1;
  EXPECT_EQ(check_config(c),
            "limits: max_backpressure (1073741825) is over its maximum 1073741824");
  // The file says so with the position.
  EXPECT_EQ(load_error("[namespaces.chat]\nhistory_size = 1000001\n"),
            "FILE:2:16: namespaces.chat.history_size: must be from 0 to 1000000, got 1000001");
  EXPECT_EQ(load_error("[limits]\nmax_message_size = 100000000\n"),
            "FILE:2:20: limits.max_message_size: must be from 1 to 67108864, got 100000000");
}

// Issue 14 (7): host = "localhost" failed at listen with exit 1 "Invalid argument".
TEST(ServeConfigCheck, HostNamesAreResolvedOrRefused) {
  realtime_config c;
  c.allow_anonymous = true;
  c.host = "localhost";
  ASSERT_EQ(build_serve_config(parse_flags({"--allow-anonymous", "--host", "localhost"}), c,
                               no_env()),
            "");
  EXPECT_EQ(c.host, "127.0.0.1");
  ASSERT_EQ(build_serve_config(parse_flags({"--allow-anonymous", "--host", "::1"}), c, no_env()),
            "");
  EXPECT_EQ(c.host, "::1");
  const std::string e = build_serve_config(
      parse_flags({"--allow-anonymous", "--host", "no-such-host.invalid"}), c, no_env());
  EXPECT_EQ(e.rfind("server: host 'no-such-host.invalid' is not a numeric address and does not "
                    "resolve (",
                    0),
            0u)
      << e;
}

// --- precedence: default < file < environment < flag -------------------------

TEST(ServeConfigPrecedence, DefaultsWithoutFileOrFlags) {
  realtime_config c;
  c.port = 1;  // build_serve_config starts over from the defaults
  EXPECT_EQ(build_serve_config(parse_flags({"--allow-anonymous"}), c, no_env()), "");
  realtime_config expected;
  expected.allow_anonymous = true;
  EXPECT_EQ(dump(c), dump(expected));
}

TEST(ServeConfigPrecedence, FileOverDefaultEnvOverFileFlagOverEnv) {
  temp_file file(R"(
[server]
port = 9000
threads = 2
allowed_origins = ["https://file.example"]
[auth]
jwt_secret = "from-file-0123456789abcdef0123456789abcdef"
[api]
key = "file-key"
[log]
level = "warn"
)");
  std::map<std::string, std::string> environment;
  const env_lookup env = [&](const char* name) -> const char* {
    const auto it = environment.find(name);
    return it == environment.end() ? nullptr : it->second.c_str();
  };

  realtime_config c;
  ASSERT_EQ(build_serve_config(parse_flags({"--config", file.path()}), c, env), "");
  EXPECT_EQ(c.port, 9000);         // file over default
  EXPECT_EQ(c.host, "127.0.0.1");  // default where the file says nothing
  EXPECT_EQ(c.jwt_secret, "from-file-0123456789abcdef0123456789abcdef");
  EXPECT_EQ(c.api_key, "file-key");

  environment["SWITCHBOARD_JWT_SECRET"] = "from-env-0123456789abcdef0123456789abcdef";
  environment["SWITCHBOARD_API_KEY"] = "env-key";
  ASSERT_EQ(build_serve_config(parse_flags({"--config", file.path()}), c, env), "");
  EXPECT_EQ(c.jwt_secret, "from-env-0123456789abcdef0123456789abcdef");  // environment over file
  EXPECT_EQ(c.api_key, "env-key");

  ASSERT_EQ(
      build_serve_config(parse_flags({"-c", file.path(), "--jwt-secret", "from-flag-0123456789abcdef0123456789abcdef", "--api-key",
                                      "flag-key", "--port", "9001", "--log-level", "error"}),
                         c, env),
      "");
  EXPECT_EQ(c.jwt_secret, "from-flag-0123456789abcdef0123456789abcdef");  // flag over environment
  EXPECT_EQ(c.api_key, "flag-key");
  EXPECT_EQ(c.port, 9001);  // flag over file
  EXPECT_EQ(c.log_level, "error");
  EXPECT_EQ(c.threads, 2u);

  // An empty variable counts as unset.
  environment["SWITCHBOARD_JWT_SECRET"] = "";
  ASSERT_EQ(build_serve_config(parse_flags({"--config", file.path()}), c, env), "");
  EXPECT_EQ(c.jwt_secret, "from-file-0123456789abcdef0123456789abcdef");
}

TEST(ServeConfigPrecedence, EveryFlagSetsItsKey) {
  realtime_config c;
  ASSERT_EQ(build_serve_config(parse_flags({"--host",
                                            "0.0.0.0",
                                            "--port",
                                            "0",
                                            "--threads",
                                            "3",
                                            "--allowed-origin",
                                            "https://a.example",
                                            "--allowed-origin",
                                            "https://b.example",
                                            "--jwt-secret",
                                            "j-0123456789abcdef0123456789abcdef",
                                            "--allow-anonymous",
                                            "--api-key",
                                            "k",
                                            "--max-connections",
                                            "9",
                                            "--max-message-size",
                                            "1000000",
                                            "--ping-interval",
                                            "1.5",
                                            "--pong-timeout",
                                            "2",
                                            "--shutdown-timeout",
                                            "0",
                                            "--snapshot-file",
                                            "s.json",
                                            "--journal",
                                            "j.bin",
                                            "--compression",
                                            "off",
                                            "--tls-cert",
                                            "c.pem",
                                            "--tls-key",
                                            "k.pem",
                                            "--no-demo",
                                            "--log-format",
                                            "json",
                                            "--log-level",
                                            "trace"}),
                               c, no_env()),
            "");
  EXPECT_EQ(c.host, "0.0.0.0");
  EXPECT_EQ(c.port, 0);
  EXPECT_EQ(c.threads, 3u);
  EXPECT_EQ(c.allowed_origins,
            (std::vector<std::string>{"https://a.example", "https://b.example"}));
  EXPECT_EQ(c.jwt_secret, "j-0123456789abcdef0123456789abcdef");
  EXPECT_TRUE(c.allow_anonymous);
  EXPECT_EQ(c.api_key, "k");
  EXPECT_EQ(c.max_connections, 9u);
  EXPECT_EQ(c.max_message_size, 1000000u);
  EXPECT_EQ(c.ping_interval, 1.5);
  EXPECT_EQ(c.pong_timeout, 2);
  EXPECT_EQ(c.shutdown_timeout, 0);
  EXPECT_EQ(c.snapshot_file, "s.json");
  EXPECT_EQ(c.journal_file, "j.bin");
  EXPECT_EQ(c.compression, realtime::compression_mode::off);
  EXPECT_EQ(c.tls_cert, "c.pem");
  EXPECT_EQ(c.tls_key, "k.pem");
  EXPECT_FALSE(c.demo);
  EXPECT_EQ(c.log_format, "json");
  EXPECT_EQ(c.log_level, "trace");
}

TEST(ServeConfigPrecedence, OriginFlagsReplaceTheFilesList) {
  temp_file file(
      "[server]\nallowed_origins = [\"https://file.example\"]\n"
      "[auth]\nallow_anonymous = true\n");
  realtime_config c;
  ASSERT_EQ(build_serve_config(
                parse_flags({"--config", file.path(), "--allowed-origin", "https://flag.example"}),
                c, no_env()),
            "");
  EXPECT_EQ(c.allowed_origins, (std::vector<std::string>{"https://flag.example"}));
}

TEST(ServeConfig, BrokerKeys) {
  realtime_config c;
  ASSERT_EQ(load("[auth]\nallow_anonymous = true\n[broker]\n"
                 "urls = [\"redis://:pw@10.0.0.1:6379/2\", \"unix:///run/redis.sock\"]\n"
                 "key_prefix = \"prod:\"\npresence_lease = 20\npresence_refresh = 5\n",
                 c),
            "");
  EXPECT_EQ(c.broker_urls,
            (std::vector<std::string>{"redis://:pw@10.0.0.1:6379/2", "unix:///run/redis.sock"}));
  EXPECT_EQ(c.broker_key_prefix, "prod:");
  EXPECT_EQ(c.presence_lease, 20);
  EXPECT_EQ(c.presence_refresh, 5);
  EXPECT_EQ(check_config(c), "");
}

TEST(ServeConfigPrecedence, BrokerFlagsRepeatForShardsAndReplaceTheFilesList) {
  temp_file file("[auth]\nallow_anonymous = true\n[broker]\nurls = [\"redis://file:6379\"]\n");
  realtime_config c;
  ASSERT_EQ(build_serve_config(parse_flags({"--config", file.path(), "--broker",
                                            "redis://a:6379", "--broker", "redis://b:6379"}),
                               c, no_env()),
            "");
  EXPECT_EQ(c.broker_urls, (std::vector<std::string>{"redis://a:6379", "redis://b:6379"}));
}

TEST(ServeConfigCheck, BrokerRules) {
  realtime_config c;
  c.allow_anonymous = true;
  c.broker_urls = {"memory"};
  EXPECT_EQ(check_config(c), "");
  c.broker_urls = {"memory", "redis://a:6379"};
  EXPECT_EQ(check_config(c), "broker: \"memory\" cannot be combined with Redis URLs");
  c.broker_urls = {"http://a:6379"};
  EXPECT_EQ(check_config(c),
            "broker: 'http://a:6379' is not a broker URL: use memory, "
            "redis://[:password@]host:port[/db] or unix:///path/redis.sock");
  c.broker_urls = {"redis://a:6379"};
  EXPECT_EQ(check_config(c), "");
  c.snapshot_file = "state.json";
  EXPECT_EQ(check_config(c),
            "history: snapshot_file is for the memory broker; with Redis, history is Redis's "
            "(configure its persistence)");
  c.snapshot_file.clear();
  c.presence_refresh = 30;
  EXPECT_EQ(check_config(c),
            "broker: presence_refresh must be above 0 and below presence_lease (an entry must "
            "be renewed before its lease runs out)");
}

TEST(ServeConfigCheck, EventsStoreRules) {
  realtime_config c;
  c.allow_anonymous = true;
  c.events_url = "http://127.0.0.1:9/events";
  c.events_outbox = "events.outbox";
  EXPECT_EQ(check_config(c), "");  // auto: the file outbox with the memory broker
  c.events_store = "redis";
  EXPECT_EQ(check_config(c), "events: store = \"redis\" needs the Redis broker (broker.urls)");
  c.broker_urls = {"redis://a:6379"};
  EXPECT_EQ(check_config(c), "");
  c.events_store = "kafka";
  EXPECT_EQ(check_config(c), "events: store must be auto, file or redis");
  EXPECT_EQ(load_error("[events]\nstore = \"disk\"\n"),
            "FILE:2:9: events.store: must be \"auto\", \"file\" or \"redis\", got \"disk\"");
}

TEST(ServeConfigPrecedence, SwitchesOverrideTheFile) {
  temp_file file("[server]\ndemo = true\n[auth]\nallow_anonymous = false\njwt_secret = \"s-0123456789abcdef0123456789abcdef\"\n");
  realtime_config c;
  ASSERT_EQ(build_serve_config(parse_flags({"-c", file.path(), "--no-demo", "--allow-anonymous"}),
                               c, no_env()),
            "");
  EXPECT_FALSE(c.demo);
  EXPECT_TRUE(c.allow_anonymous);
}

TEST(ServeConfigPrecedence, LastOfARepeatedFlagWins) {
  realtime_config c;
  ASSERT_EQ(build_serve_config(parse_flags({"--allow-anonymous", "--port", "1", "--port", "2"}), c,
                               no_env()),
            "");
  EXPECT_EQ(c.port, 2);
}

TEST(ServeConfigPrecedence, FileErrorsComeBackAsIs) {
  temp_file file("[server]\nport = \"x\"\n");
  realtime_config c;
  EXPECT_EQ(build_serve_config(parse_flags({"--config", file.path()}), c, no_env()),
            file.path() + ":2:8: server.port: expected an integer, got a string");
  EXPECT_EQ(build_serve_config(parse_flags({"--config", "/nonexistent.toml"}), c, no_env()),
            "/nonexistent.toml: cannot open the config file: No such file or directory");
}

TEST(ServeConfigPrecedence, WholeConfigChecksRunAfterTheFlags) {
  realtime_config c;
  EXPECT_EQ(build_serve_config(parse_flags({}), c, no_env()),
            "auth: set auth.jwt_secret or auth.allow_anonymous (nobody could connect)");
  // The environment alone is enough.
  const env_lookup env = [](const char* name) -> const char* {
    return std::string_view(name) == "SWITCHBOARD_JWT_SECRET" ? "s-0123456789abcdef0123456789abcdef" : nullptr;
  };
  EXPECT_EQ(build_serve_config(parse_flags({}), c, env), "");
  EXPECT_EQ(
      build_serve_config(parse_flags({"--allow-anonymous", "--tls-cert", "c.pem"}), c, no_env()),
      "server: set both tls_cert and tls_key, or neither (only tls_cert is set)");
  // The default max_publication_size (64 KiB) no longer fits.
  EXPECT_EQ(build_serve_config(parse_flags({"--allow-anonymous", "--max-message-size", "1000"}), c,
                               no_env()),
            "limits: max_publication_size (65536) must not exceed max_message_size (1000)");
}

TEST(ServeConfigThreads, AutoIsTheDefaultAndAWordOrANumber) {
  EXPECT_EQ(realtime_config{}.threads, 0u);  // 0 is "auto"
  realtime_config c;
  EXPECT_EQ(load("[server]\nthreads = \"auto\"\n", c), "");
  EXPECT_EQ(c.threads, 0u);
  EXPECT_EQ(load("[server]\nthreads = 3\n", c), "");
  EXPECT_EQ(c.threads, 3u);
  EXPECT_EQ(load_error("[server]\nthreads = \"many\"\n"),
            "FILE:2:11: server.threads: expected an integer or \"auto\", got \"many\"");
  EXPECT_EQ(load_error("[server]\nthreads = 0\n"),
            "FILE:2:11: server.threads: must be from 1 to 64, got 0");
  ASSERT_EQ(build_serve_config(parse_flags({"--allow-anonymous", "--threads", "auto"}), c, no_env()),
            "");
  EXPECT_EQ(c.threads, 0u);
  ASSERT_EQ(build_serve_config(parse_flags({"--allow-anonymous", "--threads", "2"}), c, no_env()),
            "");
  EXPECT_EQ(c.threads, 2u);
}

TEST(ServeConfigFlags, BadValuesNameTheFlag) {
  realtime_config c;
  const auto error = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "--allow-anonymous");
    return build_serve_config(parse_flags(std::move(args)), c, no_env());
  };
  EXPECT_EQ(error({"--port", "70000"}), "--port: must be from 0 to 65535, got 70000");
  EXPECT_EQ(error({"--port", "80x"}), "--port: expected an integer, got \"80x\"");
  EXPECT_EQ(error({"--threads", "0"}), "--threads: must be from 1 to 64, got 0");
  EXPECT_EQ(error({"--max-connections", "0"}), "--max-connections: must be from 1 to 10000000, got 0");
  EXPECT_EQ(error({"--ping-interval", "soon"}), "--ping-interval: expected a number, got \"soon\"");
  EXPECT_EQ(error({"--pong-timeout", "-2"}),
            "--pong-timeout: must be from 0 to 1000000000, got -2");
  EXPECT_EQ(error({"--compression", "gzip"}),
            "--compression: must be \"off\", \"shared\" or \"dedicated\", got \"gzip\"");
  EXPECT_EQ(error({"--log-format", "xml"}),
            "--log-format: must be \"text\" or \"json\", got \"xml\"");
  EXPECT_EQ(error({"--host", ""}), "--host: must not be empty");
}

TEST(ServeConfigFlags, UnknownFlagIsACommandLineError) {
  EXPECT_THROW(parse_flags({"--prot", "80"}), CLI::ParseError);
}

// --- --help ------------------------------------------------------------------

TEST(ServeConfigHelp, DocumentsEveryKeyWithItsDefault) {
  serve_flags flags;
  CLI::App app{"test"};
  add_serve_options(app, flags);
  const std::string help = app.help();
  // Every key of the file, with its default as TOML.
  for (const char* entry : {"server.host = \"127.0.0.1\"",
                            "server.port = 8080",
                            "server.threads = \"auto\"",
                            "server.allowed_origins = []",
                            "server.max_connections = 10000",
                            "server.demo = true",
                            "server.compression = \"shared\"",
                            "server.tls_cert = \"\"",
                            "server.tls_key = \"\"",
                            "auth.jwt_secret = \"\"",
                            "auth.allow_anonymous = false",
                            "auth.connect_timeout = 10",
                            "auth.cookie_name = \"switchboard_token\"",
                            "auth.allow_token_in_url = false",
                            "api.key = \"\"",
                            "limits.max_message_size = 65536",
                            "limits.max_publication_size = 65536",
                            "limits.command_rate = 100",
                            "limits.command_burst = 200",
                            "limits.rate_limit_close = 100",
                            "limits.max_subscriptions = 256",
                            "limits.max_backpressure = 1048576",
                            "limits.backpressure_policy = \"close\"",
                            "limits.max_outbound_memory = 268435456",
                            "keepalive.ping_interval = 25",
                            "keepalive.pong_timeout = 10",
                            "shutdown.code = 1012",
                            "shutdown.timeout = 5",
                            "history.snapshot_file = \"\"",
                            "log.format = \"text\"",
                            "log.level = \"info\"",
                            "namespaces.NAME.history_size = 100",
                            "namespaces.NAME.history_ttl = 300",
                            "namespaces.NAME.presence = true",
                            "namespaces.NAME.presence_max_members = 1000",
                            "namespaces.NAME.publish = \"subscribers\""}) {
    EXPECT_NE(help.find(entry), std::string::npos) << entry << "\n" << help;
  }
  for (const char* flag : {"--config",
                           "--host",
                           "--port",
                           "--threads",
                           "--allowed-origin",
                           "--jwt-secret",
                           "--allow-anonymous",
                           "--api-key",
                           "--max-connections",
                           "--max-message-size",
                           "--ping-interval",
                           "--pong-timeout",
                           "--shutdown-timeout",
                           "--snapshot-file",
                           "--journal",
                           "--compression",
                           "--tls-cert",
                           "--tls-key",
                           "--no-demo",
                           "--log-format",
                           "--log-level",
                           "SWITCHBOARD_JWT_SECRET",
                           "SWITCHBOARD_API_KEY",
                           "Built-in namespaces: default",
                           "docs/protocol.md",
                           "docs/configuration.md"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag << "\n" << help;
  }
}

// --- the shipped files --------------------------------------------------------

TEST(ServeConfigFiles, DemoConfigIsValid) {
  realtime_config c;
  const std::string path = std::string(SWITCHBOARD_SOURCE_DIR) + "/config/demo.toml";
  ASSERT_EQ(load_config_file(path, c), "");
  EXPECT_EQ(check_config(c), "");
  EXPECT_EQ(c.host, "127.0.0.1");
  EXPECT_EQ(c.port, 8080);
  EXPECT_TRUE(c.allow_anonymous);
  EXPECT_TRUE(c.demo);
  EXPECT_TRUE(c.namespaces.contains("default"));
  EXPECT_TRUE(c.namespaces.contains("chat"));
  EXPECT_EQ(c.snapshot_file, "build/switchboard-state.json");
  EXPECT_EQ(c.log_format, "text");
}

// The ```toml blocks of docs/configuration.md, in order.
std::vector<std::string> doc_toml_blocks() {
  std::ifstream in(std::string(SWITCHBOARD_SOURCE_DIR) + "/docs/configuration.md");
  std::vector<std::string> blocks;
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!inside && line == "```toml") {
      inside = true;
      blocks.emplace_back();
    } else if (inside && line == "```") {
      inside = false;
    } else if (inside) {
      blocks.back() += line + "\n";
    }
  }
  return blocks;
}

TEST(ServeConfigFiles, DocumentedCompleteFileIsExactlyTheDefaults) {
  const auto blocks = doc_toml_blocks();
  ASSERT_GE(blocks.size(), 2u);
  realtime_config c;
  ASSERT_EQ(load(blocks[0], c), "");
  EXPECT_EQ(dump(c), dump(realtime_config{}));
}

TEST(ServeConfigFiles, DocumentedNamespaceExampleIsValid) {
  const auto blocks = doc_toml_blocks();
  ASSERT_GE(blocks.size(), 2u);
  realtime_config c;
  ASSERT_EQ(load(blocks[1], c), "");
  EXPECT_EQ(c.namespaces.size(), 4u);
  EXPECT_EQ(c.namespaces.at("default").history_size, 0u);
  EXPECT_EQ(c.namespaces.at("alerts").publish, realtime::publish_policy::none);
}

}  // namespace
}  // namespace switchboard::app
