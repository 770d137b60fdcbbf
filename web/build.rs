//! The assets are compiled into the binary (rust-embed): rebuild when they change.
fn main() {
    println!("cargo:rerun-if-changed=../assets");
}
