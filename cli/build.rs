//! Links the `fhskit` binary as a position-dependent executable.
//!
//! Every `fhskit run --strategy fhs` and `fhskit env run` starts this binary, and as a position-independent
//! executable it carries about 31,000 relative relocations: at each start the loader reads their 750 KB table and
//! writes every slot, dirtying the 530 KB of `.data.rel.ro` page by page (about 300 of the 460 page faults of
//! `fhskit --version`), which each of the launcher's forks then copies and each exit frees again. Linked at a fixed
//! address there is nothing to relocate. The crates stay compiled as position-independent code, which links into a
//! fixed-address executable unchanged; the last of the compiler driver's `-pie`/`-no-pie` wins.
fn main() {
    println!("cargo:rustc-link-arg-bin=fhskit=-no-pie");
    println!("cargo:rerun-if-changed=build.rs");
}
