#!/usr/bin/env bash
# The Kafka ACLs of deposit-sentinel: three principals, each allowed only what its job needs
# (docs/operations.md, "Who may do what"). Run it once per cluster with an admin's credentials.
#
#   deploy/kafka/acls.sh --bootstrap HOST:PORT [--command-config admin.properties] \
#       --worker User:sentinel-worker --publisher User:sentinel-publisher --reader User:alerts-reader \
#       [--console User:sentinel-console]
#
#   worker     reads the input, control and allowlist topics, writes alerts and dead letters, owns its
#              consumer group and its internal topics (<app id>-..., the rule-state changelog);
#              it can NOT write the control topic: a compromised worker cannot change the rules
#              of the others
#   publisher  writes (and may create) the control and allowlist topics, reads the allowlist
#              topic, nothing else (`sentinel rules publish`, `sentinel allow`)
#   reader     reads alerts and dead letters (`sentinel watch`, the compliance case tools, with
#              group --reader-group if it commits offsets); it can NOT produce alerts
#   console    (optional) `sentinel console`: reads alerts, reads and writes (and may create) the
#              dispositions topic, writes the allowlist topic (entries are signed besides); it
#              can NOT produce alerts
#
# Topic names and the app id come from the same SENTINEL_* variables the worker reads
# (defaults: deposits, withdrawals, freeze-alerts, sentinel-dlq, sentinel-control, sentinel-allowlist,
# alert-dispositions, deposit-sentinel). The ACL tool is Kafka's own (org.apache.kafka.tools.AclCommand); by
# default it runs from the jars deploy/kafka/broker.sh resolves, or set SENTINEL_KAFKA_ACLS
# to a command such as kafka-acls.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "acls.sh: $*" >&2; exit 1; }

bootstrap="" config="" worker="" publisher="" reader="" reader_group="" console=""
while (($#)); do
  case $1 in
    --bootstrap) bootstrap=$2; shift 2 ;;
    --command-config) config=$2; shift 2 ;;
    --worker) worker=$2; shift 2 ;;
    --publisher) publisher=$2; shift 2 ;;
    --reader) reader=$2; shift 2 ;;
    --reader-group) reader_group=$2; shift 2 ;;
    --console) console=$2; shift 2 ;;
    *) die "unknown argument $1 (see the header of this script)" ;;
  esac
done
[[ -n $bootstrap && -n $worker && -n $publisher && -n $reader ]] \
  || die "usage: acls.sh --bootstrap HOST:PORT [--command-config FILE] --worker P --publisher P --reader P [--reader-group G] [--console P]"

deposits=${SENTINEL_DEPOSITS_TOPIC:-deposits}
withdrawals=${SENTINEL_WITHDRAWALS_TOPIC:-withdrawals}
alerts=${SENTINEL_ALERTS_TOPIC:-freeze-alerts}
dlq=${SENTINEL_DEAD_LETTER_TOPIC:-sentinel-dlq}
control=${SENTINEL_CONTROL_TOPIC:-sentinel-control}
allowlist=${SENTINEL_ALLOWLIST_TOPIC:-sentinel-allowlist}
dispositions=${SENTINEL_DISPOSITIONS_TOPIC:-alert-dispositions}
app_id=${SENTINEL_APP_ID:-deposit-sentinel}

if [[ -n ${SENTINEL_KAFKA_ACLS:-} ]]; then
  read -r -a tool <<<"$SENTINEL_KAFKA_ACLS"
else
  tool=(java -cp "$("$here/broker.sh" classpath)" -Dlog4j2.level=WARN org.apache.kafka.tools.AclCommand)
fi
acl() {
  local args=(--bootstrap-server "$bootstrap" --add --force "$@")
  [[ -n $config ]] && args+=(--command-config "$config")
  "${tool[@]}" "${args[@]}" >/dev/null
}

# The worker.
acl --allow-principal "$worker" --operation Read --operation Describe \
  --topic "$deposits" --topic "$withdrawals" --topic "$control" --topic "$allowlist"
acl --allow-principal "$worker" --operation Write --operation Describe --topic "$alerts" --topic "$dlq"
# Faust's own topics (the rule-state changelog, the assignor's topic) start with the app id.
acl --allow-principal "$worker" --resource-pattern-type prefixed --topic "$app_id-" \
  --operation Create --operation Read --operation Write --operation Describe --operation DescribeConfigs
acl --allow-principal "$worker" --operation Read --operation Describe --group "$app_id"

# The publisher.
acl --allow-principal "$publisher" --operation Write --operation Describe --operation Create --topic "$control"
# ... and the allowlist topic, which `sentinel allow list|history|revoke` also read.
acl --allow-principal "$publisher" --operation Write --operation Describe --operation Create --topic "$allowlist"
acl --allow-principal "$publisher" --operation Read --topic "$allowlist"

# The reader.
acl --allow-principal "$reader" --operation Read --operation Describe --topic "$alerts" --topic "$dlq"
if [[ -n $reader_group ]]; then
  acl --allow-principal "$reader" --operation Read --operation Describe --group "$reader_group"
fi
# The console (docs/console.md): no consumer group, it reads every partition itself.
if [[ -n $console ]]; then
  acl --allow-principal "$console" --operation Read --operation Describe --topic "$alerts"
  acl --allow-principal "$console" --operation Read --operation Write --operation Describe --operation Create \
    --topic "$dispositions"
  acl --allow-principal "$console" --operation Write --operation Describe --topic "$allowlist"
fi
echo "ACLs set: worker $worker, publisher $publisher, reader $reader${console:+, console $console} (app id $app_id)"
