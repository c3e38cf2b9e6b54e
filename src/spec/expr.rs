//! Expressions: `${...}` values (SPEC.md §10) — numbers, `vars`, `+ - * / // % **`,
//! parentheses, `sqrt log exp min max floor ceil abs` — and their substitution into the
//! value tree before it is read.
//!
//! Hand-written: the grammar is a dozen rules, and errors must point into the spec with
//! did-you-mean over the names in scope, which no expression crate gives. Arithmetic
//! follows Python's: `//` and `%` floor, integers stay exact (i128) until `/`, `**` with a
//! negative exponent, or a function makes a float. A whole result becomes an integer, so
//! an expression gives the same value, and the same bytes, as the number written out.

use crate::diag::{self, did_you_mean, Diagnostic, Diags};
use crate::source::Span;
use crate::syntax::{Node, Value};
use std::collections::HashMap;
use std::fmt;

/// A value an expression computes.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    /// A whole number.
    Int(i128),
    /// A number with a fraction.
    Float(f64),
    /// Text (a string variable).
    Str(String),
    /// `true` or `false` (a config's flag, a comparison).
    Bool(bool),
    /// `null` (`None`): a config's unset value; a field given it is as if not written.
    Null,
}

impl fmt::Display for Val {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Int(i) => write!(f, "{i}"),
            Val::Float(x) => write!(f, "{x}"),
            Val::Str(s) => write!(f, "{s:?}"),
            Val::Bool(b) => write!(f, "{b}"),
            Val::Null => write!(f, "null"),
        }
    }
}

impl Val {
    fn num(&self) -> Result<f64, String> {
        match self {
            Val::Int(i) => Ok(*i as f64),
            Val::Float(x) => Ok(*x),
            // As in Python, a flag counts as 1 or 0.
            Val::Bool(b) => Ok(f64::from(u8::from(*b))),
            Val::Str(s) => Err(format!("{s:?} is text, not a number")),
            Val::Null => Err("null is not a number".to_string()),
        }
    }

    /// The value in the data model: whole floats become integers.
    pub fn to_value(&self) -> Value {
        match self {
            Val::Int(i) => Value::Int(*i),
            Val::Float(x) if x.fract() == 0.0 && x.abs() < 9.007_199_254_740_992e15 => {
                Value::Int(*x as i128)
            }
            Val::Float(x) => Value::Float(*x),
            Val::Str(s) => Value::Str(s.clone()),
            Val::Bool(b) => Value::Bool(*b),
            Val::Null => Value::Null,
        }
    }

    /// Python's truth of a value: nonzero numbers, non-empty text.
    fn truth(&self) -> bool {
        match self {
            Val::Int(i) => *i != 0,
            Val::Float(x) => *x != 0.0,
            Val::Str(s) => !s.is_empty(),
            Val::Bool(b) => *b,
            Val::Null => false,
        }
    }
}

/// The functions expressions may call.
const FUNCTIONS: [&str; 8] = ["sqrt", "log", "exp", "min", "max", "floor", "ceil", "abs"];

