//! A Lua script's contract with Rust, written once. A struct declared with [`script_parts!`]
//! lists a script's keys (or arguments) in their order; the same list gives the script a
//! prelude of named locals (`key_task`, `arg_ttl`), so no position is written twice and the two
//! sides cannot drift apart. [`reads_only`] checks, in a unit test, that a script reads no name
//! the list lacks.

use std::fmt::Write as _;

/// What every script starts with: the key guard (`lua/key_guard.lua`) when
/// `TUTORQ_SCRIPT_KEY_GUARD=1` (the tests set it), else just `derived`, which marks a key a
/// script builds itself from its record (it must share the slot of its first key).
pub fn header() -> &'static str {
    static HEADER: std::sync::LazyLock<&'static str> = std::sync::LazyLock::new(|| {
        if std::env::var("TUTORQ_SCRIPT_KEY_GUARD").is_ok_and(|v| v == "1") {
            GUARD
        } else {
            "local function derived(key) return key end\n"
        }
    });
    &HEADER
}

/// The key guard itself.
pub const GUARD: &str = include_str!("lua/key_guard.lua");

/// A script with [`header`] in front: every Lua script of the service is made here.
pub fn lua(source: &str) -> redis::Script {
    redis::Script::new(&format!("{}{source}", header()))
}

