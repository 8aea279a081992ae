// The Jinja interpreter: see jinja_eval.h.
#include "text/jinja_eval.h"

#include <cmath>
#include <unordered_map>

#include "text/jinja_builtins.h"
#include "text/jinja_strings.h"

namespace densekv::jinja {
namespace {

[[noreturn]] void fail_undefined(const Value& v) {
  fail(v.s.empty() ? "an undefined value was used" : v.s);
}

[[noreturn]] void unsupported_operands(const std::string& op, const Value& a, const Value& b) {
  if (a.is_undefined()) fail_undefined(a);
  if (b.is_undefined()) fail_undefined(b);
  if (op == "+" && a.is_string())
    fail("can only concatenate str (not \"" + type_name(b) + "\") to str");
  if (op == "+" && a.is_array())
    fail("can only concatenate list (not \"" + type_name(b) + "\") to list");
  fail("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) +
       "'");
}

int64_t ival(const Value& v) {
  return v.kind == Value::Kind::Bool ? v.b : v.i;
}
bool both_ints(const Value& a, const Value& b) {
  return a.is_number() && b.is_number() && a.kind != Value::Kind::Float &&
         b.kind != Value::Kind::Float;
}

Value repeat(const Value& seq, int64_t n) {
  if (seq.is_string()) {
    std::string out;
    for (int64_t k = 0; k < n; ++k) out += seq.s;
    return Value::string(out);
  }
  Array out;
  for (int64_t k = 0; k < n; ++k) out.insert(out.end(), seq.arr->begin(), seq.arr->end());
  return Value::array(std::move(out));
}

using Frame = std::unordered_map<std::string, Value>;
enum class Flow { Normal, Break, Continue };

const char kLineTag[] = " (chat template line ";

class Interp {
 public:
  std::vector<Frame> frames;
  int macro_depth = 0;

