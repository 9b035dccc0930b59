//! Which methods are logged, and how much of each: gRPC's `GRPC_BINARY_LOG_FILTER` syntax
//! (gRFC A16), read as gRPC-Go reads it.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;

/// The environment variable [`Config::from_env`] reads.
pub const FILTER_ENV: &str = "GRPC_BINARY_LOG_FILTER";

/// Which methods a [`Logger`](super::Logger) logs, and how much of their metadata and
/// messages: a binary log filter (gRFC A16), as in `GRPC_BINARY_LOG_FILTER`.
///
/// A filter is a comma-separated list of entries, without spaces:
///
/// | entry | logs |
/// | --- | --- |
/// | `*` | every method |
/// | `pkg.Service/*` | every method of `pkg.Service` |
/// | `pkg.Service/Method` | that method |
/// | `-pkg.Service/Method` | not that method (an exception to `*` or `Service/*`) |
///
/// Any entry but an exception may end with limits, in bytes:
///
/// | suffix | headers | messages |
/// | --- | --- | --- |
/// | (none) | whole | whole |
/// | `{h}` | whole | none |
/// | `{h:N}` | first N bytes | none |
/// | `{m}` | none | whole |
/// | `{m:N}` | none | first N bytes |
/// | `{h:N;m:M}` | first N bytes | first M bytes (either number may be left out: whole) |
///
/// A method's own entry wins over its service's, which wins over `*`; an exception wins over
/// its service's entry and `*`. An entry may not repeat (two `*`, two entries for one
/// service or one method), and a method may not be both logged and excepted.
///
/// A header limit counts the key and value bytes of each metadata entry, in order, and
/// keeps the entries that fit whole (`grpc-trace-bin` is always kept and not counted);
/// a message limit keeps the first bytes of the message. What is left out sets the
/// record's `payload_truncated`.
///
/// # Examples
///
/// ```
/// use grpc_runtime::binarylog::Config;
///
/// // Every method of Greeter with 256 bytes of each message, but not SayGoodbye; and
/// // the headers of Health.Check.
/// let config = Config::parse("helloworld.Greeter/*{m:256},-helloworld.Greeter/SayGoodbye,grpc.health.v1.Health/Check{h}")?;
///
/// let limits = config.lookup("/helloworld.Greeter/SayHello").unwrap();
/// assert_eq!(limits.message(), Some(256));
/// assert_eq!(limits.header(), Some(0));
/// assert!(config.lookup("/helloworld.Greeter/SayGoodbye").is_none());
/// assert_eq!(config.lookup("/grpc.health.v1.Health/Check").unwrap().header(), None);
/// assert!(config.lookup("/grpc.health.v1.Health/Watch").is_none());
/// # Ok::<(), grpc_runtime::binarylog::FilterError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    all: Option<Limits>,
    services: HashMap<String, Limits>,
    methods: HashMap<String, Limits>,
    excluded: HashSet<String>,
}

/// How much of a logged method's metadata and messages go into its records.
///
/// # Examples
///
/// ```
/// use grpc_runtime::binarylog::{Config, Limits};
///
/// let config = Config::parse("*{h:64;m}")?;
/// assert_eq!(config.lookup("/pkg.S/M"), Some(Limits::new(Some(64), None)));
/// # Ok::<(), grpc_runtime::binarylog::FilterError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// `u64::MAX` when unlimited, as gRPC-Go keeps it.
    pub(super) header: u64,
    pub(super) message: u64,
}

impl Limits {
    /// Everything: whole metadata and whole messages.
    pub const ALL: Limits = Limits {
        header: u64::MAX,
        message: u64::MAX,
    };

    /// Limits of `header` and `message` bytes; `None` is no limit.
    pub const fn new(header: Option<u64>, message: Option<u64>) -> Limits {
        Limits {
            header: match header {
                Some(n) => n,
                None => u64::MAX,
            },
            message: match message {
                Some(n) => n,
                None => u64::MAX,
            },
        }
    }

    /// How many bytes of each header's metadata (keys and values) are logged; `None` for
    /// all of it.
    pub fn header(self) -> Option<u64> {
        (self.header != u64::MAX).then_some(self.header)
    }

    /// How many bytes of each message are logged; `None` for all of it.
    pub fn message(self) -> Option<u64> {
        (self.message != u64::MAX).then_some(self.message)
    }
}