/// A struct whose fields are passed to a script in their order (`key` for `KEYS`, `arg` for
/// `ARGV`), with their names for the script's prelude ([`locals`]).
macro_rules! script_parts {
    ($(#[$doc:meta])* $vis:vis struct $name:ident $(<$lt:lifetime>)? as $push:ident {
        $($(#[$fdoc:meta])* $field:ident: $ty:ty),* $(,)?
    }) => {
        $(#[$doc])*
        $vis struct $name $(<$lt>)? {
            $($(#[$fdoc])* pub $field: $ty),*
        }

        impl $(<$lt>)? $name $(<$lt>)? {
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            #[allow(dead_code, reason = "not every script is invoked one at a time")]
            pub fn push(&self, invocation: &mut redis::ScriptInvocation<'_>) {
                $(invocation.$push(&self.$field);)*
            }

            /// The same values, in order, onto a command (an `EVALSHA` in a pipeline).
            #[allow(dead_code, reason = "not every script is pipelined")]
            pub fn push_cmd(&self, cmd: &mut redis::Cmd) {
                $(cmd.arg(&self.$field);)*
            }
        }
    };
}
pub(crate) use script_parts;

/// Appends `local <prefix><name> = <table>[<position>]` for each name, positions counted from
/// `offset + 1` (`table` is `KEYS` or `ARGV`).
pub fn locals(lua: &mut String, prefix: &str, table: &str, names: &[&str], offset: usize) {
    for (i, name) in names.iter().enumerate() {
        let _ = writeln!(lua, "local {prefix}{name} = {table}[{}]", offset + i + 1);
    }
}

/// The locals of one item of a script that takes items of `names.len()` values each after
/// `head` fixed ones: `local <prefix><name> = <table>[head + size * (<index> - 1) + n]`, for a
/// loop whose 1-based item number is `index`.
pub fn item_locals(
    lua: &mut String,
    prefix: &str,
    table: &str,
    names: &[&str],
    head: usize,
    index: &str,
) {
    let size = names.len();
    for (n, name) in names.iter().enumerate() {
        let _ = writeln!(
            lua,
            "  local {prefix}{name} = {table}[{head} + {size} * ({index} - 1) + {}]",
            n + 1
        );
    }
}

/// The line where a script's loop over its items wants each item's names.
pub const ITEM_MARKER: &str = "--@item";

/// `script` with its [`ITEM_MARKER`] line replaced by `inserted` (the per-item locals inside its
/// loop). Panics when the marker is missing: scripts are built once, at start-up, and tested.
pub fn splice(script: &str, inserted: &str) -> String {
    let mut out = String::with_capacity(script.len() + inserted.len());
    let mut found = false;
    for line in script.split_inclusive('\n') {
        if !found && line.trim() == ITEM_MARKER {
            out.push_str(inserted);
            found = true;
        } else {
            out.push_str(line);
        }
    }
    assert!(found, "the script has no `{ITEM_MARKER}` line");
    out
}

/// A script's names in their order: fixed keys and arguments, then, for a script that takes a
/// batch of items (jobs), each item's keys and arguments.
pub struct Contract {
    pub keys: &'static [&'static str],
    pub args: &'static [&'static str],
    pub item_keys: &'static [&'static str],
    pub item_args: &'static [&'static str],
}

impl Contract {
    /// `prelude`, the fixed names as locals, and `source`. With items, also `items` (how many
    /// were given, counted in `KEYS` when items have keys, else in `ARGV`) and each item's
    /// locals at the script's [`ITEM_MARKER`] line, inside its loop over `i`.
    pub fn build(&self, prelude: &str, source: &str) -> String {
        let mut lua = String::from(prelude);
        lua.push_str("-- Names built by src/storage/script.rs.\n");
        locals(&mut lua, "key_", "KEYS", self.keys, 0);
        locals(&mut lua, "arg_", "ARGV", self.args, 0);
        if self.item_keys.is_empty() && self.item_args.is_empty() {
            lua.push_str(source);
            return lua;
        }
        let (table, head, size) = if self.item_keys.is_empty() {
            ("ARGV", self.args.len(), self.item_args.len())
        } else {
            ("KEYS", self.keys.len(), self.item_keys.len())
        };
        let _ = writeln!(lua, "local items = (#{table} - {head}) / {size}");
        let mut item = String::new();
        item_locals(
            &mut item,
            "key_",
            "KEYS",
            self.item_keys,
            self.keys.len(),
            "i",
        );
        item_locals(
            &mut item,
            "arg_",
            "ARGV",
            self.item_args,
            self.args.len(),
            "i",
        );
        lua.push_str(&splice(source, &item));
        lua
    }

    /// The names `source` reads that the contract lacks, and any position (`KEYS[`, `ARGV[`)
    /// it reads instead of a name.
    pub fn misread(&self, source: &str) -> Vec<String> {
        let keys = [self.keys, self.item_keys].concat();
        let args = [self.args, self.item_args].concat();
        let mut wrong = reads_only(source, "key_", &keys);
        wrong.extend(reads_only(source, "arg_", &args));
        for position in ["KEYS[", "ARGV["] {
            if source.contains(position) {
                wrong.push(position.to_owned());
            }
        }
        wrong
    }
}

/// The `<prefix><name>` words `script` reads whose name is not in `names` (a word inside a
/// longer identifier, or the bare prefix, does not count).
pub fn reads_only(script: &str, prefix: &str, names: &[&str]) -> Vec<String> {
    let mut unknown = Vec::new();
    for (at, _) in script.match_indices(prefix) {
        let before = script[..at].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let name: String = script[at + prefix.len()..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() && !names.contains(&name.as_str()) {
            unknown.push(format!("{prefix}{name}"));
        }
    }
    unknown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locals_are_numbered_from_the_offset() {
        let mut lua = String::new();
        locals(&mut lua, "arg_", "ARGV", &["id", "ttl"], 2);
        assert_eq!(lua, "local arg_id = ARGV[3]\nlocal arg_ttl = ARGV[4]\n");
    }

    #[test]
    fn item_locals_go_where_the_marker_is() {
        let mut inserted = String::new();
        item_locals(&mut inserted, "key_", "KEYS", &["task", "events"], 3, "i");
        let script = splice(
            "for i = 1, n do\n  --@item\n  use(key_task)\nend\n",
            &inserted,
        );
        assert_eq!(
            script,
            "for i = 1, n do\n  local key_task = KEYS[3 + 2 * (i - 1) + 1]\n  \
             local key_events = KEYS[3 + 2 * (i - 1) + 2]\n  use(key_task)\nend\n"
        );
    }

    #[test]
    fn only_whole_undeclared_names_are_reported() {
        let script = "local a = key_task .. my_key_x\nredis.call('GET', key_other)\n-- key_";
        assert_eq!(reads_only(script, "key_", &["task"]), ["key_other"]);
    }
}
