// The HTTP routes of `densekv serve` and the state they share:
//   GET  /health                  200 ready; 503 loading or draining
//   GET  /v1/models               the served model
//   POST /v1/completions          prompt (text or token ids) -> text; stream or not
//   POST /v1/chat/completions     messages through the model's chat template -> text
//   POST /tokenize, /detokenize   as vLLM has them
//   GET  /metrics                 Prometheus text
// /v1 routes need "Authorization: Bearer <key>" when an API key is set (http.cpp checks it).
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/metrics.h"

namespace httplib {
class Server;
}

namespace densekv {

class Tokenizer;
class ChatTemplate;

// What the routes serve once the model is loaded.
struct ServedModel {
  Engine* engine = nullptr;
  const Tokenizer* tokenizer = nullptr;
  const ChatTemplate* chat_template = nullptr;  // null: chat completions answer 400
  std::string name;                             // --served-model-name
  int max_model_len = 0;
  std::vector<int32_t> eos_token_ids;
  int64_t created = 0;  // unix seconds
};

enum class ServerPhase { Loading, Ready, Draining };

struct ServerState {
  std::atomic<ServerPhase> phase{ServerPhase::Loading};
  ServedModel model;  // written once before phase becomes Ready
  ServerMetrics metrics;
  std::atomic<int> in_flight{0};  // generation requests between submit and their last byte
  int max_pending_requests = 1024;
  std::string api_key;  // "" : no authentication
};

void install_routes(httplib::Server& server, ServerState& state);

}  // namespace densekv
