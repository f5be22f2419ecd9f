//! The `bunker` binary describes its commands and configuration, and README's configuration table
//! says exactly what each command's `--help` lists. (Building this test also builds the binary,
//! which the integration suite in `tests/` drives.)

#![cfg(test)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// Every command that runs something, as typed after `bunker`.
const LEAVES: &[&str] = &[
    "init",
    "migrate",
    "serve",
    "demo",
    "keys status",
    "keys rotate-wrapping",
    "keys rotate-master",
    "keys reencrypt",
    "keys recover",
    "token list",
    "token revoke",
    "token rotate-admin",
    "token rotate-root",
    "audit verify",
    "serve-role create",
];

fn help(command: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_bunker"))
        .args(command.split_whitespace())
        .arg("--help")
        .env_clear()
        .output()
        .unwrap_or_else(|err| panic!("cannot run bunker {command} --help: {err}"));
    assert!(output.status.success(), "bunker {command} --help failed");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The variables a command's help lists, each with its default if it shows one.
fn listed(help: &str) -> BTreeMap<String, Option<String>> {
    let mut variables = BTreeMap::new();
    for (at, _) in help.match_indices("[env: ") {
        let rest = &help[at + "[env: ".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        let line_end = rest.find('\n').unwrap_or(rest.len());
        let default = rest[..line_end]
            .split("[default: ")
            .nth(1)
            .map(|d| d.split(']').next().unwrap_or_default().to_owned());
        variables.insert(name, default);
    }
    variables
}

/// README's configuration table: variable -> (the commands it names, its default cell).
fn readme_table() -> BTreeMap<String, (BTreeSet<String>, String)> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .unwrap_or_else(|err| panic!("cannot read README.md: {err}"));
    let mut table = BTreeMap::new();
    for line in readme.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let [_, variable, used_by, _, default, _] = cells.as_slice() else {
            continue;
        };
        let Some(variable) = variable
            .strip_prefix("`BUNKER_")
            .and_then(|v| v.strip_suffix('`'))
        else {
            continue;
        };
        let mut commands = BTreeSet::new();
        for named in used_by.split(',').map(str::trim) {
            let expanded: Vec<&str> = match named {
                "all" => LEAVES.to_vec(),
                "keys" | "token" => LEAVES
                    .iter()
                    .copied()
                    .filter(|leaf| leaf.starts_with(&format!("{named} ")))
                    .collect(),
                leaf => {
                    assert!(LEAVES.contains(&leaf), "README names no command {leaf:?}");
                    vec![leaf]
                }
            };
            commands.extend(expanded.into_iter().map(str::to_owned));
        }
        table.insert(
            format!("BUNKER_{variable}"),
            (commands, (*default).to_owned()),
        );
    }
    table
}

#[test]
fn help_lists_the_commands() {
    let top = help("");
    for command in [
        "init",
        "migrate",
        "serve",
        "demo",
        "keys",
        "token",
        "audit",
        "serve-role",
    ] {
        assert!(
            top.contains(command),
            "--help does not mention {command}:\n{top}"
        );
    }
}

#[test]
fn readme_configuration_table_is_what_each_command_reads() {
    let table = readme_table();
    assert!(table.len() >= 20, "README's table was not found: {table:?}");
    let mut read_by: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for leaf in LEAVES {
        for (variable, default) in listed(&help(leaf)) {
            let Some((_, readme_default)) = table.get(&variable) else {
                panic!("bunker {leaf} reads {variable}, which README's table does not list");
            };
            // A default in backticks is the one the help shows; any other text means none.
            let expected = readme_default
                .strip_prefix('`')
                .and_then(|d| d.strip_suffix('`'))
                .map(str::to_owned);
            assert_eq!(
                default, expected,
                "the default of {variable} in bunker {leaf} --help and in README"
            );
            read_by
                .entry(variable)
                .or_default()
                .insert(leaf.to_string());
        }
    }
    for (variable, (commands, _)) in &table {
        assert_eq!(
            read_by.get(variable),
            Some(commands),
            "the commands README says read {variable}, and those whose --help lists it"
        );
    }
}
