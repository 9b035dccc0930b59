//! Command-line flags as gRPC's interop binaries take them: `--name=value` (Go's form) or
//! `--name value`; a bare `--name` is `true`.

use std::collections::HashMap;

/// Parsed flags.
#[derive(Debug, Default)]
pub struct Flags {
    values: HashMap<String, String>,
}

impl Flags {
    /// Parses `args` (without the program name), accepting only `known` flag names.
    ///
    /// # Errors
    ///
    /// A message naming an unknown flag or a stray argument.
    pub fn parse(args: impl IntoIterator<Item = String>, known: &[&str]) -> Result<Flags, String> {
        let mut values = HashMap::new();
        let mut args = args.into_iter().peekable();
        while let Some(arg) = args.next() {
            let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                return Err(format!("unexpected argument {arg:?}"));
            };
            let (name, value) = match flag.split_once('=') {
                Some((name, value)) => (name.to_owned(), value.to_owned()),
                None => {
                    let value = match args.peek() {
                        Some(next) if !next.starts_with('-') => args.next().unwrap_or_default(),
                        _ => "true".to_owned(),
                    };
                    (flag.to_owned(), value)
                }
            };
            if !known.contains(&name.as_str()) {
                return Err(format!(
                    "unknown flag --{name} (known: {})",
                    known.join(", ")
                ));
            }
            values.insert(name, value);
        }
        Ok(Flags { values })
    }

    /// A string flag, or `default`.
    pub fn get<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.values.get(name).map_or(default, String::as_str)
    }

    /// A boolean flag (`true`/`false`/`1`/`0`), or `default`.
    ///
    /// # Errors
    ///
    /// If the value is not a boolean.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, String> {
        match self.values.get(name).map(String::as_str) {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(format!("--{name}: expected true or false, got {other:?}")),
        }
    }

    /// A number flag, or `default`.
    ///
    /// # Errors
    ///
    /// If the value is not a number.
    pub fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.values.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("--{name}: expected a number, got {v:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Flags, String> {
        Flags::parse(
            args.iter().map(|s| (*s).to_owned()),
            &["port", "use_tls", "test_case"],
        )
    }

    #[test]
    fn both_forms() {
        let f = parse(&["--port=8080", "--test_case", "large_unary", "--use_tls"]).unwrap();
        assert_eq!(f.number("port", 0u16).unwrap(), 8080);
        assert_eq!(f.get("test_case", ""), "large_unary");
        assert!(f.bool("use_tls", false).unwrap());
        let f = parse(&["-port", "9", "--use_tls=false"]).unwrap();
        assert_eq!(f.number("port", 0u16).unwrap(), 9);
        assert!(!f.bool("use_tls", true).unwrap());
        assert!(
            parse(&["--nope=1"])
                .unwrap_err()
                .contains("unknown flag --nope")
        );
        assert!(parse(&["stray"]).is_err());
        assert!(parse(&["--port=x"]).unwrap().number("port", 0u16).is_err());
    }
}
