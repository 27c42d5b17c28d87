# Sourced by tools/run and tools/test: installs what a fresh Debian 12 machine lacks.
# Idempotent: a machine that has everything installs nothing and touches no network.

SLUICE_APT_PACKAGES="meson ninja-build pkg-config gcc clang libclang-rt-14-dev
 liburing-dev libzstd-dev libxxhash-dev libcmocka-dev libjemalloc-dev libssl-dev libjansson-dev
 libcurl4-openssl-dev libxml2-dev zstd python3"

sluice_install_deps() {
	local missing=""
	for p in $SLUICE_APT_PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing="$missing $p"
	done
	if [ -n "$missing" ]; then
		if [ "$(id -u)" != 0 ]; then
			echo "sluice: missing packages:$missing (run as root, or install them)" >&2
			return 1
		fi
		echo "sluice: installing$missing" >&2
		export DEBIAN_FRONTEND=noninteractive
		# An old or empty package list makes install fail: refresh it first.
		apt-get update -q >/dev/null || return 1
		apt-get install -y -q --no-install-recommends $missing >/dev/null || return 1
	fi
}

# Configure (once) and build a build folder: sluice_build DIR [meson options...]
sluice_build() {
	local dir=$1
	shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >/dev/null || return 1
	fi
	ninja -C "$dir" >/dev/null || { ninja -C "$dir"; return 1; }
}
