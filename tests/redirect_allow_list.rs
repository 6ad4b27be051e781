//! Properties of the logout redirect allow-list (`LogoutRedirects`): only
//! the listed targets are allowed, matched exactly, and the `Location` is
//! always a listed target or the default, never the caller's string.

use proptest::prelude::*;
use tower_session_lifetime::logout_redirect::LogoutRedirects;

/// The relative entries of [`list`].
const RELATIVE: [&str; 3] = ["/goodbye", "/signed-out/thanks", "/"];
/// The absolute entries of [`list`], already canonical.
const ABSOLUTE: [&str; 3] = [
    "https://app.example/signed-out",
    "http://127.0.0.1:3000/",
    "https://app.example:8443/bye",
];
const DEFAULT: &str = "/login";

fn list() -> LogoutRedirects {
    RELATIVE
        .iter()
        .chain(&ABSOLUTE)
        .try_fold(LogoutRedirects::new(DEFAULT).unwrap(), |list, entry| {
            list.allow(entry)
        })
        .unwrap()
}

fn relative_only() -> LogoutRedirects {
    RELATIVE
        .iter()
        .try_fold(LogoutRedirects::new(DEFAULT).unwrap(), |list, entry| {
            list.allow(entry)
        })
        .unwrap()
}

/// Strings made of the pieces redirect tricks are made of, so that near
/// misses (`/goodbye/`, `//app.example`, `https://app.example@…`) come up
/// far more often than in uniformly random strings.
fn tricky() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("/"),
        Just("//"),
        Just("\\"),
        Just("."),
        Just(".."),
        Just("%2f"),
        Just("%2E"),
        Just("%5C"),
        Just("%"),
        Just("@"),
        Just("?"),
        Just("#"),
        Just(":"),
        Just(":443"),
        Just(":3000"),
        Just("https"),
        Just("HTTP"),
        Just("javascript"),
        Just("://"),
        Just("app.example"),
        Just("App.Example"),
        Just("evil.example"),
        Just("127.0.0.1"),
        Just("goodbye"),
        Just("signed-out"),
        Just("thanks"),
        Just("bye"),
        Just(" "),
        Just("\t"),
        Just("\n"),
        Just("\u{0}"),
        Just("é"),
        Just("ａ"),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

/// A listed entry as written in a link (perhaps in other case, with its
/// default port), with tricky pieces before, after or inside it (often
/// none, so that allowed strings come up too).
fn near_miss() -> impl Strategy<Value = String> {
    let spelled = prop_oneof![
        proptest::sample::select(RELATIVE.to_vec()).prop_map(str::to_owned),
        proptest::sample::select(ABSOLUTE.to_vec()).prop_map(str::to_owned),
        Just("HTTPS://App.Example:443/signed-out".to_owned()),
        Just("http://127.0.0.1:3000".to_owned()),
        Just("HTTP://127.0.0.1:03000/".to_owned()),
    ];
    let pieces = || {
        prop_oneof![
            2 => Just(String::new()),
            1 => tricky().prop_map(|s| s.chars().take(6).collect::<String>()),
        ]
    };
    (
        spelled,
        pieces(),
        pieces(),
        pieces(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(entry, before, inside, after, at)| {
            let mut at = at.index(entry.len() + 1);
            while !entry.is_char_boundary(at) {
                at -= 1;
            }
            format!("{before}{}{inside}{}{after}", &entry[..at], &entry[at..])
        })
}

/// Any string at all, a tricky one, or a near miss.
fn any_return_to() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), ".{0,40}", tricky(), near_miss()]
}

/// A valid relative entry: `/` and segments of plain characters.
fn relative_entry() -> impl Strategy<Value = String> {
    proptest::collection::vec("[A-Za-z0-9_~-][A-Za-z0-9._~-]{0,8}", 0..4)
        .prop_filter("no dot segments", |segments| {
            segments.iter().all(|s| s != "." && s != "..")
        })
        .prop_map(|segments| format!("/{}", segments.join("/")))
}

