#!/usr/bin/env bash
# Makes sure what `make test` and `make demo` need is here: Python's venv module, what building
# mysqlclient needs (a C compiler, Python's headers, pkg-config, MariaDB's client library), and a
# real Redis server on 127.0.0.1:6379 (installed from Debian's packages and started when none
# answers); for `make bench-test`, Chromium.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
	as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

redis_answers() {
	timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/6379 && printf "PING\r\n" >&3 && head -c 5 <&3' 2>/dev/null \
		| grep -q PONG
}

case "${1:-all}" in
venv)
	# Debian's python3 has the venv module but cannot create one without python3-venv: try it.
	probe=$(mktemp -d)
	python="${PYTHON:-python3}"
	"$python" -m venv "$probe/venv" >/dev/null 2>&1 || apt_install python3-venv
	rm -rf "$probe"
	missing=()
	command -v cc >/dev/null || missing+=(gcc)
	command -v pkg-config >/dev/null || missing+=(pkg-config)
	pkg-config --exists libmariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null \
		|| missing+=(libmariadb-dev)
	headers=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
	[ -f "$headers/Python.h" ] || missing+=(python3-dev)
	if [ ${#missing[@]} -gt 0 ]; then
		echo "Installing what building mysqlclient needs: ${missing[*]}" >&2
		apt_install "${missing[@]}" \
			|| echo "warning: could not install ${missing[*]}; MariaDB will run through PyMySQL" >&2
	fi
	;;
chromium)
	# The bench's desk XSS test drives it headless.
	command -v chromium >/dev/null || command -v chromium-browser >/dev/null || apt_install chromium
	;;
redis | all)
	if ! redis_answers; then
		command -v redis-server >/dev/null || apt_install redis-server
		echo "Starting a local Redis server on 127.0.0.1:6379" >&2
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
			--dir /tmp --logfile /tmp/dartwing-redis.log
		for _ in $(seq 50); do redis_answers && break; sleep 0.1; done
		redis_answers || { echo "Redis did not start; see /tmp/dartwing-redis.log" >&2; exit 1; }
	fi
	;;
esac