  Flow exec(const Body& body, std::string& out) {
    for (const auto& s : body) {
      Flow f = exec_located(*s, out);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  std::string render_body(const Body& body) {
    std::string out;
    exec(body, out);
    return out;
  }

 private:
  // Adds the statement's line to errors that do not name one yet.
  Flow exec_located(const Stmt& s, std::string& out) {
    try {
      return exec(s, out);
    } catch (const TemplateRaisedError&) {
      throw;
    } catch (const TemplateError& e) {
      std::string msg = e.what();
      if (msg.find(kLineTag) != std::string::npos) throw;
      throw TemplateError(msg + kLineTag + std::to_string(s.line) + ")");
    }
  }

  Flow exec(const Stmt& s, std::string& out) {
    switch (s.kind) {
      case Stmt::Kind::Text:
        out += s.text;
        break;
      case Stmt::Kind::Print:
        out += to_str(eval(*s.expr));
        break;
      case Stmt::Kind::If:
        for (const auto& [cond, body] : s.branches)
          if (!cond || truthy(eval(*cond))) return exec(body, out);
        break;
      case Stmt::Kind::For:
        return exec_for(s, out);
      case Stmt::Kind::Set:
        assign(*s.target, eval(*s.expr));
        break;
      case Stmt::Kind::SetBlock: {
        Value text = Value::string(render_body(s.body));
        assign(*s.target, s.expr ? filter(*s.expr, &text) : text);
        break;
      }
      case Stmt::Kind::Macro:
        frames.back()[s.text] = make_macro(s);
        break;
      case Stmt::Kind::With: {
        Frame f;
        for (const auto& [name, expr] : s.params) f[name] = eval(*expr);
        frames.push_back(std::move(f));
        Flow flow = exec(s.body, out);
        frames.pop_back();
        return flow;
      }
      case Stmt::Kind::FilterBlock: {
        Value text = Value::string(render_body(s.body));
        out += to_str(filter(*s.expr, &text));
        break;
      }
      case Stmt::Kind::Scope:
        return exec(s.body, out);
      case Stmt::Kind::Break:
        return Flow::Break;
      case Stmt::Kind::Continue:
        return Flow::Continue;
    }
    return Flow::Normal;
  }

  Flow exec_for(const Stmt& s, std::string& out) {
    Array items = iterate(eval(*s.expr));
    if (s.cond) {  // `for x in xs if c`: filtered before the loop object counts anything
      Array kept;
      for (Value& item : items) {
        frames.emplace_back();
        assign(*s.target, item);
        bool keep = truthy(eval(*s.cond));
        frames.pop_back();
        if (keep) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) return exec(s.else_body, out);
    int64_t n = static_cast<int64_t>(items.size());
    for (int64_t k = 0; k < n; ++k) {
      frames.emplace_back();
      assign(*s.target, items[k]);
      Value loop = Value::object();
      Object& o = *loop.obj;
      o.set("index", Value::integer(k + 1));
      o.set("index0", Value::integer(k));
      o.set("revindex", Value::integer(n - k));
      o.set("revindex0", Value::integer(n - k - 1));
      o.set("first", Value::boolean(k == 0));
      o.set("last", Value::boolean(k == n - 1));
      o.set("length", Value::integer(n));
      o.set("depth", Value::integer(1));
      o.set("depth0", Value::integer(0));
      o.set("previtem", k > 0 ? items[k - 1] : Value::undefined("there is no previous item"));
      o.set("nextitem", k + 1 < n ? items[k + 1] : Value::undefined("there is no next item"));
      o.set("cycle", Value::function("cycle", [k](Args& a) {
              if (a.pos.empty()) fail("no items for cycling given");
              return a.pos[k % a.pos.size()];
            }));
      frames.back()["loop"] = loop;
      Flow f = exec(s.body, out);
      frames.pop_back();
      if (f == Flow::Break) break;
    }
    return Flow::Normal;
  }

  void assign(const Expr& target, const Value& v) {
    if (target.kind == Expr::Kind::Name) {
      frames.back()[target.name] = v;
    } else if (target.kind == Expr::Kind::Tuple) {
      Array items = iterate(v);
      if (items.size() != target.args.size())
        fail("cannot unpack " + std::to_string(items.size()) + " values into " +
             std::to_string(target.args.size()) + " names");
      for (size_t k = 0; k < items.size(); ++k) assign(*target.args[k], items[k]);
    } else {  // ns.attr
      Value ns = eval(*target.args[0]);
      if (!ns.is_namespace()) fail("cannot assign attribute on non-namespace object");
      ns.obj->set(target.name, v);
    }
  }

  Value make_macro(const Stmt& s) {
    const Stmt* macro = &s;
    return Value::function(s.text, [this, macro](Args& a) {
      if (a.pos.size() > macro->params.size())
        fail("macro '" + macro->text + "' takes not more than " +
             std::to_string(macro->params.size()) + " argument(s)");
      Frame f;
      for (size_t k = 0; k < macro->params.size(); ++k) {
        const auto& [name, def] = macro->params[k];
        const Value* given = find_arg(a, k, name.c_str());
        f[name] = given ? *given
                  : def ? eval(*def)
                        : Value::undefined("'" + name + "' is undefined");
      }
      for (const auto& [key, v] : a.kw) {
        bool known = false;
        for (const auto& p : macro->params) known |= p.first == key;
        if (!known) fail("macro '" + macro->text + "' takes no keyword argument '" + key + "'");
      }
      if (macro_depth >= 100) fail("macro '" + macro->text + "' recursed more than 100 calls deep");
      std::vector<Frame> saved = std::move(frames);
      frames = {saved[0], saved.size() > 1 ? saved[1] : Frame{}, std::move(f)};
      std::string out;
      ++macro_depth;
      try {
        exec(macro->body, out);
      } catch (...) {
        frames = std::move(saved);
        --macro_depth;
        throw;
      }
      frames = std::move(saved);
      --macro_depth;
      return Value::string(out);
    });
  }

  Value lookup(const std::string& name) {
    for (size_t k = frames.size(); k-- > 0;) {
      auto it = frames[k].find(name);
      if (it != frames[k].end()) return it->second;
    }
    return Value::undefined("'" + name + "' is undefined");
  }

  Args eval_args(const Expr& e, size_t first) {
    Args a;
    for (size_t k = first; k < e.args.size(); ++k) a.pos.push_back(eval(*e.args[k]));
    for (const auto& [key, x] : e.kwargs) a.kw.emplace_back(key, eval(*x));
    return a;
  }

  // A Filter node; `subject` replaces args[0] for {% filter %} and {% set %} blocks.
  Value filter(const Expr& e, const Value* subject) {
    Value v = e.args[0] ? eval(*e.args[0]) : *subject;
    Args a = eval_args(e, 1);
    return apply_filter(e.name, v, a);
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::Const:
        return e.value;
      case Expr::Kind::Name:
        return lookup(e.name);
      case Expr::Kind::List:
      case Expr::Kind::Tuple: {
        Array items;
        for (const auto& x : e.args) items.push_back(eval(*x));
        return e.kind == Expr::Kind::Tuple ? Value::tuple(std::move(items))
                                           : Value::array(std::move(items));
      }
      case Expr::Kind::Dict: {
        Value d = Value::object();
        for (size_t k = 0; k + 1 < e.args.size(); k += 2) {
          Value key = eval(*e.args[k]);
          if (!key.is_string()) fail("dict literal keys must be strings, not " + type_name(key));
          d.obj->set(key.s, eval(*e.args[k + 1]));
        }
        return d;
      }
      case Expr::Kind::Attr:
        return get_attr(eval(*e.args[0]), e.name);
      case Expr::Kind::Item: {
        Value obj = eval(*e.args[0]);
        const Expr& idx = *e.args[1];
        if (idx.kind != Expr::Kind::Slice) return get_item(obj, eval(idx));
        auto part = [&](size_t k) { return idx.args[k] ? eval(*idx.args[k]) : Value::none(); };
        return get_slice(obj, part(0), part(1), part(2));
      }
      case Expr::Kind::Slice:
        fail("a slice can only be used as a subscript");
      case Expr::Kind::Call: {
        Value callee = eval(*e.args[0]);
        Args a = eval_args(e, 1);
        return call_value(callee, a);
      }
      case Expr::Kind::Filter:
        return filter(e, nullptr);
      case Expr::Kind::Test: {
        Value v = eval(*e.args[0]);
        Args a = eval_args(e, 1);
        return Value::boolean(apply_test(e.name, v, a));
      }
      case Expr::Kind::Neg:
      case Expr::Kind::Pos: {
        Value v = eval(*e.args[0]);
        bool neg = e.kind == Expr::Kind::Neg;
        if (v.kind == Value::Kind::Float) return Value::number(neg ? -v.f : v.f);
        if (v.kind == Value::Kind::Int || v.kind == Value::Kind::Bool)
          return Value::integer(neg ? -ival(v) : ival(v));
        if (v.is_undefined()) fail_undefined(v);
        fail(std::string("bad operand type for unary ") + (neg ? "-" : "+") + ": '" + type_name(v) +
             "'");
      }
      case Expr::Kind::Not:
        return Value::boolean(!truthy(eval(*e.args[0])));
      case Expr::Kind::BinOp:
        return binary_op(e.name, eval(*e.args[0]), eval(*e.args[1]));
      case Expr::Kind::And: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? eval(*e.args[1]) : a;
      }
      case Expr::Kind::Or: {
        Value a = eval(*e.args[0]);
        return truthy(a) ? a : eval(*e.args[1]);
      }
      case Expr::Kind::Concat: {
        std::string s;
        for (const auto& x : e.args) s += to_str(eval(*x));
        return Value::string(s);
      }
      case Expr::Kind::Compare: {
        Value left = eval(*e.args[0]);
        for (size_t k = 0; k < e.ops.size(); ++k) {
          Value right = eval(*e.args[k + 1]);
          const std::string& op = e.ops[k];
          bool ok = op == "=="       ? equals(left, right)
                    : op == "!="     ? !equals(left, right)
                    : op == "in"     ? contains(right, left)
                    : op == "not in" ? !contains(right, left)
                    : op == "<"      ? compare(left, right) < 0
                    : op == "<="     ? compare(left, right) <= 0
                    : op == ">"      ? compare(left, right) > 0
                                     : compare(left, right) >= 0;
          if (!ok) return Value::boolean(false);
          left = std::move(right);
        }
        return Value::boolean(true);
      }
      case Expr::Kind::CondExpr:
        if (truthy(eval(*e.args[0]))) return eval(*e.args[1]);
        return e.args[2] ? eval(*e.args[2])
                         : Value::undefined(
                               "the inline if expression evaluated to false and no else section "
                               "was defined");
    }
    fail("unknown expression");
  }
};

}  // namespace

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    bool ints = both_ints(a, b);
    double x = to_double(a), y = to_double(b);
    int64_t r = 0;
    if (ints && (op == "+" || op == "-" || op == "*")) {
      bool overflow = op == "+"   ? __builtin_add_overflow(ival(a), ival(b), &r)
                      : op == "-" ? __builtin_sub_overflow(ival(a), ival(b), &r)
                                  : __builtin_mul_overflow(ival(a), ival(b), &r);
      if (overflow) fail("integer overflow (templates here use 64-bit integers) in " + op);
      return Value::integer(r);
    }
    if (op == "+") return Value::number(x + y);
    if (op == "-") return Value::number(x - y);
    if (op == "*") return Value::number(x * y);
    if ((op == "/" || op == "//" || op == "%") && y == 0)
      fail(ints && op != "/" ? "integer division or modulo by zero" : "division by zero");
    if (op == "/") return Value::number(x / y);
    if (op == "//") {
      if (!ints) return Value::number(std::floor(x / y));
      int64_t q = ival(a) / ival(b);
      if ((ival(a) % ival(b) != 0) && ((ival(a) < 0) != (ival(b) < 0))) --q;
      return Value::integer(q);
    }
    if (op == "%") {
      if (!ints) {
        double m = std::fmod(x, y);
        if (m != 0 && ((m < 0) != (y < 0))) m += y;
        return Value::number(m);
      }
      int64_t m = ival(a) % ival(b);
      if (m != 0 && ((m < 0) != (ival(b) < 0))) m += ival(b);
      return Value::integer(m);
    }
    if (op == "**") {
      if (ints && ival(b) >= 0) {
        r = 1;  // exponentiation by squaring, refusing overflow
        int64_t base = ival(a);
        bool overflow = false;
        for (int64_t e = ival(b); e > 0; e >>= 1) {
          if (e & 1) overflow |= __builtin_mul_overflow(r, base, &r);
          if (e > 1) overflow |= __builtin_mul_overflow(base, base, &base);
        }
        if (overflow) fail("integer overflow (templates here use 64-bit integers) in **");
        return Value::integer(r);
      }
      return Value::number(std::pow(x, y));
    }
  }
  if (op == "+" && a.is_string() && b.is_string()) return Value::string(a.s + b.s);
  if (op == "+" && a.is_array() && b.is_array()) {
    Array out = *a.arr;
    out.insert(out.end(), b.arr->begin(), b.arr->end());
    return Value::array(std::move(out));
  }
  if (op == "*" && (a.is_string() || a.is_array()) &&
      (b.kind == Value::Kind::Int || b.kind == Value::Kind::Bool))
    return repeat(a, ival(b));
  if (op == "*" && (b.is_string() || b.is_array()) &&
      (a.kind == Value::Kind::Int || a.kind == Value::Kind::Bool))
    return repeat(b, ival(a));
  if (op == "%" && a.is_string()) return Value::string(py_percent(a.s, b));
  unsupported_operands(op, a, b);
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind) {
    case Value::Kind::Undefined:
      return false;
    case Value::Kind::String:
      if (!item.is_string())
        fail("'in <string>' requires string as left operand, not " + type_name(item));
      return container.s.find(item.s) != std::string::npos;
    case Value::Kind::Array:
      for (const Value& x : *container.arr)
        if (equals(x, item)) return true;
      return false;
    case Value::Kind::Object:
      if (container.obj->is_namespace) break;
      return item.is_string() && container.obj->find(item.s) != nullptr;
    default:
      break;
  }
  fail("argument of type '" + type_name(container) + "' is not iterable");
}

Template::Template(const std::string& source) : program_(parse(tokenize(source))) {}

std::string Template::render(const Value& context, const RenderOptions& opt) const {
  Interp in;
  Frame globals;
  Object builtins;
  add_globals(builtins, opt.now);
  for (auto& [k, v] : builtins.items) globals[k] = v;
  if (context.is_dict())
    for (const auto& [k, v] : context.obj->items) globals[k] = v;
  in.frames.push_back(std::move(globals));
  in.frames.emplace_back();  // the template's own top-level variables
  return in.render_body(program_.body);
}

}  // namespace densekv::jinja
