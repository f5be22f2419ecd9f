//! The `bunker` binary describes its commands and configuration. (Building this test also builds the
//! binary, which the integration suite in `tests/` drives.)

use std::process::Command;

#[test]
fn help_lists_the_commands_and_the_environment() {
    let output = Command::new(env!("CARGO_BIN_EXE_bunker"))
        .arg("--help")
        .output()
        .expect("run bunker --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for word in [
        "init",
        "migrate",
        "serve",
        "demo",
        "BUNKER_DATABASE_URL",
        "BUNKER_DOMAIN",
    ] {
        assert!(
            help.contains(word),
            "--help does not mention {word}:\n{help}"
        );
    }
}
