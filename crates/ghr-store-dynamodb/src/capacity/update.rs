//! Applies an `UpdateExpression` to the meter's copy of an item, so that the item's size after an update (and
//! which index keys it has) is known without reading it back.
//!
//! Covers the expression language's four clauses: `SET` (`path = value`, `value + value`, `value - value`,
//! `if_not_exists(path, value)`, `list_append(value, value)`), `REMOVE`, `ADD` (numbers and sets) and `DELETE`
//! (sets), on paths of names, `#placeholders`, `.` and `[index]`.

use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

/// Why an expression could not be applied (the meter then counts the write as unmodelled).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpressionError {
    #[error("syntax: {0}")]
    Syntax(String),
    #[error("placeholder {0} is not defined")]
    Placeholder(String),
    #[error("types: {0}")]
    Type(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Name(String),
    Value(String),
    Index(usize),
    Punct(char),
}

fn tokens(expression: &str) -> Result<Vec<Token>, ExpressionError> {
    let chars: Vec<char> = expression.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let word_char = |c: char| c.is_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' || c == ':' || word_char(c) {
            let start = i;
            i += 1;
            while i < chars.len() && word_char(chars[i]) {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect();
            out.push(match c {
                '#' => Token::Name(text),
                ':' => Token::Value(text),
                _ => Token::Word(text),
            });
        } else if c == '[' {
            let close = chars[i..].iter().position(|&c| c == ']').ok_or_else(|| syntax("unclosed ["))? + i;
            let index: String = chars[i + 1..close].iter().collect();
            out.push(Token::Index(index.trim().parse().map_err(|_| syntax(&format!("bad index [{index}]")))?));
            i = close + 1;
        } else if "=,()+-.".contains(c) {
            out.push(Token::Punct(c));
            i += 1;
        } else {
            return Err(syntax(&format!("unexpected {c:?}")));
        }
    }
    Ok(out)
}

fn syntax(what: &str) -> ExpressionError {
    ExpressionError::Syntax(what.to_owned())
}

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    At(usize),
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    names: &'a HashMap<String, String>,
    values: &'a HashMap<String, AttributeValue>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(&Token::Punct(c)) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), ExpressionError> {
        if self.eat(c) { Ok(()) } else { Err(syntax(&format!("expected {c:?} at token {}", self.at))) }
    }

    fn key(&self, token: Token) -> Result<String, ExpressionError> {
        match token {
            Token::Word(word) => Ok(word),
            Token::Name(name) => self.names.get(&name).cloned().ok_or(ExpressionError::Placeholder(name)),
            other => Err(syntax(&format!("expected an attribute name, found {other:?}"))),
        }
    }

    fn path(&mut self) -> Result<Vec<Step>, ExpressionError> {
        let first = self.next().ok_or_else(|| syntax("expected a path"))?;
        let mut steps = vec![Step::Key(self.key(first)?)];
        loop {
            match self.peek() {
                Some(Token::Index(i)) => {
                    steps.push(Step::At(*i));
                    self.at += 1;
                }
                Some(Token::Punct('.')) => {
                    self.at += 1;
                    let token = self.next().ok_or_else(|| syntax("expected a name after ."))?;
                    steps.push(Step::Key(self.key(token)?));
                }
                _ => return Ok(steps),
            }
        }
    }

    fn literal(&mut self) -> Result<AttributeValue, ExpressionError> {
        match self.next() {
            Some(Token::Value(v)) => self.values.get(&v).cloned().ok_or(ExpressionError::Placeholder(v)),
            other => Err(syntax(&format!("expected a :value, found {other:?}"))),
        }
    }

    fn operand(&mut self, item: &Item) -> Result<Option<AttributeValue>, ExpressionError> {
        match self.peek().cloned() {
            Some(Token::Value(_)) => self.literal().map(Some),
            Some(Token::Word(word)) if self.tokens.get(self.at + 1) == Some(&Token::Punct('(')) => {
                self.at += 2;
                let result = match word.to_ascii_lowercase().as_str() {
                    "if_not_exists" => {
                        let path = self.path()?;
                        self.expect(',')?;
                        let fallback = self.value(item)?;
                        get(item, &path).cloned().or(fallback)
                    }
                    "list_append" => {
                        let first = self.value(item)?;
                        self.expect(',')?;
                        let second = self.value(item)?;
                        match (first, second) {
                            (Some(AttributeValue::L(mut a)), Some(AttributeValue::L(b))) => {
                                a.extend(b);
                                Some(AttributeValue::L(a))
                            }
                            (a, b) => return Err(ExpressionError::Type(format!("list_append of {a:?} and {b:?}"))),
                        }
                    }
                    other => return Err(syntax(&format!("unknown function {other}"))),
                };
                self.expect(')')?;
                Ok(result)
            }
            Some(_) => {
                let path = self.path()?;
                Ok(get(item, &path).cloned())
            }
            None => Err(syntax("expected a value")),
        }
    }

    fn value(&mut self, item: &Item) -> Result<Option<AttributeValue>, ExpressionError> {
        let left = self.operand(item)?;
        let sign = if self.eat('+') {
            1
        } else if self.eat('-') {
            -1
        } else {
            return Ok(left);
        };
        let right = self.operand(item)?;
        match (left, right) {
            (Some(AttributeValue::N(a)), Some(AttributeValue::N(b))) => Ok(Some(AttributeValue::N(add(&a, &b, sign)?))),
            (a, b) => Err(ExpressionError::Type(format!("arithmetic on {a:?} and {b:?}"))),
        }
    }
}

