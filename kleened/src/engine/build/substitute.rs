//! Build-variable substitution ("env replacement") in Dockerfile lines, without a shell.
//!
//! The reference daemon substitutes variables in `FROM`, `ENV`, `USER` and each `COPY` token by
//! running `/usr/bin/env -i VARS... /bin/sh -c "echo -n <expression>"` on the host, with the line
//! pasted in unquoted. Its results are therefore whatever the shell makes of the line, and
//! `ENV X=$(touch /tmp/pwned)` runs a command as root on the daemon's host. [`substitute`] computes
//! what that command prints for the part of the shell language that only *computes a string*, and
//! refuses everything else before anything could run:
//!
//! * computed: single quotes; double quotes (in which `$` expands and `\` escapes only `$`, `` ` ``,
//!   `"`, `\` and a newline); backslash escapes outside quotes; `$NAME`, `${NAME}`,
//!   `${NAME-word}`, `${NAME:-word}`, `${NAME+word}`, `${NAME:+word}` (the word itself expanded);
//!   positional parameters `$1`…`$9`, `${10}` (always empty: the shell got no arguments); `~` alone
//!   or before `/` (the value of `HOME`); field splitting of unquoted expansions; and `echo`'s
//!   output, the fields joined by one space (so leading, trailing and repeated unquoted blanks
//!   vanish);
//! * refused with a [`SubstituteError`]: command substitution (`$(...)`, backquotes), arithmetic
//!   (`$((...))`), the other expansions (`${NAME:=word}` assigns, `${NAME?word}`, `${#NAME}`,
//!   `${NAME%word}`, `${NAME#word}`, substrings), the special parameters `$0 $@ $* $# $? $- $$ $!`,
//!   `$'...'` and `$"..."` (shells disagree on them), `~user` (a lookup in the host's user
//!   database) and `~` without `HOME`, an unquoted `;`, `|`, `&`, `<`, `>`, `(`, `)` or newline
//!   (they end the command or redirect it), an unquoted `#` starting a word (it starts a comment:
//!   the reference's "illegal comment" test expects the build to fail), unbalanced quotes or
//!   braces, a trailing lone backslash, and NUL characters.
//!
//! Where the reference's result depended on the host rather than on the Dockerfile, ours does
//! not, and `echo` is FreeBSD sh's, the reference's platform:
//!
//! * no pathname expansion: `*`, `?` and `[` stay literal, as when the shell's directory holds no
//!   match (the reference globbed against the daemon's working directory, `/*` against the host's
//!   root); `COPY` globs its sources itself, against the build context;
//! * `echo` prints its arguments as they are: FreeBSD sh's builtin interprets no backslash
//!   sequences without `-e` (dash's echo would turn `\n` into a newline);
//! * `IFS` is always `<space><tab><newline>`, whatever [`Vars`] holds (dash and FreeBSD sh do not
//!   take `IFS` from their environment either);
//! * variables that the shell sets itself when its environment lacks them (`PATH`, `PWD`, `PS1`,
//!   `OPTIND`, `PPID`, `IFS`) are unset unless [`Vars`] has them.
//!
//! Why no crate: `shellexpand`, `subst` and `envsubst` expand `$VAR` and `${VAR:-x}` in a string
//! but do no quote removal or field splitting, on which the reference's tested results depend
//! (`TEST3=test\ test` gives `TEST3=test test`, `"\$5\$2Fun..."` a literal `$5$2Fun...`);
//! `bashexpand` adds bash's operators, which we would have to refuse again, and has no quote
//! removal either; `shell-words` only splits. So the emulation is written out here, and proved
//! against `/bin/sh` by the differential tests below.

use std::fmt;

/// How many `${...}` may nest inside each other; deeper expressions are refused, so that no input
/// can exhaust the stack.
pub const MAX_DEPTH: usize = 32;

/// The variables a substitution sees, in the order they were first set; setting a name again
/// replaces its value in place (the later value wins). The build engine makes it from the
/// declared `ARG` values (with the client's `buildargs`) overlaid by the `ENV` values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Vars {
    entries: Vec<(String, String)>,
}

impl Vars {
    /// No variables.
    pub fn new() -> Vars {
        Vars::default()
    }

