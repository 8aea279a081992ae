// Jinja parser: a recursive-descent mirror of jinja2/parser.py (see jinja_parser.h).
#include "text/jinja_parser.h"

#include <initializer_list>

#include "text/jinja_builtins.h"

namespace densekv::jinja {
namespace {

constexpr int kMaxNesting = 256;  // deeper expressions or blocks are refused, not a stack overflow

struct Parser {
  const std::vector<Token>& toks;
  size_t pos = 0;
  int depth = 0;

  struct Nest {
    Parser& p;
    explicit Nest(Parser& parser) : p(parser) {
      if (++p.depth > kMaxNesting) p.error("expressions or blocks nested deeper than 256 levels");
    }
    ~Nest() { --p.depth; }
  };

  const Token& cur() const { return toks[pos]; }
  const Token& look() const { return toks[std::min(pos + 1, toks.size() - 1)]; }
  const Token& next() { return toks[pos < toks.size() - 1 ? pos++ : pos]; }
  bool is_op(const char* op) const { return cur().kind == TokKind::Op && cur().text == op; }
  bool is_name(const char* name) const { return cur().kind == TokKind::Name && cur().text == name; }
  bool skip_op(const char* op) { return is_op(op) ? (next(), true) : false; }
  bool skip_name(const char* name) { return is_name(name) ? (next(), true) : false; }

  [[noreturn]] void error(const std::string& msg, int line = 0) const {
    throw TemplateSyntaxError("chat template syntax error at line " +
                              std::to_string(line ? line : cur().line) + ": " + msg);
  }

  std::string describe(const Token& t) const {
    switch (t.kind) {
      case TokKind::Eof:
        return "end of template";
      case TokKind::VarEnd:
        return "end of print statement";
      case TokKind::BlockEnd:
        return "end of statement block";
      case TokKind::Data:
        return "template data";
      default:
        return "'" + t.text + "'";
    }
  }

  void expect_op(const char* op) {
    if (!skip_op(op)) error(std::string("expected '") + op + "', got " + describe(cur()));
  }
  void expect(TokKind kind, const char* what) {
    if (cur().kind != kind) error(std::string("expected ") + what + ", got " + describe(cur()));
    next();
  }
  std::string expect_name() {
    if (cur().kind != TokKind::Name) error("expected a name, got " + describe(cur()));
    return next().text;
  }

  static ExprPtr node(Expr::Kind kind, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->line = line;
    return e;
  }
  static ExprPtr node(Expr::Kind kind, int line, ExprPtr a, ExprPtr b = nullptr) {
    ExprPtr e = node(kind, line);
    e->args.push_back(std::move(a));
    if (b) e->args.push_back(std::move(b));
    return e;
  }

  // ---- statements ----

  // Parses until a block tag whose name is in `ends`; leaves that name as the current token.
  Body subparse(std::initializer_list<const char*> ends) {
    Nest nest(*this);
    Body body;
    for (;;) {
      const Token& t = cur();
      if (t.kind == TokKind::Eof) {
        if (ends.size() == 0) return body;
        std::string names;
        for (const char* e : ends)
          names += std::string(names.empty() ? "" : " or ") + "'" + e + "'";
        error("unexpected end of template, expected " + names);
      }
      if (t.kind == TokKind::Data) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Text;
        s->line = t.line;
        s->text = t.text;
        body.push_back(std::move(s));
        next();
      } else if (t.kind == TokKind::VarBegin) {
        next();
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Print;
        s->line = t.line;
        s->expr = parse_tuple(true, {});
        expect(TokKind::VarEnd, "'}}'");
        body.push_back(std::move(s));
      } else if (t.kind == TokKind::BlockBegin) {
        next();
        if (cur().kind != TokKind::Name) error("expected a tag name, got " + describe(cur()));
        for (const char* e : ends)
          if (cur().text == e) return body;
        body.push_back(parse_statement());
      } else {
        error("unexpected " + describe(t));
      }
    }
  }

  StmtPtr make(Stmt::Kind kind, int line) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->line = line;
    return s;
  }

