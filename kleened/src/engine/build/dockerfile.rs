//! The Dockerfile subset of Kleened (reference §7.1): text in, typed instructions out, or the
//! reference's error message naming the offending line.
//!
//! Reading follows the reference exactly: a backslash before a newline joins two lines, first
//! and throughout the text (so a `#` line ending in `\` swallows the next line); then lines that
//! are blank, or whose very first character is `#`, are dropped (a `#` after anything else,
//! leading blanks included, is no comment); each remaining line is split at its first space into
//! an upper-case instruction and its arguments. A line without a space, with leading blanks or
//! with an unknown instruction is `error in '<line>': invalid instruction`.
//!
//! Where the reference crashed or did something no one would want, this module says why instead,
//! always naming the line: `ENV` without `=`, `FROM ... AS name` (multi-stage builds), a JSON form
//! that is not an array of strings, an instruction without its argument (`FROM`, `RUN`, `USER`,
//! `WORKDIR` with only blanks, `RUN []`, `COPY` with fewer than two paths), a Dockerfile without
//! `FROM`. Besides, CRLF line ends count as LF ends, a leading byte-order mark is ignored, and
//! `COPY a  b` drops the empty token that the reference's split on single spaces made (it would
//! have copied the whole context).
//!
//! Nothing is substituted here: `FROM`, `ENV`, `USER` and each `COPY` path are substituted by the
//! build engine with [`super::substitute`], `ARG`, `WORKDIR`, `RUN` and `CMD` never are.

/// One instruction of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The 1-based number, in the file, of the line the instruction starts on.
    pub number: usize,
    /// The instruction as written, continuation lines joined (without their backslashes): what
    /// `Step k/n : <text>` shows and the image's `instructions` record.
    pub text: String,
    /// What it says.
    pub instruction: Instruction,
}

/// A parsed instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// `FROM <image>`: the parent image as written; the engine substitutes it (`${VAR:-x}`
    /// with the `ARG`s declared before) and resolves it (`name[:tag]`, an ID, `...@snapshot`).
    From {
        /// The argument, verbatim.
        image: String,
    },
    /// `ARG <name>[=<default>]`.
    Arg(ArgVar),
    /// `ENV <name>=<value>`: one variable per line.
    Env(EnvVar),
    /// `USER <user>`, trimmed; substituted by the engine.
    User(String),
    /// `WORKDIR <path>`, verbatim, never substituted (reference §11.18): relative paths are
    /// joined to the previous working directory by the engine.
    Workdir(String),
    /// `RUN`, executed in the build container.
    Run(Command),
    /// `CMD`, the image's command.
    Cmd(Command),
    /// `COPY <src>... <dest>` or `COPY ["<src>", ..., "<dest>"]`: paths as written; the engine
    /// substitutes each and globs the sources in the build context.
    Copy {
        /// At least one source, relative to the context.
        sources: Vec<String>,
        /// The destination in the container (a trailing `/` means a directory).
        dest: String,
    },
}

impl Instruction {
    /// The instruction's keyword: `FROM`, `ARG`, `ENV`, `USER`, `WORKDIR`, `RUN`, `CMD`, `COPY`.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::From { .. } => "FROM",
            Instruction::Arg(_) => "ARG",
            Instruction::Env(_) => "ENV",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Copy { .. } => "COPY",
        }
    }
}

/// An `ARG` declaration. It is not substituted; a later `ARG` of the same name replaces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgVar {
    /// The variable's name (`^[a-zA-Z_][a-zA-Z0-9_]+$`).
    pub name: String,
    /// The default after `=`, with every leading and trailing `"` removed; `None` without `=`.
    pub default: Option<String>,
}

impl ArgVar {
    /// The value the declaration gives when the client supplies none: the default, or `""` (a
    /// declared variable is set, even without a default).
    pub fn value(&self) -> &str {
        self.default.as_deref().unwrap_or("")
    }
}

/// An `ENV` assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// The variable's name (`^[a-zA-Z_][a-zA-Z0-9_]+$`).
    pub name: String,
    /// The text after the first `=`, with every leading and trailing `"` removed, as the
    /// reference stores it; not yet substituted.
    pub value: String,
    /// The arguments as written (`NAME=value` before any trimming).
    pub raw: String,
}

impl EnvVar {
    /// What the engine substitutes: `NAME=value` with the value's outer quotes removed, as the
    /// reference did. Substituted, it gives the variable's final `NAME=value`
    /// (`TEST2="testing test"` → `TEST2=testing test`; `TEST="\$5..."` → `TEST=$5...`; and
    /// `TEST="something" # comment` fails, as in the reference, its quotes no longer balancing).
    pub fn expression(&self) -> String {
        format!("{}={}", self.name, self.value)
    }
}

/// The command of a `RUN` or `CMD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The shell form: the rest of the line, verbatim (leading blanks included), for `/bin/sh -c`.
    Shell(String),
    /// The JSON-array (exec) form.
    Exec(Vec<String>),
}

impl Command {
    /// The argv: `["/bin/sh", "-c", <text>]` for the shell form, the array for the exec form.
    pub fn argv(&self) -> Vec<String> {
        match self {
            Command::Shell(text) => vec!["/bin/sh".to_owned(), "-c".to_owned(), text.clone()],
            Command::Exec(argv) => argv.clone(),
        }
    }

    /// The argv run from `workdir`: the shell form becomes `/bin/sh -c "cd <workdir> && <text>"`
    /// unless `workdir` is `/`; the exec form is unchanged (reference §7.2, RUN and CMD).
    pub fn argv_in(&self, workdir: &str) -> Vec<String> {
        match self {
            Command::Shell(text) if workdir != "/" => vec![
                "/bin/sh".to_owned(),
                "-c".to_owned(),
                format!("cd {workdir} && {text}"),
            ],
            _ => self.argv(),
        }
    }
}

