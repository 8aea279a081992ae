// Server-sent events as the OpenAI API streams them: each chunk is one event "data: <json>\n\n",
// and the stream ends with "data: [DONE]\n\n". Comment lines (": ...") keep idle connections
// alive and let the server notice a client that went away.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace densekv {

// "data: " + payload + "\n\n" (payload must hold no newline: compact JSON never does).
std::string sse_event(std::string_view payload);
std::string sse_done();  // "data: [DONE]\n\n"

// The data payloads of an event stream body, in order ("[DONE]" included); for tests and tools.
// Handles \n and \r\n line ends, multi-line data fields (joined with \n) and comment lines.
std::vector<std::string> sse_parse(std::string_view body);

}  // namespace densekv
