//! Compiles `proto/` with protox (pure Rust; no protoc binary needed).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    println!("cargo:rerun-if-changed={}", root.display());
    let files = protox::compile([root.join("admin/v1/admin.proto")], [&root])?;
    tonic_prost_build::configure()
        .type_attribute(".", "#[derive(serde::Serialize)]")
        .compile_fds(files)?;
    Ok(())
}
