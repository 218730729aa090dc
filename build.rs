//! One name for "the `bug_` switches are compiled in": `cfg(lazymm_bugs)`,
//! set under `--cfg loom`, `--cfg lazymm_shuttle` and the `bug-variants`
//! feature (instead of spelling the three out at every switch).

fn main() {
    println!("cargo:rustc-check-cfg=cfg(lazymm_bugs)");
    println!("cargo:rerun-if-changed=build.rs");
    let set = |name: &str| std::env::var_os(name).is_some();
    if set("CARGO_CFG_LOOM") || set("CARGO_CFG_LAZYMM_SHUTTLE") || set("CARGO_FEATURE_BUG_VARIANTS")
    {
        println!("cargo:rustc-cfg=lazymm_bugs");
    }
}