impl Config {
    /// Parses a filter (see the [type docs](Config)). The empty string is a filter that
    /// logs nothing.
    ///
    /// # Errors
    ///
    /// [`FilterError`] naming the first entry that is not valid and why.
    pub fn parse(filter: &str) -> Result<Config, FilterError> {
        let mut config = Config::default();
        if filter.is_empty() {
            return Ok(config);
        }
        for entry in filter.split(',') {
            config
                .add(entry)
                .map_err(|kind| FilterError::new(entry, kind))?;
        }
        Ok(config)
    }

    /// Reads the filter in `GRPC_BINARY_LOG_FILTER`: `Ok(None)` if the variable is not set
    /// or empty (nothing to log).
    ///
    /// # Errors
    ///
    /// [`FilterError`] if the filter is not valid, or not Unicode.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use grpc_runtime::binarylog::{Config, FileSink, Logger};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let mut builder = grpc_runtime::client::Channel::builder("http://127.0.0.1:50051");
    /// if let Some(config) = Config::from_env()? {
    ///     let sink = FileSink::create(std::env::temp_dir().join("grpc-binary.log"))?;
    ///     builder = builder.stats_handler(Logger::new(config, sink));
    /// }
    /// # let _ = builder;
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_env() -> Result<Option<Config>, FilterError> {
        Config::from_var(std::env::var(FILTER_ENV))
    }

    fn from_var(var: Result<String, std::env::VarError>) -> Result<Option<Config>, FilterError> {
        match var {
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(value)) => Err(FilterError::new(
                &value.to_string_lossy(),
                FilterErrorKind::NotUnicode,
            )),
            Ok(filter) if filter.is_empty() => Ok(None),
            Ok(filter) => Config::parse(&filter).map(Some),
        }
    }

    /// Whether this filter logs no method at all.
    pub fn is_empty(&self) -> bool {
        self.all.is_none() && self.services.is_empty() && self.methods.is_empty()
    }

    /// The limits `method` (a path: `"/pkg.Service/Method"`) is logged with, or `None` if
    /// it is not logged (also when the path is not of that form).
    pub fn lookup(&self, method: &str) -> Option<Limits> {
        let path = method.strip_prefix('/')?;
        let (service, _) = path.rsplit_once('/')?;
        if let Some(limits) = self.methods.get(path) {
            return Some(*limits);
        }
        if self.excluded.contains(path) {
            return None;
        }
        if let Some(limits) = self.services.get(service) {
            return Some(*limits);
        }
        self.all
    }

    fn add(&mut self, entry: &str) -> Result<(), FilterErrorKind> {
        if entry.is_empty() {
            return Err(FilterErrorKind::Empty);
        }
        if let Some(excluded) = entry.strip_prefix('-') {
            let (service, method, suffix) =
                split_method(excluded).ok_or(FilterErrorKind::Syntax)?;
            if method == "*" {
                return Err(FilterErrorKind::ExcludedWildcard);
            }
            if !suffix.is_empty() {
                return Err(FilterErrorKind::ExcludedWithLimits);
            }
            let path = format!("{service}/{method}");
            if self.methods.contains_key(&path) {
                return Err(FilterErrorKind::Conflict);
            }
            if !self.excluded.insert(path) {
                return Err(FilterErrorKind::Duplicate);
            }
            return Ok(());
        }
        if let Some(suffix) = entry.strip_prefix('*') {
            let limits = parse_limits(suffix)?;
            if self.all.is_some() {
                return Err(FilterErrorKind::Duplicate);
            }
            self.all = Some(limits);
            return Ok(());
        }
        let (service, method, suffix) = split_method(entry).ok_or(FilterErrorKind::Syntax)?;
        let limits = parse_limits(suffix)?;
        if method == "*" {
            if self.services.contains_key(service) {
                return Err(FilterErrorKind::Duplicate);
            }
            self.services.insert(service.to_owned(), limits);
        } else {
            let path = format!("{service}/{method}");
            if self.excluded.contains(&path) {
                return Err(FilterErrorKind::Conflict);
            }
            if self.methods.contains_key(&path) {
                return Err(FilterErrorKind::Duplicate);
            }
            self.methods.insert(path, limits);
        }
        Ok(())
    }
}

impl FromStr for Config {
    type Err = FilterError;

