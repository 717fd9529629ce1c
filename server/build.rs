//! Compiles `proto/strata/v1/strata.proto` and `proto/qdrant/qdrant.proto` with a vendored protoc (none is installed on build
//! machines) and writes the descriptor set that server reflection serves.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/strata/v1/strata.proto");
    println!("cargo:rerun-if-changed=proto/qdrant/qdrant.proto");
    println!("cargo:rerun-if-env-changed=PROTOC");
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY: build scripts are single-threaded; nothing else reads the environment now.
        unsafe { std::env::set_var("PROTOC", protoc) };
    }
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_client(true) // the load generator in benches/ is a client
        .file_descriptor_set_path(out.join("strata_v1_descriptor.bin"))
        .compile_protos(&["proto/strata/v1/strata.proto"], &["proto"])?;
    // Qdrant's services (a wire-compatible subset), for qdrant-client's `prefer_grpc=True`.
    tonic_prost_build::configure()
        .build_client(false)
        .file_descriptor_set_path(out.join("qdrant_descriptor.bin"))
        .compile_protos(&["proto/qdrant/qdrant.proto"], &["proto"])?;
    Ok(())
}
