//! Toolchain facts every benchmark prints first (docs/BENCH_PROTOCOL.md).

/// rustc version, cargo profile, RUSTFLAGS, target CPU and the mode name.
pub fn build_info(mode: &str) -> String {
    let cpu = if cfg!(target_feature = "avx2") {
        "with avx2"
    } else {
        "baseline (no avx2)"
    };
    format!(
        "# omni build: {} | profile={} | debug_assertions={} | RUSTFLAGS=\"{}\" | target={}-{} {} | mode={}",
        env!("OMNI_RUSTC_VERSION"),
        env!("OMNI_PROFILE"),
        cfg!(debug_assertions),
        env!("OMNI_RUSTFLAGS"),
        std::env::consts::ARCH,
        std::env::consts::OS,
        cpu,
        mode
    )
}