#[derive(Clone, Debug, PartialEq)]
enum Ast {
    Num(Val),
    Var(String, usize),
    Neg(Box<Ast>),
    Bin(char, Box<Ast>, Box<Ast>),
    Call(String, Vec<Ast>, usize),
    /// A comparison: `==`, `!=`, `<`, `<=`, `>`, `>=`.
    Cmp(&'static str, Box<Ast>, Box<Ast>),
    /// `and`, `or` (Python's: the deciding operand), `not`.
    Logic(&'static str, Vec<Ast>),
    /// `then if cond else otherwise`.
    If(Box<Ast>, Box<Ast>, Box<Ast>),
}

/// A parsed expression and its free variables.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    ast: Ast,
    /// The text inside `${…}`.
    pub text: String,
}

/// A problem with an expression, at a byte offset of its text (inside `${…}`).
#[derive(Debug, PartialEq)]
pub struct ExprError {
    /// What is wrong.
    pub message: String,
    /// Offset in the expression's text.
    pub at: usize,
    /// A suggestion.
    pub help: Option<String>,
}

fn err(at: usize, message: impl Into<String>) -> ExprError {
    ExprError {
        message: message.into(),
        at,
        help: None,
    }
}

/// Tokens: numbers, names, operators (`//` and `**` as one), parentheses and commas.
#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(Val),
    Name(String),
    Op(&'static str),
}

fn lex(s: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.' || b[i] == b'_') {
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                let mut j = i + 1;
                if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    i = j;
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text: String = s[start..i].chars().filter(|&c| c != '_').collect();
            let v = if text.contains(['.', 'e', 'E']) {
                text.parse::<f64>().ok().map(Val::Float)
            } else {
                text.parse::<i128>().ok().map(Val::Int)
            };
            out.push((
                Tok::Num(v.ok_or_else(|| err(start, format!("`{text}` is not a number")))?),
                start,
            ));
            continue;
        }
        if c == b'\'' || c == b'"' {
            // A text literal: 'LlamaModel' (no escapes; the other quote may appear inside).
            let Some(len) = s[i + 1..].find(c as char) else {
                return Err(err(start, "the text has no closing quote"));
            };
            out.push((Tok::Num(Val::Str(s[i + 1..i + 1 + len].to_string())), start));
            i += len + 2;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'_' {
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Name(s[start..i].to_string()), start));
            continue;
        }
        let two = s.get(i..i + 2);
        let op: &'static str = match (two, c) {
            (Some("//"), _) => "//",
            (Some("**"), _) => "**",
            (Some("=="), _) => "==",
            (Some("!="), _) => "!=",
            (Some("<="), _) => "<=",
            (Some(">="), _) => ">=",
            (_, b'<') => "<",
            (_, b'>') => ">",
            (_, b'+') => "+",
            (_, b'-') => "-",
            (_, b'*') => "*",
            (_, b'/') => "/",
            (_, b'%') => "%",
            (_, b'(') => "(",
            (_, b')') => ")",
            (_, b',') => ",",
            _ => {
                let ch = s[i..].chars().next().unwrap_or('?');
                return Err(err(i, format!("`{ch}` is not part of an expression")));
            }
        };
        i += op.len();
        out.push((Tok::Op(op), start));
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    end: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|(t, _)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |(_, a)| *a)
    }

    fn eat(&mut self, op: &str) -> bool {
        if self.peek()
            == Some(&Tok::Op(match op {
                "(" => "(",
                ")" => ")",
                "," => ",",
                _ => return false,
            }))
        {
            self.pos += 1;
            return true;
        }
        false
    }

    fn keyword(&mut self, k: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Name(n)) if n == k) {
            self.pos += 1;
            return true;
        }
        false
    }

    /// expr := or ('if' or 'else' expr)?
    fn expr(&mut self) -> Result<Ast, ExprError> {
        let then = self.or()?;
        if self.keyword("if") {
            let cond = self.or()?;
            if !self.keyword("else") {
                return Err(err(self.at(), "expected `else` after `… if condition`"));
            }
            let otherwise = self.expr()?;
            return Ok(Ast::If(Box::new(then), Box::new(cond), Box::new(otherwise)));
        }
        Ok(then)
    }

    /// or := and ('or' and)*
    fn or(&mut self) -> Result<Ast, ExprError> {
        self.chain("or", Self::and)
    }

    /// and := not ('and' not)*
    fn and(&mut self) -> Result<Ast, ExprError> {
        self.chain("and", Self::not)
    }

    /// `next (op next)*`, one `Logic(op, …)` when there is more than one operand.
    fn chain(
        &mut self,
        op: &'static str,
        next: fn(&mut Self) -> Result<Ast, ExprError>,
    ) -> Result<Ast, ExprError> {
        let mut v = vec![next(self)?];
        while self.keyword(op) {
            v.push(next(self)?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Ast::Logic(op, v)
        })
    }

    /// not := 'not' not | cmp
    fn not(&mut self) -> Result<Ast, ExprError> {
        if self.keyword("not") {
            return Ok(Ast::Logic("not", vec![self.not()?]));
        }
        self.cmp()
    }

    /// cmp := sum (('==' | '!=' | '<' | '<=' | '>' | '>=') sum)?
    fn cmp(&mut self) -> Result<Ast, ExprError> {
        let lhs = self.sum()?;
        if let Some(Tok::Op(op @ ("==" | "!=" | "<" | "<=" | ">" | ">="))) = self.peek() {
            let op = *op;
            self.pos += 1;
            return Ok(Ast::Cmp(op, Box::new(lhs), Box::new(self.sum()?)));
        }
        Ok(lhs)
    }

    /// sum := term (('+' | '-') term)*
    fn sum(&mut self) -> Result<Ast, ExprError> {
        let mut lhs = self.term()?;
        while let Some(Tok::Op(op @ ("+" | "-"))) = self.peek() {
            let op = op.chars().next().unwrap_or('+');
            self.pos += 1;
            lhs = Ast::Bin(op, Box::new(lhs), Box::new(self.term()?));
        }
        Ok(lhs)
    }

    /// term := unary (('*' | '/' | '//' | '%') unary)*
    fn term(&mut self) -> Result<Ast, ExprError> {
        let mut lhs = self.unary()?;
        while let Some(Tok::Op(op @ ("*" | "/" | "//" | "%"))) = self.peek() {
            let op = match *op {
                "*" => '*',
                "/" => '/',
                "//" => 'f',
                _ => '%',
            };
            self.pos += 1;
            lhs = Ast::Bin(op, Box::new(lhs), Box::new(self.unary()?));
        }
        Ok(lhs)
    }

    /// unary := '-' unary | '+' unary | power
    fn unary(&mut self) -> Result<Ast, ExprError> {
        match self.peek() {
            Some(Tok::Op("-")) => {
                self.pos += 1;
                Ok(Ast::Neg(Box::new(self.unary()?)))
            }
            Some(Tok::Op("+")) => {
                self.pos += 1;
                self.unary()
            }
            _ => self.power(),
        }
    }

    /// power := atom ('**' unary)?   (right-associative, binds tighter than unary minus on its left)
    fn power(&mut self) -> Result<Ast, ExprError> {
        let base = self.atom()?;
        if let Some(Tok::Op("**")) = self.peek() {
            self.pos += 1;
            return Ok(Ast::Bin('^', Box::new(base), Box::new(self.unary()?)));
        }
        Ok(base)
    }

    /// atom := number | name | name '(' args ')' | '(' expr ')'
    fn atom(&mut self) -> Result<Ast, ExprError> {
        let at = self.at();
        match self.toks.get(self.pos).cloned() {
            Some((Tok::Num(v), _)) => {
                self.pos += 1;
                Ok(Ast::Num(v))
            }
            Some((Tok::Name(n), _))
                if matches!(n.as_str(), "true" | "True" | "false" | "False") =>
            {
                self.pos += 1;
                Ok(Ast::Num(Val::Bool(n.eq_ignore_ascii_case("true"))))
            }
            Some((Tok::Name(n), _)) if matches!(n.as_str(), "null" | "None") => {
                self.pos += 1;
                Ok(Ast::Num(Val::Null))
            }
            Some((Tok::Name(n), _))
                if matches!(n.as_str(), "if" | "else" | "and" | "or" | "not") =>
            {
                Err(err(at, format!("unexpected `{n}`")))
            }
            Some((Tok::Name(n), _)) => {
                self.pos += 1;
                if self.eat("(") {
                    let mut args = Vec::new();
                    if !self.eat(")") {
                        loop {
                            args.push(self.expr()?);
                            if self.eat(")") {
                                break;
                            }
                            if !self.eat(",") {
                                return Err(err(self.at(), "expected `,` or `)` in the call"));
                            }
                        }
                    }
                    return Ok(Ast::Call(n, args, at));
                }
                Ok(Ast::Var(n, at))
            }
            Some((Tok::Op("("), _)) => {
                self.pos += 1;
                let e = self.expr()?;
                if !self.eat(")") {
                    return Err(err(self.at(), "expected `)`"));
                }
                Ok(e)
            }
            Some((Tok::Op(op), _)) => Err(err(at, format!("unexpected `{op}`"))),
            None => Err(err(at, "the expression ends too soon")),
        }
    }
}

