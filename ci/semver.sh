#!/usr/bin/env bash
# API compatibility against the last release: cargo semver-checks with the
# newest `v*` git tag as the baseline. A 0.x minor release may break the
# API (the CHANGELOG's migration table says how); a patch release must not,
# and this is the check that says so. Without a release tag yet, or without
# the tool (installed here when missing), it prints SKIP: and why.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=$(git tag --list 'v*' --sort=-v:refname | head -n 1)
if [ -z "$tag" ]; then
  echo "SKIP: semver-checks: no release tag (v*) yet; the first tag (v0.3.0) becomes the baseline"
  exit 0
fi
if ! cargo semver-checks --version > /dev/null 2>&1; then
  cargo install --locked cargo-semver-checks > /dev/null 2>&1 \
    || { echo "SKIP: semver-checks: cargo-semver-checks is not installed and 'cargo install' failed (offline?)"; exit 0; }
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
base=${tag#v}
echo "semver-checks: $version against $tag"
if [ "${version%.*}" = "${base%.*}" ]; then
  # The same 0.x minor as the tag: a patch release, which must not break.
  cargo semver-checks --baseline-rev "$tag"
else
  # A new minor: breaking changes are allowed; report them.
  cargo semver-checks --baseline-rev "$tag" \
    || echo "(a new 0.x minor may break the API: CHANGELOG.md's migration table must say how)"
fi
