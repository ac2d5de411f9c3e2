#!/bin/sh
# The container's entrypoint: maps nacos/nacos-server's image variables onto the flags of
# `roster server`, so that a compose file or manifest written for that image runs Roster
# after only the image name changes. ROSTER_<FLAG> variables are read by roster itself and
# win: no flag is emitted for a setting whose ROSTER_ variable is set.
#
#   MODE=standalone|cluster     cluster when NACOS_SERVERS is set, standalone otherwise
#   NACOS_SERVERS               "host1:8848 host2:8848 host3:8848" (spaces or commas): the
#                               --join list; its length is --bootstrap-expect
#   NACOS_APPLICATION_PORT,     the HTTP port (8848); gRPC is port + 1000 and Raft
#   NACOS_SERVER_PORT           port - 1000, as in Nacos
#   NACOS_SERVER_IP             the address this node binds and advertises
#   PREFER_HOST_MODE=hostname   advertise the hostname (and use it as --node-id) rather
#                               than the IP, for peers whose IPs change (Kubernetes, compose)
#   NACOS_AUTH_ENABLE           true: --auth; false: --auth=false --insecure. Unset keeps
#                               Roster's default: auth is on when a port binds beyond loopback
#   NACOS_AUTH_TOKEN            the secret every Nacos member shares; used as the cluster key
#                               when neither ROSTER_CLUSTER_KEY_FILE nor ROSTER_CLUSTER_KEY is set
#   NACOS_AUTH_TOKEN_EXPIRE_SECONDS  --token-ttl
#   ROSTER_CLUSTER_KEY          the cluster key itself (written to a mode-600 file for roster)
#
# "docker-entrypoint.sh health" probes this node's /readyz (the image's HEALTHCHECK);
# arguments that start with "-" are added to `roster server`; any other command is run as is.
set -eu
# No globbing: variables are split on purpose (NACOS_SERVERS), never expanded as patterns.
set -f

die() {
	echo "roster-entrypoint: $*" >&2
	exit 2
}

# is_set NAME: whether the variable NAME is set, even to "".
is_set() {
	eval "[ -n \"\${$1+x}\" ]"
}

# roster_var FLAG: the ROSTER_ variable that sets --FLAG.
roster_var() {
	echo "ROSTER_$(echo "$1" | tr 'a-z-' 'A-Z_')"
}

# flag NAME VALUE: emit --NAME=VALUE unless ROSTER_<NAME> is set.
flag() {
	if ! is_set "$(roster_var "$1")"; then
		set -- "--$1=$2"
		args="$args $(quote "$1")"
	fi
}

# quote ARG: ARG in single quotes, for the eval that rebuilds the argument list.
quote() {
	printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

port=${NACOS_APPLICATION_PORT:-${NACOS_SERVER_PORT:-8848}}
case $port in
'' | *[!0-9]*) die "NACOS_APPLICATION_PORT/NACOS_SERVER_PORT $port is not a port number" ;;
esac
if [ "$port" -le 1000 ] || [ "$port" -gt 64535 ]; then
	die "port $port leaves no room for Raft (port - 1000) and gRPC (port + 1000)"
fi

# The member list: spaces or commas between entries, Nacos' "?raft_port=" tails dropped,
# Nacos' port where an entry has none.
servers=""
count=0
for entry in $(echo "${NACOS_SERVERS:-}" | tr ',' ' '); do
	entry=${entry%%\?*}
	case $entry in
	*:*) ;;
	*) entry="$entry:8848" ;;
	esac
	servers="${servers:+$servers,}$entry"
	count=$((count + 1))
done

mode=${MODE:-}
if [ -z "$mode" ]; then
	mode=standalone
	[ "$count" -gt 0 ] && mode=cluster
fi

# The host this node binds and advertises.
case ${PREFER_HOST_MODE:-ip} in
hostname) host=$(hostname) ;;
ip | "") host=$(hostname -i 2>/dev/null | awk '{print $1}') || host="" ;;
*) die "PREFER_HOST_MODE=$PREFER_HOST_MODE: want hostname or ip" ;;
esac
[ -n "${NACOS_SERVER_IP:-}" ] && host=$NACOS_SERVER_IP