    /// Sets `name` to `value`, replacing an earlier value of the same name.
    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((name, value)),
        }
    }

    /// Sets a variable from `NAME=value` (split at the first `=`, as an ENV instruction's
    /// substituted text is); `false`, and nothing set, when there is no `=`.
    pub fn set_assignment(&mut self, assignment: &str) -> bool {
        match assignment.split_once('=') {
            Some((name, value)) => {
                self.set(name, value);
                true
            }
            None => false,
        }
    }

    /// The value of `name`, if it is set (possibly to `""`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets every variable of `other`, in its order: `other` wins.
    pub fn overlay(&mut self, other: &Vars) {
        for (name, value) in other.iter() {
            self.set(name, value);
        }
    }

    /// The variables in the order they were first set.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// How many variables are set.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no variable is set.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The variables as `NAME=value` strings, in order: an exec instance's environment.
    pub fn to_env(&self) -> Vec<String> {
        self.iter().map(|(n, v)| format!("{n}={v}")).collect()
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Vars {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Vars {
        let mut vars = Vars::new();
        vars.extend(iter);
        vars
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Vars {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (name, value) in iter {
            self.set(name, value);
        }
    }
}

/// An expression [`substitute`] refused. The build engine reports it to the client as the
/// reference does (`failed environment substition of: <line>`); this says why, for the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot substitute '{expression}': {reason} (at byte {offset})")]
pub struct SubstituteError {
    /// The expression as given.
    pub expression: String,
    /// Where in it (a byte offset) the refused construct starts.
    pub offset: usize,
    /// What was refused.
    pub reason: Refusal,
}

/// Why an expression is refused: either the shell would do more than compute a string with it,
/// or it is a syntax error there too, or it is shell language we do not emulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// `$(...)` or a backquote: the shell would run a command.
    CommandSubstitution,
    /// `$((...))`.
    Arithmetic,
    /// A `${...}` form other than the emulated ones, such as `${NAME:=word}`.
    Expansion(&'static str),
    /// `${...}` that the shell rejects as a bad substitution (`${}`, `${X:1}`, `${X/a/b}`).
    BadSubstitution,
    /// A special parameter (`$0`, `$@`, `$*`, `$#`, `$?`, `$-`, `$$`, `$!`).
    SpecialParameter(char),
    /// `$'...'` or `$"..."`.
    DollarQuote,
    /// `~user`, or `~` when `HOME` is not set.
    Tilde,
    /// An unquoted control or redirection operator character.
    Operator(char),
    /// An unquoted newline: the shell would run what follows as another command.
    Newline,
    /// An unquoted `#` starting a word: the rest would be a comment.
    Comment,
    /// A single quote without its closing quote.
    UnterminatedSingleQuote,
    /// A double quote without its closing quote.
    UnterminatedDoubleQuote,
    /// `${` without its closing brace.
    UnterminatedBrace,
    /// A backslash ending the expression.
    TrailingBackslash,
    /// More than [`MAX_DEPTH`] nested `${...}`.
    TooDeep,
    /// A NUL character, which no command line can hold.
    Nul,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::CommandSubstitution => {
                f.write_str("command substitution would run a command on the daemon's host")
            }
            Refusal::Arithmetic => f.write_str("arithmetic expansion $((...)) is not supported"),
            Refusal::Expansion(form) => write!(
                f,
                "the expansion {form} is not supported \
                 (only ${{NAME}}, ${{NAME-word}}, ${{NAME:-word}}, ${{NAME+word}}, ${{NAME:+word}})"
            ),
            Refusal::BadSubstitution => f.write_str("bad substitution"),
            Refusal::SpecialParameter(c) => {
                write!(f, "the special parameter ${c} is not supported")
            }
            Refusal::DollarQuote => f.write_str("$'...' and $\"...\" quoting are not supported"),
            Refusal::Tilde => f.write_str(
                "~ is only supported alone or before /, with HOME set (~user would read the \
                 host's user database)",
            ),
            Refusal::Operator(c) => write!(
                f,
                "an unquoted '{c}' would end the command or redirect it: quote or escape it"
            ),
            Refusal::Newline => f.write_str("an unquoted newline would start another command"),
            Refusal::Comment => f.write_str("an unquoted '#' starting a word begins a comment"),
            Refusal::UnterminatedSingleQuote => f.write_str("unterminated single quote"),
            Refusal::UnterminatedDoubleQuote => f.write_str("unterminated double quote"),
            Refusal::UnterminatedBrace => f.write_str("missing '}'"),
            Refusal::TrailingBackslash => f.write_str("a backslash ends the expression"),
            Refusal::TooDeep => write!(f, "${{...}} nested deeper than {MAX_DEPTH} levels"),
            Refusal::Nul => f.write_str("a NUL character"),
        }
    }
}

/// What `/bin/sh -c "echo -n <expression>"` prints with only `vars` in its environment, or why
/// we refuse to say (see the module documentation). Never runs anything.
pub fn substitute(expression: &str, vars: &Vars) -> Result<String, SubstituteError> {
    let refuse = |Fail { offset, reason }| SubstituteError {
        expression: expression.to_owned(),
        offset,
        reason,
    };
    if let Some(offset) = expression.find('\0') {
        return Err(refuse(Fail {
            offset,
            reason: Refusal::Nul,
        }));
    }
    let mut parser = Parser {
        src: expression,
        pos: 0,
        vars,
        depth: 0,
    };
    let words = parser.words().map_err(refuse)?;
    Ok(fields(words).join(" "))
}

/// A refusal inside the parser, before the expression is attached.
#[derive(Debug)]
struct Fail {
    offset: usize,
    reason: Refusal,
}

/// A piece of a word after expansion and quote removal. Unquoted pieces are split into fields
/// at blanks; quoted ones are not, and a quoted piece (even an empty one) makes its word a field.
#[derive(Debug)]
struct Piece {
    text: String,
    quoted: bool,
}

/// One shell word, as its pieces.
type Word = Vec<Piece>;

/// Appends text to a word, merging it with the last piece when their quoting agrees. Empty
/// unquoted text adds nothing; empty quoted text still marks the word as a field.
fn push(word: &mut Word, text: &str, quoted: bool) {
    match word.last_mut() {
        Some(last) if last.quoted == quoted => last.text.push_str(text),
        _ if text.is_empty() && !quoted => {}
        _ => word.push(Piece {
            text: text.to_owned(),
            quoted,
        }),
    }
}

fn push_char(word: &mut Word, c: char, quoted: bool) {
    let mut buf = [0u8; 4];
    push(word, c.encode_utf8(&mut buf), quoted);
}

/// The blanks that split unquoted expansions: the default `IFS`.
fn is_ifs(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n')
}

/// Field splitting: each word gives the fields its unquoted pieces split into (runs of blanks
/// separate fields and vanish at the ends); a word with no text and no quoted piece gives none.
fn fields(words: Vec<Word>) -> Vec<String> {
    let mut fields = Vec::new();
    for word in words {
        let mut field = String::new();
        let mut started = false;
        for piece in word {
            if piece.quoted {
                field.push_str(&piece.text);
                started = true;
                continue;
            }
            for c in piece.text.chars() {
                if is_ifs(c) {
                    if started {
                        fields.push(std::mem::take(&mut field));
                        started = false;
                    }
                } else {
                    field.push(c);
                    started = true;
                }
            }
        }
        if started {
            fields.push(field);
        }
    }
    fields
}