fn add(a: &str, b: &str, sign: i128) -> Result<String, ExpressionError> {
    if let (Ok(x), Ok(y)) = (a.parse::<i128>(), b.parse::<i128>()) {
        return Ok((x + sign * y).to_string());
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => Ok((x + sign as f64 * y).to_string()),
        _ => Err(ExpressionError::Type(format!("{a} and {b} are not numbers"))),
    }
}

fn get<'i>(item: &'i Item, path: &[Step]) -> Option<&'i AttributeValue> {
    let (Step::Key(first), rest) = path.split_first()? else { return None };
    let mut value = item.get(first)?;
    for step in rest {
        value = match (step, value) {
            (Step::Key(k), AttributeValue::M(map)) => map.get(k)?,
            (Step::At(i), AttributeValue::L(list)) => list.get(*i)?,
            _ => return None,
        };
    }
    Some(value)
}

fn slot<'i>(value: &'i mut AttributeValue, step: &Step) -> Result<&'i mut AttributeValue, ExpressionError> {
    match (step, value) {
        (Step::Key(k), AttributeValue::M(map)) => {
            map.get_mut(k).ok_or_else(|| ExpressionError::Type(format!("no {k}")))
        }
        (Step::At(i), AttributeValue::L(list)) => {
            list.get_mut(*i).ok_or_else(|| ExpressionError::Type(format!("no [{i}]")))
        }
        (step, value) => Err(ExpressionError::Type(format!("{step:?} into {value:?}"))),
    }
}

/// Set (`Some`) or remove (`None`) the value at `path`.
fn put(item: &mut Item, path: &[Step], new: Option<AttributeValue>) -> Result<(), ExpressionError> {
    let Some((Step::Key(first), rest)) = path.split_first() else { return Err(syntax("a path starts with a name")) };
    let Some((last, middle)) = rest.split_last() else {
        match new {
            Some(value) => item.insert(first.clone(), value),
            None => item.remove(first),
        };
        return Ok(());
    };
    let mut parent = item.get_mut(first).ok_or_else(|| ExpressionError::Type(format!("no {first}")))?;
    for step in middle {
        parent = slot(parent, step)?;
    }
    match (last, parent, new) {
        (Step::Key(k), AttributeValue::M(map), Some(value)) => {
            map.insert(k.clone(), value);
        }
        (Step::Key(k), AttributeValue::M(map), None) => {
            map.remove(k);
        }
        (Step::At(i), AttributeValue::L(list), Some(value)) if *i < list.len() => list[*i] = value,
        (Step::At(_), AttributeValue::L(list), Some(value)) => list.push(value),
        (Step::At(i), AttributeValue::L(list), None) if *i < list.len() => {
            list.remove(*i);
        }
        (step, parent, _) => return Err(ExpressionError::Type(format!("{step:?} into {parent:?}"))),
    }
    Ok(())
}

fn union(
    old: Option<AttributeValue>,
    add_value: AttributeValue,
    sign: i128,
) -> Result<AttributeValue, ExpressionError> {
    fn merge(mut a: Vec<String>, b: Vec<String>, sign: i128) -> Vec<String> {
        if sign > 0 {
            for v in b {
                if !a.contains(&v) {
                    a.push(v);
                }
            }
        } else {
            a.retain(|v| !b.contains(v));
        }
        a
    }
    Ok(match (old, add_value) {
        (None, value) => value,
        (Some(AttributeValue::N(a)), AttributeValue::N(b)) => AttributeValue::N(add(&a, &b, sign)?),
        (Some(AttributeValue::Ss(a)), AttributeValue::Ss(b)) => AttributeValue::Ss(merge(a, b, sign)),
        (Some(AttributeValue::Ns(a)), AttributeValue::Ns(b)) => AttributeValue::Ns(merge(a, b, sign)),
        (Some(a), b) => return Err(ExpressionError::Type(format!("ADD/DELETE of {b:?} to {a:?}"))),
    })
}