impl Expr {
    /// Parses the text inside `${…}`.
    pub fn parse(text: &str) -> Result<Expr, ExprError> {
        let toks = lex(text)?;
        let mut p = Parser {
            toks,
            pos: 0,
            end: text.len(),
        };
        let ast = p.expr()?;
        if p.pos < p.toks.len() {
            return Err(err(p.at(), "unexpected text after the expression"));
        }
        Ok(Expr {
            ast,
            text: text.to_string(),
        })
    }

    /// The expression as text, with the names `value` knows written as their values (an
    /// f64 is written so that it reads back bit for bit).
    pub fn render(&self, value: &dyn Fn(&str) -> Option<Val>) -> String {
        fn go(a: &Ast, value: &dyn Fn(&str) -> Option<Val>) -> String {
            match a {
                Ast::Num(Val::Float(x)) => format!("{x:?}"),
                Ast::Num(Val::Str(t)) if t.contains('\'') => format!("\"{t}\""),
                Ast::Num(Val::Str(t)) => format!("'{t}'"),
                Ast::Num(v) => v.to_string(),
                Ast::Var(n, _) => match value(n) {
                    Some(Val::Float(x)) => format!("({x:?})"),
                    Some(Val::Int(i)) => format!("({i})"),
                    Some(Val::Bool(b)) => b.to_string(),
                    Some(Val::Null) => "null".to_string(),
                    Some(Val::Str(t)) if t.contains('\'') => format!("\"{t}\""),
                    Some(Val::Str(t)) => format!("'{t}'"),
                    _ => n.clone(),
                },
                Ast::Cmp(op, l, r) => format!("({} {op} {})", go(l, value), go(r, value)),
                Ast::Logic("not", v) => format!("(not {})", go(&v[0], value)),
                Ast::Logic(op, v) => format!(
                    "({})",
                    v.iter()
                        .map(|x| go(x, value))
                        .collect::<Vec<_>>()
                        .join(&format!(" {op} "))
                ),
                Ast::If(t, c, o) => format!(
                    "({} if {} else {})",
                    go(t, value),
                    go(c, value),
                    go(o, value)
                ),
                Ast::Neg(x) => format!("(-{})", go(x, value)),
                Ast::Bin(op, l, r) => {
                    let op = match op {
                        'f' => "//",
                        '^' => "**",
                        '+' => "+",
                        '-' => "-",
                        '*' => "*",
                        '/' => "/",
                        _ => "%",
                    };
                    format!("({} {op} {})", go(l, value), go(r, value))
                }
                Ast::Call(f, args, _) => format!(
                    "{f}({})",
                    args.iter()
                        .map(|x| go(x, value))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        go(&self.ast, value)
    }

    /// The variables it reads.
    pub fn free_vars(&self) -> Vec<(String, usize)> {
        fn walk(a: &Ast, out: &mut Vec<(String, usize)>) {
            match a {
                Ast::Num(_) => {}
                Ast::Var(n, at) => out.push((n.clone(), *at)),
                Ast::Neg(x) => walk(x, out),
                Ast::Bin(_, l, r) => {
                    walk(l, out);
                    walk(r, out);
                }
                Ast::Call(_, args, _) | Ast::Logic(_, args) => {
                    args.iter().for_each(|x| walk(x, out))
                }
                Ast::Cmp(_, l, r) => {
                    walk(l, out);
                    walk(r, out);
                }
                Ast::If(t, c, o) => {
                    walk(t, out);
                    walk(c, out);
                    walk(o, out);
                }
            }
        }
        let mut v = Vec::new();
        walk(&self.ast, &mut v);
        v
    }

    /// Evaluates it; `var` gives the value of each name.
    pub fn eval(&self, var: &dyn Fn(&str) -> Option<Val>) -> Result<Val, ExprError> {
        let v = eval(&self.ast, var)?;
        if let Val::Float(x) = v {
            if !x.is_finite() {
                return Err(err(0, format!("the result is not a finite number ({x})")));
            }
        }
        Ok(v)
    }
}

fn eval(a: &Ast, var: &dyn Fn(&str) -> Option<Val>) -> Result<Val, ExprError> {
    Ok(match a {
        Ast::Num(v) => v.clone(),
        Ast::If(then, cond, otherwise) => {
            if eval(cond, var)?.truth() {
                eval(then, var)?
            } else {
                eval(otherwise, var)?
            }
        }
        Ast::Logic("not", v) => Val::Bool(!eval(&v[0], var)?.truth()),
        Ast::Logic(op, v) => {
            // Python's: the first operand that decides, or the last.
            let mut last = Val::Bool(*op == "and");
            for x in v {
                last = eval(x, var)?;
                if last.truth() == (*op == "or") {
                    break;
                }
            }
            last
        }
        Ast::Cmp(op, l, r) => {
            let (l, r) = (eval(l, var)?, eval(r, var)?);
            let ord = match (&l, &r) {
                (Val::Str(a), Val::Str(b)) => a.partial_cmp(b),
                (Val::Null, Val::Null) => Some(std::cmp::Ordering::Equal),
                (Val::Str(_) | Val::Null, _) | (_, Val::Str(_) | Val::Null) => {
                    if matches!(*op, "==" | "!=") {
                        return Ok(Val::Bool(*op == "!="));
                    }
                    return Err(err(0, format!("cannot order {l} and {r}")));
                }
                (Val::Int(a), Val::Int(b)) => a.partial_cmp(b),
                _ => {
                    let num = |v: &Val| v.num().map_err(|m| err(0, m));
                    num(&l)?.partial_cmp(&num(&r)?)
                }
            };
            use std::cmp::Ordering::*;
            Val::Bool(match (*op, ord) {
                ("==", o) => o == Some(Equal),
                ("!=", o) => o != Some(Equal),
                ("<", o) => o == Some(Less),
                ("<=", o) => matches!(o, Some(Less | Equal)),
                (">", o) => o == Some(Greater),
                (_, o) => matches!(o, Some(Greater | Equal)),
            })
        }
        Ast::Var(n, at) => var(n).ok_or_else(|| err(*at, format!("unknown variable `{n}`")))?,
        Ast::Neg(x) => match eval(x, var)? {
            Val::Int(i) => Val::Int(-i),
            v => Val::Float(-v.num().map_err(|m| err(0, m))?),
        },
        Ast::Bin(op, l, r) => {
            let (l, r) = (eval(l, var)?, eval(r, var)?);
            let num = |v: &Val| v.num().map_err(|m| err(0, m));
            match (op, &l, &r) {
                ('+', Val::Str(a), Val::Str(b)) => Val::Str(format!("{a}{b}")),
                ('+', Val::Int(a), Val::Int(b)) => checked(a.checked_add(*b))?,
                ('-', Val::Int(a), Val::Int(b)) => checked(a.checked_sub(*b))?,
                ('*', Val::Int(a), Val::Int(b)) => checked(a.checked_mul(*b))?,
                ('f' | '%', Val::Int(_), Val::Int(0)) => {
                    return Err(err(0, "division by zero"));
                }
                ('f', Val::Int(a), Val::Int(b)) => {
                    // Python's floor division: toward −∞.
                    let q = a / b;
                    Val::Int(if a % b != 0 && ((*a < 0) != (*b < 0)) {
                        q - 1
                    } else {
                        q
                    })
                }
                ('%', Val::Int(a), Val::Int(b)) => Val::Int(((a % b) + b) % b),
                ('^', Val::Int(a), Val::Int(b)) if *b >= 0 => {
                    checked(u32::try_from(*b).ok().and_then(|e| a.checked_pow(e)))?
                }
                _ => {
                    let (x, y) = (num(&l)?, num(&r)?);
                    if matches!(op, '/' | 'f' | '%') && y == 0.0 {
                        return Err(err(0, "division by zero"));
                    }
                    Val::Float(match op {
                        '+' => x + y,
                        '-' => x - y,
                        '*' => x * y,
                        '/' => x / y,
                        'f' => (x / y).floor(),
                        '%' => x - y * (x / y).floor(),
                        _ => x.powf(y),
                    })
                }
            }
        }
        Ast::Call(f, args, at) => {
            let vals: Vec<Val> = args
                .iter()
                .map(|x| eval(x, var))
                .collect::<Result<_, _>>()?;
            let arity = |n: usize| {
                if vals.len() == n {
                    Ok(())
                } else {
                    Err(err(
                        *at,
                        format!("`{f}` takes {n} argument(s), got {}", vals.len()),
                    ))
                }
            };
            let x = || vals[0].num().map_err(|m| err(*at, m));
            match f.as_str() {
                "sqrt" | "log" | "exp" => {
                    arity(1)?;
                    let v = x()?;
                    if (f == "sqrt" && v < 0.0) || (f == "log" && v <= 0.0) {
                        return Err(err(*at, format!("`{f}` of {v} is not a real number")));
                    }
                    Val::Float(match f.as_str() {
                        "sqrt" => v.sqrt(),
                        "log" => v.ln(),
                        _ => v.exp(),
                    })
                }
                "floor" | "ceil" => {
                    arity(1)?;
                    let v = x()?;
                    let r = if f == "floor" { v.floor() } else { v.ceil() };
                    if !r.is_finite() || r.abs() > 1e30 {
                        return Err(err(*at, format!("`{f}` of {v} is out of range")));
                    }
                    Val::Int(r as i128)
                }
                "abs" => {
                    arity(1)?;
                    match &vals[0] {
                        Val::Int(i) => Val::Int(i.abs()),
                        _ => Val::Float(x()?.abs()),
                    }
                }
                "min" | "max" => {
                    if vals.is_empty() {
                        return Err(err(*at, format!("`{f}` needs at least one argument")));
                    }
                    let mut best = vals[0].clone();
                    for v in &vals[1..] {
                        let (a, b) = (
                            best.num().map_err(|m| err(*at, m))?,
                            v.num().map_err(|m| err(*at, m))?,
                        );
                        if (f == "min" && b < a) || (f == "max" && b > a) {
                            best = v.clone();
                        }
                    }
                    best
                }
                _ => {
                    let mut e = err(*at, format!("unknown function `{f}`"));
                    e.help = Some(match did_you_mean(f, FUNCTIONS) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => format!("functions: {}", FUNCTIONS.join(", ")),
                    });
                    return Err(e);
                }
            }
        }
    })
}

fn checked(v: Option<i128>) -> Result<Val, ExprError> {
    v.map(Val::Int)
        .ok_or_else(|| err(0, "the integer result overflows 128 bits"))
}

/// The text of a `${…}` value, if the string is exactly one.
pub fn expression_text(s: &str) -> Option<&str> {
    s.strip_prefix("${")?.strip_suffix('}')
}

/// The spec's variables: values as written (or set on the command line), evaluated on
/// first use, each at most once.
pub struct Vars {
    defs: HashMap<String, (Node, Span)>,
    done: std::cell::RefCell<HashMap<String, Option<Val>>>,
    busy: std::cell::RefCell<Vec<String>>,
}

impl Vars {
    /// Reads `vars:` (a map) and applies `--set` overrides; problems go to `diags`.
    pub fn new(node: Option<&Node>, set: &[(String, String)], diags: &mut Diags) -> Vars {
        let mut defs = HashMap::new();
        match node.map(|n| &n.value) {
            None | Some(Value::Null) => {}
            Some(Value::Map(entries)) => {
                for e in entries {
                    if !valid_name(&e.key) {
                        diags.push(
                            Diagnostic::error(diag::INVALID_VALUE, e.key_span, format!("`{}` is not a variable name", e.key))
                                .label("not a name")
                                .help("a variable name is letters, digits and `_`, not starting with a digit"),
                        );
                        continue;
                    }
                    defs.insert(e.key.clone(), (e.value.clone(), e.key_span));
                }
            }
            Some(_) => diags.push(crate::spec::fields::wrong_type(
                node.expect("matched a value"),
                "vars",
                "a map of names to values",
                "{d_model: 512}",
            )),
        }
        let vars_span = node.map_or(Span::default(), |n| n.span);
        for (k, v) in set {
            let span = defs.get(k).map_or(vars_span, |(n, _)| n.span);
            if !defs.contains_key(k) {
                let mut d = Diagnostic::error(
                    diag::UNKNOWN_VARIABLE,
                    vars_span,
                    format!("`--set {k}=…` names no variable of the spec"),
                )
                .label("the spec's `vars`");
                d = match did_you_mean(k, defs.keys().map(String::as_str)) {
                    Some(s) => d.help(format!("did you mean `{s}`?")),
                    None if defs.is_empty() => {
                        d.help("the spec has no `vars:`; add the variable there first")
                    }
                    None => {
                        let mut names: Vec<&str> = defs.keys().map(String::as_str).collect();
                        names.sort();
                        d.help(format!("variables: {}", names.join(", ")))
                    }
                };
                if node.is_none() {
                    d.primary = None;
                }
                diags.push(d);
                continue;
            }
            let value = if let Ok(b) = v.trim().parse::<bool>() {
                Value::Bool(b)
            } else if matches!(v.trim(), "null" | "None" | "~") {
                Value::Null
            } else if let Ok(i) = v.trim().parse::<i128>() {
                Value::Int(i)
            } else if let Ok(x) = v.trim().parse::<f64>() {
                Value::Float(x)
            } else {
                Value::Str(v.clone())
            };
            let key_span = defs[k].1;
            defs.insert(k.clone(), (Node { value, span }, key_span));
        }
        Vars {
            defs,
            done: Default::default(),
            busy: Default::default(),
        }
    }

    /// Whether `name` is a variable.
    pub fn has(&self, name: &str) -> bool {
        self.defs.contains_key(name)
    }

    /// The names, for did-you-mean.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.defs.keys().map(String::as_str)
    }

    /// The value of `name` (`None` when it has an error, reported once).
    pub fn get(&self, name: &str, diags: &mut Diags) -> Option<Val> {
        if let Some(v) = self.done.borrow().get(name) {
            return v.clone();
        }
        let (node, _) = self.defs.get(name)?;
        if self.busy.borrow().iter().any(|b| b == name) {
            let chain = self.busy.borrow().join(" → ");
            diags.push(
                Diagnostic::error(
                    diag::INVALID_EXPRESSION,
                    node.span,
                    format!("the variables refer to each other in a cycle: {chain} → {name}"),
                )
                .label("cycle")
                .help("give one of them a value that does not depend on the others"),
            );
            self.done.borrow_mut().insert(name.to_string(), None);
            return None;
        }
        self.busy.borrow_mut().push(name.to_string());
        let v = match &node.value {
            Value::Int(i) => Some(Val::Int(*i)),
            Value::Float(x) => Some(Val::Float(*x)),
            Value::Bool(b) => Some(Val::Bool(*b)),
            Value::Null => Some(Val::Null),
            Value::Str(s) => match expression_text(s) {
                Some(text) => evaluate(
                    text,
                    node.span,
                    &|n| n != name && self.has(n),
                    &|n, d| self.get(n, d),
                    diags,
                ),
                None => Some(Val::Str(s.clone())),
            },
            _ => {
                diags.push(crate::spec::fields::wrong_type(
                    node,
                    name,
                    "a number, a string, true / false or an expression",
                    "512",
                ));
                None
            }
        };
        self.busy.borrow_mut().pop();
        self.done.borrow_mut().insert(name.to_string(), v.clone());
        v
    }
}

fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

/// Evaluates `text` (written at `span`): names `known` are looked up with `get`; an
/// error is reported at the expression and gives `None`.
fn evaluate(
    text: &str,
    span: Span,
    known: &dyn Fn(&str) -> bool,
    get: &dyn Fn(&str, &mut Diags) -> Option<Val>,
    diags: &mut Diags,
) -> Option<Val> {
    match Expr::parse(text) {
        Ok(e) => evaluate_parsed(&e, span, known, get, diags),
        Err(e) => {
            report(span, &e, diags);
            None
        }
    }
}

/// [`evaluate`] of an expression already parsed.
fn evaluate_parsed(
    expr: &Expr,
    span: Span,
    known: &dyn Fn(&str) -> bool,
    get: &dyn Fn(&str, &mut Diags) -> Option<Val>,
    diags: &mut Diags,
) -> Option<Val> {
    let mut values: HashMap<String, Option<Val>> = HashMap::new();
    for (n, _) in expr.free_vars() {
        if !values.contains_key(&n) && known(&n) {
            let v = get(&n, diags);
            values.insert(n, v);
        }
    }
    if values.values().any(Option::is_none) {
        return None; // a variable's own error, reported there
    }
    match expr.eval(&|n| values.get(n).cloned().flatten()) {
        Ok(v) => Some(v),
        Err(e) => {
            report(span, &e, diags);
            None
        }
    }
}

fn report(span: Span, e: &ExprError, diags: &mut Diags) {
    let mut d = Diagnostic::error(diag::INVALID_EXPRESSION, span, e.message.clone())
        .label("in this expression");
    if let Some(h) = &e.help {
        d = d.help(h.clone());
    }
    diags.push(d);
}

/// What a `${…}` may name where it is written: the variables, the indices of the
/// repeats around it, and (inside an initializer) `fan_in` and `fan_out`.
#[derive(Clone, Default)]
pub struct Scope {
    /// Names bound to values here (repeat indices already stamped).
    pub bound: Vec<(String, Val)>,
    /// Names known but not yet bound (an enclosing repeat's index, the fans).
    pub deferred: Vec<String>,
}

/// Replaces every `${…}` value of `node` that can be computed in `scope`; one that reads
/// a deferred name is left for later (a repeat's copies, a tensor's fans). Keys named
/// `vars` are skipped at the top.
pub fn substitute(node: &mut Node, vars: &Vars, scope: &Scope, diags: &mut Diags) {
    match &mut node.value {
        Value::Str(s) => {
            if !s.contains("${") {
                return;
            }
            let span = node.span;
            if let Some(text) = expression_text(s).filter(|t| !t.contains('}')) {
                // Exactly one expression: its value, typed (a number stays a number).
                match resolve(text, span, vars, scope, diags) {
                    Some(Resolved::Value(v)) => node.value = v.to_value(),
                    Some(Resolved::Deferred(r)) => node.value = Value::Str(format!("${{{r}}}")),
                    None => diags.poison(span),
                }
                return;
            }
            // A template: text with `${…}` inside (`encoder_layer_${i}`) stays text.
            let Some(parts) = template_parts(s) else {
                let mut e = err(0, "`${` without its closing `}`");
                e.help = Some("write `${expression}`".into());
                report(span, &e, diags);
                diags.poison(span);
                return;
            };
            let mut out = String::new();
            for part in parts {
                match part {
                    Part::Text(t) => out.push_str(t),
                    Part::Expr(text) => match resolve(text, span, vars, scope, diags) {
                        Some(Resolved::Value(v)) => out.push_str(&template_text(&v)),
                        Some(Resolved::Deferred(r)) => {
                            out.push_str("${");
                            out.push_str(&r);
                            out.push('}');
                        }
                        None => {
                            diags.poison(span);
                            return;
                        }
                    },
                }
            }
            node.value = Value::Str(out);
        }
        Value::Seq(items) => {
            for i in items {
                substitute(i, vars, scope, diags);
            }
        }
        Value::Map(entries) => {
            // A repeated block's children see its index as deferred (stamped per copy).
            let is_repeat = entries.iter().any(|e| e.key == "repeat")
                && entries
                    .iter()
                    .any(|e| e.key == "type" && e.value.value == Value::Str("sequential".into()));
            let index = entries
                .iter()
                .find(|e| e.key == "index")
                .and_then(|e| match &e.value.value {
                    Value::Str(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "i".to_string());
            for e in entries.iter_mut() {
                let mut inner = scope.clone();
                // `copy_name` reads the index even where `repeat` is missing: that error
                // is the block's to say.
                if (is_repeat && e.key == "layers") || e.key == "copy_name" {
                    inner.bound.retain(|(b, _)| *b != index);
                    inner.deferred.push(index.clone());
                }
                if e.key.ends_with("initializer") || e.key == "initializer" {
                    inner
                        .deferred
                        .extend(["fan_in".to_string(), "fan_out".to_string()]);
                }
                substitute(&mut e.value, vars, &inner, diags);
            }
        }
        _ => {}
    }
}

/// What one `${…}` comes to where it is written.
enum Resolved {
    /// Its value.
    Value(Val),
    /// It reads a deferred name: the expression with what is known filled in.
    Deferred(String),
}

/// Resolves the expression `text` (written at `span`) in `scope`; `None` after an error
/// reported there.
fn resolve(
    text: &str,
    span: Span,
    vars: &Vars,
    scope: &Scope,
    diags: &mut Diags,
) -> Option<Resolved> {
    let expr = match Expr::parse(text) {
        Ok(e) => e,
        Err(e) => {
            report(span, &e, diags);
            return None;
        }
    };
    // Names that are neither bound nor deferred are unknown: say so here.
    let mut deferred = false;
    for (n, _) in expr.free_vars() {
        if scope.bound.iter().any(|(b, _)| *b == n) || vars.has(&n) {
            continue;
        }
        if scope.deferred.contains(&n) {
            deferred = true;
            continue;
        }
        let names: Vec<&str> = vars
            .names()
            .chain(scope.bound.iter().map(|(b, _)| b.as_str()))
            .chain(scope.deferred.iter().map(String::as_str))
            .collect();
        let mut d = Diagnostic::error(
            diag::UNKNOWN_VARIABLE,
            span,
            format!("unknown variable `{n}` in `${{{text}}}`"),
        )
        .label("in this expression");
        d = match did_you_mean(&n, names.iter().copied()) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None if names.is_empty() => d.help("define it under `vars:`"),
            None => {
                let mut names = names;
                names.sort();
                names.dedup();
                d.help(format!("names here: {}", names.join(", ")))
            }
        };
        diags.push(d);
        return None;
    }
    if deferred {
        // Compute what is known now; what is left reads only deferred names.
        let mut known = Vec::new();
        for (n, _) in expr.free_vars() {
            let v = match scope.bound.iter().find(|(b, _)| *b == n) {
                Some((_, v)) => Some(v.clone()),
                None if vars.has(&n) => vars.get(&n, diags),
                None => continue,
            };
            known.push((n, v?));
        }
        return Some(Resolved::Deferred(expr.render(&|n| {
            known.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone())
        })));
    }
    let bound = scope.bound.clone();
    evaluate_parsed(
        &expr,
        span,
        &|n| vars.has(n) || bound.iter().any(|(b, _)| b == n),
        &|n, d| match bound.iter().find(|(b, _)| b == n) {
            Some((_, v)) => Some(v.clone()),
            None => vars.get(n, d),
        },
        diags,
    )
    .map(Resolved::Value)
}

/// A piece of a template string.
enum Part<'a> {
    Text(&'a str),
    /// The text inside one `${…}`.
    Expr(&'a str),
}

/// Splits `s` into text and `${…}` pieces; `None` when a `${` is not closed.
fn template_parts(s: &str) -> Option<Vec<Part<'_>>> {
    let mut parts = Vec::new();
    let mut rest = s;
    while let Some(at) = rest.find("${") {
        if at > 0 {
            parts.push(Part::Text(&rest[..at]));
        }
        let close = rest[at + 2..].find('}')? + at + 2;
        parts.push(Part::Expr(&rest[at + 2..close]));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest));
    }
    Some(parts)
}

