// ChatTemplate's loader, template selection, error types and thread safety. Rendered text itself
// is checked byte for byte against Jinja2 by tests/cli/chat_template_oracle.sh.
#include "text/chat_template.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

using namespace densekv;
using ojson = nlohmann::ordered_json;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("densekv_ct_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
  }
  static inline int counter = 0;
};

const ojson kUser = ojson::parse(R"([{"role": "user", "content": "hi"}])");

std::string render(const std::string& tmpl, const ojson& messages = kUser) {
  return render_chat_template(tmpl, messages, false, nullptr, "<s>", "</s>");
}

}  // namespace

TEST(ChatTemplate, LoadsTokenizerConfigTemplateAndTokens) {
  TempDir d;
  d.write("tokenizer_config.json",
          R"({"bos_token": {"content": "<B>", "lstrip": false}, "eos_token": "<E>",
              "chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}"})");
  ChatTemplate t = ChatTemplate::load(d.path.string());
  EXPECT_EQ(t.bos_token(), "<B>");
  EXPECT_EQ(t.eos_token(), "<E>");
  EXPECT_EQ(t.render(kUser, false), "<B>hi<E>");
}

TEST(ChatTemplate, PrefersChatTemplateJinjaFile) {
  TempDir d;
  d.write("tokenizer_config.json", R"({"eos_token": "<E>", "chat_template": "from config"})");
  d.write("chat_template.jinja", "from file {{ eos_token }}\n");
  EXPECT_EQ(ChatTemplate::load(d.path.string()).render(kUser, false), "from file <E>");
}

TEST(ChatTemplate, NullBosTokenStaysUndefined) {
  TempDir d;
  d.write("tokenizer_config.json",
          R"({"bos_token": null, "chat_template": "{{ bos_token is defined }}"})");
  EXPECT_EQ(ChatTemplate::load(d.path.string()).render(kUser, false), "False");
}

TEST(ChatTemplate, NamedTemplatesPickToolUseOnlyWithTools) {
  TempDir d;
  d.write("tokenizer_config.json", R"({"chat_template": [
      {"name": "default", "template": "default {{ tools }}"},
      {"name": "tool_use", "template": "tool_use {{ tools | length }}"}]})");
  ChatTemplate t = ChatTemplate::load(d.path.string());
  EXPECT_EQ(t.render(kUser, false), "default None");
  EXPECT_EQ(t.render(kUser, false, ojson::parse(R"([{"type": "function"}])")), "tool_use 1");
}

TEST(ChatTemplate, MissingTemplateIsUnsupportedModel) {
  TempDir d;
  d.write("tokenizer_config.json", R"({"eos_token": "</s>"})");
  EXPECT_THROW(ChatTemplate::load(d.path.string()), UnsupportedModelError);
  EXPECT_THROW(ChatTemplate::load((d.path / "nope").string()), InvalidArgumentError);
  d.write("tokenizer_config.json", "{not json");
  EXPECT_THROW(ChatTemplate::load(d.path.string()), FileFormatError);
}

TEST(ChatTemplate, RaiseExceptionCarriesTheTemplateMessage) {
  try {
    render(
        "{% if messages | length < 2 %}{{ raise_exception('Need two messages, got ' ~ messages | "
        "length) }}{% endif %}");
    FAIL() << "expected a throw";
  } catch (const jinja::TemplateRaisedError& e) {
    EXPECT_STREQ(e.what(), "Need two messages, got 1");
  }
  // A request error, which the HTTP layer maps to a 400.
  EXPECT_THROW(render("{{ raise_exception('x') }}"), InvalidArgumentError);
}

