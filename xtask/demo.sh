#!/usr/bin/env bash
# The Warrant demo: an AI agent's firewall changes, decided in the kernel.
# Run by `cargo xtask demo` (on the host when BPF-LSM works there, else in the
# test VM) with WARRANT_BIN, WARRANT_REPO and WARRANT_DEMO_DIR set.
set -uo pipefail
W="${WARRANT_BIN:?}"; R="${WARRANT_REPO:?}"; D="${WARRANT_DEMO_DIR:?}/run"
KEYS="$R/policies/demo-keys"
rm -rf "$D"; mkdir -p "$D"
export WARRANT_CONFIG="$D/warrant.toml"
# A unix socket cannot live on the VM's 9p share, so it goes to /run.
SOCK_DIR="/run/warrant-demo-$$"
cat > "$WARRANT_CONFIG" <<EOT
state_dir = "$D/state"
socket = "$SOCK_DIR/warrant.sock"
query_socket = "$SOCK_DIR-query/query.sock"
audit_log = "$D/log/audit.jsonl"
trusted_keys = ["$KEYS/security-team.key.pub"]
EOT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; "$@"; }
agent() { printf 'agent$ %s\n' "$*"; "$W" run --profile agent -- "$@"; echo "  -> exit $?"; }

say "The host firewall (made by root, who is not a subject)"
nft delete table inet filter 2>/dev/null
nft add table inet filter
nft add chain inet filter input '{ type filter hook input priority 0; }'
nft add set inet filter blocklist '{ type ipv4_addr; }'
nft list ruleset

say "The security team signs the demo policy; the daemon loads BPF-LSM programs"
sed -n '1,3p' "$R/policies/demo.toml"
show "$W" policy sign "$R/policies/demo.toml" --key "$KEYS/security-team.key" --out "$D/demo.bundle"
"$W" daemon > "$D/daemon.log" 2>&1 &
DAEMON=$!
trap 'kill $DAEMON 2>/dev/null' EXIT
# Wait for the socket while the daemon lives; one that exits is reported at once.
for _ in $(seq 1 600); do
  [ -S "$SOCK_DIR/warrant.sock" ] && break
  kill -0 "$DAEMON" 2>/dev/null || break
  sleep 0.5
done
[ -S "$SOCK_DIR/warrant.sock" ] || { echo "daemon did not start:"; cat "$D/daemon.log"; exit 1; }
show "$W" policy apply "$D/demo.bundle"

say "1. The agent blocks an address: pre-authorised (allow tier)"
agent nft add element inet filter blocklist '{ 203.0.113.7 }'

say "2. The agent opens SSH: needs a warrant (approve tier) -> EPERM in the kernel"
agent nft add rule inet filter input tcp dport 22 accept
sleep 1
show "$W" requests list
REQ=$("$W" requests list --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')

say "2b. The agent asks why (the query socket answers it about itself), then waits for a human"
agent "$W" why --last
printf 'agent$ %s wait %s &\n' "$W" "$REQ"
"$W" run --profile agent -- "$W" wait "$REQ" --timeout 5m > "$D/wait.out" 2>&1 &
WAITER=$!

say "3. Dana (network on-call, a Responsible Individual) reads the change and signs a one-use warrant with her SSH key"
# ssh-keygen signs (SSHSIG, namespace warrant); it wants the private key readable by its owner only.
install -m 600 "$KEYS/dana-ssh" "$D/dana-ssh" && cp "$KEYS/dana-ssh.pub" "$D/dana-ssh.pub"
show "$W" approve "$REQ" --ssh-key "$D/dana-ssh" --ttl 10m --uses 1 --reason "open ssh for the migration" --yes --out "$D/ssh.warrant"
show "$W" install "$D/ssh.warrant"
wait "$WAITER"; echo "agent's wait -> exit $? ($(cat "$D/wait.out"))"

say "4. The agent tries a bare accept instead: the warrant binds the exact rule -> EPERM"
agent nft add rule inet filter input accept

say "4b. The agent retries the approved rule: applied, one use spent"
agent nft add rule inet filter input tcp dport 22 accept

say "5. The agent tries again: the warrant is used up -> EPERM"
agent nft add rule inet filter input tcp dport 22 accept

say "6. The agent tries something never allowed (deny tier) -> EPERM"
agent nft flush chain inet filter input

say "6b. The agent goes around the firewall -> EPERM each: a chain by its handle, the routing table, the kernel's crash helper (run as root), the clock"
HANDLE=$(nft -a list chain inet filter input | sed -n 's/.*chain input { # handle \([0-9]*\)$/\1/p')
agent nft delete chain inet filter handle "$HANDLE"
agent ip route add 203.0.113.0/24 dev lo
agent sh -c 'echo "|/opt/agent/escape" > /proc/sys/kernel/core_pattern'
agent date -s '2020-01-01'

say "6c. The agent leaves a helper for root to run later: it runs as the agent -> EPERM; root reads it and unmarks it"
mkdir -p /usr/local/sbin
agent sh -c 'printf "#!/bin/sh\nnft flush ruleset\n" > /usr/local/sbin/warrant-demo-fix && chmod 755 /usr/local/sbin/warrant-demo-fix'
show /usr/local/sbin/warrant-demo-fix; echo "  -> exit $? (root ran it; it ran as the agent)"
show "$W" unmark /usr/local/sbin/warrant-demo-fix
rm -f /usr/local/sbin/warrant-demo-fix

say "6d. The agent asks a root service that runs what it is sent (on a unix socket) to flush the firewall -> EPERM at its connect"
DEPUTY=/run/warrant-demo-deputy.sock
python3 "$R/tests/kernel/helpers/sideways.py" deputy "$DEPUTY" stream > "$D/deputy.out" &
DEPUTY_PID=$!
for _ in $(seq 50); do grep -q ready "$D/deputy.out" 2>/dev/null && break; sleep 0.1; done
agent python3 "$R/tests/kernel/helpers/sideways.py" ask "$DEPUTY" stream "nft flush ruleset"
kill "$DEPUTY_PID" 2>/dev/null; wait "$DEPUTY_PID" 2>/dev/null; rm -f "$DEPUTY"

say "7. Root, not a subject, does the same: unaffected"
show nft add rule inet filter input tcp dport 2222 accept; echo "  -> exit $?"

say "The firewall now"
nft list ruleset
sleep 1
say "The audit trail (hash-chained)"
"$W" audit tail -n 40
show "$W" audit verify
show "$W" status
