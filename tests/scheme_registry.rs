//! One list of schemes (`lazymm::lazy::SCHEMES`), and a test that fails
//! when an example, test target, benchmark or the QEMU kernel that lists
//! schemes misses one. Each file below runs every scheme; each must name
//! every scheme's type (`HazardLazyNoFence`, not only `HazardLazy`).
#![cfg(not(any(loom, lazymm_shuttle)))]

use lazymm::lazy::SCHEMES;

/// The files that list schemes, relative to the crate root.
const LISTS: [&str; 17] = [
    "examples/kernel/toy/driver.rs",
    "examples/adoption/main.rs",
    "examples/compare/imp/schemes.rs",
    "examples/compare/imp/lifetime.rs",
    "tests/adoption/main.rs",
    "tests/wide_cpus.rs",
    "tests/statics.rs",
    "tests/misuse.rs",
    "tests/miri_smoke.rs",
    "tests/trace.rs",
    "tests/loom/world.rs",
    "tests/shuttle/world.rs",
    "tests/shuttle/recorded.rs",
    "benches/lazy.rs",
    "benches/context_switch.rs",
    "benches/instructions/benches/hot_paths.rs",
    "kernels/qemu/src/torture/lazy.rs",
];

/// Each scheme of `SCHEMES` with the type a file names it by.
fn types() -> [(&'static str, &'static str, &'static str); 8] {
    use lazymm::lazy::*;
    [
        ("refcount", "Refcount", refcount::Refcount::NAME),
        ("shootdown", "Shootdown", shootdown::Shootdown::NAME),
        ("tagged", "Tagged", tagged::Tagged::<1>::NAME),
        ("cached", "Cached", cached::Cached::<1>::NAME),
        ("hazard", "HazardLazy", hazard::HazardLazy::<1>::NAME),
        (
            "hazard_nofence",
            "HazardLazyNoFence",
            hazard::HazardLazyNoFence::<1>::NAME,
        ),
        ("loaded_mm", "LoadedMm", loaded::LoadedMm::<1>::NAME),
        ("rcu_mm", "RcuMm", rcu_mm::RcuMm::<1>::NAME),
    ]
}

/// Whether `text` has `ident` as a whole identifier.
fn names(text: &str, ident: &str) -> bool {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(ident).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + ident.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

#[test]
fn the_list_is_every_scheme_by_its_name() {
    let t = types();
    assert_eq!(SCHEMES.len(), t.len());
    for (listed, (name, _, scheme_name)) in SCHEMES.iter().zip(t) {
        assert_eq!(*listed, name);
        assert_eq!(
            name, scheme_name,
            "SCHEMES lists {name}, the type says {scheme_name}"
        );
    }
}

#[test]
fn every_list_has_every_scheme() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut missing = Vec::new();
    for file in LISTS {
        let text = std::fs::read_to_string(format!("{root}/{file}"))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        for (name, ty, _) in types() {
            if !names(&text, ty) {
                missing.push(format!("{file} lacks {name} ({ty})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "schemes missing:\n{}",
        missing.join("\n")
    );
}

/// The check can fail: a list without one scheme is reported.
#[test]
fn a_missing_scheme_is_reported() {
    let text = "use lazymm::lazy::hazard::HazardLazy; Tagged::<4>::new();";
    assert!(names(text, "HazardLazy") && names(text, "Tagged"));
    assert!(!names(text, "HazardLazyNoFence"));
    assert!(!names("HazardLazyNoFence::<4>::new()", "HazardLazy"));
}