TEST(ChatTemplate, UnsupportedSyntaxNamesTheTagAndLine) {
  try {
    render("line one\n{% include 'other.jinja' %}");
    FAIL() << "expected a throw";
  } catch (const jinja::TemplateSyntaxError& e) {
    EXPECT_NE(std::string(e.what()).find("'include'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(render("{{ x | no_such_filter }}"), jinja::TemplateSyntaxError);
  EXPECT_THROW(render("{{ x is no_such_test }}"), jinja::TemplateSyntaxError);
  EXPECT_THROW(render("{% if x %}never closed"), jinja::TemplateSyntaxError);
  EXPECT_THROW(render("{{ 'unterminated }}"), jinja::TemplateSyntaxError);
  EXPECT_THROW(render("{% for x in y recursive %}{% endfor %}"), jinja::TemplateSyntaxError);
  EXPECT_THROW(render("{{ (1, 2] }}"), jinja::TemplateSyntaxError);
}

TEST(ChatTemplate, RenderErrorsNameTheLine) {
  try {
    render("ok\n\n{{ messages[0].content + 1 }}");
    FAIL() << "expected a throw";
  } catch (const jinja::TemplateError& e) {
    EXPECT_NE(std::string(e.what()).find("line 3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("concatenate"), std::string::npos) << e.what();
  }
  EXPECT_THROW(render("{{ messages[0].missing.deeper }}"), jinja::TemplateError);
  EXPECT_THROW(render("{{ messages.append(1) }}"), jinja::TemplateError);  // sandbox: immutable
}

TEST(ChatTemplate, BadInputsAreInvalidArguments) {
  EXPECT_THROW(render_chat_template("x", ojson::object(), false, nullptr, "", ""),
               InvalidArgumentError);
  EXPECT_THROW(render_chat_template("x", kUser, false, ojson("tools"), "", ""),
               InvalidArgumentError);
}

TEST(ChatTemplate, StrftimeNowHonoursTheOverride) {
  setenv("TZ", "UTC", 1);
  tzset();
  setenv("DENSEKV_CHAT_TEMPLATE_NOW", "1721995200", 1);
  EXPECT_EQ(render("{{ strftime_now('%d %b %Y') }}"), "26 Jul 2024");
  setenv("DENSEKV_CHAT_TEMPLATE_NOW", "yesterday", 1);
  EXPECT_THROW(render("{{ strftime_now('%Y') }}"), InvalidArgumentError);
  unsetenv("DENSEKV_CHAT_TEMPLATE_NOW");
}

TEST(ChatTemplate, RendersConcurrently) {
  ChatTemplate t(
      {{"default", "{% for m in messages %}{{ loop.index }}{{ m.content | upper }}{% endfor %}"}},
      "", "");
  ojson messages = ojson::array();
  for (int k = 0; k < 50; ++k) {
    std::string content = std::to_string(k);
    content.insert(content.begin(), 'm');
    messages.push_back({{"role", "user"}, {"content", content}});
  }
  std::string expected = t.render(messages, false);
  std::vector<std::thread> threads;
  std::vector<int> ok(8, 0);
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      for (int k = 0; k < 50; ++k) ok[i] += t.render(messages, false) == expected;
    });
  for (auto& th : threads) th.join();
  for (int v : ok) EXPECT_EQ(v, 50);
}

TEST(ChatTemplate, RealTokenizerConfigs) {
  fs::path shared = fs::path(DENSEKV_SOURCE_DIR) / ".." / "shared" / "tokenizers";
  if (!fs::exists(shared / "qwen3" / "tokenizer_config.json"))
    GTEST_SKIP() << "../shared/tokenizers is absent";
  ChatTemplate qwen = ChatTemplate::load((shared / "qwen3").string());
  EXPECT_EQ(qwen.bos_token(), "");
  EXPECT_EQ(qwen.eos_token(), "<|im_end|>");
  EXPECT_EQ(qwen.render(kUser, true), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  ChatTemplate llama = ChatTemplate::load((shared / "llama3_1").string());
  EXPECT_EQ(llama.bos_token(), "<|begin_of_text|>");
  EXPECT_EQ(llama.eos_token(), "<|eot_id|>");
}

TEST(ChatTemplate, DeepNestingIsAnErrorNotACrash) {
  std::string deep = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_THROW(render(deep), jinja::TemplateSyntaxError);
  std::string nots = "{{ " + std::string(0, ' ');
  for (int k = 0; k < 5000; ++k) nots += "not ";
  EXPECT_THROW(render(nots + "1 }}"), jinja::TemplateSyntaxError);
  std::string ifs;
  for (int k = 0; k < 5000; ++k) ifs += "{% if true %}";
  EXPECT_THROW(render(ifs), jinja::TemplateSyntaxError);
  EXPECT_THROW(render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}"),
               jinja::TemplateError);
  ojson nested = ojson::array();
  for (int k = 0; k < 2000; ++k) nested = ojson::array({nested});
  ojson messages = ojson::array({{{"role", "user"}, {"content", nested}}});
  EXPECT_THROW(render("{{ messages }}", messages), jinja::TemplateError);
}