/// What `${NAME<op>word}` does with its word.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// `-` and `:-`: the word when the variable is unset (or, with `:`, empty).
    Default,
    /// `+` and `:+`: the word when the variable is set (or, with `:`, non-empty).
    Alternative,
}

/// A recursive-descent reader of the expression that expands as it goes.
struct Parser<'a> {
    src: &'a str,
    /// Byte offset of the next character (always on a character boundary).
    pos: usize,
    vars: &'a Vars,
    /// How many `${` are open.
    depth: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<char> {
        self.src.get(self.pos..)?.chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        let mut rest = self.src.get(self.pos..)?.chars();
        rest.next();
        rest.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    /// Reads the longest run of characters matching `accept` (all ASCII).
    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        let len = self
            .src
            .as_bytes()
            .get(start..)
            .map_or(0, |rest| rest.iter().take_while(|b| accept(**b)).count());
        self.pos = start + len;
        self.src.get(start..self.pos).unwrap_or("")
    }

    /// The words of the command line after `echo -n`.
    fn words(&mut self) -> Result<Vec<Word>, Fail> {
        let mut words = Vec::new();
        // `None` between words: lexically, no character of the next word has been read yet.
        let mut word: Option<Word> = None;
        while let Some(c) = self.peek() {
            let at = self.pos;
            match c {
                ' ' | '\t' => {
                    self.bump();
                    words.extend(word.take());
                }
                '\n' => return fail(at, Refusal::Newline),
                ';' | '&' | '|' | '<' | '>' | '(' | ')' => return fail(at, Refusal::Operator(c)),
                '#' if word.is_none() => return fail(at, Refusal::Comment),
                // A line continuation vanishes before the shell even splits words.
                '\\' if self.peek_second() == Some('\n') => {
                    self.bump();
                    self.bump();
                }
                '~' if word.is_none() => {
                    self.bump();
                    let word = word.insert(Word::new());
                    self.tilde(word, at, |c| matches!(c, ' ' | '\t'))?;
                }
                _ => {
                    let word = word.get_or_insert_with(Word::new);
                    self.unquoted(word)?;
                }
            }
        }
        words.extend(word);
        Ok(words)
    }

    /// One element of a word outside quotes and braces.
    fn unquoted(&mut self, word: &mut Word) -> Result<(), Fail> {
        let at = self.pos;
        let Some(c) = self.bump() else {
            return Ok(());
        };
        match c {
            '\'' => self.single_quoted(word, at),
            '"' => self.double_quoted(word, at),
            '\\' => match self.bump() {
                None => fail(at, Refusal::TrailingBackslash),
                Some('\n') => Ok(()),
                Some(escaped) => {
                    push_char(word, escaped, true);
                    Ok(())
                }
            },
            '$' => self.dollar(word, at, false),
            '`' => fail(at, Refusal::CommandSubstitution),
            c => {
                push_char(word, c, false);
                Ok(())
            }
        }
    }

    /// After the opening `'` at `at`: everything up to the next `'`, literally.
    fn single_quoted(&mut self, word: &mut Word, at: usize) -> Result<(), Fail> {
        let rest = self.src.get(self.pos..).unwrap_or("");
        let Some(len) = rest.find('\'') else {
            return fail(at, Refusal::UnterminatedSingleQuote);
        };
        push(word, rest.get(..len).unwrap_or(""), true);
        self.pos += len + 1;
        Ok(())
    }

    /// After the opening `"` at `at`, up to and including the closing one.
    fn double_quoted(&mut self, word: &mut Word, at: usize) -> Result<(), Fail> {
        // Even `""` makes its word a field.
        push(word, "", true);
        loop {
            let here = self.pos;
            match self.bump() {
                None => return fail(at, Refusal::UnterminatedDoubleQuote),
                Some('"') => return Ok(()),
                Some('\\') => match self.peek() {
                    Some('\n') => {
                        self.bump();
                    }
                    Some(c @ ('$' | '`' | '"' | '\\')) => {
                        self.bump();
                        push_char(word, c, true);
                    }
                    _ => push(word, "\\", true),
                },
                Some('$') => self.dollar(word, here, true)?,
                Some('`') => return fail(here, Refusal::CommandSubstitution),
                Some(c) => push_char(word, c, true),
            }
        }
    }

    /// After a `$` at `at`; `quoted` when inside double quotes.
    fn dollar(&mut self, word: &mut Word, at: usize, quoted: bool) -> Result<(), Fail> {
        match self.peek() {
            Some('{') => {
                self.bump();
                self.depth += 1;
                let result = if self.depth > MAX_DEPTH {
                    fail(at, Refusal::TooDeep)
                } else {
                    self.braced(word, at, quoted)
                };
                self.depth -= 1;
                result
            }
            Some('(') if self.peek_second() == Some('(') => fail(at, Refusal::Arithmetic),
            Some('(') => fail(at, Refusal::CommandSubstitution),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'_');
                let vars: &'a Vars = self.vars;
                let value = vars.get(name).unwrap_or("");
                push(word, value, quoted);
                Ok(())
            }
            // `$1` is one digit: the shell got no arguments, so it is empty.
            Some('0') => fail(at, Refusal::SpecialParameter('0')),
            Some(c) if c.is_ascii_digit() => {
                self.bump();
                Ok(())
            }
            Some(c @ ('@' | '*' | '#' | '?' | '-' | '$' | '!')) => {
                fail(at, Refusal::SpecialParameter(c))
            }
            Some('\'' | '"') if !quoted => fail(at, Refusal::DollarQuote),
            // A `$` that starts no expansion is itself.
            _ => {
                push(word, "$", quoted);
                Ok(())
            }
        }
    }

    /// After `${` (the `$` at `at`), up to and including the closing `}`.
    fn braced(&mut self, word: &mut Word, at: usize, quoted: bool) -> Result<(), Fail> {
        let value = match self.peek() {
            None => return fail(at, Refusal::UnterminatedBrace),
            Some('#') => return fail(at, Refusal::Expansion("${#NAME}")),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.take_while(|b| b.is_ascii_alphanumeric() || b == b'_');
                let vars: &'a Vars = self.vars;
                vars.get(name)
            }
            Some(c) if c.is_ascii_digit() => {
                let digits = self.take_while(|b| b.is_ascii_digit());
                if digits.starts_with('0') {
                    return fail(at, Refusal::SpecialParameter('0'));
                }
                None
            }
            Some(c @ ('@' | '*' | '?' | '-' | '$' | '!')) => {
                return fail(at, Refusal::SpecialParameter(c))
            }
            Some(_) => return fail(at, Refusal::BadSubstitution),
        };
        let op_at = self.pos;
        let (colon, op) = match self.bump() {
            None => return fail(at, Refusal::UnterminatedBrace),
            Some('}') => {
                push(word, value.unwrap_or(""), quoted);
                return Ok(());
            }
            Some(':') => match self.bump() {
                Some('-') => (true, Op::Default),
                Some('+') => (true, Op::Alternative),
                Some('=') => return fail(op_at, Refusal::Expansion("${NAME:=word}")),
                Some('?') => return fail(op_at, Refusal::Expansion("${NAME:?word}")),
                None => return fail(at, Refusal::UnterminatedBrace),
                Some(_) => return fail(op_at, Refusal::BadSubstitution),
            },
            Some('-') => (false, Op::Default),
            Some('+') => (false, Op::Alternative),
            Some('=') => return fail(op_at, Refusal::Expansion("${NAME=word}")),
            Some('?') => return fail(op_at, Refusal::Expansion("${NAME?word}")),
            Some('%') => return fail(op_at, Refusal::Expansion("${NAME%word}")),
            Some('#') => return fail(op_at, Refusal::Expansion("${NAME#word}")),
            Some(_) => return fail(op_at, Refusal::BadSubstitution),
        };
        let alternative = self.brace_word(at, quoted)?;
        let set = value.is_some();
        let non_empty = value.is_some_and(|v| !v.is_empty());
        match op {
            Op::Default if (colon && non_empty) || (!colon && set) => {
                push(word, value.unwrap_or(""), quoted)
            }
            Op::Alternative if !((colon && non_empty) || (!colon && set)) => {}
            Op::Default | Op::Alternative => {
                for piece in alternative {
                    push(word, &piece.text, piece.quoted);
                }
            }
        }
        Ok(())
    }

    /// The word of `${NAME<op>word}`, up to and including the closing `}` (the `$` at `at`).
    /// Inside double quotes (`quoted`) everything in it is quoted, single quotes are plain
    /// characters and `\` escapes `}` besides the usual ones; outside, its unquoted text is split
    /// into fields like an expansion's value.
    fn brace_word(&mut self, at: usize, quoted: bool) -> Result<Word, Fail> {
        let mut word = Word::new();
        let mut first = true;
        loop {
            let here = self.pos;
            let Some(c) = self.bump() else {
                return fail(at, Refusal::UnterminatedBrace);
            };
            match c {
                '}' => return Ok(word),
                '\\' => match self.peek() {
                    None => return fail(at, Refusal::UnterminatedBrace),
                    Some('\n') => {
                        self.bump();
                    }
                    Some(e) if !quoted || matches!(e, '$' | '`' | '"' | '\\' | '}') => {
                        self.bump();
                        push_char(&mut word, e, true);
                    }
                    Some(_) => push(&mut word, "\\", true),
                },
                '$' => self.dollar(&mut word, here, quoted)?,
                '`' => return fail(here, Refusal::CommandSubstitution),
                '"' => self.double_quoted(&mut word, here)?,
                '\'' if !quoted => self.single_quoted(&mut word, here)?,
                '~' if first && !quoted => self.tilde(&mut word, here, |c| c == '}')?,
                c => push_char(&mut word, c, quoted),
            }
            first = false;
        }
    }

    /// After a `~` at `at` that starts a word: `HOME`'s value when the tilde-prefix is empty
    /// (what follows is `/`, the end, or a character `ends_word` accepts).
    fn tilde(
        &mut self,
        word: &mut Word,
        at: usize,
        ends_word: impl Fn(char) -> bool,
    ) -> Result<(), Fail> {
        match self.peek() {
            None | Some('/') => {}
            Some(c) if ends_word(c) => {}
            Some(_) => return fail(at, Refusal::Tilde),
        }
        match self.vars.get("HOME") {
            // The result of tilde expansion is not split.
            Some(home) => {
                push(word, home, true);
                Ok(())
            }
            None => fail(at, Refusal::Tilde),
        }
    }
}