/// Apply `expression` to `item` (every value read by the expression is read from the item as it was before).
pub fn apply(
    item: &Item,
    expression: &str,
    names: &HashMap<String, String>,
    values: &HashMap<String, AttributeValue>,
) -> Result<Item, ExpressionError> {
    let mut parser = Parser { tokens: tokens(expression)?, at: 0, names, values };
    let mut result = item.clone();
    let mut clause = String::new();
    while let Some(token) = parser.peek().cloned() {
        if let Token::Word(word) = &token {
            let upper = word.to_ascii_uppercase();
            if ["SET", "REMOVE", "ADD", "DELETE"].contains(&upper.as_str())
                && parser.tokens.get(parser.at + 1) != Some(&Token::Punct('='))
            {
                clause = upper;
                parser.at += 1;
                continue;
            }
        }
        if parser.eat(',') {
            continue;
        }
        let path = parser.path()?;
        match clause.as_str() {
            "SET" => {
                parser.expect('=')?;
                let value =
                    parser.value(item)?.ok_or_else(|| ExpressionError::Type("SET to an absent value".into()))?;
                put(&mut result, &path, Some(value))?;
            }
            "REMOVE" => put(&mut result, &path, None)?,
            "ADD" | "DELETE" => {
                let value = parser.literal()?;
                let sign = if clause == "ADD" { 1 } else { -1 };
                let merged = union(get(&result, &path).cloned(), value, sign)?;
                put(&mut result, &path, Some(merged))?;
            }
            _ => return Err(syntax("an update expression starts with SET, REMOVE, ADD or DELETE")),
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: i64) -> AttributeValue {
        AttributeValue::N(v.to_string())
    }
    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    #[test]
    fn updates_apply_like_dynamodb() {
        let before: Item = HashMap::from([
            ("count".to_owned(), n(2)),
            ("status".to_owned(), s("active")),
            ("tl".to_owned(), AttributeValue::L(vec![n(1)])),
            ("m".to_owned(), AttributeValue::M(HashMap::from([("x".to_owned(), n(1))]))),
        ]);
        let names = HashMap::from([("#s".to_owned(), "status".to_owned()), ("#c".to_owned(), "count".to_owned())]);
        let values = HashMap::from([
            (":one".to_owned(), n(1)),
            (":zero".to_owned(), n(0)),
            (":st".to_owned(), s("suspended")),
            (":ev".to_owned(), AttributeValue::L(vec![n(2)])),
        ]);
        type Expected<'a> = Vec<(&'a str, Option<AttributeValue>)>;
        let table: Vec<(&str, Expected)> = vec![
            ("SET #c = #c + :one", vec![("count", Some(n(3)))]),
            ("SET #c = if_not_exists(#c, :zero) - :one", vec![("count", Some(n(1)))]),
            ("SET fresh = if_not_exists(fresh, :zero) + :one", vec![("fresh", Some(n(1)))]),
            ("SET #s = :st REMOVE tl", vec![("status", Some(s("suspended"))), ("tl", None)]),
            ("set tl = list_append(tl, :ev), m.y = :one", vec![("tl", Some(AttributeValue::L(vec![n(1), n(2)])))]),
            ("ADD #c :one, other :one", vec![("count", Some(n(3))), ("other", Some(n(1)))]),
            ("REMOVE m.x", vec![("m", Some(AttributeValue::M(HashMap::new())))]),
        ];
        for (expression, expected) in table {
            let after = apply(&before, expression, &names, &values).unwrap_or_else(|e| panic!("{expression}: {e}"));
            for (name, value) in expected {
                assert_eq!(after.get(name), value.as_ref(), "{expression}: {name}");
            }
        }
        let nested = apply(&before, "SET m.y = :one", &names, &values).expect("nested set");
        assert_eq!(nested["m"], AttributeValue::M(HashMap::from([("x".to_owned(), n(1)), ("y".to_owned(), n(1))])));
    }

    #[test]
    fn what_cannot_be_applied_is_an_error() {
        let item = Item::new();
        let none = HashMap::new();
        let table = [
            ("SET a = :missing", ExpressionError::Placeholder(":missing".into())),
            ("SET #missing = :v", ExpressionError::Placeholder("#missing".into())),
            ("FROB a", ExpressionError::Syntax("an update expression starts with SET, REMOVE, ADD or DELETE".into())),
        ];
        let values = HashMap::from([(":v".to_owned(), n(1))]);
        for (expression, expected) in table {
            assert_eq!(apply(&item, expression, &none, &values), Err(expected), "{expression}");
        }
        assert!(matches!(apply(&item, "SET a = b + :v", &none, &values), Err(ExpressionError::Type(_))));
    }
}