/// A value as it reads inside a template: whole numbers without a fraction, text bare.
fn template_text(v: &Val) -> String {
    match v.to_value() {
        Value::Int(i) => i.to_string(),
        Value::Float(x) => x.to_string(),
        Value::Str(s) => s,
        _ => v.to_string(),
    }
}

/// Whether any `${…}` left in `node` reads `name`.
pub fn mentions(node: &Node, name: &str) -> bool {
    match &node.value {
        Value::Str(s) => template_parts(s).is_some_and(|parts| {
            parts.iter().any(|p| match p {
                Part::Expr(t) => {
                    Expr::parse(t).is_ok_and(|e| e.free_vars().iter().any(|(n, _)| n == name))
                }
                Part::Text(_) => false,
            })
        }),
        Value::Seq(items) => items.iter().any(|i| mentions(i, name)),
        Value::Map(entries) => entries.iter().any(|e| mentions(&e.value, name)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str) -> Result<Val, ExprError> {
        Expr::parse(s)?.eval(&|n| match n {
            "d" => Some(Val::Int(2048)),
            "std" => Some(Val::Float(0.02)),
            "act" => Some(Val::Str("gelu".into())),
            _ => None,
        })
    }

    #[test]
    fn arithmetic_is_pythons() {
        assert_eq!(ev("1 + 2 * 3"), Ok(Val::Int(7)));
        assert_eq!(ev("(1 + 2) * 3"), Ok(Val::Int(9)));
        assert_eq!(ev("d // 3"), Ok(Val::Int(682)));
        assert_eq!(ev("-7 // 2"), Ok(Val::Int(-4)));
        assert_eq!(ev("-7 % 3"), Ok(Val::Int(2)));
        assert_eq!(ev("2 ** 10"), Ok(Val::Int(1024)));
        assert_eq!(
            ev("-2 ** 2"),
            Ok(Val::Int(-4)),
            "** binds tighter than unary minus"
        );
        assert_eq!(ev("2 ** -1"), Ok(Val::Float(0.5)));
        assert_eq!(ev("d / 2").map(|v| v.to_value()), Ok(Value::Int(1024)));
        assert_eq!(
            ev("std / sqrt(2 * (3 + 1))"),
            Ok(Val::Float(0.02 / 8f64.sqrt()))
        );
        assert_eq!(ev("max(1, d, 3)"), Ok(Val::Int(2048)));
        assert_eq!(ev("floor(2.7) + ceil(0.1)"), Ok(Val::Int(3)));
        assert_eq!(ev("act"), Ok(Val::Str("gelu".into())));
        assert_eq!(ev("1_000 * 2e-3"), Ok(Val::Float(2.0)));
    }

    #[test]
    fn conditions_are_pythons() {
        assert_eq!(ev("d > 1000 and d < 4096"), Ok(Val::Bool(true)));
        assert_eq!(ev("not d == 2048"), Ok(Val::Bool(false)));
        assert_eq!(
            ev("0 or 5"),
            Ok(Val::Int(5)),
            "or gives the deciding operand"
        );
        assert_eq!(ev("3 if d != 2048 else 4"), Ok(Val::Int(4)));
        assert_eq!(ev("1 if true else 2 if false else 3"), Ok(Val::Int(1)));
        assert_eq!(ev("act == 'gelu'"), Ok(Val::Bool(true)));
        assert_eq!(ev("act == \"relu\""), Ok(Val::Bool(false)));
        assert_eq!(ev("True + 1"), Ok(Val::Float(2.0)));
        assert!(ev("1 if true").is_err());
        assert!(ev("act < 3").is_err());
        assert!(ev("'open").is_err());
        assert_eq!(ev("null == None"), Ok(Val::Bool(true)));
        assert_eq!(ev("d == null"), Ok(Val::Bool(false)));
        assert_eq!(ev("1 if null else 2"), Ok(Val::Int(2)));
        assert!(ev("null + 1").is_err());
    }

    #[test]
    fn rendering_keeps_every_bit() {
        let e = Expr::parse("std / sqrt(2 * (i + 1)) * fan_in ** -0.5").unwrap();
        let r = e.render(&|n| match n {
            "std" => Some(Val::Float(0.1 + 0.2)),
            "i" => Some(Val::Int(3)),
            _ => None,
        });
        let back = Expr::parse(&r).unwrap();
        let f = |n: &str| (n == "fan_in").then_some(Val::Int(768));
        let want = (0.1 + 0.2) / 8f64.sqrt() * 768f64.powf(-0.5);
        assert_eq!(back.eval(&f), Ok(Val::Float(want)), "{r}");
    }

    #[test]
    fn errors_say_what_and_where() {
        assert!(ev("1 / 0")
            .unwrap_err()
            .message
            .contains("division by zero"));
        assert!(ev("d // 0")
            .unwrap_err()
            .message
            .contains("division by zero"));
        assert!(ev("sqrt(-1)")
            .unwrap_err()
            .message
            .contains("not a real number"));
        assert!(ev("exp(1000)").unwrap_err().message.contains("finite"));
        assert_eq!(ev("1 + x").unwrap_err().message, "unknown variable `x`");
        assert_eq!(ev("1 + x").unwrap_err().at, 4);
        assert_eq!(
            ev("sqr(4)").unwrap_err().help.as_deref(),
            Some("did you mean `sqrt`?")
        );
        assert!(ev("(1 + 2").is_err());
        assert!(ev("1 +").is_err());
        assert!(ev("1 $ 2").is_err());
        assert!(ev("act * 2").is_err());
        assert!(ev("10 ** 100").unwrap_err().message.contains("overflows"));
    }
}
