# Sourced by tools/run and tools/test: installs what a fresh Debian 12 machine lacks.
# Idempotent: a machine that has everything installs nothing and touches no network.

SLUICE_APT_PACKAGES="meson ninja-build pkg-config gcc clang libclang-rt-14-dev
 liburing-dev libzstd-dev libxxhash-dev libcmocka-dev libjemalloc-dev libssl-dev libjansson-dev
 libcurl4-openssl-dev libxml2-dev zstd python3
 libnghttp2-dev libhttp-parser-dev"

# Only tools/test needs these: the AWS CLI drives the Kinesis API test over HTTP/1.1.
SLUICE_TEST_APT_PACKAGES="awscli"

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

# The peers of `sluice-bench compare` (Redis Streams, NATS JetStream) and gnuplot for its plots.
# Optional: the default build does not need them (bench/meson.build builds a peer in when its
# client library is found); tools/test installs them so the compare smoke test runs.
SLUICE_BENCH_PACKAGES="libhiredis-dev libnats-dev redis-server nats-server gnuplot-nox"

# Sets SLUICE_BENCH_INSTALLED=1 when it installed anything (build folders then need a reconfigure
# to find the new libraries).
sluice_install_bench_deps() {
	local missing=""
	SLUICE_BENCH_INSTALLED=0
	for p in $SLUICE_BENCH_PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "sluice: missing benchmark packages:$missing (the compare smoke test is skipped)" >&2
		return 0
	fi
	echo "sluice: installing$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null || return 1
	apt-get install -y -q --no-install-recommends $missing >/dev/null || return 1
	SLUICE_BENCH_INSTALLED=1
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
