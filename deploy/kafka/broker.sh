#!/usr/bin/env bash
# A single-node Apache Kafka broker in KRaft mode, on loopback, for development and tests.
#
# The broker's jars come from Maven Central (deploy/kafka/pom.xml) and run on the
# installed Java 17: no Docker engine and no tarball download are needed.
#
#   deploy/kafka/broker.sh start      # resolve jars, format storage, start, wait until ready
#   deploy/kafka/broker.sh status     # exit 0 and print the bootstrap address if running
#   deploy/kafka/broker.sh bootstrap  # print host:port of the running broker
#   deploy/kafka/broker.sh stop       # SIGTERM, then SIGKILL after a grace period
#   deploy/kafka/broker.sh kill       # SIGKILL at once (fault-injection tests)
#   deploy/kafka/broker.sh classpath  # print the resolved classpath
#
# Environment:
#   SENTINEL_KAFKA_HOME   where data, logs and the pid file live (default: .local/kafka in the repo)
#   SENTINEL_KAFKA_PORT   broker port (default: a free port, kept across restarts of the same home)
#   SENTINEL_KAFKA_HEAP   JVM heap (default: 512m)
#   SENTINEL_KAFKA_SASL   1: also open a SASL_PLAINTEXT listener (SCRAM-SHA-512 and PLAIN) for
#                         security tests; its user is SENTINEL_KAFKA_SASL_USER/_PASSWORD
#                         (default sentinel / sentinel-secret); `bootstrap-sasl` prints its address
#   SENTINEL_KAFKA_SCRAM_USERS  with SASL: more SCRAM-SHA-512 users, "name=password name=password"
#   SENTINEL_KAFKA_ACL    1 (with SASL): authorize with KRaft's StandardAuthorizer; the SASL user
#                         above and the loopback listeners' ANONYMOUS are super users, everyone
#                         else needs ACLs (deploy/kafka/acls.sh)
#   SENTINEL_KAFKA_TLS    1: also open an SSL listener, its certificate signed by a CA made for
#                         this home with the JDK's keytool (IP SAN 127.0.0.1); `bootstrap-tls`
#                         prints its address, `tls-ca` the CA file clients check it against
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
home=${SENTINEL_KAFKA_HOME:-$repo/.local/kafka}
heap=${SENTINEL_KAFKA_HEAP:-512m}
pidfile=$home/broker.pid
portfile=$home/port
cpfile=$home/classpath.txt
log=$home/logs/server.out

mkdir -p "$home/logs"

