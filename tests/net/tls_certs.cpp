// tls_certs.cpp — see tls_certs.hpp.
#include "tls_certs.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace switchboard::net::test {
namespace {

const char* const k_config = R"([req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
[other]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:other.example
[client]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
[ca]
default_ca = test_ca
[test_ca]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any_name
unique_subject = no
[any_name]
commonName = supplied
)";

const char* const k_new_key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";

class generator {
 public:
  explicit generator(std::string dir) : dir_(std::move(dir)) {}

  // Runs `openssl <arguments>` in the directory; output goes to openssl.log.
  bool run(const std::string& arguments) {
    const std::string command = "cd '" + dir_ + "' && openssl " + arguments + " >>openssl.log 2>&1";
    if (std::system(command.c_str()) == 0) return true;
    error_ = "failed: openssl " + arguments + " (see " + dir_ + "/openssl.log)";
    return false;
  }
  // A key and a certificate request for `subject`.
  bool request(const std::string& name, const std::string& subject) {
    return run("req -new -config openssl.cnf " + std::string(k_new_key) + " -keyout " + name +
               ".key -out " + name + ".csr -subj '" + subject + "'");
  }
  // Signs name.csr with the test CA using the `extensions` section.
  bool sign(const std::string& name, const std::string& extensions, int serial) {
    return run("x509 -req -in " + name + ".csr -CA ca.pem -CAkey ca.key -set_serial " +
               std::to_string(serial) + " -days 365 -extfile openssl.cnf -extensions " +
               extensions + " -out " + name + ".pem");
  }
  cert_pair pair(const std::string& name) const {
    return {dir_ + "/" + name + ".pem", dir_ + "/" + name + ".key"};
  }
  const std::string& error() const { return error_; }

 private:
  std::string dir_;
  std::string error_;
};

struct cert_store {
  cert_store() {
    namespace fs = std::filesystem;
    std::string pattern = (fs::temp_directory_path() / "switchboard-tls-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      set.error = "mkdtemp failed";
      return;
    }
    set.dir = pattern;
    std::ofstream(set.dir + "/openssl.cnf") << k_config;
    std::ofstream(set.dir + "/index.txt");
    std::ofstream(set.dir + "/serial") << "1000\n";
    generator g(set.dir);
    const bool ok =
        g.run("req -x509 -new -config openssl.cnf " + std::string(k_new_key) +
              " -keyout ca.key -out ca.pem -days 3650 -subj '/CN=Switchboard Test CA' "
              "-extensions v3_ca") &&
        g.request("server", "/CN=localhost") && g.sign("server", "server", 1) &&
        g.request("server2", "/CN=localhost reloaded") && g.sign("server2", "server", 2) &&
        g.request("other", "/CN=other.example") && g.sign("other", "other", 3) &&
        g.request("client", "/CN=test client") && g.sign("client", "client", 4) &&
        g.request("expired", "/CN=localhost expired") &&
        g.run(
            "ca -batch -config openssl.cnf -name test_ca -cert ca.pem -keyfile ca.key "
            "-in expired.csr -out expired.pem -notext -startdate 20200101000000Z "
            "-enddate 20200201000000Z -extfile openssl.cnf -extensions server") &&
        g.run("req -x509 -new -config openssl.cnf " + std::string(k_new_key) +
              " -keyout self.key -out self.pem -days 365 -subj '/CN=localhost self-signed' "
              "-extensions server");
    if (!ok) {
      set.error = g.error();
      return;
    }
    set.ca = set.dir + "/ca.pem";
    set.server = g.pair("server");
    set.server2 = g.pair("server2");
    set.expired = g.pair("expired");
    set.other = g.pair("other");
    set.self = g.pair("self");
    set.client = g.pair("client");
  }
  ~cert_store() {
    std::error_code ignored;
    if (!set.dir.empty()) std::filesystem::remove_all(set.dir, ignored);
  }
  test_certs set;
};

}  // namespace

const test_certs& certs() {
  static const cert_store store;
  return store.set;
}

}  // namespace switchboard::net::test
