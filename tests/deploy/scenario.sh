#!/bin/bash
# The deployment tier's guest side: a stock Debian 12 host booted with
# systemd as PID 1 installs the freshly built .deb and runs Warrant the way
# README's "Deploying" says, under the shipped unit. Run at boot by
# deploy-test.service from /srv/deploy (the inputs disk); its output goes to
# the serial console, which `cargo xtask test` reads: one `ok NAME` or
# `FAILED NAME: why` line per check, then `deploy tier: N passed, M failed`.
set -u
IN=/srv/deploy
AUDIT=/var/log/warrant/audit.jsonl
passed=0
failed=0

ok() { echo "ok $1"; passed=$((passed + 1)); }
# A failure shows what the daemon said and recorded last, so that a run
# that fails once in CI says why.
fail() {
    echo "FAILED $1: $2"
    failed=$((failed + 1))
    sleep 1 # the daemon's records of what just happened
    tail -n 4 "$AUDIT" 2>/dev/null | cut -c1-400 | sed 's/^/    audit: /'
    journalctl -u warrant -n 6 --no-pager -o cat 2>/dev/null | cut -c1-400 | sed 's/^/    daemon: /'
    [ -n "${POD:-}" ] && podman logs --tail 6 "$POD" 2>&1 | cut -c1-400 | sed 's/^/    pod: /'
    # systemd's own (a unit's child that failed before exec: 219/CGROUP, 203/EXEC)
    journalctl -b -p err -n 6 --no-pager -o cat 2>/dev/null | cut -c1-300 | sed 's/^/    journal: /'
}
# check NAME CMD...: passes if CMD exits 0; its output is shown only on failure.
check() {
    local name=$1 out rc
    shift
    if out=$("$@" 2>&1); then ok "$name"; else
        rc=$?
        fail "$name" "exit $rc: $(echo "$out" | tail -n 5)"
        return 1
    fi
}
# refused NAME CMD...: passes if CMD fails with EPERM (what a subject gets).
refused() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then
        fail "$name" "it succeeded"
    elif grep -q "Operation not permitted" <<<"$out"; then
        ok "$name"
    else
        fail "$name" "it failed, but not with EPERM: $(echo "$out" | tail -n 3)"
    fi
}
# until_true SECONDS CMD...: polls CMD every half second.
until_true() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.5
    done
}
audit_len() { wc -l <"$AUDIT" 2>/dev/null || echo 0; }
# record MARK ACTION VERDICT: an audit record after line MARK with this
# action and verdict (the daemon writes it within a second or two). The
# program is an argument, not stdin: each poll runs it whole.
record_py='
import json, sys
path, mark, action, verdict = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
lines = open(path).read().splitlines()[mark:]
sys.exit(0 if any(json.loads(l).get("action") == action and json.loads(l).get("verdict") == verdict for l in lines) else 1)
'
record() { until_true 20 python3 -c "$record_py" "$AUDIT" "$@"; }
# status_is KEY VALUE: `warrant status --json` has KEY = VALUE.
status_is() { [ "$(warrant status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1")" = "$2" ]; }
main_pid() { systemctl show -p MainPID --value warrant; }
# new_daemon_since PID: a daemon runs, not PID, and from a binary on disk.
new_daemon_since() {
    local pid
    pid=$(main_pid)
    [ "$pid" != 0 ] && [ "$pid" != "$1" ] && ! readlink "/proc/$pid/exe" | grep -q deleted
}
same_daemon_as() { [ "$1" != 0 ] && [ "$(main_pid)" = "$1" ]; }
# request_for TEXT: the id of the open change request whose record has TEXT.
request_for() {
    warrant requests list --json |
        python3 -c 'import json,sys; print(next(r["id"] for r in json.load(sys.stdin) if sys.argv[1] in json.dumps(r)))' "$1"
}
# agent CMD...: CMD as a systemd service of its own in agents.slice (a
# subject by the policy's cgroup match), its output and exit code passed back.
agent() { systemd-run --quiet --wait --pipe --collect --slice=agents.slice -- "$@"; }
has_rule() { nft list chain inet filter input | grep -q "tcp dport 22 accept"; }
# no_gap: the ruleset lists (nft works, inet filter is whole) and holds no
# table an agent's attempt would have made.
no_gap() { nft list tables >/tmp/tables && grep -q "table inet filter" /tmp/tables && ! grep -q gap /tmp/tables; }

echo "deploy tier: $(uname -r), PID 1 is $(cat /proc/1/comm), LSMs $(cat /sys/kernel/security/lsm)"

# The node as the agents find it: the firewall's root, and the second
# agent's executable (matched by inode).
nft -f - <<'EOF'
table inet filter {
    set blocklist { type ipv4_addr; }
    chain input { type filter hook input priority 0; }
}
EOF
mkdir -p /opt/agents && cp /usr/sbin/nft /opt/agents/ai-agent

# The sections to run (`cargo xtask test --tier deploy --filter daemonset`);
# all when none is named. Each starts from this node.
wanted() { [ ! -s "$IN/only" ] || grep -qw "$1" "$IN/only"; }

if wanted package; then

# 1. Install, configure, start.
check "dpkg -i installs the package" dpkg -i "$IN/warrant.deb"
check "the unit is installed but not enabled before keys are set" \
    sh -c '[ "$(systemctl is-enabled warrant)" = disabled ]'
install -m 0644 "$IN/security-team.key.pub" /etc/warrant/security-team.key.pub
mkdir -p /etc/warrant/bundles.d /var/lib/warrant/inbox
sed -i 's|^trusted_keys = \[\]|trusted_keys = ["/etc/warrant/security-team.key.pub"]|' /etc/warrant/warrant.toml
cat >>/etc/warrant/warrant.toml <<'EOF'
bundle_dir = "/etc/warrant/bundles.d"
inbox_dir = "/var/lib/warrant/inbox"
notify_command = "logger -t warrant-notify"
EOF
check "systemctl enable --now warrant" systemctl enable --now warrant
check "the daemon answers on its socket" until_true 180 warrant status
check "warrant doctor says enforcement is available (bpf-lsm)" \
    sh -c 'warrant doctor | tee /dev/stderr | grep -q "enforcement: available" && warrant doctor | grep -q bpf-lsm'

# 2. A bundle dropped into bundle_dir is applied.
warrant policy sign "$IN/demo.toml" --key "$IN/security-team.key" --out /tmp/demo.bundle >/dev/null
cp /tmp/demo.bundle /etc/warrant/bundles.d/10-demo.bundle
check "the bundle dropped into bundle_dir is applied" \
    until_true 60 status_is policy_version 1
check "status names the mode in force" status_is mode bpf-lsm

# 3. Agents: one a service in agents.slice (cgroup match), one by executable.
mark=$(audit_len)
check "the agent service adds to the blocklist (allow tier)" agent nft add element inet filter blocklist '{ 203.0.113.7 }'
check "... and that is recorded allowed" record "$mark" nft.element.add allowed
mark=$(audit_len)
refused "the agent service may not open ssh without a warrant" agent nft add rule inet filter input tcp dport 22 accept
check "... recorded denied-needs-warrant" record "$mark" nft.rule.add denied-needs-warrant
refused "the agent executable (matched by inode) may not add a table" /opt/agents/ai-agent add table inet sneaky
check "the unit made the guarded surfaces the host lacked" \
    sh -c 'test -d /usr/local/lib/modprobe.d && test -d /run/modprobe.d && test -f /etc/ld.so.preload'
refused "the agent may not plant a modprobe install command where kmod reads one" \
    agent sh -c 'echo "install dummy /bin/sh -c \"nft flush ruleset\"" >/usr/local/lib/modprobe.d/agent.conf'
check "root, not a subject, may" sh -c 'nft add table inet rootmade && nft delete table inet rootmade'

# 4. The change request, the notify hook, an RI's warrant through the inbox, the change, its rollback.
request=$(request_for nft.rule.add)
check "the notify hook told the journal about the request" \
    until_true 20 sh -c "[ -n '$request' ] && journalctl -t warrant-notify --no-pager | grep -q '$request'"
check "alice signs a one-use warrant" warrant approve "$request" --key "$IN/alice.key" --ttl 10m --uses 1 \
    --reason "deployment tier" --yes --out /tmp/ssh.warrant
cp /tmp/ssh.warrant /var/lib/warrant/inbox/ssh.warrant
check "the daemon installs the warrant from its inbox" \
    until_true 30 sh -c 'warrant status --json | python3 -c "import json,sys; sys.exit(0 if json.load(sys.stdin)[\"warrants\"] else 1)"'
mark=$(audit_len)
check "the agent service opens ssh under the warrant" agent nft add rule inet filter input tcp dport 22 accept
check "... the rule is in the ruleset" has_rule
check "... recorded allowed by the warrant" record "$mark" nft.rule.add allowed-by-warrant
refused "the warrant is spent after one use" agent nft add rule inet filter input tcp dport 22 accept
change=$(python3 -c 'import base64,json,sys; print(json.loads(base64.b64decode(json.load(open(sys.argv[1]))["payload"]))["id"])' /tmp/ssh.warrant)
check "warrant rollback removes the approved rule" warrant rollback "$change"
check "... it is gone from the ruleset, the chain and blocklist still there" \
    sh -c 'nft list table inet filter >/tmp/filter && ! grep -q "tcp dport 22 accept" /tmp/filter && grep -q 203.0.113.7 /tmp/filter'

# A file change under the unit: refused, approved, made, rolled back with
# its owner, group and mode (ProtectSystem=true and the unit's capabilities).
conf=/etc/sysctl.d/90-deploy.conf
echo "net.ipv4.ip_forward=0" >"$conf" && chown root:adm "$conf" && chmod 0640 "$conf"
write_conf() { agent sh -c "echo net.ipv4.ip_forward=1 > $conf"; }
refused "the agent may not change a protected file without a warrant" write_conf
request=$(request_for 90-deploy.conf)
warrant approve "$request" --key "$IN/alice.key" --ttl 10m --uses 1 --reason "deployment tier" --yes --out /tmp/file.warrant >/dev/null
cp /tmp/file.warrant /var/lib/warrant/inbox/file.warrant
check "the file warrant is installed from the inbox" until_true 30 sh -c 'warrant status --json | grep -q 90-deploy.conf'
check "the agent changes the file under the warrant" write_conf
sleep 3 # the daemon notes the state the change left on its next tick (2 s)
change=$(python3 -c 'import base64,json,sys; print(json.loads(base64.b64decode(json.load(open(sys.argv[1]))["payload"]))["id"])' /tmp/file.warrant)
check "warrant rollback restores the file" warrant rollback "$change"
check "... its content, owner, group and mode" \
    sh -c "grep -qx net.ipv4.ip_forward=0 $conf && [ \"\$(stat -c %U:%G:%a $conf)\" = root:adm:640 ]"

# Inode numbers the file system frees come back for new files: the
# daemon's own rewrites of its state must not leave protection behind on
# them (seen: an agent's dpkg refused as self.files).
check "an agent makes 300 files beside the daemon's state after its rewrites" \
    agent sh -c 'mkdir -p /var/lib/agent-scratch && for i in $(seq 1 300); do echo x >/var/lib/agent-scratch/f$i || exit 1; done'

# An agent removes the package: prerm's stop cannot reach systemd (a
# deputy), then `warrant uninstall` refuses in a subject, so the removal
# fails whole and the daemon and its pins stay.
pid_before_dpkg=$(main_pid)
warrant run --profile agent -- dpkg -r warrant >/tmp/agent-dpkg-r.out 2>&1
dpkg_rc=$?
if [ "$dpkg_rc" = 0 ]; then
    fail "an agent's dpkg -r warrant fails" "it succeeded"
elif grep -q "run uninstall from an unconfined root shell" /tmp/agent-dpkg-r.out; then
    ok "an agent's dpkg -r warrant fails (uninstall refuses in a subject)"
else
    fail "an agent's dpkg -r warrant fails" "not at uninstall (exit $dpkg_rc, $(wc -c </tmp/agent-dpkg-r.out) bytes): $(tr -c '[:print:]\n' '?' </tmp/agent-dpkg-r.out | tail -n 6)"
fi
check "... the daemon was not stopped" same_daemon_as "$pid_before_dpkg"
check "... the package stays installed" sh -c "dpkg-query -W -f '\${Status}' warrant | grep -q 'install ok installed'"
refused "... and the agent is still refused" agent nft add table inet afterdpkg

# 5. Restart and upgrade during agent activity: no gap.
busy_agent() {
    # An agent adding a table, over and over. A success is a gap (the
    # ruleset check below finds its table); an attempt systemd could not
    # start while it reloads (postinst) tests nothing, and is listed.
    local refused=0 i out
    for i in $(seq 1 "$1"); do
        if out=$(agent nft add table inet "gap$i" 2>&1); then
            echo "attempt $i succeeded" >>"/tmp/unexpected.$2"
            # (the next check, no gap table in the ruleset, then fails)
        elif grep -q "Operation not permitted" <<<"$out"; then
            refused=$((refused + 1))
        else
            echo "attempt $i: $out" >>"/tmp/unexpected.$2"
        fi
    done
    echo "$refused" >"/tmp/refused.$2"
}
before=$(main_pid)
busy_agent 40 restart &
busy=$!
sleep 2
check "systemctl restart warrant" systemctl restart warrant
wait "$busy"
[ -s /tmp/unexpected.restart ] && sed 's/^/  not refused: /' /tmp/unexpected.restart
check "agent attempts during the restart were refused (at least 30 of 40 with EPERM)" sh -c '[ "$(cat /tmp/refused.restart)" -ge 30 ]'
check "no agent change got through during the restart" no_gap
check "the daemon answers after the restart" until_true 180 warrant status
check "... and it is a new process" new_daemon_since "$before"
before=$(main_pid)
busy_agent 40 upgrade &
busy=$!
sleep 2
check "dpkg -i of a newer build (upgrade)" dpkg -i "$IN/warrant-upgrade.deb"
wait "$busy"
check "the newer version is installed" sh -c "dpkg-query -W -f '\${Version}' warrant | grep -q deploytier"
[ -s /tmp/unexpected.upgrade ] && sed 's/^/  not refused: /' /tmp/unexpected.upgrade
check "agent attempts during the upgrade were refused (at least 30 of 40 with EPERM)" sh -c '[ "$(cat /tmp/refused.upgrade)" -ge 30 ]'
check "no agent change got through during the upgrade" no_gap
check "the daemon answers after the upgrade" until_true 180 warrant status
check "... restarted by the package onto the new binary" \
    new_daemon_since "$before"
check "the policy survived the upgrade" status_is policy_version 1

# 6. Stopped, enforcement holds (pins); logs and the audit chain.
check "systemctl stop warrant" systemctl stop warrant
refused "the agent is still refused with the daemon stopped" agent nft add table inet whilestopped
check "the journal carries the daemon's logs" sh -c 'journalctl -u warrant -o cat --no-pager | grep -q "daemon ready"'
check "warrant audit verify" warrant audit verify
# PID 1 and a unit's child both write the child into the unit's cgroup; a
# child that PID 1 moved first is a subject when it writes itself, and that
# write must pass (it failed 219/CGROUP once: tests/kernel subjects.rs).
check "no unit in agents.slice failed to attach to its cgroup" \
    sh -c '! journalctl -b --no-pager -o cat | grep -q -e "Failed to attach to cgroup /agents.slice" -e "status=219/CGROUP"'

# 7. Removal takes enforcement away; purge leaves the audit log.
check "dpkg --purge warrant" dpkg --purge warrant
check "the pins are gone" sh -c '! ls /sys/fs/bpf/warrant >/dev/null 2>&1'
# The kernel frees the programs after an RCU grace period: poll.
check "the former agent may change the firewall again" until_true 60 \
    systemd-run --quiet --wait --pipe --collect --slice=agents.slice -- nft add table inet after
check "the host's public key is kept beside the audit log" test -s /var/log/warrant/host.key.pub
check "the audit log is kept" test -s "$AUDIT"
fi # package

# 8. The DaemonSet (a Debian 13 node of its own): the manifest itself, played
# by podman's `kube play` (a reader of the same Kubernetes YAML as the
# kubelet, which Debian does not package), with the image made of the .deb's
# binary. The daemon reads its
# configuration, keys and bundles in the pod, then enters the node's mount
# namespace: a daemon that resolved paths in the pod would protect nothing
# of the node's, match no agent, and keep its state and pins where they
# vanish with the pod.
if wanted daemonset; then
[ -d /var/log/warrant ] && mv /var/log/warrant /var/log/warrant.deb
rm -rf /etc/warrant
mkdir -p /srv/image && dpkg-deb -x "$IN/warrant.deb" /srv/image
ln -sf /srv/image/usr/sbin/warrant /usr/local/bin/warrant
hash -r
[ -s /tmp/demo.bundle ] ||
    warrant policy sign "$IN/demo.toml" --key "$IN/security-team.key" --out /tmp/demo.bundle >/dev/null
# The image: the binary and the C libraries it links, nothing else (nft for
# rollback is the node's, reached after the daemon enters its namespace).
for lib in $(ldd /srv/image/usr/sbin/warrant | grep -o '/[^ ]*'); do cp --parents -L "$lib" /srv/image; done
check "the image is made of the .deb's binary" sh -c "tar -C /srv/image -c . |
    podman import --change 'ENTRYPOINT [\"/usr/sbin/warrant\"]' - registry.example.com/warrant:0.1.0"
check "the manifest's warrant.toml enters the host's mount namespace" \
    grep -q '^    host_mount_namespace = "/proc/1/ns/mnt"' "$IN/daemonset.yaml"
cp "$IN/security-team.key.pub" /tmp/security-team.pub
pod_yaml() { python3 "$IN/daemonset_pod.py" "$IN/daemonset.yaml" "$1" /tmp/demo.bundle /srv/"$2".yaml "${@:3}"; }
pod_yaml /tmp/security-team.pub without-hostpid --without-host-pid
pod_yaml /tmp/security-team.pub pod
# Each play makes the Secret and ConfigMaps anew, as a new pod's volumes.
pod_down() { podman kube down "/srv/$1.yaml" >/dev/null 2>&1; podman secret rm -a >/dev/null 2>&1; podman volume rm -fa >/dev/null 2>&1; }
# play YAML: podman kube play, its errors (not the ids it prints) on failure.
play() { podman kube play "$1" >/tmp/play.out 2>&1 || { grep -v '^[0-9a-f]\{64\}$' /tmp/play.out | head -n 6; return 1; }; }
check "podman kube play of the manifest without hostPID" play /srv/without-hostpid.yaml
# container NAME: the container podman made of DaemonSet NAME's pod.
container() { podman ps -a --format '{{.Names}}' | grep -E "^$1(-pod)?-warrant\$"; }
daemon_refused() { podman logs "$(container warrant-without-hostpid)" 2>&1 | grep -q "run it with hostPID"; }
check "... its daemon refuses to start, saying so" until_true 120 daemon_refused
pod_down without-hostpid
check "podman kube play of the manifest" play /srv/pod.yaml
POD=$(container warrant)
check "the pod's daemon answers on the host's socket" until_true 180 warrant status
check "... it entered the host's mount namespace" \
    sh -c "podman logs $POD 2>&1 | grep -q 'entered the host.s mount namespace'"
# `kubectl exec` and exec probes join the container's first process.
pod_first=$(podman inspect --format '{{.State.Pid}}' $POD)
check "the pod's first process stays in the pod: it sees the pod's files, not the node's" \
    sh -c "test -e /proc/$pod_first/root/etc/warrant/config/warrant.toml && ! test -e /proc/$pod_first/root/etc/nftables.conf"
check "... and \`warrant status\` exec'd in the pod (the readiness probe) reaches the daemon" \
    podman exec $POD warrant status
check "the bundle from the pod's bundle_dir (a ConfigMap) is applied" \
    until_true 60 status_is policy_version 1
check "... and audited as the pod's file" grep -q 'bundle_dir pod:/etc/warrant/bundles.d/demo.bundle' "$AUDIT"
check "its state, audit log and pins are the host's" \
    sh -c 'test -s /var/lib/warrant/host.key.pub && test -s /var/log/warrant/audit.jsonl && ls /sys/fs/bpf/warrant >/dev/null'
check "its metrics answer on the node's network" python3 -c \
    'import urllib.request; assert b"warrant_policy_version 1" in urllib.request.urlopen("http://127.0.0.1:9464/metrics").read()'
mark=$(audit_len)
refused "an agent in the host's agents.slice (cgroup match) may not open ssh" \
    agent nft add rule inet filter input tcp dport 22 accept
check "... recorded denied-needs-warrant" record "$mark" nft.rule.add denied-needs-warrant
refused "the host's agent executable (matched by inode) may not add a table" /opt/agents/ai-agent add table inet podsneaky
refused "an agent may not write a host file the policy protects" agent sh -c 'echo "# agent" >>/etc/nftables.conf'
pod_config="$(podman volume inspect --format '{{.Mountpoint}}' warrant-config)/warrant.toml"
refused "nor the pod's configuration on the node, read in the pod and protected by inode" \
    agent sh -c "echo 'trusted_keys = []' >>$pod_config"
check "root, not a subject, still may change the firewall" sh -c 'nft add table inet rootmade && nft delete table inet rootmade'
# The kubelet's window: a new pod's Secret files are new inodes, unprotected
# until its daemon starts. Keys swapped there (here in the Secret, as a
# subject racing the kubelet would swap the files) are not trusted: the
# first keys are pinned.
check "the pod stops for a new one" podman kube down /srv/pod.yaml
pod_down pod
warrant keygen --out /tmp/swapped.key >/dev/null
sed 's/^version = 1$/version = 2/' "$IN/demo.toml" >/tmp/demo-v2.toml
warrant policy sign /tmp/demo-v2.toml --key /tmp/swapped.key --out /tmp/swapped.bundle >/dev/null
pod_yaml /tmp/swapped.key.pub pod
mark=$(audit_len)
check "podman kube play of the manifest with the swapped key" play /srv/pod.yaml
POD=$(container warrant)
check "the new pod's daemon answers" until_true 180 warrant status
check "... and says its configuration's keys are not the pinned ones" \
    sh -c 'warrant status --json | python3 -c "import json,sys; assert json.load(sys.stdin)[\"trust_root\"][\"config_differs\"] is True"'
check "... recorded trust.unsettled" sh -c "tail -n +$((mark + 1)) $AUDIT | grep -q '\"trust.unsettled\"'"
swapped_refused() {
    local out
    ! out=$(warrant policy apply /tmp/swapped.bundle 2>&1) && grep -q "are not settled" <<<"$out"
}
check "a bundle signed by the swapped key is refused: the keys are not settled" swapped_refused
check "... and the policy in force (restored under the pinned keys) is still v1" status_is policy_version 1
# Root checks the key the Secret holds (not the daemon's report of it).
checked=$(warrant trust key-id /tmp/swapped.key.pub | cut -d' ' -f1)
check "warrant trust key-id names the swapped key as status names the waiting key" \
    sh -c "warrant status --json | grep -qF '$checked'"
other_keys_refused() {
    local out
    ! out=$(warrant trust accept-config --keys SHA256:not-the-one-waiting --threshold 1 2>&1) &&
        grep -q "not accepted" <<<"$out" &&
        ! out=$(warrant trust accept-config --keys "$checked" --threshold 2 2>&1) && grep -q "not accepted" <<<"$out"
}
check "accept-config naming keys other than those waiting pins nothing" other_keys_refused
check "... and is recorded trust.refused" sh -c "tail -n +$((mark + 1)) $AUDIT | grep -q '\"via\": *\"accept-config\"'"
check "root accepts the configuration's keys it checked (warrant trust accept-config --keys)" \
    warrant trust accept-config --keys "$checked" --threshold 1
check "... after which that bundle applies" warrant policy apply /tmp/swapped.bundle
check "... and status no longer flags the keys" \
    sh -c 'warrant status --json | python3 -c "import json,sys; assert json.load(sys.stdin)[\"trust_root\"][\"config_differs\"] is False"'
check "the pod stops; enforcement stays pinned" podman kube down /srv/pod.yaml
refused "the agent is still refused with the pod gone" agent nft add table inet podgone
check "warrant audit verify (the pod's chain, on the host)" warrant audit verify
# systemd 257 spawns `systemd-executor` straight into the unit's cgroup,
# which then writes itself there before it execs the unit's command.
check "no unit in agents.slice failed to attach to its cgroup (systemd $(systemctl --version | awk 'NR == 1 { print $2 }'))" \
    sh -c '! journalctl -b --no-pager -o cat | grep -q -e "Failed to attach to cgroup /agents.slice" -e "status=219/CGROUP"'
check "warrant uninstall removes enforcement" warrant uninstall
check "the former agent may change the firewall again" until_true 60 agent nft add table inet afterpod
fi # daemonset

echo "deploy tier: $passed passed, $failed failed"