/// A valid absolute entry, as written (any case, perhaps the default port,
/// perhaps no path), and its canonical form.
fn absolute_entry() -> impl Strategy<Value = (String, String)> {
    (
        any::<bool>(),
        proptest::collection::vec("[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", 1..4),
        prop_oneof![Just(None), (1u16..).prop_map(Some)],
        prop_oneof![Just(String::new()), relative_entry()],
        any::<u64>(),
    )
        .prop_map(|(https, labels, port, path, case_bits)| {
            let scheme = if https { "https" } else { "http" };
            let host = labels.join(".");
            let default = if https { 443 } else { 80 };
            let written_port = port.map(|port| format!(":{port}")).unwrap_or_default();
            let canonical_port = match port {
                Some(port) if port != default => format!(":{port}"),
                _ => String::new(),
            };
            let canonical_path = if path.is_empty() { "/" } else { path.as_str() };
            let canonical = format!("{scheme}://{host}{canonical_port}{canonical_path}");
            // Upper-case some letters of the scheme and host.
            let origin: String = format!("{scheme}://{host}")
                .chars()
                .enumerate()
                .map(|(i, c)| {
                    if case_bits >> (i % 64) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            (format!("{origin}{written_port}{path}"), canonical)
        })
}

/// A plain reference normalization, for targets known to be valid: lower
/// case scheme and host, no default port, `/` for an empty path.
fn normalized(target: &str) -> String {
    let Some((scheme, rest)) = target.split_once("://") else {
        return target.to_owned();
    };
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, port.parse().unwrap()),
        None => (authority, 0),
    };
    let host = host.to_ascii_lowercase();
    let default_port = if scheme == "https" { 443 } else { 80 };
    let port = match port {
        0 => String::new(),
        port if port == default_port => String::new(),
        port => format!(":{port}"),
    };
    let path = if path.is_empty() { "/" } else { path };
    format!("{scheme}://{host}{port}{path}")
}