fn fail<T>(offset: usize, reason: Refusal) -> Result<T, Fail> {
    Err(Fail { offset, reason })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A small deterministic generator for the random tests (xorshift64).
    #[derive(Debug)]
    pub(crate) struct XorShift(pub(crate) u64);

    impl XorShift {
        pub(crate) fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        /// A number in `0..n` (`n` > 0).
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }

        pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().copied().collect()
    }

    fn ok(expression: &str, pairs: &[(&str, &str)]) -> String {
        substitute(expression, &vars(pairs))
            .unwrap_or_else(|e| panic!("{expression:?} was refused: {e}"))
    }

    fn refused(expression: &str) -> Refusal {
        match substitute(expression, &vars(&[("X", "x"), ("HOME", "/h")])) {
            Ok(out) => panic!("{expression:?} was substituted to {out:?}"),
            Err(e) => {
                assert_eq!(e.expression, expression);
                assert!(e.to_string().contains(expression), "{e}");
                e.reason
            }
        }
    }

    // The reference's image tests (shared/reference/kleene-api.md §9.3), item by item.

    #[test]
    fn env_basic_notations_item_23() {
        // The engine substitutes `NAME=<value without its surrounding quotes>`.
        assert_eq!(ok("TEST1=lol", &[]), "TEST1=lol");
        assert_eq!(ok("TEST2=testing test", &[]), "TEST2=testing test");
        assert_eq!(ok(r"TEST3=test\ test", &[]), "TEST3=test test");
        // The raw forms give the same.
        assert_eq!(ok(r#"TEST2="testing test""#, &[]), "TEST2=testing test");
    }

    #[test]
    fn quoted_and_escaped_env_item_24() {
        let expected = "TEST=$5$2Fun7BK4thgtd4ao$j1kidg9P";
        assert_eq!(ok(r"TEST=\$5\$2Fun7BK4thgtd4ao\$j1kidg9P", &[]), expected);
        assert_eq!(
            ok(r#"TEST="\$5\$2Fun7BK4thgtd4ao\$j1kidg9P""#, &[]),
            expected
        );
        // Without the escapes the shell would see positional parameters, as sh does.
        assert_eq!(ok("TEST=$5$2Fun7BK4thgtd4ao", &[]), "TEST=Fun7BK4thgtd4ao");
    }

    #[test]
    fn env_set_earlier_item_26() {
        assert_eq!(ok("TEST=testvalue", &[]), "TEST=testvalue");
        assert_eq!(
            ok("TEST=a new test value for TEST", &[("TEST", "testvalue")]),
            "TEST=a new test value for TEST"
        );
    }

    #[test]
    fn from_with_a_predefined_arg_item_27() {
        // `ARG testvar` declares it empty.
        assert_eq!(
            ok("${testvar:-doesnotexist}", &[("testvar", "")]),
            "doesnotexist"
        );
        assert_eq!(
            ok(
                "${testvar:-doesnotexist}",
                &[("testvar", "FreeBSD:testing")]
            ),
            "FreeBSD:testing"
        );
    }

    #[test]
    fn arg_without_default_item_29() {
        assert_eq!(ok("lol:$testvar", &[("testvar", "")]), "lol:");
        assert_eq!(ok("lol:${testvar:-empty}", &[("testvar", "")]), "lol:empty");
        assert_eq!(ok("lol:$testvar", &[("testvar", "testval")]), "lol:testval");
        assert_eq!(
            ok("lol:${testvar:-empty}", &[("testvar", "testval")]),
            "lol:testval"
        );
    }

    #[test]
    fn arg_with_default_item_30() {
        let defaults = [("testvar1", "testval1"), ("testvar2", "test val2")];
        assert_eq!(
            ok(r#""$testvar1:$testvar2""#, &defaults),
            "testval1:test val2"
        );
        let given = [("testvar1", "newval1"), ("testvar2", "newval2")];
        assert_eq!(ok(r#""$testvar1:$testvar2""#, &given), "newval1:newval2");
    }

    #[test]
    fn user_from_client_or_dockerfile_item_31() {
        // Before `ARG username` the client's value is not visible.
        assert_eq!(ok("${username:-ntpd}", &[]), "ntpd");
        assert_eq!(ok("$username", &[("username", "games")]), "games");
    }

    #[test]
    fn env_overrides_arg_items_32_and_38() {
        let mut vars = vars(&[("CONT_IMG_VER", "v2.0.1")]);
        vars.overlay(&[("CONT_IMG_VER", "v1.0.0")].into_iter().collect());
        assert_eq!(substitute("$CONT_IMG_VER", &vars).as_deref(), Ok("v1.0.0"));
        assert_eq!(vars.to_env(), ["CONT_IMG_VER=v1.0.0"]);
    }

    #[test]
    fn arg_persisted_through_env_item_33() {
        let expression = "CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}";
        assert_eq!(
            ok(expression, &[("CONT_IMG_VER", "")]),
            "CONT_IMG_VER=v1.0.0"
        );
        assert_eq!(
            ok(expression, &[("CONT_IMG_VER", "v.2.0.1")]),
            "CONT_IMG_VER=v.2.0.1"
        );
    }

    #[test]
    fn arg_with_user_and_copy_items_35_and_36() {
        assert_eq!(ok("$TESTVAR", &[("TESTVAR", "ntpd")]), "ntpd");
        assert_eq!(ok("$TESTVAR", &[("TESTVAR", "test.txt")]), "test.txt");
        assert_eq!(ok("/root/", &[("TESTVAR", "test.txt")]), "/root/");
    }

    #[test]
    fn second_arg_declaration_empties_item_37() {
        assert_eq!(ok(r#""empty:$testvar""#, &[("testvar", "")]), "empty:");
    }

    #[test]
    fn copy_globs_stay_literal_item_20() {
        assert_eq!(ok("*.txt", &[]), "*.txt");
        assert_eq!(ok("/etc/*", &[]), "/etc/*");
        assert_eq!(ok("$G", &[("G", "[a-z]?*")]), "[a-z]?*");
    }

    #[test]
    fn illegal_comment_is_refused_item_56() {
        // What the engine substitutes for `ENV TEST="something" # You cannot make comments ...`:
        // the value lost its leading quote, so the quotes no longer balance.
        assert_eq!(
            refused(r#"TEST=something" # You cannot make comments like this."#),
            Refusal::UnterminatedDoubleQuote
        );
        // And the line as written: its `#` would start a comment.
        assert_eq!(
            refused(r#"TEST="something" # You cannot make comments like this."#),
            Refusal::Comment
        );
    }

    // Injection attempts: nothing that would run is accepted, wherever it hides.

    #[test]
    fn command_substitution_is_refused_everywhere() {
        for expression in [
            "$(touch /tmp/x)",
            "X=$(touch /tmp/pwned)",
            "`id`",
            "a`id`b",
            "\"$(id)\"",
            "\"`id`\"",
            "${X:-$(id)}",
            "${U:-$(id)}",
            "${X:+`id`}",
            "\"${U:-$(id)}\"",
            "\"${U:-`id`}\"",
            "${U:-\"$(id)\"}",
            "${U:-${V:-$(id)}}",
        ] {
            assert_eq!(
                refused(expression),
                Refusal::CommandSubstitution,
                "{expression}"
            );
        }
        assert_eq!(refused("$((1+1))"), Refusal::Arithmetic);
        assert_eq!(refused("\"$((1+1))\""), Refusal::Arithmetic);
    }

    #[test]
    fn operators_and_newlines_are_refused() {
        for (expression, c) in [
            ("a;b", ';'),
            ("a|b", '|'),
            ("a&&b", '&'),
            ("a>b", '>'),
            ("a<b", '<'),
            ("a 2>&1", '>'),
            ("(a)", '('),
            ("a)", ')'),
            ("X=1; touch /tmp/x", ';'),
        ] {
            assert_eq!(refused(expression), Refusal::Operator(c), "{expression}");
        }
        assert_eq!(refused("a\ntouch /tmp/x"), Refusal::Newline);
        assert_eq!(refused("#a"), Refusal::Comment);
        assert_eq!(refused("a #b"), Refusal::Comment);
    }

    #[test]
    fn operators_inside_quotes_and_braces_are_text() {
        assert_eq!(ok("'a;b|c&d<e>f(g)'", &[]), "a;b|c&d<e>f(g)");
        assert_eq!(ok("\"a;b # c\"", &[]), "a;b # c");
        assert_eq!(ok(r"a\;b\#c \#d", &[]), "a;b#c #d");
        assert_eq!(ok("a#b", &[]), "a#b");
        assert_eq!(ok("${U:-a;b}", &[]), "a;b");
        assert_eq!(ok("${U:-#}", &[]), "#");
        assert_eq!(ok("'$(id)' \\$\\(id\\)", &[]), "$(id) $(id)");
        assert_eq!(ok("'`id`' \\`id\\`", &[]), "`id` `id`");
    }

    #[test]
    fn unsupported_expansions_are_refused() {
        assert_eq!(refused("${X:=y}"), Refusal::Expansion("${NAME:=word}"));
        assert_eq!(refused("${X=y}"), Refusal::Expansion("${NAME=word}"));
        assert_eq!(refused("${X:?y}"), Refusal::Expansion("${NAME:?word}"));
        assert_eq!(refused("${X?}"), Refusal::Expansion("${NAME?word}"));
        assert_eq!(refused("${#X}"), Refusal::Expansion("${#NAME}"));
        assert_eq!(refused("${X%y}"), Refusal::Expansion("${NAME%word}"));
        assert_eq!(refused("${X##y}"), Refusal::Expansion("${NAME#word}"));
        assert_eq!(refused("${X:1}"), Refusal::BadSubstitution);
        assert_eq!(refused("${X/a/b}"), Refusal::BadSubstitution);
        assert_eq!(refused("${}"), Refusal::BadSubstitution);
        assert_eq!(refused("${ X}"), Refusal::BadSubstitution);
        for special in ['0', '@', '*', '#', '?', '-', '$', '!'] {
            assert_eq!(
                refused(&format!("${special}")),
                Refusal::SpecialParameter(special)
            );
        }
        assert_eq!(refused("${@}"), Refusal::SpecialParameter('@'));
        assert_eq!(refused("${0}"), Refusal::SpecialParameter('0'));
        assert_eq!(refused("$'a'"), Refusal::DollarQuote);
        assert_eq!(refused("$\"a\""), Refusal::DollarQuote);
        assert_eq!(refused("~root"), Refusal::Tilde);
        assert_eq!(refused("${U:-~root}"), Refusal::Tilde);
        assert_eq!(
            substitute("~", &Vars::new()).map_err(|e| e.reason),
            Err(Refusal::Tilde)
        );
    }

    #[test]
    fn syntax_errors_are_refused() {
        assert_eq!(refused("'abc"), Refusal::UnterminatedSingleQuote);
        assert_eq!(refused("\"abc"), Refusal::UnterminatedDoubleQuote);
        assert_eq!(refused("\"abc\\\""), Refusal::UnterminatedDoubleQuote);
        assert_eq!(refused("${X"), Refusal::UnterminatedBrace);
        assert_eq!(refused("${X:-abc"), Refusal::UnterminatedBrace);
        assert_eq!(refused("${X:-'}'"), Refusal::UnterminatedBrace);
        assert_eq!(refused("${X:"), Refusal::UnterminatedBrace);
        assert_eq!(refused("abc\\"), Refusal::TrailingBackslash);
        assert_eq!(refused("a\0b"), Refusal::Nul);
    }

    #[test]
    fn errors_say_where() {
        let err = substitute("ok $(id)", &Vars::new()).expect_err("refused");
        assert_eq!(err.offset, 3);
        assert_eq!(
            err.to_string(),
            "cannot substitute 'ok $(id)': command substitution would run a command on the \
             daemon's host (at byte 3)"
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let deep = format!("{}x{}", "${U:-".repeat(10_000), "}".repeat(10_000));
        assert_eq!(refused(&deep), Refusal::TooDeep);
        let quoted = format!("{}x{}", "\"${U:-".repeat(5_000), "}\"".repeat(5_000));
        assert_eq!(refused(&quoted), Refusal::TooDeep);
        let fine = format!("{}x{}", "${U:-".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert_eq!(ok(&fine, &[]), "x");
    }

    #[test]
    fn quoting_and_field_splitting() {
        let v = [("X", "a  b"), ("E", ""), ("S", " a ")];
        assert_eq!(ok("  a   b  ", &v), "a b");
        assert_eq!(ok("$X", &v), "a b");
        assert_eq!(ok("\"$X\"", &v), "a  b");
        assert_eq!(ok("'$X'", &v), "$X");
        assert_eq!(ok("$E", &v), "");
        assert_eq!(ok("$E x", &v), "x");
        assert_eq!(ok("\"$E\" x", &v), " x");
        assert_eq!(ok("\"\"$S", &v), " a");
        assert_eq!(ok("$S\"\"", &v), "a ");
        assert_eq!(ok("\"$X\"$X", &v), "a  ba b");
        assert_eq!(ok("${U:-a   b}", &v), "a b");
        assert_eq!(ok("\"${U:-a   b}\"", &v), "a   b");
        assert_eq!(ok("${U:-\"a   b\"}", &v), "a   b");
        assert_eq!(ok("\"${U:-'a'}\"", &v), "'a'");
        assert_eq!(ok("\"${U:-\\}}\"", &v), "}");
        assert_eq!(ok("${U:-\"}\"}", &v), "}");
        assert_eq!(ok("\"a\\b\\$\\\"\\\\\"", &v), "a\\b$\"\\");
        assert_eq!(ok("a\\\nb", &v), "ab");
        assert_eq!(ok("$X\\ $X", &v), "a b a b");
    }

    #[test]
    fn parameter_operators() {
        let v = [("X", "x"), ("E", "")];
        assert_eq!(ok("${X-d} ${E-d} ${U-d}", &v), "x d");
        assert_eq!(ok("${X:-d} ${E:-d} ${U:-d}", &v), "x d d");
        assert_eq!(ok("${X+a} ${E+b} ${U+c}", &v), "a b");
        assert_eq!(ok("${X:+a} ${E:+b} ${U:+c}", &v), "a");
        assert_eq!(ok("${U:-${V:-${X}}}", &v), "x");
        assert_eq!(ok("${X:+$X$X}", &v), "xx");
        assert_eq!(ok("$X{ $ $/ x$ }", &v), "x{ $ $/ x$ }");
        assert_eq!(ok("\"$\" \"$\"x", &v), "$ $x");
        assert_eq!(ok("$1 ${2} ${10}x $1x", &v), "x x");
        assert_eq!(ok("$Xyz ${X}yz", &v), "xyz");
        assert_eq!(ok("${U:-~} ~/a ~", &[("HOME", "/h")]), "/h /h/a /h");
        assert_eq!(ok("a~ \"~\" '~'", &[]), "a~ ~ ~");
    }

    #[test]
    fn vars_keep_order_and_later_wins() {
        let mut vars = Vars::new();
        vars.set("B", "1");
        vars.set("A", "2");
        vars.set("B", "3");
        assert!(vars.set_assignment("C=x=y"));
        assert!(!vars.set_assignment("novalue"));
        assert_eq!(vars.to_env(), ["B=3", "A=2", "C=x=y"]);
        assert_eq!(vars.get("B"), Some("3"));
        assert_eq!(vars.get("Z"), None);
        assert_eq!(vars.len(), 3);
        assert!(!vars.is_empty());
    }

    /// Random expressions, dangerous pieces included: never a panic, and a refusal names the
    /// expression. Plain text comes back with its blanks collapsed.
    #[test]
    fn random_expressions_never_panic() {
        const TOKENS: &[&str] = &[
            "$",
            "${",
            "}",
            "{",
            ":-",
            ":+",
            "-",
            "+",
            ":=",
            "?",
            "%",
            "#",
            "'",
            "\"",
            "\\",
            " ",
            "\t",
            "\n",
            "$(",
            "`",
            "((",
            ")",
            ";",
            "|",
            "&",
            "<",
            ">",
            "~",
            "*",
            "[",
            "]",
            "X",
            "E",
            "U",
            "HOME",
            "1",
            "0",
            "@",
            "a",
            "é",
            "\u{1F600}",
            "\0",
            "\r",
            "=",
            "/",
        ];
        let vars = vars(&[("X", "a b"), ("E", ""), ("HOME", "/h")]);
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let mut expression = String::new();
            for _ in 0..rng.below(24) {
                expression.push_str(rng.pick(TOKENS));
            }
            let result = std::panic::catch_unwind(|| substitute(&expression, &vars));
            match result {
                Err(_) => panic!("substitute panicked on {expression:?}"),
                Ok(Err(e)) => {
                    assert!(e.to_string().contains(&expression), "{e}");
                    assert!(expression.is_char_boundary(e.offset) && e.offset <= expression.len());
                }
                Ok(Ok(_)) => {}
            }
        }
        for _ in 0..2_000 {
            let plain: String = (0..rng.below(20))
                .map(|_| rng.pick(&['a', 'b', ' ', '\t', '.', '/', ':', 'é']))
                .collect();
            let expected = plain.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(
                substitute(&plain, &vars).as_deref(),
                Ok(expected.as_str()),
                "{plain:?}"
            );
        }
    }

    /// `/usr/bin/env -i VARS /bin/sh -c "echo -n <expression>"` in an empty directory, as the
    /// reference ran it: (exit success, stdout).
    #[cfg(target_os = "linux")]
    fn shell(expression: &str, vars: &[(&str, &str)], dir: &std::path::Path) -> (bool, String) {
        let mut command = std::process::Command::new("/usr/bin/env");
        command.arg("-i");
        for (name, value) in vars {
            command.arg(format!("{name}={value}"));
        }
        let output = command
            .args(["/bin/sh", "-c", &format!("echo -n {expression}")])
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("/usr/bin/env and /bin/sh must exist to prove the emulation");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
        )
    }

    #[cfg(target_os = "linux")]
    const SHELL_VARS: &[(&str, &str)] = &[
        ("X", "a  b"),
        ("E", ""),
        ("S", " a "),
        ("Q", "*"),
        ("HOME", "/h"),
        ("testvar", "FreeBSD:testing"),
        ("CONT_IMG_VER", "v1.0.0"),
        ("IFS", ","),
    ];

    /// Safe expressions (nothing in them can run a command) give what `/bin/sh` prints. Linux's
    /// /bin/sh is dash, whose echo interprets backslash sequences (FreeBSD's does not), so the
    /// cases print no backslash.
    #[cfg(target_os = "linux")]
    #[test]
    fn substitution_matches_sh() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let cases = [
            "TEST1=lol",
            "TEST2=testing test",
            r"TEST3=test\ test",
            r#"TEST=\$5\$2Fun7BK4thgtd4ao\$j1kidg9P"#,
            r#"TEST="\$5\$2Fun7BK4thgtd4ao\$j1kidg9P""#,
            "TEST=$5$2Fun7BK4thgtd4ao",
            "${testvar:-doesnotexist}",
            "${nothing:-doesnotexist}",
            "lol:$testvar",
            "lol:$nothing",
            "lol:${nothing:-empty}",
            "CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}",
            "\"empty:$E\"",
            "*.txt",
            "$Q",
            "\"$Q\"",
            "  a   b  ",
            "$X",
            "\"$X\"",
            "'$X'",
            "$E x",
            "\"$E\" x",
            "\"\"$S",
            "$S\"\"",
            "\"\"$S\"\"",
            "\"$X\"$X",
            "$X$X",
            "${U:-a   b}",
            "\"${U:-a   b}\"",
            "${U:-\"a   b\"}",
            "\"${U:-\"a   b\"}\"",
            "\"${U:-'a'}\"",
            "\"${U:-'}'}\"",
            "\"${U:-\\}}\"",
            "${U:-a\\}b}",
            "${U:-\"}\"}",
            "${U:-a;b}",
            "${U:-#}",
            "${X-d} ${E-d} ${U-d}",
            "${X:-d} ${E:-d} ${U:-d}",
            "${X+a} ${E+b} ${U+c}",
            "${X:+a} ${E:+b} ${U:+c}",
            "${U:-${V:-$S}}x",
            "y${U:-$S}",
            "${U:-\"$E\"} b",
            "${U:-''} b",
            "$X{ $ $/ x$ }",
            "\"$\" \"$\"x",
            "$1 ${2} ${10}x $1x \"$1\"x",
            "a#b",
            "'a;b|c&d<e>f(g)'",
            "\"a;b # c\"",
            r"a\;b\#c \#d",
            "'$(id)' \\$\\(id\\) '`id`' \\`id\\`",
            "~ ~/a ${U:-~} ${U:-~/b} a~ \"~\" '~'",
            "\"${U:-\\$X}\" ${U:-\\$X}",
            "\"${U:-\\\"}\"",
            "{a,b} a=b [x] ? !",
            "a\\\nb",
            "é \u{1F600}",
            "a,b ${U:-a,b} $X",
        ];
        assert!(cases.len() >= 40);
        for expression in cases {
            let ours = substitute(expression, &SHELL_VARS.iter().copied().collect())
                .unwrap_or_else(|e| panic!("{expression:?} was refused: {e}"));
            assert!(
                !ours.contains('\\'),
                "{expression:?}: pick a case without \\"
            );
            assert_eq!(
                shell(expression, SHELL_VARS, dir.path()),
                (true, ours),
                "{expression:?}"
            );
        }
    }

    /// Expressions sh rejects as syntax errors are refused too (these are safe to hand to sh:
    /// it fails before running anything).
    #[cfg(target_os = "linux")]
    #[test]
    fn sh_syntax_errors_are_refused() {
        let dir = tempfile::tempdir().expect("temporary directory");
        for expression in [
            "'abc",
            "\"abc",
            "${X",
            "${X:-abc",
            "${}",
            "${:-a}",
            "${X:}",
            "${X:1}",
            "${U:-'}'",
            "a\"b'c",
            r#"TEST=something" # You cannot make comments like this."#,
        ] {
            assert!(
                !shell(expression, SHELL_VARS, dir.path()).0,
                "sh accepted {expression:?}"
            );
            assert!(
                substitute(expression, &SHELL_VARS.iter().copied().collect()).is_err(),
                "{expression:?} was substituted"
            );
        }
    }

    /// Random expressions over an alphabet in which nothing can run a command (no parentheses,
    /// backquotes, operators, newlines; no `/` or `.`, so no glob can match outside the empty
    /// directory): whatever we accept, sh prints the same; whatever sh rejects, we refuse.
    #[cfg(target_os = "linux")]
    #[test]
    fn random_safe_expressions_match_sh() {
        const TOKENS: &[&str] = &[
            "$", "${", "}", "{", ":-", ":+", "-", "+", ":", "'", "\"", "\\", " ", "  ", "X", "E",
            "S", "Q", "U", "1", "a", "b", "~", "*", "?", "[", "]", "#", "=", ",", "é", "$X", "$S",
            "${U:-", "\"$",
        ];
        let dir = tempfile::tempdir().expect("temporary directory");
        let vars: Vars = SHELL_VARS.iter().copied().collect();
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        let (mut compared, mut refused) = (0, 0);
        while compared < 250 {
            let expression: String = (0..1 + rng.below(10)).map(|_| rng.pick(TOKENS)).collect();
            let ours = substitute(&expression, &vars);
            if matches!(&ours, Ok(out) if out.contains('\\')) {
                continue;
            }
            let (success, printed) = shell(&expression, SHELL_VARS, dir.path());
            match ours {
                Ok(out) => {
                    assert!(success, "sh rejected {expression:?}, we gave {out:?}");
                    assert_eq!(out, printed, "{expression:?}");
                    compared += 1;
                }
                Err(e) => {
                    refused += 1;
                    assert!(refused < 2_000, "too many refusals: {e}");
                }
            }
        }
    }
}
