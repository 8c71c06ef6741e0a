//! Writes the YAML of every CRD rkube ships into the crate directory (`crds/*.yaml`).
//! Usage: `cargo run -p rkube-crds --bin gen-crds [OUT_DIR]`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    for (file, crd) in rkube_crds::all() {
        let path = dir.join(file);
        std::fs::write(&path, rkube_crds::to_yaml(&crd)?)?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