fn location<'a>(list: &'a LogoutRedirects, return_to: &str) -> &'a str {
    list.target(Some(return_to)).to_str().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any string: no panic, and the Location is the default or a listed
    /// target, which is itself allowed.
    #[test]
    fn the_target_is_always_listed_or_the_default(return_to in any_return_to()) {
        let list = list();
        let allowed = list.is_allowed(&return_to);
        let location = location(&list, &return_to);
        if allowed {
            prop_assert!(RELATIVE.contains(&location) || ABSOLUTE.contains(&location), "{}", location);
            prop_assert!(list.is_allowed(location));
            prop_assert_eq!(list.target(Some(location)).to_str().unwrap(), location);
        } else {
            prop_assert_eq!(location, DEFAULT);
        }
        // Entries are checked by the same rules: a string that is allowed
        // is a valid entry, and one that is not a valid entry is never allowed.
        let as_entry = LogoutRedirects::new("/").unwrap().allow(&return_to);
        prop_assert!(!allowed || as_entry.is_ok());
    }

    /// With relative entries only, nothing but those exact bytes is allowed.
    #[test]
    fn a_relative_entry_matches_only_itself(return_to in any_return_to()) {
        let list = relative_only();
        prop_assert_eq!(list.is_allowed(&return_to), RELATIVE.contains(&return_to.as_str()));
    }

    /// An allowed return_to whose target is relative is byte for byte that
    /// entry; one whose target is absolute differs from it at most in the
    /// case of its scheme and host, an explicit default port and `/` for an
    /// empty path.
    #[test]
    fn an_allowed_return_to_is_its_target_up_to_normalization(return_to in near_miss()) {
        let list = list();
        if list.is_allowed(&return_to) {
            let location = location(&list, &return_to);
            prop_assert_eq!(normalized(&return_to), location);
        }
    }

    /// Any valid relative entry is allowed as itself, with itself as target;
    /// the same path with anything appended is not.
    #[test]
    fn relative_entries_allow_exactly_themselves(
        entry in relative_entry(),
        suffix in prop_oneof![".{1,10}", tricky().prop_filter("non-empty", |s| !s.is_empty())],
    ) {
        let list = LogoutRedirects::new(DEFAULT).unwrap().allow(&entry).unwrap();
        prop_assert!(list.is_allowed(&entry));
        prop_assert_eq!(location(&list, &entry), entry.as_str());
        let longer = format!("{entry}{suffix}");
        prop_assert!(!list.is_allowed(&longer), "{:?} allowed", longer);
        prop_assert_eq!(location(&list, &longer), DEFAULT);
    }

    /// Any valid absolute entry, written in any case and with or without
    /// its default port, is allowed and sent in canonical form; so is the
    /// canonical form; the entry with anything appended to its path is not,
    /// nor is any other host below or above it.
    #[test]
    fn absolute_entries_allow_exactly_themselves(
        (written, canonical) in absolute_entry(),
        suffix in prop_oneof![".{1,10}", tricky().prop_filter("non-empty", |s| !s.is_empty())],
    ) {
        let list = LogoutRedirects::new(DEFAULT).unwrap().allow(&written).unwrap();
        prop_assert!(list.is_allowed(&written));
        prop_assert_eq!(location(&list, &written), canonical.as_str());
        prop_assert!(list.is_allowed(&canonical));
        prop_assert_eq!(location(&list, &canonical), canonical.as_str());

        let longer = format!("{canonical}{suffix}");
        prop_assert!(!list.is_allowed(&longer), "{:?} allowed", longer);
        let (scheme, rest) = canonical.split_once("://").unwrap();
        let (authority, path) = rest.split_at(rest.find('/').unwrap());
        let (host, port) = authority.split_at(authority.find(':').unwrap_or(authority.len()));
        for other in [
            format!("{scheme}://evil.{rest}"),
            format!("{scheme}://{host}.evil.example{port}{path}"),
            format!("{scheme}://{host}{port}.evil.example{path}"),
            format!("{scheme}://user@{rest}"),
            format!("{scheme}://{host}:1{port}{path}"),
            format!("//{rest}"),
            format!("/{rest}"),
            rest.to_owned(),
        ] {
            prop_assert!(!list.is_allowed(&other), "{:?} allowed", other);
        }
    }

    /// A string with a backslash, a control character, whitespace, a
    /// query, a fragment or user info anywhere, a leading `//`, or a scheme
    /// other than http(s) is never allowed, and never a valid entry.
    #[test]
    fn dangerous_strings_are_always_refused(
        before in any_return_to(),
        after in any_return_to(),
        bad in prop_oneof![
            Just("\\"),
            Just(" "),
            Just("\t"),
            Just("\n"),
            Just("\r"),
            Just("\u{0}"),
            Just("\u{1b}"),
            Just("\u{7f}"),
            Just("\u{a0}"),
            Just("é"),
            Just("?"),
            Just("#"),
            Just("@"),
            Just("%2f"),
            Just("%5C"),
        ],
        scheme in "[a-zA-Z][a-zA-Z0-9+.-]{0,10}",
        rest in any_return_to(),
    ) {
        let list = list();
        let tainted = format!("{before}{bad}{after}");
        prop_assert!(!list.is_allowed(&tainted), "{:?} allowed", tainted);
        prop_assert!(LogoutRedirects::new("/").unwrap().allow(&tainted).is_err());

        let scheme_relative = format!("//{rest}");
        prop_assert!(!list.is_allowed(&scheme_relative), "{:?} allowed", scheme_relative);
        prop_assert!(LogoutRedirects::new(&scheme_relative).is_err());

        if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
            let other_scheme = format!("{scheme}:{rest}");
            prop_assert!(!list.is_allowed(&other_scheme), "{:?} allowed", other_scheme);
            prop_assert!(LogoutRedirects::new(&other_scheme).is_err());
        }
    }
}

/// The near misses are near: enough of them are allowed, and enough are
/// not, for the properties above to test both sides.
#[test]
fn near_misses_land_on_both_sides() {
    use proptest::strategy::ValueTree;
    let list = list();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = near_miss();
    let allowed = (0..1000)
        .filter(|_| {
            let value = strategy.new_tree(&mut runner).unwrap().current();
            list.is_allowed(&value)
        })
        .count();
    assert!((200..=800).contains(&allowed), "{allowed} of 1000 allowed");
}