/// Why a Dockerfile is refused. The messages are the reference's where it has one; each names
/// the line (as [`Line::text`] would hold it) and carries its number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No space after the instruction, leading blanks, or an instruction outside the subset.
    #[error("error in '{line}': invalid instruction")]
    InvalidInstruction {
        /// The line's number in the file.
        number: usize,
        /// The line.
        line: String,
    },
    /// An `ENV` or `ARG` name not matching `^[a-zA-Z_][a-zA-Z0-9_]+$` (two characters at least).
    #[error("ENV/ARG variable name is invalid on line: {line}")]
    InvalidVariableName {
        /// The line's number in the file.
        number: usize,
        /// The line.
        line: String,
    },
    /// An instruction other than `ARG` before the first `FROM`.
    #[error("'{line}' not permitted before a FROM instruction")]
    BeforeFrom {
        /// The line's number in the file.
        number: usize,
        /// The line.
        line: String,
    },
    /// `ENV` without `=`.
    #[error("error in '{line}': ENV needs NAME=value (one variable per line)")]
    EnvWithoutValue {
        /// The line's number in the file.
        number: usize,
        /// The line.
        line: String,
    },
    /// `FROM <image> AS <name>`.
    #[error("error in '{line}': multi-stage builds (FROM <image> AS <name>) are not supported")]
    MultiStage {
        /// The line's number in the file.
        number: usize,
        /// The line.
        line: String,
    },
    /// An argument starting with `[` that is not a JSON array of strings.
    #[error("error in '{line}': the JSON form must be an array of strings: {reason}")]
    InvalidJson {
        /// The line's number in the file.
        number: usize,
        /// The line.
        line: String,
        /// What the JSON decoder said.
        reason: String,
    },
    /// An instruction without what it needs.
    #[error("error in '{line}': {missing}")]
    MissingArgument {
        /// The line's number in the file.
        number: usize,
        /// The line.
        line: String,
        /// What is missing, e.g. `FROM needs an image`.
        missing: &'static str,
    },
    /// Only `ARG` lines: the last one is named.
    #[error("no FROM instruction: the Dockerfile ends with '{line}'")]
    NoFrom {
        /// The last line's number in the file.
        number: usize,
        /// The last line.
        line: String,
    },
    /// Nothing but blank and comment lines.
    #[error("the Dockerfile has no instructions (it needs a FROM)")]
    Empty,
}

impl ParseError {
    /// The number of the line the error is about (`None` for [`ParseError::Empty`]).
    pub fn line_number(&self) -> Option<usize> {
        self.location().map(|(number, _)| number)
    }

    /// The line the error is about, as [`Line::text`] would hold it.
    pub fn line(&self) -> Option<&str> {
        self.location().map(|(_, line)| line)
    }

    fn location(&self) -> Option<(usize, &str)> {
        match self {
            ParseError::InvalidInstruction { number, line }
            | ParseError::InvalidVariableName { number, line }
            | ParseError::BeforeFrom { number, line }
            | ParseError::EnvWithoutValue { number, line }
            | ParseError::MultiStage { number, line }
            | ParseError::InvalidJson { number, line, .. }
            | ParseError::MissingArgument { number, line, .. }
            | ParseError::NoFrom { number, line } => Some((*number, line)),
            ParseError::Empty => None,
        }
    }
}

/// Parses a Dockerfile. The first invalid line in file order is reported; then, as in the
/// reference, only `ARG` may come before the first `FROM`.
pub fn parse(text: &str) -> Result<Vec<Line>, ParseError> {
    let mut lines = Vec::new();
    for (number, text) in logical_lines(text) {
        if text.trim().is_empty() || text.starts_with('#') {
            continue;
        }
        let instruction = match instruction(&text) {
            Ok(instruction) => instruction,
            Err(problem) => return Err(problem.at(number, text)),
        };
        lines.push(Line {
            number,
            text,
            instruction,
        });
    }
    match lines
        .iter()
        .find(|line| !matches!(line.instruction, Instruction::Arg(_)))
    {
        Some(line) if matches!(line.instruction, Instruction::From { .. }) => Ok(lines),
        Some(line) => Err(ParseError::BeforeFrom {
            number: line.number,
            line: line.text.clone(),
        }),
        None => Err(match lines.last() {
            Some(last) => ParseError::NoFrom {
                number: last.number,
                line: last.text.clone(),
            },
            None => ParseError::Empty,
        }),
    }
}

/// The text's lines with continuations joined, each with the number of its first physical line.
/// A backslash right before a newline is removed with the newline; one at the very end stays.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    // An editor's byte-order mark is no part of the first instruction.
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let physical: Vec<&str> = text.split('\n').collect();
    let last = physical.len().saturating_sub(1);
    let mut lines = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (index, raw) in physical.into_iter().enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let (number, mut joined) = open.take().unwrap_or((index + 1, String::new()));
        match line.strip_suffix('\\') {
            Some(head) if index < last => {
                joined.push_str(head);
                open = Some((number, joined));
            }
            _ => {
                joined.push_str(line);
                lines.push((number, joined));
            }
        }
    }
    lines
}