    fn from_str(filter: &str) -> Result<Config, FilterError> {
        Config::parse(filter)
    }
}

/// A word character of gRPC-Go's pattern (`\w`: ASCII letters, digits, underscore).
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Splits `service/method<suffix>` (gRPC-Go's `^([\w./]+)/(\w+|\*)(.+)?$`): the service is
/// the longest run of word characters, dots and slashes that is followed by `/` and a
/// method (a run of word characters, or `*`); the suffix is whatever follows.
fn split_method(entry: &str) -> Option<(&str, &str, &str)> {
    let bytes = entry.as_bytes();
    if bytes.contains(&b'\n') {
        // The pattern's `.` does not match a newline, so no split can match.
        return None;
    }
    let service_chars = bytes
        .iter()
        .take_while(|&&b| is_word(b) || b == b'.' || b == b'/')
        .count();
    // The service is greedy: try the rightmost slash first.
    (1..service_chars).rev().find_map(|slash| {
        if bytes[slash] != b'/' {
            return None;
        }
        let rest = &entry[slash + 1..];
        let method_len = match rest.as_bytes().first() {
            Some(b'*') => 1,
            Some(&b) if is_word(b) => rest.bytes().take_while(|&b| is_word(b)).count(),
            _ => return None,
        };
        Some((&entry[..slash], &rest[..method_len], &rest[method_len..]))
    })
}

/// Parses limits: ``, `{h}`, `{h:N}`, `{m}`, `{m:N}`, `{h;m}` with optional `:N` on each.
fn parse_limits(suffix: &str) -> Result<Limits, FilterErrorKind> {
    if suffix.is_empty() {
        return Ok(Limits::ALL);
    }
    let inner = suffix
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .ok_or(FilterErrorKind::Limits)?;
    match inner.split_once(';') {
        Some((header, message)) => Ok(Limits {
            header: parse_limit(header, 'h')?,
            message: parse_limit(message, 'm')?,
        }),
        None if inner.starts_with('h') => Ok(Limits {
            header: parse_limit(inner, 'h')?,
            message: 0,
        }),
        None => Ok(Limits {
            header: 0,
            message: parse_limit(inner, 'm')?,
        }),
    }
}

/// Parses `<letter>` or `<letter>:<digits>`: `u64::MAX` (no limit) for the first.
fn parse_limit(part: &str, letter: char) -> Result<u64, FilterErrorKind> {
    let rest = part.strip_prefix(letter).ok_or(FilterErrorKind::Limits)?;
    if rest.is_empty() {
        return Ok(u64::MAX);
    }
    let digits = rest.strip_prefix(':').ok_or(FilterErrorKind::Limits)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FilterErrorKind::Limits);
    }
    digits.parse().map_err(|_| FilterErrorKind::LimitTooLarge)
}

/// A binary log filter that is not valid: which entry, and why.
///
/// # Examples
///
/// ```
/// use grpc_runtime::binarylog::{Config, FilterErrorKind};
///
/// let error = Config::parse("*,-pkg.S/*").unwrap_err();
/// assert_eq!(error.entry(), "-pkg.S/*");
/// assert_eq!(error.kind(), FilterErrorKind::ExcludedWildcard);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    entry: String,
    kind: FilterErrorKind,
}

impl FilterError {
    fn new(entry: &str, kind: FilterErrorKind) -> FilterError {
        FilterError {
            entry: entry.to_owned(),
            kind,
        }
    }

    /// The entry that is not valid, as written (for [`FilterErrorKind::NotUnicode`], the
    /// whole filter, lossily converted).
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// Why it is not valid.
    pub fn kind(&self) -> FilterErrorKind {
        self.kind
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "binary log filter entry {:?}: {}",
            self.entry,
            self.kind.describe()
        )
    }
}

impl std::error::Error for FilterError {}

/// Why a binary log filter entry is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FilterErrorKind {
    /// An empty entry (`""` between commas, or a trailing comma).
    Empty,
    /// Not `*`, `service/*`, `service/method` or `-service/method` (services and methods
    /// are word characters, dots and slashes).
    Syntax,
    /// Limits other than `{h}`, `{h:N}`, `{m}`, `{m:N}` or `{h:N;m:M}`.
    Limits,
    /// A limit that does not fit in 64 bits.
    LimitTooLarge,
    /// An exception for a whole service (`-service/*`).
    ExcludedWildcard,
    /// An exception with limits (`-service/method{h}`).
    ExcludedWithLimits,
    /// A second `*`, or a second entry for one service or one method.
    Duplicate,
    /// A method both logged and excepted.
    Conflict,
    /// `GRPC_BINARY_LOG_FILTER` is not Unicode.
    NotUnicode,
}

