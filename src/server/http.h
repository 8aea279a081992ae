// The HTTP server of `densekv serve` (cpp-httplib): limits on body and header sizes, read and
// write timeouts for slow clients, API-key authentication of the /v1 routes, OpenAI-style error
// bodies for every error status (404 unknown route, 413 body too large, ...), a worker thread per
// connection up to a bound, and a graceful drain: new requests get 503, in-flight ones finish.
#pragma once
#include <memory>
#include <string>

#include "server/routes.h"

namespace densekv {

struct HttpOptions {
  std::string host = "0.0.0.0";
  int port = 8000;      // 0: any free port (tests)
  std::string api_key;  // "": no authentication
  size_t max_body_bytes = size_t{32} << 20;
  int read_timeout_s = 30;   // a request must arrive within this
  int write_timeout_s = 30;  // a reply chunk must be taken within this
  int keep_alive_timeout_s = 5;
  int max_pending_requests = 1024;  // generation requests in flight; more get 503
  int drain_timeout_s = 300;        // then in-flight requests are aborted
};

class HttpServer {
 public:
  explicit HttpServer(HttpOptions opts);
  ~HttpServer();  // stops listening (does not drain)
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and serves on background threads in the loading phase (/health 503). Throws
  // InvalidArgumentError naming host:port when it cannot bind.
  void start();
  int port() const;
  // The model is loaded: serve it.
  void set_ready(ServedModel model);
  // New generation requests get 503, /health 503; waits until in-flight requests are done
  // (aborting them through the engine after drain_timeout_s), shuts the engine down and stops
  // listening. Returns the number of requests that had to be aborted.
  int drain();

  ServerState& state() { return state_; }

 private:
  struct Impl;
  HttpOptions opts_;
  ServerState state_;
  std::unique_ptr<Impl> impl_;
};

// Signals: install_shutdown_handlers() catches SIGTERM and SIGINT (whichever thread gets them)
// and ignores SIGPIPE (a closed client socket is a write error, not a crash);
// wait_shutdown_signal() blocks until the first one arrives and returns it. A second one exits
// at once with status 1 (for an operator who does not want to wait for the drain).
void install_shutdown_handlers();
int wait_shutdown_signal();

}  // namespace densekv
