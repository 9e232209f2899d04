// tls_certs.hpp — test certificates, generated once per test process by
// running the `openssl` command into a temporary directory (removed at exit).
//
//   ca          a test CA ("Switchboard Test CA"), the trust anchor
//   server      localhost + 127.0.0.1 (SAN IP:127.0.0.1, DNS:localhost), by the CA
//   server2     the same names, another subject: what reload() swaps in
//   expired     localhost, by the CA, valid only in January 2020
//   other       other.example only (wrong host for localhost; the SNI entry)
//   self        localhost, self-signed: not trusted
//   client      a client certificate (extendedKeyUsage clientAuth), by the CA
//
// The expired certificate: OpenSSL 3.0's `x509 -req` has no way to set a
// start date (-not_before arrived in 3.4) and `-days` must be positive, so it
// is issued with `openssl ca -startdate 20200101000000Z -enddate
// 20200201000000Z` from a throwaway CA database (index.txt, serial) in the
// same directory. Keys are EC P-256: generated in milliseconds.
#pragma once

#include <string>

namespace switchboard::net::test {

struct cert_pair {
  std::string cert;  // PEM file
  std::string key;   // PEM file
};

struct test_certs {
  std::string dir;
  std::string ca;  // PEM file
  cert_pair server, server2, expired, other, self, client;
  std::string error;  // why generation failed ("" on success)
};

// Generates the certificates on first use; later calls return the same set.
const test_certs& certs();

}  // namespace switchboard::net::test
