//! Evaluating expressions: exact 64-bit integer arithmetic with overflow and
//! division-by-zero diagnostics, floats, `in.*`, builtin functions, module values.

use super::Elaborator;
use super::value::{ArgValue, Const, Env, ModuleKind, ModuleValue};
use crate::diagnostics::{Code, Diagnostic};
use crate::ir::Shape;
use crate::source::Span;
use crate::suggest;
use crate::syntax::ast::{Arg, BinOp, Call, Expr, ExprKind};
use std::rc::Rc;

const IN_FIELDS: &[&str] = &["channels", "height", "width", "tokens", "dim", "features"];
pub const FUNCTIONS: &[&str] = &["min", "max", "make_divisible", "round", "floor", "ceil", "len", "range"];

/// Lists longer than this are a runaway `range`, not a table (as many as the layers
/// archc builds).
pub const MAX_LIST: usize = super::MAX_NODES;

impl Elaborator<'_> {
    pub(super) fn eval(&mut self, expr: &Expr, env: &Rc<Env>) -> Option<Const> {
        self.current_env = Some(env.clone());
        match &expr.kind {
            ExprKind::Int(value) => value.map(Const::Int),
            ExprKind::Float(value) => value.map(Const::Float),
            ExprKind::Bool(value) => Some(Const::Bool(*value)),
            ExprKind::Str(value) => Some(Const::Str(value.clone())),
            ExprKind::InRef(field) => self.in_field(field, env.input, expr.span),
            ExprKind::Seq(body) => Some(Const::Module(Rc::new(ModuleValue {
                kind: ModuleKind::Seq { body: body.clone(), env: env.clone() },
                span: expr.span,
            }))),
            ExprKind::Call(call) => self.eval_call(call, env),
            ExprKind::Neg(inner) => match self.eval(inner, env)? {
                Const::Int(v) => self.checked(v.checked_neg(), expr.span),
                Const::Float(v) => Some(Const::Float(-v)),
                other => self.type_error(expr.span, "a number", &other),
            },
            ExprKind::Not(inner) => match self.eval(inner, env)? {
                Const::Bool(v) => Some(Const::Bool(!v)),
                other => self.type_error(inner.span, "`true` or `false` after `not`", &other),
            },
            ExprKind::List(items) => {
                let values: Vec<Option<Const>> = items.iter().map(|item| self.eval(item, env)).collect();
                let values = values.into_iter().collect::<Option<Vec<Const>>>()?;
                // Nested lists count every item they hold: doubling a list 40 times in
                // `let`s must not make a value too large to compare or print.
                let mut budget = MAX_LIST;
                if !values.iter().all(|v| fits(v, &mut budget)) {
                    return self.too_long(None, expr.span);
                }
                Some(Const::List(Rc::new(values)))
            }
            ExprKind::Index(base, index) => {
                let (list, position) = (self.eval(base, env), self.eval(index, env));
                self.index(list?, base.span, position?, index.span)
            }
            ExprKind::If(condition, then, otherwise) => {
                // Only the branch taken is evaluated, as in Python.
                let (branch, other) =
                    if self.condition(condition, env)? { (then, otherwise) } else { (otherwise, then) };
                // The other is not evaluated, but a name misspelt in it is still a mistake.
                self.names_known(other, env, &[]);
                self.eval(branch, env)
            }
            ExprKind::Binary(op @ (BinOp::And | BinOp::Or), left, right) => {
                // Short-circuit: `i < len(x) and x[i] == 0` never indexes out of range.
                let decided = self.condition(left, env)?;
                if decided == (*op == BinOp::Or) {
                    return Some(Const::Bool(decided));
                }
                Some(Const::Bool(self.condition(right, env)?))
            }
            ExprKind::Binary(op, left, right) => {
                let (l, r) = (self.eval(left, env), self.eval(right, env));
                match (l, r) {
                    (Some(l), Some(r)) => self.binary(*op, l, r, expr.span, right.span),
                    // One side failed (already reported, or poisoned): a bare word on the
                    // other side that names nothing is a mistake of its own.
                    (None, Some(Const::Name(name))) => self.unknown_value(&name, right.span),
                    (Some(Const::Name(name)), None) => self.unknown_value(&name, left.span),
                    _ => None,
                }
            }
        }
    }

    fn in_field(&mut self, field: &crate::syntax::ast::Ident, input: Option<Shape>, span: Span) -> Option<Const> {
        if !IN_FIELDS.contains(&field.text.as_str()) {
            let mut d = Diagnostic::new(
                Code::UnknownName,
                format!("`in` has no field `{}`", field.text),
                field.span,
                "unknown field",
            )
            .with_note(format!("the fields are {}", IN_FIELDS.join(", ")));
            if let Some(help) = suggest::did_you_mean(&field.text, IN_FIELDS.iter().copied()) {
                d = d.with_help(help);
            }
            self.error(d);
            return None;
        }
        let input = input?;
        let value = match (field.text.as_str(), input) {
            ("channels" | "features", Shape::Image { c, .. }) => c,
            ("height", Shape::Image { h, .. }) => h,
            ("width", Shape::Image { w, .. }) => w,
            ("tokens", Shape::Tokens { n, .. }) => n,
            ("dim" | "features", Shape::Tokens { d, .. } | Shape::Vector { d }) => d,
            (name, _) => {
                self.error(Diagnostic::new(
                    Code::WrongType,
                    format!("`in.{name}` does not exist for an input of {input}"),
                    span,
                    format!("the input here is {input}"),
                ).with_help("`in.channels`, `in.height`, `in.width` describe images; `in.tokens` and `in.dim` describe tokens; `in.features` works for all"));
                return None;
            }
        };
        self.checked(i64::try_from(value).ok(), span)
    }

    fn checked(&mut self, value: Option<i64>, span: Span) -> Option<Const> {
        match value {
            Some(v) => Some(Const::Int(v)),
            None => {
                self.error(Diagnostic::new(Code::Overflow, "integer overflow", span, "does not fit in 64 bits"));
                None
            }
        }
    }

    pub(super) fn type_error<T>(&mut self, span: Span, expected: &str, found: &Const) -> Option<T> {
        let d = match found {
            Const::Name(name) => return self.unknown_value(name, span),
            _ => Diagnostic::new(
                Code::WrongType,
                format!("expected {expected}, found {} `{found}`", found.type_name()),
                span,
                format!("this is {} {}", article(found.type_name()), found.type_name()),
            ),
        };
        self.error(d);
        None
    }

    /// A bare word used as a value that names nothing.
    pub(super) fn unknown_value<T>(&mut self, name: &str, span: Span) -> Option<T> {
        let known = self.known_value_names();
        let mut d = Diagnostic::new(Code::UnknownName, format!("unknown name `{name}`"), span, "not defined here");
        if let Some(help) = suggest::did_you_mean(name, known.iter().map(String::as_str)) {
            d = d.with_help(help);
        } else {
            d = d.with_help("block parameters and `let` bindings are the names in scope");
        }
        self.error(d);
        None
    }

    /// A condition (`if`, `assert`, `and`, `or`): `true` or `false`, nothing else.
    pub(super) fn condition(&mut self, expr: &Expr, env: &Rc<Env>) -> Option<bool> {
        match self.eval(expr, env)? {
            Const::Bool(value) => Some(value),
            other => {
                if let Const::Name(name) = &other {
                    return self.unknown_value(name, expr.span);
                }
                self.error(
                    Diagnostic::new(
                        Code::WrongType,
                        format!(
                            "a condition must be `true` or `false`, but this is {} {}",
                            article(other.type_name()),
                            other.type_name()
                        ),
                        expr.span,
                        format!("{} `{other}`", other.type_name()),
                    )
                    .with_help("compare it: `depth == 50`, `len(cfg) > 0`, `width != 1.0`"),
                );
                None
            }
        }
    }

    /// `list[position]`, counting from the end for negative positions, as Python does.
    fn index(&mut self, list: Const, list_span: Span, position: Const, span: Span) -> Option<Const> {
        let Const::List(items) = list else {
            return self.not_a_list(&list, list_span, "only a list can be indexed", None);
        };
        let Const::Int(position) = position else { return self.type_error(span, "an integer index", &position) };
        let len = items.len() as i64;
        let at = if position < 0 { position + len } else { position };
        if !(0..len).contains(&at) {
            let valid = if len == 0 {
                "the list is empty".to_string()
            } else {
                format!("valid indexes are 0 to {} (or -{len} to -1)", len - 1)
            };
            self.error(
                Diagnostic::new(
                    Code::IndexOutOfRange,
                    format!(
                        "index {position} is out of range for a list of {len} item{}",
                        if len == 1 { "" } else { "s" }
                    ),
                    span,
                    "out of range",
                )
                .with_secondary(list_span, format!("`{list}`", list = Const::List(items.clone())))
                .with_note(valid),
            );
            return None;
        }
        Some(items[at as usize].clone())
    }

    /// Reports a value used where a list is needed (`for`, indexing, `len`). `counted` is
    /// how a loop's count was written (`depth`, `len(cfg)`), for the help `range(...)`.
    pub(super) fn not_a_list<T>(
        &mut self,
        value: &Const,
        span: Span,
        what: &str,
        counted: Option<String>,
    ) -> Option<T> {
        if let Const::Name(name) = value {
            return self.unknown_value(name, span);
        }
        self.error(
            Diagnostic::new(
                Code::NotAList,
                format!("expected a list, found {} `{value}`", value.type_name()),
                span,
                format!("this is {} {}", article(value.type_name()), value.type_name()),
            )
            .with_note(what.to_string())
            .with_help(match (value, counted) {
                // A count where a loop wants a list.
                (Const::Int(n), Some(count)) if *n > 0 => {
                    format!("to go over the numbers 0 to {}, write `range({count})`", n - 1)
                }
                _ => "write a list such as `[64, 128, 256]`, or use a parameter declared `list`".to_string(),
            }),
        );
        None
    }

    fn binary(&mut self, op: BinOp, left: Const, right: Const, span: Span, right_span: Span) -> Option<Const> {
        if matches!(op, BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge) {
            return self.compare(op, &left, &right, span, right_span);
        }
        if matches!(op, BinOp::In | BinOp::NotIn) {
            let Const::List(items) = &right else {
                return self.not_a_list(&right, right_span, "`in` looks for a value among the items of a list", None);
            };
            let found = items.iter().any(|item| same_value(&left, item));
            return Some(Const::Bool(found == (op == BinOp::In)));
        }
        if let (BinOp::Add, Const::List(a), Const::List(b)) = (op, &left, &right) {
            let joined: Vec<Const> = a.iter().chain(b.iter()).cloned().collect();
            let mut budget = MAX_LIST;
            if !joined.iter().all(|v| fits(v, &mut budget)) {
                return self.too_long(Some(a.len() + b.len()).filter(|&n| n > MAX_LIST), span);
            }
            return Some(Const::List(Rc::new(joined)));
        }
        match (&left, &right) {
            (Const::Int(a), Const::Int(b)) => {
                let (a, b) = (*a, *b);
                if matches!(op, BinOp::Div | BinOp::Rem) && b == 0 {
                    return self.division_by_zero(right_span);
                }
                let result = match op {
                    BinOp::Add => a.checked_add(b),
                    BinOp::Sub => a.checked_sub(b),
                    BinOp::Mul => a.checked_mul(b),
                    // Floor division and modulo, as Python's // and % (what PyTorch code uses).
                    BinOp::Div => {
                        let quotient =
                            a.checked_div(b).map(|q| if (a % b != 0) && ((a < 0) != (b < 0)) { q - 1 } else { q });
                        if let Some(q) = quotient
                            && a % b != 0
                        {
                            let q = self.rounded(span, crate::ir::FLOOR_DIVISION, a as f64 / b as f64, q);
                            return Some(Const::Int(q));
                        }
                        quotient
                    }
                    BinOp::Rem => a.checked_rem(b).map(|r| if r != 0 && ((r < 0) != (b < 0)) { r + b } else { r }),
                    _ => unreachable!("comparisons and logic are handled above"),
                };
                self.checked(result, span)
            }
            (Const::Int(_) | Const::Float(_), Const::Int(_) | Const::Float(_)) => {
                let (a, b) = (as_float(&left), as_float(&right));
                if matches!(op, BinOp::Div | BinOp::Rem) && b == 0.0 {
                    return self.division_by_zero(right_span);
                }
                let result = match op {
                    BinOp::Add => a + b,
                    BinOp::Sub => a - b,
                    BinOp::Mul => a * b,
                    BinOp::Div => a / b,
                    BinOp::Rem => a.rem_euclid(b),
                    _ => unreachable!("comparisons and logic are handled above"),
                };
                // `1e308 * 10` is infinite: no layer takes it (an `eps` of inf, a NaN).
                if !result.is_finite() {
                    self.error(Diagnostic::new(
                        Code::Overflow,
                        "the result is not a finite number",
                        span,
                        format!("{left} {} {right} is beyond the largest float", op.symbol()),
                    ));
                    return None;
                }
                Some(Const::Float(result))
            }
            // Two bare words that name nothing: both are mistakes.
            (Const::Name(l), Const::Name(r)) => {
                let (l, r) = (l.clone(), r.clone());
                let _: Option<()> = self.unknown_value(&l, span);
                self.unknown_value(&r, right_span)
            }
            (Const::Int(_) | Const::Float(_), other) | (other, _) => {
                let other = other.clone();
                let at = if matches!(left, Const::Int(_) | Const::Float(_)) { right_span } else { span };
                self.type_error(at, &format!("a number for `{}`", op.symbol()), &other)
            }
        }
    }

    /// `==` and `!=` on any two values (different kinds are simply unequal, as in
    /// Python: `64 == "M"` is false); `<`, `<=`, `>`, `>=` on numbers.
    fn compare(&mut self, op: BinOp, left: &Const, right: &Const, span: Span, right_span: Span) -> Option<Const> {
        let ordered = !matches!(op, BinOp::Eq | BinOp::Ne);
        let numbers =
            matches!(left, Const::Int(_) | Const::Float(_)) && matches!(right, Const::Int(_) | Const::Float(_));
        if ordered && !numbers {
            let (at, other) =
                if matches!(left, Const::Int(_) | Const::Float(_)) { (right_span, right) } else { (span, left) };
            return self.type_error(at, &format!("a number for `{}`", op.symbol()), other);
        }
        // A bare word that names nothing compared with anything but a word is a typo
        // (`flag == ture`), not a choice.
        for (word, other) in [(left, right), (right, left)] {
            if let Const::Name(name) = word
                && !matches!(other, Const::Name(_) | Const::Str(_))
                && !is_choice(name)
            {
                let at = if std::ptr::eq(word, left) { span } else { right_span };
                return self.unknown_value(name, at);
            }
        }
        if matches!(left, Const::Module(_)) || matches!(right, Const::Module(_)) {
            let at = if matches!(left, Const::Module(_)) { span } else { right_span };
            self.error(
                Diagnostic::new(Code::WrongType, "modules cannot be compared", at, "a module")
                    .with_help("compare the numbers, flags or names that choose the module instead"),
            );
            return None;
        }
        let result = match op {
            BinOp::Eq => same_value(left, right),
            BinOp::Ne => !same_value(left, right),
            _ => {
                let ordering = match (left, right) {
                    (Const::Int(a), Const::Int(b)) => a.cmp(b),
                    _ => as_float(left).partial_cmp(&as_float(right)).unwrap_or(std::cmp::Ordering::Equal),
                };
                match op {
                    BinOp::Lt => ordering.is_lt(),
                    BinOp::Le => ordering.is_le(),
                    BinOp::Gt => ordering.is_gt(),
                    _ => ordering.is_ge(),
                }
            }
        };
        Some(Const::Bool(result))
    }

    /// A list over the limit: its length when known, else (nested items) "more than".
    fn too_long<T>(&mut self, len: Option<usize>, span: Span) -> Option<T> {
        let len = len.map_or(format!("more than {MAX_LIST}"), |n| n.to_string());
        self.error(
            Diagnostic::new(
                Code::TooLarge,
                format!("a list of {len} items is more than archc unrolls ({MAX_LIST})"),
                span,
                "too long",
            )
            .with_help("check the bounds"),
        );
        None
    }

    fn division_by_zero(&mut self, span: Span) -> Option<Const> {
        self.error(
            Diagnostic::new(Code::DivisionByZero, "division by zero", span, "this is zero")
                .with_help("check the parameter values that reach this expression"),
        );
        None
    }

    /// `name`, `name(args)`: a variable, a builtin function, or a module value.
    fn eval_call(&mut self, call: &Call, env: &Rc<Env>) -> Option<Const> {
        let name = call.name.text.as_str();
        if !call.has_parens && env.is_poisoned(name) {
            return None;
        }
        if !call.has_parens
            && let Some(value) = env.lookup(name)
        {
            return Some(value);
        }
        if FUNCTIONS.contains(&name) && call.has_parens {
            return self.function(call, env);
        }
        if let Some(callee) = self.callee(name) {
            let args = self.eval_args(&call.args, env)?;
            return Some(Const::Module(Rc::new(ModuleValue {
                kind: ModuleKind::Call { name: call.name.clone(), callee, args, body: None },
                span: call.span,
            })));
        }
        if !call.has_parens {
            return Some(Const::Name(name.to_string()));
        }
        self.unknown_callee(&call.name);
        None
    }

    pub(super) fn eval_args(&mut self, args: &[Arg], env: &Rc<Env>) -> Option<Vec<ArgValue>> {
        let mut out = Vec::new();
        let mut ok = true;
        for arg in args {
            match self.eval(&arg.value, env) {
                Some(value) => out.push(ArgValue { name: arg.name.clone(), value, span: arg.span }),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn function(&mut self, call: &Call, env: &Rc<Env>) -> Option<Const> {
        let name = call.name.text.as_str();
        let evaluated: Vec<Option<Const>> = call.args.iter().map(|a| self.eval(&a.value, env)).collect();
        let Some(values) = evaluated.iter().cloned().collect::<Option<Vec<Const>>>() else {
            // Another argument failed (reported): bare unknown words beside it are mistakes too.
            for (arg, value) in call.args.iter().zip(&evaluated) {
                if let Some(Const::Name(word)) = value {
                    let _: Option<()> = self.unknown_value(word, arg.value.span);
                }
            }
            return None;
        };
        let args: Vec<ArgValue> = call
            .args
            .iter()
            .zip(values)
            .map(|(arg, value)| ArgValue { name: arg.name.clone(), value, span: arg.span })
            .collect();
        if let Some(named) = args.iter().find(|a| a.name.is_some()) {
            self.error(Diagnostic::new(
                Code::UnknownArgument,
                format!("`{name}` takes positional arguments only"),
                named.span,
                "named argument",
            ));
            return None;
        }
        let (min_args, max_args) = match name {
            "min" | "max" => (2, 2),
            "make_divisible" => (2, 3),
            "range" => (1, 3),
            _ => (1, 1),
        };
        if args.len() < min_args || args.len() > max_args {
            let expected = match max_args - min_args {
                0 => min_args.to_string(),
                1 => format!("{min_args} or {max_args}"),
                _ => format!("{min_args} to {max_args}"),
            };
            self.error(Diagnostic::new(
                Code::UnknownArgument,
                format!("`{name}` takes {expected} arguments, but {} were given", args.len()),
                call.span,
                "wrong number of arguments",
            ));
            return None;
        }
        if name == "len" {
            return match &args[0].value {
                Const::List(items) => Some(Const::Int(items.len() as i64)),
                other => self.not_a_list(&other.clone(), args[0].span, "`len` counts the items of a list", None),
            };
        }
        if name == "range" {
            return self.range(&args, call.span);
        }
        let mut numbers = Vec::new();
        for arg in &args {
            match arg.value {
                Const::Int(_) | Const::Float(_) => numbers.push(arg.value.clone()),
                ref other => return self.type_error(arg.span, "a number", &other.clone()),
            }
        }
        match name {
            "min" | "max" => {
                let pick_first = (as_float(&numbers[0]) <= as_float(&numbers[1])) == (name == "min");
                Some(if pick_first { numbers[0].clone() } else { numbers[1].clone() })
            }
            "make_divisible" => {
                // timm's make_divisible: round to the nearest multiple of `divisor` (at
                // least `divisor`), and add one more if that lost more than (1 - limit).
                let value = as_float(&numbers[0]);
                let divisor = as_float(&numbers[1]);
                let limit = numbers.get(2).map(as_float).unwrap_or(0.9);
                if divisor == 0.0 {
                    return self.division_by_zero(args[1].span);
                }
                if divisor < 0.0 {
                    self.error(Diagnostic::new(
                        Code::InvalidValue,
                        format!("`make_divisible` rounds to a multiple of a positive divisor, not {}", numbers[1]),
                        args[1].span,
                        "negative divisor",
                    ));
                    return None;
                }
                let mut rounded = (((value + divisor / 2.0) / divisor).floor() * divisor).max(divisor);
                if rounded < limit * value {
                    rounded += divisor;
                }
                let rule = format!("make_divisible(·, {})", numbers[1]);
                self.rounded_float(call.span, &rule, value, rounded)
            }
            "round" => {
                let value = as_float(&numbers[0]);
                self.rounded_float(call.span, "round", value, value.round_ties_even())
            }
            "floor" => {
                let value = as_float(&numbers[0]);
                self.rounded_float(call.span, "floor", value, value.floor())
            }
            _ => {
                let value = as_float(&numbers[0]);
                self.rounded_float(call.span, "ceil", value, value.ceil())
            }
        }
    }

    fn rounded_float(&mut self, span: Span, rule: &str, exact: f64, rounded: f64) -> Option<Const> {
        let Some(Const::Int(rounded)) = self.float_to_int(rounded, span) else { return None };
        Some(Const::Int(self.rounded(span, rule, exact, rounded)))
    }

    /// Records a value rounded to a whole number (for `check --rounding`) and returns it,
    /// moved by a step when the rounding report asks (`Options::nudge`).
    fn rounded(&mut self, span: Span, rule: &str, exact: f64, rounded: i64) -> i64 {
        self.roundings.push(crate::ir::Rounding { span, rule: rule.to_string(), exact, rounded });
        match self.options.nudge {
            Some((at, value, step)) if at == span && value == exact => rounded.saturating_add(step),
            _ => rounded,
        }
    }

    /// `range(stop)`, `range(start, stop)`, `range(start, stop, step)`, as Python's.
    fn range(&mut self, args: &[ArgValue], span: Span) -> Option<Const> {
        let mut bounds = Vec::new();
        for arg in args {
            match arg.value {
                Const::Int(v) => bounds.push(v),
                ref other => return self.type_error(arg.span, "an integer", &other.clone()),
            }
        }
        let (start, stop, step) = match bounds[..] {
            [stop] => (0, stop, 1),
            [start, stop] => (start, stop, 1),
            [start, stop, step] => (start, stop, step),
            _ => unreachable!("arity checked above"),
        };
        if step == 0 {
            self.error(Diagnostic::new(Code::InvalidValue, "`range` step must not be zero", args[2].span, "zero step"));
            return None;
        }
        let len = if step > 0 {
            (stop as i128 - start as i128 + step as i128 - 1).div_euclid(step as i128)
        } else {
            (start as i128 - stop as i128 - step as i128 - 1).div_euclid(-(step as i128))
        }
        .max(0);
        if len > MAX_LIST as i128 {
            return self.too_long(usize::try_from(len).ok(), span);
        }
        let items = (0..len as i64).map(|i| Const::Int(start + i * step)).collect();
        Some(Const::List(Rc::new(items)))
    }

    fn float_to_int(&mut self, value: f64, span: Span) -> Option<Const> {
        if value.is_finite() && value.abs() < 9.0e18 {
            Some(Const::Int(value as i64))
        } else {
            self.checked(None, span)
        }
    }
}

/// Whether a bare word is one of the choices some layer or form takes (`sum`, `spatial`).
pub fn is_choice(word: &str) -> bool {
    let in_ops = crate::ops::all_specs()
        .flat_map(|s| s.args.iter())
        .any(|a| matches!(a.ty, crate::ops::Ty::Choice(options) if options.contains(&word)));
    in_ops || super::structure::MERGES.contains(&word)
}

/// Whether a value's items (nested lists counted item by item) fit in what is left of
/// `budget`, which it uses up.
fn fits(value: &Const, budget: &mut usize) -> bool {
    if *budget == 0 {
        return false;
    }
    *budget -= 1;
    match value {
        Const::List(items) => items.iter().all(|item| fits(item, budget)),
        _ => true,
    }
}

/// Equality as `==` sees it: numbers by value, words and strings by text, lists item
/// by item; values of different kinds are unequal.
pub fn same_value(left: &Const, right: &Const) -> bool {
    match (left, right) {
        (Const::Int(a), Const::Int(b)) => a == b,
        (Const::Int(_) | Const::Float(_), Const::Int(_) | Const::Float(_)) => as_float(left) == as_float(right),
        (Const::Bool(a), Const::Bool(b)) => a == b,
        (Const::Name(a) | Const::Str(a), Const::Name(b) | Const::Str(b)) => a == b,
        (Const::List(a), Const::List(b)) => a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| same_value(x, y)),
        _ => false,
    }
}

pub fn as_float(value: &Const) -> f64 {
    match value {
        Const::Int(v) => *v as f64,
        Const::Float(v) => *v,
        _ => 0.0,
    }
}

pub fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
}