/// What is wrong with a line, before the line is attached.
enum Problem {
    Invalid,
    VariableName,
    EnvWithoutValue,
    MultiStage,
    Json(String),
    Missing(&'static str),
}

impl Problem {
    fn at(self, number: usize, line: String) -> ParseError {
        match self {
            Problem::Invalid => ParseError::InvalidInstruction { number, line },
            Problem::VariableName => ParseError::InvalidVariableName { number, line },
            Problem::EnvWithoutValue => ParseError::EnvWithoutValue { number, line },
            Problem::MultiStage => ParseError::MultiStage { number, line },
            Problem::Json(reason) => ParseError::InvalidJson {
                number,
                line,
                reason,
            },
            Problem::Missing(missing) => ParseError::MissingArgument {
                number,
                line,
                missing,
            },
        }
    }
}

/// One line that is neither blank nor a comment.
fn instruction(text: &str) -> Result<Instruction, Problem> {
    let Some((keyword, args)) = text.split_once(' ') else {
        return Err(Problem::Invalid);
    };
    let json = |args: &str| {
        serde_json::from_str::<Vec<String>>(args).map_err(|e| Problem::Json(e.to_string()))
    };
    let command = |args: &str, missing: &'static str| {
        if args.starts_with('[') {
            Ok(Command::Exec(json(args)?))
        } else if args.trim().is_empty() {
            Err(Problem::Missing(missing))
        } else {
            Ok(Command::Shell(args.to_owned()))
        }
    };
    Ok(match keyword {
        "FROM" => {
            if args.trim().is_empty() {
                return Err(Problem::Missing("FROM needs an image"));
            }
            if args
                .split_whitespace()
                .skip(1)
                .any(|word| word.eq_ignore_ascii_case("AS"))
            {
                return Err(Problem::MultiStage);
            }
            Instruction::From {
                image: args.to_owned(),
            }
        }
        "RUN" => match command(args, "RUN needs a command")? {
            Command::Exec(argv) if argv.is_empty() => {
                return Err(Problem::Missing("RUN needs a command"))
            }
            run => Instruction::Run(run),
        },
        "CMD" => Instruction::Cmd(command(args, "CMD needs a command")?),
        "COPY" => {
            let mut paths = if args.starts_with('[') {
                json(args)?
            } else {
                args.split(' ')
                    .filter(|path| !path.is_empty())
                    .map(str::to_owned)
                    .collect()
            };
            let dest = match paths.pop() {
                Some(dest) if !paths.is_empty() => dest,
                _ => {
                    return Err(Problem::Missing(
                        "COPY needs at least one source and a destination",
                    ))
                }
            };
            Instruction::Copy {
                sources: paths,
                dest,
            }
        }
        "USER" => match args.trim() {
            "" => return Err(Problem::Missing("USER needs a user")),
            user => Instruction::User(user.to_owned()),
        },
        "WORKDIR" => {
            if args.trim().is_empty() {
                return Err(Problem::Missing("WORKDIR needs a path"));
            }
            Instruction::Workdir(args.to_owned())
        }
        "ENV" => {
            let (name, value) = args.split_once('=').ok_or(Problem::EnvWithoutValue)?;
            if !valid_name(name) {
                return Err(Problem::VariableName);
            }
            Instruction::Env(EnvVar {
                name: name.to_owned(),
                value: value.trim_matches('"').to_owned(),
                raw: args.to_owned(),
            })
        }
        "ARG" => {
            let args = args.trim();
            let (name, default) = match args.split_once('=') {
                Some((name, default)) => (name, Some(default.trim_matches('"').to_owned())),
                None => (args, None),
            };
            if !valid_name(name) {
                return Err(Problem::VariableName);
            }
            Instruction::Arg(ArgVar {
                name: name.to_owned(),
                default,
            })
        }
        _ => return Err(Problem::Invalid),
    })
}