args=""
case $mode in
standalone)
	# One node: clients reach it on every interface; Raft has no peers to talk to.
	flag http-addr "${NACOS_SERVER_IP:-0.0.0.0}:$port"
	flag raft-addr "127.0.0.1:$((port - 1000))"
	;;
cluster)
	[ "$count" -gt 0 ] || is_set ROSTER_JOIN || die "MODE=cluster needs NACOS_SERVERS (or ROSTER_JOIN)"
	[ -n "$host" ] || die "cannot tell this node's address: set NACOS_SERVER_IP or PREFER_HOST_MODE=hostname"
	# Binding the advertised host (not 0.0.0.0) is what lets peers dial what they are told.
	flag http-addr "$host:$port"
	flag raft-addr "$host:$((port - 1000))"
	if [ "$count" -gt 0 ]; then
		flag join "$servers"
		flag bootstrap-expect "$count"
	fi
	if [ "${PREFER_HOST_MODE:-}" = hostname ]; then
		flag node-id "$host"
	fi
	if ! is_set ROSTER_CLUSTER_KEY_FILE && ! is_set ROSTER_TLS_CERT; then
		key=${ROSTER_CLUSTER_KEY:-${NACOS_AUTH_TOKEN:-}}
		if [ -n "$key" ] && [ "${1:-}" != health ]; then
			keyfile=${TMPDIR:-/tmp}/roster-cluster.key
			(umask 077 && printf '%s' "$key" >"$keyfile")
			flag cluster-key-file "$keyfile"
		fi
	fi
	;;
*) die "MODE=$mode: want standalone or cluster" ;;
esac

case ${NACOS_AUTH_ENABLE:-} in
true)
	flag auth true
	;;
false)
	flag auth false
	flag insecure true
	;;
"") ;;
*) die "NACOS_AUTH_ENABLE=$NACOS_AUTH_ENABLE: want true or false" ;;
esac

if [ -n "${NACOS_AUTH_TOKEN_EXPIRE_SECONDS:-}" ]; then
	case $NACOS_AUTH_TOKEN_EXPIRE_SECONDS in
	*[!0-9]*) die "NACOS_AUTH_TOKEN_EXPIRE_SECONDS=$NACOS_AUTH_TOKEN_EXPIRE_SECONDS is not a number of seconds" ;;
	esac
	flag token-ttl "${NACOS_AUTH_TOKEN_EXPIRE_SECONDS}s"
fi

if [ "${1:-}" = health ]; then
	# The address this node answers on: loopback when it binds every interface.
	addr=${ROSTER_HTTP_ADDR:-}
	if [ -z "$addr" ]; then
		if [ "$mode" = standalone ]; then addr="${NACOS_SERVER_IP:-127.0.0.1}:$port"; else addr="$host:$port"; fi
	fi
	case $addr in
	0.0.0.0:* | :*) addr="127.0.0.1:${addr##*:}" ;;
	esac
	# With certificates the client port serves TLS unless ROSTER_CLIENT_TLS=false.
	if [ -n "${ROSTER_TLS_CERT:-}" ] && [ "${ROSTER_CLIENT_TLS:-true}" != false ]; then
		exec roster health --addr "https://$addr" --ca "${ROSTER_TLS_CA:-}"
	fi
	exec roster health --addr "http://$addr"
fi

# Nacos settings with no Roster counterpart are named once, so nobody wonders.
ignored=""
for name in SPRING_DATASOURCE_PLATFORM MYSQL_SERVICE_HOST JVM_XMS JVM_XMX JVM_XMN JVM_MS JVM_MMS \
	NACOS_AUTH_IDENTITY_KEY NACOS_AUTH_IDENTITY_VALUE NACOS_DEBUG TOMCAT_ACCESSLOG_ENABLED; do
	is_set "$name" && ignored="$ignored $name"
done
[ -n "$ignored" ] && echo "roster-entrypoint: ignoring Nacos settings Roster has no use for:$ignored" >&2

case ${1:-} in
"" | -*)
	for a in "$@"; do
		args="$args $(quote "$a")"
	done
	eval "set -- $args"
	exec roster server "$@"
	;;
*)
	exec "$@"
	;;
esac
