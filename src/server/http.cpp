#include "server/http.h"

#include <httplib.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/errors.h"
#include "core/log.h"
#include "server/openai.h"
#include "server/openai_response.h"

namespace densekv {

namespace {

using ojson = nlohmann::ordered_json;

// Constant-time comparison (the key must not leak through timing).
bool same_key(const std::string& given, const std::string& key) {
  if (given.size() != key.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < key.size(); ++i) diff |= static_cast<unsigned char>(given[i] ^ key[i]);
  return diff == 0;
}

// The error body for a status the routes did not fill (no route, body too large, bad request
// line, ...).
ApiError status_error(const httplib::Request& req, int status) {
  switch (status) {
    case 404:
      return ApiError(404, "Not found: " + req.method + " " + req.path, "invalid_request_error", "",
                      "not_found");
    case 413:
      return ApiError(413, "The request body is larger than the server accepts.",
                      "invalid_request_error", "", "request_too_large");
    case 414:
      return ApiError(414, "The request URI is too long.", "invalid_request_error");
    case 400:
      return ApiError(400, "Malformed HTTP request.", "invalid_request_error");
    default:
      break;
  }
  return ApiError(status, "HTTP error " + std::to_string(status),
                  status >= 500 ? "server_error" : "invalid_request_error");
}

}  // namespace

struct HttpServer::Impl {
  httplib::Server svr;
  std::thread thread;
  int port = 0;
  int listen_fd = -1;  // the listening socket, seen by the socket-options hook
};

namespace {
// Accept queue of the listening socket. cpp-httplib's compiled library listens with a backlog of
// 5 (CPPHTTPLIB_LISTEN_BACKLOG): a burst of connections (the 500 concurrent streams of the load
// test) overflowed it, and the dropped handshakes waited for SYN retransmits (1, 2, 4, .. s) or
// were lost. uvicorn (vLLM's server) listens with 2048.
constexpr int kListenBacklog = 2048;
}  // namespace

HttpServer::HttpServer(HttpOptions opts) : opts_(std::move(opts)), impl_(std::make_unique<Impl>()) {
  state_.api_key = opts_.api_key;
  state_.max_pending_requests = opts_.max_pending_requests;
  httplib::Server& svr = impl_->svr;
  // One worker per connection (a stream holds its worker until done): enough for every
  // admitted request plus headroom for /health, /metrics and idle keep-alive connections.
  size_t workers = static_cast<size_t>(opts_.max_pending_requests) + 64;
  svr.new_task_queue = [workers] { return new httplib::ThreadPool(workers); };
  svr.set_payload_max_length(opts_.max_body_bytes);
  svr.set_read_timeout(opts_.read_timeout_s, 0);
  svr.set_write_timeout(opts_.write_timeout_s, 0);
  svr.set_keep_alive_timeout(opts_.keep_alive_timeout_s);
  svr.set_tcp_nodelay(true);
  svr.set_socket_options([impl = impl_.get()](socket_t sock) {
    httplib::default_socket_options(sock);
    impl->listen_fd = sock;
  });

  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (state_.api_key.empty() || req.path.rfind("/v1/", 0) != 0)
      return httplib::Server::HandlerResponse::Unhandled;
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    std::string key = auth.rfind(prefix, 0) == 0 ? auth.substr(prefix.size()) : "";
    if (same_key(key, state_.api_key)) return httplib::Server::HandlerResponse::Unhandled;
    ApiError e(401,
               auth.empty() ? "Missing API key: send the header 'Authorization: Bearer <key>'."
                            : "Incorrect API key provided.",
               "invalid_request_error", "", "invalid_api_key");
    res.status = 401;
    res.set_content(json_text(error_body(e)), "application/json");
    return httplib::Server::HandlerResponse::Handled;
  });
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || res.is_chunked_content_provider_) return;
    res.set_content(json_text(error_body(status_error(req, res.status))), "application/json");
  });
  svr.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        spdlog::error("internal error: {}", what);
        ApiError e(500, "Internal server error: " + what, "server_error");
        res.status = 500;
        res.set_content(json_text(error_body(e)), "application/json");
      });
  svr.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    state_.metrics.on_http_reply(res.status);
    if (res.status >= 500)
      spdlog::warn("{} {} -> {}", req.method, req.path, res.status);
    else
      spdlog::debug("{} {} -> {}", req.method, req.path, res.status);
  });
  install_routes(svr, state_);
}

HttpServer::~HttpServer() {
  impl_->svr.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void HttpServer::start() {
  httplib::Server& svr = impl_->svr;
  if (opts_.port == 0) {
    impl_->port = svr.bind_to_any_port(opts_.host);
  } else {
    impl_->port = svr.bind_to_port(opts_.host, opts_.port) ? opts_.port : -1;
  }
  if (impl_->port <= 0) {
    throw InvalidArgumentError("cannot listen on " + opts_.host + ":" + std::to_string(opts_.port) +
                               " (address in use or not valid); pick another --host / --port");
  }
  // Listening again on a listening socket only resizes its accept queue.
  int accepting = 0;
  socklen_t len = sizeof accepting;
  if (impl_->listen_fd < 0 ||
      getsockopt(impl_->listen_fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 ||
      !accepting || ::listen(impl_->listen_fd, kListenBacklog) != 0) {
    spdlog::warn(
        "http: could not enlarge the accept queue (backlog 5): bursts of connections may wait");
  }
  impl_->thread = std::thread([this] { impl_->svr.listen_after_bind(); });
  // stop() is a no-op until the listen loop runs: wait for it, so that a start-up failure after
  // start() (a model that does not load) can always stop the server in the destructor.
  for (int i = 0; i < 5000 && !svr.is_running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

int HttpServer::port() const {
  return impl_->port;
}

void HttpServer::set_ready(ServedModel model) {
  state_.model = std::move(model);
  state_.phase.store(ServerPhase::Ready);
}

int HttpServer::drain() {
  bool was_ready = state_.phase.exchange(ServerPhase::Draining) == ServerPhase::Ready;
  int aborted = 0;
  if (was_ready) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(opts_.drain_timeout_s);
    while (state_.in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    aborted = state_.in_flight.load();
    if (aborted > 0) spdlog::warn("drain timeout: aborting {} requests in flight", aborted);
    // Aborting ends every stream at once; the workers then finish their replies.
    state_.model.engine->shutdown(/*drain=*/aborted == 0);
    while (state_.in_flight.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  impl_->svr.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  return aborted;
}

namespace {
int g_signal_pipe[2] = {-1, -1};
std::atomic<int> g_signals{0};  // lock-free: safe in a signal handler

void on_shutdown_signal(int sig) {
  if (g_signals.fetch_add(1) > 0) _exit(1);
  unsigned char b = static_cast<unsigned char>(sig);
  ssize_t n = write(g_signal_pipe[1], &b, 1);
  (void)n;
}
}  // namespace

void install_shutdown_handlers() {
  if (g_signal_pipe[0] < 0 && pipe(g_signal_pipe) != 0)
    throw Error("cannot create the signal pipe");
  struct sigaction sa {};
  sa.sa_handler = on_shutdown_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int wait_shutdown_signal() {
  unsigned char b = 0;
  for (;;) {
    ssize_t n = read(g_signal_pipe[0], &b, 1);
    if (n == 1) return b;
    if (n < 0 && errno == EINTR) continue;
    throw Error("reading the signal pipe failed");
  }
}

}  // namespace densekv
