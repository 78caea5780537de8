//! The house's floors, checked from the source: every `use` and every
//! `crate::`/`super::`/`self::` path in `src/` is an arrow from one file's
//! module to another's, and
//!
//! - no arrow points up a floor (see [`FLOORS`]);
//! - no arrows form a circle between files (a module and its own submodules
//!   are one room: a child reaching its parent is not counted);
//! - `auth/` is mechanism only: no SQL, no entities, no async-graphql;
//! - `error.rs` knows nothing of async-graphql (`graphql/` converts it).
//!
//! The reading is deliberately simple (comments and string literals are
//! skipped, `use` trees are expanded, paths resolve to the longest module
//! that exists as a file), so the test has no dependencies and runs in a
//! second. It only adds arrows, never hides one: when it is wrong, it is
//! wrong by refusing.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// Floors from the bottom up. A file may use its own floor and the ones
/// below. `main.rs` is a separate crate and `lib.rs` only declares modules.
const FLOORS: &[&[&str]] = &[
    &[
        "clock",
        "config",
        "db",
        "domain",
        "error",
        "meta",
        "metrics",
        "telemetry",
    ],
    &["auth"],
    &["state"],
    &["services", "cleanup"],
    &["graphql"],
    &["http"],
    &["startup", "commands"],
];

/// Crates `auth/` must not use: it is mechanism, not storage or transport.
const NOT_IN_AUTH: &[&str] = &["sea_orm", "sea_query", "entity", "async_graphql", "poem"];

type Module = String;

fn main_sources() -> BTreeMap<Module, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    collect(&root, &root, &mut files);
    files
}

fn collect(root: &Path, dir: &Path, out: &mut BTreeMap<Module, String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            if parts == ["main"] || parts == ["lib"] {
                continue;
            }
            out.insert(parts.join("::"), strip(&fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The text with comments, string and char literals blanked out.
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push(' ');
        } else if c == 'r' && matches!(next, Some('"') | Some('#')) && !ident_before(&chars, i) {
            // Raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= chars.len() {
                    break;
                }
                if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let close = if next == Some('\\') {
                (i + 2..chars.len().min(i + 12)).find(|&k| chars[k] == '\'')
            } else if chars.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match close {
                Some(end) => {
                    out.push_str("' '");
                    i = end + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_before(chars: &[char], i: usize) -> bool {
    i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_')
}

/// Expands a `use` tree (`a::{b, c::{d as e}}`) into paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = Vec::new();
    expand_into("", &tree, &mut out);
    out
}

fn expand_into(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let join = |p: &str, s: &str| {
        if p.is_empty() {
            s.to_owned()
        } else if s.is_empty() {
            p.to_owned()
        } else {
            format!("{p}::{s}")
        }
    };
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let mut depth = 0;
        let mut start = 0;
        let inner_chars: Vec<(usize, char)> = inner.char_indices().collect();
        for (k, c) in inner_chars {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand_into(&join(prefix, head), &inner[start..k], out);
                    start = k + 1;
                }
                _ => {}
            }
        }
        expand_into(&join(prefix, head), &inner[start..], out);
    } else {
        // `path as alias`: the path is the first word.
        let item = tree.split_whitespace().next().unwrap_or("");
        if !item.is_empty() {
            out.push(join(prefix, item.trim_end_matches("::*")));
        }
    }
}

/// Every module path `module`'s text names, as absolute `a::b::c` paths.
fn named_paths(module: &str, text: &str, modules: &BTreeMap<Module, String>) -> Vec<String> {
    let here: Vec<&str> = module.split("::").collect();
    let absolute = |path: &str| -> Option<String> {
        let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        match segs.first().copied() {
            Some("crate") => {
                segs.remove(0);
                Some(segs.join("::"))
            }
            Some("super") | Some("self") => {
                // `self` is the module itself; each `super` goes one up. A
                // `foo.rs` file's `super` is its parent module, like `foo/mod.rs`'s.
                let mut base: Vec<&str> = here.clone();
                while let Some(first) = segs.first().copied() {
                    match first {
                        "self" => {
                            segs.remove(0);
                        }
                        "super" => {
                            segs.remove(0);
                            base.pop();
                        }
                        _ => break,
                    }
                }
                base.extend(segs);
                Some(base.join("::"))
            }
            // A relative path into a submodule (`use rules::Keys;`).
            Some(first) if modules.contains_key(&format!("{module}::{first}")) => {
                Some(format!("{module}::{}", segs.join("::")))
            }
            _ => None,
        }
    };
    let mut paths = Vec::new();
    // `use …;` statements.
    let mut rest = text;
    while let Some(pos) = find_keyword(rest, "use") {
        let after = &rest[pos + 3..];
        let end = after.find(';').unwrap_or(after.len());
        for path in expand(&after[..end]) {
            paths.extend(absolute(&path));
        }
        rest = &after[end..];
    }
    // Paths written inline: crate::a::b, super::x, self::y, child::z.
    let prefix = format!("{module}::");
    let children: Vec<String> = modules
        .keys()
        .filter_map(|m| m.strip_prefix(&prefix))
        .filter(|rest| !rest.contains("::"))
        .map(|child| format!("{child}::"))
        .collect();
    let starts = ["crate::", "super::", "self::"]
        .into_iter()
        .map(str::to_owned)
        .chain(children);
    for start in starts {
        let start = start.as_str();
        let mut from = 0;
        while let Some(found) = text[from..].find(start) {
            let at = from + found;
            from = at + start.len();
            if at > 0 {
                let prev = text[..at].chars().next_back().unwrap_or(' ');
                if prev.is_alphanumeric() || prev == '_' || prev == ':' {
                    continue;
                }
            }
            let path: String = text[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.extend(absolute(&path));
        }
    }
    paths
}

fn find_keyword(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(found) = text[from..].find(word) {
        let at = from + found;
        let before = text[..at].chars().next_back().unwrap_or(' ');
        let after = text[at + word.len()..].chars().next().unwrap_or(' ');
        if !(before.is_alphanumeric() || before == '_' || before == ':') && after.is_whitespace() {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// The longest module of `modules` that `path` lies in.
fn resolve<'a>(modules: &'a BTreeMap<Module, String>, path: &str) -> Option<&'a Module> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len())
        .rev()
        .find_map(|k| modules.get_key_value(&segs[..k].join("::")).map(|(m, _)| m))
}

fn arrows(modules: &BTreeMap<Module, String>) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, text) in modules {
        for path in named_paths(module, text, modules) {
            if let Some(target) = resolve(modules, &path) {
                let is_ancestor = module.starts_with(&format!("{target}::"));
                if target != module && !is_ancestor {
                    edges
                        .entry(module.clone())
                        .or_default()
                        .insert(target.clone());
                }
            }
        }
    }
    edges
}

