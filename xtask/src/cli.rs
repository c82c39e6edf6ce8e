//! The command-line options of the benchmark commands, read one way:
//! `--name value`, `--name=value`, the `--no-build` switch and `--help`.
//!
//! Owns: splitting the arguments into options; each command keeps its own
//! names, bounds and messages.

use anyhow::{Context, Result};

/// One option with a value.
pub(crate) struct Opt<'a> {
    /// The argument as given (`--rounds=3`), for "unknown option" messages.
    pub(crate) arg: &'a str,
    /// `--rounds`.
    pub(crate) name: &'a str,
    /// `3`.
    pub(crate) value: &'a str,
}

/// The options of a command line.
pub(crate) struct Options<'a> {
    /// `false` when `--no-build` was given.
    pub(crate) build: bool,
    /// Every other option, in order.
    pub(crate) options: Vec<Opt<'a>>,
}

/// Reads `args`; an option without its value is an error naming it, with
/// `usage`.
pub(crate) fn parse<'a>(args: &[&'a str], usage: &str) -> Result<Options<'a>> {
    let mut out = Options {
        build: true,
        options: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(&arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v)),
            _ => (arg, None),
        };
        if matches!(name, "--help" | "-h") && inline.is_none() {
            // As clap does: the usage on stdout, and success.
            println!("{usage}");
            std::process::exit(0);
        }
        if name == "--no-build" && inline.is_none() {
            out.build = false;
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .copied()
                .with_context(|| format!("{name} needs a value\n{usage}"))?,
        };
        out.options.push(Opt { arg, name, value });
    }
    Ok(out)
}

/// `v` as a positive integer, for option `name`.
pub(crate) fn positive(name: &str, v: &str) -> Result<u64> {
    v.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .with_context(|| format!("{name}: {v:?} is not a positive integer"))
}

/// `v` as a whole number, 0 allowed, capped at `max` (for option `name`:
/// `--quiet-wait 0` means "do not wait").
pub(crate) fn number_up_to(name: &str, v: &str, max: u64) -> Result<u64> {
    let n = v
        .trim()
        .parse::<u64>()
        .with_context(|| format!("{name}: {v:?} is not a number"))?;
    Ok(n.min(max))
}

/// A comma-separated list, each item read by `parse`; empty items are
/// skipped and an empty list is an error.
pub(crate) fn list<T>(value: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    let items: Vec<T> = value
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(parse)
        .collect::<Result<_>>()?;
    if items.is_empty() {
        anyhow::bail!("empty list {value:?}");
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_come_spaced_or_with_an_equals_sign_and_no_build_is_a_switch() {
        let o = parse(&["--rounds", "3", "--window=20", "--no-build"], "usage").expect("ok");
        assert!(!o.build);
        let got: Vec<(&str, &str, &str)> =
            o.options.iter().map(|o| (o.arg, o.name, o.value)).collect();
        assert_eq!(
            got,
            vec![
                ("--rounds", "--rounds", "3"),
                ("--window=20", "--window", "20")
            ]
        );
        let err = parse(&["--rounds"], "usage")
            .err()
            .expect("missing value")
            .to_string();
        assert!(err.starts_with("--rounds needs a value"), "{err}");
    }

    #[test]
    fn number_up_to_takes_zero_caps_and_refuses_words() {
        assert_eq!(number_up_to("--n", "0", 10).expect("ok"), 0);
        assert_eq!(number_up_to("--n", " 99 ", 10).expect("ok"), 10);
        assert!(number_up_to("--n", "-1", 10).is_err());
    }

    #[test]
    fn positive_refuses_zero_and_words() {
        assert_eq!(positive("--n", " 7 ").expect("ok"), 7);
        assert!(positive("--n", "0").is_err());
        assert!(positive("--n", "x").is_err());
    }
}
