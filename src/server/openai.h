// The OpenAI API schema on the request side: a JSON body of /v1/completions or
// /v1/chat/completions -> ApiRequest (native structs of engine/request.h plus what the server needs
// to build the reply), validated field by field. Every problem is an ApiError carrying the HTTP
// status and the OpenAI error body fields {"error": {"message", "type", "param", "code"}}.
//
// Field names and semantics follow OpenAI, with vLLM's extensions (top_k, min_p,
// repetition_penalty, ignore_eos, stop_token_ids, skip_special_tokens,
// chat_template_kwargs, add_generation_prompt,
// continue_final_message). Unknown fields are refused with a 400 naming them, as OpenAI does;
// accepted-but-ignored fields (user, metadata, ...) are listed in openai.cpp.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/errors.h"
#include "engine/request.h"

namespace densekv {

// An error the HTTP layer returns as is: status plus the OpenAI error body.
struct ApiError : Error {
  ApiError(int status, const std::string& message, std::string type, std::string param = "",
           std::string code = "");
  int status;
  std::string type;   // "invalid_request_error", "authentication_error", "server_error", ...
  std::string param;  // the offending request field ("" -> null)
  std::string code;   // "" -> null
};

// 400 invalid_request_error naming `param`.
ApiError bad_request(const std::string& message, const std::string& param = "");
// {"error": {"message", "type", "param", "code"}}
nlohmann::ordered_json error_body(const ApiError& e);

enum class Endpoint { Completions, ChatCompletions };

struct ApiRequest {
  Endpoint endpoint = Endpoint::Completions;
  std::string model;  // "" when absent (the served model)

  // The prompt. Completions: `prompt_text`, or `prompt_ids` when the client sent token ids
  // (prompt_is_ids). Chat: `messages` (content parts joined to strings), rendered later.
  std::string prompt_text;
  std::vector<int32_t> prompt_ids;
  bool prompt_is_ids = false;
  nlohmann::ordered_json messages;  // chat: array of objects
  nlohmann::ordered_json tools;     // chat: null or array
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();
  bool add_generation_prompt = true;
  bool continue_final_message = false;
  bool echo = false;  // completions: the prompt text precedes the generated text

  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  bool max_tokens_given = false;  // else the server fills max_model_len - prompt length
  SamplingParams params;
  bool skip_special_tokens = true;
};

// Parses and validates one request body (bytes as received). Throws ApiError: 400 for invalid
// JSON (ill-formed UTF-8 included), a missing, mistyped, out-of-range or unknown field.
ApiRequest parse_api_request(Endpoint endpoint, std::string_view body);
ApiRequest parse_api_json(Endpoint endpoint, const nlohmann::ordered_json& body);

// POST /tokenize, as vLLM: {"prompt": text, "add_special_tokens": true} or {"messages": [...],
// "add_generation_prompt": true, "add_special_tokens": false, "chat_template_kwargs", "tools"};
// "return_token_strs" adds the token strings.
struct TokenizeRequest {
  std::string model;
  bool chat = false;
  std::string prompt;
  nlohmann::ordered_json messages;
  nlohmann::ordered_json tools;
  nlohmann::ordered_json chat_template_kwargs = nlohmann::ordered_json::object();
  bool add_generation_prompt = true;
  bool add_special_tokens = true;
  bool return_token_strs = false;
};
TokenizeRequest parse_tokenize_request(std::string_view body);

// POST /detokenize, as vLLM: {"tokens": [ids]} -> {"prompt": text}.
struct DetokenizeRequest {
  std::string model;
  std::vector<int32_t> tokens;
};
DetokenizeRequest parse_detokenize_request(std::string_view body);

// Checks that depend on the prompt length: prompt non-empty and shorter than max_model_len, and
// max_tokens (filled when absent) fits; stop_token_ids below vocab_size. Throws ApiError 400.
void check_request_fits(ApiRequest& req, int prompt_tokens, int max_model_len, int vocab_size);

}  // namespace densekv
