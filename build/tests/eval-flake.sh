#!/usr/bin/env bash
# Evaluates kdf's flake offline against build/tests/mock-nixpkgs (no nixpkgs
# download, nothing built): the flake's outputs, the generated scripts, and
# the builders' error messages. Needs only `nix` (2.8 or newer).
#
#   build/tests/eval-flake.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A path: flake of the files the flake reads (git-untracked files included).
mkdir -p "$work/flake"
cp -r "$root"/{flake.nix,flake.lock,build,modules,configs,Cargo.toml,Cargo.lock,kdf,kdf-init,kdf-proto} "$work/flake/"
cp -r "$root/build/tests/mock-nixpkgs" "$work/mock"

nix=(nix --extra-experimental-features "nix-command flakes")
mock=(--override-input nixpkgs "path:$work/mock")
quiet() { grep -v "^warning: not writing\|^• Updated\|^    'github\|^  → 'path\|^warning: unknown flake output 'lib'\|^warning: the group 'nixbld'\|^warning: creating lock file\|^• Added\|^    'path\|^  • Added\|^    → \|^    follows" || true; }

echo "flake check (no build)"
"${nix[@]}" flake check --no-build "${mock[@]}" "path:$work/flake" 2>&1 | quiet

for attr in runQemu.text runGdb.text runGdb.passthru.gdbinit.text initramfs.buildCommand; do
  "${nix[@]}" eval --raw "${mock[@]}" "path:$work/flake#packages.x86_64-linux.$attr" 2>/dev/null >/dev/null \
    || { echo "error: packages.x86_64-linux.$attr does not evaluate" >&2; exit 1; }
done
echo "scripts evaluate"

# The flake-input examples of README.md and docs/builders.md, as a user's
# flake next to a module: locked with their nixpkgs and kdf overridden, kdf's
# nixpkgs following theirs (else it would be a second nixpkgs to fetch), and
# their packages evaluated.
for doc in README.md docs/builders.md; do
  dir="$work/example-${doc//\//-}"
  mkdir -p "$dir"
  awk '/^```nix$/ { on = 1; next } on && /^```$/ { exit } on' "$root/$doc" > "$dir/flake.nix"
  [ -s "$dir/flake.nix" ] || { echo "error: $doc has no \`\`\`nix example" >&2; exit 1; }
  "${nix[@]}" flake lock "${mock[@]}" --override-input kdf "path:$work/flake" "path:$dir" 2>&1 | quiet
  follows=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["nodes"]["kdf"]["inputs"].get("nixpkgs"))' "$dir/flake.lock")
  if [ "$follows" != "['nixpkgs']" ]; then
    echo "error: $doc's example locks kdf's own nixpkgs ($follows): add inputs.kdf.inputs.nixpkgs.follows = \"nixpkgs\"" >&2
    exit 1
  fi
  # shellcheck disable=SC2016 # ${n} is Nix
  if ! out=$("${nix[@]}" eval --raw "path:$dir#packages.x86_64-linux" \
    --apply 'p: builtins.concatStringsSep "\n" (map (n: p.${n}.text or p.${n}.name) (builtins.attrNames p))' 2>&1); then
    echo "error: $doc's example does not evaluate:" >&2
    echo "$out" >&2
    exit 1
  fi
done
echo "the README's and docs/builders.md's flake-input examples lock and evaluate"

# Each case must fail evaluation with its builder's message (`expect`).
cat > "$work/errors.nix" <<NIX
let
  pkgs = (builtins.getFlake "path:$work/mock").legacyPackages.x86_64-linux;
  b = import $work/flake/build { inherit pkgs; };
  inherit (pkgs.linux_latest) src version;
  noRust = b.buildKernel { inherit src version; configfile = b.buildKernelConfig { inherit src version; enableRust = false; }; };
in {
  profile = {
    expect = "buildKernelConfig: profile = \\"tiny\\" is not a kdf profile";
    value = (b.buildKernelConfig { inherit src version; profile = "tiny"; }).fragments;
  };
  rustKasan = {
    expect = "buildKernelConfig: Rust and KASAN together need a clang-built kernel";
    value = (b.buildKernelConfig { inherit src version; profile = "debug"; enableRust = true; }).name;
  };
  rustModule = {
    expect = "buildRustModule (x): the kernel";
    value = (b.buildRustModule { kernel = noRust; } { name = "x"; src = $work/flake/modules/rust; }).name;
  };
  noModules = {
    expect = "buildKernel: the configfile has CONFIG_MODULES off";
    value = (b.buildKernel { inherit src version; configfile = b.buildKernelConfig { inherit src version; structuredExtraConfig.MODULES = false; }; }).name;
  };
  arch = {
    expect = "buildKernelConfig: kdf has no fragment for ARCH=riscv";
    value = let
      riscv = pkgs // { stdenv = pkgs.stdenv // { hostPlatform = { system = "riscv64-linux"; linuxArch = "riscv"; }; }; };
    in ((import $work/flake/build { pkgs = riscv; }).buildKernelConfig { inherit src version; }).fragments;
  };
  configfile = {
    expect = "buildKernel: configfile is neither a buildKernelConfig result nor a path";
    value = (b.buildKernel { inherit src version; configfile = "x"; }).name;
  };
}
NIX
cases=$("${nix[@]}" eval --impure --raw --expr "builtins.concatStringsSep \" \" (builtins.attrNames (import $work/errors.nix))")
for name in $cases; do
  expect=$("${nix[@]}" eval --impure --raw --file "$work/errors.nix" "$name.expect")
  out=$("${nix[@]}" eval --impure --file "$work/errors.nix" "$name.value" 2>&1 || true)
  if ! grep -qF "$expect" <<<"$out"; then
    echo "error: $name: expected an evaluation error containing \"$expect\", got:" >&2
    echo "$out" >&2
    exit 1
  fi
done
echo "builder errors name the builder and the fix"
echo "ok"
