#!/bin/bash
# Build the lenscap installer: a universal (arm64 + x86_64) binary, the
# LaunchDaemon plist and the uninstaller in a flat pkg that requires
# macOS 13 or later. macOS only (cargo, lipo, pkgbuild, productbuild).
#
#   installer/build-pkg.sh            -> dist/lenscap-<version>.pkg
#
# Optional environment:
#   APPLICATION_IDENTITY  "Developer ID Application: Org (TEAMID)": sign the
#                         binary (hardened runtime, identifier
#                         io.lenscap.agent) — needed for notarization and for
#                         the PPPC profile's code requirement to match
#   INSTALLER_IDENTITY    "Developer ID Installer: Org (TEAMID)": sign the pkg
#   NOTARY_PROFILE        notarytool keychain profile (xcrun notarytool
#                         store-credentials); or instead all three of
#   NOTARY_KEY, NOTARY_KEY_ID, NOTARY_ISSUER
#                         an App Store Connect API key (.p8 path, key id,
#                         issuer id). Either one notarizes and staples.
#   VERSION               override the version read from Cargo.toml
#   OUT_DIR               where the pkg goes (default <repo>/dist)
set -euo pipefail

die() {
	printf 'build-pkg.sh: error: %s\n' "$*" >&2
	exit 1
}
log() { printf 'build-pkg.sh: %s\n' "$*"; }

if [ "$(uname -s)" != "Darwin" ]; then
	die "this builds a macOS installer and must run on macOS (it needs lipo, pkgbuild and productbuild); this is $(uname -s). On other systems use 'cargo check -p lenscap --target aarch64-apple-darwin', or let .github/workflows/macos.yml build the pkg."
fi

LABEL="io.lenscap.agent"
TARGETS=(aarch64-apple-darwin x86_64-apple-darwin)
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
OUT_DIR="${OUT_DIR:-$repo/dist}"

for tool in cargo lipo pkgbuild productbuild plutil; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found (cargo: https://rustup.rs; the others: xcode-select --install)"
done

notarize=0
if [ -n "${NOTARY_PROFILE:-}" ]; then
	notarize=1
	notary_auth=(--keychain-profile "$NOTARY_PROFILE")
elif [ -n "${NOTARY_KEY:-}${NOTARY_KEY_ID:-}${NOTARY_ISSUER:-}" ]; then
	if [ -z "${NOTARY_KEY:-}" ] || [ -z "${NOTARY_KEY_ID:-}" ] || [ -z "${NOTARY_ISSUER:-}" ]; then
		die "set all of NOTARY_KEY, NOTARY_KEY_ID and NOTARY_ISSUER (or NOTARY_PROFILE), not only some"
	fi
	notarize=1
	notary_auth=(--key "$NOTARY_KEY" --key-id "$NOTARY_KEY_ID" --issuer "$NOTARY_ISSUER")
fi
if [ "$notarize" -eq 1 ] && { [ -z "${INSTALLER_IDENTITY:-}" ] || [ -z "${APPLICATION_IDENTITY:-}" ]; }; then
	die "notarization needs a signed binary and pkg: set APPLICATION_IDENTITY and INSTALLER_IDENTITY too"
fi

cd "$repo"
if [ -z "${VERSION:-}" ]; then
	# `cargo pkgid` prints e.g. path+file:///src/lenscap/agent#lenscap@0.1.0
	# (or ...#0.1.0): the version is after the last '@' or '#'.
	pkgid="$(cargo pkgid -p lenscap)"
	VERSION="${pkgid##*[#@]}"
fi
[[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+ ]] || die "version '$VERSION' does not look like x.y.z"
log "building lenscap $VERSION"

for target in "${TARGETS[@]}"; do
	cargo build --release --locked -p lenscap --target "$target"
done

work="$(mktemp -d "${TMPDIR:-/tmp}/lenscap-pkg.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root/usr/local/bin" "$root/usr/local/share/lenscap" "$root/Library/LaunchDaemons"

binary="$root/usr/local/bin/lenscap"
lipo -create -output "$binary" \
	"target/aarch64-apple-darwin/release/lenscap" \
	"target/x86_64-apple-darwin/release/lenscap"
lipo "$binary" -verify_arch arm64 x86_64 || die "$binary is not universal (arm64 + x86_64)"
chmod 755 "$binary"
if [ -n "${APPLICATION_IDENTITY:-}" ]; then
	# The identifier is fixed so the PPPC profile's code requirement
	# (identifier "io.lenscap.agent" and ... leaf[subject.OU] = TEAM) matches.
	codesign --force --timestamp --options runtime --identifier "$LABEL" \
		--sign "$APPLICATION_IDENTITY" "$binary"
	codesign --verify --strict --verbose=2 "$binary"
	log "signed $binary; its requirement: $(codesign -dr - "$binary" 2>&1 | sed -n 's/^designated => //p')"
else
	log "APPLICATION_IDENTITY not set: the binary is unsigned (fine for a local test, not for a fleet)"
fi

cp "launchd/$LABEL.plist" "$root/Library/LaunchDaemons/$LABEL.plist"
chmod 644 "$root/Library/LaunchDaemons/$LABEL.plist"
plutil -lint "$root/Library/LaunchDaemons/$LABEL.plist"
cp installer/uninstall.sh "$root/usr/local/share/lenscap/uninstall.sh"
chmod 755 "$root/usr/local/share/lenscap/uninstall.sh"

component="lenscap-component.pkg"
sign_installer=()
if [ -n "${INSTALLER_IDENTITY:-}" ]; then
	sign_installer=(--sign "$INSTALLER_IDENTITY")
else
	log "INSTALLER_IDENTITY not set: the pkg is unsigned (Gatekeeper will warn on double-click)"
fi

# --ownership recommended makes everything root:wheel in the payload,
# whoever runs the build; postinstall reasserts it anyway.
pkgbuild --root "$root" --scripts installer/scripts --identifier "$LABEL" \
	--version "$VERSION" --install-location / --ownership recommended \
	${sign_installer[@]+"${sign_installer[@]}"} "$work/$component"

sed -e "s/@VERSION@/$VERSION/g" -e "s/@COMPONENT@/$component/g" \
	installer/Distribution.xml >"$work/Distribution.xml"
mkdir -p "$OUT_DIR"
product="$OUT_DIR/lenscap-$VERSION.pkg"
productbuild --distribution "$work/Distribution.xml" --package-path "$work" \
	${sign_installer[@]+"${sign_installer[@]}"} "$product"
log "built $product"

if [ "$notarize" -eq 1 ]; then
	result="$work/notary.json"
	xcrun notarytool submit "$product" "${notary_auth[@]}" --wait \
		--output-format json >"$result"
	status="$(plutil -extract status raw -o - "$result")"
	if [ "$status" != "Accepted" ]; then
		id="$(plutil -extract id raw -o - "$result" 2>/dev/null || echo '?')"
		die "notarization status is '$status'; see: xcrun notarytool log $id ${notary_auth[*]}"
	fi
	xcrun stapler staple "$product"
	xcrun stapler validate "$product"
	log "notarized and stapled $product"
fi
