// Jinja parser: tokens -> AST, following jinja2/parser.py's grammar and operator precedence:
//   condexpr (a if c else b) < or < and < not < comparisons (== != < <= > >= in, not in)
//   < + - < ~ < * / // % < ** < unary - + < postfix (.attr [item] [a:b:c] (call)) and then
//   filters (|f) and tests (is t), which bind tighter than every binary operator.
// Statements: if/elif/else, for (target unpacking, `if` filter, else), set (incl. ns.attr and
// {% set x %}...{% endset %}), macro, with, filter, break/continue, print, generation.
// Anything else (include, extends, import, call, block, do, ...) is a TemplateSyntaxError that
// names the tag and its line.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja_lexer.h"
#include "text/jinja_value.h"

namespace densekv::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Const,     // value
    Name,      // name
    List,      // args = items
    Tuple,     // args = items
    Dict,      // args = key0, value0, key1, value1, ...
    Attr,      // args[0].name
    Item,      // args[0][args[1]]
    Slice,     // args = start, stop, step (each may be null); only inside Item
    Call,      // args[0](args[1:], kwargs)
    Filter,    // args[0] | name(args[1:], kwargs); args[0] is null in {% filter %} blocks
    Test,      // args[0] is name(args[1:], kwargs)
    Neg,       // -args[0]
    Pos,       // +args[0]
    Not,       // not args[0]
    BinOp,     // args[0] name args[1], name in + - * / // % **
    And,       // args[0] and args[1]
    Or,        // args[0] or args[1]
    Concat,    // args joined with ~
    Compare,   // args[0] ops[0] args[1] ops[1] args[2] ... (chained as in Python)
    CondExpr,  // args[1] if args[0] else args[2] (args[2] may be null -> undefined)
  };
  Kind kind = Kind::Const;
  int line = 0;
  Value value;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    Text,         // text
    Print,        // {{ expr }}
    If,           // branches: (cond, body)..., a final (null, body) for else
    For,          // for target in expr [if cond]: body [else else_body]
    Set,          // set target = expr (target: Name, Tuple of Names, or Attr on a namespace)
    SetBlock,     // set target [| filter expr] %}body{% endset
    Macro,        // macro text(params) body
    With,         // with params: body
    FilterBlock,  // filter expr (a Filter with null subject): body
    Scope,        // a body rendered in place (generation blocks)
    Break,
    Continue,
  };
  Kind kind = Kind::Text;
  int line = 0;
  std::string text;
  ExprPtr expr, target, cond;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro params (default or null); with
};

// A parsed template. Immutable after parse, so one may be rendered from many threads.
struct Program {
  Body body;
};

// Throws TemplateSyntaxError naming the line for malformed or unsupported syntax.
Program parse(const std::vector<Token>& tokens);

}  // namespace densekv::jinja