die() { echo "broker.sh: $*" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

is_running() {
  [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

classpath() {
  # Re-resolve only when the pom changed: Maven takes seconds even with a warm cache.
  if [[ ! -s $cpfile || $here/pom.xml -nt $cpfile ]]; then
    command -v mvn >/dev/null || die "Maven (mvn) is required to resolve the Kafka jars"
    mvn -q -B -f "$here/pom.xml" dependency:build-classpath -Dmdep.outputFile="$cpfile.tmp" \
      >"$home/logs/maven.log" 2>&1 || { cat "$home/logs/maven.log" >&2; die "could not resolve Kafka jars with Maven"; }
    mv "$cpfile.tmp" "$cpfile"
  fi
  cat "$cpfile"
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

sasl_user=${SENTINEL_KAFKA_SASL_USER:-sentinel}
sasl_password=${SENTINEL_KAFKA_SASL_PASSWORD:-sentinel-secret}

tls_password=sentinel-local-tls   # guards files of a throwaway loopback CA, nothing else

make_certificates() {
  # A CA of this broker home and a broker certificate it signs, valid for 127.0.0.1 only.
  local dir=$home/tls
  [[ -s $dir/ca.pem && -s $dir/broker.p12 ]] && return 0
  command -v keytool >/dev/null || die "keytool (JDK) is required for SENTINEL_KAFKA_TLS=1"
  rm -rf "$dir" && mkdir -p "$dir"
  local kt=(keytool -storetype PKCS12 -storepass "$tls_password" -keypass "$tls_password")
  {
    "${kt[@]}" -genkeypair -alias ca -keyalg RSA -keysize 2048 -validity 3650 \
      -dname "CN=deposit-sentinel local test CA" -ext bc:c -keystore "$dir/ca.p12"
    "${kt[@]}" -exportcert -rfc -alias ca -keystore "$dir/ca.p12" -file "$dir/ca.pem"
    "${kt[@]}" -genkeypair -alias broker -keyalg RSA -keysize 2048 -validity 3650 \
      -dname "CN=127.0.0.1" -keystore "$dir/broker.p12"
    "${kt[@]}" -certreq -alias broker -keystore "$dir/broker.p12" -file "$dir/broker.csr"
    "${kt[@]}" -gencert -alias ca -keystore "$dir/ca.p12" -infile "$dir/broker.csr" -outfile "$dir/broker.crt" \
      -rfc -validity 3650 -ext SAN=IP:127.0.0.1,DNS:localhost -ext KU=digitalSignature,keyEncipherment \
      -ext EKU=serverAuth
    "${kt[@]}" -importcert -noprompt -alias ca -file "$dir/ca.pem" -keystore "$dir/broker.p12"
    "${kt[@]}" -importcert -alias broker -file "$dir/broker.crt" -keystore "$dir/broker.p12"
  } >"$home/logs/keytool.log" 2>&1 || { cat "$home/logs/keytool.log" >&2; die "making TLS certificates failed"; }
}

write_config() {
  local port=$1 cport=$2 sport=${3:-} tport=${4:-}
  local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
  local advertised="PLAINTEXT://127.0.0.1:$port"
  local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  if [[ -n $sport ]]; then
    listeners+=",SASL_PLAINTEXT://127.0.0.1:$sport"
    advertised+=",SASL_PLAINTEXT://127.0.0.1:$sport"
    protocols+=",SASL_PLAINTEXT:SASL_PLAINTEXT"
  fi
  if [[ -n $tport ]]; then
    listeners+=",SSL://127.0.0.1:$tport"
    advertised+=",SSL://127.0.0.1:$tport"
    protocols+=",SSL:SSL"
  fi
  cat >"$home/server.properties" <<EOF
# Generated by deploy/kafka/broker.sh; edits are overwritten on the next start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$home/data
num.partitions=4
# One node: every internal topic has a single replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
min.insync.replicas=1
# Tests start many short-lived consumer groups: do not wait for more members.
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.retention.hours=-1
EOF
  if [[ -n $sport ]]; then
    cat >>"$home/server.properties" <<EOF
sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${sasl_user}="${sasl_password}";
EOF
  fi
  if [[ ${SENTINEL_KAFKA_ACL:-0} == 1 ]]; then
    [[ -n $sport ]] || die "SENTINEL_KAFKA_ACL=1 needs SENTINEL_KAFKA_SASL=1 (ACLs need authenticated users)"
    # ANONYMOUS is every client of the loopback PLAINTEXT, CONTROLLER and SSL listeners: the
    # tests' own plumbing and the controller. A real cluster has no unauthenticated listener.
    cat >>"$home/server.properties" <<EOF
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;User:${sasl_user}
allow.everyone.if.no.acl.found=false
EOF
  fi
  if [[ -n $tport ]]; then
    cat >>"$home/server.properties" <<EOF
ssl.keystore.type=PKCS12
ssl.keystore.location=$home/tls/broker.p12
ssl.keystore.password=$tls_password
ssl.key.password=$tls_password
ssl.client.auth=none
EOF
  fi
  cat >"$home/log4j2.yaml" <<EOF
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: WARN
      - name: org.apache.kafka.controller
        level: WARN
      - name: state.change.logger
        level: WARN
EOF
}

start() {
  if is_running; then
    echo "127.0.0.1:$(cat "$portfile")"
    return 0
  fi
  command -v java >/dev/null || die "Java 17+ is required"
  local cp port cport
  cp=$(classpath)
  port=${SENTINEL_KAFKA_PORT:-}
  if [[ -z $port && -f $portfile ]] && ! port_open "$(cat "$portfile")"; then
    port=$(cat "$portfile")   # keep the address stable across restarts of the same home
  fi
  [[ -n $port ]] || port=$(free_port)
  cport=$(free_port)
  while [[ $cport == "$port" ]]; do cport=$(free_port); done
  local sport="" tport=""
  if [[ ${SENTINEL_KAFKA_SASL:-0} == 1 ]]; then
    sport=$(free_port)
    echo "$sport" >"$home/sasl_port"
  fi
  if [[ ${SENTINEL_KAFKA_TLS:-0} == 1 ]]; then
    make_certificates
    tport=$(free_port)
    echo "$tport" >"$home/tls_port"
  fi
  write_config "$port" "$cport" "$sport" "$tport"
  echo "$port" >"$portfile"
  if [[ ! -f $home/data/meta.properties ]]; then
    mkdir -p "$home/data"
    local scram=()
    if [[ -n $sport ]]; then
      # KRaft keeps SCRAM credentials in its metadata log: they are added when storage is formatted.
      scram=(--add-scram "SCRAM-SHA-512=[name=${sasl_user},password=${sasl_password}]")
      local user
      for user in ${SENTINEL_KAFKA_SCRAM_USERS:-}; do
        scram+=(--add-scram "SCRAM-SHA-512=[name=${user%%=*},password=${user#*=}]")
      done
    fi
    java -cp "$cp" -Dlog4j2.configurationFile="$home/log4j2.yaml" kafka.tools.StorageTool format \
      -t "$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)" \
      -c "$home/server.properties" "${scram[@]}" >"$home/logs/format.log" 2>&1 \
      || { cat "$home/logs/format.log" >&2; die "formatting KRaft storage failed"; }
  fi
  # setsid: the broker must not die with the shell that started it (make run's Ctrl-C stops it explicitly).
  # G1 as Kafka's own kafka-run-class.sh sets it (KAFKA_JVM_PERFORMANCE_OPTS, as the
  # apache/kafka image runs it): a 20 ms pause goal, where G1's default of 200 ms let young
  # pauses reach 18-51 ms every ~16 s under load on this 2-core machine, each one a stall of
  # every produce in flight (docs/performance.md, "The broker's collector"). The JVM's
  # collections go to logs/gc.log (two files of 10 MB at most), so a stall can be told.
  setsid java -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
    -Xlog:gc:file="$home/logs/gc.log":uptime,time:filecount=2,filesize=10m \
    -Dlog4j2.configurationFile="$home/log4j2.yaml" \
    -cp "$cp" kafka.Kafka "$home/server.properties" >>"$log" 2>&1 </dev/null &
  echo $! >"$pidfile"
  wait_ready "$port"
  echo "127.0.0.1:$port"
}

wait_ready() {
  local port=$1 deadline=$((SECONDS + ${SENTINEL_KAFKA_START_TIMEOUT:-90}))
  until port_open "$port" && grep -q "Kafka Server started" "$log" 2>/dev/null; do
    if ! is_running; then
      tail -n 40 "$log" >&2
      die "broker exited during start-up (log: $log)"
    fi
    ((SECONDS < deadline)) || { tail -n 40 "$log" >&2; die "broker not ready after ${SENTINEL_KAFKA_START_TIMEOUT:-90}s"; }
    sleep 0.3
  done
}

stop() {
  local signal=${1:-TERM} grace=${2:-30}
  if ! is_running; then
    rm -f "$pidfile"
    return 0
  fi
  local pid
  pid=$(cat "$pidfile")
  kill -"$signal" "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + grace))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then kill -KILL "$pid" 2>/dev/null || true; fi
    sleep 0.2
  done
  rm -f "$pidfile"
  # The log marker must not make the next start look ready before it is.
  [[ -f $log ]] && mv "$log" "$log.previous"
  return 0
}

case ${1:-} in
  start) start ;;
  stop) stop TERM 30 ;;
  kill) stop KILL 5 ;;
  status)
    if is_running; then echo "running at 127.0.0.1:$(cat "$portfile") (pid $(cat "$pidfile"))"; else echo "not running"; exit 1; fi ;;
  bootstrap)
    is_running || die "not running"
    echo "127.0.0.1:$(cat "$portfile")" ;;
  bootstrap-sasl)
    is_running && [[ -f $home/sasl_port ]] || die "not running with SENTINEL_KAFKA_SASL=1"
    echo "127.0.0.1:$(cat "$home/sasl_port")" ;;
  bootstrap-tls)
    is_running && [[ -f $home/tls_port ]] || die "not running with SENTINEL_KAFKA_TLS=1"
    echo "127.0.0.1:$(cat "$home/tls_port")" ;;
  tls-ca)
    [[ -s $home/tls/ca.pem ]] || die "no CA: start with SENTINEL_KAFKA_TLS=1 first"
    echo "$home/tls/ca.pem" ;;
  classpath) classpath ;;
  reset) stop TERM 30; rm -rf "$home" ;;
  *) echo "usage: $0 {start|stop|kill|status|bootstrap|bootstrap-sasl|bootstrap-tls|tls-ca|classpath|reset}" >&2; exit 2 ;;
esac