fn floor(module: &str) -> usize {
    let top = module.split("::").next().unwrap_or(module);
    FLOORS
        .iter()
        .position(|floor| floor.contains(&top))
        .unwrap_or_else(|| panic!("src/{top} is on no floor: add it to FLOORS"))
}

/// Strongly connected groups of more than one file (Tarjan).
fn circles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        found: Vec<Vec<Module>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a str) {
            self.index.insert(v, self.next);
            self.low.insert(v, self.next);
            self.next += 1;
            self.stack.push(v);
            self.on_stack.insert(v);
            let targets: Vec<&'a str> = self
                .edges
                .get(v)
                .map(|s| s.iter().map(String::as_str).collect())
                .unwrap_or_default();
            for w in targets {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut group = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    group.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    self.found.push(group);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn no_arrow_points_up_a_floor() {
    let modules = main_sources();
    let mut upward = Vec::new();
    for (from, targets) in arrows(&modules) {
        for to in targets {
            if floor(&to) > floor(&from) {
                upward.push(format!("{from} -> {to}"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "arrows up a floor:\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_files_import_each_other_in_a_circle() {
    let modules = main_sources();
    let found = circles(&arrows(&modules));
    assert!(found.is_empty(), "import circles: {found:?}");
}

#[test]
fn auth_is_mechanism_only() {
    let modules = main_sources();
    let mut found = Vec::new();
    for (module, text) in &modules {
        let in_auth = module == "auth" || module.starts_with("auth::");
        let banned: &[&str] = if in_auth {
            NOT_IN_AUTH
        } else if module == "error" {
            &["async_graphql", "poem"]
        } else {
            continue;
        };
        for name in banned {
            let mut from = 0;
            while let Some(at) = text[from..].find(name).map(|i| i + from) {
                from = at + name.len();
                let before = text[..at].chars().next_back().unwrap_or(' ');
                let starts_path = !(before.is_alphanumeric() || before == '_' || before == ':');
                if starts_path && text[from..].starts_with("::") {
                    found.push(format!("{module} uses {name}"));
                    break;
                }
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The reader itself: a circle, an upward arrow and a banned crate are seen.
#[test]
fn the_reader_sees_what_it_must() {
    let mut modules = BTreeMap::new();
    modules.insert(
        "auth::a".to_owned(),
        strip("use crate::{auth::b, services::x::{Y as Z}};\n// use crate::http;\nlet s = \"crate::graphql\";"),
    );
    modules.insert("auth::b".to_owned(), strip("fn f() { super::a::g(); }"));
    modules.insert("auth".to_owned(), strip("pub use c::D;\nfn g() { e::f() }"));
    modules.insert("auth::c".to_owned(), String::new());
    modules.insert("auth::e".to_owned(), String::new());
    modules.insert("services::x".to_owned(), String::new());
    modules.insert("http".to_owned(), String::new());
    modules.insert("graphql".to_owned(), String::new());
    let edges = arrows(&modules);
    assert_eq!(
        edges["auth::a"].iter().collect::<Vec<_>>(),
        ["auth::b", "services::x"]
    );
    assert_eq!(edges["auth::b"].iter().collect::<Vec<_>>(), ["auth::a"]);
    assert_eq!(
        edges["auth"].iter().collect::<Vec<_>>(),
        ["auth::c", "auth::e"]
    );
    assert_eq!(circles(&edges), vec![vec!["auth::a", "auth::b"]]);
    assert!(floor("services::x") > floor("auth::a"));
    assert_eq!(
        expand("crate::{a::{b, c as d}, e}"),
        ["crate::a::b", "crate::a::c", "crate::e"]
    );
}