  // Consumes the end tag name (current token) and its %}.
  void end_tag() {
    next();
    expect(TokKind::BlockEnd, "'%}'");
  }

  StmtPtr parse_statement() {
    const Token& t = cur();
    std::string tag = t.text;
    int line = t.line;
    next();
    if (tag == "if") {
      auto s = make(Stmt::Kind::If, line);
      for (;;) {
        ExprPtr cond = parse_tuple(false, {});
        expect(TokKind::BlockEnd, "'%}'");
        Body body = subparse({"elif", "else", "endif"});
        s->branches.emplace_back(std::move(cond), std::move(body));
        std::string end = next().text;
        if (end == "elif") continue;
        if (end == "else") {
          expect(TokKind::BlockEnd, "'%}'");
          s->branches.emplace_back(nullptr, subparse({"endif"}));
          end_tag();
        } else {
          expect(TokKind::BlockEnd, "'%}'");
        }
        return s;
      }
    }
    if (tag == "for") {
      auto s = make(Stmt::Kind::For, line);
      s->target = parse_assign_target(false, {"in"});
      if (!skip_name("in")) error("expected 'in' in for loop, got " + describe(cur()));
      s->expr = parse_tuple(false, {"recursive"});
      if (skip_name("if")) s->cond = parse_expression(true);
      if (is_name("recursive")) error("recursive for loops are not supported");
      expect(TokKind::BlockEnd, "'%}'");
      s->body = subparse({"endfor", "else"});
      if (next().text == "else") {
        expect(TokKind::BlockEnd, "'%}'");
        s->else_body = subparse({"endfor"});
        next();
      }
      expect(TokKind::BlockEnd, "'%}'");
      return s;
    }
    if (tag == "set") {
      ExprPtr target = parse_assign_target(true, {});
      if (skip_op("=")) {
        auto s = make(Stmt::Kind::Set, line);
        s->target = std::move(target);
        s->expr = parse_tuple(true, {});
        expect(TokKind::BlockEnd, "'%}'");
        return s;
      }
      auto s = make(Stmt::Kind::SetBlock, line);
      s->target = std::move(target);
      if (is_op("|")) s->expr = parse_filters(nullptr);
      expect(TokKind::BlockEnd, "'%}'");
      s->body = subparse({"endset"});
      end_tag();
      return s;
    }
    if (tag == "macro") {
      auto s = make(Stmt::Kind::Macro, line);
      s->text = expect_name();
      expect_op("(");
      while (!skip_op(")")) {
        if (!s->params.empty()) expect_op(",");
        if (skip_op(")")) break;
        std::string name = expect_name();
        ExprPtr def = skip_op("=") ? parse_expression(true) : nullptr;
        s->params.emplace_back(name, std::move(def));
      }
      expect(TokKind::BlockEnd, "'%}'");
      s->body = subparse({"endmacro"});
      end_tag();
      return s;
    }
    if (tag == "with") {
      auto s = make(Stmt::Kind::With, line);
      while (cur().kind != TokKind::BlockEnd) {
        if (!s->params.empty()) expect_op(",");
        std::string name = expect_name();
        expect_op("=");
        s->params.emplace_back(name, parse_expression(true));
      }
      next();
      s->body = subparse({"endwith"});
      end_tag();
      return s;
    }
    if (tag == "filter") {
      auto s = make(Stmt::Kind::FilterBlock, line);
      s->expr = parse_filters(nullptr, true);
      expect(TokKind::BlockEnd, "'%}'");
      s->body = subparse({"endfilter"});
      end_tag();
      return s;
    }
    if (tag == "generation") {  // transformers' AssistantTracker: renders its body in place
      auto s = make(Stmt::Kind::Scope, line);
      expect(TokKind::BlockEnd, "'%}'");
      s->body = subparse({"endgeneration"});
      end_tag();
      return s;
    }
    if (tag == "print") {
      auto s = make(Stmt::Kind::Print, line);
      s->expr = parse_tuple(true, {});
      expect(TokKind::BlockEnd, "'%}'");
      return s;
    }
    if (tag == "break" || tag == "continue") {  // the loopcontrols extension transformers enables
      auto s = make(tag == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue, line);
      expect(TokKind::BlockEnd, "'%}'");
      return s;
    }
    static const char* unsupported[] = {"include", "extends",    "import", "from", "block",
                                        "call",    "autoescape", "do",     "trans"};
    for (const char* u : unsupported)
      if (tag == u)
        error("the '" + tag + "' tag is not supported by densekv's Jinja interpreter", line);
    error("encountered unknown tag '" + tag + "'", line);
  }