impl FilterErrorKind {
    fn describe(self) -> &'static str {
        match self {
            FilterErrorKind::Empty => "empty entry",
            FilterErrorKind::Syntax => {
                "expected `*`, `service/*`, `service/method` or `-service/method`"
            }
            FilterErrorKind::Limits => {
                "limits must be `{h}`, `{h:N}`, `{m}`, `{m:N}` or `{h:N;m:M}`"
            }
            FilterErrorKind::LimitTooLarge => "limit does not fit in 64 bits",
            FilterErrorKind::ExcludedWildcard => {
                "`*` is not allowed in an exception; exclude methods one by one"
            }
            FilterErrorKind::ExcludedWithLimits => "an exception takes no limits",
            FilterErrorKind::Duplicate => "repeats an earlier entry for the same methods",
            FilterErrorKind::Conflict => "the method is both logged and excepted",
            FilterErrorKind::NotUnicode => "the filter is not Unicode",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Option<Limits> = Some(Limits::ALL);

    fn limits(header: Option<u64>, message: Option<u64>) -> Option<Limits> {
        Some(Limits::new(header, message))
    }

    fn kind(filter: &str) -> (String, FilterErrorKind) {
        let error = Config::parse(filter).expect_err(filter);
        (error.entry().to_owned(), error.kind())
    }

    #[test]
    fn empty_filter_logs_nothing() {
        let config = Config::parse("").unwrap();
        assert!(config.is_empty());
        assert_eq!(config.lookup("/a.S/M"), None);
    }

    #[test]
    fn global_entry_and_its_limits() {
        let cases = [
            ("*", ALL),
            ("*{h}", limits(None, Some(0))),
            ("*{h:10}", limits(Some(10), Some(0))),
            ("*{m}", limits(Some(0), None)),
            ("*{m:20}", limits(Some(0), Some(20))),
            ("*{h;m}", ALL),
            ("*{h:10;m}", limits(Some(10), None)),
            ("*{h;m:20}", limits(None, Some(20))),
            ("*{h:10;m:20}", limits(Some(10), Some(20))),
            ("*{h:0;m:0}", limits(Some(0), Some(0))),
            ("*{h:007}", limits(Some(7), Some(0))),
            (
                "*{h:18446744073709551614}",
                limits(Some(u64::MAX - 1), Some(0)),
            ),
        ];
        for (filter, expected) in cases {
            let config = Config::parse(filter).expect(filter);
            assert_eq!(config.lookup("/pkg.Service/Method"), expected, "{filter}");
            assert_eq!(config.lookup("/other/X"), expected, "{filter}");
        }
    }

    #[test]
    fn service_entry_covers_its_methods_only() {
        let config = Config::parse("pkg.Service/*{h:5;m:6}").unwrap();
        assert_eq!(config.lookup("/pkg.Service/A"), limits(Some(5), Some(6)));
        assert_eq!(config.lookup("/pkg.Service/B"), limits(Some(5), Some(6)));
        assert_eq!(config.lookup("/pkg.Other/A"), None);
        assert_eq!(config.lookup("/pkg.ServiceX/A"), None);
        assert!(!config.is_empty());
    }

    #[test]
    fn method_entry_covers_that_method_only() {
        let config = Config::parse("pkg.Service/Method{m:1}").unwrap();
        assert_eq!(
            config.lookup("/pkg.Service/Method"),
            limits(Some(0), Some(1))
        );
        assert_eq!(config.lookup("/pkg.Service/Method2"), None);
        assert_eq!(config.lookup("/pkg.Service/Other"), None);
    }

    #[test]
    fn method_wins_over_service_wins_over_global() {
        let config = Config::parse("*{h},pkg.S/*{m},pkg.S/M{h:1;m:2}").unwrap();
        assert_eq!(config.lookup("/pkg.S/M"), limits(Some(1), Some(2)));
        assert_eq!(config.lookup("/pkg.S/N"), limits(Some(0), None));
        assert_eq!(config.lookup("/pkg.T/M"), limits(None, Some(0)));
        // Order in the filter does not matter.
        let reversed = Config::parse("pkg.S/M{h:1;m:2},pkg.S/*{m},*{h}").unwrap();
        assert_eq!(reversed, config);
    }

    #[test]
    fn exception_wins_over_service_and_global() {
        let config = Config::parse("*,-pkg.S/M,pkg.T/*,-pkg.T/N").unwrap();
        assert_eq!(config.lookup("/pkg.S/M"), None);
        assert_eq!(config.lookup("/pkg.S/Other"), ALL);
        assert_eq!(config.lookup("/pkg.T/N"), None);
        assert_eq!(config.lookup("/pkg.T/O"), ALL);
        // An exception alone logs nothing.
        let only = Config::parse("-pkg.S/M").unwrap();
        assert!(only.is_empty());
        assert_eq!(only.lookup("/pkg.S/M"), None);
        assert_eq!(only.lookup("/pkg.S/N"), None);
    }

    #[test]
    fn services_may_hold_dots_and_slashes() {
        let config = Config::parse("a.b/c.D/E,x_1.y/*").unwrap();
        assert_eq!(config.lookup("/a.b/c.D/E"), ALL);
        assert_eq!(config.lookup("/a.b/c.D/F"), None);
        assert_eq!(config.lookup("/x_1.y/Z"), ALL);
    }

    #[test]
    fn lookup_needs_a_method_path() {
        let config = Config::parse("*").unwrap();
        assert_eq!(config.lookup("pkg.S/M"), None);
        assert_eq!(config.lookup("/pkgSM"), None);
        assert_eq!(config.lookup(""), None);
        assert_eq!(config.lookup("/pkg.S/"), ALL);
    }

    #[test]
    fn split_method_follows_the_pattern() {
        assert_eq!(split_method("p.s/m"), Some(("p.s", "m", "")));
        assert_eq!(split_method("p.s/m{h:1}"), Some(("p.s", "m", "{h:1}")));
        assert_eq!(split_method("p.s/*"), Some(("p.s", "*", "")));
        assert_eq!(split_method("p.s/*{m}"), Some(("p.s", "*", "{m}")));
        assert_eq!(split_method("a/b/c"), Some(("a/b", "c", "")));
        // The rightmost slash followed by a method.
        assert_eq!(split_method("a/b/{h}"), Some(("a", "b", "/{h}")));
        assert_eq!(split_method("p.s/m.x"), Some(("p.s", "m", ".x")));
        assert_eq!(split_method("p.s/mm*"), Some(("p.s", "mm", "*")));
        assert_eq!(split_method("p.s/"), None);
        assert_eq!(split_method("/m"), None);
        assert_eq!(split_method("p.s"), None);
        assert_eq!(split_method("p s/m"), None);
        assert_eq!(split_method("p.s/m\n"), None);
        assert_eq!(split_method("é/m"), None);
    }

    #[test]
    fn invalid_entries_are_named() {
        let cases = [
            (",", "", FilterErrorKind::Empty),
            ("*,", "", FilterErrorKind::Empty),
            (",*", "", FilterErrorKind::Empty),
            ("*,,a/b", "", FilterErrorKind::Empty),
            ("a", "a", FilterErrorKind::Syntax),
            ("a/", "a/", FilterErrorKind::Syntax),
            ("/b", "/b", FilterErrorKind::Syntax),
            ("/*", "/*", FilterErrorKind::Syntax),
            ("*, a/b", " a/b", FilterErrorKind::Syntax),
            ("a b/c", "a b/c", FilterErrorKind::Syntax),
            ("a/b{", "a/b{", FilterErrorKind::Limits),
            ("a/b{}", "a/b{}", FilterErrorKind::Limits),
            ("a/b{x}", "a/b{x}", FilterErrorKind::Limits),
            ("a/b{h:}", "a/b{h:}", FilterErrorKind::Limits),
            ("a/b{h:x}", "a/b{h:x}", FilterErrorKind::Limits),
            ("a/b{h:-1}", "a/b{h:-1}", FilterErrorKind::Limits),
            ("a/b{h:+1}", "a/b{h:+1}", FilterErrorKind::Limits),
            ("a/b{h:1 }", "a/b{h:1 }", FilterErrorKind::Limits),
            ("a/b{m;h}", "a/b{m;h}", FilterErrorKind::Limits),
            ("a/b{h;m;m}", "a/b{h;m;m}", FilterErrorKind::Limits),
            ("a/b{h,m}", "a/b{h", FilterErrorKind::Limits),
            ("a/b{h}x", "a/b{h}x", FilterErrorKind::Limits),
            ("a/b{h}{m}", "a/b{h}{m}", FilterErrorKind::Limits),
            ("a/b.c", "a/b.c", FilterErrorKind::Limits),
            ("a/b*", "a/b*", FilterErrorKind::Limits),
            ("a/*x", "a/*x", FilterErrorKind::Limits),
            ("**", "**", FilterErrorKind::Limits),
            ("*x", "*x", FilterErrorKind::Limits),
            ("*{h:1;m:2", "*{h:1;m:2", FilterErrorKind::Limits),
            (
                "*{h:18446744073709551616}",
                "*{h:18446744073709551616}",
                FilterErrorKind::LimitTooLarge,
            ),
            ("-a/*", "-a/*", FilterErrorKind::ExcludedWildcard),
            ("-a/*{h}", "-a/*{h}", FilterErrorKind::ExcludedWildcard),
            ("-a/b{h}", "-a/b{h}", FilterErrorKind::ExcludedWithLimits),
            ("-a/b{x}", "-a/b{x}", FilterErrorKind::ExcludedWithLimits),
            ("-*", "-*", FilterErrorKind::Syntax),
            ("-", "-", FilterErrorKind::Syntax),
            ("--a/b", "--a/b", FilterErrorKind::Syntax),
            ("*,*{h}", "*{h}", FilterErrorKind::Duplicate),
            ("a/*,a/*{m}", "a/*{m}", FilterErrorKind::Duplicate),
            ("a/b,a/b", "a/b", FilterErrorKind::Duplicate),
            ("-a/b,-a/b", "-a/b", FilterErrorKind::Duplicate),
            ("a/b,-a/b", "-a/b", FilterErrorKind::Conflict),
            ("-a/b,a/b{h}", "a/b{h}", FilterErrorKind::Conflict),
        ];
        for (filter, entry, expected) in cases {
            assert_eq!(kind(filter), (entry.to_owned(), expected), "{filter:?}");
        }
    }

    #[test]
    fn error_message_names_the_entry_and_reason() {
        let error = Config::parse("*,pkg.S/M{h:x}").unwrap_err();
        assert_eq!(
            error.to_string(),
            "binary log filter entry \"pkg.S/M{h:x}\": limits must be `{h}`, `{h:N}`, `{m}`, `{m:N}` or `{h:N;m:M}`"
        );
    }

    #[test]
    fn from_str_is_parse() {
        let config: Config = "a/*{h:3}".parse().unwrap();
        assert_eq!(config.lookup("/a/x"), limits(Some(3), Some(0)));
        assert!("a".parse::<Config>().is_err());
    }

    #[test]
    fn environment_value() {
        use std::env::VarError;
        assert_eq!(Config::from_var(Err(VarError::NotPresent)), Ok(None));
        assert_eq!(Config::from_var(Ok(String::new())), Ok(None));
        let config = Config::from_var(Ok("a/b{h}".into())).unwrap().unwrap();
        assert_eq!(config.lookup("/a/b"), limits(None, Some(0)));
        let error = Config::from_var(Ok("a/b,x".into())).unwrap_err();
        assert_eq!(
            (error.entry(), error.kind()),
            ("x", FilterErrorKind::Syntax)
        );
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            let value = std::ffi::OsString::from_vec(vec![b'*', 0xff]);
            let error = Config::from_var(Err(VarError::NotUnicode(value))).unwrap_err();
            assert_eq!(error.kind(), FilterErrorKind::NotUnicode);
            assert_eq!(error.entry(), "*\u{fffd}");
        }
    }

    #[test]
    fn limits_accessors_say_none_for_unlimited() {
        assert_eq!(Limits::ALL.header(), None);
        assert_eq!(Limits::ALL.message(), None);
        let l = Limits::new(Some(0), Some(9));
        assert_eq!((l.header(), l.message()), (Some(0), Some(9)));
    }
}
