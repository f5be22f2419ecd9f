// refinery's embed_migrations! does not notice new .sql files on its own.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