  // A name, a tuple of names (for/set unpacking), or ns.attr (set on a namespace).
  ExprPtr parse_assign_target(bool with_namespace, std::initializer_list<const char*> extra_end) {
    int line = cur().line;
    if (with_namespace && cur().kind == TokKind::Name && look().kind == TokKind::Op &&
        look().text == ".") {
      ExprPtr ns = node(Expr::Kind::Name, line);
      ns->name = next().text;
      next();
      ExprPtr attr = node(Expr::Kind::Attr, line, std::move(ns));
      attr->name = expect_name();
      return attr;
    }
    ExprPtr target = node(Expr::Kind::Tuple, line);
    for (;;) {
      if (!target->args.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      if (cur().kind != TokKind::Name) error("can't assign to " + describe(cur()));
      ExprPtr name = node(Expr::Kind::Name, cur().line);
      name->name = next().text;
      target->args.push_back(std::move(name));
      if (!is_op(",")) break;
    }
    if (target->args.empty()) error("expected an assignment target");
    if (target->args.size() == 1 && !is_op(",")) return std::move(target->args[0]);
    return target;
  }

  // ---- expressions ----

  bool is_tuple_end(std::initializer_list<const char*> extra_end) const {
    if (cur().kind == TokKind::VarEnd || cur().kind == TokKind::BlockEnd || is_op(")")) return true;
    for (const char* e : extra_end)
      if (is_name(e)) return true;
    return false;
  }

  ExprPtr parse_tuple(bool with_condexpr, std::initializer_list<const char*> extra_end,
                      bool explicit_parens = false) {
    int line = cur().line;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    for (;;) {
      if (!items.empty()) expect_op(",");
      if (is_tuple_end(extra_end)) break;
      items.push_back(parse_expression(with_condexpr));
      if (is_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parens) error("expected an expression, got " + describe(cur()));
    }
    ExprPtr t = node(Expr::Kind::Tuple, line);
    t->args = std::move(items);
    return t;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    Nest nest(*this);
    if (!with_condexpr) return parse_or();
    int line = cur().line;
    ExprPtr expr = parse_or();
    while (skip_name("if")) {
      ExprPtr cond = parse_or();
      ExprPtr other = skip_name("else") ? parse_expression(true) : nullptr;
      ExprPtr e = node(Expr::Kind::CondExpr, line, std::move(cond), std::move(expr));
      e->args.push_back(std::move(other));
      expr = std::move(e);
    }
    return expr;
  }

  ExprPtr parse_or() {
    ExprPtr left = parse_and();
    while (is_name("or")) {
      int line = next().line;
      left = node(Expr::Kind::Or, line, std::move(left), parse_and());
    }
    return left;
  }

  ExprPtr parse_and() {
    ExprPtr left = parse_not();
    while (is_name("and")) {
      int line = next().line;
      left = node(Expr::Kind::And, line, std::move(left), parse_not());
    }
    return left;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      Nest nest(*this);
      int line = next().line;
      return node(Expr::Kind::Not, line, parse_not());
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    int line = cur().line;
    ExprPtr first = parse_math1();
    ExprPtr cmp = node(Expr::Kind::Compare, line);
    for (;;) {
      std::string op;
      if (cur().kind == TokKind::Op &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
           cur().text == ">" || cur().text == ">=")) {
        op = next().text;
      } else if (skip_name("in")) {
        op = "in";
      } else if (is_name("not") && look().kind == TokKind::Name && look().text == "in") {
        next();
        next();
        op = "not in";
      } else {
        break;
      }
      cmp->ops.push_back(op);
      if (cmp->args.empty()) cmp->args.push_back(std::move(first));
      cmp->args.push_back(parse_math1());
    }
    return cmp->ops.empty() ? std::move(first) : std::move(cmp);
  }