/// `^[a-zA-Z_][a-zA-Z0-9_]+$`, the reference's rule (so at least two characters).
fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && name.len() >= 2
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::super::substitute::tests::XorShift;
    use super::super::substitute::{substitute, Vars};
    use super::*;

    fn instructions(text: &str) -> Vec<Instruction> {
        parse(text)
            .unwrap_or_else(|e| panic!("{text:?}: {e}"))
            .into_iter()
            .map(|line| line.instruction)
            .collect()
    }

    fn from() -> Instruction {
        Instruction::From {
            image: "FreeBSD:testing".to_owned(),
        }
    }

    fn shell(text: &str) -> Command {
        Command::Shell(text.to_owned())
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(lines) => panic!("{text:?} parsed: {lines:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_instruction_of_the_subset() {
        let text = "# a comment\n\
                    ARG base=\"FreeBSD:testing\"\n\
                    FROM ${base}\n\
                    ARG version\n\
                    ENV PATH=\"/usr/local/bin:/bin\"\n\
                    USER  ntpd  \n\
                    WORKDIR app \n\
                    RUN echo \"$version\" > /v\n\
                    RUN [\"/bin/echo\", \"a b\"]\n\
                    COPY a b /dst/\n\
                    COPY [\"my file\", \".\"]\n\
                    CMD [\"/bin/sh\", \"/etc/rc\"]\n";
        let lines = parse(text).expect("parses");
        let numbers: Vec<usize> = lines.iter().map(|l| l.number).collect();
        assert_eq!(numbers, [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
        assert_eq!(lines[4].text, "USER  ntpd  ");
        let got: Vec<Instruction> = lines.into_iter().map(|l| l.instruction).collect();
        assert_eq!(
            got,
            [
                Instruction::Arg(ArgVar {
                    name: "base".into(),
                    default: Some("FreeBSD:testing".into())
                }),
                Instruction::From {
                    image: "${base}".into()
                },
                Instruction::Arg(ArgVar {
                    name: "version".into(),
                    default: None
                }),
                Instruction::Env(EnvVar {
                    name: "PATH".into(),
                    value: "/usr/local/bin:/bin".into(),
                    raw: "PATH=\"/usr/local/bin:/bin\"".into()
                }),
                Instruction::User("ntpd".into()),
                Instruction::Workdir("app ".into()),
                Instruction::Run(shell("echo \"$version\" > /v")),
                Instruction::Run(Command::Exec(strings(&["/bin/echo", "a b"]))),
                Instruction::Copy {
                    sources: strings(&["a", "b"]),
                    dest: "/dst/".into()
                },
                Instruction::Copy {
                    sources: strings(&["my file"]),
                    dest: ".".into()
                },
                Instruction::Cmd(Command::Exec(strings(&["/bin/sh", "/etc/rc"]))),
            ]
        );
    }

    #[test]
    fn the_reference_parser_tests() {
        // The reference's own test/dockerfile_test.exs.
        assert_eq!(
            parse("# Testing\nFROM lol\n# One more comment").expect("parses"),
            [Line {
                number: 2,
                text: "FROM lol".into(),
                instruction: Instruction::From {
                    image: "lol".into()
                }
            }]
        );
        assert_eq!(
            instructions("FROM lol\nRUN cat lol.txt\nCMD cat lol.txt")[1..],
            [
                Instruction::Run(shell("cat lol.txt")),
                Instruction::Cmd(shell("cat lol.txt"))
            ]
        );
        assert_eq!(
            instructions("FROM lol\nCOPY [\"lol1\", \"lol2\", \"lol3\"]\nCOPY lol1 lol2 lol3")[1..],
            [
                Instruction::Copy {
                    sources: strings(&["lol1", "lol2"]),
                    dest: "lol3".into()
                },
                Instruction::Copy {
                    sources: strings(&["lol1", "lol2"]),
                    dest: "lol3".into()
                }
            ]
        );
        assert_eq!(
            instructions("FROM lol\nUSER testuser\nUSER  testuser  ")[1..],
            [
                Instruction::User("testuser".into()),
                Instruction::User("testuser".into())
            ]
        );
    }

    // The reference's image tests (shared/reference/kleene-api.md §9.3), item by item.

    #[test]
    fn workdir_items_13_to_16() {
        assert_eq!(
            instructions(
                "FROM FreeBSD:testing\n# Create directory and test RUN-instruction\n\
                 WORKDIR /testdir\nRUN pwd\nRUN echo \"lol\" > testfile\n\
                 # Use existing directory and test COPY-instruction\n\
                 WORKDIR /home/\nRUN pwd\nCOPY test.txt .\n"
            ),
            [
                from(),
                Instruction::Workdir("/testdir".into()),
                Instruction::Run(shell("pwd")),
                Instruction::Run(shell("echo \"lol\" > testfile")),
                Instruction::Workdir("/home/".into()),
                Instruction::Run(shell("pwd")),
                Instruction::Copy {
                    sources: strings(&["test.txt"]),
                    dest: ".".into()
                },
            ]
        );
        assert_eq!(
            instructions("FROM FreeBSD:testing\nWORKDIR /a\nWORKDIR b\nWORKDIR c\nRUN pwd\n")[1..4],
            [
                Instruction::Workdir("/a".into()),
                Instruction::Workdir("b".into()),
                Instruction::Workdir("c".into())
            ]
        );
        assert_eq!(
            instructions(
                "FROM FreeBSD:testing\nWORKDIR /etc\nCOPY [\"test.txt\", \".\"]\n\
                 CMD cat /etc/test.txt\n"
            )[2..],
            [
                Instruction::Copy {
                    sources: strings(&["test.txt"]),
                    dest: ".".into()
                },
                Instruction::Cmd(shell("cat /etc/test.txt"))
            ]
        );
        // CMD is not substituted: `$(pwd)` runs in the container, at run time.
        let cmd = instructions("FROM FreeBSD:testing\nWORKDIR /etc\nCMD echo $(pwd)\n");
        assert_eq!(cmd[2], Instruction::Cmd(shell("echo $(pwd)")));
        assert_eq!(
            shell("echo $(pwd)").argv_in("/etc"),
            ["/bin/sh", "-c", "cd /etc && echo $(pwd)"]
        );
        assert_eq!(shell("pwd").argv_in("/"), ["/bin/sh", "-c", "pwd"]);
        assert_eq!(
            Command::Exec(strings(&["/bin/ls"])).argv_in("/etc"),
            ["/bin/ls"]
        );
    }

    #[test]
    fn copy_items_17_to_21() {
        let copies = instructions(
            "FROM FreeBSD:testing\nCOPY test.txt /root/\nCOPY test.txt /root/lol/\n\
             COPY *.txt /root/\nCOPY test.txt /etc/symbolic_testdir/\n",
        );
        let dests: Vec<&str> = copies[1..]
            .iter()
            .map(|i| match i {
                Instruction::Copy { dest, .. } => dest.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            dests,
            ["/root/", "/root/lol/", "/root/", "/etc/symbolic_testdir/"]
        );
        assert_eq!(
            copies[3],
            Instruction::Copy {
                sources: strings(&["*.txt"]),
                dest: "/root/".into()
            }
        );
    }

    #[test]
    fn cmd_keeps_its_double_space_item_22() {
        let lines = parse("FROM FreeBSD:testing\nCMD  echo -n \"lol\"\n").expect("parses");
        assert_eq!(lines[1].text, "CMD  echo -n \"lol\"");
        assert_eq!(
            lines[1].instruction,
            Instruction::Cmd(shell(" echo -n \"lol\""))
        );
    }

    fn env_of(text: &str) -> EnvVar {
        match instructions(&format!("FROM FreeBSD:testing\n{text}\n")).pop() {
            Some(Instruction::Env(env)) => env,
            other => panic!("{other:?}"),
        }
    }

    fn arg_of(text: &str) -> ArgVar {
        match instructions(&format!("FROM FreeBSD:testing\n{text}\n")).pop() {
            Some(Instruction::Arg(arg)) => arg,
            other => panic!("{other:?}"),
        }
    }

    /// An ENV line as the engine turns it into the variable: `NAME=value`.
    fn env_result(text: &str, vars: &Vars) -> Result<String, String> {
        substitute(&env_of(text).expression(), vars).map_err(|e| e.to_string())
    }

    #[test]
    fn env_items_23_24_26() {
        let none = Vars::new();
        assert_eq!(
            env_result("ENV TEST1=lol", &none).as_deref(),
            Ok("TEST1=lol")
        );
        assert_eq!(
            env_result("ENV TEST2=\"testing test\"", &none).as_deref(),
            Ok("TEST2=testing test")
        );
        assert_eq!(
            env_result(r"ENV TEST3=test\ test", &none).as_deref(),
            Ok("TEST3=test test")
        );
        let hash = env_of(r#"ENV TEST="\$5\$2Fun7BK4thgtd4ao\$j1kidg9P""#);
        assert_eq!(hash.value, r"\$5\$2Fun7BK4thgtd4ao\$j1kidg9P");
        assert_eq!(hash.raw, r#"TEST="\$5\$2Fun7BK4thgtd4ao\$j1kidg9P""#);
        assert_eq!(
            substitute(&hash.expression(), &none).as_deref(),
            Ok("TEST=$5$2Fun7BK4thgtd4ao$j1kidg9P")
        );
        let mut env = Vars::new();
        for line in [
            "ENV TEST=testvalue",
            "ENV TEST=\"a new test value for TEST\"",
            "ENV TEST2=test2value",
        ] {
            let result = env_result(line, &env).expect("substitutes");
            assert!(env.set_assignment(&result));
        }
        assert_eq!(
            env.to_env(),
            ["TEST=a new test value for TEST", "TEST2=test2value"]
        );
    }

    #[test]
    fn arg_before_from_items_27_and_28() {
        let lines = parse(
            "ARG testvar\nFROM ${testvar:-doesnotexist}\nRUN echo \"succesfully used parent image\"\n",
        )
        .expect("parses");
        assert_eq!(lines[1].text, "FROM ${testvar:-doesnotexist}");
        let Instruction::From { image } = &lines[1].instruction else {
            panic!("{:?}", lines[1]);
        };
        let declared: Vars = [("testvar", "")].into_iter().collect();
        assert_eq!(substitute(image, &declared).as_deref(), Ok("doesnotexist"));
        let given: Vars = [("testvar", "FreeBSD:testing")].into_iter().collect();
        assert_eq!(substitute(image, &given).as_deref(), Ok("FreeBSD:testing"));

        assert_eq!(
            error("ENV testvar=lol\nFROM FreeBSD:testing\nRUN echo \"this never happens\"\n"),
            "'ENV testvar=lol' not permitted before a FROM instruction"
        );
    }

    #[test]
    fn arg_values_items_29_30_37() {
        assert_eq!(arg_of("ARG testvar").value(), "");
        assert_eq!(arg_of("ARG testvar").default, None);
        assert_eq!(arg_of("ARG testvar1=testval1").value(), "testval1");
        assert_eq!(arg_of("ARG testvar2=\"test val2\"").value(), "test val2");
        assert_eq!(arg_of("ARG  testvar=\"\"  ").default.as_deref(), Some(""));
        let lines = instructions(
            "FROM FreeBSD:testing\nARG testvar=should_be_overwritten\nARG testvar\n\
             RUN echo -n \"empty:$testvar\"\n",
        );
        let mut args = Vars::new();
        for instruction in &lines {
            if let Instruction::Arg(arg) = instruction {
                args.set(arg.name.clone(), arg.value());
            }
        }
        assert_eq!(args.to_env(), ["testvar="]);
        assert_eq!(
            lines[3],
            Instruction::Run(shell("echo -n \"empty:$testvar\""))
        );
        assert_eq!(
            substitute("\"empty:$testvar\"", &args).as_deref(),
            Ok("empty:")
        );
    }

    #[test]
    fn user_and_copy_with_args_items_31_35_36() {
        let lines = instructions(
            "FROM FreeBSD:testing\nUSER ${username:-ntpd}\nARG username\nRUN whoami\n\
             USER $username\nRUN whoami\n",
        );
        assert_eq!(lines[1], Instruction::User("${username:-ntpd}".into()));
        assert_eq!(lines[4], Instruction::User("$username".into()));
        let lines =
            instructions("FROM FreeBSD:testing\nARG TESTVAR=\"test.txt\"\nCOPY $TESTVAR /root/\n");
        assert_eq!(
            lines[2],
            Instruction::Copy {
                sources: strings(&["$TESTVAR"]),
                dest: "/root/".into()
            }
        );
        let lines = instructions(
            "FROM FreeBSD:testing\nARG TESTVAR=ntpd\nUSER $TESTVAR\nRUN echo \"$(/usr/bin/id)\"\n",
        );
        // RUN is not substituted by the daemon: its shell runs in the jail.
        assert_eq!(lines[3], Instruction::Run(shell("echo \"$(/usr/bin/id)\"")));
    }

    #[test]
    fn env_over_arg_items_32_33_38() {
        let lines = instructions(
            "FROM FreeBSD:testing\nARG CONT_IMG_VER\nENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}\n\
             CMD echo $CONT_IMG_VER\n",
        );
        let Instruction::Env(env) = &lines[2] else {
            panic!("{:?}", lines[2]);
        };
        let declared: Vars = [("CONT_IMG_VER", "")].into_iter().collect();
        assert_eq!(
            substitute(&env.expression(), &declared).as_deref(),
            Ok("CONT_IMG_VER=v1.0.0")
        );
        let given: Vars = [("CONT_IMG_VER", "v.2.0.1")].into_iter().collect();
        assert_eq!(
            substitute(&env.expression(), &given).as_deref(),
            Ok("CONT_IMG_VER=v.2.0.1")
        );
        assert_eq!(lines[3], Instruction::Cmd(shell("echo $CONT_IMG_VER")));
    }

    #[test]
    fn invalid_variable_names_item_34() {
        assert_eq!(
            error("FROM FreeBSD:testing\nARG TEST-VAR=\"this should fail\"\n"),
            "ENV/ARG variable name is invalid on line: ARG TEST-VAR=\"this should fail\""
        );
        assert_eq!(
            error("FROM FreeBSD:testing\nENV TEST-VAR=\"this should fail\"\n"),
            "ENV/ARG variable name is invalid on line: ENV TEST-VAR=\"this should fail\""
        );
        for bad in [
            "ENV A=1",
            "ARG A",
            "ENV 1A=1",
            "ENV  AB=1",
            "ENV =1",
            "ARG é=1",
        ] {
            assert!(
                matches!(
                    parse(&format!("FROM x\n{bad}")),
                    Err(ParseError::InvalidVariableName { number: 2, .. })
                ),
                "{bad}"
            );
        }
        assert_eq!(arg_of("ARG _a").name, "_a");
    }

    #[test]
    fn continuation_lines_item_40() {
        let lines = parse(
            "FROM FreeBSD:testing\nCOPY test.txt /root/\nRUN echo \\\n  \"this should not be \
             relayed back to the parent process\"\nUSER ntpd\nCMD /etc/rc\n",
        )
        .expect("parses");
        assert_eq!(lines.len(), 5);
        assert_eq!(
            lines[2].text,
            "RUN echo   \"this should not be relayed back to the parent process\""
        );
        assert_eq!(lines[2].number, 3);
        assert_eq!(lines[3].number, 5);
        assert_eq!(lines[4].text, "CMD /etc/rc");
    }

    #[test]
    fn empty_lines_item_41() {
        let lines =
            parse("\n\nFROM FreeBSD:testing\n\n   \n\t\nRUN echo lol\n\n\n").expect("parses");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].number, 7);
    }

    #[test]
    fn missing_continuation_item_54() {
        assert_eq!(
            error(
                "FROM FreeBSD:testing\nRUN echo\n  \"this should faile because we omitted the \
                 '\\' above\"\nCMD /usr/bin/uname\n"
            ),
            "error in '  \"this should faile because we omitted the '\\' above\"': invalid \
             instruction"
        );
    }

    #[test]
    fn illegal_comment_parses_then_fails_substitution_item_56() {
        let text =
            "FROM FreeBSD:testing\nENV TEST=\"something\" # You cannot make comments like this.\n";
        let lines = parse(text).expect("parses: the failure is the substitution's");
        assert_eq!(
            lines[1].text,
            "ENV TEST=\"something\" # You cannot make comments like this."
        );
        let Instruction::Env(env) = &lines[1].instruction else {
            panic!("{:?}", lines[1]);
        };
        assert_eq!(
            env.expression(),
            "TEST=something\" # You cannot make comments like this."
        );
        assert!(substitute(&env.expression(), &Vars::new()).is_err());
        assert!(substitute(&env.raw, &Vars::new()).is_err());
    }

    #[test]
    fn reference_reading_rules() {
        // A comment is a `#` in the first column only.
        assert!(matches!(
            parse("FROM x\n  # indented"),
            Err(ParseError::InvalidInstruction { number: 2, .. })
        ));
        // A comment ending in a backslash swallows the next line.
        assert_eq!(instructions("FROM x\n# c \\\nRUN y").len(), 1);
        // Instructions are upper case and followed by a space.
        for bad in [
            "run echo",
            "RUN\techo",
            "RUN",
            " RUN echo",
            "ADD a b",
            "EXPOSE 80",
        ] {
            assert_eq!(
                error(&format!("FROM x\n{bad}")),
                format!("error in '{bad}': invalid instruction")
            );
        }
        // CRLF ends are line ends, also for continuations.
        let lines = parse("FROM x\r\nRUN a \\\r\n  b\r\n").expect("parses");
        assert_eq!(lines[0].text, "FROM x");
        assert_eq!(lines[1].text, "RUN a   b");
        // A byte-order mark is ignored.
        assert_eq!(
            instructions("\u{FEFF}FROM x")[0],
            Instruction::From { image: "x".into() }
        );
        // A backslash at the very end stays.
        assert_eq!(
            instructions("FROM x\nRUN a \\")[1],
            Instruction::Run(shell("a \\"))
        );
        // The first error in file order wins, before the FROM check.
        assert_eq!(
            error("RUN a\nFROM x\nBAD line\nENV a=1"),
            "error in 'BAD line': invalid instruction"
        );
        // ENV keeps one variable per line; quotes are trimmed at both ends independently.
        let env = env_of("ENV AB=1 B=2");
        assert_eq!((env.name.as_str(), env.value.as_str()), ("AB", "1 B=2"));
        assert_eq!(env_of("ENV AB=\"\"x\"").value, "x");
        assert_eq!(env_of("ENV AB=x=y").value, "x=y");
        assert_eq!(env_of("ENV AB=").value, "");
        // COPY's empty tokens are dropped.
        assert_eq!(
            instructions("FROM x\nCOPY a  b ")[1],
            Instruction::Copy {
                sources: strings(&["a"]),
                dest: "b".into()
            }
        );
        // USER user:group is one string.
        assert_eq!(
            instructions("FROM x\nUSER www:www")[1],
            Instruction::User("www:www".into())
        );
    }

    #[test]
    fn our_errors_name_the_line() {
        let cases = [
            (
                "FROM x\nENV NOVALUE",
                "error in 'ENV NOVALUE': ENV needs NAME=value (one variable per line)",
            ),
            (
                "FROM a AS b",
                "error in 'FROM a AS b': multi-stage builds (FROM <image> AS <name>) are not \
                 supported",
            ),
            (
                "FROM a as b",
                "error in 'FROM a as b': multi-stage builds (FROM <image> AS <name>) are not \
                 supported",
            ),
            ("FROM  ", "error in 'FROM  ': FROM needs an image"),
            ("FROM x\nRUN  ", "error in 'RUN  ': RUN needs a command"),
            ("FROM x\nRUN []", "error in 'RUN []': RUN needs a command"),
            ("FROM x\nCMD ", "error in 'CMD ': CMD needs a command"),
            ("FROM x\nUSER   ", "error in 'USER   ': USER needs a user"),
            (
                "FROM x\nWORKDIR  ",
                "error in 'WORKDIR  ': WORKDIR needs a path",
            ),
            (
                "FROM x\nCOPY a",
                "error in 'COPY a': COPY needs at least one source and a destination",
            ),
            (
                "FROM x\nCOPY [\"a\"]",
                "error in 'COPY [\"a\"]': COPY needs at least one source and a destination",
            ),
            (
                "ARG a1\nARG b2=3",
                "no FROM instruction: the Dockerfile ends with 'ARG b2=3'",
            ),
            (
                "# only\n\n",
                "the Dockerfile has no instructions (it needs a FROM)",
            ),
        ];
        for (text, message) in cases {
            assert_eq!(error(text), message, "{text:?}");
        }
        let json = error("FROM x\nRUN [\"a\", 1]");
        assert!(
            json.starts_with(
                "error in 'RUN [\"a\", 1]': the JSON form must be an array of strings: "
            ),
            "{json}"
        );
        assert!(error("FROM x\nCMD [oops").contains("'CMD [oops'"));
        assert_eq!(
            instructions("FROM x\nCMD []")[1],
            Instruction::Cmd(Command::Exec(vec![]))
        );
        let err = parse("FROM x\n\n\nCOPY a").expect_err("refused");
        assert_eq!(err.line_number(), Some(4));
        assert_eq!(err.line(), Some("COPY a"));
        assert_eq!(ParseError::Empty.line_number(), None);
    }

    const SEED: &str = "# syntax: the Kleene subset\n\
        ARG base=FreeBSD:testing\n\
        ARG version=\"1.0\"\n\
        FROM ${base:-FreeBSD:testing}\n\
        ENV APP_HOME=/usr/local/app\n\
        ENV GREETING=\"hello world\"\n\
        ENV HASH=\"\\$5\\$2Fun7BK4thgtd4ao\\$j1kidg9P\"\n\
        ARG user=www\n\
        USER root\n\
        WORKDIR /usr/local/app\n\
        RUN pkg install -y python3 && \\\n    rm -rf /var/cache/pkg/*\n\
        RUN [\"/bin/sh\", \"-c\", \"echo $GREETING > /greeting\"]\n\
        COPY *.txt requirements.txt ./\n\
        COPY [\"conf dir/app.conf\", \"/usr/local/etc/\"]\n\
        COPY $version/ /opt/${user:-www}/\n\
        USER ${user}\n\
        WORKDIR data\n\
        CMD [\"/usr/local/bin/python3\", \"-m\", \"app\"]\n\
        CMD python3 -m app --greeting \"$GREETING\"\n";

    /// A random mutation of a Dockerfile.
    fn mutate(rng: &mut XorShift, text: &str) -> String {
        const PIECES: &[&str] = &[
            "\\\n",
            "\n",
            "\r\n",
            " ",
            "  ",
            "\t",
            "#",
            "\"",
            "'",
            "\\",
            "$",
            "${",
            "}",
            "${A:-",
            "$(",
            "`",
            "[",
            "]",
            "[\"",
            "\", \"",
            "=",
            ":-",
            "AS",
            " AS x",
            "FROM ",
            "ARG ",
            "ENV ",
            "RUN ",
            "CMD ",
            "COPY ",
            "USER ",
            "WORKDIR ",
            "ADD ",
            "é",
            "\u{1F600}",
            "\u{0}",
            "\u{FEFF}",
            "\u{202E}",
            "\u{10FFFF}",
        ];
        let mut bytes = text.as_bytes().to_vec();
        match rng.below(9) {
            // Flip a bit.
            0 if !bytes.is_empty() => {
                let at = rng.below(bytes.len());
                bytes[at] ^= 1 << rng.below(8);
            }
            // Delete a range.
            1 if !bytes.is_empty() => {
                let at = rng.below(bytes.len());
                let end = (at + rng.below(40)).min(bytes.len());
                bytes.drain(at..end);
            }
            // Truncate.
            2 => bytes.truncate(rng.below(bytes.len() + 1)),
            // Insert a piece of Dockerfile syntax.
            3 | 4 => {
                let at = rng.below(bytes.len() + 1);
                let piece = rng.pick(PIECES).as_bytes();
                bytes.splice(at..at, piece.iter().copied());
            }
            // Duplicate or drop a line.
            5 => {
                let mut lines: Vec<&str> = text.split('\n').collect();
                let at = rng.below(lines.len());
                if rng.below(2) == 0 {
                    lines.insert(at, lines[at]);
                } else {
                    lines.remove(at);
                }
                return lines.join("\n");
            }
            // Random characters, anywhere in Unicode.
            6 => {
                let at = rng.below(bytes.len() + 1);
                let random: String = (0..1 + rng.below(8))
                    .filter_map(|_| char::from_u32(rng.below(0x11_0000) as u32))
                    .collect();
                bytes.splice(at..at, random.bytes());
            }
            // Deeply nested expansions.
            7 => {
                let at = rng.below(bytes.len() + 1);
                let depth = rng.below(200);
                let nested = format!(
                    "{}x{}",
                    "${A:-\"".repeat(depth),
                    "\"}".repeat(rng.below(depth + 1))
                );
                bytes.splice(at..at, nested.bytes());
            }
            // A whole random line.
            _ => {
                let line: String = (0..rng.below(12)).map(|_| rng.pick(PIECES)).collect();
                let at = rng.below(bytes.len() + 1);
                bytes.splice(at..at, format!("\n{line}\n").bytes());
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Parses `text` and substitutes what the engine would: never a panic; every error names its
    /// line; what parses keeps the reference's invariants.
    fn check(text: &str) -> (bool, usize) {
        let parsed = std::panic::catch_unwind(|| parse(text))
            .unwrap_or_else(|_| panic!("parse panicked on {text:?}"));
        let lines = match parsed {
            Err(ParseError::Empty) => {
                assert!(
                    logical_lines(text)
                        .iter()
                        .all(|(_, l)| l.trim().is_empty() || l.starts_with('#')),
                    "{text:?}"
                );
                return (false, 0);
            }
            Err(e) => {
                let (number, line) = e.location().expect("names a line");
                assert!(e.to_string().contains(line), "{e} does not name {line:?}");
                assert!(
                    logical_lines(text).contains(&(number, line.to_owned())),
                    "{e}: no line {number} {line:?} in {text:?}"
                );
                return (false, 0);
            }
            Ok(lines) => lines,
        };
        let mut previous = 0;
        for line in &lines {
            assert!(line.number > previous, "{text:?}");
            previous = line.number;
            assert!(!line.text.trim().is_empty() && !line.text.starts_with('#'));
            assert!(line.text.starts_with(line.instruction.keyword()));
        }
        let first = lines
            .iter()
            .find(|l| !matches!(l.instruction, Instruction::Arg(_)));
        assert!(matches!(
            first.map(|l| &l.instruction),
            Some(Instruction::From { .. })
        ));
        let mut vars = Vars::new();
        let mut substituted = 0;
        for line in &lines {
            let expressions = match &line.instruction {
                Instruction::Arg(arg) => {
                    vars.set(arg.name.clone(), arg.value());
                    vec![]
                }
                Instruction::From { image } => vec![image.clone()],
                Instruction::Env(env) => vec![env.expression(), env.raw.clone()],
                Instruction::User(user) => vec![user.clone()],
                Instruction::Copy { sources, dest } => {
                    sources.iter().chain([dest]).cloned().collect()
                }
                Instruction::Run(_) | Instruction::Cmd(_) | Instruction::Workdir(_) => vec![],
            };
            for expression in expressions {
                let result = std::panic::catch_unwind(|| substitute(&expression, &vars))
                    .unwrap_or_else(|_| panic!("substitute panicked on {expression:?}"));
                substituted += 1;
                match result {
                    Ok(value) => {
                        if let Instruction::Env(env) = &line.instruction {
                            if value.starts_with(&format!("{}=", env.name)) {
                                vars.set_assignment(&value);
                            }
                        }
                    }
                    Err(e) => assert!(e.to_string().contains(&expression), "{e}"),
                }
            }
        }
        (true, substituted)
    }

    /// At least 10 000 mutated and random Dockerfiles through the parser and the substitution.
    #[test]
    fn random_and_mutated_dockerfiles_never_panic() {
        assert!(check(SEED).0, "the seed parses");
        let mut rng = XorShift(0xD1B5_4A32_D192_ED03);
        let (mut total, mut parsed, mut substituted) = (0, 0, 0);
        let mut record = |(ok, subs): (bool, usize)| {
            total += 1;
            parsed += usize::from(ok);
            substituted += subs;
        };
        // Chains of mutations from the seed: most stay close to a real Dockerfile.
        for _ in 0..1_200 {
            let mut text = SEED.to_owned();
            for _ in 0..8 {
                text = mutate(&mut rng, &text);
                record(check(&text));
            }
        }
        // Random lines of instructions and syntax.
        for _ in 0..1_000 {
            let text: String = (0..rng.below(30))
                .map(|_| {
                    let keyword = rng.pick(&[
                        "FROM", "ARG", "ENV", "RUN", "CMD", "COPY", "USER", "WORKDIR", "#", "",
                    ]);
                    let mut line = format!("{keyword} ");
                    for _ in 0..rng.below(6) {
                        line = mutate(&mut rng, &line);
                    }
                    line + "\n"
                })
                .collect();
            record(check(&text));
        }
        // Random bytes.
        for _ in 0..500 {
            let bytes: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
            record(check(&String::from_utf8_lossy(&bytes)));
        }
        assert!(total >= 10_000, "{total}");
        // The corpus exercises both outcomes and the substitution.
        assert!(parsed > total / 10, "{parsed} of {total} parsed");
        assert!(parsed < total, "{parsed} of {total} parsed");
        assert!(substituted > 10_000, "{substituted} substitutions");
    }
}