  ExprPtr parse_binary(ExprPtr (Parser::*operand)(), std::initializer_list<const char*> ops) {
    ExprPtr left = (this->*operand)();
    for (;;) {
      const char* found = nullptr;
      for (const char* op : ops)
        if (is_op(op)) found = op;
      if (!found) return left;
      int line = next().line;
      ExprPtr e = node(Expr::Kind::BinOp, line, std::move(left), (this->*operand)());
      e->name = found;
      left = std::move(e);
    }
  }

  ExprPtr parse_math1() { return parse_binary(&Parser::parse_concat, {"+", "-"}); }

  ExprPtr parse_concat() {
    int line = cur().line;
    ExprPtr first = parse_math2();
    if (!is_op("~")) return first;
    ExprPtr cat = node(Expr::Kind::Concat, line, std::move(first));
    while (skip_op("~")) cat->args.push_back(parse_math2());
    return cat;
  }

  ExprPtr parse_math2() { return parse_binary(&Parser::parse_pow, {"*", "/", "//", "%"}); }
  ExprPtr parse_pow() { return parse_binary(&Parser::parse_unary_filtered, {"**"}); }
  ExprPtr parse_unary_filtered() { return parse_unary(true); }

  ExprPtr parse_unary(bool with_filter) {
    Nest nest(*this);
    int line = cur().line;
    ExprPtr e;
    if (skip_op("-"))
      e = node(Expr::Kind::Neg, line, parse_unary(false));
    else if (skip_op("+"))
      e = node(Expr::Kind::Pos, line, parse_unary(false));
    else
      e = parse_primary();
    e = parse_postfix(std::move(e));
    return with_filter ? parse_filters(std::move(e)) : std::move(e);
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    ExprPtr e = node(Expr::Kind::Const, t.line);
    switch (t.kind) {
      case TokKind::Name:
        if (t.text == "true" || t.text == "True" || t.text == "false" || t.text == "False") {
          e->value = Value::boolean(t.text == "true" || t.text == "True");
        } else if (t.text == "none" || t.text == "None") {
          e->value = Value::none();
        } else {
          e->kind = Expr::Kind::Name;
          e->name = t.text;
        }
        next();
        return e;
      case TokKind::String: {
        std::string s;
        while (cur().kind == TokKind::String) s += next().text;  // adjacent literals concatenate
        e->value = Value::string(std::move(s));
        return e;
      }
      case TokKind::Int:
        e->value = Value::integer(next().i);
        return e;
      case TokKind::Float:
        e->value = Value::number(next().f);
        return e;
      default:
        break;
    }
    if (skip_op("(")) {
      ExprPtr inner = parse_tuple(true, {}, true);
      expect_op(")");
      return inner;
    }
    if (is_op("[") || is_op("{")) {
      bool is_dict = is_op("{");
      const char* close = is_dict ? "}" : "]";
      next();
      e->kind = is_dict ? Expr::Kind::Dict : Expr::Kind::List;
      while (!is_op(close)) {
        if (!e->args.empty()) expect_op(",");
        if (is_op(close)) break;
        e->args.push_back(parse_expression(true));
        if (is_dict) {
          expect_op(":");
          e->args.push_back(parse_expression(true));
        }
      }
      next();
      return e;
    }
    error("unexpected " + describe(t));
  }

  ExprPtr parse_postfix(ExprPtr e) {
    for (;;) {
      int line = cur().line;
      if (skip_op(".")) {
        if (cur().kind == TokKind::Name) {
          e = node(Expr::Kind::Attr, line, std::move(e));
          e->name = next().text;
        } else if (cur().kind == TokKind::Int) {
          ExprPtr idx = node(Expr::Kind::Const, line);
          idx->value = Value::integer(next().i);
          e = node(Expr::Kind::Item, line, std::move(e), std::move(idx));
        } else {
          error("expected name or number after '.'");
        }
      } else if (skip_op("[")) {
        std::vector<ExprPtr> subs;
        while (!is_op("]")) {
          if (!subs.empty()) expect_op(",");
          subs.push_back(parse_subscribed());
        }
        next();
        ExprPtr index;
        if (subs.size() == 1) {
          index = std::move(subs[0]);
        } else {
          index = node(Expr::Kind::Tuple, line);
          index->args = std::move(subs);
        }
        e = node(Expr::Kind::Item, line, std::move(e), std::move(index));
      } else if (is_op("(")) {
        e = parse_call(std::move(e), Expr::Kind::Call, "");
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscribed() {
    int line = cur().line;
    ExprPtr start;
    if (!is_op(":")) {
      start = parse_expression(true);
      if (!is_op(":")) return start;
    }
    next();  // the first ':'
    ExprPtr slice = node(Expr::Kind::Slice, line);
    slice->args.push_back(std::move(start));
    slice->args.push_back(is_op(":") || is_op("]") || is_op(",") ? nullptr
                                                                 : parse_expression(true));
    ExprPtr step;
    if (skip_op(":") && !is_op("]") && !is_op(",")) step = parse_expression(true);
    slice->args.push_back(std::move(step));
    return slice;
  }

  // A call's argument list (current token is '('): positional then keyword arguments.
  ExprPtr parse_call(ExprPtr subject, Expr::Kind kind, const std::string& name) {
    int line = cur().line;
    ExprPtr e = node(kind, line, std::move(subject));
    e->name = name;
    if (!skip_op("(")) return e;
    bool first = true;
    while (!skip_op(")")) {
      if (!first) {
        expect_op(",");
        if (skip_op(")")) break;
      }
      first = false;
      if (is_op("*") || is_op("**")) error("*args and **kwargs in calls are not supported");
      if (cur().kind == TokKind::Name && look().kind == TokKind::Op && look().text == "=") {
        std::string key = next().text;
        next();
        e->kwargs.emplace_back(key, parse_expression(true));
      } else {
        if (!e->kwargs.empty()) error("positional argument follows keyword argument");
        e->args.push_back(parse_expression(true));
      }
    }
    return e;
  }

  // Filters (|name(args)) and tests (is [not] name args) after an operand. With start_inline
  // the first filter has no leading '|' ({% filter name %}).
  ExprPtr parse_filters(ExprPtr e, bool start_inline = false) {
    for (;;) {
      if (is_op("|") || start_inline) {
        if (!start_inline) next();
        start_inline = false;
        int line = cur().line;
        std::string name = expect_name();
        if (!is_filter(name)) error("no filter named '" + name + "'", line);
        e = parse_call(std::move(e), Expr::Kind::Filter, name);
      } else if (is_name("is")) {
        int line = next().line;
        bool negated = skip_name("not");
        std::string name = expect_name();
        if (!is_test(name)) error("no test named '" + name + "'", line);
        if (is_op("(")) {
          e = parse_call(std::move(e), Expr::Kind::Test, name);
        } else {
          e = node(Expr::Kind::Test, line, std::move(e));
          e->name = name;
          const Token& t = cur();
          bool arg_follows =
              t.kind == TokKind::String || t.kind == TokKind::Int || t.kind == TokKind::Float ||
              is_op("[") || is_op("{") ||
              (t.kind == TokKind::Name && t.text != "else" && t.text != "or" && t.text != "and");
          if (arg_follows) {
            if (is_name("is")) error("you cannot chain multiple tests with 'is'");
            e->args.push_back(parse_postfix(parse_primary()));
          }
        }
        if (negated) e = node(Expr::Kind::Not, line, std::move(e));
      } else if (is_op("(") && e) {
        e = parse_call(std::move(e), Expr::Kind::Call, "");
      } else {
        return e;
      }
    }
  }
};

}  // namespace

Program parse(const std::vector<Token>& tokens) {
  Parser p{tokens};
  Program prog;
  prog.body = p.subparse({});
  return prog;
}

}  // namespace densekv::jinja
